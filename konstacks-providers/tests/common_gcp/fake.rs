//! A stateful, in-process fake of the Compute Engine v1 and Cloud SQL Admin v1 REST endpoints the
//! GCP backend calls, served by axum on 127.0.0.1. It behaves like Google where it matters to
//! Konstacks: uint64 ids as decimal strings, long-running operations that go PENDING -> RUNNING ->
//! DONE over polls, 404/409/400/412 in Google's error envelope, dependency checks on delete,
//! fingerprints for optimistic locking, CIDR checks, `requestId` idempotency, pagination and
//! filters. Every request and every answer is checked against Google's discovery documents
//! (see [`super::discovery`]); problems are recorded as violations, never panics in the server.
//!
//! Simplifications: a change is applied when the call is answered (an instance is then
//! PROVISIONING and becomes RUNNING with its operation; a SQL instance PENDING_CREATE -> RUNNABLE),
//! deletions are immediate, Cloud SQL answers use enum names even when the client asked for
//! `enum-encoding=int` (its deserializer takes both), and ephemeral external IPs survive a stop.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::discovery::{Api, ApiName, CheckOpts, Discovery, Side};
use super::filter;

// One file per API beyond Compute Engine and Cloud SQL: each answers its methods from `World`.
mod certs;
mod dns;
mod lb;
mod redis;
mod storage;

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// The one project that exists (default `konstacks-test`).
    pub project: String,
    /// An operation is DONE on this GET/wait of it (default 2; 0 = DONE at once).
    pub polls_until_done: u32,
    /// Most items in one list page unless `maxResults` is smaller (default 3).
    pub page_size: usize,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions { project: "konstacks-test".into(), polls_until_done: 2, page_size: 3 }
    }
}

/// Kinds of resources the fake holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// compute#network
    Network,
    /// compute#subnetwork (any region)
    Subnetwork,
    /// compute#firewall
    Firewall,
    /// compute#instance (any zone)
    Instance,
    /// sql#instance
    SqlInstance,
    /// dns#managedZone
    ManagedZone,
    /// dns#resourceRecordSet (any zone; by name, the first match)
    RecordSet,
    /// A Memorystore for Redis instance (by its short id)
    RedisInstance,
    /// storage#bucket
    Bucket,
    /// compute#sslCertificate (global)
    SslCertificate,
}

/// How many resources of each kind exist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    /// Networks.
    pub networks: usize,
    /// Subnetworks.
    pub subnetworks: usize,
    /// Firewall rules.
    pub firewalls: usize,
    /// VM instances.
    pub instances: usize,
    /// Cloud SQL instances.
    pub sql_instances: usize,
    /// Cloud SQL users, built-in ones (`postgres`, `root`) included.
    pub sql_users: usize,
    /// Cloud DNS managed zones.
    pub managed_zones: usize,
    /// Cloud DNS record sets, the SOA and NS sets Cloud DNS creates with each zone included.
    pub record_sets: usize,
    /// Memorystore for Redis instances.
    pub redis_instances: usize,
    /// Cloud Storage buckets.
    pub buckets: usize,
    /// Compute Engine SSL certificates.
    pub ssl_certificates: usize,
    /// The pieces of load balancers (health checks, instance groups, backend services, URL maps,
    /// target proxies, SSL policies, global addresses, forwarding rules), all collections.
    pub lb_parts: usize,
}

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The discovery method id (`compute.instances.insert`), empty when none matched.
    pub method_id: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The JSON request body as received (`Null` when there was none or it was not JSON).
    pub body: Value,
}

const ZONES: &[(&str, &[&str])] = &[
    ("europe-west1", &["b", "c", "d"]),
    ("europe-west3", &["a", "b", "c"]),
    ("europe-west4", &["a", "b", "c"]),
    ("us-central1", &["a", "b", "c", "f"]),
    ("africa-south1", &["a", "b", "c"]),
    ("asia-southeast1", &["a", "b", "c"]),
];
const COMPUTE: &str = "https://www.googleapis.com/compute/v1";
const SQLADMIN: &str = "https://sqladmin.googleapis.com/v1";
/// 2026-01-01T00:00:00Z
const T0: u64 = 1_767_225_600;

#[derive(Debug, Clone)]
enum Effect {
    InstanceStatus { zone: String, name: String, status: &'static str },
    SqlState { name: String, state: &'static str },
}

#[derive(Debug, Clone, PartialEq)]
enum Scope {
    Global,
    Region(String),
    Zone(String),
    Sql(String),
}

#[derive(Debug, Clone)]
struct Op {
    v: Value,
    polls: u32,
    scope: Scope,
    on_running: Vec<Effect>,
    on_done: Vec<Effect>,
    error: Option<(String, String)>,
}

#[derive(Debug, Clone, Default)]
struct World {
    networks: BTreeMap<String, Value>,
    /// (region, name)
    subnets: BTreeMap<(String, String), Value>,
    firewalls: BTreeMap<String, Value>,
    /// (zone, name)
    instances: BTreeMap<(String, String), Value>,
    sql: BTreeMap<String, Value>,
    /// (instance, name, host)
    users: BTreeMap<(String, String, String), Value>,
    /// Cloud DNS managed zones, by name.
    managed_zones: BTreeMap<String, Value>,
    /// Cloud DNS record sets: (zone, DNS name with the final dot, type).
    rrsets: BTreeMap<(String, String, String), Value>,
    /// Cloud DNS changes: (zone, change id).
    dns_changes: BTreeMap<(String, String), Value>,
    /// Memorystore for Redis instances, by full name (`projects/p/locations/r/instances/i`).
    redis: BTreeMap<String, Value>,
    /// Cloud Storage buckets, by name.
    buckets: BTreeMap<String, Value>,
    /// Compute Engine SSL certificates (global), by name.
    ssl_certificates: BTreeMap<String, Value>,
    /// Load balancer pieces: (collection such as `backendServices`, scope `global` or a zone,
    /// name).
    lb: BTreeMap<(String, String, String), Value>,
}

#[derive(Debug, Default)]
struct St {
    seq: u64,
    clock: u64,
    world: World,
    ops: BTreeMap<String, Op>,
    request_ids: BTreeMap<String, String>,
    fail_next: BTreeMap<String, VecDeque<(u16, String, String)>>,
    fail_op_next: BTreeMap<String, VecDeque<(String, String)>>,
    /// When set, `backendServices.getHealth` reports only these instances (by name) as healthy.
    healthy_only: Option<std::collections::BTreeSet<String>>,
    violations: Vec<String>,
    log: Vec<RequestLog>,
}

struct Shared {
    opts: FakeOptions,
    disc: Arc<Discovery>,
    st: Mutex<St>,
}

/// A handle on a running fake; clones share it.
#[derive(Clone)]
pub struct GcpFake {
    sh: Arc<Shared>,
    addr: SocketAddr,
}

fn discovery() -> Arc<Discovery> {
    static D: OnceLock<Arc<Discovery>> = OnceLock::new();
    D.get_or_init(|| Arc::new(Discovery::from_env())).clone()
}

impl GcpFake {
    fn shared(opts: FakeOptions) -> Arc<Shared> {
        Arc::new(Shared { opts, disc: discovery(), st: Mutex::new(St::default()) })
    }

    fn app(sh: Arc<Shared>) -> axum::Router {
        axum::Router::new().fallback(handle).with_state(sh)
    }

    /// Serve on a free loopback port from the current tokio runtime.
    pub async fn start(opts: FakeOptions) -> GcpFake {
        let sh = GcpFake::shared(opts);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind the GCP fake");
        let addr = listener.local_addr().expect("local addr");
        let app = GcpFake::app(sh.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        GcpFake { sh, addr }
    }

    /// Serve on a free loopback port from a thread and runtime of its own, so the fake outlives
    /// the runtime of any one test.
    pub fn start_blocking(opts: FakeOptions) -> GcpFake {
        let sh = GcpFake::shared(opts);
        let (tx, rx) = std::sync::mpsc::channel();
        let app = GcpFake::app(sh.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("fake runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind the GCP fake");
                tx.send(listener.local_addr().expect("local addr")).expect("report address");
                let _ = axum::serve(listener, app).await;
            });
        });
        let addr = rx.recv().expect("GCP fake started");
        GcpFake { sh, addr }
    }

    fn lock(&self) -> MutexGuard<'_, St> {
        self.sh.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:PORT`, the endpoint of both clients.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The project that exists.
    pub fn project(&self) -> String {
        self.sh.opts.project.clone()
    }

    /// Revisions of the discovery documents in use (compute, sqladmin).
    pub fn discovery_revisions(&self) -> (String, String) {
        (self.sh.disc.compute.revision.clone(), self.sh.disc.sql.revision.clone())
    }

    /// Schema violations so far: `<METHOD id> request|response: <json path>: <problem>`.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Panic listing the violations, if any.
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "the GCP fake saw {} schema violation(s):\n  {}", v.len(), v.join("\n  "));
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.lock().log.clone()
    }

    /// Forget the requests answered so far.
    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    /// How many resources of each kind exist.
    pub fn inventory(&self) -> Inventory {
        let s = self.lock();
        let w = &s.world;
        Inventory {
            networks: w.networks.len(),
            subnetworks: w.subnets.len(),
            firewalls: w.firewalls.len(),
            instances: w.instances.len(),
            sql_instances: w.sql.len(),
            sql_users: w.users.len(),
            managed_zones: w.managed_zones.len(),
            record_sets: w.rrsets.len(),
            redis_instances: w.redis.len(),
            buckets: w.buckets.len(),
            ssl_certificates: w.ssl_certificates.len(),
            lb_parts: w.lb.len(),
        }
    }

    /// The resource of that kind and name (the first one, for regional and zonal kinds).
    pub fn resource(&self, kind: Kind, name: &str) -> Option<Value> {
        let mut s = self.lock();
        find_mut(&mut s.world, kind, name).map(|v| v.clone())
    }

    /// Names of the resources of that kind, sorted (regional and zonal kinds across all scopes).
    pub fn names(&self, kind: Kind) -> Vec<String> {
        let s = self.lock();
        let w = &s.world;
        let mut out: Vec<String> = match kind {
            Kind::Network => w.networks.keys().cloned().collect(),
            Kind::Firewall => w.firewalls.keys().cloned().collect(),
            Kind::SqlInstance => w.sql.keys().cloned().collect(),
            Kind::Subnetwork => w.subnets.keys().map(|(_, n)| n.clone()).collect(),
            Kind::Instance => w.instances.keys().map(|(_, n)| n.clone()).collect(),
            Kind::ManagedZone => w.managed_zones.keys().cloned().collect(),
            Kind::RecordSet => w.rrsets.keys().map(|(_, n, _)| n.clone()).collect(),
            Kind::RedisInstance => w.redis.keys().map(|n| n.rsplit('/').next().unwrap_or(n).to_string()).collect(),
            Kind::Bucket => w.buckets.keys().cloned().collect(),
            Kind::SslCertificate => w.ssl_certificates.keys().cloned().collect(),
        };
        out.sort();
        out
    }

    /// Change a resource out of band (drift); fingerprints follow label, tag and metadata changes.
    pub fn mutate(&self, kind: Kind, name: &str, f: impl FnOnce(&mut Value)) {
        let mut s = self.lock();
        let fps: Vec<String> = (0..4).map(|_| s.fingerprint()).collect();
        let Some(v) = find_mut(&mut s.world, kind, name) else {
            panic!("mutate: no {kind:?} named {name}");
        };
        let before = v.clone();
        f(v);
        if kind == Kind::Instance {
            if before.get("labels") != v.get("labels") {
                v["labelFingerprint"] = json!(fps[0]);
            }
            if before["tags"].get("items") != v["tags"].get("items") {
                v["tags"]["fingerprint"] = json!(fps[1]);
            }
            if before["metadata"].get("items") != v["metadata"].get("items") {
                v["metadata"]["fingerprint"] = json!(fps[2]);
            }
        }
        if before != *v && v.get("fingerprint").is_some() {
            v["fingerprint"] = json!(fps[3]);
        }
    }

    /// The next call of `method_id` answers this Google error.
    pub fn fail_next(&self, method_id: &str, status: u16, reason: &str, message: &str) {
        self.lock().fail_next.entry(method_id.to_string()).or_default().push_back((
            status,
            reason.to_string(),
            message.to_string(),
        ));
    }

    /// Make `backendServices.getHealth` report only these instances (by name) `HEALTHY`, the
    /// others `UNHEALTHY` whatever their status (an app that never answers its health check);
    /// `None` goes back to `RUNNING` = `HEALTHY`.
    pub fn set_healthy_only(&self, names: Option<std::collections::BTreeSet<String>>) {
        self.lock().healthy_only = names;
    }

    /// The load balancer piece of collection `coll` (`backendServices`, `instanceGroups`, ...) named
    /// `name`, in any scope; for `instanceGroups#members`, the member links of the group.
    pub fn lb_part(&self, coll: &str, name: &str) -> Option<Value> {
        let s = self.lock();
        s.world.lb.iter().find(|((c, _, n), _)| c == coll && n == name).map(|(_, v)| v.clone())
    }

