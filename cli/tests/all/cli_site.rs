//! `ferry backup|migrate --site`: bad or incomplete site configs fail before
//! anything runs, with exit code 2 and the key and flag to set.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::process::Command;

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

#[test]
fn a_missing_value_names_the_key_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        "[clusters.source]\nkubeconfig = \"s\"\n[clusters.destination]\nkubeconfig = \"d\"\n\
         [clusters.hosted]\nkubeconfig = \"h\"\n[hosted_cluster]\nname = \"a.b\"\n\
         [dns]\nzone_id = \"Z1\"\nexternal_dns_domain = \"x.example.com\"\n",
    )
    .unwrap();
    let out = ferry().arg("backup").arg("--site").arg(&site).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("[backup] bucket"), "{stderr}");
    assert!(stderr.contains("--bucket"), "{stderr}");
    assert!(stderr.contains(&site.display().to_string()), "{stderr}");
    assert!(
        !stderr.contains("--hc-name"),
        "only the missing value is listed: {stderr}"
    );

    // The flag fills it in: the run then gets past the site check (and fails
    // later, on the unreachable clusters or the guest, never with the site error).
    let out = ferry()
        .args(["migrate", "--plan", "--bucket", "b", "--site"])
        .arg(&site)
        .arg("--stop-after")
        .arg("nothing")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("required value"), "{stderr}");
}

#[test]
fn everything_missing_is_listed_at_once() {
    let out = ferry().arg("restore").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for flag in [
        "--hc-name",
        "--bucket",
        "--zone-id",
        "--external-dns-domain",
        "--source-kubeconfig",
        "--destination-kubeconfig",
        "--hosted-kubeconfig",
    ] {
        assert!(stderr.contains(flag), "{flag} missing from: {stderr}");
    }
}

#[test]
fn an_unknown_key_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.toml");
    std::fs::write(&site, "[hosted_cluster]\nname = \"a\"\nnamespcae = \"x\"\n").unwrap();
    let out = ferry().arg("teardown").arg("--site").arg(&site).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("namespcae") && stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains(&site.display().to_string()), "{stderr}");
}
