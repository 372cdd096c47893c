//! The crash matrix: `ferry` SIGKILLed at a step boundary or inside a long step, then the same
//! migration run again from the phase that died. Every case must reach the drill's verified
//! end state with one backup and no multipart upload left open.
//!
//! Each case starts its own lab (the drill's clusters, S3 and Route53, as `ferry lab up`
//! does), runs the phases before the killed one, then runs the killed phase as a `ferry`
//! process with `FERRY_KILL_AT` (see `ferry::killpoint`); the process must die of SIGKILL,
//! not exit. It then runs the plain `ferry migrate --break-lease`, as an SRE whose terminal
//! died would: ferry reads where the migration stands and carries on from there.
//!
//! Whole `ferry migrate` processes are killed too, at the `N`-th host call of the run with
//! `N` drawn from a seed (`FERRY_CRASH_SEED`, printed): moments the process does not choose.
//!
//! An abort is killed after a backup, run again with `ferry abort --break-lease`, and must leave
//! the source in service: nothing paused, the control plane's Deployments at the replicas they
//! had before the backup, the marker saying `aborted`.
//!
//! CI runs [`REPRESENTATIVE`]: every phase, and every kind of kill point. The full matrix
//! (every step boundary of every phase and every in-step point) runs with
//! `FERRY_CRASH_MATRIX=full cargo test -p ferry-cli --test all crash:: -- --nocapture`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Instant;

use ferry_dr::phases::{Phase, PhaseArgs};
use ferry_drill::{Drill, DrillOptions};
use ferry_sim::ListOptions;
use ferry_sim::kube::registry;

/// One kill: the phase whose process is killed, and where.
#[derive(Debug, Clone, Copy)]
struct Case {
    phase: Phase,
    kill_at: &'static str,
}

const fn case(phase: Phase, kill_at: &'static str) -> Case {
    Case { phase, kill_at }
}

/// Kills inside long steps: the snapshot stream (after its first part is stored, with an
/// etcd large enough for several parts), the manifest upload, the restore's applies and the
/// teardown's deletes, each before and after a call's I/O.
const IN_STEP: &[Case] = &[
    case(Phase::Backup, "part:1"),
    case(Phase::Backup, "before:objects:put:13"),
    case(Phase::Backup, "after:objects:put:13"),
    case(Phase::Restore, "before:k8s:apply:11"),
    case(Phase::Restore, "after:k8s:apply:11"),
    case(Phase::Restore, "after:k8s:create:2"),
    case(Phase::Teardown, "before:k8s:delete:10"),
    case(Phase::Teardown, "after:k8s:delete:10"),
    case(Phase::Teardown, "after:k8s:scale:1"),
    case(Phase::Abort, "after:k8s:scale:1"),
    case(Phase::Abort, "before:k8s:patch:1"),
];

/// What CI runs: each phase at a boundary, and each kind of in-step kill.
const REPRESENTATIVE: &[Case] = &[
    case(Phase::Backup, "step:backup/pause"),
    case(Phase::Backup, "part:1"),
    case(Phase::Backup, "after:objects:put:13"),
    case(Phase::Restore, "step:restore/hosted-cluster"),
    case(Phase::Restore, "before:k8s:apply:11"),
    case(Phase::Teardown, "step:teardown/stop-operator"),
    case(Phase::Teardown, "after:k8s:delete:10"),
    case(Phase::Finish, "step:finish/ovn-pods"),
    case(Phase::Abort, "step:abort/unpause"),
];

fn full_matrix() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    // Every step boundary of every phase, abort (after a backup) included; status changes
    // nothing and runs inside `ferry migrate` (killed whole below).
    for phase in Phase::EVERY.into_iter().filter(|p| *p != Phase::Status) {
        for step in ferry_dr::stock::steps(phase) {
            let point: &'static str = Box::leak(format!("step:{phase}/{step}").into_boxed_str());
            cases.push(case(phase, point));
        }
    }
    cases.extend_from_slice(IN_STEP);
    cases
}

/// A scenario whose hosted etcd holds about 12 MiB, so the snapshot takes two 8 MiB parts.
fn large_etcd_scenario() -> ferry_sim::hypershift::scenario::Scenario {
    let mut scenario = ferry_drill::basic_scenario();
    for i in 0..12 {
        scenario.etcd_keys.insert(
            format!("/kubernetes.io/configmaps/default/bulk-{i:02}"),
            format!("{i:02}").repeat(512 * 1024),
        );
    }
    scenario
}

fn cache_env() -> std::path::PathBuf {
    std::env::temp_dir().join("ferry-cli-test-cache")
}

/// Runs `ferry ARGS` against the lab; `kill_at` arms a kill point.
async fn ferry(drill: &Drill, args: &[&str], kill_at: Option<&str>) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .arg("--site")
        .arg(drill.site_path())
        .arg("--audit")
        .arg(drill.audit_path())
        .envs(drill.process_env())
        .env("XDG_CACHE_HOME", cache_env())
        .env_remove(ferry::killpoint::ENV)
        .current_dir(drill.dir());
    if let Some(point) = kill_at {
        cmd.env(ferry::killpoint::ENV, point);
    }
    cmd.output().await.unwrap()
}

