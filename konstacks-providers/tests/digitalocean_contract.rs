//! The core provider contract suite against the DigitalOcean backend, talking to the fake
//! (through Prism when `scripts/test-digitalocean.sh` runs it), plus the database checks the
//! core suite cannot make on DigitalOcean (see `contract_database_documents_the_deviations`).
#![cfg(feature = "digitalocean")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_do;

use common_do::{assert_no_violations, backend, cx, harness, provider, VirtualClock};
use konstacks_core::contract::{self, run_compute, run_database, run_network, run_region, ContractOptions};
use konstacks_core::error::ErrorKind;
use konstacks_core::model::{Database, Firewall, Subnet, Vpc};
use konstacks_core::model::{DbEngine as Engine, Protocol};
use konstacks_core::provider::KindApis;
use konstacks_core::secret::Secret;
use konstacks_core::spec::{
    DatabaseSpec, FirewallSpec, RuleSource, RuleSpec, Selector, SubnetSpec, Tags, VpcSpec, TAG_NAME, TAG_PATH,
    TAG_STACK,
};

fn konstacks_tags(tags: &[String]) -> Vec<String> {
    tags.iter().filter(|t| ["konstacks:", "kx", "kn:", "kt:"].iter().any(|p| t.starts_with(p))).cloned().collect()
}

/// Nothing of any suite is left in the fake.
fn assert_fake_empty() {
    let s = harness().fake.snapshot();
    assert!(s.vpcs.is_empty(), "VPCs left: {:?}", s.vpcs);
    assert!(s.firewalls.is_empty(), "firewalls left: {:?}", s.firewalls);
    assert!(s.droplets.is_empty(), "droplets left: {:?}", s.droplets);
    assert!(s.databases.is_empty(), "databases left: {:?}", s.databases);
    assert!(s.projects.is_empty(), "projects left: {:?}", s.projects);
    assert!(s.domains.is_empty(), "domains left: {:?}", s.domains);
    assert!(s.certificates.is_empty(), "certificates left: {:?}", s.certificates);
    assert!(s.load_balancers.is_empty(), "load balancers left: {:?}", s.load_balancers);
    assert!(konstacks_tags(&s.tags).is_empty(), "tags left: {:?}", konstacks_tags(&s.tags));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_region_network_compute() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    // Small pages, so that every listing of the run crosses pages.
    h.fake.set_max_per_page(3);
    let b = backend();
    let p = provider(&b);
    let clock = VirtualClock::shared();
    let o = ContractOptions::new("fra1");
    let cx = cx(&clock, &o.stack);
    run_region(&p, &cx, &o).await.unwrap();
    run_network(&p, &cx, &o).await.unwrap();
    run_compute(&p, &cx, &o).await.unwrap();
    assert_fake_empty();
    assert!(h.fake.log().iter().any(|l| l.contains("page=2")), "no listing crossed a page");
    assert_no_violations(&b);
}

/// Caching clusters (Redis 7 on DigitalOcean's `redis` engine) pass the core cache suite, and
/// every kind the backend registers has a contract suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_cache() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    h.fake.set_max_per_page(3);
    let b = backend();
    let p = provider(&b);
    assert!(contract::uncovered(&p).is_empty(), "kinds without a contract suite: {:?}", contract::uncovered(&p));
    let clock = VirtualClock::shared();
    let o = ContractOptions::new("fra1");
    let cx = cx(&clock, &o.stack);
    contract::run_cache(&p, &cx, &o).await.unwrap();
    assert_fake_empty();
    let log = h.fake.log();
    assert!(log.iter().any(|l| l.starts_with("POST /v2/databases ")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("/resize")), "the replica was added by a resize: {log:?}");
    assert_no_violations(&b);
}

/// Zones, record sets of every type and Let's Encrypt certificates pass the core DNS suite; a
/// certificate validated by hand is refused, as the catalogue declares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_dns() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    h.fake.set_max_per_page(3);
    let b = backend();
    let p = provider(&b);
    assert!(p.catalog().certificates_validated_by_provider);
    let clock = VirtualClock::shared();
    let o = ContractOptions::new("fra1");
    let cx = cx(&clock, &o.stack);
    contract::run_dns(&p, &cx, &o).await.unwrap();
    assert_fake_empty();
    let log = h.fake.log();
    assert!(log.iter().any(|l| l.starts_with("POST /v2/certificates ")), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("POST /v2/domains ")), "{log:?}");
    assert_no_violations(&b);
}

