//! Refresh at scale on moto (issue #20): a stack of 1,000 VMs and 1,000 security groups, applied
//! by the engine itself, is read back by every engine entry point that refreshes state (`drift`,
//! `refresh`, `plan` with refresh, `apply` with refresh). Each must see every resource and make
//! at most 2% of the naive call count (one read per resource: 2,000 calls, so 40 calls).
//!
//! Run with: bash scripts/test-aws.sh (it starts moto and sets KONSTACKS_MOTO_ENDPOINT).
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_aws;

use std::sync::Arc;
use std::time::Instant;

use common_aws::{engine, provider, REGION};
use konstacks_core::engine::{ApplyOptions, DriftStatus, Engine, PlanOptions};
use konstacks_core::model::{Firewall, Image, Ingress, Placement, Stack, Stage, Subnet, Vm, VmSize, Vpc};
use konstacks_core::provider::ProviderLimits;
use konstacks_core::state::MemoryBackend;
use konstacks_providers::aws::{ApiCalls, AwsProvider};

/// A moto account of its own, so the 2,000 resources never show up in another test.
const ACCOUNT: &str = "100000000301";
const STACK: &str = "fleet";
/// VMs, and as many security groups.
const N: usize = 1_000;
/// Naive refresh: one read call per VM and per security group.
const NAIVE_CALLS: u64 = 2 * N as u64;
/// The bound: at most 2% of the naive count.
const MAX_CALLS: u64 = NAIVE_CALLS * 2 / 100;

/// One VPC, one subnet large enough for every VM, `N` security groups with one rule each and
/// `N` VMs, VM `i` in group `i`.
fn fleet() -> Stack {
    let stack = Stack::new(STACK, Placement::region(REGION), Stage::Dev);
    stack.provider("aws");
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.40.0.0/16"));
    let subnet = net.add("subnet", Subnet::new(vpc, "10.40.0.0/20").zone(0));
    let (fws, app) = (stack.scope("fw"), stack.scope("app"));
    for i in 0..N {
        let fw = fws.add(&format!("fw-{i:04}"), Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
        app.add(&format!("vm-{i:04}"), Vm::new(Image::UbuntuLts, VmSize::Micro, subnet).firewall(fw));
    }
    stack
}

/// The engine of the test: moto does not throttle, so the pacing the provider advertises for
/// real AWS (10 calls/s) is lifted; concurrency stays the provider's.
fn unpaced_engine(aws: &Arc<AwsProvider>) -> Engine {
    let mut p = aws.clone().provider();
    p.limits = ProviderLimits { calls_per_second: None, ..p.limits };
    engine(aws, Arc::new(MemoryBackend::new())).with_provider(p)
}

fn show(what: &str, calls: &ApiCalls, started: Instant) {
    eprintln!(
        "{what}: {} AWS API calls ({:.2}% of the naive {NAIVE_CALLS}) in {:.2?}; by operation: {:?}",
        calls.total,
        100.0 * calls.total as f64 / NAIVE_CALLS as f64,
        started.elapsed(),
        calls.by_operation
    );
}

fn assert_within_bound(what: &str, calls: &ApiCalls) {
    assert!(
        calls.total <= MAX_CALLS,
        "{what} made {} AWS API calls, more than 2% of the naive {NAIVE_CALLS} ({MAX_CALLS}): {:?}",
        calls.total,
        calls.by_operation
    );
    let writes: Vec<&String> = calls
        .by_operation
        .keys()
        .filter(|op| !op.starts_with("Describe") && !op.starts_with("List") && !op.starts_with("Get"))
        .collect();
    assert!(writes.is_empty(), "{what} changed something in the cloud: {writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_of_1000_vms_and_1000_security_groups_stays_within_2_percent_of_naive_calls() {
    let aws = provider(ACCOUNT).await;
    let engine = unpaced_engine(&aws);
    let s = engine.synth(&fleet()).unwrap();

    let t = Instant::now();
    aws.reset_api_calls();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    show("apply of the fleet", &aws.api_calls(), t);
    let state = engine.state(STACK).await.unwrap();
    let count = |kind: &str| state.resources.values().filter(|r| r.kind.to_string() == kind).count();
    assert_eq!((count("vm"), count("firewall")), (N, N), "the apply made the whole fleet");
    let total = state.resources.len();

    // drift: reads everything, changes nothing.
    aws.reset_api_calls();
    let t = Instant::now();
    let drift = engine.drift(STACK).await.unwrap();
    let calls = aws.api_calls();
    show("drift", &calls, t);
    assert_eq!(drift.checked, total);
    assert!(drift.is_clean(), "every resource was read and matches state:\n{}", drift.render());
    assert_within_bound("drift", &calls);

    // refresh: reads everything into state; nothing is gone, so every resource stays.
    aws.reset_api_calls();
    let t = Instant::now();
    let refreshed = engine.refresh(STACK).await.unwrap();
    let calls = aws.api_calls();
    show("refresh", &calls, t);
    assert_eq!(refreshed.checked, total, "no resource left state:\n{}", refreshed.render());
    assert!(!refreshed.items.iter().any(|i| i.status == DriftStatus::Deleted), "{}", refreshed.render());
    assert_eq!(engine.state(STACK).await.unwrap().resources.len(), total);
    assert_within_bound("refresh", &calls);

    // plan with refresh: a resource not read back would be planned as a create.
    aws.reset_api_calls();
    let t = Instant::now();
    let plan = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    let calls = aws.api_calls();
    show("plan with refresh", &calls, t);
    assert!(plan.is_empty(), "{}", plan.render(false));
    assert_within_bound("plan with refresh", &calls);

    // apply with refresh: the same, and nothing to do.
    aws.reset_api_calls();
    let t = Instant::now();
    let report = engine.apply(&s, &ApplyOptions { refresh: true, ..Default::default() }).await.unwrap();
    let calls = aws.api_calls();
    show("apply with refresh", &calls, t);
    assert!(report.failures.is_empty());
    assert_eq!(engine.state(STACK).await.unwrap().resources.len(), total);
    assert_within_bound("apply with refresh", &calls);

    let t = Instant::now();
    engine.destroy(STACK, &ApplyOptions::default()).await.unwrap();
    eprintln!("destroy of the fleet: {:.2?}", t.elapsed());
    assert!(engine.state(STACK).await.unwrap().resources.is_empty());
}
