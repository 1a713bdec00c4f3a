//! The policy engine with user-written rules: outcomes become findings with full paths,
//! evidence lists every resource checked, packs compose, suppressions need a written reason,
//! and the context exposes firewall rules, attachments, public subnets and region facts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use konstacks_core::model::{
    cache, database, vm, Cache, CacheEngine, Database, DbEngine, DbSize, Firewall, Image, Ingress, Jurisdiction,
    Placement, ResourceKind, Stack, Stage, Subnet, Vm, VmSize, Vpc,
};
use konstacks_core::policy::{
    Direction, Pack, PeerView, PolicyContext, PolicyReport, PolicySet, ResourceStatus, Rule, RuleOutcome, RuleStatus,
    Severity, Suppression, SUPPRESSION_UNKNOWN_RULE, SUPPRESSION_WITHOUT_REASON,
};
use konstacks_core::provider::Catalog;
use konstacks_core::sim::SimCloud;
use konstacks_core::validate::Synthesized;

/// A user rule: every VM carries an `owner` tag. An error in prod, a warning elsewhere.
struct OwnerTag;

impl Rule for OwnerTag {
    fn id(&self) -> &str {
        "acme/owner-tag"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "VMs carry an owner tag"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        let severity = if cx.stage() == Stage::Prod { Severity::Error } else { Severity::Warning };
        cx.of_kind(Vm::KIND)
            .map(|vm| match vm.tag("owner") {
                Some(owner) => RuleOutcome::pass(vm).with_detail(format!("owner: {owner}")),
                None => RuleOutcome::fail(vm, "the VM has no `owner` tag", "add `stack.tag(\"owner\", \"<team>\")`")
                    .with_severity(severity),
            })
            .collect()
    }
}

/// A user rule about the stack as a whole: it must run in the EU.
struct StackInEu;

impl Rule for StackInEu {
    fn id(&self) -> &str {
        "acme/stack-in-eu"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "The stack runs in the EU"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        match cx.region() {
            Some(r) if r.jurisdiction == Jurisdiction::Eu => vec![RuleOutcome::stack_pass()],
            Some(r) => vec![RuleOutcome::stack_fail(format!("region {} is in {}", r.name, r.country), "move it")],
            None => vec![RuleOutcome::stack_fail("unknown region", "move it")],
        }
    }
}

/// A user rule about Redis only (n/a when there is none).
struct RedisHa;

impl Rule for RedisHa {
    fn id(&self) -> &str {
        "acme/redis-ha"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn title(&self) -> &str {
        "Redis is highly available"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        cx.of::<Cache>()
            .filter(|d| d.get(cache::field::ENGINE) == Some(CacheEngine::Redis))
            .map(|d| {
                if d.bool(cache::field::HIGH_AVAILABILITY) == Some(true) {
                    RuleOutcome::pass(d)
                } else {
                    RuleOutcome::fail(d, "no standby", "set .high_availability(true)")
                }
            })
            .collect()
    }
}

fn acme() -> Pack {
    Pack::new("acme", "ACME house rules").rule(OwnerTag).rule(StackInEu).rule(RedisHa)
}

fn stack(name: &str, placement: Placement, stage: Stage, owner: bool) -> Stack {
    let stack = Stack::new(name, placement, stage);
    if owner {
        stack.tag("owner", "platform");
    }
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = net.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let a = net.add("private-a", Subnet::new(vpc, "10.0.2.0/24").zone(0));
    let b = net.add("private-b", Subnet::new(vpc, "10.0.3.0/24").zone(1));
    let web_fw = net.add(
        "web-fw",
        Firewall::new(vpc)
            .allow(Ingress::tcp(443).from_anywhere())
            .allow(Ingress::tcp_range(8000, 8100).from_cidr("10.9.0.0/16")),
    );
    let db_fw = net.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(5432).from(web_fw)).restrict_egress());
    let db = stack.scope("data").add("db", Database::postgres("16", DbSize::Small, [a, b]).firewall(db_fw));
    let app = stack.scope("app");
    for i in 1..=2 {
        app.add(
            &format!("web-{i}"),
            Vm::new(Image::UbuntuLts, VmSize::Small, public).firewall(web_fw).public_ip(true).env("DB", db.host()),
        );
    }
    stack
}

fn synth(s: &Stack) -> Synthesized {
    s.synth(&[&SimCloud::catalog()]).unwrap()
}

