//! A field the provider cannot change in place (its catalogue's `replaced_on_change`) plans a
//! replacement where the kind alone would update: Memorystore's tier follows a cache's high
//! availability, modelled here on the simulated cloud.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::model::*;
use konstacks_core::plan::Action;
use konstacks_core::provider::ReplacedField;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::MemoryBackend;

fn stack(ha: bool) -> Stack {
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = stack.add("a", Subnet::new(vpc, "10.0.1.0/24").zone(0));
    let b = stack.add("b", Subnet::new(vpc, "10.0.2.0/24").zone(1));
    let mut cache = Cache::redis("7", CacheSize::Small, [a, b]);
    if ha {
        cache = cache.replicas(1).high_availability(true);
    }
    stack.add("cache", cache);
    stack
}

async fn plan_of_ha_change(sim: SimCloud) -> (Action, Vec<String>) {
    let sim = Arc::new(sim);
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider()).with_sealer(None);
    engine.apply(&engine.synth(&stack(false)).unwrap(), &ApplyOptions::default()).await.unwrap();
    let plan = engine.plan(&engine.synth(&stack(true)).unwrap(), &PlanOptions::default()).await.unwrap();
    let change = plan.changes.iter().find(|c| c.path == "cache").unwrap();
    (change.action, change.replace_reasons.clone())
}

#[tokio::test(start_paused = true)]
async fn a_field_the_provider_cannot_change_in_place_plans_a_replacement() {
    // The simulated cloud changes high availability in place.
    assert_eq!(plan_of_ha_change(SimCloud::new(SimConfig::default())).await.0, Action::Update);
    // A provider whose catalogue says it cannot is planned as a replacement, with the reason.
    let mut cat = SimCloud::catalog();
    cat.replaced_on_change.push(ReplacedField::new("cache", "high_availability"));
    let (action, reasons) = plan_of_ha_change(SimCloud::new(SimConfig::default()).with_catalog(cat)).await;
    assert_eq!(action, Action::Replace);
    assert_eq!(reasons, ["high_availability"]);
}
