//! How commands print their results.

use clap::ValueEnum;

/// The format of a command's summary on stdout.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// Lines for a person.
    Text,
    /// One JSON document.
    Json,
}
