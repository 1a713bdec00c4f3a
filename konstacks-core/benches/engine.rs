//! Engine benchmarks against the simulated cloud, printing the figures the core issue asks for.
//! Run with: `cargo bench -p konstacks-core --bench engine` (release build, real time).
//!
//! 1. synth + no-op plan of a 10,000-resource stack with state in hand (time, peak memory of a
//!    separate process that only loads state, synthesizes and plans);
//! 2. apply of 500 independent resources through a provider limited to 20 calls/s;
//! 3. apply of a 50-deep dependency chain with 100 ms per call;
//! 4. share of an apply of 3,000 resources spent persisting state.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;
use support::{big_stack, peak_rss_mb};

use std::sync::Arc;
use std::time::{Duration, Instant};

use konstacks_core::engine::{ApplyOptions, Durability, Engine, PlanOptions};
use konstacks_core::model::*;
use konstacks_core::provider::ProviderLimits;
use konstacks_core::sim::{RateLimit, SimCloud, SimConfig};
use konstacks_core::state::{LocalBackend, MemoryBackend, StateBackend};

const CHILD_ENV: &str = "KONSTACKS_BENCH_NOOP_STATE_DIR";

fn sim_engine(sim: Arc<SimCloud>, state: Arc<dyn StateBackend>, limits: Option<ProviderLimits>) -> Engine {
    let mut p = sim.provider();
    if let Some(l) = limits {
        p.limits = l;
    }
    Engine::new(state).with_provider(p).with_sealer(None)
}

