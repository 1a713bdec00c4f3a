//! The `web-app` template end to end on the DigitalOcean backend through the real engine: apply,
//! an empty re-plan, an in-place firewall rule change, a database resize, destroy leaving
//! nothing in the fake; and a South Africa placement failing at synth with no API call.
#![cfg(feature = "digitalocean")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_do;

use std::sync::Arc;

use common_do::{assert_no_violations, backend, harness, provider, VirtualClock};
use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::model::{Jurisdiction, Placement, Stage};
use konstacks_core::plan::Action;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::MemoryBackend;
use konstacks_templates::TemplateContext;
use serde_json::json;

fn context(name: &str) -> TemplateContext {
    TemplateContext::new(name, Stage::Dev).placement(Placement::region("fra1")).provider("digitalocean")
}

fn changes(plan: &konstacks_core::plan::Plan) -> Vec<(String, Action, Vec<String>)> {
    plan.changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| (c.path.clone(), c.action, c.fields.iter().map(|f| f.name.clone()).collect()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_lifecycle() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    h.fake.set_max_per_page(200);
    let b = backend();
    let clock = VirtualClock::shared();
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(provider(&b)).with_clock(clock.clone());
    let template = konstacks_templates::find("web-app").unwrap();
    let build = |params: serde_json::Value| {
        let stack = template.build_json(&context("shop"), params).unwrap();
        engine.synth(&stack).unwrap()
    };

    // Apply.
    let s = build(json!({"admin_cidr": "203.0.113.0/24"}));
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.created.len(), s.resources.len());
    let snap = h.fake.snapshot();
    assert_eq!(snap.vpcs, ["shop-network-vpc"]);
    assert_eq!(snap.droplets, ["shop-app-web-1"]);
    assert_eq!(snap.databases, ["shop-data-postgres"]);
    assert_eq!(snap.projects, ["shop"]);
    assert!(snap.tags.contains(&"konstacks:stack:shop".to_string()));
    // The app's droplet carries the web firewall's tag, which is what the database trusts.
    let fw_tags: Vec<String> =
        h.fake.droplet_tags("shop-app-web-1").into_iter().filter(|t| t.starts_with("kxfw:")).collect();
    assert_eq!(fw_tags.len(), 1, "{fw_tags:?}");
    assert_eq!(h.fake.database_rules("shop-data-postgres"), [format!("tag:{}", fw_tags[0])]);
    let db_host = report.outputs.get("database-host").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    assert!(db_host.contains("shop-data-postgres"), "{:?}", report.outputs);
    // DigitalOcean generates the admin password: the app gets the one the cluster reports, not
    // the one the engine generated and DigitalOcean ignored.
    let env = h.fake.droplet_env("shop-app-web-1");
    let real = h.fake.database_password("shop-data-postgres").expect("the cluster has a password");
    assert_eq!(env.get("DATABASE_USER").map(String::as_str), Some("doadmin"));
    assert!(env.get("DATABASE_PASSWORD") == Some(&real), "the app did not receive the cluster's password");

    // Nothing to do the second time.
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", changes(&plan));
    // Reading the cloud first shows only what DigitalOcean fixes itself: 7 days of backups
    // where the dev stage asks for 1.
    let refreshed = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert_eq!(
        changes(&refreshed),
        [("data/postgres".to_string(), Action::Update, vec!["backup_retention_days".to_string()])]
    );

    // A firewall rule changes in place.
    let s = build(json!({"admin_cidr": "198.51.100.0/24"}));
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(changes(&plan), [("network/web-fw".to_string(), Action::Update, vec!["ingress".to_string()])]);
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.updated, ["network/web-fw"]);
    let rules = h.fake.firewall_inbound("shop-network-web-fw");
    assert!(rules.iter().any(|r| r == "tcp/22/addresses:198.51.100.0/24"), "{rules:?}");
    assert!(!rules.iter().any(|r| r.contains("203.0.113.0/24")), "{rules:?}");

    // The database is resized in place.
    let s = build(json!({"admin_cidr": "198.51.100.0/24", "db_size": "db-small"}));
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(changes(&plan), [("data/postgres".to_string(), Action::Update, vec!["size".to_string()])]);
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.updated, ["data/postgres"]);
    assert_eq!(h.fake.database_size("shop-data-postgres").as_deref(), Some("db-s-1vcpu-2gb"));
    assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());

    // Destroy leaves nothing.
    let report = engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let snap = h.fake.snapshot();
    assert!(snap.vpcs.is_empty() && snap.firewalls.is_empty() && snap.droplets.is_empty(), "{snap:?}");
    assert!(snap.databases.is_empty() && snap.projects.is_empty(), "{snap:?}");
    let ours: Vec<&String> =
        snap.tags.iter().filter(|t| ["konstacks:", "kx", "kn:", "kt:"].iter().any(|p| t.starts_with(p))).collect();
    assert!(ours.is_empty(), "tags left: {ours:?}");
    assert_no_violations(&b);
}

