//! What a provider offers, as static data: regions with their jurisdictions, sizes, images,
//! engine versions and prices. Validation and cost read it before any cloud call; reading it is
//! never a call.

use crate::model::placement::Jurisdiction;

/// One region of a provider.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegionInfo {
    /// Provider name of the region (`eu-central-1`, `fra1`).
    pub name: String,
    /// City or area.
    pub location: String,
    /// ISO 3166 country code.
    pub country: String,
    /// Legal area the region is in.
    pub jurisdiction: Jurisdiction,
}

impl RegionInfo {
    /// A region entry.
    pub fn new(name: &str, location: &str, country: &str, jurisdiction: Jurisdiction) -> Self {
        Self { name: name.into(), location: location.into(), country: country.into(), jurisdiction }
    }
}

/// A size or image offered by a provider.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Offer {
    /// The portable slug (`small`) or, for provider-specific entries, the native name.
    pub slug: String,
    /// The provider's own name (`t3.small`, `s-1vcpu-2gb`).
    pub native: String,
    /// List price per month in USD, where known.
    pub monthly_usd: Option<f64>,
}

impl Offer {
    /// An offer.
    pub fn new(slug: &str, native: &str, monthly_usd: Option<f64>) -> Self {
        Self { slug: slug.into(), native: native.into(), monthly_usd }
    }
}

/// The versions offered for an engine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineOffer {
    /// Engine name as the kinds spell it (`postgres`, `mysql`, `redis`, `valkey`).
    pub engine: String,
    /// Versions, oldest first.
    pub versions: Vec<String>,
}

/// A named TLS security policy of the provider's load balancers, with the oldest TLS version
/// it accepts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsPolicyOffer {
    /// The provider's name (`ELBSecurityPolicy-TLS13-1-2-2021-06`).
    pub name: String,
    /// The oldest TLS version it accepts: `1.2` or `1.3`.
    pub min_tls_version: String,
}

impl TlsPolicyOffer {
    /// A policy and its oldest TLS version.
    pub fn new(name: &str, min_tls_version: &str) -> Self {
        Self { name: name.into(), min_tls_version: min_tls_version.into() }
    }
}

/// A field of a kind that this provider cannot change in place, beyond the kind's own
/// `force_new` fields: a change to it plans a replacement (Memorystore's tier follows
/// `high_availability` and cannot change on a live instance).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplacedField {
    /// The kind (`cache`).
    pub kind: String,
    /// The field (`high_availability`).
    pub field: String,
}

impl ReplacedField {
    /// `field` of `kind`.
    pub fn new(kind: &str, field: &str) -> Self {
        Self { kind: kind.into(), field: field.into() }
    }
}

/// What a provider offers; validation checks stacks against it before any cloud call.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Catalog {
    /// Provider name.
    pub provider: String,
    /// Regions, in order of preference within a jurisdiction.
    pub regions: Vec<RegionInfo>,
    /// VM sizes.
    pub vm_sizes: Vec<Offer>,
    /// Database sizes.
    pub db_sizes: Vec<Offer>,
    /// Images.
    pub images: Vec<Offer>,
    /// Database and cache engines and their versions.
    pub engines: Vec<EngineOffer>,
    /// Cache node sizes.
    #[serde(default)]
    pub cache_sizes: Vec<Offer>,
    /// The provider validates managed certificates itself, only in zones it hosts, and shows no
    /// validation records (DigitalOcean's Let's Encrypt): a certificate validated by records the
    /// user creates is refused at synth, and `validation_records` stays empty.
    #[serde(default)]
    pub certificates_validated_by_provider: bool,
    /// The provider's load balancers send every request to one pool of VMs (DigitalOcean's): one
    /// target group, no host or path rules, one certificate per HTTPS listener. Synth refuses
    /// more.
    #[serde(default)]
    pub load_balancers_one_pool: bool,
    /// The provider's load balancers can pass TLS through to the VMs unopened
    /// (`LoadBalancer::tls_passthrough`); where false, synth refuses such a listener.
    #[serde(default)]
    pub load_balancers_pass_tls_through: bool,
    /// Named load balancer TLS security policies (none where the provider has no names).
    #[serde(default)]
    pub tls_policies: Vec<TlsPolicyOffer>,
    /// The provider's managed certificates cover exact names only (Google-managed SSL
    /// certificates): synth refuses a wildcard (`*.example.com`).
    #[serde(default)]
    pub certificates_without_wildcards: bool,
    /// Fields the provider cannot change in place (a change plans a replacement).
    #[serde(default)]
    pub replaced_on_change: Vec<ReplacedField>,
    /// Longest physical name the provider accepts.
    pub max_name_len: usize,
    /// How many zones each region has at least (zone indexes must be below this).
    pub min_zones: u8,
    /// The kinds the provider registers (`vpc`, `cache`), sorted. `synth` refuses a resource of
    /// a kind its provider lacks.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Storage, backup and address prices, and when the prices were taken.
    #[serde(default)]
    pub pricing: Pricing,
    /// Object storage (bucket) prices; `None` when the provider's are not known.
    #[serde(default)]
    pub bucket_pricing: Option<BucketPricing>,
}

