//! The simulated cloud's load balancers: subnets of one VPC (two zones for a public one),
//! firewalls of that VPC, target VMs that exist in it, listeners, target groups and rules that
//! hang together; a DNS name derived from the name and id, a public address from a
//! documentation range, and per-target health derived from the VMs' status at every read.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::base::error::ErrorKind;
use crate::kind::api::{ProviderResult, TargetHealth, TargetHealthState};
use crate::kind::catalog::Catalog;
use crate::kinds::load_balancer::url_of;
use crate::kinds::Certificate;
use crate::kinds::{
    HealthProtocol, LbScheme, ListenerProtocol, LoadBalancer, LoadBalancerObserved, LoadBalancerSpec, Subnet,
    TargetGroupSpec, TargetState, Vm,
};
use crate::sim::store::{
    id_number, immutable, invalid, live_error, name_key, provider_error, zone_name, Inner, SimKind, SimOps,
};

const NOUN: &str = "load balancer";

/// Public addresses of load balancers: TEST-NET-1, apart from the VMs' ranges.
fn public_ip(s: &Inner) -> ProviderResult<String> {
    let used: BTreeSet<&str> = s.all::<LoadBalancer>().filter_map(|l| l.ip.as_deref()).collect();
    (1..=254u8).map(|d| Ipv4Addr::new(192, 0, 2, d).to_string()).find(|ip| !used.contains(ip.as_str())).ok_or_else(
        || provider_error(ErrorKind::QuotaExceeded, "the simulated cloud has no load balancer address left"),
    )
}

/// The checks create and update share: subnets, firewalls, listeners, groups, targets, rules.
fn check_spec(s: &Inner, cat: &Catalog, name: &str, spec: &LoadBalancerSpec, now: Duration) -> ProviderResult<()> {
    if let Some(policy) = spec.security_policy.as_deref().filter(|p| cat.tls_policy(p).is_none()) {
        return Err(invalid(format!("{NOUN} `{name}`: there is no security policy `{policy}`")));
    }
    let vpc_id = s.subnets_vpc(NOUN, name, &spec.subnet_ids, &spec.region, now)?;
    let mut zones = BTreeSet::new();
    for id in &spec.subnet_ids {
        let subnet = s.reference::<Subnet>(id, &spec.region, now)?;
        if !zones.insert(subnet.zone) {
            let zone = zone_name(&spec.region, subnet.zone).unwrap_or_default();
            return Err(invalid(format!(
                "{NOUN} `{name}`: two subnets are in zone `{zone}`; give a load balancer one subnet per zone"
            )));
        }
    }
    if spec.scheme == LbScheme::Public && zones.len() < 2 {
        return Err(invalid(format!("{NOUN} `{name}`: a public load balancer needs subnets in at least two zones")));
    }
    s.check_attached_firewalls(&spec.firewall_ids, &vpc_id, &spec.region, now)?;
    if spec.listeners.is_empty() {
        return Err(invalid(format!("{NOUN} `{name}` needs at least one listener")));
    }
    let mut ports = BTreeSet::new();
    let https: BTreeSet<u16> = spec.listeners.iter().filter(|l| l.protocol.is_tls()).map(|l| l.port).collect();
    for l in &spec.listeners {
        if l.port == 0 || !ports.insert(l.port) {
            return Err(invalid(format!("{NOUN} `{name}`: port {} is invalid or already used by a listener", l.port)));
        }
        match l.protocol {
            ListenerProtocol::Https if l.certificate_ids.iter().all(|c| c.trim().is_empty()) => {
                return Err(invalid(format!("{NOUN} `{name}`: HTTPS listener on port {} has no certificate", l.port)));
            }
            // Every certificate must exist in the load balancer's region (a pending one may be
            // attached: it serves once issued, as managed certificates do on GCP).
            ListenerProtocol::Https => {
                for c in &l.certificate_ids {
                    s.reference::<Certificate>(c, &spec.region, now)?;
                }
            }
            ListenerProtocol::TlsPassthrough if !l.certificate_ids.is_empty() => {
                return Err(invalid(format!(
                    "{NOUN} `{name}`: the TLS passthrough listener on port {} takes no certificate (the VMs hold it)",
                    l.port
                )));
            }
            ListenerProtocol::Http if l.redirect_to_port.is_some_and(|p| !https.contains(&p)) => {
                return Err(invalid(format!(
                    "{NOUN} `{name}`: listener on port {} redirects to port {:?}, where no HTTPS or TLS passthrough listener is",
                    l.port, l.redirect_to_port
                )));
            }
            _ => {}
        }
    }
    let mut groups = BTreeSet::new();
    for g in &spec.target_groups {
        if !groups.insert(g.name.as_str()) {
            return Err(provider_error(
                ErrorKind::AlreadyExists,
                format!("{NOUN} `{name}`: target group `{}` is given twice", g.name),
            ));
        }
        check_health(name, g)?;
        for vm_id in &g.vm_ids {
            let vm = s.reference::<Vm>(vm_id, &spec.region, now)?;
            let vm_vpc = s.get::<Subnet>(&vm.subnet_id).map(|n| n.vpc_id.as_str()).unwrap_or_default();
            if vm_vpc != vpc_id {
                return Err(invalid(format!(
                    "{NOUN} `{name}`: target VM `{vm_id}` runs in VPC `{vm_vpc}`, not in the load balancer's \
                     VPC `{vpc_id}`"
                )));
            }
        }
    }
    let missing = spec
        .routes
        .iter()
        .map(|r| r.target_group.as_str())
        .chain(std::iter::once(spec.default_target_group.as_str()))
        .find(|g| !groups.contains(g));
    if let Some(g) = missing {
        return Err(invalid(format!("{NOUN} `{name}`: rules name target group `{g}`, which does not exist")));
    }
    let mut rules = BTreeSet::new();
    for r in &spec.routes {
        if !rules.insert((&r.host, &r.path_prefix)) {
            return Err(invalid(format!(
                "{NOUN} `{name}`: two rules match host {:?} and path {:?}",
                r.host, r.path_prefix
            )));
        }
    }
    Ok(())
}

