//! DNS zones (Cloud DNS public managed zones) and DNS records (Cloud DNS resource record sets).
//!
//! How the model maps onto Cloud DNS, and why:
//! - **Zones** are public managed zones named after the zone's physical name (the zone's id),
//!   with the domain as `dnsName` (trailing dot). Managed zones have labels: they carry
//!   Konstacks' tags and the stack's region the way instances do (see [`labels`]), so a read by
//!   stack lists the project's zones and keeps those whose labels name the stack. Cloud DNS
//!   creates the apex `SOA` and `NS` record sets with every zone: they are the zone's managed
//!   records, and the `NS` values are the name servers to delegate to.
//! - **Records** are record sets, known by zone, name and type: the id is
//!   `<zone>/<fqdn>/<TYPE>` (`shop-zone/www.shop.example.com/A`), enough to find the set again.
//!   Record sets have neither labels nor a description, so each one Konstacks writes gets an
//!   *ownership record* beside it in the same zone, as the AWS backend does on Route 53: a TXT
//!   record set `_konstacks-<digest of name and type>.<zone>` whose text is the record's
//!   Konstacks payload (the JSON of [`labels::Payload`]: its tags, physical name, region, and
//!   which record it describes). Reads pair the two again, so tags read back exactly and the
//!   engine's adoption by tags works after a crash; a read by stack lists the record sets of the
//!   stack's zones that have an ownership record of the stack (record sets someone added by hand
//!   are left out). A zone's labels could not hold them (64 labels of 63 characters) and its
//!   description (1024 characters) only a few. Ownership records are public DNS data, like
//!   external-dns' TXT registry: they show stack names and paths to anyone who queries them.
//!   The certificate module keeps the tags of a certificate updated after its creation in the
//!   same kind of record in its validation zone.
//! - **Values**: host names (CNAME, MX) get their trailing dot on the wire; TXT values travel as
//!   quoted strings of at most 255 characters, as Cloud DNS shows them; A, AAAA and CAA values
//!   as they are. An alias (the apex record of a load balancer) becomes an `A` record when its
//!   target is an IPv4 address (a Google load balancer's address) and reads back as the alias;
//!   an alias to a host name is refused before any request: Cloud DNS serves no CNAME-like
//!   record at the apex.
//! - **Deleting a zone** removes the ownership records whose record is gone (leftovers of an
//!   interrupted delete) and the certificate tag records; any other record set besides the apex
//!   `SOA`/`NS` makes the delete fail with a conflict that names it, before Cloud DNS would
//!   refuse it (`containerNotEmpty`), which maps to the same conflict.
//!
//! Reads are batched: one paginated `managedZones.list`, and one paginated
//! `resourceRecordSets.list` per zone read, whatever the number of records asked for.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use google_cloud_dns_v1::model::managed_zone::Visibility;
use google_cloud_dns_v1::model::{ManagedZone, ResourceRecordSet};
use google_cloud_gax::error::Error as GaxError;
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::dns_record::txt_strings;
use konstacks_core::kinds::dns_zone::{dns_name_problem, strip_root, within, NameRules};
use konstacks_core::kinds::{
    DnsRecord, DnsRecordObserved, DnsRecordSpec, DnsZone, DnsZoneObserved, DnsZoneSpec, ManagedRecord, RecordType,
};
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{Selector, Tags, TAG_PATH, TAG_STACK};

use super::labels::{self, Payload};
use super::network::all_pages;
use super::{error, immutable, invalid, Gcp};

/// Prefix of the ownership record names.
pub(super) const OWNER_PREFIX: &str = "_konstacks-";
/// TTL of ownership records.
const OWNER_TTL: i32 = 300;
/// TTL of the `A` record an alias becomes (an alias has no TTL of its own).
const ALIAS_TTL: i32 = 300;
/// Owner of the records a zone keeps by itself.
const ZONE_OWNER: &str = "zone";
/// Payload field naming the record (`<fqdn> <TYPE>`) an ownership record describes.
const RECORD_OF: &str = "record";
/// Payload field naming the certificate whose tags an ownership record holds.
pub(super) const CERT_OF: &str = "certificate";
/// Longest managed zone name.
const MAX_ZONE_NAME: usize = 63;

// ---- names, values and ownership records ----

