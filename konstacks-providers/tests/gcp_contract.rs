//! The core provider contract suite against the GCP backend on Google's official clients,
//! talking to the fake of Compute Engine and Cloud SQL, which checks every request and response
//! against Google's discovery documents.
#![cfg(feature = "gcp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/clock.rs"]
mod clock;
mod common_gcp;
#[path = "support/gcp.rs"]
mod gcp;

use clock::VirtualClock;
use gcp::{assert_fake_empty, backend, cx, exclusive, fake, REGION};
use konstacks_core::contract::{self, run_compute, run_database, run_network, run_region, ContractOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_suite() {
    let _serial = exclusive().await;
    let b = backend().await;
    let p = b.provider();
    assert!(contract::uncovered(&p).is_empty(), "kinds without a contract suite: {:?}", contract::uncovered(&p));
    let clock = VirtualClock::shared();
    let o = ContractOptions::new(REGION);
    let cx = cx(&clock, &o.stack);
    fake().clear_requests();
    run_region(&p, &cx, &o).await.unwrap();
    run_network(&p, &cx, &o).await.unwrap();
    run_compute(&p, &cx, &o).await.unwrap();
    run_database(&p, &cx, &o).await.unwrap();
    assert_fake_empty();
    let requests = fake().requests();
    // Operations were polled (each takes a few looks) and lists crossed pages.
    assert!(requests.iter().any(|r| r.method_id == "compute.zoneOperations.get"), "no zone operation was polled");
    assert!(requests.iter().any(|r| r.method_id == "sql.operations.get"), "no Cloud SQL operation was polled");
    assert!(requests.iter().any(|r| r.query.contains("pageToken=")), "no listing crossed a page");
    assert!(clock.elapsed().as_secs() > 0, "waits did not use the injected clock");
    fake().assert_no_violations();
}

/// Stacks sharing one project never take each other's resources (import refused with the
/// owner's name, lost state sees only its own resources, adoption by full identity).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_sharing_a_project_never_take_each_others_resources() {
    let _serial = exclusive().await;
    let b = backend().await;
    let o = ContractOptions::new(REGION);
    contract::run_isolation(&b.provider(), VirtualClock::shared(), &o).await.unwrap();
    assert_fake_empty();
    fake().assert_no_violations();
}

/// The bucket suite against Cloud Storage's JSON API (the fake): create, a taken name refused,
/// batched reads across list pages, an in-place update, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_bucket() {
    use konstacks_core::error::ErrorKind;
    use konstacks_core::provider::Api;
    use konstacks_core::spec::{Bucket, BucketEncryption, BucketSpec, Selector, Tags, TAG_STACK};

    let _serial = exclusive().await;
    let b = backend().await;
    let p = b.provider();
    let clock = VirtualClock::shared();
    let o = ContractOptions::new(REGION);
    let cx = cx(&clock, &o.stack);
    fake().clear_requests();
    contract::run_bucket(&p, &cx, &o).await.unwrap();
    let requests = fake().requests();
    let count = |id: &str| requests.iter().filter(|r| r.method_id == id).count();
    assert!(count("storage.buckets.insert") >= 2, "the taken name was not tried: {requests:?}");
    assert_eq!(count("storage.buckets.patch"), 1, "one patch per update");
    assert!(count("storage.buckets.setIamPolicy") >= 1, "public read was not granted through IAM");
    assert!(
        requests.iter().any(|r| r.method_id == "storage.buckets.list" && r.query.contains("prefix=")),
        "no batched read by stack"
    );

    // Batched reads by stack cross list pages and keep only the stack's buckets (one without
    // the stack's tag shares the name prefix).
    let spec = |leaf: &str, tagged: bool| BucketSpec {
        name: format!("{}-{leaf}", o.stack),
        region: REGION.into(),
        versioning: false,
        encryption: BucketEncryption::ProviderManaged,
        lifecycle: Vec::new(),
        cors: Vec::new(),
        public_read: false,
        public_read_reason: None,
        assumed_gb_stored: 0.0,
        assumed_read_requests: 0,
        assumed_write_requests: 0,
        tags: if tagged { Tags::from([(TAG_STACK.to_string(), o.stack.clone())]) } else { Tags::new() },
    };
    let mut made = Vec::new();
    for (leaf, tagged) in [("page-a", true), ("page-b", true), ("page-c", true), ("page-d", true), ("foreign", false)] {
        made.push(Api::<Bucket>::create(&*b, &cx, &spec(leaf, tagged)).await.unwrap().id);
    }
    fake().clear_requests();
    let mine = Api::<Bucket>::read_many(&*b, &cx, &Selector::Stack(o.stack.clone())).await.unwrap();
    let ids: Vec<&str> = mine.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, made[..4].iter().map(String::as_str).collect::<Vec<_>>());
    assert!(fake().requests().iter().any(|r| r.query.contains("pageToken=")), "no listing crossed a page");

    // A bucket holding an object is refused delete, as a conflict, and stays.
    let full = made[0].clone();
    assert!(fake().put_object(&full, "report.csv"));
    let e = Api::<Bucket>::delete(&*b, &cx, &full).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("never empties"), "{e}");
    assert!(fake().names(common_gcp::Kind::Bucket).contains(&full));
    fake().empty_bucket(&full);
    for id in &made {
        Api::<Bucket>::delete(&*b, &cx, id).await.unwrap();
    }

    assert_fake_empty();
    fake().assert_no_violations();
}

