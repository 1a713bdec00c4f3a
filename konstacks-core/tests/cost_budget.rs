//! Budget caps and plan cost deltas against a sim-backed engine: a stack over its cap is refused
//! before any provider call, naming its biggest contributors; a resize shows its monthly change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use konstacks_core::cost::{check_budget, estimate, plan_cost, BudgetExceeded};
use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::model::*;
use konstacks_core::plan::Action;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::{MemoryBackend, StackState};

fn world() -> (Arc<SimCloud>, Engine) {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider()).with_sealer(None);
    (sim, engine)
}

/// VPC, two private subnets and a public one, a Postgres and `vms` public VMs of `size`.
fn stack(name: &str, size: VmSize, vms: usize, budget: Option<f64>) -> Stack {
    let stack = Stack::new(name, Placement::region("eu-central"), Stage::Prod);
    if let Some(b) = budget {
        stack.budget(b);
    }
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = net.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let a = net.add("private-a", Subnet::new(vpc, "10.0.2.0/24").zone(0));
    let b = net.add("private-b", Subnet::new(vpc, "10.0.3.0/24").zone(1));
    // db-medium 60 + 20 GiB storage 2.30 + backups 1.90 = 64.20
    stack.add("db", Database::postgres("16", DbSize::Medium, [a, b]));
    for i in 1..=vms {
        stack.add(&format!("web-{i}"), Vm::new(Image::UbuntuLts, size.clone(), public).public_ip(true));
    }
    stack
}

/// What the engine integration does: estimate and check the budget, and only then touch the
/// cloud.
async fn guarded_apply(engine: &Engine, stack: &Stack) -> Result<(), BudgetExceeded> {
    let s = engine.synth(stack).unwrap();
    let report = estimate(&s, &engine.catalogs());
    check_budget(&s, &report)?;
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_plan_over_budget_is_refused_before_any_provider_call() {
    let (sim, engine) = world();
    // 64.20 + 3 x (large 60 + IPv4 3.65 = 63.65) = 255.15, cap 200.
    let over = stack("shop", VmSize::Large, 3, Some(200.0));
    let err = guarded_apply(&engine, &over).await.unwrap_err();
    assert_eq!(sim.calls(), 0, "a refused plan must not call the provider");
    assert!(sim.resources_of_stack("shop").is_empty());

    assert_eq!((err.cap_usd, err.total_usd), (200.0, 255.15));
    let top: Vec<(&str, f64)> = err.top.iter().map(|c| (c.path.as_str(), c.monthly_usd)).collect();
    assert_eq!(top, [("db", 64.2), ("web-1", 63.65), ("web-2", 63.65)]);
    let msg = err.to_string();
    for needle in ["shop", "$255.15/month", "$200.00/month", "by $55.15", "db $64.20", "web-1 $63.65", "web-2 $63.65"] {
        assert!(msg.contains(needle), "`{needle}` missing from: {msg}");
    }
    assert!(!msg.contains("web-3"), "only the top three are named: {msg}");
    assert!(msg.contains("Nothing was sent to the cloud"), "{msg}");

    // Under the cap, the same path goes ahead and does call the cloud.
    let within = stack("shop", VmSize::Small, 1, Some(200.0));
    guarded_apply(&engine, &within).await.unwrap();
    assert!(sim.calls() > 0);
}

#[test]
fn no_budget_always_passes_and_an_unpriced_stack_cannot_be_capped() {
    let cat = SimCloud::catalog();
    let free = stack("free", VmSize::XLarge, 4, None);
    let s = free.synth(&[&cat]).unwrap();
    assert!(s.budget.is_none());
    check_budget(&s, &estimate(&s, &[&cat])).unwrap();

    let mut cat2 = cat.clone();
    cat2.vm_sizes.push(konstacks_core::provider::Offer::new("gpu", "sim.gpu", None));
    let capped = stack("capped", VmSize::from_slug("gpu"), 1, Some(1000.0));
    let s = capped.synth(&[&cat2]).unwrap();
    let err = check_budget(&s, &estimate(&s, &[&cat2])).unwrap_err();
    assert_eq!(err.unpriced, ["web-1"]);
    let msg = err.to_string();
    assert!(msg.contains("cannot be enforced") && msg.contains("web-1"), "{msg}");
}

#[test]
fn a_budget_is_part_of_the_synthesized_stack_and_validated() {
    let cat = SimCloud::catalog();
    let s = stack("shop", VmSize::Small, 1, Some(150.0)).synth(&[&cat]).unwrap();
    assert_eq!(s.budget.map(|b| b.monthly_usd), Some(150.0));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["budget"]["monthly_usd"], 150.0);
    let none = stack("shop", VmSize::Small, 1, None).synth(&[&cat]).unwrap();
    assert!(serde_json::to_value(&none).unwrap().get("budget").is_none(), "no key when no budget");

    let err = stack("shop", VmSize::Small, 1, Some(-5.0)).synth(&[&cat]).unwrap_err();
    assert!(err.to_string().contains("invalid-budget"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_resize_shows_its_monthly_cost_change() {
    let (_sim, engine) = world();
    let v1 = engine.synth(&stack("shop", VmSize::Small, 2, None)).unwrap();
    engine.apply(&v1, &ApplyOptions::default()).await.unwrap();

    // Both VMs small -> large: resized in place.
    let v2 = engine.synth(&stack("shop", VmSize::Large, 2, None)).unwrap();
    let plan = engine.plan(&v2, &PlanOptions::default()).await.unwrap();
    let state = engine.state("shop").await.unwrap();
    let cost = plan_cost(&plan, &v2, &state, &engine.catalogs());
    let web1 = cost.delta_of("web-1").unwrap();
    assert_eq!(web1.action, Action::Update);
    // small 15 + 3.65 -> large 60 + 3.65
    assert_eq!((web1.before_usd, web1.after_usd, web1.delta_usd), (Some(18.65), Some(63.65), Some(45.0)));
    let db = cost.delta_of("db").unwrap();
    assert_eq!((db.action, db.delta_usd), (Action::NoOp, Some(0.0)));
    // 64.20 + 2 x 18.65 -> 64.20 + 2 x 63.65
    assert_eq!((cost.before_usd, cost.after_usd, cost.delta_usd), (101.5, 191.5, 90.0));
    insta::assert_snapshot!("resize_plan_cost", cost.render());

    // Fewer VMs: the deleted one counts down to zero.
    let v3 = engine.synth(&stack("shop", VmSize::Small, 1, None)).unwrap();
    let plan = engine.plan(&v3, &PlanOptions::default()).await.unwrap();
    let cost = plan_cost(&plan, &v3, &state, &engine.catalogs());
    let gone = cost.delta_of("web-2").unwrap();
    assert_eq!(
        (gone.action, gone.before_usd, gone.after_usd, gone.delta_usd),
        (Action::Delete, Some(18.65), Some(0.0), Some(-18.65))
    );
    assert_eq!(cost.delta_usd, -18.65);

    // Against an empty state everything is a create from zero.
    let fresh = engine.plan_against(&v1, &StackState::empty("shop"));
    let cost = plan_cost(&fresh, &v1, &StackState::empty("shop"), &engine.catalogs());
    assert_eq!((cost.before_usd, cost.after_usd), (0.0, estimate(&v1, &engine.catalogs()).total_usd));
}
