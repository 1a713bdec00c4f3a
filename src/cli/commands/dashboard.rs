//! `dashboard`: serve the web dashboard (`crate::dashboard`) over the state directory until
//! Ctrl-C. The token comes from `KONSTACKS_DASHBOARD_TOKEN` or is generated and printed once,
//! in the login URL; nothing else the command prints carries it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use konstacks_core::provider::Provider;
use konstacks_core::state::LocalBackend;

use super::{Exit, Failure, GlobalArgs, Ui};
use crate::dashboard::{self, DashboardConfig, DashboardError};

/// The environment variable holding the operator's token.
const TOKEN_ENV: &str = "KONSTACKS_DASHBOARD_TOKEN";
/// The environment variable holding the token's label (the audit trail's `dashboard:<label>`).
const LABEL_ENV: &str = "KONSTACKS_DASHBOARD_TOKEN_LABEL";

fn failure(e: DashboardError) -> Failure {
    match e {
        DashboardError::TokenTooShort { .. }
        | DashboardError::TokenNotPrintable
        | DashboardError::BadLabel
        | DashboardError::NonLoopback { .. } => Failure::invalid(e.to_string()),
        other => {
            let mut message = other.to_string();
            let mut source = std::error::Error::source(&other);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            Failure::error(message)
        }
    }
}

pub(super) fn dashboard(
    ui: &Ui,
    global: &GlobalArgs,
    providers: Vec<Provider>,
    listen: SocketAddr,
) -> Result<Exit, Failure> {
    let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    // Refused before anything is opened or bound.
    dashboard::check_bind(listen, token.is_some()).map_err(failure)?;
    let label = std::env::var(LABEL_ENV).ok().filter(|l| !l.is_empty()).unwrap_or_else(|| "dashboard".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::error(format!("cannot start the async runtime: {e}")))?;
    // The stacks of `--state-url` (S3) when given, else of the state directory.
    let state: Arc<dyn konstacks_core::state::StateBackend> = match &global.state_url {
        Some(url) => super::remote_state(&rt, url)?,
        None => Arc::new(LocalBackend::new(&global.state_dir)),
    };
    let mut builder = DashboardConfig::builder(state, &global.state_dir)
        .providers(providers)
        .sim_latency(Duration::from_millis(global.sim_latency_ms))
        .token_label(label);
    if let Some(t) = &token {
        builder = builder.token(t.clone());
    }
    let config = builder.build().map_err(failure)?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Failure::error(format!("cannot listen on {listen}: {e}")))?;
        let addr =
            listener.local_addr().map_err(|e| Failure::error(format!("cannot read the listening address: {e}")))?;
        if config.token_generated() {
            ui.out(&format!("dashboard: {}", config.login_url(addr)));
        } else {
            ui.out(&format!("dashboard: http://{addr}/ (token from {TOKEN_ENV})"));
        }
        // Ctrl-C: runs still going stop starting work and release their locks before exit.
        dashboard::serve_until(listener, config, super::interrupt()).await.map_err(failure)
    })?;
    Ok(Exit::Success)
}
