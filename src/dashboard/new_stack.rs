//! A new stack without a terminal: choose a template (`GET /new`), fill the form generated from
//! its parameters' JSON Schema (`GET /new/TEMPLATE`), see the plan with its cost and compliance
//! verdict (`POST /new/TEMPLATE/plan`), confirm (`POST /runs`, an apply in the background).

use std::hash::{Hash, Hasher};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use konstacks_core::engine::{guard, ApplyOptions, Engine, Hazard, PlanOptions};
use konstacks_core::error::Error;
use konstacks_core::model::{Jurisdiction, Placement, Stage, SIMULATED};
use konstacks_core::plan::{Action, Plan};
use konstacks_core::validate::Synthesized;
use konstacks_templates::{Template, TemplateContext, TemplateError};
use maud::{html, Markup};
use serde_json::{json, Value};

use super::auth::Access;
use super::form::{self, FieldError};
use super::layout::{self, csrf_input, document, seg, usd};
use super::rebuild::{engine, placement_of, template};
use super::runs::{self, RunCommand};
use super::{AppState, Shared};

/// `GET /new`: the templates.
pub(crate) async fn templates(State(app): State<AppState>) -> Response {
    let body = html! {
        h1 { "New stack" }
        p { "Choose a template. Its parameters come next, then the plan, then the apply." }
        ul {
            @for t in &app.config.templates {
                li {
                    a.template-link data-template=(t.name()) href={ "/new/" (seg(t.name())) } { (t.name()) }
                    " — " (t.description())
                }
            }
        }
    };
    layout::respond(StatusCode::OK, document("New stack", None, body))
}

/// What the form asked for.
#[derive(Debug, Clone)]
struct Wanted {
    stack_name: String,
    stage: Stage,
    provider: String,
    params: Value,
}

/// Every problem found in a submitted form.
#[derive(Debug, Default)]
struct Problems {
    /// Problems of the parameters, by path (`params.x`).
    params: Vec<FieldError>,
    /// Problems of the other fields (`stack_name`, `stage`, `provider`), by field name.
    own: Vec<FieldError>,
    /// Problems of the whole stack (synthesis, planning).
    general: Vec<String>,
}

