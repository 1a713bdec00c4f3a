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
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::base::error::StateError;
use crate::kind::Kind;

/// The state format this build writes and the newest it reads.
pub const STATE_VERSION: u32 = 1;

/// One managed resource as recorded in state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// Kind.
    pub kind: Kind,
    /// Provider name.
    pub provider: String,
    /// Provider id.
    pub id: String,
    /// How many times it has been replaced (suffix of the physical name).
    #[serde(default)]
    pub generation: u32,
    /// The resolved inputs it was last applied with (secrets as redacted markers).
    pub inputs: BTreeMap<String, Value>,
    /// What the provider reported (secrets never included).
    pub attrs: BTreeMap<String, Value>,
    /// Paths of the resources it depended on when applied (destroy order).
    #[serde(default)]
    pub deps: Vec<String>,
    /// Secret attributes, encrypted with the key from `KONSTACKS_SECRET_KEY` (absent without a key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sealed: BTreeMap<String, String>,
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
        }
    }

    /// Apply one journal record.
    pub fn apply(&mut self, rec: &Record) {
        match rec {
            Record::Intent(p) => {
                self.pending.retain(|q| !(q.path == p.path && q.op == p.op));
                self.pending.push(p.clone());
            }
            Record::Put { path, resource } => {
                self.pending.retain(|q| !(q.path == *path && q.op != OpKind::Delete));
                self.resources.insert(path.clone(), resource.clone());
            }
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
        let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into());
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "localhost".into());
        let pid = std::process::id();
        let mut rng = crate::base::util::SplitMix::from_entropy();
        Self {
            id: format!("{:016x}", rng.next_u64()),
            holder: format!("{user}@{host} pid {pid}"),
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

/// State in a local directory (default `.konstacks/`):
/// `stacks/<stack>/state.json` (snapshot), `journal.jsonl` (records), `lock.json`.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    /// Open journal files, kept across appends (one open per stack and run, not per append).
    journals: std::sync::Arc<std::sync::Mutex<BTreeMap<String, std::sync::Arc<std::sync::Mutex<std::fs::File>>>>>,
}

impl LocalBackend {
    /// A backend rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), journals: Default::default() }
    }

    fn journal_file(&self, stack: &str) -> Result<std::sync::Arc<std::sync::Mutex<std::fs::File>>, StateError> {
        let mut open = self.journals.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = open.get(stack) {
            return Ok(f.clone());
        }
        let dir = self.dir(stack)?;
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join("journal.jsonl");
        // A crash can leave a torn last line: a record that was never acknowledged. Cut it off
        // before appending, or the next record would be glued to it.
        if let Ok(bytes) = std::fs::read(&path) {
            if !bytes.is_empty() && !bytes.ends_with(b"\n") {
                let keep = bytes.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
                let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
                f.set_len(keep as u64).map_err(io_err(&path))?;
                f.sync_all().map_err(io_err(&path))?;
            }
        }
        let f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
        let f = std::sync::Arc::new(std::sync::Mutex::new(f));
        open.insert(stack.to_string(), f.clone());
        Ok(f)
    }

    fn forget_journal(&self, stack: &str) {
        self.journals.lock().unwrap_or_else(|p| p.into_inner()).remove(stack);
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The stack's directory; refuses a name that is not a valid stack name, so that no name
    /// (`../x`, `/abs`, `a/b`, ...) leads outside `stacks/`.
    fn dir(&self, stack: &str) -> Result<PathBuf, StateError> {
        check_stack_name(stack)?;
        Ok(self.root.join("stacks").join(stack))
    }
}

/// Refuse `stack` as the name of a stack's state when it is not a valid stack name (see
/// [`crate::base::diag::stack_name_problem`]): every backend calls it before building a path or
/// a key from the name.
pub fn check_stack_name(stack: &str) -> Result<(), StateError> {
    match crate::base::diag::stack_name_problem(stack) {
        None => Ok(()),
        Some(reason) => Err(StateError::InvalidStackName { name: stack.to_string(), reason }),
    }
}

