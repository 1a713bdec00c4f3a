//! Compliance rule packs: named sets of [`Rule`]s checked by the policy engine of
//! [`konstacks_core::policy`] against a synthesized stack before anything is applied.
//!
//! One file per pack. `baseline` holds what every stack should satisfy; `gdpr` and the residency
//! packs (`popia`, `pdpa`, `dpdp`, `lgpd`) add a data-residency rule on top of it; `hardened`
//! adds the stricter database and network rules health and finance workloads need. Every rule
//! type is public, so a user pack can reuse single rules, and [`residency::ResidencyRule`] builds
//! a residency rule for any set of jurisdictions.
//!
//! The rules encode engineering controls that help with these laws; they are not legal advice
//! and passing them does not by itself make a system compliant.
//!
//! [`Rule`]: konstacks_core::policy::Rule

pub mod baseline;
pub mod dpdp;
pub mod gdpr;
pub mod hardened;
pub mod lgpd;
pub mod pdpa;
pub mod popia;
pub mod residency;

use konstacks_core::policy::Pack;

/// Name and description of a built-in pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PackInfo {
    /// Name (`gdpr`), as accepted by [`by_name`].
    pub name: &'static str,
    /// One line.
    pub description: &'static str,
}

/// Builds a pack.
type Build = fn() -> Pack;

/// Every built-in pack: name, description and constructor.
const PACKS: &[(PackInfo, Build)] = &[
    (PackInfo { name: baseline::NAME, description: baseline::DESCRIPTION }, baseline::pack),
    (PackInfo { name: gdpr::NAME, description: gdpr::DESCRIPTION }, gdpr::pack),
    (PackInfo { name: popia::NAME, description: popia::DESCRIPTION }, popia::pack),
    (PackInfo { name: pdpa::NAME, description: pdpa::DESCRIPTION }, pdpa::pack),
    (PackInfo { name: dpdp::NAME, description: dpdp::DESCRIPTION }, dpdp::pack),
    (PackInfo { name: lgpd::NAME, description: lgpd::DESCRIPTION }, lgpd::pack),
    (PackInfo { name: hardened::NAME, description: hardened::DESCRIPTION }, hardened::pack),
];

/// The built-in packs, in a stable order.
pub fn all() -> Vec<PackInfo> {
    PACKS.iter().map(|(info, _)| *info).collect()
}

/// The built-in pack named `name` (case-insensitive), or `None`; [`all`] lists the names.
pub fn by_name(name: &str) -> Option<Pack> {
    let name = name.trim();
    PACKS.iter().find(|(info, _)| info.name.eq_ignore_ascii_case(name)).map(|(_, build)| build())
}
