//! A data-residency rule for any set of jurisdictions: every resource, and so every database
//! and its automated backups (providers keep those in the database's region), must sit in a
//! region of one of the allowed jurisdictions. The `gdpr`, `popia`, `pdpa`, `dpdp` and `lgpd`
//! packs are built from it; a user pack can build its own (EU or UK or Switzerland, say).

use konstacks_core::model::{Database, Jurisdiction, ResourceKind};
use konstacks_core::policy::{jurisdiction_label, PolicyContext, Rule, RuleOutcome, Severity};
use konstacks_core::provider::RegionInfo;

/// Every resource must be placed in a region of one of `allowed`.
#[derive(Debug, Clone)]
pub struct ResidencyRule {
    id: String,
    title: String,
    area: String,
    allowed: Vec<Jurisdiction>,
}

impl ResidencyRule {
    /// A rule `id` requiring every resource in one of `allowed`; `area` names the area in
    /// messages (`the EU/EEA`), `law` the law the requirement comes from (`GDPR`).
    pub fn new(
        id: impl Into<String>,
        law: &str,
        area: impl Into<String>,
        allowed: impl IntoIterator<Item = Jurisdiction>,
    ) -> Self {
        let area = area.into();
        Self {
            id: id.into(),
            title: format!("Every resource and every backup is stored in {area} ({law})"),
            area,
            allowed: allowed.into_iter().collect(),
        }
    }

    /// The jurisdictions allowed.
    pub fn allowed(&self) -> &[Jurisdiction] {
        &self.allowed
    }

    fn describe(r: &RegionInfo) -> String {
        format!("{} ({}, {})", r.name, r.location, r.country)
    }

    fn fix(&self, cx: &PolicyContext<'_>, provider: &str) -> String {
        let inside: Vec<String> = cx
            .catalog(provider)
            .map(|c| c.regions.iter().filter(|r| self.allowed.contains(&r.jurisdiction)).map(Self::describe).collect())
            .unwrap_or_default();
        let within = self.allowed.first().map(|j| format!("{j:?}")).unwrap_or_default();
        if inside.is_empty() {
            let mut others: Vec<String> = cx
                .catalogs()
                .iter()
                .filter(|c| c.provider != provider)
                .filter_map(|c| {
                    let names: Vec<&str> = c
                        .regions
                        .iter()
                        .filter(|r| self.allowed.contains(&r.jurisdiction))
                        .map(|r| r.name.as_str())
                        .collect();
                    (!names.is_empty()).then(|| format!("{} ({})", c.provider, names.join(", ")))
                })
                .collect();
            others.sort();
            let elsewhere = if others.is_empty() {
                "no configured provider has one; configure a provider that does".to_string()
            } else {
                format!("providers that have one: {}", others.join("; "))
            };
            format!("provider `{provider}` has no region in {}; {elsewhere}", self.area)
        } else {
            format!(
                "place the stack with `Placement::within(Jurisdiction::{within})` or in one of provider \
                 `{provider}`'s regions in {}: {}",
                self.area,
                inside.join(", ")
            )
        }
    }
}

impl Rule for ResidencyRule {
    fn id(&self) -> &str {
        &self.id
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        &self.title
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        cx.resources()
            .map(|r| {
                let what = if r.kind == Database::KIND { "the database and its backups are" } else { "it is" };
                match cx.region_of(r) {
                    Some(info) if self.allowed.contains(&info.jurisdiction) => {
                        let backups =
                            if r.kind == Database::KIND { "; automated backups in the same region" } else { "" };
                        RuleOutcome::pass(r).with_detail(format!("{}{backups}", Self::describe(info)))
                    }
                    Some(info) => RuleOutcome::fail(
                        r,
                        format!(
                            "{what} stored in region {}, jurisdiction {}, outside {}",
                            Self::describe(info),
                            jurisdiction_label(info.jurisdiction),
                            self.area
                        ),
                        self.fix(cx, &r.provider),
                    ),
                    None => RuleOutcome::fail(
                        r,
                        format!(
                            "{what} placed in region `{}`, which provider `{}`'s catalogue does not list, so its \
                             jurisdiction cannot be established",
                            cx.region_name_of(r),
                            r.provider
                        ),
                        self.fix(cx, &r.provider),
                    ),
                }
            })
            .collect()
    }
}
