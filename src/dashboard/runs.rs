//! Runs started from the dashboard (apply, destroy) in the background, the registry that keeps
//! their events so a late subscriber sees every one from the start, the run page and its
//! server-sent event stream.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use futures::Stream;
use konstacks_core::clock::Cancel;
use konstacks_core::engine::{ApplyReport, Engine};
use konstacks_core::error::Error;
use konstacks_core::events::{Event, EventKind};
use maud::{html, Markup, PreEscaped};
use serde_json::{json, Value};

use super::auth::Access;
use super::layout::{self, document, seg};
use super::{AppState, Shared};

/// Runs kept in memory; the oldest finished ones go first.
const RUNS_KEPT: usize = 64;

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunStatus {
    Running,
    Complete,
    Failed,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Failed => "failed",
        }
    }
}

/// What a run is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunCommand {
    Apply,
    Destroy,
}

struct RunState {
    status: RunStatus,
    /// Every event, as the JSON the stream sends (the engine's event plus a `text` line).
    events: Vec<(String, String)>,
    /// The outcome, in one or more lines (never a secret: reports and errors are redacted).
    message: Option<String>,
}

/// One run.
pub(crate) struct Run {
    pub(crate) id: u64,
    pub(crate) stack: String,
    pub(crate) command: RunCommand,
    state: Mutex<RunState>,
    /// Bumped on every change; subscribers wait on it.
    changed: tokio::sync::watch::Sender<u64>,
    /// The engine's switch, to stop the run when the server stops.
    cancel: Cancel,
}

impl Run {
    fn lock(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn push(&self, e: &Event) {
        let text = event_text(e);
        let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("text".into(), Value::String(text.clone()));
        }
        self.lock().events.push((v.to_string(), text));
        self.bump();
    }

    fn finish(&self, status: RunStatus, message: String) {
        {
            let mut s = self.lock();
            s.status = status;
            s.message = Some(message);
        }
        self.bump();
    }

    /// Status, event `i` (as JSON) if there is one yet, and the outcome.
    fn at(&self, i: usize) -> (RunStatus, Option<String>, Option<String>) {
        let s = self.lock();
        (s.status, s.events.get(i).map(|(json, _)| json.clone()), s.message.clone())
    }

    /// Status, events from `from` on, and the outcome.
    fn snapshot(&self, from: usize) -> (RunStatus, Vec<(String, String)>, Option<String>) {
        let s = self.lock();
        (s.status, s.events.get(from..).map(<[_]>::to_vec).unwrap_or_default(), s.message.clone())
    }
}

/// Every run of this dashboard process.
#[derive(Default)]
pub(crate) struct Runs {
    next: AtomicU64,
    map: Mutex<BTreeMap<u64, Arc<Run>>>,
}

