//! `gdpr`: EU/EEA residency (GDPR): every resource and backup in the EU/EEA. Includes [`baseline`](super::baseline).

use konstacks_core::model::Jurisdiction;
use konstacks_core::policy::Pack;

use super::residency::ResidencyRule;

/// Pack name.
pub const NAME: &str = "gdpr";
/// Pack description.
pub const DESCRIPTION: &str = "EU/EEA residency (GDPR): every resource and backup in the EU/EEA, plus baseline";
/// Id of the residency rule.
pub const RESIDENCY_RULE: &str = "gdpr/eu-residency";

/// The residency rule: every resource in the EU/EEA.
pub fn residency_rule() -> ResidencyRule {
    ResidencyRule::new(RESIDENCY_RULE, "GDPR", "the EU/EEA", [Jurisdiction::Eu])
}

/// The `gdpr` pack: the residency rule plus `baseline`.
pub fn pack() -> Pack {
    Pack::new(NAME, DESCRIPTION).rule(residency_rule()).include(super::baseline::pack())
}
