//! Test kit for ferry's end-to-end tests: run the real test guest through the
//! real host, against real servers on loopback.

use std::path::{Path, PathBuf};

use ferry::config::RunConfig;
use ferry::runtime::RunFailure;
use ferry::runtime::Runtime;
use ferry::runtime::run::{Outcome, RunOptions, RunRequest};
use serde_json::Value;

/// The fixtures folder of this crate.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// HyperShift's upstream CRDs (`../shared/upstream/hypershift/crds`, or under
/// `$FERRY_UPSTREAM_DIR`): every migration test runs against them. Missing, the test fails with
/// what to do rather than passing against the schema-less fallback.
pub fn upstream_crds() -> ferry_sim::kube::crd::CrdSource {
    let dir = ferry_sim::crd_tests::upstream_dir().unwrap_or_else(|| {
        panic!(
            "HyperShift's upstream CRDs are not in ../shared/upstream next to the checkout: set \
             FERRY_UPSTREAM_DIR to the directory holding hypershift/crds"
        )
    });
    ferry_sim::kube::crd::CrdSource::Dir(dir.join("hypershift/crds"))
}

/// Turns on test logging once (set `FERRY_LOG=debug` to see host logs).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A run of the test guest.
pub struct GuestRun {
    /// The component to run (default: the test guest).
    pub component: PathBuf,
    /// The policy file (default: fixtures/test-guest.cedar).
    pub policy: PathBuf,
    /// The run config.
    pub config: RunConfig,
    /// Plan mode.
    pub plan: bool,
    /// Audit file.
    pub audit: Option<PathBuf>,
    /// The key that signs the trail and seals objects.
    pub audit_key: Option<ferry::audit::AuditKey>,
    /// What the run's owner owns (default: nothing).
    pub ownership: ferry::policy::Ownership,
    /// The plan the run records or keeps to (default: none).
    pub plan_book: Option<std::sync::Arc<ferry::plan::PlanBook>>,
    /// Runtime options (clients with credentials, progress sink).
    pub options: RunOptions,
}

impl Default for GuestRun {
    fn default() -> Self {
        GuestRun {
            component: PathBuf::from(ferry_artifacts::TEST_GUEST),
            policy: fixture("test-guest.cedar"),
            config: RunConfig::default(),
            plan: false,
            audit: None,
            audit_key: None,
            ownership: Default::default(),
            plan_book: None,
            options: RunOptions {
                cache_dir: None,
                ..Default::default()
            },
        }
    }
}

impl GuestRun {
    /// Runs `phase` with `args`.
    pub async fn phase(self, phase: &str, args: Vec<(String, String)>) -> Result<Outcome, RunFailure> {
        init_logging();
        let runtime = Runtime::new(None).map_err(RunFailure::Host)?;
        let req = RunRequest {
            component: self.component.into(),
            name: Some("test-guest".into()),
            policy: self.policy.into(),
            config: self.config,
            phase: phase.into(),
            args,
            plan: self.plan,
            audit: self.audit,
            audit_key: self.audit_key,
            ownership: self.ownership,
            plan_book: self.plan_book,
        };
        ferry::runtime::run::run(&runtime, req, self.options).await
    }

    /// Runs the `script` phase and returns one result per operation.
    pub async fn script(self, ops: Value) -> anyhow::Result<Vec<Value>> {
        match self.phase("script", vec![("ops".into(), ops.to_string())]).await? {
            Outcome::Success(json) => Ok(serde_json::from_str(&json)?),
            Outcome::GuestError(e) => anyhow::bail!("guest failed: {e:?}"),
        }
    }
}

/// A simulated cluster served as `mgmt`, and a run config whose cluster `mgmt` is it.
pub struct SimCluster {
    /// The simulator.
    pub sim: ferry_sim::Sim,
    /// Holds its kubeconfig (and whatever else a test keeps beside it).
    pub dir: tempfile::TempDir,
    /// A run config reaching it as `mgmt`.
    pub config: RunConfig,
}

