//! The shared page layout (skip link, navigation, main landmark, inline CSS with visible focus),
//! error pages, and small formatting helpers. Every value goes through maud, which escapes it.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The stylesheet, inline: the dashboard loads nothing from anywhere.
const CSS: &str = r#"
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --accent: #0a58ca; --bad: #b42318; --ok: #1a7f37; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #fff; }
a { color: var(--accent); }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5rem 1rem; }
.skip:focus { left: .5rem; }
header { background: #24292f; padding: .6rem 1.2rem; }
header nav { display: flex; gap: 1.2rem; align-items: baseline; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header .brand { font-size: 1.1rem; margin-right: 1rem; }
main { padding: 1rem 1.4rem 3rem; max-width: 1400px; }
h1 { font-size: 1.5rem; margin: .4rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .6rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { text-align: left; padding: .35rem .55rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.bad { color: var(--bad); font-weight: 600; }
.ok { color: var(--ok); font-weight: 600; }
.warn { color: var(--warn); font-weight: 600; }
.notice { border: 1px solid var(--line); border-left: 4px solid var(--accent); padding: .6rem .9rem; margin: .8rem 0; background: #f6f8fa; }
.notice.error { border-left-color: var(--bad); }
.field-error { color: var(--bad); margin: .2rem 0 .6rem; }
label { font-weight: 600; display: block; margin: .6rem 0 .2rem; }
input, select, textarea, button { font: inherit; padding: .35rem .5rem; border: 1px solid #8c959f; border-radius: 4px; }
input[type=checkbox] { width: auto; }
button, .button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; padding: .4rem .9rem; text-decoration: none; display: inline-block; border-radius: 4px; }
button.danger { background: var(--bad); border-color: var(--bad); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, textarea:focus-visible, summary:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
.toolbar { display: flex; gap: 1rem; align-items: end; flex-wrap: wrap; margin-bottom: .8rem; }
.toolbar label { margin: 0 0 .2rem; }
section.client-group { margin-bottom: 1.2rem; }
figure { margin: .5rem 0; overflow-x: auto; border: 1px solid var(--line); padding: .5rem; }
ol#progress { font-family: ui-monospace, monospace; font-size: 13px; }
code, pre { font-family: ui-monospace, monospace; font-size: 13px; }
pre { white-space: pre-wrap; }
#run-status.complete { color: var(--ok); }
#run-status.failed { color: var(--bad); }
.hint { color: var(--muted); font-size: 13px; margin: .1rem 0 .3rem; }
fieldset { border: 1px solid var(--line); margin: .6rem 0; padding: .4rem .9rem .8rem; }
"#;

/// A full page: `title` in the tab and as context, `body` inside `<main>`.
pub(crate) fn document(title: &str, head: Option<Markup>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Konstacks" }
                style { (PreEscaped(CSS)) }
                @if let Some(h) = head { (h) }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Main" {
                        a.brand href="/" { "Konstacks" }
                        a href="/" { "Stacks" }
                        a href="/new" { "New stack" }
                        a href="/bill" { "Bill" }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

/// A page as an HTTP answer.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// An error page with a message (already free of secrets).
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    respond(
        status,
        document(
            title,
            None,
            html! {
                h1 { (title) }
                p.notice.error role="alert" { (message) }
                p { a href="/" { "Back to the stacks" } }
            },
        ),
    )
}

/// Any route the dashboard does not have.
pub(crate) async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "Not found", "There is no such page.")
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_input(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A monthly amount in USD.
pub(crate) fn usd(v: f64) -> String {
    // Rounded first, so a tiny negative remainder never shows as `-$0.00`.
    let cents = (v * 100.0).round();
    if cents < 0.0 {
        format!("-${:.2}", -cents / 100.0)
    } else {
        format!("${:.2}", cents.abs() / 100.0)
    }
}

/// An optional amount, or a dash.
pub(crate) fn usd_or_dash(v: Option<f64>) -> String {
    v.map(usd).unwrap_or_else(|| "–".into())
}

/// A duration in milliseconds as seconds.
pub(crate) fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Percent-encode a path segment (stack and template names are plain, but never trust that).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_segments_encoded() {
        let p = document("<x>", None, html! { p { ("<script>alert(1)</script>") } }).into_string();
        assert!(!p.contains("<script>alert"));
        assert!(p.contains("&lt;script&gt;"));
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(usd(3.456), "$3.46");
        assert_eq!(usd(-0.0001), "$0.00");
        assert_eq!(usd(-2.5), "-$2.50");
    }
}
