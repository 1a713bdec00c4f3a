//! How each stage grows from 1,000 to 100,000 resources (issue #20, "Scale").
//! Run with: `nice cargo bench -p konstacks-core --bench scale -- 1000 10000 100000`
//! (sizes are resource counts, rounded down to whole 10-resource groups; default 1000 10000).
//!
//! The stack is the engine bench's shape (groups of VPC, 4 subnets, 2 firewalls, 2 VMs, a
//! database) on the simulated cloud at zero latency, local state in a temporary directory, default
//! durability (fsync). Each size runs in two fresh child processes so each peak memory (VmHWM)
//! belongs to its stage alone:
//! - `apply`: synth, then the first apply into an empty state directory;
//! - `plan`: `LocalBackend::load` of that state (reload; "reload peak MB" is the peak so far),
//!   then synth + no-op plan against it (best of 3; "plan peak MB" includes the loaded state).
//!
//! The last lines print, per stage, the growth factor per 10x resources: 10.0 is linear.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;
use support::{big_stack, peak_rss_mb};

use std::sync::Arc;
use std::time::{Duration, Instant};

use konstacks_core::engine::{ApplyOptions, Engine};
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::{LocalBackend, StateBackend};

const CHILD_ENV: &str = "KONSTACKS_SCALE_CHILD";
const STACK: &str = "scale";

fn engine(dir: &str) -> (Engine, Arc<LocalBackend>) {
    let sim = Arc::new(SimCloud::new(SimConfig { latency: Duration::ZERO, ..Default::default() }));
    let backend = Arc::new(LocalBackend::new(dir));
    let engine = Engine::new(backend.clone()).with_provider(sim.provider()).with_sealer(None);
    (engine, backend)
}

/// Child: `apply GROUPS DIR` or `plan GROUPS DIR`; prints `key=value` pairs on one line.
fn child(spec: &str) {
    let mut parts = spec.splitn(3, ' ');
    let (step, groups, dir) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let groups: usize = groups.parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (engine, backend) = engine(dir);
        match step {
            "apply" => {
                let t = Instant::now();
                let s = engine.synth(&big_stack(STACK, groups)).unwrap();
                let synth = t.elapsed();
                let t = Instant::now();
                let r = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
                let apply = t.elapsed();
                assert!(r.failures.is_empty(), "apply failures: {}", r.failures.len());
                println!(
                    "n={} synth={} apply={} apply_mb={:.1}",
                    s.resources.len(),
                    synth.as_secs_f64(),
                    apply.as_secs_f64(),
                    peak_rss_mb()
                );
            }
            _ => {
                let t = Instant::now();
                let state = backend.load(STACK).await.unwrap();
                let reload = t.elapsed();
                let reload_mb = peak_rss_mb();
                let mut best = Duration::MAX;
                for _ in 0..3 {
                    let t = Instant::now();
                    let s = engine.synth(&big_stack(STACK, groups)).unwrap();
                    let plan = engine.plan_against(&s, &state);
                    let took = t.elapsed();
                    assert!(plan.is_empty(), "no-op plan expected");
                    best = best.min(took);
                }
                println!(
                    "reload={} reload_mb={reload_mb:.1} plan={} plan_mb={:.1}",
                    reload.as_secs_f64(),
                    best.as_secs_f64(),
                    peak_rss_mb()
                );
            }
        }
    });
}

fn run_child(step: &str, groups: usize, dir: &std::path::Path) -> Vec<(String, f64)> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, format!("{step} {groups} {}", dir.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{step} child failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('=').and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?))))
        .collect()
}

const COLUMNS: [(&str, &str); 7] = [
    ("synth", "synth s"),
    ("apply", "first apply s"),
    ("apply_mb", "apply peak MB"),
    ("reload", "state reload s"),
    ("reload_mb", "reload peak MB"),
    ("plan", "synth+no-op plan s"),
    ("plan_mb", "plan peak MB"),
];

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let mut sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![1000, 10000];
    }
    let mut rows: Vec<(usize, Vec<(String, f64)>)> = Vec::new();
    print!("{:>9}", "resources");
    for (_, h) in COLUMNS {
        print!(" {h:>19}");
    }
    println!();
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let groups = (n / 10).max(1);
        let mut row = run_child("apply", groups, dir.path());
        row.extend(run_child("plan", groups, dir.path()));
        let get = |k: &str| row.iter().find(|(key, _)| key == k).map(|(_, v)| *v).unwrap_or(f64::NAN);
        print!("{:>9}", get("n"));
        for (k, _) in COLUMNS {
            print!(" {:>19.3}", get(k));
        }
        println!();
        rows.push((get("n") as usize, row));
    }
    // Growth per 10x resources between consecutive sizes: (t2/t1)^(1/log10(n2/n1)).
    for w in rows.windows(2) {
        let ((n1, r1), (n2, r2)) = (&w[0], &w[1]);
        let decades = (*n2 as f64 / *n1 as f64).log10();
        print!("growth per 10x, {n1} -> {n2}:");
        for (k, h) in COLUMNS {
            let a = r1.iter().find(|(key, _)| key == k).map(|(_, v)| *v).unwrap_or(f64::NAN);
            let b = r2.iter().find(|(key, _)| key == k).map(|(_, v)| *v).unwrap_or(f64::NAN);
            print!("  {h} x{:.1}", (b / a).powf(1.0 / decades));
        }
        println!();
    }
}
