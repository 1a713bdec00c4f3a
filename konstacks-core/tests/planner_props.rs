//! Property tests of the planner and the apply engine, against the simulated cloud on virtual
//! time.
//!
//! Random stacks (a few VPCs with random non-overlapping subnets, firewalls whose rules may
//! reference earlier firewalls of the same VPC, VMs and databases with random sizes, images,
//! engines, backups and HA from the simulated catalogue) are applied one after another: each
//! version starts from the state the earlier versions left, so both the stack and the "current
//! state" are random. After every apply the next plan must be empty and the cloud must hold
//! exactly the resources in state (no orphans, no duplicates, nothing pending or deposed).
//! A second property changes random resources behind Konstacks' back and checks that a
//! refreshing apply restores them and that a refreshing re-plan is then empty.
//!
//! Determinism: the runner uses a fixed ChaCha seed ([`SEED`]) and no failure persistence, so
//! every run (and CI) tries the same cases; a failure prints the shrunk input. Generated database
//! passwords are random but never reach a plan, so they cannot change the outcome.
//!
//! Constraints of the generator, and why: database storage never shrinks and engine versions
//! never go down between versions of one database (the simulated cloud, like real ones, refuses
//! both in place, and the planner plans them as updates); deletion protection stays off (a
//! protected database cannot be replaced or deleted by design); every subnet slot owns its own
//! CIDR blocks so two different paths never claim the same block in one version; a firewall
//! never lists the same rule twice (a known bug, see `duplicate_firewall_rules_converge`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use konstacks_core::engine::{ApplyOptions, ApplyReport, DataLossConsent, Engine, PlanOptions};
use konstacks_core::model::*;
use konstacks_core::plan::{Action, Plan};
use konstacks_core::secret::{Sealer, Secret};
use konstacks_core::sim::{SimCloud, SimConfig, SimResource};
use konstacks_core::spec::{RuleSource, RuleSpec};
use konstacks_core::state::{MemoryBackend, StackState, StateBackend};
use konstacks_core::validate::Synthesized;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// The seed every run uses.
const SEED: [u8; 32] = *b"konstacks-planner-properties-v1!";

const STACK: &str = "prop";
const VM_SIZES: [VmSize; 6] =
    [VmSize::Nano, VmSize::Micro, VmSize::Small, VmSize::Medium, VmSize::Large, VmSize::XLarge];
const DB_SIZES: [DbSize; 4] = [DbSize::Micro, DbSize::Small, DbSize::Medium, DbSize::Large];
const CACHE_SIZES: [CacheSize; 4] = [CacheSize::Micro, CacheSize::Small, CacheSize::Medium, CacheSize::Large];
const PORTS: [u32; 6] = [22, 80, 443, 3306, 5432, 8080];
const PEER_CIDRS: [&str; 3] = ["198.51.100.0/24", "203.0.113.0/28", "10.200.0.0/16"];

// ---------------------------------------------------------------------------------------------
// The generated model of one stack version

#[derive(Debug, Clone)]
struct RuleG {
    ingress: bool,
    /// 0 tcp, 1 udp, 2 icmp, 3 all.
    proto: u8,
    port: usize,
    span: u32,
    /// 0 anywhere, 1 a CIDR, 2 an earlier firewall of the same VPC.
    peer: u8,
    pick: usize,
}

#[derive(Debug, Clone)]
struct FwG {
    slot: usize,
    rules: Vec<RuleG>,
    restrict_egress: bool,
}

#[derive(Debug, Clone)]
struct SubnetG {
    slot: usize,
    variant: u8,
    zone: u8,
    public: bool,
}

#[derive(Debug, Clone)]
struct VpcG {
    slot: usize,
    variant: u8,
    subnets: Vec<SubnetG>,
    fws: Vec<FwG>,
}

#[derive(Debug, Clone)]
struct VmG {
    slot: usize,
    vpc: usize,
    subnet: usize,
    fws: Vec<usize>,
    size: usize,
    debian: bool,
    public_ip: bool,
    /// Environment from a database: (which, also its password).
    env_db: Option<(usize, bool)>,
    user_data: Option<u8>,
}

#[derive(Debug, Clone)]
struct DbG {
    slot: usize,
    vpc: usize,
    subnets: Vec<usize>,
    /// 0 postgres, 1 mysql, 2 redis.
    engine: u8,
    version: usize,
    size: usize,
    storage_gb: u32,
    backups: u32,
    ha: bool,
    encrypted: bool,
    fw: Option<usize>,
}

#[derive(Debug, Clone)]
struct Version {
    vpcs: Vec<VpcG>,
    vms: Vec<VmG>,
    dbs: Vec<DbG>,
}

