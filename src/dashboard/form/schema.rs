//! Reads a parameters JSON Schema (as `schemars` writes it, draft 2020-12 or draft 7) into the
//! few shapes a form knows how to draw and parse.
//!
//! Only what a form needs is understood: `$ref` into `$defs` / `definitions`, single-element
//! `allOf` wrappers, `null` alternatives of `Option` (`type: [T, "null"]`, `anyOf`/`oneOf` with a
//! `null` member, `null` among `enum` values), enums (`enum`, `const`, `oneOf` of constants),
//! integers and numbers with bounds, booleans, strings, arrays and objects with properties.
//! Anything else is edited as JSON text, so no schema can make the form lose a parameter.

use serde_json::{Map, Value};

/// How deep `$ref`s and nested objects are followed; deeper (recursive) schemas fall back to
/// JSON text instead of recursing forever.
pub(super) const MAX_DEPTH: usize = 12;

/// One choice of an enum: its value and how the option reads.
#[derive(Debug, Clone)]
pub(super) struct Choice<'a> {
    /// The JSON value the choice stands for.
    pub value: &'a Value,
    /// What the form sends for it (`value_text`).
    pub text: String,
    /// The option's label (the value, then its title or description when the schema has one).
    pub label: String,
}

/// The shape of one parameter, as drawn and parsed by the form.
#[derive(Debug, Clone)]
pub(super) enum Shape<'a> {
    /// A free text line.
    Text {
        /// `maxLength`, when given.
        max_length: Option<u64>,
    },
    /// A whole number.
    Integer {
        /// `minimum` (or `exclusiveMinimum` + 1).
        min: Option<f64>,
        /// `maximum` (or `exclusiveMaximum` - 1).
        max: Option<f64>,
    },
    /// Any finite number.
    Number {
        /// `minimum`.
        min: Option<f64>,
        /// `maximum`.
        max: Option<f64>,
    },
    /// `true` or `false` (a checkbox; a select with an empty choice when nullable).
    Boolean,
    /// One of a fixed list of values (a select).
    Enum(Vec<Choice<'a>>),
    /// A list of scalars, one per line of a textarea.
    List(Box<Analysis<'a>>),
    /// A list of objects: one fieldset per item.
    Rows(Box<Analysis<'a>>),
    /// An object with properties: a fieldset.
    Object(&'a Value),
    /// Anything else: JSON text.
    Json,
}

/// What the form needs to know about one parameter.
#[derive(Debug, Clone)]
pub(super) struct Analysis<'a> {
    /// Its shape.
    pub shape: Shape<'a>,
    /// Whether `null` is allowed (an `Option`).
    pub nullable: bool,
    /// `title`, when given.
    pub title: Option<&'a str>,
    /// `description`, when given.
    pub description: Option<&'a str>,
    /// `default`, when given.
    pub default: Option<&'a Value>,
}

/// The properties of an object schema, required ones first, each group in the schema's order.
pub(super) fn properties<'a>(root: &'a Value, object: &'a Value) -> Vec<(&'a str, &'a Value, bool)> {
    let object = resolve(root, object, 0);
    let required: Vec<&str> =
        object.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let Some(props) = object.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out: Vec<(&str, &Value, bool)> =
        props.iter().map(|(k, v)| (k.as_str(), v, required.contains(&k.as_str()))).collect();
    // A stable sort keeps the schema's order inside each group.
    out.sort_by_key(|(_, _, req)| !*req);
    out
}

/// Follow `$ref`s and single-element `allOf` wrappers.
pub(super) fn resolve<'a>(root: &'a Value, mut schema: &'a Value, depth: usize) -> &'a Value {
    for _ in depth..MAX_DEPTH {
        if let Some(target) = schema.get("$ref").and_then(Value::as_str).and_then(|r| pointer(root, r)) {
            schema = target;
            continue;
        }
        match schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            Some([only]) => schema = only,
            _ => break,
        }
    }
    schema
}

/// The schema a local `$ref` (`#/$defs/X`, `#/definitions/X`, `#`) points at.
fn pointer<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let path = reference.strip_prefix('#')?;
    root.pointer(path)
}

/// Analyse `schema` (a property's schema) against `root` (the whole document, for `$ref`s).
pub(super) fn analyze<'a>(root: &'a Value, schema: &'a Value, depth: usize) -> Analysis<'a> {
    let outer = schema;
    let mut inner = resolve(root, schema, depth);
    let mut nullable = false;
    // `anyOf` / `oneOf` with a null member: an Option around the other member(s), which may
    // itself be an enum written as `oneOf` constants.
    let mut alternatives: Option<Vec<&Value>> = None;
    for _ in depth..MAX_DEPTH {
        let Some(members) = ["anyOf", "oneOf"].iter().find_map(|k| inner.get(*k).and_then(Value::as_array)) else {
            break;
        };
        let rest: Vec<&Value> = members.iter().filter(|m| !is_null_schema(resolve(root, m, depth))).collect();
        nullable |= rest.len() < members.len();
        match rest.as_slice() {
            [only] => inner = resolve(root, only, depth),
            _ => {
                alternatives = Some(rest);
                break;
            }
        }
    }
    let meta = |key: &str| outer.get(key).or_else(|| inner.get(key));
    let title = meta("title").and_then(Value::as_str);
    let description = meta("description").and_then(Value::as_str);
    let default = meta("default");
    nullable |= inner.get("nullable").and_then(Value::as_bool).unwrap_or(false);
    let shape = match alternatives {
        Some(members) => constants(root, &members, depth).map(Shape::Enum).unwrap_or(Shape::Json),
        None => {
            let (shape, null) = shape_of(root, inner, depth);
            nullable |= null;
            shape
        }
    };
    Analysis { shape, nullable, title, description, default }
}

