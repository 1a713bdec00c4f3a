//! The embedded simulated cloud: an in-memory (optionally file-backed) implementation of every
//! provider trait with realistic semantics, so engine and scenario tests run in milliseconds on
//! virtual time.
//!
//! It owns its own resource store, id counter, call accounting, rate limiter and fault injector.
//! It behaves like a real API where that matters to the engine: deterministic counter-based ids,
//! zones, CIDR containment and overlap checks, dependency violations on delete, eventual
//! consistency after create, a token-bucket rate limit and seeded fault injection (including
//! "timed out but applied"). All time comes from the caller's [`OpContext`] clock.
//!
//! It must not touch Konstacks' own state, plans or the engine: it is a cloud, and knows nothing
//! of stacks beyond the tags it is given.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::cidr::Cidr;
use crate::clock::OpContext;
use crate::error::{ErrorKind, ProviderError, StateError};
use crate::model::{Engine, Jurisdiction, Kind, SIMULATED};
use crate::provider::{
    Catalog, Compute, Database, EngineOffer, Network, Offer, Pricing, Provider, ProviderLimits, ProviderResult, Region,
    RegionInfo,
};
use crate::spec::{
    DatabaseObserved, DatabaseSpec, FirewallObserved, FirewallSpec, RuleSource, RuleSpec, Selector, SubnetObserved,
    SubnetSpec, Tags, VmObserved, VmSpec, VpcObserved, VpcSpec, TAG_STACK,
};
use crate::util::SplitMix;

/// Version of the JSON file written by [`SimCloud::open`].
const FILE_VERSION: u32 = 1;

/// The zone letters of every simulated region.
const ZONE_LETTERS: [&str; 3] = ["a", "b", "c"];

/// A token-bucket rate limit on the simulated API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second of clock time.
    pub per_second: f64,
    /// Bucket size: calls allowed back to back before throttling starts.
    pub burst: u32,
}

/// Injected failures. Call numbers are 1-based and count every trait call the cloud answers
/// (see [`SimCloud::calls`]).
#[derive(Debug, Clone)]
pub struct Faults {
    /// The Nth call fails with this kind and makes no change.
    pub fail_nth: BTreeMap<u64, ErrorKind>,
    /// Probability that any call fails with [`Faults::fail_kind`] (no change made).
    pub fail_rate: f64,
    /// The kind of the random failures drawn with [`Faults::fail_rate`].
    pub fail_kind: ErrorKind,
    /// The Nth call, if it is mutating, applies its change and then reports a transient timeout.
    pub timeout_nth: BTreeSet<u64>,
    /// Probability that a mutating call applies its change and then reports a transient timeout.
    pub timeout_rate: f64,
    /// When set, the random faults (`fail_rate`, `timeout_rate`) apply only to these operation
    /// names (trait method names such as `create_vm`). The `*_nth` faults always apply.
    pub only_ops: Option<BTreeSet<String>>,
    /// More random failures, each with its own probability, drawn after `fail_rate` (for a mix
    /// such as 20% throttled plus 5% transient). No change is made.
    pub mix: Vec<(ErrorKind, f64)>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            fail_nth: BTreeMap::new(),
            fail_rate: 0.0,
            fail_kind: ErrorKind::Transient,
            timeout_nth: BTreeSet::new(),
            timeout_rate: 0.0,
            only_ops: None,
            mix: Vec::new(),
        }
    }
}

impl Faults {
    /// Whether the random faults apply to `op`.
    fn random_applies_to(&self, op: &str) -> bool {
        match &self.only_ops {
            Some(ops) => ops.contains(op),
            None => true,
        }
    }
}

/// How the simulated cloud behaves.
#[derive(Debug, Clone, Default)]
pub struct SimConfig {
    /// Every call sleeps this long on the caller's clock before it is answered.
    pub latency: Duration,
    /// Token bucket measured on the caller's clock; a call beyond it fails with
    /// [`ErrorKind::Throttled`] and makes no change. `None` = unlimited.
    pub rate_limit: Option<RateLimit>,
    /// A resource created less than this long ago is invisible to reads and, when another create
    /// or update references it, answers [`ErrorKind::NotFound`] (eventual consistency).
    pub consistency_delay: Duration,
    /// Injected failures.
    pub faults: Faults,
    /// Seed of the generator behind the random faults.
    pub seed: u64,
}

/// One resource held by the simulated cloud, as it would be observed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SimResource {
    /// A VPC.
    Vpc(VpcObserved),
    /// A subnet.
    Subnet(SubnetObserved),
    /// A firewall.
    Firewall(FirewallObserved),
    /// A VM.
    Vm(VmObserved),
    /// A database.
    Database(DatabaseObserved),
}

impl SimResource {
    /// The kind of resource.
    pub fn kind(&self) -> Kind {
        match self {
            SimResource::Vpc(_) => Kind::Vpc,
            SimResource::Subnet(_) => Kind::Subnet,
            SimResource::Firewall(_) => Kind::Firewall,
            SimResource::Vm(_) => Kind::Vm,
            SimResource::Database(_) => Kind::Database,
        }
    }

    /// The provider id.
    pub fn id(&self) -> &str {
        match self {
            SimResource::Vpc(r) => &r.id,
            SimResource::Subnet(r) => &r.id,
            SimResource::Firewall(r) => &r.id,
            SimResource::Vm(r) => &r.id,
            SimResource::Database(r) => &r.id,
        }
    }

