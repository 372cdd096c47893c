//! Guest loading and host-call costs, each next to its baseline:
//! - compiling a component vs loading it from ferry's cache;
//! - a fresh store + instantiation per run;
//! - a host call that is checked against the policy (allowed, and denied)
//!   vs one that is not checked at all (`context.param`).
//!
//! `cargo bench -p ferry --bench host_calls`

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::capabilities::env::{Clock, RunEnv};
use ferry::config::RunConfig;
use ferry::policy::PolicyEngine;
use ferry::runtime::Runtime;
use ferry::runtime::run::RunOptions;

fn policy_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/test-guest.cedar")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let bytes = std::fs::read(ferry_artifacts::TEST_GUEST).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    let engine = runtime.engine().clone();

    // 1. Compile vs cached load.
    let compile = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                wasmtime::component::Component::from_binary(&engine, &bytes).unwrap();
                t.elapsed()
            })
            .collect(),
    );
    let sha = "bench";
    ferry::runtime::cache::load(&engine, &bytes, sha, Some(cache.path())).unwrap();
    let cached = median(
        (0..50)
            .map(|_| {
                let t = Instant::now();
                ferry::runtime::cache::load(&engine, &bytes, sha, Some(cache.path())).unwrap();
                t.elapsed()
            })
            .collect(),
    );
    println!("component ({} KiB):", bytes.len() / 1024);
    println!("  compile (Cranelift)        {:>10.3} ms", compile.as_secs_f64() * 1e3);
    println!(
        "  load from ferry's cache    {:>10.3} ms   ({:.0}x faster)",
        cached.as_secs_f64() * 1e3,
        compile.as_secs_f64() / cached.as_secs_f64()
    );

    // 2. Store + instantiate + one trivial call, per run.
    let guest = runtime.load_bytes(&bytes, "test-guest", "bench").unwrap();
    let mut config = RunConfig::default();
    config.limits.wall_seconds = 600;
    let policy = Arc::new(PolicyEngine::load(&policy_path(), &config.params, &guest.identity).unwrap());
    runtime.check_imports(&guest, &policy).unwrap();
    let pre = runtime.prepare(&guest).unwrap();
    let env = || {
        let opts = RunOptions::default();
        Arc::new(RunEnv {
            guest: guest.identity.clone(),
            policy: policy.clone(),
            config: config.clone(),
            phase: "bench".into(),
            plan: false,
            audit: Arc::new(ferry::audit::Audit::disabled()),
            clock: Clock::new(1.0),
            progress: opts.progress,
            clients: Arc::new(opts.clients),
            hooks: Arc::new(ferry::runtime::hooks::HookSet::empty()),
        })
    };
    let args = |op: &str, n: u64| vec![("op".to_string(), op.to_string()), ("n".to_string(), n.to_string())];
    let mut runs = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        runtime
            .run(&pre, env(), "bench", args("param", 0))
            .await
            .unwrap()
            .unwrap();
        runs.push(t.elapsed());
    }
    println!(
        "run (new store + instantiate + 1 export call): {:>8.1} us median",
        median(runs).as_secs_f64() * 1e6
    );

    // 3. Per-call cost: T(n) - T(0), divided by n.
    let n = 20_000u64;
    let per_call = |op: &'static str| {
        let runtime = &runtime;
        let pre = &pre;
        let env = &env;
        async move {
            let mut samples = Vec::new();
            for _ in 0..5 {
                let t0 = Instant::now();
                runtime.run(pre, env(), "bench", args(op, 0)).await.unwrap().unwrap();
                let base = t0.elapsed();
                let t1 = Instant::now();
                runtime.run(pre, env(), "bench", args(op, n)).await.unwrap().unwrap();
                samples.push(t1.elapsed().saturating_sub(base) / n as u32);
            }
            median(samples)
        }
    };
    let unchecked = per_call("param").await;
    let allowed = per_call("open-zone").await;
    let denied = per_call("denied").await;
    println!("host call, {n} calls each (median of 5):");
    println!(
        "  context.param   (no policy check)        {:>8.2} us   baseline",
        unchecked.as_secs_f64() * 1e6
    );
    println!(
        "  dns.open-zone   (policy allows, no I/O)   {:>8.2} us   {:.1}x baseline",
        allowed.as_secs_f64() * 1e6,
        allowed.as_secs_f64() / unchecked.as_secs_f64()
    );
    println!(
        "  k8s.open-cluster (policy denies, no I/O)  {:>8.2} us   {:.1}x baseline",
        denied.as_secs_f64() * 1e6,
        denied.as_secs_f64() / unchecked.as_secs_f64()
    );
}
