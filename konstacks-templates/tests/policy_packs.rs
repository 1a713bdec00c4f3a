//! The built-in rule packs: for every rule a stack that passes and one that fails, residency
//! packs against their own and a foreign region, and suppressions with and without a reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use konstacks_core::model::{
    Bucket, BucketEncryption, Cache, CacheSize, Database, DbSize, Egress, Firewall, FirewallRule as FwRule, Image,
    Ingress, Jurisdiction, Placement, Ref, Stack, Stage, Subnet, Vm, VmSize, Vpc,
};
use konstacks_core::model::{LoadBalancer, TargetGroup, TlsPolicy};
use konstacks_core::policy::{PolicyReport, PolicySet, RuleStatus, Severity, Suppression, SUPPRESSION_WITHOUT_REASON};
use konstacks_core::sim::SimCloud;
use konstacks_core::validate::{Expr, FieldMap};
use konstacks_templates::packs;
use serde_json::{json, Value};

#[derive(Clone, Copy, PartialEq)]
enum Db {
    Postgres,
    Mysql,
    Redis,
}

/// A stack that satisfies every built-in pack in prod when left at its defaults (placement
/// aside); each test changes one knob.
#[derive(Clone)]
struct Knobs {
    placement: Placement,
    stage: Stage,
    web_rules: Vec<FwRule>,
    db_rules: Vec<FwRule>,
    db_restrict_egress: bool,
    db: Db,
    db_in_public_subnet: bool,
    encrypted: bool,
    backups: u32,
    ha: bool,
    deletion_protection: bool,
    vm_public_ip: bool,
    vm_in_private_subnet: bool,
    vm_in_db_subnet: bool,
    vm_shares_db_fw: bool,
    bucket_versioning: bool,
    bucket_public: Option<&'static str>,
    bucket_encryption: BucketEncryption,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            placement: Placement::within(Jurisdiction::Eu),
            stage: Stage::Prod,
            web_rules: vec![Ingress::tcp(443).from_anywhere(), Ingress::tcp(22).from_cidr("198.51.100.7/32")],
            db_rules: Vec::new(),
            db_restrict_egress: true,
            db: Db::Postgres,
            db_in_public_subnet: false,
            encrypted: true,
            backups: 30,
            ha: true,
            deletion_protection: true,
            vm_public_ip: true,
            vm_in_private_subnet: false,
            vm_in_db_subnet: false,
            vm_shares_db_fw: false,
            bucket_versioning: true,
            bucket_public: None,
            bucket_encryption: BucketEncryption::ProviderManaged,
        }
    }
}

fn knobs(f: impl FnOnce(&mut Knobs)) -> Knobs {
    let mut k = Knobs::default();
    f(&mut k);
    k
}

fn build(k: &Knobs) -> Stack {
    let stack = Stack::new("shop", k.placement.clone(), k.stage);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = net.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let a = net.add("private-a", Subnet::new(vpc, "10.0.2.0/24").zone(0));
    let b = net.add("private-b", Subnet::new(vpc, "10.0.3.0/24").zone(1));
    let app_private = net.add("app-private", Subnet::new(vpc, "10.0.4.0/24"));
    // With `public`, the two zones a public load balancer in front of the VM needs.
    let public_b = net.add("public-b", Subnet::new(vpc, "10.0.5.0/24").public().zone(1));
    let mut web_fw = Firewall::new(vpc);
    for r in &k.web_rules {
        web_fw = web_fw.allow(r.clone());
    }
    let web_fw = net.add("web-fw", web_fw);
    let port = match k.db {
        Db::Postgres => 5432,
        Db::Mysql => 3306,
        Db::Redis => 6379,
    };
    let mut db_fw = Firewall::new(vpc).allow(Ingress::tcp(port).from(web_fw));
    for r in &k.db_rules {
        db_fw = db_fw.allow(r.clone());
    }
    if k.db_restrict_egress {
        db_fw = db_fw.restrict_egress();
    }
    let db_fw = net.add("db-fw", db_fw);
    let subnets = if k.db_in_public_subnet { [public, b] } else { [a, b] };
    let db = match k.db {
        Db::Postgres => Database::postgres("16", DbSize::Small, subnets),
        Db::Mysql => Database::mysql("8.0", DbSize::Small, subnets),
        Db::Redis => {
            // Redis is the cache kind: it has no backups, encryption at rest or deletion protection.
            let cache = Cache::redis("7", CacheSize::Small, subnets).firewall(db_fw);
            stack.scope("data").add("db", cache.replicas(u32::from(k.ha)).high_availability(k.ha));
            return finish(stack, k, vm_subnets(k, public, a, app_private), web_fw, db_fw, [public, public_b]);
        }
    };
    stack.scope("data").add(
        "db",
        db.firewall(db_fw)
            .encrypted(k.encrypted)
            .backups(k.backups)
            .high_availability(k.ha)
            .deletion_protection(k.deletion_protection),
    );
    finish(stack, k, vm_subnets(k, public, a, app_private), web_fw, db_fw, [public, public_b])
}

