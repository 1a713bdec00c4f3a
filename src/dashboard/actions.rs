//! The actions on an existing stack: destroy (only with its exact name typed; then a run) and
//! the drift check (read only; back to the stack page, recorded in the audit trail).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use konstacks_core::engine::{guard, ApplyOptions};

use super::auth::Access;
use super::layout::{self, seg};
use super::rebuild::engine;
use super::runs::{redirect_to, spawn, start, RunCommand};
use super::stack_page::{self, Extras, Notice};
use super::AppState;

/// The fields of the destroy form.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct DestroyForm {
    #[serde(default)]
    confirm_name: String,
}

/// `POST /stacks/NAME/destroy`: only with the stack's exact name typed; then a run.
pub(crate) async fn destroy(
    State(app): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    Form(form): Form<DestroyForm>,
) -> Response {
    let again = |status, extras| stack_page::respond(&app, &name, &access.csrf, extras, status);
    match stack_page::load(&app, &name).await {
        Ok(Some(_)) => {}
        Ok(None) => return again(StatusCode::NOT_FOUND, Extras::default()).await,
        Err(e) => return layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Cannot read the stack", &e),
    }
    if form.confirm_name != name {
        let msg = format!("The name typed does not match `{name}`: nothing was destroyed.");
        return again(StatusCode::UNPROCESSABLE_ENTITY, Extras { notice: None, confirm_error: Some(msg) }).await;
    }
    let refuse = |text: String| Extras { notice: Some(Notice { error: true, text }), confirm_error: None };
    if let Ok(Some(l)) = app.config.state.current_lock(&name).await {
        let text = format!(
            "Stack {name} is locked by {} ({} since {}); try again when it is done.",
            l.holder, l.operation, l.since
        );
        return again(StatusCode::CONFLICT, refuse(text)).await;
    }
    let eng = engine(&app, None);
    let plan = match eng.plan_destroy(&name).await {
        Ok(p) => p,
        Err(e) => return again(StatusCode::INTERNAL_SERVER_ERROR, refuse(e.to_string())).await,
    };
    if plan.is_empty() && plan.recovered.is_empty() {
        return again(StatusCode::OK, refuse(format!("Nothing to destroy: stack {name} has no resources in state.")))
            .await;
    }
    let mut opts = ApplyOptions::default();
    let hazards = guard::hazards(&plan, None, &opts, false);
    if !hazards.is_empty() {
        let list: Vec<String> = hazards.iter().map(ToString::to_string).collect();
        let text = format!(
            "Destroy refused before anything was deleted ({}). The dashboard never overrides these; use the command line with the option named.",
            list.join("; ")
        );
        return again(StatusCode::CONFLICT, refuse(text)).await;
    }
    opts.expected = Some(plan);
    let run = start(&app, &name, RunCommand::Destroy);
    let stack = name.clone();
    spawn(run.clone(), eng, move |e| async move { e.destroy(&stack, &opts).await });
    redirect_to(&run)
}

/// `POST /stacks/NAME/drift`: compare the cloud with state, then back to the stack page (the
/// audit trail records the check).
pub(crate) async fn drift(
    State(app): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
) -> Response {
    match stack_page::load(&app, &name).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return stack_page::respond(&app, &name, &access.csrf, Extras::default(), StatusCode::NOT_FOUND).await
        }
        Err(e) => return layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Cannot read the stack", &e),
    }
    match engine(&app, None).drift(&name).await {
        Ok(report) => {
            let d = if report.is_clean() { "clean".to_string() } else { report.items.len().to_string() };
            Redirect::to(&format!("/stacks/{}?drift={d}", seg(&name))).into_response()
        }
        Err(e) => {
            let extras = Extras {
                notice: Some(Notice { error: true, text: format!("Drift check failed: {e}") }),
                confirm_error: None,
            };
            stack_page::respond(&app, &name, &access.csrf, extras, StatusCode::BAD_GATEWAY).await
        }
    }
}
