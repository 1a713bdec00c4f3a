//! Virtual time for backend tests: `sleep` advances the clock at once and yields, so waits,
//! polls and back-offs cost no real time. Shared by the test harnesses of several backends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use konstacks_core::clock::Clock;

/// Virtual time: `sleep` advances the clock at once and yields, so waits, polls and back-offs
/// cost no real time.
#[derive(Debug)]
pub struct VirtualClock {
    nanos: AtomicU64,
    wall: u64,
}

impl VirtualClock {
    /// A clock starting at the real wall time (the fake's rate-limit resets are wall time).
    pub fn shared() -> Arc<VirtualClock> {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Arc::new(VirtualClock { nanos: AtomicU64::new(0), wall })
    }

    /// Virtual time slept so far.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

#[async_trait::async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        self.elapsed()
    }

    async fn sleep(&self, d: Duration) {
        self.nanos.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
        tokio::task::yield_now().await;
    }

    /// Real wall time: the API's rate-limit resets are wall-clock epochs, and the fake computes
    /// them from the real clock (the virtual one runs ahead with every sleep).
    fn unix_secs(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(self.wall)
    }
}
