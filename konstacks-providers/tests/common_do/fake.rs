//! A small stateful fake of the DigitalOcean API v2 endpoints the backend uses, served by axum
//! on 127.0.0.1. It behaves like the API where it matters to Konstacks: 404 for missing ids,
//! 422 for invalid input, 429 with rate-limit headers when asked to, droplets `new` -> `active`
//! and clusters `creating` -> `online` after a few reads, actions that take a poll, pagination
//! (`links.pages.next`, `meta.total`) and tag filters. Every answer is meant to satisfy
//! DigitalOcean's OpenAPI description, which Prism checks in front of it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

const T0: &str = "2026-01-01T00:00:00Z";
const REGIONS: &[&str] =
    &["ams3", "fra1", "lon1", "blr1", "sgp1", "syd1", "tor1", "nyc1", "nyc3", "sfo2", "sfo3", "atl1"];
/// (slug, memory MiB, vcpus, disk GB, monthly USD)
const SIZES: &[(&str, u64, u64, u64, f64)] = &[
    ("s-1vcpu-512mb-10gb", 512, 1, 10, 4.0),
    ("s-1vcpu-1gb", 1024, 1, 25, 6.0),
    ("s-1vcpu-2gb", 2048, 1, 50, 12.0),
    ("s-2vcpu-2gb", 2048, 2, 60, 18.0),
    ("s-2vcpu-4gb", 4096, 2, 80, 24.0),
    ("s-4vcpu-8gb", 8192, 4, 160, 48.0),
    ("s-8vcpu-16gb", 16384, 8, 320, 96.0),
];
const IMAGES: &[(&str, &str, &str)] =
    &[("ubuntu-24-04-x64", "Ubuntu", "24.04 (LTS) x64"), ("debian-12-x64", "Debian", "12 x64")];
const DB_SIZES: &[&str] = &["db-s-1vcpu-1gb", "db-s-1vcpu-2gb", "db-s-2vcpu-4gb", "db-s-4vcpu-8gb", "db-s-6vcpu-16gb"];

/// Reads of a new droplet before it is `active`.
const DROPLET_POLLS: u32 = 2;
/// Reads of a new or resizing cluster before it is `online`.
const DB_POLLS: u32 = 3;
/// Reads of a new load balancer before it is `active`.
const LB_POLLS: u32 = 2;
const LB_ENTRY_PROTOCOLS: &[&str] = &["http", "https", "http2", "http3", "tcp", "udp"];
const LB_TARGET_PROTOCOLS: &[&str] = &["http", "https", "http2", "tcp", "udp"];

#[derive(Debug, Clone)]
struct Droplet {
    id: u64,
    name: String,
    region: String,
    size: String,
    image: String,
    tags: Vec<String>,
    vpc: String,
    private_ip: String,
    public_ip: Option<String>,
    status: String,
    polls_left: u32,
    disk: u64,
    user_data: String,
}

#[derive(Debug, Clone)]
struct Firewall {
    id: String,
    name: String,
    /// (inbound, protocol, ports, kind, value)
    atoms: BTreeSet<(bool, String, String, String, String)>,
    tags: Vec<String>,
}

#[derive(Debug, Clone)]
struct Db {
    id: String,
    name: String,
    engine: String,
    version: String,
    size: String,
    num_nodes: u64,
    region: String,
    vpc: String,
    tags: Vec<String>,
    storage_mib: Option<u64>,
    status: String,
    polls_left: u32,
    rules: Vec<Value>,
    /// The admin password the "cloud" generated (never the one a client might send).
    password: String,
}

#[derive(Debug, Clone)]
struct Project {
    id: String,
    name: String,
    description: String,
    purpose: String,
    environment: Option<String>,
    resources: Vec<String>,
}

#[derive(Debug, Default)]
struct St {
    counter: u64,
    vpcs: BTreeMap<String, Value>,
    tags: BTreeSet<String>,
    firewalls: BTreeMap<String, Firewall>,
    droplets: BTreeMap<u64, Droplet>,
    actions: BTreeMap<u64, (Value, u32)>,
    dbs: BTreeMap<String, Db>,
    projects: BTreeMap<String, Project>,
    /// Domains and their records by id.
    domains: BTreeMap<String, BTreeMap<u64, Value>>,
    /// Certificates by id, with the reads left before Let's Encrypt "verifies" them.
    certs: BTreeMap<String, (Value, u32)>,
    /// Load balancers by id, with the reads left while they are `new`.
    lbs: BTreeMap<String, (Value, u32)>,
    /// Addresses given to load balancers so far.
    lb_addresses: u64,
    /// Droplets whose load balancer health checks fail.
    unhealthy: BTreeSet<u64>,
    /// When set, every droplet outside it fails its load balancer health checks.
    healthy_only: Option<BTreeSet<u64>>,
    keys: Vec<Value>,
    throttle: u32,
    remaining: u64,
    reset_in: u64,
    max_per_page: usize,
    corrupt_next_vpc_list: bool,
    log: Vec<String>,
}

/// What the fake holds, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// VPC names.
    pub vpcs: Vec<String>,
    /// Tag names.
    pub tags: Vec<String>,
    /// Firewall names.
    pub firewalls: Vec<String>,
    /// Droplet names.
    pub droplets: Vec<String>,
    /// Database cluster names.
    pub databases: Vec<String>,
    /// Project names.
    pub projects: Vec<String>,
    /// Domain names.
    pub domains: Vec<String>,
    /// Certificate names.
    pub certificates: Vec<String>,
    /// Load balancer names.
    pub load_balancers: Vec<String>,
}

/// A handle on a running fake.
#[derive(Clone)]
pub struct Fake {
    st: Arc<Mutex<St>>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Fake {
    /// Serve on `127.0.0.1:port` (0 = any free port) from a thread of its own, so the fake
    /// outlives each test's runtime.
    pub fn start(port: u16) -> Fake {
        let st = Arc::new(Mutex::new(St { remaining: 5000, reset_in: 60, max_per_page: 200, ..St::default() }));
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = st.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("fake runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the DigitalOcean fake");
                let addr = listener.local_addr().expect("local addr");
                tx.send(addr.port()).expect("report port");
                let app = axum::Router::new().fallback(handle).with_state(shared);
                axum::serve(listener, app).await.expect("serve the DigitalOcean fake");
            });
        });
        let port = rx.recv().expect("fake started");
        Fake { st, url: format!("http://127.0.0.1:{port}") }
    }

    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answer the next `n` requests with 429.
    pub fn throttle_next(&self, n: u32) {
        self.lock().throttle = n;
    }

    /// Report `remaining` calls left in a window that resets in `reset_in` seconds.
    pub fn set_rate(&self, remaining: u64, reset_in: u64) {
        let mut s = self.lock();
        s.remaining = remaining;
        s.reset_in = reset_in;
    }

    /// Serve at most `n` items per page (DigitalOcean: 200).
    pub fn set_max_per_page(&self, n: usize) {
        self.lock().max_per_page = n.max(1);
    }

    /// The next VPC listing breaks the OpenAPI description (to prove violations surface).
    pub fn corrupt_next_vpc_list(&self) {
        self.lock().corrupt_next_vpc_list = true;
    }

    /// Requests answered so far (`METHOD path?query -> status`).
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// What the fake holds.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        Snapshot {
            vpcs: s.vpcs.values().filter_map(|v| v["name"].as_str().map(str::to_string)).collect(),
            tags: s.tags.iter().cloned().collect(),
            firewalls: s.firewalls.values().map(|f| f.name.clone()).collect(),
            droplets: s.droplets.values().map(|d| d.name.clone()).collect(),
            databases: s.dbs.values().map(|d| d.name.clone()).collect(),
            projects: s.projects.values().map(|p| p.name.clone()).collect(),
            domains: s.domains.keys().cloned().collect(),
            certificates: s.certs.values().filter_map(|c| c.0["name"].as_str().map(str::to_string)).collect(),
            load_balancers: s.lbs.values().filter_map(|l| l.0["name"].as_str().map(str::to_string)).collect(),
        }
    }

    /// The size slug of the cluster named `name`.
    pub fn database_size(&self, name: &str) -> Option<String> {
        self.lock().dbs.values().find(|d| d.name == name).map(|d| d.size.clone())
    }

    /// The trusted sources of the cluster named `name`, as `type:value`.
    pub fn database_rules(&self, name: &str) -> Vec<String> {
        self.lock()
            .dbs
            .values()
            .find(|d| d.name == name)
            .map(|d| d.rules.iter().map(|r| format!("{}:{}", s(r, "type"), s(r, "value"))).collect())
            .unwrap_or_default()
    }

    /// The password the fake generated for the cluster named `name`.
    pub fn database_password(&self, name: &str) -> Option<String> {
        self.lock().dbs.values().find(|d| d.name == name).map(|d| d.password.clone())
    }

    /// The environment Konstacks wrote into the user data of the droplet named `name` (the
    /// base64 env file of its cloud-config part), as `KEY=value` pairs.
    pub fn droplet_env(&self, name: &str) -> BTreeMap<String, String> {
        let ud = self.lock().droplets.values().find(|d| d.name == name).map(|d| d.user_data.clone());
        let Some(ud) = ud else { return BTreeMap::new() };
        let Some(b64) = ud.lines().find_map(|l| l.trim().strip_prefix("content: ")) else { return BTreeMap::new() };
        let text = String::from_utf8(b64_decode(b64)).unwrap_or_default();
        text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The names of the certificates the fake holds.
    pub fn certificates(&self) -> Vec<String> {
        self.lock().certs.values().map(|c| s(&c.0, "name")).collect()
    }

    /// The load balancer named `name` as the fake answers it.
    pub fn load_balancer(&self, name: &str) -> Option<Value> {
        let st = self.lock();
        st.lbs.values().find(|l| l.0["name"] == name).map(|l| st.lb_json(&l.0))
    }

    /// Make the load balancer health checks of the droplet named `droplet_name` fail, or pass
    /// again (they pass while the droplet is `active`).
    /// Make every droplet outside `ids` fail its load balancer health checks (an app release
    /// that never comes up); `None` ends it.
    pub fn set_healthy_only(&self, ids: Option<BTreeSet<u64>>) {
        self.lock().healthy_only = ids;
    }

    pub fn set_droplet_unhealthy(&self, droplet_name: &str, unhealthy: bool) {
        let mut st = self.lock();
        let Some(id) = st.droplets.values().find(|d| d.name == droplet_name).map(|d| d.id) else {
            panic!("the fake holds no droplet named {droplet_name}");
        };
        if unhealthy {
            st.unhealthy.insert(id);
        } else {
            st.unhealthy.remove(&id);
        }
    }

    /// The domains the fake holds.
    pub fn domains(&self) -> Vec<String> {
        self.lock().domains.keys().cloned().collect()
    }

    /// The records of `domain` as `TYPE name data`, sorted.
    pub fn domain_records(&self, domain: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .lock()
            .domains
            .get(domain)
            .map(|r| r.values().map(|r| format!("{} {} {}", s(r, "type"), s(r, "name"), s(r, "data"))).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The tags of the droplet named `name`.
    pub fn droplet_tags(&self, name: &str) -> Vec<String> {
        self.lock().droplets.values().find(|d| d.name == name).map(|d| d.tags.clone()).unwrap_or_default()
    }

    /// The inbound rules of the firewall named `name`, as `protocol/ports/kind:value`.
    pub fn firewall_inbound(&self, name: &str) -> Vec<String> {
        self.lock()
            .firewalls
            .values()
            .find(|f| f.name == name)
            .map(|f| f.atoms.iter().filter(|a| a.0).map(|a| format!("{}/{}/{}:{}", a.1, a.2, a.3, a.4)).collect())
            .unwrap_or_default()
    }
}

fn b64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let vals: Vec<u32> = text.bytes().filter_map(|b| ALPHABET.iter().position(|a| *a == b)).map(|p| p as u32).collect();
    let mut out = Vec::new();
    for chunk in vals.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, v)| n | (v << (18 - 6 * i)));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// A region as droplets and load balancers answer it.
