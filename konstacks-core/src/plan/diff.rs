//! The planner proper: a synthesized stack against its recorded state, node by node in
//! dependency order, into the changes of a [`Plan`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde_json::Value;

use super::{finish, release, resolve, resolves_to, safety, Action, Env, FieldChange, Mode, Plan, Recovery};
use super::{Resolved, ResourceChange};
use crate::base::hash::FastMap;
use crate::state::{ResourceState, StackState};
use crate::synth::{SynthResource, Synthesized};

/// Inputs of the planner beyond stack and state.
#[derive(Debug, Default)]
pub(crate) struct PlanInput<'a> {
    pub(crate) recovered: Vec<Recovery>,
    pub(crate) moved: BTreeMap<&'a str, &'a str>,
}

/// Per node of the synthesized stack: what the planner decided, for the apply engine.
#[derive(Debug, Clone)]
pub(crate) struct NodePlan {
    pub(crate) action: Action,
    pub(crate) generation: u32,
    pub(crate) create_before_destroy: bool,
}

/// Topological order of the synthesized resources (dependencies first; ties in stack order).
fn topo_order(s: &Synthesized) -> Vec<usize> {
    let n = s.resources.len();
    let mut indeg = vec![0usize; n];
    let mut rev: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, r) in s.resources.iter().enumerate() {
        for &d in &r.deps {
            if d < n {
                indeg[i] += 1;
                rev[d].push(i);
            }
        }
    }
    // Smallest index first: a min-heap (a sorted set did the same with a tree node per entry).
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n).filter(|i| indeg[*i] == 0).map(Reverse).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        out.push(i);
        for &j in &rev[i] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    out
}

/// Diff `s` against `state`. Pure: no I/O.
pub(crate) fn diff(s: &Synthesized, state: &StackState, input: &PlanInput<'_>) -> (Plan, Vec<NodePlan>) {
    let n = s.resources.len();
    // Looked up only (never walked), so hashed.
    let path_index: FastMap<&str, usize> = s.resources.iter().enumerate().map(|(i, r)| (r.path.as_str(), i)).collect();
    // Each recorded resource goes to the node at its path, in one walk of the state: what no
    // node claims is no longer desired.
    let mut recorded: Vec<Option<&ResourceState>> = vec![None; n];
    let mut gone: Vec<(&str, &ResourceState)> = Vec::new();
    for (path, r) in &state.resources {
        match path_index.get(path.as_str()) {
            Some(&i) => recorded[i] = Some(r),
            None => gone.push((path, r)),
        }
    }
    let mut cx = Diff {
        s,
        state,
        path_index: &path_index,
        reverse_moves: input.moved.iter().map(|(f, t)| (*t, *f)).collect(),
        nodes: vec![NodePlan { action: Action::NoOp, generation: 0, create_before_destroy: false }; n],
        known: vec![None; n],
    };
    let order = topo_order(s);
    // Changes are listed in stack order. Dependencies come first in it unless `depends_on`
    // pointed at a later resource: then the changes are made in dependency order and sorted.
    let mut out: Vec<ResourceChange> = if order.iter().enumerate().all(|(k, i)| k == *i) {
        order.into_iter().map(|i| cx.node(i, recorded[i])).collect()
    } else {
        let mut changes: Vec<Option<ResourceChange>> = vec![None; n];
        for i in order {
            changes[i] = Some(cx.node(i, recorded[i]));
        }
        changes.into_iter().flatten().collect()
    };
    // Deletes: state entries no longer desired (and not moved), then deposed instances.
    for (path, r) in gone {
        if !input.moved.contains_key(path) {
            out.push(delete_change(path, r, false));
        }
    }
    out.extend(deposed_changes(state));

    let mut plan = finish(
        &s.name,
        Some(s.stage),
        Some(s.region.clone()),
        state,
        out,
        input.recovered.clone(),
        outputs_preview(s, &cx.known),
    );
    plan.placement_change = safety::placement_change(s, state);
    plan.releases = release::planned(s, &plan.changes, state);
    (plan, cx.nodes)
}

