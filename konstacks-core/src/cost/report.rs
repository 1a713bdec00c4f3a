//! What cost estimates report: per-resource costs, stack reports, plan cost deltas, budget
//! refusals and the agency bill, with their human and CSV renderings.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

pub use crate::kind::price::CostLine;
use crate::kind::price::{cents, usd};
use crate::kind::Kind;
pub use crate::model::placement::Budget;
use crate::model::placement::Stage;
use crate::plan::action::Action;

/// The estimated monthly cost of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceCost {
    /// Logical path.
    pub path: String,
    /// Kind.
    pub kind: Kind,
    /// Provider.
    pub provider: String,
    /// Size slug, for VMs and databases.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<String>,
    /// Monthly USD; `None` (JSON `null`) when any part of it is unpriced.
    pub monthly_usd: Option<f64>,
    /// Why the resource is unpriced.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unpriced: Option<String>,
    /// How the amount is made up.
    pub lines: Vec<CostLine>,
    /// The resource's tags, without the identity tags every resource carries (stack, path, name).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub tags: BTreeMap<String, String>,
}

impl ResourceCost {
    /// The sum of the priced lines: the cost when fully priced, a lower bound otherwise.
    pub fn known_usd(&self) -> f64 {
        cents(self.lines.iter().filter_map(|l| l.monthly_usd).sum())
    }

    /// Whether every part has a price.
    pub fn is_priced(&self) -> bool {
        self.monthly_usd.is_some()
    }
}

/// The estimated monthly cost of a synthesized stack. Resources are in the stack's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// Stack name.
    pub stack: String,
    /// Stage.
    pub stage: Stage,
    /// Default provider.
    pub provider: String,
    /// Region.
    pub region: String,
    /// Per provider, the date its prices were taken (YYYY-MM-DD).
    pub priced_on: BTreeMap<String, String>,
    /// Per resource.
    pub resources: Vec<ResourceCost>,
    /// Sum of every priced line, in USD per month (a lower bound when `unpriced` is not empty).
    pub total_usd: f64,
    /// Paths of the resources without a complete price.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub unpriced: Vec<String>,
    /// The stack's budget cap, if it declares one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub budget: Option<Budget>,
}

/// The cost of the resources sharing one value of a tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagCost {
    /// The tag's value; `None` for the resources without the tag.
    pub value: Option<String>,
    /// Sum of the priced lines of these resources, USD per month.
    pub monthly_usd: f64,
    /// Their paths (prefixed with `stack/` when rolled up over several stacks in a [`Bill`]).
    pub resources: Vec<String>,
    /// Those among them without a complete price, and the shared resources without one (the
    /// group's amount is then a lower bound).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub unpriced: Vec<String>,
    /// The resources shared by every value of the tag ([`TAG_SHARED`]) whose share is included
    /// in `monthly_usd`; they are not in `resources`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub shared: Vec<String>,
    /// This group's share of them, USD per month (included in `monthly_usd`).
    #[serde(skip_serializing_if = "is_zero", default)]
    pub shared_usd: f64,
}

pub(crate) fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// The tag that marks a resource as shared: `konstacks:shared = client` on a resource without
/// a `client` tag of its own (a load balancer serving every client's site) splits its monthly
/// cost evenly across the `client` values of the other resources of its stack, in
/// [`CostReport::by_tag`] and therefore in the bill. The value names the tag to split by, so the
/// rule works for any tag (`konstacks:shared = team`). The split is in whole cents: the cents
/// left over go one each to the first values in sorted order, so the parts add up to the whole.
/// A stack with no resource carrying the tag keeps its shared resources untagged.
pub const TAG_SHARED: &str = "konstacks:shared";

