//! `ferry backup keygen` and `ferry backup decrypt`: the age keys of an encrypted local
//! backup folder, and the way back to its plain layout for the manual procedure.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use ferry::capabilities::workspace::at_rest;
use ferry::runtime::Exit;

use crate::exit;

#[derive(Subcommand)]
pub enum BackupTool {
    /// Make an age key pair for `[backup] encrypt_to`: writes the private key (0600, never
    /// overwritten) and prints the public key to put in the site config.
    Keygen {
        /// Where to write the private key (the `[backup] age_identity` of restores).
        file: PathBuf,
    },
    /// Write the plain copy of an encrypted local backup folder, in the documented layout,
    /// for the manual procedure. Exit code 0 done, 2 bad input (wrong key, damaged file).
    Decrypt {
        /// The backup folder (`[backup] dir`) or one backup in it.
        dir: PathBuf,
        /// The age identity file the backup was encrypted to.
        #[arg(long)]
        identity: PathBuf,
        /// Where to write the plain copy; must not exist.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs the command.
pub fn cmd_backup_tool(tool: BackupTool) -> anyhow::Result<ExitCode> {
    match tool {
        BackupTool::Keygen { file } => match at_rest::keygen(&file) {
            Ok(recipient) => {
                eprintln!(
                    "wrote the private key to {} (keep it off the backup machine)",
                    file.display()
                );
                println!("{recipient}");
                Ok(exit(0))
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", file.display());
                Ok(exit(Exit::BadInput.code()))
            }
        },
        BackupTool::Decrypt { dir, identity, out } => match at_rest::decrypt_tree(&dir, &out, &identity) {
            Ok(s) => {
                println!(
                    "{}: {} file(s) decrypted, {} copied as they were",
                    out.display(),
                    s.decrypted,
                    s.copied
                );
                Ok(exit(0))
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                Ok(exit(Exit::BadInput.code()))
            }
        },
    }
}
