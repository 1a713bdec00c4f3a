//! A load balancer served for real: an HTTP/1.1 reverse proxy (hyper) on loopback ports, one
//! per listener, routing by host and path prefix to the healthy targets of a target group, with
//! HTTP-to-HTTPS redirects and TLS from the local CA; a TLS passthrough listener forwards the
//! bytes of each connection to one healthy target of the default group unopened.
//!
//! Every target is probed by its own task on the group's health check, in compressed time
//! (one probe a second; see `docs/live.md`), and moves through the states the clouds report:
//! `initial` until it passed the healthy threshold, `healthy`, `unhealthy` after the unhealthy
//! threshold of consecutive failures, `draining` once deregistered while it still has requests
//! in flight, then gone. Only healthy targets receive new requests. A request that could not
//! reach its target (refused connection, or an idempotent request on a connection that closed)
//! is retried once on another healthy target, as the clouds' load balancers do.
//!
//! This module owns the listeners, the routing and the health of targets; it never starts or
//! stops the apps behind them.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST, LOCATION};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use konstacks_core::kind::api::{TargetHealth, TargetHealthState};
use konstacks_core::kinds::{
    HealthCheckSpec, HealthProtocol, ListenerProtocol, LoadBalancerObserved, RouteSpec, TlsPolicy,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// How much compressed time runs faster: one probe a second, whatever the spec's interval.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(1);
/// The longest a probe may take in live mode (the spec's timeout, at most this).
const PROBE_TIMEOUT_MAX: Duration = Duration::from_secs(2);
/// A request body the proxy buffers (it is buffered so a refused request can be retried).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How long the proxy waits for a target's answer before giving up with 504.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);
/// A draining target never waits less than this for its requests in flight (unless the spec's
/// delay is shorter).
const MIN_DRAIN: Duration = Duration::from_secs(5);

/// The live time of a spec's `seconds`, compressed like its probe interval.
pub(crate) fn compressed(seconds: u32, interval_s: u32) -> Duration {
    let ratio = PROBE_EVERY.as_secs_f64() / f64::from(interval_s.max(1));
    Duration::from_secs_f64(f64::from(seconds) * ratio.min(1.0))
}

/// A target's probe state.
#[derive(Debug)]
struct Status {
    state: TargetHealthState,
    reason: Option<String>,
    ok_streak: u32,
    fail_streak: u32,
    /// When a draining target is dropped even with requests still in flight.
    drain_deadline: Option<Instant>,
}

/// One registered (or draining) target.
#[derive(Debug)]
struct Target {
    vm_id: String,
    /// Where its app listens; `None` when its VM runs no app.
    addr: Option<SocketAddr>,
    status: Mutex<Status>,
    in_flight: AtomicUsize,
    prober: Mutex<Option<AbortHandle>>,
}

impl Target {
    fn state(&self) -> TargetHealthState {
        self.status.lock().map(|s| s.state).unwrap_or(TargetHealthState::Unavailable)
    }
}

/// A request in flight to a target; dropping it (when the response body is done or abandoned)
/// ends it.
#[derive(Debug)]
struct InFlight(Arc<Target>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Group {
    health: HealthCheckSpec,
    drain: Duration,
    targets: Vec<Arc<Target>>,
}

#[derive(Debug, Default)]
struct Config {
    groups: BTreeMap<String, Group>,
    routes: Vec<RouteSpec>,
    default_group: String,
}

/// What the request handlers of every listener share.
#[derive(Debug)]
struct Shared {
    name: String,
    config: RwLock<Config>,
    client: Client<HttpConnector, Full<Bytes>>,
    next: AtomicUsize,
    /// Protocol and live redirect port of each listener, by the spec's listener port.
    listeners: Mutex<BTreeMap<u16, (ListenerProtocol, Option<u16>)>>,
    /// The last failed probe of each target that ever failed one, kept after it left.
    last_failures: Mutex<BTreeMap<String, String>>,
}

/// One bound listener.
#[derive(Debug)]
struct Bound {
    port: u16,
    protocol: ListenerProtocol,
    /// The TLS policy it was bound with (a change rebinds it).
    tls13_only: bool,
    redirect_to: Option<u16>,
    accept: AbortHandle,
}

/// A live load balancer.
#[derive(Debug)]
pub(crate) struct LbServer {
    shared: Arc<Shared>,
    /// By the spec's listener port.
    listeners: BTreeMap<u16, Bound>,
    /// Closes every connection of this load balancer when it turns true.
    closing: watch::Sender<bool>,
}

fn upstream_client() -> Client<HttpConnector, Full<Bytes>> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .build(http)
}

impl LbServer {
    /// A load balancer with no listener yet; [`LbServer::update`] serves it.
    pub(crate) fn new(name: &str) -> Self {
        let (closing, _) = watch::channel(false);
        Self {
            shared: Arc::new(Shared {
                name: name.to_string(),
                config: RwLock::new(Config::default()),
                client: upstream_client(),
                next: AtomicUsize::new(0),
                listeners: Mutex::new(BTreeMap::new()),
                last_failures: Mutex::new(BTreeMap::new()),
            }),
            listeners: BTreeMap::new(),
            closing,
        }
    }

    /// Serve `lb` as it now is: listeners bound (kept across calls), groups, routes and targets
    /// (a target keeps its health across calls; a removed one drains). `addr_of` gives the
    /// address of a VM's app. Must run inside the tokio runtime.
    pub(crate) fn update(
        &mut self,
        lb: &LoadBalancerObserved,
        addr_of: &dyn Fn(&str) -> Option<SocketAddr>,
        tls: Option<&TlsAcceptor>,
    ) -> Result<(), String> {
        // Listeners first: a failure to bind changes nothing else.
        let wanted: BTreeMap<u16, _> = lb.listeners.iter().map(|l| (l.port, l)).collect();
        let gone: Vec<u16> = self.listeners.keys().filter(|p| !wanted.contains_key(p)).copied().collect();
        for p in gone {
            if let Some(b) = self.listeners.remove(&p) {
                b.accept.abort();
            }
        }
        for (spec_port, l) in &wanted {
            let tls13_only = lb.tls_policy == TlsPolicy::Tls13;
            let same = self.listeners.get(spec_port).is_some_and(|b| {
                b.protocol == l.protocol && (b.protocol != ListenerProtocol::Https || b.tls13_only == tls13_only)
            });
            if !same {
                if let Some(b) = self.listeners.remove(spec_port) {
                    b.accept.abort();
                }
                let std = std::net::TcpListener::bind(("127.0.0.1", 0))
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .map_err(|e| format!("cannot listen on a loopback port: {e}"))?;
                let port = std.local_addr().map_err(|e| format!("cannot read the listener's port: {e}"))?.port();
                let listener = TcpListener::from_std(std).map_err(|e| format!("cannot listen on port {port}: {e}"))?;
                let acceptor = match l.protocol {
                    ListenerProtocol::Https => Some(
                        tls.cloned()
                            .ok_or_else(|| "an HTTPS listener needs the local certificate authority".to_string())?,
                    ),
                    _ => None,
                };
                let accept = tokio::spawn(accept_loop(
                    listener,
                    self.shared.clone(),
                    acceptor,
                    *spec_port,
                    l.protocol == ListenerProtocol::TlsPassthrough,
                    self.closing.subscribe(),
                ))
                .abort_handle();
                self.listeners
                    .insert(*spec_port, Bound { port, protocol: l.protocol, tls13_only, redirect_to: None, accept });
            }
        }
        // Redirects point at the live port of the HTTPS listener they name.
        let live_port: BTreeMap<u16, u16> = self.listeners.iter().map(|(s, b)| (*s, b.port)).collect();
        for (spec_port, b) in &mut self.listeners {
            b.redirect_to =
                wanted.get(spec_port).and_then(|l| l.redirect_to_port).and_then(|p| live_port.get(&p).copied());
        }
        if let Ok(mut table) = self.shared.listeners.lock() {
            *table = self.listeners.iter().map(|(s, b)| (*s, (b.protocol, b.redirect_to))).collect();
        }

        let mut cfg = self.shared.config.write().map_err(|_| "the load balancer's state is poisoned".to_string())?;
        let mut routes = lb.routes.clone();
        routes.sort_by_key(|r| r.priority);
        cfg.routes = routes;
        cfg.default_group = lb.default_target_group.clone();
        let now = Instant::now();
        let mut old = std::mem::take(&mut cfg.groups);
        for g in &lb.target_groups {
            let prev = old.remove(&g.name);
            let drain = {
                let d = compressed(g.deregistration_delay_s, g.health_check.interval_s);
                d.max(MIN_DRAIN.min(Duration::from_secs(u64::from(g.deregistration_delay_s))))
            };
            let mut group = Group { health: g.health_check.clone(), drain, targets: Vec::new() };
            let mut prev_targets = prev.map(|p| p.targets).unwrap_or_default();
            for vm_id in &g.vm_ids {
                if let Some(at) = prev_targets.iter().position(|t| &t.vm_id == vm_id) {
                    let t = prev_targets.remove(at);
                    if let Ok(mut s) = t.status.lock() {
                        if s.state == TargetHealthState::Draining {
                            // Registered again while leaving: probed afresh.
                            *s = fresh_status();
                        }
                    }
                    group.targets.push(t);
                } else {
                    let t = Arc::new(Target {
                        vm_id: vm_id.clone(),
                        addr: addr_of(vm_id),
                        status: Mutex::new(fresh_status()),
                        in_flight: AtomicUsize::new(0),
                        prober: Mutex::new(None),
                    });
                    let task = tokio::spawn(probe_loop(self.shared.clone(), g.name.clone(), t.clone())).abort_handle();
                    if let Ok(mut p) = t.prober.lock() {
                        *p = Some(task);
                    }
                    group.targets.push(t);
                }
            }
            // Targets no longer registered drain, then their prober drops them.
            for t in prev_targets {
                if let Ok(mut s) = t.status.lock() {
                    if s.state != TargetHealthState::Draining {
                        s.state = TargetHealthState::Draining;
                        s.reason = Some("deregistered: finishing the requests in flight".into());
                        s.drain_deadline = Some(now + group.drain);
                    }
                }
                group.targets.push(t);
            }
            cfg.groups.insert(g.name.clone(), group);
        }
        // Groups removed from the spec take their targets with them at once.
        for g in old.into_values() {
            for t in g.targets {
                abort_prober(&t);
            }
        }
        Ok(())
    }

    /// The live port of each listener, by the spec's port, with its protocol.
    pub(crate) fn ports(&self) -> Vec<(u16, u16, ListenerProtocol)> {
        self.listeners.iter().map(|(s, b)| (*s, b.port, b.protocol)).collect()
    }

    /// One line per listener: `port 80 -> http://127.0.0.1:41234 (redirects to port 41235)`.
    pub(crate) fn describe(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|(spec, b)| {
                let scheme = if b.protocol.is_tls() { "https" } else { "http" };
                let mut redirect =
                    b.redirect_to.map(|p| format!(" (redirects to https://127.0.0.1:{p})")).unwrap_or_default();
                if b.protocol == ListenerProtocol::TlsPassthrough {
                    redirect.push_str(" (TLS passed through to the VMs)");
                }
                format!(
                    "load balancer `{}`: port {spec} -> {scheme}://127.0.0.1:{}{redirect}",
                    self.shared.name, b.port
                )
            })
            .collect()
    }

    /// The health of every target, draining ones included, sorted.
    pub(crate) fn health(&self) -> Vec<TargetHealth> {
        let Ok(cfg) = self.shared.config.read() else { return Vec::new() };
        let mut out: Vec<TargetHealth> = cfg
            .groups
            .iter()
            .flat_map(|(name, g)| {
                g.targets.iter().map(move |t| {
                    let (state, reason) = t
                        .status
                        .lock()
                        .map(|s| (s.state, s.reason.clone()))
                        .unwrap_or((TargetHealthState::Unavailable, None));
                    TargetHealth { group: name.clone(), target_id: t.vm_id.clone(), state, reason }
                })
            })
            .collect();
        out.sort();
        out
    }

    /// The last failed health check of target `vm_id`, even after it left.
    pub(crate) fn last_failure(&self, vm_id: &str) -> Option<String> {
        self.shared.last_failures.lock().ok().and_then(|m| m.get(vm_id).cloned())
    }

    /// Stop serving: listeners closed, connections dropped, probes stopped.
    pub(crate) fn stop(&mut self) {
        for b in std::mem::take(&mut self.listeners).into_values() {
            b.accept.abort();
        }
        let _ = self.closing.send(true);
        if let Ok(mut cfg) = self.shared.config.write() {
            for g in std::mem::take(&mut cfg.groups).into_values() {
                for t in g.targets {
                    abort_prober(&t);
                }
            }
        }
    }
}

