//! Secrets never make a stack impossible to apply: a generated secret that a later run needs
//! but cannot know (no state key, or no sealed copy) is rotated in place where the cloud allows
//! it, and the run is refused before any change where it does not; a wrong state key is told
//! from a missing one; a run without a key warns; and a failed apply that changed nothing
//! leaves state untouched. On the simulated cloud, on virtual time. Secrets are compared by the
//! simulated cloud's fingerprints only, never read or printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use konstacks_core::clock::OpContext;
use konstacks_core::engine::{ApplyOptions, ApplyReport, Engine, PlanOptions};
use konstacks_core::error::{Error, ErrorKind};
use konstacks_core::events::EventKind;
use konstacks_core::model::*;
use konstacks_core::plan::{Action, Plan};
use konstacks_core::provider::{Api, KindApis, ProviderResult};
use konstacks_core::secret::{Sealer, Secret, SecretError};
use konstacks_core::sim::{Faults, SimCloud, SimConfig};
use konstacks_core::spec::{DatabaseObserved, DatabaseSpec, Selector};
use konstacks_core::state::{AuditResult, LocalBackend, MemoryBackend, Record, StateBackend};

const STACK: &str = "shop";

#[derive(Clone)]
struct Knobs {
    vms: u32,
    image: Image,
    size: VmSize,
}

impl Default for Knobs {
    fn default() -> Self {
        Self { vms: 1, image: Image::UbuntuLts, size: VmSize::Small }
    }
}

fn stack(k: &Knobs) -> Stack {
    let stack = Stack::new(STACK, Placement::within(Jurisdiction::Eu), Stage::Dev);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = net.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let a = net.add("private-a", Subnet::new(vpc, "10.0.2.0/24").zone(0));
    let b = net.add("private-b", Subnet::new(vpc, "10.0.3.0/24").zone(1));
    let db = stack.add("db", Database::postgres("16", DbSize::Small, [a, b]));
    for i in 1..=k.vms {
        stack.add(
            &format!("web-{i}"),
            Vm::new(k.image.clone(), k.size.clone(), public)
                .env("DATABASE_HOST", db.host())
                .env("DATABASE_PASSWORD", db.password()),
        );
    }
    stack
}

fn key(passphrase: &str) -> Option<Sealer> {
    Some(Sealer::new(&Secret::new(passphrase.to_string())).unwrap())
}

struct World {
    sim: Arc<SimCloud>,
    state: Arc<dyn StateBackend>,
}

impl World {
    fn new() -> Self {
        Self { sim: Arc::new(SimCloud::new(SimConfig::default())), state: Arc::new(MemoryBackend::new()) }
    }

    fn engine(&self, sealer: Option<Sealer>) -> Engine {
        Engine::new(self.state.clone()).with_provider(self.sim.provider()).with_sealer(sealer)
    }

    async fn plan(&self, e: &Engine, k: &Knobs) -> Result<Plan, Error> {
        let s = e.synth(&stack(k)).unwrap();
        e.plan(&s, &PlanOptions::default()).await
    }

    async fn apply(&self, e: &Engine, k: &Knobs) -> Result<ApplyReport, Error> {
        let s = e.synth(&stack(k)).unwrap();
        let plan = e.plan(&s, &PlanOptions::default()).await?;
        e.apply(&s, &ApplyOptions { expected: Some(plan), ..Default::default() }).await
    }

    async fn id(&self, path: &str) -> String {
        self.state.load(STACK).await.unwrap().resources[path].id.clone()
    }

    /// The database's password and every VM's `DATABASE_PASSWORD` are the same secret.
    async fn assert_vms_have_the_password(&self, vms: u32) {
        let db = self.sim.secret_print(&self.id("db").await, "password").expect("the database has a password");
        for i in 1..=vms {
            let vm = self.sim.secret_print(&self.id(&format!("web-{i}")).await, "env:DATABASE_PASSWORD");
            assert!(vm.as_deref() == Some(db.as_str()), "web-{i} does not have the database's current password");
        }
    }
}

