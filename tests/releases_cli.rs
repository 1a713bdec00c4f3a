//! Releases through the real binary on the simulated cloud: a new `app_version` of web-app
//! behind its load balancer is planned and applied as a release, `releases` shows the history,
//! and `rollback` applies the earlier version's recorded parameters as a new release.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/binary.rs"]
mod binary;

use binary::{cloud, run};
use serde_json::Value;

fn params(dir: &std::path::Path, version: &str) {
    let text = format!(
        "load_balancer = true\nvm_count = 3\nstart_command = \"/usr/bin/app\"\nhealth_path = \"/healthz\"\napp_version = \"{version}\"\n"
    );
    std::fs::write(dir.join("app.toml"), text).unwrap();
}

/// The app versions the VMs of the simulated cloud run, sorted.
fn versions(dir: &std::path::Path) -> Vec<String> {
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".konstacks/stacks/web-app-dev/state.json")).unwrap())
            .unwrap();
    let mut v: Vec<String> = state["resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["kind"] == "vm")
        .map(|r| r["inputs"]["app"]["version"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn a_new_version_is_a_release_and_rollback_brings_the_old_one_back() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let args = ["--template", "web-app", "--params", "app.toml"];
    let with = |cmd: &[&'static str]| -> Vec<&str> { cmd.iter().copied().chain(args).collect() };
    params(dir, "1");
    run(dir, &with(&["apply", "--yes"]), 0);
    params(dir, "2");
    let plan = run(dir, &with(&["plan"]), 2);
    assert!(plan.stdout.contains("will be released"), "{plan:?}");
    assert!(plan.stdout.contains("Release: 3 target(s) of app/lb (group `app`) in 3 batch(es)"), "{plan:?}");
    assert!(plan.stdout.contains("version 1 -> 2"), "{plan:?}");
    let vms_before = cloud(dir).iter().filter(|r| r["kind"] == "vm").count();
    let applied = run(dir, &with(&["apply", "--yes"]), 0);
    assert!(
        applied.stdout.contains("is healthy; draining") || applied.stderr.contains("is healthy; draining"),
        "{applied:?}"
    );
    assert_eq!(versions(dir), ["2", "2", "2"]);
    assert_eq!(cloud(dir).iter().filter(|r| r["kind"] == "vm").count(), vms_before, "old VMs deleted");
    run(dir, &with(&["plan"]), 0);

    let history = run(dir, &["--json", "releases", "--template", "web-app"], 0);
    let list: Value = serde_json::from_str(&history.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{history:?}");
    assert_eq!(list[0]["from_version"], "1");
    assert_eq!(list[0]["to_version"], "2");
    assert_eq!(list[0]["result"], "succeeded");

    // Back to the version before the first release, from the parameters its apply recorded.
    let back = run(dir, &["rollback", "--yes", "--template", "web-app"], 0);
    assert!(back.stderr.contains("Rolling back to version 1"), "{back:?}");
    assert_eq!(versions(dir), ["1", "1", "1"]);
    run(dir, &with(&["apply", "--yes"]), 0);
    let named = run(dir, &["rollback", "--yes", "--template", "web-app", "--to", "1"], 0);
    assert!(named.stderr.contains("Rolling back to version 1"), "{named:?}");
    assert_eq!(versions(dir), ["1", "1", "1"]);
    let missing = run(dir, &["rollback", "--yes", "--template", "web-app", "--to", "9"], 1);
    assert!(missing.stderr.contains("no version `9`"), "{missing:?}");
    let history = run(dir, &["--json", "releases", "--template", "web-app"], 0);
    let list: Value = serde_json::from_str(&history.stdout).unwrap();
    let tos: Vec<&str> = list.as_array().unwrap().iter().map(|r| r["to_version"].as_str().unwrap()).collect();
    assert_eq!(tos, ["2", "1", "2", "1"]);
}
