//! The AWS backend, on the official `aws-sdk-*` crates (EC2, RDS, Elastic Load Balancing v2,
//! ACM, Route 53, S3 and ElastiCache).
//!
//! [`AwsProvider`] implements the four provider traits for one AWS account and one region:
//! VPCs (DNS support and hostnames on, an internet gateway and a public route table owned by the
//! VPC), subnets (public ones associated with that route table, private ones left on the main
//! route table, which has no route out), security groups with rule-level updates, EC2 instances
//! and RDS Postgres/MySQL instances, ACM certificates validated through DNS, Route 53 hosted
//! zones and record sets (whose tags live in ownership TXT records, see `dns.rs` and ADR 0004). Every resource carries the tags `konstacks:stack`,
//! `konstacks:path` and `Name` plus the stack's own, which is how a resource whose create was
//! interrupted is found again and adopted.
//!
//! This module owns the translation only: it never walks the graph, never decides between update
//! and replace, and leaves retries of whole operations to the engine (the SDK's own retry is
//! switched off so that every wait runs on the engine's injected clock). It retries only the
//! follow-up calls of an operation that has already changed something (tagging a VPC it just
//! created, waiting for an instance to run), because a failure there must not leave half a
//! resource behind; when a follow-up fails for good, what was created is deleted again.
//!
//! Credentials, region and endpoint come from the standard `aws-config` chain (environment,
//! profiles, SSO, instance metadata, `AWS_ENDPOINT_URL`), see [`AwsProvider::from_env`]. No
//! credential, no database password and no secret environment value is ever logged or put in an
//! error message. Secret VM environment values travel only inside the instance's user data.

pub(crate) mod bucket;
mod cache;
mod catalog;
mod certificate;
mod compute;
mod database;
mod dns;
mod dns_record;
mod dns_zone;
mod error;
pub mod iam;
mod load_balancer;
mod network;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::{Certificate, DnsRecord, DnsZone};
use konstacks_core::model::{Database, Firewall, LoadBalancer, Subnet, Vm, Vpc};
use konstacks_core::provider::{Catalog, Provider, ProviderLimits, ProviderResult, Region};
use konstacks_core::spec::{Bucket, Cache};
use konstacks_core::spec::{Tags, TAG_NAME, TAG_STACK};

pub use catalog::{catalog, MAX_NAME_LEN, MIN_ZONES, PRICED_ON, PRICES_NOTE, PROVIDER_NAME};
pub use error::AwsApiError;
pub use load_balancer::target_group_name;

use error::{invalid, sdk_error};

/// Prefix of the tags this backend keeps for itself (the requested image and size spelling, the
/// public-IP choice, the role of helper resources). They are written by Konstacks and stripped
/// from observed tags, so they never show up as drift.
pub const INTERNAL_TAG_PREFIX: &str = "konstacks:aws:";
const TAG_IMAGE: &str = "konstacks:aws:image";
const TAG_SIZE: &str = "konstacks:aws:size";
const TAG_PUBLIC_IP: &str = "konstacks:aws:public-ip";
const TAG_ROLE: &str = "konstacks:aws:role";
/// The tag templates set with the stack's stage; it decides the final snapshot of a database.
const TAG_STAGE: &str = "konstacks:stage";

/// EC2 accepts at most this many values in one filter; longer id lists are split.
const FILTER_CHUNK: usize = 200;
/// EC2 accepts at most 50 tags per resource.
const MAX_TAGS: usize = 50;

/// How the default image lookup finds an AMI: the newest available image of `owner` whose name
/// matches `name_pattern` (with `*` wildcards), for x86_64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLookup {
    /// AWS account that publishes the image (Canonical is `099720109477`).
    pub owner: String,
    /// `DescribeImages` name filter, for example `ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*`.
    pub name_pattern: String,
}

impl ImageLookup {
    /// A lookup by owner and name pattern.
    pub fn new(owner: impl Into<String>, name_pattern: impl Into<String>) -> Self {
        Self { owner: owner.into(), name_pattern: name_pattern.into() }
    }
}

