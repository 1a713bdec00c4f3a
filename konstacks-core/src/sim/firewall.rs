//! The simulated cloud's firewalls: rules checked against their VPC, names unique per VPC.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::base::error::ErrorKind;
use crate::kind::api::ProviderResult;
use crate::kind::catalog::Catalog;
use crate::kinds::{Firewall, FirewallObserved, FirewallSpec, RuleSource, RuleSpec, Vpc};
use crate::sim::store::{immutable, invalid, parse_cidr, provider_error, Inner, SimKind, SimOps};

fn sorted_rules(rules: &[RuleSpec]) -> Vec<RuleSpec> {
    let set: BTreeSet<RuleSpec> = rules.iter().cloned().collect();
    set.into_iter().collect()
}

fn check_rules(
    s: &Inner,
    fw_id: Option<&str>,
    vpc_id: &str,
    region: &str,
    rules: &[RuleSpec],
    now: Duration,
) -> ProviderResult<()> {
    for r in rules {
        if r.from_port > r.to_port {
            return Err(invalid(format!(
                "rule port range {}-{} is reversed; write the lower port first",
                r.from_port, r.to_port
            )));
        }
        match &r.peer {
            RuleSource::Cidr(c) => {
                parse_cidr("rule peer", c)?;
            }
            RuleSource::Firewall(peer) if Some(peer.as_str()) == fw_id => {}
            RuleSource::Firewall(peer) => {
                let fw = s.reference::<Firewall>(peer, region, now)?;
                if fw.vpc_id != vpc_id {
                    return Err(invalid(format!(
                        "rule peer firewall `{peer}` belongs to VPC `{}`, not `{vpc_id}`",
                        fw.vpc_id
                    )));
                }
            }
        }
    }
    Ok(())
}

impl SimKind for Firewall {
    const OPS: SimOps = SimOps {
        create: "create_firewall",
        read: "read_firewalls",
        update: "update_firewall",
        delete: "delete_firewall",
    };

    const NOUN: &'static str = "firewall";

    fn references(o: &FirewallObserved) -> Vec<(&str, &'static str)> {
        let peers = o.ingress.iter().chain(&o.egress).filter_map(|r| match &r.peer {
            RuleSource::Firewall(f) if *f != o.id => Some((f.as_str(), "referenced by a rule of ")),
            _ => None,
        });
        std::iter::once((o.vpc_id.as_str(), "")).chain(peers).collect()
    }

    fn create(s: &mut Inner, cat: &Catalog, spec: &FirewallSpec, now: Duration) -> ProviderResult<FirewallObserved> {
        Inner::check_region(cat, &spec.region)?;
        Inner::check_name(cat, "firewall", &spec.name)?;
        s.reference::<Vpc>(&spec.vpc_id, &spec.region, now)?;
        if let Some(other) =
            s.referrers::<Firewall>(&spec.vpc_id).find(|f| f.vpc_id == spec.vpc_id && f.name == spec.name)
        {
            return Err(provider_error(
                ErrorKind::AlreadyExists,
                format!(
                    "a firewall named `{}` already exists in VPC `{}` (`{}`); pick another name or adopt it",
                    spec.name, spec.vpc_id, other.id
                ),
            ));
        }
        check_rules(s, None, &spec.vpc_id, &spec.region, &spec.ingress, now)?;
        check_rules(s, None, &spec.vpc_id, &spec.region, &spec.egress, now)?;
        let obs = FirewallObserved {
            id: s.next_id("fw"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            vpc_id: spec.vpc_id.clone(),
            ingress: sorted_rules(&spec.ingress),
            egress: sorted_rules(&spec.egress),
            tags: spec.tags.clone(),
        };
        Ok(s.create::<Firewall>(obs, now))
    }

    fn update(
        s: &mut Inner,
        _: &Catalog,
        id: &str,
        spec: &FirewallSpec,
        now: Duration,
    ) -> ProviderResult<FirewallObserved> {
        let cur = s.existing::<Firewall>(id)?;
        immutable("firewall", id, "region", &cur.region, &spec.region)?;
        immutable("firewall", id, "vpc_id", &cur.vpc_id, &spec.vpc_id)?;
        immutable("firewall", id, "name", &cur.name, &spec.name)?;
        let mut obs = cur.clone();
        check_rules(s, Some(id), &obs.vpc_id, &obs.region, &spec.ingress, now)?;
        check_rules(s, Some(id), &obs.vpc_id, &obs.region, &spec.egress, now)?;
        obs.ingress = sorted_rules(&spec.ingress);
        obs.egress = sorted_rules(&spec.egress);
        obs.tags = spec.tags.clone();
        s.put::<Firewall>(obs.clone());
        Ok(obs)
    }
}
