//! Preview environments through the real binary on the simulated cloud: two branches at once,
//! branch names that need sanitising (slashes, capitals, 100 characters), the budget cap
//! refusing before any cloud call, expiry and `preview gc`, and `preview down` leaving nothing.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/binary.rs"]
mod binary;

use binary::{cloud, run};
use serde_json::Value;

const T: [&str; 2] = ["--template", "web-app"];

fn with<'a>(cmd: &[&'a str]) -> Vec<&'a str> {
    cmd.iter().copied().chain(T).collect()
}

/// The simulated cloud's resources per stack tag.
fn in_cloud(dir: &std::path::Path, stack: &str) -> usize {
    cloud(dir).iter().filter(|r| r["tags"]["konstacks:stack"] == stack).count()
}

fn previews(dir: &std::path::Path) -> Vec<Value> {
    let out = run(dir, &with(&["--json", "preview", "list"]), 0);
    serde_json::from_str::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

#[test]
fn two_branches_live_side_by_side_and_down_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let long = format!("feature/{}", "Very-Long-Name_".repeat(7));
    assert!(long.len() >= 100);
    run(dir, &with(&["preview", "up", "--branch", "Feature/Login"]), 0);
    run(dir, &with(&["preview", "up", "--branch", &long]), 0);

    let list = previews(dir);
    assert_eq!(list.len(), 2, "{list:#?}");
    let names: Vec<&str> = list.iter().map(|p| p["stack"].as_str().unwrap()).collect();
    for (p, n) in list.iter().zip(&names) {
        assert!(n.starts_with("web-app-dev-") && n.len() <= 40, "{n}");
        assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{n}");
        assert!(p["resources"].as_u64().unwrap() > 0, "{p}");
        assert!(p["monthly_usd"].as_f64().unwrap() > 0.0, "{p}");
        assert_eq!(p["expired"], false);
        assert!(in_cloud(dir, n) > 0, "{n} has nothing in the cloud");
    }
    let login = list.iter().find(|p| p["branch"] == "Feature/Login").unwrap();
    assert!(login["stack"].as_str().unwrap().starts_with("web-app-dev-feature-login-"), "{login}");
    let text = run(dir, &with(&["preview", "list"]), 0);
    assert!(text.stdout.contains("Feature/Login") && text.stdout.contains("BUDGET"), "{text:?}");

    // The same branch again updates its preview instead of making a second one.
    run(dir, &with(&["preview", "up", "--branch", "Feature/Login"]), 0);
    assert_eq!(previews(dir).len(), 2);

    let login_stack = login["stack"].as_str().unwrap().to_string();
    run(dir, &with(&["preview", "down", "--branch", "Feature/Login"]), 0);
    assert_eq!(in_cloud(dir, &login_stack), 0, "preview down left resources behind");
    let left = previews(dir);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["branch"], long.as_str());
    // The other preview is untouched.
    assert!(in_cloud(dir, left[0]["stack"].as_str().unwrap()) > 0);
}

#[test]
fn over_budget_is_refused_before_any_cloud_call_and_recorded_nowhere() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let refused = run(dir, &with(&["--budget", "1", "preview", "up", "--branch", "cheap"]), 5);
    assert!(refused.stderr.contains("budget"), "{refused:?}");
    assert!(cloud(dir).is_empty(), "a refused preview reached the cloud");
    assert!(previews(dir).is_empty());
}

#[test]
fn expired_previews_are_listed_and_collected() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    run(dir, &with(&["preview", "up", "--branch", "old", "--ttl", "0s"]), 0);
    run(dir, &with(&["preview", "up", "--branch", "fresh", "--ttl", "72h"]), 0);
    let list = previews(dir);
    let old = list.iter().find(|p| p["branch"] == "old").unwrap();
    assert_eq!(old["expired"], true);
    let dry = run(dir, &with(&["preview", "gc", "--dry-run"]), 0);
    assert!(dry.stderr.contains("web-app-dev-old") && !dry.stderr.contains("web-app-dev-fresh"), "{dry:?}");
    assert!(in_cloud(dir, "web-app-dev-old") > 0, "a dry run destroyed something");
    run(dir, &with(&["preview", "gc"]), 0);
    assert_eq!(in_cloud(dir, "web-app-dev-old"), 0);
    assert!(in_cloud(dir, "web-app-dev-fresh") > 0);
    let left = previews(dir);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["branch"], "fresh");
    run(dir, &with(&["preview", "gc"]), 0);
    assert_eq!(previews(dir).len(), 1);
}

