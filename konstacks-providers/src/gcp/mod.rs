//! The Google Cloud backend, on Google's official Rust clients `google-cloud-compute-v1`
//! (one cargo feature per Compute Engine collection it uses), `google-cloud-sql-v1`,
//! `google-cloud-dns-v1` and `google-cloud-redis-v1`, with `google-cloud-auth` for credentials;
//! Cloud Storage buckets go through the JSON API (`storage_api`), since Google's storage crate
//! manages buckets over gRPC only.
//!
//! [`Gcp`] implements the kinds' APIs for one project and one region:
//!
//! - VPC networks in custom subnet mode, regional subnetworks, and firewalls. A Konstacks
//!   firewall is a set of VPC firewall rules named `<firewall>-<direction><hash>`, one per rule,
//!   that target the network tag `<firewall>`; rules from another firewall use it as a source
//!   tag. Updates add and delete single rules, never the whole set.
//! - VMs: instances from a public image family, a machine type per portable size, in the zone
//!   of their subnetwork, with the firewalls' network tags, the user data (plus the VM's
//!   environment) as `user-data` metadata, SSH keys as `ssh-keys` metadata, and an external IP
//!   only when asked.
//! - Databases: Cloud SQL for PostgreSQL and MySQL with a private IP on the stack's network and
//!   no public IP, automated backups with point-in-time recovery, high availability
//!   (`REGIONAL`), deletion protection, and a user `konstacks` with the stack's generated
//!   password.
//! - Caches: Memorystore for Redis (`cache`), buckets: Cloud Storage (`bucket`), DNS zones and
//!   records: Cloud DNS (`dns`), certificates: Google-managed SSL certificates (`certificate`),
//!   load balancers: the global external Application Load Balancer (`load_balancer`). Each
//!   module's documentation says how the portable model maps and what GCP cannot do.
//! - Regions and zones with jurisdictions (static catalogue; zones are read from the API once
//!   per region).
//!
//! Every mutating call returns a long-running operation: the backend polls it on the engine's
//! injected clock until it is `DONE` and turns its error (quota, invalid argument, already
//! exists) into a portable kind. Inserts carry a `requestId` that stays the same while the backend
//! lives (until an insert under it fails), so the engine's retry of an insert whose answer was
//! lost joins the first one instead of making a second resource. Resources carry
//! Konstacks' tags as labels (instances, Cloud SQL) or in their description (networks,
//! subnetworks, firewall rules, which have no labels): see [`labels`]. Batched reads are list
//! calls (aggregated across zones for instances) with a label filter for the stack.
//!
//! Project, region, credentials and endpoint come from the environment ([`Config::from_env`])
//! or from code ([`Config`]). No credential, password or secret environment value is ever
//! logged or put in an error message.

mod bucket;
mod cache;
pub mod catalog;
mod certificate;
mod compute;
mod database;
mod dns;
mod error;
pub mod labels;
mod load_balancer;
mod network;
mod storage_api;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use google_cloud_auth::credentials::{CacheableResource, Credentials as GoogleCredentials, CredentialsProvider};
use google_cloud_compute_v1::client::{
    BackendServices, Firewalls, GlobalAddresses, GlobalForwardingRules, GlobalOperations, HealthChecks, InstanceGroups,
    Instances, Networks, RegionOperations, SslCertificates, SslPolicies, Subnetworks, TargetHttpProxies,
    TargetHttpsProxies, UrlMaps, ZoneOperations, Zones,
};
use google_cloud_compute_v1::model::operation::Status as OpStatus;
use google_cloud_compute_v1::model::Operation;
use google_cloud_dns_v1::client::{Changes, ManagedZones, ResourceRecordSets};
use google_cloud_gax::error::Error as GaxError;
use google_cloud_redis_v1::client::CloudRedis;
use google_cloud_sql_v1::client::{SqlInstancesService, SqlOperationsService, SqlUsersService};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::model::{Database, Firewall, Subnet, Vm, Vpc};
use konstacks_core::provider::{Catalog, Provider, ProviderLimits, ProviderResult, Region};
use konstacks_core::secret::Secret;
use std::sync::Arc;
use storage_api::StorageApi;

