//! A `konstacks dashboard` child process for browser tests: started on a free loopback port
//! with its own state directory, its login URL read from the one line it prints, killed when
//! the guard drops (also when the test panics). Include with
//! `#[path = "support/dashboard_process.rs"] mod dashboard_process;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the dashboard may take to print its login URL.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The prefix of the line the dashboard prints on start.
const ANNOUNCE: &str = "dashboard: ";

/// A running dashboard; dropping it kills the process.
pub struct Dashboard {
    child: Child,
    /// The login URL with the generated token (never printed by the tests).
    pub login_url: String,
    /// `http://127.0.0.1:PORT` without a trailing slash.
    pub base: String,
    /// The temporary working directory that holds the state directory.
    dir: tempfile::TempDir,
}

impl Dashboard {
    /// Start `konstacks --state-dir <tmp>/state --sim-latency-ms <latency> dashboard --listen
    /// 127.0.0.1:0` without a preset token, and wait for its login URL.
    pub fn start(sim_latency_ms: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let mut child = Command::new(env!("CARGO_BIN_EXE_konstacks"))
            .current_dir(dir.path())
            .env_remove("KONSTACKS_SECRET_KEY")
            .env_remove("KONSTACKS_DASHBOARD_TOKEN")
            .env_remove("KONSTACKS_DASHBOARD_TOKEN_LABEL")
            .arg("--state-dir")
            .arg(&state_dir)
            .args(["--sim-latency-ms", &sim_latency_ms.to_string()])
            .args(["dashboard", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the konstacks binary: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keep draining stdout for the life of the process so it never blocks on a full pipe;
        // echo every line but the one carrying the token.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with(ANNOUNCE) {
                    let _ = tx.send(line);
                } else {
                    println!("[dashboard] {line}");
                }
            }
        });
        let mut guard = Self { child, login_url: String::new(), base: String::new(), dir };
        let deadline = Instant::now() + START_TIMEOUT;
        let line = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => break line,
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = guard.child.try_wait() {
                        panic!("the dashboard exited before printing its URL: {status}");
                    }
                }
                Err(e) => panic!("the dashboard printed no `{ANNOUNCE}` line in {START_TIMEOUT:?}: {e}"),
            }
        };
        let url = line[ANNOUNCE.len()..].split_whitespace().next().unwrap_or_default().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "not a loopback URL on the announce line: {url:?}");
        assert!(url.contains("/login?token="), "the announce line carries no login URL (a token was generated)");
        let after_scheme = &url["http://".len()..];
        let host_end = after_scheme.find('/').unwrap_or(after_scheme.len());
        guard.base = format!("http://{}", &after_scheme[..host_end]);
        assert!(!guard.base.ends_with(":0"), "the real port was not printed: {}", guard.base);
        guard.login_url = url;
        println!("dashboard at {}", guard.base);
        guard
    }

    /// The state directory the dashboard reads and writes.
    pub fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    /// The working directory of the process.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An absolute URL for `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
