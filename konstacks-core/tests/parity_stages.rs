//! Environment parity on hand-built stacks: allowed knobs, drift in engine version, open ports,
//! image and jurisdiction, resources present in one stage only, and custom knob sets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use konstacks_core::model::*;
use konstacks_core::parity::{parity, Knob, KnobSet, ParityReport, ParityVerdict, PRESENT_FIELD, STACK_ROW};
use konstacks_core::sim::SimCloud;
use konstacks_core::validate::Synthesized;
use serde_json::json;

#[derive(Clone)]
struct Env {
    stage: Stage,
    region: &'static str,
    vm: VmSize,
    vms: u32,
    image: Image,
    pg: &'static str,
    ports: Vec<u32>,
    ha: bool,
    worker: bool,
    edge: Edge,
}

/// How the stage is served.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Edge {
    /// The VMs' own addresses, no load balancer.
    None,
    /// A load balancer with plain HTTP on this port, on its own DNS name.
    Http(u32),
    /// A load balancer with HTTPS for `www.shop.example` (certificate validated in the stack's
    /// zone, the name's record pointing at the load balancer), HTTP on 80 redirected to it.
    Https,
}

impl Env {
    fn dev() -> Self {
        Env {
            stage: Stage::Dev,
            region: "eu-central",
            vm: VmSize::Micro,
            vms: 1,
            image: Image::UbuntuLts,
            pg: "16",
            ports: vec![443],
            ha: false,
            worker: false,
            edge: Edge::None,
        }
    }
    fn staging() -> Self {
        Env { stage: Stage::Staging, vm: VmSize::Small, ..Env::dev() }
    }
    fn prod() -> Self {
        Env { stage: Stage::Prod, vm: VmSize::Medium, vms: 3, ha: true, ..Env::dev() }
    }
}

fn build(e: &Env) -> Synthesized {
    let name = format!("shop-{}", e.stage.as_str());
    let stack = Stack::new(name, Placement::region(e.region), e.stage);
    stack.tag("konstacks:stage", e.stage.as_str());
    stack.tag("team", "web");
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = net.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let a = net.add("private-a", Subnet::new(vpc, "10.0.2.0/24").zone(0));
    let b = net.add("private-b", Subnet::new(vpc, "10.0.3.0/24").zone(1));
    let mut fw = Firewall::new(vpc);
    for p in &e.ports {
        fw = fw.allow(Ingress::tcp(*p).from_anywhere());
    }
    let web_fw = net.add("web-fw", fw);
    let db_fw = net.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(5432).from(web_fw)));
    let db = stack.scope("data").add(
        "postgres",
        Database::postgres(e.pg, DbSize::Small, [a, b])
            .firewall(db_fw)
            .high_availability(e.ha)
            .deletion_protection(e.ha)
            .backups(if e.ha { 14 } else { 7 }),
    );
    let app = stack.scope("app");
    let mut vms = Vec::new();
    for i in 1..=e.vms {
        let vm = app.add(
            &format!("web-{i}"),
            Vm::new(e.image.clone(), e.vm.clone(), public)
                .firewall(web_fw)
                .public_ip(true)
                .env("DATABASE_HOST", db.host())
                .env("DATABASE_PASSWORD", db.password()),
        );
        vms.push(vm);
    }
    if e.edge != Edge::None {
        let public_b = net.add("public-b", Subnet::new(vpc, "10.0.4.0/24").public().zone(1));
        let lb_fw = net.add(
            "lb-fw",
            Firewall::new(vpc).allow(Ingress::tcp(80).from_anywhere()).allow(Ingress::tcp(443).from_anywhere()),
        );
        let edge = stack.scope("edge");
        let (mut lb, mut zone) = (LoadBalancer::public([public, public_b]).firewall(lb_fw), None);
        match e.edge {
            Edge::Http(port) => lb = lb.http(port),
            _ => {
                let z = edge.add("zone", DnsZone::new("shop.example"));
                let cert = edge.add("certificate", Certificate::new(["www.shop.example"]).validate_in(z));
                lb = lb.http(80).https(443, cert.id());
                zone = Some(z);
            }
        }
        let lb = app.add("lb", lb.target_group(TargetGroup::new("web", 80).vms(vms)));
        if let Some(z) = zone {
            edge.add("record", DnsRecord::alias(z, "www", lb.dns_name()));
        }
    }
    if e.worker {
        app.add("worker", Vm::new(e.image.clone(), e.vm.clone(), public).firewall(web_fw));
    }
    stack.synth(&[&SimCloud::catalog()]).unwrap_or_else(|err| panic!("{err}"))
}

