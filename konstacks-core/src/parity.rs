//! Environment parity: one template, several stages, side by side.
//!
//! [`parity`] compares the synthesized stacks of dev, staging and prod (or any stages) resource
//! by resource and field by field. The knobs a template lets differ ([`KnobSet`]: sizes, counts,
//! high availability, plain HTTP in dev, ...) are reported as allowed differences; any other
//! difference (engine version, open ports, image, region jurisdiction, a resource present in one
//! stage only) is drift between environments and fails the check.
//!
//! What differs by construction is normalised first: the stack name (physical names, tags) is
//! replaced by `<stack>`, the `konstacks:stage` tag is dropped, secrets compare as one marker,
//! and regions compare by jurisdiction (through the providers' catalogues).
//!
//! Pure: reads synthesized stacks and catalogues only, never a cloud or state.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kind::catalog::Catalog;
use crate::kind::{Field, Kind, ResourceKind};
use crate::kinds::load_balancer::{self, ListenerProtocol, ListenerSpec, LoadBalancer};
use crate::kinds::{cache, database, vm, Certificate, DnsRecord, DnsZone};
use crate::model::placement::Stage;
use crate::plan::canonical;
use crate::synth::{Expr, Synthesized};

/// The tag every template stamps with the stage; it differs by construction.
const STAGE_TAG: &str = "konstacks:stage";

/// Path of the rows about the stack as a whole (provider, region).
pub const STACK_ROW: &str = "(stack)";

/// Field name of the rows about a resource's presence in each stage.
pub const PRESENT_FIELD: &str = "(present)";

/// One difference a template allows between stages, named through typed fields:
/// `Knob::field(vm::field::SIZE)` or `Knob::count("app/web-*")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Knob {
    /// A field of a kind may differ.
    Field {
        /// The kind.
        kind: Kind,
        /// The field's name.
        field: &'static str,
    },
    /// Resources whose path matches this pattern may exist in some stages only.
    Count(&'static str),
    /// Dev may serve plain HTTP on the load balancer's own DNS name: see
    /// [`KnobSet::plain_http_in_dev`].
    PlainHttpInDev,
}

impl Knob {
    /// A field that may differ.
    pub const fn field<K: ResourceKind, T>(field: Field<K, T>) -> Self {
        Knob::Field { kind: K::KIND, field: field.name() }
    }

    /// A path pattern whose resources may exist in some stages only.
    pub const fn count(pattern: &'static str) -> Self {
        Knob::Count(pattern)
    }

    /// Dev may run without the certificate the other stages serve HTTPS with (see
    /// [`KnobSet::plain_http_in_dev`]).
    pub const fn plain_http_in_dev() -> Self {
        Knob::PlainHttpInDev
    }
}

impl std::fmt::Display for Knob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Knob::Field { kind, field } => write!(f, "{kind}.{field}"),
            Knob::Count(p) => write!(f, "count:{p}"),
            Knob::PlainHttpInDev => f.write_str(PLAIN_HTTP_IN_DEV),
        }
    }
}

/// The differences a template allows between stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnobSet {
    /// Per kind, the fields that may differ.
    pub fields: BTreeMap<Kind, BTreeSet<String>>,
    /// Path patterns (`*` matches any run of characters, `/` included) of resources that may
    /// exist in some stages only, such as `app/web-*`.
    pub counts: Vec<String>,
    /// Numbered replicas may vary in count: a resource whose last path segment is `<name>-<N>`
    /// with N >= 2 may be missing in a stage as long as `<name>-1` exists in every stage, and
    /// references to the replicas in a list (a load balancer's targets) count as one.
    pub numbered_replicas: bool,
    /// Dev may serve plain HTTP on the load balancer's own DNS name while the other stages
    /// serve a domain over HTTPS: in dev only, certificates, DNS zones and DNS records may be
    /// missing, and a load balancer's listeners may lack the HTTPS ones and the redirect of
    /// HTTP to them (every other listener the same). A load balancer missing in dev, a stage
    /// other than dev without HTTPS, or any other listener difference is still drift.
    #[serde(default)]
    pub plain_http_in_dev: bool,
}

