//! `gdpr-saas` serving traffic: with a domain, its zone and an uploads bucket, the stack passes
//! its own `gdpr` pack (bucket encrypted and versioned, load balancer on HTTPS, baseline), and
//! every resource — the DNS zone, the certificate and the bucket included — is placed in an
//! EU region, which the residency rule reads and reports; moved out of the EU, each of them is
//! flagged by name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use konstacks_core::model::{Jurisdiction, Stage};
use konstacks_core::policy::{PolicyReport, ResourceStatus, RuleStatus};
use konstacks_core::sim::SimCloud;
use konstacks_core::validate::{Expr, Synthesized};
use konstacks_templates::packs::gdpr::RESIDENCY_RULE;
use konstacks_templates::{default_policy, find, TemplateContext};
use serde_json::{json, Value};

fn params() -> Value {
    json!({
        "app": {
            "app_image": "ghcr.io/acme/crm:2.0.0",
            "domain": "crm.example.eu",
            "zone": "example.eu",
            "uploads_bucket": true,
        },
        "dpo_contact": "dpo@example.eu",
    })
}

fn synth(stage: Stage) -> Synthesized {
    let t = find("gdpr-saas").unwrap();
    let stack = t.build_json(&TemplateContext::new(format!("crm-{}", stage.as_str()), stage), params()).unwrap();
    stack.synth(&[&SimCloud::catalog()]).unwrap_or_else(|e| panic!("{e}"))
}

fn check(s: &Synthesized) -> PolicyReport {
    default_policy(find("gdpr-saas").unwrap().as_ref()).check(s, &[&SimCloud::catalog()])
}

const SERVING: [&str; 6] = ["edge/zone", "edge/certificate", "app/lb", "edge/record", "network/lb-fw", "data/uploads"];

#[test]
fn gdpr_saas_with_a_domain_and_an_uploads_bucket_passes_its_gdpr_pack_at_every_stage() {
    for stage in [Stage::Dev, Stage::Staging, Stage::Prod] {
        let s = synth(stage);
        for path in SERVING {
            assert!(s.index_of(path).is_some(), "{stage:?}: no {path}");
        }
        let r = check(&s);
        assert!(r.findings.is_empty(), "{stage:?}: {r}");
        assert!(!r.has_errors());
        for rule in ["gdpr/bucket-encrypted", "gdpr/bucket-versioned"] {
            let e = r.rule(rule).unwrap();
            assert_eq!(e.status, RuleStatus::Pass, "{rule}");
            assert_eq!(e.resources.len(), 1, "{rule}");
            assert!(e.resources[0].path.ends_with("data/uploads"), "{rule}: {:?}", e.resources);
        }
        assert_eq!(r.rule("baseline/load-balancer-https").unwrap().status, RuleStatus::Pass);
    }
}

#[test]
fn the_uploads_bucket_is_versioned_and_encrypted_by_the_template_itself() {
    let s = synth(Stage::Prod);
    let uploads = &s.resources[s.index_of("data/uploads").unwrap()];
    let fields = serde_json::to_value(&uploads.fields).unwrap();
    assert_eq!(fields["versioning"], true);
    assert_eq!(fields["encryption"], "provider_managed", "{fields}");
    assert_eq!(fields["public_read"], false);
}

#[test]
fn every_resource_of_a_serving_gdpr_saas_stack_is_in_an_eu_region() {
    let cat = SimCloud::catalog();
    let s = synth(Stage::Prod);
    assert_eq!(cat.region(&s.region).unwrap().jurisdiction, Jurisdiction::Eu, "{}", s.region);
    let r = check(&s);
    let residency = r.rule(RESIDENCY_RULE).unwrap();
    assert_eq!(residency.status, RuleStatus::Pass);
    // One outcome per resource, every one a pass in an EU region of the catalogue.
    assert_eq!(residency.resources.len(), s.resources.len());
    for res in &s.resources {
        let region = match res.fields.get("region") {
            Some(Expr::Lit(Value::String(r))) => r.clone(),
            other => panic!("{}: region {other:?}", res.path),
        };
        assert_eq!(cat.region(&region).unwrap().jurisdiction, Jurisdiction::Eu, "{}: {region}", res.path);
        let checked = residency
            .resources
            .iter()
            .find(|c| c.path.ends_with(&format!("/{}", res.path)))
            .unwrap_or_else(|| panic!("{} not checked for residency", res.path));
        assert_eq!(checked.status, ResourceStatus::Pass, "{}", res.path);
        assert!(checked.detail.as_deref().unwrap_or_default().starts_with(&region), "{:?}", checked.detail);
    }
}

#[test]
fn a_zone_certificate_or_bucket_outside_the_eu_is_flagged_by_the_residency_rule() {
    // A stack built without the template's placement check (or edited by hand) could have them
    // elsewhere: the rule reads each resource's own region, DNS and certificates included.
    for path in ["edge/zone", "edge/certificate", "data/uploads", "edge/record", "app/lb"] {
        let mut s = synth(Stage::Prod);
        let i = s.index_of(path).unwrap();
        s.resources[i].fields.insert("region".into(), Expr::Lit(json!("us-east")));
        let r = check(&s);
        let flagged: Vec<(&str, &str)> = r.findings.iter().map(|f| (f.rule_id.as_str(), f.path.as_str())).collect();
        assert_eq!(flagged, [(RESIDENCY_RULE, format!("crm-prod/{path}").as_str())], "{r}");
        assert!(
            r.findings[0].message.contains("us-east") && r.findings[0].message.contains("outside the EU/EEA"),
            "{r}"
        );
    }
}
