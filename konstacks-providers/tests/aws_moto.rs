//! The AWS backend against a real moto server, over real HTTP: the core contract suite, the
//! web-app template end to end through the engine, adoption after a crash, and batched reads.
//!
//! Run with: bash scripts/test-aws.sh (it starts moto and sets KONSTACKS_MOTO_ENDPOINT). Every
//! test works in its own moto account (`x-moto-account-id`), so they run in parallel.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

/// moto 5.2.5 names the root element of its `GetBucketVersioning` answer after the operation
/// (`GetBucketVersioningResponse`) where S3 says `VersioningConfiguration`; boto ignores the
/// root, the Rust SDK refuses the answer. This proxy in front of moto renames that root and
/// forwards everything else unchanged. It runs on a thread of its own, shared by every test.
fn moto_proxy() -> &'static str {
    static PROXY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PROXY.get_or_init(|| {
        let target = endpoint();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let client = reqwest::Client::new();
                let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                    let (client, target) = (client.clone(), target.clone());
                    async move { forward(&client, &target, req).await }
                });
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(format!("http://{}", listener.local_addr().unwrap())).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        rx.recv().unwrap()
    })
}

async fn forward(client: &reqwest::Client, target: &str, req: axum::extract::Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = client.request(parts.method.clone(), format!("{target}{path}")).body(body);
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    let resp = out.send().await.unwrap();
    let mut builder = axum::response::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            builder = builder.header(k, v);
        }
    }
    let bytes = resp.bytes().await.unwrap();
    let body = match std::str::from_utf8(&bytes) {
        Ok(text) if text.contains("<GetBucketVersioningResponse") => {
            axum::body::Body::from(text.replace("GetBucketVersioningResponse", "VersioningConfiguration"))
        }
        _ => axum::body::Body::from(bytes),
    };
    builder.body(body).unwrap()
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