/// What Cloud Storage cannot take is refused at synth (a stack) or before any request (a spec).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bucket_input_is_refused_before_any_request() {
    use konstacks_core::error::{Error, ErrorKind};
    use konstacks_core::model::placement::{Placement, Stage};
    use konstacks_core::provider::Api;
    use konstacks_core::spec::{Bucket, BucketEncryption, BucketSpec, CorsRule, Tags};
    use konstacks_core::stack::Stack;

    let _serial = exclusive().await;
    let catalog = konstacks_providers::gcp::catalog(REGION);
    assert!(catalog.kinds.iter().any(|k| k == "bucket"), "{:?}", catalog.kinds);
    assert!(catalog.bucket_pricing.is_some());
    // A stack: a name with `google` and a zero-day expiry, both reported at synth.
    let stack = Stack::new("google-shop", Placement::region(REGION), Stage::Prod);
    stack.provider("gcp");
    stack.add("assets", Bucket::new().expire("tmp/", 0));
    match stack.synth(&[&catalog]) {
        Err(Error::Invalid(d)) => {
            let codes: Vec<&str> = d.iter().map(|d| d.code).collect();
            assert!(codes.contains(&"invalid-bucket-name") && codes.contains(&"invalid-expiry"), "{d:?}");
            assert!(!codes.contains(&"unknown-provider"), "{d:?}");
        }
        other => panic!("synth accepted a bad bucket: {other:?}"),
    }
    // A valid stack synthesizes and is priced with Cloud Storage's prices.
    let ok = Stack::new("shop", Placement::region(REGION), Stage::Prod);
    ok.provider("gcp");
    ok.add("assets", Bucket::new());
    if let Err(e) = ok.synth(&[&catalog]) {
        panic!("a valid bucket was refused: {e:?}");
    }

    // Specs the backend refuses before any request: a key of another region, a wildcard CORS
    // origin, another region.
    let b = backend().await;
    let clock = VirtualClock::shared();
    let cx = cx(&clock, "shop");
    let spec = BucketSpec {
        name: "shop-assets".into(),
        region: REGION.into(),
        versioning: true,
        encryption: BucketEncryption::ProviderManaged,
        lifecycle: Vec::new(),
        cors: Vec::new(),
        public_read: false,
        public_read_reason: None,
        assumed_gb_stored: 0.0,
        assumed_read_requests: 0,
        assumed_write_requests: 0,
        tags: Tags::new(),
    };
    let mut kms = spec.clone();
    kms.encryption = BucketEncryption::kms("projects/p/locations/us-central1/keyRings/r/cryptoKeys/k");
    let mut cors = spec.clone();
    cors.cors = vec![CorsRule::new(["https://*.example.com"], ["GET"])];
    let mut elsewhere = spec.clone();
    elsewhere.region = "us-central1".into();
    fake().clear_requests();
    for (bad, want) in [(kms, "KMS key"), (cors, "wildcards"), (elsewhere, "us-central1")] {
        let e = Api::<Bucket>::create(&*b, &cx, &bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidSpec, "{e}");
        assert!(e.to_string().contains(want), "{want}: {e}");
        let e = Api::<Bucket>::update(&*b, &cx, &bad.name, &bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidSpec, "{e}");
    }
    assert!(fake().requests().is_empty(), "requests were sent: {:?}", fake().requests());
    assert_fake_empty();
}

