//! `kubectl appstack`: a kubectl plugin for AppStacks, run with the
//! caller's own kubeconfig and RBAC. Flags are parsed in `plugin::cli`;
//! this file only starts it.

fn main() -> std::process::ExitCode {
    appstack::plugin::cli::main()
}
