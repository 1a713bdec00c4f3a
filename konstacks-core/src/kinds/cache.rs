//! The cache kind: a managed in-memory key-value store (Redis or Valkey) in private subnets,
//! with replicas, encryption in transit and a generated auth token.

use std::collections::BTreeSet;

use crate::base::secret::{Secret, SecretSource};
use crate::kind::expr::Expr;
use crate::kind::price::{CostLine, PriceCx};
use crate::kind::{Field, Kind, KindDef, ResourceKind, Tags};
use crate::kind::{LowerCx, StackCx};
use crate::kinds::database::{check_generated, check_network, check_offer};
use crate::kinds::firewall::Firewall;
use crate::kinds::subnet::Subnet;
use crate::model::refs::{Output, Ref};

/// Most read replicas a cache may have.
pub const MAX_REPLICAS: u32 = 5;

/// A cache engine.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheEngine {
    /// Redis.
    Redis,
    /// Valkey, the open-source fork of Redis.
    Valkey,
}

impl CacheEngine {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheEngine::Redis => "redis",
            CacheEngine::Valkey => "valkey",
        }
    }

    /// The port clients connect to.
    pub fn default_port(self) -> u16 {
        6379
    }
}

/// An abstract cache node size, mapped to a node type / cluster size / tier per provider.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSize {
    /// About 0.5–1 GiB.
    Micro,
    /// About 1.5–2 GiB.
    Small,
    /// About 3–4 GiB.
    Medium,
    /// About 6–8 GiB.
    Large,
    /// A provider-specific node type used as is (checked against the provider's catalogue).
    Custom(String),
}

impl CacheSize {
    /// Parse a slug: a portable size name, or a provider node type used as is.
    pub fn from_slug(s: &str) -> Self {
        match s {
            "cache-micro" | "micro" => CacheSize::Micro,
            "cache-small" | "small" => CacheSize::Small,
            "cache-medium" | "medium" => CacheSize::Medium,
            "cache-large" | "large" => CacheSize::Large,
            other => CacheSize::Custom(other.to_string()),
        }
    }

    /// The portable slug stored in plans and state.
    pub fn slug(&self) -> String {
        match self {
            CacheSize::Micro => "cache-micro".into(),
            CacheSize::Small => "cache-small".into(),
            CacheSize::Medium => "cache-medium".into(),
            CacheSize::Large => "cache-large".into(),
            CacheSize::Custom(s) => s.clone(),
        }
    }
}

/// A managed cache.
#[derive(Debug, Clone)]
pub struct Cache {
    pub(crate) engine: CacheEngine,
    pub(crate) version: String,
    pub(crate) size: CacheSize,
    pub(crate) subnets: Vec<Ref<Subnet>>,
    pub(crate) firewalls: Vec<Ref<Firewall>>,
    pub(crate) replicas: u32,
    pub(crate) high_availability: bool,
    pub(crate) transit_encryption: bool,
    pub(crate) auth_token: SecretSource,
}

impl Cache {
    fn with_engine(
        engine: CacheEngine,
        version: impl Into<String>,
        size: CacheSize,
        subnets: impl IntoIterator<Item = Ref<Subnet>>,
    ) -> Self {
        Self {
            engine,
            version: version.into(),
            size,
            subnets: subnets.into_iter().collect(),
            firewalls: Vec::new(),
            replicas: 0,
            high_availability: false,
            transit_encryption: true,
            auth_token: SecretSource::generated(32),
        }
    }

    /// Managed Redis of `version` (for example `"7"`).
    pub fn redis(version: impl Into<String>, size: CacheSize, subnets: impl IntoIterator<Item = Ref<Subnet>>) -> Self {
        Self::with_engine(CacheEngine::Redis, version, size, subnets)
    }

    /// Managed Valkey of `version` (for example `"8"`).
    pub fn valkey(version: impl Into<String>, size: CacheSize, subnets: impl IntoIterator<Item = Ref<Subnet>>) -> Self {
        Self::with_engine(CacheEngine::Valkey, version, size, subnets)
    }

    /// Attach a firewall.
    pub fn firewall(mut self, fw: Ref<Firewall>) -> Self {
        self.firewalls.push(fw);
        self
    }