pub use catalog::{catalog, MAX_NAME_LEN, MIN_ZONES, PRICED_ON, PRICES_NOTE, PROVIDER_NAME};

/// Environment variables naming the project, in order of precedence.
pub const PROJECT_ENVS: &[&str] = &["GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "GCLOUD_PROJECT"];
/// Environment variables naming the region, in order of precedence.
pub const REGION_ENVS: &[&str] = &["GOOGLE_CLOUD_REGION", "CLOUDSDK_COMPUTE_REGION"];
/// Environment variable holding an OAuth access token to use as it is.
pub const TOKEN_ENV: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";
/// Environment variable overriding both API endpoints (a local fake).
pub const ENDPOINT_ENV: &str = "KONSTACKS_GCP_ENDPOINT";
/// Set to `1` to send no credentials at all (only for a local fake).
pub const ANONYMOUS_ENV: &str = "KONSTACKS_GCP_ANONYMOUS";

/// Where the backend's credentials come from.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// Application default credentials: `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud user's
    /// credentials, or the metadata server on Google Cloud.
    #[default]
    ApplicationDefault,
    /// A service-account key file (JSON).
    ServiceAccountKeyFile(PathBuf),
    /// A service-account key, as the JSON text of the key file.
    ServiceAccountKey(Secret<String>),
    /// An OAuth 2.0 access token, sent as it is (it expires after about an hour).
    AccessToken(Secret<String>),
    /// No credentials (a local fake or emulator).
    Anonymous,
}

/// How long the backend waits for GCP operations, and how often it looks. All waiting runs on
/// the operation's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Waits {
    /// A Compute Engine operation (network, firewall, instance).
    pub compute: Duration,
    /// A Cloud SQL operation (create, patch, delete: tens of minutes for HA instances).
    pub database: Duration,
    /// First pause between two looks; doubled up to [`Waits::max_poll`].
    pub first_poll: Duration,
    /// Longest pause between two looks.
    pub max_poll: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Self {
            compute: Duration::from_secs(15 * 60),
            database: Duration::from_secs(90 * 60),
            first_poll: Duration::from_secs(1),
            max_poll: Duration::from_secs(10),
        }
    }
}

/// Configuration of the backend. `Debug` never shows credentials.
#[derive(Debug, Clone)]
pub struct Config {
    /// The project id.
    pub project: String,
    /// The region the backend works in (`europe-west1`).
    pub region: String,
    /// Where credentials come from.
    pub credentials: Credentials,
    /// Compute Engine endpoint (default `https://compute.googleapis.com`).
    pub compute_endpoint: Option<String>,
    /// Cloud SQL Admin endpoint (default `https://sqladmin.googleapis.com`).
    pub sql_endpoint: Option<String>,
    /// Cloud DNS endpoint (default `https://dns.googleapis.com`).
    pub dns_endpoint: Option<String>,
    /// Memorystore for Redis endpoint (default `https://redis.googleapis.com`).
    pub redis_endpoint: Option<String>,
    /// Cloud Storage JSON API endpoint (default `https://storage.googleapis.com`).
    pub storage_endpoint: Option<String>,
    /// Waiting for operations.
    pub waits: Waits,
    /// How hard the engine may drive the APIs (Compute Engine allows 20 mutating calls a second
    /// per project and region by default; Cloud SQL far fewer).
    pub limits: ProviderLimits,
    /// Name of the database user created with the stack's password.
    pub database_user: String,
}

