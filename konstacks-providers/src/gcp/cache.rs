//! `Cache`: Memorystore for Redis instances (`google-cloud-redis-v1`), one per cache, named
//! `projects/{project}/locations/{region}/instances/{name}` (that full name is the cache's id).
//!
//! - Network: the instance is attached to the VPC network of the cache's subnets
//!   (`authorizedNetwork`) with `connectMode: PRIVATE_SERVICE_ACCESS`, the mode Google recommends
//!   and the one Cloud SQL already needs on the stack's network (a reserved range peered with
//!   `servicenetworking.googleapis.com`, set up once per network, see `docs/gcp.md`); direct
//!   peering would add a second peering per instance and count against the network's peering
//!   limit. The primary goes to the zone of the first subnet (`locationId`), the replica of a
//!   high-availability instance to the zone of the first subnet in another zone.
//! - Firewalls: Memorystore has no firewall of its own and VPC firewall rules do not apply to
//!   it; any client in the authorized network can connect (with the AUTH string). The attached
//!   firewalls are accepted and recorded on the instance (so they read back), as for Cloud SQL,
//!   and the stack's own VM firewalls decide who may send traffic there (egress).
//! - Replicas: no replica is the `BASIC` tier; one replica is `STANDARD_HA` (read replicas
//!   disabled, any size); two to five are `STANDARD_HA` with read replicas enabled (which
//!   Memorystore offers from 5 GB), whose count changes in place. The Standard tier always fails
//!   over automatically (a spec with replicas but without high availability gets a warning).
//!   Google cannot change the tier of an instance: going from no replica to replicas (or back),
//!   or from one replica to more, needs a new cache, and `update` says so before calling.
//! - Auth: `authEnabled` is always on and Memorystore generates the AUTH string itself; it is
//!   read back with `getAuthString` after every create and update ([`Api::read_secret`]), so the
//!   app gets the real one. The spec's token cannot be applied and is never logged.
//! - Transit encryption: `SERVER_AUTHENTICATION` (TLS, port 6378) or `DISABLED` (port 6379).
//! - Versions: `7.0` and `7.2` (`REDIS_7_0`, `REDIS_7_2`); a newer version is an in-place
//!   `upgrade` (Memorystore cannot downgrade).
//! - Updates in place (`patch` with an `updateMask`): memory size, labels, replica count.
//!
//! Every mutating call is a long-running operation polled on the injected clock with
//! `projects.locations.operations.get`. Batched reads list the region's instances page by page
//! and keep the stack's ones (Memorystore's list has no filter).

use std::collections::BTreeMap;

use google_cloud_gax::error::Error as GaxError;
use google_cloud_redis_v1::model::instance::{ConnectMode, ReadReplicasMode, State, Tier, TransitEncryptionMode};
use google_cloud_redis_v1::model::Instance;
use konstacks_core::clock::OpContext;
use konstacks_core::error::ErrorKind;
use konstacks_core::model::Cache;
use konstacks_core::model::CacheEngine;
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::secret::Secret;
use konstacks_core::spec::{CacheObserved, CacheSpec, Selector, TAG_STACK};

use super::labels::{self, Payload};
use super::network::all_pages;
use super::{error, immutable, invalid, last_segment, relative, Gcp};

/// Longest instance id Memorystore accepts.
const MAX_ID_LEN: usize = 40;
/// Most replicas of a Standard tier instance with read replicas.
const MAX_REPLICAS: u32 = 5;

/// A long-running operation, as far as the backend reads it.
struct Lro {
    name: String,
    done: bool,
    /// `(google.rpc.Code, message)` of a failed operation.
    error: Option<(i32, String)>,
}

/// Turn the client's `google.longrunning.Operation` into an [`Lro`].
macro_rules! lro {
    ($sent:expr) => {
        $sent.map(|op| Lro {
            name: op.name.clone(),
            done: op.done,
            error: op.error().map(|s| (s.code, s.message.clone())),
        })
    };
}

