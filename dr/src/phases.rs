//! The disaster-recovery job: run the phases of the DR guest (the embedded
//! stock `hosted-cluster-dr` by default) one at a time, or all of them in
//! order ([`migrate`]).
//!
//! Each phase is its own guest run: a fresh store, its own limits, its own
//! audit records. The guest is idempotent per phase (a phase that already
//! happened reports `"already_done": true`), so a migration that stopped is
//! resumed by running the remaining phases again.
//!
//! The guest contract: `run(phase, args)` returns a JSON object with at
//! least `phase`, `already_done` and `steps` (`[{"step", "result"}]`); a phase
//! stopped on purpose by `stop_after=<step>` says so with
//! `"stopped_after": "<step>"`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use ferry::capabilities::Clients;
use ferry::config::RunConfig;
use ferry::progress::ProgressSink;
use ferry::runtime::Runtime;
use ferry::runtime::run::{ComponentSource, Outcome, PolicySource, RunOptions, RunRequest};
use ferry::runtime::{Exit, RunFailure};

/// A phase of the DR guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Back the hosted cluster up (pause, snapshot etcd to S3, render objects).
    Backup,
    /// Restore it on the destination.
    Restore,
    /// Tear the source copy down.
    Teardown,
    /// Unpause, clean up, check health.
    Finish,
    /// Return the source to service after a backup that will not be restored (not part of a
    /// migration; `ferry abort`).
    Abort,
    /// Read where a migration stands (changes nothing): the first phase not done, so that
    /// `ferry migrate` run again carries on from there.
    Status,
}

impl Phase {
    /// Every phase of a migration, in order.
    pub const ALL: [Phase; 4] = [Phase::Backup, Phase::Restore, Phase::Teardown, Phase::Finish];

    /// Every phase the guest runs, [`Phase::Abort`] and [`Phase::Status`] included.
    pub const EVERY: [Phase; 6] = [
        Phase::Backup,
        Phase::Restore,
        Phase::Teardown,
        Phase::Finish,
        Phase::Abort,
        Phase::Status,
    ];

    /// The phase name the guest receives.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Backup => "backup",
            Phase::Restore => "restore",
            Phase::Teardown => "teardown",
            Phase::Finish => "finish",
            Phase::Abort => "abort",
            Phase::Status => "status",
        }
    }

    /// The parameter naming the management cluster this phase changes (`source` or
    /// `destination`), where its lease is taken; `None` for finish, which changes only the
    /// hosted cluster.
    pub fn changes_cluster(self) -> Option<&'static str> {
        match self {
            Phase::Backup | Phase::Teardown | Phase::Abort => Some("source"),
            Phase::Restore => Some("destination"),
            Phase::Finish | Phase::Status => None,
        }
    }

    /// The parameter naming the management cluster whose objects in the shared namespace
    /// this phase reads as the hosted cluster's own: the one it changes; for finish the
    /// destination, where the cluster now lives; for status the source, where ferry's marker
    /// is.
    pub fn owner_cluster(self) -> &'static str {
        match self {
            Phase::Status => "source",
            other => other.changes_cluster().unwrap_or("destination"),
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::EVERY
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("`{s}` is not a phase (backup, restore, teardown, finish, abort, status)"))
    }
}

/// Arguments of a phase.
#[derive(Debug, Clone, Default)]
pub struct PhaseArgs {
    /// `force=true`: tear down without a verified-healthy destination, or abort although the
    /// destination has the hosted cluster.
    pub force: bool,
    /// `stop_after=<step>`: stop right after that step (rehearsing interruptions).
    pub stop_after: Option<String>,
    /// `backup_id=<id>`: restore that backup.
    pub backup_id: Option<String>,
    /// Any other `key=value` argument.
    pub extra: Vec<(String, String)>,
}

impl PhaseArgs {
    /// The `(key, value)` list the guest receives.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.force {
            out.push(("force".to_string(), "true".to_string()));
        }
        if let Some(s) = &self.stop_after {
            out.push(("stop_after".to_string(), s.clone()));
        }
        if let Some(b) = &self.backup_id {
            out.push(("backup_id".to_string(), b.clone()));
        }
        out.extend(self.extra.iter().cloned());
        out
    }
}

