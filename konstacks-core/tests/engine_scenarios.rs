//! Scenario tests of the engine against the simulated cloud, on virtual time: apply, empty
//! re-plan, in-place update, replacement, destroy, and the failure scenarios (throttling storm,
//! a failing create mid-graph, a timeout after success, eventual consistency, crash recovery).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use konstacks_core::engine::{ApplyOptions, DataLossConsent, Engine, FailurePolicy, PlanOptions};
use konstacks_core::error::{Error, ErrorKind};
use konstacks_core::model::*;
use konstacks_core::plan::Action;
use konstacks_core::provider::ProviderLimits;
use konstacks_core::secret::Secret;
use konstacks_core::sim::{Faults, RateLimit, SimCloud, SimConfig};
use konstacks_core::spec::RuleSource;
use konstacks_core::state::{MemoryBackend, OpKind, PendingOp, Record, StateBackend};

#[derive(Clone)]
struct Knobs {
    vm_size: VmSize,
    image: Image,
    extra_port: Option<u32>,
    backups: u32,
    private_cidr: &'static str,
    password: Option<&'static str>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            vm_size: VmSize::Small,
            image: Image::UbuntuLts,
            extra_port: None,
            backups: 7,
            private_cidr: "10.0.2.0/24",
            password: None,
        }
    }
}

fn web_stack(name: &str, k: &Knobs) -> Stack {
    let stack = Stack::new(name, Placement::within(Jurisdiction::Eu), Stage::Prod);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = net.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let private_a = net.add("private-a", Subnet::new(vpc, k.private_cidr).zone(0));
    let private_b = net.add("private-b", Subnet::new(vpc, "10.0.3.0/24").zone(1));
    let mut fw = Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere());
    if let Some(p) = k.extra_port {
        fw = fw.allow(Ingress::tcp(p).from_anywhere());
    }
    let web_fw = net.add("web-fw", fw);
    let db_fw = net.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(5432).from(web_fw)));
    let mut db = Database::postgres("16", DbSize::Small, [private_a, private_b]).firewall(db_fw).backups(k.backups);
    if let Some(p) = k.password {
        db = db.password(Secret::new(p.to_string()));
    }
    let db = stack.add("db", db);
    let web = stack.add(
        "web",
        Vm::new(k.image.clone(), k.vm_size.clone(), public)
            .firewall(web_fw)
            .public_ip(true)
            .env("DATABASE_HOST", db.host())
            .env("DATABASE_PASSWORD", db.password()),
    );
    stack.export("url", web.public_ip());
    stack.export("db-password", db.password());
    stack
}

struct World {
    sim: Arc<SimCloud>,
    state: Arc<MemoryBackend>,
    engine: Engine,
}

fn world_with(config: SimConfig, limits: Option<ProviderLimits>) -> World {
    let sim = Arc::new(SimCloud::new(config));
    let state = Arc::new(MemoryBackend::new());
    let mut provider = sim.provider();
    if let Some(l) = limits {
        provider.limits = l;
    }
    let engine = Engine::new(state.clone()).with_provider(provider).with_sealer(None);
    World { sim, state, engine }
}

fn world() -> World {
    world_with(SimConfig::default(), None)
}

impl World {
    async fn apply(&self, stack: &Stack) -> Result<konstacks_core::engine::ApplyReport, Error> {
        let s = self.engine.synth(stack)?;
        self.engine.apply(&s, &ApplyOptions::default()).await
    }

    /// Apply, allowing databases and caches to be deleted or replaced (their data lost).
    async fn apply_losing_data(&self, stack: &Stack) -> Result<konstacks_core::engine::ApplyReport, Error> {
        let s = self.engine.synth(stack)?;
        self.engine.apply(&s, &ApplyOptions { data_loss: DataLossConsent::All, ..Default::default() }).await
    }

    async fn plan(&self, stack: &Stack) -> konstacks_core::plan::Plan {
        let s = self.engine.synth(stack).unwrap();
        self.engine.plan(&s, &PlanOptions::default()).await.unwrap()
    }

    fn count(&self, stack: &str, kind: Kind) -> usize {
        self.sim.resources_of_stack(stack).iter().filter(|r| r.kind() == kind).count()
    }

    /// Everything in the cloud with the stack's tags is in state, exactly once.
    async fn assert_converged(&self, stack: &str) {
        let st = self.state.load(stack).await.unwrap();
        let cloud: Vec<String> = self.sim.resources_of_stack(stack).iter().map(|r| r.id().to_string()).collect();
        let mut tracked: Vec<String> = st.resources.values().map(|r| r.id.clone()).collect();
        tracked.extend(st.deposed.iter().map(|d| d.resource.id.clone()));
        tracked.sort();
        let mut cloud_sorted = cloud.clone();
        cloud_sorted.sort();
        assert_eq!(cloud_sorted, tracked, "cloud and state disagree (orphans or ghosts)");
        assert!(st.pending.is_empty(), "pending operations left: {:?}", st.pending);
    }
}

