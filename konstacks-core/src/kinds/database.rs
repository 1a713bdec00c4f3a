//! The database kind: managed PostgreSQL or MySQL in private subnets, with backups, encryption,
//! a standby and a generated admin password.

use std::collections::BTreeSet;

use crate::base::secret::{Secret, SecretSource};
use crate::kind::expr::Expr;
use crate::kind::price::{CostLine, PriceCx};
use crate::kind::{Field, Kind, KindDef, ResourceKind, Tags};
use crate::kind::{LowerCx, StackCx};
use crate::kinds::firewall::Firewall;
use crate::kinds::subnet::Subnet;
use crate::model::refs::{Output, Ref};

/// A database engine.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DbEngine {
    /// PostgreSQL.
    Postgres,
    /// MySQL.
    Mysql,
}

impl DbEngine {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            DbEngine::Postgres => "postgres",
            DbEngine::Mysql => "mysql",
        }
    }

    /// The port clients connect to.
    pub fn default_port(self) -> u16 {
        match self {
            DbEngine::Postgres => 5432,
            DbEngine::Mysql => 3306,
        }
    }
}

/// An abstract database size, mapped to an instance class / cluster size / tier per provider.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbSize {
    /// Smallest burstable.
    Micro,
    /// 2 GiB.
    Small,
    /// 4–8 GiB.
    Medium,
    /// 16 GiB.
    Large,
    /// A provider-specific class used as is (checked against the provider's catalogue).
    Custom(String),
}

impl DbSize {
    /// Parse a slug: a portable size name, or a provider class used as is.
    pub fn from_slug(s: &str) -> Self {
        match s {
            "db-micro" | "micro" => DbSize::Micro,
            "db-small" | "small" => DbSize::Small,
            "db-medium" | "medium" => DbSize::Medium,
            "db-large" | "large" => DbSize::Large,
            other => DbSize::Custom(other.to_string()),
        }
    }

    /// The portable slug stored in plans and state.
    pub fn slug(&self) -> String {
        match self {
            DbSize::Micro => "db-micro".into(),
            DbSize::Small => "db-small".into(),
            DbSize::Medium => "db-medium".into(),
            DbSize::Large => "db-large".into(),
            DbSize::Custom(s) => s.clone(),
        }
    }
}

/// A managed database.
#[derive(Debug, Clone)]
pub struct Database {
    pub(crate) engine: DbEngine,
    pub(crate) version: String,
    pub(crate) size: DbSize,
    pub(crate) storage_gb: u32,
    pub(crate) subnets: Vec<Ref<Subnet>>,
    pub(crate) firewalls: Vec<Ref<Firewall>>,
    pub(crate) backup_retention_days: u32,
    pub(crate) encrypted: bool,
    pub(crate) high_availability: bool,
    pub(crate) deletion_protection: bool,
    pub(crate) apply_immediately: bool,
    pub(crate) password: SecretSource,
}

impl Database {
    fn with_engine(
        engine: DbEngine,
        version: impl Into<String>,
        size: DbSize,
        subnets: impl IntoIterator<Item = Ref<Subnet>>,
    ) -> Self {
        Self {
            engine,
            version: version.into(),
            size,
            storage_gb: 20,
            subnets: subnets.into_iter().collect(),
            firewalls: Vec::new(),
            backup_retention_days: 7,
            encrypted: true,
            high_availability: false,
            deletion_protection: false,
            apply_immediately: true,
            password: SecretSource::generated(32),
        }
    }

    /// Managed PostgreSQL of `version` (for example `"16"`).
    pub fn postgres(version: impl Into<String>, size: DbSize, subnets: impl IntoIterator<Item = Ref<Subnet>>) -> Self {
        Self::with_engine(DbEngine::Postgres, version, size, subnets)
    }

    /// Managed MySQL of `version` (for example `"8.0"`).
    pub fn mysql(version: impl Into<String>, size: DbSize, subnets: impl IntoIterator<Item = Ref<Subnet>>) -> Self {
        Self::with_engine(DbEngine::Mysql, version, size, subnets)
    }

    /// Allocated storage in GiB (default 20).
    pub fn storage_gb(mut self, gb: u32) -> Self {
        self.storage_gb = gb;
        self
    }

    /// Attach a firewall.
    pub fn firewall(mut self, fw: Ref<Firewall>) -> Self {
        self.firewalls.push(fw);
        self
    }

    /// Keep automated backups for `days` (0 disables them; default 7).
    pub fn backups(mut self, days: u32) -> Self {
        self.backup_retention_days = days;
        self
    }

