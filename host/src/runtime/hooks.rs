//! Site hooks: `hook`-world components the run config lists, called by a full
//! guest through `hook-dispatch`.
//!
//! Each hook is loaded and checked once per run (its imports against its own
//! policy), and each call runs in a fresh store under the hook's own policy
//! and limits, on its own tokio task. Its host calls are checked and audited
//! like any other, under its own name; each call into it and its outcome is
//! audited too. A hook that fails (error value, trap, limit) fails the
//! dispatch with a message naming it, unless it is advisory.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::Engine;

use futures::future::BoxFuture;

use super::error::{RunError, RunFailure};
use super::state::RunState;
use super::{Runtime, run_hook};
use crate::audit::Record;
use crate::capabilities::HostError;
use crate::capabilities::bindings::automation::ferry::host::hooks::{Event, Outcome, Point};
use crate::capabilities::bindings::hook::HookPre;
use crate::capabilities::env::{HookDispatch, NoHooks, RunEnv};
use crate::config::{HookConfig, Limits};
use crate::policy::{Action, CallContext, GuestIdentity, PolicyEngine, ResourceRef};
use crate::runtime::payload;

/// The WIT name of a point, as the run config lists it.
pub fn point_name(p: Point) -> &'static str {
    match p {
        Point::BeforeStep => "before-step",
        Point::AfterStep => "after-step",
        Point::SelectObjects => "select-objects",
        Point::TransformObject => "transform-object",
        Point::Verify => "verify",
    }
}

const POINTS: &[&str] = &[
    "before-step",
    "after-step",
    "select-objects",
    "transform-object",
    "verify",
];

/// One loaded hook.
struct LoadedHook {
    identity: GuestIdentity,
    pre: HookPre<RunState>,
    policy: Arc<PolicyEngine>,
    advisory: bool,
    points: Vec<String>,
    limits: Limits,
}

/// The hooks of one run, in config order.
pub struct HookSet {
    engine: Option<Engine>,
    hooks: Arc<Vec<LoadedHook>>,
}

impl HookSet {
    /// No hooks: every dispatch proceeds.
    pub fn empty() -> HookSet {
        HookSet {
            engine: None,
            hooks: Arc::new(Vec::new()),
        }
    }

    /// How many hooks there are.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Loads every hook: its component, its policy (linked with `params`) and
    /// its import check. The first problem fails the run before the guest starts,
    /// naming the hook.
    pub fn load(
        runtime: &Runtime,
        configs: &[HookConfig],
        params: &BTreeMap<String, String>,
    ) -> Result<HookSet, RunFailure> {
        let mut hooks = Vec::new();
        for c in configs {
            for p in &c.points {
                if !POINTS.contains(&p.as_str()) {
                    return Err(RunFailure::Host(anyhow::anyhow!(
                        "hook `{}`: unknown point `{p}` (points are {})",
                        c.name,
                        POINTS.join(", ")
                    )));
                }
            }
            if c.points.is_empty() {
                tracing::warn!(
                    hook = %c.name,
                    "hook `{}` names no points, so it is never called; list the ones it handles (points = [\"verify\"])",
                    c.name
                );
            }
            let guest = runtime.load_file(&c.component, Some(&c.name))?;
            let policy = PolicyEngine::load(&c.policy, params, &guest.identity)?;
            runtime.check_imports(&guest, &policy)?;
            let pre = runtime.prepare_hook(&guest)?;
            hooks.push(LoadedHook {
                identity: guest.identity,
                pre,
                policy: Arc::new(policy),
                advisory: c.advisory,
                points: c.points.clone(),
                limits: c.limits.clone().unwrap_or_else(HookConfig::default_limits),
            });
        }
        Ok(HookSet {
            engine: Some(runtime.engine().clone()),
            hooks: Arc::new(hooks),
        })
    }

