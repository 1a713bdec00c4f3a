//! The audit trail on the simulated cloud, on virtual time: apply, a no-op apply, drift,
//! refresh, force-unlock, a failing apply and destroy each leave one entry in the stack's state,
//! oldest first, naming the command, its result, who ran it and what it cost; a drift check on a
//! stack another run holds is not recorded and says so with a warning event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use konstacks_core::engine::{ApplyOptions, Engine};
use konstacks_core::error::{Error, ErrorKind};
use konstacks_core::events::EventKind;
use konstacks_core::model::*;
use konstacks_core::policy::{Pack, PolicySet};
use konstacks_core::sim::{Faults, SimCloud, SimConfig};
use konstacks_core::state::{AuditCommand, AuditEntry, AuditResult, LocalBackend, LockInfo, StackState, StateBackend};

const STACK: &str = "shop";

fn stack(size: VmSize) -> Stack {
    let stack = Stack::new(STACK, Placement::within(Jurisdiction::Eu), Stage::Dev);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = net.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    stack.add("web", Vm::new(Image::UbuntuLts, size, public));
    stack
}

struct World {
    _dir: tempfile::TempDir,
    sim: Arc<SimCloud>,
    state: Arc<LocalBackend>,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(LocalBackend::new(dir.path()));
        Self { _dir: dir, sim: Arc::new(SimCloud::new(SimConfig::default())), state }
    }

    fn engine(&self) -> Engine {
        Engine::new(self.state.clone())
            .with_provider(self.sim.provider())
            .with_sealer(None)
            .with_policy(PolicySet::new().pack(Pack::new("house", "House rules")))
    }

    async fn apply(&self, e: &Engine, size: VmSize) -> Result<konstacks_core::engine::ApplyReport, Error> {
        let s = e.synth(&stack(size)).unwrap();
        e.apply(&s, &ApplyOptions::default()).await
    }

    /// The trail as a fresh backend on the same directory reads it (what survives the process).
    async fn trail(&self) -> Vec<AuditEntry> {
        LocalBackend::new(self.state.root()).load(STACK).await.unwrap().audit
    }
}

fn commands(trail: &[AuditEntry]) -> Vec<(AuditCommand, AuditResult)> {
    trail.iter().map(|e| (e.command, e.result)).collect()
}

