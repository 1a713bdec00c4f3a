//! How Konstacks' key/value tags live in DigitalOcean's plain string tags, and the other tags
//! this backend writes. Every encoding here is reversible and lowercase-only (DigitalOcean
//! matches tags without regard to case), using only the characters DO allows
//! (`[a-zA-Z0-9_:-]`, at most 255 per tag).
//!
//! Labels (decoded back into observed `tags`):
//! - `konstacks:<name>:<value>` for keys `konstacks:<name>` (`konstacks:stack:shop`,
//!   `konstacks:path:network:web-fw`, `konstacks:stage:dev`),
//! - `kn:<value>` for `Name` when it differs from the object's own name (it never does for
//!   stacks Konstacks synthesizes, so it is normally absent),
//! - `kt:<key>:<value>` for any other key.
//!
//! Values keep `a-z`, `0-9` and `-`, write `/` as `:` and every other byte as `_` plus two hex
//! digits; keys of `kt:` escape `/` too, so the first `:` after the key ends it.
//!
//! System tags (never decoded as labels):
//! - `kxfw:<firewall uuid>`: the tag a cloud firewall targets; droplets attached to the firewall
//!   carry it, and rules naming the firewall as a peer use it as their source,
//! - `kxsn:<vpc uuid>:<a-b-c-d-len>`: membership of a droplet or database in a logical subnet,
//! - `kxr:...`: records of objects DO cannot label (subnets, firewalls), kept as tags attached
//!   to nothing (see [`Record`]).

use std::collections::BTreeMap;

use konstacks_core::spec::{Tags, TAG_NAME};

/// DigitalOcean's longest tag.
pub(crate) const MAX_TAG_LEN: usize = 255;
const LABEL: &str = "konstacks:";
const NAME: &str = "kn:";
const FOREIGN: &str = "kt:";
/// Prefix of a firewall's own tag.
pub(crate) const FW_TAG: &str = "kxfw:";
/// Prefix of subnet membership tags.
pub(crate) const SUBNET_TAG: &str = "kxsn:";
/// Prefix of record tags.
pub(crate) const RECORD: &str = "kxr:";

