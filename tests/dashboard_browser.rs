//! `konstacks dashboard` in a real browser: headless Chromium driven over WebDriver through a
//! whole stack's life (log in, fill the web-app form with a mistake and fix it, plan, apply and
//! watch the progress, read the stack page, destroy with the typed confirmation), then the
//! keyboard and labels of the new-stack form. Every step leaves a screenshot in
//! `target/dashboard-screenshots/`.
//!
//! Both tests are `#[ignore]`: they need chromedriver, which `scripts/test-dashboard.sh`
//! installs and starts (it sets `KONSTACKS_WEBDRIVER_URL`). Run them with
//! `bash scripts/test-dashboard.sh`; without the variable they fail instead of skipping.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/browser.rs"]
mod browser;
#[path = "support/dashboard_process.rs"]
mod dashboard_process;

use std::time::Duration;

use browser::Browser;
use dashboard_process::Dashboard;
use serde_json::{json, Value};

/// How long an apply or destroy of web-app on the simulated cloud may take in the browser.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The simulated cloud's latency per call (small, so progress shows as several events).
const SIM_LATENCY_MS: u32 = 20;

/// A value of `params.app_image` the web-app template refuses (spaces, capitals, `!`).
const BAD_IMAGE: &str = "Not An Image!";

/// The template's own message for [`BAD_IMAGE`] starts like this (see
/// `konstacks_templates::grammar::image_reference`).
const BAD_IMAGE_MESSAGE: &str = "is not an image reference";

/// The value that fixes it.
const GOOD_IMAGE: &str = "ghcr.io/acme/shop:1.4.2";

/// The text of the overview's cell for stack `arguments[0]` in the column whose heading is
/// `arguments[1]` (case aside), or `null` when the stack has no row.
const CELL: &str = r#"
const row = document.querySelector(`tr[data-stack="${arguments[0]}"]`);
if (!row) { return null; }
const table = row.closest('table');
const heads = Array.from(table.querySelectorAll('th'));
const i = heads.findIndex(th => th.textContent.trim().toLowerCase() === arguments[1]);
if (i < 0) { return { error: `no column headed ${arguments[1]} in the stacks table` }; }
const cell = row.cells[i];
return cell ? cell.textContent.trim() : { error: `the row has no cell under ${arguments[1]}` };
"#;

/// Where the overview's row for `stack` sits: its client group's `data-client`, or `null`.
const ROW_GROUP: &str = r#"
const row = document.querySelector(`tr[data-stack="${arguments[0]}"]`);
const group = row && row.closest('section.client-group');
return group ? group.getAttribute('data-client') : null;
"#;