/// The state a `kill -9` between the database's create and the VM's create leaves without a
/// key: the database is recorded, its generated password is gone, the VM does not exist.
async fn database_without_its_vm(w: &World, sealer: Option<Sealer>) {
    w.apply(&w.engine(sealer), &Knobs { vms: 0, ..Knobs::default() }).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_lost_password_is_rotated_in_place_and_the_new_vm_gets_it() {
    let w = World::new();
    database_without_its_vm(&w, None).await;
    let e = w.engine(None);
    let before = w.sim.secret_print(&w.id("db").await, "password");

    let plan = w.plan(&e, &Knobs::default()).await.unwrap();
    let db = plan.change("db").unwrap();
    assert_eq!(db.action, Action::Update, "{}", plan.render(false));
    let f = db.fields.iter().find(|f| f.name == "password").expect("the password change is shown");
    assert!(f.sensitive);
    let why = f.before.as_ref().and_then(|v| v.as_str()).unwrap_or_default();
    assert!(why.contains("lost (no KONSTACKS_SECRET_KEY)") && why.contains("rotated in place"), "{why}");
    assert_eq!(plan.change("web-1").unwrap().action, Action::Create);

    let report = w.apply(&e, &Knobs::default()).await.unwrap();
    assert_eq!(report.updated, ["db"]);
    assert_eq!(report.created, ["web-1"]);
    assert_ne!(w.sim.secret_print(&w.id("db").await, "password"), before, "the password was rotated");
    w.assert_vms_have_the_password(1).await;
    assert!(w.plan(&e, &Knobs::default()).await.unwrap().is_empty(), "re-plan after the rotation is empty");
}

#[tokio::test(start_paused = true)]
async fn a_later_vm_replacement_without_a_key_rotates_and_replaces_every_user() {
    let w = World::new();
    let e = w.engine(None);
    let two = Knobs { vms: 2, ..Knobs::default() };
    w.apply(&e, &two).await.unwrap();
    w.assert_vms_have_the_password(2).await;
    let old_web_2 = w.id("web-2").await;

    // A resize is an update that leaves the environment alone: no secret needed, no rotation.
    let resized = Knobs { size: VmSize::Medium, ..two.clone() };
    let plan = w.plan(&e, &resized).await.unwrap();
    assert_eq!(plan.change("db").unwrap().action, Action::NoOp, "{}", plan.render(false));
    w.apply(&e, &resized).await.unwrap();

    // A new image replaces the VMs: they need the password, which only the cloud knows now.
    let debian = Knobs { image: Image::Debian12, ..resized };
    let report = w.apply(&e, &debian).await.unwrap();
    assert_eq!(report.updated, ["db"]);
    assert_eq!(report.replaced, ["web-1", "web-2"]);
    assert_ne!(w.id("web-2").await, old_web_2);
    w.assert_vms_have_the_password(2).await;

    // Replacing one VM rotates the password again, so the other one is replaced with it too.
    let plan = w.plan(&e, &Knobs { vms: 3, ..debian.clone() }).await.unwrap();
    assert_eq!(plan.change("db").unwrap().action, Action::Update);
    let web_1 = plan.change("web-1").unwrap();
    assert_eq!(web_1.action, Action::Replace, "{}", plan.render(false));
    assert_eq!(web_1.replace_reasons, ["env"]);
    w.apply(&e, &Knobs { vms: 3, ..debian.clone() }).await.unwrap();
    w.assert_vms_have_the_password(3).await;
    assert!(w.plan(&e, &Knobs { vms: 3, ..debian }).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_missing_sealed_copy_is_rotated_and_the_new_password_sealed() {
    let w = World::new();
    let k1 = key("the right passphrase, long enough");
    database_without_its_vm(&w, k1.clone()).await;
    // The sealed copy is gone (a database adopted after a crash has none).
    let mut db = w.state.load(STACK).await.unwrap().resources["db"].clone();
    assert!(db.sealed.contains_key("password"));
    db.sealed.clear();
    w.state.append(STACK, &[Record::Put { path: "db".into(), resource: db }]).await.unwrap();

    let e = w.engine(k1);
    let plan = w.plan(&e, &Knobs::default()).await.unwrap();
    let f = plan.change("db").unwrap().fields.iter().find(|f| f.name == "password").cloned().unwrap();
    assert!(f.before.unwrap().as_str().unwrap().contains("no sealed copy"));
    let report = w.apply(&e, &Knobs::default()).await.unwrap();
    assert_eq!(
        (report.updated.as_slice(), report.created.as_slice()),
        (&["db".to_string()][..], &["web-1".to_string()][..])
    );
    assert!(report.warnings.is_empty(), "with a key there is nothing to warn about: {:?}", report.warnings);
    w.assert_vms_have_the_password(1).await;
    assert!(w.state.load(STACK).await.unwrap().resources["db"].sealed.contains_key("password"), "sealed now");
    // The next replacement uses the sealed copy: no rotation.
    let plan = w.plan(&e, &Knobs { image: Image::Debian12, ..Knobs::default() }).await.unwrap();
    assert_eq!(plan.change("db").unwrap().action, Action::NoOp, "{}", plan.render(false));
}

/// The simulated cloud's databases, on a backend that (like DigitalOcean) picks the password
/// itself and cannot set a new one.
struct NoRotation(Arc<SimCloud>);

#[async_trait::async_trait]
impl Api<Database> for NoRotation {
    async fn create(&self, cx: &OpContext, spec: &DatabaseSpec) -> ProviderResult<DatabaseObserved> {
        self.0.api::<Database>().create(cx, spec).await
    }
    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<DatabaseObserved>> {
        self.0.api::<Database>().read_many(cx, sel).await
    }
    async fn update(&self, cx: &OpContext, id: &str, spec: &DatabaseSpec) -> ProviderResult<DatabaseObserved> {
        self.0.api::<Database>().update(cx, id, spec).await
    }
    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.0.api::<Database>().delete(cx, id).await
    }
    fn sets_secret_on_update(&self, _field: &str) -> bool {
        false
    }
}

#[tokio::test(start_paused = true)]
async fn a_cloud_that_cannot_rotate_is_refused_before_any_change_with_what_to_do() {
    let w = World::new();
    let provider = w.sim.provider().with_kind::<Database>(Arc::new(NoRotation(w.sim.clone())));
    let e = Engine::new(w.state.clone()).with_provider(provider).with_sealer(None);
    let s = e.synth(&stack(&Knobs { vms: 0, ..Knobs::default() })).unwrap();
    e.apply(&s, &ApplyOptions::default()).await.unwrap();
    let serial = w.state.load(STACK).await.unwrap().serial;
    let mutating = w.sim.mutating_calls();

    let s = e.synth(&stack(&Knobs::default())).unwrap();
    for err in [e.plan(&s, &PlanOptions::default()).await.err(), e.apply(&s, &ApplyOptions::default()).await.err()] {
        let Some(Error::Secret(SecretError::Unrecoverable(lost))) = &err else {
            panic!("expected an unrecoverable secret, got {err:?}");
        };
        assert_eq!((lost.path.as_str(), lost.attr.as_str()), ("db", "password"));
        assert_eq!(lost.needed_by, ["web-1"]);
        let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
        for what in ["`db`", "`password`", "web-1", "KONSTACKS_SECRET_KEY", "replace", "console", "nothing was sent"] {
            assert!(text.contains(what), "the message says {what}: {text}");
        }
    }
    assert_eq!(w.sim.mutating_calls(), mutating, "no change was sent to the cloud");
    assert_eq!(w.state.load(STACK).await.unwrap().serial, serial);
    assert!(w.state.current_lock(STACK).await.unwrap().is_none(), "the lock was released");
}

#[tokio::test(start_paused = true)]
async fn a_wrong_key_is_told_from_a_missing_one() {
    let w = World::new();
    w.apply(&w.engine(key("the right passphrase, long enough")), &Knobs::default()).await.unwrap();
    let mutating = w.sim.mutating_calls();

    let wrong = w.engine(key("another passphrase, long enough"));
    let err = w.plan(&wrong, &Knobs::default()).await.err();
    assert!(matches!(&err, Some(Error::Secret(SecretError::WrongKey { stack, .. })) if stack == STACK), "{err:?}");
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("is wrong for stack `shop`") && !text.contains("missing"), "{text}");
    let err = w.apply(&wrong, &Knobs { image: Image::Debian12, ..Knobs::default() }).await.err();
    assert!(matches!(err, Some(Error::Secret(SecretError::WrongKey { .. }))), "{err:?}");

    // Without a key: a plan that needs nothing secret is fine; one that needs the sealed password
    // says the key is missing (and never rotates a password a key could open).
    let none = w.engine(None);
    assert!(w.plan(&none, &Knobs { size: VmSize::Medium, ..Knobs::default() }).await.is_ok());
    let err = w.apply(&none, &Knobs { image: Image::Debian12, ..Knobs::default() }).await.err();
    let Some(Error::Secret(SecretError::MissingKey { stack, sealed, .. })) = &err else {
        panic!("expected a missing key, got {err:?}");
    };
    assert_eq!((stack.as_str(), sealed.as_slice()), (STACK, &["db.password".to_string()][..]));
    assert!(err.map(|e| e.to_string()).unwrap_or_default().contains("KONSTACKS_SECRET_KEY is missing"));
    assert_eq!(w.sim.mutating_calls(), mutating, "nothing was sent to the cloud");
    let right = w.engine(key("the right passphrase, long enough"));
    let plan = w.plan(&right, &Knobs { image: Image::Debian12, ..Knobs::default() }).await.unwrap();
    assert_eq!(plan.change("db").unwrap().action, Action::NoOp);
}

#[tokio::test(start_paused = true)]
async fn a_run_without_a_key_warns_about_the_secrets_it_generates() {
    let w = World::new();
    let e = w.engine(None);
    let mut events = e.subscribe();
    let report = w.apply(&e, &Knobs::default()).await.unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let warning = &report.warnings[0];
    for what in ["KONSTACKS_SECRET_KEY is not set", "db.password", "cannot recover", "rotates it in place"] {
        assert!(warning.contains(what), "the warning says {what}: {warning}");
    }
    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let EventKind::Warning { message } = ev.kind {
            seen.push(message);
        }
    }
    assert_eq!(seen, report.warnings, "the warning is an event too");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["warnings"][0], serde_json::Value::String(warning.clone()));
    // Nothing generated, nothing to warn about.
    let report = w.apply(&e, &Knobs { size: VmSize::Medium, ..Knobs::default() }).await.unwrap();
    assert!(report.warnings.is_empty());
    assert!(serde_json::to_value(&report).unwrap().get("warnings").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_failed_apply_that_changed_nothing_leaves_state_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let backend = Arc::new(LocalBackend::new(dir.path()));
    let e = Engine::new(backend.clone()).with_provider(sim.provider()).with_sealer(None);
    let s = e.synth(&stack(&Knobs::default())).unwrap();
    e.apply(&s, &ApplyOptions::default()).await.unwrap();
    let file = dir.path().join("stacks").join(STACK).join("state.json");
    let before = std::fs::read(&file).unwrap();
    let serial = backend.load(STACK).await.unwrap().serial;

    // The first cloud call of the next apply fails for certain (nothing changed in the cloud).
    sim.set_faults(Faults {
        fail_rate: 1.0,
        fail_kind: ErrorKind::InvalidSpec,
        only_ops: Some(BTreeSet::from(["update_vm".to_string()])),
        ..Faults::default()
    });
    let s = e.synth(&stack(&Knobs { size: VmSize::Medium, ..Knobs::default() })).unwrap();
    let err = e.apply(&s, &ApplyOptions::default()).await.err();
    assert!(matches!(&err, Some(Error::Apply(r)) if r.failures.len() == 1), "{err:?}");
    assert_eq!(backend.load(STACK).await.unwrap().serial, serial, "the serial was not bumped");
    assert!(std::fs::read(&file).unwrap() == before, "state.json is byte for byte the same");
    // The journal holds only the run's audit entry (the intent and its abandon were compacted away).
    let journal = std::fs::read_to_string(file.with_file_name("journal.jsonl")).unwrap();
    let records: Vec<Record> = journal.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(matches!(&records[..], [Record::Audited { entry }] if entry.result == AuditResult::Failed), "{records:?}");

    // Once the cloud answers again the same change goes through and bumps the serial.
    sim.set_faults(Faults::default());
    e.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(backend.load(STACK).await.unwrap().serial, serial + 1);
}