fn vm_subnets(k: &Knobs, public: Ref<Subnet>, a: Ref<Subnet>, app_private: Ref<Subnet>) -> Ref<Subnet> {
    if k.vm_in_db_subnet {
        a
    } else if k.vm_in_private_subnet {
        app_private
    } else {
        public
    }
}

fn finish(
    stack: Stack,
    k: &Knobs,
    vm_subnet: Ref<Subnet>,
    web_fw: Ref<Firewall>,
    db_fw: Ref<Firewall>,
    lb_subnets: [Ref<Subnet>; 2],
) -> Stack {
    let mut vm = Vm::new(Image::UbuntuLts, VmSize::Small, vm_subnet).firewall(web_fw).public_ip(k.vm_public_ip);
    if k.vm_shares_db_fw {
        vm = vm.firewall(db_fw);
    }
    let web = stack.scope("app").add("web", vm);
    let lb = LoadBalancer::public(lb_subnets).http(80).https(443, "cert-1");
    stack.scope("app").add("lb", lb.target_group(TargetGroup::new("web", 443).vm(web)));
    let mut files = Bucket::new().versioning(k.bucket_versioning).encryption(k.bucket_encryption.clone());
    if let Some(reason) = k.bucket_public {
        files = files.public_read(reason);
    }
    stack.scope("data").add("files", files);
    stack
}

fn check_with(policy: PolicySet, k: &Knobs) -> PolicyReport {
    let cat = SimCloud::catalog();
    let s = build(k).synth(&[&cat]).unwrap();
    policy.check(&s, &[&cat])
}

fn check(pack: &str, k: &Knobs) -> PolicyReport {
    check_with(PolicySet::new().pack(packs::by_name(pack).unwrap()), k)
}

/// Rule ids with unsuppressed findings.
fn failing(r: &PolicyReport) -> Vec<&str> {
    let mut ids: Vec<&str> = r.findings.iter().map(|f| f.rule_id.as_str()).collect();
    ids.dedup();
    ids
}

/// Exactly `rule` fails (every other rule passes or is not applicable); returns its findings'
/// messages.
fn only_fails(r: &PolicyReport, rule: &str) -> Vec<String> {
    assert_eq!(failing(r), [rule], "{r}");
    assert!(r.rule(rule).is_some_and(|e| matches!(e.status, RuleStatus::Fail | RuleStatus::Warn)));
    r.findings.iter().map(|f| format!("{}: {}", f.path, f.message)).collect()
}

#[test]
fn every_pack_is_listed_and_found_by_name() {
    let names: Vec<&str> = packs::all().iter().map(|p| p.name).collect();
    assert_eq!(names, ["baseline", "gdpr", "popia", "pdpa", "dpdp", "lgpd", "hardened"]);
    for info in packs::all() {
        let p = packs::by_name(info.name).unwrap();
        assert_eq!(p.name, info.name);
        assert_eq!(p.description, info.description);
        assert!(!p.rules.is_empty());
    }
    assert!(packs::by_name("GDPR").is_some());
    assert!(packs::by_name("hipaa").is_none());
}

#[test]
fn residency_and_hardened_packs_include_baseline() {
    let base = packs::baseline::pack();
    for name in ["gdpr", "popia", "pdpa", "dpdp", "lgpd", "hardened"] {
        let p = packs::by_name(name).unwrap();
        assert_eq!(p.includes, ["baseline"], "{name}");
        for id in base.rule_ids() {
            assert!(p.rule_ids().contains(&id), "{name} lacks {id}");
        }
    }
}

