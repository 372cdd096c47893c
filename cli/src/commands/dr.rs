//! The DR commands: `ferry backup|restore|teardown|finish|abort` (one phase each) and
//! `ferry migrate` (all of them, resumable).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use ferry::config::RunConfig;
use ferry::runtime::Exit;
use ferry_dr::site::{SiteConfig, SiteOverrides};

use crate::exit;
use crate::output::Output;

#[derive(clap::Args, Clone)]
pub struct DrArgs {
    /// The site config (TOML; see `ferry_dr::site`).
    #[arg(long)]
    site: Option<PathBuf>,
    /// The site config's settings, overridden from the command line.
    #[command(flatten)]
    pub overrides: SiteOverrides,
    /// Another guest component instead of the embedded stock one.
    #[arg(long)]
    guest: Option<PathBuf>,
    /// Another Cedar policy instead of the embedded stock one.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The guest's policy name (default: the --guest file stem, or hosted-cluster-dr).
    #[arg(long)]
    name: Option<String>,
    /// Plan only: mutations are server-side dry-runs or recorded, never applied.
    #[arg(long)]
    plan: bool,
    #[command(flatten)]
    plan_file: super::plan::PlanFlags,
    /// Append an audit record per host call to this file (JSON lines).
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Sign each phase's checkpoint in the audit trail with this key file (at least 32 bytes).
    #[arg(long, env = "FERRY_AUDIT_KEY_FILE")]
    audit_key: Option<PathBuf>,
    /// Output format of the summary on stdout.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Teardown: tear down without a verified-healthy destination. Abort: abort although the
    /// destination has the hosted cluster (split brain: two control planes on one etcd history).
    #[arg(long)]
    force: bool,
    /// Stop right after this step (rehearsing interruptions).
    #[arg(long)]
    stop_after: Option<String>,
    /// Restore this backup.
    #[arg(long)]
    backup_id: Option<String>,
    /// Take the hosted cluster's lease although another ferry holds it and renews it (for a
    /// holder you know is gone, before its lease expires). Recorded in the audit trail.
    #[arg(long)]
    break_lease: bool,
}

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    dr: DrArgs,
    /// Start at this phase. Without it, ferry reads where the migration stands (its marker,
    /// the backup, the destination) and carries on from the first phase not done.
    #[arg(long, value_parser = parse_phase)]
    from: Option<ferry_dr::phases::Phase>,
}

fn parse_phase(s: &str) -> Result<ferry_dr::phases::Phase, String> {
    s.parse()
}

impl DrArgs {
    /// The run config, or the exit code after printing why there is none.
    pub fn run_config(&self) -> Result<RunConfig, ExitCode> {
        let site = match &self.site {
            Some(p) => SiteConfig::load(p),
            None => Ok(SiteConfig::default()),
        };
        let result = site.and_then(|mut s| {
            s.apply(&self.overrides)?;
            s.run_config()
        });
        result.map_err(|e| {
            eprintln!("error: {e}");
            exit(Exit::BadInput.code())
        })
    }

    /// How the phases run: the stock guest (or `--guest`/`--policy`), plan, audit.
    pub fn dr_options(
        &self,
        progress: Arc<dyn ferry::progress::ProgressSink>,
    ) -> Result<ferry_dr::phases::DrOptions, ExitCode> {
        let audit_key = super::audit::key(self.audit_key.as_deref()).map_err(|e| {
            eprintln!("error: {e}");
            exit(Exit::BadInput.code())
        })?;
        let plan_book = self.plan_file.book(audit_key.as_ref()).map_err(|e| {
            eprintln!("error: {e}");
            exit(Exit::BadInput.code())
        })?;
        Ok(ferry_dr::phases::DrOptions {
            guest: guest_choice(self.guest.as_ref(), self.name.as_ref(), self.policy.as_ref()),
            plan: self.plan,
            audit: self.audit.clone(),
            audit_key,
            progress,
            break_lease: self.break_lease,
            plan_book,
            ..Default::default()
        })
    }

    /// The phase arguments of the flags.
    pub fn phase_args(&self) -> ferry_dr::phases::PhaseArgs {
        ferry_dr::phases::PhaseArgs {
            force: self.force,
            stop_after: self.stop_after.clone(),
            backup_id: self.backup_id.clone(),
            extra: Vec::new(),
        }
    }
}

/// The stock guest and policy, or the `--guest`/`--name`/`--policy` given instead.
pub fn guest_choice(
    guest: Option<&PathBuf>,
    name: Option<&String>,
    policy: Option<&PathBuf>,
) -> ferry_dr::phases::GuestChoice {
    let mut choice = ferry_dr::phases::GuestChoice::stock();
    if let Some(path) = guest {
        choice.component = path.clone().into();
        choice.name = name.cloned();
    } else if let Some(name) = name {
        choice.name = Some(name.clone());
    }
    if let Some(path) = policy {
        choice.policy = path.clone().into();
    }
    choice
}

