//! The simulated cloud's subnets: zones, containment in the VPC's block, no overlaps.

use std::time::Duration;

use crate::kind::api::ProviderResult;
use crate::kind::catalog::Catalog;
use crate::kinds::{Subnet, SubnetObserved, SubnetSpec, Vpc};
use crate::sim::store::{conflict, immutable, invalid, parse_cidr, zone_name, Inner, SimKind, SimOps, ZONE_LETTERS};

impl SimKind for Subnet {
    const OPS: SimOps =
        SimOps { create: "create_subnet", read: "read_subnets", update: "update_subnet", delete: "delete_subnet" };

    const NOUN: &'static str = "subnet";

    fn references(o: &SubnetObserved) -> Vec<(&str, &'static str)> {
        vec![(o.vpc_id.as_str(), "")]
    }

    fn create(s: &mut Inner, cat: &Catalog, spec: &SubnetSpec, now: Duration) -> ProviderResult<SubnetObserved> {
        Inner::check_region(cat, &spec.region)?;
        Inner::check_name(cat, "subnet", &spec.name)?;
        let zone_name = zone_name(&spec.region, spec.zone).ok_or_else(|| {
            invalid(format!(
                "zone index {} does not exist: region `{}` has {} zones; use an index below {}",
                spec.zone,
                spec.region,
                ZONE_LETTERS.len(),
                ZONE_LETTERS.len()
            ))
        })?;
        let cidr = parse_cidr("subnet CIDR", &spec.cidr)?;
        let vpc = s.reference::<Vpc>(&spec.vpc_id, &spec.region, now)?;
        let vpc_cidr = parse_cidr("VPC CIDR", &vpc.cidr)?;
        if !vpc_cidr.contains(&cidr) {
            return Err(invalid(format!(
                "subnet block {cidr} is outside the block {vpc_cidr} of VPC `{}`; pick a block inside it",
                spec.vpc_id
            )));
        }
        for other in s.referrers::<Subnet>(&spec.vpc_id).filter(|o| o.vpc_id == spec.vpc_id) {
            if parse_cidr("subnet CIDR", &other.cidr)?.overlaps(&cidr) {
                return Err(conflict(format!(
                    "subnet block {cidr} overlaps {} of subnet `{}` in VPC `{}`; pick a free block",
                    other.cidr, other.id, spec.vpc_id
                )));
            }
        }
        let obs = SubnetObserved {
            id: s.next_id("subnet"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            vpc_id: spec.vpc_id.clone(),
            cidr: cidr.to_string(),
            zone: spec.zone,
            zone_name,
            public: spec.public,
            tags: spec.tags.clone(),
        };
        Ok(s.create::<Subnet>(obs, now))
    }

    fn update(
        s: &mut Inner,
        cat: &Catalog,
        id: &str,
        spec: &SubnetSpec,
        _: Duration,
    ) -> ProviderResult<SubnetObserved> {
        let cur = s.existing::<Subnet>(id)?;
        immutable("subnet", id, "region", &cur.region, &spec.region)?;
        immutable("subnet", id, "vpc_id", &cur.vpc_id, &spec.vpc_id)?;
        immutable("subnet", id, "cidr", &cur.cidr, &spec.cidr)?;
        immutable("subnet", id, "zone", &cur.zone, &spec.zone)?;
        Inner::check_name(cat, "subnet", &spec.name)?;
        let mut obs = cur.clone();
        obs.name = spec.name.clone();
        obs.public = spec.public;
        obs.tags = spec.tags.clone();
        s.put::<Subnet>(obs.clone());
        Ok(obs)
    }
}
