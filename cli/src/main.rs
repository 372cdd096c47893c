//! The `ferry` command line: the argument types and one file per command family
//! (`commands/`), on the generic host (`ferry`), the DR product (`ferry-dr`) and its drill
//! (`ferry-drill`).

mod commands;
mod fleet_view;
mod output;
mod terminal;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ferry::runtime::Exit;

use commands::dr::{DrArgs, MigrateArgs};
use commands::drill::DrillArgs;
use commands::new::NewCommand;
use commands::policy::PolicyCommand;
use commands::run::RunArgs;

/// ferry: run WebAssembly automation guests with capability-scoped access to
/// Kubernetes, S3, Route53 and etcd.
#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about,
    propagate_version = true,
    after_help = "Exit codes: 0 done; 1 the guest reported a failure or a check failed; 2 bad input (config, policy, component, arguments); 3 the component imports what its policy does not grant; 4 the guest trapped or hit a limit; 5 the host failed."
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Print only the result: no progress, phase headers or set-up messages, and only
    /// warnings and errors in the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
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
    /// DR: back the hosted cluster up (pause, etcd snapshot to S3, objects); `keygen` and
    /// `decrypt` handle an encrypted local backup folder.
    Backup(BackupArgs),
    /// DR: restore the hosted cluster on the destination.
    Restore(DrArgs),
    /// DR: tear the source copy down.
    Teardown(DrArgs),
    /// DR: unpause, clean up and check the restored cluster.
    Finish(DrArgs),
    /// DR: backup → restore → teardown → finish, each its own run; stops at the first failure.
    Migrate(MigrateArgs),
    /// DR: a whole management cluster: plan, migrate or render (as a Kubernetes Job) every
    /// selected hosted cluster, each its own migration.
    #[command(subcommand)]
    Fleet(commands::fleet::FleetCommand),
    /// DR: return the source to service after a backup that will not be restored (writers
    /// back, unpaused, DNS back); refused while the destination has the cluster, unless --force.
    Abort(DrArgs),
    /// A whole migration against the simulator (no cluster or AWS needed).
    Drill(DrillArgs),
    /// The drill's simulated clusters and services, left running to practise on.
    #[command(subcommand)]
    Lab(commands::lab::LabCommand),
    /// Verify an audit trail.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Check, explain and test policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Review and approve plan files (`--plan --plan-out FILE`), for `--apply FILE`.
    #[command(subcommand)]
    Plan(commands::plan::PlanCommand),
    /// Scaffold new components.
    #[command(subcommand)]
    New(NewCommand),
    /// Print a shell completion script: `ferry completions bash > /etc/bash_completion.d/ferry`,
    /// `ferry completions zsh > "${fpath[1]}/_ferry"`, `ferry completions fish >
    /// ~/.config/fish/completions/ferry.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `ferry backup`: the phase, or one of its tools.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BackupArgs {
    #[command(subcommand)]
    tool: Option<commands::backup::BackupTool>,
    #[command(flatten)]
    phase: DrArgs,
}

/// An exit code of [`Exit`]'s table as the process's.
pub(crate) fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(Exit::HostFailed as u8))
}

fn init_logging(format: LogFormat, verbose: u8, quiet: bool) {
    let default = match verbose {
        _ if quiet => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default},wasmtime=warn,cranelift=warn,aws=warn,aws_smithy_runtime=warn,hyper=warn,kube=warn,tower=warn,rustls=warn,ferry_sim=warn,s3s=off"
        ))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        // Above any live bars, so a log line never tears one.
        LogFormat::Text => builder
            .with_writer(terminal::LogWriter::default)
            .with_target(false)
            .init(),
        LogFormat::Json => builder.with_writer(std::io::stderr).json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    output::set_quiet(cli.quiet);
    output::set_json_logs(matches!(cli.log_format, LogFormat::Json));
    init_logging(cli.log_format, cli.verbose, cli.quiet);
    if let Err(e) = ferry::killpoint::check_env() {
        eprintln!("error: {e}");
        return exit(Exit::BadInput.code());
    }
    use ferry_dr::phases::Phase;
    let result = match cli.command {
        Command::Run(args) => commands::run::cmd_run(args).await,
        Command::Backup(BackupArgs { tool: Some(tool), .. }) => commands::backup::cmd_backup_tool(tool),
        Command::Backup(BackupArgs { phase, .. }) => commands::dr::cmd_phase(Phase::Backup, phase).await,
        Command::Restore(args) => commands::dr::cmd_phase(Phase::Restore, args).await,
        Command::Teardown(args) => commands::dr::cmd_phase(Phase::Teardown, args).await,
        Command::Finish(args) => commands::dr::cmd_phase(Phase::Finish, args).await,
        Command::Abort(args) => commands::dr::cmd_phase(Phase::Abort, args).await,
        Command::Migrate(args) => commands::dr::cmd_migrate(args).await,
        Command::Fleet(cmd) => commands::fleet::cmd_fleet(cmd).await,
        Command::Drill(args) => commands::drill::cmd_drill(args).await,
        Command::Lab(cmd) => commands::lab::cmd_lab(cmd).await,
        Command::Audit(cmd) => commands::audit::cmd_audit(cmd),
        Command::Policy(cmd) => commands::policy::cmd_policy(cmd),
        Command::Plan(cmd) => commands::plan::cmd_plan(cmd),
        Command::New(NewCommand::Hook { name, dir }) => commands::new::cmd_new_hook(&name, dir),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut std::io::stdout());
            Ok(exit(Exit::Success.code()))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", ferry::scrub::secrets(&format!("{e:#}")));
            exit(Exit::BadInput.code())
        }
    }
}
