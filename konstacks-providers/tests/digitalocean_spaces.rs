//! Spaces buckets on the DigitalOcean backend: the core bucket contract suite with the S3 calls
//! going to a real moto S3 server (DigitalOcean's OpenAPI description does not describe the S3
//! API) and the DigitalOcean calls (the buckets' records) to the fake through Prism; and the
//! refusals Spaces needs before any request.
//!
//! Run with: bash scripts/test-digitalocean.sh (it starts moto and Prism).
#![cfg(all(feature = "digitalocean", feature = "spaces"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_aws;
mod common_do;

use std::sync::Arc;

use common_do::{assert_no_violations, cx, harness, VirtualClock};
use konstacks_core::contract::{self, ContractOptions};
use konstacks_core::error::ErrorKind;
use konstacks_core::provider::Api;
use konstacks_core::secret::Secret;
use konstacks_core::spec::{Bucket, BucketEncryption, BucketSpec, Tags};
use konstacks_providers::digitalocean::{Config, DigitalOcean, SpacesConfig};

/// moto behind the proxy that mends its `GetBucketVersioning` answers for the Rust SDK.
fn moto() -> String {
    common_aws::moto_proxy().to_string()
}

fn backend_with(spaces: Option<SpacesConfig>) -> Arc<DigitalOcean> {
    let h = harness();
    let mut c = Config::new(Secret::new("fake-token-not-a-secret".into())).base_url(h.api_url.clone());
    c.spaces = spaces;
    Arc::new(DigitalOcean::new(c).expect("backend"))
}

fn keys(endpoint: Option<String>) -> SpacesConfig {
    SpacesConfig { access_key: Secret::new("test".into()), secret_key: Secret::new("test".into()), endpoint }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_bucket_on_spaces() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    let b = backend_with(Some(keys(Some(moto()))));
    let p = b.provider();
    assert!(p.catalog().offers_kind("bucket"));
    let clock = VirtualClock::shared();
    let o = ContractOptions::new("fra1");
    let cx = cx(&clock, &o.stack);
    contract::run_bucket(&p, &cx, &o).await.unwrap();
    let left: Vec<String> = h.fake.snapshot().tags.into_iter().filter(|t| t.starts_with("kxr:")).collect();
    assert!(left.is_empty(), "record tags left: {left:?}");
    assert_no_violations(&b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_spaces_cannot_do_is_refused_before_any_request() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    let clock = VirtualClock::shared();
    let cx = cx(&clock, "spaced");
    let spec = BucketSpec {
        name: "spaced-assets".into(),
        region: "fra1".into(),
        versioning: false,
        encryption: BucketEncryption::ProviderManaged,
        lifecycle: Vec::new(),
        cors: Vec::new(),
        public_read: false,
        public_read_reason: None,
        assumed_gb_stored: 0.0,
        assumed_read_requests: 0,
        assumed_write_requests: 0,
        tags: Tags::new(),
    };
    let before = h.fake.log().len();
    // No key pair.
    let none = backend_with(None);
    let e = Api::<Bucket>::create(&*none, &cx, &spec).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSpec);
    assert!(e.to_string().contains("SPACES_ACCESS_KEY_ID"), "{e}");
    // An endpoint nothing listens on: any request would fail otherwise.
    let b = backend_with(Some(keys(Some("http://127.0.0.1:9".into()))));
    let mut nyc1 = spec.clone();
    nyc1.region = "nyc1".into();
    let e = Api::<Bucket>::create(&*b, &cx, &nyc1).await.unwrap_err();
    assert!(e.to_string().contains("offers Spaces in"), "{e}");
    let mut kms = spec.clone();
    kms.encryption = BucketEncryption::kms("key-1");
    let e = Api::<Bucket>::create(&*b, &cx, &kms).await.unwrap_err();
    assert!(e.to_string().contains("KMS"), "{e}");
    assert_eq!(h.fake.log().len(), before, "no DigitalOcean request either");
}
