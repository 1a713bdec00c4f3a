//! Crash tests against moto: a child process (this test binary run again, see `crash_child`)
//! applies or destroys the web-app stack with `KONSTACKS_CRASH_AT` set, so the engine aborts it
//! like `kill -9` at an exact point (after an intent is durable but before its AWS call, or after
//! the call returned but before its result is recorded). The parent then breaks the stale lock by
//! its id, runs again and checks: the stack converges (re-plan with refresh is empty), nothing
//! tagged with the stack in moto is missing from state (zero orphans) and nothing is there twice
//! (zero duplicates).
//!
//! Run with: bash scripts/test-aws.sh (it starts moto and sets KONSTACKS_MOTO_ENDPOINT).
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_aws;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use aws_sdk_ec2::types::Filter;
use common_aws::{engine, provider, raw, web_app, STACK};
use konstacks_core::engine::{ApplyOptions, PlanOptions, CRASH_AT_ENV};
use konstacks_core::state::{LocalBackend, StateBackend};

const CHILD: &str = "KONSTACKS_AWS_CRASH_CHILD";
const CHILD_ACCOUNT: &str = "KONSTACKS_AWS_CRASH_ACCOUNT";
const CHILD_STATE: &str = "KONSTACKS_AWS_CRASH_STATE";

/// The child's side: does nothing unless started by `run_child`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(op) = std::env::var(CHILD) else { return };
    let account = std::env::var(CHILD_ACCOUNT).unwrap();
    let dir = std::env::var(CHILD_STATE).unwrap();
    let aws = provider(&account).await;
    let engine = engine(&aws, Arc::new(LocalBackend::new(dir)));
    match op.as_str() {
        "apply" => {
            let s = engine.synth(&web_app(1)).unwrap();
            engine.apply(&s, &ApplyOptions::default()).await.unwrap();
        }
        "destroy" => {
            engine.destroy(STACK, &ApplyOptions::default()).await.unwrap();
        }
        other => panic!("unknown child operation {other}"),
    }
}

/// Run `op` in a child process that aborts at `crash_at`; it must not finish.
fn run_child(op: &str, account: &str, state: &Path, crash_at: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, op)
        .env(CHILD_ACCOUNT, account)
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

fn tag(stack: &str) -> Filter {
    Filter::builder().name("tag:konstacks:stack").values(stack).build()
}

/// Ids of everything moto holds with the stack's tag (live instances only), with duplicates kept.
async fn cloud_ids(account: &str) -> Vec<String> {
    let (ec2, rds) = raw(account).await;
    let mut ids = Vec::new();
    let vpcs = ec2.describe_vpcs().filters(tag(STACK)).send().await.unwrap();
    ids.extend(vpcs.vpcs().iter().filter_map(|v| v.vpc_id().map(str::to_string)));
    let subnets = ec2.describe_subnets().filters(tag(STACK)).send().await.unwrap();
    ids.extend(subnets.subnets().iter().filter_map(|s| s.subnet_id().map(str::to_string)));
    let groups = ec2.describe_security_groups().filters(tag(STACK)).send().await.unwrap();
    ids.extend(groups.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)));
    let live = Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .values("stopping")
        .values("stopped")
        .build();
    let vms = ec2.describe_instances().filters(tag(STACK)).filters(live).send().await.unwrap();
    ids.extend(
        vms.reservations().iter().flat_map(|r| r.instances()).filter_map(|i| i.instance_id().map(str::to_string)),
    );
    let dbs = rds.describe_db_instances().send().await.unwrap();
    ids.extend(
        dbs.db_instances()
            .iter()
            .filter(|d| d.tag_list().iter().any(|t| t.key() == Some("konstacks:stack") && t.value() == Some(STACK)))
            .filter_map(|d| d.db_instance_identifier().map(str::to_string)),
    );
    ids
}

/// Break the stale lock the crash left, by its id.
async fn break_lock(engine: &konstacks_core::engine::Engine, backend: &LocalBackend) {
    let lock = backend.current_lock(STACK).await.unwrap().expect("a crashed run leaves its lock behind");
    let broken = engine.force_unlock(STACK, &lock.id).await.unwrap();
    assert_eq!(broken.id, lock.id);
}

/// Crash an apply of the web-app stack at `crash_at`, recover, and check convergence, zero
/// orphans and zero duplicates.
async fn apply_crash(account: &str, crash_at: &str) {
    let dir = tempfile::tempdir().unwrap();
    run_child("apply", account, dir.path(), crash_at);

    let aws = provider(account).await;
    let backend = LocalBackend::new(dir.path());
    let engine = engine(&aws, Arc::new(backend.clone()));
    break_lock(&engine, &backend).await;
    let s = engine.synth(&web_app(1)).unwrap();
    let report = engine.apply(&s, &ApplyOptions { refresh: true, ..Default::default() }).await.unwrap();
    eprintln!(
        "{crash_at}: recovered {:?}, adopted {:?}, created {:?}",
        report.recovered, report.adopted, report.created
    );
    let plan = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert!(plan.is_empty(), "{crash_at}: does not converge:\n{}", plan.render(false));

    let state = engine.state(STACK).await.unwrap();
    assert_eq!(state.resources.len(), 9, "{crash_at}");
    let in_state: BTreeSet<String> = state.resources.values().map(|r| r.id.clone()).collect();
    let cloud = cloud_ids(account).await;
    let unique: BTreeSet<String> = cloud.iter().cloned().collect();
    assert_eq!(cloud.len(), unique.len(), "{crash_at}: duplicate ids");
    let orphans: Vec<&String> = unique.difference(&in_state).collect();
    assert!(orphans.is_empty(), "{crash_at}: orphans in moto, not in state: {orphans:?}");
    let missing: Vec<&String> = in_state.difference(&unique).collect();
    assert!(missing.is_empty(), "{crash_at}: in state but not in moto: {missing:?}");
    assert_eq!(cloud.len(), 9, "{crash_at}: zero duplicates, exactly one cloud resource per path");

    engine.destroy(STACK, &ApplyOptions::default()).await.unwrap();
    assert!(cloud_ids(account).await.is_empty(), "{crash_at}: destroy left something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_before_call_3_recovers() {
    apply_crash("100000000201", "before-call:3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_after_call_3_recovers() {
    apply_crash("100000000202", "after-call:3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_after_call_7_recovers() {
    apply_crash("100000000203", "after-call:7").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_before_call_9_recovers() {
    apply_crash("100000000204", "before-call:9").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_killed_after_call_4_recovers() {
    const ACCOUNT: &str = "100000000205";
    let dir = tempfile::tempdir().unwrap();
    let aws = provider(ACCOUNT).await;
    let backend = LocalBackend::new(dir.path());
    {
        let engine = engine(&aws, Arc::new(backend.clone()));
        let s = engine.synth(&web_app(1)).unwrap();
        engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    }
    assert_eq!(cloud_ids(ACCOUNT).await.len(), 9);
    run_child("destroy", ACCOUNT, dir.path(), "after-call:4");
    let left = cloud_ids(ACCOUNT).await.len();
    assert!(left > 0 && left < 9, "the destroy was stopped half way ({left} left)");

    let engine = engine(&aws, Arc::new(backend.clone()));
    break_lock(&engine, &backend).await;
    engine.destroy(STACK, &ApplyOptions::default()).await.unwrap();
    let left = cloud_ids(ACCOUNT).await;
    assert!(left.is_empty(), "destroy after the crash left {left:?}");
    assert!(engine.state(STACK).await.unwrap().resources.is_empty());
}