/// The environment variable holding image pins for every AWS provider built by
/// [`AwsProvider::from_env`]: `ubuntu-lts=ami-0abc...,debian-12=ami-0def...`.
pub const IMAGES_ENV: &str = "KONSTACKS_AWS_IMAGES";

/// Whether `id` has the form of an AMI id (`ami-` and 8 or 17 hexadecimal digits).
fn is_ami_id(id: &str) -> bool {
    id.strip_prefix("ami-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Parse `slug=ami-id` pairs separated by commas or whitespace; every bad pair is listed in one
/// error (a slug given twice with different AMIs is one of them).
pub fn parse_image_pins(text: &str) -> ProviderResult<Vec<(String, String)>> {
    let mut pins: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for pair in text.split(|c: char| c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()) {
        let Some((slug, ami)) = pair.split_once('=') else {
            problems.push(format!("`{pair}` is not `slug=ami-id`"));
            continue;
        };
        let (slug, ami) = (slug.trim(), ami.trim());
        if slug.is_empty() || !slug.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
            problems.push(format!("`{slug}` in `{pair}` is not an image slug (letters, digits, `-`, `.`, `_`)"));
        }
        if !is_ami_id(ami) {
            problems.push(format!("`{ami}` in `{pair}` is not an AMI id (`ami-` and 8 or 17 hex digits)"));
        }
        if let Some(before) = pins.insert(slug.to_string(), ami.to_string()) {
            if before != ami {
                problems.push(format!("image `{slug}` is pinned twice, to `{before}` and `{ami}`"));
            }
        }
    }
    if problems.is_empty() {
        Ok(pins.into_iter().collect())
    } else {
        Err(invalid(format!("bad image pins: {}", problems.join("; "))))
    }
}

/// Whether a database gets a final snapshot when it is deleted.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FinalSnapshot {
    /// Always take one, named `<identifier>-final-<unix seconds>`.
    Always,
    /// Never take one.
    Never,
    /// Take one unless the database's `konstacks:stage` tag is `dev` (the default: a staging, a
    /// production or an untagged database is never deleted without a snapshot).
    #[default]
    UnlessDev,
}

/// How long the backend waits, on the operation's clock, for AWS to finish something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// An instance to reach `running` (after launch or start).
    pub vm_running: Duration,
    /// An instance to reach `stopped` (for a resize) or `terminated` (on delete).
    pub vm_stopped: Duration,
    /// A database to become `available` (after create or modify).
    pub db_available: Duration,
    /// A database to disappear after delete (its subnet group and firewalls can go only then).
    pub db_deleted: Duration,
    /// Follow-up calls on a resource created moments ago: how long `NotFound`, throttling and
    /// transient errors are retried.
    pub follow_up: Duration,
    /// Longest pause between two polls.
    pub max_poll: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            vm_running: Duration::from_secs(15 * 60),
            vm_stopped: Duration::from_secs(15 * 60),
            db_available: Duration::from_secs(90 * 60),
            db_deleted: Duration::from_secs(60 * 60),
            follow_up: Duration::from_secs(120),
            max_poll: Duration::from_secs(20),
        }
    }
}

/// Counts of AWS API calls (HTTP attempts) made by one provider, by operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiCalls {
    /// All calls.
    pub total: u64,
    /// Calls per API operation (`DescribeInstances`, `RunInstances`, ...).
    pub by_operation: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct CallStats {
    total: AtomicU64,
    by_op: Mutex<BTreeMap<String, u64>>,
}

/// SDK interceptor counting every HTTP attempt of the provider's clients.
#[derive(Debug, Clone)]
struct CountCalls(Arc<CallStats>);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "konstacks-aws-call-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_else(|| "unknown".into());
        self.0.total.fetch_add(1, Ordering::Relaxed);
        let mut by_op = self.0.by_op.lock().unwrap_or_else(|p| p.into_inner());
        *by_op.entry(op).or_insert(0) += 1;
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Settings {
    images: BTreeMap<String, String>,
    lookups: BTreeMap<String, ImageLookup>,
    master_username: String,
    key_name: Option<String>,
    final_snapshot: FinalSnapshot,
    timeouts: Timeouts,
}

