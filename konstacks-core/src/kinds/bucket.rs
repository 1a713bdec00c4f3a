//! The bucket kind: object storage (S3, Cloud Storage, Spaces) in the stack's region, encrypted
//! at rest, versioned and closed to the public unless a reason to open it is recorded.
//!
//! Bucket names share one namespace across a whole cloud and are the first label of the
//! virtual-host HTTPS endpoint (`https://<name>.<host>`), so a bucket's physical name must follow
//! the strictest rules of the clouds Konstacks targets: [`bucket_name_problems`] names every rule
//! a name breaks. Konstacks never empties a bucket: deleting one that holds objects fails at the
//! cloud until someone empties it.

mod rules;

use crate::kind::price::{CostLine, PriceCx};
use crate::kind::{always_offered, no_stack_check, Field, Kind, KindDef, LowerCx, ResourceKind, Tags};
use crate::model::refs::{Output, Ref};
pub use rules::{bucket_name_problems, is_cors_origin, BucketNameRule};
use rules::{check_cors, check_encryption, check_expiry, check_name, check_reason};

/// Shortest bucket name every cloud accepts.
pub const MIN_NAME_LEN: usize = 3;
/// Longest bucket name every cloud accepts.
pub const MAX_NAME_LEN: usize = 63;
/// Characters of a base name kept for the `-N` suffix a replacement adds.
pub const SUFFIX_RESERVE: usize = 3;
/// Most lifecycle (expiry) rules a bucket may have (Cloud Storage's limit, the lowest).
pub const MAX_LIFECYCLE_RULES: usize = 100;
/// Most CORS rules a bucket may have (S3's limit, the lowest).
pub const MAX_CORS_RULES: usize = 100;
/// Longest CORS preflight cache, in seconds: browsers cap it at a day at most.
pub const MAX_CORS_MAX_AGE: u32 = 86_400;
/// Longest recorded reason for public read access, in characters.
pub const MAX_REASON_LEN: usize = 256;
/// Longest object key prefix (object keys have at most 1,024 bytes).
pub const MAX_PREFIX_LEN: usize = 1024;
/// GB stored assumed by the cost estimate unless [`Bucket::assume_gb_stored`] says otherwise.
pub const DEFAULT_GB_STORED: f64 = 10.0;
/// Read requests a month assumed by the cost estimate by default.
pub const DEFAULT_READ_REQUESTS: u64 = 100_000;
/// Write requests a month assumed by the cost estimate by default.
pub const DEFAULT_WRITE_REQUESTS: u64 = 10_000;
/// The HTTP methods a CORS rule may allow.
pub const CORS_METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// How a bucket's objects are encrypted at rest (always on; only the key is chosen).
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketEncryption {
    /// With keys the provider manages (SSE-S3, Google-managed keys, Spaces' own).
    #[default]
    ProviderManaged,
    /// With the named key of the provider's key management service (a key id, ARN or resource
    /// name, used as given).
    Kms(String),
}

impl BucketEncryption {
    /// Encryption with the KMS key `key_id`.
    pub fn kms(key_id: impl Into<String>) -> Self {
        BucketEncryption::Kms(key_id.into())
    }
}

/// Where a bucket's versioning stands. A bucket that was ever versioned cannot be unversioned
/// again on any cloud: turning versioning off suspends it (existing versions stay, new writes
/// replace objects).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersioningStatus {
    /// Never versioned.
    Unversioned,
    /// Every write keeps the previous version.
    Enabled,
    /// Was versioned, now suspended: old versions are kept, new writes are not versioned.
    Suspended,
}

impl VersioningStatus {
    /// The status at creation when versioning is `on` or not.
    pub fn initial(on: bool) -> Self {
        if on {
            VersioningStatus::Enabled
        } else {
            VersioningStatus::Unversioned
        }
    }

    /// The status after asking for versioning `on` or off: off suspends a bucket that was ever
    /// versioned.
    pub fn after(self, on: bool) -> Self {
        match (self, on) {
            (_, true) => VersioningStatus::Enabled,
            (VersioningStatus::Unversioned, false) => VersioningStatus::Unversioned,
            (_, false) => VersioningStatus::Suspended,
        }
    }

