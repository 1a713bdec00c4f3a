//! Submitted form fields back into JSON parameters, converted by the schema's types.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Number, Value};

use super::schema::{analyze, properties, Analysis, Choice, Shape};
use super::{item_path, member_path, quoted, FieldError, ROOT};

/// The parameters `fields` stand for, and every problem found on the way. A value that does
/// not convert is kept as the submitted text.
pub(super) fn fields(schema: &Value, fields: &[(String, String)]) -> (Value, Vec<FieldError>) {
    // The last of several fields with one name wins, as for a plain form post.
    let submitted: BTreeMap<&str, &str> = fields
        .iter()
        .filter(|(name, _)| name == ROOT || name.starts_with("params.") || name.starts_with("params["))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let mut parser = Parser { root: schema, submitted, errors: Vec::new() };
    let at = At { lookup: ROOT.to_string(), report: ROOT.to_string() };
    let top = analyze(schema, schema, 0);
    let value = match top.shape {
        Shape::Object(object) => Value::Object(parser.object(object, &at, 0).0),
        _ => parser.value(&top, &at, true, 0).map(|(v, _)| v).unwrap_or_else(|| Value::Object(Map::new())),
    };
    (value, parser.errors)
}

/// Where a value is: the field name it was submitted under and the path its errors report
/// (they differ inside list rows, which are renumbered once empty rows are dropped).
struct At {
    lookup: String,
    report: String,
}

impl At {
    fn member(&self, name: &str) -> At {
        At { lookup: member_path(&self.lookup, name), report: member_path(&self.report, name) }
    }
}

struct Parser<'a> {
    root: &'a Value,
    submitted: BTreeMap<&'a str, &'a str>,
    errors: Vec<FieldError>,
}

impl<'a> Parser<'a> {
    fn error(&mut self, path: &str, message: String) {
        self.errors.push(FieldError { path: path.to_string(), message });
    }

    /// The members of an object and whether anything was filled in.
    fn object(&mut self, schema: &'a Value, at: &At, depth: usize) -> (Map<String, Value>, bool) {
        let mut map = Map::new();
        let mut content = false;
        for (name, prop, required) in properties(self.root, schema) {
            let a = analyze(self.root, prop, depth + 1);
            if let Some((value, filled)) = self.value(&a, &at.member(name), required, depth + 1) {
                content |= filled;
                map.insert(name.to_string(), value);
            }
        }
        (map, content)
    }

    /// One parameter's value (`None`: leave it out) and whether anything was filled in.
    fn value(&mut self, a: &Analysis<'a>, at: &At, required: bool, depth: usize) -> Option<(Value, bool)> {
        let raw = self.submitted.get(at.lookup.as_str()).copied();
        match &a.shape {
            Shape::Boolean if !a.nullable => match raw {
                None | Some("") => Some((Value::Bool(false), false)),
                Some(text) => Some((self.scalar(a, text, &at.report), text != "false" && !text.is_empty())),
            },
            Shape::List(item) => {
                let lines: Vec<&str> = raw.unwrap_or_default().lines().filter(|l| !l.trim().is_empty()).collect();
                if lines.is_empty() {
                    return required.then(|| (Value::Array(Vec::new()), false));
                }
                let items = lines
                    .iter()
                    .enumerate()
                    .map(|(i, line)| self.scalar(item, line.trim_end_matches('\r'), &item_path(&at.report, i)))
                    .collect();
                Some((Value::Array(items), true))
            }
            Shape::Rows(item) => self.rows(item, at, required, depth),
            Shape::Object(schema) => {
                let before = self.errors.len();
                let (map, content) = self.object(schema, at, depth);
                if content || (required && !a.nullable) {
                    Some((Value::Object(map), content))
                } else {
                    // Nothing typed: leave the object to its default, without its members'
                    // "required" complaints.
                    self.errors.truncate(before);
                    None
                }
            }
            _ => match raw.filter(|t| !t.trim().is_empty()) {
                Some(text) => Some((self.scalar(a, text, &at.report), true)),
                None => {
                    if required {
                        self.error(&at.report, "a value is required".to_string());
                    }
                    None
                }
            },
        }
    }

