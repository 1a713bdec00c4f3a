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
    /// Cloud to deploy to: `sim` (the embedded simulated cloud), `digitalocean` (token from
    /// DIGITALOCEAN_TOKEN; build with --features digitalocean), `aws` (credentials from the
    /// standard chain; build with --features aws), `gcp` (project and region from
    /// GOOGLE_CLOUD_PROJECT / GOOGLE_CLOUD_REGION, application default credentials; build with
    /// --features gcp).
    #[arg(long, value_name = "NAME", default_value = "sim")]
    provider: String,
    /// Pin an image slug to an AMI of the account (`ubuntu-lts=ami-0abc...`), for accounts that
    /// only allow their own images or regions where the default lookup finds none; repeatable,
    /// and added to the pins of KONSTACKS_AWS_IMAGES. Only with `--provider aws`.
    #[arg(long = "image", value_name = "SLUG=AMI")]
    images: Vec<String>,
}

/// Register the provider the stack goes to (the simulated cloud is always there).
fn register_provider(app: &mut App, name: &str, images: &[String]) -> Result<(), BuildError> {
    if !images.is_empty() && name != "aws" {
        return Err(BuildError::Invalid(format!(
            "--image pins AMIs of the aws provider; this stack goes to `{name}`, whose images come from its catalogue"
        )));
    }
    match name {
        "sim" => Ok(()),
        "digitalocean" => register_digitalocean(app),
        "aws" => register_aws(app, images),
        "gcp" => register_gcp(app),
        other => Err(BuildError::Invalid(format!("unknown provider `{other}`; use sim, digitalocean, aws or gcp"))),
    }
}

#[cfg_attr(all(feature = "aws", feature = "digitalocean", feature = "gcp"), allow(dead_code))]
fn not_built_in(name: &str) -> BuildError {
    BuildError::Failed(format!(
        "this konstacks binary was built without the `{name}` backend; rebuild with `--features {name}`"
    ))
}

#[cfg(feature = "digitalocean")]
fn register_digitalocean(app: &mut App) -> Result<(), BuildError> {
    let backend = konstacks::providers::digitalocean::DigitalOcean::from_env()
        .map_err(|e| BuildError::Failed(format!("cannot configure DigitalOcean: {e}")))?;
    app.provider(backend.into_provider());
    Ok(())
}

#[cfg(not(feature = "digitalocean"))]
fn register_digitalocean(_app: &mut App) -> Result<(), BuildError> {
    Err(not_built_in("digitalocean"))
}

#[cfg(feature = "aws")]
fn register_aws(app: &mut App, images: &[String]) -> Result<(), BuildError> {
    // Bad pins are refused before anything else is configured (and before any call).
    let pins = konstacks::providers::aws::parse_image_pins(&images.join(","))
        .map_err(|e| BuildError::Invalid(format!("--image: {}", e.message())))?;
    // Credentials, region and endpoint come from the standard AWS chain (environment,
    // profiles, SSO, instance metadata; AWS_ENDPOINT_URL for moto or another endpoint).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BuildError::Failed(format!("cannot start a runtime to configure AWS: {e}")))?;
    let mut builder = rt
        .block_on(konstacks::providers::aws::AwsProvider::builder_from_env())
        .map_err(|e| BuildError::Invalid(format!("cannot configure AWS: {}", e.message())))?;
    for (slug, ami) in pins {
        builder = builder.image(slug, ami);
    }
    let aws = builder.build().map_err(|e| BuildError::Failed(format!("cannot configure AWS: {e}")))?;
    app.provider(std::sync::Arc::new(aws).provider());
    Ok(())
}

#[cfg(not(feature = "aws"))]
fn register_aws(_app: &mut App, _images: &[String]) -> Result<(), BuildError> {
    Err(not_built_in("aws"))
}

#[cfg(feature = "gcp")]
fn register_gcp(app: &mut App) -> Result<(), BuildError> {
    // Google's clients are built on a runtime that lives as long as the process: their
    // credential caches keep background tasks on it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("konstacks-gcp".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start a runtime to configure GCP: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let built =
                    konstacks::providers::gcp::Gcp::from_env().await.map_err(|e| format!("cannot configure GCP: {e}"));
                let _ = tx.send(built);
                std::future::pending::<()>().await
            });
        })
        .map_err(|e| BuildError::Failed(format!("cannot start a thread to configure GCP: {e}")))?;
    let gcp = rx
        .recv()
        .map_err(|_| BuildError::Failed("GCP configuration stopped before answering".into()))?
        .map_err(BuildError::Failed)?;
    app.provider(gcp.into_provider());
    Ok(())
}

#[cfg(not(feature = "gcp"))]
fn register_gcp(_app: &mut App) -> Result<(), BuildError> {
    Err(not_built_in("gcp"))
}

fn build(app: &mut App, args: &TemplateArgs) -> Result<(), BuildError> {
    let template = templates::find(&args.template)?;
    app.template(template.name());
    let name = args.name.clone().unwrap_or_else(|| format!("{}-{}", template.name(), app.stage().as_str()));
    let placement = match (&args.region, args.jurisdiction) {
        (Some(r), Some(j)) => Placement::region_within(r, j),
        // The default jurisdiction holds for a named region too: `--region us-east` alone is
        // refused on an EU default instead of silently moving data out of it.
        (Some(r), None) => Placement::region_within(r, Jurisdiction::Eu),
        (None, Some(j)) => Placement::within(j),
        (None, None) => Placement::within(Jurisdiction::Eu),
    };
    register_provider(app, &args.provider, &args.images)?;
    let mut cx = TemplateContext::new(name, app.stage()).placement(placement).provider(args.provider.clone());
    if let Some(slug) = app.preview() {
        cx = cx.preview(slug);
    }
    let stack = template.build_json(&cx, app.params().clone())?;
    app.add(stack);
    app.policy(templates::default_policy(template.as_ref()));
    app.parity_knobs(templates::knobs(template.as_ref()));
    Ok(())
}

fn main() -> ExitCode {
    cli::run_with(build)
}
