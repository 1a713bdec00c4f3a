//! `lgpd`: Brazilian residency (LGPD): every resource and backup in Brazil. Includes [`baseline`](super::baseline).

use konstacks_core::model::Jurisdiction;
use konstacks_core::policy::Pack;

use super::residency::ResidencyRule;

/// Pack name.
pub const NAME: &str = "lgpd";
/// Pack description.
pub const DESCRIPTION: &str = "Brazilian residency (LGPD): every resource and backup in Brazil, plus baseline";
/// Id of the residency rule.
pub const RESIDENCY_RULE: &str = "lgpd/br-residency";

/// The residency rule: every resource in Brazil.
pub fn residency_rule() -> ResidencyRule {
    ResidencyRule::new(RESIDENCY_RULE, "LGPD", "Brazil", [Jurisdiction::Brazil])
}

/// The `lgpd` pack: the residency rule plus `baseline`.
pub fn pack() -> Pack {
    Pack::new(NAME, DESCRIPTION).rule(residency_rule()).include(super::baseline::pack())
}