/// A literal export (`Stack::export_value`) is known from synth on: in the synthesized stack, in
/// the plan's outputs before anything exists, and in the apply report and state after it.
#[tokio::test(start_paused = true)]
async fn literal_exports_are_known_before_apply_and_kept_in_state() {
    let w = world();
    let stack = web_stack("lit", &Knobs::default());
    stack.export_value("site", "https://shop.example.com");
    let s = w.engine.synth(&stack).unwrap();
    let synth = serde_json::to_value(&s).unwrap();
    let site = synth["exports"].as_array().unwrap().iter().find(|e| e["name"] == "site").unwrap().clone();
    assert_eq!(site, serde_json::json!({ "name": "site", "value": "https://shop.example.com", "secret": false }));
    let url = synth["exports"].as_array().unwrap().iter().find(|e| e["name"] == "url").unwrap().clone();
    assert_eq!(url, serde_json::json!({ "name": "url", "from": "web", "attr": "public_ip", "secret": false }));

    let plan = w.engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.outputs["site"], "https://shop.example.com");
    assert_eq!(plan.outputs["url"], serde_json::Value::Null, "known after apply");

    let report = w.engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.outputs["site"], "https://shop.example.com");
    let state = w.state.load("lit").await.unwrap();
    assert_eq!(state.outputs["site"], "https://shop.example.com");
    assert!(w.plan(&stack).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn full_lifecycle_apply_noop_update_replace_destroy() {
    let w = world();
    let k = Knobs::default();
    let report = w.apply(&web_stack("shop", &k)).await.unwrap();
    assert_eq!(report.created.len(), 8, "{report:?}");
    assert!(report.outputs["url"].as_str().unwrap().starts_with("203.0.113."));
    assert_eq!(report.outputs["db-password"], "(sensitive)");
    assert!(w.plan(&web_stack("shop", &k)).await.is_empty(), "re-plan after apply must be empty");
    w.assert_converged("shop").await;

    // A new ingress rule: firewall updated in place, nothing else.
    let k2 = Knobs { extra_port: Some(8443), ..k.clone() };
    let plan = w.plan(&web_stack("shop", &k2)).await;
    let c = plan.change("network/web-fw").unwrap();
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["ingress"]);
    assert_eq!(plan.summary.update, 1);
    assert_eq!(plan.actionable().count(), 1);
    let r = w.apply(&web_stack("shop", &k2)).await.unwrap();
    assert_eq!(r.updated, ["network/web-fw"]);
    assert!(w.plan(&web_stack("shop", &k2)).await.is_empty());
    let fw = w
        .sim
        .resources_of_stack("shop")
        .into_iter()
        .find_map(|r| r.get::<Firewall>().filter(|f| f.tags["konstacks:path"] == "network/web-fw").cloned());
    assert!(fw.unwrap().ingress.iter().any(|r| r.from_port == 8443 && r.peer == RuleSource::Cidr("0.0.0.0/0".into())));

    // Resize and backups: in place.
    let k3 = Knobs { vm_size: VmSize::Large, backups: 14, ..k2.clone() };
    let plan = w.plan(&web_stack("shop", &k3)).await;
    assert_eq!(plan.change("web").unwrap().action, Action::Update);
    assert_eq!(plan.change("db").unwrap().action, Action::Update);
    let size = plan.change("web").unwrap().fields.iter().find(|f| f.name == "size").unwrap();
    assert_eq!((size.before.clone().unwrap(), size.after.clone().unwrap()), ("small".into(), "large".into()));
    w.apply(&web_stack("shop", &k3)).await.unwrap();
    assert!(w.plan(&web_stack("shop", &k3)).await.is_empty());

    // A new image forces replacement, create-before-destroy; the secret env is carried over in-run.
    let k4 = Knobs { image: Image::Debian12, ..k3.clone() };
    let plan = w.plan(&web_stack("shop", &k4)).await;
    let c = plan.change("web").unwrap();
    assert_eq!(c.action, Action::Replace);
    // The environment changes too: the lost database password is rotated (below).
    assert_eq!(c.replace_reasons, ["env", "image"]);
    assert!(c.create_before_destroy);
    // Without a sealing key the generated password of a database created in an earlier run is
    // lost: the plan rotates it in place, and the new VM gets the new one.
    assert_eq!(plan.change("db").unwrap().action, Action::Update, "the lost password is rotated");
    let r = w.apply(&web_stack("shop", &k4)).await.unwrap();
    assert_eq!((r.updated.as_slice(), r.replaced.as_slice()), (&["db".to_string()][..], &["web".to_string()][..]));
    w.assert_converged("shop").await;
    assert_eq!(w.count("shop", Vm::KIND), 1, "the old VM is deleted after the new one runs");

    // A provided password is an update of the database.
    let k5 = Knobs { password: Some("correct-horse-battery-staple"), ..k4.clone() };
    let plan = w.plan(&web_stack("shop", &k5)).await;
    assert_eq!(plan.change("db").unwrap().action, Action::Update, "password change is an update");
    let r = w.apply(&web_stack("shop", &k5)).await.unwrap();
    assert_eq!(r.updated, ["db"]);
    assert_eq!(w.count("shop", Vm::KIND), 1);
    assert!(w.plan(&web_stack("shop", &k5)).await.is_empty());
    w.assert_converged("shop").await;

    // A subnet CIDR change: destroy-before-create, and the database in it is replaced too.
    let k6 = Knobs { private_cidr: "10.0.4.0/24", ..k5.clone() };
    let plan = w.plan(&web_stack("shop", &k6)).await;
    let sn = plan.change("network/private-a").unwrap();
    assert_eq!(sn.action, Action::Replace);
    assert!(!sn.create_before_destroy);
    assert_eq!(plan.change("db").unwrap().action, Action::Replace);
    assert!(plan.change("db").unwrap().fields.iter().any(|f| f.name == "subnet_ids" && f.after_unknown));
    assert!(plan.change("db").unwrap().data_loss && !plan.change("network/private-a").unwrap().data_loss);
    // Losing the database's data needs consent: refused before any cloud call without it.
    let calls = w.sim.mutating_calls();
    let refused = w.apply(&web_stack("shop", &k6)).await.unwrap_err();
    assert!(refused.to_string().contains("--allow-data-loss db"), "{refused}");
    assert_eq!(w.sim.mutating_calls(), calls);
    w.apply_losing_data(&web_stack("shop", &k6)).await.unwrap();
    assert!(w.plan(&web_stack("shop", &k6)).await.is_empty());
    w.assert_converged("shop").await;

    // Destroy leaves nothing.
    let r = w.engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert_eq!(r.deleted.len(), 8);
    assert!(w.sim.resources_of_stack("shop").is_empty());
    assert!(w.state.load("shop").await.unwrap().resources.is_empty());
}

