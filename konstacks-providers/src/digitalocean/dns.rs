//! DNS zones and records on DigitalOcean: domains (`/v2/domains`) and their records
//! (`/v2/domains/{name}/records`).
//!
//! How the model maps onto DigitalOcean, and why:
//! - **Ids encode everything.** A zone's id is its domain (`shop.example.com`); DigitalOcean
//!   keys domains by name. A Konstacks record is a record *set* (every value of one name and
//!   type) while a DigitalOcean record holds one value, so a record's id is
//!   `<domain>/<TYPE>/<fqdn>` (`shop.example.com/A/www.shop.example.com`) and stands for all the
//!   DigitalOcean records of that name and type. The engine keeps ids in state; reads by id need
//!   nothing else.
//! - **No tags.** Domains and records cannot be tagged. A zone joins the stack's project (urn
//!   `do:domain:<name>`), which is how a read by stack finds the stack's zones. The name, region
//!   and tags of zones and record sets are kept as record tags (see `owned`), so they read back
//!   and the engine's adoption by tags works after a crash; the record sets of a stack are those
//!   of its zones that have such a record (records someone added by hand are left out).
//!   Creation is also idempotent on the deterministic id: a zone that already exists *in the
//!   stack's project* is taken over, and a record set whose DigitalOcean records already hold
//!   exactly the spec's values is taken over; anything else that exists is refused as
//!   `AlreadyExists`, never overwritten.
//! - **Alias records** (the apex alias to a load balancer) do not exist on DigitalOcean: an
//!   alias whose target is an IPv4 address (a DigitalOcean load balancer's IP) becomes an `A`
//!   record with a 60-second TTL and reads back as the alias; an alias to a host name is refused
//!   before any request, since DigitalOcean cannot serve a CNAME-like name at the apex.
//! - Name servers are DigitalOcean's, read from the zone's apex `NS` records.
//!
//! DigitalOcean DNS is free (see the catalogue).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{
    DnsRecord, DnsRecordObserved, DnsRecordSpec, DnsZone, DnsZoneObserved, DnsZoneSpec, ManagedRecord, RecordType,
    Selector, Tags, TAG_STACK,
};
use reqwest::Method;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::labels::RecordKind;
use super::owned::{fields_of, owned, Owned};
use super::types::{Links, Paged, ProjectResource, ProjectResourceList};
use super::{immutable, invalid, stack_of, ApiError, DigitalOcean};

/// TTL of the `A` record an alias becomes (DigitalOcean's smallest).
const ALIAS_TTL: u32 = 60;

// ---- wire types (the spec's `domain` and `domain_record`) ----

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Domain {
    name: String,
}

#[derive(Debug, Deserialize)]
struct DomainList {
    #[serde(default)]
    domains: Vec<Domain>,
    #[serde(default)]
    links: Option<Links>,
}

impl Paged for DomainList {
    type Item = Domain;
    fn into_parts(self) -> (Vec<Domain>, Option<Links>) {
        (self.domains, self.links)
    }
}

/// One DigitalOcean record (one value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct DoRecord {
    #[serde(default, skip_serializing)]
    id: u64,
    #[serde(rename = "type")]
    record_type: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flags: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RecordList {
    #[serde(default)]
    domain_records: Vec<DoRecord>,
    #[serde(default)]
    links: Option<Links>,
}

impl Paged for RecordList {
    type Item = DoRecord;
    fn into_parts(self) -> (Vec<DoRecord>, Option<Links>) {
        (self.domain_records, self.links)
    }
}

// ---- ids and translation ----

/// The id of a record set.
fn record_id(domain: &str, t: RecordType, fqdn: &str) -> String {
    format!("{domain}/{}/{fqdn}", t.as_str())
}

/// `(domain, type, fqdn)` of a record-set id.
fn parse_record_id(id: &str) -> Option<(String, RecordType, String)> {
    let mut parts = id.splitn(3, '/');
    let (domain, t, fqdn) = (parts.next()?, parts.next()?, parts.next()?);
    let t = RecordType::from_name(t)?;
    (!domain.is_empty() && !fqdn.is_empty()).then(|| (domain.to_string(), t, fqdn.to_string()))
}