impl Problems {
    fn is_empty(&self) -> bool {
        self.params.is_empty() && self.own.is_empty() && self.general.is_empty()
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn providers(app: &Shared) -> Vec<String> {
    let mut v = vec![SIMULATED.to_string()];
    v.extend(app.config.providers.iter().map(|p| p.name.clone()).filter(|n| n != SIMULATED));
    v
}

/// The form's own fields: stack name (default `<template>-<stage>`), stage, provider.
fn own_fields(
    app: &Shared,
    t: &dyn Template,
    fields: &[(String, String)],
    problems: &mut Problems,
) -> (String, Stage, String) {
    let stage = match field(fields, "stage").unwrap_or("dev").parse::<Stage>() {
        Ok(s) => s,
        Err(e) => {
            problems.own.push(FieldError { path: "stage".into(), message: e });
            Stage::Dev
        }
    };
    let typed = field(fields, "stack_name").unwrap_or("").trim();
    let name = if typed.is_empty() { format!("{}-{}", t.name(), stage.as_str()) } else { typed.to_string() };
    if let Err(e) = konstacks_core::state::check_stack_name(&name) {
        problems.own.push(FieldError { path: "stack_name".into(), message: e.to_string() });
    }
    let provider = field(fields, "provider").unwrap_or(SIMULATED).to_string();
    if !providers(app).contains(&provider) {
        problems.own.push(FieldError { path: "provider".into(), message: format!("unknown provider `{provider}`") });
    }
    (name, stage, provider)
}

/// A template's refusal as field errors where it names a parameter.
fn template_problems(e: TemplateError, problems: &mut Problems) {
    match e {
        TemplateError::InvalidParams { problems: list, .. } => {
            problems.params.extend(list.into_iter().map(|p| FieldError { path: p.path, message: p.message }));
        }
        TemplateError::Params { reason, .. } => {
            // serde's reason names the parameter first: "`clients[2].size`: unknown variant ...".
            let named = reason.strip_prefix('`').and_then(|r| r.split_once("`: "));
            match named {
                Some((path, msg)) => {
                    problems.params.push(FieldError { path: format!("params.{path}"), message: msg.to_string() })
                }
                None => problems.general.push(reason),
            }
        }
        other => problems.general.push(other.to_string()),
    }
}

/// Everything a plan page and an apply need.
struct Planned {
    wanted: Wanted,
    synth: Synthesized,
    engine: Engine,
    plan: Plan,
    hazards: Vec<Hazard>,
    /// A note when the plan changes a stack that exists already.
    existing: Option<String>,
}

/// Check the form, build the stack, synthesize and plan it.
async fn prepare(app: &Shared, t: &dyn Template, fields: &[(String, String)]) -> Result<Planned, (Problems, Value)> {
    let schema = t.params_schema();
    let mut problems = Problems::default();
    let (stack_name, stage, provider) = own_fields(app, t, fields, &mut problems);
    let params = match field(fields, "params") {
        // The apply form carries the parameters as the JSON the plan was made from.
        Some(json) => serde_json::from_str(json).unwrap_or_else(|e| {
            problems.general.push(format!("the parameters are not valid JSON: {e}"));
            Value::Null
        }),
        None => form::parse_fields(&schema, fields).unwrap_or_else(|errors| {
            problems.params.extend(errors);
            Value::Null
        }),
    };
    let shown = if params.is_null() { form::submitted_values(&schema, fields) } else { params.clone() };
    if !problems.is_empty() {
        return Err((problems, shown));
    }
    // An existing stack keeps its region; a new one goes anywhere in the EU (the CLI's default).
    let existing = app.config.state.load(&stack_name).await.ok();
    let placement = existing.as_ref().and_then(placement_of).unwrap_or_else(|| Placement::within(Jurisdiction::Eu));
    let cx = TemplateContext::new(stack_name.clone(), stage).placement(placement).provider(provider.clone());
    let stack = match t.build_json(&cx, params.clone()) {
        Ok(s) => s,
        Err(e) => {
            template_problems(e, &mut problems);
            return Err((problems, shown));
        }
    };
    let engine = engine(app, Some(konstacks_templates::default_policy(t)));
    let synth = match engine.synth(&stack) {
        Ok(s) => s,
        Err(Error::Invalid(d)) => {
            problems.general.extend(d.0.iter().map(ToString::to_string));
            return Err((problems, shown));
        }
        Err(e) => {
            problems.general.push(e.to_string());
            return Err((problems, shown));
        }
    };
    let plan = match engine.plan(&synth, &PlanOptions::default()).await {
        Ok(p) => p,
        Err(e) => {
            problems.general.push(e.to_string());
            return Err((problems, shown));
        }
    };
    let hazards = guard::hazards(&plan, None, &ApplyOptions::default(), true);
    let existing = existing.filter(|s| !s.resources.is_empty()).map(|s| {
        let template = super::rebuild::source_of(&s).and_then(|src| src.template).unwrap_or_else(|| "unknown".into());
        format!(
            "Stack {stack_name} exists already ({} resources, template {template}): this plan changes it.",
            s.resources.len()
        )
    });
    Ok(Planned { wanted: Wanted { stack_name, stage, provider, params }, synth, engine, plan, hazards, existing })
}

/// A digest of the plan, so the apply runs only the plan that was shown.
fn digest(plan: &Plan) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(plan).unwrap_or_default().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn own_error(problems: &Problems, name: &str, id: &str) -> Markup {
    html! {
        @for e in problems.own.iter().filter(|e| e.path == name) {
            p.field-error data-field=(name) id={ (id) "-error" } role="alert" { (e.message) }
        }
    }
}

/// The parameters form, with the problems of a refused submission.
fn form_markup(
    app: &Shared,
    t: &dyn Template,
    values: &Value,
    fields: &[(String, String)],
    problems: &Problems,
    csrf: &str,
) -> Markup {
    let stage = field(fields, "stage").unwrap_or("dev");
    let provider = field(fields, "provider").unwrap_or(SIMULATED);
    let has = |n: &str| problems.own.iter().any(|e| e.path == n);
    let body = html! {
        h1 { "New stack from " (t.name()) }
        p.muted { (t.description()) }
        @if !problems.is_empty() {
            div #form-errors .notice.error role="alert" tabindex="-1" {
                p { strong { "The stack cannot be planned:" } }
                ul {
                    @for e in problems.own.iter().chain(&problems.params) { li { code { (e.path) } ": " (e.message) } }
                    @for g in &problems.general { li { (g) } }
                }
            }
        }
        form #params-form method="post" action={ "/new/" (seg(t.name())) "/plan" } {
            (csrf_input(csrf))
            label for="stack-name" { "Stack name" }
            p.hint #stack-name-hint { "Letters, digits and dashes; leave empty for " code { (t.name()) "-<stage>" } "." }
            input #stack-name type="text" name="stack_name" value=(field(fields, "stack_name").unwrap_or(""))
                aria-describedby="stack-name-hint" aria-invalid=[has("stack_name").then_some("true")];
            (own_error(problems, "stack_name", "stack-name"))
            label for="stage" { "Stage" }
            select #stage name="stage" aria-invalid=[has("stage").then_some("true")] {
                @for s in ["dev", "staging", "prod"] { option value=(s) selected[s == stage] { (s) } }
            }
            (own_error(problems, "stage", "stage"))
            @let offered = providers(app);
            @if offered.len() > 1 {
                label for="provider" { "Provider" }
                select #provider name="provider" {
                    @for p in &offered { option value=(p) selected[p == provider] { (p) } }
                }
                (own_error(problems, "provider", "provider"))
            }
            (form::render_fields(&t.params_schema(), values, &problems.params))
            p { button #plan-submit type="submit" { "Plan" } }
        }
    };
    document(&format!("New {}", t.name()), None, body)
}

