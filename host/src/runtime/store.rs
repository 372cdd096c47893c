//! One guest call in its own store: the limits set on it, the wall clock around it, and its
//! failures classified for an SRE.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, Store, UpdateDeadline};

use super::error::RunError;
use super::limits::{EPOCH_TICK, LimitExceeded};
use super::state::RunState;
use crate::capabilities::env::RunEnv;
use crate::policy::desk::Desk;

/// A store for one run of `env`'s guest: memory limiter, CPU budget counted
/// in epoch ticks (yielding to tokio at each), and the wall-clock limit.
pub(crate) fn limited_store(engine: &Engine, env: Arc<RunEnv>) -> (Store<RunState>, Watch) {
    let limits = env.config.limits.clone();
    let guest = env.guest.name.clone();
    let mut store = Store::new(engine, RunState::new(env));
    store.limiter(|s| &mut s.limiter);
    let budget_ticks = (limits.cpu_ms / EPOCH_TICK.as_millis() as u64).max(1);
    store.set_epoch_deadline(1);
    let cpu_ms = limits.cpu_ms;
    store.epoch_deadline_callback(move |mut ctx| {
        let data = ctx.data_mut();
        data.cpu_ticks += 1;
        if data.cpu_ticks > budget_ticks {
            return Err(wasmtime::Error::new(LimitExceeded::Cpu { cpu_ms }));
        }
        // Yield to tokio at every tick so a busy guest never starves the
        // host's other tasks (progress rendering, timeouts).
        Ok(UpdateDeadline::Yield(1))
    });
    let decisions = store.data().caps.decisions.clone();
    let watch = Watch {
        wall: Duration::from_secs(limits.wall_seconds),
        guest,
        decisions,
    };
    (store, watch)
}

/// What watches one guest call from outside its store.
pub(crate) struct Watch {
    /// The wall-clock limit.
    wall: Duration,
    /// The guest's name, for errors.
    guest: String,
    /// The store's policy desk, answered while the call is driven.
    decisions: Arc<Desk>,
}

/// Runs a guest call under the wall-clock limit, answering its policy questions off the
/// guest's fiber, and classifies failures.
pub(crate) async fn within_wall<T>(
    watch: Watch,
    fut: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> Result<T, RunError> {
    match tokio::time::timeout(watch.wall, watch.decisions.serve(fut)).await {
        Err(_) => Err(LimitExceeded::Wall {
            seconds: watch.wall.as_secs(),
        }
        .into()),
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) => Err(classify_failure(e, &watch.guest)),
    }
}

/// Turns a wasmtime error from a guest call into the error an SRE reads.
fn classify_failure(e: wasmtime::Error, guest: &str) -> RunError {
    if let Some(limit) = e.downcast_ref::<LimitExceeded>() {
        return RunError::Limit(limit.clone());
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        let detail = format!("{e:?}");
        return RunError::Trap {
            guest: guest.to_string(),
            message: format!("{trap}\n{detail}"),
        };
    }
    RunError::Trap {
        guest: guest.to_string(),
        message: format!("{e:?}"),
    }
}
