//! Snapshot tests of every built-in template at every stage: the synthesized stack and the plan
//! against an empty state. These are the example stacks users copy; a change in them shows up as
//! a snapshot diff in review. Also: parameter checking, JSON Schemas, and a full lifecycle of
//! each template on the simulated cloud.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use konstacks::core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks::core::model::{Jurisdiction, Placement, Stage};
use konstacks::core::sim::{SimCloud, SimConfig};
use konstacks::core::state::{MemoryBackend, StackState};
use konstacks::templates::{builtin, find, TemplateContext};
use serde_json::{json, Value};

fn engine() -> (Engine, Arc<SimCloud>) {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    (Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider()).with_sealer(None), sim)
}

fn params(template: &str) -> Value {
    match template {
        "web-app" => json!({ "app_image": "ghcr.io/acme/shop:1.4.2", "admin_cidr": "198.51.100.7/32" }),
        "gdpr-saas" => {
            json!({ "app": { "app_image": "ghcr.io/acme/crm:2.0.0", "pgvector": true }, "dpo_contact": "dpo@acme.example" })
        }
        "agency-sites" => json!({ "clients": [
            { "name": "bakery", "size": "micro", "database": true },
            { "name": "dentist", "size": "small" },
            { "name": "law-firm", "size": "small", "database": true },
        ] }),
        "lamp-site" => json!({ "site_repo": "https://git.example/site.git" }),
        other => panic!("no test parameters for template {other}"),
    }
}

#[test]
fn every_template_synthesizes_and_plans_at_every_stage() {
    let (engine, _) = engine();
    for t in builtin() {
        for stage in [Stage::Dev, Stage::Staging, Stage::Prod] {
            let name = format!("{}-{}", t.name(), stage.as_str());
            let stack = t.build_json(&TemplateContext::new(&name, stage), params(t.name())).unwrap();
            let s = engine.synth(&stack).unwrap_or_else(|e| panic!("{name}: {e}"));
            insta::assert_yaml_snapshot!(format!("{}_{}_synth", t.name(), stage.as_str()), s);
            let plan = engine.plan_against(&s, &StackState::empty(&name));
            assert_eq!(plan.summary.create, s.resources.len());
            insta::assert_snapshot!(format!("{}_{}_plan", t.name(), stage.as_str()), plan.render(false));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn every_template_applies_replans_empty_and_destroys() {
    for t in builtin() {
        let (engine, sim) = engine();
        let name = format!("{}-dev", t.name());
        let stack = t.build_json(&TemplateContext::new(&name, Stage::Dev), params(t.name())).unwrap();
        let s = engine.synth(&stack).unwrap();
        engine.apply(&s, &ApplyOptions::default()).await.unwrap();
        assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty(), "{name}");
        assert_eq!(sim.resources_of_stack(&name).len(), s.resources.len());
        engine.destroy(&name, &ApplyOptions::default()).await.unwrap();
        assert!(sim.resources_of_stack(&name).is_empty(), "{name}");
    }
}

#[test]
fn parameters_are_checked_with_clear_messages() {
    let cx = TemplateContext::new("x", Stage::Dev);
    let cases = [
        ("web-app", json!({ "vm_sise": "large" }), "unknown field `vm_sise`"),
        ("web-app", json!({ "app_port": "eighty" }), "invalid type"),
        ("agency-sites", json!({ "clients": [] }), "at least one"),
        ("agency-sites", json!({ "clients": [{ "name": "a" }, { "name": "a" }] }), "listed twice"),
        ("agency-sites", json!({ "clients": [{ "name": "Bad Name" }] }), "a-z, 0-9"),
        ("lamp-site", json!({ "backup_days": 0 }), "automated backups"),
        ("gdpr-saas", json!({ "app": { "backup_days": 3 } }), "below the 7 days"),
    ];
    for (t, p, expected) in cases {
        let err = find(t).unwrap().build_json(&cx, p.clone()).err().unwrap_or_else(|| panic!("{t} accepted {p}"));
        assert!(err.to_string().contains(expected), "{t} {p}: {err}");
    }
    let too_many: Vec<Value> = (0..201).map(|i| json!({ "name": format!("c{i}") })).collect();
    let err = find("agency-sites").unwrap().build_json(&cx, json!({ "clients": too_many })).err().unwrap();
    assert!(err.to_string().contains("exceed"), "{err}");
}

#[test]
fn gdpr_saas_refuses_placements_outside_the_eu() {
    let (engine, _) = engine();
    let t = find("gdpr-saas").unwrap();
    let us = TemplateContext::new("crm", Stage::Prod).placement(Placement::within(Jurisdiction::Us));
    assert!(t.build_json(&us, json!({})).err().unwrap().to_string().contains("EU/EEA"));
    let us_region = TemplateContext::new("crm", Stage::Prod).placement(Placement::region("us-east"));
    let stack = t.build_json(&us_region, json!({})).unwrap();
    let err = engine.synth(&stack).unwrap_err().to_string();
    assert!(err.contains("outside the placement's jurisdiction") && err.contains("eu-central"), "{err}");
}

#[test]
fn agency_sites_tag_every_resource_with_its_client() {
    let (engine, _) = engine();
    let stack = find("agency-sites")
        .unwrap()
        .build_json(&TemplateContext::new("agency", Stage::Prod), params("agency-sites"))
        .unwrap();
    let s = engine.synth(&stack).unwrap();
    for r in s.resources.iter().filter(|r| r.path.starts_with("clients/")) {
        let client = r.path.split('/').nth(1).unwrap();
        let tags = serde_json::to_value(r.fields.get("tags").unwrap()).unwrap();
        assert_eq!(tags["client"], client, "{}", r.path);
    }
}

#[test]
fn every_template_publishes_a_json_schema_of_its_parameters() {
    for t in builtin() {
        let schema = t.params_schema();
        assert_eq!(schema["type"], "object", "{}", t.name());
        assert!(schema["properties"].as_object().is_some_and(|p| !p.is_empty()), "{}", t.name());
    }
    insta::assert_json_snapshot!("web_app_params_schema", find("web-app").unwrap().params_schema());
}
