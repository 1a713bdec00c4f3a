//! The kind registry end to end: a provider registers the kinds it offers, synth refuses a kind
//! the chosen provider lacks and names the providers that offer it, and the `Cache` kind goes
//! through the whole lifecycle on the simulated cloud (apply, empty re-plan, in-place update,
//! replacement on a force-new field, secret auth token, destroy leaving nothing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use konstacks_core::engine::{ApplyOptions, DataLossConsent, Engine, PlanOptions};
use konstacks_core::error::Error;
use konstacks_core::kinds;
use konstacks_core::model::*;
use konstacks_core::plan::Action;
use konstacks_core::provider::{Catalog, Provider};
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::MemoryBackend;

/// A network, two private subnets, a firewall, and a Redis cache of `size` with `replicas`.
fn stack(size: CacheSize, replicas: u32, engine: CacheEngine) -> Stack {
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = net.add("a", Subnet::new(vpc, "10.0.1.0/24").zone(0));
    let b = net.add("b", Subnet::new(vpc, "10.0.2.0/24").zone(1));
    let fw = net.add("cache-fw", Firewall::new(vpc).allow(Ingress::tcp(6379).from_cidr("10.0.0.0/16")));
    let cache = match engine {
        CacheEngine::Valkey => Cache::valkey("8", size, [a, b]),
        _ => Cache::redis("7", size, [a, b]),
    };
    let cache = stack.add("cache", cache.firewall(fw).replicas(replicas).high_availability(replicas > 0));
    stack.export("cache-host", cache.host());
    stack.export("cache-token", cache.auth_token());
    stack
}

/// The simulated cloud without the cache kind: a provider may offer a subset.
fn without_cache(sim: &Arc<SimCloud>) -> Provider {
    Provider::builder("nocache", Arc::clone(sim) as _)
        .kind::<Vpc>(Arc::clone(sim) as _)
        .kind::<Subnet>(Arc::clone(sim) as _)
        .kind::<Firewall>(Arc::clone(sim) as _)
        .build()
}

#[test]
fn a_partial_provider_lists_only_what_it_registers() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let p = without_cache(&sim);
    assert_eq!(p.catalog().kinds, ["firewall", "subnet", "vpc"]);
    assert!(p.typed::<Vpc>().is_some());
    assert!(p.typed::<Cache>().is_none());
    assert!(p.api(Cache::KIND).is_none());
    assert_eq!(sim.provider().kinds().count(), kinds::ALL.len());
}

#[test]
fn synth_refuses_a_kind_the_provider_lacks_and_names_who_offers_it() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let partial = without_cache(&sim);
    let mut cat: Catalog = partial.catalog().clone();
    cat.provider = "nocache".into();
    let full = SimCloud::catalog();
    let s = stack(CacheSize::Small, 0, CacheEngine::Redis);
    s.provider("nocache");
    let Err(Error::Invalid(d)) = s.synth(&[&cat, &full]) else { panic!("the stack must be refused") };
    let not_offered: Vec<_> = d.iter().filter(|d| d.code == "kind-not-offered").collect();
    assert_eq!(not_offered.len(), 1, "{d}");
    assert_eq!(not_offered[0].path, "shop/cache");
    assert!(not_offered[0].message.contains("provider `nocache` does not offer the `cache` kind"), "{d}");
    assert!(not_offered[0].help.contains("providers that offer it: sim"), "{d}");
}

#[test]
fn cache_validation_reports_every_problem() {
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = stack.add("a", Subnet::new(vpc, "10.0.1.0/24"));
    stack.add(
        "cache",
        Cache::redis("5", CacheSize::Custom("huge".into()), [a])
            .replicas(9)
            .high_availability(true)
            .generated_auth_token(8),
    );
    stack.add("orphan", Cache::valkey("8", CacheSize::Micro, []).high_availability(true));
    let Err(Error::Invalid(d)) = stack.synth(&[&SimCloud::catalog()]) else { panic!("must be refused") };
    let codes: Vec<(&str, &str)> = d.iter().map(|d| (d.path.as_str(), d.code)).collect();
    for want in [
        ("shop/cache", "unknown-engine-version"),
        ("shop/cache", "unknown-size"),
        ("shop/cache", "replicas-out-of-range"),
        ("shop/cache", "weak-secret"),
        ("shop/cache", "ha-needs-two-zones"),
        ("shop/orphan", "missing-subnets"),
        ("shop/orphan", "ha-needs-replica"),
    ] {
        assert!(codes.contains(&want), "{want:?} missing from {d}");
    }
}

#[tokio::test(start_paused = true)]
async fn cache_lifecycle_on_the_simulated_cloud() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider()).with_sealer(None);

    let s = engine.synth(&stack(CacheSize::Small, 1, CacheEngine::Redis)).unwrap();
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.summary.create, 5);
    let rendered = plan.render(false);
    assert!(rendered.contains("+ cache cache"), "{rendered}");
    // The auth token is a generated secret: the plan shows a redacted marker, never a value.
    let token = plan.changes.iter().find(|c| c.path == "cache").unwrap();
    let token = token.fields.iter().find(|f| f.name == "auth_token").unwrap();
    let shown = token.after.as_ref().and_then(|v| v.as_str()).unwrap_or_default().to_string();
    assert!(
        shown.starts_with(konstacks_core::secret::REDACTED) && shown.ends_with("generated, 32 characters"),
        "{shown}"
    );
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.created.contains(&"cache".to_string()), "{report:?}");
    let cache = sim.resources_of_stack("shop").into_iter().find_map(|r| r.get::<Cache>().cloned()).unwrap();
    assert_eq!((cache.engine, cache.replicas, cache.size.as_str()), (CacheEngine::Redis, 1, "cache-small"));
    assert!(cache.high_availability && cache.transit_encryption);
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // State keeps the token's marker as the input, like any secret.
    let state = engine.state("shop").await.unwrap();
    let input =
        state.resources["cache"].inputs.get("auth_token").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    assert_eq!(input, shown);

    // A bigger node and no replica: an update in place.
    let s2 = engine.synth(&stack(CacheSize::Medium, 0, CacheEngine::Redis)).unwrap();
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    let change = plan.changes.iter().find(|c| c.path == "cache").unwrap();
    assert_eq!(change.action, Action::Update, "{}", plan.render(false));
    engine.apply(&s2, &ApplyOptions::default()).await.unwrap();
    let cache = sim.resources_of_stack("shop").into_iter().find_map(|r| r.get::<Cache>().cloned()).unwrap();
    assert_eq!((cache.replicas, cache.size.as_str()), (0, "cache-medium"));

    // Another engine is a force-new field: a replacement.
    let s3 = engine.synth(&stack(CacheSize::Medium, 0, CacheEngine::Valkey)).unwrap();
    let plan = engine.plan(&s3, &PlanOptions::default()).await.unwrap();
    let change = plan.changes.iter().find(|c| c.path == "cache").unwrap();
    assert_eq!(change.action, Action::Replace, "{}", plan.render(false));
    assert!(change.data_loss, "a cache replacement loses its data");
    let consent = DataLossConsent::Paths(["cache".to_string()].into());
    engine.apply(&s3, &ApplyOptions { data_loss: consent, ..Default::default() }).await.unwrap();
    assert!(engine.plan(&s3, &PlanOptions::refreshing()).await.unwrap().is_empty());

    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(sim.resources_of_stack("shop").is_empty());
}
