//! Shared harness of the DigitalOcean tests: one fake per test process, reached directly or
//! through Prism, a virtual clock, and the backend configured against them.
//!
//! - `KONSTACKS_DO_FAKE_PORT`: serve the fake on this port (the one Prism proxies to).
//! - `KONSTACKS_DO_PRISM_URL`: send every request through this validating proxy.
//! - `KONSTACKS_DO_REQUIRE_PRISM=1`: fail instead of testing without the proxy.
#![allow(dead_code)]

#[path = "../support/clock.rs"]
mod clock;
pub mod fake;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use konstacks_core::clock::OpContext;
use konstacks_core::provider::Provider;
use konstacks_core::secret::Secret;
use konstacks_providers::digitalocean::{Config, DigitalOcean, RetrySettings, WaitSettings};

pub use clock::VirtualClock;
pub use fake::Fake;

/// The process-wide fake and the URL the backend talks to.
pub struct Harness {
    /// The fake.
    pub fake: Fake,
    /// Prism's URL when the tests run through it, else the fake's.
    pub api_url: String,
    /// Whether requests go through Prism.
    pub through_prism: bool,
}

/// The harness, started on first use.
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let port = std::env::var("KONSTACKS_DO_FAKE_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(0);
        let fake = Fake::start(port);
        let prism = std::env::var("KONSTACKS_DO_PRISM_URL").ok().filter(|u| !u.is_empty());
        if prism.is_none() && std::env::var("KONSTACKS_DO_REQUIRE_PRISM").is_ok_and(|v| v == "1") {
            panic!(
                "KONSTACKS_DO_REQUIRE_PRISM=1 but KONSTACKS_DO_PRISM_URL is not set: run scripts/test-digitalocean.sh"
            );
        }
        if prism.is_none() {
            eprintln!(
                "note: DigitalOcean tests run against the fake without Prism; scripts/test-digitalocean.sh adds it"
            );
        }
        let through_prism = prism.is_some();
        Harness { api_url: prism.unwrap_or_else(|| fake.url.clone()), fake, through_prism }
    })
}

/// Held for a whole test: the tests of one process share the fake (its knobs, its state and
/// the account-wide uniqueness of VPC ranges), so they run one at a time even when the test
/// harness runs them on several threads.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The backend against the harness (fast waits: the fake finishes in a few polls).
pub fn backend() -> Arc<DigitalOcean> {
    let h = harness();
    let mut c = Config::new(Secret::new("fake-token-not-a-secret".into())).base_url(h.api_url.clone());
    c.retry = RetrySettings { max_attempts: 6, ..RetrySettings::default() };
    c.waits = WaitSettings { first_poll: Duration::from_millis(500), ..WaitSettings::default() };
    Arc::new(DigitalOcean::new(c).expect("backend"))
}

/// The backend as a provider.
pub fn provider(b: &Arc<DigitalOcean>) -> Provider {
    b.provider()
}

/// An operation context on `clock` for `stack`.
pub fn cx(clock: &Arc<VirtualClock>, stack: &str) -> OpContext {
    OpContext::new(clock.clone(), stack)
}

/// Fail when the proxy reported any contract violation.
pub fn assert_no_violations(b: &DigitalOcean) {
    let v = b.client().contract_violations();
    assert!(v.is_empty(), "Prism reported contract violations:\n{}", v.join("\n"));
}
