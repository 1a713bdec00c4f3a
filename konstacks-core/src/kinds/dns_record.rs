//! The DNS record kind: one record set (a name and a type, with its values) in a zone of the
//! stack: A, AAAA, CNAME, TXT, MX, CAA, and the provider's alias to a load balancer's DNS name.
//!
//! Names are written relative to the zone (`www`, `@` for the apex) or absolute inside it
//! (`www.example.com`); the spec carries the full name. Values travel in their zone-file text
//! form (`10 mail.example.com` for MX, `0 issue "letsencrypt.org"` for CAA), except TXT values,
//! which carry the text itself. Records cost nothing by themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::kind::expr::Expr;
use crate::kind::{always_offered, Field, Kind, KindDef, LowerCx, ResourceKind, StackCx, Tags};
pub use crate::kinds::dns_zone::RecordType;
use crate::kinds::dns_zone::{dns_name_problem, strip_root, within, DnsZone, NameRules};
use crate::model::refs::{Output, Ref};

/// Time to live of a record unless `.ttl(..)` says otherwise, in seconds.
pub const DEFAULT_TTL: u32 = 300;
/// Shortest time to live accepted, in seconds.
pub const MIN_TTL: u32 = 60;
/// Longest time to live accepted (a day), in seconds.
pub const MAX_TTL: u32 = 86_400;
/// Longest TXT value, in characters (split into strings of [`TXT_STRING_LEN`] on the wire).
pub const MAX_TXT_LEN: usize = 4000;
/// Longest character-string of a TXT record (RFC 1035).
pub const TXT_STRING_LEN: usize = 255;
/// Longest CAA value.
pub const MAX_CAA_VALUE_LEN: usize = 255;
/// The CAA property tags accepted.
pub const CAA_TAGS: &[&str] = &["iodef", "issue", "issuemail", "issuewild"];

/// What an alias record points to: a DNS name known now, or one known after apply (a load
/// balancer's DNS name).
#[derive(Debug, Clone)]
pub enum DnsTarget {
    /// Known now.
    Name(String),
    /// Known after the resource it comes from is applied; creates a dependency edge.
    Output(Output<String>),
}

impl From<&str> for DnsTarget {
    fn from(v: &str) -> Self {
        DnsTarget::Name(v.to_string())
    }
}
impl From<String> for DnsTarget {
    fn from(v: String) -> Self {
        DnsTarget::Name(v)
    }
}
impl From<Output<String>> for DnsTarget {
    fn from(v: Output<String>) -> Self {
        DnsTarget::Output(v)
    }
}

/// The values of a record, typed as the builder received them.
#[derive(Debug, Clone)]
enum Values {
    /// A or AAAA addresses.
    Addresses(Vec<String>),
    /// A CNAME target.
    Target(String),
    /// TXT values.
    Texts(Vec<String>),
    /// MX priorities and hosts.
    Mx(Vec<(u16, String)>),
    /// CAA flags, tags and values.
    Caa(Vec<(u8, String, String)>),
    /// An alias target.
    Alias(DnsTarget),
}

/// One record set of a zone: a name, a type and its values.
#[derive(Debug, Clone)]
pub struct DnsRecord {
    pub(crate) zone: Ref<DnsZone>,
    pub(crate) name: String,
    pub(crate) record_type: RecordType,
    values: Values,
    pub(crate) ttl: Option<u32>,
}

fn strings<S: Into<String>>(v: impl IntoIterator<Item = S>) -> Vec<String> {
    v.into_iter().map(Into::into).collect()
}

impl DnsRecord {
    fn with(zone: Ref<DnsZone>, name: impl Into<String>, record_type: RecordType, values: Values) -> Self {
        Self { zone, name: name.into(), record_type, values, ttl: None }
    }

    /// IPv4 addresses for `name` (`www`; `@` or `""` for the apex; or a full name in the zone).
    pub fn a<S: Into<String>>(
        zone: Ref<DnsZone>,
        name: impl Into<String>,
        addresses: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::with(zone, name, RecordType::A, Values::Addresses(strings(addresses)))
    }

