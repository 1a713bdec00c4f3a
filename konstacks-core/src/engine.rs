//! The engine: plan, apply, destroy, refresh and drift, against the providers registered with it.
//!
//! Apply walks an operation graph in parallel (each operation starts as soon as the operations
//! it depends on are done), bounded per provider, paced below each provider's rate limit, with
//! retries on throttling and transient errors. Every cloud call is preceded by a journaled
//! intent and followed by a journaled result, so a crash at any point leaves state that the next
//! run can reconcile: interrupted creates are found again by their tags and adopted.
//!
//! The engine never knows which cloud it talks to: it sees only the provider traits.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::clock::{Clock, OpContext, TokioClock};
use crate::error::{Error, ErrorKind, ProviderError, StateError};
use crate::events::{Event, EventBus, EventKind};
use crate::model::{Kind, Stack};
use crate::plan::{self, Action, Env, Mode, NodePlan, Plan, PlanInput, Recovery, Resolved, SecretLookup};
use crate::provider::{Catalog, Provider};
use crate::retry::{Pacer, RetryPolicy};
use crate::secret::{Sealer, Secret, SecretSource, REDACTED};
use crate::spec::*;
use crate::state::{LockInfo, OpKind, PendingOp, Record, ResourceState, StackState, StateBackend};
use crate::util::SplitMix;
use crate::validate::{Expr, Synthesized};

/// What to do when an operation fails.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Start nothing new; let operations in flight finish (the default).
    #[default]
    FinishInFlight,
    /// Keep starting every operation that does not depend on a failed one.
    ContinueIndependent,
}

/// Options of a plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Read the cloud first (batched) so the plan also reverts drift.
    pub refresh: bool,
}

/// Options of an apply or destroy.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Read the cloud first (batched) so drift is reverted too.
    pub refresh: bool,
    /// Behaviour on failure.
    pub on_failure: FailurePolicy,
    /// The plan the user approved: the apply refuses to run if planning again gives another.
    pub expected: Option<Plan>,
}

/// One failed operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// Logical path.
    pub path: String,
    /// Operation.
    pub op: OpKind,
    /// Portable kind.
    pub kind: ErrorKind,
    /// Message with its cause chain.
    pub message: String,
}

/// What an apply or destroy did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApplyReport {
    /// Stack.
    pub stack: String,
    /// Paths created.
    pub created: Vec<String>,
    /// Paths updated in place.
    pub updated: Vec<String>,
    /// Paths replaced.
    pub replaced: Vec<String>,
    /// Paths deleted.
    pub deleted: Vec<String>,
    /// Paths whose interrupted or timed-out create was found again and adopted.
    pub adopted: Vec<String>,
    /// Paths whose replacement failed its health gate and was undone (the old instance serves).
    pub rolled_back: Vec<String>,
    /// Failures.
    pub failures: Vec<Failure>,
    /// Paths not started because something they depend on failed (or the run stopped).
    pub skipped: Vec<String>,
    /// Stack outputs (secrets redacted).
    pub outputs: BTreeMap<String, Value>,
    /// Interrupted operations reconciled before the run.
    pub recovered: Vec<Recovery>,
    /// Retries made on throttling or transient errors.
    pub retries: u64,
    /// Wall time of the run in milliseconds (injected clock).
    pub elapsed_ms: u64,
    /// Time spent persisting state in milliseconds (real time).
    pub persist_ms: u64,
}

impl ApplyReport {
    /// Whether everything succeeded.
    pub fn is_success(&self) -> bool {
        self.failures.is_empty() && self.skipped.is_empty()
    }

    /// One line per failure.
    pub fn summary(&self) -> String {
        self.failures.iter().map(|f| format!("{} {:?}: {}", f.path, f.op, f.message)).collect::<Vec<_>>().join("; ")
    }
}

/// One field that differs between state and the cloud.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDrift {
    /// Field.
    pub name: String,
    /// Value in state.
    pub state: Value,
    /// Value in the cloud.
    pub cloud: Value,
}

