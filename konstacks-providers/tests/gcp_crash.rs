//! Crash tests against the GCP fake: a child process (this test binary run again, see
//! `crash_child`) applies or destroys the web-app stack with `KONSTACKS_CRASH_AT` set, so the
//! engine aborts like `kill -9` at an exact point (after an intent is durable but before its
//! call, or after the call returned but before its result is recorded). The fake lives in this
//! (parent) process, so what the child created survives it. The parent then breaks the stale lock
//! by its id, runs again and checks: the stack converges (a refreshed re-plan is empty), every
//! network, subnetwork, instance, Cloud SQL instance and firewall rule in the fake belongs to a
//! resource in state (zero orphans: interrupted creates are found by their stack label and
//! adopted), and nothing is there twice.
#![cfg(feature = "gcp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/clock.rs"]
mod clock;
mod common_gcp;
#[path = "support/gcp.rs"]
mod gcp;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use clock::VirtualClock;
use common_gcp::Kind;
use gcp::{assert_fake_empty, backend, backend_at, exclusive, fake, REGION};
use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions, CRASH_AT_ENV};
use konstacks_core::model::{Placement, Stage};
use konstacks_core::secret::{Sealer, Secret};
use konstacks_core::state::{LocalBackend, StateBackend};
use konstacks_core::validate::Synthesized;
use konstacks_providers::gcp::labels;
use konstacks_templates::TemplateContext;
use serde_json::json;

const STACK: &str = "crashy";
const CHILD: &str = "KONSTACKS_GCP_CRASH_CHILD";
const CHILD_URL: &str = "KONSTACKS_GCP_CRASH_URL";
const CHILD_PROJECT: &str = "KONSTACKS_GCP_CRASH_PROJECT";
const CHILD_STATE: &str = "KONSTACKS_GCP_CRASH_STATE";

/// The engine, with generated secrets sealed in state (as with `KONSTACKS_SECRET_KEY`), so a run
/// after the crash can still give the database password to the VM.
fn engine(b: &Arc<konstacks_providers::gcp::Gcp>, state: Arc<LocalBackend>) -> Engine {
    let sealer = Sealer::from_passphrase(&Secret::new("crash-test passphrase, not a secret".to_string()));
    Engine::new(state).with_provider(b.provider()).with_clock(VirtualClock::shared()).with_sealer(Some(sealer))
}

fn web_app(engine: &Engine) -> Synthesized {
    let cx = TemplateContext::new(STACK, Stage::Dev).placement(Placement::region(REGION)).provider("gcp");
    engine.synth(&konstacks_templates::find("web-app").unwrap().build_json(&cx, json!({})).unwrap()).unwrap()
}

/// The child's side: does nothing unless started by `run_child`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(op) = std::env::var(CHILD) else { return };
    let b = backend_at(&std::env::var(CHILD_URL).unwrap(), &std::env::var(CHILD_PROJECT).unwrap(), REGION).await;
    let engine = engine(&b, Arc::new(LocalBackend::new(std::env::var(CHILD_STATE).unwrap())));
    match op.as_str() {
        "apply" => {
            engine.apply(&web_app(&engine), &ApplyOptions::default()).await.unwrap();
        }
        "destroy" => {
            engine.destroy(STACK, &ApplyOptions::default()).await.unwrap();
        }
        other => panic!("unknown child operation {other}"),
    }
}

/// Run `op` in a child process that aborts at `crash_at`; it must not finish.
fn run_child(op: &str, state: &Path, crash_at: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, op)
        .env(CHILD_URL, fake().base_url())
        .env(CHILD_PROJECT, fake().project())
        .env(CHILD_STATE, state)
        .env(CRASH_AT_ENV, crash_at)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the child should have been stopped at {crash_at}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the fake holds, as the ids Konstacks gives them (firewall rules by their firewall).
