//! The portable error vocabulary every layer shares: [`ErrorKind`], [`ProviderError`], [`StateError`].
//!
//! Owns the portable [`ErrorKind`] that every provider maps its native errors to, so that retry
//! and recovery logic never has to match on SDK types,

use std::fmt;

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
    uncertain: bool,
}

impl ProviderError {
    /// A new error of `kind` with a human message saying what failed.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None, uncertain: false }
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

    /// Mark the failure as uncertain: the call may have taken effect (a create that timed out).
    /// The engine does not retry an uncertain create blindly; it looks the resource up first.
    pub fn uncertain(mut self) -> Self {
        self.uncertain = true;
        self
    }

    /// Whether the call may have taken effect despite the failure.
    pub fn is_uncertain(&self) -> bool {
        self.uncertain
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
    /// The stack name cannot name state: it is not a valid stack name (see
    /// [`crate::base::diag::stack_name_problem`]), so no path or key is built from it.
    #[error(
        "invalid stack name `{}`: {reason}; {}; nothing was read or written",
        .name.escape_debug(),
        crate::base::diag::STACK_NAME_RULE
    )]
    InvalidStackName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: crate::base::diag::NameProblem,
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
