//! The certificate kind: a managed TLS certificate (ACM, DigitalOcean Let's Encrypt, Google
//! certificate manager) for one or more domains, validated through DNS.
//!
//! With `.validate_in(zone)` the provider writes the validation records into that zone of the
//! stack itself and the certificate is issued. With `.manual_validation()` it waits in
//! `pending_validation`, and its `validation_records()` output says which CNAME records the
//! user must create wherever the domain's DNS is hosted. Managed certificates cost nothing.

use std::collections::BTreeSet;

use crate::kind::{always_offered, no_stack_check, Field, Kind, KindDef, LowerCx, ResourceKind, Tags};
use crate::kinds::dns_zone::{dns_name_problem, strip_root, within, DnsZone, NameRules, MAX_NAME_LEN};
use crate::model::refs::{Output, Ref};

/// Most names one certificate may cover.
pub const MAX_DOMAINS: usize = 100;
/// Longest name a certificate may cover: its validation record (`_<32 hex digits>.` before the
/// name) must still be a valid DNS name.
pub const MAX_DOMAIN_LEN: usize = MAX_NAME_LEN - 34;
/// Status of a certificate that can be used.
pub const ISSUED: &str = "issued";
/// Status of a certificate waiting for its validation records.
pub const PENDING_VALIDATION: &str = "pending_validation";

/// A managed TLS certificate.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub(crate) domains: Vec<String>,
    pub(crate) zone: Option<Ref<DnsZone>>,
    pub(crate) manual: bool,
}

impl Certificate {
    /// A certificate for these names (`example.com`, `*.example.com`; at most 100).
    pub fn new<S: Into<String>>(domains: impl IntoIterator<Item = S>) -> Self {
        Self { domains: domains.into_iter().map(Into::into).collect(), zone: None, manual: false }
    }

    /// Validate through `zone`, a zone of this stack covering every name: the provider creates
    /// the validation records there and the certificate is issued.
    pub fn validate_in(mut self, zone: Ref<DnsZone>) -> Self {
        self.zone = Some(zone);
        self
    }

    /// Validate by hand: the certificate waits in `pending_validation` until the records of its
    /// `validation_records()` output exist where the domain's DNS is hosted.
    pub fn manual_validation(mut self) -> Self {
        self.manual = true;
        self
    }

    /// The names, as given.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }
}

/// Fields of a certificate.
pub mod field {
    use super::*;
    /// Physical name.
    pub const NAME: Field<Certificate, String> = Field::new("name");
    /// Region.
    pub const REGION: Field<Certificate, String> = Field::new("region");
    /// The names covered.
    pub const DOMAINS: Field<Certificate, Vec<String>> = Field::new("domains");
    /// Id of the zone the provider validates in; `None` for manual validation.
    pub const VALIDATION_ZONE_ID: Field<Certificate, Option<String>> = Field::new("validation_zone_id");
    /// Tags.
    pub const TAGS: Field<Certificate, Tags> = Field::new("tags");
}

/// A resolved certificate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CertificateSpec {
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// The names covered, without trailing dots.
    pub domains: Vec<String>,
    /// Id of the zone the provider writes the validation records into; `None` when the user
    /// creates them.
    pub validation_zone_id: Option<String>,
    /// Tags.
    pub tags: Tags,
}

/// A DNS record that proves control of a name to the certificate authority.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ValidationRecord {
    /// Full name of the record, without a trailing dot.
    pub name: String,
    /// Type (always `CNAME`).
    #[serde(rename = "type")]
    pub record_type: String,
    /// What it points to.
    pub value: String,
}

/// An observed certificate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CertificateObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// The names covered.
    pub domains: Vec<String>,
    /// Id of the validation zone.
    pub validation_zone_id: Option<String>,
    /// `issued`, `pending_validation`, ...
    pub status: String,
    /// The records that validate it.
    pub validation_records: Vec<ValidationRecord>,
    /// End of validity (RFC 3339), once issued.
    pub not_after: Option<String>,
    /// Tags.
    pub tags: Tags,
}
crate::kind::observed!(CertificateObserved);

/// The certificate kind. A replacement creates the new certificate first: whatever uses the
/// old one (a load balancer's listener) moves to the new one before the old is deleted.
pub const CERTIFICATE: KindDef = KindDef {
    id: "certificate",
    fields: &[
        field::DOMAINS.name(),
        field::NAME.name(),
        field::REGION.name(),
        field::TAGS.name(),
        field::VALIDATION_ZONE_ID.name(),
    ],
    force_new: &[field::DOMAINS.name(), field::VALIDATION_ZONE_ID.name(), field::REGION.name()],
    secrets: &[],
    rotatable_secrets: &[],
    create_before_destroy: true,
    holds_data: false,
    deletion_protection: None,
    price: None,
    offered_by: always_offered,
    check_stack: no_stack_check,
    fronts: None,
    version_of: None,
};

