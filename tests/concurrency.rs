//! Concurrency: two applies of one stack at once. Exactly one proceeds; the other fails at once
//! with a lock error naming the holder, since when it holds the lock, and the lock id. A stale
//! lock left by a dead process is broken by `force-unlock <id>`, and only by that id.
//!
//! The binary runs against the simulated cloud with `--sim-latency-ms 200`, so the winner's apply
//! takes over a second and the two runs really overlap. The same race is also run in-process,
//! with two engines over one local state directory and over one in-memory backend.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use konstacks::core::engine::{ApplyOptions, Engine};
use konstacks::core::error::{Error, StateError};
use konstacks::core::model::*;
use konstacks::core::sim::{SimCloud, SimConfig};
use konstacks::core::state::{LocalBackend, LockInfo, MemoryBackend, StateBackend};
use serde_json::Value;

const STACK: &str = "web-app-dev";

fn konstacks(cwd: &Path, state: &Path, latency_ms: u64, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_konstacks"));
    c.current_dir(cwd)
        .arg("--state-dir")
        .arg(state)
        .args(["--sim-latency-ms", &latency_ms.to_string(), "--no-color"])
        .args(args)
        .env_remove("KONSTACKS_SECRET_KEY")
        .env_remove("KONSTACKS_CRASH_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

struct Done {
    code: i32,
    stdout: String,
    stderr: String,
    /// When it ended, counted from the start of the race.
    at: Duration,
}

impl std::fmt::Debug for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {} after {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.at, self.stdout, self.stderr)
    }
}

fn finish(child: Child, at: Duration) -> Done {
    let out = child.wait_with_output().unwrap();
    Done {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        at,
    }
}

fn lock_path(state: &Path) -> PathBuf {
    state.join("stacks").join(STACK).join("lock.json")
}

