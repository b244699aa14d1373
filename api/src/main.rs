//! The `anju` binary: the command line of [`anju_api::cli`] with the system clock.

fn main() -> std::process::ExitCode {
    anju_api::cli::main_with(anju_api::cli::Hooks::production())
}