    /// Every load balancer piece of collection `coll`, in every scope, by (scope, name).
    pub fn lb_all(&self, coll: &str) -> Vec<Value> {
        let s = self.lock();
        s.world.lb.iter().filter(|((c, _, _), _)| c == coll).map(|(_, v)| v.clone()).collect()
    }

    /// Names of the load balancer pieces of collection `coll`, sorted, across scopes.
    pub fn lb_names(&self, coll: &str) -> Vec<String> {
        let s = self.lock();
        let mut out: Vec<String> = s.world.lb.keys().filter(|(c, _, _)| c == coll).map(|(_, _, n)| n.clone()).collect();
        out.sort();
        out
    }

    /// The next call of `method_id` returns an operation that ends DONE with this error code
    /// (e.g. `QUOTA_EXCEEDED`) and changes nothing.
    pub fn fail_operation_next(&self, method_id: &str, code: &str, message: &str) {
        self.lock()
            .fail_op_next
            .entry(method_id.to_string())
            .or_default()
            .push_back((code.to_string(), message.to_string()));
    }
}

fn find_mut<'a>(w: &'a mut World, kind: Kind, name: &str) -> Option<&'a mut Value> {
    match kind {
        Kind::Network => w.networks.get_mut(name),
        Kind::Firewall => w.firewalls.get_mut(name),
        Kind::SqlInstance => w.sql.get_mut(name),
        Kind::Subnetwork => w.subnets.iter_mut().find(|((_, n), _)| n == name).map(|(_, v)| v),
        Kind::Instance => w.instances.iter_mut().find(|((_, n), _)| n == name).map(|(_, v)| v),
        Kind::ManagedZone => w.managed_zones.get_mut(name),
        Kind::RecordSet => w.rrsets.iter_mut().find(|((_, n, _), _)| n == name).map(|(_, v)| v),
        Kind::RedisInstance => w.redis.iter_mut().find(|(n, _)| n.ends_with(&format!("/{name}"))).map(|(_, v)| v),
        Kind::Bucket => w.buckets.get_mut(name),
        Kind::SslCertificate => w.ssl_certificates.get_mut(name),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug)]
struct ApiErr {
    status: u16,
    reason: String,
    message: String,
}

type Res = Result<Value, ApiErr>;

fn err(status: u16, reason: &str, message: impl Into<String>) -> ApiErr {
    ApiErr { status, reason: reason.to_string(), message: message.into() }
}

fn invalid(message: impl Into<String>) -> ApiErr {
    err(400, "invalid", message)
}

fn not_found(resource: &str) -> ApiErr {
    err(404, "notFound", format!("The resource '{resource}' was not found"))
}

fn sql_not_found() -> ApiErr {
    err(404, "instanceDoesNotExist", "The Cloud SQL instance does not exist.")
}

fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}

/// Compute Engine's, Cloud DNS's and Cloud Storage's errors carry no `status`; Cloud SQL's and
/// Memorystore's (OnePlatform APIs) do.
fn envelope(e: &ApiErr, api: ApiName) -> Value {
    let mut inner = json!({
        "code": e.status,
        "message": e.message,
        "errors": [{"message": e.message, "domain": "global", "reason": e.reason}],
    });
    if matches!(api, ApiName::SqlAdmin | ApiName::Redis) {
        inner["status"] = json!(status_name(e.status));
    }
    json!({ "error": inner })
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// URL-safe base64 with padding: the alphabet the Rust compute client decodes `format: byte` with.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn civil(secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !n.ends_with('-')
}

fn parse_cidr(s: &str) -> Option<(u32, u8)> {
    let (a, p) = s.split_once('/')?;
    let ip: Ipv4Addr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    if p > 32 {
        return None;
    }
    let n = u32::from(ip);
    (n & mask(p) == n).then_some((n, p))
}

fn mask(p: u8) -> u32 {
    if p == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(p))
    }
}

fn overlaps(a: (u32, u8), b: (u32, u8)) -> bool {
    let m = mask(a.1.min(b.1));
    a.0 & m == b.0 & m
}

/// The segment after `/<key>/` in a full or partial resource URL.
fn seg_after(url: &str, key: &str) -> Option<String> {
    let mut it = url.split('/');
    while let Some(s) = it.next() {
        if s == key {
            return it.next().filter(|n| !n.is_empty()).map(str::to_string);
        }
    }
    None
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn region_of_zone(zone: &str) -> Option<&'static str> {
    ZONES
        .iter()
        .find(|(r, zs)| zone.strip_prefix(r).and_then(|x| x.strip_prefix('-')).is_some_and(|z| zs.contains(&z)))
        .map(|(r, _)| *r)
}

fn known_region(region: &str) -> bool {
    ZONES.iter().any(|(r, _)| *r == region)
}

fn zones_of(region: &str) -> Vec<String> {
    ZONES.iter().filter(|(r, _)| *r == region).flat_map(|(r, zs)| zs.iter().map(move |z| format!("{r}-{z}"))).collect()
}

/// Copy `body`'s fields into a new resource, minus the ones the server owns.
fn from_body(body: &Value, output_only: &[&str]) -> Map<String, Value> {
    let mut m = body.as_object().cloned().unwrap_or_default();
    for k in ["kind", "id", "selfLink", "selfLinkWithId", "creationTimestamp"].iter().chain(output_only) {
        m.remove(*k);
    }
    m
}

/// Deep merge (objects merge, everything else replaces, null removes).
fn merge(into: &mut Value, patch: &Value) {
    match (into.as_object_mut(), patch.as_object()) {
        (Some(dst), Some(src)) => {
            for (k, v) in src {
                if v.is_null() {
                    dst.remove(k);
                } else if let Some(d) = dst.get_mut(k) {
                    if d.is_object() && v.is_object() {
                        merge(d, v);
                    } else {
                        *d = v.clone();
                    }
                } else {
                    dst.insert(k.clone(), v.clone());
                }
            }
        }
        _ => *into = patch.clone(),
    }
}

fn page_token(offset: usize) -> String {
    b64(format!("konstacks-fake-page:{offset}").as_bytes())
}

fn parse_page_token(t: &str) -> Option<usize> {
    (0..10_000).find(|o| page_token(*o) == t)
}

// ---------------------------------------------------------------------------------------------
// State

impl St {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        T0 + self.clock
    }

    /// `2026-01-01T00:00:05.000-08:00`, the shape of Compute Engine timestamps.
    fn compute_time(&mut self) -> String {
        let t = self.tick() - 8 * 3600;
        let (y, mo, d, h, mi, se) = civil(t);
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}.{:03}-08:00", self.clock % 1000)
    }

    /// `2026-01-01T08:00:05.123Z`, the shape of Cloud SQL timestamps.
    fn sql_time(&mut self) -> String {
        let t = self.tick();
        let (y, mo, d, h, mi, se) = civil(t);
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}.{:03}Z", self.clock % 1000)
    }

    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Monotonic, decimal, random-looking, deterministic.
    fn id(&mut self) -> String {
        let n = self.next();
        (3_000_000_000_000_000_000u64 + n * 1_000_000_000_000_007 + mix(n) % 1_000_000_000_000).to_string()
    }

    fn fingerprint(&mut self) -> String {
        let n = self.next();
        b64(&mix(n ^ 0xF1).to_be_bytes())
    }

    fn hex(&mut self, len: usize) -> String {
        let n = self.next();
        let h = format!("{:016x}{:016x}", mix(n), mix(n ^ 0xABCD));
        h[..len].to_string()
    }
}

struct Ctx<'a> {
    opts: &'a FakeOptions,
    method_id: &'a str,
    params: BTreeMap<String, String>,
    query: BTreeMap<String, String>,
    body: Value,
}

impl Ctx<'_> {
    fn p(&self, k: &str) -> String {
        self.params.get(k).cloned().unwrap_or_default()
    }

    fn base(&self) -> String {
        format!("{COMPUTE}/projects/{}", self.opts.project)
    }

    fn global_link(&self, coll: &str, name: &str) -> String {
        format!("{}/global/{coll}/{name}", self.base())
    }

    fn region_link(&self, region: &str) -> String {
        format!("{}/regions/{region}", self.base())
    }

    fn zone_link(&self, zone: &str) -> String {
        format!("{}/zones/{zone}", self.base())
    }
}

// ---------------------------------------------------------------------------------------------
// The server

async fn handle(State(sh): State<Arc<Shared>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let (status, value) = answer(&sh, method.as_str(), &uri, &body);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(value)).into_response()
}

fn parse_query(uri: &Uri) -> (BTreeMap<String, String>, Vec<String>) {
    let mut map = BTreeMap::new();
    let mut keys = Vec::new();
    for kv in uri.query().unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let k = super::discovery::pct_decode(&k.replace('+', " "));
        let v = super::discovery::pct_decode(&v.replace('+', " "));
        keys.push(k.clone());
        map.insert(k, v);
    }
    (map, keys)
}

