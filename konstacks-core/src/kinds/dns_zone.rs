//! The DNS zone kind: a hosted zone for a domain (Route 53 hosted zone, DigitalOcean domain,
//! Cloud DNS managed zone), and the DNS name rules every DNS kind validates against.
//!
//! Zones are global: the stack's region is recorded but moving it does not move the zone.
//! Deleting a zone loses every record in it, so the kind holds data.
//!
//! [`DnsZone::existing`] is a zone the stack uses but does not own (a preview putting its name
//! in the zone of the stack it previews): its spec says `managed: false`, the backend looks it
//! up by domain instead of creating it and never changes it, and the engine forgets it on
//! destroy instead of deleting it (the generic [`common::MANAGED`] convention).

use std::collections::BTreeMap;

use crate::kind::field::common;
use crate::kind::price::{CostLine, PriceCx};
use crate::kind::{always_offered, Field, Kind, KindDef, LowerCx, ResourceKind, StackCx, Tags};
use crate::model::refs::{Output, Ref};

/// Longest DNS name, in characters, without the trailing dot (RFC 1035).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label of a DNS name (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;
/// Query volume a zone is priced with unless `assume_million_queries` says otherwise.
pub const DEFAULT_MILLION_QUERIES: f64 = 1.0;
/// Catalogue key of the monthly price of one hosted zone.
pub const PRICE_ZONE_MONTH: &str = "dns_zone_month";
/// Catalogue key of the price of one million DNS queries.
pub const PRICE_MILLION_QUERIES: &str = "dns_million_queries";

// ---------------------------------------------------------------------------------------------
// DNS names

/// What a DNS name may contain, beyond the RFC 1035 letter-digit-hyphen labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRules {
    /// Fewest labels (`example.com` has two).
    pub min_labels: usize,
    /// Whether the first label may be `*` (a wildcard).
    pub wildcard: bool,
    /// Whether labels may hold `_` (service names such as `_dmarc`, `_acme-challenge`).
    pub underscore: bool,
}

impl NameRules {
    /// A zone's domain: two labels or more, no wildcard, no underscore.
    pub const ZONE: NameRules = NameRules { min_labels: 2, wildcard: false, underscore: false };
    /// A host name a record points to (CNAME, MX, alias targets).
    pub const TARGET: NameRules = NameRules { min_labels: 2, wildcard: false, underscore: true };
    /// The full name of a record (`www.example.com`, `*.example.com`, `_dmarc.example.com`).
    pub const RECORD: NameRules = NameRules { min_labels: 2, wildcard: true, underscore: true };
    /// A name a certificate covers (`example.com`, `*.example.com`).
    pub const CERTIFICATE: NameRules = NameRules { min_labels: 2, wildcard: true, underscore: false };
}

