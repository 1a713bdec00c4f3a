//! The GCP load balancer beyond the core suite, against the fake: an HTTPS listener with a
//! certificate and TLS 1.3 beside an HTTP listener that redirects, routes for a host and for any
//! host, VMs in two zones, releases (register and deregister targets), a certificate and a VM
//! that cannot go while they are in use, and an update that drops HTTPS again.
//! Run with: bash scripts/test-gcp.sh (or KONSTACKS_GCP_DISCOVERY_DIR=... cargo test --features
//! gcp --test gcp_load_balancer).
#![cfg(feature = "gcp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/clock.rs"]
mod clock;
mod common_gcp;
#[path = "support/gcp.rs"]
mod gcp;

use clock::VirtualClock;
use gcp::{assert_fake_empty, backend, cx, exclusive, fake, REGION};
use konstacks_core::error::ErrorKind;
use konstacks_core::kinds::{
    HealthCheckSpec, HealthProtocol, LbScheme, ListenerProtocol, ListenerSpec, LoadBalancer, LoadBalancerObserved,
    LoadBalancerSpec, RouteSpec, TargetGroupSpec, TlsPolicy,
};
use konstacks_core::model::{Subnet, Vm, Vpc};
use konstacks_core::provider::{Api, Region, TargetHealthState};
use konstacks_core::spec::{Selector, SubnetSpec, Tags, VmSpec, VpcSpec, TAG_STACK};
use serde_json::{json, Value};

const STACK: &str = "lbx";

