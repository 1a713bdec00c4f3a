//! The simulated cloud's managed certificates, validated through DNS.
//!
//! Each name's validation record is derived from the name alone (as a real certificate
//! authority keeps it per account and name), so a wildcard and its base share one. Given a
//! validation zone, the provider writes the records it can into that zone itself and the
//! certificate is issued when they cover every name; otherwise it waits in
//! `pending_validation`, and every read checks whether the records now exist in a zone of the
//! simulated cloud (the user created them), which issues it.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::base::error::ErrorKind;
use crate::base::util::rfc3339;
use crate::kind::api::ProviderResult;
use crate::kind::catalog::Catalog;
use crate::kinds::certificate::{ISSUED, MAX_DOMAINS, MAX_DOMAIN_LEN, PENDING_VALIDATION};
use crate::kinds::dns_zone::{dns_name_problem, strip_root, within, NameRules};
use crate::kinds::{
    Certificate, CertificateObserved, CertificateSpec, DnsRecord, DnsZone, ManagedRecord, RecordType, ValidationRecord,
};
use crate::sim::dns_zone::{digest, hex, zone_mut, zone_ref, SIM_DNS_DOMAIN};
use crate::sim::store::{conflict, immutable, invalid, name_key, provider_error, Inner, SimKind, SimOps};

/// Unix time at which the simulated cloud's calendar starts (2026-11-01T00:00:00Z): dates it
/// shows are this plus its clock, so they are the same on every run.
pub(crate) const SIM_EPOCH: u64 = 1_793_491_200;
/// How long a simulated certificate is valid.
const VALIDITY: Duration = Duration::from_secs(90 * 86_400);

/// The validation records of `domains`: one per name, a wildcard sharing its base's.
pub(crate) fn validation_records(domains: &[String]) -> Vec<ValidationRecord> {
    let bases: BTreeSet<&str> = domains.iter().map(|d| d.strip_prefix("*.").unwrap_or(d)).collect();
    bases
        .into_iter()
        .map(|base| ValidationRecord {
            name: format!("_{}.{base}", hex(&digest(&["validation-name", base]), 16)),
            record_type: RecordType::Cname.as_str().into(),
            value: format!("_{}.validation.{SIM_DNS_DOMAIN}", hex(&digest(&["validation-value", base]), 16)),
        })
        .collect()
}

/// Whether `rec` can be resolved: a zone of the cloud for its name holds it, kept by the
/// provider or created by a user.
fn resolvable(s: &Inner, rec: &ValidationRecord, now: Duration) -> bool {
    s.all::<DnsZone>().filter(|z| s.visible(&z.id, now) && within(&rec.name, &z.domain)).any(|z| {
        let managed = z
            .managed_records
            .iter()
            .any(|m| m.fqdn == rec.name && m.record_type == RecordType::Cname && strip_root(&m.value) == rec.value);
        managed
            || s.all::<DnsRecord>().any(|r| {
                r.zone_id == z.id
                    && r.fqdn == rec.name
                    && r.record_type == RecordType::Cname
                    && r.values.iter().map(|v| strip_root(v)).eq([rec.value.as_str()])
            })
    })
}

/// The certificate as it stands now: issued once every validation record resolves.
fn settle(s: &Inner, mut o: CertificateObserved, now: Duration) -> CertificateObserved {
    if o.status == PENDING_VALIDATION && o.validation_records.iter().all(|r| resolvable(s, r, now)) {
        let requested = s.born.get(&o.id).copied().unwrap_or_default();
        o.status = ISSUED.into();
        o.not_after = Some(rfc3339(SIM_EPOCH + (requested + VALIDITY).as_secs()));
    }
    o
}

fn check_domains(domains: &[String]) -> ProviderResult<()> {
    if domains.is_empty() || domains.len() > MAX_DOMAINS {
        return Err(invalid(format!("a certificate covers 1 to {MAX_DOMAINS} names, not {}", domains.len())));
    }
    let mut seen = BTreeSet::new();
    for d in domains {
        if let Some(p) = dns_name_problem(d, NameRules::CERTIFICATE) {
            return Err(invalid(format!("certificate name `{d}` {p}")));
        }
        if d.len() > MAX_DOMAIN_LEN {
            return Err(invalid(format!("certificate name `{d}` is longer than {MAX_DOMAIN_LEN} characters")));
        }
        if !seen.insert(d) {
            return Err(invalid(format!("certificate name `{d}` is listed twice")));
        }
    }
    Ok(())
}

impl SimKind for Certificate {
    const OPS: SimOps = SimOps {
        create: "create_certificate",
        read: "read_certificates",
        update: "update_certificate",
        delete: "delete_certificate",
    };

    const NOUN: &'static str = "certificate";

