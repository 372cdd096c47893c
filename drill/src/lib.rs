//! `ferry drill`: a whole hosted-cluster migration against the simulator, on
//! a machine with no cluster and no AWS account.
//!
//! A drill starts, on loopback: moto (for Route53, with a hosted zone for the
//! scenario's external-dns domain), an S3 that checks SigV4 signatures (with
//! the bucket [`BUCKET`]), the simulated management clusters of a scenario
//! (the source seeded with a hosted cluster; every cluster with a HyperShift
//! operator and a `hypershift/external-dns` Deployment), and one external-dns
//! controller per management cluster (owner ids `ferry-drill-<cluster>`).
//! It writes kubeconfigs and a site config into its directory, runs the DR
//! phases with the embedded stock guest and policy ([`Drill::migrate`],
//! [`Drill::phase`]), and checks the outcome ([`Drill::verify`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_drill::DrillError> {
//! use ferry_drill::{Drill, DrillOptions};
//! let drill = Drill::start(DrillOptions::default()).await?;
//! let migration = drill.migrate().await;
//! let report = drill.verify().await;
//! println!("{}\n{}", migration.message(), report.to_text());
//! drill.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_route53::types::RrType;
use ferry::audit::AuditKey;
use ferry_sim::ListOptions;
use ferry_sim::chaos::Chaos;
use ferry_sim::hypershift::environment::{DnsLookup, Environment, EnvironmentOptions, ExternalDnsDeployment};
use ferry_sim::hypershift::external_dns::{Args, ExternalDns, parse_txt};
use ferry_sim::hypershift::scenario::{HostedClusterSpec, Scenario};
use ferry_sim::hypershift::{OperatorEvent, condition_status};
use ferry_sim::kube::crd::CrdSource;
use ferry_sim::kube::registry;
use ferry_sim::services::s3::SigV4S3Server;
use ferry_sim::services::{ETCD_INSTALL_HINT, MotoServer, Route53ChaosProxy};
use serde::Serialize;
use serde_json::Value;

use ferry::config::RunConfig;
use ferry::progress::{LogProgress, ProgressSink};
use ferry::runtime::RunFailure;
use ferry::runtime::Runtime;
use ferry_dr::phases::{DrOptions, GuestChoice, MigrateOptions, MigrateReport, Phase, PhaseArgs, PhaseReport};
use ferry_dr::site::SiteConfig;

/// The scenario a drill runs by default (`sim/scenarios/basic.toml`).
pub const BASIC_SCENARIO: &str = include_str!("../../sim/scenarios/basic.toml");

/// The S3 bucket backups go to.
pub const BUCKET: &str = "ferry-drill-backups";

/// The S3 key prefix of backups.
pub const PREFIX: &str = "hosted-clusters";

/// The KMS key the drill's site encrypts its backup with (SSE-KMS), so a drill shows
/// the key reaching S3 and coming back on every object.
pub const KMS_KEY_ID: &str = "ferry-drill-backup-key";

/// The access key the drill's S3 accepts (moto accepts anything).
pub const ACCESS_KEY: &str = "AKIAFERRYDRILL";

/// The secret key of [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "ferry-drill-secret";

/// Owner id prefix of the drill's external-dns controllers.
pub const OWNER_PREFIX: &str = "ferry-drill-";

/// The external-dns `--txt-suffix`.
pub const TXT_SUFFIX: &str = "-external-dns";

/// Where `ferry drill` installs moto when it is missing (the same place as `.ci/setup`).
pub const MOTO_VENV: &str = ".cache/ferry/venv";

/// The moto version `ferry drill` installs (as `.ci/setup` does).
pub const MOTO_REQUIREMENT: &str = "moto[server]>=5.2.5,<6";

/// One phase run through change management ([`Drill::phase_approved`]).
pub struct Approved {
    /// The plan, approved.
    pub plan: ferry::plan::PlanFile,
    /// Where it was written.
    pub path: PathBuf,
    /// The plan run's report.
    pub planned: PhaseReport,
    /// The apply's report; `None` when the plan run failed.
    pub applied: Option<PhaseReport>,
    /// What the plan held that the apply did not do.
    pub not_done: Vec<String>,
}

impl Approved {
    /// Whether the plan and its apply succeeded and every planned change happened.
    pub fn succeeded(&self) -> bool {
        self.planned.succeeded()
            && self.applied.as_ref().is_some_and(PhaseReport::succeeded)
            && self.not_done.is_empty()
    }

    /// One line for a person.
    pub fn to_line(&self) -> String {
        let phase = self.plan.inputs.phase.as_str();
        match &self.applied {
            None => format!("{phase}: the plan run failed:\n{}", self.planned.to_text()),
            Some(a) if !a.succeeded() => format!("{phase}: the apply failed:\n{}", a.to_text()),
            Some(_) if !self.not_done.is_empty() => format!(
                "{phase}: applied, but {} planned change(s) did not happen: {}",
                self.not_done.len(),
                self.not_done.join("; ")
            ),
            Some(_) => format!(
                "{phase}: planned {} change(s) ({}), approved, applied: every one happened, nothing else",
                self.plan.mutations.len(),
                self.path.display()
            ),
        }
    }
}

/// Errors of starting a drill.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// A tool the drill needs is missing.
    #[error("{0}")]
    Prerequisite(String),
    /// A service did not start.
    #[error("cannot start {what}: {message}")]
    Service {
        /// The service.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The simulated environment did not start.
    #[error("cannot start the simulated management clusters: {0}")]
    Environment(#[from] ferry_sim::hypershift::environment::EnvironmentError),
    /// The generated site config is unusable (a bug).
    #[error(transparent)]
    Site(#[from] ferry_dr::site::SiteError),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Setting up Route53 failed.
    #[error("route53 {0}")]
    Route53(String),
}

/// How to start a drill.
#[derive(Clone)]
pub struct DrillOptions {
    /// The scenario (default: [`BASIC_SCENARIO`]).
    pub scenario: Scenario,
    /// Keep everything (kubeconfigs, site config, backup dir, audit, S3 data)
    /// in this directory instead of a temporary one.
    pub keep_dir: Option<PathBuf>,
    /// Where guest progress goes.
    pub progress: Arc<dyn ProgressSink>,
    /// Install moto into `~/.cache/ferry/venv` when it is missing.
    pub install_moto: bool,
    /// The guest's clock scale (waits of the guest run this much faster).
    pub clock_scale: f64,
    /// Where set-up messages go (default: the log).
    pub say: Arc<dyn Fn(&str) + Send + Sync>,
    /// The CRDs the simulated management clusters serve: HyperShift's own (`--crds DIR`, or
    /// read from a live cluster with `--crds-from`), or the minimal built-in definitions.
    pub crds: CrdSource,
    /// Seeded random faults on every API server, S3 and Route53 (`--faults RATE --seed N`).
    pub faults: Option<Faults>,
}

/// Random faults a drill injects: a share of all requests, and the seed that draws them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// The share of requests that fail (0.0..=1.0).
    pub rate: f64,
    /// The seed each service's generator derives from.
    pub seed: u64,
}

/// What a drill's faults did: what each service injected, and the calls the guest saw fail
/// transiently (each retried, or the reason a phase stopped).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultReport {
    /// The rate and seed.
    pub rate: f64,
    /// The seed.
    pub seed: u64,
    /// Faults injected, per service (`source`, `destination`, `hosted`, `s3`, `route53`) and
    /// kind (`503`, `drop`, `lost-response`, `Throttling`, `slow-part`...). S3 and Route53
    /// faults are retried inside the AWS SDK and do not reach the guest.
    pub injected: BTreeMap<String, BTreeMap<String, u64>>,
    /// Calls the audit trail shows failing with `unavailable` or `conflict`: what reached the
    /// guest after the host's clients gave up.
    pub failed_calls: u64,
}

impl FaultReport {
    /// Faults injected in all.
    pub fn total(&self) -> u64 {
        self.injected.values().flat_map(|k| k.values()).sum()
    }

    /// A few lines for the terminal.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "faults at {:.1}% (seed {}): {} injected, {} call(s) failed transiently and were retried by the guest\n",
            self.rate * 100.0,
            self.seed,
            self.total(),
            self.failed_calls
        );
        for (service, kinds) in &self.injected {
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
            out.push_str(&format!(
                "  {service}: {}\n",
                if kinds.is_empty() {
                    "none".into()
                } else {
                    kinds.join(", ")
                }
            ));
        }
        out
    }
}

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions {
            scenario: basic_scenario(),
            keep_dir: None,
            progress: Arc::new(LogProgress),
            install_moto: true,
            clock_scale: 20.0,
            say: Arc::new(|m: &str| tracing::info!("{m}")),
            crds: CrdSource::Builtin,
            faults: None,
        }
    }
}

/// The embedded basic scenario.
pub fn basic_scenario() -> Scenario {
    Scenario::from_toml(BASIC_SCENARIO).expect("the embedded basic scenario is valid (unit-tested)")
}