/// The cache suite against Memorystore for Redis (the fake): create, batched reads across list
/// pages, an update in place and delete. Memorystore cannot change a live instance's tier
/// (BASIC <-> STANDARD_HA, which follows high availability); the catalogue says so
/// (`replaced_on_change`), so the suite creates the cache highly available and its update stays
/// in that tier, and the planner replaces a cache whose high availability changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_cache() {
    let _serial = exclusive().await;
    let b = backend().await;
    let p = b.provider();
    assert!(p.catalog().replaced_on_change.iter().any(|f| f.kind == "cache" && f.field == "high_availability"));
    let clock = VirtualClock::shared();
    let o = ContractOptions::new(REGION);
    let cx = cx(&clock, &o.stack);
    fake().clear_requests();
    contract::run_cache(&p, &cx, &o).await.unwrap();
    let requests = fake().requests();
    let count = |id: &str| requests.iter().filter(|r| r.method_id == id).count();
    assert_eq!(count("redis.projects.locations.instances.create"), 1);
    assert!(count("redis.projects.locations.instances.patch") >= 1, "the update was not sent");
    assert_eq!(count("redis.projects.locations.instances.delete"), 1, "the cache was not cleaned up");
    assert!(count("redis.projects.locations.operations.get") >= 2, "no Memorystore operation was polled");
    assert!(
        requests
            .iter()
            .any(|r| r.method_id == "redis.projects.locations.instances.list" && r.query.contains("pageToken=")),
        "no list of instances crossed a page"
    );
    assert!(clock.elapsed().as_secs() > 0, "waits did not use the injected clock");
    assert_fake_empty();
    fake().assert_no_violations();
}

/// A subnet pair in two zones of a fresh network, for the Memorystore tests.
async fn cache_network(
    b: &std::sync::Arc<konstacks_providers::gcp::Gcp>,
    cx: &konstacks_core::clock::OpContext,
    stack: &str,
) -> (String, Vec<String>) {
    use konstacks_core::model::{Subnet, Vpc};
    use konstacks_core::provider::Api;
    use konstacks_core::spec::{SubnetSpec, Tags, VpcSpec, TAG_STACK};
    let tags = Tags::from([(TAG_STACK.to_string(), stack.to_string())]);
    let vpc = VpcSpec {
        name: format!("{stack}-net"),
        region: REGION.into(),
        cidr: "10.90.0.0/16".into(),
        tags: tags.clone(),
    };
    let vpc = Api::<Vpc>::create(&**b, cx, &vpc).await.unwrap();
    let mut subnets = Vec::new();
    for zone in 0..2u8 {
        let spec = SubnetSpec {
            name: format!("{stack}-sub{zone}"),
            region: REGION.into(),
            vpc_id: vpc.id.clone(),
            cidr: format!("10.90.{zone}.0/24"),
            zone,
            public: false,
            tags: tags.clone(),
        };
        subnets.push(Api::<Subnet>::create(&**b, cx, &spec).await.unwrap().id);
    }
    (vpc.id, subnets)
}

