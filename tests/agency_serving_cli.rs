//! `agency-sites` serving its clients' sites over HTTPS through one shared load balancer, on the
//! simulated cloud, through the real binary: one HTTPS listener carrying every client's
//! certificate, a host rule per client domain, each client VM a target of its own group only;
//! an empty re-plan, the bill splitting the load balancer across the clients, a domain added
//! to the third client as an in-place update of the load balancer, serving turned on for a
//! stack that had none (the one time the VMs are replaced), a destroy that leaves nothing, and
//! bad input refused before any call.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

#[path = "support/binary.rs"]
mod binary;

use binary::{cloud, Run};
use serde_json::Value;

fn run(dir: &std::path::Path, args: &[&str], code: i32) -> Run {
    binary::run_with(dir, args, code, |cmd| {
        cmd.args(["--template", "agency-sites", "--params", "p.json"])
            // Sealed state keeps the generated database password, as in production: a client VM
            // replaced while serving is turned on reads the same password, nothing is rotated.
            .env("KONSTACKS_SECRET_KEY", "agency-serving-test-sealing-key");
    })
}

fn params(dir: &std::path::Path, json: &str) {
    std::fs::write(dir.join("p.json"), json).unwrap();
}

fn of_kind<'a>(all: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    all.iter().filter(|r| r["id"].as_str().unwrap().starts_with(prefix)).collect()
}