/// The label every hosted cluster of [`fleet_scenario`] carries (the basic scenario's bare
/// sibling does not): what a fleet drill selects.
pub const FLEET_SELECTOR: &str = "ferry.dev/drill=fleet";

/// A management cluster's fleet: the basic scenario's hosted cluster and `count - 1` more (one
/// NodePool each), alternating between the namespaces `clusters` and `clusters-east`, all
/// labelled [`FLEET_SELECTOR`]; the basic scenario's bare sibling stays unlabelled.
pub fn fleet_scenario(count: usize) -> Scenario {
    let mut s = basic_scenario();
    let (key, value) = FLEET_SELECTOR.split_once('=').unwrap_or((FLEET_SELECTOR, ""));
    let labels = BTreeMap::from([(key.to_string(), value.to_string())]);
    s.hosted_cluster.labels = labels.clone();
    s.fleet = (1..count)
        .map(|i| ferry_sim::hypershift::scenario::FleetMember {
            name: format!("fleet-{i:02}"),
            namespace: Some(if i % 2 == 0 { "clusters" } else { "clusters-east" }.to_string()),
            labels: labels.clone(),
            node_pools: None,
        })
        .collect();
    s
}

/// Tools the drill found.
#[derive(Debug, Clone)]
pub struct Prerequisites {
    /// The etcd binary.
    pub etcd: PathBuf,
    /// The moto_server binary.
    pub moto_server: PathBuf,
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// Finds `moto_server` where `ferry_sim::services::MotoServer::start` looks:
/// `$FERRY_MOTO_SERVER`, `~/.cache/ferry/venv/bin/moto_server`, then `PATH`.
pub fn find_moto_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FERRY_MOTO_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    home()
        .map(|h| h.join(MOTO_VENV).join("bin/moto_server"))
        .filter(|p| is_executable(p))
        .or_else(|| which("moto_server"))
}

/// Finds etcd where the simulator's launchers look: `$FERRY_ETCD`, `/usr/bin/etcd`, `PATH`.
pub fn find_etcd() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FERRY_ETCD").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let usr = PathBuf::from("/usr/bin/etcd");
    if is_executable(&usr) {
        return Some(usr);
    }
    which("etcd")
}

/// Checks for etcd and moto; installs moto into `~/.cache/ferry/venv` when
/// it is missing, `install` is set and `python3` exists, saying what it does.
pub async fn ensure_prerequisites(
    install: bool,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<Prerequisites, DrillError> {
    let etcd = find_etcd()
        .filter(|p| is_executable(p))
        .ok_or_else(|| DrillError::Prerequisite(format!("etcd is missing; {ETCD_INSTALL_HINT}")))?;
    if let Some(moto_server) = find_moto_server() {
        return Ok(Prerequisites { etcd, moto_server });
    }
    let venv = home()
        .map(|h| h.join(MOTO_VENV))
        .ok_or_else(|| DrillError::Prerequisite("moto is missing and $HOME is not set to install it into".into()))?;
    let Some(python) = which("python3") else {
        return Err(DrillError::Prerequisite(format!(
            "moto is missing, and python3 (needed to install it) is too; install python3 with \
             `apt-get install python3 python3-venv` (Debian/Ubuntu) or `dnf install python3` (Fedora/RHEL), \
             then run `ferry drill` again (it installs moto into {})",
            venv.display()
        )));
    };
    if !install {
        return Err(DrillError::Prerequisite(format!(
            "moto is missing; install it with: python3 -m venv {v} && {v}/bin/pip install '{MOTO_REQUIREMENT}'",
            v = venv.display()
        )));
    }
    say(&format!(
        "moto is missing; creating {} with {}",
        venv.display(),
        python.display()
    ));
    run_install(tokio::process::Command::new(&python).arg("-m").arg("venv").arg(&venv)).await?;
    let pip = venv.join("bin/pip");
    say(&format!("running {} install '{MOTO_REQUIREMENT}'", pip.display()));
    run_install(
        tokio::process::Command::new(&pip)
            .args(["install", "--quiet", "--disable-pip-version-check", "--upgrade"])
            .arg(MOTO_REQUIREMENT),
    )
    .await?;
    let moto_server = find_moto_server().ok_or_else(|| {
        DrillError::Prerequisite(format!(
            "moto was installed into {} but bin/moto_server is not there",
            venv.display()
        ))
    })?;
    say(&format!("moto installed: {}", moto_server.display()));
    Ok(Prerequisites { etcd, moto_server })
}

async fn run_install(cmd: &mut tokio::process::Command) -> Result<(), DrillError> {
    let shown = format!("{:?}", cmd.as_std());
    let status = cmd
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| DrillError::Prerequisite(format!("cannot run {shown}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(DrillError::Prerequisite(format!("{shown} failed ({status})")))
    }
}

/// One check of [`Drill::verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Its name: `etcd-data`, `dns-moved`, `source-clean`, `backup-kept`,
    /// `backup-encrypted`, `no-deletion-flow`, `restored-signal`, `operator-running`,
    /// `etcd-one-cluster`, `management-restored`, `audit-no-denials`, `audit-verified`, or
    /// `downtime` ([`Drill::check_downtime`]).
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

/// The result of [`Drill::verify`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrillReport {
    /// Each check, in order.
    pub checks: Vec<Check>,
}

impl DrillReport {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// One line per check.
    pub fn to_text(&self) -> String {
        let mut out = String::from("drill checks:");
        for c in &self.checks {
            out.push_str(&format!(
                "\n  [{}] {}: {}",
                if c.passed { "pass" } else { "FAIL" },
                c.name,
                c.detail
            ));
        }
        out
    }

    fn push(&mut self, name: &'static str, problems: Vec<String>, ok_detail: String) {
        let passed = problems.is_empty();
        self.checks.push(Check {
            name,
            passed,
            detail: if passed { ok_detail } else { problems.join("; ") },
        });
    }
}

/// A running drill.
pub struct Drill {
    env: Environment,
    s3: SigV4S3Server,
    moto: MotoServer,
    zone_id: String,
    dir: PathBuf,
    temp: Option<tempfile::TempDir>,
    site: SiteConfig,
    site_path: PathBuf,
    run_config: RunConfig,
    audit: PathBuf,
    /// Signs every phase's checkpoint; kept as `audit.key` beside the trail.
    audit_key: AuditKey,
    runtime: Runtime,
    guest: GuestChoice,
    progress: Arc<dyn ProgressSink>,
    /// The faults injected, one generator per service; empty without `faults`.
    chaos: Vec<Arc<Chaos>>,
    faults: Option<Faults>,
    /// Throttles ferry's Route53 calls on their way to moto, with `faults`.
    _route53_proxy: Option<Route53ChaosProxy>,
    /// What ferry may change on each management cluster, as it was before the drill ran
    /// (`management-restored` compares).
    baseline: BTreeMap<String, BTreeMap<String, Value>>,
}

impl std::fmt::Debug for Drill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drill")
            .field("dir", &self.dir)
            .field("moto", &self.moto.url())
            .field("s3", &self.s3.url())
            .field("zone_id", &self.zone_id)
            .finish_non_exhaustive()
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_path(p: &Path) -> String {
    toml_str(&p.display().to_string())
}

fn service_error(what: &'static str) -> impl FnOnce(anyhow::Error) -> DrillError {
    move |e| DrillError::Service {
        what,
        message: format!("{e:#}"),
    }
}

fn route53_error<E: std::error::Error + 'static>(op: &'static str) -> impl FnOnce(E) -> DrillError {
    move |e| {
        DrillError::Route53(format!(
            "{op} failed: {}",
            ferry::capabilities::provider::error_chain(&e)
        ))
    }
}

fn route53_client(url: &str) -> aws_sdk_route53::Client {
    let credentials = aws_sdk_route53::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "ferry-drill");
    let config = aws_sdk_route53::Config::builder()
        .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
        .region(aws_sdk_route53::config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(url)
        .build();
    aws_sdk_route53::Client::from_conf(config)
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The hosted cluster a verification checks, and what it is checked against.
struct Target<'a> {
    hc: &'a HostedClusterSpec,
    hcp_ns: String,
    /// Keys its hosted etcd must hold on the destination.
    etcd_keys: &'a BTreeMap<String, String>,
    /// The bare sibling HostedClusters that must stay untouched on the source.
    siblings: &'a [String],
    /// Every other HostedCluster of its namespace (their `<name>-…` objects are not its).
    neighbours: Vec<String>,
    audit: &'a Path,
}

/// The downtime goal of a migration, from backup stopping the writers to the destination
/// serving a write, on the drill's clock (upstream time).
pub const DOWNTIME_GOAL: Duration = Duration::from_secs(180);

/// The goal for the downtime against the physical minimum of the same run (snapshot and
/// upload, download and restore, DNS propagation).
pub const DOWNTIME_RATIO_GOAL: f64 = 1.3;

