fn main() -> std::process::ExitCode {
    // An engine watcher a supervisor left behind (internal, see watcher.rs).
    if let Some(code) = dockhand::engine::watcher::main_if_asked() {
        return std::process::ExitCode::from(code);
    }
    std::process::ExitCode::from(dockhand::cli::main())
}