impl Config {
    /// A configuration for `project` in `region` with application default credentials.
    pub fn new(project: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            region: region.into(),
            credentials: Credentials::default(),
            compute_endpoint: None,
            sql_endpoint: None,
            dns_endpoint: None,
            redis_endpoint: None,
            storage_endpoint: None,
            waits: Waits::default(),
            limits: ProviderLimits { max_concurrency: 10, calls_per_second: Some(10.0), burst: 20 },
            database_user: "konstacks".into(),
        }
    }

    /// Project and region from the environment ([`PROJECT_ENVS`], [`REGION_ENVS`]), credentials
    /// from [`TOKEN_ENV`] when set (else application default credentials, or none when
    /// [`ANONYMOUS_ENV`] is `1`), endpoints from [`ENDPOINT_ENV`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |names: &[&'static str]| {
            names.iter().find_map(|n| std::env::var(n).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty()))
        };
        let project = var(PROJECT_ENVS).ok_or(ConfigError::MissingProject { vars: PROJECT_ENVS })?;
        let region = var(REGION_ENVS).ok_or(ConfigError::MissingRegion { vars: REGION_ENVS })?;
        let mut c = Self::new(project, region);
        if let Some(token) = var(&[TOKEN_ENV]) {
            c.credentials = Credentials::AccessToken(Secret::new(token));
        } else if var(&[ANONYMOUS_ENV]).as_deref() == Some("1") {
            c.credentials = Credentials::Anonymous;
        }
        if let Some(url) = var(&[ENDPOINT_ENV]) {
            c = c.endpoint(url);
        }
        Ok(c)
    }

    /// Use these credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Send every API's requests to `url` (a local fake serving `/compute/v1/...`, `/v1/...`,
    /// `/dns/v1/...` and `/storage/v1/...`).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.compute_endpoint = Some(url.clone());
        self.sql_endpoint = Some(url.clone());
        self.dns_endpoint = Some(url.clone());
        self.redis_endpoint = Some(url.clone());
        self.storage_endpoint = Some(url);
        self
    }

    /// Use these waits.
    pub fn waits(mut self, waits: Waits) -> Self {
        self.waits = waits;
        self
    }
}

/// Why the backend could not be built.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No project was given.
    #[error("no GCP project: set one of {} or pass it in code", vars.join(", "))]
    MissingProject {
        /// The variables that were read.
        vars: &'static [&'static str],
    },
    /// No region was given.
    #[error("no GCP region: set one of {} or pass it in code", vars.join(", "))]
    MissingRegion {
        /// The variables that were read.
        vars: &'static [&'static str],
    },
    /// The region is not one Konstacks knows.
    #[error("`{0}` is not a GCP region Konstacks offers; see `konstacks templates` / the gcp catalogue")]
    UnknownRegion(String),
    /// An endpoint is not an http(s) URL.
    #[error("GCP endpoint `{0}` is not an http:// or https:// URL")]
    InvalidEndpoint(String),
    /// The credentials could not be loaded.
    #[error("GCP credentials could not be loaded: {0}")]
    Credentials(String),
    /// A client could not be built.
    #[error("a Google API client could not be built")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// A fixed OAuth access token as credentials.
#[derive(Debug)]
struct StaticToken(Secret<String>);

impl CredentialsProvider for StaticToken {
    async fn headers(
        &self,
        _extensions: http::Extensions,
    ) -> Result<CacheableResource<http::HeaderMap>, google_cloud_auth::errors::CredentialsError> {
        let mut headers = http::HeaderMap::new();
        let value = http::HeaderValue::from_str(&format!("Bearer {}", self.0.expose()))
            .map_err(|e| google_cloud_auth::errors::CredentialsError::from_source(false, e))?;
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(CacheableResource::New { entity_tag: Default::default(), data: headers })
    }

    async fn universe_domain(&self) -> Option<String> {
        Some("googleapis.com".to_string())
    }
}

fn google_credentials(c: &Credentials) -> Result<GoogleCredentials, ConfigError> {
    use google_cloud_auth::credentials::{anonymous, service_account};
    let err = |e: &dyn std::fmt::Display| ConfigError::Credentials(e.to_string());
    match c {
        Credentials::ApplicationDefault => {
            google_cloud_auth::credentials::Builder::default().build().map_err(|e| err(&e))
        }
        Credentials::ServiceAccountKeyFile(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Credentials(format!("reading {}: {e}", path.display())))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| ConfigError::Credentials(format!("{} is not JSON: {e}", path.display())))?;
            service_account::Builder::new(json).build().map_err(|e| err(&e))
        }
        Credentials::ServiceAccountKey(key) => {
            let json: serde_json::Value = serde_json::from_str(key.expose())
                .map_err(|_| ConfigError::Credentials("the service-account key is not JSON".into()))?;
            service_account::Builder::new(json).build().map_err(|e| err(&e))
        }
        Credentials::AccessToken(token) => Ok(GoogleCredentials::from(StaticToken(token.clone()))),
        Credentials::Anonymous => Ok(anonymous::Builder::new().build()),
    }
}

