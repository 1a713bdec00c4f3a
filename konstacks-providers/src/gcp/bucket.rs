//! `Bucket`: Cloud Storage buckets, through the Cloud Storage JSON API v1 ([`StorageApi`]).
//!
//! Google's Rust crate `google-cloud-storage` manages buckets over gRPC (storage v2) only, which
//! no discovery document describes; the JSON API is the one the `storage/v1` discovery document
//! describes, so every request and answer can be held against it (the tests' fake does).
//!
//! A bucket's id is its name (bucket names are global across Google Cloud). It lives in the
//! backend's region (`location` = the region, `locationType: region`), in the `STANDARD` storage
//! class, with uniform bucket-level access (IAM only, no ACLs). Konstacks owns its versioning,
//! lifecycle rules, CORS rules, default encryption key, labels and public access:
//!
//! - Public access prevention is `enforced` unless the spec allows public read with a recorded
//!   reason; then it is `inherited` and the bucket's IAM policy binds `allUsers` to
//!   `roles/storage.objectViewer` (read objects, nothing else), read-modify-written with the
//!   policy's etag so that other bindings stay. Closing removes that member first, then enforces
//!   prevention again. A bucket whose prevention is `enforced` is private without an IAM call.
//! - Versioning is never sent for a bucket that was never versioned; Google then shows no
//!   `versioning` at all (unversioned), and `enabled: false` once it was turned off (suspended).
//! - An expiry rule is a lifecycle rule `Delete` at `age` days, with `matchesPrefix` for a
//!   prefix. Lifecycle rules of other shapes are not Konstacks' and are not shown; writing the
//!   expiry rules replaces the whole lifecycle configuration.
//! - A CORS rule's request headers go to `responseHeader`, which Cloud Storage answers both as
//!   `Access-Control-Allow-Headers` (preflight) and `Access-Control-Expose-Headers`. Cloud
//!   Storage matches origins exactly or `*`: a wildcard origin such as `https://*.example.com`
//!   is refused before any request.
//! - Encryption is Google-managed unless the spec names a Cloud KMS key, which must be a key of
//!   the bucket's region (`projects/P/locations/<region>/keyRings/R/cryptoKeys/K`, checked before
//!   any request); Cloud Storage's service agent needs `roles/cloudkms.cryptoKeyEncrypterDecrypter`
//!   on it (see `docs/gcp.md`).
//! - Tags are labels, encoded as everywhere on GCP ([`super::labels`]); a patch sends only the
//!   labels that change (`null` for the ones that go).
//!
//! Updates are one `PATCH` with only the fields that differ. Batched reads by stack list the
//! project's buckets whose names start with `<stack>-` (every physical name does) page by page,
//! and keep those whose labels name the stack and whose location is the region; a bucket
//! imported under another name is read by id only. Konstacks never empties a bucket: Google
//! refuses to delete one that holds objects (409), which comes back as a `Conflict` until
//! someone empties it. A name taken by this or another project is `AlreadyExists`.
//!
//! Everything Cloud Storage refuses for certain (bad names, a key of another region, zero-day
//! expiry, bad CORS rules, too many labels) is refused before any request.

use std::collections::BTreeMap;

use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::bucket::{bucket_name_problems, is_cors_origin, CORS_METHODS};
use konstacks_core::spec::{
    Bucket, BucketEncryption, BucketObserved, BucketSpec, CorsRule, ExpiryRule, Selector, VersioningStatus, TAG_STACK,
};
use serde_json::{json, Map, Value};

use super::labels::{self, Payload};
use super::storage_api::{StorageApi, StorageError};
use super::{error, invalid, Gcp};

/// The role that lets its members read objects (and list them), nothing else.
const VIEWER_ROLE: &str = "roles/storage.objectViewer";
/// The member that is anyone on the internet.
const ALL_USERS: &str = "allUsers";
/// Most buckets a list page asks for.
const PAGE_SIZE: &str = "1000";

/// A bucket as the JSON API answers it (the fields Konstacks reads).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GcsBucket {
    name: String,
    location: String,
    versioning: Option<GcsVersioning>,
    encryption: Option<GcsEncryption>,
    lifecycle: Option<GcsLifecycle>,
    cors: Vec<GcsCors>,
    labels: BTreeMap<String, String>,
    iam_configuration: Option<GcsIamConfiguration>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
