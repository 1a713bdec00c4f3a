//! The form controls of a parameters schema, as HTML.

use std::cell::RefCell;

use maud::{html, Markup};
use serde_json::Value;

use super::parse::number;
use super::schema::{analyze, member, properties, value_text, Analysis, Shape};
use super::{field_id, item_path, member_path, FieldError, ROOT};

/// The hint added to every list of scalars.
const LIST_HINT: &str = "One value per line.";
/// The hint added to every list of objects.
const ROWS_HINT: &str =
    "One group per item: fill in the empty group to add an item, clear every field of a group to remove it.";
/// The hint added to every parameter edited as JSON.
const JSON_HINT: &str = "Written as JSON.";

/// The controls of every parameter (see [`super::render_fields`]).
pub(super) fn fields(schema: &Value, values: &Value, errors: &[FieldError]) -> Markup {
    let r = Renderer { root: schema, errors, claimed: RefCell::new(vec![false; errors.len()]) };
    let top = analyze(schema, schema, 0);
    let body = match top.shape {
        Shape::Object(object) => r.members(object, ROOT, Some(values), 0, Row::Outside),
        _ => r.field(&top, ROOT, "parameters", Some(values), true, 0, Row::Outside),
    };
    // Errors no field claimed (a path the schema does not know) are listed first.
    let unplaced: Vec<&FieldError> = {
        let claimed = r.claimed.borrow();
        errors.iter().zip(claimed.iter()).filter(|(_, c)| !**c).map(|(e, _)| e).collect()
    };
    html! {
        @if !unplaced.is_empty() {
            div.field-errors-unplaced { (error_list("params-unplaced", &unplaced, true)) }
        }
        (body)
    }
}

/// Whether a control sits in a row of a list of objects, and in which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// Not in a list row.
    Outside,
    /// In an existing item: selects keep an empty choice so the row can be cleared.
    Existing,
    /// In the empty extra row: nothing prefilled, nothing required.
    Fresh,
}

struct Renderer<'a> {
    root: &'a Value,
    errors: &'a [FieldError],
    claimed: RefCell<Vec<bool>>,
}

