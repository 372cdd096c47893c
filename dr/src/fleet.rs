//! A management cluster's hosted clusters moved at once.
//!
//! A fleet is the HostedClusters of the source selected by labels or by name, in a fixed
//! order (namespace, then name: index *i* of a rendered Job is the *i*-th). Each member is an
//! ordinary migration ([`crate::phases::migrate`]) of the site filled in for it
//! ([`SiteConfig::for_hosted_cluster`]): its own lease, its own audit trail, its own policy
//! link (the policy's templates are linked with its names), its own local backup directory.
//! Members share nothing mutable but the wasm runtime, so one that fails stops alone, with the
//! command that resumes it (or aborts it) as a single migration.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ferry::capabilities::Clients;
use ferry::config::RunConfig;
use ferry::runtime::{Exit, Runtime};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde::Serialize;

use crate::phases::{DrOptions, MigrateOptions, MigrateReport, Phase, PhaseArgs};
use crate::site::{SiteConfig, SiteError};

/// Why a fleet could not be selected.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The site is incomplete or wrong for a fleet.
    #[error(transparent)]
    Site(#[from] SiteError),
    /// The source's HostedClusters could not be listed.
    #[error("cannot list the HostedClusters of the source management cluster: {0}")]
    Source(String),
    /// A `--hosted-cluster` is not on the source (or does not match the selector).
    #[error("not on the source management cluster{}: {}", if *.selected { " with the selector's labels" } else { "" }, .missing.join(", "))]
    NotFound {
        /// The ones missing, as `namespace/name`.
        missing: Vec<String>,
        /// Whether a selector narrowed the list too.
        selected: bool,
    },
    /// Nothing matched.
    #[error("no HostedCluster on the source management cluster matches {0}")]
    Empty(String),
    /// A `--hosted-cluster` that is not `namespace/name`.
    #[error("--hosted-cluster `{0}` is not NAMESPACE/NAME")]
    BadName(String),
}

/// One hosted cluster of a fleet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Member {
    /// The HostedCluster's namespace.
    pub namespace: String,
    /// The HostedCluster's name.
    pub name: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for Member {
    type Err = FleetError;

    fn from_str(s: &str) -> Result<Self, FleetError> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok(Member {
                namespace: ns.to_string(),
                name: name.to_string(),
            }),
            _ => Err(FleetError::BadName(s.to_string())),
        }
    }
}

/// Which of the source's hosted clusters make the fleet.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// A Kubernetes label selector on the HostedClusters (`env=prod,tier!=gold`).
    pub selector: Option<String>,
    /// Named hosted clusters; with a selector, each must match it too.
    pub hosted_clusters: Vec<Member>,
}

impl Selection {
    fn describe(&self) -> String {
        match (&self.selector, self.hosted_clusters.is_empty()) {
            (Some(s), _) => format!("the selector `{s}`"),
            (None, false) => "the named hosted clusters".to_string(),
            (None, true) => "(all of them: there are none)".to_string(),
        }
    }
}

const HC_GROUP: &str = "hypershift.openshift.io";

/// The fleet on the source: the selected HostedClusters, ordered by namespace and name.
pub async fn select(site: &SiteConfig, selection: &Selection) -> Result<Vec<Member>, FleetError> {
    let source = site.clusters.source.clone().ok_or_else(|| SiteError::Missing {
        origin: "the site".into(),
        missing: vec![crate::site::MissingValue {
            what: "source management cluster (MGMT_KUBECONFIG)",
            key: "[clusters.source] kubeconfig",
            flag: "--source-kubeconfig",
        }],
    })?;
    let config = RunConfig {
        clusters: BTreeMap::from([("source".to_string(), source)]),
        ..Default::default()
    };
    let client = Clients::default()
        .kube(&config, "source")
        .await
        .map_err(|e| FleetError::Source(e.to_string()))?;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(HC_GROUP, "v1beta1", "HostedCluster"),
        "hostedclusters",
    );
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let mut params = ListParams::default();
    if let Some(s) = &selection.selector {
        params = params.labels(s);
    }
    let listed = api.list(&params).await.map_err(|e| FleetError::Source(e.to_string()))?;
    let mut on_source: Vec<Member> = listed
        .items
        .iter()
        .filter_map(|o| {
            Some(Member {
                namespace: o.metadata.namespace.clone()?,
                name: o.metadata.name.clone()?,
            })
        })
        .collect();
    on_source.sort();
    if selection.hosted_clusters.is_empty() {
        if on_source.is_empty() {
            return Err(FleetError::Empty(selection.describe()));
        }
        return Ok(on_source);
    }
    let missing: Vec<String> = selection
        .hosted_clusters
        .iter()
        .filter(|m| !on_source.contains(m))
        .map(Member::to_string)
        .collect();
    if !missing.is_empty() {
        return Err(FleetError::NotFound {
            missing,
            selected: selection.selector.is_some(),
        });
    }
    let mut named = selection.hosted_clusters.clone();
    named.sort();
    named.dedup();
    Ok(named)
}

