//! One guest run: config, policy, component → result. Shared by the CLI, the
//! DR commands and the tests so all exercise exactly the same path. The
//! component and the policy come from files or from memory (the embedded
//! stock guest and policy).

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use super::Runtime;
use super::error::RunFailure;
use super::hooks::HookSet;
use crate::audit::{Audit, AuditKey, Record};
use crate::capabilities::Clients;
use crate::capabilities::env::{Clock, RunEnv};
use crate::capabilities::objects::seal::Sealing;
use crate::config::RunConfig;
use crate::plan::PlanBook;
use crate::policy::{GuestIdentity, Ownership, PolicyEngine};
use crate::progress::{LogProgress, ProgressSink};

/// Where a component comes from.
#[derive(Debug, Clone)]
pub enum ComponentSource {
    /// A `.wasm` file.
    File(PathBuf),
    /// Bytes in memory (e.g. the embedded stock guest).
    Bytes {
        /// The component.
        bytes: Cow<'static, [u8]>,
        /// What to call it in messages.
        origin: String,
        /// The bytes' SHA-256 (hex) when it was taken as they were embedded at build time;
        /// `None` hashes them at load.
        sha256: Option<&'static str>,
    },
}

impl From<PathBuf> for ComponentSource {
    fn from(path: PathBuf) -> Self {
        ComponentSource::File(path)
    }
}

/// Where a policy comes from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// A `.cedar` file.
    File(PathBuf),
    /// Policy text in memory (e.g. the embedded stock policy).
    Text {
        /// The Cedar text.
        text: Cow<'static, str>,
        /// What to call it in messages.
        origin: String,
    },
}

impl From<PathBuf> for PolicySource {
    fn from(path: PathBuf) -> Self {
        PolicySource::File(path)
    }
}

/// What to run.
pub struct RunRequest {
    /// The component.
    pub component: ComponentSource,
    /// The guest's name (policy principal); default: the file stem (`guest`
    /// for bytes).
    pub name: Option<String>,
    /// The Cedar policy.
    pub policy: PolicySource,
    /// The run config (already loaded, params applied).
    pub config: RunConfig,
    /// The phase.
    pub phase: String,
    /// Phase arguments.
    pub args: Vec<(String, String)>,
    /// Plan mode.
    pub plan: bool,
    /// Audit trail file, if any.
    pub audit: Option<PathBuf>,
    /// The key that signs the trail's checkpoint at the end of the run.
    pub audit_key: Option<AuditKey>,
    /// What the run's owner owns in shared namespaces, resolved by the runner before the run
    /// (see [`Ownership`]); the default owns nothing.
    pub ownership: Ownership,
    /// The plan the run records (with `plan`) or keeps to (`--apply`); see [`crate::plan`].
    pub plan_book: Option<Arc<PlanBook>>,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// The guest returned its JSON summary.
    Success(String),
    /// The guest returned an error value.
    GuestError(crate::capabilities::bindings::WitError),
}

/// Options that tests and embedders may change.
pub struct RunOptions {
    /// Where compiled components are cached.
    pub cache_dir: Option<PathBuf>,
    /// Where progress goes.
    pub progress: Arc<dyn ProgressSink>,
    /// Clients (explicit AWS credentials for tests and drills).
    pub clients: Clients,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            cache_dir: super::cache::default_dir(),
            progress: Arc::new(LogProgress),
            clients: Clients::default(),
        }
    }
}