fn check_endpoint(url: &Option<String>) -> Result<(), ConfigError> {
    match url {
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
            Err(ConfigError::InvalidEndpoint(u.clone()))
        }
        _ => Ok(()),
    }
}

/// Build one Google client with the backend's endpoint and credentials, and no retries of its
/// own: the engine retries on its injected clock.
macro_rules! build_client {
    ($client:ty, $endpoint:expr, $creds:expr) => {{
        let mut b = <$client>::builder()
            .with_credentials($creds.clone())
            .with_retry_policy(google_cloud_gax::retry_policy::NeverRetry)
            .with_attempt_timeout(Duration::from_secs(120));
        if let Some(e) = $endpoint {
            b = b.with_endpoint(e.clone());
        }
        b.build().await.map_err(|e| ConfigError::Client(Box::new(e)))?
    }};
}

/// The GCP backend for one project and one region: implements every provider trait.
pub struct Gcp {
    project: String,
    region: String,
    catalog: Catalog,
    waits: Waits,
    limits: ProviderLimits,
    database_user: String,
    networks: Networks,
    subnetworks: Subnetworks,
    firewalls: Firewalls,
    instances: Instances,
    zones: Zones,
    zone_ops: ZoneOperations,
    region_ops: RegionOperations,
    global_ops: GlobalOperations,
    ssl_certificates: SslCertificates,
    sql: SqlInstancesService,
    sql_ops: SqlOperationsService,
    sql_users: SqlUsersService,
    managed_zones: ManagedZones,
    record_sets: ResourceRecordSets,
    #[allow(dead_code)] // until its kind uses it
    dns_changes: Changes,
    redis: CloudRedis,
    health_checks: HealthChecks,
    instance_groups: InstanceGroups,
    backend_services: BackendServices,
    url_maps: UrlMaps,
    http_proxies: TargetHttpProxies,
    https_proxies: TargetHttpsProxies,
    ssl_policies: SslPolicies,
    addresses: GlobalAddresses,
    forwarding_rules: GlobalForwardingRules,
    /// Cloud Storage's JSON API: an HTTP client, the backend's credentials and the endpoint.
    storage: StorageApi,
    zone_cache: Mutex<BTreeMap<String, Vec<String>>>,
    /// Unique to this backend value: request ids never repeat those of an earlier process.
    nonce: String,
    /// Request ids retired after the insert sent under them failed, per insert.
    burnt: Mutex<BTreeMap<String, u32>>,
}

impl std::fmt::Debug for Gcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gcp").field("project", &self.project).field("region", &self.region).finish_non_exhaustive()
    }
}