/// The planner's walk over the nodes of one synthesized stack, in dependency order.
struct Diff<'a> {
    s: &'a Synthesized,
    state: &'a StackState,
    path_index: &'a FastMap<&'a str, usize>,
    /// Move targets to their sources.
    reverse_moves: BTreeMap<&'a str, &'a str>,
    /// What was decided per node so far.
    nodes: Vec<NodePlan>,
    /// The recorded attributes of the nodes kept or updated so far (their dependents read them).
    known: Vec<Option<&'a ResourceState>>,
}

impl<'a> Diff<'a> {
    /// The change of node `i`, whose record at its own path is `at_path`.
    fn node(&mut self, i: usize, at_path: Option<&'a ResourceState>) -> ResourceChange {
        let (s, state) = (self.s, self.state);
        let r = &s.resources[i];
        let moved_from = if at_path.is_none() {
            self.reverse_moves.get(r.path.as_str()).filter(|f| state.resources.contains_key(**f)).map(|f| f.to_string())
        } else {
            None
        };
        let prior = at_path.or_else(|| moved_from.as_deref().and_then(|f| state.resources.get(f)));
        // A path whose old instance still waits for deletion (a replacement that failed half
        // way) must not reuse that instance's name.
        let generation = prior.map(|p| p.generation).unwrap_or_else(|| {
            state.deposed.iter().filter(|d| d.path == r.path).map(|d| d.resource.generation + 1).max().unwrap_or(0)
        });
        let prior_name = prior.and_then(|p| p.inputs.get("name")).and_then(Value::as_str);
        let env = Env {
            stack: &s.name,
            path: &r.path,
            attrs: &self.known,
            generation,
            prior_name,
            mode: Mode::Plan,
            secrets: None,
            field: "",
        };
        let mut change = ResourceChange {
            path: r.path.clone(),
            kind: r.kind,
            provider: r.provider.clone(),
            action: Action::NoOp,
            id: prior.map(|p| p.id.clone()),
            replace_reasons: Vec::new(),
            create_before_destroy: false,
            moved_from,
            deposed: false,
            fields: Vec::new(),
            data_loss: false,
            deletion_protected: false,
        };
        match prior {
            None => {
                change.action = Action::Create;
                change.fields = created_fields(r, &env);
            }
            Some(p) => {
                change.fields = changed_fields(r, p, &env);
                let mut reasons: Vec<String> =
                    change.fields.iter().filter(|f| f.forces_replacement).map(|f| f.name.clone()).collect();
                if p.kind != r.kind {
                    reasons.push(format!("kind {} -> {}", p.kind, r.kind));
                }
                if p.provider != r.provider {
                    reasons.push(format!("provider {} -> {}", p.provider, r.provider));
                }
                change.action = if !reasons.is_empty() {
                    Action::Replace
                } else if !change.fields.is_empty() {
                    Action::Update
                } else {
                    Action::NoOp
                };
                change.replace_reasons = reasons;
            }
        }
        safety::mark(&mut change, prior);
        let np = &mut self.nodes[i];
        np.action = change.action;
        np.generation = match change.action {
            Action::Replace => generation + 1,
            _ => generation,
        };
        if change.action == Action::Replace {
            self.nodes[i].create_before_destroy = self.create_before_destroy(r, prior);
            change.create_before_destroy = self.nodes[i].create_before_destroy;
        }
        if matches!(change.action, Action::NoOp | Action::Update) {
            self.known[i] = prior;
        }
        change
    }

    /// Whether replacing `r` (recorded as `prior`) may create its successor first: unless its
    /// kind forbids it or a replaced dependency had to be destroyed first (its dependents must
    /// go before it, so they cannot outlive it). The old instance's dependencies count too: if
    /// one of them must be destroyed first, the old instance has to go before it, so it cannot
    /// wait for its successor.
    fn create_before_destroy(&self, r: &SynthResource, prior: Option<&ResourceState>) -> bool {
        let prior_deps =
            prior.map(|p| p.deps.iter().filter_map(|d| self.path_index.get(d.as_str()).copied()).collect::<Vec<_>>());
        let dep_dbc = r
            .deps
            .iter()
            .chain(prior_deps.iter().flatten())
            .any(|d| self.nodes[*d].action == Action::Replace && !self.nodes[*d].create_before_destroy);
        r.kind.create_before_destroy() && !dep_dbc
    }
}

