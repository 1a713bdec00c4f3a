//! Crash tests: the `konstacks` binary is stopped like `kill -9` at exact points of an apply, a
//! replacement and a destroy (after an intent is durable but before its cloud call, and after
//! the call returned but before its result is recorded), and at random moments of a slow apply.
//! Each time the next run must recover: the stale lock is broken by its id, interrupted creates
//! are adopted by their tags, and the stack converges with zero orphans and zero duplicates.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use konstacks::core::sim::{SimCloud, SimConfig};
use konstacks::core::state::{LocalBackend, StateBackend};

const STACK: &str = "web-app-dev";

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
    fn state_dir(&self) -> PathBuf {
        self.0.path().join(".konstacks")
    }
    fn cmd(&self, args: &[&str], latency_ms: u64) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_konstacks"));
        c.current_dir(self.0.path())
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["--sim-latency-ms", &latency_ms.to_string()])
            .args(args)
            .env("KONSTACKS_SECRET_KEY", "crash-test-passphrase")
            .env_remove("KONSTACKS_CRASH_AT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
    fn run(&self, args: &[&str], crash_at: Option<&str>) -> (Option<i32>, String) {
        let mut c = self.cmd(args, 0);
        if let Some(at) = crash_at {
            c.env("KONSTACKS_CRASH_AT", at);
        }
        let out = c.output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    }

    /// Run to success, breaking a stale lock left by a crash (by its id) first.
    fn recover(&self, args: &[&str]) {
        let (code, text) = self.run(args, None);
        let code = match code {
            Some(4) => {
                let lock: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(self.lock_path()).unwrap()).unwrap();
                let id = lock["id"].as_str().unwrap().to_string();
                assert!(text.contains(&id) && text.contains("force-unlock"), "lock error names the id:\n{text}");
                let (c, t) = self.run(&["force-unlock", &id], None);
                assert_eq!(c, Some(0), "{t}");
                let (c, t) = self.run(args, None);
                assert_eq!(c, Some(0), "{t}");
                c
            }
            c => c,
        };
        assert_eq!(code, Some(0), "{text}");
    }

    fn lock_path(&self) -> PathBuf {
        self.state_dir().join("stacks").join(STACK).join("lock.json")
    }

    fn sim_file(&self) -> PathBuf {
        self.state_dir().join("sim-cloud.json")
    }

    /// Cloud and state agree: every resource tagged with the stack is in state exactly once,
    /// nothing in state is missing from the cloud, no path has two live resources.
    fn assert_converged(&self, rt: &tokio::runtime::Runtime, expect: usize, label: &str) {
        let cloud = SimCloud::open(self.sim_file(), SimConfig::default()).unwrap();
        let live = cloud.resources_of_stack(STACK);
        let mut by_path: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &live {
            by_path.entry(r.tags()["konstacks:path"].clone()).or_default().push(r.id().to_string());
        }
        for (path, ids) in &by_path {
            assert_eq!(ids.len(), 1, "{label}: duplicate resources at {path}: {ids:?}");
        }
        let state = rt.block_on(LocalBackend::new(self.state_dir()).load(STACK)).unwrap();
        assert!(state.pending.is_empty(), "{label}: pending left {:?}", state.pending);
        assert!(state.deposed.is_empty(), "{label}: deposed left");
        let mut tracked: Vec<String> = state.resources.values().map(|r| r.id.clone()).collect();
        let mut cloud_ids: Vec<String> = live.iter().map(|r| r.id().to_string()).collect();
        tracked.sort();
        cloud_ids.sort();
        assert_eq!(cloud_ids, tracked, "{label}: orphans or ghosts");
        assert_eq!(live.len(), expect, "{label}");
        if expect > 0 {
            let (code, text) = self.run(&["plan"], None);
            assert_eq!(code, Some(0), "{label}: re-plan must be empty:\n{text}");
        } else {
            let (code, text) = self.run(&["state", "list"], None);
            assert_eq!(code, Some(0), "{text}");
            assert!(!text.contains("network/"), "{label}: state must be empty:\n{text}");
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn assert_crashed(code: Option<i32>, text: &str, at: &str) {
    assert_ne!(code, Some(0), "{at}: the run should have been stopped:\n{text}");
    assert!(text.contains("KONSTACKS_CRASH_AT") || code.is_none(), "{at}: {text}");
}

#[test]
fn killed_applies_converge_without_orphans_or_duplicates() {
    let rt = rt();
    let mut points = 0;
    for phase in ["before-call", "after-call"] {
        for n in 1..=9 {
            let at = format!("{phase}:{n}");
            let d = Dir::new();
            let (code, text) = d.run(&["apply", "--yes"], Some(&at));
            assert_crashed(code, &text, &at);
            d.recover(&["apply", "--yes"]);
            d.assert_converged(&rt, 9, &format!("apply {at}"));
            points += 1;
        }
    }
    assert_eq!(points, 18);
}

#[test]
fn killed_replacements_and_destroys_converge() {
    let rt = rt();
    for phase in ["before-call", "after-call"] {
        for n in 1..=2 {
            // Replacement of the VM (new image): create-before-destroy is 2 operations.
            let at = format!("{phase}:{n}");
            let d = Dir::new();
            d.recover(&["apply", "--yes"]);
            std::fs::write(d.0.path().join("p.toml"), "vm_size = \"large\"\nstart_command = \"/usr/bin/app\"\n")
                .unwrap();
            let (code, text) = d.run(&["apply", "--yes", "--params", "p.toml"], Some(&at));
            assert_crashed(code, &text, &at);
            d.recover(&["apply", "--yes", "--params", "p.toml"]);
            let cloud = SimCloud::open(d.sim_file(), SimConfig::default()).unwrap();
            assert_eq!(cloud.resources_of_stack(STACK).len(), 9, "replace {at}");
            let (code, text) = d.run(&["plan", "--params", "p.toml"], None);
            assert_eq!(code, Some(0), "replace {at}: {text}");
        }
        for n in 1..=9 {
            let at = format!("{phase}:{n}");
            let d = Dir::new();
            d.recover(&["apply", "--yes"]);
            let (code, text) = d.run(&["destroy", "--yes"], Some(&at));
            assert_crashed(code, &text, &at);
            d.recover(&["destroy", "--yes"]);
            d.assert_converged(&rt, 0, &format!("destroy {at}"));
        }
    }
}

#[test]
fn sigkill_at_random_moments_of_a_slow_apply() {
    let rt = rt();
    // Seeded delays spread over an apply that takes about 9 x 40 ms of calls.
    let mut seed: u64 = 0x5eed;
    for round in 0..6 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(20 + (seed >> 33) % 400);
        let d = Dir::new();
        let mut child = d.cmd(&["apply", "--yes"], 40).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        d.recover(&["apply", "--yes"]);
        d.assert_converged(&rt, 9, &format!("sigkill round {round} after {delay:?}"));
    }
}

/// The load balancer's targets and the VMs of the stack, by id.
fn targets_and_vms(d: &Dir) -> (Vec<String>, Vec<String>) {
    let cloud = SimCloud::open(d.sim_file(), SimConfig::default()).unwrap();
    let live = cloud.resources_of_stack(STACK);
    let mut targets: Vec<String> = live
        .iter()
        .filter_map(|r| r.get::<konstacks::core::model::LoadBalancer>().cloned())
        .flat_map(|lb| lb.target_groups.into_iter().flat_map(|g| g.vm_ids))
        .collect();
    let mut vms: Vec<String> =
        live.iter().filter_map(|r| r.get::<konstacks::core::model::Vm>().map(|v| v.id.clone())).collect();
    targets.sort();
    vms.sort();
    (targets, vms)
}

#[test]
fn killed_releases_converge_with_every_target_serving() {
    let rt = rt();
    let params = |v: &str| {
        format!(
            "load_balancer = true\nvm_count = 3\nstart_command = \"/usr/bin/app\"\nhealth_path = \"/healthz\"\napp_version = \"{v}\"\n"
        )
    };
    for at in [
        "release-registered:1",
        "release-registered:2",
        "release-deregistered:1",
        "release-deregistered:3",
        "before-call:1",
        "after-call:2",
    ] {
        let d = Dir::new();
        std::fs::write(d.0.path().join("p.toml"), params("1")).unwrap();
        d.recover(&["apply", "--yes", "--params", "p.toml"]);
        let resources = SimCloud::open(d.sim_file(), SimConfig::default()).unwrap().resources_of_stack(STACK).len();
        std::fs::write(d.0.path().join("p.toml"), params("2")).unwrap();
        let (code, text) = d.run(&["apply", "--yes", "--params", "p.toml"], Some(at));
        assert_crashed(code, &text, at);
        // Whatever the crash left, the load balancer sends traffic only to VMs that exist.
        let (targets, vms) = targets_and_vms(&d);
        assert!(!targets.is_empty() && targets.iter().all(|t| vms.contains(t)), "{at}: {targets:?} / {vms:?}");
        d.recover(&["apply", "--yes", "--params", "p.toml"]);
        let (targets, vms) = targets_and_vms(&d);
        assert_eq!(targets, vms, "{at}: every VM serves, no orphan");
        assert_eq!(vms.len(), 3, "{at}");
        let cloud = SimCloud::open(d.sim_file(), SimConfig::default()).unwrap();
        assert_eq!(cloud.resources_of_stack(STACK).len(), resources, "{at}: no orphans");
        let state = rt.block_on(LocalBackend::new(d.state_dir()).load(STACK)).unwrap();
        assert!(state.pending.is_empty() && state.deposed.is_empty(), "{at}");
        let (code, text) = d.run(&["plan", "--params", "p.toml"], None);
        assert_eq!(code, Some(0), "{at}: the release is done:\n{text}");
        let last = state.releases.last().unwrap();
        assert_eq!(last.to_version.as_deref(), Some("2"), "{at}");
    }
}
