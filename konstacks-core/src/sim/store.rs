//! The simulated cloud's store: resources of any kind behind one lock, with counter-based ids,
//! eventual consistency, the rate limiter and the fault injector. Kind-specific behaviour lives
//! in one handler file per kind beside this one; the store only knows what the `SimKind` trait
//! says.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::base::cidr::Cidr;
use crate::base::error::{ErrorKind, ProviderError};
use crate::base::util::SplitMix;
use crate::kind::api::{ProviderResult, TargetHealth};
use crate::kind::catalog::Catalog;
use crate::kind::{Kind, Observed, ResourceKind, Selector, Tags, TAG_STACK};
use crate::sim::config::SimConfig;

/// Version of the JSON file written by a file-backed cloud.
pub(crate) const FILE_VERSION: u32 = 1;

/// Operation names of a kind, as counted by `SimCloud::calls_by_op` and matched by faults.
pub(crate) struct SimOps {
    pub(crate) create: &'static str,
    pub(crate) read: &'static str,
    pub(crate) update: &'static str,
    pub(crate) delete: &'static str,
}

/// The simulated cloud's handler of a kind: how it creates, updates and deletes one.
pub(crate) trait SimKind: ResourceKind {
    /// Operation names.
    const OPS: SimOps;
    /// How the API names the kind in messages (`VM`, `subnet`).
    const NOUN: &'static str;
    /// The ids of other resources this one references, each with how a message says it uses
    /// them (`attached to `, or nothing for plain membership); a resource referenced by another
    /// cannot be deleted (a dependency violation, as on a real API).
    fn references(o: &Self::Observed) -> Vec<(&str, &'static str)>;
    /// The key no two resources of the kind may share, when the API enforces one (a database's
    /// region and name: see [`name_key`]). The store indexes it so a create checks it without
    /// looking at every resource of the kind.
    fn unique_key(_o: &Self::Observed) -> Option<String> {
        None
    }
    /// Create one, validating like a real API.
    fn create(s: &mut Inner, cat: &Catalog, spec: &Self::Spec, now: Duration) -> ProviderResult<Self::Observed>;
    /// Update the mutable fields; an immutable field that differs is refused.
    fn update(
        s: &mut Inner,
        cat: &Catalog,
        id: &str,
        spec: &Self::Spec,
        now: Duration,
    ) -> ProviderResult<Self::Observed>;
    /// Delete, refusing while another resource references it.
    fn delete(s: &mut Inner, id: &str) -> ProviderResult<()> {
        s.delete_unreferenced::<Self>(id)
    }
    /// What a read shows of a stored resource: by default what is stored. A kind whose state
    /// follows from other resources (a certificate waiting for its validation records) works it
    /// out here, at read time.
    fn observe(_s: &Inner, o: Self::Observed, _now: Duration) -> Self::Observed {
        o
    }
    /// Add targets to a group (kinds that front others).
    fn register(_s: &mut Inner, _id: &str, _group: &str, _targets: &[String], _now: Duration) -> ProviderResult<()> {
        Err(invalid(format!("a {} has no targets to register", Self::NOUN)))
    }
    /// Take targets out of a group (kinds that front others).
    fn deregister(_s: &mut Inner, _id: &str, _group: &str, _targets: &[String]) -> ProviderResult<()> {
        Err(invalid(format!("a {} has no targets to deregister", Self::NOUN)))
    }
    /// The health of the targets (kinds that front others).
    fn target_health(_s: &Inner, _id: &str, _now: Duration) -> ProviderResult<Vec<TargetHealth>> {
        Err(invalid(format!("a {} has no targets", Self::NOUN)))
    }
}

trait SimObject: Send + Sync + fmt::Debug {
    fn kind(&self) -> Kind;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn clone_box(&self) -> Box<dyn SimObject>;
    fn to_json(&self) -> Value;
    fn id(&self) -> &str;
    fn tags(&self) -> &Tags;
    fn tags_mut(&mut self) -> &mut Tags;
    fn references(&self) -> Vec<(&str, &'static str)>;
    fn unique_key(&self) -> Option<String>;
    fn noun(&self) -> &'static str;
}

struct Stored<K: SimKind>(K::Observed);

impl<K: SimKind> fmt::Debug for Stored<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<K: SimKind> SimObject for Stored<K> {
    fn kind(&self) -> Kind {
        K::KIND
    }
    fn as_any(&self) -> &dyn Any {
        &self.0
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        &mut self.0
    }
    fn clone_box(&self) -> Box<dyn SimObject> {
        Box::new(Stored::<K>(self.0.clone()))
    }
    fn to_json(&self) -> Value {
        serde_json::to_value(&self.0).unwrap_or(Value::Null)
    }
    fn id(&self) -> &str {
        self.0.id()
    }
    fn tags(&self) -> &Tags {
        self.0.tags()
    }
    fn tags_mut(&mut self) -> &mut Tags {
        self.0.tags_mut()
    }
    fn references(&self) -> Vec<(&str, &'static str)> {
        K::references(&self.0)
    }
    fn unique_key(&self) -> Option<String> {
        K::unique_key(&self.0)
    }
    fn noun(&self) -> &'static str {
        K::NOUN
    }
}

/// One resource held by the simulated cloud, as it would be observed.
pub struct SimResource(Box<dyn SimObject>);

impl crate::sim::table::Row for SimResource {
    fn kind(&self) -> Kind {
        self.0.kind()
    }
    fn unique_key(&self) -> Option<String> {
        self.0.unique_key()
    }
    fn references_ids(&self) -> Vec<&str> {
        self.0.references().into_iter().map(|(id, _)| id).collect()
    }
}

impl SimResource {
    pub(crate) fn new<K: SimKind>(o: K::Observed) -> Self {
        Self(Box::new(Stored::<K>(o)))
    }

