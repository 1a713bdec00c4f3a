//! `GET /stacks/NAME`: one stack's resources, graph, outputs, compliance findings with evidence,
//! cost breakdown, releases and audit trail, and the drift and destroy forms. State is read
//! without taking its lock; sealed values are never read.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use konstacks_core::cost::{CostModel, CostReport, ResourceCost};
use konstacks_core::policy::PolicyReport;
use konstacks_core::state::{LockInfo, StackState};
use maud::{html, Markup};
use serde_json::Value;

use super::auth::Access;
use super::graph_svg::{self, GraphNode};
use super::layout::{self, csrf_input, document, seconds, seg, usd, usd_or_dash};
use super::overview::{client_of, verdict};
use super::rebuild::{provider_of, rebuild, source_of};
use super::{AppState, Shared};

/// A message at the top of the page (`error` styles it as one).
#[derive(Debug, Clone, Default)]
pub(crate) struct Notice {
    pub(crate) error: bool,
    pub(crate) text: String,
}

/// What the page shows on top of the stack itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extras {
    pub(crate) notice: Option<Notice>,
    /// Why the typed name did not confirm a destroy.
    pub(crate) confirm_error: Option<String>,
}

/// The query of the stack page (set by the drift check's redirect).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct StackQuery {
    /// `clean`, or the number of drifted resources.
    #[serde(default)]
    drift: Option<String>,
}

/// Load a stack that exists: `None` for a name that is invalid or has no state.
pub(crate) async fn load(app: &Shared, name: &str) -> Result<Option<(StackState, Option<LockInfo>)>, String> {
    if konstacks_core::state::check_stack_name(name).is_err() {
        return Ok(None);
    }
    let known = app.config.state.stacks().await.map_err(|e| e.to_string())?;
    if !known.iter().any(|n| n == name) {
        return Ok(None);
    }
    let state = app.config.state.load(name).await.map_err(|e| e.to_string())?;
    let lock = app.config.state.current_lock(name).await.map_err(|e| e.to_string())?;
    Ok(Some((state, lock)))
}

/// `GET /stacks/NAME`.
pub(crate) async fn page(
    State(app): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    Query(q): Query<StackQuery>,
) -> Response {
    let notice = q.drift.map(|d| Notice {
        error: false,
        text: if d == "clean" {
            "Drift check: the cloud matches state.".into()
        } else {
            format!("Drift check: {} resource(s) changed outside Konstacks.", d.parse::<usize>().unwrap_or(0))
        },
    });
    respond(&app, &name, &access.csrf, Extras { notice, confirm_error: None }, StatusCode::OK).await
}

/// The stack page with `extras`, or 404 when there is no such stack.
pub(crate) async fn respond(app: &Shared, name: &str, csrf: &str, extras: Extras, status: StatusCode) -> Response {
    match load(app, name).await {
        Ok(Some((state, lock))) => layout::respond(status, render(app, name, &state, lock.as_ref(), csrf, &extras)),
        Ok(None) => {
            layout::error_page(StatusCode::NOT_FOUND, "No such stack", &format!("There is no stack named {name}."))
        }
        Err(e) => layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Cannot read the stack", &e),
    }
}

