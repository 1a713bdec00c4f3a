//! Fault soak: thousands of operations against a simulated cloud that throttles 20% of calls,
//! fails 5% with transient errors, times out 2% of mutating calls *after* making the change, and
//! hides new resources for 2 s (eventual consistency). Seeded and on virtual time, so it is
//! reproducible. After every phase the state must match the cloud exactly: nothing lost,
//! nothing duplicated, and the next plan is empty.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use konstacks_core::engine::{ApplyOptions, DataLossConsent, Engine, PlanOptions};
use konstacks_core::error::ErrorKind;
use konstacks_core::model::*;
use konstacks_core::retry::RetryPolicy;
use konstacks_core::sim::{Faults, SimCloud, SimConfig};
use konstacks_core::state::{LocalBackend, StateBackend};

fn stack(groups: usize, resized: usize, extra_port: bool) -> Stack {
    let stack = Stack::new("soak", Placement::region("eu-central"), Stage::Prod);
    for g in 0..groups {
        let sc = stack.scope(&format!("g{g}"));
        let vpc = sc.add("vpc", Vpc::new("10.0.0.0/16"));
        let pa = sc.add("public-a", Subnet::new(vpc, "10.0.1.0/24").zone(0).public());
        let pb = sc.add("public-b", Subnet::new(vpc, "10.0.2.0/24").zone(1).public());
        let da = sc.add("private-a", Subnet::new(vpc, "10.0.11.0/24").zone(0));
        let db_ = sc.add("private-b", Subnet::new(vpc, "10.0.12.0/24").zone(1));
        let mut web = Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere());
        if extra_port && g % 2 == 0 {
            web = web.allow(Ingress::tcp(8443).from_anywhere());
        }
        let web_fw = sc.add("web-fw", web);
        let db_fw = sc.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(5432).from(web_fw)));
        let db = sc.add("db", Database::postgres("16", DbSize::Small, [da, db_]).firewall(db_fw));
        let size = if g < resized { VmSize::Large } else { VmSize::Small };
        for (i, sn) in [pa, pb].into_iter().enumerate() {
            sc.add(
                &format!("web-{i}"),
                Vm::new(Image::UbuntuLts, size.clone(), sn).firewall(web_fw).env("DB", db.host()),
            );
        }
    }
    stack
}

async fn assert_exact(sim: &SimCloud, backend: &LocalBackend, expect: usize, phase: &str) {
    let state = backend.load("soak").await.unwrap();
    assert!(state.pending.is_empty(), "{phase}: pending {:?}", state.pending);
    assert!(state.deposed.is_empty(), "{phase}: deposed left");
    let mut by_path: BTreeMap<String, usize> = BTreeMap::new();
    let live = sim.resources_of_stack("soak");
    for r in &live {
        *by_path.entry(r.tags()["konstacks:path"].clone()).or_default() += 1;
    }
    let dups: Vec<_> = by_path.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "{phase}: duplicates {dups:?}");
    let mut cloud: Vec<String> = live.iter().map(|r| r.id().to_string()).collect();
    let mut tracked: Vec<String> = state.resources.values().map(|r| r.id.clone()).collect();
    cloud.sort();
    tracked.sort();
    assert_eq!(cloud, tracked, "{phase}: state and cloud differ");
    assert_eq!(live.len(), expect, "{phase}");
}

async fn soak(seed: u64) -> (u64, u64, usize) {
    let faults = Faults {
        mix: vec![(ErrorKind::Throttled, 0.20), (ErrorKind::Transient, 0.05)],
        timeout_rate: 0.02,
        ..Default::default()
    };
    let sim = Arc::new(SimCloud::new(SimConfig {
        faults,
        consistency_delay: Duration::from_secs(2),
        latency: Duration::from_millis(50),
        seed,
        ..Default::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(LocalBackend::new(dir.path()));
    let retry = RetryPolicy { max_attempts: 16, seed: 7, ..Default::default() };
    let engine = Engine::new(backend.clone()).with_provider(sim.provider()).with_retry(retry).with_sealer(None);

    let mut retries = 0;
    let mut adopted = 0;
    let phases: [(&str, usize, usize, bool, usize); 4] = [
        ("create 1,000", 100, 0, false, 1000),
        ("resize 80 VMs and open a port on 50 firewalls", 100, 40, true, 1000),
        ("remove 30 groups", 70, 40, true, 700),
        ("destroy", 0, 0, false, 0),
    ];
    for (phase, groups, resized, extra, expect) in phases {
        let report = if groups == 0 {
            engine.destroy("soak", &ApplyOptions::default()).await.unwrap()
        } else {
            let s = engine.synth(&stack(groups, resized, extra)).unwrap();
            let r = engine
                .apply(&s, &ApplyOptions { data_loss: DataLossConsent::All, ..Default::default() })
                .await
                .unwrap_or_else(|e| panic!("{phase}: {e}"));
            // Let every new resource become visible, then re-plan reading the cloud (reads fail
            // too, and are retried): it must be empty.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let plan = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
            assert!(plan.is_empty(), "{phase}: re-plan not empty: {}", plan.render(false));
            r
        };
        retries += report.retries;
        adopted += report.adopted.len();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_exact(&sim, &backend, expect, phase).await;
    }
    (sim.calls(), retries, adopted)
}

#[test]
fn thousands_of_faulty_operations_lose_and_duplicate_nothing() {
    let run = |seed| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(soak(seed))
    };
    let (calls, retries, adopted) = run(20261126);
    println!("fault soak: {calls} cloud calls, {retries} retries, {adopted} timed-out creates adopted");
    assert!(calls > 4000, "a soak needs thousands of operations, got {calls}");
    assert!(retries > 500, "the faults must have bitten: {retries} retries");
    assert!(adopted > 0, "some creates must have timed out after succeeding");
    // Seeded and on virtual time: the same seed gives the same run.
    assert_eq!(run(20261126), (calls, retries, adopted), "the soak must be reproducible");
}
