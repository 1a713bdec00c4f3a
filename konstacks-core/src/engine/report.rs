//! What the engine reports: options of a run, the apply report with its failures, and drift.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::base::error::ErrorKind;
use crate::kind::Kind;
use crate::plan::{Plan, Recovery};
use crate::state::OpKind;

/// What to do when an operation fails.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Start nothing new; let operations in flight finish (the default).
    #[default]
    FinishInFlight,
    /// Keep starting every operation that does not depend on a failed one.
    ContinueIndependent,
}

/// Options of a plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Read the cloud first (batched) so the plan also reverts drift.
    pub refresh: bool,
    /// Make no cloud read the plan can do without: resources tagged for the stack that state
    /// does not know are not looked for (an apply still refuses them). Interrupted operations
    /// are still reconciled. For plans made without credentials, such as an IAM policy's.
    pub offline: bool,
}

impl PlanOptions {
    /// A plan that reads the cloud first (see [`PlanOptions::refresh`]).
    pub fn refreshing() -> Self {
        Self { refresh: true, ..Self::default() }
    }
}

/// Options of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Take over a resource whose tags say it belongs to another stack.
    pub force: bool,
}

/// Options of an apply or destroy.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Read the cloud first (batched) so drift is reverted too.
    pub refresh: bool,
    /// Behaviour on failure.
    pub on_failure: FailurePolicy,
    /// The plan the user approved: the apply refuses to run if planning again gives another.
    pub expected: Option<Plan>,
    /// Which deletions of data-holding resources an apply may make (a destroy is its own
    /// consent: it deletes everything by definition).
    pub data_loss: DataLossConsent,
    /// Turn deletion protection off (an update) right before deleting a protected resource,
    /// instead of refusing the run.
    pub disable_deletion_protection: bool,
    /// Let an apply move an applied stack to another region or jurisdiction.
    pub allow_placement_change: bool,
    /// Let an apply go on although the cloud holds resources tagged for the stack that its
    /// state does not know (they are left alone; duplicates may be created next to them).
    pub ignore_untracked: bool,
    /// What produced the stack (a template and its parameters), kept with each release in the
    /// history so it can be applied again.
    pub source: Option<serde_json::Value>,
    /// Labels to set on the stack's state once the run passed its checks, before its first
    /// change (an empty value removes one): a run that fails half-way still carries them.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Which deletions of data-holding resources (databases, caches) an apply may make.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DataLossConsent {
    /// None: an apply that would delete or replace one is refused before any cloud call.
    #[default]
    Refuse,
    /// Only the resources at these logical paths.
    Paths(std::collections::BTreeSet<String>),
    /// Any.
    All,
}

impl DataLossConsent {
    /// Whether the resource at `path` may lose its data.
    pub fn allows(&self, path: &str) -> bool {
        match self {
            DataLossConsent::Refuse => false,
            DataLossConsent::Paths(p) => p.contains(path),
            DataLossConsent::All => true,
        }
    }
}

/// One failed operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// Logical path.
    pub path: String,
    /// Operation.
    pub op: OpKind,
    /// Portable kind.
    pub kind: ErrorKind,
    /// Message with its cause chain.
    pub message: String,
}

/// What an apply or destroy did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApplyReport {
    /// The run was interrupted (its `Cancel` was pulled): operations not started are in
    /// `skipped`, and state records everything that was done.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
    /// Stack.
    pub stack: String,
    /// Paths created.
    pub created: Vec<String>,
    /// Paths updated in place.
    pub updated: Vec<String>,
    /// Paths replaced.
    pub replaced: Vec<String>,
    /// Paths deleted.
    pub deleted: Vec<String>,
    /// Paths whose interrupted or timed-out create was found again and adopted.
    pub adopted: Vec<String>,
    /// Paths whose replacement failed its health gate and was undone (the old instance serves).
    pub rolled_back: Vec<String>,
    /// Failures.
    pub failures: Vec<Failure>,
    /// Paths not started because something they depend on failed (or the run stopped).
    pub skipped: Vec<String>,
    /// Stack outputs (secrets redacted).
    pub outputs: BTreeMap<String, Value>,
    /// Interrupted operations reconciled before the run.
    pub recovered: Vec<Recovery>,
    /// Warnings of the run (also sent as `warning` events), such as secrets generated without
    /// a state key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Retries made on throttling or transient errors.
    pub retries: u64,
    /// Wall time of the run in milliseconds (injected clock).
    pub elapsed_ms: u64,
    /// Time spent persisting state in milliseconds (real time).
    pub persist_ms: u64,
}

impl ApplyReport {
    /// Whether everything succeeded.
    pub fn is_success(&self) -> bool {
        self.failures.is_empty() && self.skipped.is_empty()
    }

    /// One line per failure.
    pub fn summary(&self) -> String {
        self.failures.iter().map(|f| format!("{} {:?}: {}", f.path, f.op, f.message)).collect::<Vec<_>>().join("; ")
    }
}

/// One field that differs between state and the cloud.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDrift {
    /// Field.
    pub name: String,
    /// Value in state.
    pub state: Value,
    /// Value in the cloud.
    pub cloud: Value,
}

/// How a resource drifted.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    /// Fields changed outside Konstacks.
    Changed,
    /// Deleted outside Konstacks.
    Deleted,
}

/// A drifted resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftItem {
    /// Logical path.
    pub path: String,
    /// Kind.
    pub kind: Kind,
    /// Provider id.
    pub id: String,
    /// Status.
    pub status: DriftStatus,
    /// Field differences (empty when deleted).
    pub fields: Vec<FieldDrift>,
}

/// Result of `drift` / `refresh`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DriftReport {
    /// Stack.
    pub stack: String,
    /// Resources checked.
    pub checked: usize,
    /// Provider read calls made (batched).
    pub read_calls: usize,
    /// Drifted resources, by path.
    pub items: Vec<DriftItem>,
}

impl DriftReport {
    /// Whether the cloud matches state.
    pub fn is_clean(&self) -> bool {
        self.items.is_empty()
    }

    /// Human rendering.
    pub fn render(&self) -> String {
        let mut out = format!("Drift of stack {} ({} resources checked)\n", self.stack, self.checked);
        if self.items.is_empty() {
            out.push_str("No drift: the cloud matches state.\n");
        }
        for i in &self.items {
            match i.status {
                DriftStatus::Deleted => {
                    out.push_str(&format!("  - {} {} [{}] was deleted outside Konstacks\n", i.kind, i.path, i.id))
                }
                DriftStatus::Changed => {
                    out.push_str(&format!("  ~ {} {} [{}] changed outside Konstacks\n", i.kind, i.path, i.id));
                    for f in &i.fields {
                        out.push_str(&format!("      {:<24} = {} (state) -> {} (cloud)\n", f.name, f.state, f.cloud));
                    }
                }
            }
        }
        out
    }
}