fn answer(sh: &Shared, method: &str, uri: &Uri, raw: &[u8]) -> (u16, Value) {
    let path = uri.path().to_string();
    let (query, keys) = parse_query(uri);
    let mut st = sh.st.lock().unwrap_or_else(|p| p.into_inner());
    let mut log = RequestLog {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().unwrap_or("").to_string(),
        method_id: String::new(),
        status: 0,
        body: serde_json::from_slice(raw).unwrap_or(Value::Null),
    };
    let Some((api, m, params)) = sh.disc.route(method, &path) else {
        let (api, _) = sh.disc.api_for(&path);
        st.violations.push(format!("{method} {path} request: no such method in the {:?} discovery document", api.name));
        let e = err(404, "notFound", format!("The requested URL {path} was not found on this server."));
        log.status = 404;
        st.log.push(log);
        return (404, envelope(&e, api.name));
    };
    log.method_id = m.id.clone();
    let who = format!("{method} {}", m.id);
    let int_enums = query.get("$alt").is_some_and(|a| a.contains("enum-encoding=int"));
    let mut violations = Vec::new();
    for k in &keys {
        if !api.accepts_query(m, k) {
            violations.push(format!("{who} request: query parameter {k:?} is not one of the method's"));
        }
    }
    let mut body = Value::Null;
    let mut bad_json = None;
    if !raw.is_empty() {
        match serde_json::from_slice::<Value>(raw) {
            Ok(v) => body = v,
            Err(e) => bad_json = Some(e.to_string()),
        }
    }
    if let Some(e) = &bad_json {
        violations.push(format!("{who} request: body is not JSON: {e}"));
    } else {
        match (&m.request, &body) {
            (Some(schema), Value::Null) => violations.push(format!("{who} request: missing the {schema} body")),
            (Some(schema), b) => {
                for p in api.check(schema, b, CheckOpts { side: Side::Request, int_enums }) {
                    violations.push(format!("{who} request: {p}"));
                }
            }
            (None, Value::Null) => {}
            (None, Value::Object(o)) if o.is_empty() => {}
            (None, _) => violations.push(format!("{who} request: the method takes no body")),
        }
    }
    if api.name == ApiName::SqlAdmin && int_enums {
        normalize_sql_enums(m.id.as_str(), &mut body);
    }
    let result = if let Some(e) = bad_json {
        Err(invalid(format!("Invalid JSON payload received. {e}")))
    } else if let Some((status, reason, message)) = st.fail_next.get_mut(&m.id).and_then(VecDeque::pop_front) {
        Err(err(status, &reason, message))
    } else {
        let ctx = Ctx { opts: &sh.opts, method_id: &m.id, params, query, body };
        run(&mut st, &ctx)
    };
    let (status, value) = match result {
        Ok(v) => (200, v),
        Err(e) => (e.status, envelope(&e, api.name)),
    };
    let problems = if status >= 400 {
        Api::check_error(&value, status)
    } else if let Some(schema) = &m.response {
        api.check(schema, &value, CheckOpts { side: Side::Response, int_enums })
    } else {
        Vec::new()
    };
    violations.extend(problems.into_iter().map(|p| format!("{who} response: {p}")));
    st.violations.extend(violations);
    log.status = status;
    st.log.push(log);
    (status, value)
}

/// The Cloud SQL client sends enums as their proto numbers (`$alt=json;enum-encoding=int`); turn
/// the ones the fake reasons about back into names.
fn normalize_sql_enums(method_id: &str, body: &mut Value) {
    use google_cloud_sql_v1::model as m;
    fn fix<E: From<i32>>(v: Option<&mut Value>, name: impl Fn(&E) -> Option<String>) {
        if let Some(v) = v {
            if let Some(n) = v.as_i64().and_then(|n| i32::try_from(n).ok()) {
                if let Some(s) = name(&E::from(n)) {
                    *v = json!(s);
                }
            }
        }
    }
    fn at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
        path.iter().try_fold(v, |cur, k| cur.get_mut(*k))
    }
    if method_id.starts_with("sql.users.") {
        fix::<m::user::SqlUserType>(at(body, &["type"]), |e| e.name().map(str::to_string));
        return;
    }
    fix::<m::SqlDatabaseVersion>(at(body, &["databaseVersion"]), |e| e.name().map(str::to_string));
    fix::<m::SqlBackendType>(at(body, &["backendType"]), |e| e.name().map(str::to_string));
    fix::<m::SqlInstanceType>(at(body, &["instanceType"]), |e| e.name().map(str::to_string));
    fix::<m::database_instance::SqlInstanceState>(at(body, &["state"]), |e| e.name().map(str::to_string));
    let st = ["settings"];
    fix::<m::SqlAvailabilityType>(at(body, &[st[0], "availabilityType"]), |e| e.name().map(str::to_string));
    fix::<m::SqlPricingPlan>(at(body, &[st[0], "pricingPlan"]), |e| e.name().map(str::to_string));
    fix::<m::SqlReplicationType>(at(body, &[st[0], "replicationType"]), |e| e.name().map(str::to_string));
    fix::<m::SqlDataDiskType>(at(body, &[st[0], "dataDiskType"]), |e| e.name().map(str::to_string));
    fix::<m::settings::SqlActivationPolicy>(at(body, &[st[0], "activationPolicy"]), |e| e.name().map(str::to_string));
    fix::<m::settings::Edition>(at(body, &[st[0], "edition"]), |e| e.name().map(str::to_string));
    fix::<m::settings::ConnectorEnforcement>(at(body, &[st[0], "connectorEnforcement"]), |e| {
        e.name().map(str::to_string)
    });
    fix::<m::ip_configuration::SslMode>(at(body, &[st[0], "ipConfiguration", "sslMode"]), |e| {
        e.name().map(str::to_string)
    });
    fix::<m::backup_retention_settings::RetentionUnit>(
        at(body, &[st[0], "backupConfiguration", "backupRetentionSettings", "retentionUnit"]),
        |e| e.name().map(str::to_string),
    );
}

fn mutating(method_id: &str) -> bool {
    !(method_id.ends_with(".get")
        || method_id.ends_with(".list")
        || method_id.ends_with(".aggregatedList")
        || method_id.ends_with(".wait"))
}

fn run(st: &mut St, c: &Ctx) -> Res {
    // The project is a path parameter (`project`, or `projectsId` in Memorystore), or a query
    // parameter of Cloud Storage's bucket insert and list; a bucket's own methods name none.
    let project = c.params.get("project").or_else(|| c.params.get("projectsId")).or_else(|| c.query.get("project"));
    if let Some(project) = project.filter(|p| **p != c.opts.project) {
        return Err(not_found(&format!("projects/{project}")));
    }
    let is_compute = c.method_id.starts_with("compute.");
    // requestId: the same id answers the same operation and changes nothing again.
    let request_id = c.query.get("requestId").filter(|r| !r.is_empty()).cloned();
    if let Some(rid) = &request_id {
        if let Some(op) = st.request_ids.get(rid).and_then(|n| st.ops.get(n)) {
            return Ok(op.v.clone());
        }
    }
    let failing = mutating(c.method_id) && st.fail_op_next.get(c.method_id).is_some_and(|q| !q.is_empty());
    let backup = failing.then(|| st.world.clone());
    let out = dispatch(st, c)?;
    if let (Some(backup), Some(name)) = (backup, out.get("name").and_then(Value::as_str)) {
        if st.ops.contains_key(name) {
            st.world = backup;
            let failure = st.fail_op_next.get_mut(c.method_id).and_then(VecDeque::pop_front);
            if let Some(op) = st.ops.get_mut(name) {
                op.on_done.clear();
                op.on_running.clear();
                op.error = failure;
            }
        }
    }
    if let (Some(rid), true, Some(name)) = (request_id, is_compute, out.get("name").and_then(Value::as_str)) {
        st.request_ids.insert(rid, name.to_string());
    }
    Ok(out)
}

