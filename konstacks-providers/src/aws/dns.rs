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
    Change, ChangeAction, ChangeBatch, ChangeStatus, HostedZone, ResourceRecord, ResourceRecordSet, RrType,
    TagResourceType,
};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::dns_record::TXT_STRING_LEN;
use konstacks_core::kinds::dns_zone::{strip_root, within};
use konstacks_core::kinds::RecordType;
use konstacks_core::provider::ProviderResult;
use konstacks_core::spec::{Tags, TAG_STACK};

use super::error::{aws_code, invalid, sdk_error};
use super::{check_tags, digest, wait_for, AwsProvider, Polled};

/// The string of an ownership record that names the record it describes.
pub(super) const RECORD_MARK: &str = "konstacks-record=";
/// Prefix of the ownership record names.
pub(super) const OWNER_PREFIX: &str = "_konstacks-";
/// Tag (inside an ownership record) naming a certificate that owns a validation record.
pub(crate) const TAG_OWNER: &str = "konstacks:aws:owner";
/// TTL of ownership records.
pub(super) const OWNER_TTL: i64 = 300;
/// Route 53 accepts at most 10 tag changes per ChangeTagsForResource call and 10 zones per
/// ListTagsForResources call.
pub(super) const TAG_BATCH: usize = 10;
/// How long a change may take to reach every Route 53 server.
pub(super) const CHANGE_LIMIT: Duration = Duration::from_secs(10 * 60);
/// Owner of the records a zone keeps by itself.
pub(super) const ZONE_OWNER: &str = "zone";

// ---- names, values and ownership records ----

/// A zone id without the `/hostedzone/` prefix.
pub(super) fn bare_zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

/// A name as Route 53 returns it (`\052.example.com.`) in plain form (`*.example.com`).
pub(super) fn plain_name(name: &str) -> String {
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
pub(super) fn quote(s: &str) -> String {
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
pub(super) fn unquote_strings(v: &str) -> Vec<String> {
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
pub(super) fn txt_value(text: &str) -> String {
    konstacks_core::kinds::dns_record::txt_strings(text).iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ")
}

/// The Route 53 type of a record type, `None` for the types Konstacks does not write.
pub(super) fn rr_type(t: RecordType) -> Option<RrType> {
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

/// The Konstacks type of a record set.
pub(super) fn type_of_set(r: &ResourceRecordSet) -> Option<RecordType> {
    if r.alias_target().is_some() {
        return Some(RecordType::Alias);
    }
    RecordType::from_name(r.r#type().as_str())
}

/// The id of a record.
pub(super) fn record_id(zone_id: &str, fqdn: &str, t: RecordType) -> String {
    format!("{}/{fqdn}/{}", bare_zone_id(zone_id), t.as_str())
}

/// `(zone id, fqdn, type)` of a record id; `None` for an id of another shape.
pub(super) fn parse_record_id(id: &str) -> Option<(String, String, RecordType)> {
    let (zone, rest) = id.split_once('/')?;
    let (fqdn, t) = rest.rsplit_once('/')?;
    if zone.is_empty() || fqdn.is_empty() {
        return None;
    }
    Some((zone.to_string(), fqdn.to_string(), RecordType::from_name(t)?))
}

/// Name of the ownership record of `(fqdn, t)` in `zone` (its domain).
pub(super) fn owner_name(zone: &str, fqdn: &str, t: RecordType) -> String {
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
    pub(super) fn parse(strings: &[String]) -> Option<Ownership> {
        let mark = strings.iter().find_map(|s| s.strip_prefix(RECORD_MARK))?;
        let (fqdn, t) = mark.rsplit_once(' ')?;
        let mut o = Ownership { fqdn: fqdn.to_string(), record_type: RecordType::from_name(t), ..Default::default() };
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

    pub(super) fn value(&self) -> String {
        let t = self.record_type.map(RecordType::as_str).unwrap_or("CNAME");
        let mut strings = vec![format!("{RECORD_MARK}{} {t}", self.fqdn)];
        strings.extend(self.tags.iter().map(|(k, v)| format!("{k}={v}")));
        strings.extend(self.owners.iter().map(|o| format!("{TAG_OWNER}={o}")));
        strings.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ")
    }
}

/// Refuse tags that do not fit in one TXT string each, before any call.
pub(super) fn check_record_tags(what: &str, tags: &Tags) -> ProviderResult<()> {
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

pub(super) fn rr(value: impl Into<String>) -> ProviderResult<ResourceRecord> {
    ResourceRecord::builder().value(value).build().map_err(|e| invalid(format!("internal: a DNS value: {e}")))
}

pub(super) fn change(action: ChangeAction, set: ResourceRecordSet) -> ProviderResult<Change> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| invalid(format!("internal: a DNS change: {e}")))
}

/// The ownership record set of `o` in `zone`.
pub(super) fn owner_set(zone: &str, o: &Ownership) -> ProviderResult<ResourceRecordSet> {
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
pub(super) fn values_of(r: &ResourceRecordSet, t: RecordType) -> Vec<String> {
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
    // Route 53 keeps the values in the order they were written: no sorting, so a spec's order
    // reads back unchanged.
    out.dedup();
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

    pub(super) async fn wait_change(
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
    pub(super) async fn zone_tags(&self, ids: &[String]) -> ProviderResult<BTreeMap<String, BTreeMap<String, String>>> {
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
    pub(super) async fn all_zones(&self) -> ProviderResult<Vec<HostedZone>> {
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
        changes
            .push(change(ChangeAction::Upsert, plain_set(name, RecordType::Cname, std::slice::from_ref(value), 300)?)?);
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
        assert_eq!(unquote_strings("\"a\\101b\""), vec!["aAb".to_string()]);
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