/// How a fleet runs.
#[derive(Clone)]
pub struct FleetOptions {
    /// How many members migrate at once (at least 1).
    pub concurrency: usize,
    /// Each member's audit trail: `<dir>/<namespace>/<name>.jsonl`.
    pub audit_dir: Option<PathBuf>,
    /// The words that re-run one member with this site (`ferry migrate --site site.toml`),
    /// to which its names (and audit trail) are added for its resume and abort commands.
    pub command: Vec<String>,
    /// Arguments every member's phases get (`stop_after`, `extra`).
    pub args: PhaseArgs,
    /// Live output of the members (none when `None`).
    pub view: Option<Arc<dyn FleetView>>,
}

/// Where a fleet's live output goes: each member's progress and phases, and its end.
pub trait FleetView: Send + Sync {
    /// Member `m`'s progress sink (its phases' steps); `None`: the options' own.
    fn progress(&self, m: &Member) -> Option<Arc<dyn ferry::progress::ProgressSink>>;
    /// Told when each of member `m`'s phases starts and ends.
    fn on_phase(&self, m: &Member) -> Option<crate::phases::PhaseHook>;
    /// Told when member `m` ends, whatever the outcome.
    fn finished(&self, r: &MemberResult);
}

impl fmt::Debug for FleetOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetOptions")
            .field("concurrency", &self.concurrency)
            .field("audit_dir", &self.audit_dir)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

impl FleetOptions {
    /// Member `m`'s audit trail, when the fleet keeps them.
    pub fn audit_path(&self, m: &Member) -> Option<PathBuf> {
        self.audit_dir
            .as_ref()
            .map(|d| d.join(&m.namespace).join(format!("{}.jsonl", m.name)))
    }

    /// The `ferry migrate` words that run member `m` alone.
    fn member_command(&self, m: &Member) -> Vec<String> {
        let mut words = self.command.clone();
        words.extend(["--hc-namespace".to_string(), m.namespace.clone()]);
        words.extend(["--hc-name".to_string(), m.name.clone()]);
        if let Some(a) = self.audit_path(m) {
            words.extend(["--audit".to_string(), a.display().to_string()]);
        }
        words
    }
}

/// How one member's migration ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum MemberOutcome {
    /// It ran (completed, failed or stopped: see the report).
    Ran {
        /// Its migration.
        report: MigrateReport,
    },
    /// It could not start: the site is wrong for it.
    NotStarted {
        /// Why.
        message: String,
    },
}

/// One member's result.
#[derive(Debug, Clone, Serialize)]
pub struct MemberResult {
    /// The hosted cluster.
    pub member: Member,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: MemberOutcome,
    /// How long it took.
    pub elapsed_ms: u64,
}

impl MemberResult {
    /// Whether every phase completed.
    pub fn succeeded(&self) -> bool {
        matches!(&self.outcome, MemberOutcome::Ran { report } if report.succeeded())
    }

    /// Where it ended: the last phase it ran, or `-`.
    pub fn phase(&self) -> String {
        match &self.outcome {
            MemberOutcome::Ran { report } => report
                .phases
                .last()
                .map(|p| p.phase().name().to_string())
                .unwrap_or_else(|| "-".into()),
            MemberOutcome::NotStarted { .. } => "-".into(),
        }
    }

