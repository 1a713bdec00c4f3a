//! RDS for PostgreSQL and MySQL.
//!
//! A database is an RDS DB instance whose identifier is the physical name (that identifier is
//! also its Konstacks id) plus a DB subnet group of the same name over the stack's subnets.
//! Storage is encrypted unless the stack says otherwise, the instance is never publicly
//! accessible, and the master password comes from the stack's secret (it is sent to AWS and
//! nowhere else). Updates go through `ModifyDBInstance` with only the fields that differ;
//! values still pending for the maintenance window are reported as the observed values. Deletes
//! take a final snapshot according to [`FinalSnapshot`](super::FinalSnapshot), wait until the
//! instance is gone, then delete its subnet group.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_rds::types::{DbInstance, Filter, Tag};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::model::Database;
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{DatabaseObserved, DatabaseSpec, Selector, Tags, TAG_PATH};

use super::catalog::{catalog_version, engine_of, rds_engine};
use super::error::{invalid, sdk_error};
use super::{check_tags, follow_up, visible_tags, wait_for, AwsProvider, FinalSnapshot, Polled, TAG_SIZE, TAG_STAGE};

/// Statuses from which a database does not become available by itself.
const BROKEN: &[&str] = &[
    "failed",
    "incompatible-parameters",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-restore",
    "inaccessible-encryption-credentials",
    "storage-full",
];
/// RDS accepts at most this many values in one filter (a conservative bound).
const RDS_FILTER_CHUNK: usize = 100;

fn missing(what: &str) -> ProviderError {
    ProviderError::new(ErrorKind::Other, format!("AWS answered without {what}; this is unexpected, retry"))
}

/// RDS identifiers: 1 to 63 lowercase letters, digits and hyphens, starting with a letter,
/// without a trailing or doubled hyphen.
fn check_identifier(name: &str) -> ProviderResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "database name `{name}` is not a valid RDS identifier: use 1 to 63 lowercase letters, digits and single \
             hyphens, starting with a letter and not ending with a hyphen"
        )))
    }
}

/// RDS master passwords: 8 to 128 printable ASCII characters (41 for MySQL) without `/`, `"`,
/// `@` or spaces. The message never contains the password.
fn check_password(what: &str, password: &str, mysql: bool) -> ProviderResult<()> {
    let max = if mysql { 41 } else { 128 };
    let printable = password.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '"' | '@'));
    if password.len() < 8 || password.len() > max || !printable {
        return Err(invalid(format!(
            "{what}: the admin password must have 8 to {max} printable ASCII characters without `/`, `\"`, `@` or \
             spaces (the value is not shown)"
        )));
    }
    Ok(())
}

