//! `ferry drill`: a whole migration rehearsed against the simulator.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use ferry::runtime::Exit;

use super::dr::phase_hook;
use crate::exit;
use crate::output::Output;

#[derive(clap::Args)]
pub struct DrillArgs {
    /// The scenario (TOML or YAML); default: the embedded sim/scenarios/basic.toml.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Output format of the summary on stdout.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Keep kubeconfigs, site config, backups, S3 data and the audit trail here.
    #[arg(long)]
    keep_dir: Option<PathBuf>,
    /// The site's hooks to rehearse: a TOML file with `[[hooks]]` entries
    /// (name, component, policy, points, advisory) and the `[params]` they read.
    #[arg(long)]
    hooks: Option<PathBuf>,
    /// Serve HyperShift's kinds from the CRDs of this directory (for example
    /// `../shared/upstream/hypershift/crds`), with their schemas and CEL rules.
    #[arg(long, value_name = "DIR", conflicts_with = "crds_from")]
    crds: Option<PathBuf>,
    /// Read the HyperShift, Cluster API and CAPA CRDs from a live management cluster, to
    /// rehearse against the exact HyperShift version a site runs.
    #[arg(long, value_name = "KUBECONFIG")]
    crds_from: Option<PathBuf>,
    /// Fail this share of the requests to both management clusters, the hosted cluster, S3
    /// and Route53 (`0.05` or `5%`): API errors, dropped connections, lost responses,
    /// latency, S3 5xx and slow parts, Route53 throttling.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    faults: Option<f64>,
    /// The seed that draws the faults: the same seed rehearses the same bad day.
    #[arg(long, default_value_t = 1, requires = "faults")]
    seed: u64,
    /// Rehearse a whole management cluster: N hosted clusters (the embedded scenario's and
    /// N-1 more in two namespaces), moved by `ferry fleet migrate`.
    #[arg(long, value_name = "N", conflicts_with = "scenario", value_parser = clap::value_parser!(u16).range(1..))]
    fleet: Option<u16>,
    /// With --fleet: how many move at once.
    #[arg(long, default_value_t = 4, requires = "fleet", value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Rehearse change management: each phase planned (`--plan --plan-out`), approved with the
    /// drill's audit key (`ferry plan approve`) and applied (`--apply`); the plan files are kept
    /// under `plans/` of the working directory.
    #[arg(long, conflicts_with = "fleet")]
    approved_plans: bool,
}

/// `0.05` or `5%`, between 0 and 1.
fn parse_rate(s: &str) -> Result<f64, String> {
    let (text, scale) = match s.strip_suffix('%') {
        Some(p) => (p, 100.0),
        None => (s, 1.0),
    };
    match text.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&(v / scale)) => Ok(v / scale),
        _ => Err(format!(
            "{s:?} is not a rate: give a share such as 0.05 or 5% (between 0 and 100%)"
        )),
    }
}

