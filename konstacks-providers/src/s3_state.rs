//! Shared state in an S3 bucket: AWS S3, DigitalOcean Spaces or any S3-compatible store that
//! honours conditional writes.
//!
//! Layout under `<prefix>/<stack>/`:
//! - `state.json`: the snapshot (same JSON as the local backend), replaced only with
//!   `If-Match: <etag this run loaded>` (or `If-None-Match: *` when there was none), so a run
//!   that lost a race never overwrites newer state;
//! - `journal/<snapshot serial>/<seq:020>.json`: one object per durable append, JSON lines of
//!   records, written with `If-None-Match: *` so two writers can never both own one sequence
//!   number; journals of another serial are leftovers of a crash between a snapshot write and
//!   the journal cleanup and are ignored on load;
//! - `lock.json`: the lock ([`LockInfo`]), created with `If-None-Match: *` and deleted with
//!   `If-Match: <etag>` only by the id it carries.
//!
//! This module owns the object layout and the mapping of S3 answers to [`StateError`]; the
//! state format and its parsing belong to `konstacks_core::state`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use konstacks_core::error::StateError;
use konstacks_core::state::{
    check_stack_name, parse_state, LockInfo, Record, StackState, StateBackend, UNREADABLE_LOCK,
};

/// How often `load` starts over when a journal object vanishes under it (a concurrent compaction).
const LOAD_ATTEMPTS: usize = 3;

/// Builds an [`S3Backend`] from an [`SdkConfig`] (region, credentials from the standard chain).
#[derive(Debug)]
pub struct S3BackendBuilder {
    config: aws_sdk_s3::config::Builder,
    bucket: String,
    prefix: String,
}

impl S3BackendBuilder {
    /// Key prefix under which every stack lives (default: none, stacks at the bucket root).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Send requests to this endpoint instead of AWS (an S3-compatible store, or moto).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.config = self.config.endpoint_url(url);
        self
    }

    /// Address buckets as `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`
    /// (needed by most S3-compatible stores and by moto).
    pub fn force_path_style(mut self, yes: bool) -> Self {
        self.config = self.config.force_path_style(yes);
        self
    }

    /// Use DigitalOcean Spaces in `region` (for example `fra1`): the endpoint
    /// `https://<region>.digitaloceanspaces.com` with path-style addressing.
    pub fn digitalocean_spaces(self, region: &str) -> Self {
        self.endpoint_url(format!("https://{region}.digitaloceanspaces.com")).force_path_style(true)
    }

    /// Add an SDK interceptor (tests use one to pick a moto account).
    pub fn interceptor(mut self, interceptor: aws_smithy_runtime_api::client::interceptors::SharedInterceptor) -> Self {
        self.config.push_interceptor(interceptor);
        self
    }

    /// The backend.
    pub fn build(self) -> S3Backend {
        S3Backend::from_client(Client::from_conf(self.config.build()), self.bucket, &self.prefix)
    }
}

/// What this process last saw of a stack: the snapshot it will compare-and-swap against, where
/// its journal goes, and results waiting for the next durable append.
#[derive(Debug, Clone, Default)]
struct Cursor {
    /// ETag of `state.json` as loaded or last written; `None`: there was no snapshot.
    etag: Option<String>,
    /// Serial of that snapshot: the journal directory.
    serial: u64,
    /// Next journal sequence number.
    next_seq: u64,
    /// Records handed to `append_buffered`, written with the next durable append.
    buffered: Vec<Record>,
}

/// State in an S3 bucket with conditional writes for locking and compare-and-swap. See the module
/// documentation for the object layout and `docs/state-s3.md` for configuration.
pub struct S3Backend {
    client: Client,
    bucket: String,
    prefix: String,
    cursors: Mutex<BTreeMap<String, Cursor>>,
}

impl std::fmt::Debug for S3Backend {
    // Only where state lives: the client's configuration is not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend").field("bucket", &self.bucket).field("prefix", &self.prefix).finish()
    }
}