    /// Calls every hook listening on the event's point and combines the
    /// outcomes (see the `hook-dispatch` WIT docs).
    async fn dispatch_event(&self, parent: &Arc<RunEnv>, event: Event) -> Result<Outcome, HostError> {
        let point = point_name(event.point);
        let Some(engine) = self.engine.clone() else {
            return Ok(Outcome::Proceed);
        };
        let mut objects = Vec::new();
        let mut replaced: Option<String> = None;
        for (i, hook) in self.hooks.iter().enumerate() {
            // Only where it is named: a hook that names no point sees no event.
            if !hook.points.iter().any(|p| p == point) {
                continue;
            }
            let name = hook.identity.name.clone();
            let env = Arc::new(RunEnv {
                guest: hook.identity.clone(),
                policy: hook.policy.clone(),
                config: crate::config::RunConfig {
                    limits: hook.limits.clone(),
                    hooks: Vec::new(),
                    ..parent.config.clone()
                },
                phase: parent.phase.clone(),
                plan: parent.plan,
                audit: parent.audit.clone(),
                clock: parent.clock.clone(),
                progress: parent.progress.clone(),
                clients: parent.clients.clone(),
                sealing: crate::capabilities::objects::seal::Sealing::Refused,
                hooks: Arc::new(NoHooks),
                plan_book: parent.plan_book.clone(),
            });
            let given = replaced.clone().unwrap_or_else(|| event.payload.clone());
            let object: Option<serde_json::Value> = serde_json::from_str(&given).ok();
            // A Secret's values only for a hook whose policy grants reading it.
            let withheld = object
                .as_ref()
                .filter(|o| payload::secret_of(o).is_some_and(|s| !may_read_secret(&hook.policy, parent, &s)));
            if let Some(o) = withheld {
                parent.audit.record(&Record::event(
                    &hook.identity,
                    &parent.phase,
                    "hook",
                    "redacted",
                    Some(format!(
                        "{point} {}/{}: the values of Secret {} are withheld: the hook's policy grants no k8s:get of it",
                        event.phase,
                        event.step,
                        o.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default()
                    )),
                ));
            }
            let ev = Event {
                payload: withheld.map_or_else(|| given.clone(), |o| payload::redact(o).to_string()),
                phase: event.phase.clone(),
                step: event.step.clone(),
                point: event.point,
            };
            let hooks = self.hooks.clone();
            let engine = engine.clone();
            // Its own task: the hook's store never nests inside the caller's fiber. Owned:
            // if the caller is dropped (its wall clock ran out), the hook stops with it.
            let task = crate::task::Owned::spawn(async move {
                let hook = &hooks[i];
                run_hook(&engine, &hook.pre, env, &ev).await
            });
            let result = match task.join().await {
                Ok(r) => r,
                Err(e) => Err(RunError::Host(anyhow::anyhow!("the hook task failed: {e}"))),
            };
            let at = format!("{point} {}/{}", event.phase, event.step);
            // A transform changes the object it was given, never into another one; values it
            // could not read go back in place of their markers.
            let result = match (result, &object) {
                (Ok(Ok(Outcome::Replaced(text))), Some(original)) if event.point == Point::TransformObject => {
                    match serde_json::from_str::<serde_json::Value>(&text) {
                        Ok(mut m) => match payload::same_object(original, &m) {
                            Ok(()) => {
                                if withheld.is_some() {
                                    payload::unredact(&mut m, original);
                                }
                                Ok(Ok(Outcome::Replaced(m.to_string())))
                            }
                            Err(why) => Ok(Err(crate::capabilities::bindings::WitError::Invalid(why))),
                        },
                        // Not JSON: the guest says so when it reads it.
                        Err(_) => Ok(Ok(Outcome::Replaced(text))),
                    }
                }
                (other, _) => other,
            };
            let failure = match result {
                Ok(Ok(outcome)) => {
                    let (what, msg) = match &outcome {
                        Outcome::Proceed => ("proceed", None),
                        Outcome::Veto(why) => ("veto", Some(why.clone())),
                        Outcome::Objects(v) => ("objects", Some(format!("{} objects", v.len()))),
                        Outcome::Replaced(_) => ("replaced", None),
                    };
                    parent.audit.record(&Record::event(
                        &hook.identity,
                        &parent.phase,
                        "hook",
                        what,
                        Some(format!("{at}{}", msg.map(|m| format!(": {m}")).unwrap_or_default())),
                    ));
                    match outcome {
                        Outcome::Proceed => None,
                        Outcome::Veto(why) if hook.advisory => {
                            tracing::warn!(hook = %name, %at, "advisory hook would veto: {why}");
                            None
                        }
                        Outcome::Veto(why) => return Ok(Outcome::Veto(format!("hook `{name}` vetoed ({at}): {why}"))),
                        Outcome::Objects(v) => {
                            objects.extend(v);
                            None
                        }
                        Outcome::Replaced(m) => {
                            replaced = Some(m);
                            None
                        }
                    }
                }
                Ok(Err(e)) => Some(HostError::from_wit(e, |m| format!("hook `{name}` ({at}): {m}"))),
                Err(e) => Some(HostError::Other(format!("hook `{name}` ({at}) failed: {e}"))),
            };
            if let Some(err) = failure {
                parent.audit.record(&Record::event(
                    &hook.identity,
                    &parent.phase,
                    "hook",
                    if hook.advisory { "advisory-failure" } else { "failed" },
                    Some(err.to_string()),
                ));
                if hook.advisory {
                    tracing::warn!(hook = %name, %at, "advisory hook failed; going on: {err}");
                    continue;
                }
                return Err(err);
            }
        }
        Ok(match (replaced, objects.is_empty()) {
            (Some(m), _) => Outcome::Replaced(m),
            (None, false) => Outcome::Objects(objects),
            (None, true) => Outcome::Proceed,
        })
    }
}

impl HookDispatch for HookSet {
    fn dispatch<'a>(&'a self, env: &'a Arc<RunEnv>, event: Event) -> BoxFuture<'a, Result<Outcome, HostError>> {
        Box::pin(self.dispatch_event(env, event))
    }
}

/// Whether `policy` lets its hook read `secret` (namespace, name) on any cluster of the run:
/// the grant a hook needs to see a Secret's values in an event.
fn may_read_secret(policy: &PolicyEngine, parent: &RunEnv, secret: &(Option<String>, String)) -> bool {
    let ctx = CallContext {
        plan: parent.plan,
        phase: parent.phase.clone(),
        ..CallContext::default()
    };
    parent.config.clusters.keys().any(|alias| {
        let resource = ResourceRef::K8s {
            cluster: alias.clone(),
            group: String::new(),
            version: "v1".into(),
            kind: "Secret".into(),
            namespace: secret.0.clone(),
            name: Some(secret.1.clone()),
        };
        crate::policy::desk::decide_with_room(|| policy.authorize(Action::K8sGet, &resource, &ctx)).allowed
    })
}
