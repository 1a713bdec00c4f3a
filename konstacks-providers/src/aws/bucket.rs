//! S3 buckets.
//!
//! A bucket is an S3 bucket in the provider's region whose name is the physical name (and its
//! Konstacks id). Konstacks owns the bucket's public access block, default encryption,
//! versioning, lifecycle configuration, CORS configuration, tags and bucket policy: each is
//! written whole. Public access is blocked (all four switches on) unless the spec allows public
//! read with a recorded reason; then the policy switches of the block are relaxed and the bucket
//! policy grants `s3:GetObject` to everyone (and nothing else). Versioning is never sent for a
//! bucket that was never versioned; turning it off suspends it. Konstacks never empties a
//! bucket: deleting one that holds objects fails with a `Conflict` until someone empties it.
//!
//! Everything the cloud refuses for certain (bad names, empty KMS keys, zero-day expiry, bad CORS
//! rules, reserved tags) is refused before any request.
//!
//! The S3 calls live in [`S3Buckets`], one store of buckets, so that an S3-compatible store
//! (DigitalOcean Spaces, see `digitalocean::spaces`) runs the same code with what it lacks
//! switched off ([`S3Flavour`]).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus, CorsConfiguration,
    CorsRule as S3CorsRule, CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, VersioningConfiguration,
};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::bucket::{bucket_name_problems, is_cors_origin, CORS_METHODS};
use konstacks_core::spec::{
    Bucket, BucketEncryption, BucketObserved, BucketSpec, CorsRule, ExpiryRule, Selector, Tags, VersioningStatus,
    TAG_STACK,
};

use super::error::{aws_code, invalid, sdk_error};
use super::{check_tags, follow_up, read_chunks, visible_tags, AwsProvider};

/// The `Sid` of the one statement Konstacks writes into a public bucket's policy.
const PUBLIC_READ_SID: &str = "KonstacksPublicRead";
/// S3 codes meaning "this bucket has no such configuration" (not "no such bucket").
const NO_CONFIG: &[&str] = &[
    "NoSuchLifecycleConfiguration",
    "NoSuchCORSConfiguration",
    "NoSuchTagSet",
    "NoSuchTagSetError",
    "NoSuchBucketPolicy",
    "NoSuchPublicAccessBlockConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError",
];
/// How much of S3 a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum S3Flavour {
    /// AWS S3: location constraints, public access blocks, bucket encryption, bucket tags.
    Aws,
    /// DigitalOcean Spaces: the endpoint is the region, there is no public access block (buckets
    /// are private unless a policy opens them) and no bucket encryption setting (objects are
    /// stored encrypted by the provider), and tags are kept by the DigitalOcean backend.
    Spaces,
}

/// The bucket operations against one store of buckets.
#[derive(Debug, Clone)]
pub(crate) struct S3Buckets {
    /// The client, signed for the store.
    pub(crate) s3: aws_sdk_s3::Client,
    /// The store's region (the provider's).
    pub(crate) region: String,
    /// How long follow-up calls on a bucket created moments ago are retried.
    pub(crate) patience: Duration,
    /// What the store speaks.
    pub(crate) flavour: S3Flavour,
}

/// S3 codes of a bucket that lives in another region than the client's.
const OTHER_REGION: &[&str] =
    &["PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"];

fn build_failed(what: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(ErrorKind::Other, format!("internal: could not build the S3 request for {what}: {e}"))
}