fn keep(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

fn escape(s: &str, slash_as_colon: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else if b == b'/' && slash_as_colon {
            out.push(':');
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b':' => out.push(b'/'),
            b'_' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b if keep(b) => out.push(b),
            _ => return None,
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Encode a tag value (`/` becomes `:`).
pub(crate) fn enc_value(s: &str) -> String {
    escape(s, true)
}

/// The label tag of one key/value pair.
pub(crate) fn label(key: &str, value: &str) -> String {
    match key.strip_prefix(LABEL) {
        Some(name) if !name.is_empty() && name.bytes().all(keep) => format!("{LABEL}{name}:{}", enc_value(value)),
        _ if key == TAG_NAME => format!("{NAME}{}", enc_value(value)),
        _ => format!("{FOREIGN}{}:{}", escape(key, false), enc_value(value)),
    }
}

/// Decode one label tag; `None` for tags that are not Konstacks labels.
pub(crate) fn parse_label(tag: &str) -> Option<(String, String)> {
    if let Some(rest) = tag.strip_prefix(LABEL) {
        let (name, value) = rest.split_once(':')?;
        if name.is_empty() || !name.bytes().all(keep) {
            return None;
        }
        return Some((format!("{LABEL}{name}"), unescape(value)?));
    }
    if let Some(rest) = tag.strip_prefix(NAME) {
        return Some((TAG_NAME.to_string(), unescape(rest)?));
    }
    let rest = tag.strip_prefix(FOREIGN)?;
    let (key, value) = rest.split_once(':')?;
    Some((unescape(key)?, unescape(value)?))
}

/// The label tags of `tags`; `Name` is left out when it equals `object_name`. Fails with the
/// offending tag when one would exceed DigitalOcean's 255 characters.
pub(crate) fn encode(tags: &Tags, object_name: Option<&str>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (k, v) in tags {
        if k == TAG_NAME && object_name == Some(v.as_str()) {
            continue;
        }
        let t = label(k, v);
        if t.len() > MAX_TAG_LEN {
            return Err(format!(
                "tag `{k}` = `{v}` becomes the DigitalOcean tag `{t}` of {} characters; DigitalOcean allows {MAX_TAG_LEN}",
                t.len()
            ));
        }
        out.push(t);
    }
    out.sort();
    Ok(out)
}

/// The labels among DigitalOcean tags; `Name` is the object's name unless a `kn:` tag says
/// otherwise.
pub(crate) fn decode<'a>(do_tags: impl IntoIterator<Item = &'a String>, object_name: Option<&str>) -> Tags {
    let mut out: Tags = BTreeMap::new();
    if let Some(n) = object_name {
        out.insert(TAG_NAME.to_string(), n.to_string());
    }
    for t in do_tags {
        if let Some((k, v)) = parse_label(t) {
            out.insert(k, v);
        }
    }
    out
}

/// The tag every resource of `stack` carries, used to filter list endpoints.
pub(crate) fn stack_tag(stack: &str) -> String {
    label(konstacks_core::spec::TAG_STACK, stack)
}

/// A firewall's own tag.
pub(crate) fn firewall_tag(id: &str) -> String {
    format!("{FW_TAG}{}", escape(id, false))
}

/// The firewall id of a `kxfw:` tag.
pub(crate) fn firewall_of(tag: &str) -> Option<String> {
    unescape(tag.strip_prefix(FW_TAG)?)
}

/// `10.0.1.0/24` as `10-0-1-0-24`.
pub(crate) fn cidr_key(cidr: &str) -> String {
    cidr.replace(['.', '/'], "-")
}

/// `10-0-1-0-24` back to `10.0.1.0/24`.
pub(crate) fn cidr_of_key(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('-').collect();
    if parts.len() != 5 || !parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    Some(format!("{}.{}.{}.{}/{}", parts[0], parts[1], parts[2], parts[3], parts[4]))
}

/// The membership tag of the subnet `cidr` of VPC `vpc`.
pub(crate) fn subnet_tag(vpc: &str, cidr: &str) -> String {
    format!("{SUBNET_TAG}{}:{}", escape(vpc, false), cidr_key(cidr))
}

/// The (VPC, CIDR) of a `kxsn:` tag.
pub(crate) fn subnet_of(tag: &str) -> Option<(String, String)> {
    let (vpc, key) = tag.strip_prefix(SUBNET_TAG)?.split_once(':')?;
    Some((unescape(vpc)?, cidr_of_key(key)?))
}

/// The id Konstacks gives a logical subnet: `<vpc uuid>/<cidr>`.
pub(crate) fn subnet_id(vpc: &str, cidr: &str) -> String {
    format!("{vpc}/{cidr}")
}

/// The (VPC, CIDR) of a subnet id, when it has that shape.
pub(crate) fn parse_subnet_id(id: &str) -> Option<(String, String)> {
    let (vpc, cidr) = id.split_once('/')?;
    let c: konstacks_core::cidr::Cidr = cidr.parse().ok()?;
    if vpc.is_empty() || c.to_string() != cidr {
        return None;
    }
    Some((vpc.to_string(), cidr.to_string()))
}

/// The kind of object a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RecordKind {
    /// A logical subnet, keyed by `<vpc>:<cidr key>`.
    Subnet,
    /// A cloud firewall, keyed by its uuid.
    Firewall,
    /// A domain (DNS zone), keyed by [`object_key`] of its name.
    Zone,
    /// A record set, keyed by [`object_key`] of its id.
    DnsRecord,
    /// A certificate, keyed by [`object_key`] of its uuid.
    Certificate,
    /// A load balancer, keyed by [`object_key`] of its uuid.
    LoadBalancer,
    /// A Spaces bucket, keyed by [`object_key`] of its name.
    Bucket,
}

impl RecordKind {
    fn code(self) -> &'static str {
        match self {
            RecordKind::Subnet => "sn",
            RecordKind::Firewall => "fw",
            RecordKind::Zone => "dz",
            RecordKind::DnsRecord => "dr",
            RecordKind::Certificate => "ct",
            RecordKind::LoadBalancer => "lb",
            RecordKind::Bucket => "bk",
        }
    }
}

