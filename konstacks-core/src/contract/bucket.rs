//! The bucket suite: a versioned, private bucket; its settings changed in place; versioning
//! turned off (suspended, not removed); a second bucket of the same name refused.

use crate::base::clock::OpContext;
use crate::base::error::ErrorKind;
use crate::contract::{
    api, call_failed, ensure, eventually, failure, field, retry, tags, ContractFailure, ContractOptions, Run,
    RETRY_PUSHBACK, RETRY_UPDATE,
};
use crate::kind::{ResourceKind, Selector};
use crate::kinds::{Bucket, BucketEncryption, BucketObserved, BucketSpec, CorsRule, ExpiryRule, VersioningStatus};
use crate::provider::Provider;

/// The bucket suite.
pub async fn run_bucket(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    let mut run = Run::new(p, cx, o, "bucket");
    let result = bucket_checks(&mut run).await;
    run.finish(result).await
}

async fn bucket_checks(run: &mut Run<'_>) -> Result<(), ContractFailure> {
    let cx = run.cx;
    let buckets = api::<Bucket>(run)?;
    let buckets = &*buckets;
    let spec = BucketSpec {
        name: run.name("data"),
        region: run.o.region.clone(),
        versioning: true,
        encryption: BucketEncryption::ProviderManaged,
        lifecycle: Vec::new(),
        cors: Vec::new(),
        public_read: false,
        public_read_reason: None,
        assumed_gb_stored: 1.0,
        assumed_read_requests: 0,
        assumed_write_requests: 0,
        tags: run.tags("data"),
    };
    let check = run.check("create_bucket");
    let created = run.create(Bucket::KIND, &check, || buckets.create(cx, &spec)).await?;
    check_bucket(&check, &spec, &created)?;
    field(&check, "versioning_status", &VersioningStatus::Enabled, &created.versioning_status)?;
    ensure(created.endpoint.starts_with("https://") && created.endpoint.contains(&spec.name), &check, || {
        format!("field `endpoint` is {:?}, not an https URL naming the bucket", created.endpoint)
    })?;

    // Bucket names are global: the same name again is refused, whatever the region.
    let check = run.check("name_is_global");
    match retry(cx, RETRY_PUSHBACK, || buckets.create(cx, &spec)).await {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(call_failed(&check, "create_bucket", &e)),
        Ok(dup) => {
            // Clean up what should not exist before failing.
            let _ = run.delete_raw(Bucket::KIND, &dup.id).await;
            return Err(failure(&check, format!("a second bucket named `{}` was created: {}", spec.name, dup.id)));
        }
    }

    let read = move |sel: Selector| async move { buckets.read_many(cx, &sel).await };
    let check = run.check("read_buckets");
    let got = run.check_reads(&check, &created.id, read).await?;
    check_bucket(&check, &spec, &got)?;

    let check = run.check("update_bucket");
    let mut upd = spec.clone();
    upd.versioning = false;
    upd.lifecycle = vec![ExpiryRule { prefix: "tmp/".into(), days: 7 }];
    upd.cors = vec![CorsRule::new(["https://app.example.com"], ["GET", "HEAD"]).max_age(600)];
    upd.public_read = true;
    upd.public_read_reason = Some("contract check".into());
    let updated = retry(cx, RETRY_UPDATE, || buckets.update(cx, &created.id, &upd))
        .await
        .map_err(|e| call_failed(&check, "update_bucket", &e))?;
    check_bucket(&check, &upd, &updated)?;
    // A versioned bucket cannot be unversioned again: it is suspended.
    field(&check, "versioning_status", &VersioningStatus::Suspended, &updated.versioning_status)?;
    let ids = Selector::Ids(vec![created.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the modified bucket",
        || read(ids.clone()),
        |v| v.iter().any(|r| r.id == created.id && !r.versioning && r.public_read && r.lifecycle == upd.lifecycle),
    )
    .await?;

    run.delete(Bucket::KIND, &created.id).await
}

fn check_bucket(check: &str, want: &BucketSpec, got: &BucketObserved) -> Result<(), ContractFailure> {
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    field(check, "versioning", &want.versioning, &got.versioning)?;
    field(check, "encryption", &want.encryption, &got.encryption)?;
    field(check, "lifecycle", &want.lifecycle, &got.lifecycle)?;
    field(check, "cors", &want.cors, &got.cors)?;
    field(check, "public_read", &want.public_read, &got.public_read)?;
    ensure(!got.endpoint.is_empty(), check, || "field `endpoint` is empty".into())?;
    tags(check, &want.tags, &got.tags)
}