/// A failed S3 call, classified.
enum Failure {
    /// 412 or 409 `ConditionalRequestConflict`: a conditional write lost.
    Precondition,
    /// 404: no such key.
    NotFound,
    /// Anything else, with the S3 code and message.
    Other(String),
}

fn classify<E>(e: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().unwrap_or_default();
    if status == Some(412) || code == "PreconditionFailed" || code == "ConditionalRequestConflict" {
        return Failure::Precondition;
    }
    if status == Some(404) || code == "NoSuchKey" || code == "NotFound" {
        return Failure::NotFound;
    }
    Failure::Other(match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    })
}

fn io(path: String, message: impl Into<String>) -> StateError {
    StateError::Io { path, source: std::io::Error::other(message.into()) }
}

fn age_of(modified: Option<&aws_sdk_s3::primitives::DateTime>) -> String {
    let Some(m) = modified else { return "unknown".into() };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let s = (now - m.secs()).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

fn unreadable_lock() -> LockInfo {
    LockInfo {
        id: UNREADABLE_LOCK.into(),
        holder: "unknown (lock object unreadable)".into(),
        operation: "unknown".into(),
        since: "unknown".into(),
    }
}

/// An object's bytes with its ETag and modification time.
/// `s3://bucket/prefix` as bucket and prefix.
pub fn parse_state_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("state URL `{}` must start with s3:// (s3://bucket/prefix)", url.escape_debug()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid {
        return Err(format!(
            "state URL `{}` names no valid bucket (3 to 63 characters of a-z, 0-9, '-' and '.')",
            url.escape_debug()
        ));
    }
    if prefix.chars().any(char::is_control) {
        return Err(format!("state URL `{}` has control characters in its prefix", url.escape_debug()));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

struct Fetched {
    bytes: Vec<u8>,
    etag: Option<String>,
    modified: Option<aws_sdk_s3::primitives::DateTime>,
}

impl S3Backend {
    /// A builder over `sdk` (region and credentials from the standard AWS chain) for `bucket`.
    pub fn builder(sdk: &SdkConfig, bucket: impl Into<String>) -> S3BackendBuilder {
        S3BackendBuilder {
            config: aws_sdk_s3::config::Builder::from(sdk),
            bucket: bucket.into(),
            prefix: String::new(),
        }
    }

    /// The backend a state URL names: `s3://bucket` or `s3://bucket/prefix`, with region and
    /// credentials from the standard AWS chain. An endpoint from the environment
    /// (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`: Spaces, another S3-compatible store, moto)
    /// is used with path-style addressing. The error says what is wrong with the URL.
    pub async fn from_url(url: &str) -> Result<Self, String> {
        let (bucket, prefix) = parse_state_url(url)?;
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let custom_endpoint =
            ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter().any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()));
        Ok(Self::builder(&sdk, bucket).prefix(prefix).force_path_style(custom_endpoint).build())
    }

    /// A backend over an existing client.
    pub fn from_client(client: Client, bucket: impl Into<String>, prefix: &str) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').to_string(),
            cursors: Mutex::new(BTreeMap::new()),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix (without surrounding slashes).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn dir(&self, stack: &str) -> String {
        if self.prefix.is_empty() {
            stack.to_string()
        } else {
            format!("{}/{stack}", self.prefix)
        }
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn journal_dir(&self, stack: &str, serial: u64) -> String {
        format!("{}/journal/{serial}/", self.dir(stack))
    }

    fn cursor(&self, stack: &str) -> Option<Cursor> {
        self.cursors.lock().unwrap_or_else(|p| p.into_inner()).get(stack).cloned()
    }

    fn with_cursor<T>(&self, stack: &str, f: impl FnOnce(&mut Cursor) -> T) -> T {
        let mut g = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        f(g.entry(stack.to_string()).or_default())
    }

    async fn get(&self, key: &str) -> Result<Option<Fetched>, StateError> {
        let resp = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(r) => r,
            Err(e) => {
                return match classify(&e) {
                    Failure::NotFound => Ok(None),
                    Failure::Precondition => Err(io(self.url(key), "S3 GetObject: precondition failed")),
                    Failure::Other(m) => Err(io(self.url(key), format!("S3 GetObject failed: {m}"))),
                }
            }
        };
        let etag = resp.e_tag().map(str::to_string);
        let modified = resp.last_modified().copied();
        let bytes = resp
            .body
            .collect()
            .await
            .map_err(|e| io(self.url(key), format!("reading the S3 object failed: {e}")))?
            .into_bytes()
            .to_vec();
        Ok(Some(Fetched { bytes, etag, modified }))
    }

    /// Every key under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| match classify(&e) {
                    Failure::Other(m) => io(self.url(prefix), format!("S3 ListObjectsV2 failed: {m}")),
                    _ => io(self.url(prefix), "S3 ListObjectsV2 failed"),
                })?;
            keys.extend(resp.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// One attempt at a consistent load. `Ok(None)`: a journal object vanished while reading
    /// (a compaction ran meanwhile); start over.
    async fn load_once(&self, stack: &str) -> Result<Option<(StackState, Cursor)>, StateError> {
        let dir = self.dir(stack);
        let snap = self.get(&format!("{dir}/state.json")).await?;
        let mut state = parse_state(stack, snap.as_ref().map(|f| f.bytes.as_slice()), None, &self.url(&dir))?;
        let serial = state.serial;
        let mut next_seq = 0;
        for key in self.list(&self.journal_dir(stack, serial)).await? {
            let Some(obj) = self.get(&key).await? else { return Ok(None) };
            let text = String::from_utf8_lossy(&obj.bytes);
            // S3 writes whole objects, so unlike a local file there is no torn tail to forgive:
            // every line of every object must parse.
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let rec: Record = serde_json::from_str(line).map_err(|e| StateError::Corrupt {
                    stack: stack.into(),
                    location: format!("{} line {}", self.url(&key), i + 1),
                    reason: e.to_string(),
                })?;
                state.apply_owned(rec);
            }
            let seq = key.rsplit('/').next().and_then(|n| n.strip_suffix(".json")).and_then(|n| n.parse::<u64>().ok());
            if let Some(seq) = seq {
                next_seq = next_seq.max(seq + 1);
            }
        }
        let cursor = Cursor { etag: snap.and_then(|f| f.etag), serial, next_seq, buffered: Vec::new() };
        Ok(Some((state, cursor)))
    }

    /// Make sure this process knows where the stack's journal goes (loads it if not).
    async fn ensure_cursor(&self, stack: &str) -> Result<(), StateError> {
        if self.cursor(stack).is_none() {
            self.load(stack).await?;
        }
        Ok(())
    }

    async fn write_journal(&self, stack: &str, records: Vec<Record>) -> Result<(), StateError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut body = Vec::with_capacity(records.len() * 256);
        for r in &records {
            serde_json::to_writer(&mut body, r).map_err(|e| io(self.url(&self.dir(stack)), e.to_string()))?;
            body.push(b'\n');
        }
        // Reserve the sequence number before the call so concurrent appends of this process
        // never collide with each other; a gap left by a failed write is harmless.
        let (serial, seq) = self.with_cursor(stack, |c| {
            let seq = c.next_seq;
            c.next_seq += 1;
            (c.serial, seq)
        });
        let key = format!("{}{seq:020}.json", self.journal_dir(stack, serial));
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .if_none_match("*")
            .content_type("application/x-ndjson")
            .body(ByteStream::from(body))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) => Err(match classify(&e) {
                Failure::Precondition => io(
                    self.url(&key),
                    "another run is writing this stack's state (it wrote this journal entry first); this run \
                     stopped recording. Check `konstacks state`/the lock before running again",
                ),
                Failure::NotFound => io(self.url(&key), "S3 PutObject failed: bucket not found"),
                Failure::Other(m) => io(self.url(&key), format!("S3 PutObject failed: {m}")),
            }),
        }
    }

    /// Delete every journal object of the stack outside the directory of `keep_serial`.
    async fn delete_old_journals(&self, stack: &str, keep_serial: u64) {
        let all = format!("{}/journal/", self.dir(stack));
        let keep = self.journal_dir(stack, keep_serial);
        let keys = match self.list(&all).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "listing old journal objects failed; they are ignored on load");
                return;
            }
        };
        for key in keys.into_iter().filter(|k| !k.starts_with(&keep)) {
            if let Err(e) = self.client.delete_object().bucket(&self.bucket).key(&key).send().await {
                // Harmless: a journal of an older serial is never replayed.
                tracing::warn!(key = %key, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "deleting an old journal object failed");
            }
        }
    }

    fn parse_lock(bytes: &[u8]) -> LockInfo {
        serde_json::from_slice(bytes).unwrap_or_else(|_| unreadable_lock())
    }
}