impl Default for KnobSet {
    /// The usual knobs: VM size; database size, storage, high availability, deletion
    /// protection and backup retention; cache size, replicas and failover; numbered replicas.
    fn default() -> Self {
        Self::none()
            .allow(vm::field::SIZE)
            .allow(database::field::SIZE)
            .allow(database::field::STORAGE_GB)
            .allow(database::field::HIGH_AVAILABILITY)
            .allow(database::field::DELETION_PROTECTION)
            .allow(database::field::BACKUP_RETENTION_DAYS)
            .allow(cache::field::SIZE)
            .allow(cache::field::REPLICAS)
            .allow(cache::field::HIGH_AVAILABILITY)
            .numbered_replicas(true)
    }
}

impl KnobSet {
    /// No difference allowed at all.
    pub fn none() -> Self {
        Self { fields: BTreeMap::new(), counts: Vec::new(), numbered_replicas: false, plain_http_in_dev: false }
    }

    /// Allow a field (`vm::field::SIZE`) to differ between stages.
    pub fn allow<K: ResourceKind, T>(mut self, field: Field<K, T>) -> Self {
        self.fields.entry(K::KIND).or_default().insert(field.name().to_string());
        self
    }

    /// Allow what a knob allows.
    pub fn knob(mut self, knob: Knob) -> Self {
        match knob {
            Knob::Field { kind, field } => {
                self.fields.entry(kind).or_default().insert(field.to_string());
            }
            Knob::Count(p) => self.counts.push(p.to_string()),
            Knob::PlainHttpInDev => self.plain_http_in_dev = true,
        }
        self
    }

    /// Allow the resources whose path matches `pattern` to exist in some stages only.
    pub fn allow_count(mut self, pattern: &str) -> Self {
        self.counts.push(pattern.to_string());
        self
    }

    /// Turn the numbered-replicas rule on or off.
    pub fn numbered_replicas(mut self, yes: bool) -> Self {
        self.numbered_replicas = yes;
        self
    }

    /// Turn the [`plain_http_in_dev`](KnobSet::plain_http_in_dev) knob on or off.
    pub fn plain_http_in_dev(mut self, yes: bool) -> Self {
        self.plain_http_in_dev = yes;
        self
    }

    /// Whether `field` of a `kind` may differ.
    pub fn allows_field(&self, kind: Kind, field: &str) -> bool {
        self.fields.get(&kind).is_some_and(|f| f.contains(field))
    }

    /// Whether the resource at `path` may be missing from some stages, by an explicit pattern.
    pub fn allows_count(&self, path: &str) -> bool {
        self.counts.iter().any(|p| glob(p, path))
    }
}

/// The name of the [`Knob::PlainHttpInDev`] knob in reports.
const PLAIN_HTTP_IN_DEV: &str = "plain-http-in-dev";

/// The kinds that name a stage's domain and secure it: missing in dev under
/// [`KnobSet::plain_http_in_dev`].
fn is_domain_kind(kind: Kind) -> bool {
    kind == Certificate::KIND || kind == DnsZone::KIND || kind == DnsRecord::KIND
}

/// Listeners as plain HTTP serves them: the HTTPS ones dropped, no redirect to them; `None` when
/// the value is not a list of listeners.
fn plain_http(listeners: &Value) -> Option<(bool, Vec<ListenerSpec>)> {
    let all: Vec<ListenerSpec> = serde_json::from_value(listeners.clone()).ok()?;
    let https = all.iter().any(|l| l.protocol == ListenerProtocol::Https);
    let mut plain: Vec<ListenerSpec> = all
        .into_iter()
        .filter(|l| l.protocol != ListenerProtocol::Https)
        .map(|l| ListenerSpec { redirect_to_port: None, ..l })
        .collect();
    plain.sort();
    Some((https, plain))
}