fn compare(envs: &[Env], knobs: &KnobSet) -> ParityReport {
    let stacks: Vec<Synthesized> = envs.iter().map(build).collect();
    let stages: Vec<(Stage, &Synthesized)> = envs.iter().map(|e| e.stage).zip(stacks.iter()).collect();
    parity(&stages, knobs, &[&SimCloud::catalog()])
}

fn violations(r: &ParityReport) -> Vec<(String, String)> {
    r.violations().map(|v| (v.path.clone(), v.field.clone())).collect()
}

#[test]
fn stages_that_differ_only_in_knobs_pass() {
    let r = compare(&[Env::dev(), Env::staging(), Env::prod()], &KnobSet::default());
    assert!(r.is_ok(), "{}", r.render());
    assert_eq!(r.stages, [Stage::Dev, Stage::Staging, Stage::Prod]);
    assert_eq!(r.stacks, ["shop-dev", "shop-staging", "shop-prod"]);
    let size = r.row("app/web-1", "size").unwrap();
    assert_eq!(size.verdict, ParityVerdict::Allowed);
    assert_eq!(size.values, [Some(json!("micro")), Some(json!("small")), Some(json!("medium"))]);
    assert_eq!(r.row("data/postgres", "high_availability").unwrap().verdict, ParityVerdict::Allowed);
    // Replicas 2 and 3 exist in prod only; web-1 everywhere.
    let web3 = r.row("app/web-3", PRESENT_FIELD).unwrap();
    assert_eq!(web3.values, [Some(json!(false)), Some(json!(false)), Some(json!(true))]);
    assert_eq!(web3.verdict, ParityVerdict::Allowed);
    // Names and tags carry the stack name and stage: normalised, so no rows.
    assert!(r.row("network/vpc", "name").is_none());
    assert!(r.row("network/vpc", "tags").is_none());
    insta::assert_snapshot!("knobs_only", r.render());
}