/// `REDIS_7_2` for `7.2`; `None` for a version Memorystore does not run.
pub(crate) fn redis_version(version: &str) -> Option<&'static str> {
    match version {
        "7.2" => Some("REDIS_7_2"),
        "7.0" | "7" => Some("REDIS_7_0"),
        "6" | "6.x" => Some("REDIS_6_X"),
        _ => None,
    }
}

/// The catalogue version of a `redisVersion`.
pub(crate) fn version_of(redis_version: &str) -> String {
    match redis_version {
        "REDIS_7_2" => "7.2".into(),
        "REDIS_7_0" => "7.0".into(),
        "REDIS_6_X" => "6.x".into(),
        other => other.strip_prefix("REDIS_").map(|v| v.replace('_', ".").to_ascii_lowercase()).unwrap_or_default(),
    }
}

/// The memory size (GiB) of a cache size's native name (`4gb`).
fn memory_gb(native: &str) -> Option<i32> {
    native.strip_suffix("gb").and_then(|n| n.parse::<i32>().ok()).filter(|n| *n > 0)
}

fn status_of(state: &State) -> String {
    match state.name() {
        Some("READY") => "available".into(),
        Some(other) => other.to_ascii_lowercase(),
        None => "unknown".into(),
    }
}

fn join(ids: &[String]) -> String {
    let mut v = ids.to_vec();
    v.sort();
    v.dedup();
    v.join(",")
}

fn split(s: Option<&str>) -> Vec<String> {
    s.filter(|s| !s.is_empty()).map(|s| s.split(',').map(str::to_string).collect()).unwrap_or_default()
}

/// Say what Memorystore will not do of what the spec asks.
fn note_unsupported(spec: &CacheSpec, creating: bool) {
    if spec.replicas > 0 && !spec.high_availability {
        tracing::warn!(cache = %spec.name, "gcp: a Standard tier Memorystore instance always fails over to a replica");
    }
    if spec.auth_token.is_some() {
        tracing::warn!(
            cache = %spec.name,
            creating,
            "gcp: Memorystore generates the AUTH string; the auth token in the spec is not applied"
        );
    }
}