    /// The tags.
    pub fn tags(&self) -> &Tags {
        match self {
            SimResource::Vpc(r) => &r.tags,
            SimResource::Subnet(r) => &r.tags,
            SimResource::Firewall(r) => &r.tags,
            SimResource::Vm(r) => &r.tags,
            SimResource::Database(r) => &r.tags,
        }
    }

    /// The tags, for changing them behind Konstacks' back in [`SimCloud::tamper`].
    pub fn tags_mut(&mut self) -> &mut Tags {
        match self {
            SimResource::Vpc(r) => &mut r.tags,
            SimResource::Subnet(r) => &mut r.tags,
            SimResource::Firewall(r) => &mut r.tags,
            SimResource::Vm(r) => &mut r.tags,
            SimResource::Database(r) => &mut r.tags,
        }
    }

    fn stack(&self) -> Option<&str> {
        self.tags().get(TAG_STACK).map(String::as_str)
    }
}

/// The JSON file of a persistent simulated cloud. Call counts are not kept.
#[derive(serde::Deserialize)]
struct SimFile {
    version: u32,
    counter: u64,
    resources: Vec<SimResource>,
}

/// [`SimFile`] borrowed, for writing under the lock without cloning every resource.
#[derive(serde::Serialize)]
struct SimFileRef<'a> {
    version: u32,
    counter: u64,
    resources: Vec<&'a SimResource>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Duration,
}