/// Health check values within what the clouds accept.
fn check_health(name: &str, g: &TargetGroupSpec) -> ProviderResult<()> {
    let h = &g.health_check;
    let http = h.protocol != HealthProtocol::Tcp;
    let ok = (5..=300).contains(&h.interval_s)
        && (2..h.interval_s).contains(&h.timeout_s)
        && (2..=10).contains(&h.healthy_threshold)
        && (2..=10).contains(&h.unhealthy_threshold)
        && g.port > 0
        && h.port != Some(0)
        && g.deregistration_delay_s <= 3600
        && (!http || h.path.as_deref().is_some_and(|p| p.starts_with('/')));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{NOUN} `{name}`: target group `{}` has a port, health check or deregistration delay out of range \
             (interval 5-300 s, timeout 2 s to below the interval, thresholds 2-10, path starting with '/', delay \
             up to 3600 s)",
            g.name
        )))
    }
}

/// What the load balancer sees of each target: in live mode what its probes see; otherwise
/// healthy while the VM runs.
fn health(s: &Inner, o: &LoadBalancerObserved) -> Vec<TargetHealth> {
    if let Some(live) = s.runtime.as_ref().and_then(|rt| rt.target_health(&o.id)) {
        return live;
    }
    let mut out: Vec<TargetHealth> = o
        .target_groups
        .iter()
        .flat_map(|g| {
            g.vm_ids.iter().map(|id| {
                let (state, reason) = match s.get::<Vm>(id) {
                    Some(vm) if vm.status == "running" => (TargetHealthState::Healthy, None),
                    Some(vm) => (TargetHealthState::Unhealthy, Some(format!("the VM is `{}`", vm.status))),
                    None => (TargetHealthState::Unavailable, Some("the VM does not exist".to_string())),
                };
                TargetHealth { group: g.name.clone(), target_id: id.clone(), state, reason }
            })
        })
        .collect();
    out.sort();
    out
}

/// The targets as the observed load balancer lists them.
fn targets(s: &Inner, o: &LoadBalancerObserved) -> Vec<TargetState> {
    let word = |st: TargetHealthState| match st {
        TargetHealthState::Initial => "initial",
        TargetHealthState::Healthy => "healthy",
        TargetHealthState::Unhealthy => "unhealthy",
        TargetHealthState::Draining => "draining",
        _ => "unavailable",
    };
    let mut out: Vec<TargetState> = health(s, o)
        .into_iter()
        .map(|t| TargetState { vm_id: t.target_id, group: t.group, state: word(t.state).into() })
        .collect();
    out.sort();
    out
}