impl Default for Settings {
    fn default() -> Self {
        let lookups = BTreeMap::from([
            (
                "ubuntu-lts".to_string(),
                ImageLookup::new("099720109477", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"),
            ),
            ("debian-12".to_string(), ImageLookup::new("136693071363", "debian-12-amd64-*")),
        ]);
        Self {
            images: BTreeMap::new(),
            lookups,
            master_username: "konstacks".into(),
            key_name: None,
            final_snapshot: FinalSnapshot::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// A client of the SDK crate `$sdk` for `region`, with the SDK's own retries off (waits run on
/// the engine's clock), per-attempt timeouts and the provider's interceptors.
macro_rules! sdk_client {
    ($sdk:ident, $config:expr, $region:expr, $interceptors:expr) => {{
        let mut b = $sdk::config::Builder::from($config)
            .region($sdk::config::Region::new($region.to_string()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts());
        for i in $interceptors {
            b.push_interceptor(i.clone());
        }
        $sdk::Client::from_conf(b.build())
    }};
}

/// Builds an [`AwsProvider`] from an `aws-config` [`SdkConfig`].
#[derive(Debug)]
pub struct AwsProviderBuilder {
    sdk: SdkConfig,
    region: Option<String>,
    settings: Settings,
    interceptors: Vec<SharedInterceptor>,
}

impl AwsProviderBuilder {
    /// Work in this region instead of the one of the `SdkConfig`.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Use this AMI for an image slug instead of looking it up (pins the image; also handy for
    /// tests against an emulator that has no public images).
    pub fn image(mut self, slug: impl Into<String>, ami: impl Into<String>) -> Self {
        self.settings.images.insert(slug.into(), ami.into());
        self
    }

    /// Pin images from text: `slug=ami-id` pairs separated by commas or whitespace (the form of
    /// `KONSTACKS_AWS_IMAGES` and of the CLI's `--image`). Every malformed pair is named in one
    /// error, and nothing is pinned unless all of them are good.
    pub fn images_from_text(mut self, text: &str) -> ProviderResult<Self> {
        for (slug, ami) in parse_image_pins(text)? {
            self = self.image(slug, ami);
        }
        Ok(self)
    }

    /// Look an image slug up with `lookup` (replaces the default lookup of that slug).
    pub fn image_lookup(mut self, slug: impl Into<String>, lookup: ImageLookup) -> Self {
        self.settings.lookups.insert(slug.into(), lookup);
        self
    }

    /// Master user name of new databases (default `konstacks`; `admin` is reserved by RDS for
    /// PostgreSQL).
    pub fn master_username(mut self, name: impl Into<String>) -> Self {
        self.settings.master_username = name.into();
        self
    }

    /// Attach this existing EC2 key pair to every instance (SSH keys of the stack are installed
    /// by cloud-init either way).
    pub fn key_name(mut self, name: impl Into<String>) -> Self {
        self.settings.key_name = Some(name.into());
        self
    }

    /// Final-snapshot policy for database deletes.
    pub fn final_snapshot(mut self, policy: FinalSnapshot) -> Self {
        self.settings.final_snapshot = policy;
        self
    }

    /// How long to wait for AWS.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.settings.timeouts = timeouts;
        self
    }

    /// Add an SDK interceptor to every client (for example one adding a header an emulator needs).
    pub fn interceptor(mut self, interceptor: SharedInterceptor) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// Build the provider. Fails when no region is configured anywhere.
    pub fn build(self) -> ProviderResult<AwsProvider> {
        let region = self.region.or_else(|| self.sdk.region().map(|r| r.to_string())).ok_or_else(|| {
            invalid("no AWS region is configured: set AWS_REGION (or a profile region), or call `.region(..)`")
        })?;
        let stats = Arc::new(CallStats::default());
        let mut interceptors = self.interceptors;
        interceptors.push(SharedInterceptor::new(CountCalls(stats.clone())));
        let ec2 = ec2_client(&self.sdk, &region, &interceptors);
        let rds = sdk_client!(aws_sdk_rds, &self.sdk, &region, &interceptors);
        let serving = ServingClients::new(&self.sdk, &region, &interceptors);
        let mut catalog = catalog::catalog(&region);
        // A pinned image under a new slug becomes an offer, so stacks using it validate.
        for (slug, ami) in &self.settings.images {
            if catalog.image(slug).is_none() {
                catalog.images.push(konstacks_core::provider::Offer::new(slug, ami, None));
            }
        }
        Ok(AwsProvider {
            catalog,
            region,
            sdk: self.sdk,
            ec2,
            rds,
            serving,
            other_ec2: Mutex::new(BTreeMap::new()),
            zones: Mutex::new(BTreeMap::new()),
            amis: Mutex::new(BTreeMap::new()),
            vpc_locks: Mutex::new(BTreeMap::new()),
            settings: self.settings,
            interceptors,
            stats,
        })
    }
}

/// Per-attempt timeouts: a hung connection fails as transient instead of hanging the run.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .operation_attempt_timeout(Duration::from_secs(120))
        .build()
}

fn ec2_client(sdk: &SdkConfig, region: &str, interceptors: &[SharedInterceptor]) -> aws_sdk_ec2::Client {
    sdk_client!(aws_sdk_ec2, sdk, region, interceptors)
}

/// The SDK clients of the serving kinds, all in the provider's region except Route 53, which is
/// global (the SDK signs it for `us-east-1` whatever the region).
#[derive(Debug, Clone)]
struct ServingClients {
    elb: aws_sdk_elasticloadbalancingv2::Client,
    acm: aws_sdk_acm::Client,
    route53: aws_sdk_route53::Client,
    s3: aws_sdk_s3::Client,
    elasticache: aws_sdk_elasticache::Client,
}

impl ServingClients {
    fn new(sdk: &SdkConfig, region: &str, interceptors: &[SharedInterceptor]) -> Self {
        Self {
            elb: sdk_client!(aws_sdk_elasticloadbalancingv2, sdk, region, interceptors),
            acm: sdk_client!(aws_sdk_acm, sdk, region, interceptors),
            route53: sdk_client!(aws_sdk_route53, sdk, region, interceptors),
            s3: {
                let mut b = aws_sdk_s3::config::Builder::from(sdk)
                    .region(aws_sdk_s3::config::Region::new(region.to_string()))
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(timeouts())
                    // Emulators and custom endpoints serve buckets by path, not by host name.
                    .force_path_style(sdk.endpoint_url().is_some());
                for i in interceptors {
                    b.push_interceptor(i.clone());
                }
                aws_sdk_s3::Client::from_conf(b.build())
            },
            elasticache: sdk_client!(aws_sdk_elasticache, sdk, region, interceptors),
        }
    }
}

/// The AWS backend for one account and one region. Share it behind an `Arc` and hand
/// [`AwsProvider::provider`] to the engine.
pub struct AwsProvider {
    region: String,
    sdk: SdkConfig,
    ec2: aws_sdk_ec2::Client,
    rds: aws_sdk_rds::Client,
    /// Clients of the serving kinds (load balancers, certificates, DNS, buckets, caches).
    serving: ServingClients,
    /// EC2 clients of other regions (only `zones` of another region uses them).
    other_ec2: Mutex<BTreeMap<String, aws_sdk_ec2::Client>>,
    zones: Mutex<BTreeMap<String, Vec<String>>>,
    /// Image slug -> AMI resolved by lookup in this process.
    amis: Mutex<BTreeMap<String, String>>,
    /// Serialises creation of a VPC's internet gateway and public route table in this process.
    vpc_locks: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    settings: Settings,
    interceptors: Vec<SharedInterceptor>,
    stats: Arc<CallStats>,
    catalog: Catalog,
}

impl std::fmt::Debug for AwsProvider {
    // The SdkConfig holds the credentials provider: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider").field("region", &self.region).finish_non_exhaustive()
    }
}

impl AwsProvider {
    /// A builder over an `aws-config` configuration (credentials, region, endpoint, HTTP client).
    pub fn builder(sdk: &SdkConfig) -> AwsProviderBuilder {
        AwsProviderBuilder { sdk: sdk.clone(), region: None, settings: Settings::default(), interceptors: Vec::new() }
    }

    /// A provider configured from the standard chain: `AWS_ACCESS_KEY_ID` / profiles / SSO /
    /// instance metadata for credentials, `AWS_REGION` or the profile for the region, and
    /// `AWS_ENDPOINT_URL` for a custom endpoint.
    /// Images are pinned from `KONSTACKS_AWS_IMAGES` when it is set (see [`IMAGES_ENV`]).
    pub async fn from_env() -> ProviderResult<AwsProvider> {
        Self::builder_from_env().await?.build()
    }

    /// [`AwsProvider::from_env`] before `build`, to add pins or settings of its own.
    pub async fn builder_from_env() -> ProviderResult<AwsProviderBuilder> {
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let builder = Self::builder(&sdk);
        match std::env::var(IMAGES_ENV) {
            Ok(pins) => builder.images_from_text(&pins).map_err(|e| invalid(format!("{IMAGES_ENV}: {}", e.message()))),
            Err(_) => Ok(builder),
        }
    }

    /// The region this provider works in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// This provider as the engine holds it: named `aws`, at most 16 operations in flight, paced
    /// at 10 operations a second with bursts of 20 (EC2 refills its mutating-call buckets at a
    /// few calls a second per action; one operation makes one to six calls).
    pub fn provider(self: Arc<Self>) -> Provider {
        let limits = ProviderLimits { max_concurrency: 16, calls_per_second: Some(10.0), burst: 20 };
        Provider::builder(PROVIDER_NAME, Arc::clone(&self) as Arc<dyn Region>)
            .kind::<Certificate>(Arc::clone(&self) as _)
            .kind::<Bucket>(Arc::clone(&self) as _)
            .kind::<Cache>(Arc::clone(&self) as _)
            .kind::<Database>(Arc::clone(&self) as _)
            .kind::<DnsRecord>(Arc::clone(&self) as _)
            .kind::<DnsZone>(Arc::clone(&self) as _)
            .kind::<Firewall>(Arc::clone(&self) as _)
            .kind::<LoadBalancer>(Arc::clone(&self) as _)
            .kind::<Subnet>(Arc::clone(&self) as _)
            .kind::<Vm>(Arc::clone(&self) as _)
            .kind::<Vpc>(self as _)
            .limits(limits)
            .build()
    }

    /// AWS API calls (HTTP attempts) made so far.
    pub fn api_calls(&self) -> ApiCalls {
        let by_operation = self.stats.by_op.lock().unwrap_or_else(|p| p.into_inner()).clone();
        ApiCalls { total: self.stats.total.load(Ordering::Relaxed), by_operation }
    }

    /// Reset the call counts to zero.
    pub fn reset_api_calls(&self) {
        self.stats.total.store(0, Ordering::Relaxed);
        self.stats.by_op.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Refuse a spec for another region before any call.
    fn check_region(&self, what: &str, region: &str) -> ProviderResult<()> {
        if region == self.region {
            return Ok(());
        }
        Err(invalid(format!(
            "{what} is placed in region `{region}`, but this AWS provider works in `{}`; build the provider for \
             `{region}` (AWS_REGION={region} or `AwsProvider::builder(..).region(\"{region}\")`)",
            self.region
        )))
    }

    fn check_name(&self, what: &str, name: &str) -> ProviderResult<()> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(invalid(format!(
                "{what} name `{name}` must have 1 to {MAX_NAME_LEN} characters (it has {})",
                name.len()
            )));
        }
        Ok(())
    }

    fn ec2_for(&self, region: &str) -> aws_sdk_ec2::Client {
        if region == self.region {
            return self.ec2.clone();
        }
        let mut others = self.other_ec2.lock().unwrap_or_else(|p| p.into_inner());
        others.entry(region.to_string()).or_insert_with(|| ec2_client(&self.sdk, region, &self.interceptors)).clone()
    }

    /// The zones of `region`, sorted by name (cached: zones do not change under a running process).
    async fn zone_names(&self, region: &str) -> ProviderResult<Vec<String>> {
        if let Some(z) = self.zones.lock().unwrap_or_else(|p| p.into_inner()).get(region) {
            return Ok(z.clone());
        }
        let out = self
            .ec2_for(region)
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| sdk_error("DescribeAvailabilityZones", &format!("listing the zones of `{region}`"), e))?;
        let mut zones: Vec<String> = out
            .availability_zones()
            .iter()
            .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
            .filter(|z| z.state().is_none_or(|s| s.as_str() == "available"))
            .filter(|z| z.region_name().is_none_or(|r| r == region))
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect();
        zones.sort();
        zones.dedup();
        if !zones.is_empty() {
            self.zones.lock().unwrap_or_else(|p| p.into_inner()).insert(region.to_string(), zones.clone());
        }
        Ok(zones)
    }

