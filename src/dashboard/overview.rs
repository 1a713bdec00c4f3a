//! `GET /`: every stack of the state backend, grouped by client, read without taking locks.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use futures::StreamExt;
use konstacks_core::cost::CostModel;
use konstacks_core::state::{AuditCommand, AuditEntry, AuditResult, LockInfo, StackState};
use maud::{html, Markup};
use serde_json::Value;

use super::auth::Access;
use super::layout::{self, document, seg, usd_or_dash};
use super::rebuild::{provider_of, source_of};
use super::AppState;

/// How many stacks are read at once.
const READ_CONCURRENCY: usize = 16;

/// The query of the overview.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct OverviewQuery {
    /// Keep stacks whose name, template, client, stage, provider or region contains this.
    #[serde(default)]
    q: String,
    /// `name` (default), `cost`, `last_run` or `resources`.
    #[serde(default)]
    sort: String,
}

/// One stack as the overview shows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) client: String,
    pub(crate) template: Option<String>,
    pub(crate) stage: Option<String>,
    pub(crate) provider: String,
    pub(crate) region: Option<String>,
    pub(crate) resources: usize,
    pub(crate) last_run: Option<AuditEntry>,
    pub(crate) lock: Option<LockInfo>,
    pub(crate) drift: Option<AuditEntry>,
    pub(crate) cost: Option<f64>,
    pub(crate) compliance: Option<AuditEntry>,
    pub(crate) url: Option<String>,
    /// Why the state could not be read.
    pub(crate) error: Option<String>,
}

/// The `client` tags of the stack's resources, joined (empty when none carries one).
pub(crate) fn client_of(state: &StackState) -> String {
    let clients: BTreeSet<&str> =
        state.resources.values().filter_map(|r| r.inputs.get("tags")?.get("client")?.as_str()).collect();
    clients.into_iter().collect::<Vec<_>>().join(", ")
}

/// The stack's main URL: the output `url`, or the first output that is an http(s) URL.
pub(crate) fn url_of(state: &StackState) -> Option<String> {
    fn is_url(v: &Value) -> Option<&str> {
        v.as_str().filter(|s| s.starts_with("http://") || s.starts_with("https://"))
    }
    state.outputs.get("url").and_then(is_url).or_else(|| state.outputs.values().find_map(is_url)).map(str::to_string)
}

/// Summarize one stack from its state and lock.
pub(crate) fn summarize(name: &str, state: &StackState, lock: Option<LockInfo>, cost: &CostModel<'_>) -> Row {
    let source = source_of(state);
    let last = |f: &dyn Fn(&AuditEntry) -> bool| state.audit.iter().rev().find(|e| f(e)).cloned();
    let last_run = last(&|e| e.command != AuditCommand::Drift);
    let drift = last(&|e| e.command == AuditCommand::Drift);
    let compliance = last(&|e| e.compliance.is_some());
    // The current resources priced from state: true after any change, the CLI's included.
    let priced: Vec<Option<f64>> = state.resources.iter().map(|(p, r)| cost.price_state(p, r).monthly_usd).collect();
    let total = priced.iter().all(Option::is_some).then(|| priced.iter().flatten().sum());
    Row {
        name: name.to_string(),
        client: client_of(state),
        template: source.as_ref().and_then(|s| s.template.clone()),
        stage: source.as_ref().and_then(|s| s.stage).map(|s| s.as_str().to_string()),
        provider: if state.resources.is_empty() { String::new() } else { provider_of(state) },
        region: state.placement.as_ref().map(|p| p.region.clone()),
        resources: state.resources.len(),
        last_run,
        lock,
        drift,
        cost: total,
        compliance,
        url: url_of(state),
        error: None,
    }
}