#[test]
fn the_reference_stack_passes_every_pack_in_its_jurisdiction() {
    for (pack, j) in [
        ("baseline", Jurisdiction::Eu),
        ("gdpr", Jurisdiction::Eu),
        ("popia", Jurisdiction::SouthAfrica),
        ("pdpa", Jurisdiction::Singapore),
        ("dpdp", Jurisdiction::India),
        ("lgpd", Jurisdiction::Brazil),
        ("hardened", Jurisdiction::Eu),
    ] {
        let r = check(pack, &knobs(|k| k.placement = Placement::within(j)));
        assert!(r.findings.is_empty(), "{pack}: {r}");
        assert!(r.rules.iter().all(|e| e.status == RuleStatus::Pass), "{pack}: {r}");
    }
}

// ---- baseline/no-admin-ports-from-anywhere ----

#[test]
fn ssh_from_an_admin_cidr_passes() {
    let r = check("baseline", &Knobs::default());
    let e = r.rule("baseline/no-admin-ports-from-anywhere").unwrap();
    assert_eq!(e.status, RuleStatus::Pass);
    assert_eq!(e.resources.len(), 2, "both firewalls are checked");
}

#[test]
fn ssh_from_anywhere_fails() {
    let r = check("baseline", &knobs(|k| k.web_rules.push(Ingress::tcp(22).from_anywhere())));
    let m = only_fails(&r, "baseline/no-admin-ports-from-anywhere");
    assert_eq!(m, ["shop/network/web-fw: ingress rule #2 allows tcp 22 from anywhere, which opens SSH (22)"]);
    assert!(r.findings[0].fix.contains("from_cidr"));
}

#[test]
fn rdp_from_anywhere_fails() {
    let r = check("baseline", &knobs(|k| k.web_rules.push(Ingress::tcp(3389).from_anywhere())));
    let m = only_fails(&r, "baseline/no-admin-ports-from-anywhere");
    assert!(m[0].ends_with("which opens RDP (3389)"), "{m:?}");
}

#[test]
fn a_port_range_covering_ssh_from_anywhere_fails() {
    let r = check("baseline", &knobs(|k| k.web_rules.push(Ingress::tcp_range(1, 1024).from_anywhere())));
    let m = only_fails(&r, "baseline/no-admin-ports-from-anywhere");
    assert!(m[0].contains("tcp 1-1024 from anywhere, which opens SSH (22)"), "{m:?}");
}

#[test]
fn all_traffic_from_anywhere_fails() {
    let r = check("baseline", &knobs(|k| k.web_rules.push(Ingress::all().from_anywhere())));
    let m = only_fails(&r, "baseline/no-admin-ports-from-anywhere");
    assert!(m[0].contains("all traffic from anywhere, which opens SSH (22) and RDP (3389)"), "{m:?}");
}

#[test]
fn udp_22_or_a_range_below_ssh_from_anywhere_passes() {
    let r = check(
        "baseline",
        &knobs(|k| {
            k.web_rules.push(Ingress::udp(22).from_anywhere());
            k.web_rules.push(Ingress::tcp_range(23, 3388).from_anywhere());
        }),
    );
    assert!(r.findings.is_empty(), "{r}");
}

// ---- baseline/database-not-public ----

#[test]
fn a_database_reachable_only_from_the_app_passes() {
    let r = check("baseline", &Knobs::default());
    let e = r.rule("baseline/database-not-public").unwrap();
    assert_eq!(e.status, RuleStatus::Pass);
    assert_eq!(e.resources[0].path, "shop/data/db");
}

#[test]
fn a_database_firewall_open_to_anywhere_fails() {
    let r = check("baseline", &knobs(|k| k.db_rules.push(Ingress::tcp(5432).from_anywhere())));
    let m = only_fails(&r, "baseline/database-not-public");
    assert_eq!(m, ["shop/data/db: its firewall `network/db-fw` (ingress rule #1) allows tcp 5432 from anywhere"]);
}

#[test]
fn a_database_in_a_public_subnet_fails() {
    let r = check("baseline", &knobs(|k| k.db_in_public_subnet = true));
    let m = only_fails(&r, "baseline/database-not-public");
    assert_eq!(m, ["shop/data/db: it is placed in subnet `network/public`, which is public (routes to the internet)"]);
}

// ---- baseline/database-encrypted ----

