//! The AWS backend against a real moto server, over real HTTP: the core contract suite, the
//! web-app template end to end through the engine, adoption after a crash, batched reads, and an
//! HTTPS load balancer (redirect, SNI, TLS policy, in-place updates) beyond the contract suite.
//!
//! Run with: bash scripts/test-aws.sh (it starts moto and sets KONSTACKS_MOTO_ENDPOINT). Every
//! test works in its own moto account (`x-moto-account-id`), so they run in parallel.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_aws;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::{Credentials, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use konstacks_core::clock::{OpContext, TokioClock};
use konstacks_core::contract::{run_all, run_isolation, ContractOptions};
use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::model::{Database, DbSize, Firewall, Stack, Subnet, Vm, Vpc};
use konstacks_core::model::{Placement, ResourceKind, Stage};
use konstacks_core::plan::Action;
use konstacks_core::provider::KindApis;
use konstacks_core::secret::Secret;
use konstacks_core::spec::{FirewallSpec, RuleSource, RuleSpec, Selector, Tags, VpcSpec};
use konstacks_core::state::{MemoryBackend, OpKind, PendingOp, Record, StateBackend};
use konstacks_providers::aws::AwsProvider;
use konstacks_templates::TemplateContext;
use serde_json::json;

const REGION: &str = "eu-central-1";
/// Any id will do: moto does not check AMIs unless told to.
const AMI: &str = "ami-0123456789abcdef0";

fn endpoint() -> String {
    std::env::var("KONSTACKS_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "KONSTACKS_MOTO_ENDPOINT is not set: these tests need a running moto server; run them with \
             `bash scripts/test-aws.sh`, which starts one"
        )
    })
}

/// Sends every request to one moto account.
#[derive(Debug)]
struct MotoAccount(&'static str);

impl Intercept for MotoAccount {
    fn name(&self) -> &'static str {
        "moto-account"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context.request_mut().headers_mut().insert("x-moto-account-id", self.0);
        Ok(())
    }
}

/// The proxy in front of moto that fixes the one answer the Rust SDK refuses (see `common_aws`).
fn moto_proxy() -> &'static str {
    common_aws::moto_proxy()
}

async fn sdk() -> SdkConfig {
    sdk_at(&endpoint()).await
}

async fn sdk_at(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("moto-test", "moto-test", None, None, "moto"))
        .load()
        .await
}

async fn provider(account: &'static str) -> Arc<AwsProvider> {
    provider_at(account, &endpoint()).await
}

/// A provider talking to moto through [`moto_proxy`] (the S3 kinds need it).
async fn proxied_provider(account: &'static str) -> Arc<AwsProvider> {
    provider_at(account, moto_proxy()).await
}

async fn provider_at(account: &'static str, endpoint: &str) -> Arc<AwsProvider> {
    let p = AwsProvider::builder(&sdk_at(endpoint).await)
        .image("ubuntu-lts", AMI)
        .image("debian-12", AMI)
        .interceptor(SharedInterceptor::new(MotoAccount(account)))
        .build()
        .unwrap();
    Arc::new(p)
}

/// Raw SDK clients of one moto account, to look at moto behind the provider's back.
async fn raw(account: &'static str) -> (aws_sdk_ec2::Client, aws_sdk_rds::Client) {
    let sdk = sdk().await;
    let ec2 = aws_sdk_ec2::config::Builder::from(&sdk).interceptor(MotoAccount(account)).build();
    let rds = aws_sdk_rds::config::Builder::from(&sdk).interceptor(MotoAccount(account)).build();
    (aws_sdk_ec2::Client::from_conf(ec2), aws_sdk_rds::Client::from_conf(rds))
}

fn tag_filter(stack: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder().name("tag:konstacks:stack").values(stack).build()
}