    /// IPv6 addresses for `name`.
    pub fn aaaa<S: Into<String>>(
        zone: Ref<DnsZone>,
        name: impl Into<String>,
        addresses: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::with(zone, name, RecordType::Aaaa, Values::Addresses(strings(addresses)))
    }

    /// `name` is an alias of the host `target` (not at the apex; nothing else may share `name`).
    pub fn cname(zone: Ref<DnsZone>, name: impl Into<String>, target: impl Into<String>) -> Self {
        Self::with(zone, name, RecordType::Cname, Values::Target(target.into()))
    }

    /// Text values for `name` (SPF, DMARC, site verification). A value longer than 255
    /// characters is sent as several strings of one value, as DKIM keys need.
    pub fn txt<S: Into<String>>(
        zone: Ref<DnsZone>,
        name: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::with(zone, name, RecordType::Txt, Values::Texts(strings(values)))
    }

    /// Mail exchangers of `name`, as `(priority, host)` pairs (lower priorities are tried first).
    pub fn mx<S: Into<String>>(
        zone: Ref<DnsZone>,
        name: impl Into<String>,
        hosts: impl IntoIterator<Item = (u16, S)>,
    ) -> Self {
        let hosts = hosts.into_iter().map(|(p, h)| (p, h.into())).collect();
        Self::with(zone, name, RecordType::Mx, Values::Mx(hosts))
    }

    /// Certificate authorities allowed for `name`, as `(flags, tag, value)` triples such as
    /// `(0, "issue", "letsencrypt.org")`.
    pub fn caa<T: Into<String>, V: Into<String>>(
        zone: Ref<DnsZone>,
        name: impl Into<String>,
        entries: impl IntoIterator<Item = (u8, T, V)>,
    ) -> Self {
        let entries = entries.into_iter().map(|(f, t, v)| (f, t.into(), v.into())).collect();
        Self::with(zone, name, RecordType::Caa, Values::Caa(entries))
    }

    /// `name` answers with the addresses of `target`, a DNS name such as a load balancer's
    /// (`lb.dns_name()`, or a plain string). Allowed at the apex; has no TTL of its own.
    pub fn alias(zone: Ref<DnsZone>, name: impl Into<String>, target: impl Into<DnsTarget>) -> Self {
        Self::with(zone, name, RecordType::Alias, Values::Alias(target.into()))
    }

    /// Time to live in seconds (60 to 86400; default 300; an alias has none).
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.ttl = Some(seconds);
        self
    }

    /// The zone it belongs to.
    pub fn zone(&self) -> Ref<DnsZone> {
        self.zone
    }

    /// Its type.
    pub fn record_type(&self) -> RecordType {
        self.record_type
    }
}

/// Fields of a DNS record.
pub mod field {
    use super::*;
    /// Physical name (a label; the record is known by its zone, full name and type).
    pub const NAME: Field<DnsRecord, String> = Field::new("name");
    /// Region (recorded only: DNS is global).
    pub const REGION: Field<DnsRecord, String> = Field::new("region");
    /// Id of the zone.
    pub const ZONE_ID: Field<DnsRecord, String> = Field::new("zone_id");
    /// Full name (`www.example.com`).
    pub const FQDN: Field<DnsRecord, String> = Field::new("fqdn");
    /// Type.
    pub const RECORD_TYPE: Field<DnsRecord, RecordType> = Field::new("record_type");
    /// Values in zone-file form.
    pub const VALUES: Field<DnsRecord, Vec<String>> = Field::new("values");
    /// Time to live in seconds (none for an alias).
    pub const TTL: Field<DnsRecord, Option<u32>> = Field::new("ttl");
    /// Tags.
    pub const TAGS: Field<DnsRecord, Tags> = Field::new("tags");
}

/// A resolved DNS record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DnsRecordSpec {
    /// Physical name.
    pub name: String,
    /// Region (recorded only).
    pub region: String,
    /// Id of the zone.
    pub zone_id: String,
    /// Full name, without a trailing dot.
    pub fqdn: String,
    /// Type.
    pub record_type: RecordType,
    /// Values: addresses, host names (no trailing dot), `priority host` for MX,
    /// `flags tag "value"` for CAA, the text itself for TXT.
    pub values: Vec<String>,
    /// Time to live in seconds; `None` for an alias.
    pub ttl: Option<u32>,
    /// Tags.
    pub tags: Tags,
}

