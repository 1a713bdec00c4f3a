//! The DNS suite: a zone, records of several types in it, the rules every DNS API enforces (no
//! CNAME at the apex, a CNAME shares its name with nothing), and managed certificates validated
//! in the zone by the provider and by records the user creates.

use crate::base::clock::OpContext;
use crate::contract::{
    api, call_failed, ensure, eventually, failure, field, retry, same_set, tags, ContractFailure, ContractOptions, Run,
    CONTRACT_TAG, RETRY_CREATE, RETRY_UPDATE,
};
use crate::kind::api::Api;
use crate::kind::{ResourceKind, Selector};
use crate::kinds::dns_zone::{dns_name_problem, within, NameRules};
use crate::kinds::{
    Certificate, CertificateObserved, CertificateSpec, DnsRecord, DnsRecordObserved, DnsRecordSpec, DnsZone,
    DnsZoneObserved, DnsZoneSpec, RecordType,
};
use crate::provider::Provider;

/// The DNS suite.
pub async fn run_dns(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    let mut run = Run::new(p, cx, o, "dns");
    let result = dns_checks(&mut run).await;
    run.finish(result).await
}

fn record_spec(run: &Run<'_>, leaf: &str, zone: &str, fqdn: &str, t: RecordType, values: &[&str]) -> DnsRecordSpec {
    DnsRecordSpec {
        name: run.name(leaf),
        region: run.o.region.clone(),
        zone_id: zone.to_string(),
        fqdn: fqdn.to_string(),
        record_type: t,
        values: values.iter().map(|v| v.to_string()).collect(),
        ttl: (t != RecordType::Alias).then_some(300),
        tags: run.tags(leaf),
    }
}

