//! PostgreSQL with three instances and synchronous replication required
//! (one replica confirms each commit): the primary's pod is deleted
//! (grace 1 s) under a recorded writer, and no acknowledged write is lost
//! (see postgres_failover.rs).

use appstack_e2e::runner::{Ctx, ScenarioFuture};

use super::postgres_failover::{Fault, failover};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(failover(
        ctx,
        Fault {
            synchronous: true,
            ..Fault::default()
        },
    ))
}
