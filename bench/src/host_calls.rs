//! P1 (the stock guest from ferry's cache to one export call) and P2 (one policy-checked host
//! call, next to Cedar's own `is_authorized` on the same request, policies and entities).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferry::audit::Audit;
use ferry::capabilities::env::{Clock, RunEnv};
use ferry::config::RunConfig;
use ferry::policy::{Action, CallContext, PolicyEngine, ResourceRef};
use ferry::runtime::Runtime;
use ferry::runtime::run::RunOptions;

use crate::report::{Ratio, Row, Stats};

/// How a run's audit trail is kept while calls are measured.
#[derive(Clone, Copy)]
enum AuditTo {
    /// Records are built and chained but not written (no `--audit` file).
    Nowhere,
    /// Appended to a file, as every real run does.
    File,
}

fn env_for(guest: &ferry::runtime::Guest, policy: &Arc<PolicyEngine>, audit: &Arc<Audit>, phase: &str) -> Arc<RunEnv> {
    let mut config = RunConfig::default();
    config.limits.wall_seconds = 600;
    let opts = RunOptions::default();
    Arc::new(RunEnv {
        guest: guest.identity.clone(),
        policy: policy.clone(),
        config,
        phase: phase.into(),
        plan: false,
        audit: audit.clone(),
        clock: Clock::new(1.0),
        progress: opts.progress,
        clients: Arc::new(opts.clients),
        sealing: ferry::capabilities::objects::seal::Sealing::Unsigned,
        hooks: Arc::new(ferry::runtime::hooks::HookSet::empty()),
        plan_book: None,
    })
}

/// P1: what every phase of the stock guest pays before its first host call, when the
/// compiled component is in ferry's cache: hash and load, check imports, instantiate, call.
pub async fn p1(runs: usize) -> Result<Row> {
    let cache = tempfile::tempdir()?;
    let runtime = Runtime::new(Some(cache.path().to_path_buf()))?;
    let bytes = ferry_artifacts::HOSTED_CLUSTER_DR_WASM;
    let policy_text =
        r#"permit (principal == Ferry::Guest::"hosted-cluster-dr", action == Ferry::Action::"import", resource);"#;
    let identity = runtime.load_bytes(bytes, "hosted-cluster-dr", "stock")?.identity;
    let policy = Arc::new(PolicyEngine::from_source(
        policy_text,
        "bench",
        &BTreeMap::new(),
        &identity,
    )?);
    let audit = Arc::new(Audit::disabled());
    let mut times = Vec::new();
    let mut stages: [Vec<Duration>; 3] = Default::default();
    // The first iteration compiled above; every measured one loads from the cache.
    for _ in 0..runs.max(20) {
        let t = Instant::now();
        let guest = runtime.load_embedded(
            bytes,
            ferry_artifacts::HOSTED_CLUSTER_DR_SHA256,
            "hosted-cluster-dr",
            "stock",
        )?;
        let loaded = t.elapsed();
        runtime.check_imports(&guest, &policy)?;
        let pre = runtime.prepare(&guest)?;
        let prepared = t.elapsed();
        let out = runtime
            .run(&pre, env_for(&guest, &policy, &audit, "probe"), "probe", Vec::new())
            .await?;
        times.push(t.elapsed());
        stages[0].push(loaded);
        stages[1].push(prepared - loaded);
        stages[2].push(t.elapsed() - prepared);
        // An unknown phase is the guest's own error: the export was called and answered.
        if out.is_ok() {
            bail!("the stock guest accepted the phase `probe`; the benchmark expects its error");
        }
    }
    let stats = Stats::of_durations(&times, 1e3);
    Ok(Row::absolute(
        "P1",
        &format!(
            "stock guest ({} KiB): load from cache + instantiate + one export call",
            bytes.len() / 1024
        ),
        "ms",
        stats,
    )
    .goal("≤ 1 ms median", stats.median <= 1.0)
    .detail("hash and load from the cache", median_ms(&stages[0]))
    .detail("check imports against the policy, link", median_ms(&stages[1]))
    .detail("instantiate and call the export", median_ms(&stages[2])))
}

fn median_ms(samples: &[Duration]) -> String {
    format!("{:.3} ms median", Stats::of_durations(samples, 1e3).median)
}

/// The test guest, prepared once, whose `bench` phase repeats one host call `n` times.
struct CallBench {
    runtime: Runtime,
    guest: ferry::runtime::Guest,
    pre: ferry::capabilities::bindings::automation::AutomationPre<ferry::runtime::state::RunState>,
    policy: Arc<PolicyEngine>,
    audit_dir: tempfile::TempDir,
}

impl CallBench {
    fn new() -> Result<CallBench> {
        let runtime = Runtime::new(None)?;
        let bytes = std::fs::read(ferry_artifacts::TEST_GUEST).context("reading the test guest")?;
        let guest = runtime.load_bytes(&bytes, "test-guest", "bench")?;
        let policy_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/test-guest.cedar");
        let policy = Arc::new(PolicyEngine::load(&policy_path, &BTreeMap::new(), &guest.identity)?);
        runtime.check_imports(&guest, &policy)?;
        let pre = runtime.prepare(&guest)?;
        Ok(CallBench {
            runtime,
            guest,
            pre,
            policy,
            audit_dir: tempfile::tempdir()?,
        })
    }

