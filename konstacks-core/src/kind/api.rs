//! The one generic provider API per kind ([`Api<K>`], kube's `Api<K>` in spirit) and its erased
//! form [`DynApi`], which the engine holds in the provider registry. Specs travel between the
//! planner and here as JSON and are typed again before a backend sees them.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde_json::Value;

use crate::base::clock::OpContext;
use crate::base::error::{ErrorKind, ProviderError};
use crate::base::secret::Secret;
use crate::kind::field::{common, Selector};
use crate::kind::{Kind, ResourceKind};

/// Result of a provider call.
pub type ProviderResult<T> = Result<T, ProviderError>;

/// Observed attributes of one resource, by field name.
pub type Attrs = BTreeMap<String, Value>;

/// Whether a target of a load balancer (or of any kind that fronts others) takes traffic.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetHealthState {
    /// Registered, not yet probed often enough to decide.
    Initial,
    /// Passing the health check: it receives traffic.
    Healthy,
    /// Failing the health check: it receives no traffic.
    Unhealthy,
    /// Leaving: it finishes the requests in flight and receives no new ones.
    Draining,
    /// Not reachable or not registered.
    Unavailable,
}

/// The health of one target in one target group, as the fronting resource sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TargetHealth {
    /// The target group.
    pub group: String,
    /// Provider id of the target (a VM).
    pub target_id: String,
    /// Its state.
    pub state: TargetHealthState,
    /// Why, in the provider's words (`Health checks failed with these codes: [502]`).
    pub reason: Option<String>,
}

fn no_targets(kind: Kind) -> ProviderError {
    ProviderError::new(
        ErrorKind::InvalidSpec,
        format!("this backend's `{kind}` does not register targets; releases need a kind that fronts VMs"),
    )
}

/// Create, read, update and delete of one kind on one cloud. Backends translate only: resolved
/// spec -> API calls -> observed state. They never walk the graph, retry on the engine's behalf
/// or decide replace-vs-update.
#[async_trait::async_trait]
pub trait Api<K: ResourceKind>: Send + Sync {
    /// Create the resource and wait until it is usable.
    async fn create(&self, cx: &OpContext, spec: &K::Spec) -> ProviderResult<K::Observed>;
    /// Read resources of the kind in one batched call (paginated inside).
    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<K::Observed>>;
    /// Bring the mutable fields to `spec`.
    async fn update(&self, cx: &OpContext, id: &str, spec: &K::Spec) -> ProviderResult<K::Observed>;
    /// Delete it. Deleting one that is gone is not an error.
    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()>;
    /// Whether `update` sets the secret field `field` (one of the kind's `rotatable_secrets`)
    /// on an existing resource when the spec carries a new value. Backends whose cloud chooses
    /// the secret itself answer `false`; the engine then never plans a rotation on them.
    fn sets_secret_on_update(&self, _field: &str) -> bool {
        true
    }
    /// The value the cloud holds for the secret field `field` of the resource `id`, for clouds
    /// that choose a secret themselves and ignore the spec's (DigitalOcean's database password).
    /// The engine asks after every create and update and, when it gets `Some`, hands that value
    /// to dependents and seals it in state instead of the one it generated. `None` (the
    /// default): the cloud uses the value the spec sent.
    async fn read_secret(&self, _cx: &OpContext, _id: &str, _field: &str) -> ProviderResult<Option<Secret<String>>> {
        Ok(None)
    }
    /// Add `targets` (provider ids) to the target group `group` of the resource `id`, keeping
    /// the ones it has. Only kinds that front others (load balancers) implement it.
    async fn register_targets(
        &self,
        _cx: &OpContext,
        _id: &str,
        _group: &str,
        _targets: &[String],
    ) -> ProviderResult<()> {
        Err(no_targets(K::KIND))
    }
    /// Take `targets` out of the group `group` of the resource `id`: they get no new requests
    /// and finish the ones in flight during the group's deregistration delay. Removing one that
    /// is not registered is not an error.
    async fn deregister_targets(
        &self,
        _cx: &OpContext,
        _id: &str,
        _group: &str,
        _targets: &[String],
    ) -> ProviderResult<()> {
        Err(no_targets(K::KIND))
    }
    /// The health of every registered target of the resource `id`, as its own health checks see it.
    async fn target_health(&self, _cx: &OpContext, _id: &str) -> ProviderResult<Vec<TargetHealth>> {
        Err(no_targets(K::KIND))
    }
}

/// [`Api<K>`] with the kind erased: JSON specs in, `(id, attributes)` out.
#[async_trait::async_trait]
pub trait DynApi: Send + Sync {
    /// The kind served.
    fn kind(&self) -> Kind;
    /// Create.
    async fn create(&self, cx: &OpContext, spec: Value) -> ProviderResult<(String, Attrs)>;
    /// Batched read.
    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<(String, Attrs)>>;
    /// Update.
    async fn update(&self, cx: &OpContext, id: &str, spec: Value) -> ProviderResult<(String, Attrs)>;
    /// Delete.
    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()>;
    /// See [`Api::sets_secret_on_update`].
    fn sets_secret_on_update(&self, field: &str) -> bool;
    /// See [`Api::read_secret`].
    async fn read_secret(&self, cx: &OpContext, id: &str, field: &str) -> ProviderResult<Option<Secret<String>>>;
    /// See [`Api::register_targets`].
    async fn register_targets(&self, cx: &OpContext, id: &str, group: &str, targets: &[String]) -> ProviderResult<()>;
    /// See [`Api::deregister_targets`].
    async fn deregister_targets(&self, cx: &OpContext, id: &str, group: &str, targets: &[String])
        -> ProviderResult<()>;
    /// See [`Api::target_health`].
    async fn target_health(&self, cx: &OpContext, id: &str) -> ProviderResult<Vec<TargetHealth>>;
}

