//! The end-to-end scenarios, run against the cluster by `make e2e`:
//!
//!   cargo test --locked -p appstack-e2e --test scenarios -- --nocapture [FILTER...]
//!
//! E2E_PARALLEL (default 4) sets how many independent scenarios run side by
//! side; 1 runs them one after another.
//! FILTER selects scenarios whose name contains it (helm-install is added
//! when a selected scenario needs the operator, unless E2E_NO_INSTALL=1).
//! E2E_KEEP=1 keeps every scenario's namespace; E2E_POD_SECURITY sets the
//! Pod Security level they enforce (default restricted); CLUSTER=current
//! drives the current kube context.

mod cases;

fn main() -> std::process::ExitCode {
    appstack_e2e::runner::main(cases::all())
}
