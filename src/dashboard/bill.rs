//! The per-client bill over every deployed stack (`GET /bill`), and the same as CSV
//! (`GET /bill.csv`). Each stack is rebuilt from the template and parameters its last apply
//! recorded and priced from the catalogues; a stack that cannot be rebuilt is listed as not
//! billed, with the reason.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use konstacks_core::cost::{billing_by_tag, Bill, BillLine, CostModel, CostReport};
use maud::{html, Markup};

use super::layout::{self, document, usd};
use super::rebuild::rebuild;
use super::AppState;

/// The query of both bill routes.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct BillQuery {
    /// The tag whose values are the clients (default `client`).
    #[serde(default = "default_tag")]
    tag: String,
    /// Markup in percent (default 0).
    #[serde(default)]
    markup: Option<String>,
}

fn default_tag() -> String {
    "client".into()
}

/// The bill, and the stacks left out of it with why.
async fn compute(app: &AppState, tag: &str, markup: f64) -> Result<(Bill, Vec<(String, String)>), String> {
    let names = app.config.state.stacks().await.map_err(|e| e.to_string())?;
    let catalogs = app.config.catalog_refs();
    let model = CostModel::new(&catalogs);
    let mut reports: Vec<CostReport> = Vec::new();
    let mut left_out = Vec::new();
    for name in names {
        let state = match app.config.state.load(&name).await {
            Ok(s) => s,
            Err(e) => {
                left_out.push((name, format!("state unreadable: {e}")));
                continue;
            }
        };
        if state.resources.is_empty() {
            continue;
        }
        match rebuild(app, &name, &state) {
            Ok(r) => reports.push(model.report(&r.synth)),
            Err(why) => left_out.push((name, why)),
        }
    }
    Ok((billing_by_tag(&reports, tag, markup), left_out))
}

/// The markup percentage of the query: a finite number from 0 to 1000.
fn markup_of(q: &BillQuery) -> Result<f64, String> {
    match q.markup.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(0.0),
        Some(s) => match s.parse::<f64>() {
            Ok(m) if m.is_finite() && (0.0..=1000.0).contains(&m) => Ok(m),
            _ => Err(format!("markup must be a percentage from 0 to 1000, not `{s}`")),
        },
    }
}

/// Only letters, digits, `-`, `_`, `:` and `.` in a tag name.
fn tag_of(q: &BillQuery) -> Result<String, String> {
    let t = q.tag.trim();
    if !t.is_empty() && t.len() <= 128 && t.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c)) {
        Ok(t.to_string())
    } else {
        Err("the tag must be 1 to 128 letters, digits, `-`, `_`, `:` or `.`".into())
    }
}

fn line_row(l: &BillLine, unassigned: bool) -> Markup {
    html! {
        tr data-client=(l.client) {
            th scope="row" { @if unassigned { em { "(no tag)" } } @else { (l.client) } }
            td.num { (l.resources) }
            td.num { (usd(l.cost_usd)) }
            td.num { (usd(l.shared_usd)) }
            td.num { (usd(l.markup_usd)) }
            td.num { strong { (usd(l.total_usd)) } }
            td { @if !l.unpriced.is_empty() { (l.unpriced.join(", ")) } }
        }
    }
}

/// `GET /bill`.
pub(crate) async fn page(State(app): State<AppState>, Query(q): Query<BillQuery>) -> Response {
    let (tag, markup) = match (tag_of(&q), markup_of(&q)) {
        (Ok(t), Ok(m)) => (t, m),
        (Err(e), _) | (_, Err(e)) => return layout::error_page(StatusCode::BAD_REQUEST, "Bad bill request", &e),
    };
    let (bill, left_out) = match compute(&app, &tag, markup).await {
        Ok(b) => b,
        Err(e) => return layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Cannot compute the bill", &e),
    };
    let csv_href = format!("/bill.csv?tag={tag}&markup={markup}");
    let body = html! {
        h1 { "Bill by " code { (tag) } }
        form.toolbar method="get" action="/bill" {
            div { label for="bill-tag" { "Tag" } input #bill-tag type="text" name="tag" value=(tag); }
            div { label for="bill-markup" { "Markup (%)" } input #bill-markup type="number" name="markup" min="0" max="1000" step="any" value=(markup); }
            button type="submit" { "Show" }
        }
        p.muted { "Monthly estimate from the catalogues' list prices"
            @for (p, d) in &bill.priced_on { " (" (p) ": " (d) ")" }
            "; shared resources are split evenly across clients." }
        table #bill {
            thead { tr {
                th scope="col" { "Client" } th.num scope="col" { "Resources" } th.num scope="col" { "Cost" }
                th.num scope="col" { "Of which shared" } th.num scope="col" { "Markup" } th.num scope="col" { "Total" }
                th scope="col" { "Not priced" }
            } }
            tbody {
                @for l in &bill.lines { (line_row(l, false)) }
                @if let Some(u) = &bill.unassigned { (line_row(u, true)) }
            }
            tfoot { tr {
                th scope="row" { "Total" } td {} td.num { (usd(bill.cost_usd)) } td {} td.num { (usd(bill.markup_usd)) }
                td.num { strong { (usd(bill.total_usd)) } } td {}
            } }
        }
        p { a #bill-csv href=(csv_href) download { "Download as CSV" } }
        @if !left_out.is_empty() {
            h2 { "Not billed" }
            ul #not-billed { @for (n, why) in &left_out { li { strong { (n) } ": " (why) } } }
        }
    };
    layout::respond(StatusCode::OK, page_markup(body))
}

fn page_markup(body: Markup) -> Markup {
    document("Bill", None, body)
}

/// `GET /bill.csv`: the same bill as a CSV attachment.
pub(crate) async fn csv(State(app): State<AppState>, Query(q): Query<BillQuery>) -> Response {
    let (tag, markup) = match (tag_of(&q), markup_of(&q)) {
        (Ok(t), Ok(m)) => (t, m),
        (Err(e), _) | (_, Err(e)) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    match compute(&app, &tag, markup).await {
        Ok((bill, _)) => {
            let mut r = bill.to_csv().into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            let disposition = format!("attachment; filename=\"bill-{}.csv\"", tag.replace([':', '.'], "-"));
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
