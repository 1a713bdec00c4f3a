//! The S3 state backend against a real moto server, over real HTTP: journal round trip,
//! corruption and future versions, the lock with its holder and id, compare-and-swap of the
//! snapshot, two engines racing on one stack, and a full apply / re-plan / destroy.
//!
//! Run with: bash scripts/test-aws.sh (it starts moto and sets KONSTACKS_MOTO_ENDPOINT). Every
//! test uses its own key prefix in one shared bucket, so they run in parallel.
#![cfg(feature = "s3-state")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::error::{Error, StateError};
use konstacks_core::model::*;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::{LockInfo, Record, StackState, StateBackend};
use konstacks_providers::s3_state::S3Backend;
use serde_json::json;

const REGION: &str = "eu-central-1";
const BUCKET: &str = "konstacks-state-tests";

fn endpoint() -> String {
    std::env::var("KONSTACKS_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "KONSTACKS_MOTO_ENDPOINT is not set: these tests need a running moto server; run them with \
             `bash scripts/test-aws.sh`, which starts one"
        )
    })
}

async fn sdk() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("moto-test", "moto-test", None, None, "moto"))
        .load()
        .await
}

/// A raw client, to create the bucket and to tamper with objects behind the backend's back.
async fn raw() -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(&sdk().await).endpoint_url(endpoint()).force_path_style(true).build();
    let c = aws_sdk_s3::Client::from_conf(conf);
    let _ = c
        .create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await;
    c.head_bucket().bucket(BUCKET).send().await.unwrap();
    c
}

/// A unique prefix per test (and per run, so reruns against one moto never collide).
fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("tests/{test}-{nanos}")
}

async fn backend(prefix: &str) -> S3Backend {
    raw().await;
    S3Backend::builder(&sdk().await, BUCKET).endpoint_url(endpoint()).force_path_style(true).prefix(prefix).build()
}

async fn put(key: &str, body: &[u8]) {
    raw().await.put_object().bucket(BUCKET).key(key).body(ByteStream::from(body.to_vec())).send().await.unwrap();
}

async fn keys(under: &str) -> Vec<String> {
    let r = raw().await.list_objects_v2().bucket(BUCKET).prefix(under).send().await.unwrap();
    r.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
}

fn outputs(v: serde_json::Value) -> Record {
    let outputs: BTreeMap<String, serde_json::Value> = serde_json::from_value(v).unwrap();
    Record::Outputs { outputs }
}