    /// Decode one resource of the JSON file with the handler of its kind.
    pub(crate) fn decode<K: SimKind>(v: Value) -> Result<Self, String> {
        serde_json::from_value::<K::Observed>(v).map(Self::new::<K>).map_err(|e| e.to_string())
    }

    /// The kind of resource.
    pub fn kind(&self) -> Kind {
        self.0.kind()
    }

    /// The provider id.
    pub fn id(&self) -> &str {
        self.0.id()
    }

    /// The tags.
    pub fn tags(&self) -> &Tags {
        self.0.tags()
    }

    /// The tags, for changing them behind Konstacks' back in `SimCloud::tamper`.
    pub fn tags_mut(&mut self) -> &mut Tags {
        self.0.tags_mut()
    }

    /// The observed state, when the resource is of kind `K`.
    pub fn get<K: ResourceKind>(&self) -> Option<&K::Observed> {
        self.0.as_any().downcast_ref::<K::Observed>()
    }

    /// The observed state to change, when the resource is of kind `K`.
    pub fn get_mut<K: ResourceKind>(&mut self) -> Option<&mut K::Observed> {
        self.0.as_any_mut().downcast_mut::<K::Observed>()
    }

    pub(crate) fn stack(&self) -> Option<&str> {
        self.tags().get(TAG_STACK).map(String::as_str)
    }

    /// The JSON form: the observed state plus its `kind`.
    pub fn to_json(&self) -> Value {
        let mut v = self.0.to_json();
        if let Value::Object(m) = &mut v {
            m.insert("kind".into(), Value::String(self.kind().as_str().into()));
        }
        v
    }
}

impl Clone for SimResource {
    fn clone(&self) -> Self {
        Self(self.0.clone_box())
    }
}

impl fmt::Debug for SimResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:?})", self.kind(), self.0)
    }
}

impl PartialEq for SimResource {
    fn eq(&self, other: &Self) -> bool {
        self.to_json() == other.to_json()
    }
}