fn rule_g() -> impl Strategy<Value = RuleG> {
    (any::<bool>(), 0u8..4, 0..PORTS.len(), prop_oneof![Just(0u32), 1u32..200], 0u8..3, any::<usize>())
        .prop_map(|(ingress, proto, port, span, peer, pick)| RuleG { ingress, proto, port, span, peer, pick })
}

fn fw_g() -> impl Strategy<Value = FwG> {
    (0usize..3, proptest::collection::vec(rule_g(), 0..4), any::<bool>())
        .prop_map(|(slot, rules, restrict_egress)| FwG { slot, rules, restrict_egress })
}

fn subnet_g() -> impl Strategy<Value = SubnetG> {
    (0usize..4, 0u8..2, 0u8..3, any::<bool>()).prop_map(|(slot, variant, zone, public)| SubnetG {
        slot,
        variant,
        zone,
        public,
    })
}

fn vpc_g() -> impl Strategy<Value = VpcG> {
    (0usize..3, 0u8..2, proptest::collection::vec(subnet_g(), 1..4), proptest::collection::vec(fw_g(), 0..3))
        .prop_map(|(slot, variant, subnets, fws)| VpcG { slot, variant, subnets, fws })
}

fn vm_g() -> impl Strategy<Value = VmG> {
    (
        0usize..6,
        any::<usize>(),
        any::<usize>(),
        proptest::collection::vec(any::<usize>(), 0..3),
        0..VM_SIZES.len(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of((any::<usize>(), any::<bool>())),
        proptest::option::of(0u8..3),
    )
        .prop_map(|(slot, vpc, subnet, fws, size, debian, public_ip, env_db, user_data)| VmG {
            slot,
            vpc,
            subnet,
            fws,
            size,
            debian,
            public_ip,
            env_db,
            user_data,
        })
}

fn db_g() -> impl Strategy<Value = DbG> {
    (
        0usize..3,
        any::<usize>(),
        proptest::collection::vec(any::<usize>(), 1..4),
        0u8..3,
        0usize..5,
        0..DB_SIZES.len(),
        20u32..200,
        0u32..=35,
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(any::<usize>()),
    )
        .prop_map(|(slot, vpc, subnets, engine, version, size, storage_gb, backups, ha, encrypted, fw)| DbG {
            slot,
            vpc,
            subnets,
            engine,
            version,
            size,
            storage_gb,
            backups,
            ha,
            encrypted,
            fw,
        })
}

fn version_g() -> impl Strategy<Value = Version> {
    (
        proptest::collection::vec(vpc_g(), 1..3),
        proptest::collection::vec(vm_g(), 0..6),
        proptest::collection::vec(db_g(), 0..3),
    )
        .prop_map(|(vpcs, vms, dbs)| Version { vpcs, vms, dbs })
}

/// Takes each field from the previous version, or sometimes from a fresh one.
struct Mixer<'a> {
    coins: &'a [u8],
    next: usize,
}

impl Mixer<'_> {
    fn fresh(&mut self) -> bool {
        let c = self.coins.get(self.next).copied().unwrap_or(255);
        self.next += 1;
        c < 26
    }

    /// A field whose change forces a replacement: rarely changed.
    fn pick<T: Clone>(&mut self, prev: &T, fresh: &T) -> T {
        if self.fresh() {
            fresh.clone()
        } else {
            prev.clone()
        }
    }

    /// A field that can change in place: changed one time in three.
    fn often<T: Clone>(&mut self, prev: &T, fresh: &T) -> T {
        let c = self.coins.get(self.next).copied().unwrap_or(255);
        self.next += 1;
        if c < 85 {
            fresh.clone()
        } else {
            prev.clone()
        }
    }
}

