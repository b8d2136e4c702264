//! `sunshine-loadgen`: the end-to-end benchmark (`make bench-e2e`). See `sunshine-loadgen --help`
//! and `docs/benchmarks.md`.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let options = sunshine_loadgen::Options::parse();
    match sunshine_loadgen::main_with(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sunshine-loadgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}