impl Drop for LbServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fresh_status() -> Status {
    Status {
        state: TargetHealthState::Initial,
        reason: Some("registered: waiting for the health checks".into()),
        ok_streak: 0,
        fail_streak: 0,
        drain_deadline: None,
    }
}

fn abort_prober(t: &Target) {
    if let Ok(mut p) = t.prober.lock() {
        if let Some(h) = p.take() {
            h.abort();
        }
    }
}

impl Shared {
    /// The group a request for `host` and `path` goes to: the first rule that matches, by
    /// priority, else the default group.
    fn route(&self, host: &str, path: &str) -> Option<String> {
        let cfg = self.config.read().ok()?;
        let hit = cfg.routes.iter().find(|r| {
            r.host.as_deref().is_none_or(|h| host_matches(h, host))
                && r.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
        });
        Some(hit.map(|r| r.target_group.clone()).unwrap_or_else(|| cfg.default_group.clone()))
    }

    /// A healthy target of `group` not in `tried`, round robin, counted in flight.
    fn pick(&self, group: &str, tried: &[String]) -> Option<(String, SocketAddr, InFlight)> {
        let cfg = self.config.read().ok()?;
        let healthy: Vec<&Arc<Target>> = cfg
            .groups
            .get(group)?
            .targets
            .iter()
            .filter(|t| t.addr.is_some() && !tried.contains(&t.vm_id) && t.state() == TargetHealthState::Healthy)
            .collect();
        if healthy.is_empty() {
            return None;
        }
        let t = healthy[self.next.fetch_add(1, Ordering::Relaxed) % healthy.len()];
        let addr = t.addr?;
        // Counted while the configuration is read-locked: a deregistration, which takes the
        // write lock, sees every request that picked the target.
        t.in_flight.fetch_add(1, Ordering::SeqCst);
        Some((t.vm_id.clone(), addr, InFlight(t.clone())))
    }

