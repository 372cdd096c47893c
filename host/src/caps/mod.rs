//! Capabilities: the host side of each `ferry:host` interface.
//!
//! Every capability call follows the same path: build the policy resource
//! from the call's arguments, ask the policy (before any I/O), record the
//! decision in the audit trail, then perform the call and record its outcome.

mod clients;
pub mod context;
pub mod dns;
pub mod etcd;
pub mod hook_dispatch;
pub mod k8s;
pub mod objects;
pub mod workspace;

pub use clients::Clients;

use std::time::Instant;

use crate::bindings::WitError;
use crate::policy::{Action, CallContext, ResourceRef};
use crate::state::RunState;

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
    /// Converts to the WIT error value, or returns the trap.
    pub fn into_wit(self) -> wasmtime::Result<WitError> {
        Ok(match self {
            HostError::Denied(m) => WitError::Denied(m),
            HostError::NotFound(m) => WitError::NotFound(m),
            HostError::Conflict(m) => WitError::Conflict(m),
            HostError::Invalid(m) => WitError::Invalid(m),
            HostError::Unavailable(m) => WitError::Unavailable(m),
            HostError::Other(m) => WitError::Other(m),
            HostError::Trap(e) => return Err(e),
        })
    }

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

impl From<crate::backends::BackendError> for HostError {
    fn from(e: crate::backends::BackendError) -> Self {
        use crate::backends::BackendError as B;
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

/// Stack room Cedar needs for one evaluation (it checks for 100 KiB).
const POLICY_RED_ZONE: usize = 256 * 1024;
/// Size of the stack policy evaluation moves to when room is short.
const POLICY_STACK: usize = 1024 * 1024;

/// Result of a host call.
pub type HostResult<T> = Result<T, HostError>;

/// A policy-approved call in progress; finishing it writes the audit record.
pub struct Approved {
    action: Action,
    resource: ResourceRef,
    policies: Vec<String>,
    dry_run: bool,
    started: Instant,
}

impl RunState {
    /// Asks the policy whether `action` on `resource` is allowed, before any I/O.
    /// A denial is audited and returned as [`HostError::Denied`].
    pub(crate) fn authorize(&self, action: Action, resource: ResourceRef, dry_run: bool) -> HostResult<Approved> {
        let env = &self.env;
        let ctx = CallContext {
            plan: env.plan,
            dry_run,
            phase: env.phase.clone(),
        };
        // Host functions run on the guest's fiber stack, where stacker (used by
        // Cedar to guard recursion) cannot see the stack bounds and reports no
        // room at all. `maybe_grow` moves the evaluation to a stack whose
        // bounds it knows whenever the remaining room looks too small.
        let decision = stacker::maybe_grow(POLICY_RED_ZONE, POLICY_STACK, || {
            env.policy.authorize(action, &resource, &ctx)
        });
        if decision.allowed {
            Ok(Approved {
                action,
                resource,
                policies: decision.policies,
                dry_run,
                started: Instant::now(),
            })
        } else {
            let reason = decision.denial_reason(action, &resource);
            env.audit.record(&crate::audit::Record::call(
                &env.guest,
                &env.phase,
                action,
                &resource,
                "deny",
                &decision.policies,
                dry_run,
                "denied",
                Some(&reason),
                0,
            ));
            tracing::warn!(guest = %env.guest.name, %action, resource = %crate::audit::describe(&resource), %reason, "policy denied a call");
            Err(HostError::Denied(reason))
        }
    }

    /// Writes the audit record of an approved call and passes its result on.
    pub(crate) fn finish<T>(&self, approved: Approved, result: HostResult<T>) -> HostResult<T> {
        self.audit(approved, &result);
        result
    }

    /// Writes the audit record of an approved call that failed, and returns the error.
    pub(crate) fn fail<T>(&self, approved: Approved, error: HostError) -> HostResult<T> {
        self.finish(approved, Err(error))
    }

    /// Writes the audit record of an approved call with the call's real
    /// outcome. Calls that carry several approvals (an etcd member and the
    /// upload target; each record of a DNS batch) audit each one with it.
    pub(crate) fn audit<T>(&self, approved: Approved, result: &HostResult<T>) {
        let env = &self.env;
        let (outcome, message) = match result {
            Ok(_) => ("ok", None),
            Err(e) => (e.kind(), Some(e.to_string())),
        };
        env.audit.record(&crate::audit::Record::call(
            &env.guest,
            &env.phase,
            approved.action,
            &approved.resource,
            "allow",
            &approved.policies,
            approved.dry_run,
            outcome,
            message.as_deref(),
            approved.started.elapsed().as_micros() as u64,
        ));
    }
}