impl Gcp {
    /// The backend for `config`.
    pub async fn new(config: Config) -> Result<Self, ConfigError> {
        let catalog = catalog::catalog(&config.region);
        if catalog.region(&config.region).is_none() {
            return Err(ConfigError::UnknownRegion(config.region));
        }
        check_endpoint(&config.compute_endpoint)?;
        check_endpoint(&config.sql_endpoint)?;
        check_endpoint(&config.dns_endpoint)?;
        check_endpoint(&config.redis_endpoint)?;
        check_endpoint(&config.storage_endpoint)?;
        let creds = google_credentials(&config.credentials)?;
        let ce = config.compute_endpoint.as_ref();
        let se = config.sql_endpoint.as_ref();
        let de = config.dns_endpoint.as_ref();
        let re = config.redis_endpoint.as_ref();
        Ok(Self {
            networks: build_client!(Networks, ce, creds),
            subnetworks: build_client!(Subnetworks, ce, creds),
            firewalls: build_client!(Firewalls, ce, creds),
            instances: build_client!(Instances, ce, creds),
            zones: build_client!(Zones, ce, creds),
            zone_ops: build_client!(ZoneOperations, ce, creds),
            region_ops: build_client!(RegionOperations, ce, creds),
            global_ops: build_client!(GlobalOperations, ce, creds),
            ssl_certificates: build_client!(SslCertificates, ce, creds),
            sql: build_client!(SqlInstancesService, se, creds),
            sql_ops: build_client!(SqlOperationsService, se, creds),
            sql_users: build_client!(SqlUsersService, se, creds),
            managed_zones: build_client!(ManagedZones, de, creds),
            record_sets: build_client!(ResourceRecordSets, de, creds),
            dns_changes: build_client!(Changes, de, creds),
            redis: build_client!(CloudRedis, re, creds),
            health_checks: build_client!(HealthChecks, ce, creds),
            instance_groups: build_client!(InstanceGroups, ce, creds),
            backend_services: build_client!(BackendServices, ce, creds),
            url_maps: build_client!(UrlMaps, ce, creds),
            http_proxies: build_client!(TargetHttpProxies, ce, creds),
            https_proxies: build_client!(TargetHttpsProxies, ce, creds),
            ssl_policies: build_client!(SslPolicies, ce, creds),
            addresses: build_client!(GlobalAddresses, ce, creds),
            forwarding_rules: build_client!(GlobalForwardingRules, ce, creds),
            storage: StorageApi::new(config.storage_endpoint.clone(), creds.clone())
                .map_err(|e| ConfigError::Client(Box::new(e)))?,
            project: config.project,
            region: config.region,
            catalog,
            waits: config.waits,
            limits: config.limits,
            database_user: config.database_user,
            zone_cache: Mutex::new(BTreeMap::new()),
            nonce: format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
            ),
            burnt: Mutex::new(BTreeMap::new()),
        })
    }

    /// The backend configured from the environment ([`Config::from_env`]).
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::new(Config::from_env()?).await
    }

    /// The project.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// This backend as the provider the engine holds, named [`PROVIDER_NAME`].
    pub fn into_provider(self) -> Provider {
        Arc::new(self).provider()
    }

    /// This backend as the provider the engine holds, named [`PROVIDER_NAME`].
    pub fn provider(self: &Arc<Self>) -> Provider {
        Provider::builder(PROVIDER_NAME, Arc::clone(self) as Arc<dyn Region>)
            .kind::<konstacks_core::spec::Bucket>(Arc::clone(self) as _)
            .kind::<konstacks_core::kinds::Cache>(Arc::clone(self) as _)
            .kind::<konstacks_core::kinds::Certificate>(Arc::clone(self) as _)
            .kind::<konstacks_core::kinds::DnsRecord>(Arc::clone(self) as _)
            .kind::<konstacks_core::kinds::DnsZone>(Arc::clone(self) as _)
            .kind::<Database>(Arc::clone(self) as _)
            .kind::<Firewall>(Arc::clone(self) as _)
            .kind::<konstacks_core::kinds::LoadBalancer>(Arc::clone(self) as _)
            .kind::<Subnet>(Arc::clone(self) as _)
            .kind::<Vm>(Arc::clone(self) as _)
            .kind::<Vpc>(Arc::clone(self) as _)
            .limits(self.limits)
            .build()
    }

    // ---- shared helpers ----

    fn check_region(&self, region: &str) -> ProviderResult<()> {
        if region == self.region {
            return Ok(());
        }
        Err(invalid(format!(
            "this GCP backend works in `{}`, not `{region}`; register one backend per region",
            self.region
        )))
    }

    /// `projects/<project>/global/networks/<name>`.
    fn network_path(&self, name: &str) -> String {
        format!("projects/{}/global/networks/{name}", self.project)
    }

    /// Wait (on the operation's clock) until `look` answers `Some`, for at most `timeout`.
    async fn wait_for<T, F, Fut>(&self, cx: &OpContext, what: &str, timeout: Duration, look: F) -> ProviderResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ProviderResult<Option<T>>>,
    {
        crate::poll::wait_for(
            cx,
            what,
            timeout,
            crate::poll::Pace { first: self.waits.first_poll, max: self.waits.max_poll },
            look,
        )
        .await
    }

    /// The `requestId` of the insert `parts` name (kind, project, scope, name): the same while
    /// this backend lives, so that the engine's retry of an insert whose answer was lost joins
    /// the first one instead of making a second resource; a fresh one once an insert under it
    /// failed (Compute remembers request ids for at least an hour and would answer the failed
    /// operation again) and in every new backend (a resource deleted since must be creatable
    /// again; after a crash the engine finds interrupted creates by their labels instead).
    fn request_id(&self, parts: &[&str]) -> (String, String) {
        let key = parts.join("/");
        let attempt = self.burnt.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied().unwrap_or(0);
        let id = request_id(&[&self.nonce, &key, &attempt.to_string()]);
        (key, id)
    }

    /// Send an insert (under the request id of `parts`) and wait for its operation.
    async fn insert<F, Fut>(&self, cx: &OpContext, what: &str, parts: &[&str], send: F) -> ProviderResult<Operation>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<Operation, GaxError>>,
    {
        let (key, id) = self.request_id(parts);
        let op = send(id).await.map_err(|e| error::api(what, e))?;
        let done = self.wait_op(cx, what, op).await;
        if done.is_err() {
            *self.burnt.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_insert(0) += 1;
        }
        done
    }

    /// Wait for the operation a Compute Engine call answered (`sent`), naming `what` in errors.
    async fn run_op(&self, cx: &OpContext, what: &str, sent: Result<Operation, GaxError>) -> ProviderResult<()> {
        let op = sent.map_err(|e| error::api(what, e))?;
        self.wait_op(cx, what, op).await.map(|_| ())
    }

    /// Like [`Gcp::run_op`] for a delete: a resource that is already gone is deleted.
    async fn run_delete(&self, cx: &OpContext, what: &str, sent: Result<Operation, GaxError>) -> ProviderResult<()> {
        match sent {
            Err(e) if e.http_status_code() == Some(404) => Ok(()),
            sent => self.run_op(cx, what, sent).await,
        }
    }

    /// Poll a Compute Engine operation (zonal, regional or global) until it is `DONE`, and turn
    /// its error into a [`ProviderError`].
    async fn wait_op(&self, cx: &OpContext, what: &str, op: Operation) -> ProviderResult<Operation> {
        let name = op.name.clone().unwrap_or_default();
        let zone = op.zone.as_deref().map(|z| last_segment(z).to_string());
        let region = op.region.as_deref().map(|r| last_segment(r).to_string());
        let mut current = Some(op);
        let done = self
            .wait_for(cx, &format!("{what} (operation `{name}`)"), self.waits.compute, || {
                let seen = current.take();
                async {
                    let op = match seen {
                        Some(op) => op,
                        None => {
                            let r = if let Some(z) = &zone {
                                self.zone_ops
                                    .get()
                                    .set_project(&self.project)
                                    .set_zone(z)
                                    .set_operation(&name)
                                    .send()
                                    .await
                            } else if let Some(r) = &region {
                                self.region_ops
                                    .get()
                                    .set_project(&self.project)
                                    .set_region(r)
                                    .set_operation(&name)
                                    .send()
                                    .await
                            } else {
                                self.global_ops.get().set_project(&self.project).set_operation(&name).send().await
                            };
                            r.map_err(|e| error::api(format!("reading operation `{name}` of {what}"), e))?
                        }
                    };
                    Ok((op.status == Some(OpStatus::Done)).then_some(op))
                }
            })
            .await?;
        if let Some(err) = &done.error {
            let errors: Vec<(String, String)> = err
                .errors
                .iter()
                .map(|e| (e.code.clone().unwrap_or_default(), e.message.clone().unwrap_or_default()))
                .collect();
            if !errors.is_empty() {
                let http = done.http_error_status_code.and_then(|c| u16::try_from(c).ok());
                return Err(error::operation(what, &name, &errors, http));
            }
        }
        Ok(done)
    }

    /// The zones of the backend's region, read once.
    async fn region_zones(&self, cx: &OpContext) -> ProviderResult<Vec<String>> {
        self.zones(cx, &self.region.clone()).await
    }

    /// The name of zone `index` of the backend's region.
    async fn zone_name(&self, cx: &OpContext, index: u8) -> ProviderResult<String> {
        let zones = self.region_zones(cx).await?;
        zones.get(usize::from(index)).cloned().ok_or_else(|| {
            invalid(format!("zone index {index} does not exist in `{}` (it has {} zones)", self.region, zones.len()))
        })
    }
}

