//! Error types of the core crate.
//!
//! Owns the portable [`ErrorKind`] that every provider maps its native errors to, so that retry
//! and recovery logic never has to match on SDK types, and the crate's top-level [`Error`].

use std::fmt;

use crate::validate::Diagnostics;

/// The portable classification of a provider failure. Retry and recovery decisions are taken
/// on this kind alone.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The resource (or one it references) does not exist, or is not visible yet.
    NotFound,
    /// A resource with the same identity already exists.
    AlreadyExists,
    /// The API asked the caller to slow down.
    Throttled,
    /// A temporary failure (5xx, connection reset, timeout); the same call may succeed later.
    Transient,
    /// An account or service limit was hit; retrying will not help until the limit is raised.
    QuotaExceeded,
    /// The credentials lack a permission.
    PermissionDenied,
    /// The provider rejected the specification.
    InvalidSpec,
    /// The request conflicts with the current state (for example a dependency violation).
    Conflict,
    /// The operation was cancelled by the caller.
    Cancelled,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Whether a retry of the same call can succeed without any change by the user.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }

    /// A short stable name, as used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::InvalidSpec => "invalid_spec",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error returned by a provider backend. The native error (SDK, HTTP) is kept in
/// [`std::error::Error::source`]; `Display` never repeats it.
#[derive(Debug)]
pub struct ProviderError {
    kind: ErrorKind,
    message: String,
    source: Option<BoxError>,
}

impl ProviderError {
    /// A new error of `kind` with a human message saying what failed.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None }
    }

    /// Attach the native error this one was mapped from.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Shorthand for a not-found error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// The portable kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the source chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message followed by every source in the chain, for reports.
    pub fn full_chain(&self) -> String {
        let mut out = self.message.clone();
        let mut next = self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl std::error::Error for ProviderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Errors of the state layer.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another run holds the stack's lock.
    #[error(
        "stack `{stack}` is locked by {holder} since {since} (lock id {id}); if that run is gone, \
         break the lock with `konstacks force-unlock {id}`"
    )]
    Locked {
        /// The stack.
        stack: String,
        /// Who holds it (user@host pid).
        holder: String,
        /// When it was taken, RFC 3339 UTC.
        since: String,
        /// The lock id to pass to `force-unlock`.
        id: String,
    },
    /// `force-unlock` was given an id that is not the current lock's.
    #[error("stack `{stack}` lock id mismatch: the current lock is {current}, not {given}; nothing was unlocked")]
    LockMismatch {
        /// The stack.
        stack: String,
        /// The id of the lock that is held now, or `none`.
        current: String,
        /// The id the caller gave.
        given: String,
    },
    /// The state was written by a newer Konstacks.
    #[error(
        "state of stack `{stack}` has format version {found}, this build reads up to {supported}; upgrade Konstacks"
    )]
    FutureVersion {
        /// The stack.
        stack: String,
        /// Version found on disk.
        found: u32,
        /// Highest version this build understands.
        supported: u32,
    },
    /// The stored state cannot be parsed.
    #[error("state of stack `{stack}` is corrupt at {location}: {reason}; restore {location} from a backup, nothing was changed")]
    Corrupt {
        /// The stack.
        stack: String,
        /// File (and line) that failed.
        location: String,
        /// The parser's complaint.
        reason: String,
    },
    /// Reading or writing the backend failed.
    #[error("state I/O failed on {path}")]
    Io {
        /// The file or object involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The error type of the core crate.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stack is invalid; every problem is listed.
    #[error("the stack has {count} problem(s):\n{diags}", count = .0.len(), diags = .0)]
    Invalid(Diagnostics),
    /// The state backend failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A provider call failed outside of an apply (refresh, drift, import).
    #[error("{context}")]
    Provider {
        /// What was being done.
        context: String,
        /// The provider error.
        #[source]
        source: ProviderError,
    },
    /// No provider with this name is registered with the engine.
    #[error("no provider named `{0}` is configured; register it with `Engine::with_provider`")]
    UnknownProvider(String),
    /// An apply or destroy finished with failures; the report lists them all.
    #[error("{count} operation(s) failed: {summary}", count = .0.failures.len(), summary = .0.summary())]
    Apply(Box<crate::engine::ApplyReport>),
    /// The plan was made against an older state than the one now stored.
    #[error("the plan is stale: state changed since it was made (serial {planned} -> {current}); plan again")]
    StalePlan {
        /// Serial the plan was made against.
        planned: u64,
        /// Serial now stored.
        current: u64,
    },
    /// The plan's monthly cost is over the stack's budget (nothing was sent to the cloud).
    #[error(transparent)]
    Budget(#[from] crate::cost::BudgetExceeded),
    /// The compliance packs found errors (nothing was sent to the cloud).
    #[error("compliance check failed: {}; nothing was sent to the cloud. Fix the findings or suppress them with a written reason (`konstacks check` shows the full report):\n{}", .0.summary(), .0.errors().map(|f| format!("  {f}")).collect::<Vec<_>>().join("\n"))]
    Policy(Box<crate::policy::PolicyReport>),
    /// Anything the caller asked for that cannot be done (for example an unknown resource path).
    #[error("{0}")]
    Usage(String),
}
