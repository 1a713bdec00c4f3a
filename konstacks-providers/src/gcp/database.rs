//! `Database`: Cloud SQL for PostgreSQL and MySQL (Enterprise edition).
//!
//! An instance gets a private IP on the network of its subnets and no public IP (so it is
//! reachable only from inside the stack's network; GCP firewall rules do not apply to Cloud SQL,
//! so the database's firewalls are recorded on it but enforced by the VMs' egress and the
//! network), SSL-only connections, SSD storage of the requested size without automatic growth
//! (so that the stack stays the truth), daily backups kept for the requested number of days with
//! point-in-time recovery (PostgreSQL) or binary logging (MySQL), `REGIONAL` availability for
//! high availability, deletion protection, and labels. The stack's password is set on a user
//! named [`super::Config::database_user`], created right after the instance. Deleting a
//! database that is not tagged `konstacks:stage=dev` keeps a final backup.
//!
//! Private IP needs Private Service Access on the network (a reserved range peered with
//! `servicenetworking.googleapis.com`), which no official Rust client can create; it is set up
//! once per network (see `docs/gcp.md`), and its absence comes back as a clear error.

use std::collections::BTreeMap;

use google_cloud_sql_v1::model::backup_retention_settings::RetentionUnit;
use google_cloud_sql_v1::model::database_instance::SqlInstanceState;
use google_cloud_sql_v1::model::ip_configuration::SslMode;
use google_cloud_sql_v1::model::operation::SqlOperationStatus;
use google_cloud_sql_v1::model::settings::Edition;
use google_cloud_sql_v1::model::{
    BackupConfiguration, BackupRetentionSettings, DatabaseInstance, IpConfiguration, LocationPreference, Operation,
    Settings, SqlAvailabilityType, SqlDataDiskType, SqlDatabaseVersion, SqlIpAddressType, User,
};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::model::Database;
use konstacks_core::model::DbEngine as Engine;
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{DatabaseObserved, DatabaseSpec, Selector};

use super::catalog::{engine_version_of, sql_database_version};
use super::labels::{self, Payload};
use super::network::all_pages;
use super::{error, immutable, invalid, last_segment, relative, Gcp};

/// The tag templates set with the stack's stage; it decides the final backup on delete.
const TAG_STAGE: &str = "konstacks:stage";
/// Longest point-in-time-recovery log retention Cloud SQL Enterprise allows (days).
const MAX_LOG_DAYS: u32 = 7;

fn instance_name(id: &str) -> &str {
    last_segment(id)
}

fn port_of(engine: Engine) -> &'static str {
    match engine {
        Engine::Mysql => "3306",
        _ => "5432",
    }
}

fn status_of(state: &SqlInstanceState) -> String {
    match state.name() {
        Some("RUNNABLE") => "available".into(),
        Some("PENDING_CREATE") => "creating".into(),
        Some(other) => other.to_ascii_lowercase(),
        None => "unknown".into(),
    }
}

fn join(ids: &[String]) -> String {
    let mut v = ids.to_vec();
    v.sort();
    v.join(",")
}

fn split(s: Option<&str>) -> Vec<String> {
    s.filter(|s| !s.is_empty()).map(|s| s.split(',').map(str::to_string).collect()).unwrap_or_default()
}

/// The backup settings for `days` of retention (0 = off).
fn backups(engine: Engine, days: u32) -> BackupConfiguration {
    let mut b = BackupConfiguration::default();
    b.enabled = Some(days > 0);
    if days > 0 {
        b.start_time = "03:00".into();
        let mut r = BackupRetentionSettings::default();
        r.retention_unit = RetentionUnit::from("COUNT");
        r.retained_backups = Some(i32::try_from(days).unwrap_or(i32::MAX));
        b.backup_retention_settings = Some(r);
        b.transaction_log_retention_days = Some(i32::try_from(days.min(MAX_LOG_DAYS)).unwrap_or(7));
        match engine {
            Engine::Mysql => b.binary_log_enabled = Some(true),
            _ => b.point_in_time_recovery_enabled = Some(true),
        }
    }
    b
}