/// With Redis, the app also receives the caching cluster's generated password as its auth token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_with_redis_gets_the_clusters_real_passwords() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    h.fake.set_max_per_page(200);
    let b = backend();
    let engine =
        Engine::new(Arc::new(MemoryBackend::new())).with_provider(provider(&b)).with_clock(VirtualClock::shared());
    let template = konstacks_templates::find("web-app").unwrap();
    let stack = template.build_json(&context("cart"), json!({"admin_cidr": "203.0.113.0/24", "redis": true})).unwrap();
    let s = engine.synth(&stack).unwrap();
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let env = h.fake.droplet_env("cart-app-web-1");
    let db = h.fake.database_password("cart-data-postgres").expect("the database has a password");
    let redis = h.fake.database_password("cart-data-redis").expect("the cache has a password");
    assert!(db != redis, "the fake gives every cluster its own password");
    assert!(env.get("DATABASE_PASSWORD") == Some(&db), "the app did not receive the database's password");
    assert!(env.get("REDIS_PASSWORD") == Some(&redis), "the app did not receive the cache's password");
    // An empty re-plan: the real passwords sealed in state are what the app's inputs hold.
    assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());
    let report = engine.destroy("cart", &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert!(h.fake.snapshot().databases.is_empty());
    assert_no_violations(&b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn south_africa_fails_at_synth_without_api_calls() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    let b = backend();
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(provider(&b)).with_provider(sim.provider());
    let cx = TemplateContext::new("za-shop", Stage::Dev)
        .placement(Placement::within(Jurisdiction::SouthAfrica))
        .provider("digitalocean");
    let stack = konstacks_templates::find("web-app").unwrap().build_json(&cx, json!({})).unwrap();
    let before = h.fake.log().len();
    let err = engine.synth(&stack).unwrap_err().to_string();
    assert!(err.contains("provider `digitalocean` has no region within jurisdiction `south_africa`"), "{err}");
    assert!(err.contains("sim (af-south)"), "the message names who could: {err}");
    assert_eq!(h.fake.log().len(), before, "synth made API calls");
}

fn https_params(version: &str, health: &str) -> serde_json::Value {
    json!({
        "admin_cidr": "203.0.113.0/24",
        "app_image": "ghcr.io/example/shop:1",
        "app_version": version,
        "vm_count": 2,
        "domain": "www.tide-shop.test",
        "zone": "tide-shop.test",
        "health_path": health,
    })
}

/// `web-app` with a domain and its zone: a load balancer with HTTPS on a Let's Encrypt
/// certificate and HTTP redirected, the droplets behind it, the domain's A record to its address;
/// an empty re-plan, a health check change in place, a release that adds the new droplets before
/// the old ones leave, and destroy leaving nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_serves_https_on_its_domain() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    h.fake.set_max_per_page(200);
    let b = backend();
    let clock = VirtualClock::shared();
    // The database password DigitalOcean generated is sealed in state: new droplets get it too.
    let sealer = konstacks_core::secret::Sealer::from_passphrase(&konstacks_core::secret::Secret::new(
        "web-app https test passphrase, not a secret".to_string(),
    ));
    let engine = Engine::new(Arc::new(MemoryBackend::new()))
        .with_provider(provider(&b))
        .with_clock(clock.clone())
        .with_sealer(Some(sealer));
    let template = konstacks_templates::find("web-app").unwrap();
    let build = |params: serde_json::Value| {
        let stack = template.build_json(&context("tide"), params).unwrap();
        engine.synth(&stack).unwrap()
    };

    let s = build(https_params("1", "/healthz"));
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let snap = h.fake.snapshot();
    assert_eq!(snap.load_balancers.len(), 1, "{snap:?}");
    assert_eq!(snap.domains, ["tide-shop.test"]);
    assert_eq!(snap.certificates.len(), 1, "{snap:?}");
    let lb = h.fake.load_balancer(&snap.load_balancers[0]).unwrap();
    let state = engine.state("tide").await.unwrap();
    let cert_id = state.resources["edge/certificate"].id.clone();
    let rules: Vec<(String, u64, String)> = lb["forwarding_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let entry = r["entry_protocol"].as_str().unwrap_or_default().to_string();
            (entry, r["entry_port"].as_u64().unwrap_or(0), r["certificate_id"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    assert!(rules.contains(&("https".into(), 443, cert_id.clone())), "{rules:?} (certificate {cert_id})");
    assert!(rules.contains(&("http".into(), 80, String::new())), "{rules:?}");
    assert_eq!(lb["redirect_http_to_https"], json!(true));
    assert_eq!(lb["health_check"]["path"], json!("/healthz"));
    let old: Vec<u64> = ["app/web-1", "app/web-2"].iter().map(|p| state.resources[*p].id.parse().unwrap()).collect();
    let mut behind: Vec<u64> = lb["droplet_ids"].as_array().unwrap().iter().filter_map(|d| d.as_u64()).collect();
    behind.sort();
    let mut want = old.clone();
    want.sort();
    assert_eq!(behind, want, "both droplets are behind the load balancer");
    // The droplets' firewall lets the load balancer in (it is not a droplet of `lb-fw`).
    let web_fw = h.fake.firewall_inbound("tide-network-web-fw");
    let lb_id = lb["id"].as_str().unwrap().to_string();
    assert!(web_fw.contains(&format!("tcp/80/load_balancer_uids:{lb_id}")), "{web_fw:?}");
    let ip = lb["ip"].as_str().unwrap().to_string();
    assert!(
        h.fake.domain_records("tide-shop.test").contains(&format!("A www {ip}")),
        "{:?}",
        h.fake.domain_records("tide-shop.test")
    );
    assert_eq!(report.outputs["url"], json!("https://www.tide-shop.test"));

    assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());
    let refreshed = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert_eq!(
        changes(&refreshed),
        [("data/postgres".to_string(), Action::Update, vec!["backup_retention_days".to_string()])],
        "only what DigitalOcean fixes itself:\n{}",
        refreshed.render(true)
    );

    // The health check changes on the load balancer in place (the app learns its new health
    // path too, so its droplets are released).
    let s = build(https_params("1", "/ready"));
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert!(
        changes(&plan).contains(&("app/lb".to_string(), Action::Update, vec!["target_groups".to_string()])),
        "{:?}",
        changes(&plan)
    );
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let lb = h.fake.load_balancer(&snap.load_balancers[0]).unwrap();
    assert_eq!(lb["health_check"]["path"], json!("/ready"));
    assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());

    // A release: new droplets join before the old ones leave, and only then are deleted.
    let state = engine.state("tide").await.unwrap();
    let old: Vec<u64> = ["app/web-1", "app/web-2"].iter().map(|p| state.resources[*p].id.parse().unwrap()).collect();
    let before = h.fake.log().len();
    let s = build(https_params("2", "/ready"));
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert!(plan.render(false).contains("will be released"), "{}", plan.render(false));
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let log = h.fake.log()[before..].to_vec();
    let first = |p: &dyn Fn(&str) -> bool| log.iter().position(|l| p(l)).unwrap_or(usize::MAX);
    let added = first(&|l| l.starts_with(&format!("POST /v2/load_balancers/{lb_id}/droplets")));
    let health =
        log.iter().skip(added).position(|l| l.contains("droplets_health_checks")).map_or(usize::MAX, |p| p + added);
    let removed = first(&|l| l.starts_with(&format!("DELETE /v2/load_balancers/{lb_id}/droplets")));
    let deleted = first(&|l| old.iter().any(|o| l.starts_with(&format!("DELETE /v2/droplets/{o}"))));
    assert!(added < health && health < removed && removed < deleted && deleted != usize::MAX, "{log:#?}");
    let lb = h.fake.load_balancer(&snap.load_balancers[0]).unwrap();
    let now: Vec<u64> = lb["droplet_ids"].as_array().unwrap().iter().filter_map(|d| d.as_u64()).collect();
    assert_eq!(now.len(), 2);
    assert!(now.iter().all(|d| !old.contains(d)), "{now:?} vs {old:?}");

    let report = engine.destroy("tide", &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let snap = h.fake.snapshot();
    assert!(snap.load_balancers.is_empty() && snap.domains.is_empty() && snap.certificates.is_empty(), "{snap:?}");
    assert!(snap.droplets.is_empty() && snap.vpcs.is_empty() && snap.projects.is_empty(), "{snap:?}");
    let ours: Vec<&String> =
        snap.tags.iter().filter(|t| ["konstacks:", "kx", "kn:", "kt:"].iter().any(|p| t.starts_with(p))).collect();
    assert!(ours.is_empty(), "tags left: {ours:?}");
    assert_no_violations(&b);
}

/// A release whose new droplets never pass the load balancer's health check is rolled back: the
/// old droplets stay behind the load balancer and in state, the new ones are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_release_is_rolled_back() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    h.fake.set_max_per_page(200);
    let b = backend();
    let sealer = konstacks_core::secret::Sealer::from_passphrase(&konstacks_core::secret::Secret::new(
        "rollback test passphrase, not a secret".to_string(),
    ));
    let engine = Engine::new(Arc::new(MemoryBackend::new()))
        .with_provider(provider(&b))
        .with_clock(VirtualClock::shared())
        .with_sealer(Some(sealer));
    let template = konstacks_templates::find("web-app").unwrap();
    let build =
        |params: serde_json::Value| engine.synth(&template.build_json(&context("ebb"), params).unwrap()).unwrap();
    engine.apply(&build(https_params("1", "/healthz")), &ApplyOptions::default()).await.unwrap();
    let state = engine.state("ebb").await.unwrap();
    let old: std::collections::BTreeSet<u64> =
        ["app/web-1", "app/web-2"].iter().map(|p| state.resources[*p].id.parse().unwrap()).collect();
    h.fake.set_healthy_only(Some(old.clone()));

    let s2 = build(https_params("2", "/healthz"));
    let err = engine.apply(&s2, &ApplyOptions::default()).await.expect_err("the new droplets never turn healthy");
    assert!(err.to_string().contains("healthy"), "{err}");
    h.fake.set_healthy_only(None);
    let state = engine.state("ebb").await.unwrap();
    let kept: std::collections::BTreeSet<u64> =
        ["app/web-1", "app/web-2"].iter().map(|p| state.resources[*p].id.parse().unwrap()).collect();
    assert_eq!(kept, old, "state still holds the old droplets");
    let lb_name = h.fake.snapshot().load_balancers[0].clone();
    let lb = h.fake.load_balancer(&lb_name).unwrap();
    let behind: std::collections::BTreeSet<u64> =
        lb["droplet_ids"].as_array().unwrap().iter().filter_map(|d| d.as_u64()).collect();
    assert_eq!(behind, old, "the old droplets still serve");
    assert_eq!(h.fake.snapshot().droplets.len(), 2, "the new droplets are gone: {:?}", h.fake.snapshot().droplets);
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    assert!(plan.render(false).contains("will be released"), "the release is still to do:\n{}", plan.render(false));

    engine.destroy("ebb", &ApplyOptions::default()).await.unwrap();
    assert!(h.fake.snapshot().load_balancers.is_empty());
    assert_no_violations(&b);
}

/// `agency-sites` with three client domains, each in its own zone: on DigitalOcean every client
/// gets its own load balancer (one pool, one certificate each) with a Let's Encrypt certificate
/// and an A record; an empty re-plan, a fourth client added without touching the others, and
/// destroy leaving nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agency_sites_with_three_client_domains() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    h.fake.set_max_per_page(200);
    let b = backend();
    let engine =
        Engine::new(Arc::new(MemoryBackend::new())).with_provider(provider(&b)).with_clock(VirtualClock::shared());
    let template = konstacks_templates::find("agency-sites").unwrap();
    let client =
        |name: &str| json!({"name": name, "domain": format!("www.{name}.test"), "zone": format!("{name}.test")});
    let build = |clients: Vec<serde_json::Value>| {
        engine.synth(&template.build_json(&context("agency"), json!({ "clients": clients })).unwrap()).unwrap()
    };
    let s = build(vec![client("bakery"), client("florist"), client("garage")]);
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let snap = h.fake.snapshot();
    assert_eq!(snap.load_balancers.len(), 3, "{snap:?}");
    assert_eq!(snap.domains, ["bakery.test", "florist.test", "garage.test"]);
    assert_eq!(snap.certificates.len(), 3, "{snap:?}");
    let state = engine.state("agency").await.unwrap();
    for c in ["bakery", "florist", "garage"] {
        let lb_id = &state.resources[&format!("clients/{c}/lb")].id;
        let lb =
            snap.load_balancers.iter().filter_map(|n| h.fake.load_balancer(n)).find(|l| &l["id"] == lb_id).unwrap();
        let cert = &state.resources[&format!("clients/{c}/certificate")].id;
        assert!(
            lb["forwarding_rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["entry_port"] == 443 && &r["certificate_id"] == cert),
            "{c}: {lb}"
        );
        let vm: u64 = state.resources[&format!("clients/{c}/web")].id.parse().unwrap();
        assert_eq!(lb["droplet_ids"], json!([vm]), "{c}: only its own droplet");
        let ip = lb["ip"].as_str().unwrap();
        assert!(h.fake.domain_records(&format!("{c}.test")).contains(&format!("A www {ip}")), "{c}");
        assert_eq!(report.outputs[&format!("{c}-url")], json!(format!("https://www.{c}.test")));
    }
    assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());

    // A fourth client: only its own resources are created.
    let s = build(vec![client("bakery"), client("florist"), client("garage"), client("dentist")]);
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    let touched: Vec<String> = changes(&plan).into_iter().map(|(p, a, _)| format!("{p}:{a:?}")).collect();
    assert!(touched.iter().all(|t| t.starts_with("clients/dentist/") && t.ends_with(":Create")), "{touched:?}");
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(h.fake.snapshot().load_balancers.len(), 4);
    assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());

    let report = engine.destroy("agency", &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let snap = h.fake.snapshot();
    assert!(snap.load_balancers.is_empty() && snap.domains.is_empty() && snap.certificates.is_empty(), "{snap:?}");
    assert!(snap.droplets.is_empty() && snap.vpcs.is_empty() && snap.firewalls.is_empty(), "{snap:?}");
    let ours: Vec<&String> =
        snap.tags.iter().filter(|t| ["konstacks:", "kx", "kn:", "kt:"].iter().any(|p| t.starts_with(p))).collect();
    assert!(ours.is_empty(), "tags left: {ours:?}");
    assert_no_violations(&b);
}
