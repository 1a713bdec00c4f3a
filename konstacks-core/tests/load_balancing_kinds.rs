//! The `LoadBalancer` kind end to end on the simulated cloud, through the engine: apply, an
//! empty re-plan, in-place updates of listeners, rules and targets, a replacement on a
//! force-new field, a target VM replaced under a live load balancer, target health, the
//! simulated API's own checks (references, immutable fields, VPCs, zones), destroy leaving
//! nothing, and bad input refused with one clear diagnostic and no cloud call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::json;

use konstacks_core::clock::{OpContext, TokioClock};
use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::error::{Error, ErrorKind};
use konstacks_core::model::*;
use konstacks_core::plan::Action;
use konstacks_core::provider::{KindApis, Provider};
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::spec::{LoadBalancerObserved, LoadBalancerSpec, Selector, VmObserved};
use konstacks_core::state::MemoryBackend;

/// What varies between the versions of the stack.
#[derive(Clone)]
struct Shape {
    public: bool,
    both_vms: bool,
    api_route: bool,
    tls: TlsPolicy,
    security_policy: Option<&'static str>,
    image: Image,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            public: true,
            both_vms: false,
            api_route: false,
            tls: TlsPolicy::Tls12,
            security_policy: None,
            image: Image::UbuntuLts,
        }
    }
}

/// A network of two public subnets in two zones, a firewall, two VMs and a load balancer with
/// HTTP (redirected) and HTTPS listeners sending traffic to the VMs.
fn stack(shape: &Shape) -> Stack {
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = net.add("a", Subnet::new(vpc, "10.0.1.0/24").public().zone(0));
    let b = net.add("b", Subnet::new(vpc, "10.0.2.0/24").public().zone(1));
    let lb_fw = net.add(
        "lb-fw",
        Firewall::new(vpc).allow(Ingress::tcp(80).from_anywhere()).allow(Ingress::tcp(443).from_anywhere()),
    );
    let web = stack.add("web", Vm::new(shape.image.clone(), VmSize::Small, a));
    let api = stack.add("api", Vm::new(Image::UbuntuLts, VmSize::Small, b));
    let cert = stack.add("cert", Certificate::new(["shop.example.com"]).manual_validation());
    let targets = if shape.both_vms { vec![web, api] } else { vec![web] };
    let mut lb = if shape.public { LoadBalancer::public([a, b]) } else { LoadBalancer::internal([a, b]) };
    lb = lb
        .firewall(lb_fw)
        .http(80)
        .https(443, cert.id())
        .target_group(TargetGroup::new("app", 8080).vms(targets).health_check(TargetHealthCheck::http("/health")))
        .default_to("app")
        .tls_policy(shape.tls);
    if let Some(name) = shape.security_policy {
        lb = lb.security_policy(name);
    }
    if shape.api_route {
        lb = lb
            .target_group(TargetGroup::new("api", 9000).vm(api).deregistration_delay_s(5))
            .route(Route::host("shop.example.com").path_prefix("/api").to("api"));
    }
    let lb = stack.add("lb", lb);
    stack.export("url", lb.url());
    stack.export("dns", lb.dns_name());
    stack.export("ip", lb.ip());
    stack
}

fn engine_on(sim: &Arc<SimCloud>) -> Engine {
    Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider()).with_sealer(None)
}

fn the_lb(sim: &SimCloud) -> LoadBalancerObserved {
    let mut lbs: Vec<LoadBalancerObserved> =
        sim.resources_of_stack("shop").into_iter().filter_map(|r| r.get::<LoadBalancer>().cloned()).collect();
    assert_eq!(lbs.len(), 1, "{lbs:?}");
    lbs.remove(0)
}

fn vm_named(sim: &SimCloud, suffix: &str) -> VmObserved {
    sim.resources_of_stack("shop")
        .into_iter()
        .filter_map(|r| r.get::<Vm>().cloned())
        .find(|v| v.name.starts_with(&format!("shop-{suffix}")))
        .unwrap()
}

fn action_of(plan: &konstacks_core::plan::Plan, path: &str) -> Action {
    plan.changes.iter().find(|c| c.path == path).map(|c| c.action).unwrap_or(Action::NoOp)
}

fn cx() -> OpContext {
    OpContext::new(TokioClock::shared(), "shop")
}

async fn read_lb(sim: &Arc<SimCloud>, id: &str) -> LoadBalancerObserved {
    let found = sim.api::<LoadBalancer>().read_many(&cx(), &Selector::Ids(vec![id.into()])).await.unwrap();
    found.into_iter().next().unwrap()
}

