//! The `ferry` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use ferry::config::RunConfig;
use ferry::policy::{GuestIdentity, PolicyEngine};
use ferry::run::{Outcome, RunOptions, RunRequest};
use ferry::runner::Runtime;

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
    /// Check and explain policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
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
            "{default},wasmtime=warn,cranelift=warn,aws=warn,hyper=warn,kube=warn,tower=warn,rustls=warn"
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
    let runtime = Runtime::new(ferry::cache::default_dir())?;
    let req = RunRequest {
        component: args.component,
        name: args.name,
        policy: args.policy,
        config,
        phase: args.phase,
        args: parse_pairs(&args.args)?,
        plan: args.plan,
        audit: args.audit,
    };
    match ferry::run::run(&runtime, req, RunOptions::default()).await {
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
) -> anyhow::Result<(GuestIdentity, Option<ferry::runner::Guest>)> {
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
    let runtime = Runtime::new(ferry::cache::default_dir())?;
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbose);
    let result = match cli.command {
        Command::Run(args) => cmd_run(args).await,
        Command::Policy(cmd) => cmd_policy(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
