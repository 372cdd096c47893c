//! Deterministic crash points: the process SIGKILLs itself at a named point, so that tests
//! (and sites rehearsing an incident) prove a re-run converges after a crash anywhere, not only
//! between steps.
//!
//! `FERRY_KILL_AT` names one point; unset (the normal case), every check is one relaxed load.
//! The forms:
//! - `step:PHASE/STEP`: once the guest reports step `PHASE/STEP` finished (a progress event
//!   whose message is `RESULT: detail`, see [`ends_step`]), before the next step starts (a
//!   step boundary);
//! - `before:ACTION:N`: the `N`-th allowed call of `ACTION` (for example `k8s:create`), after
//!   its decision is audited and before its I/O;
//! - `after:ACTION:N`: the `N`-th allowed call of `ACTION`, after its I/O and its audit
//!   record, before the guest sees the result;
//! - `part:N`: inside a multipart upload (the snapshot stream), once part `N` is stored and
//!   before the upload completes;
//! - `call:N`: the `N`-th allowed call of any action, before its I/O: a moment the process
//!   does not choose (a test draws `N` from a seed to kill a whole `ferry migrate` anywhere).
//!
//! The kill is a real `SIGKILL` of the whole process: no destructor, flush or signal handler
//! runs, as when the OOM killer or a lost node ends ferry. Counters are per process, so `N`
//! counts from the start of the command that was killed.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The environment variable that arms a kill point.
pub const ENV: &str = "FERRY_KILL_AT";

/// One point at which the process kills itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillPoint {
    /// After the guest reports this step (`backup/snapshot`) finished.
    Step(String),
    /// Before the I/O of the `n`-th allowed call of an action.
    Before {
        /// The action's policy name (`k8s:delete`).
        action: String,
        /// Which call, counting from 1.
        n: u64,
    },
    /// After the I/O of the `n`-th allowed call of an action.
    After {
        /// The action's policy name.
        action: String,
        /// Which call, counting from 1.
        n: u64,
    },
    /// After part `n` of a multipart upload is stored.
    Part(u64),
    /// Before the I/O of the `n`-th allowed call, whatever its action.
    Call(u64),
}

/// A `FERRY_KILL_AT` value that is none of the forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{ENV}={0:?} is not a kill point: expected step:PHASE/STEP, before:ACTION:N, after:ACTION:N, part:N or call:N (N from 1)"
)]
pub struct BadKillPoint(String);

impl std::str::FromStr for KillPoint {
    type Err = BadKillPoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadKillPoint(s.to_string());
        let count = |n: &str| n.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(bad);
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "step" if rest.contains('/') => Ok(KillPoint::Step(rest.to_string())),
            "part" => Ok(KillPoint::Part(count(rest)?)),
            "call" => Ok(KillPoint::Call(count(rest)?)),
            "before" | "after" => {
                let (action, n) = rest.rsplit_once(':').ok_or_else(bad)?;
                if action.is_empty() {
                    return Err(bad());
                }
                let (action, n) = (action.to_string(), count(n)?);
                Ok(if kind == "before" {
                    KillPoint::Before { action, n }
                } else {
                    KillPoint::After { action, n }
                })
            }
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for KillPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillPoint::Step(s) => write!(f, "step:{s}"),
            KillPoint::Before { action, n } => write!(f, "before:{action}:{n}"),
            KillPoint::After { action, n } => write!(f, "after:{action}:{n}"),
            KillPoint::Part(n) => write!(f, "part:{n}"),
            KillPoint::Call(n) => write!(f, "call:{n}"),
        }
    }
}

struct Armed {
    point: KillPoint,
    calls: Mutex<HashMap<String, u64>>,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(ENV).ok()?;
            match value.parse() {
                Ok(point) => Some(Armed {
                    point,
                    calls: Mutex::new(HashMap::new()),
                }),
                Err(e) => {
                    // The command line refuses it at start-up ([`check_env`]); a library
                    // user gets no kill, and the log says why.
                    tracing::error!("{e}");
                    None
                }
            }
        })
        .as_ref()
}

