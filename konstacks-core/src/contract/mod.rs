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
//! It only calls the provider registry: it never touches Konstacks' state or the engine. Every
//! kind is covered by a suite ([`SUITES`]); a provider registering a kind no suite covers fails
//! [`uncovered`]'s check in its own tests.

use std::fmt::Debug;
use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::base::cidr::Cidr;
use crate::base::clock::OpContext;
use crate::base::error::{ErrorKind, ProviderError};
use crate::kind::api::{Api, ProviderResult};
use crate::kind::catalog::Offer;
use crate::kind::{Kind, Observed, ResourceKind, Selector, Tags, TAG_NAME, TAG_PATH, TAG_STACK};
use crate::kinds::{
    FirewallObserved, FirewallSpec, Protocol, RuleSource, RuleSpec, SubnetObserved, SubnetSpec, Vpc, VpcObserved,
    VpcSpec,
};
use crate::provider::Provider;

mod bucket;
mod cache;
mod compute;
mod database;
mod dns;
mod isolation;
mod load_balancer;
mod network;

pub use bucket::run_bucket;
pub use cache::run_cache;
pub use compute::run_compute;
pub use database::run_database;
pub use dns::run_dns;
pub use isolation::run_isolation;
pub use load_balancer::run_load_balancer;
pub use network::run_network;

/// How long (on the context's clock) a read is retried before a check gives up.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);
/// First pause between retries; doubled up to [`MAX_PAUSE`].
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(250);
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(4);
/// Tag the update checks add.
pub(crate) const CONTRACT_TAG: &str = "konstacks:contract";

/// Errors after which a create or update is retried: nothing was changed, and the cause (a
/// reference not visible yet, throttling) goes away by itself.
pub(crate) const RETRY_CREATE: &[ErrorKind] = &[ErrorKind::NotFound, ErrorKind::Throttled];
/// Updates are idempotent, so transient failures are retried too.
pub(crate) const RETRY_UPDATE: &[ErrorKind] = &[ErrorKind::NotFound, ErrorKind::Throttled, ErrorKind::Transient];
/// Deletes wait for dependents that are still going away (a VM that is terminating).
pub(crate) const RETRY_DELETE: &[ErrorKind] = &[ErrorKind::Conflict, ErrorKind::Throttled, ErrorKind::Transient];
/// Calls whose own answer is under test are retried only when the API pushed back.
pub(crate) const RETRY_PUSHBACK: &[ErrorKind] = &[ErrorKind::Throttled, ErrorKind::Transient];

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

pub(crate) fn failure(check: &str, detail: impl Into<String>) -> ContractFailure {
    ContractFailure { check: check.to_string(), detail: detail.into() }
}

pub(crate) fn ensure(ok: bool, check: &str, detail: impl FnOnce() -> String) -> Result<(), ContractFailure> {
    if ok {
        Ok(())
    } else {
        Err(failure(check, detail()))
    }
}

pub(crate) fn call_failed(check: &str, call: &str, e: &ProviderError) -> ContractFailure {
    failure(check, format!("`{call}` failed with {}: {}", e.kind(), e.full_chain()))
}

pub(crate) fn field<T: PartialEq + Debug + ?Sized>(
    check: &str,
    name: &str,
    want: &T,
    got: &T,
) -> Result<(), ContractFailure> {
    ensure(want == got, check, || format!("field `{name}` is {got:?}, the spec asked for {want:?}"))
}

pub(crate) fn same_set(check: &str, name: &str, want: &[String], got: &[String]) -> Result<(), ContractFailure> {
    let mut w = want.to_vec();
    let mut g = got.to_vec();
    w.sort();
    g.sort();
    field(check, name, &w, &g)
}

pub(crate) fn has_tags(want: &Tags, got: &Tags) -> bool {
    want.iter().all(|(k, v)| got.get(k) == Some(v))
}

pub(crate) fn tags(check: &str, want: &Tags, got: &Tags) -> Result<(), ContractFailure> {
    ensure(has_tags(want, got), check, || format!("tags are {got:?}, they must include {want:?}"))
}