struct GcsVersioning {
    enabled: bool,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GcsEncryption {
    default_kms_key_name: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
struct GcsLifecycle {
    rule: Vec<GcsRule>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
struct GcsRule {
    action: Map<String, Value>,
    condition: Map<String, Value>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GcsCors {
    origin: Vec<String>,
    method: Vec<String>,
    response_header: Vec<String>,
    max_age_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GcsIamConfiguration {
    public_access_prevention: Option<String>,
}

/// A page of `buckets.list`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GcsBuckets {
    items: Vec<GcsBucket>,
    next_page_token: Option<String>,
}

/// A bucket's IAM policy, kept whole so that a read-modify-write leaves other fields alone.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct GcsPolicy {
    #[serde(default)]
    bindings: Vec<GcsBinding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
struct GcsBinding {
    role: String,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    condition: Option<Value>,
}

impl GcsPolicy {
    /// Whether anyone may read objects (an unconditional `allUsers` binding of the viewer role).
    fn public_read(&self) -> bool {
        self.bindings
            .iter()
            .any(|b| b.role == VIEWER_ROLE && b.condition.is_none() && b.members.iter().any(|m| m == ALL_USERS))
    }

    /// Add or remove the `allUsers` viewer binding; `false` when nothing changes.
    fn set_public_read(&mut self, on: bool) -> bool {
        if self.public_read() == on {
            return false;
        }
        if on {
            match self.bindings.iter_mut().find(|b| b.role == VIEWER_ROLE && b.condition.is_none()) {
                Some(b) => b.members.push(ALL_USERS.to_string()),
                None => self.bindings.push(GcsBinding {
                    role: VIEWER_ROLE.to_string(),
                    members: vec![ALL_USERS.to_string()],
                    condition: None,
                }),
            }
        } else {
            for b in self.bindings.iter_mut().filter(|b| b.role == VIEWER_ROLE && b.condition.is_none()) {
                b.members.retain(|m| m != ALL_USERS);
            }
            self.bindings.retain(|b| !b.members.is_empty());
        }
        true
    }
}

/// A failed Cloud Storage call while doing `what`, as a portable error.
fn storage_error(what: &str, e: StorageError) -> ProviderError {
    let kind = match e.status {
        0 if e.reason == "credentials" => ErrorKind::PermissionDenied,
        0 => ErrorKind::Transient,
        // `conflict` is a taken name on insert, a non-empty bucket on delete (mapped there).
        status => error::kind_of(Some(status), None, std::slice::from_ref(&e.reason)),
    };
    let reason = if e.reason.is_empty() { String::new() } else { format!(", {}", e.reason) };
    let status = if e.status == 0 { "no HTTP answer".to_string() } else { format!("HTTP {}", e.status) };
    ProviderError::new(kind, format!("{what}: {} ({status}{reason})", e.message)).with_source(e)
}

/// The public endpoint of a bucket (virtual-host style).
fn endpoint_of(name: &str) -> String {
    format!("https://{name}.storage.googleapis.com")
}

/// Whether `key` is a Cloud KMS key resource name of `region`.
fn kms_key_in(key: &str, region: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    parts.len() == 8
        && parts[0] == "projects"
        && parts[2] == "locations"
        && parts[3] == region
        && parts[4] == "keyRings"
        && parts[6] == "cryptoKeys"
        && [parts[1], parts[5], parts[7]].iter().all(|p| !p.is_empty())
}

/// What Cloud Storage refuses for certain, checked before any request; every problem in one
/// error.
fn check_spec(what: &str, region: &str, spec: &BucketSpec) -> ProviderResult<()> {
    let mut problems: Vec<String> =
        bucket_name_problems(&spec.name).iter().map(|r| format!("bucket name `{}`: {r}", spec.name)).collect();
    if spec.region != region {
        problems.push(format!(
            "this GCP backend works in `{region}`, not `{}`; register one backend per region",
            spec.region
        ));
    }
    if let BucketEncryption::Kms(key) = &spec.encryption {
        if !kms_key_in(key, region) {
            problems.push(format!(
                "KMS key {key:?} is not a Cloud KMS key of `{region}` (Cloud Storage needs a key in the bucket's \
                 location: `projects/<project>/locations/{region}/keyRings/<ring>/cryptoKeys/<key>`)"
            ));
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
        for o in &r.origins {
            if !is_cors_origin(o) {
                problems.push(format!("CORS origin {o:?} is not valid"));
            } else if o != "*" && o.contains('*') {
                problems.push(format!(
                    "CORS origin {o:?}: Cloud Storage matches origins exactly or `*`, not with wildcards; list each \
                     origin"
                ));
            }
        }
        problems.extend(
            r.methods
                .iter()
                .filter(|m| !CORS_METHODS.contains(&m.as_str()))
                .map(|m| format!("CORS method {m:?} is not one of {}", CORS_METHODS.join(", "))),
        );
        if i32::try_from(r.max_age).is_err() {
            problems.push(format!("CORS max age {} is too long", r.max_age));
        }
    }
    if spec.public_read && spec.public_read_reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        problems.push("public read access needs a recorded reason".into());
    }
    if let Err(e) = labels::to_labels(&Payload::new(&spec.tags)) {
        problems.push(e);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid(format!("{what}: {}", problems.join("; "))))
    }
}

fn lifecycle_json(rules: &[ExpiryRule]) -> Value {
    let mut sorted = rules.to_vec();
    sorted.sort();
    let rules: Vec<Value> = sorted
        .iter()
        .map(|r| {
            let mut condition = json!({ "age": r.days });
            if !r.prefix.is_empty() {
                condition["matchesPrefix"] = json!([r.prefix]);
            }
            json!({ "action": { "type": "Delete" }, "condition": condition })
        })
        .collect();
    json!({ "rule": rules })
}

fn cors_json(rules: &[CorsRule]) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| {
                let mut v = json!({ "origin": r.origins, "method": r.methods });
                if !r.headers.is_empty() {
                    v["responseHeader"] = json!(r.headers);
                }
                if r.max_age > 0 {
                    v["maxAgeSeconds"] = json!(r.max_age);
                }
                v
            })
            .collect(),
    )
}

