//! The snapshot test every backend's catalogue gets: every built-in template at every stage,
//! the synthesized stack and its monthly cost (or the exact diagnostics when the template asks
//! for something the provider does not offer). These are the example stacks users copy; a change
//! shows up in review. A macro, so that the snapshots are named after the calling test file.

use serde_json::json;

/// The parameters each template is built with.
pub fn params(template: &str) -> serde_json::Value {
    match template {
        "agency-sites" => json!({ "clients": [
            { "name": "bakery", "size": "micro", "database": true },
            { "name": "dentist", "size": "small" },
            { "name": "law-firm", "size": "small", "database": true },
        ] }),
        _ => json!({}),
    }
}

/// Snapshot every template × stage against a catalogue.
macro_rules! every_template_at_every_stage {
    ($catalog:expr) => {{
        use konstacks_core::model::Stage;
        use konstacks_templates::{builtin, TemplateContext};
        let catalog = $catalog;
        let name = catalog.provider.clone();
        for t in builtin() {
            for stage in [Stage::Dev, Stage::Staging, Stage::Prod] {
                let stack_name = format!("{}-{}", t.name(), stage.as_str());
                let cx = TemplateContext::new(&stack_name, stage).provider(name.clone());
                let stack = t.build_json(&cx, crate::template_snapshots::params(t.name())).unwrap();
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
    }};
}
