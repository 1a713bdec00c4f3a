//! The DNS kinds end to end on the simulated cloud: a zone with records of every type and two
//! certificates (validated by the provider in the zone, and by records the user creates) through
//! apply, an empty re-plan, an in-place update, replacements on force-new fields and a destroy
//! that leaves nothing; an alias following another resource's output; cost lines with their
//! assumption; the simulated DNS API's own checks; and bad input refused with a diagnostic
//! before any cloud call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use konstacks_core::clock::{OpContext, TokioClock};
use konstacks_core::contract::{self, ContractOptions};
use konstacks_core::cost::estimate;
use konstacks_core::engine::{ApplyOptions, DataLossConsent, Engine, PlanOptions};
use konstacks_core::error::{Error, ErrorKind};
use konstacks_core::model::*;
use konstacks_core::plan::Action;
use konstacks_core::provider::KindApis;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::spec::{
    CertificateObserved, CertificateSpec, DnsRecordObserved, DnsRecordSpec, DnsZoneObserved, DnsZoneSpec, Selector,
    Tags, TAG_STACK,
};
use konstacks_core::state::MemoryBackend;
use serde_json::Value;

fn engine(sim: &Arc<SimCloud>) -> Engine {
    Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider()).with_sealer(None)
}

/// What the lifecycle stack varies.
struct Knobs {
    www: &'static str,
    ttl: u32,
    cert_domains: Vec<&'static str>,
    domain: &'static str,
}

impl Default for Knobs {
    fn default() -> Self {
        Self { www: "www", ttl: 300, cert_domains: vec!["example.com", "*.example.com"], domain: "example.com" }
    }
}

/// A zone with a record of every type, a certificate validated in it and one validated by hand.
fn site(k: &Knobs) -> Stack {
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    let dns = stack.scope("dns");
    let zone = dns.add("zone", DnsZone::new(format!("{}.", k.domain)).assume_million_queries(3.0));
    dns.add("www", DnsRecord::a(zone, k.www, ["203.0.113.10", "203.0.113.11"]).ttl(k.ttl));
    dns.add("www6", DnsRecord::aaaa(zone, k.www, ["2001:DB8::10"]));
    dns.add("app", DnsRecord::cname(zone, "app", format!("{}.{}.", k.www, k.domain)));
    dns.add("apex", DnsRecord::alias(zone, "@", "lb-0001.eu-central.lb.sim.internal"));
    dns.add("spf", DnsRecord::txt(zone, "@", ["v=spf1 include:_spf.example.net -all"]));
    let dkim = format!("v=DKIM1; k=rsa; p={}", "A".repeat(380));
    dns.add("dkim", DnsRecord::txt(zone, "mail._domainkey", [dkim]));
    dns.add("mx", DnsRecord::mx(zone, "", [(10, "mx1.example.net"), (20, "mx2.example.net")]));
    dns.add("caa", DnsRecord::caa(zone, format!("{}.", k.domain), [(0, "issue", "letsencrypt.org")]));
    let tls = stack.scope("tls");
    let cert = tls.add("site", Certificate::new(k.cert_domains.iter().copied()).validate_in(zone));
    let manual = tls.add("partner", Certificate::new(["shop.partner.example"]).manual_validation());
    stack.export("name-servers", zone.name_servers());
    stack.export("zone", zone.name());
    stack.export("cert-status", cert.status());
    stack.export("cert-not-after", cert.not_after());
    stack.export("partner-status", manual.status());
    stack.export("partner-records", manual.validation_records());
    stack
}

fn observed<K: ResourceKind>(sim: &SimCloud) -> Vec<K::Observed> {
    sim.resources_of_stack("shop").into_iter().filter_map(|r| r.get::<K>().cloned()).collect()
}

