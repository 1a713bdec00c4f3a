//! `konstacks dev` through the real binary: the web-app template run for real on this machine
//! (apps as processes from `tests/apps/app.py`, the load balancer as a loopback reverse proxy,
//! local PostgreSQL and Redis where installed).
//!
//! - a release that replaces 3 app VMs under load from several keep-alive connections: no
//!   failed request, both versions answer; the figures (requests, failures, release duration,
//!   p99 latency during the release) are printed for docs/live.md;
//! - SIGINT then leaves no child process and no open port;
//! - a broken release (the new version fails its health check) is rolled back with no failed
//!   request, the old version answering and the failure reported with its evidence;
//! - the app reads and writes the real database and cache through the env the stack gave it.
//!
//! Waits are bounded (a session that never says `serving:` fails the test after minutes, it
//! does not hang it) but nothing asserts on speed. The suites run one at a time: each one loads
//! the machine.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One suite at a time: they start servers and load the machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// The binary under test: `KONSTACKS_BIN` when set (a copy, a release build), else the one
/// cargo built for this test.
fn bin() -> PathBuf {
    std::env::var_os("KONSTACKS_BIN").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_konstacks").into())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> Option<String> {
    ["python3", "python"].iter().find_map(|p| {
        Command::new(p).arg("--version").output().ok().filter(|o| o.status.success()).map(|_| p.to_string())
    })
}

/// The web-app template's parameters for a live session of `vms` app VMs at `version`.
fn params(vms: u32, version: &str, redis: bool) -> String {
    let app = repo().join("tests/apps/app.py");
    let py = python().expect("python3 is needed to run the test app");
    format!(
        "load_balancer = true\nvm_count = {vms}\nredis = {redis}\nhealth_path = \"/healthz\"\n\
         start_command = \"{py} {}\"\napp_version = \"{version}\"\n",
        app.display()
    )
}

/// A running `konstacks dev` and everything it printed so far.
struct Dev {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    rx: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
}

