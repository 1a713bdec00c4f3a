//! Secrets never leak: a generated database password must not appear in plans (human or JSON),
//! apply reports, drift reports, events, logs at any level, the synthesized stack, `Debug`
//! output, any file of the state directory, or anything the command line prints.
//!
//! The library test learns the password the only way a cloud does: a recording wrapper around the
//! simulated cloud's `Database` (and `Compute`, for the VM's environment) captures the spec the
//! engine hands over. The command line test learns it by opening the sealed copy in state with
//! the passphrase it gave in `KONSTACKS_SECRET_KEY`.
//!
//! A match is a leak when any 12 consecutive characters of the password show up.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use konstacks::core::clock::OpContext;
use konstacks::core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks::core::error::Error;
use konstacks::core::model::{self, *};
use konstacks::core::provider::{Api, KindApis, ProviderResult};
use konstacks::core::secret::{Sealer, Secret};
use konstacks::core::sim::{SimCloud, SimConfig, SimResource};
use konstacks::core::spec::{DatabaseObserved, DatabaseSpec, Selector, VmObserved, VmSpec};
use konstacks::core::state::LocalBackend;

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// ---------------------------------------------------------------------------------------------
// What the cloud was handed

#[derive(Default)]
struct Seen {
    /// Passwords handed to the database API.
    db_passwords: Vec<String>,
    /// Secret environment values handed to the compute API, by variable.
    vm_env: Vec<(String, String)>,
    /// `Debug` of every spec handed over (must be redacted).
    debug: Vec<String>,
}

/// The simulated cloud's database and compute APIs, recording what they are given.
struct Recording {
    sim: Arc<SimCloud>,
    seen: Arc<Mutex<Seen>>,
}

impl Recording {
    fn db(&self, spec: &DatabaseSpec) {
        let mut s = self.seen.lock().unwrap();
        if let Some(p) = &spec.password {
            s.db_passwords.push(p.expose().clone());
        }
        s.debug.push(format!("{spec:?}"));
    }

    fn vm(&self, spec: &VmSpec) {
        let mut s = self.seen.lock().unwrap();
        for (k, v) in &spec.env {
            s.vm_env.push((k.clone(), v.expose().clone()));
        }
        s.debug.push(format!("{spec:?}"));
    }
}

// The provider traits are `#[async_trait]`; this crate does not depend on `async-trait`, so the
// methods are written in the form the macro expands to.
impl Api<model::Database> for Recording {
    fn create<'a, 'b, 'c, 'at>(
        &'a self,
        cx: &'b OpContext,
        spec: &'c DatabaseSpec,
    ) -> BoxFut<'at, ProviderResult<DatabaseObserved>>
    where
        'a: 'at,
        'b: 'at,
        'c: 'at,
        Self: 'at,
    {
        self.db(spec);
        Box::pin(async move { self.sim.api::<model::Database>().create(cx, spec).await })
    }

    fn read_many<'a, 'b, 'c, 'at>(
        &'a self,
        cx: &'b OpContext,
        sel: &'c Selector,
    ) -> BoxFut<'at, ProviderResult<Vec<DatabaseObserved>>>
    where
        'a: 'at,
        'b: 'at,
        'c: 'at,
        Self: 'at,
    {
        Box::pin(async move { self.sim.api::<model::Database>().read_many(cx, sel).await })
    }

    fn update<'a, 'b, 'c, 'd, 'at>(
        &'a self,
        cx: &'b OpContext,
        id: &'c str,
        spec: &'d DatabaseSpec,
    ) -> BoxFut<'at, ProviderResult<DatabaseObserved>>
    where
        'a: 'at,
        'b: 'at,
        'c: 'at,
        'd: 'at,
        Self: 'at,
    {
        self.db(spec);
        Box::pin(async move { self.sim.api::<model::Database>().update(cx, id, spec).await })
    }

    fn delete<'a, 'b, 'c, 'at>(&'a self, cx: &'b OpContext, id: &'c str) -> BoxFut<'at, ProviderResult<()>>
    where
        'a: 'at,
        'b: 'at,
        'c: 'at,
        Self: 'at,
    {
        Box::pin(async move { self.sim.api::<model::Database>().delete(cx, id).await })
    }
}