/// Remove what a killed process left in a stack's directory: temporary snapshots
/// (`.state.json.tmp-<pid>-<n>`, formerly `state.tmp<pid>`) and lock candidates
/// (`lock.<pid>.<id>.tmp`) whose process is no longer running. Called with the stack's lock held.
fn sweep_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = crate::base::fs::temp_file_pid(&name, "state.json").or_else(|| {
            let rest = name.strip_prefix("lock.")?.strip_suffix(".tmp")?;
            rest.split_once('.').and_then(|(pid, _)| pid.parse().ok())
        });
        if let Some(pid) = pid {
            if crate::base::fs::remove_if_stale(&e.path(), pid) {
                tracing::debug!(file = %e.path().display(), pid, "removed a temporary file left by a process that is gone");
            }
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.display().to_string(), source }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(StateError::Io { path: "(state worker)".into(), source: std::io::Error::other(e.to_string()) }),
    }
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory
/// (`.<name>.tmp-<pid>-<n>`), fsync, rename, fsync of the directory. The temporary file is
/// removed when a step fails; one left by a killed process is removed when the stack is next
/// locked.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    crate::base::fs::write_atomic(path, bytes).map_err(io_err(path))
}

/// Parse a snapshot and journal (pure: used by every backend).
pub fn parse_state(
    stack: &str,
    snapshot: Option<&[u8]>,
    journal: Option<&[u8]>,
    where_: &str,
) -> Result<StackState, StateError> {
    let mut state = match snapshot {
        None => StackState::empty(stack),
        Some(bytes) => {
            // Read the version first so a future format is reported as such, not as corruption.
            let probe: Value = serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
                stack: stack.into(),
                location: format!("{where_}/state.json"),
                reason: e.to_string(),
            })?;
            let found = probe.get("version").and_then(Value::as_u64).unwrap_or(0) as u32;
            if found > STATE_VERSION {
                return Err(StateError::FutureVersion { stack: stack.into(), found, supported: STATE_VERSION });
            }
            if let Some(other) = probe.get("stack").and_then(Value::as_str).filter(|o| *o != stack) {
                return Err(StateError::Corrupt {
                    stack: stack.into(),
                    location: format!("{where_}/state.json"),
                    reason: format!("the snapshot belongs to stack `{other}`; it was copied or moved here by mistake"),
                });
            }
            serde_json::from_value(probe).map_err(|e| StateError::Corrupt {
                stack: stack.into(),
                location: format!("{where_}/state.json"),
                reason: e.to_string(),
            })?
        }
    };
    if let Some(j) = journal {
        let text = String::from_utf8_lossy(j);
        let complete = text.ends_with('\n');
        let lines: Vec<&str> = text.split('\n').collect();
        let n = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(line) {
                Ok(rec) => state.apply(&rec),
                // A torn final line is a write that was never acknowledged: nothing relied on it.
                Err(_) if i + 1 == n && !complete => {}
                Err(e) => {
                    return Err(StateError::Corrupt {
                        stack: stack.into(),
                        location: format!("{where_}/journal.jsonl line {}", i + 1),
                        reason: e.to_string(),
                    })
                }
            }
        }
    }
    Ok(state)
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

impl LocalBackend {
    async fn append_with(&self, stack: &str, records: &[Record], durable: bool) -> Result<(), StateError> {
        let mut buf = Vec::with_capacity(records.len() * 256);
        for r in records {
            serde_json::to_writer(&mut buf, r)
                .map_err(|e| StateError::Io { path: "journal".into(), source: std::io::Error::other(e) })?;
            buf.push(b'\n');
        }
        let path = self.dir(stack)?.join("journal.jsonl");
        let this = self.clone();
        let stack = stack.to_string();
        blocking(move || {
            let file = this.journal_file(&stack)?;
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(&buf).map_err(io_err(&path))?;
            if durable {
                f.sync_data().map_err(io_err(&path))?;
            }
            Ok(())
        })
        .await
    }

    async fn compact_impl(&self, stack: &str, state: &StackState) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(state)
            .map_err(|e| StateError::Io { path: "state.json".into(), source: std::io::Error::other(e) })?;
        let dir = self.dir(stack)?;
        // The journal is removed below: later appends must open a fresh file.
        self.forget_journal(stack);
        blocking(move || {
            write_atomic(&dir.join("state.json"), &bytes)?;
            let j = dir.join("journal.jsonl");
            match std::fs::remove_file(&j) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err(&j)(e)),
            }
        })
        .await
    }
}

#[async_trait::async_trait]
impl StateBackend for LocalBackend {
    async fn load(&self, stack: &str) -> Result<StackState, StateError> {
        let dir = self.dir(stack)?;
        let stack = stack.to_string();
        blocking(move || {
            let snap = read_opt(&dir.join("state.json"))?;
            let journal = read_opt(&dir.join("journal.jsonl"))?;
            parse_state(&stack, snap.as_deref(), journal.as_deref(), &dir.display().to_string())
        })
        .await
    }