impl Dev {
    fn start(params_text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("params.toml"), params_text).unwrap();
        let mut child = Command::new(bin())
            .current_dir(dir.path())
            .env_remove("KONSTACKS_SECRET_KEY")
            .args(["--sim-latency-ms", "0", "dev", "--template", "web-app", "--params", "params.toml"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        for (name, stream) in [
            ("out", Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>),
            ("err", Box::new(child.stderr.take().unwrap())),
        ] {
            let lines = lines.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(format!("[{name}] {line}"));
                    let _ = tx.send(line);
                }
            });
        }
        Self { child, lines, rx, dir }
    }

    fn transcript(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The first line from now on that satisfies `want` (bounded wait).
    fn wait_line(&self, limit: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("konstacks dev did not print the expected line; it printed:\n{}", self.transcript()),
            }
        }
    }

    /// Wait for `serving: URL`; the load balancer's `host:port`.
    fn serving(&self) -> String {
        let line = self.wait_line(Duration::from_secs(240), |l| l.starts_with("serving: "));
        let url = line.trim_start_matches("serving: ").trim();
        url.strip_prefix("http://")
            .unwrap_or_else(|| panic!("not an HTTP URL: {url}"))
            .trim_end_matches('/')
            .to_string()
    }

    fn write_params(&self, text: &str) {
        // Written whole and renamed, as editors do, so the session never reads half a file.
        let tmp = self.dir.path().join("params.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.dir.path().join("params.toml")).unwrap();
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, then the exit code (bounded wait).
    fn interrupt(mut self) -> (i32, String) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.pid()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (status.code().unwrap_or(-1), self.transcript());
            }
            assert!(Instant::now() < deadline, "konstacks dev did not stop after SIGINT:\n{}", self.transcript());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // A failed test must not leave the session running, nor what it started: SIGINT lets
        // it stop its process groups; SIGKILL (which would orphan them) only as a last resort.
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        if let Some(pid) = i32::try_from(self.child.id()).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client on one keep-alive connection (Content-Length or chunked bodies).
struct Conn {
    host: String,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(host: &str) -> std::io::Result<Self> {
        let s = TcpStream::connect(host)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_nodelay(true)?;
        Ok(Self { host: host.to_string(), r: BufReader::new(s) })
    }

    fn get(&mut self, path: &str) -> std::io::Result<(u16, String)> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: konstacks-live-test\r\n\r\n", self.host);
        self.r.get_mut().write_all(req.as_bytes())?;
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed before the response"));
        }
        let status: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| bad(&line))?;
        let (mut len, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            self.r.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').ok_or_else(|| bad(l))?;
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "connection" => close = v.to_ascii_lowercase().contains("close"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.r.read_line(&mut line)?;
                let n =
                    usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).map_err(|_| bad(&line))?;
                let mut chunk = vec![0; n + 2];
                self.r.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = len {
            body.resize(n, 0);
            self.r.read_exact(&mut body)?;
        } else {
            self.r.read_to_end(&mut body)?;
            close = true;
        }
        if close {
            *self = Conn::open(&self.host)?;
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// One request as the load generator saw it.
struct Sample {
    at: Instant,
    latency: Duration,
    /// `Ok(version)` for a 200 answer, `Err(what went wrong)` otherwise.
    outcome: Result<String, String>,
}

/// Several keep-alive connections sending `GET /` in a loop until stopped, or until a bound on
/// requests and time is reached.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<Vec<Sample>>>,
}

const CONNECTIONS: usize = 8;
const MAX_REQUESTS_PER_CONNECTION: usize = 100_000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(600);

impl Load {
    fn start(host: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let threads = (0..CONNECTIONS)
            .map(|_| {
                let stop = stop.clone();
                let sent = sent.clone();
                let host = host.to_string();
                std::thread::spawn(move || {
                    let began = Instant::now();
                    let mut out = Vec::new();
                    let mut conn = Conn::open(&host).ok();
                    while !stop.load(Ordering::Relaxed)
                        && out.len() < MAX_REQUESTS_PER_CONNECTION
                        && began.elapsed() < MAX_LOAD_TIME
                    {
                        let at = Instant::now();
                        let res = match conn.as_mut() {
                            Some(c) => c.get("/"),
                            None => Err(std::io::Error::other("could not connect")),
                        };
                        let outcome = match res {
                            Ok((200, body)) => Ok(version_of(&body)),
                            Ok((code, body)) => Err(format!("{code}: {}", body.trim())),
                            Err(e) => {
                                conn = Conn::open(&host).ok();
                                Err(e.to_string())
                            }
                        };
                        out.push(Sample { at, latency: at.elapsed(), outcome });
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    out
                })
            })
            .collect();
        Self { stop, sent, threads }
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    }
}

fn version_of(body: &str) -> String {
    body.split_whitespace().find_map(|w| w.strip_prefix("version=")).unwrap_or("?").to_string()
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get((v.len() * 99).div_ceil(100).saturating_sub(1)).copied().unwrap_or_default()
}

/// `(pid, ppid, pgrp)` of every process, from /proc.
fn processes() -> Vec<(u32, u32, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // The command name is in parentheses and may hold spaces: fields follow the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(ppid), Some(pgrp)) = (f.get(1).and_then(|x| x.parse().ok()), f.get(2).and_then(|x| x.parse().ok()))
        {
            out.push((pid, ppid, pgrp));
        }
    }
    out
}

/// The process groups of every descendant of `root`.
fn descendant_groups(root: u32) -> BTreeSet<u32> {
    let all = processes();
    let mut pids = BTreeSet::from([root]);
    loop {
        let more: Vec<u32> =
            all.iter().filter(|(p, pp, _)| pids.contains(pp) && !pids.contains(p)).map(|(p, _, _)| *p).collect();
        if more.is_empty() {
            break;
        }
        pids.extend(more);
    }
    all.iter().filter(|(p, _, _)| *p != root && pids.contains(p)).map(|(_, _, g)| *g).collect()
}

fn figures(samples: &[Sample], from: Instant, to: Instant) -> (usize, usize, Duration) {
    let during: Vec<&Sample> = samples.iter().filter(|s| s.at >= from && s.at <= to).collect();
    let failed = during.iter().filter(|s| s.outcome.is_err()).count();
    (during.len(), failed, p99(during.iter().map(|s| s.latency).collect()))
}

fn failures(samples: &[Sample]) -> Vec<String> {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for s in samples {
        if let Err(e) = &s.outcome {
            *by.entry(e.clone()).or_default() += 1;
        }
    }
    by.into_iter().map(|(e, n)| format!("{n} x {e}")).collect()
}

#[test]
fn a_release_of_three_vms_under_load_fails_no_request_and_sigint_leaves_nothing() {
    let _one = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dev = Dev::start(&params(3, "v1", false));
    let host = dev.serving();
    let groups = descendant_groups(dev.pid());
    assert!(groups.len() >= 3, "expected the app processes in their own groups: {groups:?}\n{}", dev.transcript());

    let load = Load::start(&host);
    std::thread::sleep(Duration::from_secs(2));
    // A slow request in flight when the release starts finishes on the old version.
    let slow = {
        let host = host.clone();
        std::thread::spawn(move || Conn::open(&host).and_then(|mut c| c.get("/slow?ms=8000")))
    };
    std::thread::sleep(Duration::from_millis(200));
    let release_start = Instant::now();
    dev.write_params(&params(3, "v2", false));
    let done = dev
        .wait_line(Duration::from_secs(600), |l| l.starts_with("release complete") || l.starts_with("release failed"));
    let release_end = Instant::now();
    assert!(done.starts_with("release complete"), "{done}\n{}", dev.transcript());
    // Both versions answer after the release; keep the load on until at least 5,000 requests
    // were sent in all (bounded).
    let after = Instant::now();
    while (after.elapsed() < Duration::from_secs(1) || load.sent.load(Ordering::Relaxed) < 5_000)
        && after.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let samples = load.finish();
    let (during, failed_during, p99_during) = figures(&samples, release_start, release_end);
    let versions: BTreeSet<String> = samples.iter().filter_map(|s| s.outcome.clone().ok()).collect();
    let failed = samples.iter().filter(|s| s.outcome.is_err()).count();
    eprintln!(
        "live release of 3 VMs: {} requests over {CONNECTIONS} connections ({during} during the release), {failed} \
         failed ({failed_during} during the release), release took {:.1}s, p99 latency during the release {:.1}ms, \
         versions seen {versions:?}",
        samples.len(),
        (release_end - release_start).as_secs_f64(),
        p99_during.as_secs_f64() * 1000.0
    );
    assert_eq!(failed, 0, "failed requests: {:?}\n{}", failures(&samples), dev.transcript());
    assert!(samples.len() >= 5_000, "only {} requests", samples.len());
    assert!(versions.contains("v1") && versions.contains("v2"), "versions seen: {versions:?}");
    let (code, body) = slow.join().unwrap().unwrap();
    assert_eq!((code, body.trim()), (200, "version=v1 slept=8000ms"));

    // SIGINT: exit 0, nothing of the session left running, the port closed.
    let pid = dev.pid();
    let groups = descendant_groups(pid);
    let (code, transcript) = dev.interrupt();
    assert_eq!(code, 0, "{transcript}");
    assert!(transcript.contains("stopped:"), "{transcript}");
    let left: Vec<(u32, u32, u32)> =
        processes().into_iter().filter(|(_, ppid, g)| *ppid == pid || groups.contains(g)).collect();
    assert!(left.is_empty(), "processes left after SIGINT (pid, ppid, pgrp): {left:?}\n{transcript}");
    assert!(TcpStream::connect(&host).is_err(), "the load balancer's port {host} still accepts connections");
}

#[test]
fn a_broken_release_rolls_back_with_no_failed_request_and_reports_its_evidence() {
    let _one = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dev = Dev::start(&params(2, "v1", false));
    let host = dev.serving();
    let load = Load::start(&host);
    std::thread::sleep(Duration::from_secs(1));
    dev.write_params(&params(2, "broken-2", false));
    let done = dev
        .wait_line(Duration::from_secs(600), |l| l.starts_with("release complete") || l.starts_with("release failed"));
    assert!(done.starts_with("release failed"), "a broken version was released: {done}\n{}", dev.transcript());
    // The evidence follows the failure line; the old version keeps answering.
    dev.wait_line(Duration::from_secs(30), |l| l.starts_with("still serving the previous release"));
    std::thread::sleep(Duration::from_secs(1));
    let samples = load.finish();
    let versions: BTreeSet<String> = samples.iter().filter_map(|s| s.outcome.clone().ok()).collect();
    let failed = samples.iter().filter(|s| s.outcome.is_err()).count();
    eprintln!("live broken release: {} requests, {failed} failed, versions seen {versions:?}", samples.len());
    let transcript = dev.transcript();
    assert_eq!(failed, 0, "failed requests: {:?}\n{transcript}", failures(&samples));
    assert_eq!(versions, BTreeSet::from(["v1".to_string()]), "{transcript}");
    assert!(transcript.contains("never became healthy"), "{transcript}");
    assert!(transcript.contains("evidence:") && transcript.contains("answered 500"), "{transcript}");
    let mut c = Conn::open(&host).unwrap();
    assert_eq!(c.get("/").unwrap().1.split_whitespace().next(), Some("version=v1"));
    let (code, transcript) = dev.interrupt();
    assert_eq!(code, 0, "{transcript}");
}

/// Whether this machine has the server binaries live mode uses for databases and caches.
fn have_servers() -> bool {
    let on_path =
        |n: &str| std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(n).is_file()));
    let pg = on_path("initdb")
        || std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().any(|v| v.path().join("bin/initdb").is_file()))
            .unwrap_or(false);
    pg && on_path("redis-server") && on_path("redis-cli")
}

