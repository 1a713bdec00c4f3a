//! The evidence report of the built-in web-app template under `baseline` + `gdpr`, as the
//! Markdown a founder hands to an auditor and as the JSON/YAML data behind it; and a user pack
//! built from a custom rule plus a built-in pack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use konstacks_core::model::{Database, Stage};
use konstacks_core::policy::{Pack, PolicyContext, PolicyReport, PolicySet, Rule, RuleOutcome, RuleStatus, Severity};
use konstacks_core::sim::SimCloud;
use konstacks_templates::{find, packs, TemplateContext};

fn web_app_report(stage: Stage, policy: PolicySet) -> PolicyReport {
    let cat = SimCloud::catalog();
    let stack =
        find("web-app").unwrap().build_json(&TemplateContext::new("shop", stage), serde_json::Value::Null).unwrap();
    let s = stack.synth(&[&cat]).unwrap();
    policy.check(&s, &[&cat]).with_date("2026-11-05")
}

#[test]
fn web_app_prod_evidence_under_baseline_and_gdpr() {
    let policy = PolicySet::new().pack(packs::baseline::pack()).pack(packs::gdpr::pack());
    let report = web_app_report(Stage::Prod, policy);
    assert!(!report.has_errors(), "{report}");
    assert!(report.findings.is_empty(), "{report}");
    assert_eq!(report.rule("gdpr/eu-residency").unwrap().status, RuleStatus::Pass);
    assert_eq!(report.rule("baseline/database-backups").unwrap().packs, ["baseline", "gdpr"]);
    insta::assert_snapshot!("web_app_prod_evidence_markdown", report.to_markdown());
    insta::assert_yaml_snapshot!("web_app_prod_evidence", report);
}

/// A user rule: databases carry a `data-classification` tag.
struct Classified;

impl Rule for Classified {
    fn id(&self) -> &str {
        "acme/data-classification"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "Databases carry a data-classification tag"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        cx.of::<Database>()
            .map(|db| match db.tag("data-classification") {
                Some(_) => RuleOutcome::pass(db),
                None => RuleOutcome::fail(
                    db,
                    "the database has no `data-classification` tag",
                    "tag the stack: `stack.tag(\"data-classification\", \"confidential\")`",
                ),
            })
            .collect()
    }
}

#[test]
fn a_user_pack_combines_a_custom_rule_with_a_built_in_pack() {
    let acme = Pack::new("acme", "ACME: gdpr plus data classification").rule(Classified).include(packs::gdpr::pack());
    assert_eq!(acme.includes, ["gdpr", "baseline"]);
    let report = web_app_report(Stage::Dev, PolicySet::new().pack(acme));
    let errors: Vec<_> = report.errors().map(|f| (f.rule_id.as_str(), f.path.as_str())).collect();
    assert_eq!(errors, [("acme/data-classification", "shop/data/postgres")]);
    assert_eq!(report.rule("baseline/database-encrypted").unwrap().status, RuleStatus::Pass);
}

#[test]
fn web_app_prod_under_hardened() {
    let report = web_app_report(Stage::Prod, PolicySet::new().pack(packs::hardened::pack()));
    // The template keeps 14 days of backups in prod and leaves database egress open: `hardened`
    // asks for 30 days and warns about the egress.
    let ids: Vec<_> = report.findings.iter().map(|f| (f.severity, f.rule_id.as_str(), f.path.as_str())).collect();
    assert_eq!(
        ids,
        [
            (Severity::Error, "hardened/backup-retention", "shop/data/postgres"),
            (Severity::Warning, "hardened/database-egress-restricted", "shop/network/db-fw"),
        ],
        "{report}"
    );
}