fn encryption_json(e: &BucketEncryption) -> Value {
    match e {
        BucketEncryption::Kms(key) => json!({ "defaultKmsKeyName": key }),
        _ => Value::Null,
    }
}

fn prevention(public_read: bool) -> &'static str {
    if public_read {
        "inherited"
    } else {
        "enforced"
    }
}

/// The expiry rules among a bucket's lifecycle rules (`Delete` at an age, for every object or
/// one prefix), sorted.
fn expiry_rules(l: Option<&GcsLifecycle>) -> Vec<ExpiryRule> {
    let mut out: Vec<ExpiryRule> = l
        .map(|l| l.rule.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|r| r.action.get("type").and_then(Value::as_str) == Some("Delete"))
        .filter(|r| r.condition.keys().all(|k| k == "age" || k == "matchesPrefix"))
        .filter_map(|r| {
            let days = u32::try_from(r.condition.get("age")?.as_u64()?).ok()?;
            let prefix = match r.condition.get("matchesPrefix").and_then(Value::as_array).map(Vec::as_slice) {
                None | Some([]) => String::new(),
                Some([p]) => p.as_str()?.to_string(),
                Some(_) => return None,
            };
            Some(ExpiryRule { prefix, days })
        })
        .collect();
    out.sort();
    out
}

fn versioning_of(b: &GcsBucket) -> VersioningStatus {
    match &b.versioning {
        None => VersioningStatus::Unversioned,
        Some(v) if v.enabled => VersioningStatus::Enabled,
        Some(_) => VersioningStatus::Suspended,
    }
}

fn prevention_enforced(b: &GcsBucket) -> bool {
    b.iam_configuration.as_ref().and_then(|c| c.public_access_prevention.as_deref()) == Some("enforced")
}