/// On a Machine: Cluster API leaves it out of MachineHealthCheck remediation.
const SKIP_REMEDIATION: &str = "cluster.x-k8s.io/skip-remediation";
/// On a Machine: restore set [`SKIP_REMEDIATION`] until the nodes are Ready.
const SKIP_REMEDIATION_SET: &str = "ferry.dev/skip-remediation-until-ready";

/// The annotation prefix of everything ferry notes on a cluster's objects.
const FERRY_ANNOTATIONS: &str = "ferry.dev/";

/// What ferry may change on a management cluster to move a hosted cluster and must put back:
/// the HyperShift operator's and external-dns' replicas (teardown stops the first, the DNS
/// cut-over restarts the second), the object selectors of HyperShift's webhooks (teardown
/// keeps its hosted cluster's objects out of them), and any note ferry leaves on them.
fn settings(store: &ferry_sim::Store) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let notes = |o: &Value| -> Value {
        o.pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter(|(k, _)| k.starts_with(FERRY_ANNOTATIONS))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<serde_json::Map<_, _>>()
            })
            .map(Value::Object)
            .unwrap_or(Value::Null)
    };
    for name in ["operator", "external-dns"] {
        if let Ok(d) = store.get(&registry::DEPLOYMENT, Some("hypershift"), name) {
            out.insert(
                format!("Deployment hypershift/{name}"),
                serde_json::json!({"replicas": d["spec"]["replicas"], "ferry notes": notes(&d)}),
            );
        }
    }
    for kind in [
        &registry::VALIDATING_WEBHOOK_CONFIGURATION,
        &registry::MUTATING_WEBHOOK_CONFIGURATION,
    ] {
        if let Ok(w) = store.get(kind, None, "hypershift.openshift.io") {
            let selectors: Vec<Value> = w["webhooks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    serde_json::json!({"name": h["name"], "objectSelector": h["objectSelector"],
                    "namespaceSelector": h["namespaceSelector"], "failurePolicy": h["failurePolicy"],
                    "clientConfig": h["clientConfig"]["service"]})
                })
                .collect();
            out.insert(
                format!("{} hypershift.openshift.io", kind.kind),
                serde_json::json!({"webhooks": selectors, "ferry notes": notes(&w)}),
            );
        }
    }
    out
}

/// The parts of a migration's downtime no procedure can avoid, each measured in the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhysicalMinimum {
    /// The etcd snapshot streamed into S3 (backup's `snapshot` step), ms.
    pub snapshot_and_upload_ms: Option<u64>,
    /// The destination's `etcd-init` downloading the snapshot and restoring it, ms.
    pub download_and_restore_ms: Option<u64>,
    /// The destination's external-dns publishing the names once its process runs, ms.
    pub dns_ms: Option<u64>,
}

impl PhysicalMinimum {
    /// The sum of the parts measured.
    pub fn total_ms(&self) -> u64 {
        self.snapshot_and_upload_ms.unwrap_or(0) + self.download_and_restore_ms.unwrap_or(0) + self.dns_ms.unwrap_or(0)
    }
}