/// How a resource drifted.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    /// Fields changed outside Konstacks.
    Changed,
    /// Deleted outside Konstacks.
    Deleted,
}

/// A drifted resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftItem {
    /// Logical path.
    pub path: String,
    /// Kind.
    pub kind: Kind,
    /// Provider id.
    pub id: String,
    /// Status.
    pub status: DriftStatus,
    /// Field differences (empty when deleted).
    pub fields: Vec<FieldDrift>,
}

/// Result of `drift` / `refresh`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DriftReport {
    /// Stack.
    pub stack: String,
    /// Resources checked.
    pub checked: usize,
    /// Provider read calls made (batched).
    pub read_calls: usize,
    /// Drifted resources, by path.
    pub items: Vec<DriftItem>,
}

impl DriftReport {
    /// Whether the cloud matches state.
    pub fn is_clean(&self) -> bool {
        self.items.is_empty()
    }

    /// Human rendering.
    pub fn render(&self) -> String {
        let mut out = format!("Drift of stack {} ({} resources checked)\n", self.stack, self.checked);
        if self.items.is_empty() {
            out.push_str("No drift: the cloud matches state.\n");
        }
        for i in &self.items {
            match i.status {
                DriftStatus::Deleted => {
                    out.push_str(&format!("  - {} {} [{}] was deleted outside Konstacks\n", i.kind, i.path, i.id))
                }
                DriftStatus::Changed => {
                    out.push_str(&format!("  ~ {} {} [{}] changed outside Konstacks\n", i.kind, i.path, i.id));
                    for f in &i.fields {
                        out.push_str(&format!("      {:<24} = {} (state) -> {} (cloud)\n", f.name, f.state, f.cloud));
                    }
                }
            }
        }
        out
    }
}

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
                .with_retries(slot, &cx, || read_many(&slot.provider, &cx, r.kind, &sel))
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
                self.with_retries(slot, &cx, || read_many(&slot.provider, &cx, p.kind, &sel)).await.map_err(|e| {
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
                .with_retries(slot, &cx, || read_many(&slot.provider, &cx, kind, &sel))
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

// ---------------------------------------------------------------------------------------------
// Provider dispatch: the only place that maps a kind to a trait method. Specs travel as JSON
// between the planner and here, and are typed again before the provider sees them.

type Attrs = BTreeMap<String, Value>;

fn spec_of<T: serde::de::DeserializeOwned>(kind: Kind, v: Value) -> Result<T, ProviderError> {
    serde_json::from_value(v).map_err(|e| {
        ProviderError::new(
            ErrorKind::InvalidSpec,
            format!("internal: resolved {kind} spec does not match its type: {e}"),
        )
    })
}

fn observed<T: Serialize>(o: &T) -> Result<(String, Attrs), ProviderError> {
    let v =
        serde_json::to_value(o).map_err(|e| ProviderError::new(ErrorKind::Other, format!("observed state: {e}")))?;
    let attrs: Attrs = match v {
        Value::Object(m) => m.into_iter().collect(),
        _ => Attrs::new(),
    };
    let id = attrs.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok((id, attrs))
}

fn observed_all<T: Serialize>(v: Vec<T>) -> Result<Vec<(String, Attrs)>, ProviderError> {
    v.iter().map(observed).collect()
}

async fn create(p: &Provider, cx: &OpContext, kind: Kind, spec: Value) -> Result<(String, Attrs), ProviderError> {
    match kind {
        Kind::Vpc => observed(&p.network.create_vpc(cx, &spec_of(kind, spec)?).await?),
        Kind::Subnet => observed(&p.network.create_subnet(cx, &spec_of(kind, spec)?).await?),
        Kind::Firewall => observed(&p.network.create_firewall(cx, &spec_of(kind, spec)?).await?),
        Kind::Vm => observed(&p.compute.create_vm(cx, &spec_of(kind, spec)?).await?),
        Kind::Database => observed(&p.database.create_database(cx, &spec_of(kind, spec)?).await?),
    }
}

async fn update(
    p: &Provider,
    cx: &OpContext,
    kind: Kind,
    id: &str,
    spec: Value,
) -> Result<(String, Attrs), ProviderError> {
    match kind {
        Kind::Vpc => observed(&p.network.update_vpc(cx, id, &spec_of(kind, spec)?).await?),
        Kind::Subnet => observed(&p.network.update_subnet(cx, id, &spec_of(kind, spec)?).await?),
        Kind::Firewall => observed(&p.network.update_firewall(cx, id, &spec_of(kind, spec)?).await?),
        Kind::Vm => observed(&p.compute.update_vm(cx, id, &spec_of(kind, spec)?).await?),
        Kind::Database => observed(&p.database.update_database(cx, id, &spec_of(kind, spec)?).await?),
    }
}

async fn delete(p: &Provider, cx: &OpContext, kind: Kind, id: &str) -> Result<(), ProviderError> {
    match kind {
        Kind::Vpc => p.network.delete_vpc(cx, id).await,
        Kind::Subnet => p.network.delete_subnet(cx, id).await,
        Kind::Firewall => p.network.delete_firewall(cx, id).await,
        Kind::Vm => p.compute.delete_vm(cx, id).await,
        Kind::Database => p.database.delete_database(cx, id).await,
    }
}

/// Batched read of one kind.
pub(crate) async fn read_many(
    p: &Provider,
    cx: &OpContext,
    kind: Kind,
    sel: &Selector,
) -> Result<Vec<(String, Attrs)>, ProviderError> {
    match kind {
        Kind::Vpc => observed_all(p.network.read_vpcs(cx, sel).await?),
        Kind::Subnet => observed_all(p.network.read_subnets(cx, sel).await?),
        Kind::Firewall => observed_all(p.network.read_firewalls(cx, sel).await?),
        Kind::Vm => observed_all(p.compute.read_vms(cx, sel).await?),
        Kind::Database => observed_all(p.database.read_databases(cx, sel).await?),
    }
}

// ---------------------------------------------------------------------------------------------
// The journal writer: group commit. Many concurrent operations hand it records; it appends all
// that are waiting in one write + fsync, then acknowledges each. State persistence therefore
// costs one small append per step, shared among concurrent steps.

type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

/// How long buffered journal writes may wait for their fsync in [`Durability::Flush`].
const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// When an intent counts as written.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every intent is in the journal file before its cloud call (a killed process loses
    /// nothing); fsyncs are grouped and run in the background at most 20 ms later, so a
    /// machine crash can lose the last few intents — whose resources still carry the stack's
    /// tags.
    Flush,
    /// Every intent is fsynced before its cloud call (grouped with concurrent ones). The default.
    #[default]
    Fsync,
}

fn note_failure<E: ToString>(slot: &Mutex<Option<String>>, e: Option<E>) {
    if let Some(e) = e {
        let mut f = slot.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e.to_string());
        }
    }
}

