//! The embedded simulated cloud: an in-memory (optionally file-backed) implementation of every
//! kind with realistic semantics, so engine and scenario tests run in milliseconds on virtual
//! time.
//!
//! It behaves like a real API where that matters to the engine: deterministic counter-based ids,
//! zones, CIDR containment and overlap checks, dependency violations on delete, eventual
//! consistency after create, a token-bucket rate limit and seeded fault injection (including
//! "timed out but applied"). All time comes from the caller's [`OpContext`] clock. The store
//! is in [`store`]; each kind's behaviour is one handler file.
//!
//! It must not touch Konstacks' own state, plans or the engine: it is a cloud, and knows nothing
//! of stacks beyond the tags it is given.

mod bucket;
mod cache;
mod certificate;
pub mod config;
mod database;
mod dns_record;
mod dns_zone;
mod file;
mod firewall;
mod load_balancer;
pub mod runtime;
pub mod store;
mod subnet;
mod table;
mod vm;
mod vpc;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use crate::base::clock::OpContext;
use crate::base::error::{ErrorKind, ProviderError, StateError};
use crate::kind::api::{Api, ProviderResult, TargetHealth};
use crate::kind::catalog::BucketPricing;
use crate::kind::catalog::{Catalog, EngineOffer, Offer, Pricing, RegionInfo, TlsPolicyOffer, UnitPrice};
use crate::kind::Selector;
use crate::kinds::Bucket;
use crate::kinds::LoadBalancer;
use crate::kinds::{self, Cache, Database, Firewall, Subnet, Vm, Vpc};
use crate::kinds::{Certificate, DnsRecord, DnsZone};
use crate::model::placement::{Jurisdiction, SIMULATED};
use crate::provider::{Provider, ProviderLimits, Region};
pub use crate::sim::config::{Faults, RateLimit, SimConfig};
use crate::sim::file::{Held, SimPath};
pub use crate::sim::store::SimResource;
use crate::sim::store::{id_number, provider_error, zone_name, Inner, OnDisk, SimKind, FILE_VERSION, ZONE_LETTERS};

/// Decode one resource of the JSON file with the handler of its kind.
fn decode(v: Value) -> Result<SimResource, String> {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    match kind.as_str() {
        "bucket" => SimResource::decode::<Bucket>(v),
        "cache" => SimResource::decode::<Cache>(v),
        "certificate" => SimResource::decode::<Certificate>(v),
        "database" => SimResource::decode::<Database>(v),
        "dns_record" => SimResource::decode::<DnsRecord>(v),
        "dns_zone" => SimResource::decode::<DnsZone>(v),
        "firewall" => SimResource::decode::<Firewall>(v),
        "load_balancer" => SimResource::decode::<LoadBalancer>(v),
        "subnet" => SimResource::decode::<Subnet>(v),
        "vm" => SimResource::decode::<Vm>(v),
        "vpc" => SimResource::decode::<Vpc>(v),
        other => Err(format!("unknown resource kind `{other}`")),
    }
}

/// The JSON file of a persistent simulated cloud. Call counts are not kept.
#[derive(serde::Deserialize)]
struct FileData {
    version: u32,
    counter: u64,
    resources: Vec<Value>,
    #[serde(default)]
    secret_prints: BTreeMap<String, BTreeMap<String, String>>,
}

/// What a file holds, decoded.
struct Loaded {
    counter: u64,
    resources: table::Table<store::SimResource>,
    secret_prints: BTreeMap<String, BTreeMap<String, String>>,
}

/// Decode the bytes of the file at `path`.
fn parse_file(path: &Path, bytes: &[u8]) -> Result<Loaded, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        stack: "(simulated cloud)".into(),
        location: path.display().to_string(),
        reason,
    };
    let file: FileData = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.version > FILE_VERSION {
        return Err(StateError::FutureVersion {
            stack: "(simulated cloud)".into(),
            found: file.version,
            supported: FILE_VERSION,
        });
    }
    let mut counter = file.counter;
    let mut resources = table::Table::<store::SimResource>::default();
    for v in file.resources {
        let r = decode(v).map_err(corrupt)?;
        let id = r.id().to_string();
        if resources.contains_key(&id) {
            return Err(corrupt(format!("resource id `{id}` appears twice")));
        }
        // Never hand out an id that is already taken, even if the counter was edited.
        counter = counter.max(id_number(&id).unwrap_or(0));
        resources.insert(id, r);
    }
    Ok(Loaded { counter, resources, secret_prints: file.secret_prints })
}

