//! The planner: diff a synthesized stack against state into create / update / replace /
//! delete / no-op, with field-level before -> after, the field that forces each replacement,
//! and values unknown until apply shown as such. Plans are plain serde data with a format
//! version (documented in `docs/plan-format.md`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod action;
pub mod markdown;
mod resolve;
pub(crate) use resolve::{resolve, resolves_to, Env, MissingSecret, Mode, Resolved, SecretLookup};
pub mod release;
pub mod safety;

use crate::base::hash::FastMap;
use crate::kind::Kind;
use crate::model::placement::Stage;
pub use crate::plan::action::Action;
use crate::state::{PendingOp, ResourceState, StackState};
use crate::synth::{SynthResource, Synthesized};

/// Version of the JSON plan format.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// One field's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Field name.
    pub name: String,
    /// Value in state (absent on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// Value after apply, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// The value is known only after apply.
    pub after_unknown: bool,
    /// The value is secret: `before`/`after` hold the redaction marker only.
    pub sensitive: bool,
    /// This field's change forces the replacement.
    pub forces_replacement: bool,
}

/// The planned change of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// Logical path.
    pub path: String,
    /// Kind.
    pub kind: Kind,
    /// Provider.
    pub provider: String,
    /// What happens.
    pub action: Action,
    /// Provider id today (absent on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why a replacement is needed (the fields that force it).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub replace_reasons: Vec<String>,
    /// Replacement order: the new one is created before the old one is deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub create_before_destroy: bool,
    /// The old path, when a `moved` declaration renamed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    /// This delete removes an old instance left by an earlier create-before-destroy.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub deposed: bool,
    /// Field-level changes (empty for no-op and delete).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub fields: Vec<FieldChange>,
    /// The delete (or the delete half of a replacement) loses the data the resource holds.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub data_loss: bool,
    /// The resource has deletion protection on: the delete needs it turned off first.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub deletion_protected: bool,
}

/// An interrupted operation found in state, and what the engine will do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// Logical path.
    pub path: String,
    /// What was interrupted.
    pub interrupted: crate::state::OpKind,
    /// What was found and done.
    pub outcome: String,
    /// A resource the next apply removes (the new instance of an interrupted release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removes: Option<String>,
}

/// Counts by action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Creates.
    pub create: usize,
    /// In-place updates.
    pub update: usize,
    /// Replacements.
    pub replace: usize,
    /// Deletes.
    pub delete: usize,
    /// Unchanged.
    pub no_op: usize,
}

/// A plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Format version ([`PLAN_FORMAT_VERSION`]).
    pub format_version: u32,
    /// Stack.
    pub stack: String,
    /// Stage, when planned from a stack definition (absent for destroy plans).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// Region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The state serial the plan was made against.
    pub state_serial: u64,
    /// Counts.
    pub summary: Summary,
    /// Every resource, in a deterministic order: the stack's order, then deletes by path.
    pub changes: Vec<ResourceChange>,
    /// Interrupted operations reconciled before planning.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub recovered: Vec<Recovery>,
    /// Stack outputs after apply (secret ones redacted; unknown ones null).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub outputs: BTreeMap<String, Value>,
    /// Monthly cost before and after, per change (when the engine prices plans).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cost: Option<crate::cost::report::PlanCost>,
    /// Result of the compliance packs (when the engine has a policy).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub policy: Option<PlanPolicy>,
    /// The stack moves to another region or jurisdiction (apply refuses unless allowed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub placement_change: Option<safety::PlacementChange>,
    /// Resources tagged for the stack that state does not know (apply refuses to plan around them).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub untracked: Vec<safety::Untracked>,
    /// Replacements behind a load balancer, run as releases.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub releases: Vec<release::PlannedRelease>,
}

/// The compliance result carried by a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanPolicy {
    /// Packs checked.
    pub packs: Vec<String>,
    /// Unsuppressed errors (an apply is refused while there are any).
    pub errors: usize,
    /// Unsuppressed warnings.
    pub warnings: usize,
    /// Findings not suppressed.
    pub findings: Vec<crate::policy::Finding>,
}

