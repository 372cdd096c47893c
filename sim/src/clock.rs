//! The simulator's clock: upstream's timings, run faster for drills and tests.
//!
//! Every delay the simulator models is written as upstream has it (external-dns' `--interval=1m`,
//! a MachineHealthCheck's 8 minutes, the kubelet's 50 s grace period) and waited on this clock:
//! at scale 20 a minute of upstream time passes in 3 real seconds. A drill runs the simulator on
//! the same scale as the guest's clock, so both see one timeline, and says which scale it used.
//! Times the simulator writes (a condition's `lastTransitionTime`) are on this clock too: every
//! clock of a process counts from one origin, like the host's.

use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// Where this process's simulator clocks start counting.
static ORIGIN: LazyLock<(Instant, SystemTime)> = LazyLock::new(|| (Instant::now(), SystemTime::now()));

/// A clock running `scale` times faster than real time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimClock {
    scale: f64,
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::real_time()
    }
}

impl SimClock {
    /// Real time (scale 1).
    pub fn real_time() -> Self {
        SimClock { scale: 1.0 }
    }

    /// A clock `scale` times faster than real time (anything not positive and finite is 1).
    pub fn scaled(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 { scale } else { 1.0 };
        LazyLock::force(&ORIGIN);
        SimClock { scale }
    }

    /// How much faster than real time it runs.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The real time an upstream duration takes on this clock.
    pub fn real(&self, upstream: Duration) -> Duration {
        upstream.div_f64(self.scale)
    }

    /// The upstream time that passes in `real` time.
    pub fn upstream(&self, real: Duration) -> Duration {
        real.mul_f64(self.scale)
    }

    /// The upstream time since `since` (a real instant).
    pub fn since(&self, since: Instant) -> Duration {
        self.upstream(since.elapsed())
    }

    /// Now, on this clock.
    pub fn now(&self) -> DateTime<Utc> {
        let (start, wall) = *ORIGIN;
        let t = wall + self.upstream(start.elapsed());
        DateTime::<Utc>::from(t)
    }

    /// Now as the API server writes timestamps (RFC 3339, seconds).
    pub fn now_rfc3339(&self) -> String {
        self.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// Milliseconds since the Unix epoch, on this clock.
    pub fn now_ms(&self) -> u64 {
        self.now()
            .signed_duration_since(DateTime::<Utc>::from(UNIX_EPOCH))
            .num_milliseconds()
            .max(0) as u64
    }

    /// Sleeps for an upstream duration.
    pub async fn sleep(&self, upstream: Duration) {
        tokio::time::sleep(self.real(upstream)).await;
    }
}

/// Parses a Go duration as flags carry them (`1m`, `1h`, `90s`, `1m30s`, `500ms`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += Duration::from_secs_f64(n * secs);
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_time_runs_scale_times_faster() {
        let c = SimClock::scaled(20.0);
        assert_eq!(c.real(Duration::from_secs(60)), Duration::from_secs(3));
        assert_eq!(c.upstream(Duration::from_secs(3)), Duration::from_secs(60));
        assert_eq!(SimClock::scaled(-1.0).scale(), 1.0);
        let a = SimClock::real_time().now();
        let b = c.now();
        assert!(b >= a, "a faster clock is never behind real time");
    }

    #[test]
    fn go_durations_parse_as_flags_give_them() {
        assert_eq!(parse_go_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("8m0s"), Some(Duration::from_secs(480)));
        assert_eq!(parse_go_duration("m"), None);
        assert_eq!(parse_go_duration("5x"), None);
    }
}