/// `total` split in `n` parts of whole cents that add up to it: the first `total mod n` parts
/// get one cent more.
pub(crate) fn split_cents(total_usd: f64, n: usize) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    // Amounts are rounded to the cent already, so this is exact; a negative total never occurs.
    let total = (total_usd * 100.0).round().max(0.0) as u64;
    let n64 = n as u64;
    let (base, extra) = (total / n64, total % n64);
    (0..n64).map(|i| (base + u64::from(i < extra)) as f64 / 100.0).collect()
}

impl CostReport {
    /// The resources without a complete price.
    pub fn is_complete(&self) -> bool {
        self.unpriced.is_empty()
    }

    /// The cost of the resource at `path`.
    pub fn resource(&self, path: &str) -> Option<&ResourceCost> {
        self.resources.iter().find(|r| r.path == path)
    }

    /// Roll the cost up by the value of tag `key` (for agencies: `client`). Groups are sorted
    /// by value; the resources without the tag come last, under `value: None`, and only if there
    /// are any. Resources tagged [`TAG_SHARED`]` = key` (and not `key` itself) are split evenly
    /// across the groups with a value (see [`TAG_SHARED`]); with no such group they stay
    /// untagged.
    pub fn by_tag(&self, key: &str) -> Vec<TagCost> {
        let mut groups: BTreeMap<Option<String>, TagCost> = BTreeMap::new();
        let mut shared: Vec<&ResourceCost> = Vec::new();
        let add = |groups: &mut BTreeMap<Option<String>, TagCost>, value: Option<String>, r: &ResourceCost| {
            let g = groups.entry(value.clone()).or_insert_with(|| TagCost {
                value,
                monthly_usd: 0.0,
                resources: Vec::new(),
                unpriced: Vec::new(),
                shared: Vec::new(),
                shared_usd: 0.0,
            });
            g.monthly_usd = cents(g.monthly_usd + r.known_usd());
            g.resources.push(r.path.clone());
            if !r.is_priced() {
                g.unpriced.push(r.path.clone());
            }
        };
        for r in &self.resources {
            let value = r.tags.get(key).cloned();
            if value.is_none() && r.tags.get(TAG_SHARED).is_some_and(|v| v == key) {
                shared.push(r);
            } else {
                add(&mut groups, value, r);
            }
        }
        let valued = groups.keys().filter(|k| k.is_some()).count();
        if valued == 0 {
            for r in shared {
                add(&mut groups, None, r);
            }
        } else if !shared.is_empty() {
            let total = cents(shared.iter().map(|r| r.known_usd()).sum());
            let paths: Vec<String> = shared.iter().map(|r| r.path.clone()).collect();
            let unpriced: Vec<String> = shared.iter().filter(|r| !r.is_priced()).map(|r| r.path.clone()).collect();
            // BTreeMap order: the values sorted, so the leftover cents land deterministically.
            let parts = split_cents(total, valued);
            for (g, part) in groups.values_mut().filter(|g| g.value.is_some()).zip(parts) {
                g.shared_usd = part;
                g.monthly_usd = cents(g.monthly_usd + part);
                g.shared = paths.clone();
                g.unpriced.extend(unpriced.iter().cloned());
            }
        }
        // `None` sorts first in a BTreeMap; untagged goes last.
        let untagged = groups.remove(&None);
        groups.into_values().chain(untagged).collect()
    }

    /// The biggest contributors, most expensive first (ties by path), priced amounts only.
    pub fn top(&self, n: usize) -> Vec<&ResourceCost> {
        let mut v: Vec<&ResourceCost> = self.resources.iter().filter(|r| r.known_usd() > 0.0).collect();
        v.sort_by(|a, b| b.known_usd().total_cmp(&a.known_usd()).then_with(|| a.path.cmp(&b.path)));
        v.truncate(n);
        v
    }

