//! Ctrl-C and SIGTERM during an apply, through the real binary: the run starts nothing new, lets
//! the operations in flight finish, releases the lock and exits with code 130; the next apply
//! finishes the work without duplicating anything, and the plan after it is empty.
#![cfg(all(feature = "cli", unix))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const STACK: &str = "web-app-dev";

fn konstacks(state_dir: &Path, latency_ms: u64, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_konstacks"));
    c.arg("--state-dir")
        .arg(state_dir)
        .args(["--sim-latency-ms", &latency_ms.to_string()])
        .args(args)
        .env_remove("KONSTACKS_SECRET_KEY")
        .stdin(Stdio::null());
    c
}

/// Wait for the child to exit, at most `limit`; kill it and fail otherwise.
fn wait(child: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the interrupted run did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start a slow apply, send `signal` once the first resource is created, and check the run.
fn interrupt_with(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".konstacks");
    let mut child = konstacks(&state, 400, &["--json", "apply", "--template", "web-app", "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    // Wait for the first success, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        let v = rx.recv_timeout(Duration::from_secs(60)).expect("no progress event from the apply");
        let done = v["kind"]["type"] == "succeeded" || v.to_string().contains("\"succeeded\"");
        lines.push(v);
        if done || Instant::now() > deadline {
            break;
        }
    }
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let code = wait(&mut child, Duration::from_secs(60));
    reader.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    lines.extend(rx.try_iter());
    assert_eq!(code, 130, "exit code of an interrupted apply\n{stderr}");
    assert!(stderr.contains("Interrupted"), "{stderr}");
    let error = lines.iter().find(|l| l.get("error").is_some()).expect("a JSON error line");
    assert_eq!(error["error"]["exit_code"], 130, "{error}");
    let details = &error["error"]["details"];
    assert_eq!(details["cancelled"], true, "{details}");
    assert!(!details["skipped"].as_array().unwrap().is_empty(), "work was left for the next run: {details}");

    // The lock was released, and no temporary lock file was left behind.
    let stack_dir = state.join("stacks").join(STACK);
    let leftovers: Vec<String> = std::fs::read_dir(&stack_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lock"))
        .collect();
    assert!(leftovers.is_empty(), "lock files left: {leftovers:?}");

    // The next apply finishes the work; the plan after it is empty; the cloud holds exactly what
    // state holds.
    let out = konstacks(&state, 0, &["apply", "--template", "web-app", "--yes"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = konstacks(&state, 0, &["plan", "--template", "web-app"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let cloud: Value = serde_json::from_str(&std::fs::read_to_string(state.join("sim-cloud.json")).unwrap()).unwrap();
    let in_cloud =
        cloud["resources"].as_array().unwrap().iter().filter(|r| r["tags"]["konstacks:stack"] == STACK).count();
    let out = konstacks(&state, 0, &["--json", "state", "list", "--template", "web-app"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 9, "the web-app dev stack is 9 resources");
    assert_eq!(in_cloud, 9, "each created once");
}

#[test]
fn ctrl_c_during_apply_stops_cleanly() {
    interrupt_with("-INT");
}

#[test]
fn sigterm_during_apply_stops_cleanly() {
    interrupt_with("-TERM");
}
