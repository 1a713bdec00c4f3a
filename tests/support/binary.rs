//! Running the `konstacks` binary from integration tests: one place for the child process, its
//! captured output and the simulated cloud's file. Include with
//! `#[path = "support/binary.rs"] mod binary;`.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// What a run printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Run the binary in `dir` (stdin closed, simulated latency 0, no state key unless `setup`
/// sets one) and insist on the exit `code`; `setup` adds leading arguments or environment.
pub fn run_with(dir: &Path, args: &[&str], code: i32, setup: impl FnOnce(&mut Command)) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_konstacks"));
    cmd.current_dir(dir).env_remove("KONSTACKS_SECRET_KEY").stdin(Stdio::null());
    cmd.args(["--sim-latency-ms", "0"]);
    setup(&mut cmd);
    let out = cmd.args(args).output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(r.code, code, "konstacks {}\n{r:?}", args.join(" "));
    r
}

/// [`run_with`] and nothing more.
pub fn run(dir: &Path, args: &[&str], code: i32) -> Run {
    run_with(dir, args, code, |_| {})
}

/// The resources of the simulated cloud kept in `state_dir/sim-cloud.json` (none without it).
pub fn cloud_in(state_dir: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(state_dir.join("sim-cloud.json")) else { return Vec::new() };
    let file: Value = serde_json::from_str(&text).unwrap();
    file["resources"].as_array().unwrap().clone()
}

/// The resources of the simulated cloud of a run in `dir` with the default state directory.
pub fn cloud(dir: &Path) -> Vec<Value> {
    cloud_in(&dir.join(".konstacks"))
}