/// The DigitalOcean type records of Konstacks type `t` are stored as.
fn wire_type(t: RecordType) -> &'static str {
    if t == RecordType::Alias {
        "A"
    } else {
        t.as_str()
    }
}

/// The Konstacks types a DigitalOcean record type can stand for (an `A` record may be an alias).
fn konstacks_types(wire: &str) -> impl Iterator<Item = RecordType> {
    let alias = (wire == "A").then_some(RecordType::Alias);
    RecordType::from_name(wire).into_iter().chain(alias)
}

/// DigitalOcean's record name: `@` at the apex, else relative to the domain.
fn relative(fqdn: &str, domain: &str) -> String {
    if fqdn == domain {
        return "@".into();
    }
    fqdn.strip_suffix(domain).and_then(|r| r.strip_suffix('.')).unwrap_or(fqdn).to_string()
}

fn absolute(name: &str, domain: &str) -> String {
    match name {
        "@" | "" => domain.to_string(),
        n if n == domain || n.ends_with(&format!(".{domain}")) => n.to_string(),
        n => format!("{n}.{domain}"),
    }
}

/// A host name in a record's data: absolute, without the trailing dot. DigitalOcean answers
/// its own name servers without the trailing dot (`ns1.digitalocean.com`), so a dotted name is
/// absolute either way; a single label (`www`, `@`) is relative to the domain. Konstacks always
/// sends absolute names with the trailing dot.
fn host_of(data: &str, domain: &str) -> String {
    match data.strip_suffix('.') {
        Some(abs) => abs.to_string(),
        None if data.contains('.') => data.to_string(),
        None => absolute(data, domain),
    }
}

/// The DigitalOcean record of one value of `spec`.
fn to_wire(spec: &DnsRecordSpec, domain: &str, value: &str) -> ProviderResult<DoRecord> {
    let t = spec.record_type;
    let mut r = DoRecord {
        record_type: wire_type(t).to_string(),
        name: relative(&spec.fqdn, domain),
        ttl: Some(spec.ttl.unwrap_or(ALIAS_TTL)),
        ..DoRecord::default()
    };
    let bad = || invalid(format!("record `{}`: value `{value}` is not a valid {t} value", spec.fqdn));
    match t {
        RecordType::A | RecordType::Aaaa | RecordType::Txt => r.data = value.to_string(),
        RecordType::Alias => {
            if value.parse::<Ipv4Addr>().is_err() {
                return Err(invalid(format!(
                    "record `{}`: DigitalOcean has no alias records; an alias becomes an A record to an IPv4 \
                     address (a DigitalOcean load balancer's IP), and `{value}` is a host name. Point the alias at \
                     the load balancer's IP, or use a CNAME on a name below the apex",
                    spec.fqdn
                )));
            }
            r.data = value.to_string();
        }
        RecordType::Cname => r.data = format!("{}.", value.trim_end_matches('.')),
        RecordType::Mx => {
            let (prio, host) = value.split_once(' ').ok_or_else(bad)?;
            r.priority = Some(prio.trim().parse().map_err(|_| bad())?);
            r.data = format!("{}.", host.trim().trim_end_matches('.'));
        }
        RecordType::Caa => {
            let mut it = value.splitn(3, ' ');
            let (flags, tag, v) = (it.next().ok_or_else(bad)?, it.next().ok_or_else(bad)?, it.next().ok_or_else(bad)?);
            r.flags = Some(flags.parse().map_err(|_| bad())?);
            r.tag = Some(tag.to_string());
            r.data = v.trim_matches('"').to_string();
        }
        RecordType::Ns | RecordType::Soa => {
            return Err(invalid(format!("the {t} records of `{domain}` are kept by DigitalOcean")))
        }
        _ => return Err(invalid(format!("record `{}`: DigitalOcean does not serve {t} records here", spec.fqdn))),
    }
    Ok(r)
}

