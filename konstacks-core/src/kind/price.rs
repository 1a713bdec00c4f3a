//! What a kind's price function sees and returns: the resolved inputs of one resource (typed
//! through [`Field`]s), its provider's catalogue, and [`CostLine`]s. The cost layer sums them;
//! each kind decides what it is billed for.

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kind::catalog::{Catalog, Offer};
use crate::kind::field::{common, Field};

/// Marker for a priced field whose value is known only after apply.
pub const UNKNOWN: &str = "(known after apply)";

/// Round to the cent.
pub fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `12.5` -> `12.50`.
pub fn usd(x: f64) -> String {
    format!("{:.2}", cents(x))
}

/// One line of a resource's cost breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    /// What is charged: `size`, `public_ipv4`, `storage`, `backups` or `none`.
    pub item: String,
    /// How the amount was computed, for humans.
    pub detail: String,
    /// Monthly USD, rounded to the cent; `None` when the catalogue has no price for it.
    pub monthly_usd: Option<f64>,
}

impl CostLine {
    /// A priced line.
    pub fn priced(item: &str, detail: String, amount: f64) -> Self {
        Self { item: item.into(), detail, monthly_usd: Some(cents(amount)) }
    }

    /// A line the catalogue has no price for.
    pub fn unpriced(item: &str, detail: String) -> Self {
        Self { item: item.into(), detail, monthly_usd: None }
    }

    /// `amount` per month when the catalogue has a price, unpriced otherwise.
    pub fn per_unit(item: &str, detail: String, units: f64, price: Option<f64>) -> Self {
        match price {
            Some(p) => Self::priced(item, format!("{detail} x {p}"), units * p),
            None => Self::unpriced(item, format!("{detail}: no price")),
        }
    }
}

/// One resource's resolved inputs and its provider's catalogue. Remembers which fields the
/// price function read that are known only after apply, so the estimate says so.
pub struct PriceCx<'a> {
    /// The provider's catalogue.
    pub catalog: &'a Catalog,
    lookup: &'a dyn Fn(&str) -> Option<Value>,
    unknown: RefCell<BTreeSet<&'static str>>,
}

impl<'a> PriceCx<'a> {
    /// Inputs read through `lookup`; a value known only after apply is the string [`UNKNOWN`].
    pub fn new(catalog: &'a Catalog, lookup: &'a dyn Fn(&str) -> Option<Value>) -> Self {
        Self { catalog, lookup, unknown: RefCell::new(BTreeSet::new()) }
    }

    /// The fields read that are known only after apply.
    pub fn unknown_fields(&self) -> BTreeSet<&'static str> {
        self.unknown.borrow().clone()
    }

    fn raw(&self, name: &'static str) -> Option<Value> {
        let v = (self.lookup)(name)?;
        if v.as_str() == Some(UNKNOWN) {
            self.unknown.borrow_mut().insert(name);
        }
        Some(v)
    }

    /// A field's value, when known and of the right type.
    pub fn get<K, T: DeserializeOwned>(&self, f: Field<K, T>) -> Option<T> {
        self.raw(f.name()).filter(|v| v.as_str() != Some(UNKNOWN)).and_then(|v| T::deserialize(v).ok())
    }

    /// A flag, false when unknown.
    pub fn flag<K>(&self, f: Field<K, bool>) -> bool {
        self.get(f).unwrap_or(false)
    }

    /// A count, 0 when unknown.
    pub fn number<K>(&self, f: Field<K, u32>) -> f64 {
        self.get(f).map(f64::from).unwrap_or(0.0)
    }

    /// The region.
    pub fn region(&self) -> String {
        (self.lookup)(common::REGION).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    /// The list price line of a size (VM size, database class, cache node), times `factor`
    /// (for example 2 for a standby) and the region's multiplier.
    pub fn size_line<K>(
        &self,
        what: &str,
        size: Field<K, String>,
        lookup: for<'c> fn(&'c Catalog, &str) -> Option<&'c Offer>,
        factor: (f64, &str),
    ) -> CostLine {
        let provider = &self.catalog.provider;
        let offer = match self.raw(size.name()).as_ref().and_then(Value::as_str) {
            None => Err("no size".to_string()),
            Some(UNKNOWN) => Err("the size is known only after apply".to_string()),
            Some(s) => lookup(self.catalog, s)
                .ok_or_else(|| format!("size `{s}` is not in the catalogue of provider `{provider}`")),
        };
        let o = match offer {
            Ok(o) => o,
            Err(reason) => return CostLine::unpriced("size", reason),
        };
        let mut detail = format!("{what} {} ({})", o.slug, o.native);
        let Some(p) = o.monthly_usd else {
            return CostLine::unpriced("size", format!("{detail}: no list price"));
        };
        let region = self.region();
        let multiplier = self.catalog.pricing.multiplier(&region);
        detail.push_str(&format!(" at {}", usd(p)));
        if multiplier != 1.0 {
            detail.push_str(&format!(" x {multiplier} region {region}"));
        }
        let (n, why) = factor;
        if n != 1.0 {
            detail.push_str(&format!(" x {n} {why}"));
        }
        CostLine::priced("size", detail, p * multiplier * n)
    }
}