fn render(
    app: &Shared,
    name: &str,
    state: &StackState,
    lock: Option<&LockInfo>,
    csrf: &str,
    extras: &Extras,
) -> Markup {
    let source = source_of(state);
    let rebuilt = rebuild(app, name, state);
    let catalogs = app.config.catalog_refs();
    let model = CostModel::new(&catalogs);
    let report: Option<CostReport> = rebuilt.as_ref().ok().map(|r| model.report(&r.synth));
    // Priced as rebuilt from the template when possible, else as stored in state.
    let costs: Vec<ResourceCost> = state
        .resources
        .iter()
        .map(|(p, r)| {
            report.as_ref().and_then(|rep| rep.resource(p)).cloned().unwrap_or_else(|| model.price_state(p, r))
        })
        .collect();
    let policy: Option<PolicyReport> = rebuilt.as_ref().ok().map(|r| r.policy.check(&r.synth, &catalogs));
    let nodes: Vec<GraphNode> = state
        .resources
        .iter()
        .map(|(p, r)| GraphNode { path: p.clone(), kind: r.kind.to_string(), deps: r.deps.clone() })
        .collect();
    let client = client_of(state);
    let body = html! {
        h1 { (name) }
        p.muted {
            "Template " strong { (source.as_ref().and_then(|s| s.template.as_deref()).unwrap_or("–")) }
            ", stage " strong { (source.as_ref().and_then(|s| s.stage).map_or("–", |s| s.as_str())) }
            ", provider " strong { (provider_of(state)) }
            ", region " strong { (state.placement.as_ref().map_or("–", |p| p.region.as_str())) }
            @if !client.is_empty() { ", client " strong { (client) } }
            ". Lock: "
            @if let Some(l) = lock { strong { (l.holder) } " (" (l.operation) " since " (l.since) ")" } @else { "free" } "."
        }
        @if let Some(n) = &extras.notice {
            p class=(if n.error { "notice error" } else { "notice" }) role=(if n.error { "alert" } else { "status" }) { (n.text) }
        }
        h2 { "Resources" }
        table #resources {
            thead { tr {
                th scope="col" { "Path" } th scope="col" { "Kind" } th scope="col" { "Provider" }
                th scope="col" { "Provider id" } th scope="col" { "Status" } th.num scope="col" { "Monthly cost" }
            } }
            tbody {
                @for ((path, r), c) in state.resources.iter().zip(&costs) {
                    tr data-path=(path) {
                        th scope="row" { code { (path) } }
                        td { (r.kind) }
                        td { (r.provider) }
                        td { code { (r.id) } }
                        td { (status_of(state, path)) }
                        td.num { (usd_or_dash(c.monthly_usd)) }
                    }
                }
                @if state.resources.is_empty() { tr { td colspan="6" .muted { "No resources in state." } } }
            }
        }
        @if !state.deposed.is_empty() || !state.pending.is_empty() {
            p.notice {
                (state.deposed.len()) " old instance(s) wait for deletion; "
                (state.pending.len()) " interrupted operation(s) will be recovered by the next apply or destroy."
            }
        }
        h2 { "Dependency graph" }
        figure #graph { (graph_svg::render(&nodes)) figcaption.muted { "Arrows point from a resource to what depends on it." } }
        section #outputs aria-labelledby="outputs-h" {
            h2 #outputs-h { "Outputs" }
            @if state.outputs.is_empty() { p.muted { "No outputs." } } @else {
                table { tbody { @for (k, v) in &state.outputs {
                    tr { th scope="row" { (k) } td { code { (render_value(v)) } } }
                } } }
            }
        }
        section #findings aria-labelledby="findings-h" { h2 #findings-h { "Compliance" } (findings(policy.as_ref(), &rebuilt)) }
        section #cost aria-labelledby="cost-h" { h2 #cost-h { "Cost" } (cost_breakdown(&costs, report.as_ref())) }
        section #releases aria-labelledby="releases-h" { h2 #releases-h { "Releases" } (releases(state)) (rollback(state, csrf)) }
        section #audit aria-labelledby="audit-h" { h2 #audit-h { "Audit trail" } (audit(state)) }
        h2 { "Actions" }
        form #drift-form method="post" action={ "/stacks/" (seg(name)) "/drift" } {
            (csrf_input(csrf))
            p.hint { "Read every resource from the cloud and compare it with state; nothing is changed." }
            button #drift-submit type="submit" { "Check drift" }
        }
        form #destroy-form method="post" action={ "/stacks/" (seg(name)) "/destroy" } {
            (csrf_input(csrf))
            label for="confirm-name" { "Type the stack name to confirm" }
            p.hint #confirm-name-hint { "Destroy deletes every resource of " strong { (name) } " in the cloud." }
            @if let Some(e) = &extras.confirm_error {
                input #confirm-name type="text" name="confirm_name" autocomplete="off" required
                    aria-invalid="true" aria-describedby="confirm-name-hint confirm-name-error" autofocus;
                p.field-error #confirm-name-error data-field="confirm_name" role="alert" { (e) }
            } @else {
                input #confirm-name type="text" name="confirm_name" autocomplete="off" required aria-describedby="confirm-name-hint";
            }
            " "
            button.danger #destroy-submit type="submit" { "Destroy" }
        }
    };
    document(name, None, body)
}