/// Mix a list element by element; elements only in `fresh` are added, and elements of `prev`
/// dropped, about one time in ten.
fn mix_list<T: Clone>(
    m: &mut Mixer<'_>,
    prev: &[T],
    fresh: &[T],
    each: impl Fn(&mut Mixer<'_>, &T, &T) -> T,
) -> Vec<T> {
    let mut out = Vec::new();
    for (i, p) in prev.iter().enumerate() {
        if m.fresh() {
            continue;
        }
        out.push(match fresh.get(i) {
            Some(f) => each(m, p, f),
            None => p.clone(),
        });
    }
    for f in fresh.iter().skip(prev.len()) {
        if m.fresh() {
            out.push(f.clone());
        }
    }
    out
}

/// A next version close to `prev`: most fields kept, some taken from `fresh`, so that updates in
/// place, replacements, additions and removals all happen.
fn mutate(prev: &Version, fresh: &Version, coins: &[u8]) -> Version {
    let m = &mut Mixer { coins, next: 0 };
    let vpcs = mix_list(m, &prev.vpcs, &fresh.vpcs, |m, p, f| VpcG {
        slot: p.slot,
        variant: m.pick(&p.variant, &f.variant),
        subnets: mix_list(m, &p.subnets, &f.subnets, |m, p, f| SubnetG {
            slot: p.slot,
            variant: m.pick(&p.variant, &f.variant),
            zone: m.pick(&p.zone, &f.zone),
            public: m.often(&p.public, &f.public),
        }),
        fws: mix_list(m, &p.fws, &f.fws, |m, p, f| FwG {
            slot: p.slot,
            rules: m.often(&p.rules, &f.rules),
            restrict_egress: m.often(&p.restrict_egress, &f.restrict_egress),
        }),
    });
    let vms = mix_list(m, &prev.vms, &fresh.vms, |m, p, f| VmG {
        slot: p.slot,
        vpc: m.pick(&p.vpc, &f.vpc),
        subnet: m.pick(&p.subnet, &f.subnet),
        fws: m.often(&p.fws, &f.fws),
        size: m.often(&p.size, &f.size),
        debian: m.pick(&p.debian, &f.debian),
        public_ip: m.pick(&p.public_ip, &f.public_ip),
        env_db: m.pick(&p.env_db, &f.env_db),
        user_data: m.pick(&p.user_data, &f.user_data),
    });
    let dbs = mix_list(m, &prev.dbs, &fresh.dbs, |m, p, f| DbG {
        slot: p.slot,
        vpc: m.pick(&p.vpc, &f.vpc),
        subnets: m.pick(&p.subnets, &f.subnets),
        engine: m.pick(&p.engine, &f.engine),
        version: m.often(&p.version, &f.version),
        size: m.often(&p.size, &f.size),
        storage_gb: m.often(&p.storage_gb, &f.storage_gb),
        backups: m.often(&p.backups, &f.backups),
        ha: m.often(&p.ha, &f.ha),
        encrypted: m.pick(&p.encrypted, &f.encrypted),
        fw: m.often(&p.fw, &f.fw),
    });
    Version { vpcs, vms, dbs }
}

/// Two to three versions applied in order: the first is random, each next one is either
/// unrelated (one time in four) or a mutation of the one before. Databases never shrink or
/// downgrade between versions.
fn versions_g() -> impl Strategy<Value = Vec<Version>> {
    let step = (version_g(), proptest::collection::vec(any::<u8>(), 96), 0u8..4);
    (version_g(), proptest::collection::vec(step, 1..=2)).prop_map(|(first, steps)| {
        let mut vs = vec![first];
        for (fresh, coins, mode) in steps {
            let prev = vs.last().cloned().unwrap();
            vs.push(if mode == 0 { fresh } else { mutate(&prev, &fresh, &coins) });
        }
        for i in 1..vs.len() {
            let (before, after) = vs.split_at_mut(i);
            let prev = &before[i - 1];
            for db in &mut after[0].dbs {
                if let Some(p) = prev.dbs.iter().find(|p| p.slot == db.slot) {
                    db.storage_gb = db.storage_gb.max(p.storage_gb);
                    if p.engine == db.engine {
                        db.version = db.version.max(p.version);
                    }
                }
            }
        }
        vs
    })
}

fn versions_of(engine: u8) -> &'static [&'static str] {
    match engine {
        0 => &["13", "14", "15", "16", "17"],
        1 => &["8.0", "8.4"],
        _ => &["6", "7"],
    }
}

fn dedup_by_slot<T: Clone>(items: &[T], slot: impl Fn(&T) -> usize) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items.iter().filter(|x| seen.insert(slot(x))).cloned().collect()
}

/// The element of `items` whose slot is `want` (modulo the number of slots), or else the
/// `want`-th one: references follow slots, so that dropping one resource from a version does
/// not silently re-point every reference after it.
fn by_slot<T: Copy>(items: &[(usize, T)], want: usize, slots: usize) -> Option<T> {
    if items.is_empty() {
        return None;
    }
    items.iter().find(|(s, _)| *s == want % slots).or_else(|| items.get(want % items.len())).map(|(_, t)| *t)
}

