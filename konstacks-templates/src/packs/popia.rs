//! `popia`: South African residency (POPIA): every resource and backup in South Africa. Includes [`baseline`](super::baseline).

use konstacks_core::model::Jurisdiction;
use konstacks_core::policy::Pack;

use super::residency::ResidencyRule;

/// Pack name.
pub const NAME: &str = "popia";
/// Pack description.
pub const DESCRIPTION: &str =
    "South African residency (POPIA): every resource and backup in South Africa, plus baseline";
/// Id of the residency rule.
pub const RESIDENCY_RULE: &str = "popia/za-residency";

/// The residency rule: every resource in South Africa.
pub fn residency_rule() -> ResidencyRule {
    ResidencyRule::new(RESIDENCY_RULE, "POPIA", "South Africa", [Jurisdiction::SouthAfrica])
}

/// The `popia` pack: the residency rule plus `baseline`.
pub fn pack() -> Pack {
    Pack::new(NAME, DESCRIPTION).rule(residency_rule()).include(super::baseline::pack())
}