/// Which guest and policy run the phases.
#[derive(Debug, Clone)]
pub struct GuestChoice {
    /// The component.
    pub component: ComponentSource,
    /// The guest's name (policy principal); default: the file stem.
    pub name: Option<String>,
    /// The policy.
    pub policy: PolicySource,
}

#[cfg(feature = "stock-guest")]
impl GuestChoice {
    /// The embedded stock guest and policy.
    pub fn stock() -> Self {
        GuestChoice {
            component: ComponentSource::Bytes {
                bytes: std::borrow::Cow::Borrowed(crate::stock::guest_wasm()),
                origin: crate::stock::GUEST_ORIGIN.to_string(),
                sha256: Some(crate::stock::guest_sha256()),
            },
            name: Some(crate::stock::GUEST_NAME.to_string()),
            policy: PolicySource::Text {
                text: std::borrow::Cow::Borrowed(crate::stock::policy_text()),
                origin: crate::stock::POLICY_ORIGIN.to_string(),
            },
        }
    }
}

#[cfg(feature = "stock-guest")]
impl Default for GuestChoice {
    fn default() -> Self {
        Self::stock()
    }
}

/// How phases run.
#[derive(Clone)]
pub struct DrOptions {
    /// The guest and policy.
    pub guest: GuestChoice,
    /// Plan mode.
    pub plan: bool,
    /// Audit trail (appended to by every phase).
    pub audit: Option<PathBuf>,
    /// Signs each phase's checkpoint in the audit trail.
    pub audit_key: Option<ferry::audit::AuditKey>,
    /// Where progress goes.
    pub progress: Arc<dyn ProgressSink>,
    /// Explicit AWS credentials (drills, tests); otherwise the default chain.
    pub aws_credentials: Option<aws_credential_types::Credentials>,
    /// Where compiled components are cached.
    pub cache_dir: Option<PathBuf>,
    /// Take the hosted cluster's lease even while another ferry holds it (audited).
    pub break_lease: bool,
    /// The plan the phase records (`--plan --plan-out`) or keeps to (`--apply`).
    pub plan_book: Option<Arc<ferry::plan::PlanBook>>,
}

#[cfg(feature = "stock-guest")]
impl Default for DrOptions {
    fn default() -> Self {
        DrOptions {
            guest: GuestChoice::stock(),
            plan: false,
            audit: None,
            audit_key: None,
            progress: Arc::new(ferry::progress::LogProgress),
            aws_credentials: None,
            cache_dir: ferry::runtime::cache::default_dir(),
            break_lease: false,
            plan_book: None,
        }
    }
}

impl DrOptions {
    fn run_options(&self) -> RunOptions {
        RunOptions {
            cache_dir: self.cache_dir.clone(),
            progress: self.progress.clone(),
            clients: match &self.aws_credentials {
                Some(c) => Clients::with_aws_credentials(c.clone()),
                None => Clients::default(),
            },
        }
    }
}

/// How a phase the guest ran ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum PhaseOutcome {
    /// The guest returned its summary.
    Succeeded {
        /// The summary (a JSON string, when the guest returned something else than JSON).
        summary: Value,
    },
    /// The guest returned an error.
    GuestFailed {
        /// The WIT error kind: `invalid`, `conflict`, `unavailable`, ...
        kind: String,
        /// The guest's message.
        message: String,
    },
}

/// One phase's result.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// The phase.
    pub phase: Phase,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: PhaseOutcome,
    /// How long it took, in milliseconds.
    pub elapsed_ms: u64,
}

