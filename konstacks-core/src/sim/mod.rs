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

mod cache;
pub mod config;
mod database;
mod firewall;
pub mod store;
mod subnet;
mod vm;
mod vpc;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use crate::base::clock::OpContext;
use crate::base::error::{ErrorKind, ProviderError, StateError};
use crate::kind::api::{Api, ProviderResult};
use crate::kind::catalog::{Catalog, EngineOffer, Offer, Pricing, RegionInfo};
use crate::kind::Selector;
use crate::kinds::{self, Cache, Database, Firewall, Subnet, Vm, Vpc};
use crate::model::placement::{Jurisdiction, SIMULATED};
use crate::provider::{Provider, ProviderLimits, Region};
pub use crate::sim::config::{Faults, RateLimit, SimConfig};
pub use crate::sim::store::SimResource;
use crate::sim::store::{id_number, provider_error, zone_name, Inner, SimKind, FILE_VERSION, ZONE_LETTERS};

/// Decode one resource of the JSON file with the handler of its kind.
fn decode(v: Value) -> Result<SimResource, String> {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    match kind.as_str() {
        "cache" => SimResource::decode::<Cache>(v),
        "database" => SimResource::decode::<Database>(v),
        "firewall" => SimResource::decode::<Firewall>(v),
        "subnet" => SimResource::decode::<Subnet>(v),
        "vm" => SimResource::decode::<Vm>(v),
        "vpc" => SimResource::decode::<Vpc>(v),
        other => Err(format!("unknown resource kind `{other}`")),
    }
}

/// The JSON file of a persistent simulated cloud. Call counts are not kept.
#[derive(serde::Deserialize)]
struct SimFile {
    version: u32,
    counter: u64,
    resources: Vec<Value>,
    #[serde(default)]
    secret_prints: BTreeMap<String, BTreeMap<String, String>>,
}

/// Writes snapshots of a persistent cloud, newest wins.
#[derive(Debug)]
struct Persister {
    path: PathBuf,
    /// Generation of the snapshot on disk. Held while writing so writes are serialised; only
    /// ever locked on blocking threads or in synchronous helpers, never across an `.await`.
    written: Mutex<u64>,
}

static TEMP_SERIAL: AtomicU64 = AtomicU64::new(0);

impl Persister {
    fn write(&self, generation: u64, bytes: &[u8]) -> std::io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if generation <= *written {
            // A newer snapshot is already on disk.
            return Ok(());
        }
        write_atomic(&self.path, bytes)?;
        *written = generation;
        Ok(())
    }
}

/// Write `bytes` to `path` so that readers see either the old or the new file, never a torn one.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "sim.json".into());
    let serial = TEMP_SERIAL.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.tmp-{}-{serial}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // Make the rename itself durable; not every platform lets a directory be opened.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The embedded simulated cloud. Cheap to share behind an `Arc`; see [`SimCloud::provider`].
#[derive(Debug)]
pub struct SimCloud {
    inner: Mutex<Inner>,
    catalog: Catalog,
    persister: Option<Arc<Persister>>,
}

impl SimCloud {
    /// An in-memory simulated cloud.
    pub fn new(config: SimConfig) -> Self {
        Self { inner: Mutex::new(Inner::new(config)), catalog: Self::catalog(), persister: None }
    }

