//! `ferry audit verify`: check a trail's chain, checkpoints and key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use ferry::audit::{AuditKey, KEY_FILE_ENV, VerifyError, verify};
use ferry::runtime::Exit;

use crate::exit;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check that no record was removed, inserted or edited, and with a key, that every
    /// run's checkpoint was signed by it. Names the first bad line.
    ///
    /// Exit code 0 when the trail verifies, 1 when it does not, 2 when it cannot be read.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The audit trail (JSON lines).
    file: PathBuf,
    /// The key file the runs signed with. Without one, only the chain is checked.
    #[arg(long, env = KEY_FILE_ENV)]
    key: Option<PathBuf>,
}

/// The key in `path`, if one was given.
pub fn key(path: Option<&Path>) -> anyhow::Result<Option<AuditKey>> {
    Ok(match path {
        Some(p) => Some(AuditKey::from_file(p)?),
        None => None,
    })
}

/// Runs the command.
pub fn cmd_audit(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify(args) = cmd;
    let key = match key(args.key.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit(Exit::BadInput.code()));
        }
    };
    match verify(&args.file, key.as_ref()) {
        Ok(v) => {
            let signed = match &key {
                Some(k) => format!("{} checkpoint(s) signed by key {}", v.checkpoints, k.id()),
                None => format!(
                    "{} checkpoint(s) NOT checked: no key (--key or {KEY_FILE_ENV})",
                    v.checkpoints
                ),
            };
            println!(
                "{}: {} record(s) chain intact; {signed}",
                args.file.display(),
                v.records
            );
            if v.unsigned_tail > 0 {
                println!(
                    "note: the last {} record(s) follow the last checkpoint: a run still going, or one that was killed",
                    v.unsigned_tail
                );
            }
            if !v.torn.is_empty() {
                println!(
                    "note: line(s) {:?} were cut short by a crash and are kept as they are",
                    v.torn
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ VerifyError::Read { .. }) => {
            eprintln!("error: {e}");
            Ok(exit(Exit::BadInput.code()))
        }
        Err(e) => {
            eprintln!("NOT VERIFIED: {e}");
            Ok(exit(Exit::GuestFailed.code()))
        }
    }
}
