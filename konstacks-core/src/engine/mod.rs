//! The engine: plan, apply, destroy, refresh and drift, against the providers registered with it.
//!
//! Apply walks an operation graph in parallel (each operation starts as soon as the operations
//! it depends on are done), bounded per provider, paced below each provider's rate limit, with
//! retries on throttling and transient errors. Every cloud call is preceded by a journaled
//! intent and followed by a journaled result, so a crash at any point leaves state that the next
//! run can reconcile: interrupted creates are found again by their tags and adopted.
//!
//! The engine never knows which cloud it talks to: it sees only the provider traits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod exec;
mod journal;
pub mod report;

use exec::Exec;
pub use journal::Durability;
use journal::Journal;
pub use report::*;

use serde_json::Value;

use crate::base::clock::{Clock, OpContext, TokioClock};
use crate::base::error::{ErrorKind, ProviderError};
use crate::base::retry::{Pacer, RetryPolicy};
use crate::base::secret::{Sealer, REDACTED};
use crate::base::util::SplitMix;
use crate::error::Error;
use crate::events::{Event, EventBus, EventKind};
use crate::kind::api::Attrs;
use crate::kind::catalog::Catalog;
use crate::kind::Kind;
use crate::kind::{Selector, TAG_NAME, TAG_PATH};
use crate::plan::{self, Action, Env, Mode, Plan, PlanInput, Recovery, Resolved};
use crate::provider::Provider;
use crate::stack::Stack;
use crate::state::{LockInfo, OpKind, Record, ResourceState, StackState, StateBackend};
use crate::synth::Synthesized;

struct ProviderSlot {
    provider: Provider,
    semaphore: tokio::sync::Semaphore,
    pacer: Option<Pacer>,
}

/// The engine. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Engine {
    providers: BTreeMap<String, Arc<ProviderSlot>>,
    state: Arc<dyn StateBackend>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    events: EventBus,
    rng: Mutex<SplitMix>,
    sealer: Option<Sealer>,
    durability: Durability,
    crash: Option<CrashHook>,
    policy: Option<crate::policy::PolicySet>,
}

/// Where the crash-test hook may stop the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashPhase {
    /// The intent is durable, the cloud call has not been made.
    BeforeCall,
    /// The cloud call returned, its result is not recorded.
    AfterCall,
}

/// Crash-test hook: with `KONSTACKS_CRASH_AT=before-call:N` (or `after-call:N`) the process
/// aborts — like `kill -9` — at the N-th operation reaching that point. Used by the crash tests
/// to stop an apply or destroy at exact places; unset, it costs nothing.
#[derive(Debug)]
struct CrashHook {
    phase: CrashPhase,
    at: u64,
    seen: AtomicU64,
}

/// The environment variable of the crash-test hook.
pub const CRASH_AT_ENV: &str = "KONSTACKS_CRASH_AT";

impl CrashHook {
    fn from_env() -> Option<Self> {
        let v = std::env::var(CRASH_AT_ENV).ok()?;
        let (phase, n) = v.split_once(':')?;
        let phase = match phase {
            "before-call" => CrashPhase::BeforeCall,
            "after-call" => CrashPhase::AfterCall,
            _ => return None,
        };
        Some(Self { phase, at: n.parse().ok()?, seen: AtomicU64::new(0) })
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("providers", &self.providers.keys().collect::<Vec<_>>()).finish()
    }
}

impl Engine {
    /// An engine over a state backend, on the tokio clock, with no provider yet. Secrets are
    /// sealed into state when `KONSTACKS_SECRET_KEY` is set.
    pub fn new(state: Arc<dyn StateBackend>) -> Self {
        let retry = RetryPolicy::default();
        Self {
            providers: BTreeMap::new(),
            state,
            clock: TokioClock::shared(),
            rng: Mutex::new(SplitMix::new(retry.seed)),
            retry,
            events: EventBus::default(),
            sealer: Sealer::from_env(),
            durability: Durability::default(),
            crash: CrashHook::from_env(),
            policy: None,
        }
    }

    /// Check every stack against these compliance packs: plans carry the result, and an apply
    /// with errors is refused before any cloud call.
    pub fn with_policy(mut self, policy: crate::policy::PolicySet) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The compliance report of a stack under the engine's packs (`None` without a policy).
    pub fn check(&self, s: &Synthesized) -> Option<crate::policy::PolicyReport> {
        self.policy.as_ref().map(|p| p.check(s, &self.catalogs()))
    }

