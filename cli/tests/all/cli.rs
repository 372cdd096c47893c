//! The `ferry` binary: exit codes and messages of `run` and `policy`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("XDG_CACHE_HOME", std::env::temp_dir().join("ferry-cli-test-cache"))
        .output()
        .expect("run ferry")
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn run_prints_the_guest_summary_and_exits_zero() {
    let policy = repo("tests/fixtures/test-guest.cedar");
    let ops = r#"[{"op":"param","name":"who"},{"op":"is-plan"}]"#;
    let o = ferry(&[
        "run",
        ferry_artifacts::TEST_GUEST,
        "--name",
        "test-guest",
        "--policy",
        policy.to_str().unwrap(),
        "--phase",
        "script",
        "--param",
        "who=sre",
        "--arg",
        &format!("ops={ops}"),
        "--plan",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v, serde_json::json!([{ "ok": "sre" }, { "ok": true }]));
}

#[test]
fn a_guest_error_exits_one() {
    let policy = repo("tests/fixtures/test-guest.cedar");
    let o = ferry(&[
        "run",
        ferry_artifacts::TEST_GUEST,
        "--name",
        "test-guest",
        "--policy",
        policy.to_str().unwrap(),
        "--phase",
        "fail",
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the guest reported a failure") && err.contains("failing on purpose"),
        "{err}"
    );
}

#[test]
fn ungranted_imports_exit_three_and_name_each_import() {
    let policy = repo("tests/fixtures/context-only.cedar");
    let o = ferry(&[
        "run",
        ferry_artifacts::TEST_GUEST,
        "--name",
        "test-guest",
        "--policy",
        policy.to_str().unwrap(),
        "--phase",
        "script",
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("`ferry:host/k8s@0.1.0` is not granted"), "{err}");
}

#[test]
fn a_runaway_guest_exits_four() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(&config, "[limits]\ncpu_ms = 200\n").unwrap();
    let policy = repo("tests/fixtures/test-guest.cedar");
    let o = ferry(&[
        "run",
        ferry_artifacts::TEST_GUEST,
        "--name",
        "test-guest",
        "--policy",
        policy.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--phase",
        "loop",
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("CPU budget of 200 ms"), "{err}");
}

#[test]
fn a_bad_run_config_exits_two_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(&config, "[aws]\nregoin = \"us-east-1\"\n").unwrap();
    let policy = repo("tests/fixtures/test-guest.cedar");
    let o = ferry(&[
        "run",
        ferry_artifacts::TEST_GUEST,
        "--policy",
        policy.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("regoin"), "{err}");
}

#[test]
fn policy_check_validates_and_checks_imports() {
    let good = repo("tests/fixtures/test-guest.cedar");
    let o = ferry(&[
        "policy",
        "check",
        "--policy",
        good.to_str().unwrap(),
        "--component",
        ferry_artifacts::TEST_GUEST,
        "--name",
        "test-guest",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        out.contains("valid against the ferry schema") && out.contains("imports are provided and granted"),
        "{out}"
    );

    let narrow = repo("tests/fixtures/context-only.cedar");
    let o = ferry(&[
        "policy",
        "check",
        "--policy",
        narrow.to_str().unwrap(),
        "--component",
        ferry_artifacts::TEST_GUEST,
    ]);
    assert_eq!(o.status.code(), Some(3));

    let malformed = repo("policies/examples/malformed.cedar");
    let o = ferry(&["policy", "check", "--policy", malformed.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("malformed.cedar:"), "{err}");
}

#[test]
fn policy_explain_speaks_plain_words() {
    let policy = repo("tests/fixtures/test-guest.cedar");
    let o = ferry(&[
        "policy",
        "explain",
        "--policy",
        policy.to_str().unwrap(),
        "--name",
        "test-guest",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(out.contains("test-guest"), "{out}");
    assert!(
        out.contains("no-secret-writes") && out.contains("workspace-no-secrets"),
        "{out}"
    );
    assert!(out.contains("denied by default"), "{out}");
}
