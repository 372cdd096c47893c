//! The `ferry` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use ferry::config::RunConfig;
use ferry::policy::{GuestIdentity, PolicyEngine};
use ferry::runtime::Runtime;
use ferry::runtime::run::{Outcome, RunOptions, RunRequest};

/// ferry: run WebAssembly automation guests with capability-scoped access to
/// Kubernetes, S3, Route53 and etcd.
#[derive(Parser)]
#[command(name = "ferry", version, about, propagate_version = true)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one phase of a guest component under a policy.
    Run(RunArgs),
    /// DR: back the hosted cluster up (pause, etcd snapshot to S3, objects).
    Backup(DrArgs),
    /// DR: restore the hosted cluster on the destination.
    Restore(DrArgs),
    /// DR: tear the source copy down.
    Teardown(DrArgs),
    /// DR: unpause, clean up and check the restored cluster.
    Finish(DrArgs),
    /// DR: backup → restore → teardown → finish, each its own run; stops at the first failure.
    Migrate(MigrateArgs),
    /// DR: return the source to service after a backup that will not be restored (writers
    /// back, unpaused, DNS back); refused while the destination has the cluster, unless --force.
    Abort(DrArgs),
    /// A whole migration against the simulator (no cluster or AWS needed).
    Drill(DrillArgs),
    /// Check and explain policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Scaffold new components.
    #[command(subcommand)]
    New(NewCommand),
}

#[derive(Subcommand)]
enum NewCommand {
    /// A site hook crate: a `verify` hook, its WIT, policy, hooks file and README.
    Hook {
        /// The hook's name (its policy principal), e.g. `change-freeze`.
        name: String,
        /// Where to create it (default: ./<name>).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The guest component (.wasm).
    component: PathBuf,
    /// The Cedar policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The run config (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A run parameter (repeatable), overriding the config's [params].
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// The phase to run.
    #[arg(long, default_value = "run")]
    phase: String,
    /// A phase argument (repeatable).
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    args: Vec<String>,
    /// Plan only: mutations are server-side dry-runs or recorded, never applied.
    #[arg(long)]
    plan: bool,
    /// Append an audit record per host call to this file (JSON lines).
    #[arg(long)]
    audit: Option<PathBuf>,
    /// The guest's name in the policy (default: the file stem).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Text,
    Json,
}

#[derive(clap::Args, Clone)]
struct DrArgs {
    /// The site config (TOML; see `ferry_dr::site`).
    #[arg(long)]
    site: Option<PathBuf>,
    /// HostedCluster name ([hosted_cluster] name).
    #[arg(long)]
    hc_name: Option<String>,
    /// HostedCluster namespace ([hosted_cluster] namespace).
    #[arg(long)]
    hc_namespace: Option<String>,
    /// `reuse` or `control-plane-only` ([hosted_cluster] nodes).
    #[arg(long, value_parser = parse_nodes)]
    nodes: Option<ferry_dr::site::Nodes>,
    /// S3 bucket for backups ([backup] bucket).
    #[arg(long)]
    bucket: Option<String>,
    /// S3 key prefix ([backup] prefix).
    #[arg(long)]
    s3_prefix: Option<String>,
    /// Local backup directory ([backup] dir).
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// Route53 hosted zone id ([dns] zone_id).
    #[arg(long)]
    zone_id: Option<String>,
    /// external-dns domain ([dns] external_dns_domain).
    #[arg(long)]
    external_dns_domain: Option<String>,
    /// Source management cluster kubeconfig ([clusters.source] kubeconfig).
    #[arg(long)]
    source_kubeconfig: Option<PathBuf>,
    /// Destination management cluster kubeconfig ([clusters.destination] kubeconfig).
    #[arg(long)]
    destination_kubeconfig: Option<PathBuf>,
    /// Hosted cluster kubeconfig ([clusters.hosted] kubeconfig).
    #[arg(long)]
    hosted_kubeconfig: Option<PathBuf>,
    /// AWS region ([aws] region).
    #[arg(long)]
    region: Option<String>,
    /// A run parameter (repeatable); wins over the site.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
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
    /// Append an audit record per host call to this file (JSON lines).
    #[arg(long)]
    audit: Option<PathBuf>,
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
}

#[derive(clap::Args)]
struct MigrateArgs {
    #[command(flatten)]
    dr: DrArgs,
    /// Start at this phase (resuming a migration that stopped).
    #[arg(long, value_parser = parse_phase)]
    from: Option<ferry_dr::phases::Phase>,
}

#[derive(clap::Args)]
struct DrillArgs {
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
}

fn parse_nodes(s: &str) -> Result<ferry_dr::site::Nodes, String> {
    s.parse()
}

fn parse_phase(s: &str) -> Result<ferry_dr::phases::Phase, String> {
    s.parse()
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy against the schema and, with --component, against a
    /// component's imports.
    Check(PolicyArgs),
    /// Say in plain words what a guest may do under a policy.
    Explain(PolicyArgs),
}

#[derive(clap::Args)]
struct PolicyArgs {
    /// The Cedar policy file.
    #[arg(long)]
    policy: PathBuf,
    /// A component whose imports to check.
    #[arg(long)]
    component: Option<PathBuf>,
    /// The run config whose [params] link the templates.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A parameter (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// The guest's name (default: the component's file stem, or `guest`).
    #[arg(long)]
    name: Option<String>,
}

fn init_logging(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default},wasmtime=warn,cranelift=warn,aws=warn,aws_smithy_runtime=warn,hyper=warn,kube=warn,tower=warn,rustls=warn,ferry_sim=warn,s3s=off"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(path: Option<&PathBuf>, params: &[String]) -> anyhow::Result<RunConfig> {
    let mut config = match path {
        Some(p) => RunConfig::load(p)?,
        None => RunConfig::default(),
    };
    config.apply_params(params)?;
    Ok(config)
}