/// The observed bucket of a JSON API answer, with whether anyone may read it.
fn observed(b: &GcsBucket, public_read: bool) -> BucketObserved {
    let status = versioning_of(b);
    let encryption = match b.encryption.as_ref().and_then(|e| e.default_kms_key_name.as_deref()) {
        Some(key) if !key.is_empty() => BucketEncryption::Kms(key.to_string()),
        _ => BucketEncryption::ProviderManaged,
    };
    let cors = b
        .cors
        .iter()
        .map(|c| CorsRule {
            origins: c.origin.clone(),
            methods: c.method.clone(),
            headers: c.response_header.clone(),
            max_age: c.max_age_seconds.and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
        })
        .collect();
    BucketObserved {
        id: b.name.clone(),
        name: b.name.clone(),
        region: b.location.to_ascii_lowercase(),
        versioning: status.is_enabled(),
        versioning_status: status,
        encryption,
        lifecycle: expiry_rules(b.lifecycle.as_ref()),
        cors,
        public_read,
        endpoint: endpoint_of(&b.name),
        objects: 0,
        tags: labels::from_labels(&b.labels).tags,
    }
}

/// The body of `buckets.insert` for `spec`.
fn insert_body(spec: &BucketSpec, labels: &BTreeMap<String, String>) -> Value {
    let mut body = json!({
        "name": spec.name,
        "location": spec.region,
        "storageClass": "STANDARD",
        "iamConfiguration": {
            "uniformBucketLevelAccess": { "enabled": true },
            "publicAccessPrevention": prevention(spec.public_read),
        },
        "labels": labels,
    });
    // A bucket that was never versioned stays without a versioning configuration.
    if spec.versioning {
        body["versioning"] = json!({ "enabled": true });
    }
    if !spec.lifecycle.is_empty() {
        body["lifecycle"] = lifecycle_json(&spec.lifecycle);
    }
    if !spec.cors.is_empty() {
        body["cors"] = cors_json(&spec.cors);
    }
    if let e @ BucketEncryption::Kms(_) = &spec.encryption {
        body["encryption"] = encryption_json(e);
    }
    body
}

/// The `buckets.patch` body bringing `cur` to `spec` (only what differs), empty when nothing
/// does.
fn patch_body(cur: &GcsBucket, spec: &BucketSpec, labels: &BTreeMap<String, String>) -> Map<String, Value> {
    let now = observed(cur, false);
    let mut body = Map::new();
    let status = now.versioning_status;
    let want = status.after(spec.versioning);
    if want != status && want != VersioningStatus::Unversioned {
        body.insert("versioning".into(), json!({ "enabled": want.is_enabled() }));
    }
    let mut lifecycle = spec.lifecycle.clone();
    lifecycle.sort();
    if now.lifecycle != lifecycle {
        let v = if lifecycle.is_empty() { Value::Null } else { lifecycle_json(&lifecycle) };
        body.insert("lifecycle".into(), v);
    }
    if now.cors != spec.cors {
        let v = if spec.cors.is_empty() { Value::Null } else { cors_json(&spec.cors) };
        body.insert("cors".into(), v);
    }
    if now.encryption != spec.encryption {
        body.insert("encryption".into(), encryption_json(&spec.encryption));
    }
    let mut label_patch = Map::new();
    for (k, v) in labels {
        if cur.labels.get(k) != Some(v) {
            label_patch.insert(k.clone(), json!(v));
        }
    }
    for k in cur.labels.keys().filter(|k| !labels.contains_key(*k)) {
        label_patch.insert(k.clone(), Value::Null);
    }
    if !label_patch.is_empty() {
        body.insert("labels".into(), Value::Object(label_patch));
    }
    body
}

/// The Cloud Storage calls for buckets.
impl Gcp {
    fn gcs(&self) -> &StorageApi {
        &self.storage
    }

    /// `GET b/{name}`; `None` when there is no such bucket.
    async fn get_bucket(&self, name: &str) -> ProviderResult<Option<GcsBucket>> {
        let what = format!("reading bucket `{name}`");
        match self.gcs().call::<GcsBucket>("GET", &format!("b/{name}"), &[], None).await {
            Ok(Some(b)) => Ok(Some(b)),
            Ok(None) => Err(ProviderError::new(ErrorKind::Transient, format!("{what}: Google answered nothing"))),
            Err(e) if e.status == 404 => Ok(None),
            Err(e) => Err(storage_error(&what, e)),
        }
    }

