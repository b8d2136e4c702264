//! `sunshine-department-integration`: configuration from `SUNSHINE_CONFIG` and `SUNSHINE__…` variables.

fn main() -> std::process::ExitCode {
    sunshine_platform::main_entry(
        sunshine_department_integration::SERVICE_NAME,
        sunshine_department_integration::run,
    )
}
