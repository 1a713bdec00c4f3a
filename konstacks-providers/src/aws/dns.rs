//! DNS zones (Route 53 public hosted zones) and DNS records (Route 53 record sets).
//!
//! Route 53 record sets carry no tags, so every record Konstacks writes gets an *ownership
//! record* beside it, in the same change batch: a TXT record named
//! `_konstacks-<digest of name and type>.<zone>` whose strings say which record it describes
//! (`konstacks-record=<fqdn> <TYPE>`) and hold its tags (`key=value`, one string each). Reads pair
//! the two again; a read by stack lists the record sets of the stack's zones (zones are tagged).
//! The same mechanism marks the certificate validation records the certificate module writes
//! (`konstacks:aws:owner=<certificate ARN>` strings): those are the zone's managed records and
//! are removed with the zone. Ownership records are public DNS data, like external-dns' TXT
//! registry: they show stack names and paths to anyone who queries them.
//!
//! The record id is `<zone id>/<fqdn>/<TYPE>` (`ALIAS` for an alias), enough to find a record
//! again in a zone the stack does not own.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, HostedZone, ResourceRecord, ResourceRecordSet,
    RrType, Tag, TagResourceType,
};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::dns_record::{value_problem, MAX_TTL, MIN_TTL, TXT_STRING_LEN};
use konstacks_core::kinds::dns_zone::{dns_name_problem, strip_root, within, NameRules};
use konstacks_core::kinds::{
    DnsRecord, DnsRecordObserved, DnsRecordSpec, DnsZone, DnsZoneObserved, DnsZoneSpec, ManagedRecord, RecordType,
};
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{Selector, Tags, TAG_PATH, TAG_STACK};

use super::error::{aws_code, invalid, sdk_error};
use super::{
    check_tags, digest, follow_up, follow_up_create, name_of, visible_tags, wait_for, AwsProvider, Polled,
    INTERNAL_TAG_PREFIX,
};

/// The string of an ownership record that names the record it describes.
const RECORD_MARK: &str = "konstacks-record=";
/// Prefix of the ownership record names.
const OWNER_PREFIX: &str = "_konstacks-";
/// Tag (inside an ownership record) naming a certificate that owns a validation record.
pub(crate) const TAG_OWNER: &str = "konstacks:aws:owner";
/// TTL of ownership records.
const OWNER_TTL: i64 = 300;
/// Route 53 accepts at most 10 tag changes per ChangeTagsForResource call and 10 zones per
/// ListTagsForResources call.
const TAG_BATCH: usize = 10;
/// How long a change may take to reach every Route 53 server.
const CHANGE_LIMIT: Duration = Duration::from_secs(10 * 60);
/// Owner of the records a zone keeps by itself.
const ZONE_OWNER: &str = "zone";
/// Canonical hosted zone ids of Application Load Balancers, by region (used when
/// DescribeLoadBalancers cannot say).
const ALB_ZONES: &[(&str, &str)] = &[
    ("us-east-1", "Z35SXDOTRQ7X7K"),
    ("us-east-2", "Z3AADJGX6KTTL2"),
    ("us-west-1", "Z368ELLRRE2KJ0"),
    ("us-west-2", "Z1H1FL5HABSF5"),
    ("ca-central-1", "ZQSVJUPU6J1EY"),
    ("eu-central-1", "Z215JYRZR1TBD5"),
    ("eu-west-1", "Z32O12XQLNTSW2"),
    ("eu-west-2", "ZHURV8PSTC4K8"),
    ("eu-west-3", "Z3Q77PNBQS71R4"),
    ("eu-north-1", "Z23TAZ7KFP5JSC"),
    ("eu-south-1", "Z3ULH7SSC9OV64"),
    ("ap-northeast-1", "Z14GRHDCWA56QT"),
    ("ap-northeast-2", "ZWKZPGTI48KDX"),
    ("ap-south-1", "ZP97RAFLXTNZK"),
    ("ap-southeast-1", "Z1LMS91P8CMLE5"),
    ("ap-southeast-2", "Z1GM3OXH4ZPM65"),
    ("sa-east-1", "Z2P70J7HTTTPLU"),
];

// ---- names, values and ownership records ----

/// A zone id without the `/hostedzone/` prefix.
fn bare_zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

/// A name as Route 53 returns it (`\052.example.com.`) in plain form (`*.example.com`).
fn plain_name(name: &str) -> String {
    let name = strip_root(name);
    let b = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let code = u32::from(b[i + 1] - b'0') * 64 + u32::from(b[i + 2] - b'0') * 8 + u32::from(b[i + 3] - b'0');
            out.push(char::from_u32(code).unwrap_or('?'));
            i += 4;
        } else {
            out.push(char::from(b[i]));
            i += 1;
        }
    }
    out.to_ascii_lowercase()
}

/// A string as a quoted TXT character-string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A Route 53 TXT value (`"a" "b"`) as its strings, unquoted.
fn unquote_strings(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    // `\ddd` (octal) or an escaped character.
                    let mut digits = String::new();
                    while digits.len() < 3 && chars.peek().is_some_and(char::is_ascii_digit) {
                        digits.extend(chars.next());
                    }
                    if digits.len() == 3 {
                        s.push(u32::from_str_radix(&digits, 8).ok().and_then(char::from_u32).unwrap_or('?'));
                    } else if digits.is_empty() {
                        s.extend(chars.next());
                    } else {
                        s.push_str(&digits);
                    }
                }
                '"' => break,
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// A TXT value of the spec as Route 53 wants it: quoted strings of at most 255 characters.
fn txt_value(text: &str) -> String {
    konstacks_core::kinds::dns_record::txt_strings(text).iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ")
}

