//! P6: the hosted cluster's API downtime of a migration, with upstream's timings (the clock
//! at scale one) on the default scenario, for a hosted cluster whose etcd holds `mib` MiB:
//! from backup asking the etcd writers to stop to the destination serving a write, next to
//! the physical minimum of the same run (the snapshot streamed into S3, the destination's
//! download and restore, external-dns publishing), each measured in that run.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use ferry_dr::phases::{MigrateOptions, PhaseArgs};
use ferry_drill::{DOWNTIME_GOAL, DOWNTIME_RATIO_GOAL, Drill, DrillOptions};

use crate::documented;
use crate::dump::{crds, quiet};
use crate::report::{Ratio, Row, Stats};

/// Fills the source's etcd of the hosted cluster with `mib` MiB under `/bench/` (outside
/// `/kubernetes.io/`: the hosted API does not load it, etcd carries it like any other data).
async fn fill(drill: &Drill, mib: usize) -> Result<()> {
    let hcp_ns = drill.env().hcp_namespace();
    let client = drill
        .env()
        .source()
        .controllers
        .etcd_client(&hcp_ns)
        .context("the source's etcd of the hosted cluster does not run")?;
    // One MiB per key, less than etcd's default request limit (1.5 MiB).
    let value: String = (0..1024 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    for i in 0..mib {
        client
            .put(&format!("/bench/{i:08}"), &value)
            .await
            .with_context(|| format!("writing MiB {i} into the hosted cluster's etcd"))?;
    }
    Ok(())
}

/// One migration's downtime and physical minimum, seconds.
struct Measured {
    downtime: f64,
    minimum: f64,
    parts: String,
}

/// Starts a drill at clock scale 1, fills its hosted etcd with `mib` MiB, runs `f` on it and
/// stops it, whatever `f` returned.
async fn on_filled_drill<T>(mib: usize, f: impl AsyncFnOnce(&Drill) -> Result<T>) -> Result<T> {
    let drill = Drill::start(DrillOptions {
        say: quiet(),
        crds: crds(),
        clock_scale: 1.0,
        ..DrillOptions::default()
    })
    .await?;
    let measured = async {
        fill(&drill, mib).await?;
        f(&drill).await
    }
    .await;
    drill.shutdown().await;
    measured
}

async fn once(mib: usize) -> Result<Measured> {
    on_filled_drill(mib, async |drill: &Drill| {
        // Backup and restore up to the write the destination serves: the downtime's end.
        let report = drill
            .migrate_with(&MigrateOptions {
                args: PhaseArgs {
                    stop_after: Some("api-write".into()),
                    ..PhaseArgs::default()
                },
                ..MigrateOptions::default()
            })
            .await;
        let Some(ms) = report.downtime_ms() else {
            bail!("the migration measured no downtime: {}", report.message());
        };
        let min = drill.physical_minimum(&report);
        let s = |ms: Option<u64>| ms.map_or_else(|| "?".to_string(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
        Ok(Measured {
            downtime: ms as f64 / 1000.0,
            minimum: min.total_ms() as f64 / 1000.0,
            parts: format!(
                "snapshot and upload {}, download and restore {}, DNS {}",
                s(min.snapshot_and_upload_ms),
                s(min.download_and_restore_ms),
                s(min.dns_ms)
            ),
        })
    })
    .await
}

/// The documented procedure on a drill of its own, with the same data.
async fn documented(mib: usize, cap: Duration) -> Result<documented::Baseline> {
    on_filled_drill(mib, async |drill: &Drill| documented::run(drill, cap).await).await
}

/// P6 at `mib` MiB, `runs` times, each next to the documented procedure (waited for at most
/// `cap`).
pub async fn p6(mib: usize, runs: usize, cap: Duration) -> Result<Row> {
    let mut downtimes = Vec::new();
    let mut minimums = Vec::new();
    let mut baselines = Vec::new();
    let mut parts = String::new();
    let mut baseline_steps = String::new();
    let mut capped = false;
    for _ in 0..runs.max(1) {
        let m = once(mib).await?;
        downtimes.push(m.downtime);
        minimums.push(m.minimum);
        parts = m.parts;
        let b = documented(mib, cap).await?;
        capped |= b.downtime.is_none();
        baselines.push(b.downtime.unwrap_or(cap.as_secs_f64()));
        baseline_steps = b
            .steps
            .iter()
            .map(|(what, s)| format!("{what} {s:.1} s"))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let ferry = Stats::of(&downtimes);
    let minimum = Stats::of(&minimums);
    let ratio = ferry.median / minimum.median;
    let goal = DOWNTIME_GOAL.as_secs_f64();
    let met = ferry.median <= goal && ratio <= DOWNTIME_RATIO_GOAL;
    let what = format!(
        "the hosted API's downtime of a migration (backup stops the writers → the destination serves a write), \
         upstream's timings, etcd holding {mib} MiB"
    );
    let baseline_what = if capped {
        format!(
            "the documented procedure (kubectl, etcdctl, AWS CLI, as migrate-hcp.sh runs it): no write served after \
             {} s, when the bench stopped waiting (lower bound)",
            cap.as_secs()
        )
    } else {
        "the documented procedure (kubectl, etcdctl, AWS CLI, as migrate-hcp.sh runs it)".to_string()
    };
    Ok(Row::compared(
        "P6",
        &what,
        "s",
        ferry,
        (&baseline_what, Stats::of(&baselines)),
        Ratio::Speedup,
    )
    .detail(
        "physical minimum (median)",
        format!("{:.1} s ({parts})", minimum.median),
    )
    .detail("documented procedure, last run", baseline_steps)
    .detail("ferry ÷ physical minimum", format!("{ratio:.2}×"))
    .goal(
        &format!(
            "≤ {} and ≤ {DOWNTIME_RATIO_GOAL}× the physical minimum",
            humantime(DOWNTIME_GOAL)
        ),
        met,
    ))
}

fn humantime(d: Duration) -> String {
    format!("{} min", d.as_secs() / 60)
}