impl ResourceKind for Certificate {
    type Spec = CertificateSpec;
    type Observed = CertificateObserved;
    const KIND: Kind = Kind::of(&CERTIFICATE);

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let domains: Vec<String> = self.domains.iter().map(|d| strip_root(d).to_string()).collect();
        check_domains(cx, &domains);
        let zone_ix = match (self.zone, self.manual) {
            (Some(_), true) => {
                cx.error(
                    "conflicting-validation",
                    "the certificate is given both a validation zone and manual validation",
                    "keep `.validate_in(zone)` to let the provider create the records, or `.manual_validation()` \
                     to create them yourself",
                );
                None
            }
            (Some(z), false) => {
                let ix = cx.target(z, "the certificate's validation zone");
                if let Some(zone) = ix.and_then(|i| cx.node::<DnsZone>(i)).map(|z| z.domain().to_string()) {
                    for d in domains.iter().filter(|d| !within(d, &zone)) {
                        cx.error(
                            "certificate-domain-outside-zone",
                            format!("`{d}` is not within the validation zone `{zone}`"),
                            format!("cover names ending in `{zone}` only, or use one certificate per zone"),
                        );
                    }
                }
                ix
            }
            (None, true) => {
                if let Some(c) = cx.catalog().filter(|c| c.certificates_validated_by_provider) {
                    cx.error(
                        "manual-validation-unsupported",
                        format!(
                            "provider `{}` validates certificates itself, and only for domains whose DNS it hosts; \
                             records you create cannot validate one",
                            c.provider
                        ),
                        "add a DnsZone for the domain to the stack, delegate the domain to the provider's name \
                         servers and use `.validate_in(zone)`",
                    );
                }
                None
            }
            (None, false) => {
                let covering = covering_zone(cx, &domains);
                if covering.is_none() && !domains.is_empty() {
                    let help = match cx.catalog().filter(|c| c.certificates_validated_by_provider) {
                        Some(c) => format!(
                            "provider `{}` issues certificates only for domains whose DNS it hosts: add a DnsZone \
                             for the domain and delegate it to the provider's name servers",
                            c.provider
                        ),
                        None => {
                            "give .validate_in(zone) or .manual_validation() and create the records yourself".into()
                        }
                    };
                    cx.error(
                        "certificate-unvalidated",
                        format!(
                            "no zone of the stack covers {}, so nothing would validate the certificate",
                            domains.join(", ")
                        ),
                        help,
                    );
                }
                covering
            }
        };
        let zone_id = cx.id_of(zone_ix);
        cx.set(field::DOMAINS, domains);
        cx.set_expr(field::VALIDATION_ZONE_ID, zone_id);
    }
}

fn check_domains(cx: &mut LowerCx<'_>, domains: &[String]) {
    if domains.is_empty() {
        cx.error("missing-domains", "the certificate covers no name", "pass the names it must cover");
    }
    if domains.len() > MAX_DOMAINS {
        cx.error(
            "too-many-domains",
            format!("the certificate covers {} names; at most {MAX_DOMAINS} are allowed", domains.len()),
            "split the names over several certificates, or cover subdomains with a wildcard (`*.example.com`)",
        );
    }
    let mut seen = BTreeSet::new();
    for d in domains {
        if let Some(p) = dns_name_problem(d, NameRules::CERTIFICATE) {
            cx.error(
                "invalid-domain",
                format!("certificate name `{d}` {p}"),
                "use names such as `example.com` or `*.example.com`",
            );
        } else if d.len() > MAX_DOMAIN_LEN {
            cx.error(
                "invalid-domain",
                format!("certificate name `{d}` has {} characters; at most {MAX_DOMAIN_LEN} are allowed", d.len()),
                "its validation record must fit in a DNS name; cover a shorter name",
            );
        }
        if !seen.insert(d.as_str()) {
            cx.error("duplicate-domain", format!("`{d}` is listed twice"), "list each name once");
        }
    }
    if let Some(c) = cx.catalog().filter(|c| c.certificates_without_wildcards) {
        let provider = c.provider.clone();
        for d in domains.iter().filter(|d| d.starts_with("*.")) {
            cx.error(
                "wildcard-certificate-unsupported",
                format!("provider `{provider}`'s managed certificates cover exact names only, not `{d}`"),
                "list every host name the certificate must cover (up to 100)",
            );
        }
    }
}