/// The fields of a resource to create, all new (tags aside).
fn created_fields(r: &SynthResource, env: &Env<'_>) -> Vec<FieldChange> {
    let mut out = Vec::with_capacity(r.fields.len());
    for (k, e) in &r.fields {
        if k == "tags" {
            continue;
        }
        // Plan mode never needs secrets, so resolving cannot fail.
        let (after, unknown) = match resolve(e, env).unwrap_or(Resolved::Unknown) {
            Resolved::Known(v) => (Some(v), false),
            Resolved::Unknown => (None, true),
        };
        out.push(FieldChange {
            name: k.to_string(),
            before: None,
            after,
            after_unknown: unknown,
            sensitive: e.is_secret(),
            forces_replacement: false,
        });
    }
    out
}

/// The fields of a recorded resource `p` that `r` changes.
fn changed_fields(r: &SynthResource, p: &ResourceState, env: &Env<'_>) -> Vec<FieldChange> {
    let force_new = r.kind.force_new_fields();
    let mut out = Vec::new();
    // Both sides are sorted by field name: one merged walk instead of a lookup each.
    let mut recorded = p.inputs.iter().peekable();
    for (k, e) in &r.fields {
        while recorded.next_if(|(name, _)| *name < k).is_some() {}
        let before = recorded.next_if(|(name, _)| *name == k).map(|(_, v)| v);
        // A field added to a kind after this resource was applied is absent from its recorded
        // inputs: absent and null are the same (no churn on upgrade). Most fields of most plans
        // are unchanged: compared in place, without building their value.
        if resolves_to(e, before.unwrap_or(&Value::Null), env) == Some(true) {
            continue;
        }
        let v = resolve(e, env).unwrap_or(Resolved::Unknown);
        if matches!(&v, Resolved::Known(v) if Some(v) == before || (v.is_null() && before.is_none())) {
            continue;
        }
        let (after, unknown) = match v {
            Resolved::Known(v) => (Some(v), false),
            Resolved::Unknown => (None, true),
        };
        out.push(FieldChange {
            name: k.to_string(),
            before: Some(before.cloned().unwrap_or(Value::Null)),
            after,
            after_unknown: unknown,
            sensitive: e.is_secret(),
            forces_replacement: force_new.contains(&k) || r.replaced_on_change.iter().any(|f| f == k),
        });
    }
    out
}

/// The deletion of the resource `r` recorded at `path` (a deposed instance or a current one).
fn delete_change(path: &str, r: &crate::state::ResourceState, deposed: bool) -> ResourceChange {
    let mut change = ResourceChange {
        path: path.to_string(),
        kind: r.kind,
        provider: r.provider.clone(),
        action: Action::Delete,
        id: Some(r.id.clone()),
        replace_reasons: Vec::new(),
        create_before_destroy: false,
        moved_from: None,
        deposed,
        fields: Vec::new(),
        data_loss: false,
        deletion_protected: false,
    };
    safety::mark(&mut change, Some(r));
    change
}

fn deposed_changes(state: &StackState) -> Vec<ResourceChange> {
    state.deposed.iter().map(|d| delete_change(&d.path, &d.resource, true)).collect()
}

fn outputs_preview(s: &Synthesized, known: &[Option<&crate::state::ResourceState>]) -> BTreeMap<String, Value> {
    s.exports
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.value_with(|node, _, attr| known.get(node).copied().flatten().and_then(|a| a.attr(attr))),
            )
        })
        .collect()
}

/// A plan that deletes everything in state.
pub(crate) fn destroy_plan(state: &StackState, recovered: Vec<Recovery>) -> Plan {
    let mut changes: Vec<ResourceChange> =
        state.resources.iter().map(|(path, r)| delete_change(path, r, false)).collect();
    changes.extend(deposed_changes(state));
    finish(&state.stack, None, None, state, changes, recovered, BTreeMap::new())
}
