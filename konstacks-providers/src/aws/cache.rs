//! ElastiCache for Redis and Valkey.
//!
//! A cache is an ElastiCache replication group (cluster mode off: one shard, a primary and
//! `replicas` read replicas) whose id is the physical name (and its Konstacks id), plus a cache
//! subnet group of the same name over the stack's subnets. Storage is always encrypted at rest;
//! encryption in transit follows the spec and is required for an auth token. The auth token comes
//! from the stack's secret and is sent to AWS and nowhere else: it is never logged and never put
//! in an error. Updates change the node type, version, security groups and failover with
//! `ModifyReplicationGroup`, the replica count with `IncreaseReplicaCount` /
//! `DecreaseReplicaCount`, and rotate the token with `AuthTokenUpdateStrategy` `ROTATE` (`SET` on
//! a group without one). Deletes wait until the group is gone, then delete its subnet group.
//!
//! A replication group does not report its version, subnet group or security groups: they are
//! read from its primary cluster (`DescribeCacheClusters`) and from the subnet group.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_elasticache::types::{
    AuthTokenUpdateStrategyType, AutomaticFailoverStatus, CacheCluster, CacheSubnetGroup, ReplicationGroup, Tag,
};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::cache::{field as cache_field, MAX_REPLICAS};
use konstacks_core::spec::{Cache, CacheEngine, CacheObserved, CacheSpec, Selector, TAG_PATH, TAG_STACK};

use super::error::{invalid, sdk_error};
use super::{check_tags, follow_up, read_chunks, visible_tags, wait_for, AwsProvider, Polled, TAG_SIZE};

/// The requested engine version, kept because ElastiCache reports the full patch version.
const TAG_VERSION: &str = "konstacks:aws:version";
/// Longest replication group id ElastiCache accepts.
const MAX_ID_LEN: usize = 40;
/// Statuses from which a replication group does not become available by itself.
const BROKEN: &[&str] = &["create-failed"];
/// The node types of the portable sizes (Graviton burstable nodes up to medium, then m7g).
pub(crate) const NODE_TYPES: &[(&str, &str)] = &[
    ("cache-micro", "cache.t4g.micro"),
    ("cache-small", "cache.t4g.small"),
    ("cache-medium", "cache.t4g.medium"),
    ("cache-large", "cache.m7g.large"),
];

fn missing(what: &str) -> ProviderError {
    ProviderError::new(ErrorKind::Other, format!("AWS answered without {what}; this is unexpected, retry"))
}

/// The node type of a size: a portable slug, or a node type (`cache.r7g.large`) used as is.
fn node_type_of(size: &str) -> Option<String> {
    if let Some((_, t)) = NODE_TYPES.iter().find(|(slug, _)| *slug == size) {
        return Some((*t).to_string());
    }
    let rest = size.strip_prefix("cache.")?;
    let ok = rest.split('.').count() == 2
        && rest.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    ok.then(|| size.to_string())
}

/// The size slug of a node type: the requested spelling when it names that node type.
fn size_of(node_type: &str, requested: Option<&String>) -> String {
    match requested {
        Some(req) if node_type_of(req).as_deref() == Some(node_type) => req.clone(),
        _ => NODE_TYPES.iter().find(|(_, t)| *t == node_type).map_or(node_type, |(s, _)| s).to_string(),
    }
}

/// ElastiCache auth tokens: 16 to 128 printable ASCII characters without spaces, `/`, `"` or
/// `@`. The message never contains the token.
fn check_token(what: &str, token: &str) -> ProviderResult<()> {
    let printable = token.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '"' | '@'));
    if !(16..=128).contains(&token.len()) || !printable {
        return Err(invalid(format!(
            "{what}: the auth token must have 16 to 128 printable ASCII characters without spaces, `/`, `\"` or \
             `@` (the value is not shown)"
        )));
    }
    Ok(())
}

/// Replication group ids: 1 to 40 lowercase letters, digits and single hyphens, starting with a
/// letter and not ending with a hyphen.
fn check_group_id(name: &str) -> ProviderResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ID_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "cache name `{name}` is not a valid ElastiCache replication group id: use 1 to {MAX_ID_LEN} lowercase \
             letters, digits and single hyphens, starting with a letter and not ending with a hyphen"
        )))
    }
}

fn engine_name(e: CacheEngine) -> &'static str {
    e.as_str()
}

