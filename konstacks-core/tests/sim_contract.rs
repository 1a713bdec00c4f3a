//! The provider contract suite run against the simulated cloud, and focused tests of the
//! simulation's semantics (ids, dependency violations, eventual consistency, rate limits, faults,
//! persistence, changes behind Konstacks' back). Time is virtual: nothing sleeps for real.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use konstacks_core::clock::{OpContext, TokioClock};
use konstacks_core::contract::{self, ContractOptions};
use konstacks_core::error::{ErrorKind, ProviderError, StateError};
use konstacks_core::model::{Database, DbEngine as Engine, Firewall, Protocol, ResourceKind, Subnet, Vm, Vpc};
use konstacks_core::provider::{KindApis, Region};
use konstacks_core::secret::Secret;
use konstacks_core::sim::{Faults, RateLimit, SimCloud, SimConfig};
use konstacks_core::spec::{
    DatabaseSpec, FirewallSpec, RuleSource, RuleSpec, Selector, SubnetSpec, Tags, VmSpec, VpcSpec, TAG_STACK,
};

const REGION: &str = "eu-central";
const STACK: &str = "shop";

fn cx() -> OpContext {
    OpContext::new(TokioClock::shared(), STACK)
}

fn sim(config: SimConfig) -> Arc<SimCloud> {
    Arc::new(SimCloud::new(config))
}

fn tags() -> Tags {
    Tags::from([(TAG_STACK.to_string(), STACK.to_string())])
}

fn vpc_spec(cidr: &str) -> VpcSpec {
    VpcSpec { name: "shop-vpc".into(), region: REGION.into(), cidr: cidr.into(), tags: tags() }
}

fn subnet_spec(vpc_id: &str, cidr: &str, zone: u8) -> SubnetSpec {
    SubnetSpec {
        name: format!("shop-{cidr}"),
        region: REGION.into(),
        vpc_id: vpc_id.into(),
        cidr: cidr.into(),
        zone,
        public: false,
        tags: tags(),
    }
}

fn tcp(port: u16, peer: RuleSource) -> RuleSpec {
    RuleSpec { protocol: Protocol::Tcp, from_port: port, to_port: port, peer }
}

fn firewall_spec(vpc_id: &str, name: &str, ingress: Vec<RuleSpec>) -> FirewallSpec {
    FirewallSpec {
        name: name.into(),
        region: REGION.into(),
        vpc_id: vpc_id.into(),
        ingress,
        egress: vec![RuleSpec {
            protocol: Protocol::All,
            from_port: 0,
            to_port: 0,
            peer: RuleSource::Cidr("0.0.0.0/0".into()),
        }],
        tags: tags(),
    }
}

fn vm_spec(subnet_id: &str, firewall_ids: &[&str], public: bool) -> VmSpec {
    VmSpec {
        name: "shop-web".into(),
        region: REGION.into(),
        image: "ubuntu-lts".into(),
        size: "small".into(),
        subnet_id: subnet_id.into(),
        firewall_ids: firewall_ids.iter().map(|s| s.to_string()).collect(),
        user_data: None,
        env: BTreeMap::new(),
        ssh_keys: Vec::new(),
        assign_public_ip: public,
        app: None,
        tags: tags(),
    }
}

fn db_spec(subnet_ids: &[&str], firewall_ids: &[&str]) -> DatabaseSpec {
    DatabaseSpec {
        name: "shop-db".into(),
        region: REGION.into(),
        engine: Engine::Postgres,
        version: "16".into(),
        size: "db-small".into(),
        storage_gb: 20,
        subnet_ids: subnet_ids.iter().map(|s| s.to_string()).collect(),
        firewall_ids: firewall_ids.iter().map(|s| s.to_string()).collect(),
        backup_retention_days: 7,
        encrypted: true,
        high_availability: false,
        deletion_protection: false,
        apply_immediately: true,
        password: Some(Secret::new("hunter2-very-secret".into())),
        tags: tags(),
    }
}