/// The Konstacks value of a DigitalOcean record of Konstacks type `t`.
fn value_of(t: RecordType, r: &DoRecord, domain: &str) -> String {
    match t {
        RecordType::Cname | RecordType::Ns => host_of(&r.data, domain),
        RecordType::Mx => format!("{} {}", r.priority.unwrap_or(0), host_of(&r.data, domain)),
        RecordType::Caa => format!("{} {} \"{}\"", r.flags.unwrap_or(0), r.tag.clone().unwrap_or_default(), r.data),
        _ => r.data.clone(),
    }
}

fn stack_tags(stack: &str) -> Tags {
    Tags::from([(TAG_STACK.to_string(), stack.to_string())])
}

/// The name, region and tags of a spec, as its record keeps them.
fn owned_of(name: &str, region: &str, tags: &Tags) -> Owned {
    Owned { name: Some(name.to_string()), region: Some(region.to_string()), tags: tags.clone() }
}

/// A record set read back with what its record says.
fn with_owned(mut o: DnsRecordObserved, w: Owned) -> DnsRecordObserved {
    o.name = w.name.unwrap_or(o.name);
    o.region = w.region.unwrap_or_default();
    o.tags = w.tags;
    o
}

/// The observed record set `t` at `fqdn` from its DigitalOcean records.
fn observed_set(domain: &str, t: RecordType, fqdn: &str, recs: &[&DoRecord], tags: Tags) -> DnsRecordObserved {
    let mut values: Vec<String> = recs.iter().map(|r| value_of(t, r, domain)).collect();
    values.sort();
    DnsRecordObserved {
        id: record_id(domain, t, fqdn),
        name: record_id(domain, t, fqdn),
        region: String::new(),
        zone_id: domain.to_string(),
        fqdn: fqdn.to_string(),
        record_type: t,
        values,
        ttl: if t == RecordType::Alias { None } else { recs.iter().filter_map(|r| r.ttl).min() },
        tags,
    }
}

fn domain_urn(domain: &str) -> String {
    format!("do:domain:{domain}")
}

