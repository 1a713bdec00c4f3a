//! A plan as a compact Markdown summary for a pull-request comment: counts, cost delta,
//! compliance verdict, data-loss and placement warnings, then the changes in a table and their
//! fields folded away. Secrets never appear: sensitive fields show as `(sensitive)` whatever
//! the plan holds.

use std::fmt::Write as _;

use serde_json::Value;

use super::{release, safety, Action, Plan, ResourceChange};

/// The first line of every rendered comment: a workflow finds its earlier comment by it and
/// edits that one instead of posting another.
pub fn comment_marker(stack: &str) -> String {
    format!("<!-- konstacks-plan:{} -->", stack.replace("--", "-"))
}

/// Changes listed in the table before the rest is counted only (a pull-request comment is
/// limited to 65,536 characters).
const MAX_ROWS: usize = 60;
/// Field changes listed in the folded details.
const MAX_FIELDS: usize = 200;
/// Longest value shown; longer ones are cut.
const MAX_VALUE: usize = 80;

impl Plan {
    /// The plan as Markdown for a pull-request comment (see the module docs).
    pub fn render_markdown(&self) -> String {
        let mut out = comment_marker(&self.stack);
        out.push('\n');
        let region = self.region.as_ref().map(|r| format!(" in {}", text(r))).unwrap_or_default();
        let stage = self.stage.map(|s| format!(" ({})", s.as_str())).unwrap_or_default();
        let _ = writeln!(out, "### Konstacks plan: {}{stage}{region}\n", code(&self.stack));
        let _ = writeln!(out, "{}\n", self.headline());
        self.warnings(&mut out);
        if self.is_empty() {
            out.push_str("No changes. The infrastructure matches the stack.\n");
        } else {
            self.table(&mut out);
            self.details(&mut out);
        }
        self.findings(&mut out);
        out
    }

    /// Counts, cost and verdict on one line.
    fn headline(&self) -> String {
        let s = self.summary;
        let mut parts = vec![format!(
            "**{} to create, {} to update, {} to replace, {} to delete**",
            s.create, s.update, s.replace, s.delete
        )];
        if let Some(c) = &self.cost {
            let sign = if c.delta_usd >= 0.0 { "+" } else { "-" };
            let unpriced =
                if c.unpriced.is_empty() { String::new() } else { format!(", {} unpriced", c.unpriced.len()) };
            parts.push(format!(
                "monthly cost ${:.2} → ${:.2} (**{sign}${:.2}**{unpriced})",
                c.before_usd,
                c.after_usd,
                c.delta_usd.abs()
            ));
        }
        if let Some(p) = &self.policy {
            let verdict = match (p.errors, p.warnings) {
                (0, 0) => "passes".to_string(),
                (0, w) => format!("passes with {w} warning(s)"),
                (e, w) => format!("**fails: {e} error(s)**, {w} warning(s); apply is refused"),
            };
            parts.push(format!("compliance ({}) {verdict}", text(&p.packs.join(", "))));
        }
        parts.join(" · ")
    }

    /// Data loss, protection, placement moves, untracked resources and releases, as alerts.
    fn warnings(&self, out: &mut String) {
        let mut caution = Vec::new();
        let lost: Vec<String> = safety::data_losses(self).map(|c| format!("{} ({})", code(&c.path), c.kind)).collect();
        if !lost.is_empty() {
            caution.push(format!(
                "**Data loss:** {} resource(s) holding data are deleted: {}. Apply refuses unless given \
                 `--allow-data-loss PATH` for each.",
                lost.len(),
                lost.join(", ")
            ));
        }
        let protected: Vec<String> =
            self.changes.iter().filter(|c| c.deletion_protected).map(|c| code(&c.path)).collect();
        if !protected.is_empty() {
            caution.push(format!(
                "**Deletion protection** is on for {}; apply refuses unless given `--disable-deletion-protection`.",
                protected.join(", ")
            ));
        }
        if let Some(m) = &self.placement_change {
            caution.push(format!(
                "**Placement change:** the stack moves from {} to {}; every resource is replaced there.",
                text(&m.from.to_string()),
                text(&m.to.to_string())
            ));
        }
        if !self.untracked.is_empty() {
            caution.push(format!(
                "**Untracked resources:** the cloud holds {} resource(s) tagged for this stack that its state \
                 does not know.",
                self.untracked.len()
            ));
        }
        if !caution.is_empty() {
            let _ = writeln!(out, "> [!CAUTION]\n> {}\n", caution.join("\n>\n> "));
        }
        if !self.releases.is_empty() {
            let mut text_out = String::new();
            release::render(self, &mut text_out);
            out.push_str("> [!NOTE]\n");
            for line in text_out.lines().filter(|l| !l.trim().is_empty()) {
                let _ = writeln!(out, "> {}", text(line.trim()));
            }
            out.push('\n');
        }
    }

