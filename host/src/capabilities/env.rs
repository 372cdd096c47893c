//! What one run may reach, shared by its capabilities: the guest's identity and policy, the
//! run config, the audit trail, the clock, progress, clients, and the site hooks behind
//! [`HookDispatch`] (the runtime runs hook components; capabilities only call this trait, so
//! they never import the runtime).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;

use crate::audit::Audit;
use crate::capabilities::bindings::automation::ferry::host::hooks::{Event, Outcome};
use crate::capabilities::clients::Clients;
use crate::capabilities::error::HostError;
use crate::config::RunConfig;
use crate::policy::{GuestIdentity, PolicyEngine};
use crate::progress::ProgressSink;

/// Where this process's clocks start counting: its first clock's real time.
static ORIGIN: std::sync::LazyLock<(Instant, u64)> = std::sync::LazyLock::new(|| {
    let epoch_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    (Instant::now(), epoch_ms)
});

/// The host's clock for guests: real time, optionally scaled.
#[derive(Debug, Clone)]
pub struct Clock {
    scale: f64,
    start_real: Instant,
    start_epoch_ms: u64,
}

impl Clock {
    /// A clock running `scale` times faster than real time (1.0 = real). Every clock of a
    /// process counts from the same origin ([`ORIGIN`]), so the runs one process makes one
    /// after the other (a drill's phases) share one timeline: a scaled clock that restarted at
    /// each run would hand a later run times before an earlier run's.
    pub fn new(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 { scale } else { 1.0 };
        let (start_real, start_epoch_ms) = *ORIGIN;
        Clock {
            scale,
            start_real,
            start_epoch_ms,
        }
    }

    /// Milliseconds since the Unix epoch on this clock.
    pub fn now_ms(&self) -> u64 {
        let elapsed = self.start_real.elapsed().as_secs_f64() * 1000.0 * self.scale;
        self.start_epoch_ms + elapsed as u64
    }

    /// The real duration a guest sleep of `millis` takes.
    pub fn real_duration(&self, millis: u64) -> Duration {
        Duration::from_secs_f64(millis as f64 / 1000.0 / self.scale)
    }
}

/// Everything a run may reach, shared by the capabilities. Built by the
/// runner from the run config; guests only ever see aliases.
pub struct RunEnv {
    /// The guest's identity (policy principal).
    pub guest: GuestIdentity,
    /// The policy every call is checked against.
    pub policy: Arc<PolicyEngine>,
    /// The run config (clusters, AWS, etcd, workspace, limits).
    pub config: RunConfig,
    /// The phase being run.
    pub phase: String,
    /// Whether this run is a plan.
    pub plan: bool,
    /// The audit trail (shared with the run's hooks).
    pub audit: Arc<Audit>,
    /// The guest's clock.
    pub clock: Clock,
    /// Where progress events go.
    pub progress: Arc<dyn ProgressSink>,
    /// Clients created on first use, shared by handles of the same target.
    pub clients: Arc<Clients>,
    /// Whether and with which key objects are sealed (the run's audit key; never hooks).
    pub sealing: crate::capabilities::objects::seal::Sealing,
    /// The site hooks `hook-dispatch` calls (none for hooks themselves).
    pub hooks: Arc<dyn HookDispatch>,
    /// The plan this run records (a plan run) or must keep to (an apply); shared with its
    /// hooks, which never widen what a run may do.
    pub plan_book: Option<Arc<crate::plan::PlanBook>>,
}

/// Calls the site hooks of a run: the `hook-dispatch` capability's way to the hook components
/// the runtime loaded.
pub trait HookDispatch: Send + Sync {
    /// Dispatches one event of the run `env` and combines the hooks' outcomes (see the
    /// `hook-dispatch` WIT docs).
    fn dispatch<'a>(&'a self, env: &'a Arc<RunEnv>, event: Event) -> BoxFuture<'a, Result<Outcome, HostError>>;
}

/// No hooks: every dispatch proceeds (hooks themselves, and runs without any).
pub struct NoHooks;

impl HookDispatch for NoHooks {
    fn dispatch<'a>(&'a self, _env: &'a Arc<RunEnv>, _event: Event) -> BoxFuture<'a, Result<Outcome, HostError>> {
        Box::pin(async { Ok(Outcome::Proceed) })
    }
}
