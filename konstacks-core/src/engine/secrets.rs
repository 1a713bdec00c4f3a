//! Secrets of a run: generated ones live in memory for the run and are sealed into state only when
//! a key is configured; sealed ones from earlier runs are opened on demand.
//!
//! Before anything reaches the cloud this module also checks the state key against the sealed
//! values in state (a wrong key and a missing key are told apart), and decides how a secret that
//! a dependent needs but nobody can know any more is recovered: rotated in place when the kind
//! and the provider allow it (the plan shows an update of its resource, and the resources using
//! it are updated or replaced with the new value), refused otherwise. It never names a kind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde_json::Value;

use crate::base::secret::{LostSecret, Sealer, Secret, SecretError, SecretSource, REDACTED, SECRET_KEY_ENV};
use crate::error::Error;
use crate::kind::expr::Expr;
use crate::kind::Kind;
use crate::plan::{self, Action, NodePlan, Plan, PlanInput, SecretLookup};
use crate::state::StackState;
use crate::synth::Synthesized;

use super::Engine;

/// A secret of the stack: the path of its resource and its field.
pub(super) type SecretId = (String, String);

pub(super) struct RunSecrets {
    pub(super) stack: String,
    pub(super) mem: Mutex<BTreeMap<SecretId, Secret<String>>>,
    pub(super) sealed: BTreeMap<SecretId, String>,
    pub(super) sealer: Option<Sealer>,
    /// Secrets this run rotates in place: their resource's update sends a new value.
    pub(super) rotations: BTreeSet<SecretId>,
}

impl RunSecrets {
    /// The secrets of a run: those provided in the stack, and those sealed in state.
    pub(super) fn for_run(
        stack: &str,
        s: Option<&Synthesized>,
        state: &StackState,
        sealer: Option<Sealer>,
        rotations: BTreeSet<SecretId>,
    ) -> Self {
        let mut mem = BTreeMap::new();
        let mut sealed = BTreeMap::new();
        if let Some(s) = s {
            for r in &s.resources {
                for attr in r.kind.secrets() {
                    if let Some(Expr::Secret(SecretSource::Provided(v))) = r.fields.get(attr) {
                        mem.insert((r.path.clone(), attr.to_string()), v.clone());
                    }
                }
            }
        }
        for (path, r) in &state.resources {
            for (attr, v) in &r.sealed {
                sealed.insert((path.clone(), attr.clone()), v.clone());
            }
        }
        Self { stack: stack.to_string(), mem: Mutex::new(mem), sealed, sealer, rotations }
    }

    pub(super) fn context(&self, path: &str, attr: &str) -> String {
        format!("{}/{path}.{attr}", self.stack)
    }

    pub(super) fn put(&self, path: &str, attr: &str, v: Secret<String>) {
        self.mem.lock().unwrap_or_else(|p| p.into_inner()).insert((path.into(), attr.into()), v);
    }

    pub(super) fn seal_all(&self, kind: Kind, path: &str) -> BTreeMap<String, String> {
        kind.secrets().iter().filter_map(|a| Some((a.to_string(), self.seal(path, a)?))).collect()
    }

    pub(super) fn seal(&self, path: &str, attr: &str) -> Option<String> {
        let v =
            self.mem.lock().unwrap_or_else(|p| p.into_inner()).get(&(path.to_string(), attr.to_string())).cloned()?;
        self.sealer.as_ref()?.seal(&self.context(path, attr), &v)
    }

    /// Whether this run rotates the secret `attr` of `path`.
    pub(super) fn rotates(&self, path: &str, attr: &str) -> bool {
        self.rotations.contains(&(path.to_string(), attr.to_string()))
    }
}

impl SecretLookup for RunSecrets {
    fn secret(&self, path: &str, attr: &str) -> Option<Secret<String>> {
        let key = (path.to_string(), attr.to_string());
        if let Some(v) = self.mem.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Some(v.clone());
        }
        let sealed = self.sealed.get(&key)?;
        self.sealer.as_ref()?.open(&self.context(path, attr), sealed)
    }
}

// ---------------------------------------------------------------------------------------------
// The state key

/// The sealed values of a state, as `path.attr` with the value, sorted.
fn sealed_values(state: &StackState) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    for (path, r) in &state.resources {
        for (attr, v) in &r.sealed {
            out.push((format!("{path}.{attr}"), v.as_str()));
        }
    }
    out
}