#[async_trait::async_trait]
impl Region for Gcp {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The zones that are `UP`, sorted by name; read once per region with `zones.list`.
    async fn zones(&self, _cx: &OpContext, region: &str) -> ProviderResult<Vec<String>> {
        if let Some(z) = self.zone_cache.lock().unwrap_or_else(|p| p.into_inner()).get(region) {
            return Ok(z.clone());
        }
        let mut found = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .zones
                .list()
                .set_project(&self.project)
                .set_filter(format!("name eq \"{}-.*\"", regex_escape(region)))
                .set_page_token(token.clone())
                .send()
                .await
                .map_err(|e| error::api(format!("listing the zones of `{region}`"), e))?;
            for z in page.items {
                let in_region = z.region.as_deref().map(last_segment) == Some(region);
                let up = z.status.as_ref().and_then(|s| s.name()) != Some("DOWN");
                if let (true, true, Some(name)) = (in_region, up, z.name) {
                    found.push(name);
                }
            }
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = t,
                _ => break,
            }
        }
        found.sort();
        if found.is_empty() {
            return Err(ProviderError::not_found(format!("GCP lists no zones that are up in `{region}`")));
        }
        self.zone_cache.lock().unwrap_or_else(|p| p.into_inner()).insert(region.to_string(), found.clone());
        Ok(found)
    }
}