fn check(policy: &PolicySet, s: &Synthesized) -> PolicyReport {
    let cat = SimCloud::catalog();
    let cats: [&Catalog; 1] = [&cat];
    policy.check(s, &cats)
}

#[test]
fn a_custom_rule_reports_findings_with_full_paths_and_evidence() {
    let s = synth(&stack("shop", Placement::within(Jurisdiction::Eu), Stage::Prod, false));
    let report = check(&PolicySet::new().pack(acme()), &s);

    assert!(report.has_errors());
    assert_eq!(report.counts.errors, 2);
    let paths: Vec<&str> = report.errors().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["shop/app/web-1", "shop/app/web-2"]);
    let f = &report.findings[0];
    assert_eq!(f.rule_id, "acme/owner-tag");
    assert_eq!(f.message, "the VM has no `owner` tag");
    assert!(f.fix.contains("stack.tag"));

    let owner = report.rule("acme/owner-tag").unwrap();
    assert_eq!(owner.status, RuleStatus::Fail);
    assert_eq!(owner.packs, ["acme"]);
    assert_eq!(owner.resources.len(), 2);
    assert!(owner.resources.iter().all(|r| r.status == ResourceStatus::Fail && r.kind == Some(Vm::KIND)));

    let eu = report.rule("acme/stack-in-eu").unwrap();
    assert_eq!(eu.status, RuleStatus::Pass);
    assert_eq!(eu.resources[0].path, "shop");
    assert_eq!(eu.resources[0].kind, None);

    assert_eq!(report.rule("acme/redis-ha").unwrap().status, RuleStatus::NotApplicable);
    assert_eq!(report.region_info.as_ref().unwrap().jurisdiction, Jurisdiction::Eu);
    assert_eq!(report.counts.rules, 3);
    assert_eq!(report.counts.rules_passed, 1);
    assert_eq!(report.counts.rules_failed, 1);
}

#[test]
fn a_passing_stack_has_no_findings_and_says_so() {
    let s = synth(&stack("shop", Placement::within(Jurisdiction::Eu), Stage::Prod, true));
    let report = check(&PolicySet::new().pack(acme()), &s);
    assert!(!report.has_errors());
    assert!(report.findings.is_empty(), "{report}");
    let human = report.render_human(false);
    assert!(human.contains("All rules passed."), "{human}");
    assert!(report.to_markdown().contains("| `shop/app/web-1` | vm | pass | owner: platform |"));
    assert!(human.contains("0 errors, 0 warnings, 0 suppressed; 3 rules: 2 passed, 1 not applicable"), "{human}");
}

#[test]
fn an_outcome_can_lower_the_severity() {
    let s = synth(&stack("shop", Placement::within(Jurisdiction::Eu), Stage::Dev, false));
    let report = check(&PolicySet::new().pack(acme()), &s);
    assert!(!report.has_errors());
    assert_eq!(report.counts.warnings, 2);
    assert_eq!(report.rule("acme/owner-tag").unwrap().status, RuleStatus::Warn);
}

#[test]
fn a_stack_level_rule_reports_on_the_stack() {
    let s = synth(&stack("shop", Placement::region("us-east"), Stage::Prod, true));
    let report = check(&PolicySet::new().pack(acme()), &s);
    let f: Vec<_> = report.errors().collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].path, "shop");
    assert_eq!(f[0].message, "region us-east is in US");
}

#[test]
fn packs_compose_and_a_rule_is_checked_once() {
    let base = Pack::new("base", "base rules").rule(OwnerTag);
    let strict = Pack::new("strict", "stricter").rule(StackInEu).include(base.clone());
    assert_eq!(strict.rule_ids(), ["acme/stack-in-eu", "acme/owner-tag"]);
    assert_eq!(strict.includes, ["base"]);
    let twice = Pack::new("twice", "x").include(strict.clone()).include(base.clone());
    assert_eq!(twice.rule_ids().len(), 2);

    let s = synth(&stack("shop", Placement::within(Jurisdiction::Eu), Stage::Prod, false));
    let report = check(&PolicySet::new().pack(base).pack(strict), &s);
    assert_eq!(report.rules.len(), 2);
    assert_eq!(report.counts.errors, 2, "owner-tag checked once although two packs hold it");
    assert_eq!(report.rule("acme/owner-tag").unwrap().packs, ["base", "strict"]);
    assert_eq!(report.packs[1].includes, ["base"]);
}