fn region_json(slug: &str) -> Value {
    json!({"name": slug, "slug": slug, "features": ["private_networking"], "available": true,
           "sizes": SIZES.iter().map(|s| s.0).collect::<Vec<_>>()})
}

fn err(status: StatusCode, id: &str, message: impl Into<String>) -> (StatusCode, Value) {
    (status, json!({"id": id, "message": message.into()}))
}

fn not_found() -> (StatusCode, Value) {
    err(StatusCode::NOT_FOUND, "not_found", "The resource you requested could not be found.")
}

fn invalid(message: impl Into<String>) -> (StatusCode, Value) {
    err(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity", message)
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            if let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty() && t.len() <= 255 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-:".contains(&b))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
}

fn parse_cidr(s: &str) -> Option<(u32, u8)> {
    let (a, p) = s.split_once('/')?;
    let ip: Ipv4Addr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    if p > 32 {
        return None;
    }
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - u32::from(p)) };
    let n = u32::from(ip);
    (n & mask == n).then_some((n, p))
}

fn overlaps(a: (u32, u8), b: (u32, u8)) -> bool {
    let p = a.1.min(b.1);
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - u32::from(p)) };
    a.0 & mask == b.0 & mask
}

impl St {
    fn uuid(&mut self) -> String {
        self.counter += 1;
        format!("{:08x}-0000-4000-8000-{:012x}", self.counter, self.counter)
    }

    fn page(&self, q: &BTreeMap<String, String>, path: &str, key: &str, items: Vec<Value>) -> Value {
        let per_page: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(20).clamp(1, self.max_per_page);
        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
        let total = items.len();
        let pages = total.div_ceil(per_page).max(1);
        let chunk: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
        let mut extra: Vec<(String, String)> =
            q.iter().filter(|(k, _)| *k != "page" && *k != "per_page").map(|(k, v)| (k.clone(), v.clone())).collect();
        extra.push(("per_page".into(), per_page.to_string()));
        let link = |n: usize| {
            let mut s = format!("https://api.digitalocean.com{path}?page={n}");
            for (k, v) in &extra {
                s.push_str(&format!("&{k}={v}"));
            }
            s
        };
        let mut pages_obj = serde_json::Map::new();
        if page < pages {
            pages_obj.insert("next".into(), json!(link(page + 1)));
            pages_obj.insert("last".into(), json!(link(pages)));
        }
        if page > 1 {
            pages_obj.insert("first".into(), json!(link(1)));
            pages_obj.insert("prev".into(), json!(link(page - 1)));
        }
        let links = if pages_obj.is_empty() { json!({}) } else { json!({"pages": pages_obj}) };
        json!({key: chunk, "links": links, "meta": {"total": total}})
    }

    fn droplet_json(&self, d: &Droplet) -> Value {
        let (slug, mem, vcpus, _, price) = SIZES.iter().copied().find(|s| s.0 == d.size).unwrap_or(SIZES[1]);
        let (islug, distro, iname) = IMAGES.iter().copied().find(|i| i.0 == d.image).unwrap_or(IMAGES[0]);
        let mut v4 = vec![json!({"ip_address": d.private_ip, "netmask": "255.255.0.0", "type": "private"})];
        if let Some(p) = &d.public_ip {
            v4.push(json!({"ip_address": p, "netmask": "255.255.255.0", "gateway": "203.0.113.1", "type": "public"}));
        }
        json!({
            "id": d.id, "name": d.name, "memory": mem, "vcpus": vcpus, "disk": d.disk,
            "disk_info": [{"type": "local", "size": {"amount": d.disk, "unit": "gib"}}],
            "locked": false, "status": d.status, "created_at": T0,
            "features": ["monitoring", "private_networking"], "backup_ids": [], "next_backup_window": null,
            "snapshot_ids": [],
            "image": {"id": 100 + IMAGES.iter().position(|i| i.0 == islug).unwrap_or(0), "name": iname,
                       "type": "base", "distribution": distro, "slug": islug, "public": true,
                       "created_at": T0, "min_disk_size": 10, "status": "available"},
            "volume_ids": [],
            "size": {"slug": slug, "memory": mem, "vcpus": vcpus, "disk": d.disk, "transfer": 1.0,
                     "price_monthly": price, "price_hourly": price / 730.0, "regions": REGIONS,
                     "available": true, "description": "Basic"},
            "size_slug": slug,
            "networks": {"v4": v4, "v6": []},
            "region": region_json(&d.region),
            "tags": d.tags, "vpc_uuid": d.vpc,
        })
    }

    fn firewall_json(&self, f: &Firewall) -> Value {
        let rule = |a: &(bool, String, String, String, String)| {
            let mut target = serde_json::Map::new();
            let v: Value = if a.3 == "droplet_ids" { json!([a.4.parse::<u64>().unwrap_or(0)]) } else { json!([a.4]) };
            target.insert(a.3.clone(), v);
            let side = if a.0 { "sources" } else { "destinations" };
            json!({"protocol": a.1, "ports": a.2, side: target})
        };
        json!({
            "id": f.id, "name": f.name, "status": "succeeded", "created_at": T0, "pending_changes": [],
            "inbound_rules": f.atoms.iter().filter(|a| a.0).map(rule).collect::<Vec<_>>(),
            "outbound_rules": f.atoms.iter().filter(|a| !a.0).map(rule).collect::<Vec<_>>(),
            "droplet_ids": [], "tags": f.tags,
        })
    }

    fn db_json(&self, d: &Db) -> Value {
        let port = if d.engine == "redis" || d.engine == "valkey" { 25061 } else { 25060 };
        let host = format!("{}-do-user-1-0.f.db.ondigitalocean.com", d.name);
        let pw = &d.password;
        let conn = |h: &str| {
            json!({"uri": format!("postgresql://doadmin:{pw}@{h}:{port}/defaultdb?sslmode=require"),
                   "database": "defaultdb", "host": h, "port": port, "user": "doadmin",
                   "password": pw, "ssl": true})
        };
        let mut v = json!({
            "id": d.id, "name": d.name, "engine": d.engine, "version": d.version, "num_nodes": d.num_nodes,
            "size": d.size, "region": d.region, "status": d.status, "created_at": T0,
            "private_network_uuid": d.vpc, "tags": d.tags, "db_names": ["defaultdb"],
            "connection": conn(&host), "private_connection": conn(&format!("private-{host}")),
            "users": [{"name": "doadmin", "role": "primary", "password": pw}],
            "maintenance_window": {"day": "tuesday", "hour": "01:00:00", "pending": false, "description": []},
        });
        if let Some(m) = d.storage_mib {
            v["storage_size_mib"] = json!(m);
        }
        v
    }

