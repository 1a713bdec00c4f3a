//! Reusable Konstacks: stack templates as typed Rust values.
//!
//! A template takes typed parameters (serde; unknown fields are rejected) and a
//! [`TemplateContext`] (stack name, stage, placement, provider) and builds a
//! [`konstacks_core::model::Stack`]. Stage-dependent defaults let one template produce dev,
//! staging and prod. Templates depend on core only, never on a provider.

pub mod agency_sites;
pub mod app_boot;
pub mod cloud_config;
mod edge;
pub mod gdpr_saas;
pub mod grammar;
pub mod lamp_site;
pub mod packs;
pub mod web_app;

use konstacks_core::model::{cache, database, vm, Jurisdiction, Placement, Stack, Stage, SIMULATED};
use konstacks_core::parity::Knob;

/// Where and how a template is instantiated.
#[derive(Debug, Clone)]
pub struct TemplateContext {
    /// Stack name (prefix of every physical name).
    pub stack_name: String,
    /// Stage.
    pub stage: Stage,
    /// Placement.
    pub placement: Placement,
    /// Provider the stack goes to.
    pub provider: String,
    /// The preview's slug (the branch part of its stack name, `feature-x`) when the stack is a
    /// preview environment: templates then serve on `<slug>.<zone>` in the base stack's zone
    /// (used, never owned) or drop the domain when there is no zone.
    pub preview: Option<String>,
}

impl TemplateContext {
    /// A context on the simulated cloud, in the EU.
    pub fn new(stack_name: impl Into<String>, stage: Stage) -> Self {
        Self {
            stack_name: stack_name.into(),
            stage,
            placement: Placement::within(Jurisdiction::Eu),
            provider: SIMULATED.into(),
            preview: None,
        }
    }

    /// Mark the stack as the preview environment `slug` (a DNS label: `feature-x`).
    pub fn preview(mut self, slug: impl Into<String>) -> Self {
        self.preview = Some(slug.into());
        self
    }

    /// Set the placement.
    pub fn placement(mut self, p: Placement) -> Self {
        self.placement = p;
        self
    }

    /// Set the provider.
    pub fn provider(mut self, p: impl Into<String>) -> Self {
        self.provider = p.into();
        self
    }

    /// A new, empty stack for this context.
    pub fn new_stack(&self) -> Stack {
        let s = Stack::new(self.stack_name.clone(), self.placement.clone(), self.stage);
        s.provider(self.provider.clone());
        s.tag("konstacks:stage", self.stage.as_str());
        s
    }
}

/// Why a template could not be instantiated.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The parameters do not match the template's parameter type.
    #[error("invalid parameters for template `{template}`: {reason}")]
    Params {
        /// Template name.
        template: String,
        /// What serde said (field and expected type).
        reason: String,
    },
    /// No template of that name.
    #[error("no template named `{0}`; run `konstacks templates` to list them")]
    Unknown(String),
    /// The parameters parse but break a rule of the template.
    #[error("template `{template}` cannot be built: {reason}")]
    Rule {
        /// Template name.
        template: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Parameters that break their grammar (an image reference, a URL, a command line, ...) or a
    /// rule of the template: every one found, each with its path (`params.app_image`).
    #[error("template `{template}` cannot be built: {}", ParamProblem::list(problems))]
    InvalidParams {
        /// Template name.
        template: String,
        /// Every problem, in the order of the parameters.
        problems: Vec<ParamProblem>,
    },
}

/// One invalid parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamProblem {
    /// Where (`params.app_image`, `params.clients[2].name`).
    pub path: String,
    /// What is wrong and what to do; control characters of the value are escaped.
    pub message: String,
}

impl ParamProblem {
    fn list(problems: &[ParamProblem]) -> String {
        match problems {
            [one] => format!("{}: {}", one.path, one.message),
            all => {
                let mut s = format!("{} invalid parameters:", all.len());
                for p in all {
                    s.push_str(&format!("\n  {}: {}", p.path, p.message));
                }
                s
            }
        }
    }
}

/// Collects every parameter problem of one template before anything is built.
#[derive(Debug)]
pub(crate) struct Problems {
    template: &'static str,
    list: Vec<ParamProblem>,
}

impl Problems {
    pub(crate) fn new(template: &'static str) -> Self {
        Self { template, list: Vec::new() }
    }

