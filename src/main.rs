//! The `doudi` binary: everything lives in the `doudi-cli` crate.
fn main() -> std::process::ExitCode {
    doudi_cli::main()
}
