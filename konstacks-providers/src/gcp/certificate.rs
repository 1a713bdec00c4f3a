//! Certificates: Google-managed SSL certificates (`compute.sslCertificates`, global,
//! `type: MANAGED`).
//!
//! Google validates a managed certificate itself once each of its domains resolves to the load
//! balancer that serves it, and shows no validation records: the catalogue says so
//! (`certificates_validated_by_provider`), so a stack must give the certificate a zone of its
//! own (`validate_in`) and manual validation is refused. The status maps `PROVISIONING` to
//! `pending_validation` and `ACTIVE` to `issued`; the other statuses read back lower-cased
//! (`provisioning_failed`, `renewal_failed`). `expireTime` is the end of validity.
//!
//! SSL certificates have a description but no labels, and neither can change after creation:
//! the tags, the region and the validation zone go into the description at creation (see
//! [`labels`]), and tags changed later go to a *tag record* in the validation zone: a TXT record
//! `_konstacks-<digest of the certificate's name>.<zone>` holding the same payload (see the
//! `dns` module's ownership records), which wins over the description when present and is
//! deleted with the certificate. The id is the certificate's relative resource name
//! (`projects/<p>/global/sslCertificates/<name>`), what a target HTTPS proxy refers to.
//!
//! Google-managed SSL certificates "support up to 100 non-wildcard domains"
//! (cloud.google.com/kubernetes-engine/docs/how-to/managed-certs, read 2026-12-06): a wildcard
//! name is refused before any request. Covering `*.example.com` on GCP needs Certificate
//! Manager with a DNS authorization, which this module does not use.
//! Operations are global operations. Google-managed certificates are free.

use google_cloud_compute_v1::model::ssl_certificate::Type as CertType;
use google_cloud_compute_v1::model::ssl_certificate_managed_ssl_certificate::Status as CertStatus;
use google_cloud_compute_v1::model::{SslCertificate, SslCertificateManagedSslCertificate};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::certificate::{ISSUED, PENDING_VALIDATION};
use konstacks_core::kinds::dns_zone::{dns_name_problem, NameRules};
use konstacks_core::kinds::{Certificate, CertificateObserved, CertificateSpec};
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{Selector, TAG_PATH, TAG_STACK};

use super::dns::{digest, owner_payload, CERT_OF, OWNER_PREFIX};
use super::labels::{self, Payload};
use super::network::{all_pages, names_filter};
use super::{error, immutable, invalid, last_segment, Gcp};

/// Payload field naming the validation zone.
const ZONE: &str = "zone";

/// The name of the tag record of certificate `name` in the zone of `domain`.
fn tag_record_name(name: &str, domain: &str) -> String {
    format!("{OWNER_PREFIX}{}.{domain}", digest(&[CERT_OF, name]))
}

/// The portable status of a managed certificate.
fn status_of(c: &SslCertificate) -> String {
    match c.managed.as_ref().and_then(|m| m.status.as_ref()) {
        Some(CertStatus::Active) => ISSUED.to_string(),
        Some(CertStatus::Provisioning) | None => PENDING_VALIDATION.to_string(),
        Some(other) => other.name().unwrap_or("unknown").to_ascii_lowercase(),
    }
}

fn check_spec(p: &Gcp, spec: &CertificateSpec) -> ProviderResult<String> {
    p.check_region(&spec.region)?;
    let zone = spec.validation_zone_id.clone().ok_or_else(|| {
        invalid(format!(
            "certificate `{}`: Google validates managed certificates itself, only for domains that point at its \
             load balancer; give the certificate a validation zone (`.validate_in(zone)`), manual validation is \
             not possible on GCP",
            spec.name
        ))
    })?;
    if spec.domains.is_empty() {
        return Err(invalid(format!("certificate `{}` covers no domain", spec.name)));
    }
    for d in &spec.domains {
        if let Some(problem) = dns_name_problem(d, NameRules::CERTIFICATE) {
            return Err(invalid(format!("certificate `{}`: domain `{d}` {problem}", spec.name)));
        }
        if d.starts_with("*.") {
            return Err(invalid(format!(
                "certificate `{}`: Google-managed SSL certificates cover up to 100 names but no wildcard (`{d}`); \
                 list the host names themselves (`www.example.com`)",
                spec.name
            )));
        }
    }
    Ok(zone)
}

impl Gcp {
    fn certificate_path(&self, name: &str) -> String {
        format!("projects/{}/global/sslCertificates/{name}", self.project)
    }

    async fn get_certificate(&self, name: &str) -> ProviderResult<Option<SslCertificate>> {
        match self.ssl_certificates.get().set_project(&self.project).set_ssl_certificate(name).send().await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.http_status_code() == Some(404) => Ok(None),
            Err(e) => Err(error::api(format!("reading certificate `{name}`"), e)),
        }
    }

    async fn list_certificates(&self, filter: Option<String>) -> ProviderResult<Vec<SslCertificate>> {
        all_pages(|token| {
            let req = self.ssl_certificates.list().set_project(&self.project).set_page_token(token);
            let req = match &filter {
                Some(f) => req.set_filter(f.clone()),
                None => req,
            };
            async move { req.send().await.map(|p| (p.items, p.next_page_token)) }
        })
        .await
        .map_err(|e| error::api("listing certificates", e))
    }

    /// The tag record of certificate `name` validated in `zone`, if any.
    async fn cert_tag_record(&self, name: &str, zone: &str) -> ProviderResult<Option<Payload>> {
        let domain = match self.zone_domain(zone).await {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let set = self.find_set(zone, &tag_record_name(name, &domain), "TXT").await?;
        Ok(set.as_ref().and_then(owner_payload))
    }

    async fn certificate_observed(&self, c: &SslCertificate) -> ProviderResult<CertificateObserved> {
        let name = c.name.clone().unwrap_or_default();
        let mut payload = labels::from_description(c.description.as_deref()).unwrap_or_default();
        let zone = payload.get(ZONE).map(str::to_string);
        if let Some(z) = &zone {
            if let Some(record) = self.cert_tag_record(&name, z).await? {
                payload.tags = record.tags;
            }
        }
        Ok(CertificateObserved {
            id: self.certificate_path(&name),
            region: payload.get("region").unwrap_or(&self.region).to_string(),
            domains: c.managed.as_ref().map(|m| m.domains.clone()).unwrap_or_default(),
            validation_zone_id: zone,
            status: status_of(c),
            validation_records: Vec::new(),
            not_after: c.expire_time.clone().filter(|t| !t.is_empty()),
            tags: payload.tags,
            name,
        })
    }
}