impl<'a> Renderer<'a> {
    /// The errors whose path `matches`, marked as shown.
    fn claim(&self, matches: impl Fn(&str) -> bool) -> Vec<&'a FieldError> {
        let mut claimed = self.claimed.borrow_mut();
        let mut out = Vec::new();
        for (e, c) in self.errors.iter().zip(claimed.iter_mut()) {
            if !*c && matches(&e.path) {
                *c = true;
                out.push(e);
            }
        }
        out
    }

    /// The controls of every property of an object schema.
    fn members(&self, object: &'a Value, path: &str, value: Option<&Value>, depth: usize, row: Row) -> Markup {
        html! {
            @for (name, prop, required) in properties(self.root, object) {
                (self.field(&analyze(self.root, prop, depth + 1), &member_path(path, name), name,
                    member(value, name), required, depth + 1, row))
            }
        }
    }

    /// The control(s) of one parameter.
    #[allow(clippy::too_many_arguments)]
    fn field(
        &self,
        a: &Analysis<'a>,
        path: &str,
        name: &str,
        value: Option<&Value>,
        required: bool,
        depth: usize,
        row: Row,
    ) -> Markup {
        let value = if row == Row::Fresh { None } else { value.filter(|v| !v.is_null()) };
        let required = required && row != Row::Fresh;
        let label = a.title.unwrap_or(name);
        let id = field_id(path);
        match &a.shape {
            Shape::Object(object) => {
                let errors = self.claim(|p| p == path);
                let hint = Hint::new(&id, a.description, None, &errors);
                html! {
                    fieldset.group id=(id) data-path=(path) aria-describedby=[hint.describedby()] {
                        legend { (label) }
                        (hint.markup(&errors))
                        (self.members(object, path, value, depth, row))
                    }
                }
            }
            Shape::Rows(item) => self.rows(item, path, label, a.description, value, depth, row),
            _ => self.control(a, path, label, &id, value, required, row),
        }
    }

    /// A list of objects: a fieldset per item and an empty extra one.
    #[allow(clippy::too_many_arguments)]
    fn rows(
        &self,
        item: &Analysis<'a>,
        path: &str,
        label: &str,
        description: Option<&str>,
        value: Option<&Value>,
        depth: usize,
        row: Row,
    ) -> Markup {
        let Shape::Object(object) = item.shape else {
            return html! {};
        };
        let id = field_id(path);
        let errors = self.claim(|p| p == path);
        let hint = Hint::new(&id, description, Some(ROWS_HINT), &errors);
        let items: &[Value] = value.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let inner = if row == Row::Fresh { Row::Fresh } else { Row::Existing };
        let fresh_path = item_path(path, items.len());
        html! {
            fieldset.rows id=(id) data-path=(path) aria-describedby=[hint.describedby()] {
                legend { (label) }
                (hint.markup(&errors))
                @for (i, v) in items.iter().enumerate() {
                    @let at = item_path(path, i);
                    @let item_errors = self.claim(|p| p == at);
                    fieldset.row id=(field_id(&at)) data-path=(at) {
                        legend { (label) " #" (i + 1) }
                        (error_list(&field_id(&at), &item_errors, false))
                        (self.members(object, &at, Some(v), depth, inner))
                    }
                }
                fieldset.row.new-row id=(field_id(&fresh_path)) data-path=(fresh_path) {
                    legend { "New item of " (label) }
                    (self.members(object, &fresh_path, None, depth, Row::Fresh))
                }
            }
        }
    }

    /// One control (input, select or textarea) with its label, hint and errors.
    #[allow(clippy::too_many_arguments)]
    fn control(
        &self,
        a: &Analysis<'a>,
        path: &str,
        label: &str,
        id: &str,
        value: Option<&Value>,
        required: bool,
        row: Row,
    ) -> Markup {
        let list = matches!(a.shape, Shape::List(_));
        let errors = self.claim(|p| p == path || (list && is_item_of(p, path)));
        let extra = match &a.shape {
            Shape::List(_) => Some(LIST_HINT),
            Shape::Json => Some(JSON_HINT),
            _ => None,
        };
        let hint = Hint::new(id, a.description, extra, &errors);
        let describedby = hint.describedby();
        let invalid = (!errors.is_empty()).then_some("true");
        let text = value.map(value_text).unwrap_or_default();
        let placeholder =
            a.default.filter(|d| !d.is_null() && !d.is_array() && !d.is_object() && text.is_empty()).map(value_text);
        let req = || html! { @if required { " " span.required { "(required)" } } };
        let control = match &a.shape {
            Shape::Boolean if !a.nullable => {
                let on = matches!(value, Some(Value::Bool(true))) || text == "true";
                return html! {
                    div.field.checkbox data-path=(path) {
                        input type="checkbox" id=(id) name=(path) value="true" checked[on]
                            aria-describedby=[describedby.as_deref()] aria-invalid=[invalid];
                        " "
                        label for=(id) { (label) }
                        (hint.markup(&errors))
                    }
                };
            }
            Shape::Boolean | Shape::Enum(_) => {
                let bool_choices = [("true", "true"), ("false", "false")];
                let choices: Vec<(&str, &str)> = match &a.shape {
                    Shape::Enum(cs) => cs.iter().map(|c| (c.text.as_str(), c.label.as_str())).collect(),
                    _ => bool_choices.to_vec(),
                };
                let empty = a.nullable || !required || row != Row::Outside;
                let unknown = !text.is_empty() && !choices.iter().any(|(v, _)| *v == text);
                html! {
                    select id=(id) name=(path) required[required]
                        aria-describedby=[describedby.as_deref()] aria-invalid=[invalid] {
                        @if empty || text.is_empty() {
                            option value="" selected[text.is_empty()] {
                                @match &placeholder { Some(d) => { "(default: " (d) ")" }, None => { "(none)" } }
                            }
                        }
                        @if unknown { option value=(text) selected { (text) } }
                        @for (v, l) in &choices { option value=(v) selected[*v == text] { (l) } }
                    }
                }
            }
            Shape::List(_) => {
                let lines: Option<Vec<String>> =
                    value.and_then(Value::as_array).map(|items| items.iter().map(value_text).collect());
                let count = lines.as_ref().map_or(0, Vec::len);
                let text = lines.map_or(text, |l| l.join("\n"));
                html! {
                    textarea id=(id) name=(path) rows=((count + 1).clamp(2, 12))
                        aria-describedby=[describedby.as_deref()] aria-invalid=[invalid] { (text) }
                }
            }
            Shape::Json => {
                let json = value.map(|v| serde_json::to_string_pretty(v).unwrap_or_default()).unwrap_or_default();
                html! {
                    textarea id=(id) name=(path) rows="4" required[required]
                        aria-describedby=[describedby.as_deref()] aria-invalid=[invalid] { (json) }
                }
            }
            Shape::Integer { min, max } | Shape::Number { min, max } => {
                let integer = matches!(a.shape, Shape::Integer { .. });
                // What was typed but is no number stays visible (a number input would drop it).
                let numeric = text.is_empty() || text.trim().parse::<f64>().is_ok();
                html! {
                    input type=(if numeric { "number" } else { "text" }) id=(id) name=(path) value=(text)
                        min=[min.map(number)] max=[max.map(number)] step=(if integer { "1" } else { "any" })
                        inputmode=(if integer { "numeric" } else { "decimal" }) placeholder=[placeholder.as_deref()]
                        required[required] aria-describedby=[describedby.as_deref()] aria-invalid=[invalid];
                }
            }
            Shape::Text { max_length } => html! {
                input type="text" id=(id) name=(path) value=(text) maxlength=[*max_length]
                    placeholder=[placeholder.as_deref()] required[required]
                    aria-describedby=[describedby.as_deref()] aria-invalid=[invalid];
            },
            Shape::Object(_) | Shape::Rows(_) => html! {},
        };
        html! {
            div.field data-path=(path) {
                label for=(id) { (label) (req()) }
                (control)
                (hint.markup(&errors))
            }
        }
    }
}

