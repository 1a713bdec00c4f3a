//! The engine: plan, apply, destroy, refresh and drift, against the providers registered with it.
//!
//! Apply walks an operation graph in parallel (each operation starts as soon as the operations
//! it depends on are done), bounded per provider, paced below each provider's rate limit, with
//! retries on throttling and transient errors. Every cloud call is preceded by a journaled
//! intent and followed by a journaled result, so a crash at any point leaves state that the next
//! run can reconcile: interrupted creates are found again by their tags and adopted.
//!
//! The engine never knows which cloud it talks to: it sees only the provider traits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod adopt;
mod audit;
mod drift;
mod exec;
pub mod guard;
mod journal;
mod ops;
mod reconcile;
pub mod refusal;
mod release;
pub mod report;
mod secrets;

use exec::Exec;
pub use journal::Durability;
use journal::Journal;
pub use refusal::{Hazard, Refusal};
pub use report::*;

use serde_json::Value;

use crate::base::clock::{Cancel, Clock, OpContext, TokioClock};
use crate::base::error::{ErrorKind, ProviderError};
use crate::base::retry::{Pacer, RetryPolicy};
use crate::base::secret::{Sealer, SecretError};
use crate::base::util::SplitMix;
use crate::error::Error;
use crate::events::{Event, EventBus, EventKind};
use crate::kind::catalog::Catalog;
use crate::plan::{self, Action, Plan, PlanInput};
use crate::provider::Provider;
use crate::stack::Stack;
use crate::state::{AuditCommand, LockInfo, OpKind, Record, StackState, StateBackend};
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
    /// Why `KONSTACKS_SECRET_KEY` cannot be used; plans and applies are refused with it.
    key_error: Option<SecretError>,
    durability: Durability,
    crash: Option<CrashHook>,
    policy: Option<crate::policy::PolicySet>,
    cancel: Cancel,
    /// Who audit entries name (see [`Engine::with_actor`]); the OS user when unset.
    actor: Option<String>,
}

/// Where the crash-test hook may stop the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashPhase {
    /// The intent is durable, the cloud call has not been made.
    BeforeCall,
    /// The cloud call returned, its result is not recorded.
    AfterCall,
    /// A release registered a new instance with the load balancer, not yet healthy.
    Registered,
    /// A release deregistered an old instance, the switch is not recorded.
    Deregistered,
}

