//! Policy as code: rules that check a synthesized stack before anything is applied, packs of
//! rules, suppressions with a written reason, and the reports (human, JSON, Markdown evidence).
//!
//! This module owns the engine only: the [`Rule`] trait, [`Pack`], [`PolicySet`], the
//! [`PolicyContext`] rules read the stack through, and [`PolicyReport`]. It holds no rule
//! content: the built-in packs (`baseline`, `gdpr`, `hardened`, ...) live in
//! `konstacks-templates::packs`, and users write their own rules the same way.
//!
//! A policy check reads only the [`Synthesized`] stack and the providers' [`Catalog`]s: it makes
//! no cloud call, so it runs in `synth` and `plan` and can block `apply` before anything changes.
//!
//! ```no_run
//! use std::sync::Arc;
//! use konstacks_core::model::{Placement, Jurisdiction, Stack, Stage, Vm};
//! use konstacks_core::policy::{Pack, PolicyContext, PolicySet, Rule, RuleOutcome, Severity, Suppression};
//! use konstacks_core::sim::SimCloud;
//!
//! /// Every VM must carry an `owner` tag.
//! struct OwnerTag;
//! impl Rule for OwnerTag {
//!     fn id(&self) -> &str { "acme/owner-tag" }
//!     fn severity(&self) -> Severity { Severity::Warning }
//!     fn title(&self) -> &str { "VMs carry an owner tag" }
//!     fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
//!         cx.of::<Vm>()
//!             .map(|vm| match vm.tag("owner") {
//!                 Some(_) => RuleOutcome::pass(vm),
//!                 None => RuleOutcome::fail(vm, "the VM has no `owner` tag", "add `stack.tag(\"owner\", \"team\")`"),
//!             })
//!             .collect()
//!     }
//! }
//!
//! let stack = Stack::new("shop", Placement::within(Jurisdiction::Eu), Stage::Prod);
//! let synth = stack.synth(&[&SimCloud::catalog()]).unwrap();
//! let policy = PolicySet::new()
//!     .pack(Pack::new("acme", "ACME house rules").rule(OwnerTag))
//!     .suppress(Suppression::new("acme/owner-tag", "shop/legacy/*", "legacy VMs are retired in Q3"));
//! let report = policy.check(&synth, &[&SimCloud::catalog()]);
//! println!("{}", report.render_human(false));
//! assert!(!report.has_errors());
//! ```

pub mod report;
pub mod view;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::kind::catalog::Catalog;
use crate::kind::Kind;
use crate::synth::Synthesized;

pub use crate::policy::report::*;
pub use crate::policy::view::*;

// ---------------------------------------------------------------------------------------------
// Rules, outcomes and findings
// ---------------------------------------------------------------------------------------------

/// One policy rule. Rules are pure functions of the synthesized stack and the catalogues: no
/// I/O, no clock, so the same stack always yields the same report.
///
/// A rule reports one [`RuleOutcome`] per resource it looked at (pass or fail), so the evidence
/// report can list what was checked, not only what failed. A rule that looks at nothing (no
/// database in the stack) is reported as not applicable.
pub trait Rule: Send + Sync {
    /// Stable, unique id, `<pack>/<name>` by convention (`baseline/database-encrypted`).
    /// Suppressions and reports refer to it; never reuse an id for a different check.
    fn id(&self) -> &str;
    /// Severity of its findings (an outcome may lower or raise it, see
    /// [`RuleOutcome::with_severity`]).
    fn severity(&self) -> Severity;
    /// One line saying what the rule requires ("Databases are encrypted at rest").
    fn title(&self) -> &str;
    /// Check the stack.
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome>;
}

/// Whether a resource passed a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RuleVerdict {
    /// The resource satisfies the rule.
    Pass,
    /// The resource violates the rule.
    Fail {
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
        /// Overrides the rule's severity for this finding.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        severity: Option<Severity>,
    },
}

