//! `ferry lab up|down` as processes: the lab comes up with a usable site config, kubectl and
//! ferry work against it as the printed commands say, and `lab down` stops it.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn ferry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.env("XDG_CACHE_HOME", std::env::temp_dir().join("ferry-cli-test-cache"))
        .env_remove(ferry::killpoint::ENV);
    c
}

/// The variables `lab.env` exports.
fn lab_env(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join("lab.env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

fn text(o: &Output) -> String {
    format!(
        "{:?}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Stops the lab if the test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_lab_comes_up_serves_ferry_and_kubectl_and_goes_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let child = ferry()
        .args(["lab", "up", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lab = Running(child);
    // `lab.pid` is written last, once everything is up.
    let mut waited = 0;
    while !dir.join("lab.pid").exists() {
        assert!(
            lab.0.try_wait().unwrap().is_none(),
            "the lab exited before it was ready"
        );
        assert!(waited < 600, "the lab was not ready within 60 s");
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    let pid: u32 = std::fs::read_to_string(dir.join("lab.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, lab.0.id());

    // A second lab in the same directory is refused, naming the running one.
    let again = ferry().args(["lab", "up", "--dir"]).arg(&dir).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains(&format!("process {pid}")),
        "{}",
        text(&again)
    );

    let kubectl = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfigs/source.kubeconfig"))
        .args(["get", "hostedclusters", "-A", "-o", "name"])
        .output()
        .unwrap();
    assert!(kubectl.status.success(), "{}", text(&kubectl));
    assert!(
        String::from_utf8_lossy(&kubectl.stdout).contains("hostedcluster.hypershift.openshift.io/demo-one"),
        "{}",
        text(&kubectl)
    );

    // The printed commands work with nothing but `lab.env`.
    let site = dir.join("site.toml");
    let audit = dir.join("audit.jsonl");
    let backup = ferry()
        .arg("backup")
        .arg("--site")
        .arg(&site)
        .arg("--audit")
        .arg(&audit)
        .args(["--output", "json"])
        .envs(lab_env(&dir))
        .output()
        .unwrap();
    assert!(backup.status.success(), "{}", text(&backup));
    // One document on stdout, in the documented schema (docs/output.md).
    let doc: serde_json::Value = serde_json::from_slice(&backup.stdout).unwrap();
    assert_eq!(doc["schema"], "ferry.phase/v1", "{doc}");
    assert_eq!(doc["phases"][0]["phase"], "backup", "{doc}");
    assert_eq!(doc["phases"][0]["status"], "succeeded", "{doc}");
    assert!(doc["phases"][0]["summary"]["steps"].is_array(), "{doc}");
    let verify = ferry()
        .args(["audit", "verify"])
        .arg(&audit)
        .envs(lab_env(&dir))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("1 checkpoint(s) signed"),
        "{}",
        text(&verify)
    );

    let down = ferry().args(["lab", "down", "--dir"]).arg(&dir).output().unwrap();
    assert!(down.status.success(), "{}", text(&down));
    let status = lab.0.wait().unwrap();
    assert!(status.success(), "the lab exited with {status:?} on lab down");
    assert!(!dir.join("lab.pid").exists());
    let stdout = {
        use std::io::Read;
        let mut s = String::new();
        lab.0.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        s
    };
    assert!(stdout.contains("ferry lab down --dir"), "{stdout}");
    assert!(dir.join("site.toml").exists(), "lab down keeps the lab's files");

    // Nothing runs there any more.
    let none = ferry().args(["lab", "down", "--dir"]).arg(&dir).output().unwrap();
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no lab runs in"));

    // A pid file left by a lab that died, naming a live process that is not a lab (here, this
    // test): `lab down` removes the file and signals nothing.
    std::fs::write(dir.join("lab.pid"), format!("{}\n", std::process::id())).unwrap();
    let stale = ferry().args(["lab", "down", "--dir"]).arg(&dir).output().unwrap();
    assert!(stale.status.success(), "{}", text(&stale));
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("stale lab.pid"),
        "{}",
        text(&stale)
    );
    assert!(!dir.join("lab.pid").exists());
}