fn rds_tags(tags: &Tags, extra: &[(&str, &str)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().copied())
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_map(db: &DbInstance) -> BTreeMap<String, String> {
    db.tag_list()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect()
}

fn status_of(db: &DbInstance) -> &str {
    db.db_instance_status().unwrap_or_default()
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

impl AwsProvider {
    async fn describe_db_instances(&self, filters: Vec<Filter>) -> ProviderResult<Vec<DbInstance>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .rds
                .describe_db_instances()
                .set_filters(if filters.is_empty() { None } else { Some(filters.clone()) })
                .max_records(100)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeDBInstances", "reading databases", e))?;
            out.extend(page.db_instances().iter().cloned());
            match page.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(out),
            }
        }
    }

    async fn db_by_id(&self, id: &str) -> ProviderResult<Option<DbInstance>> {
        let f = Filter::builder().name("db-instance-id").values(id).build();
        Ok(self.describe_db_instances(vec![f]).await?.into_iter().find(|d| d.db_instance_identifier() == Some(id)))
    }

    fn db_observed(&self, db: &DbInstance) -> Option<DatabaseObserved> {
        let engine = engine_of(db.engine()?)?;
        let tags = tag_map(db);
        let pending = db.pending_modified_values();
        let class = pending.and_then(|p| p.db_instance_class()).or(db.db_instance_class()).unwrap_or_default();
        let size = match tags.get(TAG_SIZE) {
            Some(req) if self.catalog.db_size(req).is_some_and(|o| o.native == class) => req.clone(),
            _ => self.catalog.db_size(class).map(|o| o.slug.clone()).unwrap_or_else(|| class.to_string()),
        };
        let version = pending.and_then(|p| p.engine_version()).or(db.engine_version()).unwrap_or_default();
        let mut subnet_ids: Vec<String> = db
            .db_subnet_group()
            .map(|g| g.subnets().iter().filter_map(|s| s.subnet_identifier().map(str::to_string)).collect())
            .unwrap_or_default();
        subnet_ids.sort();
        let mut firewall_ids: Vec<String> = db
            .vpc_security_groups()
            .iter()
            .filter(|g| g.status() != Some("removing"))
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect();
        firewall_ids.sort();
        let endpoint = db.endpoint();
        let port = endpoint.and_then(|e| e.port()).or(db.db_instance_port()).filter(|p| *p > 0);
        let num = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        Some(DatabaseObserved {
            id: db.db_instance_identifier()?.to_string(),
            name: db.db_instance_identifier()?.to_string(),
            region: self.region.clone(),
            engine,
            version: catalog_version(&self.catalog, engine, version),
            size,
            storage_gb: num(pending.and_then(|p| p.allocated_storage()).or(db.allocated_storage())),
            subnet_ids,
            firewall_ids,
            backup_retention_days: num(pending
                .and_then(|p| p.backup_retention_period())
                .or(db.backup_retention_period())),
            encrypted: db.storage_encrypted().unwrap_or(false),
            high_availability: pending.and_then(|p| p.multi_az()).or(db.multi_az()).unwrap_or(false),
            deletion_protection: db.deletion_protection().unwrap_or(false),
            host: endpoint.and_then(|e| e.address()).unwrap_or_default().to_string(),
            port: port.map_or_else(|| engine.default_port().to_string(), |p| p.to_string()),
            admin_user: db.master_username().unwrap_or(&self.settings.master_username).to_string(),
            status: status_of(db).to_string(),
            tags: visible_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        })
    }

    /// Wait until the database is `available` (and, when `settled`, has nothing pending).
    async fn wait_available(&self, cx: &OpContext, id: &str, settled: bool) -> ProviderResult<DbInstance> {
        let t = self.settings.timeouts;
        let what = format!("database `{id}` becoming available");
        wait_for(cx, &what, t.db_available, t.max_poll, || async {
            let Some(db) = self.db_by_id(id).await? else {
                return Ok(Polled::Pending("not visible yet".into()));
            };
            let status = status_of(&db).to_string();
            if BROKEN.contains(&status.as_str()) {
                return Err(ProviderError::new(
                    ErrorKind::Other,
                    format!("database `{id}` is `{status}`; look at its events in the RDS console"),
                ));
            }
            let pending = db.pending_modified_values().is_some_and(|p| {
                p.db_instance_class().is_some()
                    || p.allocated_storage().is_some()
                    || p.engine_version().is_some()
                    || p.backup_retention_period().is_some()
                    || p.multi_az().is_some()
            });
            if status == "available" && !(settled && pending) {
                Ok(Polled::Ready(db))
            } else {
                Ok(Polled::Pending(if pending { format!("{status}, modifications pending") } else { status }))
            }
        })
        .await
    }

    async fn create_subnet_group(&self, name: &str, subnets: &[String], tags: &Tags) -> ProviderResult<bool> {
        let path = tags.get(TAG_PATH).cloned().unwrap_or_else(|| name.to_string());
        let created = self
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(name)
            .db_subnet_group_description(format!("Konstacks database {path}"))
            .set_subnet_ids(Some(subnets.to_vec()))
            .set_tags(Some(rds_tags(tags, &[])))
            .send()
            .await
            .map_err(|e| sdk_error("CreateDBSubnetGroup", &format!("creating DB subnet group `{name}`"), e));
        match created {
            Ok(_) => Ok(true),
            // Left by an interrupted earlier attempt: bring it to the wanted subnets.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                self.rds
                    .modify_db_subnet_group()
                    .db_subnet_group_name(name)
                    .set_subnet_ids(Some(subnets.to_vec()))
                    .send()
                    .await
                    .map_err(|e| sdk_error("ModifyDBSubnetGroup", &format!("updating DB subnet group `{name}`"), e))?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_subnet_group(&self, cx: &OpContext, name: &str) -> ProviderResult<()> {
        let start = cx.clock.now();
        let patience = self.settings.timeouts.follow_up;
        loop {
            let r = self
                .rds
                .delete_db_subnet_group()
                .db_subnet_group_name(name)
                .send()
                .await
                .map_err(|e| sdk_error("DeleteDBSubnetGroup", &format!("deleting DB subnet group `{name}`"), e));
            match r {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                // Still held by the instance that is going away.
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

    async fn sync_rds_tags(&self, db: &DbInstance, desired: &BTreeMap<String, String>) -> ProviderResult<()> {
        let arn = db.db_instance_arn().ok_or_else(|| missing("the database ARN"))?;
        let current = tag_map(db);
        let add: Vec<Tag> = desired
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let remove: Vec<String> = current
            .keys()
            .filter(|k| {
                !desired.contains_key(*k) && !k.starts_with("aws:") && !k.starts_with(super::INTERNAL_TAG_PREFIX)
            })
            .cloned()
            .collect();
        if !add.is_empty() {
            self.rds
                .add_tags_to_resource()
                .resource_name(arn)
                .set_tags(Some(add))
                .send()
                .await
                .map_err(|e| sdk_error("AddTagsToResource", "tagging a database", e))?;
        }
        if !remove.is_empty() {
            self.rds
                .remove_tags_from_resource()
                .resource_name(arn)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| sdk_error("RemoveTagsFromResource", "removing tags of a database", e))?;
        }
        Ok(())
    }

    fn db_class(&self, what: &str, size: &str) -> ProviderResult<String> {
        self.catalog.db_size(size).map(|o| o.native.clone()).ok_or_else(|| {
            let offered: Vec<&str> = self.catalog.db_sizes.iter().map(|o| o.slug.as_str()).collect();
            invalid(format!("{what}: database size `{size}` is not offered; use one of: {}", offered.join(", ")))
        })
    }

    fn check_db_spec(&self, what: &str, spec: &DatabaseSpec) -> ProviderResult<(&'static str, String)> {
        self.check_region(what, &spec.region)?;
        check_identifier(&spec.name)?;
        check_tags(what, &spec.tags, 1)?;
        let engine = rds_engine(spec.engine).ok_or_else(|| {
            invalid(format!(
                "{what}: engine `{}` is not supported by the AWS backend (RDS offers Postgres and MySQL here; \
                 Redis and Valkey are the `cache` kind)",
                spec.engine.as_str()
            ))
        })?;
        let versions = self.catalog.engine_versions(spec.engine.as_str());
        if !versions.contains(&spec.version) {
            return Err(invalid(format!(
                "{what}: {engine} version `{}` is not offered; use one of: {}",
                spec.version,
                versions.join(", ")
            )));
        }
        let user = &self.settings.master_username;
        let user_ok = (1..=16).contains(&user.len())
            && user.starts_with(|c: char| c.is_ascii_alphabetic())
            && user.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && user != "rdsadmin"
            && !(engine == "postgres" && (user == "admin" || user.starts_with("pg_")))
            && !(engine == "mysql" && user == "rdsrepladmin");
        if !user_ok {
            return Err(invalid(format!(
                "{what}: master user name `{user}` is refused by RDS for {engine}: use 1 to 16 letters, digits and \
                 `_`, starting with a letter, not a name the engine reserves (`admin` on Postgres, `rdsadmin`)"
            )));
        }
        if !(20..=65_536).contains(&spec.storage_gb) {
            return Err(invalid(format!("{what}: storage of {} GiB is outside 20..=65536", spec.storage_gb)));
        }
        if spec.backup_retention_days > 35 {
            return Err(invalid(format!("{what}: RDS keeps backups for at most 35 days")));
        }
        Ok((engine, self.db_class(what, &spec.size)?))
    }
}

#[async_trait::async_trait]
impl Api<Database> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &DatabaseSpec) -> ProviderResult<DatabaseObserved> {
        let what = format!("database `{}`", spec.name);
        let (engine, class) = self.check_db_spec(&what, spec)?;
        let subnets: BTreeSet<&String> = spec.subnet_ids.iter().collect();
        if subnets.len() < 2 {
            return Err(invalid(format!("{what}: RDS needs subnets in at least two zones; pass two or more subnets")));
        }
        let password = spec
            .password
            .as_ref()
            .ok_or_else(|| invalid(format!("{what}: an admin password is needed to create the database")))?;
        check_password(&what, password.expose(), engine == "mysql")?;
        let fresh_group = self.create_subnet_group(&spec.name, &spec.subnet_ids, &spec.tags).await?;
        let created = self
            .rds
            .create_db_instance()
            .db_instance_identifier(&spec.name)
            .db_instance_class(&class)
            .engine(engine)
            .engine_version(&spec.version)
            .allocated_storage(i32::try_from(spec.storage_gb).unwrap_or(i32::MAX))
            .storage_type("gp3")
            .master_username(&self.settings.master_username)
            .master_user_password(password.expose())
            .db_subnet_group_name(&spec.name)
            .set_vpc_security_group_ids(Some(spec.firewall_ids.clone()))
            .backup_retention_period(i32::try_from(spec.backup_retention_days).unwrap_or(35))
            .multi_az(spec.high_availability)
            .storage_encrypted(spec.encrypted)
            .deletion_protection(spec.deletion_protection)
            .publicly_accessible(false)
            .auto_minor_version_upgrade(true)
            .copy_tags_to_snapshot(true)
            .set_tags(Some(rds_tags(&spec.tags, &[(TAG_SIZE, spec.size.as_str())])))
            .send()
            .await
            .map_err(|e| sdk_error("CreateDBInstance", &format!("creating {what}"), e));
        if let Err(e) = created {
            // The group belongs to an instance of that name if one exists already; else it goes.
            if fresh_group && e.kind() != ErrorKind::AlreadyExists {
                let _ = self.rds.delete_db_subnet_group().db_subnet_group_name(&spec.name).send().await;
            }
            return Err(e);
        }
        let db = self.wait_available(cx, &spec.name, false).await?;
        self.db_observed(&db).ok_or_else(|| missing("the database's engine and identifier"))
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DatabaseObserved>> {
        let dbs = match sel {
            Selector::Ids(ids) => {
                let mut ids: Vec<String> = ids.iter().filter(|s| !s.is_empty()).cloned().collect();
                ids.sort();
                ids.dedup();
                let mut all = Vec::new();
                for chunk in ids.chunks(RDS_FILTER_CHUNK) {
                    let f = Filter::builder().name("db-instance-id").set_values(Some(chunk.to_vec())).build();
                    all.extend(self.describe_db_instances(vec![f]).await?);
                }
                all
            }
            // RDS has no tag filter on DescribeDBInstances: list (paginated) and keep the stack's.
            Selector::Stack(stack) => self
                .describe_db_instances(Vec::new())
                .await?
                .into_iter()
                .filter(|d| tag_map(d).get(konstacks_core::spec::TAG_STACK) == Some(stack))
                .collect(),
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        };
        let mut out: Vec<DatabaseObserved> =
            dbs.iter().filter(|d| status_of(d) != "deleting").filter_map(|d| self.db_observed(d)).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &DatabaseSpec) -> ProviderResult<DatabaseObserved> {
        let what = format!("database `{id}`");
        let (engine, class) = self.check_db_spec(&what, spec)?;
        if let Some(p) = &spec.password {
            check_password(&what, p.expose(), engine == "mysql")?;
        }
        let db = self
            .db_by_id(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("{what} does not exist in `{}`", self.region)))?;
        let cur = self.db_observed(&db).ok_or_else(|| missing("the database's engine"))?;
        let mut want_subnets = spec.subnet_ids.clone();
        want_subnets.sort();
        for (field, same) in [
            ("engine", cur.engine == spec.engine),
            ("encrypted", cur.encrypted == spec.encrypted),
            ("subnet_ids", cur.subnet_ids == want_subnets),
        ] {
            if !same {
                return Err(invalid(format!("{what}: `{field}` cannot change in place; replace the database")));
            }
        }
        if spec.storage_gb < cur.storage_gb {
            return Err(invalid(format!(
                "{what}: storage cannot shrink ({} GiB -> {} GiB)",
                cur.storage_gb, spec.storage_gb
            )));
        }
        let mut want_fws = spec.firewall_ids.clone();
        want_fws.sort();
        let cur_class = self.db_class(&what, &cur.size).unwrap_or_default();
        let version_changes = cur.version != spec.version;
        let changes = [
            cur_class != class,
            cur.storage_gb != spec.storage_gb,
            version_changes,
            cur.backup_retention_days != spec.backup_retention_days,
            cur.high_availability != spec.high_availability,
            cur.deletion_protection != spec.deletion_protection,
            cur.firewall_ids != want_fws,
            spec.password.is_some(),
        ];
        if changes.iter().any(|c| *c) {
            if status_of(&db) != "available" {
                self.wait_available(cx, id, false).await?;
            }
            let mut req =
                self.rds.modify_db_instance().db_instance_identifier(id).apply_immediately(spec.apply_immediately);
            if changes[0] {
                req = req.db_instance_class(&class);
            }
            if changes[1] {
                req = req.allocated_storage(i32::try_from(spec.storage_gb).unwrap_or(i32::MAX));
            }
            if changes[2] {
                req = req
                    .engine_version(&spec.version)
                    .allow_major_version_upgrade(major(&cur.version) != major(&spec.version));
            }
            if changes[3] {
                req = req.backup_retention_period(i32::try_from(spec.backup_retention_days).unwrap_or(35));
            }
            if changes[4] {
                req = req.multi_az(spec.high_availability);
            }
            if changes[5] {
                req = req.deletion_protection(spec.deletion_protection);
            }
            if changes[6] {
                req = req.set_vpc_security_group_ids(Some(want_fws.clone()));
            }
            if let Some(p) = &spec.password {
                req = req.master_user_password(p.expose());
            }
            req.send().await.map_err(|e| sdk_error("ModifyDBInstance", &format!("modifying {what}"), e))?;
        }
        let mut desired = spec.tags.clone();
        desired.insert(TAG_SIZE.into(), spec.size.clone());
        let patience = self.settings.timeouts.follow_up;
        follow_up(cx, patience, || self.sync_rds_tags(&db, &desired)).await?;
        let now = if spec.apply_immediately && changes.iter().any(|c| *c) {
            self.wait_available(cx, id, true).await?
        } else {
            self.db_by_id(id).await?.ok_or_else(|| ProviderError::not_found(format!("{what} vanished")))?
        };
        let mut obs = self.db_observed(&now).ok_or_else(|| missing("the database's engine"))?;
        obs.tags = spec.tags.clone();
        obs.size = spec.size.clone();
        Ok(obs)
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let what = format!("database `{id}`");
        let db = self
            .db_by_id(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("{what} does not exist in `{}`", self.region)))?;
        if db.deletion_protection() == Some(true) {
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                format!("{what} has deletion protection on; turn it off with an update first"),
            ));
        }
        if status_of(&db) != "deleting" {
            let tags = tag_map(&db);
            let snapshot = match self.settings.final_snapshot {
                FinalSnapshot::Always => true,
                FinalSnapshot::Never => false,
                _ => tags.get(TAG_STAGE).map(String::as_str) != Some("dev"),
            };
            let mut req = self.rds.delete_db_instance().db_instance_identifier(id);
            req = if snapshot {
                let name = format!("{id}-final-{}", cx.clock.unix_secs());
                tracing::info!(database = id, snapshot = %name, "taking a final snapshot before deleting");
                req.final_db_snapshot_identifier(name).skip_final_snapshot(false)
            } else {
                req.skip_final_snapshot(true)
            };
            req.send().await.map_err(|e| sdk_error("DeleteDBInstance", &format!("deleting {what}"), e))?;
        }
        let t = self.settings.timeouts;
        wait_for(cx, &format!("{what} going away"), t.db_deleted, t.max_poll, || async {
            Ok(match self.db_by_id(id).await? {
                None => Polled::Ready(()),
                Some(d) => Polled::Pending(status_of(&d).to_string()),
            })
        })
        .await?;
        if let Some(group) = db.db_subnet_group().and_then(|g| g.db_subnet_group_name()) {
            // Only the group Konstacks made for this database (named after it).
            if group == id {
                self.delete_subnet_group(cx, group).await?;
            }
        }
        Ok(())
    }

    /// `update` resets the master password with `ModifyDBInstance MasterUserPassword` whenever
    /// the spec carries one, so a lost password can be rotated in place.
    fn sets_secret_on_update(&self, field: &str) -> bool {
        field == konstacks_core::spec::database::field::PASSWORD.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(check_identifier("shop-dev-data-postgres").is_ok());
        for bad in ["", "1db", "Db", "a--b", "a-", "a_b", &"a".repeat(64)] {
            assert!(check_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_checked_without_echo() {
        assert!(check_password("db", "Contract-Passw0rd-42", false).is_ok());
        let e = check_password("db", "has space in it", false).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(!e.contains("has space"));
        assert!(check_password("db", "a/b/c/d/e", false).is_err());
        assert!(check_password("db", "short", false).is_err());
        assert!(check_password("db", &"x".repeat(42), true).is_err());
    }
}
