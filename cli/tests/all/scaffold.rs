//! `ferry new hook` end to end, as the README's "Writing a hook" walks a
//! newcomer through it: scaffold, build for wasm32-wasip2, rehearse in a
//! drill (passing), then make the hook veto and see teardown stop.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::path::Path;
use std::process::{Command, Output};

fn ferry(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(dir)
        .env("FERRY_LOG", "warn")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_scaffolded_hook_builds_and_rehearses_in_a_drill() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ferry(&["new", "hook", "change-freeze", "--dir", "change-freeze"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let crate_dir = tmp.path().join("change-freeze");
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "policy.cedar",
        "hooks.toml",
        "README.md",
        "wit/worlds.wit",
    ] {
        assert!(crate_dir.join(f).is_file(), "{f} missing");
    }
    // A second scaffold into the same place is refused.
    let again = ferry(&["new", "hook", "change-freeze", "--dir", "change-freeze"], tmp.path());
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));

    // Build it as its README says (its own target dir, as a newcomer would).
    let mut build = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    build
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir);
    for var in [
        "CARGO_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        build.env_remove(var);
    }
    let built = build.output().unwrap();
    assert!(built.status.success(), "{}", text(&built));

    // The drill passes with the hook listening at `verify` ...
    let drill = ferry(&["drill", "--hooks", "hooks.toml"], &crate_dir);
    assert!(drill.status.success(), "{}", text(&drill));
    assert!(text(&drill).contains("with hooks change-freeze"), "{}", text(&drill));

    // ... and stops at the first destructive step (backup stopping the etcd writers, which
    // takes the hosted cluster's API down), before it changes anything, once the hook vetoes.
    let hooks = std::fs::read_to_string(crate_dir.join("hooks.toml")).unwrap();
    let vetoing = hooks.replace("# change_freeze_veto = \"true\"", "change_freeze_veto = \"true\"");
    assert_ne!(hooks, vetoing, "hooks.toml has no commented veto parameter");
    std::fs::write(crate_dir.join("hooks.toml"), vetoing).unwrap();
    let vetoed = ferry(&["drill", "--hooks", "hooks.toml"], &crate_dir);
    assert!(!vetoed.status.success(), "{}", text(&vetoed));
    let t = text(&vetoed);
    assert!(t.contains("hook `change-freeze` vetoed"), "{t}");
    assert!(t.contains("verify backup/scale-down"), "{t}");
    assert!(t.contains("before the step changed anything"), "{t}");
}