/// The erasing adapter.
pub(crate) struct Erased<K: ResourceKind> {
    pub(crate) api: Arc<dyn Api<K>>,
    _kind: PhantomData<fn() -> K>,
}

impl<K: ResourceKind> Erased<K> {
    pub(crate) fn new(api: Arc<dyn Api<K>>) -> Self {
        Self { api, _kind: PhantomData }
    }
}

fn spec_of<K: ResourceKind>(v: Value) -> ProviderResult<K::Spec> {
    serde_json::from_value(v).map_err(|e| {
        ProviderError::new(
            ErrorKind::InvalidSpec,
            format!("internal: resolved {} spec does not match its type: {e}", K::KIND),
        )
    })
}

/// The attributes of an observed resource, and its id.
pub fn attrs_of<T: serde::Serialize>(o: &T) -> ProviderResult<(String, Attrs)> {
    let v =
        serde_json::to_value(o).map_err(|e| ProviderError::new(ErrorKind::Other, format!("observed state: {e}")))?;
    let attrs: Attrs = match v {
        Value::Object(m) => m.into_iter().collect(),
        _ => Attrs::new(),
    };
    let id = attrs.get(common::ID).and_then(Value::as_str).unwrap_or_default().to_string();
    Ok((id, attrs))
}

#[async_trait::async_trait]
impl<K: ResourceKind> DynApi for Erased<K> {
    fn kind(&self) -> Kind {
        K::KIND
    }

    async fn create(&self, cx: &OpContext, spec: Value) -> ProviderResult<(String, Attrs)> {
        attrs_of(&self.api.create(cx, &spec_of::<K>(spec)?).await?)
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<(String, Attrs)>> {
        self.api.read_many(cx, sel).await?.iter().map(attrs_of).collect()
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: Value) -> ProviderResult<(String, Attrs)> {
        attrs_of(&self.api.update(cx, id, &spec_of::<K>(spec)?).await?)
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.api.delete(cx, id).await
    }

    fn sets_secret_on_update(&self, field: &str) -> bool {
        self.api.sets_secret_on_update(field)
    }

    async fn read_secret(&self, cx: &OpContext, id: &str, field: &str) -> ProviderResult<Option<Secret<String>>> {
        self.api.read_secret(cx, id, field).await
    }

    async fn register_targets(&self, cx: &OpContext, id: &str, group: &str, targets: &[String]) -> ProviderResult<()> {
        self.api.register_targets(cx, id, group, targets).await
    }

    async fn deregister_targets(
        &self,
        cx: &OpContext,
        id: &str,
        group: &str,
        targets: &[String],
    ) -> ProviderResult<()> {
        self.api.deregister_targets(cx, id, group, targets).await
    }

    async fn target_health(&self, cx: &OpContext, id: &str) -> ProviderResult<Vec<TargetHealth>> {
        self.api.target_health(cx, id).await
    }
}

/// A shared backend serves the kinds of the backend it points to.
#[async_trait::async_trait]
impl<K: ResourceKind, T: Api<K> + ?Sized> Api<K> for Arc<T> {
    async fn create(&self, cx: &OpContext, spec: &K::Spec) -> ProviderResult<K::Observed> {
        (**self).create(cx, spec).await
    }
    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<K::Observed>> {
        (**self).read_many(cx, sel).await
    }
    async fn update(&self, cx: &OpContext, id: &str, spec: &K::Spec) -> ProviderResult<K::Observed> {
        (**self).update(cx, id, spec).await
    }
    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        (**self).delete(cx, id).await
    }
    fn sets_secret_on_update(&self, field: &str) -> bool {
        (**self).sets_secret_on_update(field)
    }
    async fn read_secret(&self, cx: &OpContext, id: &str, field: &str) -> ProviderResult<Option<Secret<String>>> {
        (**self).read_secret(cx, id, field).await
    }
    async fn register_targets(&self, cx: &OpContext, id: &str, group: &str, targets: &[String]) -> ProviderResult<()> {
        (**self).register_targets(cx, id, group, targets).await
    }
    async fn deregister_targets(
        &self,
        cx: &OpContext,
        id: &str,
        group: &str,
        targets: &[String],
    ) -> ProviderResult<()> {
        (**self).deregister_targets(cx, id, group, targets).await
    }
    async fn target_health(&self, cx: &OpContext, id: &str) -> ProviderResult<Vec<TargetHealth>> {
        (**self).target_health(cx, id).await
    }
}

/// Reaches the API of one kind on a backend that serves several:
/// `sim.api::<Vpc>().create(cx, &spec)`.
pub trait KindApis {
    /// The API of kind `K`.
    fn api<K: ResourceKind>(&self) -> &dyn Api<K>
    where
        Self: Api<K> + Sized,
    {
        self
    }
}

impl<T> KindApis for T {}
