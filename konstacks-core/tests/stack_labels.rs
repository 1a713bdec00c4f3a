//! Labels on a stack's state: written by an apply before its first change, kept across a
//! reload of the state directory, removed by an empty value through `Engine::label`, and not
//! written by a run refused before any change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use konstacks_core::engine::{ApplyOptions, Engine};
use konstacks_core::model::*;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::{LocalBackend, StateBackend};

fn stack() -> Stack {
    let stack = Stack::new("labelled", Placement::within(Jurisdiction::Eu), Stage::Dev);
    stack.add("vpc", Vpc::new("10.0.0.0/16"));
    stack
}

#[tokio::test]
async fn labels_are_written_kept_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = Engine::new(Arc::new(LocalBackend::new(dir.path()))).with_provider(sim.provider()).with_sealer(None);
    let labels = BTreeMap::from([("team".to_string(), "web".to_string()), ("ttl".to_string(), "3".to_string())]);

    // Over budget: refused before any change, so no label either.
    let pricey = Stack::new("labelled", Placement::within(Jurisdiction::Eu), Stage::Dev);
    let vpc = pricey.add("vpc", Vpc::new("10.0.0.0/16"));
    let subnet = pricey.add("web", Subnet::new(vpc, "10.0.1.0/24").public());
    pricey.add("vm", Vm::new(Image::UbuntuLts, VmSize::Small, subnet));
    pricey.budget(0.01);
    let s = engine.synth(&pricey).unwrap();
    let opts = ApplyOptions { labels: labels.clone(), ..Default::default() };
    let refused = engine.apply(&s, &opts).await.unwrap_err();
    assert!(refused.to_string().contains("budget"), "{refused}");
    assert!(engine.state("labelled").await.unwrap().labels.is_empty());

    let s = engine.synth(&stack()).unwrap();
    engine.apply(&s, &ApplyOptions { labels: labels.clone(), ..Default::default() }).await.unwrap();
    let reloaded = LocalBackend::new(dir.path()).load("labelled").await.unwrap();
    assert_eq!(reloaded.labels, labels);

    engine.label("labelled", BTreeMap::from([("ttl".to_string(), String::new())])).await.unwrap();
    let after = LocalBackend::new(dir.path()).load("labelled").await.unwrap();
    assert_eq!(after.labels, BTreeMap::from([("team".to_string(), "web".to_string())]));
    // A later apply without labels keeps them.
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(engine.state("labelled").await.unwrap().labels.len(), 1);
}