/// Runs one phase.
pub async fn cmd_phase(phase: ferry_dr::phases::Phase, args: DrArgs) -> anyhow::Result<ExitCode> {
    let config = match args.run_config() {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let progress = crate::output::progress();
    let opts = match args.dr_options(progress.clone()) {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    if args.output == Output::Text && !crate::output::quiet() {
        progress.println(&format!("== {phase} =="));
    }
    if args.guest.is_none() {
        progress.plan_steps(phase.name(), ferry_dr::stock::steps(phase));
    }
    let result = ferry_dr::phases::run_phase(&config, phase, &args.phase_args(), &opts).await;
    progress.finish(!result.as_ref().is_ok_and(|r| r.succeeded()));
    if result.is_ok() {
        args.plan_file.finish(opts.plan_book.as_deref())?;
    }
    match result {
        Ok(report) => {
            match args.output {
                Output::Text => println!("{}", report.to_text()),
                Output::Json => crate::output::print_json("phase", serde_json::json!({"phases": [report]}))?,
            }
            Ok(exit(report.exit_code()))
        }
        Err(e) => {
            let text = e.to_string();
            let message = ferry::scrub::secrets(&text);
            eprintln!("error: phase {phase}: {message}");
            if args.output == Output::Json {
                crate::output::print_json(
                    "phase",
                    serde_json::json!({"phases": [{"phase": phase, "status": "run-failed", "message": message, "exit_code": e.exit_code()}]}),
                )?;
            }
            Ok(exit(e.exit_code()))
        }
    }
}

/// This process's command line without `--stop-after`/`--from` (and their
/// values), as the base of the resume command.
fn resume_base() -> Vec<String> {
    let mut out = vec!["ferry".to_string()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--stop-after" || a == "--from" {
            args.next();
        } else if a.starts_with("--stop-after=") || a.starts_with("--from=") {
        } else {
            out.push(a);
        }
    }
    out
}

fn print_migration(report: &ferry_dr::phases::MigrateReport, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Text => eprintln!("{}", report.message()),
        Output::Json => crate::output::print_json(
            "migrate",
            serde_json::json!({
                "ok": report.succeeded(),
                "phases": report.phases,
                "completed": report.completed,
                "failed": report.failed,
                "stopped": report.stopped,
                "resume_command": report.resume_command,
                "abort_command": report.abort_command,
                "resumed": report.resumed,
                "downtime_ms": report.downtime_ms(),
                "api_down_ms": report
                    .api_down_by_phase()
                    .into_iter()
                    .map(|(p, ms)| (p.name().to_string(), ms))
                    .collect::<std::collections::BTreeMap<_, _>>(),
                "message": report.message(),
            }),
        )?,
    }
    Ok(())
}

/// Prints each phase as it starts and ends; with `stock`, the stock guest's steps are listed
/// when its phase starts.
pub fn phase_hook(progress: crate::terminal::Shared, output: Output, stock: bool) -> ferry_dr::phases::PhaseHook {
    Arc::new(move |phase, result| {
        if output == Output::Json {
            progress.finish(result.is_some_and(|r| r.failed()));
            return;
        }
        match result {
            None => {
                if !crate::output::quiet() {
                    progress.println(&format!("== {phase} =="));
                }
                if stock {
                    progress.plan_steps(phase.name(), ferry_dr::stock::steps(phase));
                }
            }
            Some(r) => {
                progress.finish(r.failed());
                match r.report() {
                    Some(report) => println!("{}", report.to_text()),
                    None => {
                        if let ferry_dr::phases::PhaseResult::RunFailed { message, .. } = r {
                            println!("{phase}: FAILED: {message}");
                        }
                    }
                }
            }
        }
    })
}

/// Runs `migrate`.
pub async fn cmd_migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let config = match args.dr.run_config() {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let progress = crate::output::progress();
    if args.dr.plan_file.apply.is_some() {
        eprintln!(
            "error: ferry migrate applies no plan file: each phase is planned when its inputs exist, so apply \
             each one's approved plan with `ferry backup|restore|teardown|finish --apply FILE`"
        );
        return Ok(exit(Exit::BadInput.code()));
    }
    let opts = match args.dr.dr_options(progress.clone()) {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    if let Some(dir) = &args.dr.plan_file.plan_out {
        return plan_migration(&config, &args.dr, &opts, dir).await;
    }
    let mopts = ferry_dr::phases::MigrateOptions {
        args: args.dr.phase_args(),
        from: args.from,
        command: Some(resume_base()),
        on_phase: Some(phase_hook(progress, args.dr.output, args.dr.guest.is_none())),
    };
    let report = ferry_dr::phases::migrate(&config, &opts, &mopts).await;
    print_migration(&report, args.dr.output)?;
    Ok(exit(report.exit_code()))
}

/// `ferry migrate --plan --plan-out DIR`: plans what can be planned before anything runs.
/// Backup's inputs exist now (the source); restore's do not until the backup does (its object
/// list is the backup's), teardown's until restore has run, finish's until teardown has. So
/// backup is planned into `DIR/backup.plan.json`, and the message says when to plan the rest.
async fn plan_migration(
    config: &RunConfig,
    args: &DrArgs,
    opts: &ferry_dr::phases::DrOptions,
    dir: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    use ferry_dr::phases::Phase;
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let file = dir.join("backup.plan.json");
    let result = ferry_dr::phases::run_phase(config, Phase::Backup, &args.phase_args(), opts).await;
    match result {
        Ok(report) => {
            if args.output == Output::Text {
                println!("{}", report.to_text());
            }
            let flags = super::plan::PlanFlags {
                plan_out: Some(file.clone()),
                apply: None,
            };
            flags.finish(opts.plan_book.as_deref())?;
            let d = dir.display();
            eprintln!(
                "planned ahead: backup ({}). Planned when their inputs exist, each after the one before is applied:\n  \
                 restore (needs the backup): ferry restore --plan --plan-out {d}/restore.plan.json\n  \
                 teardown (needs the restored destination): ferry teardown --plan --plan-out {d}/teardown.plan.json\n  \
                 finish (needs the source torn down): ferry finish --plan --plan-out {d}/finish.plan.json",
                file.display()
            );
            Ok(exit(report.exit_code()))
        }
        Err(e) => {
            eprintln!("error: planning backup: {}", ferry::scrub::secrets(&e.to_string()));
            Ok(exit(e.exit_code()))
        }
    }
}