fn parse_pairs(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--arg `{p}` is not of the form key=value"))
        })
        .collect()
}

async fn cmd_run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.as_ref(), &args.params)?;
    let runtime = Runtime::new(ferry::runtime::cache::default_dir())?;
    let req = RunRequest {
        component: args.component.into(),
        name: args.name,
        policy: args.policy.into(),
        config,
        phase: args.phase,
        args: parse_pairs(&args.args)?,
        plan: args.plan,
        audit: args.audit,
    };
    match ferry::runtime::run::run(&runtime, req, RunOptions::default()).await {
        Ok(Outcome::Success(json)) => {
            println!("{json}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Outcome::GuestError(e)) => {
            eprintln!("error: the guest reported a failure: {e:?}");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(e.exit_code() as u8))
        }
    }
}

fn guest_identity(
    args: &PolicyArgs,
    runtime: &Runtime,
) -> anyhow::Result<(GuestIdentity, Option<ferry::runtime::Guest>)> {
    match &args.component {
        Some(path) => {
            let guest = runtime.load_file(path, args.name.as_deref())?;
            Ok((guest.identity.clone(), Some(guest)))
        }
        None => Ok((
            GuestIdentity {
                name: args.name.clone().unwrap_or_else(|| "guest".into()),
                sha256: String::new(),
            },
            None,
        )),
    }
}