impl PhaseReport {
    /// True when the guest returned a summary.
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, PhaseOutcome::Succeeded { .. })
    }

    /// The summary, when the guest returned one.
    pub fn summary(&self) -> Option<&Value> {
        match &self.outcome {
            PhaseOutcome::Succeeded { summary } => Some(summary),
            PhaseOutcome::GuestFailed { .. } => None,
        }
    }

    /// `(step, result)` of each step of the summary.
    pub fn steps(&self) -> Vec<(String, String)> {
        let Some(steps) = self.summary().and_then(|s| s.get("steps")).and_then(Value::as_array) else {
            return Vec::new();
        };
        steps
            .iter()
            .map(|s| {
                let text = |k: &str| match s.get(k) {
                    Some(Value::String(v)) => v.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                };
                (text("step"), text("result"))
            })
            .collect()
    }

    /// The summary's `already_done`.
    pub fn already_done(&self) -> bool {
        self.summary()
            .and_then(|s| s.get("already_done"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// How long this phase kept the hosted cluster's API down (`api_down_ms`, on the run's
    /// clock), when the API was down during it.
    pub fn api_down_ms(&self) -> Option<u64> {
        self.summary()
            .and_then(|s| s.get("api_down_ms"))
            .and_then(Value::as_u64)
    }

    /// The API's whole downtime, from backup stopping the writers to the destination serving
    /// a write (`downtime_ms` of restore's summary).
    pub fn downtime_ms(&self) -> Option<u64> {
        self.summary()
            .and_then(|s| s.get("downtime_ms"))
            .and_then(Value::as_u64)
    }

    /// The step the phase stopped after on request (`stop_after`), if it did.
    pub fn stopped_after(&self) -> Option<&str> {
        self.summary()
            .and_then(|s| s.get("stopped_after"))
            .and_then(Value::as_str)
    }

    /// The process exit code: success, or the guest's failure.
    pub fn exit_code(&self) -> i32 {
        if self.succeeded() {
            Exit::Success
        } else {
            Exit::GuestFailed
        }
        .code()
    }

    /// A few lines for a person: the outcome and each step.
    pub fn to_text(&self) -> String {
        let secs = self.elapsed_ms as f64 / 1000.0;
        let mut out = match &self.outcome {
            PhaseOutcome::Succeeded { .. } => {
                let mut head = format!("{}: ok in {secs:.1} s", self.phase);
                if self.already_done() {
                    head.push_str(" (already done)");
                }
                if let Some(step) = self.stopped_after() {
                    head.push_str(&format!(" (stopped after step `{step}` as asked)"));
                }
                head
            }
            PhaseOutcome::GuestFailed { kind, message } => {
                format!("{}: FAILED after {secs:.1} s ({kind}): {message}", self.phase)
            }
        };
        for (step, result) in self.steps() {
            out.push_str(&format!("\n  {step}: {result}"));
        }
        if let Some(down) = self.api_down_ms() {
            out.push_str(&format!(
                "\n  the hosted cluster's API was down {} during this phase",
                human_ms(down)
            ));
        }
        if let Some(total) = self.downtime_ms() {
            out.push_str(&format!(
                "\n  the hosted cluster's API was down {} in all, from backup stopping the writers to the \
                 destination serving a write",
                human_ms(total)
            ));
        }
        // The steps and messages are the guest's words.
        ferry::progress::terminal_safe(&out, true).into_owned()
    }
}

/// Runs one phase with a fresh runtime. See [`run_phase_with`].
pub async fn run_phase(
    config: &RunConfig,
    phase: Phase,
    args: &PhaseArgs,
    opts: &DrOptions,
) -> Result<PhaseReport, RunFailure> {
    let runtime = Runtime::new(opts.cache_dir.clone()).map_err(RunFailure::Host)?;
    run_phase_with(&runtime, config, phase, args, opts).await
}

/// Runs one phase of the guest in its own store under the config's limits.
/// `Ok` also when the guest returned an error (see [`PhaseReport::succeeded`]);
/// `Err` when the run itself failed (policy, imports, traps, limits, host).
pub async fn run_phase_with(
    runtime: &Runtime,
    config: &RunConfig,
    phase: Phase,
    args: &PhaseArgs,
    opts: &DrOptions,
) -> Result<PhaseReport, RunFailure> {
    let started = Instant::now();
    // The lease and the run share one set of clients: one kube client per cluster per phase.
    let run_options = opts.run_options();
    // Not for plans (they change nothing) nor for finish (it touches the hosted cluster only).
    let lease = match phase.changes_cluster() {
        Some(param) if !opts.plan => {
            let cluster = config.params.get(param).map(String::as_str).unwrap_or(param);
            Some(take_lease(config, cluster, &run_options.clients, opts).await?)
        }
        _ => None,
    };
    // What the hosted cluster owns where the phase works (finish: the destination, where it
    // now lives), fixed before the guest starts.
    let owner_cluster = phase.owner_cluster();
    let owner_alias = config
        .params
        .get(owner_cluster)
        .map(String::as_str)
        .unwrap_or(owner_cluster);
    let backup_id = args
        .backup_id
        .as_deref()
        .or(config.params.get("backup_id").map(String::as_str));
    let ownership = crate::owned::resolve(
        config,
        &run_options.clients,
        owner_alias,
        matches!(phase, Phase::Restore | Phase::Teardown),
        backup_id,
        opts.audit_key.as_ref(),
    )
    .await;
    let ownership = match ownership {
        Ok(o) => o,
        Err(e) => {
            if let Some(held) = lease {
                held.release().await;
            }
            return Err(RunFailure::Host(anyhow::anyhow!(e)));
        }
    };
    let req = RunRequest {
        component: opts.guest.component.clone(),
        name: opts.guest.name.clone(),
        policy: opts.guest.policy.clone(),
        config: config.clone(),
        phase: phase.name().to_string(),
        args: args.to_pairs(),
        plan: opts.plan,
        audit: opts.audit.clone(),
        audit_key: opts.audit_key.clone(),
        ownership,
        plan_book: opts.plan_book.clone(),
    };
    let outcome = ferry::runtime::run::run(runtime, req, run_options).await;
    if let Some(held) = lease {
        held.release().await;
    }
    let outcome = match outcome? {
        Outcome::Success(json) => PhaseOutcome::Succeeded {
            summary: serde_json::from_str(&json).unwrap_or(Value::String(json)),
        },
        Outcome::GuestError(e) => {
            let (kind, message) = wit_error_parts(e);
            PhaseOutcome::GuestFailed { kind, message }
        }
    };
    Ok(PhaseReport {
        phase,
        outcome,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Takes the lease of the hosted cluster on `cluster`, recording in the audit trail that it
/// did, and whose live lease it broke if `--break-lease` did.
async fn take_lease(
    config: &RunConfig,
    cluster: &str,
    clients: &Clients,
    opts: &DrOptions,
) -> Result<crate::lease::Held, RunFailure> {
    let bad = |m: String| RunFailure::Host(anyhow::anyhow!(m));
    let ns = config.params.get("hc_namespace").cloned().unwrap_or_default();
    let hc = config.params.get("hc_name").cloned().unwrap_or_default();
    let name = crate::lease::lease_name(&ns, &hc);
    let client = clients.kube(config, cluster).await.map_err(|e| bad(e.to_string()))?;
    let holder = crate::lease::holder_identity();
    let held = crate::lease::acquire(client, cluster, &name, &holder, opts.break_lease)
        .await
        .map_err(|e| bad(e.to_string()))?;
    if let Some(path) = &opts.audit {
        let guest = ferry::policy::GuestIdentity {
            name: opts.guest.name.clone().unwrap_or_default(),
            sha256: String::new(),
        };
        let message = match &held.broke {
            Some(previous) => format!(
                "took lease {name} on `{cluster}` as {holder}, BREAKING the live lease of {previous} (--break-lease)"
            ),
            None => format!("took lease {name} on `{cluster}` as {holder}"),
        };
        let audit = ferry::audit::Audit::to_file(path, opts.audit_key.clone())
            .map_err(|e| bad(format!("cannot write the audit trail {}: {e}", path.display())))?;
        audit
            .try_record(&ferry::audit::Record::event(
                &guest,
                "lease",
                "lease",
                "ok",
                Some(message),
            ))
            .map_err(bad)?;
    }
    if let Some(previous) = &held.broke {
        tracing::warn!(lease = %name, %previous, "broke another ferry's live lease (--break-lease)");
    }
    Ok(held)
}

/// The kind and message of a guest's WIT error.
pub fn wit_error_parts(e: ferry::capabilities::bindings::WitError) -> (String, String) {
    let mut message = String::new();
    let kind = ferry::capabilities::HostError::from_wit(e, |m| {
        message = m.clone();
        m
    })
    .kind();
    (kind.to_string(), message)
}

/// How a phase of a migration ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum PhaseResult {
    /// The guest completed the phase.
    Completed(PhaseReport),
    /// The guest stopped after a step on request (`stop_after`).
    Stopped(PhaseReport),
    /// The guest returned an error.
    GuestFailed(PhaseReport),
    /// The run failed before or around the guest.
    RunFailed {
        /// The phase.
        phase: Phase,
        /// The error.
        message: String,
        /// Its exit code.
        exit_code: i32,
    },
}

impl PhaseResult {
    /// The phase.
    pub fn phase(&self) -> Phase {
        match self {
            PhaseResult::Completed(r) | PhaseResult::Stopped(r) | PhaseResult::GuestFailed(r) => r.phase,
            PhaseResult::RunFailed { phase, .. } => *phase,
        }
    }

    /// Whether the phase failed (the guest's error or the run's); a phase stopped as asked
    /// did not.
    pub fn failed(&self) -> bool {
        matches!(self, PhaseResult::GuestFailed(_) | PhaseResult::RunFailed { .. })
    }

    /// The guest's report, when it ran to an answer.
    pub fn report(&self) -> Option<&PhaseReport> {
        match self {
            PhaseResult::Completed(r) | PhaseResult::Stopped(r) | PhaseResult::GuestFailed(r) => Some(r),
            PhaseResult::RunFailed { .. } => None,
        }
    }
}

/// Called when a phase of a migration starts (`None`) or ends (`Some`).
pub type PhaseHook = Arc<dyn Fn(Phase, Option<&PhaseResult>) + Send + Sync>;

/// Options of [`migrate`].
#[derive(Clone, Default)]
pub struct MigrateOptions {
    /// Arguments: `force` goes to `teardown`, `backup_id` to `restore`,
    /// `stop_after` and `extra` to every phase (a guest ignores a step name
    /// that is not one of the phase's).
    pub args: PhaseArgs,
    /// Skip the phases before this one (resuming).
    pub from: Option<Phase>,
    /// The command that started the migration, without `--from` and
    /// `--stop-after`, used to say how to resume (default `ferry migrate`).
    pub command: Option<Vec<String>>,
    /// Told when each phase starts and ends (live output).
    pub on_phase: Option<PhaseHook>,
}

impl fmt::Debug for MigrateOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrateOptions")
            .field("args", &self.args)
            .field("from", &self.from)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

/// The result of [`migrate`].
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    /// Each phase that ran, in order.
    pub phases: Vec<PhaseResult>,
    /// Phases that completed.
    pub completed: Vec<Phase>,
    /// The phase that failed, if one did.
    pub failed: Option<Phase>,
    /// The phase that stopped on request, if one did.
    pub stopped: Option<Phase>,
    /// The command to resume with, unless everything completed.
    pub resume_command: Option<String>,
    /// The command that returns the source to service instead, while the migration stopped
    /// before teardown (backup or restore).
    pub abort_command: Option<String>,
    /// Where a migration run without `--from` found it stood, and why.
    pub resumed: Option<Resumed>,
}

/// Where `ferry migrate` found a migration standing before it ran anything.
#[derive(Debug, Clone, Serialize)]
pub struct Resumed {
    /// The first phase not done (`None`: every phase is done).
    pub at: Option<Phase>,
    /// What showed it, in the guest's words (or why it could not be read).
    pub why: String,
}

/// `1m 42.3s`, `8.1s`.
pub fn human_ms(ms: u64) -> String {
    let secs = ms as f64 / 1000.0;
    if secs >= 60.0 {
        format!("{}m {:.1}s", (secs / 60.0).floor(), secs % 60.0)
    } else {
        format!("{secs:.1}s")
    }
}

impl MigrateReport {
    /// The hosted cluster's API downtime of the migration, from backup stopping the writers
    /// to the destination serving a write, when restore measured it in this run.
    pub fn downtime_ms(&self) -> Option<u64> {
        self.phases
            .iter()
            .filter_map(PhaseResult::report)
            .find_map(PhaseReport::downtime_ms)
    }

    /// How long each phase of this run kept the API down.
    pub fn api_down_by_phase(&self) -> Vec<(Phase, u64)> {
        self.phases
            .iter()
            .filter_map(PhaseResult::report)
            .filter_map(|r| r.api_down_ms().map(|d| (r.phase, d)))
            .collect()
    }

    /// True when every phase completed.
    pub fn succeeded(&self) -> bool {
        self.failed.is_none() && self.stopped.is_none()
    }

    /// The process exit code (0, or the failed phase's).
    pub fn exit_code(&self) -> i32 {
        self.phases
            .iter()
            .find_map(|p| match p {
                PhaseResult::GuestFailed(_) => Some(Exit::GuestFailed.code()),
                PhaseResult::RunFailed { exit_code, .. } => Some(*exit_code),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// Why the failed phase failed: the guest's error kind and message, or (no kind) why the
    /// run itself failed; `None` when no phase failed.
    pub fn failure(&self) -> Option<(Option<&str>, &str)> {
        let failed = self.failed?;
        match self.phases.iter().find(|p| p.phase() == failed)? {
            PhaseResult::GuestFailed(r) => match &r.outcome {
                PhaseOutcome::GuestFailed { kind, message } => Some((Some(kind.as_str()), message.as_str())),
                PhaseOutcome::Succeeded { .. } => None,
            },
            PhaseResult::RunFailed { message, .. } => Some((None, message.as_str())),
            _ => None,
        }
    }

    /// What happened, for a person: completed phases, the failure, and how to resume.
    pub fn message(&self) -> String {
        let done = if self.completed.is_empty() {
            "none".to_string()
        } else {
            self.completed.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
        };
        let resume = self.resume_command.as_deref().unwrap_or("ferry migrate");
        let abort = self
            .abort_command
            .as_deref()
            .map(|a| format!("\nor, to return the source to service instead (it stays paused until then):\n  {a}"))
            .unwrap_or_default();
        if let Some(failed) = self.failed {
            let why = match self.failure() {
                Some((Some(kind), message)) => format!(
                    "the guest reported {kind}: {}",
                    ferry::progress::terminal_safe(message, true)
                ),
                Some((None, message)) => message.to_string(),
                None => String::new(),
            };
            format!(
                "migration stopped: phase `{failed}` failed: {why}\ncompleted phases: {done}\n\
                 fix the cause, then resume with:\n  {resume}{abort}"
            )
        } else if let Some(stopped) = self.stopped {
            format!(
                "migration paused as asked during phase `{stopped}`\ncompleted phases: {done}\n\
                 resume with:\n  {resume}{abort}"
            )
        } else {
            let resumed = match &self.resumed {
                Some(Resumed { at: None, why }) => format!(" (nothing left to do: {why})"),
                Some(Resumed { at: Some(at), why }) if *at != Phase::Backup => {
                    format!(" (resumed at {at}: {why})")
                }
                _ => String::new(),
            };
            let downtime = match self.downtime_ms() {
                Some(total) => {
                    let parts: Vec<String> = self
                        .api_down_by_phase()
                        .iter()
                        .map(|(p, d)| format!("{p} {}", human_ms(*d)))
                        .collect();
                    format!(
                        "\nthe hosted cluster's API was down {} ({})",
                        human_ms(total),
                        parts.join(", ")
                    )
                }
                None => String::new(),
            };
            format!("migration complete: {done}{resumed}{downtime}")
        }
    }
}

/// `ferry migrate --site SITE`: the words a person runs again to resume a migration of that
/// site (a fleet member's adds its names).
pub fn migrate_command(site: &std::path::Path) -> Vec<String> {
    vec![
        "ferry".to_string(),
        "migrate".to_string(),
        "--site".to_string(),
        site.display().to_string(),
    ]
}

/// Quotes a word for a POSIX shell when needed: the commands ferry prints for a person to
/// run (resume, abort, `ferry lab up`'s) paste as they are.
pub fn shell_word(w: &str) -> String {
    if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Runs backup → restore → teardown → finish (from `opts.from`), each in its
/// own run, stopping at the first failure (or requested stop).
pub async fn migrate(config: &RunConfig, opts: &DrOptions, mopts: &MigrateOptions) -> MigrateReport {
    match Runtime::new(opts.cache_dir.clone()) {
        Ok(runtime) => migrate_with(&runtime, config, opts, mopts).await,
        Err(e) => {
            let phase = mopts.from.unwrap_or(Phase::Backup);
            MigrateReport {
                phases: vec![PhaseResult::RunFailed {
                    phase,
                    message: format!("{e:#}"),
                    exit_code: Exit::HostFailed.code(),
                }],
                completed: Vec::new(),
                failed: Some(phase),
                stopped: None,
                resume_command: Some(resume_command(mopts, phase)),
                abort_command: abort_command(mopts, phase),
                resumed: None,
            }
        }
    }
}

/// [`migrate`] in a runtime shared with other migrations (a fleet's members).
pub async fn migrate_with(
    runtime: &Runtime,
    config: &RunConfig,
    opts: &DrOptions,
    mopts: &MigrateOptions,
) -> MigrateReport {
    let mut report = MigrateReport {
        phases: Vec::new(),
        completed: Vec::new(),
        failed: None,
        stopped: None,
        resume_command: None,
        abort_command: None,
        resumed: None,
    };
    let start = match mopts.from {
        Some(from) => from,
        // Not in a plan: a plan of backup is what a plan of a migration is.
        None if opts.plan => Phase::Backup,
        None => {
            let found = locate(runtime, config, opts, mopts).await;
            let at = found.at;
            report.resumed = Some(found);
            match at {
                Some(at) => at,
                None => return report,
            }
        }
    };
    for phase in Phase::ALL.into_iter().skip_while(|p| *p != start) {
        let mut args = PhaseArgs {
            force: false,
            stop_after: mopts.args.stop_after.clone(),
            backup_id: None,
            extra: mopts.args.extra.clone(),
        };
        match phase {
            Phase::Teardown => args.force = mopts.args.force,
            Phase::Restore => args.backup_id = mopts.args.backup_id.clone(),
            _ => {}
        }
        if let Some(hook) = &mopts.on_phase {
            hook(phase, None);
        }
        let result = match run_phase_with(runtime, config, phase, &args, opts).await {
            Ok(r) if !r.succeeded() => PhaseResult::GuestFailed(r),
            Ok(r) if r.stopped_after().is_some() => PhaseResult::Stopped(r),
            Ok(r) => PhaseResult::Completed(r),
            Err(e) => PhaseResult::RunFailed {
                phase,
                message: e.to_string(),
                exit_code: e.exit_code(),
            },
        };
        let next = match &result {
            PhaseResult::Completed(_) => {
                report.completed.push(phase);
                None
            }
            PhaseResult::Stopped(_) => {
                report.stopped = Some(phase);
                Some(phase)
            }
            PhaseResult::GuestFailed(_) | PhaseResult::RunFailed { .. } => {
                report.failed = Some(phase);
                Some(phase)
            }
        };
        if let Some(hook) = &mopts.on_phase {
            hook(phase, Some(&result));
        }
        report.phases.push(result);
        if let Some(resume_at) = next {
            report.resume_command = Some(resume_command(mopts, resume_at));
            report.abort_command = abort_command(mopts, resume_at);
            break;
        }
    }
    report
}

/// Runs the guest's `status` phase: the first phase of the migration not done. When where it
/// stands cannot be read, the migration starts at backup, which says what is wrong.
async fn locate(runtime: &Runtime, config: &RunConfig, opts: &DrOptions, mopts: &MigrateOptions) -> Resumed {
    if let Some(hook) = &mopts.on_phase {
        hook(Phase::Status, None);
    }
    let args = PhaseArgs {
        extra: mopts.args.extra.clone(),
        ..PhaseArgs::default()
    };
    let result = match run_phase_with(runtime, config, Phase::Status, &args, opts).await {
        Ok(r) if !r.succeeded() => PhaseResult::GuestFailed(r),
        Ok(r) => PhaseResult::Completed(r),
        Err(e) => PhaseResult::RunFailed {
            phase: Phase::Status,
            message: e.to_string(),
            exit_code: e.exit_code(),
        },
    };
    if let Some(hook) = &mopts.on_phase {
        hook(Phase::Status, Some(&result));
    }
    let summary = result.report().and_then(PhaseReport::summary);
    let text = |k: &str| summary.and_then(|s| s.get(k)).and_then(Value::as_str);
    match (text("next"), text("why")) {
        (Some("done"), Some(why)) => Resumed {
            at: None,
            why: why.to_string(),
        },
        (Some(next), Some(why)) if next.parse::<Phase>().is_ok_and(|p| Phase::ALL.contains(&p)) => Resumed {
            at: next.parse().ok(),
            why: why.to_string(),
        },
        _ => {
            let why = match &result {
                PhaseResult::RunFailed { message, .. } => message.clone(),
                PhaseResult::GuestFailed(r) => match &r.outcome {
                    PhaseOutcome::GuestFailed { message, .. } => message.clone(),
                    PhaseOutcome::Succeeded { .. } => String::new(),
                },
                _ => "the guest did not say".to_string(),
            };
            Resumed {
                at: Some(Phase::Backup),
                why: format!("where the migration stands could not be read ({why}); starting at backup"),
            }
        }
    }
}

/// `ferry abort` with the migration's options, while the source can still go back to service
/// (the migration stopped in backup or restore; after teardown started there is no source).
fn abort_command(mopts: &MigrateOptions, phase: Phase) -> Option<String> {
    if !matches!(phase, Phase::Backup | Phase::Restore) {
        return None;
    }
    let base = mopts
        .command
        .clone()
        .unwrap_or_else(|| vec!["ferry".to_string(), "migrate".to_string()]);
    let mut replaced = false;
    let words: Vec<String> = base
        .iter()
        .map(|w| {
            if !replaced && w == "migrate" {
                replaced = true;
                "abort".to_string()
            } else {
                shell_word(w)
            }
        })
        .collect();
    Some(words.join(" "))
}

fn resume_command(mopts: &MigrateOptions, phase: Phase) -> String {
    let base = mopts
        .command
        .clone()
        .unwrap_or_else(|| vec!["ferry".to_string(), "migrate".to_string()]);
    let mut words: Vec<String> = base.iter().map(|w| shell_word(w)).collect();
    if phase != Phase::Backup {
        words.push("--from".to_string());
        words.push(phase.name().to_string());
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_and_args_flatten() {
        assert_eq!("teardown".parse::<Phase>(), Ok(Phase::Teardown));
        assert!("migrate".parse::<Phase>().is_err());
        let args = PhaseArgs {
            force: true,
            stop_after: Some("pause".into()),
            backup_id: Some("b1".into()),
            extra: vec![("x".into(), "y".into())],
        };
        assert_eq!(
            args.to_pairs(),
            [
                ("force", "true"),
                ("stop_after", "pause"),
                ("backup_id", "b1"),
                ("x", "y")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn resume_commands_quote_and_name_the_phase() {
        let m = MigrateOptions {
            command: Some(vec![
                "ferry".into(),
                "migrate".into(),
                "--site".into(),
                "my site.toml".into(),
            ]),
            ..Default::default()
        };
        assert_eq!(
            resume_command(&m, Phase::Teardown),
            "ferry migrate --site 'my site.toml' --from teardown"
        );
        assert_eq!(
            resume_command(&MigrateOptions::default(), Phase::Backup),
            "ferry migrate"
        );
    }

    #[test]
    fn reports_read_the_summary() {
        let r = PhaseReport {
            phase: Phase::Backup,
            outcome: PhaseOutcome::Succeeded {
                summary: serde_json::json!({"phase": "backup", "already_done": true,
                    "steps": [{"step": "pause", "result": "paused"}], "stopped_after": "pause"}),
            },
            elapsed_ms: 1500,
        };
        assert!(r.already_done());
        assert_eq!(r.stopped_after(), Some("pause"));
        assert_eq!(r.steps(), [("pause".to_string(), "paused".to_string())]);
        assert!(r.to_text().contains("pause: paused"), "{}", r.to_text());
    }
}
