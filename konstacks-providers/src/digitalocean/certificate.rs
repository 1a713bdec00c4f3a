//! Managed certificates on DigitalOcean: Let's Encrypt certificates (`/v2/certificates`, type
//! `lets_encrypt`) for names in a domain whose DNS DigitalOcean hosts.
//!
//! - DigitalOcean validates and renews them itself, through the domain's records; there are no
//!   validation records for a user to create, so `validation_records` is always empty and a
//!   certificate validated by hand (no validation zone) is refused before any request: Let's
//!   Encrypt on DigitalOcean only works for domains DigitalOcean serves.
//! - Every name must lie in the validation zone, which must be a DigitalOcean domain (a zone of
//!   this backend; its id is the domain).
//! - `pending` reads as `pending_validation`, `verified` as `issued`, `error` as `failed`.
//! - Certificates cannot be tagged or changed: their region and tags are kept as record tags
//!   (see `owned`), which an update rewrites; a read by stack finds the certificates whose record
//!   names the stack.

use konstacks_core::clock::OpContext;
use konstacks_core::error::ProviderError;
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{Certificate, CertificateObserved, CertificateSpec, Selector, TAG_STACK};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::labels::RecordKind;
use super::owned::{fields_of, owned, Owned};
use super::types::{Links, Paged};
use super::{immutable, invalid, DigitalOcean};

#[derive(Debug, Clone, Serialize)]
struct CertificateCreate {
    name: String,
    #[serde(rename = "type")]
    cert_type: &'static str,
    dns_names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct DoCertificate {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    not_after: Option<String>,
    #[serde(default)]
    dns_names: Vec<String>,
    #[serde(default)]
    state: String,
}

#[derive(Debug, Deserialize)]
struct CertificateEnvelope {
    certificate: DoCertificate,
}

#[derive(Debug, Deserialize)]
struct CertificateList {
    #[serde(default)]
    certificates: Vec<DoCertificate>,
    #[serde(default)]
    links: Option<Links>,
}

impl Paged for CertificateList {
    type Item = DoCertificate;
    fn into_parts(self) -> (Vec<DoCertificate>, Option<Links>) {
        (self.certificates, self.links)
    }
}

fn status_of(state: &str) -> String {
    match state {
        "verified" => "issued".into(),
        "pending" => "pending_validation".into(),
        "error" => "failed".into(),
        other => other.to_string(),
    }
}

/// Why DigitalOcean cannot issue `spec`, decided without a request.
pub(crate) fn check_certificate(spec: &CertificateSpec) -> ProviderResult<&str> {
    let Some(zone) = spec.validation_zone_id.as_deref() else {
        return Err(invalid(format!(
            "certificate `{}`: DigitalOcean issues Let's Encrypt certificates only for domains whose DNS it hosts, \
             and validates them itself; a certificate validated by records you create is not possible here. \
             Add a DNS zone for the domain to the stack and validate the certificate in it",
            spec.name
        )));
    };
    if spec.domains.is_empty() {
        return Err(invalid(format!("certificate `{}` names no domain", spec.name)));
    }
    if let Some(d) = spec.domains.iter().find(|d| {
        let bare = d.strip_prefix("*.").unwrap_or(d);
        !(bare == zone || bare.ends_with(&format!(".{zone}")))
    }) {
        return Err(invalid(format!(
            "certificate `{}`: `{d}` is not in the validation zone `{zone}`; DigitalOcean can only validate names \
             of the domain it hosts",
            spec.name
        )));
    }
    Ok(zone)
}

impl DigitalOcean {
    fn certificate_observed(&self, c: &DoCertificate, zone: Option<String>, w: Owned) -> CertificateObserved {
        let mut domains = c.dns_names.clone();
        domains.sort();
        CertificateObserved {
            id: c.id.clone(),
            name: c.name.clone(),
            region: w.region.unwrap_or_default(),
            domains,
            validation_zone_id: zone,
            status: status_of(&c.state),
            validation_records: Vec::new(),
            not_after: c.not_after.clone().filter(|_| c.state == "verified"),
            tags: w.tags,
        }
    }

