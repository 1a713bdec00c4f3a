//! `konstacks dev`: the stack run for real on this machine. A fresh in-memory state and an
//! in-memory simulated cloud in live mode ([`crate::live`]); apply; print the URL; keep serving;
//! re-apply when the parameters file changes (a release, while traffic continues); on SIGINT or
//! SIGTERM stop every process and listener the session started, and exit 0.
//!
//! With `--probe`: apply, request the URL once through the live load balancer, print the
//! status and body, stop everything; exit 0 on a 2xx answer, 1 otherwise.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use konstacks_core::engine::{ApplyOptions, ApplyReport, DataLossConsent, Engine, PlanOptions};
use konstacks_core::error::Error;
use konstacks_core::kind::api::TargetHealthState;
use konstacks_core::kind::expr::Expr;
use konstacks_core::kind::fronts::ReleasePolicy;
use konstacks_core::model::Stack;
use konstacks_core::policy::PolicySet;
use konstacks_core::provider::Provider;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::MemoryBackend;
use konstacks_core::validate::Synthesized;
use serde_json::Value;
use tokio::sync::watch;

use super::{interrupt, Ctx, Failure, Ui};
use crate::cli::progress::Renderer;
use crate::cli::{Exit, GlobalArgs};
use crate::live::{all_groups_serving, LiveOptions, LiveRuntime};

/// The shortest time a new target gets to become healthy in a live release.
const MIN_HEALTHY_WITHIN_S: u32 = 30;

/// Live load balancers probe once a second whatever a group's interval (`docs/live.md`): the
/// time a release gives a new target to become healthy is compressed by the same ratio (never
/// below [`MIN_HEALTHY_WITHIN_S`], never above the stack's own), so a broken release rolls back
/// in seconds instead of minutes.
fn compress_release_limits(s: &mut Synthesized) {
    for r in &mut s.resources {
        let Some(Expr::List(groups)) = r.fields.get_mut("target_groups") else { continue };
        for g in groups {
            let Expr::Map(m) = g else { continue };
            let interval = match m.get("health_check") {
                Some(Expr::Lit(v)) => v.get("interval_s").and_then(Value::as_u64).unwrap_or(30).max(1),
                _ => continue,
            };
            let mut policy: ReleasePolicy = match m.get("release") {
                Some(Expr::Lit(v)) => serde_json::from_value(v.clone()).unwrap_or_default(),
                _ => ReleasePolicy::default(),
            };
            let own = policy.healthy_within_s;
            let compressed = u32::try_from(u64::from(own).div_ceil(interval)).unwrap_or(own);
            policy.healthy_within_s = own.min(compressed.max(MIN_HEALTHY_WITHIN_S));
            if let Ok(v) = serde_json::to_value(policy) {
                m.insert("release".into(), Expr::Lit(v));
            }
        }
    }
}

/// How often the parameters file is read for changes.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// What `dev` was asked.
pub(in crate::cli) struct DevArgs {
    /// `--probe`.
    pub(in crate::cli) probe: bool,
    /// `--ready-timeout`.
    pub(in crate::cli) ready_timeout: Duration,
}

