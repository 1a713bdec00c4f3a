//! What moto cannot show, at the SDK level: the real `aws-sdk-ec2` / `aws-sdk-rds` clients talk
//! to a scripted HTTP client that answers with AWS's own wire format (EC2 and RDS query XML).
//!
//! - a throttling storm (`RequestLimitExceeded`) absorbed by the engine's backoff (the SDK's own
//!   retry is off in this backend: every pause runs on the engine's injected clock), plus the
//!   backend's bounded retry of follow-up calls;
//! - slow `pending` -> `running` and `creating` -> `available` transitions waited out on tokio's
//!   paused clock (minutes of virtual time in milliseconds);
//! - the same `ClientToken` on a retried `RunInstances`, and a fresh one when AWS remembers the
//!   token of a terminated instance;
//! - an ACM certificate whose DescribeCertificate shows no validation record at first and then
//!   answers PENDING_VALIDATION for a while, waited out on the injected clock until ISSUED,
//!   with a throttled RequestCertificate retried under the same idempotency token;
//! - bad input refused before any HTTP request, by `synth` against the AWS catalogue and by the
//!   backend itself; AWS error codes mapped to portable kinds with code and message kept;
//! - a load balancer target going `initial` -> `unhealthy` (with ELBv2's reason) -> `healthy`.
//!
//! Run with: cargo test -p konstacks-providers --features aws --test aws_scripted
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::{Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use konstacks_core::clock::{OpContext, TokioClock};
use konstacks_core::engine::{ApplyOptions, Engine};
use konstacks_core::error::{Error, ErrorKind};
use konstacks_core::model::{self as m, DbSize, Image, Placement, Stack, Stage, Subnet, Vm, VmSize, Vpc};
use konstacks_core::model::{Database, Firewall};
use konstacks_core::provider::KindApis;
use konstacks_core::secret::Secret;
use konstacks_core::spec::{DatabaseSpec, Tags, VmSpec};
use konstacks_core::state::MemoryBackend;
use konstacks_providers::aws::{AwsProvider, Timeouts};

const REGION: &str = "eu-central-1";

/// One request the scripted client received.
#[derive(Debug, Clone)]
struct Seen {
    action: String,
    params: BTreeMap<String, String>,
    /// Virtual time since the client was made.
    at: Duration,
}

type Handler = dyn Fn(&str, &BTreeMap<String, String>, usize) -> (u16, String) + Send + Sync;

/// An HTTP client answering from a script: `handler(action, params, n)` where `n` counts the
/// requests of that action so far (0-based).
#[derive(Clone)]
struct Scripted {
    handler: Arc<Handler>,
    seen: Arc<Mutex<Vec<Seen>>>,
    origin: tokio::time::Instant,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripted")
    }
}

impl Scripted {
    fn new(handler: impl Fn(&str, &BTreeMap<String, String>, usize) -> (u16, String) + Send + Sync + 'static) -> Self {
        Self { handler: Arc::new(handler), seen: Arc::default(), origin: tokio::time::Instant::now() }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn of(&self, action: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.action == action).collect()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

impl HttpConnector for Scripted {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = std::str::from_utf8(request.body().bytes().unwrap_or_default()).unwrap_or_default().to_string();
        let params: BTreeMap<String, String> = body
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        let mut action = params.get("Action").cloned().unwrap_or_default();
        let mut params = params;
        if action.is_empty() {
            // JSON protocols (ACM) name the operation in a header; REST ones (Route 53) by
            // method and path.
            action = match request.headers().get("x-amz-target") {
                Some(t) => t.rsplit('.').next().unwrap_or(t).to_string(),
                None => {
                    format!("{} {}", request.method(), request.uri().split("amazonaws.com").last().unwrap_or_default())
                }
            };
            params = BTreeMap::from([("body".to_string(), body.clone())]);
        }
        let n = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.iter().filter(|s| s.action == action).count();
            seen.push(Seen { action: action.clone(), params: params.clone(), at: self.origin.elapsed() });
            n
        };
        let (status, xml) = (self.handler)(&action, &params, n);
        let response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(xml));
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Scripted {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

async fn sdk(client: &Scripted) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("scripted", "scripted", None, None, "scripted"))
        .http_client(client.clone())
        .load()
        .await
}

async fn provider(client: &Scripted) -> Arc<AwsProvider> {
    Arc::new(AwsProvider::builder(&sdk(client).await).image("ubuntu-lts", "ami-0abc").build().unwrap())
}

// ---- AWS wire format ----

const EC2_NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
const RDS_NS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";

fn ec2(action: &str, inner: &str) -> (u16, String) {
    (200, format!("<{action}Response xmlns=\"{EC2_NS}\"><requestId>req-1</requestId>{inner}</{action}Response>"))
}

fn ec2_error(status: u16, code: &str, message: &str) -> (u16, String) {
    (
        status,
        format!("<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>req-e</RequestID></Response>"),
    )
}

fn rds(action: &str, inner: &str) -> (u16, String) {
    (
        200,
        format!(
            "<{action}Response xmlns=\"{RDS_NS}\"><{action}Result>{inner}</{action}Result><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></{action}Response>"
        ),
    )
}