    /// One row per change that does something.
    fn table(&self, out: &mut String) {
        out.push_str("| | Resource | Kind | Change | Monthly cost |\n|---|---|---|---|---|\n");
        let changes: Vec<&ResourceChange> = self.actionable().collect();
        for c in changes.iter().take(MAX_ROWS) {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                c.action.symbol(),
                code(&c.path),
                c.kind,
                self.verb(c),
                self.cost_cell(c)
            );
        }
        if changes.len() > MAX_ROWS {
            let _ = writeln!(out, "\n…and {} more change(s); `konstacks plan` shows all.", changes.len() - MAX_ROWS);
        }
        out.push('\n');
    }

    fn verb(&self, c: &ResourceChange) -> String {
        let mut verb = match c.action {
            Action::Create => "create".to_string(),
            Action::Update => "update in place".to_string(),
            Action::Replace if release::of(self, &c.path).is_some() => "release".to_string(),
            Action::Replace if c.create_before_destroy => "replace (create before destroy)".to_string(),
            Action::Replace => "replace (destroy before create)".to_string(),
            Action::Delete if c.deposed => "delete old instance".to_string(),
            Action::Delete => "delete".to_string(),
            Action::NoOp => "none".to_string(),
        };
        if !c.replace_reasons.is_empty() {
            let _ = write!(
                verb,
                ", forced by {}",
                c.replace_reasons.iter().map(|r| code(r)).collect::<Vec<_>>().join(", ")
            );
        }
        if let Some(m) = &c.moved_from {
            let _ = write!(verb, ", moved from {}", code(m));
        }
        if c.data_loss {
            verb.push_str(" ⚠️ **data loss**");
        }
        verb
    }

    fn cost_cell(&self, c: &ResourceChange) -> String {
        let Some(d) =
            self.cost.as_ref().and_then(|k| k.changes.iter().find(|d| d.path == c.path && d.deposed == c.deposed))
        else {
            return String::new();
        };
        let money = |v: Option<f64>| v.map(|x| format!("${x:.2}")).unwrap_or_else(|| "unpriced".into());
        if d.before_usd == d.after_usd {
            money(d.after_usd)
        } else {
            format!("{} → {}", money(d.before_usd), money(d.after_usd))
        }
    }

    /// The field changes, folded.
    fn details(&self, out: &mut String) {
        let total: usize = self.actionable().map(|c| c.fields.len()).sum();
        if total == 0 {
            return;
        }
        let _ = writeln!(out, "<details><summary>Field changes ({total})</summary>\n");
        let mut shown = 0;
        for c in self.actionable().filter(|c| !c.fields.is_empty()) {
            if shown >= MAX_FIELDS {
                break;
            }
            let _ = writeln!(out, "- {} {}", code(&c.path), c.action.symbol().trim());
            for f in &c.fields {
                if shown >= MAX_FIELDS {
                    break;
                }
                shown += 1;
                let after = if f.sensitive {
                    "(sensitive)".to_string()
                } else if f.after_unknown {
                    "(known after apply)".to_string()
                } else {
                    value(f.after.as_ref())
                };
                let forced = if f.forces_replacement { " _(forces replacement)_" } else { "" };
                match &f.before {
                    None => {
                        let _ = writeln!(out, "  - {} = {after}", code(&f.name));
                    }
                    Some(b) => {
                        let before = if f.sensitive { "(sensitive)".to_string() } else { value(Some(b)) };
                        let _ = writeln!(out, "  - {}: {before} → {after}{forced}", code(&f.name));
                    }
                }
            }
        }
        if shown < total {
            let _ = writeln!(out, "- …and {} more field change(s)", total - shown);
        }
        out.push_str("\n</details>\n\n");
    }

    /// Compliance findings, errors first.
    fn findings(&self, out: &mut String) {
        let Some(p) = &self.policy else { return };
        if p.findings.is_empty() {
            return;
        }
        let mut findings: Vec<_> = p.findings.iter().collect();
        findings.sort_by_key(|f| !matches!(f.severity, crate::policy::Severity::Error));
        let _ = writeln!(out, "<details><summary>Compliance findings ({})</summary>\n", findings.len());
        for f in findings {
            let sev = match f.severity {
                crate::policy::Severity::Error => "❌ error",
                _ => "⚠️ warning",
            };
            let _ = writeln!(
                out,
                "- {sev} {} at {}: {} Fix: {}",
                code(&f.rule_id),
                code(&f.path),
                text(&f.message),
                text(&f.fix)
            );
        }
        out.push_str("\n</details>\n");
    }
}

/// Inline code that cannot be broken out of: backticks and line breaks are replaced, table
/// pipes escaped.
fn code(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c == '`' {
                '\''
            } else if c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    format!("`{}`", clean.replace('|', "\\|"))
}

/// Plain text that cannot open HTML or break a table row.
fn text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '|' => "\\|".to_string(),
            c if c.is_control() => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A value shown in code, cut when long.
fn value(v: Option<&Value>) -> String {
    let s = match v {
        None => "null".to_string(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    };
    if s.chars().count() > MAX_VALUE {
        let cut: String = s.chars().take(MAX_VALUE).collect();
        code(&format!("{cut}…"))
    } else {
        code(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_cannot_be_broken_out_of() {
        assert_eq!(code("a`b|c\nd"), "`a'b\\|c d`");
        assert_eq!(text("<script>|"), "&lt;script&gt;\\|");
    }

    #[test]
    fn long_values_are_cut() {
        let long = Value::String("x".repeat(500));
        assert!(value(Some(&long)).chars().count() < MAX_VALUE + 8);
    }
}