/// Start two applies (the second `stagger` after the first), watch the lock file while they run,
/// and return both outcomes with every lock id seen.
fn race(stagger: Duration) -> (Done, Done, BTreeSet<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let t0 = Instant::now();
    let mut a = Some(konstacks(dir.path(), &state, 200, &["apply", "--yes"]).spawn().unwrap());
    if !stagger.is_zero() {
        std::thread::sleep(stagger);
    }
    let mut b = Some(konstacks(dir.path(), &state, 200, &["apply", "--yes"]).spawn().unwrap());
    let mut seen = BTreeSet::new();
    let (mut da, mut db) = (None, None);
    while da.is_none() || db.is_none() {
        if let Ok(bytes) = std::fs::read(lock_path(&state)) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                if let Some(id) = v["id"].as_str() {
                    seen.insert(id.to_string());
                }
            }
        }
        for (slot, done) in [(&mut a, &mut da), (&mut b, &mut db)] {
            if let Some(c) = slot.as_mut() {
                if c.try_wait().unwrap().is_some() {
                    *done = Some(finish(slot.take().unwrap(), t0.elapsed()));
                }
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "the applies did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    (da.unwrap(), db.unwrap(), seen, dir)
}

/// The resources of the stack in the simulated cloud's file.
fn cloud(state: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(state.join("sim-cloud.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    file["resources"].as_array().unwrap().iter().filter(|r| r["tags"]["konstacks:stack"] == STACK).cloned().collect()
}

/// Race two applies; check that exactly one proceeded, the other failed at once with a lock
/// error and changed nothing, and that nothing is duplicated. Returns what the loser printed and
/// the lock ids seen on disk.
fn check_race(stagger: Duration) -> (Done, BTreeSet<String>) {
    let (a, b, seen, dir) = race(stagger);
    let state = dir.path().join("state");
    let (winner, loser) = match (a.code, b.code) {
        (0, 4) => (a, b),
        (4, 0) => (b, a),
        _ => panic!("exactly one apply must succeed and the other exit 4:\n{a:?}\n{b:?}"),
    };
    assert!(winner.stdout.contains("Apply complete: 9 created"), "{winner:?}");

    // The loser failed at once: while the winner was still applying, well before it finished.
    assert!(loser.at < winner.at, "the loser must not wait for the lock:\n{loser:?}\n{winner:?}");
    assert!(loser.at < Duration::from_secs(10), "{loser:?}");
    assert_eq!(loser.stderr.matches("error:").count(), 1, "{loser:?}");
    assert!(loser.stderr.contains("stack `web-app-dev` is locked by"), "{loser:?}");
    assert!(loser.stderr.contains("konstacks force-unlock "), "{loser:?}");
    // The loser started nothing: no progress, no report.
    assert!(!loser.stdout.contains("Apply complete") && !loser.stderr.contains("created"), "{loser:?}");

    // Nothing duplicated, nothing left over: one stack's worth of resources, state agrees, no lock.
    let resources = cloud(&state);
    assert_eq!(resources.len(), 9, "{resources:#?}");
    let names: BTreeSet<&str> = resources.iter().map(|r| r["tags"]["Name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 9, "duplicate physical names: {names:?}");
    assert!(!lock_path(&state).exists(), "the winner released its lock");
    let out = konstacks(dir.path(), &state, 0, &["plan"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let out = konstacks(dir.path(), &state, 0, &["--json", "state", "list"]).output().unwrap();
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let state_ids: BTreeSet<&str> = listed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let cloud_ids: BTreeSet<&str> = resources.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(state_ids, cloud_ids);
    (loser, seen)
}

/// The loser's lock error names the holder (a process), since when (RFC 3339) and the id of the
/// lock the winner held.
fn names_holder_since_and_id(loser: &Done, seen: &BTreeSet<String>) -> Result<(), String> {
    let msg = &loser.stderr;
    let holder = msg.split(" is locked by ").nth(1).and_then(|s| s.split(" since ").next()).unwrap_or_default();
    let since = msg.split(" since ").nth(1).and_then(|s| s.split(' ').next()).unwrap_or_default();
    let id = msg.split("(lock id ").nth(1).and_then(|s| s.split(')').next()).unwrap_or_default();
    let ok = holder.contains(" pid ")
        && since.len() >= 20
        && since.ends_with('Z')
        && since.contains('T')
        && id.len() == 16
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && msg.contains(&format!("konstacks force-unlock {id}"))
        && seen.contains(id);
    if ok {
        Ok(())
    } else {
        Err(format!("the lock error must name holder, since and the winner's id ({seen:?}):\n{loser:?}"))
    }
}

/// One test, so the races do not compete for the machine with each other.
#[test]
fn two_applies_on_one_stack_one_proceeds_the_other_fails_at_once() {
    // Started together: both may pass the early lock check; the state lock decides. The lock
    // error is not checked for naming the holder here: now and then the loser reads `lock.json`
    // between its creation and its content and reports `unknown (lock file unreadable)` (a bug,
    // reproduced reliably by `two_lock_attempts_at_once_name_the_holder`).
    for _ in 0..3 {
        check_race(Duration::ZERO);
    }
    // Started while the first already holds the lock: the lock error names who holds it.
    let (loser, seen) = check_race(Duration::from_millis(500));
    names_holder_since_and_id(&loser, &seen).unwrap();
}

#[test]
fn a_stale_lock_is_broken_by_its_id_and_only_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let run = |args: &[&str]| {
        let out = konstacks(dir.path(), &state, 0, args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&["apply", "--yes"]);
    assert_eq!(code, 0, "{err}");

    // A run on another machine died holding the lock.
    let id = "0badc0de0badc0de";
    let lock = serde_json::json!({
        "id": id, "holder": "ci@runner-7 pid 999999", "operation": "apply", "since": "2021-03-04T05:06:07Z"
    });
    std::fs::write(lock_path(&state), serde_json::to_vec_pretty(&lock).unwrap()).unwrap();
    let snapshot = || -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut todo = vec![state.clone()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.path().is_dir() {
                    todo.push(e.path());
                } else {
                    out.insert(e.path(), std::fs::read(e.path()).unwrap());
                }
            }
        }
        out
    };
    let before = snapshot();
    std::fs::write(dir.path().join("big.toml"), "vm_size = \"large\"\n").unwrap();

    // Every run that changes things fails at once, naming holder, since and id; nothing changes.
    for args in [&["apply", "--yes", "--params", "big.toml"][..], &["destroy", "--yes"], &["refresh"]] {
        let t = Instant::now();
        let (code, _, err) = run(args);
        assert_eq!(code, 4, "{args:?}: {err}");
        assert!(t.elapsed() < Duration::from_secs(5), "at once");
        for part in [
            "ci@runner-7 pid 999999",
            "since 2021-03-04T05:06:07Z",
            "lock id 0badc0de0badc0de",
            "konstacks force-unlock 0badc0de0badc0de",
        ] {
            assert!(err.contains(part), "{args:?} lacks `{part}`: {err}");
        }
        assert_eq!(snapshot(), before, "{args:?} changed state");
    }
    let (code, out, _) = run(&["--json", "apply", "--yes"]);
    assert_eq!(code, 4);
    let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["error"]["exit_code"], 4, "{out}");
    assert_eq!(last["error"]["details"]["lock_id"], id, "{out}");

    // A wrong id changes nothing.
    for wrong in ["0badc0de0badc0df", "", "unreadable", "none"] {
        let (code, _, err) = run(&["force-unlock", wrong]);
        assert_eq!(code, 1, "force-unlock `{wrong}`: {err}");
        assert!(err.contains("mismatch") && err.contains(id) && err.contains("nothing was unlocked"), "{err}");
        assert_eq!(snapshot(), before, "force-unlock `{wrong}` changed state");
    }

    // The right id breaks it and says whose it was.
    let (code, out, err) = run(&["force-unlock", id]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(id) && out.contains("ci@runner-7 pid 999999") && out.contains("2021-03-04T05:06:07Z"),
        "{out}"
    );
    assert!(!lock_path(&state).exists());
    let (code, _, err) = run(&["force-unlock", id]);
    assert_eq!(code, 1, "a second force-unlock finds no lock: {err}");

    // The stack is usable again.
    let (code, out, err) = run(&["apply", "--yes", "--params", "big.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 updated"), "{out}");
    let (code, _, _) = run(&["plan", "--params", "big.toml"]);
    assert_eq!(code, 0);
}

// ---------------------------------------------------------------------------------------------
// In-process: two engines, one state

fn small_stack() -> Stack {
    let stack = Stack::new("race", Placement::region("eu-west"), Stage::Dev);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let sn = stack.add("sn", Subnet::new(vpc, "10.0.1.0/24"));
    let fw = stack.add("fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
    stack.add("vm", Vm::new(Image::UbuntuLts, VmSize::Small, sn).firewall(fw));
    stack
}

/// Two engines apply one stack through `a` and `b`; the second starts at once, or once the
/// first holds the lock. Returns the loser's error and checks everything else.
async fn race_engines(a: Arc<dyn StateBackend>, b: Arc<dyn StateBackend>, together: bool) -> StateError {
    let sim = Arc::new(SimCloud::new(SimConfig { latency: Duration::from_millis(200), ..Default::default() }));
    let ea = Engine::new(a).with_provider(sim.provider()).with_sealer(None);
    let eb = Engine::new(b.clone()).with_provider(sim.provider()).with_sealer(None);
    let sa = ea.synth(&small_stack()).unwrap();
    let sb = eb.synth(&small_stack()).unwrap();
    let t0 = tokio::time::Instant::now();
    let opts = ApplyOptions::default();
    let fa = async {
        let r = ea.apply(&sa, &opts).await;
        (r, t0.elapsed())
    };
    let fb = async {
        while !together && b.current_lock("race").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let r = eb.apply(&sb, &opts).await;
        (r, t0.elapsed())
    };
    let ((ra, ta), (rb, tb)) = tokio::join!(fa, fb);
    let (ok, (err, t_err), t_ok) = match (ra, rb) {
        (Ok(r), Err(e)) => (r, (e, tb), ta),
        (Err(e), Ok(r)) => (r, (e, ta), tb),
        (a, b) => panic!("exactly one apply must proceed: {a:?} / {b:?}"),
    };
    assert_eq!(ok.created.len(), 4);
    assert!(err.to_string().contains("force-unlock"), "{err}");
    let Error::State(err @ StateError::Locked { .. }) = err else { panic!("{err}") };
    assert!(t_err < t_ok && t_err < Duration::from_millis(200), "the loser fails before any cloud call: {t_err:?}");
    assert_eq!(sim.resources_of_stack("race").len(), 4, "no duplicates");
    assert!(b.current_lock("race").await.unwrap().is_none(), "released");
    let st = b.load("race").await.unwrap();
    assert_eq!(st.resources.len(), 4);
    err
}

/// The lock error names a real holder (a process), since when, and the lock id.
fn names_the_holder(err: &StateError) -> Result<(), String> {
    match err {
        StateError::Locked { holder, since, id, .. }
            if holder.contains(" pid ")
                && holder.ends_with("(apply)")
                && since.ends_with('Z')
                && id.len() == 16
                && id.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(())
        }
        other => Err(other.to_string()),
    }
}

#[tokio::test(start_paused = true)]
async fn an_engine_started_while_another_holds_the_local_lock_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let a: Arc<dyn StateBackend> = Arc::new(LocalBackend::new(dir.path()));
    let b: Arc<dyn StateBackend> = Arc::new(LocalBackend::new(dir.path()));
    let err = race_engines(a, b, false).await;
    names_the_holder(&err).unwrap();
}

/// Minimal reproduction: `LocalBackend::lock` creates `lock.json` empty (`create_new`) and only
/// then writes who holds it. A second `lock` in between reads an empty file and reports the lock
/// as held by `unknown (lock file unreadable)` since `unknown` with id `unreadable`, instead of
/// the holder, the time and the id. Two lock attempts at once, repeated, hit that window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lock_attempts_at_once_name_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let a = LocalBackend::new(dir.path());
    let b = LocalBackend::new(dir.path());
    let mut wrong = Vec::new();
    for _ in 0..1000 {
        let (la, lb) = (LockInfo::for_this_process("apply"), LockInfo::for_this_process("apply"));
        let (ra, rb) = tokio::join!(a.lock("race", &la), b.lock("race", &lb));
        let (winner, err) = match (ra, rb) {
            (Ok(()), Err(e)) => (la, e),
            (Err(e), Ok(())) => (lb, e),
            (ra, rb) => panic!("exactly one lock attempt must win: {ra:?} / {rb:?}"),
        };
        match &err {
            StateError::Locked { id, holder, .. } if *id == winner.id && holder.contains(&winner.holder) => {}
            _ => wrong.push(err.to_string()),
        }
        a.unlock("race", &winner.id).await.unwrap();
    }
    assert!(wrong.is_empty(), "{} of 1000 lock errors did not name the holder, e.g.: {}", wrong.len(), wrong[0]);
}

#[tokio::test(start_paused = true)]
async fn two_engines_over_one_memory_backend() {
    for together in [true, false] {
        let m = Arc::new(MemoryBackend::new());
        let err = race_engines(m.clone(), m, together).await;
        names_the_holder(&err).unwrap();
    }
}
