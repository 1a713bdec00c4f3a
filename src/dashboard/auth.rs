//! Access control: the token (Bearer header or the login URL), sessions with their CSRF token,
//! the Origin check on state-changing requests, and the security headers of every answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::config::random_hex;
use super::AppState;

/// Name of the session cookie.
pub(crate) const COOKIE: &str = "konstacks_session";
/// A session unused this long is forgotten.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most (the least recently used goes first).
const MAX_SESSIONS: usize = 256;
/// The largest form body read.
pub(crate) const MAX_FORM_BYTES: usize = 256 * 1024;

/// The sessions the login URL opened, in memory.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

struct Session {
    csrf: String,
    last_seen: Instant,
}

impl Sessions {
    /// A new session: its id and CSRF token.
    fn open(&self) -> Option<(String, String)> {
        let id = random_hex(32).ok()?;
        let csrf = random_hex(32).ok()?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, s| now.duration_since(s.last_seen) < SESSION_IDLE);
        while map.len() >= MAX_SESSIONS {
            let oldest = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(id.clone(), Session { csrf: csrf.clone(), last_seen: now });
        Some((id, csrf))
    }

    /// The CSRF token of a live session (refreshing it), by id, compared in constant time.
    fn touch(&self, id: &str) -> Option<String> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let key = map.keys().find(|k| ct_eq(k, id)).cloned()?;
        let s = map.get_mut(&key)?;
        if now.duration_since(s.last_seen) >= SESSION_IDLE {
            map.remove(&key);
            return None;
        }
        s.last_seen = now;
        Some(s.csrf.clone())
    }
}

/// How the request was let in, as handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    /// The session's CSRF token, to put in every form (empty for Bearer requests, which need none).
    pub(crate) csrf: String,
}

/// Constant-time equality of two strings (their lengths are not secret).
fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn unauthorized() -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        "401 Unauthorized: open the login URL `konstacks dashboard` printed, or send Authorization: Bearer <token>\n",
    )
        .into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn forbidden(why: &'static str) -> Response {
    (StatusCode::FORBIDDEN, why).into_response()
}

/// The query of `GET /login`.
#[derive(serde::Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    token: String,
}

/// `GET /login?token=T`: a valid token opens a session (HttpOnly, SameSite=Strict cookie) and
/// leads to the overview; anything else is 401.
pub(crate) async fn login(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    if !ct_eq(&q.token, app.config.token.expose()) {
        return unauthorized();
    }
    let Some((id, _)) = app.sessions.open() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no random bytes for a session\n").into_response();
    };
    let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// Whether the `Origin` header, when present, names this server (`http://` or `https://` and
/// the request's `Host`).
fn origin_ok(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let (Ok(origin), Some(host)) = (origin.to_str(), headers.get(header::HOST).and_then(|h| h.to_str().ok())) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// The `csrf` field of a form body.
fn csrf_field(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned())
}

/// Let in requests with the token or a live session; check Origin and CSRF on the others than
/// GET and HEAD.
pub(crate) async fn require(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/login" {
        return next.run(req).await;
    }
    let headers = req.headers();
    let by_bearer = bearer(headers).is_some_and(|t| ct_eq(t, app.config.token.expose()));
    let session_csrf = if by_bearer { None } else { session_id(headers).and_then(|id| app.sessions.touch(id)) };
    if !by_bearer && session_csrf.is_none() {
        return unauthorized();
    }
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if !safe && !origin_ok(headers) {
        return forbidden("403 Forbidden: the request comes from another site\n");
    }
    let mut req = req;
    if let (false, Some(expected)) = (safe, &session_csrf) {
        let (parts, body) = req.into_parts();
        let bytes: Bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "413 the form is too large\n").into_response(),
        };
        if !csrf_field(&bytes).is_some_and(|given| ct_eq(&given, expected)) {
            return forbidden("403 Forbidden: missing or wrong CSRF token; reload the page and try again\n");
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(Access { csrf: session_csrf.unwrap_or_default() });
    next.run(req).await
}

/// Security headers on every answer: no caching, no sniffing, no framing, no referrer sent to
/// other sites (the login URL carries the token), and a content policy allowing only inline
/// style and script. The referrer policy is `same-origin`, not `no-referrer`: under the latter
/// browsers send `Origin: null` with form posts, which the Origin check must refuse.
pub(crate) async fn headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_exact() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
        assert!(!ct_eq("", "a"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; konstacks_session=xyz; b=2"));
        assert_eq!(session_id(&h), Some("xyz"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer tok"));
        assert_eq!(bearer(&h), Some("tok"));
    }

    #[test]
    fn a_foreign_origin_is_refused_and_a_missing_one_is_not() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7070"));
        assert!(origin_ok(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:7070"));
        assert!(origin_ok(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!origin_ok(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!origin_ok(&h));
    }

    #[test]
    fn sessions_open_and_are_found_by_id() {
        let s = Sessions::default();
        let (id, csrf) = s.open().unwrap();
        assert_eq!(s.touch(&id), Some(csrf));
        assert_eq!(s.touch("nope"), None);
        assert_eq!(csrf_field(b"a=1&csrf=x%2By&b=2").as_deref(), Some("x+y"));
    }
}