    /// Protocol and live redirect port of the listener on the spec's `port`.
    fn listener(&self, port: u16) -> (ListenerProtocol, Option<u16>) {
        self.listeners.lock().ok().and_then(|t| t.get(&port).copied()).unwrap_or((ListenerProtocol::Http, None))
    }
}

/// `pattern` (`shop.example.com`, `*.example.com`: one label) matches `host`.
fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .and_then(|h| h.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => pattern == host,
    }
}

/// The request's host, lowercase, without a port.
fn host_of(req: &Request<Incoming>) -> String {
    let raw = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
        .unwrap_or_default();
    let raw = raw.to_ascii_lowercase();
    if raw.starts_with('[') {
        return raw.split_once(']').map(|(h, _)| format!("{h}]")).unwrap_or(raw);
    }
    raw.split(':').next().unwrap_or_default().to_string()
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    spec_port: u16,
    passthrough: bool,
    closing: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                // Out of file descriptors or a connection reset before accept: try again soon.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let mut closing = closing.clone();
        if passthrough {
            tokio::spawn(async move {
                tokio::select! {
                    () = pass_through(&shared, stream) => {}
                    _ = closing.wait_for(|c| *c) => {}
                }
            });
            continue;
        }
        tokio::spawn(async move {
            let https = tls.is_some();
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, spec_port, https, peer, req).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            let served = async {
                match tls {
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            };
            tokio::select! {
                () = served => {}
                _ = closing.wait_for(|c| *c) => {}
            }
        });
    }
}