#[tokio::test(start_paused = true)]
async fn load_balancer_lifecycle_on_the_simulated_cloud() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine_on(&sim);

    let s = engine.synth(&stack(&Shape::default())).unwrap();
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.summary.create, 8, "{}", plan.render(false));
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(report.created.contains(&"lb".to_string()), "{report:?}");
    let lb = the_lb(&sim);
    assert_eq!(
        lb.dns_name,
        format!("shop-lb-{}.eu-central.lb.sim.internal", u64::from_str_radix(&lb.id[3..], 16).unwrap())
    );
    assert_eq!(lb.url, format!("https://{}", lb.dns_name));
    assert_eq!(lb.ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(lb.listeners.iter().find(|l| l.port == 80).unwrap().redirect_to_port, Some(443));
    assert_eq!(report.outputs["url"], json!(lb.url));
    assert_eq!(report.outputs["ip"], json!("192.0.2.1"));
    let web = vm_named(&sim, "web");
    assert_eq!(read_lb(&sim, &lb.id).await.targets.len(), 1);
    assert_eq!(read_lb(&sim, &lb.id).await.targets[0].vm_id, web.id);
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // More targets, a second group with a rule, TLS 1.3 by a named policy: an update in place.
    let shape = Shape {
        both_vms: true,
        api_route: true,
        tls: TlsPolicy::Tls13,
        security_policy: Some("sim-modern-2026"),
        ..Shape::default()
    };
    let s2 = engine.synth(&stack(&shape)).unwrap();
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    assert_eq!(action_of(&plan, "lb"), Action::Update, "{}", plan.render(false));
    assert_eq!(plan.actionable().count(), 1, "{}", plan.render(false));
    engine.apply(&s2, &ApplyOptions::default()).await.unwrap();
    let lb2 = the_lb(&sim);
    assert_eq!(lb2.id, lb.id, "updated in place");
    assert_eq!(lb2.tls_policy, TlsPolicy::Tls13);
    assert_eq!(lb2.security_policy.as_deref(), Some("sim-modern-2026"));
    assert_eq!(lb2.target_groups.len(), 2);
    assert_eq!(lb2.routes.len(), 1);
    assert_eq!(read_lb(&sim, &lb.id).await.targets.len(), 3);
    assert!(engine.plan(&s2, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // Internal instead of public: a force-new field, so a replacement (created first).
    let s3 = engine.synth(&stack(&Shape { public: false, ..shape })).unwrap();
    let plan = engine.plan(&s3, &PlanOptions::default()).await.unwrap();
    let change = plan.changes.iter().find(|c| c.path == "lb").unwrap();
    assert_eq!(change.action, Action::Replace, "{}", plan.render(false));
    assert!(!change.data_loss, "a load balancer holds no data");
    let report = engine.apply(&s3, &ApplyOptions::default()).await.unwrap();
    assert!(report.replaced.contains(&"lb".to_string()), "{report:?}");
    let lb3 = the_lb(&sim);
    assert_ne!(lb3.id, lb.id);
    assert_eq!((lb3.name.as_str(), lb3.ip.as_deref()), ("shop-lb-1", None));
    assert!(engine.plan(&s3, &PlanOptions::refreshing()).await.unwrap().is_empty());

    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(sim.resources_of_stack("shop").is_empty(), "{:?}", sim.resources_of_stack("shop"));
}

/// A target VM replaced by a force-new change: the new VM is created, the load balancer is
/// pointed at it, and only then is the old one deleted (the cloud refuses to delete a target).
#[tokio::test(start_paused = true)]
async fn a_target_vm_is_replaced_under_a_live_load_balancer() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine_on(&sim);
    let s = engine.synth(&stack(&Shape::default())).unwrap();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let old = vm_named(&sim, "web");

    let s2 = engine.synth(&stack(&Shape { image: Image::Debian12, ..Shape::default() })).unwrap();
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    assert_eq!(action_of(&plan, "web"), Action::Replace, "{}", plan.render(false));
    let report = engine.apply(&s2, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    let new = vm_named(&sim, "web");
    assert_ne!(new.id, old.id);
    let lb = the_lb(&sim);
    assert_eq!(lb.target_groups[0].vm_ids, std::slice::from_ref(&new.id));
    assert!(sim.resources().iter().all(|r| r.id() != old.id), "the old VM is gone");
    assert!(engine.plan(&s2, &PlanOptions::refreshing()).await.unwrap().is_empty());
    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(sim.resources_of_stack("shop").is_empty());
}

#[tokio::test(start_paused = true)]
async fn target_health_follows_the_vms_status() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    sim.set_boot_status("debian-12", "impaired");
    let engine = engine_on(&sim);
    let shape = Shape { both_vms: true, image: Image::Debian12, ..Shape::default() };
    engine.apply(&engine.synth(&stack(&shape)).unwrap(), &ApplyOptions::default()).await.unwrap();
    let (lb, web, api) = (the_lb(&sim), vm_named(&sim, "web"), vm_named(&sim, "api"));
    let states = konstacks_core::kinds::load_balancer::target_states(&read_lb(&sim, &lb.id).await);
    assert_eq!(states[&("app".to_string(), web.id.clone())], "unhealthy", "an impaired VM fails its checks");
    assert_eq!(states[&("app".to_string(), api.id.clone())], "healthy");

    // Health is read live: the VM recovering shows at the next read, with no update.
    sim.tamper(&web.id, |r| r.get_mut::<Vm>().unwrap().status = "running".into());
    let states = konstacks_core::kinds::load_balancer::target_states(&read_lb(&sim, &lb.id).await);
    assert!(states.values().all(|s| s == "healthy"), "{states:?}");
    sim.remove_behind_back(&api.id);
    let states = konstacks_core::kinds::load_balancer::target_states(&read_lb(&sim, &lb.id).await);
    assert_eq!(states[&("app".to_string(), api.id.clone())], "unavailable");
}

/// The simulated API checks what a real one does, whatever validation let through.
#[tokio::test(start_paused = true)]
async fn the_simulated_api_enforces_references_zones_vpcs_and_immutable_fields() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine_on(&sim);
    engine.apply(&engine.synth(&stack(&Shape::default())).unwrap(), &ApplyOptions::default()).await.unwrap();
    let lb = the_lb(&sim);
    let web = vm_named(&sim, "web");
    let cx = cx();
    let p: &SimCloud = &sim;

    // Deleting what the load balancer uses is a dependency violation.
    for (kind, id) in [
        (Vm::KIND, web.id.clone()),
        (Firewall::KIND, lb.firewall_ids[0].clone()),
        (Subnet::KIND, lb.subnet_ids[1].clone()),
    ] {
        let e = sim.provider().delete(&cx, kind, &id).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        assert!(e.to_string().contains(&lb.id), "{e}");
    }

    let spec = |f: &dyn Fn(&mut LoadBalancerSpec)| {
        let mut s = LoadBalancerSpec {
            name: "other".into(),
            region: lb.region.clone(),
            scheme: LbScheme::Public,
            subnet_ids: lb.subnet_ids.clone(),
            firewall_ids: lb.firewall_ids.clone(),
            listeners: lb.listeners.clone(),
            target_groups: lb.target_groups.clone(),
            routes: Vec::new(),
            default_target_group: "app".into(),
            tls_policy: TlsPolicy::Tls12,
            security_policy: None,
            assumed_gb_processed_per_month: 100.0,
            tags: lb.tags.clone(),
        };
        f(&mut s);
        s
    };
    let refused = [
        ("a name taken in the region", spec(&|s| s.name = lb.name.clone()), ErrorKind::AlreadyExists),
        ("one zone for a public one", spec(&|s| s.subnet_ids.truncate(1)), ErrorKind::InvalidSpec),
        ("an unknown target", spec(&|s| s.target_groups[0].vm_ids = vec!["vm-0000ffff".into()]), ErrorKind::NotFound),
        ("a rule to no group", spec(&|s| s.default_target_group = "nowhere".into()), ErrorKind::InvalidSpec),
        (
            "HTTPS without certificate",
            spec(&|s| s.listeners.iter_mut().for_each(|l| l.certificate_ids.clear())),
            ErrorKind::InvalidSpec,
        ),
        ("an unknown region", spec(&|s| s.region = "mars-1".into()), ErrorKind::InvalidSpec),
        ("a health check too eager", spec(&|s| s.target_groups[0].health_check.interval_s = 1), ErrorKind::InvalidSpec),
    ];
    for (what, s, kind) in refused {
        let e = p.api::<LoadBalancer>().create(&cx, &s).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{what}: {e}");
    }
    // A target in another VPC.
    let other_vpc = p
        .api::<Vpc>()
        .create(
            &cx,
            &konstacks_core::spec::VpcSpec {
                name: "far".into(),
                region: lb.region.clone(),
                cidr: "10.9.0.0/16".into(),
                tags: Default::default(),
            },
        )
        .await
        .unwrap();
    let far_subnet = p
        .api::<Subnet>()
        .create(
            &cx,
            &konstacks_core::spec::SubnetSpec {
                name: "far".into(),
                region: lb.region.clone(),
                vpc_id: other_vpc.id.clone(),
                cidr: "10.9.1.0/24".into(),
                zone: 0,
                public: false,
                tags: Default::default(),
            },
        )
        .await
        .unwrap();
    let far_vm = p
        .api::<Vm>()
        .create(
            &cx,
            &konstacks_core::spec::VmSpec {
                name: "far".into(),
                region: lb.region.clone(),
                image: "ubuntu-lts".into(),
                size: "small".into(),
                subnet_id: far_subnet.id.clone(),
                firewall_ids: Vec::new(),
                user_data: None,
                env: Default::default(),
                ssh_keys: Vec::new(),
                assign_public_ip: false,
                app: None,
                tags: Default::default(),
            },
        )
        .await
        .unwrap();
    let e = p
        .api::<LoadBalancer>()
        .create(&cx, &spec(&|s| s.target_groups[0].vm_ids = vec![far_vm.id.clone()]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSpec, "{e}");
    assert!(e.to_string().contains("not in the load balancer's VPC"), "{e}");

    // Scheme and name cannot change in place; listeners can.
    let mut same = spec(&|s| s.name = lb.name.clone());
    same.scheme = LbScheme::Internal;
    let e = p.api::<LoadBalancer>().update(&cx, &lb.id, &same).await.unwrap_err();
    assert!(e.to_string().contains("field `scheme` cannot be changed in place"), "{e}");
    same.scheme = LbScheme::Public;
    same.listeners.retain(|l| l.port == 443);
    let updated = p.api::<LoadBalancer>().update(&cx, &lb.id, &same).await.unwrap();
    assert_eq!(updated.listeners.len(), 1, "listeners are replaced wholesale");
    assert_eq!(updated.dns_name, lb.dns_name);
}

#[test]
fn a_provider_without_the_kind_refuses_it_before_any_call() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let partial = Provider::builder("nolb", Arc::clone(&sim) as _)
        .kind::<Vpc>(Arc::clone(&sim) as _)
        .kind::<Subnet>(Arc::clone(&sim) as _)
        .kind::<Firewall>(Arc::clone(&sim) as _)
        .kind::<Vm>(Arc::clone(&sim) as _)
        .build();
    let mut cat = partial.catalog().clone();
    cat.provider = "nolb".into();
    let s = stack(&Shape::default());
    s.provider("nolb");
    let Err(Error::Invalid(d)) = s.synth(&[&cat, &SimCloud::catalog()]) else { panic!("must be refused") };
    let refused: Vec<_> = d.iter().filter(|d| d.code == "kind-not-offered").collect();
    let paths: Vec<&str> = refused.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["shop/cert", "shop/lb"], "{d}");
    assert_eq!(sim.calls(), 0);
}

