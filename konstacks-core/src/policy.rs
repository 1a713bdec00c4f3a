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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::base::cidr::Cidr;
use crate::kind::catalog::{Catalog, RegionInfo};
use crate::kind::{common, Field, Kind, ResourceKind};
use crate::kinds::{firewall, subnet, Database, Firewall, Protocol, Subnet};
use crate::model::placement::{Jurisdiction, Stage};
use crate::synth::{Expr, SynthResource, Synthesized};

/// Version of the JSON report format ([`PolicyReport`]); bumped on any incompatible change.
pub const REPORT_VERSION: u32 = 1;

/// Rule id of the finding raised for a suppression that has no written reason.
pub const SUPPRESSION_WITHOUT_REASON: &str = "policy/suppression-without-reason";

/// Rule id of the finding raised for a suppression naming a rule that none of the packs has.
pub const SUPPRESSION_UNKNOWN_RULE: &str = "policy/suppression-unknown-rule";

// ---------------------------------------------------------------------------------------------
// Rules, outcomes and findings
// ---------------------------------------------------------------------------------------------

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
fn glob_match(pattern: &str, text: &str) -> bool {
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
                match checked.iter_mut().find(|c| c.path == path) {
                    Some(c) => {
                        // Keep the detail of the worst outcome; join details of equal ones.
                        if status > c.status {
                            c.status = status;
                            c.detail = detail;
                        } else if status == c.status {
                            c.detail = match (c.detail.take(), detail) {
                                (Some(a), Some(b)) if a != b => Some(format!("{a}; {b}")),
                                (a, b) => a.or(b),
                            };
                        }
                    }
                    None => checked.push(CheckedResource { path, kind: o.kind, status, detail }),
                }
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
        for s in &self.suppressions {
            if !s.has_reason() {
                findings.push(Finding {
                    rule_id: SUPPRESSION_WITHOUT_REASON.to_string(),
                    severity: Severity::Error,
                    path: stack.name.clone(),
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
                findings.push(Finding {
                    rule_id: SUPPRESSION_UNKNOWN_RULE.to_string(),
                    severity: Severity::Warning,
                    path: stack.name.clone(),
                    message: format!("the suppression names rule `{}`, which none of the packs has", s.rule_id),
                    fix: format!(
                        "check the rule id against the report, or remove the suppression; rules checked: {}",
                        known.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }

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

// ---------------------------------------------------------------------------------------------
// The context rules read the stack through
// ---------------------------------------------------------------------------------------------

/// A resource of the stack as a rule sees it: the synthesized resource plus its index, with
/// helpers to read literal field values. Dereferences to [`SynthResource`].
#[derive(Debug, Clone, Copy)]
pub struct ResourceView<'a> {
    /// Index in [`Synthesized::resources`] (what [`Expr::Attr::node`] points to).
    pub index: usize,
    /// The resource.
    pub resource: &'a SynthResource,
}

impl std::ops::Deref for ResourceView<'_> {
    type Target = SynthResource;
    fn deref(&self) -> &SynthResource {
        self.resource
    }
}

impl<'a> ResourceView<'a> {
    /// Whether the resource is of kind `K`.
    pub fn is<K: ResourceKind>(&self) -> bool {
        self.resource.kind == K::KIND
    }

    /// The literal value of a field (`None` when absent, known only after apply, or when the
    /// resource is of another kind than the field's).
    pub fn lit<K: ResourceKind, T>(&self, field: Field<K, T>) -> Option<&'a Value> {
        match self.field(field) {
            Some(Expr::Lit(v)) => Some(v),
            _ => None,
        }
    }

    /// A field as it was synthesized (`None` for a resource of another kind).
    pub fn field<K: ResourceKind, T>(&self, field: Field<K, T>) -> Option<&'a Expr> {
        self.is::<K>().then(|| self.resource.fields.get(field.name())).flatten()
    }

    /// A literal field, typed.
    pub fn get<K: ResourceKind, T: serde::de::DeserializeOwned>(&self, field: Field<K, T>) -> Option<T> {
        self.lit(field).and_then(|v| T::deserialize(v).ok())
    }

    /// A literal boolean field.
    pub fn bool<K: ResourceKind>(&self, field: Field<K, bool>) -> Option<bool> {
        self.lit(field).and_then(Value::as_bool)
    }

    /// A literal count field.
    pub fn u64<K: ResourceKind>(&self, field: Field<K, u32>) -> Option<u64> {
        self.lit(field).and_then(Value::as_u64)
    }

    /// A literal string field.
    pub fn str<K: ResourceKind>(&self, field: Field<K, String>) -> Option<&'a str> {
        self.lit(field).and_then(Value::as_str)
    }

    /// A literal tag value.
    pub fn tag(&self, key: &str) -> Option<&'a str> {
        match self.resource.fields.get(common::TAGS) {
            Some(Expr::Map(m)) => match m.get(key) {
                Some(Expr::Lit(Value::String(s))) => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// Indexes of the resources a field refers to (by `Expr::Attr`), in order.
    pub fn refs_in<K: ResourceKind, T>(&self, field: Field<K, T>) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(e) = self.field(field) {
            walk_refs(e, &mut out);
        }
        out
    }

    /// Indexes of every resource any field refers to, in field order.
    pub fn refs(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for e in self.resource.fields.values() {
            walk_refs(e, &mut out);
        }
        out
    }
}

fn walk_refs(e: &Expr, out: &mut Vec<usize>) {
    match e {
        Expr::Attr { node, .. } => out.push(*node),
        Expr::List(v) => v.iter().for_each(|e| walk_refs(e, out)),
        Expr::Map(m) => m.values().for_each(|e| walk_refs(e, out)),
        _ => {}
    }
}

/// Direction of a firewall rule.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Inbound.
    Ingress,
    /// Outbound.
    Egress,
}

/// The other side of a firewall rule, as synthesized.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerView {
    /// An IPv4 block (`0.0.0.0/0` is the whole internet).
    Cidr(String),
    /// The members of another firewall of the stack (its index).
    Firewall(usize),
    /// Could not be read (validation reports why).
    Unknown,
}

/// One firewall rule, read back from a synthesized firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRuleView {
    /// Inbound or outbound.
    pub direction: Direction,
    /// Position within its direction (`ingress rule #2`).
    pub position: usize,
    /// Protocol; `None` when it could not be read.
    pub protocol: Option<Protocol>,
    /// First port (0 for `all` and `icmp`).
    pub from_port: u32,
    /// Last port, inclusive.
    pub to_port: u32,
    /// The other side.
    pub peer: PeerView,
}

