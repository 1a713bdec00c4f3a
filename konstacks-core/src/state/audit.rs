//! The audit trail: one entry per command that changed (or checked) a stack, kept in the
//! stack's state, oldest first and never truncated.
//!
//! This module owns only the data format. The engine writes the entries (through the journal,
//! as [`super::Record::Audited`]); readers (the CLI's `history`, dashboards) only read them.

use serde::{Deserialize, Serialize};

/// One command run against a stack, as recorded in its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the command started (RFC 3339, UTC).
    pub at: String,
    /// Who ran it: `user@host` of the OS user by default, or what the embedder set (the
    /// dashboard records `dashboard:<label>`).
    pub actor: String,
    /// What was run.
    pub command: AuditCommand,
    /// One human line: `2 created, 1 updated, 0 replaced, 0 deleted`, `edge/lb web: 1.0 -> 1.1,
    /// 2 targets`, `3 resources drifted`, `no drift`.
    pub summary: String,
    /// How it ended.
    pub result: AuditResult,
    /// The error, when it failed (the redacted error text: never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Monthly cost in USD before the command, when the plan priced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_before_usd: Option<f64>,
    /// Monthly cost in USD after the command, when the plan priced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_after_usd: Option<f64>,
    /// What the compliance packs found, when the plan was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<AuditCompliance>,
    /// Drift checks: how many resources drifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted: Option<usize>,
}

/// The command an [`AuditEntry`] records.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditCommand {
    /// An apply.
    Apply,
    /// A destroy.
    Destroy,
    /// An import of existing resources.
    Import,
    /// A refresh of state from the cloud.
    Refresh,
    /// A broken lock.
    ForceUnlock,
    /// One release of new instances behind a fronting resource (written by an apply).
    Release,
    /// A drift check.
    Drift,
}

impl std::fmt::Display for AuditCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Apply => "apply",
            Self::Destroy => "destroy",
            Self::Import => "import",
            Self::Refresh => "refresh",
            Self::ForceUnlock => "force-unlock",
            Self::Release => "release",
            Self::Drift => "drift",
        })
    }
}

/// How the command of an [`AuditEntry`] ended.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    /// It did everything it set out to do.
    Succeeded,
    /// It stopped on an error (see [`AuditEntry::message`]).
    Failed,
    /// It was interrupted (Ctrl-C, cancellation); the next run goes on.
    Interrupted,
    /// A release whose new instances never became healthy: the old ones serve again.
    RolledBack,
    /// A drift check that found drift.
    Drifted,
    /// A drift check that found none.
    Clean,
}

impl std::fmt::Display for AuditResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::RolledBack => "rolled-back",
            Self::Drifted => "drifted",
            Self::Clean => "clean",
        })
    }
}

/// What the compliance packs found in the plan of an audited command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCompliance {
    /// The packs that were checked.
    pub packs: Vec<String>,
    /// Findings at error level.
    pub errors: usize,
    /// Findings at warning level.
    pub warnings: usize,
}