async fn drop_cache_network(
    b: &std::sync::Arc<konstacks_providers::gcp::Gcp>,
    cx: &konstacks_core::clock::OpContext,
    vpc: &str,
    subnets: &[String],
) {
    use konstacks_core::model::{Subnet, Vpc};
    use konstacks_core::provider::Api;
    for s in subnets {
        Api::<Subnet>::delete(&**b, cx, s).await.unwrap();
    }
    Api::<Vpc>::delete(&**b, cx, vpc).await.unwrap();
}

/// The cache's secret is the AUTH string Memorystore generated (never the spec's token), read
/// with `getAuthString`; the instance is a Basic tier one on the subnets' network with private
/// service access, TLS on port 6378, AUTH on, and the Konstacks tags as labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_secret_is_the_memorystore_auth_string() {
    use common_gcp::fake::Kind;
    use konstacks_core::model::{Cache, CacheEngine};
    use konstacks_core::provider::Api;
    use konstacks_core::secret::Secret;
    use konstacks_core::spec::{CacheSpec, Selector, Tags, TAG_STACK};

    let _serial = exclusive().await;
    let b = backend().await;
    let clock = VirtualClock::shared();
    let cx = cx(&clock, "redis-secret");
    let (vpc, subnets) = cache_network(&b, &cx, "redis-secret").await;
    let spec = CacheSpec {
        name: "redis-secret-cache".into(),
        region: REGION.into(),
        engine: CacheEngine::Redis,
        version: "7.2".into(),
        size: "cache-micro".into(),
        subnet_ids: subnets.clone(),
        firewall_ids: vec!["projects/konstacks-test/global/firewalls/redis-secret-fw".into()],
        replicas: 0,
        high_availability: false,
        transit_encryption: true,
        auth_token: Some(Secret::new("Spec-Token-Never-Used-0123456789".into())),
        tags: Tags::from([(TAG_STACK.to_string(), "redis-secret".to_string())]),
    };
    let created = Api::<Cache>::create(&*b, &cx, &spec).await.unwrap();
    assert_eq!(created.id, "projects/konstacks-test/locations/europe-west1/instances/redis-secret-cache");
    assert_eq!((created.port.as_str(), created.status.as_str(), created.replicas), ("6378", "available", 0));
    assert_eq!(created.firewall_ids, spec.firewall_ids);
    let raw = fake().resource(Kind::RedisInstance, "redis-secret-cache").expect("the instance exists");
    let auth = raw["authString"].as_str().expect("Memorystore generated an AUTH string").to_string();
    assert_eq!(raw["tier"], "BASIC");
    assert_eq!(raw["authEnabled"], true);
    assert_eq!(raw["connectMode"], "PRIVATE_SERVICE_ACCESS");
    assert_eq!(raw["transitEncryptionMode"], "SERVER_AUTHENTICATION");
    assert_eq!(raw["redisVersion"], "REDIS_7_2");
    assert_eq!(raw["memorySizeGb"], 1);
    assert_eq!(raw["authorizedNetwork"], "projects/konstacks-test/global/networks/redis-secret-net");
    assert_eq!(raw["locationId"], "europe-west1-b");
    assert_eq!(raw["labels"]["konstacks_stack"], "redis-secret");
    assert!(raw["serverCaCerts"].as_array().is_some_and(|c| !c.is_empty()));

    let field = konstacks_core::kinds::cache::field::AUTH_TOKEN.name();
    let secret = Api::<Cache>::read_secret(&*b, &cx, &created.id, field).await.unwrap().expect("a secret");
    assert_eq!(secret.expose(), &auth);
    assert_ne!(secret.expose(), spec.auth_token.as_ref().map(|t| t.expose()).unwrap());
    assert!(!Api::<Cache>::sets_secret_on_update(&*b, field));
    assert!(Api::<Cache>::read_secret(&*b, &cx, &created.id, "name").await.unwrap().is_none());
    let read = Api::<Cache>::read_many(&*b, &cx, &Selector::Stack("redis-secret".into())).await.unwrap();
    assert_eq!(read, vec![created.clone()]);
    let requests = fake().requests();
    assert!(requests.iter().any(|r| r.method_id == "redis.projects.locations.instances.getAuthString"));
    // The secret never shows up in a request the backend sent.
    assert!(requests.iter().all(|r| !r.body.to_string().contains(&auth) && !r.query.contains(&auth)));

    Api::<Cache>::delete(&*b, &cx, &created.id).await.unwrap();
    Api::<Cache>::delete(&*b, &cx, &created.id).await.unwrap();
    drop_cache_network(&b, &cx, &vpc, &subnets).await;
    assert_fake_empty();
    fake().assert_no_violations();
}