fn kind_of<T: std::fmt::Debug>(r: Result<T, ProviderError>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.kind(),
    }
}

fn err_of<T: std::fmt::Debug>(r: Result<T, ProviderError>) -> ProviderError {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

/// Ids of everything a small web stack needs: (vpc, subnet, firewall, vm).
async fn small_stack(s: &SimCloud, cx: &OpContext) -> (String, String, String, String) {
    let vpc = s.api::<Vpc>().create(cx, &vpc_spec("10.0.0.0/16")).await.unwrap();
    let subnet = s.api::<Subnet>().create(cx, &subnet_spec(&vpc.id, "10.0.1.0/24", 0)).await.unwrap();
    let fw = s.api::<Firewall>().create(cx, &firewall_spec(&vpc.id, "web", vec![])).await.unwrap();
    let vm = s.api::<Vm>().create(cx, &vm_spec(&subnet.id, &[&fw.id], true)).await.unwrap();
    (vpc.id, subnet.id, fw.id, vm.id)
}

// ---- the contract suite ----

#[tokio::test(start_paused = true)]
async fn contract_suite_passes_on_the_simulated_cloud() {
    let s = sim(SimConfig::default());
    let p = s.provider();
    let o = ContractOptions::new(REGION);
    if let Err(f) = contract::run_all(&p, &cx(), &o).await {
        panic!("{f}");
    }
    assert!(s.resources().is_empty(), "the suite left resources behind: {:?}", s.resources());
    assert!(s.calls() > 50);
}

#[tokio::test(start_paused = true)]
async fn stacks_sharing_the_simulated_cloud_never_take_each_others_resources() {
    let s = sim(SimConfig::default());
    let o = ContractOptions::new(REGION);
    if let Err(f) = contract::run_isolation(&s.provider(), TokioClock::shared(), &o).await {
        panic!("{f}");
    }
    assert!(s.resources().is_empty(), "the suite left resources behind: {:?}", s.resources());
}

#[tokio::test(start_paused = true)]
async fn contract_suite_passes_with_eventual_consistency() {
    let s = sim(SimConfig { consistency_delay: Duration::from_secs(2), ..SimConfig::default() });
    let p = s.provider();
    let o = ContractOptions::new(REGION);
    if let Err(f) = contract::run_all(&p, &cx(), &o).await {
        panic!("{f}");
    }
    assert!(s.resources().is_empty(), "the suite left resources behind: {:?}", s.resources());
}

#[tokio::test(start_paused = true)]
async fn contract_suite_passes_with_latency_and_throttling() {
    let s = sim(SimConfig {
        latency: Duration::from_millis(40),
        rate_limit: Some(RateLimit { per_second: 5.0, burst: 3 }),
        consistency_delay: Duration::from_millis(500),
        ..SimConfig::default()
    });
    let p = s.provider();
    assert_eq!(p.limits.calls_per_second, Some(5.0));
    assert_eq!(p.limits.burst, 3);
    let mut o = ContractOptions::new("ap-south");
    o.stack = "throttled-contract".into();
    o.vpc_cidr = "172.16.0.0/20".into();
    if let Err(f) = contract::run_all(&p, &cx(), &o).await {
        panic!("{f}");
    }
    assert!(s.resources().is_empty());
    assert!(s.calls_by_op().get("read_vpcs").copied().unwrap_or(0) > 0);
}

#[tokio::test(start_paused = true)]
async fn contract_reports_the_failing_check() {
    // A cloud that cannot create VMs fails the compute suite by name, and still cleans up.
    let s = sim(SimConfig {
        faults: Faults {
            fail_rate: 1.0,
            fail_kind: ErrorKind::PermissionDenied,
            only_ops: Some(BTreeSet::from(["create_vm".to_string()])),
            ..Faults::default()
        },
        ..SimConfig::default()
    });
    let p = s.provider();
    let f = contract::run_compute(&p, &cx(), &ContractOptions::new(REGION)).await.unwrap_err();
    assert_eq!(f.check, "compute.create_vm");
    assert!(f.detail.contains("permission_denied"), "{f}");
    assert!(s.resources().is_empty(), "{:?}", s.resources());
}

#[test]
fn contract_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let s = sim(SimConfig::default());
        let p = s.provider();
        let cx = cx();
        let o = ContractOptions::new(REGION);
        let fut = contract::run_all(&p, &cx, &o);
        assert_send(&fut);
        drop(fut);
    });
}

