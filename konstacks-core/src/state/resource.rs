//! One managed resource as recorded in state, with what the provider reported kept as the
//! difference from what it was applied with.
//!
//! Most of what a cloud reports about a resource repeats its inputs: name, region, block,
//! tags. Keeping both in full doubled the memory and the size of every state file and journal
//! record, which is what bounded reload time and plan memory at 100,000 resources (ADR 0008).
//! So state keeps `attrs` as a delta: a reported field equal to its input is left out, and a
//! field that has an input but was not reported is kept as `null`. Reading goes through
//! [`ResourceState::attr`] and [`ResourceState::attrs`], which give the full view back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kind::field_map::FieldMap;
use crate::kind::Kind;

/// One managed resource as recorded in state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Stored")]
pub struct ResourceState {
    /// Kind.
    pub kind: Kind,
    /// Provider name.
    pub provider: String,
    /// Provider id.
    pub id: String,
    /// How many times it has been replaced (suffix of the physical name).
    #[serde(default)]
    pub generation: u32,
    /// The resolved inputs it was last applied with (secrets as redacted markers). A few
    /// entries, contiguous: a `BTreeMap` took an eleven-slot node per resource.
    pub inputs: FieldMap<Value>,
    /// What the provider reported, as the difference from `inputs` (see the module docs).
    #[serde(rename = "attrs_delta")]
    attrs: FieldMap<Value>,
    /// Paths of the resources it depended on when applied (destroy order).
    #[serde(default)]
    pub deps: Vec<String>,
    /// Secret attributes, encrypted with the key from `KONSTACKS_SECRET_KEY` (absent without a key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sealed: BTreeMap<String, String>,
}

/// The stored form. State written before the delta (format 1) holds every attribute in full
/// under `attrs`: it reads the same, and is reduced to the delta as it loads. Format 2 writes
/// the delta under its own name, `attrs_delta`, so neither can be read as the other (a journal
/// line carries no version of its own).
#[derive(Deserialize)]
struct Stored {
    kind: Kind,
    provider: String,
    id: String,
    #[serde(default)]
    generation: u32,
    inputs: FieldMap<Value>,
    #[serde(default)]
    attrs: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    attrs_delta: Option<FieldMap<Value>>,
    #[serde(default)]
    deps: Vec<String>,
    #[serde(default)]
    sealed: BTreeMap<String, String>,
}

impl From<Stored> for ResourceState {
    fn from(mut s: Stored) -> Self {
        // The names of a kind's fields are known: read ones share them instead of each holding
        // a copy.
        s.inputs.share_names(s.kind.def().fields);
        let attrs = match s.attrs_delta {
            Some(d) => d,
            None => delta(&s.inputs, s.attrs.unwrap_or_default()),
        };
        Self {
            kind: s.kind,
            provider: s.provider,
            id: s.id,
            generation: s.generation,
            inputs: s.inputs,
            attrs,
            deps: s.deps,
            sealed: s.sealed,
        }
    }
}

impl ResourceState {
    /// A resource of `kind` with provider id `id`, applied with `inputs`, for which the provider
    /// reported `attrs` (in full; only the difference from `inputs` is kept). Generation 0, no
    /// dependencies, nothing sealed.
    pub fn new(
        kind: Kind,
        provider: impl Into<String>,
        id: impl Into<String>,
        inputs: impl Into<FieldMap<Value>>,
        attrs: BTreeMap<String, Value>,
    ) -> Self {
        let inputs = inputs.into();
        let attrs = delta(&inputs, attrs);
        Self {
            kind,
            provider: provider.into(),
            id: id.into(),
            generation: 0,
            inputs,
            attrs,
            deps: Vec::new(),
            sealed: BTreeMap::new(),
        }
    }

    /// The reported attribute `name`, or `None` when the provider did not report it (or
    /// reported `null`).
    pub fn attr(&self, name: &str) -> Option<&Value> {
        self.attrs.get(name).or_else(|| self.inputs.get(name)).filter(|v| !v.is_null())
    }