fn dispatch(st: &mut St, c: &Ctx) -> Res {
    match c.method_id {
        "compute.zones.list" => zones_list(st, c),
        "compute.zones.get" => {
            let z = c.p("zone");
            zones_all(c)
                .into_iter()
                .find(|v| s(v, "name") == z)
                .ok_or_else(|| not_found(&format!("projects/{}/zones/{z}", c.opts.project)))
        }
        "compute.globalOperations.get" | "compute.globalOperations.wait" => op_poll(st, c, Scope::Global),
        "compute.regionOperations.get" | "compute.regionOperations.wait" => {
            op_poll(st, c, Scope::Region(c.p("region")))
        }
        "compute.zoneOperations.get" | "compute.zoneOperations.wait" => op_poll(st, c, Scope::Zone(c.p("zone"))),
        "compute.networks.insert" => network_insert(st, c),
        "compute.networks.get" => network(st, c, &c.p("network")).cloned(),
        "compute.networks.list" => {
            let items = st.world.networks.values().cloned().collect();
            list(c, "compute#networkList", &format!("projects/{}/global/networks", c.opts.project), items)
        }
        "compute.networks.patch" => network_patch(st, c),
        "compute.networks.delete" => network_delete(st, c),
        "compute.subnetworks.insert" => subnet_insert(st, c),
        "compute.subnetworks.get" => subnet(st, c).cloned(),
        "compute.subnetworks.list" => {
            let r = region_ok(c)?;
            let items = st.world.subnets.iter().filter(|((rr, _), _)| *rr == r).map(|(_, v)| v.clone()).collect();
            list(c, "compute#subnetworkList", &format!("projects/{}/regions/{r}/subnetworks", c.opts.project), items)
        }
        "compute.subnetworks.aggregatedList" => {
            let items = st.world.subnets.iter().map(|((r, _), v)| (format!("regions/{r}"), v.clone())).collect();
            aggregated(c, "compute#subnetworkAggregatedList", "subnetworks", items)
        }
        "compute.subnetworks.patch" => subnet_patch(st, c),
        "compute.subnetworks.setPrivateIpGoogleAccess" => subnet_set_pga(st, c),
        "compute.subnetworks.delete" => subnet_delete(st, c),
        "compute.firewalls.insert" => firewall_insert(st, c),
        "compute.firewalls.get" => firewall(st, c).cloned(),
        "compute.firewalls.list" => {
            let items = st.world.firewalls.values().cloned().collect();
            list(c, "compute#firewallList", &format!("projects/{}/global/firewalls", c.opts.project), items)
        }
        "compute.firewalls.patch" | "compute.firewalls.update" => firewall_change(st, c),
        "compute.firewalls.delete" => {
            let name = c.p("firewall");
            let v = firewall(st, c)?.clone();
            st.world.firewalls.remove(&name);
            Ok(compute_op(st, c, Scope::Global, "delete", &s(&v, "selfLink"), &s(&v, "id"), vec![], vec![]))
        }
        "compute.instances.insert" => instance_insert(st, c),
        "compute.instances.get" => instance(st, c).cloned(),
        "compute.instances.list" => {
            let z = zone_ok(c)?;
            let items = st.world.instances.iter().filter(|((zz, _), _)| *zz == z).map(|(_, v)| v.clone()).collect();
            list(c, "compute#instanceList", &format!("projects/{}/zones/{z}/instances", c.opts.project), items)
        }
        "compute.instances.aggregatedList" => {
            let items = st.world.instances.iter().map(|((z, _), v)| (format!("zones/{z}"), v.clone())).collect();
            aggregated(c, "compute#instanceAggregatedList", "instances", items)
        }
        "compute.instances.delete" => instance_delete(st, c),
        "compute.instances.setLabels"
        | "compute.instances.setTags"
        | "compute.instances.setMetadata"
        | "compute.instances.setMachineType"
        | "compute.instances.stop"
        | "compute.instances.start" => instance_action(st, c),
        "sql.instances.insert" => sql_insert(st, c),
        "sql.instances.get" => st.world.sql.get(&c.p("instance")).cloned().ok_or_else(sql_not_found),
        "sql.instances.list" => sql_list(st, c),
        "sql.instances.patch" => sql_patch(st, c),
        "sql.instances.delete" => sql_delete(st, c),
        "sql.operations.get" => {
            let name = c.p("operation");
            match st.ops.get(&name) {
                Some(op) if matches!(op.scope, Scope::Sql(_)) => Ok(advance(st, c, &name)),
                _ => Err(err(404, "operationDoesNotExist", "The Cloud SQL operation does not exist.")),
            }
        }
        "sql.users.insert" => user_insert(st, c),
        "sql.users.list" => {
            let inst = c.p("instance");
            if !st.world.sql.contains_key(&inst) {
                return Err(sql_not_found());
            }
            let items: Vec<Value> =
                st.world.users.iter().filter(|((i, _, _), _)| *i == inst).map(|(_, v)| v.clone()).collect();
            Ok(json!({"kind": "sql#usersList", "items": items}))
        }
        "sql.users.update" | "sql.users.delete" => user_change(st, c),
        id if id.starts_with("compute.sslCertificates.") => certs::dispatch(st, c),
        id if lb::serves(id) => lb::dispatch(st, c),
        id if id.starts_with("dns.") => dns::dispatch(st, c),
        id if id.starts_with("redis.") => redis::dispatch(st, c),
        id if id.starts_with("storage.") => storage::dispatch(st, c),
        other => Err(err(501, "notImplemented", format!("The GCP fake does not implement {other}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Operations

#[allow(clippy::too_many_arguments)]
fn compute_op(
    st: &mut St,
    c: &Ctx,
    scope: Scope,
    op_type: &str,
    target_link: &str,
    target_id: &str,
    on_running: Vec<Effect>,
    on_done: Vec<Effect>,
) -> Value {
    let millis = (T0 + st.clock) * 1000 + st.clock % 1000;
    let name = format!("operation-{millis}-{}-{}-{}", st.hex(13), st.hex(8), st.hex(8));
    let id = st.id();
    let insert_time = st.compute_time();
    let (scope_key, scope_link, path) = match &scope {
        Scope::Global => (None, String::new(), format!("{}/global/operations/{name}", c.base())),
        Scope::Region(r) => (Some("region"), c.region_link(r), format!("{}/regions/{r}/operations/{name}", c.base())),
        Scope::Zone(z) => (Some("zone"), c.zone_link(z), format!("{}/zones/{z}/operations/{name}", c.base())),
        Scope::Sql(_) => (None, String::new(), String::new()),
    };
    let mut v = json!({
        "kind": "compute#operation",
        "id": id,
        "name": name,
        "operationType": op_type,
        "targetLink": target_link,
        "targetId": target_id,
        "status": "PENDING",
        "user": format!("konstacks@{}.iam.gserviceaccount.com", c.opts.project),
        "progress": 0,
        "insertTime": insert_time,
        "selfLink": path,
    });
    if let Some(k) = scope_key {
        v[k] = json!(scope_link);
    }
    st.ops.insert(name.clone(), Op { v, polls: 0, scope, on_running, on_done, error: None });
    if c.opts.polls_until_done == 0 {
        advance_to(st, &name, 0, true);
    }
    st.ops.get(&name).map(|o| o.v.clone()).unwrap_or(Value::Null)
}

fn sql_op(st: &mut St, c: &Ctx, instance: &str, op_type: &str, on_done: Vec<Effect>) -> Value {
    let name = format!("{}-{}-{}-{}-{}", st.hex(8), st.hex(4), st.hex(4), st.hex(4), st.hex(12));
    let insert_time = st.sql_time();
    let p = &c.opts.project;
    let v = json!({
        "kind": "sql#operation",
        "name": name,
        "status": "PENDING",
        "operationType": op_type,
        "targetId": instance,
        "targetLink": format!("{SQLADMIN}/projects/{p}/instances/{instance}"),
        "targetProject": p,
        "selfLink": format!("{SQLADMIN}/projects/{p}/operations/{name}"),
        "insertTime": insert_time,
        "user": format!("konstacks@{p}.iam.gserviceaccount.com"),
    });
    st.ops.insert(
        name.clone(),
        Op { v, polls: 0, scope: Scope::Sql(instance.to_string()), on_running: vec![], on_done, error: None },
    );
    if c.opts.polls_until_done == 0 {
        advance_to(st, &name, 0, true);
    }
    st.ops.get(&name).map(|o| o.v.clone()).unwrap_or(Value::Null)
}

fn op_poll(st: &mut St, c: &Ctx, scope: Scope) -> Res {
    let name = c.p("operation");
    match st.ops.get(&name) {
        Some(op) if op.scope == scope => Ok(advance(st, c, &name)),
        _ => {
            let place = match &scope {
                Scope::Global => "global".to_string(),
                Scope::Region(r) => format!("regions/{r}"),
                Scope::Zone(z) => format!("zones/{z}"),
                Scope::Sql(_) => String::new(),
            };
            Err(not_found(&format!("projects/{}/{place}/operations/{name}", c.opts.project)))
        }
    }
}

/// One poll; the operation is DONE on the `polls_until_done`th.
fn advance(st: &mut St, c: &Ctx, name: &str) -> Value {
    let Some(op) = st.ops.get_mut(name) else {
        return Value::Null;
    };
    if s(&op.v, "status") != "DONE" {
        op.polls += 1;
    }
    advance_to(st, name, c.opts.polls_until_done, false);
    st.ops.get(name).map(|o| o.v.clone()).unwrap_or(Value::Null)
}

fn advance_to(st: &mut St, name: &str, until: u32, force_done: bool) {
    let Some(op) = st.ops.get(name) else {
        return;
    };
    let status = s(&op.v, "status");
    if status == "DONE" {
        return;
    }
    let done = force_done || op.polls >= until.max(1);
    let sql = matches!(op.scope, Scope::Sql(_));
    let now = if sql { st.sql_time() } else { st.compute_time() };
    let Some(op) = st.ops.get_mut(name) else {
        return;
    };
    let mut effects = Vec::new();
    if status == "PENDING" {
        op.v["status"] = json!("RUNNING");
        op.v["startTime"] = json!(now);
        effects.append(&mut op.on_running);
    }
    if done {
        op.v["status"] = json!("DONE");
        op.v["endTime"] = json!(now);
        if !sql {
            op.v["progress"] = json!(100);
        }
        effects.append(&mut op.on_done);
        if let Some((code, message)) = op.error.clone() {
            if sql {
                op.v["error"] = json!({"kind": "sql#operationErrors", "errors": [{"kind": "sql#operationError", "code": code, "message": message}]});
            } else {
                let http = match code.as_str() {
                    "QUOTA_EXCEEDED" | "PERMISSION_DENIED" => 403,
                    "RESOURCE_NOT_FOUND" | "NOT_FOUND" => 404,
                    "ALREADY_EXISTS" | "RESOURCE_ALREADY_EXISTS" => 409,
                    "ZONE_RESOURCE_POOL_EXHAUSTED" | "RESOURCE_EXHAUSTED" => 503,
                    _ => 400,
                };
                op.v["error"] = json!({"errors": [{"code": code, "message": message}]});
                op.v["httpErrorStatusCode"] = json!(http);
                op.v["httpErrorMessage"] = json!(status_name(http).replace('_', " "));
            }
        }
    }
    for e in effects {
        apply(&mut st.world, e);
    }
}

fn apply(w: &mut World, e: Effect) {
    match e {
        Effect::InstanceStatus { zone, name, status } => {
            if let Some(v) = w.instances.get_mut(&(zone, name)) {
                v["status"] = json!(status);
            }
        }
        Effect::SqlState { name, state } => {
            if let Some(v) = w.sql.get_mut(&name) {
                v["state"] = json!(state);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lists

fn page_bounds(c: &Ctx, total: usize) -> Result<(usize, usize, Option<String>), ApiErr> {
    let mut size = c.opts.page_size.max(1);
    if let Some(m) = c.query.get("maxResults") {
        let m: usize = m.parse().map_err(|_| invalid(format!("Invalid value for field 'maxResults': '{m}'")))?;
        if m > 0 {
            size = size.min(m);
        }
    }
    let start = match c.query.get("pageToken").filter(|t| !t.is_empty()) {
        Some(t) => parse_page_token(t).ok_or_else(|| invalid(format!("Invalid value for field 'pageToken': '{t}'")))?,
        None => 0,
    };
    let end = (start + size).min(total);
    let next = (end < total).then(|| page_token(end));
    Ok((start.min(total), end, next))
}

fn apply_filter(c: &Ctx, items: Vec<Value>) -> Result<Vec<Value>, ApiErr> {
    match c.query.get("filter").filter(|f| !f.trim().is_empty()) {
        None => Ok(items),
        Some(f) => {
            let f = filter::parse(f).map_err(|e| invalid(format!("Invalid value for field 'filter': {e}")))?;
            Ok(items.into_iter().filter(|v| f.matches(v)).collect())
        }
    }
}

fn list(c: &Ctx, kind: &str, id: &str, items: Vec<Value>) -> Res {
    let items = apply_filter(c, items)?;
    let (a, b, next) = page_bounds(c, items.len())?;
    let mut v = json!({"kind": kind, "id": id, "selfLink": format!("{COMPUTE}/{id}")});
    if a < b {
        v["items"] = json!(items[a..b]);
    }
    if let Some(n) = next {
        v["nextPageToken"] = json!(n);
    }
    Ok(v)
}

fn aggregated(c: &Ctx, kind: &str, key: &str, items: Vec<(String, Value)>) -> Res {
    let keep = apply_filter(c, items.iter().map(|(_, v)| v.clone()).collect())?;
    let items: Vec<(String, Value)> = items.into_iter().filter(|(_, v)| keep.contains(v)).collect();
    let (a, b, next) = page_bounds(c, items.len())?;
    let mut scopes: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (scope, v) in &items[a..b] {
        scopes.entry(scope.clone()).or_default().push(v.clone());
    }
    let map: Map<String, Value> = scopes.into_iter().map(|(k, vs)| (k, json!({ key: vs }))).collect();
    let id = format!("projects/{}/aggregated/{key}", c.opts.project);
    let mut v = json!({"kind": kind, "id": id, "items": map, "selfLink": format!("{COMPUTE}/{id}")});
    if let Some(n) = next {
        v["nextPageToken"] = json!(n);
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Zones

fn zones_all(c: &Ctx) -> Vec<Value> {
    let mut out = Vec::new();
    let mut i = 0u64;
    for (r, zs) in ZONES {
        for z in *zs {
            i += 1;
            let name = format!("{r}-{z}");
            out.push(json!({
                "kind": "compute#zone",
                "id": (2000 + i * 7).to_string(),
                "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
                "name": name,
                "description": name,
                "status": "UP",
                "region": c.region_link(r),
                "selfLink": c.zone_link(&name),
                "availableCpuPlatforms": ["Intel Broadwell", "AMD Milan"],
                "supportsPzs": false,
            }));
        }
    }
    out
}

fn zones_list(_st: &mut St, c: &Ctx) -> Res {
    list(c, "compute#zoneList", &format!("projects/{}/zones", c.opts.project), zones_all(c))
}

fn region_ok(c: &Ctx) -> Result<String, ApiErr> {
    let r = c.p("region");
    if known_region(&r) {
        Ok(r)
    } else {
        Err(not_found(&format!("projects/{}/regions/{r}", c.opts.project)))
    }
}

fn zone_ok(c: &Ctx) -> Result<String, ApiErr> {
    let z = c.p("zone");
    if region_of_zone(&z).is_some() {
        Ok(z)
    } else {
        Err(not_found(&format!("projects/{}/zones/{z}", c.opts.project)))
    }
}

fn check_name(field: &str, name: &str) -> Result<(), ApiErr> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid value for field '{field}': '{name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?)'"
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Networks

fn network<'a>(st: &'a St, c: &Ctx, name: &str) -> Result<&'a Value, ApiErr> {
    st.world.networks.get(name).ok_or_else(|| not_found(&format!("projects/{}/global/networks/{name}", c.opts.project)))
}

fn network_insert(st: &mut St, c: &Ctx) -> Res {
    let b = &c.body;
    let name = s(b, "name");
    check_name("resource.name", &name)?;
    if b.get("IPv4Range").is_some() {
        return Err(invalid(
            "Invalid value for field 'resource.IPv4Range': legacy networks are not supported by the fake",
        ));
    }
    if st.world.networks.contains_key(&name) {
        return Err(err(
            409,
            "alreadyExists",
            format!("The resource 'projects/{}/global/networks/{name}' already exists", c.opts.project),
        ));
    }
    let mut m = from_body(b, &["subnetworks", "peerings", "gatewayIPv4"]);
    let id = st.id();
    let link = c.global_link("networks", &name);
    m.insert("kind".into(), json!("compute#network"));
    m.insert("id".into(), json!(id));
    m.insert("creationTimestamp".into(), json!(st.compute_time()));
    m.insert("selfLink".into(), json!(link));
    m.insert("selfLinkWithId".into(), json!(c.global_link("networks", &id)));
    m.entry("routingConfig").or_insert(json!({"routingMode": "REGIONAL"}));
    m.entry("mtu").or_insert(json!(1460));
    m.entry("networkFirewallPolicyEnforcementOrder").or_insert(json!("AFTER_CLASSIC_FIREWALL"));
    st.world.networks.insert(name, Value::Object(m));
    Ok(compute_op(st, c, Scope::Global, "insert", &link, &id, vec![], vec![]))
}

fn network_patch(st: &mut St, c: &Ctx) -> Res {
    let name = c.p("network");
    let cur = network(st, c, &name)?.clone();
    let b = &c.body;
    for k in ["name", "autoCreateSubnetworks", "IPv4Range"] {
        if let Some(v) = b.get(k) {
            if cur.get(k) != Some(v) {
                return Err(invalid(format!("Invalid value for field 'resource.{k}': the field cannot be patched")));
            }
        }
    }
    let mut next = cur.clone();
    for (k, v) in from_body(b, &["subnetworks", "peerings", "gatewayIPv4"]) {
        next[k.as_str()] = v;
    }
    st.world.networks.insert(name, next);
    Ok(compute_op(st, c, Scope::Global, "patch", &s(&cur, "selfLink"), &s(&cur, "id"), vec![], vec![]))
}

fn uses_network(url: &str, name: &str) -> bool {
    seg_after(url, "networks").as_deref() == Some(name)
}

fn network_delete(st: &mut St, c: &Ctx) -> Res {
    let name = c.p("network");
    let cur = network(st, c, &name)?.clone();
    let w = &st.world;
    let user = w
        .subnets
        .values()
        .find(|v| uses_network(&s(v, "network"), &name))
        .or_else(|| w.firewalls.values().find(|v| uses_network(&s(v, "network"), &name)))
        .or_else(|| {
            w.instances.values().find(|v| {
                v["networkInterfaces"].as_array().into_iter().flatten().any(|n| uses_network(&s(n, "network"), &name))
            })
        })
        .map(|v| s(v, "selfLink"))
        .or_else(|| {
            w.sql
                .values()
                .find(|v| {
                    uses_network(v["settings"]["ipConfiguration"]["privateNetwork"].as_str().unwrap_or(""), &name)
                })
                .map(|v| s(v, "selfLink"))
        });
    if let Some(user) = user {
        let short = user.trim_start_matches(COMPUTE).trim_start_matches('/').to_string();
        return Err(err(
            400,
            "resourceInUseByAnotherResource",
            format!(
                "The network resource 'projects/{}/global/networks/{name}' is already being used by '{short}'",
                c.opts.project
            ),
        ));
    }
    st.world.networks.remove(&name);
    Ok(compute_op(st, c, Scope::Global, "delete", &s(&cur, "selfLink"), &s(&cur, "id"), vec![], vec![]))
}

// ---------------------------------------------------------------------------------------------
// Subnetworks

fn subnet<'a>(st: &'a St, c: &Ctx) -> Result<&'a Value, ApiErr> {
    let (r, n) = (c.p("region"), c.p("subnetwork"));
    st.world
        .subnets
        .get(&(r.clone(), n.clone()))
        .ok_or_else(|| not_found(&format!("projects/{}/regions/{r}/subnetworks/{n}", c.opts.project)))
}

fn subnet_insert(st: &mut St, c: &Ctx) -> Res {
    let region = region_ok(c)?;
    let b = &c.body;
    let name = s(b, "name");
    check_name("resource.name", &name)?;
    let net_name = seg_after(&s(b, "network"), "networks")
        .ok_or_else(|| invalid("Invalid value for field 'resource.network': ''. The network is required."))?;
    let net = network(st, c, &net_name)?.clone();
    if let Some(r) = b.get("region").and_then(Value::as_str) {
        if r != region && seg_after(r, "regions").as_deref() != Some(region.as_str()) {
            return Err(invalid(format!(
                "Invalid value for field 'resource.region': '{r}'. It must be the region {region} of the request"
            )));
        }
    }
    let cidr_s = s(b, "ipCidrRange");
    let cidr = parse_cidr(&cidr_s).filter(|c| c.1 >= 8 && c.1 <= 29).ok_or_else(|| {
        invalid(format!("Invalid value for field 'resource.ipCidrRange': '{cidr_s}'. Invalid IPv4 CIDR range."))
    })?;
    if st.world.subnets.contains_key(&(region.clone(), name.clone())) {
        return Err(err(
            409,
            "alreadyExists",
            format!("The resource 'projects/{}/regions/{region}/subnetworks/{name}' already exists", c.opts.project),
        ));
    }
    for ((r, n), other) in &st.world.subnets {
        if uses_network(&s(other, "network"), &net_name) {
            if let Some(oc) = parse_cidr(&s(other, "ipCidrRange")) {
                if overlaps(cidr, oc) {
                    return Err(invalid(format!(
                        "Invalid IPCidrRange: {cidr_s} conflicts with existing subnetwork '{n}' in region '{r}'."
                    )));
                }
            }
        }
    }
    let mut m = from_body(b, &["gatewayAddress", "fingerprint", "state"]);
    let id = st.id();
    let link = format!("{}/regions/{region}/subnetworks/{name}", c.base());
    m.insert("kind".into(), json!("compute#subnetwork"));
    m.insert("id".into(), json!(id));
    m.insert("creationTimestamp".into(), json!(st.compute_time()));
    m.insert("selfLink".into(), json!(link));
    m.insert("network".into(), json!(s(&net, "selfLink")));
    m.insert("region".into(), json!(c.region_link(&region)));
    m.insert("gatewayAddress".into(), json!(Ipv4Addr::from(cidr.0 + 1).to_string()));
    m.insert("fingerprint".into(), json!(st.fingerprint()));
    m.entry("privateIpGoogleAccess").or_insert(json!(false));
    m.entry("stackType").or_insert(json!("IPV4_ONLY"));
    m.entry("purpose").or_insert(json!("PRIVATE"));
    st.world.subnets.insert((region.clone(), name), Value::Object(m));
    if let Some(n) = st.world.networks.get_mut(&net_name) {
        let subs = n.as_object_mut().map(|o| o.entry("subnetworks").or_insert(json!([])));
        if let Some(Value::Array(a)) = subs {
            a.push(json!(link));
        }
    }
    Ok(compute_op(st, c, Scope::Region(region), "insert", &link, &id, vec![], vec![]))
}

fn subnet_patch(st: &mut St, c: &Ctx) -> Res {
    let region = region_ok(c)?;
    let cur = subnet(st, c)?.clone();
    let b = &c.body;
    if b.get("fingerprint") != cur.get("fingerprint") {
        return Err(err(
            412,
            "conditionNotMet",
            "Supplied fingerprint does not match current fingerprint of the subnetwork; get the subnetwork and retry.",
        ));
    }
    for k in ["name", "network", "region", "ipCidrRange", "description", "privateIpGoogleAccess", "purpose"] {
        if let Some(v) = b.get(k) {
            let same = match k {
                "network" => seg_after(v.as_str().unwrap_or(""), "networks") == seg_after(&s(&cur, k), "networks"),
                "region" => seg_after(v.as_str().unwrap_or(""), "regions") == Some(region.clone()),
                _ => cur.get(k) == Some(v),
            };
            if !same {
                return Err(invalid(format!(
                    "Invalid value for field 'resource.{k}': this field cannot be changed by patch"
                )));
            }
        }
    }
    let mut next = cur.clone();
    for (k, v) in from_body(b, &["gatewayAddress", "fingerprint", "state", "network", "region"]) {
        next[k.as_str()] = v;
    }
    next["fingerprint"] = json!(st.fingerprint());
    st.world.subnets.insert((region.clone(), c.p("subnetwork")), next);
    Ok(compute_op(st, c, Scope::Region(region), "patch", &s(&cur, "selfLink"), &s(&cur, "id"), vec![], vec![]))
}

fn subnet_set_pga(st: &mut St, c: &Ctx) -> Res {
    let region = region_ok(c)?;
    let cur = subnet(st, c)?.clone();
    let on = c.body.get("privateIpGoogleAccess").and_then(Value::as_bool).unwrap_or(false);
    let fp = st.fingerprint();
    if let Some(v) = st.world.subnets.get_mut(&(region.clone(), c.p("subnetwork"))) {
        v["privateIpGoogleAccess"] = json!(on);
        v["fingerprint"] = json!(fp);
    }
    Ok(compute_op(
        st,
        c,
        Scope::Region(region),
        "setPrivateIpGoogleAccess",
        &s(&cur, "selfLink"),
        &s(&cur, "id"),
        vec![],
        vec![],
    ))
}

fn subnet_delete(st: &mut St, c: &Ctx) -> Res {
    let region = region_ok(c)?;
    let name = c.p("subnetwork");
    let cur = subnet(st, c)?.clone();
    let user = st.world.instances.values().find(|v| {
        v["networkInterfaces"].as_array().into_iter().flatten().any(|n| {
            let url = s(n, "subnetwork");
            seg_after(&url, "subnetworks").as_deref() == Some(name.as_str())
                && seg_after(&url, "regions").as_deref() == Some(region.as_str())
        })
    });
    if let Some(u) = user {
        let short = s(u, "selfLink").trim_start_matches(COMPUTE).trim_start_matches('/').to_string();
        return Err(err(
            400,
            "resourceInUseByAnotherResource",
            format!(
                "The subnetwork resource 'projects/{}/regions/{region}/subnetworks/{name}' is already being used by '{short}'",
                c.opts.project
            ),
        ));
    }
    st.world.subnets.remove(&(region.clone(), name));
    let link = s(&cur, "selfLink");
    for n in st.world.networks.values_mut() {
        if let Some(a) = n.get_mut("subnetworks").and_then(Value::as_array_mut) {
            a.retain(|l| l.as_str() != Some(link.as_str()));
        }
    }
    Ok(compute_op(st, c, Scope::Region(region), "delete", &link, &s(&cur, "id"), vec![], vec![]))
}

// ---------------------------------------------------------------------------------------------
// Firewalls

fn firewall<'a>(st: &'a St, c: &Ctx) -> Result<&'a Value, ApiErr> {
    let n = c.p("firewall");
    st.world.firewalls.get(&n).ok_or_else(|| not_found(&format!("projects/{}/global/firewalls/{n}", c.opts.project)))
}

/// Checks and defaults shared by insert, patch and update.
fn firewall_normalize(st: &St, c: &Ctx, m: &mut Map<String, Value>) -> Result<(), ApiErr> {
    let net_url = m.get("network").and_then(Value::as_str).unwrap_or("global/networks/default").to_string();
    let net_name = seg_after(&net_url, "networks").unwrap_or_default();
    let net = network(st, c, &net_name)?;
    m.insert("network".into(), json!(s(net, "selfLink")));
    fn nonempty(m: &Map<String, Value>, k: &str) -> bool {
        m.get(k).and_then(Value::as_array).is_some_and(|a| !a.is_empty())
    }
    if nonempty(m, "allowed") == nonempty(m, "denied") {
        return Err(invalid("Invalid value for field 'resource': exactly one of 'allowed' or 'denied' must be set"));
    }
    for key in ["allowed", "denied"] {
        for rule in m.get(key).and_then(Value::as_array).into_iter().flatten() {
            let p = s(rule, "IPProtocol");
            let ok = matches!(p.as_str(), "tcp" | "udp" | "icmp" | "esp" | "ah" | "sctp" | "ipip" | "all")
                || p.parse::<u8>().is_ok();
            if !ok {
                return Err(invalid(format!("Invalid value for field 'resource.{key}[].IPProtocol': '{p}'")));
            }
        }
    }
    for key in ["sourceRanges", "destinationRanges"] {
        for r in m.get(key).and_then(Value::as_array).into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            let ok = r.parse::<Ipv4Addr>().is_ok()
                || r.split_once('/')
                    .is_some_and(|(a, p)| a.parse::<Ipv4Addr>().is_ok() && p.parse::<u8>().is_ok_and(|p| p <= 32));
            if !ok {
                return Err(invalid(format!(
                    "Invalid value for field 'resource.{key}[]': '{r}'. Must be a valid IPV4 CIDR address range."
                )));
            }
        }
    }
    let ingress = m.get("direction").and_then(Value::as_str).unwrap_or("INGRESS") == "INGRESS";
    m.entry("direction").or_insert(json!("INGRESS"));
    m.entry("priority").or_insert(json!(1000));
    m.entry("disabled").or_insert(json!(false));
    m.entry("logConfig").or_insert(json!({"enable": false}));
    if ingress && !nonempty(m, "sourceRanges") && !nonempty(m, "sourceTags") && !nonempty(m, "sourceServiceAccounts") {
        m.insert("sourceRanges".into(), json!(["0.0.0.0/0"]));
    }
    if !ingress && !nonempty(m, "destinationRanges") {
        m.insert("destinationRanges".into(), json!(["0.0.0.0/0"]));
    }
    Ok(())
}

fn firewall_insert(st: &mut St, c: &Ctx) -> Res {
    let name = s(&c.body, "name");
    check_name("resource.name", &name)?;
    if st.world.firewalls.contains_key(&name) {
        return Err(err(
            409,
            "alreadyExists",
            format!("The resource 'projects/{}/global/firewalls/{name}' already exists", c.opts.project),
        ));
    }
    let mut m = from_body(&c.body, &[]);
    firewall_normalize(st, c, &mut m)?;
    let id = st.id();
    let link = c.global_link("firewalls", &name);
    m.insert("kind".into(), json!("compute#firewall"));
    m.insert("id".into(), json!(id));
    m.insert("creationTimestamp".into(), json!(st.compute_time()));
    m.insert("selfLink".into(), json!(link));
    st.world.firewalls.insert(name, Value::Object(m));
    Ok(compute_op(st, c, Scope::Global, "insert", &link, &id, vec![], vec![]))
}

fn firewall_change(st: &mut St, c: &Ctx) -> Res {
    let name = c.p("firewall");
    let cur = firewall(st, c)?.clone();
    let put = c.method_id.ends_with(".update");
    if let Some(n) = c.body.get("name").and_then(Value::as_str) {
        if n != name {
            return Err(invalid(format!("Invalid value for field 'resource.name': '{n}'. The name cannot be changed")));
        }
    }
    let mut m = if put {
        let mut m = from_body(&c.body, &[]);
        m.insert("name".into(), json!(name));
        m
    } else {
        let mut m = cur.as_object().cloned().unwrap_or_default();
        for (k, v) in from_body(&c.body, &[]) {
            m.insert(k, v);
        }
        m
    };
    if let Some(n) = c.body.get("network").and_then(Value::as_str) {
        if seg_after(n, "networks") != seg_after(&s(&cur, "network"), "networks") {
            return Err(invalid(
                "Invalid value for field 'resource.network': the network of a firewall cannot be changed",
            ));
        }
    } else if put {
        m.insert("network".into(), cur["network"].clone());
    }
    firewall_normalize(st, c, &mut m)?;
    for k in ["kind", "id", "creationTimestamp", "selfLink"] {
        m.insert(k.into(), cur[k].clone());
    }
    st.world.firewalls.insert(name, Value::Object(m));
    let op_type = if put { "update" } else { "patch" };
    Ok(compute_op(st, c, Scope::Global, op_type, &s(&cur, "selfLink"), &s(&cur, "id"), vec![], vec![]))
}

// ---------------------------------------------------------------------------------------------
// Instances

fn instance<'a>(st: &'a St, c: &Ctx) -> Result<&'a Value, ApiErr> {
    let (z, n) = (c.p("zone"), c.p("instance"));
    st.world
        .instances
        .get(&(z.clone(), n.clone()))
        .ok_or_else(|| not_found(&format!("projects/{}/zones/{z}/instances/{n}", c.opts.project)))
}

fn valid_machine_type(t: &str) -> bool {
    let families =
        ["e2-", "n1-", "n2-", "n2d-", "n4-", "c2-", "c3-", "c3d-", "c4-", "t2a-", "t2d-", "m1-", "m3-", "custom-"];
    matches!(t, "f1-micro" | "g1-small") || families.iter().any(|f| t.strip_prefix(f).is_some_and(|r| !r.is_empty()))
}

fn instance_insert(st: &mut St, c: &Ctx) -> Res {
    let zone = zone_ok(c)?;
    let region = region_of_zone(&zone).unwrap_or_default().to_string();
    let b = &c.body;
    let name = s(b, "name");
    check_name("resource.name", &name)?;
    if st.world.instances.contains_key(&(zone.clone(), name.clone())) {
        return Err(err(
            409,
            "alreadyExists",
            format!("The resource 'projects/{}/zones/{zone}/instances/{name}' already exists", c.opts.project),
        ));
    }
    let mt = s(b, "machineType");
    let mt_name = seg_after(&mt, "machineTypes").ok_or_else(|| {
        invalid(format!("Invalid value for field 'resource.machineType': '{mt}'. Must be a URL to a machine type"))
    })?;
    if let Some(z) = seg_after(&mt, "zones") {
        if z != zone {
            return Err(invalid(format!(
                "Invalid value for field 'resource.machineType': '{mt}'. The zone must be {zone}"
            )));
        }
    }
    if !valid_machine_type(&mt_name) {
        return Err(invalid(format!(
            "Invalid value for field 'resource.machineType': '{mt}'. Machine type with name '{mt_name}' does not exist in zone '{zone}'."
        )));
    }
    // Disks.
    let disks_in = b.get("disks").and_then(Value::as_array).cloned().unwrap_or_default();
    if disks_in.is_empty() {
        return Err(invalid("Invalid value for field 'resource.disks': ''. At least one disk should be attached"));
    }
    let boot_ix = disks_in.iter().position(|d| d.get("boot").and_then(Value::as_bool) == Some(true)).unwrap_or(0);
    let mut disks = Vec::new();
    for (i, d) in disks_in.iter().enumerate() {
        let init = d.get("initializeParams");
        let image = init.map(|p| s(p, "sourceImage")).unwrap_or_default();
        if d.get("source").is_none() && image.is_empty() && i == boot_ix {
            return Err(invalid(format!(
                "Invalid value for field 'resource.disks[{i}]': a boot disk needs 'source' or 'initializeParams.sourceImage'"
            )));
        }
        let disk_name = init.map(|p| s(p, "diskName")).filter(|n| !n.is_empty()).unwrap_or_else(|| {
            if i == boot_ix {
                name.clone()
            } else {
                format!("{name}-{i}")
            }
        });
        let size = init.and_then(|p| p.get("diskSizeGb")).cloned().unwrap_or(json!("10"));
        let out = json!({
            "kind": "compute#attachedDisk",
            "type": d.get("type").cloned().unwrap_or(json!("PERSISTENT")),
            "mode": d.get("mode").cloned().unwrap_or(json!("READ_WRITE")),
            "source": d.get("source").cloned().unwrap_or_else(|| json!(format!("{}/disks/{disk_name}", c.zone_link(&zone)))),
            "deviceName": d.get("deviceName").cloned().unwrap_or_else(|| json!(format!("persistent-disk-{i}"))),
            "index": i,
            "boot": i == boot_ix,
            "autoDelete": d.get("autoDelete").cloned().unwrap_or(json!(false)),
            "interface": d.get("interface").cloned().unwrap_or(json!("SCSI")),
            "diskSizeGb": size,
            "architecture": "X86_64",
        });
        disks.push(out);
    }
    // Network interfaces.
    let nics_in = b.get("networkInterfaces").and_then(Value::as_array).cloned().unwrap_or_default();
    if nics_in.is_empty() {
        return Err(invalid(
            "Invalid value for field 'resource.networkInterfaces': ''. At least one network interface is required",
        ));
    }
    let mut nics = Vec::new();
    for (i, n) in nics_in.iter().enumerate() {
        let sub_url = s(n, "subnetwork");
        let sub_name = seg_after(&sub_url, "subnetworks").ok_or_else(|| {
            invalid(format!(
                "Invalid value for field 'resource.networkInterfaces[{i}].subnetwork': ''. A subnetwork is required"
            ))
        })?;
        let sub_region = seg_after(&sub_url, "regions").unwrap_or_else(|| region.clone());
        if sub_region != region {
            return Err(invalid(format!(
                "Invalid value for field 'resource.networkInterfaces[{i}].subnetwork': '{sub_url}'. The subnetwork must be in region {region}"
            )));
        }
        let sub = st.world.subnets.get(&(region.clone(), sub_name.clone())).cloned().ok_or_else(|| {
            not_found(&format!("projects/{}/regions/{region}/subnetworks/{sub_name}", c.opts.project))
        })?;
        if let Some(net) = n.get("network").and_then(Value::as_str) {
            if seg_after(net, "networks") != seg_after(&s(&sub, "network"), "networks") {
                return Err(invalid(format!(
                    "Invalid value for field 'resource.networkInterfaces[{i}].network': '{net}'. It must be the subnetwork's network"
                )));
            }
        }
        let cidr = parse_cidr(&s(&sub, "ipCidrRange")).unwrap_or((0, 32));
        let used: Vec<String> = st
            .world
            .instances
            .values()
            .flat_map(|v| v["networkInterfaces"].as_array().cloned().unwrap_or_default())
            .filter(|x| s(x, "subnetwork") == s(&sub, "selfLink"))
            .map(|x| s(&x, "networkIP"))
            .collect();
        let ip = match n.get("networkIP").and_then(Value::as_str) {
            Some(ip) => {
                let inside = ip.parse::<Ipv4Addr>().is_ok_and(|a| u32::from(a) & mask(cidr.1) == cidr.0);
                if !inside || used.iter().any(|u| u == ip) {
                    return Err(invalid(format!(
                        "Invalid value for field 'resource.networkInterfaces[{i}].networkIP': '{ip}'. The IP address is not available in the subnetwork"
                    )));
                }
                ip.to_string()
            }
            None => (2..)
                .map(|k: u32| Ipv4Addr::from(cidr.0 + k).to_string())
                .find(|a| !used.contains(a))
                .unwrap_or_default(),
        };
        let mut access = Vec::new();
        for a in n.get("accessConfigs").and_then(Value::as_array).into_iter().flatten() {
            let ty = a.get("type").and_then(Value::as_str).unwrap_or("ONE_TO_ONE_NAT");
            let nat = a.get("natIP").cloned().unwrap_or_else(|| {
                let k = st.seq;
                json!(Ipv4Addr::new(34, 10 + (k / 65_536 % 200) as u8, (k / 256 % 256) as u8, (k % 254 + 1) as u8)
                    .to_string())
            });
            st.seq += 1;
            access.push(json!({
                "kind": "compute#accessConfig",
                "type": ty,
                "name": a.get("name").cloned().unwrap_or(json!("External NAT")),
                "natIP": nat,
                "networkTier": a.get("networkTier").cloned().unwrap_or(json!("PREMIUM")),
            }));
        }
        let mut nic = json!({
            "kind": "compute#networkInterface",
            "name": format!("nic{i}"),
            "network": s(&sub, "network"),
            "subnetwork": s(&sub, "selfLink"),
            "networkIP": ip,
            "fingerprint": st.fingerprint(),
            "stackType": "IPV4_ONLY",
        });
        if !access.is_empty() {
            nic["accessConfigs"] = json!(access);
        }
        nics.push(nic);
    }
    let mut m = from_body(
        b,
        &[
            "status",
            "statusMessage",
            "cpuPlatform",
            "fingerprint",
            "labelFingerprint",
            "startRestricted",
            "lastStartTimestamp",
        ],
    );
    let id = st.id();
    let link = format!("{}/instances/{name}", c.zone_link(&zone));
    m.insert("kind".into(), json!("compute#instance"));
    m.insert("id".into(), json!(id));
    m.insert("creationTimestamp".into(), json!(st.compute_time()));
    m.insert("selfLink".into(), json!(link));
    m.insert("zone".into(), json!(c.zone_link(&zone)));
    m.insert("machineType".into(), json!(format!("{}/machineTypes/{mt_name}", c.zone_link(&zone))));
    m.insert("status".into(), json!("PROVISIONING"));
    m.insert("cpuPlatform".into(), json!("Unknown CPU Platform"));
    m.insert("disks".into(), json!(disks));
    m.insert("networkInterfaces".into(), json!(nics));
    m.insert("fingerprint".into(), json!(st.fingerprint()));
    m.insert("labelFingerprint".into(), json!(st.fingerprint()));
    m.entry("labels").or_insert(json!({}));
    let tags = b.get("tags").and_then(|t| t.get("items")).cloned();
    let mut t = json!({"fingerprint": st.fingerprint()});
    if let Some(items) = tags {
        t["items"] = items;
    }
    m.insert("tags".into(), t);
    let meta = b.get("metadata").and_then(|t| t.get("items")).cloned();
    let mut md = json!({"kind": "compute#metadata", "fingerprint": st.fingerprint()});
    if let Some(items) = meta {
        md["items"] = items;
    }
    m.insert("metadata".into(), md);
    let mut sched = json!({"onHostMaintenance": "MIGRATE", "automaticRestart": true, "preemptible": false, "provisioningModel": "STANDARD"});
    if let Some(given) = b.get("scheduling") {
        merge(&mut sched, given);
    }
    m.insert("scheduling".into(), sched);
    m.entry("deletionProtection").or_insert(json!(false));
    m.entry("canIpForward").or_insert(json!(false));
    m.insert("startRestricted".into(), json!(false));
    if m.get("labels").and_then(Value::as_object).is_some_and(Map::is_empty) {
        m.remove("labels");
    }
    st.world.instances.insert((zone.clone(), name.clone()), Value::Object(m));
    let running = vec![Effect::InstanceStatus { zone: zone.clone(), name: name.clone(), status: "STAGING" }];
    let done = vec![Effect::InstanceStatus { zone: zone.clone(), name, status: "RUNNING" }];
    Ok(compute_op(st, c, Scope::Zone(zone), "insert", &link, &id, running, done))
}

fn instance_delete(st: &mut St, c: &Ctx) -> Res {
    let zone = zone_ok(c)?;
    let cur = instance(st, c)?.clone();
    if cur.get("deletionProtection").and_then(Value::as_bool) == Some(true) {
        return Err(err(
            400,
            "resourceIsProtected",
            format!("The resource '{}' is protected against deletion", s(&cur, "selfLink")),
        ));
    }
    st.world.instances.remove(&(zone.clone(), c.p("instance")));
    Ok(compute_op(st, c, Scope::Zone(zone), "delete", &s(&cur, "selfLink"), &s(&cur, "id"), vec![], vec![]))
}

fn precondition(what: &str) -> ApiErr {
    err(412, "conditionNotMet", format!("Supplied fingerprint does not match current {what} fingerprint."))
}

fn instance_action(st: &mut St, c: &Ctx) -> Res {
    let zone = zone_ok(c)?;
    let name = c.p("instance");
    let cur = instance(st, c)?.clone();
    let b = &c.body;
    let action = c.method_id.trim_start_matches("compute.instances.");
    let mut next = cur.clone();
    let (mut running, mut done) = (vec![], vec![]);
    match action {
        "setLabels" => {
            if b.get("labelFingerprint") != cur.get("labelFingerprint") {
                return Err(precondition("label"));
            }
            match b.get("labels").and_then(Value::as_object).filter(|l| !l.is_empty()) {
                Some(l) => next["labels"] = json!(l),
                None => {
                    next.as_object_mut().map(|o| o.remove("labels"));
                }
            }
            next["labelFingerprint"] = json!(st.fingerprint());
        }
        "setTags" => {
            if b.get("fingerprint") != cur["tags"].get("fingerprint") {
                return Err(precondition("tags"));
            }
            let mut t = json!({"fingerprint": st.fingerprint()});
            if let Some(items) = b.get("items").filter(|i| i.as_array().is_some_and(|a| !a.is_empty())) {
                t["items"] = items.clone();
            }
            next["tags"] = t;
        }
        "setMetadata" => {
            if b.get("fingerprint") != cur["metadata"].get("fingerprint") {
                return Err(precondition("metadata"));
            }
            let mut md = json!({"kind": "compute#metadata", "fingerprint": st.fingerprint()});
            if let Some(items) = b.get("items").filter(|i| i.as_array().is_some_and(|a| !a.is_empty())) {
                md["items"] = items.clone();
            }
            next["metadata"] = md;
        }
        "setMachineType" => {
            if s(&cur, "status") != "TERMINATED" {
                return Err(invalid(format!(
                    "Invalid resource usage: 'The instance '{name}' must be stopped (TERMINATED) to change its machine type; it is {}'.",
                    s(&cur, "status")
                )));
            }
            let mt = s(b, "machineType");
            let t = seg_after(&mt, "machineTypes").filter(|t| valid_machine_type(t)).ok_or_else(|| {
                invalid(format!(
                    "Invalid value for field 'machineType': '{mt}'. Machine type does not exist in zone '{zone}'."
                ))
            })?;
            next["machineType"] = json!(format!("{}/machineTypes/{t}", c.zone_link(&zone)));
        }
        "stop" => {
            if s(&cur, "status") != "TERMINATED" {
                next["status"] = json!("STOPPING");
                done.push(Effect::InstanceStatus { zone: zone.clone(), name: name.clone(), status: "TERMINATED" });
            }
        }
        _ => {
            if s(&cur, "status") == "TERMINATED" {
                next["status"] = json!("PROVISIONING");
                running.push(Effect::InstanceStatus { zone: zone.clone(), name: name.clone(), status: "STAGING" });
                done.push(Effect::InstanceStatus { zone: zone.clone(), name: name.clone(), status: "RUNNING" });
            }
        }
    }
    if next != cur {
        next["fingerprint"] = json!(st.fingerprint());
    }
    st.world.instances.insert((zone.clone(), name), next);
    Ok(compute_op(st, c, Scope::Zone(zone), action, &s(&cur, "selfLink"), &s(&cur, "id"), running, done))
}

// ---------------------------------------------------------------------------------------------
// Cloud SQL

fn sql_busy(st: &St, instance: &str) -> Result<(), ApiErr> {
    let busy = st.ops.values().any(|o| o.scope == Scope::Sql(instance.to_string()) && s(&o.v, "status") != "DONE");
    if busy {
        Err(err(409, "operationInProgress", "Operation failed because another operation was already in progress. Try your request after the current operation is complete."))
    } else {
        Ok(())
    }
}

fn major_version_default_edition(version: &str) -> &'static str {
    let pg = version.strip_prefix("POSTGRES_").and_then(|v| v.parse::<u32>().ok());
    if pg.is_some_and(|v| v >= 16) || version.starts_with("MYSQL_8_4") {
        "ENTERPRISE_PLUS"
    } else {
        "ENTERPRISE"
    }
}

fn installed_version(version: &str) -> String {
    match version {
        "POSTGRES_17" => "POSTGRES_17_5".into(),
        "POSTGRES_16" => "POSTGRES_16_9".into(),
        "POSTGRES_15" => "POSTGRES_15_13".into(),
        "MYSQL_8_0" => "MYSQL_8_0_41".into(),
        "MYSQL_8_4" => "MYSQL_8_4_5".into(),
        v => v.to_string(),
    }
}

/// Tier, edition, region, network and addresses: checks and derived fields of an instance.
fn sql_derive(st: &St, c: &Ctx, v: &mut Value, ip_seed: u64) -> Result<(), ApiErr> {
    let version = s(v, "databaseVersion");
    let settings = &mut v["settings"];
    let tier = s(settings, "tier");
    let edition = settings
        .get("edition")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| major_version_default_edition(&version).to_string());
    settings["edition"] = json!(edition);
    let perf = tier.starts_with("db-perf-optimized-N-");
    let tier_ok = match edition.as_str() {
        "ENTERPRISE_PLUS" => perf,
        _ => {
            matches!(tier.as_str(), "db-f1-micro" | "db-g1-small")
                || tier.strip_prefix("db-custom-").is_some_and(|r| r.split('-').count() == 2)
                || tier.starts_with("db-n1-standard-")
                || tier.starts_with("db-n1-highmem-")
        }
    };
    if !tier_ok {
        return Err(invalid(format!("Invalid request: Invalid Tier ({tier}) for ({edition}) Edition.")));
    }
    let ip = settings.get("ipConfiguration").cloned().unwrap_or(json!({}));
    let ipv4 = ip.get("ipv4Enabled").and_then(Value::as_bool).unwrap_or(true);
    let private = s(&ip, "privateNetwork");
    if !private.is_empty() {
        let net = seg_after(&private, "networks").unwrap_or_default();
        // Cloud SQL answers the link without the leading slash its documentation shows.
        v["settings"]["ipConfiguration"]["privateNetwork"] =
            json!(format!("projects/{}/global/networks/{net}", c.opts.project));
        if !st.world.networks.contains_key(&net) {
            return Err(invalid(format!(
                "Invalid request: Incorrect Service Networking config for instance: {}:{}:SERVICE_NETWORKING_NOT_ENABLED.",
                c.opts.project,
                s(v, "name")
            )));
        }
    }
    if !ipv4 && private.is_empty() {
        return Err(invalid("Invalid request: At least one of Public IP or Private IP must be enabled."));
    }
    let mut addrs = Vec::new();
    if ipv4 {
        addrs.push(json!({"type": "PRIMARY", "ipAddress": Ipv4Addr::new(35, 200, (ip_seed / 250 % 250) as u8, (ip_seed % 250 + 2) as u8).to_string()}));
    }
    if !private.is_empty() {
        addrs.push(json!({"type": "PRIVATE", "ipAddress": Ipv4Addr::new(10, 201, (ip_seed / 250 % 250) as u8, (ip_seed % 250 + 2) as u8).to_string()}));
    }
    v["ipAddresses"] = json!(addrs);
    let region = s(v, "region");
    let zones = zones_of(&region);
    let loc = v["settings"].get("locationPreference").cloned().unwrap_or(json!({}));
    let zone = loc.get("zone").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| zones[0].clone());
    if !zones.contains(&zone) {
        return Err(invalid(format!("Invalid request: zone {zone} is not in region {region}.")));
    }
    v["gceZone"] = json!(zone);
    let regional = v["settings"].get("availabilityType").and_then(Value::as_str) == Some("REGIONAL");
    if regional {
        let second = loc
            .get("secondaryZone")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| zones.iter().find(|z| **z != zone).cloned())
            .unwrap_or_default();
        v["secondaryGceZone"] = json!(second);
    } else if let Some(o) = v.as_object_mut() {
        o.remove("secondaryGceZone");
    }
    Ok(())
}