/// An observed DNS record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DnsRecordObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Id of the zone.
    pub zone_id: String,
    /// Full name.
    pub fqdn: String,
    /// Type.
    pub record_type: RecordType,
    /// Values.
    pub values: Vec<String>,
    /// Time to live.
    pub ttl: Option<u32>,
    /// Tags.
    pub tags: Tags,
}
crate::kind::observed!(DnsRecordObserved);

/// The DNS record kind. A replacement deletes first: the new record usually takes the same
/// name, and a CNAME may share it with nothing.
pub const DNS_RECORD: KindDef = KindDef {
    id: "dns_record",
    fields: &[
        field::FQDN.name(),
        field::NAME.name(),
        field::RECORD_TYPE.name(),
        field::REGION.name(),
        field::TAGS.name(),
        field::TTL.name(),
        field::VALUES.name(),
        field::ZONE_ID.name(),
    ],
    force_new: &[field::ZONE_ID.name(), field::FQDN.name(), field::RECORD_TYPE.name()],
    secrets: &[],
    rotatable_secrets: &[],
    create_before_destroy: false,
    holds_data: false,
    deletion_protection: None,
    price: None,
    offered_by: always_offered,
    check_stack,
    fronts: None,
    version_of: None,
};

/// Why a record name is refused: (code, message, help).
type NameError = (&'static str, String, String);

/// The full name of record `name` in `zone`: `@` or empty is the apex, a name ending in the
/// zone's domain (or in a dot) is absolute, anything else is relative to the zone. A relative
/// name that ends in the zone's top-level label (`www.other.com` in `example.com`) was meant as
/// an absolute name outside the zone and is refused.
pub fn full_name(name: &str, zone: &str) -> Result<String, NameError> {
    let outside = || {
        (
            "record-outside-zone",
            format!("record name `{name}` is outside its zone `{zone}`"),
            format!("write the name relative to the zone (`www`, `@` for the apex) or as a name ending in `.{zone}`"),
        )
    };
    if name.is_empty() || name == "@" {
        return Ok(zone.to_string());
    }
    if let Some(abs) = name.strip_suffix('.') {
        return if within(abs, zone) { Ok(abs.to_string()) } else { Err(outside()) };
    }
    if within(name, zone) {
        return Ok(name.to_string());
    }
    let tld = zone.rsplit('.').next().unwrap_or(zone);
    if name.contains('.') && name.rsplit('.').next() == Some(tld) {
        return Err(outside());
    }
    Ok(format!("{name}.{zone}"))
}

/// Why `value` is not a valid value of a record of type `t` (as the spec carries it): the
/// diagnostic code and the message.
pub fn value_problem(t: RecordType, value: &str) -> Option<(&'static str, String)> {
    let printable = |s: &str| s.chars().all(|c| (' '..='~').contains(&c));
    let host = |what: &str, h: &str| {
        dns_name_problem(h, NameRules::TARGET).map(|p| ("invalid-target", format!("{what} `{h}` {p}")))
    };
    match t {
        RecordType::A => value
            .parse::<Ipv4Addr>()
            .is_err()
            .then(|| ("invalid-address", format!("`{value}` is not an IPv4 address (such as 203.0.113.10)"))),
        RecordType::Aaaa => value
            .parse::<Ipv6Addr>()
            .is_err()
            .then(|| ("invalid-address", format!("`{value}` is not an IPv6 address (such as 2001:db8::10)"))),
        RecordType::Cname => host("CNAME target", value),
        RecordType::Alias => host("alias target", value),
        RecordType::Ns => host("name server", value),
        RecordType::Mx => match value.split_once(' ') {
            Some((p, h)) if p.parse::<u16>().is_ok() => host("mail exchanger", h),
            _ => Some(("invalid-target", format!("MX value `{value}` is not `priority host`"))),
        },
        RecordType::Txt => {
            if value.len() > MAX_TXT_LEN {
                Some(("txt-too-long", format!("a TXT value has {} characters; at most {MAX_TXT_LEN}", value.len())))
            } else if !printable(value) {
                Some(("invalid-txt", format!("TXT value {value:?} holds characters other than printable ASCII")))
            } else {
                None
            }
        }
        RecordType::Caa => caa_problem(value).map(|m| ("invalid-caa", format!("CAA value `{value}`: {m}"))),
        RecordType::Soa => None,
    }
}

fn caa_problem(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, ' ');
    let (flags, tag, quoted) = (parts.next()?, parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !matches!(flags, "0" | "128") {
        return Some(format!("flags `{flags}` must be 0, or 128 (critical)"));
    }
    if !CAA_TAGS.contains(&tag) {
        return Some(format!("tag `{tag}` is not one of {}", CAA_TAGS.join(", ")));
    }
    let Some(inner) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')) else {
        return Some("the value must be quoted".into());
    };
    if inner.contains('"') || !inner.chars().all(|c| (' '..='~').contains(&c)) {
        return Some("the value may hold printable ASCII other than '\"' only".into());
    }
    if inner.len() > MAX_CAA_VALUE_LEN {
        return Some(format!("the value has {} characters; at most {MAX_CAA_VALUE_LEN}", inner.len()));
    }
    if tag == "iodef" && !["mailto:", "http://", "https://"].iter().any(|s| inner.starts_with(s)) {
        return Some("an iodef value is a `mailto:` or `https://` URL".into());
    }
    None
}