    /// Read replicas beside the primary (0 to 5; default 0).
    pub fn replicas(mut self, n: u32) -> Self {
        self.replicas = n;
        self
    }

    /// Automatic failover to a replica in another zone (needs at least one replica).
    pub fn high_availability(mut self, yes: bool) -> Self {
        self.high_availability = yes;
        self
    }

    /// TLS between clients and the cache (default on).
    pub fn transit_encryption(mut self, yes: bool) -> Self {
        self.transit_encryption = yes;
        self
    }

    /// Use this auth token instead of a generated one.
    pub fn auth_token(mut self, token: Secret<String>) -> Self {
        self.auth_token = SecretSource::Provided(token);
        self
    }

    /// Generate the auth token with `len` characters (the default is 32).
    pub fn generated_auth_token(mut self, len: usize) -> Self {
        self.auth_token = SecretSource::generated(len);
        self
    }
}

/// Fields of a cache.
pub mod field {
    use super::*;
    /// Physical name.
    pub const NAME: Field<Cache, String> = Field::new("name");
    /// Region.
    pub const REGION: Field<Cache, String> = Field::new("region");
    /// Engine.
    pub const ENGINE: Field<Cache, CacheEngine> = Field::new("engine");
    /// Engine version.
    pub const VERSION: Field<Cache, String> = Field::new("version");
    /// Node size slug.
    pub const SIZE: Field<Cache, String> = Field::new("size");
    /// Ids of the subnets.
    pub const SUBNET_IDS: Field<Cache, Vec<String>> = Field::new("subnet_ids");
    /// Ids of the attached firewalls.
    pub const FIREWALL_IDS: Field<Cache, Vec<String>> = Field::new("firewall_ids");
    /// Read replicas.
    pub const REPLICAS: Field<Cache, u32> = Field::new("replicas");
    /// Automatic failover.
    pub const HIGH_AVAILABILITY: Field<Cache, bool> = Field::new("high_availability");
    /// TLS in transit.
    pub const TRANSIT_ENCRYPTION: Field<Cache, bool> = Field::new("transit_encryption");
    /// Auth token (secret).
    pub const AUTH_TOKEN: Field<Cache, Option<Secret<String>>> = Field::new("auth_token");
    /// Tags.
    pub const TAGS: Field<Cache, Tags> = Field::new("tags");
}

/// A resolved cache.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheSpec {
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Engine.
    pub engine: CacheEngine,
    /// Engine version.
    pub version: String,
    /// Portable node size slug or provider node type.
    pub size: String,
    /// Ids of the subnets it may use.
    pub subnet_ids: Vec<String>,
    /// Ids of the attached firewalls.
    pub firewall_ids: Vec<String>,
    /// Read replicas beside the primary.
    pub replicas: u32,
    /// Automatic failover to a replica.
    pub high_availability: bool,
    /// TLS between clients and the cache.
    pub transit_encryption: bool,
    /// Auth token: set on create, and on update only when it changes.
    pub auth_token: Option<Secret<String>>,
    /// Tags.
    pub tags: Tags,
}

/// An observed cache.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Engine.
    pub engine: CacheEngine,
    /// Engine version.
    pub version: String,
    /// Node size slug.
    pub size: String,
    /// Ids of the subnets.
    pub subnet_ids: Vec<String>,
    /// Ids of the attached firewalls.
    pub firewall_ids: Vec<String>,
    /// Read replicas.
    pub replicas: u32,
    /// Automatic failover.
    pub high_availability: bool,
    /// TLS in transit.
    pub transit_encryption: bool,
    /// Host name of the primary endpoint.
    pub host: String,
    /// Port, as text.
    pub port: String,
    /// Provider status (`available`, `creating`, ...).
    pub status: String,
    /// Tags.
    pub tags: Tags,
}
crate::kind::observed!(CacheObserved);