    /// Whether new writes are versioned.
    pub fn is_enabled(self) -> bool {
        self == VersioningStatus::Enabled
    }
}

/// A lifecycle rule: objects whose key starts with `prefix` (every object when empty) are
/// deleted `days` days after they were written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct ExpiryRule {
    /// Key prefix the rule applies to; empty for the whole bucket.
    pub prefix: String,
    /// Days after which objects expire (at least 1).
    pub days: u32,
}

/// A CORS rule: which web origins may call the bucket from a browser, with which methods and
/// request headers, and how long a browser may cache the preflight answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct CorsRule {
    /// `*` or `https://` origins (`https://app.example.com`, `https://*.example.com:8443`).
    pub origins: Vec<String>,
    /// Methods among `GET`, `PUT`, `POST`, `DELETE` and `HEAD`.
    pub methods: Vec<String>,
    /// Request headers allowed (`*`, `content-type`, `x-amz-*`); none by default.
    pub headers: Vec<String>,
    /// Seconds a browser may cache the preflight answer (0: the browser's default).
    pub max_age: u32,
}

impl CorsRule {
    /// A rule letting `origins` use `methods`.
    pub fn new<O: Into<String>, M: Into<String>>(
        origins: impl IntoIterator<Item = O>,
        methods: impl IntoIterator<Item = M>,
    ) -> Self {
        Self {
            origins: origins.into_iter().map(Into::into).collect(),
            methods: methods.into_iter().map(Into::into).collect(),
            headers: Vec::new(),
            max_age: 0,
        }
    }

    /// Allow these request headers.
    pub fn headers<H: Into<String>>(mut self, headers: impl IntoIterator<Item = H>) -> Self {
        self.headers = headers.into_iter().map(Into::into).collect();
        self
    }

    /// Let browsers cache the preflight answer for `seconds`.
    pub fn max_age(mut self, seconds: u32) -> Self {
        self.max_age = seconds;
        self
    }
}

/// An object storage bucket in the stack's region. Versioned and encrypted with provider keys by
/// default; public access is blocked unless [`Bucket::public_read`] records why it must not be.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub(crate) versioning: bool,
    pub(crate) encryption: BucketEncryption,
    pub(crate) expiry: Vec<ExpiryRule>,
    pub(crate) cors: Vec<CorsRule>,
    pub(crate) public_read: Option<String>,
    pub(crate) gb_stored: f64,
    pub(crate) requests: (u64, u64),
}

impl Default for Bucket {
    fn default() -> Self {
        Self::new()
    }
}

impl Bucket {
    /// A private, versioned bucket encrypted with provider-managed keys. Its name is derived from
    /// the stack and its path like every physical name, and must be a valid bucket name.
    pub fn new() -> Self {
        Self {
            versioning: true,
            encryption: BucketEncryption::ProviderManaged,
            expiry: Vec::new(),
            cors: Vec::new(),
            public_read: None,
            gb_stored: DEFAULT_GB_STORED,
            requests: (DEFAULT_READ_REQUESTS, DEFAULT_WRITE_REQUESTS),
        }
    }

    /// Keep every version of every object (default on). Turning it off on an existing versioned
    /// bucket suspends versioning: the versions already kept stay.
    pub fn versioning(mut self, on: bool) -> Self {
        self.versioning = on;
        self
    }

    /// Which key encrypts objects at rest (default: provider-managed keys).
    pub fn encryption(mut self, e: BucketEncryption) -> Self {
        self.encryption = e;
        self
    }

    /// Delete every object `days` days after it was written.
    pub fn expire_after_days(self, days: u32) -> Self {
        self.expire("", days)
    }

    /// Delete objects whose key starts with `prefix` `days` days after they were written
    /// (repeatable, one rule per prefix).
    pub fn expire(mut self, prefix: impl Into<String>, days: u32) -> Self {
        self.expiry.push(ExpiryRule { prefix: prefix.into(), days });
        self
    }

    /// Add a CORS rule (repeatable; browsers use the first rule that matches).
    pub fn cors(mut self, rule: CorsRule) -> Self {
        self.cors.push(rule);
        self
    }