/// The last `/` segment of a URL or path (`.../zones/europe-west1-b` -> `europe-west1-b`).
fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// The part of a self link from `projects/` on (the relative resource name).
fn relative(link: &str) -> String {
    match link.find("projects/") {
        Some(i) => link[i..].to_string(),
        None => link.to_string(),
    }
}

/// Escape RE2 metacharacters for a Compute Engine `eq` filter.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `requestId` (a UUID, as Compute Engine wants) derived from what an insert creates, so that
/// the retry of an insert whose answer was lost joins the first one.
fn request_id(parts: &[&str]) -> String {
    // FNV-1a over the parts, twice with different seeds, formatted as a version-4-shaped UUID.
    let hash = |seed: u64| {
        let mut h = seed;
        for p in parts {
            for b in p.bytes().chain(std::iter::once(0)) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x100_0000_01b3);
            }
        }
        h
    };
    let (a, b) = (hash(0xcbf2_9ce4_8422_2325), hash(0x8422_2325_cbf2_9ce4));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorKind::InvalidSpec, message)
}

/// Refuse a change to a field GCP cannot change in place.
fn immutable<T: PartialEq + std::fmt::Debug>(what: &str, field: &str, old: &T, new: &T) -> ProviderResult<()> {
    if old == new {
        return Ok(());
    }
    Err(invalid(format!(
        "{what}: `{field}` cannot be changed in place on GCP ({old:?} -> {new:?}); replace the resource instead"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuids_and_stable() {
        let a = request_id(&["insert", "net", "acme"]);
        assert_eq!(a, request_id(&["insert", "net", "acme"]));
        assert_ne!(a, request_id(&["insert", "net", "acme2"]));
        assert_ne!(request_id(&["ab", "c"]), request_id(&["a", "bc"]));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn links() {
        assert_eq!(last_segment("https://x/compute/v1/projects/p/zones/europe-west1-b"), "europe-west1-b");
        assert_eq!(
            relative("https://www.googleapis.com/compute/v1/projects/p/regions/r/subnetworks/s"),
            "projects/p/regions/r/subnetworks/s"
        );
        assert_eq!(regex_escape("europe-west1"), "europe-west1");
        assert_eq!(regex_escape("a.b"), "a\\.b");
    }

    #[test]
    fn config_debug_hides_credentials() {
        let c =
            Config::new("p", "europe-west1").credentials(Credentials::AccessToken(Secret::new("ya29.secret".into())));
        assert!(!format!("{c:?}").contains("ya29.secret"));
    }
}
