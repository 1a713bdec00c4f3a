//! The `web-app` and `gdpr-saas` templates end to end on the GCP backend through the real
//! engine, in an EU region: apply, an empty re-plan, an in-place firewall rule change, a Cloud
//! SQL tier change, destroy leaving nothing in the fake. Also: a failed operation surfaces as a
//! portable error kind, and a South Africa placement resolves to GCP's Johannesburg region at
//! synth, with no API call. With a domain: HTTPS on a global external Application Load Balancer
//! with a Google-managed certificate and a Cloud DNS record, releases that add the new VMs before
//! the old ones leave, an unhealthy release rolled back, and `gdpr-saas` kept in europe-west3.
#![cfg(feature = "gcp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/clock.rs"]
mod clock;
mod common_gcp;
#[path = "support/gcp.rs"]
mod gcp;

use std::sync::Arc;

use clock::VirtualClock;
use common_gcp::Kind;
use gcp::{assert_fake_empty, backend, exclusive, fake, REGION};
use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::error::ErrorKind;
use konstacks_core::model::Vpc;
use konstacks_core::model::{Jurisdiction, Placement, Stage};
use konstacks_core::plan::Action;
use konstacks_core::provider::KindApis;
use konstacks_core::state::MemoryBackend;
use konstacks_templates::TemplateContext;
use serde_json::{json, Value};

fn changes(plan: &konstacks_core::plan::Plan) -> Vec<(String, Action, Vec<String>)> {
    plan.changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| (c.path.clone(), c.action, c.fields.iter().map(|f| f.name.clone()).collect()))
        .collect()
}

/// Source ranges of the GCP rules of firewall `fw` that allow TCP port `port`.
fn sources_of_port(fw: &str, port: &str) -> Vec<String> {
    let mut out = Vec::new();
    for name in fake().names(Kind::Firewall) {
        let rule = fake().resource(Kind::Firewall, &name).unwrap();
        let ours = rule["targetTags"].as_array().is_some_and(|t| t.iter().any(|t| t == fw));
        let allows = rule["allowed"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["ports"].as_array().is_some_and(|p| p.iter().any(|p| p == port))));
        if ours && allows {
            out.extend(
                rule["sourceRanges"].as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from),
            );
            out.extend(
                rule["sourceTags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|t| format!("tag:{t}")),
            );
        }
    }
    out.sort();
    out
}

/// `web-app` parameters, nested under `app` for `gdpr-saas`.
fn params(template: &str, app: Value) -> Value {
    if template == "gdpr-saas" {
        json!({ "app": app })
    } else {
        app
    }
}

