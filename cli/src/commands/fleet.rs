//! `ferry fleet plan|migrate`: every selected hosted cluster of the source management cluster,
//! each as its own migration (see [`ferry_dr::fleet`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use ferry::runtime::Exit;
use ferry_dr::fleet::{FleetOptions, Member, Selection};
use ferry_dr::site::SiteConfig;

use crate::exit;
use crate::fleet_view::{Fleet, View};
use crate::output::Output;

#[derive(Subcommand)]
pub enum FleetCommand {
    /// List the hosted clusters that would move and whether each could start now (its backup
    /// preflight, run as a plan: it reads and changes nothing). Exit code 0 when all are ready.
    Plan(FleetArgs),
    /// Migrate every selected hosted cluster, --concurrency at a time, each its own migration
    /// (lease, audit trail, policy link, local backup directory): one that fails stops alone.
    /// Ends with a table of each one's result, and the resume and abort commands of those that
    /// stopped.
    Migrate(MigrateArgs),
    /// Write the manifests that run a fleet migration inside a cluster: an Indexed Job (index i
    /// migrates the i-th hosted cluster of the list), its ServiceAccount, a ConfigMap with the
    /// site, and the RBAC it needs.
    Render(super::fleet_render::RenderArgs),
    /// Migrate the hosted cluster at one index of a rendered list: what a rendered Job's pod
    /// runs (the index comes from `JOB_COMPLETION_INDEX`).
    RunIndex(super::fleet_render::RunIndexArgs),
}

/// Which hosted clusters, from which site, with which guest.
#[derive(clap::Args)]
pub struct FleetArgs {
    /// The site config. Its `[clusters.hosted]` kubeconfig (or context) must name each hosted
    /// cluster with `{namespace}`/`{name}`, e.g. "hosted/{namespace}/{name}.kubeconfig".
    #[arg(long)]
    pub site: PathBuf,
    /// Select the source's HostedClusters by label (`env=prod,tier!=gold`).
    #[arg(long, value_name = "LABELS")]
    pub selector: Option<String>,
    /// A hosted cluster to move (repeatable); with --selector, it must match it too. Without
    /// either, every HostedCluster of the source.
    #[arg(long = "hosted-cluster", value_name = "NAMESPACE/NAME", value_parser = parse_member)]
    pub hosted_clusters: Vec<Member>,
    /// How many hosted clusters move at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Another guest component instead of the embedded stock one.
    #[arg(long)]
    pub guest: Option<PathBuf>,
    /// Another Cedar policy instead of the embedded stock one.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The guest's policy name (default: the --guest file stem, or hosted-cluster-dr).
    #[arg(long)]
    pub name: Option<String>,
    /// Output format of the summary on stdout.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// Keep each hosted cluster's audit trail in DIR/<namespace>/<name>.jsonl.
    #[arg(long, value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// Sign each phase's checkpoint in the audit trails with this key file.
    #[arg(long, env = "FERRY_AUDIT_KEY_FILE")]
    audit_key: Option<PathBuf>,
}

fn parse_member(s: &str) -> Result<Member, String> {
    s.parse().map_err(|e: ferry_dr::fleet::FleetError| e.to_string())
}

impl FleetArgs {
    fn selection(&self) -> Selection {
        Selection {
            selector: self.selector.clone(),
            hosted_clusters: self.hosted_clusters.clone(),
        }
    }

    /// The output format.
    pub fn output(&self) -> Output {
        self.output
    }

    /// The site and the selected members, or the exit code after saying why not.
    pub async fn members(&self) -> Result<(SiteConfig, Vec<Member>), ExitCode> {
        let bad = |e: String| {
            eprintln!("error: {e}");
            exit(Exit::BadInput.code())
        };
        let site = SiteConfig::load(&self.site).map_err(|e| bad(e.to_string()))?;
        let members = ferry_dr::fleet::select(&site, &self.selection())
            .await
            .map_err(|e| bad(e.to_string()))?;
        Ok((site, members))
    }

    fn dr_options(
        &self,
        audit_key: Option<ferry::audit::AuditKey>,
        progress: Arc<dyn ferry::progress::ProgressSink>,
    ) -> ferry_dr::phases::DrOptions {
        ferry_dr::phases::DrOptions {
            guest: super::dr::guest_choice(self.guest.as_ref(), self.name.as_ref(), self.policy.as_ref()),
            audit_key,
            progress,
            ..Default::default()
        }
    }
}

/// Runs a `fleet` subcommand.
pub async fn cmd_fleet(cmd: FleetCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FleetCommand::Plan(args) => cmd_plan(args).await,
        FleetCommand::Migrate(args) => cmd_migrate(args).await,
        FleetCommand::Render(args) => super::fleet_render::cmd_render(args).await,
        FleetCommand::RunIndex(args) => super::fleet_render::cmd_run_index(args).await,
    }
}

async fn cmd_plan(args: FleetArgs) -> anyhow::Result<ExitCode> {
    let (site, members) = match args.members().await {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let quiet = Arc::new(ferry::progress::TerminalProgress::to_writer(Box::new(std::io::sink())));
    let opts = args.dr_options(None, quiet);
    let planned = ferry_dr::fleet::plan(&site, &members, &opts, usize::from(args.concurrency)).await;
    let ready = planned.iter().filter(|p| p.ready).count();
    match args.output {
        Output::Text => {
            let width = planned.iter().map(|p| p.member.to_string().len()).max().unwrap_or(0);
            for p in &planned {
                let mark = if p.ready { "ready    " } else { "NOT READY" };
                println!(
                    "{:width$}  {mark}  {}",
                    p.member.to_string(),
                    ferry::progress::terminal_safe(&p.message, false)
                );
            }
            println!("{ready} of {} hosted clusters ready to move", planned.len());
        }
        Output::Json => crate::output::print_json(
            "fleet-plan",
            serde_json::json!({"ready": ready == planned.len(), "members": planned}),
        )?,
    }
    Ok(exit(if ready == planned.len() {
        Exit::Success.code()
    } else {
        Exit::GuestFailed.code()
    }))
}

async fn cmd_migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let (site, members) = match args.fleet.members().await {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let audit_key = match super::audit::key(args.audit_key.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit(Exit::BadInput.code()));
        }
    };
    let view = Arc::new(Fleet::for_stderr(
        &members,
        crate::output::quiet(),
        crate::output::json_logs(),
    ));
    let quiet = Arc::new(ferry::progress::TerminalProgress::to_writer(Box::new(std::io::sink())));
    let opts = args.fleet.dr_options(audit_key, quiet);
    let fopts = FleetOptions {
        concurrency: usize::from(args.fleet.concurrency),
        audit_dir: args.audit_dir.clone(),
        command: ferry_dr::phases::migrate_command(&args.fleet.site),
        args: Default::default(),
        view: Some(Arc::new(View(view.clone()))),
    };
    if !crate::output::quiet() && args.fleet.output == Output::Text {
        eprintln!(
            "moving {} hosted clusters, {} at a time",
            members.len(),
            fopts.concurrency.min(members.len())
        );
    }
    let report = ferry_dr::fleet::migrate(&site, &members, &opts, &fopts).await;
    drop((view, fopts));
    match args.fleet.output {
        Output::Text => println!("{}", report.to_text()),
        Output::Json => crate::output::print_json(
            "fleet",
            serde_json::json!({"ok": report.succeeded(), "elapsed_ms": report.elapsed_ms, "members": report.members}),
        )?,
    }
    Ok(exit(report.exit_code()))
}
