//! `pdpa`: Singapore residency (PDPA): every resource and backup in Singapore. Includes [`baseline`](super::baseline).

use konstacks_core::model::Jurisdiction;
use konstacks_core::policy::Pack;

use super::residency::ResidencyRule;

/// Pack name.
pub const NAME: &str = "pdpa";
/// Pack description.
pub const DESCRIPTION: &str = "Singapore residency (PDPA): every resource and backup in Singapore, plus baseline";
/// Id of the residency rule.
pub const RESIDENCY_RULE: &str = "pdpa/sg-residency";

/// The residency rule: every resource in Singapore.
pub fn residency_rule() -> ResidencyRule {
    ResidencyRule::new(RESIDENCY_RULE, "PDPA", "Singapore", [Jurisdiction::Singapore])
}

/// The `pdpa` pack: the residency rule plus `baseline`.
pub fn pack() -> Pack {
    Pack::new(NAME, DESCRIPTION).rule(residency_rule()).include(super::baseline::pack())
}