/// Records, whether the sender waits for durability, and its acknowledgement.
type Submission = (Vec<Record>, bool, Ack);

struct Journal {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Submission>>,
    replica: Arc<Mutex<StackState>>,
    busy_ns: Arc<AtomicU64>,
    failed: Arc<Mutex<Option<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Journal {
    fn start(backend: Arc<dyn StateBackend>, stack: &str, initial: StackState, durability: Durability) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Submission>();
        let replica = Arc::new(Mutex::new(initial));
        let busy_ns = Arc::new(AtomicU64::new(0));
        let failed: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let (r2, b2, f2, stack) = (replica.clone(), busy_ns.clone(), failed.clone(), stack.to_string());
        let task = tokio::spawn(async move {
            // Buffered writes not yet fsynced (only in `Durability::Flush`).
            let mut dirty = false;
            loop {
                let first = if dirty {
                    match tokio::time::timeout(FLUSH_EVERY, rx.recv()).await {
                        Ok(Some(x)) => x,
                        Ok(None) => break,
                        Err(_) => {
                            let t = std::time::Instant::now();
                            let res = backend.append(&stack, &[]).await;
                            b2.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                            note_failure(&f2, res.err());
                            dirty = false;
                            continue;
                        }
                    }
                } else {
                    match rx.recv().await {
                        Some(x) => x,
                        None => break,
                    }
                };
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let records: Vec<Record> = batch.iter().flat_map(|(r, _, _)| r.iter().cloned()).collect();
                // A flush request (empty and awaited) or an awaited write in `Fsync` mode makes the
                // whole batch durable with one fsync, covering every buffered write before it.
                let awaited = batch.iter().any(|(_, d, _)| *d);
                let flush = batch.iter().any(|(r, d, _)| *d && r.is_empty());
                let fsync = flush || (awaited && durability == Durability::Fsync);
                let t = std::time::Instant::now();
                let res = if fsync {
                    backend.append(&stack, &records).await
                } else if records.is_empty() {
                    Ok(())
                } else {
                    backend.append_buffered(&stack, &records).await
                };
                b2.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if fsync {
                    dirty = false;
                } else if !records.is_empty() {
                    dirty = true;
                }
                if res.is_ok() {
                    let mut st = r2.lock().unwrap_or_else(|p| p.into_inner());
                    for r in &records {
                        st.apply(r);
                    }
                }
                let res = res.map_err(|e| e.to_string());
                note_failure(&f2, res.clone().err());
                for (_, _, ack) in batch {
                    let _ = ack.send(res.clone());
                }
            }
            if dirty {
                note_failure(&f2, backend.append(&stack, &[]).await.err());
            }
        });
        Self { tx: Some(tx), replica, busy_ns, failed, task: Some(task) }
    }