    fn vpc_lock(&self, vpc_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.vpc_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(vpc_id.to_string()).or_default().clone()
    }
}

#[async_trait::async_trait]
impl Region for AwsProvider {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    async fn zones(&self, _cx: &OpContext, region: &str) -> ProviderResult<Vec<String>> {
        if self.catalog.region(region).is_none() {
            let known: Vec<&str> = self.catalog.regions.iter().map(|r| r.name.as_str()).collect();
            return Err(ProviderError::not_found(format!(
                "AWS has no region `{region}` in Konstacks' catalogue; use one of: {}",
                known.join(", ")
            )));
        }
        let zones = self.zone_names(region).await?;
        if zones.is_empty() {
            return Err(ProviderError::not_found(format!(
                "region `{region}` reports no available zone; is the region enabled for this account?"
            )));
        }
        Ok(zones)
    }
}

// ---- helpers shared by the resource modules ----

/// Validate user tags before they reach AWS.
fn check_tags(what: &str, tags: &Tags, internal: usize) -> ProviderResult<()> {
    for (k, v) in tags {
        if k.starts_with("aws:") || k.starts_with(INTERNAL_TAG_PREFIX) {
            return Err(invalid(format!(
                "{what}: tag key `{k}` uses a reserved prefix (`aws:` or `{INTERNAL_TAG_PREFIX}`)"
            )));
        }
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(invalid(format!(
                "{what}: tag `{k}` is empty or too long (keys up to 128, values up to 256 characters)"
            )));
        }
    }
    if tags.len() + internal > MAX_TAGS {
        return Err(invalid(format!(
            "{what}: {} tags are too many; AWS allows {} (Konstacks uses {internal} itself)",
            tags.len(),
            MAX_TAGS - internal
        )));
    }
    Ok(())
}