fn cmd_policy(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let (args, explain) = match cmd {
        PolicyCommand::Check(a) => (a, false),
        PolicyCommand::Explain(a) => (a, true),
    };
    let config = load_config(args.config.as_ref(), &args.params)?;
    let runtime = Runtime::new(ferry::runtime::cache::default_dir())?;
    let (identity, guest) = guest_identity(&args, &runtime)?;
    let policy = match PolicyEngine::load(&args.policy, &config.params, &identity) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if explain {
        println!("{}", policy.explain());
        return Ok(ExitCode::SUCCESS);
    }
    println!("policy {}: valid against the ferry schema", args.policy.display());
    if let Some(guest) = guest {
        let imports = guest.imports(runtime.engine());
        match runtime.check_imports(&guest, &policy) {
            Ok(()) => println!(
                "component {}: all {} imports are provided and granted",
                identity.name,
                imports.len()
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(3));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl DrArgs {
    fn overrides(&self) -> ferry_dr::site::SiteOverrides {
        ferry_dr::site::SiteOverrides {
            hc_name: self.hc_name.clone(),
            hc_namespace: self.hc_namespace.clone(),
            nodes: self.nodes,
            bucket: self.bucket.clone(),
            s3_prefix: self.s3_prefix.clone(),
            zone_id: self.zone_id.clone(),
            external_dns_domain: self.external_dns_domain.clone(),
            backup_dir: self.backup_dir.clone(),
            source_kubeconfig: self.source_kubeconfig.clone(),
            destination_kubeconfig: self.destination_kubeconfig.clone(),
            hosted_kubeconfig: self.hosted_kubeconfig.clone(),
            region: self.region.clone(),
            params: self.params.clone(),
        }
    }

    /// The run config, or the exit code after printing why there is none.
    fn run_config(&self) -> Result<RunConfig, ExitCode> {
        let site = match &self.site {
            Some(p) => ferry_dr::site::SiteConfig::load(p),
            None => Ok(ferry_dr::site::SiteConfig::default()),
        };
        let result = site.and_then(|mut s| {
            s.apply(&self.overrides())?;
            s.run_config()
        });
        result.map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })
    }

    fn dr_options(&self, progress: Arc<dyn ferry::progress::ProgressSink>) -> ferry_dr::phases::DrOptions {
        let mut guest = ferry_dr::phases::GuestChoice::stock();
        if let Some(path) = &self.guest {
            guest.component = path.clone().into();
            guest.name = self.name.clone();
        } else if let Some(name) = &self.name {
            guest.name = Some(name.clone());
        }
        if let Some(path) = &self.policy {
            guest.policy = path.clone().into();
        }
        ferry_dr::phases::DrOptions {
            guest,
            plan: self.plan,
            audit: self.audit.clone(),
            progress,
            ..Default::default()
        }
    }

    fn phase_args(&self) -> ferry_dr::phases::PhaseArgs {
        ferry_dr::phases::PhaseArgs {
            force: self.force,
            stop_after: self.stop_after.clone(),
            backup_id: self.backup_id.clone(),
            extra: Vec::new(),
        }
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(5))
}

async fn cmd_phase(phase: ferry_dr::phases::Phase, args: DrArgs) -> anyhow::Result<ExitCode> {
    let config = match args.run_config() {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let progress = Arc::new(ferry::progress::TerminalProgress::new());
    let opts = args.dr_options(progress.clone());
    if args.output == Output::Text {
        eprintln!("== {phase} ==");
    }
    let result = ferry_dr::phases::run_phase(&config, phase, &args.phase_args(), &opts).await;
    progress.finish_line();
    match result {
        Ok(report) => {
            match args.output {
                Output::Text => println!("{}", report.to_text()),
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"phases": [report]}))?
                ),
            }
            Ok(exit(report.exit_code()))
        }
        Err(e) => {
            eprintln!("error: phase {phase}: {e}");
            if args.output == Output::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"phases": [{"phase": phase, "status": "run-failed", "message": e.to_string(), "exit_code": e.exit_code()}]})
                    )?
                );
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
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": report.succeeded(),
                "phases": report.phases,
                "completed": report.completed,
                "failed": report.failed,
                "stopped": report.stopped,
                "resume_command": report.resume_command,
                "abort_command": report.abort_command,
                "message": report.message(),
            }))?
        ),
    }
    Ok(())
}

fn phase_hook(progress: Arc<ferry::progress::TerminalProgress>, output: Output) -> ferry_dr::phases::PhaseHook {
    Arc::new(move |phase, result| {
        progress.finish_line();
        if output == Output::Json {
            return;
        }
        match result {
            None => eprintln!("== {phase} =="),
            Some(r) => match r.report() {
                Some(report) => println!("{}", report.to_text()),
                None => {
                    if let ferry_dr::phases::PhaseResult::RunFailed { message, .. } = r {
                        println!("{phase}: FAILED: {message}");
                    }
                }
            },
        }
    })
}