/// The cache kind.
pub const CACHE: KindDef = KindDef {
    id: "cache",
    fields: &[
        field::AUTH_TOKEN.name(),
        field::ENGINE.name(),
        field::FIREWALL_IDS.name(),
        field::HIGH_AVAILABILITY.name(),
        field::NAME.name(),
        field::REGION.name(),
        field::REPLICAS.name(),
        field::SIZE.name(),
        field::SUBNET_IDS.name(),
        field::TAGS.name(),
        field::TRANSIT_ENCRYPTION.name(),
        field::VERSION.name(),
    ],
    force_new: &[
        field::NAME.name(),
        field::ENGINE.name(),
        field::SUBNET_IDS.name(),
        field::TRANSIT_ENCRYPTION.name(),
        field::REGION.name(),
    ],
    secrets: &[field::AUTH_TOKEN.name()],
    // An auth token can be rotated on a running cluster where the service allows it at all.
    rotatable_secrets: &[field::AUTH_TOKEN.name()],
    create_before_destroy: true,
    holds_data: true,
    deletion_protection: None,
    price: Some(price),
    offered_by: |c| !c.cache_sizes.is_empty() && ["redis", "valkey"].iter().any(|e| !c.engine_versions(e).is_empty()),
    check_stack,
    fronts: None,
    version_of: None,
};

impl ResourceKind for Cache {
    type Spec = CacheSpec;
    type Observed = CacheObserved;
    const KIND: Kind = Kind::of(&CACHE);

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let subnets: Vec<Option<usize>> = self.subnets.iter().map(|s| cx.target(*s, "a cache subnet")).collect();
        let fws: Vec<Option<usize>> = self.firewalls.iter().map(|f| cx.target(*f, "a cache firewall")).collect();
        if self.subnets.is_empty() {
            cx.error(
                "missing-subnets",
                "a cache needs at least one subnet",
                "pass the private subnets it should live in",
            );
        }
        if let Some(c) = cx.catalog() {
            check_offer(cx, c, self.engine.as_str(), &self.version);
            let size = self.size.slug();
            if c.cache_size(&size).is_none() {
                let offered: Vec<&str> = c.cache_sizes.iter().map(|o| o.slug.as_str()).collect();
                cx.error(
                    "unknown-size",
                    format!("provider `{}` offers no cache size `{size}`", c.provider),
                    if offered.is_empty() {
                        format!("provider `{}` offers no cache", c.provider)
                    } else {
                        format!("use one of: {}", offered.join(", "))
                    },
                );
            }
        }
        if self.replicas > MAX_REPLICAS {
            cx.error(
                "replicas-out-of-range",
                format!("{} replicas exceed the {MAX_REPLICAS} a cache may have", self.replicas),
                format!("use 0 to {MAX_REPLICAS} replicas"),
            );
        }
        if self.high_availability && self.replicas == 0 {
            cx.error(
                "ha-needs-replica",
                "automatic failover needs at least one replica",
                "add `.replicas(1)` or turn high availability off",
            );
        }
        check_generated(cx, &self.auth_token, "auth token");
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
        cx.set_expr(field::SUBNET_IDS, subnet_ids);
        cx.set_expr(field::FIREWALL_IDS, firewall_ids);
        cx.set(field::REPLICAS, self.replicas);
        cx.set(field::HIGH_AVAILABILITY, self.high_availability);
        cx.set(field::TRANSIT_ENCRYPTION, self.transit_encryption);
        cx.set_expr(field::AUTH_TOKEN, Expr::Secret(self.auth_token.clone()));
    }
}

fn check_stack(cx: &mut StackCx<'_>) {
    // The builders live as long as the stack, not the borrow of `cx`: no copy needed.
    let caches: Vec<(usize, &Cache)> = cx.of_kind::<Cache>().collect();
    for (i, c) in caches {
        check_network(cx, i, "cache", &c.subnets, &c.firewalls);
    }
}

fn price(cx: &PriceCx<'_>) -> Vec<CostLine> {
    let nodes = 1.0 + cx.number(field::REPLICAS);
    let factor = if nodes > 1.0 { (nodes, "nodes (primary and replicas)") } else { (1.0, "") };
    vec![cx.size_line("cache", field::SIZE, |c, s| c.cache_size(s), factor)]
}

/// Outputs of a cache, available after apply.
impl Ref<Cache> {
    /// The host name clients connect to.
    pub fn host(&self) -> Output<String> {
        self.output("host", false)
    }
    /// The port clients connect to, as text.
    pub fn port(&self) -> Output<String> {
        self.output("port", false)
    }
    /// The auth token (a secret: redacted in every output).
    pub fn auth_token(&self) -> Output<String> {
        self.output("auth_token", true)
    }
}
