//! Snapshot tests of the built-in web-app template: the synthesized stack and the plan against
//! an empty state, for every stage. These are the example stacks users copy; a change in them
//! shows up as a snapshot diff in review.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use konstacks::core::engine::Engine;
use konstacks::core::model::Stage;
use konstacks::core::sim::{SimCloud, SimConfig};
use konstacks::core::state::{MemoryBackend, StackState};
use konstacks::templates::{find, TemplateContext};

fn engine() -> Engine {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider()).with_sealer(None)
}

#[test]
fn web_app_synth_and_plan_per_stage() {
    let engine = engine();
    let t = find("web-app").unwrap();
    for stage in [Stage::Dev, Stage::Staging, Stage::Prod] {
        let name = format!("web-app-{}", stage.as_str());
        let cx = TemplateContext::new(&name, stage);
        let stack = t
            .build_json(
                &cx,
                serde_json::json!({ "app_image": "ghcr.io/acme/shop:1.4.2", "admin_cidr": "198.51.100.7/32" }),
            )
            .unwrap();
        let s = engine.synth(&stack).unwrap();
        insta::assert_yaml_snapshot!(format!("web_app_synth_{}", stage.as_str()), s);
        let plan = engine.plan_against(&s, &StackState::empty(&name));
        assert_eq!(plan.summary.create, s.resources.len());
        insta::assert_snapshot!(format!("web_app_plan_{}", stage.as_str()), plan.render(false));
    }
}

#[test]
fn web_app_params_are_checked() {
    let t = find("web-app").unwrap();
    let cx = TemplateContext::new("x", Stage::Dev);
    let err = t.build_json(&cx, serde_json::json!({ "vm_sise": "large" })).err().unwrap();
    assert!(err.to_string().contains("unknown field `vm_sise`"), "{err}");
}
