//! `ferry run`: one phase of any guest component under a policy.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use ferry::config::RunConfig;
use ferry::runtime::Runtime;
use ferry::runtime::run::{Outcome, RunOptions, RunRequest};

use crate::exit;

#[derive(clap::Args)]
pub struct RunArgs {
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
    #[command(flatten)]
    plan_file: super::plan::PlanFlags,
    /// Append an audit record per host call to this file (JSON lines).
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Sign the audit trail's checkpoint with this key file (at least 32 bytes).
    #[arg(long, env = "FERRY_AUDIT_KEY_FILE")]
    audit_key: Option<PathBuf>,
    /// The guest's name in the policy (default: the file stem).
    #[arg(long)]
    name: Option<String>,
}

/// The run config of `path` (or the defaults) with `--param`s applied.
pub fn load_config(path: Option<&PathBuf>, params: &[String]) -> anyhow::Result<RunConfig> {
    let mut config = match path {
        Some(p) => RunConfig::load(p)?,
        None => RunConfig::default(),
    };
    config.apply_params(params)?;
    Ok(config)
}

/// `key=value` arguments.
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

/// Runs the command.
pub async fn cmd_run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.as_ref(), &args.params)?;
    let audit_key = super::audit::key(args.audit_key.as_deref())?;
    let book = match args.plan_file.book(audit_key.as_ref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit(ferry::runtime::Exit::BadInput.code()));
        }
    };
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
        audit_key,
        // `ferry run` has no owner resolver: grants on `Ferry::Owner` match nothing.
        ownership: Default::default(),
        plan_book: book.clone(),
    };
    match ferry::runtime::run::run(&runtime, req, RunOptions::default()).await {
        Ok(Outcome::Success(json)) => {
            println!("{json}");
            args.plan_file.finish(book.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(Outcome::GuestError(e)) => {
            eprintln!("error: the guest reported a failure: {e:?}");
            args.plan_file.finish(book.as_deref())?;
            Ok(exit(ferry::runtime::Exit::GuestFailed.code()))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(exit(e.exit_code()))
        }
    }
}
