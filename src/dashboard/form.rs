//! Forms generated from a template's parameters JSON Schema, and their inverse.
//!
//! [`render_fields`] draws one labelled control per parameter, named by its path
//! (`params.domain`, `params.clients[0].name`) so the names read like the paths of the
//! templates' own parameter problems; [`parse_fields`] turns the submitted fields back into the
//! JSON parameters a template builds from, collecting every type error at once.
//!
//! The conventions both sides share:
//! - a control's `id` is its path with `.` and `[` turned into `-` (other unsafe characters
//!   hex-escaped), so `params.clients[0].name` is `#params-clients-0-name`;
//! - an empty optional field is left out of the parameters, so the template's default applies;
//! - a checkbox sends `true` and its absence means `false`; an optional boolean is a select
//!   with an empty choice instead;
//! - a list of scalars (`ssh_keys`) is a textarea with one value per line, blank lines ignored;
//! - a list of objects (`clients`) is a fieldset per item plus one empty extra row; rows left
//!   empty are dropped and the others renumbered, so error paths index the resulting list;
//! - anything the form cannot draw as controls (maps, mixed types) is edited as JSON text.
//!
//! This module only reads schemas and values; it never sees secrets (template parameters are
//! not secret) and knows nothing of sessions, CSRF or routes: the caller adds those fields.

mod parse;
mod render;
mod schema;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;

/// One problem with one submitted field, shown next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// The parameter's path (`params.vm_count`, `params.clients[0].name`, `params.ssh_keys[1]`).
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// The form controls of every parameter of `schema`, prefilled from `values` (the template's
/// default parameters merged with what the user typed), with `errors` shown next to their
/// fields (errors whose path matches no field are listed first, so none is lost).
pub(crate) fn render_fields(
    schema: &serde_json::Value,
    values: &serde_json::Value,
    errors: &[FieldError],
) -> maud::Markup {
    render::fields(schema, values, errors)
}

/// The parameters the submitted `fields` (name, value pairs in the order the browser sent them)
/// stand for, converted by the types of `schema`; every type error at once otherwise. Fields
/// whose name does not start with `params` are ignored (the caller handles `stack_name`,
/// `stage`, `csrf` and `template`).
pub(crate) fn parse_fields(
    schema: &serde_json::Value,
    fields: &[(String, String)],
) -> Result<serde_json::Value, Vec<FieldError>> {
    let (value, errors) = parse::fields(schema, fields);
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(errors)
    }
}

/// The parameters as submitted, for drawing the form again after [`parse_fields`] failed: like
/// `parse_fields`, but a value that does not convert is kept as the text that was typed (so the
/// user sees it next to its error) and a missing required value is left out.
pub(crate) fn submitted_values(schema: &serde_json::Value, fields: &[(String, String)]) -> serde_json::Value {
    parse::fields(schema, fields).0
}

/// The root path of every parameter.
const ROOT: &str = "params";

/// The path of member `name` of the value at `parent`.
fn member_path(parent: &str, name: &str) -> String {
    format!("{parent}.{name}")
}

/// The path of item `index` of the list at `parent`.
fn item_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The HTML id of the control for `path`: ASCII letters, digits and `_` kept, `.` and `[`
/// turned into `-`, `]` dropped, anything else hex-escaped as `_xHH` (one per UTF-8 byte).
/// Distinct for every path made of Rust field names (what `schemars` writes for a params struct).
fn field_id(path: &str) -> String {
    let mut id = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => id.push(char::from(b)),
            b'.' | b'[' => id.push('-'),
            b']' => {}
            other => {
                let _ = write!(id, "_x{other:02x}");
            }
        }
    }
    id
}

/// A submitted value as it may be quoted in a message: control and invisible characters
/// escaped, long values cut.
fn quoted(s: &str) -> String {
    format!("\"{}\"", konstacks_templates::grammar::shown(s))
}