    /// Record `message` against `path`.
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(ParamProblem { path: path.into(), message: message.into() });
    }

    /// Record the outcome of a grammar check.
    pub(crate) fn check(&mut self, path: impl Into<String>, r: Result<(), grammar::GrammarError>) {
        if let Err(e) = r {
            self.push(path, e.to_string());
        }
    }

    /// Check an optional value.
    pub(crate) fn check_opt(
        &mut self,
        path: impl Into<String>,
        v: Option<&String>,
        f: fn(&str) -> Result<(), grammar::GrammarError>,
    ) {
        if let Some(v) = v {
            self.check(path, f(v));
        }
    }

    /// `Err` with every problem, or `Ok` when there is none.
    pub(crate) fn finish(self) -> Result<(), TemplateError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(TemplateError::InvalidParams { template: self.template.to_string(), problems: self.list })
        }
    }
}

/// A template whose parameters are a typed Rust value.
pub trait TypedTemplate: Send + Sync {
    /// Parameters (serde; `Default` gives the stage-independent defaults; the JSON Schema lets
    /// an embedding tool render a form).
    type Params: serde::de::DeserializeOwned + serde::Serialize + Default + schemars::JsonSchema;
    /// Stable name (`web-app`).
    const NAME: &'static str;
    /// One-line description.
    const DESCRIPTION: &'static str;
    /// Fields that may differ between dev, staging and prod (`kind.field`, or `count:<path glob>`
    /// for resources that exist in some stages only). Anything else differing is parity drift.
    /// The default also lets dev serve plain HTTP on the load balancer's own name while the other
    /// stages serve their domain over HTTPS ([`Knob::plain_http_in_dev`]): the certificate,
    /// zone and record may be missing in dev, the load balancer itself may not.
    const PARITY_KNOBS: &'static [Knob] = &[
        Knob::field(vm::field::SIZE),
        Knob::field(database::field::SIZE),
        Knob::field(database::field::STORAGE_GB),
        Knob::field(database::field::HIGH_AVAILABILITY),
        Knob::field(database::field::DELETION_PROTECTION),
        Knob::field(database::field::BACKUP_RETENTION_DAYS),
        Knob::field(cache::field::SIZE),
        Knob::field(cache::field::REPLICAS),
        Knob::field(cache::field::HIGH_AVAILABILITY),
        Knob::plain_http_in_dev(),
    ];
    /// Compliance packs checked by default (see [`packs`]).
    const PACKS: &'static [&'static str] = &["baseline"];
    /// Build the stack.
    fn build(&self, cx: &TemplateContext, params: &Self::Params) -> Result<Stack, TemplateError>;
}

/// A template behind dynamic dispatch, with parameters as JSON (for CLIs and embedding tools).
pub trait Template: Send + Sync {
    /// Stable name.
    fn name(&self) -> &'static str;
    /// One-line description.
    fn description(&self) -> &'static str;
    /// The default parameters, as JSON.
    fn default_params(&self) -> serde_json::Value;
    /// Build the stack from JSON parameters.
    fn build_json(&self, cx: &TemplateContext, params: serde_json::Value) -> Result<Stack, TemplateError>;
    /// The JSON Schema of the parameters.
    fn params_schema(&self) -> serde_json::Value;
    /// Fields that may differ between stages (see [`TypedTemplate::PARITY_KNOBS`]).
    fn parity_knobs(&self) -> &'static [Knob];
    /// Compliance packs checked by default (see [`TypedTemplate::PACKS`]).
    fn default_packs(&self) -> &'static [&'static str];
}

/// The default policy of a template: its packs, composed.
pub fn default_policy(t: &dyn Template) -> konstacks_core::policy::PolicySet {
    t.default_packs()
        .iter()
        .filter_map(|n| packs::by_name(n))
        .fold(konstacks_core::policy::PolicySet::new(), |set, p| set.pack(p))
}

/// The parity knobs of a template as a [`konstacks_core::parity::KnobSet`].
pub fn knobs(t: &dyn Template) -> konstacks_core::parity::KnobSet {
    t.parity_knobs().iter().fold(konstacks_core::parity::KnobSet::none().numbered_replicas(true), |set, k| set.knob(*k))
}

