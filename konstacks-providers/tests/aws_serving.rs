//! The serving kinds on AWS end to end, against a real moto server over real HTTP: `web-app`
//! with a domain and a zone (an ALB with HTTPS on an ACM certificate validated in a Route 53
//! zone, an alias record, a private encrypted S3 bucket), `agency-sites`
//! with three client domains and a fourth added in place, and releases: one that registers the
//! new instances before the old ones leave, and one whose new instances never turn healthy and
//! is rolled back (moto always reports registered running instances healthy, so that run goes
//! through a loopback proxy that rewrites `DescribeTargetHealth` answers for the new ones).
//!
//! Every answer is read back with the raw SDK clients, independently of the backend.
//!
//! Run with: bash scripts/test-aws.sh (it starts moto and sets KONSTACKS_MOTO_ENDPOINT).
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_aws;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use common_aws::{MotoAccount, AMI, REGION};
use konstacks_core::clock::Clock;
use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::model::{Placement, Stage};
use konstacks_core::plan::Action;
use konstacks_core::state::MemoryBackend;
use konstacks_providers::aws::AwsProvider;
use konstacks_templates::TemplateContext;
use serde_json::{json, Value};

const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f admin@example";

/// A clock running 60 times faster than the wall clock: the engine's health gates (minutes)
/// and the backend's waits pass in seconds, while moto answers in real time.
#[derive(Debug)]
struct Fast {
    origin: std::time::Instant,
}

const SPEED: u32 = 60;

#[async_trait::async_trait]
impl Clock for Fast {
    fn now(&self) -> Duration {
        self.origin.elapsed() * SPEED
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d / SPEED).await;
    }
    fn unix_secs(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// Records the name of every AWS operation sent, in order, with the instance ids of the
/// target operations.
#[derive(Debug, Default, Clone)]
struct CallLog(Arc<Mutex<Vec<String>>>);

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "call-log"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_default();
        let body = context.request().body().bytes().map(|b| String::from_utf8_lossy(b).to_string()).unwrap_or_default();
        let ids: Vec<&str> = body
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| k.ends_with(".Id") || k.starts_with("InstanceId."))
            .map(|(_, v)| v)
            .collect();
        self.0.lock().unwrap().push(if ids.is_empty() { op } else { format!("{op}:{}", ids.join(",")) });
        Ok(())
    }
}

impl CallLog {
    fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Raw SDK clients of one moto account.
struct Raw {
    ec2: aws_sdk_ec2::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    acm: aws_sdk_acm::Client,
    r53: aws_sdk_route53::Client,
    s3: aws_sdk_s3::Client,
    cache: aws_sdk_elasticache::Client,
}

async fn raw(account: &str) -> Raw {
    let sdk = common_aws::sdk().await;
    let a = || MotoAccount(account.to_string());
    Raw {
        ec2: aws_sdk_ec2::Client::from_conf(aws_sdk_ec2::config::Builder::from(&sdk).interceptor(a()).build()),
        elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(
            aws_sdk_elasticloadbalancingv2::config::Builder::from(&sdk).interceptor(a()).build(),
        ),
        acm: aws_sdk_acm::Client::from_conf(aws_sdk_acm::config::Builder::from(&sdk).interceptor(a()).build()),
        r53: aws_sdk_route53::Client::from_conf(aws_sdk_route53::config::Builder::from(&sdk).interceptor(a()).build()),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).interceptor(a()).build(),
        ),
        cache: aws_sdk_elasticache::Client::from_conf(
            aws_sdk_elasticache::config::Builder::from(&sdk).interceptor(a()).build(),
        ),
    }
}

/// The AWS provider of `account` on `sdk`, logging its calls into `log`.
fn provider_on(sdk: &SdkConfig, account: &str, log: &CallLog) -> Arc<AwsProvider> {
    let p = AwsProvider::builder(sdk)
        .image("ubuntu-lts", AMI)
        .image("debian-12", AMI)
        .interceptor(SharedInterceptor::new(MotoAccount(account.to_string())))
        .interceptor(SharedInterceptor::new(log.clone()))
        .build()
        .unwrap();
    Arc::new(p)
}