#[test]
fn an_encrypted_database_passes_and_an_unencrypted_one_fails() {
    assert_eq!(
        check("baseline", &Knobs::default()).rule("baseline/database-encrypted").unwrap().status,
        RuleStatus::Pass
    );
    let r = check("baseline", &knobs(|k| k.encrypted = false));
    assert_eq!(only_fails(&r, "baseline/database-encrypted"), ["shop/data/db: the database is not encrypted at rest"]);
}

// ---- baseline/database-backups ----

#[test]
fn backups_on_pass_and_off_fail_for_postgres_and_mysql() {
    for db in [Db::Postgres, Db::Mysql] {
        let r = check("baseline", &knobs(|k| k.db = db));
        assert_eq!(r.rule("baseline/database-backups").unwrap().status, RuleStatus::Pass);
        let r = check(
            "baseline",
            &knobs(|k| {
                k.db = db;
                k.backups = 0;
            }),
        );
        assert_eq!(
            only_fails(&r, "baseline/database-backups"),
            ["shop/data/db: automated backups are off (retention 0 days)"]
        );
    }
}

#[test]
fn redis_without_backups_is_not_subject_to_the_backup_rule() {
    let r = check(
        "baseline",
        &knobs(|k| {
            k.db = Db::Redis;
            k.backups = 0;
        }),
    );
    assert!(r.findings.is_empty(), "{r}");
    assert_eq!(r.rule("baseline/database-backups").unwrap().status, RuleStatus::NotApplicable);
}

// ---- buckets: baseline/bucket-public-read-justified, gdpr/bucket-encrypted, gdpr/bucket-versioned ----

/// The policy report of the stack `k` after `edit` changed the synthesized `data/files` bucket's
/// fields (as a stack built without the `Bucket` builder's checks could have them).
fn check_edited(pack: &str, k: &Knobs, edit: impl FnOnce(&mut FieldMap<Expr>)) -> PolicyReport {
    let cat = SimCloud::catalog();
    let mut s = build(k).synth(&[&cat]).unwrap();
    let files = s.resources.iter_mut().find(|r| r.path == "data/files").unwrap();
    edit(&mut files.fields);
    PolicySet::new().pack(packs::by_name(pack).unwrap()).check(&s, &[&cat])
}

#[test]
fn a_private_bucket_and_a_public_one_with_its_reason_pass_baseline() {
    let r = check("baseline", &Knobs::default());
    let e = r.rule("baseline/bucket-public-read-justified").unwrap();
    assert_eq!((e.status, e.resources.len()), (RuleStatus::Pass, 1));

    let r = check("baseline", &knobs(|k| k.bucket_public = Some("product images shown on the shop")));
    assert!(r.findings.is_empty(), "{r}");
    let md = r.to_markdown();
    assert!(md.contains("public read access: product images shown on the shop"), "{md}");
}

#[test]
fn a_public_bucket_without_a_recorded_reason_fails_baseline() {
    let k = knobs(|k| k.bucket_public = Some("temporary"));
    for reason in [Value::Null, json!(""), json!("   ")] {
        let r = check_edited("baseline", &k, |f| {
            f.insert("public_read_reason".into(), Expr::Lit(reason.clone()));
        });
        assert_eq!(
            only_fails(&r, "baseline/bucket-public-read-justified"),
            ["shop/data/files: anyone may read the bucket's objects, and no reason is recorded"],
            "{reason}"
        );
    }
}

#[test]
fn gdpr_refuses_an_unversioned_bucket_and_baseline_does_not_mind() {
    let k = knobs(|k| k.bucket_versioning = false);
    let r = check("gdpr", &k);
    assert_eq!(
        only_fails(&r, "gdpr/bucket-versioned"),
        ["shop/data/files: versioning is off: an overwritten or deleted object cannot be restored"]
    );
    assert!(check("baseline", &k).findings.is_empty());
}

#[test]
fn gdpr_accepts_provider_and_kms_keys_and_refuses_a_bucket_without_encryption() {
    let r = check("gdpr", &Knobs::default());
    assert_eq!(r.rule("gdpr/bucket-encrypted").unwrap().status, RuleStatus::Pass);
    let r = check("gdpr", &knobs(|k| k.bucket_encryption = BucketEncryption::kms("alias/shop-files")));
    assert!(r.findings.is_empty(), "{r}");
    assert!(r.to_markdown().contains("KMS key `alias/shop-files`"));

    let r = check_edited("gdpr", &Knobs::default(), |f| {
        f.remove("encryption");
    });
    assert_eq!(
        only_fails(&r, "gdpr/bucket-encrypted"),
        ["shop/data/files: the bucket's encryption at rest is not set"]
    );
}