/// Runs the drill.
pub async fn cmd_drill(args: DrillArgs) -> anyhow::Result<ExitCode> {
    let scenario = match (&args.scenario, args.fleet) {
        (Some(p), _) => ferry_sim::hypershift::scenario::Scenario::load(p)?,
        (None, Some(n)) => ferry_drill::fleet_scenario(usize::from(n)),
        (None, None) => ferry_drill::basic_scenario(),
    };
    let crds = match (&args.crds, &args.crds_from) {
        (Some(dir), _) => ferry_sim::kube::crd::CrdSource::Dir(dir.clone()),
        (None, Some(kubeconfig)) => ferry_drill::crds_from_cluster(kubeconfig).await?,
        (None, None) => ferry_sim::kube::crd::CrdSource::Builtin,
    };
    let progress = crate::output::progress();
    let quiet = crate::output::quiet();
    let opts = ferry_drill::DrillOptions {
        scenario,
        crds,
        keep_dir: args.keep_dir.clone(),
        progress: progress.clone(),
        say: Arc::new(move |m: &str| {
            if !quiet {
                eprintln!("drill: {m}")
            }
        }),
        faults: args.faults.map(|rate| ferry_drill::Faults { rate, seed: args.seed }),
        ..Default::default()
    };
    let hooks = match &args.hooks {
        Some(p) => Some(ferry::config::HooksFile::load(p)?),
        None => None,
    };
    let mut drill = ferry_drill::Drill::start(opts).await?;
    if let Some(h) = hooks {
        if !quiet {
            eprintln!(
                "drill: with hooks {}",
                h.hooks.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        let config = drill.run_config_mut();
        config.hooks = h.hooks;
        config.params.extend(h.params);
    }
    if !quiet {
        eprintln!("drill: working directory {}", drill.dir().display());
    }
    if args.fleet.is_some() {
        return drill_fleet(drill, &args).await;
    }
    if args.approved_plans {
        return drill_approved(drill, &args).await;
    }
    let mopts = ferry_dr::phases::MigrateOptions {
        on_phase: Some(phase_hook(progress, args.output, true)),
        ..Default::default()
    };
    if !quiet {
        eprintln!(
            "drill: HyperShift {} on every management cluster, upstream's timings on a clock {}× real time",
            drill.env().scenario.hypershift.name(),
            drill.run_config().clock.scale
        );
    }
    let refusal = drill.expected_refusal();
    if let (Some(why), false) = (refusal, quiet) {
        eprintln!("drill: the stock guest must refuse this scenario before it changes anything ({why})");
    }
    let migration = drill.migrate_with(&mopts).await;
    drill.set_faults_active(false);
    let checks = match refusal {
        Some(why) => drill.verify_refusal(&migration, why).await,
        None => {
            let mut checks = drill.verify().await;
            checks.checks.push(drill.check_downtime(&migration));
            checks
        }
    };
    let migrated = migration.succeeded() || refusal.is_some();
    let faults = drill.fault_report();
    match args.output {
        Output::Text => {
            eprintln!("{}", migration.message());
            println!("{}", checks.to_text());
            if let Some(f) = &faults {
                print!("{}", f.to_text());
            }
            if let Some(d) = &args.keep_dir {
                println!(
                    "kept: {} (site.toml, kubeconfigs/, backup/, audit.jsonl and its audit.key, s3/)",
                    d.display()
                );
            }
        }
        Output::Json => crate::output::print_json(
            "drill",
            serde_json::json!({
                "ok": migrated && checks.passed(),
                "migration": {"phases": migration.phases, "completed": migration.completed,
                    "failed": migration.failed, "message": migration.message(),
                    "downtime_ms": migration.downtime_ms(), "physical_minimum": drill.physical_minimum(&migration)},
                "profile": drill.env().scenario.hypershift.name(),
                "clock_scale": drill.run_config().clock.scale,
                "checks": checks.checks,
                "faults": faults,
                "dir": args.keep_dir,
            }),
        )?,
    }
    drill.shutdown().await;
    let code = if !migrated {
        migration.exit_code().max(Exit::GuestFailed.code())
    } else if !checks.passed() {
        Exit::GuestFailed.code()
    } else {
        Exit::Success.code()
    };
    Ok(exit(code))
}

/// The change-management drill: each phase planned, approved and applied, then the drill's
/// checks.
async fn drill_approved(drill: ferry_drill::Drill, args: &DrillArgs) -> anyhow::Result<ExitCode> {
    use ferry_dr::phases::{Phase, PhaseArgs};
    let mut runs = Vec::new();
    let mut ok = true;
    for phase in [Phase::Backup, Phase::Restore, Phase::Teardown, Phase::Finish] {
        if !crate::output::quiet() {
            eprintln!("drill: {phase}: plan, approve, apply");
        }
        let run = drill.phase_approved(phase, &PhaseArgs::default()).await?;
        if args.output == Output::Text {
            println!("{}", run.to_line());
        }
        ok &= run.succeeded();
        runs.push(serde_json::json!({
            "phase": phase,
            "plan": run.path,
            "changes": run.plan.mutations.len(),
            "reads": run.plan.reads.len(),
            "not_done": run.not_done,
            "ok": run.succeeded(),
            "message": run.to_line(),
        }));
        if !ok {
            break;
        }
    }
    let checks = drill.verify().await;
    match args.output {
        Output::Text => println!("{}", checks.to_text()),
        Output::Json => crate::output::print_json(
            "drill",
            serde_json::json!({
                "ok": ok && checks.passed(),
                "approved_plans": runs,
                "checks": checks.checks,
                "dir": args.keep_dir,
            }),
        )?,
    }
    drill.shutdown().await;
    Ok(exit(if ok && checks.passed() {
        Exit::Success.code()
    } else {
        Exit::GuestFailed.code()
    }))
}

/// The fleet drill: every seeded hosted cluster moved by `ferry fleet migrate`, each checked as
/// the drill checks one.
async fn drill_fleet(drill: ferry_drill::Drill, args: &DrillArgs) -> anyhow::Result<ExitCode> {
    let mut members: Vec<ferry_dr::fleet::Member> = drill
        .env()
        .scenario
        .seeded()
        .iter()
        .map(|s| ferry_dr::fleet::Member {
            namespace: s.spec.namespace.clone(),
            name: s.spec.name.clone(),
        })
        .collect();
    // Fleet order, as the table and a Job's indexes have it.
    members.sort();
    let view = Arc::new(crate::fleet_view::Fleet::for_stderr(
        &members,
        crate::output::quiet(),
        crate::output::json_logs(),
    ));
    let mut fopts = drill.fleet_options(usize::from(args.concurrency));
    fopts.view = Some(Arc::new(crate::fleet_view::View(view.clone())));
    let selection = ferry_dr::fleet::Selection {
        selector: None,
        hosted_clusters: members,
    };
    let report = drill.migrate_fleet(&selection, &fopts).await?;
    drill.set_faults_active(false);
    let checks = drill.verify_fleet(&report, &fopts).await;
    drop((view, fopts));
    let verified = checks.iter().filter(|(_, c)| c.passed()).count();
    match args.output {
        Output::Text => {
            println!("{}", report.to_text());
            for (m, c) in checks.iter().filter(|(_, c)| !c.passed()) {
                println!("\n{m}: verification failed\n{}", c.to_text());
            }
            println!(
                "{verified} of {} hosted clusters verified (etcd, DNS, source clean, backup, operators, audit)",
                checks.len()
            );
        }
        Output::Json => crate::output::print_json(
            "drill-fleet",
            serde_json::json!({
                "ok": report.succeeded() && verified == checks.len(),
                "fleet": report,
                "checks": checks.iter().map(|(m, c)| serde_json::json!({"member": m, "checks": c.checks})).collect::<Vec<_>>(),
                "dir": args.keep_dir,
            }),
        )?,
    }
    drill.shutdown().await;
    Ok(exit(if !report.succeeded() {
        report.exit_code().max(Exit::GuestFailed.code())
    } else if verified != checks.len() {
        Exit::GuestFailed.code()
    } else {
        Exit::Success.code()
    }))
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_are_shares_or_percentages_within_bounds() {
        assert_eq!(parse_rate("0.05"), Ok(0.05));
        assert_eq!(parse_rate("5%"), Ok(0.05));
        assert_eq!(parse_rate("100%"), Ok(1.0));
        for bad in ["150%", "-1", "2", "five", "%", ""] {
            let e = parse_rate(bad).expect_err(bad);
            assert!(e.contains("is not a rate"), "{e}");
        }
    }
}
