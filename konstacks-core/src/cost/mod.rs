//! Cost estimates, plan cost deltas, budget caps and the agency billing view.
//!
//! Everything here is pure: prices come from the providers' static [`Catalog`]s (reading one is
//! not a cloud call), so an estimate or a budget refusal never touches a cloud. This module owns
//! the pricing rules; it must not call providers, read or write state backends, or change plans.
//!
//! # Pricing rules (monthly USD, list prices)
//! - **VM**: size list price × the region's multiplier, plus one public IPv4 address when
//!   `assign_public_ip` is set.
//! - **Database**: size list price × the region's multiplier, × 2 with `high_availability` (a
//!   standby instance of the same size); for Postgres and MySQL also `storage_gb` × the storage
//!   price, and, when `backup_retention_days > 0`, an estimate of backup storage of one full copy
//!   of the allocated storage (`storage_gb` × the backup price): providers keep incremental
//!   snapshots whose total over a retention window is typically close to one full copy. Redis is
//!   sized by memory: only the size is priced.
//! - **Bucket**: the assumed GB stored × the catalogue's storage price, plus the assumed read
//!   and write requests × their prices per 1,000 (assumptions are builder parameters, shown in
//!   the lines).
//! - **VPC, subnet, firewall**: no charge; the providers we model do not bill them.
//! - **DNS zone**: the zone's monthly fee, plus the assumed millions of queries a month (a
//!   visible, overridable assumption) × the price per million (`Pricing::unit_prices`). DNS
//!   records and managed certificates: no charge.
//! - Data transfer, request charges and taxes are not estimated.
//!
//! Storage, backup and address prices are flat (not multiplied per region). Each line is
//! rounded to the cent; totals are sums of lines. A price the catalogue does not know is an
//! explicit *unpriced* marker (`monthly_usd: null` plus a reason), never a silent zero.
//!
//! # Billing per tag
//! Resources roll up per value of a tag (`client`); a resource tagged [`TAG_SHARED`]` = client`
//! and without a `client` of its own is split evenly, in whole cents, across the clients of its
//! stack (see [`TAG_SHARED`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::kind::catalog::Catalog;
use crate::kind::field_map::FieldMap;
pub use crate::kind::price::CostLine;
use crate::kind::price::{cents, PriceCx, UNKNOWN};
use crate::kind::{common, Kind, TAG_NAME, TAG_PATH, TAG_STACK};
pub use crate::model::placement::Budget;
use crate::plan::{Action, Plan, ResourceChange};
use crate::state::{ResourceState, StackState};
use crate::synth::{Expr, SynthResource, Synthesized};

pub mod report;

pub use crate::cost::report::*;

/// Prices resources from the providers' catalogues.
#[derive(Debug, Clone)]
pub struct CostModel<'a> {
    catalogs: Vec<&'a Catalog>,
}

/// The value of an expression known before apply, or `None`.
fn literal(e: &Expr) -> Option<Value> {
    match e {
        Expr::Lit(v) => Some(v.clone()),
        Expr::PhysicalName(n) => Some(Value::String(n.clone())),
        Expr::List(items) => items.iter().map(literal).collect::<Option<Vec<_>>>().map(Value::Array),
        Expr::Map(m) => m
            .iter()
            .map(|(k, v)| literal(v).map(|v| (k.to_string(), v)))
            .collect::<Option<serde_json::Map<_, _>>>()
            .map(Value::Object),
        _ => None,
    }
}

fn user_tags(tags: &Value) -> BTreeMap<String, String> {
    let Value::Object(tags) = tags else {
        return BTreeMap::new();
    };
    tags.iter()
        .filter(|(k, _)| ![TAG_STACK, TAG_PATH, TAG_NAME].contains(&k.as_str()))
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect()
}

impl<'a> CostModel<'a> {
    /// A model over these catalogues (one per provider; the first with a matching name wins).
    pub fn new(catalogs: &[&'a Catalog]) -> Self {
        Self { catalogs: catalogs.to_vec() }
    }

    fn catalog(&self, provider: &str) -> Option<&'a Catalog> {
        self.catalogs.iter().copied().find(|c| c.provider == provider)
    }