impl Gcp {
    fn cache_parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.region)
    }

    fn cache_path(&self, name: &str) -> String {
        format!("{}/instances/{name}", self.cache_parent())
    }

    fn cache_observed(&self, i: &Instance) -> CacheObserved {
        let payload = labels::from_labels(&i.labels);
        let memory = format!("{}gb", i.memory_size_gb);
        let standard = i.tier == Tier::StandardHa;
        CacheObserved {
            id: relative(&i.name),
            name: last_segment(&i.name).to_string(),
            region: i.name.split('/').nth(3).unwrap_or_default().to_string(),
            engine: CacheEngine::Redis,
            version: version_of(&i.redis_version),
            size: self.catalog.cache_size(&memory).map(|o| o.slug.clone()).unwrap_or(memory),
            subnet_ids: split(payload.get("subnets")),
            firewall_ids: split(payload.get("firewalls")),
            replicas: if standard { u32::try_from(i.replica_count).unwrap_or(0) } else { 0 },
            high_availability: standard,
            transit_encryption: i.transit_encryption_mode == TransitEncryptionMode::ServerAuthentication,
            host: i.host.clone(),
            port: i.port.to_string(),
            status: status_of(&i.state),
            tags: payload.tags,
        }
    }

    fn cache_labels(&self, spec: &CacheSpec) -> ProviderResult<BTreeMap<String, String>> {
        let payload = Payload::new(&spec.tags)
            .with("subnets", join(&spec.subnet_ids))
            .with("firewalls", join(&spec.firewall_ids));
        labels::to_labels(&payload).map_err(invalid)
    }

    fn cache_memory(&self, spec: &CacheSpec) -> ProviderResult<i32> {
        self.catalog
            .cache_size(&spec.size)
            .and_then(|o| memory_gb(&o.native))
            .ok_or_else(|| invalid(format!("cache size `{}` is not in the GCP catalogue", spec.size)))
    }

    async fn get_cache(&self, name: &str) -> ProviderResult<Instance> {
        self.redis
            .get_instance()
            .set_name(self.cache_path(name))
            .send()
            .await
            .map_err(|e| error::api(format!("reading Memorystore instance `{name}`"), e))
    }

    /// Poll a Memorystore operation until it is done, and turn its error into a portable one.
    async fn wait_redis_op(&self, cx: &OpContext, what: &str, sent: Result<Lro, GaxError>) -> ProviderResult<()> {
        let op = sent.map_err(|e| error::api(what, e))?;
        let name = op.name.clone();
        let mut current = Some(op);
        let done = self
            .wait_for(cx, &format!("{what} (operation `{name}`)"), self.waits.database, || {
                let seen = current.take();
                async {
                    let op = match seen {
                        Some(op) => op,
                        None => lro!(self.redis.get_operation().set_name(&name).send().await)
                            .map_err(|e| error::api(format!("reading operation `{name}` of {what}"), e))?,
                    };
                    Ok(op.done.then_some(op))
                }
            })
            .await?;
        match done.error {
            Some((code, message)) => {
                let code = google_cloud_gax::error::rpc::Code::from(code);
                // Quota failures come back as RESOURCE_EXHAUSTED, like rate limits: the message tells.
                let kind = if message.to_ascii_lowercase().contains("quota") {
                    ErrorKind::QuotaExceeded
                } else {
                    error::kind_of(None, Some(code), &[])
                };
                Err(konstacks_core::error::ProviderError::new(
                    kind,
                    format!("{what} failed in operation `{name}`: {} ({code:?})", message),
                ))
            }
            None => Ok(()),
        }
    }

    /// Network (relative path) and zones (primary, and another one for a replica) of the subnets.
    async fn cache_placement(
        &self,
        cx: &OpContext,
        spec: &CacheSpec,
    ) -> ProviderResult<(String, String, Option<String>)> {
        if spec.subnet_ids.is_empty() {
            return Err(invalid(format!(
                "cache `{}` names no subnet; Memorystore needs the stack's network",
                spec.name
            )));
        }
        let mut network: Option<String> = None;
        let mut zones: Vec<String> = Vec::new();
        for id in &spec.subnet_ids {
            let subnet = self.get_subnet(id).await?;
            let net = subnet.network.as_deref().map(relative).unwrap_or_default();
            match &network {
                Some(n) if *n != net => {
                    return Err(invalid(format!(
                    "cache `{}`: its subnets are on different networks (`{n}`, `{net}`); Memorystore attaches to one",
                    spec.name
                )))
                }
                _ => network = Some(net),
            }
            let payload = labels::from_description(subnet.description.as_deref()).unwrap_or_default();
            let zone = self.zone_name(cx, payload.get("zone").and_then(|z| z.parse().ok()).unwrap_or(0)).await?;
            if !zones.contains(&zone) {
                zones.push(zone);
            }
        }
        let network = network.unwrap_or_default();
        let mut zones = zones.into_iter();
        let primary = zones.next().unwrap_or_default();
        Ok((network, primary, zones.next()))
    }

    fn check_cache_spec(&self, spec: &CacheSpec) -> ProviderResult<&'static str> {
        self.check_region(&spec.region)?;
        if spec.engine != CacheEngine::Redis {
            return Err(invalid(format!(
                "cache `{}`: Memorystore for Redis runs Redis, not {}",
                spec.name,
                spec.engine.as_str()
            )));
        }
        if spec.name.len() > MAX_ID_LEN {
            return Err(invalid(format!(
                "cache name `{}` is longer than the {MAX_ID_LEN} characters Memorystore allows",
                spec.name
            )));
        }
        if spec.replicas > MAX_REPLICAS {
            return Err(invalid(format!(
                "cache `{}`: Memorystore runs at most {MAX_REPLICAS} replicas (asked for {})",
                spec.name, spec.replicas
            )));
        }
        if spec.high_availability && spec.replicas == 0 {
            return Err(invalid(format!("cache `{}`: high availability needs a replica", spec.name)));
        }
        redis_version(&spec.version).ok_or_else(|| {
            invalid(format!(
                "Redis {} is not offered by Memorystore in the GCP catalogue (use 7.0 or 7.2)",
                spec.version
            ))
        })
    }
}