#[tokio::test(start_paused = true)]
async fn dns_lifecycle_on_the_simulated_cloud() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine(&sim);
    let s = engine.synth(&site(&Knobs::default())).unwrap();
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.summary.create, 11, "{}", plan.render(false));
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();

    let zones = observed::<DnsZone>(&sim);
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0].domain, "example.com");
    assert!((2..=4).contains(&zones[0].name_servers.len()), "{:?}", zones[0].name_servers);
    let records: Vec<DnsRecordObserved> = observed::<DnsRecord>(&sim);
    assert_eq!(records.len(), 8);
    let find = |fqdn: &str, t: RecordType| records.iter().find(|r| r.fqdn == fqdn && r.record_type == t).unwrap();
    assert_eq!(find("www.example.com", RecordType::Aaaa).values, ["2001:db8::10"], "AAAA in canonical form");
    assert_eq!(find("app.example.com", RecordType::Cname).values, ["www.example.com"]);
    assert_eq!(find("example.com", RecordType::Alias).ttl, None);
    assert_eq!(find("example.com", RecordType::Mx).values, ["10 mx1.example.net", "20 mx2.example.net"]);
    assert_eq!(find("example.com", RecordType::Caa).values, ["0 issue \"letsencrypt.org\""]);
    assert_eq!(find("mail._domainkey.example.com", RecordType::Txt).values[0].len(), 398);

    let certs = observed::<Certificate>(&sim);
    let site_cert = certs.iter().find(|c| c.validation_zone_id.is_some()).unwrap();
    assert_eq!(site_cert.status, "issued");
    assert_eq!(site_cert.validation_records.len(), 1, "a wildcard shares its base's record");
    let zone_keeps = |zone: &DnsZoneObserved, name: &str| zone.managed_records.iter().any(|m| m.fqdn == name);
    assert!(zone_keeps(&observed::<DnsZone>(&sim)[0], &site_cert.validation_records[0].name));

    // Outputs: the name servers, the issued certificate, and the records the user must create.
    let state = engine.state("shop").await.unwrap();
    assert_eq!(state.outputs["zone"], "example.com");
    assert_eq!(state.outputs["name-servers"].as_array().map(Vec::len), Some(zones[0].name_servers.len()));
    assert_eq!(state.outputs["cert-status"], "issued");
    assert!(state.outputs["cert-not-after"].as_str().unwrap().starts_with("2027-01-30"), "{state:?}");
    assert_eq!(state.outputs["partner-status"], "pending_validation");
    let partner = state.outputs["partner-records"].as_array().unwrap();
    assert_eq!(partner.len(), 1);
    assert_eq!(partner[0]["type"], "CNAME");
    assert!(partner[0]["name"].as_str().unwrap().ends_with(".shop.partner.example"), "{partner:?}");

    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // A longer TTL: an update in place of that record only.
    let s2 = engine.synth(&site(&Knobs { ttl: 3600, ..Knobs::default() })).unwrap();
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    assert_eq!((plan.summary.update, plan.summary.replace), (1, 0), "{}", plan.render(false));
    assert_eq!(plan.change("dns/www").unwrap().action, Action::Update);
    engine.apply(&s2, &ApplyOptions::default()).await.unwrap();
    assert_eq!(observed::<DnsRecord>(&sim).iter().find(|r| r.name == "shop-dns-www").unwrap().ttl, Some(3600));

    // Another name for the A and AAAA records: replacements (the name forces them), deleted first;
    // the CNAME follows (its target changed in place).
    let s3 = engine.synth(&site(&Knobs { www: "web", ttl: 3600, ..Knobs::default() })).unwrap();
    let plan = engine.plan(&s3, &PlanOptions::default()).await.unwrap();
    let www = plan.change("dns/www").unwrap();
    assert_eq!(www.action, Action::Replace, "{}", plan.render(false));
    assert_eq!(www.replace_reasons, ["fqdn"]);
    assert!(!www.create_before_destroy && !www.data_loss);
    assert_eq!(plan.change("dns/app").unwrap().action, Action::Update);
    engine.apply(&s3, &ApplyOptions::default()).await.unwrap();
    assert!(observed::<DnsRecord>(&sim).iter().any(|r| r.fqdn == "web.example.com"));
    assert!(!observed::<DnsRecord>(&sim).iter().any(|r| r.fqdn == "www.example.com"));

    // Another set of names: a new certificate, created before the old one goes.
    let knobs =
        Knobs { www: "web", ttl: 3600, cert_domains: vec!["example.com", "www.example.com"], ..Knobs::default() };
    let s4 = engine.synth(&site(&knobs)).unwrap();
    let plan = engine.plan(&s4, &PlanOptions::default()).await.unwrap();
    let cert = plan.change("tls/site").unwrap();
    assert_eq!(cert.action, Action::Replace, "{}", plan.render(false));
    assert_eq!(cert.replace_reasons, ["domains"]);
    assert!(cert.create_before_destroy);
    engine.apply(&s4, &ApplyOptions::default()).await.unwrap();
    let certs = observed::<Certificate>(&sim);
    assert_eq!(certs.len(), 2);
    let new = certs.iter().find(|c| c.validation_zone_id.is_some()).unwrap();
    assert_eq!((new.name.as_str(), new.status.as_str()), ("shop-tls-site-1", "issued"));
    assert!(engine.plan(&s4, &PlanOptions::refreshing()).await.unwrap().is_empty());

    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(sim.resources().is_empty(), "{:?}", sim.resources());
}