async fn raw(method: &str, rest: &str, body: Option<Value>) -> (u16, Value) {
    let f = fake();
    let url = format!("{}/compute/v1/projects/{}/{rest}", f.base_url(), f.project());
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn health(protocol: HealthProtocol, path: Option<&str>, port: Option<u16>) -> HealthCheckSpec {
    HealthCheckSpec {
        protocol,
        port,
        path: path.map(str::to_string),
        interval_s: 10,
        timeout_s: 5,
        healthy_threshold: 2,
        unhealthy_threshold: 4,
        expected_status: path.map(|_| "200".to_string()),
    }
}

fn group(name: &str, vm_ids: Vec<String>, health: HealthCheckSpec) -> TargetGroupSpec {
    TargetGroupSpec {
        name: name.into(),
        port: 8080,
        vm_ids,
        health_check: health,
        deregistration_delay_s: 45,
        release: Default::default(),
    }
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// The read-back equals the spec where the contract compares it.
fn assert_same(want: &LoadBalancerSpec, got: &LoadBalancerObserved) {
    assert_eq!(sorted(&want.listeners), sorted(&got.listeners));
    let groups = |v: &[TargetGroupSpec]| {
        sorted(&v.iter().map(|g| TargetGroupSpec { vm_ids: sorted(&g.vm_ids), ..g.clone() }).collect::<Vec<_>>())
    };
    assert_eq!(groups(&want.target_groups), groups(&got.target_groups));
    assert_eq!(sorted(&want.routes), sorted(&got.routes));
    assert_eq!(want.default_target_group, got.default_target_group);
    assert_eq!(want.tls_policy, got.tls_policy);
    assert_eq!(want.security_policy, got.security_policy);
    assert_eq!(sorted(&want.subnet_ids), sorted(&got.subnet_ids));
    assert_eq!(want.tags, got.tags);
}

/// A VPC with a public subnet in each of two zones and a VM in each.
async fn network(
    b: &std::sync::Arc<konstacks_providers::gcp::Gcp>,
    cx: &konstacks_core::clock::OpContext,
    tags: &Tags,
) -> (String, Vec<String>, Vec<String>) {
    let cat = b.catalog().clone();
    let vpc =
        VpcSpec { name: "lbx-net".into(), region: REGION.into(), cidr: "10.70.0.0/16".into(), tags: tags.clone() };
    let vpc = Api::<Vpc>::create(&**b, cx, &vpc).await.unwrap();
    let mut subnets = Vec::new();
    let mut vms = Vec::new();
    for zone in 0..2u8 {
        let spec = SubnetSpec {
            name: format!("lbx-sub{zone}"),
            region: REGION.into(),
            vpc_id: vpc.id.clone(),
            cidr: format!("10.70.{zone}.0/24"),
            zone,
            public: true,
            tags: tags.clone(),
        };
        let subnet = Api::<Subnet>::create(&**b, cx, &spec).await.unwrap().id;
        let vm = VmSpec {
            name: format!("lbx-web{zone}"),
            region: REGION.into(),
            image: cat.images[0].slug.clone(),
            size: cat.vm_sizes[0].slug.clone(),
            subnet_id: subnet.clone(),
            firewall_ids: Vec::new(),
            user_data: None,
            env: Default::default(),
            ssh_keys: Vec::new(),
            assign_public_ip: false,
            app: None,
            tags: tags.clone(),
        };
        vms.push(Api::<Vm>::create(&**b, cx, &vm).await.unwrap().id);
        subnets.push(subnet);
    }
    (vpc.id, subnets, vms)
}

async fn drop_network(
    b: &std::sync::Arc<konstacks_providers::gcp::Gcp>,
    cx: &konstacks_core::clock::OpContext,
    vpc: &str,
    subnets: &[String],
) {
    for s in subnets {
        Api::<Subnet>::delete(&**b, cx, s).await.unwrap();
    }
    Api::<Vpc>::delete(&**b, cx, vpc).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_redirects_routes_zones_and_releases() {
    let _serial = exclusive().await;
    let b = backend().await;
    let clock = VirtualClock::shared();
    let cx = cx(&clock, STACK);
    fake().clear_requests();
    let tags = Tags::from([(TAG_STACK.to_string(), STACK.to_string())]);
    let (vpc, subnets, vms) = network(&b, &cx, &tags).await;
    assert_ne!(vms[0].split("/zones/").nth(1), vms[1].split("/zones/").nth(1), "the VMs share a zone");
    let body = json!({"name": "lbx-cert", "type": "MANAGED", "managed": {"domains": ["shop.example.com"]}});
    assert_eq!(raw("POST", "global/sslCertificates", Some(body)).await.0, 200);

    let spec = LoadBalancerSpec {
        name: "lbx-web".into(),
        region: REGION.into(),
        scheme: LbScheme::Public,
        subnet_ids: subnets.clone(),
        firewall_ids: Vec::new(),
        listeners: vec![
            ListenerSpec {
                port: 80,
                protocol: ListenerProtocol::Http,
                certificate_ids: Vec::new(),
                redirect_to_port: Some(443),
            },
            ListenerSpec {
                port: 443,
                protocol: ListenerProtocol::Https,
                certificate_ids: vec!["lbx-cert".into()],
                redirect_to_port: None,
            },
        ],
        target_groups: vec![
            group("web", vec![vms[0].clone()], health(HealthProtocol::Tcp, None, Some(9000))),
            group("api", vec![vms[1].clone()], health(HealthProtocol::Https, Some("/healthz"), None)),
        ],
        routes: vec![
            RouteSpec {
                priority: 1,
                host: Some("shop.example.com".into()),
                path_prefix: Some("/api".into()),
                target_group: "api".into(),
            },
            RouteSpec { priority: 2, host: None, path_prefix: Some("/v2".into()), target_group: "api".into() },
        ],
        default_target_group: "web".into(),
        tls_policy: TlsPolicy::Tls13,
        security_policy: None,
        assumed_gb_processed_per_month: 10.0,
        tags: tags.clone(),
    };
    let created = Api::<LoadBalancer>::create(&*b, &cx, &spec).await.unwrap();
    assert_same(&spec, &created);
    assert_eq!(created.url, format!("https://{}", created.dns_name));
    assert_eq!(created.ip.as_deref(), Some(created.dns_name.as_str()));
    let (_, policy) = raw("GET", "global/sslPolicies/lbx-web", None).await;
    assert_eq!((policy["minTlsVersion"].as_str(), policy["profile"].as_str()), (Some("TLS_1_3"), Some("RESTRICTED")));
    let (_, redirect) = raw("GET", "global/urlMaps/lbx-web-redirect", None).await;
    assert_eq!(redirect["defaultUrlRedirect"]["httpsRedirect"], json!(true));
    let listed = Api::<LoadBalancer>::read_many(&*b, &cx, &Selector::Stack(STACK.into())).await.unwrap();
    assert_eq!(listed.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), vec![created.id.as_str()]);

    // In use: the certificate (by the HTTPS proxy) and the VMs (targets).
    let (status, e) = raw("DELETE", "global/sslCertificates/lbx-cert", None).await;
    assert_eq!(status, 400, "{e}");
    let e = Api::<Vm>::delete(&*b, &cx, &vms[1]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");

    // A release: the second VM joins `web` (a new zone for it), the first leaves.
    Api::<LoadBalancer>::register_targets(&*b, &cx, &created.id, "web", &[vms[1].clone()]).await.unwrap();
    let states = Api::<LoadBalancer>::target_health(&*b, &cx, &created.id).await.unwrap();
    let web: Vec<_> = states.iter().filter(|t| t.group == "web").collect();
    assert_eq!(web.len(), 2, "{states:?}");
    assert!(states.iter().all(|t| t.state == TargetHealthState::Healthy), "{states:?}");
    Api::<LoadBalancer>::deregister_targets(&*b, &cx, &created.id, "web", &[vms[0].clone()]).await.unwrap();
    let got = Api::<LoadBalancer>::read_many(&*b, &cx, &Selector::Ids(vec![created.id.clone()])).await.unwrap();
    let web = got[0].target_groups.iter().find(|g| g.name == "web").unwrap();
    assert_eq!(web.vm_ids, vec![vms[1].clone()]);
    // The first VM is no target any more: it may go.
    Api::<Vm>::delete(&*b, &cx, &vms[0]).await.unwrap();

    // Drop HTTPS and the redirect; a named security policy; one group.
    let mut upd = spec.clone();
    upd.listeners = vec![ListenerSpec {
        port: 8080,
        protocol: ListenerProtocol::Http,
        certificate_ids: Vec::new(),
        redirect_to_port: None,
    }];
    upd.target_groups = vec![group("api", vec![vms[1].clone()], health(HealthProtocol::Http, Some("/"), None))];
    upd.routes = vec![RouteSpec {
        priority: 1,
        host: Some("*.example.com".into()),
        path_prefix: None,
        target_group: "api".into(),
    }];
    upd.default_target_group = "api".into();
    upd.tls_policy = TlsPolicy::Tls12;
    upd.security_policy = Some("gcp-restricted-tls12".into());
    let updated = Api::<LoadBalancer>::update(&*b, &cx, &created.id, &upd).await.unwrap();
    assert_same(&upd, &updated);
    assert_eq!(updated.url, format!("http://{}:8080", updated.dns_name));
    assert_eq!(updated.dns_name, created.dns_name, "the address changed");
    for gone in
        ["global/sslPolicies/lbx-web", "global/urlMaps/lbx-web-redirect", "global/backendServices/lbx-web-g-web"]
    {
        assert_eq!(raw("GET", gone, None).await.0, 404, "{gone} is left");
    }
    // The certificate is free again.
    assert_eq!(raw("DELETE", "global/sslCertificates/lbx-cert", None).await.0, 200);

    Api::<LoadBalancer>::delete(&*b, &cx, &created.id).await.unwrap();
    Api::<LoadBalancer>::delete(&*b, &cx, &created.id).await.unwrap();
    Api::<Vm>::delete(&*b, &cx, &vms[1]).await.unwrap();
    drop_network(&b, &cx, &vpc, &subnets).await;
    assert_fake_empty();
    fake().assert_no_violations();
}

/// A create whose forwarding rule fails (quota) takes down every piece it made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_leaves_nothing() {
    let _serial = exclusive().await;
    let b = backend().await;
    let clock = VirtualClock::shared();
    let cx = cx(&clock, STACK);
    let tags = Tags::from([(TAG_STACK.to_string(), STACK.to_string())]);
    let (vpc, subnets, vms) = network(&b, &cx, &tags).await;
    let spec = LoadBalancerSpec {
        name: "lbx-fail".into(),
        region: REGION.into(),
        scheme: LbScheme::Public,
        subnet_ids: subnets.clone(),
        firewall_ids: Vec::new(),
        listeners: vec![ListenerSpec {
            port: 80,
            protocol: ListenerProtocol::Http,
            certificate_ids: Vec::new(),
            redirect_to_port: None,
        }],
        target_groups: vec![group("web", vms.clone(), health(HealthProtocol::Http, Some("/"), None))],
        routes: Vec::new(),
        default_target_group: "web".into(),
        tls_policy: TlsPolicy::Tls12,
        security_policy: None,
        assumed_gb_processed_per_month: 0.0,
        tags: tags.clone(),
    };
    fake().fail_operation_next(
        "compute.globalForwardingRules.insert",
        "QUOTA_EXCEEDED",
        "Quota 'FORWARDING_RULES' exceeded.",
    );
    let e = Api::<LoadBalancer>::create(&*b, &cx, &spec).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
    assert_eq!(fake().inventory().lb_parts, 0, "pieces of the failed create are left");
    assert!(Api::<LoadBalancer>::read_many(&*b, &cx, &Selector::Stack(STACK.into())).await.unwrap().is_empty());
    for vm in &vms {
        Api::<Vm>::delete(&*b, &cx, vm).await.unwrap();
    }
    drop_network(&b, &cx, &vpc, &subnets).await;
    assert_fake_empty();
    fake().assert_no_violations();
}

/// A URL map's HTTPS redirect keeps no port: a redirect to HTTPS anywhere but 443 is refused
/// before any request, rather than recorded and served wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_https_off_port_443_is_refused_before_any_request() {
    let _serial = exclusive().await;
    let b = backend().await;
    let clock = VirtualClock::shared();
    let cx = cx(&clock, STACK);
    fake().clear_requests();
    let listener = |port, protocol, certs: &[&str], redirect| ListenerSpec {
        port,
        protocol,
        certificate_ids: certs.iter().map(|c| c.to_string()).collect(),
        redirect_to_port: redirect,
    };
    let spec = LoadBalancerSpec {
        name: "lbx-odd".into(),
        region: REGION.into(),
        scheme: LbScheme::Public,
        subnet_ids: vec!["projects/konstacks-test/regions/europe-west1/subnetworks/lbx-sub0".into()],
        firewall_ids: Vec::new(),
        listeners: vec![
            listener(80, ListenerProtocol::Http, &[], Some(8443)),
            listener(8443, ListenerProtocol::Https, &["lbx-cert"], None),
        ],
        target_groups: vec![group("web", vec![], health(HealthProtocol::Tcp, None, None))],
        routes: Vec::new(),
        default_target_group: "web".into(),
        tls_policy: TlsPolicy::Tls12,
        security_policy: None,
        assumed_gb_processed_per_month: 0.0,
        tags: Tags::from([(TAG_STACK.to_string(), STACK.to_string())]),
    };
    let e = Api::<LoadBalancer>::create(&*b, &cx, &spec).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSpec, "{e}");
    assert!(e.to_string().contains("port 443 only"), "{e}");
    assert!(fake().requests().is_empty(), "requests were sent: {:?}", fake().requests());
}

