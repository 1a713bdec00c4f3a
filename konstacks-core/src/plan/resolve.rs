//! Resolving a synthesized resource's field expressions: against the attributes known so far
//! (plan), or with this run's secrets too (apply).

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::base::secret::{Secret, SecretSource, REDACTED};
use crate::synth::Expr;

/// How secrets resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Markers only (plans and state).
    Plan,
    /// Real values (the spec handed to the provider).
    Apply,
}

/// A resolved value, or unknown until apply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolved {
    Known(Value),
    Unknown,
}

/// Where secret values of this run come from.
pub(crate) trait SecretLookup {
    fn secret(&self, path: &str, attr: &str) -> Option<Secret<String>>;
}

/// Attributes of nodes by index, `None` when unknown until apply.
pub(crate) trait AttrLookup {
    /// `None` while the attributes of `node` are not known yet (it is still to be created);
    /// then attribute `name` of it, `None` when it has none.
    fn attr(&self, node: usize, name: &str) -> Option<Option<&Value>>;
}

impl AttrLookup for Vec<Option<&crate::state::ResourceState>> {
    fn attr(&self, node: usize, name: &str) -> Option<Option<&Value>> {
        self.get(node).copied().flatten().map(|r| r.attr(name))
    }
}

impl AttrLookup for BTreeMap<usize, std::sync::Arc<BTreeMap<String, Value>>> {
    fn attr(&self, node: usize, name: &str) -> Option<Option<&Value>> {
        self.get(&node).map(|a| a.get(name))
    }
}

pub(crate) struct Env<'a> {
    pub(crate) stack: &'a str,
    pub(crate) path: &'a str,
    pub(crate) attrs: &'a dyn AttrLookup,
    pub(crate) generation: u32,
    /// The physical name the resource already has (kept when it moved to a new path).
    pub(crate) prior_name: Option<&'a str>,
    pub(crate) mode: Mode,
    pub(crate) secrets: Option<&'a dyn SecretLookup>,
    /// The field being resolved: a generated secret is looked up under it.
    pub(crate) field: &'a str,
}

/// Marker stored in place of a secret so a changed secret still shows up as a change.
pub(crate) fn secret_marker(stack: &str, path: &str, src: &SecretSource) -> String {
    match src {
        SecretSource::Generated { len } => format!("{REDACTED} generated, {len} characters"),
        SecretSource::Provided(s) => {
            let mut h = Sha256::new();
            h.update(b"konstacks-secret-fingerprint\0");
            h.update(stack.as_bytes());
            h.update(b"\0");
            h.update(path.as_bytes());
            h.update(b"\0");
            h.update(s.expose().as_bytes());
            let d = h.finalize();
            let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("{REDACTED} provided, fingerprint {hex}")
        }
    }
}

/// The physical name for a generation: the base, then `-1`, `-2`... after replacements.
pub(crate) fn name_for(base: &str, generation: u32) -> String {
    if generation == 0 {
        base.to_string()
    } else {
        format!("{base}-{generation}")
    }
}

/// Error while resolving in apply mode (a secret that is not available).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MissingSecret(pub(crate) String);

pub(crate) fn resolve(e: &Expr, env: &Env<'_>) -> Result<Resolved, MissingSecret> {
    Ok(match e {
        Expr::Lit(v) => Resolved::Known(v.clone()),
        Expr::PhysicalName(base) => Resolved::Known(Value::String(
            env.prior_name.map(str::to_string).unwrap_or_else(|| name_for(base, env.generation)),
        )),
        Expr::Attr(a) => {
            let (path, attr) = (&a.path, &a.attr);
            if a.secret {
                match env.mode {
                    Mode::Plan => Resolved::Known(Value::String(format!("{REDACTED} from {path}.{attr}"))),
                    Mode::Apply => match env.secrets.and_then(|s| s.secret(path, attr)) {
                        Some(v) => Resolved::Known(Value::String(v.expose().clone())),
                        None => return Err(MissingSecret(format!("{path}.{attr}"))),
                    },
                }
            } else {
                match env.attrs.attr(a.node, attr) {
                    Some(Some(v)) => Resolved::Known(v.clone()),
                    Some(None) => Resolved::Known(Value::Null),
                    None => Resolved::Unknown,
                }
            }
        }
        Expr::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                match resolve(i, env)? {
                    Resolved::Known(v) => out.push(v),
                    Resolved::Unknown => return Ok(Resolved::Unknown),
                }
            }
            Resolved::Known(Value::Array(out))
        }
        Expr::Map(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                match resolve(v, env)? {
                    Resolved::Known(v) => {
                        out.insert(k.to_string(), v);
                    }
                    Resolved::Unknown => return Ok(Resolved::Unknown),
                }
            }
            Resolved::Known(Value::Object(out))
        }
        Expr::Secret(src) => match env.mode {
            Mode::Plan => Resolved::Known(Value::String(secret_marker(env.stack, env.path, src))),
            Mode::Apply => match src {
                SecretSource::Provided(s) => Resolved::Known(Value::String(s.expose().clone())),
                SecretSource::Generated { .. } => match env.secrets.and_then(|s| s.secret(env.path, env.field)) {
                    Some(v) => Resolved::Known(Value::String(v.expose().clone())),
                    None => Resolved::Known(Value::Null),
                },
            },
        },
    })
}

/// Whether `e` resolves, in plan mode, to exactly `v`: `Some` when that can be told without
/// building the value (literals, names, known attributes, lists and maps of those), `None`
/// otherwise (the caller resolves it in full).
pub(crate) fn resolves_to(e: &Expr, v: &Value, env: &Env<'_>) -> Option<bool> {
    match e {
        Expr::Lit(l) => Some(l == v),
        Expr::PhysicalName(base) => Some(match env.prior_name {
            Some(name) => v.as_str() == Some(name),
            None if env.generation == 0 => v.as_str() == Some(base.as_str()),
            None => v.as_str() == Some(name_for(base, env.generation).as_str()),
        }),
        Expr::Attr(a) if !a.secret => env.attrs.attr(a.node, &a.attr).map(|a| a.unwrap_or(&Value::Null) == v),
        Expr::List(items) => {
            let Value::Array(vs) = v else { return Some(false) };
            if vs.len() != items.len() {
                return Some(false);
            }
            all_resolve_to(items.iter().zip(vs), env)
        }
        Expr::Map(m) => {
            let Value::Object(vs) = v else { return Some(false) };
            if vs.len() != m.len() {
                return Some(false);
            }
            // Both are maps sorted by key: equal lengths and equal keys pair up in order.
            if m.keys().zip(vs.keys()).any(|(a, b)| a != b) {
                return Some(false);
            }
            all_resolve_to(m.values().zip(vs.values()), env)
        }
        Expr::Attr(_) | Expr::Secret(_) => None,
    }
}

/// `Some(true)` when every pair resolves to its value, `Some(false)` at the first that does not,
/// `None` when one cannot be told in place.
fn all_resolve_to<'x>(pairs: impl Iterator<Item = (&'x Expr, &'x Value)>, env: &Env<'_>) -> Option<bool> {
    let mut all = Some(true);
    for (e, v) in pairs {
        match resolves_to(e, v, env) {
            Some(true) => {}
            Some(false) => return Some(false),
            None => all = None,
        }
    }
    all
}
