//! The simulated cloud's managed caches (Redis, Valkey).

use std::time::Duration;

use crate::base::error::ErrorKind;
use crate::kind::api::ProviderResult;
use crate::kind::catalog::Catalog;
use crate::kinds::{Cache, CacheObserved, CacheSpec};
use crate::sim::secret_fingerprint;
use crate::sim::store::{
    check_engine_version, check_no_downgrade, check_offer, immutable, invalid, live_error, name_key, provider_error,
    same_set, Inner, SimKind, SimOps,
};

impl SimKind for Cache {
    const OPS: SimOps =
        SimOps { create: "create_cache", read: "read_caches", update: "update_cache", delete: "delete_cache" };

    const NOUN: &'static str = "cache";

    fn references(o: &CacheObserved) -> Vec<(&str, &'static str)> {
        let subnets = o.subnet_ids.iter().map(|s| (s.as_str(), ""));
        subnets.chain(o.firewall_ids.iter().map(|f| (f.as_str(), "attached to "))).collect()
    }

    fn unique_key(o: &CacheObserved) -> Option<String> {
        Some(name_key(&o.region, &o.name))
    }

    fn create(s: &mut Inner, cat: &Catalog, spec: &CacheSpec, now: Duration) -> ProviderResult<CacheObserved> {
        Inner::check_region(cat, &spec.region)?;
        Inner::check_name(cat, "cache", &spec.name)?;
        check_engine_version(cat, spec.engine.as_str(), &spec.version)?;
        check_offer("cache", &spec.size, cat.cache_size(&spec.size).is_some(), &cat.cache_sizes)?;
        if spec.high_availability && spec.replicas == 0 {
            return Err(invalid(format!("cache `{}`: automatic failover needs at least one replica", spec.name)));
        }
        let vpc_id = s.subnets_vpc("cache", &spec.name, &spec.subnet_ids, &spec.region, now)?;
        s.check_attached_firewalls(&spec.firewall_ids, &vpc_id, &spec.region, now)?;
        if let Some(other) = s
            .keyed::<Cache>(&name_key(&spec.region, &spec.name))
            .find(|c| c.region == spec.region && c.name == spec.name)
        {
            return Err(provider_error(
                ErrorKind::AlreadyExists,
                format!(
                    "a cache named `{}` already exists in region `{}` (`{}`); pick another name or adopt it",
                    spec.name, spec.region, other.id
                ),
            ));
        }
        // The auth token is never stored or printed: only its fingerprint, for tests.
        let obs = CacheObserved {
            id: s.next_id("cache"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            engine: spec.engine,
            version: spec.version.clone(),
            size: spec.size.clone(),
            subnet_ids: spec.subnet_ids.clone(),
            firewall_ids: spec.firewall_ids.clone(),
            replicas: spec.replicas,
            high_availability: spec.high_availability,
            transit_encryption: spec.transit_encryption,
            host: format!("{}.{}.cache.sim.internal", spec.name, spec.region),
            port: spec.engine.default_port().to_string(),
            status: "available".into(),
            tags: spec.tags.clone(),
        };
        let mut obs = obs;
        if let Some(rt) = &s.runtime {
            let live =
                rt.start_cache(&obs, spec).map_err(|e| live_error(&format!("start cache `{}`", spec.name), e))?;
            if let Some(a) = live {
                obs.host = a.host;
                obs.port = a.port.to_string();
            }
        }
        remember_token(s, &obs.id, spec);
        Ok(s.create::<Cache>(obs, now))
    }

    fn update(
        s: &mut Inner,
        cat: &Catalog,
        id: &str,
        spec: &CacheSpec,
        now: Duration,
    ) -> ProviderResult<CacheObserved> {
        let cur = s.existing::<Cache>(id)?;
        immutable("cache", id, "region", &cur.region, &spec.region)?;
        immutable("cache", id, "name", &cur.name, &spec.name)?;
        immutable("cache", id, "engine", &cur.engine, &spec.engine)?;
        immutable("cache", id, "transit_encryption", &cur.transit_encryption, &spec.transit_encryption)?;
        if !same_set(&cur.subnet_ids, &spec.subnet_ids) {
            immutable("cache", id, "subnet_ids", &cur.subnet_ids, &spec.subnet_ids)?;
        }
        check_engine_version(cat, spec.engine.as_str(), &spec.version)?;
        check_no_downgrade(cat, spec.engine.as_str(), id, "cache", &cur.version, &spec.version)?;
        check_offer("cache", &spec.size, cat.cache_size(&spec.size).is_some(), &cat.cache_sizes)?;
        if spec.high_availability && spec.replicas == 0 {
            return Err(invalid(format!("cache `{id}`: automatic failover needs at least one replica")));
        }
        let mut obs = cur.clone();
        let vpc_id = s.subnets_vpc("cache", id, &obs.subnet_ids, &obs.region, Duration::MAX).unwrap_or_default();
        s.check_attached_firewalls(&spec.firewall_ids, &vpc_id, &obs.region, now)?;
        obs.version = spec.version.clone();
        obs.size = spec.size.clone();
        obs.firewall_ids = spec.firewall_ids.clone();
        obs.replicas = spec.replicas;
        obs.high_availability = spec.high_availability;
        obs.tags = spec.tags.clone();
        // A token in an update replaces the auth token (AUTH rotation).
        remember_token(s, id, spec);
        s.put::<Cache>(obs.clone());
        Ok(obs)
    }

    fn delete(s: &mut Inner, id: &str) -> ProviderResult<()> {
        s.existing::<Cache>(id)?;
        s.remove(id);
        if let Some(rt) = &s.runtime {
            rt.stop_cache(id);
        }
        Ok(())
    }
}

/// Keep the fingerprint of the auth token the spec sets, if it sets one.
fn remember_token(s: &mut Inner, id: &str, spec: &CacheSpec) {
    if let Some(t) = &spec.auth_token {
        s.secret_prints.entry(id.to_string()).or_default().insert("auth_token".into(), secret_fingerprint(t.expose()));
    }
}