/// A TXT value as the strings of at most 255 characters DNS carries it in (values are ASCII).
pub fn txt_strings(value: &str) -> Vec<&str> {
    if value.is_empty() {
        return vec![""];
    }
    let mut out = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let mut cut = rest.len().min(TXT_STRING_LEN);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out
}

impl DnsRecord {
    /// The values in spec form; an alias to an output is an expression.
    fn rendered(&self) -> Vec<String> {
        match &self.values {
            Values::Addresses(v) if self.record_type == RecordType::Aaaa => {
                v.iter().map(|a| a.parse::<Ipv6Addr>().map(|ip| ip.to_string()).unwrap_or_else(|_| a.clone())).collect()
            }
            Values::Addresses(v) | Values::Texts(v) => v.clone(),
            Values::Target(t) => vec![strip_root(t).to_string()],
            Values::Mx(v) => v.iter().map(|(p, h)| format!("{p} {}", strip_root(h))).collect(),
            Values::Caa(v) => v.iter().map(|(f, t, val)| format!("{f} {t} \"{val}\"")).collect(),
            Values::Alias(DnsTarget::Name(n)) => vec![strip_root(n).to_string()],
            Values::Alias(DnsTarget::Output(_)) => Vec::new(),
        }
    }

    /// The full name in the zone `zone` (its domain), if valid.
    pub(crate) fn fqdn_in(&self, zone: &str) -> Option<String> {
        let fqdn = full_name(&self.name, zone).ok()?;
        dns_name_problem(&fqdn, NameRules::RECORD).is_none().then_some(fqdn)
    }
}

