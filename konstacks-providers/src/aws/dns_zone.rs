//! DNS zones: Route 53 public hosted zones, tagged through ChangeTagsForResource, with a
//! deterministic caller reference so a retried create finds the zone it made. A zone is deleted
//! with the certificate validation records Konstacks keeps in it; any other record makes the
//! delete fail with a conflict that names it. A zone the stack does not own (`managed: false`)
//! is found by its domain among the public zones and never changed (the engine never deletes it).

use std::collections::BTreeMap;

use aws_sdk_route53::operation::get_hosted_zone::GetHostedZoneOutput;
use aws_sdk_route53::types::{ChangeAction, Tag, TagResourceType};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::dns_zone::{dns_name_problem, NameRules};
use konstacks_core::kinds::{DnsZone, DnsZoneObserved, DnsZoneSpec, ManagedRecord, RecordType};
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{Selector, TAG_PATH, TAG_STACK};

use super::dns::{bare_zone_id, change, plain_name, values_of, TAG_BATCH, ZONE_OWNER};
use super::error::{aws_code, invalid, sdk_error};
use super::{check_tags, digest, follow_up, name_of, visible_tags, AwsProvider, INTERNAL_TAG_PREFIX};

impl AwsProvider {
    async fn zone_observed(
        &self,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> ProviderResult<Option<DnsZoneObserved>> {
        match self.hosted_zone(id).await? {
            Some(out) => self.zone_observed_from(&out, tags).await,
            None => Ok(None),
        }
    }

    /// The observed zone from its GetHostedZone answer, its tags and its record sets.
    async fn zone_observed_from(
        &self,
        out: &GetHostedZoneOutput,
        tags: &BTreeMap<String, String>,
    ) -> ProviderResult<Option<DnsZoneObserved>> {
        let Some(z) = out.hosted_zone() else { return Ok(None) };
        let id = bare_zone_id(z.id());
        let domain = plain_name(z.name());
        let mut name_servers: Vec<String> =
            out.delegation_set().map(|d| d.name_servers().iter().map(|n| plain_name(n)).collect()).unwrap_or_default();
        let records = self.zone_records(id, &domain).await?;
        let mut managed = Vec::new();
        for ((fqdn, t), set) in &records.sets {
            if fqdn == &domain && matches!(t, RecordType::Ns | RecordType::Soa) {
                let values = if *t == RecordType::Soa {
                    set.resource_records().iter().map(|v| v.value().to_string()).collect()
                } else {
                    values_of(set, *t)
                };
                if *t == RecordType::Ns && name_servers.is_empty() {
                    name_servers = values.clone();
                }
                for value in values {
                    managed.push(ManagedRecord {
                        fqdn: fqdn.clone(),
                        record_type: *t,
                        value,
                        owner: ZONE_OWNER.into(),
                    });
                }
            } else if let Some((o, _)) = records.owned.get(&(fqdn.clone(), *t)) {
                for owner in &o.owners {
                    for value in values_of(set, *t) {
                        managed.push(ManagedRecord {
                            fqdn: fqdn.clone(),
                            record_type: *t,
                            value,
                            owner: owner.clone(),
                        });
                    }
                }
            }
        }
        managed.sort_by(|a, b| {
            (&a.fqdn, a.record_type, &a.value, &a.owner).cmp(&(&b.fqdn, b.record_type, &b.value, &b.owner))
        });
        Ok(Some(DnsZoneObserved {
            id: bare_zone_id(z.id()).to_string(),
            name: name_of(tags),
            region: self.region.clone(),
            domain,
            name_servers,
            managed_records: managed,
            tags: visible_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        }))
    }

    /// Bring the tags of zone `id` from `current` to `desired`, 10 changes per call.
    async fn sync_zone_tags(
        &self,
        id: &str,
        current: &BTreeMap<String, String>,
        desired: &BTreeMap<String, String>,
    ) -> ProviderResult<()> {
        let add: Vec<Tag> = desired
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let remove: Vec<String> = current
            .keys()
            .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:") && !k.starts_with(INTERNAL_TAG_PREFIX))
            .cloned()
            .collect();
        let what = format!("tagging DNS zone `{id}`");
        for chunk in add.chunks(TAG_BATCH) {
            self.serving
                .route53
                .change_tags_for_resource()
                .resource_type(TagResourceType::Hostedzone)
                .resource_id(bare_zone_id(id))
                .set_add_tags(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| sdk_error("ChangeTagsForResource", &what, e))?;
        }
        for chunk in remove.chunks(TAG_BATCH) {
            self.serving
                .route53
                .change_tags_for_resource()
                .resource_type(TagResourceType::Hostedzone)
                .resource_id(bare_zone_id(id))
                .set_remove_tag_keys(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| sdk_error("ChangeTagsForResource", &what, e))?;
        }
        Ok(())
    }

    /// The public hosted zone for `domain` that a stack uses without owning it.
    async fn existing_zone(&self, domain: &str) -> ProviderResult<DnsZoneObserved> {
        let found = self
            .all_zones()
            .await?
            .into_iter()
            .find(|z| plain_name(z.name()) == domain && !z.config().is_some_and(|c| c.private_zone()));
        let Some(z) = found else {
            // Not `NotFound`, which is retried as eventual consistency: the zone's owner must apply first.
            return Err(invalid(format!(
                "no public Route 53 hosted zone for `{domain}` exists; the stack uses it without creating it: \
                 apply the stack that owns the zone first (or create the zone), then apply again"
            )));
        };
        let id = bare_zone_id(z.id()).to_string();
        let tags = self.zone_tags(std::slice::from_ref(&id)).await?.remove(&id).unwrap_or_default();
        self.zone_observed(&id, &tags).await?.ok_or_else(|| {
            ProviderError::not_found(format!("the hosted zone `{id}` for `{domain}` is not visible yet"))
        })
    }

    async fn delete_zone_now(&self, id: &str) -> ProviderResult<()> {
        match self.serving.route53.delete_hosted_zone().id(bare_zone_id(id)).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = sdk_error("DeleteHostedZone", &format!("deleting DNS zone `{id}`"), e);
                if e.kind() == ErrorKind::NotFound {
                    Ok(())
                } else if aws_code(&e) == Some("HostedZoneNotEmpty") {
                    Err(ProviderError::new(
                        ErrorKind::Conflict,
                        format!("DNS zone `{id}` still holds records; delete its records first"),
                    )
                    .with_source(e))
                } else {
                    Err(e)
                }
            }
        }
    }
}