/// Why `name` (written without a trailing dot) is not a valid DNS name under `rules`, phrased
/// to follow the name in a sentence (`is empty`, `has an empty label`), or `None` when it is.
pub fn dns_name_problem(name: &str, rules: NameRules) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if let Some(c) = name.chars().find(|c| !c.is_ascii() || c.is_ascii_control()) {
        return Some(format!(
            "contains the character {c:?}, which a DNS name cannot hold (write an internationalised name in its \
             punycode form, `xn--...`)"
        ));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Some(format!("contains upper-case letters; write it in lower case (`{}`)", name.to_ascii_lowercase()));
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!("has {} characters; at most {MAX_NAME_LEN} are allowed", name.len()));
    }
    let labels: Vec<&str> = name.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty() {
            return Some("has an empty label (a leading dot, or two dots in a row)".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return Some(format!(
                "has the label `{label}` of {} characters; at most {MAX_LABEL_LEN} are allowed",
                label.len()
            ));
        }
        if *label == "*" {
            if !rules.wildcard {
                return Some("is a wildcard; a wildcard is not allowed here".into());
            }
            if i != 0 {
                return Some("has `*` in the middle; a wildcard must be the first label (`*.example.com`)".into());
            }
            continue;
        }
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (rules.underscore && c == '_');
        if let Some(c) = label.chars().find(|c| !allowed(*c)) {
            let also = if rules.underscore { ", '_'" } else { "" };
            return Some(format!("has the label `{label}` with the character {c:?}; use a-z, 0-9, '-'{also}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("has the label `{label}`, which starts or ends with '-'"));
        }
    }
    if labels.len() < rules.min_labels {
        return Some(format!(
            "has {} label(s); at least {} are needed (`example.com`)",
            labels.len(),
            rules.min_labels
        ));
    }
    if labels.last().is_some_and(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return Some("ends in a numeric label: it is an address, not a name".into());
    }
    None
}

/// Whether `name` is `zone` or a name under it (`*.example.com` is under `example.com`).
pub fn within(name: &str, zone: &str) -> bool {
    name == zone || name.strip_suffix(zone).is_some_and(|head| head.ends_with('.'))
}

/// A domain as written, with one trailing dot (an absolute name) removed.
pub fn strip_root(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

// ---------------------------------------------------------------------------------------------
// The kind

/// A record type.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// An alias of another name (exclusive: no other record may share its name).
    Cname,
    /// Text.
    Txt,
    /// Mail exchangers, with their priorities.
    Mx,
    /// Certificate authorities allowed to issue for the name.
    Caa,
    /// The provider's alias to a load balancer or similar DNS name, allowed at the apex.
    Alias,
    /// Name servers (kept by the provider at the apex).
    Ns,
    /// Start of authority (kept by the provider at the apex).
    Soa,
}

impl RecordType {
    /// The type as DNS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Txt => "TXT",
            RecordType::Mx => "MX",
            RecordType::Caa => "CAA",
            RecordType::Alias => "ALIAS",
            RecordType::Ns => "NS",
            RecordType::Soa => "SOA",
        }
    }

    /// Every type.
    pub const ALL: [RecordType; 9] = [
        RecordType::A,
        RecordType::Aaaa,
        RecordType::Cname,
        RecordType::Txt,
        RecordType::Mx,
        RecordType::Caa,
        RecordType::Alias,
        RecordType::Ns,
        RecordType::Soa,
    ];

    /// The type DNS spells `name` (the inverse of [`RecordType::as_str`]), if any.
    pub fn from_name(name: &str) -> Option<RecordType> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether a record of this type and one of `other` may share a name: a CNAME shares it with
    /// nothing, and an alias stands for the name's addresses, so it excludes A and AAAA records.
    pub fn may_share_name_with(self, other: RecordType) -> bool {
        use RecordType::*;
        let address = |t| matches!(t, A | Aaaa);
        !(self == Cname
            || other == Cname
            || (self == Alias && (address(other) || other == Alias))
            || (other == Alias && address(self)))
    }
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hosted DNS zone for a domain.
#[derive(Debug, Clone)]
pub struct DnsZone {
    pub(crate) domain: String,
    pub(crate) million_queries: f64,
    pub(crate) managed: bool,
}

impl DnsZone {
    /// A zone for `domain` (`example.com`; one trailing dot is accepted and dropped), created
    /// and deleted by the stack.
    pub fn new(domain: impl Into<String>) -> Self {
        Self { domain: domain.into(), million_queries: DEFAULT_MILLION_QUERIES, managed: true }
    }

    /// The zone for `domain` that already exists in the account and belongs to someone else
    /// (another stack, or hands): apply looks it up by domain and fails when there is none,
    /// never creates nor changes it, and destroy forgets it without deleting it. Records and
    /// certificate validations of the stack go into it like into a zone of its own.
    pub fn existing(domain: impl Into<String>) -> Self {
        Self { managed: false, ..Self::new(domain) }
    }

    /// Whether the stack owns the zone (false for [`DnsZone::existing`]).
    pub fn is_managed(&self) -> bool {
        self.managed
    }

    /// Price the zone with `millions` of queries a month (a cost assumption only; default 1).
    pub fn assume_million_queries(mut self, millions: f64) -> Self {
        self.million_queries = millions;
        self
    }

    /// The zone's domain, without a trailing dot.
    pub fn domain(&self) -> &str {
        strip_root(&self.domain)
    }
}