impl Runs {
    fn start(&self, stack: &str, command: RunCommand) -> Arc<Run> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let run = Arc::new(Run {
            id,
            stack: stack.to_string(),
            command,
            state: Mutex::new(RunState { status: RunStatus::Running, events: Vec::new(), message: None }),
            changed: tokio::sync::watch::Sender::new(0),
            cancel: Cancel::new(),
        });
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        while map.len() >= RUNS_KEPT {
            let done = map.iter().find(|(_, r)| r.lock().status != RunStatus::Running).map(|(k, _)| *k);
            match done {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(id, run.clone());
        run
    }

    fn get(&self, id: u64) -> Option<Arc<Run>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Stop every run still going (nothing new starts; operations in flight finish, the lock is
    /// released, state records what was done) and wait until each has ended. How many there were.
    pub(crate) async fn stop_all(&self) -> usize {
        let running: Vec<Arc<Run>> = {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.values().filter(|r| r.lock().status == RunStatus::Running).cloned().collect()
        };
        for r in &running {
            r.cancel.cancel();
        }
        for r in &running {
            loop {
                let mut rx = r.changed.subscribe();
                if r.lock().status != RunStatus::Running || rx.changed().await.is_err() {
                    break;
                }
            }
        }
        running.len()
    }
}

/// One line for a human.
fn event_text(e: &Event) -> String {
    let at = format!("{:>6.1}s", e.at_ms as f64 / 1000.0);
    let path = e.path.as_deref().unwrap_or(&e.stack);
    let op = |o: &konstacks_core::state::OpKind| format!("{o:?}").to_lowercase();
    let what = match &e.kind {
        EventKind::Planned { create, update, replace, delete } => {
            format!("plan: {create} to create, {update} to update, {replace} to replace, {delete} to delete")
        }
        EventKind::Started { op: o } => format!("{path}: {} started", op(o)),
        EventKind::Progress { message } => format!("{path}: {message}"),
        EventKind::Retrying { op: o, attempt, delay_ms, error_kind, .. } => {
            format!("{path}: {} attempt {attempt} failed ({error_kind}); retrying in {delay_ms} ms", op(o))
        }
        EventKind::Adopted { id } => format!("{path}: found again and adopted as {id}"),
        EventKind::Succeeded { op: o, id, elapsed_ms } => {
            format!("{path}: {} done ({id}, {:.1} s)", op(o), *elapsed_ms as f64 / 1000.0)
        }
        EventKind::Failed { op: o, error_kind, error } => format!("{path}: {} failed ({error_kind}): {error}", op(o)),
        EventKind::Warning { message } => format!("warning: {message}"),
        EventKind::Skipped { reason } => format!("{path}: skipped: {reason}"),
        EventKind::Finished { succeeded, failed, skipped, elapsed_ms } => format!(
            "finished: {succeeded} succeeded, {failed} failed, {skipped} skipped in {:.1} s",
            *elapsed_ms as f64 / 1000.0
        ),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    format!("{at}  {what}")
}

/// How an apply or destroy ended, in words.
fn outcome(command: RunCommand, result: &Result<ApplyReport, Error>) -> (RunStatus, String) {
    match result {
        Ok(r) if command == RunCommand::Destroy => {
            (RunStatus::Complete, format!("Destroy complete: {} deleted.", r.deleted.len()))
        }
        Ok(r) => (
            RunStatus::Complete,
            format!(
                "Apply complete: {} created, {} updated, {} replaced, {} deleted.",
                r.created.len(),
                r.updated.len(),
                r.replaced.len(),
                r.deleted.len()
            ),
        ),
        Err(Error::Apply(report)) => {
            let mut m = format!("{} operation(s) failed:", report.failures.len());
            for f in &report.failures {
                m.push_str(&format!("\n{} ({:?}): {}", f.path, f.op, f.message));
            }
            m.push_str("\nState records everything that was done.");
            (RunStatus::Failed, m)
        }
        Err(e) => (RunStatus::Failed, e.to_string()),
    }
}

/// Run `work` (an apply or destroy on `engine`) in the background, feeding `run`.
pub(crate) fn spawn<F, Fut>(run: Arc<Run>, engine: Engine, work: F)
where
    F: FnOnce(Arc<Engine>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<ApplyReport, Error>> + Send + 'static,
{
    let engine = Arc::new(engine.with_cancel(run.cancel.clone()));
    let mut rx = engine.subscribe();
    tokio::spawn(async move {
        let fut = work(engine.clone());
        tokio::pin!(fut);
        let result = loop {
            tokio::select! {
                Some(e) = rx.recv() => run.push(&e),
                out = &mut fut => {
                    // Events are sent before the future completes: keep the last ones.
                    while let Ok(e) = rx.try_recv() {
                        run.push(&e);
                    }
                    break out;
                }
            }
        };
        let (status, message) = outcome(run.command, &result);
        run.finish(status, message);
    });
}

/// Start an apply of `synth` (planned as `plan`) and answer with the redirect to its page.
pub(crate) fn start(app: &Shared, stack: &str, command: RunCommand) -> Arc<Run> {
    app.runs.start(stack, command)
}

/// `POST /runs`: see `new_stack::apply`.
pub(crate) async fn start_apply(
    State(app): State<AppState>,
    Extension(access): Extension<Access>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    super::new_stack::apply(&app, &access, &fields).await
}

/// Where a run's page is.
pub(crate) fn redirect_to(run: &Run) -> Response {
    Redirect::to(&format!("/runs/{}", run.id)).into_response()
}

fn find(app: &Shared, id: &str) -> Option<Arc<Run>> {
    id.parse().ok().and_then(|id| app.runs.get(id))
}

const LIVE_JS: &str = r#"
(function () {
  var list = document.getElementById('progress');
  var status = document.getElementById('run-status');
  if (!window.EventSource || status.textContent !== 'running') { return; }
  var seen = list.children.length;
  var es = new EventSource(location.pathname + '/events');
  es.onmessage = function (m) {
    if (Number(m.lastEventId) < seen) { return; }
    seen = Number(m.lastEventId) + 1;
    var li = document.createElement('li');
    li.textContent = JSON.parse(m.data).text;
    list.appendChild(li);
  };
  es.addEventListener('done', function (m) {
    es.close();
    var d = JSON.parse(m.data);
    status.textContent = d.status;
    status.className = d.status;
    var out = document.getElementById('run-message');
    if (d.message) { out.textContent = d.message; out.hidden = false; if (d.status === 'failed') { out.className = 'notice error'; } }
    document.getElementById('stack-link').hidden = false;
  });
})();
"#;

fn render(run: &Run) -> Markup {
    let (status, events, message) = run.snapshot(0);
    let verb = match run.command {
        RunCommand::Apply => "Apply",
        RunCommand::Destroy => "Destroy",
    };
    let running = status == RunStatus::Running;
    // Without JavaScript the page reloads itself while the run goes on.
    let head = running.then(|| html! { noscript { meta http-equiv="refresh" content="2"; } });
    let body = html! {
        h1 { (verb) " " (run.stack) }
        p { "Status: " strong #run-status class=(status.as_str()) aria-live="polite" { (status.as_str()) } }
        pre #run-message class=(if status == RunStatus::Failed { "notice error" } else { "notice" }) hidden[message.is_none()] {
            (message.unwrap_or_default())
        }
        h2 { "Progress" }
        ol #progress { @for (_, text) in &events { li { (text) } } }
        p { a #stack-link href={ "/stacks/" (seg(&run.stack)) } hidden[running] { "Open stack " (run.stack) } }
        script { (PreEscaped(LIVE_JS)) }
    };
    document(&format!("{verb} {}", run.stack), head, body)
}

/// `GET /runs/ID`.
pub(crate) async fn page(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    match find(&app, &id) {
        Some(run) => layout::respond(StatusCode::OK, render(&run)),
        None => layout::error_page(StatusCode::NOT_FOUND, "No such run", "This dashboard has no run with that id."),
    }
}

/// The event stream of a run from event `from` on, then `done`.
fn stream(run: Arc<Run>, from: usize) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold((run, from, false), |(run, next, finished)| async move {
        if finished {
            return None;
        }
        loop {
            // Subscribed before looking, so a change between the look and the wait is not missed.
            let mut rx = run.changed.subscribe();
            let (status, event, message) = run.at(next);
            if let Some(json) = event {
                let e = SseEvent::default().id(next.to_string()).data(json);
                return Some((Ok::<_, Infallible>(e), (run, next + 1, false)));
            }
            if status != RunStatus::Running {
                let done = json!({ "status": status.as_str(), "message": message }).to_string();
                return Some((Ok(SseEvent::default().event("done").data(done)), (run, next, true)));
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    })
}

/// `GET /runs/ID/events`: server-sent events, every event from the first (or after
/// `Last-Event-ID`), then `event: done` with the status.
pub(crate) async fn events(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let Some(run) = find(&app, &id) else {
        return (StatusCode::NOT_FOUND, "no such run\n").into_response();
    };
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(0, |n| n + 1);
    let mut r =
        Sse::new(stream(run, from)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use konstacks_core::state::MemoryBackend;

    use super::*;

    fn event(kind: EventKind) -> Event {
        Event { stack: "s".into(), path: Some("network/vpc".into()), at_ms: 1500, kind }
    }

    #[test]
    fn events_read_as_one_line_each() {
        let e = event(EventKind::Succeeded {
            op: konstacks_core::state::OpKind::Create,
            id: "vpc-1".into(),
            elapsed_ms: 250,
        });
        assert_eq!(event_text(&e), "   1.5s  network/vpc: create done (vpc-1, 0.2 s)");
    }

    #[tokio::test]
    async fn a_late_subscriber_sees_every_event_and_stopping_waits_for_the_run() {
        let runs = Runs::default();
        let run = runs.start("s", RunCommand::Apply);
        let engine = Engine::new(Arc::new(MemoryBackend::default()));
        let cancel = run.cancel.clone();
        let work_run = run.clone();
        spawn(run.clone(), engine, move |_| async move {
            work_run.push(&event(EventKind::Progress { message: "one".into() }));
            while !cancel.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(ApplyReport::default())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(run.snapshot(0).0, RunStatus::Running);
        assert_eq!(runs.stop_all().await, 1);
        let (status, events, message) = run.snapshot(0);
        assert_eq!(status, RunStatus::Complete);
        assert_eq!(events.len(), 1);
        assert!(message.unwrap().starts_with("Apply complete"));
        // A subscriber arriving now still gets the event, then `done`.
        let all: Vec<_> = futures::StreamExt::collect::<Vec<_>>(stream(run.clone(), 0)).await;
        assert_eq!(all.len(), 2);
        assert_eq!(runs.get(run.id).unwrap().id, run.id);
        assert_eq!(runs.stop_all().await, 0);
    }
}
