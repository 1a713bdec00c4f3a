//! The dashboard over HTTP, in process: the router is called directly (`ServiceExt::oneshot`),
//! on a temporary state directory and the simulated cloud without latency.
//!
//! Covered: 401 without the token on every route, the login cookie, CSRF and Origin refusals,
//! the new-stack form refusing bad parameters field by field, an apply from the form that
//! completes and shows on the stack page with its audit entry, a destroy that needs the exact
//! name, no secret in any page, the bill as CSV, and the refusal of a non-loopback address
//! without an operator's token.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/binary.rs"]
mod binary;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use konstacks::core::secret::{Sealer, Secret};
use konstacks::core::state::{LocalBackend, StateBackend};
use konstacks::dashboard::{self, DashboardConfig, DashboardError};
use tower::ServiceExt;

const TOKEN: &str = "test-token-0123456789abcdef";
const GOOD_IMAGE: &str = "ghcr.io/acme/shop:1.4.2";

struct Dash {
    _dir: tempfile::TempDir,
    state: Arc<LocalBackend>,
    app: Router,
    sealer: Sealer,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}\n{}", self.status, self.headers, self.body)
    }
}

fn dash() -> Dash {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let state = Arc::new(LocalBackend::new(&state_dir));
    let sealer = Sealer::from_passphrase(&Secret::new("a passphrase for the dashboard tests".to_string()));
    let config = DashboardConfig::builder(state.clone(), &state_dir)
        .token(TOKEN)
        .token_label("tester")
        .sim_latency(Duration::ZERO)
        .sealer(Some(sealer.clone()))
        .build()
        .unwrap();
    Dash { _dir: dir, state, app: dashboard::router(config), sealer }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
}