/// Serve the load balancer as it now is, in live mode: its address replaces the simulated one.
fn go_live(s: &Inner, obs: &mut LoadBalancerObserved) -> ProviderResult<()> {
    if let Some(rt) = &s.runtime {
        let at =
            rt.serve_load_balancer(obs).map_err(|e| live_error(&format!("serve load balancer `{}`", obs.name), e))?;
        obs.dns_name = at.dns_name;
        obs.url = at.url;
    }
    Ok(())
}

/// The stored load balancer `id` with its group `group`, for a change of targets.
fn group_of(s: &Inner, id: &str, group: &str) -> ProviderResult<(LoadBalancerObserved, usize)> {
    let lb = s.existing::<LoadBalancer>(id)?.clone();
    let at =
        lb.target_groups.iter().position(|g| g.name == group).ok_or_else(|| {
            provider_error(ErrorKind::NotFound, format!("{NOUN} `{id}` has no target group `{group}`"))
        })?;
    Ok((lb, at))
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

impl SimKind for LoadBalancer {
    const OPS: SimOps = SimOps {
        create: "create_load_balancer",
        read: "read_load_balancers",
        update: "update_load_balancer",
        delete: "delete_load_balancer",
    };

    const NOUN: &'static str = NOUN;

    fn references(o: &LoadBalancerObserved) -> Vec<(&str, &'static str)> {
        let subnets = o.subnet_ids.iter().map(|s| (s.as_str(), ""));
        let fws = o.firewall_ids.iter().map(|f| (f.as_str(), "attached to "));
        let vms = o.target_groups.iter().flat_map(|g| g.vm_ids.iter().map(|v| (v.as_str(), "targeted by ")));
        let certs =
            o.listeners.iter().flat_map(|l| l.certificate_ids.iter().map(|c| (c.as_str(), "used by a listener of ")));
        subnets.chain(fws).chain(vms).chain(certs).collect()
    }

    fn unique_key(o: &LoadBalancerObserved) -> Option<String> {
        Some(name_key(&o.region, &o.name))
    }

    fn observe(s: &Inner, mut o: LoadBalancerObserved, _now: Duration) -> LoadBalancerObserved {
        o.targets = targets(s, &o);
        o
    }

    fn create(
        s: &mut Inner,
        cat: &Catalog,
        spec: &LoadBalancerSpec,
        now: Duration,
    ) -> ProviderResult<LoadBalancerObserved> {
        Inner::check_region(cat, &spec.region)?;
        Inner::check_name(cat, NOUN, &spec.name)?;
        if let Some(other) = s
            .keyed::<LoadBalancer>(&name_key(&spec.region, &spec.name))
            .find(|l| l.region == spec.region && l.name == spec.name)
        {
            return Err(provider_error(
                ErrorKind::AlreadyExists,
                format!(
                    "a load balancer named `{}` already exists in region `{}` (`{}`); pick another name or adopt it",
                    spec.name, spec.region, other.id
                ),
            ));
        }
        check_spec(s, cat, &spec.name, spec, now)?;
        let ip = match spec.scheme {
            LbScheme::Public => Some(public_ip(s)?),
            _ => None,
        };
        let id = s.next_id("lb");
        let dns_name = format!("{}-{}.{}.lb.sim.internal", spec.name, id_number(&id).unwrap_or(0), spec.region);
        let mut obs = LoadBalancerObserved {
            id,
            name: spec.name.clone(),
            region: spec.region.clone(),
            scheme: spec.scheme,
            subnet_ids: spec.subnet_ids.clone(),
            firewall_ids: spec.firewall_ids.clone(),
            listeners: sorted(&spec.listeners),
            target_groups: sorted(&spec.target_groups),
            routes: sorted(&spec.routes),
            default_target_group: spec.default_target_group.clone(),
            tls_policy: spec.tls_policy,
            security_policy: spec.security_policy.clone(),
            assumed_gb_processed_per_month: spec.assumed_gb_processed_per_month,
            url: url_of(&dns_name, &spec.listeners),
            dns_name,
            ip,
            status: "active".into(),
            targets: Vec::new(),
            tags: spec.tags.clone(),
        };
        go_live(s, &mut obs)?;
        obs.targets = targets(s, &obs);
        Ok(s.create::<LoadBalancer>(obs, now))
    }

    fn delete(s: &mut Inner, id: &str) -> ProviderResult<()> {
        s.delete_unreferenced::<LoadBalancer>(id)?;
        if let Some(rt) = &s.runtime {
            rt.stop_load_balancer(id);
        }
        Ok(())
    }

    fn register(s: &mut Inner, id: &str, group: &str, vms: &[String], now: Duration) -> ProviderResult<()> {
        let (mut lb, at) = group_of(s, id, group)?;
        for vm_id in vms {
            let vm = s.reference::<Vm>(vm_id, &lb.region, now)?;
            let vm_vpc = s.get::<Subnet>(&vm.subnet_id).map(|n| n.vpc_id.clone()).unwrap_or_default();
            let lb_vpc = lb.subnet_ids.first().and_then(|n| s.get::<Subnet>(n)).map(|n| n.vpc_id.clone());
            if lb_vpc.as_deref() != Some(vm_vpc.as_str()) {
                return Err(invalid(format!("{NOUN} `{id}`: VM `{vm_id}` is not in the load balancer's VPC")));
            }
            if !lb.target_groups[at].vm_ids.contains(vm_id) {
                lb.target_groups[at].vm_ids.push(vm_id.clone());
            }
        }
        lb.target_groups[at].vm_ids.sort();
        go_live(s, &mut lb)?;
        lb.targets = targets(s, &lb);
        s.put::<LoadBalancer>(lb);
        Ok(())
    }

    fn deregister(s: &mut Inner, id: &str, group: &str, vms: &[String]) -> ProviderResult<()> {
        let (mut lb, at) = group_of(s, id, group)?;
        lb.target_groups[at].vm_ids.retain(|v| !vms.contains(v));
        go_live(s, &mut lb)?;
        lb.targets = targets(s, &lb);
        s.put::<LoadBalancer>(lb);
        Ok(())
    }

    fn target_health(s: &Inner, id: &str, _now: Duration) -> ProviderResult<Vec<TargetHealth>> {
        let lb = s.existing::<LoadBalancer>(id)?;
        Ok(health(s, lb))
    }

    fn update(
        s: &mut Inner,
        cat: &Catalog,
        id: &str,
        spec: &LoadBalancerSpec,
        now: Duration,
    ) -> ProviderResult<LoadBalancerObserved> {
        let cur = s.existing::<LoadBalancer>(id)?;
        immutable(NOUN, id, "region", &cur.region, &spec.region)?;
        immutable(NOUN, id, "name", &cur.name, &spec.name)?;
        immutable(NOUN, id, "scheme", &cur.scheme, &spec.scheme)?;
        let old_vpc =
            s.get::<Subnet>(cur.subnet_ids.first().map(String::as_str).unwrap_or_default()).map(|n| n.vpc_id.clone());
        check_spec(s, cat, id, spec, now)?;
        let new_vpc = spec.subnet_ids.first().and_then(|n| s.get::<Subnet>(n)).map(|n| n.vpc_id.clone());
        if let (Some(old), Some(new)) = (&old_vpc, &new_vpc) {
            if old != new {
                immutable(NOUN, id, "VPC of subnet_ids", old, new)?;
            }
        }
        let mut obs = cur.clone();
        // Like the clouds' set operations: listeners, groups and rules are replaced wholesale.
        obs.subnet_ids = spec.subnet_ids.clone();
        obs.firewall_ids = spec.firewall_ids.clone();
        obs.listeners = sorted(&spec.listeners);
        obs.target_groups = sorted(&spec.target_groups);
        obs.routes = sorted(&spec.routes);
        obs.default_target_group = spec.default_target_group.clone();
        obs.tls_policy = spec.tls_policy;
        obs.security_policy = spec.security_policy.clone();
        obs.assumed_gb_processed_per_month = spec.assumed_gb_processed_per_month;
        obs.url = url_of(&obs.dns_name, &obs.listeners);
        obs.tags = spec.tags.clone();
        go_live(s, &mut obs)?;
        obs.targets = targets(s, &obs);
        s.put::<LoadBalancer>(obs.clone());
        Ok(obs)
    }
}
