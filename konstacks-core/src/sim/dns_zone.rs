//! The simulated cloud's DNS zones: one zone per domain in the account, with deterministic name
//! servers, the apex NS and SOA records kept by the provider, and no delete while the zone still
//! holds records of its users. A zone the stack does not own (`managed: false`) is looked up
//! by domain on create and left as it is on update.

use std::time::Duration;

use sha2::Digest;

use crate::base::error::{ErrorKind, ProviderError};
use crate::kind::api::ProviderResult;
use crate::kind::catalog::Catalog;
use crate::kinds::dns_zone::{dns_name_problem, NameRules};
use crate::kinds::{DnsRecord, DnsZone, DnsZoneObserved, DnsZoneSpec, ManagedRecord, RecordType};
use crate::sim::store::{conflict, immutable, invalid, provider_error, Inner, SimKind, SimOps};

/// Where the simulated DNS provider's own names live.
pub(crate) const SIM_DNS_DOMAIN: &str = "sim-dns.internal";
/// Owner of the records a zone keeps by itself.
const ZONE_OWNER: &str = "zone";

/// A digest of `parts` (separated so that `ab`+`c` and `a`+`bc` differ).
pub(crate) fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(b"konstacks-sim-dns\0");
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\0");
    }
    h.finalize().into()
}

/// The first `n` bytes of a digest in hex.
pub(crate) fn hex(d: &[u8], n: usize) -> String {
    d.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

/// The 2 to 4 name servers the simulated provider gives a domain, always the same for it.
pub(crate) fn name_servers(domain: &str) -> Vec<String> {
    let d = digest(&["ns", domain]);
    let count = 2 + usize::from(d[0] % 3);
    let first = usize::from(d[1] % 4);
    (0..count).map(|i| format!("ns{}.{SIM_DNS_DOMAIN}", first + i + 1)).collect()
}

/// A zone by id, wherever the caller is: DNS is global. NotFound while it is not visible yet.
pub(crate) fn zone_ref<'a>(s: &'a Inner, id: &str, now: Duration) -> ProviderResult<&'a DnsZoneObserved> {
    match s.get::<DnsZone>(id) {
        Some(z) if s.visible(id, now) => Ok(z),
        _ => Err(ProviderError::not_found(format!(
            "DNS zone `{id}` does not exist (one created moments ago may not be visible yet; retry shortly)"
        ))),
    }
}

/// A zone by id, to change the records the provider keeps in it.
pub(crate) fn zone_mut<'a>(s: &'a mut Inner, id: &str) -> Option<&'a mut DnsZoneObserved> {
    s.resources.get_mut(id).and_then(|r| r.get_mut::<DnsZone>())
}

/// The zone of the account for `domain`, for a stack that uses it without owning it.
fn existing_zone(s: &Inner, domain: &str, now: Duration) -> ProviderResult<DnsZoneObserved> {
    match s.all::<DnsZone>().find(|z| z.domain == domain && s.visible(&z.id, now)) {
        Some(z) => Ok(z.clone()),
        // Not `NotFound`: that is retried as eventual consistency, and a missing zone is a
        // mistake of the stack (no owner applied yet), not a zone about to appear.
        None => Err(invalid(format!(
            "no DNS zone for `{domain}` exists in this account; the stack uses it without creating it: \
             apply the stack that owns the zone first (or create the zone), then apply again"
        ))),
    }
}

impl SimKind for DnsZone {
    const OPS: SimOps = SimOps {
        create: "create_dns_zone",
        read: "read_dns_zones",
        update: "update_dns_zone",
        delete: "delete_dns_zone",
    };

    const NOUN: &'static str = "DNS zone";

    fn references(_: &DnsZoneObserved) -> Vec<(&str, &'static str)> {
        Vec::new()
    }

    fn create(s: &mut Inner, cat: &Catalog, spec: &DnsZoneSpec, now: Duration) -> ProviderResult<DnsZoneObserved> {
        Inner::check_region(cat, &spec.region)?;
        Inner::check_name(cat, "DNS zone", &spec.name)?;
        if let Some(p) = dns_name_problem(&spec.domain, NameRules::ZONE) {
            return Err(invalid(format!("DNS zone domain `{}` {p}", spec.domain)));
        }
        if !spec.managed {
            return existing_zone(s, &spec.domain, now);
        }
        if let Some(other) = s.all::<DnsZone>().find(|z| z.domain == spec.domain) {
            return Err(provider_error(
                ErrorKind::AlreadyExists,
                format!(
                    "a DNS zone for `{}` already exists in this account (`{}`); delete it or adopt it",
                    spec.domain, other.id
                ),
            ));
        }
        let ns = name_servers(&spec.domain);
        let mut managed: Vec<ManagedRecord> = ns
            .iter()
            .map(|n| ManagedRecord {
                fqdn: spec.domain.clone(),
                record_type: RecordType::Ns,
                value: n.clone(),
                owner: ZONE_OWNER.into(),
            })
            .collect();
        let primary = ns.first().cloned().unwrap_or_default();
        managed.push(ManagedRecord {
            fqdn: spec.domain.clone(),
            record_type: RecordType::Soa,
            value: format!("{primary} hostmaster.{} 1 7200 900 1209600 86400", spec.domain),
            owner: ZONE_OWNER.into(),
        });
        let obs = DnsZoneObserved {
            id: s.next_id("zone"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            domain: spec.domain.clone(),
            name_servers: ns,
            managed_records: managed,
            tags: spec.tags.clone(),
        };
        Ok(s.create::<DnsZone>(obs, now))
    }

    fn update(
        s: &mut Inner,
        cat: &Catalog,
        id: &str,
        spec: &DnsZoneSpec,
        _now: Duration,
    ) -> ProviderResult<DnsZoneObserved> {
        let cur = s.existing::<DnsZone>(id)?;
        immutable("DNS zone", id, "domain", &cur.domain, &spec.domain)?;
        if !spec.managed {
            // Someone else's zone: its name and tags are theirs.
            return Ok(cur.clone());
        }
        Inner::check_region(cat, &spec.region)?;
        Inner::check_name(cat, "DNS zone", &spec.name)?;
        let mut obs = cur.clone();
        obs.name = spec.name.clone();
        obs.region = spec.region.clone();
        obs.tags = spec.tags.clone();
        s.put::<DnsZone>(obs.clone());
        Ok(obs)
    }

    fn delete(s: &mut Inner, id: &str) -> ProviderResult<()> {
        s.existing::<DnsZone>(id)?;
        let mut held: Vec<String> = s
            .all::<DnsRecord>()
            .filter(|r| r.zone_id == id)
            .map(|r| format!("{} {} ({})", r.fqdn, r.record_type, r.id))
            .collect();
        if !held.is_empty() {
            held.sort();
            return Err(conflict(format!(
                "DNS zone `{id}` still holds {} record(s): {}; delete its records first",
                held.len(),
                held.join(", ")
            )));
        }
        // The records the provider keeps (NS, SOA, certificate validation) go with the zone.
        s.delete_unreferenced::<DnsZone>(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_servers_are_deterministic() {
        let a = name_servers("example.com");
        assert_eq!(a, name_servers("example.com"));
        assert!((2..=4).contains(&a.len()), "{a:?}");
        assert!(a.iter().all(|n| n.starts_with("ns") && n.ends_with(".sim-dns.internal")), "{a:?}");
        let counts: std::collections::BTreeSet<usize> =
            (0..40).map(|i| name_servers(&format!("d{i}.example")).len()).collect();
        assert_eq!(counts.len(), 3, "2, 3 and 4 name servers all occur: {counts:?}");
    }
}
