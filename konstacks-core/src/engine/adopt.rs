//! Moving resources into and out of a stack's state by hand: `import` adopts an existing cloud
//! resource at a path (refusing one another stack owns unless forced), `forget` drops a resource
//! from state and leaves it in the cloud (Terraform's `state rm`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::Error;
use crate::kind::Selector;
use crate::plan::{self, Env, Mode, Plan, Resolved};
use crate::state::{AuditCommand, LockInfo, Record, ResourceState};
use crate::synth::Synthesized;

use super::{guard, Engine, Hazard, ImportOptions, Refusal};

impl Engine {
    /// Adopt an existing cloud resource into the stack at `path` by its provider id. The
    /// resource is read (one batched call), recorded in state with the values the cloud reports,
    /// and the returned plan shows exactly what the next apply would change to make it match the
    /// stack (typically: add the stack's tags).
    ///
    /// A resource whose tags say it belongs to another stack is refused with that stack's name
    /// unless `opts.force`. The import is recorded in the stack's audit trail, however it ends
    /// once the lock is taken.
    pub async fn import(&self, s: &Synthesized, path: &str, id: &str, opts: &ImportOptions) -> Result<Plan, Error> {
        let idx = s.index_of(path).ok_or_else(|| {
            Error::Usage(format!(
                "stack `{}` has no resource at `{path}`; import targets a path the stack declares",
                s.name
            ))
        })?;
        let r = &s.resources[idx];
        let slot = self.slot(&r.provider)?;
        let lock = LockInfo::for_this_process("import");
        self.state.lock(&s.name, &lock).await?;
        let mut audit = self.audit_start(AuditCommand::Import, None);
        let res = async {
            let mut state = self.state.load(&s.name).await?;
            audit.state_read();
            if let Some(existing) = state.resources.get(path) {
                return Err(Error::Usage(format!(
                    "`{path}` is already managed (id {}); remove it from state or pick another path",
                    existing.id
                )));
            }
            if let Some((other, _)) = state.resources.iter().find(|(_, x)| x.id == id) {
                return Err(Error::Usage(format!("{id} is already managed at `{other}`")));
            }
            let cx = self.cx(&s.name);
            let sel = Selector::Ids(vec![id.to_string()]);
            let found = self
                .with_retries(slot, &cx, || slot.provider.read_many(&cx, r.kind, &sel))
                .await
                .map_err(|e| Error::Provider { context: format!("reading {} {id}", r.kind), source: e })?;
            let Some((_, attrs)) = found.into_iter().find(|(i, _)| i == id) else {
                return Err(Error::Usage(format!(
                    "provider `{}` has no {} with id `{id}` (in the region the stack uses); check the id",
                    r.provider, r.kind
                )));
            };
            let mut attrs = attrs;
            let foreign = guard::owner_of(&attrs).is_some_and(|o| o != s.name);
            if let Some(owner) = guard::owner_of(&attrs).filter(|_| foreign && !opts.force) {
                let hazard =
                    Hazard::OtherStack { path: path.to_string(), id: id.to_string(), owner: owner.to_string() };
                return Err(Error::Refused(Box::new(Refusal { stack: s.name.clone(), hazards: vec![hazard] })));
            }
            // What the cloud reports wins; fields it cannot report (user data, secrets, options)
            // are taken from the stack, so only real differences show in the next plan.
            let known: Vec<Option<&ResourceState>> = s.resources.iter().map(|x| state.resources.get(&x.path)).collect();
            let env = Env {
                stack: &s.name,
                path,
                attrs: &known,
                generation: 0,
                prior_name: None,
                mode: Mode::Plan,
                secrets: None,
                field: "",
            };
            let mut inputs = BTreeMap::new();
            for (k, e) in &r.fields {
                let v = match attrs.get(k) {
                    Some(v) => v.clone(),
                    None => match plan::resolve(e, &env) {
                        Ok(Resolved::Known(v)) => v,
                        _ => Value::Null,
                    },
                };
                inputs.insert(k.to_string(), v);
            }
            if foreign {
                // Taken over: its inputs keep the cloud's tags (the next apply re-tags it), its
                // attributes name this stack so that its own runs do not see a foreign resource.
                if let Some(Value::Object(tags)) = attrs.get_mut("tags") {
                    tags.insert(crate::kind::TAG_STACK.to_string(), Value::String(s.name.clone()));
                }
            }
            let rec = Record::Put {
                path: path.to_string(),
                resource: {
                    let mut res = ResourceState::new(r.kind, r.provider.clone(), id, inputs, attrs);
                    res.deps = r.depends_on.clone();
                    res
                },
            };
            let entry = self.audit_import(&audit, path, id, Ok(()));
            let recs = [rec, entry];
            self.state.append(&s.name, &recs).await?;
            audit.recorded();
            for r in &recs {
                state.apply(r);
            }
            state.serial += 1;
            self.state.compact(&s.name, &state).await?;
            Ok(self.plan_against(s, &state))
        }
        .await;
        let audited = match &res {
            Err(e) if audit.writable() => {
                self.state.append(&s.name, &[self.audit_import(&audit, path, id, Err(e))]).await
            }
            _ => Ok(()),
        };
        let unlocked = self.state.unlock(&s.name, &lock.id).await;
        let plan = res?;
        unlocked?;
        audited?;
        Ok(plan)
    }

    /// Drop the resource at `path` from the stack's state, leaving it in the cloud untouched
    /// (the next plan of a stack that still declares the path creates a new one). Returns what
    /// state held.
    pub async fn forget(&self, stack: &str, path: &str) -> Result<ResourceState, Error> {
        let lock = LockInfo::for_this_process("forget");
        self.state.lock(stack, &lock).await?;
        let res = async {
            let mut state = self.state.load(stack).await?;
            let Some(r) = state.resources.get(path).cloned() else {
                return Err(Error::Usage(format!(
                    "no resource at `{path}` in the state of stack {stack}; `state list` shows what there is"
                )));
            };
            let rec = Record::Deleted { path: path.to_string(), id: r.id.clone() };
            self.state.append(stack, std::slice::from_ref(&rec)).await?;
            state.apply(&rec);
            state.serial += 1;
            self.state.compact(stack, &state).await?;
            Ok(r)
        }
        .await;
        let unlocked = self.state.unlock(stack, &lock.id).await;
        let r = res?;
        unlocked?;
        Ok(r)
    }
}
