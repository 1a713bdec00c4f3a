//! What a resource kind is, described once: the [`ResourceKind`] trait a builder implements, the
//! [`KindDef`] descriptor every layer above reads (force-new fields, secrets, replacement order,
//! pricing, catalogue check), the [`Kind`] handle that erases it, and typed [`Field`] names.
//!
//! The engine, planner, state and provider registry work through this module only: none of them
//! names a specific kind. The kinds themselves live in the `kinds` module, one file each.
//! Lowering (validation and field description while `synth()` runs) happens through
//! [`LowerCx`] and [`StackCx`], defined here because [`ResourceKind`] and [`KindDef`] name them.

pub mod api;
pub mod catalog;
pub mod expr;
pub mod field;
pub mod field_map;
pub mod fronts;
pub mod price;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::base::cidr::Cidr;
use crate::base::diag::Diagnostics;
use crate::kind::catalog::Catalog;
use crate::kind::expr::Expr;
pub(crate) use crate::kind::field::observed;
pub use crate::kind::field::{common, Field, Observed, Selector, Tags, TAG_NAME, TAG_PATH, TAG_STACK};
pub use crate::kind::field_map::FieldMap;
use crate::kind::price::{CostLine, PriceCx};
use crate::model::gate::HealthGate;
use crate::model::refs::{NodeRef, Ref};

/// Everything that is true of a kind whatever the cloud. One `const` per kind; the engine and
/// every layer above it read kinds through this descriptor only.
pub struct KindDef {
    /// Stable name used in state, tags, plans and JSON (`vpc`, `cache`).
    pub id: &'static str,
    /// Every field of the resolved spec, sorted.
    pub fields: &'static [&'static str],
    /// Fields whose change cannot be applied in place: the resource is replaced.
    pub force_new: &'static [&'static str],
    /// Fields holding a secret input (generated or provided). The engine generates, seals and
    /// resolves them; outputs of the same name are secret.
    pub secrets: &'static [&'static str],
    /// Secret fields an update can set to a new value on an existing resource (a database's
    /// admin password). When a secret is lost (no state key, or no sealed copy) and a dependent
    /// needs it, the engine rotates it in place, if the provider's API agrees
    /// ([`api::Api::sets_secret_on_update`]); otherwise the run is refused before any change.
    pub rotatable_secrets: &'static [&'static str],
    /// Whether a replacement may create the new resource before deleting the old one.
    pub create_before_destroy: bool,
    /// Whether the resource holds data that a delete loses (databases, caches, buckets, zones).
    pub holds_data: bool,
    /// The boolean field that, while `true`, makes the cloud refuse to delete the resource
    /// (`deletion_protection` of a database). A planned delete or replacement of a protected
    /// resource is refused up front unless the run may turn it off first (an update).
    pub deletion_protection: Option<&'static str>,
    /// Monthly cost lines from the resolved inputs; `None` for a kind no cloud bills by itself.
    pub price: Option<fn(&PriceCx<'_>) -> Vec<CostLine>>,
    /// Whether a provider's catalogue has what this kind needs (sizes, engines).
    pub offered_by: fn(&Catalog) -> bool,
    /// Checks across every resource of this kind in a stack (overlaps, capacity).
    pub check_stack: fn(&mut StackCx<'_>),
    /// For kinds that send traffic to other resources (load balancers): their target groups
    /// from the lowered fields. A replacement of a target is then a release.
    pub fronts: Option<fronts::FrontsFn>,
    /// For kinds that run a versioned workload (VMs running an app): the version in the
    /// recorded inputs, shown in plans and release history.
    pub version_of: Option<fronts::VersionFn>,
}

/// A kind of resource: a `Copy` handle to its [`KindDef`]. Compares, orders, hashes and
/// serializes by its id.
#[derive(Clone, Copy)]
pub struct Kind(&'static KindDef);

impl Kind {
    /// The handle of a descriptor.
    pub const fn of(def: &'static KindDef) -> Self {
        Self(def)
    }

    /// The descriptor.
    pub fn def(self) -> &'static KindDef {
        self.0
    }

    /// The stable name used in state, tags and JSON.
    pub fn as_str(self) -> &'static str {
        self.0.id
    }

    /// Fields whose change cannot be applied in place.
    pub fn force_new_fields(self) -> &'static [&'static str] {
        self.0.force_new
    }

    /// Whether a replacement may create the new resource before deleting the old one.
    pub fn create_before_destroy(self) -> bool {
        self.0.create_before_destroy
    }

    /// Secret fields of the kind.
    pub fn secrets(self) -> &'static [&'static str] {
        self.0.secrets
    }

    /// Whether the secret field `name` can be set to a new value by an update.
    pub fn is_rotatable(self, name: &str) -> bool {
        self.0.secrets.contains(&name) && self.0.rotatable_secrets.contains(&name)
    }

    /// Whether the field `name` is a secret of this kind.
    pub fn is_secret(self, name: &str) -> bool {
        self.0.secrets.contains(&name)
    }

    /// Whether a cloud bills this kind by itself (VPCs, subnets and firewalls are free).
    pub fn is_billed(self) -> bool {
        self.0.price.is_some()
    }

    /// Whether a delete loses data.
    pub fn holds_data(self) -> bool {
        self.0.holds_data
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}
impl Eq for Kind {}
impl PartialOrd for Kind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Kind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.id.cmp(other.0.id)
    }
}
impl std::hash::Hash for Kind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id.hash(state)
    }
}
impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kind({})", self.0.id)
    }
}
impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.id)
    }
}
impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.id)
    }
}