/// A TLS passthrough connection: its bytes go to a healthy target of the default group
/// unopened (the target terminates TLS), tried on a second target when the first refuses. The
/// target counts the connection in flight until either side closes it.
async fn pass_through(shared: &Shared, mut client: tokio::net::TcpStream) {
    let Some(group) = shared.config.read().ok().map(|c| c.default_group.clone()) else { return };
    let mut tried: Vec<String> = Vec::new();
    for _ in 0..2 {
        let Some((vm_id, addr, _in_flight)) = shared.pick(&group, &tried) else { return };
        match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(mut upstream)) => {
                let _ = upstream.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                return;
            }
            _ => tried.push(vm_id),
        }
    }
}

fn local(status: StatusCode, text: String) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(text + "\n")).map_err(|never| match never {}).boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// Headers that belong to one hop and are never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(*n);
    }
}

fn idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

async fn handle(
    shared: Arc<Shared>,
    spec_port: u16,
    https: bool,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let host = host_of(&req);
    let path_and_query = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    if let (ListenerProtocol::Http, Some(to)) = shared.listener(spec_port) {
        let shown = if host.is_empty() { "127.0.0.1".to_string() } else { host.clone() };
        let mut r = local(StatusCode::MOVED_PERMANENTLY, format!("moved to HTTPS on port {to}"));
        if let Ok(v) = HeaderValue::from_str(&format!("https://{shown}:{to}{path_and_query}")) {
            r.headers_mut().insert(LOCATION, v);
        }
        return r;
    }
    let Some(group) = shared.route(&host, req.uri().path()) else {
        return local(StatusCode::SERVICE_UNAVAILABLE, format!("load balancer `{}` is stopping", shared.name));
    };
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return local(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body could not be read: {e}"));
        }
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.remove(hyper::header::CONTENT_LENGTH);
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(if https { "https" } else { "http" }));

    let mut tried: Vec<String> = Vec::new();
    let mut last_error = None;
    for _ in 0..2 {
        let Some((vm_id, addr, guard)) = shared.pick(&group, &tried) else { break };
        let uri: Uri = match format!("http://{addr}{path_and_query}").parse() {
            Ok(u) => u,
            Err(e) => return local(StatusCode::BAD_REQUEST, format!("invalid request target: {e}")),
        };
        let mut up = Request::new(Full::new(body.clone()));
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = uri;
        *up.headers_mut() = headers.clone();
        match tokio::time::timeout(UPSTREAM_TIMEOUT, shared.client.request(up)).await {
            Ok(Ok(resp)) => {
                let (mut rp, rb) = resp.into_parts();
                strip_hop_by_hop(&mut rp.headers);
                let body = Tracked { inner: rb, _guard: guard }.map_err(BoxError::from).boxed_unsync();
                return Response::from_parts(rp, body);
            }
            Ok(Err(e)) => {
                // Retry only what cannot have reached the app twice with effect.
                let retry = e.is_connect() || idempotent(&parts.method);
                last_error = Some(format!("target {vm_id} ({addr}): {e}"));
                tried.push(vm_id);
                if !retry {
                    break;
                }
            }
            Err(_) => {
                return local(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("target {vm_id} ({addr}) did not answer within {}s", UPSTREAM_TIMEOUT.as_secs()),
                )
            }
        }
    }
    match last_error {
        Some(e) => local(StatusCode::BAD_GATEWAY, format!("load balancer `{}`: {e}", shared.name)),
        None => local(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("load balancer `{}`: no healthy target in target group `{group}`", shared.name),
        ),
    }
}

