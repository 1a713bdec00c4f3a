//! The local directory backend: `stacks/<stack>/state.json`, `journal.jsonl` and `lock.json`
//! under one root, with stack names checked before any path is built.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::base::error::StateError;

use super::{LockInfo, Record, StackState, StateBackend, STATE_VERSION, UNREADABLE_LOCK};

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

/// The two fields of a snapshot that did not decode, read to say why (any JSON type: a wrong
/// one is reported as the decode's error).
#[derive(serde::Deserialize)]
struct Probe {
    version: Option<Value>,
    stack: Option<Value>,
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
            // One pass straight into the types (a JSON tree first would cost twice the time and
            // memory). Only when that fails is the version read on its own, so a future format
            // is reported as such, not as corruption.
            let corrupt = |reason: String| StateError::Corrupt {
                stack: stack.into(),
                location: format!("{where_}/state.json"),
                reason,
            };
            let (found, owner, decoded) = match serde_json::from_slice::<StackState>(bytes) {
                Ok(st) => (st.version, Some(st.stack.clone()), Ok(st)),
                Err(e) => {
                    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
                    let found = probe.version.as_ref().and_then(Value::as_u64).unwrap_or(0) as u32;
                    let owner = probe.stack.as_ref().and_then(Value::as_str).map(str::to_string);
                    (found, owner, Err(e))
                }
            };
            if found > STATE_VERSION {
                return Err(StateError::FutureVersion { stack: stack.into(), found, supported: STATE_VERSION });
            }
            if let Some(other) = owner.filter(|o| o != stack) {
                return Err(corrupt(format!(
                    "the snapshot belongs to stack `{other}`; it was copied or moved here by mistake"
                )));
            }
            // An older format was converted as it was read (format 1 kept attributes in full):
            // what is written from here on is this build's format.
            let mut st = decoded.map_err(|e| corrupt(e.to_string()))?;
            st.version = STATE_VERSION;
            st
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
                Ok(rec) => state.apply_owned(rec),
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
        let dir = self.dir(stack)?;
        // The journal is removed below: later appends must open a fresh file.
        self.forget_journal(stack);
        // Streamed to the file: a snapshot of 100,000 resources is tens of MB, which a copy in
        // memory would add to the run's peak. The state is borrowed, so the write happens on
        // this thread, handed over to the runtime as blocking where the runtime allows it.
        let write = || {
            let path = dir.join("state.json");
            crate::base::fs::write_atomic_with(&path, |w| {
                serde_json::to_writer(w, state).map_err(std::io::Error::other)
            })
            .map_err(io_err(&path))?;
            let j = dir.join("journal.jsonl");
            match std::fs::remove_file(&j) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err(&j)(e)),
            }
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(write),
            _ => write(),
        }
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
    use crate::state::{OpKind, PendingOp, ResourceState};

    fn res(id: &str) -> ResourceState {
        ResourceState::new(Vpc::KIND, "sim", id, BTreeMap::new(), BTreeMap::new())
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_snapshot_is_decoded_in_one_pass_and_still_refused_when_foreign_or_future() {
        let mut st = StackState::empty("web");
        st.resources.insert("vpc".into(), res("vpc-1"));
        let bytes = serde_json::to_vec(&st).unwrap();
        assert_eq!(parse_state("web", Some(&bytes), None, "dir").unwrap(), st);
        // Another stack's snapshot.
        let e = parse_state("api", Some(&bytes), None, "dir").unwrap_err();
        assert!(e.to_string().contains("belongs to stack `web`"), "{e}");
        // A future version is reported as such, whether this build can decode its shape or not.
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v["version"] = 99.into();
        let decodable = serde_json::to_vec(&v).unwrap();
        v["resources"] = "a shape this build does not know".into();
        let undecodable = serde_json::to_vec(&v).unwrap();
        for b in [decodable, undecodable] {
            let e = parse_state("web", Some(&b), None, "dir").unwrap_err();
            assert!(matches!(e, StateError::FutureVersion { found: 99, .. }), "{e}");
        }
        // A damaged current one is corrupt.
        let e = parse_state("web", Some(&bytes[..bytes.len() / 2]), None, "dir").unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
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
            release: None,
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

    /// A snapshot of format 1 (attributes in full) reads as the same resources, and is written
    /// back in this build's format with only the difference.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn format_1_snapshot_reads_and_is_written_as_format_2() {
        let v1 = br#"{"version":1,"stack":"s","serial":3,"resources":{"net":{"kind":"vpc","provider":"sim","id":"vpc-1",
            "inputs":{"cidr":"10.0.0.0/16","name":"s-net"},"attrs":{"cidr":"10.0.0.0/16","id":"vpc-1","name":"s-net"},"deps":[]}},
            "deposed":[],"pending":[],"outputs":{}}"#;
        let st = parse_state("s", Some(v1), None, "dir").unwrap();
        let net = &st.resources["net"];
        assert_eq!(net.attr("id"), Some(&Value::String("vpc-1".into())));
        assert_eq!(net.attr("name"), Some(&Value::String("s-net".into())));
        let written = serde_json::to_value(&st).unwrap();
        assert_eq!(written["version"], STATE_VERSION);
        assert_eq!(written["resources"]["net"]["attrs_delta"], serde_json::json!({"id": "vpc-1"}));
        assert!(written["resources"]["net"].get("attrs").is_none());
        assert_eq!(parse_state("s", Some(&serde_json::to_vec(&st).unwrap()), None, "dir").unwrap(), st);
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
