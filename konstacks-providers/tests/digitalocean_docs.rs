//! The real-account example of `docs/digitalocean.md`, compiled (never run: it needs a token).
#![cfg(feature = "digitalocean")]

use std::sync::Arc;

use konstacks_core::engine::{ApplyOptions, Engine};
use konstacks_core::model::{Placement, Stage};
use konstacks_core::state::LocalBackend;
use konstacks_providers::digitalocean::DigitalOcean;
use konstacks_templates::TemplateContext;

#[allow(dead_code)]
async fn real_account() -> Result<(), Box<dyn std::error::Error>> {
    // Token from DIGITALOCEAN_TOKEN; DIGITALOCEAN_API_URL overrides the endpoint.
    let digitalocean = DigitalOcean::from_env()?.into_provider();
    let engine = Engine::new(Arc::new(LocalBackend::new(".konstacks"))).with_provider(digitalocean);
    let cx = TemplateContext::new("shop", Stage::Dev).placement(Placement::region("fra1")).provider("digitalocean");
    let stack =
        konstacks_templates::find("web-app")?.build_json(&cx, serde_json::json!({"admin_cidr": "203.0.113.7/32"}))?;
    let synthesized = engine.synth(&stack)?;
    let report = engine.apply(&synthesized, &ApplyOptions::default()).await?;
    println!("{:?}", report.outputs);
    Ok(())
}

#[test]
fn the_documented_constructor_needs_a_token() {
    // Only meaningful where no token is set, as in CI.
    if std::env::var("DIGITALOCEAN_TOKEN").is_err() {
        assert!(DigitalOcean::from_env().is_err());
    }
}