/// An address of the load balancer's name that another stack (or someone by hand) reserved is
/// not adopted: the create fails with `already_exists` and the address is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_of_another_stack_is_never_adopted() {
    let _serial = exclusive().await;
    let b = backend().await;
    let clock = VirtualClock::shared();
    let cx = cx(&clock, STACK);
    let body = json!({"name": "lbx-taken", "labels": {"konstacks_stack": "someone-else"}});
    assert_eq!(raw("POST", "global/addresses", Some(body)).await.0, 200);
    let spec = LoadBalancerSpec {
        name: "lbx-taken".into(),
        region: REGION.into(),
        scheme: LbScheme::Public,
        subnet_ids: vec!["projects/konstacks-test/regions/europe-west1/subnetworks/lbx-sub0".into()],
        firewall_ids: Vec::new(),
        listeners: vec![ListenerSpec {
            port: 80,
            protocol: ListenerProtocol::Http,
            certificate_ids: Vec::new(),
            redirect_to_port: None,
        }],
        target_groups: vec![group("web", vec![], health(HealthProtocol::Tcp, None, None))],
        routes: Vec::new(),
        default_target_group: "web".into(),
        tls_policy: TlsPolicy::Tls12,
        security_policy: None,
        assumed_gb_processed_per_month: 0.0,
        tags: Tags::from([(TAG_STACK.to_string(), STACK.to_string())]),
    };
    let e = Api::<LoadBalancer>::create(&*b, &cx, &spec).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let (status, address) = raw("GET", "global/addresses/lbx-taken", None).await;
    assert_eq!(status, 200, "the other stack's address was deleted");
    assert_eq!(address["labels"]["konstacks_stack"], json!("someone-else"), "{address}");
    assert_eq!(raw("DELETE", "global/addresses/lbx-taken", None).await.0, 200);
    assert_fake_empty();
    fake().assert_no_violations();
}