fn small_stack(name: &str) -> Stack {
    let stack = Stack::new(name, Placement::region("eu-west"), Stage::Dev);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let sn = stack.add("sn", Subnet::new(vpc, "10.0.1.0/24"));
    let fw = stack.add("fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
    stack.add("vm", Vm::new(Image::UbuntuLts, VmSize::Small, sn).firewall(fw));
    stack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_round_trip_and_compaction() {
    let p = prefix("round-trip");
    let b = backend(&p).await;
    assert_eq!(b.load("s").await.unwrap(), StackState::empty("s"));
    b.append("s", &[outputs(json!({"a": 1}))]).await.unwrap();
    b.append_buffered("s", &[outputs(json!({"a": 2}))]).await.unwrap();
    b.append("s", &[]).await.unwrap();
    assert_eq!(keys(&format!("{p}/s/journal/0/")).await.len(), 2, "one object per durable append");

    // Another machine sees the same state.
    let other = backend(&p).await;
    let st = other.load("s").await.unwrap();
    assert_eq!(st.outputs["a"], json!(2));
    assert_eq!(b.load("s").await.unwrap(), st);

    let mut next = st.clone();
    next.serial += 1;
    b.compact("s", &next).await.unwrap();
    assert!(keys(&format!("{p}/s/journal/")).await.is_empty(), "the journal is folded into the snapshot");
    assert_eq!(other.load("s").await.unwrap(), next);

    // A journal left by a crash between snapshot write and journal cleanup (older serial) is ignored.
    put(&format!("{p}/s/journal/0/{:020}.json", 7), b"{\"record\":\"outputs\",\"outputs\":{\"a\":99}}\n").await;
    assert_eq!(other.load("s").await.unwrap(), next);

    // Appends after the compaction go to the new snapshot's journal.
    b.append("s", &[outputs(json!({"a": 3}))]).await.unwrap();
    assert_eq!(other.load("s").await.unwrap().outputs["a"], json!(3));
    assert_eq!(keys(&format!("{p}/s/journal/1/")).await.len(), 1);
    assert_eq!(b.stacks().await.unwrap(), vec!["s".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_torn_objects_are_reported() {
    let p = prefix("corrupt");
    let b = backend(&p).await;
    put(&format!("{p}/snap/state.json"), b"{\"version\": 1, \"stack\": \"snap\", \"ser").await;
    assert!(matches!(b.load("snap").await, Err(StateError::Corrupt { .. })));

    // S3 writes whole objects: a torn journal object is corruption, not an unacknowledged tail.
    let key = format!("{p}/torn/journal/0/{:020}.json", 0);
    put(&key, b"{\"record\":\"outputs\",\"outp").await;
    match b.load("torn").await {
        Err(StateError::Corrupt { location, .. }) => assert!(location.contains(&key), "{location}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_version_is_refused() {
    let p = prefix("future");
    let b = backend(&p).await;
    put(&format!("{p}/s/state.json"), br#"{"version": 99, "stack": "s", "serial": 1, "resources": {}}"#).await;
    assert!(matches!(b.load("s").await, Err(StateError::FutureVersion { found: 99, .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_lock_fails_with_holder_since_and_id_and_force_unlock_needs_the_id() {
    let p = prefix("lock");
    let (a, b) = (backend(&p).await, backend(&p).await);
    let held = LockInfo::for_this_process("apply");
    a.lock("s", &held).await.unwrap();
    let err = b.lock("s", &LockInfo::for_this_process("apply")).await.unwrap_err();
    match &err {
        StateError::Locked { id, holder, since, .. } => {
            assert_eq!(id, &held.id);
            assert_eq!(since, &held.since);
            assert!(
                holder.starts_with(&held.holder) && holder.contains("apply") && holder.contains("held for"),
                "{holder}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(err.to_string().contains(&format!("force-unlock {}", held.id)), "{err}");

    assert!(matches!(b.force_unlock("s", "wrong").await, Err(StateError::LockMismatch { .. })));
    assert_eq!(b.current_lock("s").await.unwrap(), Some(held.clone()), "a wrong id changes nothing");
    assert_eq!(b.force_unlock("s", &held.id).await.unwrap(), held);
    assert_eq!(b.current_lock("s").await.unwrap(), None);
    assert!(matches!(a.unlock("s", &held.id).await, Err(StateError::LockMismatch { .. })), "already broken");
    b.lock("s", &LockInfo::for_this_process("apply")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_race_never_overwrites_newer_state() {
    let p = prefix("cas");
    let seed = backend(&p).await;
    seed.load("s").await.unwrap();
    let mut first = StackState::empty("s");
    first.serial = 1;
    seed.compact("s", &first).await.unwrap();

    let (a, b) = (backend(&p).await, backend(&p).await);
    let (sa, sb) = (a.load("s").await.unwrap(), b.load("s").await.unwrap());

    // Two writers at one journal position: the second write is refused.
    a.append("s", &[outputs(json!({"by": "a"}))]).await.unwrap();
    let err = b.append("s", &[outputs(json!({"by": "b"}))]).await.unwrap_err();
    assert!(format!("{err}: {:?}", std::error::Error::source(&err)).contains("another run is writing"), "{err:?}");

    // Two compactions from the same loaded snapshot: the second is refused and overwrites nothing.
    let mut na = sa.clone();
    na.serial = 2;
    na.outputs.insert("by".into(), json!("a"));
    let mut nb = sb.clone();
    nb.serial = 2;
    nb.outputs.insert("by".into(), json!("b"));
    a.compact("s", &na).await.unwrap();
    let err = b.compact("s", &nb).await.unwrap_err();
    assert!(matches!(err, StateError::Io { .. }), "{err:?}");
    assert!(format!("{:?}", std::error::Error::source(&err)).contains("nothing was overwritten"), "{err:?}");
    assert_eq!(backend(&p).await.load("s").await.unwrap(), na);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_apply_one_stack_at_once_exactly_one_proceeds() {
    let p = prefix("race");
    let (a, b): (Arc<dyn StateBackend>, Arc<dyn StateBackend>) =
        (Arc::new(backend(&p).await), Arc::new(backend(&p).await));
    // One simulated cloud per engine, so the loser's calls are counted on their own.
    let sim_a = Arc::new(SimCloud::new(SimConfig { latency: Duration::from_millis(200), ..Default::default() }));
    let sim_b = Arc::new(SimCloud::new(SimConfig { latency: Duration::from_millis(200), ..Default::default() }));
    let ea = Engine::new(a).with_provider(sim_a.provider()).with_sealer(None);
    let eb = Engine::new(b.clone()).with_provider(sim_b.provider()).with_sealer(None);
    let (sa, sb) = (ea.synth(&small_stack("race")).unwrap(), eb.synth(&small_stack("race")).unwrap());
    let opts = ApplyOptions::default();
    let t0 = Instant::now();
    let ((ra, ta), (rb, tb)) = tokio::join!(async { (ea.apply(&sa, &opts).await, t0.elapsed()) }, async {
        (eb.apply(&sb, &opts).await, t0.elapsed())
    });
    let (ok, err, t_ok, t_err, winner_sim, loser_sim) = match (ra, rb) {
        (Ok(r), Err(e)) => (r, e, ta, tb, &sim_a, &sim_b),
        (Err(e), Ok(r)) => (r, e, tb, ta, &sim_b, &sim_a),
        (a, b) => panic!("exactly one apply must proceed: {a:?} / {b:?}"),
    };
    assert_eq!(ok.created.len(), 4);
    let Error::State(StateError::Locked { holder, id, since, .. }) = &err else {
        panic!("expected a lock error: {err}")
    };
    assert!(holder.contains(" pid ") && holder.contains("(apply") && since.ends_with('Z') && id.len() == 16, "{err}");
    assert!(err.to_string().contains("force-unlock"), "{err}");
    assert!(t_err < t_ok && t_err < Duration::from_millis(800), "the loser fails at once: {t_err:?} vs {t_ok:?}");
    assert_eq!(loser_sim.calls(), 0, "the loser made no cloud call");
    assert_eq!(winner_sim.resources_of_stack("race").len(), 4);
    assert!(b.current_lock("race").await.unwrap().is_none(), "released");
    assert_eq!(b.load("race").await.unwrap().resources.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lock_is_recoverable_with_its_id() {
    let p = prefix("stale");
    let state: Arc<dyn StateBackend> = Arc::new(backend(&p).await);
    let dead = LockInfo {
        id: "00000000deadbeef".into(),
        holder: "ci@runner-7 pid 999999".into(),
        operation: "apply".into(),
        since: "2021-03-04T05:06:07Z".into(),
    };
    state.lock("stale", &dead).await.unwrap();
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = Engine::new(state.clone()).with_provider(sim.provider()).with_sealer(None);
    let s = engine.synth(&small_stack("stale")).unwrap();
    let err = engine.apply(&s, &ApplyOptions::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ci@runner-7 pid 999999") && text.contains("2021-03-04T05:06:07Z"), "{text}");
    assert!(text.contains("00000000deadbeef") && text.contains("held for"), "{text}");
    assert_eq!(sim.calls(), 0);
    assert!(matches!(
        engine.force_unlock("stale", "0000000000000000").await,
        Err(Error::State(StateError::LockMismatch { .. }))
    ));
    assert_eq!(engine.force_unlock("stale", &dead.id).await.unwrap(), dead);
    assert_eq!(engine.apply(&s, &ApplyOptions::default()).await.unwrap().created.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_replan_destroy_through_s3_state() {
    let p = prefix("e2e");
    let state: Arc<dyn StateBackend> = Arc::new(backend(&p).await);
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = Engine::new(state.clone()).with_provider(sim.provider()).with_sealer(None);
    let s = engine.synth(&small_stack("shop")).unwrap();
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.created.len(), 4);

    // A second machine sees the same state and plans nothing.
    let other = Engine::new(Arc::new(backend(&p).await)).with_provider(sim.provider()).with_sealer(None);
    let plan = other.plan(&s, &PlanOptions::default()).await.unwrap();
    assert!(plan.is_empty(), "{plan:?}");
    assert_eq!(other.state("shop").await.unwrap().resources.len(), 4);
    assert!(keys(&format!("{p}/shop/journal/")).await.is_empty(), "compacted after the apply");

    let report = other.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.deleted.len(), 4);
    assert!(sim.resources_of_stack("shop").is_empty());
    assert!(engine.state("shop").await.unwrap().resources.is_empty());
    assert!(state.current_lock("shop").await.unwrap().is_none());
}