/// Everything moto still holds with the stack's tag, by kind.
async fn leftovers(account: &'static str, stack: &str) -> BTreeMap<&'static str, usize> {
    let (ec2, rds) = raw(account).await;
    let mut out = BTreeMap::new();
    let vpcs = ec2.describe_vpcs().filters(tag_filter(stack)).send().await.unwrap();
    out.insert("vpcs", vpcs.vpcs().len());
    let subnets = ec2.describe_subnets().filters(tag_filter(stack)).send().await.unwrap();
    out.insert("subnets", subnets.subnets().len());
    let groups = ec2.describe_security_groups().filters(tag_filter(stack)).send().await.unwrap();
    out.insert("security_groups", groups.security_groups().len());
    let live = aws_sdk_ec2::types::Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .values("stopping")
        .values("stopped")
        .build();
    let instances = ec2.describe_instances().filters(tag_filter(stack)).filters(live).send().await.unwrap();
    out.insert("instances", instances.reservations().iter().map(|r| r.instances().len()).sum());
    let rts = ec2.describe_route_tables().filters(tag_filter(stack)).send().await.unwrap();
    out.insert("route_tables", rts.route_tables().len());
    let igws = ec2.describe_internet_gateways().filters(tag_filter(stack)).send().await.unwrap();
    out.insert("internet_gateways", igws.internet_gateways().len());
    let dbs = rds.describe_db_instances().send().await.unwrap();
    let tagged = dbs
        .db_instances()
        .iter()
        .filter(|d| d.tag_list().iter().any(|t| t.key() == Some("konstacks:stack") && t.value() == Some(stack)))
        .count();
    out.insert("db_instances", tagged);
    let groups = rds.describe_db_subnet_groups().send().await.unwrap();
    out.insert(
        "db_subnet_groups",
        groups
            .db_subnet_groups()
            .iter()
            .filter(|g| g.db_subnet_group_name().is_some_and(|n| n.starts_with(stack)))
            .count(),
    );
    out
}

fn nothing_left(l: &BTreeMap<&'static str, usize>) -> bool {
    l.values().all(|n| *n == 0)
}

/// A database with deletion protection on is never half-destroyed: the destroy is refused before
/// anything is deleted, and with `disable_deletion_protection` the protection is turned off on RDS
/// (ModifyDBInstance) right before the delete, and everything goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_protection_is_refused_up_front_then_lifted_on_request() {
    const ACCOUNT: &str = "100000000006";
    let aws = provider(ACCOUNT).await;
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(aws.clone().provider()).with_sealer(None);
    let stack = Stack::new("vault", Placement::region(REGION), Stage::Prod);
    stack.provider("aws");
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = stack.add("a", Subnet::new(vpc, "10.0.1.0/24").zone(0));
    let b = stack.add("b", Subnet::new(vpc, "10.0.2.0/24").zone(1));
    stack.add(
        "db",
        Database::postgres("16", DbSize::Small, [a, b])
            .deletion_protection(true)
            .password(Secret::new("a-password-for-moto-0123".into())),
    );
    let s = engine.synth(&stack).unwrap();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let before = leftovers(ACCOUNT, "vault").await;
    assert_eq!(before["db_instances"], 1);

    let plan = engine.plan_destroy("vault").await.unwrap();
    let db = plan.change("db").unwrap();
    assert!(db.deletion_protected && db.data_loss, "{}", plan.render(false));
    match engine.destroy("vault", &ApplyOptions::default()).await {
        Err(konstacks_core::error::Error::Refused(r)) => assert!(r.to_string().contains("deletion protection"), "{r}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(leftovers(ACCOUNT, "vault").await, before, "a refused destroy deleted something");

    let opts = ApplyOptions { disable_deletion_protection: true, ..Default::default() };
    engine.destroy("vault", &opts).await.unwrap();
    assert!(nothing_left(&leftovers(ACCOUNT, "vault").await));
}

/// Stacks sharing one account never take each other's resources (import refused with the
/// owner's name, lost state sees only its own resources, adoption by full identity).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_sharing_an_account_never_take_each_others_resources() {
    const ACCOUNT: &str = "100000000005";
    let aws = provider(ACCOUNT).await;
    let opts = ContractOptions::new(REGION);
    if let Err(f) = run_isolation(&aws.clone().provider(), TokioClock::shared(), &opts).await {
        panic!("{f}");
    }
    for stack in ["a", "b"] {
        let left = leftovers(ACCOUNT, &format!("{}-{stack}", opts.stack)).await;
        assert!(nothing_left(&left), "the suite cleans up after itself: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_suite_passes_on_moto() {
    let aws = proxied_provider("100000000001").await;
    let p = aws.clone().provider();
    let cx = OpContext::new(TokioClock::shared(), "konstacks-contract");
    let opts = ContractOptions::new(REGION);
    if let Err(f) = run_all(&p, &cx, &opts).await {
        panic!("{f}");
    }
    assert!(nothing_left(&leftovers("100000000001", &opts.stack).await), "the suite cleans up after itself");
}

fn web_app(params: serde_json::Value) -> konstacks_core::model::Stack {
    let t = konstacks_templates::find("web-app").unwrap();
    let cx = TemplateContext::new("shop", Stage::Dev).placement(Placement::region(REGION)).provider("aws");
    t.build_json(&cx, params).unwrap()
}

fn field_names(plan: &konstacks_core::plan::Plan, path: &str) -> Vec<String> {
    plan.change(path).unwrap().fields.iter().map(|f| f.name.clone()).collect()
}

fn calls_of(aws: &AwsProvider, before: &konstacks_providers::aws::ApiCalls, op: &str) -> u64 {
    aws.api_calls().by_operation.get(op).copied().unwrap_or(0) - before.by_operation.get(op).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_applies_updates_in_place_and_destroys_on_moto() {
    const ACCOUNT: &str = "100000000002";
    let aws = provider(ACCOUNT).await;
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(aws.clone().provider()).with_sealer(None);
    let (ec2, rds) = raw(ACCOUNT).await;
    let base = json!({
        "admin_cidr": "198.51.100.0/24",
        "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f admin@example"],
        "app_image": "ghcr.io/example/shop:1",
    });

    // Apply: VPC, four subnets, two security groups, Postgres, one VM.
    let s = engine.synth(&web_app(base.clone())).unwrap();
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.created.len(), 9, "{report:#?}");
    let ip = report.outputs["web-1-ip"].as_str().unwrap().to_string();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "public IP output: {ip}");
    assert!(!report.outputs["database-host"].as_str().unwrap().is_empty());

    // Re-plan: empty, also after reading the cloud back (observed state matches the specs).
    assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());
    let refreshed = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert!(refreshed.is_empty(), "drift right after apply:\n{}", refreshed.render(false));
    let drift = engine.drift("shop").await.unwrap();
    assert!(drift.is_clean(), "{}", drift.render());

    // What moto holds: DNS on, public subnets routed to the gateway, private ones not.
    let state = engine.state("shop").await.unwrap();
    let id = |path: &str| state.resources[path].id.clone();
    let vpc_id = id("network/vpc");
    for attr in [
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames,
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport,
    ] {
        let a = ec2.describe_vpc_attribute().vpc_id(&vpc_id).attribute(attr.clone()).send().await.unwrap();
        let on = a.enable_dns_hostnames().or(a.enable_dns_support()).and_then(|v| v.value());
        assert_eq!(on, Some(true), "{attr:?}");
    }
    let rts = ec2
        .describe_route_tables()
        .filters(aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&vpc_id).build())
        .send()
        .await
        .unwrap();
    let routed: Vec<String> = rts
        .route_tables()
        .iter()
        .filter(|rt| rt.routes().iter().any(|r| r.gateway_id().is_some_and(|g| g.starts_with("igw-"))))
        .flat_map(|rt| rt.associations().iter().filter_map(|a| a.subnet_id().map(str::to_string)))
        .collect();
    assert!(routed.contains(&id("network/public-a")) && routed.contains(&id("network/public-b")));
    assert!(!routed.contains(&id("network/private-a")) && !routed.contains(&id("network/private-b")));
    let main_routes_out = rts.route_tables().iter().any(|rt| {
        rt.associations().iter().any(|a| a.main() == Some(true))
            && rt.routes().iter().any(|r| r.gateway_id().is_some_and(|g| g.starts_with("igw-")))
    });
    assert!(!main_routes_out, "the main route table (private subnets) must not route to the internet");
    let db = rds.describe_db_instances().db_instance_identifier(id("data/postgres")).send().await.unwrap();
    let db = &db.db_instances()[0];
    assert_eq!(db.storage_encrypted(), Some(true));
    assert_eq!(db.publicly_accessible(), Some(false));
    assert_eq!(db.backup_retention_period(), Some(1));
    assert_eq!(db.db_instance_class(), Some("db.t3.micro"));
    let vm_id = id("app/web-1");
    let ud = ec2
        .describe_instance_attribute()
        .instance_id(&vm_id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let ud = ud.user_data().and_then(|u| u.value()).unwrap_or_default().to_string();
    let ud = String::from_utf8(aws_smithy_types::base64::decode(ud).unwrap()).unwrap();
    assert!(ud.contains("multipart/mixed") && ud.contains("/etc/konstacks/app.env") && ud.contains("ssh-ed25519"));
    assert!(ud.contains("#cloud-config\n{\n  \"package_update\": true"), "the template's own cloud-init is kept");

    // A new admin CIDR: the web firewall is updated in place, rule by rule.
    let changed = changed_params(&base, "admin_cidr", json!("192.0.2.0/24"));
    let s2 = engine.synth(&web_app(changed.clone())).unwrap();
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.change("network/web-fw").unwrap().action, Action::Update);
    assert_eq!(field_names(&plan, "network/web-fw"), ["ingress"]);
    assert_eq!(plan.actionable().count(), 1, "{}", plan.render(false));
    let before = aws.api_calls();
    let r = engine.apply(&s2, &ApplyOptions::default()).await.unwrap();
    assert_eq!(r.updated, ["network/web-fw"]);
    assert_eq!(calls_of(&aws, &before, "AuthorizeSecurityGroupIngress"), 1);
    assert_eq!(calls_of(&aws, &before, "RevokeSecurityGroupIngress"), 1);
    assert_eq!(calls_of(&aws, &before, "CreateSecurityGroup") + calls_of(&aws, &before, "DeleteSecurityGroup"), 0);
    let fw_id = id("network/web-fw");
    let g = ec2.describe_security_groups().group_ids(&fw_id).send().await.unwrap();
    let cidrs: Vec<String> = g.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter(|p| p.from_port() == Some(22))
        .flat_map(|p| p.ip_ranges().iter().filter_map(|r| r.cidr_ip().map(str::to_string)))
        .collect();
    assert_eq!(cidrs, ["192.0.2.0/24"]);
    assert_eq!(engine.state("shop").await.unwrap().resources["network/web-fw"].id, fw_id, "same group");
    assert!(engine.plan(&s2, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // Longer backups: the database is modified in place.
    let mut backups = changed;
    backups["backup_days"] = json!(3);
    let s3 = engine.synth(&web_app(backups.clone())).unwrap();
    let plan = engine.plan(&s3, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.change("data/postgres").unwrap().action, Action::Update);
    assert_eq!(field_names(&plan, "data/postgres"), ["backup_retention_days"]);
    let before = aws.api_calls();
    let r = engine.apply(&s3, &ApplyOptions::default()).await.unwrap();
    assert_eq!(r.updated, ["data/postgres"]);
    assert_eq!(calls_of(&aws, &before, "ModifyDBInstance"), 1);
    let db = rds.describe_db_instances().db_instance_identifier(id("data/postgres")).send().await.unwrap();
    assert_eq!(db.db_instances()[0].backup_retention_period(), Some(3));
    assert!(engine.plan(&s3, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // A bigger VM: the plan says update in place; the instance is stopped, resized, started.
    let mut bigger = backups.clone();
    bigger["vm_size"] = json!("small");
    let s4 = engine.synth(&web_app(bigger)).unwrap();
    let plan = engine.plan(&s4, &PlanOptions::default()).await.unwrap();
    let c = plan.change("app/web-1").unwrap();
    assert_eq!(c.action, Action::Update, "{}", plan.render(false));
    assert_eq!(field_names(&plan, "app/web-1"), ["size"]);
    let before = aws.api_calls();
    let r = engine.apply(&s4, &ApplyOptions::default()).await.unwrap();
    assert_eq!(r.updated, ["app/web-1"]);
    for op in ["StopInstances", "ModifyInstanceAttribute", "StartInstances"] {
        assert_eq!(calls_of(&aws, &before, op), 1, "{op}");
    }
    assert_eq!(calls_of(&aws, &before, "RunInstances") + calls_of(&aws, &before, "TerminateInstances"), 0);
    let inst = ec2.describe_instances().instance_ids(&vm_id).send().await.unwrap();
    let inst = &inst.reservations()[0].instances()[0];
    assert_eq!(inst.instance_type().map(|t| t.as_str()), Some("t3.small"));
    assert_eq!(inst.state().and_then(|s| s.name()).map(|n| n.as_str()), Some("running"));
    assert_eq!(engine.state("shop").await.unwrap().resources["app/web-1"].id, vm_id, "same instance");
    let after = engine.plan(&s4, &PlanOptions::refreshing()).await.unwrap();
    assert!(after.is_empty(), "{}", after.render(false));

    // Destroy: nothing with the stack's tag is left in moto.
    let r = engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert_eq!(r.deleted.len(), 9, "{r:#?}");
    let left = leftovers(ACCOUNT, "shop").await;
    assert!(nothing_left(&left), "left behind: {left:?}");
}

fn changed_params(base: &serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    let mut p = base.clone();
    p[key] = value;
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_create_is_adopted_by_its_tags() {
    const ACCOUNT: &str = "100000000003";
    let aws = provider(ACCOUNT).await;
    let state = Arc::new(MemoryBackend::new());
    let engine = Engine::new(state.clone()).with_provider(aws.clone().provider()).with_sealer(None);
    let stack = web_app(json!({}));
    let s = engine.synth(&stack).unwrap();
    // A first run recorded its intent, created the VPC in AWS, and died before recording it.
    let tags: Tags = [
        ("konstacks:stack", "shop"),
        ("konstacks:path", "network/vpc"),
        ("Name", "shop-network-vpc"),
        ("konstacks:stage", "dev"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    state
        .append(
            "shop",
            &[Record::Intent(PendingOp {
                op: OpKind::Create,
                path: "network/vpc".into(),
                kind: Vpc::KIND,
                provider: "aws".into(),
                id: None,
                generation: 0,
                tags: tags.clone(),
                deps: vec![],
                // What the planner resolved for the VPC, as a real intent records it.
                inputs: [
                    ("cidr", json!("10.0.0.0/16")),
                    ("name", json!("shop-network-vpc")),
                    ("region", json!(REGION)),
                    ("tags", serde_json::to_value(&tags).unwrap()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
                at: 0,
                sealed: BTreeMap::new(),
                release: None,
            })],
        )
        .await
        .unwrap();
    let cx = OpContext::new(TokioClock::shared(), "shop");
    let spec = VpcSpec { name: "shop-network-vpc".into(), region: REGION.into(), cidr: "10.0.0.0/16".into(), tags };
    let made = aws.api::<Vpc>().create(&cx, &spec).await.unwrap();

    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.recovered.len(), 1);
    assert!(plan.recovered[0].outcome.contains(&made.id), "{:?}", plan.recovered);
    assert_eq!(plan.change("network/vpc").unwrap().action, Action::NoOp, "{}", plan.render(false));
    let r = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(!r.created.contains(&"network/vpc".to_string()), "adopted, not created again");
    assert!(r.replaced.is_empty(), "{r:#?}");
    assert_eq!(engine.state("shop").await.unwrap().resources["network/vpc"].id, made.id);
    assert_eq!(leftovers(ACCOUNT, "shop").await["vpcs"], 1);
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());
    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(nothing_left(&leftovers(ACCOUNT, "shop").await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_batched_and_unknown_ids_are_simply_absent() {
    const ACCOUNT: &str = "100000000004";
    let aws = provider(ACCOUNT).await;
    let cx = OpContext::new(TokioClock::shared(), "batch");
    let tags = |leaf: &str| -> Tags {
        [("konstacks:stack", "batch"), ("konstacks:path", leaf), ("Name", leaf)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let vpc = aws
        .api::<Vpc>()
        .create(
            &cx,
            &VpcSpec { name: "batch-vpc".into(), region: REGION.into(), cidr: "10.9.0.0/16".into(), tags: tags("vpc") },
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..12 {
        let spec = FirewallSpec {
            name: format!("batch-fw-{i}"),
            region: REGION.into(),
            vpc_id: vpc.id.clone(),
            ingress: vec![RuleSpec {
                protocol: konstacks_core::model::Protocol::Tcp,
                from_port: 8000 + i,
                to_port: 8000 + i,
                peer: RuleSource::Cidr("10.0.0.0/8".into()),
            }],
            egress: vec![],
            tags: tags(&format!("fw-{i}")),
        };
        ids.push(aws.api::<Firewall>().create(&cx, &spec).await.unwrap().id);
    }
    aws.reset_api_calls();
    let got = aws.api::<Firewall>().read_many(&cx, &Selector::Ids(ids.clone())).await.unwrap();
    assert_eq!(got.len(), 12);
    assert!(got.iter().all(|f| f.egress.is_empty()), "the default egress rule was revoked");
    assert_eq!(aws.api_calls().total, 1, "one call for twelve groups: {:?}", aws.api_calls());
    // An unknown id fails the id-list call; the same ids are then read through a filter.
    let mut asked = ids.clone();
    asked.push("sg-0000000000000dead".into());
    let got = aws.api::<Firewall>().read_many(&cx, &Selector::Ids(asked)).await.unwrap();
    assert_eq!(got.len(), 12);
    assert_eq!(aws.api_calls().total, 3, "{:?}", aws.api_calls());
    let by_stack = aws.api::<Firewall>().read_many(&cx, &Selector::Stack("batch".into())).await.unwrap();
    assert_eq!(by_stack.len(), 12);
    assert_eq!(aws.api_calls().total, 4);
    assert!(aws
        .api::<Vm>()
        .read_many(&cx, &Selector::Ids(vec!["i-0000000000000dead".into()]))
        .await
        .unwrap()
        .is_empty());
    for id in &ids {
        aws.api::<Firewall>().delete(&cx, id).await.unwrap();
    }
    aws.api::<Vpc>().delete(&cx, &vpc.id).await.unwrap();
    assert!(nothing_left(&leftovers(ACCOUNT, "batch").await));
}

/// An application load balancer with what the contract suite leaves out: an HTTP listener that
/// redirects to HTTPS, an HTTPS listener with a default and an SNI certificate and TLS 1.3 only,
/// then an update that drops the SNI certificate, moves the group to another port (a new target
/// group) and lowers the TLS policy; targets taken out and put back; nothing left after delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_load_balancer_redirects_serves_sni_and_updates_in_place() {
    use konstacks_core::model::LoadBalancer;
    use konstacks_core::spec::{
        HealthCheckSpec, HealthProtocol, LbScheme, ListenerProtocol, ListenerSpec, LoadBalancerSpec, RouteSpec,
        SubnetSpec, TargetGroupSpec, TlsPolicy, VmSpec,
    };
    const ACCOUNT: &str = "100000000005";
    const STACK: &str = "alb";
    let aws = provider(ACCOUNT).await;
    let cx = OpContext::new(TokioClock::shared(), STACK);
    let tags = |leaf: &str| -> Tags {
        [("konstacks:stack", STACK), ("konstacks:path", leaf), ("Name", leaf)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let vpc_spec =
        VpcSpec { name: "alb-vpc".into(), region: REGION.into(), cidr: "10.7.0.0/16".into(), tags: tags("vpc") };
    let vpc = aws.api::<Vpc>().create(&cx, &vpc_spec).await.unwrap();
    let mut subnets = Vec::new();
    for zone in 0..2u8 {
        let spec = SubnetSpec {
            name: format!("alb-{zone}"),
            region: REGION.into(),
            vpc_id: vpc.id.clone(),
            cidr: format!("10.7.{zone}.0/24"),
            zone,
            public: true,
            tags: tags(&format!("subnet-{zone}")),
        };
        subnets.push(aws.api::<Subnet>().create(&cx, &spec).await.unwrap().id);
    }
    let fw_spec = FirewallSpec {
        name: "alb-fw".into(),
        region: REGION.into(),
        vpc_id: vpc.id.clone(),
        ingress: vec![],
        egress: vec![],
        tags: tags("fw"),
    };
    let fw = aws.api::<Firewall>().create(&cx, &fw_spec).await.unwrap();
    let vm_spec = VmSpec {
        name: "alb-web".into(),
        region: REGION.into(),
        image: "ubuntu-lts".into(),
        size: "small".into(),
        subnet_id: subnets[0].clone(),
        firewall_ids: vec![],
        user_data: None,
        env: BTreeMap::new(),
        ssh_keys: vec![],
        assign_public_ip: false,
        app: None,
        tags: tags("web"),
    };
    let vm = aws.api::<Vm>().create(&cx, &vm_spec).await.unwrap();

    let sdk = sdk().await;
    let acm = aws_sdk_acm::Client::from_conf(
        aws_sdk_acm::config::Builder::from(&sdk).interceptor(MotoAccount(ACCOUNT)).build(),
    );
    let mut certs = Vec::new();
    for domain in ["shop.example.com", "api.example.com"] {
        let out = acm.request_certificate().domain_name(domain).send().await.unwrap();
        certs.push(out.certificate_arn().unwrap().to_string());
    }
    let health = HealthCheckSpec {
        protocol: HealthProtocol::Http,
        port: None,
        path: Some("/health".into()),
        interval_s: 15,
        timeout_s: 5,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        expected_status: Some("200".into()),
    };
    let group = TargetGroupSpec {
        name: "app".into(),
        port: 8080,
        vm_ids: vec![vm.id.clone()],
        health_check: health,
        deregistration_delay_s: 20,
        release: Default::default(),
    };
    let spec = LoadBalancerSpec {
        name: "alb-shop".into(),
        region: REGION.into(),
        scheme: LbScheme::Public,
        subnet_ids: subnets.clone(),
        firewall_ids: vec![fw.id.clone()],
        listeners: vec![
            ListenerSpec {
                port: 80,
                protocol: ListenerProtocol::Http,
                certificate_ids: vec![],
                redirect_to_port: Some(443),
            },
            ListenerSpec {
                port: 443,
                protocol: ListenerProtocol::Https,
                certificate_ids: certs.clone(),
                redirect_to_port: None,
            },
        ],
        target_groups: vec![group.clone()],
        routes: vec![RouteSpec {
            priority: 1,
            host: None,
            path_prefix: Some("/api".into()),
            target_group: "app".into(),
        }],
        default_target_group: "app".into(),
        tls_policy: TlsPolicy::Tls13,
        security_policy: None,
        assumed_gb_processed_per_month: 50.0,
        tags: tags("lb"),
    };
    let lbs = aws.api::<LoadBalancer>();
    let created = lbs.create(&cx, &spec).await.unwrap();
    let mut want_listeners = spec.listeners.clone();
    want_listeners.sort();
    assert_eq!(created.listeners, want_listeners);
    assert_eq!(created.tls_policy, TlsPolicy::Tls13);
    assert_eq!(created.target_groups, vec![group.clone()]);
    assert_eq!(created.routes, spec.routes);
    assert_eq!(created.url, format!("https://{}", created.dns_name));
    assert_eq!(created.assumed_gb_processed_per_month, 50.0);
    assert_eq!(created.tags, spec.tags, "internal tags are hidden");
    let by_stack = lbs.read_many(&cx, &Selector::Stack(STACK.into())).await.unwrap();
    assert_eq!(by_stack, vec![created.clone()]);
    assert!(lbs.read_many(&cx, &Selector::Stack("other".into())).await.unwrap().is_empty());

    // Targets out and back in.
    lbs.deregister_targets(&cx, &created.id, "app", std::slice::from_ref(&vm.id)).await.unwrap();
    lbs.deregister_targets(&cx, &created.id, "app", std::slice::from_ref(&vm.id)).await.unwrap();
    let read = lbs.read_many(&cx, &Selector::Ids(vec![created.id.clone()])).await.unwrap();
    assert!(read[0].target_groups[0].vm_ids.is_empty(), "{:?}", read[0].target_groups);
    lbs.register_targets(&cx, &created.id, "app", std::slice::from_ref(&vm.id)).await.unwrap();
    let health = lbs.target_health(&cx, &created.id).await.unwrap();
    assert_eq!(health.len(), 1);
    assert_eq!((health[0].group.as_str(), health[0].target_id.as_str()), ("app", vm.id.as_str()));

    // Update: one certificate, TLS 1.2 through a named policy, the group on another port, no
    // more route.
    let mut upd = spec.clone();
    upd.listeners[1].certificate_ids.truncate(1);
    upd.tls_policy = TlsPolicy::Tls12;
    upd.security_policy = Some("ELBSecurityPolicy-TLS13-1-2-Res-2021-06".into());
    upd.target_groups[0].port = 9090;
    upd.target_groups[0].deregistration_delay_s = 5;
    upd.routes.clear();
    let updated = lbs.update(&cx, &created.id, &upd).await.unwrap();
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.tls_policy, TlsPolicy::Tls12);
    assert_eq!(updated.security_policy, upd.security_policy);
    let elb = aws_sdk_elasticloadbalancingv2::Client::from_conf(
        aws_sdk_elasticloadbalancingv2::config::Builder::from(&sdk).interceptor(MotoAccount(ACCOUNT)).build(),
    );
    let listeners = elb.describe_listeners().load_balancer_arn(&created.id).send().await.unwrap();
    let https = listeners.listeners().iter().find(|l| l.port() == Some(443)).unwrap();
    assert_eq!(https.ssl_policy(), Some("ELBSecurityPolicy-TLS13-1-2-Res-2021-06"), "the named policy is on the cloud");
    assert_eq!(updated.listeners.iter().find(|l| l.port == 443).unwrap().certificate_ids, vec![certs[0].clone()]);
    assert_eq!(updated.target_groups, upd.target_groups);
    assert!(updated.routes.is_empty());

    // A VM that is a target is not terminated.
    let e = aws.api::<Vm>().delete(&cx, &vm.id).await.unwrap_err();
    assert_eq!(e.kind(), konstacks_core::error::ErrorKind::Conflict, "{}", e.full_chain());

    lbs.delete(&cx, &created.id).await.unwrap();
    lbs.delete(&cx, &created.id).await.unwrap();
    assert!(lbs.read_many(&cx, &Selector::Ids(vec![created.id.clone()])).await.unwrap().is_empty());
    let groups = elb.describe_target_groups().send().await.unwrap();
    assert!(groups.target_groups().is_empty(), "target groups left: {:?}", groups.target_groups());
    aws.api::<Vm>().delete(&cx, &vm.id).await.unwrap();
    aws.api::<Firewall>().delete(&cx, &fw.id).await.unwrap();
    for s in &subnets {
        aws.api::<Subnet>().delete(&cx, s).await.unwrap();
    }
    aws.api::<Vpc>().delete(&cx, &vpc.id).await.unwrap();
    assert!(nothing_left(&leftovers(ACCOUNT, STACK).await));
}

/// A zone holding a record Konstacks did not write is not deleted (the error names the
/// record); once it is gone, the zone goes with the validation records Konstacks keeps in it.
/// A TXT value with quotes and backslashes reads back as written, with its tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_with_foreign_records_is_refused_on_moto() {
    use konstacks_core::error::ErrorKind;
    use konstacks_core::kinds::{DnsRecord, DnsRecordSpec, DnsZone, DnsZoneSpec, RecordType};
    const ACCOUNT: &str = "100000000031";
    let aws = provider(ACCOUNT).await;
    let cx = OpContext::new(TokioClock::shared(), "dnsguard");
    let tags = |leaf: &str| -> Tags {
        [("konstacks:stack", "dnsguard"), ("konstacks:path", leaf), ("Name", leaf)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let zspec = DnsZoneSpec {
        name: "zone".into(),
        region: REGION.into(),
        domain: "guard.konstacks.test".into(),
        assumed_million_queries: 1.0,
        managed: true,
        tags: tags("zone"),
    };
    let zone = aws.api::<DnsZone>().create(&cx, &zspec).await.unwrap();
    let txt = DnsRecordSpec {
        name: "txt".into(),
        region: REGION.into(),
        zone_id: zone.id.clone(),
        fqdn: "guard.konstacks.test".into(),
        record_type: RecordType::Txt,
        values: vec!["say \"hi\" \\ bye".into(), "k".repeat(300)],
        ttl: Some(300),
        tags: tags("txt"),
    };
    let rec = aws.api::<DnsRecord>().create(&cx, &txt).await.unwrap();
    assert_eq!(rec.values, txt.values);
    assert_eq!(rec.tags, txt.tags);
    let by_stack = aws.api::<DnsRecord>().read_many(&cx, &Selector::Stack("dnsguard".into())).await.unwrap();
    assert_eq!(by_stack.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec![rec.id.as_str()]);

    // A record written behind Konstacks' back.
    let sdk = sdk().await;
    let r53 = aws_sdk_route53::Client::from_conf(
        aws_sdk_route53::config::Builder::from(&sdk).interceptor(MotoAccount(ACCOUNT)).build(),
    );
    let foreign = aws_sdk_route53::types::ResourceRecordSet::builder()
        .name("mail.guard.konstacks.test")
        .r#type(aws_sdk_route53::types::RrType::A)
        .ttl(300)
        .resource_records(aws_sdk_route53::types::ResourceRecord::builder().value("203.0.113.9").build().unwrap())
        .build()
        .unwrap();
    let batch = |action| {
        aws_sdk_route53::types::ChangeBatch::builder()
            .changes(
                aws_sdk_route53::types::Change::builder()
                    .action(action)
                    .resource_record_set(foreign.clone())
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let create = aws_sdk_route53::types::ChangeAction::Create;
    r53.change_resource_record_sets().hosted_zone_id(&zone.id).change_batch(batch(create)).send().await.unwrap();

    aws.api::<DnsRecord>().delete(&cx, &rec.id).await.unwrap();
    let e = aws.api::<DnsZone>().delete(&cx, &zone.id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.message().contains("mail.guard.konstacks.test"), "{e}");
    let delete = aws_sdk_route53::types::ChangeAction::Delete;
    r53.change_resource_record_sets().hosted_zone_id(&zone.id).change_batch(batch(delete)).send().await.unwrap();
    aws.api::<DnsZone>().delete(&cx, &zone.id).await.unwrap();
    let left = aws.api::<DnsZone>().read_many(&cx, &Selector::Ids(vec![zone.id.clone()])).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// What moto 5.2.5 can show of a cache: create, the primary endpoint, replicas, failover, the
/// subnet group, tags, and reads by id and by stack. It cannot show deletes (a deleted
/// replication group stays `deleting` for ever), replica changes (no `IncreaseReplicaCount`) or
/// the primary cluster's version and security groups, so the cache suite is not run here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_is_created_and_read_on_moto() {
    use konstacks_core::spec::{Cache, CacheEngine, CacheSpec, SubnetSpec};
    const ACCOUNT: &str = "100000000010";
    let aws = provider(ACCOUNT).await;
    let cx = OpContext::new(TokioClock::shared(), "cachy");
    let tags = |leaf: &str| -> Tags {
        [("konstacks:stack", "cachy"), ("konstacks:path", leaf), ("Name", leaf)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let vpc = aws
        .api::<Vpc>()
        .create(
            &cx,
            &VpcSpec { name: "cachy-vpc".into(), region: REGION.into(), cidr: "10.8.0.0/16".into(), tags: tags("vpc") },
        )
        .await
        .unwrap();
    let mut subnets = Vec::new();
    for (i, cidr) in ["10.8.1.0/24", "10.8.2.0/24"].into_iter().enumerate() {
        let spec = SubnetSpec {
            name: format!("cachy-net-{i}"),
            region: REGION.into(),
            vpc_id: vpc.id.clone(),
            cidr: cidr.into(),
            zone: u8::try_from(i).unwrap(),
            public: false,
            tags: tags(&format!("net-{i}")),
        };
        subnets.push(aws.api::<Subnet>().create(&cx, &spec).await.unwrap().id);
    }
    let spec = CacheSpec {
        name: "cachy-sessions".into(),
        region: REGION.into(),
        engine: CacheEngine::Valkey,
        version: "8.0".into(),
        size: "cache-small".into(),
        subnet_ids: subnets.clone(),
        firewall_ids: vec![],
        replicas: 1,
        high_availability: true,
        transit_encryption: true,
        auth_token: Some(Secret::new("Moto-Auth-Token-0123456789".into())),
        tags: tags("sessions"),
    };
    let created = aws.api::<Cache>().create(&cx, &spec).await.unwrap();
    assert_eq!(created.id, "cachy-sessions");
    assert_eq!(created.engine, CacheEngine::Valkey);
    assert_eq!(created.size, "cache-small");
    assert_eq!((created.replicas, created.high_availability, created.transit_encryption), (1, true, true));
    assert!(!created.host.is_empty());
    assert_eq!(created.port, "6379");
    assert_eq!(created.status, "available");
    let mut want = subnets.clone();
    want.sort();
    assert_eq!(created.subnet_ids, want);
    assert_eq!(created.tags, spec.tags, "internal tags are hidden");
    let by_id = aws
        .api::<Cache>()
        .read_many(&cx, &Selector::Ids(vec![created.id.clone(), "cachy-unknown".into()]))
        .await
        .unwrap();
    assert_eq!(by_id, vec![created.clone()]);
    let by_stack = aws.api::<Cache>().read_many(&cx, &Selector::Stack("cachy".into())).await.unwrap();
    assert_eq!(by_stack, vec![created.clone()]);
    assert!(aws.api::<Cache>().read_many(&cx, &Selector::Stack("other".into())).await.unwrap().is_empty());
    // The same name again is refused, and the subnet group it shares is left alone.
    let again = aws.api::<Cache>().create(&cx, &spec).await.unwrap_err();
    assert_eq!(again.kind(), konstacks_core::error::ErrorKind::AlreadyExists, "{again}");
    let text = format!("{again} {:?}", again);
    assert!(!text.contains("Moto-Auth-Token"), "the auth token leaked into an error");
}