    async fn append(&self, stack: &str, records: &[Record]) -> Result<(), StateError> {
        self.append_with(stack, records, true).await
    }

    async fn append_buffered(&self, stack: &str, records: &[Record]) -> Result<(), StateError> {
        self.append_with(stack, records, false).await
    }

    async fn compact(&self, stack: &str, state: &StackState) -> Result<(), StateError> {
        self.compact_impl(stack, state).await
    }

    async fn lock(&self, stack: &str, info: &LockInfo) -> Result<(), StateError> {
        let dir = self.dir(stack)?;
        let info = info.clone();
        let stack = stack.to_string();
        blocking(move || {
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            let path = dir.join("lock.json");
            // Write the lock under a private name, then link it into place: the link either
            // creates `lock.json` complete or fails because another run holds it — a reader
            // never sees a half-written lock.
            let tmp = dir.join(format!("lock.{}.{}.tmp", std::process::id(), info.id));
            {
                let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
                let bytes = serde_json::to_vec_pretty(&info).unwrap_or_default();
                f.write_all(&bytes).map_err(io_err(&tmp))?;
                f.sync_all().map_err(io_err(&tmp))?;
            }
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    sweep_stale_temp_files(&dir);
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let held: Option<LockInfo> = read_opt(&path)?.and_then(|b| serde_json::from_slice(&b).ok());
                    let held = held.unwrap_or(LockInfo {
                        id: UNREADABLE_LOCK.into(),
                        holder: "unknown (lock file unreadable)".into(),
                        operation: "unknown".into(),
                        since: "unknown".into(),
                    });
                    Err(StateError::Locked {
                        stack,
                        holder: format!("{} ({})", held.holder, held.operation),
                        since: held.since,
                        id: held.id,
                    })
                }
                Err(e) => Err(io_err(&path)(e)),
            }
        })
        .await
    }

    async fn unlock(&self, stack: &str, id: &str) -> Result<(), StateError> {
        self.force_unlock(stack, id).await.map(|_| ())
    }

    async fn force_unlock(&self, stack: &str, id: &str) -> Result<LockInfo, StateError> {
        let path = self.dir(stack)?.join("lock.json");
        let (stack, id) = (stack.to_string(), id.to_string());
        blocking(move || {
            let raw = read_opt(&path)?;
            let held: Option<LockInfo> = raw.as_ref().and_then(|b| serde_json::from_slice(b).ok());
            match held {
                Some(h) if h.id == id => {
                    std::fs::remove_file(&path).map_err(io_err(&path))?;
                    Ok(h)
                }
                // A lock file nobody can read is reported with the id `unreadable` (see `lock`);
                // that id breaks it.
                None if raw.is_some() && id == UNREADABLE_LOCK => {
                    std::fs::remove_file(&path).map_err(io_err(&path))?;
                    Ok(LockInfo {
                        id: UNREADABLE_LOCK.into(),
                        holder: "unknown (lock file unreadable)".into(),
                        operation: "unknown".into(),
                        since: "unknown".into(),
                    })
                }
                Some(h) => Err(StateError::LockMismatch { stack, current: h.id, given: id }),
                None => Err(StateError::LockMismatch { stack, current: "none".into(), given: id }),
            }
        })
        .await
    }

    async fn current_lock(&self, stack: &str) -> Result<Option<LockInfo>, StateError> {
        let path = self.dir(stack)?.join("lock.json");
        blocking(move || Ok(read_opt(&path)?.and_then(|b| serde_json::from_slice(&b).ok()))).await
    }

    async fn stacks(&self) -> Result<Vec<String>, StateError> {
        let dir = self.root.join("stacks");
        blocking(move || {
            let mut out = Vec::new();
            match std::fs::read_dir(&dir) {
                Ok(rd) => {
                    for e in rd.flatten() {
                        if e.path().is_dir() {
                            out.push(e.file_name().to_string_lossy().into_owned());
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&dir)(e)),
            }
            out.sort();
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::ResourceKind;
    use crate::kinds::Vpc;

    fn res(id: &str) -> ResourceState {
        ResourceState {
            kind: Vpc::KIND,
            provider: "sim".into(),
            id: id.into(),
            generation: 0,
            inputs: BTreeMap::new(),
            attrs: BTreeMap::new(),
            deps: vec![],
            sealed: BTreeMap::new(),
        }
    }

    fn intent(path: &str) -> PendingOp {
        PendingOp {
            op: OpKind::Create,
            path: path.into(),
            kind: Vpc::KIND,
            provider: "sim".into(),
            id: None,
            generation: 0,
            tags: BTreeMap::new(),
            deps: vec![],
            inputs: BTreeMap::new(),
            at: 0,
            sealed: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn journal_replays_and_compacts() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(|e| StateError::Io { path: "tmp".into(), source: e })?;
        let b = LocalBackend::new(dir.path());
        b.append("s", &[Record::Intent(intent("a")), Record::Put { path: "a".into(), resource: res("vpc-1") }]).await?;
        b.append("s", &[Record::Intent(intent("b"))]).await?;
        let st = b.load("s").await?;
        assert_eq!(st.resources.len(), 1);
        assert_eq!(st.pending.len(), 1, "b's create has no result");
        assert_eq!(st.pending[0].path, "b");
        b.compact("s", &st).await?;
        assert_eq!(b.load("s").await?, st);
        Ok(())
    }

    #[test]
    fn torn_last_line_is_ignored_but_corrupt_middle_is_reported() {
        let good = serde_json::to_string(&Record::Put { path: "a".into(), resource: res("vpc-1") }).unwrap_or_default();
        let torn = format!("{good}\n{{\"record\":\"put\",\"pa");
        let st = parse_state("s", None, Some(torn.as_bytes()), "x");
        assert!(matches!(st, Ok(ref s) if s.resources.len() == 1));
        let bad = format!("garbage\n{good}\n");
        assert!(matches!(parse_state("s", None, Some(bad.as_bytes()), "x"), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn future_version_is_refused() {
        let snap = br#"{"version": 99, "stack": "s", "serial": 1, "resources": {}}"#;
        assert!(matches!(parse_state("s", Some(snap), None, "x"), Err(StateError::FutureVersion { found: 99, .. })));
    }

    /// Names that must never become a path: every method refuses them with `InvalidStackName`
    /// and nothing is created anywhere under (or beside) the root.
    #[tokio::test]
    async fn every_method_refuses_a_name_that_is_not_a_stack_name() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(|e| StateError::Io { path: "tmp".into(), source: e })?;
        let root = dir.path().join("state");
        let b = LocalBackend::new(&root);
        let long = "a".repeat(200);
        let hostile = [
            "../x",
            "../../../../tmp/x",
            "a/b",
            "/abs",
            ".",
            "..",
            "",
            "a\0b",
            "a\nb",
            "a\\b",
            long.as_str(),
            "web.",
            "web ",
            "con",
            "com1",
            "w\u{0435}b",
            "Web",
            "-web",
        ];
        for name in hostile {
            let refused = |r: Result<(), StateError>| match r {
                Err(StateError::InvalidStackName { name: n, .. }) => n == name,
                _ => false,
            };
            let info = LockInfo::for_this_process("apply");
            assert!(refused(b.load(name).await.map(|_| ())), "load {name:?}");
            assert!(refused(b.append(name, &[Record::Intent(intent("a"))]).await), "append {name:?}");
            assert!(refused(b.append_buffered(name, &[Record::Intent(intent("a"))]).await), "append_buffered {name:?}");
            assert!(refused(b.compact(name, &StackState::empty(name)).await), "compact {name:?}");
            assert!(refused(b.lock(name, &info).await), "lock {name:?}");
            assert!(refused(b.unlock(name, &info.id).await), "unlock {name:?}");
            assert!(refused(b.force_unlock(name, &info.id).await.map(|_| ())), "force_unlock {name:?}");
            assert!(refused(b.current_lock(name).await.map(|_| ())), "current_lock {name:?}");
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).map_err(io_err(dir.path()))?.collect();
        assert!(left.is_empty(), "nothing was created: {left:?}");
        let msg = check_stack_name("../x").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("`../x`") && msg.contains("`.`") && msg.contains("a-z, 0-9"), "{msg}");
        Ok(())
    }

    /// Temporary files of a killed process are removed when the stack is next locked; those of
    /// a process still running are kept.
    #[tokio::test]
    async fn locking_removes_temporary_files_of_dead_processes() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(|e| StateError::Io { path: "tmp".into(), source: e })?;
        let b = LocalBackend::new(dir.path());
        let stack_dir = b.dir("s")?;
        std::fs::create_dir_all(&stack_dir).map_err(io_err(&stack_dir))?;
        let dead = u32::MAX - 1;
        let me = std::process::id();
        let names = [
            format!(".state.json.tmp-{dead}-3"),
            format!("state.tmp{dead}"),
            format!("lock.{dead}.0123456789abcdef.tmp"),
            format!(".state.json.tmp-{me}-3"),
            format!("lock.{me}.0123456789abcdef.tmp"),
        ];
        for n in &names {
            std::fs::write(stack_dir.join(n), b"half").map_err(io_err(&stack_dir))?;
        }
        let info = LockInfo::for_this_process("apply");
        b.lock("s", &info).await?;
        let gone = |n: &String| !stack_dir.join(n).exists();
        if Path::new("/proc/self").exists() {
            assert!(names[..3].iter().all(gone), "dead writers' files are removed");
        }
        assert!(!names[3..].iter().any(gone), "a running process's files are kept");
        b.unlock("s", &info.id).await
    }

    #[tokio::test]
    async fn second_lock_fails_with_holder_and_force_unlock_needs_the_id() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(|e| StateError::Io { path: "tmp".into(), source: e })?;
        let b = LocalBackend::new(dir.path());
        let a = LockInfo::for_this_process("apply");
        b.lock("s", &a).await?;
        let err = b.lock("s", &LockInfo::for_this_process("apply")).await;
        match err {
            Err(StateError::Locked { id, holder, .. }) => {
                assert_eq!(id, a.id);
                assert!(holder.contains("pid"));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(matches!(b.force_unlock("s", "wrong").await, Err(StateError::LockMismatch { .. })));
        b.force_unlock("s", &a.id).await?;
        b.lock("s", &LockInfo::for_this_process("apply")).await?;
        Ok(())
    }
}

/// State kept in memory only: for tests and for embedders that persist elsewhere.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    inner: std::sync::Mutex<BTreeMap<String, MemStack>>,
}

#[derive(Debug, Default, Clone)]
struct MemStack {
    snapshot: Option<StackState>,
    journal: Vec<Record>,
    lock: Option<LockInfo>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, stack: &str, f: impl FnOnce(&mut MemStack) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(g.entry(stack.to_string()).or_default())
    }

    /// Number of journal records not yet compacted.
    pub fn journal_len(&self, stack: &str) -> usize {
        self.with(stack, |s| s.journal.len())
    }
}

#[async_trait::async_trait]
impl StateBackend for MemoryBackend {
    async fn load(&self, stack: &str) -> Result<StackState, StateError> {
        Ok(self.with(stack, |s| {
            let mut st = s.snapshot.clone().unwrap_or_else(|| StackState::empty(stack));
            for r in &s.journal {
                st.apply(r);
            }
            st
        }))
    }
    async fn append(&self, stack: &str, records: &[Record]) -> Result<(), StateError> {
        self.with(stack, |s| s.journal.extend_from_slice(records));
        Ok(())
    }
    async fn compact(&self, stack: &str, state: &StackState) -> Result<(), StateError> {
        self.with(stack, |s| {
            s.snapshot = Some(state.clone());
            s.journal.clear();
        });
        Ok(())
    }
    async fn lock(&self, stack: &str, info: &LockInfo) -> Result<(), StateError> {
        self.with(stack, |s| match &s.lock {
            Some(h) => Err(StateError::Locked {
                stack: stack.to_string(),
                holder: format!("{} ({})", h.holder, h.operation),
                since: h.since.clone(),
                id: h.id.clone(),
            }),
            None => {
                s.lock = Some(info.clone());
                Ok(())
            }
        })
    }
    async fn unlock(&self, stack: &str, id: &str) -> Result<(), StateError> {
        self.force_unlock(stack, id).await.map(|_| ())
    }
    async fn force_unlock(&self, stack: &str, id: &str) -> Result<LockInfo, StateError> {
        self.with(stack, |s| match s.lock.take() {
            Some(h) if h.id == id => Ok(h),
            Some(h) => {
                let current = h.id.clone();
                s.lock = Some(h);
                Err(StateError::LockMismatch { stack: stack.into(), current, given: id.into() })
            }
            None => Err(StateError::LockMismatch { stack: stack.into(), current: "none".into(), given: id.into() }),
        })
    }
    async fn current_lock(&self, stack: &str) -> Result<Option<LockInfo>, StateError> {
        Ok(self.with(stack, |s| s.lock.clone()))
    }
    async fn stacks(&self) -> Result<Vec<String>, StateError> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(g.iter().filter(|(_, s)| s.snapshot.is_some() || !s.journal.is_empty()).map(|(k, _)| k.clone()).collect())
    }
}