    /// Queue records behind everything queued before, without waiting for durability. Used for
    /// results: the intent before the call is what makes a crash recoverable, so a result may
    /// reach the disk a moment later (it is then merged into the next group commit).
    fn write_behind(&self, records: Vec<Record>) {
        let (ack, _rx) = tokio::sync::oneshot::channel();
        if let Some(tx) = &self.tx {
            let _ = tx.send((records, false, ack));
        }
    }

    /// Wait until everything queued so far is durable; report any earlier write-behind failure.
    async fn flush(&self) -> Result<(), StateError> {
        self.write(Vec::new()).await?;
        match self.failed.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            None => Ok(()),
            Some(m) => Err(StateError::Io { path: "journal".into(), source: std::io::Error::other(m) }),
        }
    }

    /// Append records; returns once they are durable.
    async fn write(&self, records: Vec<Record>) -> Result<(), StateError> {
        let (ack, rx) = tokio::sync::oneshot::channel();
        let failed = |m: String| StateError::Io { path: "journal".into(), source: std::io::Error::other(m) };
        let tx = self.tx.as_ref().ok_or_else(|| failed("journal closed".into()))?;
        tx.send((records, true, ack)).map_err(|_| failed("journal writer stopped".into()))?;
        rx.await.map_err(|_| failed("journal writer stopped".into()))?.map_err(failed)
    }

    fn replica(&self) -> StackState {
        self.replica.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn busy_ms(&self) -> u64 {
        self.busy_ns.load(Ordering::Relaxed) / 1_000_000
    }

    async fn close(mut self) -> StackState {
        self.tx = None;
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.replica()
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets of this run: generated passwords live in memory for the run, and are sealed into state
// only when a key is configured.

struct RunSecrets {
    stack: String,
    mem: Mutex<BTreeMap<(String, String), Secret<String>>>,
    sealed: BTreeMap<(String, String), String>,
    sealer: Option<Sealer>,
}

impl RunSecrets {
    fn context(&self, path: &str, attr: &str) -> String {
        format!("{}/{path}.{attr}", self.stack)
    }

    fn put(&self, path: &str, attr: &str, v: Secret<String>) {
        self.mem.lock().unwrap_or_else(|p| p.into_inner()).insert((path.into(), attr.into()), v);
    }

    fn seal_all(&self, path: &str) -> BTreeMap<String, String> {
        ["password"].iter().filter_map(|a| Some((a.to_string(), self.seal(path, a)?))).collect()
    }

    fn seal(&self, path: &str, attr: &str) -> Option<String> {
        let v =
            self.mem.lock().unwrap_or_else(|p| p.into_inner()).get(&(path.to_string(), attr.to_string())).cloned()?;
        self.sealer.as_ref()?.seal(&self.context(path, attr), &v)
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
// The executor.

#[derive(Debug)]
enum OpSpec {
    /// Create, update or replace-create of a node of the synthesized stack.
    Write { node: usize, action: Action },
    /// Delete an old resource.
    Delete { path: String, res: ResourceState, report_as: Option<Action> },
}

struct Op {
    spec: OpSpec,
    prereqs: usize,
    dependents: Vec<usize>,
}

struct Exec<'a> {
    engine: &'a Engine,
    stack: &'a str,
    s: Option<&'a Synthesized>,
    plan: &'a Plan,
    nodes: &'a [NodePlan],
    journal: &'a Journal,
    ops: Vec<Op>,
    attrs: Mutex<Vec<Option<Arc<Attrs>>>>,
    deps_paths: Vec<Vec<String>>,
    /// Physical names of existing resources, kept by in-place updates (and by moves).
    prior_names: Vec<Option<String>>,
    secrets: RunSecrets,
    policy: FailurePolicy,
    started: Duration,
    retries: AtomicU64,
    adopted: Mutex<Vec<String>>,
    /// Ids state already tracks: never adopted as "the one we just created".
    known_ids: BTreeSet<String>,
    /// Rolling batches of health-gated replacements.
    rolling: Option<tokio::sync::Semaphore>,
    rolled_back: Mutex<Vec<String>>,
}

#[derive(Debug)]
struct OpFailure {
    kind: ErrorKind,
    message: String,
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
    fn build(
        engine: &'a Engine,
        stack: &'a str,
        s: Option<&'a Synthesized>,
        plan: &'a Plan,
        nodes: &'a [NodePlan],
        state: &StackState,
        journal: &'a Journal,
        policy: FailurePolicy,
        started: Duration,
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

        if let Some(s) = s {
            for (i, r) in s.resources.iter().enumerate() {
                let np = &nodes[i];
                let change = &plan.changes[i];
                let prior_path = change.moved_from.as_deref().unwrap_or(&r.path);
                let prior = state.resources.get(prior_path).or_else(|| state.resources.get(&r.path));
                deps_paths[i] = r.depends_on.clone();
                if matches!(np.action, Action::NoOp | Action::Update) {
                    attrs[i] = prior.map(|p| Arc::new(p.attrs.clone()));
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
            let index: BTreeMap<&str, usize> =
                s.resources.iter().enumerate().map(|(i, r)| (r.path.as_str(), i)).collect();
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
        edges.sort_unstable();
        edges.dedup();
        for (a, b) in edges {
            if a != b {
                ops[a].dependents.push(b);
                ops[b].prereqs += 1;
            }
        }
        check_acyclic(&ops)?;

        let mut mem = BTreeMap::new();
        let mut sealed = BTreeMap::new();
        if let Some(s) = s {
            for r in &s.resources {
                if let Some(Expr::Secret(SecretSource::Provided(v))) = r.fields.get("password") {
                    mem.insert((r.path.clone(), "password".to_string()), v.clone());
                }
            }
        }
        for (path, r) in &state.resources {
            for (attr, v) in &r.sealed {
                sealed.insert((path.clone(), attr.clone()), v.clone());
            }
        }
        Ok(Self {
            engine,
            stack,
            s,
            plan,
            nodes,
            journal,
            ops,
            attrs: Mutex::new(attrs),
            deps_paths,
            prior_names,
            secrets: RunSecrets {
                stack: stack.to_string(),
                mem: Mutex::new(mem),
                sealed,
                sealer: engine.sealer.clone(),
            },
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
        })
    }

    fn op_path(&self, op: usize) -> String {
        match &self.ops[op].spec {
            OpSpec::Write { node, .. } => self.s.map(|s| s.resources[*node].path.clone()).unwrap_or_default(),
            OpSpec::Delete { path, .. } => path.clone(),
        }
    }

    fn emit(&self, path: &str, kind: EventKind) {
        self.engine.emit(self.stack, Some(path), self.started, kind);
    }

    async fn run(&self, report: &mut ApplyReport) {
        let mut remaining: Vec<usize> = self.ops.iter().map(|o| o.prereqs).collect();
        let mut ready: VecDeque<usize> = (0..self.ops.len()).filter(|i| remaining[*i] == 0).collect();
        let mut done = vec![false; self.ops.len()];
        let mut blocked = vec![false; self.ops.len()];
        let mut stop = false;
        let mut running = FuturesUnordered::new();
        loop {
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
                let reason =
                    if blocked[i] { "a resource it depends on failed" } else { "the run stopped after a failure" };
                self.emit(&path, EventKind::Skipped { reason: reason.into() });
                report.skipped.push(path);
            }
        }
        report.skipped.sort();
        report.skipped.dedup();
        report.retries = self.retries.load(Ordering::Relaxed);
        report.adopted = self.adopted.lock().unwrap_or_else(|p| p.into_inner()).clone();
        report.rolled_back = self.rolled_back.lock().unwrap_or_else(|p| p.into_inner()).clone();
        report.rolled_back.sort();
        for v in
            [&mut report.created, &mut report.updated, &mut report.replaced, &mut report.deleted, &mut report.adopted]
        {
            v.sort();
        }
        report.failures.sort_by(|a, b| a.path.cmp(&b.path));
    }

    async fn run_op(&self, op: usize) -> Result<(), OpFailure> {
        match &self.ops[op].spec {
            OpSpec::Write { node, action } => self.run_write(*node, *action).await,
            OpSpec::Delete { path, res, .. } => self.run_delete(path, res).await,
        }
    }

    fn slot(&self, provider: &str) -> Result<&Arc<ProviderSlot>, OpFailure> {
        self.engine.slot(provider).map_err(|e| OpFailure { kind: ErrorKind::InvalidSpec, message: e.to_string() })
    }

    /// One provider call with pacing and retries on throttling / transient errors; a transient
    /// failure of a create is checked for a resource that was made anyway before retrying.
    async fn call<T, F, Fut>(
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
            let err = match f().await {
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
                ErrorKind::Transient => attempt < retry.max_attempts,
                // Eventual consistency: something just created is not visible yet.
                ErrorKind::NotFound => op != OpKind::Delete && elapsed < retry.consistency_window,
                // The cloud may still be detaching a dependency that was just deleted.
                ErrorKind::Conflict => op == OpKind::Delete && elapsed < retry.conflict_window,
                _ => false,
            };
            if !retry_it {
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

    /// Look for a resource this run (or a crashed one) created at `path` with `name`.
    async fn find_created(
        &self,
        slot: &ProviderSlot,
        cx: &OpContext,
        kind: Kind,
        path: &str,
        name: &str,
    ) -> Result<Option<(String, Attrs)>, ProviderError> {
        let sel = Selector::Stack(self.stack.to_string());
        let all = self.call(slot, cx, path, OpKind::Create, || read_many(&slot.provider, cx, kind, &sel)).await?;
        Ok(all.into_iter().find(|(id, a)| {
            let tags = a.get("tags");
            !self.known_ids.contains(id)
                && tags.and_then(|t| t.get(TAG_PATH)).and_then(Value::as_str) == Some(path)
                && tags.and_then(|t| t.get(TAG_NAME)).and_then(Value::as_str) == Some(name)
        }))
    }

    async fn run_write(&self, node: usize, action: Action) -> Result<(), OpFailure> {
        let Some(s) = self.s else { return Ok(()) };
        let r = &s.resources[node];
        let np = &self.nodes[node];
        let gate = r.health.as_ref().filter(|_| action == Action::Replace && np.create_before_destroy);
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
        let cx = OpContext::new(self.engine.clock.clone(), self.stack);
        let t0 = cx.clock.now();
        let opk = if action == Action::Update { OpKind::Update } else { OpKind::Create };
        self.emit(&r.path, EventKind::Started { op: opk });

        // Attributes of the dependencies, all final by now.
        let dep_attrs: BTreeMap<usize, Arc<Attrs>> = {
            let a = self.attrs.lock().unwrap_or_else(|p| p.into_inner());
            r.deps.iter().filter_map(|d| a.get(*d).cloned().flatten().map(|v| (*d, v))).collect()
        };
        if action != Action::Update {
            if let Some(Expr::Secret(SecretSource::Generated { len })) = r.fields.get("password") {
                self.secrets.put(&r.path, "password", Secret::generate(*len));
            }
        }
        let resolve_all = |mode: Mode,
                           real: &dyn Fn(&str) -> bool|
         -> Result<serde_json::Map<String, Value>, OpFailure> {
            let env = Env {
                stack: &s.name,
                path: &r.path,
                attrs: &dep_attrs,
                generation: np.generation,
                prior_name: if action == Action::Update { self.prior_names[node].as_deref() } else { None },
                mode,
                secrets: Some(&self.secrets),
            };
            let marker_env = Env { mode: Mode::Plan, ..env };
            let mut out = serde_json::Map::new();
            for (k, e) in &r.fields {
                // Unchanged fields of an update get real values too when they are at hand; only a
                // secret this run cannot know falls back to its marker (the update leaves it alone).
                let resolved = match plan::resolve(e, &env) {
                    Err(_) if !real(k) => plan::resolve(e, &marker_env),
                    other => other,
                };
                match resolved {
                    Ok(Resolved::Known(v)) => {
                        out.insert(k.clone(), v);
                    }
                    Ok(Resolved::Unknown) => {
                        return Err(OpFailure { kind: ErrorKind::Other, message: format!("internal: field `{k}` still unknown at apply") })
                    }
                    Err(plan::MissingSecret(what)) => {
                        return Err(OpFailure {
                            kind: ErrorKind::InvalidSpec,
                            message: format!(
                                "the secret {what} is not available in this run: it is stored only when {} is set; set it, or replace {what}'s resource to generate a new one",
                                crate::secret::SECRET_KEY_ENV
                            ),
                        })
                    }
                }
            }
            Ok(out)
        };
        let inputs: BTreeMap<String, Value> = resolve_all(Mode::Plan, &|_| true)?.into_iter().collect();
        // An update hands the provider real values only for the fields that change; unchanged
        // fields keep their markers (a secret of an earlier run may not be available, and an
        // update never needs it).
        let changed: BTreeSet<&str> = self.plan.changes[node].fields.iter().map(|f| f.name.as_str()).collect();
        let real = |k: &str| action != Action::Update || changed.contains(k);
        let mut spec = resolve_all(Mode::Apply, &real)?;
        if action == Action::Update && spec.contains_key("password") && !changed.contains("password") {
            spec.insert("password".into(), Value::Null);
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
                    .call(slot, &cx, &r.path, OpKind::Update, || update(&slot.provider, &cx, r.kind, &id, spec.clone()))
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
                if action == Action::Replace && np.create_before_destroy {
                    if let Some(id) = &self.plan.changes[node].id {
                        recs.push(Record::Depose { path: r.path.clone(), id: id.clone() });
                    }
                }
                recs.push(Record::Intent(self.intent(OpKind::Create, r, None, np.generation, tags, inputs.clone())));
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
        let mut sealed = BTreeMap::new();
        if let Some(v) = self.secrets.seal(&r.path, "password") {
            sealed.insert("password".to_string(), v);
        } else if action == Action::Update {
            if let Some(prev) = self.secrets.sealed.get(&(r.path.clone(), "password".to_string())) {
                sealed.insert("password".to_string(), prev.clone());
            }
        }
        let resource = ResourceState {
            kind: r.kind,
            provider: r.provider.clone(),
            id: id.clone(),
            generation: np.generation,
            inputs,
            attrs: attrs.clone(),
            deps: self.deps_paths[node].clone(),
            sealed,
        };
        self.journal.write_behind(vec![Record::Put { path: r.path.clone(), resource }]);
        if let Some(gate) = gate {
            self.emit(&r.path, EventKind::Progress { message: format!("waiting for {id} to pass its health gate") });
            if let Err(why) = crate::health::wait_healthy(gate, &slot.provider, &cx, &id, &attrs).await {
                return Err(self.roll_back(slot, &cx, r, &id, &why).await);
            }
        }
        self.attrs.lock().unwrap_or_else(|p| p.into_inner())[node] = Some(Arc::new(attrs));
        self.emit(
            &r.path,
            EventKind::Succeeded { op: opk, id, elapsed_ms: cx.clock.now().saturating_sub(t0).as_millis() as u64 },
        );
        Ok(())
    }

    /// The intent recorded before deleting `id`.
    fn delete_intent(&self, path: &str, kind: Kind, provider: &str, id: &str, deps: Vec<String>) -> PendingOp {
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
        }
    }

    /// A new instance failed its health gate: delete it and make the old one current again.
    async fn roll_back(
        &self,
        slot: &ProviderSlot,
        cx: &OpContext,
        r: &crate::validate::SynthResource,
        new_id: &str,
        why: &str,
    ) -> OpFailure {
        let old_id = self.plan.changes.iter().find(|c| c.path == r.path && !c.deposed).and_then(|c| c.id.clone());
        let intent = self.delete_intent(&r.path, r.kind, &r.provider, new_id, r.depends_on.clone());
        if let Err(e) = self.journal.write(vec![Record::Intent(intent)]).await {
            return e.into();
        }
        let deleted =
            match self.call(slot, cx, &r.path, OpKind::Delete, || delete(&slot.provider, cx, r.kind, new_id)).await {
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

    fn intent(
        &self,
        op: OpKind,
        r: &crate::validate::SynthResource,
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
            sealed: if op == OpKind::Create { self.secrets.seal_all(&r.path) } else { BTreeMap::new() },
        }
    }

    /// Create exactly once: after an uncertain failure (timeout, 5xx, "already exists") look the
    /// resource up by its tags before trying again.
    async fn create_once(
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
                    match create(&slot.provider, cx, kind, spec.clone()).await {
                        // Transient errors are handled below (they may hide a success), not retried blindly.
                        Err(e) if e.kind() == ErrorKind::Transient => {
                            Err(ProviderError::new(ErrorKind::Other, "uncertain").with_source(e))
                        }
                        other => other,
                    }
                })
                .await
            {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let (uncertain, err) = match err.kind() {
                ErrorKind::Other if err.message() == "uncertain" => {
                    let inner = std::error::Error::source(&err).map(|s| s.to_string()).unwrap_or_default();
                    (true, ProviderError::new(ErrorKind::Transient, inner))
                }
                ErrorKind::AlreadyExists => (true, err),
                _ => (false, err),
            };
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

    async fn run_delete(&self, path: &str, res: &ResourceState) -> Result<(), OpFailure> {
        let slot = self.slot(&res.provider)?;
        let _permit = permit(&slot.semaphore).await?;
        let cx = OpContext::new(self.engine.clock.clone(), self.stack);
        let t0 = cx.clock.now();
        self.emit(path, EventKind::Started { op: OpKind::Delete });
        let intent = self.delete_intent(path, res.kind, &res.provider, &res.id, res.deps.clone());
        self.journal.write(vec![Record::Intent(intent)]).await?;
        self.engine.crash_point(CrashPhase::BeforeCall);
        match self.call(slot, &cx, path, OpKind::Delete, || delete(&slot.provider, &cx, res.kind, &res.id)).await {
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
}

/// A slot of a concurrency bound (a closed semaphore means the engine is shutting down).
async fn permit(sem: &tokio::sync::Semaphore) -> Result<tokio::sync::SemaphorePermit<'_>, OpFailure> {
    sem.acquire().await.map_err(|_| OpFailure { kind: ErrorKind::Cancelled, message: "engine shut down".into() })
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