    async fn get_policy(&self, name: &str) -> ProviderResult<GcsPolicy> {
        let what = format!("reading the IAM policy of bucket `{name}`");
        match self.gcs().call::<GcsPolicy>("GET", &format!("b/{name}/iam"), &[], None).await {
            Ok(p) => Ok(p.unwrap_or_default()),
            Err(e) => Err(storage_error(&what, e)),
        }
    }

    /// Grant or revoke public read through the bucket's IAM policy (read-modify-write with the
    /// policy's etag; Google refuses a stale one with 412, which the engine retries).
    async fn set_public_read(&self, name: &str, on: bool, reason: Option<&str>) -> ProviderResult<()> {
        let mut policy = self.get_policy(name).await?;
        if !policy.set_public_read(on) {
            return Ok(());
        }
        if on {
            tracing::info!(bucket = name, reason = reason.unwrap_or_default(), "opening the bucket to public read");
        }
        let what = if on {
            format!("granting public read on bucket `{name}`")
        } else {
            format!("removing public read from bucket `{name}`")
        };
        let body = serde_json::to_value(&policy)
            .map_err(|e| ProviderError::new(ErrorKind::Other, format!("internal: {what}: {e}")))?;
        self.gcs()
            .call::<Value>("PUT", &format!("b/{name}/iam"), &[], Some(&body))
            .await
            .map_err(|e| storage_error(&what, e))?;
        Ok(())
    }

    /// Whether anyone may read `b` (no IAM call when prevention is enforced).
    async fn bucket_public(&self, b: &GcsBucket) -> ProviderResult<bool> {
        if prevention_enforced(b) {
            return Ok(false);
        }
        Ok(self.get_policy(&b.name).await?.public_read())
    }