fn sql_insert(st: &mut St, c: &Ctx) -> Res {
    let b = &c.body;
    let name = s(b, "name");
    let name_ok = !name.is_empty()
        && name.len() <= 98
        && name.starts_with(|ch: char| ch.is_ascii_lowercase())
        && name.bytes().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == b'-');
    if !name_ok {
        return Err(invalid(format!("Invalid request: instance name ({name}).")));
    }
    if st.world.sql.contains_key(&name) {
        return Err(err(409, "instanceAlreadyExists", "The Cloud SQL instance already exists."));
    }
    let version = s(b, "databaseVersion");
    if !(version.starts_with("POSTGRES_") || version.starts_with("MYSQL_") || version.starts_with("SQLSERVER_")) {
        return Err(invalid(format!("Invalid request: Invalid databaseVersion ({version}).")));
    }
    let region = b.get("region").and_then(Value::as_str).unwrap_or("us-central1").to_string();
    if !known_region(&region) {
        return Err(invalid(format!("Invalid request: region ({region}) is not valid.")));
    }
    if b.get("settings").is_none_or(|s| s.get("tier").is_none()) {
        return Err(invalid("Invalid request: settings.tier is required."));
    }
    let p = c.opts.project.clone();
    let mut v = json!({
        "kind": "sql#instance",
        "state": "PENDING_CREATE",
        "databaseVersion": version,
        "settings": {
            "kind": "sql#settings",
            "settingsVersion": "1",
            "pricingPlan": "PER_USE",
            "replicationType": "SYNCHRONOUS",
            "activationPolicy": "ALWAYS",
            "dataDiskType": "PD_SSD",
            "dataDiskSizeGb": "10",
            "availabilityType": "ZONAL",
            "storageAutoResize": true,
            "storageAutoResizeLimit": "0",
            "deletionProtectionEnabled": false,
            "ipConfiguration": {"ipv4Enabled": true, "requireSsl": false, "sslMode": "ALLOW_UNENCRYPTED_AND_ENCRYPTED"},
            "backupConfiguration": {
                "kind": "sql#backupConfiguration",
                "enabled": false,
                "startTime": "00:00",
                "transactionLogRetentionDays": 7,
                "backupRetentionSettings": {"retentionUnit": "COUNT", "retainedBackups": 7},
            },
            "locationPreference": {"kind": "sql#locationPreference"},
        },
    });
    let mut given = b.clone();
    for k in [
        "rootPassword",
        "state",
        "kind",
        "selfLink",
        "connectionName",
        "ipAddresses",
        "createTime",
        "gceZone",
        "secondaryGceZone",
    ] {
        given.as_object_mut().map(|o| o.remove(k));
    }
    if let Some(s) = given.get_mut("settings") {
        s.as_object_mut().map(|o| o.remove("settingsVersion"));
    }
    merge(&mut v, &given);
    for acl in v["settings"]["ipConfiguration"]["authorizedNetworks"].as_array_mut().into_iter().flatten() {
        acl["kind"] = json!("sql#aclEntry");
    }
    v["name"] = json!(name);
    v["region"] = json!(region);
    v["project"] = json!(p);
    v["backendType"] = json!("SECOND_GEN");
    v["instanceType"] = json!("CLOUD_SQL_INSTANCE");
    v["connectionName"] = json!(format!("{p}:{region}:{name}"));
    v["selfLink"] = json!(format!("{SQLADMIN}/projects/{p}/instances/{name}"));
    v["databaseInstalledVersion"] = json!(installed_version(&version));
    v["serviceAccountEmailAddress"] =
        json!(format!("p{}-{}@gcp-sa-cloud-sql.iam.gserviceaccount.com", 100_000 + st.seq, st.hex(6)));
    v["createTime"] = json!(st.sql_time());
    let seed = st.next();
    sql_derive(st, c, &mut v, seed)?;
    let zone = s(&v, "gceZone");
    v["settings"]["locationPreference"]["zone"] = json!(zone);
    st.world.sql.insert(name.clone(), v);
    let (user, host) = if version.starts_with("MYSQL_") { ("root", "%") } else { ("postgres", "") };
    st.world.users.insert((name.clone(), user.into(), host.into()), user_json(c, &name, user, host, &version));
    let done = vec![Effect::SqlState { name: name.clone(), state: "RUNNABLE" }];
    Ok(sql_op(st, c, &name, "CREATE", done))
}