/// The most specific zone of the stack that holds every name, if any.
fn covering_zone(cx: &LowerCx<'_>, domains: &[String]) -> Option<usize> {
    if domains.is_empty() {
        return None;
    }
    cx.stack()
        .of_kind::<DnsZone>()
        .filter(|(_, z)| dns_name_problem(z.domain(), NameRules::ZONE).is_none())
        .filter(|(_, z)| domains.iter().all(|d| within(d, z.domain())))
        .max_by_key(|(i, z)| (z.domain().len(), std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
}

/// Outputs of a certificate, available after apply.
impl Ref<Certificate> {
    /// The provider's id (what a load balancer's listener refers to).
    pub fn id(&self) -> Output<String> {
        self.output("id", false)
    }
    /// `issued` or `pending_validation`.
    pub fn status(&self) -> Output<String> {
        self.output("status", false)
    }
    /// The CNAME records that validate it (`name`, `type`, `value` each).
    pub fn validation_records(&self) -> Output<Vec<ValidationRecord>> {
        self.output("validation_records", false)
    }
    /// End of validity (RFC 3339), once issued.
    pub fn not_after(&self) -> Output<String> {
        self.output("not_after", false)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::model::placement::{Placement, Stage};
    use crate::sim::SimCloud;
    use crate::stack::Stack;
    use crate::synth::Expr;

    #[test]
    fn the_validation_zone_is_a_dependency_and_manual_validation_has_none() {
        let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Dev);
        let zone = stack.add("zone", DnsZone::new("example.com"));
        stack.add("site", Certificate::new(["example.com.", "*.example.com"]).validate_in(zone));
        stack.add("partner", Certificate::new(["example.net"]).manual_validation());
        let s = stack.synth(&[&SimCloud::catalog()]).unwrap();
        let site = &s.resources[s.index_of("site").unwrap()];
        assert_eq!(site.depends_on, ["zone"]);
        assert!(matches!(&site.fields.get("validation_zone_id").unwrap(), Expr::Attr(a) if a.attr == "id"));
        assert_eq!(
            *site.fields.get("domains").unwrap(),
            Expr::lit(["example.com", "*.example.com"]),
            "the root dot is dropped"
        );
        let partner = &s.resources[s.index_of("partner").unwrap()];
        assert!(partner.depends_on.is_empty());
        assert_eq!(*partner.fields.get("validation_zone_id").unwrap(), Expr::Lit(serde_json::Value::Null));
    }

    #[test]
    fn a_provider_that_validates_certificates_itself_refuses_manual_validation() {
        let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Dev);
        stack.add("partner", Certificate::new(["example.net"]).manual_validation());
        stack.add("stray", Certificate::new(["example.org"]));
        let mut cat = SimCloud::catalog();
        cat.certificates_validated_by_provider = true;
        let Err(crate::error::Error::Invalid(d)) = stack.synth(&[&cat]) else { panic!("refused") };
        let got: Vec<(&str, &str)> = d.iter().map(|d| (d.path.as_str(), d.code)).collect();
        assert_eq!(got, [("shop/stray", "certificate-unvalidated"), ("shop/partner", "manual-validation-unsupported")]);
        assert!(d.iter().all(|d| d.help.contains("DnsZone")), "{d:?}");
        assert!(stack.synth(&[&SimCloud::catalog()]).is_err(), "the stray one is refused everywhere");
    }

    #[test]
    fn a_provider_whose_certificates_take_exact_names_refuses_wildcards() {
        let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Dev);
        let zone = stack.add("zone", DnsZone::new("example.com"));
        stack.add("site", Certificate::new(["example.com", "*.example.com"]).validate_in(zone));
        stack.add("www", Certificate::new(["example.com", "www.example.com"]).validate_in(zone));
        let mut cat = SimCloud::catalog();
        cat.certificates_without_wildcards = true;
        let Err(crate::error::Error::Invalid(d)) = stack.synth(&[&cat]) else { panic!("refused") };
        let got: Vec<(&str, &str)> = d.iter().map(|d| (d.path.as_str(), d.code)).collect();
        assert_eq!(got, [("shop/site", "wildcard-certificate-unsupported")]);
        assert!(d.iter().all(|d| d.message.contains("`*.example.com`")), "{d:?}");
        assert!(stack.synth(&[&SimCloud::catalog()]).is_ok(), "wildcards are fine where offered");
    }

    #[test]
    fn validation_records_serialize_with_a_type_field() {
        let r = ValidationRecord { name: "_a.example.com".into(), record_type: "CNAME".into(), value: "_b.x".into() };
        let v = serde_json::to_value(&r).unwrap_or_default();
        assert_eq!(v["type"], "CNAME");
        assert_eq!(MAX_DOMAIN_LEN, 219);
    }
}