#[tokio::test(start_paused = true)]
async fn manual_validation_issues_once_the_user_creates_the_records() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine(&sim);
    let build = |records: &[(String, String)]| {
        let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
        let zone = stack.add("zone", DnsZone::new("example.com"));
        let cert = stack.add("api-cert", Certificate::new(["api.example.com"]).manual_validation());
        for (i, (name, value)) in records.iter().enumerate() {
            stack.add(&format!("validation-{i}"), DnsRecord::cname(zone, name.as_str(), value.as_str()));
        }
        stack.export("status", cert.status());
        stack.export("records", cert.validation_records());
        stack
    };
    let s = engine.synth(&build(&[])).unwrap();
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.outputs["records"], Value::Null, "known after apply");
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let state = engine.state("shop").await.unwrap();
    assert_eq!(state.outputs["status"], "pending_validation");
    let wanted: Vec<(String, String)> = state.outputs["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r["value"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(wanted.len(), 1);
    // The plan of an unchanged stack previews the records from state.
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.outputs["records"], state.outputs["records"]);

    // The user adds the records (absolute names inside the zone); the next read issues it.
    let s2 = engine.synth(&build(&wanted)).unwrap();
    engine.apply(&s2, &ApplyOptions::default()).await.unwrap();
    let drift = engine.refresh("shop").await.unwrap();
    assert!(drift.items.is_empty(), "an issued certificate is no drift: {drift:?}");
    assert_eq!(engine.state("shop").await.unwrap().resources["api-cert"].attr("status").unwrap(), "issued");
    // The next apply (nothing to change) brings the outputs up to date.
    let report = engine.apply(&s2, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.outputs["status"], "issued");
    assert!(engine.plan(&s2, &PlanOptions::refreshing()).await.unwrap().is_empty());
    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(sim.resources().is_empty(), "{:?}", sim.resources());
}

