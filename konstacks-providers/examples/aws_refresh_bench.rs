//! Refresh benchmark against moto: a stack of 1,000 EC2 instances and 1,000 security groups is
//! read back with the backend's batched reads (by id list, and by the stack's tag) and with the
//! naive strategy (one describe call per resource, 10 in flight), in the same run. Prints API
//! calls and wall time of each.
//!
//! Run with: KONSTACKS_AWS_BENCH=1 bash scripts/test-aws.sh
//! or, with moto already running:
//!   KONSTACKS_MOTO_ENDPOINT=http://127.0.0.1:5000 \
//!     cargo run -p konstacks-providers --features aws --example aws_refresh_bench [-- N]

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::{Credentials, Region};
use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use futures::stream::{self, StreamExt, TryStreamExt};
use konstacks_core::clock::{OpContext, TokioClock};
use konstacks_core::model::{Firewall, Vm};
use konstacks_core::provider::KindApis;
use konstacks_core::spec::Selector;
use konstacks_providers::aws::AwsProvider;

const REGION: &str = "eu-central-1";
const ACCOUNT: &str = "200000000001";
const STACK: &str = "bench";
const PARALLELISM: usize = 10;

#[derive(Debug)]
struct MotoAccount;

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
        context.request_mut().headers_mut().insert("x-moto-account-id", ACCOUNT);
        Ok(())
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

fn tags(kind: ResourceType, path: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(tag("konstacks:stack", STACK))
        .tags(tag("konstacks:path", path))
        .tags(tag("Name", &format!("{STACK}-{}", path.replace('/', "-"))))
        .build()
}