// ---- zones ----

fn check_zone_spec(p: &AwsProvider, spec: &DnsZoneSpec) -> ProviderResult<String> {
    let what = format!("DNS zone `{}`", spec.name);
    p.check_region(&what, &spec.region)?;
    p.check_name("DNS zone", &spec.name)?;
    if let Some(problem) = dns_name_problem(&spec.domain, NameRules::ZONE) {
        return Err(invalid(format!("{what}: domain `{}` {problem}", spec.domain)));
    }
    check_tags(&what, &spec.tags, 0)?;
    Ok(what)
}

#[async_trait::async_trait]
impl Api<DnsZone> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &DnsZoneSpec) -> ProviderResult<DnsZoneObserved> {
        let what = check_zone_spec(self, spec)?;
        if !spec.managed {
            return self.existing_zone(&spec.domain).await;
        }
        let stack = spec.tags.get(TAG_STACK).cloned().unwrap_or_else(|| cx.stack.clone());
        let path = spec.tags.get(TAG_PATH).cloned().unwrap_or_else(|| spec.name.clone());
        let reference = format!("ks-{}", digest(&["dns-zone", &stack, &path, &spec.domain]));
        let created = self
            .serving
            .route53
            .create_hosted_zone()
            .name(&spec.domain)
            .caller_reference(&reference)
            .send()
            .await
            .map_err(|e| sdk_error("CreateHostedZone", &format!("creating {what}"), e));
        let (id, change) = match created {
            Ok(out) => {
                let z = out.hosted_zone().ok_or_else(|| invalid("internal: CreateHostedZone answered no zone"))?;
                (bare_zone_id(z.id()).to_string(), out.change_info().map(|c| (c.id().to_string(), c.status().clone())))
            }
            Err(e) if aws_code(&e) == Some("HostedZoneAlreadyExists") => {
                // A retried create: the zone made with this caller reference is ours.
                let mine = self
                    .all_zones()
                    .await?
                    .into_iter()
                    .find(|z| z.caller_reference() == reference && plain_name(z.name()) == spec.domain);
                match mine {
                    Some(z) => (bare_zone_id(z.id()).to_string(), None),
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let patience = self.settings.timeouts.follow_up;
        let untagged = BTreeMap::new();
        let tagged = follow_up(cx, patience, || self.sync_zone_tags(&id, &untagged, &spec.tags)).await;
        if let Err(e) = tagged {
            // An untagged zone would never be found again: take it back.
            if let Err(undo) = self.delete_zone_now(&id).await {
                tracing::warn!(zone = %id, error = %undo, "could not delete a DNS zone whose tagging failed");
            }
            return Err(e);
        }
        if let Some((change_id, status)) = change {
            self.wait_change(cx, &format!("creating {what}"), &change_id, &status).await?;
        }
        follow_up(cx, patience, || async {
            self.zone_observed(&id, &spec.tags)
                .await?
                .ok_or_else(|| ProviderError::not_found(format!("{what} `{id}` is not visible yet")))
        })
        .await
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DnsZoneObserved>> {
        let mut out = Vec::new();
        match sel {
            Selector::Ids(ids) => {
                let mut ids: Vec<String> = ids.iter().map(|i| bare_zone_id(i).to_string()).collect();
                ids.sort();
                ids.dedup();
                let mut found = Vec::new();
                for id in ids {
                    if let Some(z) = self.hosted_zone(&id).await? {
                        found.push((id, z));
                    }
                }
                let ids: Vec<String> = found.iter().map(|(id, _)| id.clone()).collect();
                let tags = self.zone_tags(&ids).await?;
                for (id, z) in &found {
                    let tags = tags.get(id).cloned().unwrap_or_default();
                    out.extend(self.zone_observed_from(z, &tags).await?);
                }
            }
            Selector::Stack(stack) => {
                for (id, tags) in self.stack_zones(stack).await? {
                    out.extend(self.zone_observed(&id, &tags).await?);
                }
            }
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, _cx: &OpContext, id: &str, spec: &DnsZoneSpec) -> ProviderResult<DnsZoneObserved> {
        let what = check_zone_spec(self, spec)?;
        let domain = self.zone_domain(id).await?;
        if domain != spec.domain {
            return Err(invalid(format!(
                "{what}: the domain of zone `{id}` is `{domain}` and cannot change to `{}`; replace the zone",
                spec.domain
            )));
        }
        if !spec.managed {
            // Someone else's zone: its tags are theirs.
            let current = self.zone_tags(&[id.to_string()]).await?.remove(bare_zone_id(id)).unwrap_or_default();
            return self
                .zone_observed(id, &current)
                .await?
                .ok_or_else(|| ProviderError::not_found(format!("{what} `{id}` does not exist")));
        }
        let current = self.zone_tags(&[id.to_string()]).await?.remove(bare_zone_id(id)).unwrap_or_default();
        self.sync_zone_tags(id, &current, &spec.tags).await?;
        self.zone_observed(id, &spec.tags)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("{what} `{id}` does not exist")))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let Some(out) = self.hosted_zone(id).await? else { return Ok(()) };
        let domain = out.hosted_zone().map(|z| plain_name(z.name())).unwrap_or_default();
        let records = self.zone_records(id, &domain).await?;
        let mut foreign: Vec<String> = records.other.clone();
        let mut changes = Vec::new();
        for ((fqdn, t), set) in &records.sets {
            if fqdn == &domain && matches!(t, RecordType::Ns | RecordType::Soa) {
                continue;
            }
            match records.owned.get(&(fqdn.clone(), *t)) {
                // Validation records written for certificates: the zone's own.
                Some((o, owner)) if !o.owners.is_empty() => {
                    changes.push(change(ChangeAction::Delete, set.clone())?);
                    changes.push(change(ChangeAction::Delete, owner.clone())?);
                }
                Some((o, _)) => foreign.push(format!(
                    "{fqdn} {t} (the Konstacks record `{}`)",
                    o.tags.get(TAG_PATH).cloned().unwrap_or_default()
                )),
                None => foreign.push(format!("{fqdn} {t}")),
            }
        }
        // Ownership records whose record is gone are leftovers of an interrupted delete.
        for (key, (_, owner)) in &records.owned {
            if !records.sets.contains_key(key) {
                changes.push(change(ChangeAction::Delete, owner.clone())?);
            }
        }
        if !foreign.is_empty() {
            foreign.sort();
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
        self.change_records(cx, id, &format!("removing the managed records of DNS zone `{id}`"), changes).await?;
        self.delete_zone_now(id).await
    }
}