impl serde::Serialize for SimResource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// The JSON file of a persistent simulated cloud, borrowed for writing under the lock.
#[derive(serde::Serialize)]
struct SimFileRef<'a> {
    version: u32,
    counter: u64,
    resources: Vec<&'a SimResource>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    secret_prints: &'a BTreeMap<String, BTreeMap<String, String>>,
}

/// What a process last saw of a persistent cloud's file: the next call reads the file again
/// and reloads the store when the file differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OnDisk {
    /// Not known (never read, or a change is not saved yet): the next call reloads.
    Unknown,
    /// There was no file.
    Absent,
    /// The file's bytes.
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Duration,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: SimConfig,
    pub(crate) counter: u64,
    pub(crate) resources: crate::sim::table::Table<SimResource>,
    /// Clock time each resource was created at; absent for resources loaded from a file (old).
    pub(crate) born: BTreeMap<String, Duration>,
    pub(crate) calls: u64,
    pub(crate) calls_by_op: BTreeMap<String, u64>,
    pub(crate) mutating_calls: u64,
    pub(crate) bucket: Option<Bucket>,
    rng: SplitMix,
    /// What this process last read from or wrote to the file of a persistent cloud.
    pub(crate) on_disk: OnDisk,
    /// Status new VMs of an image boot into (default `running`): lets tests make a release bad.
    pub(crate) boot_status: BTreeMap<String, String>,
    /// Fingerprints of the secrets each resource was given (id -> what -> fingerprint), never
    /// the secrets: lets tests check that a VM got the password its database has.
    pub(crate) secret_prints: BTreeMap<String, BTreeMap<String, String>>,
    /// What runs for real in live mode; `None` keeps every resource bookkeeping.
    pub(crate) runtime: Option<std::sync::Arc<dyn crate::sim::runtime::Runtime>>,
}

/// A live runtime's error, as the cloud's answer to the call that met it.
/// The unique key of a resource named `name` in `scope` (a region, a VPC).
pub(crate) fn name_key(scope: &str, name: &str) -> String {
    format!("{scope}\n{name}")
}

pub(crate) fn live_error(what: &str, e: String) -> ProviderError {
    provider_error(ErrorKind::Other, format!("live mode could not {what}: {e}"))
}

pub(crate) fn provider_error(kind: ErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(kind, message)
}

pub(crate) fn invalid(message: impl Into<String>) -> ProviderError {
    provider_error(ErrorKind::InvalidSpec, message)
}

pub(crate) fn conflict(message: impl Into<String>) -> ProviderError {
    provider_error(ErrorKind::Conflict, message)
}

pub(crate) fn not_found(what: &str, id: &str) -> ProviderError {
    ProviderError::not_found(format!("{what} `{id}` does not exist"))
}

pub(crate) fn parse_cidr(what: &str, s: &str) -> ProviderResult<Cidr> {
    s.parse::<Cidr>().map_err(|e| invalid(format!("{what}: {e}")))
}

/// The zone letters of every simulated region.
pub(crate) const ZONE_LETTERS: [&str; 3] = ["a", "b", "c"];

/// The name of zone `zone` of `region`.
pub(crate) fn zone_name(region: &str, zone: u8) -> Option<String> {
    ZONE_LETTERS.get(usize::from(zone)).map(|l| format!("{region}-{l}"))
}

pub(crate) fn same_set(a: &[String], b: &[String]) -> bool {
    a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
}

/// Reject a change to a field that cannot be changed in place.
pub(crate) fn immutable<T: PartialEq + std::fmt::Debug>(
    what: &str,
    id: &str,
    field: &str,
    old: &T,
    new: &T,
) -> ProviderResult<()> {
    if old == new {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} `{id}`: field `{field}` cannot be changed in place ({old:?} -> {new:?}); replace the resource instead"
        )))
    }
}