impl Drill {
    /// Checks prerequisites and starts everything; see the module docs.
    pub async fn start(opts: DrillOptions) -> Result<Drill, DrillError> {
        let say = opts.say.clone();
        let (dir, temp) = match &opts.keep_dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|source| DrillError::Io {
                    path: d.clone(),
                    source,
                })?;
                let d = std::path::absolute(d).unwrap_or_else(|_| d.clone());
                (d, None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("ferry-drill-")
                    .tempdir()
                    .map_err(|source| DrillError::Io {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let prereq = ensure_prerequisites(opts.install_moto, say.as_ref()).await?;
        say(&format!(
            "using etcd {} and moto {}",
            prereq.etcd.display(),
            prereq.moto_server.display()
        ));

        let moto = MotoServer::start().await.map_err(service_error("moto (Route53)"))?;
        // HTTPS with its own CA, so the restore URL is https:// as HyperShift requires.
        let s3 = SigV4S3Server::start_tls(dir.join("s3"), ACCESS_KEY, SECRET_KEY)
            .await
            .map_err(service_error("the SigV4 S3 server"))?;
        let ca_pem = s3.ca_pem().unwrap_or_default().to_string();
        let ca_path = dir.join("s3-ca.pem");
        std::fs::write(&ca_path, &ca_pem).map_err(|source| DrillError::Io {
            path: ca_path.clone(),
            source,
        })?;
        let bucket_dir = s3.root().join(BUCKET);
        std::fs::create_dir_all(&bucket_dir).map_err(|source| DrillError::Io {
            path: bucket_dir,
            source,
        })?;
        say(&format!("S3 (SigV4-checking) at {}, bucket {BUCKET}", s3.url()));

        let domain = opts.scenario.hosted_cluster.external_dns_domain.clone();
        let route53 = route53_client(&moto.url());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let zone = route53
            .create_hosted_zone()
            .name(&domain)
            .caller_reference(format!("ferry-drill-{}-{nanos}", std::process::id()))
            .send()
            .await
            .map_err(route53_error("CreateHostedZone"))?;
        let zone_id = zone
            .hosted_zone()
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
            .ok_or_else(|| DrillError::Route53("CreateHostedZone answered no zone".into()))?;
        say(&format!(
            "Route53 (moto) at {}, zone {zone_id} for {domain}",
            moto.url()
        ));

        say(&format!("HyperShift's kinds are served from {}", opts.crds.describe()));
        let env = Environment::start(
            opts.scenario.clone(),
            EnvironmentOptions {
                crds: opts.crds.clone(),
                // Kubelets find the API server through Route53, as on AWS: until DNS moves,
                // the nodes keep talking to the source.
                dns: Some(DnsLookup {
                    endpoint_url: moto.url(),
                    zone_id: zone_id.clone(),
                    region: "us-east-1".into(),
                }),
                restore_trusted_ca: Some(ca_pem.clone()),
                external_dns: Some(ExternalDnsDeployment {
                    owner_id_prefix: OWNER_PREFIX.to_string(),
                }),
                clock: ferry_sim::clock::SimClock::scaled(opts.clock_scale),
                ..EnvironmentOptions::default()
            },
        )
        .await?;
        let hc = &env.scenario.hosted_cluster;
        say(&format!(
            "management clusters {} started; hosted cluster {}/{} seeded on {}",
            env.clusters
                .iter()
                .map(|c| c.sim.name().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            hc.namespace,
            hc.name,
            env.source().sim.name()
        ));

        // ferry's Route53 calls go through a throttling proxy when faults are on; external-dns
        // and the kubelets' lookups talk to moto directly.
        let route53_proxy = match opts.faults {
            Some(f) => Some(
                Route53ChaosProxy::start(moto.addr(), Chaos::for_service("route53", f.rate, f.seed))
                    .await
                    .map_err(service_error("the Route53 fault proxy"))?,
            ),
            None => None,
        };
        let route53_url = route53_proxy
            .as_ref()
            .map_or_else(|| moto.url(), Route53ChaosProxy::url);

        let kube_dir = dir.join("kubeconfigs");
        let written = env.write_kubeconfigs(&kube_dir)?;
        let path_of = |sim_name: Option<&str>| -> Option<PathBuf> {
            let n = sim_name?;
            written.iter().find(|(w, _, _)| w == n).map(|(_, _, p)| p.clone())
        };
        let source_kc = path_of(Some(env.source().sim.name()));
        let dest_kc = path_of(env.destination().map(|d| d.sim.name()));
        // One kubeconfig per hosted cluster's API, named after it, so that one site file serves
        // the whole fleet (`{namespace}`/`{name}` in the site are filled in per hosted cluster).
        let mut hosted_kc = None;
        for s in env.scenario.seeded() {
            let Some(api) = env.hosted_api(&s.spec.namespace, &s.spec.name) else {
                continue;
            };
            let path = kube_dir
                .join("hosted")
                .join(&s.spec.namespace)
                .join(format!("{}.kubeconfig", s.spec.name));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| DrillError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            api.sim()
                .write_kubeconfig(&path, api.sim().name())
                .map_err(ferry_sim::hypershift::environment::EnvironmentError::from)?;
            hosted_kc = Some(kube_dir.join("hosted").join("{namespace}").join("{name}.kubeconfig"));
        }
        let cluster = |alias: &str, p: Option<PathBuf>| match p {
            Some(p) => format!("[clusters.{alias}]\nkubeconfig = {}\n", toml_path(&p)),
            None => String::new(),
        };
        let site_text = format!(
            "# Written by `ferry drill`: the simulated clusters, moto (Route53) and a SigV4 S3.\n\
             # To run a phase by hand while the drill runs, export\n\
             #   AWS_ACCESS_KEY_ID={ACCESS_KEY} AWS_SECRET_ACCESS_KEY={SECRET_KEY}\n\
             # and run e.g. `ferry backup --site {site}`.\n\
             {src}{dst}{hosted}\
             [hosted_cluster]\nnamespace = {ns}\nname = {name}\nnodes = \"reuse\"\n\n\
             [backup]\ndir = \"backup\"\nbucket = {bucket}\nprefix = {prefix}\npresign_seconds = 3600\n\n\
             [dns]\nzone_id = {zone}\nexternal_dns_domain = {domain}\ntxt_suffix = {suffix}\n\n\
             [aws]\nregion = \"us-east-1\"\nendpoint_url = {s3}\nroute53_endpoint_url = {moto}\nforce_path_style = true\nca_bundle = \"s3-ca.pem\"\n\
             s3_encryption = \"sse-kms\"\ns3_kms_key_id = {kms}\n\n\
             [timeouts]\nrestore_seconds = 1200\nnodes_seconds = 1200\n\n\
             [clock]\nscale = {scale:?}\n\n\
             [params]\n# The destination's HyperShift ({profile}) {identity} etcd members with their identity.\n\
             etcd_init_member_identity = \"{member_identity}\"\n",
            profile = env.scenario.hypershift.name(),
            identity = if env.scenario.hypershift.etcd_init_member_identity() {
                "restores"
            } else {
                "does not restore"
            },
            member_identity = env.scenario.hypershift.etcd_init_member_identity(),
            site = dir.join("site.toml").display(),
            src = cluster("source", source_kc),
            dst = cluster("destination", dest_kc),
            hosted = cluster("hosted", hosted_kc),
            ns = toml_str(&hc.namespace),
            name = toml_str(&hc.name),
            bucket = toml_str(BUCKET),
            prefix = toml_str(PREFIX),
            zone = toml_str(&zone_id),
            domain = toml_str(&domain),
            suffix = toml_str(TXT_SUFFIX),
            s3 = toml_str(&s3.url()),
            moto = toml_str(&route53_url),
            kms = toml_str(KMS_KEY_ID),
            scale = opts.clock_scale,
        );
        let site_path = dir.join("site.toml");
        std::fs::write(&site_path, &site_text).map_err(|source| DrillError::Io {
            path: site_path.clone(),
            source,
        })?;
        let site = SiteConfig::load(&site_path)?;
        let run_config = site.run_config()?;
        let runtime = Runtime::new(ferry::runtime::cache::default_dir()).map_err(service_error("the wasm runtime"))?;
        let audit_key = new_audit_key(&dir.join("audit.key"))?;
        let mut chaos = Vec::new();
        if let Some(f) = opts.faults {
            let mut sims: Vec<&ferry_sim::Sim> = env.clusters.iter().map(|c| &c.sim).collect();
            sims.extend(env.hosted_apis.iter().map(|h| h.sim()));
            for sim in sims {
                let c = Chaos::for_service(sim.name(), f.rate, f.seed);
                sim.faults().set_chaos(Some(c.clone()));
                chaos.push(c);
            }
            let c = Chaos::for_service("s3", f.rate, f.seed);
            s3.set_chaos(Some(c.clone()));
            chaos.push(c);
            chaos.extend(route53_proxy.as_ref().map(Route53ChaosProxy::chaos));
            say(&format!(
                "faults: {:.1}% of the requests to {} (seed {})",
                f.rate * 100.0,
                chaos.iter().map(|c| c.service()).collect::<Vec<_>>().join(", "),
                f.seed
            ));
        }
        let baseline = env
            .clusters
            .iter()
            .map(|c| (c.sim.name().to_string(), settings(c.sim.store())))
            .collect();
        Ok(Drill {
            env,
            s3,
            moto,
            zone_id,
            audit: dir.join("audit.jsonl"),
            audit_key,
            dir,
            temp,
            site,
            site_path,
            run_config,
            runtime,
            guest: GuestChoice::stock(),
            progress: opts.progress,
            baseline,
            chaos,
            faults: opts.faults,
            _route53_proxy: route53_proxy,
        })
    }

    /// The simulated management clusters and hosted cluster.
    pub fn env(&self) -> &Environment {
        &self.env
    }

    /// moto's URL (Route53).
    pub fn moto_url(&self) -> String {
        self.moto.url()
    }

    /// A Route53 client for moto, with the drill's credentials.
    pub fn route53(&self) -> aws_sdk_route53::Client {
        route53_client(&self.moto.url())
    }

    /// An S3 client for the drill's bucket (for checking what a run stored).
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        ferry::capabilities::objects::provider::s3_client(
            &ferry::capabilities::objects::provider::S3Settings {
                region: "us-east-1".into(),
                endpoint_url: Some(self.s3.url()),
                force_path_style: true,
                ca_bundle_pem: self.s3.ca_pem().map(|p| p.as_bytes().to_vec()),
                profile: None,
            },
            Some(self.credentials()),
        )
        .await
    }

    /// The Route53 hosted zone id (without `/hostedzone/`).
    pub fn zone_id(&self) -> &str {
        &self.zone_id
    }

    /// The backup bucket.
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// The SigV4-checking S3 server.
    pub fn s3(&self) -> &SigV4S3Server {
        &self.s3
    }

    /// The AWS credentials the drill's runs use.
    pub fn credentials(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "ferry-drill")
    }

    /// The external-dns controller of management cluster `cluster` (e.g. `source`).
    pub fn external_dns(&self, cluster: &str) -> Option<&ExternalDns> {
        self.env
            .clusters
            .iter()
            .find(|c| c.sim.name() == cluster)
            .and_then(|c| c.external_dns.as_ref())
    }

    /// The source's external-dns (stop it to make DNS never move).
    pub fn source_external_dns(&self) -> Option<&ExternalDns> {
        self.env.source().external_dns.as_ref()
    }

    /// The destination's external-dns.
    pub fn destination_external_dns(&self) -> Option<&ExternalDns> {
        self.env.destination().and_then(|d| d.external_dns.as_ref())
    }

    /// The external-dns owner id of management cluster `cluster`.
    pub fn owner_id(&self, cluster: &str) -> String {
        format!("{OWNER_PREFIX}{cluster}")
    }

    /// The drill's directory (kubeconfigs, site.toml, backup, audit.jsonl, s3).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The site config (as loaded from [`Drill::site_path`]).
    pub fn site(&self) -> &SiteConfig {
        &self.site
    }

    /// The site file.
    pub fn site_path(&self) -> &Path {
        &self.site_path
    }

    /// The run config every phase runs with.
    pub fn run_config(&self) -> &RunConfig {
        &self.run_config
    }

    /// Changes the run config (e.g. timeouts, params) for later phases.
    pub fn run_config_mut(&mut self) -> &mut RunConfig {
        &mut self.run_config
    }

    /// The audit trail all phases append to.
    pub fn audit_path(&self) -> &Path {
        &self.audit
    }

    /// The environment a `ferry` process needs to run phases against this drill as a user
    /// would (`ferry backup --site DIR/site.toml --audit DIR/audit.jsonl`): the S3 and Route53
    /// credentials and the audit key file. `ferry lab up` writes it to `lab.env`; the crash
    /// matrix passes it to the processes it kills.
    pub fn process_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("FERRY_AUDIT_KEY_FILE", self.dir.join("audit.key").display().to_string()),
        ]
    }

    /// The replicas of the source's control-plane Deployments, by name: what an abort must
    /// bring back to what they were before the backup.
    pub fn source_control_plane_replicas(&self) -> BTreeMap<String, Value> {
        self.env
            .source()
            .sim
            .store()
            .list(
                &registry::DEPLOYMENT,
                Some(&self.env.hcp_namespace()),
                &ListOptions::default(),
            )
            .map(|l| l.items)
            .unwrap_or_default()
            .iter()
            .map(|d| {
                (
                    d["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                    d["spec"]["replicas"].clone(),
                )
            })
            .collect()
    }

    /// The state the stock guest's marker ConfigMap on the source records (`aborted`...), if
    /// there is a marker.
    pub fn marker_state(&self) -> Option<String> {
        let hc = &self.env.scenario.hosted_cluster;
        let cm = self
            .env
            .source()
            .sim
            .store()
            .get(
                &registry::CONFIG_MAP,
                Some(&hc.namespace),
                &format!("ferry-dr-{}", hc.name),
            )
            .ok()?;
        let state: Value = serde_json::from_str(cm["data"]["state.json"].as_str()?).ok()?;
        state["state"].as_str().map(str::to_string)
    }

    /// Turns the injected faults off (before checking the end state) or on again.
    pub fn set_faults_active(&self, active: bool) {
        for c in &self.chaos {
            c.set_active(active);
        }
    }

    /// What the faults did so far; `None` without faults.
    pub fn fault_report(&self) -> Option<FaultReport> {
        let f = self.faults?;
        let failed_calls = std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["kind"] == "call" && matches!(r["outcome"].as_str(), Some("unavailable" | "conflict")))
            .count() as u64;
        Some(FaultReport {
            rate: f.rate,
            seed: f.seed,
            injected: self
                .chaos
                .iter()
                .map(|c| (c.service().to_string(), c.injected()))
                .collect(),
            failed_calls,
        })
    }

    /// Runs phases with another guest or policy from now on.
    pub fn set_guest(&mut self, guest: GuestChoice) {
        self.guest = guest;
    }

    /// The options phases run with (guest, audit, progress, credentials).
    pub fn dr_options(&self) -> DrOptions {
        DrOptions {
            guest: self.guest.clone(),
            plan: false,
            audit: Some(self.audit.clone()),
            audit_key: Some(self.audit_key.clone()),
            progress: self.progress.clone(),
            aws_credentials: Some(self.credentials()),
            cache_dir: ferry::runtime::cache::default_dir(),
            break_lease: false,
            plan_book: None,
        }
    }

    /// Runs one phase (own store and limits) with the drill's guest, policy and audit.
    pub async fn phase(&self, phase: Phase, args: &PhaseArgs) -> Result<PhaseReport, RunFailure> {
        ferry_dr::phases::run_phase_with(&self.runtime, &self.run_config, phase, args, &self.dr_options()).await
    }

    /// Runs one phase with other options (`--break-lease`, plan), the drill's runtime and
    /// config.
    pub async fn phase_with(
        &self,
        phase: Phase,
        args: &PhaseArgs,
        opts: &DrOptions,
    ) -> Result<PhaseReport, RunFailure> {
        ferry_dr::phases::run_phase_with(&self.runtime, &self.run_config, phase, args, opts).await
    }

    /// Runs `phase` as change management does: a plan (`--plan --plan-out`), approved with the
    /// drill's audit key, then applied (`--apply`). The plan file is kept as
    /// `<dir>/plans/<phase>.plan.json`.
    pub async fn phase_approved(&self, phase: Phase, args: &PhaseArgs) -> Result<Approved, RunFailure> {
        let book = Arc::new(ferry::plan::PlanBook::recording());
        let planned = self
            .phase_with(
                phase,
                args,
                &DrOptions {
                    plan: true,
                    plan_book: Some(book.clone()),
                    ..self.dr_options()
                },
            )
            .await?;
        let dir = self.dir.join("plans");
        let path = dir.join(format!("{phase}.plan.json"));
        let io = |source| RunFailure::Host(anyhow::anyhow!("cannot write {}: {source}", path.display()));
        let mut plan = book
            .recorded()
            .ok_or_else(|| RunFailure::Host(anyhow::anyhow!("the {phase} plan run recorded no plan")))?;
        if !planned.succeeded() {
            return Ok(Approved {
                plan,
                path,
                planned,
                applied: None,
                not_done: Vec::new(),
            });
        }
        let now = ferry::audit::humantime_rfc3339(std::time::SystemTime::now());
        plan.approve(&self.audit_key, Some("ferry drill".into()), now);
        std::fs::create_dir_all(&dir).map_err(io)?;
        plan.save(&path).map_err(io)?;
        let approved = ferry::plan::PlanFile::load_approved(&path, Some(&self.audit_key))?;
        let book = Arc::new(ferry::plan::PlanBook::enforcing(approved));
        let applied = self
            .phase_with(
                phase,
                args,
                &DrOptions {
                    plan_book: Some(book.clone()),
                    ..self.dr_options()
                },
            )
            .await?;
        Ok(Approved {
            plan,
            path,
            planned,
            applied: Some(applied),
            not_done: book.not_done(),
        })
    }

    /// Runs backup → restore → teardown → finish.
    pub async fn migrate(&self) -> MigrateReport {
        self.migrate_with(&MigrateOptions::default()).await
    }

    /// Runs the migration with options (arguments, `from`).
    pub async fn migrate_with(&self, mopts: &MigrateOptions) -> MigrateReport {
        let mut mopts = mopts.clone();
        if mopts.command.is_none() {
            mopts.command = Some(ferry_dr::phases::migrate_command(&self.site_path));
        }
        ferry_dr::phases::migrate(&self.run_config, &self.dr_options(), &mopts).await
    }

    /// The fleet options of this drill: each member's audit trail under `<dir>/audit/`, its
    /// resume and abort commands against the drill's site.
    pub fn fleet_options(&self, concurrency: usize) -> ferry_dr::fleet::FleetOptions {
        ferry_dr::fleet::FleetOptions {
            concurrency,
            audit_dir: Some(self.dir.join("audit")),
            command: ferry_dr::phases::migrate_command(&self.site_path),
            args: PhaseArgs::default(),
            view: None,
        }
    }

    /// Selects the fleet on the source and migrates it with the drill's guest and credentials.
    pub async fn migrate_fleet(
        &self,
        selection: &ferry_dr::fleet::Selection,
        fopts: &ferry_dr::fleet::FleetOptions,
    ) -> Result<ferry_dr::fleet::FleetReport, ferry_dr::fleet::FleetError> {
        let members = ferry_dr::fleet::select(&self.site, selection).await?;
        Ok(ferry_dr::fleet::migrate(&self.site, &members, &self.dr_options(), fopts).await)
    }

    /// Checks each member of a fleet migration as [`Drill::verify`] checks one hosted cluster,
    /// against its own audit trail.
    pub async fn verify_fleet(
        &self,
        report: &ferry_dr::fleet::FleetReport,
        fopts: &ferry_dr::fleet::FleetOptions,
    ) -> Vec<(ferry_dr::fleet::Member, DrillReport)> {
        let mut out = Vec::new();
        for r in &report.members {
            let audit = fopts.audit_path(&r.member).unwrap_or_else(|| self.audit.clone());
            let checks = self
                .verify_hosted_cluster(&r.member.namespace, &r.member.name, &audit)
                .await;
            out.push((r.member.clone(), checks));
        }
        out
    }

    /// Checks the outcome of a migration; each check is named (see [`Check::name`]).
    pub async fn verify(&self) -> DrillReport {
        let hc = self.env.scenario.hosted_cluster.clone();
        self.verify_hosted_cluster(&hc.namespace, &hc.name, &self.audit).await
    }

    /// Checks the outcome of the migration of seeded hosted cluster `namespace/name` (the
    /// first, or a fleet member) whose audit trail is `audit`.
    pub async fn verify_hosted_cluster(&self, namespace: &str, name: &str, audit: &Path) -> DrillReport {
        let mut report = DrillReport::default();
        let seeded = self.env.scenario.seeded();
        let Some(s) = seeded
            .iter()
            .find(|s| s.spec.namespace == namespace && s.spec.name == name)
        else {
            report.push(
                "seeded",
                vec![format!("{namespace}/{name} is not a hosted cluster of the scenario")],
                String::new(),
            );
            return report;
        };
        let first = s.index == 0;
        let no_siblings: &[String] = &[];
        let siblings = if first {
            self.env.scenario.other_hosted_clusters.as_slice()
        } else {
            no_siblings
        };
        // Every other HostedCluster of its namespace, to tell `<name>-…` objects apart.
        let neighbours: Vec<String> = seeded
            .iter()
            .filter(|o| o.spec.namespace == namespace && o.spec.name != name)
            .map(|o| o.spec.name.clone())
            .chain(if s.spec.namespace == self.env.scenario.hosted_cluster.namespace {
                self.env.scenario.other_hosted_clusters.clone()
            } else {
                Vec::new()
            })
            .collect();
        let no_keys = BTreeMap::new();
        let t = Target {
            hc: &s.spec,
            hcp_ns: ferry_sim::hypershift::hcp_namespace(namespace, name),
            etcd_keys: if first { &self.env.scenario.etcd_keys } else { &no_keys },
            siblings,
            neighbours,
            audit,
        };
        self.check_etcd(&t, &mut report).await;
        self.check_dns(&t, &mut report).await;
        self.check_source(&t, &mut report);
        self.check_backup(&t, &mut report);
        self.check_backup_encrypted(&t, &mut report).await;
        self.check_operators(&t, &mut report);
        self.check_restored_signal(&t, &mut report);
        self.check_operator_running(&mut report);
        self.check_etcd_one_cluster(&t, &mut report).await;
        self.check_management_restored(&t, &mut report);
        self.check_audit(&t, &mut report);
        report
    }

    /// `etcd-one-cluster`: every etcd member of the destination's control plane names the
    /// same cluster and lists every member (a split HighlyAvailable restore passes every
    /// condition upstream sets).
    async fn check_etcd_one_cluster(&self, t: &Target<'_>, report: &mut DrillReport) {
        let mut problems = Vec::new();
        let mut detail = String::new();
        match self.env.destination() {
            None => problems.push("the scenario has no destination cluster".to_string()),
            Some(dest) => {
                let members = dest.controllers.etcd_members(&t.hcp_ns);
                if members.is_empty() {
                    problems.push(format!("no etcd member runs in {} on the destination", t.hcp_ns));
                }
                let mut clusters = std::collections::BTreeSet::new();
                for (pod, client) in &members {
                    match (client.member_and_cluster_id().await, client.member_list().await) {
                        (Ok((_, cluster)), Ok(list)) => {
                            if list.len() != members.len() {
                                problems.push(format!("{pod} lists {} member(s) of {}", list.len(), members.len()));
                            }
                            clusters.insert(cluster);
                        }
                        (Err(e), _) | (_, Err(e)) => problems.push(format!("{pod}: {e}")),
                    }
                }
                if clusters.len() > 1 {
                    problems.push(format!(
                        "the {} members are {} clusters ({})",
                        members.len(),
                        clusters.len(),
                        clusters.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                detail = format!(
                    "{} member(s) in one etcd cluster ({})",
                    members.len(),
                    clusters.iter().next().cloned().unwrap_or_default()
                );
            }
        }
        report.push("etcd-one-cluster", problems, detail);
    }

    /// `management-restored`: every setting ferry changed on either management cluster is
    /// back as it was before the drill (the operator's and external-dns' replicas, the
    /// webhooks' selectors, no note left), and no restored Machine is still kept from
    /// remediation.
    fn check_management_restored(&self, t: &Target<'_>, report: &mut DrillReport) {
        let mut problems = Vec::new();
        let mut compared = 0;
        for c in &self.env.clusters {
            let name = c.sim.name();
            let now = settings(c.sim.store());
            for (what, before) in self.baseline.get(name).into_iter().flatten() {
                compared += 1;
                match now.get(what) {
                    Some(after) if after == before => {}
                    Some(after) => problems.push(format!("{name}: {what} was {before}, is {after}")),
                    None => problems.push(format!("{name}: {what} is gone")),
                }
            }
        }
        if let Some(dest) = self.env.destination() {
            let machines = dest
                .sim
                .store()
                .list(&registry::MACHINE, Some(&t.hcp_ns), &ListOptions::default())
                .map(|l| l.items)
                .unwrap_or_default();
            for m in machines {
                let annotations = m["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
                if annotations.contains_key(SKIP_REMEDIATION_SET) || annotations.contains_key(SKIP_REMEDIATION) {
                    problems.push(format!(
                        "{}: Machine {} is still kept from remediation",
                        dest.sim.name(),
                        m["metadata"]["name"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
        report.push(
            "management-restored",
            problems,
            format!("{compared} setting(s) on the management clusters as before; no Machine kept from remediation"),
        );
    }

    /// What the stock guest must refuse of this scenario in preflight, before it changes
    /// anything, and the words its refusal carries: a HighlyAvailable hosted cluster going to
    /// a HyperShift whose `etcd-init` would split its etcd (OCPBUGS-99534), when the site does
    /// not say the destination restores members with their identity.
    pub fn expected_refusal(&self) -> Option<&'static str> {
        let s = &self.env.scenario;
        let says_fixed = self
            .run_config
            .params
            .get("etcd_init_member_identity")
            .is_some_and(|v| v == "true");
        (s.hosted_cluster.availability_policy == "HighlyAvailable" && !says_fixed).then_some("OCPBUGS-99534")
    }

    /// Checks a migration the stock guest had to refuse ([`Drill::expected_refusal`]):
    /// `refused` (backup stopped in preflight, saying why) and `source-untouched` (nothing
    /// paused or scaled, no marker), then the audit checks.
    pub async fn verify_refusal(&self, migration: &MigrateReport, why: &str) -> DrillReport {
        let mut report = DrillReport::default();
        let hc = self.env.scenario.hosted_cluster.clone();
        let refused = match migration.failure() {
            Some((_, message)) if migration.failed == Some(Phase::Backup) && message.contains(why) => Vec::new(),
            Some((_, message)) => vec![format!(
                "the migration stopped in {:?} without naming {why}: {message}",
                migration.failed
            )],
            None => vec![format!("the migration was not refused; it must be ({why})")],
        };
        report.push(
            "refused",
            refused,
            format!("backup refused in preflight, naming {why}: the destination's etcd-init would split the etcd"),
        );
        let store = self.env.source().sim.store();
        let mut problems = Vec::new();
        match store.get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name) {
            Ok(o) if o["spec"]["pausedUntil"].is_null() => {}
            Ok(o) => problems.push(format!("the HostedCluster is paused ({})", o["spec"]["pausedUntil"])),
            Err(e) => problems.push(format!("the HostedCluster is gone: {e}")),
        }
        if let Some(state) = self.marker_state() {
            problems.push(format!("a backup marker exists ({state})"));
        }
        for (d, replicas) in self.source_control_plane_replicas() {
            if replicas == 0 {
                problems.push(format!("Deployment {d} is scaled to 0"));
            }
        }
        report.push(
            "source-untouched",
            problems,
            "the source runs the hosted cluster as before: nothing paused or scaled, no marker".into(),
        );
        let t = Target {
            hc: &hc,
            hcp_ns: self.env.hcp_namespace(),
            etcd_keys: &self.env.scenario.etcd_keys,
            siblings: &[],
            neighbours: Vec::new(),
            audit: &self.audit,
        };
        self.check_management_restored(&t, &mut report);
        self.check_audit(&t, &mut report);
        report
    }

    /// The physical minimum of `migration`'s downtime: its snapshot stream, the destination's
    /// download and restore, and its external-dns publishing, each as measured in this run.
    pub fn physical_minimum(&self, migration: &MigrateReport) -> PhysicalMinimum {
        let snapshot = migration
            .phases
            .iter()
            .filter_map(ferry_dr::phases::PhaseResult::report)
            .filter(|r| r.phase == Phase::Backup)
            .filter_map(PhaseReport::summary)
            .flat_map(|s| s["steps"].as_array().cloned().unwrap_or_default())
            .find(|st| st["step"] == "snapshot" && st["result"] == "done")
            .and_then(|st| st["ms"].as_u64());
        let hcp_ns = self.env.hcp_namespace();
        let restore = self.env.destination().and_then(|d| {
            d.controllers.log().entries().into_iter().rev().find_map(|e| match e {
                OperatorEvent::EtcdStarted {
                    hcp_namespace,
                    restore_took: Some(t),
                    ..
                } if hcp_namespace == hcp_ns => Some(t.as_millis() as u64),
                _ => None,
            })
        });
        let dns = self
            .destination_external_dns()
            .and_then(|e| e.publish_latencies().last().map(|d| d.as_millis() as u64));
        PhysicalMinimum {
            snapshot_and_upload_ms: snapshot,
            download_and_restore_ms: restore,
            dns_ms: dns,
        }
    }

    /// `downtime`: how long the hosted cluster's API could not be written in `migration`,
    /// against [`DOWNTIME_GOAL`], with the physical minimum of the same run and the ratio
    /// (whose goal, [`DOWNTIME_RATIO_GOAL`], the benchmark judges on a 1 GiB etcd).
    pub fn check_downtime(&self, migration: &MigrateReport) -> Check {
        let min = self.physical_minimum(migration);
        let secs = |ms: u64| format!("{:.1}s", ms as f64 / 1000.0);
        let parts = format!(
            "physical minimum {} (snapshot and upload {}, download and restore {}, DNS {})",
            secs(min.total_ms()),
            min.snapshot_and_upload_ms.map(secs).unwrap_or_else(|| "?".into()),
            min.download_and_restore_ms.map(secs).unwrap_or_else(|| "?".into()),
            min.dns_ms.map(secs).unwrap_or_else(|| "?".into()),
        );
        match migration.downtime_ms() {
            None => Check {
                name: "downtime",
                passed: false,
                detail: "the migration did not measure the API's downtime (restore did not see a write served)".into(),
            },
            Some(ms) => {
                let ratio = if min.total_ms() > 0 {
                    format!(", {:.2}× the {parts}", ms as f64 / min.total_ms() as f64)
                } else {
                    format!(", {parts}")
                };
                let passed = Duration::from_millis(ms) <= DOWNTIME_GOAL;
                Check {
                    name: "downtime",
                    passed,
                    detail: format!(
                        "the hosted cluster's API was down {} (goal {}){ratio}",
                        secs(ms),
                        secs(DOWNTIME_GOAL.as_millis() as u64)
                    ),
                }
            }
        }
    }

    /// `restored-signal`: the destination knows its control plane came from a backup: etcd
    /// was restored from the snapshot (`EtcdSnapshotRestored` on the HostedControlPlane) and
    /// the hosted cluster config operator ran its recovery (`HostedClusterRestoredFromBackup`,
    /// set because of the `hypershift.openshift.io/restored-from-backup` annotation).
    fn check_restored_signal(&self, t: &Target<'_>, report: &mut DrillReport) {
        let hc = t.hc;
        let hcp_ns = &t.hcp_ns;
        let mut problems = Vec::new();
        match self.env.destination() {
            None => problems.push("the scenario has no destination cluster".to_string()),
            Some(dest) => match dest
                .sim
                .store()
                .get(&registry::HOSTED_CONTROL_PLANE, Some(hcp_ns), &hc.name)
            {
                Err(e) => problems.push(format!(
                    "no HostedControlPlane {hcp_ns}/{} on the destination: {e}",
                    hc.name
                )),
                Ok(hcp) => {
                    for ty in ["EtcdSnapshotRestored", "HostedClusterRestoredFromBackup"] {
                        match condition_status(&hcp, ty).as_deref() {
                            Some("True") => {}
                            other => problems.push(format!("the HostedControlPlane's {ty} is {other:?}, not True")),
                        }
                    }
                }
            },
        }
        report.push(
            "restored-signal",
            problems,
            "the destination's control plane reports EtcdSnapshotRestored and HostedClusterRestoredFromBackup".into(),
        );
    }

    /// `operator-running`: the source's HyperShift operator runs at the end, whatever
    /// happened (teardown scales it down and must bring it back).
    fn check_operator_running(&self, report: &mut DrillReport) {
        let store = self.env.source().sim.store();
        let problems = if ferry_sim::hypershift::controllers::operator_running(store) {
            Vec::new()
        } else {
            let replicas = store
                .get(&registry::DEPLOYMENT, Some("hypershift"), "operator")
                .map(|d| d["spec"]["replicas"].to_string())
                .unwrap_or_else(|e| format!("unreadable ({e})"));
            vec![format!(
                "the source's HyperShift operator (hypershift/operator, replicas {replicas}) has no running pod: every other hosted cluster there is unmanaged"
            )]
        };
        report.push(
            "operator-running",
            problems,
            "the source's HyperShift operator runs".into(),
        );
    }

    async fn check_etcd(&self, t: &Target<'_>, report: &mut DrillReport) {
        let hcp_ns = &t.hcp_ns;
        let keys = t.etcd_keys;
        let mut problems = Vec::new();
        match self.env.destination() {
            None => problems.push("the scenario has no destination cluster".to_string()),
            Some(dest) => match dest.controllers.wait_for_etcd(hcp_ns, Duration::from_secs(30)).await {
                None => problems.push(format!("no hosted etcd runs for {hcp_ns} on the destination")),
                Some(client) => {
                    for (k, v) in keys {
                        match client.get(k).await {
                            Ok(Some(got)) if &got == v => {}
                            Ok(Some(got)) => problems.push(format!("{k} = {got:?}, expected {v:?}")),
                            Ok(None) => problems.push(format!("{k} is missing")),
                            Err(e) => problems.push(format!("cannot read {k}: {e}")),
                        }
                    }
                }
            },
        }
        report.push(
            "etcd-data",
            problems,
            format!("{} key(s) read back from the destination's hosted etcd", keys.len()),
        );
    }

    async fn zone_records(&self) -> Result<Vec<(String, RrType, Vec<String>)>, String> {
        let client = self.route53();
        let mut out = Vec::new();
        let mut start: Option<(String, RrType)> = None;
        loop {
            let mut req = client.list_resource_record_sets().hosted_zone_id(&self.zone_id);
            if let Some((name, ty)) = &start {
                req = req.start_record_name(name).start_record_type(ty.clone());
            }
            let page = req.send().await.map_err(|e| {
                format!(
                    "ListResourceRecordSets failed: {}",
                    ferry::capabilities::provider::error_chain(&e)
                )
            })?;
            for set in page.resource_record_sets() {
                out.push((
                    normalize(set.name()),
                    set.r#type().clone(),
                    set.resource_records().iter().map(|r| r.value().to_string()).collect(),
                ));
            }
            match (page.is_truncated(), page.next_record_name(), page.next_record_type()) {
                (true, Some(n), Some(t)) => start = Some((n.to_string(), t.clone())),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn check_dns(&self, t: &Target<'_>, report: &mut DrillReport) {
        let hcp_ns = &t.hcp_ns;
        let dest_name = self.env.destination().map(|d| d.sim.name().to_string());
        let src_owner = self.owner_id(self.env.source().sim.name());
        let dest_owner = dest_name.as_deref().map(|n| self.owner_id(n)).unwrap_or_default();
        let domain = normalize(&self.env.scenario.hosted_cluster.external_dns_domain);
        // Both TXT formats name their host the way the destination's external-dns reads them.
        let dest_args = self.env.destination().and_then(|d| {
            d.sim
                .store()
                .get(&registry::DEPLOYMENT, Some("hypershift"), "external-dns")
                .ok()
                .and_then(|dep| Args::from_deployment(&dep).ok())
        });
        let Some(suffix_opts) = dest_args else {
            report.push(
                "dns-moved",
                vec!["the destination runs no external-dns (Deployment hypershift/external-dns)".into()],
                String::new(),
            );
            return;
        };
        let mut problems = Vec::new();
        let records = match self.zone_records().await {
            Ok(r) => r,
            Err(e) => {
                report.push("dns-moved", vec![e], String::new());
                return;
            }
        };
        let mut hosts = Vec::new();
        if let Some(dest) = self.env.destination() {
            match public_hosts(dest.sim.store(), hcp_ns) {
                Ok(found) => hosts.extend(
                    found
                        .into_iter()
                        .filter(|h| *h == domain || h.ends_with(&format!(".{domain}"))),
                ),
                Err(e) => problems.push(format!(
                    "cannot list Routes and Services of {hcp_ns} on the destination: {e}"
                )),
            }
        }
        if hosts.is_empty() && problems.is_empty() {
            problems.push(format!(
                "the destination publishes no public hostname (Route or annotated Service) in {hcp_ns} under {domain}"
            ));
        }
        for host in &hosts {
            let has_record = records
                .iter()
                .any(|(n, t, _)| n == host && matches!(t, RrType::A | RrType::Cname));
            if !has_record {
                problems.push(format!("no A/CNAME record for {host}"));
                continue;
            }
            let owners: Vec<String> = records
                .iter()
                .filter(|(n, t, _)| *t == RrType::Txt && suffix_opts.host_of_txt(n).as_deref() == Some(host.as_str()))
                .flat_map(|(_, _, values)| values.iter().filter_map(|v| parse_txt(v)).map(|o| o.owner))
                .collect();
            if !owners.contains(&dest_owner) {
                problems.push(format!("{host} is owned by {owners:?}, not {dest_owner}"));
            }
        }
        for (name, ty, values) in &records {
            if *ty != RrType::Txt {
                continue;
            }
            for o in values.iter().filter_map(|v| parse_txt(v)) {
                let ours = o
                    .resource
                    .as_deref()
                    .is_some_and(|r| r.contains(&format!("/{hcp_ns}/")))
                    || suffix_opts.host_of_txt(name).is_some_and(|h| hosts.contains(&h));
                if o.owner == src_owner && ours {
                    problems.push(format!("{name} is still owned by the source ({src_owner})"));
                }
            }
        }
        report.push(
            "dns-moved",
            problems,
            format!("{} host(s) resolve to records owned by {dest_owner}", hosts.len()),
        );
    }

    fn check_source(&self, t: &Target<'_>, report: &mut DrillReport) {
        let store = self.env.source().sim.store();
        let hc = t.hc;
        let hcp_ns = &t.hcp_ns;
        let mut problems = Vec::new();
        if store
            .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
            .is_ok()
        {
            problems.push(format!("HostedCluster {}/{} still exists", hc.namespace, hc.name));
        }
        let list = |kind: &'static ferry_sim::KindInfo, ns: &str| {
            store
                .list(kind, Some(ns), &ListOptions::default())
                .map(|l| l.items)
                .unwrap_or_default()
        };
        let name_of = |o: &Value| o["metadata"]["name"].as_str().unwrap_or_default().to_string();
        for np in list(&registry::NODE_POOL, &hc.namespace) {
            if np["spec"]["clusterName"].as_str() == Some(hc.name.as_str()) {
                problems.push(format!("NodePool {} still exists", name_of(&np)));
            }
        }
        if store.get(&registry::NAMESPACE, None, hcp_ns).is_ok() {
            problems.push(format!("the HCP namespace {hcp_ns} still exists"));
        }
        let prefix = format!("{}-", hc.name);
        // `prod-neighbour-pull-secret` is the neighbour's, not `prod`'s.
        let others: Vec<String> = t.neighbours.iter().map(|o| format!("{o}-")).collect();
        for (kind, what) in [(&registry::SECRET, "Secret"), (&registry::CONFIG_MAP, "ConfigMap")] {
            for o in list(kind, &hc.namespace) {
                let n = name_of(&o);
                if n.starts_with(&prefix) && !others.iter().any(|p| p.len() > prefix.len() && n.starts_with(p)) {
                    problems.push(format!("{what} {}/{n} still exists", hc.namespace));
                }
            }
        }
        for other in t.siblings {
            match store.get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), other) {
                Err(_) => problems.push(format!("the other HostedCluster {other} is gone")),
                Ok(o) => {
                    if !o["metadata"]["deletionTimestamp"].is_null() {
                        problems.push(format!("the other HostedCluster {other} is being deleted"));
                    }
                    if !o["spec"]["pausedUntil"].is_null() {
                        problems.push(format!("the other HostedCluster {other} was paused"));
                    }
                }
            }
        }
        report.push(
            "source-clean",
            problems,
            format!(
                "no trace of {}/{} on the source; {} other hosted cluster(s) untouched",
                hc.namespace,
                hc.name,
                t.siblings.len()
            ),
        );
    }

    /// `backup-encrypted`: every object of the backup reports SSE-KMS with the site's key.
    async fn check_backup_encrypted(&self, t: &Target<'_>, report: &mut DrillReport) {
        let client = self.s3_client().await;
        let bucket = ferry::capabilities::objects::provider::Bucket::new(client, BUCKET).with_encryption(
            ferry::capabilities::objects::provider::Encryption::SseKms {
                key_id: Some(KMS_KEY_ID.into()),
            },
        );
        let mut problems = Vec::new();
        let root = ferry_hcp_model::backup_root(PREFIX, &t.hc.namespace, &t.hc.name);
        let listed = match bucket.list(&root).await {
            Ok(l) => l,
            Err(e) => {
                report.push(
                    "backup-encrypted",
                    vec![format!("cannot list the backup: {e}")],
                    String::new(),
                );
                return;
            }
        };
        if listed.is_empty() {
            problems.push(format!("nothing under s3://{BUCKET}/{root}"));
        }
        for object in &listed {
            if let Err(e) = bucket.head(&object.key).await {
                problems.push(e.to_string());
            }
        }
        report.push(
            "backup-encrypted",
            problems,
            format!("{} objects with SSE-KMS key {KMS_KEY_ID}", listed.len()),
        );
    }

    fn check_backup(&self, t: &Target<'_>, report: &mut DrillReport) {
        let key_root = ferry_hcp_model::backup_root(PREFIX, &t.hc.namespace, &t.hc.name);
        let root = self.s3.root().join(BUCKET).join(&key_root);
        let mut found = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| n == "index.json") {
                    found.push(p);
                }
            }
        }
        let problems = if found.is_empty() {
            vec![format!("no index.json under s3://{BUCKET}/{key_root}")]
        } else {
            Vec::new()
        };
        let keys: Vec<String> = found
            .iter()
            .filter_map(|p| p.strip_prefix(self.s3.root().join(BUCKET)).ok())
            .map(|p| p.display().to_string())
            .collect();
        report.push(
            "backup-kept",
            problems,
            format!("s3://{BUCKET}/ has {}", keys.join(", ")),
        );
    }

    fn check_operators(&self, t: &Target<'_>, report: &mut DrillReport) {
        let hc = t.hc;
        let mut problems = Vec::new();
        for c in &self.env.clusters {
            let ran = c.controllers.log().any(|e| {
                matches!(e, OperatorEvent::DeletionFlowRan { hc_namespace, hc_name, .. }
                    if *hc_namespace == hc.namespace && *hc_name == hc.name)
            });
            if ran {
                problems.push(format!(
                    "the HostedCluster deletion flow ran on {} (NodePools and CAPI Cluster deleted)",
                    c.sim.name()
                ));
            }
        }
        report.push(
            "no-deletion-flow",
            problems,
            "no operator ran the HostedCluster deletion flow".into(),
        );
    }

    fn check_audit(&self, t: &Target<'_>, report: &mut DrillReport) {
        let mut problems = Vec::new();
        let mut records = 0usize;
        match std::fs::read_to_string(t.audit) {
            Err(e) => problems.push(format!("cannot read the audit trail {}: {e}", t.audit.display())),
            Ok(text) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    records += 1;
                    let Ok(r) = serde_json::from_str::<Value>(line) else {
                        problems.push(format!("unreadable audit line: {line}"));
                        continue;
                    };
                    let denied = r["decision"].as_str() == Some("deny")
                        || (r["kind"].as_str() == Some("load") && r["outcome"].as_str() == Some("refused"));
                    if denied && problems.len() < 10 {
                        problems.push(format!(
                            "{} denied in {}: {} {} ({})",
                            r["kind"].as_str().unwrap_or_default(),
                            r["phase"].as_str().unwrap_or_default(),
                            r["action"].as_str().unwrap_or_default(),
                            r["resource"].as_str().unwrap_or_default(),
                            r["message"].as_str().unwrap_or_default()
                        ));
                    }
                }
            }
        }
        report.push(
            "audit-no-denials",
            problems,
            format!("{records} audit record(s), none denied"),
        );
        let (problems, detail) = match ferry::audit::verify(t.audit, Some(&self.audit_key)) {
            Ok(v) if v.unsigned_tail == 0 => (
                Vec::new(),
                format!("{} checkpoint(s) signed, chain intact", v.checkpoints),
            ),
            Ok(v) => (
                vec![format!("{} record(s) after the last checkpoint", v.unsigned_tail)],
                String::new(),
            ),
            Err(e) => (vec![e.to_string()], String::new()),
        };
        report.push("audit-verified", problems, detail);
    }

    /// Stops external-dns, the clusters and the servers; removes the
    /// directory unless it was `keep_dir`.
    pub async fn shutdown(self) {
        self.env.shutdown().await;
        drop(self.s3);
        drop(self.moto);
        drop(self.temp);
    }
}

/// The API groups whose CRDs `--crds-from` reads: HyperShift's, Cluster API's and CAPA's.
pub const CRD_GROUPS: &[&str] = &[
    "hypershift.openshift.io",
    "cluster.x-k8s.io",
    "infrastructure.cluster.x-k8s.io",
];

/// The CustomResourceDefinitions of [`CRD_GROUPS`] on the cluster of `kubeconfig`, as
/// `kubectl get crd -o yaml` would give them (status and server-set metadata dropped).
pub async fn crds_from_cluster(kubeconfig: &Path) -> Result<CrdSource, DrillError> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let fail = |message: String| DrillError::Service {
        what: "the CRD source cluster",
        message,
    };
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| fail(format!("cannot read {}: {e}", kubeconfig.display())))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| fail(format!("{}: {e}", kubeconfig.display())))?;
    let client = kube::Client::try_from(config).map_err(|e| fail(e.to_string()))?;
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client);
    let list = api
        .list(&Default::default())
        .await
        .map_err(|e| fail(format!("cannot list CustomResourceDefinitions: {e}")))?;
    let mut crds = Vec::new();
    for crd in list.items {
        if !CRD_GROUPS.contains(&crd.spec.group.as_str()) {
            continue;
        }
        let mut v = serde_json::to_value(&crd).map_err(|e| fail(e.to_string()))?;
        if let Some(m) = v.as_object_mut() {
            m.remove("status");
        }
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.retain(|k, _| k == "name" || k == "labels" || k == "annotations");
        }
        crds.push(v);
    }
    if crds.is_empty() {
        return Err(fail(format!(
            "{} serves no CRD of {}: is it a HyperShift management cluster?",
            kubeconfig.display(),
            CRD_GROUPS.join(", ")
        )));
    }
    Ok(CrdSource::Objects {
        origin: kubeconfig.display().to_string(),
        crds,
    })
}

