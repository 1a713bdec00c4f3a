//! Schema constructs the built-in templates do not use (yet): enums, `definitions` and
//! `allOf` wrappers (schemars 0.8), numbers, maps, recursion.

use serde_json::json;

use super::browser::{controls, submit};
use super::*;

/// A schema in the draft 2020-12 style of schemars 1 (`$defs`, `type: [T, "null"]`).
fn modern() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "P", "type": "object", "additionalProperties": false,
        "required": ["tier"],
        "properties": {
            "tier": { "$ref": "#/$defs/Tier" },
            "region": { "anyOf": [{ "$ref": "#/$defs/Region" }, { "type": "null" }], "default": null,
                        "description": "Where." },
            "ratio": { "type": "number", "minimum": 0.5, "maximum": 2.5, "default": 1.0 },
            "ports": { "type": "array", "items": { "type": "integer", "minimum": 1, "maximum": 65535 } },
            "labels": { "type": "object", "additionalProperties": { "type": "string" } },
            "limits": { "$ref": "#/$defs/Limits" },
            "tree": { "$ref": "#/$defs/Tree" }
        },
        "$defs": {
            "Tier": { "oneOf": [
                { "const": "basic", "type": "string", "description": "One small VM." },
                { "const": "pro", "type": "string", "description": "Two bigger VMs." }
            ] },
            "Region": { "type": "string", "enum": ["eu-west", "eu-central"] },
            "Limits": { "type": "object", "required": ["cpu"], "properties": {
                "cpu": { "type": "integer", "exclusiveMinimum": 0 },
                "burst": { "type": ["boolean", "null"] }
            } },
            "Tree": { "type": "object", "properties": { "name": { "type": "string" },
                "children": { "type": "array", "items": { "$ref": "#/$defs/Tree" } } } }
        }
    })
}

/// The same kind of schema in the draft 7 style of schemars 0.8 (`definitions`, `allOf`).
fn legacy() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "P", "type": "object",
        "properties": {
            "size": { "description": "Size.", "default": "small",
                      "allOf": [{ "$ref": "#/definitions/Size" }] },
            "count": { "type": ["integer", "null"], "format": "uint8", "minimum": 0.0 },
            "mode": { "anyOf": [{ "$ref": "#/definitions/Mode" }, { "type": "null" }] },
            "sites": { "type": "array", "items": { "$ref": "#/definitions/Site" } }
        },
        "definitions": {
            "Size": { "type": "string", "enum": ["small", "large"] },
            "Mode": { "oneOf": [
                { "type": "string", "enum": ["fast"], "description": "Quick." },
                { "type": "string", "enum": ["safe"] }
            ] },
            "Site": { "type": "object", "required": ["name"], "properties": {
                "name": { "type": "string", "maxLength": 5 },
                "tier": { "type": "string", "enum": ["a", "b"] }
            } }
        }
    })
}