/// Make `g` hold what the file holds when its bytes differ from what this process last read or
/// wrote. Resources of other processes are old (visible at once); the id counter never goes
/// back, so this process never hands out an id twice.
fn sync_from_disk(g: &mut Inner, path: &Path, bytes: Option<Vec<u8>>) -> Result<(), StateError> {
    let same = match (&g.on_disk, &bytes) {
        (OnDisk::Absent, None) => true,
        (OnDisk::Bytes(seen), Some(now)) => seen == now,
        _ => false,
    };
    if same {
        return Ok(());
    }
    match &bytes {
        Some(b) => {
            let loaded = parse_file(path, b)?;
            g.counter = g.counter.max(loaded.counter);
            g.resources = loaded.resources;
            g.secret_prints = loaded.secret_prints;
        }
        None => {
            g.resources.clear();
            g.secret_prints.clear();
        }
    }
    let Inner { born, resources, .. } = g;
    born.retain(|id, _| resources.contains_key(id));
    g.on_disk = match bytes {
        Some(b) => OnDisk::Bytes(b),
        None => OnDisk::Absent,
    };
    Ok(())
}

/// Run blocking file work off the async runtime's threads (inline without a runtime).
async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.spawn_blocking(f).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        },
        Err(_) => f(),
    }
}

/// The embedded simulated cloud. Cheap to share behind an `Arc`; see [`SimCloud::provider`].
#[derive(Debug)]
pub struct SimCloud {
    inner: Mutex<Inner>,
    catalog: Catalog,
    /// The file of a persistent cloud.
    file: Option<Arc<SimPath>>,
}

impl SimCloud {
    /// An in-memory simulated cloud.
    pub fn new(config: SimConfig) -> Self {
        Self { inner: Mutex::new(Inner::new(config)), catalog: Self::catalog(), file: None }
    }

    /// A simulated cloud kept in the JSON file at `path`, which several processes (and several
    /// `SimCloud`s of one process) may share: every call takes an exclusive lock on
    /// `<path>.lock`, reads the file again if another one changed it, and after a change
    /// rewrites it atomically before releasing the lock. So ids are never handed out twice and
    /// every process sees every other's resources. Resources loaded from the file are old, hence
    /// visible at once. Blocks while another process holds the lock.
    pub fn open(path: impl Into<PathBuf>, config: SimConfig) -> Result<Self, StateError> {
        let file = SimPath::new(path.into());
        let mut inner = Inner::new(config);
        let mut held = file
            .acquire_blocking(false)
            .map_err(|source| StateError::Io { path: file.path.display().to_string(), source })?;
        sync_from_disk(&mut inner, &file.path, held.bytes.take())?;
        drop(held);
        Ok(Self { inner: Mutex::new(inner), catalog: Self::catalog(), file: Some(Arc::new(file)) })
    }

