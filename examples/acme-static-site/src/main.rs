//! The template as a CLI of its own: every Konstacks command over `acme-static-site`.
//! Run with: `cargo run -p acme-static-site -- plan` (simulated cloud, no credentials).

use std::process::ExitCode;

use acme_static_site::StaticSite;
use konstacks::cli::{self, App, BuildError};
use konstacks_core::model::{Jurisdiction, Placement};
use konstacks_templates::{Template, TemplateContext};

fn main() -> ExitCode {
    cli::run(|app: &mut App| -> Result<(), BuildError> {
        let cx = TemplateContext::new(format!("acme-site-{}", app.stage().as_str()), app.stage())
            .placement(Placement::within(Jurisdiction::Eu));
        let stack = StaticSite.build_json(&cx, app.params().clone())?;
        app.add(stack);
        Ok(())
    })
}