/// Checks `FERRY_KILL_AT` at start-up, so that a malformed value stops the command before it
/// does anything rather than at the first kill point.
pub fn check_env() -> Result<(), BadKillPoint> {
    match std::env::var(ENV) {
        Ok(v) => v.parse::<KillPoint>().map(|_| ()),
        Err(_) => Ok(()),
    }
}

fn die(point: &KillPoint) -> ! {
    eprintln!("ferry: {ENV}: killing this process with SIGKILL at {point}");
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    // SIGKILL cannot be caught; this is not reached.
    std::process::abort()
}

/// Whether a progress message ends a step: `RESULT: detail`, as the stock guest and the
/// SDK's steps report it (`started` opens a step; other messages report progress within one).
pub fn ends_step(message: &str) -> bool {
    message.split_once(": ").is_some_and(|(result, _)| {
        matches!(
            result,
            "done" | "already" | "skipped" | "planned" | "checked" | "failed"
        )
    })
}

/// The guest reported step `label` (`backup/snapshot`) finished.
pub fn step_finished(label: &str) {
    if let Some(a) = armed()
        && matches!(&a.point, KillPoint::Step(s) if s == label)
    {
        die(&a.point)
    }
}

fn call(action: &str, after: bool) {
    let Some(a) = armed() else { return };
    if let KillPoint::Call(n) = a.point {
        if after {
            return;
        }
        let count = {
            let mut calls = a.calls.lock().unwrap_or_else(|p| p.into_inner());
            let c = calls.entry(String::new()).or_default();
            *c += 1;
            *c
        };
        if count == n {
            die(&a.point)
        }
        return;
    }
    let (want, n) = match &a.point {
        KillPoint::Before { action, n } if !after => (action, *n),
        KillPoint::After { action, n } if after => (action, *n),
        _ => return,
    };
    if want != action {
        return;
    }
    let count = {
        let mut calls = a.calls.lock().unwrap_or_else(|p| p.into_inner());
        let c = calls.entry(action.to_string()).or_default();
        *c += 1;
        *c
    };
    if count == n {
        die(&a.point)
    }
}

/// An allowed call of `action` is about to do its I/O.
pub fn before_call(action: &str) {
    call(action, false)
}

/// An allowed call of `action` did its I/O and was audited.
pub fn after_call(action: &str) {
    call(action, true)
}

/// Part `n` of a multipart upload is stored.
pub fn part_stored(n: u64) {
    if let Some(a) = armed()
        && a.point == KillPoint::Part(n)
    {
        die(&a.point)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_prints_back() {
        for s in [
            "step:backup/snapshot",
            "before:k8s:create:3",
            "after:objects:put:1",
            "part:2",
            "call:117",
        ] {
            let p: KillPoint = s.parse().expect(s);
            assert_eq!(p.to_string(), s);
        }
        assert_eq!(
            "before:k8s:delete:4".parse(),
            Ok(KillPoint::Before {
                action: "k8s:delete".into(),
                n: 4
            })
        );
    }

    #[test]
    fn only_a_step_s_result_ends_it() {
        assert!(ends_step("done: paused"));
        assert!(ends_step("already: the marker names this backup"));
        assert!(!ends_step("started"));
        assert!(!ends_step("etcd/snapshot.db"));
        assert!(!ends_step("waiting: 2 nodes missing"));
    }

    #[test]
    fn malformed_points_are_refused() {
        for s in [
            "",
            "step:backup",
            "before:k8s:create",
            "before:k8s:create:0",
            "after::1",
            "part:x",
            "call:0",
            "now",
        ] {
            let e = s.parse::<KillPoint>().expect_err(s);
            assert!(e.to_string().contains("expected step:PHASE/STEP"), "{e}");
        }
    }
}
