//! How commands print their results.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::ValueEnum;
use ferry::progress::TerminalProgress;

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: the result only. Set once, from the command line, before any command runs.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether progress, phase headers and set-up messages are left out (`--quiet`).
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Where a command's progress goes: the terminal (stderr), or nowhere with `--quiet`.
pub fn progress() -> Arc<TerminalProgress> {
    Arc::new(if quiet() {
        TerminalProgress::to_writer(Box::new(std::io::sink()), false)
    } else {
        TerminalProgress::new()
    })
}

/// The format of a command's summary on stdout.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// Lines for a person.
    Text,
    /// One JSON document.
    Json,
}