/// Everything behind the lock.
#[derive(Debug)]
struct Inner {
    config: SimConfig,
    counter: u64,
    resources: BTreeMap<String, SimResource>,
    /// Clock time each resource was created at; absent for resources loaded from a file (old).
    born: BTreeMap<String, Duration>,
    calls: u64,
    calls_by_op: BTreeMap<String, u64>,
    mutating_calls: u64,
    bucket: Option<Bucket>,
    rng: SplitMix,
    /// Bumped on every change, so that an older snapshot never overwrites a newer one on disk.
    generation: u64,
    /// Status new VMs of an image boot into (default `running`): lets tests make a release bad.
    boot_status: BTreeMap<String, String>,
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

fn provider_error(kind: ErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(kind, message)
}

fn invalid(message: impl Into<String>) -> ProviderError {
    provider_error(ErrorKind::InvalidSpec, message)
}

fn conflict(message: impl Into<String>) -> ProviderError {
    provider_error(ErrorKind::Conflict, message)
}

fn not_found(what: &str, id: &str) -> ProviderError {
    ProviderError::not_found(format!("{what} `{id}` does not exist"))
}

fn parse_cidr(what: &str, s: &str) -> ProviderResult<Cidr> {
    s.parse::<Cidr>().map_err(|e| invalid(format!("{what}: {e}")))
}

fn zone_name(region: &str, zone: u8) -> Option<String> {
    ZONE_LETTERS.get(usize::from(zone)).map(|l| format!("{region}-{l}"))
}

fn sorted_rules(rules: &[RuleSpec]) -> Vec<RuleSpec> {
    let set: BTreeSet<RuleSpec> = rules.iter().cloned().collect();
    set.into_iter().collect()
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
}

/// Reject a change to a field that cannot be changed in place.
fn immutable<T: PartialEq + std::fmt::Debug>(
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
    fn new(config: SimConfig) -> Self {
        let rng = SplitMix::new(config.seed);
        Self {
            config,
            counter: 0,
            resources: BTreeMap::new(),
            born: BTreeMap::new(),
            calls: 0,
            calls_by_op: BTreeMap::new(),
            mutating_calls: 0,
            bucket: None,
            rng,
            generation: 0,
            boot_status: BTreeMap::new(),
        }
    }

    fn snapshot(&self) -> ProviderResult<Vec<u8>> {
        let file =
            SimFileRef { version: FILE_VERSION, counter: self.counter, resources: self.resources.values().collect() };
        serde_json::to_vec_pretty(&file).map_err(|e| {
            provider_error(ErrorKind::Other, "the simulated cloud could not serialise its state").with_source(e)
        })
    }

    /// Take one token from the bucket; `false` when the call must be throttled.
    fn take_token(&mut self, now: Duration) -> bool {
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
    fn admit(&mut self, op: &str, n: u64, now: Duration) -> ProviderResult<()> {
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
    fn timeout_due(&mut self, op: &str, n: u64) -> bool {
        if self.config.faults.timeout_nth.contains(&n) {
            return true;
        }
        let faults = &self.config.faults;
        faults.timeout_rate > 0.0 && faults.random_applies_to(op) && self.rng.next_f64() < faults.timeout_rate
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{:08x}", self.counter)
    }

    fn insert(&mut self, r: SimResource, now: Duration) {
        let id = r.id().to_string();
        self.born.insert(id.clone(), now);
        self.resources.insert(id, r);
    }

    fn remove(&mut self, id: &str) {
        self.resources.remove(id);
        self.born.remove(id);
    }

    fn visible(&self, id: &str, now: Duration) -> bool {
        match self.born.get(id) {
            Some(born) => now.saturating_sub(*born) >= self.config.consistency_delay,
            None => true,
        }
    }

    fn vpc(&self, id: &str) -> Option<&VpcObserved> {
        match self.resources.get(id) {
            Some(SimResource::Vpc(r)) => Some(r),
            _ => None,
        }
    }

    fn subnet(&self, id: &str) -> Option<&SubnetObserved> {
        match self.resources.get(id) {
            Some(SimResource::Subnet(r)) => Some(r),
            _ => None,
        }
    }

    fn firewall(&self, id: &str) -> Option<&FirewallObserved> {
        match self.resources.get(id) {
            Some(SimResource::Firewall(r)) => Some(r),
            _ => None,
        }
    }

    fn vm(&self, id: &str) -> Option<&VmObserved> {
        match self.resources.get(id) {
            Some(SimResource::Vm(r)) => Some(r),
            _ => None,
        }
    }

    fn database(&self, id: &str) -> Option<&DatabaseObserved> {
        match self.resources.get(id) {
            Some(SimResource::Database(r)) => Some(r),
            _ => None,
        }
    }

    fn subnets(&self) -> impl Iterator<Item = &SubnetObserved> {
        self.resources.values().filter_map(|r| match r {
            SimResource::Subnet(v) => Some(v),
            _ => None,
        })
    }

    fn firewalls(&self) -> impl Iterator<Item = &FirewallObserved> {
        self.resources.values().filter_map(|r| match r {
            SimResource::Firewall(v) => Some(v),
            _ => None,
        })
    }

    fn vms(&self) -> impl Iterator<Item = &VmObserved> {
        self.resources.values().filter_map(|r| match r {
            SimResource::Vm(v) => Some(v),
            _ => None,
        })
    }

    fn databases(&self) -> impl Iterator<Item = &DatabaseObserved> {
        self.resources.values().filter_map(|r| match r {
            SimResource::Database(v) => Some(v),
            _ => None,
        })
    }

    /// A referenced resource: it must exist, be visible and live in `region`; otherwise NotFound,
    /// as a real regional API answers.
    fn reference<'a, T>(
        &'a self,
        what: &str,
        id: &str,
        region: &str,
        now: Duration,
        get: impl Fn(&'a Self, &str) -> Option<&'a T>,
        region_of: impl Fn(&T) -> &str,
    ) -> ProviderResult<&'a T> {
        match get(self, id) {
            Some(r) if region_of(r) == region && self.visible(id, now) => Ok(r),
            _ => Err(ProviderError::not_found(format!(
                "{what} `{id}` does not exist in region `{region}` (one created moments ago may not be visible yet; \
                 retry shortly)"
            ))),
        }
    }

    fn ref_vpc(&self, id: &str, region: &str, now: Duration) -> ProviderResult<&VpcObserved> {
        self.reference("VPC", id, region, now, Self::vpc, |r| &r.region)
    }

    fn ref_subnet(&self, id: &str, region: &str, now: Duration) -> ProviderResult<&SubnetObserved> {
        self.reference("subnet", id, region, now, Self::subnet, |r| &r.region)
    }

    fn ref_firewall(&self, id: &str, region: &str, now: Duration) -> ProviderResult<&FirewallObserved> {
        self.reference("firewall", id, region, now, Self::firewall, |r| &r.region)
    }

    /// Firewalls attached to a VM or database: they must exist and belong to `vpc_id`.
    fn check_attached_firewalls(
        &self,
        ids: &[String],
        vpc_id: &str,
        region: &str,
        now: Duration,
    ) -> ProviderResult<()> {
        for id in ids {
            let fw = self.ref_firewall(id, region, now)?;
            if fw.vpc_id != vpc_id {
                return Err(invalid(format!(
                    "firewall `{id}` belongs to VPC `{}`, not `{vpc_id}`; attach firewalls of the same VPC",
                    fw.vpc_id
                )));
            }
        }
        Ok(())
    }

    fn check_rules(
        &self,
        fw_id: Option<&str>,
        vpc_id: &str,
        region: &str,
        rules: &[RuleSpec],
        now: Duration,
    ) -> ProviderResult<()> {
        for r in rules {
            if r.from_port > r.to_port {
                return Err(invalid(format!(
                    "rule port range {}-{} is reversed; write the lower port first",
                    r.from_port, r.to_port
                )));
            }
            match &r.peer {
                RuleSource::Cidr(c) => {
                    parse_cidr("rule peer", c)?;
                }
                RuleSource::Firewall(peer) if Some(peer.as_str()) == fw_id => {}
                RuleSource::Firewall(peer) => {
                    let fw = self.ref_firewall(peer, region, now)?;
                    if fw.vpc_id != vpc_id {
                        return Err(invalid(format!(
                            "rule peer firewall `{peer}` belongs to VPC `{}`, not `{vpc_id}`",
                            fw.vpc_id
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_region(cat: &Catalog, region: &str) -> ProviderResult<()> {
        if cat.region(region).is_some() {
            Ok(())
        } else {
            Err(invalid(format!(
                "region `{region}` is not offered by the simulated cloud; use one of its catalogue (e.g. `eu-central`)"
            )))
        }
    }

    fn check_name(cat: &Catalog, what: &str, name: &str) -> ProviderResult<()> {
        if name.len() > cat.max_name_len {
            return Err(invalid(format!(
                "{what} name `{name}` is {} characters long; the simulated cloud accepts at most {}",
                name.len(),
                cat.max_name_len
            )));
        }
        Ok(())
    }

    fn read<T: Clone>(&self, sel: &Selector, now: Duration, pick: fn(&SimResource) -> Option<&T>) -> Vec<T> {
        match sel {
            Selector::Ids(ids) => {
                let ids: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
                ids.into_iter()
                    .filter(|id| self.visible(id, now))
                    .filter_map(|id| self.resources.get(id))
                    .filter_map(pick)
                    .cloned()
                    .collect()
            }
            Selector::Stack(stack) => self
                .resources
                .values()
                .filter(|r| r.stack() == Some(stack.as_str()) && self.visible(r.id(), now))
                .filter_map(pick)
                .cloned()
                .collect(),
        }
    }

    // ---- VPC ----

    fn create_vpc(&mut self, cat: &Catalog, spec: &VpcSpec, now: Duration) -> ProviderResult<VpcObserved> {
        Self::check_region(cat, &spec.region)?;
        Self::check_name(cat, "VPC", &spec.name)?;
        let cidr = parse_cidr("VPC CIDR", &spec.cidr)?;
        if !(8..=28).contains(&cidr.prefix()) {
            return Err(invalid(format!("VPC block {cidr} must have a prefix between /8 and /28")));
        }
        let obs = VpcObserved {
            id: self.next_id("vpc"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            cidr: cidr.to_string(),
            tags: spec.tags.clone(),
        };
        self.insert(SimResource::Vpc(obs.clone()), now);
        Ok(obs)
    }

    fn update_vpc(&mut self, cat: &Catalog, id: &str, spec: &VpcSpec) -> ProviderResult<VpcObserved> {
        let cur = self.vpc(id).ok_or_else(|| not_found("VPC", id))?;
        immutable("VPC", id, "region", &cur.region, &spec.region)?;
        immutable("VPC", id, "cidr", &cur.cidr, &spec.cidr)?;
        Self::check_name(cat, "VPC", &spec.name)?;
        let mut obs = cur.clone();
        obs.name = spec.name.clone();
        obs.tags = spec.tags.clone();
        self.resources.insert(id.to_string(), SimResource::Vpc(obs.clone()));
        Ok(obs)
    }

    fn delete_vpc(&mut self, id: &str) -> ProviderResult<()> {
        self.vpc(id).ok_or_else(|| not_found("VPC", id))?;
        let mut deps: Vec<String> =
            self.subnets().filter(|s| s.vpc_id == id).map(|s| format!("subnet {}", s.id)).collect();
        deps.extend(self.firewalls().filter(|f| f.vpc_id == id).map(|f| format!("firewall {}", f.id)));
        if !deps.is_empty() {
            return Err(conflict(format!(
                "VPC `{id}` has dependencies and cannot be deleted: {}; delete them first",
                deps.join(", ")
            )));
        }
        self.remove(id);
        Ok(())
    }

    // ---- subnet ----

    fn create_subnet(&mut self, cat: &Catalog, spec: &SubnetSpec, now: Duration) -> ProviderResult<SubnetObserved> {
        Self::check_region(cat, &spec.region)?;
        Self::check_name(cat, "subnet", &spec.name)?;
        let zone_name = zone_name(&spec.region, spec.zone).ok_or_else(|| {
            invalid(format!(
                "zone index {} does not exist: region `{}` has {} zones; use an index below {}",
                spec.zone,
                spec.region,
                ZONE_LETTERS.len(),
                ZONE_LETTERS.len()
            ))
        })?;
        let cidr = parse_cidr("subnet CIDR", &spec.cidr)?;
        let vpc = self.ref_vpc(&spec.vpc_id, &spec.region, now)?;
        let vpc_cidr = parse_cidr("VPC CIDR", &vpc.cidr)?;
        if !vpc_cidr.contains(&cidr) {
            return Err(invalid(format!(
                "subnet block {cidr} is outside the block {vpc_cidr} of VPC `{}`; pick a block inside it",
                spec.vpc_id
            )));
        }
        for other in self.subnets().filter(|s| s.vpc_id == spec.vpc_id) {
            if parse_cidr("subnet CIDR", &other.cidr)?.overlaps(&cidr) {
                return Err(conflict(format!(
                    "subnet block {cidr} overlaps {} of subnet `{}` in VPC `{}`; pick a free block",
                    other.cidr, other.id, spec.vpc_id
                )));
            }
        }
        let obs = SubnetObserved {
            id: self.next_id("subnet"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            vpc_id: spec.vpc_id.clone(),
            cidr: cidr.to_string(),
            zone: spec.zone,
            zone_name,
            public: spec.public,
            tags: spec.tags.clone(),
        };
        self.insert(SimResource::Subnet(obs.clone()), now);
        Ok(obs)
    }

    fn update_subnet(&mut self, cat: &Catalog, id: &str, spec: &SubnetSpec) -> ProviderResult<SubnetObserved> {
        let cur = self.subnet(id).ok_or_else(|| not_found("subnet", id))?;
        immutable("subnet", id, "region", &cur.region, &spec.region)?;
        immutable("subnet", id, "vpc_id", &cur.vpc_id, &spec.vpc_id)?;
        immutable("subnet", id, "cidr", &cur.cidr, &spec.cidr)?;
        immutable("subnet", id, "zone", &cur.zone, &spec.zone)?;
        Self::check_name(cat, "subnet", &spec.name)?;
        let mut obs = cur.clone();
        obs.name = spec.name.clone();
        obs.public = spec.public;
        obs.tags = spec.tags.clone();
        self.resources.insert(id.to_string(), SimResource::Subnet(obs.clone()));
        Ok(obs)
    }

    fn delete_subnet(&mut self, id: &str) -> ProviderResult<()> {
        self.subnet(id).ok_or_else(|| not_found("subnet", id))?;
        let mut deps: Vec<String> = self.vms().filter(|v| v.subnet_id == id).map(|v| format!("VM {}", v.id)).collect();
        deps.extend(
            self.databases().filter(|d| d.subnet_ids.iter().any(|s| s == id)).map(|d| format!("database {}", d.id)),
        );
        if !deps.is_empty() {
            return Err(conflict(format!(
                "subnet `{id}` is in use and cannot be deleted: {}; delete them first",
                deps.join(", ")
            )));
        }
        self.remove(id);
        Ok(())
    }

    // ---- firewall ----

    fn create_firewall(
        &mut self,
        cat: &Catalog,
        spec: &FirewallSpec,
        now: Duration,
    ) -> ProviderResult<FirewallObserved> {
        Self::check_region(cat, &spec.region)?;
        Self::check_name(cat, "firewall", &spec.name)?;
        self.ref_vpc(&spec.vpc_id, &spec.region, now)?;
        if let Some(other) = self.firewalls().find(|f| f.vpc_id == spec.vpc_id && f.name == spec.name) {
            return Err(provider_error(
                ErrorKind::AlreadyExists,
                format!(
                    "a firewall named `{}` already exists in VPC `{}` (`{}`); pick another name or adopt it",
                    spec.name, spec.vpc_id, other.id
                ),
            ));
        }
        self.check_rules(None, &spec.vpc_id, &spec.region, &spec.ingress, now)?;
        self.check_rules(None, &spec.vpc_id, &spec.region, &spec.egress, now)?;
        let obs = FirewallObserved {
            id: self.next_id("fw"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            vpc_id: spec.vpc_id.clone(),
            ingress: sorted_rules(&spec.ingress),
            egress: sorted_rules(&spec.egress),
            tags: spec.tags.clone(),
        };
        self.insert(SimResource::Firewall(obs.clone()), now);
        Ok(obs)
    }

    fn update_firewall(&mut self, id: &str, spec: &FirewallSpec, now: Duration) -> ProviderResult<FirewallObserved> {
        let cur = self.firewall(id).ok_or_else(|| not_found("firewall", id))?;
        immutable("firewall", id, "region", &cur.region, &spec.region)?;
        immutable("firewall", id, "vpc_id", &cur.vpc_id, &spec.vpc_id)?;
        immutable("firewall", id, "name", &cur.name, &spec.name)?;
        let mut obs = cur.clone();
        self.check_rules(Some(id), &obs.vpc_id, &obs.region, &spec.ingress, now)?;
        self.check_rules(Some(id), &obs.vpc_id, &obs.region, &spec.egress, now)?;
        obs.ingress = sorted_rules(&spec.ingress);
        obs.egress = sorted_rules(&spec.egress);
        obs.tags = spec.tags.clone();
        self.resources.insert(id.to_string(), SimResource::Firewall(obs.clone()));
        Ok(obs)
    }

    fn delete_firewall(&mut self, id: &str) -> ProviderResult<()> {
        self.firewall(id).ok_or_else(|| not_found("firewall", id))?;
        let uses = |ids: &[String]| ids.iter().any(|f| f == id);
        let mut deps: Vec<String> =
            self.vms().filter(|v| uses(&v.firewall_ids)).map(|v| format!("attached to VM {}", v.id)).collect();
        deps.extend(
            self.databases().filter(|d| uses(&d.firewall_ids)).map(|d| format!("attached to database {}", d.id)),
        );
        let peer = RuleSource::Firewall(id.to_string());
        deps.extend(
            self.firewalls()
                .filter(|f| f.id != id && f.ingress.iter().chain(&f.egress).any(|r| r.peer == peer))
                .map(|f| format!("referenced by a rule of firewall {}", f.id)),
        );
        if !deps.is_empty() {
            return Err(conflict(format!(
                "firewall `{id}` is in use and cannot be deleted: {}; detach or delete those first",
                deps.join(", ")
            )));
        }
        self.remove(id);
        Ok(())
    }

    // ---- VM ----

    fn private_ip(&self, subnet: &SubnetObserved) -> ProviderResult<String> {
        let cidr = parse_cidr("subnet CIDR", &subnet.cidr)?;
        let used: BTreeSet<&str> =
            self.vms().filter(|v| v.subnet_id == subnet.id).map(|v| v.private_ip.as_str()).collect();
        let size: u64 = 1 << (32 - u32::from(cidr.prefix()));
        // Like AWS: the first four addresses and the last one are reserved.
        let mut index: u32 = 4;
        while u64::from(index) + 1 < size {
            if let Some(ip) = cidr.host(index) {
                let ip = ip.to_string();
                if !used.contains(ip.as_str()) {
                    return Ok(ip);
                }
            }
            index += 1;
        }
        Err(provider_error(
            ErrorKind::QuotaExceeded,
            format!("subnet `{}` ({}) has no free address left; use a larger block", subnet.id, subnet.cidr),
        ))
    }

    fn public_ip(&self) -> ProviderResult<String> {
        let used: BTreeSet<&str> = self.vms().map(|v| v.public_ip.as_str()).filter(|s| !s.is_empty()).collect();
        for [a, b, c] in [[203, 0, 113], [198, 51, 100]] {
            for d in 1..=254 {
                let ip = Ipv4Addr::new(a, b, c, d).to_string();
                if !used.contains(ip.as_str()) {
                    return Ok(ip);
                }
            }
        }
        Err(provider_error(
            ErrorKind::QuotaExceeded,
            "the simulated cloud has no public address left; release some or create VMs without one",
        ))
    }

    fn create_vm(&mut self, cat: &Catalog, spec: &VmSpec, now: Duration) -> ProviderResult<VmObserved> {
        Self::check_region(cat, &spec.region)?;
        Self::check_name(cat, "VM", &spec.name)?;
        check_vm_size(cat, &spec.size)?;
        if cat.image(&spec.image).is_none() {
            let offered: Vec<&str> = cat.images.iter().map(|o| o.slug.as_str()).collect();
            return Err(invalid(format!("image `{}` is not offered; use one of: {}", spec.image, offered.join(", "))));
        }
        let subnet = self.ref_subnet(&spec.subnet_id, &spec.region, now)?;
        self.check_attached_firewalls(&spec.firewall_ids, &subnet.vpc_id, &spec.region, now)?;
        let private_ip = self.private_ip(subnet)?;
        let public_ip = if spec.assign_public_ip { self.public_ip()? } else { String::new() };
        let obs = VmObserved {
            id: self.next_id("vm"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            image: spec.image.clone(),
            size: spec.size.clone(),
            subnet_id: spec.subnet_id.clone(),
            firewall_ids: spec.firewall_ids.clone(),
            assign_public_ip: spec.assign_public_ip,
            public_ip,
            private_ip,
            status: self.boot_status.get(&spec.image).cloned().unwrap_or_else(|| "running".into()),
            tags: spec.tags.clone(),
        };
        self.insert(SimResource::Vm(obs.clone()), now);
        Ok(obs)
    }

    fn update_vm(&mut self, cat: &Catalog, id: &str, spec: &VmSpec, now: Duration) -> ProviderResult<VmObserved> {
        let cur = self.vm(id).ok_or_else(|| not_found("VM", id))?;
        immutable("VM", id, "region", &cur.region, &spec.region)?;
        immutable("VM", id, "image", &cur.image, &spec.image)?;
        immutable("VM", id, "subnet_id", &cur.subnet_id, &spec.subnet_id)?;
        immutable("VM", id, "assign_public_ip", &cur.assign_public_ip, &spec.assign_public_ip)?;
        Self::check_name(cat, "VM", &spec.name)?;
        check_vm_size(cat, &spec.size)?;
        let mut obs = cur.clone();
        let vpc_id = self.subnet(&obs.subnet_id).map(|s| s.vpc_id.clone()).unwrap_or_default();
        self.check_attached_firewalls(&spec.firewall_ids, &vpc_id, &obs.region, now)?;
        obs.name = spec.name.clone();
        obs.size = spec.size.clone();
        obs.firewall_ids = spec.firewall_ids.clone();
        obs.tags = spec.tags.clone();
        self.resources.insert(id.to_string(), SimResource::Vm(obs.clone()));
        Ok(obs)
    }

    fn delete_vm(&mut self, id: &str) -> ProviderResult<()> {
        self.vm(id).ok_or_else(|| not_found("VM", id))?;
        self.remove(id);
        Ok(())
    }

    // ---- database ----

    fn create_database(
        &mut self,
        cat: &Catalog,
        spec: &DatabaseSpec,
        now: Duration,
    ) -> ProviderResult<DatabaseObserved> {
        Self::check_region(cat, &spec.region)?;
        if spec.name.is_empty() {
            return Err(invalid("a database needs a name"));
        }
        Self::check_name(cat, "database", &spec.name)?;
        check_engine_version(cat, spec.engine, &spec.version)?;
        check_db_size(cat, &spec.size)?;
        let Some(first) = spec.subnet_ids.first() else {
            return Err(invalid(format!("database `{}` needs at least one subnet", spec.name)));
        };
        let vpc_id = self.ref_subnet(first, &spec.region, now)?.vpc_id.clone();
        for id in &spec.subnet_ids {
            let s = self.ref_subnet(id, &spec.region, now)?;
            if s.vpc_id != vpc_id {
                return Err(invalid(format!(
                    "database `{}`: subnets `{first}` and `{id}` belong to different VPCs; use subnets of one VPC",
                    spec.name
                )));
            }
        }
        self.check_attached_firewalls(&spec.firewall_ids, &vpc_id, &spec.region, now)?;
        if let Some(other) = self.databases().find(|d| d.region == spec.region && d.name == spec.name) {
            return Err(provider_error(
                ErrorKind::AlreadyExists,
                format!(
                    "a database named `{}` already exists in region `{}` (`{}`); pick another name or adopt it",
                    spec.name, spec.region, other.id
                ),
            ));
        }
        // The password is accepted and dropped: the simulated cloud never stores or prints it.
        let obs = DatabaseObserved {
            id: self.next_id("db"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            engine: spec.engine,
            version: spec.version.clone(),
            size: spec.size.clone(),
            storage_gb: spec.storage_gb,
            subnet_ids: spec.subnet_ids.clone(),
            firewall_ids: spec.firewall_ids.clone(),
            backup_retention_days: spec.backup_retention_days,
            encrypted: spec.encrypted,
            high_availability: spec.high_availability,
            deletion_protection: spec.deletion_protection,
            host: format!("{}.{}.db.sim.internal", spec.name, spec.region),
            port: spec.engine.default_port().to_string(),
            status: "available".into(),
            tags: spec.tags.clone(),
        };
        self.insert(SimResource::Database(obs.clone()), now);
        Ok(obs)
    }

    fn update_database(
        &mut self,
        cat: &Catalog,
        id: &str,
        spec: &DatabaseSpec,
        now: Duration,
    ) -> ProviderResult<DatabaseObserved> {
        let cur = self.database(id).ok_or_else(|| not_found("database", id))?;
        immutable("database", id, "region", &cur.region, &spec.region)?;
        immutable("database", id, "name", &cur.name, &spec.name)?;
        immutable("database", id, "engine", &cur.engine, &spec.engine)?;
        immutable("database", id, "encrypted", &cur.encrypted, &spec.encrypted)?;
        if !same_set(&cur.subnet_ids, &spec.subnet_ids) {
            immutable("database", id, "subnet_ids", &cur.subnet_ids, &spec.subnet_ids)?;
        }
        check_engine_version(cat, spec.engine, &spec.version)?;
        let versions = cat.engine_versions(spec.engine);
        let rank = |v: &str| versions.iter().position(|x| x == v);
        if let (Some(old), Some(new)) = (rank(&cur.version), rank(&spec.version)) {
            if new < old {
                return Err(invalid(format!(
                    "database `{id}`: cannot downgrade {} from {} to {}; restore a backup into a new database instead",
                    spec.engine.as_str(),
                    cur.version,
                    spec.version
                )));
            }
        }
        check_db_size(cat, &spec.size)?;
        if spec.storage_gb < cur.storage_gb {
            return Err(invalid(format!(
                "database `{id}`: storage cannot shrink ({} GiB -> {} GiB); keep {} GiB or more",
                cur.storage_gb, spec.storage_gb, cur.storage_gb
            )));
        }
        let mut obs = cur.clone();
        let vpc_id = obs.subnet_ids.first().and_then(|s| self.subnet(s)).map(|s| s.vpc_id.clone()).unwrap_or_default();
        self.check_attached_firewalls(&spec.firewall_ids, &vpc_id, &obs.region, now)?;
        obs.version = spec.version.clone();
        obs.size = spec.size.clone();
        obs.storage_gb = spec.storage_gb;
        obs.firewall_ids = spec.firewall_ids.clone();
        obs.backup_retention_days = spec.backup_retention_days;
        obs.high_availability = spec.high_availability;
        obs.deletion_protection = spec.deletion_protection;
        obs.tags = spec.tags.clone();
        self.resources.insert(id.to_string(), SimResource::Database(obs.clone()));
        Ok(obs)
    }

    fn delete_database(&mut self, id: &str) -> ProviderResult<()> {
        let db = self.database(id).ok_or_else(|| not_found("database", id))?;
        if db.deletion_protection {
            return Err(conflict(format!(
                "database `{id}` cannot be deleted: deletion protection is on; turn it off with an update first"
            )));
        }
        self.remove(id);
        Ok(())
    }
}

fn check_vm_size(cat: &Catalog, size: &str) -> ProviderResult<()> {
    if cat.vm_size(size).is_some() {
        return Ok(());
    }
    let offered: Vec<&str> = cat.vm_sizes.iter().map(|o| o.slug.as_str()).collect();
    Err(invalid(format!("VM size `{size}` is not offered; use one of: {}", offered.join(", "))))
}

fn check_db_size(cat: &Catalog, size: &str) -> ProviderResult<()> {
    if cat.db_size(size).is_some() {
        return Ok(());
    }
    let offered: Vec<&str> = cat.db_sizes.iter().map(|o| o.slug.as_str()).collect();
    Err(invalid(format!("database size `{size}` is not offered; use one of: {}", offered.join(", "))))
}

fn check_engine_version(cat: &Catalog, engine: Engine, version: &str) -> ProviderResult<()> {
    let versions = cat.engine_versions(engine);
    if versions.iter().any(|v| v == version) {
        return Ok(());
    }
    Err(invalid(format!("{} version `{version}` is not offered; use one of: {}", engine.as_str(), versions.join(", "))))
}

fn pick_vpc(r: &SimResource) -> Option<&VpcObserved> {
    match r {
        SimResource::Vpc(v) => Some(v),
        _ => None,
    }
}

fn pick_subnet(r: &SimResource) -> Option<&SubnetObserved> {
    match r {
        SimResource::Subnet(v) => Some(v),
        _ => None,
    }
}

fn pick_firewall(r: &SimResource) -> Option<&FirewallObserved> {
    match r {
        SimResource::Firewall(v) => Some(v),
        _ => None,
    }
}

fn pick_vm(r: &SimResource) -> Option<&VmObserved> {
    match r {
        SimResource::Vm(v) => Some(v),
        _ => None,
    }
}

fn pick_database(r: &SimResource) -> Option<&DatabaseObserved> {
    match r {
        SimResource::Database(v) => Some(v),
        _ => None,
    }
}

/// The numeric part of a simulated id (`vpc-0000000a` -> 10).
fn id_number(id: &str) -> Option<u64> {
    id.rsplit_once('-').and_then(|(_, n)| u64::from_str_radix(n, 16).ok())
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
                for r in file.resources {
                    let id = r.id().to_string();
                    if inner.resources.contains_key(&id) {
                        return Err(corrupt(format!("resource id `{id}` appears twice")));
                    }
                    // Never hand out an id that is already taken, even if the counter was edited.
                    counter = counter.max(id_number(&id).unwrap_or(0));
                    inner.resources.insert(id, r);
                }
                inner.counter = counter;
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
        let versions = |list: &[&str]| list.iter().map(|v| v.to_string()).collect::<Vec<_>>();
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
                EngineOffer { engine: Engine::Postgres, versions: versions(&["13", "14", "15", "16", "17"]) },
                EngineOffer { engine: Engine::Mysql, versions: versions(&["8.0", "8.4"]) },
                EngineOffer { engine: Engine::Redis, versions: versions(&["6", "7"]) },
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
        Provider::new(SIMULATED, Arc::clone(self), limits)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
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
    async fn call<T, F>(&self, cx: &OpContext, op: &'static str, mutating: bool, f: F) -> ProviderResult<T>
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

#[async_trait::async_trait]
impl Network for SimCloud {
    async fn create_vpc(&self, cx: &OpContext, spec: &VpcSpec) -> ProviderResult<VpcObserved> {
        let cat = &self.catalog;
        self.call(cx, "create_vpc", true, |s, now| s.create_vpc(cat, spec, now)).await
    }

    async fn read_vpcs(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<VpcObserved>> {
        self.call(cx, "read_vpcs", false, |s, now| Ok(s.read(sel, now, pick_vpc))).await
    }

    async fn update_vpc(&self, cx: &OpContext, id: &str, spec: &VpcSpec) -> ProviderResult<VpcObserved> {
        let cat = &self.catalog;
        self.call(cx, "update_vpc", true, |s, _| s.update_vpc(cat, id, spec)).await
    }

    async fn delete_vpc(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.call(cx, "delete_vpc", true, |s, _| s.delete_vpc(id)).await
    }

    async fn create_subnet(&self, cx: &OpContext, spec: &SubnetSpec) -> ProviderResult<SubnetObserved> {
        let cat = &self.catalog;
        self.call(cx, "create_subnet", true, |s, now| s.create_subnet(cat, spec, now)).await
    }

    async fn read_subnets(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<SubnetObserved>> {
        self.call(cx, "read_subnets", false, |s, now| Ok(s.read(sel, now, pick_subnet))).await
    }

    async fn update_subnet(&self, cx: &OpContext, id: &str, spec: &SubnetSpec) -> ProviderResult<SubnetObserved> {
        let cat = &self.catalog;
        self.call(cx, "update_subnet", true, |s, _| s.update_subnet(cat, id, spec)).await
    }

    async fn delete_subnet(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.call(cx, "delete_subnet", true, |s, _| s.delete_subnet(id)).await
    }

    async fn create_firewall(&self, cx: &OpContext, spec: &FirewallSpec) -> ProviderResult<FirewallObserved> {
        let cat = &self.catalog;
        self.call(cx, "create_firewall", true, |s, now| s.create_firewall(cat, spec, now)).await
    }

    async fn read_firewalls(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<FirewallObserved>> {
        self.call(cx, "read_firewalls", false, |s, now| Ok(s.read(sel, now, pick_firewall))).await
    }

    async fn update_firewall(&self, cx: &OpContext, id: &str, spec: &FirewallSpec) -> ProviderResult<FirewallObserved> {
        self.call(cx, "update_firewall", true, |s, now| s.update_firewall(id, spec, now)).await
    }

    async fn delete_firewall(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.call(cx, "delete_firewall", true, |s, _| s.delete_firewall(id)).await
    }
}

#[async_trait::async_trait]
impl Compute for SimCloud {
    async fn create_vm(&self, cx: &OpContext, spec: &VmSpec) -> ProviderResult<VmObserved> {
        let cat = &self.catalog;
        self.call(cx, "create_vm", true, |s, now| s.create_vm(cat, spec, now)).await
    }

    async fn read_vms(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<VmObserved>> {
        self.call(cx, "read_vms", false, |s, now| Ok(s.read(sel, now, pick_vm))).await
    }

    async fn update_vm(&self, cx: &OpContext, id: &str, spec: &VmSpec) -> ProviderResult<VmObserved> {
        let cat = &self.catalog;
        self.call(cx, "update_vm", true, |s, now| s.update_vm(cat, id, spec, now)).await
    }

    async fn delete_vm(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.call(cx, "delete_vm", true, |s, _| s.delete_vm(id)).await
    }
}

#[async_trait::async_trait]
impl Database for SimCloud {
    async fn create_database(&self, cx: &OpContext, spec: &DatabaseSpec) -> ProviderResult<DatabaseObserved> {
        let cat = &self.catalog;
        self.call(cx, "create_database", true, |s, now| s.create_database(cat, spec, now)).await
    }

    async fn read_databases(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DatabaseObserved>> {
        self.call(cx, "read_databases", false, |s, now| Ok(s.read(sel, now, pick_database))).await
    }

    async fn update_database(&self, cx: &OpContext, id: &str, spec: &DatabaseSpec) -> ProviderResult<DatabaseObserved> {
        let cat = &self.catalog;
        self.call(cx, "update_database", true, |s, now| s.update_database(cat, id, spec, now)).await
    }

    async fn delete_database(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.call(cx, "delete_database", true, |s, _| s.delete_database(id)).await
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
        assert_eq!(c.engine_versions(Engine::Redis), ["6", "7"]);
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
