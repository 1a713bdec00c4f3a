//! Releases: replacing resources that a fronting resource (a load balancer: any kind with
//! [`KindDef::fronts`](crate::kind::KindDef)) sends traffic to, without an outage.
//!
//! For each replaced target, in batches of the group's [`ReleasePolicy`]: the new instance is
//! created, registered with the fronting resource, and must pass *its* health check within the
//! policy's time; only then is the old instance deregistered, drained (until the fronting
//! resource stops listing it as draining, at most the deregistration delay) and later deleted.
//! The new instance enters state only once it serves: until then its create intent carries a
//! [`ReleaseMark`], so a crash at any point is undone by the next run (old registered and
//! healthy again, new removed) instead of switching traffic to an instance never proven healthy.
//!
//! A new instance that never becomes healthy fails the release: every instance this run already
//! switched is switched back (old re-registered and healthy first, then new deregistered and
//! deleted), the old instances stay current, and the next plan shows the release again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::base::clock::OpContext;
use crate::base::error::ErrorKind;
use crate::events::EventKind;
use crate::kind::api::{TargetHealth, TargetHealthState};
use crate::plan::{Action, NodePlan, Plan};
use crate::provider::Provider;
use crate::state::{OpKind, Record, ReleaseMark, ReleaseRecord, ReleaseResult, ResourceState};
use crate::synth::Synthesized;

use super::exec::{Exec, OpFailure};
use super::ops::permit;
use super::CrashPhase;

/// How one replaced target is released: the fronting resource, its group and the policy.
#[derive(Debug)]
pub(super) struct ReleaseGate {
    /// Path of the fronting resource.
    pub(super) front_path: String,
    /// What the create intent of the new instance records.
    pub(super) mark: ReleaseMark,
    /// Batches of the group.
    pub(super) batch: Arc<tokio::sync::Semaphore>,
    /// Old targets of the group that may still leave before their replacement serves.
    pub(super) unavailable: Arc<AtomicU32>,
}

/// A batch slot of a release, and whether the old instance leaves before its replacement
/// serves (within the group's `max_unavailable`).
pub(super) struct ReleaseSlot<'g> {
    _permit: tokio::sync::SemaphorePermit<'g>,
    pub(super) early: bool,
}

/// A target this run switched to its new instance (undone if the release fails).
#[derive(Debug, Clone)]
pub(super) struct Switched {
    pub(super) path: String,
    pub(super) old: ResourceState,
    pub(super) new: ResourceState,
    pub(super) mark: ReleaseMark,
}

/// The release gate of every replaced node that an existing fronting resource targets.
pub(super) fn gates(s: &Synthesized, plan: &Plan, nodes: &[NodePlan]) -> Vec<Option<Arc<ReleaseGate>>> {
    let mut out: Vec<Option<Arc<ReleaseGate>>> = vec![None; s.resources.len()];
    for (j, front) in s.resources.iter().enumerate() {
        let Some(fronts) = front.kind.def().fronts else { continue };
        // Only a fronting resource that exists and stays serves traffic during the release.
        let Some(front_id) = plan.changes[j].id.clone() else { continue };
        if !matches!(nodes[j].action, Action::NoOp | Action::Update) {
            continue;
        }
        for g in fronts(&front.fields) {
            let batch = Arc::new(tokio::sync::Semaphore::new(g.release.batch()));
            let unavailable = Arc::new(AtomicU32::new(g.release.max_unavailable));
            for &t in &g.targets {
                let replaced = nodes.get(t).is_some_and(|n| n.action == Action::Replace && n.create_before_destroy);
                if !replaced || out[t].is_some() {
                    continue;
                }
                let mark = ReleaseMark {
                    front_provider: front.provider.clone(),
                    front_kind: front.kind,
                    front_id: front_id.clone(),
                    group: g.group.clone(),
                    old_id: plan.changes[t].id.clone(),
                    drain_s: g.drain_s,
                    interval_s: g.interval_s,
                    policy: g.release,
                };
                out[t] = Some(Arc::new(ReleaseGate {
                    front_path: front.path.clone(),
                    mark,
                    batch: Arc::clone(&batch),
                    unavailable: Arc::clone(&unavailable),
                }));
            }
        }
    }
    out
}

/// What a target must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Healthy (it serves).
    Healthy,
    /// Out of the group (drained).
    Gone,
}

