//! The operations of the executor beyond the write itself: creating once (and finding what an
//! uncertain create made), deleting, recording intents, and rolling back a replacement that
//! failed its health gate.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::base::clock::OpContext;
use crate::base::error::{ErrorKind, ProviderError};
use crate::events::EventKind;
use crate::kind::api::Attrs;
use crate::kind::Kind;
use crate::kind::Selector;
use crate::state::{OpKind, PendingOp, Record, ResourceState};

use super::{CrashPhase, ProviderSlot};

use super::exec::{Exec, OpFailure};

impl Exec<'_> {
    /// Create exactly once: after an uncertain failure (timeout, 5xx, "already exists") look the
    /// resource up by its tags before trying again.
    pub(super) async fn create_once(
        &self,
        slot: &ProviderSlot,
        cx: &OpContext,
        kind: Kind,
        path: &str,
        name: &str,
        spec: &Value,
    ) -> Result<(String, Attrs), ProviderError> {
        let retry = &self.engine.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self
                .call(slot, cx, path, OpKind::Create, || async {
                    match slot.provider.create(cx, kind, spec.clone()).await {
                        // Transient errors are handled below (they may hide a success), not retried blindly.
                        Err(e) if e.kind() == ErrorKind::Transient => Err(e.uncertain()),
                        other => other,
                    }
                })
                .await
            {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let uncertain = err.is_uncertain() || err.kind() == ErrorKind::AlreadyExists;
            if !uncertain {
                return Err(err);
            }
            // A create that may have happened can take a while to show in listings (eventual
            // consistency): look for it for a bounded time before daring to create again.
            let looked_from = cx.clock.now();
            let mut look = 0;
            let found = loop {
                look += 1;
                if let Some(found) = self.find_created(slot, cx, kind, path, name).await? {
                    break Some(found);
                }
                if err.kind() == ErrorKind::AlreadyExists
                    || cx.clock.now().saturating_sub(looked_from) >= retry.adoption_window
                {
                    break None;
                }
                cx.clock.sleep(retry.delay(look, &self.engine.rng)).await;
            };
            if let Some(found) = found {
                self.adopted.lock().unwrap_or_else(|p| p.into_inner()).push(path.to_string());
                self.emit(path, EventKind::Adopted { id: found.0.clone() });
                return Ok(found);
            }
            if err.kind() == ErrorKind::AlreadyExists || attempt >= retry.max_attempts {
                return Err(err);
            }
            let delay = retry.delay(attempt, &self.engine.rng);
            self.retries.fetch_add(1, Ordering::Relaxed);
            self.emit(
                path,
                EventKind::Retrying {
                    op: OpKind::Create,
                    attempt,
                    delay_ms: delay.as_millis() as u64,
                    error_kind: err.kind().to_string(),
                    error: err.message().to_string(),
                },
            );
            cx.clock.sleep(delay).await;
        }
    }

    /// Look for a resource this run (or a crashed one) created at `path` with `name`.
    pub(super) async fn find_created(
        &self,
        slot: &ProviderSlot,
        cx: &OpContext,
        kind: Kind,
        path: &str,
        name: &str,
    ) -> Result<Option<(String, Attrs)>, ProviderError> {
        let sel = Selector::Stack(self.stack.to_string());
        let all = self.call(slot, cx, path, OpKind::Create, || slot.provider.read_many(cx, kind, &sel)).await?;
        Ok(all.into_iter().find(|(id, a)| {
            !self.known_ids.contains(id) && super::reconcile::has_identity(a, self.stack, path, Some(name))
        }))
    }

    pub(super) fn intent(
        &self,
        op: OpKind,
        r: &crate::synth::SynthResource,
        id: Option<String>,
        generation: u32,
        tags: BTreeMap<String, String>,
        inputs: BTreeMap<String, Value>,
    ) -> PendingOp {
        PendingOp {
            op,
            path: r.path.clone(),
            kind: r.kind,
            provider: r.provider.clone(),
            id,
            generation,
            tags,
            deps: r.depends_on.clone(),
            inputs,
            at: self.engine.clock.unix_secs(),
            sealed: if op == OpKind::Create { self.secrets.seal_all(r.kind, &r.path) } else { BTreeMap::new() },
            release: None,
        }
    }

    /// The intent recorded before deleting `id`.
    pub(super) fn delete_intent(
        &self,
        path: &str,
        kind: Kind,
        provider: &str,
        id: &str,
        deps: Vec<String>,
    ) -> PendingOp {
        PendingOp {
            op: OpKind::Delete,
            path: path.to_string(),
            kind,
            provider: provider.to_string(),
            id: Some(id.to_string()),
            generation: 0,
            tags: BTreeMap::new(),
            deps,
            inputs: BTreeMap::new(),
            at: self.engine.clock.unix_secs(),
            sealed: BTreeMap::new(),
            release: None,
        }
    }

    pub(super) async fn run_delete(&self, path: &str, res: &ResourceState) -> Result<(), OpFailure> {
        let slot = self.slot(&res.provider)?;
        let _permit = permit(&slot.semaphore).await?;
        let cx = self.engine.op_cx(self.stack, path, OpKind::Delete);
        let t0 = cx.clock.now();
        self.emit(path, EventKind::Started { op: OpKind::Delete });
        if let Some(field) = protected_by(res) {
            self.lift_protection(slot, &cx, path, res, field).await?;
        }
        let intent = self.delete_intent(path, res.kind, &res.provider, &res.id, res.deps.clone());
        self.journal.write(vec![Record::Intent(intent)]).await?;
        self.engine.crash_point(CrashPhase::BeforeCall);
        // A resource the stack uses but does not own is forgotten, never deleted.
        let owned = !crate::kind::field::common::is_unmanaged(&res.inputs);
        let deleted = if owned {
            self.call(slot, &cx, path, OpKind::Delete, || slot.provider.delete(&cx, res.kind, &res.id)).await
        } else {
            Ok(())
        };
        match deleted {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                self.journal.write_behind(vec![Record::Abandon { path: path.to_string(), op: OpKind::Delete }]);
                return Err(e.into());
            }
        }
        self.engine.crash_point(CrashPhase::AfterCall);
        self.journal.write_behind(vec![Record::Deleted { path: path.to_string(), id: res.id.clone() }]);
        self.emit(
            path,
            EventKind::Succeeded {
                op: OpKind::Delete,
                id: res.id.clone(),
                elapsed_ms: cx.clock.now().saturating_sub(t0).as_millis() as u64,
            },
        );
        Ok(())
    }

    /// Turn deletion protection off right before deleting: an update with the recorded inputs,
    /// the protection field `false` and no secret (so none is reset). The run reached this only
    /// because the plan showed the protection and the caller allowed lifting it.
    async fn lift_protection(
        &self,
        slot: &ProviderSlot,
        cx: &OpContext,
        path: &str,
        res: &ResourceState,
        field: &str,
    ) -> Result<(), OpFailure> {
        let mut spec: serde_json::Map<String, Value> = res.inputs.clone().into_iter().collect();
        spec.insert(field.to_string(), Value::Bool(false));
        for secret in res.kind.def().secrets {
            spec.insert((*secret).to_string(), Value::Null);
        }
        let mut intent = self.delete_intent(path, res.kind, &res.provider, &res.id, res.deps.clone());
        intent.op = OpKind::Update;
        self.journal.write(vec![Record::Intent(intent)]).await?;
        let spec = Value::Object(spec);
        let lifted = self
            .call(slot, cx, path, OpKind::Update, || slot.provider.update(cx, res.kind, &res.id, spec.clone()))
            .await;
        // Nothing to keep in state: the delete follows at once. After a crash right here the
        // next run reads the resource back (reconciliation of the pending update).
        self.journal.write(vec![Record::Abandon { path: path.to_string(), op: OpKind::Update }]).await?;
        lifted.map(|_| ()).map_err(|e| OpFailure {
            kind: e.kind(),
            message: format!("turning deletion protection off before the delete failed: {}", e.full_chain()),
        })
    }

    /// A new instance failed its health gate: delete it and make the old one current again.
    pub(super) async fn roll_back(
        &self,
        slot: &ProviderSlot,
        cx: &OpContext,
        r: &crate::synth::SynthResource,
        new_id: &str,
        why: &str,
    ) -> OpFailure {
        let old_id = self.plan.changes.iter().find(|c| c.path == r.path && !c.deposed).and_then(|c| c.id.clone());
        let intent = self.delete_intent(&r.path, r.kind, &r.provider, new_id, r.depends_on.clone());
        if let Err(e) = self.journal.write(vec![Record::Intent(intent)]).await {
            return e.into();
        }
        let deleted =
            match self.call(slot, cx, &r.path, OpKind::Delete, || slot.provider.delete(cx, r.kind, new_id)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            };
        let mut recs = Vec::new();
        if deleted.is_ok() {
            recs.push(Record::Deleted { path: r.path.clone(), id: new_id.to_string() });
        } else {
            recs.push(Record::Abandon { path: r.path.clone(), op: OpKind::Delete });
        }
        if let Some(old) = &old_id {
            if deleted.is_ok() {
                recs.push(Record::Undepose { path: r.path.clone(), id: old.clone() });
            }
        }
        if let Err(e) = self.journal.write(recs).await {
            return e.into();
        }
        self.rolled_back.lock().unwrap_or_else(|p| p.into_inner()).push(r.path.clone());
        let old = old_id.as_deref().unwrap_or("(none)");
        let message = match deleted {
            Ok(()) => format!("rolled back: the new instance {new_id} failed its health gate ({why}); it was removed and the old instance {old} keeps serving"),
            Err(e) => format!("rolled back: the new instance {new_id} failed its health gate ({why}) and could not be removed ({}); both are in state, the old instance {old} keeps serving", e.full_chain()),
        };
        OpFailure { kind: ErrorKind::Other, message }
    }
}

/// The field whose `true` protects `res` from deletion, when it is set.
fn protected_by(res: &ResourceState) -> Option<&'static str> {
    let field = res.kind.def().deletion_protection?;
    let on = |v: Option<&Value>| v.and_then(Value::as_bool) == Some(true);
    (on(res.inputs.get(field)) || on(res.attr(field))).then_some(field)
}

/// A slot of a concurrency bound (a closed semaphore means the engine is shutting down).
pub(super) async fn permit(sem: &tokio::sync::Semaphore) -> Result<tokio::sync::SemaphorePermit<'_>, OpFailure> {
    sem.acquire().await.map_err(|_| OpFailure { kind: ErrorKind::Cancelled, message: "engine shut down".into() })
}