/// Whether the listeners of one load balancer differ only as [`KnobSet::plain_http_in_dev`]
/// allows: the stages other than dev agree and serve HTTPS, and each dev stage has the same
/// listeners or the same without HTTPS and redirects. `values` holds the listeners per stage
/// (`None` where the load balancer is absent).
fn only_plain_http_in_dev(stages: &[Stage], values: &[Option<Value>]) -> bool {
    let others: Vec<&Value> =
        stages.iter().zip(values).filter(|(s, _)| **s != Stage::Dev).filter_map(|(_, v)| v.as_ref()).collect();
    let Some(reference) = others.first() else { return false };
    if !others.iter().all(|v| v == reference) {
        return false;
    }
    let Some((true, plain)) = plain_http(reference) else { return false };
    stages
        .iter()
        .zip(values)
        .filter(|(s, _)| **s == Stage::Dev)
        .filter_map(|(_, v)| v.as_ref())
        .all(|dev| dev == *reference || matches!(plain_http(dev), Some((false, p)) if p == plain))
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

/// `app/web-3` -> `app/web-1`, when the last segment ends in `-N` with N >= 2.
fn first_replica(path: &str) -> Option<String> {
    let (head, n) = path.rsplit_once('-')?;
    let last_segment_ok = !n.contains('/') && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    match n.parse::<u64>() {
        Ok(k) if last_segment_ok && k >= 2 => Some(format!("{head}-1")),
        _ => None,
    }
}

/// Whether a difference is allowed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParityVerdict {
    /// A knob the template lets differ.
    Allowed,
    /// Drift between environments: fails the check.
    Violation,
}

/// One field (or presence, or stack property) that differs between stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParityRow {
    /// Resource path, or [`STACK_ROW`].
    pub path: String,
    /// Kind of the resource (absent for stack rows).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<Kind>,
    /// Field name, [`PRESENT_FIELD`] for presence, `kind` when the kinds differ.
    pub field: String,
    /// Normalised value per stage, in the order of [`ParityReport::stages`]; `None` when the
    /// stage has no such resource or field.
    pub values: Vec<Option<Value>>,
    /// Allowed or not.
    pub verdict: ParityVerdict,
    /// Why, and for violations what to do.
    pub reason: String,
}

/// How stages differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParityReport {
    /// Column labels: the stages, in the order given.
    pub stages: Vec<Stage>,
    /// The stack names, in the same order.
    pub stacks: Vec<String>,
    /// Number of resource paths compared.
    pub resources: usize,
    /// Every difference: stack rows first, then resources in order of first appearance,
    /// fields sorted.
    pub rows: Vec<ParityRow>,
}

impl ParityReport {
    /// Whether the stages differ only in allowed knobs.
    pub fn is_ok(&self) -> bool {
        self.rows.iter().all(|r| r.verdict == ParityVerdict::Allowed)
    }

    /// The differences that fail the check.
    pub fn violations(&self) -> impl Iterator<Item = &ParityRow> {
        self.rows.iter().filter(|r| r.verdict == ParityVerdict::Violation)
    }

    /// The row of `path` and `field`.
    pub fn row(&self, path: &str, field: &str) -> Option<&ParityRow> {
        self.rows.iter().find(|r| r.path == path && r.field == field)
    }