#[test]
fn engine_version_ports_and_image_are_drift() {
    let prod = Env { pg: "17", ports: vec![443, 8080], image: Image::Debian12, ..Env::prod() };
    let r = compare(&[Env::dev(), Env::staging(), prod], &KnobSet::default());
    assert!(!r.is_ok());
    assert_eq!(
        violations(&r),
        [
            ("network/web-fw".into(), "ingress".into()),
            ("data/postgres".into(), "version".into()),
            ("app/web-1".into(), "image".into()),
        ]
    );
    let v = r.row("data/postgres", "version").unwrap();
    assert_eq!(v.values, [Some(json!("16")), Some(json!("16")), Some(json!("17"))]);
    assert!(v.reason.contains(r#"prod: "17""#), "{}", v.reason);
    // The replicas only in prod are compared as present, their fields against nothing.
    assert!(r.row("app/web-2", "image").is_none());
    let table = r.render();
    assert!(table.contains("Parity FAILED: 3 difference(s)"), "{table}");
    insta::assert_snapshot!("drift", table);
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert!(rows.iter().any(|row| row["field"] == "version" && row["verdict"] == "violation"));
}

#[test]
fn regions_compare_by_jurisdiction() {
    let same_law = compare(&[Env::dev(), Env { region: "eu-west", ..Env::prod() }], &KnobSet::default());
    assert!(same_law.is_ok(), "{}", same_law.render());
    assert_eq!(same_law.row(STACK_ROW, "region").unwrap().verdict, ParityVerdict::Allowed);

    let abroad = compare(&[Env::dev(), Env { region: "us-east", ..Env::prod() }], &KnobSet::default());
    assert_eq!(violations(&abroad), [(STACK_ROW.to_string(), "jurisdiction".to_string())]);
    assert_eq!(abroad.row(STACK_ROW, "jurisdiction").unwrap().values, [Some(json!("eu")), Some(json!("us"))]);
}

#[test]
fn a_resource_in_one_stage_only_is_drift_unless_its_count_is_a_knob() {
    let envs = [Env::dev(), Env { worker: true, ..Env::prod() }];
    let r = compare(&envs, &KnobSet::default());
    assert_eq!(violations(&r), [("app/worker".to_string(), PRESENT_FIELD.to_string())]);
    assert!(r.row("app/worker", PRESENT_FIELD).unwrap().reason.contains("missing in dev"));

    let r = compare(&envs, &KnobSet::default().allow_count("app/work*"));
    assert!(r.is_ok(), "{}", r.render());

    // Without the numbered-replicas rule, web-2 and web-3 need a pattern too.
    let strict = KnobSet::default().numbered_replicas(false);
    let r = compare(&[Env::dev(), Env::prod()], &strict);
    assert_eq!(
        violations(&r),
        [("app/web-2".to_string(), PRESENT_FIELD.to_string()), ("app/web-3".to_string(), PRESENT_FIELD.to_string())]
    );
    assert!(compare(&[Env::dev(), Env::prod()], &strict.allow_count("app/web-*")).is_ok());
}

#[test]
fn without_knobs_every_difference_is_drift() {
    let r = compare(&[Env::dev(), Env::staging()], &KnobSet::none());
    assert_eq!(violations(&r), [("app/web-1".to_string(), "size".to_string())]);
    let r = compare(&[Env::dev(), Env::staging()], &KnobSet::none().allow(vm::field::SIZE));
    assert!(r.is_ok());
}

#[test]
fn identical_stages_report_no_rows() {
    let r = compare(&[Env::dev(), Env { stage: Stage::Staging, ..Env::dev() }], &KnobSet::none());
    assert!(r.is_ok());
    assert!(r.rows.is_empty(), "{:?}", r.rows);
    assert!(r.render().contains("No differences."));
}

fn https_everywhere_but(dev: Edge) -> [Env; 3] {
    [
        Env { edge: dev, ..Env::dev() },
        Env { edge: Edge::Https, ..Env::staging() },
        Env { edge: Edge::Https, ..Env::prod() },
    ]
}

#[test]
fn dev_without_a_certificate_on_the_load_balancer_s_own_name_passes_with_the_plain_http_knob() {
    let envs = https_everywhere_but(Edge::Http(80));
    // Without the knob: the certificate, zone and record missing in dev, and the listeners.
    let r = compare(&envs, &KnobSet::default());
    assert_eq!(
        violations(&r),
        [
            ("app/lb".to_string(), "listeners".to_string()),
            ("edge/zone".to_string(), PRESENT_FIELD.to_string()),
            ("edge/certificate".to_string(), PRESENT_FIELD.to_string()),
            ("edge/record".to_string(), PRESENT_FIELD.to_string()),
        ],
        "{}",
        r.render()
    );

    let knobs = KnobSet::default().knob(Knob::plain_http_in_dev());
    let r = compare(&envs, &knobs);
    assert!(r.is_ok(), "{}", r.render());
    let cert = r.row("edge/certificate", PRESENT_FIELD).unwrap();
    assert_eq!(cert.values, [Some(json!(false)), Some(json!(true)), Some(json!(true))]);
    assert_eq!(cert.verdict, ParityVerdict::Allowed);
    assert!(cert.reason.contains("plain-http-in-dev"), "{}", cert.reason);
    let listeners = r.row("app/lb", "listeners").unwrap();
    assert_eq!(listeners.verdict, ParityVerdict::Allowed);
    assert_eq!(listeners.values[0].as_ref().unwrap().as_array().unwrap().len(), 1, "dev: HTTP only");
    assert_eq!(listeners.values[2].as_ref().unwrap().as_array().unwrap().len(), 2, "prod: HTTP and HTTPS");
    // Everything else about the load balancer is the same in every stage.
    assert!(r.rows.iter().filter(|row| row.path == "app/lb").all(|row| row.field == "listeners"), "{}", r.render());
    assert_eq!(Knob::plain_http_in_dev().to_string(), "plain-http-in-dev");
    insta::assert_snapshot!("plain_http_in_dev", r.render());

    // Dev with HTTPS like the others needs no knob at all.
    assert!(compare(&https_everywhere_but(Edge::Https), &KnobSet::default()).is_ok());
}

#[test]
fn the_plain_http_knob_still_reports_a_load_balancer_missing_in_dev() {
    let knobs = KnobSet::default().plain_http_in_dev(true);
    let r = compare(&https_everywhere_but(Edge::None), &knobs);
    assert_eq!(
        violations(&r),
        [
            ("network/public-b".to_string(), PRESENT_FIELD.to_string()),
            ("network/lb-fw".to_string(), PRESENT_FIELD.to_string()),
            ("app/lb".to_string(), PRESENT_FIELD.to_string()),
        ],
        "{}",
        r.render()
    );
    assert!(r.row("app/lb", PRESENT_FIELD).unwrap().reason.contains("missing in dev"));
    // The certificate itself is still allowed to be missing in dev.
    assert_eq!(r.row("edge/certificate", PRESENT_FIELD).unwrap().verdict, ParityVerdict::Allowed);
}

#[test]
fn the_plain_http_knob_is_for_dev_only_and_for_https_only() {
    let knobs = KnobSet::none().plain_http_in_dev(true);
    let same = |stage: Stage, edge: Edge| Env { stage, edge, ..Env::dev() };
    // Staging without HTTPS while prod has it is drift.
    let r = compare(
        &[same(Stage::Dev, Edge::Https), same(Stage::Staging, Edge::Http(80)), same(Stage::Prod, Edge::Https)],
        &knobs,
    );
    assert_eq!(
        violations(&r),
        [
            ("edge/zone".to_string(), PRESENT_FIELD.to_string()),
            ("edge/certificate".to_string(), PRESENT_FIELD.to_string()),
            ("app/lb".to_string(), "listeners".to_string()),
            ("edge/record".to_string(), PRESENT_FIELD.to_string()),
        ],
        "{}",
        r.render()
    );
    // So is prod without HTTPS while dev has it.
    let r = compare(&[same(Stage::Dev, Edge::Https), same(Stage::Prod, Edge::Http(80))], &knobs);
    assert!(violations(&r).contains(&("edge/certificate".to_string(), PRESENT_FIELD.to_string())), "{}", r.render());
    assert!(violations(&r).contains(&("app/lb".to_string(), "listeners".to_string())), "{}", r.render());
    // A dev listener on another port is not "without HTTPS": it is another listener.
    let r = compare(&[same(Stage::Dev, Edge::Http(8080)), same(Stage::Prod, Edge::Https)], &knobs);
    assert_eq!(violations(&r), [("app/lb".to_string(), "listeners".to_string())], "{}", r.render());
    // Plain HTTP everywhere is no difference at all.
    let r = compare(&[same(Stage::Dev, Edge::Http(80)), same(Stage::Prod, Edge::Http(80))], &KnobSet::none());
    assert!(r.rows.is_empty(), "{}", r.render());
}
