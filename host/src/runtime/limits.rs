//! Limits of one guest run: linear memory (with a clear error when refused), CPU counted in
//! epoch ticks, wall-clock time, and what a guest that runs into one is told.

use std::time::Duration;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

use crate::config::Limits;

/// Memory limiter that remembers why it refused, for a clear error message.
pub struct Limiter {
    inner: StoreLimits,
    memory_bytes: usize,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
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
            // Trap right away: a guest whose allocator fails would otherwise
            // abort with an opaque `unreachable`.
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
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

/// How often the epoch advances; the CPU limit counts these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A limit a guest ran into.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitExceeded {
    /// Linear memory would grow past the limit.
    #[error(
        "guest exceeded its memory limit of {limit_mib} MiB (it asked for {desired} bytes); raise [limits] memory_mib if this guest legitimately needs more"
    )]
    Memory {
        /// The limit.
        limit_mib: u64,
        /// What the guest asked for.
        desired: usize,
    },
    /// CPU budget used up.
    #[error(
        "guest used more than its CPU budget of {cpu_ms} ms and was stopped (a runaway loop?); raise [limits] cpu_ms if the work is legitimate"
    )]
    Cpu {
        /// The budget.
        cpu_ms: u64,
    },
    /// Wall-clock limit reached.
    #[error("guest run exceeded its wall-clock limit of {seconds} s (time in host calls included) and was stopped")]
    Wall {
        /// The limit.
        seconds: u64,
    },
}