    /// Every reported attribute, in full.
    pub fn attrs(&self) -> BTreeMap<String, Value> {
        let mut all: BTreeMap<String, Value> = self
            .inputs
            .iter()
            .filter(|(k, v)| !v.is_null() && self.attrs.get(k).is_none())
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        all.extend(self.attrs.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.to_string(), v.clone())));
        all
    }

    /// Replace what the provider reported (after a refresh), given in full.
    pub fn set_attrs(&mut self, attrs: BTreeMap<String, Value>) {
        self.attrs = delta(&self.inputs, attrs);
    }

    /// Replace the inputs, keeping the reported attributes as they read now.
    pub fn set_inputs(&mut self, inputs: impl Into<FieldMap<Value>>) {
        let attrs = self.attrs();
        self.inputs = inputs.into();
        self.attrs = delta(&self.inputs, attrs);
    }
}

/// `attrs` without what `inputs` already says, plus a `null` for each input (other than `null`)
/// not reported. A few entries: a [`FieldMap`] rather than a `BTreeMap`, whose node of eleven
/// slots even for one entry would be most of the difference's memory at 100,000 resources.
fn delta(inputs: &FieldMap<Value>, attrs: BTreeMap<String, Value>) -> FieldMap<Value> {
    let unreported: Vec<(String, Value)> = inputs
        .iter()
        .filter(|(k, v)| !v.is_null() && !attrs.contains_key(*k))
        .map(|(k, _)| (k.to_string(), Value::Null))
        .collect();
    let mut out: FieldMap<Value> =
        unreported.into_iter().chain(attrs.into_iter().filter(|(k, v)| inputs.get(k) != Some(v))).collect();
    out.shrink_to_fit();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::ResourceKind;
    use serde_json::json;

    fn map(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn attrs_read_back_in_full_and_only_the_difference_is_stored() {
        let inputs = map(json!({"name": "web", "region": "fra1", "user_data": "#cloud-config", "tags": {"a": "b"}}));
        let attrs = map(json!({"id": "vm-1", "name": "web", "region": "fra1", "tags": {"a": "b", "x": "y"}}));
        let r = ResourceState::new(crate::kinds::Vm::KIND, "sim", "vm-1", inputs, attrs.clone());
        assert_eq!(r.attrs(), attrs);
        assert_eq!(r.attr("name"), Some(&json!("web")));
        assert_eq!(r.attr("tags"), Some(&json!({"a": "b", "x": "y"})));
        assert_eq!(r.attr("user_data"), None, "an input the provider does not report is not an attribute");
        assert_eq!(r.attr("missing"), None);
        let stored = serde_json::to_value(&r).unwrap_or_default();
        assert_eq!(stored["attrs_delta"], json!({"id": "vm-1", "tags": {"a": "b", "x": "y"}, "user_data": null}));
        let back: ResourceState = serde_json::from_value(stored).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
    }

    #[test]
    fn state_written_in_full_reads_as_the_same_resource() {
        let full = json!({"kind": "vpc", "provider": "sim", "id": "vpc-1", "inputs": {"cidr": "10.0.0.0/16"},
            "attrs": {"id": "vpc-1", "cidr": "10.0.0.0/16"}, "generation": 2});
        let r: ResourceState = serde_json::from_value(full).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.generation, 2);
        assert_eq!(r.attrs(), map(json!({"id": "vpc-1", "cidr": "10.0.0.0/16"})));
        assert_eq!(serde_json::to_value(&r).unwrap_or_default()["attrs_delta"], json!({"id": "vpc-1"}));
    }

    #[test]
    fn new_inputs_keep_the_reported_attributes() {
        let mut r = ResourceState::new(
            crate::kinds::Vpc::KIND,
            "sim",
            "vpc-1",
            map(json!({"cidr": "10.0.0.0/16", "name": "a"})),
            map(json!({"cidr": "10.0.0.0/16", "name": "a", "id": "vpc-1"})),
        );
        r.set_inputs(map(json!({"cidr": "10.0.0.0/16", "name": "b"})));
        assert_eq!(r.attr("name"), Some(&json!("a")));
        r.set_attrs(map(json!({"cidr": "10.0.0.0/16", "name": "b", "id": "vpc-1"})));
        assert_eq!(r.attrs(), map(json!({"cidr": "10.0.0.0/16", "name": "b", "id": "vpc-1"})));
    }
}