    async fn run(&self, op: &str, n: u64, audit: &Arc<Audit>) -> Result<Duration> {
        let args = vec![("op".to_string(), op.to_string()), ("n".to_string(), n.to_string())];
        let env = env_for(&self.guest, &self.policy, audit, "bench");
        let t = Instant::now();
        let out = self.runtime.run(&self.pre, env, "bench", args).await?;
        let elapsed = t.elapsed();
        if let Err(e) = out {
            bail!("the test guest's bench phase failed: {e:?}");
        }
        Ok(elapsed)
    }

    /// Per-call cost of `op`: (T(n) − T(0)) / n, so instantiation is not counted.
    async fn per_call(&self, op: &str, n: u64, runs: usize, audit: AuditTo) -> Result<Vec<Duration>> {
        let mut samples = Vec::new();
        for i in 0..runs {
            let audit = Arc::new(match audit {
                AuditTo::Nowhere => Audit::disabled(),
                AuditTo::File => Audit::to_file(&self.audit_dir.path().join(format!("{op}-{i}.jsonl")), None)?,
            });
            let base = self.run(op, 0, &audit).await?;
            let total = self.run(op, n, &audit).await?;
            samples.push(total.saturating_sub(base) / n as u32);
        }
        Ok(samples)
    }
}

/// Cedar's own cost for the request `action` on `resource`: `is_authorized` on the request,
/// policies and entities the engine builds for that call, and nothing else.
fn cedar_alone(
    policy: &PolicyEngine,
    action: Action,
    resource: &ResourceRef,
    n: u64,
    runs: usize,
) -> Result<Vec<Duration>> {
    let (request, entities) = policy
        .cedar_request(action, resource, &bench_context())
        .map_err(anyhow::Error::msg)?;
    let authorizer = cedar_policy::Authorizer::new();
    Ok(per_iteration(n, runs, || {
        authorizer.is_authorized(&request, policy.cedar_policies(), &entities)
    }))
}

/// The context of every decision the benchmark times: no plan, no dry run, phase `bench`.
fn bench_context() -> CallContext {
    CallContext {
        phase: "bench".into(),
        ..CallContext::default()
    }
}

/// Time per call of `f`, called `n` times in each of `runs` samples.
fn per_iteration<T>(n: u64, runs: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(f());
        }
        samples.push(t.elapsed() / n as u32);
    }
    samples
}

/// ferry's whole decision for one call, outside any guest: building the request and
/// entities, Cedar, and reading the reasons. What a call adds beyond it is the host's own.
fn decision_alone(policy: &PolicyEngine, action: Action, resource: &ResourceRef, n: u64, runs: usize) -> Vec<Duration> {
    let ctx = bench_context();
    per_iteration(n, runs, || policy.authorize(action, resource, &ctx))
}

/// P2: a host call that the policy decides and that does no I/O, allowed and denied, with
/// the audit trail written to a file as in every real run; Cedar alone on the same request is
/// the baseline.
pub async fn p2(runs: usize) -> Result<Vec<Row>> {
    let bench = CallBench::new()?;
    let n = 20_000;
    let unchecked = Stats::of_durations(&bench.per_call("param", n, runs, AuditTo::File).await?, 1e6);
    let cases = [
        (
            "P2 allow",
            "open-zone",
            "dns.open-zone: allowed by the policy, audited, no I/O",
            Action::DnsOpen,
            ResourceRef::Zone { zone: "ZBENCH".into() },
        ),
        (
            "P2 deny",
            "denied",
            "k8s.open-cluster: denied by the policy, audited",
            Action::K8sOpen,
            ResourceRef::Cluster {
                alias: "not-granted".into(),
            },
        ),
    ];
    let mut rows = Vec::new();
    for (id, op, what, action, resource) in cases {
        let decision = bench.policy.authorize(action, &resource, &bench_context());
        if decision.allowed != (id == "P2 allow") {
            bail!("{id}: the test policy decides {action} differently than the benchmark expects");
        }
        let call = Stats::of_durations(&bench.per_call(op, n, runs, AuditTo::File).await?, 1e6);
        let unaudited = Stats::of_durations(&bench.per_call(op, n, runs, AuditTo::Nowhere).await?, 1e6);
        let cedar = Stats::of_durations(&cedar_alone(&bench.policy, action, &resource, n, runs)?, 1e6);
        let decision = Stats::of_durations(&decision_alone(&bench.policy, action, &resource, n, runs), 1e6);
        let row = Row::compared(
            id,
            what,
            "us",
            call,
            ("Cedar `is_authorized`, same request, policies and entities", cedar),
            Ratio::Overhead,
        );
        let met = row.ratio.is_some_and(|r| r <= 1.5) && call.median <= 25.0;
        rows.push(
            row.goal("≤ 1.5× Cedar and ≤ 25 µs median", met)
                .detail(
                    "without writing the audit trail",
                    format!("{:.2} µs median", unaudited.median),
                )
                .detail(
                    "ferry's decision alone (request, entities, Cedar, reasons)",
                    format!("{:.2} µs median", decision.median),
                )
                .detail(
                    "an unchecked call (context.param)",
                    format!("{:.2} µs median", unchecked.median),
                ),
        );
    }
    Ok(rows)
}