/// Child process: load state (not timed), then time synth + no-op plan, report peak memory.
fn noop_child(dir: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let backend = Arc::new(LocalBackend::new(dir));
        let engine = sim_engine(Arc::new(SimCloud::new(SimConfig::default())), backend.clone(), None);
        let state = backend.load("big").await.unwrap();
        let mut best = (Duration::MAX, Duration::MAX, Duration::MAX);
        let mut resources = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let stack = big_stack("big", 1000);
            let s = engine.synth(&stack).unwrap();
            let synth = t.elapsed();
            let plan = engine.plan_against(&s, &state);
            let took = t.elapsed();
            assert!(plan.is_empty(), "no-op plan expected");
            resources = s.resources.len();
            if took < best.0 {
                best = (took, synth, took - synth);
            }
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("{resources} {:.1} {:.1} {:.1} {:.1}", ms(best.0), peak_rss_mb(), ms(best.1), ms(best.2));
    });
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        noop_child(&dir);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // `KONSTACKS_BENCH_ONLY=2,4` runs a subset.
    let only = std::env::var("KONSTACKS_BENCH_ONLY").unwrap_or_default();
    let want = |n: &str| only.is_empty() || only.split(',').any(|x| x.trim() == n);
    rt.block_on(async {
        if want("1") {
        // 1. 10,000-resource no-op plan.
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::new(dir.path()));
        let engine = sim_engine(Arc::new(SimCloud::new(SimConfig::default())), backend.clone(), None);
        let s = engine.synth(&big_stack("big", 1000)).unwrap();
        let t = Instant::now();
        engine.apply(&s, &ApplyOptions::default()).await.unwrap();
        let setup = t.elapsed();
        assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, dir.path())
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout);
        let mut f = line.split_whitespace();
        let mut next = || f.next().unwrap_or("?");
        let (n, ms, mb, synth, plan) = (next(), next(), next(), next(), next());
        println!("1. synth + no-op plan of {n} resources with state in hand: {ms} ms (synth {synth} ms, plan with cost {plan} ms; target < 100 ms); peak memory of that process {mb} MB (target < 150 MB) [setup apply took {:.1} s]", setup.as_secs_f64());

        }
        if want("2") {
        // 2. 500 independent resources at 20 calls/s.
        let sim = Arc::new(SimCloud::new(SimConfig { rate_limit: Some(RateLimit { per_second: 20.0, burst: 1 }), ..Default::default() }));
        let engine = sim_engine(
            sim.clone(),
            Arc::new(MemoryBackend::new()),
            Some(ProviderLimits { max_concurrency: 32, calls_per_second: Some(20.0), burst: 1 }),
        );
        let stack = Stack::new("rate", Placement::region("eu-central"), Stage::Dev);
        for i in 0..500 {
            stack.add(&format!("vpc-{i}"), Vpc::new("10.0.0.0/16"));
        }
        let s = engine.synth(&stack).unwrap();
        let t = Instant::now();
        let r = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
        let took = t.elapsed().as_secs_f64();
        let bound = 499.0 / 20.0;
        let throttled = sim.calls() - sim.mutating_calls().min(sim.calls());
        println!(
            "2. apply of 500 independent resources at 20 calls/s: {took:.2} s, lower bound {bound:.2} s, ratio {:.3} (target <= 1.15); {} retries, {} failures surfaced, {} sim calls in all ({throttled} not mutating)",
            took / bound,
            r.retries,
            r.failures.len(),
            sim.calls()
        );

        }
        if want("3") {
        // 3. 50-deep chain, 100 ms per call.
        let dir3 = tempfile::tempdir().unwrap();
        let sim = Arc::new(SimCloud::new(SimConfig { latency: Duration::from_millis(100), ..Default::default() }));
        let engine = sim_engine(sim, Arc::new(LocalBackend::new(dir3.path())), None);
        let stack = Stack::new("chain", Placement::region("eu-central"), Stage::Dev);
        let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
        let mut prev = stack.add("fw-1", Firewall::new(vpc));
        for i in 2..50 {
            prev = stack.add(&format!("fw-{i}"), Firewall::new(vpc).allow(Ingress::tcp(443).from(prev)));
        }
        let s = engine.synth(&stack).unwrap();
        let t = Instant::now();
        engine.apply(&s, &ApplyOptions::default()).await.unwrap();
        let took = t.elapsed().as_secs_f64();
        println!("3. apply of a 50-deep chain at 100 ms per call: {took:.3} s, critical path 5.000 s, ratio {:.3} (target <= 1.05)", took / 5.0);

        }
        if want("4") {
        // 4. Persistence share of a 3,000-resource apply: the journal writer's busy time, and the
        // wall-clock difference to the same apply with state kept in memory.
        let mut baseline = 0.0;
        for (label, durability) in [("in memory (baseline)", None), ("local, flush (default)", Some(Durability::Flush)), ("local, fsync every intent", Some(Durability::Fsync))] {
            let dir4 = tempfile::tempdir().unwrap();
            let sim = Arc::new(SimCloud::new(SimConfig { latency: Duration::from_millis(100), ..Default::default() }));
            let backend: Arc<dyn StateBackend> = match durability {
                None => Arc::new(MemoryBackend::new()),
                Some(_) => Arc::new(LocalBackend::new(dir4.path())),
            };
            let engine = sim_engine(sim, backend, None).with_durability(durability.unwrap_or_default());
            let s = engine.synth(&big_stack("persist", 300)).unwrap();
            let t = Instant::now();
            let r = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
            let took = t.elapsed().as_secs_f64();
            if durability.is_none() {
                baseline = took;
                println!("4. apply of {} resources (100 ms per call, 32 in flight), state {label}: {took:.2} s", s.resources.len());
                continue;
            }
            println!(
                "   state {label}: {took:.2} s; journal writer busy {:.3} s = {:.2}% of the apply (target < 5%); wall-clock cost vs memory {:+.2}%",
                r.persist_ms as f64 / 1000.0,
                r.persist_ms as f64 / 1000.0 / took * 100.0,
                (took - baseline) / baseline * 100.0
            );
        }
        let dir4 = tempfile::tempdir().unwrap();
        let backend4 = LocalBackend::new(dir4.path());
        let engine = sim_engine(Arc::new(SimCloud::new(SimConfig::default())), Arc::new(backend4.clone()), None);
        let s = engine.synth(&big_stack("persist", 300)).unwrap();
        engine.apply(&s, &ApplyOptions::default()).await.unwrap();
        let st = backend4.load("persist").await.unwrap();
        let t = Instant::now();
        backend4.compact("persist", &st).await.unwrap();
        println!("   (one compaction of the 3,000-resource snapshot takes {:.3} s)", t.elapsed().as_secs_f64());
        }
    });
}
