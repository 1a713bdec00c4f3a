//! The crate's top-level [`Error`]: what a caller of the library API (synth, plan, apply,
//! destroy) gets back. It sits above every layer because it carries their reports.

use crate::base::diag::Diagnostics;
pub use crate::base::error::{ErrorKind, ProviderError, StateError};

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
    Apply(Box<crate::engine::report::ApplyReport>),
    /// The run was interrupted (its `Cancel` was pulled): no operation was started after that,
    /// those in flight finished or stay recorded as intents, and the lock was released. State
    /// records everything that was done; running again finishes the work.
    #[error(
        "interrupted: {done} operation(s) done, {failed} failed, {skipped} not started; the lock was released and \
         state records everything that was done; run the command again to finish",
        done = .0.created.len() + .0.updated.len() + .0.replaced.len() + .0.deleted.len(),
        failed = .0.failures.len(),
        skipped = .0.skipped.len()
    )]
    Interrupted(Box<crate::engine::report::ApplyReport>),
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
    /// The state key is unusable (too short, wrong, missing) or a secret the run needs cannot
    /// be recovered; nothing was sent to the cloud.
    #[error(transparent)]
    Secret(#[from] crate::base::secret::SecretError),
    /// The run would lose data, meet deletion protection, move the stack, touch another
    /// stack's resource or create duplicates of resources state does not know, and was not told
    /// it may; every hazard is listed and nothing was sent to the cloud.
    #[error("{0}")]
    Refused(Box<crate::engine::refusal::Refusal>),
    /// Anything the caller asked for that cannot be done (for example an unknown resource path).
    #[error("{0}")]
    Usage(String),
}
