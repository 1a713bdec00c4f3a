//! The VPC kind: a private network (AWS VPC, DigitalOcean VPC, GCP network).

use crate::kind::{always_offered, no_stack_check, Field, Kind, KindDef, ResourceKind, Tags};
use crate::kind::{cidr_text, parse_cidr, LowerCx};
use crate::model::refs::{Output, Ref};

/// A private network.
#[derive(Debug, Clone)]
pub struct Vpc {
    pub(crate) cidr: String,
}

impl Vpc {
    /// A VPC with the given IPv4 block, for example `"10.0.0.0/16"`.
    pub fn new(cidr: impl Into<String>) -> Self {
        Self { cidr: cidr.into() }
    }
}

/// Fields of a VPC.
pub mod field {
    use super::*;
    /// Physical name.
    pub const NAME: Field<Vpc, String> = Field::new("name");
    /// Region.
    pub const REGION: Field<Vpc, String> = Field::new("region");
    /// IPv4 block.
    pub const CIDR: Field<Vpc, String> = Field::new("cidr");
    /// Tags.
    pub const TAGS: Field<Vpc, Tags> = Field::new("tags");
}

/// A resolved VPC.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VpcSpec {
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// IPv4 block.
    pub cidr: String,
    /// Tags.
    pub tags: Tags,
}

/// An observed VPC.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VpcObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// IPv4 block.
    pub cidr: String,
    /// Tags.
    pub tags: Tags,
}
crate::kind::observed!(VpcObserved);

/// The VPC kind.
pub const VPC: KindDef = KindDef {
    id: "vpc",
    fields: &[field::CIDR.name(), field::NAME.name(), field::REGION.name(), field::TAGS.name()],
    force_new: &[field::CIDR.name(), field::REGION.name()],
    secrets: &[],
    rotatable_secrets: &[],
    create_before_destroy: true,
    holds_data: false,
    deletion_protection: None,
    price: None,
    offered_by: always_offered,
    check_stack: no_stack_check,
    fronts: None,
    version_of: None,
};

impl ResourceKind for Vpc {
    type Spec = VpcSpec;
    type Observed = VpcObserved;
    const KIND: Kind = Kind::of(&VPC);

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let parsed = parse_cidr(cx, "VPC CIDR", &self.cidr);
        if let Some(c) = &parsed {
            if !(8..=28).contains(&c.prefix()) {
                cx.error(
                    "cidr-size",
                    format!("VPC block {c} must have a prefix between /8 and /28"),
                    "use for example a /16",
                );
            }
        }
        // The canonical form of the block parsed above (the text as given when it did not parse).
        cx.set(field::CIDR, parsed.map_or_else(|| self.cidr.clone(), |c| cidr_text(&self.cidr, &c)));
    }
}

impl Ref<Vpc> {
    /// The provider's id.
    pub fn id(&self) -> Output<String> {
        self.output("id", false)
    }
}
