//! `sunshine-disclosure`: configuration from `SUNSHINE_CONFIG` and `SUNSHINE__…` variables.

fn main() -> std::process::ExitCode {
    sunshine_platform::main_entry(sunshine_disclosure::SERVICE_NAME, sunshine_disclosure::run)
}
