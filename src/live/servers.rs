//! Databases and caches served for real where the engine's server binaries are installed: a
//! throwaway PostgreSQL cluster or Redis server per resource, in a temporary directory, on a
//! free loopback port, with the admin user and password (or auth token) the spec gives.
//! Where the binaries are missing, the resource stays simulated and [`Servers`] says why.
//!
//! Secrets reach the servers through files of mode 0600 (never through argv, which `ps` shows)
//! and are never printed.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::procs::{tail, Proc};

/// Which server binaries this machine has.
#[derive(Debug, Clone, Default)]
pub(crate) struct Servers {
    /// The directory holding `initdb` and `postgres`, and its major version.
    pub(crate) postgres: Option<(PathBuf, String)>,
    /// `redis-server`.
    pub(crate) redis: Option<PathBuf>,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

impl Servers {
    /// Look for the binaries: on PATH, and for PostgreSQL under `/usr/lib/postgresql/*/bin`
    /// (Debian's layout, newest version first).
    pub(crate) fn find() -> Self {
        let mut pg_dirs: Vec<PathBuf> = Vec::new();
        if let Some(initdb) = on_path("initdb") {
            if let Some(dir) = std::fs::canonicalize(&initdb).ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
                pg_dirs.push(dir);
            }
        }
        if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<(u32, PathBuf)> = rd
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().and_then(|v| v.parse::<u32>().ok()).map(|v| (v, e.path())))
                .collect();
            versions.sort_by_key(|v| std::cmp::Reverse(v.0));
            pg_dirs.extend(versions.into_iter().map(|(_, p)| p.join("bin")));
        }
        let postgres =
            pg_dirs.into_iter().find(|d| d.join("initdb").is_file() && d.join("postgres").is_file()).map(|d| {
                let version = std::process::Command::new(d.join("postgres"))
                    .arg("--version")
                    .output()
                    .ok()
                    .and_then(|o| String::from_utf8(o.stdout).ok())
                    .and_then(|s| s.split_whitespace().last().map(|v| v.split('.').next().unwrap_or(v).to_string()))
                    .unwrap_or_default();
                (d, version)
            });
        Self { postgres, redis: on_path("redis-server") }
    }

    /// What becomes of a database of `engine`: `Ok(what runs it)` or `Err(why it stays
    /// simulated)`.
    pub(crate) fn database_note(&self, engine: &str) -> Result<String, String> {
        match (engine, &self.postgres) {
            ("postgres", Some((dir, v))) => Ok(format!("a real local PostgreSQL {v} server ({})", dir.display())),
            ("postgres", None) => {
                Err("stays simulated: no PostgreSQL server binaries here (initdb and postgres on PATH or under \
                 /usr/lib/postgresql/*/bin; on Debian: apt-get install postgresql)"
                    .into())
            }
            (other, _) => Err(format!("stays simulated: live mode runs PostgreSQL only, not {other}")),
        }
    }

    /// What becomes of a cache of `engine`.
    pub(crate) fn cache_note(&self, engine: &str) -> Result<String, String> {
        match (engine, &self.redis) {
            ("redis" | "valkey", Some(p)) => Ok(format!("a real local Redis server ({})", p.display())),
            ("redis" | "valkey", None) => {
                Err("stays simulated: no redis-server here (on PATH; on Debian: apt-get install redis-server)".into())
            }
            (other, _) => Err(format!("stays simulated: live mode runs Redis only, not {other}")),
        }
    }
}

/// The uid and gid of `user` from `/etc/passwd`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&user) && f.len() > 3).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?))).flatten()
    })
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Wait until `log` says `ready` and `port` accepts, or `proc` ended, or `limit` passed.
fn wait_ready(proc: &Proc, log: &Path, ready: &str, port: u16, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let said = std::fs::read_to_string(log).map(|t| t.contains(ready)).unwrap_or(false);
        if said && TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(how) = proc.exited() {
            return Err(format!("the {} {how}; its log ({}) ends with:\n{}", proc.what, log.display(), tail(log, 15)));
        }
        if start.elapsed() > limit {
            return Err(format!(
                "the {} did not get ready within {}s; its log ({}) ends with:\n{}",
                proc.what,
                limit.as_secs(),
                log.display(),
                tail(log, 15)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `f`, which blocks, without starving the async runtime it is called from.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Start a throwaway PostgreSQL cluster in `dir` on `port`: superuser `user`, password auth when
/// `password` is given (trust otherwise), sockets in `dir`. Blocks until it accepts connections.
pub(crate) fn start_postgres(
    bin: &Path,
    dir: &Path,
    what: &str,
    port: u16,
    user: &str,
    password: Option<&str>,
) -> Result<Proc, String> {
    let data = dir.join("data");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user.
    let owner = if is_root() {
        Some(user_ids("postgres").ok_or_else(|| {
            "PostgreSQL refuses to run as root, and there is no `postgres` user to run it as (Debian's postgresql \
             package creates one)"
                .to_string()
        })?)
    } else {
        None
    };
    let pwfile = dir.join("pwfile");
    let mut init = std::process::Command::new(bin.join("initdb"));
    init.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C")
        .args(["--no-sync", "-E", "UTF8", "--locale=C", "-U", user, "-D"])
        .arg(&data);
    match password {
        Some(p) => {
            write_private(&pwfile, &format!("{p}\n"))?;
            init.arg("--auth=scram-sha-256").arg(format!("--pwfile={}", pwfile.display()));
        }
        None => {
            init.arg("--auth=trust");
        }
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| format!("cannot give {} to the postgres user: {e}", dir.display()))?;
        if password.is_some() {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))
                .map_err(|e| format!("cannot give the password file to the postgres user: {e}"))?;
        }
        std::os::unix::process::CommandExt::uid(&mut init, uid);
        std::os::unix::process::CommandExt::gid(&mut init, gid);
    }
    let out = init.output().map_err(|e| format!("cannot run initdb for the {what}: {e}"))?;
    let _ = std::fs::remove_file(&pwfile);
    if !out.status.success() {
        return Err(format!(
            "initdb failed for the {what}: {}",
            String::from_utf8_lossy(&out.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" / ")
        ));
    }
    let log = dir.join("postgres.log");
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.env_clear()
        .env("LANG", "C")
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-k"])
        .arg(dir);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    let proc = Proc::spawn(what.to_string(), cmd, &log)?;
    if let Some((uid, gid)) = owner {
        let _ = std::os::unix::fs::chown(&log, Some(uid), Some(gid));
    }
    wait_ready(&proc, &log, "ready to accept connections", port, Duration::from_secs(30))?;
    Ok(proc)
}

/// Start a throwaway Redis server in `dir` on `port`, requiring `token` when given; nothing is
/// persisted. Blocks until it accepts connections.
pub(crate) fn start_redis(bin: &Path, dir: &Path, what: &str, port: u16, token: Option<&str>) -> Result<Proc, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut conf = format!(
        "port {port}\nbind 127.0.0.1\nprotected-mode yes\nsave \"\"\nappendonly no\ndaemonize no\ndir {}\n",
        quote(&dir.display().to_string())
    );
    if let Some(t) = token {
        conf.push_str(&format!("requirepass {}\n", quote(t)));
    }
    let conf_path = dir.join("redis.conf");
    write_private(&conf_path, &conf)?;
    let log = dir.join("redis.log");
    let mut cmd = Command::new(bin);
    cmd.env_clear().arg(&conf_path);
    let proc = Proc::spawn(what.to_string(), cmd, &log)?;
    wait_ready(&proc, &log, "Ready to accept connections", port, Duration::from_secs(20))?;
    Ok(proc)
}
