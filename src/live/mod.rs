//! Live mode: the simulated cloud running a stack for real on this machine (`konstacks dev`).
//!
//! [`LiveRuntime`] implements the simulated cloud's [`Runtime`] hooks: a VM's app runs as a
//! child process (the command form, or the image form through a local container engine), a
//! load balancer is a reverse proxy on loopback ports with real health checks and draining,
//! and a PostgreSQL database or Redis cache is a throwaway local server where the server
//! binaries are installed (simulated otherwise). [`LiveRuntime::shutdown`] stops every process
//! and listener it started. `docs/live.md` describes the whole mode.
//!
//! This module owns the processes, ports and temporary files of a live session; what exists is
//! decided by the engine through the simulated cloud, never here. It prints nothing: the CLI
//! reports. Secret values reach the children only (environment, files of mode 0600).

mod apps;
mod procs;
mod proxy;
mod servers;
mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use konstacks_core::kind::api::{TargetHealth, TargetHealthState};
use konstacks_core::kinds::{
    CacheObserved, CacheSpec, DatabaseObserved, DatabaseSpec, DbEngine, ListenerProtocol, LoadBalancerObserved,
    TlsPolicy, VmObserved, VmSpec,
};
use konstacks_core::sim::runtime::{LiveAddress, LiveEndpoint, Runtime};
use tokio::task::JoinHandle;

use self::procs::{Proc, StopSignal};

/// Why live mode could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Its temporary directory could not be made.
    #[error("cannot create the live session's directory {path}: {message}")]
    TempDir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Where a live session keeps its files.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// The directory apps run in (relative commands resolve from it): usually the current one.
    pub work_dir: PathBuf,
    /// Where the local certificate authority is kept across sessions (`.konstacks/live-ca`).
    pub ca_dir: PathBuf,
}

/// What stopped at [`LiveRuntime::shutdown`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Processes stopped (apps, database and cache servers).
    pub processes: usize,
    /// Load balancers whose listeners were closed.
    pub load_balancers: usize,
}

/// A process that ended during the session, with what the load balancers saw of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    /// Order of retirement in the session.
    pub seq: u64,
    /// What it was (`app of VM web-1 (vm-7)`).
    pub what: String,
    /// The VM's provider id.
    pub vm_id: String,
    /// The app's version.
    pub version: String,
    /// The last failed health check a load balancer saw, if any.
    pub last_health_failure: Option<String>,
    /// How the process ended on its own before it was stopped, if it did.
    pub exited: Option<String>,
    /// Its log file (removed with the session's directory at shutdown).
    pub log: PathBuf,
    /// The last lines of its log.
    pub log_tail: String,
}

#[derive(Debug, Default)]
struct Inner {
    apps: BTreeMap<String, apps::RunningApp>,
    lbs: BTreeMap<String, proxy::LbServer>,
    servers: BTreeMap<String, Proc>,
    used_ports: BTreeSet<u16>,
    stopping: Vec<JoinHandle<()>>,
    retired: Vec<Retired>,
    seq: u64,
    stopped: Stopped,
}

/// The simulated cloud's live mode; attach with `SimCloud::with_runtime`.
pub struct LiveRuntime {
    inner: Mutex<Inner>,
    handle: tokio::runtime::Handle,
    root: PathBuf,
    opts: LiveOptions,
    servers: servers::Servers,
    ca: Mutex<Option<tls::LocalCa>>,
}

impl std::fmt::Debug for LiveRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRuntime").field("root", &self.root).finish_non_exhaustive()
    }
}

