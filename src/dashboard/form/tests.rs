#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use konstacks_core::model::Stage;
use konstacks_templates::{builtin, find, TemplateContext, TemplateError};
use serde_json::{json, Value};

use super::*;

mod browser;

use browser::{controls, submit};

/// Parameters the template tests build every template with (tests/templates.rs).
fn sample(template: &str) -> Value {
    match template {
        "web-app" => json!({ "app_image": "ghcr.io/acme/shop:1.4.2", "admin_cidr": "198.51.100.7/32",
                             "vm_count": 3, "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA me@host"] }),
        "gdpr-saas" => json!({ "app": { "app_image": "ghcr.io/acme/crm:2.0.0", "pgvector": true },
                               "dpo_contact": "dpo@acme.example" }),
        "agency-sites" => json!({ "clients": [
            { "name": "bakery", "size": "micro", "database": true, "domain": "www.bakery.example",
              "zone": "bakery.example" },
            { "name": "dentist", "size": "small", "database": false },
            { "name": "law-firm", "size": "small", "database": true },
        ], "load_balancer_per_client": false }),
        "lamp-site" => json!({ "site_repo": "https://git.example/site.git", "backup_days": 9 }),
        other => panic!("no sample parameters for template {other}"),
    }
}

/// `over` laid over `base`, objects merged member by member.
fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = b.get(k).map_or_else(|| v.clone(), |bv| merge(bv, v));
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        _ => over.clone(),
    }
}

