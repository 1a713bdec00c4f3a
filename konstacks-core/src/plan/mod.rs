//! The planner: diff a synthesized stack against state into create / update / replace /
//! delete / no-op, with field-level before -> after, the field that forces each replacement,
//! and values unknown until apply shown as such. Plans are plain serde data with a format
//! version (documented in `docs/plan-format.md`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod action;
mod diff;
pub mod markdown;
mod resolve;
pub(crate) use diff::{destroy_plan, diff, NodePlan, PlanInput};
pub(crate) use resolve::{resolve, resolves_to, Env, MissingSecret, Mode, Resolved, SecretLookup};
pub mod release;
pub mod safety;

use crate::kind::Kind;
use crate::model::placement::Stage;
pub use crate::plan::action::Action;
use crate::state::{PendingOp, ResourceState, StackState};

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

impl ResourceChange {
    /// The instance it acts on as `state` records it: the deposed instance it deletes, or the
    /// resource at its path (at its old path when a `moved` declaration renamed it).
    pub(crate) fn recorded<'s>(&self, state: &'s StackState) -> Option<&'s ResourceState> {
        if self.deposed {
            state
                .deposed
                .iter()
                .find(|d| d.path == self.path && Some(&d.resource.id) == self.id.as_ref())
                .map(|d| &d.resource)
        } else {
            state.resources.get(&self.path).or_else(|| self.moved_from.as_ref().and_then(|m| state.resources.get(m)))
        }
    }
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
    /// Forget the planned values of the resources it creates, once the plan was shown, compared
    /// and gated: a run resolves them again from the stack as it creates each one, and a large
    /// first apply would otherwise hold every value twice.
    pub(crate) fn forget_created_values(&mut self) {
        for c in self.changes.iter_mut().filter(|c| c.action == Action::Create) {
            c.fields = Vec::new();
        }
    }

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

/// A plan of `changes`, counted.
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

/// Describe a pending op for humans.
pub(crate) fn describe_pending(p: &PendingOp) -> String {
    format!("{:?} of {} {}", p.op, p.kind, p.path)
}