/// The Route 53 type of a record type, `None` for the types Konstacks does not write.
fn rr_type(t: RecordType) -> Option<RrType> {
    Some(match t {
        RecordType::A | RecordType::Alias => RrType::A,
        RecordType::Aaaa => RrType::Aaaa,
        RecordType::Cname => RrType::Cname,
        RecordType::Txt => RrType::Txt,
        RecordType::Mx => RrType::Mx,
        RecordType::Caa => RrType::Caa,
        _ => return None,
    })
}

fn record_type_of(s: &str) -> Option<RecordType> {
    Some(match s {
        "A" => RecordType::A,
        "AAAA" => RecordType::Aaaa,
        "CNAME" => RecordType::Cname,
        "TXT" => RecordType::Txt,
        "MX" => RecordType::Mx,
        "CAA" => RecordType::Caa,
        "ALIAS" => RecordType::Alias,
        "NS" => RecordType::Ns,
        "SOA" => RecordType::Soa,
        _ => return None,
    })
}

/// The Konstacks type of a record set.
fn type_of_set(r: &ResourceRecordSet) -> Option<RecordType> {
    if r.alias_target().is_some() {
        return Some(RecordType::Alias);
    }
    record_type_of(r.r#type().as_str())
}

/// The id of a record.
fn record_id(zone_id: &str, fqdn: &str, t: RecordType) -> String {
    format!("{}/{fqdn}/{}", bare_zone_id(zone_id), t.as_str())
}

/// `(zone id, fqdn, type)` of a record id; `None` for an id of another shape.
fn parse_record_id(id: &str) -> Option<(String, String, RecordType)> {
    let (zone, rest) = id.split_once('/')?;
    let (fqdn, t) = rest.rsplit_once('/')?;
    if zone.is_empty() || fqdn.is_empty() {
        return None;
    }
    Some((zone.to_string(), fqdn.to_string(), record_type_of(t)?))
}

/// Name of the ownership record of `(fqdn, t)` in `zone` (its domain).
fn owner_name(zone: &str, fqdn: &str, t: RecordType) -> String {
    let d = digest(&["konstacks-route53-owner", fqdn, t.as_str()]);
    format!("{OWNER_PREFIX}{}.{zone}", &d[..16])
}

/// What an ownership record says.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Ownership {
    /// The record it describes.
    pub(crate) fqdn: String,
    /// Its type.
    pub(crate) record_type: Option<RecordType>,
    /// Tags (including internal ones).
    pub(crate) tags: BTreeMap<String, String>,
    /// Certificates owning a validation record.
    pub(crate) owners: BTreeSet<String>,
}

impl Ownership {
    fn parse(strings: &[String]) -> Option<Ownership> {
        let mark = strings.iter().find_map(|s| s.strip_prefix(RECORD_MARK))?;
        let (fqdn, t) = mark.rsplit_once(' ')?;
        let mut o = Ownership { fqdn: fqdn.to_string(), record_type: record_type_of(t), ..Default::default() };
        for s in strings.iter().filter(|s| !s.starts_with(RECORD_MARK)) {
            if let Some((k, v)) = s.split_once('=') {
                if k == TAG_OWNER {
                    o.owners.insert(v.to_string());
                } else {
                    o.tags.insert(k.to_string(), v.to_string());
                }
            }
        }
        Some(o)
    }

    fn value(&self) -> String {
        let t = self.record_type.map(RecordType::as_str).unwrap_or("CNAME");
        let mut strings = vec![format!("{RECORD_MARK}{} {t}", self.fqdn)];
        strings.extend(self.tags.iter().map(|(k, v)| format!("{k}={v}")));
        strings.extend(self.owners.iter().map(|o| format!("{TAG_OWNER}={o}")));
        strings.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ")
    }
}

/// Refuse tags that do not fit in one TXT string each, before any call.
fn check_record_tags(what: &str, tags: &Tags) -> ProviderResult<()> {
    check_tags(what, tags, 0)?;
    for (k, v) in tags {
        if k.len() + v.len() + 1 > TXT_STRING_LEN || !format!("{k}{v}").chars().all(|c| (' '..='~').contains(&c)) {
            return Err(invalid(format!(
                "{what}: tag `{k}` does not fit in a DNS text string (printable ASCII, key and value together at \
                 most {} characters); Route 53 records keep their tags in an ownership TXT record",
                TXT_STRING_LEN - 1
            )));
        }
    }
    Ok(())
}

fn rr(value: impl Into<String>) -> ProviderResult<ResourceRecord> {
    ResourceRecord::builder().value(value).build().map_err(|e| invalid(format!("internal: a DNS value: {e}")))
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> ProviderResult<Change> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| invalid(format!("internal: a DNS change: {e}")))
}

/// The ownership record set of `o` in `zone`.
fn owner_set(zone: &str, o: &Ownership) -> ProviderResult<ResourceRecordSet> {
    let t = o.record_type.unwrap_or(RecordType::Cname);
    ResourceRecordSet::builder()
        .name(owner_name(zone, &o.fqdn, t))
        .r#type(RrType::Txt)
        .ttl(OWNER_TTL)
        .resource_records(rr(o.value())?)
        .build()
        .map_err(|e| invalid(format!("internal: an ownership record: {e}")))
}

/// A plain (non-alias) record set.
pub(crate) fn plain_set(fqdn: &str, t: RecordType, values: &[String], ttl: u32) -> ProviderResult<ResourceRecordSet> {
    let rt = rr_type(t).ok_or_else(|| invalid(format!("Route 53 records of type {t} are not written by Konstacks")))?;
    let mut records = Vec::new();
    for v in values {
        let value = match t {
            RecordType::Txt => txt_value(v),
            RecordType::Cname => format!("{}.", strip_root(v)),
            RecordType::Mx => match v.split_once(' ') {
                Some((p, h)) => format!("{p} {}.", strip_root(h)),
                None => v.clone(),
            },
            _ => v.clone(),
        };
        records.push(rr(value)?);
    }
    ResourceRecordSet::builder()
        .name(fqdn)
        .r#type(rt)
        .ttl(i64::from(ttl))
        .set_resource_records(Some(records))
        .build()
        .map_err(|e| invalid(format!("internal: a record set: {e}")))
}