/// Read every stack (concurrently, no locks taken) and summarize it.
pub(crate) async fn rows(app: &AppState) -> Result<Vec<Row>, String> {
    let names = app.config.state.stacks().await.map_err(|e| e.to_string())?;
    let reads = futures::stream::iter(names)
        .map(|name| async move {
            let state = app.config.state.load(&name).await;
            let lock = app.config.state.current_lock(&name).await.ok().flatten();
            (name, state, lock)
        })
        .buffered(READ_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let catalogs = app.config.catalog_refs();
    let model = CostModel::new(&catalogs);
    Ok(reads
        .into_iter()
        .map(|(name, state, lock)| match state {
            Ok(s) => summarize(&name, &s, lock, &model),
            Err(e) => Row { error: Some(e.to_string()), lock, ..Row { name, ..Row::default() } },
        })
        .collect())
}

/// Keep the rows matching `q` and order them by `sort`.
pub(crate) fn filter_sort(mut rows: Vec<Row>, q: &str, sort: &str) -> Vec<Row> {
    let q = q.trim().to_lowercase();
    if !q.is_empty() {
        rows.retain(|r| {
            [
                Some(&r.name),
                r.template.as_ref(),
                Some(&r.client),
                r.stage.as_ref(),
                Some(&r.provider),
                r.region.as_ref(),
            ]
            .into_iter()
            .flatten()
            .any(|f| f.to_lowercase().contains(&q))
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    match sort {
        "cost" => rows.sort_by(|a, b| b.cost.unwrap_or(-1.0).total_cmp(&a.cost.unwrap_or(-1.0))),
        "last_run" => rows.sort_by(|a, b| {
            let at = |r: &Row| r.last_run.as_ref().map(|e| e.at.clone()).unwrap_or_default();
            at(b).cmp(&at(a))
        }),
        "resources" => rows.sort_by_key(|r| std::cmp::Reverse(r.resources)),
        _ => {}
    }
    rows
}

/// Rows grouped by client: named clients in order, the stacks without one last.
fn groups(rows: Vec<Row>) -> Vec<(String, Vec<Row>)> {
    let mut by: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for r in rows {
        by.entry(r.client.clone()).or_default().push(r);
    }
    let none = by.remove("");
    let mut out: Vec<(String, Vec<Row>)> = by.into_iter().collect();
    out.push((String::new(), none.unwrap_or_default()));
    out
}

fn result_class(r: AuditResult) -> &'static str {
    match r {
        AuditResult::Succeeded | AuditResult::Clean => "ok",
        AuditResult::Drifted | AuditResult::Interrupted | AuditResult::RolledBack => "warn",
        _ => "bad",
    }
}

/// The compliance verdict of an audit entry.
pub(crate) fn verdict(e: Option<&AuditEntry>) -> Markup {
    match e.and_then(|e| e.compliance.as_ref()) {
        None => html! { span.muted { "not checked" } },
        Some(c) if c.errors > 0 => html! { span.bad { (c.errors) " error(s)" } },
        Some(c) if c.warnings > 0 => html! { span.warn { "pass, " (c.warnings) " warning(s)" } },
        Some(_) => html! { span.ok { "pass" } },
    }
}

fn row_markup(r: &Row) -> Markup {
    html! {
        tr data-stack=(r.name) {
            th scope="row" { a.stack-link href={ "/stacks/" (seg(&r.name)) } { (r.name) } }
            td { (r.template.as_deref().unwrap_or("–")) }
            td { (r.stage.as_deref().unwrap_or("–")) }
            td { (if r.provider.is_empty() { "–" } else { &r.provider }) }
            td { (r.region.as_deref().filter(|s| !s.is_empty()).unwrap_or("–")) }
            td.num { (r.resources) }
            td {
                @if let Some(e) = &r.error {
                    span.bad { "state unreadable: " (e) }
                } @else if let Some(e) = &r.last_run {
                    (e.command) " " span class=(result_class(e.result)) { (e.result) }
                    br; span.muted { (e.at) " by " (e.actor) }
                } @else { span.muted { "never" } }
            }
            td { @if let Some(l) = &r.lock { (l.holder) " (" (l.operation) ")" } @else { span.muted { "free" } } }
            td {
                @match &r.drift {
                    Some(e) => { span class=(result_class(e.result)) { (e.result) } br; span.muted { (e.at) } }
                    None => { span.muted { "not checked" } }
                }
            }
            td.num { (usd_or_dash(r.cost)) }
            td { (verdict(r.compliance.as_ref())) }
            td { @if let Some(u) = &r.url { a href=(u) rel="noreferrer noopener" { (u) } } @else { "–" } }
        }
    }
}

fn table(id: Option<&str>, rows: &[Row]) -> Markup {
    html! {
        table id=[id] class="stacks" {
            thead {
                tr {
                    @for h in ["Stack", "Template", "Stage", "Provider", "Region"] { th scope="col" { (h) } }
                    th.num scope="col" { "Resources" }
                    th scope="col" { "Last run" }
                    th scope="col" { "Lock" }
                    th scope="col" { "Drift" }
                    th.num scope="col" { "Monthly cost" }
                    th scope="col" { "Compliance" }
                    th scope="col" { "URL" }
                }
            }
            tbody {
                @for r in rows { (row_markup(r)) }
                @if rows.is_empty() {
                    tr { td colspan="12" class="muted" { "No stacks yet. " a href="/new" { "Create one from a template." } } }
                }
            }
        }
    }
}

/// The overview's HTML.
pub(crate) fn render(rows: Vec<Row>, q: &str, sort: &str) -> Markup {
    let count = rows.len();
    let groups = groups(rows);
    let grouped = groups.iter().filter(|(_, r)| !r.is_empty()).count() > 1;
    let body = html! {
        h1 { "Stacks" }
        p {
            a #new-stack.button href="/new" { "New stack" } " "
            a #bill-link href="/bill" { "Per-client bill" }
        }
        form.toolbar method="get" action="/" role="search" {
            div { label for="filter" { "Filter" } input #filter type="search" name="q" value=(q); }
            div {
                label for="sort" { "Sort by" }
                select #sort name="sort" {
                    @for (v, l) in [("name", "Name"), ("cost", "Monthly cost"), ("last_run", "Last run"), ("resources", "Resources")] {
                        option value=(v) selected[sort == v || (sort.is_empty() && v == "name")] { (l) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        p.muted { (count) " stack(s)" }
        @for (i, (client, rows)) in groups.iter().enumerate() {
            @if !rows.is_empty() || i + 1 == groups.len() && count == 0 {
                section.client-group data-client=(client) aria-label={ "Client " (client) } {
                    @if grouped || !client.is_empty() {
                        h2 { @if client.is_empty() { "No client" } @else { "Client: " (client) } }
                    }
                    (table((i == first_shown(&groups)).then_some("stacks"), rows))
                }
            }
        }
    };
    document("Stacks", None, body)
}

/// The index of the first group shown (it carries the table id `stacks`).
fn first_shown(groups: &[(String, Vec<Row>)]) -> usize {
    groups.iter().position(|(_, r)| !r.is_empty()).unwrap_or(groups.len().saturating_sub(1))
}

/// `GET /`.
pub(crate) async fn page(
    State(app): State<AppState>,
    Extension(_access): Extension<Access>,
    Query(q): Query<OverviewQuery>,
) -> Response {
    match rows(&app).await {
        Ok(rows) => layout::respond(StatusCode::OK, render(filter_sort(rows, &q.q, &q.sort), &q.q, &q.sort)),
        Err(e) => layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Cannot list the stacks", &e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(name: &str, client: &str, cost: Option<f64>, resources: usize) -> Row {
        Row { name: name.into(), client: client.into(), cost, resources, ..Row::default() }
    }

    fn names(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn rows_filter_on_any_column_and_sort_by_the_chosen_one() {
        let rows = vec![row("b", "acme", Some(5.0), 3), row("a", "", Some(20.0), 1), row("c", "zeta", None, 9)];
        assert_eq!(names(&filter_sort(rows.clone(), "", "")), ["a", "b", "c"]);
        assert_eq!(names(&filter_sort(rows.clone(), "", "cost")), ["a", "b", "c"]);
        assert_eq!(names(&filter_sort(rows.clone(), "", "resources")), ["c", "b", "a"]);
        assert_eq!(names(&filter_sort(rows.clone(), "ACME", "name")), ["b"]);
        assert!(filter_sort(rows, "nothing", "").is_empty());
    }

    #[test]
    fn groups_put_named_clients_first_and_the_rest_last() {
        let g = groups(vec![row("x", "", None, 0), row("y", "zeta", None, 0), row("z", "acme", None, 0)]);
        let order: Vec<&str> = g.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(order, ["acme", "zeta", ""]);
    }

    #[test]
    fn the_url_is_the_url_output_or_the_first_http_one() {
        let mut s = StackState::empty("s");
        assert_eq!(url_of(&s), None);
        s.outputs.insert("a".into(), Value::String("https://a.example".into()));
        s.outputs.insert("ip".into(), Value::String("203.0.113.1".into()));
        assert_eq!(url_of(&s).as_deref(), Some("https://a.example"));
        s.outputs.insert("url".into(), Value::String("http://b.example".into()));
        assert_eq!(url_of(&s).as_deref(), Some("http://b.example"));
    }

    #[test]
    fn the_page_is_deterministic_and_escapes_names() {
        let rows = vec![row("a<b>", "", None, 0)];
        let one = render(rows.clone(), "<q>", "name").into_string();
        assert_eq!(one, render(rows, "<q>", "name").into_string());
        assert!(one.contains("a&lt;b&gt;") && !one.contains("a<b>"));
        assert!(one.contains(r#"<table id="stacks""#));
        let empty = render(Vec::new(), "", "").into_string();
        assert!(empty.contains(r#"<section class="client-group" data-client="""#));
        assert!(empty.contains(r#"<table id="stacks""#));
    }
}
