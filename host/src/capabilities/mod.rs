//! Capabilities: the host side of each `ferry:host` interface, one folder each with the same
//! shape: `mod.rs` (its handles and its [`Capability`] entry), `host.rs` (the generated `Host`
//! traits, implemented on the borrowed [`View`]), and `provider.rs` (the code that talks to the
//! real service, knowing nothing of WebAssembly or policy). Small capabilities keep all in
//! `mod.rs`.
//!
//! Every call takes the same way: guest → capability (the resource it acts on, from the call's
//! arguments) → policy decision (before any I/O; audited) → provider → service, and the
//! outcome is audited. [`CAPABILITIES`] is the one list of what this host provides: the
//! runtime's import check, the scaffold's WIT files and the policy schema's table come from it.

pub mod bindings;
pub mod clients;
pub mod context;
pub mod dns;
pub mod env;
pub mod error;
pub mod etcd;
pub mod hooks;
pub mod k8s;
pub mod objects;
pub mod provider;
pub mod workspace;

pub use clients::Clients;
pub use error::{HostError, HostResult};

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasData, ResourceTable};

use crate::capabilities::env::RunEnv;
use crate::policy::{Action, CallContext, ResourceRef};

/// One `ferry:host` interface as the host provides it.
#[derive(Debug, Clone, Copy)]
pub struct Capability {
    /// The WIT interface, without version (`ferry:host/k8s`).
    pub interface: &'static str,
    /// The WIT file that defines it, and its text (compiled in, so `ferry new hook` works
    /// outside the repository).
    pub wit: (&'static str, &'static str),
    /// The policy actions its calls are checked as (besides `import`).
    pub actions: &'static [Action],
    /// Whether importing it needs a grant (`import` on the interface); types-only interfaces
    /// do not.
    pub needs_grant: bool,
}

/// `ferry:host/types`: shared types, nothing to grant.
pub const TYPES: Capability = Capability {
    interface: "ferry:host/types",
    wit: ("types.wit", include_str!("../../../wit/types.wit")),
    actions: &[],
    needs_grant: false,
};

/// Every interface this host provides.
pub const CAPABILITIES: &[Capability] = &[
    TYPES,
    context::CAPABILITY,
    k8s::CAPABILITY,
    objects::CAPABILITY,
    dns::CAPABILITY,
    etcd::CAPABILITY,
    workspace::CAPABILITY,
    hooks::TYPES,
    hooks::DISPATCH,
];

/// The WIT files of the package: each capability's, then the worlds.
pub fn wit_files() -> Vec<(&'static str, &'static str)> {
    let mut files: Vec<(&str, &str)> = Vec::new();
    for c in CAPABILITIES {
        if !files.iter().any(|(name, _)| *name == c.wit.0) {
            files.push(c.wit);
        }
    }
    files.push(("worlds.wit", include_str!("../../../wit/worlds.wit")));
    files
}

/// Each capability's state for one run.
#[derive(Default)]
pub struct CapabilityState {
    /// Kubernetes discovery results, per cluster alias.
    pub k8s: k8s::State,
    /// Where host calls leave their policy questions, so that they are decided off the
    /// guest's fiber (see [`crate::policy::desk`]).
    pub decisions: Arc<crate::policy::desk::Desk>,
    /// Bytes this run wrote to its workspace, against `[limits] workspace_quota_bytes`.
    pub workspace_written: u64,
}

/// The borrowed view of one run's store that every capability's host functions run on: the
/// run's environment, the guest's handles, and the capabilities' state.
pub struct View<'a> {
    /// What the run may reach (policy, config, audit, clients, hooks).
    pub env: &'a Arc<RunEnv>,
    /// The handles the guest holds.
    pub table: &'a mut ResourceTable,
    /// Per-run capability state.
    pub state: &'a mut CapabilityState,
}

impl HasData for View<'static> {
    type Data<'a> = View<'a>;
}

/// What a call's arguments say that its resource does not, for the policy's context.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// `k8s:patch`: the fields the patch sets.
    pub(crate) patch_fields: Option<Vec<String>>,
    /// `objects:presign`: the URL's lifetime.
    pub(crate) presign_seconds: Option<u64>,
    /// What a mutation does and carries, for a plan to record or an apply to check.
    pub(crate) change: Option<Change>,
}

/// A mutation's own words and the bytes it carries (body, patch, data): what a plan entry
/// digests. A mutation without one is recorded by its action and target alone.
#[derive(Debug)]
pub(crate) struct Change {
    /// What it does, for the reviewer (`merge patch`, `scale to 0 replicas`).
    pub(crate) what: String,
    /// What it carries.
    pub(crate) body: Vec<u8>,
}