async fn cmd_migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let config = match args.dr.run_config() {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let progress = Arc::new(ferry::progress::TerminalProgress::new());
    let opts = args.dr.dr_options(progress.clone());
    let mopts = ferry_dr::phases::MigrateOptions {
        args: args.dr.phase_args(),
        from: args.from,
        command: Some(resume_base()),
        on_phase: Some(phase_hook(progress, args.dr.output)),
    };
    let report = ferry_dr::phases::migrate(&config, &opts, &mopts).await;
    print_migration(&report, args.dr.output)?;
    Ok(exit(report.exit_code()))
}

async fn cmd_drill(args: DrillArgs) -> anyhow::Result<ExitCode> {
    let scenario = match &args.scenario {
        Some(p) => ferry_sim::hypershift::scenario::Scenario::load(p)?,
        None => ferry_drill::basic_scenario(),
    };
    let crds = match (&args.crds, &args.crds_from) {
        (Some(dir), _) => ferry_sim::kube::crd::CrdSource::Dir(dir.clone()),
        (None, Some(kubeconfig)) => ferry_drill::crds_from_cluster(kubeconfig).await?,
        (None, None) => ferry_sim::kube::crd::CrdSource::Builtin,
    };
    let progress = Arc::new(ferry::progress::TerminalProgress::new());
    let opts = ferry_drill::DrillOptions {
        scenario,
        crds,
        keep_dir: args.keep_dir.clone(),
        progress: progress.clone(),
        say: Arc::new(|m: &str| eprintln!("drill: {m}")),
        ..Default::default()
    };
    let hooks = match &args.hooks {
        Some(p) => Some(ferry::config::HooksFile::load(p)?),
        None => None,
    };
    let mut drill = ferry_drill::Drill::start(opts).await?;
    if let Some(h) = hooks {
        eprintln!(
            "drill: with hooks {}",
            h.hooks.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
        );
        let config = drill.run_config_mut();
        config.hooks = h.hooks;
        config.params.extend(h.params);
    }
    eprintln!("drill: working directory {}", drill.dir().display());
    let mopts = ferry_dr::phases::MigrateOptions {
        on_phase: Some(phase_hook(progress, args.output)),
        ..Default::default()
    };
    let migration = drill.migrate_with(&mopts).await;
    let checks = drill.verify().await;
    match args.output {
        Output::Text => {
            eprintln!("{}", migration.message());
            println!("{}", checks.to_text());
            if let Some(d) = &args.keep_dir {
                println!(
                    "kept: {} (site.toml, kubeconfigs/, backup/, audit.jsonl, s3/)",
                    d.display()
                );
            }
        }
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": migration.succeeded() && checks.passed(),
                "migration": {"phases": migration.phases, "completed": migration.completed,
                    "failed": migration.failed, "message": migration.message()},
                "checks": checks.checks,
                "dir": args.keep_dir,
            }))?
        ),
    }
    drill.shutdown().await;
    let code = if !migration.succeeded() {
        migration.exit_code().max(1)
    } else if !checks.passed() {
        1
    } else {
        0
    };
    Ok(exit(code))
}

fn cmd_new_hook(name: &str, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    // Built from a checkout: point the new crate at its SDK by path.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf);
    let repo = repo.filter(|r| r.join("guests/ferry-sdk/Cargo.toml").is_file());
    match ferry::scaffold::new_hook(name, &dir, repo.as_deref()) {
        Ok(files) => {
            for f in &files {
                println!("created {}", f.display());
            }
            println!("next: see {}", dir.join("README.md").display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbose);
    let result = match cli.command {
        Command::Run(args) => cmd_run(args).await,
        Command::Backup(args) => cmd_phase(ferry_dr::phases::Phase::Backup, args).await,
        Command::Restore(args) => cmd_phase(ferry_dr::phases::Phase::Restore, args).await,
        Command::Teardown(args) => cmd_phase(ferry_dr::phases::Phase::Teardown, args).await,
        Command::Finish(args) => cmd_phase(ferry_dr::phases::Phase::Finish, args).await,
        Command::Abort(args) => cmd_phase(ferry_dr::phases::Phase::Abort, args).await,
        Command::Migrate(args) => cmd_migrate(args).await,
        Command::Drill(args) => cmd_drill(args).await,
        Command::Policy(cmd) => cmd_policy(cmd),
        Command::New(NewCommand::Hook { name, dir }) => cmd_new_hook(&name, dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