/// What a rule found about one resource (or about the stack as a whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleOutcome {
    /// Logical path of the resource within the stack (`network/web-fw`); empty for the stack.
    pub path: String,
    /// Kind of the resource; `None` for the stack.
    pub kind: Option<Kind>,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: RuleVerdict,
    /// What was observed (`retention 14 days`, `eu-central (Frankfurt, DE)`), shown in the
    /// evidence report so a pass says why it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl RuleOutcome {
    /// The resource passed.
    pub fn pass(r: ResourceView<'_>) -> Self {
        Self { path: r.path.clone(), kind: Some(r.kind), verdict: RuleVerdict::Pass, detail: None }
    }

    /// The resource failed: `message` says what is wrong, `fix` how to fix it.
    pub fn fail(r: ResourceView<'_>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            path: r.path.clone(),
            kind: Some(r.kind),
            verdict: RuleVerdict::Fail { message: message.into(), fix: fix.into(), severity: None },
            detail: None,
        }
    }

    /// The stack as a whole passed (for rules about the stack, not a resource).
    pub fn stack_pass() -> Self {
        Self { path: String::new(), kind: None, verdict: RuleVerdict::Pass, detail: None }
    }

    /// The stack as a whole failed.
    pub fn stack_fail(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            path: String::new(),
            kind: None,
            verdict: RuleVerdict::Fail { message: message.into(), fix: fix.into(), severity: None },
            detail: None,
        }
    }

    /// Report this failure with another severity than the rule's (a rule that is an error in
    /// prod and a warning in dev). No effect on a pass.
    pub fn with_severity(mut self, s: Severity) -> Self {
        if let RuleVerdict::Fail { severity, .. } = &mut self.verdict {
            *severity = Some(s);
        }
        self
    }

    /// Record what was observed; the evidence report shows it next to the resource.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Whether the outcome is a pass.
    pub fn is_pass(&self) -> bool {
        matches!(self.verdict, RuleVerdict::Pass)
    }
}

// ---------------------------------------------------------------------------------------------
// Packs and policy sets
// ---------------------------------------------------------------------------------------------

/// A named set of rules. Packs compose: [`Pack::include`] adds another pack's rules (a rule id
/// present twice is checked once).
#[derive(Clone)]
pub struct Pack {
    /// Stable name (`gdpr`).
    pub name: String,
    /// One line saying what the pack is for.
    pub description: String,
    /// Names of the packs included into this one, in order.
    pub includes: Vec<String>,
    /// The rules, own and included.
    pub rules: Vec<Arc<dyn Rule>>,
}

impl fmt::Debug for Pack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pack")
            .field("name", &self.name)
            .field("includes", &self.includes)
            .field("rules", &self.rules.iter().map(|r| r.id().to_string()).collect::<Vec<_>>())
            .finish()
    }
}

impl Pack {
    /// An empty pack.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self { name: name.into(), description: description.into(), includes: Vec::new(), rules: Vec::new() }
    }

    /// Add a rule.
    pub fn rule(self, rule: impl Rule + 'static) -> Self {
        self.rule_arc(Arc::new(rule))
    }

    /// Add a shared rule. A rule whose id is already in the pack is ignored.
    pub fn rule_arc(mut self, rule: Arc<dyn Rule>) -> Self {
        if !self.rules.iter().any(|r| r.id() == rule.id()) {
            self.rules.push(rule);
        }
        self
    }

    /// Add every rule of `other` (and remember that it was included).
    pub fn include(mut self, other: Pack) -> Self {
        self.includes.push(other.name.clone());
        for i in other.includes {
            if !self.includes.contains(&i) {
                self.includes.push(i);
            }
        }
        for r in other.rules {
            self = self.rule_arc(r);
        }
        self
    }

    /// Ids of the rules, in order.
    pub fn rule_ids(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.id()).collect()
    }
}

/// The packs and suppressions that apply to a stack.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    packs: Vec<Pack>,
    suppressions: Vec<Suppression>,
}

impl PolicySet {
    /// No packs, no suppressions (a check passes trivially).
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a pack.
    pub fn pack(mut self, pack: Pack) -> Self {
        self.packs.push(pack);
        self
    }

    /// Add a suppression.
    pub fn suppress(mut self, s: Suppression) -> Self {
        self.suppressions.push(s);
        self
    }

    /// Add several suppressions (as loaded from a file).
    pub fn suppressions(mut self, s: impl IntoIterator<Item = Suppression>) -> Self {
        self.suppressions.extend(s);
        self
    }

    /// The packs.
    pub fn packs(&self) -> &[Pack] {
        &self.packs
    }

    /// Whether no pack was added.
    pub fn is_empty(&self) -> bool {
        self.packs.is_empty()
    }