fn select_of<'h>(html: &'h str, name: &str) -> &'h str {
    let at = html.find(&format!(r#"name="{name}""#)).unwrap();
    &html[at..at + html[at..].find("</select>").unwrap()]
}

#[test]
fn enums_become_selects_with_an_empty_choice_when_optional() {
    let schema = modern();
    let html = render_fields(&schema, &json!({ "tier": "pro" }), &[]).into_string();
    let tier = select_of(&html, "params.tier");
    assert!(tier.contains("required"), "{tier}");
    assert!(!tier.contains(r#"<option value="">"#), "required: no empty choice");
    assert!(tier.contains(r#"<option value="pro" selected>pro — Two bigger VMs.</option>"#), "{tier}");
    let region = select_of(&html, "params.region");
    assert!(region.contains(r#"<option value="" selected>(none)</option>"#), "{region}");
    assert!(region.contains(r#"<option value="eu-central">eu-central</option>"#));
    assert!(html.contains(r#"<p class="hint" id="params-region-hint">Where.</p>"#));
    // Required ones come first.
    assert!(html.find("params.tier").unwrap() < html.find("params.labels").unwrap());
    let burst = select_of(&html, "params.limits.burst");
    assert!(burst.contains(r#"<option value="true">true</option>"#), "optional boolean: {burst}");

    let parsed = parse_fields(
        &schema,
        &[
            field("params.tier", "basic"),
            field("params.region", "eu-west"),
            field("params.ratio", "1.5"),
            field("params.ports", "80\n443"),
            field("params.labels", r#"{ "team": "web" }"#),
            field("params.limits.cpu", "2"),
            field("params.limits.burst", "false"),
        ],
    )
    .unwrap();
    assert_eq!(
        parsed,
        json!({ "tier": "basic", "region": "eu-west", "ratio": 1.5, "ports": [80, 443], "labels": { "team": "web" },
                "limits": { "cpu": 2, "burst": false } })
    );
    let found = errors_of(
        &schema,
        &[
            field("params.tier", "gold"),
            field("params.ratio", "3"),
            field("params.ports", "80\nssh\n0"),
            field("params.labels", "{team"),
            field("params.limits.cpu", "0"),
        ],
    );
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["params.tier", "params.labels", "params.limits.cpu", "params.ports[1]", "params.ports[2]", "params.ratio"]
    );
    assert_eq!(found[0].1, r#"expected one of `basic`, `pro`, got "gold""#);
    assert_eq!(found[2].1, r#"expected a whole number of at least 1, got "0""#);
    assert_eq!(found[5].1, r#"expected a number from 0.5 to 2.5, got "3""#);
    assert!(found[1].1.starts_with("expected JSON ("), "{}", found[1].1);
}

#[test]
fn a_required_value_left_empty_is_reported_unless_its_object_is_left_out() {
    let schema = modern();
    assert_eq!(errors_of(&schema, &[]), [("params.tier".to_string(), "a value is required".to_string())]);
    // `limits` untouched: left out, its required `cpu` not asked for.
    let parsed = parse_fields(&schema, &[field("params.tier", "pro"), field("params.limits.cpu", "")]).unwrap();
    assert_eq!(parsed, json!({ "tier": "pro" }));
    let found = errors_of(&schema, &[field("params.tier", "pro"), field("params.limits.burst", "true")]);
    assert_eq!(found, [("params.limits.cpu".to_string(), "a value is required".to_string())]);
}

#[test]
fn recursive_schemas_end_in_json_text() {
    let schema = modern();
    let tree = json!({ "name": "a", "children": [{ "name": "b", "children": [{ "name": "c" }] }] });
    let html = render_fields(&schema, &json!({ "tier": "pro", "tree": tree }), &[]).into_string();
    assert!(html.len() < 200_000, "{}", html.len());
    assert!(html.contains("Written as JSON."));
    let parsed = parse_fields(&schema, &submit(&html)).unwrap();
    assert_eq!(parsed["tree"], tree);
}

#[test]
fn draft_7_schemas_with_definitions_and_all_of_wrappers() {
    let schema = legacy();
    let html = render_fields(&schema, &json!({ "sites": [{ "name": "a", "tier": "b" }] }), &[]).into_string();
    let size = select_of(&html, "params.size");
    assert!(size.contains(r#"<option value="" selected>(default: small)</option>"#), "{size}");
    assert!(html.contains(r#"<p class="hint" id="params-size-hint">Size.</p>"#));
    let mode = select_of(&html, "params.mode");
    assert!(mode.contains(r#"<option value="fast">fast — Quick.</option>"#), "{mode}");
    let count = controls(&html).into_iter().find(|c| c.attr("name") == Some("params.count")).unwrap();
    assert_eq!((count.attr("type"), count.attr("min"), count.has("required")), (Some("number"), Some("0"), false));
    let name = controls(&html).into_iter().find(|c| c.attr("name") == Some("params.sites[0].name")).unwrap();
    assert_eq!((name.attr("maxlength"), name.has("required")), (Some("5"), true));
    // An enum in a row keeps an empty choice so the row can be cleared.
    assert!(select_of(&html, "params.sites[0].tier").contains(r#"<option value="">"#));
    let parsed = parse_fields(&schema, &submit(&html)).unwrap();
    assert_eq!(parsed, json!({ "sites": [{ "name": "a", "tier": "b" }] }));
    let found = errors_of(&schema, &[field("params.sites[0].name", "toolong"), field("params.mode", "slow")]);
    assert_eq!(
        found,
        [
            ("params.mode".to_string(), r#"expected one of `fast`, `safe`, got "slow""#.to_string()),
            ("params.sites[0].name".to_string(), "at most 5 characters, got 7".to_string()),
        ]
    );
}

#[test]
fn ids_are_safe_and_distinct() {
    assert_eq!(field_id("params.clients[10].name"), "params-clients-10-name");
    assert_eq!(field_id("params.a-b c\"<"), "params-a_x2db_x20c_x22_x3c");
    assert_eq!(field_id("params.é"), "params-_xc3_xa9");
}