#[tokio::test(start_paused = true)]
async fn an_alias_follows_an_output_of_another_resource() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine(&sim);
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = stack.add("a", Subnet::new(vpc, "10.0.1.0/24"));
    let cache = stack.add("cache", Cache::redis("7", CacheSize::Micro, [a]));
    let zone = stack.add("zone", DnsZone::new("example.com"));
    stack.add("redis", DnsRecord::alias(zone, "redis", cache.host()));
    let s = engine.synth(&stack).unwrap();
    let alias = &s.resources[s.index_of("redis").unwrap()];
    assert!(alias.depends_on.contains(&"cache".to_string()), "{:?}", alias.depends_on);
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    let values = plan.change("redis").unwrap().fields.iter().find(|f| f.name == "values").unwrap();
    assert!(values.after_unknown, "{values:?}");
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let host = observed::<Cache>(&sim)[0].host.clone();
    assert_eq!(observed::<DnsRecord>(&sim)[0].values, [host]);
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());
    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(sim.resources().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_zone_replacement_loses_its_records_and_needs_consent() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine(&sim);
    let s = engine.synth(&site(&Knobs::default())).unwrap();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let before = sim.mutating_calls();
    let moved = Knobs { domain: "example.org", cert_domains: vec!["example.org"], ..Knobs::default() };
    let s2 = engine.synth(&site(&moved)).unwrap();
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    let zone = plan.change("dns/zone").unwrap();
    assert_eq!(zone.action, Action::Replace, "{}", plan.render(false));
    assert!(zone.data_loss && zone.create_before_destroy);
    let err = engine.apply(&s2, &ApplyOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err}");
    assert_eq!(sim.mutating_calls(), before, "a refused apply changes nothing");
    let consent = DataLossConsent::Paths(["dns/zone".to_string()].into());
    engine.apply(&s2, &ApplyOptions { data_loss: consent, ..Default::default() }).await.unwrap();
    let zones = observed::<DnsZone>(&sim);
    assert_eq!(zones.iter().map(|z| z.domain.as_str()).collect::<Vec<_>>(), ["example.org"]);
    assert!(observed::<DnsRecord>(&sim).iter().all(|r| r.zone_id == zones[0].id && r.fqdn.ends_with("example.org")));
    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(sim.resources().is_empty());
}

#[test]
fn zones_cost_a_monthly_fee_and_their_assumed_queries() {
    let cat = SimCloud::catalog();
    let s = site(&Knobs::default()).synth(&[&cat]).unwrap();
    let report = estimate(&s, &[&cat]);
    let zone = report.resources.iter().find(|r| r.path == "dns/zone").unwrap();
    // 0.50 for the zone + 3 million queries x 0.40.
    assert_eq!(zone.monthly_usd, Some(1.7));
    let queries = zone.lines.iter().find(|l| l.item == "queries").unwrap();
    assert!(
        queries.detail.contains("3 million queries/month (assumed; set with .assume_million_queries(n))"),
        "{queries:?}"
    );
    for free in ["dns/www", "dns/apex", "tls/site", "tls/partner"] {
        assert_eq!(report.resources.iter().find(|r| r.path == free).unwrap().monthly_usd, Some(0.0), "{free}");
    }
    assert_eq!(report.total_usd, 1.7);
}

fn cx() -> OpContext {
    OpContext::new(TokioClock::shared(), "shop")
}

fn tags() -> Tags {
    Tags::from([(TAG_STACK.to_string(), "shop".to_string())])
}

fn zone_spec(domain: &str) -> DnsZoneSpec {
    DnsZoneSpec {
        name: format!("shop-{}", domain.replace('.', "-")),
        region: "eu-central".into(),
        domain: domain.into(),
        assumed_million_queries: 1.0,
        managed: true,
        tags: tags(),
    }
}

fn record(zone: &str, fqdn: &str, t: RecordType, values: &[&str]) -> DnsRecordSpec {
    DnsRecordSpec {
        name: format!("shop-{}", fqdn.replace(['.', '_'], "-")),
        region: "eu-central".into(),
        zone_id: zone.into(),
        fqdn: fqdn.into(),
        record_type: t,
        values: values.iter().map(|v| v.to_string()).collect(),
        ttl: Some(300),
        tags: tags(),
    }
}

fn cert(name: &str, domains: &[&str], zone: Option<&str>) -> CertificateSpec {
    CertificateSpec {
        name: name.into(),
        region: "eu-central".into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        validation_zone_id: zone.map(str::to_string),
        tags: tags(),
    }
}