impl Plan {
    /// Whether applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.iter().all(|c| c.action == Action::NoOp)
    }

    /// The changes that do something.
    pub fn actionable(&self) -> impl Iterator<Item = &ResourceChange> {
        self.changes.iter().filter(|c| c.action != Action::NoOp)
    }

    /// The change of the resource at `path`.
    pub fn change(&self, path: &str) -> Option<&ResourceChange> {
        self.changes.iter().find(|c| c.path == path && !c.deposed)
    }

    /// Render like Terraform's plan: `+` create, `~` update, `-/+` replace, `-` delete.
    pub fn render(&self, colour: bool) -> String {
        let paint = |code: &str, s: &str| if colour { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Stack {}{}",
            self.stack,
            self.region.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
        );
        for r in &self.recovered {
            let _ = writeln!(out, "  ! recovered interrupted {:?} of {}: {}", r.interrupted, r.path, r.outcome);
        }
        safety::render_banner(self, &mut out, &paint);
        if self.is_empty() {
            let _ = writeln!(out, "\nNo changes. The infrastructure matches the stack.");
            self.render_footer(&mut out);
            return out;
        }
        out.push('\n');
        for c in self.actionable() {
            let (code, verb) = match c.action {
                Action::Create => ("32", "will be created"),
                Action::Update => ("33", "will be updated in place"),
                Action::Replace if release::of(self, &c.path).is_some() => {
                    ("35", "will be released (replaced behind its load balancer)")
                }
                Action::Replace => ("35", "must be replaced"),
                Action::Delete => ("31", if c.deposed { "(deposed) will be deleted" } else { "will be deleted" }),
                Action::NoOp => ("0", "unchanged"),
            };
            let head = format!("{} {} {}", c.action.symbol(), c.kind, c.path);
            let _ = write!(out, "  {} {verb}", paint(code, &head));
            if let Some(id) = &c.id {
                let _ = write!(out, " [{id}]");
            }
            if let Some(d) =
                self.cost.as_ref().and_then(|k| k.changes.iter().find(|d| d.path == c.path && d.deposed == c.deposed))
            {
                let money = |v: Option<f64>| v.map(|x| format!("${x:.2}")).unwrap_or_else(|| "unpriced".into());
                if d.before_usd != d.after_usd {
                    let _ = write!(out, "  # {} -> {}/month", money(d.before_usd), money(d.after_usd));
                }
            }
            if let Some(m) = &c.moved_from {
                let _ = write!(out, " (moved from {m})");
            }
            out.push('\n');
            safety::render_marks(self, c, &mut out, &paint);
            if !c.replace_reasons.is_empty() {
                let order = if c.create_before_destroy { "create before destroy" } else { "destroy before create" };
                let _ = writeln!(out, "      # forced by: {} ({order})", c.replace_reasons.join(", "));
            }
            for f in &c.fields {
                let show = |v: &Option<Value>| v.as_ref().map(render_value).unwrap_or_else(|| "null".into());
                let after = if f.after_unknown { "(known after apply)".to_string() } else { show(&f.after) };
                let mark = if f.forces_replacement { paint("35", "  # forces replacement") } else { String::new() };
                match &f.before {
                    None => {
                        let _ = writeln!(out, "      {:<24} = {after}", f.name);
                    }
                    Some(_) => {
                        let _ = writeln!(out, "      {:<24} = {} -> {after}{mark}", f.name, show(&f.before));
                    }
                }
            }
        }
        let s = self.summary;
        let _ = writeln!(
            out,
            "\nPlan: {} to create, {} to update, {} to replace, {} to delete.",
            s.create, s.update, s.replace, s.delete
        );
        release::render(self, &mut out);
        safety::render_footer(self, &mut out);
        self.render_footer(&mut out);
        out
    }

    fn render_footer(&self, out: &mut String) {
        if let Some(c) = &self.cost {
            let delta = c.delta_usd;
            let sign = if delta >= 0.0 { "+" } else { "-" };
            let _ = writeln!(
                out,
                "Monthly cost: ${:.2} -> ${:.2} ({sign}${:.2}){}",
                c.before_usd,
                c.after_usd,
                delta.abs(),
                if c.unpriced.is_empty() { String::new() } else { format!("; unpriced: {}", c.unpriced.join(", ")) }
            );
        }
        if let Some(p) = &self.policy {
            let _ = writeln!(
                out,
                "Compliance ({}): {} error(s), {} warning(s){}",
                p.packs.join(", "),
                p.errors,
                p.warnings,
                if p.errors > 0 {
                    " — apply is refused until they are fixed or suppressed with a reason"
                } else {
                    ""
                }
            );
            for f in &p.findings {
                let sev = match f.severity {
                    crate::policy::Severity::Error => "error",
                    _ => "warning",
                };
                let _ = writeln!(out, "  {sev}[{}] {}: {}\n    fix: {}", f.rule_id, f.path, f.message, f.fix);
            }
        }
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Compare values as sets where order carries no meaning (rules, id lists), for drift.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Array(a) => {
            let mut items: Vec<Value> = a.iter().map(canonical).collect();
            items.sort_by_cached_key(|x| x.to_string());
            Value::Array(items)
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), canonical(v))).collect()),
        other => other.clone(),
    }
}

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
pub(crate) fn topo_order(s: &Synthesized) -> Vec<usize> {
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
    let mut nodes: Vec<NodePlan> =
        vec![NodePlan { action: Action::NoOp, generation: 0, create_before_destroy: false }; n];
    let mut changes: Vec<Option<ResourceChange>> = vec![None; n];
    let mut known: Vec<Option<&crate::state::ResourceState>> = vec![None; n];
    let reverse_moves: BTreeMap<&str, &str> = input.moved.iter().map(|(f, t)| (*t, *f)).collect();
    // Looked up only (never walked), so hashed.
    let path_index: FastMap<&str, usize> = s.resources.iter().enumerate().map(|(i, r)| (r.path.as_str(), i)).collect();

    // One lookup per resource: hashed once rather than searched in the sorted map each time.
    let recorded: FastMap<&str, &crate::state::ResourceState> =
        state.resources.iter().map(|(p, r)| (p.as_str(), r)).collect();
    // Recorded resources found at their own path (paths are unique on both sides).
    let mut matched = 0;
    for i in topo_order(s) {
        let r = &s.resources[i];
        let prior = recorded.get(r.path.as_str()).copied();
        matched += usize::from(prior.is_some());
        let moved_from = if prior.is_none() {
            reverse_moves.get(r.path.as_str()).filter(|f| state.resources.contains_key(**f)).map(|f| f.to_string())
        } else {
            None
        };
        let prior = prior.or_else(|| moved_from.as_deref().and_then(|f| state.resources.get(f)));
        // A path whose old instance still waits for deletion (a replacement that failed half
        // way) must not reuse that instance's name.
        let generation = prior.map(|p| p.generation).unwrap_or_else(|| {
            state.deposed.iter().filter(|d| d.path == r.path).map(|d| d.resource.generation + 1).max().unwrap_or(0)
        });
        let prior_name = prior.and_then(|p| p.inputs.get("name")).and_then(Value::as_str);
        let env = Env {
            stack: &s.name,
            path: &r.path,
            attrs: &known,
            generation,
            prior_name,
            mode: Mode::Plan,
            secrets: None,
            field: "",
        };
        // Plan mode never needs secrets, so resolving cannot fail.
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
                let kind_changed = p.kind != r.kind;
                let provider_changed = p.provider != r.provider;
                change.fields = changed_fields(r, p, &env);
                let mut reasons: Vec<String> =
                    change.fields.iter().filter(|f| f.forces_replacement).map(|f| f.name.clone()).collect();
                if kind_changed {
                    reasons.push(format!("kind {} -> {}", p.kind, r.kind));
                }
                if provider_changed {
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
        let np = &mut nodes[i];
        np.action = change.action;
        np.generation = match change.action {
            Action::Replace => generation + 1,
            _ => generation,
        };
        if change.action == Action::Replace {
            // Create-before-destroy unless the kind forbids it or a replaced dependency had to be
            // destroyed first (its dependents must go before it, so they cannot outlive it).
            // The old instance's dependencies count too: if one of them must be destroyed first,
            // the old instance has to go before it, so it cannot wait for its successor.
            let prior_deps =
                prior.map(|p| p.deps.iter().filter_map(|d| path_index.get(d.as_str()).copied()).collect::<Vec<_>>());
            let dep_dbc = r
                .deps
                .iter()
                .chain(prior_deps.iter().flatten())
                .any(|d| nodes[*d].action == Action::Replace && !nodes[*d].create_before_destroy);
            nodes[i].create_before_destroy = r.kind.create_before_destroy() && !dep_dbc;
            change.create_before_destroy = nodes[i].create_before_destroy;
        }
        if matches!(change.action, Action::NoOp | Action::Update) {
            known[i] = prior;
        }
        changes[i] = Some(change);
    }

    let mut out: Vec<ResourceChange> = changes.into_iter().flatten().collect();
    // Deletes: state entries no longer desired (and not moved), then deposed instances. None
    // when every recorded resource was found at its path.
    if matched < state.resources.len() {
        for (path, r) in &state.resources {
            if path_index.contains_key(path.as_str()) || input.moved.contains_key(path.as_str()) {
                continue;
            }
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
        outputs_preview(s, &known),
    );
    plan.placement_change = safety::placement_change(s, state);
    plan.releases = release::planned(s, &plan.changes, state);
    (plan, nodes)
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
        while recorded.next_if(|(name, _)| name.as_str() < k).is_some() {}
        let before = recorded.next_if(|(name, _)| name.as_str() == k).map(|(_, v)| v);
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

fn finish(
    stack: &str,
    stage: Option<Stage>,
    region: Option<String>,
    state: &StackState,
    changes: Vec<ResourceChange>,
    recovered: Vec<Recovery>,
    outputs: BTreeMap<String, Value>,
) -> Plan {
    let mut summary = Summary::default();
    for c in &changes {
        match c.action {
            Action::NoOp => summary.no_op += 1,
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Replace => summary.replace += 1,
            Action::Delete => summary.delete += 1,
        }
    }
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        stack: stack.to_string(),
        stage,
        region,
        state_serial: state.serial,
        summary,
        changes,
        recovered,
        outputs,
        cost: None,
        policy: None,
        placement_change: None,
        untracked: Vec::new(),
        releases: Vec::new(),
    }
}

/// A plan that deletes everything in state.
pub(crate) fn destroy_plan(state: &StackState, recovered: Vec<Recovery>) -> Plan {
    let mut changes: Vec<ResourceChange> =
        state.resources.iter().map(|(path, r)| delete_change(path, r, false)).collect();
    changes.extend(deposed_changes(state));
    finish(&state.stack, None, None, state, changes, recovered, BTreeMap::new())
}

/// Describe a pending op for humans.
pub(crate) fn describe_pending(p: &PendingOp) -> String {
    format!("{:?} of {} {}", p.op, p.kind, p.path)
}
