//! Crash tests against the GCP fake: a child process (this test binary run again, see
//! `crash_child`) applies or destroys the web-app stack with `KONSTACKS_CRASH_AT` set, so the
//! engine aborts like `kill -9` at an exact point (after an intent is durable but before its
//! call, or after the call returned but before its result is recorded). The fake lives in this
//! (parent) process, so what the child created survives it. The parent then breaks the stale lock
//! by its id, runs again and checks: the stack converges (a refreshed re-plan is empty), every
//! network, subnetwork, instance, Cloud SQL instance and firewall rule in the fake belongs to a
//! resource in state (zero orphans: interrupted creates are found by their stack label and
//! adopted), and nothing is there twice. A release behind the load balancer is killed the same
//! way at its own points (`release-registered:N`, `release-deregistered:N`).
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
use konstacks_core::clock::OpContext;
use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions, CRASH_AT_ENV};
use konstacks_core::kind::ResourceKind;
use konstacks_core::kinds::LoadBalancer;
use konstacks_core::model::{Placement, Stage, Vm};
use konstacks_core::provider::{Api, TargetHealth, TargetHealthState};
use konstacks_core::secret::{Sealer, Secret};
use konstacks_core::spec::Selector;
use konstacks_core::state::{LocalBackend, ReleaseResult, StackState, StateBackend};
use konstacks_core::validate::Synthesized;
use konstacks_providers::gcp::labels;
use konstacks_templates::TemplateContext;
use serde_json::json;

const STACK: &str = "crashy";
const CHILD: &str = "KONSTACKS_GCP_CRASH_CHILD";
const CHILD_URL: &str = "KONSTACKS_GCP_CRASH_URL";
const CHILD_PROJECT: &str = "KONSTACKS_GCP_CRASH_PROJECT";
const CHILD_STATE: &str = "KONSTACKS_GCP_CRASH_STATE";
const CHILD_VERSION: &str = "KONSTACKS_GCP_CRASH_VERSION";
/// VMs behind the load balancer of [`web_app_lb`]: a release replaces them one by one.
const LB_VMS: usize = 3;

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

/// The web app behind a load balancer ([`LB_VMS`] VMs), running `version` of its app: a new
/// version replaces every VM in a release.
fn web_app_lb(engine: &Engine, version: &str) -> Synthesized {
    let cx = TemplateContext::new(STACK, Stage::Dev).placement(Placement::region(REGION)).provider("gcp");
    let params = json!({
        "load_balancer": true,
        "vm_count": LB_VMS,
        "start_command": "/usr/bin/app",
        "health_path": "/healthz",
        "app_version": version,
    });
    engine.synth(&konstacks_templates::find("web-app").unwrap().build_json(&cx, params).unwrap()).unwrap()
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
        "release" => {
            let version = std::env::var(CHILD_VERSION).unwrap();
            engine.apply(&web_app_lb(&engine, &version), &ApplyOptions::default()).await.unwrap();
        }
        other => panic!("unknown child operation {other}"),
    }
}

/// Run `op` in a child process that aborts at `crash_at`; it must not finish.
fn run_child(op: &str, state: &Path, crash_at: &str) {
    run_child_with(op, state, crash_at, &[]);
}

/// [`run_child`] with more environment for the child (the app version of a release).
fn run_child_with(op: &str, state: &Path, crash_at: &str, env: &[(&str, &str)]) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .env(CHILD, op)
        .env(CHILD_URL, fake().base_url())
        .env(CHILD_PROJECT, fake().project())
        .env(CHILD_STATE, state)
        .env(CRASH_AT_ENV, crash_at)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(&format!("{CRASH_AT_ENV}: aborting at")),
        "the child should have been stopped at {crash_at}:\n{}{stderr}",
        String::from_utf8_lossy(&out.stdout),
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

