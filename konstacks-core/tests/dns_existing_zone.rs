//! A zone a stack uses without owning it (`DnsZone::existing`), on the simulated cloud: a
//! second stack (a preview) adopts the first stack's zone by its domain, puts its record and its
//! certificate's validation into it, re-plans empty, shows no drift and no data loss, and its
//! destroy leaves the zone and the owner's records in place; the owner still deletes it. A zone
//! that does not exist is a clear error and nothing is created.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use konstacks_core::cost::{estimate, CostReport};
use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::model::*;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::spec::{DnsRecordObserved, DnsZoneObserved};
use konstacks_core::state::MemoryBackend;

fn engine(sim: &Arc<SimCloud>) -> Engine {
    Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider()).with_sealer(None)
}

/// The owner: the zone, and its site's record.
fn owner() -> Stack {
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    let zone = stack.add("zone", DnsZone::new("example.com"));
    stack.add("www", DnsRecord::a(zone, "www", ["203.0.113.10"]));
    stack
}

/// A preview: the owner's zone used as it is, its own name and certificate in it.
fn preview(domain: &str) -> Stack {
    let stack = Stack::new("shop-feature-x", Placement::region("eu-central"), Stage::Prod);
    let zone = stack.add("zone", DnsZone::existing(domain));
    stack.add("host", DnsRecord::a(zone, "feature-x", ["203.0.113.20"]));
    let cert = stack.add("cert", Certificate::new([format!("feature-x.{domain}")]).validate_in(zone));
    stack.export("cert-status", cert.status());
    stack.export("zone-id", zone.zone_id());
    stack
}

fn zones(sim: &SimCloud) -> Vec<DnsZoneObserved> {
    sim.resources().into_iter().filter_map(|r| r.get::<DnsZone>().cloned()).collect()
}

fn records(sim: &SimCloud) -> Vec<DnsRecordObserved> {
    sim.resources().into_iter().filter_map(|r| r.get::<DnsRecord>().cloned()).collect()
}

#[tokio::test(start_paused = true)]
async fn an_existing_zone_is_used_and_left_in_place() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine(&sim);
    let base = engine.synth(&owner()).unwrap();
    engine.apply(&base, &ApplyOptions::default()).await.unwrap();
    let zone = zones(&sim).pop().unwrap();

    let p = engine.synth(&preview("example.com")).unwrap();
    engine.apply(&p, &ApplyOptions::default()).await.unwrap();
    assert_eq!(zones(&sim).len(), 1, "the preview made no zone of its own");
    let host = records(&sim).into_iter().find(|r| r.fqdn == "feature-x.example.com").unwrap();
    assert_eq!(host.zone_id, zone.id, "the record went into the owner's zone");
    let state = engine.state("shop-feature-x").await.unwrap();
    assert_eq!(state.outputs["zone-id"], zone.id.as_str());
    assert_eq!(state.outputs["cert-status"], "issued", "validated in the zone it does not own");
    assert_eq!(zones(&sim)[0].tags, zone.tags, "the owner's tags were not touched");

    // Nothing to do again, nothing drifted, and forgetting the zone loses nothing.
    let again = engine.plan(&p, &PlanOptions::refreshing()).await.unwrap();
    assert!(again.is_empty(), "{}", again.render(false));
    assert!(engine.drift("shop-feature-x").await.unwrap().is_clean());
    let down = engine.plan_destroy("shop-feature-x").await.unwrap();
    let forget = down.change("zone").unwrap();
    assert!(!forget.data_loss, "{}", down.render(false));

    // The preview's destroy removes its own records and leaves the zone and the owner's record.
    engine.destroy("shop-feature-x", &ApplyOptions::default()).await.unwrap();
    assert!(engine.state("shop-feature-x").await.unwrap().resources.is_empty());
    assert_eq!(zones(&sim).len(), 1, "the zone is still there");
    let left: Vec<String> = records(&sim).into_iter().map(|r| r.fqdn).collect();
    assert_eq!(left, ["www.example.com"]);
    assert!(
        !zones(&sim)[0].managed_records.iter().any(|m| m.fqdn.contains("feature-x")),
        "the certificate's validation records went with it: {:?}",
        zones(&sim)[0].managed_records
    );
    assert!(engine.plan(&base, &PlanOptions::refreshing()).await.unwrap().is_empty(), "the owner sees no change");

    // The owner still owns it: its destroy deletes the zone.
    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(zones(&sim).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_missing_zone_is_an_error_and_nothing_is_created() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine(&sim);
    let p = engine.synth(&preview("example.org")).unwrap();
    let err = engine.apply(&p, &ApplyOptions::default()).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("no DNS zone for `example.org` exists"), "{message}");
    assert!(sim.resources().is_empty(), "nothing was created: {:?}", sim.resources());
    let state = engine.state("shop-feature-x").await.unwrap();
    assert!(state.resources.is_empty(), "{:?}", state.resources.keys().collect::<Vec<_>>());
}

#[test]
fn an_existing_zone_costs_its_user_nothing() {
    let cat = SimCloud::catalog();
    let owned = estimate(&owner().synth(&[&cat]).unwrap(), &[&cat]);
    let used = estimate(&preview("example.com").synth(&[&cat]).unwrap(), &[&cat]);
    let zone = |r: &CostReport| r.resources.iter().find(|l| l.path == "zone").and_then(|l| l.monthly_usd);
    assert!(zone(&owned).is_some_and(|usd| usd > 0.0), "{owned:?}");
    assert_eq!(zone(&used), Some(0.0), "{used:?}");
}
