//! The executor of one apply or destroy: the operation graph, run secrets, and each operation.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use tracing::Instrument;

use crate::base::clock::OpContext;
use crate::base::error::{ErrorKind, ProviderError, StateError};
use crate::base::secret::{Secret, SecretSource};
use crate::error::Error;
use crate::events::EventKind;
use crate::kind::api::Attrs;
use crate::plan::{self, Action, Env, Mode, NodePlan, Plan, Resolved};
use crate::state::{OpKind, Record, ResourceState, StackState};
use crate::synth::{Expr, Synthesized};

use super::journal::Journal;
use super::report::*;
use super::{CrashPhase, Engine, ProviderSlot};

use super::ops::permit;
use super::release::{self, ReleaseGate, Switched};
use super::secrets::{Recovery, RunSecrets};

// ---------------------------------------------------------------------------------------------
// The executor.

#[derive(Debug)]
pub(super) enum OpSpec {
    /// Create, update or replace-create of a node of the synthesized stack.
    Write { node: usize, action: Action },
    /// Delete an old resource.
    Delete { path: String, res: ResourceState, report_as: Option<Action> },
}

pub(super) struct Op {
    pub(super) spec: OpSpec,
    pub(super) prereqs: usize,
    pub(super) dependents: Vec<usize>,
}

pub(super) struct Exec<'a> {
    pub(super) engine: &'a Engine,
    pub(super) stack: &'a str,
    pub(super) s: Option<&'a Synthesized>,
    pub(super) plan: &'a Plan,
    pub(super) nodes: &'a [NodePlan],
    pub(super) journal: &'a Journal,
    pub(super) ops: Vec<Op>,
    /// Attributes of the resources another one reads, by node (only those are kept: the rest
    /// are in the journal's replica, and a stack of leaves would otherwise hold a second copy).
    pub(super) attrs: Mutex<Vec<Option<Arc<Attrs>>>>,
    /// Whether another resource of the stack reads the node's attributes.
    pub(super) read_by_others: Vec<bool>,
    pub(super) deps_paths: Vec<Vec<String>>,
    /// Physical names of existing resources, kept by in-place updates (and by moves).
    pub(super) prior_names: Vec<Option<String>>,
    pub(super) secrets: RunSecrets,
    pub(super) policy: FailurePolicy,
    pub(super) started: Duration,
    pub(super) retries: AtomicU64,
    pub(super) adopted: Mutex<Vec<String>>,
    /// Ids state already tracks: never adopted as "the one we just created".
    pub(super) known_ids: BTreeSet<String>,
    /// Rolling batches of health-gated replacements.
    pub(super) rolling: Option<tokio::sync::Semaphore>,
    pub(super) rolled_back: Mutex<Vec<String>>,
    /// The release gate of each replaced node a load balancer targets.
    pub(super) release: Vec<Option<Arc<ReleaseGate>>>,
    /// Targets this run switched to new instances (undone when the release fails).
    pub(super) switched: Mutex<Vec<Switched>>,
    /// The recorded state of each released path before the run.
    pub(super) prior_state: BTreeMap<String, ResourceState>,
}

#[derive(Debug)]
pub(super) struct OpFailure {
    pub(super) kind: ErrorKind,
    pub(super) message: String,
}

impl From<ProviderError> for OpFailure {
    fn from(e: ProviderError) -> Self {
        Self { kind: e.kind(), message: e.full_chain() }
    }
}

impl From<StateError> for OpFailure {
    fn from(e: StateError) -> Self {
        Self { kind: ErrorKind::Other, message: format!("state: {e}") }
    }
}