/// The VM instances in the fake, as the ids Konstacks gives them.
fn instance_ids() -> BTreeSet<String> {
    let f = fake();
    let p = f.project();
    f.names(Kind::Instance)
        .into_iter()
        .map(|n| {
            let zone = f.resource(Kind::Instance, &n).unwrap()["zone"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            format!("projects/{p}/zones/{zone}/instances/{n}")
        })
        .collect()
}

/// The ids in `state` of the resources of kind `K`.
fn ids_of<K: ResourceKind>(state: &StackState) -> Vec<String> {
    state.resources.values().filter(|r| r.kind == K::KIND).map(|r| r.id.clone()).collect()
}

/// The load balancer's targets (over all its groups, sorted) and their health, as the backend
/// reads them from the instance groups and `backendServices.getHealth`.
async fn targets(b: &Arc<konstacks_providers::gcp::Gcp>, lb: &str) -> (Vec<String>, Vec<TargetHealth>) {
    let cx = OpContext::new(VirtualClock::shared(), STACK);
    let read = Api::<LoadBalancer>::read_many(&**b, &cx, &Selector::Ids(vec![lb.to_string()])).await.unwrap();
    assert_eq!(read.len(), 1, "the load balancer {lb}");
    let mut vms: Vec<String> = read[0].target_groups.iter().flat_map(|g| g.vm_ids.iter().cloned()).collect();
    vms.sort();
    let health = Api::<LoadBalancer>::target_health(&**b, &cx, lb).await.unwrap();
    (vms, health)
}

/// A release (a new app version: every VM behind the load balancer is replaced, one at a time
/// as the default policy's surge of 1 allows, each new VM registered and healthy before the old
/// one is deregistered) is killed at every release point the engine offers for it:
/// `release-registered:1..=3` (the N-th new VM is in the instance group, not yet proven healthy
/// nor recorded: the next run must undo it) and `release-deregistered:1..=3` (the N-th old VM left
/// the group, the switch is not recorded), and, as the simulated cloud's CLI test
/// (`tests/crash.rs`) does, at `before-call:1` (the first create intent is durable, the call not
/// made) and `after-call:2` (a create returned, its VM not recorded). After each kill a fresh engine breaks the lock and applies again:
/// the release completes, every VM of the stack is a healthy target, no VM (nor anything else)
/// is orphaned and the re-plan is empty. The next point releases the next version of the same
/// stack; destroy then leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_killed_at_every_kill_point_converges() {
    let _serial = exclusive().await;
    let started = std::time::Instant::now();
    let requests_before = fake().requests().len();
    let dir = tempfile::tempdir().unwrap();
    let b = backend().await;
    let state = LocalBackend::new(dir.path());
    let (lb, before) = {
        let engine = engine(&b, Arc::new(state.clone()));
        let report = engine.apply(&web_app_lb(&engine, "1"), &ApplyOptions::default()).await.unwrap();
        assert!(report.is_success(), "{report:?}");
        let st = state.load(STACK).await.unwrap();
        let lbs = ids_of::<LoadBalancer>(&st);
        assert_eq!(lbs.len(), 1, "one load balancer");
        let (vms, health) = targets(&b, &lbs[0]).await;
        assert_eq!(vms.len(), LB_VMS);
        assert_eq!(vms.iter().cloned().collect::<BTreeSet<_>>(), instance_ids());
        assert!(health.iter().all(|t| t.state == TargetHealthState::Healthy), "{health:?}");
        (lbs[0].clone(), fake().inventory())
    };
    eprintln!("applied in {:?}", started.elapsed());

    let points = [
        "release-registered:1",
        "release-registered:2",
        "release-registered:3",
        "release-deregistered:1",
        "release-deregistered:2",
        "release-deregistered:3",
        "before-call:1",
        "after-call:2",
    ];
    for (i, at) in points.into_iter().enumerate() {
        let round = std::time::Instant::now();
        let version = (i + 2).to_string();
        let vms_before: BTreeSet<String> = instance_ids();
        run_child_with("release", dir.path(), at, &[(CHILD_VERSION, &version)]);
        // Whatever the kill left, the load balancer sends traffic only to VMs that exist, and
        // still has some.
        let (left, _) = targets(&b, &lb).await;
        let vms = instance_ids();
        assert!(!left.is_empty() && left.iter().all(|t| vms.contains(t)), "{at}: targets {left:?}, VMs {vms:?}");

        let engine = engine(&b, Arc::new(state.clone()));
        break_lock(&engine, &state).await;
        let s = web_app_lb(&engine, &version);
        let report = engine.apply(&s, &ApplyOptions { refresh: true, ..Default::default() }).await.unwrap();
        assert!(report.is_success(), "{at}: {report:?}");
        eprintln!(
            "{at}: recovered {:?}, replaced {:?}, adopted {:?}",
            report.recovered.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(),
            report.replaced,
            report.adopted
        );

        let st = state.load(STACK).await.unwrap();
        assert!(st.pending.is_empty() && st.deposed.is_empty(), "{at}: {:?} / {:?}", st.pending, st.deposed);
        let last = st.releases.last().unwrap();
        assert_eq!(last.to_version.as_deref(), Some(version.as_str()), "{at}: {last:?}");
        assert_eq!(last.result, ReleaseResult::Succeeded, "{at}: {last:?}");
        let plan = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
        assert!(plan.is_empty(), "{at}: does not converge:\n{}", plan.render(false));

        // Every VM in state (and only those) exists, each a healthy target; all are new.
        let mut in_state = ids_of::<Vm>(&st);
        in_state.sort();
        assert_eq!(in_state.len(), LB_VMS, "{at}");
        assert_eq!(in_state.iter().cloned().collect::<BTreeSet<_>>(), instance_ids(), "{at}: orphaned or lost VMs");
        assert!(in_state.iter().all(|v| !vms_before.contains(v)), "{at}: a VM of the old version is left");
        let (targets, health) = targets(&b, &lb).await;
        assert_eq!(targets, in_state, "{at}: every VM is in its instance group");
        let mut healthy: Vec<String> =
            health.iter().filter(|t| t.state == TargetHealthState::Healthy).map(|t| t.target_id.clone()).collect();
        healthy.sort();
        assert_eq!(healthy, in_state, "{at}: every target is healthy: {health:?}");
        assert_eq!(fake().inventory(), before, "{at}: nothing orphaned, nothing lost");
        eprintln!("{at}: converged in {:?}", round.elapsed());
    }

    let engine = engine(&b, Arc::new(state.clone()));
    engine.destroy(STACK, &ApplyOptions::default()).await.unwrap();
    assert_fake_empty();
    assert!(engine.state(STACK).await.unwrap().resources.is_empty());
    fake().assert_no_violations();
    let requests = fake().requests();
    let count = |id: &str| requests[requests_before..].iter().filter(|r| r.method_id == id).count();
    eprintln!(
        "release crash test took {:?}: {} requests (parent and children), {} instanceGroups.addInstances, {} \
         removeInstances, {} backendServices.getHealth",
        started.elapsed(),
        requests.len() - requests_before,
        count("compute.instanceGroups.addInstances"),
        count("compute.instanceGroups.removeInstances"),
        count("compute.backendServices.getHealth"),
    );
}
