//! Releases on the simulated cloud, through the engine: changing the app of three VMs behind an
//! existing load balancer is planned as a release in batches, runs register -> healthy ->
//! deregister -> delete for each VM (the old ones serve until their replacements are healthy),
//! and leaves an empty re-plan; a release whose new VMs never become healthy is rolled back as a
//! whole (the old VMs serve again, the new ones are gone, the next plan still shows it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::error::Error;
use konstacks_core::model::*;
use konstacks_core::plan::Action;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::spec::{LoadBalancerObserved, VmObserved};
use konstacks_core::state::{MemoryBackend, ReleaseResult};

const VMS: usize = 3;

/// Two public subnets, a load balancer and three VMs running `version` of the app.
fn stack(version: &str, surge: u32, unavailable: u32) -> Stack {
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = net.add("a", Subnet::new(vpc, "10.0.1.0/24").public().zone(0));
    let b = net.add("b", Subnet::new(vpc, "10.0.2.0/24").public().zone(1));
    let app = stack.scope("app");
    let vms: Vec<Ref<Vm>> = (0..VMS)
        .map(|i| {
            let subnet = if i % 2 == 0 { a } else { b };
            let run = App::command("python3 app.py", 8080).health_path("/healthz").version(version);
            app.add(&format!("web-{}", i + 1), Vm::new(Image::UbuntuLts, VmSize::Small, subnet).app(run))
        })
        .collect();
    let group = TargetGroup::new("app", 8080)
        .vms(vms)
        .health_check(TargetHealthCheck::http("/healthz").timing(5, 2).thresholds(2, 2))
        .deregistration_delay_s(10)
        .rolling(surge, unavailable)
        .healthy_within_s(60);
    let lb = app.add("lb", LoadBalancer::public([a, b]).http(80).target_group(group));
    stack.export("url", lb.url());
    stack
}

fn lb(sim: &SimCloud) -> LoadBalancerObserved {
    sim.resources_of_stack("shop").into_iter().find_map(|r| r.get::<LoadBalancer>().cloned()).unwrap()
}

fn vm_ids(sim: &SimCloud) -> Vec<String> {
    let mut ids: Vec<String> = sim
        .resources_of_stack("shop")
        .into_iter()
        .filter_map(|r| r.get::<Vm>().cloned())
        .map(|v: VmObserved| v.id)
        .collect();
    ids.sort();
    ids
}

fn registered(sim: &SimCloud) -> Vec<String> {
    let mut ids: Vec<String> = lb(sim).target_groups.iter().flat_map(|g| g.vm_ids.clone()).collect();
    ids.sort();
    ids
}

async fn applied(version: &str) -> (Arc<SimCloud>, Engine) {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider()).with_sealer(None);
    let s = engine.synth(&stack(version, 1, 0)).unwrap();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    (sim, engine)
}

#[tokio::test(start_paused = true)]
async fn a_new_app_version_is_released_batch_by_batch_behind_the_load_balancer() {
    let (sim, engine) = applied("1").await;
    let old = vm_ids(&sim);
    assert_eq!(registered(&sim), old);

    let s = engine.synth(&stack("2", 1, 0)).unwrap();
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.releases.len(), 1, "{}", plan.render(false));
    let r = &plan.releases[0];
    assert_eq!(r.front, "app/lb");
    assert_eq!(r.batches, vec![vec!["app/web-1".to_string()], vec!["app/web-2".into()], vec!["app/web-3".into()]]);
    assert_eq!((r.from_version.as_deref(), r.to_version.as_deref()), (Some("1"), Some("2")));
    let text = plan.render(false);
    assert!(text.contains("will be released"), "{text}");
    assert!(text.contains("Release: 3 target(s) of app/lb (group `app`) in 3 batch(es)"), "{text}");

    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    let calls = sim.calls_by_op();
    assert_eq!(calls.get("register_targets"), Some(&3), "{calls:?}");
    assert_eq!(calls.get("deregister_targets"), Some(&3), "{calls:?}");
    let new = vm_ids(&sim);
    assert_eq!(new.len(), VMS);
    assert!(new.iter().all(|id| !old.contains(id)), "every VM replaced: {old:?} -> {new:?}");
    assert_eq!(registered(&sim), new, "the load balancer sends traffic to the new VMs only");
    assert!(lb(&sim).targets.iter().all(|t| t.state == "healthy"));
    let state = engine.state("shop").await.unwrap();
    assert!(state.deposed.is_empty() && state.pending.is_empty());
    assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());
    let history = engine.releases("shop").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].result, ReleaseResult::Succeeded);
    assert_eq!((history[0].from_version.as_deref(), history[0].to_version.as_deref()), (Some("1"), Some("2")));
    assert_eq!(history[0].targets.len(), VMS);
}

