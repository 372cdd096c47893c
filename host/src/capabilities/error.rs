//! The one error taxonomy of host calls: the WIT `error` variant (`types.wit`), plus a trap
//! for host-side invariants. Providers report [`ProviderError`], which maps onto it here; the
//! WIT value converts both ways in [`crate::capabilities::bindings`]; the kind names exist once
//! ([`HostError::kind`]).

use super::provider::ProviderError;

/// The error a host function returns: either a value the guest sees, or a trap.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The policy refused the call; no I/O happened.
    #[error("denied: {0}")]
    Denied(String),
    /// The target does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Exists already, or changed concurrently.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Bad arguments.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A transient fault; retrying may help.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
    /// A host-side invariant broke (for example a stale handle): trap the guest.
    #[error("trap: {0}")]
    Trap(wasmtime::Error),
}

impl HostError {
    /// The short outcome name used in the audit trail.
    pub fn kind(&self) -> &'static str {
        match self {
            HostError::Denied(_) => "denied",
            HostError::NotFound(_) => "not-found",
            HostError::Conflict(_) => "conflict",
            HostError::Invalid(_) => "invalid",
            HostError::Unavailable(_) => "unavailable",
            HostError::Other(_) => "other",
            HostError::Trap(_) => "trap",
        }
    }
}

impl From<wasmtime::component::ResourceTableError> for HostError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        match e {
            wasmtime::component::ResourceTableError::Full => HostError::Invalid(
                "too many open handles: the run's handle limit is reached; drop handles you no longer need".into(),
            ),
            other => HostError::Trap(wasmtime::Error::msg(format!("bad handle: {other}"))),
        }
    }
}

impl From<ProviderError> for HostError {
    fn from(e: ProviderError) -> Self {
        use ProviderError as B;
        match e {
            B::NotFound(m) => HostError::NotFound(m),
            B::Conflict(m) => HostError::Conflict(m),
            B::Invalid(m) => HostError::Invalid(m),
            B::Unavailable(m) => HostError::Unavailable(m),
            B::Integrity(m) => HostError::Other(format!("integrity check failed: {m}")),
            B::Other(m) => HostError::Other(m),
        }
    }
}

/// Result of a host call.
pub type HostResult<T> = Result<T, HostError>;