#[tokio::test(start_paused = true)]
async fn the_simulated_dns_api_checks_what_a_real_one_does() {
    let sim = SimCloud::new(SimConfig::default());
    let cx = cx();
    let zones = sim.api::<DnsZone>();
    let records = sim.api::<DnsRecord>();
    let certs = sim.api::<Certificate>();
    let zone: DnsZoneObserved = zones.create(&cx, &zone_spec("example.com")).await.unwrap();
    let kind = |e: konstacks_core::error::ProviderError| e.kind();

    // One zone per domain in the account.
    let again = zones.create(&cx, &zone_spec("example.com")).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists, "{again}");
    let e = zones.create(&cx, &zone_spec("Example..com")).await.unwrap_err();
    assert_eq!(kind(e), ErrorKind::InvalidSpec);

    // Records: inside the zone, no CNAME at the apex or beside another record, one per type.
    let www =
        records.create(&cx, &record(&zone.id, "www.example.com", RecordType::A, &["203.0.113.10"])).await.unwrap();
    for (spec, want) in [
        (record(&zone.id, "www.example.org", RecordType::A, &["203.0.113.10"]), ErrorKind::InvalidSpec),
        (record(&zone.id, "example.com", RecordType::Cname, &["www.example.com"]), ErrorKind::InvalidSpec),
        (record(&zone.id, "www.example.com", RecordType::Cname, &["x.example.net"]), ErrorKind::Conflict),
        (record(&zone.id, "www.example.com", RecordType::A, &["203.0.113.11"]), ErrorKind::AlreadyExists),
        (record(&zone.id, "x.example.com", RecordType::A, &["203.0.113.300"]), ErrorKind::InvalidSpec),
        (record(&zone.id, "example.com", RecordType::Ns, &["ns9.example.net"]), ErrorKind::InvalidSpec),
        (record("zone-000000ff", "www.example.com", RecordType::A, &["203.0.113.10"]), ErrorKind::NotFound),
    ] {
        let e = records.create(&cx, &spec).await.unwrap_err();
        assert_eq!(e.kind(), want, "{spec:?}: {e}");
    }
    let mut ttl0 = record(&zone.id, "t.example.com", RecordType::Txt, &["x"]);
    ttl0.ttl = Some(5);
    assert_eq!(kind(records.create(&cx, &ttl0).await.unwrap_err()), ErrorKind::InvalidSpec);
    // Only values and TTL change in place.
    let mut moved = record(&zone.id, "web.example.com", RecordType::A, &["203.0.113.10"]);
    moved.name = www.name.clone();
    assert_eq!(kind(records.update(&cx, &www.id, &moved).await.unwrap_err()), ErrorKind::InvalidSpec);

    // A zone with records of its users cannot be deleted.
    let e = zones.delete(&cx, &zone.id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("delete its records first") && e.to_string().contains(&www.id), "{e}");

    // Certificates: issued at once through the zone; waiting without one, until a read finds
    // the records the user created.
    let issued: CertificateObserved =
        certs.create(&cx, &cert("site", &["example.com", "*.example.com"], Some(&zone.id))).await.unwrap();
    assert_eq!(issued.status, "issued");
    assert_eq!(issued.not_after.as_deref(), Some("2027-01-30T00:00:00Z"));
    let v = &issued.validation_records[0];
    let clash = record(&zone.id, &v.name, RecordType::Txt, &["x"]);
    assert_eq!(kind(records.create(&cx, &clash).await.unwrap_err()), ErrorKind::Conflict, "the provider's record");
    let outside = certs.create(&cx, &cert("mixed", &["example.com", "example.net"], Some(&zone.id))).await.unwrap();
    assert_eq!(outside.status, "pending_validation", "example.net has no record yet");
    let pending = certs.create(&cx, &cert("api", &["api.example.com"], None)).await.unwrap();
    assert_eq!((pending.status.as_str(), pending.not_after.as_deref()), ("pending_validation", None));
    let v = pending.validation_records[0].clone();
    let user = records.create(&cx, &record(&zone.id, &v.name, RecordType::Cname, &[v.value.as_str()])).await.unwrap();
    let read = certs.read_many(&cx, &Selector::Ids(vec![pending.id.clone()])).await.unwrap();
    assert_eq!(read[0].status, "issued");
    for bad in [cert("dup", &["a.example.com", "a.example.com"], None), cert("none", &[], None)] {
        assert_eq!(kind(certs.create(&cx, &bad).await.unwrap_err()), ErrorKind::InvalidSpec, "{bad:?}");
    }

    // Deleting the certificates takes their validation records out of the zone; then, once
    // the users' records are gone, the zone goes with what it keeps itself.
    for c in [&issued, &outside, &pending] {
        certs.delete(&cx, &c.id).await.unwrap();
    }
    let zone_now = zones.read_many(&cx, &Selector::Ids(vec![zone.id.clone()])).await.unwrap();
    assert!(zone_now[0].managed_records.iter().all(|m| m.owner == "zone"), "{:?}", zone_now[0].managed_records);
    records.delete(&cx, &www.id).await.unwrap();
    records.delete(&cx, &user.id).await.unwrap();
    zones.delete(&cx, &zone.id).await.unwrap();
    assert!(sim.resources().is_empty(), "{:?}", sim.resources());
}