    /// A simulated cloud kept in the JSON file at `path`: loaded if the file exists, rewritten
    /// atomically after every change. Resources loaded are old, hence visible at once.
    pub fn open(path: impl Into<PathBuf>, config: SimConfig) -> Result<Self, StateError> {
        let path = path.into();
        let location = path.display().to_string();
        let corrupt = |reason: String| StateError::Corrupt {
            stack: "(simulated cloud)".into(),
            location: location.clone(),
            reason,
        };
        let mut inner = Inner::new(config);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: SimFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
                if file.version > FILE_VERSION {
                    return Err(StateError::FutureVersion {
                        stack: "(simulated cloud)".into(),
                        found: file.version,
                        supported: FILE_VERSION,
                    });
                }
                let mut counter = file.counter;
                for v in file.resources {
                    let r = decode(v).map_err(corrupt)?;
                    let id = r.id().to_string();
                    if inner.resources.contains_key(&id) {
                        return Err(corrupt(format!("resource id `{id}` appears twice")));
                    }
                    // Never hand out an id that is already taken, even if the counter was edited.
                    counter = counter.max(id_number(&id).unwrap_or(0));
                    inner.resources.insert(id, r);
                }
                inner.counter = counter;
                inner.secret_prints = file.secret_prints;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::Io { path: location, source: e }),
        }
        Ok(Self {
            inner: Mutex::new(inner),
            catalog: Self::catalog(),
            persister: Some(Arc::new(Persister { path, written: Mutex::new(0) })),
        })
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
            },
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
            .kind::<Cache>(Arc::clone(self) as _)
            .kind::<Database>(Arc::clone(self) as _)
            .kind::<Firewall>(Arc::clone(self) as _)
            .kind::<Subnet>(Arc::clone(self) as _)
            .kind::<Vm>(Arc::clone(self) as _)
            .kind::<Vpc>(Arc::clone(self) as _)
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
        self.lock().secret_prints.get(id).and_then(|m| m.get(what)).cloned()
    }

    /// Every resource, sorted by id, regardless of eventual consistency.
    pub fn resources(&self) -> Vec<SimResource> {
        self.lock().resources.values().cloned().collect()
    }

    /// The resources tagged `konstacks:stack = stack`, sorted by id.
    pub fn resources_of_stack(&self, stack: &str) -> Vec<SimResource> {
        self.lock().resources.values().filter(|r| r.stack() == Some(stack)).cloned().collect()
    }

    /// Change a resource behind Konstacks' back (for drift tests). Not a call: it is not counted,
    /// throttled or faulted. Persisted (synchronously) for a file-backed cloud. `false` if the
    /// resource does not exist.
    pub fn tamper(&self, id: &str, f: impl FnOnce(&mut SimResource)) -> bool {
        let snapshot = {
            let mut g = self.lock();
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
            self.bump(&mut g)
        };
        self.persist_blocking(snapshot);
        true
    }

    /// Delete a resource behind Konstacks' back, ignoring dependencies (someone used the
    /// console). Not a call. `false` if it does not exist.
    pub fn remove_behind_back(&self, id: &str) -> bool {
        let snapshot = {
            let mut g = self.lock();
            if !g.resources.contains_key(id) {
                return false;
            }
            g.remove(id);
            self.bump(&mut g)
        };
        self.persist_blocking(snapshot);
        true
    }

    /// Record a change; returns the snapshot to write when the cloud is file-backed.
    fn bump(&self, g: &mut Inner) -> Option<ProviderResult<(u64, Vec<u8>)>> {
        g.generation += 1;
        self.persister.as_ref().map(|_| g.snapshot().map(|bytes| (g.generation, bytes)))
    }

    fn persist_blocking(&self, snapshot: Option<ProviderResult<(u64, Vec<u8>)>>) {
        let (Some(p), Some(snapshot)) = (&self.persister, snapshot) else {
            return;
        };
        let res =
            snapshot.and_then(|(generation, bytes)| p.write(generation, &bytes).map_err(|e| save_error(&p.path, e)));
        if let Err(e) = res {
            tracing::warn!(error = %e, "simulated cloud: saving a change made behind Konstacks' back failed");
        }
    }

    /// Write a snapshot off the async runtime's threads.
    async fn persist(&self, snapshot: Option<ProviderResult<(u64, Vec<u8>)>>) -> ProviderResult<()> {
        let (Some(p), Some(snapshot)) = (&self.persister, snapshot) else {
            return Ok(());
        };
        let (generation, bytes) = snapshot?;
        let writer = Arc::clone(p);
        let res = match tokio::runtime::Handle::try_current() {
            Ok(handle) => match handle.spawn_blocking(move || writer.write(generation, &bytes)).await {
                Ok(r) => r,
                Err(e) => Err(std::io::Error::other(e.to_string())),
            },
            Err(_) => writer.write(generation, &bytes),
        };
        res.map_err(|e| save_error(&p.path, e))
    }

    /// Answer one trait call: count, sleep, throttle, inject faults, run `op`, persist.
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
        let (result, snapshot, timed_out) = {
            let mut g = self.lock();
            let now = cx.clock.now();
            g.admit(op, n, now)?;
            let result = f(&mut g, now);
            let changed = mutating && result.is_ok();
            let snapshot = if changed { self.bump(&mut g) } else { None };
            let timed_out = changed && g.timeout_due(op, n);
            (result, snapshot, timed_out)
        };
        tracing::trace!(op, call = n, ok = result.is_ok(), "simulated cloud call");
        self.persist(snapshot).await?;
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
            "the simulated cloud applied the change but could not save it to {}; check that the directory is writable",
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
        self.call(cx, K::OPS.read, false, |s, now| Ok(s.read::<K>(sel, now))).await
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &K::Spec) -> ProviderResult<K::Observed> {
        let cat = &self.catalog;
        self.call(cx, K::OPS.update, true, |s, now| K::update(s, cat, id, spec, now)).await
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.call(cx, K::OPS.delete, true, |s, _| K::delete(s, id)).await
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