    /// A human table: per resource with its breakdown, the total, the unpriced resources and
    /// the budget.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let dates: Vec<String> = self.priced_on.iter().map(|(p, d)| format!("{p} as of {d}")).collect();
        let _ = writeln!(
            out,
            "Monthly cost of {} ({}, {} {}), USD, list prices of {}",
            self.stack,
            self.stage.as_str(),
            self.provider,
            self.region,
            if dates.is_empty() { "no catalogue".to_string() } else { dates.join(", ") }
        );
        out.push('\n');
        let w_path = self.resources.iter().map(|r| r.path.len()).max().unwrap_or(0).max("RESOURCE".len());
        let w_size =
            self.resources.iter().map(|r| r.size.as_deref().unwrap_or("-").len()).max().unwrap_or(0).max("SIZE".len());
        let details = self.resources.iter().filter(|r| r.kind.is_billed()).flat_map(|r| &r.lines);
        // Left part of every row: the resource columns, or an indented breakdown line.
        let w_left =
            (w_path + 2 + 8 + 2 + w_size).max(details.map(|l| l.detail.chars().count() + 4).max().unwrap_or(0));
        let row = |out: &mut String, left: String, amount: String| {
            let pad = w_left.saturating_sub(left.chars().count());
            let _ = writeln!(out, "  {left}{}  {amount:>10}", " ".repeat(pad));
        };
        let amount = |v: Option<f64>| v.map(usd).unwrap_or_else(|| "unpriced".into());
        row(&mut out, format!("{:<w_path$}  {:<8}  {:<w_size$}", "RESOURCE", "KIND", "SIZE"), "MONTHLY".into());
        for r in &self.resources {
            let size = r.size.as_deref().unwrap_or("-");
            row(
                &mut out,
                format!("{:<w_path$}  {:<8}  {size:<w_size$}", r.path, r.kind.as_str()),
                amount(r.monthly_usd),
            );
            if r.kind.is_billed() {
                for l in &r.lines {
                    row(&mut out, format!("    {}", l.detail), amount(l.monthly_usd));
                }
            }
        }
        row(&mut out, "TOTAL".into(), usd(self.total_usd));
        if !self.unpriced.is_empty() {
            let _ = writeln!(
                out,
                "\n  {} resource(s) have no price in the catalogue, the total is a lower bound: {}",
                self.unpriced.len(),
                self.unpriced.join(", ")
            );
        }
        if let Some(b) = self.budget {
            let state = if self.total_usd > b.monthly_usd {
                "OVER the cap"
            } else if !self.unpriced.is_empty() {
                "cannot be checked (unpriced resources)"
            } else {
                "within the cap"
            };
            let _ = writeln!(out, "\n  Budget: {} of {} per month: {state}", usd(self.total_usd), usd(b.monthly_usd));
        }
        out
    }

    /// The report as pretty JSON (the serde form of this type).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The monthly cost change of one planned change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostDelta {
    /// Logical path.
    pub path: String,
    /// Kind.
    pub kind: Kind,
    /// What the plan does.
    pub action: Action,
    /// The change deletes an old instance left by a create-before-destroy replacement.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub deposed: bool,
    /// Monthly USD today (0 for a create); `None` when unpriced.
    pub before_usd: Option<f64>,
    /// Monthly USD after apply (0 for a delete); `None` when unpriced.
    pub after_usd: Option<f64>,
    /// `after - before`; `None` when either is unpriced.
    pub delta_usd: Option<f64>,
}

/// The monthly cost change of a plan. `changes` follows the plan's order, no-ops included so
/// the totals cover the whole stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanCost {
    /// Stack.
    pub stack: String,
    /// Per change.
    pub changes: Vec<CostDelta>,
    /// Monthly USD today (priced resources).
    pub before_usd: f64,
    /// Monthly USD after apply (priced resources).
    pub after_usd: f64,
    /// `after_usd - before_usd`.
    pub delta_usd: f64,
    /// Paths whose before or after is unpriced (their change is not in the totals' delta).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub unpriced: Vec<String>,
}

pub(crate) fn signed(x: f64) -> String {
    if x >= 0.0 {
        format!("+{}", usd(x))
    } else {
        format!("-{}", usd(-x))
    }
}

