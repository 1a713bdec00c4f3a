//! Injected time. Providers and the engine never call the system clock or sleep directly: they
//! go through a [`Clock`] taken from the [`OpContext`], so tests run on virtual time.

use std::sync::Arc;
use std::time::Duration;

/// Time and sleep, injected.
#[async_trait::async_trait]
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic time since an arbitrary origin.
    fn now(&self) -> Duration;
    /// Sleep for `d`.
    async fn sleep(&self, d: Duration);
    /// Wall-clock seconds since the Unix epoch, for timestamps in state and locks.
    fn unix_secs(&self) -> u64;
}

/// The clock of the tokio runtime. Under `tokio::time::pause()` (or `start_paused` tests) time
/// is virtual and advances instantly whenever every task is asleep, so tests never sleep for real.
#[derive(Debug, Clone)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    wall_origin: u64,
}

impl TokioClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        let wall_origin =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Self { origin: tokio::time::Instant::now(), wall_origin }
    }

    /// Shared, ready for an [`OpContext`].
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(Self::new())
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl Clock for TokioClock {
    fn now(&self) -> Duration {
        tokio::time::Instant::now().duration_since(self.origin)
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn unix_secs(&self) -> u64 {
        self.wall_origin + self.now().as_secs()
    }
}

/// What every provider operation receives: time, cancellation and the stack it works for.
#[derive(Debug, Clone)]
pub struct OpContext {
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// Set to `true` when the caller wants the operation abandoned as soon as it is safe.
    pub cancel: tokio::sync::watch::Receiver<bool>,
    /// The stack the operation belongs to (used for tags and adoption).
    pub stack: String,
    /// The tracing span of the operation.
    pub span: tracing::Span,
}

impl OpContext {
    /// A context with a clock and no cancellation.
    pub fn new(clock: Arc<dyn Clock>, stack: impl Into<String>) -> Self {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        Self { clock, cancel: rx, stack: stack.into(), span: tracing::Span::none() }
    }

    /// The same context, cancelled when `cancel` is.
    pub fn with_cancel(mut self, cancel: &Cancel) -> Self {
        self.cancel = cancel.receiver();
        self
    }

    /// The same context inside `span` (each engine operation gets one).
    pub fn with_span(mut self, span: tracing::Span) -> Self {
        self.span = span;
        self
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }
}

/// A cancellation switch shared by a run and every operation it starts: once pulled, the
/// engine starts no new operation, retries and wait loops give up, and operations in flight
/// finish or stay recorded as intents for the next run.
#[derive(Debug, Clone)]
pub struct Cancel {
    tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Cancel {
    /// A switch not yet pulled.
    pub fn new() -> Self {
        let (tx, _rx) = tokio::sync::watch::channel(false);
        Self { tx: Arc::new(tx) }
    }

    /// Pull it. Pulling twice is the same as once.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether it was pulled.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// A receiver for an [`OpContext`].
    pub fn receiver(&self) -> tokio::sync::watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}
