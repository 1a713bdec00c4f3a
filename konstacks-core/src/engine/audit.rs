//! The audit trail the engine writes: one [`AuditEntry`] per apply, destroy, import, refresh,
//! force-unlock, release and drift check, appended to the stack's journal while the stack's lock
//! is held, so an entry is durable the moment it is written and folded into the snapshot with
//! everything else.
//!
//! This module builds the entries and writes them; it never changes what a command does.
//! Commands refused before the lock is taken (the budget and compliance gates of
//! [`Engine::apply`], an invalid stack, a stack locked by another run) write no entry: nothing
//! ran and no lock was held to write under. Nor does a command whose state cannot be read
//! (corrupt, or from a newer version): damaged state is never written to. A run refused after
//! it took the lock and read state (hazards the options do not allow, a stale plan, a wrong
//! state key) is recorded as failed with nothing changed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::base::error::StateError;
use crate::error::Error;
use crate::events::EventKind;
use crate::plan::Plan;
use crate::policy::PolicyReport;
use crate::state::{
    AuditCommand, AuditCompliance, AuditEntry, AuditResult, LockInfo, Record, ReleaseResult, StackState,
};
use crate::synth::Synthesized;

use super::{ApplyReport, DriftReport, Engine};

/// What a command's entry is built from while the command runs.
#[derive(Debug)]
pub(super) struct Audit {
    at: String,
    started: Duration,
    command: AuditCommand,
    compliance: Option<AuditCompliance>,
    cost: Option<(f64, f64)>,
    /// When operations were started (a run that stopped before may say "nothing was
    /// changed"); the `at` of the run's release entries.
    executing: Option<String>,
    /// The entry was written already (folded into the run's final snapshot).
    recorded: bool,
    /// The stack's state was read: a state that cannot be read is never written to.
    state_read: bool,
}

impl Audit {
    /// The stack's state was read (so it may be appended to).
    pub(super) fn state_read(&mut self) {
        self.state_read = true;
    }

    /// The entry was written.
    pub(super) fn recorded(&mut self) {
        self.recorded = true;
    }

    /// Whether an entry may (still) be written for a command that failed.
    pub(super) fn writable(&self) -> bool {
        self.state_read && !self.recorded
    }

    /// The run starts its operations now.
    pub(super) fn executing(&mut self) {
        self.executing = Some(audit_time());
    }
}

/// The last `at` handed out, in milliseconds since the epoch.
static LAST_AT_MS: AtomicU64 = AtomicU64::new(0);

/// Now as RFC 3339 UTC with milliseconds, strictly increasing within the process. Two entries
/// are then never equal, which is what lets a journal replayed over a snapshot that already
/// holds its entries change nothing (see [`StackState::apply`]).
fn audit_time() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let prev = LAST_AT_MS.fetch_max(now, Ordering::SeqCst);
    let ms = if now > prev {
        now
    } else {
        // The same millisecond (or a clock step back): take the next one after the last.
        LAST_AT_MS.fetch_add(1, Ordering::SeqCst) + 1
    };
    let secs = crate::base::util::rfc3339(ms / 1000);
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), ms % 1000)
}