#[tokio::test(start_paused = true)]
async fn every_command_leaves_one_entry_oldest_first() {
    let w = World::new();
    let e = w.engine();
    let me = e.actor();
    assert!(me.contains('@') && !me.contains("pid"), "user@host of the OS user: {me}");

    // Apply, then the same apply again (nothing to do: still recorded).
    let r = w.apply(&e, VmSize::Small).await.unwrap();
    assert_eq!(r.created.len(), 3);
    let serial = w.state.load(STACK).await.unwrap().serial;
    w.apply(&e, VmSize::Small).await.unwrap();
    let st = w.state.load(STACK).await.unwrap();
    assert_eq!(st.serial, serial, "a run that changed nothing keeps the serial");

    let trail = w.trail().await;
    assert_eq!(commands(&trail), [(AuditCommand::Apply, AuditResult::Succeeded); 2]);
    let first = &trail[0];
    assert_eq!(first.summary, "3 created, 0 updated, 0 replaced, 0 deleted");
    assert_eq!(first.actor, me);
    assert!(first.message.is_none());
    assert_eq!(first.cost_before_usd, Some(0.0));
    let monthly = first.cost_after_usd.unwrap();
    assert!(monthly > 0.0, "the VM is priced: {monthly}");
    let compliance = first.compliance.as_ref().unwrap();
    assert_eq!((compliance.packs.clone(), compliance.errors, compliance.warnings), (vec!["house".into()], 0, 0));
    assert!(first.drifted.is_none());
    assert!(first.at.ends_with('Z') && first.at.len() == "2026-01-01T00:00:00.000Z".len(), "{}", first.at);
    assert_eq!(trail[1].summary, "0 created, 0 updated, 0 replaced, 0 deleted");
    assert_eq!((trail[1].cost_before_usd, trail[1].cost_after_usd), (Some(monthly), Some(monthly)));
    assert!(trail[1].at > first.at, "{} then {}", first.at, trail[1].at);

    // Drift: clean, then drifted (the VM resized behind our back).
    assert!(e.drift(STACK).await.unwrap().is_clean());
    let vm = w.sim.resources_of_stack(STACK).into_iter().find(|r| r.kind() == Vm::KIND).unwrap();
    assert!(w.sim.tamper(vm.id(), |r| {
        if let Some(v) = r.get_mut::<Vm>() {
            v.size = "xlarge".into();
        }
    }));
    assert_eq!(e.drift(STACK).await.unwrap().items.len(), 1);
    let trail = w.trail().await;
    let drifts: Vec<_> = trail[2..].iter().map(|e| (e.command, e.result, e.drifted, e.summary.as_str())).collect();
    assert_eq!(
        drifts,
        [
            (AuditCommand::Drift, AuditResult::Clean, Some(0), "no drift"),
            (AuditCommand::Drift, AuditResult::Drifted, Some(1), "1 resource drifted"),
        ]
    );

    // Refresh accepts the drift.
    e.refresh(STACK).await.unwrap();
    let last = w.trail().await.pop().unwrap();
    assert_eq!((last.command, last.result), (AuditCommand::Refresh, AuditResult::Succeeded));
    assert_eq!(last.summary, "1 drifted resource accepted into state");

    // Force-unlock names the run whose lock it broke.
    let stale = LockInfo::for_this_process("apply");
    w.state.lock(STACK, &stale).await.unwrap();
    e.force_unlock(STACK, &stale.id).await.unwrap();
    let last = w.trail().await.pop().unwrap();
    assert_eq!((last.command, last.result), (AuditCommand::ForceUnlock, AuditResult::Succeeded));
    assert!(last.summary.contains(&stale.holder) && last.summary.contains("(apply)"), "{}", last.summary);
    assert!(w.state.current_lock(STACK).await.unwrap().is_none(), "the entry's own lock is released");

    // Destroy.
    let r = e.destroy(STACK, &ApplyOptions::default()).await.unwrap();
    assert_eq!(r.deleted.len(), 3);
    let trail = w.trail().await;
    let last = trail.last().unwrap();
    assert_eq!((last.command, last.result), (AuditCommand::Destroy, AuditResult::Succeeded));
    assert_eq!(last.summary, "0 created, 0 updated, 0 replaced, 3 deleted");
    assert!(last.cost_before_usd.unwrap() > 0.0 && last.cost_after_usd == Some(0.0), "{last:?}");
    assert!(last.compliance.is_none());
    assert_eq!(
        commands(&trail).into_iter().map(|(c, _)| c.to_string()).collect::<Vec<_>>(),
        ["apply", "apply", "drift", "drift", "refresh", "force-unlock", "destroy"]
    );
    assert_eq!(e.history(STACK).await.unwrap(), trail, "the engine reads the same trail");
    assert!(w.state.load(STACK).await.unwrap().resources.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failing_apply_is_recorded_with_its_error_and_a_custom_actor() {
    let w = World::new();
    let e = w.engine().with_actor("dashboard:ops-board");
    w.apply(&e, VmSize::Small).await.unwrap();
    w.sim.set_faults(Faults {
        fail_rate: 1.0,
        fail_kind: ErrorKind::InvalidSpec,
        only_ops: Some(BTreeSet::from(["update_vm".to_string()])),
        ..Faults::default()
    });
    let err = w.apply(&e, VmSize::Large).await.err();
    assert!(matches!(&err, Some(Error::Apply(_))), "{err:?}");
    let trail = w.trail().await;
    assert_eq!(
        commands(&trail),
        [(AuditCommand::Apply, AuditResult::Succeeded), (AuditCommand::Apply, AuditResult::Failed)]
    );
    let failed = &trail[1];
    assert!(trail.iter().all(|x| x.actor == "dashboard:ops-board"));
    assert_eq!(failed.message.as_deref(), err.map(|e| e.to_string()).as_deref(), "the error as the run reported it");
    assert!(failed.message.as_deref().unwrap_or_default().contains("web"));
    assert_eq!(failed.summary, "0 created, 0 updated, 0 replaced, 0 deleted");
    let cost = (failed.cost_before_usd.unwrap(), failed.cost_after_usd.unwrap());
    assert!(cost.1 > cost.0, "the planned resize costs more: {cost:?}");
}

#[tokio::test(start_paused = true)]
async fn a_drift_check_on_a_locked_stack_is_not_recorded_and_warns() {
    let w = World::new();
    let e = w.engine();
    // A stack without state records nothing.
    assert!(e.drift(STACK).await.unwrap().is_clean());
    assert_eq!(w.state.load(STACK).await.unwrap(), StackState::empty(STACK));

    w.apply(&e, VmSize::Small).await.unwrap();
    let other = LockInfo::for_this_process("apply");
    w.state.lock(STACK, &other).await.unwrap();
    let mut events = e.subscribe();
    assert!(e.drift(STACK).await.unwrap().is_clean(), "the check itself succeeds");
    let mut warned = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let EventKind::Warning { message } = ev.kind {
            warned.push(message);
        }
    }
    assert!(warned.iter().any(|m| m.contains("not recorded") && m.contains("locked")), "{warned:?}");
    assert_eq!(commands(&w.trail().await), [(AuditCommand::Apply, AuditResult::Succeeded)]);
    assert_eq!(w.state.current_lock(STACK).await.unwrap().map(|l| l.id), Some(other.id), "the other lock stays");
}

/// Three VMs behind a load balancer running `version` of the app.
fn released_stack(version: &str) -> Stack {
    let stack = Stack::new(STACK, Placement::region("eu-central"), Stage::Prod);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = net.add("a", Subnet::new(vpc, "10.0.1.0/24").public().zone(0));
    let b = net.add("b", Subnet::new(vpc, "10.0.2.0/24").public().zone(1));
    let app = stack.scope("app");
    let vms: Vec<Ref<Vm>> = (0..3)
        .map(|i| {
            let run = App::command("python3 app.py", 8080).health_path("/healthz").version(version);
            let subnet = if i % 2 == 0 { a } else { b };
            app.add(&format!("web-{}", i + 1), Vm::new(Image::UbuntuLts, VmSize::Small, subnet).app(run))
        })
        .collect();
    let group = TargetGroup::new("app", 8080)
        .vms(vms)
        .health_check(TargetHealthCheck::http("/healthz").timing(5, 2).thresholds(2, 2))
        .deregistration_delay_s(10)
        .rolling(1, 0)
        .healthy_within_s(60);
    app.add("lb", LoadBalancer::public([a, b]).http(80).target_group(group));
    stack
}

#[tokio::test(start_paused = true)]
async fn a_release_is_recorded_next_to_the_apply_that_ran_it() {
    let w = World::new();
    let e = w.engine();
    for version in ["1", "2"] {
        let s = e.synth(&released_stack(version)).unwrap();
        e.apply(&s, &ApplyOptions::default()).await.unwrap();
    }
    let trail = w.trail().await;
    assert_eq!(
        commands(&trail),
        [
            (AuditCommand::Apply, AuditResult::Succeeded),
            (AuditCommand::Release, AuditResult::Succeeded),
            (AuditCommand::Apply, AuditResult::Succeeded),
        ]
    );
    let release = &trail[1];
    assert_eq!(release.summary, "app/lb app: 1 -> 2, 3 targets");
    assert_eq!(release.actor, e.actor());
    assert!(release.at > trail[2].at, "the release starts after its apply: {} / {}", release.at, trail[2].at);
    assert_eq!(trail[2].summary, "0 created, 1 updated, 3 replaced, 0 deleted", "the VMs and the load balancer");
}

#[tokio::test(start_paused = true)]
async fn imports_are_recorded_whether_they_succeed_or_not() {
    let w = World::new();
    let e = w.engine();
    w.apply(&e, VmSize::Small).await.unwrap();
    let vpc = e.forget(STACK, "network/vpc").await.unwrap();
    let s = e.synth(&stack(VmSize::Small)).unwrap();
    let opts = konstacks_core::engine::ImportOptions::default();
    assert!(e.import(&s, "network/vpc", "vpc-nope", &opts).await.is_err());
    e.import(&s, "network/vpc", &vpc.id, &opts).await.unwrap();
    let trail = w.trail().await;
    assert_eq!(
        commands(&trail),
        [
            (AuditCommand::Apply, AuditResult::Succeeded),
            (AuditCommand::Import, AuditResult::Failed),
            (AuditCommand::Import, AuditResult::Succeeded),
        ]
    );
    assert_eq!(trail[1].summary, "vpc-nope not imported at network/vpc");
    assert!(trail[1].message.as_deref().unwrap_or_default().contains("vpc-nope"), "{:?}", trail[1].message);
    assert_eq!(trail[2].summary, format!("imported {} at network/vpc", vpc.id));
}