/// A name with its trailing dot, as Cloud DNS writes names.
pub(super) fn dotted(name: &str) -> String {
    format!("{}.", strip_root(name))
}

/// A Cloud DNS name (`www.example.com.`) in plain form (`www.example.com`).
fn plain(name: &str) -> String {
    strip_root(name).to_ascii_lowercase()
}

/// `<zone>/<fqdn>/<TYPE>`.
fn record_id(zone: &str, fqdn: &str, t: RecordType) -> String {
    format!("{zone}/{fqdn}/{t}")
}

/// `(zone, fqdn, type)` of a record id; `None` for an id that is not one.
fn parse_record_id(id: &str) -> Option<(String, String, RecordType)> {
    let mut parts = id.split('/');
    let (zone, fqdn, t) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || zone.is_empty() || fqdn.is_empty() {
        return None;
    }
    Some((zone.to_string(), fqdn.to_string(), RecordType::from_name(t)?))
}

/// The Cloud DNS type of a record type, `None` for the types Konstacks does not write.
fn wire_type(t: RecordType) -> Option<&'static str> {
    Some(match t {
        RecordType::A | RecordType::Alias => "A",
        RecordType::Aaaa => "AAAA",
        RecordType::Cname => "CNAME",
        RecordType::Txt => "TXT",
        RecordType::Mx => "MX",
        RecordType::Caa => "CAA",
        _ => return None,
    })
}