/// Build the stack of one version.
fn build(v: &Version) -> Stack {
    let stack = Stack::new(STACK, Placement::region("eu-central"), Stage::Dev);
    struct Built {
        subnets: Vec<(usize, (Ref<Subnet>, u8))>,
        fws: Vec<(usize, Ref<Firewall>)>,
    }
    let mut vpcs: Vec<(usize, Built)> = Vec::new();
    for vg in dedup_by_slot(&v.vpcs, |x| x.slot) {
        let octet = vg.slot * 10 + usize::from(vg.variant);
        let scope = stack.scope(&format!("net-{}", vg.slot));
        let vpc = scope.add("vpc", Vpc::new(format!("10.{octet}.0.0/16")));
        let mut subnets = Vec::new();
        for sg in dedup_by_slot(&vg.subnets, |x| x.slot) {
            let third = sg.slot * 10 + usize::from(sg.variant);
            let mut sn = Subnet::new(vpc, format!("10.{octet}.{third}.0/24")).zone(sg.zone);
            if sg.public {
                sn = sn.public();
            }
            subnets.push((sg.slot, (scope.add(&format!("sn-{}", sg.slot), sn), sg.zone)));
        }
        let mut fws: Vec<(usize, Ref<Firewall>)> = Vec::new();
        for fg in dedup_by_slot(&vg.fws, |x| x.slot) {
            let mut fw = Firewall::new(vpc);
            // Duplicate rules are left out: see `duplicate_firewall_rules_converge`.
            let mut seen: BTreeSet<(bool, u8, u32, u32, String)> = BTreeSet::new();
            if !fg.restrict_egress {
                seen.insert((false, 3, 0, 0, "any".into()));
            }
            for r in &fg.rules {
                let port = PORTS[r.port];
                let (from, to) = match r.proto {
                    0 => (port, port + r.span),
                    1 => (port, port),
                    _ => (0, 0),
                };
                // One direction only: a rule may name an earlier firewall of the same VPC.
                let peer_fw = if r.peer >= 2 { by_slot(&fws, r.pick, 3) } else { None };
                let peer = match (r.peer, peer_fw) {
                    (1, _) => PEER_CIDRS[r.pick % PEER_CIDRS.len()].to_string(),
                    (_, Some(f)) => format!("{f:?}"),
                    _ => "any".to_string(),
                };
                if !seen.insert((r.ingress, r.proto, from, to, peer)) {
                    continue;
                }
                let ports = match (r.proto, r.ingress) {
                    (0, true) => Ingress::tcp_range(from, to),
                    (0, false) => Egress::tcp_range(from, to),
                    (1, true) => Ingress::udp(port),
                    (1, false) => Egress::udp(port),
                    (2, true) => Ingress::icmp(),
                    (2, false) => Egress::icmp(),
                    (_, true) => Ingress::all(),
                    (_, false) => Egress::all(),
                };
                let rule = match (r.peer, peer_fw) {
                    (1, _) => ports.from_cidr(PEER_CIDRS[r.pick % PEER_CIDRS.len()]),
                    (_, Some(f)) => ports.from(f),
                    _ => ports.from_anywhere(),
                };
                fw = fw.allow(rule);
            }
            if fg.restrict_egress {
                fw = fw.restrict_egress();
            }
            fws.push((fg.slot, scope.add(&format!("fw-{}", fg.slot), fw)));
        }
        vpcs.push((vg.slot, Built { subnets, fws }));
    }
    let with_subnets: Vec<(usize, &Built)> =
        vpcs.iter().filter(|(_, b)| !b.subnets.is_empty()).map(|(s, b)| (*s, b)).collect();

    let data = stack.scope("data");
    let mut dbs: Vec<(usize, Ref<Database>)> = Vec::new();
    for dg in dedup_by_slot(&v.dbs, |x| x.slot) {
        let Some(b) = by_slot(&with_subnets, dg.vpc, 3) else { continue };
        let mut picked: Vec<(Ref<Subnet>, u8)> = Vec::new();
        for s in &dg.subnets {
            let sn = by_slot(&b.subnets, *s, 4).unwrap();
            if !picked.iter().any(|(r, _)| *r == sn.0) {
                picked.push(sn);
            }
        }
        let zones: BTreeSet<u8> = picked.iter().map(|(_, z)| *z).collect();
        let version = versions_of(dg.engine)[dg.version % versions_of(dg.engine).len()];
        let refs = picked.iter().map(|(r, _)| *r);
        if dg.engine >= 2 {
            // Redis is the cache kind: same subnets and firewall, failover with one replica.
            let ha = dg.ha && zones.len() >= 2;
            let mut cache =
                Cache::redis(version, CACHE_SIZES[dg.size].clone(), refs).replicas(u32::from(ha)).high_availability(ha);
            if let Some(f) = dg.fw.and_then(|f| by_slot(&b.fws, f, 3)) {
                cache = cache.firewall(f);
            }
            data.add(&format!("db-{}", dg.slot), cache);
            continue;
        }
        let mut db = match dg.engine {
            0 => Database::postgres(version, DB_SIZES[dg.size].clone(), refs),
            _ => Database::mysql(version, DB_SIZES[dg.size].clone(), refs),
        }
        .storage_gb(dg.storage_gb)
        .backups(dg.backups)
        .encrypted(dg.encrypted)
        .high_availability(dg.ha && zones.len() >= 2);
        if let Some(f) = dg.fw.and_then(|f| by_slot(&b.fws, f, 3)) {
            db = db.firewall(f);
        }
        dbs.push((dg.slot, data.add(&format!("db-{}", dg.slot), db)));
    }

    let app = stack.scope("app");
    for vg in dedup_by_slot(&v.vms, |x| x.slot) {
        let Some(b) = by_slot(&with_subnets, vg.vpc, 3) else { continue };
        let image = if vg.debian { Image::Debian12 } else { Image::UbuntuLts };
        let subnet = by_slot(&b.subnets, vg.subnet, 4).unwrap().0;
        let mut vm = Vm::new(image, VM_SIZES[vg.size].clone(), subnet).public_ip(vg.public_ip);
        let mut attached = BTreeSet::new();
        for f in vg.fws.iter().filter_map(|f| by_slot(&b.fws, *f, 3)) {
            if attached.insert(format!("{f:?}")) {
                vm = vm.firewall(f);
            }
        }
        if let Some((db, pw)) = vg.env_db.and_then(|(d, pw)| by_slot(&dbs, d, 3).map(|db| (db, pw))) {
            vm = vm.env("DB_HOST", db.host()).env("DB_PORT", db.port());
            if pw {
                vm = vm.env("DB_PASSWORD", db.password());
            }
        }
        if let Some(u) = vg.user_data {
            vm = vm.user_data(format!("#!/bin/sh\necho boot {u}\n"));
        }
        let web = app.add(&format!("vm-{}", vg.slot), vm);
        stack.export(format!("vm-{}-ip", vg.slot), web.public_ip());
    }
    stack
}