/// Poll the fronting resource's view of `target` every `interval` until it reaches `want` or
/// `limit` passes; the error is the evidence (the last state and reason seen).
pub(super) async fn wait_target(
    p: &Provider,
    cx: &OpContext,
    mark: &ReleaseMark,
    target: &str,
    want: Want,
    limit: Duration,
) -> Result<(), String> {
    let start = cx.clock.now();
    let interval = Duration::from_secs(u64::from(mark.interval_s.clamp(1, 5)));
    let mut last;
    loop {
        match p.target_health(cx, mark.front_kind, &mark.front_id).await {
            Ok(list) => {
                let mine: Vec<&TargetHealth> =
                    list.iter().filter(|t| t.target_id == target && t.group == mark.group).collect();
                let reached = match want {
                    Want::Healthy => mine.iter().any(|t| t.state == TargetHealthState::Healthy),
                    Want::Gone => mine.iter().all(|t| t.state != TargetHealthState::Draining),
                };
                if reached {
                    return Ok(());
                }
                if let Some(t) = mine.first() {
                    let state = format!("{:?}", t.state).to_lowercase();
                    last = match &t.reason {
                        Some(r) => format!("{state}: {r}"),
                        None => state,
                    };
                } else {
                    last = "not registered".into();
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound && want == Want::Gone => return Ok(()),
            Err(e) => last = format!("reading target health failed: {}", e.full_chain()),
        }
        let waited = cx.clock.now().saturating_sub(start);
        if waited >= limit || cx.is_cancelled() {
            return Err(format!("{target} in group `{}`: {last} after {}s", mark.group, waited.as_secs()));
        }
        cx.clock.sleep(interval).await;
    }
}

/// Put `old` back in service and take `new` out: register `old`, wait until it is healthy,
/// then deregister `new` and let it drain. Used to undo a switched target and to recover from a
/// crash in the middle of a release.
pub(super) async fn switch_back(
    p: &Provider,
    cx: &OpContext,
    mark: &ReleaseMark,
    new: Option<&str>,
) -> Result<(), String> {
    let (kind, front, group) = (mark.front_kind, mark.front_id.as_str(), mark.group.as_str());
    if let Some(old) = &mark.old_id {
        p.register_targets(cx, kind, front, group, std::slice::from_ref(old))
            .await
            .map_err(|e| format!("registering {old} again: {}", e.full_chain()))?;
        let limit = Duration::from_secs(u64::from(mark.policy.healthy_within_s));
        wait_target(p, cx, mark, old, Want::Healthy, limit).await?;
    }
    if let Some(new) = new {
        let new = new.to_string();
        p.deregister_targets(cx, kind, front, group, std::slice::from_ref(&new))
            .await
            .map_err(|e| format!("deregistering {new}: {}", e.full_chain()))?;
        wait_target(p, cx, mark, &new, Want::Gone, Duration::from_secs(u64::from(mark.drain_s))).await.ok();
    }
    Ok(())
}

impl Exec<'_> {
    /// Take a batch slot of the release; refused once another target of the run failed.
    pub(super) async fn release_slot<'g>(&self, gate: &'g ReleaseGate) -> Result<ReleaseSlot<'g>, OpFailure> {
        let p = permit(&gate.batch).await?;
        if !self.rolled_back.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            return Err(OpFailure {
                kind: ErrorKind::Cancelled,
                message: "not released: another target of this release failed its health check".into(),
            });
        }
        let early = gate.mark.old_id.is_some()
            && gate.unavailable.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        Ok(ReleaseSlot { _permit: p, early })
    }

    /// Take the old instance out before its replacement exists (the group allows it to be
    /// unavailable): deregister it and let it drain.
    pub(super) async fn leave_early(&self, cx: &OpContext, gate: &ReleaseGate, path: &str) -> Result<(), OpFailure> {
        let mark = &gate.mark;
        let Some(old_id) = mark.old_id.clone() else { return Ok(()) };
        let slot = self.slot(&mark.front_provider)?;
        let p = &slot.provider;
        self.emit(
            path,
            EventKind::Progress { message: format!("release: taking {old_id} out first (max unavailable)") },
        );
        let old = std::slice::from_ref(&old_id);
        self.call(slot, cx, path, OpKind::Update, || {
            p.deregister_targets(cx, mark.front_kind, &mark.front_id, &mark.group, old)
        })
        .await?;
        let drain = Duration::from_secs(u64::from(mark.drain_s));
        wait_target(p, cx, mark, &old_id, Want::Gone, drain).await.ok();
        Ok(())
    }

    /// Serve from the new instance `new` (created, not yet in state) instead of `old`: register,
    /// wait healthy, deregister the old one and drain it; then record the switch in state. On
    /// failure the new instance is taken out and deleted and the error carries the evidence.
    pub(super) async fn release_one(
        &self,
        cx: &OpContext,
        gate: &ReleaseGate,
        path: &str,
        new: ResourceState,
        early: bool,
    ) -> Result<(), OpFailure> {
        let mark = &gate.mark;
        let slot = self.slot(&mark.front_provider)?;
        let p = &slot.provider;
        let (kind, front, group) = (mark.front_kind, mark.front_id.as_str(), mark.group.as_str());
        let new_id = new.id.clone();
        let say = |message: String| self.emit(path, EventKind::Progress { message });
        say(format!("release: registering {new_id} with {} (group `{group}`)", gate.front_path));
        let ids = std::slice::from_ref(&new_id);
        let registered =
            self.call(slot, cx, path, OpKind::Update, || p.register_targets(cx, kind, front, group, ids)).await;
        if let Err(e) = registered {
            let why = format!("registering it failed: {}", e.full_chain());
            return Err(self.abort_release(cx, gate, path, &new, &why, early).await);
        }
        self.engine.crash_point(CrashPhase::Registered);
        let limit = Duration::from_secs(u64::from(mark.policy.healthy_within_s));
        if let Err(evidence) = wait_target(p, cx, mark, &new_id, Want::Healthy, limit).await {
            return Err(self.abort_release(cx, gate, path, &new, &evidence, early).await);
        }
        let Some(old_id) = mark.old_id.clone() else {
            return self.commit_switch(path, None, new, mark).await;
        };
        if early {
            gate.unavailable.fetch_add(1, Ordering::SeqCst);
            let old = self.plan_prior(path);
            return self.commit_switch(path, old, new, mark).await;
        }
        say(format!("release: {new_id} is healthy; draining {old_id} (up to {}s)", mark.drain_s));
        let old = std::slice::from_ref(&old_id);
        let out = self.call(slot, cx, path, OpKind::Update, || p.deregister_targets(cx, kind, front, group, old)).await;
        if let Err(e) = out {
            let why = format!("deregistering the old instance {old_id} failed: {}", e.full_chain());
            return Err(self.abort_release(cx, gate, path, &new, &why, false).await);
        }
        self.engine.crash_point(CrashPhase::Deregistered);
        if let Err(e) =
            wait_target(p, cx, mark, &old_id, Want::Gone, Duration::from_secs(u64::from(mark.drain_s))).await
        {
            say(format!("release: {e}; the drain time is up, moving on"));
        }
        let old = self.plan_prior(path);
        self.commit_switch(path, old, new, mark).await
    }

    /// The recorded resource at `path` before this run.
    fn plan_prior(&self, path: &str) -> Option<ResourceState> {
        self.prior_state.get(path).cloned()
    }

    /// The switch is done: the old instance becomes deposed and the new one current, in one
    /// record batch.
    async fn commit_switch(
        &self,
        path: &str,
        old: Option<ResourceState>,
        new: ResourceState,
        mark: &ReleaseMark,
    ) -> Result<(), OpFailure> {
        let mut recs = Vec::new();
        if let Some(o) = &old {
            recs.push(Record::Depose { path: path.to_string(), id: o.id.clone() });
        }
        recs.push(Record::Put { path: path.to_string(), resource: new.clone() });
        self.journal.write(recs).await?;
        if let Some(old) = old {
            let s = Switched { path: path.to_string(), old, new, mark: mark.clone() };
            self.switched.lock().unwrap_or_else(|p| p.into_inner()).push(s);
        }
        Ok(())
    }

    /// A new instance failed: take it out, delete it, forget its intent; the old one never left.
    async fn abort_release(
        &self,
        cx: &OpContext,
        gate: &ReleaseGate,
        path: &str,
        new: &ResourceState,
        why: &str,
        early: bool,
    ) -> OpFailure {
        let mark = &gate.mark;
        if early {
            // The old instance left first: it serves again before the new one goes.
            if let Ok(slot) = self.slot(&mark.front_provider) {
                if let Err(e) = switch_back(&slot.provider, cx, mark, None).await {
                    tracing::warn!(error = %e, "release: putting the old instance back");
                }
            }
        }
        let removed = match self.slot(&new.provider) {
            Ok(slot) => {
                let p = &slot.provider;
                let ids = std::slice::from_ref(&new.id);
                let out = p.deregister_targets(cx, mark.front_kind, &mark.front_id, &mark.group, ids).await;
                if let Err(e) = out {
                    tracing::warn!(error = %e, "release: deregistering the failed instance");
                }
                match self.call(slot, cx, path, OpKind::Delete, || p.delete(cx, new.kind, &new.id)).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e.full_chain()),
                }
            }
            Err(f) => Err(f.message),
        };
        let rec = match &removed {
            Ok(()) => Record::Abandon { path: path.to_string(), op: OpKind::Create },
            // Still pending: the next run finds it by its tags and removes it.
            Err(_) => Record::Abandon { path: path.to_string(), op: OpKind::Update },
        };
        if let Err(e) = self.journal.write(vec![rec]).await {
            return e.into();
        }
        self.rolled_back.lock().unwrap_or_else(|p| p.into_inner()).push(path.to_string());
        let old = mark.old_id.as_deref().unwrap_or("(none)");
        let message = match removed {
            Ok(()) => format!(
                "release rolled back: the new instance {} never became healthy behind {} ({why}); it was removed and {old} keeps serving",
                new.id, gate.front_path
            ),
            Err(e) => format!(
                "release rolled back: the new instance {} never became healthy behind {} ({why}) and could not be removed ({e}); the next run removes it; {old} keeps serving",
                new.id, gate.front_path
            ),
        };
        OpFailure { kind: ErrorKind::Other, message }
    }

    /// After a failed release: undo every target this run switched (old back and healthy
    /// first, then new out and deleted), so the stack serves the old version everywhere.
    pub(super) async fn undo_switched(&self) -> Vec<String> {
        let switched: Vec<Switched> = std::mem::take(&mut *self.switched.lock().unwrap_or_else(|p| p.into_inner()));
        let mut undone = Vec::new();
        for s in switched {
            let cx = self.engine.op_cx(self.stack, &s.path, OpKind::Delete);
            let Ok(slot) = self.slot(&s.mark.front_provider) else { continue };
            self.emit(&s.path, EventKind::Progress { message: format!("release: switching back to {}", s.old.id) });
            if let Err(e) = switch_back(&slot.provider, &cx, &s.mark, Some(&s.new.id)).await {
                self.emit(&s.path, EventKind::Warning { message: format!("release: could not switch back: {e}") });
                continue;
            }
            let intent = self.delete_intent(&s.path, s.new.kind, &s.new.provider, &s.new.id, s.new.deps.clone());
            if self.journal.write(vec![Record::Intent(intent)]).await.is_err() {
                continue;
            }
            let Ok(nslot) = self.slot(&s.new.provider) else { continue };
            let p = &nslot.provider;
            let deleted = self.call(nslot, &cx, &s.path, OpKind::Delete, || p.delete(&cx, s.new.kind, &s.new.id)).await;
            let recs = match deleted {
                Ok(()) => vec![
                    Record::Deleted { path: s.path.clone(), id: s.new.id.clone() },
                    Record::Undepose { path: s.path.clone(), id: s.old.id.clone() },
                ],
                Err(e) if e.kind() == ErrorKind::NotFound => vec![
                    Record::Deleted { path: s.path.clone(), id: s.new.id.clone() },
                    Record::Undepose { path: s.path.clone(), id: s.old.id.clone() },
                ],
                Err(_) => vec![Record::Abandon { path: s.path.clone(), op: OpKind::Delete }],
            };
            if self.journal.write(recs).await.is_ok() {
                undone.push(s.path);
            }
        }
        undone
    }
}