#[async_trait::async_trait]
impl Api<Cache> for Gcp {
    async fn create(&self, cx: &OpContext, spec: &CacheSpec) -> ProviderResult<CacheObserved> {
        let version = self.check_cache_spec(spec)?;
        let memory = self.cache_memory(spec)?;
        note_unsupported(spec, true);
        let (network, zone, other_zone) = self.cache_placement(cx, spec).await?;
        let mut i = Instance::default();
        i.redis_version = version.to_string();
        i.memory_size_gb = memory;
        i.authorized_network = network;
        i.connect_mode = ConnectMode::PrivateServiceAccess;
        i.auth_enabled = true;
        i.transit_encryption_mode = if spec.transit_encryption {
            TransitEncryptionMode::ServerAuthentication
        } else {
            TransitEncryptionMode::Disabled
        };
        i.location_id = zone;
        if spec.replicas > 0 {
            i.tier = Tier::StandardHa;
            i.replica_count = i32::try_from(spec.replicas).unwrap_or(1);
            // One replica is the plain Standard tier (any size); more need read replicas, which
            // Memorystore offers from 5 GB.
            i.read_replicas_mode = if spec.replicas > 1 {
                ReadReplicasMode::ReadReplicasEnabled
            } else {
                ReadReplicasMode::ReadReplicasDisabled
            };
            i.alternative_location_id = other_zone.unwrap_or_default();
        } else {
            i.tier = Tier::Basic;
        }
        i.labels = self.cache_labels(spec)?.into_iter().collect();
        let what = format!("creating Memorystore instance `{}`", spec.name);
        let sent = self
            .redis
            .create_instance()
            .set_parent(self.cache_parent())
            .set_instance_id(&spec.name)
            .set_instance(i)
            .send()
            .await;
        match sent {
            Err(e) if e.http_status_code() == Some(409) => {
                // A retry after a lost answer: the instance is ours when it carries this stack's labels.
                let existing = self.cache_observed(&self.get_cache(&spec.name).await?);
                if existing.tags.get(TAG_STACK) != spec.tags.get(TAG_STACK) {
                    return Err(error::api(&what, e));
                }
                self.wait_for(
                    cx,
                    &format!("Memorystore instance `{}` becoming ready", spec.name),
                    self.waits.database,
                    || async {
                        let i = self.get_cache(&spec.name).await?;
                        Ok((i.state == State::Ready).then_some(()))
                    },
                )
                .await?;
            }
            sent => self.wait_redis_op(cx, &what, lro!(sent)).await?,
        }
        Ok(self.cache_observed(&self.get_cache(&spec.name).await?))
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<CacheObserved>> {
        if matches!(sel, Selector::Ids(ids) if ids.is_empty()) {
            return Ok(Vec::new());
        }
        let parent = self.cache_parent();
        let found = all_pages(|token| {
            let req = self.redis.list_instances().set_parent(&parent).set_page_token(token);
            async move { req.send().await.map(|p| (p.instances, Some(p.next_page_token))) }
        })
        .await
        .map_err(|e| error::api(format!("listing the Memorystore instances of `{}`", self.region), e))?;
        let mut out: Vec<CacheObserved> = found
            .iter()
            .map(|i| self.cache_observed(i))
            .filter(|c| match sel {
                Selector::Ids(ids) => ids.contains(&c.id),
                Selector::Stack(stack) => c.tags.get(TAG_STACK) == Some(stack),
                _ => false,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &CacheSpec) -> ProviderResult<CacheObserved> {
        let version = self.check_cache_spec(spec)?;
        let memory = self.cache_memory(spec)?;
        let name = last_segment(id).to_string();
        let current = self.get_cache(&name).await?;
        let cur = self.cache_observed(&current);
        let what = format!("Memorystore instance `{name}`");
        immutable(&what, "name", &cur.name, &spec.name)?;
        immutable(&what, "region", &cur.region, &spec.region)?;
        immutable(&what, "transit_encryption", &cur.transit_encryption, &spec.transit_encryption)?;
        let mut want_subnets = spec.subnet_ids.clone();
        want_subnets.sort();
        let mut have_subnets = cur.subnet_ids.clone();
        have_subnets.sort();
        immutable(&what, "subnet_ids", &have_subnets, &want_subnets)?;
        if (spec.replicas > 0) != cur.high_availability {
            return Err(invalid(format!(
                "{what}: Memorystore cannot change the tier of an instance ({} -> {}: {} -> {} replicas); \
                 replace the cache instead",
                current.tier.name().unwrap_or("?"),
                if spec.replicas > 0 { "STANDARD_HA" } else { "BASIC" },
                cur.replicas,
                spec.replicas
            )));
        }
        note_unsupported(spec, false);
        if current.redis_version != version {
            if version_of(version) < cur.version {
                return Err(invalid(format!(
                    "{what}: Memorystore cannot downgrade Redis ({} -> {}); replace the cache instead",
                    cur.version, spec.version
                )));
            }
            let sent =
                self.redis.upgrade_instance().set_name(self.cache_path(&name)).set_redis_version(version).send().await;
            self.wait_redis_op(cx, &format!("upgrading {what} to Redis {}", spec.version), lro!(sent)).await?;
        }
        let labels = self.cache_labels(spec)?;
        let mut patch = Instance::default();
        patch.name = self.cache_path(&name);
        let mut paths: Vec<&str> = Vec::new();
        if current.memory_size_gb != memory {
            patch.memory_size_gb = memory;
            paths.push("memory_size_gb");
        }
        let have_labels: BTreeMap<String, String> = current.labels.clone().into_iter().collect();
        if have_labels != labels {
            patch.labels = labels.into_iter().collect();
            paths.push("labels");
        }
        let replicas = i32::try_from(spec.replicas).unwrap_or(1);
        if spec.replicas > 0 && current.replica_count != replicas {
            if current.read_replicas_mode != ReadReplicasMode::ReadReplicasEnabled {
                return Err(invalid(format!(
                    "{what}: a Standard tier instance without read replicas keeps exactly one replica \
                     ({} -> {} replicas); replace the cache instead",
                    cur.replicas, spec.replicas
                )));
            }
            patch.replica_count = replicas;
            paths.push("replica_count");
        }
        if !paths.is_empty() {
            let mask = google_cloud_wkt::FieldMask::default().set_paths(paths);
            let sent = self.redis.update_instance().set_update_mask(mask).set_instance(patch).send().await;
            self.wait_redis_op(cx, &format!("updating {what}"), lro!(sent)).await?;
        }
        Ok(self.cache_observed(&self.get_cache(&name).await?))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let name = last_segment(id).to_string();
        let what = format!("deleting Memorystore instance `{name}`");
        match self.redis.delete_instance().set_name(self.cache_path(&name)).send().await {
            Err(e) if e.http_status_code() == Some(404) => Ok(()),
            sent => match self.wait_redis_op(cx, &what, lro!(sent)).await {
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                other => other,
            },
        }
    }

    /// The AUTH string Memorystore generated: the token clients must use, whatever the spec had.
    async fn read_secret(&self, _cx: &OpContext, id: &str, field: &str) -> ProviderResult<Option<Secret<String>>> {
        if field != konstacks_core::kinds::cache::field::AUTH_TOKEN.name() {
            return Ok(None);
        }
        let name = last_segment(id).to_string();
        let auth = self
            .redis
            .get_instance_auth_string()
            .set_name(self.cache_path(&name))
            .send()
            .await
            .map_err(|e| error::api(format!("reading the AUTH string of Memorystore instance `{name}`"), e))?;
        Ok((!auth.auth_string.is_empty()).then(|| Secret::new(auth.auth_string)))
    }

    /// Memorystore generates the AUTH string itself and ignores the spec's.
    fn sets_secret_on_update(&self, _field: &str) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip() {
        for v in ["7.0", "7.2"] {
            assert_eq!(redis_version(v).map(version_of).as_deref(), Some(v));
        }
        assert_eq!(redis_version("8.0"), None);
        assert_eq!(version_of("REDIS_6_X"), "6.x");
        assert_eq!(memory_gb("4gb"), Some(4));
        assert_eq!(memory_gb("cache.t3.micro"), None);
        assert_eq!(memory_gb("0gb"), None);
    }
}