impl Inner {
    pub(crate) fn new(config: SimConfig) -> Self {
        let rng = SplitMix::new(config.seed);
        Self {
            config,
            counter: 0,
            resources: Default::default(),
            born: BTreeMap::new(),
            calls: 0,
            calls_by_op: BTreeMap::new(),
            mutating_calls: 0,
            bucket: None,
            rng,
            on_disk: OnDisk::Unknown,
            boot_status: BTreeMap::new(),
            secret_prints: BTreeMap::new(),
            runtime: None,
        }
    }

    pub(crate) fn snapshot(&self) -> ProviderResult<Vec<u8>> {
        let file = SimFileRef {
            version: FILE_VERSION,
            counter: self.counter,
            resources: self.resources.values().collect(),
            secret_prints: &self.secret_prints,
        };
        serde_json::to_vec_pretty(&file).map_err(|e| {
            provider_error(ErrorKind::Other, "the simulated cloud could not serialise its state").with_source(e)
        })
    }

    /// Take one token from the bucket; `false` when the call must be throttled.
    pub(crate) fn take_token(&mut self, now: Duration) -> bool {
        let Some(rl) = self.config.rate_limit else {
            return true;
        };
        let cap = f64::from(rl.burst.max(1));
        let b = self.bucket.get_or_insert(Bucket { tokens: cap, last: now });
        let elapsed = now.saturating_sub(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rl.per_second.max(0.0)).min(cap);
        b.last = b.last.max(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Rate limit, then the injected failures that make no change.
    pub(crate) fn admit(&mut self, op: &str, n: u64, now: Duration) -> ProviderResult<()> {
        if !self.take_token(now) {
            let detail = self
                .config
                .rate_limit
                .map(|rl| {
                    format!(" (the simulated API allows {} call(s)/s with bursts of {})", rl.per_second, rl.burst)
                })
                .unwrap_or_default();
            return Err(provider_error(
                ErrorKind::Throttled,
                format!("rate exceeded on `{op}`{detail}; slow down and retry"),
            ));
        }
        if let Some(kind) = self.config.faults.fail_nth.get(&n) {
            return Err(provider_error(
                *kind,
                format!("injected fault: call #{n} (`{op}`) failed; nothing was changed"),
            ));
        }
        let faults = &self.config.faults;
        if faults.fail_rate > 0.0 && faults.random_applies_to(op) && self.rng.next_f64() < faults.fail_rate {
            return Err(provider_error(
                faults.fail_kind,
                format!("injected random fault on call #{n} (`{op}`); nothing was changed"),
            ));
        }
        if faults.random_applies_to(op) {
            for (kind, p) in &faults.mix {
                if *p > 0.0 && self.rng.next_f64() < *p {
                    return Err(provider_error(
                        *kind,
                        format!("injected random {kind} on call #{n} (`{op}`); nothing was changed"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether a successful mutating call should report a timeout after applying its change.
    pub(crate) fn timeout_due(&mut self, op: &str, n: u64) -> bool {
        if self.config.faults.timeout_nth.contains(&n) {
            return true;
        }
        let faults = &self.config.faults;
        faults.timeout_rate > 0.0 && faults.random_applies_to(op) && self.rng.next_f64() < faults.timeout_rate
    }

    pub(crate) fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{:08x}", self.counter)
    }

    pub(crate) fn insert(&mut self, r: SimResource, now: Duration) {
        let id = r.id().to_string();
        self.born.insert(id.clone(), now);
        self.resources.insert(id, r);
    }

    pub(crate) fn remove(&mut self, id: &str) {
        self.resources.remove(id);
        self.born.remove(id);
        self.secret_prints.remove(id);
    }

    pub(crate) fn visible(&self, id: &str, now: Duration) -> bool {
        match self.born.get(id) {
            Some(born) => now.saturating_sub(*born) >= self.config.consistency_delay,
            None => true,
        }
    }

    /// The resource `id`, when it is of kind `K`.
    pub(crate) fn get<K: ResourceKind>(&self, id: &str) -> Option<&K::Observed> {
        self.resources.get(id).and_then(SimResource::get::<K>)
    }

    /// Every resource of kind `K`.
    pub(crate) fn all<K: ResourceKind>(&self) -> impl Iterator<Item = &K::Observed> {
        self.resources.of_kind(K::KIND).filter_map(SimResource::get::<K>)
    }

    /// The resources of kind `K` whose [`SimKind::unique_key`] is `key`.
    pub(crate) fn keyed<K: ResourceKind>(&self, key: &str) -> impl Iterator<Item = &K::Observed> {
        self.resources.keyed(K::KIND, key).filter_map(SimResource::get::<K>)
    }

    /// Every resource of kind `K` that references `id` (a VPC's subnets, a subnet's VMs).
    pub(crate) fn referrers<K: ResourceKind>(&self, id: &str) -> impl Iterator<Item = &K::Observed> {
        self.resources.referrers(id).filter_map(SimResource::get::<K>)
    }

    /// Store `o` under its id, replacing the previous state.
    pub(crate) fn put<K: SimKind>(&mut self, o: K::Observed) {
        self.resources.insert(o.id().to_string(), SimResource::new::<K>(o));
    }

    /// Store a new resource, born now (for eventual consistency).
    pub(crate) fn create<K: SimKind>(&mut self, o: K::Observed, now: Duration) -> K::Observed {
        self.insert(SimResource::new::<K>(o.clone()), now);
        o
    }

    /// The resource `id` of kind `K`, or NotFound.
    pub(crate) fn existing<K: SimKind>(&self, id: &str) -> ProviderResult<&K::Observed> {
        self.get::<K>(id).ok_or_else(|| not_found(K::NOUN, id))
    }

    /// A referenced resource: it must exist, be visible and live in `region`; otherwise NotFound,
    /// as a real regional API answers.
    pub(crate) fn reference<K: SimKind>(&self, id: &str, region: &str, now: Duration) -> ProviderResult<&K::Observed> {
        match self.get::<K>(id) {
            Some(r) if r.region() == region && self.visible(id, now) => Ok(r),
            _ => Err(ProviderError::not_found(format!(
                "{} `{id}` does not exist in region `{region}` (one created moments ago may not be visible yet; \
                 retry shortly)",
                K::NOUN
            ))),
        }
    }

    /// Delete `id` unless another resource references it.
    pub(crate) fn delete_unreferenced<K: SimKind>(&mut self, id: &str) -> ProviderResult<()> {
        self.existing::<K>(id)?;
        let mut users: Vec<String> = Vec::new();
        for r in self.resources.referrers(id).filter(|r| r.id() != id) {
            if let Some((_, how)) = r.0.references().into_iter().find(|(used, _)| *used == id) {
                users.push(format!("{how}{} {}", r.0.noun(), r.id()));
            }
        }
        if !users.is_empty() {
            return Err(conflict(format!(
                "{} `{id}` is in use and cannot be deleted: {}; delete or detach them first",
                K::NOUN,
                users.join(", ")
            )));
        }
        self.remove(id);
        Ok(())
    }

    /// Firewalls attached to a resource: they must exist and belong to `vpc_id`.
    pub(crate) fn check_attached_firewalls(
        &self,
        ids: &[String],
        vpc_id: &str,
        region: &str,
        now: Duration,
    ) -> ProviderResult<()> {
        for id in ids {
            let fw = self.reference::<crate::kinds::Firewall>(id, region, now)?;
            if fw.vpc_id != vpc_id {
                return Err(invalid(format!(
                    "firewall `{id}` belongs to VPC `{}`, not `{vpc_id}`; attach firewalls of the same VPC",
                    fw.vpc_id
                )));
            }
        }
        Ok(())
    }

    /// Subnets of one VPC in `region`; returns that VPC.
    pub(crate) fn subnets_vpc(
        &self,
        what: &str,
        name: &str,
        ids: &[String],
        region: &str,
        now: Duration,
    ) -> ProviderResult<String> {
        let Some(first) = ids.first() else {
            return Err(invalid(format!("{what} `{name}` needs at least one subnet")));
        };
        let vpc_id = self.reference::<crate::kinds::Subnet>(first, region, now)?.vpc_id.clone();
        for id in ids {
            let s = self.reference::<crate::kinds::Subnet>(id, region, now)?;
            if s.vpc_id != vpc_id {
                return Err(invalid(format!(
                    "{what} `{name}`: subnets `{first}` and `{id}` belong to different VPCs; use subnets of one VPC"
                )));
            }
        }
        Ok(vpc_id)
    }

    pub(crate) fn check_region(cat: &Catalog, region: &str) -> ProviderResult<()> {
        if cat.region(region).is_some() {
            Ok(())
        } else {
            Err(invalid(format!(
                "region `{region}` is not offered by the simulated cloud; use one of its catalogue (e.g. `eu-central`)"
            )))
        }
    }

    pub(crate) fn check_name(cat: &Catalog, what: &str, name: &str) -> ProviderResult<()> {
        if name.len() > cat.max_name_len {
            return Err(invalid(format!(
                "{what} name `{name}` is {} characters long; the simulated cloud accepts at most {}",
                name.len(),
                cat.max_name_len
            )));
        }
        Ok(())
    }

    /// A batched read of kind `K`.
    pub(crate) fn read<K: ResourceKind>(&self, sel: &Selector, now: Duration) -> Vec<K::Observed> {
        match sel {
            Selector::Ids(ids) => {
                let ids: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
                ids.into_iter().filter(|id| self.visible(id, now)).filter_map(|id| self.get::<K>(id)).cloned().collect()
            }
            Selector::Stack(stack) => self
                .resources
                .values()
                .filter(|r| r.stack() == Some(stack.as_str()) && self.visible(r.id(), now))
                .filter_map(SimResource::get::<K>)
                .cloned()
                .collect(),
        }
    }
}

/// A size the catalogue lacks.
pub(crate) fn check_offer(
    what: &str,
    size: &str,
    found: bool,
    offered: &[crate::kind::catalog::Offer],
) -> ProviderResult<()> {
    if found {
        return Ok(());
    }
    let offered: Vec<&str> = offered.iter().map(|o| o.slug.as_str()).collect();
    Err(invalid(format!("{what} size `{size}` is not offered; use one of: {}", offered.join(", "))))
}

/// An engine version the catalogue lacks.
pub(crate) fn check_engine_version(cat: &Catalog, engine: &str, version: &str) -> ProviderResult<()> {
    let versions = cat.engine_versions(engine);
    if versions.iter().any(|v| v == version) {
        return Ok(());
    }
    Err(invalid(format!("{engine} version `{version}` is not offered; use one of: {}", versions.join(", "))))
}

/// A version older than the current one, where the catalogue orders them.
pub(crate) fn check_no_downgrade(
    cat: &Catalog,
    engine: &str,
    id: &str,
    what: &str,
    old: &str,
    new: &str,
) -> ProviderResult<()> {
    let versions = cat.engine_versions(engine);
    let rank = |v: &str| versions.iter().position(|x| x == v);
    if let (Some(o), Some(n)) = (rank(old), rank(new)) {
        if n < o {
            return Err(invalid(format!(
                "{what} `{id}`: cannot downgrade {engine} from {old} to {new}; restore a backup into a new {what} instead"
            )));
        }
    }
    Ok(())
}

/// The numeric part of a simulated id (`vpc-0000000a` -> 10).
pub(crate) fn id_number(id: &str) -> Option<u64> {
    id.rsplit_once('-').and_then(|(_, n)| u64::from_str_radix(n, 16).ok())
}