impl LiveRuntime {
    /// A live runtime whose tasks run on `handle`, with a fresh temporary directory for logs and
    /// server data.
    pub fn new(handle: tokio::runtime::Handle, opts: LiveOptions) -> Result<Arc<Self>, LiveError> {
        let root = std::env::temp_dir().join(format!("konstacks-live-{}", std::process::id()));
        std::fs::create_dir_all(root.join("apps"))
            .map_err(|e| LiveError::TempDir { path: root.clone(), message: e.to_string() })?;
        Ok(Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            handle,
            root,
            opts,
            servers: servers::Servers::find(),
            ca: Mutex::new(None),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the apps' logs are.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("apps")
    }

    /// The PEM file of the local CA's root, once an HTTPS listener made it.
    pub fn root_ca(&self) -> Option<PathBuf> {
        self.ca.lock().ok().and_then(|c| c.as_ref().map(|c| c.root_pem.clone()))
    }

    /// What becomes of a database of `engine` (`postgres`): `Ok(what runs it)` or `Err(why it
    /// stays simulated)`.
    pub fn database_note(&self, engine: &str) -> Result<String, String> {
        self.servers.database_note(engine)
    }

    /// What becomes of a cache of `engine` (`redis`).
    pub fn cache_note(&self, engine: &str) -> Result<String, String> {
        self.servers.cache_note(engine)
    }

    /// The live URL of every load balancer served, by provider id.
    pub fn load_balancer_urls(&self) -> BTreeMap<String, String> {
        self.lock().lbs.iter().map(|(id, lb)| (id.clone(), endpoint(lb, "").url)).collect()
    }

    /// One line per live listener, saying where it listens and where it redirects.
    pub fn listeners(&self) -> Vec<String> {
        self.lock().lbs.values().flat_map(proxy::LbServer::describe).collect()
    }

    /// The health of every target of every live load balancer, by load balancer id.
    pub fn health(&self) -> BTreeMap<String, Vec<TargetHealth>> {
        self.lock().lbs.iter().map(|(id, lb)| (id.clone(), lb.health())).collect()
    }

    /// A mark to pass to [`LiveRuntime::retired_since`].
    pub fn mark(&self) -> u64 {
        self.lock().seq
    }

    /// The apps stopped after `mark`, with their evidence.
    pub fn retired_since(&self, mark: u64) -> Vec<Retired> {
        self.lock().retired.iter().filter(|r| r.seq > mark).cloned().collect()
    }

    /// The pids (= process groups) of every process running now.
    pub fn pids(&self) -> Vec<u32> {
        let g = self.lock();
        g.apps.values().map(|a| a.proc.pid).chain(g.servers.values().map(|p| p.pid)).collect()
    }

    /// Stop everything: listeners closed, every process group signalled and reaped, the
    /// session's directory removed. Idempotent.
    pub async fn shutdown(&self) -> Stopped {
        let (handles, stopped) = {
            let mut g = self.lock();
            let mut lbs = std::mem::take(&mut g.lbs);
            for lb in lbs.values_mut() {
                lb.stop();
            }
            g.stopped.load_balancers += lbs.len();
            let apps: Vec<String> = g.apps.keys().cloned().collect();
            for id in apps {
                self.stop_app_locked(&mut g, &id);
            }
            let servers: Vec<String> = g.servers.keys().cloned().collect();
            for id in servers {
                self.stop_server_locked(&mut g, &id);
            }
            (std::mem::take(&mut g.stopping), g.stopped.clone())
        };
        for h in handles {
            let _ = h.await;
        }
        let _ = std::fs::remove_dir_all(&self.root);
        stopped
    }

    /// A free loopback port never handed out before in this session.
    fn free_port(&self, g: &mut Inner) -> Result<u16, String> {
        for _ in 0..64 {
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("cannot find a free loopback port: {e}"))?
                .port();
            if g.used_ports.insert(port) {
                return Ok(port);
            }
        }
        Err("cannot find a free loopback port not used before in this session".into())
    }

    fn stop_app_locked(&self, g: &mut Inner, id: &str) {
        let Some(app) = g.apps.remove(id) else { return };
        g.seq += 1;
        let last_health_failure = g.lbs.values().find_map(|lb| lb.last_failure(id));
        g.retired.push(Retired {
            seq: g.seq,
            what: app.proc.what.clone(),
            vm_id: id.to_string(),
            version: app.version.clone(),
            last_health_failure,
            exited: app.proc.exited(),
            log: app.proc.log.clone(),
            log_tail: app.proc.log_tail(20),
        });
        g.stopped.processes += 1;
        let h = self.handle.spawn(async move {
            app.proc.stop(StopSignal::Term, Duration::from_secs(5)).await;
            if let Some((engine, name)) = &app.container {
                apps::remove_container(engine, name).await;
            }
        });
        g.stopping.push(h);
    }

