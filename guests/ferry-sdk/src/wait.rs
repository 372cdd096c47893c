//! Bounded waits on the host's clock, with progress.
//!
//! Every wait has a deadline; on timeout it returns an `unavailable` error
//! whose text says what was awaited, what was last seen and what to do.

use crate::{Error, Result};

/// One bounded wait.
pub struct Wait<'a> {
    /// The progress step, e.g. `backup/wait-dns`.
    pub step: &'a str,
    /// What is awaited, for messages ("Route53 to drop the records of x").
    pub what: &'a str,
    /// How long to wait in all, in seconds.
    pub timeout_seconds: u64,
    /// How long between checks, in milliseconds.
    pub interval_millis: u64,
    /// Advice printed on timeout ("re-run `ferry backup` once ...").
    pub on_timeout: &'a str,
}

/// What one check found.
pub enum Check<T> {
    /// Done, with a value.
    Done(T),
    /// Not yet; the text says what is still missing.
    Pending(String),
}

impl Wait<'_> {
    /// Runs `check` until it is done or the deadline passes. Transient
    /// (`unavailable`) errors count as "not yet"; other errors end the wait.
    pub fn until<T>(&self, mut check: impl FnMut() -> Result<Check<T>>) -> Result<T> {
        let start = crate::context::now();
        let deadline = start.saturating_add(self.timeout_seconds.saturating_mul(1000));
        let mut last;
        loop {
            match check() {
                Ok(Check::Done(v)) => {
                    let secs = crate::context::now().saturating_sub(start) / 1000;
                    crate::log::waiting(self.step, secs, self.timeout_seconds, &format!("{}: done", self.what));
                    return Ok(v);
                }
                Ok(Check::Pending(why)) => last = why,
                Err(Error::Unavailable(m)) => last = format!("transient error: {m}"),
                Err(e) => return Err(e),
            }
            let now = crate::context::now();
            let waited = now.saturating_sub(start) / 1000;
            crate::log::waiting(
                self.step,
                waited,
                self.timeout_seconds,
                &format!("waiting for {}: {last}", self.what),
            );
            if now >= deadline {
                return Err(Error::Unavailable(format!(
                    "timed out after {}s waiting for {}; still: {last}. {}",
                    self.timeout_seconds, self.what, self.on_timeout
                )));
            }
            crate::context::sleep(self.interval_millis.min(deadline - now).max(1));
        }
    }
}
