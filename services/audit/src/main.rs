//! `sunshine-audit`: configuration from `SUNSHINE_CONFIG` and `SUNSHINE__…` variables.

fn main() -> std::process::ExitCode {
    sunshine_platform::main_entry(sunshine_audit::SERVICE_NAME, sunshine_audit::run)
}
