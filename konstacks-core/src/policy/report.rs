//! What a policy check reports: severities, findings, suppressions, and the [`PolicyReport`]
//! with its per-rule evidence, in human, JSON and Markdown form.

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use crate::kind::catalog::RegionInfo;
use crate::kind::Kind;
use crate::model::placement::{Jurisdiction, Stage};

/// Version of the JSON report format ([`PolicyReport`]); bumped on any incompatible change.
pub const REPORT_VERSION: u32 = 1;

/// Rule id of the finding raised for a suppression that has no written reason.
pub const SUPPRESSION_WITHOUT_REASON: &str = "policy/suppression-without-reason";

/// Rule id of the finding raised for a suppression naming a rule that none of the packs has.
pub const SUPPRESSION_UNKNOWN_RULE: &str = "policy/suppression-unknown-rule";

/// How serious a finding is. An error blocks `apply`; a warning is reported only.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Blocks `apply` unless suppressed.
    Error,
    /// Reported, never blocks.
    Warning,
}

impl Severity {
    /// Stable name (`error`, `warning`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule violation, as reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    /// Id of the rule.
    pub rule_id: String,
    /// Severity.
    pub severity: Severity,
    /// Full path of the resource (`shop/network/web-fw`), or the stack name.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}] {}: {}\n  fix: {}", self.severity, self.rule_id, self.path, self.message, self.fix)
    }
}

/// An accepted exception: findings of `rule_id` on resources matching `path` are not counted,
/// but stay in the report as suppressed, with the reason. A suppression without a written reason
/// is not applied and is itself reported as an error.
///
/// `rule_id` and `path` are patterns: `*` matches any characters except `/`, `**` matches any
/// characters including `/`, and a pattern ending in `/**` also matches the path before it.
/// `path` is matched against the full path (`shop/network/web-fw`) and against the path within
/// the stack (`network/web-fw`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// Rule id, or a pattern (`baseline/*`).
    pub rule_id: String,
    /// Resource path, or a pattern (`shop/legacy/**`).
    pub path: String,
    /// Why the exception is acceptable, who accepted it, until when. Required.
    #[serde(default)]
    pub reason: String,
}

impl Suppression {
    /// A suppression of `rule_id` on `path` because of `reason`.
    pub fn new(rule_id: impl Into<String>, path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { rule_id: rule_id.into(), path: path.into(), reason: reason.into() }
    }

    /// Whether it has a written reason.
    pub fn has_reason(&self) -> bool {
        !self.reason.trim().is_empty()
    }

    /// Whether it applies to a finding of `rule_id` at `full_path` (`stack/logical`).
    pub fn matches(&self, rule_id: &str, full_path: &str, logical_path: &str) -> bool {
        glob_match(&self.rule_id, rule_id)
            && (glob_match(&self.path, full_path) || (!logical_path.is_empty() && glob_match(&self.path, logical_path)))
    }
}

/// Match `text` against a pattern where `*` is any run of characters but `/`, `**` any run of
/// characters, and a trailing `/**` also matches the bare prefix.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix("/**") {
        if glob_match(prefix, text) {
            return true;
        }
    }
    glob_bytes(pattern.as_bytes(), text.as_bytes())
}

fn glob_bytes(p: &[u8], t: &[u8]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            let rest = &p[2..];
            (0..=t.len()).any(|i| glob_bytes(rest, &t[i..]))
        }
        Some(b'*') => {
            let rest = &p[1..];
            for i in 0..=t.len() {
                if glob_bytes(rest, &t[i..]) {
                    return true;
                }
                if t.get(i) == Some(&b'/') {
                    break;
                }
            }
            false
        }
        Some(c) => t.first() == Some(c) && glob_bytes(&p[1..], &t[1..]),
    }
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// Result of one resource under one rule.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    /// Satisfies the rule.
    Pass,
    /// Violates it, but every finding is suppressed with a reason.
    Suppressed,
    /// Violates it with a warning.
    Warn,
    /// Violates it with an error.
    Fail,
}

