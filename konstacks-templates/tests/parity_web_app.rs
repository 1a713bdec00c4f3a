//! Environment parity of the `web-app` template: dev, staging and prod built from the same
//! parameters differ only in the knobs the template varies per stage (sizes, replica count, HA,
//! deletion protection, backups); a prod on another Postgres version, or with SSH opened, is
//! drift and fails the check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use konstacks_core::model::{vm, Stage};
use konstacks_core::parity::{parity, KnobSet, ParityReport, ParityVerdict, PRESENT_FIELD};
use konstacks_core::sim::SimCloud;
use konstacks_core::validate::Synthesized;
use konstacks_templates::{find, TemplateContext};
use serde_json::{json, Value};

const STAGES: [Stage; 3] = [Stage::Dev, Stage::Staging, Stage::Prod];

fn base() -> Value {
    json!({ "app_image": "ghcr.io/acme/shop:1.4.2" })
}

/// Build web-app at every stage, with `tweak` applied to the parameters of `stage` only.
fn stages(tweak: Option<(Stage, Value)>) -> Vec<(Stage, Synthesized)> {
    let cat = SimCloud::catalog();
    let t = find("web-app").unwrap();
    STAGES
        .iter()
        .map(|stage| {
            let mut params = base();
            if let Some((s, extra)) = &tweak {
                if s == stage {
                    for (k, v) in extra.as_object().unwrap() {
                        params[k] = v.clone();
                    }
                }
            }
            let name = format!("shop-{}", stage.as_str());
            let stack = t.build_json(&TemplateContext::new(&name, *stage), params).unwrap();
            (*stage, stack.synth(&[&cat]).unwrap_or_else(|e| panic!("{name}: {e}")))
        })
        .collect()
}

fn check(built: &[(Stage, Synthesized)], knobs: &KnobSet) -> ParityReport {
    let refs: Vec<(Stage, &Synthesized)> = built.iter().map(|(s, x)| (*s, x)).collect();
    parity(&refs, knobs, &[&SimCloud::catalog()])
}

#[test]
fn web_app_stages_differ_only_in_allowed_knobs() {
    let r = check(&stages(None), &KnobSet::default());
    assert!(r.is_ok(), "{}", r.render());
    // The knobs web-app varies per stage show up as allowed differences.
    let db_size = r.row("data/postgres", "size").unwrap();
    assert_eq!(db_size.verdict, ParityVerdict::Allowed);
    assert_eq!(db_size.values, [Some(json!("db-micro")), Some(json!("db-small")), Some(json!("db-medium"))]);
    assert_eq!(r.row("data/postgres", "high_availability").unwrap().verdict, ParityVerdict::Allowed);
    assert_eq!(r.row("app/web-1", "size").unwrap().verdict, ParityVerdict::Allowed);
    // Prod runs a second app VM.
    assert_eq!(r.row("app/web-2", PRESENT_FIELD).unwrap().verdict, ParityVerdict::Allowed);
    insta::assert_snapshot!("web_app_parity", r.render());
}

#[test]
fn prod_on_another_postgres_version_fails_parity() {
    let r = check(&stages(Some((Stage::Prod, json!({ "postgres_version": "17" })))), &KnobSet::default());
    assert!(!r.is_ok());
    let bad: Vec<(&str, &str)> = r.violations().map(|v| (v.path.as_str(), v.field.as_str())).collect();
    assert_eq!(bad, [("data/postgres", "version")]);
    let row = r.row("data/postgres", "version").unwrap();
    assert_eq!(row.values, [Some(json!("16")), Some(json!("16")), Some(json!("17"))]);
    assert!(r.render().contains("Parity FAILED"));
}

#[test]
fn ssh_open_in_staging_only_fails_parity() {
    let r = check(&stages(Some((Stage::Staging, json!({ "admin_cidr": "198.51.100.7/32" })))), &KnobSet::default());
    let bad: Vec<(&str, &str)> = r.violations().map(|v| (v.path.as_str(), v.field.as_str())).collect();
    assert_eq!(bad, [("network/web-fw", "ingress")], "{}", r.render());
}

#[test]
fn a_stricter_knob_set_turns_allowed_differences_into_drift() {
    // A team that wants staging to be a true copy of prod's database tier.
    let strict = KnobSet::none().allow(vm::field::SIZE).numbered_replicas(true);
    let r = check(&stages(None), &strict);
    assert!(!r.is_ok());
    assert!(r.violations().all(|v| v.path == "data/postgres"), "{}", r.render());
}
