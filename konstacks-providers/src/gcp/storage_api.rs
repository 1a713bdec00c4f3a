//! Cloud Storage's JSON API (`storage/v1`), for buckets. Google's Rust crate manages buckets
//! over gRPC (storage v2) only; the JSON API is the one Google's discovery document describes,
//! so the fake can hold every request and answer to it. Requests carry the backend's
//! credentials (the same as every other client's) and never log them.

use google_cloud_auth::credentials::{CacheableResource, Credentials};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The default endpoint.
pub(crate) const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";

/// A failed call: the HTTP status (0 when none came back) and Google's error message.
#[derive(Debug, thiserror::Error)]
#[error("{method} {path}: HTTP {status}: {message}")]
pub(crate) struct StorageError {
    pub(crate) method: &'static str,
    pub(crate) path: String,
    pub(crate) status: u16,
    /// `error.errors[0].reason` when Google gave one (`conflict`, `notFound`).
    pub(crate) reason: String,
    pub(crate) message: String,
}

/// The JSON API client.
#[derive(Debug, Clone)]
pub(crate) struct StorageApi {
    http: reqwest::Client,
    creds: Credentials,
    endpoint: String,
}

impl StorageApi {
    /// A client for `endpoint` (default [`DEFAULT_ENDPOINT`]).
    pub(crate) fn new(endpoint: Option<String>, creds: Credentials) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(120))
            .build()?;
        let endpoint = endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()).trim_end_matches('/').to_string();
        Ok(Self { http, creds, endpoint })
    }

    /// Send `method path?query` with an optional JSON body; `Ok(None)` for an empty answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<T>, StorageError> {
        let fail = |status: u16, reason: &str, message: String| StorageError {
            method,
            path: path.to_string(),
            status,
            reason: reason.to_string(),
            message,
        };
        let url = format!("{}/storage/v1/{}", self.endpoint, path.trim_start_matches('/'));
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| fail(0, "", e.to_string()))?;
        let mut req = self.http.request(m, url).query(query);
        let headers = match self.creds.headers(http::Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => data,
            Ok(CacheableResource::NotModified) => http::HeaderMap::new(),
            Err(e) => return Err(fail(0, "credentials", format!("no credentials: {e}"))),
        };
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| fail(0, "", format!("request failed: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| fail(status, "", format!("answer unreadable: {e}")))?;
        if status >= 400 {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let message = v["error"]["message"].as_str().unwrap_or(text.as_str()).to_string();
            let reason = v["error"]["errors"][0]["reason"].as_str().unwrap_or_default().to_string();
            return Err(fail(status, &reason, message));
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| fail(status, "", format!("answer is not the expected JSON: {e}")))
    }
}