// ---------------------------------------------------------------------------------------------
// The world and its checks

struct World {
    sim: Arc<SimCloud>,
    state: Arc<MemoryBackend>,
    engine: Engine,
}

fn world() -> World {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let state = Arc::new(MemoryBackend::new());
    let sealer = Sealer::from_passphrase(&Secret::new("planner-properties".to_string()));
    let engine = Engine::new(state.clone()).with_provider(sim.provider()).with_sealer(Some(sealer));
    World { sim, state, engine }
}

impl World {
    /// Apply `stack` and check the invariants; `Err` describes the first violation.
    async fn apply_and_check(&self, stack: &Stack, refresh: bool, what: &str) -> Result<ApplyReport, String> {
        let s = self.engine.synth(stack).map_err(|e| format!("{what}: the generated stack is invalid: {e}"))?;
        let before = self
            .engine
            .plan(&s, &PlanOptions { refresh, ..Default::default() })
            .await
            .map_err(|e| format!("{what}: plan: {e}"))?;
        let report = self
            .engine
            // Random transitions delete and replace databases on purpose.
            .apply(&s, &ApplyOptions { refresh, data_loss: DataLossConsent::All, ..Default::default() })
            .await
            .map_err(|e| format!("{what}: apply failed: {e}\nthe plan was:\n{}", before.render(false)))?;
        if !report.is_success() {
            return Err(format!("{what}: apply reported {report:?}"));
        }
        for refresh in [false, true] {
            let again = self
                .engine
                .plan(&s, &PlanOptions { refresh, ..Default::default() })
                .await
                .map_err(|e| format!("{what}: re-plan: {e}"))?;
            if !again.is_empty() {
                return Err(format!(
                    "{what}: re-plan (refresh: {refresh}) after apply is not empty:\n{}\nthe applied plan was:\n{}",
                    again.render(false),
                    before.render(false)
                ));
            }
        }
        self.check_converged(&s, what).await?;
        Ok(report)
    }

    /// The cloud holds exactly what state holds, and state holds exactly the stack.
    async fn check_converged(&self, s: &Synthesized, what: &str) -> Result<(), String> {
        let st = self.state.load(STACK).await.map_err(|e| e.to_string())?;
        if !st.pending.is_empty() || !st.deposed.is_empty() {
            return Err(format!("{what}: pending {:?} / deposed {:?} left in state", st.pending, st.deposed));
        }
        let cloud = self.sim.resources_of_stack(STACK);
        let mut cloud_ids: Vec<&str> = cloud.iter().map(SimResource::id).collect();
        cloud_ids.sort_unstable();
        let mut state_ids: Vec<&str> = st.resources.values().map(|r| r.id.as_str()).collect();
        state_ids.sort_unstable();
        if cloud_ids != state_ids {
            return Err(format!("{what}: cloud {cloud_ids:?} != state {state_ids:?} (orphans or ghosts)"));
        }
        let state_paths: BTreeSet<&str> = st.resources.keys().map(String::as_str).collect();
        let stack_paths: BTreeSet<&str> = s.resources.iter().map(|r| r.path.as_str()).collect();
        if state_paths != stack_paths {
            return Err(format!("{what}: state paths {state_paths:?} != stack paths {stack_paths:?}"));
        }
        for r in &cloud {
            let path = r.tags().get("konstacks:path").map(String::as_str).unwrap_or("");
            match st.resources.get(path) {
                Some(rs) if rs.id == r.id() && rs.kind == r.kind() => {}
                other => return Err(format!("{what}: cloud {} tagged `{path}` but state has {other:?}", r.id())),
            }
        }
        let mut names: Vec<String> = cloud.iter().map(|r| r.tags().get("Name").cloned().unwrap_or_default()).collect();
        names.sort();
        let unique: BTreeSet<&String> = names.iter().collect();
        if unique.len() != names.len() {
            return Err(format!("{what}: duplicate physical names in the cloud: {names:?}"));
        }
        Ok(())
    }
}