impl Api<Vm> for Recording {
    fn create<'a, 'b, 'c, 'at>(&'a self, cx: &'b OpContext, spec: &'c VmSpec) -> BoxFut<'at, ProviderResult<VmObserved>>
    where
        'a: 'at,
        'b: 'at,
        'c: 'at,
        Self: 'at,
    {
        self.vm(spec);
        Box::pin(async move { self.sim.api::<Vm>().create(cx, spec).await })
    }

    fn read_many<'a, 'b, 'c, 'at>(
        &'a self,
        cx: &'b OpContext,
        sel: &'c Selector,
    ) -> BoxFut<'at, ProviderResult<Vec<VmObserved>>>
    where
        'a: 'at,
        'b: 'at,
        'c: 'at,
        Self: 'at,
    {
        Box::pin(async move { self.sim.api::<Vm>().read_many(cx, sel).await })
    }

    fn update<'a, 'b, 'c, 'd, 'at>(
        &'a self,
        cx: &'b OpContext,
        id: &'c str,
        spec: &'d VmSpec,
    ) -> BoxFut<'at, ProviderResult<VmObserved>>
    where
        'a: 'at,
        'b: 'at,
        'c: 'at,
        'd: 'at,
        Self: 'at,
    {
        self.vm(spec);
        Box::pin(async move { self.sim.api::<Vm>().update(cx, id, spec).await })
    }

    fn delete<'a, 'b, 'c, 'at>(&'a self, cx: &'b OpContext, id: &'c str) -> BoxFut<'at, ProviderResult<()>>
    where
        'a: 'at,
        'b: 'at,
        'c: 'at,
        Self: 'at,
    {
        Box::pin(async move { self.sim.api::<Vm>().delete(cx, id).await })
    }
}

// ---------------------------------------------------------------------------------------------
// Logs at TRACE level, into a buffer

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide TRACE subscriber of this test binary, writing into one buffer.
fn logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuffer::default();
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only subscriber of this test binary");
        buf
    })
}

// ---------------------------------------------------------------------------------------------
// The corpus of everything that is shown or stored

#[derive(Default)]
struct Corpus {
    items: BTreeMap<String, String>,
}