fn cloud_ids() -> Vec<String> {
    let f = fake();
    let p = f.project();
    let mut ids = Vec::new();
    ids.extend(f.names(Kind::Network).into_iter().map(|n| format!("projects/{p}/global/networks/{n}")));
    ids.extend(f.names(Kind::Subnetwork).into_iter().map(|n| format!("projects/{p}/regions/{REGION}/subnetworks/{n}")));
    for n in f.names(Kind::Instance) {
        let zone =
            f.resource(Kind::Instance, &n).unwrap()["zone"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
        ids.push(format!("projects/{p}/zones/{zone}/instances/{n}"));
    }
    ids.extend(f.names(Kind::SqlInstance).into_iter().map(|n| format!("projects/{p}/instances/{n}")));
    let firewalls: BTreeSet<String> = f
        .names(Kind::Firewall)
        .into_iter()
        .filter_map(|n| {
            let rule = f.resource(Kind::Firewall, &n).unwrap();
            let payload = labels::from_description(rule["description"].as_str())?;
            payload.get("firewall").map(str::to_string)
        })
        .collect();
    ids.extend(firewalls);
    ids
}

/// Break the stale lock the crash left, by its id.
async fn break_lock(engine: &Engine, backend: &LocalBackend) {
    let lock = backend.current_lock(STACK).await.unwrap().expect("a crashed run leaves its lock behind");
    assert_eq!(engine.force_unlock(STACK, &lock.id).await.unwrap().id, lock.id);
}

async fn apply_crash(crash_at: &str) {
    let dir = tempfile::tempdir().unwrap();
    run_child("apply", dir.path(), crash_at);

    let b = backend().await;
    let state = LocalBackend::new(dir.path());
    let engine = engine(&b, Arc::new(state.clone()));
    break_lock(&engine, &state).await;
    let s = web_app(&engine);
    let report = engine.apply(&s, &ApplyOptions { refresh: true, ..Default::default() }).await.unwrap();
    eprintln!(
        "{crash_at}: recovered {:?}, adopted {:?}, created {:?}",
        report.recovered, report.adopted, report.created
    );
    let plan = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert!(plan.is_empty(), "{crash_at}: does not converge:\n{}", plan.render(false));

    let in_state: BTreeSet<String> =
        engine.state(STACK).await.unwrap().resources.values().map(|r| r.id.clone()).collect();
    assert_eq!(in_state.len(), s.resources.len(), "{crash_at}");
    let cloud = cloud_ids();
    let unique: BTreeSet<String> = cloud.iter().cloned().collect();
    assert_eq!(cloud.len(), unique.len(), "{crash_at}: duplicates");
    assert_eq!(unique, in_state, "{crash_at}: the fake and the state differ (orphans or losses)");

    engine.destroy(STACK, &ApplyOptions::default()).await.unwrap();
    assert_fake_empty();
    fake().assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_at_many_points_converges_without_orphans() {
    let _serial = exclusive().await;
    for point in ["after-call:1", "before-call:3", "after-call:4", "after-call:6", "after-call:8", "after-call:9"] {
        apply_crash(point).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_killed_half_way_finishes() {
    let _serial = exclusive().await;
    let dir = tempfile::tempdir().unwrap();
    let b = backend().await;
    let state = LocalBackend::new(dir.path());
    {
        let engine = engine(&b, Arc::new(state.clone()));
        engine.apply(&web_app(&engine), &ApplyOptions::default()).await.unwrap();
    }
    let before = cloud_ids().len();
    run_child("destroy", dir.path(), "after-call:4");
    let left = cloud_ids().len();
    assert!(left > 0 && left < before, "the destroy was stopped half way ({left} of {before} left)");
    let engine = engine(&b, Arc::new(state.clone()));
    break_lock(&engine, &state).await;
    engine.destroy(STACK, &ApplyOptions::default()).await.unwrap();
    assert_fake_empty();
    assert!(engine.state(STACK).await.unwrap().resources.is_empty());
    fake().assert_no_violations();
}