/// The values of a record set in spec form.
fn values_of(r: &ResourceRecordSet, t: RecordType) -> Vec<String> {
    if let Some(a) = r.alias_target() {
        return vec![plain_name(a.dns_name())];
    }
    let mut out: Vec<String> = r
        .resource_records()
        .iter()
        .map(|v| {
            let v = v.value();
            match t {
                RecordType::Txt => unquote_strings(v).concat(),
                RecordType::Cname | RecordType::Ns => plain_name(v),
                RecordType::Mx => match v.split_once(' ') {
                    Some((p, h)) => format!("{p} {}", plain_name(h)),
                    None => v.to_string(),
                },
                _ => v.to_string(),
            }
        })
        .collect();
    out.sort();
    out
}

// ---- the zone's record sets ----

/// The record sets of a zone, with the ownership records paired to what they describe.
#[derive(Debug, Default)]
pub(crate) struct ZoneRecords {
    /// Record sets that are not ownership records, by (fqdn, type).
    pub(crate) sets: BTreeMap<(String, RecordType), ResourceRecordSet>,
    /// Ownership records by the (fqdn, type) they describe, with their own set (to delete it).
    pub(crate) owned: BTreeMap<(String, RecordType), (Ownership, ResourceRecordSet)>,
    /// Record sets of types Konstacks does not know (kept to report them).
    pub(crate) other: Vec<String>,
}

