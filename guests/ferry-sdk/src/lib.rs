//! The guest SDK for ferry components.
//!
//! Guest and hook authors depend on this crate instead of generating the
//! bindings themselves. It adds what every automation guest would otherwise
//! rewrite:
//!
//! - [`k8s::Cluster`]: typed access to Kubernetes objects as `serde_json::Value`
//!   (or any serde type), `not-found` as `None`, retries for `unavailable`;
//! - [`manifest`]: clean-up of objects carried between clusters (status and
//!   server-owned metadata stripped);
//! - [`wait`]: bounded waits on the host's clock that report progress;
//! - [`log`], [`params`] and error constructors ([`invalid`], [`other`], ...).
//!
//! A full automation guest generates its `automation` world with
//! [`automation_world!`] and implements its export:
//!
//! ```ignore
//! ferry_sdk::automation_world!("../../wit");
//!
//! struct Component;
//! impl Guest for Component {
//!     fn run(phase: String, args: Vec<(String, String)>) -> ferry_sdk::Result<String> {
//!         let source = ferry_sdk::k8s::Cluster::open("source")?;
//!         Ok(format!("{phase}: opened {}", source.alias()))
//!     }
//! }
//! export!(Component);
//! ```
//!
//! A site hook uses [`hook_world!`] the same way (see [`hooks`]):
//!
//! ```ignore
//! ferry_sdk::hook_world!("../wit");
//!
//! use ferry_sdk::hooks::{Event, Outcome};
//!
//! struct Hook;
//! impl Guest for Hook {
//!     fn on_event(event: Event) -> ferry_sdk::Result<Outcome> {
//!         Ok(Outcome::Proceed)
//!     }
//! }
//! export!(Hook);
//! ```
//!
//! The SDK holds the bindings of every host interface (an import-only world,
//! [`bindings`]); the world macros map the component's imports onto them, so
//! the component generates only its export glue and needs no direct
//! `wit-bindgen` dependency. A component imports only the interfaces it
//! actually calls: the unused ones are dropped when the component is built.

pub mod hooks;
pub mod k8s;
pub mod manifest;
pub mod time;
pub mod wait;

/// The `wit-bindgen` this SDK was built with (used by the world macros).
#[doc(hidden)]
pub use wit_bindgen;

/// The generated bindings of every `ferry:host@0.1.0` interface, imports only.
///
/// Components generate their world (export included) with
/// [`automation_world!`] or [`hook_world!`], which reuse these modules.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: "
            package ferry:sdk;

            world imports {
                import ferry:host/context@0.1.0;
                import ferry:host/k8s@0.1.0;
                import ferry:host/objects@0.1.0;
                import ferry:host/dns@0.1.0;
                import ferry:host/etcd@0.1.0;
                import ferry:host/workspace@0.1.0;
                import ferry:host/hook-dispatch@0.1.0;
            }
        ",
        world: "ferry:sdk/imports",
        generate_all,
    });
}

/// Generates the `automation` world (`ferry:host/automation@0.1.0`) in the
/// calling module: a `Guest` trait with `run`, an `export!` macro, and the
/// imports mapped onto [`bindings`].
///
/// The argument is the WIT directory, relative to the calling crate's
/// `Cargo.toml`. Call it at the crate root, then `export!(YourType);`.
#[macro_export]
macro_rules! automation_world {
    ($path:literal) => {
        $crate::wit_bindgen::generate!({
            path: $path,
            world: "ferry:host/automation@0.1.0",
            runtime_path: "::ferry_sdk::wit_bindgen::rt",
            with: {
                "ferry:host/types@0.1.0": ::ferry_sdk::bindings::ferry::host::types,
                "ferry:host/context@0.1.0": ::ferry_sdk::bindings::ferry::host::context,
                "ferry:host/k8s@0.1.0": ::ferry_sdk::bindings::ferry::host::k8s,
                "ferry:host/objects@0.1.0": ::ferry_sdk::bindings::ferry::host::objects,
                "ferry:host/dns@0.1.0": ::ferry_sdk::bindings::ferry::host::dns,
                "ferry:host/etcd@0.1.0": ::ferry_sdk::bindings::ferry::host::etcd,
                "ferry:host/workspace@0.1.0": ::ferry_sdk::bindings::ferry::host::workspace,
                "ferry:host/hooks@0.1.0": ::ferry_sdk::bindings::ferry::host::hooks,
                "ferry:host/hook-dispatch@0.1.0": ::ferry_sdk::bindings::ferry::host::hook_dispatch,
            },
        });
    };
}

/// Generates the `hook` world (`ferry:host/hook@0.1.0`) in the calling
/// module: a `Guest` trait with `on_event`, an `export!` macro, and the
/// imports mapped onto [`bindings`].
///
/// The argument is the WIT directory, relative to the calling crate's
/// `Cargo.toml`. Call it at the crate root, then `export!(YourType);`.
#[macro_export]
macro_rules! hook_world {
    ($path:literal) => {
        $crate::wit_bindgen::generate!({
            path: $path,
            world: "ferry:host/hook@0.1.0",
            runtime_path: "::ferry_sdk::wit_bindgen::rt",
            with: {
                "ferry:host/types@0.1.0": ::ferry_sdk::bindings::ferry::host::types,
                "ferry:host/context@0.1.0": ::ferry_sdk::bindings::ferry::host::context,
                "ferry:host/k8s@0.1.0": ::ferry_sdk::bindings::ferry::host::k8s,
                "ferry:host/objects@0.1.0": ::ferry_sdk::bindings::ferry::host::objects,
                "ferry:host/dns@0.1.0": ::ferry_sdk::bindings::ferry::host::dns,
                "ferry:host/hooks@0.1.0": ::ferry_sdk::bindings::ferry::host::hooks,
            },
        });
    };
}