#[test]
fn a_suppression_with_a_reason_is_applied_and_shown() {
    let s = synth(&stack("shop", Placement::within(Jurisdiction::Eu), Stage::Prod, false));
    let policy = PolicySet::new().pack(acme()).suppress(Suppression::new(
        "acme/owner-tag",
        "app/*",
        "app VMs are owned by the platform team, see RFC-12; until 2027-01-01",
    ));
    let report = check(&policy, &s);
    assert!(!report.has_errors(), "{report}");
    assert_eq!(report.counts.suppressed, 2);
    assert_eq!(report.suppressed[0].finding.path, "shop/app/web-1");
    assert_eq!(report.suppressions[0].matched, 2);
    assert!(report.suppressions[0].applied);
    assert_eq!(report.rule("acme/owner-tag").unwrap().status, RuleStatus::Suppressed);

    let human = report.render_human(false);
    assert!(human.contains("suppressed[acme/owner-tag] shop/app/web-1: the VM has no `owner` tag"), "{human}");
    assert!(human.contains("reason: app VMs are owned by the platform team"), "{human}");
    let md = report.to_markdown();
    assert!(md.contains("| `acme/owner-tag` | `app/*` | app VMs are owned by the platform team"), "{md}");
    assert!(md.contains("| `shop/app/web-1` | vm | suppressed | the VM has no `owner` tag |"), "{md}");
}

#[test]
fn a_suppression_can_target_one_resource_by_full_path() {
    let s = synth(&stack("shop", Placement::within(Jurisdiction::Eu), Stage::Prod, false));
    let policy = PolicySet::new().pack(acme()).suppress(Suppression::new("acme/*", "shop/app/web-2", "being retired"));
    let report = check(&policy, &s);
    assert_eq!(report.counts.errors, 1);
    assert_eq!(report.findings[0].path, "shop/app/web-1");
    assert_eq!(report.counts.suppressed, 1);
    assert_eq!(report.suppressed[0].finding.path, "shop/app/web-2");
    assert_eq!(report.suppressed[0].reason, "being retired");
}

#[test]
fn a_suppression_without_a_reason_is_an_error_and_not_applied() {
    let s = synth(&stack("shop", Placement::within(Jurisdiction::Eu), Stage::Prod, false));
    let policy = PolicySet::new().pack(acme()).suppress(Suppression::new("acme/owner-tag", "shop/**", "  "));
    let report = check(&policy, &s);
    assert_eq!(report.counts.suppressed, 0);
    assert_eq!(report.counts.errors, 3, "{report}");
    let meta: Vec<_> = report.findings.iter().filter(|f| f.rule_id == SUPPRESSION_WITHOUT_REASON).collect();
    assert_eq!(meta.len(), 1);
    assert_eq!(meta[0].severity, Severity::Error);
    assert_eq!(meta[0].path, "shop");
    assert!(meta[0].message.contains("has no written reason"), "{}", meta[0].message);
    assert!(!report.suppressions[0].applied);
    assert!(report.to_markdown().contains("(no reason written) | no | 0 |"));
}

#[test]
fn a_suppression_of_an_unknown_rule_is_a_warning() {
    let s = synth(&stack("shop", Placement::within(Jurisdiction::Eu), Stage::Prod, true));
    let policy = PolicySet::new().pack(acme()).suppress(Suppression::new("acme/owner-tags", "shop/**", "typo"));
    let report = check(&policy, &s);
    assert!(!report.has_errors());
    assert_eq!(report.counts.warnings, 1);
    assert_eq!(report.findings[0].rule_id, SUPPRESSION_UNKNOWN_RULE);
    assert!(report.findings[0].fix.contains("acme/owner-tag"));
}

