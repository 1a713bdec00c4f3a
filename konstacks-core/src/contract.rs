//! The provider contract suite: one set of behavioural checks that every backend (the simulated
//! cloud, AWS on moto, the DigitalOcean fake, ...) is run through, so that the simulation stays
//! honest and every provider gives the engine the same guarantees.
//!
//! Each suite creates what it needs, tagged `konstacks:stack = ContractOptions::stack`, checks
//! behaviour a real cloud has (create returns the spec's fields, batched reads by id and by stack
//! tag, updates of mutable fields, dependency violations, deletes), and deletes everything it
//! created, in reverse order, whether the checks passed or not. Reads are retried for a bounded
//! time on the context's clock, so eventually consistent backends pass.
//!
//! It only calls the provider traits: it never touches Konstacks' state or the engine.

use std::fmt::Debug;
use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::cidr::Cidr;
use crate::clock::OpContext;
use crate::error::{ErrorKind, ProviderError};
use crate::model::{Kind, Protocol};
use crate::provider::{Offer, Provider, ProviderResult};
use crate::secret::Secret;
use crate::spec::{
    DatabaseObserved, DatabaseSpec, FirewallObserved, FirewallSpec, RuleSource, RuleSpec, Selector, SubnetObserved,
    SubnetSpec, Tags, VmObserved, VmSpec, VpcObserved, VpcSpec, TAG_NAME, TAG_PATH, TAG_STACK,
};

/// How long (on the context's clock) a read is retried before a check gives up.
const PATIENCE: Duration = Duration::from_secs(30);
/// First pause between retries; doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(4);
/// Tag the update checks add.
const CONTRACT_TAG: &str = "konstacks:contract";

/// Errors after which a create or update is retried: nothing was changed, and the cause (a
/// reference not visible yet, throttling) goes away by itself.
const RETRY_CREATE: &[ErrorKind] = &[ErrorKind::NotFound, ErrorKind::Throttled];
/// Updates are idempotent, so transient failures are retried too.
const RETRY_UPDATE: &[ErrorKind] = &[ErrorKind::NotFound, ErrorKind::Throttled, ErrorKind::Transient];
/// Deletes wait for dependents that are still going away (a VM that is terminating).
const RETRY_DELETE: &[ErrorKind] = &[ErrorKind::Conflict, ErrorKind::Throttled, ErrorKind::Transient];
/// Calls whose own answer is under test are retried only when the API pushed back.
const RETRY_PUSHBACK: &[ErrorKind] = &[ErrorKind::Throttled, ErrorKind::Transient];

/// Where and under which names the contract suite creates its resources.
#[derive(Debug, Clone)]
pub struct ContractOptions {
    /// The provider region to run in (must be in the provider's catalogue).
    pub region: String,
    /// Value of the `konstacks:stack` tag and prefix of every name; use a fresh one per run
    /// against a shared account so leftovers of an interrupted run cannot collide.
    pub stack: String,
    /// Block of the test VPC; it must be a /26 or larger (subnets are carved from it).
    pub vpc_cidr: String,
}

impl ContractOptions {
    /// Options for `region`, with stack `konstacks-contract` and VPC block `10.77.0.0/16`.
    pub fn new(region: impl Into<String>) -> Self {
        Self { region: region.into(), stack: "konstacks-contract".into(), vpc_cidr: "10.77.0.0/16".into() }
    }
}

/// A contract check that a provider failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("contract check `{check}` failed: {detail}")]
pub struct ContractFailure {
    /// The check, as `suite.check` (e.g. `network.create_subnet`).
    pub check: String,
    /// What was expected and what the provider did.
    pub detail: String,
}

fn failure(check: &str, detail: impl Into<String>) -> ContractFailure {
    ContractFailure { check: check.to_string(), detail: detail.into() }
}

fn ensure(ok: bool, check: &str, detail: impl FnOnce() -> String) -> Result<(), ContractFailure> {
    if ok {
        Ok(())
    } else {
        Err(failure(check, detail()))
    }
}

fn call_failed(check: &str, call: &str, e: &ProviderError) -> ContractFailure {
    failure(check, format!("`{call}` failed with {}: {}", e.kind(), e.full_chain()))
}

fn field<T: PartialEq + Debug + ?Sized>(check: &str, name: &str, want: &T, got: &T) -> Result<(), ContractFailure> {
    ensure(want == got, check, || format!("field `{name}` is {got:?}, the spec asked for {want:?}"))
}

fn same_set(check: &str, name: &str, want: &[String], got: &[String]) -> Result<(), ContractFailure> {
    let mut w = want.to_vec();
    let mut g = got.to_vec();
    w.sort();
    g.sort();
    field(check, name, &w, &g)
}

fn has_tags(want: &Tags, got: &Tags) -> bool {
    want.iter().all(|(k, v)| got.get(k) == Some(v))
}

fn tags(check: &str, want: &Tags, got: &Tags) -> Result<(), ContractFailure> {
    ensure(has_tags(want, got), check, || format!("tags are {got:?}, they must include {want:?}"))
}