/// One record tag: `kxr:<kind>:<key>:<field>`. Fields: `z:<zone>` (a subnet's anchor: the
/// record exists while it does), `pub` (a public subnet), `nm:<name>`, `rg:<region>`,
/// `vpc:<uuid>`, `l:<label tag>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Record {
    pub(crate) kind: RecordKind,
    /// Subnet: `<vpc uuid>:<cidr key>`; firewall: its uuid (escaped).
    pub(crate) key: String,
    pub(crate) field: String,
}

impl Record {
    pub(crate) fn tag(&self) -> String {
        format!("{RECORD}{}:{}:{}", self.kind.code(), self.key, self.field)
    }

    pub(crate) fn parse(tag: &str) -> Option<Record> {
        let rest = tag.strip_prefix(RECORD)?;
        let (code, rest) = rest.split_once(':')?;
        let kind = match code {
            "sn" => RecordKind::Subnet,
            "fw" => RecordKind::Firewall,
            "dz" => RecordKind::Zone,
            "dr" => RecordKind::DnsRecord,
            "ct" => RecordKind::Certificate,
            "lb" => RecordKind::LoadBalancer,
            "bk" => RecordKind::Bucket,
            _ => return None,
        };
        let (key, field) = match kind {
            RecordKind::Firewall
            | RecordKind::Zone
            | RecordKind::DnsRecord
            | RecordKind::Certificate
            | RecordKind::LoadBalancer
            | RecordKind::Bucket => rest.split_once(':')?,
            RecordKind::Subnet => {
                let (vpc, rest) = rest.split_once(':')?;
                let (cidr, field) = rest.split_once(':')?;
                cidr_of_key(cidr)?;
                return Some(Record { kind, key: format!("{vpc}:{cidr}"), field: field.to_string() });
            }
        };
        Some(Record { kind, key: key.to_string(), field: field.to_string() })
    }
}

/// The record key of a subnet.
pub(crate) fn subnet_record_key(vpc: &str, cidr: &str) -> String {
    format!("{}:{}", escape(vpc, false), cidr_key(cidr))
}

/// The record key of an object whose id may be long or hold any character (a domain, a record
/// set, a certificate): 16 hex digits of its FNV-1a hash, so every record tag stays short.
pub(crate) fn object_key(id: &str) -> String {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

/// The record key of a firewall.
pub(crate) fn firewall_record_key(id: &str) -> String {
    escape(id, false)
}

/// What the record fields of one object say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecordFields {
    pub(crate) anchor_zone: Option<u8>,
    pub(crate) public: bool,
    pub(crate) name: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) vpc: Option<String>,
    pub(crate) labels: Vec<String>,
}

impl RecordFields {
    pub(crate) fn read<'a>(fields: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = RecordFields::default();
        for f in fields {
            if let Some(z) = f.strip_prefix("z:") {
                out.anchor_zone = z.parse().ok();
            } else if f == "pub" {
                out.public = true;
            } else if let Some(n) = f.strip_prefix("nm:") {
                out.name = unescape(n);
            } else if let Some(r) = f.strip_prefix("rg:") {
                out.region = unescape(r);
            } else if let Some(v) = f.strip_prefix("vpc:") {
                out.vpc = unescape(v);
            } else if let Some(l) = f.strip_prefix("l:") {
                out.labels.push(l.to_string());
            }
        }
        out.labels.sort();
        out
    }
}

/// Field `nm:`.
pub(crate) fn name_field(name: &str) -> String {
    format!("nm:{}", escape(name, false))
}

/// Field `rg:`.
pub(crate) fn region_field(region: &str) -> String {
    format!("rg:{}", escape(region, false))
}

/// Field `vpc:`.
pub(crate) fn vpc_field(vpc: &str) -> String {
    format!("vpc:{}", escape(vpc, false))
}

/// Field `l:`.
pub(crate) fn label_field(label: &str) -> String {
    format!("l:{label}")
}

/// Labels kept in a VPC's description (DO VPCs carry no tags): the label tags separated by
/// spaces. Fails when they do not fit DigitalOcean's 255 characters.
pub(crate) fn vpc_description(tags: &Tags, name: &str) -> Result<String, String> {
    let d = encode(tags, Some(name))?.join(" ");
    if d.len() > 255 {
        return Err(format!(
            "the VPC's tags take {} characters once encoded; DigitalOcean keeps them in the VPC description, which holds 255",
            d.len()
        ));
    }
    Ok(d)
}

