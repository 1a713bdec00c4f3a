//! Waiting for a cloud to finish asynchronous work, on the operation's injected clock.

use std::future::Future;
use std::time::Duration;

use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::provider::ProviderResult;

/// How often to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pace {
    /// First pause between two looks; doubled up to `max`.
    pub first: Duration,
    /// Longest pause between two looks.
    pub max: Duration,
}

/// Look with `look` until it answers `Some`, for at most `timeout` of the operation's clock.
/// Cancellation ends the wait; running out of time is a transient error that says the work may
/// still finish.
pub(crate) async fn wait_for<T, F, Fut>(
    cx: &OpContext,
    what: &str,
    timeout: Duration,
    pace: Pace,
    mut look: F,
) -> ProviderResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ProviderResult<Option<T>>>,
{
    let start = cx.clock.now();
    let mut pause = pace.first;
    loop {
        if let Some(v) = look().await? {
            return Ok(v);
        }
        if cx.is_cancelled() {
            return Err(ProviderError::new(ErrorKind::Cancelled, format!("waiting for {what} was cancelled")));
        }
        if cx.clock.now().saturating_sub(start) >= timeout {
            return Err(ProviderError::new(
                ErrorKind::Transient,
                format!(
                    "{what} did not finish within {}s; it may still finish: read it again before retrying",
                    timeout.as_secs()
                ),
            ));
        }
        cx.clock.sleep(pause).await;
        pause = (pause * 2).min(pace.max);
    }
}