    /// Side-by-side table of the differences (long values are shortened; the JSON has them
    /// whole), then the verdict.
    pub fn render(&self) -> String {
        const MAX: usize = 60;
        let cell = |v: &Option<Value>| -> String {
            let s = match v {
                None => "(absent)".to_string(),
                Some(v) => human(v),
            };
            let s = s.replace('\n', "\\n");
            if s.chars().count() > MAX {
                format!("{}...", s.chars().take(MAX - 3).collect::<String>())
            } else {
                s
            }
        };
        let mut out = String::new();
        let heads: Vec<String> =
            self.stages.iter().zip(&self.stacks).map(|(s, n)| format!("{n} ({})", s.as_str())).collect();
        let _ = writeln!(out, "Parity of {}: {} resource(s) compared", heads.join(", "), self.resources);
        if self.rows.is_empty() {
            let _ = writeln!(out, "\nNo differences.");
            return out;
        }
        let cells: Vec<Vec<String>> = self.rows.iter().map(|r| r.values.iter().map(cell).collect()).collect();
        let w_path = self.rows.iter().map(|r| r.path.len()).max().unwrap_or(0).max("RESOURCE".len());
        let w_field = self.rows.iter().map(|r| r.field.len()).max().unwrap_or(0).max("FIELD".len());
        let w_cols: Vec<usize> = (0..self.stages.len())
            .map(|i| {
                cells
                    .iter()
                    .filter_map(|c| c.get(i))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(self.stages.get(i).map(|s| s.as_str().len()).unwrap_or(0))
            })
            .collect();
        let _ = write!(out, "\n     {:<w_path$}  {:<w_field$}", "RESOURCE", "FIELD");
        for (s, w) in self.stages.iter().zip(&w_cols) {
            let _ = write!(out, "  {:<w$}", s.as_str().to_uppercase());
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        for (r, c) in self.rows.iter().zip(&cells) {
            let mark = match r.verdict {
                ParityVerdict::Allowed => "ok",
                ParityVerdict::Violation => "!!",
            };
            let _ = write!(out, "  {mark} {:<w_path$}  {:<w_field$}", r.path, r.field);
            for (v, w) in c.iter().zip(&w_cols) {
                let pad = w.saturating_sub(v.chars().count());
                let _ = write!(out, "  {v}{}", " ".repeat(pad));
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
        let bad: Vec<&ParityRow> = self.violations().collect();
        if bad.is_empty() {
            let _ = writeln!(out, "\nParity OK: the stages differ only in allowed knobs.");
        } else {
            let _ = writeln!(out, "\nParity FAILED: {} difference(s) are drift between environments:", bad.len());
            for r in bad {
                let _ = writeln!(out, "  - {} {}: {}", r.path, r.field, r.reason);
            }
        }
        out
    }

    /// The report as pretty JSON (the serde form of this type).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Per-stage normalisation context.
struct Norm<'a> {
    stack: &'a str,
    /// Fold references to numbered replicas in lists into one (see [`KnobSet::numbered_replicas`]).
    replicas: bool,
}

impl Norm<'_> {
    fn string(&self, s: &str) -> String {
        if s == self.stack {
            "<stack>".to_string()
        } else if let Some(rest) = s.strip_prefix(self.stack).filter(|r| r.starts_with('-')) {
            format!("<stack>{rest}")
        } else {
            s.to_string()
        }
    }

    fn value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.string(s)),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.value(v)).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), self.value(v))).collect()),
            other => other.clone(),
        }
    }

    fn expr(&self, e: &Expr) -> Value {
        match e {
            Expr::Lit(v) => self.value(v),
            Expr::PhysicalName(n) => Value::String(self.string(n)),
            Expr::Attr(a) => Value::String(format!("(known after apply: {}.{})", a.path, a.attr)),
            Expr::List(items) => {
                // `[web-1.id, web-2.id]` in prod and `[web-1.id]` in dev: the replica count is
                // the allowed difference, so the references to the replicas count as one.
                let mut out: Vec<Value> = Vec::new();
                for item in items {
                    let v = match item {
                        Expr::Attr(a) if self.replicas => match first_replica(&a.path) {
                            Some(first) => Value::String(format!("(known after apply: {first}.{})", a.attr)),
                            None => self.expr(item),
                        },
                        _ => self.expr(item),
                    };
                    if !(self.replicas && matches!(item, Expr::Attr(_)) && out.contains(&v)) {
                        out.push(v);
                    }
                }
                Value::Array(out)
            }
            Expr::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.to_string(), self.expr(v))).collect()),
            // Secrets differ per stage on purpose; only their presence is compared.
            _ => Value::String("(secret)".into()),
        }
    }

    /// The fields to compare: normalised, the stage tag and the per-resource region dropped
    /// (the region is compared once, by jurisdiction, in the stack rows). Lists (rules, ids,
    /// keys) are sets: their order is not a difference.
    fn fields(&self, fields: &crate::kind::FieldMap<Expr>) -> BTreeMap<String, Value> {
        let mut out: BTreeMap<String, Value> = fields
            .iter()
            .filter(|(k, _)| *k != "region")
            .map(|(k, e)| (k.to_string(), canonical(&self.expr(e))))
            .collect();
        if let Some(Value::Object(tags)) = out.get_mut("tags") {
            tags.remove(STAGE_TAG);
        }
        out
    }
}

