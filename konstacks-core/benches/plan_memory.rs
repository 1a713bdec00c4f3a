//! Where the memory of a no-op plan goes, stage by stage (issue #20; ADR 0008). Not a test.
//!
//! Run with: `cargo bench -p konstacks-core --bench plan_memory -- 10000` (groups of 10
//! resources: 10000 is 100,000 resources). The first run applies the stack into
//! `target/plan-memory-<groups>` (kept for the next runs); every run then prints the resident
//! memory (RSS, from /proc/self/statm) after each stage of a no-op plan: state loaded, the user's
//! stack built, synthesized, planned, and the peak (VmHWM).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;
use support::{big_stack, peak_rss_mb};

use std::sync::Arc;
use std::time::Duration;

use konstacks_core::engine::{ApplyOptions, Engine};
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::{LocalBackend, StateBackend};

const STACK: &str = "scale";

/// Resident memory now, in MB.
fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(f64::NAN);
    pages * 4096.0 / (1024.0 * 1024.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let groups: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let dir = format!("{}/../target/plan-memory-{groups}", env!("CARGO_MANIFEST_DIR"));
    let sim = Arc::new(SimCloud::new(SimConfig { latency: Duration::ZERO, ..Default::default() }));
    let backend = Arc::new(LocalBackend::new(&dir));
    let engine = Engine::new(backend.clone()).with_provider(sim.provider()).with_sealer(None);
    // Whether it was applied, without loading it (what this process allocates is the measure).
    if !std::path::Path::new(&format!("{dir}/stacks/{STACK}/state.json")).exists() {
        let s = engine.synth(&big_stack(STACK, groups)).unwrap();
        engine.apply(&s, &ApplyOptions::default()).await.unwrap();
        println!("applied {} resources into {dir}; run again to measure", s.resources.len());
        return;
    }
    let stage = |what: &str| println!("{what:<22} {:>8.1} MB", rss_mb());
    stage("start");
    let state = backend.load(STACK).await.unwrap();
    stage("state loaded");
    let stack = big_stack(STACK, groups);
    stage("stack built");
    let s = engine.synth(&stack).unwrap();
    stage("synthesized");
    drop(stack);
    let plan = engine.plan_against(&s, &state);
    assert!(plan.is_empty(), "the plan of an applied stack must be empty");
    stage("planned");
    println!("{:<22} {:>8.1} MB  ({} resources)", "peak (VmHWM)", peak_rss_mb(), s.resources.len());
}