    /// Budget and policy gates that run before anything touches a cloud.
    fn gate(&self, s: &Synthesized, refuse_policy_errors: bool) -> Result<Option<crate::policy::PolicyReport>, Error> {
        let report = crate::cost::estimate(s, &self.catalogs());
        crate::cost::check_budget(s, &report)?;
        let policy = self.check(s);
        if refuse_policy_errors {
            if let Some(p) = &policy {
                if p.has_errors() {
                    return Err(Error::Policy(Box::new(p.clone())));
                }
            }
        }
        Ok(policy)
    }

    fn decorate(
        &self,
        plan: &mut Plan,
        s: &Synthesized,
        state: &StackState,
        policy: Option<crate::policy::PolicyReport>,
    ) {
        plan.cost = Some(crate::cost::plan_cost(plan, s, state, &self.catalogs()));
        plan.policy = policy.map(|p| plan::PlanPolicy {
            packs: p.packs.iter().map(|k| k.name.clone()).collect(),
            errors: p.counts.errors,
            warnings: p.counts.warnings,
            findings: p.findings.clone(),
        });
    }

    fn crash_point(&self, phase: CrashPhase) {
        if let Some(h) = &self.crash {
            if h.phase == phase && h.seen.fetch_add(1, Ordering::SeqCst) + 1 == h.at {
                eprintln!("{CRASH_AT_ENV}: aborting at {phase:?} #{}", h.at);
                std::process::abort();
            }
        }
    }

    /// Choose when intents count as written (see [`Durability`]).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Register a provider.
    pub fn with_provider(mut self, p: Provider) -> Self {
        // Stay 5% under the advertised rate: timer jitter must not turn into throttling.
        let pacer = p.limits.calls_per_second.map(|r| Pacer::new(r * 0.95, p.limits.burst));
        let slot = ProviderSlot {
            semaphore: tokio::sync::Semaphore::new(p.limits.max_concurrency.max(1)),
            pacer,
            provider: p,
        };
        self.providers.insert(slot.provider.name.clone(), Arc::new(slot));
        self
    }