/// One bad load balancer per case, on an otherwise valid network: (case, code, words the
/// message must hold, the load balancer).
fn bad_cases(net: &Net) -> Vec<(&'static str, &'static str, &'static str, LoadBalancer)> {
    let ok = || LoadBalancer::public([net.a, net.b]).http(80).target_group(TargetGroup::new("app", 8080).vm(net.web));
    vec![
        (
            "no listener",
            "missing-listener",
            "at least one listener",
            LoadBalancer::public([net.a, net.b]).target_group(TargetGroup::new("app", 80)),
        ),
        ("two listeners on one port", "listener-port-in-use", "port 80", ok().http_without_redirect(80)),
        ("port 0", "port-out-of-range", "port 0", ok().http(0)),
        (
            "HTTPS without certificate",
            "missing-certificate",
            "port 443",
            ok().https_certificates(443, Vec::<CertificateId>::new()),
        ),
        (
            "a rule to no group",
            "unknown-target-group",
            "`nowhere`",
            ok().route(Route::host("a.example.com").to("nowhere")),
        ),
        ("a default that is no group", "unknown-target-group", "`web`", ok().default_to("web")),
        (
            "the same host twice",
            "overlapping-rules",
            "rules #0 (host `a.example.com`, path `/x`) and #1 (host `a.example.com`, path `/x`)",
            ok().route(Route::host("a.example.com").path_prefix("/x").to("app"))
                .route(Route::host("a.example.com").path_prefix("/x").to("app")),
        ),
        ("a bad host", "invalid-host", "`shop_1.example.com`", ok().route(Route::host("shop_1.example.com").to("app"))),
        ("a wildcard too wide", "invalid-host", "`*.com`", ok().route(Route::host("*.com").to("app"))),
        ("a path without slash", "invalid-path", "`api`", ok().route(Route::any_host().path_prefix("api").to("app"))),
        (
            "a timeout as long as the interval",
            "invalid-health-check",
            "timeout 10 s",
            LoadBalancer::public([net.a, net.b])
                .http(80)
                .target_group(TargetGroup::new("app", 80).health_check(TargetHealthCheck::tcp().timing(10, 10))),
        ),
        (
            "a health path without slash",
            "invalid-health-check",
            "path `health`",
            LoadBalancer::public([net.a, net.b])
                .http(80)
                .target_group(TargetGroup::new("app", 80).health_check(TargetHealthCheck::http("health"))),
        ),
        (
            "a public one in one zone",
            "public-lb-needs-two-zones",
            "two zones",
            LoadBalancer::public([net.a]).http(80).target_group(TargetGroup::new("app", 80)),
        ),
        (
            "a target of another VPC",
            "vpc-mismatch",
            "`far-vm`",
            LoadBalancer::public([net.a, net.b]).http(80).target_group(TargetGroup::new("app", 80).vm(net.far_vm)),
        ),
        ("a firewall of another VPC", "vpc-mismatch", "`far-fw`", ok().firewall(net.far_fw)),
        (
            "two groups and no default",
            "missing-default-target-group",
            "default",
            ok().target_group(TargetGroup::new("api", 9000)),
        ),
        ("an impossible assumption", "invalid-assumption", "-5 GB", ok().assume_gb_processed_per_month(-5.0)),
    ]
}