fn show(o: &std::process::Output) -> String {
    format!(
        "status {:?}\n--- stderr\n{}\n--- stdout\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    )
}

/// The backups under the drill's prefix (one directory per backup id) and the multipart
/// uploads still open in its bucket.
async fn backups_and_open_uploads(drill: &Drill) -> (Vec<String>, Vec<String>) {
    let s3 = drill.s3_client().await;
    let hc = &drill.env().scenario.hosted_cluster;
    let prefix = format!("{}/{}/{}/", ferry_drill::PREFIX, hc.namespace, hc.name);
    let listed = s3
        .list_objects_v2()
        .bucket(drill.bucket())
        .prefix(&prefix)
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let backups = listed
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix().map(str::to_string))
        .collect();
    let uploads = s3.list_multipart_uploads().bucket(drill.bucket()).send().await.unwrap();
    let open = uploads
        .uploads()
        .iter()
        .map(|u| {
            format!(
                "{} ({})",
                u.key().unwrap_or_default(),
                u.upload_id().unwrap_or_default()
            )
        })
        .collect();
    (backups, open)
}

/// Runs one case in its own lab; returns a description of what went wrong, if anything.
async fn run_case(c: Case) -> Result<(), String> {
    let scenario = if c.kill_at.starts_with("part:") {
        large_etcd_scenario()
    } else {
        ferry_drill::basic_scenario()
    };
    let drill = Drill::start(DrillOptions {
        scenario,
        say: Arc::new(|_: &str| {}),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("the lab did not start: {e}"))?;
    let result = kill_and_rerun(&drill, c).await;
    drill.shutdown().await;
    result
}

async fn kill_and_rerun(drill: &Drill, c: Case) -> Result<(), String> {
    if c.phase == Phase::Abort {
        return kill_abort_and_rerun(drill, c).await;
    }
    for earlier in Phase::ALL.iter().take_while(|p| **p != c.phase) {
        drill
            .phase(*earlier, &PhaseArgs::default())
            .await
            .map_err(|e| format!("{earlier} before the kill failed: {e}"))?;
    }
    let killed = ferry(drill, &[&c.phase.to_string()], Some(c.kill_at)).await;
    if killed.status.signal() != Some(SIGKILL) {
        return Err(format!(
            "{} was not killed at {} (the point was never reached, or the run failed first):\n{}",
            c.phase,
            c.kill_at,
            show(&killed)
        ));
    }
    converge_after_kill(drill).await
}

/// Runs the plain `ferry migrate --break-lease` after a kill and checks the end state: the
/// drill's checks, one backup, no multipart upload left open.
async fn converge_after_kill(drill: &Drill) -> Result<(), String> {
    let resumed = ferry(drill, &["migrate", "--break-lease"], None).await;
    if !resumed.status.success() {
        return Err(format!("the re-run after the kill failed:\n{}", show(&resumed)));
    }
    let report = drill.verify().await;
    let mut problems: Vec<String> = report
        .checks
        .iter()
        .filter(|ch| !ch.passed)
        .map(|ch| format!("check {} failed: {}", ch.name, ch.detail))
        .collect();
    let (backups, open) = backups_and_open_uploads(drill).await;
    if backups.len() != 1 {
        problems.push(format!("expected one backup, found {}: {backups:?}", backups.len()));
    }
    if !open.is_empty() {
        problems.push(format!("multipart uploads left open: {open:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// SIGKILL's number (9 on every Unix ferry runs on).
const SIGKILL: i32 = 9;

async fn kill_abort_and_rerun(drill: &Drill, c: Case) -> Result<(), String> {
    let before = drill.source_control_plane_replicas();
    drill
        .phase(Phase::Backup, &PhaseArgs::default())
        .await
        .map_err(|e| format!("backup before the kill failed: {e}"))?;
    let killed = ferry(drill, &["abort"], Some(c.kill_at)).await;
    if killed.status.signal() != Some(SIGKILL) {
        return Err(format!("abort was not killed at {}:\n{}", c.kill_at, show(&killed)));
    }
    let again = ferry(drill, &["abort", "--break-lease"], None).await;
    if !again.status.success() {
        return Err(format!("the re-run of abort after the kill failed:\n{}", show(&again)));
    }
    let store = drill.env().source().sim.store();
    let hc = &drill.env().scenario.hosted_cluster;
    let mut problems = Vec::new();
    match store.get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name) {
        Ok(o) if o["spec"]["pausedUntil"].is_null() => {}
        Ok(o) => problems.push(format!(
            "the HostedCluster is still paused: {}",
            o["spec"]["pausedUntil"]
        )),
        Err(e) => problems.push(format!("the HostedCluster is gone from the source: {e}")),
    }
    for np in store
        .list(&registry::NODE_POOL, Some(&hc.namespace), &ListOptions::default())
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if !np["spec"]["pausedUntil"].is_null() {
            problems.push(format!("NodePool {} is still paused", np["metadata"]["name"]));
        }
    }
    let after = drill.source_control_plane_replicas();
    if after != before {
        problems.push(format!(
            "the control plane's replicas are {after:?}, not {before:?} as before the backup"
        ));
    }
    let state = drill.marker_state();
    if state.as_deref() != Some("aborted") {
        problems.push(format!("the marker says {state:?}, not \"aborted\""));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

async fn run_matrix(cases: &[Case]) {
    let started = Instant::now();
    let mut failed = Vec::new();
    for c in cases {
        let t = Instant::now();
        let outcome = run_case(*c).await;
        eprintln!(
            "crash matrix: {} killed at {}: {} ({:.1} s)",
            c.phase,
            c.kill_at,
            if outcome.is_ok() { "converged" } else { "FAILED" },
            t.elapsed().as_secs_f64()
        );
        if let Err(e) = outcome {
            failed.push(format!("{} at {}: {e}", c.phase, c.kill_at));
        }
    }
    eprintln!(
        "crash matrix: {} of {} kill points converged in {:.0} s",
        cases.len() - failed.len(),
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_killed_anywhere_converges_when_run_again() {
    let full = std::env::var("FERRY_CRASH_MATRIX").is_ok_and(|v| v == "full");
    let mut cases = if full { full_matrix() } else { REPRESENTATIVE.to_vec() };
    // `FERRY_CRASH_FILTER=abort` (or `part:`, `teardown/`...) runs the matching cases only.
    if let Ok(filter) = std::env::var("FERRY_CRASH_FILTER") {
        cases.retain(|c| format!("{} {}", c.phase, c.kill_at).contains(&filter));
        assert!(!cases.is_empty(), "FERRY_CRASH_FILTER={filter} matches no case");
    }
    run_matrix(&cases).await;
}

/// The seed kills of whole migrations draw from (`FERRY_CRASH_SEED` overrides it).
const DEFAULT_SEED: u64 = 0x5eed_f3aa;

/// `count` call numbers in `1..=max`, drawn from `seed` (SplitMix64), sorted.
fn draw_calls(seed: u64, count: usize, max: u64) -> Vec<u64> {
    let mut state = seed;
    let mut out: Vec<u64> = (0..count)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            1 + (z ^ (z >> 31)) % max
        })
        .collect();
    out.sort_unstable();
    out
}

/// A whole `ferry migrate` killed at the `N`-th host call of its run, `N` drawn from a seed
/// over the calls a migration makes (about 800 in the basic scenario), then the plain command
/// run again. CI draws two; `FERRY_CRASH_MATRIX=full` draws eight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_killed_at_moments_it_does_not_choose_converges() {
    let seed = std::env::var("FERRY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let full = std::env::var("FERRY_CRASH_MATRIX").is_ok_and(|v| v == "full");
    let calls = draw_calls(seed, if full { 8 } else { 2 }, 700);
    eprintln!("crash matrix: killing ferry migrate at calls {calls:?} (FERRY_CRASH_SEED={seed})");
    let mut failed = Vec::new();
    for n in calls {
        let drill = Drill::start(DrillOptions {
            scenario: ferry_drill::basic_scenario(),
            say: Arc::new(|_: &str| {}),
            ..Default::default()
        })
        .await
        .unwrap();
        let point = format!("call:{n}");
        let killed = ferry(&drill, &["migrate"], Some(&point)).await;
        let outcome = if killed.status.signal() != Some(SIGKILL) {
            Err(format!("ferry migrate was not killed at {point}:\n{}", show(&killed)))
        } else {
            converge_after_kill(&drill).await
        };
        eprintln!(
            "crash matrix: ferry migrate killed at {point}: {}",
            if outcome.is_ok() { "converged" } else { "FAILED" }
        );
        if let Err(e) = outcome {
            failed.push(format!("{point} (FERRY_CRASH_SEED={seed}): {e}"));
        }
        drill.shutdown().await;
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn the_seeded_draw_is_stable_and_in_range() {
    let a = draw_calls(7, 8, 700);
    assert_eq!(a, draw_calls(7, 8, 700));
    assert!(a.iter().all(|n| (1..=700).contains(n)), "{a:?}");
    assert_ne!(a, draw_calls(8, 8, 700));
}

#[test]
fn the_representative_cases_are_in_the_full_matrix() {
    let full: Vec<String> = full_matrix()
        .iter()
        .map(|c| format!("{}@{}", c.phase, c.kill_at))
        .collect();
    for c in REPRESENTATIVE {
        let name = format!("{}@{}", c.phase, c.kill_at);
        assert!(full.contains(&name), "{name} is not in the full matrix");
    }
    // Every phase is represented in CI, abort included.
    for phase in Phase::EVERY.into_iter().filter(|p| *p != Phase::Status) {
        assert!(
            REPRESENTATIVE.iter().any(|c| c.phase == phase),
            "{phase} has no CI case"
        );
    }
}
