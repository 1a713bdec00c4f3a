//! The web dashboard: one page for every stack of a state backend, an audit trail, and the
//! actions of the command line (apply a template from a form, destroy, drift check) without a
//! terminal. Server-rendered HTML from this binary; a few lines of inline JavaScript only make
//! the run page live.
//!
//! ```no_run
//! use std::sync::Arc;
//! use konstacks::core::state::LocalBackend;
//! use konstacks::dashboard::{self, DashboardConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = DashboardConfig::builder(Arc::new(LocalBackend::new(".konstacks")), ".konstacks")
//!     .token(std::env::var("KONSTACKS_DASHBOARD_TOKEN")?)
//!     .build()?;
//! // Serve it alone...
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await?;
//! # let _ = &listener;
//! // ...or mount `dashboard::router(config)` in your own axum application.
//! let app: axum::Router = dashboard::router(config);
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! Access: every request carries the token (`Authorization: Bearer <token>`) or the session
//! cookie that `GET /login?token=<token>` hands out; anything else gets 401. Every POST carries
//! the session's CSRF token (requests with the Bearer header are exempt: a browser never sends
//! it on its own) and is refused when its `Origin` is not the dashboard's. `docs/dashboard.md`
//! describes every page.
//!
//! This module reads state without taking locks (the overview, the stack page), and runs the
//! engine exactly as the command line does (apply, destroy, drift), with the actor
//! `dashboard:<label>`. It never renders a secret: everything shown comes from state, plans and
//! reports, which carry redaction markers only, and sealed values are never read.

mod actions;
mod auth;
mod bill;
mod config;
pub(crate) mod form;
pub(crate) mod graph_svg;
mod layout;
mod new_stack;
mod overview;
mod rebuild;
mod runs;
mod stack_page;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use config::{DashboardConfig, DashboardConfigBuilder, DashboardError};

/// What every handler shares.
pub(crate) struct Shared {
    pub(crate) config: DashboardConfig,
    pub(crate) sessions: auth::Sessions,
    pub(crate) runs: runs::Runs,
}

/// The handlers' state.
pub(crate) type AppState = Arc<Shared>;

/// The dashboard as an axum application, for embedders to serve or mount.
///
/// Its routes are absolute (`/`, `/stacks/NAME`, ...): merge it at the root of your router.
/// Runs it starts go on in the background of the runtime; [`serve_until`] also stops them
/// cleanly when the server stops.
pub fn router(config: DashboardConfig) -> Router {
    routes(Arc::new(Shared { config, sessions: auth::Sessions::default(), runs: runs::Runs::default() }))
}

fn routes(shared: AppState) -> Router {
    Router::new()
        .route("/login", get(auth::login))
        .route("/", get(overview::page))
        .route("/stacks/{name}", get(stack_page::page))
        .route("/stacks/{name}/drift", post(actions::drift))
        .route("/stacks/{name}/destroy", post(actions::destroy))
        .route("/new", get(new_stack::templates))
        .route("/new/{template}", get(new_stack::form_page))
        .route("/new/{template}/plan", post(new_stack::plan))
        .route("/runs", post(runs::start_apply))
        .route("/runs/{id}", get(runs::page))
        .route("/runs/{id}/events", get(runs::events))
        .route("/bill", get(bill::page))
        .route("/bill.csv", get(bill::csv))
        .fallback(layout::not_found)
        // Outermost last: the headers go on every answer, 401s included.
        .layer(axum::middleware::from_fn_with_state(shared.clone(), auth::require))
        .layer(axum::middleware::from_fn(auth::headers))
        .with_state(shared)
}

/// Serve the dashboard on `listener` until the server fails (see [`serve_until`]).
pub async fn serve(listener: tokio::net::TcpListener, config: DashboardConfig) -> Result<(), DashboardError> {
    serve_until(listener, config, std::future::pending()).await
}

/// Serve the dashboard on `listener` until `shutdown` resolves; then stop the runs still going
/// (they start nothing new, let the operations in flight finish, release their locks) and
/// return once they have ended.
///
/// Refuses a listener on a non-loopback address when the token was generated (see
/// [`DashboardConfig::token_generated`]): a token set by the operator is required to expose
/// the dashboard beyond this machine.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    config: DashboardConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DashboardError> {
    let addr =
        listener.local_addr().map_err(|source| DashboardError::Io { what: "read the listening address", source })?;
    check_bind(addr, !config.token_generated())?;
    let shared = Arc::new(Shared { config, sessions: auth::Sessions::default(), runs: runs::Runs::default() });
    tokio::select! {
        r = axum::serve(listener, routes(shared.clone())) => {
            r.map_err(|source| DashboardError::Io { what: "serve the dashboard", source })?;
        }
        () = shutdown => {}
    }
    shared.runs.stop_all().await;
    Ok(())
}

/// Refuse to listen on `addr` when it is not a loopback address and no token was given by the
/// operator (`token_given` false: the token was generated and printed).
pub fn check_bind(addr: SocketAddr, token_given: bool) -> Result<(), DashboardError> {
    if addr.ip().is_loopback() || token_given {
        Ok(())
    } else {
        Err(DashboardError::NonLoopback { addr })
    }
}