    /// Price a synthesized resource from its desired fields.
    pub fn price_resource(&self, r: &SynthResource) -> ResourceCost {
        // A field known only after apply reads as the UNKNOWN marker, so pricing says so.
        let lookup = |f: &str| r.fields.get(f).map(|e| literal(e).unwrap_or_else(|| Value::String(UNKNOWN.into())));
        self.price(&r.path, r.kind, &r.provider, &lookup)
    }

    /// Price a resource from resolved inputs (the field names of the synthesized stack, as
    /// stored in [`ResourceState::inputs`]).
    pub fn price_inputs(&self, path: &str, kind: Kind, provider: &str, inputs: &FieldMap<Value>) -> ResourceCost {
        self.price(path, kind, provider, &|f: &str| inputs.get(f).cloned())
    }

    fn price(&self, path: &str, kind: Kind, provider: &str, lookup: &dyn Fn(&str) -> Option<Value>) -> ResourceCost {
        let tags = lookup(common::TAGS).map(|t| user_tags(&t)).unwrap_or_default();
        let size = if kind.def().fields.contains(&"size") {
            lookup("size").and_then(|v| v.as_str().map(str::to_string))
        } else {
            None
        };
        let mut out = ResourceCost {
            path: path.to_string(),
            kind,
            provider: provider.to_string(),
            size,
            monthly_usd: None,
            unpriced: None,
            lines: Vec::new(),
            tags,
        };
        let Some(cat) = self.catalog(provider) else {
            out.unpriced = Some(format!("no catalogue for provider `{provider}`"));
            return out;
        };
        let cx = PriceCx::new(cat, lookup);
        out.lines = kind.def().price.map(|price| price(&cx)).unwrap_or_default();
        if out.lines.is_empty() {
            out.lines.push(CostLine::priced("none", format!("{kind}: no charge"), 0.0));
            out.monthly_usd = Some(0.0);
            return out;
        }
        for k in cx.unknown_fields() {
            if k != "size" {
                out.lines.push(CostLine::unpriced("unknown", format!("`{k}` is known only after apply")));
            }
        }

        let missing: Vec<&CostLine> = out.lines.iter().filter(|l| l.monthly_usd.is_none()).collect();
        if missing.is_empty() {
            out.monthly_usd = Some(out.known_usd());
        } else {
            out.unpriced = Some(missing.iter().map(|l| l.detail.as_str()).collect::<Vec<_>>().join("; "));
        }
        out
    }

    /// Just the monthly total of a resource as stored in state (`None` when unpriced); cheap for
    /// the kinds that cost nothing, which most of a stack is.
    fn state_usd(&self, path: &str, r: &ResourceState) -> Option<f64> {
        if r.kind.is_billed() {
            self.price_state(path, r).monthly_usd
        } else {
            Some(0.0)
        }
    }

    /// Price a resource as stored in state.
    pub fn price_state(&self, path: &str, r: &ResourceState) -> ResourceCost {
        self.price_inputs(path, r.kind, &r.provider, &r.inputs)
    }

    /// The cost report of a synthesized stack.
    pub fn report(&self, s: &Synthesized) -> CostReport {
        let resources: Vec<ResourceCost> = s.resources.iter().map(|r| self.price_resource(r)).collect();
        let providers: BTreeSet<&str> =
            std::iter::once(s.provider.as_str()).chain(s.resources.iter().map(|r| r.provider.as_str())).collect();
        let priced_on = providers
            .into_iter()
            .filter_map(|p| self.catalog(p).map(|c| (p.to_string(), c.pricing.priced_on.clone())))
            .collect();
        let total_usd = cents(resources.iter().map(ResourceCost::known_usd).sum());
        let unpriced = resources.iter().filter(|r| !r.is_priced()).map(|r| r.path.clone()).collect();
        CostReport {
            stack: s.name.clone(),
            stage: s.stage,
            provider: s.provider.clone(),
            region: s.region.clone(),
            priced_on,
            resources,
            total_usd,
            unpriced,
            budget: s.budget,
        }
    }