impl DigitalOcean {
    async fn domain_records(
        &self,
        cx: &OpContext,
        domain: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<DoRecord>, ApiError> {
        self.client.list::<RecordList>(cx, &format!("/v2/domains/{domain}/records"), query).await
    }

    /// The records of type `wire` at `fqdn` (DigitalOcean filters by full name and type).
    async fn set_records(
        &self,
        cx: &OpContext,
        domain: &str,
        wire: &str,
        fqdn: &str,
    ) -> Result<Vec<DoRecord>, ApiError> {
        self.domain_records(cx, domain, &[("name", fqdn.to_string()), ("type", wire.to_string())]).await
    }

    /// A domain as its owner's record describes it, for a stack that uses it without owning it.
    async fn foreign_zone(&self, cx: &OpContext, domain: &str) -> ProviderResult<DnsZoneObserved> {
        let records = self.records(cx).await?;
        let w = owned(&records, RecordKind::Zone, domain).unwrap_or_default();
        self.zone_observed(cx, domain, w).await
    }

    async fn zone_observed(&self, cx: &OpContext, domain: &str, w: Owned) -> ProviderResult<DnsZoneObserved> {
        let ns = self
            .set_records(cx, domain, "NS", domain)
            .await
            .map_err(|e| e.into_provider(format!("reading the name servers of `{domain}`")))?;
        let mut name_servers: Vec<String> = ns.iter().map(|r| host_of(&r.data, domain)).collect();
        name_servers.sort();
        name_servers.dedup();
        let managed_records = name_servers
            .iter()
            .map(|n| ManagedRecord {
                fqdn: domain.to_string(),
                record_type: RecordType::Ns,
                value: n.clone(),
                owner: "zone".into(),
            })
            .collect();
        Ok(DnsZoneObserved {
            id: domain.to_string(),
            name: w.name.unwrap_or_else(|| domain.to_string()),
            region: w.region.unwrap_or_default(),
            domain: domain.to_string(),
            name_servers,
            managed_records,
            tags: w.tags,
        })
    }

    /// The domains in the project of `stack` (none when it has no project).
    async fn stack_domains(&self, cx: &OpContext, stack: &str) -> ProviderResult<Vec<String>> {
        let Some(project) = self.find_project(cx, stack).await?.map(|p| p.id) else { return Ok(Vec::new()) };
        let path = format!("/v2/projects/{project}/resources");
        let res: Vec<ProjectResource> = self
            .client
            .list::<ProjectResourceList>(cx, &path, &[])
            .await
            .map_err(|e| e.into_provider(format!("listing the resources of project `{stack}`")))?;
        let mut out: Vec<String> =
            res.iter().filter_map(|r| r.urn.strip_prefix("do:domain:").map(str::to_string)).collect();
        out.sort();
        Ok(out)
    }

    pub(crate) async fn all_domains(&self, cx: &OpContext) -> ProviderResult<Vec<String>> {
        let all = self
            .client
            .list::<DomainList>(cx, "/v2/domains", &[])
            .await
            .map_err(|e| e.into_provider("listing domains"))?;
        Ok(all.into_iter().map(|d| d.name).collect())
    }
}

#[async_trait::async_trait]
impl Api<DnsZone> for DigitalOcean {
    async fn create(&self, cx: &OpContext, spec: &DnsZoneSpec) -> ProviderResult<DnsZoneObserved> {
        let domain = spec.domain.to_ascii_lowercase();
        if !spec.managed {
            // A domain the stack uses without owning it: found, never created nor marked as ours.
            if !self.all_domains(cx).await?.contains(&domain) {
                // Not `NotFound`, which is retried as eventual consistency.
                return Err(invalid(format!(
                    "no domain `{domain}` exists on DigitalOcean; the stack uses it without creating it: apply \
                     the stack that owns the domain first (or add the domain), then apply again"
                )));
            }
            return self.foreign_zone(cx, &domain).await;
        }
        let stack = stack_of(&spec.tags, cx);
        let fields = fields_of(RecordKind::Zone, &domain, &spec.name, &spec.region, &spec.tags)?;
        let r: Result<IgnoredAny, ApiError> =
            self.client.send(cx, Method::POST, "/v2/domains", &Domain { name: domain.clone() }).await;
        match r {
            Ok(_) => self.assign_to_project(cx, &spec.tags, &domain_urn(&domain)).await?,
            // Our own zone from an interrupted run (it is in the stack's project): take it over.
            Err(e) if e.kind() == ErrorKind::AlreadyExists || e.kind() == ErrorKind::InvalidSpec => {
                if !self.stack_domains(cx, &stack).await?.contains(&domain) {
                    return Err(ProviderError::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "domain `{domain}` already exists on DigitalOcean outside stack `{stack}`'s project; \
                             delete it or move it into the project `{stack}` to let Konstacks manage it"
                        ),
                    ));
                }
            }
            Err(e) => return Err(e.into_provider(format!("creating domain `{domain}`"))),
        }
        self.write_owned(cx, RecordKind::Zone, &domain, &fields).await?;
        self.zone_observed(cx, &domain, owned_of(&spec.name, &spec.region, &spec.tags)).await
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DnsZoneObserved>> {
        let all = self.all_domains(cx).await?;
        let (wanted, stack): (Vec<String>, Option<&str>) = match sel {
            Selector::Ids(ids) => (ids.iter().filter(|i| all.contains(i)).cloned().collect(), None),
            Selector::Stack(s) => {
                (self.stack_domains(cx, s).await?.into_iter().filter(|d| all.contains(d)).collect(), Some(s))
            }
            _ => return Err(invalid("this selector is not supported by the DigitalOcean DNS backend")),
        };
        let records = self.records(cx).await?;
        let mut out = Vec::with_capacity(wanted.len());
        for d in &wanted {
            let w = owned(&records, RecordKind::Zone, d)
                .unwrap_or_else(|| Owned { tags: stack.map(stack_tags).unwrap_or_default(), ..Owned::default() });
            out.push(self.zone_observed(cx, d, w).await?);
        }
        Ok(out)
    }

