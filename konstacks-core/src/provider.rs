//! The provider registry: a provider is a name, its limits, its regions and catalogue, and the
//! kinds it registers, each with one generic [`Api<K>`]. A provider may offer any subset of the
//! kinds; the engine reaches a kind's API through [`Provider::api`] and never names a kind.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::base::clock::OpContext;
use crate::base::error::{ErrorKind, ProviderError};
use crate::kind::api::Erased;
pub use crate::kind::api::{Api, Attrs, DynApi, KindApis, ProviderResult, TargetHealth, TargetHealthState};
pub use crate::kind::catalog::{Catalog, EngineOffer, Offer, Pricing, RegionInfo, ReplacedField, TlsPolicyOffer};
use crate::kind::{Kind, ResourceKind, Selector};

/// Regions, zones and the catalogue of offers.
#[async_trait::async_trait]
pub trait Region: Send + Sync {
    /// What the provider offers. Static data: reading it is not a cloud call.
    fn catalog(&self) -> &Catalog;
    /// The zones of a region, in the provider's order (zone index 0 is the first).
    async fn zones(&self, cx: &OpContext, region: &str) -> ProviderResult<Vec<String>>;
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

struct Registered {
    erased: Arc<dyn DynApi>,
    typed: Arc<dyn Any + Send + Sync>,
}

/// A provider as the engine holds it: the kinds it registers, its regions and its limits.
#[derive(Clone)]
pub struct Provider {
    /// Name stacks use to select it.
    pub name: String,
    apis: Arc<BTreeMap<Kind, Registered>>,
    region: Arc<dyn Region>,
    catalog: Arc<Catalog>,
    /// Concurrency and rate limits.
    pub limits: ProviderLimits,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kinds", &self.apis.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish()
    }
}

/// Builds a [`Provider`]: `Provider::builder("aws", aws.clone()).kind::<Vpc>(aws.clone())...build()`.
pub struct ProviderBuilder {
    name: String,
    region: Arc<dyn Region>,
    apis: BTreeMap<Kind, Registered>,
    limits: ProviderLimits,
}

impl ProviderBuilder {
    /// Register the API of kind `K`. Registering a kind twice keeps the last.
    pub fn kind<K: ResourceKind>(mut self, api: Arc<dyn Api<K>>) -> Self {
        let erased: Arc<dyn DynApi> = Arc::new(Erased::new(Arc::clone(&api)));
        self.apis.insert(K::KIND, Registered { erased, typed: Arc::new(api) });
        self
    }

    /// Concurrency and rate limits.
    pub fn limits(mut self, limits: ProviderLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The provider. Its catalogue lists exactly the registered kinds.
    pub fn build(self) -> Provider {
        let mut catalog = self.region.catalog().clone();
        catalog.kinds = self.apis.keys().map(|k| k.as_str().to_string()).collect();
        Provider {
            name: self.name,
            apis: Arc::new(self.apis),
            region: self.region,
            catalog: Arc::new(catalog),
            limits: self.limits,
        }
    }
}

impl Provider {
    /// Start a provider named `name` whose regions and catalogue come from `region`.
    pub fn builder(name: impl Into<String>, region: Arc<dyn Region>) -> ProviderBuilder {
        ProviderBuilder { name: name.into(), region, apis: BTreeMap::new(), limits: ProviderLimits::default() }
    }

    /// The same provider with kind `K` served by `api` instead (a wrapper that records or
    /// injects faults, for example).
    pub fn with_kind<K: ResourceKind>(self, api: Arc<dyn Api<K>>) -> Provider {
        let apis = Arc::try_unwrap(self.apis).unwrap_or_else(|shared| {
            shared.iter().map(|(k, r)| (*k, Registered { erased: r.erased.clone(), typed: r.typed.clone() })).collect()
        });
        let builder = ProviderBuilder { name: self.name, region: self.region, apis, limits: self.limits };
        builder.kind::<K>(api).build()
    }

    /// The erased API of `kind`, when the provider registers it.
    pub fn api(&self, kind: Kind) -> Option<&Arc<dyn DynApi>> {
        self.apis.get(&kind).map(|r| &r.erased)
    }

    /// The typed API of kind `K`, when the provider registers it.
    pub fn typed<K: ResourceKind>(&self) -> Option<Arc<dyn Api<K>>> {
        self.apis.get(&K::KIND).and_then(|r| r.typed.downcast_ref::<Arc<dyn Api<K>>>()).cloned()
    }

    fn api_of(&self, kind: Kind) -> ProviderResult<&Arc<dyn DynApi>> {
        self.api(kind).ok_or_else(|| {
            ProviderError::new(
                ErrorKind::InvalidSpec,
                format!(
                    "provider `{}` does not offer the `{kind}` kind; place the resource on a provider that does",
                    self.name
                ),
            )
        })
    }

    /// Create a resource of `kind` from its resolved spec.
    pub async fn create(&self, cx: &OpContext, kind: Kind, spec: Value) -> ProviderResult<(String, Attrs)> {
        self.api_of(kind)?.create(cx, spec).await
    }

    /// Batched read of `kind`.
    pub async fn read_many(&self, cx: &OpContext, kind: Kind, sel: &Selector) -> ProviderResult<Vec<(String, Attrs)>> {
        self.api_of(kind)?.read_many(cx, sel).await
    }

    /// Update a resource of `kind`.
    pub async fn update(&self, cx: &OpContext, kind: Kind, id: &str, spec: Value) -> ProviderResult<(String, Attrs)> {
        self.api_of(kind)?.update(cx, id, spec).await
    }

    /// Delete a resource of `kind`.
    pub async fn delete(&self, cx: &OpContext, kind: Kind, id: &str) -> ProviderResult<()> {
        self.api_of(kind)?.delete(cx, id).await
    }

    /// The value the cloud holds for the secret `field` of the resource `id` of `kind`, when
    /// the cloud chose it (see [`crate::kind::api::Api::read_secret`]).
    pub async fn read_secret(
        &self,
        cx: &OpContext,
        kind: Kind,
        id: &str,
        field: &str,
    ) -> ProviderResult<Option<crate::base::secret::Secret<String>>> {
        self.api_of(kind)?.read_secret(cx, id, field).await
    }

    /// Add `targets` to the group `group` of the resource `id` of `kind` (a load balancer).
    pub async fn register_targets(
        &self,
        cx: &OpContext,
        kind: Kind,
        id: &str,
        group: &str,
        targets: &[String],
    ) -> ProviderResult<()> {
        self.api_of(kind)?.register_targets(cx, id, group, targets).await
    }

    /// Take `targets` out of the group `group` of the resource `id` of `kind`.
    pub async fn deregister_targets(
        &self,
        cx: &OpContext,
        kind: Kind,
        id: &str,
        group: &str,
        targets: &[String],
    ) -> ProviderResult<()> {
        self.api_of(kind)?.deregister_targets(cx, id, group, targets).await
    }

    /// The health of the targets of the resource `id` of `kind`.
    pub async fn target_health(&self, cx: &OpContext, kind: Kind, id: &str) -> ProviderResult<Vec<TargetHealth>> {
        self.api_of(kind)?.target_health(cx, id).await
    }

    /// The kinds registered, sorted by id.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.apis.keys().copied()
    }

    /// Regions and zones.
    pub fn region(&self) -> &Arc<dyn Region> {
        &self.region
    }

    /// The catalogue, listing the registered kinds.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}
