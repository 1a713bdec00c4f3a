//! The guards that keep a user from losing data by accident, through the real binary on the
//! embedded simulated cloud: a region flag never moves an applied stack, deletes of databases
//! and caches are marked and refused unless named, deletion protection is reported before
//! anything is deleted, another stack's resource is never imported silently, and resources that
//! state lost track of are never duplicated.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "support/binary.rs"]
mod binary;

use binary::Run;
use serde_json::Value;

/// A scratch directory with its own state directory and simulated cloud.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn state_dir(&self) -> PathBuf {
        self.0.path().join(".konstacks")
    }

    fn params(&self, name: &str, json: &str) -> String {
        std::fs::write(self.0.path().join(name), json).unwrap();
        name.to_string()
    }

    fn expect(&self, args: &[&str], code: i32) -> Run {
        binary::run_with(self.0.path(), args, code, |cmd| {
            cmd.arg("--state-dir").arg(self.state_dir());
        })
    }

    /// Every resource the simulated cloud holds, as (id, stack tag, path tag, region).
    fn cloud(&self) -> Vec<(String, String, String, String)> {
        let tag = |r: &Value, k: &str| r["tags"][k].as_str().unwrap_or_default().to_string();
        let mut out: Vec<_> = binary::cloud_in(&self.state_dir())
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    tag(r, "konstacks:stack"),
                    tag(r, "konstacks:path"),
                    r["region"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn id_of(&self, stack: &str, path: &str) -> String {
        self.cloud().into_iter().find(|r| r.1 == stack && r.2 == path).map(|r| r.0).unwrap()
    }

    fn stack_state_dir(&self, stack: &str) -> PathBuf {
        self.state_dir().join("stacks").join(stack)
    }
}

const WEB: &[&str] = &["--template", "web-app"];

fn args<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

/// The last JSON document on stdout (an apply streams its plan and events first).
fn json(run: &Run) -> Value {
    let whole = serde_json::from_str(run.stdout.trim());
    let last = run.stdout.trim().lines().last().unwrap_or_default();
    whole.or_else(|_| serde_json::from_str(last)).unwrap_or_else(|e| panic!("not JSON ({e}):\n{run:?}"))
}

#[test]
fn a_region_flag_never_moves_an_applied_stack() {
    let s = Scratch::new();
    s.expect(&args(&["apply", "--yes"], WEB), 0);
    let before = s.cloud();
    assert!(before.iter().all(|r| r.3.is_empty() || r.3.starts_with("eu-")), "{before:?}");

    // The default jurisdiction (eu) holds for a named region too.
    let r = s.expect(&args(&["apply", "--yes", "--region", "us-east"], WEB), 3);
    assert!(r.stderr.contains("us-east") && r.stderr.contains("eu"), "{r:?}");
    // Naming another jurisdiction explicitly is still a move: shown by plan, refused by apply.
    let moved = ["--region", "us-east", "--jurisdiction", "us"];
    let r = s.expect(&args(&args(&["plan"], WEB), &moved), 2);
    assert!(r.stdout.contains("!! PLACEMENT CHANGE") && r.stdout.contains("--allow-placement-change"), "{r:?}");
    let r = s.expect(&args(&args(&["--json", "plan"], WEB), &moved), 2);
    let plan = json(&r);
    assert_eq!(plan["placement_change"]["from"]["jurisdiction"], "eu", "{plan}");
    assert_eq!(plan["placement_change"]["to"]["region"], "us-east", "{plan}");
    let r = s.expect(&args(&args(&["apply", "--yes"], WEB), &moved), 5);
    assert!(r.stderr.contains("--allow-placement-change"), "{r:?}");
    // The database's replacement is data loss, refused in the same message.
    assert!(r.stderr.contains("data/postgres") && r.stderr.contains("--allow-data-loss"), "{r:?}");
    assert_eq!(s.cloud(), before, "a refused apply touched the cloud");

    // Asked for explicitly, the move happens.
    let ok = ["--allow-placement-change", "--allow-data-loss", "data/postgres"];
    s.expect(&args(&args(&args(&["apply", "--yes"], WEB), &moved), &ok), 0);
    let after = s.cloud();
    assert!(after.iter().all(|r| r.3.is_empty() || r.3 == "us-east"), "{after:?}");
    s.expect(&args(&args(&["plan"], WEB), &moved), 0);
}

#[test]
fn deleting_or_replacing_data_is_marked_and_refused_unless_named() {
    let s = Scratch::new();
    let with = s.params("with.json", r#"{"redis": true}"#);
    let without = s.params("without.json", r#"{"redis": false}"#);
    s.expect(&args(&["--params", &with, "apply", "--yes"], WEB), 0);
    let before = s.cloud();

    let r = s.expect(&args(&["--params", &without, "plan"], WEB), 2);
    assert!(r.stdout.contains("!! DATA LOSS") && r.stdout.contains("--allow-data-loss data/redis"), "{r:?}");
    let plan = json(&s.expect(&args(&["--json", "--params", &without, "plan"], WEB), 2));
    let lost: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["data_loss"] == true)
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(lost, ["data/redis"], "{plan}");

    // `--yes` alone is not consent to lose data; nothing is deleted, not even the cache's firewall.
    let r = s.expect(&args(&["--params", &without, "apply", "--yes"], WEB), 5);
    assert!(r.stderr.contains("data/redis") && r.stderr.contains("--allow-data-loss"), "{r:?}");
    assert_eq!(s.cloud(), before);
    let r = s.expect(&args(&["--json", "--params", &without, "apply", "--yes"], WEB), 5);
    assert_eq!(json(&r)["error"]["details"]["hazards"][0]["hazard"], "data_loss", "{r:?}");
    // Consent for another path does not count; an unknown path is a usage error.
    s.expect(&args(&["--params", &without, "apply", "--yes", "--allow-data-loss", "data/postgres"], WEB), 5);
    s.expect(&args(&["--params", &without, "apply", "--yes", "--allow-data-loss", "data/nope"], WEB), 3);
    assert_eq!(s.cloud(), before);

    s.expect(&args(&["--params", &without, "apply", "--yes", "--allow-data-loss", "data/redis"], WEB), 0);
    assert!(s.cloud().iter().all(|r| r.2 != "data/redis"));

    // A replacement of the database (its subnets move with the VPC block) is data loss too.
    let moved = s.params("moved.json", r#"{"vpc_cidr": "10.9.0.0/16"}"#);
    let r = s.expect(&args(&["--params", &moved, "apply", "--yes"], WEB), 5);
    assert!(r.stderr.contains("data/postgres would be replaced"), "{r:?}");
    s.expect(&args(&["--params", &moved, "apply", "--yes", "--allow-all-data-loss"], WEB), 0);
}

#[test]
fn deletion_protection_is_reported_before_anything_is_deleted() {
    let s = Scratch::new();
    let prod = ["--stage", "prod"];
    s.expect(&args(&args(&prod, &["apply", "--yes"]), WEB), 0);
    let before = s.cloud();
    assert!(!before.is_empty());

    let r = s.expect(&args(&args(&prod, &["destroy", "--yes"]), WEB), 5);
    assert!(r.stdout.contains("!! PROTECTED") && r.stdout.contains("data/postgres"), "{r:?}");
    assert!(r.stderr.contains("deletion protection") && r.stderr.contains("--disable-deletion-protection"), "{r:?}");
    assert_eq!(s.cloud(), before, "a refused destroy deleted something");

    let r = s.expect(&args(&args(&prod, &["destroy", "--yes", "--disable-deletion-protection"]), WEB), 0);
    assert!(r.stdout.contains("!! DATA LOSS"), "{r:?}");
    assert!(s.cloud().is_empty(), "{:?}", s.cloud());
}

#[test]
fn another_stacks_resource_is_never_imported_silently() {
    let s = Scratch::new();
    s.expect(&args(&["apply", "--yes"], &args(WEB, &["--name", "owner"])), 0);
    let vpc = s.id_of("owner", "network/vpc");
    let thief = args(WEB, &["--name", "thief"]);

    let r = s.expect(&args(&["import", "network/vpc", &vpc], &thief), 5);
    assert!(r.stderr.contains("belongs to stack `owner`") && r.stderr.contains("--force"), "{r:?}");
    let r = s.expect(&args(&["--json", "import", "network/vpc", &vpc], &thief), 5);
    assert_eq!(json(&r)["error"]["details"]["hazards"][0]["owner"], "owner", "{r:?}");
    s.expect(&args(&["state", "list"], &thief), 0);
    assert!(
        !s.stack_state_dir("thief").join("state.json").exists() || {
            let st: Value =
                serde_json::from_str(&std::fs::read_to_string(s.stack_state_dir("thief").join("state.json")).unwrap())
                    .unwrap();
            st["resources"].as_object().unwrap().is_empty()
        }
    );

    // Forced, it is taken over: the thief's plan re-tags it, and the owner's next apply is
    // refused instead of deleting or updating what is now another stack's.
    let r = s.expect(&args(&["import", "network/vpc", &vpc, "--force"], &thief), 0);
    assert!(r.stdout.contains("konstacks:stack"), "{r:?}");
    // The thief's apply re-tags the VPC first; its own subnets then collide with the owner's
    // in that VPC (exit 1), which is the cloud's answer, not a guard's.
    let r = s.expect(&args(&["apply", "--yes"], &thief), 1);
    assert!(r.stdout.contains("\"konstacks:stack\":\"thief\""), "{r:?}");
    let owner = args(WEB, &["--name", "owner"]);
    let before = s.cloud();
    assert!(before.iter().any(|r| r.0 == vpc && r.1 == "thief"), "{before:?}");

    // The owner's next run meets its VPC tagged for the thief: refused, nothing changed. Even a
    // destroy leaves it alone.
    let change = s.params("change.json", r#"{"vpc_cidr": "10.1.0.0/16"}"#);
    let r = s.expect(&args(&["--params", &change, "apply", "--yes", "--allow-all-data-loss"], &owner), 5);
    assert!(r.stderr.contains("belongs to stack `thief`") && r.stderr.contains("state rm network/vpc"), "{r:?}");
    let r = s.expect(&args(&["destroy", "--yes"], &owner), 5);
    assert!(r.stderr.contains("belongs to stack `thief`"), "{r:?}");
    assert_eq!(s.cloud(), before);
    // The remedy it names works: the owner lets go of the VPC and destroys the rest.
    s.expect(&args(&["state", "rm", "network/vpc"], &owner), 0);
    s.expect(&args(&["state", "rm", "network/vpc"], &owner), 1);
    s.expect(&args(&["destroy", "--yes"], &owner), 0);
    let after = s.cloud();
    assert!(after.iter().all(|r| r.1 == "thief") && after.iter().any(|r| r.0 == vpc), "{after:?}");
}

#[test]
fn resources_state_lost_track_of_are_never_duplicated() {
    let s = Scratch::new();
    s.expect(&args(&["apply", "--yes"], WEB), 0);
    let before = s.cloud();
    // The state is lost (deleted by hand, a wiped CI cache, a wrong --state-dir copy).
    std::fs::remove_dir_all(s.stack_state_dir("web-app-dev")).unwrap();

    let r = s.expect(&args(&["plan"], WEB), 2);
    assert!(r.stdout.contains("!! UNTRACKED RESOURCES") && r.stdout.contains("konstacks import"), "{r:?}");
    let r = s.expect(&args(&["apply", "--yes"], WEB), 5);
    assert!(r.stderr.contains("state does not know"), "{r:?}");
    assert_eq!(s.cloud(), before, "duplicates were created");

    // Each hint works: import everything the plan lists, and the stack is whole again.
    let plan = json(&s.expect(&args(&["--json", "plan"], WEB), 2));
    let untracked = plan["untracked"].as_array().unwrap();
    assert_eq!(untracked.len(), before.len(), "{plan}");
    for u in untracked {
        let (path, id) = (u["path"].as_str().unwrap(), u["id"].as_str().unwrap());
        s.expect(&args(&["import", path, id], WEB), 0);
    }
    s.expect(&args(&["apply", "--yes"], WEB), 0);
    assert_eq!(s.cloud().len(), before.len());
    s.expect(&args(&["plan"], WEB), 0);
}

#[test]
fn a_cut_journal_never_leads_to_duplicates() {
    let s = Scratch::new();
    // Killed (like kill -9) right after the third create returned, before its result was
    // recorded; then the journal loses its lines (a disk that lost the tail of the file).
    let out = Command::new(env!("CARGO_BIN_EXE_konstacks"))
        .current_dir(s.0.path())
        .arg("--state-dir")
        .arg(s.state_dir())
        .args(["--sim-latency-ms", "0", "apply", "--yes", "--template", "web-app"])
        .env("KONSTACKS_CRASH_AT", "after-call:3")
        .env_remove("KONSTACKS_SECRET_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let created = s.cloud();
    assert_eq!(created.len(), 3, "{created:?}");
    let journal = s.stack_state_dir("web-app-dev").join("journal.jsonl");
    std::fs::write(&journal, b"").unwrap();
    // The killed run left its lock: break it the documented way.
    let locked = json(&s.expect(&args(&["--json", "apply", "--yes"], WEB), 4));
    let id = locked["error"]["details"]["lock_id"].as_str().unwrap().to_string();
    s.expect(&args(&["force-unlock", &id], WEB), 0);

    let r = s.expect(&args(&["apply", "--yes"], WEB), 5);
    assert_eq!(r.stderr.matches("state does not know").count(), 3, "{r:?}");
    assert_eq!(s.cloud(), created, "duplicates were created");
    // `--ignore-untracked` is the documented way past it: the three are left alone.
    s.expect(&args(&["apply", "--yes", "--ignore-untracked"], WEB), 0);
    assert_eq!(s.cloud().len(), created.len() + 9);
}

#[test]
fn the_flags_are_documented() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md")).unwrap();
    for flag in [
        "--allow-data-loss",
        "--allow-all-data-loss",
        "--disable-deletion-protection",
        "--allow-placement-change",
        "--ignore-untracked",
        "import PATH ID --force",
    ] {
        assert!(doc.contains(flag), "docs/cli.md does not document {flag}");
    }
}