    /// Use another clock (tests use virtual time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Use another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.rng = Mutex::new(SplitMix::new(retry.seed));
        self.retry = retry;
        self
    }

    /// Seal secrets into state with this sealer (or never store them, with `None`).
    pub fn with_sealer(mut self, sealer: Option<Sealer>) -> Self {
        self.sealer = sealer;
        self
    }

    /// Subscribe to the event stream.
    pub fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<Event> {
        self.events.subscribe()
    }

    /// The state backend.
    pub fn state_backend(&self) -> &Arc<dyn StateBackend> {
        &self.state
    }

    /// The catalogues of the registered providers.
    pub fn catalogs(&self) -> Vec<&Catalog> {
        self.providers.values().map(|s| s.provider.catalog()).collect()
    }

    /// Validate a stack against the registered providers.
    pub fn synth(&self, stack: &Stack) -> Result<Synthesized, Error> {
        stack.synth(&self.catalogs())
    }

    fn slot(&self, name: &str) -> Result<&Arc<ProviderSlot>, Error> {
        self.providers.get(name).ok_or_else(|| Error::UnknownProvider(name.to_string()))
    }

    fn cx(&self, stack: &str) -> OpContext {
        OpContext::new(self.clock.clone(), stack)
    }

    /// The stored state of a stack (journal replayed).
    pub async fn state(&self, stack: &str) -> Result<StackState, Error> {
        Ok(self.state.load(stack).await?)
    }

    /// Break the lock with this id.
    pub async fn force_unlock(&self, stack: &str, id: &str) -> Result<LockInfo, Error> {
        Ok(self.state.force_unlock(stack, id).await?)
    }

    /// Plan without changing anything (state is read, never written; the cloud is read only
    /// to reconcile interrupted operations and, with `refresh`, to see drift).
    pub async fn plan(&self, s: &Synthesized, opts: &PlanOptions) -> Result<Plan, Error> {
        let policy = self.gate(s, false)?;
        let mut state = self.state.load(&s.name).await?;
        let recovered = self.reconcile(&mut state, None).await?;
        if opts.refresh {
            self.refresh_in_memory(&mut state).await?;
        }
        let input = PlanInput { recovered, moved: moves(s) };
        let (mut plan, _) = plan::diff(s, &state, &input);
        self.decorate(&mut plan, s, &state, policy);
        Ok(plan)
    }

    /// Plan against a state the caller already holds: pure, no I/O, no cloud call (interrupted
    /// operations in `state` are not reconciled; use [`Engine::plan`] for that). Handy for
    /// snapshot tests of plans and for tools that keep state themselves.
    pub fn plan_against(&self, s: &Synthesized, state: &StackState) -> Plan {
        let mut plan = plan::diff(s, state, &PlanInput { recovered: Vec::new(), moved: moves(s) }).0;
        let policy = self.check(s);
        self.decorate(&mut plan, s, state, policy);
        plan
    }

    /// Adopt an existing cloud resource into the stack at `path` by its provider id. The
    /// resource is read (one batched call), recorded in state with the values the cloud reports,
    /// and the returned plan shows exactly what the next apply would change to make it match the
    /// stack (typically: add the stack's tags).
    pub async fn import(&self, s: &Synthesized, path: &str, id: &str) -> Result<Plan, Error> {
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
        let res = async {
            let mut state = self.state.load(&s.name).await?;
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
            // What the cloud reports wins; fields it cannot report (user data, secrets, options)
            // are taken from the stack, so only real differences show in the next plan.
            let known: Vec<Option<&BTreeMap<String, Value>>> =
                s.resources.iter().map(|x| state.resources.get(&x.path).map(|st| &st.attrs)).collect();
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
                inputs.insert(k.clone(), v);
            }
            let rec = Record::Put {
                path: path.to_string(),
                resource: ResourceState {
                    kind: r.kind,
                    provider: r.provider.clone(),
                    id: id.to_string(),
                    generation: 0,
                    inputs,
                    attrs,
                    deps: r.depends_on.clone(),
                    sealed: BTreeMap::new(),
                },
            };
            self.state.append(&s.name, std::slice::from_ref(&rec)).await?;
            state.apply(&rec);
            state.serial += 1;
            self.state.compact(&s.name, &state).await?;
            Ok(self.plan_against(s, &state))
        }
        .await;
        let unlocked = self.state.unlock(&s.name, &lock.id).await;
        let plan = res?;
        unlocked?;
        Ok(plan)
    }

    /// Plan the destruction of everything in a stack's state.
    pub async fn plan_destroy(&self, stack: &str) -> Result<Plan, Error> {
        let mut state = self.state.load(stack).await?;
        let recovered = self.reconcile(&mut state, None).await?;
        Ok(plan::destroy_plan(&state, recovered))
    }

    /// Make the cloud match the stack.
    pub async fn apply(&self, s: &Synthesized, opts: &ApplyOptions) -> Result<ApplyReport, Error> {
        self.gate(s, true)?;
        self.run(&s.name, Some(s), opts, "apply").await
    }

    /// Delete everything in the stack's state, in reverse dependency order.
    pub async fn destroy(&self, stack: &str, opts: &ApplyOptions) -> Result<ApplyReport, Error> {
        self.run(stack, None, opts, "destroy").await
    }

    async fn run(
        &self,
        stack: &str,
        s: Option<&Synthesized>,
        opts: &ApplyOptions,
        what: &str,
    ) -> Result<ApplyReport, Error> {
        let lock = LockInfo::for_this_process(what);
        self.state.lock(stack, &lock).await?;
        let result = self.run_locked(stack, s, opts).await;
        let unlocked = self.state.unlock(stack, &lock.id).await;
        let report = result?;
        unlocked?;
        if report.failures.is_empty() {
            Ok(report)
        } else {
            Err(Error::Apply(Box::new(report)))
        }
    }

    async fn run_locked(
        &self,
        stack: &str,
        s: Option<&Synthesized>,
        opts: &ApplyOptions,
    ) -> Result<ApplyReport, Error> {
        let started = self.clock.now();
        let mut state = self.state.load(stack).await?;
        let journal = Journal::start(self.state.clone(), stack, state.clone(), self.durability);
        let recovered = self.reconcile(&mut state, Some(&journal)).await?;
        let mut report = ApplyReport { stack: stack.to_string(), recovered: recovered.clone(), ..Default::default() };

        // Moves are recorded before anything else so a rename is never seen as delete + create.
        if let Some(s) = s {
            let mut recs = Vec::new();
            for (from, to) in &s.moved {
                if state.resources.contains_key(from) && !state.resources.contains_key(to) {
                    recs.push(Record::Move { from: from.clone(), to: to.clone() });
                }
            }
            if !recs.is_empty() {
                journal.write(recs.clone()).await?;
                for r in &recs {
                    state.apply(r);
                }
            }
        }
        if opts.refresh {
            self.refresh_in_memory(&mut state).await?;
        }
        let (plan, nodes) = match s {
            Some(s) => plan::diff(s, &state, &PlanInput { recovered, moved: BTreeMap::new() }),
            None => (plan::destroy_plan(&state, recovered), Vec::new()),
        };
        if let Some(expected) = &opts.expected {
            if !same_changes(expected, &plan) {
                journal.close().await;
                return Err(Error::StalePlan { planned: expected.state_serial, current: plan.state_serial });
            }
        }
        let s_sum = plan.summary;
        self.emit(
            stack,
            None,
            started,
            EventKind::Planned {
                create: s_sum.create,
                update: s_sum.update,
                replace: s_sum.replace,
                delete: s_sum.delete,
            },
        );

        let exec = Exec::build(self, stack, s, &plan, &nodes, &state, &journal, opts.on_failure, started)?;
        exec.run(&mut report).await;
        if let Err(e) = journal.flush().await {
            report.failures.push(Failure {
                path: String::new(),
                op: OpKind::Update,
                kind: ErrorKind::Other,
                message: format!("recording results failed ({e}); the next run reconciles them from their intents"),
            });
        }

        // Outputs.
        if let Some(s) = s {
            let replica = journal.replica();
            let outputs = compute_outputs(s, &replica);
            if outputs != replica.outputs {
                journal.write(vec![Record::Outputs { outputs: outputs.clone() }]).await?;
            }
            report.outputs = outputs;
        }
        let appends_ms = journal.busy_ms();
        let mut final_state = journal.close().await;
        final_state.serial += 1;
        let t = std::time::Instant::now();
        self.state.compact(stack, &final_state).await?;
        report.persist_ms = appends_ms + t.elapsed().as_millis() as u64;
        report.elapsed_ms = (self.clock.now() - started).as_millis() as u64;
        self.emit(
            stack,
            None,
            started,
            EventKind::Finished {
                succeeded: report.created.len() + report.updated.len() + report.replaced.len() + report.deleted.len(),
                failed: report.failures.len(),
                skipped: report.skipped.len(),
                elapsed_ms: report.elapsed_ms,
            },
        );
        Ok(report)
    }

    fn emit(&self, stack: &str, path: Option<&str>, started: Duration, kind: EventKind) {
        self.events.emit(Event {
            stack: stack.to_string(),
            path: path.map(str::to_string),
            at_ms: self.clock.now().saturating_sub(started).as_millis() as u64,
            kind,
        });
    }

    /// Reconcile interrupted operations: creates are looked up by tags and adopted, deletes are
    /// checked. With a journal the outcome is recorded; without (plan) it only updates `state`.
    async fn reconcile(&self, state: &mut StackState, journal: Option<&Journal>) -> Result<Vec<Recovery>, Error> {
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
            let (rec, outcome) = match p.op {
                OpKind::Create => {
                    let name = p.tags.get(TAG_NAME);
                    let known: BTreeSet<&str> = state
                        .resources
                        .values()
                        .chain(state.deposed.iter().map(|d| &d.resource))
                        .map(|r| r.id.as_str())
                        .collect();
                    let hit = listing.iter().find(|(id, a)| {
                        let tags = a.get("tags");
                        !known.contains(id.as_str())
                            && tags.and_then(|t| t.get(TAG_PATH)).and_then(Value::as_str) == Some(p.path.as_str())
                            && (name.is_none()
                                || tags.and_then(|t| t.get(TAG_NAME)).and_then(Value::as_str)
                                    == name.map(|s| s.as_str()))
                    });
                    match hit {
                        Some((id, attrs)) => (
                            Record::Put {
                                path: p.path.clone(),
                                resource: ResourceState {
                                    kind: p.kind,
                                    provider: p.provider.clone(),
                                    id: id.clone(),
                                    generation: p.generation,
                                    inputs: p.inputs.clone(),
                                    attrs: attrs.clone(),
                                    deps: p.deps.clone(),
                                    sealed: p.sealed.clone(),
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
                            r.attrs = attrs.clone();
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
            out.push(Recovery { path: p.path.clone(), interrupted: p.op, outcome });
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

    /// Batched read of everything in state; returns (path -> observed attrs or None if gone).
    async fn observe(
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

    fn drift_of(state: &StackState, observed: &BTreeMap<String, Option<BTreeMap<String, Value>>>) -> Vec<DriftItem> {
        let mut items = Vec::new();
        for (path, r) in &state.resources {
            match observed.get(path) {
                Some(Some(attrs)) => {
                    let fields: Vec<FieldDrift> = r
                        .inputs
                        .iter()
                        .filter_map(|(k, v)| {
                            let cloud = attrs.get(k)?;
                            (plan::canonical(cloud) != plan::canonical(v)).then(|| FieldDrift {
                                name: k.clone(),
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

    /// Compare state with the cloud (batched reads) without changing anything.
    pub async fn drift(&self, stack: &str) -> Result<DriftReport, Error> {
        let state = self.state.load(stack).await?;
        let (observed, calls) = self.observe(&state).await?;
        Ok(DriftReport {
            stack: stack.into(),
            checked: state.resources.len(),
            read_calls: calls,
            items: Self::drift_of(&state, &observed),
        })
    }

    /// Accept the cloud's values into state: drifted fields take the cloud's value, resources
    /// deleted outside Konstacks leave state. The next plan then shows what it takes to bring
    /// the cloud back to the stack.
    pub async fn refresh(&self, stack: &str) -> Result<DriftReport, Error> {
        let lock = LockInfo::for_this_process("refresh");
        self.state.lock(stack, &lock).await?;
        let res = async {
            let mut state = self.state.load(stack).await?;
            let (observed, calls) = self.observe(&state).await?;
            let items = Self::drift_of(&state, &observed);
            let recs = refresh_records(&state, &observed);
            for r in &recs {
                state.apply(r);
            }
            state.serial += 1;
            self.state.compact(stack, &state).await?;
            Ok::<_, Error>(DriftReport {
                stack: stack.into(),
                checked: state.resources.len(),
                read_calls: calls,
                items,
            })
        }
        .await;
        let unlocked = self.state.unlock(stack, &lock.id).await;
        let r = res?;
        unlocked?;
        Ok(r)
    }

    async fn refresh_in_memory(&self, state: &mut StackState) -> Result<(), Error> {
        let (observed, _) = self.observe(state).await?;
        for r in refresh_records(state, &observed) {
            state.apply(&r);
        }
        Ok(())
    }

    /// Call `f` with pacing, concurrency-free retries on throttling / transient errors.
    async fn with_retries<T, F, Fut>(&self, slot: &ProviderSlot, cx: &OpContext, mut f: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(p) = &slot.pacer {
                p.acquire(cx.clock.as_ref()).await;
            }
            match f().await {
                Ok(v) => {
                    if let Some(p) = &slot.pacer {
                        p.succeeded();
                    }
                    return Ok(v);
                }
                Err(e) if e.kind().is_retryable() && attempt < self.retry.max_attempts => {
                    if e.kind() == ErrorKind::Throttled {
                        if let Some(p) = &slot.pacer {
                            p.throttled();
                        }
                    }
                    cx.clock.sleep(self.retry.delay(attempt, &self.rng)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn same_changes(a: &Plan, b: &Plan) -> bool {
    let key = |p: &Plan| {
        p.changes
            .iter()
            .filter(|c| c.action != Action::NoOp)
            .map(|c| (c.path.clone(), c.action, c.fields.clone()))
            .collect::<Vec<_>>()
    };
    key(a) == key(b)
}

fn moves(s: &Synthesized) -> BTreeMap<&str, &str> {
    s.moved.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect()
}

fn refresh_records(state: &StackState, observed: &BTreeMap<String, Option<BTreeMap<String, Value>>>) -> Vec<Record> {
    let mut recs = Vec::new();
    for (path, r) in &state.resources {
        match observed.get(path) {
            Some(Some(attrs)) => {
                let mut nr = r.clone();
                for (k, v) in nr.inputs.iter_mut() {
                    if let Some(cloud) = attrs.get(k) {
                        if plan::canonical(cloud) != plan::canonical(v) {
                            *v = cloud.clone();
                        }
                    }
                }
                nr.attrs = attrs.clone();
                if &nr != r {
                    recs.push(Record::Put { path: path.clone(), resource: nr });
                }
            }
            _ => recs.push(Record::Deleted { path: path.clone(), id: r.id.clone() }),
        }
    }
    recs
}

fn compute_outputs(s: &Synthesized, state: &StackState) -> BTreeMap<String, Value> {
    s.exports
        .iter()
        .map(|e| {
            let v = if e.secret {
                Value::String(REDACTED.into())
            } else {
                state.resources.get(&e.from).and_then(|r| r.attrs.get(&e.attr)).cloned().unwrap_or(Value::Null)
            };
            (e.name.clone(), v)
        })
        .collect()
}

impl Stack {
    /// Validate the stack against the catalogues of the providers it may use (the first one
    /// whose name matches the stack's provider is used) and describe it fully. Every problem is
    /// reported at once.
    pub fn synth(&self, catalogs: &[&Catalog]) -> Result<Synthesized, Error> {
        let def = self.lock();
        crate::synth::synth_def(&def, catalogs).map_err(Error::Invalid)
    }
}
