//! The simulated cloud's object storage buckets.
//!
//! Like every object store it checks: bucket names are one namespace across the whole cloud
//! (every region, every stack), names follow the bucket naming rules, name and region are fixed
//! at creation, versioning once enabled can only be suspended, and a bucket that holds objects
//! cannot be deleted. The simulation keeps no objects, only their count, which tests set with
//! [`SimCloud::set_bucket_objects`].

use std::time::Duration;

use crate::base::error::ErrorKind;
use crate::kind::api::ProviderResult;
use crate::kind::catalog::Catalog;
use crate::kinds::bucket::{bucket_name_problems, is_cors_origin, CORS_METHODS};
use crate::kinds::{Bucket, BucketEncryption, BucketObserved, BucketSpec, VersioningStatus};
use crate::sim::store::{conflict, immutable, invalid, provider_error, Inner, SimKind, SimOps};
use crate::sim::SimCloud;

impl SimKind for Bucket {
    const OPS: SimOps =
        SimOps { create: "create_bucket", read: "read_buckets", update: "update_bucket", delete: "delete_bucket" };

    const NOUN: &'static str = "bucket";

    fn references(_: &BucketObserved) -> Vec<(&str, &'static str)> {
        Vec::new()
    }

    fn create(s: &mut Inner, cat: &Catalog, spec: &BucketSpec, now: Duration) -> ProviderResult<BucketObserved> {
        Inner::check_region(cat, &spec.region)?;
        if let Some(rule) = bucket_name_problems(&spec.name).first() {
            return Err(invalid(format!("InvalidBucketName: bucket name `{}` is not valid: {rule}", spec.name)));
        }
        check_settings(&spec.name, spec)?;
        // One namespace for the whole cloud: another region or another stack does not help.
        if let Some(other) = s.all::<Bucket>().find(|b| b.name == spec.name) {
            return Err(provider_error(
                ErrorKind::AlreadyExists,
                format!(
                    "BucketAlreadyExists: the bucket name `{}` is taken (`{}` in region `{}`); bucket names are \
                     unique across the whole cloud: pick another name or adopt that bucket",
                    spec.name, other.id, other.region
                ),
            ));
        }
        let status = VersioningStatus::initial(spec.versioning);
        let obs = BucketObserved {
            id: s.next_id("bucket"),
            name: spec.name.clone(),
            region: spec.region.clone(),
            versioning: status.is_enabled(),
            versioning_status: status,
            encryption: spec.encryption.clone(),
            lifecycle: spec.lifecycle.clone(),
            cors: spec.cors.clone(),
            public_read: spec.public_read,
            endpoint: format!("https://{}.{}.objects.sim.internal", spec.name, spec.region),
            objects: 0,
            tags: spec.tags.clone(),
        };
        Ok(s.create::<Bucket>(obs, now))
    }

    fn update(
        s: &mut Inner,
        _cat: &Catalog,
        id: &str,
        spec: &BucketSpec,
        _now: Duration,
    ) -> ProviderResult<BucketObserved> {
        let cur = s.existing::<Bucket>(id)?;
        immutable("bucket", id, "region", &cur.region, &spec.region)?;
        immutable("bucket", id, "name", &cur.name, &spec.name)?;
        check_settings(id, spec)?;
        let mut obs = cur.clone();
        // Versioning cannot be removed once on: off suspends it.
        obs.versioning_status = obs.versioning_status.after(spec.versioning);
        obs.versioning = obs.versioning_status.is_enabled();
        obs.encryption = spec.encryption.clone();
        obs.lifecycle = spec.lifecycle.clone();
        obs.cors = spec.cors.clone();
        obs.public_read = spec.public_read;
        obs.tags = spec.tags.clone();
        s.put::<Bucket>(obs.clone());
        Ok(obs)
    }

    fn delete(s: &mut Inner, id: &str) -> ProviderResult<()> {
        let b = s.existing::<Bucket>(id)?;
        if b.objects > 0 {
            return Err(conflict(format!(
                "BucketNotEmpty: bucket `{id}` ({}) holds {} object(s) and cannot be deleted; empty it first \
                 (every object and every version), then delete it again",
                b.name, b.objects
            )));
        }
        s.delete_unreferenced::<Bucket>(id)
    }
}

/// What the API refuses in a create or update whatever the bucket: lifecycle, CORS and KMS
/// settings it cannot store.
fn check_settings(what: &str, spec: &BucketSpec) -> ProviderResult<()> {
    if let BucketEncryption::Kms(key) = &spec.encryption {
        if key.trim().is_empty() {
            return Err(invalid(format!("bucket `{what}`: a KMS key id is required for KMS encryption")));
        }
    }
    if let Some(r) = spec.lifecycle.iter().find(|r| r.days == 0) {
        return Err(invalid(format!(
            "bucket `{what}`: lifecycle rule for prefix {:?} must expire objects after at least 1 day",
            r.prefix
        )));
    }
    for r in &spec.cors {
        if r.origins.is_empty() || r.methods.is_empty() {
            return Err(invalid(format!("bucket `{what}`: a CORS rule needs an origin and a method")));
        }
        if let Some(o) = r.origins.iter().find(|o| !is_cors_origin(o)) {
            return Err(invalid(format!("bucket `{what}`: CORS origin {o:?} is not valid")));
        }
        if let Some(m) = r.methods.iter().find(|m| !CORS_METHODS.contains(&m.as_str())) {
            return Err(invalid(format!("bucket `{what}`: CORS method {m:?} is not supported")));
        }
    }
    Ok(())
}

impl SimCloud {
    /// Make the bucket `id` hold `objects` objects, as uploads behind Konstacks' back would (for
    /// tests: a bucket holding objects refuses to be deleted). Not a call. `false` if `id` is not
    /// a bucket.
    pub fn set_bucket_objects(&self, id: &str, objects: u64) -> bool {
        let mut found = false;
        self.tamper(id, |r| {
            if let Some(b) = r.get_mut::<Bucket>() {
                b.objects = objects;
                found = true;
            }
        });
        found
    }
}