/// A response body that keeps its target's request counted in flight until it is done.
struct Tracked {
    inner: Incoming,
    _guard: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `code` is one of `expected` (`200`, `200-399`, `200,204`).
fn status_matches(expected: Option<&str>, code: u16) -> bool {
    let expected = expected.unwrap_or("200-399");
    expected.split(',').map(str::trim).any(|part| match part.split_once('-') {
        Some((a, b)) => match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&code),
            _ => false,
        },
        None => part.parse::<u16>().is_ok_and(|c| c == code),
    })
}

/// One probe of `addr`: `Ok` on success, `Err(reason)` otherwise.
async fn probe(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    h: &HealthCheckSpec,
) -> Result<(), String> {
    let timeout = Duration::from_secs(u64::from(h.timeout_s)).min(PROBE_TIMEOUT_MAX);
    match h.protocol {
        HealthProtocol::Tcp => match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("TCP connection to {addr} failed: {e}")),
            Err(_) => Err(format!("TCP connection to {addr} timed out")),
        },
        // The app listens on plain HTTP on loopback: HTTPS checks are made over HTTP too.
        _ => {
            let path = h.path.as_deref().unwrap_or("/");
            let uri: Uri = format!("http://{addr}{path}").parse().map_err(|e| format!("invalid health path: {e}"))?;
            let mut req = Request::new(Full::new(Bytes::new()));
            *req.uri_mut() = uri;
            req.headers_mut().insert("user-agent", HeaderValue::from_static("konstacks-live-health-check"));
            match tokio::time::timeout(timeout, client.request(req)).await {
                Ok(Ok(resp)) => {
                    let code = resp.status().as_u16();
                    // Read the body so the connection can be reused.
                    let _ = tokio::time::timeout(timeout, resp.into_body().collect()).await;
                    if status_matches(h.expected_status.as_deref(), code) {
                        Ok(())
                    } else {
                        Err(format!("health check GET {path} answered {code}"))
                    }
                }
                Ok(Err(e)) => Err(format!("health check GET {path} failed: {e}")),
                Err(_) => Err(format!("health check GET {path} timed out after {}ms", timeout.as_millis())),
            }
        }
    }
}