/// Observed tags: internal and AWS-reserved tags removed.
fn visible_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tags {
    tags.into_iter()
        .filter(|(k, _)| !k.starts_with("aws:") && !k.starts_with(INTERNAL_TAG_PREFIX))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ec2_tag(k: &str, v: &str) -> aws_sdk_ec2::types::Tag {
    aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()
}

fn ec2_tag_spec(
    kind: aws_sdk_ec2::types::ResourceType,
    tags: &Tags,
    extra: &[(&str, &str)],
) -> aws_sdk_ec2::types::TagSpecification {
    let mut all: Vec<aws_sdk_ec2::types::Tag> = tags.iter().map(|(k, v)| ec2_tag(k, v)).collect();
    all.extend(extra.iter().map(|(k, v)| ec2_tag(k, v)));
    aws_sdk_ec2::types::TagSpecification::builder().resource_type(kind).set_tags(Some(all)).build()
}

fn ec2_tag_map(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

fn ec2_filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

fn stack_filter(stack: &str) -> aws_sdk_ec2::types::Filter {
    ec2_filter(&format!("tag:{TAG_STACK}"), [stack])
}

/// How many describe calls of one batched read run at once (chunks of [`FILTER_CHUNK`] ids).
const READ_PARALLELISM: usize = 4;

/// Run `read` on every chunk, a few at a time, and concatenate the answers in chunk order.
async fn read_chunks<T, F, Fut>(chunks: Vec<Vec<String>>, read: F) -> ProviderResult<Vec<T>>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = ProviderResult<Vec<T>>>,
{
    use futures::stream::{StreamExt, TryStreamExt};
    let parts: Vec<Vec<T>> =
        futures::stream::iter(chunks.into_iter().map(read)).buffered(READ_PARALLELISM).try_collect().await?;
    Ok(parts.into_iter().flatten().collect())
}

/// Ids deduplicated, sorted and split into filter-sized chunks.
fn id_chunks(ids: &[String]) -> Vec<Vec<String>> {
    let mut ids: Vec<String> = ids.iter().filter(|s| !s.is_empty()).cloned().collect();
    ids.sort();
    ids.dedup();
    ids.chunks(FILTER_CHUNK).map(<[String]>::to_vec).collect()
}

/// Bring the tags of an EC2 resource from `current` to `desired` (internal tags in `current`
/// are left alone unless `desired` sets them).
async fn sync_ec2_tags(
    ec2: &aws_sdk_ec2::Client,
    what: &str,
    id: &str,
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> ProviderResult<()> {
    let to_set: Vec<aws_sdk_ec2::types::Tag> =
        desired.iter().filter(|(k, v)| current.get(*k) != Some(*v)).map(|(k, v)| ec2_tag(k, v)).collect();
    let to_remove: Vec<aws_sdk_ec2::types::Tag> = current
        .keys()
        .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:") && !k.starts_with(INTERNAL_TAG_PREFIX))
        .map(|k| aws_sdk_ec2::types::Tag::builder().key(k).build())
        .collect();
    if !to_set.is_empty() {
        ec2.create_tags()
            .resources(id)
            .set_tags(Some(to_set))
            .send()
            .await
            .map_err(|e| sdk_error("CreateTags", &format!("tagging {what} `{id}`"), e))?;
    }
    if !to_remove.is_empty() {
        ec2.delete_tags()
            .resources(id)
            .set_tags(Some(to_remove))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteTags", &format!("removing tags of {what} `{id}`"), e))?;
    }
    Ok(())
}

fn cancelled(what: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::Cancelled,
        format!("{what}: cancelled; what was started stays and is adopted on the next run"),
    )
}

/// Retry a follow-up call on a resource this operation has just created or changed: `NotFound`
/// (eventual consistency), throttling and transient errors are retried with backoff on the
/// operation's clock for at most `patience`.
async fn follow_up<T, F, Fut>(cx: &OpContext, patience: Duration, f: F) -> ProviderResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ProviderResult<T>>,
{
    retry_on(cx, patience, &[ErrorKind::NotFound, ErrorKind::Throttled, ErrorKind::Transient], f).await
}

/// Like [`follow_up`] for a call that creates something: a transient failure may hide a
/// success, so only errors that certainly changed nothing (not found, throttled) are retried.
async fn follow_up_create<T, F, Fut>(cx: &OpContext, patience: Duration, f: F) -> ProviderResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ProviderResult<T>>,
{
    retry_on(cx, patience, &[ErrorKind::NotFound, ErrorKind::Throttled], f).await
}

async fn retry_on<T, F, Fut>(cx: &OpContext, patience: Duration, kinds: &[ErrorKind], mut f: F) -> ProviderResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ProviderResult<T>>,
{
    let start = cx.clock.now();
    let mut pause = Duration::from_millis(500);
    loop {
        match f().await {
            Err(e)
                if kinds.contains(&e.kind())
                    && cx.clock.now().saturating_sub(start) + pause <= patience
                    && !cx.is_cancelled() =>
            {
                cx.clock.sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(8));
            }
            other => return other,
        }
    }
}

/// One poll of something AWS is working on.
enum Polled<T> {
    /// Done.
    Ready(T),
    /// Still going; the status seen.
    Pending(String),
}

/// Poll until ready, on the operation's clock: first at once, then after 1 s, doubling up to
/// `max_poll`, for at most `limit`. Reads that fail with `NotFound` (not visible yet),
/// throttling or a transient error count as "not yet". Running out of time is a transient
/// error: the resource exists and is found again by its tags.
async fn wait_for<T, F, Fut>(
    cx: &OpContext,
    what: &str,
    limit: Duration,
    max_poll: Duration,
    mut poll: F,
) -> ProviderResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ProviderResult<Polled<T>>>,
{
    let start = cx.clock.now();
    let mut pause = Duration::from_secs(1);
    loop {
        let last = match poll().await {
            Ok(Polled::Ready(v)) => return Ok(v),
            Ok(Polled::Pending(status)) => status,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Throttled | ErrorKind::Transient) => {
                format!("not readable yet ({})", e.kind())
            }
            Err(e) => return Err(e),
        };
        if cx.is_cancelled() {
            return Err(cancelled(what));
        }
        let elapsed = cx.clock.now().saturating_sub(start);
        if elapsed + pause > limit {
            return Err(ProviderError::new(
                ErrorKind::Transient,
                format!(
                    "{what}: still `{last}` after {}s; it keeps going in AWS and is picked up by the next run",
                    elapsed.as_secs()
                ),
            ));
        }
        tracing::debug!(what, status = %last, "waiting for AWS");
        cx.clock.sleep(pause).await;
        pause = (pause * 2).min(max_poll);
    }
}

