//! Spaces buckets (the `bucket` kind on DigitalOcean, behind the `spaces` feature): the official
//! `aws-sdk-s3` client pointed at the region's Spaces endpoint
//! (`https://<region>.digitaloceanspaces.com`), running the AWS backend's bucket code with what
//! Spaces lacks switched off (see `aws::bucket::S3Flavour::Spaces`).
//!
//! - **Keys.** Spaces signs with its own key pair, read from `SPACES_ACCESS_KEY_ID` and
//!   `SPACES_SECRET_ACCESS_KEY` (never logged). Without them a bucket is refused before any
//!   request, saying so. `SPACES_ENDPOINT` replaces the endpoint (an S3-compatible test server).
//! - **Regions.** Only the regions that offer Spaces ([`SPACES_REGIONS`]); the client signs for
//!   `us-east-1`, as DigitalOcean documents, and the endpoint selects the region.
//! - **What Spaces does not do**: no public access block (a bucket is private unless the
//!   public-read policy opens it), no bucket encryption setting (Spaces stores objects encrypted;
//!   KMS is refused before any request), no bucket tags: the name, region and tags are record tags
//!   (`kxr:bk:...`, see `owned`) like those of domains, and a read by stack finds the buckets
//!   whose record names the stack.
//! - Uploads are not this backend's business, but the client asks for checksums only when an
//!   operation requires them: Spaces refuses the default checksums of recent S3 clients.

use std::collections::BTreeMap;
use std::time::Duration;

use konstacks_core::clock::OpContext;
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::secret::Secret;
use konstacks_core::spec::{Bucket, BucketObserved, BucketSpec, Selector, TAG_STACK};

use super::labels::RecordKind;
use super::owned::{fields_of, owned};
use super::{invalid, DigitalOcean};
use crate::aws::bucket::{S3Buckets, S3Flavour};

/// The key id of the Spaces key pair.
pub const ACCESS_KEY_ENV: &str = "SPACES_ACCESS_KEY_ID";
/// The secret of the Spaces key pair.
pub const SECRET_KEY_ENV: &str = "SPACES_SECRET_ACCESS_KEY";
/// Another endpoint than `https://<region>.digitaloceanspaces.com` (a test server).
pub const ENDPOINT_ENV: &str = "SPACES_ENDPOINT";

/// The regions that offer Spaces (DigitalOcean's availability matrix).
pub const SPACES_REGIONS: &[&str] =
    &["ams3", "atl1", "blr1", "fra1", "lon1", "nyc3", "sfo2", "sfo3", "sgp1", "syd1", "tor1"];

/// How long calls on a bucket created moments ago are retried.
const PATIENCE: Duration = Duration::from_secs(60);

/// The Spaces key pair and endpoint.
#[derive(Debug, Clone)]
pub struct SpacesConfig {
    /// Key id.
    pub access_key: Secret<String>,
    /// Secret.
    pub secret_key: Secret<String>,
    /// Another endpoint for every region (a test server), served by path.
    pub endpoint: Option<String>,
}

impl SpacesConfig {
    /// From `SPACES_ACCESS_KEY_ID`, `SPACES_SECRET_ACCESS_KEY` and `SPACES_ENDPOINT`; `None`
    /// without a key pair.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Some(Self {
            access_key: Secret::new(var(ACCESS_KEY_ENV)?),
            secret_key: Secret::new(var(SECRET_KEY_ENV)?),
            endpoint: var(ENDPOINT_ENV),
        })
    }

    fn store(&self, region: &str) -> S3Buckets {
        let creds = aws_sdk_s3::config::Credentials::new(
            self.access_key.expose().clone(),
            self.secret_key.expose().clone(),
            None,
            None,
            "spaces",
        );
        let endpoint = self.endpoint.clone().unwrap_or_else(|| format!("https://{region}.digitaloceanspaces.com"));
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(creds)
            .force_path_style(self.endpoint.is_some())
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
            .build();
        S3Buckets {
            s3: aws_sdk_s3::Client::from_conf(conf),
            region: region.to_string(),
            patience: PATIENCE,
            flavour: S3Flavour::Spaces,
        }
    }
}

/// Spaces stores by region, made on first use.
#[derive(Debug, Default)]
pub(crate) struct Spaces {
    config: Option<SpacesConfig>,
    stores: std::sync::Mutex<BTreeMap<String, S3Buckets>>,
}