#[async_trait::async_trait]
impl StateBackend for S3Backend {
    async fn load(&self, stack: &str) -> Result<StackState, StateError> {
        // A key is built from the name: refuse one that is not a stack name (`../x`, `a/b`).
        check_stack_name(stack)?;
        // Records buffered by this process belong to the state it reads.
        if self.cursor(stack).is_some_and(|c| !c.buffered.is_empty()) {
            self.append(stack, &[]).await?;
        }
        for _ in 0..LOAD_ATTEMPTS {
            if let Some((state, cursor)) = self.load_once(stack).await? {
                self.with_cursor(stack, |c| *c = cursor);
                return Ok(state);
            }
        }
        Err(io(
            self.url(&self.dir(stack)),
            "the stack's state kept changing while it was read (another run is compacting it); try again",
        ))
    }

    async fn append(&self, stack: &str, records: &[Record]) -> Result<(), StateError> {
        check_stack_name(stack)?;
        self.ensure_cursor(stack).await?;
        let mut all = self.with_cursor(stack, |c| std::mem::take(&mut c.buffered));
        all.extend_from_slice(records);
        self.write_journal(stack, all).await
    }

    async fn append_buffered(&self, stack: &str, records: &[Record]) -> Result<(), StateError> {
        check_stack_name(stack)?;
        // One object per durable append: buffered results ride along with the next one.
        self.ensure_cursor(stack).await?;
        self.with_cursor(stack, |c| c.buffered.extend_from_slice(records));
        Ok(())
    }