    /// The monthly cost before and after the change `c` at position `i` of a plan of `s`. The
    /// planner lists the stack's resources first, in stack order: the resource at `i` is almost
    /// always the changed one; anything else is looked up in `index`, built on first use.
    fn change_usd<'s>(
        &self,
        (i, c): (usize, &ResourceChange),
        s: &'s Synthesized,
        state: &StackState,
        index: &mut Option<HashMap<&'s str, usize>>,
    ) -> (Option<f64>, Option<f64>) {
        let prior = c.recorded(state);
        let before = match c.action {
            Action::Create => Some(0.0),
            _ => prior.and_then(|p| self.state_usd(&c.path, p)),
        };
        let after = match c.action {
            Action::Delete => Some(0.0),
            _ if !c.kind.is_billed() => Some(0.0),
            // Unchanged: the state's inputs are the desired ones, priced once.
            Action::NoOp if prior.is_some() => before,
            _ => match s.resources.get(i).filter(|r| r.path == c.path) {
                Some(r) => Some(r),
                None => index
                    .get_or_insert_with(|| s.resources.iter().enumerate().map(|(i, r)| (r.path.as_str(), i)).collect())
                    .get(c.path.as_str())
                    .and_then(|i| s.resources.get(*i)),
            }
            .and_then(|r| self.price_resource(r).monthly_usd),
        };
        (before, after)
    }

    /// The monthly cost change of every change of a plan: before from the inputs in `state`,
    /// after from the desired fields of `s`.
    pub fn plan_cost(&self, plan: &Plan, s: &Synthesized, state: &StackState) -> PlanCost {
        let mut changes = Vec::with_capacity(plan.changes.len());
        let mut index: Option<HashMap<&str, usize>> = None;
        for (i, c) in plan.changes.iter().enumerate() {
            // Kept or updated in place, the kind is the same before and after: one that is not
            // billed costs nothing on either side, whatever its record holds.
            let (before, after) = if matches!(c.action, Action::NoOp | Action::Update) && !c.kind.is_billed() {
                (Some(0.0), Some(0.0))
            } else {
                self.change_usd((i, c), s, state, &mut index)
            };
            let delta = match (before, after) {
                (Some(b), Some(a)) => Some(cents(a - b)),
                _ => None,
            };
            changes.push(CostDelta {
                path: c.path.clone(),
                kind: c.kind,
                action: c.action,
                deposed: c.deposed,
                before_usd: before,
                after_usd: after,
                delta_usd: delta,
            });
        }
        let before_usd = cents(changes.iter().filter_map(|c| c.before_usd).sum());
        let after_usd = cents(changes.iter().filter_map(|c| c.after_usd).sum());
        let unpriced = changes.iter().filter(|c| c.delta_usd.is_none()).map(|c| c.path.clone()).collect();
        PlanCost {
            stack: plan.stack.clone(),
            changes,
            before_usd,
            after_usd,
            delta_usd: cents(after_usd - before_usd),
            unpriced,
        }
    }
}

/// The cost report of a synthesized stack against these catalogues.
pub fn estimate(s: &Synthesized, catalogs: &[&Catalog]) -> CostReport {
    CostModel::new(catalogs).report(s)
}

/// The monthly cost change of each change of `plan` (see [`CostModel::plan_cost`]).
pub fn plan_cost(plan: &Plan, s: &Synthesized, state: &StackState, catalogs: &[&Catalog]) -> PlanCost {
    CostModel::new(catalogs).plan_cost(plan, s, state)
}

/// Check a stack's estimate against its [`Budget`]. Pure: call it before any cloud call. A
/// stack without a budget always passes; one with a budget is refused when its estimate is
/// over the cap or when any resource is unpriced (a cap that cannot be checked is no cap).
pub fn check_budget(s: &Synthesized, report: &CostReport) -> Result<(), BudgetExceeded> {
    let Some(budget) = s.budget else {
        return Ok(());
    };
    let over = report.total_usd > budget.monthly_usd;
    if !over && report.unpriced.is_empty() {
        return Ok(());
    }
    Err(BudgetExceeded {
        stack: s.name.clone(),
        cap_usd: budget.monthly_usd,
        total_usd: report.total_usd,
        top: report
            .top(3)
            .into_iter()
            .map(|r| Contributor { path: r.path.clone(), monthly_usd: r.known_usd() })
            .collect(),
        unpriced: report.unpriced.clone(),
    })
}

/// What a bill line adds up while the reports are walked.
#[derive(Debug, Default)]
struct BillAcc {
    cost: f64,
    resources: Vec<String>,
    unpriced: Vec<String>,
    shared: Vec<String>,
    shared_usd: f64,
}