impl<T: TypedTemplate> Template for T {
    fn name(&self) -> &'static str {
        T::NAME
    }
    fn description(&self) -> &'static str {
        T::DESCRIPTION
    }
    fn default_params(&self) -> serde_json::Value {
        serde_json::to_value(T::Params::default()).unwrap_or(serde_json::Value::Null)
    }
    fn build_json(&self, cx: &TemplateContext, params: serde_json::Value) -> Result<Stack, TemplateError> {
        let params = if params.is_null() { serde_json::Value::Object(Default::default()) } else { params };
        if !params.is_object() {
            return Err(TemplateError::Params {
                template: T::NAME.to_string(),
                reason: "parameters must be a table (TOML) or an object (JSON), not a list or a single value".into(),
            });
        }
        // The path names the parameter at fault (`vm_count`, `clients[2].size`).
        let p: T::Params = serde_path_to_error::deserialize(params).map_err(|e| {
            let path = e.path().to_string();
            let reason = if path == "." { e.inner().to_string() } else { format!("`{path}`: {}", e.inner()) };
            TemplateError::Params { template: T::NAME.to_string(), reason }
        })?;
        self.build(cx, &p)
    }
    fn params_schema(&self) -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T::Params)).unwrap_or(serde_json::Value::Null)
    }
    fn parity_knobs(&self) -> &'static [Knob] {
        T::PARITY_KNOBS
    }
    fn default_packs(&self) -> &'static [&'static str] {
        T::PACKS
    }
}

/// Every built-in template.
pub fn builtin() -> Vec<Box<dyn Template>> {
    vec![
        Box::new(web_app::WebApp),
        Box::new(gdpr_saas::GdprSaas),
        Box::new(agency_sites::AgencySites),
        Box::new(lamp_site::LampSite),
    ]
}

/// The built-in template named `name`.
pub fn find(name: &str) -> Result<Box<dyn Template>, TemplateError> {
    builtin().into_iter().find(|t| t.name() == name).ok_or_else(|| TemplateError::Unknown(name.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use konstacks_core::model::Stage;
    use serde_json::json;

    use super::*;

    fn problems(template: &str, params: serde_json::Value) -> Vec<(String, String)> {
        let cx = TemplateContext::new("x", Stage::Prod);
        match find(template).unwrap().build_json(&cx, params) {
            Err(TemplateError::InvalidParams { problems, .. }) => {
                problems.into_iter().map(|p| (p.path, p.message)).collect()
            }
            Err(other) => panic!("{template}: {other}"),
            Ok(_) => panic!("{template}: accepted"),
        }
    }

    #[test]
    fn every_parameter_problem_is_listed_with_its_path() {
        let found = problems(
            "gdpr-saas",
            json!({
                "app": { "app_image": "x\"\nruncmd: [evil]", "start_command": "a\u{1b}b", "vm_count": 0,
                         "ssh_keys": ["ssh-ed25519 AAAA", "nope"], "backup_days": 3, "vm_size": "a b" },
                "data_classification": "a b", "dpo_contact": "<dpo>"
            }),
        );
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "params.app.app_image",
                "params.app.start_command",
                "params.app.vm_size",
                "params.app.vm_count",
                "params.app.ssh_keys[1]",
                "params.app.backup_days",
                "params.data_classification",
                "params.dpo_contact",
            ]
        );
        assert!(found.iter().all(|(_, m)| !m.chars().any(char::is_control)), "{found:?}");
        let lamp = problems("lamp-site", json!({ "site_repo": "git@github.com:a/b.git", "db_size": "$(id)" }));
        assert_eq!(lamp.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["params.db_size", "params.site_repo"]);
        let agency = problems(
            "agency-sites",
            json!({ "clients": [{ "name": "ok" }, { "name": "-x\u{202e}" }, { "name": "ok" }] }),
        );
        assert_eq!(
            agency,
            [
                (
                    "params.clients[1].name".to_string(),
                    "client name `-x\\u{202e}` must be 1 to 30 characters of a-z, 0-9 and '-', not starting with '-'"
                        .to_string()
                ),
                ("params.clients[2].name".to_string(), "client `ok` is listed twice".to_string()),
            ]
        );
    }

    #[test]
    fn one_problem_reads_as_one_line_and_several_as_a_list() {
        let cx = TemplateContext::new("x", Stage::Dev);
        let one = find("web-app").unwrap().build_json(&cx, json!({ "vm_count": 2000 })).err().unwrap().to_string();
        assert_eq!(
            one,
            "template `web-app` cannot be built: params.vm_count: vm_count = 2000 exceeds the 100 VMs one stack runs; split the fleet over several stacks"
        );
        let two = find("web-app")
            .unwrap()
            .build_json(&cx, json!({ "vm_count": 0, "app_image": "A" }))
            .err()
            .unwrap()
            .to_string();
        assert!(
            two.starts_with("template `web-app` cannot be built: 2 invalid parameters:\n  params.app_image: "),
            "{two}"
        );
    }
}