/// Refuse a key that cannot open the stack's sealed secrets. A value sealed with a key id
/// names its key; older values without one are tried (authenticated decryption), and the key is
/// wrong when none of them opens.
pub(super) fn check_key(stack: &str, sealer: Option<&Sealer>, state: &StackState) -> Result<(), SecretError> {
    let Some(sealer) = sealer else { return Ok(()) };
    let values = sealed_values(state);
    let foreign: Vec<String> =
        values.iter().filter(|(_, v)| sealer.is_own(v) == Some(false)).map(|(w, _)| w.clone()).collect();
    if !foreign.is_empty() {
        return Err(SecretError::WrongKey { stack: stack.to_string(), sealed: foreign });
    }
    let own = values.iter().any(|(_, v)| sealer.is_own(v) == Some(true));
    let legacy: Vec<&(String, &str)> = values.iter().filter(|(_, v)| sealer.is_own(v).is_none()).collect();
    let opens = |(what, v): &&(String, &str)| sealer.open(&format!("{stack}/{what}"), v).is_some();
    if !own && !legacy.is_empty() && !legacy.iter().any(opens) {
        let sealed = legacy.iter().map(|(w, _)| w.clone()).collect();
        return Err(SecretError::WrongKey { stack: stack.to_string(), sealed });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Recovery of lost secrets

/// The secrets an expression reads from other resources.
fn secret_refs(e: &Expr, out: &mut BTreeSet<SecretId>) {
    match e {
        Expr::Attr(a) if a.secret => {
            out.insert((a.path.clone(), a.attr.clone()));
        }
        Expr::List(v) => v.iter().for_each(|e| secret_refs(e, out)),
        Expr::Map(m) => m.values().for_each(|e| secret_refs(e, out)),
        _ => {}
    }
}

/// Which secrets each resource that this plan writes must resolve for real: all those its
/// fields read for a create or replacement, those of the changed fields for an update.
fn needs(s: &Synthesized, plan: &Plan, nodes: &[NodePlan]) -> BTreeMap<SecretId, Vec<String>> {
    let mut out: BTreeMap<SecretId, Vec<String>> = BTreeMap::new();
    for (i, r) in s.resources.iter().enumerate() {
        let action = nodes.get(i).map(|n| n.action).unwrap_or(Action::NoOp);
        let changed: BTreeSet<&str> =
            plan.changes.get(i).map(|c| c.fields.iter().map(|f| f.name.as_str()).collect()).unwrap_or_default();
        let mut refs = BTreeSet::new();
        for (k, e) in &r.fields {
            let real = match action {
                Action::Create | Action::Replace => true,
                Action::Update => changed.contains(k),
                _ => false,
            };
            if real {
                secret_refs(e, &mut refs);
            }
        }
        for id in refs {
            out.entry(id).or_default().push(r.path.clone());
        }
    }
    out
}

/// Secrets this plan generates (resources created or replaced with a generated secret).
fn generated(s: &Synthesized, nodes: &[NodePlan]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in s.resources.iter().enumerate() {
        if !matches!(nodes.get(i).map(|n| n.action), Some(Action::Create | Action::Replace)) {
            continue;
        }
        for attr in r.kind.secrets() {
            if let Some(Expr::Secret(SecretSource::Generated { .. })) = r.fields.get(attr) {
                out.push(format!("{}.{attr}", r.path));
            }
        }
    }
    out
}

/// Secrets generated by this run that no state key will keep, for the warning of a run without
/// a key (`None` when there is nothing to warn about).
pub(super) fn unsealed_warning(s: Option<&Synthesized>, nodes: &[NodePlan], sealer: Option<&Sealer>) -> Option<String> {
    let s = s?;
    if sealer.is_some() {
        return None;
    }
    let list = generated(s, nodes);
    if list.is_empty() {
        return None;
    }
    Some(format!(
        "{SECRET_KEY_ENV} is not set: the generated secret(s) {} are handed to the cloud and to the resources \
         that use them, but not stored anywhere, so a later run cannot recover them. When a later change needs one \
         (a resource that uses it is created or replaced), Konstacks rotates it in place where the cloud allows it \
         (a new value, and every resource using it is updated or replaced), and refuses the run where it does not. \
         Set {SECRET_KEY_ENV} (at least {} characters) to keep secrets sealed in state.",
        list.join(", "),
        crate::base::secret::MIN_KEY_CHARS,
    ))
}

/// Why a secret is not available to this run, or `None` when it is.
fn lost_because(
    s: &Synthesized,
    nodes: &[NodePlan],
    state: &StackState,
    sealer: Option<&Sealer>,
    (path, attr): &SecretId,
) -> Option<String> {
    let i = s.index_of(path)?;
    if matches!(nodes.get(i).map(|n| n.action), Some(Action::Create | Action::Replace)) {
        return None; // made by this run
    }
    let r = &s.resources[i];
    if !matches!(r.fields.get(attr.as_str()), Some(Expr::Secret(SecretSource::Generated { .. }))) {
        return None; // provided: the program holds it
    }
    let sealed = state.resources.get(path).and_then(|x| x.sealed.get(attr.as_str()));
    match (sealer, sealed) {
        (None, _) => Some(format!("no {SECRET_KEY_ENV}")),
        (Some(_), None) => Some(
            "no sealed copy in state: the run that made it was interrupted before recording it, or ran without \
             a state key"
                .into(),
        ),
        (Some(k), Some(v)) => k
            .open(&format!("{}/{path}.{attr}", s.name), v)
            .is_none()
            .then(|| "its sealed copy in state cannot be opened".into()),
    }
}

/// Whether the secret `attr` of kind `kind` can be set by an update on `provider`.
fn rotatable(engine: &Engine, kind: Kind, provider: &str, attr: &str) -> bool {
    kind.is_rotatable(attr)
        && engine
            .slot(provider)
            .ok()
            .and_then(|slot| slot.provider.api(kind).map(|api| api.sets_secret_on_update(attr)))
            .unwrap_or(false)
}

/// Replace every string equal to `from` inside `v` by `to`.
fn replace_marker(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s == from => *s = to.to_string(),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_marker(x, from, to)),
        Value::Object(m) => m.values_mut().for_each(|x| replace_marker(x, from, to)),
        _ => {}
    }
}

