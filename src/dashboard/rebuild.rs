//! What the dashboard knows about a stack beyond its state: the engine it runs it with, and the
//! stack rebuilt from the template, stage and parameters its last apply recorded
//! (`state.source`), for per-resource cost and compliance evidence.

use std::collections::BTreeMap;

use konstacks_core::engine::Engine;
use konstacks_core::model::{Placement, Stage, SIMULATED};
use konstacks_core::policy::PolicySet;
use konstacks_core::state::StackState;
use konstacks_core::validate::Synthesized;
use konstacks_templates::{Template, TemplateContext};
use serde_json::Value;

use super::Shared;

/// An engine over the dashboard's state, the simulated cloud and the configured providers,
/// recording its runs as `dashboard:<label>`.
pub(crate) fn engine(app: &Shared, policy: Option<PolicySet>) -> Engine {
    let mut e = Engine::new(app.config.state.clone()).with_provider(app.config.sim.provider());
    for p in &app.config.providers {
        e = e.with_provider(p.clone());
    }
    if let Some(sealer) = &app.config.sealer {
        e = e.with_sealer(sealer.clone());
    }
    if let Some(p) = policy {
        e = e.with_policy(p);
    }
    e.with_actor(app.config.actor())
}

/// What an apply recorded it built the stack from.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The template's name, when a template built it.
    pub(crate) template: Option<String>,
    /// The stage.
    pub(crate) stage: Option<Stage>,
    /// The parameters.
    pub(crate) params: Value,
}

/// The source recorded in state, if any.
pub(crate) fn source_of(state: &StackState) -> Option<Source> {
    let src = state.source.as_ref()?;
    Some(Source {
        template: src.get("template").and_then(Value::as_str).map(str::to_string),
        stage: src.get("stage").and_then(Value::as_str).and_then(|s| s.parse().ok()),
        params: src.get("params").cloned().unwrap_or(Value::Null),
    })
}

/// Where the stack was last applied, as a placement that gives the same region again.
pub(crate) fn placement_of(state: &StackState) -> Option<Placement> {
    let p = state.placement.as_ref()?;
    Some(match p.jurisdiction {
        Some(j) => Placement::region_within(p.region.clone(), j),
        None => Placement::region(p.region.clone()),
    })
}

/// The provider most of the stack's resources live on (`sim` for an empty stack).
pub(crate) fn provider_of(state: &StackState) -> String {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for r in state.resources.values() {
        *count.entry(r.provider.as_str()).or_default() += 1;
    }
    // Ties go to the first name in order: deterministic.
    let best = count.iter().fold(None::<(&str, usize)>, |best, (p, n)| match best {
        Some((_, m)) if m >= *n => best,
        _ => Some((p, *n)),
    });
    best.map_or_else(|| SIMULATED.to_string(), |(p, _)| p.to_string())
}

/// A template the dashboard offers, by name.
pub(crate) fn template<'a>(app: &'a Shared, name: &str) -> Option<&'a dyn Template> {
    app.config.templates.iter().find(|t| t.name() == name).map(|t| t.as_ref())
}

/// A stack rebuilt from its recorded source.
pub(crate) struct Rebuilt {
    /// The synthesized stack.
    pub(crate) synth: Synthesized,
    /// The template's default compliance packs.
    pub(crate) policy: PolicySet,
}

/// Rebuild the stack `name` from what its state recorded; the error says why it cannot be.
pub(crate) fn rebuild(app: &Shared, name: &str, state: &StackState) -> Result<Rebuilt, String> {
    let source = source_of(state).ok_or("no apply recorded what built this stack")?;
    let tname = source.template.ok_or("the last apply did not record a template")?;
    let t = template(app, &tname).ok_or_else(|| format!("template `{tname}` is not offered by this dashboard"))?;
    let stage = source.stage.ok_or("the last apply did not record its stage")?;
    let mut cx = TemplateContext::new(name, stage).provider(provider_of(state));
    if let Some(p) = placement_of(state) {
        cx = cx.placement(p);
    }
    let stack = t.build_json(&cx, source.params).map_err(|e| e.to_string())?;
    let catalogs = app.config.catalog_refs();
    let synth = stack.synth(&catalogs).map_err(|e| e.to_string())?;
    Ok(Rebuilt { synth, policy: konstacks_templates::default_policy(t) })
}
