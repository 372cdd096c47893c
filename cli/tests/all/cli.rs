//! The `ferry` binary: exit codes and messages of `run` and `policy`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ferry(args: &[&str]) -> Output {
    ferry_with_env(args, &[])
}

fn ferry_with_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .envs(env.iter().copied())
        .env("XDG_CACHE_HOME", std::env::temp_dir().join("ferry-cli-test-cache"))
        .output()
        .expect("run ferry")
}

/// `ferry run` of the test guest as `test-guest` under `tests/fixtures/<policy>`, phase
/// `phase`, with `extra` arguments.
fn run_test_guest(policy: &str, phase: &str, extra: &[&str]) -> Output {
    let policy = repo(&format!("tests/fixtures/{policy}"));
    let mut args = vec![
        "run",
        ferry_artifacts::TEST_GUEST,
        "--name",
        "test-guest",
        "--policy",
        policy.to_str().unwrap(),
        "--phase",
        phase,
    ];
    args.extend_from_slice(extra);
    ferry(&args)
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
    let ops = r#"[{"op":"param","name":"who"},{"op":"is-plan"}]"#;
    let o = run_test_guest(
        "test-guest.cedar",
        "script",
        &["--param", "who=sre", "--arg", &format!("ops={ops}"), "--plan"],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v, serde_json::json!([{ "ok": "sre" }, { "ok": true }]));
}

#[test]
fn a_guest_error_exits_one() {
    let o = run_test_guest("test-guest.cedar", "fail", &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the guest reported a failure") && err.contains("failing on purpose"),
        "{err}"
    );
}

#[test]
fn ungranted_imports_exit_three_and_name_each_import() {
    let o = run_test_guest("context-only.cedar", "script", &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("`ferry:host/k8s@0.1.0` is not granted"), "{err}");
}

#[test]
fn a_runaway_guest_exits_four() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(&config, "[limits]\ncpu_ms = 200\n").unwrap();
    let o = run_test_guest("test-guest.cedar", "loop", &["--config", config.to_str().unwrap()]);
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