fn jurisdiction(s: &Synthesized, catalogs: &[&Catalog]) -> Value {
    catalogs
        .iter()
        .find(|c| c.provider == s.provider)
        .and_then(|c| c.region(&s.region))
        .map(|r| Value::String(r.jurisdiction.as_str().to_string()))
        .unwrap_or_else(|| Value::String(format!("(region `{}` not in a catalogue)", s.region)))
}

/// A value for humans: strings bare, firewall rules as `tcp 443 from 0.0.0.0/0`, listeners as
/// `http 80 redirect to 443`, lists joined.
fn human(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(human).collect::<Vec<_>>().join(", ")),
        Value::Object(m) if m.contains_key("protocol") && m.contains_key("peer") => {
            let proto = m.get("protocol").map(human).unwrap_or_default();
            let (from, to) = (m.get("from_port").and_then(Value::as_u64), m.get("to_port").and_then(Value::as_u64));
            let ports = match (from, to) {
                (Some(0), Some(0)) | (None, _) | (_, None) => String::new(),
                (Some(f), Some(t)) if f == t => format!(" {f}"),
                (Some(f), Some(t)) => format!(" {f}-{t}"),
            };
            let peer = match m.get("peer") {
                Some(Value::Object(p)) => p
                    .get("cidr")
                    .map(human)
                    .or_else(|| p.get("firewall").map(|f| format!("firewall {}", human(f))))
                    .unwrap_or_default(),
                Some(other) => human(other),
                None => String::new(),
            };
            format!("{proto}{ports} from {peer}")
        }
        Value::Object(m)
            if m.contains_key("protocol") && m.contains_key("port") && m.contains_key("redirect_to_port") =>
        {
            // A load balancer's listener: `http 80 redirect to 443`, `https 443 (1 certificate)`.
            let mut s = format!(
                "{} {}",
                m.get("protocol").map(human).unwrap_or_default(),
                m.get("port").map(human).unwrap_or_default()
            );
            if let Some(to) = m.get("redirect_to_port").and_then(Value::as_u64) {
                let _ = write!(s, " redirect to {to}");
            }
            match m.get("certificate_ids").and_then(Value::as_array).map(Vec::len) {
                Some(0) | None => {}
                Some(1) => s.push_str(" (1 certificate)"),
                Some(n) => {
                    let _ = write!(s, " ({n} certificates)");
                }
            }
            s
        }
        other => other.to_string(),
    }
}

fn all_equal(values: &[Option<Value>]) -> bool {
    values.windows(2).all(|w| w[0] == w[1])
}