impl Change {
    pub(crate) fn new(what: impl Into<String>, body: impl Into<Vec<u8>>) -> Option<Change> {
        Some(Change {
            what: what.into(),
            body: body.into(),
        })
    }
}

/// A policy-approved call in progress; finishing it writes the audit record.
pub struct Approved {
    action: Action,
    resource: ResourceRef,
    policies: Vec<String>,
    dry_run: bool,
    started: Instant,
}

impl View<'_> {
    /// Asks the policy whether `action` on `resource` is allowed, before any I/O.
    /// A denial is audited and returned as [`HostError::Denied`].
    ///
    /// The future borrows nothing from the view, so host functions keep their `&mut self`.
    pub(crate) fn authorize(
        &self,
        action: Action,
        resource: ResourceRef,
        dry_run: bool,
    ) -> impl Future<Output = HostResult<Approved>> + Send + 'static {
        self.authorize_with(action, resource, dry_run, Facts::default())
    }

    /// [`View::authorize`] with what the call's arguments say beyond its resource.
    pub(crate) fn authorize_with(
        &self,
        action: Action,
        resource: ResourceRef,
        dry_run: bool,
        facts: Facts,
    ) -> impl Future<Output = HostResult<Approved>> + Send + 'static {
        let env = self.env.clone();
        let desk = self.state.decisions.clone();
        async move {
            let ctx = CallContext {
                plan: env.plan,
                dry_run,
                phase: env.phase.clone(),
                patch_fields: facts.patch_fields,
                presign_seconds: facts.presign_seconds,
            };
            let decision = desk.decide(&env.policy, action, &resource, ctx).await;
            Self::decided(&env, action, resource, dry_run, decision, facts.change)
        }
    }

    /// Turns a decision into an approval, or audits the denial and returns it.
    fn decided(
        env: &RunEnv,
        action: Action,
        resource: ResourceRef,
        dry_run: bool,
        decision: crate::policy::Decision,
        change: Option<Change>,
    ) -> HostResult<Approved> {
        // A trail that can no longer be written cannot show what happens next: stop.
        let stop = |why: String| {
            HostError::Trap(wasmtime::Error::msg(format!(
                "the run stops before {action} on {}: {why}",
                crate::audit::describe(&resource)
            )))
        };
        if let Some(why) = env.audit.broken() {
            return Err(stop(why));
        }
        // An allowed mutation is next held against the plan: recorded by a plan run, checked
        // by an apply (a guest's own dry run changes nothing and is not checked).
        let planned = action.is_mutating() || action == Action::ObjectsPresign;
        if decision.allowed
            && planned
            && let Some(book) = &env.plan_book
            && (env.plan || !dry_run)
        {
            let target = crate::audit::describe(&resource);
            let (what, body) = change.map_or_else(|| (action.name().to_string(), Vec::new()), |c| (c.what, c.body));
            if let Err(unplanned) = book.mutation(action, &target, &what, &body) {
                let by = ["approved-plan".to_string()];
                return Err(Self::denied(env, action, &resource, &by, dry_run, unplanned.reason).map_err(stop)?);
            }
        }
        if decision.allowed {
            if action.is_mutating() {
                env.audit
                    .try_record(&crate::audit::Record::decision(
                        &env.guest,
                        &env.phase,
                        action,
                        &resource,
                        &decision.policies,
                        dry_run,
                    ))
                    .map_err(stop)?;
            }
            crate::killpoint::before_call(action.name());
            Ok(Approved {
                action,
                resource,
                policies: decision.policies,
                dry_run,
                started: Instant::now(),
            })
        } else {
            let reason = decision.denial_reason(action, &resource);
            Err(Self::denied(env, action, &resource, &decision.policies, dry_run, reason).map_err(stop)?)
        }
    }

    /// Audits a denial (by the policy, or by the approved plan) and returns it as the guest
    /// sees it; `Err` when the trail could not be written.
    fn denied(
        env: &RunEnv,
        action: Action,
        resource: &ResourceRef,
        by: &[String],
        dry_run: bool,
        reason: String,
    ) -> Result<HostError, String> {
        env.audit.try_record(&crate::audit::Record::call(
            &env.guest,
            &env.phase,
            action,
            resource,
            "deny",
            by,
            dry_run,
            "denied",
            Some(&reason),
            0,
        ))?;
        tracing::warn!(guest = %env.guest.name, %action, resource = %crate::audit::describe(resource), by = %by.join(","), %reason, "a call was denied");
        Ok(HostError::Denied(reason))
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
        crate::killpoint::after_call(approved.action.name());
    }
}
