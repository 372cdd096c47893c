//! `ferry policy check|explain`: a policy read without running a guest.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use ferry::policy::{GuestIdentity, PolicyEngine};
use ferry::runtime::{Exit, Runtime};

use super::run::load_config;
use crate::exit;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy against the schema and, with --component, against a
    /// component's imports.
    Check(PolicyArgs),
    /// Say in plain words what a guest may do under a policy.
    Explain(PolicyArgs),
}

#[derive(clap::Args)]
pub struct PolicyArgs {
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

/// Runs the command.
pub fn cmd_policy(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
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
            return Ok(exit(Exit::BadInput.code()));
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
                return Ok(exit(Exit::ImportsRefused.code()));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