/// Loads the policy and the component, checks imports, and runs the phase.
pub async fn run(runtime: &Runtime, req: RunRequest, opts: RunOptions) -> Result<Outcome, RunFailure> {
    let guest = match &req.component {
        ComponentSource::File(path) => runtime.load_file(path, req.name.as_deref())?,
        ComponentSource::Bytes { bytes, origin, sha256 } => {
            let name = req.name.as_deref().unwrap_or("guest");
            match sha256 {
                Some(sha256) => runtime.load_embedded(bytes, sha256, name, origin)?,
                None => runtime.load_bytes(bytes, name, origin)?,
            }
        }
    };
    let policy = match &req.policy {
        PolicySource::File(path) => PolicyEngine::load(path, &req.config.params, &guest.identity)?,
        PolicySource::Text { text, origin } => {
            PolicyEngine::from_source(text, origin, &req.config.params, &guest.identity)?
        }
    };
    let policy = policy.with_ownership(req.ownership.clone());
    let audit = match &req.audit {
        Some(p) => Audit::to_file(p, req.audit_key.clone())
            .map_err(|e| anyhow::anyhow!("cannot open audit trail {}: {e}", p.display()))?,
        None => Audit::disabled(),
    };
    if let Err(e) = runtime.check_imports(&guest, &policy) {
        refused(&audit, &guest.identity, &req.phase, "load", "refused", &e);
        return Err(e.into());
    }
    let pre = runtime.prepare(&guest)?;
    let hooks = match HookSet::load(runtime, &req.config.hooks, &req.config.params) {
        Ok(h) => h,
        Err(e) => {
            refused(&audit, &guest.identity, &req.phase, "load-hooks", "refused", &e);
            return Err(e);
        }
    };
    if !req.ownership.is_empty() {
        // Once per run: what `Ferry::Owner` grants reach, so a reviewer of the trail sees it.
        let owned = serde_json::to_string(&req.ownership).unwrap_or_default();
        if let Err(why) = audit.try_record(&Record::event(
            &guest.identity,
            &req.phase,
            "ownership",
            "ok",
            Some(owned),
        )) {
            return Err(anyhow::anyhow!("the run does not start: {why}").into());
        }
    }
    if let Some(book) = &req.plan_book {
        let inputs = crate::plan::inputs(
            &guest.identity,
            policy.sha256(),
            &req.config,
            &req.phase,
            &req.args,
            crate::audit::humantime_rfc3339(std::time::SystemTime::now()),
        );
        if let Err(e) = book.start(inputs) {
            refused(&audit, &guest.identity, &req.phase, "plan", "refused", &e);
            return Err(e.into());
        }
    }
    if let Err(why) = audit.try_record(&Record::event(&guest.identity, &req.phase, "load", "ok", None)) {
        // Nothing runs that the trail could not show.
        return Err(anyhow::anyhow!("the run does not start: {why}").into());
    }
    let sealing = match &req.audit_key {
        Some(k) => Sealing::Key(k.clone()),
        None => Sealing::Unsigned,
    };
    let env = Arc::new(RunEnv {
        hooks: Arc::new(hooks),
        sealing,
        guest: guest.identity.clone(),
        policy: Arc::new(policy),
        clock: Clock::new(req.config.clock.scale),
        config: req.config,
        phase: req.phase.clone(),
        plan: req.plan,
        audit: Arc::new(audit),
        progress: opts.progress,
        clients: Arc::new(opts.clients),
        plan_book: req.plan_book.clone(),
    });
    if let Some(approved) = req.plan_book.as_ref().and_then(|b| b.approved()) {
        // Before anything runs: a plan whose objects are new or gone since it was made is stale.
        let changes = crate::capabilities::k8s::reread::changed_since(&env, &approved.plan.reads).await;
        if !changes.is_empty() {
            let e = crate::plan::PlanError::Stale {
                path: approved.path.clone(),
                changes,
            };
            refused(&env.audit, &env.guest, &req.phase, "plan", "stale", &e);
            return Err(e.into());
        }
    }
    let result = runtime.run(&pre, env.clone(), &req.phase, req.args).await;
    let (outcome, message) = match &result {
        Ok(Ok(_)) => ("ok", None),
        Ok(Err(e)) => ("guest-error", Some(format!("{e:?}"))),
        Err(e) => ("failed", Some(e.to_string())),
    };
    env.audit
        .record(&Record::event(&env.guest, &req.phase, "run", outcome, message));
    if let Some(mac) = env.audit.checkpoint(&env.guest, &req.phase) {
        // A copy of the checkpoint outside the trail: a trail cut after it no longer ends there.
        tracing::info!(mac = %mac, "audit trail signed");
    }
    match result? {
        Ok(json) => Ok(Outcome::Success(json)),
        Err(e) => Ok(Outcome::GuestError(e)),
    }
}

/// A run refused before the guest ran: the reason recorded in the trail, which is then signed.
fn refused(
    audit: &Audit,
    guest: &GuestIdentity,
    phase: &str,
    kind: &'static str,
    outcome: &'static str,
    why: &dyn std::fmt::Display,
) {
    audit.record(&Record::event(guest, phase, kind, outcome, Some(why.to_string())));
    audit.checkpoint(guest, phase);
}
