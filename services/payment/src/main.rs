//! `sunshine-payment`: configuration from `SUNSHINE_CONFIG` and `SUNSHINE__…` variables.

fn main() -> std::process::ExitCode {
    sunshine_platform::main_entry(sunshine_payment::SERVICE_NAME, sunshine_payment::run)
}
