//! The load balancer suite: a public load balancer in two public subnets, behind a firewall,
//! sending HTTP to a VM; its targets' health, the VM's deletion refused while it is a target,
//! routing rules and a second target group added by an update, and a TLS passthrough listener
//! where the provider offers one.

use std::net::Ipv4Addr;

use crate::base::clock::OpContext;
use crate::base::error::ErrorKind;
use crate::contract::{
    anywhere, api, call_failed, ensure, eventually, failure, field, retry, rule, same_set, setup_vpc, tags,
    ContractFailure, ContractOptions, Run, CONTRACT_TAG, RETRY_PUSHBACK, RETRY_UPDATE,
};
use crate::kind::{ResourceKind, Selector};
use crate::kinds::{
    Firewall, HealthCheckSpec, HealthProtocol, LbScheme, ListenerProtocol, ListenerSpec, LoadBalancer,
    LoadBalancerObserved, LoadBalancerSpec, Protocol, RouteSpec, Subnet, TargetGroupSpec, TlsPolicy, Vm, VmSpec, Vpc,
};
use crate::provider::Provider;

/// The load balancer suite.
pub async fn run_load_balancer(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    let mut run = Run::new(p, cx, o, "lb");
    let result = lb_checks(&mut run).await;
    run.finish(result).await
}

fn health(path: &str) -> HealthCheckSpec {
    HealthCheckSpec {
        protocol: HealthProtocol::Http,
        port: None,
        path: Some(path.into()),
        interval_s: 30,
        timeout_s: 5,
        healthy_threshold: 3,
        unhealthy_threshold: 3,
        expected_status: Some("200-399".into()),
    }
}

fn group(name: &str, vm_ids: Vec<String>) -> TargetGroupSpec {
    TargetGroupSpec {
        name: name.into(),
        port: 8080,
        vm_ids,
        health_check: health("/"),
        deregistration_delay_s: 30,
        release: Default::default(),
    }
}

