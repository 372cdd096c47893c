//! `ferry plan show|approve`, and the `--plan-out`/`--apply` flags runs share: a plan file is
//! made by a plan run, read by a reviewer, approved with the audit key, and applied as it is.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use ferry::audit::{AuditKey, KEY_FILE_ENV};
use ferry::plan::{PlanBook, PlanFile};
use ferry::runtime::Exit;

use crate::exit;
use crate::output::Output;

#[derive(Subcommand)]
pub enum PlanCommand {
    /// Print a plan file for a reviewer: the run it was made for, each change in order (with
    /// what only the run can know), the reads that decided them, and whether it is approved.
    Show(ShowArgs),
    /// Approve a plan file: sign it with the audit key, so `--apply FILE` carries it out and
    /// nothing else. Refuses a file changed since a previous approval.
    Approve(ApproveArgs),
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// The plan file (`--plan --plan-out FILE`).
    file: PathBuf,
    /// `json` prints the file itself, checked (`ferry.plan/v1`).
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    /// The plan file; the approval is written into it.
    file: PathBuf,
    /// The key file the audit trail is signed with (at least 32 bytes).
    #[arg(long, env = KEY_FILE_ENV)]
    key: PathBuf,
    /// Who approves, recorded in the approval.
    #[arg(long)]
    by: Option<String>,
}

/// The `--plan-out`/`--apply` flags of a run.
#[derive(clap::Args, Clone, Default)]
pub struct PlanFlags {
    /// With --plan: write every mutation the run would make, the reads that decided them and
    /// the run's inputs to this file, for `ferry plan show` and `ferry plan approve`. For
    /// `ferry migrate`, a directory: backup is planned there, the later phases once their
    /// inputs exist.
    #[arg(long, value_name = "FILE", requires = "plan")]
    pub plan_out: Option<PathBuf>,
    /// Carry out this approved plan and nothing else: a mutation it does not hold is denied
    /// before any I/O, and another guest, policy, config or parameters are refused at the start.
    /// The approval is checked with --audit-key.
    #[arg(long, value_name = "FILE", conflicts_with = "plan")]
    pub apply: Option<PathBuf>,
}

impl PlanFlags {
    /// The run's plan book: recording for `--plan-out`, enforcing an approved plan for
    /// `--apply` (its approval checked with `key`), none otherwise.
    pub fn book(&self, key: Option<&AuditKey>) -> anyhow::Result<Option<Arc<PlanBook>>> {
        if self.plan_out.is_some() {
            return Ok(Some(Arc::new(PlanBook::recording())));
        }
        match &self.apply {
            Some(path) => {
                let approved = PlanFile::load_approved(path, key)?;
                Ok(Some(Arc::new(PlanBook::enforcing(approved))))
            }
            None => Ok(None),
        }
    }

    /// After the run: writes the recorded plan, or says what the approved plan held that did
    /// not happen. Lines go to stderr.
    pub fn finish(&self, book: Option<&PlanBook>) -> anyhow::Result<()> {
        let Some(book) = book else { return Ok(()) };
        if let (Some(out), Some(plan)) = (&self.plan_out, book.recorded()) {
            plan.save(out)
                .map_err(|e| anyhow::anyhow!("cannot write the plan to {}: {e}", out.display()))?;
            eprintln!(
                "plan {} written to {}: {} change(s), {} read(s). Review it with `ferry plan show {}`; approve it with `ferry plan approve {} --key KEY`",
                plan.id(),
                out.display(),
                plan.mutations.len(),
                plan.reads.len(),
                out.display(),
                out.display()
            );
        }
        if book.enforces() {
            report_apply(book);
        }
        Ok(())
    }
}

/// What an apply run did not do of its plan.
fn report_apply(book: &PlanBook) {
    let not_done = book.not_done();
    if not_done.is_empty() {
        eprintln!("the approved plan was carried out: every change it held happened");
    } else {
        eprintln!(
            "the approved plan held {} change(s) that did not happen:",
            not_done.len()
        );
        for line in &not_done {
            eprintln!("  {line}");
        }
    }
}

/// Runs the command.
pub fn cmd_plan(cmd: PlanCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PlanCommand::Show(args) => match PlanFile::load(&args.file) {
            Ok(plan) => {
                match args.output {
                    Output::Text => print!("{}", plan.to_text()),
                    // The file's own document, schema first (it is `ferry.plan/v1` already).
                    Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => bad(&e),
        },
        PlanCommand::Approve(args) => approve(&args),
    }
}

fn approve(args: &ApproveArgs) -> anyhow::Result<ExitCode> {
    let key = match AuditKey::from_file(&args.key) {
        Ok(k) => k,
        Err(e) => return bad(&e),
    };
    let mut plan = match PlanFile::load(&args.file) {
        Ok(p) => p,
        Err(e) => return bad(&e),
    };
    // A file approved before and edited since is refused, not silently re-approved.
    if plan.approval.is_some()
        && let Err(e @ ferry::plan::PlanError::Tampered { .. }) = PlanFile::load_approved(&args.file, Some(&key))
    {
        return bad(&e);
    }
    let now = ferry::audit::humantime_rfc3339(std::time::SystemTime::now());
    plan.approve(&key, args.by.clone(), now);
    plan.save(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.file.display()))?;
    println!(
        "plan {} approved with key {}: `--apply {}` carries out its {} change(s) and nothing else",
        plan.id(),
        key.id(),
        args.file.display(),
        plan.mutations.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn bad(e: &dyn std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {e}");
    Ok(exit(Exit::BadInput.code()))
}