struct Row {
    strategy: &'static str,
    calls: u64,
    elapsed: Duration,
    found: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let n: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let endpoint = std::env::var("KONSTACKS_MOTO_ENDPOINT")
        .map_err(|_| "KONSTACKS_MOTO_ENDPOINT is not set; run this through scripts/test-aws.sh or start moto first")?;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("bench", "bench", None, None, "moto"))
        .load()
        .await;
    let aws = Arc::new(AwsProvider::builder(&sdk).interceptor(SharedInterceptor::new(MotoAccount)).build()?);
    let ec2 = aws_sdk_ec2::Client::from_conf(aws_sdk_ec2::config::Builder::from(&sdk).interceptor(MotoAccount).build());

    // ---- setup (raw SDK, not measured) ----
    let t0 = Instant::now();
    let vpc = ec2.create_vpc().cidr_block("10.42.0.0/16").send().await?;
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).ok_or("no VPC id")?.to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.42.0.0/20")
        .availability_zone("eu-central-1a")
        .send()
        .await?;
    let subnet_id = subnet.subnet().and_then(|s| s.subnet_id()).ok_or("no subnet id")?.to_string();
    let mut vm_ids = Vec::with_capacity(n);
    let mut batch = 0;
    while vm_ids.len() < n {
        let count = (n - vm_ids.len()).min(100) as i32;
        let out = ec2
            .run_instances()
            .image_id("ami-0123456789abcdef0")
            .instance_type(InstanceType::T3Micro)
            .min_count(count)
            .max_count(count)
            .subnet_id(&subnet_id)
            .tag_specifications(tags(ResourceType::Instance, &format!("app/batch-{batch}")))
            .send()
            .await?;
        vm_ids.extend(out.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)));
        batch += 1;
    }
    let fw_ids: Vec<String> = stream::iter(0..n)
        .map(|i| {
            let ec2 = ec2.clone();
            let vpc_id = vpc_id.clone();
            async move {
                let out = ec2
                    .create_security_group()
                    .group_name(format!("{STACK}-fw-{i}"))
                    .description("bench")
                    .vpc_id(vpc_id)
                    .tag_specifications(tags(ResourceType::SecurityGroup, &format!("network/fw-{i}")))
                    .send()
                    .await?;
                Ok::<_, Box<dyn Error>>(out.group_id().unwrap_or_default().to_string())
            }
        })
        .buffer_unordered(PARALLELISM)
        .try_collect()
        .await?;
    println!("setup: {} instances and {} security groups in moto in {:.1?}", vm_ids.len(), fw_ids.len(), t0.elapsed());

    let cx = OpContext::new(TokioClock::shared(), STACK);
    let mut rows = Vec::new();

    // ---- batched, by id list (what the engine's refresh does) ----
    aws.reset_api_calls();
    let t = Instant::now();
    let vms = aws.api::<Vm>().read_many(&cx, &Selector::Ids(vm_ids.clone())).await?;
    let split = t.elapsed();
    let fws = aws.api::<Firewall>().read_many(&cx, &Selector::Ids(fw_ids.clone())).await?;
    println!("  batched by ids: instances {split:.2?}, security groups {:.2?}", t.elapsed() - split);
    rows.push(Row {
        strategy: "batched by ids",
        calls: aws.api_calls().total,
        elapsed: t.elapsed(),
        found: vms.len() + fws.len(),
    });

    // ---- batched, by the stack's tag (what adoption and orphan checks do) ----
    aws.reset_api_calls();
    let t = Instant::now();
    let vms = aws.api::<Vm>().read_many(&cx, &Selector::Stack(STACK.into())).await?;
    let split = t.elapsed();
    let fws = aws.api::<Firewall>().read_many(&cx, &Selector::Stack(STACK.into())).await?;
    println!("  batched by tag: instances {split:.2?}, security groups {:.2?}", t.elapsed() - split);
    rows.push(Row {
        strategy: "batched by stack tag",
        calls: aws.api_calls().total,
        elapsed: t.elapsed(),
        found: vms.len() + fws.len(),
    });

    // ---- naive: one call per resource, 10 in flight ----
    aws.reset_api_calls();
    let t = Instant::now();
    let aws2 = aws.clone();
    let cx2 = cx.clone();
    let found_vms: usize = stream::iter(vm_ids.clone())
        .map(|id| {
            let (aws, cx) = (aws2.clone(), cx2.clone());
            async move { aws.api::<Vm>().read_many(&cx, &Selector::Ids(vec![id])).await.map(|v| v.len()) }
        })
        .buffer_unordered(PARALLELISM)
        .try_fold(0, |a, b| async move { Ok(a + b) })
        .await?;
    let found_fws: usize = stream::iter(fw_ids.clone())
        .map(|id| {
            let (aws, cx) = (aws2.clone(), cx2.clone());
            async move { aws.api::<Firewall>().read_many(&cx, &Selector::Ids(vec![id])).await.map(|v| v.len()) }
        })
        .buffer_unordered(PARALLELISM)
        .try_fold(0, |a, b| async move { Ok(a + b) })
        .await?;
    rows.push(Row {
        strategy: "naive, 1 call/resource, x10",
        calls: aws.api_calls().total,
        elapsed: t.elapsed(),
        found: found_vms + found_fws,
    });

    let naive_calls = rows[2].calls.max(1) as f64;
    let naive_time = rows[2].elapsed.as_secs_f64().max(1e-9);
    println!("\nrefresh of {n} instances + {n} security groups (moto 5.2.5, {REGION}, debug build)");
    println!("{:<30} {:>7} {:>10} {:>9} {:>9} {:>7}", "strategy", "calls", "time", "% calls", "% time", "found");
    for r in &rows {
        println!(
            "{:<30} {:>7} {:>9.2}s {:>8.2}% {:>8.2}% {:>7}",
            r.strategy,
            r.calls,
            r.elapsed.as_secs_f64(),
            100.0 * r.calls as f64 / naive_calls,
            100.0 * r.elapsed.as_secs_f64() / naive_time,
            r.found
        );
    }
    let ok = rows.iter().all(|r| r.found == 2 * n);
    let target =
        rows[..2].iter().all(|r| (r.calls as f64) <= 0.02 * naive_calls && r.elapsed.as_secs_f64() < naive_time / 10.0);
    println!("\nall strategies saw every resource: {ok}; batched within target (<=2% calls, <10% time): {target}");

    if std::env::var_os("KONSTACKS_BENCH_KEEP").is_some() {
        return Ok(());
    }
    // ---- teardown (not measured) ----
    for chunk in vm_ids.chunks(500) {
        ec2.terminate_instances().set_instance_ids(Some(chunk.to_vec())).send().await?;
    }
    stream::iter(fw_ids)
        .map(|id| {
            let ec2 = ec2.clone();
            async move { ec2.delete_security_group().group_id(id).send().await.map(|_| ()) }
        })
        .buffer_unordered(PARALLELISM)
        .try_collect::<Vec<()>>()
        .await?;
    if !ok {
        return Err("a strategy missed resources".into());
    }
    Ok(())
}