    /// Let anyone read the objects, for `reason` (required, recorded in the spec and shown by
    /// every plan). Public access is blocked by default.
    pub fn public_read(mut self, reason: impl Into<String>) -> Self {
        self.public_read = Some(reason.into());
        self
    }

    /// GB the cost estimate assumes are stored (default 10).
    pub fn assume_gb_stored(mut self, gb: f64) -> Self {
        self.gb_stored = gb;
        self
    }

    /// Read and write requests a month the cost estimate assumes (default 100,000 and 10,000).
    pub fn assume_requests(mut self, reads: u64, writes: u64) -> Self {
        self.requests = (reads, writes);
        self
    }
}

/// Fields of a bucket.
pub mod field {
    use super::*;
    /// Physical name (the bucket name).
    pub const NAME: Field<Bucket, String> = Field::new("name");
    /// Region.
    pub const REGION: Field<Bucket, String> = Field::new("region");
    /// Versioning wanted.
    pub const VERSIONING: Field<Bucket, bool> = Field::new("versioning");
    /// Encryption at rest.
    pub const ENCRYPTION: Field<Bucket, BucketEncryption> = Field::new("encryption");
    /// Expiry rules, sorted by prefix.
    pub const LIFECYCLE: Field<Bucket, Vec<ExpiryRule>> = Field::new("lifecycle");
    /// CORS rules, in order.
    pub const CORS: Field<Bucket, Vec<CorsRule>> = Field::new("cors");
    /// Public read access.
    pub const PUBLIC_READ: Field<Bucket, bool> = Field::new("public_read");
    /// Why public read access is allowed.
    pub const PUBLIC_READ_REASON: Field<Bucket, Option<String>> = Field::new("public_read_reason");
    /// GB stored assumed by the cost estimate.
    pub const ASSUMED_GB_STORED: Field<Bucket, f64> = Field::new("assumed_gb_stored");
    /// Read requests a month assumed by the cost estimate.
    pub const ASSUMED_READ_REQUESTS: Field<Bucket, u64> = Field::new("assumed_read_requests");
    /// Write requests a month assumed by the cost estimate.
    pub const ASSUMED_WRITE_REQUESTS: Field<Bucket, u64> = Field::new("assumed_write_requests");
    /// Tags.
    pub const TAGS: Field<Bucket, Tags> = Field::new("tags");
}

/// A resolved bucket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BucketSpec {
    /// Bucket name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Versioning wanted: on enables it, off suspends it on a bucket that was ever versioned.
    pub versioning: bool,
    /// Encryption at rest.
    pub encryption: BucketEncryption,
    /// Expiry rules, sorted by prefix.
    pub lifecycle: Vec<ExpiryRule>,
    /// CORS rules, in order.
    pub cors: Vec<CorsRule>,
    /// Anyone may read the objects (public access is blocked otherwise).
    pub public_read: bool,
    /// The recorded reason for public read access.
    pub public_read_reason: Option<String>,
    /// Cost assumption only, never sent to a cloud: GB stored.
    #[serde(default)]
    pub assumed_gb_stored: f64,
    /// Cost assumption only: read requests a month.
    #[serde(default)]
    pub assumed_read_requests: u64,
    /// Cost assumption only: write requests a month.
    #[serde(default)]
    pub assumed_write_requests: u64,
    /// Tags.
    pub tags: Tags,
}

/// An observed bucket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BucketObserved {
    /// Provider id.
    pub id: String,
    /// Bucket name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Whether new writes are versioned (the status is `enabled`).
    pub versioning: bool,
    /// Where versioning stands (never versioned, enabled, suspended).
    pub versioning_status: VersioningStatus,
    /// Encryption at rest.
    pub encryption: BucketEncryption,
    /// Expiry rules, sorted by prefix.
    pub lifecycle: Vec<ExpiryRule>,
    /// CORS rules, in order.
    pub cors: Vec<CorsRule>,
    /// Anyone may read the objects.
    pub public_read: bool,
    /// The virtual-host HTTPS endpoint (`https://<name>.<host>`).
    pub endpoint: String,
    /// Objects the bucket holds, where the cloud reports it (0 otherwise).
    #[serde(default)]
    pub objects: u64,
    /// Tags.
    pub tags: Tags,
}
crate::kind::observed!(BucketObserved);

