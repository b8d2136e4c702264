//! `sunshine-payment-bench`: the payment-run benchmark (`make bench-payment`). See
//! `sunshine-payment-bench --help` and `docs/benchmarks.md` (Payment).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let options = sunshine_loadgen::payment::PaymentOptions::parse();
    match sunshine_loadgen::payment::main_with(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sunshine-payment-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
