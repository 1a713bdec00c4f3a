//! Shared helpers of the moto tests `aws_drift` and `aws_crash`: SDK config for the moto server
//! of `scripts/test-aws.sh`, one moto account per test, the web-app template.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::{Credentials, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use konstacks_core::model::{Placement, Stage};
use konstacks_providers::aws::AwsProvider;
use konstacks_templates::TemplateContext;
use serde_json::json;

pub const REGION: &str = "eu-central-1";
pub const AMI: &str = "ami-0123456789abcdef0";
pub const STACK: &str = "shop";

pub fn endpoint() -> String {
    std::env::var("KONSTACKS_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("KONSTACKS_MOTO_ENDPOINT is not set: run these tests with `bash scripts/test-aws.sh`, which starts moto")
    })
}

/// Sends every request to one moto account.
#[derive(Debug)]
pub struct MotoAccount(pub String);

impl Intercept for MotoAccount {
    fn name(&self) -> &'static str {
        "moto-account"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context.request_mut().headers_mut().insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

pub async fn sdk() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new("moto-test", "moto-test", None, None, "moto"))
        .load()
        .await
}

pub async fn provider(account: &str) -> Arc<AwsProvider> {
    let p = AwsProvider::builder(&sdk().await)
        .image("ubuntu-lts", AMI)
        .image("debian-12", AMI)
        .interceptor(SharedInterceptor::new(MotoAccount(account.to_string())))
        .build()
        .unwrap();
    Arc::new(p)
}

/// Raw SDK clients of one moto account, to act behind Konstacks' back.
pub async fn raw(account: &str) -> (aws_sdk_ec2::Client, aws_sdk_rds::Client) {
    let sdk = sdk().await;
    let ec2 = aws_sdk_ec2::config::Builder::from(&sdk).interceptor(MotoAccount(account.to_string())).build();
    let rds = aws_sdk_rds::config::Builder::from(&sdk).interceptor(MotoAccount(account.to_string())).build();
    (aws_sdk_ec2::Client::from_conf(ec2), aws_sdk_rds::Client::from_conf(rds))
}

/// The web-app template (stack `shop`, dev) with `vm_count` app VMs.
pub fn web_app(vm_count: u32) -> konstacks_core::model::Stack {
    let t = konstacks_templates::find("web-app").unwrap();
    let cx = TemplateContext::new(STACK, Stage::Dev).placement(Placement::region(REGION)).provider("aws");
    let params = json!({
        "admin_cidr": "198.51.100.0/24",
        "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f admin@example"],
        "app_image": "ghcr.io/example/shop:1",
        "vm_count": vm_count,
    });
    t.build_json(&cx, params).unwrap()
}

/// An engine over `backend` and the AWS provider, sealing secrets with a fixed test passphrase
/// (so a VM created again after drift or a crash still gets the database password).
pub fn engine(
    aws: &Arc<AwsProvider>,
    backend: Arc<dyn konstacks_core::state::StateBackend>,
) -> konstacks_core::engine::Engine {
    let sealer = konstacks_core::secret::Sealer::from_passphrase(&konstacks_core::secret::Secret::new(
        "moto-test-passphrase".to_string(),
    ));
    konstacks_core::engine::Engine::new(backend).with_provider(aws.clone().provider()).with_sealer(Some(sealer))
}

/// moto 5.2.5 names the root element of its `GetBucketVersioning` answer after the operation
/// (`GetBucketVersioningResponse`) where S3 says `VersioningConfiguration`; boto ignores the
/// root, the Rust SDK refuses the answer. This proxy in front of moto renames that root and
/// forwards everything else unchanged. It runs on a thread of its own, shared by every test.
pub fn moto_proxy() -> &'static str {
    static PROXY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PROXY.get_or_init(|| {
        let target = endpoint();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let client = reqwest::Client::new();
                let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                    let (client, target) = (client.clone(), target.clone());
                    async move { forward(&client, &target, req).await }
                });
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(format!("http://{}", listener.local_addr().unwrap())).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        rx.recv().unwrap()
    })
}

async fn forward(client: &reqwest::Client, target: &str, req: axum::extract::Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = client.request(parts.method.clone(), format!("{target}{path}")).body(body);
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    let resp = out.send().await.unwrap();
    let mut builder = axum::response::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            builder = builder.header(k, v);
        }
    }
    let bytes = resp.bytes().await.unwrap();
    let body = match std::str::from_utf8(&bytes) {
        Ok(text) if text.contains("<GetBucketVersioningResponse") => {
            axum::body::Body::from(text.replace("GetBucketVersioningResponse", "VersioningConfiguration"))
        }
        _ => axum::body::Body::from(bytes),
    };
    builder.body(body).unwrap()
}