// ---- ids, catalogue, zones ----

#[tokio::test(start_paused = true)]
async fn ids_are_deterministic() {
    let run = || async {
        let s = sim(SimConfig::default());
        let cx = cx();
        let (vpc, subnet, fw, vm) = small_stack(&s, &cx).await;
        let db = s.api::<Database>().create(&cx, &db_spec(&[&subnet], &[&fw])).await.unwrap();
        vec![vpc, subnet, fw, vm, db.id]
    };
    let a = run().await;
    assert_eq!(a, ["vpc-00000001", "subnet-00000002", "fw-00000003", "vm-00000004", "db-00000005"]);
    assert_eq!(run().await, a);
}

#[tokio::test(start_paused = true)]
async fn zones_and_catalogue() {
    let s = sim(SimConfig::default());
    let cx = cx();
    assert_eq!(s.zones(&cx, "uk-south").await.unwrap(), ["uk-south-a", "uk-south-b", "uk-south-c"]);
    assert_eq!(kind_of(s.zones(&cx, "mars-north").await), ErrorKind::NotFound);
    assert_eq!(s.calls_by_op().get("zones"), Some(&2));
    let cat = Region::catalog(&*s);
    assert_eq!(cat, &SimCloud::catalog());
    assert_eq!(cat.provider, "sim");
    assert_eq!(cat.region("ch-zurich").map(|r| r.country.as_str()), Some("CH"));
    assert_eq!(s.calls(), 2, "reading the catalogue is not a call");
}

// ---- validation and dependency violations ----