/// The non-no-op changes of `plan --json`, as (path, action).
fn acting(dir: &std::path::Path, code: i32) -> Vec<(String, String)> {
    let plan: Value = serde_json::from_str(&run(dir, &["--json", "plan"], code).stdout).unwrap();
    let mut v: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| (c["path"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

const TWO_OF_THREE: &str = r#"{"clients": [
    {"name": "bakery", "database": true, "domain": "www.bakery.example", "zone": "bakery.example"},
    {"name": "dentist", "size": "small", "domain": "dentist.example", "zone": "dentist.example"},
    {"name": "law-firm", "size": "small"}
]}"#;

#[test]
fn three_clients_share_one_load_balancer_each_on_its_own_domain() {
    let d = tempfile::tempdir().unwrap();
    params(d.path(), TWO_OF_THREE);
    run(d.path(), &["apply", "--yes"], 0);

    let out: Value = serde_json::from_str(&run(d.path(), &["--json", "output"], 0).stdout).unwrap();
    assert!(out["url"].as_str().unwrap().starts_with("https://"), "{out}");
    assert_eq!(out["bakery-domain"], "www.bakery.example");
    assert_eq!(out["dentist-domain"], "dentist.example");
    assert_eq!(out["dentist-certificate-status"], "issued");
    assert!(out.as_object().unwrap().keys().all(|k| !k.ends_with("-ip")), "no VM has a public address: {out}");

    let all = cloud(d.path());
    let lbs = of_kind(&all, "lb-");
    assert_eq!(lbs.len(), 1, "one load balancer for every client");
    let lb = lbs[0];
    let hosts: Vec<&str> = lb["routes"].as_array().unwrap().iter().map(|r| r["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["www.bakery.example", "dentist.example"]);
    let https: Vec<&Value> = lb["listeners"].as_array().unwrap().iter().filter(|l| l["protocol"] == "https").collect();
    assert_eq!(https.len(), 1);
    assert_eq!(https[0]["port"], 443);
    let certs = of_kind(&all, "cert-");
    assert_eq!(certs.len(), 2);
    let mut carried: Vec<&str> =
        https[0]["certificate_ids"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    carried.sort_unstable();
    let mut issued: Vec<&str> = certs.iter().map(|c| c["id"].as_str().unwrap()).collect();
    issued.sort_unstable();
    assert_eq!(carried, issued, "the listener carries both certificates");
    assert!(certs.iter().all(|c| c["status"] == "issued"), "{certs:?}");
    let http = lb["listeners"].as_array().unwrap().iter().find(|l| l["protocol"] == "http").unwrap();
    assert_eq!(http["redirect_to_port"], 443);

    // Each client VM is in a private subnet without a public address, and a target of its own
    // client's group only.
    let vms = of_kind(&all, "vm-");
    assert_eq!(vms.len(), 3);
    let vm_client: BTreeMap<&str, &str> =
        vms.iter().map(|v| (v["id"].as_str().unwrap(), v["tags"]["client"].as_str().unwrap())).collect();
    assert!(vms.iter().all(|v| v["assign_public_ip"] == false && v["public_ip"] == ""), "{vms:?}");
    let groups = lb["target_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    for g in groups {
        let members: Vec<&str> =
            g["vm_ids"].as_array().unwrap().iter().map(|v| vm_client[v.as_str().unwrap()]).collect();
        assert_eq!(members, [g["name"].as_str().unwrap()], "{g}");
    }
    assert_eq!(lb["tags"]["konstacks:shared"], "client");
    assert!(lb["tags"].get("client").is_none(), "{lb}");

    // Converged: an empty plan.
    run(d.path(), &["plan"], 0);

    // The bill splits the load balancer (19.05 a month) evenly: 6.35 in each client's line.
    let bill: Value =
        serde_json::from_str(&run(d.path(), &["--json", "cost", "--bill", "client", "--markup", "20"], 0).stdout)
            .unwrap();
    let lines = bill["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3, "{bill}");
    assert!(lines.iter().all(|l| l["shared_usd"] == 6.35), "{bill}");
    assert!(bill.get("unassigned").is_none(), "nothing left unallocated: {bill}");
    let table = run(d.path(), &["cost", "--bill", "client"], 0).stdout;
    assert_eq!(table.matches("(incl. 6.35 shared)").count(), 3, "{table}");

    // A domain for the third client: its zone, certificate and record are created and the load
    // balancer is updated in place; no VM is touched.
    params(
        d.path(),
        &TWO_OF_THREE.replace(
            r#"{"name": "law-firm", "size": "small"}"#,
            r#"{"name": "law-firm", "size": "small", "domain": "law-firm.example", "zone": "law-firm.example"}"#,
        ),
    );
    let changes = acting(d.path(), 2);
    let expected: Vec<(String, String)> = [
        ("clients/law-firm/certificate", "create"),
        ("clients/law-firm/record", "create"),
        ("clients/law-firm/zone", "create"),
        ("edge/lb", "update"),
    ]
    .iter()
    .map(|(p, a)| (p.to_string(), a.to_string()))
    .collect();
    assert_eq!(changes, expected);
    run(d.path(), &["apply", "--yes"], 0);
    run(d.path(), &["plan"], 0);
    let all = cloud(d.path());
    let lb = of_kind(&all, "lb-")[0];
    assert_eq!(lb["routes"].as_array().unwrap().len(), 3);
    assert_eq!(lb["listeners"][1]["certificate_ids"].as_array().unwrap().len(), 3, "{lb}");
    let still: Vec<&str> = of_kind(&all, "vm-").iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(still, vm_client.keys().copied().collect::<Vec<_>>(), "the same VMs");

    // Destroy leaves nothing behind.
    run(d.path(), &["destroy", "--yes"], 0);
    assert!(cloud(d.path()).is_empty(), "{:?}", cloud(d.path()));
}

#[test]
fn turning_serving_on_moves_the_vms_into_private_subnets_once() {
    let d = tempfile::tempdir().unwrap();
    params(d.path(), r#"{"clients": [{"name": "bakery", "database": true}, {"name": "dentist"}]}"#);
    run(d.path(), &["apply", "--yes"], 0);
    let out: Value = serde_json::from_str(&run(d.path(), &["--json", "output"], 0).stdout).unwrap();
    assert!(out["bakery-ip"].as_str().is_some_and(|ip| !ip.is_empty()), "{out}");

    // A first domain: the shared edge is created, each VM is replaced into a private subnet
    // (a subnet cannot change in place), the public subnets go, the firewalls narrow in place.
    // The database and its subnets stay.
    params(
        d.path(),
        r#"{"clients": [{"name": "bakery", "database": true, "domain": "www.bakery.example"}, {"name": "dentist"}]}"#,
    );
    let changes = acting(d.path(), 2);
    let of =
        |action: &str| -> Vec<&str> { changes.iter().filter(|(_, a)| a == action).map(|(p, _)| p.as_str()).collect() };
    assert_eq!(of("replace"), ["clients/bakery/web", "clients/dentist/web"], "{changes:?}");
    assert_eq!(of("update"), ["clients/bakery/fw", "clients/dentist/fw"], "{changes:?}");
    assert_eq!(of("delete"), ["clients/bakery/public", "clients/dentist/public"], "{changes:?}");
    assert_eq!(
        of("create"),
        [
            "clients/bakery/certificate",
            "clients/bakery/private",
            "clients/dentist/private",
            "edge/fw",
            "edge/lb",
            "edge/public-a",
            "edge/public-b",
        ],
        "{changes:?}"
    );
    run(d.path(), &["apply", "--yes"], 0);
    run(d.path(), &["plan"], 0);
    let out: Value = serde_json::from_str(&run(d.path(), &["--json", "output"], 0).stdout).unwrap();
    assert_eq!(out["bakery-certificate-status"], "pending_validation");
    assert_eq!(out["bakery-certificate-validation-records"].as_array().map(Vec::len), Some(1), "{out}");
    let all = cloud(d.path());
    assert!(of_kind(&all, "vm-").iter().all(|v| v["assign_public_ip"] == false), "{all:?}");
    assert_eq!(of_kind(&all, "db-").len(), 1, "the database was kept");

    run(d.path(), &["destroy", "--yes"], 0);
    assert!(cloud(d.path()).is_empty(), "{:?}", cloud(d.path()));
}

#[test]
fn bad_serving_input_exits_3_with_the_paths_before_any_call() {
    let d = tempfile::tempdir().unwrap();
    params(
        d.path(),
        r#"{"clients": [
            {"name": "bakery", "domain": "shop.example.com", "zone": "example.org"},
            {"name": "dentist", "domain": "shop.example.com"}
        ]}"#,
    );
    let r = run(d.path(), &["apply", "--yes"], 3);
    assert!(
        r.stderr.contains("params.clients[0].zone") && r.stderr.contains("not inside the zone `example.org`"),
        "{r:?}"
    );
    assert!(r.stderr.contains("params.clients[1].domain") && r.stderr.contains("already client `bakery`'s"), "{r:?}");
    assert!(!d.path().join(".konstacks").exists(), "nothing was created");
}
