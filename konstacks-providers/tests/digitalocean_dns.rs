//! DNS zones and records on the DigitalOcean backend, through Prism: a zone in the stack's
//! project, record sets of every type (one DigitalOcean record per value), updates that
//! converge the set, the rules DigitalOcean enforces, an alias that becomes an A record, reads
//! by id and by stack, an idempotent re-create after a crash, and deletes leaving nothing.
#![cfg(feature = "digitalocean")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_do;

use common_do::{assert_no_violations, backend, cx, harness, VirtualClock};
use konstacks_core::error::ErrorKind;
use konstacks_core::provider::Api;
use konstacks_core::spec::{
    Certificate, CertificateSpec, DnsRecord, DnsRecordSpec, DnsZone, DnsZoneSpec, RecordType, Selector, Tags, TAG_NAME,
    TAG_PATH, TAG_STACK,
};

fn tags(stack: &str, leaf: &str) -> Tags {
    Tags::from([
        (TAG_STACK.to_string(), stack.to_string()),
        (TAG_PATH.to_string(), format!("dns/{leaf}")),
        (TAG_NAME.to_string(), format!("{stack}-dns-{leaf}")),
    ])
}

fn record(domain: &str, leaf: &str, fqdn: &str, t: RecordType, values: &[&str]) -> DnsRecordSpec {
    DnsRecordSpec {
        name: format!("dnsstack-dns-{leaf}"),
        region: "fra1".into(),
        zone_id: domain.to_string(),
        fqdn: fqdn.to_string(),
        record_type: t,
        values: values.iter().map(|v| v.to_string()).collect(),
        ttl: (t != RecordType::Alias).then_some(300),
        tags: tags("dnsstack", leaf),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_and_records_round_trip() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    let b = backend();
    let clock = VirtualClock::shared();
    let cx = cx(&clock, "dnsstack");
    let zones: &dyn Api<DnsZone> = &*b;
    let records: &dyn Api<DnsRecord> = &*b;
    let domain = "dnsstack.konstacks.test";

    let zspec = DnsZoneSpec {
        name: "dnsstack-dns-zone".into(),
        region: "fra1".into(),
        domain: domain.into(),
        assumed_million_queries: 1.0,
        managed: true,
        tags: tags("dnsstack", "zone"),
    };
    let zone = zones.create(&cx, &zspec).await.unwrap();
    assert_eq!(zone.id, domain);
    assert_eq!(zone.name_servers, ["ns1.digitalocean.com", "ns2.digitalocean.com", "ns3.digitalocean.com"]);
    // A re-create after a crash takes over the zone of the stack's project.
    assert_eq!(zones.create(&cx, &zspec).await.unwrap().id, domain);
    let by_stack = zones.read_many(&cx, &Selector::Stack("dnsstack".into())).await.unwrap();
    assert_eq!(by_stack.iter().map(|z| z.id.as_str()).collect::<Vec<_>>(), [domain]);
    assert_eq!(by_stack[0].tags.get(TAG_STACK).map(String::as_str), Some("dnsstack"));
    assert!(zones.read_many(&cx, &Selector::Stack("other".into())).await.unwrap().is_empty());

    // Record sets: one DigitalOcean record per value.
    let www = format!("www.{domain}");
    let a = record(domain, "www", &www, RecordType::A, &["203.0.113.10"]);
    let got = records.create(&cx, &a).await.unwrap();
    assert_eq!(got.id, format!("{domain}/A/{www}"));
    let mut upd = a.clone();
    upd.values.push("203.0.113.11".into());
    upd.ttl = Some(600);
    let got = records.update(&cx, &got.id, &upd).await.unwrap();
    assert_eq!(got.values, ["203.0.113.10", "203.0.113.11"]);
    assert_eq!(got.ttl, Some(600));
    // Creating the same set again (a crash after the call) converges instead of duplicating.
    assert_eq!(records.create(&cx, &upd).await.unwrap().values.len(), 2);
    let other = record(domain, "www2", &www, RecordType::A, &["203.0.113.99"]);
    assert_eq!(records.create(&cx, &other).await.unwrap_err().kind(), ErrorKind::AlreadyExists);

    let specs = [
        record(domain, "app", &format!("app.{domain}"), RecordType::Cname, &[www.as_str()]),
        record(domain, "spf", domain, RecordType::Txt, &["v=spf1 -all"]),
        record(domain, "mail", domain, RecordType::Mx, &[&format!("10 mx.{domain}")]),
        record(domain, "caa", domain, RecordType::Caa, &["0 issue \"letsencrypt.org\""]),
        record(domain, "v6", &www, RecordType::Aaaa, &["2001:db8::10"]),
        record(domain, "apex", domain, RecordType::Alias, &["203.0.113.50"]),
    ];
    let mut ids = vec![got.id.clone()];
    for spec in &specs {
        let r = records.create(&cx, spec).await.unwrap();
        assert_eq!((r.fqdn.as_str(), r.record_type), (spec.fqdn.as_str(), spec.record_type));
        assert_eq!(r.values, spec.values, "{:?}", spec.record_type);
        assert_eq!(r.ttl, spec.ttl);
        ids.push(r.id);
    }
    assert!(h.fake.domain_records(domain).contains(&"A @ 203.0.113.50".to_string()));

    // What DigitalOcean refuses, and an alias it cannot serve (refused before any request).
    let apex_cname = record(domain, "apex-cname", domain, RecordType::Cname, &[www.as_str()]);
    assert_eq!(records.create(&cx, &apex_cname).await.unwrap_err().kind(), ErrorKind::InvalidSpec);
    let beside = record(domain, "beside", &format!("app.{domain}"), RecordType::A, &["203.0.113.12"]);
    assert!(records.create(&cx, &beside).await.is_err());
    let to_name = record(domain, "alias-name", &format!("lb.{domain}"), RecordType::Alias, &["lb.example.net"]);
    let e = records.create(&cx, &to_name).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSpec);
    assert!(e.to_string().contains("no alias records"), "{e}");

    // Reads by id and by stack.
    let by_id = records.read_many(&cx, &Selector::Ids(ids.clone())).await.unwrap();
    assert_eq!(by_id.len(), ids.len());
    // A record someone added by hand is in the zone but not in the stack.
    let hand = reqwest::Client::new()
        .post(format!("{}/v2/domains/{domain}/records", h.fake.url))
        .bearer_auth("fake-token-not-a-secret")
        .json(&serde_json::json!({"type": "TXT", "name": "hand", "data": "added by hand", "ttl": 1800}))
        .send()
        .await
        .unwrap();
    assert!(hand.status().is_success(), "{hand:?}");
    let by_stack = records.read_many(&cx, &Selector::Stack("dnsstack".into())).await.unwrap();
    assert_eq!(by_stack.len(), ids.len(), "{by_stack:?}");
    // Names, regions and every tag read back, from the records Konstacks keeps as tags.
    let spf = by_stack.iter().find(|r| r.record_type == RecordType::Txt).unwrap();
    assert_eq!((spf.name.as_str(), spf.region.as_str()), ("dnsstack-dns-spf", "fra1"));
    assert_eq!(spf.tags, tags("dnsstack", "spf"));
    let zone_read = zones.read_many(&cx, &Selector::Ids(vec![domain.into()])).await.unwrap();
    assert_eq!((zone_read[0].name.as_str(), &zone_read[0].tags), ("dnsstack-dns-zone", &zspec.tags));

    for id in ids.iter().rev() {
        records.delete(&cx, id).await.unwrap();
        records.delete(&cx, id).await.unwrap();
    }
    assert!(records.read_many(&cx, &Selector::Ids(ids)).await.unwrap().is_empty());
    zones.delete(&cx, domain).await.unwrap();
    zones.delete(&cx, domain).await.unwrap();
    assert!(h.fake.domains().is_empty());
    let left: Vec<String> = h.fake.snapshot().tags.into_iter().filter(|t| t.starts_with("kxr:")).collect();
    assert!(left.is_empty(), "record tags left: {left:?}");
    assert!(!h.fake.snapshot().projects.contains(&"dnsstack".to_string()));
    assert_no_violations(&b);
}