/// Crash-test hook: with `KONSTACKS_CRASH_AT=before-call:N` (or `after-call:N`, `release-registered:N`,
/// `release-deregistered:N`) the process
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
            "release-registered" => CrashPhase::Registered,
            "release-deregistered" => CrashPhase::Deregistered,
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
        let (sealer, key_error) = match Sealer::from_env() {
            Ok(sealer) => (sealer, None),
            Err(e) => (None, Some(e)),
        };
        Self {
            providers: BTreeMap::new(),
            state,
            clock: TokioClock::shared(),
            rng: Mutex::new(SplitMix::new(retry.seed)),
            retry,
            events: EventBus::default(),
            sealer,
            key_error,
            durability: Durability::default(),
            crash: CrashHook::from_env(),
            policy: None,
            cancel: Cancel::new(),
            actor: None,
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
        // Pricing every resource is only needed to hold a budget.
        if s.budget.is_some() {
            let report = crate::cost::estimate(s, &self.catalogs());
            crate::cost::check_budget(s, &report)?;
        }
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
        self.key_error = None;
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
        OpContext::new(self.clock.clone(), stack).with_cancel(&self.cancel)
    }

    /// The context of one operation of a run: the engine's clock and cancellation, inside a
    /// span naming the stack, the resource and the operation.
    pub(crate) fn op_cx(&self, stack: &str, path: &str, op: OpKind) -> OpContext {
        let span = tracing::info_span!("konstacks.op", stack = %stack, path = %path, op = ?op);
        self.cx(stack).with_span(span)
    }

    /// Cancel runs through `cancel`: once it is pulled (on Ctrl-C, say), an apply or destroy
    /// starts no new operation, lets those in flight finish (or leaves them recorded as intents
    /// for the next run), releases the lock and returns [`Error::Interrupted`].
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// The engine's cancellation switch.
    pub fn canceller(&self) -> Cancel {
        self.cancel.clone()
    }

    /// The stored state of a stack (journal replayed).
    pub async fn state(&self, stack: &str) -> Result<StackState, Error> {
        Ok(self.state.load(stack).await?)
    }

    /// Set labels on a stack's state (an empty value removes one), under the stack's lock.
    pub async fn label(&self, stack: &str, labels: BTreeMap<String, String>) -> Result<(), Error> {
        let lock = LockInfo::for_this_process("label");
        self.state.lock(stack, &lock).await?;
        let written = self.state.append(stack, &[Record::Labels { labels }]).await;
        let unlocked = self.state.unlock(stack, &lock.id).await;
        written?;
        Ok(unlocked?)
    }

    /// The release history of a stack, oldest first.
    pub async fn releases(&self, stack: &str) -> Result<Vec<crate::state::ReleaseRecord>, Error> {
        Ok(self.state(stack).await?.releases)
    }

    /// Plan without changing anything (state is read, never written; the cloud is read only
    /// to reconcile interrupted operations and, with `refresh`, to see drift).
    pub async fn plan(&self, s: &Synthesized, opts: &PlanOptions) -> Result<Plan, Error> {
        let policy = self.gate(s, false)?;
        let mut state = self.state.load(&s.name).await?;
        self.check_key(&s.name, &state)?;
        let recovered = self.reconcile(&mut state, None).await?;
        if opts.refresh {
            self.refresh_in_memory(&mut state).await?;
        }
        let input = PlanInput { recovered, moved: moves(s) };
        let (mut plan, _, _) = secrets::diff_recovering(self, s, &mut state, &input)?;
        if !opts.offline {
            plan.untracked = self.untracked(&plan, &state).await?;
        }
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

    /// Plan the destruction of everything in a stack's state.
    pub async fn plan_destroy(&self, stack: &str) -> Result<Plan, Error> {
        let mut state = self.state.load(stack).await?;
        let recovered = self.reconcile(&mut state, None).await?;
        Ok(plan::destroy_plan(&state, recovered))
    }

    /// Make the cloud match the stack. The run is recorded in the stack's audit trail, however
    /// it ends, except when the budget or compliance gate refuses it before the lock is taken.
    pub async fn apply(&self, s: &Synthesized, opts: &ApplyOptions) -> Result<ApplyReport, Error> {
        let policy = self.gate(s, true)?;
        self.run(&s.name, Some(s), opts, AuditCommand::Apply, policy.as_ref()).await
    }

    /// Delete everything in the stack's state, in reverse dependency order (recorded in the
    /// stack's audit trail).
    pub async fn destroy(&self, stack: &str, opts: &ApplyOptions) -> Result<ApplyReport, Error> {
        self.run(stack, None, opts, AuditCommand::Destroy, None).await
    }

    async fn run(
        &self,
        stack: &str,
        s: Option<&Synthesized>,
        opts: &ApplyOptions,
        command: AuditCommand,
        policy: Option<&crate::policy::PolicyReport>,
    ) -> Result<ApplyReport, Error> {
        let lock = LockInfo::for_this_process(&command.to_string());
        self.state.lock(stack, &lock).await?;
        let mut audit = self.audit_start(command, policy);
        let result = self.run_locked(stack, s, opts, &mut audit).await;
        let audited = self.audit_run(stack, &mut audit, &result).await;
        let unlocked = self.state.unlock(stack, &lock.id).await;
        let report = result?;
        unlocked?;
        audited?;
        if report.cancelled {
            Err(Error::Interrupted(Box::new(report)))
        } else if report.failures.is_empty() {
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
        audit: &mut audit::Audit,
    ) -> Result<ApplyReport, Error> {
        let started = self.clock.now();
        let mut state = self.state.load(stack).await?;
        audit.state_read();
        if s.is_some() {
            self.check_key(stack, &state)?;
        }
        let loaded = state.clone();
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
        let (plan, nodes, recovery) = match s {
            Some(s) => {
                match secrets::diff_recovering(self, s, &mut state, &PlanInput { recovered, moved: BTreeMap::new() }) {
                    Ok(p) => p,
                    Err(e) => {
                        journal.close().await;
                        return Err(e);
                    }
                }
            }
            None => (plan::destroy_plan(&state, recovered), Vec::new(), Default::default()),
        };
        if let Some(expected) = &opts.expected {
            if !same_changes(expected, &plan) {
                journal.close().await;
                return Err(Error::StalePlan { planned: expected.state_serial, current: plan.state_serial });
            }
        }
        let mut plan = plan;
        self.audit_cost(audit, &plan, s, &state);
        if let Err(e) = self.gate_run(&mut plan, &state, opts, s.is_some()).await {
            journal.close().await;
            return Err(e);
        }
        plan.forget_created_values();
        if !opts.labels.is_empty() {
            let rec = Record::Labels { labels: opts.labels.clone() };
            journal.write(vec![rec.clone()]).await?;
            state.apply(&rec);
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

        let exec = Exec::build(self, stack, s, &plan, &nodes, &state, &journal, opts.on_failure, started, recovery)?;
        let release_started = crate::base::util::now_rfc3339();
        audit.executing();
        exec.run(&mut report).await;
        if !plan.releases.is_empty() {
            let elapsed = self.clock.now().saturating_sub(started).as_millis() as u64;
            let sources = (opts.source.as_ref(), loaded.source.as_ref());
            let mut recs = release::records(&plan, &report, release_started, elapsed, sources);
            recs.extend(self.audit_releases(audit, &recs, &report));
            journal.write(recs).await?;
        }
        // What the run was built from is not needed past this point: freed before the snapshot
        // is written, the largest allocation of a run's end.
        drop(exec);
        drop(plan);
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
            let (outputs, same) = journal.with_replica(|replica| {
                let outputs = compute_outputs(s, replica);
                let same = outputs == replica.outputs;
                (outputs, same)
            });
            if !same {
                journal.write(vec![Record::Outputs { outputs: outputs.clone() }]).await?;
            }
            report.outputs = outputs;
        }
        let appends_ms = journal.busy_ms();
        let journal_written = journal.appended() > 0;
        let mut final_state = journal.close().await;
        if s.is_some() && report.failures.is_empty() && !report.cancelled && opts.source.is_some() {
            final_state.source.clone_from(&opts.source);
        }
        final_state.placement = match s {
            Some(s) if !final_state.resources.is_empty() => Some(plan::safety::placement_of(s)),
            _ if final_state.resources.is_empty() => None,
            _ => final_state.placement,
        };
        // A run that changed nothing (a failed first call, say) keeps the serial: the snapshot is
        // rewritten with the same bytes only to drop the journal of its intent and abandon.
        let changed = final_state != loaded;
        if changed {
            final_state.serial += 1;
            self.audit_into_snapshot(stack, audit, &report, &mut final_state).await?;
        }
        let t = std::time::Instant::now();
        if changed || journal_written {
            self.state.compact(stack, &final_state).await?;
        }
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

    /// The safety gate of a run (see [`guard`]): what the cloud holds for the stack that state
    /// does not know, resources another stack now owns, then every hazard the options do not allow.
    async fn gate_run(
        &self,
        plan: &mut Plan,
        state: &StackState,
        opts: &ApplyOptions,
        applying: bool,
    ) -> Result<(), Error> {
        if applying {
            plan.untracked = self.untracked(plan, state).await?;
        }
        let foreign = self.foreign(plan, state).await?;
        guard::check(plan, state, opts, applying, foreign)
    }

    /// Refuse an unusable state key (too short, or not the one the stack's secrets were sealed
    /// with) before anything reaches a cloud.
    fn check_key(&self, stack: &str, state: &StackState) -> Result<(), Error> {
        if let Some(e) = &self.key_error {
            return Err(e.clone().into());
        }
        Ok(secrets::check_key(stack, self.sealer.as_ref(), state)?)
    }

    fn emit(&self, stack: &str, path: Option<&str>, started: Duration, kind: EventKind) {
        self.events.emit(Event {
            stack: stack.to_string(),
            path: path.map(str::to_string),
            at_ms: self.clock.now().saturating_sub(started).as_millis() as u64,
            kind,
        });
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

fn compute_outputs(s: &Synthesized, state: &StackState) -> BTreeMap<String, Value> {
    s.exports
        .iter()
        .map(|e| {
            let v = e.value_with(|_, from, attr| state.resources.get(from).and_then(|r| r.attr(attr)));
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
