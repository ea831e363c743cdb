//! PostgreSQL with three instances under a recorded writer: one replica's
//! WAL receiver is stopped (SIGSTOP), writes go on for 5 s, then the
//! primary's pod is deleted (grace 1 s). The other replica, the one that
//! has every write, is promoted, never the stopped one; it then resumes
//! and all three stream from the new primary (see postgres_failover.rs).

use appstack_e2e::runner::{Ctx, ScenarioFuture};

use super::postgres_failover::{Fault, failover};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(failover(
        ctx,
        Fault {
            stop_a_receiver: true,
            ..Fault::default()
        },
    ))
}