    fn vpc_has_members(&self, id: &str) -> bool {
        self.droplets.values().any(|d| d.vpc == id)
            || self.dbs.values().any(|d| d.vpc == id)
            || self.lbs.values().any(|l| l.0["vpc_uuid"] == id)
    }

    fn poll_droplet(&mut self, id: u64) {
        if let Some(d) = self.droplets.get_mut(&id) {
            if d.status == "new" {
                if d.polls_left == 0 {
                    d.status = "active".into();
                } else {
                    d.polls_left -= 1;
                }
            }
        }
    }

    fn poll_db(&mut self, id: &str) {
        if let Some(d) = self.dbs.get_mut(id) {
            if d.status != "online" {
                if d.polls_left == 0 {
                    d.status = "online".into();
                } else {
                    d.polls_left -= 1;
                }
            }
        }
    }

    fn poll_lb(&mut self, id: &str) {
        if let Some(lb) = self.lbs.get_mut(id) {
            if lb.0["status"] == "new" {
                if lb.1 == 0 {
                    self.lb_addresses += 1;
                    let n = self.lb_addresses;
                    lb.0["status"] = json!("active");
                    lb.0["ip"] = json!(format!("198.51.100.{}", 1 + (n - 1) % 254));
                    if lb.0["network_stack"] == "DUALSTACK" {
                        lb.0["ipv6"] = json!(format!("2001:db8:0:1::{n:x}"));
                    }
                } else {
                    lb.1 -= 1;
                }
            }
        }
    }

    /// A stored load balancer as the API answers it: one that selects droplets by tag lists the
    /// droplets of its region that carry the tag now.
    fn lb_json(&self, lb: &Value) -> Value {
        let mut v = lb.clone();
        let tag = s(lb, "tag");
        if !tag.is_empty() {
            let region = s(&lb["region"], "slug");
            let ids: Vec<u64> =
                self.droplets.values().filter(|d| d.region == region && d.tags.contains(&tag)).map(|d| d.id).collect();
            v["droplet_ids"] = json!(ids);
        }
        v
    }

    fn forget_urn(&mut self, urn: &str) {
        for p in self.projects.values_mut() {
            p.resources.retain(|r| r != urn);
        }
    }

    fn project_json(&self, p: &Project) -> Value {
        let mut v = json!({"id": p.id, "owner_uuid": "00000000-0000-4000-8000-0000000000ff", "owner_id": 1,
               "name": p.name, "description": p.description, "purpose": p.purpose,
               "created_at": T0, "updated_at": T0, "is_default": false});
        if let Some(e) = &p.environment {
            v["environment"] = json!(e);
        }
        v
    }
}

