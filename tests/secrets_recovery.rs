//! Secrets never make a stack impossible to apply, through the real `konstacks` binary and its
//! file-backed simulated cloud:
//!
//! - `kill -9` between the database's create and the VM's create without `KONSTACKS_SECRET_KEY`:
//!   the next apply rotates the lost password in place and the VM gets the new one;
//! - a later VM change without a key works the same way;
//! - a wrong key is reported as wrong, a missing one as missing;
//! - a key shorter than 16 characters is refused before any cloud call;
//! - the first apply without a key warns (stderr, and a `warning` event with `--json`);
//! - a failed apply that changed nothing leaves `state.json` byte for byte the same.
//!
//! Secrets are compared by the fingerprints the simulated cloud keeps; no secret is read or
//! printed.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

const STACK: &str = "web-app-dev";
const KEY: &str = "secrets-recovery-test-key";

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn state_dir(&self) -> PathBuf {
        self.0.path().join(".konstacks")
    }

    fn sim_file(&self) -> PathBuf {
        self.state_dir().join("sim-cloud.json")
    }

    fn state_file(&self) -> PathBuf {
        self.state_dir().join("stacks").join(STACK).join("state.json")
    }

    fn params(&self, name: &str, text: &str) -> String {
        std::fs::write(self.0.path().join(name), text).unwrap();
        name.to_string()
    }

    /// Run the binary with this state key (or none) and optionally a crash point; returns the
    /// exit code (`None` when killed) and everything printed.
    fn run_with(&self, key: Option<&str>, crash_at: Option<&str>, args: &[&str]) -> (Option<i32>, String) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_konstacks"));
        c.current_dir(self.0.path())
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["--sim-latency-ms", "0"])
            .args(args)
            .env_remove("KONSTACKS_CRASH_AT")
            .env_remove("KONSTACKS_SECRET_KEY")
            .stdin(Stdio::null());
        if let Some(k) = key {
            c.env("KONSTACKS_SECRET_KEY", k);
        }
        if let Some(at) = crash_at {
            c.env("KONSTACKS_CRASH_AT", at);
        }
        let out = c.output().unwrap();
        let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    }

    fn run(&self, key: Option<&str>, args: &[&str]) -> (Option<i32>, String) {
        self.run_with(key, None, args)
    }

    fn ok(&self, key: Option<&str>, args: &[&str]) -> String {
        let (code, text) = self.run(key, args);
        assert_eq!(code, Some(0), "konstacks {args:?}:\n{text}");
        text
    }

    fn sim(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.sim_file()).unwrap()).unwrap()
    }

    /// The id of the live resource at `path` in the simulated cloud.
    fn id_at(&self, path: &str) -> String {
        let sim = self.sim();
        let ids: Vec<&str> = sim["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["tags"]["konstacks:path"] == path)
            .filter_map(|r| r["id"].as_str())
            .collect();
        assert_eq!(ids.len(), 1, "one resource at {path}: {ids:?}");
        ids[0].to_string()
    }

    /// The database's admin password and the VM's `DATABASE_PASSWORD` are the same secret
    /// (compared by fingerprint; nothing secret is printed).
    fn assert_vm_has_the_password(&self) {
        let sim = self.sim();
        let prints = &sim["secret_prints"];
        let db = &prints[self.id_at("data/postgres")]["password"];
        let vm = &prints[self.id_at("app/web-1")]["env:DATABASE_PASSWORD"];
        assert!(db.is_string(), "the simulated cloud knows the database's password fingerprint");
        assert!(db == vm, "the VM's DATABASE_PASSWORD is not the database's current password");
    }

    /// Break the lock a killed run left, by its id.
    fn unlock(&self) {
        let lock = self.state_dir().join("stacks").join(STACK).join("lock.json");
        if let Ok(bytes) = std::fs::read(lock) {
            let lock: Value = serde_json::from_slice(&bytes).unwrap();
            self.ok(None, &["force-unlock", lock["id"].as_str().unwrap()]);
        }
    }
}

#[test]
fn a_kill_between_database_and_vm_without_a_key_is_recovered_by_rotation() {
    let d = Dir::new();
    // The 9th operation to reach its call is the VM's create (it waits for the database).
    let (code, text) = d.run_with(None, Some("before-call:9"), &["apply", "--yes"]);
    assert_ne!(code, Some(0), "the run was stopped:\n{text}");
    d.unlock();

    let (code, plan) = d.run(None, &["plan"]);
    assert_eq!(code, Some(2), "{plan}");
    assert!(plan.contains("~ database data/postgres will be updated in place"), "{plan}");
    assert!(plan.contains("lost (no KONSTACKS_SECRET_KEY); it will be rotated in place"), "{plan}");
    assert!(plan.contains("+ vm app/web-1 will be created"), "{plan}");

    let text = d.ok(None, &["apply", "--yes"]);
    assert!(text.contains("1 created, 1 updated"), "{text}");
    d.assert_vm_has_the_password();
    d.ok(None, &["plan"]);

    // A later change of the VM (a new start command replaces it) works without a key too.
    let p = d.params("cmd.toml", "start_command = \"/usr/bin/app\"\n");
    let before = d.id_at("app/web-1");
    let text = d.ok(None, &["apply", "--yes", "--params", &p]);
    assert!(text.contains("1 updated, 1 replaced"), "{text}");
    assert_ne!(d.id_at("app/web-1"), before, "the VM was replaced");
    d.assert_vm_has_the_password();
    d.ok(None, &["plan", "--params", &p]);
}

