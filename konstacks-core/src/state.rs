//! State: what Konstacks believes exists, kept crash-safely.
//!
//! A stack's state is a snapshot plus an append-only journal of small records: an *intent*
//! before every cloud call (what is about to happen, with the tags the resource will carry) and
//! a *result* after it. Persisting one step costs one appended line, never a rewrite of the
//! whole state; the journal is folded into the snapshot when an apply finishes. After a crash,
//! replaying the journal yields the intents that have no result: the engine finds those
//! resources again by their tags instead of creating them twice.
//!
//! This module owns the data format and the [`StateBackend`] trait with the local directory
//! backend; it never talks to a cloud.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::base::error::StateError;
use crate::kind::Kind;

mod audit;
mod local;
mod memory;
mod resource;

pub(crate) use audit::os_actor;
pub use audit::{AuditCommand, AuditCompliance, AuditEntry, AuditResult};
pub use local::{check_stack_name, parse_state, write_atomic, LocalBackend};
pub use memory::MemoryBackend;
pub use resource::ResourceState;

/// The state format this build writes and the newest it reads.
pub const STATE_VERSION: u32 = 2;

/// The fronting resource and group a new instance was being released into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseMark {
    /// Provider of the fronting resource.
    pub front_provider: String,
    /// Its kind.
    pub front_kind: Kind,
    /// Its provider id.
    pub front_id: String,
    /// The target group.
    pub group: String,
    /// The instance being replaced, which must serve again if the release is undone.
    pub old_id: Option<String>,
    /// Seconds a deregistered target may drain.
    pub drain_s: u32,
    /// Seconds between health probes.
    pub interval_s: u32,
    /// The group's release policy.
    pub policy: crate::kind::fronts::ReleasePolicy,
}

/// An operation whose intent was recorded but whose result never was (the process died).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingOp {
    /// Operation.
    pub op: OpKind,
    /// Logical path.
    pub path: String,
    /// Kind.
    pub kind: Kind,
    /// Provider name.
    pub provider: String,
    /// Provider id, for updates and deletes.
    #[serde(default)]
    pub id: Option<String>,
    /// Generation the created resource would have.
    #[serde(default)]
    pub generation: u32,
    /// Tags the created resource carries (to find it again).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Deps of the resource.
    #[serde(default)]
    pub deps: Vec<String>,
    /// Inputs it was being applied with.
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
    /// When the intent was written (Unix seconds).
    pub at: u64,
    /// Secrets generated for the create, sealed (only with a state key), so an adopted resource
    /// keeps its password.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sealed: BTreeMap<String, String>,
    /// For the create of a new instance in a release: where it was being switched in. Such a
    /// create is undone after a crash, never adopted (it was not proven healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseMark>,
}

/// The kind of a recorded operation.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Create.
    Create,
    /// Update in place.
    Update,
    /// Delete.
    Delete,
}

/// A resource replaced create-before-destroy whose old instance still waits to be deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deposed {
    /// Logical path.
    pub path: String,
    /// The old instance.
    pub resource: ResourceState,
}

/// The whole state of one stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackState {
    /// Format version.
    pub version: u32,
    /// Stack name.
    pub stack: String,
    /// Bumped every time the snapshot is rewritten.
    pub serial: u64,
    /// Managed resources by logical path.
    pub resources: BTreeMap<String, ResourceState>,
    /// Old instances waiting for deletion.
    #[serde(default)]
    pub deposed: Vec<Deposed>,
    /// Intents without a result.
    #[serde(default)]
    pub pending: Vec<PendingOp>,
    /// Stack outputs (secrets redacted).
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    /// Where the stack's resources were last applied (absent before the first apply, after a
    /// destroy, and in states written by older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<StackPlacement>,
    /// Release history, oldest first (the last [`RELEASES_KEPT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<ReleaseRecord>,
    /// What the last fully successful apply built the stack from (see `ApplyOptions::source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
    /// Audit trail: every apply, destroy, import, refresh, force-unlock, release and drift
    /// check, oldest first, never truncated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuditEntry>,
    /// What tools built on the engine keep about the stack itself (a preview's branch and
    /// expiry), set by `ApplyOptions::labels` before the run's first change.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// How many releases a stack's state keeps.
pub const RELEASES_KEPT: usize = 100;

/// How a release ended.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseResult {
    /// Every target serves the new version.
    Succeeded,
    /// A new instance never became healthy: every target serves the old version again.
    RolledBack,
    /// It stopped for another reason (a failed call, an interruption); the next apply goes on.
    Failed,
}