    /// This cloud with another catalogue, to model a provider that offers less (a missing
    /// feature flag, a field it cannot change in place).
    pub fn with_catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = catalog;
        self
    }

    /// This cloud in live mode: `runtime` runs its VMs' apps, load balancers, databases and
    /// caches for real on this machine (see [`runtime`]).
    pub fn with_runtime(self, runtime: Arc<dyn runtime::Runtime>) -> Self {
        self.lock().runtime = Some(runtime);
        self
    }

    /// The static catalogue of the simulated cloud (also returned by [`Region::catalog`]).
    pub fn catalog() -> Catalog {
        use Jurisdiction as J;
        let regions = [
            ("eu-central", "Frankfurt", "DE", J::Eu),
            ("eu-west", "Dublin", "IE", J::Eu),
            ("eu-south", "Milan", "IT", J::Eu),
            ("uk-south", "London", "GB", J::Uk),
            ("ch-zurich", "Zurich", "CH", J::Switzerland),
            ("af-south", "Johannesburg", "ZA", J::SouthAfrica),
            ("af-west", "Lagos", "NG", J::Nigeria),
            ("af-east", "Nairobi", "KE", J::Kenya),
            ("ap-south", "Mumbai", "IN", J::India),
            ("ap-southeast", "Singapore", "SG", J::Singapore),
            ("ap-northeast", "Tokyo", "JP", J::Japan),
            ("ap-jakarta", "Jakarta", "ID", J::Indonesia),
            ("au-east", "Sydney", "AU", J::Australia),
            ("sa-east", "São Paulo", "BR", J::Brazil),
            ("ca-central", "Montreal", "CA", J::Canada),
            ("us-east", "Virginia", "US", J::Us),
            ("us-west", "Oregon", "US", J::Us),
        ];
        let offers =
            |list: &[(&str, &str, Option<f64>)]| list.iter().map(|(s, n, p)| Offer::new(s, n, *p)).collect::<Vec<_>>();
        let _versions = |list: &[&str]| list.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        Catalog {
            provider: SIMULATED.to_string(),
            regions: regions.iter().map(|(n, l, c, j)| RegionInfo::new(n, l, c, *j)).collect(),
            vm_sizes: offers(&[
                ("nano", "sim.nano", Some(4.0)),
                ("micro", "sim.micro", Some(7.5)),
                ("small", "sim.small", Some(15.0)),
                ("medium", "sim.medium", Some(30.0)),
                ("large", "sim.large", Some(60.0)),
                ("xlarge", "sim.xlarge", Some(120.0)),
            ]),
            db_sizes: offers(&[
                ("db-micro", "sim.db.micro", Some(15.0)),
                ("db-small", "sim.db.small", Some(30.0)),
                ("db-medium", "sim.db.medium", Some(60.0)),
                ("db-large", "sim.db.large", Some(120.0)),
            ]),
            images: offers(&[("ubuntu-lts", "sim-ubuntu-24.04", None), ("debian-12", "sim-debian-12", None)]),
            engines: vec![
                EngineOffer::new("postgres", &["13", "14", "15", "16", "17"]),
                EngineOffer::new("mysql", &["8.0", "8.4"]),
                EngineOffer::new("redis", &["6", "7"]),
                EngineOffer::new("valkey", &["7.2", "8"]),
            ],
            cache_sizes: offers(&[
                ("cache-micro", "sim.cache.micro", Some(15.0)),
                ("cache-small", "sim.cache.small", Some(30.0)),
                ("cache-medium", "sim.cache.medium", Some(60.0)),
                ("cache-large", "sim.cache.large", Some(120.0)),
            ]),
            kinds: kinds::ALL.iter().map(|k| k.as_str().to_string()).collect(),
            certificates_validated_by_provider: false,
            load_balancers_one_pool: false,
            load_balancers_pass_tls_through: true,
            certificates_without_wildcards: false,
            replaced_on_change: Vec::new(),
            tls_policies: vec![
                TlsPolicyOffer::new("sim-compatible-2026", "1.2"),
                TlsPolicyOffer::new("sim-modern-2026", "1.3"),
            ],
            max_name_len: 63,
            min_zones: ZONE_LETTERS.len() as u8,
            pricing: Pricing {
                priced_on: "2026-11-01".into(),
                db_storage_gb_month: Some(0.115),
                backup_gb_month: Some(0.095),
                public_ipv4_month: Some(3.65),
                region_multipliers: vec![
                    ("uk-south".into(), 1.05),
                    ("ch-zurich".into(), 1.2),
                    ("af-south".into(), 1.2),
                    ("sa-east".into(), 1.5),
                    ("ap-northeast".into(), 1.25),
                    ("us-east".into(), 0.9),
                ],
                unit_prices: vec![
                    UnitPrice::new(kinds::dns_zone::PRICE_ZONE_MONTH, 0.50),
                    UnitPrice::new(kinds::dns_zone::PRICE_MILLION_QUERIES, 0.40),
                ],
                load_balancer_hour: Some(0.025),
                load_balancer_gb_processed: Some(0.008),
            },
            bucket_pricing: Some(BucketPricing {
                storage_gb_month: Some(0.023),
                write_requests_per_1000: Some(0.005),
                read_requests_per_1000: Some(0.0004),
            }),
        }
    }

    /// This cloud as a provider named `sim`, with limits matching its rate limit.
    pub fn provider(self: &Arc<Self>) -> Provider {
        let rl = self.lock().config.rate_limit;
        let limits = ProviderLimits {
            max_concurrency: 32,
            calls_per_second: rl.map(|r| r.per_second),
            burst: rl.map_or(ProviderLimits::default().burst, |r| r.burst),
        };
        Provider::builder(SIMULATED, Arc::clone(self) as Arc<dyn Region>)
            .kind::<Bucket>(Arc::clone(self) as _)
            .kind::<Cache>(Arc::clone(self) as _)
            .kind::<Database>(Arc::clone(self) as _)
            .kind::<Firewall>(Arc::clone(self) as _)
            .kind::<LoadBalancer>(Arc::clone(self) as _)
            .kind::<Subnet>(Arc::clone(self) as _)
            .kind::<Vm>(Arc::clone(self) as _)
            .kind::<Vpc>(Arc::clone(self) as _)
            .kind::<Certificate>(Arc::clone(self) as _)
            .kind::<DnsRecord>(Arc::clone(self) as _)
            .kind::<DnsZone>(Arc::clone(self) as _)
            .limits(limits)
            .build()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation is validated before it starts, so the data behind a poisoned lock is
        // still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Total trait calls answered, including failed and throttled ones.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Calls answered per operation (trait method name, e.g. `create_vpc`, `read_vms`, `zones`).
    pub fn calls_by_op(&self) -> BTreeMap<String, u64> {
        self.lock().calls_by_op.clone()
    }

    /// Create, update and delete calls answered, including failed ones.
    pub fn mutating_calls(&self) -> u64 {
        self.lock().mutating_calls
    }

    /// Replace the injected faults (call numbers keep counting from where they are).
    pub fn set_faults(&self, faults: Faults) {
        self.lock().config.faults = faults;
    }

    /// New VMs booting `image` come up with this status (for example `impaired`), as a broken
    /// release would; the provider-status health check then fails.
    pub fn set_boot_status(&self, image: &str, status: &str) {
        self.lock().boot_status.insert(image.to_string(), status.to_string());
    }

    /// Change the latency of every call.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().config.latency = latency;
    }

    /// Change the rate limit; the bucket starts full.
    pub fn set_rate_limit(&self, rl: Option<RateLimit>) {
        let mut g = self.lock();
        g.config.rate_limit = rl;
        g.bucket = None;
    }

    /// The fingerprint of the secret `what` the resource `id` was last given (`password`,
    /// `auth_token`, `env:DATABASE_PASSWORD`), never the secret itself: see [`secret_fingerprint`].
    pub fn secret_print(&self, id: &str, what: &str) -> Option<String> {
        self.view().secret_prints.get(id).and_then(|m| m.get(what)).cloned()
    }

    /// Every resource, sorted by id, regardless of eventual consistency.
    pub fn resources(&self) -> Vec<SimResource> {
        self.view().resources.values().cloned().collect()
    }

    /// The resources tagged `konstacks:stack = stack`, sorted by id.
    pub fn resources_of_stack(&self, stack: &str) -> Vec<SimResource> {
        self.view().resources.values().filter(|r| r.stack() == Some(stack)).cloned().collect()
    }

    /// The store for inspection: a persistent cloud first reads what other processes changed,
    /// unless a call holds the file's lock right now (then the view is this process's own).
    fn view(&self) -> MutexGuard<'_, Inner> {
        let mut g = self.lock();
        if let Some(file) = &self.file {
            match file.try_acquire_blocking() {
                Ok(Some(mut held)) => {
                    if let Err(e) = sync_from_disk(&mut g, &file.path, held.bytes.take()) {
                        tracing::warn!(error = %e, "simulated cloud: cannot read its file; showing what this process knows");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "simulated cloud: cannot lock its file; showing what this process knows")
                }
            }
        }
        g
    }

    /// Change a resource behind Konstacks' back (for drift tests). Not a call: it is not counted,
    /// throttled or faulted. Persisted (synchronously, under the file's lock) for a file-backed
    /// cloud. `false` if the resource does not exist.
    pub fn tamper(&self, id: &str, f: impl FnOnce(&mut SimResource)) -> bool {
        self.behind_back(|g| {
            let Some(mut r) = g.resources.remove(id) else {
                return false;
            };
            f(&mut r);
            let new_id = r.id().to_string();
            if new_id != id {
                if let Some(born) = g.born.remove(id) {
                    g.born.insert(new_id.clone(), born);
                }
            }
            g.resources.insert(new_id, r);
            true
        })
    }

    /// Delete a resource behind Konstacks' back, ignoring dependencies (someone used the
    /// console). Not a call. `false` if it does not exist.
    pub fn remove_behind_back(&self, id: &str) -> bool {
        self.behind_back(|g| {
            if !g.resources.contains_key(id) {
                return false;
            }
            g.remove(id);
            true
        })
    }

    /// A change that is not a call (`f` says whether it changed anything), persisted
    /// synchronously for a file-backed cloud. Blocks while another process holds the file's
    /// lock; do not call it while this process's own calls are in flight on a single thread.
    fn behind_back(&self, f: impl FnOnce(&mut Inner) -> bool) -> bool {
        let Some(file) = &self.file else {
            return f(&mut self.lock());
        };
        let held = file.acquire_blocking(true);
        let mut g = self.lock();
        let mut held = match held {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "simulated cloud: cannot lock its file; the change behind Konstacks' back stays in this process");
                return f(&mut g);
            }
        };
        if let Err(e) = sync_from_disk(&mut g, &file.path, held.bytes.take()) {
            tracing::warn!(error = %e, "simulated cloud: cannot read its file before a change behind Konstacks' back");
        }
        if !f(&mut g) {
            return false;
        }
        g.on_disk = OnDisk::Unknown;
        let saved = g.snapshot().and_then(|bytes| {
            file.write_blocking(&held, &bytes).map_err(|e| save_error(&file.path, e))?;
            Ok(bytes)
        });
        match saved {
            Ok(bytes) => g.on_disk = OnDisk::Bytes(bytes),
            Err(e) => tracing::warn!(error = %e, "simulated cloud: saving a change made behind Konstacks' back failed"),
        }
        true
    }

    /// Take the file's lock and read the file (off the runtime's threads).
    async fn acquire(&self, file: &Arc<SimPath>, mutating: bool) -> ProviderResult<Held> {
        let file = Arc::clone(file);
        let path = file.path.clone();
        off_runtime(move || file.acquire_blocking(mutating)).await.map_err(|e| {
            provider_error(
                ErrorKind::Other,
                format!(
                    "the simulated cloud cannot lock or read its file {}; check that the directory is readable and \
                     writable",
                    path.display()
                ),
            )
            .with_source(e)
        })
    }

    /// Answer one trait call: count, sleep, then under the file's lock (for a file-backed
    /// cloud): read what other processes changed, throttle, inject faults, run `op`, and save a
    /// change before the lock is released.
    pub(crate) async fn call<T, F>(&self, cx: &OpContext, op: &str, mutating: bool, f: F) -> ProviderResult<T>
    where
        F: FnOnce(&mut Inner, Duration) -> ProviderResult<T> + Send,
        T: Send,
    {
        let (n, latency) = {
            let mut g = self.lock();
            g.calls += 1;
            *g.calls_by_op.entry(op.to_string()).or_insert(0) += 1;
            if mutating {
                g.mutating_calls += 1;
            }
            (g.calls, g.config.latency)
        };
        if !latency.is_zero() {
            cx.clock.sleep(latency).await;
        }
        let mut held = match &self.file {
            Some(file) => Some(self.acquire(file, mutating).await?),
            None => None,
        };
        let (result, snapshot, timed_out) = {
            let mut g = self.lock();
            if let (Some(file), Some(h)) = (&self.file, held.as_mut()) {
                sync_from_disk(&mut g, &file.path, h.bytes.take()).map_err(|e| {
                    provider_error(ErrorKind::Other, format!("the simulated cloud cannot read its file: {e}"))
                })?;
            }
            let now = cx.clock.now();
            g.admit(op, n, now)?;
            let result = f(&mut g, now);
            let changed = mutating && result.is_ok();
            let snapshot = if changed && self.file.is_some() {
                // Until the file holds the change, this process's view is not what is on disk: a
                // save that fails or never finishes makes the next call read the file again (the
                // change is then lost, as a request that never reached the cloud).
                g.on_disk = OnDisk::Unknown;
                Some(g.snapshot())
            } else {
                None
            };
            let timed_out = changed && g.timeout_due(op, n);
            (result, snapshot, timed_out)
        };
        tracing::trace!(op, call = n, ok = result.is_ok(), "simulated cloud call");
        if let (Some(file), Some(held), Some(snapshot)) = (&self.file, held, snapshot) {
            let bytes = snapshot?;
            let writer = Arc::clone(file);
            let (held, bytes) = off_runtime(move || writer.write_blocking(&held, &bytes).map(|()| (held, bytes)))
                .await
                .map_err(|e| save_error(&file.path, e))?;
            // Recorded before the lock is released, so no other writer comes in between.
            self.lock().on_disk = OnDisk::Bytes(bytes);
            drop(held);
        }
        if timed_out {
            return Err(provider_error(
                ErrorKind::Transient,
                format!("request `{op}` timed out (the change may have been applied); read before retrying"),
            ));
        }
        result
    }
}