fn count(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// `2 created, 1 updated, 0 replaced, 0 deleted`.
fn changes_summary(r: &ApplyReport) -> String {
    format!(
        "{} created, {} updated, {} replaced, {} deleted",
        r.created.len(),
        r.updated.len(),
        r.replaced.len(),
        r.deleted.len()
    )
}

impl Engine {
    /// Record audit entries as `actor` instead of the OS user (`user@host`). A dashboard passes
    /// `dashboard:<label>`, a CI job its pipeline name.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Who audit entries name: what [`Engine::with_actor`] set, or `user@host` of the OS user.
    pub fn actor(&self) -> String {
        self.actor.clone().unwrap_or_else(crate::state::os_actor)
    }

    /// Break the lock with this id, and record that in the audit trail (naming the run whose
    /// lock it was), under the lock taken just for that.
    pub async fn force_unlock(&self, stack: &str, id: &str) -> Result<LockInfo, Error> {
        let audit = self.audit_start(AuditCommand::ForceUnlock, None);
        let old = self.state.force_unlock(stack, id).await?;
        let summary = format!("broke lock {} held by {} ({}) since {}", old.id, old.holder, old.operation, old.since);
        let entry = self.audit_entry(&audit, summary, AuditResult::Succeeded, None);
        self.append_under_lock(stack, "force-unlock", audit.started, Record::Audited { entry }).await?;
        Ok(old)
    }

    /// The audit trail of a stack, oldest first.
    pub async fn history(&self, stack: &str) -> Result<Vec<AuditEntry>, Error> {
        Ok(self.state(stack).await?.audit)
    }

    /// Start the entry of a command now.
    pub(super) fn audit_start(&self, command: AuditCommand, policy: Option<&PolicyReport>) -> Audit {
        Audit {
            at: audit_time(),
            started: self.clock.now(),
            command,
            compliance: policy.map(|p| AuditCompliance {
                packs: p.packs.iter().map(|k| k.name.clone()).collect(),
                errors: p.counts.errors,
                warnings: p.counts.warnings,
            }),
            cost: None,
            executing: None,
            recorded: false,
            state_read: false,
        }
    }

    /// Note the monthly cost before and after the run's plan: priced against the stack for an
    /// apply, from state alone for a destroy (everything goes, so after is zero).
    pub(super) fn audit_cost(&self, audit: &mut Audit, plan: &Plan, s: Option<&Synthesized>, state: &StackState) {
        audit.cost = Some(match s {
            Some(s) => {
                let c = crate::cost::plan_cost(plan, s, state, &self.catalogs());
                (c.before_usd, c.after_usd)
            }
            None => {
                let catalogs = self.catalogs();
                let model = crate::cost::CostModel::new(&catalogs);
                let resources = state.resources.iter().chain(state.deposed.iter().map(|d| (&d.path, &d.resource)));
                let before: f64 = resources
                    .filter(|(_, r)| r.kind.is_billed())
                    .filter_map(|(p, r)| model.price_state(p, r).monthly_usd)
                    .sum();
                (crate::kind::price::cents(before), 0.0)
            }
        });
    }

    fn audit_entry(&self, audit: &Audit, summary: String, result: AuditResult, message: Option<String>) -> AuditEntry {
        AuditEntry {
            at: audit.at.clone(),
            actor: self.actor(),
            command: audit.command,
            summary,
            result,
            message,
            duration_ms: self.clock.now().saturating_sub(audit.started).as_millis() as u64,
            cost_before_usd: audit.cost.map(|c| c.0),
            cost_after_usd: audit.cost.map(|c| c.1),
            compliance: audit.compliance.clone(),
            drifted: None,
        }
    }

    /// The entry of an apply or destroy that produced a report; marks it recorded (the caller
    /// writes it).
    fn audit_run_record(&self, audit: &mut Audit, report: &ApplyReport) -> Record {
        audit.recorded = true;
        let (result, message) = if report.cancelled {
            (AuditResult::Interrupted, Some(Error::Interrupted(Box::new(report.clone())).to_string()))
        } else if !report.failures.is_empty() {
            (AuditResult::Failed, Some(Error::Apply(Box::new(report.clone())).to_string()))
        } else {
            (AuditResult::Succeeded, None)
        };
        Record::Audited { entry: self.audit_entry(audit, changes_summary(report), result, message) }
    }

    /// A run that changed state puts its entry into the snapshot it rewrites anyway (journaled
    /// first, in case the rewrite fails); a run that changed nothing appends it afterwards
    /// ([`Engine::audit_run`]), so its snapshot and serial stay as they were.
    pub(super) async fn audit_into_snapshot(
        &self,
        stack: &str,
        audit: &mut Audit,
        report: &ApplyReport,
        state: &mut StackState,
    ) -> Result<(), StateError> {
        let rec = self.audit_run_record(audit, report);
        self.state.append(stack, std::slice::from_ref(&rec)).await?;
        state.apply(&rec);
        Ok(())
    }

    /// Write the entry of an apply or destroy, unless the run already folded it into its
    /// snapshot. Called with the stack's lock held, whatever the run's outcome.
    pub(super) async fn audit_run(
        &self,
        stack: &str,
        audit: &mut Audit,
        outcome: &Result<ApplyReport, Error>,
    ) -> Result<(), StateError> {
        if !audit.writable() {
            return Ok(());
        }
        let rec = match outcome {
            Ok(report) => self.audit_run_record(audit, report),
            Err(e) => {
                let summary = if audit.executing.is_some() {
                    "stopped before it finished; state records what was done"
                } else {
                    "nothing was changed"
                };
                let result =
                    if matches!(e, Error::Interrupted(_)) { AuditResult::Interrupted } else { AuditResult::Failed };
                Record::Audited { entry: self.audit_entry(audit, summary.into(), result, Some(e.to_string())) }
            }
        };
        self.state.append(stack, &[rec]).await
    }

    /// One `release` entry per release record a run writes.
    pub(super) fn audit_releases(&self, audit: &Audit, records: &[Record], report: &ApplyReport) -> Vec<Record> {
        let at = audit.executing.clone().unwrap_or_else(|| audit.at.clone());
        records
            .iter()
            .filter_map(|r| match r {
                Record::Released { release } => Some(release),
                _ => None,
            })
            .map(|r| {
                let versions = match (&r.from_version, &r.to_version) {
                    (None, None) => String::new(),
                    (from, to) => {
                        format!("{} -> {}, ", from.as_deref().unwrap_or("?"), to.as_deref().unwrap_or("?"))
                    }
                };
                let summary = format!("{} {}: {versions}{}", r.front, r.group, count(r.targets.len(), "target"));
                let result = match r.result {
                    ReleaseResult::Succeeded => AuditResult::Succeeded,
                    ReleaseResult::RolledBack => AuditResult::RolledBack,
                    _ if report.cancelled => AuditResult::Interrupted,
                    _ => AuditResult::Failed,
                };
                let failures: Vec<String> = report
                    .failures
                    .iter()
                    .filter(|f| r.targets.contains(&f.path))
                    .map(|f| format!("{}: {}", f.path, f.message))
                    .collect();
                let message = (result != AuditResult::Succeeded && !failures.is_empty()).then(|| failures.join("; "));
                let entry = AuditEntry {
                    at: at.clone(),
                    actor: self.actor(),
                    command: AuditCommand::Release,
                    summary,
                    result,
                    message,
                    duration_ms: r.duration_ms,
                    cost_before_usd: None,
                    cost_after_usd: None,
                    compliance: None,
                    drifted: None,
                };
                Record::Audited { entry }
            })
            .collect()
    }

    /// The entry of a refresh (called with the lock held; the caller writes it).
    pub(super) fn audit_refresh(&self, audit: &Audit, outcome: &Result<DriftReport, Error>) -> Record {
        let entry = match outcome {
            Ok(r) if r.is_clean() => {
                self.audit_entry(audit, "state matches the cloud".into(), AuditResult::Succeeded, None)
            }
            Ok(r) => self.audit_entry(
                audit,
                format!("{} accepted into state", count(r.items.len(), "drifted resource")),
                AuditResult::Succeeded,
                None,
            ),
            Err(e) => self.audit_entry(audit, "nothing was changed".into(), AuditResult::Failed, Some(e.to_string())),
        };
        Record::Audited { entry }
    }

    /// The entry of an import (called with the lock held; the caller writes it).
    pub(super) fn audit_import(&self, audit: &Audit, path: &str, id: &str, outcome: Result<(), &Error>) -> Record {
        let entry = match outcome {
            Ok(()) => self.audit_entry(audit, format!("imported {id} at {path}"), AuditResult::Succeeded, None),
            Err(e) => self.audit_entry(
                audit,
                format!("{id} not imported at {path}"),
                AuditResult::Failed,
                Some(e.to_string()),
            ),
        };
        Record::Audited { entry }
    }

    /// Record a drift check. Drift takes no lock for its reads, so the entry is written under the stack's lock
    /// taken just for it; when another run holds the lock the entry is skipped with a warning
    /// event rather than failing the check. A stack without any state records nothing.
    pub(super) async fn audit_drift(
        &self,
        audit: &Audit,
        state: &StackState,
        report: &DriftReport,
    ) -> Result<(), Error> {
        if *state == StackState::empty(&state.stack) {
            return Ok(());
        }
        let n = report.items.len();
        let (summary, result) = if n == 0 {
            ("no drift".to_string(), AuditResult::Clean)
        } else {
            (format!("{} drifted", count(n, "resource")), AuditResult::Drifted)
        };
        let mut entry = self.audit_entry(audit, summary, result, None);
        entry.drifted = Some(n);
        self.append_under_lock(&state.stack, "drift", audit.started, Record::Audited { entry }).await
    }

    /// Append `rec` while holding the stack's lock for just that. A lock held by another run,
    /// or a state that cannot be read (never written to), skips the record with a warning event.
    async fn append_under_lock(&self, stack: &str, what: &str, started: Duration, rec: Record) -> Result<(), Error> {
        let warn = |why: String| {
            let message = format!("{what} not recorded in the audit trail of stack {stack}: {why}");
            tracing::warn!("{message}");
            self.emit(stack, None, started, EventKind::Warning { message });
        };
        let lock = LockInfo::for_this_process(what);
        match self.state.lock(stack, &lock).await {
            Ok(()) => {}
            Err(StateError::Locked { holder, .. }) => {
                warn(format!("it is locked by {holder}"));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        let appended = match self.state.load(stack).await {
            Ok(_) => self.state.append(stack, &[rec]).await,
            Err(e) => {
                warn(format!("its state cannot be read ({e})"));
                Ok(())
            }
        };
        let unlocked = self.state.unlock(stack, &lock.id).await;
        appended?;
        unlocked?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_times_are_rfc3339_with_milliseconds_and_strictly_increasing() {
        let a = audit_time();
        let b = audit_time();
        assert_eq!(a.len(), "2026-01-01T00:00:00.000Z".len(), "{a}");
        assert!(a.ends_with('Z') && a.as_bytes()[19] == b'.', "{a}");
        assert!(b > a, "{a} then {b}");
    }

    #[test]
    fn counts_say_one_and_many() {
        assert_eq!(count(1, "target"), "1 target");
        assert_eq!(count(2, "target"), "2 targets");
        assert_eq!(count(0, "resource"), "0 resources");
    }
}
