fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(dockhand::cli::main())
}