#[test]
fn the_first_apply_without_a_key_warns() {
    let d = Dir::new();
    let (code, text) = d.run(None, &["apply", "--yes"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("warning: KONSTACKS_SECRET_KEY is not set"), "{text}");
    assert!(text.contains("data/postgres.password") && text.contains("cannot recover"), "{text}");

    // With --json: a `warning` event and the report's `warnings`.
    let d = Dir::new();
    let text = d.ok(None, &["--json", "apply", "--yes"]);
    let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let warning = lines.iter().find(|l| l["event"] == "warning").expect("a warning event");
    assert!(warning["message"].as_str().unwrap().contains("KONSTACKS_SECRET_KEY is not set"));
    let report = lines.iter().find(|l| l["event"] == "report").expect("a report");
    assert_eq!(report["report"]["warnings"][0], warning["message"]);

    // Nothing generated (a resize), nothing to warn about; with a key, never.
    let p = d.params("big.toml", "vm_size = \"large\"\n");
    let text = d.ok(None, &["apply", "--yes", "--params", &p]);
    assert!(!text.contains("warning:"), "{text}");
    let d = Dir::new();
    let text = d.ok(Some(KEY), &["apply", "--yes"]);
    assert!(!text.contains("warning:"), "{text}");
}

#[test]
fn a_wrong_key_is_told_from_a_missing_one() {
    let d = Dir::new();
    d.ok(Some(KEY), &["apply", "--yes"]);
    let sim_before = std::fs::read(d.sim_file()).unwrap();

    let (code, text) = d.run(Some("a different key, long enough"), &["plan"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("KONSTACKS_SECRET_KEY is wrong for stack `web-app-dev`"), "{text}");
    assert!(!text.contains("missing"), "{text}");

    // Without a key, replacing the VM needs the sealed password: the key is missing.
    let p = d.params("cmd.toml", "start_command = \"/usr/bin/app\"\n");
    let (code, text) = d.run(None, &["apply", "--yes", "--params", &p]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("KONSTACKS_SECRET_KEY is missing"), "{text}");
    assert!(text.contains("`web-app-dev`") && text.contains("data/postgres.password"), "{text}");
    assert!(std::fs::read(d.sim_file()).unwrap() == sim_before, "nothing was sent to the cloud");

    // With the right key it goes through, from the sealed copy (no rotation).
    let text = d.ok(Some(KEY), &["apply", "--yes", "--params", &p]);
    assert!(text.contains("0 updated, 1 replaced"), "{text}");
    d.assert_vm_has_the_password();
}

#[test]
fn a_short_key_is_refused_before_any_cloud_call() {
    let d = Dir::new();
    let (code, text) = d.run(Some("x"), &["apply", "--yes"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("KONSTACKS_SECRET_KEY is too short (1 characters)"), "{text}");
    assert!(text.contains("at least 16 characters"), "{text}");
    assert!(!d.sim_file().exists(), "the simulated cloud was never written");
    assert!(!d.state_file().exists(), "no state was written");

    d.ok(Some(KEY), &["apply", "--yes"]);
    let (sim, state) = (std::fs::read(d.sim_file()).unwrap(), std::fs::read(d.state_file()).unwrap());
    let p = d.params("big.toml", "vm_size = \"large\"\n");
    for args in [&["plan", "--params", &p][..], &["apply", "--yes", "--params", &p][..]] {
        let (code, text) = d.run(Some("fifteen-chars!!"), args);
        assert_eq!(code, Some(3), "{text}");
    }
    assert!(std::fs::read(d.sim_file()).unwrap() == sim, "the simulated cloud is untouched");
    assert!(std::fs::read(d.state_file()).unwrap() == state, "state is untouched");
}

#[test]
fn a_failed_apply_that_changed_nothing_leaves_state_bytes_identical() {
    let d = Dir::new();
    d.ok(Some(KEY), &["apply", "--yes"]);
    // Adding Redis starts with its firewall; someone took that firewall's name in the console,
    // so its create fails for certain, and nothing else can start.
    let p = d.params("redis.toml", "redis = true\n");
    let (_, plan) = d.run(Some(KEY), &["--json", "plan", "--params", &p]);
    let plan: Value = serde_json::from_str(plan.trim()).unwrap_or_else(|e| panic!("{e}: {plan}"));
    let change = plan["changes"].as_array().unwrap().iter().find(|c| c["path"] == "network/cache-fw").unwrap();
    let name = change["fields"].as_array().unwrap().iter().find(|f| f["name"] == "name").unwrap()["after"].clone();
    let mut sim = d.sim();
    let fw = sim["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "firewall" && r["tags"]["konstacks:path"] == "network/web-fw")
        .unwrap()
        .clone();
    let mut squatter = fw.clone();
    squatter["id"] = Value::from("fw-000000ff");
    squatter["name"] = name;
    squatter["tags"] = serde_json::json!({});
    squatter["ingress"] = serde_json::json!([]);
    sim["resources"].as_array_mut().unwrap().push(squatter);
    std::fs::write(d.sim_file(), serde_json::to_vec_pretty(&sim).unwrap()).unwrap();

    let before = std::fs::read(d.state_file()).unwrap();
    let (code, text) = d.run(Some(KEY), &["apply", "--yes", "--params", &p]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("network/cache-fw") && text.contains("already exists"), "{text}");
    assert!(std::fs::read(d.state_file()).unwrap() == before, "state.json is byte for byte the same");
    // Only the run's audit entry is left in the journal.
    let journal = std::fs::read_to_string(d.state_file().with_file_name("journal.jsonl")).unwrap();
    let records: Vec<Value> = journal.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 1, "{journal}");
    assert_eq!((&records[0]["record"], &records[0]["entry"]["result"]), (&"audited".into(), &"failed".into()));
}
