//! Reconciliation of interrupted operations: every intent left pending by a run that died is
//! settled against the cloud (an interrupted create is found by its tags and adopted) before
//! anything new is planned.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::base::clock::OpContext;
use crate::base::error::{ErrorKind, ProviderError};
use crate::error::Error;
use crate::kind::api::Attrs;
use crate::kind::Kind;
use crate::kind::{Selector, TAG_NAME, TAG_PATH, TAG_STACK};
use crate::plan::{self, Recovery};
use crate::state::{OpKind, PendingOp, Record, ResourceState, StackState};

use super::journal::Journal;
use super::Engine;

fn tag<'a>(attrs: &'a Attrs, key: &str) -> Option<&'a str> {
    attrs.get("tags").and_then(|t| t.get(key)).and_then(Value::as_str)
}

/// Whether a listed resource carries the identity a create recorded: its stack, its path and,
/// when recorded, its physical name. Adoption never takes "something with that name".
pub(super) fn has_identity(attrs: &Attrs, stack: &str, path: &str, name: Option<&str>) -> bool {
    tag(attrs, TAG_STACK) == Some(stack)
        && tag(attrs, TAG_PATH) == Some(path)
        && (name.is_none() || tag(attrs, TAG_NAME) == name)
}

impl Engine {
    /// A new instance of an interrupted release was never proven healthy: put the old one back
    /// in service and remove the new one (when `act`; a plan only says it will).
    async fn undo_interrupted_release(
        &self,
        state: &StackState,
        p: &PendingOp,
        listing: &[(String, Attrs)],
        cx: &OpContext,
        act: bool,
    ) -> Result<(Record, String, Option<String>), Error> {
        let Some(mark) = &p.release else {
            return Ok((Record::Abandon { path: p.path.clone(), op: OpKind::Create }, String::new(), None));
        };
        let name = p.tags.get(TAG_NAME).map(String::as_str);
        let known: BTreeSet<&str> = state.resources.values().map(|r| r.id.as_str()).collect();
        let hit = listing
            .iter()
            .find(|(id, a)| !known.contains(id.as_str()) && has_identity(a, &state.stack, &p.path, name))
            .map(|(id, _)| id.clone());
        let old = mark.old_id.as_deref().unwrap_or("(none)");
        let abandon = Record::Abandon { path: p.path.clone(), op: OpKind::Create };
        if !act {
            let what = hit.as_deref().map_or("no new instance".to_string(), |h| format!("the new instance {h}"));
            let outcome = format!("an interrupted release: the next apply puts {old} back and removes {what}");
            return Ok((abandon, outcome, hit));
        }
        let fail = |context: String, e: ProviderError| Error::Provider { context, source: e };
        let front = self.slot(&mark.front_provider)?;
        super::release::switch_back(&front.provider, cx, mark, hit.as_deref()).await.map_err(|why| {
            fail(format!("undoing the interrupted release of {}", p.path), ProviderError::new(ErrorKind::Other, why))
        })?;
        if let Some(h) = &hit {
            let slot = self.slot(&p.provider)?;
            match self.with_retries(slot, cx, || slot.provider.delete(cx, p.kind, h)).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(fail(format!("removing {h}, the new instance of an interrupted release"), e)),
            }
        }
        let what = hit.map_or("nothing had been created".to_string(), |h| format!("{h} was removed"));
        Ok((abandon, format!("an interrupted release was undone: {old} serves again, {what}"), None))
    }

    /// Reconcile interrupted operations: creates are looked up by tags and adopted, deletes are
    /// checked. With a journal the outcome is recorded; without (plan) it only updates `state`.
    pub(super) async fn reconcile(
        &self,
        state: &mut StackState,
        journal: Option<&Journal>,
    ) -> Result<Vec<Recovery>, Error> {
        if state.pending.is_empty() {
            return Ok(Vec::new());
        }
        let pending = state.pending.clone();
        let cx = self.cx(&state.stack);
        let mut out = Vec::new();
        let mut recs = Vec::new();
        // One batched listing per (provider, kind).
        let mut listings: BTreeMap<(String, Kind), Vec<(String, Attrs)>> = BTreeMap::new();
        for p in &pending {
            let key = (p.provider.clone(), p.kind);
            if listings.contains_key(&key) {
                continue;
            }
            let slot = self.slot(&p.provider)?;
            let sel = Selector::Stack(state.stack.clone());
            let found =
                self.with_retries(slot, &cx, || slot.provider.read_many(&cx, p.kind, &sel)).await.map_err(|e| {
                    Error::Provider {
                        context: format!("looking up interrupted {}", plan::describe_pending(p)),
                        source: e,
                    }
                })?;
            listings.insert(key, found);
        }
        for p in &pending {
            let listing = &listings[&(p.provider.clone(), p.kind)];
            let mut removes = None;
            let (rec, outcome) = match p.op {
                OpKind::Create if p.release.is_some() => {
                    let (rec, outcome, hit) =
                        self.undo_interrupted_release(state, p, listing, &cx, journal.is_some()).await?;
                    removes = hit;
                    (rec, outcome)
                }
                OpKind::Create => {
                    let name = p.tags.get(TAG_NAME);
                    let known: BTreeSet<&str> = state
                        .resources
                        .values()
                        .chain(state.deposed.iter().map(|d| &d.resource))
                        .map(|r| r.id.as_str())
                        .collect();
                    let hit = listing.iter().find(|(id, a)| {
                        !known.contains(id.as_str())
                            && has_identity(a, &state.stack, &p.path, name.map(String::as_str))
                            && p.tags.iter().all(|(k, v)| !k.starts_with("konstacks:") || tag(a, k) == Some(v))
                    });
                    match hit {
                        Some((id, attrs)) => (
                            Record::Put {
                                path: p.path.clone(),
                                resource: {
                                    let mut r = ResourceState::new(
                                        p.kind,
                                        p.provider.clone(),
                                        id.clone(),
                                        p.inputs.clone(),
                                        attrs.clone(),
                                    );
                                    r.generation = p.generation;
                                    r.deps = p.deps.clone();
                                    r.sealed = p.sealed.clone();
                                    r
                                },
                            },
                            format!("found {id} by its tags and adopted it"),
                        ),
                        None => (
                            Record::Abandon { path: p.path.clone(), op: OpKind::Create },
                            "nothing was created; it will be planned again".to_string(),
                        ),
                    }
                }
                OpKind::Update => {
                    // The update may or may not have landed: keep the old inputs so the next plan
                    // re-applies it (updates are idempotent), but take the cloud's attributes.
                    let id = p.id.clone().unwrap_or_default();
                    match (state.resources.get(&p.path), listing.iter().find(|(i, _)| *i == id)) {
                        (Some(r), Some((_, attrs))) => {
                            let mut r = r.clone();
                            r.set_attrs(attrs.clone());
                            (
                                Record::Put { path: p.path.clone(), resource: r },
                                "update will be re-applied if still needed".into(),
                            )
                        }
                        _ => (
                            Record::Abandon { path: p.path.clone(), op: OpKind::Update },
                            "resource state unchanged".into(),
                        ),
                    }
                }
                OpKind::Delete => {
                    let id = p.id.clone().unwrap_or_default();
                    if listing.iter().any(|(i, _)| *i == id) {
                        (
                            Record::Abandon { path: p.path.clone(), op: OpKind::Delete },
                            format!("{id} still exists; it stays in state"),
                        )
                    } else {
                        (
                            Record::Deleted { path: p.path.clone(), id: id.clone() },
                            format!("{id} is gone; removed from state"),
                        )
                    }
                }
            };
            out.push(Recovery { path: p.path.clone(), interrupted: p.op, outcome, removes });
            recs.push(rec);
        }
        for r in &recs {
            state.apply(r);
        }
        state.pending.clear();
        if let Some(j) = journal {
            j.write(recs).await?;
        }
        Ok(out)
    }
}