    /// Encryption at rest (default on).
    pub fn encrypted(mut self, yes: bool) -> Self {
        self.encrypted = yes;
        self
    }

    /// A standby in a second zone.
    pub fn high_availability(mut self, yes: bool) -> Self {
        self.high_availability = yes;
        self
    }

    /// Refuse deletion until this is turned off again.
    pub fn deletion_protection(mut self, yes: bool) -> Self {
        self.deletion_protection = yes;
        self
    }

    /// Apply modifications at once (default) or in the next maintenance window.
    pub fn apply_immediately(mut self, yes: bool) -> Self {
        self.apply_immediately = yes;
        self
    }

    /// Use this admin password instead of a generated one.
    pub fn password(mut self, password: Secret<String>) -> Self {
        self.password = SecretSource::Provided(password);
        self
    }

    /// Generate the admin password with `len` characters (the default is 32).
    pub fn generated_password(mut self, len: usize) -> Self {
        self.password = SecretSource::generated(len);
        self
    }
}

/// Fields of a database.
pub mod field {
    use super::*;
    /// Physical name (identifier).
    pub const NAME: Field<Database, String> = Field::new("name");
    /// Region.
    pub const REGION: Field<Database, String> = Field::new("region");
    /// Engine.
    pub const ENGINE: Field<Database, DbEngine> = Field::new("engine");
    /// Engine version.
    pub const VERSION: Field<Database, String> = Field::new("version");
    /// Size slug.
    pub const SIZE: Field<Database, String> = Field::new("size");
    /// Storage in GiB.
    pub const STORAGE_GB: Field<Database, u32> = Field::new("storage_gb");
    /// Ids of the subnets.
    pub const SUBNET_IDS: Field<Database, Vec<String>> = Field::new("subnet_ids");
    /// Ids of the attached firewalls.
    pub const FIREWALL_IDS: Field<Database, Vec<String>> = Field::new("firewall_ids");
    /// Days of automated backups.
    pub const BACKUP_RETENTION_DAYS: Field<Database, u32> = Field::new("backup_retention_days");
    /// Encryption at rest.
    pub const ENCRYPTED: Field<Database, bool> = Field::new("encrypted");
    /// Standby in a second zone.
    pub const HIGH_AVAILABILITY: Field<Database, bool> = Field::new("high_availability");
    /// Refuse deletion.
    pub const DELETION_PROTECTION: Field<Database, bool> = Field::new("deletion_protection");
    /// Apply modifications now.
    pub const APPLY_IMMEDIATELY: Field<Database, bool> = Field::new("apply_immediately");
    /// Admin password (secret).
    pub const PASSWORD: Field<Database, Option<Secret<String>>> = Field::new("password");
    /// Tags.
    pub const TAGS: Field<Database, Tags> = Field::new("tags");
}

/// A resolved database.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatabaseSpec {
    /// Physical name (identifier).
    pub name: String,
    /// Region.
    pub region: String,
    /// DbEngine.
    pub engine: DbEngine,
    /// DbEngine version.
    pub version: String,
    /// Portable size slug or provider class.
    pub size: String,
    /// Storage in GiB.
    pub storage_gb: u32,
    /// Ids of the subnets it may use.
    pub subnet_ids: Vec<String>,
    /// Ids of the attached firewalls.
    pub firewall_ids: Vec<String>,
    /// Days of automated backups (0 = off).
    pub backup_retention_days: u32,
    /// Encryption at rest.
    pub encrypted: bool,
    /// Standby in a second zone.
    pub high_availability: bool,
    /// Refuse deletion.
    pub deletion_protection: bool,
    /// Apply modifications now rather than in the maintenance window.
    pub apply_immediately: bool,
    /// Admin password: set on create, and on update only when it changes.
    pub password: Option<Secret<String>>,
    /// Tags.
    pub tags: Tags,
}

/// An observed database.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatabaseObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// DbEngine.
    pub engine: DbEngine,
    /// DbEngine version.
    pub version: String,
    /// Size slug.
    pub size: String,
    /// Storage in GiB.
    pub storage_gb: u32,
    /// Ids of the subnets.
    pub subnet_ids: Vec<String>,
    /// Ids of the attached firewalls.
    pub firewall_ids: Vec<String>,
    /// Days of automated backups.
    pub backup_retention_days: u32,
    /// Encryption at rest.
    pub encrypted: bool,
    /// Standby in a second zone.
    pub high_availability: bool,
    /// Refuse deletion.
    pub deletion_protection: bool,
    /// Host name.
    pub host: String,
    /// Port, as text.
    pub port: String,
    /// The admin user clients log in as with the admin password (`konstacks` on AWS,
    /// `doadmin` on DigitalOcean, the configured user on GCP).
    #[serde(default)]
    pub admin_user: String,
    /// Provider status (`available`, `creating`, ...).
    pub status: String,
    /// Tags.
    pub tags: Tags,
}
crate::kind::observed!(DatabaseObserved);