/// `GET /new/TEMPLATE`: the form, prefilled with the template's defaults.
pub(crate) async fn form_page(
    State(app): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
) -> Response {
    let Some(t) = template(&app, &name) else {
        return layout::error_page(
            StatusCode::NOT_FOUND,
            "No such template",
            &format!("There is no template named {name}."),
        );
    };
    layout::respond(StatusCode::OK, form_markup(&app, t, &t.default_params(), &[], &Problems::default(), &access.csrf))
}

fn plan_table(plan: &Plan) -> Markup {
    let word = |a: Action| match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
        _ => "no change",
    };
    let s = &plan.summary;
    html! {
        p { (s.create) " to create, " (s.update) " to update, " (s.replace) " to replace, " (s.delete) " to delete." }
        @if plan.changes.iter().any(|c| c.action != Action::NoOp) {
            table { thead { tr { th scope="col" { "Action" } th scope="col" { "Resource" } th scope="col" { "Kind" } th scope="col" { "Details" } } }
                tbody { @for c in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
                    tr data-path=(c.path) data-action=(word(c.action)) {
                        td { code { (c.action.symbol()) } " " (word(c.action)) }
                        th scope="row" { code { (c.path) } }
                        td { (c.kind) }
                        td {
                            @if !c.replace_reasons.is_empty() { "replaced because " (c.replace_reasons.join("; ")) br; }
                            @if c.action == Action::Update {
                                @let names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
                                "changes " (names.join(", "))
                            }
                            @if c.data_loss { span.bad { " loses its data" } }
                        }
                    }
                } }
            }
        } @else { p.muted { "No changes: the cloud already matches." } }
    }
}