/// A load balancer in the VPC sending HTTP to a droplet: its health from the monitoring API,
/// the droplet's deletion refused while it is a target, and an update of its one pool in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_load_balancer() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    h.fake.set_max_per_page(3);
    let b = backend();
    let p = provider(&b);
    assert!(p.catalog().load_balancers_one_pool);
    // The templates choose one load balancer per client where the catalogue says so.
    assert!(konstacks_templates::agency_sites::ONE_POOL_PROVIDERS.contains(&p.catalog().provider.as_str()));
    let clock = VirtualClock::shared();
    let o = ContractOptions::new("fra1");
    let cx = cx(&clock, &o.stack);
    contract::run_load_balancer(&p, &cx, &o).await.unwrap();
    assert_fake_empty();
    let log = h.fake.log();
    assert!(log.iter().any(|l| l.starts_with("POST /v2/load_balancers ")), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("PUT /v2/load_balancers/")), "updated in place: {log:?}");
    assert!(log.iter().any(|l| l.contains("droplets_health_checks")), "{log:?}");
    assert_no_violations(&b);
}

fn tags(stack: &str, path: &str, name: &str) -> Tags {
    Tags::from([
        (TAG_STACK.to_string(), stack.to_string()),
        (TAG_PATH.to_string(), path.to_string()),
        (TAG_NAME.to_string(), name.to_string()),
    ])
}