/// FNV-1a of the parts, 16 hex digits.
pub(super) fn digest(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The name of the ownership record of the record `fqdn`/`t` in the zone of `domain`.
fn owner_name(fqdn: &str, t: &str, domain: &str) -> String {
    format!("{OWNER_PREFIX}{}.{domain}", digest(&["record", fqdn, t]))
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

/// A TXT rrdata (`"a" "b"`, or a bare word) as its strings, unquoted.
fn unquote_strings(v: &str) -> Vec<String> {
    let v = v.trim();
    if !v.starts_with('"') {
        return v.split_whitespace().map(str::to_string).collect();
    }
    let mut out = Vec::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => s.extend(chars.next()),
                '"' => break,
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// A text as the TXT rrdata Cloud DNS shows: quoted strings of at most 255 characters.
fn txt_rrdata(text: &str) -> String {
    txt_strings(text).iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ")
}

/// The rrdatas of a spec's values.
fn to_rrdatas(spec: &DnsRecordSpec) -> ProviderResult<Vec<String>> {
    let mut out = Vec::new();
    for v in &spec.values {
        out.push(match spec.record_type {
            RecordType::Cname => dotted(v),
            RecordType::Mx => match v.split_once(' ') {
                Some((p, h)) => format!("{p} {}", dotted(h)),
                None => return Err(invalid(format!("MX value `{v}` is not `priority host`"))),
            },
            RecordType::Txt => txt_rrdata(v),
            RecordType::Alias => {
                if v.parse::<Ipv4Addr>().is_err() {
                    return Err(invalid(format!(
                        "DNS record `{}`: an alias on GCP must point to an IPv4 address (a load balancer's), not \
                         `{v}`: Cloud DNS serves no CNAME-like record at the apex",
                        spec.name
                    )));
                }
                v.clone()
            }
            _ => v.clone(),
        });
    }
    Ok(out)
}

/// The spec values of a record set's rrdatas.
fn from_rrdatas(t: RecordType, rrdatas: &[String]) -> Vec<String> {
    rrdatas
        .iter()
        .map(|v| match t {
            RecordType::Cname | RecordType::Ns => plain(v),
            RecordType::Mx => match v.split_once(' ') {
                Some((p, h)) => format!("{p} {}", plain(h)),
                None => v.clone(),
            },
            RecordType::Txt => unquote_strings(v).concat(),
            _ => v.clone(),
        })
        .collect()
}

/// The payload an ownership record holds.
pub(super) fn owner_payload(set: &ResourceRecordSet) -> Option<Payload> {
    let text: String = set.rrdatas.iter().flat_map(|v| unquote_strings(v)).collect();
    serde_json::from_str(&text).ok()
}

/// The ownership record set holding `payload`.
fn owner_set(name: &str, payload: &Payload) -> ResourceRecordSet {
    // A map of strings always serializes.
    let text = serde_json::to_string(payload).unwrap_or_default();
    let mut set = ResourceRecordSet::default();
    set.name = Some(dotted(name));
    set.r#type = Some("TXT".into());
    set.ttl = Some(OWNER_TTL);
    set.rrdatas = vec![txt_rrdata(&text)];
    set
}

fn check_zone_name(name: &str) -> ProviderResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ZONE_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        return Ok(());
    }
    Err(invalid(format!(
        "`{name}` is not a Cloud DNS zone name: 1 to {MAX_ZONE_NAME} characters of a-z, 0-9 and '-', starting \
         with a letter and not ending with '-'"
    )))
}

/// The record sets of one zone, by (plain name, Cloud DNS type).
#[derive(Debug, Default)]
pub(super) struct ZoneSets {
    /// The zone's domain.
    pub(super) domain: String,
    /// Every record set.
    pub(super) sets: BTreeMap<(String, String), ResourceRecordSet>,
}

impl ZoneSets {
    fn get(&self, name: &str, t: &str) -> Option<&ResourceRecordSet> {
        self.sets.get(&(name.to_string(), t.to_string()))
    }

    /// The ownership payload of the record `fqdn`/`t`, if it has one.
    fn owner_of(&self, fqdn: &str, t: &str) -> Option<Payload> {
        self.get(&owner_name(fqdn, t, &self.domain), "TXT").and_then(owner_payload)
    }
}

/// The observed record of a record set and its ownership payload.
fn record_observed(zone: &str, set: &ResourceRecordSet, owner: Option<&Payload>) -> Option<DnsRecordObserved> {
    let fqdn = plain(set.name.as_deref()?);
    let alias = owner.and_then(|p| p.get("alias")) == Some("1");
    let t = if alias { RecordType::Alias } else { RecordType::from_name(set.r#type.as_deref()?)? };
    let tags = owner.map(|p| p.tags.clone()).unwrap_or_default();
    Some(DnsRecordObserved {
        id: record_id(zone, &fqdn, t),
        name: owner.and_then(|p| p.get("name")).map(str::to_string).unwrap_or_else(|| fqdn.clone()),
        region: owner.and_then(|p| p.get("region")).unwrap_or_default().to_string(),
        zone_id: zone.to_string(),
        fqdn,
        record_type: t,
        values: from_rrdatas(t, &set.rrdatas),
        ttl: if alias { None } else { set.ttl.and_then(|t| u32::try_from(t).ok()) },
        tags,
    })
}

fn not_found(e: &ProviderError) -> bool {
    e.kind() == ErrorKind::NotFound
}

impl Gcp {
    async fn get_zone(&self, name: &str) -> ProviderResult<Option<ManagedZone>> {
        match self.managed_zones.get().set_project(&self.project).set_managed_zone(name).send().await {
            Ok(z) => Ok(Some(z)),
            Err(e) if e.http_status_code() == Some(404) => Ok(None),
            Err(e) => Err(error::api(format!("reading DNS zone `{name}`"), e)),
        }
    }

    async fn list_zones(&self) -> ProviderResult<Vec<ManagedZone>> {
        all_pages(|token| {
            let req = self.managed_zones.list().set_project(&self.project).set_page_token(token);
            async move { req.send().await.map(|p| (p.managed_zones, p.next_page_token)) }
        })
        .await
        .map_err(|e| error::api("listing DNS zones", e))
    }

    /// The domain of zone `zone`.
    pub(super) async fn zone_domain(&self, zone: &str) -> ProviderResult<String> {
        let z = self
            .get_zone(zone)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("DNS zone `{zone}` does not exist")))?;
        Ok(plain(z.dns_name.as_deref().unwrap_or_default()))
    }

    /// Every record set of zone `zone` (of `domain`); `None` when the zone does not exist.
    pub(super) async fn zone_sets(&self, zone: &str, domain: &str) -> ProviderResult<Option<ZoneSets>> {
        let listed = all_pages(|token| {
            let req = self.record_sets.list().set_project(&self.project).set_managed_zone(zone).set_page_token(token);
            async move { req.send().await.map(|p| (p.rrsets, p.next_page_token)) }
        })
        .await;
        let sets = match listed {
            Ok(s) => s,
            Err(e) if e.http_status_code() == Some(404) => return Ok(None),
            Err(e) => return Err(error::api(format!("listing the records of DNS zone `{zone}`"), e)),
        };
        let mut out = ZoneSets { domain: domain.to_string(), sets: BTreeMap::new() };
        for s in sets {
            if let (Some(n), Some(t)) = (s.name.as_deref(), s.r#type.clone()) {
                out.sets.insert((plain(n), t), s);
            }
        }
        Ok(Some(out))
    }

    /// The one record set `name`/`t` of zone `zone`, if it exists (a filtered list: no 404 for
    /// a set that is absent).
    pub(super) async fn find_set(&self, zone: &str, name: &str, t: &str) -> ProviderResult<Option<ResourceRecordSet>> {
        let sent = self
            .record_sets
            .list()
            .set_project(&self.project)
            .set_managed_zone(zone)
            .set_name(dotted(name))
            .set_type(t)
            .send()
            .await;
        match sent {
            Ok(p) => Ok(p.rrsets.into_iter().next()),
            Err(e) if e.http_status_code() == Some(404) => Ok(None),
            Err(e) => Err(error::api(format!("reading record `{name}` ({t}) of DNS zone `{zone}`"), e)),
        }
    }

    async fn create_set(&self, zone: &str, set: ResourceRecordSet) -> Result<ResourceRecordSet, GaxError> {
        self.record_sets.create().set_project(&self.project).set_managed_zone(zone).set_body(set).send().await
    }

    async fn patch_set(&self, zone: &str, set: ResourceRecordSet) -> Result<ResourceRecordSet, GaxError> {
        let (name, t) = (set.name.clone().unwrap_or_default(), set.r#type.clone().unwrap_or_default());
        self.record_sets
            .patch()
            .set_project(&self.project)
            .set_managed_zone(zone)
            .set_name(name)
            .set_type(t)
            .set_body(set)
            .send()
            .await
    }

    /// Delete record set `name`/`t` of zone `zone`; one that is gone is deleted.
    pub(super) async fn delete_set(&self, zone: &str, name: &str, t: &str) -> ProviderResult<()> {
        let sent = self
            .record_sets
            .delete()
            .set_project(&self.project)
            .set_managed_zone(zone)
            .set_name(dotted(name))
            .set_type(t)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if e.http_status_code() == Some(404) => Ok(()),
            Err(e) => Err(error::api(format!("deleting record `{name}` ({t}) of DNS zone `{zone}`"), e)),
        }
    }

    /// Write the ownership record `name` of zone `zone` with `payload` (create, or patch the one
    /// that exists).
    pub(super) async fn write_owner(&self, zone: &str, name: &str, payload: &Payload) -> ProviderResult<()> {
        let what = format!("writing the ownership record `{name}` in DNS zone `{zone}`");
        match self.create_set(zone, owner_set(name, payload)).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status_code() == Some(409) => {
                self.patch_set(zone, owner_set(name, payload)).await.map(|_| ()).map_err(|e| error::api(&what, e))
            }
            Err(e) => Err(error::api(&what, e)),
        }
    }

    fn zone_observed(&self, z: &ManagedZone, sets: Option<&ZoneSets>) -> DnsZoneObserved {
        let payload = labels::from_labels(&z.labels);
        let name = z.name.clone().unwrap_or_default();
        let domain = plain(z.dns_name.as_deref().unwrap_or_default());
        let mut name_servers: Vec<String> = z.name_servers.iter().map(|n| plain(n)).collect();
        let mut managed = Vec::new();
        for ((n, t), set) in sets.map(|s| &s.sets).into_iter().flatten() {
            let rt = match t.as_str() {
                "NS" => RecordType::Ns,
                "SOA" => RecordType::Soa,
                _ => continue,
            };
            if n != &domain {
                continue;
            }
            let values = if rt == RecordType::Ns { from_rrdatas(rt, &set.rrdatas) } else { set.rrdatas.clone() };
            if rt == RecordType::Ns && name_servers.is_empty() {
                name_servers = values.clone();
            }
            for value in values {
                managed.push(ManagedRecord { fqdn: n.clone(), record_type: rt, value, owner: ZONE_OWNER.into() });
            }
        }
        managed.sort();
        DnsZoneObserved {
            id: name.clone(),
            name,
            region: payload.get("region").unwrap_or(&self.region).to_string(),
            domain,
            name_servers,
            managed_records: managed,
            tags: payload.tags,
        }
    }

    async fn zone_observed_now(&self, z: &ManagedZone) -> ProviderResult<DnsZoneObserved> {
        let name = z.name.clone().unwrap_or_default();
        let domain = plain(z.dns_name.as_deref().unwrap_or_default());
        let sets = self.zone_sets(&name, &domain).await?;
        Ok(self.zone_observed(z, sets.as_ref()))
    }
}