/// The value of the `Name` tag, or empty.
fn name_of(tags: &BTreeMap<String, String>) -> String {
    tags.get(TAG_NAME).cloned().unwrap_or_default()
}

/// A 128-bit FNV-1a digest of the parts (separated), as 32 hex digits. Used for idempotency
/// tokens: stable across runs and platforms, not a security primitive.
fn digest(parts: &[&str]) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(PRIME);
        }
        for b in p.as_bytes() {
            h ^= u128::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:032x}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn digest_is_stable_and_separates_parts() {
        assert_eq!(digest(&["a", "b"]), digest(&["a", "b"]));
        assert_ne!(digest(&["ab", ""]), digest(&["a", "b"]));
        assert_eq!(digest(&["x"]).len(), 32);
    }

    #[test]
    fn reserved_tags_are_refused_and_hidden() {
        let tags = Tags::from([("aws:cloudformation".to_string(), "x".to_string())]);
        assert!(check_tags("VPC `v`", &tags, 0).is_err());
        let seen = visible_tags([("Name", "n"), ("aws:x", "y"), (TAG_SIZE, "small")]);
        assert_eq!(seen, Tags::from([("Name".to_string(), "n".to_string())]));
    }

    #[test]
    fn image_pins_are_parsed_and_every_bad_one_is_named() {
        let pins = parse_image_pins("ubuntu-lts=ami-0123456789abcdef0, golden=ami-12345678\n").unwrap();
        assert_eq!(
            pins,
            vec![
                ("golden".to_string(), "ami-12345678".to_string()),
                ("ubuntu-lts".to_string(), "ami-0123456789abcdef0".to_string())
            ]
        );
        let err = parse_image_pins("ubuntu-lts, x=ami-zz, a=ami-12345678 a=ami-87654321").unwrap_err();
        let msg = err.message();
        assert!(msg.contains("`ubuntu-lts` is not `slug=ami-id`"), "{msg}");
        assert!(msg.contains("`ami-zz` in `x=ami-zz` is not an AMI id"), "{msg}");
        assert!(msg.contains("image `a` is pinned twice"), "{msg}");
        assert!(parse_image_pins("").unwrap().is_empty());
    }

    #[test]
    fn chunks_are_sorted_and_bounded() {
        let ids: Vec<String> = (0..450).rev().map(|i| format!("i-{i:04}")).collect();
        let c = id_chunks(&ids);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0][0], "i-0000");
        assert_eq!(c[2].len(), 50);
    }
}