/// Starts a [`SimCluster`]; panics when it cannot (a test's setup).
pub async fn sim_cluster() -> SimCluster {
    let sim = ferry_sim::Sim::start("mgmt").await.expect("the simulator starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, "mgmt")
        .expect("the kubeconfig is written");
    let mut config = RunConfig::default();
    config.clusters.insert(
        "mgmt".into(),
        ferry::config::ClusterConfig {
            kubeconfig: Some(kubeconfig),
            context: None,
        },
    );
    SimCluster { sim, dir, config }
}

/// The `ok` value of a script result, or a panic naming the error.
pub fn ok(result: &Value) -> &Value {
    match result.get("ok") {
        Some(v) => v,
        None => panic!("expected ok, got {result}"),
    }
}

/// The error kind of a script result (`denied`, `not-found`, ...), or a panic.
pub fn err_kind(result: &Value) -> &str {
    result
        .pointer("/err/kind")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("expected an error, got {result}"))
}

/// The error message of a script result.
pub fn err_message(result: &Value) -> &str {
    result
        .pointer("/err/message")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// AWS pieces of a run config and clients pointed at a moto server.
pub mod aws {
    use aws_credential_types::Credentials;
    use ferry::capabilities::Clients;
    use ferry::config::RunConfig;

    /// The fixed credentials tests use against moto.
    pub fn credentials() -> Credentials {
        Credentials::new("test", "test", None, None, "ferry-tests")
    }

    /// Points a run config's `[aws]` at `url`.
    pub fn configure(config: &mut RunConfig, url: &str) {
        config.aws.region = Some("us-east-1".into());
        config.aws.endpoint_url = Some(url.to_string());
        config.aws.force_path_style = true;
    }

    /// Clients of a run that use the test credentials.
    pub fn clients() -> Clients {
        Clients::with_aws_credentials(credentials())
    }

    /// An S3 client for checking what the guest did, independently of the host.
    pub async fn s3(url: &str) -> aws_sdk_s3::Client {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(credentials())
            .endpoint_url(url)
            .load()
            .await;
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build())
    }

    /// Creates the hosted zone `name` and returns its id (without `/hostedzone/`).
    pub async fn hosted_zone(r53: &aws_sdk_route53::Client, name: &str) -> String {
        let zone = r53
            .create_hosted_zone()
            .name(name)
            .caller_reference(format!("ferry-test-{name}"))
            .send()
            .await
            .expect("moto creates the zone");
        zone.hosted_zone()
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
            .expect("a created zone has an id")
    }

    /// A Route53 client for setting up and checking zones.
    pub async fn route53(url: &str) -> aws_sdk_route53::Client {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(credentials())
            .endpoint_url(url)
            .load()
            .await;
        aws_sdk_route53::Client::new(&sdk)
    }
}

/// Helpers for tests that run the DR guest through a [`ferry_drill::Drill`].
pub mod dr {
    use ferry_dr::phases::{Phase, PhaseArgs, PhaseOutcome, PhaseReport};
    use ferry_drill::Drill;
    use ferry_sim::kube::registry;

    /// A drill of `scenario` on HyperShift's upstream CRDs, the guest's clock running
    /// `clock_scale` times faster.
    pub async fn drill(scenario: ferry_sim::hypershift::scenario::Scenario, clock_scale: f64) -> Drill {
        crate::init_logging();
        let opts = ferry_drill::DrillOptions {
            scenario,
            install_moto: false,
            crds: crate::upstream_crds(),
            clock_scale,
            ..ferry_drill::DrillOptions::default()
        };
        match Drill::start(opts).await {
            Ok(d) => d,
            Err(e) => panic!("the drill did not start: {e}"),
        }
    }

    /// The kind and message of a phase the guest failed; panics if it succeeded.
    pub fn guest_failure(report: &PhaseReport) -> (String, String) {
        match &report.outcome {
            PhaseOutcome::GuestFailed { kind, message } => (kind.clone(), message.clone()),
            PhaseOutcome::Succeeded { summary } => {
                panic!("expected {} to fail, it succeeded: {summary}", report.phase)
            }
        }
    }

    /// Runs one phase with no arguments.
    pub async fn run(drill: &Drill, phase: Phase) -> PhaseReport {
        match drill.phase(phase, &PhaseArgs::default()).await {
            Ok(r) => r,
            Err(e) => panic!("{phase} could not run: {e}"),
        }
    }

    /// Whether the source still has the scenario's HostedCluster.
    pub fn source_has_hosted_cluster(drill: &Drill) -> bool {
        let hc = &drill.env().scenario.hosted_cluster;
        drill
            .env()
            .source()
            .sim
            .store()
            .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
            .is_ok()
    }
}
