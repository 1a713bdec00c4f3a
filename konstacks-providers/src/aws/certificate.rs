//! Managed certificates on ACM, validated through DNS.
//!
//! A certificate is requested with `ValidationMethod=DNS` (first domain as `DomainName`, the
//! others as subject alternative names) and a deterministic idempotency token, so a retried
//! create returns the same certificate. Given a validation zone, the validation CNAMEs ACM asks
//! for are written into that Route 53 zone (see `dns.rs`: they carry an ownership record naming
//! the certificate and are removed with it) and the create waits, on the operation's clock, for
//! `ISSUED`. Without one, it returns in `pending_validation` with the records the user creates.
//! The validation zone id is kept in an internal tag.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_acm::types::{CertificateDetail, CertificateStatus, Tag, ValidationMethod};
use aws_smithy_types::date_time::Format;
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::certificate::{ISSUED, MAX_DOMAINS, MAX_DOMAIN_LEN, PENDING_VALIDATION};
use konstacks_core::kinds::dns_zone::{dns_name_problem, strip_root, NameRules};
use konstacks_core::kinds::{Certificate, CertificateObserved, CertificateSpec, ValidationRecord};
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{Selector, TAG_PATH, TAG_STACK};

use super::dns::{remove_validation_records, write_validation_records};
use super::error::{aws_code, invalid, sdk_error};
use super::{check_tags, digest, follow_up, name_of, retry_on, visible_tags, wait_for, AwsProvider, Polled};

/// ACM idempotency tokens have at most 32 characters.
const IDEMPOTENCY_TOKEN_LEN: usize = 32;
/// How many derived idempotency tokens a create tries (see `request_certificate`).
const TOKEN_GENERATIONS: u32 = 8;
/// Internal tag holding the validation zone id.
const TAG_ZONE: &str = "konstacks:aws:validation-zone";
/// How long ACM may take to show the validation records of a new certificate.
const RECORDS_LIMIT: Duration = Duration::from_secs(5 * 60);
/// How long a certificate validated in a zone of the stack may take to be issued.
const ISSUE_LIMIT: Duration = Duration::from_secs(45 * 60);
/// How long a delete waits for the load balancers using the certificate to let go of it.
const IN_USE_LIMIT: Duration = Duration::from_secs(5 * 60);