// ---- residency ----

#[test]
fn the_eu_only_pack_refuses_a_us_region_with_a_clear_message() {
    let r = check("gdpr", &knobs(|k| k.placement = Placement::region("us-east")));
    assert!(r.has_errors());
    assert_eq!(failing(&r), ["gdpr/eu-residency"]);
    let e = r.rule("gdpr/eu-residency").unwrap();
    assert_eq!(e.status, RuleStatus::Fail);
    assert_eq!(e.resources.len(), 12, "every resource is checked");
    let db = r.findings.iter().find(|f| f.path == "shop/data/db").unwrap();
    assert_eq!(
        db.message,
        "the database and its backups are stored in region us-east (Virginia, US), jurisdiction United States \
         [`us`], outside the EU/EEA"
    );
    assert_eq!(
        db.fix,
        "place the stack with `Placement::within(Jurisdiction::Eu)` or in one of provider `sim`'s regions in the \
         EU/EEA: eu-central (Frankfurt, DE), eu-west (Dublin, IE), eu-south (Milan, IT)"
    );
    let vpc = r.findings.iter().find(|f| f.path == "shop/network/vpc").unwrap();
    assert!(vpc.message.starts_with("it is stored in region us-east"), "{}", vpc.message);
}

#[test]
fn uk_and_switzerland_are_not_eu_eea() {
    for region in ["uk-south", "ch-zurich"] {
        let r = check("gdpr", &knobs(|k| k.placement = Placement::region(region)));
        assert_eq!(failing(&r), ["gdpr/eu-residency"], "{region}");
    }
    let r = check("gdpr", &knobs(|k| k.placement = Placement::region("eu-south")));
    assert!(r.findings.is_empty(), "{r}");
}

#[test]
fn each_residency_pack_passes_at_home_and_refuses_abroad() {
    for (pack, rule, home, area) in [
        ("popia", "popia/za-residency", "af-south", "South Africa: af-south (Johannesburg, ZA)"),
        ("pdpa", "pdpa/sg-residency", "ap-southeast", "Singapore: ap-southeast (Singapore, SG)"),
        ("dpdp", "dpdp/in-residency", "ap-south", "India: ap-south (Mumbai, IN)"),
        ("lgpd", "lgpd/br-residency", "sa-east", "Brazil: sa-east (São Paulo, BR)"),
    ] {
        let r = check(pack, &knobs(|k| k.placement = Placement::region(home)));
        assert!(r.findings.is_empty(), "{pack}: {r}");
        assert_eq!(r.rule(rule).unwrap().status, RuleStatus::Pass);

        let r = check(pack, &knobs(|k| k.placement = Placement::region("eu-central")));
        assert_eq!(failing(&r), [rule], "{pack}");
        let f = &r.findings[0];
        assert!(f.message.contains("eu-central (Frankfurt, DE)"), "{}", f.message);
        assert!(f.fix.ends_with(area), "{pack}: {}", f.fix);
    }
}

#[test]
fn a_provider_without_a_region_in_the_area_names_the_providers_that_have_one() {
    // A second provider with EU regions only; the stack runs on the sim in the US and a gdpr
    // check should say that the sim has EU regions; the other way round it names the sim.
    let mut eu_only = SimCloud::catalog();
    eu_only.provider = "eu-cloud".into();
    eu_only.regions.retain(|r| r.jurisdiction == Jurisdiction::Eu);
    let mut us_only = SimCloud::catalog();
    us_only.provider = "us-cloud".into();
    us_only.regions.retain(|r| r.jurisdiction == Jurisdiction::Us);
    let stack = build(&knobs(|k| k.placement = Placement::region("us-east")));
    stack.provider("us-cloud");
    let s = stack.synth(&[&us_only, &eu_only]).unwrap();
    let r = PolicySet::new().pack(packs::gdpr::pack()).check(&s, &[&us_only, &eu_only]);
    let f = &r.findings[0];
    assert_eq!(
        f.fix,
        "provider `us-cloud` has no region in the EU/EEA; providers that have one: eu-cloud (eu-central, eu-west, \
         eu-south)"
    );
}

