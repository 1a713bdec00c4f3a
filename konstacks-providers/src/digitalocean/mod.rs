//! The DigitalOcean backend: a small typed async client on `reqwest` (rustls) and `serde`,
//! written from DigitalOcean's API documentation, and the Konstacks provider traits on top of it.
//!
//! Build it with [`DigitalOcean::from_env`] (token from `DIGITALOCEAN_TOKEN`, optional base URL
//! from `DIGITALOCEAN_API_URL`) or [`DigitalOcean::new`], then register
//! [`DigitalOcean::into_provider`] with the engine. How Konstacks' model maps onto DigitalOcean
//! (tags, logical subnets, firewalls by tag, projects, zones, databases) is described in
//! `docs/digitalocean.md` and in the module docs of `labels` (tag encoding).
//!
//! This module owns the translation only: it never walks the graph, retries on the engine's
//! behalf (beyond the HTTP-level retries of [`client`]) or decides replace-vs-update.

mod cache;
pub mod catalog;
mod certificate;
pub mod client;
mod cluster;
mod compute;
mod database;
mod dns;
pub(crate) mod labels;
mod load_balancer;
mod network;
mod owned;
mod projects;
#[cfg(feature = "spaces")]
mod spaces;
pub mod types;
pub use crate::userdata;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::{Certificate, DnsRecord, DnsZone, LoadBalancer};
use konstacks_core::model::{Cache, Database, Firewall, Subnet, Vm, Vpc};
use konstacks_core::provider::{Catalog, Provider, ProviderLimits, ProviderResult, Region};
use konstacks_core::secret::Secret;
use konstacks_core::spec::{Tags, TAG_PATH, TAG_STACK};
use reqwest::Method;

pub use catalog::PROVIDER_NAME;
pub use client::{ApiError, Client, RetrySettings, DEFAULT_BASE_URL};
#[cfg(feature = "spaces")]
pub use spaces::{SpacesConfig, SPACES_REGIONS};

use types::{Tag, TagEnvelope, TagList};

/// Environment variable holding the API token.
pub const TOKEN_ENV: &str = "DIGITALOCEAN_TOKEN";
/// Environment variable overriding the API base URL (a fake, or a validating proxy).
pub const BASE_URL_ENV: &str = "DIGITALOCEAN_API_URL";

/// How long the backend waits for DigitalOcean to finish asynchronous work, and how often it
/// looks. All waiting uses the operation's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitSettings {
    /// A new droplet becoming `active`.
    pub droplet_active: Duration,
    /// A droplet action (power, resize, rename) completing.
    pub action: Duration,
    /// A database cluster becoming `online` (creation, resize, upgrade).
    pub database_online: Duration,
    /// First pause between two looks; doubled up to [`WaitSettings::max_poll`].
    pub first_poll: Duration,
    /// Longest pause between two looks.
    pub max_poll: Duration,
}

impl Default for WaitSettings {
    fn default() -> Self {
        Self {
            droplet_active: Duration::from_secs(600),
            action: Duration::from_secs(900),
            database_online: Duration::from_secs(3600),
            first_poll: Duration::from_secs(2),
            max_poll: Duration::from_secs(15),
        }
    }
}

/// Configuration of the backend. `Debug` never shows the token.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API token (read and write scopes for droplets, VPCs, firewalls, tags, databases,
    /// projects and SSH keys).
    pub token: Secret<String>,
    /// API base URL ([`DEFAULT_BASE_URL`], or a fake / proxy in tests).
    pub base_url: String,
    /// HTTP retries and pacing.
    pub retry: RetrySettings,
    /// Waiting for asynchronous work.
    pub waits: WaitSettings,
    /// How hard the engine may drive the API (DigitalOcean allows 250 requests a minute).
    pub limits: ProviderLimits,
    /// The Spaces key pair (and endpoint) of Spaces buckets; none: buckets are refused.
    #[cfg(feature = "spaces")]
    pub spaces: Option<SpacesConfig>,
}

impl Config {
    /// A configuration for the public API with `token`.
    pub fn new(token: Secret<String>) -> Self {
        Self {
            token,
            base_url: DEFAULT_BASE_URL.to_string(),
            retry: RetrySettings::default(),
            waits: WaitSettings::default(),
            limits: ProviderLimits { max_concurrency: 8, calls_per_second: Some(4.0), burst: 10 },
            #[cfg(feature = "spaces")]
            spaces: None,
        }
    }