/// Run `konstacks dev`. `rebuild` builds the stack again from the current parameters file.
pub(in crate::cli) fn dev(
    ui: &Ui,
    global: &GlobalArgs,
    providers: Vec<Provider>,
    stack: Stack,
    policy: Option<PolicySet>,
    args: &DevArgs,
    rebuild: &dyn Fn() -> Result<Stack, Failure>,
) -> Result<Exit, Failure> {
    if !providers.is_empty() {
        return Err(Failure::invalid(
            "`dev` runs the stack on this machine through the embedded simulated cloud; drop the other cloud \
             (use the `sim` provider)",
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::error(format!("cannot start the async runtime: {e}")))?;
    let work_dir =
        std::env::current_dir().map_err(|e| Failure::error(format!("cannot read the current directory: {e}")))?;
    let live = LiveRuntime::new(
        rt.handle().clone(),
        LiveOptions {
            // Absolute, so the root's path printed can be used from anywhere.
            ca_dir: work_dir.join(global.state_dir.join("live-ca")),
            work_dir,
        },
    )
    .map_err(|e| Failure::error(e.to_string()))?;
    let config = SimConfig { latency: Duration::from_millis(global.sim_latency_ms), ..Default::default() };
    let sim = Arc::new(SimCloud::new(config).with_runtime(live.clone()));
    let mut engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider());
    if std::env::var_os(konstacks_core::secret::SECRET_KEY_ENV).is_none_or(|k| k.is_empty()) {
        // Without a key, generated secrets (a database password) would be lost and rotated by
        // every release; the session's state lives in memory, so a key of its own does.
        engine = engine.with_sealer(Some(session_sealer()?));
    }
    if let Some(p) = policy {
        engine = engine.with_policy(p);
    }
    let cx = Ctx { ui, engine, rt, stack, source: None, labels: Default::default() };
    // One watcher for the whole session: the first SIGINT or SIGTERM stops it.
    let (stop_tx, stop) = watch::channel(false);
    cx.rt.spawn(async move {
        interrupt().await;
        let _ = stop_tx.send(true);
    });
    let session = Session { cx: &cx, live: &live, stop, params: global.params.clone() };
    let outcome = session.run(args, rebuild);
    ui.err("dev: stopping every process and listener of the session...");
    let stopped = cx.rt.block_on(live.shutdown());
    ui.err(&format!(
        "stopped: {} process(es) and {} load balancer(s); nothing of the session is left running",
        stopped.processes, stopped.load_balancers
    ));
    outcome
}

/// A state key for this session only, from the operating system's random source.
fn session_sealer() -> Result<konstacks_core::secret::Sealer, Failure> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Failure::error(format!("cannot read random bytes for the session's state key: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(konstacks_core::secret::Sealer::from_passphrase(&konstacks_core::secret::Secret::new(hex)))
}

struct Session<'a, 'u> {
    cx: &'a Ctx<'u>,
    live: &'a Arc<LiveRuntime>,
    stop: watch::Receiver<bool>,
    params: Option<PathBuf>,
}

/// How a release ended.
enum Released {
    Done(Box<ApplyReport>),
    Failed(Failure),
    Interrupted(Failure),
}

impl Session<'_, '_> {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    fn run(&self, args: &DevArgs, rebuild: &dyn Fn() -> Result<Stack, Failure>) -> Result<Exit, Failure> {
        let ui = self.cx.ui;
        let mut s = self.cx.engine.synth(&self.cx.stack)?;
        compress_release_limits(&mut s);
        self.show_live_notes(&s);
        let mut seen = self.params_bytes();
        let report = match self.release(&s, "Apply")? {
            Released::Done(r) => *r,
            Released::Failed(f) | Released::Interrupted(f) => return Err(f),
        };
        let url = self.url(&report);
        if !self.wait_serving(args.ready_timeout) {
            if self.stopped() {
                return Ok(Exit::Success);
            }
            let msg = format!(
                "the load balancers' targets did not become healthy within {}s:\n{}",
                args.ready_timeout.as_secs(),
                self.unhealthy_lines().join("\n")
            );
            if args.probe {
                return Err(Failure::error(msg));
            }
            ui.err(&format!("warning: {msg}"));
        }
        match &url {
            Some(u) => ui.out(&format!("serving: {u}")),
            None => ui.out("serving: nothing (the stack has no load balancer and no VM app)"),
        }
        for l in self.live.listeners() {
            ui.out(&format!("  {l}"));
        }
        if let Some(ca) = self.live.root_ca() {
            ui.out(&format!("local CA root (trust it for HTTPS): {}", ca.display()));
        }
        ui.out(&format!("app logs: {}", self.live.logs_dir().display()));
        if args.probe {
            return self.probe(url.as_deref());
        }
        match &self.params {
            Some(p) => ui.out(&format!("watching {} for changes; Ctrl-C stops everything", p.display())),
            None => ui.out("Ctrl-C stops everything"),
        }
        let mut stop = self.stop.clone();
        loop {
            let stopping = self.cx.rt.block_on(async {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => true,
                    () = tokio::time::sleep(WATCH_EVERY) => false,
                }
            });
            if stopping {
                return Ok(Exit::Success);
            }
            let now = self.params_bytes();
            if now == seen || now.is_none() {
                continue;
            }
            seen = now;
            if self.params_release(rebuild)? {
                return Ok(Exit::Success);
            }
        }
    }

    /// The parameters file's bytes, `None` when there is none or it cannot be read right now
    /// (an editor replacing it).
    fn params_bytes(&self) -> Option<Vec<u8>> {
        self.params.as_ref().and_then(|p| std::fs::read(p).ok())
    }

    /// Release what the changed parameters file now says. `Ok(true)` when the session was
    /// interrupted meanwhile.
    fn params_release(&self, rebuild: &dyn Fn() -> Result<Stack, Failure>) -> Result<bool, Failure> {
        let ui = self.cx.ui;
        let shown = self.params.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        ui.out(&format!("release: {shown} changed; planning"));
        let stack = match rebuild() {
            Ok(s) => s,
            Err(f) => {
                ui.err(&format!("release refused: {}; still serving the previous release", f.message));
                return Ok(false);
            }
        };
        let mut s = match self.cx.engine.synth(&stack) {
            Ok(s) => s,
            Err(e) => {
                ui.err(&format!("release refused: {e}; still serving the previous release"));
                return Ok(false);
            }
        };
        compress_release_limits(&mut s);
        let mark = self.live.mark();
        let started = Instant::now();
        match self.release(&s, "Release")? {
            Released::Done(r) => {
                let changed = r.created.len() + r.updated.len() + r.replaced.len() + r.deleted.len();
                if changed == 0 {
                    ui.out("release: nothing to change");
                } else {
                    ui.out(&format!(
                        "release complete in {:.1}s: {} created, {} updated, {} replaced, {} deleted",
                        started.elapsed().as_secs_f64(),
                        r.created.len(),
                        r.updated.len(),
                        r.replaced.len(),
                        r.deleted.len()
                    ));
                }
                Ok(false)
            }
            Released::Interrupted(f) => {
                ui.err(&format!("release interrupted: {}", f.message));
                Ok(true)
            }
            Released::Failed(f) => {
                let mut msg = format!("release failed after {:.1}s: {}", started.elapsed().as_secs_f64(), f.message);
                for r in self.live.retired_since(mark) {
                    if r.last_health_failure.is_none() && r.exited.is_none() {
                        continue;
                    }
                    msg.push_str(&format!("\n  evidence: {} (version {})", r.what, r.version));
                    if let Some(h) = &r.last_health_failure {
                        msg.push_str(&format!("; last failed health check: {h}"));
                    }
                    if let Some(x) = &r.exited {
                        msg.push_str(&format!("; the process {x} on its own"));
                    }
                    if !r.log_tail.trim().is_empty() {
                        msg.push_str("\n    its log ended with:");
                        for l in r.log_tail.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev() {
                            msg.push_str(&format!("\n    | {l}"));
                        }
                    }
                }
                ui.err(&msg);
                let serving = all_groups_serving(&self.live.health());
                ui.err(if serving {
                    "still serving the previous release"
                } else {
                    "warning: some target groups have no healthy target now"
                });
                Ok(false)
            }
        }
    }

    /// Plan and apply `s` without asking (a dev session is throwaway: data loss is allowed),
    /// rendering progress; SIGINT cancels what has not started.
    fn release(&self, s: &Synthesized, what: &str) -> Result<Released, Failure> {
        let engine = &self.cx.engine;
        let plan = match self.cx.rt.block_on(engine.plan(s, &PlanOptions::default())) {
            Ok(p) => p,
            Err(e) => return Ok(Released::Failed(e.into())),
        };
        if plan.is_empty() {
            return Ok(Released::Done(Box::default()));
        }
        self.cx.show_plan(&plan);
        let opts = ApplyOptions {
            data_loss: DataLossConsent::All,
            disable_deletion_protection: true,
            expected: Some(plan),
            ..Default::default()
        };
        let mut rx = engine.subscribe();
        let mut renderer = Renderer::new(self.cx.ui);
        let cancel = engine.canceller();
        let mut stop = self.stop.clone();
        let result = self.cx.rt.block_on(async {
            let fut = engine.apply(s, &opts);
            tokio::pin!(fut);
            let mut asked = false;
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s), if !asked => {
                        asked = true;
                        cancel.cancel();
                        self.cx.ui.err("Interrupted: starting nothing new; waiting for the operations in flight...");
                    }
                    Some(e) = rx.recv() => renderer.event(&e),
                    out = &mut fut => {
                        while let Ok(e) = rx.try_recv() {
                            renderer.event(&e);
                        }
                        break out;
                    }
                }
            }
        });
        renderer.finish();
        Ok(match result {
            Ok(r) => Released::Done(Box::new(r)),
            Err(e @ Error::Interrupted(_)) => Released::Interrupted(e.into()),
            Err(e) => {
                let mut f = match self.cx.finish_run(Err(e), what) {
                    Err(f) => f,
                    Ok(_) => Failure::error("the release failed"),
                };
                // The session's state lives in memory: the pointer to `plan` helps no one here.
                f.message =
                    f.message.replace("\nState records everything that was done; run `plan` to see what is left.", "");
                if self.stopped() {
                    Released::Interrupted(f)
                } else {
                    Released::Failed(f)
                }
            }
        })
    }

    /// What stays simulated and what runs for real, before the first apply.
    fn show_live_notes(&self, s: &Synthesized) {
        let ui = self.cx.ui;
        for r in &s.resources {
            let kind = r.kind.to_string();
            let engine = match r.fields.get("engine") {
                Some(Expr::Lit(Value::String(e))) => e.clone(),
                _ => continue,
            };
            let note = match kind.as_str() {
                "database" => self.live.database_note(&engine),
                "cache" => self.live.cache_note(&engine),
                _ => continue,
            };
            match note {
                Ok(how) => ui.out(&format!("live: {} ({engine}) runs on {how}", r.path)),
                Err(why) => ui.out(&format!("live: {} ({engine}) {why}", r.path)),
            }
        }
    }

    /// The stack's `url` output when it points at a live listener, else the first live load
    /// balancer's URL.
    fn url(&self, report: &ApplyReport) -> Option<String> {
        let live = self.live.load_balancer_urls();
        if let Some(Value::String(u)) = report.outputs.get("url") {
            if live.values().any(|l| l == u) {
                return Some(u.clone());
            }
        }
        live.into_values().next().or_else(|| self.live.app_urls().into_values().next())
    }

    /// Wait until every target group has a healthy target (or the session is stopped, or
    /// `limit` passed).
    fn wait_serving(&self, limit: Duration) -> bool {
        let start = Instant::now();
        let mut stop = self.stop.clone();
        loop {
            if all_groups_serving(&self.live.health()) {
                return true;
            }
            if self.stopped() || start.elapsed() > limit {
                return false;
            }
            self.cx.rt.block_on(async {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            });
        }
    }

    fn unhealthy_lines(&self) -> Vec<String> {
        self.live
            .health()
            .into_values()
            .flatten()
            .filter(|t| t.state != TargetHealthState::Healthy)
            .map(|t| {
                format!("  {} in group `{}`: {:?}: {}", t.target_id, t.group, t.state, t.reason.unwrap_or_default())
            })
            .collect()
    }

    fn probe(&self, url: Option<&str>) -> Result<Exit, Failure> {
        let url = url.ok_or_else(|| Failure::error("nothing to probe: the stack serves no URL"))?;
        let root = self.live.root_ca();
        let (status, body) = self
            .cx
            .rt
            .block_on(crate::live::get(url, root.as_deref()))
            .map_err(|e| Failure::error(format!("GET {url} failed: {e}")))?;
        let ui = self.cx.ui;
        ui.out(&format!("GET {url} -> {status}"));
        ui.out(&body);
        if (200..300).contains(&status) {
            Ok(Exit::Success)
        } else {
            Err(Failure::error(format!("GET {url} answered {status}")))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use konstacks_core::model::Stage;
    use konstacks_templates::TemplateContext;
    use serde_json::json;

    use super::*;

    fn release_of(s: &Synthesized) -> Vec<ReleasePolicy> {
        let mut out = Vec::new();
        for r in &s.resources {
            if let Some(Expr::List(groups)) = r.fields.get("target_groups") {
                for g in groups {
                    if let Expr::Map(m) = g {
                        out.push(match m.get("release") {
                            Some(Expr::Lit(v)) => serde_json::from_value(v.clone()).unwrap(),
                            _ => ReleasePolicy::default(),
                        });
                    }
                }
            }
        }
        out
    }

    #[test]
    fn release_limits_are_compressed_like_the_probes_within_bounds() {
        let template = konstacks_templates::find("web-app").unwrap();
        let cx = TemplateContext::new("live-test", Stage::Dev);
        let stack = template.build_json(&cx, json!({ "load_balancer": true })).unwrap();
        let mut s = stack.synth(&[&SimCloud::catalog()]).unwrap();
        assert_eq!(release_of(&s), [ReleasePolicy::default()]);
        compress_release_limits(&mut s);
        // 300 s at one probe per 30 s is 10 live probes: below the floor of 30 s.
        let expected = ReleasePolicy { healthy_within_s: MIN_HEALTHY_WITHIN_S, ..ReleasePolicy::default() };
        assert_eq!(release_of(&s), [expected]);
        // Compressing again changes nothing: every release of a session plans the same fields.
        compress_release_limits(&mut s);
        assert_eq!(release_of(&s), [expected]);
    }
}
