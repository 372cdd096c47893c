//! Seeded random faults at a rate: flaky infrastructure for rehearsals (`ferry drill --faults
//! RATE --seed N`) and the fault matrix.
//!
//! The rules of [`crate::kube::faults`] fire on the k-th matching request, which suits a test
//! that wants exactly one failure where it says. A [`Chaos`] instead rolls for every request
//! with a seeded generator, as a bad day does: the API servers, the S3 server and the Route53
//! proxy ([`crate::services::chaos_proxy`]) each take one and count what they injected.
//!
//! Each service draws from its own generator, seeded from the run's seed and the service's
//! name ([`Chaos::for_service`]), so that one service's faults do not shift with another's
//! traffic. Within a service, concurrent requests can still reach the generator in either
//! order: a seed gives the same rate and mix, and the same faults wherever requests come in
//! the same order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A seeded fault roll at a fixed rate, with the count of what was injected.
#[derive(Debug)]
pub struct Chaos {
    service: String,
    rate: f64,
    active: AtomicBool,
    rng: Mutex<fastrand::Rng>,
    injected: Mutex<BTreeMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Chaos {
    /// Faults on `rate` (0.0..=1.0, clamped) of the requests of `service`, drawn from `seed`
    /// mixed with the service's name. Active from the start.
    pub fn for_service(service: &str, rate: f64, seed: u64) -> Arc<Chaos> {
        // FNV-1a of the name: stable across builds and platforms, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in service.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Arc::new(Chaos {
            service: service.to_string(),
            rate: if rate.is_nan() { 0.0 } else { rate.clamp(0.0, 1.0) },
            active: AtomicBool::new(true),
            rng: Mutex::new(fastrand::Rng::with_seed(seed ^ h)),
            injected: Mutex::new(BTreeMap::new()),
        })
    }

    /// The service this instance injects into.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The share of requests that fail.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Stops (or resumes) injecting, for example while a drill verifies its end state.
    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Release);
    }

    /// With probability [`Chaos::rate`], one of the fault `kinds` (uniformly), counted as
    /// injected; `None` otherwise, when inactive, or when `kinds` is empty.
    pub fn pick(&self, kinds: &[&'static str]) -> Option<&'static str> {
        if !self.active.load(Ordering::Acquire) || kinds.is_empty() {
            return None;
        }
        let kind = {
            let mut rng = lock(&self.rng);
            if rng.f64() >= self.rate {
                return None;
            }
            *kinds.get(rng.usize(..kinds.len()))?
        };
        *lock(&self.injected).entry(kind.to_string()).or_default() += 1;
        Some(kind)
    }

    /// A latency between `min` and `max`, from the same generator.
    pub fn latency(&self, min: Duration, max: Duration) -> Duration {
        let (lo, hi) = (min.as_millis() as u64, max.as_millis().max(min.as_millis()) as u64);
        Duration::from_millis(lock(&self.rng).u64(lo..=hi))
    }

    /// What was injected so far, by kind.
    pub fn injected(&self) -> BTreeMap<String, u64> {
        lock(&self.injected).clone()
    }

    /// How many faults were injected so far.
    pub fn total(&self) -> u64 {
        lock(&self.injected).values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolls(c: &Chaos, n: usize) -> Vec<Option<&'static str>> {
        (0..n).map(|_| c.pick(&["500", "503", "drop"])).collect()
    }

    #[test]
    fn a_seed_gives_the_same_faults_and_services_differ() {
        let a = rolls(&Chaos::for_service("source", 0.2, 7), 500);
        assert_eq!(a, rolls(&Chaos::for_service("source", 0.2, 7), 500));
        assert_ne!(a, rolls(&Chaos::for_service("s3", 0.2, 7), 500));
        assert_ne!(a, rolls(&Chaos::for_service("source", 0.2, 8), 500));
    }

    #[test]
    fn the_rate_holds_and_inactive_injects_nothing() {
        let c = Chaos::for_service("source", 0.05, 1);
        let hits = rolls(&c, 20_000).iter().filter(|r| r.is_some()).count();
        // 5% of 20,000 is 1,000; a fixed seed makes this exact, the bound says what it means.
        assert!((800..1200).contains(&hits), "{hits} faults in 20,000 rolls at 5%");
        c.set_active(false);
        assert!(rolls(&c, 1000).iter().all(Option::is_none));
        assert!(Chaos::for_service("x", 0.0, 1).pick(&["500"]).is_none());
        assert!(Chaos::for_service("x", f64::NAN, 1).pick(&["500"]).is_none());
    }

    #[test]
    fn every_pick_is_counted_by_kind() {
        let c = Chaos::for_service("s3", 1.0, 1);
        let picked = rolls(&c, 30);
        assert_eq!(c.total(), 30);
        for kind in ["500", "503", "drop"] {
            let n = picked.iter().filter(|p| **p == Some(kind)).count() as u64;
            assert_eq!(c.injected().get(kind).copied().unwrap_or(0), n, "{kind}");
        }
        c.set_active(false);
        assert!(c.pick(&["500"]).is_none());
        assert_eq!(c.total(), 30, "what is not injected is not counted");
    }
}