fn listing(stages: &[Stage], values: &[Option<Value>]) -> String {
    stages
        .iter()
        .zip(values)
        .map(|(s, v)| match v {
            None => format!("{}: absent", s.as_str()),
            Some(Value::String(x)) => format!("{}: {x:?}", s.as_str()),
            Some(v) => format!("{}: {}", s.as_str(), human(v)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compare stages of one template. `stages` gives each stage with its synthesized stack, in
/// the column order wanted (dev, staging, prod); `catalogs` are used to compare regions by
/// jurisdiction.
pub fn parity(stages: &[(Stage, &Synthesized)], allowed: &KnobSet, catalogs: &[&Catalog]) -> ParityReport {
    let labels: Vec<Stage> = stages.iter().map(|(s, _)| *s).collect();
    let mut rows = Vec::new();

    // The stack as a whole.
    let provider: Vec<Option<Value>> = stages.iter().map(|(_, s)| Some(Value::String(s.provider.clone()))).collect();
    if !all_equal(&provider) {
        rows.push(ParityRow {
            path: STACK_ROW.into(),
            kind: None,
            field: "provider".into(),
            reason: format!(
                "the stages run on different providers ({}); use one provider",
                listing(&labels, &provider)
            ),
            values: provider,
            verdict: ParityVerdict::Violation,
        });
    }
    let region: Vec<Option<Value>> = stages.iter().map(|(_, s)| Some(Value::String(s.region.clone()))).collect();
    let juris: Vec<Option<Value>> = stages.iter().map(|(_, s)| Some(jurisdiction(s, catalogs))).collect();
    if !all_equal(&juris) {
        rows.push(ParityRow {
            path: STACK_ROW.into(),
            kind: None,
            field: "jurisdiction".into(),
            reason: format!(
                "data would live under different jurisdictions ({}); place every stage within the same jurisdiction",
                listing(&labels, &juris)
            ),
            values: juris,
            verdict: ParityVerdict::Violation,
        });
    }
    if !all_equal(&region) {
        rows.push(ParityRow {
            path: STACK_ROW.into(),
            kind: None,
            field: "region".into(),
            reason: "regions differ within the same jurisdiction".into(),
            values: region,
            verdict: ParityVerdict::Allowed,
        });
    }

    // Resources, in order of first appearance.
    let mut order: Vec<&str> = Vec::new();
    let mut seen = BTreeSet::new();
    for (_, s) in stages {
        for r in &s.resources {
            if seen.insert(r.path.as_str()) {
                order.push(r.path.as_str());
            }
        }
    }
    let present_everywhere = |path: &str| stages.iter().all(|(_, s)| s.index_of(path).is_some());

    for path in &order {
        let found: Vec<Option<&crate::synth::SynthResource>> =
            stages.iter().map(|(_, s)| s.index_of(path).and_then(|i| s.resources.get(i))).collect();
        let kind = found.iter().flatten().map(|r| r.kind).next();
        if found.iter().any(Option::is_none) {
            let values: Vec<Option<Value>> = found.iter().map(|f| Some(Value::Bool(f.is_some()))).collect();
            let by_pattern = allowed.allows_count(path);
            let by_replica =
                allowed.numbered_replicas && first_replica(path).is_some_and(|first| present_everywhere(&first));
            let by_plain_http = allowed.plain_http_in_dev
                && kind.is_some_and(is_domain_kind)
                && labels.iter().zip(&found).all(|(s, f)| f.is_some() || *s == Stage::Dev);
            let (verdict, reason) = if by_pattern || by_replica {
                (
                    ParityVerdict::Allowed,
                    if by_pattern { "count allowed by pattern" } else { "numbered replica: count may differ" }
                        .to_string(),
                )
            } else if by_plain_http {
                (
                    ParityVerdict::Allowed,
                    format!("dev serves plain HTTP on the load balancer's own name (knob `{PLAIN_HTTP_IN_DEV}`)"),
                )
            } else {
                let missing: Vec<&str> =
                    labels.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(s, _)| s.as_str()).collect();
                (
                    ParityVerdict::Violation,
                    format!(
                        "present in some stages only (missing in {}); add it to every stage or allow its count",
                        missing.join(", ")
                    ),
                )
            };
            rows.push(ParityRow { path: path.to_string(), kind, field: PRESENT_FIELD.into(), values, verdict, reason });
        }
        let present: Vec<&crate::synth::SynthResource> = found.iter().flatten().copied().collect();
        let kinds: BTreeSet<Kind> = present.iter().map(|r| r.kind).collect();
        if kinds.len() > 1 {
            let values = found.iter().map(|f| f.map(|r| Value::String(r.kind.as_str().into()))).collect();
            rows.push(ParityRow {
                path: path.to_string(),
                kind,
                field: "kind".into(),
                values,
                verdict: ParityVerdict::Violation,
                reason: "a different kind of resource at the same path; use one kind in every stage".into(),
            });
            continue;
        }
        let Some(kind) = kind else { continue };
        // Fields are compared among the stages that have the resource.
        let normalised: Vec<Option<BTreeMap<String, Value>>> = stages
            .iter()
            .zip(&found)
            .map(|((_, s), f)| {
                f.map(|r| Norm { stack: &s.name, replicas: allowed.numbered_replicas }.fields(&r.fields))
            })
            .collect();
        let names: BTreeSet<&String> = normalised.iter().flatten().flat_map(|m| m.keys()).collect();
        for name in names {
            let values: Vec<Option<Value>> =
                normalised.iter().map(|m| m.as_ref().and_then(|m| m.get(name.as_str()).cloned())).collect();
            let among: Vec<&Option<Value>> =
                values.iter().zip(&found).filter(|(_, f)| f.is_some()).map(|(v, _)| v).collect();
            if among.windows(2).all(|w| w[0] == w[1]) {
                continue;
            }
            let (verdict, reason) = if allowed.allows_field(kind, name) {
                (ParityVerdict::Allowed, format!("{kind} knob `{name}` may differ"))
            } else if allowed.plain_http_in_dev
                && kind == LoadBalancer::KIND
                && name.as_str() == load_balancer::field::LISTENERS.name()
                && only_plain_http_in_dev(&labels, &values)
            {
                (
                    ParityVerdict::Allowed,
                    format!(
                        "dev serves plain HTTP on the load balancer's own name, without the HTTPS listener \
                         and its redirect (knob `{PLAIN_HTTP_IN_DEV}`)"
                    ),
                )
            } else {
                (
                    ParityVerdict::Violation,
                    format!(
                        "`{name}` of a {kind} may not differ between stages ({}); make it the same everywhere, \
                         or declare it a knob",
                        listing(&labels, &values)
                    ),
                )
            };
            rows.push(ParityRow {
                path: path.to_string(),
                kind: Some(kind),
                field: name.clone(),
                values,
                verdict,
                reason,
            });
        }
    }

    ParityReport {
        stages: labels,
        stacks: stages.iter().map(|(_, s)| s.name.clone()).collect(),
        resources: order.len(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("app/web-*", "app/web-2"));
        assert!(glob("*", "a/b"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("app/web-*", "app/worker-2"));
        assert!(!glob("app/web-1", "app/web-12"));
    }

    #[test]
    fn replicas() {
        assert_eq!(first_replica("app/web-2").as_deref(), Some("app/web-1"));
        assert_eq!(first_replica("app/web-10").as_deref(), Some("app/web-1"));
        assert_eq!(first_replica("app/web-1"), None);
        assert_eq!(first_replica("network/db-fw"), None);
        assert_eq!(first_replica("a-2/b"), None);
    }

    #[test]
    fn stack_names_are_normalised() {
        let n = Norm { stack: "shop-dev", replicas: true };
        assert_eq!(n.string("shop-dev"), "<stack>");
        assert_eq!(n.string("shop-dev-app-web-1"), "<stack>-app-web-1");
        assert_eq!(n.string("shop-devx"), "shop-devx");
    }
}