    /// The token from `DIGITALOCEAN_TOKEN` and the base URL from `DIGITALOCEAN_API_URL` when set.
    pub fn from_env() -> Result<Self, ConfigError> {
        let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.trim().is_empty());
        let token = token.ok_or(ConfigError::MissingToken { var: TOKEN_ENV })?;
        let mut c = Self::new(Secret::new(token.trim().to_string()));
        if let Some(url) = std::env::var(BASE_URL_ENV).ok().filter(|u| !u.trim().is_empty()) {
            c.base_url = url.trim().to_string();
        }
        #[cfg(feature = "spaces")]
        {
            c.spaces = SpacesConfig::from_env();
        }
        Ok(c)
    }

    /// Use another base URL.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }
}

/// Why the backend could not be built.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No token was given.
    #[error("no DigitalOcean API token: set {var} to a token with read and write scopes")]
    MissingToken {
        /// The variable that was read.
        var: &'static str,
    },
    /// The base URL is not an http(s) URL.
    #[error("DigitalOcean API base URL `{0}` is not an http:// or https:// URL")]
    InvalidBaseUrl(String),
    /// The HTTP client could not be built (TLS setup).
    #[error("the HTTP client could not be built")]
    HttpClient(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// The DigitalOcean backend: implements every provider trait.
#[derive(Debug)]
pub struct DigitalOcean {
    client: Client,
    catalog: Catalog,
    waits: WaitSettings,
    limits: ProviderLimits,
    /// Project id per stack, once found or created.
    projects: tokio::sync::Mutex<BTreeMap<String, String>>,
    /// Spaces stores by region.
    #[cfg(feature = "spaces")]
    spaces: spaces::Spaces,
}

impl DigitalOcean {
    /// The backend for `config`.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let url = config.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::InvalidBaseUrl(url.to_string()));
        }
        let client = Client::new(url, config.token, config.retry).map_err(ConfigError::HttpClient)?;
        Ok(Self {
            client,
            catalog: catalog::catalog(),
            waits: config.waits,
            limits: config.limits,
            projects: tokio::sync::Mutex::new(BTreeMap::new()),
            #[cfg(feature = "spaces")]
            spaces: spaces::Spaces::new(config.spaces),
        })
    }

    /// The backend configured from the environment ([`Config::from_env`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(Config::from_env()?)
    }

    /// The HTTP client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// This backend as the provider the engine holds, named [`PROVIDER_NAME`].
    pub fn into_provider(self) -> Provider {
        Arc::new(self).provider()
    }

    /// This backend as the provider the engine holds, named [`PROVIDER_NAME`].
    pub fn provider(self: &Arc<Self>) -> Provider {
        let builder = Provider::builder(PROVIDER_NAME, Arc::clone(self) as Arc<dyn Region>)
            .kind::<Cache>(Arc::clone(self) as _)
            .kind::<Certificate>(Arc::clone(self) as _)
            .kind::<Database>(Arc::clone(self) as _)
            .kind::<DnsRecord>(Arc::clone(self) as _)
            .kind::<DnsZone>(Arc::clone(self) as _)
            .kind::<Firewall>(Arc::clone(self) as _)
            .kind::<LoadBalancer>(Arc::clone(self) as _)
            .kind::<Subnet>(Arc::clone(self) as _)
            .kind::<Vm>(Arc::clone(self) as _)
            .kind::<Vpc>(Arc::clone(self) as _);
        #[cfg(feature = "spaces")]
        let builder = builder.kind::<konstacks_core::kinds::Bucket>(Arc::clone(self) as _);
        builder.limits(self.limits).build()
    }

    // ---- shared helpers ----

    /// Create a tag unless it exists.
    async fn ensure_tag(&self, cx: &OpContext, name: &str) -> ProviderResult<()> {
        let r: Result<TagEnvelope, ApiError> =
            self.client.send(cx, Method::POST, "/v2/tags", &Tag { name: name.to_string(), resources: None }).await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e.into_provider(format!("creating tag `{name}`"))),
        }
    }

    /// Delete a tag; a tag that is gone is fine.
    async fn delete_tag(&self, cx: &OpContext, name: &str) -> ProviderResult<()> {
        match self.client.send_empty::<()>(cx, Method::DELETE, &format!("/v2/tags/{name}"), None).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into_provider(format!("deleting tag `{name}`"))),
        }
    }

    /// After a droplet or cluster was deleted, delete those of its `tags` that Konstacks wrote
    /// and that no resource carries any more, so that a destroyed stack leaves no tags behind:
    /// its own path label always, the labels it shares with the rest of the stack (stack,
    /// stage, subnet memberships) only once `stack_emptied`. Failures are logged only.
    async fn prune_tags(&self, cx: &OpContext, tags: &[String], stack_emptied: bool) {
        let path_label = labels::label(TAG_PATH, "");
        let ours = |t: &&String| {
            let label = labels::parse_label(t).is_some() || t.starts_with(labels::SUBNET_TAG);
            label && (stack_emptied || t.starts_with(&path_label))
        };
        for t in tags.iter().filter(ours) {
            let unused = match self.client.get::<TagEnvelope>(cx, &format!("/v2/tags/{t}"), &[]).await {
                Ok(found) => found.tag.resources.is_none_or(|r| r.count == 0),
                Err(e) if e.is_not_found() => false,
                Err(e) => {
                    tracing::warn!(error = %e, tag = %t, "digitalocean: could not read a tag");
                    false
                }
            };
            if unused {
                if let Err(e) = self.delete_tag(cx, t).await {
                    tracing::warn!(error = %e.full_chain(), tag = %t, "digitalocean: could not delete an unused tag");
                }
            }
        }
    }

    /// After the last resource of a stack's project went with an object that carries no tags
    /// (a domain, a load balancer): delete the label tags no resource carries any more, which the
    /// stack's droplets and clusters left while the project still held something. Failures are
    /// logged only.
    async fn prune_unused_labels(&self, cx: &OpContext) {
        let tags = match self.client.list::<TagList>(cx, "/v2/tags", &[]).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "digitalocean: could not list tags");
                return;
            }
        };
        for t in tags {
            let label = labels::parse_label(&t.name).is_some() || t.name.starts_with(labels::SUBNET_TAG);
            if label && t.resources.is_none_or(|r| r.count == 0) {
                if let Err(e) = self.delete_tag(cx, &t.name).await {
                    tracing::warn!(error = %e.full_chain(), tag = %t.name, "digitalocean: could not delete an unused tag");
                }
            }
        }
    }

    /// Every tag of the account.
    async fn all_tags(&self, cx: &OpContext) -> ProviderResult<Vec<String>> {
        let tags =
            self.client.list::<TagList>(cx, "/v2/tags", &[]).await.map_err(|e| e.into_provider("listing tags"))?;
        Ok(tags.into_iter().map(|t| t.name).collect())
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

    fn check_region(&self, region: &str) -> ProviderResult<()> {
        if self.catalog.region(region).is_some() {
            return Ok(());
        }
        let offered: Vec<&str> = self.catalog.regions.iter().map(|r| r.name.as_str()).collect();
        Err(invalid(format!("region `{region}` is not offered by DigitalOcean; use one of: {}", offered.join(", "))))
    }
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorKind::InvalidSpec, message)
}