#[tokio::test(start_paused = true)]
async fn a_release_whose_new_vms_never_become_healthy_is_rolled_back_as_a_whole() {
    let (sim, engine) = applied("1").await;
    let old = vm_ids(&sim);
    // Every VM booted from now on comes up impaired: the load balancer finds it unhealthy.
    sim.set_boot_status("sim-ubuntu-24.04", "impaired");
    sim.set_boot_status("ubuntu-lts", "impaired");
    let s = engine.synth(&stack("2", 2, 0)).unwrap();
    let Err(Error::Apply(report)) = engine.apply(&s, &ApplyOptions::default()).await else {
        panic!("the release must fail");
    };
    assert_eq!(report.rolled_back.len(), VMS - 1, "two batches of two: the first fails, the second never starts");
    let failure = report.failures.iter().map(|f| f.message.clone()).collect::<Vec<_>>().join("\n");
    assert!(failure.contains("release rolled back"), "{failure}");
    assert!(failure.contains("unhealthy"), "the evidence is given: {failure}");
    assert_eq!(vm_ids(&sim), old, "the new VMs are gone, the old ones stay");
    assert_eq!(registered(&sim), old, "the old VMs serve");
    assert!(lb(&sim).targets.iter().all(|t| t.state == "healthy"));
    let state = engine.state("shop").await.unwrap();
    assert!(state.deposed.is_empty() && state.pending.is_empty(), "{state:?}");
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.releases.len(), 1, "the release is still pending:\n{}", plan.render(false));
    let history = engine.releases("shop").await.unwrap();
    assert_eq!(history.iter().map(|r| r.result).collect::<Vec<_>>(), [ReleaseResult::RolledBack]);
    assert!(plan.changes.iter().filter(|c| c.action == Action::Replace).count() == VMS);
}

#[tokio::test(start_paused = true)]
async fn a_release_that_fails_halfway_switches_the_done_targets_back() {
    let (sim, engine) = applied("1").await;
    let old = vm_ids(&sim);
    // The first new VM serves; as soon as it does, every later one boots impaired.
    let mut events = engine.subscribe();
    let watcher = {
        let sim = Arc::clone(&sim);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if let konstacks_core::events::EventKind::Progress { message } = &e.kind {
                    if message.contains("is healthy; draining") {
                        sim.set_boot_status("ubuntu-lts", "impaired");
                    }
                }
            }
        })
    };
    let s = engine.synth(&stack("2", 1, 0)).unwrap();
    let Err(Error::Apply(report)) = engine.apply(&s, &ApplyOptions::default()).await else {
        panic!("the release must fail");
    };
    watcher.abort();
    assert!(report.rolled_back.contains(&"app/web-1".to_string()), "the switched target is undone: {report:?}");
    assert!(report.rolled_back.contains(&"app/web-2".to_string()), "{report:?}");
    assert_eq!(vm_ids(&sim), old, "both new VMs are gone, the three old ones stay");
    assert_eq!(registered(&sim), old, "the old VMs serve again");
    let state = engine.state("shop").await.unwrap();
    assert!(state.deposed.is_empty() && state.pending.is_empty(), "{state:?}");
    assert_eq!(state.resources.get("app/web-1").map(|r| r.id.clone()), old.first().cloned());
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.releases.len(), 1, "{}", plan.render(false));
}

#[tokio::test(start_paused = true)]
async fn with_max_unavailable_the_old_instance_leaves_the_load_balancer_first() {
    let (sim, engine) = applied("1").await;
    let mut events = engine.subscribe();
    let s = engine.synth(&stack("2", 0, 1)).unwrap();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let mut early = 0;
    while let Ok(e) = events.try_recv() {
        if let konstacks_core::events::EventKind::Progress { message } = &e.kind {
            early += usize::from(message.contains("out first (max unavailable)"));
        }
    }
    assert_eq!(early, VMS, "each old VM left before its replacement was made");
    assert_eq!(registered(&sim), vm_ids(&sim));
    assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());
}