fn engine_on(aws: &Arc<AwsProvider>) -> Engine {
    Engine::new(Arc::new(MemoryBackend::new()))
        .with_provider(aws.clone().provider())
        .with_sealer(None)
        .with_clock(Arc::new(Fast { origin: std::time::Instant::now() }))
}

fn template(name: &str, stack: &str, params: Value) -> konstacks_core::model::Stack {
    let t = konstacks_templates::find(name).unwrap();
    let cx = TemplateContext::new(stack, Stage::Dev).placement(Placement::region(REGION)).provider("aws");
    t.build_json(&cx, params).unwrap()
}

fn web_app_params() -> Value {
    json!({
        "admin_cidr": "198.51.100.0/24",
        "ssh_keys": [SSH_KEY],
        "app_image": "ghcr.io/example/shop:1",
        "app_version": "1",
        "vm_count": 2,
        "load_balancer": true,
        "health_path": "/healthz",
    })
}

fn strip_dot(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

/// What moto still holds tagged with `stack`, by resource type.
async fn leftovers(r: &Raw, stack: &str) -> BTreeMap<&'static str, usize> {
    let tagged = |tags: Vec<(String, String)>| tags.iter().any(|(k, v)| k == "konstacks:stack" && v == stack);
    let mut left = BTreeMap::new();
    let instances = r.ec2.describe_instances().send().await.unwrap();
    let live = instances
        .reservations()
        .iter()
        .flat_map(|res| res.instances())
        .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated"))
        .filter(|i| {
            tagged(i.tags().iter().map(|t| (t.key().unwrap_or("").into(), t.value().unwrap_or("").into())).collect())
        })
        .count();
    left.insert("instances", live);
    let lbs = r.elb.describe_load_balancers().send().await.unwrap();
    let tgs = r.elb.describe_target_groups().send().await.unwrap();
    let arns: Vec<String> = lbs
        .load_balancers()
        .iter()
        .filter_map(|l| l.load_balancer_arn().map(str::to_string))
        .chain(tgs.target_groups().iter().filter_map(|t| t.target_group_arn().map(str::to_string)))
        .collect();
    let mut elb_tagged = 0;
    for chunk in arns.chunks(20) {
        let d = r.elb.describe_tags().set_resource_arns(Some(chunk.to_vec())).send().await.unwrap();
        elb_tagged += d
            .tag_descriptions()
            .iter()
            .filter(|td| {
                tagged(
                    td.tags().iter().map(|t| (t.key().unwrap_or("").into(), t.value().unwrap_or("").into())).collect(),
                )
            })
            .count();
    }
    left.insert("load balancers and target groups", elb_tagged);
    let certs = r.acm.list_certificates().send().await.unwrap();
    let mut acm_tagged = 0;
    for c in certs.certificate_summary_list() {
        let t = r.acm.list_tags_for_certificate().certificate_arn(c.certificate_arn().unwrap()).send().await.unwrap();
        if tagged(t.tags().iter().map(|t| (t.key().into(), t.value().unwrap_or("").into())).collect()) {
            acm_tagged += 1;
        }
    }
    left.insert("certificates", acm_tagged);
    let zones = r.r53.list_hosted_zones().send().await.unwrap();
    let mut zones_tagged = 0;
    for z in zones.hosted_zones() {
        let id = z.id().trim_start_matches("/hostedzone/");
        let t = r
            .r53
            .list_tags_for_resource()
            .resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
            .resource_id(id)
            .send()
            .await
            .unwrap();
        let tags = t.resource_tag_set().map(|s| s.tags().to_vec()).unwrap_or_default();
        if tagged(tags.iter().map(|t| (t.key().unwrap_or("").into(), t.value().unwrap_or("").into())).collect()) {
            zones_tagged += 1;
        }
    }
    left.insert("hosted zones", zones_tagged);
    let buckets = r.s3.list_buckets().send().await.unwrap();
    let mut buckets_tagged = 0;
    for b in buckets.buckets() {
        if let Ok(t) = r.s3.get_bucket_tagging().bucket(b.name().unwrap()).send().await {
            if tagged(t.tag_set().iter().map(|t| (t.key().into(), t.value().into())).collect()) {
                buckets_tagged += 1;
            }
        }
    }
    left.insert("buckets", buckets_tagged);
    let groups = r.cache.describe_replication_groups().send().await.unwrap();
    let mut groups_tagged = 0;
    for g in groups.replication_groups() {
        let t = r.cache.list_tags_for_resource().resource_name(g.arn().unwrap()).send().await.unwrap();
        if tagged(t.tag_list().iter().map(|t| (t.key().unwrap_or("").into(), t.value().unwrap_or("").into())).collect())
        {
            groups_tagged += 1;
        }
    }
    left.insert("cache replication groups", groups_tagged);
    left
}