/// Within a tier, Memorystore changes in place: a Standard tier cache with read replicas grows,
/// gains a replica, is relabelled and upgraded from Redis 7.0 to 7.2; what it cannot change (the
/// tier, fewer or more replicas without read replicas, a downgrade) is refused before any call,
/// and a failed operation comes back with a portable kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_updates_in_place_within_a_tier() {
    use common_gcp::fake::Kind;
    use konstacks_core::error::ErrorKind;
    use konstacks_core::model::{Cache, CacheEngine};
    use konstacks_core::provider::Api;
    use konstacks_core::spec::{CacheSpec, Tags, TAG_STACK};

    let _serial = exclusive().await;
    let b = backend().await;
    let clock = VirtualClock::shared();
    let cx = cx(&clock, "redis-ha");
    let (vpc, subnets) = cache_network(&b, &cx, "redis-ha").await;
    let spec = CacheSpec {
        name: "redis-ha-cache".into(),
        region: REGION.into(),
        engine: CacheEngine::Redis,
        version: "7.0".into(),
        size: "cache-large".into(),
        subnet_ids: subnets.clone(),
        firewall_ids: Vec::new(),
        replicas: 2,
        high_availability: true,
        transit_encryption: false,
        auth_token: None,
        tags: Tags::from([(TAG_STACK.to_string(), "redis-ha".to_string())]),
    };
    // A quota failure of the create operation is a portable kind, and leaves nothing behind.
    fake().fail_operation_next("redis.projects.locations.instances.create", "QUOTA_EXCEEDED", "Quota exceeded");
    let e = Api::<Cache>::create(&*b, &cx, &spec).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
    assert!(fake().names(Kind::RedisInstance).is_empty());

    let created = Api::<Cache>::create(&*b, &cx, &spec).await.unwrap();
    assert_eq!((created.replicas, created.high_availability, created.port.as_str()), (2, true, "6379"));
    let raw = fake().resource(Kind::RedisInstance, "redis-ha-cache").unwrap();
    assert_eq!(raw["tier"], "STANDARD_HA");
    assert_eq!(raw["readReplicasMode"], "READ_REPLICAS_ENABLED");
    assert_eq!(
        (raw["locationId"].as_str(), raw["alternativeLocationId"].as_str()),
        (Some("europe-west1-b"), Some("europe-west1-c"))
    );

    let mut upd = spec.clone();
    upd.replicas = 3;
    upd.size = "16gb".into();
    upd.version = "7.2".into();
    upd.tags.insert("team".into(), "data".into());
    fake().clear_requests();
    let updated = Api::<Cache>::update(&*b, &cx, &created.id, &upd).await.unwrap();
    assert_eq!((updated.replicas, updated.size.as_str(), updated.version.as_str()), (3, "16gb", "7.2"));
    assert_eq!(updated.tags, upd.tags);
    let requests = fake().requests();
    let patch = requests.iter().find(|r| r.method_id == "redis.projects.locations.instances.patch").expect("a patch");
    for path in ["labels", "memory", "replica"] {
        assert!(patch.query.to_ascii_lowercase().contains(path), "{path} not in the mask: {}", patch.query);
    }
    assert!(requests.iter().any(|r| r.method_id == "redis.projects.locations.instances.upgrade"));
    // Nothing left to change: no call beyond the read.
    fake().clear_requests();
    Api::<Cache>::update(&*b, &cx, &created.id, &upd).await.unwrap();
    assert!(fake().requests().iter().all(|r| r.method == "GET"), "{:?}", fake().requests());

    fake().clear_requests();
    let mut basic = upd.clone();
    basic.replicas = 0;
    basic.high_availability = false;
    let mut downgrade = upd.clone();
    downgrade.version = "7.0".into();
    let mut tls = upd.clone();
    tls.transit_encryption = true;
    for (bad, want) in [(basic, "tier"), (downgrade, "downgrade"), (tls, "transit_encryption")] {
        let e = Api::<Cache>::update(&*b, &cx, &created.id, &bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidSpec, "{e}");
        assert!(e.to_string().contains(want), "{want}: {e}");
    }
    assert!(fake().requests().iter().all(|r| r.method == "GET"), "{:?}", fake().requests());

    Api::<Cache>::delete(&*b, &cx, &created.id).await.unwrap();
    drop_cache_network(&b, &cx, &vpc, &subnets).await;
    assert_fake_empty();
    fake().assert_no_violations();
}