/// The history records of the releases a run made.
pub(super) fn records(
    plan: &Plan,
    report: &super::ApplyReport,
    at: String,
    duration_ms: u64,
    (source, from_source): (Option<&serde_json::Value>, Option<&serde_json::Value>),
) -> Vec<Record> {
    let by = crate::state::LockInfo::for_this_process("apply").holder;
    plan.releases
        .iter()
        .map(|r| {
            let targets: Vec<String> = r.targets().map(str::to_string).collect();
            let hit = |paths: &[String]| paths.iter().any(|p| targets.contains(p));
            let failed: Vec<String> = report.failures.iter().map(|f| f.path.clone()).collect();
            let result = if hit(&report.rolled_back) {
                ReleaseResult::RolledBack
            } else if hit(&failed) || hit(&report.skipped) || report.cancelled {
                ReleaseResult::Failed
            } else {
                ReleaseResult::Succeeded
            };
            Record::Released {
                release: ReleaseRecord {
                    at: at.clone(),
                    by: by.clone(),
                    front: r.front.clone(),
                    group: r.group.clone(),
                    targets,
                    from_version: r.from_version.clone(),
                    to_version: r.to_version.clone(),
                    result,
                    duration_ms,
                    source: source.cloned(),
                    from_source: from_source.cloned(),
                },
            }
        })
        .collect()
}
