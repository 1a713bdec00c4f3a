//! The `konstacks` binary end to end, in throwaway directories, against the simulated cloud
//! (kept in `<state-dir>/sim-cloud.json`, so separate runs see the same cloud).
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const STACK: &str = "web-app-dev";

/// A scratch directory with its own state and simulated cloud.
struct Scratch {
    dir: tempfile::TempDir,
}

/// What a run printed and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

impl Scratch {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn state_dir(&self) -> PathBuf {
        self.path().join(".konstacks")
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.path().join(name), text).unwrap();
        name.to_string()
    }

    /// Run the binary with stdin closed (never a terminal).
    fn run(&self, args: &[&str]) -> Run {
        let state_dir = self.state_dir();
        let out: Output = Command::new(env!("CARGO_BIN_EXE_konstacks"))
            .current_dir(self.path())
            .arg("--state-dir")
            .arg(&state_dir)
            .args(["--sim-latency-ms", "0"])
            .args(args)
            .env_remove("KONSTACKS_SECRET_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run and insist on an exit code.
    fn expect(&self, args: &[&str], code: i32) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, code, "konstacks {}\n{r:?}", args.join(" "));
        r
    }

    /// Resources of the stack held by the simulated cloud's file.
    fn sim_resources_of_stack(&self) -> Vec<Value> {
        let path = self.state_dir().join("sim-cloud.json");
        let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
        let file: Value = serde_json::from_str(&text).unwrap();
        file["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["tags"]["konstacks:stack"] == STACK)
            .cloned()
            .collect()
    }
}

#[test]
fn apply_replan_change_update_destroy() {
    let s = Scratch::new();

    let r = s.expect(&["apply", "--template", "web-app", "--yes"], 0);
    assert!(r.stdout.contains("Plan: 9 to create"), "{r:?}");
    assert!(r.stdout.contains("Apply complete: 9 created"), "{r:?}");
    assert!(
        r.stdout.contains("Outputs:") && r.stdout.contains("web-1-ip") && r.stdout.contains("database-host"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("password =") || r.stdout.contains("(sensitive)"), "{r:?}");
    assert_eq!(s.sim_resources_of_stack().len(), 9);

    let r = s.expect(&["plan"], 0);
    assert!(r.stdout.contains("No changes."), "{r:?}");

    let changed = s.write("changed.toml", "vm_size = \"large\"\n");
    let r = s.expect(&["plan", "--params", &changed], 2);
    assert!(r.stdout.contains("~ vm app/web-1 will be updated in place"), "{r:?}");
    let size_line = r.stdout.lines().find(|l| l.trim_start().starts_with("size ")).expect("a size line");
    assert!(size_line.contains("\"micro\" -> \"large\""), "{size_line}");
    assert!(r.stdout.contains("Plan: 0 to create, 1 to update, 0 to replace, 0 to delete."), "{r:?}");

    let r = s.expect(&["apply", "--params", &changed, "--yes"], 0);
    assert!(r.stdout.contains("Apply complete: 0 created, 1 updated"), "{r:?}");
    s.expect(&["plan", "--params", &changed], 0);

    let r = s.expect(&["destroy", "--yes"], 0);
    assert!(r.stdout.contains("Destroy complete: 9 deleted"), "{r:?}");
    let r = s.expect(&["state", "list"], 0);
    assert_eq!(r.stdout, "", "{r:?}");
    assert!(s.sim_resources_of_stack().is_empty(), "{:?}", s.sim_resources_of_stack());

    let r = s.expect(&["destroy", "--yes"], 0);
    assert!(r.stdout.contains("Nothing to destroy"), "{r:?}");
}

#[test]
fn json_plan_is_versioned_json() {
    let s = Scratch::new();
    let r = s.expect(&["--json", "plan"], 2);
    let plan: Value = serde_json::from_str(&r.stdout).expect("plan JSON");
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["stack"], STACK);
    assert_eq!(plan["summary"]["create"], 9);

    let out = s.path().join("plan.json");
    s.expect(&["plan", "--out", out.to_str().unwrap()], 2);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert_eq!(saved["format_version"], 1);
}