/// Object storage prices (USD), read by the bucket kind's price function.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BucketPricing {
    /// Storage per GB-month in the standard storage class.
    pub storage_gb_month: Option<f64>,
    /// Write-class requests (PUT, POST, COPY, LIST) per 1,000.
    pub write_requests_per_1000: Option<f64>,
    /// Read-class requests (GET, HEAD) per 1,000.
    pub read_requests_per_1000: Option<f64>,
}

/// Prices beyond the per-size monthly list prices of [`Offer`] (USD).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pricing {
    /// When the prices were read from the provider's public price list (YYYY-MM-DD).
    pub priced_on: String,
    /// Database storage per GiB-month.
    pub db_storage_gb_month: Option<f64>,
    /// Backup storage per GiB-month beyond what the provider includes.
    pub backup_gb_month: Option<f64>,
    /// A public IPv4 address per month.
    pub public_ipv4_month: Option<f64>,
    /// Multiplier of list prices per region where they differ from the base region (1.0 = same).
    pub region_multipliers: Vec<(String, f64)>,
    /// Prices per unit of use (a hosted DNS zone per month, a million DNS queries), by key.
    #[serde(default)]
    pub unit_prices: Vec<UnitPrice>,
    /// A load balancer per hour (multiplied per region).
    #[serde(default)]
    pub load_balancer_hour: Option<f64>,
    /// Data processed by a load balancer, per GB.
    #[serde(default)]
    pub load_balancer_gb_processed: Option<f64>,
}

/// A price per unit of use, named by a key the kind that is billed for it reads
/// (`dns_zone_month`, `dns_million_queries`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UnitPrice {
    /// What is priced.
    pub key: String,
    /// Price of one unit in USD.
    pub usd: f64,
}

impl UnitPrice {
    /// A unit price.
    pub fn new(key: &str, usd: f64) -> Self {
        Self { key: key.to_string(), usd }
    }
}

impl Pricing {
    /// The price multiplier of a region.
    pub fn multiplier(&self, region: &str) -> f64 {
        self.region_multipliers.iter().find(|(r, _)| r == region).map(|(_, m)| *m).unwrap_or(1.0)
    }

    /// The price of one unit of `key`, when the catalogue has one.
    pub fn unit_price(&self, key: &str) -> Option<f64> {
        self.unit_prices.iter().find(|u| u.key == key).map(|u| u.usd)
    }
}

impl Catalog {
    /// The region named `name`.
    pub fn region(&self, name: &str) -> Option<&RegionInfo> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// Regions within a jurisdiction, in order of preference.
    pub fn regions_within(&self, j: Jurisdiction) -> impl Iterator<Item = &RegionInfo> {
        self.regions.iter().filter(move |r| r.jurisdiction == j)
    }

    /// Whether a VM size slug or native name is offered.
    pub fn vm_size(&self, slug: &str) -> Option<&Offer> {
        self.vm_sizes.iter().find(|o| o.slug == slug || o.native == slug)
    }

    /// Whether a database size slug or native name is offered.
    pub fn db_size(&self, slug: &str) -> Option<&Offer> {
        self.db_sizes.iter().find(|o| o.slug == slug || o.native == slug)
    }

    /// Whether an image slug or id is offered.
    pub fn image(&self, slug: &str) -> Option<&Offer> {
        self.images.iter().find(|o| o.slug == slug || o.native == slug)
    }

    /// Whether the provider registers the kind `id`.
    pub fn offers_kind(&self, id: &str) -> bool {
        self.kinds.iter().any(|k| k == id)
    }

    /// Whether a cache node size slug or native name is offered.
    pub fn cache_size(&self, slug: &str) -> Option<&Offer> {
        self.cache_sizes.iter().find(|o| o.slug == slug || o.native == slug)
    }

    /// The named TLS security policy `name`.
    pub fn tls_policy(&self, name: &str) -> Option<&TlsPolicyOffer> {
        self.tls_policies.iter().find(|p| p.name == name)
    }

    /// Versions offered for an engine (`postgres`, `redis`).
    pub fn engine_versions(&self, engine: &str) -> &[String] {
        self.engines.iter().find(|e| e.engine == engine).map(|e| e.versions.as_slice()).unwrap_or(&[])
    }
}

impl EngineOffer {
    /// An engine (`postgres`) with its versions, oldest first.
    pub fn new(engine: &str, versions: &[&str]) -> Self {
        Self { engine: engine.to_string(), versions: versions.iter().map(|v| v.to_string()).collect() }
    }
}