fn check_spec(p: &AwsProvider, spec: &CertificateSpec) -> ProviderResult<String> {
    let what = format!("certificate `{}`", spec.name);
    p.check_region(&what, &spec.region)?;
    p.check_name("certificate", &spec.name)?;
    if spec.domains.is_empty() || spec.domains.len() > MAX_DOMAINS {
        return Err(invalid(format!("{what} covers {} names; 1 to {MAX_DOMAINS} are allowed", spec.domains.len())));
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in &spec.domains {
        if let Some(problem) = dns_name_problem(d, NameRules::CERTIFICATE) {
            return Err(invalid(format!("{what}: name `{d}` {problem}")));
        }
        if d.len() > MAX_DOMAIN_LEN {
            return Err(invalid(format!("{what}: name `{d}` is longer than {MAX_DOMAIN_LEN} characters")));
        }
        if !seen.insert(d) {
            return Err(invalid(format!("{what}: name `{d}` is listed twice")));
        }
    }
    check_tags(&what, &spec.tags, 1)?;
    Ok(what)
}

/// The portable status of an ACM status.
fn status_of(s: Option<&CertificateStatus>) -> String {
    match s {
        Some(CertificateStatus::Issued) => ISSUED.into(),
        Some(CertificateStatus::PendingValidation) | None => PENDING_VALIDATION.into(),
        Some(other) => other.as_str().to_ascii_lowercase(),
    }
}

/// The validation records ACM shows, deduplicated (a wildcard shares its base's), sorted.
fn validation_records(d: &CertificateDetail) -> Vec<ValidationRecord> {
    let mut out: Vec<ValidationRecord> = d
        .domain_validation_options()
        .iter()
        .filter_map(|o| o.resource_record())
        .map(|r| ValidationRecord {
            name: strip_root(r.name()).to_ascii_lowercase(),
            record_type: r.r#type().as_str().to_string(),
            value: strip_root(r.value()).to_ascii_lowercase(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether ACM shows a record for every name.
fn records_complete(d: &CertificateDetail) -> bool {
    !d.domain_validation_options().is_empty()
        && d.domain_validation_options().iter().all(|o| o.resource_record().is_some())
}

impl AwsProvider {
    async fn describe_certificate(&self, arn: &str) -> ProviderResult<Option<CertificateDetail>> {
        match self.serving.acm.describe_certificate().certificate_arn(arn).send().await {
            Ok(out) => Ok(out.certificate().cloned()),
            Err(e) => {
                let e = sdk_error("DescribeCertificate", &format!("reading certificate `{arn}`"), e);
                if e.kind() == ErrorKind::NotFound || aws_code(&e) == Some("ValidationException") {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn certificate_tags(&self, arn: &str) -> ProviderResult<BTreeMap<String, String>> {
        let out =
            self.serving.acm.list_tags_for_certificate().certificate_arn(arn).send().await.map_err(|e| {
                sdk_error("ListTagsForCertificate", &format!("reading the tags of certificate `{arn}`"), e)
            })?;
        Ok(out.tags().iter().map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string())).collect())
    }

    fn certificate_observed(&self, d: &CertificateDetail, tags: &BTreeMap<String, String>) -> CertificateObserved {
        let mut domains: Vec<String> = d.domain_name().map(|s| vec![s.to_string()]).unwrap_or_default();
        for san in d.subject_alternative_names() {
            if !domains.contains(san) {
                domains.push(san.clone());
            }
        }
        CertificateObserved {
            id: d.certificate_arn().unwrap_or_default().to_string(),
            name: name_of(tags),
            region: self.region.clone(),
            domains,
            validation_zone_id: tags.get(TAG_ZONE).cloned(),
            status: status_of(d.status()),
            validation_records: validation_records(d),
            not_after: d.not_after().and_then(|t| t.fmt(Format::DateTime).ok()),
            tags: visible_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        }
    }

    /// Poll until `done` holds for the certificate, on the operation's clock.
    async fn wait_certificate(
        &self,
        cx: &OpContext,
        what: &str,
        arn: &str,
        limit: Duration,
        done: fn(&CertificateDetail) -> bool,
    ) -> ProviderResult<CertificateDetail> {
        wait_for(cx, what, limit, self.settings.timeouts.max_poll, || async move {
            match self.describe_certificate(arn).await? {
                Some(d) if done(&d) => Ok(Polled::Ready(d)),
                Some(d) => Ok(Polled::Pending(status_of(d.status()))),
                None => Err(ProviderError::not_found(format!("certificate `{arn}` is not visible yet"))),
            }
        })
        .await
    }

    async fn delete_certificate_now(&self, cx: &OpContext, arn: &str) -> ProviderResult<()> {
        let what = format!("deleting certificate `{arn}`");
        let result = retry_on(cx, IN_USE_LIMIT, &[ErrorKind::Conflict, ErrorKind::Throttled], || async {
            self.serving
                .acm
                .delete_certificate()
                .certificate_arn(arn)
                .send()
                .await
                .map_err(|e| sdk_error("DeleteCertificate", &what, e))
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == ErrorKind::Conflict => Err(ProviderError::new(
                ErrorKind::Conflict,
                format!(
                    "certificate `{arn}` is still used (by a load balancer listener) after {}s; move the listener \
                     to another certificate or delete it first",
                    IN_USE_LIMIT.as_secs()
                ),
            )
            .with_source(e)),
            Err(e) => Err(e),
        }
    }

    /// RequestCertificate with the idempotency token `token`. ACM remembers a token for an hour,
    /// also after the certificate it made was deleted (a stack destroyed and created again): when
    /// the token leads to a certificate that is gone, tokens derived from it are tried in turn,
    /// so a retried create still finds the certificate it made.
    async fn request_certificate(
        &self,
        cx: &OpContext,
        what: &str,
        spec: &CertificateSpec,
        token: &str,
        tags: Vec<Tag>,
    ) -> ProviderResult<String> {
        let first = spec.domains.first().cloned().unwrap_or_default();
        let rest: Vec<String> = spec.domains.iter().skip(1).cloned().collect();
        let mut last = None;
        for generation in 0..TOKEN_GENERATIONS {
            let derived = if generation == 0 { token.to_string() } else { digest(&[token, &generation.to_string()]) };
            let attempt = &derived[..IDEMPOTENCY_TOKEN_LEN.min(derived.len())];
            let sent = retry_on(cx, Duration::from_secs(10), &[ErrorKind::Throttled, ErrorKind::Transient], || async {
                self.serving
                    .acm
                    .request_certificate()
                    .domain_name(&first)
                    .set_subject_alternative_names((!rest.is_empty()).then(|| rest.clone()))
                    .validation_method(ValidationMethod::Dns)
                    .idempotency_token(attempt)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .map_err(|e| sdk_error("RequestCertificate", &format!("requesting {what}"), e))
            })
            .await;
            let arn = match sent {
                Ok(out) => out.certificate_arn().map(str::to_string),
                // The service failed on this token twice: an emulator's answer to a token of a
                // deleted certificate. Try the next one.
                Err(e) if e.kind() == ErrorKind::Transient => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(arn) = arn else { return Err(invalid("internal: RequestCertificate answered no ARN")) };
            let seen = follow_up(cx, Duration::from_secs(10), || async {
                self.describe_certificate(&arn)
                    .await?
                    .ok_or_else(|| ProviderError::not_found(format!("certificate `{arn}` is not visible yet")))
            })
            .await;
            match seen {
                Ok(_) => return Ok(arn),
                Err(e) if e.kind() == ErrorKind::NotFound => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| invalid(format!("{what}: no certificate could be requested"))))
    }

    /// After the request: records, their writing, the wait for issue.
    async fn finish_certificate(
        &self,
        cx: &OpContext,
        what: &str,
        arn: &str,
        spec: &CertificateSpec,
    ) -> ProviderResult<CertificateDetail> {
        let detail = self
            .wait_certificate(
                cx,
                &format!("{what}: waiting for its validation records"),
                arn,
                RECORDS_LIMIT,
                records_complete,
            )
            .await?;
        let Some(zone) = &spec.validation_zone_id else { return Ok(detail) };
        if status_of(detail.status()) == ISSUED {
            return Ok(detail);
        }
        let records: Vec<(String, String)> =
            validation_records(&detail).into_iter().map(|r| (r.name, r.value)).collect();
        let patience = self.settings.timeouts.follow_up;
        follow_up(cx, patience, || write_validation_records(self, cx, zone, arn, &records)).await?;
        self.wait_certificate(cx, &format!("{what}: waiting for it to be issued"), arn, ISSUE_LIMIT, |d| {
            d.status() != Some(&CertificateStatus::PendingValidation)
        })
        .await
    }
}

#[async_trait::async_trait]
impl Api<Certificate> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &CertificateSpec) -> ProviderResult<CertificateObserved> {
        let what = check_spec(self, spec)?;
        if let Some(zone) = &spec.validation_zone_id {
            // The zone must exist before anything is requested.
            self.zone_domain(zone).await?;
        }
        let stack = spec.tags.get(TAG_STACK).cloned().unwrap_or_else(|| cx.stack.clone());
        let path = spec.tags.get(TAG_PATH).cloned().unwrap_or_else(|| spec.name.clone());
        let zone_tag = spec.validation_zone_id.clone().unwrap_or_default();
        let token = digest(&["certificate", &stack, &path, &spec.domains.join(","), &zone_tag]);
        let mut all_tags = spec.tags.clone();
        if let Some(z) = &spec.validation_zone_id {
            all_tags.insert(TAG_ZONE.into(), z.clone());
        }
        let mut tags: Vec<Tag> = Vec::new();
        for (k, v) in &all_tags {
            tags.push(Tag::builder().key(k).value(v).build().map_err(|e| invalid(format!("internal: a tag: {e}")))?);
        }
        let arn = self.request_certificate(cx, &what, spec, &token, tags).await?;
        let detail = match self.finish_certificate(cx, &what, &arn, spec).await {
            Ok(d) => d,
            Err(e) if e.kind() != ErrorKind::Transient && e.kind() != ErrorKind::Cancelled => {
                // Failed for good: take back what was made.
                if let Some(zone) = &spec.validation_zone_id {
                    if let Err(undo) = remove_validation_records(self, cx, zone, &arn).await {
                        tracing::warn!(certificate = %arn, error = %undo, "could not remove validation records");
                    }
                }
                if let Err(undo) = self.delete_certificate_now(cx, &arn).await {
                    tracing::warn!(certificate = %arn, error = %undo, "could not delete a half-created certificate");
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        Ok(self.certificate_observed(&detail, &all_tags))
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<CertificateObserved>> {
        let (arns, stack): (Vec<String>, Option<&String>) = match sel {
            Selector::Ids(ids) => (ids.clone(), None),
            Selector::Stack(stack) => {
                let mut arns = Vec::new();
                let mut next: Option<String> = None;
                loop {
                    let page = self
                        .serving
                        .acm
                        .list_certificates()
                        .set_next_token(next.take())
                        .send()
                        .await
                        .map_err(|e| sdk_error("ListCertificates", "listing certificates", e))?;
                    arns.extend(
                        page.certificate_summary_list().iter().filter_map(|c| c.certificate_arn().map(str::to_string)),
                    );
                    match page.next_token() {
                        Some(t) if !t.is_empty() => next = Some(t.to_string()),
                        _ => break,
                    }
                }
                (arns, Some(stack))
            }
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        };
        let mut arns = arns;
        arns.sort();
        arns.dedup();
        let mut out = Vec::new();
        for arn in arns {
            let tags = match self.certificate_tags(&arn).await {
                Ok(t) => t,
                Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::InvalidSpec => continue,
                Err(e) => return Err(e),
            };
            if stack.is_some_and(|s| tags.get(TAG_STACK) != Some(s)) {
                continue;
            }
            if let Some(d) = self.describe_certificate(&arn).await? {
                out.push(self.certificate_observed(&d, &tags));
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, _cx: &OpContext, id: &str, spec: &CertificateSpec) -> ProviderResult<CertificateObserved> {
        let what = check_spec(self, spec)?;
        let d = self
            .describe_certificate(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("{what} (`{id}`) does not exist")))?;
        let current = self.certificate_tags(id).await?;
        let seen = self.certificate_observed(&d, &current);
        if seen.validation_zone_id != spec.validation_zone_id {
            return Err(invalid(format!("{what}: the validation zone cannot change; replace the certificate")));
        }
        let mut sorted_seen = seen.domains.clone();
        sorted_seen.sort();
        let mut sorted_want = spec.domains.clone();
        sorted_want.sort();
        if sorted_seen != sorted_want {
            return Err(invalid(format!("{what}: the names cannot change; replace the certificate")));
        }
        let mut desired = spec.tags.clone();
        if let Some(z) = &spec.validation_zone_id {
            desired.insert(TAG_ZONE.into(), z.clone());
        }
        let add: Vec<Tag> = desired
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
            .collect();
        let remove: Vec<Tag> = current
            .iter()
            .filter(|(k, _)| !desired.contains_key(*k) && !k.starts_with("aws:"))
            .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
            .collect();
        if !remove.is_empty() {
            self.serving
                .acm
                .remove_tags_from_certificate()
                .certificate_arn(id)
                .set_tags(Some(remove))
                .send()
                .await
                .map_err(|e| sdk_error("RemoveTagsFromCertificate", &format!("retagging {what}"), e))?;
        }
        if !add.is_empty() {
            self.serving
                .acm
                .add_tags_to_certificate()
                .certificate_arn(id)
                .set_tags(Some(add))
                .send()
                .await
                .map_err(|e| sdk_error("AddTagsToCertificate", &format!("retagging {what}"), e))?;
        }
        Ok(self.certificate_observed(&d, &desired))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let Some(_) = self.describe_certificate(id).await? else { return Ok(()) };
        let tags = self.certificate_tags(id).await.unwrap_or_default();
        self.delete_certificate_now(cx, id).await?;
        if let Some(zone) = tags.get(TAG_ZONE) {
            remove_validation_records(self, cx, zone, id).await?;
        }
        Ok(())
    }
}