impl PlanCost {
    /// The cost change of the (non-deposed) change at `path`.
    pub fn delta_of(&self, path: &str) -> Option<&CostDelta> {
        self.changes.iter().find(|c| c.path == path && !c.deposed)
    }

    /// A human table of the changes that change the cost or are unpriced, and the totals.
    pub fn render(&self) -> String {
        let rows: Vec<&CostDelta> =
            self.changes.iter().filter(|c| c.delta_usd.is_none_or(|d| d != 0.0) && c.action != Action::NoOp).collect();
        let mut out = String::new();
        let w = rows.iter().map(|c| c.path.len()).max().unwrap_or(0).max("RESOURCE".len());
        let show = |v: Option<f64>| v.map(usd).unwrap_or_else(|| "unpriced".into());
        let _ = writeln!(out, "Monthly cost change of {}, USD", self.stack);
        if !rows.is_empty() {
            let _ =
                writeln!(out, "\n  {:<3} {:<w$}  {:>10}  {:>10}  {:>10}", "", "RESOURCE", "BEFORE", "AFTER", "CHANGE");
            for c in rows {
                let _ = writeln!(
                    out,
                    "  {:<3} {:<w$}  {:>10}  {:>10}  {:>10}",
                    c.action.symbol(),
                    c.path,
                    show(c.before_usd),
                    show(c.after_usd),
                    c.delta_usd.map(signed).unwrap_or_else(|| "unpriced".into())
                );
            }
        }
        let _ = writeln!(
            out,
            "\n  {} -> {} per month ({})",
            usd(self.before_usd),
            usd(self.after_usd),
            signed(self.delta_usd)
        );
        if !self.unpriced.is_empty() {
            let _ = writeln!(out, "  unpriced, not in the totals: {}", self.unpriced.join(", "));
        }
        out
    }
}

/// A resource's share of a budget overrun.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contributor {
    /// Logical path.
    pub path: String,
    /// Monthly USD.
    pub monthly_usd: f64,
}

/// A plan refused because the stack's estimate is over its [`Budget`], or cannot be checked
/// against it because some resources have no price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetExceeded {
    /// Stack.
    pub stack: String,
    /// The cap, USD per month.
    pub cap_usd: f64,
    /// The estimate (priced resources), USD per month.
    pub total_usd: f64,
    /// The most expensive resources, at most three, most expensive first.
    pub top: Vec<Contributor>,
    /// Resources without a price: with a cap, the estimate must be complete.
    pub unpriced: Vec<String>,
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let top: Vec<String> = self.top.iter().map(|c| format!("{} ${}", c.path, usd(c.monthly_usd))).collect();
        if self.total_usd > self.cap_usd {
            write!(
                f,
                "stack `{}` is estimated at ${}/month, over its budget cap of ${}/month by ${}; biggest contributors: {}",
                self.stack,
                usd(self.total_usd),
                usd(self.cap_usd),
                usd(self.total_usd - self.cap_usd),
                top.join(", ")
            )?;
            if !self.unpriced.is_empty() {
                write!(f, " (plus unpriced: {})", self.unpriced.join(", "))?;
            }
            write!(f, ". Nothing was sent to the cloud; choose smaller sizes or fewer resources, or raise the cap")
        } else {
            write!(
                f,
                "stack `{}` has a budget cap of ${}/month but {} resource(s) have no price in the catalogue ({}), \
                 so the cap cannot be enforced (priced part: ${}/month). Nothing was sent to the cloud; \
                 use sizes the catalogue prices, or remove the cap",
                self.stack,
                usd(self.cap_usd),
                self.unpriced.len(),
                self.unpriced.join(", "),
                usd(self.total_usd)
            )
        }
    }
}

impl std::error::Error for BudgetExceeded {}

