//! The Konstacks side of `scripts/bench-vs-terraform.sh` (Konstacks vs Terraform, same machine,
//! same run). Not a test and not meant to be run alone: the script builds it in release with
//! `cargo bench -p konstacks-core --bench vs_terraform --no-run`, runs each step below in a fresh
//! process (so each process's peak memory belongs to that step alone) and compares the figures
//! with Terraform's.
//!
//! The stack: N independent VPCs (`vpc-0` .. `vpc-{N-1}`, each `10.0.0.0/16`) on the simulated
//! cloud with zero latency. A VPC references nothing, so no resource waits for another, like N
//! `terraform_data` resources on the Terraform side.
//!
//! Steps (one per process; each prints one JSON line on stdout):
//! - `prepare N DIR`: first apply into a local state directory (the state a later plan has in
//!   hand); not a measured figure.
//! - `plan N DIR REPEAT`: load the state from DIR, then REPEAT times synth + no-op plan against it
//!   (`plan_seconds`, one per repeat); also one `Engine::plan` offline without refresh, which
//!   loads the state from DIR itself (`plan_with_load_seconds`, the closer match of Terraform's
//!   `plan -refresh=false` reading its state file).
//! - `apply N DIR`: synth + first apply with default durability into an empty local state
//!   directory (`apply_seconds`).
//!
//! `vmhwm_mb` is the process's own peak resident memory (VmHWM); the script also takes the
//! child's `ru_maxrss`, the same measure it takes of Terraform.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;
use support::peak_rss_mb;

use std::sync::Arc;
use std::time::{Duration, Instant};

use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::model::*;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::{LocalBackend, StateBackend};

const STACK: &str = "vs-terraform";

/// N independent VPCs.
fn stack(n: usize) -> Stack {
    let stack = Stack::new(STACK, Placement::region("eu-central"), Stage::Dev);
    for i in 0..n {
        stack.add(&format!("vpc-{i}"), Vpc::new("10.0.0.0/16"));
    }
    stack
}

fn engine(dir: &str) -> (Engine, Arc<LocalBackend>) {
    let sim = Arc::new(SimCloud::new(SimConfig { latency: Duration::ZERO, ..Default::default() }));
    let backend = Arc::new(LocalBackend::new(dir));
    let engine = Engine::new(backend.clone()).with_provider(sim.provider()).with_sealer(None);
    (engine, backend)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

async fn apply(n: usize, dir: &str) -> serde_json::Value {
    let (engine, _) = engine(dir);
    let t = Instant::now();
    let s = engine.synth(&stack(n)).unwrap();
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let took = t.elapsed();
    let mb = peak_rss_mb();
    assert!(report.failures.is_empty(), "apply failures: {:?}", report.failures.len());
    serde_json::json!({ "n": s.resources.len(), "apply_seconds": secs(took), "vmhwm_mb": mb })
}

async fn plan(n: usize, dir: &str, repeat: usize) -> serde_json::Value {
    let (engine, backend) = engine(dir);
    let t = Instant::now();
    let state = backend.load(STACK).await.unwrap();
    let load = t.elapsed();
    let mut runs = Vec::new();
    let mut resources = 0;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let s = engine.synth(&stack(n)).unwrap();
        let synth = t.elapsed();
        let plan = engine.plan_against(&s, &state);
        let took = t.elapsed();
        assert!(plan.is_empty(), "a no-op plan was expected: the state in {dir} is not the stack's");
        resources = s.resources.len();
        runs.push((took, synth));
    }
    assert_eq!(resources, state.resources.len(), "state and stack disagree on the resource count");
    drop(state);
    let t = Instant::now();
    let s = engine.synth(&stack(n)).unwrap();
    let plan = engine.plan(&s, &PlanOptions { refresh: false, offline: true }).await.unwrap();
    let with_load = t.elapsed();
    assert!(plan.is_empty(), "a no-op plan was expected from Engine::plan");
    serde_json::json!({
        "n": resources,
        "load_seconds": secs(load),
        "plan_seconds": runs.iter().map(|r| secs(r.0)).collect::<Vec<_>>(),
        "synth_seconds": runs.iter().map(|r| secs(r.1)).collect::<Vec<_>>(),
        "plan_with_load_seconds": secs(with_load),
        "vmhwm_mb": peak_rss_mb(),
    })
}

fn usage() -> ! {
    eprintln!("usage: vs_terraform prepare N DIR | plan N DIR REPEAT | apply N DIR");
    eprintln!("(run by scripts/bench-vs-terraform.sh; see the module docs)");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` runs every bench binary with `--bench`: this one needs Terraform beside it,
    // so it only points at the script and lets the other benches run.
    if args.iter().any(|a| a == "--bench") {
        eprintln!("vs_terraform: run it through `bash scripts/bench-vs-terraform.sh`; skipped");
        return;
    }
    if args.is_empty() {
        usage();
    }
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
    let dir = args.get(2).cloned().unwrap_or_else(|| usage());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let out = rt.block_on(async {
        match args[0].as_str() {
            "prepare" | "apply" => apply(n, &dir).await,
            "plan" => {
                let repeat = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
                plan(n, &dir, repeat).await
            }
            _ => usage(),
        }
    });
    println!("{out}");
}