fn engine_of(name: &str) -> Option<CacheEngine> {
    match name {
        "redis" => Some(CacheEngine::Redis),
        "valkey" => Some(CacheEngine::Valkey),
        _ => None,
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

fn status_of(rg: &ReplicationGroup) -> &str {
    rg.status().unwrap_or_default()
}

fn failover_on(rg: &ReplicationGroup) -> bool {
    matches!(rg.automatic_failover(), Some(AutomaticFailoverStatus::Enabled | AutomaticFailoverStatus::Enabling))
}

fn replicas_of(rg: &ReplicationGroup) -> u32 {
    let members = rg.node_groups().first().map_or(0, |g| g.node_group_members().len());
    let members = if members == 0 { rg.member_clusters().len() } else { members };
    u32::try_from(members.saturating_sub(1)).unwrap_or(u32::MAX)
}

/// What one read of a replication group gathers.
struct Seen {
    rg: ReplicationGroup,
    primary: Option<CacheCluster>,
    subnet_group: Option<CacheSubnetGroup>,
    tags: BTreeMap<String, String>,
}

impl AwsProvider {
    async fn describe_replication_groups(&self, id: Option<&str>) -> ProviderResult<Vec<ReplicationGroup>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .serving
                .elasticache
                .describe_replication_groups()
                .set_replication_group_id(id.map(str::to_string))
                .max_records(100)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeReplicationGroups", "reading caches", e));
            let page = match page {
                Ok(p) => p,
                Err(e) if id.is_some() && e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            out.extend(page.replication_groups().iter().cloned());
            match page.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(out),
            }
        }
    }

    async fn cache_tags(&self, rg: &ReplicationGroup) -> ProviderResult<BTreeMap<String, String>> {
        let arn = rg.arn().ok_or_else(|| missing("the replication group ARN"))?;
        let out = self
            .serving
            .elasticache
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(|e| sdk_error("ListTagsForResource", "reading the tags of a cache", e))?;
        Ok(out.tag_list().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect())
    }

    /// The primary cluster and the subnet group of a replication group (either may be missing).
    async fn cache_details(
        &self,
        rg: &ReplicationGroup,
    ) -> ProviderResult<(Option<CacheCluster>, Option<CacheSubnetGroup>)> {
        let ec = &self.serving.elasticache;
        let primary_id = rg
            .node_groups()
            .first()
            .and_then(|g| g.node_group_members().iter().find(|m| m.current_role() == Some("primary")))
            .and_then(|m| m.cache_cluster_id())
            .or_else(|| rg.member_clusters().first().map(String::as_str));
        let primary = match primary_id {
            Some(id) => {
                let r = ec
                    .describe_cache_clusters()
                    .cache_cluster_id(id)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeCacheClusters", "reading the primary node of a cache", e));
                match r {
                    Ok(out) => out.cache_clusters().first().cloned(),
                    Err(e) if e.kind() == ErrorKind::NotFound => None,
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        // The group Konstacks made is named after the cache.
        let group = primary
            .as_ref()
            .and_then(|c| c.cache_subnet_group_name())
            .or(rg.replication_group_id())
            .unwrap_or_default()
            .to_string();
        let r = ec
            .describe_cache_subnet_groups()
            .cache_subnet_group_name(&group)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeCacheSubnetGroups", "reading the subnet group of a cache", e));
        let subnet_group = match r {
            Ok(out) => out.cache_subnet_groups().first().cloned(),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok((primary, subnet_group))
    }

    async fn seen(&self, rg: ReplicationGroup) -> ProviderResult<Seen> {
        let (tags, (primary, subnet_group)) = futures::try_join!(self.cache_tags(&rg), self.cache_details(&rg))?;
        Ok(Seen { rg, primary, subnet_group, tags })
    }

    async fn cache_by_id(&self, id: &str) -> ProviderResult<Option<ReplicationGroup>> {
        Ok(self.describe_replication_groups(Some(id)).await?.into_iter().find(|r| r.replication_group_id() == Some(id)))
    }

    fn cache_observed(&self, s: &Seen) -> Option<CacheObserved> {
        let rg = &s.rg;
        let id = rg.replication_group_id()?.to_string();
        let engine = rg
            .engine()
            .or(s.primary.as_ref().and_then(|c| c.engine()))
            .and_then(engine_of)
            .unwrap_or(CacheEngine::Redis);
        let requested = s.tags.get(TAG_VERSION);
        let actual = s.primary.as_ref().and_then(|c| c.engine_version());
        let version = match (actual, requested) {
            (Some(a), Some(r)) if a == r || a.starts_with(&format!("{r}.")) => r.clone(),
            (Some(a), _) => a.to_string(),
            // The primary cluster is not readable: the version asked for is the best answer.
            (None, Some(r)) => r.clone(),
            (None, None) => String::new(),
        };
        let node_type =
            rg.cache_node_type().or(s.primary.as_ref().and_then(|c| c.cache_node_type())).unwrap_or_default();
        let mut subnet_ids: Vec<String> = s
            .subnet_group
            .as_ref()
            .map(|g| g.subnets().iter().filter_map(|n| n.subnet_identifier().map(str::to_string)).collect())
            .unwrap_or_default();
        subnet_ids.sort();
        let mut firewall_ids: Vec<String> = s
            .primary
            .as_ref()
            .map(|c| c.security_groups().iter().filter_map(|g| g.security_group_id().map(str::to_string)).collect())
            .unwrap_or_default();
        firewall_ids.sort();
        firewall_ids.dedup();
        let endpoint = rg.node_groups().first().and_then(|g| g.primary_endpoint()).or(rg.configuration_endpoint());
        let port = endpoint.and_then(|e| e.port()).filter(|p| *p > 0).unwrap_or(i32::from(engine.default_port()));
        Some(CacheObserved {
            name: id.clone(),
            id,
            region: self.region.clone(),
            engine,
            version,
            size: size_of(node_type, s.tags.get(TAG_SIZE)),
            subnet_ids,
            firewall_ids,
            replicas: replicas_of(rg),
            high_availability: failover_on(rg),
            transit_encryption: rg.transit_encryption_enabled().unwrap_or(false),
            host: endpoint.and_then(|e| e.address()).unwrap_or_default().to_string(),
            port: port.to_string(),
            status: status_of(rg).to_string(),
            tags: visible_tags(s.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        })
    }

    /// Wait until the replication group is `available`.
    async fn wait_cache_available(&self, cx: &OpContext, id: &str) -> ProviderResult<ReplicationGroup> {
        let t = self.settings.timeouts;
        wait_for(cx, &format!("cache `{id}` becoming available"), t.db_available, t.max_poll, || async {
            let Some(rg) = self.cache_by_id(id).await? else {
                return Ok(Polled::Pending("not visible yet".into()));
            };
            let status = status_of(&rg).to_string();
            if BROKEN.contains(&status.as_str()) {
                return Err(ProviderError::new(
                    ErrorKind::Other,
                    format!("cache `{id}` is `{status}`; look at its events in the ElastiCache console"),
                ));
            }
            if status == "available" {
                Ok(Polled::Ready(rg))
            } else {
                Ok(Polled::Pending(status))
            }
        })
        .await
    }

    /// Validate a spec before any request; the node type.
    fn check_cache_spec(&self, what: &str, spec: &CacheSpec) -> ProviderResult<String> {
        self.check_region(what, &spec.region)?;
        check_group_id(&spec.name)?;
        check_tags(what, &spec.tags, 2)?;
        let node_type =
            self.catalog.cache_size(&spec.size).map(|o| o.native.clone()).or_else(|| node_type_of(&spec.size));
        let node_type = node_type.ok_or_else(|| {
            let sizes: Vec<&str> = NODE_TYPES.iter().map(|(s, _)| *s).collect();
            invalid(format!(
                "{what}: cache size `{}` is not offered; use one of {} or an ElastiCache node type (`cache.r7g.large`)",
                spec.size,
                sizes.join(", ")
            ))
        })?;
        if spec.version.trim().is_empty() {
            return Err(invalid(format!("{what}: an engine version is required")));
        }
        if spec.replicas > MAX_REPLICAS {
            return Err(invalid(format!("{what}: {} replicas are too many; at most {MAX_REPLICAS}", spec.replicas)));
        }
        if spec.high_availability && spec.replicas == 0 {
            return Err(invalid(format!("{what}: automatic failover needs at least one replica")));
        }
        if spec.subnet_ids.is_empty() {
            return Err(invalid(format!("{what}: at least one subnet is required")));
        }
        if let Some(token) = &spec.auth_token {
            if !spec.transit_encryption {
                return Err(invalid(format!("{what}: an auth token needs encryption in transit; turn it on")));
            }
            check_token(what, token.expose())?;
        }
        Ok(node_type)
    }

    async fn create_cache_subnet_group(&self, name: &str, spec: &CacheSpec) -> ProviderResult<bool> {
        let ec = &self.serving.elasticache;
        let path = spec.tags.get(TAG_PATH).cloned().unwrap_or_else(|| name.to_string());
        let tags: Vec<Tag> = spec.tags.iter().map(|(k, v)| tag(k, v)).collect();
        let created = ec
            .create_cache_subnet_group()
            .cache_subnet_group_name(name)
            .cache_subnet_group_description(format!("Konstacks cache {path}"))
            .set_subnet_ids(Some(spec.subnet_ids.clone()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| sdk_error("CreateCacheSubnetGroup", &format!("creating cache subnet group `{name}`"), e));
        match created {
            Ok(_) => Ok(true),
            // Left by an interrupted earlier attempt: bring it to the wanted subnets.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                ec.modify_cache_subnet_group()
                    .cache_subnet_group_name(name)
                    .set_subnet_ids(Some(spec.subnet_ids.clone()))
                    .send()
                    .await
                    .map_err(|e| {
                        sdk_error("ModifyCacheSubnetGroup", &format!("updating cache subnet group `{name}`"), e)
                    })?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_cache_subnet_group(&self, cx: &OpContext, name: &str) -> ProviderResult<()> {
        let start = cx.clock.now();
        let patience = self.settings.timeouts.follow_up;
        loop {
            let r = self
                .serving
                .elasticache
                .delete_cache_subnet_group()
                .cache_subnet_group_name(name)
                .send()
                .await
                .map_err(|e| sdk_error("DeleteCacheSubnetGroup", &format!("deleting cache subnet group `{name}`"), e));
            match r {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                // Still held by the group that is going away.
                Err(e)
                    if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::Throttled | ErrorKind::Transient)
                        && cx.clock.now().saturating_sub(start) < patience =>
                {
                    cx.clock.sleep(std::time::Duration::from_secs(5)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn sync_cache_tags(
        &self,
        rg: &ReplicationGroup,
        current: &BTreeMap<String, String>,
        desired: &BTreeMap<String, String>,
    ) -> ProviderResult<()> {
        let ec = &self.serving.elasticache;
        let arn = rg.arn().ok_or_else(|| missing("the replication group ARN"))?;
        let add: Vec<Tag> =
            desired.iter().filter(|(k, v)| current.get(*k) != Some(*v)).map(|(k, v)| tag(k, v)).collect();
        let remove: Vec<String> = current
            .keys()
            .filter(|k| {
                !desired.contains_key(*k) && !k.starts_with("aws:") && !k.starts_with(super::INTERNAL_TAG_PREFIX)
            })
            .cloned()
            .collect();
        if !add.is_empty() {
            ec.add_tags_to_resource()
                .resource_name(arn)
                .set_tags(Some(add))
                .send()
                .await
                .map_err(|e| sdk_error("AddTagsToResource", "tagging a cache", e))?;
        }
        if !remove.is_empty() {
            ec.remove_tags_from_resource()
                .resource_name(arn)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| sdk_error("RemoveTagsFromResource", "removing tags of a cache", e))?;
        }
        Ok(())
    }

    async fn read_cache_now(&self, id: &str) -> ProviderResult<CacheObserved> {
        let rg =
            self.cache_by_id(id).await?.ok_or_else(|| ProviderError::not_found(format!("cache `{id}` vanished")))?;
        let seen = self.seen(rg).await?;
        self.cache_observed(&seen).ok_or_else(|| missing("the cache id"))
    }

    /// Delete the replication group `id` (if it is there) and wait until it is gone.
    async fn delete_group_and_wait(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let what = format!("cache `{id}`");
        if let Some(rg) = self.cache_by_id(id).await? {
            if status_of(&rg) != "deleting" {
                let r = self
                    .serving
                    .elasticache
                    .delete_replication_group()
                    .replication_group_id(id)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteReplicationGroup", &format!("deleting {what}"), e));
                match r {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let t = self.settings.timeouts;
        wait_for(cx, &format!("{what} going away"), t.db_deleted, t.max_poll, || async {
            Ok(match self.cache_by_id(id).await? {
                None => Polled::Ready(()),
                Some(rg) => Polled::Pending(status_of(&rg).to_string()),
            })
        })
        .await
    }
}

#[async_trait::async_trait]
impl Api<Cache> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &CacheSpec) -> ProviderResult<CacheObserved> {
        let what = format!("cache `{}`", spec.name);
        let node_type = self.check_cache_spec(&what, spec)?;
        let id = spec.name.as_str();
        // Never touch the subnet group of a live cache of the same name.
        if self.cache_by_id(id).await?.is_some() {
            return Err(ProviderError::new(
                ErrorKind::AlreadyExists,
                format!("{what} already exists in `{}`; pick another name or adopt it", self.region),
            ));
        }
        let made_group = self.create_cache_subnet_group(id, spec).await?;
        let mut tags: Vec<Tag> = spec.tags.iter().map(|(k, v)| tag(k, v)).collect();
        tags.push(tag(TAG_SIZE, &spec.size));
        tags.push(tag(TAG_VERSION, &spec.version));
        let path = spec.tags.get(TAG_PATH).cloned().unwrap_or_else(|| id.to_string());
        let created = self
            .serving
            .elasticache
            .create_replication_group()
            .replication_group_id(id)
            .replication_group_description(format!("Konstacks cache {path}"))
            .engine(engine_name(spec.engine))
            .engine_version(&spec.version)
            .cache_node_type(&node_type)
            .cache_subnet_group_name(id)
            .set_security_group_ids(if spec.firewall_ids.is_empty() { None } else { Some(spec.firewall_ids.clone()) })
            .num_node_groups(1)
            .replicas_per_node_group(i32::try_from(spec.replicas).unwrap_or(0))
            .automatic_failover_enabled(spec.high_availability)
            .multi_az_enabled(spec.high_availability)
            .transit_encryption_enabled(spec.transit_encryption)
            .at_rest_encryption_enabled(true)
            .set_auth_token(spec.auth_token.as_ref().map(|t| t.expose().to_string()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| sdk_error("CreateReplicationGroup", &format!("creating {what}"), e));
        if let Err(e) = created {
            // A failed create creates nothing: the subnet group made for it goes again.
            if made_group && e.kind() != ErrorKind::AlreadyExists {
                if let Err(cleanup) = self.delete_cache_subnet_group(cx, id).await {
                    tracing::warn!(cache = id, error = %cleanup, "could not delete the subnet group of a failed create");
                }
            }
            return Err(e);
        }
        match self.wait_cache_available(cx, id).await {
            Ok(_) => {}
            // Still creating: it is found again by its tags on the next run.
            Err(e) if e.kind() == ErrorKind::Transient || e.kind() == ErrorKind::Cancelled => return Err(e),
            Err(e) => {
                tracing::warn!(cache = id, "the cache failed to become available; deleting it");
                if let Err(cleanup) = self.delete_group_and_wait(cx, id).await {
                    tracing::warn!(cache = id, error = %cleanup, "could not delete a failed cache");
                } else if let Err(cleanup) = self.delete_cache_subnet_group(cx, id).await {
                    tracing::warn!(cache = id, error = %cleanup, "could not delete the subnet group of a failed cache");
                }
                return Err(e);
            }
        }
        follow_up(cx, self.settings.timeouts.follow_up, || self.read_cache_now(id)).await
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<CacheObserved>> {
        let groups = match sel {
            Selector::Ids(ids) => {
                let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
                if wanted.is_empty() {
                    return Ok(Vec::new());
                }
                let all = self.describe_replication_groups(None).await?;
                all.into_iter().filter(|r| r.replication_group_id().is_some_and(|i| wanted.contains(i))).collect()
            }
            Selector::Stack(_) => self.describe_replication_groups(None).await?,
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        };
        let stack = match sel {
            Selector::Stack(s) => Some(s.as_str()),
            _ => None,
        };
        let chunks: Vec<Vec<ReplicationGroup>> = groups.into_iter().map(|g| vec![g]).collect();
        let ids: Vec<Vec<String>> = chunks
            .iter()
            .map(|c| c.iter().filter_map(|g| g.replication_group_id().map(str::to_string)).collect())
            .collect();
        let by_id: BTreeMap<String, ReplicationGroup> =
            chunks.into_iter().flatten().filter_map(|g| Some((g.replication_group_id()?.to_string(), g))).collect();
        let by_id = &by_id;
        let mut out = read_chunks(ids, |chunk| async move {
            let mut found = Vec::new();
            for id in chunk {
                let Some(rg) = by_id.get(&id).cloned() else { continue };
                if status_of(&rg) == "deleting" {
                    continue;
                }
                let tags = match self.cache_tags(&rg).await {
                    Ok(t) => t,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if stack.is_some_and(|s| tags.get(TAG_STACK).map(String::as_str) != Some(s)) {
                    continue;
                }
                let (primary, subnet_group) = self.cache_details(&rg).await?;
                if let Some(o) = self.cache_observed(&Seen { rg, primary, subnet_group, tags }) {
                    found.push(o);
                }
            }
            Ok(found)
        })
        .await?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &CacheSpec) -> ProviderResult<CacheObserved> {
        let what = format!("cache `{id}`");
        let node_type = self.check_cache_spec(&what, spec)?;
        let rg = self
            .cache_by_id(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("{what} does not exist in `{}`", self.region)))?;
        let seen = self.seen(rg).await?;
        let cur = self.cache_observed(&seen).ok_or_else(|| missing("the cache id"))?;
        let mut want_subnets = spec.subnet_ids.clone();
        want_subnets.sort();
        for (field, same) in [
            (cache_field::NAME.name(), spec.name == id),
            (cache_field::ENGINE.name(), spec.engine == cur.engine),
            (cache_field::TRANSIT_ENCRYPTION.name(), spec.transit_encryption == cur.transit_encryption),
            (cache_field::SUBNET_IDS.name(), cur.subnet_ids.is_empty() || cur.subnet_ids == want_subnets),
        ] {
            if !same {
                return Err(invalid(format!("{what}: `{field}` cannot change in place; the cache must be replaced")));
            }
        }
        if status_of(&seen.rg) != "available" {
            self.wait_cache_available(cx, id).await?;
        }
        let ec = &self.serving.elasticache;
        let replicas = i32::try_from(spec.replicas).unwrap_or(0);
        if spec.replicas > cur.replicas {
            ec.increase_replica_count()
                .replication_group_id(id)
                .new_replica_count(replicas)
                .apply_immediately(true)
                .send()
                .await
                .map_err(|e| sdk_error("IncreaseReplicaCount", &format!("adding replicas to {what}"), e))?;
            self.wait_cache_available(cx, id).await?;
        }
        let node_type_of_cur = seen.rg.cache_node_type().unwrap_or_default();
        let mut want_fws = spec.firewall_ids.clone();
        want_fws.sort();
        want_fws.dedup();
        let changes = [
            node_type_of_cur != node_type,
            cur.version != spec.version,
            !cur.firewall_ids.is_empty() && cur.firewall_ids != want_fws
                || cur.firewall_ids.is_empty() && !want_fws.is_empty(),
            cur.high_availability != spec.high_availability,
            spec.auth_token.is_some(),
        ];
        if changes.iter().any(|c| *c) {
            let mut req = ec.modify_replication_group().replication_group_id(id).apply_immediately(true);
            if changes[0] {
                req = req.cache_node_type(&node_type);
            }
            if changes[1] {
                req = req.engine_version(&spec.version);
            }
            if changes[2] {
                req = req.set_security_group_ids(Some(want_fws.clone()));
            }
            if changes[3] {
                req = req.automatic_failover_enabled(spec.high_availability).multi_az_enabled(spec.high_availability);
            }
            if let Some(token) = &spec.auth_token {
                let strategy = if seen.rg.auth_token_enabled() == Some(true) {
                    AuthTokenUpdateStrategyType::Rotate
                } else {
                    AuthTokenUpdateStrategyType::Set
                };
                req = req.auth_token(token.expose()).auth_token_update_strategy(strategy);
            }
            req.send().await.map_err(|e| sdk_error("ModifyReplicationGroup", &format!("modifying {what}"), e))?;
            self.wait_cache_available(cx, id).await?;
        }
        if spec.replicas < cur.replicas {
            ec.decrease_replica_count()
                .replication_group_id(id)
                .new_replica_count(replicas)
                .apply_immediately(true)
                .send()
                .await
                .map_err(|e| sdk_error("DecreaseReplicaCount", &format!("removing replicas of {what}"), e))?;
            self.wait_cache_available(cx, id).await?;
        }
        let mut desired: BTreeMap<String, String> = spec.tags.clone().into_iter().collect();
        desired.insert(TAG_SIZE.into(), spec.size.clone());
        desired.insert(TAG_VERSION.into(), spec.version.clone());
        let patience = self.settings.timeouts.follow_up;
        follow_up(cx, patience, || self.sync_cache_tags(&seen.rg, &seen.tags, &desired)).await?;
        follow_up(cx, patience, || self.read_cache_now(id)).await
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.delete_group_and_wait(cx, id).await?;
        // Only the group Konstacks made for this cache (named after it).
        self.delete_cache_subnet_group(cx, id).await
    }

    /// `update` sets the auth token with `ModifyReplicationGroup` (`ROTATE`) whenever the spec
    /// carries one.
    fn sets_secret_on_update(&self, field: &str) -> bool {
        field == cache_field::AUTH_TOKEN.name()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]

    use konstacks_core::secret::Secret;

    use konstacks_core::spec::Tags;

    use super::*;

    #[test]
    fn sizes_map_to_node_types_and_back() {
        assert_eq!(node_type_of("cache-micro").as_deref(), Some("cache.t4g.micro"));
        assert_eq!(node_type_of("cache-large").as_deref(), Some("cache.m7g.large"));
        assert_eq!(node_type_of("cache.r7g.xlarge").as_deref(), Some("cache.r7g.xlarge"));
        for bad in ["huge", "cache.", "cache.r7g", "cache.R7G.large", "db.t4g.micro"] {
            assert_eq!(node_type_of(bad), None, "{bad}");
        }
        assert_eq!(size_of("cache.t4g.small", None), "cache-small");
        assert_eq!(size_of("cache.t4g.small", Some(&"cache.t4g.small".to_string())), "cache.t4g.small");
        assert_eq!(size_of("cache.r7g.large", None), "cache.r7g.large");
    }

    #[test]
    fn tokens_are_checked_without_echo() {
        assert!(check_token("c", "Contract-Auth-Token-0123456789").is_ok());
        for bad in [
            "short-token",
            "has a space in the token",
            "slash/slash/slash/slash",
            "at@at@at@at@at@at@",
            &"x".repeat(129),
        ] {
            let e = check_token("c", bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!e.is_empty(), "{bad}");
            assert!(!e.contains(bad), "the token is echoed: {e}");
        }
    }

    #[test]
    fn group_ids() {
        assert!(check_group_id("shop-prod-sessions").is_ok());
        for bad in ["", "1cache", "Cache", "a--b", "a-", &"a".repeat(41)] {
            assert!(check_group_id(bad).is_err(), "{bad}");
        }
    }

    fn spec() -> CacheSpec {
        CacheSpec {
            name: "shop-cache".into(),
            region: "eu-central-1".into(),
            engine: CacheEngine::Redis,
            version: "7.1".into(),
            size: "cache-small".into(),
            subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
            firewall_ids: vec!["sg-1".into()],
            replicas: 1,
            high_availability: true,
            transit_encryption: true,
            auth_token: Some(Secret::new("Contract-Auth-Token-0123456789".into())),
            tags: Tags::new(),
        }
    }

    #[tokio::test]
    async fn bad_caches_are_refused_with_zero_requests() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-central-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let aws = match AwsProvider::builder(&sdk).build() {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let cx = OpContext::new(konstacks_core::clock::TokioClock::shared(), "t");
        let secret = "bad token with spaces";
        let mut bad_token = spec();
        bad_token.auth_token = Some(Secret::new(secret.into()));
        let mut no_tls = spec();
        no_tls.transit_encryption = false;
        let mut ha_alone = spec();
        ha_alone.replicas = 0;
        let mut size = spec();
        size.size = "enormous".into();
        let mut name = spec();
        name.name = "Shop_Cache".into();
        for bad in [bad_token, no_tls, ha_alone, size, name] {
            let e = Api::<Cache>::create(&aws, &cx, &bad).await.err();
            assert_eq!(e.as_ref().map(|e| e.kind()), Some(ErrorKind::InvalidSpec));
            assert!(!e.map(|e| e.to_string()).unwrap_or_default().contains(secret));
            let e = Api::<Cache>::update(&aws, &cx, "shop-cache", &bad).await.err();
            assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::InvalidSpec));
        }
        assert_eq!(aws.api_calls().total, 0);
    }
}