/// Fields of a DNS zone.
pub mod field {
    use super::*;
    /// Physical name (a label for consoles; the zone is known by its domain).
    pub const NAME: Field<DnsZone, String> = Field::new("name");
    /// Region (recorded only: zones are global).
    pub const REGION: Field<DnsZone, String> = Field::new("region");
    /// The domain (`example.com`).
    pub const DOMAIN: Field<DnsZone, String> = Field::new("domain");
    /// Millions of queries a month the cost estimate assumes (not sent to the cloud's API).
    pub const ASSUMED_MILLION_QUERIES: Field<DnsZone, f64> = Field::new("assumed_million_queries");
    /// Tags.
    pub const TAGS: Field<DnsZone, Tags> = Field::new("tags");
    /// `false` for a zone the stack uses but does not own ([`DnsZone::existing`]); absent
    /// (true) otherwise, so states written before the field existed plan no change.
    pub const MANAGED: Field<DnsZone, bool> = Field::new(common::MANAGED);
}

/// A resolved DNS zone.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DnsZoneSpec {
    /// Physical name.
    pub name: String,
    /// Region (recorded only).
    pub region: String,
    /// The domain, lower case, without a trailing dot.
    pub domain: String,
    /// A cost assumption; backends ignore it.
    #[serde(default)]
    pub assumed_million_queries: f64,
    /// Whether the stack owns the zone: `false` means look it up by domain (an error when it is
    /// missing), never create, change nor delete it.
    #[serde(default = "owned")]
    pub managed: bool,
    /// Tags.
    pub tags: Tags,
}

fn owned() -> bool {
    true
}

/// A record the provider keeps in a zone by itself: the apex NS and SOA records, and the
/// validation records of certificates validated in the zone. They are not resources of a stack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ManagedRecord {
    /// Full name, without a trailing dot.
    pub fqdn: String,
    /// Type.
    pub record_type: RecordType,
    /// One value.
    pub value: String,
    /// Who keeps it: `zone`, or the id of the certificate it validates.
    pub owner: String,
}

/// An observed DNS zone.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DnsZoneObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// The domain.
    pub domain: String,
    /// The name servers to delegate the domain to, at the registrar.
    pub name_servers: Vec<String>,
    /// Records the provider keeps in the zone by itself.
    #[serde(default)]
    pub managed_records: Vec<ManagedRecord>,
    /// Tags.
    pub tags: Tags,
}
crate::kind::observed!(DnsZoneObserved);

/// The DNS zone kind.
pub const DNS_ZONE: KindDef = KindDef {
    id: "dns_zone",
    fields: &[
        field::ASSUMED_MILLION_QUERIES.name(),
        field::DOMAIN.name(),
        field::MANAGED.name(),
        field::NAME.name(),
        field::REGION.name(),
        field::TAGS.name(),
    ],
    force_new: &[field::DOMAIN.name()],
    secrets: &[],
    rotatable_secrets: &[],
    // A new domain is another zone: the new one can exist beside the old.
    create_before_destroy: true,
    holds_data: true,
    deletion_protection: None,
    price: Some(price),
    offered_by: always_offered,
    check_stack,
    fronts: None,
    version_of: None,
};

impl ResourceKind for DnsZone {
    type Spec = DnsZoneSpec;
    type Observed = DnsZoneObserved;
    const KIND: Kind = Kind::of(&DNS_ZONE);

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let domain = self.domain();
        if let Some(problem) = dns_name_problem(domain, NameRules::ZONE) {
            cx.error(
                "invalid-domain",
                format!("zone domain `{}` {problem}", self.domain),
                "give the zone a domain such as `example.com`: labels of a-z, 0-9 and '-', at most 253 characters",
            );
        }
        if !(self.million_queries.is_finite() && self.million_queries >= 0.0) {
            cx.error(
                "invalid-assumption",
                format!("assumed query volume {} is not a number of millions of queries", self.million_queries),
                "pass a finite, non-negative number to `assume_million_queries`",
            );
        }
        cx.set(field::DOMAIN, domain.to_string());
        cx.set(field::ASSUMED_MILLION_QUERIES, self.million_queries);
        if !self.managed {
            cx.set(field::MANAGED, false);
        }
    }
}

/// Two zones of a stack for one domain.
fn check_stack(cx: &mut StackCx<'_>) {
    let zones: Vec<(usize, &DnsZone)> = cx.of_kind::<DnsZone>().collect();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, z) in zones {
        if let Some(first) = seen.insert(z.domain(), i) {
            let other = cx.path(first);
            cx.error(
                i,
                "duplicate-zone",
                format!("`{other}` is already a zone for `{}`", z.domain()),
                "keep one zone per domain and add every record to it",
            );
        }
    }
}