impl ResourceStatus {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceStatus::Pass => "pass",
            ResourceStatus::Suppressed => "suppressed",
            ResourceStatus::Warn => "warn",
            ResourceStatus::Fail => "fail",
        }
    }
}

/// Result of one rule over the whole stack.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    /// Every resource checked passed.
    Pass,
    /// The rule looked at no resource (nothing it applies to).
    NotApplicable,
    /// Failures exist, all suppressed with a reason.
    Suppressed,
    /// Failures with warnings only.
    Warn,
    /// At least one error.
    Fail,
}

impl RuleStatus {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Pass => "pass",
            RuleStatus::NotApplicable => "not applicable",
            RuleStatus::Suppressed => "pass (suppressed)",
            RuleStatus::Warn => "warn",
            RuleStatus::Fail => "fail",
        }
    }

    pub(crate) fn from_resources(resources: &[CheckedResource]) -> Self {
        match resources.iter().map(|r| r.status).max() {
            None => RuleStatus::NotApplicable,
            Some(ResourceStatus::Pass) => RuleStatus::Pass,
            Some(ResourceStatus::Suppressed) => RuleStatus::Suppressed,
            Some(ResourceStatus::Warn) => RuleStatus::Warn,
            Some(ResourceStatus::Fail) => RuleStatus::Fail,
        }
    }
}

/// One resource a rule looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedResource {
    /// Full path, or the stack name for a stack-level check.
    pub path: String,
    /// Kind; absent for the stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// Its result.
    pub status: ResourceStatus,
    /// What was observed, or what is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Evidence for one rule: what it requires, its result, and every resource it checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEvidence {
    /// Rule id.
    pub rule_id: String,
    /// What the rule requires.
    pub title: String,
    /// Its severity.
    pub severity: Severity,
    /// Packs that hold it.
    pub packs: Vec<String>,
    /// Result over the stack.
    pub status: RuleStatus,
    /// Resources checked, sorted by path.
    pub resources: Vec<CheckedResource>,
}

/// A finding that a suppression accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressedFinding {
    /// The finding.
    #[serde(flatten)]
    pub finding: Finding,
    /// The suppression's path pattern that matched.
    pub suppression: String,
    /// The suppression's reason.
    pub reason: String,
}

/// A suppression as declared, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressionReport {
    /// Rule id pattern.
    pub rule_id: String,
    /// Path pattern.
    pub path: String,
    /// The reason as written (empty when missing).
    pub reason: String,
    /// Whether it was applied (it has a reason).
    pub applied: bool,
    /// How many findings it suppressed (0: it may be stale).
    pub matched: usize,
}

/// A pack as listed in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackSummary {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Packs it includes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<String>,
}

/// Totals of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Unsuppressed errors.
    pub errors: usize,
    /// Unsuppressed warnings.
    pub warnings: usize,
    /// Suppressed findings.
    pub suppressed: usize,
    /// Rules checked.
    pub rules: usize,
    /// Rules whose status is `pass`.
    pub rules_passed: usize,
    /// Rules whose status is `fail`.
    pub rules_failed: usize,
    /// Distinct resources (and the stack) looked at by at least one rule.
    pub resources_checked: usize,
}

/// The result of a policy check: every finding at once, suppressed findings with their
/// reasons, and per-rule evidence. Plain serde data; its JSON is documented in `docs/policy.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// Format version ([`REPORT_VERSION`]).
    pub version: u32,
    /// Stack name.
    pub stack: String,
    /// Stage.
    pub stage: Stage,
    /// The stack's provider.
    pub provider: String,
    /// The stack's region.
    pub region: String,
    /// Location, country and jurisdiction of the region, from the provider's catalogue.
    pub region_info: Option<RegionInfo>,
    /// When the check was made (`YYYY-MM-DD`), given by the caller with
    /// [`PolicyReport::with_date`]: the engine reads no clock here.
    #[serde(default)]
    pub date: Option<String>,
    /// Packs checked, in order.
    pub packs: Vec<PackSummary>,
    /// Totals.
    pub counts: Counts,
    /// Unsuppressed findings: errors first, then by path.
    pub findings: Vec<Finding>,
    /// Suppressed findings, with the reasons.
    pub suppressed: Vec<SuppressedFinding>,
    /// Every suppression declared.
    pub suppressions: Vec<SuppressionReport>,
    /// Per rule: result and resources checked.
    pub rules: Vec<RuleEvidence>,
}

