//! DNS records: Route 53 record sets (A, AAAA, CNAME, TXT, MX, CAA and aliases to load
//! balancers), each written in one change batch with its ownership record (see `dns.rs`), and
//! waited for until Route 53 reports the change in sync.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_route53::types::{AliasTarget, ChangeAction, ResourceRecordSet, RrType};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::dns_record::{value_problem, MAX_TTL, MIN_TTL};
use konstacks_core::kinds::dns_zone::{dns_name_problem, strip_root, within, NameRules};
use konstacks_core::kinds::{DnsRecord, DnsRecordObserved, DnsRecordSpec, RecordType};
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{Selector, TAG_PATH, TAG_STACK};

use super::dns::{
    bare_zone_id, change, check_record_tags, owner_set, parse_record_id, plain_name, plain_set, record_id, rr_type,
    values_of, Ownership,
};
use super::error::{invalid, sdk_error};
use super::{follow_up_create, name_of, visible_tags, AwsProvider};

/// Canonical hosted zone ids of Application Load Balancers, by region (used when
/// DescribeLoadBalancers cannot say).
const ALB_ZONES: &[(&str, &str)] = &[
    ("us-east-1", "Z35SXDOTRQ7X7K"),
    ("us-east-2", "Z3AADJGX6KTTL2"),
    ("us-west-1", "Z368ELLRRE2KJ0"),
    ("us-west-2", "Z1H1FL5HABSF5"),
    ("ca-central-1", "ZQSVJUPU6J1EY"),
    ("eu-central-1", "Z215JYRZR1TBD5"),
    ("eu-west-1", "Z32O12XQLNTSW2"),
    ("eu-west-2", "ZHURV8PSTC4K8"),
    ("eu-west-3", "Z3Q77PNBQS71R4"),
    ("eu-north-1", "Z23TAZ7KFP5JSC"),
    ("eu-south-1", "Z3ULH7SSC9OV64"),
    ("ap-northeast-1", "Z14GRHDCWA56QT"),
    ("ap-northeast-2", "ZWKZPGTI48KDX"),
    ("ap-south-1", "ZP97RAFLXTNZK"),
    ("ap-southeast-1", "Z1LMS91P8CMLE5"),
    ("ap-southeast-2", "Z1GM3OXH4ZPM65"),
    ("sa-east-1", "Z2P70J7HTTTPLU"),
];

impl AwsProvider {
    /// The canonical hosted zone id of the load balancer answering at `dns_name`.
    async fn alias_zone_id(&self, dns_name: &str) -> ProviderResult<String> {
        let wanted = plain_name(dns_name);
        let wanted = wanted.strip_prefix("dualstack.").unwrap_or(&wanted).to_string();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .serving
                .elb
                .describe_load_balancers()
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeLoadBalancers", "finding the load balancer of an alias", e))?;
            for lb in out.load_balancers() {
                if lb.dns_name().map(plain_name).as_deref() == Some(wanted.as_str()) {
                    if let Some(z) = lb.canonical_hosted_zone_id() {
                        return Ok(z.to_string());
                    }
                }
            }
            match out.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        // Not one of this region's load balancers (or not visible yet): the region's ALB zone.
        let region = wanted.split('.').find(|l| ALB_ZONES.iter().any(|(r, _)| r == l)).unwrap_or(&self.region);
        ALB_ZONES.iter().find(|(r, _)| *r == region).map(|(_, z)| z.to_string()).ok_or_else(|| {
            invalid(format!(
                "alias target `{dns_name}` is no load balancer of region `{}`, and the canonical zone of region \
                 `{region}` is not known; point the alias to a load balancer of this stack",
                self.region
            ))
        })
    }
}

// ---- records ----