fn rate_headers(h: &mut HeaderMap, remaining: u64, reset_in: u64, request: u64) {
    let now = now_unix();
    for (k, v) in [
        ("ratelimit-limit", "5000".to_string()),
        ("ratelimit-remaining", remaining.to_string()),
        ("ratelimit-reset", (now + reset_in).to_string()),
        ("x-request-id", format!("fake-req-{request}")),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
}

async fn handle(
    State(st): State<Arc<Mutex<St>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    s.counter += 1;
    let request = s.counter;
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| !t.trim().is_empty());
    let (status, value) = if !authorized {
        err(StatusCode::UNAUTHORIZED, "unauthorized", "Unable to authenticate you.")
    } else if s.throttle > 0 {
        s.throttle -= 1;
        s.remaining = 0;
        err(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "API rate limit exceeded.")
    } else {
        let body: Value =
            if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
        let q = query(&uri);
        route(&mut s, &method, uri.path(), &q, &body)
    };
    if status != StatusCode::TOO_MANY_REQUESTS && s.remaining > 0 {
        s.remaining -= 1;
    }
    let entry = format!("{method} {} -> {}", uri.path_and_query().map(|p| p.as_str()).unwrap_or(""), status.as_u16());
    s.log.push(entry);
    let (remaining, reset_in) = (s.remaining, if status == StatusCode::TOO_MANY_REQUESTS { 1 } else { s.reset_in });
    drop(s);
    let mut resp = if value.is_null() { status.into_response() } else { (status, axum::Json(value)).into_response() };
    rate_headers(resp.headers_mut(), remaining, reset_in, request);
    resp
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn route(st: &mut St, m: &Method, path: &str, q: &BTreeMap<String, String>, body: &Value) -> (StatusCode, Value) {
    let seg: Vec<String> = path.trim_start_matches('/').split('/').map(pct_decode).collect();
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    let ok = |v: Value| (StatusCode::OK, v);
    let none = || (StatusCode::NO_CONTENT, Value::Null);
    match (m.as_str(), seg.as_slice()) {
        // ---- VPCs ----
        ("GET", ["v2", "vpcs"]) => {
            let mut items: Vec<Value> = st.vpcs.values().cloned().collect();
            if std::mem::take(&mut st.corrupt_next_vpc_list) {
                if let Some(first) = items.first_mut() {
                    first["default"] = json!("not-a-boolean");
                } else {
                    items.push(json!({"id": 7, "name": "broken"}));
                }
            }
            ok(st.page(q, path, "vpcs", items))
        }
        ("POST", ["v2", "vpcs"]) => {
            let (name, region, range) = (s(body, "name"), s(body, "region"), s(body, "ip_range"));
            if !valid_name(&name) {
                return invalid("name must contain only alphanumeric characters, dashes and periods");
            }
            if !REGIONS.contains(&region.as_str()) {
                return invalid(format!("region {region} is not available"));
            }
            let Some(c) = parse_cidr(&range).filter(|c| (16..=28).contains(&c.1)) else {
                return invalid("ip_range must be a valid RFC1918 range between /16 and /28");
            };
            if st.vpcs.values().any(|v| s(v, "name") == name) {
                return invalid("a VPC with this name already exists");
            }
            if st.vpcs.values().any(|v| parse_cidr(&s(v, "ip_range")).is_some_and(|o| overlaps(o, c))) {
                return invalid("ip_range overlaps another VPC of the account");
            }
            let id = st.uuid();
            let v = json!({"id": id, "urn": format!("do:vpc:{id}"), "name": name, "description": s(body, "description"),
                           "region": region, "ip_range": range, "default": false, "created_at": T0});
            st.vpcs.insert(id, v.clone());
            (StatusCode::CREATED, json!({"vpc": v}))
        }
        ("GET", ["v2", "vpcs", id]) => match st.vpcs.get(*id) {
            Some(v) => ok(json!({"vpc": v})),
            None => not_found(),
        },
        ("PATCH" | "PUT", ["v2", "vpcs", id]) => {
            let Some(v) = st.vpcs.get_mut(*id) else { return not_found() };
            if let Some(n) = body.get("name").and_then(Value::as_str) {
                if !valid_name(n) {
                    return invalid("name must contain only alphanumeric characters, dashes and periods");
                }
                v["name"] = json!(n);
            }
            if let Some(d) = body.get("description").and_then(Value::as_str) {
                if d.len() > 255 {
                    return invalid("description is longer than 255 characters");
                }
                v["description"] = json!(d);
            }
            ok(json!({"vpc": v.clone()}))
        }
        ("DELETE", ["v2", "vpcs", id]) => {
            if !st.vpcs.contains_key(*id) {
                return not_found();
            }
            if st.vpc_has_members(id) {
                return err(StatusCode::FORBIDDEN, "forbidden", "Cannot delete VPC with members");
            }
            st.vpcs.remove(*id);
            none()
        }
        // ---- tags ----
        ("GET", ["v2", "tags"]) => {
            let items: Vec<Value> = st
                .tags
                .iter()
                .map(|t| {
                    let n = st.droplets.values().filter(|d| d.tags.contains(t)).count()
                        + st.dbs.values().filter(|d| d.tags.contains(t)).count();
                    json!({"name": t, "resources": {"count": n}})
                })
                .collect();
            ok(st.page(q, path, "tags", items))
        }
        ("POST", ["v2", "tags"]) => {
            let name = s(body, "name");
            if !valid_tag(&name) {
                return invalid("tag names may contain letters, numbers, colons, dashes and underscores (at most 255)");
            }
            st.tags.insert(name.clone());
            (StatusCode::CREATED, json!({"tag": {"name": name, "resources": {"count": 0}}}))
        }
        ("GET", ["v2", "tags", tag]) => {
            if !st.tags.contains(*tag) {
                return not_found();
            }
            let n = st.droplets.values().filter(|d| d.tags.iter().any(|t| t == tag)).count()
                + st.dbs.values().filter(|d| d.tags.iter().any(|t| t == tag)).count();
            ok(json!({"tag": {"name": tag, "resources": {"count": n}}}))
        }
        ("DELETE", ["v2", "tags", tag]) => {
            if !st.tags.remove(*tag) {
                return not_found();
            }
            for d in st.droplets.values_mut() {
                d.tags.retain(|t| t != tag);
            }
            none()
        }
        ("POST" | "DELETE", ["v2", "tags", tag, "resources"]) => {
            if !st.tags.contains(*tag) {
                return not_found();
            }
            let items = body.get("resources").and_then(Value::as_array).cloned().unwrap_or_default();
            for r in items {
                if s(&r, "resource_type") != "droplet" {
                    return invalid("only droplets can be tagged here");
                }
                let Some(d) = s(&r, "resource_id").parse::<u64>().ok().and_then(|id| st.droplets.get_mut(&id)) else {
                    return not_found();
                };
                d.tags.retain(|t| t != tag);
                if m == Method::POST {
                    d.tags.push(tag.to_string());
                }
            }
            none()
        }
        // ---- firewalls ----
        ("GET", ["v2", "firewalls"]) => {
            let items: Vec<Value> = st.firewalls.values().map(|f| st.firewall_json(f)).collect();
            ok(st.page(q, path, "firewalls", items))
        }
        ("POST", ["v2", "firewalls"]) => {
            let name = s(body, "name");
            if !valid_name(&name) || name.len() < 2 || !name.as_bytes()[0].is_ascii_alphanumeric() {
                return invalid("name must begin with an alphanumeric character");
            }
            let atoms = match fw_atoms(st, body) {
                Ok(a) => a,
                Err(e) => return e,
            };
            if atoms.is_empty() {
                return invalid("a firewall needs at least one inbound or outbound rule");
            }
            let tags = strings(body, "tags");
            if let Some(t) = tags.iter().find(|t| !st.tags.contains(*t)) {
                return invalid(format!("tag {t} does not exist"));
            }
            let id = st.uuid();
            let f = Firewall { id: id.clone(), name, atoms, tags };
            let v = st.firewall_json(&f);
            st.firewalls.insert(id, f);
            let mut v = v;
            v["status"] = json!("waiting");
            (StatusCode::ACCEPTED, json!({"firewall": v}))
        }
        ("GET", ["v2", "firewalls", id]) => match st.firewalls.get(*id) {
            Some(f) => ok(json!({"firewall": st.firewall_json(f)})),
            None => not_found(),
        },
        ("DELETE", ["v2", "firewalls", id]) => {
            if st.firewalls.remove(*id).is_none() {
                return not_found();
            }
            none()
        }
        ("POST" | "DELETE", ["v2", "firewalls", id, "rules"]) => {
            if !st.firewalls.contains_key(*id) {
                return not_found();
            }
            let atoms = match fw_atoms(st, body) {
                Ok(a) => a,
                Err(e) => return e,
            };
            let Some(f) = st.firewalls.get_mut(*id) else { return not_found() };
            for a in atoms {
                if m == Method::POST {
                    f.atoms.insert(a);
                } else {
                    f.atoms.remove(&a);
                }
            }
            none()
        }
        ("POST" | "DELETE", ["v2", "firewalls", id, "tags"]) => {
            let tags = strings(body, "tags");
            if let Some(t) = tags.iter().find(|t| !st.tags.contains(*t)) {
                return invalid(format!("tag {t} does not exist"));
            }
            let Some(f) = st.firewalls.get_mut(*id) else { return not_found() };
            for t in tags {
                f.tags.retain(|x| *x != t);
                if m == Method::POST {
                    f.tags.push(t);
                }
            }
            none()
        }
        // ---- droplets ----
        ("GET", ["v2", "droplets"]) => {
            let ids: Vec<u64> = st
                .droplets
                .values()
                .filter(|d| q.get("tag_name").is_none_or(|t| d.tags.contains(t)))
                .map(|d| d.id)
                .collect();
            for id in &ids {
                st.poll_droplet(*id);
            }
            let items: Vec<Value> =
                ids.iter().filter_map(|id| st.droplets.get(id)).map(|d| st.droplet_json(d)).collect();
            ok(st.page(q, path, "droplets", items))
        }
        ("POST", ["v2", "droplets"]) => create_droplet(st, body),
        ("GET", ["v2", "droplets", id]) => {
            let Ok(id) = id.parse::<u64>() else { return not_found() };
            st.poll_droplet(id);
            match st.droplets.get(&id) {
                Some(d) => ok(json!({"droplet": st.droplet_json(d)})),
                None => not_found(),
            }
        }
        ("DELETE", ["v2", "droplets", id]) => {
            let Some(d) = id.parse::<u64>().ok().and_then(|id| st.droplets.remove(&id)) else { return not_found() };
            st.forget_urn(&format!("do:droplet:{}", d.id));
            st.unhealthy.remove(&d.id);
            for lb in st.lbs.values_mut() {
                if let Some(ids) = lb.0.get_mut("droplet_ids").and_then(Value::as_array_mut) {
                    ids.retain(|x| x.as_u64() != Some(d.id));
                }
            }
            none()
        }
        ("POST", ["v2", "droplets", id, "actions"]) => droplet_action(st, id, body),
        ("GET", ["v2", "actions", id]) => {
            let Some((a, polls)) = id.parse::<u64>().ok().and_then(|id| st.actions.get_mut(&id)) else {
                return not_found();
            };
            if *polls == 0 {
                a["status"] = json!("completed");
                a["completed_at"] = json!(T0);
            } else {
                *polls -= 1;
            }
            ok(json!({"action": a.clone()}))
        }
        // ---- SSH keys ----
        ("GET", ["v2", "account", "keys"]) => {
            let items = st.keys.clone();
            ok(st.page(q, path, "ssh_keys", items))
        }
        ("POST", ["v2", "account", "keys"]) => {
            let (name, key) = (s(body, "name"), s(body, "public_key"));
            if name.is_empty() || !key.starts_with("ssh-") {
                return invalid("public_key is not a valid SSH public key");
            }
            let id = st.keys.len() as u64 + 1;
            let fp = format!("3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:{:02x}", id % 256);
            let k = json!({"id": id, "fingerprint": fp, "public_key": key, "name": name});
            st.keys.push(k.clone());
            (StatusCode::CREATED, json!({"ssh_key": k}))
        }
        // ---- databases ----
        ("GET", ["v2", "databases"]) => {
            let ids: Vec<String> = st
                .dbs
                .values()
                .filter(|d| q.get("tag_name").is_none_or(|t| d.tags.contains(t)))
                .map(|d| d.id.clone())
                .collect();
            for id in &ids {
                st.poll_db(id);
            }
            let items: Vec<Value> = ids.iter().filter_map(|id| st.dbs.get(id)).map(|d| st.db_json(d)).collect();
            ok(json!({"databases": items}))
        }
        ("POST", ["v2", "databases"]) => create_db(st, body),
        ("GET", ["v2", "databases", id]) => {
            st.poll_db(id);
            match st.dbs.get(*id) {
                Some(d) => ok(json!({"database": st.db_json(d)})),
                None => not_found(),
            }
        }
        ("DELETE", ["v2", "databases", id]) => {
            if st.dbs.remove(*id).is_none() {
                return not_found();
            }
            st.forget_urn(&format!("do:dbaas:{id}"));
            none()
        }
        ("PUT", ["v2", "databases", id, "resize"]) => {
            let size = s(body, "size");
            let nodes = body.get("num_nodes").and_then(Value::as_u64).unwrap_or(0);
            if !DB_SIZES.contains(&size.as_str()) || !(1..=3).contains(&nodes) {
                return invalid("invalid size or number of nodes");
            }
            let Some(d) = st.dbs.get_mut(*id) else { return not_found() };
            if d.status != "online" {
                return err(StatusCode::PRECONDITION_FAILED, "precondition_failed", "cluster is not online");
            }
            if let Some(m) = body.get("storage_size_mib").and_then(Value::as_u64) {
                if d.storage_mib.is_some_and(|have| m < have) {
                    return invalid("storage cannot shrink");
                }
                d.storage_mib = Some(m);
            }
            d.size = size;
            d.num_nodes = nodes;
            d.status = "resizing".into();
            d.polls_left = DB_POLLS - 1;
            (StatusCode::ACCEPTED, Value::Null)
        }
        ("PUT", ["v2", "databases", id, "upgrade"]) => {
            let Some(d) = st.dbs.get_mut(*id) else { return not_found() };
            d.version = s(body, "version");
            none()
        }
        ("GET", ["v2", "databases", id, "firewall"]) => match st.dbs.get(*id) {
            Some(d) => ok(json!({"rules": d.rules})),
            None => not_found(),
        },
        ("PUT", ["v2", "databases", id, "firewall"]) => {
            if !st.dbs.contains_key(*id) {
                return not_found();
            }
            let rules = match db_rules(st, id, body) {
                Ok(r) => r,
                Err(e) => return e,
            };
            if let Some(d) = st.dbs.get_mut(*id) {
                d.rules = rules;
            }
            none()
        }
        // ---- projects ----
        ("GET", ["v2", "projects"]) => {
            let items: Vec<Value> = st.projects.values().map(|p| st.project_json(p)).collect();
            ok(st.page(q, path, "projects", items))
        }
        ("POST", ["v2", "projects"]) => {
            let name = s(body, "name");
            if name.is_empty() || name.len() > 175 || s(body, "purpose").is_empty() {
                return invalid("name and purpose are required");
            }
            if st.projects.values().any(|p| p.name == name) {
                return err(StatusCode::CONFLICT, "conflict", "a project with this name already exists");
            }
            let id = st.uuid();
            let p = Project {
                id: id.clone(),
                name,
                description: s(body, "description"),
                purpose: s(body, "purpose"),
                environment: body.get("environment").and_then(Value::as_str).map(str::to_string),
                resources: Vec::new(),
            };
            let v = st.project_json(&p);
            st.projects.insert(id, p);
            (StatusCode::CREATED, json!({"project": v}))
        }
        ("DELETE", ["v2", "projects", id]) => {
            let Some(p) = st.projects.get(*id) else { return not_found() };
            if !p.resources.is_empty() {
                return err(
                    StatusCode::PRECONDITION_FAILED,
                    "precondition_failed",
                    "cannot delete a project with resources",
                );
            }
            st.projects.remove(*id);
            none()
        }
        ("GET", ["v2", "projects", id, "resources"]) => {
            let Some(p) = st.projects.get(*id) else { return not_found() };
            let items: Vec<Value> = p
                .resources
                .iter()
                .map(|u| json!({"urn": u, "assigned_at": T0, "links": {"self": format!("https://api.digitalocean.com/v2/{u}")}, "status": "ok"}))
                .collect();
            ok(st.page(q, path, "resources", items))
        }
        ("POST", ["v2", "projects", id, "resources"]) => {
            let urns = strings(body, "resources");
            for u in &urns {
                let known = match u.split(':').collect::<Vec<_>>().as_slice() {
                    ["do", "droplet", n] => n.parse::<u64>().ok().is_some_and(|n| st.droplets.contains_key(&n)),
                    ["do", "dbaas", n] => st.dbs.contains_key(*n),
                    ["do", "domain", n] => st.domains.contains_key(*n),
                    ["do", "loadbalancer", n] => st.lbs.contains_key(*n),
                    _ => false,
                };
                if !known {
                    return invalid(format!("resource {u} does not exist"));
                }
            }
            if !st.projects.contains_key(*id) {
                return not_found();
            }
            for u in &urns {
                st.forget_urn(u);
            }
            let Some(p) = st.projects.get_mut(*id) else { return not_found() };
            p.resources.extend(urns.iter().cloned());
            for u in &urns {
                if let Some(lb) = u.strip_prefix("do:loadbalancer:").and_then(|l| st.lbs.get_mut(l)) {
                    lb.0["project_id"] = json!(id);
                }
            }
            let out: Vec<Value> =
                urns.iter().map(|u| json!({"urn": u, "assigned_at": T0, "status": "assigned"})).collect();
            ok(json!({"resources": out}))
        }
        _ => route_dns(st, m, &seg, q, body),
    }
}

/// The name of a record as DigitalOcean answers it (`@` at the apex, else relative).
fn record_fqdn(name: &str, domain: &str) -> String {
    if name == "@" || name.is_empty() {
        domain.to_string()
    } else if name == domain || name.ends_with(&format!(".{domain}")) {
        name.to_string()
    } else {
        format!("{name}.{domain}")
    }
}

/// `/v2/domains` and `/v2/domains/{name}/records`, as DigitalOcean's API reference describes
/// them: one value per record, `@` for the apex, CNAMEs alone on their name and never at the apex.
fn route_dns(st: &mut St, m: &Method, seg: &[&str], q: &BTreeMap<String, String>, body: &Value) -> (StatusCode, Value) {
    let ok = |v: Value| (StatusCode::OK, v);
    let domain_json = |name: &str| json!({"name": name, "ttl": 1800, "zone_file": format!("$ORIGIN {name}.\n")});
    match (m.as_str(), seg) {
        ("GET", ["v2", "domains"]) => {
            let items: Vec<Value> = st.domains.keys().map(|d| domain_json(d)).collect();
            let path = "/v2/domains".to_string();
            ok(st.page(q, &path, "domains", items))
        }
        ("POST", ["v2", "domains"]) => {
            let name = s(body, "name").to_ascii_lowercase();
            if name.is_empty() || !name.contains('.') || !valid_name(&name) {
                return invalid("name is not a valid domain name");
            }
            if st.domains.contains_key(&name) {
                return invalid(format!("{name} already exists"));
            }
            let mut recs = BTreeMap::new();
            for (i, ns) in ["ns1.digitalocean.com", "ns2.digitalocean.com", "ns3.digitalocean.com"].iter().enumerate() {
                st.counter += 1;
                let id = 9_000_000 + st.counter;
                recs.insert(
                    id,
                    json!({"id": id, "type": "NS", "name": "@", "data": ns, "priority": null, "port": null,
                                       "ttl": 1800, "weight": null, "flags": null, "tag": null}),
                );
                if i == 0 {
                    st.counter += 1;
                    let id = 9_000_000 + st.counter;
                    recs.insert(
                        id,
                        json!({"id": id, "type": "SOA", "name": "@", "data": "1800", "priority": null,
                                           "port": null, "ttl": 1800, "weight": null, "flags": null, "tag": null}),
                    );
                }
            }
            st.domains.insert(name.clone(), recs);
            (StatusCode::CREATED, json!({"domain": domain_json(&name)}))
        }
        ("GET", ["v2", "domains", d]) => match st.domains.contains_key(*d) {
            true => ok(json!({"domain": domain_json(d)})),
            false => not_found(),
        },
        ("DELETE", ["v2", "domains", d]) => {
            if st.domains.remove(*d).is_none() {
                return not_found();
            }
            st.forget_urn(&format!("do:domain:{d}"));
            (StatusCode::NO_CONTENT, Value::Null)
        }
        ("GET", ["v2", "domains", d, "records"]) => {
            let Some(recs) = st.domains.get(*d) else { return not_found() };
            let items: Vec<Value> = recs
                .values()
                .filter(|r| q.get("type").is_none_or(|t| s(r, "type") == *t))
                .filter(|r| q.get("name").is_none_or(|n| record_fqdn(&s(r, "name"), d) == *n))
                .cloned()
                .collect();
            let path = format!("/v2/domains/{d}/records");
            ok(st.page(q, &path, "domain_records", items))
        }
        ("POST", ["v2", "domains", d, "records"]) => {
            let Some(recs) = st.domains.get(*d) else { return not_found() };
            let (t, name) = (s(body, "type"), s(body, "name"));
            if !["A", "AAAA", "CAA", "CNAME", "MX", "NS", "SOA", "SRV", "TXT"].contains(&t.as_str()) {
                return invalid(format!("type {t} is not supported"));
            }
            let fqdn = record_fqdn(&name, d);
            if t == "CNAME" && fqdn == *d {
                return invalid("CNAME records cannot be created at the apex");
            }
            let at: Vec<&Value> = recs.values().filter(|r| record_fqdn(&s(r, "name"), d) == fqdn).collect();
            if at.iter().any(|r| s(r, "type") == "CNAME") || (t == "CNAME" && !at.is_empty()) {
                return invalid("a CNAME record cannot share its name with another record");
            }
            if s(body, "data").is_empty() {
                return invalid("data is required");
            }
            let ttl = body.get("ttl").and_then(Value::as_u64).unwrap_or(1800);
            if ttl < 30 {
                return invalid("ttl must be at least 30");
            }
            st.counter += 1;
            let id = 9_000_000 + st.counter;
            let rel = if fqdn == *d { "@".to_string() } else { fqdn.trim_end_matches(&format!(".{d}")).to_string() };
            let r = json!({"id": id, "type": t, "name": rel, "data": s(body, "data"),
                           "priority": body.get("priority").cloned().unwrap_or(Value::Null), "port": null,
                           "ttl": ttl, "weight": null, "flags": body.get("flags").cloned().unwrap_or(Value::Null),
                           "tag": body.get("tag").cloned().unwrap_or(Value::Null)});
            if let Some(recs) = st.domains.get_mut(*d) {
                recs.insert(id, r.clone());
            }
            (StatusCode::CREATED, json!({"domain_record": r}))
        }
        ("GET", ["v2", "domains", d, "records", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match st.domains.get(*d).and_then(|r| r.get(&id)) {
                Some(r) => ok(json!({"domain_record": r})),
                None => not_found(),
            }
        }
        ("PUT" | "PATCH", ["v2", "domains", d, "records", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let Some(r) = st.domains.get_mut(*d).and_then(|r| r.get_mut(&id)) else { return not_found() };
            for k in ["data", "ttl", "priority", "flags", "tag"] {
                if let Some(v) = body.get(k) {
                    r[k] = v.clone();
                }
            }
            ok(json!({"domain_record": r.clone()}))
        }
        ("DELETE", ["v2", "domains", d, "records", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match st.domains.get_mut(*d).and_then(|r| r.remove(&id)) {
                Some(_) => (StatusCode::NO_CONTENT, Value::Null),
                None => not_found(),
            }
        }
        _ => route_certificates(st, m, seg, q, body),
    }
}

/// `/v2/certificates`: Let's Encrypt certificates for names of domains the fake hosts, `pending`
/// for a few reads and then `verified`.
fn route_certificates(
    st: &mut St,
    m: &Method,
    seg: &[&str],
    q: &BTreeMap<String, String>,
    body: &Value,
) -> (StatusCode, Value) {
    let poll = |c: &mut (Value, u32)| {
        if c.0["state"] == "pending" {
            if c.1 == 0 {
                c.0["state"] = json!("verified");
                c.0["not_after"] = json!("2027-03-05T16:00:00Z");
                c.0["sha1_fingerprint"] = json!("dfcc9f57d86bf58e321c2c6c31c7a971be244ac7");
            } else {
                c.1 -= 1;
            }
        }
    };
    match (m.as_str(), seg) {
        ("GET", ["v2", "certificates"]) => {
            for c in st.certs.values_mut() {
                poll(c);
            }
            let items: Vec<Value> = st
                .certs
                .values()
                .map(|c| c.0.clone())
                .filter(|c| q.get("name").is_none_or(|n| s(c, "name") == *n))
                .collect();
            (StatusCode::OK, st.page(q, "/v2/certificates", "certificates", items))
        }
        ("POST", ["v2", "certificates"]) => {
            let (name, t) = (s(body, "name"), s(body, "type"));
            let names = strings(body, "dns_names");
            if t != "lets_encrypt" {
                return invalid("only lets_encrypt certificates are served by this fake");
            }
            if names.is_empty() {
                return invalid("dns_names is required");
            }
            if st.certs.values().any(|c| s(&c.0, "name") == name) {
                return invalid(format!("a certificate named {name} already exists"));
            }
            let hosted = |n: &str| {
                let bare = n.strip_prefix("*.").unwrap_or(n);
                st.domains.keys().any(|d| bare == d || bare.ends_with(&format!(".{d}")))
            };
            if let Some(n) = names.iter().find(|n| !hosted(n)) {
                return invalid(format!("{n} is not managed by DigitalOcean DNS"));
            }
            let id = st.uuid();
            let v = json!({"id": id, "name": name, "dns_names": names, "state": "pending", "type": "lets_encrypt",
                           "created_at": T0});
            st.certs.insert(id, (v.clone(), CERT_POLLS));
            (StatusCode::CREATED, json!({"certificate": v}))
        }
        ("GET", ["v2", "certificates", id]) => match st.certs.get_mut(*id) {
            Some(c) => {
                poll(c);
                (StatusCode::OK, json!({"certificate": c.0}))
            }
            None => not_found(),
        },
        ("DELETE", ["v2", "certificates", id]) => match st.certs.remove(*id) {
            Some(_) => (StatusCode::NO_CONTENT, Value::Null),
            None => not_found(),
        },
        _ => route_load_balancers(st, m, seg, q, body),
    }
}

/// Reads of a new certificate before it is verified.
const CERT_POLLS: u32 = 2;

/// `/v2/load_balancers` and the health metric of their droplets: `new` for a few reads, then
/// `active` with an address; droplets by id (or by tag) in the load balancer's region and VPC.
fn route_load_balancers(
    st: &mut St,
    m: &Method,
    seg: &[&str],
    q: &BTreeMap<String, String>,
    body: &Value,
) -> (StatusCode, Value) {
    let ok = |v: Value| (StatusCode::OK, v);
    match (m.as_str(), seg) {
        ("GET", ["v2", "load_balancers"]) => {
            let ids: Vec<String> = st.lbs.keys().cloned().collect();
            for id in &ids {
                st.poll_lb(id);
            }
            let items: Vec<Value> = st.lbs.values().map(|l| st.lb_json(&l.0)).collect();
            ok(st.page(q, "/v2/load_balancers", "load_balancers", items))
        }
        ("POST", ["v2", "load_balancers"]) => create_lb(st, body),
        ("GET", ["v2", "load_balancers", id]) => {
            st.poll_lb(id);
            match st.lbs.get(*id) {
                Some(l) => ok(json!({"load_balancer": st.lb_json(&l.0)})),
                None => not_found(),
            }
        }
        ("PUT", ["v2", "load_balancers", id]) => update_lb(st, id, body),
        ("DELETE", ["v2", "load_balancers", id]) => {
            if st.lbs.remove(*id).is_none() {
                return not_found();
            }
            st.forget_urn(&format!("do:loadbalancer:{id}"));
            (StatusCode::NO_CONTENT, Value::Null)
        }
        ("POST" | "DELETE", ["v2", "load_balancers", id, "droplets"]) => change_lb_droplets(st, m, id, body),
        ("GET", ["v2", "monitoring", "metrics", "load_balancer", "droplets_health_checks"]) => {
            let end = q.get("end").and_then(|e| e.parse::<u64>().ok()).unwrap_or_else(now_unix);
            let lb_id = q.get("lb_id").cloned().unwrap_or_default();
            let droplets = st.lbs.get(&lb_id).map(|l| droplet_ids_of(&st.lb_json(&l.0))).unwrap_or_default();
            let result: Vec<Value> = droplets
                .iter()
                .map(|d| {
                    let healthy = st.droplets.get(d).is_some_and(|x| x.status == "active")
                        && !st.unhealthy.contains(d)
                        && st.healthy_only.as_ref().is_none_or(|ok| ok.contains(d));
                    let value = if healthy { "1" } else { "0" };
                    json!({"metric": {"lb_id": lb_id, "droplet_id": d.to_string()}, "values": [[end, value]]})
                })
                .collect();
            ok(json!({"status": "success", "data": {"resultType": "matrix", "result": result}}))
        }
        _ => not_found(),
    }
}

/// The integers of `droplet_ids` in `v`.
fn droplet_ids_of(v: &Value) -> Vec<u64> {
    v.get("droplet_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// The integer `k` of `v` within `lo..=hi`, `default` when absent.
fn lb_int(v: &Value, k: &str, default: u64, lo: u64, hi: u64) -> Result<u64, (StatusCode, Value)> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_u64()
            .filter(|n| (lo..=hi).contains(n))
            .ok_or_else(|| invalid(format!("{k} must be between {lo} and {hi}"))),
    }
}

/// A load balancer firewall rule: `ip:<address>` or `cidr:<block>`.
fn lb_fw_rule(r: &str) -> bool {
    match r.split_once(':') {
        Some(("ip", a)) => a.parse::<IpAddr>().is_ok(),
        Some(("cidr", c)) => c.split_once('/').is_some_and(|(a, p)| match (a.parse::<IpAddr>(), p.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(p)) => p <= 32,
            (Ok(IpAddr::V6(_)), Ok(p)) => p <= 128,
            _ => false,
        }),
        _ => false,
    }
}

/// `ids` without repeats, each an existing droplet, in `region` and `vpc` when they are given.
fn lb_droplets(st: &St, ids: &[u64], region: Option<&str>, vpc: Option<&str>) -> Result<Vec<u64>, (StatusCode, Value)> {
    let mut out = Vec::new();
    for id in ids {
        let Some(d) = st.droplets.get(id) else { return Err(invalid(format!("droplet {id} not found"))) };
        if region.is_some_and(|r| d.region != r) {
            return Err(invalid(format!("droplet {id} is not in the load balancer's region")));
        }
        if vpc.is_some_and(|v| d.vpc != v) {
            return Err(invalid(format!("droplet {id} is not in the load balancer's VPC")));
        }
        if !out.contains(id) {
            out.push(*id);
        }
    }
    Ok(out)
}

/// The settings of a load balancer from a create or update (`old`) body, checked as DigitalOcean
/// checks them and completed with its defaults: all but `id`, `status`, `ip`, `created_at` and
/// `project_id`. Region, VPC, network, network stack and type cannot change after creation.
fn lb_settings(st: &St, body: &Value, old: Option<&Value>) -> Result<Value, (StatusCode, Value)> {
    let given = |k: &str| body.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_string);
    let one_of = |k: &str, default: &str, allowed: &[&str]| match given(k) {
        Some(v) if !allowed.contains(&v.as_str()) => Err(invalid(format!("{k} must be one of {}", allowed.join(", ")))),
        v => Ok(v.unwrap_or_else(|| default.to_string())),
    };
    let name = s(body, "name");
    if name.is_empty() {
        return Err(invalid("name is required"));
    }
    let mut network = one_of("network", "EXTERNAL", &["EXTERNAL", "INTERNAL"])?;
    let mut stack = one_of("network_stack", "IPV4", &["IPV4", "DUALSTACK"])?;
    let mut kind = one_of("type", "REGIONAL", &["REGIONAL", "REGIONAL_NETWORK"])?;
    let mut region = given("region").unwrap_or_default();
    let mut vpc = given("vpc_uuid");
    if let Some(o) = old {
        let was = |k: &str| s(o, k);
        let fixed = [
            ("region", given("region"), s(&o["region"], "slug")),
            ("vpc_uuid", given("vpc_uuid"), was("vpc_uuid")),
            ("network", given("network"), was("network")),
            ("network_stack", given("network_stack"), was("network_stack")),
            ("type", given("type"), was("type")),
        ];
        if let Some((k, _, _)) = fixed.iter().find(|(_, now, then)| now.as_ref().is_some_and(|n| n != then)) {
            return Err(invalid(format!("{k} cannot be changed after the load balancer is created")));
        }
        region = s(&o["region"], "slug");
        vpc = given("vpc_uuid").or_else(|| o.get("vpc_uuid").and_then(Value::as_str).map(str::to_string));
        network = was("network");
        stack = was("network_stack");
        kind = was("type");
    }
    if !REGIONS.contains(&region.as_str()) {
        return Err(invalid(if region.is_empty() {
            "region is required".to_string()
        } else {
            format!("region {region} is not available")
        }));
    }
    if old.is_none() {
        if let Some(v) = &vpc {
            match st.vpcs.get(v) {
                None => return Err(invalid(format!("vpc_uuid {v} does not exist"))),
                Some(x) if s(x, "region") != region => return Err(invalid("the VPC is in another region")),
                Some(_) => {}
            }
        }
    }

    let rules = body.get("forwarding_rules").and_then(Value::as_array).cloned().unwrap_or_default();
    if rules.is_empty() {
        return Err(invalid("forwarding_rules must hold at least one rule"));
    }
    let mut entry_ports = BTreeSet::new();
    let mut forwarding = Vec::new();
    for r in &rules {
        let (entry, target) = (s(r, "entry_protocol"), s(r, "target_protocol"));
        if !LB_ENTRY_PROTOCOLS.contains(&entry.as_str()) {
            return Err(invalid(format!("entry_protocol {entry} is not one of {}", LB_ENTRY_PROTOCOLS.join(", "))));
        }
        if !LB_TARGET_PROTOCOLS.contains(&target.as_str()) {
            return Err(invalid(format!("target_protocol {target} is not one of {}", LB_TARGET_PROTOCOLS.join(", "))));
        }
        if (entry == "udp") != (target == "udp") {
            return Err(invalid("udp must be both the entry_protocol and the target_protocol of a rule"));
        }
        let entry_port = lb_int(r, "entry_port", 0, 1, 65535)?;
        let target_port = lb_int(r, "target_port", 0, 1, 65535)?;
        if entry_port == 0 || target_port == 0 {
            return Err(invalid("entry_port and target_port are required"));
        }
        if !entry_ports.insert(entry_port) {
            return Err(invalid(format!("entry_port {entry_port} is used by more than one forwarding rule")));
        }
        let passthrough = r.get("tls_passthrough").and_then(Value::as_bool).unwrap_or(false);
        let tls = |p: &str| p == "https" || p == "http2";
        let mut cert = s(r, "certificate_id");
        if passthrough {
            if !tls(&entry) || !tls(&target) {
                return Err(invalid("tls_passthrough needs an https or http2 entry_protocol and target_protocol"));
            }
            if !cert.is_empty() {
                return Err(invalid("certificate_id cannot be set on a rule with tls_passthrough"));
            }
        } else if tls(&entry) || entry == "http3" {
            if cert.is_empty() {
                return Err(invalid(format!("a {entry} rule without tls_passthrough needs a certificate_id")));
            }
            if !st.certs.contains_key(&cert) {
                return Err(invalid(format!("certificate {cert} not found")));
            }
        } else {
            cert.clear();
        }
        forwarding.push(json!({"entry_protocol": entry, "entry_port": entry_port, "target_protocol": target,
                               "target_port": target_port, "certificate_id": cert, "tls_passthrough": passthrough}));
    }

    let hc = body.get("health_check").cloned().unwrap_or(Value::Null);
    let hc_protocol = hc.get("protocol").and_then(Value::as_str).unwrap_or("http").to_string();
    if !["http", "https", "tcp"].contains(&hc_protocol.as_str()) {
        return Err(invalid("health_check.protocol must be one of http, https, tcp"));
    }
    let health = json!({
        "protocol": hc_protocol,
        "port": lb_int(&hc, "port", 80, 1, 65535)?,
        "path": hc.get("path").and_then(Value::as_str).unwrap_or("/"),
        "check_interval_seconds": lb_int(&hc, "check_interval_seconds", 10, 3, 300)?,
        "response_timeout_seconds": lb_int(&hc, "response_timeout_seconds", 5, 3, 300)?,
        "unhealthy_threshold": lb_int(&hc, "unhealthy_threshold", 5, 2, 10)?,
        "healthy_threshold": lb_int(&hc, "healthy_threshold", 3, 2, 10)?,
    });

    let sticky_in = body.get("sticky_sessions").cloned().unwrap_or(Value::Null);
    let sticky = match sticky_in.get("type").and_then(Value::as_str).unwrap_or("none") {
        "none" => json!({"type": "none"}),
        "cookies" => {
            let cookie =
                sticky_in.get("cookie_name").and_then(Value::as_str).filter(|c| !c.is_empty()).unwrap_or("DO-LB");
            json!({"type": "cookies", "cookie_name": cookie,
                   "cookie_ttl_seconds": lb_int(&sticky_in, "cookie_ttl_seconds", 300, 1, u64::from(u32::MAX))?})
        }
        other => return Err(invalid(format!("sticky_sessions.type {other} is not one of cookies, none"))),
    };

    let fw = body.get("firewall").cloned().unwrap_or(Value::Null);
    let (allow, deny) = (strings(&fw, "allow"), strings(&fw, "deny"));
    if let Some(r) = allow.iter().chain(&deny).find(|r| !lb_fw_rule(r)) {
        return Err(invalid(format!("firewall rule {r} is not ip:<address> or cidr:<block>")));
    }

    let tag = s(body, "tag");
    let wanted = droplet_ids_of(body);
    if !tag.is_empty() && !wanted.is_empty() {
        return Err(invalid("droplet_ids and tag cannot both be set"));
    }
    if !tag.is_empty() && !valid_tag(&tag) {
        return Err(invalid(format!("tag {tag} is not a valid tag name")));
    }
    let droplets = lb_droplets(st, &wanted, Some(region.as_str()), vpc.as_deref())?;

    let flag = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mut v = json!({
        "name": name,
        "region": region_json(&region),
        "size_unit": lb_int(body, "size_unit", 1, 1, 100)?,
        "algorithm": one_of("algorithm", "round_robin", &["round_robin", "least_connections"])?,
        "forwarding_rules": forwarding,
        "health_check": health,
        "sticky_sessions": sticky,
        "redirect_http_to_https": flag("redirect_http_to_https"),
        "enable_proxy_protocol": flag("enable_proxy_protocol"),
        "enable_backend_keepalive": flag("enable_backend_keepalive"),
        "http_idle_timeout_seconds": lb_int(body, "http_idle_timeout_seconds", 60, 30, 600)?,
        "disable_lets_encrypt_dns_records": flag("disable_lets_encrypt_dns_records"),
        "firewall": {"allow": allow, "deny": deny},
        "network": network,
        "network_stack": stack,
        "type": kind,
        "tls_cipher_policy": one_of("tls_cipher_policy", "DEFAULT", &["DEFAULT", "STRONG"])?,
        "tag": tag,
        "droplet_ids": droplets,
    });
    if let Some(vpc) = vpc {
        v["vpc_uuid"] = json!(vpc);
    }
    Ok(v)
}

fn create_lb(st: &mut St, body: &Value) -> (StatusCode, Value) {
    let mut v = match lb_settings(st, body, None) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let project = body.get("project_id").and_then(Value::as_str).filter(|p| !p.is_empty()).map(str::to_string);
    if project.as_ref().is_some_and(|p| !st.projects.contains_key(p)) {
        return invalid("project_id names no project");
    }
    let id = st.uuid();
    v["id"] = json!(id);
    v["status"] = json!("new");
    v["ip"] = json!("");
    v["created_at"] = json!(T0);
    if let Some(p) = &project {
        v["project_id"] = json!(p);
    }
    let answer = st.lb_json(&v);
    st.lbs.insert(id.clone(), (v, LB_POLLS));
    if let Some(p) = project.and_then(|p| st.projects.get_mut(&p)) {
        p.resources.push(format!("do:loadbalancer:{id}"));
    }
    (StatusCode::ACCEPTED, json!({"load_balancer": answer}))
}

/// `PUT`: every setting is replaced (a missing one takes its default); what DigitalOcean sets
/// (`id`, `status`, addresses, `created_at`, `project_id`) is kept.
fn update_lb(st: &mut St, id: &str, body: &Value) -> (StatusCode, Value) {
    let Some((old, _)) = st.lbs.get(id) else { return not_found() };
    let mut v = match lb_settings(st, body, Some(old)) {
        Ok(v) => v,
        Err(e) => return e,
    };
    for k in ["id", "status", "ip", "ipv6", "created_at", "project_id"] {
        if let Some(x) = old.get(k) {
            v[k] = x.clone();
        }
    }
    let answer = st.lb_json(&v);
    if let Some(lb) = st.lbs.get_mut(id) {
        lb.0 = v;
    }
    (StatusCode::OK, json!({"load_balancer": answer}))
}

/// `POST` / `DELETE /v2/load_balancers/{id}/droplets`: add or remove droplets, idempotently.
fn change_lb_droplets(st: &mut St, m: &Method, id: &str, body: &Value) -> (StatusCode, Value) {
    let Some((lb, _)) = st.lbs.get(id) else { return not_found() };
    if !s(lb, "tag").is_empty() {
        return invalid("droplets cannot be added to or removed from a load balancer that selects them by tag");
    }
    let region = s(&lb["region"], "slug");
    let checked = if m == Method::POST {
        lb_droplets(st, &droplet_ids_of(body), Some(region.as_str()), lb.get("vpc_uuid").and_then(Value::as_str))
    } else {
        lb_droplets(st, &droplet_ids_of(body), None, None)
    };
    let ids = match checked {
        Ok(ids) => ids,
        Err(e) => return e,
    };
    let Some(lb) = st.lbs.get_mut(id) else { return not_found() };
    let mut have = droplet_ids_of(&lb.0);
    if m == Method::POST {
        for d in ids {
            if !have.contains(&d) {
                have.push(d);
            }
        }
    } else {
        have.retain(|d| !ids.contains(d));
    }
    lb.0["droplet_ids"] = json!(have);
    (StatusCode::NO_CONTENT, Value::Null)
}

type Atom = (bool, String, String, String, String);

fn fw_atoms(st: &St, body: &Value) -> Result<BTreeSet<Atom>, (StatusCode, Value)> {
    let mut out = BTreeSet::new();
    for (inbound, key, side) in [(true, "inbound_rules", "sources"), (false, "outbound_rules", "destinations")] {
        for r in body.get(key).and_then(Value::as_array).cloned().unwrap_or_default() {
            let protocol = s(&r, "protocol");
            let ports = s(&r, "ports");
            if !["tcp", "udp", "icmp"].contains(&protocol.as_str()) {
                return Err(invalid(format!("protocol {protocol} is not one of tcp, udp, icmp")));
            }
            let ports_ok = ports == "0"
                || ports.split('-').all(|p| p.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p)))
                    && ports.split('-').count() <= 2;
            if !ports_ok {
                return Err(invalid(format!("ports {ports} is not a port, a range or 0")));
            }
            let target = r.get(side).cloned().unwrap_or(Value::Null);
            for kind in ["addresses", "tags", "droplet_ids", "load_balancer_uids", "kubernetes_ids"] {
                for v in target.get(kind).and_then(Value::as_array).cloned().unwrap_or_default() {
                    let v = match &v {
                        Value::String(x) => x.clone(),
                        other => other.to_string(),
                    };
                    if kind == "tags" && !st.tags.contains(&v) {
                        return Err(invalid(format!("tag {v} does not exist")));
                    }
                    if kind == "addresses" && v.parse::<Ipv4Addr>().is_err() && parse_cidr(&v).is_none() {
                        return Err(invalid(format!("address {v} is not an IPv4 address or block")));
                    }
                    out.insert((inbound, protocol.clone(), ports.clone(), kind.to_string(), v));
                }
            }
        }
    }
    Ok(out)
}