/// The settings Konstacks manages, from a spec.
fn settings(
    spec: &DatabaseSpec,
    tier: &str,
    network: &str,
    zone: Option<&str>,
    labels: BTreeMap<String, String>,
) -> Settings {
    let mut s = Settings::default();
    s.tier = tier.to_string();
    s.edition = Edition::from("ENTERPRISE");
    s.data_disk_type = SqlDataDiskType::from("PD_SSD");
    s.data_disk_size_gb = Some(i64::from(spec.storage_gb));
    s.storage_auto_resize = Some(false);
    s.availability_type = SqlAvailabilityType::from(if spec.high_availability { "REGIONAL" } else { "ZONAL" });
    s.deletion_protection_enabled = Some(spec.deletion_protection);
    s.backup_configuration = Some(backups(spec.engine, spec.backup_retention_days));
    let mut ip = IpConfiguration::default();
    ip.ipv4_enabled = Some(false);
    ip.private_network = format!("/{network}");
    ip.ssl_mode = SslMode::from("ENCRYPTED_ONLY");
    s.ip_configuration = Some(ip);
    if let Some(z) = zone {
        let mut l = LocationPreference::default();
        l.zone = z.to_string();
        s.location_preference = Some(l);
    }
    s.user_labels = labels.into_iter().collect();
    s
}