/// Bill the cost of one or more stacks per value of `tag` (for agencies: `client`), adding
/// `markup_percent` to each client's cost. Resources are keyed `stack/path`. A resource tagged
/// [`TAG_SHARED`]` = tag` is split evenly across the clients of its own stack (see
/// [`CostReport::by_tag`]); each line says its share in `shared_usd`.
pub fn billing_by_tag(reports: &[CostReport], tag: &str, markup_percent: f64) -> Bill {
    let mut clients: BTreeMap<String, BillAcc> = BTreeMap::new();
    let mut rest = BillAcc::default();
    let mut priced_on = BTreeMap::new();
    for r in reports {
        priced_on.extend(r.priced_on.iter().map(|(k, v)| (k.clone(), v.clone())));
        for g in r.by_tag(tag) {
            let entry = match &g.value {
                Some(v) => clients.entry(v.clone()).or_default(),
                None => &mut rest,
            };
            entry.cost = cents(entry.cost + g.monthly_usd);
            entry.shared_usd = cents(entry.shared_usd + g.shared_usd);
            let keyed = |paths: &[String]| paths.iter().map(|p| format!("{}/{p}", r.stack)).collect::<Vec<_>>();
            entry.resources.extend(keyed(&g.resources));
            entry.unpriced.extend(keyed(&g.unpriced));
            entry.shared.extend(keyed(&g.shared));
        }
    }
    let line = |client: String, acc: BillAcc, pct: f64| {
        let markup = cents(acc.cost * pct / 100.0);
        BillLine {
            client,
            resources: acc.resources.len(),
            cost_usd: acc.cost,
            markup_usd: markup,
            total_usd: cents(acc.cost + markup),
            unpriced: acc.unpriced,
            shared: acc.shared,
            shared_usd: acc.shared_usd,
        }
    };
    let lines: Vec<BillLine> = clients.into_iter().map(|(c, v)| line(c, v, markup_percent)).collect();
    let unassigned = (rest.cost > 0.0 || !rest.unpriced.is_empty()).then(|| line(UNASSIGNED.to_string(), rest, 0.0));
    let cost_usd = cents(lines.iter().map(|l| l.cost_usd).sum());
    let markup_usd = cents(lines.iter().map(|l| l.markup_usd).sum());
    Bill {
        tag: tag.to_string(),
        markup_percent,
        priced_on,
        lines,
        unassigned,
        cost_usd,
        markup_usd,
        total_usd: cents(cost_usd + markup_usd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::report::{csv_field, signed};
    use crate::kind::price::usd;
    use crate::kind::ResourceKind;
    use crate::kinds::Vm;

    #[test]
    fn cents_round_half_away_and_format() {
        assert_eq!(cents(18.649999), 18.65);
        assert_eq!(usd(2.3), "2.30");
        assert_eq!(signed(-1.5), "-1.50");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn shared_costs_split_in_cents_that_add_up_to_the_whole() {
        use crate::cost::report::split_cents;
        assert_eq!(split_cents(19.05, 3), [6.35, 6.35, 6.35]);
        assert_eq!(split_cents(19.06, 3), [6.36, 6.35, 6.35]);
        assert_eq!(split_cents(0.02, 3), [0.01, 0.01, 0.0]);
        assert_eq!(split_cents(10.0, 1), [10.0]);
        assert!(split_cents(1.0, 0).is_empty());
        let parts = split_cents(100.0, 7);
        assert_eq!(cents(parts.iter().sum()), 100.0);
        assert_eq!(parts.iter().filter(|p| **p == 14.29).count(), 4, "{parts:?}");
    }

    #[test]
    fn a_priced_field_known_only_after_apply_is_unpriced() {
        let cat = crate::sim::SimCloud::catalog();
        let attr = |a: &str| Expr::attr(0, "other", a, false);
        let r = SynthResource {
            path: "web".into(),
            kind: Vm::KIND,
            provider: "sim".into(),
            deps: vec![0],
            depends_on: vec!["other".into()],
            fields: crate::kind::FieldMap::from([
                ("size".to_string(), Expr::Lit(Value::String("small".into()))),
                ("assign_public_ip".to_string(), attr("flag")),
            ]),
            health: None,
            replaced_on_change: Vec::new(),
        };
        let c = CostModel::new(&[&cat]).price_resource(&r);
        assert_eq!(c.monthly_usd, None);
        assert_eq!(c.known_usd(), 15.0);
        assert!(c.unpriced.unwrap_or_default().contains("`assign_public_ip` is known only after apply"));
    }
}
