//! The provider traits every cloud backend implements, and the catalogue of what a provider
//! offers (regions with jurisdictions, sizes, images, engine versions) used by validation.
//!
//! Providers translate only: resolved spec -> API calls -> observed state. They never walk the
//! graph, retry on the engine's behalf or decide replace-vs-update.

use std::sync::Arc;

use crate::clock::OpContext;
use crate::error::ProviderError;
use crate::model::{Engine, Jurisdiction};
use crate::spec::*;

/// Result of a provider call.
pub type ProviderResult<T> = Result<T, ProviderError>;

/// VPCs, subnets and firewalls.
#[async_trait::async_trait]
pub trait Network: Send + Sync {
    /// Create a VPC.
    async fn create_vpc(&self, cx: &OpContext, spec: &VpcSpec) -> ProviderResult<VpcObserved>;
    /// Read VPCs in one batched call.
    async fn read_vpcs(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<VpcObserved>>;
    /// Update the mutable fields of a VPC (tags, name).
    async fn update_vpc(&self, cx: &OpContext, id: &str, spec: &VpcSpec) -> ProviderResult<VpcObserved>;
    /// Delete a VPC. Deleting one that is gone is not an error.
    async fn delete_vpc(&self, cx: &OpContext, id: &str) -> ProviderResult<()>;

    /// Create a subnet.
    async fn create_subnet(&self, cx: &OpContext, spec: &SubnetSpec) -> ProviderResult<SubnetObserved>;
    /// Read subnets in one batched call.
    async fn read_subnets(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<SubnetObserved>>;
    /// Update the mutable fields of a subnet (public routing, tags).
    async fn update_subnet(&self, cx: &OpContext, id: &str, spec: &SubnetSpec) -> ProviderResult<SubnetObserved>;
    /// Delete a subnet.
    async fn delete_subnet(&self, cx: &OpContext, id: &str) -> ProviderResult<()>;

    /// Create a firewall with its rules.
    async fn create_firewall(&self, cx: &OpContext, spec: &FirewallSpec) -> ProviderResult<FirewallObserved>;
    /// Read firewalls in one batched call.
    async fn read_firewalls(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<FirewallObserved>>;
    /// Bring the rules and tags to `spec`, rule by rule (never by recreating the firewall).
    async fn update_firewall(&self, cx: &OpContext, id: &str, spec: &FirewallSpec) -> ProviderResult<FirewallObserved>;
    /// Delete a firewall.
    async fn delete_firewall(&self, cx: &OpContext, id: &str) -> ProviderResult<()>;
}

/// Virtual machines.
#[async_trait::async_trait]
pub trait Compute: Send + Sync {
    /// Create a VM and wait until it runs.
    async fn create_vm(&self, cx: &OpContext, spec: &VmSpec) -> ProviderResult<VmObserved>;
    /// Read VMs in one batched call.
    async fn read_vms(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<VmObserved>>;
    /// Update the mutable fields (size, firewalls, tags).
    async fn update_vm(&self, cx: &OpContext, id: &str, spec: &VmSpec) -> ProviderResult<VmObserved>;
    /// Delete a VM.
    async fn delete_vm(&self, cx: &OpContext, id: &str) -> ProviderResult<()>;
}

/// Managed databases.
#[async_trait::async_trait]
pub trait Database: Send + Sync {
    /// Create a database and wait until it is available.
    async fn create_database(&self, cx: &OpContext, spec: &DatabaseSpec) -> ProviderResult<DatabaseObserved>;
    /// Read databases in one batched call.
    async fn read_databases(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DatabaseObserved>>;
    /// Modify the mutable fields.
    async fn update_database(&self, cx: &OpContext, id: &str, spec: &DatabaseSpec) -> ProviderResult<DatabaseObserved>;
    /// Delete a database.
    async fn delete_database(&self, cx: &OpContext, id: &str) -> ProviderResult<()>;
}

/// Regions, zones and the catalogue of offers.
#[async_trait::async_trait]
pub trait Region: Send + Sync {
    /// What the provider offers. Static data: reading it is not a cloud call.
    fn catalog(&self) -> &Catalog;
    /// The zones of a region, in the provider's order (zone index 0 is the first).
    async fn zones(&self, cx: &OpContext, region: &str) -> ProviderResult<Vec<String>>;
}

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
    /// Engine.
    pub engine: Engine,
    /// Versions, oldest first.
    pub versions: Vec<String>,
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
    /// Database engines and versions.
    pub engines: Vec<EngineOffer>,
    /// Longest physical name the provider accepts.
    pub max_name_len: usize,
    /// How many zones each region has at least (zone indexes must be below this).
    pub min_zones: u8,
    /// Storage, backup and address prices, and when the prices were taken.
    #[serde(default)]
    pub pricing: Pricing,
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
}

impl Pricing {
    /// The price multiplier of a region.
    pub fn multiplier(&self, region: &str) -> f64 {
        self.region_multipliers.iter().find(|(r, _)| r == region).map(|(_, m)| *m).unwrap_or(1.0)
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

    /// Versions offered for an engine.
    pub fn engine_versions(&self, engine: Engine) -> &[String] {
        self.engines.iter().find(|e| e.engine == engine).map(|e| e.versions.as_slice()).unwrap_or(&[])
    }
}

/// How hard the engine may drive a provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProviderLimits {
    /// Operations in flight at once.
    pub max_concurrency: usize,
    /// Calls per second the API allows (the engine paces itself below it); `None` = unpaced.
    pub calls_per_second: Option<f64>,
    /// Calls allowed in a burst before pacing starts.
    pub burst: u32,
}

impl Default for ProviderLimits {
    fn default() -> Self {
        Self { max_concurrency: 16, calls_per_second: None, burst: 1 }
    }
}

/// A provider as the engine holds it: the four traits plus its limits.
#[derive(Clone)]
pub struct Provider {
    /// Name stacks use to select it.
    pub name: String,
    /// Networking.
    pub network: Arc<dyn Network>,
    /// Compute.
    pub compute: Arc<dyn Compute>,
    /// Databases.
    pub database: Arc<dyn Database>,
    /// Regions and catalogue.
    pub region: Arc<dyn Region>,
    /// Concurrency and rate limits.
    pub limits: ProviderLimits,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("name", &self.name).field("limits", &self.limits).finish()
    }
}

impl Provider {
    /// Bundle one value that implements all four traits.
    pub fn new<P>(name: impl Into<String>, p: Arc<P>, limits: ProviderLimits) -> Self
    where
        P: Network + Compute + Database + Region + 'static,
    {
        Self { name: name.into(), network: p.clone(), compute: p.clone(), database: p.clone(), region: p, limits }
    }

    /// The catalogue.
    pub fn catalog(&self) -> &Catalog {
        self.region.catalog()
    }
}