/// The bucket kind.
pub const BUCKET: KindDef = KindDef {
    id: "bucket",
    fields: &[
        field::ASSUMED_GB_STORED.name(),
        field::ASSUMED_READ_REQUESTS.name(),
        field::ASSUMED_WRITE_REQUESTS.name(),
        field::CORS.name(),
        field::ENCRYPTION.name(),
        field::LIFECYCLE.name(),
        field::NAME.name(),
        field::PUBLIC_READ.name(),
        field::PUBLIC_READ_REASON.name(),
        field::REGION.name(),
        field::TAGS.name(),
        field::VERSIONING.name(),
    ],
    force_new: &[field::NAME.name(), field::REGION.name()],
    secrets: &[],
    rotatable_secrets: &[],
    // A replacement gets the next generation's name (`-1`), so both can exist for a while.
    create_before_destroy: true,
    holds_data: true,
    deletion_protection: None,
    price: Some(price),
    offered_by: always_offered,
    check_stack: no_stack_check,
    fronts: None,
    version_of: None,
};

impl ResourceKind for Bucket {
    type Spec = BucketSpec;
    type Observed = BucketObserved;
    const KIND: Kind = Kind::of(&BUCKET);

    fn lower(&self, cx: &mut LowerCx<'_>) {
        check_name(cx);
        check_encryption(cx, &self.encryption);
        let lifecycle = check_expiry(cx, &self.expiry);
        check_cors(cx, &self.cors);
        let reason = self.public_read.as_deref().map(|r| check_reason(cx, r));
        if !(self.gb_stored.is_finite() && self.gb_stored >= 0.0) {
            cx.error(
                "invalid-assumption",
                format!("assumed storage {} GB is not a size", self.gb_stored),
                "pass a finite, non-negative number of GB to `.assume_gb_stored`",
            );
        }
        cx.set(field::VERSIONING, self.versioning);
        cx.set(field::ENCRYPTION, self.encryption.clone());
        cx.set(field::LIFECYCLE, lifecycle);
        cx.set(field::CORS, self.cors.clone());
        cx.set(field::PUBLIC_READ, reason.is_some());
        cx.set(field::PUBLIC_READ_REASON, reason);
        cx.set(field::ASSUMED_GB_STORED, self.gb_stored);
        cx.set(field::ASSUMED_READ_REQUESTS, self.requests.0);
        cx.set(field::ASSUMED_WRITE_REQUESTS, self.requests.1);
    }
}

fn price(cx: &PriceCx<'_>) -> Vec<CostLine> {
    let gb = cx.get(field::ASSUMED_GB_STORED).unwrap_or(DEFAULT_GB_STORED);
    let reads = cx.get(field::ASSUMED_READ_REQUESTS).unwrap_or(DEFAULT_READ_REQUESTS);
    let writes = cx.get(field::ASSUMED_WRITE_REQUESTS).unwrap_or(DEFAULT_WRITE_REQUESTS);
    let p = cx.catalog.bucket_pricing.clone().unwrap_or_default();
    let storage = CostLine::per_unit(
        "storage",
        format!("{gb} GB stored (assumed; set with `.assume_gb_stored`) per GB-month"),
        gb,
        p.storage_gb_month,
    );
    let what = format!("{reads} reads and {writes} writes a month (assumed; set with `.assume_requests`)");
    let requests = match (p.read_requests_per_1000, p.write_requests_per_1000) {
        (Some(r), Some(w)) => CostLine::priced(
            "requests",
            format!("{what} at {r} and {w} per 1,000"),
            reads as f64 / 1000.0 * r + writes as f64 / 1000.0 * w,
        ),
        _ => CostLine::unpriced("requests", format!("{what}: no price")),
    };
    vec![storage, requests]
}