    async fn compact(&self, stack: &str, state: &StackState) -> Result<(), StateError> {
        check_stack_name(stack)?;
        self.ensure_cursor(stack).await?;
        let cur = self.cursor(stack).unwrap_or_default();
        let key = format!("{}/state.json", self.dir(stack));
        if state.serial <= cur.serial && cur.etag.is_some() {
            return Err(io(
                self.url(&key),
                format!(
                    "refusing to replace snapshot serial {} with serial {}: a new snapshot must have a higher serial",
                    cur.serial, state.serial
                ),
            ));
        }
        let body = serde_json::to_vec(state).map_err(|e| io(self.url(&key), e.to_string()))?;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        let req = match &cur.etag {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        let written = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(match classify(&e) {
                    Failure::Precondition | Failure::NotFound => io(
                        self.url(&key),
                        format!(
                            "the state snapshot changed since this run loaded it (serial {}): another run wrote \
                             newer state; nothing was overwritten. Load the state again (plan) before retrying",
                            cur.serial
                        ),
                    ),
                    Failure::Other(m) => io(self.url(&key), format!("S3 PutObject failed: {m}")),
                })
            }
        };
        let etag = written.e_tag().map(str::to_string);
        self.with_cursor(stack, |c| {
            *c = Cursor { etag: etag.clone(), serial: state.serial, next_seq: 0, buffered: Vec::new() };
        });
        self.delete_old_journals(stack, state.serial).await;
        Ok(())
    }

    async fn lock(&self, stack: &str, info: &LockInfo) -> Result<(), StateError> {
        check_stack_name(stack)?;
        let key = format!("{}/lock.json", self.dir(stack));
        let body = serde_json::to_vec_pretty(info).map_err(|e| io(self.url(&key), e.to_string()))?;
        // A lock released between our failed create and our read is retried, a few times.
        for _ in 0..3 {
            let put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .if_none_match("*")
                .content_type("application/json")
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(()),
                Err(e) => match classify(&e) {
                    Failure::Precondition => {}
                    Failure::NotFound => return Err(io(self.url(&key), "S3 PutObject failed: bucket not found")),
                    Failure::Other(m) => return Err(io(self.url(&key), format!("S3 PutObject failed: {m}"))),
                },
            }
            if let Some(held) = self.get(&key).await? {
                let h = Self::parse_lock(&held.bytes);
                return Err(StateError::Locked {
                    stack: stack.to_string(),
                    holder: format!("{} ({}, held for {})", h.holder, h.operation, age_of(held.modified.as_ref())),
                    since: h.since,
                    id: h.id,
                });
            }
        }
        Err(io(self.url(&key), "the lock kept changing hands while it was taken; try again"))
    }

    async fn unlock(&self, stack: &str, id: &str) -> Result<(), StateError> {
        self.force_unlock(stack, id).await.map(|_| ())
    }

    async fn force_unlock(&self, stack: &str, id: &str) -> Result<LockInfo, StateError> {
        check_stack_name(stack)?;
        let key = format!("{}/lock.json", self.dir(stack));
        let mismatch = |current: String| StateError::LockMismatch { stack: stack.into(), current, given: id.into() };
        let Some(held) = self.get(&key).await? else { return Err(mismatch("none".into())) };
        let h = Self::parse_lock(&held.bytes);
        if h.id != id {
            return Err(mismatch(h.id));
        }
        // Delete only the object we read: if the lock changed hands since, S3 refuses.
        let req = self.client.delete_object().bucket(&self.bucket).key(&key);
        let req = match &held.etag {
            Some(etag) => req.if_match(etag),
            None => req,
        };
        match req.send().await {
            Ok(_) => Ok(h),
            Err(e) => match classify(&e) {
                Failure::Precondition => {
                    let now = self.get(&key).await?.map(|f| Self::parse_lock(&f.bytes).id);
                    Err(mismatch(now.unwrap_or_else(|| "none".into())))
                }
                Failure::NotFound => Err(mismatch("none".into())),
                // Stores without conditional deletes: read-compare-delete. The window between
                // the read above and this delete is one round trip; a lock taken by another run
                // inside it would be removed.
                Failure::Other(m) if m.starts_with("NotImplemented") => {
                    self.client.delete_object().bucket(&self.bucket).key(&key).send().await.map_err(|e| {
                        io(
                            self.url(&key),
                            format!("S3 DeleteObject failed: {}", aws_sdk_s3::error::DisplayErrorContext(&e)),
                        )
                    })?;
                    Ok(h)
                }
                Failure::Other(m) => Err(io(self.url(&key), format!("S3 DeleteObject failed: {m}"))),
            },
        }
    }

    async fn current_lock(&self, stack: &str) -> Result<Option<LockInfo>, StateError> {
        check_stack_name(stack)?;
        let key = format!("{}/lock.json", self.dir(stack));
        Ok(self.get(&key).await?.map(|f| Self::parse_lock(&f.bytes)))
    }

    async fn stacks(&self) -> Result<Vec<String>, StateError> {
        let root = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&root)
                .delimiter("/")
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| match classify(&e) {
                    Failure::Other(m) => io(self.url(&root), format!("S3 ListObjectsV2 failed: {m}")),
                    _ => io(self.url(&root), "S3 ListObjectsV2 failed"),
                })?;
            out.extend(resp.common_prefixes().iter().filter_map(|p| {
                p.prefix().and_then(|p| p.strip_prefix(&root)).map(|s| s.trim_end_matches('/').to_string())
            }));
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod url_tests {
    use super::parse_state_url;

    #[test]
    fn state_urls_name_a_bucket_and_a_prefix() {
        assert_eq!(parse_state_url("s3://my-state"), Ok(("my-state".into(), String::new())));
        assert_eq!(parse_state_url("s3://my-state/teams/web/"), Ok(("my-state".into(), "teams/web".into())));
        assert!(parse_state_url("https://my-state").is_err());
        assert!(parse_state_url("s3://My_State/x").is_err());
        assert!(parse_state_url("s3://ab").is_err());
    }
}