/// The OS user running this process, as `user@host` (the default actor of audit entries and
/// the first part of a lock holder).
pub(crate) fn os_actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::error::StateError;
    use crate::state::{parse_state, LocalBackend, Record, StackState, StateBackend};

    fn entry(at: &str, command: AuditCommand, result: AuditResult) -> AuditEntry {
        AuditEntry {
            at: at.into(),
            actor: "ana@build-1".into(),
            command,
            summary: "1 created, 0 updated, 0 replaced, 0 deleted".into(),
            result,
            message: None,
            duration_ms: 12,
            cost_before_usd: Some(0.0),
            cost_after_usd: Some(18.5),
            compliance: Some(AuditCompliance { packs: vec!["baseline".into()], errors: 0, warnings: 2 }),
            drifted: None,
        }
    }

    fn audited(e: &AuditEntry) -> Record {
        Record::Audited { entry: e.clone() }
    }

    fn tmp() -> Result<tempfile::TempDir, StateError> {
        tempfile::tempdir().map_err(|e| StateError::Io { path: "tmp".into(), source: e })
    }

    #[test]
    fn audit_replay_over_a_snapshot_holding_the_entry_changes_nothing() {
        let a = entry("2026-01-01T10:00:00.000Z", AuditCommand::Apply, AuditResult::Succeeded);
        let b = entry("2026-01-01T10:05:00.000Z", AuditCommand::Drift, AuditResult::Clean);
        let mut st = StackState::empty("s");
        st.apply(&audited(&a));
        st.apply(&audited(&b));
        let snapshot = st.clone();
        // A crash between writing the snapshot and removing the journal replays both again.
        st.apply(&audited(&a));
        st.apply(&audited(&b));
        assert_eq!(st, snapshot);
        assert_eq!(st.audit, vec![a, b], "oldest first");
    }

    #[test]
    fn audit_entries_round_trip_and_old_states_read_without_them() -> Result<(), serde_json::Error> {
        let mut e = entry("2026-01-01T10:00:00.000Z", AuditCommand::ForceUnlock, AuditResult::Succeeded);
        e.cost_before_usd = None;
        e.cost_after_usd = None;
        e.compliance = None;
        let json = serde_json::to_value(&e)?;
        assert_eq!(json["command"], "force_unlock");
        assert_eq!(json["result"], "succeeded");
        for absent in ["message", "cost_before_usd", "cost_after_usd", "compliance", "drifted"] {
            assert!(json.get(absent).is_none(), "{absent} is left out when unknown: {json}");
        }
        assert_eq!(serde_json::from_value::<AuditEntry>(json)?, e);
        assert_eq!(AuditCommand::ForceUnlock.to_string(), "force-unlock");
        assert_eq!(AuditResult::RolledBack.to_string(), "rolled-back");

        let empty = serde_json::to_value(StackState::empty("s"))?;
        assert!(empty.get("audit").is_none(), "an empty trail is not written");
        let old: StackState = serde_json::from_str(r#"{"version":1,"stack":"s","serial":3,"resources":{}}"#)?;
        assert!(old.audit.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn audit_entries_survive_compaction_and_a_crash_before_it() -> Result<(), StateError> {
        let dir = tmp()?;
        let a = entry("2026-01-01T10:00:00.000Z", AuditCommand::Apply, AuditResult::Succeeded);
        let b = entry("2026-01-01T10:01:00.000Z", AuditCommand::Destroy, AuditResult::Failed);
        {
            let backend = LocalBackend::new(dir.path());
            backend.append("s", &[audited(&a)]).await?;
            let mut st = backend.load("s").await?;
            st.serial += 1;
            backend.compact("s", &st).await?;
            assert_eq!(backend.load("s").await?.audit, vec![a.clone()], "compaction keeps the trail");
            // Appended, never compacted: the process dies here.
            backend.append("s", &[audited(&b)]).await?;
        }
        let reopened = LocalBackend::new(dir.path());
        let st = reopened.load("s").await?;
        assert_eq!(st.audit, vec![a.clone(), b.clone()], "the journal replays after a crash");
        assert_eq!(st.serial, 1);
        // Compacted by the next run, then the same journal replayed over it (a crash between
        // the snapshot rewrite and the journal removal): still one of each.
        let dir_s = dir.path().join("stacks").join("s");
        let journal = std::fs::read(dir_s.join("journal.jsonl"))
            .map_err(|e| StateError::Io { path: "journal".into(), source: e })?;
        reopened.compact("s", &st).await?;
        let snap =
            std::fs::read(dir_s.join("state.json")).map_err(|e| StateError::Io { path: "state".into(), source: e })?;
        let replayed = parse_state("s", Some(&snap), Some(&journal), "x")?;
        assert_eq!(replayed.audit, vec![a, b]);
        Ok(())
    }
}