    /// Only tags can change, and they live in the zone's record: the domain is not touched.
    async fn update(&self, cx: &OpContext, id: &str, spec: &DnsZoneSpec) -> ProviderResult<DnsZoneObserved> {
        immutable(&format!("zone `{id}`"), "domain", &id.to_string(), &spec.domain.to_ascii_lowercase())?;
        if !spec.managed {
            return self.foreign_zone(cx, id).await;
        }
        let fields = fields_of(RecordKind::Zone, id, &spec.name, &spec.region, &spec.tags)?;
        if !self.all_domains(cx).await?.iter().any(|d| d == id) {
            return Err(ProviderError::not_found(format!("domain `{id}` does not exist on DigitalOcean")));
        }
        self.write_owned(cx, RecordKind::Zone, id, &fields).await?;
        self.zone_observed(cx, id, owned_of(&spec.name, &spec.region, &spec.tags)).await
    }

    /// The domain goes with every record in it; so do the records of its record sets.
    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let sets: Vec<String> = match self.domain_records(cx, id, &[]).await {
            Ok(recs) => recs
                .iter()
                .flat_map(|r| konstacks_types(&r.record_type).map(|t| record_id(id, t, &absolute(&r.name, id))))
                .collect(),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e.into_provider(format!("listing the records of `{id}`"))),
        };
        match self.client.send_empty::<()>(cx, Method::DELETE, &format!("/v2/domains/{id}"), None).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into_provider(format!("deleting domain `{id}`"))),
        }
        self.forget_owned(cx, RecordKind::DnsRecord, &sets).await?;
        self.forget_owned(cx, RecordKind::Zone, &[id.to_string()]).await?;
        let stack = cx.stack.clone();
        if self.forget_project_if_empty(cx, &stack).await {
            self.prune_unused_labels(cx).await;
        }
        Ok(())
    }
}

/// The checks DigitalOcean would make, before any request.
fn check_record(spec: &DnsRecordSpec) -> ProviderResult<()> {
    let (fqdn, t, zone) = (&spec.fqdn, spec.record_type, &spec.zone_id);
    if !(fqdn == zone || fqdn.ends_with(&format!(".{zone}"))) {
        return Err(invalid(format!("record `{fqdn}` is not in zone `{zone}`")));
    }
    if t == RecordType::Cname && fqdn == zone {
        return Err(invalid(format!("a CNAME cannot be created at the apex of `{zone}`")));
    }
    if spec.values.is_empty() {
        return Err(invalid(format!("the {t} record `{fqdn}` has no values")));
    }
    if matches!(t, RecordType::Cname | RecordType::Alias) && spec.values.len() > 1 {
        return Err(invalid(format!("the {t} record `{fqdn}` can have one value only")));
    }
    for v in &spec.values {
        to_wire(spec, zone, v)?;
    }
    Ok(())
}

impl DigitalOcean {
    /// Bring the DigitalOcean records of the set `spec` from `have` to the spec's values and TTL.
    async fn converge_set(&self, cx: &OpContext, spec: &DnsRecordSpec, have: Vec<DoRecord>) -> ProviderResult<()> {
        let domain = &spec.zone_id;
        let path = format!("/v2/domains/{domain}/records");
        let mut want: BTreeMap<String, DoRecord> = BTreeMap::new();
        for v in &spec.values {
            let w = to_wire(spec, domain, v)?;
            want.insert(value_of(spec.record_type, &w, domain), w);
        }
        let mut kept = std::collections::BTreeSet::new();
        for r in &have {
            let v = value_of(spec.record_type, r, domain);
            match want.get(&v) {
                Some(w) if !kept.contains(&v) => {
                    kept.insert(v);
                    if r.ttl != w.ttl {
                        let _: IgnoredAny = self
                            .client
                            .send(cx, Method::PUT, &format!("{path}/{}", r.id), w)
                            .await
                            .map_err(|e| e.into_provider(format!("updating record `{}`", spec.fqdn)))?;
                    }
                }
                _ => match self.client.send_empty::<()>(cx, Method::DELETE, &format!("{path}/{}", r.id), None).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into_provider(format!("deleting a value of record `{}`", spec.fqdn))),
                },
            }
        }
        for (v, w) in &want {
            if !kept.contains(v) {
                let _: IgnoredAny = self
                    .client
                    .send(cx, Method::POST, &path, w)
                    .await
                    .map_err(|e| e.into_provider(format!("creating record `{}`", spec.fqdn)))?;
            }
        }
        Ok(())
    }

    async fn read_set(&self, cx: &OpContext, spec: &DnsRecordSpec) -> ProviderResult<DnsRecordObserved> {
        let (domain, t) = (&spec.zone_id, spec.record_type);
        let recs = self
            .set_records(cx, domain, wire_type(t), &spec.fqdn)
            .await
            .map_err(|e| e.into_provider(format!("reading record `{}`", spec.fqdn)))?;
        let refs: Vec<&DoRecord> = recs.iter().collect();
        let mut o = observed_set(domain, t, &spec.fqdn, &refs, spec.tags.clone());
        o.name = spec.name.clone();
        o.region = spec.region.clone();
        Ok(o)
    }
}