/// Whether two names denote the same offer (providers may answer with the native name).
fn same_offer(offers: &[Offer], want: &str, got: &str) -> bool {
    let index = |s: &str| offers.iter().position(|o| o.slug == s || o.native == s);
    want == got || (index(want).is_some() && index(want) == index(got))
}

fn offer(check: &str, name: &str, offers: &[Offer], want: &str, got: &str) -> Result<(), ContractFailure> {
    ensure(same_offer(offers, want, got), check, || format!("field `{name}` is {got:?}, the spec asked for {want:?}"))
}

/// An id of the same shape as `id` that almost certainly does not exist: its last four
/// characters are replaced (digits by 9, hex letters by f, other letters by z).
fn unknown_id(id: &str) -> String {
    let swap = |c: char, digit: char, hex: char, letter: char| {
        if c.is_ascii_digit() {
            digit
        } else if c.is_ascii_hexdigit() {
            hex
        } else if c.is_ascii_alphabetic() {
            letter
        } else {
            c
        }
    };
    let chars: Vec<char> = id.chars().collect();
    let start = chars.len().saturating_sub(4);
    let with = |digit, hex, letter| -> String {
        chars.iter().enumerate().map(|(i, c)| if i < start { *c } else { swap(*c, digit, hex, letter) }).collect()
    };
    let first = with('9', 'f', 'z');
    if first != id {
        first
    } else {
        with('8', 'e', 'y')
    }
}

/// The `index`-th block of a /24 (or smaller when the VPC is small) inside `parent`.
fn child_block(parent: &str, index: u32) -> Result<String, String> {
    let c: Cidr = parent.parse().map_err(|e| format!("vpc_cidr: {e}"))?;
    if c.prefix() > 26 {
        return Err(format!("vpc_cidr {parent} is too small: the contract suite needs a /26 or larger"));
    }
    let prefix = (c.prefix() + 8).min(28);
    let size = 1u32 << (32 - u32::from(prefix));
    let addr =
        u32::from(c.network()).checked_add(index * size).ok_or_else(|| format!("vpc_cidr {parent} is too small"))?;
    Ok(format!("{}/{prefix}", Ipv4Addr::from(addr)))
}

fn rule(protocol: Protocol, port: u16, peer: RuleSource) -> RuleSpec {
    RuleSpec { protocol, from_port: port, to_port: port, peer }
}

fn anywhere() -> RuleSource {
    RuleSource::Cidr("0.0.0.0/0".into())
}

fn all_out() -> RuleSpec {
    rule(Protocol::All, 0, anywhere())
}