#[tokio::test(start_paused = true)]
async fn creates_check_their_inputs() {
    let s = sim(SimConfig::default());
    let cx = cx();
    assert_eq!(kind_of(s.api::<Vpc>().create(&cx, &vpc_spec("10.0.0.0/33")).await), ErrorKind::InvalidSpec);
    let mut far = vpc_spec("10.0.0.0/16");
    far.region = "atlantis".into();
    assert_eq!(kind_of(s.api::<Vpc>().create(&cx, &far).await), ErrorKind::InvalidSpec);

    let vpc = s.api::<Vpc>().create(&cx, &vpc_spec("10.0.0.0/16")).await.unwrap();
    assert_eq!(
        kind_of(s.api::<Subnet>().create(&cx, &subnet_spec("vpc-0000ffff", "10.0.1.0/24", 0)).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind_of(s.api::<Subnet>().create(&cx, &subnet_spec(&vpc.id, "10.1.0.0/24", 0)).await),
        ErrorKind::InvalidSpec
    );
    assert_eq!(
        kind_of(s.api::<Subnet>().create(&cx, &subnet_spec(&vpc.id, "10.0.1.0/24", 3)).await),
        ErrorKind::InvalidSpec
    );
    let subnet = s.api::<Subnet>().create(&cx, &subnet_spec(&vpc.id, "10.0.1.0/24", 1)).await.unwrap();
    assert_eq!(subnet.zone_name, "eu-central-b");
    let overlap = err_of(s.api::<Subnet>().create(&cx, &subnet_spec(&vpc.id, "10.0.0.0/23", 0)).await);
    assert_eq!(overlap.kind(), ErrorKind::Conflict);
    assert!(overlap.message().contains(&subnet.id), "{overlap}");

    let fw = s.api::<Firewall>().create(&cx, &firewall_spec(&vpc.id, "web", vec![])).await.unwrap();
    assert_eq!(
        kind_of(s.api::<Firewall>().create(&cx, &firewall_spec(&vpc.id, "web", vec![])).await),
        ErrorKind::AlreadyExists
    );
    let dangling = firewall_spec(&vpc.id, "db", vec![tcp(5432, RuleSource::Firewall("fw-0000ffff".into()))]);
    assert_eq!(kind_of(s.api::<Firewall>().create(&cx, &dangling).await), ErrorKind::NotFound);

    let mut vm = vm_spec(&subnet.id, &[&fw.id], false);
    vm.size = "huge".into();
    assert_eq!(kind_of(s.api::<Vm>().create(&cx, &vm).await), ErrorKind::InvalidSpec);
    let vm = vm_spec(&subnet.id, &["fw-0000ffff"], false);
    assert_eq!(kind_of(s.api::<Vm>().create(&cx, &vm).await), ErrorKind::NotFound);

    let mut db = db_spec(&[&subnet.id], &[&fw.id]);
    db.version = "9.6".into();
    assert_eq!(kind_of(s.api::<Database>().create(&cx, &db).await), ErrorKind::InvalidSpec);
    let db = db_spec(&[&subnet.id], &[&fw.id]);
    let created = s.api::<Database>().create(&cx, &db).await.unwrap();
    assert_eq!(created.host, "shop-db.eu-central.db.sim.internal");
    assert_eq!(created.port, "5432");
    assert_eq!(created.status, "available");
    assert_eq!(kind_of(s.api::<Database>().create(&cx, &db).await), ErrorKind::AlreadyExists);

    // Nothing that failed left anything behind or used an id.
    assert_eq!(s.resources().len(), 4);
    assert_eq!(created.id, "db-00000004");
}

#[tokio::test(start_paused = true)]
async fn addresses_are_allocated_in_order() {
    let s = sim(SimConfig::default());
    let cx = cx();
    let (_, subnet, fw, vm) = small_stack(&s, &cx).await;
    let first = s.api::<Vm>().read_many(&cx, &Selector::Ids(vec![vm])).await.unwrap().remove(0);
    assert_eq!((first.private_ip.as_str(), first.public_ip.as_str()), ("10.0.1.4", "203.0.113.1"));
    assert_eq!(first.status, "running");
    let second = s.api::<Vm>().create(&cx, &vm_spec(&subnet, &[&fw], true)).await.unwrap();
    assert_eq!((second.private_ip.as_str(), second.public_ip.as_str()), ("10.0.1.5", "203.0.113.2"));
    let private = s.api::<Vm>().create(&cx, &vm_spec(&subnet, &[], false)).await.unwrap();
    assert_eq!((private.private_ip.as_str(), private.public_ip.as_str()), ("10.0.1.6", ""));
}

#[tokio::test(start_paused = true)]
async fn deletes_refuse_dependency_violations() {
    let s = sim(SimConfig::default());
    let cx = cx();
    let (vpc, subnet, fw, vm) = small_stack(&s, &cx).await;
    let db_fw = s
        .api::<Firewall>()
        .create(&cx, &firewall_spec(&vpc, "db", vec![tcp(5432, RuleSource::Firewall(fw.clone()))]))
        .await
        .unwrap();
    let mut spec = db_spec(&[&subnet], &[&db_fw.id]);
    spec.deletion_protection = true;
    let db = s.api::<Database>().create(&cx, &spec).await.unwrap();

    let e = err_of(s.api::<Vpc>().delete(&cx, &vpc).await);
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.message().contains(&format!("subnet {subnet}")) && e.message().contains(&format!("firewall {fw}")),
        "{e}"
    );

    let e = err_of(s.api::<Subnet>().delete(&cx, &subnet).await);
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.message().contains(&format!("VM {vm}")) && e.message().contains(&format!("database {}", db.id)), "{e}");

    let e = err_of(s.api::<Firewall>().delete(&cx, &fw).await);
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.message().contains(&format!("attached to VM {vm}")), "{e}");
    assert!(e.message().contains(&format!("referenced by a rule of firewall {}", db_fw.id)), "{e}");

    let e = err_of(s.api::<Database>().delete(&cx, &db.id).await);
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.message().contains("deletion protection is on"), "{e}");

    assert_eq!(kind_of(s.api::<Vm>().delete(&cx, "vm-0000ffff").await), ErrorKind::NotFound);
    assert_eq!(s.resources().len(), 6, "no refused delete changed anything");

    // In dependency order everything goes.
    spec.deletion_protection = false;
    s.api::<Database>().update(&cx, &db.id, &spec).await.unwrap();
    s.api::<Database>().delete(&cx, &db.id).await.unwrap();
    s.api::<Vm>().delete(&cx, &vm).await.unwrap();
    s.api::<Firewall>().delete(&cx, &db_fw.id).await.unwrap();
    s.api::<Firewall>().delete(&cx, &fw).await.unwrap();
    s.api::<Subnet>().delete(&cx, &subnet).await.unwrap();
    s.api::<Vpc>().delete(&cx, &vpc).await.unwrap();
    assert!(s.resources().is_empty());
}

