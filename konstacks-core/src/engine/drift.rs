//! Drift and refresh: read what the cloud holds of a stack's resources in batches, compare it
//! with state field by field, and accept it into state on `refresh`. A resource the stack uses
//! but does not own (`managed: false` in its inputs) drifts only by disappearing.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::Error;
use crate::kind::field::common;
use crate::kind::Kind;
use crate::kind::Selector;
use crate::plan::{self};
use crate::state::{AuditCommand, LockInfo, Record, StackState};

use super::report::*;
use super::Engine;

impl Engine {
    /// Compare state with the cloud (batched reads) without changing the stack's resources.
    /// The check is recorded in the stack's audit trail under the lock, taken only for that;
    /// when another run holds the lock the entry is skipped with a warning event.
    pub async fn drift(&self, stack: &str) -> Result<DriftReport, Error> {
        let audit = self.audit_start(AuditCommand::Drift, None);
        let state = self.state.load(stack).await?;
        let (observed, calls) = self.observe(&state).await?;
        let report = DriftReport {
            stack: stack.into(),
            checked: state.resources.len(),
            read_calls: calls,
            items: Self::drift_of(&state, &observed),
        };
        self.audit_drift(&audit, &state, &report).await?;
        Ok(report)
    }

    /// Accept the cloud's values into state: drifted fields take the cloud's value, resources
    /// deleted outside Konstacks leave state. The next plan then shows what it takes to bring
    /// the cloud back to the stack. Recorded in the stack's audit trail, however it ends.
    pub async fn refresh(&self, stack: &str) -> Result<DriftReport, Error> {
        let lock = LockInfo::for_this_process("refresh");
        self.state.lock(stack, &lock).await?;
        let mut audit = self.audit_start(AuditCommand::Refresh, None);
        let res = async {
            let mut state = self.state.load(stack).await?;
            audit.state_read();
            let (observed, calls) = self.observe(&state).await?;
            let items = Self::drift_of(&state, &observed);
            let mut recs = refresh_records(&state, &observed);
            let report = DriftReport { stack: stack.into(), checked: 0, read_calls: calls, items };
            // The entry is journaled first and folded into the snapshot with the changes.
            let entry = self.audit_refresh(&audit, &Ok(report.clone()));
            self.state.append(stack, std::slice::from_ref(&entry)).await?;
            audit.recorded();
            recs.push(entry);
            for r in &recs {
                state.apply(r);
            }
            state.serial += 1;
            self.state.compact(stack, &state).await?;
            Ok::<_, Error>(DriftReport { checked: state.resources.len(), ..report })
        }
        .await;
        let audited = match &res {
            Err(_) if audit.writable() => self.state.append(stack, &[self.audit_refresh(&audit, &res)]).await,
            _ => Ok(()),
        };
        let unlocked = self.state.unlock(stack, &lock.id).await;
        let r = res?;
        unlocked?;
        audited?;
        Ok(r)
    }

    /// Batched read of everything in state; returns (path -> observed attrs or None if gone).
    pub(super) async fn observe(
        &self,
        state: &StackState,
    ) -> Result<(BTreeMap<String, Option<BTreeMap<String, Value>>>, usize), Error> {
        let cx = self.cx(&state.stack);
        let mut groups: BTreeMap<(String, Kind), Vec<(String, String)>> = BTreeMap::new();
        for (path, r) in &state.resources {
            groups.entry((r.provider.clone(), r.kind)).or_default().push((path.clone(), r.id.clone()));
        }
        let mut out = BTreeMap::new();
        let mut calls = 0;
        for ((provider, kind), items) in groups {
            let slot = self.slot(&provider)?;
            let ids: Vec<String> = items.iter().map(|(_, id)| id.clone()).collect();
            calls += 1;
            let sel = Selector::Ids(ids);
            let found = self
                .with_retries(slot, &cx, || slot.provider.read_many(&cx, kind, &sel))
                .await
                .map_err(|e| Error::Provider { context: format!("reading {kind} resources"), source: e })?;
            let by_id: BTreeMap<String, BTreeMap<String, Value>> = found.into_iter().collect();
            for (path, id) in items {
                out.insert(path, by_id.get(&id).cloned());
            }
        }
        Ok((out, calls))
    }

    pub(super) fn drift_of(
        state: &StackState,
        observed: &BTreeMap<String, Option<BTreeMap<String, Value>>>,
    ) -> Vec<DriftItem> {
        let mut items = Vec::new();
        for (path, r) in &state.resources {
            match observed.get(path) {
                // A resource the stack does not own is the owner's to change: only its loss counts.
                Some(Some(_)) if common::is_unmanaged(&r.inputs) => {}
                Some(Some(attrs)) => {
                    let fields: Vec<FieldDrift> = r
                        .inputs
                        .iter()
                        .filter_map(|(k, v)| {
                            let cloud = attrs.get(k)?;
                            (plan::canonical(cloud) != plan::canonical(v)).then(|| FieldDrift {
                                name: k.to_string(),
                                state: v.clone(),
                                cloud: cloud.clone(),
                            })
                        })
                        .collect();
                    if !fields.is_empty() {
                        items.push(DriftItem {
                            path: path.clone(),
                            kind: r.kind,
                            id: r.id.clone(),
                            status: DriftStatus::Changed,
                            fields,
                        });
                    }
                }
                _ => items.push(DriftItem {
                    path: path.clone(),
                    kind: r.kind,
                    id: r.id.clone(),
                    status: DriftStatus::Deleted,
                    fields: vec![],
                }),
            }
        }
        items
    }

    pub(super) async fn refresh_in_memory(&self, state: &mut StackState) -> Result<(), Error> {
        let (observed, _) = self.observe(state).await?;
        for r in refresh_records(state, &observed) {
            state.apply(&r);
        }
        Ok(())
    }
}

fn refresh_records(state: &StackState, observed: &BTreeMap<String, Option<BTreeMap<String, Value>>>) -> Vec<Record> {
    let mut recs = Vec::new();
    for (path, r) in &state.resources {
        match observed.get(path) {
            Some(Some(attrs)) => {
                let mut nr = r.clone();
                // The inputs of a resource the stack does not own stay what it asked for.
                let owned = !common::is_unmanaged(&r.inputs);
                for (k, v) in nr.inputs.iter_mut().filter(|_| owned) {
                    if let Some(cloud) = attrs.get(k) {
                        if plan::canonical(cloud) != plan::canonical(v) {
                            *v = cloud.clone();
                        }
                    }
                }
                nr.set_attrs(attrs.clone());
                if &nr != r {
                    recs.push(Record::Put { path: path.clone(), resource: nr });
                }
            }
            _ => recs.push(Record::Deleted { path: path.clone(), id: r.id.clone() }),
        }
    }
    recs
}