    /// The bucket `name` of the backend's region, observed; `None` when it does not exist (or
    /// lives elsewhere).
    async fn read_bucket(&self, name: &str) -> ProviderResult<Option<BucketObserved>> {
        let Some(b) = self.get_bucket(name).await? else { return Ok(None) };
        if !b.location.eq_ignore_ascii_case(&self.region) {
            tracing::debug!(bucket = name, location = %b.location, "bucket lives in another location; not this backend's");
            return Ok(None);
        }
        match self.bucket_public(&b).await {
            Ok(public) => Ok(Some(observed(&b, public))),
            // Deleted between the calls.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The buckets of the backend's region whose names start with `prefix`, every page.
    async fn list_buckets(&self, prefix: &str) -> ProviderResult<Vec<GcsBucket>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("project", self.project.clone()),
                ("prefix", prefix.to_string()),
                ("maxResults", PAGE_SIZE.to_string()),
            ];
            if let Some(t) = token.take() {
                query.push(("pageToken", t));
            }
            let page = self
                .gcs()
                .call::<GcsBuckets>("GET", "b", &query, None)
                .await
                .map_err(|e| storage_error(&format!("listing the buckets named `{prefix}*`"), e))?
                .unwrap_or_default();
            out.extend(page.items.into_iter().filter(|b| b.location.eq_ignore_ascii_case(&self.region)));
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Delete the bucket `name`; gone already is deleted.
    async fn delete_bucket_now(&self, name: &str) -> ProviderResult<()> {
        let what = format!("deleting bucket `{name}`");
        match self.gcs().call::<Value>("DELETE", &format!("b/{name}"), &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status == 404 => Ok(()),
            Err(e) if e.status == 409 => Err(ProviderError::new(
                ErrorKind::Conflict,
                format!(
                    "bucket `{name}` still holds objects (or noncurrent versions) and Konstacks never empties a \
                     bucket: empty it yourself (every object and every version), then delete it again"
                ),
            )
            .with_source(e)),
            Err(e) => Err(storage_error(&what, e)),
        }
    }
}

#[async_trait::async_trait]
impl Api<Bucket> for Gcp {
    async fn create(&self, _cx: &OpContext, spec: &BucketSpec) -> ProviderResult<BucketObserved> {
        let what = format!("bucket `{}`", spec.name);
        check_spec(&what, &self.region, spec)?;
        let labels = labels::to_labels(&Payload::new(&spec.tags)).map_err(|e| invalid(format!("{what}: {e}")))?;
        let body = insert_body(spec, &labels);
        let created = self
            .gcs()
            .call::<GcsBucket>("POST", "b", &[("project", self.project.clone())], Some(&body))
            .await
            .map_err(|e| {
                let taken = e.status == 409;
                let err = storage_error(&format!("creating {what}"), e);
                if taken {
                    ProviderError::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "{what}: the name is taken, by this project or another (bucket names are global across \
                             Google Cloud); pick another name or adopt it"
                        ),
                    )
                    .with_source(err)
                } else {
                    err
                }
            })?
            .ok_or_else(|| {
                ProviderError::new(ErrorKind::Transient, format!("creating {what}: Google answered nothing"))
            })?;
        if spec.public_read {
            if let Err(e) = self.set_public_read(&spec.name, true, spec.public_read_reason.as_deref()).await {
                // A failed create creates nothing: the bucket is new and empty, so it can go.
                if let Err(cleanup) = self.delete_bucket_now(&spec.name).await {
                    tracing::warn!(bucket = %spec.name, error = %cleanup, "could not delete a half-created bucket");
                }
                return Err(e);
            }
        }
        Ok(observed(&created, spec.public_read))
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<BucketObserved>> {
        let mut out = match sel {
            Selector::Ids(ids) => {
                let mut names: Vec<&String> = ids.iter().filter(|s| !s.is_empty()).collect();
                names.sort();
                names.dedup();
                let reads = names.into_iter().map(|n| self.read_bucket(n));
                futures::future::try_join_all(reads).await?.into_iter().flatten().collect::<Vec<_>>()
            }
            Selector::Stack(stack) => {
                let mine: Vec<GcsBucket> = self
                    .list_buckets(&format!("{stack}-"))
                    .await?
                    .into_iter()
                    .filter(|b| labels::from_labels(&b.labels).stack() == Some(stack.as_str()))
                    .collect();
                let reads = mine.iter().map(|b| async move {
                    match self.bucket_public(b).await {
                        Ok(public) => Ok(Some(observed(b, public))),
                        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(e),
                    }
                });
                let found: Vec<Option<BucketObserved>> = futures::future::try_join_all(reads).await?;
                found.into_iter().flatten().filter(|b| b.tags.get(TAG_STACK) == Some(stack)).collect()
            }
            _ => return Err(invalid("this selector is not supported by the GCP backend")),
        };
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, _cx: &OpContext, id: &str, spec: &BucketSpec) -> ProviderResult<BucketObserved> {
        let what = format!("bucket `{id}`");
        if spec.name != id {
            return Err(invalid(format!(
                "{what}: a bucket cannot be renamed (to `{}`); it must be replaced",
                spec.name
            )));
        }
        check_spec(&what, &self.region, spec)?;
        let labels = labels::to_labels(&Payload::new(&spec.tags)).map_err(|e| invalid(format!("{what}: {e}")))?;
        let cur = self
            .get_bucket(id)
            .await?
            .filter(|b| b.location.eq_ignore_ascii_case(&self.region))
            .ok_or_else(|| ProviderError::not_found(format!("{what} does not exist in `{}`", self.region)))?;
        let was_public = self.bucket_public(&cur).await?;
        // Close first: the binding goes before prevention is enforced again.
        if was_public && !spec.public_read {
            self.set_public_read(id, false, None).await?;
        }
        let mut body = patch_body(&cur, spec, &labels);
        if prevention_enforced(&cur) == spec.public_read {
            body.insert("iamConfiguration".into(), json!({ "publicAccessPrevention": prevention(spec.public_read) }));
        }
        let mut now = cur;
        if !body.is_empty() {
            now = self
                .gcs()
                .call::<GcsBucket>("PATCH", &format!("b/{id}"), &[], Some(&Value::Object(body)))
                .await
                .map_err(|e| storage_error(&format!("updating {what}"), e))?
                .ok_or_else(|| {
                    ProviderError::new(ErrorKind::Transient, format!("updating {what}: Google answered nothing"))
                })?;
        }
        if spec.public_read && !was_public {
            self.set_public_read(id, true, spec.public_read_reason.as_deref()).await?;
        }
        Ok(observed(&now, spec.public_read))
    }