/// One client's line of a [`Bill`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillLine {
    /// The tag value (the client).
    pub client: String,
    /// Number of resources.
    pub resources: usize,
    /// Cost, USD per month.
    pub cost_usd: f64,
    /// Markup, USD per month.
    pub markup_usd: f64,
    /// Cost plus markup.
    pub total_usd: f64,
    /// Resources (`stack/path`) without a price: the line is a lower bound.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub unpriced: Vec<String>,
    /// Resources (`stack/path`) shared by every client of their stack ([`TAG_SHARED`]) whose
    /// share is in `cost_usd`; not counted in `resources`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub shared: Vec<String>,
    /// The client's share of them, USD per month (included in `cost_usd`).
    #[serde(skip_serializing_if = "is_zero", default)]
    pub shared_usd: f64,
}

/// The agency billing view: monthly cost per client with a markup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bill {
    /// The tag that names the client.
    pub tag: String,
    /// Markup in percent of the cost.
    pub markup_percent: f64,
    /// Per provider, the date its prices were taken.
    pub priced_on: BTreeMap<String, String>,
    /// One line per client, sorted by client.
    pub lines: Vec<BillLine>,
    /// The resources without the tag that cost something or are unpriced: the agency's own
    /// overhead, not billed (no markup).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unassigned: Option<BillLine>,
    /// Sum of the clients' costs.
    pub cost_usd: f64,
    /// Sum of the clients' markups.
    pub markup_usd: f64,
    /// Sum of the clients' totals.
    pub total_usd: f64,
}

/// Label of the unassigned line in CSV and tables.
pub(crate) const UNASSIGNED: &str = "(unassigned)";

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Bill {
    /// CSV with a header, one row per client (then the unassigned row, if any), two decimals.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("client,resources,cost_usd,markup_percent,markup_usd,total_usd,unpriced\n");
        let pct = format!("{:.2}", self.markup_percent);
        let unassigned = self.unassigned.iter().map(|l| (l, "0.00".to_string()));
        for (l, pct) in self.lines.iter().map(|l| (l, pct.clone())).chain(unassigned) {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{}",
                csv_field(&l.client),
                l.resources,
                usd(l.cost_usd),
                pct,
                usd(l.markup_usd),
                usd(l.total_usd),
                l.unpriced.len()
            );
        }
        out
    }

    /// The bill as pretty JSON (the serde form of this type).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The bill's line for `client`.
    pub fn line(&self, client: &str) -> Option<&BillLine> {
        self.lines.iter().find(|l| l.client == client)
    }
}

impl fmt::Display for Bill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self
            .lines
            .iter()
            .chain(self.unassigned.as_ref())
            .map(|l| l.client.len())
            .max()
            .unwrap_or(0)
            .max(self.tag.len().max("TOTAL".len()));
        writeln!(f, "Monthly bill per {} (markup {}%), USD", self.tag, self.markup_percent)?;
        writeln!(
            f,
            "\n  {:<w$}  {:>9}  {:>10}  {:>10}  {:>10}",
            self.tag.to_uppercase(),
            "RESOURCES",
            "COST",
            "MARKUP",
            "TOTAL"
        )?;
        for l in self.lines.iter().chain(self.unassigned.as_ref()) {
            let mut notes = Vec::new();
            if !l.shared.is_empty() {
                notes.push(format!("incl. {} shared", usd(l.shared_usd)));
            }
            if !l.unpriced.is_empty() {
                notes.push(format!("{} unpriced", l.unpriced.len()));
            }
            writeln!(
                f,
                "  {:<w$}  {:>9}  {:>10}  {:>10}  {:>10}{}",
                l.client,
                l.resources,
                usd(l.cost_usd),
                usd(l.markup_usd),
                usd(l.total_usd),
                if notes.is_empty() { String::new() } else { format!("  ({})", notes.join(", ")) }
            )?;
        }
        writeln!(
            f,
            "  {:<w$}  {:>9}  {:>10}  {:>10}  {:>10}",
            "TOTAL",
            "",
            usd(self.cost_usd),
            usd(self.markup_usd),
            usd(self.total_usd)
        )
    }
}