impl Spaces {
    pub(crate) fn new(config: Option<SpacesConfig>) -> Self {
        Self { config, stores: std::sync::Mutex::new(BTreeMap::new()) }
    }

    /// The store of `region`, or why there is none, before any request.
    fn store(&self, region: &str) -> ProviderResult<S3Buckets> {
        if !SPACES_REGIONS.contains(&region) {
            return Err(invalid(format!(
                "DigitalOcean offers Spaces in {} only, not in `{region}`",
                SPACES_REGIONS.join(", ")
            )));
        }
        let Some(config) = &self.config else {
            return Err(invalid(format!(
                "Spaces buckets need a Spaces key pair: set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} (create one under \
                 API > Spaces Keys in DigitalOcean's control panel)"
            )));
        };
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        Ok(stores.entry(region.to_string()).or_insert_with(|| config.store(region)).clone())
    }
}

impl DigitalOcean {
    /// The region a bucket of Konstacks was made in, from its record.
    async fn bucket_region(&self, cx: &OpContext, name: &str) -> ProviderResult<Option<String>> {
        let records = self.records(cx).await?;
        Ok(owned(&records, RecordKind::Bucket, name).and_then(|w| w.region))
    }

    fn with_record(mut b: BucketObserved, tags: Option<konstacks_core::spec::Tags>) -> BucketObserved {
        b.tags = tags.unwrap_or_default();
        b
    }
}

#[async_trait::async_trait]
impl Api<Bucket> for DigitalOcean {
    async fn create(&self, cx: &OpContext, spec: &BucketSpec) -> ProviderResult<BucketObserved> {
        let store = self.spaces.store(&spec.region)?;
        let fields = fields_of(RecordKind::Bucket, &spec.name, &spec.name, &spec.region, &spec.tags)?;
        let created = store.create(cx, spec).await?;
        if let Err(e) = self.write_owned(cx, RecordKind::Bucket, &spec.name, &fields).await {
            // The bucket is new and empty: without its record it would be nobody's, so it goes.
            if let Err(cleanup) = store.delete_bucket_now(&spec.name).await {
                tracing::warn!(bucket = %spec.name, error = %cleanup, "could not delete an unrecorded new bucket");
            }
            return Err(e);
        }
        Ok(Self::with_record(created, Some(spec.tags.clone())))
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<BucketObserved>> {
        let records = self.records(cx).await?;
        let names: Vec<String> = match sel {
            Selector::Ids(ids) => ids.clone(),
            Selector::Stack(s) => {
                // A Spaces listing holds the account's buckets of every region.
                let Some(region) = SPACES_REGIONS.iter().find(|r| self.spaces.store(r).is_ok()) else {
                    return Ok(Vec::new());
                };
                let all = self.spaces.store(region)?.bucket_names().await?;
                all.into_iter()
                    .filter(|n| {
                        owned(&records, RecordKind::Bucket, n).is_some_and(|w| w.tags.get(TAG_STACK) == Some(s))
                    })
                    .collect()
            }
            _ => return Err(invalid("this selector is not supported by the DigitalOcean Spaces backend")),
        };
        let mut out = Vec::new();
        for name in names {
            let Some(w) = owned(&records, RecordKind::Bucket, &name) else { continue };
            let Some(region) = w.region.clone() else { continue };
            if let Some(b) = self.spaces.store(&region)?.read_bucket(&name).await? {
                out.push(Self::with_record(b, Some(w.tags)));
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &BucketSpec) -> ProviderResult<BucketObserved> {
        let store = self.spaces.store(&spec.region)?;
        let fields = fields_of(RecordKind::Bucket, id, &spec.name, &spec.region, &spec.tags)?;
        if let Some(region) = self.bucket_region(cx, id).await?.filter(|r| *r != spec.region) {
            return Err(invalid(format!("bucket `{id}` is in `{region}`; a bucket cannot move, it must be replaced")));
        }
        let updated = store.update(cx, id, spec).await?;
        self.write_owned(cx, RecordKind::Bucket, id, &fields).await?;
        Ok(Self::with_record(updated, Some(spec.tags.clone())))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        // Without its record the bucket is gone already (its record goes last).
        let Some(region) = self.bucket_region(cx, id).await? else { return Ok(()) };
        self.spaces.store(&region)?.delete_bucket_now(id).await?;
        self.forget_owned(cx, RecordKind::Bucket, &[id.to_string()]).await
    }
}