fn plan_page(t: &dyn Template, p: &Planned, csrf: &str, notice: Option<&str>) -> Markup {
    let w = &p.wanted;
    let policy = p.plan.policy.as_ref();
    let blocked = !p.hazards.is_empty() || policy.is_some_and(|c| c.errors > 0);
    let body = html! {
        h1 { "Plan for stack " (w.stack_name) }
        @if let Some(n) = notice { p.notice.error role="alert" { (n) } }
        @if let Some(n) = &p.existing { p.notice role="status" { (n) } }
        p.muted { "Template " strong { (t.name()) } ", stage " strong { (w.stage.as_str()) } ", provider " strong { (w.provider) }
            ", region " strong { (p.synth.region) } "." }
        section #plan aria-labelledby="plan-h" { h2 #plan-h { "Changes" } (plan_table(&p.plan)) }
        section #plan-cost aria-labelledby="plan-cost-h" {
            h2 #plan-cost-h { "Monthly cost" }
            @match &p.plan.cost {
                Some(c) => {
                    p { (usd(c.before_usd)) " → " strong { (usd(c.after_usd)) } " (" (if c.delta_usd >= 0.0 { "+" } else { "−" }) (usd(c.delta_usd.abs())) ")"
                        @if !c.unpriced.is_empty() { " — not priced: " (c.unpriced.join(", ")) } }
                }
                None => { p { "Not priced." } }
            }
        }
        section #plan-compliance aria-labelledby="plan-compliance-h" {
            h2 #plan-compliance-h { "Compliance" }
            @match policy {
                Some(c) => {
                    p { "Packs " strong { (c.packs.join(", ")) } ": "
                        @if c.errors > 0 { span.bad { "refused, " (c.errors) " error(s)" } }
                        @else if c.warnings > 0 { span.warn { "pass with " (c.warnings) " warning(s)" } }
                        @else { span.ok { "pass" } } }
                    @if !c.findings.is_empty() { ul { @for f in &c.findings { li { (f.severity) " " code { (f.rule_id) } " " code { (f.path) } ": " (f.message) } } } }
                }
                None => { p { "No compliance pack checked." } }
            }
        }
        @if !p.hazards.is_empty() {
            div.notice.error role="alert" #plan-hazards {
                p { strong { "This apply is refused before any cloud call:" } }
                ul { @for h in &p.hazards { li { (h) } } }
                p { "The dashboard never overrides these; use the command line with the option named." }
            }
        }
        @if blocked {
            p { a href={ "/new/" (seg(t.name())) } { "Back to the form" } }
        } @else {
            form #apply-form method="post" action="/runs" {
                (csrf_input(csrf))
                input type="hidden" name="template" value=(t.name());
                input type="hidden" name="stack_name" value=(w.stack_name);
                input type="hidden" name="stage" value=(w.stage.as_str());
                input type="hidden" name="provider" value=(w.provider);
                input type="hidden" name="params" value=(w.params.to_string());
                input type="hidden" name="plan_digest" value=(digest(&p.plan));
                p { button #apply-submit type="submit" { "Apply to " (w.stack_name) } }
            }
        }
    };
    document(&format!("Plan {}", w.stack_name), None, body)
}

/// `POST /new/TEMPLATE/plan`: the plan page, or the form again (422) with every problem.
pub(crate) async fn plan(
    State(app): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let Some(t) = template(&app, &name) else {
        return layout::error_page(
            StatusCode::NOT_FOUND,
            "No such template",
            &format!("There is no template named {name}."),
        );
    };
    match prepare(&app, t, &fields).await {
        Ok(p) => layout::respond(StatusCode::OK, plan_page(t, &p, &access.csrf, None)),
        Err((problems, values)) => layout::respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            form_markup(&app, t, &values, &fields, &problems, &access.csrf),
        ),
    }
}

/// `POST /runs`: plan again; when it is the plan that was shown, start the apply and go to its
/// page.
pub(crate) async fn apply(app: &Shared, access: &Access, fields: &[(String, String)]) -> Response {
    let name = field(fields, "template").unwrap_or_default();
    let Some(t) = template(app, name) else {
        return layout::error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "No such template",
            &format!("There is no template named {name}."),
        );
    };
    let p = match prepare(app, t, fields).await {
        Ok(p) => p,
        Err((problems, values)) => {
            return layout::respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                form_markup(app, t, &values, fields, &problems, &access.csrf),
            )
        }
    };
    if field(fields, "plan_digest") != Some(digest(&p.plan).as_str()) {
        let note = "The plan changed since it was shown (another run changed the stack): review the new plan.";
        return layout::respond(StatusCode::CONFLICT, plan_page(t, &p, &access.csrf, Some(note)));
    }
    if !p.hazards.is_empty() || p.plan.policy.as_ref().is_some_and(|c| c.errors > 0) {
        return layout::respond(StatusCode::CONFLICT, plan_page(t, &p, &access.csrf, None));
    }
    if let Ok(Some(l)) = app.config.state.current_lock(&p.wanted.stack_name).await {
        let msg = format!(
            "Stack {} is locked by {} ({} since {}); try again when it is done.",
            p.wanted.stack_name, l.holder, l.operation, l.since
        );
        return layout::error_page(StatusCode::CONFLICT, "Stack locked", &msg);
    }
    let Planned { wanted, synth, engine, plan, .. } = p;
    let opts = ApplyOptions {
        expected: Some(plan),
        source: Some(json!({ "template": t.name(), "params": wanted.params, "stage": wanted.stage.as_str() })),
        ..Default::default()
    };
    let run = runs::start(app, &wanted.stack_name, RunCommand::Apply);
    runs::spawn(run.clone(), engine, move |e| async move { e.apply(&synth, &opts).await });
    runs::redirect_to(&run)
}