#[tokio::test(start_paused = true)]
async fn updates_change_only_mutable_fields() {
    let s = sim(SimConfig::default());
    let cx = cx();
    let (vpc, subnet, fw, vm) = small_stack(&s, &cx).await;

    let mut spec = vm_spec(&subnet, &[&fw], true);
    spec.size = "large".into();
    spec.firewall_ids = Vec::new();
    let updated = s.api::<Vm>().update(&cx, &vm, &spec).await.unwrap();
    assert_eq!((updated.size.as_str(), updated.firewall_ids.len()), ("large", 0));
    assert_eq!(updated.public_ip, "203.0.113.1", "the address survives a resize");
    spec.image = "debian-12".into();
    assert_eq!(kind_of(s.api::<Vm>().update(&cx, &vm, &spec).await), ErrorKind::InvalidSpec);

    let mut fw_spec = firewall_spec(&vpc, "web", vec![tcp(443, RuleSource::Cidr("0.0.0.0/0".into()))]);
    fw_spec.ingress.push(tcp(80, RuleSource::Cidr("0.0.0.0/0".into())));
    let updated = s.api::<Firewall>().update(&cx, &fw, &fw_spec).await.unwrap();
    assert_eq!(updated.ingress.iter().map(|r| r.from_port).collect::<Vec<_>>(), [80, 443], "rules are kept sorted");
    fw_spec.name = "renamed".into();
    assert_eq!(kind_of(s.api::<Firewall>().update(&cx, &fw, &fw_spec).await), ErrorKind::InvalidSpec);

    let db = s.api::<Database>().create(&cx, &db_spec(&[&subnet], &[&fw])).await.unwrap();
    let mut db_upd = db_spec(&[&subnet], &[&fw]);
    db_upd.password = None;
    db_upd.storage_gb = 10;
    assert_eq!(kind_of(s.api::<Database>().update(&cx, &db.id, &db_upd).await), ErrorKind::InvalidSpec);
    db_upd.storage_gb = 50;
    db_upd.version = "17".into();
    db_upd.backup_retention_days = 14;
    let updated = s.api::<Database>().update(&cx, &db.id, &db_upd).await.unwrap();
    assert_eq!((updated.storage_gb, updated.version.as_str(), updated.backup_retention_days), (50, "17", 14));
    db_upd.version = "15".into();
    assert_eq!(
        kind_of(s.api::<Database>().update(&cx, &db.id, &db_upd).await),
        ErrorKind::InvalidSpec,
        "no downgrades"
    );

    assert_eq!(
        kind_of(s.api::<Vpc>().update(&cx, "vpc-0000ffff", &vpc_spec("10.0.0.0/16")).await),
        ErrorKind::NotFound
    );
}