/// The error every host call returns and every phase reports (the WIT `error` variant).
pub use bindings::ferry::host::types::Error;
pub use bindings::ferry::host::types::ObjectRef;
pub use bindings::ferry::host::{context, dns, etcd, objects, workspace};

/// Result with the WIT [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An `invalid` error: the input or a precondition is wrong; retrying won't help.
pub fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

/// A `conflict` error: something exists or changed that should not have.
pub fn conflict(message: impl Into<String>) -> Error {
    Error::Conflict(message.into())
}

/// An `unavailable` error: transient, a re-run may succeed.
pub fn unavailable(message: impl Into<String>) -> Error {
    Error::Unavailable(message.into())
}

/// An `other` error.
pub fn other(message: impl Into<String>) -> Error {
    Error::Other(message.into())
}

/// The text of an error, whatever its kind.
pub fn message(e: &Error) -> &str {
    match e {
        Error::Denied(m)
        | Error::NotFound(m)
        | Error::Conflict(m)
        | Error::Invalid(m)
        | Error::Unavailable(m)
        | Error::Other(m) => m,
    }
}

/// The kind of an error as the WIT names it (`denied`, `not-found`, ...).
pub fn kind(e: &Error) -> &'static str {
    match e {
        Error::Denied(_) => "denied",
        Error::NotFound(_) => "not-found",
        Error::Conflict(_) => "conflict",
        Error::Invalid(_) => "invalid",
        Error::Unavailable(_) => "unavailable",
        Error::Other(_) => "other",
    }
}

/// Adds context in front of an error's text, keeping its kind.
pub fn context(e: Error, what: impl std::fmt::Display) -> Error {
    let m = format!("{what}: {}", message(&e));
    match e {
        Error::Denied(_) => Error::Denied(m),
        Error::NotFound(_) => Error::NotFound(m),
        Error::Conflict(_) => Error::Conflict(m),
        Error::Invalid(_) => Error::Invalid(m),
        Error::Unavailable(_) => Error::Unavailable(m),
        Error::Other(_) => Error::Other(m),
    }
}

/// Extension for results: `.ctx("reading the HostedCluster")?`.
pub trait ResultExt<T> {
    /// Prefixes the error's text with `what`.
    fn ctx(self, what: impl std::fmt::Display) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| context(e, what))
    }
}

/// Structured logging through the host (each record is also audited).
pub mod log {
    use crate::context::{self, Level};

    fn emit(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        context::log(level, message, &fields);
    }

    /// An info record.
    pub fn info(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Info, message, fields);
    }

    /// A warning.
    pub fn warn(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Warn, message, fields);
    }

    /// A debug record.
    pub fn debug(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Debug, message, fields);
    }

    /// Reports a step's progress (rendered by the host).
    pub fn progress(step: &str, done: u64, total: Option<u64>, message: &str) {
        report(step, done, total, context::Unit::Items, message);
    }

    /// Reports a wait: `waited` seconds of `timeout`, and what it waits for (`waiting for …`
    /// while waiting). The host draws one line per wait, updated in place on a terminal.
    pub fn waiting(step: &str, waited: u64, timeout: u64, message: &str) {
        report(step, waited, Some(timeout), context::Unit::Seconds, message);
    }

    fn report(step: &str, done: u64, total: Option<u64>, unit: context::Unit, message: &str) {
        context::report_progress(&context::Progress {
            step: step.to_string(),
            done,
            total,
            unit,
            message: message.to_string(),
        });
    }
}

/// Run parameters and phase arguments.
pub mod params {
    use std::collections::BTreeMap;

    /// Run parameters (from the run config and `--param`) merged with phase
    /// arguments; arguments win.
    #[derive(Debug, Clone, Default)]
    pub struct Params(BTreeMap<String, String>);

    impl Params {
        /// The run's parameters overlaid with `args`.
        pub fn load(args: &[(String, String)]) -> Params {
            let mut map: BTreeMap<String, String> = crate::context::params().into_iter().collect();
            map.extend(args.iter().cloned());
            Params(map)
        }

        /// From explicit pairs (tests).
        pub fn from_pairs(pairs: &[(&str, &str)]) -> Params {
            Params(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        }

        /// A value, if set and not empty.
        pub fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
        }

        /// A value or a default.
        pub fn or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
            self.get(name).unwrap_or(default)
        }

        /// A required value; the error says how to set it.
        pub fn require(&self, name: &str) -> crate::Result<&str> {
            self.get(name).ok_or_else(|| {
                crate::invalid(format!(
                    "missing parameter `{name}`: set it in the site config or pass --param {name}=..."
                ))
            })
        }

        /// A boolean (`true`/`1`/`yes`), default false.
        pub fn flag(&self, name: &str) -> bool {
            matches!(self.get(name), Some("true" | "1" | "yes"))
        }

        /// A number, or `default` when unset.
        pub fn u64_or(&self, name: &str, default: u64) -> crate::Result<u64> {
            match self.get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| crate::invalid(format!("parameter `{name}` must be a whole number, got `{v}`"))),
            }
        }
    }
}
