//! The runtime's limits and bad inputs: each failure ends with a clear error
//! and the right exit code, never a hang or a host panic.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use ferry::config::RunConfig;
use ferry::runtime::RunFailure;
use ferry::runtime::run::Outcome;
use ferry::runtime::{LimitExceeded, RunError};
use ferry_tests::{GuestRun, err_kind, err_message, fixture, ok};
use serde_json::json;

fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.wasm");
    std::fs::write(&path, "just some text").unwrap();
    let err = GuestRun {
        component: path,
        ..Default::default()
    }
    .phase("script", vec![])
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string().contains("is not a WebAssembly component") && err.to_string().contains("magic bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn a_core_module_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core.wasm");
    std::fs::write(&path, wat_core_module()).unwrap();
    let err = GuestRun {
        component: path,
        ..Default::default()
    }
    .phase("script", vec![])
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("core WebAssembly module") && err.to_string().contains("wasm32-wasip2"),
        "{err}"
    );
}

/// `(module)` in binary form: magic, version 1.
fn wat_core_module() -> Vec<u8> {
    vec![0, b'a', b's', b'm', 1, 0, 0, 0]
}

#[tokio::test]
async fn a_truncated_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(ferry_artifacts::TEST_GUEST).unwrap();
    let path = dir.path().join("truncated.wasm");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = GuestRun {
        component: path,
        ..Default::default()
    }
    .phase("script", vec![])
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("is not a WebAssembly component"), "{err}");
}

#[tokio::test]
async fn ungranted_imports_are_refused_before_instantiation() {
    let err = GuestRun {
        policy: fixture("context-only.cedar"),
        ..Default::default()
    }
    .phase("script", vec![])
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 3);
    let text = err.to_string();
    for iface in [
        "ferry:host/k8s@0.1.0",
        "ferry:host/objects@0.1.0",
        "ferry:host/dns@0.1.0",
        "ferry:host/etcd@0.1.0",
        "ferry:host/workspace@0.1.0",
    ] {
        assert!(
            text.contains(&format!("`{iface}` is not granted")),
            "{iface} missing in: {text}"
        );
    }
    assert!(!text.contains("ferry:host/context@0.1.0` is not granted"), "{text}");
}

#[tokio::test]
async fn a_guest_importing_sockets_is_refused() {
    let err = GuestRun {
        component: ferry_artifacts::TEST_SOCKETS.into(),
        ..Default::default()
    }
    .phase("run", vec![])
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("never gives guests network sockets"), "{err}");
}

#[tokio::test]
async fn a_malformed_policy_is_refused_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.cedar");
    std::fs::write(&path, "permit (principal, action, resource)\nwhen { 1 + };\n").unwrap();
    let err = GuestRun {
        policy: path,
        ..Default::default()
    }
    .phase("script", vec![])
    .await
    .unwrap_err();
    assert!(matches!(err, RunFailure::Policy(_)), "{err:?}");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("bad.cedar"), "{err}");
}

#[tokio::test]
async fn a_policy_that_does_not_fit_the_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.cedar");
    std::fs::write(&path, "@id(\"typo\")\npermit (principal, action == Ferry::Action::\"k8s:get\", resource) when { resource.knid == \"Secret\" };\n").unwrap();
    let err = GuestRun {
        policy: path,
        ..Default::default()
    }
    .phase("script", vec![])
    .await
    .unwrap_err();
    assert!(matches!(err, RunFailure::Policy(_)), "{err:?}");
    assert!(err.to_string().contains("knid"), "{err}");
}

#[tokio::test]
async fn a_runaway_loop_hits_the_cpu_budget() {
    let mut config = RunConfig::default();
    config.limits.cpu_ms = 300;
    let err = GuestRun {
        config,
        ..Default::default()
    }
    .phase("loop", vec![])
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            RunFailure::Run(RunError::Limit(LimitExceeded::Cpu { cpu_ms: 300 }))
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 4);
    assert!(err.to_string().contains("CPU budget of 300 ms"), "{err}");
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_limit() {
    let mut config = RunConfig::default();
    config.limits.memory_mib = 32;
    let err = GuestRun {
        config,
        ..Default::default()
    }
    .phase("alloc", vec![])
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            RunFailure::Run(RunError::Limit(LimitExceeded::Memory { limit_mib: 32, .. }))
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("memory limit of 32 MiB"), "{err}");
}

