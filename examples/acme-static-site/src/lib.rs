//! `acme-static-site`: how a template author publishes a Konstack as a crate.
//!
//! Implement [`TypedTemplate`] for a unit struct with typed, documented parameters; embedding
//! tools then get the JSON Schema, the defaults and the stage-aware build for free, and
//! `konstacks::cli::run` turns it into a full CLI (see `src/main.rs`). Run with:
//! `cargo run -p acme-static-site -- apply --yes` (simulated cloud, no credentials).

use konstacks_core::model::{Firewall, Image, Ingress, Stack, Stage, Subnet, Vm, VmSize, Vpc};
use konstacks_templates::cloud_config::CloudConfig;
use konstacks_templates::{grammar, ParamProblem, TemplateContext, TemplateError, TypedTemplate};

/// A static website served by nginx from one VM, behind a firewall that opens 80 and 443 only.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticSite;

/// Parameters of [`StaticSite`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StaticSiteParams {
    /// Git repository holding the site's files.
    pub repo: String,
    /// VM size slug; `nano` in dev, `micro` otherwise when absent.
    pub size: Option<String>,
}

impl Default for StaticSiteParams {
    fn default() -> Self {
        Self { repo: "https://git.example/acme/site.git".into(), size: None }
    }
}

impl TypedTemplate for StaticSite {
    type Params = StaticSiteParams;
    const NAME: &'static str = "acme-static-site";
    const DESCRIPTION: &'static str = "ACME static site: nginx on one VM, ports 80/443 only";

    fn build(&self, cx: &TemplateContext, p: &StaticSiteParams) -> Result<Stack, TemplateError> {
        // Parameters reach cloud-init: check each one's grammar first, then pass it only as
        // one whole argument, never inside YAML or shell text.
        if let Err(e) = grammar::https_url(&p.repo) {
            let problem = ParamProblem { path: "params.repo".into(), message: e.to_string() };
            return Err(TemplateError::InvalidParams { template: Self::NAME.into(), problems: vec![problem] });
        }
        let stack = cx.new_stack();
        let vpc = stack.add("vpc", Vpc::new("10.50.0.0/16"));
        let subnet = stack.add("public", Subnet::new(vpc, "10.50.1.0/24").public());
        let fw = stack.add(
            "web-fw",
            Firewall::new(vpc).allow(Ingress::tcp(80).from_anywhere()).allow(Ingress::tcp(443).from_anywhere()),
        );
        let size =
            p.size.clone().unwrap_or_else(|| if cx.stage == Stage::Dev { "nano".into() } else { "micro".into() });
        let mut init = CloudConfig::new();
        init.package("nginx").package("git");
        init.run(&["rm", "-rf", "/var/www/html"]);
        init.run(&["git", "clone", "--depth", "1", "--", p.repo.as_str(), "/var/www/html"]);
        let web = stack.add(
            "web",
            Vm::new(Image::UbuntuLts, VmSize::from_slug(&size), subnet)
                .firewall(fw)
                .public_ip(true)
                .user_data(init.render()),
        );
        stack.export("site-ip", web.public_ip());
        Ok(stack)
    }
}
