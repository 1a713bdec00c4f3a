//! The HTTP client: bearer authentication, JSON bodies, pagination, rate-limit pacing, retries
//! and the mapping of HTTP failures to [`ApiError`]. All waiting goes through the operation's
//! injected clock (`cx.clock`), never through a real sleep.
//!
//! It owns the token (kept in a [`Secret`], never logged or printed) and the last rate-limit
//! figures the API reported. It knows nothing of Konstacks resources: see the sibling modules.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::secret::Secret;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{ErrorBody, Links, Paged};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The public API endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.digitalocean.com";
/// Items per page asked for on list endpoints (the API's maximum).
pub const PER_PAGE: u32 = 200;
/// At or below this many remaining calls in the window, calls are spread until the reset.
const LOW_WATER: u64 = 10;
/// Pages followed at most on one listing (200 000 items): a guard against a looping API.
const MAX_PAGES: u32 = 1000;

/// How the client retries and paces itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Attempts per request on 429, on 5xx and on connection failures (the last two only for
    /// idempotent methods: a `POST` that failed that way is reported, not repeated).
    pub max_attempts: u32,
    /// First pause between attempts; doubled each time.
    pub first_backoff: Duration,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
    /// Longest wait for the rate-limit window to reset before a request.
    pub max_rate_wait: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_rate_wait: Duration::from_secs(60),
        }
    }
}

/// A failed API exchange. The request id DigitalOcean gave (`x-request-id`) is kept.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error status.
    #[error("{method} {path} answered HTTP {status} `{id}`: {message}{}", request_suffix(.request_id))]
    Status {
        /// HTTP method.
        method: String,
        /// Path (without query).
        path: String,
        /// HTTP status.
        status: u16,
        /// DigitalOcean's error id (`not_found`, ...).
        id: String,
        /// DigitalOcean's message.
        message: String,
        /// `x-request-id` (or the body's `request_id`).
        request_id: Option<String>,
    },
    /// A validating proxy (Prism with `--errors`) found that the request or the answer breaks
    /// DigitalOcean's OpenAPI description. Never retried.
    #[error("{method} {path}: the exchange breaks the API contract (HTTP {status}): {violations}")]
    ContractViolation {
        /// HTTP method.
        method: String,
        /// Path.
        path: String,
        /// Status the proxy answered.
        status: u16,
        /// The violations, as the proxy listed them.
        violations: String,
    },
    /// The request could not be sent or its answer not received.
    #[error("{method} {path}: {message}")]
    Transport {
        /// HTTP method.
        method: String,
        /// Path.
        path: String,
        /// What failed.
        message: String,
        /// The HTTP library's error.
        #[source]
        source: BoxError,
    },
    /// The answer is not the JSON the endpoint documents.
    #[error("{method} {path}: unexpected answer body: {message}{}", request_suffix(.request_id))]
    Decode {
        /// HTTP method.
        method: String,
        /// Path.
        path: String,
        /// The parser's complaint.
        message: String,
        /// `x-request-id`.
        request_id: Option<String>,
    },
    /// The caller cancelled the operation.
    #[error("{method} {path}: cancelled before it was sent")]
    Cancelled {
        /// HTTP method.
        method: String,
        /// Path.
        path: String,
    },
}

fn request_suffix(id: &Option<String>) -> String {
    id.as_ref().map(|id| format!(" (request id {id})")).unwrap_or_default()
}

