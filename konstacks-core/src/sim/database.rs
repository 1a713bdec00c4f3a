//! The simulated cloud's managed databases.

use std::time::Duration;

use crate::base::error::ErrorKind;
use crate::kind::api::ProviderResult;
use crate::kind::catalog::Catalog;
use crate::kinds::{Database, DatabaseObserved, DatabaseSpec};
use crate::sim::secret_fingerprint;
use crate::sim::store::{
    check_engine_version, check_no_downgrade, check_offer, conflict, immutable, invalid, live_error, name_key,
    provider_error, same_set, Inner, SimKind, SimOps,
};

impl SimKind for Database {
    const OPS: SimOps = SimOps {
        create: "create_database",
        read: "read_databases",
        update: "update_database",
        delete: "delete_database",
    };

    const NOUN: &'static str = "database";

    fn references(o: &DatabaseObserved) -> Vec<(&str, &'static str)> {
        let subnets = o.subnet_ids.iter().map(|s| (s.as_str(), ""));
        subnets.chain(o.firewall_ids.iter().map(|f| (f.as_str(), "attached to "))).collect()
    }

    fn unique_key(o: &DatabaseObserved) -> Option<String> {
        Some(name_key(&o.region, &o.name))
    }

    fn create(s: &mut Inner, cat: &Catalog, spec: &DatabaseSpec, now: Duration) -> ProviderResult<DatabaseObserved> {
        Inner::check_region(cat, &spec.region)?;
        if spec.name.is_empty() {
            return Err(invalid("a database needs a name"));
        }
        Inner::check_name(cat, "database", &spec.name)?;
        check_engine_version(cat, spec.engine.as_str(), &spec.version)?;
        check_offer("database", &spec.size, cat.db_size(&spec.size).is_some(), &cat.db_sizes)?;
        let vpc_id = s.subnets_vpc("database", &spec.name, &spec.subnet_ids, &spec.region, now)?;
        s.check_attached_firewalls(&spec.firewall_ids, &vpc_id, &spec.region, now)?;
        if let Some(other) = s
            .keyed::<Database>(&name_key(&spec.region, &spec.name))
            .find(|d| d.region == spec.region && d.name == spec.name)
        {
            return Err(provider_error(
                ErrorKind::AlreadyExists,
                format!(
                    "a database named `{}` already exists in region `{}` (`{}`); pick another name or adopt it",
                    spec.name, spec.region, other.id
                ),
            ));
        }
        // The password is never stored or printed: only its fingerprint, for tests.
        let obs = DatabaseObserved {
            id: s.next_id("db"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            engine: spec.engine,
            version: spec.version.clone(),
            size: spec.size.clone(),
            storage_gb: spec.storage_gb,
            subnet_ids: spec.subnet_ids.clone(),
            firewall_ids: spec.firewall_ids.clone(),
            backup_retention_days: spec.backup_retention_days,
            encrypted: spec.encrypted,
            high_availability: spec.high_availability,
            deletion_protection: spec.deletion_protection,
            host: format!("{}.{}.db.sim.internal", spec.name, spec.region),
            port: spec.engine.default_port().to_string(),
            admin_user: "konstacks".into(),
            status: "available".into(),
            tags: spec.tags.clone(),
        };
        let mut obs = obs;
        if let Some(rt) = &s.runtime {
            let live =
                rt.start_database(&obs, spec).map_err(|e| live_error(&format!("start database `{}`", spec.name), e))?;
            if let Some(a) = live {
                obs.host = a.host;
                obs.port = a.port.to_string();
            }
        }
        remember_password(s, &obs.id, spec)?;
        Ok(s.create::<Database>(obs, now))
    }

    fn update(
        s: &mut Inner,
        cat: &Catalog,
        id: &str,
        spec: &DatabaseSpec,
        now: Duration,
    ) -> ProviderResult<DatabaseObserved> {
        let cur = s.existing::<Database>(id)?;
        immutable("database", id, "region", &cur.region, &spec.region)?;
        immutable("database", id, "name", &cur.name, &spec.name)?;
        immutable("database", id, "engine", &cur.engine, &spec.engine)?;
        immutable("database", id, "encrypted", &cur.encrypted, &spec.encrypted)?;
        if !same_set(&cur.subnet_ids, &spec.subnet_ids) {
            immutable("database", id, "subnet_ids", &cur.subnet_ids, &spec.subnet_ids)?;
        }
        check_engine_version(cat, spec.engine.as_str(), &spec.version)?;
        check_no_downgrade(cat, spec.engine.as_str(), id, "database", &cur.version, &spec.version)?;
        check_offer("database", &spec.size, cat.db_size(&spec.size).is_some(), &cat.db_sizes)?;
        if spec.storage_gb < cur.storage_gb {
            return Err(invalid(format!(
                "database `{id}`: storage cannot shrink ({} GiB -> {} GiB); keep {} GiB or more",
                cur.storage_gb, spec.storage_gb, cur.storage_gb
            )));
        }
        if spec.password.as_ref().is_some_and(|p| p.expose().is_empty()) {
            return Err(invalid(format!("database `{id}`: the new admin password is empty")));
        }
        let mut obs = cur.clone();
        let vpc_id = s.subnets_vpc("database", id, &obs.subnet_ids, &obs.region, Duration::MAX).unwrap_or_default();
        s.check_attached_firewalls(&spec.firewall_ids, &vpc_id, &obs.region, now)?;
        obs.version = spec.version.clone();
        obs.size = spec.size.clone();
        obs.storage_gb = spec.storage_gb;
        obs.firewall_ids = spec.firewall_ids.clone();
        obs.backup_retention_days = spec.backup_retention_days;
        obs.high_availability = spec.high_availability;
        obs.deletion_protection = spec.deletion_protection;
        obs.tags = spec.tags.clone();
        // A password in an update is a reset of the admin password, as `ModifyDBInstance
        // MasterUserPassword` or a Cloud SQL user update does.
        remember_password(s, id, spec)?;
        s.put::<Database>(obs.clone());
        Ok(obs)
    }

    fn delete(s: &mut Inner, id: &str) -> ProviderResult<()> {
        if s.existing::<Database>(id)?.deletion_protection {
            return Err(conflict(format!(
                "database `{id}` cannot be deleted: deletion protection is on; turn it off with an update first"
            )));
        }
        s.remove(id);
        if let Some(rt) = &s.runtime {
            rt.stop_database(id);
        }
        Ok(())
    }
}

/// Keep the fingerprint of the admin password the spec sets, if it sets one.
fn remember_password(s: &mut Inner, id: &str, spec: &DatabaseSpec) -> ProviderResult<()> {
    if let Some(p) = &spec.password {
        if p.expose().is_empty() {
            return Err(invalid(format!("database `{}`: the admin password is empty", spec.name)));
        }
        s.secret_prints.entry(id.to_string()).or_default().insert("password".into(), secret_fingerprint(p.expose()));
    }
    Ok(())
}
