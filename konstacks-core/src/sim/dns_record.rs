//! The simulated cloud's DNS records: record sets stored in their zone, checked as a DNS API
//! checks them (names inside the zone, values per type, no CNAME at the apex, a CNAME sharing
//! its name with nothing, one record set per name and type).

use std::time::Duration;

use crate::base::error::ErrorKind;
use crate::kind::api::ProviderResult;
use crate::kind::catalog::Catalog;
use crate::kinds::dns_record::{value_problem, MAX_TTL, MIN_TTL};
use crate::kinds::dns_zone::{dns_name_problem, within, NameRules};
use crate::kinds::{DnsRecord, DnsRecordObserved, DnsRecordSpec, DnsZoneObserved, RecordType};
use crate::sim::dns_zone::zone_ref;
use crate::sim::store::{conflict, immutable, invalid, provider_error, Inner, SimKind, SimOps};

/// The checks of one record set against its zone, before anything else is looked at.
fn check_record(spec: &DnsRecordSpec, zone: &DnsZoneObserved) -> ProviderResult<()> {
    let (fqdn, t) = (&spec.fqdn, spec.record_type);
    if !within(fqdn, &zone.domain) {
        return Err(invalid(format!("record `{fqdn}` is not in zone `{}` ({})", zone.domain, zone.id)));
    }
    if let Some(p) = dns_name_problem(fqdn, NameRules::RECORD) {
        return Err(invalid(format!("record name `{fqdn}` {p}")));
    }
    if matches!(t, RecordType::Ns | RecordType::Soa) && *fqdn == zone.domain {
        return Err(invalid(format!("the {t} records at the apex of `{}` are kept by the provider", zone.domain)));
    }
    if t == RecordType::Cname && *fqdn == zone.domain {
        return Err(invalid(format!("a CNAME cannot be created at the apex of `{}`", zone.domain)));
    }
    if spec.values.is_empty() {
        return Err(invalid(format!("the {t} record `{fqdn}` has no values")));
    }
    if matches!(t, RecordType::Cname | RecordType::Alias) && spec.values.len() > 1 {
        return Err(invalid(format!("the {t} record `{fqdn}` can have one value only")));
    }
    for v in &spec.values {
        if let Some((_, message)) = value_problem(t, v) {
            return Err(invalid(format!("record `{fqdn}`: {message}")));
        }
    }
    match (t, spec.ttl) {
        (RecordType::Alias, None) => Ok(()),
        (RecordType::Alias, Some(_)) => Err(invalid(format!("the alias record `{fqdn}` takes no TTL"))),
        (_, Some(n)) if (MIN_TTL..=MAX_TTL).contains(&n) => Ok(()),
        (_, n) => Err(invalid(format!("TTL {n:?} of record `{fqdn}` is outside {MIN_TTL}..={MAX_TTL} seconds"))),
    }
}

/// The records (of users, and those the zone keeps) `spec` cannot live beside.
fn check_neighbours(s: &Inner, spec: &DnsRecordSpec, zone: &DnsZoneObserved) -> ProviderResult<()> {
    let (fqdn, t) = (&spec.fqdn, spec.record_type);
    for r in s.all::<DnsRecord>().filter(|r| r.zone_id == spec.zone_id && r.fqdn == *fqdn) {
        if r.record_type == t {
            return Err(provider_error(
                ErrorKind::AlreadyExists,
                format!("zone `{}` already has a {t} record `{fqdn}` (`{}`); update it instead", zone.id, r.id),
            ));
        }
        if !t.may_share_name_with(r.record_type) {
            return Err(conflict(format!(
                "a {t} record cannot share the name `{fqdn}` with the {} record `{}`; delete one of them first",
                r.record_type, r.id
            )));
        }
    }
    for m in zone.managed_records.iter().filter(|m| m.fqdn == *fqdn) {
        if !t.may_share_name_with(m.record_type) || m.record_type == t {
            return Err(conflict(format!(
                "`{fqdn}` holds a {} record kept by the provider (for `{}`); a {t} record cannot share its name",
                m.record_type, m.owner
            )));
        }
    }
    Ok(())
}

impl SimKind for DnsRecord {
    const OPS: SimOps = SimOps {
        create: "create_dns_record",
        read: "read_dns_records",
        update: "update_dns_record",
        delete: "delete_dns_record",
    };

    const NOUN: &'static str = "DNS record";

    fn references(o: &DnsRecordObserved) -> Vec<(&str, &'static str)> {
        vec![(o.zone_id.as_str(), "")]
    }

    fn create(s: &mut Inner, cat: &Catalog, spec: &DnsRecordSpec, now: Duration) -> ProviderResult<DnsRecordObserved> {
        Inner::check_region(cat, &spec.region)?;
        Inner::check_name(cat, "DNS record", &spec.name)?;
        let zone = zone_ref(s, &spec.zone_id, now)?;
        check_record(spec, zone)?;
        check_neighbours(s, spec, zone)?;
        let obs = DnsRecordObserved {
            id: s.next_id("rec"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            zone_id: spec.zone_id.clone(),
            fqdn: spec.fqdn.clone(),
            record_type: spec.record_type,
            values: spec.values.clone(),
            ttl: spec.ttl,
            tags: spec.tags.clone(),
        };
        Ok(s.create::<DnsRecord>(obs, now))
    }

    fn update(
        s: &mut Inner,
        cat: &Catalog,
        id: &str,
        spec: &DnsRecordSpec,
        _now: Duration,
    ) -> ProviderResult<DnsRecordObserved> {
        let cur = s.existing::<DnsRecord>(id)?;
        immutable("DNS record", id, "zone_id", &cur.zone_id, &spec.zone_id)?;
        immutable("DNS record", id, "fqdn", &cur.fqdn, &spec.fqdn)?;
        immutable("DNS record", id, "record_type", &cur.record_type, &spec.record_type)?;
        Inner::check_region(cat, &spec.region)?;
        Inner::check_name(cat, "DNS record", &spec.name)?;
        let mut obs = cur.clone();
        // The zone may be gone behind the record's back; its checks then apply to the name only.
        if let Some(zone) = s.get::<crate::kinds::DnsZone>(&cur.zone_id) {
            check_record(spec, zone)?;
        }
        obs.name = spec.name.clone();
        obs.region = spec.region.clone();
        obs.values = spec.values.clone();
        obs.ttl = spec.ttl;
        obs.tags = spec.tags.clone();
        s.put::<DnsRecord>(obs.clone());
        Ok(obs)
    }

    fn delete(s: &mut Inner, id: &str) -> ProviderResult<()> {
        s.existing::<DnsRecord>(id)?;
        s.remove(id);
        Ok(())
    }
}