/// Show a rotation to the planner through the state it diffs against: the secret's stored
/// marker says it is lost (so its resource is updated, with the reason in the plan), and the
/// resources that use it hold a marker of the value before the rotation (so they are updated,
/// or replaced where the field cannot change in place). Only the in-memory copy is changed.
fn mark_rotation(s: &Synthesized, state: &mut StackState, (path, attr): &SecretId, why: &str) {
    if let Some(r) = state.resources.get_mut(path) {
        let mut inputs = r.inputs.clone();
        inputs.insert(
            attr.clone().into(),
            Value::String(format!("{REDACTED} lost ({why}); it will be rotated in place")),
        );
        r.set_inputs(inputs);
    }
    let from = format!("{REDACTED} from {path}.{attr}");
    let to = format!("{from}, before its rotation");
    for r in &s.resources {
        let mut uses = Vec::new();
        for (k, e) in &r.fields {
            let mut refs = BTreeSet::new();
            secret_refs(e, &mut refs);
            if refs.contains(&(path.clone(), attr.clone())) {
                uses.push(k.to_string());
            }
        }
        let prior = s.moved.iter().find(|(_, to)| **to == r.path).map(|(f, _)| f.clone());
        for p in std::iter::once(r.path.clone()).chain(prior) {
            if let Some(st) = state.resources.get_mut(&p) {
                let mut inputs = st.inputs.clone();
                for k in &uses {
                    if let Some(v) = inputs.get_mut(k) {
                        replace_marker(v, &from, &to);
                    }
                }
                st.set_inputs(inputs);
            }
        }
    }
}

/// What the secret checks decided for a run.
#[derive(Debug, Default)]
pub(super) struct Recovery {
    /// Secrets rotated in place.
    pub(super) rotations: BTreeSet<SecretId>,
}

/// Diff the stack against state like [`plan::diff`], recovering lost secrets: a secret that a
/// resource written by this plan needs, that this run cannot know, is rotated in place when its
/// kind and provider allow it (`state` is changed in memory so the plan shows it), and the run is
/// refused otherwise. A stack whose state holds sealed secrets is refused without a key when it
/// needs them or would store new ones unsealed. Nothing here calls a cloud.
pub(super) fn diff_recovering(
    engine: &Engine,
    s: &Synthesized,
    state: &mut StackState,
    input: &PlanInput<'_>,
) -> Result<(Plan, Vec<NodePlan>, Recovery), Error> {
    let sealer = engine.sealer.as_ref();
    let mut recovery = Recovery::default();
    // Each round rotates at least one more secret, so this ends; the bound is a safeguard.
    let rounds = s.resources.iter().map(|r| r.kind.secrets().len()).sum::<usize>() + 1;
    for round in 0..=rounds {
        let (plan, nodes) = plan::diff(s, state, input);
        let needed = needs(s, &plan, &nodes);
        if round == 0 && sealer.is_none() {
            let sealed: Vec<String> = sealed_values(state).into_iter().map(|(w, _)| w).collect();
            if !sealed.is_empty() {
                let uses_sealed = needed.keys().any(|(p, a)| sealed.contains(&format!("{p}.{a}")));
                let made = generated(s, &nodes);
                let why = if uses_sealed {
                    Some("needs them".to_string())
                } else if !made.is_empty() {
                    Some(format!("would store new ones ({}) unsealed beside them", made.join(", ")))
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(SecretError::MissingKey { stack: s.name.clone(), sealed, why }.into());
                }
            }
        }
        let mut lost = Vec::new();
        for (id, users) in &needed {
            if recovery.rotations.contains(id) {
                continue;
            }
            if let Some(why) = lost_because(s, &nodes, state, sealer, id) {
                lost.push((id.clone(), users.clone(), why));
            }
        }
        if lost.is_empty() || round == rounds {
            return Ok((plan, nodes, recovery));
        }
        for ((path, attr), needed_by, why) in lost {
            let Some(r) = s.index_of(&path).map(|i| &s.resources[i]) else { continue };
            if !rotatable(engine, r.kind, &r.provider, &attr) {
                return Err(SecretError::Unrecoverable(Box::new(LostSecret {
                    stack: s.name.clone(),
                    path,
                    kind: r.kind.to_string(),
                    attr,
                    provider: r.provider.clone(),
                    why,
                    needed_by,
                }))
                .into());
            }
            let id = (path, attr);
            mark_rotation(s, state, &id, &why);
            recovery.rotations.insert(id);
        }
    }
    let (plan, nodes) = plan::diff(s, state, input);
    Ok((plan, nodes, recovery))
}
