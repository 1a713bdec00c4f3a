//! Field values of a lowered resource: literals, or values known only after apply (another
//! resource's attribute, a physical name with its generation, a secret).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::base::secret::{SecretSource, REDACTED};
use crate::kind::field_map::FieldMap;

/// A field value of a synthesized resource: a literal, or something known only after apply.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Expr {
    /// Known now.
    Lit(Value),
    /// An attribute of another resource of the stack. Boxed: it is the largest variant, and
    /// every field of every resource would otherwise take its size (twice that of a literal).
    Attr(Box<AttrRef>),
    /// A list.
    List(Vec<Expr>),
    /// A map with sorted keys.
    Map(FieldMap<Expr>),
    /// The resource's physical name: the base name, plus `-N` after the N-th replacement.
    PhysicalName(String),
    /// A secret input.
    Secret(SecretSource),
}

/// Where an [`Expr::Attr`] reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrRef {
    /// Index of the resource in the synthesized stack's `resources`.
    pub node: usize,
    /// Its path.
    pub path: String,
    /// The attribute (`id`, `host`, ...).
    pub attr: String,
    /// Whether the attribute is secret.
    pub secret: bool,
}

impl Expr {
    /// Attribute `attr` of the resource at index `node` (at `path`).
    pub fn attr(node: usize, path: &str, attr: &str, secret: bool) -> Expr {
        Expr::Attr(Box::new(AttrRef { node, path: path.to_string(), attr: attr.to_string(), secret }))
    }

    /// A literal from any serializable value.
    pub fn lit(v: impl Serialize) -> Expr {
        Expr::Lit(serde_json::to_value(v).unwrap_or(Value::Null))
    }

    /// The provider id of the resource at index `node`.
    pub fn id_of(node: usize, path: &str) -> Expr {
        Expr::attr(node, path, "id", false)
    }

    /// Indexes of the resources this expression reads from.
    pub fn refs(&self, out: &mut BTreeSet<usize>) {
        match self {
            Expr::Attr(a) => {
                out.insert(a.node);
            }
            Expr::List(v) => v.iter().for_each(|e| e.refs(out)),
            Expr::Map(m) => m.values().for_each(|e| e.refs(out)),
            Expr::Lit(_) | Expr::PhysicalName(_) | Expr::Secret(_) => {}
        }
    }

    /// Whether the expression holds a secret anywhere.
    pub fn is_secret(&self) -> bool {
        match self {
            Expr::Secret(_) => true,
            Expr::Attr(a) => a.secret,
            Expr::List(v) => v.iter().any(Expr::is_secret),
            Expr::Map(m) => m.values().any(Expr::is_secret),
            Expr::Lit(_) | Expr::PhysicalName(_) => false,
        }
    }
}

impl Serialize for Expr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Expr::Lit(v) => v.serialize(s),
            Expr::Attr(a) => s.serialize_str(&format!("(known after apply: {}.{})", a.path, a.attr)),
            Expr::List(v) => v.serialize(s),
            Expr::Map(m) => m.serialize(s),
            Expr::PhysicalName(n) => s.serialize_str(n),
            Expr::Secret(_) => s.serialize_str(REDACTED),
        }
    }
}
