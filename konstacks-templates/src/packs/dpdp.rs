//! `dpdp`: Indian residency (DPDP): every resource and backup in India. Includes [`baseline`](super::baseline).

use konstacks_core::model::Jurisdiction;
use konstacks_core::policy::Pack;

use super::residency::ResidencyRule;

/// Pack name.
pub const NAME: &str = "dpdp";
/// Pack description.
pub const DESCRIPTION: &str = "Indian residency (DPDP): every resource and backup in India, plus baseline";
/// Id of the residency rule.
pub const RESIDENCY_RULE: &str = "dpdp/in-residency";

/// The residency rule: every resource in India.
pub fn residency_rule() -> ResidencyRule {
    ResidencyRule::new(RESIDENCY_RULE, "DPDP Act", "India", [Jurisdiction::India])
}

/// The `dpdp` pack: the residency rule plus `baseline`.
pub fn pack() -> Pack {
    Pack::new(NAME, DESCRIPTION).rule(residency_rule()).include(super::baseline::pack())
}