impl<'a> Exec<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn build(
        engine: &'a Engine,
        stack: &'a str,
        s: Option<&'a Synthesized>,
        plan: &'a Plan,
        nodes: &'a [NodePlan],
        state: &StackState,
        journal: &'a Journal,
        policy: FailurePolicy,
        started: Duration,
        recovery: Recovery,
    ) -> Result<Self, Error> {
        let n = s.map(|s| s.resources.len()).unwrap_or(0);
        let mut ops: Vec<Op> = Vec::new();
        let push = |ops: &mut Vec<Op>, spec| {
            ops.push(Op { spec, prereqs: 0, dependents: Vec::new() });
            ops.len() - 1
        };
        let mut write_op: Vec<Option<usize>> = vec![None; n];
        let mut old_delete: Vec<Option<usize>> = vec![None; n];
        // Delete ops by the path of the resource they delete, and which old paths each depends on.
        let mut delete_by_path: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut attrs: Vec<Option<Arc<Attrs>>> = vec![None; n];
        let mut deps_paths: Vec<Vec<String>> = vec![Vec::new(); n];
        let mut prior_names: Vec<Option<String>> = vec![None; n];

        let mut read_by_others = vec![false; n];
        for d in s.iter().flat_map(|s| s.resources.iter()).flat_map(|r| r.deps.iter()) {
            if let Some(flag) = read_by_others.get_mut(*d) {
                *flag = true;
            }
        }
        if let Some(s) = s {
            for (i, r) in s.resources.iter().enumerate() {
                let np = &nodes[i];
                let change = &plan.changes[i];
                let prior_path = change.moved_from.as_deref().unwrap_or(&r.path);
                let prior = state.resources.get(prior_path).or_else(|| state.resources.get(&r.path));
                deps_paths[i] = r.depends_on.clone();
                if matches!(np.action, Action::NoOp | Action::Update) {
                    attrs[i] = prior.filter(|_| read_by_others[i]).map(|p| Arc::new(p.attrs()));
                    prior_names[i] =
                        prior.and_then(|p| p.inputs.get("name")).and_then(Value::as_str).map(str::to_string);
                }
                if matches!(np.action, Action::Create | Action::Update | Action::Replace) {
                    write_op[i] = Some(push(&mut ops, OpSpec::Write { node: i, action: np.action }));
                }
                if np.action == Action::Replace {
                    if let Some(p) = prior {
                        let d =
                            push(&mut ops, OpSpec::Delete { path: r.path.clone(), res: p.clone(), report_as: None });
                        old_delete[i] = Some(d);
                        delete_by_path.entry(r.path.clone()).or_default().push(d);
                    }
                }
            }
        }
        for c in plan.changes.iter().filter(|c| c.action == Action::Delete) {
            let res = if c.deposed {
                state.deposed.iter().find(|d| Some(&d.resource.id) == c.id.as_ref()).map(|d| d.resource.clone())
            } else {
                state.resources.get(&c.path).cloned()
            };
            if let Some(res) = res {
                let d = push(&mut ops, OpSpec::Delete { path: c.path.clone(), res, report_as: Some(Action::Delete) });
                delete_by_path.entry(c.path.clone()).or_default().push(d);
            }
        }

        let mut edges = ordering(s, nodes, state, &ops, &write_op, &old_delete, &delete_by_path);
        edges.sort_unstable();
        edges.dedup();
        for (a, b) in edges {
            if a != b {
                ops[a].dependents.push(b);
                ops[b].prereqs += 1;
            }
        }
        check_acyclic(&ops)?;
        let release = s.map(|s| release::gates(s, plan, nodes)).unwrap_or_default();
        let prior_state = s
            .map(|s| {
                s.resources
                    .iter()
                    .zip(&release)
                    .filter(|(_, g)| g.is_some())
                    .filter_map(|(r, _)| state.resources.get(&r.path).map(|p| (r.path.clone(), p.clone())))
                    .collect()
            })
            .unwrap_or_default();

        Ok(Self {
            engine,
            stack,
            s,
            plan,
            nodes,
            journal,
            ops,
            attrs: Mutex::new(attrs),
            read_by_others,
            deps_paths,
            prior_names,
            secrets: RunSecrets::for_run(stack, s, state, engine.sealer.clone(), recovery.rotations),
            policy,
            started,
            retries: AtomicU64::new(0),
            adopted: Mutex::new(Vec::new()),
            known_ids: state
                .resources
                .values()
                .chain(state.deposed.iter().map(|d| &d.resource))
                .map(|r| r.id.clone())
                .collect(),
            rolling: s
                .and_then(|s| s.resources.iter().filter_map(|r| r.health.as_ref().map(|g| g.batch.max(1))).min())
                .map(tokio::sync::Semaphore::new),
            rolled_back: Mutex::new(Vec::new()),
            release,
            switched: Mutex::new(Vec::new()),
            prior_state,
        })
    }

    pub(super) fn op_path(&self, op: usize) -> String {
        match &self.ops[op].spec {
            OpSpec::Write { node, .. } => self.s.map(|s| s.resources[*node].path.clone()).unwrap_or_default(),
            OpSpec::Delete { path, .. } => path.clone(),
        }
    }

    pub(super) fn emit(&self, path: &str, kind: EventKind) {
        self.engine.emit(self.stack, Some(path), self.started, kind);
    }

    pub(super) async fn run(&self, report: &mut ApplyReport) {
        if let Some(message) = super::secrets::unsealed_warning(self.s, self.nodes, self.secrets.sealer.as_ref()) {
            self.engine.emit(self.stack, None, self.started, EventKind::Warning { message: message.clone() });
            report.warnings.push(message);
        }
        let mut remaining: Vec<usize> = self.ops.iter().map(|o| o.prereqs).collect();
        let mut ready: VecDeque<usize> = (0..self.ops.len()).filter(|i| remaining[*i] == 0).collect();
        let mut done = vec![false; self.ops.len()];
        let mut blocked = vec![false; self.ops.len()];
        let mut stop = false;
        let mut running = FuturesUnordered::new();
        loop {
            if !stop && self.engine.cancel.is_cancelled() {
                stop = true;
                report.cancelled = true;
            }
            if !stop {
                while let Some(op) = ready.pop_front() {
                    running.push(async move { (op, self.run_op(op).await) });
                }
            }
            let Some((op, result)) = running.next().await else { break };
            done[op] = true;
            match result {
                Ok(()) => {
                    let path = self.op_path(op);
                    match &self.ops[op].spec {
                        OpSpec::Write { action: Action::Create, .. } => report.created.push(path),
                        OpSpec::Write { action: Action::Update, .. } => report.updated.push(path),
                        OpSpec::Write { action: Action::Replace, .. } => report.replaced.push(path),
                        OpSpec::Delete { report_as: Some(_), .. } => report.deleted.push(path),
                        _ => {}
                    }
                    for &d in &self.ops[op].dependents {
                        remaining[d] -= 1;
                        if remaining[d] == 0 && !blocked[d] {
                            ready.push_back(d);
                        }
                    }
                }
                Err(f) => {
                    let path = self.op_path(op);
                    let opk = match &self.ops[op].spec {
                        OpSpec::Write { action: Action::Update, .. } => OpKind::Update,
                        OpSpec::Write { .. } => OpKind::Create,
                        OpSpec::Delete { .. } => OpKind::Delete,
                    };
                    self.emit(
                        &path,
                        EventKind::Failed { op: opk, error_kind: f.kind.to_string(), error: f.message.clone() },
                    );
                    report.failures.push(Failure { path: path.clone(), op: opk, kind: f.kind, message: f.message });
                    // Everything downstream is blocked.
                    let mut queue: Vec<usize> = self.ops[op].dependents.clone();
                    while let Some(d) = queue.pop() {
                        if !blocked[d] {
                            blocked[d] = true;
                            queue.extend(self.ops[d].dependents.iter().copied());
                        }
                    }
                    if self.policy == FailurePolicy::FinishInFlight {
                        stop = true;
                    }
                }
            }
        }
        for (i, d) in done.iter().enumerate() {
            if !d {
                let path = self.op_path(i);
                let reason = if blocked[i] {
                    "a resource it depends on failed"
                } else if report.cancelled {
                    "the run was interrupted"
                } else {
                    "the run stopped after a failure"
                };
                self.emit(&path, EventKind::Skipped { reason: reason.into() });
                report.skipped.push(path);
            }
        }
        report.skipped.sort();
        report.skipped.dedup();
        report.retries = self.retries.load(Ordering::Relaxed);
        report.adopted = self.adopted.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !self.rolled_back.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            // A failed release switches back every target it already switched.
            let undone = self.undo_switched().await;
            self.rolled_back.lock().unwrap_or_else(|p| p.into_inner()).extend(undone);
        }
        report.rolled_back = self.rolled_back.lock().unwrap_or_else(|p| p.into_inner()).clone();
        report.rolled_back.sort();
        for v in
            [&mut report.created, &mut report.updated, &mut report.replaced, &mut report.deleted, &mut report.adopted]
        {
            v.sort();
        }
        report.failures.sort_by(|a, b| a.path.cmp(&b.path));
    }

    pub(super) async fn run_op(&self, op: usize) -> Result<(), OpFailure> {
        match &self.ops[op].spec {
            OpSpec::Write { node, action } => self.run_write(*node, *action).await,
            OpSpec::Delete { path, res, .. } => self.run_delete(path, res).await,
        }
    }

    pub(super) fn slot(&self, provider: &str) -> Result<&Arc<ProviderSlot>, OpFailure> {
        self.engine.slot(provider).map_err(|e| OpFailure { kind: ErrorKind::InvalidSpec, message: e.to_string() })
    }

    /// One provider call with pacing and retries on throttling / transient errors; a transient
    /// failure of a create is checked for a resource that was made anyway before retrying.
    pub(super) async fn call<T, F, Fut>(
        &self,
        slot: &ProviderSlot,
        cx: &OpContext,
        path: &str,
        op: OpKind,
        mut f: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let retry = &self.engine.retry;
        let first = cx.clock.now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(p) = &slot.pacer {
                p.acquire(cx.clock.as_ref()).await;
            }
            let err = match f().instrument(cx.span.clone()).await {
                Ok(v) => {
                    if let Some(p) = &slot.pacer {
                        p.succeeded();
                    }
                    return Ok(v);
                }
                Err(e) => e,
            };
            let elapsed = cx.clock.now().saturating_sub(first);
            let retry_it = match err.kind() {
                ErrorKind::Throttled => {
                    if let Some(p) = &slot.pacer {
                        p.throttled();
                    }
                    attempt < retry.max_attempts * 2
                }
                // An uncertain failure may hide a success: the caller looks before it retries.
                ErrorKind::Transient => !err.is_uncertain() && attempt < retry.max_attempts,
                // Eventual consistency: something just created is not visible yet.
                ErrorKind::NotFound => op != OpKind::Delete && elapsed < retry.consistency_window,
                // The cloud may still be detaching a dependency that was just deleted.
                ErrorKind::Conflict => op == OpKind::Delete && elapsed < retry.conflict_window,
                _ => false,
            };
            // A cancelled run does not wait to try again: the next run picks up from state.
            if !retry_it || cx.is_cancelled() {
                return Err(err);
            }
            let delay = retry.delay(attempt, &self.engine.rng);
            self.retries.fetch_add(1, Ordering::Relaxed);
            self.emit(
                path,
                EventKind::Retrying {
                    op,
                    attempt,
                    delay_ms: delay.as_millis() as u64,
                    error_kind: err.kind().to_string(),
                    error: err.message().to_string(),
                },
            );
            cx.clock.sleep(delay).await;
        }
    }

    /// Resolve every field of the resource at `node` for a write: in `Mode::Plan` with markers
    /// for secrets, in `Mode::Apply` with real values for the fields `real` selects.
    fn resolve_fields(
        &self,
        node: usize,
        action: Action,
        dep_attrs: &BTreeMap<usize, Arc<Attrs>>,
        mode: Mode,
        real: &dyn Fn(&str) -> bool,
    ) -> Result<serde_json::Map<String, Value>, OpFailure> {
        let Some(s) = self.s else { return Ok(serde_json::Map::new()) };
        let (r, np) = (&s.resources[node], &self.nodes[node]);
        let env = Env {
            stack: &s.name,
            path: &r.path,
            attrs: dep_attrs,
            generation: np.generation,
            prior_name: if action == Action::Update { self.prior_names[node].as_deref() } else { None },
            mode,
            secrets: Some(&self.secrets),
            field: "",
        };
        let marker_env = Env { mode: Mode::Plan, ..env };
        let mut out = serde_json::Map::new();
        for (k, e) in &r.fields {
            // Unchanged fields of an update get real values too when they are at hand; only a
            // secret this run cannot know falls back to its marker (the update leaves it alone).
            let (env, marker_env) = (Env { field: k, ..env }, Env { field: k, ..marker_env });
            let resolved = match plan::resolve(e, &env) {
                Err(_) if !real(k) => plan::resolve(e, &marker_env),
                other => other,
            };
            match resolved {
                Ok(Resolved::Known(v)) => {
                    out.insert(k.to_string(), v);
                }
                Ok(Resolved::Unknown) => {
                    return Err(OpFailure { kind: ErrorKind::Other, message: format!("internal: field `{k}` still unknown at apply") })
                }
                Err(plan::MissingSecret(what)) => {
                    return Err(OpFailure {
                        kind: ErrorKind::InvalidSpec,
                        message: format!(
                            "the secret {what} is not available in this run: it is stored only when {} is set; set it, or replace {what}'s resource to generate a new one",
                            crate::base::secret::SECRET_KEY_ENV
                        ),
                    })
                }
            }
        }
        Ok(out)
    }

    pub(super) async fn run_write(&self, node: usize, action: Action) -> Result<(), OpFailure> {
        let Some(s) = self.s else { return Ok(()) };
        let r = &s.resources[node];
        let np = &self.nodes[node];
        // Behind a load balancer, a replacement is a release, gated by the load balancer's own
        // health check; otherwise by the resource's health gate, if it has one.
        let released = self.release.get(node).and_then(Option::as_ref).filter(|_| action == Action::Replace);
        let gate =
            r.health.as_ref().filter(|_| action == Action::Replace && np.create_before_destroy && released.is_none());
        let release_slot = match released {
            Some(g) => Some(self.release_slot(g).await?),
            None => None,
        };
        let early = release_slot.as_ref().is_some_and(|s| s.early);
        // Health-gated replacements roll in batches: at most `batch` at once in the stack.
        let _batch = match (gate, &self.rolling) {
            (Some(_), Some(sem)) => Some(permit(sem).await?),
            _ => None,
        };
        if gate.is_some() && !self.rolled_back.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            return Err(OpFailure {
                kind: ErrorKind::Cancelled,
                message: "not replaced: an earlier instance of this rolling update failed its health gate".into(),
            });
        }
        let slot = self.slot(&r.provider)?;
        let _permit = permit(&slot.semaphore).await?;
        let opk = if action == Action::Update { OpKind::Update } else { OpKind::Create };
        let cx = self.engine.op_cx(self.stack, &r.path, opk);
        let t0 = cx.clock.now();
        self.emit(&r.path, EventKind::Started { op: opk });
        if let (Some(g), true) = (released, early) {
            self.leave_early(&cx, g, &r.path).await?;
        }

        // Attributes of the dependencies, all final by now.
        let dep_attrs: BTreeMap<usize, Arc<Attrs>> = {
            let a = self.attrs.lock().unwrap_or_else(|p| p.into_inner());
            r.deps.iter().filter_map(|d| a.get(*d).cloned().flatten().map(|v| (*d, v))).collect()
        };
        // A create or replacement makes its generated secrets; an update makes only those this
        // run rotates in place (lost ones a dependent needs).
        for attr in r.kind.secrets() {
            if action == Action::Update && !self.secrets.rotates(&r.path, attr) {
                continue;
            }
            if let Some(Expr::Secret(SecretSource::Generated { len })) = r.fields.get(attr) {
                self.secrets.put(&r.path, attr, Secret::generate(*len));
                if action == Action::Update {
                    self.emit(
                        &r.path,
                        EventKind::Progress { message: format!("rotating the lost secret `{attr}` in place") },
                    );
                }
            }
        }
        let inputs: BTreeMap<String, Value> =
            self.resolve_fields(node, action, &dep_attrs, Mode::Plan, &|_| true)?.into_iter().collect();
        // An update hands the provider real values only for the fields that change; unchanged
        // fields keep their markers (a secret of an earlier run may not be available, and an
        // update never needs it).
        let changed: BTreeSet<&str> = self.plan.changes[node].fields.iter().map(|f| f.name.as_str()).collect();
        let real = |k: &str| action != Action::Update || changed.contains(k);
        let mut spec = self.resolve_fields(node, action, &dep_attrs, Mode::Apply, &real)?;
        // A secret is sent on update only when it changes.
        for attr in r.kind.secrets() {
            if action == Action::Update && spec.contains_key(*attr) && !changed.contains(attr) {
                spec.insert(attr.to_string(), Value::Null);
            }
        }
        let spec = Value::Object(spec);
        let tags: BTreeMap<String, String> = inputs
            .get("tags")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        let name = inputs.get("name").and_then(Value::as_str).unwrap_or_default().to_string();

        let (id, attrs) = match action {
            Action::Update => {
                let id = self.plan.changes[node].id.clone().unwrap_or_default();
                let intent = self.intent(OpKind::Update, r, Some(id.clone()), np.generation, tags, inputs.clone());
                self.journal.write(vec![Record::Intent(intent)]).await?;
                self.engine.crash_point(CrashPhase::BeforeCall);
                let res = self
                    .call(slot, &cx, &r.path, OpKind::Update, || slot.provider.update(&cx, r.kind, &id, spec.clone()))
                    .await;
                match res {
                    Ok(v) => v,
                    Err(e) => {
                        self.journal.write_behind(vec![Record::Abandon { path: r.path.clone(), op: OpKind::Update }]);
                        return Err(e.into());
                    }
                }
            }
            _ => {
                let mut recs = Vec::new();
                // A released instance is deposed only once its replacement serves.
                if action == Action::Replace && np.create_before_destroy && released.is_none() {
                    if let Some(id) = &self.plan.changes[node].id {
                        recs.push(Record::Depose { path: r.path.clone(), id: id.clone() });
                    }
                }
                let mut intent = self.intent(OpKind::Create, r, None, np.generation, tags, inputs.clone());
                intent.release = released.map(|g| g.mark.clone());
                recs.push(Record::Intent(intent));
                self.journal.write(recs).await?;
                self.engine.crash_point(CrashPhase::BeforeCall);
                match self.create_once(slot, &cx, r.kind, &r.path, &name, &spec).await {
                    Ok(v) => v,
                    Err(e) => {
                        // Only a certain failure is recorded as "nothing created"; an uncertain one
                        // stays pending so the next run looks the resource up by its tags.
                        if !matches!(e.kind(), ErrorKind::Transient | ErrorKind::Throttled | ErrorKind::Cancelled) {
                            self.journal
                                .write_behind(vec![Record::Abandon { path: r.path.clone(), op: OpKind::Create }]);
                        }
                        return Err(e.into());
                    }
                }
            }
        };
        self.engine.crash_point(CrashPhase::AfterCall);
        // A cloud that chose a secret itself reports it: dependents get the real value and
        // state seals it, never the generated one the cloud ignored.
        for attr in r.kind.secrets() {
            // Not paced or retried by the engine: most backends answer `None` without a call,
            // and those that call the cloud retry at the HTTP level.
            if let Some(v) = slot.provider.read_secret(&cx, r.kind, &id, attr).await? {
                self.secrets.put(&r.path, attr, v);
            }
        }
        let mut sealed = BTreeMap::new();
        for attr in r.kind.secrets() {
            if let Some(v) = self.secrets.seal(&r.path, attr) {
                sealed.insert(attr.to_string(), v);
            } else if action == Action::Update {
                if let Some(prev) = self.secrets.sealed.get(&(r.path.clone(), attr.to_string())) {
                    sealed.insert(attr.to_string(), prev.clone());
                }
            }
        }
        let mut resource = ResourceState::new(r.kind, r.provider.clone(), id.clone(), inputs, attrs.clone());
        resource.generation = np.generation;
        resource.deps = self.deps_paths[node].clone();
        resource.sealed = sealed;
        if let Some(g) = released {
            self.release_one(&cx, g, &r.path, resource, early).await?;
        } else {
            self.journal.write_behind(vec![Record::Put { path: r.path.clone(), resource }]);
        }
        if let Some(gate) = gate {
            self.emit(&r.path, EventKind::Progress { message: format!("waiting for {id} to pass its health gate") });
            if let Err(why) = crate::health::wait_healthy(gate, &slot.provider, r.kind, &cx, &id, &attrs).await {
                return Err(self.roll_back(slot, &cx, r, &id, &why).await);
            }
        }
        if self.read_by_others.get(node).copied().unwrap_or(true) {
            self.attrs.lock().unwrap_or_else(|p| p.into_inner())[node] = Some(Arc::new(attrs));
        }
        self.emit(
            &r.path,
            EventKind::Succeeded { op: opk, id, elapsed_ms: cx.clock.now().saturating_sub(t0).as_millis() as u64 },
        );
        Ok(())
    }
}