fn runner(cases: u32) -> TestRunner {
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED))
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// Whether a failed apply hit one of the two ordering bugs reproduced by
/// [`replacing_a_subnet_while_deleting_a_database_in_it_is_ordered`] and
/// [`moving_a_vm_off_a_replaced_subnet_onto_what_lives_in_it_is_ordered`]. Such inputs are
/// rejected (not counted as passing) so the property keeps checking everything else; each bug
/// has its own test.
fn hits_known_ordering_bug(s: &Synthesized, plan: &Plan, state: &StackState) -> Option<String> {
    let dbc: BTreeSet<&str> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Replace && !c.create_before_destroy)
        .map(|c| c.path.as_str())
        .collect();
    let deps = |p: &str| state.resources.get(p).map(|r| r.deps.clone()).unwrap_or_default();
    // 1: a destroy-before-create replacement used a deleted resource that sat on another one.
    for x in plan.changes.iter().filter(|c| c.action == Action::Delete && !c.deposed) {
        if !deps(&x.path).iter().any(|d| dbc.contains(d.as_str())) {
            continue;
        }
        if let Some(w) = dbc.iter().find(|w| deps(w).contains(&x.path)) {
            return Some(format!("{w} is replaced destroy-before-create and used {}, which is deleted", x.path));
        }
    }
    // 2: a create-before-destroy replacement whose old instance sits on a destroy-before-create
    // replacement that its new instance (transitively) needs.
    for w in plan.changes.iter().filter(|c| c.action == Action::Replace && c.create_before_destroy) {
        let Some(i) = s.index_of(&w.path) else { continue };
        let mut needs = BTreeSet::new();
        let mut todo = vec![i];
        while let Some(n) = todo.pop() {
            for &d in &s.resources[n].deps {
                if needs.insert(d) {
                    todo.push(d);
                }
            }
        }
        for y in deps(&w.path) {
            if dbc.contains(y.as_str()) && s.index_of(&y).is_some_and(|yi| needs.contains(&yi)) {
                return Some(format!("{} is replaced create-before-destroy off {y}, which it needs again", w.path));
            }
        }
    }
    None
}

/// Apply each version in turn, from the state the earlier ones left.
fn apply_versions(versions: &[Version]) -> Result<(), TestCaseError> {
    paused_runtime().block_on(async {
        let w = world();
        for (i, v) in versions.iter().enumerate() {
            let stack = build(v);
            let s = w.engine.synth(&stack).map_err(|e| TestCaseError::fail(format!("invalid stack: {e}")))?;
            let plan =
                w.engine.plan(&s, &PlanOptions::default()).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let state = w.state.load(STACK).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let r = match w.apply_and_check(&stack, false, &format!("version {i}")).await {
                Ok(r) => r,
                Err(e) => {
                    // Only the known bug, recognised both by its error and by its shape, is
                    // rejected; once it is fixed these inputs count like any other.
                    if e.contains("the changes cannot be ordered") {
                        if let Some(why) = hits_known_ordering_bug(&s, &plan, &state) {
                            REJECTED.fetch_add(1, Ordering::Relaxed);
                            return Err(TestCaseError::reject(why));
                        }
                    }
                    return Err(TestCaseError::fail(e));
                }
            };
            for (n, c) in [&r.created, &r.updated, &r.replaced, &r.deleted].iter().zip(&TRIED) {
                c.fetch_add(n.len(), Ordering::Relaxed);
            }
        }
        // And everything goes away again.
        w.engine
            .destroy(STACK, &ApplyOptions::default())
            .await
            .map_err(|e| TestCaseError::fail(format!("destroy: {e}")))?;
        let left = w.sim.resources_of_stack(STACK);
        if !left.is_empty() {
            return Err(TestCaseError::fail(format!("destroy left {left:?}")));
        }
        Ok(())
    })
}