impl ResourceKind for DnsRecord {
    type Spec = DnsRecordSpec;
    type Observed = DnsRecordObserved;
    const KIND: Kind = Kind::of(&DNS_RECORD);

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let zone_ix = cx.target(self.zone, "the record's zone");
        let zone = zone_ix.and_then(|z| cx.node::<DnsZone>(z)).map(|z| z.domain().to_string());
        let t = self.record_type;
        let mut fqdn = String::new();
        if let Some(zone) = &zone {
            match full_name(&self.name, zone) {
                Ok(f) => fqdn = f,
                Err((code, message, help)) => cx.error(code, message, help),
            }
            if !fqdn.is_empty() {
                if let Some(p) = dns_name_problem(&fqdn, NameRules::RECORD) {
                    cx.error(
                        "invalid-record-name",
                        format!("record name `{}` ({fqdn}) {p}", self.name),
                        "use labels of a-z, 0-9, '-' and '_', with `*` only as the first label",
                    );
                }
                if t == RecordType::Cname && fqdn == *zone {
                    cx.error(
                        "cname-at-apex",
                        format!("a CNAME cannot sit at the apex of zone `{zone}`"),
                        "the apex holds the zone's NS and SOA records; use `DnsRecord::alias` (or A/AAAA records) \
                         there",
                    );
                }
            }
        }
        let values = self.rendered();
        // An alias to an output has its value only after apply.
        let known_now = !matches!(self.values, Values::Alias(DnsTarget::Output(_)));
        if known_now && values.is_empty() {
            cx.error(
                "missing-values",
                format!("the {t} record `{}` has no values", self.name),
                "give at least one value",
            );
        }
        for v in &values {
            if let Some((code, message)) = value_problem(t, v) {
                cx.error(code, format!("{t} record `{}`: {message}", self.name), help_for(t));
            }
        }
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for v in &values {
            if !seen.insert(v.as_str()) {
                cx.error(
                    "duplicate-value",
                    format!("the {t} record `{}` lists `{v}` twice", self.name),
                    "list each value once",
                );
            }
        }
        if t == RecordType::Cname && !fqdn.is_empty() && values.first() == Some(&fqdn) {
            cx.error("invalid-target", format!("the CNAME `{fqdn}` points to itself"), "point it to another name");
        }
        let ttl = match (t, self.ttl) {
            (RecordType::Alias, Some(n)) => {
                cx.error(
                    "alias-has-no-ttl",
                    format!("alias record `{}` is given a TTL of {n}s", self.name),
                    "an alias answers with its target's TTL; remove `.ttl(..)`",
                );
                None
            }
            (RecordType::Alias, None) => None,
            (_, ttl) => Some(ttl.unwrap_or(DEFAULT_TTL)),
        };
        if let Some(n) = ttl.filter(|n| !(MIN_TTL..=MAX_TTL).contains(n)) {
            cx.error(
                "ttl-out-of-range",
                format!("TTL {n}s of record `{}` is outside {MIN_TTL}..={MAX_TTL}", self.name),
                format!("use {MIN_TTL} to {MAX_TTL} seconds (the default is {DEFAULT_TTL})"),
            );
        }
        let values_expr = match &self.values {
            Values::Alias(DnsTarget::Output(o)) => match cx.target_any(o.source, "the alias target") {
                Some(src) => Expr::List(vec![cx.attr_of(src, o.attr, o.secret)]),
                None => Expr::List(Vec::new()),
            },
            _ => Expr::lit(values),
        };
        let zone_id = cx.id_of(zone_ix);
        cx.set_expr(field::ZONE_ID, zone_id);
        cx.set(field::FQDN, fqdn);
        cx.set(field::RECORD_TYPE, t);
        cx.set_expr(field::VALUES, values_expr);
        cx.set(field::TTL, ttl);
    }
}

fn help_for(t: RecordType) -> &'static str {
    match t {
        RecordType::A => "write IPv4 addresses in dotted form (203.0.113.10)",
        RecordType::Aaaa => "write IPv6 addresses such as 2001:db8::10",
        RecordType::Txt => "use printable ASCII text of at most 4000 characters",
        RecordType::Caa => "write entries such as (0, \"issue\", \"letsencrypt.org\")",
        _ => "point it to a host name such as `host.example.com`: labels of a-z, 0-9, '-' and '_'",
    }
}

/// Records of a stack that cannot coexist: the same name and type twice in a zone, or a CNAME
/// (or an alias) sharing its name with another record.
fn check_stack(cx: &mut StackCx<'_>) {
    let records: Vec<(usize, &DnsRecord)> = cx.of_kind::<DnsRecord>().collect();
    let mut by_name: BTreeMap<(usize, String), Vec<(usize, RecordType)>> = BTreeMap::new();
    for (i, r) in records {
        let Some(z) = cx.index_of(r.zone) else { continue };
        let Some(zone) = cx.node::<DnsZone>(z) else { continue };
        let Some(fqdn) = r.fqdn_in(zone.domain()) else { continue };
        // A CNAME at the apex is refused on its own (`cname-at-apex`); it conflicts with nothing.
        if r.record_type == RecordType::Cname && fqdn == zone.domain() {
            continue;
        }
        by_name.entry((z, fqdn)).or_default().push((i, r.record_type));
    }
    for ((_, fqdn), group) in by_name {
        for (n, (i, t)) in group.iter().enumerate() {
            let Some((first, ft)) = group[..n].iter().find(|(_, ft)| ft == t || !t.may_share_name_with(*ft)) else {
                continue;
            };
            let other = cx.path(*first);
            if ft == t {
                cx.error(
                    *i,
                    "duplicate-record",
                    format!("`{other}` is already the {t} record of `{fqdn}`"),
                    "keep one record per name and type, and list all its values there",
                );
            } else {
                let (code, what) = if *t == RecordType::Cname || *ft == RecordType::Cname {
                    ("cname-conflict", "a CNAME shares its name with no other record")
                } else {
                    ("alias-conflict", "an alias stands for the name's addresses: it excludes A and AAAA records")
                };
                cx.error(
                    *i,
                    code,
                    format!("this {t} record and the {ft} record `{other}` both use `{fqdn}`"),
                    format!("{what}; give one of them another name"),
                );
            }
        }
    }
}