async fn lb_checks(run: &mut Run<'_>) -> Result<(), ContractFailure> {
    let (p, cx) = (run.p, run.cx);
    let (subnets, firewalls, vms, lbs) =
        (api::<Subnet>(run)?, api::<Firewall>(run)?, api::<Vm>(run)?, api::<LoadBalancer>(run)?);
    let (subnets, firewalls, vms, lbs) = (&*subnets, &*firewalls, &*vms, &*lbs);
    let cat = p.catalog();
    let setup = run.check("setup");
    let size = cat.vm_sizes.first().ok_or_else(|| failure(&setup, "the catalogue lists no VM size"))?;
    let image = cat.images.first().ok_or_else(|| failure(&setup, "the catalogue lists no image"))?;
    ensure(cat.min_zones >= 2, &setup, || "a public load balancer needs two zones; the catalogue promises one".into())?;

    let vpc = setup_vpc(run).await?;
    let a_spec = run.subnet_spec("lb-a", &vpc.id, 0, 0, true)?;
    let a = run.create(Subnet::KIND, &setup, || subnets.create(cx, &a_spec)).await?;
    let b_spec = run.subnet_spec("lb-b", &vpc.id, 1, 1, true)?;
    let b = run.create(Subnet::KIND, &setup, || subnets.create(cx, &b_spec)).await?;
    let fw_spec = run.firewall_spec(
        "lb-fw",
        &vpc.id,
        vec![rule(Protocol::Tcp, 80, anywhere()), rule(Protocol::Tcp, 443, anywhere())],
    );
    let fw = run.create(Firewall::KIND, &setup, || firewalls.create(cx, &fw_spec)).await?;
    let vm_spec = VmSpec {
        name: run.name("web"),
        region: run.o.region.clone(),
        image: image.slug.clone(),
        size: size.slug.clone(),
        subnet_id: a.id.clone(),
        firewall_ids: Vec::new(),
        user_data: None,
        env: Default::default(),
        ssh_keys: Vec::new(),
        assign_public_ip: false,
        app: None,
        tags: run.tags("web"),
    };
    let vm = run.create(Vm::KIND, &setup, || vms.create(cx, &vm_spec)).await?;

    let spec = LoadBalancerSpec {
        name: run.name("lb"),
        region: run.o.region.clone(),
        scheme: LbScheme::Public,
        subnet_ids: vec![a.id.clone(), b.id.clone()],
        firewall_ids: vec![fw.id.clone()],
        listeners: vec![ListenerSpec {
            port: 80,
            protocol: ListenerProtocol::Http,
            certificate_ids: Vec::new(),
            redirect_to_port: None,
        }],
        target_groups: vec![group("app", vec![vm.id.clone()])],
        routes: Vec::new(),
        default_target_group: "app".into(),
        tls_policy: TlsPolicy::Tls12,
        security_policy: None,
        assumed_gb_processed_per_month: 100.0,
        tags: run.tags("lb"),
    };
    let check = run.check("create_load_balancer");
    let created = run.create(LoadBalancer::KIND, &check, || lbs.create(cx, &spec)).await?;
    check_lb(&check, &spec, &created)?;
    let read = move |sel: Selector| async move { lbs.read_many(cx, &sel).await };
    let check = run.check("read_load_balancers");
    let got = run.check_reads(&check, &created.id, read).await?;
    check_lb(&check, &spec, &got)?;
    let ids = Selector::Ids(vec![created.id.clone()]);
    let vm_id = vm.id.clone();
    eventually(
        cx,
        &check,
        "waiting for the target to be healthy",
        || read(ids.clone()),
        |v| v.iter().any(|r| r.targets.iter().any(|t| t.vm_id == vm_id && t.group == "app" && t.state == "healthy")),
    )
    .await?;

    // A VM that is a target cannot go (or, on clouds that deregister it, the group loses it).
    let check = run.check("target_in_use");
    match retry(cx, RETRY_PUSHBACK, || run.delete_raw(Vm::KIND, &vm.id)).await {
        Err(e) if e.kind() == ErrorKind::Conflict => {}
        Err(e) => return Err(call_failed(&check, "delete_vm", &e)),
        Ok(()) => return Err(failure(&check, "deleting a VM that is a load balancer target succeeded")),
    }

    // Where load balancers have one pool of VMs (the catalogue says so), the update changes
    // the pool's health check instead of adding a group and a rule.
    let check = run.check("update_load_balancer");
    let one_pool = cat.load_balancers_one_pool;
    let mut upd = spec.clone();
    upd.target_groups[0].deregistration_delay_s = 10;
    if one_pool {
        upd.target_groups[0].health_check = health("/health");
    } else {
        upd.target_groups
            .push(TargetGroupSpec { health_check: health("/health"), ..group("api", vec![vm.id.clone()]) });
        upd.routes = vec![RouteSpec {
            priority: 1,
            host: Some("api.example.com".into()),
            path_prefix: Some("/v1".into()),
            target_group: "api".into(),
        }];
    }
    upd.listeners.push(ListenerSpec {
        port: 8080,
        protocol: ListenerProtocol::Http,
        certificate_ids: Vec::new(),
        redirect_to_port: None,
    });
    upd.tags.insert(CONTRACT_TAG.into(), "updated".into());
    let updated = retry(cx, RETRY_UPDATE, || lbs.update(cx, &created.id, &upd))
        .await
        .map_err(|e| call_failed(&check, "update_load_balancer", &e))?;
    check_lb(&check, &upd, &updated)?;
    field(&check, "dns_name", &created.dns_name, &updated.dns_name)?;
    eventually(
        cx,
        &check,
        "reading the updated load balancer",
        || read(ids.clone()),
        |v| {
            let (groups, routes) = if one_pool { (1, 0) } else { (2, 1) };
            v.iter().any(|r| r.target_groups.len() == groups && r.routes.len() == routes && r.listeners.len() == 2)
        },
    )
    .await?;

    // Where load balancers pass TLS through, a second update turns HTTP into a redirect to a
    // passthrough listener, and the probe into a TCP one (the VM speaks TLS on its port).
    if cat.load_balancers_pass_tls_through {
        let check = run.check("tls_passthrough");
        let mut tls = upd.clone();
        tls.listeners = vec![
            ListenerSpec {
                port: 80,
                protocol: ListenerProtocol::Http,
                certificate_ids: Vec::new(),
                redirect_to_port: Some(443),
            },
            ListenerSpec {
                port: 443,
                protocol: ListenerProtocol::TlsPassthrough,
                certificate_ids: Vec::new(),
                redirect_to_port: None,
            },
        ];
        tls.target_groups[0].health_check =
            HealthCheckSpec { protocol: HealthProtocol::Tcp, path: None, expected_status: None, ..health("/") };
        let updated = retry(cx, RETRY_UPDATE, || lbs.update(cx, &created.id, &tls))
            .await
            .map_err(|e| call_failed(&check, "update_load_balancer", &e))?;
        check_lb(&check, &tls, &updated)?;
        let got = run.check_reads(&check, &created.id, read).await?;
        check_lb(&check, &tls, &got)?;
    }

    run.delete(LoadBalancer::KIND, &created.id).await?;
    run.delete(Vm::KIND, &vm.id).await?;
    run.delete(Firewall::KIND, &fw.id).await?;
    run.delete(Subnet::KIND, &b.id).await?;
    run.delete(Subnet::KIND, &a.id).await?;
    run.delete(Vpc::KIND, &vpc.id).await
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn check_lb(check: &str, want: &LoadBalancerSpec, got: &LoadBalancerObserved) -> Result<(), ContractFailure> {
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    field(check, "scheme", &want.scheme, &got.scheme)?;
    same_set(check, "subnet_ids", &want.subnet_ids, &got.subnet_ids)?;
    same_set(check, "firewall_ids", &want.firewall_ids, &got.firewall_ids)?;
    field(check, "listeners", &sorted(&want.listeners), &sorted(&got.listeners))?;
    let groups = |v: &[TargetGroupSpec]| {
        sorted(&v.iter().map(|g| TargetGroupSpec { vm_ids: sorted(&g.vm_ids), ..g.clone() }).collect::<Vec<_>>())
    };
    field(check, "target_groups", &groups(&want.target_groups), &groups(&got.target_groups))?;
    field(check, "routes", &sorted(&want.routes), &sorted(&got.routes))?;
    field(check, "default_target_group", &want.default_target_group, &got.default_target_group)?;
    field(check, "tls_policy", &want.tls_policy, &got.tls_policy)?;
    ensure(!got.dns_name.is_empty(), check, || "field `dns_name` is empty".into())?;
    let (scheme, what) = match want.listeners.iter().any(|l| l.protocol.is_tls()) {
        true => ("https://", "a load balancer with a TLS listener"),
        false => ("http://", "an HTTP-only load balancer"),
    };
    ensure(got.url.starts_with(scheme) && got.url.contains(&got.dns_name), check, || {
        format!("field `url` is {:?}; {what}'s URL is {scheme}<dns_name>", got.url)
    })?;
    if let Some(ip) = &got.ip {
        ensure(ip.parse::<Ipv4Addr>().is_ok(), check, || format!("field `ip` is {ip:?}, not an IPv4 address"))?;
    }
    let members: usize = want.target_groups.iter().map(|g| g.vm_ids.len()).sum();
    ensure(got.targets.len() == members, check, || {
        format!("{} target state(s) for {members} target(s): {:?}", got.targets.len(), got.targets)
    })?;
    ensure(!got.status.is_empty(), check, || "field `status` is empty".into())?;
    tags(check, &want.tags, &got.tags)
}