/// Whether `p` is the path of an item of the list at `list` (`params.tags[3]`).
fn is_item_of(p: &str, list: &str) -> bool {
    p.strip_prefix(list)
        .and_then(|rest| rest.strip_prefix('['))
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// A control's help text and the ids it is described by.
struct Hint {
    id: String,
    text: Option<String>,
    error_ids: Vec<String>,
}

impl Hint {
    fn new(id: &str, description: Option<&str>, extra: Option<&str>, errors: &[&FieldError]) -> Self {
        let text = match (description, extra) {
            (Some(d), Some(x)) => Some(format!("{d} {x}")),
            (Some(d), None) => Some(d.to_string()),
            (None, Some(x)) => Some(x.to_string()),
            (None, None) => None,
        };
        let error_ids = (0..errors.len()).map(|i| error_id(id, i)).collect();
        Self { id: format!("{id}-hint"), text, error_ids }
    }

    /// The `aria-describedby` value: the hint, then the errors.
    fn describedby(&self) -> Option<String> {
        let ids: Vec<&str> = self
            .text
            .as_ref()
            .map(|_| self.id.as_str())
            .into_iter()
            .chain(self.error_ids.iter().map(String::as_str))
            .collect();
        (!ids.is_empty()).then(|| ids.join(" "))
    }

    fn markup(&self, errors: &[&FieldError]) -> Markup {
        let base = self.id.strip_suffix("-hint").unwrap_or(&self.id);
        html! {
            @if let Some(text) = &self.text { p.hint id=(self.id) { (text) } }
            (error_list(base, errors, false))
        }
    }
}

/// The id of the `i`-th error of the control `id`.
fn error_id(id: &str, i: usize) -> String {
    if i == 0 {
        format!("{id}-error")
    } else {
        format!("{id}-error-{}", i + 1)
    }
}

/// Error paragraphs; `with_path` prefixes each message with its path (for errors shown away
/// from any field).
fn error_list(id: &str, errors: &[&FieldError], with_path: bool) -> Markup {
    html! {
        @for (i, e) in errors.iter().enumerate() {
            p.field-error data-field=(e.path) id=(error_id(id, i)) {
                @if with_path { (e.path) ": " }
                (e.message)
            }
        }
    }
}
