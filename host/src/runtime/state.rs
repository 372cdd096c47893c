//! The data of one guest's `Store`: WASI with nothing reachable, the handle table, limits,
//! the run's environment, and each capability's per-run state.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::Limiter;
use crate::capabilities::env::RunEnv;
use crate::capabilities::{CapabilityState, View};

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
    /// Each capability's state for this run (k8s discovery results, ...).
    pub caps: CapabilityState,
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
            caps: CapabilityState::default(),
        }
    }

    /// The borrowed view every capability's host functions run on.
    pub fn view(&mut self) -> View<'_> {
        View {
            env: &self.env,
            table: &mut self.table,
            state: &mut self.caps,
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
