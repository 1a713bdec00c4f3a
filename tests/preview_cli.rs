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