/// A kind of resource that can be added to a stack: the builder type is the kind. Everything
/// cloud-independent about it is here and in its [`KindDef`].
pub trait ResourceKind: Sized + Clone + fmt::Debug + Send + Sync + 'static {
    /// The resolved spec providers receive.
    type Spec: Serialize + DeserializeOwned + Send + Sync + fmt::Debug;
    /// The observed state providers return (carries `id`, `name`, `region`, `tags`).
    type Observed: Observed;
    /// The kind handle.
    const KIND: Kind;

    /// Validate the builder and describe its fields; problems go to `cx`.
    fn lower(&self, cx: &mut LowerCx<'_>);

    /// The zero-downtime replacement gate, for kinds that have one.
    fn health(&self) -> Option<HealthGate> {
        None
    }
}

/// The erased side of a builder, so a stack can hold any kind.
trait AnyNode: Send + Sync + fmt::Debug {
    fn kind(&self) -> Kind;
    fn lower(&self, cx: &mut LowerCx<'_>);
    fn health(&self) -> Option<HealthGate>;
    fn as_any(&self) -> &dyn Any;
}

impl<K: ResourceKind> AnyNode for K {
    fn kind(&self) -> Kind {
        K::KIND
    }
    fn lower(&self, cx: &mut LowerCx<'_>) {
        ResourceKind::lower(self, cx)
    }
    fn health(&self) -> Option<HealthGate> {
        ResourceKind::health(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One builder added to a stack, of any kind.
#[derive(Debug, Clone)]
pub struct Node(Arc<dyn AnyNode>);

impl Node {
    /// Wrap a builder.
    pub fn new<K: ResourceKind>(k: K) -> Self {
        Self(Arc::new(k))
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.0.kind()
    }

    /// The builder, when it is of kind `K`.
    pub fn get<K: ResourceKind>(&self) -> Option<&K> {
        self.0.as_any().downcast_ref::<K>()
    }

    /// Validate and describe.
    pub fn lower(&self, cx: &mut LowerCx<'_>) {
        self.0.lower(cx)
    }

    /// Its health gate, if any.
    pub fn health(&self) -> Option<HealthGate> {
        self.0.health()
    }
}

/// A catalogue check for kinds every provider that registers them can create.
pub fn always_offered(_: &Catalog) -> bool {
    true
}

/// A stack check for kinds with no cross-resource rule.
pub fn no_stack_check(_: &mut StackCx<'_>) {}

// ---------------------------------------------------------------------------------------------
// Lowering

/// One resource of the stack being lowered.
#[derive(Debug, Clone, Copy)]
pub struct NodeEntry<'a> {
    /// Logical path (`network/vpc`).
    pub path: &'a str,
    /// The builder.
    pub node: &'a Node,
}

/// The whole stack, read-only, plus its diagnostics.
pub struct StackCx<'a> {
    stack: &'a str,
    serial: u32,
    nodes: &'a [NodeEntry<'a>],
    diags: &'a mut Diagnostics,
}

impl<'a> StackCx<'a> {
    /// A view of a stack named `stack` (serial `serial`) with these nodes.
    pub fn new(stack: &'a str, serial: u32, nodes: &'a [NodeEntry<'a>], diags: &'a mut Diagnostics) -> Self {
        Self { stack, serial, nodes, diags }
    }

    /// The stack's name.
    pub fn stack(&self) -> &'a str {
        self.stack
    }