/// Check a record spec before any call; the zone-dependent checks come later.
fn check_record_spec(p: &AwsProvider, spec: &DnsRecordSpec) -> ProviderResult<String> {
    let t = spec.record_type;
    let what = format!("DNS record `{}` ({} {t})", spec.name, spec.fqdn);
    p.check_region(&what, &spec.region)?;
    p.check_name("DNS record", &spec.name)?;
    if rr_type(t).is_none() {
        return Err(invalid(format!("{what}: Route 53 keeps {t} records itself; Konstacks does not write them")));
    }
    if let Some(problem) = dns_name_problem(&spec.fqdn, NameRules::RECORD) {
        return Err(invalid(format!("{what}: name `{}` {problem}", spec.fqdn)));
    }
    if spec.values.is_empty() {
        return Err(invalid(format!("{what}: the record has no values")));
    }
    if matches!(t, RecordType::Cname | RecordType::Alias) && spec.values.len() != 1 {
        return Err(invalid(format!("{what}: a {t} record has exactly one value")));
    }
    let mut seen = BTreeSet::new();
    for v in &spec.values {
        if let Some((_, message)) = value_problem(t, v) {
            return Err(invalid(format!("{what}: {message}")));
        }
        if !seen.insert(v) {
            return Err(invalid(format!("{what}: the value `{v}` is listed twice")));
        }
    }
    match (t, spec.ttl) {
        (RecordType::Alias, None) => {}
        (RecordType::Alias, Some(_)) => return Err(invalid(format!("{what}: an alias record takes no TTL"))),
        (_, Some(n)) if (MIN_TTL..=MAX_TTL).contains(&n) => {}
        (_, n) => return Err(invalid(format!("{what}: TTL {n:?} is outside {MIN_TTL}..={MAX_TTL} seconds"))),
    }
    check_record_tags(&what, &spec.tags)?;
    Ok(what)
}

impl AwsProvider {
    /// The record set `spec` asks for.
    async fn record_set(&self, spec: &DnsRecordSpec) -> ProviderResult<ResourceRecordSet> {
        if spec.record_type != RecordType::Alias {
            return plain_set(&spec.fqdn, spec.record_type, &spec.values, spec.ttl.unwrap_or(300));
        }
        let target = spec.values.first().map(String::as_str).unwrap_or_default();
        let zone = self.alias_zone_id(target).await?;
        let alias = AliasTarget::builder()
            .hosted_zone_id(zone)
            .dns_name(strip_root(target))
            .evaluate_target_health(true)
            .build()
            .map_err(|e| invalid(format!("internal: an alias: {e}")))?;
        ResourceRecordSet::builder()
            .name(&spec.fqdn)
            .r#type(RrType::A)
            .alias_target(alias)
            .build()
            .map_err(|e| invalid(format!("internal: a record set: {e}")))
    }

    fn record_observed(
        &self,
        zone_id: &str,
        fqdn: &str,
        t: RecordType,
        set: &ResourceRecordSet,
        o: Option<&Ownership>,
    ) -> DnsRecordObserved {
        let tags = o.map(|o| o.tags.clone()).unwrap_or_default();
        DnsRecordObserved {
            id: record_id(zone_id, fqdn, t),
            name: name_of(&tags),
            region: self.region.clone(),
            zone_id: bare_zone_id(zone_id).to_string(),
            fqdn: fqdn.to_string(),
            record_type: t,
            values: values_of(set, t),
            ttl: if t == RecordType::Alias { None } else { set.ttl().and_then(|n| u32::try_from(n).ok()) },
            tags: visible_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        }
    }

    /// The records of zone `zone_id` Konstacks wrote (those with an ownership record).
    async fn records_in(&self, zone_id: &str, domain: &str) -> ProviderResult<Vec<DnsRecordObserved>> {
        let recs = self.zone_records(zone_id, domain).await?;
        Ok(recs
            .sets
            .iter()
            .filter_map(|((fqdn, t), set)| {
                let (o, _) = recs.owned.get(&(fqdn.clone(), *t))?;
                o.owners.is_empty().then(|| self.record_observed(zone_id, fqdn, *t, set, Some(o)))
            })
            .collect())
    }

    /// Write the record and its ownership record in one batch.
    async fn write_record(
        &self,
        cx: &OpContext,
        spec: &DnsRecordSpec,
        action: ChangeAction,
        what: &str,
    ) -> ProviderResult<()> {
        let domain = self.zone_domain(&spec.zone_id).await?;
        if !within(&spec.fqdn, &domain) {
            return Err(invalid(format!("{what}: `{}` is not within the zone's domain `{domain}`", spec.fqdn)));
        }
        let t = spec.record_type;
        if t == RecordType::Cname && spec.fqdn == domain {
            return Err(invalid(format!(
                "{what}: a CNAME cannot sit at the apex of zone `{domain}`; use an alias (or A/AAAA records)"
            )));
        }
        let recs = self.zone_records(&spec.zone_id, &domain).await?;
        for ((fqdn, other), _) in recs.sets.range((spec.fqdn.clone(), RecordType::A)..) {
            if fqdn != &spec.fqdn {
                break;
            }
            if *other == t {
                let ours = recs
                    .owned
                    .get(&(fqdn.clone(), t))
                    .is_some_and(|(o, _)| o.tags.get(TAG_PATH) == spec.tags.get(TAG_PATH));
                if action == ChangeAction::Create && !ours {
                    return Err(ProviderError::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "{what}: zone `{}` already has a {t} record `{fqdn}`; adopt it or delete it first",
                            spec.zone_id
                        ),
                    ));
                }
            } else if !t.may_share_name_with(*other)
                && !(matches!((t, *other), (RecordType::Alias, RecordType::A) | (RecordType::A, RecordType::Alias)))
            {
                return Err(ProviderError::new(
                    ErrorKind::Conflict,
                    format!(
                        "{what}: a {t} record cannot share the name `{fqdn}` with its {other} record; delete one first"
                    ),
                ));
            } else if matches!((t, *other), (RecordType::Alias, RecordType::A) | (RecordType::A, RecordType::Alias)) {
                return Err(ProviderError::new(
                    ErrorKind::Conflict,
                    format!(
                        "{what}: `{fqdn}` already has an {other} record; an alias and A records exclude each other"
                    ),
                ));
            }
        }
        let set = self.record_set(spec).await?;
        let ownership = Ownership {
            fqdn: spec.fqdn.clone(),
            record_type: Some(t),
            tags: spec.tags.clone(),
            owners: BTreeSet::new(),
        };
        let changes =
            vec![change(ChangeAction::Upsert, set)?, change(ChangeAction::Upsert, owner_set(&domain, &ownership)?)?];
        self.change_records(cx, &spec.zone_id, what, changes).await
    }
}

