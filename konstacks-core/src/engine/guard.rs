//! The safety gate of a run: before any change reaches a cloud, a plan that would lose data,
//! meet deletion protection, move the stack, touch another stack's resource or create
//! duplicates of resources state lost track of is refused, with every hazard and the option that
//! allows it listed at once.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::error::Error;
use crate::kind::{common, Kind, Selector, TAG_PATH, TAG_STACK};
use crate::plan::safety::Untracked;
use crate::plan::{Action, Plan};
use crate::state::StackState;

pub use super::refusal::{Hazard, Refusal};
use super::report::ApplyOptions;
use super::Engine;

/// The tag naming the stack a resource belongs to, from its attributes.
pub(crate) fn owner_of(attrs: &BTreeMap<String, Value>) -> Option<&str> {
    owner_in(attrs.get("tags"))
}

/// The same, from a resource's `tags` attribute.
fn owner_in(tags: Option<&Value>) -> Option<&str> {
    tags.and_then(|t| t.get(TAG_STACK)).and_then(Value::as_str)
}

/// The hazards of running `plan` with `opts`, and with `state` (the state it was planned from)
/// those of resources another stack owns. `applying` is false for a destroy, which is its own
/// consent to lose data.
pub fn hazards(plan: &Plan, state: Option<&StackState>, opts: &ApplyOptions, applying: bool) -> Vec<Hazard> {
    let mut out = Vec::new();
    if let Some(m) = &plan.placement_change {
        if applying && !opts.allow_placement_change {
            out.push(Hazard::PlacementChange(m.clone()));
        }
    }
    if !opts.ignore_untracked {
        out.extend(plan.untracked.iter().cloned().map(Hazard::Untracked));
    }
    for c in plan.actionable() {
        let prior = state.and_then(|state| c.recorded(state));
        // A resource the stack uses without owning it is the other stack's by design: this run
        // never changes nor deletes it (the engine forgets it).
        let used = prior.is_some_and(|p| common::is_unmanaged(&p.inputs));
        if let Some(owner) = prior.and_then(|p| owner_in(p.attr("tags"))).filter(|o| *o != plan.stack && !used) {
            out.push(Hazard::OtherStack {
                path: c.path.clone(),
                id: c.id.clone().unwrap_or_default(),
                owner: owner.to_string(),
            });
        }
        if applying && c.data_loss && !opts.data_loss.allows(&c.path) {
            out.push(Hazard::DataLoss { path: c.path.clone(), kind: c.kind, action: c.action });
        }
        if c.deletion_protected && !opts.disable_deletion_protection {
            out.push(Hazard::DeletionProtected { path: c.path.clone(), kind: c.kind });
        }
    }
    out
}

/// Refuse the run if it meets a hazard it was not told it may (`found`: those the cloud showed).
pub(crate) fn check(
    plan: &Plan,
    state: &StackState,
    opts: &ApplyOptions,
    applying: bool,
    found: Vec<Hazard>,
) -> Result<(), Error> {
    let mut hazards = hazards(plan, Some(state), opts, applying);
    for h in found {
        if !hazards.contains(&h) {
            hazards.push(h);
        }
    }
    if hazards.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(Box::new(Refusal { stack: plan.stack.clone(), hazards })))
    }
}

impl Engine {
    /// Resources of the kinds `plan` creates that the cloud holds tagged for the stack and
    /// state does not know (one batched listing per provider and kind).
    pub(super) async fn untracked(&self, plan: &Plan, state: &StackState) -> Result<Vec<Untracked>, Error> {
        let kinds: BTreeSet<(String, Kind)> = plan
            .changes
            .iter()
            .filter(|c| matches!(c.action, Action::Create | Action::Replace))
            .map(|c| (c.provider.clone(), c.kind))
            .collect();
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let known: BTreeSet<&str> = state
            .resources
            .values()
            .chain(state.deposed.iter().map(|d| &d.resource))
            .map(|r| r.id.as_str())
            .chain(state.pending.iter().filter_map(|p| p.id.as_deref()))
            .chain(plan.recovered.iter().filter_map(|r| r.removes.as_deref()))
            .collect();
        let cx = self.cx(&plan.stack);
        let sel = Selector::Stack(plan.stack.clone());
        let mut out = Vec::new();
        for (provider, kind) in kinds {
            let slot = self.slot(&provider)?;
            let found =
                self.with_retries(slot, &cx, || slot.provider.read_many(&cx, kind, &sel)).await.map_err(|e| {
                    Error::Provider { context: format!("listing the {kind}s of stack {}", plan.stack), source: e }
                })?;
            for (id, attrs) in found {
                if known.contains(id.as_str()) || owner_of(&attrs) != Some(plan.stack.as_str()) {
                    continue;
                }
                let path = attrs.get("tags").and_then(|t| t.get(TAG_PATH)).and_then(Value::as_str).map(str::to_string);
                out.push(Untracked { provider: provider.clone(), kind, id, path });
            }
        }
        Ok(out)
    }
}

impl Engine {
    /// The resources `plan` would update, replace or delete whose tags in the cloud now name
    /// another stack (one batched read per provider and kind): every operation on an existing
    /// resource checks its owner first.
    pub(super) async fn foreign(&self, plan: &Plan, state: &StackState) -> Result<Vec<Hazard>, Error> {
        let mut ids: BTreeMap<(String, Kind), Vec<(String, String)>> = BTreeMap::new();
        for c in plan.actionable().filter(|c| c.action != Action::Create) {
            if let Some(id) = &c.id {
                ids.entry((c.provider.clone(), c.kind)).or_default().push((id.clone(), c.path.clone()));
            }
        }
        let cx = self.cx(&plan.stack);
        let mut out = Vec::new();
        for ((provider, kind), wanted) in ids {
            let slot = self.slot(&provider)?;
            let sel = Selector::Ids(wanted.iter().map(|(id, _)| id.clone()).collect());
            let found = self
                .with_retries(slot, &cx, || slot.provider.read_many(&cx, kind, &sel))
                .await
                .map_err(|e| Error::Provider { context: format!("reading the {kind}s the run changes"), source: e })?;
            for (id, attrs) in found {
                let Some(owner) = owner_of(&attrs).filter(|o| *o != plan.stack) else { continue };
                for (_, path) in wanted.iter().filter(|(i, _)| *i == id) {
                    // Taken over with `import --force`: state recorded the owner's tag as the
                    // cloud showed it, and this run re-tags the resource.
                    if state.resources.get(path).is_some_and(|r| common::is_unmanaged(&r.inputs)) {
                        continue;
                    }
                    let recorded = state.resources.get(path).and_then(|r| r.inputs.get("tags"));
                    if recorded.and_then(|t| t.get(TAG_STACK)).and_then(Value::as_str) == Some(owner) {
                        continue;
                    }
                    out.push(Hazard::OtherStack { path: path.clone(), id: id.clone(), owner: owner.to_string() });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::report::DataLossConsent;

    #[test]
    fn consent_by_path_allows_only_that_path() {
        let c = DataLossConsent::Paths(["data/db".to_string()].into_iter().collect());
        assert!(c.allows("data/db"));
        assert!(!c.allows("data/cache"));
        assert!(DataLossConsent::All.allows("anything"));
        assert!(!DataLossConsent::Refuse.allows("data/db"));
    }
}
