//! PostgreSQL with three instances under a recorded writer: the primary's
//! postmaster is stopped (SIGSTOP from the node), so it no longer answers
//! the operator nor its probes while the connections it has still commit.
//! Past the lease the operator fences it (deletes its pod and waits for the
//! kubelet to confirm), promotes the most advanced replica, and no write
//! acknowledged after the promotion is lost; the old primary comes back as
//! a replica, all three streaming on the new timeline within 60 s (see
//! postgres_failover.rs).

use appstack_e2e::runner::{Ctx, ScenarioFuture};

use super::postgres_failover::{Fault, failover};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(failover(
        ctx,
        Fault {
            stop_the_primary: true,
            ..Fault::default()
        },
    ))
}