/// `Ok(None)` when S3 says the configuration does not exist.
fn absent_config<T>(r: ProviderResult<T>) -> ProviderResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if aws_code(&e).is_some_and(|c| NO_CONFIG.contains(&c)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

fn endpoint_of(name: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://{name}.s3.{region}.{suffix}")
}

/// The bucket policy granting anyone `s3:GetObject` on every object.
fn public_read_policy(name: &str, region: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": PUBLIC_READ_SID,
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": format!("arn:{}:s3:::{name}/*", partition(region)),
        }],
    })
    .to_string()
}

/// Whether a bucket policy lets anyone read objects.
fn grants_public_read(policy: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else { return false };
    let statements = match doc.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        Some(s) => vec![s.clone()],
        None => return false,
    };
    let has = |v: Option<&serde_json::Value>, want: &[&str]| match v {
        Some(serde_json::Value::String(s)) => want.contains(&s.as_str()),
        Some(serde_json::Value::Array(a)) => a.iter().any(|s| s.as_str().is_some_and(|s| want.contains(&s))),
        _ => false,
    };
    statements.iter().any(|s| {
        let principal = s.get("Principal");
        let everyone = has(principal, &["*"]) || has(principal.and_then(|p| p.get("AWS")), &["*"]);
        s.get("Effect").and_then(|e| e.as_str()) == Some("Allow")
            && everyone
            && has(s.get("Action"), &["s3:GetObject", "s3:*", "*"])
            && s.get("Condition").is_none()
    })
}

/// What the store refuses for certain, checked before any request; every problem in one error.
fn check_bucket_spec_on(flavour: S3Flavour, what: &str, spec: &BucketSpec) -> ProviderResult<()> {
    let mut problems: Vec<String> =
        bucket_name_problems(&spec.name).iter().map(|r| format!("bucket name `{}`: {r}", spec.name)).collect();
    if let BucketEncryption::Kms(key) = &spec.encryption {
        if flavour == S3Flavour::Spaces {
            problems.push("Spaces has no customer-managed (KMS) bucket encryption; use the provider's".into());
        } else if key.trim().is_empty() {
            problems.push("KMS encryption needs a key id, ARN or alias".into());
        }
    }
    let mut prefixes: Vec<&str> = Vec::new();
    for r in &spec.lifecycle {
        if r.days == 0 || i32::try_from(r.days).is_err() {
            problems.push(format!("the expiry rule for prefix {:?} must expire objects after 1 day or more", r.prefix));
        }
        if prefixes.contains(&r.prefix.as_str()) {
            problems.push(format!("prefix {:?} has two expiry rules", r.prefix));
        }
        prefixes.push(&r.prefix);
    }
    for r in &spec.cors {
        if r.origins.is_empty() || r.methods.is_empty() {
            problems.push("a CORS rule needs at least one origin and one method".into());
        }
        problems
            .extend(r.origins.iter().filter(|o| !is_cors_origin(o)).map(|o| format!("CORS origin {o:?} is not valid")));
        problems.extend(
            r.methods
                .iter()
                .filter(|m| !CORS_METHODS.contains(&m.as_str()))
                .map(|m| format!("CORS method {m:?} is not one of {}", CORS_METHODS.join(", "))),
        );
    }
    if spec.public_read && spec.public_read_reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        problems.push("public read access needs a recorded reason".into());
    }
    if problems.is_empty() {
        // Spaces keeps no bucket tags: the DigitalOcean backend checks its own labels.
        if flavour == S3Flavour::Aws {
            check_tags(what, &spec.tags, 0)
        } else {
            Ok(())
        }
    } else {
        Err(invalid(format!("{what}: {}", problems.join("; "))))
    }
}

fn s3_tags(tags: &Tags) -> ProviderResult<Tagging> {
    let set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(|e| build_failed("a tag", e)))
        .collect::<ProviderResult<Vec<Tag>>>()?;
    Tagging::builder().set_tag_set(Some(set)).build().map_err(|e| build_failed("the tag set", e))
}

fn lifecycle_config(rules: &[ExpiryRule]) -> ProviderResult<BucketLifecycleConfiguration> {
    let mut sorted = rules.to_vec();
    sorted.sort();
    let rules = sorted
        .iter()
        .enumerate()
        .map(|(i, r)| {
            LifecycleRule::builder()
                .id(format!("konstacks-expire-{i}"))
                .filter(LifecycleRuleFilter::builder().prefix(&r.prefix).build())
                .expiration(LifecycleExpiration::builder().days(i32::try_from(r.days).unwrap_or(i32::MAX)).build())
                .status(ExpirationStatus::Enabled)
                .build()
                .map_err(|e| build_failed("a lifecycle rule", e))
        })
        .collect::<ProviderResult<Vec<_>>>()?;
    BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .map_err(|e| build_failed("the lifecycle configuration", e))
}

fn cors_config(rules: &[CorsRule]) -> ProviderResult<CorsConfiguration> {
    let rules = rules
        .iter()
        .map(|r| {
            S3CorsRule::builder()
                .set_allowed_origins(Some(r.origins.clone()))
                .set_allowed_methods(Some(r.methods.clone()))
                .set_allowed_headers(if r.headers.is_empty() { None } else { Some(r.headers.clone()) })
                .set_max_age_seconds(if r.max_age == 0 { None } else { i32::try_from(r.max_age).ok() })
                .build()
                .map_err(|e| build_failed("a CORS rule", e))
        })
        .collect::<ProviderResult<Vec<_>>>()?;
    CorsConfiguration::builder().set_cors_rules(Some(rules)).build().map_err(|e| build_failed("the CORS rules", e))
}

fn encryption_config(e: &BucketEncryption) -> ProviderResult<ServerSideEncryptionConfiguration> {
    let (default, bucket_key) = match e {
        BucketEncryption::Kms(key) => (
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::AwsKms)
                .kms_master_key_id(key)
                .build(),
            true,
        ),
        _ => (ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build(), false),
    };
    let default = default.map_err(|e| build_failed("the default encryption", e))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(default)
        .bucket_key_enabled(bucket_key)
        .build();
    ServerSideEncryptionConfiguration::builder()
        .rules(rule)
        .build()
        .map_err(|e| build_failed("the encryption configuration", e))
}

/// The public access block: all four switches on, or the two policy switches off for a bucket
/// whose policy grants public read (ACLs stay blocked: Konstacks never grants by ACL).
fn access_block(public_read: bool) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(!public_read)
        .restrict_public_buckets(!public_read)
        .build()
}

/// The region of a `GetBucketLocation` answer (`None`/empty is `us-east-1`, `EU` is `eu-west-1`).
fn region_of(c: Option<&BucketLocationConstraint>) -> String {
    match c.map(BucketLocationConstraint::as_str) {
        None | Some("") => "us-east-1".into(),
        Some("EU") => "eu-west-1".into(),
        Some(r) => r.to_string(),
    }
}

impl S3Buckets {
    /// The region a bucket of this store lives in; `None` when it does not exist (or, on AWS,
    /// lives in another region).
    async fn region_of_bucket(&self, name: &str) -> ProviderResult<Option<String>> {
        let s3 = &self.s3;
        let what = format!("reading bucket `{name}`");
        if self.flavour == S3Flavour::Spaces {
            // The endpoint is the region.
            return match s3.head_bucket().bucket(name).send().await {
                Ok(_) => Ok(Some(self.region.clone())),
                Err(e) => {
                    let e = sdk_error("HeadBucket", &what, e);
                    match aws_code(&e) {
                        _ if e.kind() == ErrorKind::NotFound => Ok(None),
                        Some("NotFound" | "NoSuchBucket" | "InvalidBucketName") => Ok(None),
                        _ => Err(e),
                    }
                }
            };
        }
        let location = match s3.get_bucket_location().bucket(name).send().await {
            Ok(l) => l,
            Err(e) => {
                let e = sdk_error("GetBucketLocation", &what, e);
                return match aws_code(&e) {
                    _ if e.kind() == ErrorKind::NotFound => Ok(None),
                    Some("InvalidBucketName") => Ok(None),
                    _ => Err(e),
                };
            }
        };
        let region = region_of(location.location_constraint());
        if region != self.region {
            tracing::debug!(bucket = name, region, "bucket lives in another region; not this provider's");
            return Ok(None);
        }
        Ok(Some(region))
    }

    /// The bucket `name` as S3 sees it; `None` when it does not exist or lives in another region.
    pub(crate) async fn read_bucket(&self, name: &str) -> ProviderResult<Option<BucketObserved>> {
        let s3 = &self.s3;
        let what = format!("reading bucket `{name}`");
        let Some(region) = self.region_of_bucket(name).await? else { return Ok(None) };
        let aws = self.flavour == S3Flavour::Aws;
        let versioning = async {
            s3.get_bucket_versioning().bucket(name).send().await.map_err(|e| sdk_error("GetBucketVersioning", &what, e))
        };
        let encryption = async {
            if !aws {
                return Ok(None);
            }
            absent_config(
                s3.get_bucket_encryption()
                    .bucket(name)
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetBucketEncryption", &what, e)),
            )
        };
        let lifecycle = async {
            absent_config(
                s3.get_bucket_lifecycle_configuration()
                    .bucket(name)
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetBucketLifecycleConfiguration", &what, e)),
            )
        };
        let cors = async {
            absent_config(
                s3.get_bucket_cors().bucket(name).send().await.map_err(|e| sdk_error("GetBucketCors", &what, e)),
            )
        };
        let tagging = async {
            if !aws {
                return Ok(None);
            }
            absent_config(
                s3.get_bucket_tagging().bucket(name).send().await.map_err(|e| sdk_error("GetBucketTagging", &what, e)),
            )
        };
        let policy = async {
            absent_config(
                s3.get_bucket_policy().bucket(name).send().await.map_err(|e| sdk_error("GetBucketPolicy", &what, e)),
            )
        };
        let block = async {
            if !aws {
                return Ok(None);
            }
            absent_config(
                s3.get_public_access_block()
                    .bucket(name)
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetPublicAccessBlock", &what, e)),
            )
        };
        let read = futures::try_join!(versioning, encryption, lifecycle, cors, tagging, policy, block);
        let (versioning, encryption, lifecycle, cors, tagging, policy, block) = match read {
            Ok(r) => r,
            // Deleted between the calls.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let status = match versioning.status() {
            Some(BucketVersioningStatus::Enabled) => VersioningStatus::Enabled,
            Some(BucketVersioningStatus::Suspended) => VersioningStatus::Suspended,
            _ => VersioningStatus::Unversioned,
        };
        let default = encryption
            .as_ref()
            .and_then(|e| e.server_side_encryption_configuration())
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default());
        // Every S3 bucket is encrypted at rest (SSE-S3 when nothing else is configured).
        let encryption = match default {
            Some(d) if d.sse_algorithm().as_str().starts_with("aws:kms") => {
                BucketEncryption::Kms(d.kms_master_key_id().unwrap_or("aws/s3").to_string())
            }
            _ => BucketEncryption::ProviderManaged,
        };
        let mut lifecycle: Vec<ExpiryRule> = lifecycle
            .as_ref()
            .map(|l| l.rules())
            .unwrap_or_default()
            .iter()
            .filter(|r| r.status() == &ExpirationStatus::Enabled)
            .filter_map(|r| {
                let days = u32::try_from(r.expiration()?.days()?).ok()?;
                #[allow(deprecated)]
                let prefix = r.filter().and_then(|f| f.prefix()).or(r.prefix()).unwrap_or_default();
                Some(ExpiryRule { prefix: prefix.to_string(), days })
            })
            .collect();
        lifecycle.sort();
        let cors: Vec<CorsRule> = cors
            .as_ref()
            .map(|c| c.cors_rules())
            .unwrap_or_default()
            .iter()
            .map(|r| CorsRule {
                origins: r.allowed_origins().to_vec(),
                methods: r.allowed_methods().to_vec(),
                headers: r.allowed_headers().to_vec(),
                max_age: r.max_age_seconds().and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
            })
            .collect();
        let tags: BTreeMap<&str, &str> =
            tagging.as_ref().map(|t| t.tag_set()).unwrap_or_default().iter().map(|t| (t.key(), t.value())).collect();
        let blocked = block
            .as_ref()
            .and_then(|b| b.public_access_block_configuration())
            .is_some_and(|b| b.block_public_policy() == Some(true) || b.restrict_public_buckets() == Some(true));
        let public_read = !blocked && policy.as_ref().and_then(|p| p.policy()).is_some_and(grants_public_read);
        Ok(Some(BucketObserved {
            id: name.to_string(),
            name: name.to_string(),
            region: region.clone(),
            versioning: status.is_enabled(),
            versioning_status: status,
            encryption,
            lifecycle,
            cors,
            public_read,
            endpoint: match self.flavour {
                S3Flavour::Aws => endpoint_of(name, &region),
                S3Flavour::Spaces => format!("https://{name}.{region}.digitaloceanspaces.com"),
            },
            objects: 0,
            tags: visible_tags(tags),
        }))
    }

    /// Bring every setting Konstacks owns from `cur` (`None`: a bucket created moments ago) to
    /// `spec`, sending only what differs.
    async fn apply_bucket_settings(
        &self,
        cx: &OpContext,
        spec: &BucketSpec,
        cur: Option<&BucketObserved>,
    ) -> ProviderResult<()> {
        let s3 = &self.s3;
        let name = spec.name.as_str();
        let what = format!("bucket `{name}`");
        let patience = self.patience;
        let aws = self.flavour == S3Flavour::Aws;
        if aws && cur.is_none_or(|c| c.tags != spec.tags) {
            let tagging = s3_tags(&spec.tags)?;
            follow_up(cx, patience, || async {
                s3.put_bucket_tagging()
                    .bucket(name)
                    .tagging(tagging.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("PutBucketTagging", &format!("tagging {what}"), e))
            })
            .await?;
        }
        let was_public = cur.is_some_and(|c| c.public_read);
        if !spec.public_read && was_public {
            // Close first: the policy goes before the block is tightened again.
            follow_up(cx, patience, || async {
                s3.delete_bucket_policy()
                    .bucket(name)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteBucketPolicy", &format!("removing the public policy of {what}"), e))
            })
            .await?;
        }
        // The block is always written on create, and whenever public access changes.
        if aws && (cur.is_none() || was_public != spec.public_read) {
            follow_up(cx, patience, || async {
                s3.put_public_access_block()
                    .bucket(name)
                    .public_access_block_configuration(access_block(spec.public_read))
                    .send()
                    .await
                    .map_err(|e| sdk_error("PutPublicAccessBlock", &format!("blocking public access to {what}"), e))
            })
            .await?;
        }
        if spec.public_read && !was_public {
            if let Some(reason) = &spec.public_read_reason {
                tracing::info!(bucket = name, reason = %reason, "opening the bucket to public read");
            }
            let policy = public_read_policy(name, &self.region);
            follow_up(cx, patience, || async {
                s3.put_bucket_policy()
                    .bucket(name)
                    .policy(&policy)
                    .send()
                    .await
                    .map_err(|e| sdk_error("PutBucketPolicy", &format!("granting public read on {what}"), e))
            })
            .await?;
        }
        if aws && cur.is_none_or(|c| c.encryption != spec.encryption) {
            let config = encryption_config(&spec.encryption)?;
            follow_up(cx, patience, || async {
                s3.put_bucket_encryption()
                    .bucket(name)
                    .server_side_encryption_configuration(config.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("PutBucketEncryption", &format!("setting the encryption of {what}"), e))
            })
            .await?;
        }
        let status = cur.map_or(VersioningStatus::Unversioned, |c| c.versioning_status);
        let want = status.after(spec.versioning);
        if want != status && want != VersioningStatus::Unversioned {
            let s = if want.is_enabled() { BucketVersioningStatus::Enabled } else { BucketVersioningStatus::Suspended };
            let config = VersioningConfiguration::builder().status(s).build();
            follow_up(cx, patience, || async {
                s3.put_bucket_versioning()
                    .bucket(name)
                    .versioning_configuration(config.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("PutBucketVersioning", &format!("setting the versioning of {what}"), e))
            })
            .await?;
        }
        let mut lifecycle = spec.lifecycle.clone();
        lifecycle.sort();
        if cur.map_or(!lifecycle.is_empty(), |c| c.lifecycle != lifecycle) {
            if lifecycle.is_empty() {
                follow_up(cx, patience, || async {
                    s3.delete_bucket_lifecycle().bucket(name).send().await.map_err(|e| {
                        sdk_error("DeleteBucketLifecycle", &format!("removing the expiry rules of {what}"), e)
                    })
                })
                .await?;
            } else {
                let config = lifecycle_config(&lifecycle)?;
                follow_up(cx, patience, || async {
                    s3.put_bucket_lifecycle_configuration()
                        .bucket(name)
                        .lifecycle_configuration(config.clone())
                        .send()
                        .await
                        .map_err(|e| {
                            sdk_error(
                                "PutBucketLifecycleConfiguration",
                                &format!("setting the expiry rules of {what}"),
                                e,
                            )
                        })
                })
                .await?;
            }
        }
        if cur.map_or(!spec.cors.is_empty(), |c| c.cors != spec.cors) {
            if spec.cors.is_empty() {
                follow_up(cx, patience, || async {
                    s3.delete_bucket_cors()
                        .bucket(name)
                        .send()
                        .await
                        .map_err(|e| sdk_error("DeleteBucketCors", &format!("removing the CORS rules of {what}"), e))
                })
                .await?;
            } else {
                let config = cors_config(&spec.cors)?;
                follow_up(cx, patience, || async {
                    s3.put_bucket_cors()
                        .bucket(name)
                        .cors_configuration(config.clone())
                        .send()
                        .await
                        .map_err(|e| sdk_error("PutBucketCors", &format!("setting the CORS rules of {what}"), e))
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Read the bucket after a change: S3 is eventually consistent, so a bucket written moments
    /// ago may not be visible at once.
    async fn read_bucket_after(&self, cx: &OpContext, name: &str) -> ProviderResult<BucketObserved> {
        follow_up(cx, self.patience, || async {
            self.read_bucket(name).await?.ok_or_else(|| {
                ProviderError::not_found(format!("bucket `{name}` is not visible in `{}` yet", self.region))
            })
        })
        .await
    }

    /// Names of the buckets of this region tagged with `stack`.
    async fn buckets_of_stack(&self, stack: &str) -> ProviderResult<Vec<String>> {
        let s3 = &self.s3;
        let names = self.bucket_names().await?;
        let chunks = names.into_iter().map(|n| vec![n]).collect();
        read_chunks(chunks, |chunk| async move {
            let mut mine = Vec::new();
            for name in chunk {
                let r = s3
                    .get_bucket_tagging()
                    .bucket(&name)
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetBucketTagging", &format!("reading the tags of bucket `{name}`"), e));
                match r {
                    Ok(t) if t.tag_set().iter().any(|t| t.key() == TAG_STACK && t.value() == stack) => mine.push(name),
                    Ok(_) => {}
                    Err(e)
                        if e.kind() == ErrorKind::NotFound
                            || aws_code(&e).is_some_and(|c| NO_CONFIG.contains(&c) || OTHER_REGION.contains(&c)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(mine)
        })
        .await
    }

    pub(crate) async fn delete_bucket_now(&self, name: &str) -> ProviderResult<()> {
        let r = self.s3.delete_bucket().bucket(name).send().await;
        match r.map_err(|e| sdk_error("DeleteBucket", &format!("deleting bucket `{name}`"), e)) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) if aws_code(&e) == Some("BucketNotEmpty") => Err(ProviderError::new(
                ErrorKind::Conflict,
                format!(
                    "bucket `{name}` still holds objects (or object versions) and Konstacks never empties a bucket: \
                     empty it yourself (every object and every version), then delete it again"
                ),
            )
            .with_source(e)),
            Err(e) => Err(e),
        }
    }

    /// Names of every bucket of the store (its own region's on AWS).
    pub(crate) async fn bucket_names(&self) -> ProviderResult<Vec<String>> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .s3
                .list_buckets()
                .max_buckets(1000)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("ListBuckets", "listing buckets", e))?;
            names.extend(
                page.buckets()
                    .iter()
                    .filter(|b| self.flavour == S3Flavour::Spaces || b.bucket_region().is_none_or(|r| r == self.region))
                    .filter_map(|b| b.name().map(str::to_string)),
            );
            match page.continuation_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Create the bucket of `spec` with every setting; a failed create leaves nothing.
    pub(crate) async fn create(&self, cx: &OpContext, spec: &BucketSpec) -> ProviderResult<BucketObserved> {
        let what = format!("bucket `{}`", spec.name);
        check_bucket_spec_on(self.flavour, &what, spec)?;
        let s3 = &self.s3;
        // Where no location constraint is sent, S3 answers success to a create of a bucket the
        // account already owns.
        let constrained = self.flavour == S3Flavour::Aws && self.region != "us-east-1";
        if !constrained {
            // There S3 answers success to a create of a bucket the account already owns.
            let head = s3.head_bucket().bucket(&spec.name).send().await;
            if head.is_ok() {
                return Err(ProviderError::new(
                    ErrorKind::AlreadyExists,
                    format!("{what} already exists in this account; pick another name or adopt it"),
                ));
            }
        }
        let mut req = s3.create_bucket().bucket(&spec.name);
        if constrained {
            let constraint = BucketLocationConstraint::from(self.region.as_str());
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder().location_constraint(constraint).build(),
            );
        }
        req.send().await.map_err(|e| {
            let e = sdk_error("CreateBucket", &format!("creating {what}"), e);
            match aws_code(&e) {
                Some("BucketAlreadyExists") => ProviderError::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "{what}: the name is taken by another account (bucket names are global across AWS); pick \
                         another name"
                    ),
                )
                .with_source(e),
                Some("BucketAlreadyOwnedByYou") => ProviderError::new(
                    ErrorKind::AlreadyExists,
                    format!("{what} already exists in this account; pick another name or adopt it"),
                )
                .with_source(e),
                _ => e,
            }
        })?;
        let settled = async {
            self.apply_bucket_settings(cx, spec, None).await?;
            self.read_bucket_after(cx, &spec.name).await
        };
        match settled.await {
            Ok(obs) => Ok(obs),
            Err(e) => {
                // A failed create creates nothing: the bucket is new and empty, so it can go.
                if let Err(cleanup) = self.delete_bucket_now(&spec.name).await {
                    tracing::warn!(bucket = %spec.name, error = %cleanup, "could not delete a half-created bucket");
                }
                Err(e)
            }
        }
    }

    /// The buckets of `sel` (by stack through their `konstacks:stack` tag: AWS only).
    pub(crate) async fn read_many(&self, sel: &Selector) -> ProviderResult<Vec<BucketObserved>> {
        let mut names = match sel {
            Selector::Ids(ids) => ids.iter().filter(|s| !s.is_empty()).cloned().collect(),
            Selector::Stack(stack) => self.buckets_of_stack(stack).await?,
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        };
        names.sort();
        names.dedup();
        let chunks = names.into_iter().map(|n| vec![n]).collect();
        let mut out = read_chunks(chunks, |chunk| async move {
            let mut found = Vec::new();
            for name in chunk {
                found.extend(self.read_bucket(&name).await?);
            }
            Ok(found)
        })
        .await?;
        if let Selector::Stack(stack) = sel {
            out.retain(|b| b.tags.get(TAG_STACK) == Some(stack));
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Bring the bucket `id` to `spec`, sending only what differs.
    pub(crate) async fn update(&self, cx: &OpContext, id: &str, spec: &BucketSpec) -> ProviderResult<BucketObserved> {
        let what = format!("bucket `{id}`");
        if spec.name != id {
            return Err(invalid(format!(
                "{what}: a bucket cannot be renamed (to `{}`); it must be replaced",
                spec.name
            )));
        }
        check_bucket_spec_on(self.flavour, &what, spec)?;
        let cur = self
            .read_bucket(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("{what} does not exist in `{}`", self.region)))?;
        self.apply_bucket_settings(cx, spec, Some(&cur)).await?;
        self.read_bucket_after(cx, id).await
    }
}

impl AwsProvider {
    /// The bucket store of this account and region.
    fn buckets(&self) -> S3Buckets {
        S3Buckets {
            s3: self.serving.s3.clone(),
            region: self.region.clone(),
            patience: self.settings.timeouts.follow_up,
            flavour: S3Flavour::Aws,
        }
    }
}

#[async_trait::async_trait]
impl Api<Bucket> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &BucketSpec) -> ProviderResult<BucketObserved> {
        self.check_region(&format!("bucket `{}`", spec.name), &spec.region)?;
        self.buckets().create(cx, spec).await
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<BucketObserved>> {
        self.buckets().read_many(sel).await
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &BucketSpec) -> ProviderResult<BucketObserved> {
        self.check_region(&format!("bucket `{id}`"), &spec.region)?;
        self.buckets().update(cx, id, spec).await
    }

    async fn delete(&self, _cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.buckets().delete_bucket_now(id).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]

    use super::*;

    fn spec(name: &str) -> BucketSpec {
        BucketSpec {
            name: name.into(),
            region: "eu-central-1".into(),
            versioning: true,
            encryption: BucketEncryption::ProviderManaged,
            lifecycle: Vec::new(),
            cors: Vec::new(),
            public_read: false,
            public_read_reason: None,
            assumed_gb_stored: 0.0,
            assumed_read_requests: 0,
            assumed_write_requests: 0,
            tags: Tags::new(),
        }
    }

    #[test]
    fn names_s3_refuses_are_refused_with_every_rule() {
        assert!(check_bucket_spec_on(S3Flavour::Aws, "b", &spec("shop-prod-assets")).is_ok());
        for bad in ["xn--shop", "shop-s3alias", "192.168.1.1", "Shop", "a", "shop.assets", "-shop"] {
            assert!(check_bucket_spec_on(S3Flavour::Aws, "b", &spec(bad)).is_err(), "{bad}");
        }
        let mut s = spec("xn--shop-s3alias");
        s.encryption = BucketEncryption::kms(" ");
        s.lifecycle = vec![ExpiryRule { prefix: "tmp/".into(), days: 0 }];
        s.public_read = true;
        let msg =
            check_bucket_spec_on(S3Flavour::Aws, "b", &s).err().map(|e| e.message().to_string()).unwrap_or_default();
        for want in ["xn--", "-s3alias", "KMS", "1 day", "reason"] {
            assert!(msg.contains(want), "{want} missing from {msg}");
        }
    }

    #[test]
    fn the_public_policy_is_recognised() {
        let p = public_read_policy("b", "eu-central-1");
        assert!(grants_public_read(&p));
        assert!(p.contains("arn:aws:s3:::b/*"));
        assert!(public_read_policy("b", "cn-north-1").contains("arn:aws-cn:"));
        assert!(!grants_public_read(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"s3:GetObject"}]}"#
        ));
        assert!(!grants_public_read("not json"));
    }

    /// A provider that points nowhere: any request would fail, and the counter shows none is made.
    fn offline() -> AwsProvider {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-central-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        match AwsProvider::builder(&sdk).build() {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn bad_buckets_are_refused_with_zero_requests() {
        let aws = offline();
        let cx = OpContext::new(konstacks_core::clock::TokioClock::shared(), "t");
        let mut other_region = spec("shop-assets");
        other_region.region = "us-west-2".into();
        let mut kms = spec("shop-assets");
        kms.encryption = BucketEncryption::kms("");
        for bad in [spec("xn--shop"), spec("shop-s3alias"), spec("10.0.0.1"), other_region, kms] {
            let e = Api::<Bucket>::create(&aws, &cx, &bad).await.err();
            assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::InvalidSpec), "{}", bad.name);
            let e = Api::<Bucket>::update(&aws, &cx, &bad.name, &bad).await.err();
            assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::InvalidSpec), "{}", bad.name);
        }
        assert_eq!(aws.api_calls().total, 0);
    }

    #[test]
    fn locations() {
        assert_eq!(region_of(None), "us-east-1");
        assert_eq!(region_of(Some(&BucketLocationConstraint::from("EU"))), "eu-west-1");
        assert_eq!(region_of(Some(&BucketLocationConstraint::from("eu-central-1"))), "eu-central-1");
    }

    #[test]
    fn blocks() {
        let b = access_block(false);
        assert_eq!(b.block_public_policy(), Some(true));
        let b = access_block(true);
        assert_eq!((b.block_public_acls(), b.restrict_public_buckets()), (Some(true), Some(false)));
    }
}
