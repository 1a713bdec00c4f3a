//! The simulated cloud's VMs: private addresses from the subnet, public ones from the
//! documentation ranges, a boot status tests can set.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::base::error::ErrorKind;
use crate::kind::api::ProviderResult;
use crate::kind::catalog::Catalog;
use crate::kinds::{Subnet, SubnetObserved, Vm, VmObserved, VmSpec};
use crate::sim::secret_fingerprint;
use crate::sim::store::{
    check_offer, immutable, invalid, live_error, parse_cidr, provider_error, Inner, SimKind, SimOps,
};

fn private_ip(s: &Inner, subnet: &SubnetObserved) -> ProviderResult<String> {
    let cidr = parse_cidr("subnet CIDR", &subnet.cidr)?;
    let used: BTreeSet<&str> =
        s.referrers::<Vm>(&subnet.id).filter(|v| v.subnet_id == subnet.id).map(|v| v.private_ip.as_str()).collect();
    let size: u64 = 1 << (32 - u32::from(cidr.prefix()));
    // Like AWS: the first four addresses and the last one are reserved.
    let mut index: u32 = 4;
    while u64::from(index) + 1 < size {
        if let Some(ip) = cidr.host(index) {
            let ip = ip.to_string();
            if !used.contains(ip.as_str()) {
                return Ok(ip);
            }
        }
        index += 1;
    }
    Err(provider_error(
        ErrorKind::QuotaExceeded,
        format!("subnet `{}` ({}) has no free address left; use a larger block", subnet.id, subnet.cidr),
    ))
}

fn public_ip(s: &Inner) -> ProviderResult<String> {
    let used: BTreeSet<&str> = s.all::<Vm>().map(|v| v.public_ip.as_str()).filter(|p| !p.is_empty()).collect();
    for [a, b, c] in [[203, 0, 113], [198, 51, 100]] {
        for d in 1..=254 {
            let ip = Ipv4Addr::new(a, b, c, d).to_string();
            if !used.contains(ip.as_str()) {
                return Ok(ip);
            }
        }
    }
    Err(provider_error(
        ErrorKind::QuotaExceeded,
        "the simulated cloud has no public address left; release some or create VMs without one",
    ))
}

impl SimKind for Vm {
    const OPS: SimOps = SimOps { create: "create_vm", read: "read_vms", update: "update_vm", delete: "delete_vm" };

    const NOUN: &'static str = "VM";

    fn references(o: &VmObserved) -> Vec<(&str, &'static str)> {
        std::iter::once((o.subnet_id.as_str(), ""))
            .chain(o.firewall_ids.iter().map(|f| (f.as_str(), "attached to ")))
            .collect()
    }

    fn create(s: &mut Inner, cat: &Catalog, spec: &VmSpec, now: Duration) -> ProviderResult<VmObserved> {
        Inner::check_region(cat, &spec.region)?;
        Inner::check_name(cat, "VM", &spec.name)?;
        check_offer("VM", &spec.size, cat.vm_size(&spec.size).is_some(), &cat.vm_sizes)?;
        if cat.image(&spec.image).is_none() {
            let offered: Vec<&str> = cat.images.iter().map(|o| o.slug.as_str()).collect();
            return Err(invalid(format!("image `{}` is not offered; use one of: {}", spec.image, offered.join(", "))));
        }
        let subnet = s.reference::<Subnet>(&spec.subnet_id, &spec.region, now)?;
        s.check_attached_firewalls(&spec.firewall_ids, &subnet.vpc_id, &spec.region, now)?;
        let private_ip = private_ip(s, subnet)?;
        let public_ip = if spec.assign_public_ip { public_ip(s)? } else { String::new() };
        let obs = VmObserved {
            id: s.next_id("vm"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            image: spec.image.clone(),
            size: spec.size.clone(),
            subnet_id: spec.subnet_id.clone(),
            firewall_ids: spec.firewall_ids.clone(),
            assign_public_ip: spec.assign_public_ip,
            public_ip,
            private_ip,
            status: s.boot_status.get(&spec.image).cloned().unwrap_or_else(|| "running".into()),
            tags: spec.tags.clone(),
        };
        // The environment may carry secrets: only their fingerprints are kept, for tests.
        let prints = spec.env.iter().map(|(k, v)| (format!("env:{k}"), secret_fingerprint(v.expose()))).collect();
        if let Some(rt) = &s.runtime {
            rt.start_vm(&obs, spec).map_err(|e| live_error(&format!("start the app of VM `{}`", spec.name), e))?;
        }
        s.secret_prints.insert(obs.id.clone(), prints);
        Ok(s.create::<Vm>(obs, now))
    }

    fn update(s: &mut Inner, cat: &Catalog, id: &str, spec: &VmSpec, now: Duration) -> ProviderResult<VmObserved> {
        let cur = s.existing::<Vm>(id)?;
        immutable("VM", id, "region", &cur.region, &spec.region)?;
        immutable("VM", id, "image", &cur.image, &spec.image)?;
        immutable("VM", id, "subnet_id", &cur.subnet_id, &spec.subnet_id)?;
        immutable("VM", id, "assign_public_ip", &cur.assign_public_ip, &spec.assign_public_ip)?;
        Inner::check_name(cat, "VM", &spec.name)?;
        check_offer("VM", &spec.size, cat.vm_size(&spec.size).is_some(), &cat.vm_sizes)?;
        let mut obs = cur.clone();
        let vpc_id = s.get::<Subnet>(&obs.subnet_id).map(|n| n.vpc_id.clone()).unwrap_or_default();
        s.check_attached_firewalls(&spec.firewall_ids, &vpc_id, &obs.region, now)?;
        obs.name = spec.name.clone();
        obs.size = spec.size.clone();
        obs.firewall_ids = spec.firewall_ids.clone();
        obs.tags = spec.tags.clone();
        s.put::<Vm>(obs.clone());
        Ok(obs)
    }

    fn delete(s: &mut Inner, id: &str) -> ProviderResult<()> {
        // A VM that is a load balancer's target is in use, as on a real API.
        s.delete_unreferenced::<Vm>(id)?;
        if let Some(rt) = &s.runtime {
            rt.stop_vm(id);
        }
        Ok(())
    }
}
