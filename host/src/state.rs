//! Per-run state: what one guest run may reach, and its store data.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::audit::Audit;
use crate::config::{Limits, RunConfig};
use crate::policy::{GuestIdentity, PolicyEngine};
use crate::progress::ProgressSink;

/// The host's clock for guests: real time, optionally scaled.
#[derive(Debug, Clone)]
pub struct Clock {
    scale: f64,
    start_real: Instant,
    start_epoch_ms: u64,
}

impl Clock {
    /// A clock running `scale` times faster than real time (1.0 = real).
    pub fn new(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 { scale } else { 1.0 };
        let start_epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        Clock {
            scale,
            start_real: Instant::now(),
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
    pub clients: Arc<crate::caps::Clients>,
    /// The site hooks `hook-dispatch` calls (empty for hooks themselves).
    pub hooks: Arc<crate::hooks::HookSet>,
}

/// Memory limiter that remembers why it refused, for a clear error message.
pub struct Limiter {
    inner: StoreLimits,
    memory_bytes: usize,
    /// Set when a memory growth was refused.
    pub memory_exceeded: bool,
}

impl Limiter {
    fn new(limits: &Limits) -> Self {
        let memory_bytes = (limits.memory_mib as usize).saturating_mul(1024 * 1024);
        Limiter {
            inner: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .instances(64)
                .tables(64)
                .memories(16)
                .table_elements(1_000_000)
                .trap_on_grow_failure(false)
                .build(),
            memory_bytes,
            memory_exceeded: false,
        }
    }

    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        if !ok {
            self.memory_exceeded = true;
            // Trap right away: a guest whose allocator fails would otherwise
            // abort with an opaque `unreachable`.
            return Err(wasmtime::Error::new(crate::runner::LimitExceeded::Memory {
                limit_mib: (self.memory_bytes / (1024 * 1024)) as u64,
                desired,
            }));
        }
        Ok(ok)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// The data of one guest's `Store`.
pub struct RunState {
    wasi: WasiCtx,
    /// Handles the guest holds (clusters, buckets, zones, WASI streams).
    pub table: ResourceTable,
    /// The memory limiter.
    pub limiter: Limiter,
    /// Epoch ticks the guest has used (10 ms each).
    pub cpu_ticks: u64,
    /// The run environment.
    pub env: Arc<RunEnv>,
    /// k8s discovery results cached per cluster alias.
    pub(crate) discovery: HashMap<String, crate::caps::k8s::DiscoveryCache>,
}

impl RunState {
    /// Builds store data for one run: WASI with no files, no network, no
    /// environment and no arguments; stdout and stderr go to the log.
    pub fn new(env: Arc<RunEnv>) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(env.config.limits.max_handles);
        let guest = env.guest.name.clone();
        let wasi = WasiCtx::builder()
            .stdout(crate::progress::LogStream::new(guest.clone(), "stdout"))
            .stderr(crate::progress::LogStream::new(guest, "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        RunState {
            wasi,
            table,
            limiter: Limiter::new(&env.config.limits),
            cpu_ticks: 0,
            env,
            discovery: HashMap::new(),
        }
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