fn instance_xml(id: &str, state: &str, code: u8) -> String {
    format!(
        "<item><instanceId>{id}</instanceId><imageId>ami-0abc</imageId><instanceType>t3.micro</instanceType>\
         <instanceState><code>{code}</code><name>{state}</name></instanceState><subnetId>subnet-1</subnetId>\
         <vpcId>vpc-1</vpcId><privateIpAddress>10.0.1.10</privateIpAddress><ipAddress>203.0.113.7</ipAddress>\
         <groupSet><item><groupId>sg-1</groupId><groupName>web</groupName></item></groupSet>\
         <tagSet><item><key>Name</key><value>s-app-web</value></item><item><key>konstacks:stack</key><value>s</value></item>\
         <item><key>konstacks:path</key><value>app/web</value></item>\
         <item><key>konstacks:aws:image</key><value>ubuntu-lts</value></item>\
         <item><key>konstacks:aws:size</key><value>micro</value></item></tagSet></item>"
    )
}

fn reservation(instances: &str) -> String {
    format!("<reservationSet><item><reservationId>r-1</reservationId><ownerId>1</ownerId><instancesSet>{instances}</instancesSet></item></reservationSet>")
}

fn tags(stack: &str, path: &str, name: &str) -> Tags {
    [("konstacks:stack", stack), ("konstacks:path", path), ("Name", name)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn vm_spec() -> VmSpec {
    VmSpec {
        name: "s-app-web".into(),
        region: REGION.into(),
        image: "ubuntu-lts".into(),
        size: "micro".into(),
        subnet_id: "subnet-1".into(),
        firewall_ids: vec!["sg-1".into()],
        user_data: Some("#!/bin/sh\necho hello\n".into()),
        env: BTreeMap::from([("DATABASE_PASSWORD".to_string(), Secret::new("n0t-in-logs".to_string()))]),
        ssh_keys: vec![],
        assign_public_ip: true,
        app: None,
        tags: tags("s", "app/web", "s-app-web"),
    }
}

fn cx() -> OpContext {
    OpContext::new(TokioClock::shared(), "s")
}

// ---- tests ----

#[tokio::test(start_paused = true)]
async fn slow_pending_to_running_is_waited_out_on_the_injected_clock() {
    let client = Scripted::new(|action, _, n| match action {
        "RunInstances" => ec2(
            "RunInstances",
            &format!(
                "<reservationId>r-1</reservationId><ownerId>1</ownerId><instancesSet>{}</instancesSet>",
                instance_xml("i-1", "pending", 0)
            ),
        ),
        // Not visible for the first read (eventual consistency), then pending for a while.
        "DescribeInstances" if n == 0 => ec2("DescribeInstances", "<reservationSet/>"),
        "DescribeInstances" if n < 8 => ec2("DescribeInstances", &reservation(&instance_xml("i-1", "pending", 0))),
        "DescribeInstances" => ec2("DescribeInstances", &reservation(&instance_xml("i-1", "running", 16))),
        other => panic!("unexpected {other}"),
    });
    let aws = provider(&client).await;
    let wall = std::time::Instant::now();
    let virtual_start = tokio::time::Instant::now();
    let vm = aws.api::<Vm>().create(&cx(), &vm_spec()).await.unwrap();
    assert_eq!(vm.status, "running");
    assert_eq!(vm.id, "i-1");
    assert_eq!(vm.size, "micro");
    assert_eq!(vm.image, "ubuntu-lts");
    assert_eq!(vm.public_ip, "203.0.113.7");
    let polls = client.of("DescribeInstances");
    assert_eq!(polls.len(), 9);
    // Pauses of 1, 2, 4, 8, 16 s, then 20 s (the cap) between polls: all on virtual time.
    let gaps: Vec<u64> = polls.windows(2).map(|w| (w[1].at - w[0].at).as_secs()).collect();
    assert_eq!(gaps, [1, 2, 4, 8, 16, 20, 20, 20]);
    assert!(virtual_start.elapsed() >= Duration::from_secs(91));
    assert!(wall.elapsed() < Duration::from_secs(5), "no real sleeping");
    // User data went base64-encoded, with the secret only inside it.
    let run = &client.of("RunInstances")[0];
    let ud = String::from_utf8(aws_smithy_types::base64::decode(&run.params["UserData"]).unwrap()).unwrap();
    assert!(ud.contains("/etc/konstacks/app.env") && ud.contains("echo hello"));
    assert!(run.params.iter().all(|(k, v)| k == "UserData" || !v.contains("n0t-in-logs")));
    assert_eq!(run.params["MetadataOptions.HttpTokens"], "required");
}

#[tokio::test(start_paused = true)]
async fn a_retried_run_instances_sends_the_same_client_token() {
    let client = Scripted::new(|action, _, n| match action {
        // The first launch times out on AWS's side (it may or may not have happened).
        "RunInstances" if n == 0 => ec2_error(503, "ServiceUnavailable", "Service is unavailable"),
        "RunInstances" => ec2(
            "RunInstances",
            &format!(
                "<reservationId>r-1</reservationId><ownerId>1</ownerId><instancesSet>{}</instancesSet>",
                instance_xml("i-1", "pending", 0)
            ),
        ),
        "DescribeInstances" => ec2("DescribeInstances", &reservation(&instance_xml("i-1", "running", 16))),
        other => panic!("unexpected {other}"),
    });
    let aws = provider(&client).await;
    let err = aws.api::<Vm>().create(&cx(), &vm_spec()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{}", err.full_chain());
    assert!(err.full_chain().contains("ServiceUnavailable"), "{}", err.full_chain());
    // The engine calls create again with the same spec after an uncertain failure.
    let vm = aws.api::<Vm>().create(&cx(), &vm_spec()).await.unwrap();
    assert_eq!(vm.id, "i-1");
    let runs = client.of("RunInstances");
    assert_eq!(runs.len(), 2);
    let token = &runs[0].params["ClientToken"];
    assert!(token.starts_with("ks-") && token.len() <= 64, "{token}");
    assert_eq!(&runs[1].params["ClientToken"], token, "a retry must reuse the token");
    // A different VM (another generation: another name) gets another token.
    let mut next = vm_spec();
    next.name = "s-app-web-1".into();
    aws.api::<Vm>().create(&cx(), &next).await.unwrap();
    assert_ne!(&client.of("RunInstances")[2].params["ClientToken"], token);
}

#[tokio::test(start_paused = true)]
async fn a_token_remembered_from_a_terminated_instance_is_not_reused() {
    let client = Scripted::new(|action, _, n| match action {
        // AWS answers a token it knows with the instance it launched then, terminated by now.
        "RunInstances" => {
            let body =
                if n == 0 { instance_xml("i-old", "terminated", 48) } else { instance_xml("i-new", "pending", 0) };
            ec2(
                "RunInstances",
                &format!("<reservationId>r-1</reservationId><ownerId>1</ownerId><instancesSet>{body}</instancesSet>"),
            )
        }
        "DescribeInstances" => ec2("DescribeInstances", &reservation(&instance_xml("i-new", "running", 16))),
        other => panic!("unexpected {other}"),
    });
    let aws = provider(&client).await;
    let vm = aws.api::<Vm>().create(&cx(), &vm_spec()).await.unwrap();
    assert_eq!(vm.id, "i-new");
    let runs = client.of("RunInstances");
    assert_eq!(runs.len(), 2);
    assert_ne!(runs[0].params["ClientToken"], runs[1].params["ClientToken"]);
    assert!(runs[1].params["ClientToken"].len() <= 64);
}

fn db_xml(status: &str, with_endpoint: bool) -> String {
    let endpoint = if with_endpoint {
        "<Endpoint><Address>s-data-db.abc.eu-central-1.rds.amazonaws.com</Address><Port>5432</Port></Endpoint>"
    } else {
        ""
    };
    format!(
        "<DBInstance><DBInstanceIdentifier>s-data-db</DBInstanceIdentifier><DBInstanceClass>db.t3.micro</DBInstanceClass>\
         <Engine>postgres</Engine><EngineVersion>16.4</EngineVersion><DBInstanceStatus>{status}</DBInstanceStatus>{endpoint}\
         <AllocatedStorage>20</AllocatedStorage><BackupRetentionPeriod>7</BackupRetentionPeriod><MultiAZ>false</MultiAZ>\
         <StorageEncrypted>true</StorageEncrypted><DeletionProtection>false</DeletionProtection>\
         <DBInstanceArn>arn:aws:rds:eu-central-1:1:db:s-data-db</DBInstanceArn>\
         <VpcSecurityGroups><VpcSecurityGroupMembership><VpcSecurityGroupId>sg-db</VpcSecurityGroupId><Status>active</Status></VpcSecurityGroupMembership></VpcSecurityGroups>\
         <DBSubnetGroup><DBSubnetGroupName>s-data-db</DBSubnetGroupName><Subnets>\
         <Subnet><SubnetIdentifier>subnet-a</SubnetIdentifier></Subnet><Subnet><SubnetIdentifier>subnet-b</SubnetIdentifier></Subnet>\
         </Subnets></DBSubnetGroup>\
         <TagList><Tag><Key>konstacks:stack</Key><Value>s</Value></Tag><Tag><Key>konstacks:aws:size</Key><Value>db-micro</Value></Tag></TagList>\
         </DBInstance>"
    )
}

fn db_spec() -> DatabaseSpec {
    DatabaseSpec {
        name: "s-data-db".into(),
        region: REGION.into(),
        engine: m::DbEngine::Postgres,
        version: "16".into(),
        size: "db-micro".into(),
        storage_gb: 20,
        subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
        firewall_ids: vec!["sg-db".into()],
        backup_retention_days: 7,
        encrypted: true,
        high_availability: false,
        deletion_protection: false,
        apply_immediately: true,
        password: Some(Secret::new("Sup3r-Secret-Pw".into())),
        tags: tags("s", "data/db", "s-data-db"),
    }
}

#[tokio::test(start_paused = true)]
async fn slow_creating_to_available_is_waited_out_on_the_injected_clock() {
    let client = Scripted::new(|action, _, n| match action {
        "CreateDBSubnetGroup" => rds(
            "CreateDBSubnetGroup",
            "<DBSubnetGroup><DBSubnetGroupName>s-data-db</DBSubnetGroupName></DBSubnetGroup>",
        ),
        "CreateDBInstance" => rds("CreateDBInstance", &db_xml("creating", false)),
        // Twenty polls of `creating` (over five minutes), one of `backing-up`, then available.
        "DescribeDBInstances" if n < 20 => {
            rds("DescribeDBInstances", &format!("<DBInstances>{}</DBInstances>", db_xml("creating", false)))
        }
        "DescribeDBInstances" if n == 20 => {
            rds("DescribeDBInstances", &format!("<DBInstances>{}</DBInstances>", db_xml("backing-up", true)))
        }
        "DescribeDBInstances" => {
            rds("DescribeDBInstances", &format!("<DBInstances>{}</DBInstances>", db_xml("available", true)))
        }
        other => panic!("unexpected {other}"),
    });
    let aws = provider(&client).await;
    let wall = std::time::Instant::now();
    let start = tokio::time::Instant::now();
    let db = aws.api::<Database>().create(&cx(), &db_spec()).await.unwrap();
    assert_eq!(db.status, "available");
    assert_eq!(db.version, "16", "16.4 is reported as the catalogue version 16");
    assert_eq!(db.size, "db-micro");
    assert_eq!(db.host, "s-data-db.abc.eu-central-1.rds.amazonaws.com");
    assert_eq!(db.port, "5432");
    assert_eq!(db.subnet_ids, ["subnet-a", "subnet-b"]);
    assert_eq!(client.of("DescribeDBInstances").len(), 22);
    assert!(start.elapsed() >= Duration::from_secs(5 * 60), "{:?}", start.elapsed());
    assert!(wall.elapsed() < Duration::from_secs(5));
    let create = &client.of("CreateDBInstance")[0];
    for (k, v) in [
        ("StorageEncrypted", "true"),
        ("PubliclyAccessible", "false"),
        ("MultiAZ", "false"),
        ("BackupRetentionPeriod", "7"),
        ("DBInstanceClass", "db.t3.micro"),
        ("DBSubnetGroupName", "s-data-db"),
        ("VpcSecurityGroupIds.VpcSecurityGroupId.1", "sg-db"),
        ("MasterUsername", "konstacks"),
    ] {
        assert_eq!(create.params.get(k).map(String::as_str), Some(v), "{k}");
    }
}

/// An EC2 that throttles the first five `CreateVpc` calls and every other follow-up call.
fn stormy_ec2() -> Scripted {
    Scripted::new(|action, _, n| {
        let throttled = || ec2_error(503, "RequestLimitExceeded", "Request limit exceeded.");
        match action {
            "CreateVpc" if n < 5 => throttled(),
            "CreateVpc" => ec2(
                "CreateVpc",
                "<vpc><vpcId>vpc-1</vpcId><cidrBlock>10.0.0.0/16</cidrBlock><state>pending</state></vpc>",
            ),
            _ if n % 2 == 0 => throttled(),
            "ModifyVpcAttribute" => ec2(action, "<return>true</return>"),
            "DescribeVpcs" => ec2(
                action,
                "<vpcSet><item><vpcId>vpc-1</vpcId><cidrBlock>10.0.0.0/16</cidrBlock>\
                 <tagSet><item><key>Name</key><value>storm-network-vpc</value></item></tagSet></item></vpcSet>",
            ),
            "DescribeRouteTables" => ec2(action, "<routeTableSet/>"),
            "DescribeInternetGateways" => ec2(action, "<internetGatewaySet/>"),
            "CreateInternetGateway" => {
                ec2(action, "<internetGateway><internetGatewayId>igw-1</internetGatewayId></internetGateway>")
            }
            "AttachInternetGateway" => ec2(action, "<return>true</return>"),
            "CreateRouteTable" => {
                ec2(action, "<routeTable><routeTableId>rtb-1</routeTableId><vpcId>vpc-1</vpcId></routeTable>")
            }
            "CreateRoute" => ec2(action, "<return>true</return>"),
            other => panic!("unexpected {other}"),
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_throttling_storm_is_absorbed_with_backoff() {
    let client = stormy_ec2();
    let aws = provider(&client).await;
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(aws.clone().provider()).with_sealer(None);
    let stack = Stack::new("storm", Placement::region(REGION), Stage::Dev);
    stack.provider("aws");
    stack.scope("network").add("vpc", Vpc::new("10.0.0.0/16"));
    let s = engine.synth(&stack).unwrap();
    let wall = std::time::Instant::now();
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.created, ["network/vpc"]);
    // The engine retried the throttled create with growing pauses ...
    assert!(report.retries >= 5, "{report:?}");
    let creates = client.of("CreateVpc");
    assert_eq!(creates.len(), 6, "five throttled, one accepted: exactly one VPC");
    let gaps: Vec<Duration> = creates.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(20)), "{gaps:?}");
    assert!(gaps[4] > gaps[0], "backoff grows: {gaps:?}");
    // ... and the backend retried its own throttled follow-ups (DNS, gateway, route table).
    for op in
        ["ModifyVpcAttribute", "CreateInternetGateway", "AttachInternetGateway", "CreateRouteTable", "CreateRoute"]
    {
        assert!(client.of(op).len() >= 2, "{op} was retried");
    }
    assert!(wall.elapsed() < Duration::from_secs(5), "backoff runs on virtual time");
    let calls = aws.api_calls();
    assert_eq!(calls.total as usize, client.seen().len());
}

#[tokio::test(start_paused = true)]
async fn aws_errors_keep_their_code_and_map_to_portable_kinds() {
    let client = Scripted::new(|action, _, _| match action {
        "DeleteSubnet" => {
            ec2_error(400, "DependencyViolation", "The subnet 'subnet-1' has dependencies and cannot be deleted.")
        }
        "DeleteSecurityGroup" => ec2_error(400, "InvalidGroup.NotFound", "The security group 'sg-9' does not exist"),
        "DeleteVpc" => ec2_error(401, "AuthFailure", "AWS was not able to validate the provided access credentials"),
        "DescribeVpcs" => {
            ec2("DescribeVpcs", "<vpcSet><item><vpcId>vpc-1</vpcId><cidrBlock>10.0.0.0/16</cidrBlock></item></vpcSet>")
        }
        "DescribeSubnets" => ec2("DescribeSubnets", "<subnetSet/>"),
        "DescribeSecurityGroups" => ec2("DescribeSecurityGroups", "<securityGroupInfo/>"),
        "DescribeRouteTables" => ec2(action, "<routeTableSet/>"),
        "DescribeInternetGateways" => ec2(action, "<internetGatewaySet/>"),
        // A VM delete first looks for load balancer target groups holding it (none: no instance).
        "DescribeInstances" => ec2(action, "<reservationSet/>"),
        "TerminateInstances" => ec2_error(400, "InvalidInstanceID.Malformed", "Invalid id: \"i-x\""),
        other => panic!("unexpected {other}"),
    });
    let aws = provider(&client).await;
    let cx = cx();
    let e = aws.api::<Subnet>().delete(&cx, "subnet-1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.full_chain().contains("DependencyViolation: The subnet 'subnet-1' has dependencies"),
        "{}",
        e.full_chain()
    );
    let api =
        std::error::Error::source(&e).and_then(|s| s.downcast_ref::<konstacks_providers::aws::AwsApiError>()).unwrap();
    assert_eq!((api.operation(), api.code(), api.status()), ("DeleteSubnet", Some("DependencyViolation"), Some(400)));
    assert_eq!(aws.api::<Firewall>().delete(&cx, "sg-9").await.unwrap_err().kind(), ErrorKind::NotFound);
    let e = aws.api::<Vpc>().delete(&cx, "vpc-1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{}", e.full_chain());
    assert!(!e.full_chain().contains("scripted"), "no credential in messages");
    assert_eq!(aws.api::<Vm>().delete(&cx, "i-x").await.unwrap_err().kind(), ErrorKind::InvalidSpec);
}

/// A stack with three mistakes only the AWS catalogue can catch.
fn bad_stack() -> Stack {
    let stack = Stack::new("bad", Placement::region(REGION), Stage::Dev);
    stack.provider("aws");
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = net.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let a = net.add("a", Subnet::new(vpc, "10.1.2.0/24").zone(0));
    let b = net.add("b", Subnet::new(vpc, "10.0.3.0/24").zone(1));
    stack.add("db", m::Database::postgres("9.6", DbSize::Small, [a, b]));
    stack.add("web", Vm::new(Image::UbuntuLts, VmSize::from_slug("t9.mega"), public));
    stack
}

#[tokio::test(start_paused = true)]
async fn bad_input_is_refused_before_any_aws_call() {
    let client = Scripted::new(|action, _, _| panic!("no request may be sent, got {action}"));
    let aws = provider(&client).await;
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(aws.clone().provider());
    let err = engine.synth(&bad_stack()).unwrap_err();
    let Error::Invalid(diags) = &err else { panic!("expected Invalid, got {err}") };
    for code in ["unknown-size", "unknown-engine-version", "cidr-outside-vpc"] {
        assert!(diags.has(code), "{code} missing in:\n{err}");
    }
    let text = err.to_string();
    assert!(text.contains("t9.mega") && text.contains("9.6") && text.contains("10.1.2.0/24"), "{text}");

    // The backend itself refuses what synth would have caught, should a spec reach it anyway.
    let cx = cx();
    let mut vm = vm_spec();
    vm.size = "t9.mega".into();
    assert_eq!(aws.api::<Vm>().create(&cx, &vm).await.unwrap_err().kind(), ErrorKind::InvalidSpec);
    let mut vm = vm_spec();
    vm.region = "us-east-1".into();
    let e = aws.api::<Vm>().create(&cx, &vm).await.unwrap_err();
    assert!(e.kind() == ErrorKind::InvalidSpec && e.message().contains("region"), "{e}");
    let mut db = db_spec();
    db.version = "9.6".into();
    assert_eq!(aws.api::<Database>().create(&cx, &db).await.unwrap_err().kind(), ErrorKind::InvalidSpec);
    let mut db = db_spec();
    db.password = Some(Secret::new("has@sign-inside".into()));
    let e = aws.api::<Database>().create(&cx, &db).await.unwrap_err();
    assert!(e.kind() == ErrorKind::InvalidSpec && !e.to_string().contains("has@sign"), "{e}");
    let mut db = db_spec();
    db.engine = m::DbEngine::Mysql;
    db.version = "5.7".into();
    assert_eq!(aws.api::<Database>().create(&cx, &db).await.unwrap_err().kind(), ErrorKind::InvalidSpec);
    assert!(client.seen().is_empty());
    assert_eq!(aws.api_calls().total, 0);
}

#[tokio::test(start_paused = true)]
async fn follow_up_steps_that_keep_failing_take_the_new_vpc_down_again() {
    let client = Scripted::new(|action, _, _| match action {
        "CreateVpc" => ec2("CreateVpc", "<vpc><vpcId>vpc-1</vpcId><cidrBlock>10.0.0.0/16</cidrBlock></vpc>"),
        "ModifyVpcAttribute" => {
            ec2_error(400, "UnauthorizedOperation", "You are not authorized to perform this operation.")
        }
        "DescribeRouteTables" => ec2(action, "<routeTableSet/>"),
        "DescribeInternetGateways" => ec2(action, "<internetGatewaySet/>"),
        "DeleteVpc" => ec2(action, "<return>true</return>"),
        other => panic!("unexpected {other}"),
    });
    let aws = provider(&client).await;
    let spec = konstacks_core::spec::VpcSpec {
        name: "s-network-vpc".into(),
        region: REGION.into(),
        cidr: "10.0.0.0/16".into(),
        tags: tags("s", "network/vpc", "s-network-vpc"),
    };
    let e = aws.api::<Vpc>().create(&cx(), &spec).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert_eq!(client.of("DeleteVpc").len(), 1, "a failed create creates nothing");
    let _ = Timeouts::default();
}

// ---- load balancer target health ----

const ELB_NS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
const LB_ARN: &str = "arn:aws:elasticloadbalancing:eu-central-1:123456789012:loadbalancer/app/web-lb/50dc6c495c0c9188";
const TG_ARN: &str = "arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/app/73e2d6bc24d8a067";

fn elb(action: &str, inner: &str) -> (u16, String) {
    (
        200,
        format!(
            "<{action}Response xmlns=\"{ELB_NS}\"><{action}Result>{inner}</{action}Result><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></{action}Response>"
        ),
    )
}

fn tag_xml(k: &str, v: &str) -> String {
    format!("<member><Key>{k}</Key><Value>{v}</Value></member>")
}

fn health_xml(state: &str, reason: &str, description: &str) -> String {
    format!(
        "<TargetHealthDescriptions><member><Target><Id>i-0123456789abcdef0</Id><Port>8080</Port></Target>\
         <TargetHealth><State>{state}</State>{reason}{description}</TargetHealth></member></TargetHealthDescriptions>",
        reason = if reason.is_empty() { String::new() } else { format!("<Reason>{reason}</Reason>") },
        description =
            if description.is_empty() { String::new() } else { format!("<Description>{description}</Description>") },
    )
}

/// An application load balancer with one target group `app` whose one target is first
/// `initial`, then `unhealthy` (a 502), then `healthy`: what moto, which answers `healthy` at
/// once, cannot show.
fn scripted_lb() -> Scripted {
    Scripted::new(|action, params, n| {
        match action {
        "DescribeLoadBalancers" => elb(
            action,
            &format!(
                "<LoadBalancers><member><LoadBalancerArn>{LB_ARN}</LoadBalancerArn><LoadBalancerName>web-lb</LoadBalancerName>\
                 <DNSName>web-lb-1.eu-central-1.elb.amazonaws.com</DNSName><Type>application</Type>\
                 <Scheme>internet-facing</Scheme><State><Code>active</Code></State></member></LoadBalancers>"
            ),
        ),
        "DescribeTags" => {
            let arn = params.get("ResourceArns.member.1").cloned().unwrap_or_default();
            let tags = if arn == TG_ARN {
                tag_xml("konstacks:aws:group", "app") + &tag_xml("konstacks:aws:lb", "web-lb")
            } else {
                tag_xml("Name", "web-lb")
            };
            elb(action, &format!("<TagDescriptions><member><ResourceArn>{arn}</ResourceArn><Tags>{tags}</Tags></member></TagDescriptions>"))
        }
        "DescribeTargetGroups" => elb(
            action,
            &format!(
                "<TargetGroups><member><TargetGroupArn>{TG_ARN}</TargetGroupArn><TargetGroupName>{}</TargetGroupName>\
                 <Protocol>HTTP</Protocol><Port>8080</Port><VpcId>vpc-1</VpcId><TargetType>instance</TargetType>\
                 <HealthCheckProtocol>HTTP</HealthCheckProtocol><HealthCheckPath>/</HealthCheckPath></member></TargetGroups>",
                konstacks_providers::aws::target_group_name("web-lb", "app", 8080)
            ),
        ),
        "DescribeTargetGroupAttributes" => elb(
            action,
            "<Attributes><member><Key>deregistration_delay.timeout_seconds</Key><Value>30</Value></member></Attributes>",
        ),
        "DescribeListeners" => elb(action, "<Listeners/>"),
        "DescribeTargetHealth" => match n {
            0 => elb(action, &health_xml("initial", "Elb.RegistrationInProgress", "Target registration is in progress")),
            1 => elb(
                action,
                &health_xml("unhealthy", "Target.ResponseCodeMismatch", "Health checks failed with these codes: [502]"),
            ),
            _ => elb(action, &health_xml("healthy", "", "")),
        },
        other => panic!("unexpected call {other}"),
    }
    })
}

#[tokio::test(start_paused = true)]
async fn target_health_maps_initial_unhealthy_and_healthy_with_their_reasons() {
    use konstacks_core::model::LoadBalancer;
    use konstacks_core::provider::TargetHealthState;
    let client = scripted_lb();
    let aws = provider(&client).await;
    let api = aws.api::<LoadBalancer>();
    let first = api.target_health(&cx(), LB_ARN).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].group.as_str(), first[0].target_id.as_str()), ("app", "i-0123456789abcdef0"));
    assert_eq!(first[0].state, TargetHealthState::Initial);
    assert!(first[0].reason.as_deref().unwrap().contains("Elb.RegistrationInProgress"), "{first:?}");
    let second = api.target_health(&cx(), LB_ARN).await.unwrap();
    assert_eq!(second[0].state, TargetHealthState::Unhealthy);
    let reason = second[0].reason.as_deref().unwrap();
    assert!(reason.contains("Target.ResponseCodeMismatch") && reason.contains("[502]"), "{reason}");
    let third = api.target_health(&cx(), LB_ARN).await.unwrap();
    assert_eq!(third[0].state, TargetHealthState::Healthy);
    assert_eq!(third[0].reason, None);
    // The health goes to the group found by its tag, read with one describe per call.
    assert_eq!(client.of("DescribeTargetHealth").len(), 3);
    assert_eq!(client.of("DescribeTargetHealth")[0].params.get("TargetGroupArn").map(String::as_str), Some(TG_ARN));
}

// ---- certificates and DNS (ACM JSON, Route 53 REST-XML) ----

const R53_NS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";
const CERT_ARN: &str = "arn:aws:acm:eu-central-1:123456789012:certificate/c-1";

fn r53(root: &str, inner: &str) -> (u16, String) {
    (200, format!("<?xml version=\"1.0\"?><{root} xmlns=\"{R53_NS}\">{inner}</{root}>"))
}

fn change_info(status: &str) -> String {
    format!("<ChangeInfo><Id>/change/C1</Id><Status>{status}</Status><SubmittedAt>2026-12-05T00:00:00Z</SubmittedAt></ChangeInfo>")
}

/// A DescribeCertificate answer; `records` says whether ACM shows the validation records yet.
fn certificate_json(status: &str, records: bool) -> (u16, String) {
    let option = |d: &str| {
        let rr = if records {
            r#","ResourceRecord":{"Name":"_a1b2.example.com.","Type":"CNAME","Value":"_c3d4.acm-validations.aws."}"#
        } else {
            ""
        };
        format!(
            r#"{{"DomainName":"{d}","ValidationDomain":"{d}","ValidationMethod":"DNS","ValidationStatus":"{status}"{rr}}}"#
        )
    };
    let not_after = if status == "ISSUED" { r#","NotAfter":1830000000"# } else { "" };
    (
        200,
        format!(
            r#"{{"Certificate":{{"CertificateArn":"{CERT_ARN}","DomainName":"example.com","SubjectAlternativeNames":["example.com","*.example.com"],"Status":"{status}","Type":"AMAZON_ISSUED","DomainValidationOptions":[{},{}]{not_after}}}}}"#,
            option("example.com"),
            option("*.example.com")
        ),
    )
}

fn cert_spec() -> konstacks_core::kinds::CertificateSpec {
    konstacks_core::kinds::CertificateSpec {
        name: "s-site-cert".into(),
        region: REGION.into(),
        domains: vec!["example.com".into(), "*.example.com".into()],
        validation_zone_id: Some("Z1".into()),
        tags: tags("s", "site/cert", "s-site-cert"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_certificate_pending_validation_is_waited_out_until_issued() {
    let client = Scripted::new(|action, _, n| {
        match action {
        "RequestCertificate" if n == 0 => {
            (400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_string())
        }
        "RequestCertificate" => (200, format!(r#"{{"CertificateArn":"{CERT_ARN}"}}"#)),
        // No validation record yet for the first reads, then pending for a while.
        "DescribeCertificate" if n < 2 => certificate_json("PENDING_VALIDATION", false),
        "DescribeCertificate" if n < 7 => certificate_json("PENDING_VALIDATION", true),
        "DescribeCertificate" => certificate_json("ISSUED", true),
        a if a.starts_with("GET /2013-04-01/hostedzone/Z1/rrset") => r53(
            "ListResourceRecordSetsResponse",
            "<ResourceRecordSets></ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>300</MaxItems>",
        ),
        a if a.starts_with("GET /2013-04-01/hostedzone/Z1") => r53(
            "GetHostedZoneResponse",
            "<HostedZone><Id>/hostedzone/Z1</Id><Name>example.com.</Name><CallerReference>ks</CallerReference></HostedZone>\
             <DelegationSet><NameServers><NameServer>ns-1.awsdns-01.com</NameServer></NameServers></DelegationSet>",
        ),
        a if a.starts_with("POST /2013-04-01/hostedzone/Z1/rrset") => {
            r53("ChangeResourceRecordSetsResponse", &change_info("PENDING"))
        }
        a if a.starts_with("GET /2013-04-01/change/C1") && n < 2 => r53("GetChangeResponse", &change_info("PENDING")),
        a if a.starts_with("GET /2013-04-01/change/C1") => r53("GetChangeResponse", &change_info("INSYNC")),
        other => panic!("unexpected request {other}"),
    }
    });
    let aws = provider(&client).await;
    let started = tokio::time::Instant::now();
    let cert = aws.api::<konstacks_core::kinds::Certificate>().create(&cx(), &cert_spec()).await.unwrap();
    assert_eq!(cert.status, "issued");
    assert_eq!(cert.id, CERT_ARN);
    assert_eq!(cert.not_after.as_deref(), Some("2027-12-28T13:20:00Z"));
    assert_eq!(cert.validation_zone_id.as_deref(), Some("Z1"));
    assert_eq!(
        cert.validation_records.len(),
        1,
        "the wildcard shares its base's record: {:?}",
        cert.validation_records
    );
    assert_eq!(cert.validation_records[0].name, "_a1b2.example.com");
    assert_eq!(cert.validation_records[0].value, "_c3d4.acm-validations.aws");
    assert_eq!(cert.tags, cert_spec().tags, "internal tags are hidden");

    // The throttled request was sent again with the same idempotency token.
    let requests = client.of("RequestCertificate");
    assert_eq!(requests.len(), 2);
    let token = |s: &Seen| {
        let v: serde_json::Value = serde_json::from_str(&s.params["body"]).unwrap();
        v["IdempotencyToken"].as_str().unwrap().to_string()
    };
    assert_eq!(token(&requests[0]), token(&requests[1]));
    assert!(requests[1].at > requests[0].at, "the retry waited on the clock");
    // The validation record went into the zone with its ownership record, in one batch.
    let changes = client.of("POST /2013-04-01/hostedzone/Z1/rrset");
    assert_eq!(changes.len(), 1, "{:?}", client.seen().iter().map(|s| &s.action).collect::<Vec<_>>());
    let body = &changes[0].params["body"];
    assert!(body.contains("_a1b2.example.com") && body.contains("_c3d4.acm-validations.aws"), "{body}");
    assert!(body.contains("konstacks-record=") && body.contains(CERT_ARN), "{body}");
    // Every wait ran on the paused clock: minutes of polling took no real time.
    assert!(started.elapsed() >= Duration::from_secs(15), "{:?}", started.elapsed());
    assert!(client.of("DescribeCertificate").len() >= 8);
}

#[tokio::test(start_paused = true)]
async fn bad_dns_input_is_refused_before_any_aws_call() {
    use konstacks_core::kinds::{Certificate, DnsRecord, DnsRecordSpec, DnsZone, DnsZoneSpec, RecordType};
    let client = Scripted::new(|action, _, _| panic!("no request may be sent, got {action}"));
    let aws = provider(&client).await;
    let cx = cx();
    let record = |t: RecordType, fqdn: &str, values: &[&str], ttl: Option<u32>| DnsRecordSpec {
        name: "s-www".into(),
        region: REGION.into(),
        zone_id: "Z1".into(),
        fqdn: fqdn.into(),
        record_type: t,
        values: values.iter().map(|v| v.to_string()).collect(),
        ttl,
        tags: tags("s", "dns/www", "s-www"),
    };
    let bad = [
        record(RecordType::A, "www.example.com", &["203.0.113.300"], Some(300)),
        record(RecordType::A, "www.example.com", &[], Some(300)),
        record(RecordType::Cname, "www.example.com", &["a.example.net", "b.example.net"], Some(300)),
        record(RecordType::Txt, "www.example.com", &["tab\there"], Some(300)),
        record(RecordType::Caa, "example.com", &["0 issue letsencrypt.org"], Some(300)),
        record(RecordType::Mx, "example.com", &["ten mx.example.com"], Some(300)),
        record(RecordType::A, "www.example.com", &["203.0.113.10"], Some(5)),
        record(RecordType::Alias, "example.com", &["lb-1.eu-central-1.elb.amazonaws.com"], Some(300)),
        record(RecordType::Ns, "sub.example.com", &["ns1.example.net"], Some(300)),
        record(RecordType::A, "bad name.example.com", &["203.0.113.10"], Some(300)),
    ];
    for spec in &bad {
        let e = aws.api::<DnsRecord>().create(&cx, spec).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidSpec, "{spec:?}: {e}");
    }
    let zone = DnsZoneSpec {
        name: "s-zone".into(),
        region: REGION.into(),
        domain: "-bad-.example".into(),
        assumed_million_queries: 1.0,
        managed: true,
        tags: tags("s", "dns/zone", "s-zone"),
    };
    assert_eq!(aws.api::<DnsZone>().create(&cx, &zone).await.unwrap_err().kind(), ErrorKind::InvalidSpec);
    let mut cert = cert_spec();
    cert.domains = vec!["example.com".into(), "example.com".into()];
    assert_eq!(aws.api::<Certificate>().create(&cx, &cert).await.unwrap_err().kind(), ErrorKind::InvalidSpec);
    let mut cert = cert_spec();
    cert.domains = vec!["not a domain".into()];
    assert_eq!(aws.api::<Certificate>().create(&cx, &cert).await.unwrap_err().kind(), ErrorKind::InvalidSpec);
    assert!(client.seen().is_empty());
    assert_eq!(aws.api_calls().total, 0);
}