/// Probe `t` once a second and move it through its states; once it drained, drop it.
async fn probe_loop(shared: Arc<Shared>, group: String, t: Arc<Target>) {
    let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1).build_http();
    loop {
        let (draining, deadline) = match t.status.lock() {
            Ok(s) => (s.state == TargetHealthState::Draining, s.drain_deadline),
            Err(_) => return,
        };
        if draining {
            let done = t.in_flight.load(Ordering::SeqCst) == 0 || deadline.is_some_and(|d| Instant::now() >= d);
            if done {
                if let Ok(mut cfg) = shared.config.write() {
                    if let Some(g) = cfg.groups.get_mut(&group) {
                        // Only if still draining: it may have been registered again meanwhile.
                        if t.state() == TargetHealthState::Draining {
                            g.targets.retain(|x| !Arc::ptr_eq(x, &t));
                            return;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let health = shared.config.read().ok().and_then(|c| c.groups.get(&group).map(|g| g.health.clone()));
        let Some(health) = health else { return };
        let result = match t.addr {
            Some(addr) => probe(&client, addr, &health).await,
            None => Err("the VM runs no app (give it one with `.app(...)` to serve it live)".to_string()),
        };
        if let Ok(mut s) = t.status.lock() {
            if s.state != TargetHealthState::Draining {
                match result {
                    Ok(()) => {
                        s.fail_streak = 0;
                        s.ok_streak = s.ok_streak.saturating_add(1);
                        if s.ok_streak >= health.healthy_threshold && s.state != TargetHealthState::Healthy {
                            s.state = TargetHealthState::Healthy;
                            s.reason = None;
                        }
                    }
                    Err(reason) => {
                        if let Ok(mut m) = shared.last_failures.lock() {
                            m.insert(t.vm_id.clone(), reason.clone());
                        }
                        s.ok_streak = 0;
                        s.fail_streak = s.fail_streak.saturating_add(1);
                        if s.fail_streak >= health.unhealthy_threshold {
                            s.state = TargetHealthState::Unhealthy;
                        }
                        s.reason = Some(reason);
                    }
                }
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(priority: u32, host: Option<&str>, path: Option<&str>, group: &str) -> RouteSpec {
        RouteSpec {
            priority,
            host: host.map(str::to_string),
            path_prefix: path.map(str::to_string),
            target_group: group.to_string(),
        }
    }

    #[test]
    fn requests_follow_the_first_matching_rule_by_priority_else_the_default_group() {
        let lb = LbServer::new("lb");
        {
            let mut cfg = lb.shared.config.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            cfg.default_group = "web".into();
            // Given out of order: priority decides, as on the clouds.
            cfg.routes = vec![
                route(2, Some("*.example.com"), None, "tenants"),
                route(1, Some("api.example.com"), Some("/v1"), "api"),
                route(3, None, Some("/static"), "assets"),
            ];
            cfg.routes.sort_by_key(|r| r.priority);
        }
        let to = |host: &str, path: &str| lb.shared.route(host, path).unwrap_or_default();
        assert_eq!(to("api.example.com", "/v1/users"), "api");
        assert_eq!(to("api.example.com", "/v2"), "tenants");
        assert_eq!(to("shop.example.com", "/static/a.css"), "tenants");
        assert_eq!(to("127.0.0.1", "/static/a.css"), "assets");
        assert_eq!(to("127.0.0.1", "/"), "web");
        // No target registered: nothing to pick.
        assert!(lb.shared.pick("web", &[]).is_none());
    }

    /// A load balancer with one TLS passthrough listener on 443 and one target probed by TCP.
    fn passthrough_lb(target_port: u16) -> LoadBalancerObserved {
        use konstacks_core::kinds::{LbScheme, ListenerSpec, TargetGroupSpec};
        LoadBalancerObserved {
            id: "lb-1".into(),
            name: "lb".into(),
            region: "sim-1".into(),
            scheme: LbScheme::Public,
            subnet_ids: Vec::new(),
            firewall_ids: Vec::new(),
            listeners: vec![ListenerSpec {
                port: 443,
                protocol: ListenerProtocol::TlsPassthrough,
                certificate_ids: Vec::new(),
                redirect_to_port: None,
            }],
            target_groups: vec![TargetGroupSpec {
                name: "app".into(),
                port: target_port,
                vm_ids: vec!["vm-1".into()],
                health_check: HealthCheckSpec {
                    protocol: HealthProtocol::Tcp,
                    port: None,
                    path: None,
                    interval_s: 5,
                    timeout_s: 2,
                    healthy_threshold: 2,
                    unhealthy_threshold: 2,
                    expected_status: None,
                },
                deregistration_delay_s: 0,
                release: Default::default(),
            }],
            routes: Vec::new(),
            default_target_group: "app".into(),
            tls_policy: TlsPolicy::Tls12,
            security_policy: None,
            assumed_gb_processed_per_month: 0.0,
            dns_name: "lb.sim".into(),
            ip: None,
            url: "https://lb.sim".into(),
            status: "active".into(),
            targets: Vec::new(),
            tags: Default::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tls_passthrough_listener_forwards_the_bytes_of_a_connection_unopened() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // The target echoes what it receives: a TLS record arrives as the client sent it.
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let target_addr = target.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = target.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let mut lb = LbServer::new("lb");
        lb.update(&passthrough_lb(target_addr.port()), &|_| Some(target_addr), None)
            .unwrap_or_else(|e| panic!("update: {e}"));
        let [(443, live, ListenerProtocol::TlsPassthrough)] = lb.ports()[..] else {
            panic!("one passthrough listener expected: {:?}", lb.ports())
        };
        assert!(lb.describe()[0].contains("TLS passed through"), "{:?}", lb.describe());
        let healthy = |lb: &LbServer| lb.health().iter().any(|h| h.state == TargetHealthState::Healthy);
        for _ in 0..200 {
            if healthy(&lb) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(healthy(&lb), "the target never turned healthy: {:?}", lb.health());
        // The start of a TLS ClientHello: a load balancer that terminated TLS would answer
        // with an alert or close, not echo it.
        let hello: &[u8] = &[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00];
        let mut client = tokio::net::TcpStream::connect(("127.0.0.1", live)).await.unwrap_or_else(|e| panic!("{e}"));
        client.write_all(hello).await.unwrap_or_else(|e| panic!("write: {e}"));
        let mut back = vec![0u8; hello.len()];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut back))
            .await
            .unwrap_or_else(|_| panic!("no echo within 10 s"))
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert_eq!(back, hello);
        lb.stop();
    }

    #[test]
    fn hosts_statuses_and_time_compression() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("Shop.example.com", "shop.example.com"));
        assert!(status_matches(None, 302));
        assert!(!status_matches(Some("200"), 204));
        assert!(status_matches(Some("200,204"), 204));
        assert!(!status_matches(Some("200-299"), 500));
        assert_eq!(compressed(30, 30), Duration::from_secs(1));
        assert_eq!(compressed(300, 30), Duration::from_secs(10));
        assert_eq!(compressed(10, 5), Duration::from_secs(2));
    }
}
