//! Releases in a plan: replacements of resources that an existing fronting resource (a load
//! balancer) sends traffic to, with their batches and versions. The engine runs them as
//! releases (see `engine/release.rs`); the plan shows them as such.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kind::field_map::FieldMap;
use crate::kind::fronts::ReleasePolicy;
use crate::plan::{Action, Plan, ResourceChange};
use crate::state::StackState;
use crate::synth::Synthesized;

/// One release: the targets of one group of a fronting resource being replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRelease {
    /// Path of the fronting resource.
    pub front: String,
    /// Its target group.
    pub group: String,
    /// The replaced targets, in batches run one after the other.
    pub batches: Vec<Vec<String>>,
    /// How the batches run.
    pub policy: ReleasePolicy,
    /// The version running now, when the kind has one (the first target's).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from_version: Option<String>,
    /// The version released.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to_version: Option<String>,
}

impl PlannedRelease {
    /// Every target path.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.batches.iter().flatten().map(String::as_str)
    }
}

/// The releases of a plan.
pub(crate) fn planned(s: &Synthesized, changes: &[ResourceChange], state: &StackState) -> Vec<PlannedRelease> {
    let mut out = Vec::new();
    let mut taken = std::collections::BTreeSet::new();
    for (j, front) in s.resources.iter().enumerate() {
        let Some(fronts) = front.kind.def().fronts else { continue };
        let Some(fc) = changes.get(j) else { continue };
        if fc.id.is_none() || !matches!(fc.action, Action::NoOp | Action::Update) {
            continue;
        }
        for g in fronts(&front.fields) {
            let targets: Vec<usize> = g
                .targets
                .iter()
                .copied()
                .filter(|&t| {
                    changes.get(t).is_some_and(|c| c.action == Action::Replace && c.create_before_destroy)
                        && taken.insert(t)
                })
                .collect();
            let Some(&first) = targets.first() else { continue };
            let paths: Vec<String> = targets.iter().map(|&t| s.resources[t].path.clone()).collect();
            let batches = paths.chunks(g.release.batch()).map(<[String]>::to_vec).collect();
            let (from_version, to_version) = versions(s, changes, state, first);
            out.push(PlannedRelease {
                front: front.path.clone(),
                group: g.group.clone(),
                batches,
                policy: g.release,
                from_version,
                to_version,
            });
        }
    }
    out
}

/// The version before and after of the target at `node`, when its kind has versions.
fn versions(
    s: &Synthesized,
    changes: &[ResourceChange],
    state: &StackState,
    node: usize,
) -> (Option<String>, Option<String>) {
    let r = &s.resources[node];
    let Some(version_of) = r.kind.def().version_of else { return (None, None) };
    let before = state.resources.get(&r.path).and_then(|p| version_of(&p.inputs));
    let after_inputs: FieldMap<Value> = match state.resources.get(&r.path) {
        Some(p) => {
            let mut m = p.inputs.clone();
            for f in &changes[node].fields {
                m.insert(f.name.clone().into(), f.after.clone().unwrap_or(Value::Null));
            }
            m
        }
        None => FieldMap::new(),
    };
    (before, version_of(&after_inputs))
}

/// The release a change belongs to.
pub(crate) fn of<'p>(plan: &'p Plan, path: &str) -> Option<&'p PlannedRelease> {
    plan.releases.iter().find(|r| r.targets().any(|t| t == path))
}

/// The release lines of a rendered plan.
pub(crate) fn render(plan: &Plan, out: &mut String) {
    for r in &plan.releases {
        let n = r.targets().count();
        let version = match (&r.from_version, &r.to_version) {
            (Some(a), Some(b)) => format!("; version {a} -> {b}"),
            (None, Some(b)) => format!("; version {b}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "Release: {n} target(s) of {} (group `{}`) in {} batch(es), max surge {}, max unavailable {}{version}",
            r.front,
            r.group,
            r.batches.len(),
            r.policy.max_surge,
            r.policy.max_unavailable,
        );
        let _ = writeln!(
            out,
            "  each new instance must pass the load balancer's health check within {}s before an old one leaves; \
             a failure rolls the whole release back",
            r.policy.healthy_within_s
        );
    }
}