#[test]
fn the_app_reads_and_writes_the_real_local_database_and_cache() {
    if !have_servers() {
        eprintln!(
            "SKIPPED: PostgreSQL or Redis server binaries are not installed here (scripts/install-live-deps.sh \
             installs them; CI runs it)"
        );
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dev = Dev::start(&params(1, "v1", true));
    let host = dev.serving();
    let transcript = dev.transcript();
    assert!(transcript.contains("data/postgres (postgres) runs on a real local PostgreSQL"), "{transcript}");
    assert!(transcript.contains("data/redis (redis) runs on a real local Redis"), "{transcript}");
    let mut c = Conn::open(&host).unwrap();
    let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();
    let (code, first) = c.get("/db").unwrap();
    assert_eq!(code, 200, "{first}\n{transcript}");
    let (_, second) = c.get("/db").unwrap();
    let (first, second) = (json(&first), json(&second));
    assert_eq!(second["rows"].as_u64().unwrap(), first["rows"].as_u64().unwrap() + 1, "{first} {second}");
    assert!(first["server_version"].as_str().unwrap().starts_with(char::is_numeric), "{first}");
    let (code, cache) = c.get("/cache").unwrap();
    assert_eq!(code, 200, "{cache}\n{}", dev.transcript());
    let (_, again) = c.get("/cache").unwrap();
    let (cache, again) = (json(&cache), json(&again));
    assert_eq!(cache["read_back"], cache["incremented_to"], "{cache}");
    assert_eq!(again["read_back"].as_u64().unwrap(), cache["read_back"].as_u64().unwrap() + 1, "{again}");
    eprintln!("live database and cache: {first} {second} {cache} {again}");
    let pid = dev.pid();
    let groups = descendant_groups(pid);
    let (code, transcript) = dev.interrupt();
    assert_eq!(code, 0, "{transcript}");
    let left: Vec<(u32, u32, u32)> =
        processes().into_iter().filter(|(_, ppid, g)| *ppid == pid || groups.contains(g)).collect();
    assert!(left.is_empty(), "servers left after SIGINT: {left:?}\n{transcript}");
}

/// Whether a container engine answers here (then the image form runs for real).
fn container_engine_answers() -> bool {
    ["docker", "podman"].iter().any(|e| {
        Command::new(e)
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn an_image_app_without_a_container_engine_is_refused_naming_the_command_form() {
    if container_engine_answers() {
        eprintln!("SKIPPED: a container engine answers here, so the image form would run for real");
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("params.toml"),
        "load_balancer = true\nvm_count = 1\napp_image = \"ghcr.io/acme/shop:1.4.2\"\nhealth_path = \"/healthz\"\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["--sim-latency-ms", "0", "dev", "--probe", "--template", "web-app", "--params", "params.toml"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no container engine answers here") && err.contains("command form"), "{err}");
    assert!(err.contains("stopped:"), "everything started is stopped: {err}");
}

#[test]
fn https_listeners_serve_with_the_local_ca_and_http_redirects_to_them() {
    let _one = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let text = format!("{}domain = \"shop.example.com\"\nzone = \"example.com\"\n", params(1, "v1", false));
    let dev = Dev::start(&text);
    let line = dev.wait_line(Duration::from_secs(240), |l| l.starts_with("serving: "));
    let url = line.trim_start_matches("serving: ").trim().to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let root = dev.wait_line(Duration::from_secs(10), |l| l.starts_with("local CA root"));
    let root = PathBuf::from(root.rsplit(": ").next().unwrap().trim());
    assert!(
        root.canonicalize().unwrap().starts_with(dev.dir.path().canonicalize().unwrap()),
        "the CA lives in the state directory: {}",
        root.display()
    );
    let transcript = dev.transcript();
    let redirecting = transcript
        .lines()
        .find_map(|l| l.split("port 80 -> http://").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no HTTP listener listed:\n{transcript}"))
        .to_string();

    // HTTP answers 301 to the HTTPS listener, path and query kept.
    let mut c = TcpStream::connect(&redirecting).unwrap();
    c.write_all(format!("GET /a?b=1 HTTP/1.1\r\nHost: {redirecting}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 301"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains(&format!("location: {url}/a?b=1")), "{answer}");

    // HTTPS, verified against the printed root only.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (status, body) = rt.block_on(konstacks::live::get(&format!("{url}/"), Some(&root))).unwrap();
    assert_eq!((status, body.split_whitespace().next()), (200, Some("version=v1")));
    let untrusted = rt.block_on(konstacks::live::get(&format!("{url}/"), None));
    assert!(untrusted.is_err(), "a client that does not trust the local CA must refuse: {untrusted:?}");
    let (code, transcript) = dev.interrupt();
    assert_eq!(code, 0, "{transcript}");
}