impl PolicyReport {
    /// Set the date the evidence is for (`YYYY-MM-DD`).
    pub fn with_date(mut self, date: impl Into<String>) -> Self {
        self.date = Some(date.into());
        self
    }

    /// Whether any unsuppressed error remains: `apply` must refuse the stack.
    pub fn has_errors(&self) -> bool {
        self.counts.errors > 0
    }

    /// Unsuppressed errors.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Error)
    }

    /// Unsuppressed warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Warning)
    }

    /// The evidence of one rule.
    pub fn rule(&self, id: &str) -> Option<&RuleEvidence> {
        self.rules.iter().find(|r| r.rule_id == id)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// One line: `2 errors, 1 warning, 1 suppressed; 7 rules: 4 passed, 1 not applicable, 2 failed`.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        format!(
            "{} {}, {} {}, {} suppressed; {} {}: {}",
            c.errors,
            plural(c.errors, "error", "errors"),
            c.warnings,
            plural(c.warnings, "warning", "warnings"),
            c.suppressed,
            c.rules,
            plural(c.rules, "rule", "rules"),
            self.rule_breakdown()
        )
    }

    /// `4 passed, 1 not applicable, 2 failed`: rules per status, statuses that occur only.
    fn rule_breakdown(&self) -> String {
        let statuses = [
            (RuleStatus::Pass, "passed"),
            (RuleStatus::Suppressed, "passed with suppressions"),
            (RuleStatus::NotApplicable, "not applicable"),
            (RuleStatus::Warn, "with warnings"),
            (RuleStatus::Fail, "failed"),
        ];
        let parts: Vec<String> = statuses
            .iter()
            .filter_map(|(s, label)| {
                let n = self.rules.iter().filter(|r| r.status == *s).count();
                (n > 0).then(|| format!("{n} {label}"))
            })
            .collect();
        if parts.is_empty() {
            "none checked".to_string()
        } else {
            parts.join(", ")
        }
    }

    fn where_line(&self) -> String {
        match &self.region_info {
            Some(r) => format!(
                "{} on {}, region {} ({}, {}, jurisdiction {})",
                self.stack, self.provider, self.region, r.location, r.country, r.jurisdiction
            ),
            None => format!("{} on {}, region {}", self.stack, self.provider, self.region),
        }
    }

    /// For a terminal: findings with their fixes, suppressed findings with their reasons, and
    /// the summary. `colour` adds ANSI colours.
    pub fn render_human(&self, colour: bool) -> String {
        let paint = |code: &str, s: &str| if colour { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() };
        let mut out = String::new();
        let packs: Vec<&str> = self.packs.iter().map(|p| p.name.as_str()).collect();
        let _ = writeln!(out, "Policy check of {}; packs: {}", self.where_line(), packs.join(", "));
        if self.findings.is_empty() && self.suppressed.is_empty() {
            let _ = writeln!(out, "\n{}", paint("32", "All rules passed."));
        }
        if !self.findings.is_empty() {
            out.push('\n');
        }
        for (f, paths) in group_findings(&self.findings) {
            let head = match f.severity {
                Severity::Error => paint("31", "error"),
                _ => paint("33", "warning"),
            };
            let _ = writeln!(out, "{head}[{}] {}: {}", f.rule_id, paths_label(&paths), f.message);
            let _ = writeln!(out, "  fix: {}", f.fix);
        }
        if !self.suppressed.is_empty() {
            out.push('\n');
        }
        for s in &self.suppressed {
            let f = &s.finding;
            let _ = writeln!(out, "{}[{}] {}: {}", paint("36", "suppressed"), f.rule_id, f.path, f.message);
            let _ = writeln!(out, "  reason: {}", s.reason);
        }
        let summary = self.summary();
        let summary = if self.has_errors() {
            paint("31", &summary)
        } else if self.counts.warnings > 0 {
            paint("33", &summary)
        } else {
            paint("32", &summary)
        };
        let _ = writeln!(out, "\n{summary}");
        out
    }

    /// The evidence report as Markdown, for an auditor or investor: where the stack runs, the
    /// packs, a per-rule table, findings, suppressions with reasons, and every resource checked
    /// per rule.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let c = &self.counts;
        let _ = writeln!(out, "# Compliance evidence: `{}`\n", self.stack);
        let _ = writeln!(out, "| | |\n|---|---|");
        let _ = writeln!(out, "| Stack | `{}` (stage {}) |", self.stack, self.stage.as_str());
        let _ = writeln!(out, "| Provider | `{}` |", self.provider);
        match &self.region_info {
            Some(r) => {
                let _ = writeln!(out, "| Region | `{}`: {}, {} |", self.region, md(&r.location), r.country);
                let _ = writeln!(out, "| Jurisdiction | {} |", jurisdiction_label(r.jurisdiction));
            }
            None => {
                let _ = writeln!(out, "| Region | `{}` (not in the provider's catalogue) |", self.region);
            }
        }
        let _ = writeln!(out, "| Date | {} |", self.date.as_deref().unwrap_or("(not given)"));
        let packs: Vec<String> = self.packs.iter().map(|p| format!("`{}`", p.name)).collect();
        let _ = writeln!(out, "| Packs | {} |", packs.join(", "));
        let verdict = if self.has_errors() { "**FAIL**" } else { "**PASS**" };
        let _ = writeln!(
            out,
            "| Result | {verdict}: {} {} ({}); {} {}, {} {}, {} suppressed |",
            c.rules,
            plural(c.rules, "rule", "rules"),
            self.rule_breakdown(),
            c.errors,
            plural(c.errors, "error", "errors"),
            c.warnings,
            plural(c.warnings, "warning", "warnings"),
            c.suppressed
        );
        let _ = writeln!(out, "| Report format | konstacks policy report v{} |", self.version);

        let _ = writeln!(out, "\n## Packs\n");
        for p in &self.packs {
            let inc = if p.includes.is_empty() {
                String::new()
            } else {
                format!(" (includes {})", p.includes.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", "))
            };
            let _ = writeln!(out, "- `{}`: {}{inc}", p.name, md(&p.description));
        }

        let _ = writeln!(out, "\n## Rules\n");
        let _ = writeln!(out, "| Rule | Requirement | Severity | Result | Resources checked |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for r in &self.rules {
            let failing = r.resources.iter().filter(|x| x.status != ResourceStatus::Pass).count();
            let checked = if failing > 0 {
                format!("{} ({failing} not passing)", r.resources.len())
            } else {
                r.resources.len().to_string()
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {checked} |",
                r.rule_id,
                md(&r.title),
                r.severity,
                r.status.as_str()
            );
        }

        let _ = writeln!(out, "\n## Findings\n");
        if self.findings.is_empty() {
            let _ = writeln!(out, "None.");
        }
        for (f, paths) in group_findings(&self.findings) {
            let on: Vec<String> = paths.iter().map(|p| format!("`{p}`")).collect();
            let _ = writeln!(out, "- **{}** `{}` on {}: {}", f.severity, f.rule_id, on.join(", "), md(&f.message));
            let _ = writeln!(out, "  - Fix: {}", md(&f.fix));
        }

        let _ = writeln!(out, "\n## Suppressions\n");
        if self.suppressions.is_empty() {
            let _ = writeln!(out, "None.");
        } else {
            let _ = writeln!(out, "| Rule | Path | Reason | Applied | Findings suppressed |");
            let _ = writeln!(out, "|---|---|---|---|---|");
            for s in &self.suppressions {
                let reason = if s.reason.trim().is_empty() { "(no reason written)".to_string() } else { md(&s.reason) };
                let _ = writeln!(
                    out,
                    "| `{}` | `{}` | {reason} | {} | {} |",
                    s.rule_id,
                    s.path,
                    if s.applied { "yes" } else { "no" },
                    s.matched
                );
            }
            for s in &self.suppressed {
                let f = &s.finding;
                let _ = writeln!(out, "\n- Suppressed `{}` on `{}`: {}", f.rule_id, f.path, md(&f.message));
                let _ = writeln!(out, "  - Reason: {}", md(&s.reason));
            }
        }

        let _ = writeln!(out, "\n## Resources checked per rule");
        for r in &self.rules {
            let _ = writeln!(out, "\n### `{}`: {}\n", r.rule_id, md(&r.title));
            if r.resources.is_empty() {
                let _ = writeln!(out, "No resource of the stack is subject to this rule.");
                continue;
            }
            let _ = writeln!(out, "| Resource | Kind | Result | Observed |\n|---|---|---|---|");
            for x in &r.resources {
                let kind = x.kind.map(|k| k.as_str()).unwrap_or("stack");
                let detail = x.detail.as_deref().map(md).unwrap_or_default();
                let _ = writeln!(out, "| `{}` | {kind} | {} | {detail} |", x.path, x.status.as_str());
            }
        }
        out
    }
}