/// The core database suite asks for what DigitalOcean cannot do (1 and 3 days of backups, the
/// engine's default port, retagging a cluster): it must fail exactly there and clean up. The
/// same behaviour is then checked with DigitalOcean's real values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_database_documents_the_deviations() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    h.fake.set_max_per_page(3);
    let b = backend();
    let p = provider(&b);
    let clock = VirtualClock::shared();
    let o = ContractOptions::new("fra1");
    let cx = cx(&clock, &o.stack);

    let failure = run_database(&p, &cx, &o).await.expect_err("the core database suite asks for 1 day of backups");
    assert_eq!(failure.check, "database.create_database", "{failure}");
    assert!(failure.detail.contains("backup_retention_days"), "{failure}");
    assert!(!failure.detail.contains("cleanup also failed"), "{failure}");
    assert_fake_empty();

    // The same checks with DigitalOcean's values.
    let stack = "do-db-checks";
    let cx = common_do::cx(&clock, stack);
    let net = &*b;
    let db = &*b;
    let vpc = net
        .api::<Vpc>()
        .create(
            &cx,
            &VpcSpec {
                name: "do-db-checks-vpc".into(),
                region: "fra1".into(),
                cidr: "10.88.0.0/16".into(),
                tags: tags(stack, "vpc", "do-db-checks-vpc"),
            },
        )
        .await
        .unwrap();
    let mut subnets = Vec::new();
    for (i, leaf) in ["db-a", "db-b"].iter().enumerate() {
        let name = format!("{stack}-{leaf}");
        let s = net
            .api::<Subnet>()
            .create(
                &cx,
                &SubnetSpec {
                    name: name.clone(),
                    region: "fra1".into(),
                    vpc_id: vpc.id.clone(),
                    cidr: format!("10.88.{}.0/24", i + 1),
                    zone: i as u8,
                    public: false,
                    tags: tags(stack, leaf, &name),
                },
            )
            .await
            .unwrap();
        subnets.push(s.id);
    }
    let anywhere = RuleSource::Cidr("0.0.0.0/0".into());
    let all_out = RuleSpec { protocol: Protocol::All, from_port: 0, to_port: 0, peer: anywhere.clone() };
    let fw = |name: &str, ingress: Vec<RuleSpec>| FirewallSpec {
        name: name.into(),
        region: "fra1".into(),
        vpc_id: vpc.id.clone(),
        ingress,
        egress: vec![all_out.clone()],
        tags: tags(stack, name, name),
    };
    let web = net
        .api::<Firewall>()
        .create(
            &cx,
            &fw("web-fw", vec![RuleSpec { protocol: Protocol::Tcp, from_port: 443, to_port: 443, peer: anywhere }]),
        )
        .await
        .unwrap();
    let from_web = RuleSpec {
        protocol: Protocol::Tcp,
        from_port: 5432,
        to_port: 5432,
        peer: RuleSource::Firewall(web.id.clone()),
    };
    let mut db_fw_spec = fw("db-fw", vec![from_web.clone()]);
    let db_fw = net.api::<Firewall>().create(&cx, &db_fw_spec).await.unwrap();

    let spec = DatabaseSpec {
        name: "do-db-checks-pg".into(),
        region: "fra1".into(),
        engine: Engine::Postgres,
        version: "16".into(),
        size: "db-micro".into(),
        storage_gb: 20,
        subnet_ids: subnets.clone(),
        firewall_ids: vec![db_fw.id.clone()],
        backup_retention_days: 7,
        encrypted: true,
        high_availability: false,
        deletion_protection: false,
        apply_immediately: true,
        password: Some(Secret::new("ignored-by-digitalocean".into())),
        tags: tags(stack, "pg", "do-db-checks-pg"),
    };
    let created = db.api::<Database>().create(&cx, &spec).await.unwrap();
    assert_eq!(created.status, "online");
    assert_eq!((created.engine, created.version.as_str(), created.size.as_str()), (Engine::Postgres, "16", "db-micro"));
    assert_eq!(created.storage_gb, 20);
    let mut want_subnets = subnets.clone();
    want_subnets.sort();
    assert_eq!(created.subnet_ids, want_subnets);
    assert_eq!(created.firewall_ids, vec![db_fw.id.clone()]);
    assert_eq!((created.backup_retention_days, created.encrypted, created.deletion_protection), (7, true, false));
    assert_eq!(created.port, "25060", "DigitalOcean clusters listen on 25060");
    assert!(created.host.starts_with("private-"), "apps in the VPC use the private host: {}", created.host);
    assert!(spec.tags.iter().all(|(k, v)| created.tags.get(k) == Some(v)));

    // Batched reads by ids (an unknown id is absent) and by stack.
    let unknown = "00000000-0000-4000-8000-00000000ffff".to_string();
    let got = db.api::<Database>().read_many(&cx, &Selector::Ids(vec![created.id.clone(), unknown])).await.unwrap();
    assert_eq!(got.len(), 1);
    let by_stack = db.api::<Database>().read_many(&cx, &Selector::Stack(stack.into())).await.unwrap();
    assert_eq!(by_stack.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), vec![created.id.clone()]);

    // Resize is an update.
    let mut bigger = spec.clone();
    bigger.password = None;
    bigger.size = "db-small".into();
    let resized = db.api::<Database>().update(&cx, &created.id, &bigger).await.unwrap();
    assert_eq!(resized.size, "db-small");
    assert_eq!(h.fake.database_size("do-db-checks-pg").as_deref(), Some("db-s-1vcpu-2gb"));

    // What cannot change in place is refused, not half-done.
    let mut retag = bigger.clone();
    retag.tags.insert("konstacks:contract".into(), "updated".into());
    let e = db.api::<Database>().update(&cx, &created.id, &retag).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSpec, "{}", e.full_chain());
    let mut other_engine = bigger.clone();
    other_engine.engine = Engine::Mysql;
    other_engine.version = "8".into();
    assert_eq!(
        db.api::<Database>().update(&cx, &created.id, &other_engine).await.unwrap_err().kind(),
        ErrorKind::InvalidSpec
    );

    // A new source on the database's firewall reaches the cluster's trusted sources.
    db_fw_spec.ingress.push(RuleSpec {
        protocol: Protocol::Tcp,
        from_port: 5432,
        to_port: 5432,
        peer: RuleSource::Cidr("198.51.100.0/24".into()),
    });
    db_fw_spec.ingress.sort();
    net.api::<Firewall>().update(&cx, &db_fw.id, &db_fw_spec).await.unwrap();
    let trusted = h.fake.database_rules("do-db-checks-pg");
    assert!(trusted.contains(&"ip_addr:198.51.100.0/24".to_string()), "{trusted:?}");
    assert!(trusted.contains(&format!("tag:kxfw:{}", web.id)), "{trusted:?}");
    let after = db.api::<Database>().read_many(&cx, &Selector::Ids(vec![created.id.clone()])).await.unwrap();
    assert_eq!(after[0].firewall_ids, vec![db_fw.id.clone()]);

    // The firewall cannot go while the cluster trusts it.
    assert_eq!(net.api::<Firewall>().delete(&cx, &db_fw.id).await.unwrap_err().kind(), ErrorKind::Conflict);
    db.api::<Database>().delete(&cx, &created.id).await.unwrap();
    assert_eq!(db.api::<Database>().delete(&cx, &created.id).await.unwrap_err().kind(), ErrorKind::NotFound);
    net.api::<Firewall>().delete(&cx, &db_fw.id).await.unwrap();
    net.api::<Firewall>().delete(&cx, &web.id).await.unwrap();
    for s in &subnets {
        net.api::<Subnet>().delete(&cx, s).await.unwrap();
    }
    net.api::<Vpc>().delete(&cx, &vpc.id).await.unwrap();
    assert_fake_empty();
    assert_no_violations(&b);
}
