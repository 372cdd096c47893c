//! How commands print their results.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::ValueEnum;

static QUIET: AtomicBool = AtomicBool::new(false);
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// `--log-format json`: progress is then plain lines too, never live bars.
pub fn set_json_logs(json: bool) {
    JSON_LOGS.store(json, Ordering::Relaxed);
}

/// `--quiet`: the result only. Set once, from the command line, before any command runs.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether progress, phase headers and set-up messages are left out (`--quiet`).
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether logs are JSON lines (then no live bars).
pub fn json_logs() -> bool {
    JSON_LOGS.load(Ordering::Relaxed)
}

/// Where a command's progress goes: live bars on a terminal, plain lines elsewhere, nothing
/// with `--quiet` ([`crate::terminal`]).
pub fn progress() -> Arc<crate::terminal::Progress> {
    Arc::new(crate::terminal::Progress::for_stderr(
        quiet(),
        JSON_LOGS.load(Ordering::Relaxed),
    ))
}

/// The format of a command's summary on stdout.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// Lines for a person.
    Text,
    /// One JSON document.
    Json,
}

/// The version of every `--output json` document's schema, named in its `schema` field as
/// `ferry.<document>/v<VERSION>` (`ferry.phase/v1`, `ferry.migrate/v1`, `ferry.drill/v1`).
/// Raised when a field changes meaning or goes away, not when one is added; the fields are in
/// `docs/output.md`.
pub const JSON_VERSION: u32 = 1;

/// Prints `doc` (an object) as one JSON document on stdout, its `schema` field first.
pub fn print_json(document: &str, doc: serde_json::Value) -> anyhow::Result<()> {
    let mut out = serde_json::Map::new();
    out.insert(
        "schema".into(),
        serde_json::Value::String(format!("ferry.{document}/v{JSON_VERSION}")),
    );
    match doc {
        serde_json::Value::Object(fields) => out.extend(fields),
        other => {
            out.insert("value".into(), other);
        }
    }
    println!("{}", serde_json::to_string_pretty(&serde_json::Value::Object(out))?);
    Ok(())
}