/// Retry `f` while it fails with one of `retry_on`, for at most [`PATIENCE`] of clock time.
async fn retry<T, F, Fut>(cx: &OpContext, retry_on: &[ErrorKind], mut f: F) -> ProviderResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ProviderResult<T>>,
{
    let start = cx.clock.now();
    let mut pause = FIRST_PAUSE;
    loop {
        match f().await {
            Err(e) if retry_on.contains(&e.kind()) && cx.clock.now().saturating_sub(start) + pause <= PATIENCE => {
                cx.clock.sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            other => return other,
        }
    }
}

/// Read until `ok` holds, for at most [`PATIENCE`] of clock time. NotFound and retryable errors
/// are treated as "not yet".
async fn eventually<T, F, Fut, P>(
    cx: &OpContext,
    check: &str,
    what: &str,
    mut read: F,
    mut ok: P,
) -> Result<Vec<T>, ContractFailure>
where
    T: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = ProviderResult<Vec<T>>>,
    P: FnMut(&[T]) -> bool,
{
    let start = cx.clock.now();
    let mut pause = FIRST_PAUSE;
    loop {
        let last = match read().await {
            Ok(v) if ok(&v) => return Ok(v),
            Ok(v) => format!("last answer: {v:?}"),
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind().is_retryable() => {
                format!("last error: {} ({})", e.full_chain(), e.kind())
            }
            Err(e) => return Err(failure(check, format!("{what}: {} ({})", e.full_chain(), e.kind()))),
        };
        if cx.clock.now().saturating_sub(start) + pause > PATIENCE {
            return Err(failure(check, format!("{what}: still not as expected after {}s; {last}", PATIENCE.as_secs())));
        }
        cx.clock.sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// What the suite needs to know of every observed kind.
trait Observed: Debug {
    fn id(&self) -> &str;
    fn tags(&self) -> &Tags;
}

macro_rules! observed {
    ($($t:ty),*) => {$(
        impl Observed for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn tags(&self) -> &Tags {
                &self.tags
            }
        }
    )*};
}
observed!(VpcObserved, SubnetObserved, FirewallObserved, VmObserved, DatabaseObserved);

/// One suite's run: what it created, to clean up in reverse order.
struct Run<'a> {
    p: &'a Provider,
    cx: &'a OpContext,
    o: &'a ContractOptions,
    suite: &'static str,
    created: Vec<(Kind, String)>,
}

impl<'a> Run<'a> {
    fn new(p: &'a Provider, cx: &'a OpContext, o: &'a ContractOptions, suite: &'static str) -> Self {
        Self { p, cx, o, suite, created: Vec::new() }
    }

    fn name(&self, leaf: &str) -> String {
        format!("{}-{}-{leaf}", self.o.stack, self.suite)
    }

    fn tags(&self, leaf: &str) -> Tags {
        Tags::from([
            (TAG_STACK.to_string(), self.o.stack.clone()),
            (TAG_PATH.to_string(), format!("contract/{}/{leaf}", self.suite)),
            (TAG_NAME.to_string(), self.name(leaf)),
        ])
    }

    fn check(&self, name: &str) -> String {
        format!("{}.{name}", self.suite)
    }

    fn vpc_spec(&self) -> VpcSpec {
        VpcSpec {
            name: self.name("vpc"),
            region: self.o.region.clone(),
            cidr: self.o.vpc_cidr.clone(),
            tags: self.tags("vpc"),
        }
    }

    fn subnet_spec(
        &self,
        leaf: &str,
        vpc_id: &str,
        index: u32,
        zone: u8,
        public: bool,
    ) -> Result<SubnetSpec, ContractFailure> {
        let cidr = child_block(&self.o.vpc_cidr, index).map_err(|e| failure(&self.check("setup"), e))?;
        Ok(SubnetSpec {
            name: self.name(leaf),
            region: self.o.region.clone(),
            vpc_id: vpc_id.to_string(),
            cidr,
            zone,
            public,
            tags: self.tags(leaf),
        })
    }

    fn firewall_spec(&self, leaf: &str, vpc_id: &str, mut ingress: Vec<RuleSpec>) -> FirewallSpec {
        ingress.sort();
        FirewallSpec {
            name: self.name(leaf),
            region: self.o.region.clone(),
            vpc_id: vpc_id.to_string(),
            ingress,
            egress: vec![all_out()],
            tags: self.tags(leaf),
        }
    }

    /// Create, retrying while references are not visible yet, and remember it for cleanup.
    async fn create<T, F, Fut>(&mut self, kind: Kind, check: &str, f: F) -> Result<T, ContractFailure>
    where
        T: Observed,
        F: FnMut() -> Fut,
        Fut: Future<Output = ProviderResult<T>>,
    {
        let call = format!("create_{}", kind.as_str());
        let obs = retry(self.cx, RETRY_CREATE, f).await.map_err(|e| call_failed(check, &call, &e))?;
        ensure(!obs.id().is_empty(), check, || format!("`{call}` returned an empty id"))?;
        self.created.push((kind, obs.id().to_string()));
        Ok(obs)
    }

    async fn delete_raw(&self, kind: Kind, id: &str) -> ProviderResult<()> {
        let (p, cx) = (self.p, self.cx);
        match kind {
            Kind::Vpc => p.network.delete_vpc(cx, id).await,
            Kind::Subnet => p.network.delete_subnet(cx, id).await,
            Kind::Firewall => p.network.delete_firewall(cx, id).await,
            Kind::Vm => p.compute.delete_vm(cx, id).await,
            Kind::Database => p.database.delete_database(cx, id).await,
        }
    }

    /// Which of `ids` a batched read of `kind` returns.
    async fn present(&self, kind: Kind, ids: &[String]) -> ProviderResult<Vec<String>> {
        let (p, cx) = (self.p, self.cx);
        let sel = Selector::Ids(ids.to_vec());
        fn ids_of<T: Observed>(v: Vec<T>) -> Vec<String> {
            v.iter().map(|r| r.id().to_string()).collect()
        }
        Ok(match kind {
            Kind::Vpc => ids_of(p.network.read_vpcs(cx, &sel).await?),
            Kind::Subnet => ids_of(p.network.read_subnets(cx, &sel).await?),
            Kind::Firewall => ids_of(p.network.read_firewalls(cx, &sel).await?),
            Kind::Vm => ids_of(p.compute.read_vms(cx, &sel).await?),
            Kind::Database => ids_of(p.database.read_databases(cx, &sel).await?),
        })
    }

    /// Delete (waiting for dependents still going away), then check a read no longer shows it.
    async fn delete(&mut self, kind: Kind, id: &str) -> Result<(), ContractFailure> {
        let check = self.check(&format!("delete_{}", kind.as_str()));
        let call = format!("delete_{}", kind.as_str());
        match retry(self.cx, RETRY_DELETE, || self.delete_raw(kind, id)).await {
            Ok(()) => {}
            // A timed-out attempt may have deleted it already.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(call_failed(&check, &call, &e)),
        }
        self.created.retain(|(_, c)| c != id);
        let ids = [id.to_string()];
        let what = format!("reading the deleted {} `{id}`", kind.as_str());
        eventually(self.cx, &check, &what, || self.present(kind, &ids), |v| !v.iter().any(|r| r == id)).await?;
        Ok(())
    }

    /// Delete everything still tracked, newest first. Reports the first failure.
    async fn cleanup(&mut self) -> Result<(), ContractFailure> {
        let mut first = None;
        while let Some((kind, id)) = self.created.pop() {
            match retry(self.cx, RETRY_DELETE, || self.delete_raw(kind, &id)).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    if first.is_none() {
                        first = Some(failure(
                            &self.check("cleanup"),
                            format!(
                                "could not delete {} `{id}`: {} ({}); delete it by hand",
                                kind.as_str(),
                                e.full_chain(),
                                e.kind()
                            ),
                        ));
                    }
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Clean up, then report the checks' failure first, or else the cleanup's.
    async fn finish(mut self, result: Result<(), ContractFailure>) -> Result<(), ContractFailure> {
        let cleaned = self.cleanup().await;
        match (result, cleaned) {
            (Err(mut f), Err(c)) => {
                f.detail.push_str(&format!(" (cleanup also failed: {})", c.detail));
                Err(f)
            }
            (Err(f), Ok(())) => Err(f),
            (Ok(()), cleaned) => cleaned,
        }
    }

    /// Batched reads: by ids (with an unknown id that must be absent) and by stack tag.
    /// Returns what the read by ids answered for `id`.
    async fn check_reads<T, F, Fut>(&self, check: &str, id: &str, read: F) -> Result<T, ContractFailure>
    where
        T: Observed,
        F: Fn(Selector) -> Fut,
        Fut: Future<Output = ProviderResult<Vec<T>>>,
    {
        let unknown = unknown_id(id);
        let by_ids = Selector::Ids(vec![id.to_string(), unknown.clone()]);
        let what = format!("reading `{id}` and the unknown `{unknown}` by ids");
        let got =
            eventually(self.cx, check, &what, || read(by_ids.clone()), |v| v.iter().any(|r| r.id() == id)).await?;
        ensure(!got.iter().any(|r| r.id() == unknown), check, || {
            format!("a batched read returned the unknown id `{unknown}`: {got:?}")
        })?;
        ensure(got.iter().all(|r| r.id() == id), check, || {
            format!("a read by ids returned ids not asked for: {got:?}")
        })?;
        let by_stack = Selector::Stack(self.o.stack.clone());
        let what = format!("reading stack `{}` by tag", self.o.stack);
        let stack =
            eventually(self.cx, check, &what, || read(by_stack.clone()), |v| v.iter().any(|r| r.id() == id)).await?;
        ensure(stack.iter().all(|r| r.tags().get(TAG_STACK) == Some(&self.o.stack)), check, || {
            format!("a read by stack returned resources of other stacks: {stack:?}")
        })?;
        got.into_iter().find(|r| r.id() == id).ok_or_else(|| failure(check, format!("`{id}` vanished")))
    }
}

fn check_vpc(check: &str, want: &VpcSpec, got: &VpcObserved) -> Result<(), ContractFailure> {
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    field(check, "cidr", &want.cidr, &got.cidr)?;
    tags(check, &want.tags, &got.tags)
}

fn check_subnet(check: &str, want: &SubnetSpec, got: &SubnetObserved) -> Result<(), ContractFailure> {
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    field(check, "vpc_id", &want.vpc_id, &got.vpc_id)?;
    field(check, "cidr", &want.cidr, &got.cidr)?;
    field(check, "zone", &want.zone, &got.zone)?;
    field(check, "public", &want.public, &got.public)?;
    ensure(!got.zone_name.is_empty(), check, || "field `zone_name` is empty".into())?;
    tags(check, &want.tags, &got.tags)
}

fn check_firewall(check: &str, want: &FirewallSpec, got: &FirewallObserved) -> Result<(), ContractFailure> {
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    field(check, "vpc_id", &want.vpc_id, &got.vpc_id)?;
    let sorted = |v: &[RuleSpec]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    field(check, "ingress", &sorted(&want.ingress), &sorted(&got.ingress))?;
    field(check, "egress", &sorted(&want.egress), &sorted(&got.egress))?;
    tags(check, &want.tags, &got.tags)
}

fn check_vm(
    check: &str,
    p: &Provider,
    want: &VmSpec,
    got: &VmObserved,
    subnet: &SubnetObserved,
) -> Result<(), ContractFailure> {
    let cat = p.catalog();
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    offer(check, "image", &cat.images, &want.image, &got.image)?;
    offer(check, "size", &cat.vm_sizes, &want.size, &got.size)?;
    field(check, "subnet_id", &want.subnet_id, &got.subnet_id)?;
    same_set(check, "firewall_ids", &want.firewall_ids, &got.firewall_ids)?;
    field(check, "assign_public_ip", &want.assign_public_ip, &got.assign_public_ip)?;
    let private: Option<Ipv4Addr> = got.private_ip.parse().ok();
    let block: Option<Cidr> = subnet.cidr.parse().ok();
    let inside = match (private, block) {
        (Some(ip), Some(block)) => format!("{ip}/32").parse::<Cidr>().is_ok_and(|host| block.contains(&host)),
        _ => false,
    };
    ensure(inside, check, || {
        format!("private_ip `{}` is not an address of the subnet block {}", got.private_ip, subnet.cidr)
    })?;
    if want.assign_public_ip {
        ensure(got.public_ip.parse::<Ipv4Addr>().is_ok(), check, || {
            format!("public_ip `{}` is not an IPv4 address, though one was asked for", got.public_ip)
        })?;
    }
    ensure(!got.status.is_empty(), check, || "field `status` is empty".into())?;
    tags(check, &want.tags, &got.tags)
}

fn check_database(
    check: &str,
    p: &Provider,
    want: &DatabaseSpec,
    got: &DatabaseObserved,
) -> Result<(), ContractFailure> {
    let cat = p.catalog();
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    field(check, "engine", &want.engine, &got.engine)?;
    field(check, "version", &want.version, &got.version)?;
    offer(check, "size", &cat.db_sizes, &want.size, &got.size)?;
    field(check, "storage_gb", &want.storage_gb, &got.storage_gb)?;
    same_set(check, "subnet_ids", &want.subnet_ids, &got.subnet_ids)?;
    same_set(check, "firewall_ids", &want.firewall_ids, &got.firewall_ids)?;
    field(check, "backup_retention_days", &want.backup_retention_days, &got.backup_retention_days)?;
    field(check, "encrypted", &want.encrypted, &got.encrypted)?;
    field(check, "high_availability", &want.high_availability, &got.high_availability)?;
    field(check, "deletion_protection", &want.deletion_protection, &got.deletion_protection)?;
    ensure(!got.host.is_empty(), check, || "field `host` is empty".into())?;
    field(check, "port", want.engine.default_port().to_string().as_str(), got.port.as_str())?;
    ensure(!got.status.is_empty(), check, || "field `status` is empty".into())?;
    tags(check, &want.tags, &got.tags)
}

/// Run every suite: region, network, compute, database.
pub async fn run_all(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    run_region(p, cx, o).await?;
    run_network(p, cx, o).await?;
    run_compute(p, cx, o).await?;
    run_database(p, cx, o).await
}

/// The region suite: a usable catalogue, zones of known regions, an error for an unknown one.
/// Creates nothing.
pub async fn run_region(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    let cat = p.catalog();
    let check = "region.catalogue";
    ensure(!cat.regions.is_empty(), check, || "the catalogue lists no region".into())?;
    ensure(!cat.vm_sizes.is_empty(), check, || "the catalogue lists no VM size".into())?;
    ensure(!cat.images.is_empty(), check, || "the catalogue lists no image".into())?;
    ensure(cat.max_name_len > 0, check, || "max_name_len is 0".into())?;
    ensure(cat.region(&o.region).is_some(), check, || {
        format!("the catalogue does not list region `{}`, which the suite was asked to run in", o.region)
    })?;
    let mut regions: Vec<&str> = cat.regions.iter().take(1).map(|r| r.name.as_str()).collect();
    if !regions.contains(&o.region.as_str()) {
        regions.push(&o.region);
    }
    let check = "region.zones";
    for region in regions {
        let zones = retry(cx, RETRY_PUSHBACK, || p.region.zones(cx, region))
            .await
            .map_err(|e| call_failed(check, "zones", &e))?;
        ensure(!zones.is_empty(), check, || format!("region `{region}` has no zones"))?;
        ensure(zones.len() >= usize::from(cat.min_zones), check, || {
            format!("region `{region}` has {} zone(s); the catalogue promises at least {}", zones.len(), cat.min_zones)
        })?;
        let mut distinct = zones.clone();
        distinct.sort();
        distinct.dedup();
        ensure(distinct.len() == zones.len() && zones.iter().all(|z| !z.is_empty()), check, || {
            format!("region `{region}` has empty or repeated zone names: {zones:?}")
        })?;
    }
    let unknown = "konstacks-no-such-region-1";
    match retry(cx, RETRY_PUSHBACK, || p.region.zones(cx, unknown)).await {
        Err(_) => Ok(()),
        Ok(zones) => Err(failure(
            "region.unknown_region",
            format!("zones of `{unknown}` answered {zones:?} instead of an error"),
        )),
    }
}

/// The network suite: VPCs, subnets and firewalls.
pub async fn run_network(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    let mut run = Run::new(p, cx, o, "network");
    let result = network_checks(&mut run).await;
    run.finish(result).await
}

async fn network_checks(run: &mut Run<'_>) -> Result<(), ContractFailure> {
    let (p, cx) = (run.p, run.cx);
    let net = &*p.network;

    // VPC: create, read, update.
    let vpc_spec = run.vpc_spec();
    let check = run.check("create_vpc");
    let vpc = run.create(Kind::Vpc, &check, || net.create_vpc(cx, &vpc_spec)).await?;
    check_vpc(&check, &vpc_spec, &vpc)?;
    let read_vpcs = move |sel: Selector| async move { net.read_vpcs(cx, &sel).await };
    let check = run.check("read_vpcs");
    let got = run.check_reads(&check, &vpc.id, read_vpcs).await?;
    check_vpc(&check, &vpc_spec, &got)?;

    let check = run.check("update_vpc");
    let mut vpc_upd = vpc_spec.clone();
    vpc_upd.tags.insert(CONTRACT_TAG.into(), "updated".into());
    let updated = retry(cx, RETRY_UPDATE, || net.update_vpc(cx, &vpc.id, &vpc_upd))
        .await
        .map_err(|e| call_failed(&check, "update_vpc", &e))?;
    check_vpc(&check, &vpc_upd, &updated)?;
    let ids = Selector::Ids(vec![vpc.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the updated VPC",
        || read_vpcs(ids.clone()),
        |v| v.iter().any(|r| r.id == vpc.id && has_tags(&vpc_upd.tags, &r.tags)),
    )
    .await?;

    // Subnet: create, read, update.
    let sub_spec = run.subnet_spec("subnet", &vpc.id, 0, 0, false)?;
    let check = run.check("create_subnet");
    let subnet = run.create(Kind::Subnet, &check, || net.create_subnet(cx, &sub_spec)).await?;
    check_subnet(&check, &sub_spec, &subnet)?;
    let read_subnets = move |sel: Selector| async move { net.read_subnets(cx, &sel).await };
    let check = run.check("read_subnets");
    let got = run.check_reads(&check, &subnet.id, read_subnets).await?;
    check_subnet(&check, &sub_spec, &got)?;

    let check = run.check("update_subnet");
    let mut sub_upd = sub_spec.clone();
    sub_upd.public = true;
    sub_upd.tags.insert(CONTRACT_TAG.into(), "updated".into());
    let updated = retry(cx, RETRY_UPDATE, || net.update_subnet(cx, &subnet.id, &sub_upd))
        .await
        .map_err(|e| call_failed(&check, "update_subnet", &e))?;
    check_subnet(&check, &sub_upd, &updated)?;
    let ids = Selector::Ids(vec![subnet.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the updated subnet",
        || read_subnets(ids.clone()),
        |v| v.iter().any(|r| r.id == subnet.id && r.public && has_tags(&sub_upd.tags, &r.tags)),
    )
    .await?;

    // Firewalls: one open to the world, one open to members of the first.
    let web_spec = run.firewall_spec("web", &vpc.id, vec![rule(Protocol::Tcp, 443, anywhere())]);
    let check = run.check("create_firewall");
    let web = run.create(Kind::Firewall, &check, || net.create_firewall(cx, &web_spec)).await?;
    check_firewall(&check, &web_spec, &web)?;
    let db_spec =
        run.firewall_spec("db", &vpc.id, vec![rule(Protocol::Tcp, 5432, RuleSource::Firewall(web.id.clone()))]);
    let dbfw = run.create(Kind::Firewall, &check, || net.create_firewall(cx, &db_spec)).await?;
    check_firewall(&check, &db_spec, &dbfw)?;
    let read_firewalls = move |sel: Selector| async move { net.read_firewalls(cx, &sel).await };
    let check = run.check("read_firewalls");
    let got = run.check_reads(&check, &web.id, read_firewalls).await?;
    check_firewall(&check, &web_spec, &got)?;
    let both = Selector::Ids(vec![web.id.clone(), dbfw.id.clone()]);
    let got =
        eventually(cx, &check, "reading both firewalls in one call", || read_firewalls(both.clone()), |v| v.len() == 2)
            .await?;
    if let Some(d) = got.iter().find(|r| r.id == dbfw.id) {
        check_firewall(&check, &db_spec, d)?;
    }

    let check = run.check("update_firewall.add_rule");
    let mut web_upd = web_spec.clone();
    web_upd.ingress.push(rule(Protocol::Tcp, 80, anywhere()));
    web_upd.ingress.sort();
    let updated = retry(cx, RETRY_UPDATE, || net.update_firewall(cx, &web.id, &web_upd))
        .await
        .map_err(|e| call_failed(&check, "update_firewall", &e))?;
    check_firewall(&check, &web_upd, &updated)?;
    let ids = Selector::Ids(vec![web.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the updated firewall",
        || read_firewalls(ids.clone()),
        |v| v.iter().any(|r| r.id == web.id && r.ingress.len() == 2),
    )
    .await?;

    let check = run.check("update_firewall.remove_rule");
    web_upd.ingress.retain(|r| r.from_port != 443);
    let updated = retry(cx, RETRY_UPDATE, || net.update_firewall(cx, &web.id, &web_upd))
        .await
        .map_err(|e| call_failed(&check, "update_firewall", &e))?;
    check_firewall(&check, &web_upd, &updated)?;
    eventually(
        cx,
        &check,
        "reading the updated firewall",
        || read_firewalls(ids.clone()),
        |v| v.iter().any(|r| r.id == web.id && r.ingress == web_upd.ingress),
    )
    .await?;

    // A VPC that still has a subnet cannot be deleted.
    let check = run.check("delete_vpc_with_dependents");
    match retry(cx, RETRY_PUSHBACK, || net.delete_vpc(cx, &vpc.id)).await {
        Err(e) if e.kind() == ErrorKind::Conflict => {}
        Err(e) => return Err(failure(&check, format!("expected a conflict, got {}: {}", e.kind(), e.full_chain()))),
        Ok(()) => return Err(failure(&check, "deleting a VPC that still has a subnet and firewalls succeeded")),
    }

    // Deleting what does not exist is NotFound or nothing.
    let check = run.check("delete_unknown");
    for (kind, id) in
        [(Kind::Vpc, &vpc.id), (Kind::Subnet, &subnet.id), (Kind::Firewall, &web.id)].map(|(k, id)| (k, unknown_id(id)))
    {
        match retry(cx, RETRY_PUSHBACK, || run.delete_raw(kind, &id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(failure(
                    &check,
                    format!(
                        "deleting the unknown {} `{id}` failed with {}: {}",
                        kind.as_str(),
                        e.kind(),
                        e.full_chain()
                    ),
                ))
            }
        }
    }

    run.delete(Kind::Firewall, &dbfw.id).await?;
    run.delete(Kind::Firewall, &web.id).await?;
    run.delete(Kind::Subnet, &subnet.id).await?;
    run.delete(Kind::Vpc, &vpc.id).await
}

/// The compute suite: a VM in a subnet behind a firewall.
pub async fn run_compute(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    let mut run = Run::new(p, cx, o, "compute");
    let result = compute_checks(&mut run).await;
    run.finish(result).await
}

/// A VPC (readable) for the compute and database suites.
async fn setup_vpc(run: &mut Run<'_>) -> Result<VpcObserved, ContractFailure> {
    let (net, cx) = (&*run.p.network, run.cx);
    let spec = run.vpc_spec();
    let check = run.check("setup");
    run.create(Kind::Vpc, &check, || net.create_vpc(cx, &spec)).await
}

async fn compute_checks(run: &mut Run<'_>) -> Result<(), ContractFailure> {
    let (p, cx) = (run.p, run.cx);
    let (net, compute) = (&*p.network, &*p.compute);
    let cat = p.catalog();
    let setup = run.check("setup");
    let size = cat.vm_sizes.first().ok_or_else(|| failure(&setup, "the catalogue lists no VM size"))?;
    let image = cat.images.first().ok_or_else(|| failure(&setup, "the catalogue lists no image"))?;

    let vpc = setup_vpc(run).await?;
    let sub_spec = run.subnet_spec("subnet", &vpc.id, 0, 0, true)?;
    let subnet = run.create(Kind::Subnet, &setup, || net.create_subnet(cx, &sub_spec)).await?;
    let fw_spec = run.firewall_spec("fw", &vpc.id, vec![rule(Protocol::Tcp, 22, anywhere())]);
    let fw = run.create(Kind::Firewall, &setup, || net.create_firewall(cx, &fw_spec)).await?;

    let spec = VmSpec {
        name: run.name("vm"),
        region: run.o.region.clone(),
        image: image.slug.clone(),
        size: size.slug.clone(),
        subnet_id: subnet.id.clone(),
        firewall_ids: vec![fw.id.clone()],
        user_data: None,
        env: Default::default(),
        ssh_keys: Vec::new(),
        assign_public_ip: true,
        tags: run.tags("vm"),
    };
    let check = run.check("create_vm");
    let vm = run.create(Kind::Vm, &check, || compute.create_vm(cx, &spec)).await?;
    check_vm(&check, p, &spec, &vm, &subnet)?;
    let read_vms = move |sel: Selector| async move { compute.read_vms(cx, &sel).await };
    let check = run.check("read_vms");
    let got = run.check_reads(&check, &vm.id, read_vms).await?;
    check_vm(&check, p, &spec, &got, &subnet)?;

    let check = run.check("update_vm");
    let mut upd = spec.clone();
    if let Some(bigger) = cat.vm_sizes.get(1) {
        upd.size = bigger.slug.clone();
    }
    upd.tags.insert(CONTRACT_TAG.into(), "updated".into());
    let updated = retry(cx, RETRY_UPDATE, || compute.update_vm(cx, &vm.id, &upd))
        .await
        .map_err(|e| call_failed(&check, "update_vm", &e))?;
    check_vm(&check, p, &upd, &updated, &subnet)?;
    let ids = Selector::Ids(vec![vm.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the resized VM",
        || read_vms(ids.clone()),
        |v| v.iter().any(|r| r.id == vm.id && same_offer(&cat.vm_sizes, &upd.size, &r.size)),
    )
    .await?;

    run.delete(Kind::Vm, &vm.id).await?;
    run.delete(Kind::Firewall, &fw.id).await?;
    run.delete(Kind::Subnet, &subnet.id).await?;
    run.delete(Kind::Vpc, &vpc.id).await
}

/// The database suite: a managed database in two subnets behind a firewall.
pub async fn run_database(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    let mut run = Run::new(p, cx, o, "database");
    let result = database_checks(&mut run).await;
    run.finish(result).await
}

async fn database_checks(run: &mut Run<'_>) -> Result<(), ContractFailure> {
    let (p, cx) = (run.p, run.cx);
    let (net, db) = (&*p.network, &*p.database);
    let cat = p.catalog();
    let setup = run.check("setup");
    let engine = cat.engines.first().ok_or_else(|| failure(&setup, "the catalogue lists no database engine"))?;
    let version = engine.versions.first().ok_or_else(|| failure(&setup, "the catalogue lists no engine version"))?;
    let size = cat.db_sizes.first().ok_or_else(|| failure(&setup, "the catalogue lists no database size"))?;

    let vpc = setup_vpc(run).await?;
    // Managed databases usually want subnets in two zones.
    let second_zone = u8::from(cat.min_zones >= 2);
    let a_spec = run.subnet_spec("db-a", &vpc.id, 0, 0, false)?;
    let a = run.create(Kind::Subnet, &setup, || net.create_subnet(cx, &a_spec)).await?;
    let b_spec = run.subnet_spec("db-b", &vpc.id, 1, second_zone, false)?;
    let b = run.create(Kind::Subnet, &setup, || net.create_subnet(cx, &b_spec)).await?;
    let port = engine.engine.default_port();
    let fw_spec =
        run.firewall_spec("db-fw", &vpc.id, vec![rule(Protocol::Tcp, port, RuleSource::Cidr(vpc.cidr.clone()))]);
    let fw = run.create(Kind::Firewall, &setup, || net.create_firewall(cx, &fw_spec)).await?;

    let spec = DatabaseSpec {
        name: run.name("db"),
        region: run.o.region.clone(),
        engine: engine.engine,
        version: version.clone(),
        size: size.slug.clone(),
        storage_gb: 20,
        subnet_ids: vec![a.id.clone(), b.id.clone()],
        firewall_ids: vec![fw.id.clone()],
        backup_retention_days: 1,
        encrypted: true,
        high_availability: false,
        deletion_protection: false,
        apply_immediately: true,
        password: Some(Secret::new("Contract-Passw0rd-42".into())),
        tags: run.tags("db"),
    };
    let check = run.check("create_database");
    let created = run.create(Kind::Database, &check, || db.create_database(cx, &spec)).await?;
    check_database(&check, p, &spec, &created)?;
    let read_dbs = move |sel: Selector| async move { db.read_databases(cx, &sel).await };
    let check = run.check("read_databases");
    let got = run.check_reads(&check, &created.id, read_dbs).await?;
    check_database(&check, p, &spec, &got)?;

    let check = run.check("update_database");
    let mut upd = spec.clone();
    // The password is sent on update only when it changes.
    upd.password = None;
    upd.backup_retention_days = 3;
    if let Some(bigger) = cat.db_sizes.get(1) {
        upd.size = bigger.slug.clone();
    }
    upd.tags.insert(CONTRACT_TAG.into(), "updated".into());
    let updated = retry(cx, RETRY_UPDATE, || db.update_database(cx, &created.id, &upd))
        .await
        .map_err(|e| call_failed(&check, "update_database", &e))?;
    check_database(&check, p, &upd, &updated)?;
    let ids = Selector::Ids(vec![created.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the modified database",
        || read_dbs(ids.clone()),
        |v| {
            v.iter().any(|r| {
                r.id == created.id
                    && r.backup_retention_days == upd.backup_retention_days
                    && same_offer(&cat.db_sizes, &upd.size, &r.size)
            })
        },
    )
    .await?;

    run.delete(Kind::Database, &created.id).await?;
    run.delete(Kind::Firewall, &fw.id).await?;
    run.delete(Kind::Subnet, &b.id).await?;
    run.delete(Kind::Subnet, &a.id).await?;
    run.delete(Kind::Vpc, &vpc.id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_ids_keep_their_shape() {
        assert_eq!(unknown_id("vpc-00000001"), "vpc-00009999");
        assert_eq!(unknown_id("vpc-00009999"), "vpc-00008888");
        assert_eq!(unknown_id("sg-0a1b2c3d"), "sg-0a1b9f9f");
        assert_eq!(unknown_id("12345678"), "12349999");
    }

    #[test]
    fn child_blocks() {
        assert_eq!(child_block("10.77.0.0/16", 1).as_deref(), Ok("10.77.1.0/24"));
        assert_eq!(child_block("10.0.0.0/26", 2).as_deref(), Ok("10.0.0.32/28"));
        assert!(child_block("10.0.0.0/27", 0).is_err());
    }

    #[test]
    fn offers_match_by_slug_or_native() {
        let offers = vec![Offer::new("small", "t3.small", None), Offer::new("large", "t3.large", None)];
        assert!(same_offer(&offers, "small", "t3.small"));
        assert!(!same_offer(&offers, "small", "t3.large"));
        assert!(same_offer(&offers, "custom", "custom"));
    }
}