/// Let's Encrypt certificates for a domain DigitalOcean hosts: `pending` then `issued`; one
/// validated by hand, or for a name outside the zone, is refused before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lets_encrypt_certificates_for_hosted_domains_only() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    let b = backend();
    let clock = VirtualClock::shared();
    let cx = cx(&clock, "certstack");
    let zones: &dyn Api<DnsZone> = &*b;
    let certs: &dyn Api<Certificate> = &*b;
    let domain = "certstack.konstacks.test";
    let zspec = DnsZoneSpec {
        name: "certstack-dns-zone".into(),
        region: "fra1".into(),
        domain: domain.into(),
        assumed_million_queries: 1.0,
        managed: true,
        tags: tags("certstack", "zone"),
    };
    zones.create(&cx, &zspec).await.unwrap();
    let spec = CertificateSpec {
        name: "certstack-edge-cert".into(),
        region: "fra1".into(),
        domains: vec![domain.to_string(), format!("*.{domain}")],
        validation_zone_id: Some(domain.to_string()),
        tags: tags("certstack", "cert"),
    };
    let before = h.fake.log().len();
    let mut manual = spec.clone();
    manual.name = "certstack-manual".into();
    manual.validation_zone_id = None;
    let e = certs.create(&cx, &manual).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSpec);
    assert!(e.to_string().contains("only for domains whose DNS it hosts"), "{e}");
    let mut outside = spec.clone();
    outside.domains = vec!["www.example.org".into()];
    assert_eq!(certs.create(&cx, &outside).await.unwrap_err().kind(), ErrorKind::InvalidSpec);
    assert_eq!(h.fake.log().len(), before, "refused without a request");

    let c = certs.create(&cx, &spec).await.unwrap();
    assert_eq!(c.status, "pending_validation");
    assert!(c.validation_records.is_empty());
    // An interrupted create finds its certificate again by its unique name.
    assert_eq!(certs.create(&cx, &spec).await.unwrap().id, c.id);
    let mut status = String::new();
    for _ in 0..5 {
        let got = certs.read_many(&cx, &Selector::Ids(vec![c.id.clone()])).await.unwrap();
        status = got[0].status.clone();
        if status == "issued" {
            assert!(got[0].not_after.is_some());
            break;
        }
    }
    assert_eq!(status, "issued");
    let by_stack = certs.read_many(&cx, &Selector::Stack("certstack".into())).await.unwrap();
    assert_eq!(by_stack.len(), 1);
    assert_eq!(certs.update(&cx, &c.id, &spec).await.unwrap().id, c.id);
    certs.delete(&cx, &c.id).await.unwrap();
    certs.delete(&cx, &c.id).await.unwrap();
    assert!(h.fake.certificates().is_empty());
    zones.delete(&cx, domain).await.unwrap();
    assert_no_violations(&b);
}
