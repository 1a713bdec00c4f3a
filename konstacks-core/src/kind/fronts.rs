//! Kinds that send traffic to other resources (load balancers to VMs): which of the stack's
//! resources each of their target groups holds, and how a *release* of those targets runs.
//!
//! The engine reads this through [`crate::kind::KindDef::fronts`] and never names a kind: a
//! replacement of a resource that an existing fronting resource targets becomes a release (new
//! targets registered and healthy before old ones are deregistered, drained, then deleted).

use serde_json::Value;

use crate::kind::expr::Expr;
use crate::kind::field_map::FieldMap;

/// The target groups of a lowered fronting resource, from its fields.
pub type FrontsFn = fn(&crate::kind::field_map::FieldMap<Expr>) -> Vec<Fronted>;

/// The version of a versioned workload in a resource's recorded inputs.
pub type VersionFn = fn(&FieldMap<Value>) -> Option<String>;

/// How the targets of one group are replaced in a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ReleasePolicy {
    /// New targets made at once above the group's size (at least 1 unless `max_unavailable` is).
    pub max_surge: u32,
    /// Old targets that may leave before their replacements are healthy (capacity given up
    /// for speed; 0 keeps every old target serving until its replacement is healthy).
    pub max_unavailable: u32,
    /// Seconds a new target has to become healthy before the release is rolled back.
    pub healthy_within_s: u32,
}

impl Default for ReleasePolicy {
    fn default() -> Self {
        Self { max_surge: 1, max_unavailable: 0, healthy_within_s: 300 }
    }
}

impl ReleasePolicy {
    /// Targets replaced at once.
    pub fn batch(&self) -> usize {
        (self.max_surge + self.max_unavailable).max(1) as usize
    }
}

/// One target group of a fronting resource, in terms of the stack's resources.
#[derive(Debug, Clone, PartialEq)]
pub struct Fronted {
    /// The group's name.
    pub group: String,
    /// Indexes (in the synthesized stack) of the resources it targets.
    pub targets: Vec<usize>,
    /// Seconds a deregistered target may keep finishing requests in flight.
    pub drain_s: u32,
    /// Seconds between the group's health probes (how often a release looks).
    pub interval_s: u32,
    /// How a release of the group runs.
    pub release: ReleasePolicy,
}

/// The node indexes an expression reads the `id` of (a list of target ids).
pub fn target_nodes(e: Option<&Expr>) -> Vec<usize> {
    let mut out = Vec::new();
    if let Some(Expr::List(items)) = e {
        for item in items {
            if let Expr::Attr(a) = item {
                if a.attr == "id" {
                    out.push(a.node);
                }
            }
        }
    }
    out
}

/// A number field of a map expression that is a literal (`deregistration_delay_s`).
pub fn literal_u32(m: &crate::kind::field_map::FieldMap<Expr>, key: &str) -> Option<u32> {
    match m.get(key) {
        Some(Expr::Lit(Value::Number(n))) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    }
}