fn create_droplet(st: &mut St, body: &Value) -> (StatusCode, Value) {
    let (name, region, size, image, vpc) =
        (s(body, "name"), s(body, "region"), s(body, "size"), s(body, "image"), s(body, "vpc_uuid"));
    if !valid_name(&name) {
        return invalid("name must contain only alphanumeric characters, dashes and periods");
    }
    if !REGIONS.contains(&region.as_str()) {
        return invalid(format!("region {region} is not available"));
    }
    let Some(sz) = SIZES.iter().find(|s| s.0 == size) else { return invalid(format!("size {size} is not available")) };
    if !IMAGES.iter().any(|i| i.0 == image) {
        return invalid(format!("image {image} is not available"));
    }
    let Some(v) = st.vpcs.get(&vpc) else { return invalid(format!("vpc_uuid {vpc} does not exist")) };
    if s(v, "region") != region {
        return invalid("the VPC is in another region");
    }
    let Some(range) = parse_cidr(&s(v, "ip_range")) else { return invalid("bad VPC range") };
    let tags = strings(body, "tags");
    if let Some(t) = tags.iter().find(|t| !valid_tag(t)) {
        return invalid(format!("tag {t} is not a valid tag name"));
    }
    for k in strings(body, "ssh_keys") {
        if !st.keys.iter().any(|x| s(x, "fingerprint") == k) {
            return invalid(format!("ssh key {k} does not exist"));
        }
    }
    let used: BTreeSet<String> = st.droplets.values().map(|d| d.private_ip.clone()).collect();
    let size_of_range = 1u64 << (32 - u32::from(range.1));
    let private_ip = (2..size_of_range.saturating_sub(1))
        .map(|i| Ipv4Addr::from(range.0 + i as u32).to_string())
        .find(|ip| !used.contains(ip));
    let Some(private_ip) = private_ip else { return invalid("the VPC has no free address") };
    let public = body.get("public_networking").and_then(Value::as_bool).unwrap_or(true);
    st.counter += 1;
    let id = 3_000_000 + st.counter;
    let public_ip = public.then(|| format!("203.0.113.{}", 1 + (id % 250)));
    for t in &tags {
        st.tags.insert(t.clone());
    }
    let d = Droplet {
        id,
        name,
        region,
        size: size.clone(),
        image,
        tags,
        vpc,
        private_ip,
        public_ip,
        status: "new".into(),
        polls_left: DROPLET_POLLS,
        disk: sz.3,
        user_data: s(body, "user_data"),
    };
    let v = st.droplet_json(&d);
    st.droplets.insert(id, d);
    let action = st.counter + 1;
    (
        StatusCode::ACCEPTED,
        json!({"droplet": v, "links": {"actions": [{"id": action, "rel": "create", "href": format!("https://api.digitalocean.com/v2/actions/{action}")}]}}),
    )
}