#[tokio::test(start_paused = true)]
async fn the_dns_contract_suite_runs_on_the_simulated_cloud() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    contract::run_dns(&sim.provider(), &cx(), &ContractOptions::new("eu-central")).await.unwrap();
    let ops = sim.calls_by_op();
    for op in ["create_dns_zone", "create_dns_record", "update_dns_record", "create_certificate", "delete_dns_zone"] {
        assert!(ops.get(op).copied().unwrap_or(0) > 0, "{op} never called: {ops:?}");
    }
    assert!(sim.resources().is_empty(), "{:?}", sim.resources());
}

// ---------------------------------------------------------------------------------------------
// Bad input

/// Every DNS problem at once, each at its resource's path; no cloud call is made.
#[tokio::test(start_paused = true)]
async fn bad_dns_input_is_refused_before_any_cloud_call() {
    let stack = Stack::new("bad", Placement::region("eu-central"), Stage::Dev);
    let zone = stack.add("zone", DnsZone::new("example.com").assume_million_queries(f64::NAN));
    stack.add("zone-again", DnsZone::new("example.com."));
    stack.add("upper", DnsZone::new("Example.org"));
    stack.add("single", DnsZone::new("localhost"));
    stack.add("outside", DnsRecord::a(zone, "www.other.com", ["203.0.113.10"]));
    stack.add("outside-abs", DnsRecord::a(zone, "www.example.org.", ["203.0.113.10"]));
    stack.add("bad-v4", DnsRecord::a(zone, "v4", ["203.0.113.300"]));
    stack.add("bad-v6", DnsRecord::aaaa(zone, "v6", ["203.0.113.10"]));
    stack.add("no-values", DnsRecord::a(zone, "empty", Vec::<String>::new()));
    stack.add("twice", DnsRecord::a(zone, "twice", ["203.0.113.10", "203.0.113.10"]));
    stack.add("apex-cname", DnsRecord::cname(zone, "@", "www.example.net"));
    stack.add("app", DnsRecord::cname(zone, "app", "www.example.net"));
    stack.add("app-txt", DnsRecord::txt(zone, "app", ["hello"]));
    stack.add("www", DnsRecord::a(zone, "www", ["203.0.113.10"]));
    stack.add("www-again", DnsRecord::a(zone, "www.example.com", ["203.0.113.11"]));
    stack.add("apex", DnsRecord::alias(zone, "@", "lb.example.net").ttl(60));
    stack.add("apex-a", DnsRecord::a(zone, "@", ["203.0.113.10"]));
    stack.add("short-ttl", DnsRecord::txt(zone, "short", ["x"]).ttl(30));
    stack.add("long-ttl", DnsRecord::txt(zone, "long", ["x"]).ttl(100_000));
    stack.add("control", DnsRecord::txt(zone, "ctl", ["a\nb"]));
    stack.add("huge", DnsRecord::txt(zone, "huge", ["x".repeat(4001)]));
    stack.add("caa", DnsRecord::caa(zone, "@", [(1, "issue", "letsencrypt.org")]));
    stack.add("mx", DnsRecord::mx(zone, "@", [(10, "mail server")]));
    stack.add("ip-target", DnsRecord::cname(zone, "ip", "203.0.113.10"));
    stack.add("wild-mid", DnsRecord::a(zone, "a.*.b", ["203.0.113.10"]));
    stack.add("cert-out", Certificate::new(["example.com", "example.net"]).validate_in(zone));
    stack.add("cert-none", Certificate::new(["shop.example.net"]));
    stack.add("cert-dup", Certificate::new(["a.example.com", "a.example.com"]).validate_in(zone));
    stack.add("cert-many", Certificate::new((0..101).map(|i| format!("n{i}.example.com"))).validate_in(zone));
    stack.add("cert-empty", Certificate::new(Vec::<String>::new()).manual_validation());
    stack.add("cert-bad", Certificate::new(["www.*.example.com"]).manual_validation());
    stack.add("cert-both", Certificate::new(["example.com"]).validate_in(zone).manual_validation());

    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine(&sim);
    let Err(Error::Invalid(d)) = engine.synth(&stack) else { panic!("the stack must be refused") };
    let found: Vec<(&str, &str)> = d.iter().map(|d| (d.path.as_str(), d.code)).collect();
    let mut missing = Vec::new();
    for want in [
        ("bad/zone", "invalid-assumption"),
        ("bad/zone-again", "duplicate-zone"),
        ("bad/upper", "invalid-domain"),
        ("bad/single", "invalid-domain"),
        ("bad/outside", "record-outside-zone"),
        ("bad/outside-abs", "record-outside-zone"),
        ("bad/bad-v4", "invalid-address"),
        ("bad/bad-v6", "invalid-address"),
        ("bad/no-values", "missing-values"),
        ("bad/twice", "duplicate-value"),
        ("bad/apex-cname", "cname-at-apex"),
        ("bad/app-txt", "cname-conflict"),
        ("bad/www-again", "duplicate-record"),
        ("bad/apex", "alias-has-no-ttl"),
        ("bad/apex-a", "alias-conflict"),
        ("bad/short-ttl", "ttl-out-of-range"),
        ("bad/long-ttl", "ttl-out-of-range"),
        ("bad/control", "invalid-txt"),
        ("bad/huge", "txt-too-long"),
        ("bad/caa", "invalid-caa"),
        ("bad/mx", "invalid-target"),
        ("bad/ip-target", "invalid-target"),
        ("bad/wild-mid", "invalid-record-name"),
        ("bad/cert-out", "certificate-domain-outside-zone"),
        ("bad/cert-none", "certificate-unvalidated"),
        ("bad/cert-dup", "duplicate-domain"),
        ("bad/cert-many", "too-many-domains"),
        ("bad/cert-empty", "missing-domains"),
        ("bad/cert-bad", "invalid-domain"),
        ("bad/cert-both", "conflicting-validation"),
    ] {
        if !found.contains(&want) {
            missing.push(want);
        }
    }
    assert!(missing.is_empty(), "missing {missing:?} from:\n{d}");
    // Nothing valid was reported: the app CNAME, the www record and the first zone are fine.
    for fine in ["bad/app", "bad/www"] {
        assert!(!found.iter().any(|(p, _)| *p == fine), "{fine} is valid:\n{d}");
    }
    for x in d.iter() {
        assert!(!x.help.is_empty() && !x.message.is_empty(), "{x}");
    }
    assert_eq!(sim.calls(), 0, "{:?}", sim.calls_by_op());
}

/// A certificate with neither `validate_in` nor `manual_validation` uses the most specific zone of
/// the stack that covers every name.
#[test]
fn a_certificate_validates_in_the_zone_of_the_stack_that_covers_it() {
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Dev);
    stack.add("apex", DnsZone::new("example.com"));
    stack.add("shop-zone", DnsZone::new("shop.example.com"));
    stack.add("cert", Certificate::new(["shop.example.com", "*.shop.example.com"]));
    stack.add("apex-cert", Certificate::new(["example.com", "www.shop.example.com"]));
    let s = stack.synth(&[&SimCloud::catalog()]).unwrap();
    let deps = |p: &str| s.resources[s.index_of(p).unwrap()].depends_on.clone();
    assert_eq!(deps("cert"), ["shop-zone"]);
    assert_eq!(deps("apex-cert"), ["apex"]);
}