    fn stop_server_locked(&self, g: &mut Inner, id: &str) {
        let Some(proc) = g.servers.remove(id) else { return };
        g.stopped.processes += 1;
        let h = self.handle.spawn(async move {
            // PostgreSQL takes SIGINT as its fast shutdown; Redis and others SIGTERM.
            let sig = if proc.what.starts_with("PostgreSQL") { StopSignal::Int } else { StopSignal::Term };
            proc.stop(sig, Duration::from_secs(10)).await;
        });
        g.stopping.push(h);
    }

    fn ca(&self) -> Result<tls::LocalCa, String> {
        let mut slot = self.ca.lock().map_err(|_| "the local CA's state is poisoned".to_string())?;
        if let Some(ca) = slot.as_ref() {
            return Ok(ca.clone());
        }
        let ca = tls::LocalCa::open(&self.opts.ca_dir)?;
        *slot = Some(ca.clone());
        Ok(ca)
    }
}

/// How a live load balancer is reached: its HTTPS listener when it has one, else its first.
/// The DNS name stays the simulated one (DNS records alias it); the URL is the live listener.
fn endpoint(lb: &proxy::LbServer, dns_name: &str) -> LiveEndpoint {
    let ports = lb.ports();
    let https = ports.iter().find(|(_, _, p)| p.is_tls());
    let (scheme, port) = match (https, ports.first()) {
        (Some((_, live, _)), _) => ("https", *live),
        (None, Some((_, live, _))) => ("http", *live),
        (None, None) => ("http", 0),
    };
    LiveEndpoint { url: format!("{scheme}://127.0.0.1:{port}"), dns_name: dns_name.to_string() }
}

fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

impl Runtime for LiveRuntime {
    fn start_vm(&self, vm: &VmObserved, spec: &VmSpec) -> Result<(), String> {
        let Some(app) = &spec.app else { return Ok(()) };
        let _rt = self.handle.enter();
        let mut g = self.lock();
        let port = self.free_port(&mut g)?;
        let log = self.logs_dir().join(format!("{}-{}.log", slug(&vm.name), slug(&vm.id)));
        let running = apps::start(vm, spec, app, port, &self.opts.work_dir, &log)?;
        g.apps.insert(vm.id.clone(), running);
        Ok(())
    }

    fn stop_vm(&self, id: &str) {
        let _rt = self.handle.enter();
        let mut g = self.lock();
        self.stop_app_locked(&mut g, id);
    }

    fn start_database(&self, db: &DatabaseObserved, spec: &DatabaseSpec) -> Result<Option<LiveAddress>, String> {
        let Some((bin, _)) = self.servers.postgres.clone() else { return Ok(None) };
        if spec.engine != DbEngine::Postgres {
            return Ok(None);
        }
        let _rt = self.handle.enter();
        let port = self.free_port(&mut self.lock())?;
        let dir = self.root.join(format!("db-{}-{}", slug(&spec.name), slug(&db.id)));
        let what = format!("PostgreSQL server of database `{}`", spec.name);
        let password = spec.password.as_ref().map(|p| p.expose().clone());
        let user = db.admin_user.clone();
        let proc = servers::blocking(|| {
            let proc = servers::start_postgres(&bin, &dir, &what, port, &user, password.as_deref())?;
            // A database named after the admin user, so clients that name none find one.
            let mut create = std::process::Command::new(bin.join("createdb"));
            create.env_clear().args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", &user, &user]);
            if let Some(p) = &password {
                create.env("PGPASSWORD", p);
            }
            let ok = create.output().map(|o| o.status.success()).unwrap_or(false);
            if !ok {
                let stop = proc.clone();
                self.handle.spawn(async move { stop.stop(StopSignal::Int, Duration::from_secs(10)).await });
                return Err(format!("the {what} started, but its database `{user}` could not be created"));
            }
            Ok(proc)
        })?;
        self.lock().servers.insert(db.id.clone(), proc);
        Ok(Some(LiveAddress { host: "127.0.0.1".into(), port }))
    }

    fn stop_database(&self, id: &str) {
        let _rt = self.handle.enter();
        let mut g = self.lock();
        self.stop_server_locked(&mut g, id);
    }