/// Outputs of a bucket, available after apply.
impl Ref<Bucket> {
    /// The bucket name.
    pub fn name(&self) -> Output<String> {
        self.output("name", false)
    }
    /// The virtual-host HTTPS endpoint (`https://<name>.<host>`).
    pub fn endpoint(&self) -> Output<String> {
        self.output("endpoint", false)
    }
    /// The region the bucket lives in.
    pub fn region(&self) -> Output<String> {
        self.output("region", false)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::error::Error;
    use crate::model::placement::{Placement, Stage};
    use crate::sim::SimCloud;
    use crate::stack::Stack;

    #[test]
    fn versioning_is_suspended_never_removed() {
        use VersioningStatus as V;
        assert_eq!(V::initial(true), V::Enabled);
        assert_eq!(V::initial(false), V::Unversioned);
        assert_eq!(V::Enabled.after(false), V::Suspended);
        assert_eq!(V::Suspended.after(false), V::Suspended);
        assert_eq!(V::Suspended.after(true), V::Enabled);
        assert_eq!(V::Unversioned.after(false), V::Unversioned);
        assert!(!V::Suspended.is_enabled());
    }

    fn synth(stack: &Stack) -> Result<crate::synth::Synthesized, Vec<(String, &'static str, String)>> {
        match stack.synth(&[&SimCloud::catalog()]) {
            Ok(s) => Ok(s),
            Err(Error::Invalid(d)) => Err(d.iter().map(|d| (d.path.clone(), d.code, d.message.clone())).collect()),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_lower_to_a_private_versioned_encrypted_bucket() {
        let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
        stack.add("assets", Bucket::new());
        let s = synth(&stack).unwrap();
        let r = &s.resources[0];
        let lit = |f: &str| match r.fields.get(f) {
            Some(crate::kind::expr::Expr::Lit(v)) => v.clone(),
            other => panic!("{f}: {other:?}"),
        };
        assert_eq!(lit("versioning"), serde_json::json!(true));
        assert_eq!(lit("encryption"), serde_json::json!("provider_managed"));
        assert_eq!(lit("public_read"), serde_json::json!(false));
        assert_eq!(lit("public_read_reason"), serde_json::Value::Null);
        assert_eq!(lit("assumed_gb_stored"), serde_json::json!(10.0));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let stack = Stack::new("xn--shop", Placement::region("eu-central"), Stage::Prod);
        stack.add(
            "assets-",
            Bucket::new()
                .encryption(BucketEncryption::kms(" "))
                .expire("logs/", 0)
                .expire("logs/", 30)
                .cors(CorsRule::new(["http://a.example"], ["get"]).headers(["bad header"]).max_age(100_000))
                .cors(CorsRule { origins: vec![], methods: vec!["GET".into()], headers: vec![], max_age: 0 })
                .public_read("  ")
                .assume_gb_stored(f64::NAN),
        );
        let d = synth(&stack).unwrap_err();
        let codes: Vec<&str> = d.iter().map(|(_, c, _)| *c).collect();
        for want in [
            "invalid-bucket-name",
            "invalid-kms-key",
            "invalid-expiry",
            "duplicate-expiry",
            "invalid-cors-origin",
            "invalid-cors-method",
            "invalid-cors-rule",
            "missing-public-reason",
            "invalid-assumption",
        ] {
            assert!(codes.contains(&want), "{want} missing from {d:?}");
        }
        let names: Vec<&String> = d.iter().filter(|(_, c, _)| *c == "invalid-bucket-name").map(|(_, _, m)| m).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().any(|m| m.contains("starts with `xn--`")), "{names:?}");
        assert!(names.iter().any(|m| m.contains("does not end with")), "{names:?}");
    }

    #[test]
    fn a_name_without_room_for_a_replacement_suffix_is_refused() {
        // 61 characters: a valid bucket name, but `-1` would not fit after a replacement.
        let stack = Stack::new("s".repeat(54), Placement::region("eu-central"), Stage::Prod);
        stack.add("assets", Bucket::new());
        let d = synth(&stack).unwrap_err();
        assert!(
            d.iter().any(|(_, c, m)| *c == "invalid-bucket-name" && m.contains("kept for the `-N` suffix")),
            "{d:?}"
        );
    }
}