impl FirewallRuleView {
    /// Whether the peer is the whole internet (a block with prefix length 0).
    pub fn is_anywhere(&self) -> bool {
        match &self.peer {
            PeerView::Cidr(c) => c.trim() == "::/0" || c.parse::<Cidr>().map(|c| c.prefix() == 0).unwrap_or(false),
            _ => false,
        }
    }

    /// Whether the rule lets TCP traffic to `port` through (a TCP range covering it, or every
    /// protocol).
    pub fn covers_tcp(&self, port: u32) -> bool {
        match self.protocol {
            Some(Protocol::All) => true,
            Some(Protocol::Tcp) => (self.from_port..=self.to_port).contains(&port),
            _ => false,
        }
    }

    /// `tcp 22`, `tcp 1-65535`, `all`.
    pub fn ports_label(&self) -> String {
        let proto = match self.protocol {
            Some(Protocol::Tcp) => "tcp",
            Some(Protocol::Udp) => "udp",
            Some(Protocol::Icmp) => return "icmp".into(),
            Some(Protocol::All) => return "all traffic".into(),
            _ => "unknown protocol",
        };
        if self.from_port == self.to_port {
            format!("{proto} {}", self.from_port)
        } else {
            format!("{proto} {}-{}", self.from_port, self.to_port)
        }
    }

    /// `ingress rule #0`.
    pub fn label(&self) -> String {
        let d = match self.direction {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        };
        format!("{d} rule #{}", self.position)
    }
}

/// What a rule sees: the synthesized stack, the provider's region facts, and helpers to read
/// fields, firewall rules and attachments.
#[derive(Debug)]
pub struct PolicyContext<'a> {
    stack: &'a Synthesized,
    catalogs: &'a [&'a Catalog],
    /// firewall index -> indexes of the VMs and databases it is attached to.
    attached: BTreeMap<usize, Vec<usize>>,
}

impl<'a> PolicyContext<'a> {
    /// A context over `stack`, with the configured providers' catalogues.
    pub fn new(stack: &'a Synthesized, catalogs: &'a [&'a Catalog]) -> Self {
        let mut attached: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let is_firewall = |i: usize| stack.resources.get(i).is_some_and(|r| r.kind == Firewall::KIND);
        for (i, r) in stack.resources.iter().enumerate() {
            if r.kind == Firewall::KIND {
                // A firewall naming another in a rule is its peer, not attached to it.
                continue;
            }
            let mut fws = ResourceView { index: i, resource: r }.refs();
            fws.retain(|f| is_firewall(*f));
            fws.dedup();
            for f in fws {
                attached.entry(f).or_default().push(i);
            }
        }
        Self { stack, catalogs, attached }
    }

    /// The synthesized stack.
    pub fn stack(&self) -> &'a Synthesized {
        self.stack
    }

