//! The `konstacks` command line: every Konstacks command over the built-in templates.
//!
//! ```text
//! konstacks apply --template web-app --stage prod --params prod.toml
//! ```
//!
//! Run `konstacks --help` for the commands and exit codes, `konstacks templates` for the
//! templates; `docs/cli.md` has the details.

use std::process::ExitCode;

use clap::Args;
use konstacks::cli::{self, App, BuildError};
use konstacks::core::model::{Jurisdiction, Placement};
use konstacks::templates::{self, TemplateContext};

/// Options of the `konstacks` binary on top of the common ones.
#[derive(Debug, Clone, Args)]
struct TemplateArgs {
    /// Template to instantiate (`konstacks templates` lists them).
    #[arg(long, value_name = "NAME", default_value = "web-app")]
    template: String,
    /// Stack name [default: <template>-<stage>].
    #[arg(long, value_name = "STACK")]
    name: Option<String>,
    /// Region of the provider (with --jurisdiction: checked to lie within it).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Any region within this jurisdiction (eu, uk, switzerland, us, ...) [default: eu].
    #[arg(long, value_name = "J", value_parser = cli::parse_jurisdiction)]
    jurisdiction: Option<Jurisdiction>,
}

fn build(app: &mut App, args: &TemplateArgs) -> Result<(), BuildError> {
    let template = templates::find(&args.template)?;
    let name = args.name.clone().unwrap_or_else(|| format!("{}-{}", template.name(), app.stage().as_str()));
    let placement = match (&args.region, args.jurisdiction) {
        (Some(r), Some(j)) => Placement::region_within(r, j),
        (Some(r), None) => Placement::region(r),
        (None, Some(j)) => Placement::within(j),
        (None, None) => Placement::within(Jurisdiction::Eu),
    };
    let cx = TemplateContext::new(name, app.stage()).placement(placement);
    let stack = template.build_json(&cx, app.params().clone())?;
    app.add(stack);
    app.policy(templates::default_policy(template.as_ref()));
    app.parity_knobs(templates::knobs(template.as_ref()));
    Ok(())
}

fn main() -> ExitCode {
    cli::run_with(build)
}