    /// `completed`, `failed`, `stopped` or `not started`.
    pub fn status(&self) -> &'static str {
        match &self.outcome {
            MemberOutcome::Ran { report } if report.succeeded() => "completed",
            MemberOutcome::Ran { report } if report.stopped.is_some() => "stopped",
            MemberOutcome::Ran { .. } => "failed",
            MemberOutcome::NotStarted { .. } => "not started",
        }
    }

    /// Why it stopped, in one line (empty when it completed).
    pub fn reason(&self) -> String {
        match &self.outcome {
            MemberOutcome::Ran { report } => match report.failure() {
                Some((Some(kind), message)) => format!("{kind}: {}", first_line(message)),
                Some((None, message)) => first_line(message),
                None => String::new(),
            },
            MemberOutcome::NotStarted { message } => first_line(message),
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// The fleet's result, one row per member in fleet order.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// The members' results.
    pub members: Vec<MemberResult>,
    /// How long the whole fleet took.
    pub elapsed_ms: u64,
}

impl FleetReport {
    /// Whether every member completed.
    pub fn succeeded(&self) -> bool {
        self.members.iter().all(MemberResult::succeeded)
    }

    /// 0, or the first failed member's exit code.
    pub fn exit_code(&self) -> i32 {
        self.members
            .iter()
            .find_map(|m| match &m.outcome {
                MemberOutcome::Ran { report } if !report.succeeded() => Some(report.exit_code().max(1)),
                MemberOutcome::NotStarted { .. } => Some(Exit::BadInput.code()),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// The result table, then each stopped member's resume and abort commands.
    pub fn to_text(&self) -> String {
        let rows: Vec<[String; 4]> = self
            .members
            .iter()
            .map(|m| {
                [
                    m.member.to_string(),
                    m.status().to_string(),
                    m.phase(),
                    format!("{:.1}s", m.elapsed_ms as f64 / 1000.0),
                ]
            })
            .collect();
        let header = ["HOSTED CLUSTER", "RESULT", "PHASE", "TIME"].map(String::from);
        let width = |i: usize| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths = [width(0), width(1), width(2)];
        let line = |r: &[String; 4]| {
            format!(
                "{:w0$}  {:w1$}  {:w2$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        };
        let mut out: Vec<String> = std::iter::once(&header).chain(&rows).map(line).collect();
        let done = self.members.iter().filter(|m| m.succeeded()).count();
        out.push(format!(
            "{done} of {} hosted clusters migrated in {:.1}s",
            self.members.len(),
            self.elapsed_ms as f64 / 1000.0
        ));
        for m in self.members.iter().filter(|m| !m.succeeded()) {
            out.push(String::new());
            out.push(format!("{}: {}: {}", m.member, m.status(), m.reason()));
            if let MemberOutcome::Ran { report } = &m.outcome {
                if let Some(r) = &report.resume_command {
                    out.push(format!("  resume: {r}"));
                }
                if let Some(a) = &report.abort_command {
                    out.push(format!("  abort:  {a}"));
                }
            }
        }
        out.join("\n")
    }
}

/// Migrates every member, at most `fopts.concurrency` at once, each as its own migration of
/// the site filled in for it. `opts` is the template of each member's options (its audit trail
/// is set per member). Never stops early: every member gets its result.
pub async fn migrate(site: &SiteConfig, members: &[Member], opts: &DrOptions, fopts: &FleetOptions) -> FleetReport {
    let started = Instant::now();
    let runtime = match Runtime::new(opts.cache_dir.clone()) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            let message = format!("cannot start the wasm runtime: {e:#}");
            return FleetReport {
                members: members
                    .iter()
                    .map(|m| MemberResult {
                        member: m.clone(),
                        outcome: MemberOutcome::NotStarted {
                            message: message.clone(),
                        },
                        elapsed_ms: 0,
                    })
                    .collect(),
                elapsed_ms: 0,
            };
        }
    };
    let site = Arc::new(site.clone());
    let opts = Arc::new(opts.clone());
    let fopts = Arc::new(fopts.clone());
    let concurrency = fopts.concurrency;
    let ran = bounded(members, concurrency, move |m| {
        let (runtime, site, opts, fopts) = (runtime.clone(), site.clone(), opts.clone(), fopts.clone());
        async move {
            let t = Instant::now();
            let audit = fopts.audit_path(&m);
            let config = site
                .for_hosted_cluster(&m.namespace, &m.name)
                .and_then(|s| s.run_config())
                .map_err(|e| e.to_string())
                .and_then(|c| match audit.as_deref().and_then(std::path::Path::parent) {
                    Some(dir) => std::fs::create_dir_all(dir)
                        .map(|()| c)
                        .map_err(|e| format!("cannot create the audit directory {}: {e}", dir.display())),
                    None => Ok(c),
                });
            let outcome = match config {
                Err(message) => MemberOutcome::NotStarted { message },
                Ok(config) => {
                    let mut opts = (*opts).clone();
                    opts.audit = audit.or(opts.audit);
                    if let Some(p) = fopts.view.as_ref().and_then(|v| v.progress(&m)) {
                        opts.progress = p;
                    }
                    let mopts = MigrateOptions {
                        args: fopts.args.clone(),
                        from: None,
                        command: Some(fopts.member_command(&m)),
                        on_phase: fopts.view.as_ref().and_then(|v| v.on_phase(&m)),
                    };
                    let report = crate::phases::migrate_with(&runtime, &config, &opts, &mopts).await;
                    MemberOutcome::Ran { report }
                }
            };
            let result = MemberResult {
                member: m,
                outcome,
                elapsed_ms: t.elapsed().as_millis() as u64,
            };
            if let Some(v) = &fopts.view {
                v.finished(&result);
            }
            result
        }
    })
    .await;
    let mut results: Vec<MemberResult> = ran
        .into_iter()
        .map(|(member, r)| {
            r.unwrap_or_else(|message| MemberResult {
                member,
                outcome: MemberOutcome::NotStarted { message },
                elapsed_ms: 0,
            })
        })
        .collect();
    results.sort_by(|a, b| a.member.cmp(&b.member));
    FleetReport {
        members: results,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

/// One member's plan: whether its backup could start now (the backup phase's preflight, run
/// as a plan: it reads, changes nothing and takes no lease).
#[derive(Debug, Clone, Serialize)]
pub struct PlannedMember {
    /// The hosted cluster.
    pub member: Member,
    /// Whether the preflight passed.
    pub ready: bool,
    /// What the preflight found.
    pub message: String,
}

/// The preflight of each member, at most `concurrency` at once, before anything changes.
pub async fn plan(site: &SiteConfig, members: &[Member], opts: &DrOptions, concurrency: usize) -> Vec<PlannedMember> {
    let runtime = match Runtime::new(opts.cache_dir.clone()) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            return members
                .iter()
                .map(|m| PlannedMember {
                    member: m.clone(),
                    ready: false,
                    message: format!("cannot start the wasm runtime: {e:#}"),
                })
                .collect();
        }
    };
    let mut opts = opts.clone();
    opts.plan = true;
    let args = PhaseArgs {
        stop_after: Some("preflight".into()),
        ..Default::default()
    };
    let site = Arc::new(site.clone());
    let opts = Arc::new(opts);
    let args = Arc::new(args);
    let ran = bounded(members, concurrency, move |m| {
        let (runtime, site, opts, args) = (runtime.clone(), site.clone(), opts.clone(), args.clone());
        async move {
            let config = site
                .for_hosted_cluster(&m.namespace, &m.name)
                .and_then(|s| s.run_config());
            let config = match config {
                Err(e) => return (false, e.to_string()),
                Ok(c) => c,
            };
            match crate::phases::run_phase_with(&runtime, &config, Phase::Backup, &args, &opts).await {
                Ok(r) if r.succeeded() => {
                    let step = r
                        .summary()
                        .and_then(|s| s.get("steps"))
                        .and_then(serde_json::Value::as_array)
                        .and_then(|steps| steps.iter().find(|s| s["step"] == "preflight"));
                    let text = |k: &str| step.and_then(|s| s[k].as_str()).unwrap_or_default().to_string();
                    (true, format!("{}: {}", text("result"), text("detail")))
                }
                Ok(r) => match r.outcome {
                    crate::phases::PhaseOutcome::GuestFailed { kind, message } => (false, format!("{kind}: {message}")),
                    crate::phases::PhaseOutcome::Succeeded { .. } => (false, String::new()),
                },
                Err(e) => (false, e.to_string()),
            }
        }
    })
    .await;
    let mut out: Vec<PlannedMember> = ran
        .into_iter()
        .map(|(member, r)| {
            let (ready, message) = r.unwrap_or_else(|m| (false, m));
            PlannedMember { member, ready, message }
        })
        .collect();
    out.sort_by(|a, b| a.member.cmp(&b.member));
    out
}

/// Runs `work` for every member in its own task (the cores run several guests at once), at
/// most `concurrency` at a time, starting them in fleet order; one that panics is reported as
/// such, never taking the others down.
async fn bounded<T, F, Fut>(members: &[Member], concurrency: usize, work: F) -> Vec<(Member, Result<T, String>)>
where
    T: Send + 'static,
    F: Fn(Member) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::new();
    for m in members {
        let permits = permits.clone();
        let run = work(m.clone());
        tasks.push((
            m.clone(),
            tokio::spawn(async move {
                // The semaphore is never closed.
                let _permit = permits.acquire_owned().await;
                run.await
            }),
        ));
    }
    let mut out = Vec::new();
    for (m, task) in tasks {
        out.push((m, task.await.map_err(|e| format!("its run panicked: {e}"))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_as_namespace_slash_name() {
        let m: Member = "clusters/demo.one".parse().expect("valid");
        assert_eq!(m.to_string(), "clusters/demo.one");
        for bad in ["demo", "/demo", "clusters/", "a/b/c"] {
            assert!(bad.parse::<Member>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_member_resumes_alone_with_its_own_names_and_trail() {
        let f = FleetOptions {
            concurrency: 4,
            audit_dir: Some(PathBuf::from("audit")),
            command: vec!["ferry".into(), "migrate".into(), "--site".into(), "site.toml".into()],
            args: PhaseArgs::default(),
            view: None,
        };
        let m = Member {
            namespace: "team-a".into(),
            name: "db".into(),
        };
        assert_eq!(
            f.member_command(&m).join(" "),
            "ferry migrate --site site.toml --hc-namespace team-a --hc-name db --audit audit/team-a/db.jsonl"
        );
    }
}