#[async_trait::async_trait]
impl Api<DnsRecord> for DigitalOcean {
    async fn create(&self, cx: &OpContext, spec: &DnsRecordSpec) -> ProviderResult<DnsRecordObserved> {
        check_record(spec)?;
        let (domain, t, fqdn) = (&spec.zone_id, spec.record_type, &spec.fqdn);
        let id = record_id(domain, t, fqdn);
        let fields = fields_of(RecordKind::DnsRecord, &id, &spec.name, &spec.region, &spec.tags)?;
        let at_name = self
            .domain_records(cx, domain, &[("name", fqdn.clone())])
            .await
            .map_err(|e| e.into_provider(format!("reading the records at `{fqdn}`")))?;
        let same: Vec<DoRecord> = at_name.iter().filter(|r| r.record_type == wire_type(t)).cloned().collect();
        let others = at_name.iter().filter(|r| r.record_type != wire_type(t));
        if t == RecordType::Cname && others.clone().next().is_some()
            || at_name.iter().any(|r| r.record_type == "CNAME" && t != RecordType::Cname)
        {
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                format!("`{fqdn}` already has other records: a CNAME shares its name with nothing"),
            ));
        }
        if !same.is_empty() {
            let mut have: Vec<String> = same.iter().map(|r| value_of(t, r, domain)).collect();
            let mut want: Vec<String> = spec
                .values
                .iter()
                .filter_map(|v| to_wire(spec, domain, v).ok())
                .map(|w| value_of(t, &w, domain))
                .collect();
            have.sort();
            want.sort();
            if have != want {
                return Err(ProviderError::new(
                    ErrorKind::AlreadyExists,
                    format!("zone `{domain}` already has {t} records at `{fqdn}` with other values; delete them or import the record"),
                ));
            }
        }
        self.converge_set(cx, spec, same).await?;
        self.write_owned(cx, RecordKind::DnsRecord, &id, &fields).await?;
        self.read_set(cx, spec).await
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DnsRecordObserved>> {
        let mut out = Vec::new();
        let records = self.records(cx).await?;
        let owned_set = |o: DnsRecordObserved| owned(&records, RecordKind::DnsRecord, &o.id).map(|w| with_owned(o, w));
        match sel {
            Selector::Ids(ids) => {
                let mut by_domain: BTreeMap<String, Vec<(RecordType, String)>> = BTreeMap::new();
                for id in ids {
                    if let Some((d, t, f)) = parse_record_id(id) {
                        by_domain.entry(d).or_default().push((t, f));
                    }
                }
                for (d, sets) in by_domain {
                    let recs = match self.domain_records(cx, &d, &[]).await {
                        Ok(r) => r,
                        Err(e) if e.is_not_found() => continue,
                        Err(e) => return Err(e.into_provider(format!("listing the records of `{d}`"))),
                    };
                    for (t, f) in sets {
                        let of: Vec<&DoRecord> = recs
                            .iter()
                            .filter(|r| r.record_type == wire_type(t) && absolute(&r.name, &d) == f)
                            .collect();
                        if !of.is_empty() {
                            let o = observed_set(&d, t, &f, &of, Tags::new());
                            out.push(owned_set(o.clone()).unwrap_or(o));
                        }
                    }
                }
            }
            Selector::Stack(s) => {
                for d in self.stack_domains(cx, s).await? {
                    let recs = match self.domain_records(cx, &d, &[]).await {
                        Ok(r) => r,
                        Err(e) if e.is_not_found() => continue,
                        Err(e) => return Err(e.into_provider(format!("listing the records of `{d}`"))),
                    };
                    let mut sets: BTreeMap<(String, String), Vec<&DoRecord>> = BTreeMap::new();
                    for r in &recs {
                        let fqdn = absolute(&r.name, &d);
                        // The apex NS and SOA records are DigitalOcean's, not the stack's.
                        if matches!(r.record_type.as_str(), "NS" | "SOA") && fqdn == d {
                            continue;
                        }
                        sets.entry((r.record_type.clone(), fqdn)).or_default().push(r);
                    }
                    // Only the sets Konstacks recorded: records added by hand are not the stack's.
                    for ((wire, f), of) in sets {
                        for t in konstacks_types(&wire) {
                            out.extend(owned_set(observed_set(&d, t, &f, &of, stack_tags(s))));
                        }
                    }
                }
            }
            _ => return Err(invalid("this selector is not supported by the DigitalOcean DNS backend")),
        }
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &DnsRecordSpec) -> ProviderResult<DnsRecordObserved> {
        check_record(spec)?;
        let want_id = record_id(&spec.zone_id, spec.record_type, &spec.fqdn);
        immutable(&format!("record `{id}`"), "zone, type and name", &id.to_string(), &want_id)?;
        let fields = fields_of(RecordKind::DnsRecord, id, &spec.name, &spec.region, &spec.tags)?;
        let have = self
            .set_records(cx, &spec.zone_id, wire_type(spec.record_type), &spec.fqdn)
            .await
            .map_err(|e| e.into_provider(format!("reading record `{id}`")))?;
        if have.is_empty() {
            return Err(ProviderError::not_found(format!("record `{id}` does not exist on DigitalOcean")));
        }
        self.converge_set(cx, spec, have).await?;
        self.write_owned(cx, RecordKind::DnsRecord, id, &fields).await?;
        self.read_set(cx, spec).await
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let Some((domain, t, fqdn)) = parse_record_id(id) else {
            return Err(invalid(format!("`{id}` is not a DigitalOcean record id (`<domain>/<TYPE>/<name>`)")));
        };
        let have = match self.set_records(cx, &domain, wire_type(t), &fqdn).await {
            Ok(h) => h,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e.into_provider(format!("reading record `{id}`"))),
        };
        for r in have {
            let path = format!("/v2/domains/{domain}/records/{}", r.id);
            match self.client.send_empty::<()>(cx, Method::DELETE, &path, None).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into_provider(format!("deleting record `{id}`"))),
            }
        }
        self.forget_owned(cx, RecordKind::DnsRecord, &[id.to_string()]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_round_trip() {
        let id = record_id("shop.example.com", RecordType::Mx, "shop.example.com");
        assert_eq!(id, "shop.example.com/MX/shop.example.com");
        assert_eq!(parse_record_id(&id), Some(("shop.example.com".into(), RecordType::Mx, "shop.example.com".into())));
        assert_eq!(parse_record_id("nothing"), None);
    }

    #[test]
    fn names_are_relative_on_the_wire() {
        assert_eq!(relative("shop.example.com", "shop.example.com"), "@");
        assert_eq!(relative("www.shop.example.com", "shop.example.com"), "www");
        assert_eq!(absolute("@", "shop.example.com"), "shop.example.com");
        assert_eq!(absolute("www", "shop.example.com"), "www.shop.example.com");
        assert_eq!(host_of("mx.example.org.", "shop.example.com"), "mx.example.org");
    }
}