/// Whether every control of the form carries a label (`label for` or `aria-label`); returns
/// the controls that do not.
const UNLABELLED: &str = r#"
const form = document.querySelector(arguments[0]);
return Array.from(form.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden')
  .filter(el => !((el.labels && el.labels.length > 0) || el.getAttribute('aria-label')))
  .map(el => el.id || el.name || el.outerHTML);
"#;

/// The form's controls a person reaches with Tab, in document order (radio groups count once).
const TAB_STOPS: &str = r#"
const form = document.querySelector(arguments[0]);
const seen = new Set();
return Array.from(form.querySelectorAll('input, select, textarea, button'))
  .filter(el => el.type !== 'hidden' && !el.disabled && el.tabIndex >= 0 && el.getClientRects().length > 0)
  .filter(el => el.type !== 'radio' || (!seen.has(el.name) && seen.add(el.name)))
  .map(el => el.type === 'radio' ? 'radio:' + el.name : (el.id || el.name));
"#;

/// What has focus: `{ key, control, inForm }`.
const FOCUSED: &str = r#"
const el = document.activeElement;
if (!el || el === document.body) { return { key: null, control: false, inForm: false }; }
const control = el.matches('input, select, textarea, button');
return {
  key: el.type === 'radio' ? 'radio:' + el.name : (el.id || el.name || el.tagName.toLowerCase()),
  control,
  inForm: !!el.closest(arguments[0]),
};
"#;

/// The number a table cell's text starts with (`"12"`, `"12 resources"`).
fn leading_number(cell: &Value) -> Option<usize> {
    let digits: String = cell.as_str()?.trim().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromedriver and Chromium: run bash scripts/test-dashboard.sh"]
async fn a_stack_is_created_watched_and_destroyed_in_the_browser() {
    let dash = Dashboard::start(SIM_LATENCY_MS);
    let mut b = Browser::start("").await;

    // Log in with the printed URL: the cookie is set and the overview shows, empty.
    b.goto(&dash.login_url).await;
    b.find("table#stacks").await;
    assert_eq!(b.path().await, "/", "the login URL redirects to the overview");
    assert_eq!(b.count("tr[data-stack]").await, 0, "a fresh state directory has no stacks");
    b.find("a#bill-link").await;
    b.shot("overview-empty").await;

    // Choose the template, see its form.
    b.click_to("a#new-stack", r#"a.template-link[data-template="web-app"]"#).await;
    b.shot("templates").await;
    b.click_to(r#"a.template-link[data-template="web-app"]"#, "form#params-form").await;
    let stages: Vec<String> = b
        .js("return Array.from(document.querySelectorAll('#stage option')).map(o => o.value);", vec![])
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    for stage in ["dev", "staging", "prod"] {
        assert!(stages.iter().any(|s| s == stage), "#stage offers {stages:?}, not {stage}");
    }
    b.fill("#stack-name", "shop").await;
    b.fill(r#"[name="params.app_image"]"#, BAD_IMAGE).await;
    b.shot("params-form").await;

    // A value the template refuses comes back next to its field, with the template's message.
    b.click("#plan-submit").await;
    let error = b.find(r#".field-error[data-field="params.app_image"]"#).await;
    let message = error.text().await.unwrap();
    assert!(message.contains(BAD_IMAGE_MESSAGE), "the field error reads {message:?}");
    let summary = b.text("#form-errors").await;
    assert!(!summary.is_empty(), "#form-errors is empty");
    assert_eq!(b.count("#plan").await, 0, "no plan for refused parameters");
    b.shot("params-refused").await;

    // Fixed: the plan with its cost and compliance verdict.
    b.fill("#stack-name", "shop").await;
    b.fill(r#"[name="params.app_image"]"#, GOOD_IMAGE).await;
    b.click_to("#plan-submit", "#plan").await;
    assert_eq!(b.count(".field-error").await, 0, "the corrected form still shows field errors");
    for part in ["#plan-cost", "#plan-compliance"] {
        let text = b.text(part).await;
        assert!(!text.is_empty(), "{part} is empty {}", b.context().await);
    }
    b.find("form#apply-form #apply-submit").await;
    b.shot("plan").await;

    // Apply: the run page fills its progress and ends `complete`.
    b.click_to("#apply-submit", "#run-status").await;
    assert!(b.path().await.starts_with("/runs/"), "the apply leads to its run page");
    let status = b.wait_text("#run-status", RUN_TIMEOUT, |s| s == "complete" || s == "failed").await;
    assert_eq!(status, "complete", "{}", b.context().await);
    let events = b.count("#progress li").await;
    assert!(events > 0, "#progress lists no event {}", b.context().await);
    b.shot("apply-complete").await;

    // The stack page: resources, graph, the audit entry of the dashboard's apply.
    b.click_to("a#stack-link", "table#resources").await;
    let stack = b.text("h1").await;
    assert!(stack.starts_with("shop"), "the stack page is headed {stack:?}");
    assert_eq!(b.path().await, format!("/stacks/{stack}"));
    let resources = b.count("#resources tr[data-path]").await;
    assert!(resources > 0, "the stack page lists no resource {}", b.context().await);
    b.find("figure#graph svg").await;
    for section in ["#outputs", "#findings", "#cost", "#releases"] {
        b.find(&format!("section{section}")).await;
    }
    b.find(r#"#audit tr.audit-entry[data-command="apply"]"#).await;
    let audit = b.text("#audit").await;
    assert!(audit.contains("dashboard:dashboard"), "the audit trail names no dashboard actor: {audit}");
    println!("{stack}: {resources} resources, {events} progress events");
    b.shot("stack").await;

    // The overview lists it (in the group of stacks without a client).
    b.goto(&dash.url("/")).await;
    b.find(&format!(r#"tr[data-stack="{stack}"]"#)).await;
    let group = b.js(ROW_GROUP, vec![json!(stack)]).await;
    assert_eq!(group, json!(""), "the row sits in no client group without a client tag");
    let cell = b.js(CELL, vec![json!(stack), json!("resources")]).await;
    assert_eq!(leading_number(&cell), Some(resources), "the overview's resource count reads {cell}");
    let drift_before = b.js(CELL, vec![json!(stack), json!("drift")]).await;
    assert!(drift_before.is_string(), "the overview's drift cell: {drift_before}");
    b.shot("overview-with-stack").await;

    // A drift check from the stack page; the overview then shows its result.
    b.click_to(&format!(r#"tr[data-stack="{stack}"] a.stack-link"#), "form#drift-form").await;
    b.click_to("form#drift-form #drift-submit", "table#resources").await;
    assert!(b.path().await.starts_with(&format!("/stacks/{stack}")), "{}", b.context().await);
    b.shot("drift-checked").await;
    b.goto(&dash.url("/")).await;
    let drift_after = b.js(CELL, vec![json!(stack), json!("drift")]).await;
    assert_ne!(drift_after, drift_before, "the overview's drift cell ignores the check");
    println!("drift: {drift_before} -> {drift_after}");

    // Destroy: a wrong name is refused and nothing runs.
    b.click(&format!(r#"tr[data-stack="{stack}"] a.stack-link"#)).await;
    b.find("form#destroy-form").await;
    let label = b
        .js(
            "const el = document.getElementById('confirm-name'); \
             return el && el.labels ? Array.from(el.labels).map(l => l.textContent.trim()).join(' ') : '';",
            vec![],
        )
        .await;
    assert!(
        label.as_str().is_some_and(|l| l.contains("Type the stack name to confirm")),
        "#confirm-name is labelled {label}"
    );
    b.fill("#confirm-name", &format!("{stack}-typo")).await;
    b.click("#destroy-submit").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b.path().await.starts_with("/runs/"), "a wrong name started a destroy");
    assert_eq!(b.count("#run-status").await, 0, "a wrong name started a destroy {}", b.context().await);
    if let Some(why) = b.all("form#destroy-form .field-error").await.first() {
        println!("wrong name refused: {}", why.text().await.unwrap());
    }
    b.js("document.getElementById('destroy-form').scrollIntoView({ block: 'center' });", vec![]).await;
    b.shot("destroy-refused").await;
    b.goto(&dash.url(&format!("/stacks/{stack}"))).await;
    assert_eq!(b.count("#resources tr[data-path]").await, resources, "the refused destroy changed the stack");

    // The right name destroys it.
    b.fill("#confirm-name", &stack).await;
    b.click_to("#destroy-submit", "#run-status").await;
    let status = b.wait_text("#run-status", RUN_TIMEOUT, |s| s == "complete" || s == "failed").await;
    assert_eq!(status, "complete", "{}", b.context().await);
    b.shot("destroy-complete").await;

    // The overview shows the stack with no resources, or not at all.
    b.goto(&dash.url("/")).await;
    b.find("table#stacks").await;
    let cell = b.js(CELL, vec![json!(stack), json!("resources")]).await;
    assert!(
        cell == Value::Null || leading_number(&cell) == Some(0),
        "after the destroy the overview shows resources {cell}"
    );
    b.shot("overview-after-destroy").await;

    b.close().await;
    drop(dash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromedriver and Chromium: run bash scripts/test-dashboard.sh"]
async fn the_new_stack_form_is_labelled_and_keyboard_navigable() {
    let dash = Dashboard::start(0);
    let mut b = Browser::start("keyboard-").await;
    b.goto(&dash.login_url).await;
    b.find("table#stacks").await;
    b.goto(&dash.url("/new/web-app")).await;
    b.find("form#params-form #plan-submit").await;

    let unlabelled = b.js(UNLABELLED, vec![json!("form#params-form")]).await;
    assert_eq!(unlabelled, json!([]), "form controls without a label");

    // Tab from the top of the page: focus walks the form's controls in document order and
    // reaches the submit button.
    let stops: Vec<String> = serde_json::from_value(b.js(TAB_STOPS, vec![json!("form#params-form")]).await).unwrap();
    assert!(stops.iter().any(|s| s == "stack-name") && stops.iter().any(|s| s == "stage"), "{stops:?}");
    assert_eq!(stops.last().map(String::as_str), Some("plan-submit"), "the submit button is the last stop");
    b.js("if (document.activeElement) { document.activeElement.blur(); } window.scrollTo(0, 0);", vec![]).await;
    let mut visited: Vec<String> = Vec::new();
    let mut pictured = false;
    let limit = stops.len() + 100;
    for _ in 0..limit {
        b.tab().await;
        let focused = b.js(FOCUSED, vec![json!("form#params-form")]).await;
        let in_form_control = focused["control"] == json!(true) && focused["inForm"] == json!(true);
        if let (true, Some(key)) = (in_form_control, focused["key"].as_str()) {
            if visited.last().map(String::as_str) != Some(key) {
                visited.push(key.to_string());
            }
            if key == "plan-submit" {
                break;
            }
        }
        if visited.len() == 3 && !pictured {
            pictured = true;
            b.shot("focus-on-third-control").await;
        }
    }
    assert_eq!(visited.last().map(String::as_str), Some("plan-submit"), "Tab never reached #plan-submit: {visited:?}");
    assert_eq!(visited, stops, "Tab order differs from the form's order");
    println!("Tab visits {} form controls in order", visited.len());
    b.shot("focus-on-submit").await;

    b.close().await;
    drop(dash);
}