    async fn get_certificate(&self, cx: &OpContext, id: &str) -> ProviderResult<DoCertificate> {
        let c: CertificateEnvelope = self
            .client
            .get(cx, &format!("/v2/certificates/{id}"), &[])
            .await
            .map_err(|e| e.into_provider(format!("reading certificate `{id}`")))?;
        Ok(c.certificate)
    }
}

/// The zone a certificate was validated in: the longest of the account's domains that holds
/// every name it covers (Let's Encrypt on DigitalOcean validates through that domain).
fn zone_of(c: &DoCertificate, domains: &[String]) -> Option<String> {
    let holds = |zone: &str, name: &str| {
        let bare = name.strip_prefix("*.").unwrap_or(name);
        bare == zone || bare.ends_with(&format!(".{zone}"))
    };
    domains.iter().filter(|z| c.dns_names.iter().all(|n| holds(z, n))).max_by_key(|z| z.len()).cloned()
}

#[async_trait::async_trait]
impl Api<Certificate> for DigitalOcean {
    async fn create(&self, cx: &OpContext, spec: &CertificateSpec) -> ProviderResult<CertificateObserved> {
        let zone = check_certificate(spec)?.to_string();
        // The key of a record is a fixed-length hash: the name stands in for the id not known yet.
        let fields = fields_of(RecordKind::Certificate, &spec.name, &spec.name, &spec.region, &spec.tags)?;
        let w = Owned { name: None, region: Some(spec.region.clone()), tags: spec.tags.clone() };
        let domains: Vec<String> = self
            .client
            .get::<serde_json::Value>(cx, &format!("/v2/domains/{zone}"), &[])
            .await
            .map(|_| vec![zone.clone()])
            .or_else(|e| if e.is_not_found() { Ok(Vec::new()) } else { Err(e) })
            .map_err(|e| e.into_provider(format!("reading domain `{zone}`")))?;
        if domains.is_empty() {
            return Err(invalid(format!(
                "certificate `{}`: `{zone}` is not a domain on DigitalOcean; Let's Encrypt certificates are only \
                 issued for domains DigitalOcean hosts",
                spec.name
            )));
        }
        // An earlier attempt that was interrupted after the call: certificate names are unique.
        let existing = self
            .client
            .list::<CertificateList>(cx, "/v2/certificates", &[("name", spec.name.clone())])
            .await
            .map_err(|e| e.into_provider("listing certificates"))?;
        let mut want = spec.domains.clone();
        want.sort();
        if let Some(c) = existing.iter().find(|c| c.name == spec.name) {
            let mut have = c.dns_names.clone();
            have.sort();
            if have != want {
                return Err(ProviderError::new(
                    konstacks_core::error::ErrorKind::AlreadyExists,
                    format!("a certificate named `{}` already exists for other names ({have:?})", spec.name),
                ));
            }
            self.write_owned(cx, RecordKind::Certificate, &c.id, &fields).await?;
            return Ok(self.certificate_observed(c, Some(zone), w));
        }
        let body = CertificateCreate { name: spec.name.clone(), cert_type: "lets_encrypt", dns_names: want };
        let c: CertificateEnvelope = self
            .client
            .send(cx, Method::POST, "/v2/certificates", &body)
            .await
            .map_err(|e| e.into_provider(format!("creating certificate `{}`", spec.name)))?;
        self.write_owned(cx, RecordKind::Certificate, &c.certificate.id, &fields).await?;
        Ok(self.certificate_observed(&c.certificate, Some(zone), w))
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<CertificateObserved>> {
        let all = self
            .client
            .list::<CertificateList>(cx, "/v2/certificates", &[])
            .await
            .map_err(|e| e.into_provider("listing certificates"))?;
        let records = self.records(cx).await?;
        let domains = self.all_domains(cx).await?;
        let zone_guess = |c: &DoCertificate| zone_of(c, &domains);
        let of = |c: &DoCertificate| owned(&records, RecordKind::Certificate, &c.id);
        let out = match sel {
            Selector::Ids(ids) => all
                .iter()
                .filter(|c| ids.contains(&c.id))
                .map(|c| self.certificate_observed(c, zone_guess(c), of(c).unwrap_or_default()))
                .collect(),
            Selector::Stack(s) => all
                .iter()
                .filter_map(|c| Some((c, of(c).filter(|w| w.tags.get(TAG_STACK) == Some(s))?)))
                .map(|(c, w)| self.certificate_observed(c, zone_guess(c), w))
                .collect(),
            _ => return Err(invalid("this selector is not supported by the DigitalOcean certificate backend")),
        };
        Ok(out)
    }

    /// Certificates cannot change on DigitalOcean; names and zone are replaced by the engine.
    async fn update(&self, cx: &OpContext, id: &str, spec: &CertificateSpec) -> ProviderResult<CertificateObserved> {
        let zone = check_certificate(spec)?.to_string();
        let c = self.get_certificate(cx, id).await?;
        let (mut have, mut want) = (c.dns_names.clone(), spec.domains.clone());
        have.sort();
        want.sort();
        immutable(&format!("certificate `{id}`"), "domains", &have, &want)?;
        let fields = fields_of(RecordKind::Certificate, id, &spec.name, &spec.region, &spec.tags)?;
        self.write_owned(cx, RecordKind::Certificate, id, &fields).await?;
        let w = Owned { name: None, region: Some(spec.region.clone()), tags: spec.tags.clone() };
        Ok(self.certificate_observed(&c, Some(zone), w))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        match self.client.send_empty::<()>(cx, Method::DELETE, &format!("/v2/certificates/{id}"), None).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into_provider(format!("deleting certificate `{id}`"))),
        }
        self.forget_owned(cx, RecordKind::Certificate, &[id.to_string()]).await
    }
}