/// The labels of a VPC description written by [`vpc_description`].
pub(crate) fn vpc_labels(description: &str, name: &str) -> Tags {
    let words: Vec<String> = description.split_whitespace().map(str::to_string).collect();
    decode(&words, Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use konstacks_core::spec::{TAG_PATH, TAG_STACK};

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn labels_round_trip() {
        let t = tags(&[
            (TAG_STACK, "shop-dev"),
            (TAG_PATH, "network/web-fw"),
            (TAG_NAME, "shop-dev-network-web-fw"),
            ("konstacks:stage", "dev"),
            ("Team", "Ops/Blue: 1_a"),
            ("konstacks:Odd", "x"),
        ]);
        let enc = encode(&t, Some("shop-dev-network-web-fw")).unwrap_or_default();
        assert!(enc.contains(&"konstacks:stack:shop-dev".to_string()));
        assert!(enc.contains(&"konstacks:path:network:web-fw".to_string()));
        assert!(!enc.iter().any(|e| e.starts_with("kn:")), "Name equal to the object name is not stored");
        for e in &enc {
            assert!(e.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_:-".contains(&b)), "{e}");
        }
        assert_eq!(decode(&enc, Some("shop-dev-network-web-fw")), t);
        // A different Name survives.
        let mut t2 = t.clone();
        t2.insert(TAG_NAME.into(), "Other Name".into());
        let enc2 = encode(&t2, Some("shop-dev-network-web-fw")).unwrap_or_default();
        assert_eq!(decode(&enc2, Some("shop-dev-network-web-fw")), t2);
    }

    #[test]
    fn foreign_tags_are_ignored_and_long_ones_refused() {
        let mine = decode(&["web".to_string(), "env:prod".to_string(), "kxfw:abc".to_string()], None);
        assert!(mine.is_empty());
        let long = tags(&[(TAG_PATH, &"a".repeat(300))]);
        assert!(encode(&long, None).is_err());
    }

    #[test]
    fn system_tags_round_trip() {
        let vpc = "5a4981aa-9653-4bd1-bef5-d6bff52042e4";
        assert_eq!(subnet_of(&subnet_tag(vpc, "10.0.1.0/24")), Some((vpc.to_string(), "10.0.1.0/24".to_string())));
        assert_eq!(firewall_of(&firewall_tag("bb4b2611-3d72")), Some("bb4b2611-3d72".to_string()));
        assert_eq!(parse_subnet_id(&subnet_id(vpc, "10.0.1.0/24")), Some((vpc.into(), "10.0.1.0/24".into())));
        assert_eq!(parse_subnet_id("x/10.0.1.9/99"), None);
        let r = Record {
            kind: RecordKind::Subnet,
            key: subnet_record_key(vpc, "10.0.1.0/24"),
            field: label_field("konstacks:path:network:a"),
        };
        assert_eq!(Record::parse(&r.tag()), Some(r));
        let f = Record { kind: RecordKind::Firewall, key: firewall_record_key("fw-1"), field: "z:0".into() };
        assert_eq!(Record::parse(&f.tag()), Some(f));
        for kind in [RecordKind::Zone, RecordKind::DnsRecord, RecordKind::Certificate] {
            let key = object_key("shop.example.com/TXT/_dmarc.shop.example.com");
            let r = Record { kind, key, field: name_field("shop-edge-dmarc") };
            assert_eq!(Record::parse(&r.tag()), Some(r));
        }
        assert_eq!(object_key("a").len(), 16);
        assert_ne!(object_key("shop.example.com"), object_key("shop.example.org"));
    }

    #[test]
    fn vpc_descriptions_round_trip() {
        let t = tags(&[(TAG_STACK, "s"), (TAG_PATH, "network/vpc"), (TAG_NAME, "s-network-vpc")]);
        let d = vpc_description(&t, "s-network-vpc").unwrap_or_default();
        assert_eq!(vpc_labels(&d, "s-network-vpc"), t);
        assert_eq!(vpc_labels("a VPC someone described", "n"), tags(&[(TAG_NAME, "n")]));
    }
}
