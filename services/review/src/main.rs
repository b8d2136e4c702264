//! `sunshine-review`: configuration from `SUNSHINE_CONFIG` and `SUNSHINE__…` variables.

fn main() -> std::process::ExitCode {
    sunshine_platform::main_entry(sunshine_review::SERVICE_NAME, sunshine_review::run)
}