impl Gcp {
    fn db_observed(&self, d: &DatabaseInstance) -> DatabaseObserved {
        let settings = d.settings.clone().unwrap_or_default();
        let payload = labels::from_labels(&settings.user_labels);
        let version_name = d.database_version.name().unwrap_or_default();
        let (engine, version) = engine_version_of(version_name).unwrap_or((Engine::Postgres, version_name.to_string()));
        let backup = settings.backup_configuration.clone().unwrap_or_default();
        let retention = if backup.enabled == Some(true) {
            backup
                .backup_retention_settings
                .as_ref()
                .and_then(|r| r.retained_backups)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(7)
        } else {
            0
        };
        let host = d
            .ip_addresses
            .iter()
            .find(|a| a.r#type == SqlIpAddressType::from("PRIVATE"))
            .or_else(|| d.ip_addresses.first())
            .map(|a| a.ip_address.clone())
            .unwrap_or_default();
        let tier = settings.tier.clone();
        DatabaseObserved {
            id: format!("projects/{}/instances/{}", self.project, d.name),
            name: d.name.clone(),
            region: d.region.clone(),
            engine,
            version: payload
                .get("version")
                .filter(|v| sql_database_version(engine, v).as_deref() == Some(version_name))
                .map(str::to_string)
                .unwrap_or(version),
            size: self.catalog.db_size(&tier).map(|o| o.slug.clone()).unwrap_or(tier),
            storage_gb: settings.data_disk_size_gb.and_then(|g| u32::try_from(g).ok()).unwrap_or(0),
            subnet_ids: split(payload.get("subnets")),
            firewall_ids: split(payload.get("firewalls")),
            backup_retention_days: retention,
            // Cloud SQL encrypts every instance's data at rest; it cannot be turned off.
            encrypted: true,
            high_availability: settings.availability_type == SqlAvailabilityType::from("REGIONAL"),
            deletion_protection: settings.deletion_protection_enabled.unwrap_or(false),
            host,
            port: port_of(engine).to_string(),
            admin_user: self.database_user.clone(),
            status: status_of(&d.state),
            tags: payload.tags,
        }
    }

    async fn get_db(&self, name: &str) -> ProviderResult<DatabaseInstance> {
        self.sql
            .get()
            .set_project(&self.project)
            .set_instance(name)
            .send()
            .await
            .map_err(|e| error::api(format!("reading Cloud SQL instance `{name}`"), e))
    }

    /// Poll a Cloud SQL operation until it is `DONE`, and turn its error into a [`ProviderError`].
    async fn wait_sql_op(&self, cx: &OpContext, what: &str, op: Operation) -> ProviderResult<Operation> {
        let name = op.name.clone();
        let mut current = Some(op);
        let done = self
            .wait_for(cx, &format!("{what} (operation `{name}`)"), self.waits.database, || {
                let seen = current.take();
                async {
                    let op = match seen {
                        Some(op) => op,
                        None => self
                            .sql_ops
                            .get()
                            .set_project(&self.project)
                            .set_operation(&name)
                            .send()
                            .await
                            .map_err(|e| error::api(format!("reading operation `{name}` of {what}"), e))?,
                    };
                    Ok((op.status == SqlOperationStatus::from("DONE")).then_some(op))
                }
            })
            .await?;
        if let Some(errs) = &done.error {
            let errors: Vec<(String, String)> =
                errs.errors.iter().map(|e| (e.code.clone(), e.message.clone())).collect();
            if !errors.is_empty() {
                return Err(error::operation(what, &name, &errors, None));
            }
        }
        Ok(done)
    }

    async fn sql_call(
        &self,
        cx: &OpContext,
        what: &str,
        sent: Result<Operation, google_cloud_gax::error::Error>,
    ) -> ProviderResult<()> {
        let op = sent.map_err(|e| error::api(what, e))?;
        self.wait_sql_op(cx, what, op).await.map(|_| ())
    }

    /// Create the stack's user with `password`, or set its password when it exists.
    async fn set_user_password(
        &self,
        cx: &OpContext,
        instance: &str,
        engine: Engine,
        password: &str,
    ) -> ProviderResult<()> {
        let mut user = User::default();
        user.name = self.database_user.clone();
        user.password = password.to_string();
        if engine == Engine::Mysql {
            user.host = "%".into();
        }
        let what = format!("creating user `{}` on Cloud SQL instance `{instance}`", self.database_user);
        let sent = self
            .sql_users
            .insert()
            .set_project(&self.project)
            .set_instance(instance)
            .set_body(user.clone())
            .send()
            .await;
        match sent {
            Ok(op) => match self.wait_sql_op(cx, &what, op).await {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                other => return other.map(|_| ()),
            },
            Err(e) if e.http_status_code() == Some(409) => {}
            Err(e) => return Err(error::api(what, e)),
        }
        let what = format!("setting the password of user `{}` on `{instance}`", self.database_user);
        let mut req =
            self.sql_users.update().set_project(&self.project).set_instance(instance).set_name(&self.database_user);
        if engine == Engine::Mysql {
            req = req.set_host("%");
        }
        let sent = req.set_body(user).send().await;
        self.sql_call(cx, &what, sent).await
    }

    /// Network (relative path) and zone of the database's first subnet.
    async fn db_placement(&self, cx: &OpContext, spec: &DatabaseSpec) -> ProviderResult<(String, String)> {
        let first = spec.subnet_ids.first().ok_or_else(|| {
            invalid(format!("database `{}` names no subnet; Cloud SQL needs the stack's network", spec.name))
        })?;
        let subnet = self.get_subnet(first).await?;
        let network = subnet.network.as_deref().map(relative).unwrap_or_default();
        let payload = labels::from_description(subnet.description.as_deref()).unwrap_or_default();
        let zone = self.zone_name(cx, payload.get("zone").and_then(|z| z.parse().ok()).unwrap_or(0)).await?;
        Ok((network, zone))
    }

    fn db_labels(&self, spec: &DatabaseSpec) -> ProviderResult<BTreeMap<String, String>> {
        let payload = Payload::new(&spec.tags)
            .with("version", &spec.version)
            .with("subnets", join(&spec.subnet_ids))
            .with("firewalls", join(&spec.firewall_ids));
        labels::to_labels(&payload).map_err(invalid)
    }
}

#[async_trait::async_trait]
impl Api<Database> for Gcp {
    async fn create(&self, cx: &OpContext, spec: &DatabaseSpec) -> ProviderResult<DatabaseObserved> {
        self.check_region(&spec.region)?;
        if !spec.encrypted {
            return Err(invalid(format!(
                "database `{}`: Cloud SQL always encrypts data at rest; drop `.encrypted(false)`",
                spec.name
            )));
        }
        let version = sql_database_version(spec.engine, &spec.version).ok_or_else(|| {
            invalid(format!(
                "{} {} is not offered by Cloud SQL in the GCP catalogue",
                spec.engine.as_str(),
                spec.version
            ))
        })?;
        let tier = self
            .catalog
            .db_size(&spec.size)
            .map(|o| o.native.clone())
            .ok_or_else(|| invalid(format!("database size `{}` is not in the GCP catalogue", spec.size)))?;
        let (network, zone) = self.db_placement(cx, spec).await?;
        let mut d = DatabaseInstance::default();
        d.name = spec.name.clone();
        d.region = spec.region.clone();
        d.database_version = SqlDatabaseVersion::from(version.as_str());
        d.settings = Some(settings(spec, &tier, &network, Some(&zone), self.db_labels(spec)?));
        let what = format!("creating Cloud SQL instance `{}`", spec.name);
        match self.sql.insert().set_project(&self.project).set_body(d).send().await {
            Ok(op) => self.wait_sql_op(cx, &what, op).await.map(|_| ())?,
            // A retry after a lost answer: the instance is ours when it carries this stack's labels.
            Err(e) if e.http_status_code() == Some(409) => {
                let existing = self.db_observed(&self.get_db(&spec.name).await?);
                if existing.tags.get(konstacks_core::spec::TAG_STACK) != spec.tags.get(konstacks_core::spec::TAG_STACK)
                {
                    return Err(error::api(&what, e));
                }
                self.wait_for(
                    cx,
                    &format!("Cloud SQL instance `{}` becoming available", spec.name),
                    self.waits.database,
                    || async {
                        let d = self.get_db(&spec.name).await?;
                        Ok((d.state == SqlInstanceState::from("RUNNABLE")).then_some(()))
                    },
                )
                .await?;
            }
            Err(e) => return Err(error::api(what, e)),
        }
        if let Some(p) = &spec.password {
            self.set_user_password(cx, &spec.name, spec.engine, p.expose()).await?;
        }
        Ok(self.db_observed(&self.get_db(&spec.name).await?))
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DatabaseObserved>> {
        let filter = match sel {
            Selector::Ids(ids) if ids.is_empty() => return Ok(Vec::new()),
            Selector::Ids(_) => None,
            Selector::Stack(stack) => {
                let (k, v) = labels::stack_label(stack);
                Some(format!("settings.userLabels.{k}:{v}"))
            }
            _ => return Ok(Vec::new()),
        };
        let found = all_pages(|token| {
            let req = self.sql.list().set_project(&self.project).set_page_token(token);
            let req = match &filter {
                Some(f) => req.set_filter(f.clone()),
                None => req,
            };
            async move { req.send().await.map(|p| (p.items, Some(p.next_page_token))) }
        })
        .await
        .map_err(|e| error::api("listing Cloud SQL instances", e))?;
        let mut out: Vec<DatabaseObserved> = found
            .iter()
            .map(|d| self.db_observed(d))
            .filter(|d| match sel {
                Selector::Ids(ids) => ids.iter().any(|i| instance_name(i) == d.name),
                Selector::Stack(stack) => d.tags.get(konstacks_core::spec::TAG_STACK) == Some(stack),
                _ => false,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &DatabaseSpec) -> ProviderResult<DatabaseObserved> {
        let name = instance_name(id);
        let current = self.get_db(name).await?;
        let observed = self.db_observed(&current);
        let what = format!("Cloud SQL instance `{name}`");
        immutable(&what, "engine", &observed.engine, &spec.engine)?;
        if spec.storage_gb < observed.storage_gb {
            return Err(invalid(format!(
                "{what}: storage cannot shrink on Cloud SQL ({} GiB -> {} GiB); replace the database instead",
                observed.storage_gb, spec.storage_gb
            )));
        }
        let tier = self
            .catalog
            .db_size(&spec.size)
            .map(|o| o.native.clone())
            .ok_or_else(|| invalid(format!("database size `{}` is not in the GCP catalogue", spec.size)))?;
        let network = current
            .settings
            .as_ref()
            .and_then(|s| s.ip_configuration.as_ref())
            .map(|ip| relative(&ip.private_network))
            .unwrap_or_default();
        let mut wanted = settings(spec, &tier, &network, None, self.db_labels(spec)?);
        wanted.settings_version = current.settings.as_ref().and_then(|s| s.settings_version);
        let mut patch = DatabaseInstance::default();
        if observed.version != spec.version {
            let version = sql_database_version(spec.engine, &spec.version).ok_or_else(|| {
                invalid(format!("{} {} is not offered by Cloud SQL", spec.engine.as_str(), spec.version))
            })?;
            patch.database_version = SqlDatabaseVersion::from(version.as_str());
        }
        patch.settings = Some(wanted);
        let what = format!("updating Cloud SQL instance `{name}`");
        let sent = self.sql.patch().set_project(&self.project).set_instance(name).set_body(patch).send().await;
        self.sql_call(cx, &what, sent).await?;
        if let Some(p) = &spec.password {
            self.set_user_password(cx, name, spec.engine, p.expose()).await?;
        }
        Ok(self.db_observed(&self.get_db(name).await?))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let name = instance_name(id);
        let current = match self.sql.get().set_project(&self.project).set_instance(name).send().await {
            Ok(d) => d,
            Err(e) if e.http_status_code() == Some(404) => return Ok(()),
            Err(e) => return Err(error::api(format!("reading Cloud SQL instance `{name}`"), e)),
        };
        let observed = self.db_observed(&current);
        if observed.deletion_protection {
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                format!("Cloud SQL instance `{name}` has deletion protection on; turn it off with an update first"),
            ));
        }
        let final_backup =
            observed.tags.get(TAG_STAGE).map(String::as_str) != Some("dev") && observed.backup_retention_days > 0;
        let what = format!("deleting Cloud SQL instance `{name}`");
        let mut req = self.sql.delete().set_project(&self.project).set_instance(name);
        if final_backup {
            tracing::info!(database = name, "keeping a final backup before deleting");
            req = req.set_enable_final_backup(true).set_final_backup_ttl_days(30_i64);
        }
        match req.send().await {
            Ok(op) => self.wait_sql_op(cx, &what, op).await.map(|_| ()),
            Err(e) if e.http_status_code() == Some(404) => Ok(()),
            Err(e) => Err(error::api(what, e)),
        }
    }

    /// `update` sets the stack user's password (Cloud SQL `users.update`) whenever the spec
    /// carries one, so a lost password can be rotated in place.
    fn sets_secret_on_update(&self, field: &str) -> bool {
        field == konstacks_core::spec::database::field::PASSWORD.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_settings() {
        let off = backups(Engine::Postgres, 0);
        assert_eq!(off.enabled, Some(false));
        assert!(off.backup_retention_settings.is_none());
        let pg = backups(Engine::Postgres, 30);
        assert_eq!(pg.backup_retention_settings.and_then(|r| r.retained_backups), Some(30));
        assert_eq!(pg.transaction_log_retention_days, Some(7));
        assert_eq!(pg.point_in_time_recovery_enabled, Some(true));
        let my = backups(Engine::Mysql, 7);
        assert_eq!(my.binary_log_enabled, Some(true));
        assert_eq!(my.point_in_time_recovery_enabled, None);
    }

    #[test]
    fn lists_round_trip() {
        assert_eq!(split(Some(&join(&["b".into(), "a".into()]))), vec!["a".to_string(), "b".to_string()]);
        assert!(split(Some("")).is_empty());
        assert_eq!(status_of(&SqlInstanceState::from("RUNNABLE")), "available");
        assert_eq!(status_of(&SqlInstanceState::from("PENDING_CREATE")), "creating");
    }
}