fn check_acyclic(ops: &[Op]) -> Result<(), Error> {
    let mut indeg: Vec<usize> = ops.iter().map(|o| o.prereqs).collect();
    let mut queue: Vec<usize> = (0..ops.len()).filter(|i| indeg[*i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = queue.pop() {
        seen += 1;
        for &d in &ops[i].dependents {
            indeg[d] -= 1;
            if indeg[d] == 0 {
                queue.push(d);
            }
        }
    }
    if seen == ops.len() {
        Ok(())
    } else {
        Err(Error::Usage(
            "the changes cannot be ordered (a replacement and its dependents wait on each other); apply the replacement in two steps".into(),
        ))
    }
}

/// The order of the operations, as (before, after) pairs: writes after the writes they depend
/// on, replacements before or after the deletion of the old instance, old resources deleted after
/// what depends on them, and after the new or updated resources that used them have moved off.
fn ordering(
    s: Option<&Synthesized>,
    nodes: &[NodePlan],
    state: &StackState,
    ops: &[Op],
    write_op: &[Option<usize>],
    old_delete: &[Option<usize>],
    delete_by_path: &BTreeMap<String, Vec<usize>>,
) -> Vec<(usize, usize)> {
    let mut edges: Vec<(usize, usize)> = Vec::new(); // (before, after)
    if let Some(s) = s {
        for (i, r) in s.resources.iter().enumerate() {
            if let Some(w) = write_op[i] {
                for &d in &r.deps {
                    if let Some(wd) = write_op[d] {
                        edges.push((wd, w));
                    }
                }
                if let Some(od) = old_delete[i] {
                    if nodes[i].create_before_destroy {
                        edges.push((w, od));
                    } else {
                        edges.push((od, w));
                    }
                }
            }
        }
    }
    // Old resources are deleted after the old resources that depend on them.
    let all_deletes: Vec<usize> = delete_by_path.values().flatten().copied().collect();
    for &d in &all_deletes {
        if let OpSpec::Delete { res, .. } = &ops[d].spec {
            for dep in res.deps.clone() {
                if let Some(targets) = delete_by_path.get(&dep) {
                    for &t in targets {
                        edges.push((d, t));
                    }
                }
            }
        }
    }
    // Old resources are deleted after the new or updated resources that used them have moved
    // off (except for destroy-before-create replacements, which go first by definition).
    if let Some(s) = s {
        let index: BTreeMap<&str, usize> = s.resources.iter().enumerate().map(|(i, r)| (r.path.as_str(), i)).collect();
        for (i, r) in s.resources.iter().enumerate() {
            let Some(w) = write_op[i] else { continue };
            // Only an instance updated in place moves off its old dependencies itself; a
            // replaced one leaves them when its old instance is deleted (ordered above).
            let prior_deps: Vec<String> = if nodes[i].action == Action::Update {
                state.resources.get(&r.path).map(|p| p.deps.clone()).unwrap_or_default()
            } else {
                Vec::new()
            };
            for dep in r.depends_on.iter().chain(prior_deps.iter()) {
                let dbc_replace = index
                    .get(dep.as_str())
                    .is_some_and(|&di| nodes[di].action == Action::Replace && !nodes[di].create_before_destroy);
                if dbc_replace {
                    continue;
                }
                if let Some(targets) = delete_by_path.get(dep) {
                    for &t in targets {
                        if old_delete[i] != Some(t) {
                            edges.push((w, t));
                        }
                    }
                }
            }
            // Deposed instances of this path go after its new instance exists.
            for &t in delete_by_path.get(&r.path).map(Vec::as_slice).unwrap_or(&[]) {
                if old_delete[i] != Some(t) && matches!(&ops[t].spec, OpSpec::Delete { report_as: Some(_), .. }) {
                    edges.push((w, t));
                }
            }
        }
    }
    edges
}