fn droplet_action(st: &mut St, id: &str, body: &Value) -> (StatusCode, Value) {
    let Some(id) = id.parse::<u64>().ok().filter(|id| st.droplets.contains_key(id)) else { return not_found() };
    let kind = s(body, "type");
    let Some(d) = st.droplets.get_mut(&id) else { return not_found() };
    match kind.as_str() {
        "power_off" => d.status = "off".into(),
        "power_on" => d.status = "active".into(),
        "rename" => {
            let n = s(body, "name");
            if !valid_name(&n) {
                return invalid("name must contain only alphanumeric characters, dashes and periods");
            }
            d.name = n;
        }
        "resize" => {
            if d.status != "off" {
                return invalid("the droplet must be powered off to be resized");
            }
            let size = s(body, "size");
            let Some(sz) = SIZES.iter().find(|s| s.0 == size) else {
                return invalid(format!("size {size} is not available"));
            };
            if sz.3 < d.disk {
                return invalid("this size's disk is smaller than the droplet's disk");
            }
            d.size = size;
            if body.get("disk").and_then(Value::as_bool).unwrap_or(false) {
                d.disk = sz.3;
            }
        }
        other => return invalid(format!("action {other} is not supported by this fake")),
    }
    let region = d.region.clone();
    st.counter += 1;
    let aid = st.counter;
    let a = json!({"id": aid, "status": "in-progress", "type": kind, "started_at": T0, "completed_at": null,
                   "resource_id": id, "resource_type": "droplet", "region_slug": region});
    st.actions.insert(aid, (a.clone(), 1));
    (StatusCode::CREATED, json!({"action": a}))
}

