//! What a plan says about safety, beyond the changes themselves: the data a delete or a
//! replacement loses, the deletion protection it meets, a move of the whole stack to another
//! region or jurisdiction, and resources the cloud holds for the stack that state does not know.
//! The planner marks them; the engine refuses a run that meets one it was not told it may.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kind::Kind;
use crate::model::placement::Placement;
use crate::plan::{Action, Plan, ResourceChange};
use crate::state::{ResourceState, StackPlacement, StackState};
use crate::synth::Synthesized;

/// A plan that moves an applied stack to another region or jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementChange {
    /// Where the stack was applied.
    pub from: StackPlacement,
    /// Where the stack definition now puts it.
    pub to: StackPlacement,
}

/// A resource tagged for the stack that state does not know: left by a run whose state was
/// lost or damaged. Planning around it would create a second copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Untracked {
    /// Provider holding it.
    pub provider: String,
    /// Kind.
    pub kind: Kind,
    /// Provider id.
    pub id: String,
    /// The logical path its tags name, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Untracked {
    /// The command that adopts it at the path its tags name.
    pub fn import_hint(&self) -> String {
        match &self.path {
            Some(p) => format!("konstacks import {p} {}", self.id),
            None => format!("konstacks import PATH {}", self.id),
        }
    }
}

/// The placement a synthesized stack asks for, as state records it.
pub fn placement_of(s: &Synthesized) -> StackPlacement {
    let jurisdiction = match &s.placement {
        Placement::Within(j) | Placement::RegionWithin(_, j) => Some(*j),
        _ => None,
    };
    StackPlacement { region: s.region.clone(), jurisdiction }
}

/// Where the stack was applied: the recorded placement, or for states written before it was
/// recorded, the region its resources report.
pub fn applied_placement(state: &StackState) -> Option<StackPlacement> {
    if state.resources.is_empty() {
        return None;
    }
    state.placement.clone().or_else(|| {
        state
            .resources
            .values()
            .find_map(|r| r.inputs.get("region").and_then(Value::as_str))
            .map(|region| StackPlacement { region: region.to_string(), jurisdiction: None })
    })
}

/// The move a plan of `s` against `state` would make, if any. Naming a jurisdiction where none
/// was named before (same region) is not a move; dropping or changing one is.
pub(crate) fn placement_change(s: &Synthesized, state: &StackState) -> Option<PlacementChange> {
    let from = applied_placement(state)?;
    let to = placement_of(s);
    let region_moves = from.region != to.region;
    let jurisdiction_changes = from.jurisdiction.is_some() && from.jurisdiction != to.jurisdiction;
    (region_moves || jurisdiction_changes).then_some(PlacementChange { from, to })
}

/// Mark what a change would lose: called once its action is known, with the state it starts from.
pub(crate) fn mark(change: &mut ResourceChange, prior: Option<&ResourceState>) {
    if !matches!(change.action, Action::Delete | Action::Replace) {
        return;
    }
    let def = change.kind.def();
    // Forgetting a resource the stack does not own loses nothing.
    change.data_loss = def.holds_data && !prior.is_some_and(|p| crate::kind::field::common::is_unmanaged(&p.inputs));
    change.deletion_protected = match (def.deletion_protection, prior) {
        (Some(field), Some(p)) => {
            [p.inputs.get(field), p.attr(field)].into_iter().flatten().any(|v| v.as_bool() == Some(true))
        }
        _ => false,
    };
}

/// The changes that lose data.
pub fn data_losses(plan: &Plan) -> impl Iterator<Item = &ResourceChange> {
    plan.changes.iter().filter(|c| c.data_loss)
}

/// The loud part of a rendered plan: the placement move and untracked resources before the
/// changes.
pub(crate) fn render_banner(plan: &Plan, out: &mut String, paint: &dyn Fn(&str, &str) -> String) {
    if let Some(m) = &plan.placement_change {
        let _ = writeln!(
            out,
            "\n{} this plan moves the stack from {} to {}: every resource is replaced in the new place and \
             its data is left behind or deleted. Apply refuses it unless given --allow-placement-change.",
            paint("1;31", "!! PLACEMENT CHANGE:"),
            m.from,
            m.to
        );
    }
    if !plan.untracked.is_empty() {
        let _ = writeln!(
            out,
            "\n{} the cloud holds {} resource(s) tagged for stack {} that its state does not know \
             (state lost or damaged?). Apply refuses to create duplicates; adopt each one, or delete it:",
            paint("1;31", "!! UNTRACKED RESOURCES:"),
            plan.untracked.len(),
            plan.stack
        );
        for u in &plan.untracked {
            let _ = writeln!(
                out,
                "     {} {} [{}]: {}",
                u.kind,
                u.path.as_deref().unwrap_or("(no path tag)"),
                u.id,
                u.import_hint()
            );
        }
    }
}

/// The marks under one change.
pub(crate) fn render_marks(plan: &Plan, c: &ResourceChange, out: &mut String, paint: &dyn Fn(&str, &str) -> String) {
    if c.data_loss {
        let remedy = if plan.stage.is_some() {
            format!("apply refuses unless given --allow-data-loss {}", c.path)
        } else {
            "destroy deletes it".to_string()
        };
        let _ = writeln!(
            out,
            "      {} the data this {} holds is deleted; {remedy}",
            paint("1;31", "!! DATA LOSS:"),
            c.kind
        );
    }
    if c.deletion_protected {
        let _ = writeln!(
            out,
            "      {} deletion protection is on; refused unless given --disable-deletion-protection, \
             which turns it off (an update) right before the delete",
            paint("1;31", "!! PROTECTED:")
        );
    }
}

/// The closing lines about data loss.
pub(crate) fn render_footer(plan: &Plan, out: &mut String) {
    let lost: Vec<&str> = data_losses(plan).map(|c| c.path.as_str()).collect();
    if !lost.is_empty() {
        let _ = writeln!(out, "Data loss: {} resource(s) holding data are deleted: {}.", lost.len(), lost.join(", "));
    }
}
