//! The `web-app` and `gdpr-saas` templates end to end on the GCP backend through the real
//! engine, in an EU region: apply, an empty re-plan, an in-place firewall rule change, a Cloud
//! SQL tier change, destroy leaving nothing in the fake. Also: a failed operation surfaces as a
//! portable error kind, and a South Africa placement resolves to GCP's Johannesburg region at
//! synth, with no API call.
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