    async fn delete(&self, _cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.delete_bucket_now(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use konstacks_core::spec::Tags;

    fn spec(name: &str) -> BucketSpec {
        BucketSpec {
            name: name.into(),
            region: "europe-west1".into(),
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

    fn message(r: ProviderResult<()>) -> String {
        r.err().map(|e| e.message().to_string()).unwrap_or_default()
    }

    #[test]
    fn what_cloud_storage_refuses_is_refused_with_every_problem() {
        assert!(check_spec("b", "europe-west1", &spec("shop-prod-assets")).is_ok());
        let mut s = spec("goog-shop");
        s.region = "us-central1".into();
        s.encryption = BucketEncryption::kms("projects/p/locations/us-central1/keyRings/r/cryptoKeys/k");
        s.lifecycle = vec![ExpiryRule { prefix: "tmp/".into(), days: 0 }];
        s.cors = vec![CorsRule::new(["https://*.example.com"], ["GET"])];
        s.public_read = true;
        let msg = message(check_spec("b", "europe-west1", &s));
        for want in ["goog", "us-central1", "KMS key", "1 day", "wildcards", "reason"] {
            assert!(msg.contains(want), "{want} missing from {msg}");
        }
        let mut ok = spec("shop-assets");
        ok.encryption = BucketEncryption::kms("projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k");
        assert!(check_spec("b", "europe-west1", &ok).is_ok());
    }

    #[test]
    fn expiry_rules_round_trip_and_foreign_rules_are_not_shown() {
        let rules = vec![ExpiryRule { prefix: String::new(), days: 30 }, ExpiryRule { prefix: "tmp/".into(), days: 7 }];
        let mut v = lifecycle_json(&rules);
        if let Some(a) = v["rule"].as_array_mut() {
            a.push(json!({"action": {"type": "SetStorageClass", "storageClass": "NEARLINE"}, "condition": {"age": 3}}));
            a.push(json!({"action": {"type": "Delete"}, "condition": {"age": 3, "isLive": false}}));
        }
        let l: GcsLifecycle = serde_json::from_value(v).unwrap_or_default();
        assert_eq!(expiry_rules(Some(&l)), rules);
    }

    #[test]
    fn the_public_binding_is_added_and_removed_alone() {
        let mut p = GcsPolicy {
            bindings: vec![GcsBinding {
                role: VIEWER_ROLE.into(),
                members: vec!["user:a@example.com".into()],
                condition: None,
            }],
            ..GcsPolicy::default()
        };
        assert!(!p.public_read());
        assert!(p.set_public_read(true));
        assert!(p.public_read());
        assert!(!p.set_public_read(true));
        assert!(p.set_public_read(false));
        assert_eq!(p.bindings.len(), 1);
        assert_eq!(p.bindings[0].members, vec!["user:a@example.com".to_string()]);
    }

    #[test]
    fn a_patch_sends_only_what_differs() {
        let s = spec("shop-assets");
        let labels = labels::to_labels(&Payload::new(&s.tags)).unwrap_or_default();
        let cur: GcsBucket = serde_json::from_value(json!({
            "name": "shop-assets",
            "location": "EUROPE-WEST1",
            "versioning": {"enabled": true},
            "labels": labels,
            "iamConfiguration": {"publicAccessPrevention": "enforced"},
        }))
        .unwrap_or_default();
        assert!(patch_body(&cur, &s, &labels).is_empty());
        let mut off = s.clone();
        off.versioning = false;
        off.tags = Tags::from([("team".to_string(), "data".to_string())]);
        let new_labels = labels::to_labels(&Payload::new(&off.tags)).unwrap_or_default();
        let body = patch_body(&cur, &off, &new_labels);
        assert_eq!(body.get("versioning"), Some(&json!({"enabled": false})));
        assert_eq!(body["labels"]["team"], json!("data"));
        assert!(!body.contains_key("lifecycle") && !body.contains_key("cors"));
    }
}