    /// The full path of the resource at `index` (`shop/network/vpc`).
    pub fn full_path(&self, index: usize) -> String {
        format!("{}/{}", self.stack, self.path(index))
    }

    /// The logical path of the resource at `index`.
    pub fn path(&self, index: usize) -> &'a str {
        self.nodes.get(index).map(|n| n.path).unwrap_or_default()
    }

    /// Every resource of kind `K`, with its index.
    pub fn of_kind<K: ResourceKind>(&self) -> impl Iterator<Item = (usize, &'a K)> + 'a {
        self.nodes.iter().enumerate().filter_map(|(i, n)| n.node.get::<K>().map(|k| (i, k)))
    }

    /// The builder at `index`, when it is of kind `K`.
    pub fn node<K: ResourceKind>(&self, index: usize) -> Option<&'a K> {
        self.nodes.get(index).and_then(|n| n.node.get::<K>())
    }

    /// The index a reference points to, when it is a resource of this stack.
    pub fn index_of<T>(&self, r: Ref<T>) -> Option<usize> {
        self.index_of_node(r.erase())
    }

    fn index_of_node(&self, r: NodeRef) -> Option<usize> {
        (r.stack == self.serial && (r.index as usize) < self.nodes.len()).then_some(r.index as usize)
    }

    /// Report a problem of the resource at `index`.
    pub fn error(&mut self, index: usize, code: &'static str, message: impl Into<String>, help: impl Into<String>) {
        let p = self.full_path(index);
        self.diags.push(code, p, message, help);
    }
}

/// One resource being lowered: its place in the stack, the catalogue of its provider, and the
/// fields it describes.
pub struct LowerCx<'a> {
    st: StackCx<'a>,
    index: usize,
    catalog: Option<&'a Catalog>,
    fields: FieldMap<Expr>,
}

impl<'a> LowerCx<'a> {
    /// The context of the resource at `index`, with its provider's catalogue when configured.
    pub fn new(st: StackCx<'a>, index: usize, catalog: Option<&'a Catalog>, fields: FieldMap<Expr>) -> Self {
        Self { st, index, catalog, fields }
    }

    /// The fields described so far.
    pub fn into_fields(self) -> FieldMap<Expr> {
        let mut fields = self.fields;
        fields.shrink_to_fit();
        fields
    }

