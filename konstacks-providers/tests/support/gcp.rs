//! What the GCP tests share: one fake per test process (started on first use, on its own
//! thread), the backend configured against it with virtual time, and a lock that runs the tests
//! of one process one at a time (they share the fake's state and knobs).
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use konstacks_core::clock::OpContext;
use konstacks_providers::gcp::{Config, Credentials, Gcp, Waits};

use super::clock::VirtualClock;
use crate::common_gcp::{FakeOptions, GcpFake, Inventory};

/// The region the tests work in.
pub const REGION: &str = "europe-west1";

/// The process-wide fake.
pub fn fake() -> &'static GcpFake {
    static F: OnceLock<GcpFake> = OnceLock::new();
    F.get_or_init(|| GcpFake::start_blocking(FakeOptions::default()))
}

/// Held for a whole test.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The backend against a fake at `url` serving `project`, in `region`, without credentials.
pub async fn backend_at(url: &str, project: &str, region: &str) -> Arc<Gcp> {
    let config = Config::new(project, region)
        .endpoint(url)
        .credentials(Credentials::Anonymous)
        .waits(Waits { first_poll: Duration::from_millis(500), ..Waits::default() });
    Arc::new(Gcp::new(config).await.expect("backend"))
}

/// The backend against the process's fake, in `region`.
pub async fn backend_in(region: &str) -> Arc<Gcp> {
    let f = fake();
    backend_at(&f.base_url(), &f.project(), region).await
}

/// The backend against the fake in [`REGION`].
pub async fn backend() -> Arc<Gcp> {
    backend_in(REGION).await
}

/// An operation context on `clock` for `stack`.
pub fn cx(clock: &Arc<VirtualClock>, stack: &str) -> OpContext {
    OpContext::new(clock.clone(), stack)
}

/// Nothing is left in the fake but Cloud SQL's built-in users.
pub fn assert_fake_empty() {
    let inv = fake().inventory();
    // Users live and die with their Cloud SQL instance.
    let left = Inventory { sql_users: 0, ..inv.clone() };
    assert_eq!(left, Inventory::default(), "left in the fake: {inv:?}");
}
