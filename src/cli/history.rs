//! `history`: the stack's audit trail (every apply, destroy, import, refresh, force-unlock,
//! release and drift check, as recorded in its state), as a table or, with `--json`, the entries
//! themselves. Reads state only; never takes the lock.

use konstacks_core::kind::price::usd;
use konstacks_core::state::AuditEntry;

use super::commands::{Ctx, Failure};
use super::Exit;

const HEADERS: [&str; 7] = ["AT", "ACTOR", "COMMAND", "RESULT", "DURATION", "COST", "SUMMARY"];

/// `12 ms`, `3.4 s`, `2 min 5 s`.
fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// `$0.00 -> $18.50` (monthly), or `-` when the command priced nothing.
fn cost(e: &AuditEntry) -> String {
    match (e.cost_before_usd, e.cost_after_usd) {
        (None, None) => "-".into(),
        (before, after) => {
            let side = |v: Option<f64>| v.map(|v| format!("${}", usd(v))).unwrap_or_else(|| "?".into());
            format!("{} -> {}", side(before), side(after))
        }
    }
}

/// The summary, with the error of a command that did not succeed.
fn summary(e: &AuditEntry) -> String {
    match &e.message {
        Some(m) => format!("{}; {m}", e.summary),
        None => e.summary.clone(),
    }
}

/// The trail as an aligned table, oldest first (the newest on the last line).
pub(super) fn render(entries: &[AuditEntry]) -> String {
    let rows: Vec<[String; 7]> = entries
        .iter()
        .map(|e| {
            [
                e.at.clone(),
                e.actor.clone(),
                e.command.to_string(),
                e.result.to_string(),
                duration(e.duration_ms),
                cost(e),
                summary(e),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else if i == 4 {
                // Durations read best right-aligned.
                out.push_str(&format!("{cell:>width$}  ", width = widths[i]));
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(HEADERS);
    for row in &rows {
        out.push('\n');
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

impl Ctx<'_> {
    /// Print the stack's audit trail.
    pub(super) fn history(&self) -> Result<Exit, Failure> {
        let entries = self.rt.block_on(self.engine.history(&self.name()))?;
        if self.ui.json {
            self.ui.json_doc(&entries);
        } else if entries.is_empty() {
            self.ui.out(&format!(
                "Stack {} has no history yet: apply, destroy, import, refresh, force-unlock and drift are recorded here.",
                self.name()
            ));
        } else {
            self.ui.out(&render(&entries));
        }
        Ok(Exit::Success)
    }
}

#[cfg(test)]
mod tests {
    use konstacks_core::state::{AuditCommand, AuditResult};

    use super::*;

    fn entry(command: AuditCommand, result: AuditResult, duration_ms: u64) -> AuditEntry {
        AuditEntry {
            at: "2026-12-05T12:00:00.000Z".into(),
            actor: "ana@build".into(),
            command,
            summary: "3 created, 0 updated, 0 replaced, 0 deleted".into(),
            result,
            message: None,
            duration_ms,
            cost_before_usd: Some(0.0),
            cost_after_usd: Some(18.5),
            compliance: None,
            drifted: None,
        }
    }

    #[test]
    fn the_table_is_aligned_oldest_first_with_costs_and_errors() {
        let mut failed = entry(AuditCommand::ForceUnlock, AuditResult::Failed, 65_000);
        failed.actor = "dashboard:ops".into();
        failed.cost_before_usd = None;
        failed.cost_after_usd = None;
        failed.message = Some("the lock is gone".into());
        let text = render(&[entry(AuditCommand::Apply, AuditResult::Succeeded, 1_234), failed]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("AT ") && lines[0].ends_with("SUMMARY"), "{text}");
        assert!(lines[1].contains("apply") && lines[1].contains("succeeded") && lines[1].contains("1.2 s"), "{text}");
        assert!(lines[1].contains("$0.00 -> $18.50"), "{text}");
        assert!(lines[2].contains("force-unlock") && lines[2].contains("1 min 5 s"), "{text}");
        assert!(lines[2].ends_with("0 deleted; the lock is gone"), "{text}");
        let col = |l: &str| l.find("COMMAND").or_else(|| l.find("apply")).or_else(|| l.find("force-unlock"));
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[1]), col(lines[2]), "columns line up:\n{text}");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12), "12 ms");
        assert_eq!(duration(3_400), "3.4 s");
        assert_eq!(duration(125_000), "2 min 5 s");
    }
}