/// `ferry policy test` on the stock policy: a lone request answers allow or deny with the
/// deciding policies, in the exit code too.
#[test]
fn policy_test_answers_one_request_with_the_deciding_policies() {
    let site = repo("dr/src/site_example.toml");
    let site = site.to_str().unwrap();
    let ask = |extra: &[&str]| {
        let mut args = vec!["policy", "test", "--site", site];
        args.extend_from_slice(extra);
        let o = ferry(&args);
        let (out, err) = text(&o);
        (o.status.code(), out, err)
    };
    let (code, out, err) = ask(&["k8s:delete", "source", "Namespace", "clusters"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.starts_with("deny: no policy permits k8s:delete"), "{out}");

    let (code, out, err) = ask(&["k8s:scale", "source", "Deployment", "hypershift/operator"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "allow: allowed by policy `source-operator-scale#1`");

    // The operator is patched only to note its replicas and its teardowns (under the
    // resourceVersion read, a precondition): by the patch's fields.
    let operator = ["k8s:patch", "source", "apps/v1/Deployment", "hypershift/operator"];
    let (code, out, _) = ask(&[&["--patch-field", "metadata.annotations"][..], &operator].concat());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("source-operator-note#1"), "{out}");
    let noted = [
        &[
            "--patch-field",
            "metadata.annotations",
            "--patch-field",
            "metadata.resourceVersion",
        ][..],
        &operator,
    ]
    .concat();
    let (code, out, _) = ask(&noted);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = ask(&[&["--patch-field", "metadata.labels"][..], &operator].concat());
    assert_eq!(code, Some(1), "{out}");
    let image = [
        &[
            "--patch-field",
            "metadata.annotations",
            "--patch-field",
            "spec.template",
        ][..],
        &operator,
    ]
    .concat();
    let (code, out, _) = ask(&image);
    assert_eq!(code, Some(1), "{out}");

    // The HostedCluster is patched only to pause, unpause and annotate it: never its
    // references, which decide what the next phase resolves as its own.
    let hc = ["k8s:patch", "source", "HostedCluster", "clusters/my.cluster"];
    let (code, out, _) = ask(&[&["--patch-field", "spec.pausedUntil"][..], &hc].concat());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("hosted-cluster-pause#1"), "{out}");
    let (code, out, _) = ask(&[&["--patch-field", "spec.pullSecret"][..], &hc].concat());
    assert_eq!(code, Some(1), "{out}");

    // The snapshot's presigned URL: for at most six hours under the stock policy.
    let presign = [
        "objects:presign",
        "dr-backups/hosted-clusters/clusters/my.cluster/b1/etcd.db",
    ];
    let (code, out, _) = ask(&[&["--presign-seconds", "3600"][..], &presign].concat());
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = ask(&[&["--presign-seconds", "86400"][..], &presign].concat());
    assert_eq!(code, Some(1), "{out}");

    let (code, _, err) = ask(&["k8s:get", "source", "Widget", "a/b"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("write it as group/version/Widget"), "{err}");
}

/// The stock policy's own suite (`policies/hosted-cluster-dr.cases`): what moving one hosted
/// cluster needs is allowed, and its siblings, the shared namespace's deletion, any operator
/// change but scaling, and Pods or RBAC in the control plane namespace are refused.
#[test]
fn the_stock_policy_passes_its_cases_and_a_wrong_expectation_fails() {
    let site = repo("dr/src/site_example.toml");
    let cases = repo("policies/hosted-cluster-dr.cases");
    let o = ferry(&[
        "policy",
        "test",
        "--site",
        site.to_str().unwrap(),
        "--cases",
        cases.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.cases");
    std::fs::write(
        &wrong,
        "# the shared namespace\nallow k8s:delete source Namespace clusters\n",
    )
    .unwrap();
    let o = ferry(&[
        "policy",
        "test",
        "--site",
        site.to_str().unwrap(),
        "--cases",
        wrong.to_str().unwrap(),
    ]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL  k8s:delete source Namespace clusters"), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");

    std::fs::write(&wrong, "perhaps k8s:open source\n").unwrap();
    let o = ferry(&[
        "policy",
        "test",
        "--site",
        site.to_str().unwrap(),
        "--cases",
        wrong.to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("wrong.cases:1: a case starts with `allow` or `deny`"),
        "{err}"
    );
}

/// A run signs its trail with the key from `FERRY_AUDIT_KEY_FILE`; `ferry audit verify`
/// accepts it with that key, names the first edited line, and refuses another key.
#[test]
fn audit_verify_checks_the_chain_and_the_run_s_signed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("audit.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let trail = dir.path().join("audit.jsonl");
    let policy = repo("tests/fixtures/test-guest.cedar");
    let ops = r#"[{"op":"param","name":"who"}]"#;
    let run = ferry_with_env(
        &[
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
            "--audit",
            trail.to_str().unwrap(),
        ],
        &[("FERRY_AUDIT_KEY_FILE", key.as_path())],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run).1);

    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", trail.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = ferry(&args);
        let (out, err) = text(&o);
        (o.status.code(), out + &err)
    };
    let (code, out) = verify(&["--key", key.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 checkpoint(s) signed by key"), "{out}");

    let other = dir.path().join("other.key");
    std::fs::write(&other, [8u8; 32]).unwrap();
    let (code, out) = verify(&["--key", other.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("signed with another key"), "{out}");

    let short = dir.path().join("short.key");
    std::fs::write(&short, b"secret").unwrap();
    let (code, out) = verify(&["--key", short.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("at least 32 are needed"), "{out}");

    let edited = std::fs::read_to_string(&trail)
        .unwrap()
        .replacen("\"ok\"", "\"failed\"", 1);
    std::fs::write(&trail, edited).unwrap();
    let (code, out) = verify(&["--key", key.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("NOT VERIFIED") && out.contains("audit.jsonl:2: does not chain to line 1"),
        "{out}"
    );
}

/// `ferry run` with the file-size limit set so that the audit trail fills up after the first
/// workspace write (SIGXFSZ ignored, so the write fails with EFBIG as on a full disk).
fn run_with_trail_limit(dir: &Path, limit_kib: u32) -> Output {
    let ws = dir.join("ws");
    let config = dir.join("run.toml");
    std::fs::write(&config, format!("[workspace]\ndir = {:?}\n", ws.to_str().unwrap())).unwrap();
    let policy = repo("tests/fixtures/test-guest.cedar");
    let ops = r#"[{"op":"fs.write","path":"first.txt","data":"x"},{"op":"fs.write","path":"second.txt","data":"x"}]"#;
    let script = format!(
        "trap '' XFSZ; ulimit -f {limit_kib}; exec \"$0\" run {} --name test-guest --policy {} --config {} \
         --phase script --arg 'ops={ops}' --audit {}",
        ferry_artifacts::TEST_GUEST,
        policy.display(),
        config.display(),
        dir.join("audit.jsonl").display()
    );
    Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_ferry")])
        .env("XDG_CACHE_HOME", std::env::temp_dir().join("ferry-cli-test-cache"))
        .output()
        .unwrap()
}

/// A failed audit write stops the run before the next call's I/O: the write the trail
/// could still show happened, the one after it did not.
#[test]
fn a_trail_that_cannot_be_written_stops_the_run_before_the_next_change() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_with_trail_limit(dir.path(), 1);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(4), "{out}{err}");
    assert!(err.contains("cannot write the audit trail"), "{err}");
    let ws = dir.path().join("ws");
    assert!(ws.join("first.txt").exists(), "{err}");
    assert!(
        !ws.join("second.txt").exists(),
        "the change after the failed write happened: {err}"
    );

    // With room for the trail, both writes happen: the limit, not the guest, stopped it.
    let dir = tempfile::tempdir().unwrap();
    let o = run_with_trail_limit(dir.path(), 64);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert!(dir.path().join("ws/second.txt").exists());
}

/// `ferry backup keygen` makes the key pair of an encrypted backup folder, and `ferry
/// backup decrypt` gives its plain layout back (the manual procedure's files); another key
/// is refused with exit code 2, naming the file and saying what to check.
#[test]
fn backup_keygen_and_decrypt_give_the_plain_layout_back() {
    use ferry::capabilities::workspace::at_rest;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("backup.agekey");
    let out = ferry(&["backup", "keygen", key.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let recipient = stdout.trim().to_string();
    assert!(recipient.starts_with("age1"), "{stdout}");
    let again = ferry(&["backup", "keygen", key.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "an existing key is never overwritten");

    let to = at_rest::recipients(&[recipient]).unwrap();
    let backup = tmp.path().join("backup/20261127T000000Z");
    std::fs::create_dir_all(backup.join("namespaces/clusters")).unwrap();
    std::fs::write(
        backup.join("index.json"),
        at_rest::encrypt(&to, b"{\"files\":[]}").unwrap(),
    )
    .unwrap();
    std::fs::write(
        backup.join("namespaces/clusters/secret-pull.yaml"),
        at_rest::encrypt(&to, b"kind: Secret\n").unwrap(),
    )
    .unwrap();
    let decrypt = |identity: &Path, out: &Path| {
        ferry(&[
            "backup",
            "decrypt",
            tmp.path().join("backup").to_str().unwrap(),
            "--identity",
            identity.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let plain = tmp.path().join("plain");
    let out = decrypt(&key, &plain);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("2 file(s) decrypted"), "{stdout}");
    assert_eq!(
        std::fs::read(plain.join("20261127T000000Z/namespaces/clusters/secret-pull.yaml")).unwrap(),
        b"kind: Secret\n"
    );

    let other = tmp.path().join("other.agekey");
    assert_eq!(
        ferry(&["backup", "keygen", other.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let out = decrypt(&other, &tmp.path().join("plain2"));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("index.json") && stderr.contains("identity the backup was encrypted to"),
        "{stderr}"
    );
}

#[test]
fn completions_are_printed_for_each_shell_and_name_the_commands() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
    ] {
        let o = ferry(&["completions", shell]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: no {marker:?} in the script");
        for command in ["migrate", "drill", "lab", "abort"] {
            assert!(out.contains(command), "{shell}: {command} is not completed");
        }
    }
    let o = ferry(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("possible values"), "{}", text(&o).1);
}

#[test]
fn quiet_prints_the_result_and_no_progress() {
    let ops = r#"[{"op":"progress","step":"script/count","done":1,"total":2,"message":"half way there"}]"#;
    let op = format!("ops={ops}");
    let run = |quiet: bool| {
        let mut extra = vec!["--arg", op.as_str()];
        if quiet {
            extra.push("--quiet");
        }
        let o = run_test_guest("test-guest.cedar", "script", &extra);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
        text(&o)
    };
    let (out, err) = run(false);
    assert!(err.contains("half way there"), "progress is shown by default: {err}");
    let (quiet_out, quiet_err) = run(true);
    assert!(
        !quiet_err.contains("half way there"),
        "--quiet shows no progress: {quiet_err}"
    );
    assert_eq!(quiet_out, out, "the result is the same");
    assert!(quiet_out.contains(r#""ok""#), "{quiet_out}");
}

#[test]
fn a_malformed_kill_point_stops_the_command_before_it_runs() {
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["completions", "bash"])
        .env(ferry::killpoint::ENV, "after:k8s:delete")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(out.is_empty(), "nothing ran: {out}");
    assert!(
        err.contains("FERRY_KILL_AT=\"after:k8s:delete\" is not a kill point"),
        "{err}"
    );
}

/// `ferry policy rbac` on the stock policy: the owned Secret is readable by name only, the
/// operator Deployment is scaled by name, and the runner's Lease and resolver lists are added.
#[test]
fn policy_rbac_derives_named_rules_for_the_stock_policy() {
    let site = repo("dr/src/site_example.toml");
    let o = ferry(&[
        "policy",
        "rbac",
        "--site",
        site.to_str().unwrap(),
        "--owned",
        "source Secret clusters/my.cluster-pull-secret",
        "--output",
        "json",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["schema"], "ferry.rbac/v1");
    let items = doc["items"].as_array().unwrap();
    let role = |cluster: &str, ns: &str| {
        items
            .iter()
            .find(|i| i["metadata"]["annotations"]["ferry.dev/cluster"] == cluster && i["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no Role for {cluster}/{ns}: {out}"))
    };
    let rules_for = |r: &serde_json::Value, resource: &str| -> Vec<serde_json::Value> {
        r["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|rule| rule["resources"][0] == resource)
            .cloned()
            .collect()
    };
    let shared = role("source", "clusters");
    assert_eq!(shared["kind"], "Role");
    let secrets = rules_for(shared, "secrets");
    assert!(
        secrets
            .iter()
            .any(|r| r["resourceNames"] == serde_json::json!(["my.cluster-pull-secret"])
                && r["verbs"].as_array().unwrap().contains(&"get".into())),
        "{secrets:?}"
    );
    assert!(
        !secrets.iter().any(
            |r| r["verbs"].as_array().unwrap().contains(&"list".into()) && r["verbs"].as_array().unwrap().len() > 1
        ),
        "{secrets:?}"
    );
    let scale = rules_for(role("source", "hypershift"), "deployments/scale");
    assert_eq!(scale.len(), 1, "{scale:?}");
    // The operator, stopped for teardown, and external-dns, restarted so that a fresh
    // process publishes without waiting for its interval or TXT cache: nothing else.
    assert_eq!(
        scale[0]["resourceNames"],
        serde_json::json!(["external-dns", "operator"])
    );
    // With --site, the runner's own needs join the same Roles: its Lease by name, and the
    // ownership resolver's list of the shared namespace's Secrets (the runner's, not the
    // guest's: the guest's rules above never list them).
    let leases = rules_for(role("source", "hypershift"), "leases");
    assert!(
        leases
            .iter()
            .any(|r| r["resourceNames"] == serde_json::json!(["ferry-dr-clusters-my-cluster"])),
        "{leases:?}"
    );
    let runner_lists: Vec<_> = rules_for(shared, "secrets")
        .into_iter()
        .filter(|r| r["verbs"] == serde_json::json!(["list"]))
        .collect();
    assert_eq!(runner_lists.len(), 1, "{runner_lists:?}");
}

/// The change-management loop through the binary: `--plan --plan-out`, `ferry plan show`,
/// `ferry plan approve --key`, `--apply`; a plan edited after approval and one approved with
/// another key are refused before anything runs.
#[test]
fn a_plan_is_made_shown_approved_and_applied_and_a_tampered_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let config = dir.path().join("run.toml");
    std::fs::write(&config, format!("[workspace]\ndir = {:?}\n", ws.to_str().unwrap())).unwrap();
    let key = dir.path().join("audit.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, [8u8; 32]).unwrap();
    let plan = dir.path().join("plan.json");
    let ops = format!(
        "ops={}",
        r#"[{"op":"fs.write","path":"notes/a.txt","data":"one"},{"op":"fs.write","path":"notes/b.txt","data":"two"}]"#
    );
    let (config, key, other_key, plan) = (
        config.to_str().unwrap(),
        key.to_str().unwrap(),
        other_key.to_str().unwrap(),
        plan.to_str().unwrap(),
    );
    let run = |extra: &[&str]| {
        let mut args = vec!["--config", config, "--arg", &ops, "--audit-key", key];
        args.extend_from_slice(extra);
        run_test_guest("test-guest.cedar", "script", &args)
    };

    let o = run(&["--plan", "--plan-out", plan]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("2 change(s)") && err.contains("ferry plan approve"),
        "{err}"
    );
    assert!(!ws.join("notes/a.txt").exists(), "a plan writes nothing");

    // Not approved yet: refused.
    let o = run(&["--apply", plan]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("is not approved"), "{err}");

    let o = ferry(&["plan", "show", plan]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        out.contains("NOT APPROVED") && out.contains("workspace:write") && out.contains("notes/b.txt"),
        "{out}"
    );

    let o = ferry(&["plan", "approve", plan, "--key", key, "--by", "alice"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(out.contains("approved with key"), "{out}");
    let o = ferry(&["plan", "show", plan]);
    assert!(text(&o).0.contains("approved by alice"), "{}", text(&o).0);

    // Another key: refused.
    let mut args = vec![
        "--config",
        config,
        "--arg",
        &ops,
        "--audit-key",
        other_key,
        "--apply",
        plan,
    ];
    let o = run_test_guest("test-guest.cedar", "script", &args);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("was approved with key"), "{err}");

    // Edited after approval: refused, by apply and by a second approval alike.
    let approved = std::fs::read_to_string(plan).unwrap();
    std::fs::write(plan, approved.replace("notes/b.txt", "notes/c.txt")).unwrap();
    args[5] = key;
    let o = run_test_guest("test-guest.cedar", "script", &args);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("changed after it was approved"), "{err}");
    let o = ferry(&["plan", "approve", plan, "--key", key]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
    assert!(!ws.join("notes").exists(), "nothing ran");

    // The approved file as it was: applied.
    std::fs::write(plan, &approved).unwrap();
    let o = run(&["--apply", plan]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("every change it held happened"), "{err}");
    assert_eq!(std::fs::read_to_string(ws.join("notes/b.txt")).unwrap(), "two");
}
