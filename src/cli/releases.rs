//! `releases` (the release history of a stack) and `rollback` (a new release of an earlier
//! version, from the parameters recorded with it).

use konstacks_core::engine::{ApplyOptions, FailurePolicy};
use konstacks_core::state::{ReleaseRecord, ReleaseResult};
use serde_json::{json, Value};

use super::commands::{Ctx, Failure};
use super::Exit;

/// A version a rollback can go back to, and the source (parameters) it was built from.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Target {
    pub(super) version: String,
    pub(super) source: Value,
    /// When that version was released (or first applied).
    pub(super) at: String,
}

/// Where a rollback goes: the newest version with recorded parameters that served well — a
/// succeeded release's new version, or the version a release started from — other than the one
/// serving now, or the version `to`.
pub(super) fn rollback_target(history: &[ReleaseRecord], to: Option<&str>) -> Result<Target, String> {
    let serving =
        history.iter().rev().find(|r| r.result == ReleaseResult::Succeeded).and_then(|r| r.to_version.as_deref());
    let mut known: Vec<Target> = Vec::new();
    for r in history {
        if let (Some(v), Some(s)) = (&r.from_version, &r.from_source) {
            known.push(Target { version: v.clone(), source: s.clone(), at: r.at.clone() });
        }
        if let (ReleaseResult::Succeeded, Some(v), Some(s)) = (r.result, &r.to_version, &r.source) {
            known.push(Target { version: v.clone(), source: s.clone(), at: r.at.clone() });
        }
    }
    let wanted = |t: &&Target| match to {
        Some(v) => t.version == v,
        None => Some(t.version.as_str()) != serving,
    };
    known.iter().rev().find(wanted).cloned().ok_or_else(|| match to {
        Some(v) => format!(
            "no version `{v}` that served with recorded parameters in this stack's history; `releases` lists them"
        ),
        None => "no earlier version with recorded parameters to roll back to; `releases` lists the history".into(),
    })
}

impl Ctx<'_> {
    /// Print the release history.
    pub(super) fn releases(&self) -> Result<Exit, Failure> {
        let history = self.rt.block_on(self.engine.releases(&self.name()))?;
        if self.ui.json {
            let list: Vec<Value> = history
                .iter()
                .map(|r| {
                    json!({
                        "at": r.at, "by": r.by, "front": r.front, "group": r.group, "targets": r.targets,
                        "from_version": r.from_version, "to_version": r.to_version, "result": r.result,
                        "duration_ms": r.duration_ms,
                    })
                })
                .collect();
            self.ui.json_doc(&list);
            return Ok(Exit::Success);
        }
        if history.is_empty() {
            self.ui.err(&format!("Stack {} has no releases yet.", self.name()));
            return Ok(Exit::Success);
        }
        let mut out =
            format!("{:<20}  {:<12}  {:<12}  {:<11}  {:>8}  {}\n", "WHEN", "FROM", "TO", "RESULT", "SECONDS", "WHO");
        for r in &history {
            let result = match r.result {
                ReleaseResult::Succeeded => "succeeded",
                ReleaseResult::RolledBack => "rolled back",
                _ => "failed",
            };
            out.push_str(&format!(
                "{:<20}  {:<12}  {:<12}  {:<11}  {:>8.1}  {} ({} target(s) of {})\n",
                r.at,
                r.from_version.as_deref().unwrap_or("-"),
                r.to_version.as_deref().unwrap_or("-"),
                result,
                r.duration_ms as f64 / 1000.0,
                r.by,
                r.targets.len(),
                r.front
            ));
        }
        self.ui.out(out.trim_end());
        Ok(Exit::Success)
    }

    /// Apply the stack built from `params` (an earlier release's) as a new release.
    pub(super) fn apply_source(&self, yes: bool, source: Value) -> Result<Exit, Failure> {
        let s = self.engine.synth(&self.stack)?;
        self.check_lock(&s.name)?;
        let plan = self.rt.block_on(self.engine.plan(&s, &Default::default()))?;
        self.show_plan(&plan);
        if plan.is_empty() {
            return Ok(Exit::Success);
        }
        if !yes {
            super::commands::confirm(self.ui, &format!("Do you want to roll stack {} back?", s.name), "rollback")?;
        }
        let opts = ApplyOptions {
            on_failure: FailurePolicy::FinishInFlight,
            expected: Some(plan),
            source: Some(source),
            ..Default::default()
        };
        let result = self.drive(self.engine.apply(&s, &opts));
        self.finish_run(result, "Rollback")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(from: &str, to: &str, result: ReleaseResult, params: bool) -> ReleaseRecord {
        ReleaseRecord {
            at: "2026-12-05T12:00:00Z".into(),
            by: "me".into(),
            front: "app/lb".into(),
            group: "app".into(),
            targets: vec!["app/web-1".into()],
            from_version: Some(from.into()),
            to_version: Some(to.into()),
            result,
            duration_ms: 1,
            source: params.then(|| json!({"params": {"app_version": to}})),
            from_source: params.then(|| json!({"params": {"app_version": from}})),
        }
    }

    #[test]
    fn rollback_goes_to_the_last_good_other_version_or_the_one_named() {
        let h = vec![
            rec("0", "1", ReleaseResult::Succeeded, true),
            rec("1", "2", ReleaseResult::Succeeded, true),
            rec("2", "3", ReleaseResult::RolledBack, true),
        ];
        let version = |r: Result<Target, String>| r.map(|t| t.version);
        assert_eq!(version(rollback_target(&h, None)), Ok("1".into()), "2 serves; 1 served before it");
        assert_eq!(version(rollback_target(&h, Some("0"))), Ok("0".into()), "the version before the first release");
        assert!(rollback_target(&h, Some("3")).is_err(), "a rolled-back version is no target");
        assert_eq!(version(rollback_target(&h[..1], None)), Ok("0".into()));
        let unrecorded = vec![rec("0", "1", ReleaseResult::Succeeded, false)];
        assert!(rollback_target(&unrecorded, None).is_err(), "nothing recorded, nothing to go back to");
    }
}