fn sql_list(st: &mut St, c: &Ctx) -> Res {
    let items = apply_filter(c, st.world.sql.values().cloned().collect())?;
    let (a, b, next) = page_bounds(c, items.len())?;
    let mut v = json!({"kind": "sql#instancesList"});
    if a < b {
        v["items"] = json!(items[a..b]);
    }
    if let Some(n) = next {
        v["nextPageToken"] = json!(n);
    }
    Ok(v)
}

fn sql_patch(st: &mut St, c: &Ctx) -> Res {
    let name = c.p("instance");
    let cur = st.world.sql.get(&name).cloned().ok_or_else(sql_not_found)?;
    sql_busy(st, &name)?;
    let b = &c.body;
    for k in ["name", "region"] {
        if let Some(v) = b.get(k) {
            if cur.get(k) != Some(v) {
                return Err(invalid(format!("Invalid request: {k} cannot be changed.")));
            }
        }
    }
    if let Some(sv) = b["settings"].get("settingsVersion") {
        if Some(sv) != cur["settings"].get("settingsVersion") {
            return Err(err(412, "staleData", "Precondition check failed: settingsVersion is out of date."));
        }
    }
    let mut given = b.clone();
    for k in [
        "rootPassword",
        "state",
        "kind",
        "selfLink",
        "connectionName",
        "ipAddresses",
        "createTime",
        "gceZone",
        "secondaryGceZone",
        "project",
    ] {
        given.as_object_mut().map(|o| o.remove(k));
    }
    if let Some(s) = given.get_mut("settings") {
        s.as_object_mut().map(|o| o.remove("settingsVersion"));
    }
    let had_private = cur["settings"]["ipConfiguration"]["privateNetwork"].as_str().is_some_and(|p| !p.is_empty());
    let private_given = given["settings"]["ipConfiguration"].get("privateNetwork");
    if had_private && private_given.is_some_and(|p| p.as_str().is_none_or(str::is_empty)) {
        return Err(invalid("Invalid request: the private network of an instance cannot be removed once set."));
    }
    let mut next = cur.clone();
    merge(&mut next, &given);
    let seed = st.next();
    sql_derive(st, c, &mut next, seed)?;
    // Keep the addresses the instance already had.
    for a in next["ipAddresses"].as_array_mut().into_iter().flatten() {
        if let Some(old) = cur["ipAddresses"].as_array().into_iter().flatten().find(|o| o["type"] == a["type"]) {
            *a = old.clone();
        }
    }
    let version: u64 = cur["settings"]["settingsVersion"].as_str().and_then(|v| v.parse().ok()).unwrap_or(1);
    next["settings"]["settingsVersion"] = json!((version + 1).to_string());
    if next.get("databaseVersion") != cur.get("databaseVersion") {
        next["databaseInstalledVersion"] = json!(installed_version(&s(&next, "databaseVersion")));
    }
    st.world.sql.insert(name.clone(), next);
    Ok(sql_op(st, c, &name, "UPDATE", vec![]))
}