impl fmt::Display for PolicyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render_human(false))
    }
}

/// Findings that differ only by path (a residency rule failing on every resource), grouped in
/// order of first appearance, so human readers see one entry per problem.
fn group_findings(findings: &[Finding]) -> Vec<(&Finding, Vec<&str>)> {
    let mut groups: Vec<(&Finding, Vec<&str>)> = Vec::new();
    for f in findings {
        let same = |g: &Finding| {
            g.severity == f.severity && g.rule_id == f.rule_id && g.message == f.message && g.fix == f.fix
        };
        match groups.iter_mut().find(|(g, _)| same(g)) {
            Some((_, paths)) => paths.push(&f.path),
            None => groups.push((f, vec![&f.path])),
        }
    }
    groups
}

/// `a`, or `a, b and 3 more (5 resources)` for long lists.
pub(crate) fn paths_label(paths: &[&str]) -> String {
    const SHOWN: usize = 4;
    match paths.len() {
        0 | 1 => paths.first().copied().unwrap_or_default().to_string(),
        n if n <= SHOWN => paths.join(", "),
        n => format!("{} and {} more ({n} resources)", paths[..SHOWN].join(", "), n - SHOWN),
    }
}

fn plural<'s>(n: usize, one: &'s str, many: &'s str) -> &'s str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Escape what would break a Markdown table cell.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A readable name of a jurisdiction for reports.
pub fn jurisdiction_label(j: Jurisdiction) -> String {
    let name = match j {
        Jurisdiction::Eu => "EU/EEA (GDPR)",
        Jurisdiction::Uk => "United Kingdom (UK GDPR)",
        Jurisdiction::Switzerland => "Switzerland (FADP)",
        Jurisdiction::SouthAfrica => "South Africa (POPIA)",
        Jurisdiction::Nigeria => "Nigeria (NDPA)",
        Jurisdiction::Kenya => "Kenya (DPA)",
        Jurisdiction::India => "India (DPDP)",
        Jurisdiction::Singapore => "Singapore (PDPA)",
        Jurisdiction::Japan => "Japan (APPI)",
        Jurisdiction::SouthKorea => "South Korea (PIPA)",
        Jurisdiction::Indonesia => "Indonesia (PDP)",
        Jurisdiction::Brazil => "Brazil (LGPD)",
        Jurisdiction::Qatar => "Qatar (PDPPL)",
        Jurisdiction::SaudiArabia => "Saudi Arabia (PDPL)",
        Jurisdiction::Taiwan => "Taiwan (PDPA)",
        Jurisdiction::Mexico => "Mexico (LFPDPPP)",
        Jurisdiction::Canada => "Canada (PIPEDA)",
        Jurisdiction::Us => "United States",
        other => return other.as_str().to_string(),
    };
    format!("{name} [`{}`]", j.as_str())
}