    fn start_cache(&self, cache: &CacheObserved, spec: &CacheSpec) -> Result<Option<LiveAddress>, String> {
        let Some(bin) = self.servers.redis.clone() else { return Ok(None) };
        let _rt = self.handle.enter();
        let port = self.free_port(&mut self.lock())?;
        let dir = self.root.join(format!("cache-{}-{}", slug(&spec.name), slug(&cache.id)));
        let what = format!("Redis server of cache `{}`", spec.name);
        let token = spec.auth_token.as_ref().map(|t| t.expose().clone());
        let proc = servers::blocking(|| servers::start_redis(&bin, &dir, &what, port, token.as_deref()))?;
        self.lock().servers.insert(cache.id.clone(), proc);
        Ok(Some(LiveAddress { host: "127.0.0.1".into(), port }))
    }

    fn stop_cache(&self, id: &str) {
        let _rt = self.handle.enter();
        let mut g = self.lock();
        self.stop_server_locked(&mut g, id);
    }

    fn serve_load_balancer(&self, lb: &LoadBalancerObserved) -> Result<LiveEndpoint, String> {
        let _rt = self.handle.enter();
        let tls = if lb.listeners.iter().any(|l| l.protocol == ListenerProtocol::Https) {
            Some(self.ca()?.acceptor(lb.tls_policy == TlsPolicy::Tls13))
        } else {
            None
        };
        let mut g = self.lock();
        let ports: BTreeMap<String, u16> = g.apps.iter().map(|(id, a)| (id.clone(), a.port)).collect();
        let addr_of = |vm: &str| ports.get(vm).map(|p| SocketAddr::from(([127, 0, 0, 1], *p)));
        let server = g.lbs.entry(lb.id.clone()).or_insert_with(|| proxy::LbServer::new(&lb.name));
        server.update(lb, &addr_of, tls.as_ref())?;
        Ok(endpoint(server, &lb.dns_name))
    }

    fn stop_load_balancer(&self, id: &str) {
        let _rt = self.handle.enter();
        let mut g = self.lock();
        if let Some(mut lb) = g.lbs.remove(id) {
            lb.stop();
            g.stopped.load_balancers += 1;
        }
    }

    fn target_health(&self, lb_id: &str) -> Option<Vec<TargetHealth>> {
        self.lock().lbs.get(lb_id).map(proxy::LbServer::health)
    }
}

/// Whether every group of every live load balancer has a healthy target.
pub fn all_groups_serving(health: &BTreeMap<String, Vec<TargetHealth>>) -> bool {
    health.values().all(|targets| {
        let groups: BTreeSet<&str> = targets.iter().map(|t| t.group.as_str()).collect();
        groups.iter().all(|g| targets.iter().any(|t| t.group == *g && t.state == TargetHealthState::Healthy))
    })
}

impl LiveRuntime {
    /// The URL of every running VM app, by VM provider id (`http://127.0.0.1:PORT`).
    pub fn app_urls(&self) -> BTreeMap<String, String> {
        self.lock().apps.iter().map(|(id, a)| (id.clone(), format!("http://127.0.0.1:{}", a.port))).collect()
    }
}

/// `GET url` once (HTTP, or HTTPS trusting `root_ca`, a PEM file), following no redirect:
/// the status and the body as text. Bounded to 30 s.
pub async fn get(url: &str, root_ca: Option<&std::path::Path>) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;

    async fn send<T>(io: T, req: hyper::Request<Empty<Bytes>>) -> Result<(u16, String), String>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    let work = async {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().ok_or("the URL has no host")?.trim_matches(|c| c == '[' || c == ']').to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_else(|| host.clone());
        let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
        if !https {
            return send(tcp, req).await;
        }
        let mut roots = rustls::RootCertStore::empty();
        if let Some(path) = root_ca {
            use rustls::pki_types::pem::PemObject as _;
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("cannot trust {}: {e}", path.display()))?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
        let tls =
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
        send(tls, req).await
    };
    tokio::time::timeout(Duration::from_secs(30), work).await.map_err(|_| "no answer within 30s".to_string())?
}
