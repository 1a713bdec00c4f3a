//! The subnet kind: a block of a VPC in one zone of the stack's region.

use std::collections::BTreeMap;

use crate::base::cidr::Cidr;
use crate::kind::{always_offered, Field, Kind, KindDef, ResourceKind, Tags};
use crate::kind::{canonical_cidr, parse_cidr, LowerCx, StackCx};
use crate::kinds::vpc::Vpc;
use crate::model::refs::{Output, Ref};

/// A subnet of a VPC, in one zone of the stack's region.
#[derive(Debug, Clone)]
pub struct Subnet {
    pub(crate) vpc: Ref<Vpc>,
    pub(crate) cidr: String,
    pub(crate) zone: u8,
    pub(crate) public: bool,
}

impl Subnet {
    /// A private subnet in zone 0.
    pub fn new(vpc: Ref<Vpc>, cidr: impl Into<String>) -> Self {
        Self { vpc, cidr: cidr.into(), zone: 0, public: false }
    }

    /// Give the subnet a route to the internet.
    pub fn public(mut self) -> Self {
        self.public = true;
        self
    }

    /// No route to the internet (the default).
    pub fn private(mut self) -> Self {
        self.public = false;
        self
    }

    /// Place it in the `index`-th zone of the region (0-based, in the provider's zone order).
    pub fn zone(mut self, index: u8) -> Self {
        self.zone = index;
        self
    }

    /// The VPC it belongs to.
    pub fn vpc(&self) -> Ref<Vpc> {
        self.vpc
    }

    /// Its zone index.
    pub fn zone_index(&self) -> u8 {
        self.zone
    }
}

/// Fields of a subnet.
pub mod field {
    use super::*;
    /// Physical name.
    pub const NAME: Field<Subnet, String> = Field::new("name");
    /// Region.
    pub const REGION: Field<Subnet, String> = Field::new("region");
    /// Id of the VPC.
    pub const VPC_ID: Field<Subnet, String> = Field::new("vpc_id");
    /// IPv4 block.
    pub const CIDR: Field<Subnet, String> = Field::new("cidr");
    /// Zone index.
    pub const ZONE: Field<Subnet, u8> = Field::new("zone");
    /// Routes to the internet.
    pub const PUBLIC: Field<Subnet, bool> = Field::new("public");
    /// Tags.
    pub const TAGS: Field<Subnet, Tags> = Field::new("tags");
}

/// A resolved subnet.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubnetSpec {
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Id of the VPC.
    pub vpc_id: String,
    /// IPv4 block.
    pub cidr: String,
    /// Index into the region's zones.
    pub zone: u8,
    /// Whether it routes to the internet.
    pub public: bool,
    /// Tags.
    pub tags: Tags,
}

/// An observed subnet.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubnetObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Id of the VPC.
    pub vpc_id: String,
    /// IPv4 block.
    pub cidr: String,
    /// Index into the region's zones.
    pub zone: u8,
    /// The zone's provider name.
    pub zone_name: String,
    /// Whether it routes to the internet.
    pub public: bool,
    /// Tags.
    pub tags: Tags,
}
crate::kind::observed!(SubnetObserved);

/// The subnet kind. A replacement cannot create first: the new subnet usually needs the same
/// block in the same VPC.
pub const SUBNET: KindDef = KindDef {
    id: "subnet",
    fields: &[
        field::CIDR.name(),
        field::NAME.name(),
        field::PUBLIC.name(),
        field::REGION.name(),
        field::TAGS.name(),
        field::VPC_ID.name(),
        field::ZONE.name(),
    ],
    force_new: &[field::VPC_ID.name(), field::CIDR.name(), field::ZONE.name(), field::REGION.name()],
    secrets: &[],
    rotatable_secrets: &[],
    create_before_destroy: false,
    holds_data: false,
    deletion_protection: None,
    price: None,
    offered_by: always_offered,
    check_stack,
    fronts: None,
    version_of: None,
};

impl ResourceKind for Subnet {
    type Spec = SubnetSpec;
    type Observed = SubnetObserved;
    const KIND: Kind = Kind::of(&SUBNET);

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let vpc = cx.target(self.vpc, "the subnet's VPC");
        let cidr = parse_cidr(cx, "subnet CIDR", &self.cidr);
        let vpc_block = vpc.and_then(|v| cx.node::<Vpc>(v)).and_then(|v| v.cidr.parse::<Cidr>().ok());
        if let (Some(c), Some(vc)) = (cidr, vpc_block) {
            if !vc.contains(&c) {
                cx.error(
                    "cidr-outside-vpc",
                    format!("subnet block {c} is outside its VPC's block {vc}"),
                    format!("pick a block inside {vc}"),
                );
            }
        }
        if let Some(c) = cx.catalog() {
            if c.min_zones > 0 && self.zone >= c.min_zones {
                let (provider, min) = (c.provider.clone(), c.min_zones);
                cx.error(
                    "zone-out-of-range",
                    format!(
                        "zone index {} does not exist: provider `{provider}` guarantees {min} zone(s) per region",
                        self.zone
                    ),
                    format!("use a zone index below {min}"),
                );
            }
        }
        let vpc_id = cx.id_of(vpc);
        cx.set_expr(field::VPC_ID, vpc_id);
        cx.set(field::CIDR, canonical_cidr(&self.cidr));
        cx.set(field::ZONE, self.zone);
        cx.set(field::PUBLIC, self.public);
    }
}

/// Overlapping subnets within one VPC.
fn check_stack(cx: &mut StackCx<'_>) {
    let subnets: Vec<(usize, usize, Cidr)> = cx
        .of_kind::<Subnet>()
        .filter_map(|(i, s)| Some((i, cx.index_of(s.vpc)?, s.cidr.parse::<Cidr>().ok()?)))
        .collect();
    let mut by_vpc: BTreeMap<usize, Vec<(usize, Cidr)>> = BTreeMap::new();
    for (i, v, c) in &subnets {
        by_vpc.entry(*v).or_default().push((*i, *c));
    }
    for blocks in by_vpc.values() {
        for (a, (ia, ca)) in blocks.iter().enumerate() {
            for (ib, cb) in blocks.iter().skip(a + 1) {
                if ca.overlaps(cb) {
                    let other = cx.path(*ia);
                    cx.error(
                        *ib,
                        "overlapping-subnets",
                        format!("subnet block {cb} overlaps {ca} of `{other}`"),
                        "give every subnet of a VPC its own block",
                    );
                }
            }
        }
    }
}

impl Ref<Subnet> {
    /// The provider's id.
    pub fn id(&self) -> Output<String> {
        self.output("id", false)
    }
}