/// The load balancer suite against the fake: a global external Application Load Balancer made
/// of health checks, instance groups, backend services, URL maps, proxies, an address and
/// forwarding rules; nothing left behind and no discovery violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_load_balancer() {
    let _serial = exclusive().await;
    let b = backend().await;
    let p = b.provider();
    let clock = VirtualClock::shared();
    let o = ContractOptions::new(REGION);
    let cx = cx(&clock, &o.stack);
    fake().clear_requests();
    konstacks_core::contract::run_load_balancer(&p, &cx, &o).await.unwrap();
    assert_fake_empty();
    let requests = fake().requests();
    for m in ["compute.backendServices.getHealth", "compute.instanceGroups.addInstances", "compute.urlMaps.update"] {
        assert!(requests.iter().any(|r| r.method_id == m), "{m} was never called");
    }
    fake().assert_no_violations();
}

/// The DNS suite against Cloud DNS and Google-managed SSL certificates (the fake): zones,
/// records of every type, Cloud DNS' refusals, and a certificate validated by Google. Google-
/// managed certificates cover exact names only; the catalogue says so
/// (`certificates_without_wildcards`), so the suite asks for host names and synth refuses a
/// wildcard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_dns() {
    let _serial = exclusive().await;
    let b = backend().await;
    let p = b.provider();
    assert!(p.catalog().certificates_without_wildcards && p.catalog().certificates_validated_by_provider);
    let clock = VirtualClock::shared();
    let o = ContractOptions::new(REGION);
    let cx = cx(&clock, &o.stack);
    fake().clear_requests();
    contract::run_dns(&p, &cx, &o).await.unwrap();
    let requests = fake().requests();
    let count = |id: &str| requests.iter().filter(|r| r.method_id == id).count();
    for done in [
        "dns.managedZones.create",
        "dns.resourceRecordSets.create",
        "dns.resourceRecordSets.patch",
        "dns.managedZones.delete",
        "compute.sslCertificates.insert",
        "compute.sslCertificates.delete",
    ] {
        assert!(count(done) > 0, "the suite never called `{done}`");
    }
    assert_fake_empty();
    fake().assert_no_violations();
}