fn sql_delete(st: &mut St, c: &Ctx) -> Res {
    let name = c.p("instance");
    let cur = st.world.sql.get(&name).cloned().ok_or_else(sql_not_found)?;
    sql_busy(st, &name)?;
    if cur["settings"]["deletionProtectionEnabled"].as_bool() == Some(true) {
        return Err(invalid("The instance is protected. Please disable the deletion protection and try again."));
    }
    st.world.sql.remove(&name);
    st.world.users.retain(|(i, _, _), _| *i != name);
    Ok(sql_op(st, c, &name, "DELETE", vec![]))
}

fn user_json(c: &Ctx, instance: &str, name: &str, host: &str, version: &str) -> Value {
    let mut u = json!({"kind": "sql#user", "name": name, "instance": instance, "project": c.opts.project, "etag": "-"});
    if version.starts_with("MYSQL_") {
        u["host"] = json!(host);
    }
    u
}

fn user_insert(st: &mut St, c: &Ctx) -> Res {
    let inst = c.p("instance");
    let i = st.world.sql.get(&inst).cloned().ok_or_else(sql_not_found)?;
    sql_busy(st, &inst)?;
    let name = s(&c.body, "name");
    if name.is_empty() {
        return Err(invalid("Invalid request: user name is required."));
    }
    let version = s(&i, "databaseVersion");
    let host =
        if version.starts_with("MYSQL_") { c.body.get("host").and_then(Value::as_str).unwrap_or("%") } else { "" };
    let key = (inst.clone(), name.clone(), host.to_string());
    if st.world.users.contains_key(&key) {
        return Err(err(409, "alreadyExists", format!("Invalid request: user {name} already exists.")));
    }
    st.world.users.insert(key, user_json(c, &inst, &name, host, &version));
    Ok(sql_op(st, c, &inst, "CREATE_USER", vec![]))
}

fn user_change(st: &mut St, c: &Ctx) -> Res {
    let inst = c.p("instance");
    let i = st.world.sql.get(&inst).cloned().ok_or_else(sql_not_found)?;
    sql_busy(st, &inst)?;
    let version = s(&i, "databaseVersion");
    let name = c.query.get("name").cloned().unwrap_or_default();
    let host = if version.starts_with("MYSQL_") {
        c.query.get("host").cloned().unwrap_or_else(|| "%".into())
    } else {
        String::new()
    };
    let key = (inst.clone(), name.clone(), host);
    if !st.world.users.contains_key(&key) {
        return Err(not_found(&format!("projects/{}/instances/{inst}/users/{name}", c.opts.project)));
    }
    if c.method_id == "sql.users.delete" {
        st.world.users.remove(&key);
        Ok(sql_op(st, c, &inst, "DELETE_USER", vec![]))
    } else {
        if let Some(n) = c.body.get("name").and_then(Value::as_str) {
            if n != name {
                return Err(invalid("Invalid request: a user cannot be renamed."));
            }
        }
        Ok(sql_op(st, c, &inst, "UPDATE_USER", vec![]))
    }
}