/// The database kind.
pub const DATABASE: KindDef = KindDef {
    id: "database",
    fields: &[
        field::APPLY_IMMEDIATELY.name(),
        field::BACKUP_RETENTION_DAYS.name(),
        field::DELETION_PROTECTION.name(),
        field::ENCRYPTED.name(),
        field::ENGINE.name(),
        field::FIREWALL_IDS.name(),
        field::HIGH_AVAILABILITY.name(),
        field::NAME.name(),
        field::PASSWORD.name(),
        field::REGION.name(),
        field::SIZE.name(),
        field::STORAGE_GB.name(),
        field::SUBNET_IDS.name(),
        field::TAGS.name(),
        field::VERSION.name(),
    ],
    force_new: &[
        field::NAME.name(),
        field::ENGINE.name(),
        field::SUBNET_IDS.name(),
        field::ENCRYPTED.name(),
        field::REGION.name(),
    ],
    secrets: &[field::PASSWORD.name()],
    // Every managed database service lets the admin password be reset on a running instance.
    rotatable_secrets: &[field::PASSWORD.name()],
    create_before_destroy: true,
    holds_data: true,
    deletion_protection: Some("deletion_protection"),
    price: Some(price),
    offered_by: |c| !c.db_sizes.is_empty() && ["postgres", "mysql"].iter().any(|e| !c.engine_versions(e).is_empty()),
    check_stack,
    fronts: None,
    version_of: None,
};

impl ResourceKind for Database {
    type Spec = DatabaseSpec;
    type Observed = DatabaseObserved;
    const KIND: Kind = Kind::of(&DATABASE);

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let subnets: Vec<Option<usize>> = self.subnets.iter().map(|s| cx.target(*s, "a database subnet")).collect();
        let fws: Vec<Option<usize>> = self.firewalls.iter().map(|f| cx.target(*f, "a database firewall")).collect();
        if self.subnets.is_empty() {
            cx.error(
                "missing-subnets",
                "a database needs at least one subnet",
                "pass the private subnets it should live in",
            );
        }
        if let Some(c) = cx.catalog() {
            check_offer(cx, c, self.engine.as_str(), &self.version);
            let size = self.size.slug();
            if c.db_size(&size).is_none() {
                let offered: Vec<&str> = c.db_sizes.iter().map(|o| o.slug.as_str()).collect();
                cx.error(
                    "unknown-size",
                    format!("provider `{}` offers no database size `{size}`", c.provider),
                    format!("use one of: {}", offered.join(", ")),
                );
            }
        }
        if !(20..=65_536).contains(&self.storage_gb) {
            cx.error(
                "storage-out-of-range",
                format!("storage of {} GiB is outside 20..=65536", self.storage_gb),
                "use between 20 and 65536 GiB",
            );
        }
        if self.backup_retention_days > 35 {
            cx.error(
                "backups-out-of-range",
                format!("backup retention of {} days exceeds 35", self.backup_retention_days),
                "use 0 to 35 days; archive older backups as snapshots",
            );
        }
        check_generated(cx, &self.password, "password");
        let zones: BTreeSet<u8> =
            subnets.iter().flatten().filter_map(|s| cx.node::<Subnet>(*s)).map(Subnet::zone_index).collect();
        if self.high_availability && zones.len() < 2 && !self.subnets.is_empty() {
            cx.error(
                "ha-needs-two-zones",
                "high availability needs subnets in at least two zones",
                "add a subnet in a second zone",
            );
        }
        let (subnet_ids, firewall_ids) = (cx.ids_of(&subnets), cx.ids_of(&fws));
        cx.set(field::ENGINE, self.engine);
        cx.set(field::VERSION, self.version.clone());
        cx.set(field::SIZE, self.size.slug());
        cx.set(field::STORAGE_GB, self.storage_gb);
        cx.set_expr(field::SUBNET_IDS, subnet_ids);
        cx.set_expr(field::FIREWALL_IDS, firewall_ids);
        cx.set(field::BACKUP_RETENTION_DAYS, self.backup_retention_days);
        cx.set(field::ENCRYPTED, self.encrypted);
        cx.set(field::HIGH_AVAILABILITY, self.high_availability);
        cx.set(field::DELETION_PROTECTION, self.deletion_protection);
        cx.set(field::APPLY_IMMEDIATELY, self.apply_immediately);
        cx.set_expr(field::PASSWORD, Expr::Secret(self.password.clone()));
    }
}