impl Dash {
    async fn send(&self, method: Method, path: &str, auth: Auth<'_>, form: Option<&[(&str, &str)]>) -> Answer {
        self.send_with(method, path, auth, form, &[]).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        form: Option<&[(&str, &str)]>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut b = Request::builder().method(method).uri(path).header(header::HOST, "127.0.0.1:7070");
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Auth::Cookie(c) => b = b.header(header::COOKIE, format!("konstacks_session={c}")),
        }
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        let body = match form {
            Some(fields) => {
                b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(encode(fields))
            }
            None => Body::empty(),
        };
        let r = self.app.clone().oneshot(b.body(body).unwrap()).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        Answer { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, Auth::Bearer(TOKEN), None).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send(Method::POST, path, Auth::Bearer(TOKEN), Some(form)).await
    }

    /// Log in with the token: the session id and its CSRF token (from the new-stack form).
    async fn login(&self) -> (String, String) {
        let r = self.send(Method::GET, &format!("/login?token={TOKEN}"), Auth::None, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let cookie = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
        let id = cookie.split(';').next().unwrap().strip_prefix("konstacks_session=").unwrap().to_string();
        let page = self.send(Method::GET, "/new/web-app", Auth::Cookie(&id), None).await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = attr_after(&page.body, r#"name="csrf" value=""#);
        (id, csrf)
    }

    /// Plan web-app as `name` from the form and apply it; the run's path once it is complete.
    async fn apply_web_app(&self, name: &str) -> String {
        let plan = self
            .post("/new/web-app/plan", &[("stack_name", name), ("stage", "dev"), ("params.app_image", GOOD_IMAGE)])
            .await;
        assert_eq!(plan.status, StatusCode::OK, "{plan:?}");
        for id in
            ["id=\"plan\"", "id=\"plan-cost\"", "id=\"plan-compliance\"", "id=\"apply-form\"", "id=\"apply-submit\""]
        {
            assert!(plan.body.contains(id), "the plan page has no {id}");
        }
        let hidden = hidden_inputs(&plan.body);
        let fields: Vec<(&str, &str)> = hidden.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let started = self.post("/runs", &fields).await;
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{started:?}");
        let run = started.headers[header::LOCATION].to_str().unwrap().to_string();
        assert!(run.starts_with("/runs/"));
        assert_eq!(self.wait_run(&run).await, "complete");
        run
    }

    /// Poll a run page until its status is no longer `running`.
    async fn wait_run(&self, run: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let page = self.get(run).await;
            let status = text_after(&page.body, r#"aria-live="polite">"#);
            if status != "running" || Instant::now() > deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn encode(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'").replace("&amp;", "&")
}

/// The attribute value that starts right after `marker`.
fn attr_after(html: &str, marker: &str) -> String {
    let at = html.find(marker).unwrap_or_else(|| panic!("no {marker} in\n{html}")) + marker.len();
    unescape(&html[at..at + html[at..].find('"').unwrap()])
}

/// The text that starts right after `marker`, up to the next tag.
fn text_after(html: &str, marker: &str) -> String {
    let at = html.find(marker).unwrap_or_else(|| panic!("no {marker} in\n{html}")) + marker.len();
    unescape(&html[at..at + html[at..].find('<').unwrap()])
}

/// Every `<input type="hidden" name=".." value="..">`.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split(r#"<input type="hidden" name=""#)
        .skip(1)
        .map(|rest| {
            let name = &rest[..rest.find('"').unwrap()];
            let value = attr_after(rest, r#"value=""#);
            (unescape(name), value)
        })
        .collect()
}

#[tokio::test]
async fn every_route_answers_401_without_the_token() {
    let d = dash();
    let routes = [
        (Method::GET, "/"),
        (Method::GET, "/?q=x&sort=cost"),
        (Method::GET, "/stacks/shop"),
        (Method::POST, "/stacks/shop/drift"),
        (Method::POST, "/stacks/shop/destroy"),
        (Method::GET, "/new"),
        (Method::GET, "/new/web-app"),
        (Method::POST, "/new/web-app/plan"),
        (Method::POST, "/runs"),
        (Method::GET, "/runs/1"),
        (Method::GET, "/runs/1/events"),
        (Method::GET, "/bill"),
        (Method::GET, "/bill.csv"),
        (Method::GET, "/no-such-page"),
    ];
    for (method, path) in routes {
        let form: Option<&[(&str, &str)]> = if method == Method::POST { Some(&[("csrf", "x")]) } else { None };
        for auth in [Auth::None, Auth::Bearer("wrong-token-0123456789"), Auth::Cookie("not-a-session")] {
            let r = d.send(method.clone(), path, auth, form).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}: {r:?}");
            assert!(r.body.len() < 200, "a 401 says little: {}", r.body);
            assert!(!r.body.contains("<table"), "{method} {path} leaked a page");
        }
    }
    let r = d.send(Method::GET, "/login?token=wrong-token-0123456789", Auth::None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    let r = d.send(Method::GET, "/login", Auth::None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_login_url_sets_a_strict_http_only_cookie_that_opens_every_page() {
    let d = dash();
    let r = d.send(Method::GET, &format!("/login?token={TOKEN}"), Auth::None, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/");
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
    for part in ["konstacks_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "cookie {cookie} lacks {part}");
    }
    assert!(!cookie.contains(TOKEN), "the session id is not the token");
    assert_eq!(r.headers[header::REFERRER_POLICY], "same-origin");
    let (id, csrf) = d.login().await;
    assert_eq!(csrf.len(), 64);
    let overview = d.send(Method::GET, "/", Auth::Cookie(&id), None).await;
    assert_eq!(overview.status, StatusCode::OK);
    for part in [r#"<table id="stacks""#, r#"id="filter""#, r#"id="new-stack""#, r#"id="bill-link""#] {
        assert!(overview.body.contains(part), "the overview has no {part}");
    }
    assert!(overview.body.contains(r#"<section class="client-group" data-client="""#));
}

#[tokio::test]
async fn posts_without_the_sessions_csrf_token_or_from_another_origin_are_refused() {
    let d = dash();
    let (id, csrf) = d.login().await;
    let session = Auth::Cookie(&id);
    let plan_form = |token: &'static str| vec![("csrf", token), ("stack_name", "shop"), ("stage", "dev")];
    // Missing, wrong.
    let r = d.send(Method::POST, "/new/web-app/plan", session, Some(&[("stack_name", "shop")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    let r = d.send(Method::POST, "/new/web-app/plan", session, Some(&plan_form("0123"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = d.send(Method::POST, "/stacks/shop/destroy", session, Some(&[("confirm_name", "shop")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Right token, foreign origin.
    let good = [("csrf", csrf.as_str()), ("stack_name", "shop"), ("stage", "dev"), ("params.app_image", GOOD_IMAGE)];
    let r = d
        .send_with(Method::POST, "/new/web-app/plan", session, Some(&good), &[("origin", "http://evil.example")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The Bearer header is subject to the Origin check, not to CSRF.
    let r = d
        .send_with(
            Method::POST,
            "/stacks/shop/drift",
            Auth::Bearer(TOKEN),
            Some(&[]),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = d.send(Method::POST, "/new/web-app/plan", Auth::Bearer(TOKEN), Some(&good[1..])).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // Right token, own origin.
    let r = d
        .send_with(Method::POST, "/new/web-app/plan", session, Some(&good), &[("origin", "http://127.0.0.1:7070")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(r.body.contains("id=\"apply-form\""));
}

#[tokio::test]
async fn the_form_refuses_bad_parameters_field_by_field_with_the_templates_messages() {
    let d = dash();
    let r = d
        .post(
            "/new/web-app/plan",
            &[("stack_name", "shop"), ("stage", "dev"), ("params.app_image", "Bad Image!"), ("params.vm_count", "abc")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.body.contains(r#"id="form-errors""#));
    assert!(r.body.contains(r#"data-field="params.vm_count""#), "{}", r.body);
    assert!(!r.body.contains(r#"id="plan""#));
    // The type error first; the template's own message once the types are right.
    let r = d
        .post("/new/web-app/plan", &[("stack_name", "shop"), ("stage", "dev"), ("params.app_image", "Bad Image!")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = text_after(&r.body, r#"data-field="params.app_image""#);
    assert!(message.contains("is not an image reference"), "{message}");
    assert!(r.body.contains("Bad Image!"), "the typed value is kept");
    // The stack name and the stage are checked too.
    let r = d.post("/new/web-app/plan", &[("stack_name", "../etc"), ("stage", "qa")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains(r#"data-field="stack_name""#));
    assert!(r.body.contains(r#"data-field="stage""#));
    let r = d.post("/new/no-such-template/plan", &[("stack_name", "x")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_from_the_form_completes_and_the_stack_page_shows_it_then_destroy_needs_the_exact_name() {
    let d = dash();
    let run = d.apply_web_app("shop").await;
    let page = d.get(&run).await;
    assert!(page.body.contains(r#"<ol id="progress""#) && page.body.contains("<li>"), "{page:?}");
    assert!(page.body.contains(r#"id="stack-link" href="/stacks/shop""#));
    // A late subscriber gets every event from the start, then `done`.
    let events = d.get(&format!("{run}/events")).await;
    assert_eq!(events.headers[header::CONTENT_TYPE], "text/event-stream");
    assert!(events.body.matches("data: {").count() > 3, "{}", events.body);
    assert!(events.body.contains("\"event\":\"started\""));
    assert!(events.body.contains("event: done\ndata: {\"message\""), "{}", events.body);
    assert!(events.body.contains("\"status\":\"complete\""));

    let state = d.state.load("shop").await.unwrap();
    let stack = d.get("/stacks/shop").await;
    assert_eq!(stack.status, StatusCode::OK);
    assert!(stack.body.contains("<h1>shop</h1>"));
    assert_eq!(stack.body.matches("<tr data-path=").count(), state.resources.len());
    for path in state.resources.keys() {
        assert!(stack.body.contains(&format!(r#"<tr data-path="{path}""#)), "no row for {path}");
    }
    for part in [
        r#"<figure id="graph""#,
        "<svg",
        r#"<section id="outputs""#,
        r#"<section id="findings""#,
        r#"<section id="cost""#,
        r#"<section id="releases""#,
        r#"<section id="audit""#,
        r#"<tr class="audit-entry" data-command="apply""#,
        "dashboard:tester",
        r#"<form id="drift-form""#,
        r#"<form id="destroy-form""#,
        r#"<label for="confirm-name">Type the stack name to confirm</label>"#,
    ] {
        assert!(stack.body.contains(part), "the stack page has no {part}");
    }
    let overview = d.get("/").await;
    assert!(overview.body.contains(r#"<tr data-stack="shop""#));
    assert!(overview.body.contains("web-app"));

    // Drift check: back to the stack page, recorded in the audit trail.
    let r = d.post("/stacks/shop/drift", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/stacks/shop?drift=clean");
    assert!(d.get("/stacks/shop").await.body.contains(r#"data-command="drift""#));

    // A wrong name destroys nothing.
    for wrong in ["", "sho", "shop ", "SHOP"] {
        let r = d.post("/stacks/shop/destroy", &[("confirm_name", wrong)]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong:?}");
        assert!(r.body.contains(r#"data-field="confirm_name""#));
    }
    assert_eq!(d.state.load("shop").await.unwrap().resources.len(), state.resources.len());
    let r = d.post("/stacks/shop/destroy", &[("confirm_name", "shop")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
    let run = r.headers[header::LOCATION].to_str().unwrap().to_string();
    assert_eq!(d.wait_run(&run).await, "complete");
    let after = d.state.load("shop").await.unwrap();
    assert!(after.resources.is_empty());
    assert!(d.get("/stacks/shop").await.body.contains(r#"data-command="destroy""#));
    assert!(binary::cloud_in(&d._dir.path().join("state")).is_empty(), "the simulated cloud is empty again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_page() {
    let d = dash();
    let run = d.apply_web_app("vault").await;
    let state = d.state.load("vault").await.unwrap();
    let mut sealed = Vec::new();
    let mut secrets = Vec::new();
    for (path, r) in &state.resources {
        for (key, value) in &r.sealed {
            sealed.push(value.clone());
            let open = d.sealer.open(&format!("vault/{path}.{key}"), value).expect("opens with the test's key");
            secrets.push(open.expose().clone());
        }
    }
    assert!(!secrets.is_empty(), "web-app keeps its generated database password sealed in state");
    let (id, _) = d.login().await;
    let pages = ["/", "/stacks/vault", &run, &format!("{run}/events"), "/bill", "/bill.csv", "/new", "/new/web-app"];
    for p in pages {
        for auth in [Auth::Bearer(TOKEN), Auth::Cookie(&id)] {
            let r = d.send(Method::GET, p, auth, None).await;
            assert_eq!(r.status, StatusCode::OK, "{p}");
            for s in &sealed {
                assert!(!r.body.contains(s.as_str()), "{p} shows a sealed value");
            }
            for secret in &secrets {
                let chars: Vec<char> = secret.chars().collect();
                for w in chars.windows(12) {
                    let w: String = w.iter().collect();
                    assert!(!r.body.contains(&w), "{p} shows part of a secret");
                }
            }
            assert!(!r.body.contains(TOKEN), "{p} shows the token");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bill_is_a_page_and_a_csv_attachment_with_the_markup() {
    let d = dash();
    d.apply_web_app("shop").await;
    let page = d.get("/bill?tag=client&markup=20").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"<table id="bill""#));
    let csv = d.get("/bill.csv?tag=client&markup=20").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(csv.headers[header::CONTENT_DISPOSITION], "attachment; filename=\"bill-client.csv\"");
    let mut lines = csv.body.lines();
    assert_eq!(lines.next(), Some("client,resources,cost_usd,markup_percent,markup_usd,total_usd,unpriced"));
    let state = d.state.load("shop").await.unwrap();
    let line = lines.next().unwrap();
    assert!(line.starts_with(&format!("(unassigned),{},", state.resources.len())), "{line}");
    assert_eq!(d.get("/bill?markup=lots").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(d.get("/bill.csv?tag=a%20b").await.status, StatusCode::BAD_REQUEST);
}

#[test]
fn a_non_loopback_address_needs_a_token_set_by_the_operator() {
    let any: std::net::SocketAddr = "0.0.0.0:7070".parse().unwrap();
    let local: std::net::SocketAddr = "127.0.0.1:7070".parse().unwrap();
    assert!(matches!(dashboard::check_bind(any, false), Err(DashboardError::NonLoopback { .. })));
    assert!(dashboard::check_bind(any, true).is_ok());
    assert!(dashboard::check_bind(local, false).is_ok());
    assert!(dashboard::check_bind("[::1]:7070".parse().unwrap(), false).is_ok());

    // The command refuses before binding anything: exit 3 with the reason.
    let dir = tempfile::tempdir().unwrap();
    let r = binary::run_with(dir.path(), &["dashboard", "--listen", "0.0.0.0:0"], 3, |c| {
        c.env_remove("KONSTACKS_DASHBOARD_TOKEN");
    });
    assert!(r.stderr.contains("KONSTACKS_DASHBOARD_TOKEN"), "{r:?}");
    assert!(r.stdout.is_empty());
    // A token too short to be worth guessing against is refused as well.
    let r = binary::run_with(dir.path(), &["dashboard", "--listen", "0.0.0.0:0"], 3, |c| {
        c.env("KONSTACKS_DASHBOARD_TOKEN", "short");
    });
    assert!(r.stderr.contains("at least 16"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_serves_on_a_loopback_listener_until_told_to_stop() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let config = DashboardConfig::builder(Arc::new(LocalBackend::new(&state_dir)), &state_dir)
        .sim_latency(Duration::ZERO)
        .build()
        .unwrap();
    assert!(config.token_generated());
    let token = config.token().expose().clone();
    assert!(token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert_eq!(config.login_url(addr), format!("http://{addr}/login?token={token}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dashboard::serve_until(listener, config, async {
        let _ = stopped.await;
    }));
    let get = |auth: String| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(get(String::new()).await.starts_with("HTTP/1.1 401"));
    let ok = get(format!("Authorization: Bearer {token}\r\n")).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains(r#"<table id="stacks""#));
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
}

/// Two versions released from the form, then the stack page's rollback form plans the first
/// version again through the plan page, and applying it is a release back to it.
#[tokio::test]
async fn a_rollback_is_planned_from_the_stack_page_and_applied_as_a_release() {
    let d = dash();
    let release = |version: &'static str| {
        let d = &d;
        async move {
            let fields = [
                ("stack_name", "shop"),
                ("stage", "dev"),
                ("params.app_image", GOOD_IMAGE),
                ("params.load_balancer", "true"),
                ("params.vm_count", "2"),
                ("params.health_path", "/healthz"),
                ("params.app_version", version),
            ];
            let plan = d.post("/new/web-app/plan", &fields).await;
            assert_eq!(plan.status, StatusCode::OK, "{plan:?}");
            let hidden = hidden_inputs(&plan.body);
            let fields: Vec<(&str, &str)> = hidden.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let started = d.post("/runs", &fields).await;
            assert_eq!(started.status, StatusCode::SEE_OTHER, "{started:?}");
            let run = started.headers[header::LOCATION].to_str().unwrap().to_string();
            assert_eq!(d.wait_run(&run).await, "complete");
        }
    };
    release("1").await;
    release("2").await;
    let page = d.get("/stacks/shop").await;
    let at = page.body.find(r#"id="rollback-form""#).unwrap_or_else(|| panic!("no rollback form:\n{}", page.body));
    let form = &page.body[at..at + page.body[at..].find("</form>").unwrap()];
    assert!(form.contains("Plan a rollback to version 1"), "{form}");
    let action = attr_after(&page.body[at..], r#"action=""#);
    assert_eq!(action, "/new/web-app/plan");
    let hidden = hidden_inputs(form);
    let fields: Vec<(&str, &str)> = hidden.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let plan = d.post(&action, &fields).await;
    assert_eq!(plan.status, StatusCode::OK, "{plan:?}");
    let apply: Vec<(String, String)> = hidden_inputs(&plan.body);
    assert!(apply.iter().any(|(k, v)| k == "params" && v.contains(r#""app_version":"1""#)), "{apply:?}");
    let fields: Vec<(&str, &str)> = apply.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let started = d.post("/runs", &fields).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{started:?}");
    let run = started.headers[header::LOCATION].to_str().unwrap().to_string();
    assert_eq!(d.wait_run(&run).await, "complete");
    let page = d.get("/stacks/shop").await;
    let releases = &page.body[page.body.find(r#"id="releases""#).unwrap()..];
    assert!(releases.contains("2 → 1"), "the rollback is not a release back to 1:\n{releases}");
}