#[async_trait::async_trait]
impl Api<Certificate> for Gcp {
    async fn create(&self, cx: &OpContext, spec: &CertificateSpec) -> ProviderResult<CertificateObserved> {
        let zone = check_spec(self, spec)?;
        // The zone must exist: its records are what make the domains resolve.
        self.zone_domain(&zone).await?;
        let payload = Payload::new(&spec.tags).with("region", &spec.region).with(ZONE, &zone);
        let mut c = SslCertificate::default();
        c.name = Some(spec.name.clone());
        c.r#type = Some(CertType::Managed);
        c.description = Some(labels::to_description(&payload));
        let mut managed = SslCertificateManagedSslCertificate::default();
        managed.domains = spec.domains.clone();
        c.managed = Some(managed);
        let what = format!("creating certificate `{}`", spec.name);
        let inserted = self
            .insert(cx, &what, &["ssl-certificate", &self.project, &spec.name], |id| {
                self.ssl_certificates.insert().set_project(&self.project).set_request_id(id).set_body(c).send()
            })
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                // Left by an interrupted earlier attempt of the same resource: take it over.
                let found = self.get_certificate(&spec.name).await?;
                let theirs = found.as_ref().and_then(|f| labels::from_description(f.description.as_deref()));
                let mine = theirs.is_some_and(|t| {
                    t.tags.get(TAG_STACK) == spec.tags.get(TAG_STACK) && t.tags.get(TAG_PATH) == spec.tags.get(TAG_PATH)
                });
                if !mine {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        let c = self
            .get_certificate(&spec.name)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("certificate `{}` is not visible yet", spec.name)))?;
        self.certificate_observed(&c).await
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<CertificateObserved>> {
        let (filter, ids): (Option<String>, Vec<String>) = match sel {
            Selector::Ids(ids) if ids.is_empty() => return Ok(Vec::new()),
            Selector::Ids(ids) => {
                let names: Vec<String> = ids.iter().map(|i| last_segment(i).to_string()).collect();
                (Some(names_filter(&names, "")), ids.clone())
            }
            Selector::Stack(_) => (None, Vec::new()),
            _ => return Err(invalid("this selector is not supported by the GCP backend")),
        };
        let mut out = Vec::new();
        for c in self.list_certificates(filter).await? {
            let payload = labels::from_description(c.description.as_deref());
            let keep = match sel {
                Selector::Ids(_) => ids.contains(&self.certificate_path(c.name.as_deref().unwrap_or_default())),
                Selector::Stack(stack) => payload.as_ref().and_then(Payload::stack) == Some(stack.as_str()),
                _ => false,
            };
            if keep {
                out.push(self.certificate_observed(&c).await?);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, _cx: &OpContext, id: &str, spec: &CertificateSpec) -> ProviderResult<CertificateObserved> {
        let zone = check_spec(self, spec)?;
        let name = last_segment(id);
        let c = self
            .get_certificate(name)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("certificate `{id}` does not exist")))?;
        let current = self.certificate_observed(&c).await?;
        let what = format!("certificate `{name}`");
        immutable(&what, "name", &current.name, &spec.name)?;
        immutable(&what, "domains", &current.domains, &spec.domains)?;
        immutable(&what, "validation_zone_id", &current.validation_zone_id, &Some(zone.clone()))?;
        if current.tags != spec.tags {
            let domain = self.zone_domain(&zone).await?;
            let payload = Payload::new(&spec.tags).with(CERT_OF, name);
            self.write_owner(&zone, &tag_record_name(name, &domain), &payload).await?;
        }
        let c = self
            .get_certificate(name)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("certificate `{id}` does not exist")))?;
        self.certificate_observed(&c).await
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let name = last_segment(id);
        let Some(c) = self.get_certificate(name).await? else { return Ok(()) };
        let zone = labels::from_description(c.description.as_deref()).and_then(|p| p.get(ZONE).map(str::to_string));
        let sent = self.ssl_certificates.delete().set_project(&self.project).set_ssl_certificate(name).send().await;
        self.run_delete(cx, &format!("deleting certificate `{name}`"), sent).await?;
        if let Some(zone) = zone {
            match self.zone_domain(&zone).await {
                Ok(domain) => self.delete_set(&zone, &tag_record_name(name, &domain), "TXT").await?,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_portable_ones() {
        let mut c = SslCertificate::default();
        assert_eq!(status_of(&c), PENDING_VALIDATION);
        let mut m = SslCertificateManagedSslCertificate::default();
        m.status = Some(CertStatus::Active);
        c.managed = Some(m.clone());
        assert_eq!(status_of(&c), ISSUED);
        m.status = Some(CertStatus::RenewalFailed);
        c.managed = Some(m);
        assert_eq!(status_of(&c), "renewal_failed");
        assert!(tag_record_name("cert", "example.com").starts_with(OWNER_PREFIX));
    }
}
