//! `sunshine-intake`: configuration from `SUNSHINE_CONFIG` and `SUNSHINE__…` variables.

fn main() -> std::process::ExitCode {
    sunshine_platform::main_entry(sunshine_intake::SERVICE_NAME, sunshine_intake::run)
}
