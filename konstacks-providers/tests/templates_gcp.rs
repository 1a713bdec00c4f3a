//! Every built-in template at every stage against the gcp catalogue: the synthesized stack and
//! its monthly cost (or the exact diagnostics when the template asks for something gcp does
//! not offer). These are the example stacks users copy; a change shows up in review.
#![cfg(feature = "gcp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use konstacks_core::model::Stage;
use konstacks_templates::{builtin, TemplateContext};
use serde_json::json;

fn params(template: &str) -> serde_json::Value {
    match template {
        "agency-sites" => json!({ "clients": [
            { "name": "bakery", "size": "micro", "database": true },
            { "name": "dentist", "size": "small" },
            { "name": "law-firm", "size": "small", "database": true },
        ] }),
        _ => json!({}),
    }
}

#[test]
fn every_template_at_every_stage() {
    let catalog = konstacks_providers::gcp::catalog("europe-west1");
    let name = catalog.provider.clone();
    for t in builtin() {
        for stage in [Stage::Dev, Stage::Staging, Stage::Prod] {
            let stack_name = format!("{}-{}", t.name(), stage.as_str());
            let cx = TemplateContext::new(&stack_name, stage).provider(name.clone());
            let stack = t.build_json(&cx, params(t.name())).unwrap();
            let label = format!("{}_{}_{}", name, t.name(), stage.as_str());
            match stack.synth(&[&catalog]) {
                Ok(s) => {
                    insta::assert_yaml_snapshot!(format!("{label}_synth"), s);
                    let cost = konstacks_core::cost::estimate(&s, &[&catalog]);
                    insta::assert_snapshot!(format!("{label}_cost"), cost.render());
                }
                Err(e) => insta::assert_snapshot!(format!("{label}_refused"), e.to_string()),
            }
        }
    }
}