/// One release in a stack's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// When it started (RFC 3339, UTC).
    pub at: String,
    /// Who ran it (`user@host pid N`).
    pub by: String,
    /// The fronting resource (load balancer) and group.
    pub front: String,
    /// Its target group.
    pub group: String,
    /// The targets released.
    pub targets: Vec<String>,
    /// The version before, when the kind has versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// The version released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
    /// How it ended.
    pub result: ReleaseResult,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// What produced the stack (the CLI records its template and parameters), so the release
    /// can be applied again (a rollback is a new release of an older source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
    /// What the version before was built from, when the apply that made it recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_source: Option<Value>,
}

/// The region a stack runs in and the jurisdiction it was bound to, as recorded in state: a
/// plan that would move the stack elsewhere is refused unless the run is told it may.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackPlacement {
    /// Region of the provider.
    pub region: String,
    /// The jurisdiction the stack's placement named, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<crate::model::placement::Jurisdiction>,
}

impl std::fmt::Display for StackPlacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.jurisdiction {
            Some(j) => write!(f, "{} (jurisdiction {j})", self.region),
            None => f.write_str(&self.region),
        }
    }
}

impl StackState {
    /// Empty state of a stack.
    pub fn empty(stack: &str) -> Self {
        Self {
            version: STATE_VERSION,
            stack: stack.to_string(),
            serial: 0,
            resources: BTreeMap::new(),
            deposed: Vec::new(),
            pending: Vec::new(),
            outputs: BTreeMap::new(),
            placement: None,
            releases: Vec::new(),
            source: None,
            audit: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    /// Apply one journal record that is no longer needed: a recorded resource is moved into
    /// the state rather than copied (replaying a journal, keeping a replica).
    pub fn apply_owned(&mut self, rec: Record) {
        match rec {
            Record::Put { path, resource } => self.put(path, resource),
            other => self.apply(&other),
        }
    }

    fn put(&mut self, path: String, resource: ResourceState) {
        self.pending.retain(|q| !(q.path == path && q.op != OpKind::Delete));
        self.resources.insert(path, resource);
    }

    /// Apply one journal record.
    pub fn apply(&mut self, rec: &Record) {
        match rec {
            Record::Intent(p) => {
                self.pending.retain(|q| !(q.path == p.path && q.op == p.op));
                self.pending.push(p.clone());
            }
            Record::Put { path, resource } => self.put(path.clone(), resource.clone()),
            Record::Depose { path, id } => {
                // Only the instance named by the record: replaying a journal over a snapshot that
                // already contains its effects (a crash between snapshot and journal removal)
                // must change nothing.
                if self.resources.get(path).is_some_and(|r| &r.id == id) {
                    if let Some(r) = self.resources.remove(path) {
                        self.deposed.push(Deposed { path: path.clone(), resource: r });
                    }
                }
            }
            Record::Undepose { path, id } => {
                if let Some(pos) = self.deposed.iter().position(|d| d.path == *path && &d.resource.id == id) {
                    if !self.resources.contains_key(path) {
                        let d = self.deposed.remove(pos);
                        self.resources.insert(path.clone(), d.resource);
                    }
                }
            }
            Record::Deleted { path, id } => {
                if self.resources.get(path).is_some_and(|r| &r.id == id) {
                    self.resources.remove(path);
                }
                self.deposed.retain(|d| &d.resource.id != id);
                self.pending.retain(|q| !(q.path == *path && (q.id.as_ref() == Some(id) || q.op == OpKind::Delete)));
            }
            Record::Abandon { path, op } => {
                self.pending.retain(|q| !(q.path == *path && q.op == *op));
            }
            Record::Move { from, to } => {
                if let Some(r) = self.resources.remove(from) {
                    self.resources.insert(to.clone(), r);
                }
                for r in self.resources.values_mut() {
                    if r.deps.iter().any(|d| d == from) {
                        for d in &mut r.deps {
                            if d == from {
                                d.clone_from(to);
                            }
                        }
                        r.deps.sort();
                    }
                }
            }
            Record::Outputs { outputs } => self.outputs.clone_from(outputs),
            Record::Released { release } => {
                // Replaying a journal over a snapshot that already holds it changes nothing.
                if !self.releases.contains(release) {
                    self.releases.push(release.clone());
                    let over = self.releases.len().saturating_sub(RELEASES_KEPT);
                    self.releases.drain(..over);
                }
            }
            Record::Audited { entry } => {
                // Same as releases: a journal replayed over a snapshot that already holds the
                // entry (a crash between snapshot and journal removal) changes nothing.
                if !self.audit.contains(entry) {
                    self.audit.push(entry.clone());
                }
            }
            Record::Labels { labels } => {
                for (k, v) in labels {
                    if v.is_empty() {
                        self.labels.remove(k);
                    } else {
                        self.labels.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
}

/// One journal record.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// About to call the cloud.
    Intent(PendingOp),
    /// A resource now exists with this state (after create, update, adoption or refresh).
    Put {
        /// Logical path.
        path: String,
        /// Its state.
        resource: ResourceState,
    },
    /// The current instance at `path` becomes deposed (create-before-destroy).
    Depose {
        /// Logical path.
        path: String,
        /// Provider id of the instance being deposed.
        id: String,
    },
    /// A replacement was rolled back: the deposed instance with this id is current again.
    Undepose {
        /// Logical path.
        path: String,
        /// Provider id of the old instance.
        id: String,
    },
    /// The resource with this id is gone.
    Deleted {
        /// Logical path.
        path: String,
        /// Provider id.
        id: String,
    },
    /// The intent failed and changed nothing.
    Abandon {
        /// Logical path.
        path: String,
        /// The operation.
        op: OpKind,
    },
    /// A resource moved to a new logical path.
    Move {
        /// Old path.
        from: String,
        /// New path.
        to: String,
    },
    /// New stack outputs.
    Outputs {
        /// Outputs by name.
        outputs: BTreeMap<String, Value>,
    },
    /// A release ended.
    Released {
        /// What happened.
        release: ReleaseRecord,
    },
    /// A command was recorded in the audit trail.
    Audited {
        /// The entry.
        entry: AuditEntry,
    },
    /// Labels set on the stack (an empty value removes the label).
    Labels {
        /// Label values by name.
        labels: BTreeMap<String, String>,
    },
}

/// The id reported for (and accepted to break) a lock file that cannot be read.
pub const UNREADABLE_LOCK: &str = "unreadable";

/// Who holds a stack's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Lock id (pass it to `force-unlock`).
    pub id: String,
    /// `user@host pid N`.
    pub holder: String,
    /// What it is doing (`apply`, `destroy`).
    pub operation: String,
    /// RFC 3339 UTC time it was taken.
    pub since: String,
}

impl LockInfo {
    /// Describe the current process as lock holder.
    pub fn for_this_process(operation: &str) -> Self {
        let pid = std::process::id();
        let mut rng = crate::base::util::SplitMix::from_entropy();
        Self {
            id: format!("{:016x}", rng.next_u64()),
            holder: format!("{} pid {pid}", os_actor()),
            operation: operation.to_string(),
            since: crate::base::util::now_rfc3339(),
        }
    }
}

/// Where state lives. Implementations must make `append` durable before returning.
#[async_trait::async_trait]
pub trait StateBackend: Send + Sync + std::fmt::Debug {
    /// The stack's state: snapshot with the journal replayed. Empty state if there is none.
    async fn load(&self, stack: &str) -> Result<StackState, StateError>;
    /// Append records durably.
    async fn append(&self, stack: &str, records: &[Record]) -> Result<(), StateError>;
    /// Append records that may become durable with the next durable append (results whose
    /// intent is already durable). Backends without a cheaper path append durably.
    async fn append_buffered(&self, stack: &str, records: &[Record]) -> Result<(), StateError> {
        self.append(stack, records).await
    }
    /// Replace the snapshot with `state` (serial bumped by the caller) and clear the journal.
    async fn compact(&self, stack: &str, state: &StackState) -> Result<(), StateError>;
    /// Take the stack's lock or fail at once with who holds it.
    async fn lock(&self, stack: &str, info: &LockInfo) -> Result<(), StateError>;
    /// Release a lock this process holds.
    async fn unlock(&self, stack: &str, id: &str) -> Result<(), StateError>;
    /// Break the lock with this id (and only that one).
    async fn force_unlock(&self, stack: &str, id: &str) -> Result<LockInfo, StateError>;
    /// The current lock, if any.
    async fn current_lock(&self, stack: &str) -> Result<Option<LockInfo>, StateError>;
    /// Stacks with state.
    async fn stacks(&self) -> Result<Vec<String>, StateError>;
}