fn nothing_left(left: &BTreeMap<&'static str, usize>) -> bool {
    left.values().all(|n| *n == 0)
}

/// The ids of the instances registered in each target group of the load balancer `lb_arn`,
/// with their health, read from moto.
async fn registered(r: &Raw, lb_arn: &str) -> BTreeMap<String, String> {
    let tgs = r.elb.describe_target_groups().load_balancer_arn(lb_arn).send().await.unwrap();
    let mut out = BTreeMap::new();
    for tg in tgs.target_groups() {
        let h = r.elb.describe_target_health().target_group_arn(tg.target_group_arn().unwrap()).send().await.unwrap();
        for d in h.target_health_descriptions() {
            let id = d.target().and_then(|t| t.id()).unwrap_or_default().to_string();
            let state = d.target_health().and_then(|t| t.state()).map(|s| s.as_str().to_string()).unwrap_or_default();
            if state != "unused" {
                out.insert(id, state);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_serves_https_on_its_domain_on_moto() {
    const ACCOUNT: &str = "200000000001";
    let log = CallLog::default();
    // Through the proxy that fixes moto's GetBucketVersioning answer (the bucket is read back).
    let sdk = common_aws::sdk().await.into_builder().endpoint_url(common_aws::moto_proxy()).build();
    let aws = provider_on(&sdk, ACCOUNT, &log);
    let engine = engine_on(&aws);
    let r = raw(ACCOUNT).await;
    let mut params = web_app_params();
    params["domain"] = json!("shop.example.com");
    params["zone"] = json!("example.com");
    params["uploads_bucket"] = json!(true);
    params["redis"] = json!(true);
    let s = engine.synth(&template("web-app", "shop", params.clone())).unwrap();
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.outputs["url"], json!("https://shop.example.com"));
    let state = engine.state("shop").await.unwrap();
    let id = |path: &str| state.resources.get(path).map(|r| r.id.clone()).unwrap_or_else(|| panic!("no `{path}`"));

    // The load balancer: public, behind its own security group.
    let lb_arn = id("app/lb");
    let lbs = r.elb.describe_load_balancers().load_balancer_arns(&lb_arn).send().await.unwrap();
    let lb = &lbs.load_balancers()[0];
    assert_eq!(lb.scheme().map(|s| s.as_str()), Some("internet-facing"));
    assert_eq!(lb.security_groups(), [id("network/lb-fw")]);
    assert_eq!(report.outputs["lb-dns-name"], json!(lb.dns_name().unwrap()));

    // HTTPS on 443 with the ACM certificate; HTTP on 80 redirecting to it.
    let cert_arn = id("edge/certificate");
    let listeners = r.elb.describe_listeners().load_balancer_arn(&lb_arn).send().await.unwrap();
    let by_port: BTreeMap<i32, &aws_sdk_elasticloadbalancingv2::types::Listener> =
        listeners.listeners().iter().map(|l| (l.port().unwrap(), l)).collect();
    assert_eq!(by_port.keys().copied().collect::<Vec<_>>(), [80, 443]);
    let https = by_port[&443];
    assert_eq!(https.protocol().map(|p| p.as_str()), Some("HTTPS"));
    assert_eq!(
        https.certificates().iter().filter_map(|c| c.certificate_arn()).collect::<Vec<_>>(),
        [cert_arn.as_str()]
    );
    assert!(https.ssl_policy().unwrap().starts_with("ELBSecurityPolicy-TLS13-1-2"), "{:?}", https.ssl_policy());
    let redirect = by_port[&80].default_actions()[0].redirect_config().expect("HTTP redirects");
    assert_eq!((redirect.protocol(), redirect.port()), (Some("HTTPS"), Some("443")));
    let issued = r.acm.describe_certificate().certificate_arn(&cert_arn).send().await.unwrap();
    let issued = issued.certificate().unwrap();
    assert_eq!(issued.status().map(|s| s.as_str()), Some("ISSUED"));
    assert_eq!(issued.domain_name(), Some("shop.example.com"));

    // Both app instances registered and healthy, reachable on the web port only from the load
    // balancer's security group (SSH from the admin CIDR aside).
    let vms: BTreeSet<String> = ["app/web-1", "app/web-2"].iter().map(|p| id(p)).collect();
    let targets = registered(&r, &lb_arn).await;
    assert_eq!(targets.keys().cloned().collect::<BTreeSet<_>>(), vms);
    assert!(targets.values().all(|s| s == "healthy"), "{targets:?}");
    let inst = r.ec2.describe_instances().set_instance_ids(Some(vms.iter().cloned().collect())).send().await.unwrap();
    for i in inst.reservations().iter().flat_map(|res| res.instances()) {
        assert!(i.public_ip_address().is_none(), "app instances have no public address");
        for g in i.security_groups() {
            let sg = r.ec2.describe_security_groups().group_ids(g.group_id().unwrap()).send().await.unwrap();
            for perm in sg.security_groups()[0].ip_permissions() {
                if perm.from_port() == Some(22) {
                    continue;
                }
                assert!(perm.ip_ranges().is_empty() && perm.ipv6_ranges().is_empty(), "open to addresses: {perm:?}");
                let from: Vec<&str> = perm.user_id_group_pairs().iter().filter_map(|p| p.group_id()).collect();
                assert_eq!(from, [id("network/lb-fw").as_str()], "{perm:?}");
            }
        }
    }

    // The domain is an alias of the load balancer in the stack's zone.
    let zone_id = id("edge/zone");
    let sets = r.r53.list_resource_record_sets().hosted_zone_id(&zone_id).send().await.unwrap();
    let alias = sets
        .resource_record_sets()
        .iter()
        .find(|rs| strip_dot(rs.name()) == "shop.example.com" && rs.r#type().as_str() == "A")
        .expect("an A alias record for the domain");
    assert_eq!(strip_dot(alias.alias_target().unwrap().dns_name()), strip_dot(lb.dns_name().unwrap()));

    // The uploads bucket: private and encrypted.
    let bucket = id("data/uploads");
    let block = r.s3.get_public_access_block().bucket(&bucket).send().await.unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(
        [
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ],
        [Some(true); 4]
    );
    let enc = r.s3.get_bucket_encryption().bucket(&bucket).send().await.unwrap();
    assert!(!enc.server_side_encryption_configuration().unwrap().rules().is_empty());

    // The cache: encrypted at rest and in transit, with an auth token, in the stack's subnet group.
    let cache = id("data/redis");
    let groups = r.cache.describe_replication_groups().replication_group_id(&cache).send().await.unwrap();
    let g = &groups.replication_groups()[0];
    assert_eq!(g.at_rest_encryption_enabled(), Some(true));
    assert_eq!(g.transit_encryption_enabled(), Some(true));
    assert_eq!(g.auth_token_enabled(), Some(true));
    let primary = g.member_clusters()[0].clone();
    let clusters = r.cache.describe_cache_clusters().cache_cluster_id(&primary).send().await.unwrap();
    assert_eq!(clusters.cache_clusters()[0].cache_subnet_group_name(), Some(cache.as_str()));

    // Re-plan after reading everything back: nothing to do.
    let again = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert!(again.is_empty(), "drift right after apply:\n{}", again.render(false));

    // Destroy: nothing tagged with the stack is left.
    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    let left = leftovers(&r, "shop").await;
    assert!(nothing_left(&left), "left behind: {left:?}");
    assert!(log.calls().iter().any(|c| c == "DeleteLoadBalancer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agency_sites_with_three_client_domains_then_a_fourth_in_place_on_moto() {
    const ACCOUNT: &str = "200000000002";
    let log = CallLog::default();
    let aws = provider_on(&common_aws::sdk().await, ACCOUNT, &log);
    let engine = engine_on(&aws);
    let r = raw(ACCOUNT).await;
    let client =
        |name: &str| json!({"name": name, "domain": format!("www.{name}.example"), "zone": format!("{name}.example")});
    let three = json!({"clients": [client("bakery"), client("florist"), client("garage")]});
    let s = engine.synth(&template("agency-sites", "agency", three)).unwrap();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let state = engine.state("agency").await.unwrap();
    let lb_path = state.resources.keys().find(|p| p.ends_with("/lb")).cloned().expect("a load balancer");
    let lb_arn = state.resources[&lb_path].id.clone();

    // One certificate per client on the HTTPS listener (SNI), one host rule per client.
    let listeners = r.elb.describe_listeners().load_balancer_arn(&lb_arn).send().await.unwrap();
    let https = listeners.listeners().iter().find(|l| l.port() == Some(443)).expect("an HTTPS listener");
    let certs =
        r.elb.describe_listener_certificates().listener_arn(https.listener_arn().unwrap()).send().await.unwrap();
    assert_eq!(certs.certificates().len(), 3, "{certs:?}");
    let hosts =
        |rules: &aws_sdk_elasticloadbalancingv2::operation::describe_rules::DescribeRulesOutput| -> BTreeSet<String> {
            rules
                .rules()
                .iter()
                .flat_map(|rule| rule.conditions())
                .filter(|c| c.field() == Some("host-header"))
                .flat_map(|c| c.host_header_config().map(|h| h.values().to_vec()).unwrap_or_default())
                .collect()
        };
    let rules = r.elb.describe_rules().listener_arn(https.listener_arn().unwrap()).send().await.unwrap();
    assert_eq!(
        hosts(&rules),
        ["www.bakery.example", "www.florist.example", "www.garage.example"].map(String::from).into()
    );
    let zones = r.r53.list_hosted_zones().send().await.unwrap();
    assert_eq!(zones.hosted_zones().len(), 3);
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // A fourth client: the load balancer is updated in place (a rule, a group, a certificate).
    let four = json!({"clients": [client("bakery"), client("florist"), client("garage"), client("dentist")]});
    let s4 = engine.synth(&template("agency-sites", "agency", four)).unwrap();
    let plan = engine.plan(&s4, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.change(&lb_path).unwrap().action, Action::Update, "{}", plan.render(false));
    engine.apply(&s4, &ApplyOptions::default()).await.unwrap();
    assert_eq!(engine.state("agency").await.unwrap().resources[&lb_path].id, lb_arn, "the same load balancer");
    let rules = r.elb.describe_rules().listener_arn(https.listener_arn().unwrap()).send().await.unwrap();
    assert!(hosts(&rules).contains("www.dentist.example"));
    assert!(engine.plan(&s4, &PlanOptions::refreshing()).await.unwrap().is_empty());

    engine.destroy("agency", &ApplyOptions::default()).await.unwrap();
    let left = leftovers(&r, "agency").await;
    assert!(nothing_left(&left), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_registers_new_instances_before_the_old_ones_leave_on_moto() {
    const ACCOUNT: &str = "200000000003";
    let log = CallLog::default();
    let aws = provider_on(&common_aws::sdk().await, ACCOUNT, &log);
    let engine = engine_on(&aws);
    let r = raw(ACCOUNT).await;
    let s = engine.synth(&template("web-app", "rel", web_app_params())).unwrap();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let state = engine.state("rel").await.unwrap();
    let lb_arn = state.resources["app/lb"].id.clone();
    let old: BTreeSet<String> = ["app/web-1", "app/web-2"].iter().map(|p| state.resources[*p].id.clone()).collect();
    assert_eq!(registered(&r, &lb_arn).await.keys().cloned().collect::<BTreeSet<_>>(), old);

    let mut v2 = web_app_params();
    v2["app_version"] = json!("2");
    let s2 = engine.synth(&template("web-app", "rel", v2)).unwrap();
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    assert!(plan.render(false).contains("will be released"), "{}", plan.render(false));
    let before = log.calls().len();
    engine.apply(&s2, &ApplyOptions::default()).await.unwrap();
    let calls = log.calls()[before..].to_vec();

    let state = engine.state("rel").await.unwrap();
    let new: BTreeSet<String> = ["app/web-1", "app/web-2"].iter().map(|p| state.resources[*p].id.clone()).collect();
    assert!(new.is_disjoint(&old));
    assert_eq!(state.resources["app/lb"].id, lb_arn, "the same load balancer");
    assert_eq!(registered(&r, &lb_arn).await.keys().cloned().collect::<BTreeSet<_>>(), new);
    // Every old instance left only after a new one was registered and its health read, and was
    // terminated only after it was deregistered.
    let first = |pred: &dyn Fn(&str) -> bool| calls.iter().position(|c| pred(c)).unwrap_or(usize::MAX);
    let registered_new = first(&|c| c.starts_with("RegisterTargets:") && new.iter().any(|i| c.contains(i.as_str())));
    let health_read =
        calls.iter().skip(registered_new).position(|c| c == "DescribeTargetHealth").map(|p| p + registered_new);
    for o in &old {
        let dereg = first(&|c| c.starts_with("DeregisterTargets:") && c.contains(o.as_str()));
        let term = first(&|c| c.starts_with("TerminateInstances") && c.contains(o.as_str()));
        assert!(registered_new < dereg, "{o} deregistered before any new target was registered: {calls:#?}");
        assert!(health_read.is_some_and(|h| h < dereg), "{o} left before the new targets' health was read: {calls:#?}");
        assert!(dereg < term && term != usize::MAX, "{o} terminated before it was deregistered: {calls:#?}");
    }
    let inst = r.ec2.describe_instances().set_instance_ids(Some(old.iter().cloned().collect())).send().await.unwrap();
    for i in inst.reservations().iter().flat_map(|res| res.instances()) {
        assert_eq!(i.state().and_then(|s| s.name()).map(|n| n.as_str()), Some("terminated"));
    }
    let releases = &engine.state("rel").await.unwrap().releases;
    assert_eq!(releases.last().and_then(|r| r.to_version.as_deref()), Some("2"), "{releases:#?}");

    engine.destroy("rel", &ApplyOptions::default()).await.unwrap();
    assert!(nothing_left(&leftovers(&r, "rel").await));
}

/// A loopback proxy in front of moto that answers `DescribeTargetHealth` with `unhealthy` for
/// every instance outside `healthy` once it is set (what an app that fails its health check
/// looks like to an ALB); everything else passes through unchanged.
async fn unhealthy_proxy(moto: String, healthy: Arc<Mutex<Option<BTreeSet<String>>>>) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let client = reqwest::Client::new();
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (client, moto, healthy) = (client.clone(), moto.clone(), healthy.clone());
        async move {
            let url = format!("{moto}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
            let mut req = client.request(reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(), url);
            for (k, v) in &headers {
                if k != "host" && k != "content-length" {
                    req = req.header(k.as_str(), v.as_bytes());
                }
            }
            let is_health = String::from_utf8_lossy(&body).contains("Action=DescribeTargetHealth");
            let resp = req.body(body.to_vec()).send().await.unwrap();
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
            let mut out = HeaderMap::new();
            if let Some(ct) = resp.headers().get("content-type") {
                out.insert("content-type", ct.as_bytes().try_into().unwrap());
            }
            let mut text = resp.text().await.unwrap();
            if is_health {
                let Some(healthy) = healthy.lock().unwrap().clone() else { return (status, out, text) };
                text = text
                    .split("<member>")
                    .map(|m| {
                        let id = m.split("<Id>").nth(1).and_then(|s| s.split("</Id>").next()).unwrap_or("");
                        if id.starts_with("i-") && !healthy.contains(id) && m.contains("<State>healthy</State>") {
                            m.replace(
                                "<State>healthy</State>",
                                "<State>unhealthy</State><Reason>Target.FailedHealthChecks</Reason>\
                                 <Description>Health checks failed with these codes: [500]</Description>",
                            )
                        } else {
                            m.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("<member>");
            }
            (status, out, text)
        }
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_whose_new_instances_stay_unhealthy_is_rolled_back_on_moto() {
    const ACCOUNT: &str = "200000000004";
    let healthy = Arc::new(Mutex::new(None));
    let proxy = unhealthy_proxy(common_aws::endpoint(), healthy.clone()).await;
    let sdk = common_aws::sdk().await.into_builder().endpoint_url(proxy).build();
    let log = CallLog::default();
    let aws = provider_on(&sdk, ACCOUNT, &log);
    let engine = engine_on(&aws);
    let r = raw(ACCOUNT).await;

    let s = engine.synth(&template("web-app", "broken", web_app_params())).unwrap();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let state = engine.state("broken").await.unwrap();
    let lb_arn = state.resources["app/lb"].id.clone();
    let old: BTreeSet<String> = ["app/web-1", "app/web-2"].iter().map(|p| state.resources[*p].id.clone()).collect();
    *healthy.lock().unwrap() = Some(old.clone());

    let mut v2 = web_app_params();
    v2["app_version"] = json!("2");
    let s2 = engine.synth(&template("web-app", "broken", v2)).unwrap();
    let err = engine.apply(&s2, &ApplyOptions::default()).await.expect_err("a release that never turns healthy fails");
    let msg = err.to_string();
    assert!(msg.contains("unhealthy") || msg.contains("healthy"), "{msg}");

    // The old instances are still registered and running, the new ones are gone, and the state
    // still holds the old ones.
    let state = engine.state("broken").await.unwrap();
    let kept: BTreeSet<String> = ["app/web-1", "app/web-2"].iter().map(|p| state.resources[*p].id.clone()).collect();
    assert_eq!(kept, old);
    assert_eq!(registered(&r, &lb_arn).await.keys().cloned().collect::<BTreeSet<_>>(), old);
    let all = r.ec2.describe_instances().send().await.unwrap();
    for i in all.reservations().iter().flat_map(|res| res.instances()) {
        let id = i.instance_id().unwrap();
        let st = i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default();
        if old.contains(id) {
            assert_eq!(st, "running", "old instance {id}");
        } else {
            assert!(st == "terminated" || st == "shutting-down", "new instance {id} is {st}");
        }
    }
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    assert!(plan.render(false).contains("will be released"), "the release is still to do:\n{}", plan.render(false));

    engine.destroy("broken", &ApplyOptions::default()).await.unwrap();
    assert!(nothing_left(&leftovers(&r, "broken").await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_serving_input_is_refused_before_any_aws_request() {
    use konstacks_core::kinds::{
        Bucket, Certificate, DnsZone, Image, LoadBalancer, Subnet, TargetGroup, Vm, VmSize, Vpc,
    };
    use konstacks_core::model::Stack;
    // No moto needed: an endpoint nothing listens on, and the provider counts every attempt.
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let log = CallLog::default();
    let aws = provider_on(&sdk, "200000000005", &log);
    let engine = engine_on(&aws);
    // S3 refuses bucket names that start with `xn--` (the bucket's name starts with the stack's).
    let stack = Stack::new("xn--shop", Placement::region(REGION), Stage::Prod);
    stack.provider("aws");
    let edge = stack.scope("edge");
    edge.add("zone", DnsZone::new("example.com"));
    // Neither validated in a zone of the stack (none covers it) nor by hand.
    let cert = edge.add("certificate", Certificate::new(["shop.example.org"]));
    edge.add("uploads", Bucket::new());
    // A security policy that admits TLS 1.0, which the catalogue leaves out on purpose.
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = stack.add("a", Subnet::new(vpc, "10.0.1.0/24").public().zone(0));
    let b = stack.add("b", Subnet::new(vpc, "10.0.2.0/24").public().zone(1));
    let web = stack.add("web", Vm::new(Image::UbuntuLts, VmSize::Small, a));
    edge.add(
        "lb",
        LoadBalancer::public([a, b])
            .https(443, cert.id())
            .target_group(TargetGroup::new("app", 8080).vm(web))
            .security_policy("ELBSecurityPolicy-2016-08"),
    );
    // Application load balancers terminate TLS: passing it through is refused.
    let tcp = konstacks_core::kinds::TargetHealthCheck::tcp();
    edge.add(
        "relay",
        LoadBalancer::public([a, b])
            .tls_passthrough(443)
            .target_group(TargetGroup::new("app", 8443).vm(web).health_check(tcp)),
    );
    let err = engine.synth(&stack).expect_err("four problems");
    let msg = format!("{err:?}");
    for needle in [
        "certificate-unvalidated",
        "shop.example.org",
        "invalid-bucket-name",
        "xn--",
        "unknown-security-policy",
        "ELBSecurityPolicy-2016-08",
        "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        "tls-passthrough-unsupported",
    ] {
        assert!(msg.contains(needle), "every problem at once, `{needle}` missing: {msg}");
    }
    assert_eq!(aws.api_calls().total, 0, "{:?}", aws.api_calls());
    assert!(log.calls().is_empty());
}