impl Corpus {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        let what = what.into();
        let n = self.items.len();
        self.items.insert(format!("{n:03} {what}"), text.into());
    }

    fn add_json(&mut self, what: &str, v: &impl serde::Serialize) {
        self.add(what, serde_json::to_string_pretty(v).unwrap());
    }

    fn add_dir(&mut self, root: &Path) {
        let mut todo = vec![root.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    let bytes = std::fs::read(&p).unwrap();
                    self.add(format!("file {}", p.display()), String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
    }

    /// Fail with every place any 12 consecutive characters of `secret` appear.
    fn assert_free_of(&self, secret: &str) {
        assert!(secret.len() >= 16, "a real password was captured: {secret:?}");
        let windows: Vec<&str> = (0..=secret.len() - 12).map(|i| &secret[i..i + 12]).collect();
        let leaks: Vec<&String> =
            self.items.iter().filter(|(_, text)| windows.iter().any(|w| text.contains(w))).map(|(k, _)| k).collect();
        assert!(leaks.is_empty(), "the password leaked into: {leaks:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Through the library

fn lamp(image: Image) -> Stack {
    let stack = Stack::new("sec", Placement::within(Jurisdiction::Eu), Stage::Prod);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.20.0.0/16"));
    let web_net = net.add("public", Subnet::new(vpc, "10.20.1.0/24").public());
    let a = net.add("private-a", Subnet::new(vpc, "10.20.11.0/24").zone(0));
    let b = net.add("private-b", Subnet::new(vpc, "10.20.12.0/24").zone(1));
    let web_fw = net.add("web-fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
    let db_fw = net.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(3306).from(web_fw)));
    let db = stack.add(
        "mysql",
        model::Database::mysql("8.0", DbSize::Small, [a, b]).firewall(db_fw).backups(7).generated_password(32),
    );
    let web = stack.add(
        "web",
        Vm::new(image, VmSize::Small, web_net)
            .firewall(web_fw)
            .public_ip(true)
            .env("DB_HOST", db.host())
            .env("DB_PASSWORD", db.password()),
    );
    stack.export("site-ip", web.public_ip());
    stack.export("db-password", db.password());
    stack
}

/// Run the whole lifecycle; returns every password the database was given (the generated one,
/// then the rotated one without a key) and every `DB_PASSWORD` the VMs were given.
async fn lifecycle(sealer: Option<Sealer>) -> (Vec<String>, Vec<String>) {
    let logs = logs();
    let dir = tempfile::tempdir().unwrap();
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let rec = Arc::new(Recording { sim: sim.clone(), seen: seen.clone() });
    let provider = sim.provider().with_kind::<model::Database>(rec.clone()).with_kind::<Vm>(rec);
    let sealed = sealer.is_some();
    let engine =
        Engine::new(Arc::new(LocalBackend::new(dir.path()))).with_provider(provider.clone()).with_sealer(sealer);
    let mut events = engine.subscribe();
    let mut c = Corpus::default();

    let stack = lamp(Image::UbuntuLts);
    let s = engine.synth(&stack).unwrap();
    c.add("stack Debug", format!("{stack:?}"));
    c.add("synthesized Debug", format!("{s:?}"));
    c.add_json("synthesized JSON", &s);
    c.add("engine and provider Debug", format!("{engine:?} {provider:?}"));

    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    c.add("first plan", plan.render(false));
    c.add("first plan, coloured", plan.render(true));
    c.add_json("first plan JSON", &plan);
    c.add("first plan Debug", format!("{plan:?}"));

    let report = engine.apply(&s, &ApplyOptions { expected: Some(plan), ..Default::default() }).await.unwrap();
    c.add_json("apply report", &report);
    c.add("apply report Debug", format!("{report:?}"));
    assert_eq!(report.outputs["db-password"], "(sensitive)");

    let plan = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert!(plan.is_empty(), "{}", plan.render(false));
    c.add("re-plan", plan.render(false));
    c.add_json("re-plan JSON", &plan);

    // Drift: someone shortens the backups and resizes the VM in the console.
    for r in sim.resources_of_stack("sec") {
        sim.tamper(r.id(), |r: &mut SimResource| {
            if let Some(d) = r.get_mut::<model::Database>() {
                d.backup_retention_days = 1;
            } else if let Some(v) = r.get_mut::<Vm>() {
                v.size = "xlarge".into();
            }
        });
    }
    let drift = engine.drift("sec").await.unwrap();
    assert_eq!(drift.items.len(), 2, "{}", drift.render());
    c.add("drift", drift.render());
    c.add_json("drift JSON", &drift);
    let plan = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    c.add("refreshing plan", plan.render(false));
    c.add_json("refreshing plan JSON", &plan);
    let report = engine.apply(&s, &ApplyOptions { refresh: true, ..Default::default() }).await.unwrap();
    c.add_json("refreshing apply report", &report);
    assert!(engine.drift("sec").await.unwrap().is_clean());

    // Drift again, accepted into state this time.
    for r in sim.resources_of_stack("sec") {
        sim.tamper(r.id(), |r| {
            if let Some(d) = r.get_mut::<model::Database>() {
                d.backup_retention_days = 3;
            }
        });
    }
    let refreshed = engine.refresh("sec").await.unwrap();
    c.add("refresh", refreshed.render());
    c.add_json("refresh JSON", &refreshed);
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    c.add("plan after refresh", plan.render(false));
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();

    // Replacing the VM needs the password again for its environment: from the sealed copy in
    // state, or (without a key) by rotating the lost password in place; neither may leak it.
    let s2 = engine.synth(&lamp(Image::Debian12)).unwrap();
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    c.add("replacement plan", plan.render(false));
    c.add_json("replacement plan JSON", &plan);
    match engine.apply(&s2, &ApplyOptions::default()).await {
        Ok(r) => {
            assert_eq!(r.replaced, ["web"]);
            let rotated: &[&str] = if sealed { &[] } else { &["mysql"] };
            assert_eq!(r.updated, rotated, "without a key the lost password is rotated in place");
            c.add_json("replacement report", &r);
        }
        Err(e) => {
            c.add("replacement error Debug", format!("{e:?}"));
            if let Error::Apply(r) = &e {
                c.add_json("replacement failure report", r);
            }
            panic!("the replacement must go through: {e}");
        }
    }
    let st = engine.state("sec").await.unwrap();
    c.add_json("state JSON", &st);
    c.add("state Debug", format!("{st:?}"));
    c.add_dir(dir.path());
    if sealed {
        assert!(st.resources["mysql"].sealed.contains_key("password"), "the password is kept sealed");
    } else {
        assert!(st.resources.values().all(|r| r.sealed.is_empty()), "without a key nothing secret is stored");
    }

    let report = engine.destroy("sec", &ApplyOptions::default()).await.unwrap();
    c.add_json("destroy report", &report);
    c.add_dir(dir.path());

    let mut n = 0;
    while let Ok(e) = events.try_recv() {
        n += 1;
        c.add_json("event", &e);
        c.add("event Debug", format!("{e:?}"));
    }
    assert!(n > 30, "events were recorded: {n}");
    c.add("tracing output", String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned());
    assert!(c.items.values().any(|t| t.contains("simulated cloud call")), "TRACE logs were captured");

    // What the cloud was given: the password at create (and, without a key, the rotated one),
    // and the same in the VM's env.
    let seen = seen.lock().unwrap();
    let passwords = seen.db_passwords.clone();
    assert_eq!(passwords.len(), if sealed { 1 } else { 2 }, "set on create, and on the rotation only");
    assert!(passwords.iter().all(|p| p.len() == 32));
    let env: Vec<String> = seen.vm_env.iter().filter(|(k, _)| k == "DB_PASSWORD").map(|(_, v)| v.clone()).collect();
    assert!(env.first() == passwords.first(), "the VM was created with the database's password");
    assert!(env.last() == passwords.last(), "the replacement VM has the database's current password");
    for d in &seen.debug {
        c.add("spec Debug", d.clone());
    }
    for p in &passwords {
        c.assert_free_of(p);
    }
    (passwords, env)
}

fn key() -> Option<Sealer> {
    Some(Sealer::from_passphrase(&Secret::new("correct horse battery staple".to_string())))
}

#[tokio::test(start_paused = true)]
async fn a_generated_password_never_leaks_without_a_state_key() {
    lifecycle(None).await;
}

#[tokio::test(start_paused = true)]
async fn a_generated_password_never_leaks_when_sealed_into_state() {
    lifecycle(key()).await;
}

/// Minimal reproduction: create the stack, resize the VM (an update in place); the `VmSpec`
/// handed to `update_vm` carries `DB_PASSWORD = "(sensitive) from mysql.password"` (the plan's
/// redaction marker) instead of the password. A provider that (re)writes the environment on
/// update would install the marker as the password.
#[tokio::test(start_paused = true)]
async fn every_spec_handed_to_the_cloud_carries_the_secret_not_its_marker() {
    // With a state key the secret of an earlier run is known, and every spec carries it.
    let (passwords, env) = lifecycle(key()).await;
    assert!(env.len() >= 2, "created, then updated: {env:?}");
    assert!(env.iter().all(|v| Some(v) == passwords.first()), "every spec carries the password");
    // Without one it cannot be known in a later run: an update that leaves the environment
    // alone carries the redaction marker in that unchanged field (never another value), the
    // create carried the real secret, and the replacement the rotated one.
    let (passwords, env) = lifecycle(None).await;
    assert!(env.first() == passwords.first() && env.last() == passwords.last(), "create, then rotation");
    assert!(
        env.len() >= 3 && env[1..env.len() - 1].iter().all(|v| v.starts_with("(sensitive)")),
        "updates carry markers"
    );
}

// ---------------------------------------------------------------------------------------------
// Through the command line

const PASSPHRASE: &str = "secrets-test-passphrase";

/// Run the binary (with or without the state key); returns exit code and everything printed.
fn cli(cwd: &Path, key: bool, args: &[&str]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_konstacks"));
    c.current_dir(cwd)
        .args(["--state-dir", "state", "--sim-latency-ms", "0", "--template", "lamp-site"])
        .args(args)
        .env_remove("KONSTACKS_CRASH_AT")
        .stdin(Stdio::null());
    if key {
        c.env("KONSTACKS_SECRET_KEY", PASSPHRASE);
    } else {
        c.env_remove("KONSTACKS_SECRET_KEY");
    }
    let out = c.output().unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_command_line_never_prints_or_stores_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut c = Corpus::default();
    let mut run = |key: bool, args: &[&str], code: i32| {
        let (got, text) = cli(cwd, key, args);
        assert_eq!(got, code, "konstacks {args:?}:\n{text}");
        c.add(format!("konstacks {args:?} (key: {key})"), text);
    };

    run(true, &["validate"], 0);
    run(true, &["synth"], 0);
    run(true, &["plan"], 2);
    run(true, &["--json", "plan"], 2);
    run(true, &["apply", "--yes"], 0);
    run(true, &["plan", "--refresh"], 0);
    std::fs::write(cwd.join("big.toml"), "vm_size = \"large\"\nbackup_days = 14\n").unwrap();
    run(true, &["--json", "apply", "--yes", "--params", "big.toml"], 0);
    // Replacing the VM re-sends the password in its environment (from the sealed copy).
    std::fs::write(cwd.join("repo.toml"), "site_repo = \"https://example.invalid/site.git\"\n").unwrap();
    run(true, &["plan", "--params", "repo.toml"], 2);
    run(true, &["apply", "--yes", "--params", "repo.toml"], 0);
    for key in [true, false] {
        run(key, &["output"], 0);
        run(key, &["--json", "output"], 0);
        run(key, &["state", "list"], 0);
        run(key, &["state", "show", "mysql"], 0);
        run(key, &["state", "show", "web"], 0);
        run(key, &["--json", "state", "show", "mysql"], 0);
        run(key, &["drift"], 0);
        run(key, &["--json", "drift"], 0);
        run(key, &["graph"], 0);
        run(key, &["--json", "plan", "--params", "repo.toml"], 0);
    }

    // The password, from the sealed copy in state, opened with the passphrase given above.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cwd.join("state/stacks/lamp-site-dev/state.json")).unwrap()).unwrap();
    let sealed = state["resources"]["mysql"]["sealed"]["password"].as_str().expect("sealed in state").to_string();
    let sealer = Sealer::from_passphrase(&Secret::new(PASSPHRASE.to_string()));
    let password = sealer.open("lamp-site-dev/mysql.password", &sealed).expect("opens with the passphrase");
    let password = password.expose().clone();
    assert_eq!(password.len(), 32);

    // Without the key the replacement cannot open the sealed password: the key is missing (a
    // clear failure before any change, no leak, and no rotation of a password a key can open).
    std::fs::write(cwd.join("debian.toml"), "site_repo = \"https://example.invalid/other.git\"\n").unwrap();
    let (code, text) = cli(cwd, false, &["--json", "apply", "--yes", "--params", "debian.toml"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("KONSTACKS_SECRET_KEY"), "{text}");
    c.add("failed replacement without key", text);

    c.add_dir(&cwd.join("state"));
    let (code, text) = cli(cwd, true, &["destroy", "--yes"]);
    assert_eq!(code, 0, "{text}");
    c.add("destroy", text);
    c.add_dir(&cwd.join("state"));
    c.assert_free_of(&password);
}

#[test]
#[should_panic(expected = "the password leaked into")]
fn the_leak_detector_finds_a_partial_leak() {
    let mut c = Corpus::default();
    c.add("clean", "nothing to see");
    c.add("leaky", "prefix CxfRkF8Hi6ag suffix");
    c.assert_free_of("CxfRkF8Hi6agZ4KEfWTgRYErB3dgUAox");
}