/// Whether two names denote the same offer (providers may answer with the native name).
pub(crate) fn same_offer(offers: &[Offer], want: &str, got: &str) -> bool {
    let index = |s: &str| offers.iter().position(|o| o.slug == s || o.native == s);
    want == got || (index(want).is_some() && index(want) == index(got))
}

pub(crate) fn offer(check: &str, name: &str, offers: &[Offer], want: &str, got: &str) -> Result<(), ContractFailure> {
    ensure(same_offer(offers, want, got), check, || format!("field `{name}` is {got:?}, the spec asked for {want:?}"))
}

/// An id of the same shape as `id` that almost certainly does not exist: its last four
/// characters are replaced (digits by 9, hex letters by f, other letters by z).
pub(crate) fn unknown_id(id: &str) -> String {
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
pub(crate) fn child_block(parent: &str, index: u32) -> Result<String, String> {
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

pub(crate) fn rule(protocol: Protocol, port: u16, peer: RuleSource) -> RuleSpec {
    RuleSpec { protocol, from_port: port, to_port: port, peer }
}

pub(crate) fn anywhere() -> RuleSource {
    RuleSource::Cidr("0.0.0.0/0".into())
}

pub(crate) fn all_out() -> RuleSpec {
    rule(Protocol::All, 0, anywhere())
}

/// Retry `f` while it fails with one of `retry_on`, for at most [`PATIENCE`] of clock time.
pub(crate) async fn retry<T, F, Fut>(cx: &OpContext, retry_on: &[ErrorKind], mut f: F) -> ProviderResult<T>
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
pub(crate) async fn eventually<T, F, Fut, P>(
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

/// One suite's run: what it created, to clean up in reverse order.
pub(crate) struct Run<'a> {
    pub(crate) p: &'a Provider,
    pub(crate) cx: &'a OpContext,
    pub(crate) o: &'a ContractOptions,
    suite: &'static str,
    created: Vec<(Kind, String)>,
}

impl<'a> Run<'a> {
    pub(crate) fn new(p: &'a Provider, cx: &'a OpContext, o: &'a ContractOptions, suite: &'static str) -> Self {
        Self { p, cx, o, suite, created: Vec::new() }
    }

    pub(crate) fn name(&self, leaf: &str) -> String {
        format!("{}-{}-{leaf}", self.o.stack, self.suite)
    }

    pub(crate) fn tags(&self, leaf: &str) -> Tags {
        Tags::from([
            (TAG_STACK.to_string(), self.o.stack.clone()),
            (TAG_PATH.to_string(), format!("contract/{}/{leaf}", self.suite)),
            (TAG_NAME.to_string(), self.name(leaf)),
        ])
    }

    pub(crate) fn check(&self, name: &str) -> String {
        format!("{}.{name}", self.suite)
    }

    pub(crate) fn vpc_spec(&self) -> VpcSpec {
        VpcSpec {
            name: self.name("vpc"),
            region: self.o.region.clone(),
            cidr: self.o.vpc_cidr.clone(),
            tags: self.tags("vpc"),
        }
    }

    pub(crate) fn subnet_spec(
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

    pub(crate) fn firewall_spec(&self, leaf: &str, vpc_id: &str, mut ingress: Vec<RuleSpec>) -> FirewallSpec {
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
    pub(crate) async fn create<T, F, Fut>(&mut self, kind: Kind, check: &str, f: F) -> Result<T, ContractFailure>
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

    pub(crate) async fn delete_raw(&self, kind: Kind, id: &str) -> ProviderResult<()> {
        self.p.delete(self.cx, kind, id).await
    }

    /// Which of `ids` a batched read of `kind` returns.
    pub(crate) async fn present(&self, kind: Kind, ids: &[String]) -> ProviderResult<Vec<String>> {
        let sel = Selector::Ids(ids.to_vec());
        Ok(self.p.read_many(self.cx, kind, &sel).await?.into_iter().map(|(id, _)| id).collect())
    }

    /// Delete (waiting for dependents still going away), then check a read no longer shows it.
    pub(crate) async fn delete(&mut self, kind: Kind, id: &str) -> Result<(), ContractFailure> {
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
    pub(crate) async fn cleanup(&mut self) -> Result<(), ContractFailure> {
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
    pub(crate) async fn finish(mut self, result: Result<(), ContractFailure>) -> Result<(), ContractFailure> {
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
    pub(crate) async fn check_reads<T, F, Fut>(&self, check: &str, id: &str, read: F) -> Result<T, ContractFailure>
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

/// The typed API of kind `K`, or a failure naming the kind the provider lacks.
pub(crate) fn api<K: ResourceKind>(run: &Run<'_>) -> Result<std::sync::Arc<dyn Api<K>>, ContractFailure> {
    run.p
        .typed::<K>()
        .ok_or_else(|| failure(&run.check("setup"), format!("the provider does not register the `{}` kind", K::KIND)))
}

/// A VPC (readable) for the suites that need a network.
pub(crate) async fn setup_vpc(run: &mut Run<'_>) -> Result<VpcObserved, ContractFailure> {
    let (vpcs, cx) = (api::<Vpc>(run)?, run.cx);
    let spec = run.vpc_spec();
    let check = run.check("setup");
    run.create(Vpc::KIND, &check, || vpcs.create(cx, &spec)).await
}

pub(crate) fn check_vpc(check: &str, want: &VpcSpec, got: &VpcObserved) -> Result<(), ContractFailure> {
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    field(check, "cidr", &want.cidr, &got.cidr)?;
    tags(check, &want.tags, &got.tags)
}

pub(crate) fn check_subnet(check: &str, want: &SubnetSpec, got: &SubnetObserved) -> Result<(), ContractFailure> {
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    field(check, "vpc_id", &want.vpc_id, &got.vpc_id)?;
    field(check, "cidr", &want.cidr, &got.cidr)?;
    field(check, "zone", &want.zone, &got.zone)?;
    field(check, "public", &want.public, &got.public)?;
    ensure(!got.zone_name.is_empty(), check, || "field `zone_name` is empty".into())?;
    tags(check, &want.tags, &got.tags)
}

pub(crate) fn check_firewall(check: &str, want: &FirewallSpec, got: &FirewallObserved) -> Result<(), ContractFailure> {
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

/// Which suite covers which kinds.
pub const SUITES: &[(&str, &[&str])] = &[
    ("network", &["firewall", "subnet", "vpc"]),
    ("compute", &["vm"]),
    ("database", &["database"]),
    ("cache", &["cache"]),
    ("bucket", &["bucket"]),
    ("dns", &["certificate", "dns_record", "dns_zone"]),
    ("load_balancer", &["load_balancer"]),
];

/// Kinds the provider registers that no suite covers (must be empty).
pub fn uncovered(p: &Provider) -> Vec<Kind> {
    p.kinds().filter(|k| !SUITES.iter().any(|(_, kinds)| kinds.contains(&k.as_str()))).collect()
}

/// Run the region suite, then every suite covering a kind the provider registers.
pub async fn run_all(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    run_region(p, cx, o).await?;
    let has = |suite: &str| {
        SUITES.iter().any(|(name, kinds)| *name == suite && kinds.iter().any(|k| p.kinds().any(|r| r.as_str() == *k)))
    };
    if let Some(k) = uncovered(p).first() {
        return Err(failure("contract.coverage", format!("no contract suite covers the `{k}` kind")));
    }
    if has("network") {
        run_network(p, cx, o).await?;
    }
    if has("compute") {
        run_compute(p, cx, o).await?;
    }
    if has("database") {
        run_database(p, cx, o).await?;
    }
    if has("cache") {
        run_cache(p, cx, o).await?;
    }
    if has("bucket") {
        run_bucket(p, cx, o).await?;
    }
    if has("dns") {
        run_dns(p, cx, o).await?;
    }
    if has("load_balancer") {
        run_load_balancer(p, cx, o).await?;
    }
    Ok(())
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
        let zones = retry(cx, RETRY_PUSHBACK, || p.region().zones(cx, region))
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
    match retry(cx, RETRY_PUSHBACK, || p.region().zones(cx, unknown)).await {
        Err(_) => Ok(()),
        Ok(zones) => Err(failure(
            "region.unknown_region",
            format!("zones of `{unknown}` answered {zones:?} instead of an error"),
        )),
    }
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