#[test]
fn a_branch_without_letters_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let refused = run(d.path(), &with(&["preview", "up", "--branch", "///"]), 3);
    assert!(refused.stderr.contains("no letter or digit"), "{refused:?}");
}

#[test]
fn the_markdown_plan_is_a_pull_request_comment() {
    let d = tempfile::tempdir().unwrap();
    let out = run(d.path(), &with(&["plan", "--format", "markdown"]), 2);
    assert!(out.stdout.starts_with("<!-- konstacks-plan:web-app-dev -->"), "{out:?}");
    assert!(out.stdout.contains("to create") && out.stdout.contains("monthly cost"), "{out:?}");
    assert!(out.stdout.contains("compliance (baseline)"), "{out:?}");
    assert!(!out.stdout.contains("\u{1b}["), "colour codes in Markdown");
}

/// A record of the simulated cloud: its full name, zone id and stack.
type Record = (String, String, String);

/// The zones and records of the simulated cloud: (id, domain), and records sorted.
fn dns(dir: &std::path::Path) -> (Vec<(String, String)>, Vec<Record>) {
    let all = cloud(dir);
    let id = |r: &Value| r["id"].as_str().unwrap_or_default().to_string();
    let zones = all.iter().filter(|r| id(r).starts_with("zone-")).map(|r| (id(r), r["domain"].to_string())).collect();
    let records = all
        .iter()
        .filter(|r| r["fqdn"].is_string() && r["zone_id"].is_string())
        .map(|r| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&r["fqdn"]), s(&r["zone_id"]), s(&r["tags"]["konstacks:stack"]))
        })
        .collect::<Vec<_>>();
    let mut records = records;
    records.sort();
    (zones, records)
}

#[test]
fn a_preview_gets_its_name_in_the_base_stacks_zone_and_leaves_the_zone() {
    fn p<'a>(cmd: &[&'a str]) -> Vec<&'a str> {
        with(cmd).into_iter().chain(["--params", "p.json"]).collect()
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("p.json"), r#"{"domain": "shop.example.com", "zone": "example.com"}"#).unwrap();
    run(dir, &p(&["apply", "--yes"]), 0);
    let (zones, base_records) = dns(dir);
    assert_eq!(zones.len(), 1, "{zones:?}");
    let zone_id = zones[0].0.clone();
    assert!(base_records.iter().any(|(f, z, _)| f == "shop.example.com" && *z == zone_id), "{base_records:?}");

    run(dir, &p(&["preview", "up", "--branch", "feature/x"]), 0);
    let (zones, records) = dns(dir);
    assert_eq!(zones.len(), 1, "the preview made no zone of its own: {zones:?}");
    let mine: Vec<&Record> = records.iter().filter(|(_, _, s)| s != "web-app-dev").collect();
    assert_eq!(mine.len(), 1, "{records:?}");
    let (fqdn, zone, stack) = mine[0].clone();
    assert!(fqdn.starts_with("feature-x-") && fqdn.ends_with(".example.com"), "{fqdn}");
    assert_eq!(zone, zone_id, "the preview's record is in the base stack's zone");
    assert!(stack.starts_with("web-app-dev-feature-x-"), "{stack}");

    run(dir, &p(&["preview", "down", "--branch", "feature/x"]), 0);
    let (zones, records) = dns(dir);
    assert_eq!(zones.len(), 1, "preview down left the zone: {zones:?}");
    assert_eq!(zones[0].0, zone_id);
    assert_eq!(records, base_records, "only the preview's record went");
    assert_eq!(in_cloud(dir, &stack), 0, "preview down left resources behind");
    // The base stack sees nothing to change.
    let plan: Value = serde_json::from_str(&run(dir, &p(&["--json", "plan"]), 0).stdout).unwrap();
    let acting: Vec<&Value> = plan["changes"].as_array().unwrap().iter().filter(|c| c["action"] != "no_op").collect();
    assert!(acting.is_empty(), "{acting:?}");
}
