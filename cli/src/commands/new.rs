//! `ferry new hook`: scaffolds a site hook crate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use ferry::runtime::Exit;

use crate::exit;

#[derive(Subcommand)]
pub enum NewCommand {
    /// A site hook crate: a `verify` hook, its WIT, policy, hooks file and README.
    Hook {
        /// The hook's name (its policy principal), e.g. `change-freeze`.
        name: String,
        /// Where to create it (default: ./<name>).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Runs `new hook`.
pub fn cmd_new_hook(name: &str, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
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
            Ok(exit(Exit::BadInput.code()))
        }
    }
}
