//! The core provider contract suite against the GCP backend on Google's official clients,
//! talking to the fake of Compute Engine and Cloud SQL, which checks every request and response
//! against Google's discovery documents.
#![cfg(feature = "gcp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/clock.rs"]
mod clock;
mod common_gcp;
#[path = "support/gcp.rs"]
mod gcp;

use clock::VirtualClock;
use gcp::{assert_fake_empty, backend, cx, exclusive, fake, REGION};
use konstacks_core::contract::{self, run_compute, run_database, run_network, run_region, ContractOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_suite() {
    let _serial = exclusive().await;
    let b = backend().await;
    let p = b.provider();
    assert!(contract::uncovered(&p).is_empty(), "kinds without a contract suite: {:?}", contract::uncovered(&p));
    let clock = VirtualClock::shared();
    let o = ContractOptions::new(REGION);
    let cx = cx(&clock, &o.stack);
    fake().clear_requests();
    run_region(&p, &cx, &o).await.unwrap();
    run_network(&p, &cx, &o).await.unwrap();
    run_compute(&p, &cx, &o).await.unwrap();
    run_database(&p, &cx, &o).await.unwrap();
    assert_fake_empty();
    let requests = fake().requests();
    // Operations were polled (each takes a few looks) and lists crossed pages.
    assert!(requests.iter().any(|r| r.method_id == "compute.zoneOperations.get"), "no zone operation was polled");
    assert!(requests.iter().any(|r| r.method_id == "sql.operations.get"), "no Cloud SQL operation was polled");
    assert!(requests.iter().any(|r| r.query.contains("pageToken=")), "no listing crossed a page");
    assert!(clock.elapsed().as_secs() > 0, "waits did not use the injected clock");
    fake().assert_no_violations();
}

/// Stacks sharing one project never take each other's resources (import refused with the
/// owner's name, lost state sees only its own resources, adoption by full identity).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_sharing_a_project_never_take_each_others_resources() {
    let _serial = exclusive().await;
    let b = backend().await;
    let o = ContractOptions::new(REGION);
    contract::run_isolation(&b.provider(), VirtualClock::shared(), &o).await.unwrap();
    assert_fake_empty();
    fake().assert_no_violations();
}