    fn references(_: &CertificateObserved) -> Vec<(&str, &'static str)> {
        // The validation zone does not pin the certificate: once issued it lives on without it.
        Vec::new()
    }

    fn unique_key(o: &CertificateObserved) -> Option<String> {
        Some(name_key(&o.region, &o.name))
    }

    fn create(
        s: &mut Inner,
        cat: &Catalog,
        spec: &CertificateSpec,
        now: Duration,
    ) -> ProviderResult<CertificateObserved> {
        Inner::check_region(cat, &spec.region)?;
        Inner::check_name(cat, "certificate", &spec.name)?;
        check_domains(&spec.domains)?;
        if let Some(other) = s
            .keyed::<Certificate>(&name_key(&spec.region, &spec.name))
            .find(|c| c.region == spec.region && c.name == spec.name)
        {
            return Err(provider_error(
                ErrorKind::AlreadyExists,
                format!(
                    "a certificate named `{}` already exists in region `{}` (`{}`); pick another name or adopt it",
                    spec.name, spec.region, other.id
                ),
            ));
        }
        let records = validation_records(&spec.domains);
        let mut writes: Vec<ValidationRecord> = Vec::new();
        if let Some(zid) = &spec.validation_zone_id {
            let zone = zone_ref(s, zid, now)?;
            writes = records.iter().filter(|r| within(&r.name, &zone.domain)).cloned().collect();
            for w in &writes {
                let taken = s.all::<DnsRecord>().find(|r| r.zone_id == *zid && r.fqdn == w.name);
                if let Some(r) = taken {
                    return Err(conflict(format!(
                        "the validation record `{}` cannot be written: the {} record `{}` holds that name",
                        w.name, r.record_type, r.id
                    )));
                }
            }
        }
        let id = s.next_id("cert");
        if let Some(zone) = spec.validation_zone_id.as_deref().and_then(|z| zone_mut(s, z)) {
            for w in writes {
                let m =
                    ManagedRecord { fqdn: w.name, record_type: RecordType::Cname, value: w.value, owner: id.clone() };
                zone.managed_records.push(m);
            }
        }
        let obs = CertificateObserved {
            id,
            name: spec.name.clone(),
            region: spec.region.clone(),
            domains: spec.domains.clone(),
            validation_zone_id: spec.validation_zone_id.clone(),
            status: PENDING_VALIDATION.into(),
            validation_records: records,
            not_after: None,
            tags: spec.tags.clone(),
        };
        let obs = s.create::<Certificate>(obs, now);
        // Issued at once when the records just written (or existing ones) cover every name.
        let settled = settle(s, obs, Duration::MAX);
        s.put::<Certificate>(settled.clone());
        Ok(settled)
    }

    fn update(
        s: &mut Inner,
        cat: &Catalog,
        id: &str,
        spec: &CertificateSpec,
        now: Duration,
    ) -> ProviderResult<CertificateObserved> {
        let cur = s.existing::<Certificate>(id)?;
        immutable("certificate", id, "domains", &cur.domains, &spec.domains)?;
        immutable("certificate", id, "validation_zone_id", &cur.validation_zone_id, &spec.validation_zone_id)?;
        immutable("certificate", id, "region", &cur.region, &spec.region)?;
        Inner::check_name(cat, "certificate", &spec.name)?;
        let mut obs = cur.clone();
        obs.name = spec.name.clone();
        obs.tags = spec.tags.clone();
        let obs = settle(s, obs, now);
        s.put::<Certificate>(obs.clone());
        Ok(obs)
    }

    fn delete(s: &mut Inner, id: &str) -> ProviderResult<()> {
        let zone = s.existing::<Certificate>(id)?.validation_zone_id.clone();
        s.delete_unreferenced::<Certificate>(id)?;
        if let Some(z) = zone.as_deref().and_then(|z| zone_mut(s, z)) {
            z.managed_records.retain(|m| m.owner != id);
        }
        Ok(())
    }

    fn observe(s: &Inner, o: CertificateObserved, now: Duration) -> CertificateObserved {
        settle(s, o, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_records_depend_on_the_name_only() {
        let a = validation_records(&["example.com".into(), "*.example.com".into(), "www.example.com".into()]);
        assert_eq!(a.len(), 2, "the wildcard shares its base's record: {a:?}");
        assert_eq!(a, validation_records(&["www.example.com".into(), "example.com".into()]));
        for r in &a {
            assert_eq!(r.record_type, "CNAME");
            assert!(r.name.starts_with('_') && within(&r.name, "example.com"), "{r:?}");
            assert_eq!(dns_name_problem(&r.name, NameRules::RECORD), None);
            assert_eq!(dns_name_problem(&r.value, NameRules::TARGET), None);
        }
        assert_eq!(rfc3339(SIM_EPOCH), "2026-11-01T00:00:00Z");
    }
}