    /// The stack view.
    pub fn stack(&self) -> &StackCx<'a> {
        &self.st
    }

    /// The base physical name synth derived for this resource (`<stack>-<path>`), before any
    /// `-N` replacement suffix; `None` if synth did not set one.
    pub fn physical_name(&self) -> Option<&str> {
        match self.fields.get(common::NAME) {
            Some(Expr::PhysicalName(base)) => Some(base),
            _ => None,
        }
    }

    /// The catalogue of the resource's provider, when that provider is configured.
    pub fn catalog(&self) -> Option<&'a Catalog> {
        self.catalog
    }

    /// Report a problem of this resource.
    pub fn error(&mut self, code: &'static str, message: impl Into<String>, help: impl Into<String>) {
        self.st.error(self.index, code, message, help);
    }

    /// Set a field to a literal value.
    pub fn set<K, T: Serialize>(&mut self, field: Field<K, T>, value: T) {
        self.fields.insert(field.name().into(), Expr::lit(value));
    }

    /// Set a field to an expression (a reference, a list of references, a secret).
    pub fn set_expr<K, T>(&mut self, field: Field<K, T>, e: Expr) {
        self.fields.insert(field.name().into(), e);
    }

    /// Check a typed reference and return the index it points to; a problem is reported as
    /// `what` (`the subnet's VPC`).
    pub fn target<T: ResourceKind>(&mut self, r: Ref<T>, what: &str) -> Option<usize> {
        self.target_node(r.erase(), Some(T::KIND), what)
    }

    /// Check an erased reference (an output's source) and return its index.
    pub(crate) fn target_any(&mut self, r: NodeRef, what: &str) -> Option<usize> {
        self.target_node(r, None, what)
    }

    fn target_node(&mut self, r: NodeRef, expect: Option<Kind>, what: &str) -> Option<usize> {
        if r.stack != self.st.serial {
            self.error(
                "foreign-reference",
                format!("{what} refers to a resource of another stack"),
                "a stack may only reference its own resources; export the value from the other stack instead",
            );
            return None;
        }
        match self.st.nodes.get(r.index as usize) {
            Some(n) if expect.is_none_or(|k| n.node.kind() == k) => Some(r.index as usize),
            Some(n) => {
                let (expect, path, kind) = (expect.map(|k| k.as_str()).unwrap_or_default(), n.path, n.node.kind());
                self.error(
                    "wrong-reference",
                    format!("{what} must be a {expect}, but `{path}` is a {kind}"),
                    format!("pass a reference to a {expect}"),
                );
                None
            }
            None => {
                self.error(
                    "dangling-reference",
                    format!("{what} points to no resource"),
                    "add the resource before referencing it",
                );
                None
            }
        }
    }

    /// The provider id of the resource at `index`, or null when the reference was invalid.
    pub fn id_of(&self, index: Option<usize>) -> Expr {
        match index {
            Some(i) => Expr::id_of(i, self.st.path(i)),
            None => Expr::Lit(Value::Null),
        }
    }

    /// The provider ids of valid references.
    pub fn ids_of(&self, indexes: &[Option<usize>]) -> Expr {
        Expr::List(indexes.iter().flatten().map(|i| Expr::id_of(*i, self.st.path(*i))).collect())
    }

    /// An attribute of the resource at `index`.
    pub fn attr_of(&self, index: usize, attr: &str, secret: bool) -> Expr {
        Expr::attr(index, self.st.path(index), attr, secret)
    }

    /// The builder at `index`, when it is of kind `K`.
    pub fn node<K: ResourceKind>(&self, index: usize) -> Option<&'a K> {
        self.st.node::<K>(index)
    }

    /// The logical path of the resource at `index`.
    pub fn path_of(&self, index: usize) -> &'a str {
        self.st.path(index)
    }
}

/// Parse a CIDR, reporting a malformed one as `what`.
pub fn parse_cidr(cx: &mut LowerCx<'_>, what: &str, s: &str) -> Option<Cidr> {
    match s.parse::<Cidr>() {
        Ok(c) => Some(c),
        Err(e) => {
            cx.error("malformed-cidr", format!("{what}: {e}"), "write an IPv4 block such as 10.0.0.0/16");
            None
        }
    }
}

/// A CIDR in canonical form (network address, no host bits), or the text as given.
pub fn canonical_cidr(s: &str) -> String {
    s.parse::<Cidr>().map(|c| cidr_text(s, &c)).unwrap_or_else(|_| s.to_string())
}

/// The canonical form of `s`, which parsed as `c`: `s` itself when it already is one, without
/// printing the block again. The address of a block that parsed always is (the standard parser
/// refuses leading zeros); the prefix length may carry a sign or leading zeros.
pub fn cidr_text(s: &str, c: &Cidr) -> String {
    let prefix = s.rsplit_once('/').map_or("", |(_, p)| p);
    let canonical = prefix == "0" || (!prefix.starts_with('0') && !prefix.starts_with('+'));
    if canonical {
        s.to_string()
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_text_keeps_canonical_text_and_rewrites_the_rest() {
        for (given, canonical) in [
            ("10.0.0.0/16", "10.0.0.0/16"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("10.0.0.0/016", "10.0.0.0/16"),
            ("10.0.0.0/+8", "10.0.0.0/8"),
        ] {
            let parsed: Cidr = given.parse().unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!(cidr_text(given, &parsed), canonical, "{given}");
            assert_eq!(canonical_cidr(given), canonical, "{given}");
        }
        assert_eq!(canonical_cidr("10.0.0.1/16"), "10.0.0.1/16", "text that does not parse is kept");
    }
}