async fn dns_checks(run: &mut Run<'_>) -> Result<(), ContractFailure> {
    let (zones, records, certs) = (api::<DnsZone>(run)?, api::<DnsRecord>(run)?, api::<Certificate>(run)?);
    let (zones, records, certs) = (&*zones, &*records, &*certs);
    let cx = run.cx;
    let domain = format!("{}.konstacks.test", run.o.stack);
    let setup = run.check("setup");
    if let Some(p) = dns_name_problem(&domain, NameRules::ZONE) {
        return Err(failure(
            &setup,
            format!("the suite's domain `{domain}` {p}; pick a stack name that is a DNS label"),
        ));
    }

    // The zone.
    let zspec = DnsZoneSpec {
        name: run.name("zone"),
        region: run.o.region.clone(),
        domain: domain.clone(),
        assumed_million_queries: 1.0,
        managed: true,
        tags: run.tags("zone"),
    };
    let check = run.check("create_dns_zone");
    let zone = run.create(DnsZone::KIND, &check, || zones.create(cx, &zspec)).await?;
    check_zone(&check, &zspec, &zone)?;
    let check = run.check("read_dns_zones");
    let read = move |sel: Selector| async move { zones.read_many(cx, &sel).await };
    let got = run.check_reads(&check, &zone.id, read).await?;
    check_zone(&check, &zspec, &got)?;
    let check = run.check("update_dns_zone");
    let mut upd = zspec.clone();
    upd.tags.insert(CONTRACT_TAG.into(), "updated".into());
    let updated = retry(cx, RETRY_UPDATE, || zones.update(cx, &zone.id, &upd))
        .await
        .map_err(|e| call_failed(&check, "update_dns_zone", &e))?;
    check_zone(&check, &upd, &updated)?;
    existing_zone(run, zones, &zspec, &upd, &zone).await?;

    // Records.
    let www = format!("www.{domain}");
    let a_spec = record_spec(run, "www", &zone.id, &www, RecordType::A, &["203.0.113.10"]);
    let check = run.check("create_dns_record");
    let a = run.create(DnsRecord::KIND, &check, || records.create(cx, &a_spec)).await?;
    check_record(&check, &a_spec, &a)?;
    let check = run.check("read_dns_records");
    let read = move |sel: Selector| async move { records.read_many(cx, &sel).await };
    let got = run.check_reads(&check, &a.id, read).await?;
    check_record(&check, &a_spec, &got)?;
    let check = run.check("update_dns_record");
    let mut a_upd = a_spec.clone();
    a_upd.values.push("203.0.113.11".into());
    a_upd.ttl = Some(600);
    let updated = retry(cx, RETRY_UPDATE, || records.update(cx, &a.id, &a_upd))
        .await
        .map_err(|e| call_failed(&check, "update_dns_record", &e))?;
    check_record(&check, &a_upd, &updated)?;
    let ids = Selector::Ids(vec![a.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the modified record",
        || read(ids.clone()),
        |v| v.iter().any(|r| r.ttl == Some(600) && r.values.len() == 2),
    )
    .await?;

    let check = run.check("record_types");
    let specs = [
        record_spec(run, "app", &zone.id, &format!("app.{domain}"), RecordType::Cname, &[www.as_str()]),
        record_spec(run, "spf", &zone.id, &domain, RecordType::Txt, &["v=spf1 -all"]),
        record_spec(run, "mail", &zone.id, &domain, RecordType::Mx, &[&format!("10 mx.{domain}")]),
        record_spec(run, "caa", &zone.id, &domain, RecordType::Caa, &["0 issue \"letsencrypt.org\""]),
        record_spec(run, "v6", &zone.id, &www, RecordType::Aaaa, &["2001:db8::10"]),
    ];
    let mut made: Vec<DnsRecordObserved> = Vec::new();
    for spec in &specs {
        let r = run.create(DnsRecord::KIND, &check, || records.create(cx, spec)).await?;
        check_record(&check, spec, &r)?;
        made.push(r);
    }

    // What no DNS API accepts.
    let apex_cname = record_spec(run, "apex-cname", &zone.id, &domain, RecordType::Cname, &[www.as_str()]);
    refused(run, records, "cname_at_apex", &apex_cname).await?;
    let beside = record_spec(run, "beside-cname", &zone.id, &format!("app.{domain}"), RecordType::A, &["203.0.113.12"]);
    refused(run, records, "cname_exclusive", &beside).await?;

    // A certificate validated by the provider in the zone.
    let check = run.check("create_certificate");
    let cspec = CertificateSpec {
        name: run.name("cert"),
        region: run.o.region.clone(),
        // Exact names where the provider's managed certificates take no wildcard.
        domains: match run.p.catalog().certificates_without_wildcards {
            true => vec![domain.clone(), format!("www.{domain}")],
            false => vec![domain.clone(), format!("*.{domain}")],
        },
        validation_zone_id: Some(zone.id.clone()),
        tags: run.tags("cert"),
    };
    let self_validated = run.p.catalog().certificates_validated_by_provider;
    let cert = run.create(Certificate::KIND, &check, || certs.create(cx, &cspec)).await?;
    check_certificate(&check, &cspec, &cert, &domain, self_validated)?;
    let check = run.check("read_certificates");
    let read_certs = move |sel: Selector| async move { certs.read_many(cx, &sel).await };
    run.check_reads(&check, &cert.id, read_certs).await?;
    let ids = Selector::Ids(vec![cert.id.clone()]);
    eventually(
        cx,
        &check,
        "waiting for the certificate to be issued",
        || read_certs(ids.clone()),
        |v| v.iter().any(|c| c.status == "issued" && c.not_after.is_some()),
    )
    .await?;
    let check = run.check("update_certificate");
    let mut c_upd = cspec.clone();
    c_upd.tags.insert(CONTRACT_TAG.into(), "updated".into());
    let updated = retry(cx, RETRY_UPDATE, || certs.update(cx, &cert.id, &c_upd))
        .await
        .map_err(|e| call_failed(&check, "update_certificate", &e))?;
    tags(&check, &c_upd.tags, &updated.tags)?;

    // A certificate validated by records the user creates (refused where the provider validates
    // every certificate itself).
    let check = run.check("manual_validation");
    let manual = format!("manual.{domain}");
    let mspec = CertificateSpec {
        name: run.name("manual-cert"),
        region: run.o.region.clone(),
        domains: vec![manual.clone()],
        validation_zone_id: None,
        tags: run.tags("manual-cert"),
    };
    if self_validated {
        if let Ok(c) = retry(cx, RETRY_CREATE, || certs.create(cx, &mspec)).await {
            let _ = run.delete_raw(Certificate::KIND, &c.id).await;
            return Err(failure(
                &check,
                "the catalogue says certificates are validated by the provider only, yet one without a \
                 validation zone was accepted",
            ));
        }
    } else {
        manual_validation(run, &mspec, &zone.id, &domain, &mut made).await?;
    }

    for r in made.iter().rev() {
        run.delete(DnsRecord::KIND, &r.id).await?;
    }
    run.delete(DnsRecord::KIND, &a.id).await?;
    run.delete(Certificate::KIND, &cert.id).await?;
    run.delete(DnsZone::KIND, &zone.id).await
}

/// A certificate nobody validated stays unissued until the user creates its validation
/// records in the zone; the records made are added to `made`.
async fn manual_validation(
    run: &mut Run<'_>,
    mspec: &CertificateSpec,
    zone_id: &str,
    domain: &str,
    made: &mut Vec<DnsRecordObserved>,
) -> Result<(), ContractFailure> {
    let (records, certs) = (api::<DnsRecord>(run)?, api::<Certificate>(run)?);
    let (records, certs) = (&*records, &*certs);
    let cx = run.cx;
    let check = run.check("manual_validation");
    let mcert = run.create(Certificate::KIND, &check, || certs.create(cx, mspec)).await?;
    check_certificate(&check, mspec, &mcert, domain, false)?;
    ensure(mcert.status != "issued", &check, || format!("a certificate nobody validated is {}", mcert.status))?;
    for (n, v) in mcert.validation_records.iter().enumerate() {
        let leaf = format!("validation-{n}");
        let spec = record_spec(run, &leaf, zone_id, &v.name, RecordType::Cname, &[v.value.as_str()]);
        made.push(run.create(DnsRecord::KIND, &check, || records.create(cx, &spec)).await?);
    }
    let ids = Selector::Ids(vec![mcert.id.clone()]);
    let read_certs = move |sel: Selector| async move { certs.read_many(cx, &sel).await };
    eventually(
        cx,
        &check,
        "waiting for the validated certificate",
        || read_certs(ids.clone()),
        |v| v.iter().any(|c| c.status == "issued"),
    )
    .await?;
    run.delete(Certificate::KIND, &mcert.id).await
}

/// A record the API must refuse; one it accepts anyway is deleted and reported.
async fn refused(
    run: &mut Run<'_>,
    records: &dyn Api<DnsRecord>,
    name: &str,
    spec: &DnsRecordSpec,
) -> Result<(), ContractFailure> {
    let check = run.check(name);
    match retry(run.cx, RETRY_CREATE, || records.create(run.cx, spec)).await {
        Err(_) => Ok(()),
        Ok(r) => {
            let _ = run.delete_raw(DnsRecord::KIND, &r.id).await;
            Err(failure(
                &check,
                format!("the API accepted a {} record `{}` it must refuse", spec.record_type, spec.fqdn),
            ))
        }
    }
}

/// A zone used without being owned (`managed: false`): found by its domain (the suite's own
/// zone, under another name and tags), left as it is by an update, and a missing one refused
/// without creating anything, as an error that is not retried as eventual consistency.
async fn existing_zone(
    run: &Run<'_>,
    zones: &dyn Api<DnsZone>,
    zspec: &DnsZoneSpec,
    owner: &DnsZoneSpec,
    zone: &DnsZoneObserved,
) -> Result<(), ContractFailure> {
    let cx = run.cx;
    let check = run.check("existing_dns_zone");
    let used =
        DnsZoneSpec { name: run.name("used-zone"), managed: false, tags: run.tags("used-zone"), ..zspec.clone() };
    let found = retry(cx, RETRY_CREATE, || zones.create(cx, &used))
        .await
        .map_err(|e| call_failed(&check, "create_dns_zone (existing)", &e))?;
    field(&check, "id", &zone.id, &found.id)?;
    field(&check, "domain", &zspec.domain, &found.domain)?;
    tags(&check, &owner.tags, &found.tags)?;
    let kept = retry(cx, RETRY_UPDATE, || zones.update(cx, &zone.id, &used))
        .await
        .map_err(|e| call_failed(&check, "update_dns_zone (existing)", &e))?;
    tags(&check, &owner.tags, &kept.tags)?;
    let missing = DnsZoneSpec { domain: format!("missing-{}", zspec.domain), ..used };
    match zones.create(cx, &missing).await {
        Ok(z) => {
            Err(failure(&check, format!("a zone for `{}` that does not exist was answered: {}", missing.domain, z.id)))
        }
        Err(e) if e.kind() == crate::base::error::ErrorKind::NotFound => Err(failure(
            &check,
            format!("a missing zone is reported as not found, which callers retry as eventual consistency: {e}"),
        )),
        Err(_) => {
            let all = zones.read_many(cx, &Selector::Stack(run.o.stack.clone())).await;
            let made = all.map(|v| v.iter().any(|z| z.domain == missing.domain)).unwrap_or(false);
            ensure(!made, &check, || format!("looking up `{}` created a zone", missing.domain))
        }
    }
}

fn check_zone(check: &str, want: &DnsZoneSpec, got: &DnsZoneObserved) -> Result<(), ContractFailure> {
    field(check, "name", &want.name, &got.name)?;
    field(check, "domain", &want.domain, &got.domain)?;
    ensure(!got.name_servers.is_empty(), check, || "field `name_servers` is empty".into())?;
    ensure(got.name_servers.iter().all(|n| dns_name_problem(n, NameRules::TARGET).is_none()), check, || {
        format!("field `name_servers` holds names that are not host names: {:?}", got.name_servers)
    })?;
    tags(check, &want.tags, &got.tags)
}

fn check_record(check: &str, want: &DnsRecordSpec, got: &DnsRecordObserved) -> Result<(), ContractFailure> {
    field(check, "zone_id", &want.zone_id, &got.zone_id)?;
    field(check, "fqdn", &want.fqdn, &got.fqdn)?;
    field(check, "record_type", &want.record_type, &got.record_type)?;
    same_set(check, "values", &want.values, &got.values)?;
    field(check, "ttl", &want.ttl, &got.ttl)?;
    tags(check, &want.tags, &got.tags)
}

fn check_certificate(
    check: &str,
    want: &CertificateSpec,
    got: &CertificateObserved,
    domain: &str,
    self_validated: bool,
) -> Result<(), ContractFailure> {
    field(check, "name", &want.name, &got.name)?;
    same_set(check, "domains", &want.domains, &got.domains)?;
    field(check, "validation_zone_id", &want.validation_zone_id, &got.validation_zone_id)?;
    ensure(!got.status.is_empty(), check, || "field `status` is empty".into())?;
    if self_validated {
        return tags(check, &want.tags, &got.tags);
    }
    ensure(!got.validation_records.is_empty(), check, || "field `validation_records` is empty".into())?;
    ensure(got.validation_records.iter().all(|r| r.record_type == "CNAME" && within(&r.name, domain)), check, || {
        format!("validation records must be CNAMEs under `{domain}`: {:?}", got.validation_records)
    })?;
    tags(check, &want.tags, &got.tags)
}