fn status_of(state: &StackState, path: &str) -> &'static str {
    if state.pending.iter().any(|p| p.path == path) {
        "interrupted operation pending"
    } else if state.deposed.iter().any(|d| d.path == path) {
        "replaced, old instance pending deletion"
    } else {
        "applied"
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn findings(report: Option<&PolicyReport>, rebuilt: &Result<super::rebuild::Rebuilt, String>) -> Markup {
    let Some(report) = report else {
        let why = rebuilt.as_ref().err().map_or("", String::as_str);
        return html! { p.muted { "Not checked: " (why) "." } };
    };
    let packs: Vec<&str> = report.packs.iter().map(|p| p.name.as_str()).collect();
    html! {
        p { "Packs " strong { (packs.join(", ")) } ": "
            @if report.counts.errors > 0 { span.bad { (report.counts.errors) " error(s)" } }
            @else if report.counts.warnings > 0 { span.warn { "pass with " (report.counts.warnings) " warning(s)" } }
            @else { span.ok { "pass" } }
        }
        @if !report.findings.is_empty() {
            table { thead { tr { th scope="col" { "Severity" } th scope="col" { "Rule" } th scope="col" { "Resource" } th scope="col" { "Finding" } th scope="col" { "Fix" } } }
                tbody { @for f in &report.findings { tr {
                    td class=(if f.severity.as_str() == "error" { "bad" } else { "warn" }) { (f.severity) }
                    td { code { (f.rule_id) } } td { code { (f.path) } } td { (f.message) } td { (f.fix) }
                } } }
            }
        }
        details {
            summary { "Evidence: every rule and the resources it checked" }
            table { thead { tr { th scope="col" { "Rule" } th scope="col" { "Requires" } th scope="col" { "Result" } th scope="col" { "Resources checked" } } }
                tbody { @for r in &report.rules { tr {
                    td { code { (r.rule_id) } } td { (r.title) } td { (r.status.as_str()) }
                    td { @for c in &r.resources { code { (c.path) } " " (status_word(c)) @if let Some(d) = &c.detail { ": " (d) } br; } }
                } } }
            }
        }
    }
}

fn status_word(c: &konstacks_core::policy::CheckedResource) -> String {
    serde_json::to_value(c.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn cost_breakdown(costs: &[ResourceCost], report: Option<&CostReport>) -> Markup {
    let total: f64 = costs.iter().map(ResourceCost::known_usd).sum();
    let unpriced = costs.iter().filter(|c| !c.is_priced()).count();
    html! {
        p { "Estimated monthly total: " strong { (usd(total)) }
            @if unpriced > 0 { " (" (unpriced) " resource(s) not priced)" }
            @if let Some(r) = report { @for (p, d) in &r.priced_on { span.muted { "; " (p) " prices of " (d) } } }
        }
        table { thead { tr { th scope="col" { "Resource" } th scope="col" { "Item" } th scope="col" { "How" } th.num scope="col" { "Monthly" } } }
            tbody { @for c in costs.iter().filter(|c| c.lines.iter().any(|l| l.monthly_usd != Some(0.0))) {
                @for l in &c.lines { tr {
                    th scope="row" { code { (c.path) } } td { (l.item) } td { (l.detail) } td.num { (usd_or_dash(l.monthly_usd)) }
                } }
            } }
        }
    }
}

fn releases(state: &StackState) -> Markup {
    if state.releases.is_empty() {
        return html! { p.muted { "No releases yet." } };
    }
    html! {
        table { thead { tr { th scope="col" { "When" } th scope="col" { "By" } th scope="col" { "Front" } th scope="col" { "Version" } th scope="col" { "Result" } th.num scope="col" { "Duration" } } }
            tbody { @for r in state.releases.iter().rev() { tr {
                td { (r.at) } td { (r.by) } td { code { (r.front) } " " (r.group) }
                td { (r.from_version.as_deref().unwrap_or("–")) " → " (r.to_version.as_deref().unwrap_or("–")) }
                td { (serde_json::to_value(r.result).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                td.num { (seconds(r.duration_ms)) }
            } } }
        }
    }
}

/// A form that plans a rollback: the parameters recorded with the version the serving release
/// replaced, through the same plan page as a new stack (nothing is applied before the plan is
/// confirmed there). Nothing when no release has such a version.
fn rollback(state: &StackState, csrf: &str) -> Markup {
    let serving = state.releases.iter().rev().find(|r| r.result == konstacks_core::state::ReleaseResult::Succeeded);
    let Some((version, source)) = serving.and_then(|r| Some((r.from_version.as_deref()?, r.from_source.as_ref()?)))
    else {
        return html! {};
    };
    let Some(template) = source.get("template").and_then(Value::as_str) else { return html! {} };
    let stage = source.get("stage").and_then(Value::as_str).unwrap_or("dev");
    let params = source.get("params").cloned().unwrap_or_else(|| Value::Object(Default::default()));
    html! {
        form #rollback-form method="post" action=(format!("/new/{}/plan", seg(template))) {
            (csrf_input(csrf))
            input type="hidden" name="stack_name" value=(state.stack);
            input type="hidden" name="stage" value=(stage);
            input type="hidden" name="provider" value=(provider_of(state));
            input type="hidden" name="params" value=(params.to_string());
            button #rollback-submit type="submit" { "Plan a rollback to version " (version) }
        }
    }
}

fn audit(state: &StackState) -> Markup {
    if state.audit.is_empty() {
        return html! { p.muted { "Nothing recorded yet." } };
    }
    html! {
        table { thead { tr {
            th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Command" } th scope="col" { "Result" }
            th.num scope="col" { "Duration" } th scope="col" { "Monthly cost" } th scope="col" { "Compliance" } th scope="col" { "Summary" }
        } }
            tbody { @for e in state.audit.iter().rev() {
                tr.audit-entry data-command=(e.command) {
                    td { (e.at) } td { (e.actor) } td { (e.command) } td { (e.result) }
                    td.num { (seconds(e.duration_ms)) }
                    td { @if e.cost_before_usd.is_some() || e.cost_after_usd.is_some() {
                        (usd_or_dash(e.cost_before_usd)) " → " (usd_or_dash(e.cost_after_usd))
                    } @else { "–" } }
                    td { @if e.compliance.is_some() { (verdict(Some(e))) } @else { "–" } }
                    td { (e.summary) @if let Some(m) = &e.message { br; span.bad { (m) } } }
                }
            } }
        }
    }
}