/// Cloud DNS zones and record sets and a Google-managed certificate through the backend's
/// kinds, on what GCP accepts (no wildcard certificate): tags read back from ownership records,
/// batched reads across list pages, Cloud DNS' refusals, the certificate issued after a few
/// reads, its tags changed after creation, and a zone with records refusing deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_zones_records_and_managed_certificates() {
    use konstacks_core::error::ErrorKind;
    use konstacks_core::kinds::{
        Certificate, CertificateSpec, DnsRecord, DnsRecordSpec, DnsZone, DnsZoneSpec, RecordType,
    };
    use konstacks_core::provider::Api;
    use konstacks_core::spec::{Selector, Tags, TAG_PATH, TAG_STACK};

    let _serial = exclusive().await;
    let b = backend().await;
    let clock = VirtualClock::shared();
    let stack = "dnsgcp";
    let cx = cx(&clock, stack);
    fake().clear_requests();
    let tags = |leaf: &str| {
        Tags::from([(TAG_STACK.to_string(), stack.to_string()), (TAG_PATH.to_string(), format!("dns/{leaf}"))])
    };
    let zones: &dyn Api<DnsZone> = &*b;
    let records: &dyn Api<DnsRecord> = &*b;
    let certs: &dyn Api<Certificate> = &*b;
    let domain = "dnsgcp.konstacks.test";
    let zspec = DnsZoneSpec {
        name: "dnsgcp-zone".into(),
        region: REGION.into(),
        domain: domain.into(),
        assumed_million_queries: 1.0,
        managed: true,
        tags: tags("zone"),
    };
    let zone = zones.create(&cx, &zspec).await.unwrap();
    assert_eq!(
        (zone.id.as_str(), zone.domain.as_str(), zone.tags.clone()),
        ("dnsgcp-zone", domain, zspec.tags.clone())
    );
    assert_eq!(zone.name_servers.len(), 4, "{zone:?}");
    assert!(zone.name_servers.iter().all(|n| !n.ends_with('.')), "{zone:?}");
    assert!(zone.managed_records.iter().any(|r| r.record_type == RecordType::Soa), "{zone:?}");
    let again = zones.create(&cx, &zspec).await.unwrap();
    assert_eq!(again.id, zone.id, "a retried create takes over the zone it made");

    let rec = |leaf: &str, fqdn: &str, t: RecordType, values: &[&str]| DnsRecordSpec {
        name: format!("dnsgcp-{leaf}"),
        region: REGION.into(),
        zone_id: zone.id.clone(),
        fqdn: fqdn.into(),
        record_type: t,
        values: values.iter().map(|v| v.to_string()).collect(),
        ttl: Some(300),
        tags: tags(leaf),
    };
    let long_txt = format!("v=DKIM1; k=rsa; p={}", "A".repeat(300));
    let specs = [
        rec("www", &format!("www.{domain}"), RecordType::A, &["203.0.113.10", "203.0.113.11"]),
        rec("app", &format!("app.{domain}"), RecordType::Cname, &[&format!("www.{domain}")]),
        rec("spf", domain, RecordType::Txt, &["v=spf1 -all", "say \"hi\""]),
        rec("dkim", &format!("k._domainkey.{domain}"), RecordType::Txt, &[&long_txt]),
        rec("mx", domain, RecordType::Mx, &[&format!("10 mx.{domain}")]),
        rec("caa", domain, RecordType::Caa, &["0 issue \"letsencrypt.org\""]),
    ];
    let mut made = Vec::new();
    for s in &specs {
        let r = records.create(&cx, s).await.unwrap();
        assert_eq!(
            (&r.fqdn, r.record_type, &r.values, r.ttl, &r.tags),
            (&s.fqdn, s.record_type, &s.values, s.ttl, &s.tags)
        );
        made.push(r);
    }
    // Cloud DNS refuses these.
    let refused = [
        rec("apex-cname", domain, RecordType::Cname, &[&format!("www.{domain}")]),
        rec("beside", &format!("app.{domain}"), RecordType::Txt, &["x"]),
        rec("dup", &format!("www.{domain}"), RecordType::A, &["203.0.113.12"]),
        rec("outside", "www.elsewhere.test", RecordType::A, &["203.0.113.12"]),
    ];
    for s in &refused {
        let e = records.create(&cx, s).await.unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidSpec | ErrorKind::AlreadyExists), "{}: {e}", s.name);
    }
    // Batched reads: every record of the zone, across list pages, with its tags.
    let ids: Vec<String> = made.iter().map(|r| r.id.clone()).chain([format!("{}/nope.{domain}/A", zone.id)]).collect();
    let got = records.read_many(&cx, &Selector::Ids(ids)).await.unwrap();
    let mut want = made.clone();
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, want);
    let by_stack = records.read_many(&cx, &Selector::Stack(stack.into())).await.unwrap();
    assert_eq!(by_stack, want);
    let mut upd = specs[0].clone();
    upd.values = vec!["203.0.113.20".into()];
    upd.ttl = Some(600);
    upd.tags.insert("team".into(), "web".into());
    let r = records.update(&cx, &made[0].id, &upd).await.unwrap();
    assert_eq!((r.values.clone(), r.ttl, r.tags.clone()), (upd.values.clone(), Some(600), upd.tags.clone()));
    let zupd = DnsZoneSpec { tags: tags("zone-updated"), ..zspec.clone() };
    assert_eq!(zones.update(&cx, &zone.id, &zupd).await.unwrap().tags, zupd.tags);

    // A certificate: a wildcard is refused, host names are issued.
    let cspec = CertificateSpec {
        name: "dnsgcp-cert".into(),
        region: REGION.into(),
        domains: vec![domain.into(), format!("www.{domain}")],
        validation_zone_id: Some(zone.id.clone()),
        tags: tags("cert"),
    };
    let wild = CertificateSpec { domains: vec![format!("*.{domain}")], ..cspec.clone() };
    assert_eq!(certs.create(&cx, &wild).await.unwrap_err().kind(), ErrorKind::InvalidSpec);
    let manual = CertificateSpec { validation_zone_id: None, ..cspec.clone() };
    assert_eq!(certs.create(&cx, &manual).await.unwrap_err().kind(), ErrorKind::InvalidSpec);
    let cert = certs.create(&cx, &cspec).await.unwrap();
    assert_eq!((cert.status.as_str(), cert.tags.clone()), ("pending_validation", cspec.tags.clone()));
    let mut issued = None;
    for _ in 0..5 {
        let got = certs.read_many(&cx, &Selector::Ids(vec![cert.id.clone()])).await.unwrap();
        if let Some(c) = got.into_iter().find(|c| c.status == "issued") {
            issued = Some(c);
            break;
        }
    }
    let issued = issued.expect("the certificate is issued after a few reads");
    assert!(issued.not_after.is_some(), "{issued:?}");
    let cupd = CertificateSpec { tags: tags("cert-updated"), ..cspec.clone() };
    assert_eq!(certs.update(&cx, &cert.id, &cupd).await.unwrap().tags, cupd.tags);
    let listed = certs.read_many(&cx, &Selector::Stack(stack.into())).await.unwrap();
    assert_eq!(listed.iter().map(|c| (&c.id, &c.tags)).collect::<Vec<_>>(), vec![(&cert.id, &cupd.tags)]);

    // A zone that still holds records is not deleted.
    let e = zones.delete(&cx, &zone.id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.message().contains("dns/www"), "{e}");
    certs.delete(&cx, &cert.id).await.unwrap();
    for r in &made {
        records.delete(&cx, &r.id).await.unwrap();
    }
    records.delete(&cx, &made[0].id).await.unwrap();
    zones.delete(&cx, &zone.id).await.unwrap();
    zones.delete(&cx, &zone.id).await.unwrap();
    assert!(zones.read_many(&cx, &Selector::Ids(vec![zone.id.clone()])).await.unwrap().is_empty());
    let requests = fake().requests();
    assert!(requests.iter().any(|r| r.method_id == "dns.resourceRecordSets.list" && r.query.contains("pageToken=")));
    assert!(requests.iter().any(|r| r.method_id == "compute.globalOperations.get"), "no global operation was polled");
    assert_fake_empty();
    fake().assert_no_violations();
}