#[test]
fn json_apply_streams_events_then_the_report() {
    let s = Scratch::new();
    let r = s.expect(&["--json", "apply", "--yes"], 0);
    let lines: Vec<Value> = r.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.first().unwrap()["event"], "plan");
    assert_eq!(lines.last().unwrap()["event"], "report");
    assert_eq!(lines.last().unwrap()["report"]["created"].as_array().unwrap().len(), 9);
    assert_eq!(lines.iter().filter(|l| l["event"] == "succeeded").count(), 9);
    assert!(!r.stdout.contains("Apply complete"), "human text leaked into JSON output");

    let r = s.expect(&["--json", "output"], 0);
    let outputs: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(outputs["web-1-ip"].is_string());
}

#[test]
fn outputs_state_and_drift() {
    let s = Scratch::new();
    s.expect(&["apply", "--yes"], 0);

    let r = s.expect(&["output", "web-1-ip"], 0);
    let ip = r.stdout.trim();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{r:?}");
    let r = s.expect(&["output", "nope"], 1);
    assert!(r.stderr.contains("web-1-ip"), "{r:?}");

    let r = s.expect(&["state", "list"], 0);
    assert_eq!(r.stdout.lines().count(), 9);
    assert!(r.stdout.lines().any(|l| l == "network/vpc"), "{r:?}");

    let r = s.expect(&["state", "show", "data/postgres"], 0);
    let res: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(res["kind"], "database");
    assert!(res["inputs"]["password"].as_str().unwrap().starts_with("(sensitive)"));
    assert!(res.get("sealed").is_none());
    s.expect(&["state", "show", "no/such"], 1);

    let r = s.expect(&["drift"], 0);
    assert!(r.stdout.contains("No drift"), "{r:?}");
    s.expect(&["refresh"], 0);
}

#[test]
fn drift_shows_fields_changed_behind_our_back_and_refresh_accepts_them() {
    let s = Scratch::new();
    s.expect(&["apply", "--yes"], 0);

    // Someone resizes the VM in the console: edit the simulated cloud's file.
    let path = s.state_dir().join("sim-cloud.json");
    let mut cloud: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let vm = cloud["resources"].as_array_mut().unwrap().iter_mut().find(|r| r["kind"] == "vm").unwrap();
    vm["size"] = "small".into();
    std::fs::write(&path, cloud.to_string()).unwrap();

    let r = s.expect(&["drift"], 2);
    assert!(r.stdout.contains("~ vm app/web-1"), "{r:?}");
    let line = r.stdout.lines().find(|l| l.trim_start().starts_with("size ")).expect("a size line");
    assert!(line.contains("\"micro\" (state) -> \"small\" (cloud)"), "{line}");
    let r = s.expect(&["--json", "drift"], 2);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["items"][0]["fields"][0]["name"], "size");

    // A refreshing plan reverts it; a refresh accepts it into state, and the plan then does too.
    let r = s.expect(&["plan", "--refresh"], 2);
    assert!(r.stdout.contains("\"small\" -> \"micro\""), "{r:?}");
    s.expect(&["refresh"], 0);
    s.expect(&["drift"], 0);
    let r = s.expect(&["plan"], 2);
    assert!(r.stdout.contains("\"small\" -> \"micro\""), "{r:?}");
    s.expect(&["apply", "--yes"], 0);
    s.expect(&["plan", "--refresh"], 0);
}

#[test]
fn graph_is_grouped_by_scope() {
    let s = Scratch::new();
    let r = s.expect(&["graph", "--format", "mermaid"], 0);
    insta::assert_snapshot!("web_app_dev_mermaid", r.stdout);

    let r = s.expect(&["graph"], 0);
    assert!(r.stdout.starts_with("digraph \"web-app-dev\" {"), "{r:?}");
    assert!(r.stdout.contains("subgraph \"cluster_0_network\""), "{r:?}");
    assert!(r.stdout.contains("\"network/vpc\" -> \"network/public-a\";"), "{r:?}");
}