    /// Stack name.
    pub fn stack_name(&self) -> &'a str {
        &self.stack.name
    }

    /// The stage.
    pub fn stage(&self) -> Stage {
        self.stack.stage
    }

    /// Every configured catalogue.
    pub fn catalogs(&self) -> &'a [&'a Catalog] {
        self.catalogs
    }

    /// The catalogue of a provider.
    pub fn catalog(&self, provider: &str) -> Option<&'a Catalog> {
        self.catalogs.iter().copied().find(|c| c.provider == provider)
    }

    /// The stack's region, from its provider's catalogue.
    pub fn region(&self) -> Option<&'a RegionInfo> {
        self.catalog(&self.stack.provider)?.region(&self.stack.region)
    }

    /// The region a resource is placed in (its `region` field), from the catalogue of the
    /// resource's provider. `None` when the region is unknown to that catalogue.
    pub fn region_of(&self, r: ResourceView<'_>) -> Option<&'a RegionInfo> {
        self.catalog(&r.provider)?.region(self.region_name_of(r))
    }

    /// The name of the region a resource is placed in (its `region` field, else the stack's).
    pub fn region_name_of<'r>(&self, r: ResourceView<'r>) -> &'r str
    where
        'a: 'r,
    {
        match r.resource.fields.get(common::REGION) {
            Some(Expr::Lit(Value::String(s))) => s.as_str(),
            _ => &self.stack.region,
        }
    }

    /// Full path of a resource (`shop/network/vpc`).
    pub fn full_path(&self, r: ResourceView<'_>) -> String {
        format!("{}/{}", self.stack.name, r.path)
    }

    /// Every resource, in the order they were added.
    pub fn resources(&self) -> impl Iterator<Item = ResourceView<'a>> + 'a {
        self.stack.resources.iter().enumerate().map(|(index, resource)| ResourceView { index, resource })
    }

    /// Every resource of one kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = ResourceView<'a>> + 'a {
        self.resources().filter(move |r| r.kind == kind)
    }

    /// Every resource of kind `K`.
    pub fn of<K: ResourceKind>(&self) -> impl Iterator<Item = ResourceView<'a>> + 'a {
        self.of_kind(K::KIND)
    }

    /// The resource at an index.
    pub fn resource(&self, index: usize) -> Option<ResourceView<'a>> {
        self.stack.resources.get(index).map(|resource| ResourceView { index, resource })
    }

    /// The rules of a firewall, ingress first, then egress. Empty for other kinds.
    pub fn firewall_rules(&self, fw: ResourceView<'_>) -> Vec<FirewallRuleView> {
        let mut out = Vec::new();
        for (field, direction) in
            [(firewall::field::INGRESS, Direction::Ingress), (firewall::field::EGRESS, Direction::Egress)]
        {
            let Some(Expr::List(rules)) = fw.field(field) else { continue };
            for (position, rule) in rules.iter().enumerate() {
                out.push(read_rule(rule, direction, position));
            }
        }
        out
    }

    /// The firewalls attached to a resource (a VM, a database, a cache).
    pub fn firewalls_of(&self, r: ResourceView<'_>) -> Vec<ResourceView<'a>> {
        if r.is::<Firewall>() {
            return Vec::new();
        }
        self.refs_of::<Firewall>(r)
    }

    /// The resources of kind `K` that `r` refers to, each once, in field order.
    pub fn refs_of<K: ResourceKind>(&self, r: ResourceView<'_>) -> Vec<ResourceView<'a>> {
        let mut seen = BTreeSet::new();
        r.refs()
            .into_iter()
            .filter(|i| seen.insert(*i))
            .filter_map(|i| self.resource(i))
            .filter(|x| x.is::<K>())
            .collect()
    }

    /// The VMs and databases a firewall is attached to.
    pub fn attached_to(&self, fw: ResourceView<'_>) -> Vec<ResourceView<'a>> {
        self.attached.get(&fw.index).into_iter().flatten().filter_map(|i| self.resource(*i)).collect()
    }

    /// The subnets a resource lives in.
    pub fn subnets_of(&self, r: ResourceView<'_>) -> Vec<ResourceView<'a>> {
        self.refs_of::<Subnet>(r)
    }

    /// Whether a subnet routes to the internet.
    pub fn is_public_subnet(&self, subnet: ResourceView<'_>) -> bool {
        subnet.bool(subnet::field::PUBLIC).unwrap_or(false)
    }

    /// Whether a firewall is attached to at least one database (the database tier).
    pub fn guards_database(&self, fw: ResourceView<'_>) -> bool {
        self.attached_to(fw).iter().any(|r| r.is::<Database>())
    }
}

fn read_rule(rule: &Expr, direction: Direction, position: usize) -> FirewallRuleView {
    let mut view =
        FirewallRuleView { direction, position, protocol: None, from_port: 0, to_port: 0, peer: PeerView::Unknown };
    let Expr::Map(m) = rule else { return view };
    let lit_u32 = |k: &str| match m.get(k) {
        Some(Expr::Lit(v)) => v.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        _ => 0,
    };
    view.protocol = match m.get("protocol") {
        Some(Expr::Lit(v)) => serde_json::from_value::<Protocol>(v.clone()).ok(),
        _ => None,
    };
    view.from_port = lit_u32("from_port");
    view.to_port = lit_u32("to_port");
    view.peer = match m.get("peer") {
        Some(Expr::Map(p)) => match (p.get("cidr"), p.get("firewall")) {
            (Some(Expr::Lit(Value::String(c))), _) => PeerView::Cidr(c.clone()),
            (_, Some(Expr::Attr { node, .. })) => PeerView::Firewall(*node),
            _ => PeerView::Unknown,
        },
        _ => PeerView::Unknown,
    };
    view
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

    fn from_resources(resources: &[CheckedResource]) -> Self {
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
fn paths_label(paths: &[&str]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