/// The shape of a resolved schema without alternatives, and whether it admits `null`.
fn shape_of<'a>(root: &'a Value, schema: &'a Value, depth: usize) -> (Shape<'a>, bool) {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let null = values.iter().any(Value::is_null);
        let choices = values.iter().filter(|v| !v.is_null()).map(|v| choice(v, None)).collect();
        return (Shape::Enum(choices), null);
    }
    if let Some(value) = schema.get("const") {
        return (Shape::Enum(vec![choice(value, None)]), false);
    }
    let mut null = false;
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ if schema.get("properties").is_some() => vec!["object"],
        _ => Vec::new(),
    };
    let types: Vec<&str> = types
        .into_iter()
        .filter(|t| {
            let is_null = *t == "null";
            null |= is_null;
            !is_null
        })
        .collect();
    let shape = match types.as_slice() {
        ["string"] => Shape::Text { max_length: schema.get("maxLength").and_then(Value::as_u64) },
        ["integer"] => Shape::Integer {
            min: bound(schema, "minimum").or_else(|| bound(schema, "exclusiveMinimum").map(|m| m.floor() + 1.0)),
            max: bound(schema, "maximum").or_else(|| bound(schema, "exclusiveMaximum").map(|m| m.ceil() - 1.0)),
        },
        ["number"] => Shape::Number { min: bound(schema, "minimum"), max: bound(schema, "maximum") },
        ["boolean"] => Shape::Boolean,
        ["array"] => array_shape(root, schema, depth),
        ["object"] if depth < MAX_DEPTH && schema.get("properties").and_then(Value::as_object).is_some() => {
            Shape::Object(schema)
        }
        _ => Shape::Json,
    };
    (shape, null)
}

/// Lists of scalars become a textarea, lists of objects rows of fieldsets, anything else JSON.
fn array_shape<'a>(root: &'a Value, schema: &'a Value, depth: usize) -> Shape<'a> {
    let Some(items) = schema.get("items").filter(|i| i.is_object()) else {
        return Shape::Json;
    };
    if depth + 1 >= MAX_DEPTH {
        return Shape::Json;
    }
    let item = analyze(root, items, depth + 1);
    match item.shape {
        Shape::Text { .. } | Shape::Integer { .. } | Shape::Number { .. } | Shape::Boolean | Shape::Enum(_)
            if !item.nullable =>
        {
            Shape::List(Box::new(item))
        }
        Shape::Object(_) if !item.nullable => Shape::Rows(Box::new(item)),
        _ => Shape::Json,
    }
}

/// A numeric bound of the schema.
fn bound(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64).filter(|b| b.is_finite())
}

/// Whether a schema only admits `null`.
fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
        || schema.get("const").is_some_and(Value::is_null)
        || schema.get("enum").and_then(Value::as_array).is_some_and(|e| !e.is_empty() && e.iter().all(Value::is_null))
}

/// `oneOf` / `anyOf` members that are all constants (`const: x` or `enum: [x, ...]`): the
/// choices of an enum, labelled with each member's title or description.
fn constants<'a>(root: &'a Value, members: &[&'a Value], depth: usize) -> Option<Vec<Choice<'a>>> {
    let mut out = Vec::new();
    for member in members {
        let m = resolve(root, member, depth);
        let label = m.get("title").or_else(|| m.get("description")).and_then(Value::as_str);
        if let Some(value) = m.get("const") {
            out.push(choice(value, label));
        } else if let Some(values) = m.get("enum").and_then(Value::as_array) {
            out.extend(values.iter().filter(|v| !v.is_null()).map(|v| choice(v, label)));
        } else {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

fn choice<'a>(value: &'a Value, label: Option<&str>) -> Choice<'a> {
    let text = value_text(value);
    let label = match label {
        Some(l) if l != text => format!("{text} — {}", first_line(l)),
        _ => text.clone(),
    };
    Choice { value, text, label }
}

/// The first line of a (possibly multi-line) description.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// How a scalar value is written in a form field (strings as they are, `null` as nothing,
/// anything else as JSON).
pub(super) fn value_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Member `name` of an object value, if the value is an object and has it.
pub(super) fn member<'v>(value: Option<&'v Value>, name: &str) -> Option<&'v Value> {
    value.and_then(Value::as_object).and_then(|m: &Map<String, Value>| m.get(name))
}
