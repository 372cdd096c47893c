//! Why a run failed, and the process exit code of each failure: one mapping, used by every
//! command.

use std::path::PathBuf;

use super::limits::LimitExceeded;

/// Errors loading or running a guest.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The file could not be read.
    #[error("cannot read component {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a component.
    #[error("{path} is not a WebAssembly component: {reason}")]
    NotAComponent {
        /// The path (or name).
        path: String,
        /// Why.
        reason: String,
    },
    /// The component imports something the policy or host does not grant.
    #[error("component `{guest}` was refused before it ran:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    ImportsRefused {
        /// Guest name.
        guest: String,
        /// One line per refused import.
        problems: Vec<String>,
    },
    /// The component does not export what the world requires.
    #[error("component `{guest}` does not fit the `{world}` world: {message}")]
    WrongWorld {
        /// Guest name.
        guest: String,
        /// The world.
        world: &'static str,
        /// Details.
        message: String,
    },
    /// A limit was hit.
    #[error("{0}")]
    Limit(#[from] LimitExceeded),
    /// The guest trapped.
    #[error("guest `{guest}` crashed (trap): {message}")]
    Trap {
        /// Guest name.
        guest: String,
        /// The trap and its backtrace.
        message: String,
    },
    /// Another host failure.
    #[error(transparent)]
    Host(#[from] anyhow::Error),
}

/// Errors before or during a run, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    /// The policy is malformed or does not validate.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// Loading, import checks, traps or limits.
    #[error(transparent)]
    Run(#[from] RunError),
    /// An approved plan made for another run (`--apply`).
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// Anything else on the host side.
    #[error(transparent)]
    Host(#[from] anyhow::Error),
}

/// The exit codes of `ferry`, one for each way a run can end. Every command maps its result
/// through this table (`ferry --help` and the README list it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Done.
    Success = 0,
    /// The guest reported a failure (its error value), or a check failed.
    GuestFailed = 1,
    /// Bad input before anything ran: config, policy, component, arguments.
    BadInput = 2,
    /// The component imports what its policy does not grant.
    ImportsRefused = 3,
    /// The guest trapped or ran into a limit (memory, CPU, wall clock).
    GuestCrashed = 4,
    /// The host itself failed (I/O, a service, a bug).
    HostFailed = 5,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

impl RunFailure {
    /// How the process exits for this failure.
    pub fn exit(&self) -> Exit {
        match self {
            RunFailure::Policy(_) | RunFailure::Plan(_) => Exit::BadInput,
            RunFailure::Run(RunError::Read { .. } | RunError::NotAComponent { .. } | RunError::WrongWorld { .. }) => {
                Exit::BadInput
            }
            RunFailure::Run(RunError::ImportsRefused { .. }) => Exit::ImportsRefused,
            RunFailure::Run(RunError::Limit(_) | RunError::Trap { .. }) => Exit::GuestCrashed,
            RunFailure::Run(RunError::Host(_)) | RunFailure::Host(_) => Exit::HostFailed,
        }
    }

    /// The process exit code for this failure ([`RunFailure::exit`]).
    pub fn exit_code(&self) -> i32 {
        self.exit().code()
    }
}