impl AwsProvider {
    /// A hosted zone by id; `None` when it does not exist.
    pub(crate) async fn hosted_zone(
        &self,
        id: &str,
    ) -> ProviderResult<Option<aws_sdk_route53::operation::get_hosted_zone::GetHostedZoneOutput>> {
        match self.serving.route53.get_hosted_zone().id(bare_zone_id(id)).send().await {
            Ok(out) => Ok(Some(out)),
            Err(e) => {
                let e = sdk_error("GetHostedZone", &format!("reading DNS zone `{id}`"), e);
                if e.kind() == ErrorKind::NotFound || aws_code(&e) == Some("InvalidInput") {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The domain of zone `id`, or NotFound.
    pub(crate) async fn zone_domain(&self, id: &str) -> ProviderResult<String> {
        let z = self
            .hosted_zone(id)
            .await?
            .and_then(|o| o.hosted_zone().map(|z| plain_name(z.name())))
            .ok_or_else(|| ProviderError::not_found(format!("DNS zone `{id}` does not exist in Route 53")))?;
        Ok(z)
    }

    /// Every record set of zone `id` (paginated).
    pub(crate) async fn zone_records(&self, id: &str, domain: &str) -> ProviderResult<ZoneRecords> {
        let mut out = ZoneRecords::default();
        let mut start: Option<(String, RrType)> = None;
        let mut owners: Vec<(Ownership, ResourceRecordSet)> = Vec::new();
        loop {
            let mut req = self.serving.route53.list_resource_record_sets().hosted_zone_id(bare_zone_id(id));
            if let Some((n, t)) = start.take() {
                req = req.start_record_name(n).start_record_type(t);
            }
            let page = req.send().await.map_err(|e| {
                sdk_error("ListResourceRecordSets", &format!("listing the records of DNS zone `{id}`"), e)
            })?;
            for r in page.resource_record_sets() {
                let name = plain_name(r.name());
                let is_owner = r.r#type() == &RrType::Txt
                    && name.starts_with(OWNER_PREFIX)
                    && name.split_once('.').is_some_and(|(_, z)| z == domain);
                if is_owner {
                    let strings: Vec<String> =
                        r.resource_records().iter().flat_map(|v| unquote_strings(v.value())).collect();
                    if let Some(o) = Ownership::parse(&strings) {
                        owners.push((o, r.clone()));
                        continue;
                    }
                }
                match type_of_set(r) {
                    Some(t) if r.set_identifier().is_none() => {
                        out.sets.insert((name, t), r.clone());
                    }
                    _ => out.other.push(format!("{name} {}", r.r#type().as_str())),
                }
            }
            match (page.is_truncated(), page.next_record_name(), page.next_record_type()) {
                (true, Some(n), Some(t)) => start = Some((n.to_string(), t.clone())),
                _ => break,
            }
        }
        for (o, set) in owners {
            if let Some(t) = o.record_type {
                out.owned.insert((o.fqdn.clone(), t), (o, set));
            }
        }
        Ok(out)
    }

    /// Send one change batch to zone `id` and wait (on `cx`) until it is in sync.
    pub(crate) async fn change_records(
        &self,
        cx: &OpContext,
        zone_id: &str,
        what: &str,
        changes: Vec<Change>,
    ) -> ProviderResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let batch =
            ChangeBatch::builder().set_changes(Some(changes)).build().map_err(|e| invalid(format!("internal: {e}")))?;
        let out = self
            .serving
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(bare_zone_id(zone_id))
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| sdk_error("ChangeResourceRecordSets", what, e))?;
        let Some(info) = out.change_info() else { return Ok(()) };
        self.wait_change(cx, what, info.id(), info.status()).await
    }

    async fn wait_change(
        &self,
        cx: &OpContext,
        what: &str,
        change_id: &str,
        status: &ChangeStatus,
    ) -> ProviderResult<()> {
        if status == &ChangeStatus::Insync || change_id.is_empty() {
            return Ok(());
        }
        let id = change_id.trim_start_matches("/change/").to_string();
        let r53 = &self.serving.route53;
        wait_for(cx, what, CHANGE_LIMIT, self.settings.timeouts.max_poll, || {
            let id = id.clone();
            async move {
                let out = r53.get_change().id(id).send().await.map_err(|e| sdk_error("GetChange", what, e))?;
                match out.change_info().map(|c| c.status()) {
                    Some(ChangeStatus::Pending) => Ok(Polled::Pending("PENDING".into())),
                    _ => Ok(Polled::Ready(())),
                }
            }
        })
        .await
    }

    /// Tags of hosted zones, by bare id (ListTagsForResources, 10 at a time).
    async fn zone_tags(&self, ids: &[String]) -> ProviderResult<BTreeMap<String, BTreeMap<String, String>>> {
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(TAG_BATCH) {
            let res = self
                .serving
                .route53
                .list_tags_for_resources()
                .resource_type(TagResourceType::Hostedzone)
                .set_resource_ids(Some(chunk.iter().map(|i| bare_zone_id(i).to_string()).collect()))
                .send()
                .await
                .map_err(|e| sdk_error("ListTagsForResources", "reading the tags of DNS zones", e))?;
            for set in res.resource_tag_sets() {
                let tags: BTreeMap<String, String> = set
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
                    .collect();
                out.insert(set.resource_id().map(|s| bare_zone_id(s).to_string()).unwrap_or_default(), tags);
            }
        }
        Ok(out)
    }

    /// Every hosted zone of the account (ListHostedZones, paginated).
    async fn all_zones(&self) -> ProviderResult<Vec<HostedZone>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .serving
                .route53
                .list_hosted_zones()
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| sdk_error("ListHostedZones", "listing DNS zones", e))?;
            out.extend(page.hosted_zones().iter().cloned());
            match (page.is_truncated(), page.next_marker()) {
                (true, Some(m)) => marker = Some(m.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Bare ids of the zones tagged with `stack`, with their tags.
    pub(crate) async fn stack_zones(&self, stack: &str) -> ProviderResult<Vec<(String, BTreeMap<String, String>)>> {
        let ids: Vec<String> = self
            .all_zones()
            .await?
            .iter()
            .filter(|z| !z.config().is_some_and(|c| c.private_zone()))
            .map(|z| bare_zone_id(z.id()).to_string())
            .collect();
        let tags = self.zone_tags(&ids).await?;
        Ok(tags.into_iter().filter(|(_, t)| t.get(TAG_STACK).map(String::as_str) == Some(stack)).collect())
    }

    async fn zone_observed(
        &self,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> ProviderResult<Option<DnsZoneObserved>> {
        let Some(out) = self.hosted_zone(id).await? else { return Ok(None) };
        let Some(z) = out.hosted_zone() else { return Ok(None) };
        let domain = plain_name(z.name());
        let mut name_servers: Vec<String> =
            out.delegation_set().map(|d| d.name_servers().iter().map(|n| plain_name(n)).collect()).unwrap_or_default();
        let records = self.zone_records(id, &domain).await?;
        let mut managed = Vec::new();
        for ((fqdn, t), set) in &records.sets {
            if fqdn == &domain && matches!(t, RecordType::Ns | RecordType::Soa) {
                let values = if *t == RecordType::Soa {
                    set.resource_records().iter().map(|v| v.value().to_string()).collect()
                } else {
                    values_of(set, *t)
                };
                if *t == RecordType::Ns && name_servers.is_empty() {
                    name_servers = values.clone();
                }
                for value in values {
                    managed.push(ManagedRecord {
                        fqdn: fqdn.clone(),
                        record_type: *t,
                        value,
                        owner: ZONE_OWNER.into(),
                    });
                }
            } else if let Some((o, _)) = records.owned.get(&(fqdn.clone(), *t)) {
                for owner in &o.owners {
                    for value in values_of(set, *t) {
                        managed.push(ManagedRecord {
                            fqdn: fqdn.clone(),
                            record_type: *t,
                            value,
                            owner: owner.clone(),
                        });
                    }
                }
            }
        }
        managed.sort_by(|a, b| {
            (&a.fqdn, a.record_type, &a.value, &a.owner).cmp(&(&b.fqdn, b.record_type, &b.value, &b.owner))
        });
        Ok(Some(DnsZoneObserved {
            id: bare_zone_id(z.id()).to_string(),
            name: name_of(tags),
            region: self.region.clone(),
            domain,
            name_servers,
            managed_records: managed,
            tags: visible_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        }))
    }

    /// Bring the tags of zone `id` from `current` to `desired`, 10 changes per call.
    async fn sync_zone_tags(
        &self,
        id: &str,
        current: &BTreeMap<String, String>,
        desired: &BTreeMap<String, String>,
    ) -> ProviderResult<()> {
        let add: Vec<Tag> = desired
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let remove: Vec<String> = current
            .keys()
            .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:") && !k.starts_with(INTERNAL_TAG_PREFIX))
            .cloned()
            .collect();
        let what = format!("tagging DNS zone `{id}`");
        for chunk in add.chunks(TAG_BATCH) {
            self.serving
                .route53
                .change_tags_for_resource()
                .resource_type(TagResourceType::Hostedzone)
                .resource_id(bare_zone_id(id))
                .set_add_tags(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| sdk_error("ChangeTagsForResource", &what, e))?;
        }
        for chunk in remove.chunks(TAG_BATCH) {
            self.serving
                .route53
                .change_tags_for_resource()
                .resource_type(TagResourceType::Hostedzone)
                .resource_id(bare_zone_id(id))
                .set_remove_tag_keys(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| sdk_error("ChangeTagsForResource", &what, e))?;
        }
        Ok(())
    }

    async fn delete_zone_now(&self, id: &str) -> ProviderResult<()> {
        match self.serving.route53.delete_hosted_zone().id(bare_zone_id(id)).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = sdk_error("DeleteHostedZone", &format!("deleting DNS zone `{id}`"), e);
                if e.kind() == ErrorKind::NotFound {
                    Ok(())
                } else if aws_code(&e) == Some("HostedZoneNotEmpty") {
                    Err(ProviderError::new(
                        ErrorKind::Conflict,
                        format!("DNS zone `{id}` still holds records; delete its records first"),
                    )
                    .with_source(e))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The canonical hosted zone id of the load balancer answering at `dns_name`.
    async fn alias_zone_id(&self, dns_name: &str) -> ProviderResult<String> {
        let wanted = plain_name(dns_name);
        let wanted = wanted.strip_prefix("dualstack.").unwrap_or(&wanted).to_string();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .serving
                .elb
                .describe_load_balancers()
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeLoadBalancers", "finding the load balancer of an alias", e))?;
            for lb in out.load_balancers() {
                if lb.dns_name().map(plain_name).as_deref() == Some(wanted.as_str()) {
                    if let Some(z) = lb.canonical_hosted_zone_id() {
                        return Ok(z.to_string());
                    }
                }
            }
            match out.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        // Not one of this region's load balancers (or not visible yet): the region's ALB zone.
        let region = wanted.split('.').find(|l| ALB_ZONES.iter().any(|(r, _)| r == l)).unwrap_or(&self.region);
        ALB_ZONES.iter().find(|(r, _)| *r == region).map(|(_, z)| z.to_string()).ok_or_else(|| {
            invalid(format!(
                "alias target `{dns_name}` is no load balancer of region `{}`, and the canonical zone of region \
                 `{region}` is not known; point the alias to a load balancer of this stack",
                self.region
            ))
        })
    }
}

// ---- zones ----

fn check_zone_spec(p: &AwsProvider, spec: &DnsZoneSpec) -> ProviderResult<String> {
    let what = format!("DNS zone `{}`", spec.name);
    p.check_region(&what, &spec.region)?;
    p.check_name("DNS zone", &spec.name)?;
    if let Some(problem) = dns_name_problem(&spec.domain, NameRules::ZONE) {
        return Err(invalid(format!("{what}: domain `{}` {problem}", spec.domain)));
    }
    check_tags(&what, &spec.tags, 0)?;
    Ok(what)
}

#[async_trait::async_trait]
impl Api<DnsZone> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &DnsZoneSpec) -> ProviderResult<DnsZoneObserved> {
        let what = check_zone_spec(self, spec)?;
        let stack = spec.tags.get(TAG_STACK).cloned().unwrap_or_else(|| cx.stack.clone());
        let path = spec.tags.get(TAG_PATH).cloned().unwrap_or_else(|| spec.name.clone());
        let reference = format!("ks-{}", digest(&["dns-zone", &stack, &path, &spec.domain]));
        let created = self
            .serving
            .route53
            .create_hosted_zone()
            .name(&spec.domain)
            .caller_reference(&reference)
            .send()
            .await
            .map_err(|e| sdk_error("CreateHostedZone", &format!("creating {what}"), e));
        let (id, change) = match created {
            Ok(out) => {
                let z = out.hosted_zone().ok_or_else(|| invalid("internal: CreateHostedZone answered no zone"))?;
                (bare_zone_id(z.id()).to_string(), out.change_info().map(|c| (c.id().to_string(), c.status().clone())))
            }
            Err(e) if aws_code(&e) == Some("HostedZoneAlreadyExists") => {
                // A retried create: the zone made with this caller reference is ours.
                let mine = self
                    .all_zones()
                    .await?
                    .into_iter()
                    .find(|z| z.caller_reference() == reference && plain_name(z.name()) == spec.domain);
                match mine {
                    Some(z) => (bare_zone_id(z.id()).to_string(), None),
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let patience = self.settings.timeouts.follow_up;
        let untagged = BTreeMap::new();
        let tagged = follow_up(cx, patience, || self.sync_zone_tags(&id, &untagged, &spec.tags)).await;
        if let Err(e) = tagged {
            // An untagged zone would never be found again: take it back.
            if let Err(undo) = self.delete_zone_now(&id).await {
                tracing::warn!(zone = %id, error = %undo, "could not delete a DNS zone whose tagging failed");
            }
            return Err(e);
        }
        if let Some((change_id, status)) = change {
            self.wait_change(cx, &format!("creating {what}"), &change_id, &status).await?;
        }
        follow_up(cx, patience, || async {
            self.zone_observed(&id, &spec.tags)
                .await?
                .ok_or_else(|| ProviderError::not_found(format!("{what} `{id}` is not visible yet")))
        })
        .await
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DnsZoneObserved>> {
        let zones: Vec<(String, BTreeMap<String, String>)> = match sel {
            Selector::Ids(ids) => {
                let mut ids: Vec<String> = ids.iter().map(|i| bare_zone_id(i).to_string()).collect();
                ids.sort();
                ids.dedup();
                let mut found = Vec::new();
                for id in ids {
                    if self.hosted_zone(&id).await?.is_some() {
                        found.push(id);
                    }
                }
                self.zone_tags(&found).await?.into_iter().collect()
            }
            Selector::Stack(stack) => self.stack_zones(stack).await?,
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        };
        let mut out = Vec::new();
        for (id, tags) in zones {
            if let Some(z) = self.zone_observed(&id, &tags).await? {
                out.push(z);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, _cx: &OpContext, id: &str, spec: &DnsZoneSpec) -> ProviderResult<DnsZoneObserved> {
        let what = check_zone_spec(self, spec)?;
        let domain = self.zone_domain(id).await?;
        if domain != spec.domain {
            return Err(invalid(format!(
                "{what}: the domain of zone `{id}` is `{domain}` and cannot change to `{}`; replace the zone",
                spec.domain
            )));
        }
        let current = self.zone_tags(&[id.to_string()]).await?.remove(bare_zone_id(id)).unwrap_or_default();
        self.sync_zone_tags(id, &current, &spec.tags).await?;
        self.zone_observed(id, &spec.tags)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("{what} `{id}` does not exist")))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let Some(out) = self.hosted_zone(id).await? else { return Ok(()) };
        let domain = out.hosted_zone().map(|z| plain_name(z.name())).unwrap_or_default();
        let records = self.zone_records(id, &domain).await?;
        let mut foreign: Vec<String> = records.other.clone();
        let mut changes = Vec::new();
        for ((fqdn, t), set) in &records.sets {
            if fqdn == &domain && matches!(t, RecordType::Ns | RecordType::Soa) {
                continue;
            }
            match records.owned.get(&(fqdn.clone(), *t)) {
                // Validation records written for certificates: the zone's own.
                Some((o, owner)) if !o.owners.is_empty() => {
                    changes.push(change(ChangeAction::Delete, set.clone())?);
                    changes.push(change(ChangeAction::Delete, owner.clone())?);
                }
                Some((o, _)) => foreign.push(format!(
                    "{fqdn} {t} (the Konstacks record `{}`)",
                    o.tags.get(TAG_PATH).cloned().unwrap_or_default()
                )),
                None => foreign.push(format!("{fqdn} {t}")),
            }
        }
        // Ownership records whose record is gone are leftovers of an interrupted delete.
        for (key, (_, owner)) in &records.owned {
            if !records.sets.contains_key(key) {
                changes.push(change(ChangeAction::Delete, owner.clone())?);
            }
        }
        if !foreign.is_empty() {
            foreign.sort();
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                format!(
                    "DNS zone `{id}` ({domain}) still holds {} record(s) Konstacks does not manage for it: {}; \
                     delete them (or their Konstacks resources) first",
                    foreign.len(),
                    foreign.join(", ")
                ),
            ));
        }
        self.change_records(cx, id, &format!("removing the managed records of DNS zone `{id}`"), changes).await?;
        self.delete_zone_now(id).await
    }
}

// ---- records ----

/// Check a record spec before any call; the zone-dependent checks come later.
fn check_record_spec(p: &AwsProvider, spec: &DnsRecordSpec) -> ProviderResult<String> {
    let t = spec.record_type;
    let what = format!("DNS record `{}` ({} {t})", spec.name, spec.fqdn);
    p.check_region(&what, &spec.region)?;
    p.check_name("DNS record", &spec.name)?;
    if rr_type(t).is_none() {
        return Err(invalid(format!("{what}: Route 53 keeps {t} records itself; Konstacks does not write them")));
    }
    if let Some(problem) = dns_name_problem(&spec.fqdn, NameRules::RECORD) {
        return Err(invalid(format!("{what}: name `{}` {problem}", spec.fqdn)));
    }
    if spec.values.is_empty() {
        return Err(invalid(format!("{what}: the record has no values")));
    }
    if matches!(t, RecordType::Cname | RecordType::Alias) && spec.values.len() != 1 {
        return Err(invalid(format!("{what}: a {t} record has exactly one value")));
    }
    let mut seen = BTreeSet::new();
    for v in &spec.values {
        if let Some((_, message)) = value_problem(t, v) {
            return Err(invalid(format!("{what}: {message}")));
        }
        if !seen.insert(v) {
            return Err(invalid(format!("{what}: the value `{v}` is listed twice")));
        }
    }
    match (t, spec.ttl) {
        (RecordType::Alias, None) => {}
        (RecordType::Alias, Some(_)) => return Err(invalid(format!("{what}: an alias record takes no TTL"))),
        (_, Some(n)) if (MIN_TTL..=MAX_TTL).contains(&n) => {}
        (_, n) => return Err(invalid(format!("{what}: TTL {n:?} is outside {MIN_TTL}..={MAX_TTL} seconds"))),
    }
    check_record_tags(&what, &spec.tags)?;
    Ok(what)
}

impl AwsProvider {
    /// The record set `spec` asks for.
    async fn record_set(&self, spec: &DnsRecordSpec) -> ProviderResult<ResourceRecordSet> {
        if spec.record_type != RecordType::Alias {
            return plain_set(&spec.fqdn, spec.record_type, &spec.values, spec.ttl.unwrap_or(300));
        }
        let target = spec.values.first().map(String::as_str).unwrap_or_default();
        let zone = self.alias_zone_id(target).await?;
        let alias = AliasTarget::builder()
            .hosted_zone_id(zone)
            .dns_name(strip_root(target))
            .evaluate_target_health(true)
            .build()
            .map_err(|e| invalid(format!("internal: an alias: {e}")))?;
        ResourceRecordSet::builder()
            .name(&spec.fqdn)
            .r#type(RrType::A)
            .alias_target(alias)
            .build()
            .map_err(|e| invalid(format!("internal: a record set: {e}")))
    }

    fn record_observed(
        &self,
        zone_id: &str,
        fqdn: &str,
        t: RecordType,
        set: &ResourceRecordSet,
        o: Option<&Ownership>,
    ) -> DnsRecordObserved {
        let tags = o.map(|o| o.tags.clone()).unwrap_or_default();
        DnsRecordObserved {
            id: record_id(zone_id, fqdn, t),
            name: name_of(&tags),
            region: self.region.clone(),
            zone_id: bare_zone_id(zone_id).to_string(),
            fqdn: fqdn.to_string(),
            record_type: t,
            values: values_of(set, t),
            ttl: if t == RecordType::Alias { None } else { set.ttl().and_then(|n| u32::try_from(n).ok()) },
            tags: visible_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        }
    }

    /// The records of zone `zone_id` Konstacks wrote (those with an ownership record).
    async fn records_in(&self, zone_id: &str, domain: &str) -> ProviderResult<Vec<DnsRecordObserved>> {
        let recs = self.zone_records(zone_id, domain).await?;
        Ok(recs
            .sets
            .iter()
            .filter_map(|((fqdn, t), set)| {
                let (o, _) = recs.owned.get(&(fqdn.clone(), *t))?;
                o.owners.is_empty().then(|| self.record_observed(zone_id, fqdn, *t, set, Some(o)))
            })
            .collect())
    }

    /// Write the record and its ownership record in one batch.
    async fn write_record(
        &self,
        cx: &OpContext,
        spec: &DnsRecordSpec,
        action: ChangeAction,
        what: &str,
    ) -> ProviderResult<()> {
        let domain = self.zone_domain(&spec.zone_id).await?;
        if !within(&spec.fqdn, &domain) {
            return Err(invalid(format!("{what}: `{}` is not within the zone's domain `{domain}`", spec.fqdn)));
        }
        let t = spec.record_type;
        if t == RecordType::Cname && spec.fqdn == domain {
            return Err(invalid(format!(
                "{what}: a CNAME cannot sit at the apex of zone `{domain}`; use an alias (or A/AAAA records)"
            )));
        }
        let recs = self.zone_records(&spec.zone_id, &domain).await?;
        for ((fqdn, other), _) in recs.sets.range((spec.fqdn.clone(), RecordType::A)..) {
            if fqdn != &spec.fqdn {
                break;
            }
            if *other == t {
                let ours = recs
                    .owned
                    .get(&(fqdn.clone(), t))
                    .is_some_and(|(o, _)| o.tags.get(TAG_PATH) == spec.tags.get(TAG_PATH));
                if action == ChangeAction::Create && !ours {
                    return Err(ProviderError::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "{what}: zone `{}` already has a {t} record `{fqdn}`; adopt it or delete it first",
                            spec.zone_id
                        ),
                    ));
                }
            } else if !t.may_share_name_with(*other)
                && !(matches!((t, *other), (RecordType::Alias, RecordType::A) | (RecordType::A, RecordType::Alias)))
            {
                return Err(ProviderError::new(
                    ErrorKind::Conflict,
                    format!(
                        "{what}: a {t} record cannot share the name `{fqdn}` with its {other} record; delete one first"
                    ),
                ));
            } else if matches!((t, *other), (RecordType::Alias, RecordType::A) | (RecordType::A, RecordType::Alias)) {
                return Err(ProviderError::new(
                    ErrorKind::Conflict,
                    format!(
                        "{what}: `{fqdn}` already has an {other} record; an alias and A records exclude each other"
                    ),
                ));
            }
        }
        let set = self.record_set(spec).await?;
        let ownership = Ownership {
            fqdn: spec.fqdn.clone(),
            record_type: Some(t),
            tags: spec.tags.clone(),
            owners: BTreeSet::new(),
        };
        let changes =
            vec![change(ChangeAction::Upsert, set)?, change(ChangeAction::Upsert, owner_set(&domain, &ownership)?)?];
        self.change_records(cx, &spec.zone_id, what, changes).await
    }
}

#[async_trait::async_trait]
impl Api<DnsRecord> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &DnsRecordSpec) -> ProviderResult<DnsRecordObserved> {
        let what = check_record_spec(self, spec)?;
        self.write_record(cx, spec, ChangeAction::Create, &format!("creating {what}")).await?;
        let id = record_id(&spec.zone_id, &spec.fqdn, spec.record_type);
        let patience = self.settings.timeouts.follow_up;
        follow_up_create(cx, patience, || async {
            let found = <Self as Api<DnsRecord>>::read_many(self, cx, &Selector::Ids(vec![id.clone()])).await?;
            found.into_iter().next().ok_or_else(|| ProviderError::not_found(format!("{what} is not visible yet")))
        })
        .await
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DnsRecordObserved>> {
        let mut out = Vec::new();
        match sel {
            Selector::Ids(ids) => {
                let mut by_zone: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for id in ids {
                    if let Some((zone, _, _)) = parse_record_id(id) {
                        by_zone.entry(zone).or_default().insert(id.clone());
                    }
                }
                for (zone, wanted) in by_zone {
                    let Ok(domain) = self.zone_domain(&zone).await else { continue };
                    out.extend(self.records_in(&zone, &domain).await?.into_iter().filter(|r| wanted.contains(&r.id)));
                }
            }
            Selector::Stack(stack) => {
                for (zone, _) in self.stack_zones(stack).await? {
                    let Ok(domain) = self.zone_domain(&zone).await else { continue };
                    out.extend(
                        self.records_in(&zone, &domain)
                            .await?
                            .into_iter()
                            .filter(|r| r.tags.get(TAG_STACK) == Some(stack)),
                    );
                }
            }
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &DnsRecordSpec) -> ProviderResult<DnsRecordObserved> {
        let what = check_record_spec(self, spec)?;
        let Some((zone, fqdn, t)) = parse_record_id(id) else {
            return Err(ProviderError::not_found(format!("DNS record `{id}` is no Route 53 record id")));
        };
        if zone != bare_zone_id(&spec.zone_id) || fqdn != spec.fqdn || t != spec.record_type {
            return Err(invalid(format!(
                "{what}: the zone, name and type of record `{id}` cannot change; replace the record"
            )));
        }
        self.write_record(cx, spec, ChangeAction::Upsert, &format!("updating {what}")).await?;
        let found = <Self as Api<DnsRecord>>::read_many(self, cx, &Selector::Ids(vec![id.to_string()])).await?;
        found.into_iter().next().ok_or_else(|| ProviderError::not_found(format!("{what} vanished after its update")))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let Some((zone, fqdn, t)) = parse_record_id(id) else { return Ok(()) };
        let Some(out) = self.hosted_zone(&zone).await? else { return Ok(()) };
        let domain = out.hosted_zone().map(|z| plain_name(z.name())).unwrap_or_default();
        let recs = self.zone_records(&zone, &domain).await?;
        let key = (fqdn.clone(), t);
        let mut changes = Vec::new();
        if let Some(set) = recs.sets.get(&key) {
            changes.push(change(ChangeAction::Delete, set.clone())?);
        }
        if let Some((_, owner)) = recs.owned.get(&key) {
            changes.push(change(ChangeAction::Delete, owner.clone())?);
        }
        let result = self.change_records(cx, &zone, &format!("deleting DNS record `{id}`"), changes).await;
        match result {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// Write validation CNAMEs of certificate `arn` into zone `zone_id` (with ownership records
/// naming the certificate). Records already there with the same value are shared.
pub(crate) async fn write_validation_records(
    p: &AwsProvider,
    cx: &OpContext,
    zone_id: &str,
    arn: &str,
    records: &[(String, String)],
) -> ProviderResult<()> {
    let domain = p.zone_domain(zone_id).await?;
    let recs = p.zone_records(zone_id, &domain).await?;
    let mut changes = Vec::new();
    for (name, value) in records.iter().filter(|(n, _)| within(n, &domain)) {
        let key = (name.clone(), RecordType::Cname);
        let existing = recs.sets.get(&key);
        if let Some(set) = existing {
            let same = values_of(set, RecordType::Cname) == vec![strip_root(value).to_string()];
            if !same {
                return Err(ProviderError::new(
                    ErrorKind::Conflict,
                    format!(
                        "the validation record `{name}` cannot be written: zone `{zone_id}` holds another CNAME there"
                    ),
                ));
            }
        }
        let mut o = match recs.owned.get(&key) {
            Some((o, _)) if !o.owners.is_empty() => o.clone(),
            // A record of a user (or of another tool) with the right value validates as well.
            _ if existing.is_some() => continue,
            _ => Ownership { fqdn: name.clone(), record_type: Some(RecordType::Cname), ..Default::default() },
        };
        o.owners.insert(arn.to_string());
        changes.push(change(ChangeAction::Upsert, plain_set(name, RecordType::Cname, &[value.clone()], 300)?)?);
        changes.push(change(ChangeAction::Upsert, owner_set(&domain, &o)?)?);
    }
    p.change_records(cx, zone_id, &format!("writing the validation records of certificate `{arn}`"), changes).await
}

/// Remove certificate `arn` from the owners of the validation records in zone `zone_id`, and
/// delete those it was the last owner of.
pub(crate) async fn remove_validation_records(
    p: &AwsProvider,
    cx: &OpContext,
    zone_id: &str,
    arn: &str,
) -> ProviderResult<()> {
    let Some(out) = p.hosted_zone(zone_id).await? else { return Ok(()) };
    let domain = out.hosted_zone().map(|z| plain_name(z.name())).unwrap_or_default();
    let recs = p.zone_records(zone_id, &domain).await?;
    let mut changes = Vec::new();
    for (key, (o, owner)) in &recs.owned {
        if !o.owners.contains(arn) {
            continue;
        }
        let mut rest = o.clone();
        rest.owners.remove(arn);
        if rest.owners.is_empty() {
            if let Some(set) = recs.sets.get(key) {
                changes.push(change(ChangeAction::Delete, set.clone())?);
            }
            changes.push(change(ChangeAction::Delete, owner.clone())?);
        } else {
            changes.push(change(ChangeAction::Upsert, owner_set(&domain, &rest)?)?);
        }
    }
    p.change_records(cx, zone_id, &format!("removing the validation records of certificate `{arn}`"), changes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_values_round_trip() {
        let v = "say \"hi\" \\ bye";
        assert_eq!(unquote_strings(&txt_value(v)).concat(), v);
        let long = "k".repeat(600);
        assert_eq!(unquote_strings(&txt_value(&long)).concat(), long);
        assert_eq!(unquote_strings("\"a\\065b\""), vec!["aAb".to_string()]);
    }

    #[test]
    fn names_are_unescaped() {
        assert_eq!(plain_name("\\052.Example.com."), "*.example.com");
        assert_eq!(plain_name("www.example.com"), "www.example.com");
    }

    #[test]
    fn record_ids_round_trip() {
        let id = record_id("/hostedzone/Z1", "www.example.com", RecordType::Alias);
        assert_eq!(id, "Z1/www.example.com/ALIAS");
        assert_eq!(parse_record_id(&id), Some(("Z1".into(), "www.example.com".into(), RecordType::Alias)));
        assert_eq!(parse_record_id("Z1/www.example.com/ZZ"), None);
    }

    #[test]
    fn ownership_round_trips() {
        let o = Ownership {
            fqdn: "www.example.com".into(),
            record_type: Some(RecordType::A),
            tags: BTreeMap::from([("konstacks:stack".into(), "shop \"x\"".into())]),
            owners: BTreeSet::from(["arn:aws:acm:1".to_string()]),
        };
        assert_eq!(Ownership::parse(&unquote_strings(&o.value())), Some(o));
    }
}