    /// Every rule of every pack, each id once (the first wins), with the packs that hold it.
    fn rules(&self) -> Vec<(Arc<dyn Rule>, Vec<String>)> {
        let mut out: Vec<(Arc<dyn Rule>, Vec<String>)> = Vec::new();
        for p in &self.packs {
            for r in &p.rules {
                match out.iter_mut().find(|(x, _)| x.id() == r.id()) {
                    Some((_, packs)) => {
                        if !packs.contains(&p.name) {
                            packs.push(p.name.clone());
                        }
                    }
                    None => out.push((r.clone(), vec![p.name.clone()])),
                }
            }
        }
        out
    }
    /// Suppressions without a written reason, and suppressions naming a rule no pack has.
    fn suppression_findings(&self, stack: &str, known: &BTreeSet<&str>) -> Vec<Finding> {
        let mut out = Vec::new();
        for s in &self.suppressions {
            if !s.has_reason() {
                out.push(Finding {
                    rule_id: SUPPRESSION_WITHOUT_REASON.to_string(),
                    severity: Severity::Error,
                    path: stack.to_string(),
                    message: format!(
                        "the suppression of `{}` on `{}` has no written reason, so it is not applied",
                        s.rule_id, s.path
                    ),
                    fix: "write why the exception is acceptable, who accepted it and until when, or remove the \
                      suppression"
                        .to_string(),
                });
            }
            let is_pattern = s.rule_id.contains('*');
            if !is_pattern && !known.contains(s.rule_id.as_str()) {
                out.push(Finding {
                    rule_id: SUPPRESSION_UNKNOWN_RULE.to_string(),
                    severity: Severity::Warning,
                    path: stack.to_string(),
                    message: format!("the suppression names rule `{}`, which none of the packs has", s.rule_id),
                    fix: format!(
                        "check the rule id against the report, or remove the suppression; rules checked: {}",
                        known.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        out
    }

    /// Check a synthesized stack against every rule, apply the suppressions and report all
    /// findings at once. `catalogs` are the catalogues of the configured providers (the same
    /// ones `synth` was given); rules read regions and jurisdictions from them.
    pub fn check(&self, stack: &Synthesized, catalogs: &[&Catalog]) -> PolicyReport {
        let cx = PolicyContext::new(stack, catalogs);
        let full = |path: &str| if path.is_empty() { stack.name.clone() } else { format!("{}/{}", stack.name, path) };

        let mut report_supps: Vec<SuppressionReport> = self
            .suppressions
            .iter()
            .map(|s| SuppressionReport {
                rule_id: s.rule_id.clone(),
                path: s.path.clone(),
                reason: s.reason.clone(),
                applied: s.has_reason(),
                matched: 0,
            })
            .collect();
        let mut findings = Vec::new();
        let mut suppressed = Vec::new();
        let mut evidence = Vec::new();

        let rules = self.rules();
        for (rule, packs) in &rules {
            let mut outcomes = rule.check(&cx);
            outcomes.sort_by(|a, b| a.path.cmp(&b.path));
            // Per resource: worst status; keep the order of first appearance after sorting.
            let mut checked: Vec<CheckedResource> = Vec::new();
            for o in outcomes {
                let path = full(&o.path);
                let mut detail = o.detail;
                let status = match o.verdict {
                    RuleVerdict::Pass => ResourceStatus::Pass,
                    RuleVerdict::Fail { message, fix, severity } => {
                        if detail.is_none() {
                            detail = Some(message.clone());
                        }
                        let f = Finding {
                            rule_id: rule.id().to_string(),
                            severity: severity.unwrap_or_else(|| rule.severity()),
                            path: path.clone(),
                            message,
                            fix,
                        };
                        let hit = self
                            .suppressions
                            .iter()
                            .position(|s| s.has_reason() && s.matches(&f.rule_id, &f.path, &o.path));
                        match hit {
                            Some(i) => {
                                report_supps[i].matched += 1;
                                suppressed.push(SuppressedFinding {
                                    reason: self.suppressions[i].reason.clone(),
                                    suppression: self.suppressions[i].path.clone(),
                                    finding: f,
                                });
                                ResourceStatus::Suppressed
                            }
                            None => {
                                let s = match f.severity {
                                    Severity::Error => ResourceStatus::Fail,
                                    _ => ResourceStatus::Warn,
                                };
                                findings.push(f);
                                s
                            }
                        }
                    }
                };
                merge_checked(&mut checked, CheckedResource { path, kind: o.kind, status, detail });
            }
            let status = RuleStatus::from_resources(&checked);
            evidence.push(RuleEvidence {
                rule_id: rule.id().to_string(),
                title: rule.title().to_string(),
                severity: rule.severity(),
                packs: packs.clone(),
                status,
                resources: checked,
            });
        }

        // Problems with the suppressions themselves: never suppressible.
        let known: BTreeSet<&str> = rules.iter().map(|(r, _)| r.id()).collect();
        findings.extend(self.suppression_findings(&stack.name, &known));

        findings.sort_by(|a, b| {
            (a.severity, &a.path, &a.rule_id, &a.message).cmp(&(b.severity, &b.path, &b.rule_id, &b.message))
        });
        suppressed.sort_by(|a, b| (&a.finding.path, &a.finding.rule_id).cmp(&(&b.finding.path, &b.finding.rule_id)));

        let counts = Counts {
            errors: findings.iter().filter(|f| f.severity == Severity::Error).count(),
            warnings: findings.iter().filter(|f| f.severity == Severity::Warning).count(),
            suppressed: suppressed.len(),
            rules: evidence.len(),
            rules_passed: evidence.iter().filter(|e| e.status == RuleStatus::Pass).count(),
            rules_failed: evidence.iter().filter(|e| e.status == RuleStatus::Fail).count(),
            resources_checked: evidence
                .iter()
                .flat_map(|e| e.resources.iter().map(|r| r.path.as_str()))
                .collect::<BTreeSet<_>>()
                .len(),
        };
        let region = cx.region().cloned();
        PolicyReport {
            version: REPORT_VERSION,
            stack: stack.name.clone(),
            stage: stack.stage,
            provider: stack.provider.clone(),
            region: stack.region.clone(),
            region_info: region,
            date: None,
            packs: self
                .packs
                .iter()
                .map(|p| PackSummary {
                    name: p.name.clone(),
                    description: p.description.clone(),
                    includes: p.includes.clone(),
                })
                .collect(),
            counts,
            findings,
            suppressed,
            suppressions: report_supps,
            rules: evidence,
        }
    }
}

/// Add one outcome to a rule's checked resources: per resource the worst status, with the detail
/// of the worst outcome (details of equal ones joined).
fn merge_checked(checked: &mut Vec<CheckedResource>, new: CheckedResource) {
    match checked.iter_mut().find(|c| c.path == new.path) {
        Some(c) => {
            if new.status > c.status {
                c.status = new.status;
                c.detail = new.detail;
            } else if new.status == c.status {
                c.detail = match (c.detail.take(), new.detail) {
                    (Some(a), Some(b)) if a != b => Some(format!("{a}; {b}")),
                    (a, b) => a.or(b),
                };
            }
        }
        None => checked.push(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::report::{glob_match, paths_label};

    #[test]
    fn globs() {
        assert!(glob_match("shop/network/web-fw", "shop/network/web-fw"));
        assert!(!glob_match("shop/network/web", "shop/network/web-fw"));
        assert!(glob_match("shop/network/*", "shop/network/web-fw"));
        assert!(!glob_match("shop/*", "shop/network/web-fw"));
        assert!(glob_match("shop/**", "shop/network/web-fw"));
        assert!(glob_match("shop/network/**", "shop/network"));
        assert!(glob_match("**/web-*", "shop/network/web-fw"));
        assert!(glob_match("baseline/*", "baseline/database-encrypted"));
        assert!(!glob_match("baseline/*", "gdpr/eu-residency"));
        assert!(glob_match("*", "x"));
        assert!(!glob_match("", "x"));
    }

    #[test]
    fn long_path_lists_are_shortened_for_humans() {
        assert_eq!(paths_label(&["a"]), "a");
        assert_eq!(paths_label(&["a", "b", "c", "d"]), "a, b, c, d");
        assert_eq!(paths_label(&["a", "b", "c", "d", "e", "f"]), "a, b, c, d and 2 more (6 resources)");
    }

    #[test]
    fn rule_status_is_the_worst_resource_status() {
        let r = |status| CheckedResource { path: "p".into(), kind: None, status, detail: None };
        assert_eq!(RuleStatus::from_resources(&[]), RuleStatus::NotApplicable);
        assert_eq!(RuleStatus::from_resources(&[r(ResourceStatus::Pass)]), RuleStatus::Pass);
        assert_eq!(
            RuleStatus::from_resources(&[r(ResourceStatus::Pass), r(ResourceStatus::Suppressed)]),
            RuleStatus::Suppressed
        );
        assert_eq!(RuleStatus::from_resources(&[r(ResourceStatus::Fail), r(ResourceStatus::Warn)]), RuleStatus::Fail);
    }
}