fn db_rules(st: &mut St, cluster: &str, body: &Value) -> Result<Vec<Value>, (StatusCode, Value)> {
    let mut out = Vec::new();
    for r in body.get("rules").and_then(Value::as_array).cloned().unwrap_or_default() {
        let (kind, value) = (s(&r, "type"), s(&r, "value"));
        match kind.as_str() {
            "tag" if !valid_tag(&value) => return Err(invalid(format!("tag {value} is not valid"))),
            "ip_addr" if value.parse::<Ipv4Addr>().is_err() && parse_cidr(&value).is_none() => {
                return Err(invalid(format!("{value} is not an address")))
            }
            "tag" | "ip_addr" | "droplet" | "k8s" | "app" => {}
            other => return Err(invalid(format!("rule type {other} is not valid"))),
        }
        let uuid = st.uuid();
        let mut v = json!({"uuid": uuid, "cluster_uuid": cluster, "type": kind, "value": value, "created_at": T0});
        if let Some(d) = r.get("description").and_then(Value::as_str) {
            v["description"] = json!(d);
        }
        out.push(v);
    }
    Ok(out)
}

fn create_db(st: &mut St, body: &Value) -> (StatusCode, Value) {
    let (name, engine, version, size, region, vpc) = (
        s(body, "name"),
        s(body, "engine"),
        s(body, "version"),
        s(body, "size"),
        s(body, "region"),
        s(body, "private_network_uuid"),
    );
    if name.len() < 3
        || name.len() > 63
        || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return invalid("name must be 3 to 63 lowercase letters, digits and dashes");
    }
    let versions: &[&str] = match engine.as_str() {
        "pg" => &["13", "14", "15", "16", "17"],
        "mysql" => &["8"],
        "redis" => &["7"],
        "valkey" => &["8"],
        _ => return invalid(format!("engine {engine} is not supported")),
    };
    if !versions.contains(&version.as_str()) {
        return invalid(format!("version {version} of {engine} is not available"));
    }
    if !DB_SIZES.contains(&size.as_str()) {
        return invalid(format!("size {size} is not available"));
    }
    let nodes = body.get("num_nodes").and_then(Value::as_u64).unwrap_or(0);
    if !(1..=3).contains(&nodes) {
        return invalid("num_nodes must be 1 to 3");
    }
    if !REGIONS.contains(&region.as_str()) {
        return invalid(format!("region {region} is not available"));
    }
    match st.vpcs.get(&vpc) {
        Some(v) if s(v, "region") == region => {}
        _ => return invalid("private_network_uuid names no VPC of the region"),
    }
    let storage = body.get("storage_size_mib").and_then(Value::as_u64);
    if storage.is_some_and(|m| m < 10 * 1024) {
        return invalid("storage_size_mib is below the size's minimum");
    }
    if st.dbs.values().any(|d| d.name == name) {
        return invalid("a database cluster with this name already exists");
    }
    let tags = strings(body, "tags");
    if let Some(t) = tags.iter().find(|t| !valid_tag(t)) {
        return invalid(format!("tag {t} is not a valid tag name"));
    }
    let project = body.get("project_id").and_then(Value::as_str).map(str::to_string);
    if project.as_ref().is_some_and(|p| !st.projects.contains_key(p)) {
        return invalid("project_id names no project");
    }
    let id = st.uuid();
    let rules = match db_rules(st, &id, body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    for t in &tags {
        st.tags.insert(t.clone());
    }
    let d = Db {
        id: id.clone(),
        name,
        engine,
        version,
        size,
        num_nodes: nodes,
        region,
        vpc,
        tags,
        storage_mib: storage,
        status: "creating".into(),
        polls_left: DB_POLLS,
        rules,
        password: format!("AVNS_{:x}{}", 0x5eed_0000_u64 + st.counter, id.replace('-', "").get(..12).unwrap_or("x")),
    };
    let v = st.db_json(&d);
    st.dbs.insert(id.clone(), d);
    if let Some(p) = project.and_then(|p| st.projects.get_mut(&p)) {
        p.resources.push(format!("do:dbaas:{id}"));
    }
    (StatusCode::CREATED, json!({"database": v}))
}
