//! Retry with exponential backoff and full jitter, and a per-provider pacer that keeps the
//! engine under a provider's advertised rate limit (and slows down further when throttled).

use std::sync::Mutex;
use std::time::Duration;

use crate::base::clock::Clock;
use crate::base::util::SplitMix;

/// How retryable failures are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay cap before jitter for the first retry.
    pub base_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
    /// How long a not-found right after a create (eventual consistency) is retried.
    pub consistency_window: Duration,
    /// How long a dependency violation on delete is retried (the cloud may still be detaching).
    pub conflict_window: Duration,
    /// After a create failed in a way that may hide a success (timeout, 5xx), how long the
    /// engine keeps looking for the resource by its tags before creating it again.
    pub adoption_window: Duration,
    /// Seed of the jitter, for reproducible runs.
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            consistency_window: Duration::from_secs(60),
            conflict_window: Duration::from_secs(120),
            adoption_window: Duration::from_secs(20),
            seed: 0x6b6f_6e73,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1-based): uniform in [0, min(max, base*2^(attempt-1))],
    /// but never below a tenth of that cap so retries do not stampede.
    pub(crate) fn delay(&self, attempt: u32, rng: &Mutex<SplitMix>) -> Duration {
        let exp = self.base_delay.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let cap = exp.min(self.max_delay.as_secs_f64());
        let r = rng.lock().unwrap_or_else(|p| p.into_inner()).next_f64();
        Duration::from_secs_f64(cap * (0.1 + 0.9 * r))
    }
}

/// A generic cell rate pacer: at most `burst` calls at once, then one call per interval. Each
/// call reserves its slot, so concurrent callers queue fairly without spinning.
#[derive(Debug)]
pub(crate) struct Pacer {
    inner: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    base_interval: Duration,
    interval: Duration,
    burst: u32,
    tat: Duration,
}

impl Pacer {
    pub(crate) fn new(calls_per_second: f64, burst: u32) -> Self {
        let interval = Duration::from_secs_f64(1.0 / calls_per_second.max(0.001));
        Self {
            inner: Mutex::new(PacerState {
                base_interval: interval,
                interval,
                burst: burst.max(1),
                tat: Duration::ZERO,
            }),
        }
    }

    /// Wait for a slot.
    pub(crate) async fn acquire(&self, clock: &dyn Clock) {
        let wait = {
            let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let now = clock.now();
            let tat = s.tat.max(now);
            let allowance = s.interval * (s.burst - 1);
            let allowed_at = tat.saturating_sub(allowance);
            s.tat = tat + s.interval;
            allowed_at.saturating_sub(now)
        };
        if !wait.is_zero() {
            clock.sleep(wait).await;
        }
    }

    /// The provider said "slow down": lengthen the interval (multiplicative decrease).
    pub(crate) fn throttled(&self) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.interval = (s.interval.mul_f64(1.2)).min(s.base_interval * 20);
    }

    /// A call went through: creep back towards the advertised rate (additive increase).
    pub(crate) fn succeeded(&self) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if s.interval > s.base_interval {
            s.interval = s.interval.saturating_sub(s.base_interval / 10).max(s.base_interval);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::clock::TokioClock;

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy::default();
        let rng = Mutex::new(SplitMix::new(1));
        for attempt in 1..20 {
            let d = p.delay(attempt, &rng);
            assert!(d <= p.max_delay, "{d:?}");
        }
        let first = p.delay(1, &rng);
        assert!(first <= p.base_delay);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_keeps_the_rate() {
        let clock = TokioClock::new();
        let pacer = Pacer::new(10.0, 5);
        for _ in 0..25 {
            pacer.acquire(&clock).await;
        }
        // 5 in the burst, then 20 more at 10/s.
        let t = clock.now().as_secs_f64();
        assert!((1.9..=2.1).contains(&t), "took {t}");
    }
}