/// Outputs of a DNS record, available after apply.
impl Ref<DnsRecord> {
    /// The record's full name (`www.example.com`).
    pub fn fqdn(&self) -> Output<String> {
        self.output("fqdn", false)
    }
    /// The provider's id.
    pub fn id(&self) -> Output<String> {
        self.output("id", false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_relative_to_the_zone() {
        let z = "example.com";
        assert_eq!(full_name("@", z).ok().as_deref(), Some("example.com"));
        assert_eq!(full_name("", z).ok().as_deref(), Some("example.com"));
        assert_eq!(full_name("www", z).ok().as_deref(), Some("www.example.com"));
        assert_eq!(full_name("_acme-challenge.www", z).ok().as_deref(), Some("_acme-challenge.www.example.com"));
        assert_eq!(full_name("www.example.com", z).ok().as_deref(), Some("www.example.com"));
        assert_eq!(full_name("www.example.com.", z).ok().as_deref(), Some("www.example.com"));
        assert_eq!(full_name("example.com.", z).ok().as_deref(), Some("example.com"));
        assert_eq!(full_name("*", z).ok().as_deref(), Some("*.example.com"));
        for outside in ["www.other.com", "www.other.com.", "example.org.", "badexample.com."] {
            assert_eq!(full_name(outside, z).map_err(|e| e.0), Err("record-outside-zone"), "{outside}");
        }
    }

    #[test]
    fn values_are_checked_per_type() {
        use RecordType::*;
        assert_eq!(value_problem(A, "203.0.113.10"), None);
        assert_eq!(value_problem(A, "203.0.113.300").map(|p| p.0), Some("invalid-address"));
        assert_eq!(value_problem(A, "2001:db8::1").map(|p| p.0), Some("invalid-address"));
        assert_eq!(value_problem(Aaaa, "2001:db8::1"), None);
        assert_eq!(value_problem(Cname, "www.example.net"), None);
        assert_eq!(value_problem(Cname, "not a host").map(|p| p.0), Some("invalid-target"));
        assert_eq!(value_problem(Mx, "10 mx1.example.com"), None);
        assert_eq!(value_problem(Mx, "ten mx1.example.com").map(|p| p.0), Some("invalid-target"));
        assert_eq!(value_problem(Txt, &"k".repeat(4000)), None);
        assert_eq!(value_problem(Txt, &"k".repeat(4001)).map(|p| p.0), Some("txt-too-long"));
        assert_eq!(value_problem(Txt, "a\tb").map(|p| p.0), Some("invalid-txt"));
        assert_eq!(value_problem(Caa, "0 issue \"letsencrypt.org\""), None);
        assert_eq!(value_problem(Caa, "128 iodef \"mailto:sec@example.com\""), None);
        for bad in ["1 issue \"x\"", "0 policy \"x\"", "0 issue x", "0 issue \"a\"b\"", "0 iodef \"x\""] {
            assert_eq!(value_problem(Caa, bad).map(|p| p.0), Some("invalid-caa"), "{bad}");
        }
    }

    #[test]
    fn long_txt_values_travel_as_255_character_strings() {
        let dkim = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(400);
        let parts = txt_strings(&dkim);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.len() <= TXT_STRING_LEN));
        assert_eq!(parts.concat(), dkim);
        assert_eq!(txt_strings(""), vec![""]);
    }
}