async fn lifecycle(template: &str, stage: Stage, stack: &str) {
    let b = backend().await;
    let clock = VirtualClock::shared();
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(b.provider()).with_clock(clock.clone());
    let t = konstacks_templates::find(template).unwrap();
    let cx = TemplateContext::new(stack, stage).placement(Placement::within(Jurisdiction::Eu)).provider("gcp");
    let build = |app: Value| engine.synth(&t.build_json(&cx, params(template, app)).unwrap()).unwrap();

    // Apply.
    let s = build(json!({"admin_cidr": "203.0.113.0/24"}));
    assert_eq!(s.region, REGION, "EU placement did not pick {REGION}");
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.created.len(), s.resources.len());
    let inv = fake().inventory();
    assert_eq!((inv.networks, inv.sql_instances), (1, 1), "{inv:?}");
    assert!(inv.instances >= 1 && inv.subnetworks >= 2, "{inv:?}");
    let db_name = format!("{stack}-data-postgres");
    let db = fake().resource(Kind::SqlInstance, &db_name).expect("the Cloud SQL instance");
    assert_eq!(db["settings"]["ipConfiguration"]["ipv4Enabled"], json!(false), "{db}");
    assert!(db["settings"]["ipConfiguration"]["privateNetwork"]
        .as_str()
        .unwrap()
        .ends_with(&format!("networks/{stack}-network-vpc")));
    let web_fw = format!("{stack}-network-web-fw");
    assert_eq!(sources_of_port(&web_fw, "22"), ["203.0.113.0/24"]);
    let instance = fake().names(Kind::Instance).into_iter().next().unwrap();
    let vm = fake().resource(Kind::Instance, &instance).unwrap();
    assert!(vm["tags"]["items"].as_array().unwrap().iter().any(|t| t == &json!(web_fw)), "{vm}");
    assert_eq!(vm["status"], "RUNNING");
    let host = report.outputs.get("database-host").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    assert!(host.starts_with("10."), "the database host is its private IP: {:?}", report.outputs);

    // Nothing to do the second time, with or without reading the cloud first.
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", changes(&plan));
    let refreshed = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert!(refreshed.is_empty(), "{:?}", changes(&refreshed));

    // A firewall rule changes in place: one GCP rule goes, one comes.
    let s = build(json!({"admin_cidr": "198.51.100.0/24"}));
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(changes(&plan), [("network/web-fw".to_string(), Action::Update, vec!["ingress".to_string()])]);
    fake().clear_requests();
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.updated, ["network/web-fw"]);
    assert_eq!(sources_of_port(&web_fw, "22"), ["198.51.100.0/24"]);
    let mutations: Vec<String> = fake()
        .requests()
        .into_iter()
        .filter(|r| r.method_id.starts_with("compute.firewalls.") && r.method != "GET")
        .map(|r| r.method_id)
        .collect();
    assert_eq!(mutations, ["compute.firewalls.delete", "compute.firewalls.insert"], "rule by rule");

    // The Cloud SQL tier changes in place.
    let s = build(json!({"admin_cidr": "198.51.100.0/24", "db_size": "db-medium"}));
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(changes(&plan), [("data/postgres".to_string(), Action::Update, vec!["size".to_string()])]);
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.updated, ["data/postgres"]);
    let tier = fake().resource(Kind::SqlInstance, &db_name).unwrap()["settings"]["tier"].clone();
    let expected = konstacks_providers::gcp::catalog(REGION).db_size("db-medium").unwrap().native.clone();
    assert_eq!(tier, json!(expected));
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // Destroy leaves nothing.
    let report = engine.destroy(stack, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_fake_empty();
    fake().assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_lifecycle() {
    let _serial = exclusive().await;
    lifecycle("web-app", Stage::Dev, "shop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdpr_saas_lifecycle() {
    let _serial = exclusive().await;
    lifecycle("gdpr-saas", Stage::Staging, "saas").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_operation_is_a_portable_error_and_nothing_is_orphaned() {
    let _serial = exclusive().await;
    let b = backend().await;
    let clock = VirtualClock::shared();
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(b.provider()).with_clock(clock.clone());
    let cx = TemplateContext::new("quota", Stage::Dev).placement(Placement::region(REGION)).provider("gcp");
    let s = engine.synth(&konstacks_templates::find("web-app").unwrap().build_json(&cx, json!({})).unwrap()).unwrap();
    fake().fail_operation_next(
        "compute.instances.insert",
        "QUOTA_EXCEEDED",
        "Quota 'CPUS' exceeded. Limit: 0.0 in region europe-west1.",
    );
    let report = match engine.apply(&s, &ApplyOptions::default()).await {
        Err(konstacks_core::error::Error::Apply(report)) => report,
        other => panic!("the apply should fail on the quota: {other:?}"),
    };
    let failure = report.failures.iter().find(|f| f.path.starts_with("app/")).expect("the VM failed");
    assert_eq!(failure.kind, ErrorKind::QuotaExceeded, "{failure:?}");
    assert!(failure.message.contains("QUOTA_EXCEEDED") && failure.message.contains("CPUS"), "{failure:?}");
    // Everything that was made is in state, so destroy removes it all.
    let report = engine.destroy("quota", &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_fake_empty();
    fake().assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn south_africa_resolves_to_johannesburg_without_api_calls() {
    let _serial = exclusive().await;
    let b = backend().await;
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(b.provider());
    let cx = TemplateContext::new("za-shop", Stage::Dev)
        .placement(Placement::within(Jurisdiction::SouthAfrica))
        .provider("gcp");
    let stack = konstacks_templates::find("web-app").unwrap().build_json(&cx, json!({})).unwrap();
    let before = fake().requests().len();
    let s = engine.synth(&stack).unwrap();
    assert_eq!(s.region, "africa-south1");
    assert_eq!(fake().requests().len(), before, "synth made API calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_made_in_the_console_is_shown_and_reverted() {
    let _serial = exclusive().await;
    let b = backend().await;
    let clock = VirtualClock::shared();
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(b.provider()).with_clock(clock.clone());
    let cx = TemplateContext::new("drift", Stage::Dev).placement(Placement::region(REGION)).provider("gcp");
    let s = engine
        .synth(
            &konstacks_templates::find("web-app")
                .unwrap()
                .build_json(&cx, json!({"admin_cidr": "203.0.113.0/24"}))
                .unwrap(),
        )
        .unwrap();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let web_fw = "drift-network-web-fw";

    // Someone opens SSH to the world and resizes the database by hand.
    let ssh_rule = fake()
        .names(Kind::Firewall)
        .into_iter()
        .find(|n| {
            n.starts_with(web_fw) && fake().resource(Kind::Firewall, n).unwrap()["allowed"][0]["ports"][0] == "22"
        })
        .expect("the SSH rule");
    let tier_before = fake().resource(Kind::SqlInstance, "drift-data-postgres").unwrap()["settings"]["tier"].clone();
    fake().mutate(Kind::Firewall, &ssh_rule, |r| r["sourceRanges"] = json!(["0.0.0.0/0"]));
    fake().mutate(Kind::SqlInstance, "drift-data-postgres", |d| d["settings"]["tier"] = json!("db-custom-4-15360"));
    assert_eq!(sources_of_port(web_fw, "22"), ["0.0.0.0/0"]);

    // Without reading the cloud the plan is empty; reading it shows both changes field by field.
    assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());
    let plan = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert_eq!(
        changes(&plan),
        [
            ("network/web-fw".to_string(), Action::Update, vec!["ingress".to_string()]),
            ("data/postgres".to_string(), Action::Update, vec!["size".to_string()]),
        ]
    );

    // Applying with refresh puts both back.
    let report = engine.apply(&s, &ApplyOptions { refresh: true, ..ApplyOptions::default() }).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(sources_of_port(web_fw, "22"), ["203.0.113.0/24"]);
    let tier = fake().resource(Kind::SqlInstance, "drift-data-postgres").unwrap()["settings"]["tier"].clone();
    assert_eq!(tier, tier_before);
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());

    engine.destroy("drift", &ApplyOptions::default()).await.unwrap();
    assert_fake_empty();
    fake().assert_no_violations();
}

/// Operation errors and HTTP errors come back as the portable kinds the engine acts on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_errors_map_to_portable_kinds() {
    use konstacks_core::spec::VpcSpec;
    let _serial = exclusive().await;
    let b = backend().await;
    let clock = VirtualClock::shared();
    let cx = gcp::cx(&clock, "errors");
    let spec = VpcSpec {
        name: "errors-vpc".into(),
        region: REGION.into(),
        cidr: "10.9.0.0/16".into(),
        tags: Default::default(),
    };
    for (code, kind) in [
        ("QUOTA_EXCEEDED", ErrorKind::QuotaExceeded),
        ("INVALID_FIELD_VALUE", ErrorKind::InvalidSpec),
        ("RESOURCE_ALREADY_EXISTS", ErrorKind::AlreadyExists),
        ("ZONE_RESOURCE_POOL_EXHAUSTED", ErrorKind::Transient),
    ] {
        fake().fail_operation_next("compute.networks.insert", code, &format!("injected {code}"));
        let e = b.api::<Vpc>().create(&cx, &spec).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{code}: {e}");
        assert!(e.message().contains(code), "{code}: {e}");
    }
    for (status, reason, kind) in [
        (429, "rateLimitExceeded", ErrorKind::Throttled),
        (403, "rateLimitExceeded", ErrorKind::Throttled),
        (403, "forbidden", ErrorKind::PermissionDenied),
        (503, "backendError", ErrorKind::Transient),
        (400, "invalid", ErrorKind::InvalidSpec),
    ] {
        fake().fail_next("compute.networks.insert", status, reason, &format!("injected {reason}"));
        let e = b.api::<Vpc>().create(&cx, &spec).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{status} {reason}: {e}");
        assert!(e.message().contains(&format!("HTTP {status}")) && e.message().contains(reason), "{e}");
    }
    // Nothing was made by any of them; the next attempt goes through.
    assert_eq!(fake().inventory().networks, 0);
    let created = b.api::<Vpc>().create(&cx, &spec).await.unwrap();
    b.api::<Vpc>().delete(&cx, &created.id).await.unwrap();
    assert_fake_empty();
    fake().assert_no_violations();
}

/// The engine retries throttled and transient answers on its clock and the apply succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_transient_answers_are_retried() {
    let _serial = exclusive().await;
    let b = backend().await;
    let clock = VirtualClock::shared();
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(b.provider()).with_clock(clock.clone());
    let cx = TemplateContext::new("flaky", Stage::Dev).placement(Placement::region(REGION)).provider("gcp");
    let s = engine.synth(&konstacks_templates::find("web-app").unwrap().build_json(&cx, json!({})).unwrap()).unwrap();
    fake().fail_next("compute.networks.insert", 429, "rateLimitExceeded", "Rate Limit Exceeded");
    fake().fail_next("compute.instances.insert", 503, "backendError", "Internal error. Please try again.");
    fake().fail_next("sql.instances.insert", 503, "backendError", "The service is currently unavailable.");
    fake().fail_operation_next("compute.subnetworks.insert", "ZONE_RESOURCE_POOL_EXHAUSTED", "try again later");
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert!(report.retries >= 4, "retries: {}", report.retries);
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());
    engine.destroy("flaky", &ApplyOptions::default()).await.unwrap();
    assert_fake_empty();
    fake().assert_no_violations();
}

fn https_params(version: &str, health: &str) -> Value {
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

/// An engine on the GCP backend with virtual time and a sealer (generated passwords are sealed
/// in state, so new VMs of a release get them too).
async fn https_engine() -> Engine {
    let b = backend().await;
    let sealer = konstacks_core::secret::Sealer::from_passphrase(&konstacks_core::secret::Secret::new(
        "gcp web-app https test passphrase, not a secret".to_string(),
    ));
    Engine::new(Arc::new(MemoryBackend::new()))
        .with_provider(b.provider())
        .with_clock(VirtualClock::shared())
        .with_sealer(Some(sealer))
}

/// Names of the stack's app VMs in state (`app/web-1`, `app/web-2`), sorted.
async fn app_vms(engine: &Engine, stack: &str) -> Vec<String> {
    let state = engine.state(stack).await.unwrap();
    let mut out: Vec<String> = ["app/web-1", "app/web-2"]
        .iter()
        .map(|p| state.resources[*p].id.rsplit('/').next().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// Names of the instances in the load balancer's instance groups, sorted.
fn behind_lb() -> Vec<String> {
    let mut out: Vec<String> = fake()
        .lb_all("instanceGroups#members")
        .into_iter()
        .flat_map(|m| m.as_array().cloned().unwrap_or_default())
        .filter_map(|l| l.as_str().and_then(|l| l.rsplit('/').next()).map(String::from))
        .collect();
    out.sort();
    out
}

/// `web-app` with a domain and its zone on GCP: a Cloud DNS zone, an A record to the global
/// external Application Load Balancer's address, a Google-managed certificate on its HTTPS
/// proxy, two VMs behind it in instance groups; an empty re-plan, a health check change in
/// place, a release that adds the new VMs to the instance groups before the old ones leave and
/// deletes the old ones only after, and destroy leaving nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_serves_https_on_its_domain() {
    let _serial = exclusive().await;
    let engine = https_engine().await;
    let t = konstacks_templates::find("web-app").unwrap();
    let cx = TemplateContext::new("tide", Stage::Dev).placement(Placement::region(REGION)).provider("gcp");
    let build = |p: Value| engine.synth(&t.build_json(&cx, p).unwrap()).unwrap();

    let s = build(https_params("1", "/healthz"));
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    let created: Vec<String> = changes(&plan).into_iter().map(|(p, a, _)| format!("{p}:{a:?}")).collect();
    for want in ["edge/zone:Create", "edge/certificate:Create", "app/lb:Create"] {
        assert!(created.iter().any(|c| c == want), "{want} not in {created:?}");
    }
    assert!(created.iter().any(|c| c.starts_with("edge/") && c.contains("record")), "{created:?}");
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.created.len(), s.resources.len());
    assert_eq!(report.outputs["url"], json!("https://www.tide-shop.test"));

    // Zone, record, certificate and load balancer, as Google holds them.
    let inv = fake().inventory();
    assert_eq!((inv.managed_zones, inv.ssl_certificates), (1, 1), "{inv:?}");
    let cert_name = fake().names(Kind::SslCertificate).remove(0);
    let cert = fake().resource(Kind::SslCertificate, &cert_name).unwrap();
    assert_eq!(cert["type"], "MANAGED");
    assert_eq!(cert["managed"]["domains"], json!(["www.tide-shop.test"]));
    let addresses = fake().lb_names("globalAddresses");
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    let ip = fake().lb_part("globalAddresses", &addresses[0]).unwrap()["address"].as_str().unwrap().to_string();
    let record = fake().resource(Kind::RecordSet, "www.tide-shop.test.").expect("the domain's record");
    assert_eq!((record["type"].clone(), record["rrdatas"].clone()), (json!("A"), json!([ip])), "{record}");
    let proxies = fake().lb_names("targetHttpsProxies");
    assert_eq!(proxies.len(), 1, "{proxies:?}");
    let proxy = fake().lb_part("targetHttpsProxies", &proxies[0]).unwrap();
    let certs = proxy["sslCertificates"].as_array().unwrap();
    assert!(certs.len() == 1 && certs[0].as_str().unwrap().ends_with(&format!("/sslCertificates/{cert_name}")));
    let ports: Vec<String> = fake()
        .lb_names("globalForwardingRules")
        .iter()
        .map(|n| fake().lb_part("globalForwardingRules", n).unwrap()["portRange"].as_str().unwrap().to_string())
        .collect();
    assert!(ports.iter().any(|p| p.starts_with("443")) && ports.iter().any(|p| p.starts_with("80")), "{ports:?}");
    let health_path = || {
        let checks = fake().lb_names("healthChecks");
        assert_eq!(checks.len(), 1, "{checks:?}");
        fake().lb_part("healthChecks", &checks[0]).unwrap()["httpHealthCheck"]["requestPath"].clone()
    };
    assert_eq!(health_path(), json!("/healthz"));
    let old = app_vms(&engine, "tide").await;
    assert_eq!(behind_lb(), old, "both VMs are behind the load balancer");

    // Nothing to do the second time, with or without reading the cloud first.
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", changes(&plan));
    let refreshed = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert!(refreshed.is_empty(), "{}", refreshed.render(true));

    // The health check changes on the load balancer in place (an Update of its target groups).
    let s = build(https_params("1", "/ready"));
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    let lb_change = changes(&plan).into_iter().find(|(p, _, _)| p == "app/lb");
    assert!(matches!(&lb_change, Some((_, Action::Update, _))), "{:?}", changes(&plan));
    // The app learns its new health path too, so its VMs are released; nothing else is replaced.
    let replaced: Vec<String> =
        changes(&plan).into_iter().filter(|(_, a, _)| *a == Action::Replace).map(|(p, _, _)| p).collect();
    assert_eq!(replaced, ["app/web-1", "app/web-2"], "{:?}", changes(&plan));
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success() && report.updated.contains(&"app/lb".to_string()), "{report:?}");
    assert_eq!(health_path(), json!("/ready"));
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // A release: the new VMs join the instance groups before the old ones leave, and the old ones
    // are deleted only then.
    let old = app_vms(&engine, "tide").await;
    fake().clear_requests();
    let s = build(https_params("2", "/ready"));
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert!(plan.render(false).contains("will be released"), "{}", plan.render(false));
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let log = fake().requests();
    let first = |p: &dyn Fn(&common_gcp::RequestLog) -> bool| log.iter().position(p).unwrap_or(usize::MAX);
    let added = first(&|r| r.method_id == "compute.instanceGroups.addInstances");
    let health = log
        .iter()
        .skip(added.saturating_add(1))
        .position(|r| r.method_id == "compute.backendServices.getHealth")
        .map_or(usize::MAX, |p| p + added + 1);
    let removed = first(&|r| r.method_id == "compute.instanceGroups.removeInstances");
    let deleted =
        first(&|r| r.method_id == "compute.instances.delete" && old.iter().any(|o| r.path.ends_with(&format!("/{o}"))));
    let order: Vec<&str> = log.iter().map(|r| r.method_id.as_str()).filter(|m| !m.ends_with(".get")).collect();
    assert!(added < health && health < removed && removed < deleted && deleted != usize::MAX, "{order:#?}");
    let now = app_vms(&engine, "tide").await;
    assert!(now.iter().all(|n| !old.contains(n)), "{now:?} vs {old:?}");
    assert_eq!(behind_lb(), now, "the new VMs serve");
    let mut left = fake().names(Kind::Instance);
    left.sort();
    assert_eq!(left, now, "the old VMs are deleted");
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());

    let report = engine.destroy("tide", &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_fake_empty();
    fake().assert_no_violations();
}

/// A release whose new VMs never turn healthy in `backendServices.getHealth` is rolled back: the
/// old VMs stay in the instance groups and in state, the new ones leave the groups and are
/// deleted, and the error says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_release_is_rolled_back() {
    let _serial = exclusive().await;
    let engine = https_engine().await;
    let t = konstacks_templates::find("web-app").unwrap();
    let cx = TemplateContext::new("ebb", Stage::Dev).placement(Placement::region(REGION)).provider("gcp");
    let build = |p: Value| engine.synth(&t.build_json(&cx, p).unwrap()).unwrap();
    let report = engine.apply(&build(https_params("1", "/healthz")), &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let old = app_vms(&engine, "ebb").await;
    assert_eq!(behind_lb(), old);
    fake().set_healthy_only(Some(old.iter().cloned().collect()));

    fake().clear_requests();
    let s2 = build(https_params("2", "/healthz"));
    let err = engine.apply(&s2, &ApplyOptions::default()).await.expect_err("the new VMs never turn healthy");
    fake().set_healthy_only(None);
    assert!(err.to_string().contains("healthy"), "{err}");
    let log = fake().requests();
    let count = |m: &str| log.iter().filter(|r| r.method_id == m).count();
    assert!(count("compute.instances.insert") >= 1, "new VMs were made");
    assert!(count("compute.instanceGroups.addInstances") >= 1, "and added to the groups");
    assert!(count("compute.instanceGroups.removeInstances") >= 1, "then taken out again");
    assert!(
        !log.iter().any(
            |r| r.method_id == "compute.instances.delete" && old.iter().any(|o| r.path.ends_with(&format!("/{o}")))
        ),
        "an old VM was deleted"
    );
    assert_eq!(app_vms(&engine, "ebb").await, old, "state still holds the old VMs");
    assert_eq!(behind_lb(), old, "the old VMs still serve");
    let mut left = fake().names(Kind::Instance);
    left.sort();
    assert_eq!(left, old, "the new VMs are gone");
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    assert!(plan.render(false).contains("will be released"), "the release is still to do:\n{}", plan.render(false));

    let report = engine.destroy("ebb", &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_fake_empty();
    fake().assert_no_violations();
}

/// Every `region`, `zone` and `location` a resource of the fake names, as the last segment of
/// the link (`zones/europe-west3-a` is `europe-west3-a`), with the resource's name.
fn places() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let kinds = [
        Kind::Network,
        Kind::Subnetwork,
        Kind::Firewall,
        Kind::Instance,
        Kind::SqlInstance,
        Kind::ManagedZone,
        Kind::RecordSet,
        Kind::RedisInstance,
        Kind::Bucket,
        Kind::SslCertificate,
    ];
    let mut push = |name: &str, v: &Value| {
        for field in ["region", "zone", "location", "gceZone", "locationId"] {
            if let Some(p) = v.get(field).and_then(Value::as_str) {
                out.push((name.to_string(), p.rsplit('/').next().unwrap_or(p).to_string()));
            }
        }
    };
    for kind in kinds {
        for name in fake().names(kind) {
            push(&name, &fake().resource(kind, &name).unwrap());
        }
    }
    for coll in ["instanceGroups", "healthChecks", "backendServices", "globalAddresses", "globalForwardingRules"] {
        for v in fake().lb_all(coll) {
            push(v["name"].as_str().unwrap_or(coll), &v);
        }
    }
    out
}

/// `gdpr-saas` placed in Frankfurt (europe-west3) with its domain on GCP: apply, an empty
/// re-plan, every regional and zonal resource in europe-west3, destroy leaving nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdpr_saas_in_an_eu_region_serves_https() {
    const EU: &str = "europe-west3";
    let _serial = exclusive().await;
    let b = gcp::backend_in(EU).await;
    let engine =
        Engine::new(Arc::new(MemoryBackend::new())).with_provider(b.provider()).with_clock(VirtualClock::shared());
    let t = konstacks_templates::find("gdpr-saas").unwrap();
    let cx = TemplateContext::new("dpo", Stage::Staging).placement(Placement::region(EU)).provider("gcp");
    let app = json!({
        "admin_cidr": "203.0.113.0/24",
        "app_image": "ghcr.io/example/saas:1",
        "app_version": "1",
        "vm_count": 2,
        "domain": "app.dpo-saas.test",
        "zone": "dpo-saas.test",
        "health_path": "/healthz",
        "uploads_bucket": true,
    });
    let s = engine.synth(&t.build_json(&cx, json!({ "app": app })).unwrap()).unwrap();
    assert_eq!(s.region, EU);
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.created.len(), s.resources.len());
    assert_eq!(report.outputs["url"], json!("https://app.dpo-saas.test"));
    let inv = fake().inventory();
    assert_eq!((inv.managed_zones, inv.ssl_certificates, inv.buckets, inv.sql_instances), (1, 1, 1, 1), "{inv:?}");
    assert!(inv.lb_parts > 0 && inv.instances == 2, "{inv:?}");
    let bucket = fake().resource(Kind::Bucket, &fake().names(Kind::Bucket)[0]).unwrap();
    assert_eq!(bucket["versioning"]["enabled"], json!(true), "{bucket}");

    let places = places();
    // Subnets, VMs, the database, the bucket and the instance groups all say where they are
    // (networks, firewalls, DNS, the certificate and the load balancer's front are global).
    let mut placed: Vec<&str> = places.iter().map(|(n, _)| n.as_str()).collect();
    placed.dedup();
    for name in ["dpo-network-private-a", "dpo-app-web-1", "dpo-app-web-2", "dpo-data-postgres", "dpo-data-uploads"] {
        assert!(placed.contains(&name), "{name} has no place: {places:?}");
    }
    assert!(places.iter().any(|(n, p)| n.contains("-lb-") && p.starts_with(&format!("{EU}-"))), "{places:?}");
    let outside: Vec<&(String, String)> = places
        .iter()
        .filter(|(_, p)| !(p == EU || p.eq_ignore_ascii_case(EU) || p.starts_with(&format!("{EU}-"))))
        .collect();
    assert!(outside.is_empty(), "outside {EU}: {outside:?}");

    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", changes(&plan));
    let refreshed = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert!(refreshed.is_empty(), "{}", refreshed.render(true));

    let report = engine.destroy("dpo", &ApplyOptions::default()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_fake_empty();
    fake().assert_no_violations();
}
