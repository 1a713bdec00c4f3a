//! The event stream: typed events embedders subscribe to (the CLI renders them as progress bars
//! or JSON lines). Events never carry secret values.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::state::OpKind;

/// What happened.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A plan was made.
    Planned {
        /// Resources to create.
        create: usize,
        /// Resources to update in place.
        update: usize,
        /// Resources to replace.
        replace: usize,
        /// Resources to delete.
        delete: usize,
    },
    /// An operation started.
    Started {
        /// Operation.
        op: OpKind,
    },
    /// Something worth telling while an operation runs.
    Progress {
        /// Message.
        message: String,
    },
    /// A call failed with a retryable error and will be retried.
    Retrying {
        /// Operation.
        op: OpKind,
        /// Attempt that failed (1-based).
        attempt: u32,
        /// Delay before the next attempt, in milliseconds.
        delay_ms: u64,
        /// Portable error kind.
        error_kind: String,
        /// Error message.
        error: String,
    },
    /// An interrupted or timed-out create was found again by its tags and adopted.
    Adopted {
        /// Provider id.
        id: String,
    },
    /// An operation succeeded.
    Succeeded {
        /// Operation.
        op: OpKind,
        /// Provider id.
        id: String,
        /// Duration in milliseconds.
        elapsed_ms: u64,
    },
    /// An operation failed.
    Failed {
        /// Operation.
        op: OpKind,
        /// Portable error kind.
        error_kind: String,
        /// Error with its cause chain.
        error: String,
    },
    /// Something the user should know before relying on the result (for example secrets that
    /// are not kept because no state key is set).
    Warning {
        /// Message.
        message: String,
    },
    /// An operation was not started because something it depends on failed.
    Skipped {
        /// Why.
        reason: String,
    },
    /// The run finished.
    Finished {
        /// Operations that succeeded.
        succeeded: usize,
        /// Operations that failed.
        failed: usize,
        /// Operations skipped.
        skipped: usize,
        /// Wall time in milliseconds.
        elapsed_ms: u64,
    },
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Stack.
    pub stack: String,
    /// Logical path of the resource, when the event is about one.
    pub path: Option<String>,
    /// Milliseconds since the run started (injected clock).
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Fan-out of events to every subscriber.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventBus {
    subs: Arc<Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Event>>>>,
}

impl EventBus {
    pub(crate) fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.subs.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }

    pub(crate) fn emit(&self, e: Event) {
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        if subs.is_empty() {
            return;
        }
        subs.retain(|s| s.send(e.clone()).is_ok());
    }
}