// ---- reads and eventual consistency ----

#[tokio::test(start_paused = true)]
async fn reads_by_ids_and_by_stack() {
    let s = sim(SimConfig::default());
    let cx = cx();
    let (vpc, ..) = small_stack(&s, &cx).await;
    let mut other = vpc_spec("10.1.0.0/16");
    other.tags.insert(TAG_STACK.into(), "other".into());
    let other = s.api::<Vpc>().create(&cx, &other).await.unwrap();

    let got =
        s.api::<Vpc>().read_many(&cx, &Selector::Ids(vec![other.id.clone(), "vpc-0000ffff".into(), vpc.clone()])).await;
    let ids: Vec<String> = got.unwrap().into_iter().map(|v| v.id).collect();
    assert_eq!(ids, [vpc.clone(), other.id.clone()], "sorted by id, unknown ids absent");
    let mine: Vec<String> = s
        .api::<Vpc>()
        .read_many(&cx, &Selector::Stack(STACK.into()))
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(mine, [vpc]);
    assert_eq!(s.resources_of_stack("other").len(), 1);
    assert_eq!(s.resources_of_stack(STACK).len(), 4);
    assert!(
        s.api::<Subnet>().read_many(&cx, &Selector::Ids(vec![other.id])).await.unwrap().is_empty(),
        "reads are per kind"
    );
}

#[tokio::test(start_paused = true)]
async fn new_resources_become_visible_after_the_consistency_delay() {
    let s = sim(SimConfig { consistency_delay: Duration::from_secs(2), ..SimConfig::default() });
    let cx = cx();
    let vpc = s.api::<Vpc>().create(&cx, &vpc_spec("10.0.0.0/16")).await.unwrap();
    let by_id = Selector::Ids(vec![vpc.id.clone()]);
    assert!(s.api::<Vpc>().read_many(&cx, &by_id).await.unwrap().is_empty());
    assert!(s.api::<Vpc>().read_many(&cx, &Selector::Stack(STACK.into())).await.unwrap().is_empty());
    let e = err_of(s.api::<Subnet>().create(&cx, &subnet_spec(&vpc.id, "10.0.1.0/24", 0)).await);
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(s.resources().len(), 1, "the cloud holds it all the same");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.api::<Vpc>().read_many(&cx, &by_id).await.unwrap().len(), 1);
    s.api::<Subnet>().create(&cx, &subnet_spec(&vpc.id, "10.0.1.0/24", 0)).await.unwrap();
}

// ---- latency, rate limit, faults ----