#[test]
fn invalid_parameters_exit_3_and_touch_no_cloud() {
    let s = Scratch::new();

    let bad = s.write("bad.toml", "vpc_cidr = \"10.0.0.0/33\"\ndb_size = \"db-huge\"\n");
    for cmd in [&["plan", "--params", &bad][..], &["apply", "--yes", "--params", &bad], &["validate", "--params", &bad]]
    {
        let r = s.expect(cmd, 3);
        // Every diagnostic is printed, with the resource path and what to do.
        assert!(r.stderr.contains("error[malformed-cidr] web-app-dev/network/vpc"), "{r:?}");
        assert!(r.stderr.contains("10.0.0.0/33"), "{r:?}");
        assert!(r.stderr.contains("error[unknown-size] web-app-dev/data/postgres"), "{r:?}");
        assert!(r.stderr.contains("help:"), "{r:?}");
    }

    let unknown = s.write("unknown.toml", "vm_sise = \"large\"\n");
    let r = s.expect(&["plan", "--params", &unknown], 3);
    assert!(r.stderr.contains("unknown field `vm_sise`") && r.stderr.contains("unknown.toml"), "{r:?}");

    let broken = s.write("broken.toml", "vm_size = \n");
    let r = s.expect(&["plan", "--params", &broken], 3);
    assert!(r.stderr.contains("broken.toml") && r.stderr.contains("line 1"), "{r:?}");

    let broken = s.write("broken.json", "{\"vm_size\": }");
    let r = s.expect(&["plan", "--params", &broken], 3);
    assert!(r.stderr.contains("broken.json"), "{r:?}");

    let r = s.expect(&["plan", "--template", "no-such-template"], 3);
    assert!(r.stderr.contains("no template named `no-such-template`"), "{r:?}");

    let r = s.expect(&["--json", "validate", "--params", &bad], 3);
    let err: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(err["error"]["exit_code"], 3);
    assert_eq!(err["error"]["details"]["diagnostics"].as_array().unwrap().len(), 2);

    assert!(!s.state_dir().join("sim-cloud.json").exists(), "nothing may reach the cloud");
}

#[test]
fn a_locked_stack_exits_4_until_force_unlock() {
    let s = Scratch::new();
    s.expect(&["apply", "--yes"], 0);

    let id = "0123456789abcdef";
    let lock = serde_json::json!({
        "id": id, "holder": "alice@ci pid 4242", "operation": "apply", "since": "2024-05-01T12:00:00Z"
    });
    std::fs::write(s.state_dir().join("stacks").join(STACK).join("lock.json"), lock.to_string()).unwrap();

    let changed = s.write("changed.toml", "vm_size = \"large\"\n");
    for cmd in [&["apply", "--yes", "--params", &changed][..], &["destroy", "--yes"], &["refresh"]] {
        let r = s.expect(cmd, 4);
        assert!(r.stderr.contains(id) && r.stderr.contains("alice@ci pid 4242"), "{r:?}");
        assert!(r.stderr.contains(&format!("force-unlock {id}")), "{r:?}");
    }
    // Reading is not blocked by the lock.
    s.expect(&["plan", "--params", &changed], 2);

    let r = s.expect(&["force-unlock", "not-the-id"], 1);
    assert!(r.stderr.contains("mismatch"), "{r:?}");
    let r = s.expect(&["force-unlock", id], 0);
    assert!(r.stdout.contains(id), "{r:?}");
    s.expect(&["apply", "--yes", "--params", &changed], 0);
}

#[test]
fn apply_without_yes_needs_a_terminal() {
    let s = Scratch::new();
    let r = s.expect(&["apply"], 1);
    assert!(r.stderr.contains("--yes"), "{r:?}");
    assert!(s.sim_resources_of_stack().is_empty());
    s.expect(&["apply", "--yes"], 0);
    let r = s.expect(&["destroy"], 1);
    assert!(r.stderr.contains("--yes"), "{r:?}");
    assert_eq!(s.sim_resources_of_stack().len(), 9);
}

#[test]
fn templates_validate_synth_and_help() {
    let s = Scratch::new();
    let r = s.expect(&["templates"], 0);
    assert!(r.stdout.starts_with("web-app  "), "{r:?}");

    let r = s.expect(&["validate", "--stage", "prod"], 0);
    assert!(r.stdout.starts_with("valid: stack web-app-prod"), "{r:?}");

    let r = s.expect(&["synth", "--name", "shop", "--jurisdiction", "uk"], 0);
    let synth: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(synth["name"], "shop");
    assert_eq!(synth["region"], "uk-south");

    let r = s.expect(&["validate", "--region", "us-east", "--jurisdiction", "eu"], 3);
    assert!(r.stderr.contains("region-outside-jurisdiction"), "{r:?}");

    let r = s.expect(&["--help"], 0);
    for code in ["0  success", "2  plan or drift found changes", "3  invalid", "4  the stack is locked"] {
        assert!(r.stdout.contains(code), "{code}: {r:?}");
    }
    s.expect(&["no-such-command"], 1);
}