fn price(cx: &PriceCx<'_>) -> Vec<CostLine> {
    if cx.get(field::MANAGED) == Some(false) {
        // The owner of an existing zone pays for it and its queries.
        return Vec::new();
    }
    let p = &cx.catalog.pricing;
    let queries = cx.get(field::ASSUMED_MILLION_QUERIES).unwrap_or(DEFAULT_MILLION_QUERIES);
    vec![
        CostLine::per_unit("zone", "1 hosted zone".into(), 1.0, p.unit_price(PRICE_ZONE_MONTH)),
        CostLine::per_unit(
            "queries",
            format!("{queries} million queries/month (assumed; set with .assume_million_queries(n))"),
            queries,
            p.unit_price(PRICE_MILLION_QUERIES),
        ),
    ]
}

/// Outputs of a DNS zone, available after apply.
impl Ref<DnsZone> {
    /// The zone's domain (`example.com`).
    pub fn name(&self) -> Output<String> {
        self.output("domain", false)
    }
    /// The name servers to delegate the domain to at its registrar.
    pub fn name_servers(&self) -> Output<Vec<String>> {
        self.output("name_servers", false)
    }
    /// The provider's id of the zone.
    pub fn zone_id(&self) -> Output<String> {
        self.output("id", false)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn record_types_read_back_from_their_names() {
        for t in RecordType::ALL {
            assert_eq!(RecordType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(RecordType::from_name("a"), None, "names are upper case");
        assert_eq!(RecordType::from_name("SRV"), None);
    }

    #[test]
    fn names_follow_rfc_1035() {
        for ok in ["example.com", "a.b.c.example.co.uk", "xn--bcher-kva.example", "a-1.io"] {
            assert_eq!(dns_name_problem(ok, NameRules::ZONE), None, "{ok}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        for (bad, expected) in [
            ("", "is empty"),
            ("com", "at least 2"),
            ("Example.com", "lower case (`example.com`)"),
            ("exa mple.com", "' '"),
            ("a..com", "empty label"),
            (".example.com", "empty label"),
            (long_label.as_str(), "64 characters"),
            (long_name.as_str(), "at most 253"),
            ("-a.com", "starts or ends with '-'"),
            ("_dmarc.example.com", "'_'"),
            ("*.example.com", "wildcard"),
            ("bücher.de", "punycode"),
            ("10.0.0.1", "numeric"),
        ] {
            let problem = dns_name_problem(bad, NameRules::ZONE).unwrap_or_default();
            assert!(problem.contains(expected), "{bad:?}: {problem}");
        }
        assert_eq!(dns_name_problem("_dmarc.example.com", NameRules::RECORD), None);
        assert_eq!(dns_name_problem("*.example.com", NameRules::CERTIFICATE), None);
        assert!(dns_name_problem("www.*.example.com", NameRules::RECORD).unwrap().contains("first label"));
        assert!(dns_name_problem("_x.example.com", NameRules::CERTIFICATE).is_some());
    }

    #[test]
    fn names_within_a_zone() {
        assert!(within("example.com", "example.com"));
        assert!(within("www.example.com", "example.com"));
        assert!(within("*.example.com", "example.com"));
        assert!(!within("badexample.com", "example.com"));
        assert!(!within("example.org", "example.com"));
        assert_eq!(strip_root("example.com."), "example.com");
        assert_eq!(strip_root("example.com.."), "example.com.");
    }

    #[test]
    fn only_compatible_types_share_a_name() {
        use RecordType::*;
        assert!(A.may_share_name_with(Txt));
        assert!(A.may_share_name_with(Aaaa));
        assert!(!Cname.may_share_name_with(Txt));
        assert!(!Txt.may_share_name_with(Cname));
        assert!(!Alias.may_share_name_with(A));
        assert!(!Aaaa.may_share_name_with(Alias));
        assert!(Alias.may_share_name_with(Mx));
        assert_eq!(serde_json::to_string(&Aaaa).unwrap(), "\"AAAA\"");
    }
}