struct Net {
    a: Ref<Subnet>,
    b: Ref<Subnet>,
    web: Ref<Vm>,
    far_vm: Ref<Vm>,
    far_fw: Ref<Firewall>,
}

fn bad_stack(case: usize) -> Option<(Stack, &'static str, &'static str, &'static str)> {
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = stack.add("a", Subnet::new(vpc, "10.0.1.0/24").public().zone(0));
    let b = stack.add("b", Subnet::new(vpc, "10.0.2.0/24").public().zone(1));
    let web = stack.add("web", Vm::new(Image::UbuntuLts, VmSize::Small, a));
    let far = stack.add("far", Vpc::new("10.1.0.0/16"));
    let far_subnet = stack.add("far-subnet", Subnet::new(far, "10.1.1.0/24"));
    let far_vm = stack.add("far-vm", Vm::new(Image::UbuntuLts, VmSize::Small, far_subnet));
    let far_fw = stack.add("far-fw", Firewall::new(far));
    let mut cases = bad_cases(&Net { a, b, web, far_vm, far_fw });
    if case >= cases.len() {
        return None;
    }
    let (name, code, words, lb) = cases.swap_remove(case);
    stack.add("lb", lb);
    Some((stack, name, code, words))
}

#[tokio::test(start_paused = true)]
async fn bad_load_balancers_get_one_clear_diagnostic_and_no_cloud_call() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine_on(&sim);
    let mut failures = Vec::new();
    let mut case = 0;
    while let Some((stack, name, code, words)) = bad_stack(case) {
        case += 1;
        match engine.synth(&stack) {
            Err(Error::Invalid(d)) => {
                let codes: Vec<&str> = d.iter().map(|d| d.code).collect();
                if codes != [code] {
                    failures.push(format!("{name}: expected only `{code}`, got:\n{d}"));
                } else if !d.iter().all(|d| d.path == "shop/lb" && d.message.contains(words) && !d.help.is_empty()) {
                    failures.push(format!("{name}: the diagnostic does not say {words:?}:\n{d}"));
                }
            }
            Err(e) => failures.push(format!("{name}: not a validation error: {e}")),
            Ok(_) => failures.push(format!("{name}: accepted")),
        }
    }
    assert_eq!(case, 17, "every case ran");
    assert_eq!(sim.calls(), 0, "{:?}", sim.calls_by_op());
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n\n"));
}

/// A file-backed simulated cloud reads its load balancers back.
#[tokio::test(start_paused = true)]
async fn a_file_backed_cloud_keeps_its_load_balancers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    let sim = Arc::new(SimCloud::open(&path, SimConfig::default()).unwrap());
    let engine = engine_on(&sim);
    engine.apply(&engine.synth(&stack(&Shape::default())).unwrap(), &ApplyOptions::default()).await.unwrap();
    let before = the_lb(&sim);
    let reopened = SimCloud::open(&path, SimConfig::default()).unwrap();
    assert_eq!(the_lb(&reopened), before);
}
