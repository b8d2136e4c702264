//! `sunshine-integration-bench`: the department-integration benchmark (`make
//! bench-integration`). See `sunshine-integration-bench --help` and `docs/benchmarks.md`
//! (Department integration).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let options = sunshine_loadgen::integration::IntegrationOptions::parse();
    match sunshine_loadgen::integration::main_with(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sunshine-integration-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