#[tokio::test(start_paused = true)]
async fn latency_is_spent_on_the_injected_clock() {
    let s = sim(SimConfig { latency: Duration::from_millis(250), ..SimConfig::default() });
    let cx = cx();
    let start = cx.clock.now();
    s.zones(&cx, REGION).await.unwrap();
    assert_eq!(cx.clock.now() - start, Duration::from_millis(250));
    s.set_latency(Duration::ZERO);
    s.zones(&cx, REGION).await.unwrap();
    assert_eq!(cx.clock.now() - start, Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_throttles_and_recovers() {
    let s = sim(SimConfig { rate_limit: Some(RateLimit { per_second: 10.0, burst: 20 }), ..SimConfig::default() });
    let cx = cx();
    for i in 1..=20 {
        assert!(
            s.api::<Vpc>().read_many(&cx, &Selector::Stack(STACK.into())).await.is_ok(),
            "call {i} is within the burst"
        );
    }
    let e = err_of(s.api::<Vpc>().create(&cx, &vpc_spec("10.0.0.0/16")).await);
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert!(s.resources().is_empty(), "a throttled call changes nothing");
    assert_eq!((s.calls(), s.mutating_calls()), (21, 1));

    tokio::time::sleep(Duration::from_millis(100)).await;
    s.api::<Vpc>().create(&cx, &vpc_spec("10.0.0.0/16")).await.unwrap();
    assert_eq!(kind_of(s.zones(&cx, REGION).await), ErrorKind::Throttled);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..10 {
        s.zones(&cx, REGION).await.unwrap();
    }

    s.set_rate_limit(None);
    for _ in 0..100 {
        s.zones(&cx, REGION).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn fail_nth_fails_exactly_that_call() {
    let s = sim(SimConfig {
        faults: Faults { fail_nth: BTreeMap::from([(2, ErrorKind::QuotaExceeded)]), ..Faults::default() },
        ..SimConfig::default()
    });
    let cx = cx();
    let first = s.api::<Vpc>().create(&cx, &vpc_spec("10.0.0.0/16")).await.unwrap();
    assert_eq!(kind_of(s.api::<Vpc>().create(&cx, &vpc_spec("10.1.0.0/16")).await), ErrorKind::QuotaExceeded);
    let third = s.api::<Vpc>().create(&cx, &vpc_spec("10.1.0.0/16")).await.unwrap();
    assert_eq!((first.id.as_str(), third.id.as_str()), ("vpc-00000001", "vpc-00000002"));
    assert_eq!(s.resources().len(), 2);
    assert_eq!(s.calls_by_op().get("create_vpc"), Some(&3));
    assert_eq!(s.mutating_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn timeout_nth_applies_the_change_but_reports_transient() {
    let s = sim(SimConfig::default());
    let cx = cx();
    s.set_faults(Faults { timeout_nth: BTreeSet::from([1, 2]), ..Faults::default() });
    // Call 1 is a read: a timeout fault does not apply to it.
    assert!(s.api::<Vpc>().read_many(&cx, &Selector::Stack(STACK.into())).await.unwrap().is_empty());
    let e = err_of(s.api::<Vpc>().create(&cx, &vpc_spec("10.0.0.0/16")).await);
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.message().contains("timed out") && e.message().contains("may have been applied"), "{e}");
    let found = s.api::<Vpc>().read_many(&cx, &Selector::Stack(STACK.into())).await.unwrap();
    assert_eq!(found.len(), 1, "the change was applied");
    assert_eq!(found[0].id, "vpc-00000001");
}

#[tokio::test(start_paused = true)]
async fn random_faults_are_seeded_and_scoped() {
    let outcomes = |seed: u64| async move {
        let s = sim(SimConfig {
            seed,
            faults: Faults {
                fail_rate: 0.5,
                only_ops: Some(BTreeSet::from(["zones".to_string()])),
                ..Faults::default()
            },
            ..SimConfig::default()
        });
        let cx = cx();
        let mut out = Vec::new();
        for _ in 0..32 {
            out.push(s.zones(&cx, REGION).await.is_ok());
            assert!(
                s.api::<Vpc>().read_many(&cx, &Selector::Stack(STACK.into())).await.is_ok(),
                "reads are not in only_ops"
            );
        }
        out
    };
    let a = outcomes(7).await;
    assert_eq!(a, outcomes(7).await, "same seed, same faults");
    assert!(a.iter().any(|ok| *ok) && a.iter().any(|ok| !*ok));
}

// ---- persistence and changes behind Konstacks' back ----

#[tokio::test(start_paused = true)]
async fn persistence_round_trips_through_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    let cx = cx();
    let before = {
        let s = SimCloud::open(&path, SimConfig::default()).unwrap();
        let (_, subnet, fw, _) = small_stack(&s, &cx).await;
        s.api::<Database>().create(&cx, &db_spec(&[&subnet], &[&fw])).await.unwrap();
        s.resources()
    };
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("hunter2"), "the password is never stored");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "the file and its lock file, no temporary file: {leftovers:?}");

    // Loaded resources are old: visible at once even with a consistency delay.
    let s = SimCloud::open(&path, SimConfig { consistency_delay: Duration::from_secs(60), ..SimConfig::default() })
        .unwrap();
    assert_eq!(s.resources(), before);
    assert_eq!(s.calls(), 0, "call counts are not persisted");
    assert_eq!(s.api::<Vm>().read_many(&cx, &Selector::Stack(STACK.into())).await.unwrap().len(), 1);
    let next = s.api::<Vpc>().create(&cx, &vpc_spec("10.9.0.0/16")).await.unwrap();
    assert_eq!(next.id, "vpc-00000006", "the id counter continues");
    s.api::<Vpc>().delete(&cx, &next.id).await.unwrap();
    drop(s);
    assert_eq!(SimCloud::open(&path, SimConfig::default()).unwrap().resources(), before);
}

#[tokio::test(start_paused = true)]
async fn tamper_and_remove_behind_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    let cx = cx();
    let s = SimCloud::open(&path, SimConfig::default()).unwrap();
    let (_, _, _, vm) = small_stack(&s, &cx).await;
    let calls = s.calls();

    assert!(s.tamper(&vm, |r| {
        if let Some(v) = r.get_mut::<Vm>() {
            v.size = "xlarge".into();
        }
        r.tags_mut().insert("owner".into(), "someone-else".into());
    }));
    assert!(!s.tamper("vm-0000ffff", |_| {}));
    let seen = s.api::<Vm>().read_many(&cx, &Selector::Ids(vec![vm.clone()])).await.unwrap().remove(0);
    assert_eq!(seen.size, "xlarge");
    assert_eq!(seen.tags.get("owner").map(String::as_str), Some("someone-else"));
    let reopened = SimCloud::open(&path, SimConfig::default()).unwrap();
    assert!(reopened.resources().iter().any(|r| r.id() == vm && r.tags().contains_key("owner")), "tamper persists");

    assert!(s.remove_behind_back(&vm));
    assert!(!s.remove_behind_back(&vm));
    assert!(s.api::<Vm>().read_many(&cx, &Selector::Ids(vec![vm.clone()])).await.unwrap().is_empty());
    assert_eq!(s.calls(), calls + 2, "only the two reads were calls");
    let reopened = SimCloud::open(&path, SimConfig::default()).unwrap();
    assert!(!reopened.resources().iter().any(|r| r.id() == vm), "removal persists");
    assert_eq!(reopened.resources().iter().filter(|r| r.kind() == Vm::KIND).count(), 0);
}

#[test]
fn corrupt_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    std::fs::write(&path, "{ not json").unwrap();
    match SimCloud::open(&path, SimConfig::default()) {
        Err(StateError::Corrupt { location, .. }) => assert!(location.ends_with("cloud.json")),
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("a corrupt file was accepted"),
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json", "nothing was overwritten");
}

#[test]
fn missing_file_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let s = SimCloud::open(dir.path().join("new.json"), SimConfig::default()).unwrap();
    assert!(s.resources().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_all_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    let s = Arc::new(SimCloud::open(&path, SimConfig::default()).unwrap());
    let cx = cx();
    let creates = (0..32u8).map(|i| {
        let (s, cx) = (Arc::clone(&s), cx.clone());
        tokio::spawn(async move { s.api::<Vpc>().create(&cx, &vpc_spec(&format!("10.{i}.0.0/16"))).await })
    });
    for r in futures::future::join_all(creates).await {
        r.unwrap().unwrap();
    }
    let reopened = SimCloud::open(&path, SimConfig::default()).unwrap();
    assert_eq!(reopened.resources().len(), 32, "an older snapshot never overwrote a newer one");
    assert_eq!(reopened.resources(), s.resources());
}