// ---- zones ----

fn check_zone_spec(p: &Gcp, spec: &DnsZoneSpec) -> ProviderResult<Payload> {
    p.check_region(&spec.region)?;
    check_zone_name(&spec.name)?;
    if let Some(problem) = dns_name_problem(&spec.domain, NameRules::ZONE) {
        return Err(invalid(format!("DNS zone `{}`: domain `{}` {problem}", spec.name, spec.domain)));
    }
    Ok(Payload::new(&spec.tags).with("region", &spec.region))
}

/// Whether two payloads name the same Konstacks resource (stack and path).
fn same_owner(a: &Payload, b: &Tags) -> bool {
    a.tags.get(TAG_STACK) == b.get(TAG_STACK) && a.tags.get(TAG_PATH) == b.get(TAG_PATH)
}

#[async_trait::async_trait]
impl Api<DnsZone> for Gcp {
    async fn create(&self, _cx: &OpContext, spec: &DnsZoneSpec) -> ProviderResult<DnsZoneObserved> {
        let payload = check_zone_spec(self, spec)?;
        if !spec.managed {
            // A zone the stack uses without owning it: found by its domain, never created.
            let found = self.list_zones().await?.into_iter().find(|z| {
                plain(z.dns_name.as_deref().unwrap_or_default()) == spec.domain
                    && z.visibility.as_ref().is_none_or(|v| *v == Visibility::Public)
            });
            return match found {
                Some(z) => self.zone_observed_now(&z).await,
                // Not `NotFound`, which is retried as eventual consistency.
                None => Err(invalid(format!(
                    "no public Cloud DNS zone for `{}` exists in project `{}`; the stack uses it without creating \
                     it: apply the stack that owns the zone first (or create the zone), then apply again",
                    spec.domain, self.project
                ))),
            };
        }
        let mut z = ManagedZone::default();
        z.name = Some(spec.name.clone());
        z.dns_name = Some(dotted(&spec.domain));
        z.description = Some(format!("Konstacks DNS zone {}", spec.name));
        z.visibility = Some(Visibility::Public);
        z.labels = labels::to_labels(&payload).map_err(invalid)?.into_iter().collect();
        let what = format!("creating DNS zone `{}`", spec.name);
        let created = match self.managed_zones.create().set_project(&self.project).set_body(z).send().await {
            Ok(z) => z,
            Err(e) if e.http_status_code() == Some(409) => {
                // A retried create whose first answer was lost: the zone of the same resource is ours.
                let e = error::api(&what, e);
                match self.get_zone(&spec.name).await? {
                    Some(found)
                        if plain(found.dns_name.as_deref().unwrap_or_default()) == spec.domain
                            && same_owner(&labels::from_labels(&found.labels), &spec.tags) =>
                    {
                        found
                    }
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(error::api(&what, e)),
        };
        self.zone_observed_now(&created).await
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DnsZoneObserved>> {
        let keep = |z: &ManagedZone| {
            let name = z.name.as_deref().unwrap_or_default();
            match sel {
                Selector::Ids(ids) => ids.iter().any(|i| i == name),
                Selector::Stack(stack) => labels::from_labels(&z.labels).stack() == Some(stack.as_str()),
                _ => false,
            }
        };
        let zones: Vec<ManagedZone> = match sel {
            Selector::Ids(ids) if ids.is_empty() => return Ok(Vec::new()),
            Selector::Ids(_) | Selector::Stack(_) => self.list_zones().await?.into_iter().filter(keep).collect(),
            _ => return Err(invalid("this selector is not supported by the GCP backend")),
        };
        let mut out = Vec::new();
        for z in &zones {
            out.push(self.zone_observed_now(z).await?);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, _cx: &OpContext, id: &str, spec: &DnsZoneSpec) -> ProviderResult<DnsZoneObserved> {
        let payload = check_zone_spec(self, spec)?;
        let z = self
            .get_zone(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("DNS zone `{id}` does not exist")))?;
        let what = format!("DNS zone `{id}`");
        if !spec.managed {
            // Someone else's zone: its name and labels are theirs.
            immutable(&what, "domain", &plain(z.dns_name.as_deref().unwrap_or_default()), &spec.domain)?;
            return self.zone_observed_now(&z).await;
        }
        immutable(&what, "name", &id.to_string(), &spec.name)?;
        immutable(&what, "domain", &plain(z.dns_name.as_deref().unwrap_or_default()), &spec.domain)?;
        let desired: std::collections::HashMap<String, String> =
            labels::to_labels(&payload).map_err(invalid)?.into_iter().collect();
        if desired != z.labels {
            let mut patch = ManagedZone::default();
            patch.labels = desired;
            self.managed_zones
                .patch()
                .set_project(&self.project)
                .set_managed_zone(id)
                .set_body(patch)
                .send()
                .await
                .map_err(|e| error::api(format!("updating the labels of {what}"), e))?;
        }
        let z = self
            .get_zone(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("DNS zone `{id}` does not exist")))?;
        self.zone_observed_now(&z).await
    }

    async fn delete(&self, _cx: &OpContext, id: &str) -> ProviderResult<()> {
        let Some(z) = self.get_zone(id).await? else { return Ok(()) };
        let domain = plain(z.dns_name.as_deref().unwrap_or_default());
        let Some(sets) = self.zone_sets(id, &domain).await? else { return Ok(()) };
        let mut foreign = Vec::new();
        let mut leftovers = Vec::new();
        for ((n, t), set) in &sets.sets {
            if n == &domain && (t == "SOA" || t == "NS") {
                continue;
            }
            if t == "TXT" && n.starts_with(OWNER_PREFIX) {
                if let Some(p) = owner_payload(set) {
                    // A certificate's tag record, or the ownership record of a record that is gone.
                    let described = p.get(RECORD_OF).and_then(|r| r.split_once(' '));
                    if described.is_none_or(|(f, t)| sets.get(f, t).is_none()) {
                        leftovers.push(n.clone());
                    }
                    continue;
                }
            }
            match sets.owner_of(n, t) {
                Some(p) => foreign.push(format!(
                    "{n} {t} (the Konstacks record `{}`)",
                    p.tags.get(TAG_PATH).cloned().unwrap_or_default()
                )),
                None => foreign.push(format!("{n} {t}")),
            }
        }
        if !foreign.is_empty() {
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
        for n in &leftovers {
            self.delete_set(id, n, "TXT").await?;
        }
        match self.managed_zones.delete().set_project(&self.project).set_managed_zone(id).send().await {
            Ok(()) => Ok(()),
            Err(e) if e.http_status_code() == Some(404) => Ok(()),
            Err(e) if e.http_status_code() == Some(400) => {
                // `containerNotEmpty`: records appeared since the listing.
                let e = error::api(format!("deleting DNS zone `{id}`"), e);
                Err(ProviderError::new(
                    ErrorKind::Conflict,
                    format!("DNS zone `{id}` ({domain}) still holds records; delete its records first"),
                )
                .with_source(e))
            }
            Err(e) => Err(error::api(format!("deleting DNS zone `{id}`"), e)),
        }
    }
}

// ---- records ----

fn check_record_spec(p: &Gcp, spec: &DnsRecordSpec) -> ProviderResult<&'static str> {
    p.check_region(&spec.region)?;
    let t = wire_type(spec.record_type).ok_or_else(|| {
        invalid(format!(
            "DNS record `{}`: type {} is kept by Cloud DNS itself and cannot be written",
            spec.name, spec.record_type
        ))
    })?;
    if spec.values.is_empty() {
        return Err(invalid(format!("DNS record `{}` has no values", spec.name)));
    }
    Ok(t)
}

/// The ownership payload of a record.
fn record_payload(spec: &DnsRecordSpec, t: &str) -> Payload {
    let p = Payload::new(&spec.tags)
        .with(RECORD_OF, format!("{} {t}", spec.fqdn))
        .with("name", &spec.name)
        .with("region", &spec.region);
    if spec.record_type == RecordType::Alias {
        p.with("alias", "1")
    } else {
        p
    }
}

/// The record set of a spec.
fn record_set(spec: &DnsRecordSpec, t: &str) -> ProviderResult<ResourceRecordSet> {
    let mut set = ResourceRecordSet::default();
    set.name = Some(dotted(&spec.fqdn));
    set.r#type = Some(t.to_string());
    set.ttl = Some(match spec.ttl {
        Some(ttl) => i32::try_from(ttl).map_err(|_| invalid(format!("TTL {ttl} is too large")))?,
        None => ALIAS_TTL,
    });
    set.rrdatas = to_rrdatas(spec)?;
    Ok(set)
}

impl Gcp {
    /// The zone's domain, checking that `fqdn` lies in it.
    async fn record_zone(&self, zone: &str, fqdn: &str, what: &str) -> ProviderResult<String> {
        let domain = self.zone_domain(zone).await?;
        if !within(fqdn, &domain) {
            return Err(invalid(format!("{what}: `{fqdn}` is outside its zone `{domain}`")));
        }
        Ok(domain)
    }
}

#[async_trait::async_trait]
impl Api<DnsRecord> for Gcp {
    async fn create(&self, _cx: &OpContext, spec: &DnsRecordSpec) -> ProviderResult<DnsRecordObserved> {
        let t = check_record_spec(self, spec)?;
        let what = format!("DNS record `{}` ({} {})", spec.name, spec.fqdn, spec.record_type);
        let domain = self.record_zone(&spec.zone_id, &spec.fqdn, &what).await?;
        let set = record_set(spec, t)?;
        let payload = record_payload(spec, t);
        let owner = owner_name(&spec.fqdn, t, &domain);
        let created = match self.create_set(&spec.zone_id, set.clone()).await {
            Ok(s) => s,
            Err(e) if e.http_status_code() == Some(409) => {
                // A retried create whose first answer was lost: the set it made, with its
                // ownership record naming the same resource, is ours.
                let e = error::api(format!("creating {what}"), e);
                let have = self.find_set(&spec.zone_id, &spec.fqdn, t).await?;
                let mine = self.find_set(&spec.zone_id, &owner, "TXT").await?.as_ref().and_then(owner_payload);
                match (have, mine) {
                    (Some(h), Some(m)) if same_owner(&m, &spec.tags) && h.rrdatas == set.rrdatas => h,
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(error::api(format!("creating {what}"), e)),
        };
        if let Err(e) = self.write_owner(&spec.zone_id, &owner, &payload).await {
            // A record without its ownership record would never be found again: take it back.
            if let Err(undo) = self.delete_set(&spec.zone_id, &spec.fqdn, t).await {
                tracing::warn!(
                    record = %spec.fqdn,
                    error = %undo,
                    "could not delete a DNS record whose ownership record failed"
                );
            }
            return Err(e);
        }
        record_observed(&spec.zone_id, &created, Some(&payload))
            .ok_or_else(|| invalid(format!("internal: Cloud DNS answered an unreadable record set for {what}")))
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DnsRecordObserved>> {
        let mut out = Vec::new();
        match sel {
            Selector::Ids(ids) => {
                let mut by_zone: BTreeMap<String, BTreeSet<(String, RecordType)>> = BTreeMap::new();
                for (zone, fqdn, t) in ids.iter().filter_map(|i| parse_record_id(i)) {
                    by_zone.entry(zone).or_default().insert((fqdn, t));
                }
                for (zone, wanted) in by_zone {
                    let Some(z) = self.get_zone(&zone).await? else { continue };
                    let domain = plain(z.dns_name.as_deref().unwrap_or_default());
                    let Some(sets) = self.zone_sets(&zone, &domain).await? else { continue };
                    for (fqdn, t) in wanted {
                        let Some(wt) = wire_type(t) else { continue };
                        let Some(set) = sets.get(&fqdn, wt) else { continue };
                        let owner = sets.owner_of(&fqdn, wt);
                        out.extend(record_observed(&zone, set, owner.as_ref()).filter(|r| r.record_type == t));
                    }
                }
            }
            Selector::Stack(stack) => {
                for z in self.list_zones().await? {
                    if labels::from_labels(&z.labels).stack() != Some(stack.as_str()) {
                        continue;
                    }
                    let zone = z.name.clone().unwrap_or_default();
                    let domain = plain(z.dns_name.as_deref().unwrap_or_default());
                    let Some(sets) = self.zone_sets(&zone, &domain).await? else { continue };
                    for ((n, t), set) in &sets.sets {
                        let Some(owner) = sets.owner_of(n, t) else { continue };
                        if owner.stack() == Some(stack.as_str()) && owner.get(RECORD_OF).is_some() {
                            out.extend(record_observed(&zone, set, Some(&owner)));
                        }
                    }
                }
            }
            _ => return Err(invalid("this selector is not supported by the GCP backend")),
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, _cx: &OpContext, id: &str, spec: &DnsRecordSpec) -> ProviderResult<DnsRecordObserved> {
        let t = check_record_spec(self, spec)?;
        let (zone, fqdn, rt) =
            parse_record_id(id).ok_or_else(|| invalid(format!("`{id}` is not a GCP DNS record id")))?;
        let what = format!("DNS record `{id}`");
        immutable(&what, "zone_id", &zone, &spec.zone_id)?;
        immutable(&what, "fqdn", &fqdn, &spec.fqdn)?;
        immutable(&what, "record_type", &rt, &spec.record_type)?;
        let domain = self.record_zone(&zone, &fqdn, &what).await?;
        let set = record_set(spec, t)?;
        let patched = match self.patch_set(&zone, set.clone()).await {
            Ok(s) => s,
            Err(e) if e.http_status_code() == Some(404) => {
                return Err(ProviderError::not_found(format!("{what} does not exist")).with_source(e))
            }
            Err(e) => return Err(error::api(format!("updating {what}"), e)),
        };
        let payload = record_payload(spec, t);
        self.write_owner(&zone, &owner_name(&fqdn, t, &domain), &payload).await?;
        record_observed(&zone, &patched, Some(&payload))
            .ok_or_else(|| invalid(format!("internal: Cloud DNS answered an unreadable record set for {what}")))
    }

    async fn delete(&self, _cx: &OpContext, id: &str) -> ProviderResult<()> {
        let Some((zone, fqdn, rt)) = parse_record_id(id) else {
            return Err(invalid(format!("`{id}` is not a GCP DNS record id")));
        };
        let Some(t) = wire_type(rt) else { return Ok(()) };
        let domain = match self.zone_domain(&zone).await {
            Ok(d) => d,
            Err(e) if not_found(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.delete_set(&zone, &fqdn, t).await?;
        self.delete_set(&zone, &owner_name(&fqdn, t, &domain), "TXT").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_round_trip() {
        let id = record_id("shop-zone", "www.shop.example.com", RecordType::Aaaa);
        assert_eq!(id, "shop-zone/www.shop.example.com/AAAA");
        assert_eq!(parse_record_id(&id), Some(("shop-zone".into(), "www.shop.example.com".into(), RecordType::Aaaa)));
        assert_eq!(parse_record_id("shop-zone/www/ZZZZ"), None);
        assert_eq!(parse_record_id("a/b/A/c"), None);
    }

    #[test]
    fn values_travel_in_cloud_dns_form() {
        let long = "k".repeat(300);
        let rr = txt_rrdata(&format!("v=\"{long}"));
        assert!(rr.starts_with("\"v=\\\""));
        assert_eq!(from_rrdatas(RecordType::Txt, &[rr]), vec![format!("v=\"{long}")]);
        assert_eq!(from_rrdatas(RecordType::Mx, &["10 mx.example.com.".into()]), vec!["10 mx.example.com"]);
        assert_eq!(from_rrdatas(RecordType::Cname, &["www.example.com.".into()]), vec!["www.example.com"]);
    }

    #[test]
    fn ownership_records_hold_the_payload() {
        let p = Payload::new(&Tags::from([("k".to_string(), "a \"b\"".to_string())])).with(RECORD_OF, "x A");
        let set = owner_set("_konstacks-1.example.com", &p);
        assert_eq!(owner_payload(&set), Some(p));
        assert!(owner_name("www.example.com", "A", "example.com").starts_with(OWNER_PREFIX));
    }
}
