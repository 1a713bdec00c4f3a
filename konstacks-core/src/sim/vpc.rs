//! The simulated cloud's VPCs.

use std::time::Duration;

use crate::kind::api::ProviderResult;
use crate::kind::catalog::Catalog;
use crate::kinds::{Vpc, VpcObserved, VpcSpec};
use crate::sim::store::{immutable, invalid, parse_cidr, Inner, SimKind, SimOps};

impl SimKind for Vpc {
    const OPS: SimOps = SimOps { create: "create_vpc", read: "read_vpcs", update: "update_vpc", delete: "delete_vpc" };

    const NOUN: &'static str = "VPC";

    fn references(_: &VpcObserved) -> Vec<(&str, &'static str)> {
        Vec::new()
    }

    fn create(s: &mut Inner, cat: &Catalog, spec: &VpcSpec, now: Duration) -> ProviderResult<VpcObserved> {
        Inner::check_region(cat, &spec.region)?;
        Inner::check_name(cat, "VPC", &spec.name)?;
        let cidr = parse_cidr("VPC CIDR", &spec.cidr)?;
        if !(8..=28).contains(&cidr.prefix()) {
            return Err(invalid(format!("VPC block {cidr} must have a prefix between /8 and /28")));
        }
        let obs = VpcObserved {
            id: s.next_id("vpc"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            cidr: cidr.to_string(),
            tags: spec.tags.clone(),
        };
        Ok(s.create::<Vpc>(obs, now))
    }

    fn update(s: &mut Inner, cat: &Catalog, id: &str, spec: &VpcSpec, _: Duration) -> ProviderResult<VpcObserved> {
        let cur = s.existing::<Vpc>(id)?;
        immutable("VPC", id, "region", &cur.region, &spec.region)?;
        immutable("VPC", id, "cidr", &cur.cidr, &spec.cidr)?;
        Inner::check_name(cat, "VPC", &spec.name)?;
        let mut obs = cur.clone();
        obs.name = spec.name.clone();
        obs.tags = spec.tags.clone();
        s.put::<Vpc>(obs.clone());
        Ok(obs)
    }
}