fn conflict(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorKind::Conflict, message)
}

/// The stack a resource belongs to: its `konstacks:stack` tag, else the operation's stack.
fn stack_of(tags: &Tags, cx: &OpContext) -> String {
    tags.get(TAG_STACK).cloned().unwrap_or_else(|| cx.stack.clone())
}

/// Refuse a change to a field DigitalOcean cannot change in place.
fn immutable<T: PartialEq + std::fmt::Debug>(what: &str, field: &str, old: &T, new: &T) -> ProviderResult<()> {
    if old == new {
        return Ok(());
    }
    Err(invalid(format!(
        "{what}: `{field}` cannot be changed in place on DigitalOcean ({old:?} -> {new:?}); replace the resource instead"
    )))
}

#[async_trait::async_trait]
impl Region for DigitalOcean {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// DigitalOcean has no availability zones: these are synthetic names that all stand for
    /// the whole region (see [`catalog::zone_names`]). No API call is made.
    async fn zones(&self, _cx: &OpContext, region: &str) -> ProviderResult<Vec<String>> {
        if self.catalog.region(region).is_none() {
            return Err(ProviderError::not_found(format!(
                "region `{region}` is not a DigitalOcean region Konstacks offers; see the catalogue"
            )));
        }
        Ok(catalog::zone_names(region))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_the_token() {
        let c = Config::new(Secret::new("dop_v1_abcdef".into()));
        assert!(!format!("{c:?}").contains("abcdef"));
        assert!(DigitalOcean::new(c.clone().base_url("ftp://x")).is_err());
        let d = DigitalOcean::new(c);
        assert!(d.is_ok_and(|d| !format!("{d:?}").contains("abcdef")));
    }
}