/// An engine version the provider's catalogue lacks.
pub(crate) fn check_offer(cx: &mut LowerCx<'_>, c: &crate::kind::catalog::Catalog, engine: &str, version: &str) {
    let versions = c.engine_versions(engine);
    if !versions.iter().any(|v| v == version) {
        cx.error(
            "unknown-engine-version",
            format!("provider `{}` offers no {engine} version `{version}`", c.provider),
            if versions.is_empty() {
                format!("provider `{}` offers no {engine}", c.provider)
            } else {
                format!("use one of: {}", versions.join(", "))
            },
        );
    }
}

/// A generated secret of a length outside 16..=128.
pub(crate) fn check_generated(cx: &mut LowerCx<'_>, source: &SecretSource, what: &str) {
    if let SecretSource::Generated { len } = source {
        if !(16..=128).contains(len) {
            cx.error(
                "weak-secret",
                format!("generated {what} length {len} is outside 16..=128"),
                "use at least 16 characters",
            );
        }
    }
}

/// Subnets of several VPCs, and firewalls of another VPC than the subnets. Shared by every kind
/// that lives in a set of subnets with firewalls (databases, caches).
pub(crate) fn check_network(
    cx: &mut StackCx<'_>,
    i: usize,
    what: &str,
    subnets: &[Ref<Subnet>],
    firewalls: &[Ref<Firewall>],
) {
    let vpcs: BTreeSet<usize> = subnets
        .iter()
        .filter_map(|s| cx.index_of(*s))
        .filter_map(|s| cx.node::<Subnet>(s))
        .filter_map(|s| cx.index_of(s.vpc()))
        .collect();
    if vpcs.len() > 1 {
        cx.error(
            i,
            "vpc-mismatch",
            format!("the {what}'s subnets belong to different VPCs"),
            format!("put all of a {what}'s subnets in one VPC"),
        );
    }
    let Some(v) = vpcs.iter().next().copied() else { return };
    let indexes: Vec<usize> = firewalls.iter().filter_map(|f| cx.index_of(*f)).collect();
    for f in indexes {
        if cx.node::<Firewall>(f).and_then(|fw| cx.index_of(fw.vpc())).is_some_and(|fv| fv != v) {
            let path = cx.path(f);
            cx.error(
                i,
                "vpc-mismatch",
                format!("firewall `{path}` belongs to another VPC than the {what}'s subnets"),
                format!("attach firewalls of the {what}'s VPC"),
            );
        }
    }
}

fn check_stack(cx: &mut StackCx<'_>) {
    // The builders live as long as the stack, not the borrow of `cx`: no copy needed.
    let dbs: Vec<(usize, &Database)> = cx.of_kind::<Database>().collect();
    for (i, db) in dbs {
        check_network(cx, i, "database", &db.subnets, &db.firewalls);
    }
}

fn price(cx: &PriceCx<'_>) -> Vec<CostLine> {
    let ha = if cx.flag(field::HIGH_AVAILABILITY) { (2.0, "high availability") } else { (1.0, "") };
    let mut lines = vec![cx.size_line("database", field::SIZE, |c, s| c.db_size(s), ha)];
    let gb = cx.number(field::STORAGE_GB);
    let p = &cx.catalog.pricing;
    lines.push(CostLine::per_unit("storage", format!("storage {gb} GiB"), gb, p.db_storage_gb_month));
    let days = cx.number(field::BACKUP_RETENTION_DAYS);
    if days > 0.0 {
        let what = format!("backups ({days} days), estimated as one copy of {gb} GiB");
        lines.push(CostLine::per_unit("backups", what, gb, p.backup_gb_month));
    }
    lines
}

/// Outputs of a database, available after apply.
impl Ref<Database> {
    /// The host name clients connect to.
    pub fn host(&self) -> Output<String> {
        self.output("host", false)
    }
    /// The port clients connect to, as text.
    pub fn port(&self) -> Output<String> {
        self.output("port", false)
    }
    /// The admin user the password belongs to.
    pub fn admin_user(&self) -> Output<String> {
        self.output("admin_user", false)
    }
    /// The admin password (a secret: redacted in every output).
    pub fn password(&self) -> Output<String> {
        self.output("password", true)
    }
}