#[tokio::test(start_paused = true)]
async fn invalid_stack_reports_everything_and_makes_no_call() {
    let w = world();
    let stack = Stack::new("bad", Placement::region_within("us-east", Jurisdiction::Eu), Stage::Dev);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    stack.add("a", Subnet::new(vpc, "10.1.0.0/24"));
    stack.add("b", Subnet::new(vpc, "10.0.0.0/23"));
    stack.add("c", Subnet::new(vpc, "10.0.1.0/24"));
    stack.add("c", Subnet::new(vpc, "10.0.9.0/33"));
    let fw = stack.add(
        "fw",
        Firewall::new(vpc).allow(Ingress::tcp(0).from_anywhere()).allow(Ingress::tcp(70000).from_cidr("nope")),
    );
    let sn = stack.add("Bad_Name", Subnet::new(vpc, "10.0.5.0/24"));
    stack.add("vm", Vm::new(Image::UbuntuLts, VmSize::Custom("huge".into()), sn).firewall(fw));
    stack.add("db", Database::postgres("9.6", DbSize::Small, [sn]));
    stack.add("", Vpc::new("10.9.0.0/16"));
    let err = w.engine.synth(&stack).unwrap_err();
    let Error::Invalid(d) = err else { panic!() };
    for code in [
        "region-outside-jurisdiction",
        "cidr-outside-vpc",
        "overlapping-subnets",
        "duplicate-id",
        "malformed-cidr",
        "port-out-of-range",
        "invalid-name",
        "unknown-size",
        "unknown-engine-version",
        "empty-name",
    ] {
        assert!(d.has(code), "missing {code} in:\n{d}");
    }
    assert!(d.to_string().contains("bad/a"), "diagnostics name the resource path:\n{d}");
    assert_eq!(w.sim.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn cycles_are_reported_with_their_path() {
    let w = world();
    let stack = Stack::new("cyc", Placement::region("eu-west"), Stage::Dev);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = stack.add("a", Firewall::new(vpc));
    let b = stack.add("b", Firewall::new(vpc).allow(Ingress::tcp(22).from(a)));
    stack.depends_on(a, b);
    let Error::Invalid(d) = w.engine.synth(&stack).unwrap_err() else { panic!() };
    assert!(d.to_string().contains("dependency cycle: a -> b -> a"), "{d}");
    assert_eq!(w.sim.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn throttling_storm_is_absorbed_by_backoff() {
    // The provider throttles hard and the engine is not told the rate: every throttle must be
    // retried with backoff, and the user sees success.
    let w = world_with(
        SimConfig { rate_limit: Some(RateLimit { per_second: 2.0, burst: 2 }), ..Default::default() },
        Some(ProviderLimits { max_concurrency: 16, calls_per_second: None, burst: 1 }),
    );
    let r = w.apply(&web_stack("storm", &Knobs::default())).await.unwrap();
    assert!(r.retries > 0, "the storm must have caused retries");
    assert!(r.failures.is_empty());
    assert!(w.plan(&web_stack("storm", &Knobs::default())).await.is_empty());
    w.assert_converged("storm").await;
}

#[tokio::test(start_paused = true)]
async fn failing_create_mid_graph_keeps_what_succeeded_and_recovers() {
    let w = world();
    let faults = Faults {
        only_ops: Some(["create_firewall".to_string()].into()),
        fail_rate: 1.0,
        fail_kind: ErrorKind::QuotaExceeded,
        ..Default::default()
    };
    w.sim.set_faults(faults);
    let stack = web_stack("mid", &Knobs::default());
    let err = w.apply(&stack).await.unwrap_err();
    let Error::Apply(r) = err else { panic!("expected apply failure") };
    assert!(r.failures.iter().all(|f| f.kind == ErrorKind::QuotaExceeded && f.op == OpKind::Create));
    assert!(r.failures.iter().any(|f| f.path == "network/web-fw"));
    assert!(r.skipped.contains(&"web".to_string()) && r.skipped.contains(&"db".to_string()), "{r:?}");
    assert!(r.created.contains(&"network/vpc".to_string()));
    // Whatever succeeded is in state; nothing in the cloud is untracked.
    w.assert_converged("mid").await;
    assert_eq!(w.count("mid", Vm::KIND), 0);

    w.sim.set_faults(Faults::default());
    let r = w.apply(&stack).await.unwrap();
    assert!(r.created.contains(&"web".to_string()));
    assert!(w.plan(&stack).await.is_empty());
    w.assert_converged("mid").await;
    assert_eq!(w.count("mid", Vpc::KIND), 1, "no duplicate VPC");
}

#[tokio::test(start_paused = true)]
async fn continue_on_error_finishes_independent_work() {
    let w = world();
    w.sim.set_faults(Faults {
        only_ops: Some(["create_database".to_string()].into()),
        fail_rate: 1.0,
        fail_kind: ErrorKind::InvalidSpec,
        ..Default::default()
    });
    let stack = web_stack("coe", &Knobs::default());
    let s = w.engine.synth(&stack).unwrap();
    let opts = ApplyOptions { on_failure: FailurePolicy::ContinueIndependent, ..Default::default() };
    let Error::Apply(r) = w.engine.apply(&s, &opts).await.unwrap_err() else { panic!() };
    assert_eq!(r.failures.len(), 1);
    assert_eq!(r.skipped, ["web"], "only the VM depends on the database");
    assert_eq!(r.created.len(), 6);
    w.assert_converged("coe").await;
}

#[tokio::test(start_paused = true)]
async fn timeout_after_success_never_duplicates() {
    let w = world();
    w.sim.set_faults(Faults {
        timeout_rate: 1.0,
        only_ops: Some(["create_vm".into(), "create_vpc".into(), "create_database".into()].into()),
        ..Default::default()
    });
    let stack = web_stack("tmo", &Knobs::default());
    let r = w.apply(&stack).await.unwrap();
    let mut adopted = r.adopted.clone();
    adopted.sort();
    assert_eq!(adopted, ["db", "network/vpc", "web"]);
    assert_eq!(w.count("tmo", Vm::KIND), 1);
    assert_eq!(w.count("tmo", Vpc::KIND), 1);
    assert_eq!(w.count("tmo", Database::KIND), 1);
    w.sim.set_faults(Faults::default());
    assert!(w.plan(&stack).await.is_empty());
    w.assert_converged("tmo").await;
}

#[tokio::test(start_paused = true)]
async fn eventual_consistency_is_waited_out() {
    let w = world_with(SimConfig { consistency_delay: Duration::from_secs(5), ..Default::default() }, None);
    let stack = web_stack("ec", &Knobs::default());
    let r = w.apply(&stack).await.unwrap();
    assert!(r.retries > 0, "references to just-created resources must have been retried");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(w.plan(&stack).await.is_empty());
    w.assert_converged("ec").await;
}

#[tokio::test(start_paused = true)]
async fn interrupted_create_is_adopted_not_duplicated() {
    let w = world();
    let stack = web_stack("crash", &Knobs::default());
    // A first run created the VPC but died before recording the result: replay that by hand.
    let s = w.engine.synth(&stack).unwrap();
    let vpc_fields = &s.resources[s.index_of("network/vpc").unwrap()].fields;
    assert!(vpc_fields.contains_key("cidr"));
    let tags: BTreeMap<String, String> = [
        ("konstacks:stack".to_string(), "crash".to_string()),
        ("konstacks:path".to_string(), "network/vpc".to_string()),
        ("Name".to_string(), "crash-network-vpc".to_string()),
        ("konstacks:stage".to_string(), "prod".to_string()),
    ]
    .into();
    w.state
        .append(
            "crash",
            &[Record::Intent(PendingOp {
                op: OpKind::Create,
                path: "network/vpc".into(),
                kind: Vpc::KIND,
                provider: "sim".into(),
                id: None,
                generation: 0,
                tags: tags.clone(),
                deps: vec![],
                inputs: BTreeMap::new(),
                at: 0,
                sealed: BTreeMap::new(),
                release: None,
            })],
        )
        .await
        .unwrap();
    let cx = konstacks_core::clock::OpContext::new(konstacks_core::clock::TokioClock::shared(), "crash");
    use konstacks_core::provider::Api;
    let made = Api::<Vpc>::create(
        w.sim.as_ref(),
        &cx,
        &konstacks_core::spec::VpcSpec {
            name: "crash-network-vpc".into(),
            region: "eu-central".into(),
            cidr: "10.0.0.0/16".into(),
            tags,
        },
    )
    .await
    .unwrap();
    let plan = w.plan(&stack).await;
    assert_eq!(plan.recovered.len(), 1);
    assert!(plan.recovered[0].outcome.contains(&made.id));
    let r = w.apply(&stack).await.unwrap();
    assert_eq!(r.recovered.len(), 1);
    assert!(!r.created.contains(&"network/vpc".to_string()), "adopted, not created again");
    assert_eq!(w.count("crash", Vpc::KIND), 1);
    assert!(w.plan(&stack).await.is_empty());
    w.assert_converged("crash").await;
}

#[tokio::test(start_paused = true)]
async fn a_second_apply_fails_at_once_on_the_lock() {
    let w = world();
    let info = konstacks_core::state::LockInfo::for_this_process("apply");
    w.state.lock("locked", &info).await.unwrap();
    let err = w.apply(&web_stack("locked", &Knobs::default())).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&info.id) && msg.contains("force-unlock") && msg.contains("pid"), "{msg}");
    assert_eq!(w.sim.calls(), 0);
    w.engine.force_unlock("locked", &info.id).await.unwrap();
    w.apply(&web_stack("locked", &Knobs::default())).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn drift_is_detected_and_reverted() {
    let w = world();
    let stack = web_stack("drift", &Knobs::default());
    w.apply(&stack).await.unwrap();
    assert!(w.engine.drift("drift").await.unwrap().is_clean());
    let resources = w.sim.resources_of_stack("drift");
    let fw_id = resources.iter().find(|r| r.tags()["konstacks:path"] == "network/web-fw").unwrap().id().to_string();
    let vm_id = resources.iter().find(|r| r.kind() == Vm::KIND).unwrap().id().to_string();
    assert!(w.sim.tamper(&fw_id, |r| {
        if let Some(f) = r.get_mut::<Firewall>() {
            f.ingress.push(konstacks_core::spec::RuleSpec {
                protocol: Protocol::Tcp,
                from_port: 22,
                to_port: 22,
                peer: RuleSource::Cidr("0.0.0.0/0".into()),
            });
        }
    }));
    assert!(w.sim.tamper(&vm_id, |r| {
        if let Some(v) = r.get_mut::<Vm>() {
            v.size = "xlarge".into();
        }
    }));
    let d = w.engine.drift("drift").await.unwrap();
    assert_eq!(d.items.len(), 2, "{}", d.render());
    assert!(d.render().contains("ingress") && d.render().contains("xlarge"));
    assert!(d.read_calls <= 5, "batched reads: one per kind");

    let s = w.engine.synth(&stack).unwrap();
    let plan = w.engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    assert_eq!(plan.change("network/web-fw").unwrap().action, Action::Update);
    assert_eq!(plan.change("web").unwrap().action, Action::Update);
    w.engine.apply(&s, &ApplyOptions { refresh: true, ..Default::default() }).await.unwrap();
    assert!(w.engine.drift("drift").await.unwrap().is_clean());

    // Deleted behind our back: drift says so, refresh forgets it, apply recreates it.
    assert!(w.sim.remove_behind_back(&vm_id) || w.sim.resources_of_stack("drift").iter().any(|r| r.kind() == Vm::KIND));
    let vm_now =
        w.sim.resources_of_stack("drift").into_iter().find(|r| r.kind() == Vm::KIND).map(|r| r.id().to_string());
    if let Some(id) = vm_now {
        w.sim.remove_behind_back(&id);
    }
    let d = w.engine.drift("drift").await.unwrap();
    assert!(d.render().contains("deleted outside"));
    w.engine.refresh("drift").await.unwrap();
    assert_eq!(w.plan(&stack).await.change("web").unwrap().action, Action::Create);
}

#[tokio::test(start_paused = true)]
async fn secrets_never_leak_into_plan_state_or_events() {
    let w = world();
    let mut events = w.engine.subscribe();
    let pw = "S3cret-Value-That-Must-Not-Leak";
    let stack = web_stack("sec", &Knobs { password: Some(pw), ..Default::default() });
    let s = w.engine.synth(&stack).unwrap();
    let plan = w.engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert!(!serde_json::to_string(&plan).unwrap().contains(pw));
    assert!(!plan.render(false).contains(pw));
    assert!(!serde_json::to_string(&s).unwrap().contains(pw));
    assert!(!format!("{s:?}").contains(pw));
    w.engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let st = w.state.load("sec").await.unwrap();
    assert!(!serde_json::to_string(&st).unwrap().contains(pw));
    let mut n = 0;
    while let Ok(e) = events.try_recv() {
        n += 1;
        assert!(!serde_json::to_string(&e).unwrap().contains(pw));
    }
    assert!(n >= 14, "started + succeeded per resource at least, got {n}");
}

#[tokio::test(start_paused = true)]
async fn parallel_apply_respects_per_provider_concurrency() {
    let w = world_with(
        SimConfig { latency: Duration::from_millis(100), ..Default::default() },
        Some(ProviderLimits { max_concurrency: 4, calls_per_second: None, burst: 1 }),
    );
    let stack = Stack::new("par", Placement::region("eu-west"), Stage::Dev);
    for i in 0..40 {
        stack.add(&format!("vpc-{i}"), Vpc::new(format!("10.{i}.0.0/16")));
    }
    let t0 = tokio::time::Instant::now();
    w.apply(&stack).await.unwrap();
    let took = t0.elapsed();
    // 40 independent creates, 4 at a time, 100 ms each: 1 s (virtual).
    assert!(took >= Duration::from_millis(1000) && took < Duration::from_millis(1200), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_replacement_keeps_the_old_instance_and_retries_under_a_new_name() {
    let w = world();
    let mk = |encrypted: bool| {
        let stack = Stack::new("rep", Placement::region("eu-west"), Stage::Dev);
        let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
        let a = stack.add("a", Subnet::new(vpc, "10.0.1.0/24"));
        stack.add(
            "db",
            Database::postgres("16", DbSize::Small, [a])
                .encrypted(encrypted)
                .password(Secret::new("pw-for-the-test-0123".into())),
        );
        stack
    };
    w.apply(&mk(true)).await.unwrap();
    let old =
        w.sim.resources_of_stack("rep").into_iter().find(|r| r.kind() == Database::KIND).unwrap().id().to_string();
    w.sim.set_faults(Faults {
        only_ops: Some(["create_database".into()].into()),
        fail_rate: 1.0,
        fail_kind: ErrorKind::QuotaExceeded,
        ..Default::default()
    });
    assert!(w.apply_losing_data(&mk(false)).await.is_err());
    w.assert_converged("rep").await;
    assert_eq!(w.state.load("rep").await.unwrap().deposed.len(), 1, "the old instance is kept, deposed");
    w.sim.set_faults(Faults::default());
    let r = w.apply_losing_data(&mk(false)).await.unwrap();
    assert!(r.adopted.is_empty(), "the deposed instance must never be adopted as the new one: {r:?}");
    let dbs: Vec<_> = w.sim.resources_of_stack("rep").into_iter().filter(|r| r.kind() == Database::KIND).collect();
    assert_eq!(dbs.len(), 1);
    assert_ne!(dbs[0].id(), old);
    assert_eq!(dbs[0].tags()["Name"], "rep-db-1", "the next generation name, never the deposed one");
    assert!(w.plan(&mk(false)).await.is_empty());
    w.assert_converged("rep").await;
}

#[tokio::test(start_paused = true)]
async fn replaying_a_journal_over_its_own_snapshot_changes_nothing() {
    // A crash between writing the snapshot and removing the journal replays records whose
    // effects the snapshot already holds.
    let w = world();
    let k = Knobs { password: Some("pw-for-the-test-0123"), ..Default::default() };
    w.apply(&web_stack("idem", &k)).await.unwrap();
    let k2 = Knobs { image: Image::Debian12, ..k.clone() };
    let stack = web_stack("idem", &k2);
    let s = w.engine.synth(&stack).unwrap();
    let before = w.state.load("idem").await.unwrap();
    // Capture the journal of a replacement run by applying against a second backend view.
    w.engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let after = w.state.load("idem").await.unwrap();
    assert_ne!(before, after);
    let mut replayed = after.clone();
    // Every record type the replacement wrote, replayed again: Depose of the old id, Put, Deleted.
    let old_vm = before.resources["web"].id.clone();
    for rec in [
        Record::Depose { path: "web".into(), id: old_vm.clone() },
        Record::Put { path: "web".into(), resource: after.resources["web"].clone() },
        Record::Deleted { path: "web".into(), id: old_vm },
    ] {
        replayed.apply(&rec);
    }
    assert_eq!(replayed, after);
}

#[tokio::test(start_paused = true)]
async fn moved_resources_keep_their_cloud_identity() {
    let w = world();
    let v1 = || {
        let stack = Stack::new("mv", Placement::region("eu-west"), Stage::Dev);
        let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
        let fw = stack.add("fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
        let sn = stack.add("a", Subnet::new(vpc, "10.0.1.0/24"));
        stack.add("vm", Vm::new(Image::UbuntuLts, VmSize::Small, sn).firewall(fw));
        stack
    };
    let v2 = || {
        let stack = Stack::new("mv", Placement::region("eu-west"), Stage::Dev);
        let net = stack.scope("network");
        let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
        let fw = net.add("web-fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
        let sn = net.add("a", Subnet::new(vpc, "10.0.1.0/24"));
        stack.add("vm", Vm::new(Image::UbuntuLts, VmSize::Small, sn).firewall(fw));
        for (from, to) in [("vpc", "network/vpc"), ("fw", "network/web-fw"), ("a", "network/a")] {
            stack.moved(from, to);
        }
        stack
    };
    w.apply(&v1()).await.unwrap();
    let before: Vec<String> = w.sim.resources_of_stack("mv").iter().map(|r| r.id().to_string()).collect();
    let plan = w.plan(&v2()).await;
    let fw = plan.change("network/web-fw").unwrap();
    assert_eq!(fw.moved_from.as_deref(), Some("fw"));
    assert_eq!(fw.action, Action::Update, "only the path tag changes: {}", plan.render(false));
    assert_eq!(fw.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["tags"]);
    assert_eq!(plan.summary.create + plan.summary.delete + plan.summary.replace, 0, "{}", plan.render(false));
    let r = w.apply(&v2()).await.unwrap();
    assert!(r.created.is_empty() && r.deleted.is_empty() && r.replaced.is_empty(), "{r:?}");
    let after: Vec<String> = w.sim.resources_of_stack("mv").iter().map(|r| r.id().to_string()).collect();
    assert_eq!(before, after, "same cloud resources");
    assert!(w.plan(&v2()).await.is_empty());
    let st = w.state.load("mv").await.unwrap();
    assert!(st.resources.contains_key("network/web-fw") && !st.resources.contains_key("fw"));
    assert_eq!(st.resources["vm"].deps, ["network/a", "network/web-fw"]);
}

#[tokio::test(start_paused = true)]
async fn import_adopts_an_existing_resource_and_plans_only_the_differences() {
    use konstacks_core::provider::Api;
    let w = world();
    let cx = konstacks_core::clock::OpContext::new(konstacks_core::clock::TokioClock::shared(), "imp");
    let hand_made = Api::<Vpc>::create(
        w.sim.as_ref(),
        &cx,
        &konstacks_core::spec::VpcSpec {
            name: "legacy-vpc".into(),
            region: "eu-west".into(),
            cidr: "10.9.0.0/16".into(),
            tags: BTreeMap::from([("team".to_string(), "ops".to_string())]),
        },
    )
    .await
    .unwrap();
    let stack = Stack::new("imp", Placement::region("eu-west"), Stage::Dev);
    let vpc = stack.add("vpc", Vpc::new("10.9.0.0/16"));
    stack.add("a", Subnet::new(vpc, "10.9.1.0/24"));
    let s = w.engine.synth(&stack).unwrap();
    let plan = w.engine.import(&s, "vpc", &hand_made.id, &Default::default()).await.unwrap();
    let c = plan.change("vpc").unwrap();
    assert_eq!(c.action, Action::Update, "{}", plan.render(false));
    assert_eq!(c.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["tags"], "name and CIDR already match");
    assert_eq!(plan.change("a").unwrap().action, Action::Create);
    // Importing twice, or an unknown id, is refused with a clear message.
    assert!(w
        .engine
        .import(&s, "vpc", &hand_made.id, &Default::default())
        .await
        .unwrap_err()
        .to_string()
        .contains("already managed"));
    assert!(w
        .engine
        .import(&s, "a", "subnet-ffffffff", &Default::default())
        .await
        .unwrap_err()
        .to_string()
        .contains("has no subnet"));
    w.apply(&stack).await.unwrap();
    assert_eq!(w.count("imp", Vpc::KIND), 1, "adopted, not created");
    assert!(w.plan(&stack).await.is_empty());
}

fn fleet(image: Image) -> Stack {
    let stack = Stack::new("fleet", Placement::region("eu-west"), Stage::Prod);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let sn = stack.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let fw = stack.add("fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
    for i in 1..=3 {
        stack.add(
            &format!("web-{i}"),
            Vm::new(image.clone(), VmSize::Small, sn)
                .firewall(fw)
                .public_ip(true)
                .health_gate(HealthGate::new(HealthCheck::ProviderStatus).timeout_secs(120).batch(1)),
        );
    }
    stack
}

fn vm_ids(w: &World) -> Vec<String> {
    let mut ids: Vec<String> =
        w.sim.resources_of_stack("fleet").iter().filter(|r| r.kind() == Vm::KIND).map(|r| r.id().to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(start_paused = true)]
async fn a_release_that_fails_its_health_gate_rolls_back_and_the_old_fleet_keeps_serving() {
    let w = world();
    w.apply(&fleet(Image::UbuntuLts)).await.unwrap();
    let old = vm_ids(&w);
    w.sim.set_boot_status("debian-12", "impaired");
    let Error::Apply(r) = w.apply(&fleet(Image::Debian12)).await.unwrap_err() else { panic!() };
    assert_eq!(r.rolled_back.len(), 1, "the first batch fails and is rolled back: {r:?}");
    assert!(r.failures.iter().any(|f| f.message.contains("rolled back") && f.message.contains("impaired")), "{r:?}");
    assert!(r.replaced.is_empty(), "nothing half-applied: {r:?}");
    assert_eq!(vm_ids(&w), old, "the old instances keep serving, the bad one is gone");
    w.assert_converged("fleet").await;
    let st = w.state.load("fleet").await.unwrap();
    assert!(st.deposed.is_empty());
    // The next plan still wants the release: nothing is lost, the rollout can be retried.
    assert_eq!(w.plan(&fleet(Image::Debian12)).await.summary.replace, 3);
}

#[tokio::test(start_paused = true)]
async fn a_healthy_release_replaces_the_fleet_in_rolling_batches() {
    let w = world_with(SimConfig { latency: Duration::from_millis(100), ..Default::default() }, None);
    w.apply(&fleet(Image::UbuntuLts)).await.unwrap();
    let old = vm_ids(&w);
    let mut events = w.engine.subscribe();
    let r = w.apply(&fleet(Image::Debian12)).await.unwrap();
    assert_eq!(r.replaced.len(), 3);
    let new = vm_ids(&w);
    assert_eq!(new.len(), 3);
    assert!(new.iter().all(|id| !old.contains(id)));
    // Batch of one: a second new VM is never created before the previous one passed its gate.
    let mut in_flight = 0i32;
    let mut max_in_flight = 0;
    while let Ok(e) = events.try_recv() {
        match (&e.path, &e.kind) {
            (Some(p), konstacks_core::events::EventKind::Started { op: OpKind::Create }) if p.starts_with("web-") => {
                in_flight += 1
            }
            (Some(p), konstacks_core::events::EventKind::Succeeded { op: OpKind::Create, .. })
                if p.starts_with("web-") =>
            {
                in_flight -= 1
            }
            _ => {}
        }
        max_in_flight = max_in_flight.max(in_flight);
    }
    assert_eq!(max_in_flight, 1, "rolling batches of one");
    assert!(w.plan(&fleet(Image::Debian12)).await.is_empty());
    w.assert_converged("fleet").await;
}