/// `v` without nulls, empty strings and empty lists (what the form leaves to the defaults).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null() && v.as_str() != Some("") && v.as_array().is_none_or(|a| !a.is_empty()))
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn field(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

fn errors_of(schema: &Value, fields: &[(String, String)]) -> Vec<(String, String)> {
    match parse_fields(schema, fields) {
        Err(errors) => errors.into_iter().map(|e| (e.path, e.message)).collect(),
        Ok(v) => panic!("accepted: {v}"),
    }
}

#[test]
fn every_builtin_template_round_trips_its_defaults() {
    for t in builtin() {
        let (schema, defaults) = (t.params_schema(), t.default_params());
        let html = render_fields(&schema, &defaults, &[]).into_string();
        let parsed = parse_fields(&schema, &submit(&html)).unwrap_or_else(|e| panic!("{}: {e:?}", t.name()));
        assert_eq!(normalized(&parsed), normalized(&defaults), "{}", t.name());
        assert_eq!(render_fields(&schema, &parsed, &[]).into_string(), html, "{}: drawn again the same", t.name());
    }
}

#[test]
fn every_builtin_template_round_trips_typed_parameters_and_builds() {
    for t in builtin() {
        let schema = t.params_schema();
        let values = merge(&t.default_params(), &sample(t.name()));
        let html = render_fields(&schema, &values, &[]).into_string();
        let parsed = parse_fields(&schema, &submit(&html)).unwrap_or_else(|e| panic!("{}: {e:?}", t.name()));
        assert_eq!(normalized(&parsed), normalized(&values), "{}", t.name());
        for stage in [Stage::Dev, Stage::Staging, Stage::Prod] {
            let cx = TemplateContext::new(format!("{}-x", t.name()), stage);
            if let Err(e) = t.build_json(&cx, parsed.clone()) {
                panic!("{} {}: {e}", t.name(), stage.as_str());
            }
        }
    }
}

#[test]
fn every_control_is_named_by_its_path_and_labelled() {
    for t in builtin() {
        let values = merge(&t.default_params(), &sample(t.name()));
        let html = render_fields(&t.params_schema(), &values, &[]).into_string();
        let found = controls(&html);
        assert!(!found.is_empty(), "{}", t.name());
        let mut ids = std::collections::BTreeSet::new();
        for c in &found {
            let (name, id) = (c.attr("name").unwrap(), c.attr("id").unwrap());
            assert!(name.starts_with("params."), "{name}");
            assert_eq!(id, field_id(name), "{name}");
            assert!(ids.insert(id.to_string()), "duplicate id {id}");
            assert!(html.contains(&format!(r#"<label for="{id}">"#)), "{}: no label for {id}", t.name());
        }
    }
    let html =
        render_fields(&find("agency-sites").unwrap().params_schema(), &sample("agency-sites"), &[]).into_string();
    for name in ["params.clients[0].name", "params.clients[2].database", "params.clients[3].name", "params.db_size"] {
        assert!(html.contains(&format!(r#"name="{name}""#)), "{name} in {html}");
    }
    assert!(!html.contains(r#"name="params.clients[4]"#), "one extra row only");
    // Required in existing rows, not in the empty extra row.
    let name0 = controls(&html).into_iter().find(|c| c.attr("name") == Some("params.clients[0].name")).unwrap();
    assert!(name0.has("required"));
    let fresh = controls(&html).into_iter().find(|c| c.attr("name") == Some("params.clients[3].name")).unwrap();
    assert!(!fresh.has("required") && fresh.attr("value") == Some(""));
}

#[test]
fn controls_are_typed_by_the_schema() {
    let schema = find("web-app").unwrap().params_schema();
    let html = render_fields(&schema, &find("web-app").unwrap().default_params(), &[]).into_string();
    let by_name = |n: &str| controls(&html).into_iter().find(|c| c.attr("name") == Some(n)).unwrap();
    let port = by_name("params.app_port");
    assert_eq!(
        (port.attr("type"), port.attr("min"), port.attr("max"), port.attr("step"), port.attr("value")),
        (Some("number"), Some("0"), Some("65535"), Some("1"), Some("8080"))
    );
    let lb = by_name("params.load_balancer");
    assert_eq!((lb.attr("type"), lb.attr("value"), lb.has("checked")), (Some("checkbox"), Some("true"), false));
    assert_eq!(by_name("params.ssh_keys").tag, "textarea");
    assert!(html.contains("One value per line."));
    let domain = by_name("params.domain");
    assert_eq!((domain.attr("type"), domain.attr("value")), (Some("text"), Some("")));
    assert_eq!(domain.attr("aria-describedby"), Some("params-domain-hint"));
    assert!(html.contains(r#"<p class="hint" id="params-domain-hint">The domain the app is served on"#));
    assert_eq!(by_name("params.health_path").attr("value"), Some("/"));
}

#[test]
fn type_errors_are_all_collected_with_template_paths() {
    let schema = find("web-app").unwrap().params_schema();
    let found = errors_of(
        &schema,
        &[
            field("params.vm_count", "abc"),
            field("params.app_port", "70000"),
            field("params.db_storage_gb", "-1"),
            field("params.backup_days", "1.5"),
            field("params.load_balancer", "maybe"),
            field("params.domain", "shop.example.com"),
            field("stack_name", "ignored"),
            field("csrf", "ignored"),
            field("unknown", "ignored"),
        ],
    );
    assert_eq!(
        found,
        [
            ("params.app_port".into(), r#"expected a whole number from 0 to 65535, got "70000""#.into()),
            ("params.backup_days".into(), r#"expected a whole number, got "1.5""#.into()),
            ("params.db_storage_gb".into(), r#"expected a whole number of at least 0, got "-1""#.into()),
            ("params.load_balancer".into(), r#"expected true or false, got "maybe""#.into()),
            ("params.vm_count".into(), r#"expected a whole number, got "abc""#.into()),
        ]
    );
    let agency = find("agency-sites").unwrap().params_schema();
    let found = errors_of(
        &agency,
        &[
            field("params.clients[0].name", "a"),
            field("params.clients[1].name", ""),
            field("params.clients[1].size", ""),
            field("params.clients[2].name", ""),
            field("params.clients[2].database", "maybe"),
            field("params.load_balancer_per_client", "perhaps"),
        ],
    );
    assert_eq!(
        found,
        [
            ("params.clients[1].name".into(), "a value is required".into()),
            ("params.clients[1].database".into(), r#"expected true or false, got "maybe""#.into()),
            ("params.load_balancer_per_client".into(), r#"expected true or false, got "perhaps""#.into()),
        ]
    );
    // Control characters of what was typed never reach the message raw.
    let found = errors_of(&schema, &[field("params.vm_count", "1\u{1b}[2J\u{202e}")]);
    assert_eq!(found[0].1, r#"expected a whole number, got "1\u{1b}[2J\u{202e}""#);
}

#[test]
fn empty_fields_are_left_to_the_defaults_and_rows_renumbered() {
    let agency = find("agency-sites").unwrap().params_schema();
    let parsed = parse_fields(
        &agency,
        &[
            field("params.clients[0].name", ""),
            field("params.clients[0].size", ""),
            field("params.clients[1].name", "bakery"),
            field("params.clients[1].size", ""),
            field("params.clients[10].name", "dentist"),
            field("params.clients[10].database", "true"),
            field("params.clients[2].name", "law-firm"),
            field("params.db_size", ""),
            field("params.load_balancer_per_client", ""),
        ],
    )
    .unwrap();
    assert_eq!(
        parsed,
        json!({ "load_balancer": false, "clients": [
            { "name": "bakery", "database": false },
            { "name": "law-firm", "database": false },
            { "name": "dentist", "database": true },
        ] })
    );
    let web = find("web-app").unwrap().params_schema();
    let parsed = parse_fields(&web, &[field("params.ssh_keys", "a\r\n\r\n  \nb\r\n"), field("params.vm_count", " 2 ")]);
    assert_eq!(parsed.unwrap()["ssh_keys"], json!(["a", "b"]));
    let parsed = parse_fields(&web, &[field("params.ssh_keys", "\n"), field("params.vm_count", "")]).unwrap();
    assert!(parsed.get("ssh_keys").is_none() && parsed.get("vm_count").is_none(), "{parsed}");
    // Nested objects left empty are left out; filled ones kept.
    let gdpr = find("gdpr-saas").unwrap().params_schema();
    let parsed = parse_fields(&gdpr, &[field("params.app.vm_count", "3"), field("params.dpo_contact", "")]).unwrap();
    assert_eq!(parsed["app"]["vm_count"], 3);
    assert!(parsed.get("dpo_contact").is_none());
}

#[test]
fn errors_are_drawn_next_to_their_fields() {
    let t = find("web-app").unwrap();
    let schema = t.params_schema();
    let fields = [field("params.ssh_keys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA me@host\nnope")];
    let params = parse_fields(&schema, &fields).unwrap();
    let Err(TemplateError::InvalidParams { problems, .. }) =
        t.build_json(&TemplateContext::new("x", Stage::Dev), params.clone())
    else {
        panic!("accepted")
    };
    let mut errors: Vec<FieldError> =
        problems.into_iter().map(|p| FieldError { path: p.path, message: p.message }).collect();
    assert_eq!(errors[0].path, "params.ssh_keys[1]");
    errors.push(FieldError { path: "params.vm_count".into(), message: "<script>alert(1)</script>".into() });
    errors.push(FieldError { path: "params.nowhere".into(), message: "lost?".into() });
    let html = render_fields(&schema, &merge(&t.default_params(), &params), &errors).into_string();
    let keys = html.find(r#"name="params.ssh_keys""#).unwrap();
    let keys_error = html.find(r#"<p class="field-error" data-field="params.ssh_keys[1]" id="params-ssh_keys-error">"#);
    assert!(keys_error.is_some_and(|at| at > keys), "{html}");
    assert!(html.contains(r#"id="params-ssh_keys" name="params.ssh_keys" rows="3" aria-describedby="params-ssh_keys-hint params-ssh_keys-error" aria-invalid="true""#), "{html}");
    assert!(html.contains(
        r#"<p class="field-error" data-field="params.vm_count" id="params-vm_count-error">&lt;script&gt;alert(1)&lt;/script&gt;</p>"#
    ));
    // An error no field claims is still shown, first, with its path.
    let lost = html.find(r#"data-field="params.nowhere" id="params-unplaced-error">params.nowhere: lost?</p>"#);
    assert!(lost.is_some_and(|at| at < keys), "{html}");
    assert_eq!(html.matches(r#"class="field-error""#).count(), 3);
}

#[test]
fn values_are_escaped_and_output_deterministic() {
    let t = find("agency-sites").unwrap();
    let schema = t.params_schema();
    let evil = r#""><script>alert(1)</script>"#;
    let values = json!({ "clients": [{ "name": evil, "size": evil, "database": false }], "db_size": evil });
    let html = render_fields(&schema, &values, &[]).into_string();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&quot;&gt;&lt;script&gt;"));
    assert_eq!(html, render_fields(&schema, &values, &[]).into_string());
    // What the browser sends back is what was shown.
    assert_eq!(parse_fields(&schema, &submit(&html)).unwrap()["clients"][0]["name"], evil);
}

#[test]
fn failed_values_are_kept_for_drawing_the_form_again() {
    let schema = find("web-app").unwrap().params_schema();
    let fields = [field("params.vm_count", "abc"), field("params.domain", "shop.example.com")];
    let errors = parse_fields(&schema, &fields).unwrap_err();
    let typed = submitted_values(&schema, &fields);
    assert_eq!(typed["vm_count"], "abc");
    let html = render_fields(&schema, &typed, &errors).into_string();
    assert!(html.contains(r#"type="text" id="params-vm_count" name="params.vm_count" value="abc""#), "{html}");
    assert!(html.contains(r#"value="shop.example.com""#));
}

mod shapes;