// ---- hardened ----

#[test]
fn hardened_backups_need_30_days_in_prod_and_7_otherwise() {
    let r = check("hardened", &knobs(|k| k.backups = 14));
    assert_eq!(
        only_fails(&r, "hardened/backup-retention"),
        ["shop/data/db: backups are kept for 14 days; a prod stack under `hardened` needs at least 30"]
    );
    let dev = |backups| {
        knobs(|k| {
            k.stage = Stage::Dev;
            k.backups = backups;
            k.ha = true;
            k.deletion_protection = true;
        })
    };
    assert!(check("hardened", &dev(7)).findings.is_empty());
    let r = check("hardened", &dev(3));
    assert_eq!(only_fails(&r, "hardened/backup-retention").len(), 1);
}

#[test]
fn hardened_deletion_protection_is_an_error_in_prod_and_a_warning_in_dev() {
    let r = check("hardened", &knobs(|k| k.deletion_protection = false));
    only_fails(&r, "hardened/database-deletion-protection");
    assert_eq!(r.findings[0].severity, Severity::Error);

    let r = check(
        "hardened",
        &knobs(|k| {
            k.deletion_protection = false;
            k.stage = Stage::Dev;
        }),
    );
    only_fails(&r, "hardened/database-deletion-protection");
    assert_eq!(r.findings[0].severity, Severity::Warning);
    assert!(!r.has_errors());
    assert_eq!(r.rule("hardened/database-deletion-protection").unwrap().status, RuleStatus::Warn);
}

#[test]
fn hardened_high_availability_is_an_error_in_prod_and_a_warning_in_staging() {
    let r = check("hardened", &knobs(|k| k.ha = false));
    assert_eq!(
        only_fails(&r, "hardened/database-high-availability"),
        ["shop/data/db: high availability is off: a zone failure takes the database down"]
    );
    assert!(r.has_errors());
    let r = check(
        "hardened",
        &knobs(|k| {
            k.ha = false;
            k.stage = Stage::Staging;
            k.backups = 7;
        }),
    );
    only_fails(&r, "hardened/database-high-availability");
    assert!(!r.has_errors());
}

#[test]
fn hardened_allows_a_public_ip_only_on_the_public_web_tier() {
    let r = check("hardened", &Knobs::default());
    assert_eq!(r.rule("hardened/no-public-ip-on-private-tiers").unwrap().status, RuleStatus::Pass);
    // A private VM without a public IP is fine too.
    let r = check(
        "hardened",
        &knobs(|k| {
            k.vm_public_ip = false;
            k.vm_in_private_subnet = true;
        }),
    );
    assert!(r.findings.is_empty(), "{r}");

    let r = check("hardened", &knobs(|k| k.vm_in_private_subnet = true));
    assert_eq!(
        only_fails(&r, "hardened/no-public-ip-on-private-tiers"),
        ["shop/app/web: the VM has a public IP but sits in private subnet `network/app-private`"]
    );

    let r = check("hardened", &knobs(|k| k.vm_in_db_subnet = true));
    assert_eq!(
        only_fails(&r, "hardened/no-public-ip-on-private-tiers"),
        [
            "shop/app/web: the VM has a public IP but sits in private subnet `network/private-a`",
            "shop/app/web: the VM has a public IP in subnet `network/private-a`, which a database uses"
        ]
    );

    let r = check("hardened", &knobs(|k| k.vm_shares_db_fw = true));
    assert_eq!(
        only_fails(&r, "hardened/no-public-ip-on-private-tiers"),
        ["shop/app/web: the VM has a public IP and shares firewall `network/db-fw` with a database (database tier)"]
    );
}

#[test]
fn hardened_warns_about_open_egress_on_database_firewalls() {
    let r = check("hardened", &knobs(|k| k.db_restrict_egress = false));
    assert_eq!(
        only_fails(&r, "hardened/database-egress-restricted"),
        ["shop/network/db-fw: egress rule #0 of this database firewall allows all traffic to anywhere"]
    );
    assert_eq!(r.findings[0].severity, Severity::Warning);
    assert!(!r.has_errors());

    let r = check("hardened", &knobs(|k| k.db_rules.push(Egress::tcp(443).to_cidr("10.0.0.0/16"))));
    assert!(r.findings.is_empty(), "{r}");
}