    /// The rows of a list of objects: indices as submitted, empty rows dropped, the rest
    /// renumbered.
    fn rows(&mut self, item: &Analysis<'a>, at: &At, required: bool, depth: usize) -> Option<(Value, bool)> {
        let Shape::Object(schema) = item.shape else {
            return None;
        };
        let open = format!("{}[", at.lookup);
        let indices: BTreeSet<usize> =
            self.submitted.keys().filter_map(|name| name.strip_prefix(open.as_str())).filter_map(row_index).collect();
        let mut out = Vec::new();
        for index in indices {
            let lookup = item_path(&at.lookup, index);
            if !self.row_has_content(&lookup) {
                continue;
            }
            let row = At { lookup, report: item_path(&at.report, out.len()) };
            out.push(Value::Object(self.object(schema, &row, depth).0));
        }
        if out.is_empty() {
            return required.then_some((Value::Array(out), false));
        }
        Some((Value::Array(out), true))
    }

    /// Whether any field of the row at `lookup` holds something other than blanks.
    fn row_has_content(&self, lookup: &str) -> bool {
        self.submitted.range(lookup..).take_while(|(name, _)| name.starts_with(lookup)).any(|(name, value)| {
            let rest = &name[lookup.len()..];
            (rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')) && !value.trim().is_empty()
        })
    }

    /// A scalar converted by its shape; on failure the error is recorded and the text kept.
    fn scalar(&mut self, a: &Analysis<'a>, text: &str, path: &str) -> Value {
        match convert(&a.shape, text) {
            Ok(value) => value,
            Err(message) => {
                self.error(path, message);
                Value::String(text.to_string())
            }
        }
    }
}

/// The index of a row field name after its list's `[`: `3]` followed by nothing, `.` or `[`.
fn row_index(rest: &str) -> Option<usize> {
    let (digits, after) = rest.split_once(']')?;
    let well_formed = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (after.is_empty() || after.starts_with('.') || after.starts_with('['));
    well_formed.then(|| digits.parse().ok()).flatten()
}

/// `text` as a value of `shape`, or what is wrong with it.
fn convert(shape: &Shape<'_>, text: &str) -> Result<Value, String> {
    match shape {
        Shape::Text { max_length } => {
            let n = text.chars().count();
            match max_length {
                Some(max) if n as u64 > *max => Err(format!("at most {max} characters, got {n}")),
                _ => Ok(Value::String(text.to_string())),
            }
        }
        Shape::Integer { min, max } => {
            let t = text.trim();
            let n = t
                .parse::<i64>()
                .map(Number::from)
                .or_else(|_| t.parse::<u64>().map(Number::from))
                .map_err(|_| format!("expected a whole number, got {}", quoted(text)))?;
            in_range(n, *min, *max, "a whole number", text)
        }
        Shape::Number { min, max } => {
            let t = text.trim();
            let n = t
                .parse::<i64>()
                .map(Number::from)
                .ok()
                .or_else(|| t.parse::<f64>().ok().and_then(Number::from_f64))
                .ok_or_else(|| format!("expected a number, got {}", quoted(text)))?;
            in_range(n, *min, *max, "a number", text)
        }
        Shape::Boolean => match text.trim() {
            "true" | "on" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("expected true or false, got {}", quoted(text))),
        },
        Shape::Enum(choices) => choices
            .iter()
            .find(|c| c.text == text || c.text == text.trim())
            .map(|c| c.value.clone())
            .ok_or_else(|| format!("expected one of {}, got {}", one_of(choices), quoted(text))),
        Shape::Json | Shape::List(_) | Shape::Rows(_) | Shape::Object(_) => {
            serde_json::from_str(text.trim()).map_err(|e| format!("expected JSON ({e}), got {}", quoted(text)))
        }
    }
}

/// `n` if it lies within the bounds.
fn in_range(n: Number, min: Option<f64>, max: Option<f64>, what: &str, text: &str) -> Result<Value, String> {
    let f = n.as_f64().unwrap_or(f64::NAN);
    if min.is_some_and(|m| f < m) || max.is_some_and(|m| f > m) {
        return Err(format!("expected {what}{}, got {}", range(min, max), quoted(text)));
    }
    Ok(Value::Number(n))
}

/// ` from 1 to 10`, ` of at least 1`, ` of at most 10` or nothing.
fn range(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!(" from {} to {}", number(lo), number(hi)),
        (Some(lo), None) => format!(" of at least {}", number(lo)),
        (None, Some(hi)) => format!(" of at most {}", number(hi)),
        (None, None) => String::new(),
    }
}

/// A bound as written in a message (`65535`, not `65535.0`).
pub(super) fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        n.to_string()
    }
}

/// The first choices, for a message.
fn one_of(choices: &[Choice<'_>]) -> String {
    const SHOWN: usize = 12;
    let mut list: Vec<String> = choices.iter().take(SHOWN).map(|c| format!("`{}`", c.text)).collect();
    if choices.len() > SHOWN {
        list.push(format!("... ({} choices)", choices.len()));
    }
    list.join(", ")
}