#[async_trait::async_trait]
impl Api<DnsRecord> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &DnsRecordSpec) -> ProviderResult<DnsRecordObserved> {
        let what = check_record_spec(self, spec)?;
        self.write_record(cx, spec, ChangeAction::Create, &format!("creating {what}")).await?;
        let id = record_id(&spec.zone_id, &spec.fqdn, spec.record_type);
        let patience = self.settings.timeouts.follow_up;
        follow_up_create(cx, patience, || async {
            let found = <Self as Api<DnsRecord>>::read_many(self, cx, &Selector::Ids(vec![id.clone()])).await?;
            found.into_iter().next().ok_or_else(|| ProviderError::not_found(format!("{what} is not visible yet")))
        })
        .await
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DnsRecordObserved>> {
        let mut out = Vec::new();
        match sel {
            Selector::Ids(ids) => {
                let mut by_zone: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for id in ids {
                    if let Some((zone, _, _)) = parse_record_id(id) {
                        by_zone.entry(zone).or_default().insert(id.clone());
                    }
                }
                for (zone, wanted) in by_zone {
                    let Ok(domain) = self.zone_domain(&zone).await else { continue };
                    out.extend(self.records_in(&zone, &domain).await?.into_iter().filter(|r| wanted.contains(&r.id)));
                }
            }
            Selector::Stack(stack) => {
                for (zone, _) in self.stack_zones(stack).await? {
                    let Ok(domain) = self.zone_domain(&zone).await else { continue };
                    out.extend(
                        self.records_in(&zone, &domain)
                            .await?
                            .into_iter()
                            .filter(|r| r.tags.get(TAG_STACK) == Some(stack)),
                    );
                }
            }
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &DnsRecordSpec) -> ProviderResult<DnsRecordObserved> {
        let what = check_record_spec(self, spec)?;
        let Some((zone, fqdn, t)) = parse_record_id(id) else {
            return Err(ProviderError::not_found(format!("DNS record `{id}` is no Route 53 record id")));
        };
        if zone != bare_zone_id(&spec.zone_id) || fqdn != spec.fqdn || t != spec.record_type {
            return Err(invalid(format!(
                "{what}: the zone, name and type of record `{id}` cannot change; replace the record"
            )));
        }
        self.write_record(cx, spec, ChangeAction::Upsert, &format!("updating {what}")).await?;
        let found = <Self as Api<DnsRecord>>::read_many(self, cx, &Selector::Ids(vec![id.to_string()])).await?;
        found.into_iter().next().ok_or_else(|| ProviderError::not_found(format!("{what} vanished after its update")))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let Some((zone, fqdn, t)) = parse_record_id(id) else { return Ok(()) };
        let Some(out) = self.hosted_zone(&zone).await? else { return Ok(()) };
        let domain = out.hosted_zone().map(|z| plain_name(z.name())).unwrap_or_default();
        let recs = self.zone_records(&zone, &domain).await?;
        let key = (fqdn.clone(), t);
        let mut changes = Vec::new();
        if let Some(set) = recs.sets.get(&key) {
            changes.push(change(ChangeAction::Delete, set.clone())?);
        }
        if let Some((_, owner)) = recs.owned.get(&key) {
            changes.push(change(ChangeAction::Delete, owner.clone())?);
        }
        let result = self.change_records(cx, &zone, &format!("deleting DNS record `{id}`"), changes).await;
        match result {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}
