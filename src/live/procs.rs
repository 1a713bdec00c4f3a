//! Child processes of the live runtime: each one in its own process group, its output in a log
//! file, reaped by a task that records how it ended, and stopped by signalling the whole group
//! (a polite signal, then `SIGKILL` after a grace period) so nothing it forked outlives it.
//!
//! This module owns starting, watching and stopping processes; what they run (apps, database
//! and cache servers) is decided by its callers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::process::Command;
use tokio::sync::watch;

/// How a process is asked to stop first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopSignal {
    /// `SIGTERM` (apps, Redis).
    Term,
    /// `SIGINT` (PostgreSQL's fast shutdown).
    Int,
}

/// A started process.
#[derive(Debug, Clone)]
pub(crate) struct Proc {
    /// What it is, for messages (`app of VM web-1 (vm-3)`).
    pub(crate) what: String,
    /// Its pid, which is also its process group id.
    pub(crate) pid: u32,
    /// Where its stdout and stderr go.
    pub(crate) log: PathBuf,
    /// How it ended, once it has (`exit status: 1`).
    exit: Arc<Mutex<Option<String>>>,
    /// True once it has been reaped.
    reaped: watch::Receiver<bool>,
}

impl Proc {
    /// Start `cmd` in a process group of its own, stdin closed, output appended to `log`.
    /// Must be called inside the tokio runtime (the reaper is a task on it).
    pub(crate) fn spawn(what: impl Into<String>, mut cmd: Command, log: &Path) -> Result<Self, String> {
        let what = what.into();
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open the log file {} of the {what}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("cannot open the log file {}: {e}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0).kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start the {what}: {e}"))?;
        let pid = child.id().ok_or_else(|| format!("the {what} exited before it could be watched"))?;
        let exit = Arc::new(Mutex::new(None));
        let (tx, reaped) = watch::channel(false);
        let record = exit.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            if let Ok(mut e) = record.lock() {
                *e = Some(match status {
                    Ok(s) => describe(s),
                    Err(e) => format!("could not be waited for: {e}"),
                });
            }
            let _ = tx.send(true);
        });
        Ok(Self { what, pid, log: log.to_path_buf(), exit, reaped })
    }

    /// How it ended, or `None` while it runs.
    pub(crate) fn exited(&self) -> Option<String> {
        self.exit.lock().ok().and_then(|e| e.clone())
    }

    /// Signal its group with `first`, wait up to `grace` for it to end, then `SIGKILL` the
    /// group; returns once it is reaped (or after a last short wait). Whatever else the group
    /// still holds is killed too.
    pub(crate) async fn stop(&self, first: StopSignal, grace: Duration) {
        let sig = match first {
            StopSignal::Term => Signal::TERM,
            StopSignal::Int => Signal::INT,
        };
        self.signal_group(sig);
        let mut reaped = self.reaped.clone();
        let done = tokio::time::timeout(grace, reaped.wait_for(|r| *r)).await.is_ok();
        // Even when the leader ended, children it left in the group must not outlive it.
        self.signal_group(Signal::KILL);
        if !done {
            let _ = tokio::time::timeout(Duration::from_secs(5), reaped.wait_for(|r| *r)).await;
        }
        // Members the leader left behind were re-parented when it ended; they are gone only once
        // their new parent reaped them. Wait for that (bounded), so "stopped" means gone.
        let gone = async {
            while self.group_alive() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), gone).await;
    }

    /// Whether any process of its group still exists.
    fn group_alive(&self) -> bool {
        i32::try_from(self.pid)
            .ok()
            .and_then(Pid::from_raw)
            .is_some_and(|pgid| rustix::process::test_kill_process_group(pgid).is_ok())
    }

    fn signal_group(&self, sig: Signal) {
        if let Some(pgid) = i32::try_from(self.pid).ok().and_then(Pid::from_raw) {
            // ESRCH: the group is already gone, which is what we want.
            let _ = kill_process_group(pgid, sig);
        }
    }

    /// The last `lines` lines of its log, for evidence.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

/// The last `lines` lines of a text file (empty when it cannot be read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn describe(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended".to_string(),
    }
}