// ---- suppressions with the built-in packs ----

#[test]
fn a_suppressed_finding_is_shown_with_its_reason_and_does_not_block() {
    let k = knobs(|k| k.web_rules.push(Ingress::tcp(22).from_anywhere()));
    let policy = PolicySet::new().pack(packs::baseline::pack()).suppress(Suppression::new(
        "baseline/no-admin-ports-from-anywhere",
        "network/web-fw",
        "break-glass access during the 2026-11 migration; approved by CTO, remove by 2026-12-01",
    ));
    let r = check_with(policy, &k);
    assert!(!r.has_errors(), "{r}");
    assert_eq!(r.counts.suppressed, 1);
    assert_eq!(r.rule("baseline/no-admin-ports-from-anywhere").unwrap().status, RuleStatus::Suppressed);
    let human = r.render_human(false);
    assert!(human.contains("suppressed[baseline/no-admin-ports-from-anywhere] shop/network/web-fw"), "{human}");
    assert!(human.contains("reason: break-glass access during the 2026-11 migration"), "{human}");
    let md = r.to_markdown();
    assert!(md.contains("Reason: break-glass access"), "{md}");
    assert!(md.contains("| `baseline/no-admin-ports-from-anywhere` | No SSH (22) or RDP (3389) open to the internet | error | pass (suppressed) | 2 (1 not passing) |"), "{md}");
}

#[test]
fn a_suppression_without_a_reason_blocks() {
    let k = knobs(|k| k.web_rules.push(Ingress::tcp(22).from_anywhere()));
    let policy = PolicySet::new().pack(packs::baseline::pack()).suppress(Suppression::new(
        "baseline/no-admin-ports-from-anywhere",
        "network/web-fw",
        "",
    ));
    let r = check_with(policy, &k);
    assert!(r.has_errors());
    assert_eq!(failing(&r), [SUPPRESSION_WITHOUT_REASON, "baseline/no-admin-ports-from-anywhere"]);
    assert_eq!(r.counts.suppressed, 0);
}

// ---- baseline/load-balancer-https ----

/// A public load balancer with a certificate, its HTTP listener as `http` makes it.
fn lb_report(public: bool, http: fn(LoadBalancer) -> LoadBalancer) -> PolicyReport {
    let stack = Stack::new("shop", Placement::within(Jurisdiction::Eu), Stage::Prod);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = stack.add("a", Subnet::new(vpc, "10.0.1.0/24").public().zone(0));
    let b = stack.add("b", Subnet::new(vpc, "10.0.2.0/24").public().zone(1));
    let web = stack.add("web", Vm::new(Image::UbuntuLts, VmSize::Small, a));
    let lb = if public { LoadBalancer::public([a, b]) } else { LoadBalancer::internal([a, b]) };
    let lb = http(lb).https(443, "cert-1").target_group(TargetGroup::new("app", 8080).vm(web));
    stack.add("lb", lb.tls_policy(TlsPolicy::Tls13));
    let cat = SimCloud::catalog();
    let s = stack.synth(&[&cat]).unwrap();
    PolicySet::new().pack(packs::baseline::pack()).check(&s, &[&cat])
}

#[test]
fn a_public_load_balancer_redirecting_http_passes() {
    let r = lb_report(true, |lb| lb.http(80));
    let e = r.rule("baseline/load-balancer-https").unwrap();
    assert_eq!(e.status, RuleStatus::Pass, "{r}");
    assert_eq!(e.resources[0].detail.as_deref(), Some("HTTP redirects to HTTPS; TLS 1.2 or newer"));
}

#[test]
fn a_public_load_balancer_serving_plain_http_beside_https_fails() {
    let r = lb_report(true, |lb| lb.http_without_redirect(80).http(8080));
    let m = only_fails(&r, "baseline/load-balancer-https");
    assert_eq!(m, ["shop/lb: public, with a certificate, yet serves plain HTTP on port(s) 80"]);
    assert!(r.findings[0].fix.contains("`.http(port)`"), "{r}");
}

#[test]
fn an_internal_load_balancer_may_serve_plain_http() {
    let r = lb_report(false, |lb| lb.http_without_redirect(80));
    assert_eq!(r.rule("baseline/load-balancer-https").unwrap().status, RuleStatus::Pass, "{r}");
}
