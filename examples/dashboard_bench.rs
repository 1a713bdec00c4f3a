//! How long the dashboard's overview takes to render 200 stacks (server time, no network).
//!
//! Run with: `cargo run --release --example dashboard_bench [-- STACKS]`
//!
//! One `web-app` stack is applied to the simulated cloud; its state (resources, outputs, audit
//! trail) is then written under 200 names in a temporary local state directory, and `GET /` is
//! timed through the router. The target is under 300 ms; this prints the numbers and asserts
//! nothing (timing belongs to a bench, not to the test run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use konstacks::core::engine::{ApplyOptions, Engine};
use konstacks::core::model::Stage;
use konstacks::core::sim::{SimCloud, SimConfig};
use konstacks::core::state::{LocalBackend, StateBackend};
use konstacks::dashboard::{self, DashboardConfig};
use konstacks::templates::{self, TemplateContext};
use tower::ServiceExt;

const TOKEN: &str = "bench-token-0123456789abcdef";

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stacks: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let dir = tempfile::tempdir()?;
    let state_dir = dir.path().join("state");
    let backend = Arc::new(LocalBackend::new(&state_dir));

    // One real apply gives a realistic state.
    let sim = Arc::new(SimCloud::new(SimConfig { latency: Duration::ZERO, ..Default::default() }));
    let engine = Engine::new(backend.clone()).with_provider(sim.provider()).with_sealer(None);
    let template = templates::find("web-app")?;
    let stack = template.build_json(&TemplateContext::new("seed", Stage::Prod), serde_json::json!({}))?;
    let synth = engine.synth(&stack)?;
    let source = serde_json::json!({ "template": "web-app", "stage": "prod", "params": {} });
    engine.apply(&synth, &ApplyOptions { source: Some(source), ..Default::default() }).await?;
    let seed = backend.load("seed").await?;
    let started = Instant::now();
    for i in 0..stacks {
        let name = format!("client-{i:03}-prod");
        let mut state = seed.clone();
        state.stack = name.clone();
        backend.compact(&name, &state).await?;
    }
    println!(
        "wrote {stacks} stacks of {} resources each in {:.0} ms",
        seed.resources.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );

    let config = DashboardConfig::builder(backend, &state_dir).token(TOKEN).sim_latency(Duration::ZERO).build()?;
    let app = dashboard::router(config);
    let mut times = Vec::new();
    for _ in 0..10 {
        let req = Request::get("/").header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::empty())?;
        let t = Instant::now();
        let r = app.clone().oneshot(req).await?;
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX).await?;
        times.push(t.elapsed());
        if status != StatusCode::OK {
            return Err(format!("GET / answered {status}").into());
        }
        let rows = String::from_utf8_lossy(&body).matches("<tr data-stack=").count();
        if rows != stacks + 1 {
            return Err(format!("the overview lists {rows} stacks, not {}", stacks + 1).into());
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "overview of {} stacks: min {:.1} ms, median {:.1} ms, max {:.1} ms (target < 300 ms)",
        stacks + 1,
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    Ok(())
}