impl ApiError {
    /// The HTTP status, when the API answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } | ApiError::ContractViolation { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The request id DigitalOcean gave, if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Status { request_id, .. } | ApiError::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// DigitalOcean's message, if the API answered with one.
    pub fn api_message(&self) -> Option<&str> {
        match self {
            ApiError::Status { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The portable kind: 404 not found, 422 invalid (or already exists when the message says
    /// so), 429 throttled, 5xx transient, 401/403 permission denied, 409/412 conflict.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApiError::Status { status, message, .. } => match *status {
                404 => ErrorKind::NotFound,
                422 if message.to_ascii_lowercase().contains("already") => ErrorKind::AlreadyExists,
                400 | 422 => ErrorKind::InvalidSpec,
                429 => ErrorKind::Throttled,
                401 | 403 => ErrorKind::PermissionDenied,
                409 | 412 => ErrorKind::Conflict,
                s if s >= 500 => ErrorKind::Transient,
                _ => ErrorKind::Other,
            },
            ApiError::Transport { .. } => ErrorKind::Transient,
            ApiError::Cancelled { .. } => ErrorKind::Cancelled,
            ApiError::ContractViolation { .. } | ApiError::Decode { .. } => ErrorKind::Other,
        }
    }

    /// Whether the API said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// A provider error saying that `what` failed, with a hint by kind; this error becomes its
    /// source.
    pub fn into_provider(self, what: impl std::fmt::Display) -> ProviderError {
        let kind = self.kind();
        let hint = match kind {
            ErrorKind::NotFound => "it does not exist (or is not visible to this token)",
            ErrorKind::AlreadyExists => "an object with that identity already exists",
            ErrorKind::InvalidSpec => "DigitalOcean rejected the request; fix the stack and plan again",
            ErrorKind::Throttled => "DigitalOcean's rate limit was hit; retry later",
            ErrorKind::Transient => "a temporary failure; the same call may succeed later",
            ErrorKind::PermissionDenied => {
                "the token lacks a permission; use a token with read and write scopes for this resource"
            }
            ErrorKind::Conflict => "it conflicts with the current state of the account",
            ErrorKind::Cancelled => "the operation was cancelled",
            _ => "unexpected answer; see the cause",
        };
        ProviderError::new(kind, format!("{what} failed: {hint}")).with_source(self)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct RateState {
    remaining: Option<u64>,
    reset: Option<u64>,
}

/// The typed DigitalOcean API client. Cheap to share; `Debug` never shows the token.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Secret<String>,
    retry: RetrySettings,
    rate: Mutex<RateState>,
    violations: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

fn header_string(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// The page number a `links.pages.next` URI asks for. Only the number is taken: the next page
/// is requested from the configured base URL, whatever host the API put in the link (a proxy in
/// between may have rewritten it).
pub(crate) fn next_page(links: Option<&Links>) -> Option<u32> {
    let next = links?.pages.as_ref()?.next.as_deref()?;
    let query = next.split_once('?')?.1;
    query.split('&').find_map(|kv| kv.strip_prefix("page=")).and_then(|n| n.parse().ok())
}

impl Client {
    /// A client for `base` (for example [`DEFAULT_BASE_URL`]) with `token`.
    pub fn new(base: &str, token: Secret<String>, retry: RetrySettings) -> Result<Self, BoxError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("konstacks/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            retry,
            rate: Mutex::new(RateState::default()),
            violations: Mutex::new(Vec::new()),
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Every contract violation a validating proxy reported so far (empty against the real API).
    pub fn contract_violations(&self) -> Vec<String> {
        lock(&self.violations).clone()
    }

    /// How long to wait before the next request so that the rate limit is not hit, and reserve
    /// one call of the remaining budget.
    fn rate_wait(&self, now_unix: u64) -> Duration {
        let mut s = lock(&self.rate);
        let (Some(rem), Some(reset)) = (s.remaining, s.reset) else {
            return Duration::ZERO;
        };
        let window = reset.saturating_sub(now_unix);
        let wait = if rem == 0 {
            Duration::from_secs(window.max(1))
        } else if rem <= LOW_WATER {
            Duration::from_millis(window.saturating_mul(1000) / rem)
        } else {
            Duration::ZERO
        };
        s.remaining = Some(rem.saturating_sub(1));
        wait.min(self.retry.max_rate_wait)
    }

    fn note_rate(&self, h: &HeaderMap) {
        let remaining = header_u64(h, "ratelimit-remaining");
        let reset = header_u64(h, "ratelimit-reset");
        if remaining.is_some() || reset.is_some() {
            let mut s = lock(&self.rate);
            if remaining.is_some() {
                s.remaining = remaining;
            }
            if reset.is_some() {
                s.reset = reset;
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(16)).unwrap_or(u32::MAX);
        self.retry.first_backoff.saturating_mul(factor).min(self.retry.max_backoff)
    }

    /// One exchange with retries. `Ok(None)` for an empty answer (204).
    async fn exchange<B: Serialize + ?Sized>(
        &self,
        cx: &OpContext,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, ApiError> {
        let idempotent = method != Method::POST;
        let m = method.as_str().to_string();
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if cx.is_cancelled() {
                return Err(ApiError::Cancelled { method: m, path: path.into() });
            }
            let wait = self.rate_wait(cx.clock.unix_secs());
            if !wait.is_zero() {
                tracing::debug!(wait_ms = wait.as_millis() as u64, "digitalocean: pacing below the rate limit");
                cx.clock.sleep(wait).await;
            }
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.token.expose())
                .header("accept", "application/json");
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let sent = req.send().await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    if idempotent && attempt < self.retry.max_attempts {
                        tracing::debug!(method = %m, path, attempt, "digitalocean: connection failed, retrying");
                        cx.clock.sleep(self.backoff(attempt)).await;
                        continue;
                    }
                    return Err(ApiError::Transport {
                        method: m,
                        path: path.into(),
                        message: "the request failed before an answer arrived".into(),
                        source: Box::new(e),
                    });
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            self.note_rate(&headers);
            let request_id = header_string(&headers, "x-request-id");
            let bytes = match resp.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    if idempotent && attempt < self.retry.max_attempts {
                        cx.clock.sleep(self.backoff(attempt)).await;
                        continue;
                    }
                    return Err(ApiError::Transport {
                        method: m,
                        path: path.into(),
                        message: "the answer could not be read".into(),
                        source: Box::new(e),
                    });
                }
            };
            tracing::debug!(method = %m, path, status, request_id = request_id.as_deref().unwrap_or(""), "digitalocean call");
            if let Some(v) = violations(&headers, &bytes) {
                lock(&self.violations).push(format!("{m} {path}: {v}"));
                return Err(ApiError::ContractViolation { method: m, path: path.into(), status, violations: v });
            }
            if (200..300).contains(&status) {
                return Ok(if bytes.is_empty() { None } else { Some((bytes, request_id)) });
            }
            let retry_after = header_u64(&headers, "retry-after");
            let retryable = status == 429 || (status >= 500 && idempotent);
            if retryable && attempt < self.retry.max_attempts {
                let mut pause = self.backoff(attempt);
                if status == 429 {
                    let now = cx.clock.unix_secs();
                    let until_reset = header_u64(&headers, "ratelimit-reset").map(|r| r.saturating_sub(now));
                    let hinted = retry_after.or(until_reset).unwrap_or(1).max(1);
                    pause = pause.max(Duration::from_secs(hinted)).min(self.retry.max_rate_wait);
                }
                tracing::debug!(method = %m, path, status, attempt, pause_ms = pause.as_millis() as u64, "digitalocean: retrying");
                cx.clock.sleep(pause).await;
                continue;
            }
            let err: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(ApiError::Status {
                method: m,
                path: path.into(),
                status,
                id: if err.id.is_empty() { "unknown".into() } else { err.id },
                message: if err.message.is_empty() { "(no message)".into() } else { err.message },
                request_id: request_id.or(err.request_id),
            });
        }
    }

    fn decode<T: DeserializeOwned>(
        method: &Method,
        path: &str,
        got: Option<(Vec<u8>, Option<String>)>,
    ) -> Result<T, ApiError> {
        let (bytes, request_id) = got.unwrap_or_default();
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode {
            method: method.as_str().into(),
            path: path.into(),
            message: e.to_string(),
            request_id,
        })
    }

    /// `GET path?query` answering `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        cx: &OpContext,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let got = self.exchange::<()>(cx, Method::GET, path, query, None).await?;
        Self::decode(&Method::GET, path, got)
    }

    /// A request with a JSON body answering `T`.
    pub async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        cx: &OpContext,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let got = self.exchange(cx, method.clone(), path, &[], Some(body)).await?;
        Self::decode(&method, path, got)
    }