/// How the simulated cloud fingerprints a secret it is given: 16 hex digits of a SHA-256, so
/// tests can compare secrets without ever holding or printing one.
pub fn secret_fingerprint(value: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"konstacks-sim-secret\0");
    h.update(value.as_bytes());
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn save_error(path: &Path, e: std::io::Error) -> ProviderError {
    provider_error(
        ErrorKind::Other,
        format!(
            "the simulated cloud could not save a change to {}, so it did not make it; check that the directory is \
             writable",
            path.display()
        ),
    )
    .with_source(e)
}

/// Every kind the simulated cloud handles gets the one generic API.
#[async_trait::async_trait]
impl<K: SimKind> Api<K> for SimCloud {
    async fn create(&self, cx: &OpContext, spec: &K::Spec) -> ProviderResult<K::Observed> {
        let cat = &self.catalog;
        self.call(cx, K::OPS.create, true, |s, now| K::create(s, cat, spec, now)).await
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<K::Observed>> {
        self.call(cx, K::OPS.read, false, |s, now| {
            Ok(s.read::<K>(sel, now).into_iter().map(|o| K::observe(s, o, now)).collect())
        })
        .await
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &K::Spec) -> ProviderResult<K::Observed> {
        let cat = &self.catalog;
        self.call(cx, K::OPS.update, true, |s, now| K::update(s, cat, id, spec, now)).await
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.call(cx, K::OPS.delete, true, |s, _| K::delete(s, id)).await
    }

    async fn register_targets(&self, cx: &OpContext, id: &str, group: &str, targets: &[String]) -> ProviderResult<()> {
        self.call(cx, "register_targets", true, |s, now| K::register(s, id, group, targets, now)).await
    }

    async fn deregister_targets(
        &self,
        cx: &OpContext,
        id: &str,
        group: &str,
        targets: &[String],
    ) -> ProviderResult<()> {
        self.call(cx, "deregister_targets", true, |s, _| K::deregister(s, id, group, targets)).await
    }

    async fn target_health(&self, cx: &OpContext, id: &str) -> ProviderResult<Vec<TargetHealth>> {
        self.call(cx, "describe_target_health", false, |s, now| K::target_health(s, id, now)).await
    }
}

#[async_trait::async_trait]
impl Region for SimCloud {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    async fn zones(&self, cx: &OpContext, region: &str) -> ProviderResult<Vec<String>> {
        let cat = &self.catalog;
        self.call(cx, "zones", false, |_, _| {
            if cat.region(region).is_none() {
                return Err(ProviderError::not_found(format!(
                    "region `{region}` does not exist in the simulated cloud; see its catalogue for the regions offered"
                )));
            }
            Ok((0..ZONE_LETTERS.len() as u8).filter_map(|z| zone_name(region, z)).collect())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_counter_based() {
        let mut inner = Inner::new(SimConfig::default());
        assert_eq!(inner.next_id("vpc"), "vpc-00000001");
        assert_eq!(inner.next_id("fw"), "fw-00000002");
        assert_eq!(id_number("db-0000000a"), Some(10));
    }

    #[test]
    fn catalogue_is_consistent() {
        let c = SimCloud::catalog();
        assert_eq!(c.regions.first().map(|r| r.name.as_str()), Some("eu-central"));
        assert_eq!(c.regions.len(), 17);
        assert_eq!(c.engine_versions("redis"), ["6", "7"]);
        assert_eq!(c.kinds.len(), kinds::ALL.len());
        assert!(c.vm_size("sim.small").is_some());
    }

    fn vpc_spec(stack: &str, i: u8) -> kinds::VpcSpec {
        kinds::VpcSpec {
            name: format!("{stack}-vpc-{i}"),
            region: "eu-central".into(),
            cidr: format!("10.{i}.0.0/16"),
            tags: crate::kind::Tags::from([(crate::kind::TAG_STACK.to_string(), stack.to_string())]),
        }
    }

    /// Two clouds over one file (two processes, in effect) creating in turn: every id is handed
    /// out once, each sees the other's resources, and a delete through one leaves the other's.
    #[tokio::test]
    async fn two_opens_of_one_file_hand_out_distinct_ids() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cloud.json");
        let a = SimCloud::open(&path, SimConfig::default())?;
        let b = SimCloud::open(&path, SimConfig::default())?;
        let cx = OpContext::new(crate::base::clock::TokioClock::shared(), "test");
        let mut ids = std::collections::BTreeSet::new();
        for i in 0..8u8 {
            let (cloud, stack) = if i % 2 == 0 { (&a, "a") } else { (&b, "b") };
            let vpc = Api::<Vpc>::create(cloud, &cx, &vpc_spec(stack, i)).await?;
            assert!(ids.insert(vpc.id.clone()), "id {} handed out twice", vpc.id);
        }
        assert_eq!(a.resources().len(), 8);
        assert_eq!(b.resources_of_stack("a").len(), 4);
        let seen_by_a = Api::<Vpc>::read_many(&a, &cx, &Selector::Stack("b".into())).await?;
        assert_eq!(seen_by_a.len(), 4, "a reads b's resources");
        for v in &seen_by_a {
            Api::<Vpc>::delete(&a, &cx, &v.id).await?;
        }
        assert!(Api::<Vpc>::read_many(&b, &cx, &Selector::Stack("b".into())).await?.is_empty());
        assert_eq!(Api::<Vpc>::read_many(&b, &cx, &Selector::Stack("a".into())).await?.len(), 4);
        // Ids go on from the highest ever handed out, whoever handed it out.
        let next = Api::<Vpc>::create(&b, &cx, &vpc_spec("b", 9)).await?;
        assert_eq!(next.id, "vpc-00000009");
        let reopened = SimCloud::open(&path, SimConfig::default())?;
        assert_eq!(reopened.resources().len(), 5);
        let names: Vec<String> =
            std::fs::read_dir(dir.path())?.flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
        assert_eq!(names.len(), 2, "the file and its lock file only: {names:?}");
        Ok(())
    }

    /// Temporary files of a writer that was killed are removed when the file is next locked;
    /// a live writer's are kept.
    #[test]
    fn stale_temporary_files_are_removed_under_the_lock() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cloud.json");
        std::fs::write(&path, br#"{"version": 1, "counter": 0, "resources": []}"#)?;
        let dead = dir.path().join(format!(".cloud.json.tmp-{}-0", u32::MAX - 1));
        let live = dir.path().join(format!(".cloud.json.tmp-{}-0", std::process::id()));
        std::fs::write(&dead, b"half")?;
        std::fs::write(&live, b"half")?;
        SimCloud::open(&path, SimConfig::default())?;
        if Path::new("/proc/self").exists() {
            assert!(!dead.exists(), "the dead writer's temporary file is gone");
        }
        assert!(live.exists(), "a running writer's temporary file is kept");
        Ok(())
    }

    #[test]
    fn bucket_refills_on_clock_time() {
        let mut inner =
            Inner::new(SimConfig { rate_limit: Some(RateLimit { per_second: 2.0, burst: 2 }), ..SimConfig::default() });
        let t0 = Duration::from_secs(10);
        assert!(inner.take_token(t0));
        assert!(inner.take_token(t0));
        assert!(!inner.take_token(t0));
        assert!(inner.take_token(t0 + Duration::from_millis(500)));
        assert!(!inner.take_token(t0 + Duration::from_millis(500)));
    }
}