#[test]
fn suppressions_load_from_json_and_a_missing_reason_defaults_to_empty() {
    let s: Vec<Suppression> =
        serde_json::from_str(r#"[{"rule_id":"a/b","path":"x/**","reason":"ok"},{"rule_id":"a/c","path":"y"}]"#)
            .unwrap();
    assert!(s[0].has_reason());
    assert!(!s[1].has_reason());
}

#[test]
fn the_context_reads_firewall_rules_attachments_and_subnets() {
    let s = synth(&stack("shop", Placement::within(Jurisdiction::Eu), Stage::Prod, true));
    let cat = SimCloud::catalog();
    let cats: [&Catalog; 1] = [&cat];
    let cx = PolicyContext::new(&s, &cats);

    let by_path = |p: &str| cx.resources().find(|r| r.path == p).unwrap();
    let web_fw = by_path("network/web-fw");
    let db_fw = by_path("network/db-fw");
    let db = by_path("data/db");
    let vm = by_path("app/web-1");

    let rules = cx.firewall_rules(web_fw);
    assert_eq!(rules.len(), 3, "two ingress rules and the default egress");
    assert!(rules[0].is_anywhere() && rules[0].covers_tcp(443) && !rules[0].covers_tcp(22));
    assert_eq!(rules[1].ports_label(), "tcp 8000-8100");
    assert!(!rules[1].is_anywhere() && rules[1].covers_tcp(8080));
    assert_eq!(rules[2].direction, Direction::Egress);
    assert!(rules[2].is_anywhere() && rules[2].covers_tcp(22));
    assert_eq!(rules[2].ports_label(), "all traffic");
    assert_eq!(rules[2].label(), "egress rule #0");

    let db_rules = cx.firewall_rules(db_fw);
    assert_eq!(db_rules.len(), 1, "egress restricted");
    assert_eq!(db_rules[0].peer, PeerView::Firewall(web_fw.index));

    assert_eq!(cx.firewalls_of(db).iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["network/db-fw"]);
    assert_eq!(cx.attached_to(web_fw).iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["app/web-1", "app/web-2"]);
    assert!(cx.guards_database(db_fw));
    assert!(!cx.guards_database(web_fw));

    let db_subnets: Vec<_> = cx.subnets_of(db).into_iter().map(|s| (s.path.clone(), cx.is_public_subnet(s))).collect();
    assert_eq!(db_subnets, [("network/private-a".to_string(), false), ("network/private-b".to_string(), false)]);
    assert!(cx.is_public_subnet(cx.subnets_of(vm)[0]));

    assert_eq!(db.u64(database::field::BACKUP_RETENTION_DAYS), Some(7));
    assert_eq!(db.bool(database::field::ENCRYPTED), Some(true));
    assert_eq!(db.get(database::field::ENGINE), Some(DbEngine::Postgres));
    assert_eq!(vm.bool(database::field::ENCRYPTED), None, "a field of another kind reads as absent");
    assert_eq!(vm.tag("owner"), Some("platform"));
    assert!(vm.lit(vm::field::ENV).is_none(), "env holds an output, so it is no literal");
    assert_eq!(cx.full_path(vm), "shop/app/web-1");

    let region = cx.region().unwrap();
    assert_eq!((region.name.as_str(), region.country.as_str()), ("eu-central", "DE"));
    assert_eq!(cx.region_of(db).unwrap().jurisdiction, Jurisdiction::Eu);
}

#[test]
fn the_report_round_trips_through_json_and_renders() {
    let s = synth(&stack("shop", Placement::within(Jurisdiction::Eu), Stage::Prod, false));
    let report = check(&PolicySet::new().pack(acme()), &s).with_date("2026-11-05");
    let json = report.to_json();
    let back: PolicyReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["findings"][0]["severity"], "error");
    assert_eq!(v["rules"][0]["status"], "fail");
    assert_eq!(v["region_info"]["jurisdiction"], "eu");

    let plain = report.render_human(false);
    assert!(!plain.contains('\x1b'));
    // Findings that differ only by path are shown once, with every path.
    assert!(
        plain.contains("error[acme/owner-tag] shop/app/web-1, shop/app/web-2: the VM has no `owner` tag\n  fix: "),
        "{plain}"
    );
    assert!(plain.contains("region eu-central (Frankfurt, DE, jurisdiction eu)"), "{plain}");
    assert!(report.render_human(true).contains("\x1b[31merror\x1b[0m"));

    let md = report.to_markdown();
    assert!(md.starts_with("# Compliance evidence: `shop`"), "{md}");
    assert!(md.contains("| Date | 2026-11-05 |"), "{md}");
    assert!(md.contains("| Jurisdiction | EU/EEA (GDPR) [`eu`] |"), "{md}");
    assert!(md.contains("| Result | **FAIL**"), "{md}");
    assert!(md.contains("| `acme/redis-ha` | Redis is highly available | warning | not applicable | 0 |"), "{md}");
    assert!(md.contains("- **error** `acme/owner-tag` on `shop/app/web-1`, `shop/app/web-2`: the VM has no"), "{md}");
}

#[test]
fn an_empty_policy_set_passes() {
    let s = synth(&stack("shop", Placement::within(Jurisdiction::Eu), Stage::Prod, false));
    let report = check(&PolicySet::new(), &s);
    assert!(!report.has_errors());
    assert!(report.rules.is_empty());
    assert!(report.summary().ends_with("0 rules: none checked"), "{}", report.summary());
}