/// Cases rejected because they hit the known ordering bug.
static REJECTED: AtomicUsize = AtomicUsize::new(0);

/// Operations applied over all cases: created, updated, replaced, deleted.
static TRIED: [AtomicUsize; 4] = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];

#[test]
fn applying_random_stacks_over_random_states_converges() {
    let mut r = runner(64);
    if let Err(e) = r.run(&versions_g(), |vs| apply_versions(&vs)) {
        panic!("{e}");
    }
    // The generator must exercise every kind of change, not only creates.
    let tried: Vec<usize> = TRIED.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let rejected = REJECTED.load(Ordering::Relaxed);
    eprintln!("created, updated, replaced, deleted over all cases: {tried:?}; rejected (known bug): {rejected}");
    assert!(rejected <= 16, "too many cases hit the known ordering bug: {rejected}");
    for (n, what) in tried.iter().zip(["creates", "updates", "replacements", "deletes"]) {
        assert!(*n >= 20, "only {n} {what} were tried: {tried:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Drift

/// One change made behind Konstacks' back.
#[derive(Debug, Clone)]
struct Tamper {
    pick: usize,
    how: u8,
    value: usize,
}

fn tamper_g() -> impl Strategy<Value = Tamper> {
    (any::<usize>(), 0u8..8, any::<usize>()).prop_map(|(pick, how, value)| Tamper { pick, how, value })
}

/// Change one resource the way someone in a console might; returns what was done.
fn tamper(sim: &SimCloud, t: &Tamper) -> Option<String> {
    let all = sim.resources_of_stack(STACK);
    if all.is_empty() {
        return None;
    }
    let r = &all[t.pick % all.len()];
    let id = r.id().to_string();
    let mut done = None;
    // Deleting a VM or a database in the console.
    let deleted = t.how == 0 && [Vm::KIND, Database::KIND].contains(&r.kind()) && sim.remove_behind_back(&id);
    if deleted {
        return Some(format!("deleted {id}"));
    }
    sim.tamper(&id, |r| {
        let what = if let Some(v) = r.get_mut::<Vm>().filter(|_| t.how.is_multiple_of(2)) {
            v.size = VM_SIZES[t.value % VM_SIZES.len()].slug();
            format!("resized {id} to {}", v.size)
        } else if let Some(d) = r.get_mut::<Database>() {
            if t.how.is_multiple_of(3) {
                d.size = DB_SIZES[t.value % DB_SIZES.len()].slug();
                format!("resized {id} to {}", d.size)
            } else if t.how % 3 == 1 {
                d.backup_retention_days = (t.value % 36) as u32;
                format!("set backups of {id} to {}", d.backup_retention_days)
            } else {
                d.high_availability = !d.high_availability;
                format!("flipped HA of {id}")
            }
        } else if let Some(f) = r.get_mut::<Firewall>() {
            if t.how.is_multiple_of(2) {
                f.ingress.push(RuleSpec {
                    protocol: Protocol::Tcp,
                    from_port: 22,
                    to_port: 22,
                    peer: RuleSource::Cidr("0.0.0.0/0".into()),
                });
                f.ingress.sort();
                f.ingress.dedup();
                format!("opened port 22 on {id}")
            } else {
                f.ingress.clear();
                f.egress.clear();
                format!("removed every rule of {id}")
            }
        } else if let Some(s) = r.get_mut::<Subnet>() {
            s.public = !s.public;
            format!("flipped public routing of {id}")
        } else {
            r.tags_mut().insert("owner".into(), format!("someone-{}", t.value % 7));
            format!("tagged {id}")
        };
        done = Some(what);
    });
    done
}

fn drift_case(v: &Version, tampers: &[Tamper]) -> Result<(), TestCaseError> {
    paused_runtime()
        .block_on(async {
            let w = world();
            let stack = build(v);
            w.apply_and_check(&stack, false, "initial apply").await?;
            let cloud_before = w.sim.resources_of_stack(STACK);
            let done: Vec<String> = tampers.iter().filter_map(|t| tamper(&w.sim, t)).collect();
            let changed = w.sim.resources_of_stack(STACK) != cloud_before;
            let drift = w.engine.drift(STACK).await.map_err(|e| format!("drift: {e}"))?;
            if changed {
                DRIFTED.fetch_add(1, Ordering::Relaxed);
            }
            if changed && drift.is_clean() {
                return Err(format!("{done:?} went unnoticed by drift"));
            }
            w.apply_and_check(&stack, true, &format!("refreshing apply after {done:?}")).await?;
            let drift = w.engine.drift(STACK).await.map_err(|e| format!("drift: {e}"))?;
            if !drift.is_clean() {
                return Err(format!("drift after the refreshing apply:\n{}", drift.render()));
            }
            Ok(())
        })
        .map_err(TestCaseError::fail)
}

/// Cases in which the tampering really changed the cloud.
static DRIFTED: AtomicUsize = AtomicUsize::new(0);

#[test]
fn drift_is_reverted_by_a_refreshing_apply() {
    let mut r = runner(64);
    let strategy = (version_g(), proptest::collection::vec(tamper_g(), 1..4));
    if let Err(e) = r.run(&strategy, |(v, ts)| drift_case(&v, &ts)) {
        panic!("{e}");
    }
    let drifted = DRIFTED.load(Ordering::Relaxed);
    eprintln!("cases with real drift: {drifted} of 64");
    assert!(drifted >= 40, "the tampering changed the cloud in only {drifted} cases");
}

/// Minimal reproduction: listing the default egress rule explicitly (or any rule twice) is
/// accepted; the cloud keeps the rules as a set, so after apply a refreshing plan always wants
/// to add the duplicate back, and drift never clears.
#[test]
fn duplicate_firewall_rules_converge() {
    paused_runtime().block_on(async {
        let w = world();
        let stack = Stack::new(STACK, Placement::region("eu-central"), Stage::Dev);
        let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
        stack.add("fw", Firewall::new(vpc).allow(Egress::all().to_anywhere()));
        let Ok(s) = w.engine.synth(&stack) else { return };
        w.engine.apply(&s, &ApplyOptions::default()).await.unwrap();
        let drift = w.engine.drift(STACK).await.unwrap();
        let plan = w.engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
        assert!(drift.is_clean() && plan.is_empty(), "{}\n{}", drift.render(), plan.render(false));
    });
}

/// The stack of [`replacing_a_subnet_while_deleting_a_database_in_it_is_ordered`].
fn subnet_db_vm(zone: u8, with_db: bool) -> Stack {
    let stack = Stack::new(STACK, Placement::region("eu-central"), Stage::Dev);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let sn = stack.add("sn", Subnet::new(vpc, "10.0.1.0/24").zone(zone));
    let mut vm = Vm::new(Image::UbuntuLts, VmSize::Small, sn);
    if with_db {
        let db = stack.add("db", Database::postgres("16", DbSize::Small, [sn]));
        vm = vm.env("DB_HOST", db.host());
    }
    stack.add("vm", vm);
    stack
}

/// Minimal reproduction: a subnet is replaced (destroy before create), the database in it is
/// removed from the stack, and the VM in it, which read the database's host, is replaced too and
/// no longer reads it. The only valid order is: delete the VM, delete the database, delete the
/// subnet, create the subnet, create the VM. The engine also requires the *new* VM to exist
/// before the database is deleted (the "moved off" edge), which closes a cycle, and refuses the
/// whole apply.
#[test]
fn replacing_a_subnet_while_deleting_a_database_in_it_is_ordered() {
    paused_runtime().block_on(async {
        let w = world();
        w.apply_and_check(&subnet_db_vm(0, true), false, "first").await.unwrap();
        w.apply_and_check(&subnet_db_vm(1, false), false, "second").await.unwrap();
    });
}

/// The stacks of [`moving_a_vm_off_a_replaced_subnet_onto_what_lives_in_it_is_ordered`].
fn vm_moves_off(second: bool) -> Stack {
    let stack = Stack::new(STACK, Placement::region("eu-central"), Stage::Dev);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = stack.add("a", Subnet::new(vpc, "10.0.1.0/24").zone(if second { 1 } else { 0 }));
    let b = stack.add("b", Subnet::new(vpc, "10.0.2.0/24").zone(1));
    if second {
        let db = stack.add("db", Database::postgres("16", DbSize::Small, [a]));
        stack.add("vm", Vm::new(Image::UbuntuLts, VmSize::Small, b).env("DB_HOST", db.host()));
    } else {
        stack.add("vm", Vm::new(Image::UbuntuLts, VmSize::Small, a));
    }
    stack
}

/// Minimal reproduction: a VM in subnet `a` moves to subnet `b` and starts reading the host of a
/// new database in `a`, while `a` is replaced (destroy before create). The planner decides the
/// VM's replacement from its new dependencies only and makes it create-before-destroy, but its
/// old instance must be gone before `a` is destroyed, and its new instance needs the database in
/// the new `a`: a cycle, and the engine refuses the apply. Valid order: delete the VM, delete
/// `a`, create `a`, create the database, create the VM.
#[test]
fn moving_a_vm_off_a_replaced_subnet_onto_what_lives_in_it_is_ordered() {
    paused_runtime().block_on(async {
        let w = world();
        w.apply_and_check(&vm_moves_off(false), false, "first").await.unwrap();
        w.apply_and_check(&vm_moves_off(true), false, "second").await.unwrap();
    });
}