#[tokio::test]
async fn a_trapping_guest_reports_a_crash() {
    let err = GuestRun::default().phase("trap", vec![]).await.unwrap_err();
    assert!(matches!(err, RunFailure::Run(RunError::Trap { .. })), "{err:?}");
    assert_eq!(err.exit_code(), 4);
    assert!(err.to_string().contains("guest `test-guest` crashed"), "{err}");
}

#[tokio::test]
async fn a_guest_blocked_in_a_host_call_hits_the_wall_clock_limit() {
    let mut config = RunConfig::default();
    config.limits.wall_seconds = 1;
    let err = GuestRun {
        config,
        ..Default::default()
    }
    .phase("sleep", args(&[("millis", "600000")]))
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            RunFailure::Run(RunError::Limit(LimitExceeded::Wall { seconds: 1 }))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_scaled_clock_makes_long_waits_short() {
    let mut config = RunConfig::default();
    config.clock.scale = 1000.0;
    config.limits.wall_seconds = 30;
    // 60 s of guest time at 1000x is 60 ms of real time.
    let out = GuestRun {
        config,
        ..Default::default()
    }
    .script(json!([{ "op": "now" }, { "op": "sleep", "millis": 60000 }, { "op": "now" }]))
    .await
    .unwrap();
    let before = ok(&out[0]).as_u64().unwrap();
    let after = ok(&out[2]).as_u64().unwrap();
    assert!(after - before >= 60_000, "guest clock advanced {} ms", after - before);
}

#[tokio::test]
async fn the_handle_limit_is_enforced() {
    let mut config = RunConfig::default();
    config.limits.max_handles = 8;
    // The cluster does not need to exist: open fails after the table check
    // only if the alias is unknown, so use a config with one cluster whose
    // kubeconfig points nowhere; the handle is created before any I/O.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:9'}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n",
    )
    .unwrap();
    config.clusters.insert(
        "mgmt".into(),
        ferry::config::ClusterConfig {
            kubeconfig: Some(kubeconfig),
            context: None,
        },
    );
    let out = GuestRun {
        config,
        ..Default::default()
    }
    .phase("handles", args(&[("alias", "mgmt"), ("count", "100")]))
    .await
    .unwrap();
    let Outcome::Success(json) = out else {
        panic!("guest failed: {out:?}")
    };
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let opened = v["opened"].as_u64().unwrap();
    assert!((1..=8).contains(&opened), "opened {opened} handles under a limit of 8");
    assert_eq!(err_kind(&v["error"]), "invalid");
    assert!(err_message(&v["error"]).contains("too many open handles"), "{v}");
}

#[tokio::test]
async fn a_guest_error_value_is_not_a_crash() {
    let out = GuestRun::default()
        .phase("fail", args(&[("message", "precondition X failed")]))
        .await
        .unwrap();
    match out {
        Outcome::GuestError(ferry::capabilities::bindings::WitError::Other(m)) => {
            assert_eq!(m, "precondition X failed")
        }
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[tokio::test]
async fn params_and_plan_mode_reach_the_guest() {
    let mut config = RunConfig::default();
    config.params.insert("hc_name".into(), "prod.a".into());
    let out = GuestRun {
        config,
        plan: true,
        ..Default::default()
    }
    .script(json!([{ "op": "param", "name": "hc_name" }, { "op": "param", "name": "missing" }, { "op": "is-plan" }]))
    .await
    .unwrap();
    assert_eq!(ok(&out[0]), "prod.a");
    assert!(ok(&out[1]).is_null());
    assert_eq!(ok(&out[2]), true);
}