    /// A request whose answer has no body (204); `body` is sent as JSON when given.
    pub async fn send_empty<B: Serialize + ?Sized>(
        &self,
        cx: &OpContext,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ApiError> {
        self.exchange(cx, method, path, &[], body).await.map(|_| ())
    }

    /// Every item of a paginated listing: `per_page` is the API's maximum and `links.pages.next`
    /// is followed until the last page.
    pub async fn list<L>(&self, cx: &OpContext, path: &str, query: &[(&str, String)]) -> Result<Vec<L::Item>, ApiError>
    where
        L: Paged + DeserializeOwned,
    {
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("page", page.to_string()));
            q.push(("per_page", PER_PAGE.to_string()));
            let answer: L = self.get(cx, path, &q).await?;
            let (items, links) = answer.into_parts();
            out.extend(items);
            match next_page(links.as_ref()) {
                Some(n) if n > page && n <= MAX_PAGES => page = n,
                _ => return Ok(out),
            }
        }
    }
}

/// Violations reported by a validating proxy: Prism's `sl-violations` header, or its
/// `application/problem+json` body listing `validation` errors.
fn violations(h: &HeaderMap, body: &[u8]) -> Option<String> {
    if let Some(v) = header_string(h, "sl-violations") {
        return Some(v);
    }
    let problem = h.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("problem+json"));
    if !problem {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Problem {
        #[serde(default, rename = "type")]
        kind: String,
        #[serde(default)]
        title: String,
        #[serde(default)]
        validation: Vec<ProblemItem>,
    }
    #[derive(serde::Deserialize)]
    struct ProblemItem {
        #[serde(default)]
        location: Vec<String>,
        #[serde(default)]
        message: String,
    }
    let p: Problem = serde_json::from_slice(body).ok()?;
    if !p.kind.contains("stoplight.io/prism") {
        return None;
    }
    if p.validation.is_empty() {
        return Some(format!("{} ({})", p.title, p.kind));
    }
    Some(p.validation.iter().map(|v| format!("{}: {}", v.location.join("."), v.message)).collect::<Vec<_>>().join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digitalocean::types::PageLinks;

    #[test]
    fn next_page_is_read_from_the_link() {
        let links = Links {
            pages: Some(PageLinks {
                next: Some("http://elsewhere:1/v2/tags?page=3&per_page=200".into()),
                ..PageLinks::default()
            }),
        };
        assert_eq!(next_page(Some(&links)), Some(3));
        assert_eq!(next_page(Some(&Links::default())), None);
        assert_eq!(next_page(None), None);
    }

    #[test]
    fn statuses_map_to_kinds() {
        let e = |status: u16, message: &str| ApiError::Status {
            method: "GET".into(),
            path: "/v2/x".into(),
            status,
            id: "x".into(),
            message: message.into(),
            request_id: Some("r-1".into()),
        };
        assert_eq!(e(404, "").kind(), ErrorKind::NotFound);
        assert_eq!(e(422, "bad").kind(), ErrorKind::InvalidSpec);
        assert_eq!(e(422, "name is already in use").kind(), ErrorKind::AlreadyExists);
        assert_eq!(e(429, "").kind(), ErrorKind::Throttled);
        assert_eq!(e(503, "").kind(), ErrorKind::Transient);
        assert_eq!(e(403, "").kind(), ErrorKind::PermissionDenied);
        assert_eq!(e(412, "").kind(), ErrorKind::Conflict);
        assert!(e(404, "gone").to_string().contains("request id r-1"));
        let p = e(404, "gone").into_provider("reading VPC `v`");
        assert_eq!(p.kind(), ErrorKind::NotFound);
        assert!(!p.message().contains("gone"), "Display must not repeat the source");
        assert!(p.full_chain().contains("r-1"));
    }

    #[test]
    fn token_is_not_debug_printed() {
        let c = Client::new("http://127.0.0.1:1", Secret::new("dop_v1_supersecret".into()), RetrySettings::default());
        assert!(c.is_ok_and(|c| !format!("{c:?}").contains("supersecret")));
    }

    #[test]
    fn pacing_spreads_the_last_calls_until_the_reset() {
        let Ok(c) = Client::new("http://127.0.0.1:1", Secret::new("t".into()), RetrySettings::default()) else {
            return;
        };
        assert_eq!(c.rate_wait(100), Duration::ZERO);
        *lock(&c.rate) = RateState { remaining: Some(5), reset: Some(110) };
        assert_eq!(c.rate_wait(100), Duration::from_secs(2));
        *lock(&c.rate) = RateState { remaining: Some(0), reset: Some(130) };
        assert_eq!(c.rate_wait(100), Duration::from_secs(30));
        *lock(&c.rate) = RateState { remaining: Some(4000), reset: Some(130) };
        assert_eq!(c.rate_wait(100), Duration::ZERO);
    }
}
