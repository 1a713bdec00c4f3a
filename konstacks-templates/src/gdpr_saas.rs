//! `gdpr-saas`: the web-app stack with the guarantees a GDPR due-diligence review asks for:
//! EU/EEA placement only, encryption at rest, private database subnets in two zones, backups of
//! at least 7 days (30 in prod), high availability and deletion protection in prod, and
//! data-classification tags on every resource. It serves like web-app (`app.domain`, `app.zone`,
//! `app.load_balancer`, `app.health_path`: HTTPS on a load balancer, the VMs in private
//! subnets), and its uploads bucket (`app.uploads_bucket`) is always versioned and encrypted at
//! rest, as the `gdpr` pack requires; the zone, certificate and bucket stay in the stack's EU
//! region like everything else.

use konstacks_core::model::{Jurisdiction, Placement};

use crate::web_app::{build_web_app, Guarantees, WebAppParams};
use crate::{grammar, Problems, TemplateContext, TemplateError, TypedTemplate};

/// The `gdpr-saas` template.
#[derive(Debug, Clone, Copy, Default)]
pub struct GdprSaas;

/// Parameters of `gdpr-saas`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GdprSaasParams {
    /// The application part (same parameters as `web-app`).
    pub app: WebAppParams,
    /// Classification of the data the stack holds (tag `data-classification`).
    pub data_classification: String,
    /// Contact of the data protection officer (tag `dpo-contact`), if any: at most 256 letters,
    /// digits, spaces and `_ . : / = + - @` (an e-mail address fits).
    pub dpo_contact: Option<String>,
}

impl Default for GdprSaasParams {
    fn default() -> Self {
        Self { app: WebAppParams::default(), data_classification: "personal".into(), dpo_contact: None }
    }
}

impl TypedTemplate for GdprSaas {
    type Params = GdprSaasParams;
    const NAME: &'static str = "gdpr-saas";
    const PACKS: &'static [&'static str] = &["gdpr"];
    const DESCRIPTION: &'static str =
        "GDPR SaaS: web-app kept in the EU/EEA, encrypted, backups >= 7 days (30 in prod), HA and deletion protection in prod";

    fn build(&self, cx: &TemplateContext, p: &GdprSaasParams) -> Result<Stack, TemplateError> {
        let mut pr = Problems::new(Self::NAME);
        crate::web_app::check_params(&mut pr, "params.app.", &p.app);
        if let Some(days) = p.app.backup_days {
            let min = if cx.stage == konstacks_core::model::Stage::Prod { 30 } else { 7 };
            if days < min {
                pr.push(
                    "params.app.backup_days",
                    format!(
                        "backup_days = {days} is below the {min} days this template guarantees in {}",
                        cx.stage.as_str()
                    ),
                );
            }
        }
        let dc = &p.data_classification;
        if dc.is_empty() || dc.len() > 63 || !dc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            pr.push(
                "params.data_classification",
                format!(
                    "data_classification `{}` must be a single word of at most 63 letters, digits, '-' and '_', such as `personal` or `special-category`",
                    grammar::shown(dc)
                ),
            );
        }
        pr.check_opt("params.dpo_contact", p.dpo_contact.as_ref(), grammar::tag_value);
        pr.finish()?;
        let rule = |reason: String| TemplateError::Rule { template: Self::NAME.into(), reason };
        let placement = match &cx.placement {
            Placement::Region(r) => Placement::region_within(r.clone(), Jurisdiction::Eu),
            Placement::RegionWithin(r, Jurisdiction::Eu) => Placement::region_within(r.clone(), Jurisdiction::Eu),
            Placement::Within(Jurisdiction::Eu) => Placement::within(Jurisdiction::Eu),
            other => {
                return Err(rule(format!(
                    "personal data must stay in the EU/EEA, but the placement is {other:?}; place the stack within the EU (for example --jurisdiction eu)"
                )))
            }
        };
        let cx = cx.clone().placement(placement);
        let stack = cx.new_stack();
        stack.tag("data-classification", p.data_classification.clone());
        stack.tag("compliance", "gdpr");
        if let Some(dpo) = &p.dpo_contact {
            stack.tag("dpo-contact", dpo.clone());
        }
        Ok(build_web_app(&cx, &p.app, &Guarantees { min_backup_days: Some((7, 30)), protected_uploads: true }, stack))
    }
}

use konstacks_core::model::Stack;