/// The public hostnames a control-plane namespace publishes to external-dns: Routes (not
/// labelled private) and Services with the external-dns hostname annotation.
fn public_hosts(store: &ferry_sim::Store, ns: &str) -> Result<Vec<String>, ferry_sim::ApiError> {
    use ferry_sim::hypershift::{EXTERNAL_DNS_HOSTNAME_ANNOTATION, ROUTE_VISIBILITY_LABEL};
    let mut hosts = Vec::new();
    for route in store.list(&registry::ROUTE, Some(ns), &ListOptions::default())?.items {
        if route["metadata"]["labels"][ROUTE_VISIBILITY_LABEL].as_str() == Some("private") {
            continue;
        }
        if let Some(h) = route["spec"]["host"].as_str() {
            hosts.push(normalize(h));
        }
    }
    for svc in store.list(&registry::SERVICE, Some(ns), &ListOptions::default())?.items {
        if svc["metadata"]["labels"][ROUTE_VISIBILITY_LABEL].as_str() == Some("private") {
            continue;
        }
        if let Some(h) = svc["metadata"]["annotations"][EXTERNAL_DNS_HOSTNAME_ANNOTATION].as_str() {
            hosts.extend(h.split(',').map(|h| normalize(h.trim())).filter(|h| !h.is_empty()));
        }
    }
    hosts.sort();
    hosts.dedup();
    Ok(hosts)
}

/// A fresh random key for the drill's audit checkpoints, written 0600 to `path` so
/// `ferry audit verify --key` can check a kept drill.
fn new_audit_key(path: &Path) -> Result<AuditKey, DrillError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| DrillError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .map_err(io)?;
    AuditKey::from_bytes(bytes).map_err(|len| DrillError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("a key of {len} bytes")),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_basic_scenario_parses() {
        let s = super::basic_scenario();
        assert_eq!(s.management_clusters, ["source", "destination"]);
        assert!(!s.etcd_keys.is_empty());
    }
}
