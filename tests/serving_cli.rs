//! `web-app` serving traffic on the simulated cloud, through the real binary: a public load
//! balancer with HTTPS for a domain (a managed certificate validated in the stack's own zone, the
//! domain's record pointing at the load balancer), app VMs in private subnets without public IPs,
//! an uploads bucket; an empty re-plan, an in-place change, and a destroy that leaves nothing.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/binary.rs"]
mod binary;

use binary::{cloud, run};
use konstacks::core::sim::secret_fingerprint;
use serde_json::Value;

fn of_kind<'a>(all: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    all.iter().filter(|r| r["id"].as_str().unwrap().starts_with(prefix)).collect()
}

#[test]
fn web_app_serves_https_on_its_domain_behind_a_load_balancer() {
    let d = tempfile::tempdir().unwrap();
    let params = r#"{"domain": "shop.example.com", "zone": "example.com", "uploads_bucket": true, "vm_count": 2}"#;
    std::fs::write(d.path().join("p.json"), params).unwrap();
    let p = ["--params", "p.json"];

    let r = run(d.path(), &[&p[..], &["apply", "--yes"]].concat(), 0);
    for created in ["app/lb created", "edge/certificate created", "edge/record created", "data/uploads created"] {
        assert!(r.stdout.contains(created) || r.stderr.contains(created), "{created}\n{r:?}");
    }
    let out: Value = serde_json::from_str(&run(d.path(), &[&p[..], &["--json", "output"]].concat(), 0).stdout).unwrap();
    assert_eq!(out["url"], "https://shop.example.com", "{out}");
    assert!(out["lb-dns-name"].as_str().unwrap().contains('.'), "the load balancer's own name: {out}");
    assert_eq!(out["domain"], "shop.example.com");
    assert_eq!(out["certificate-status"], "issued");
    assert!(out.get("web-1-ip").is_none(), "VMs behind the load balancer have no public address: {out}");

    let all = cloud(d.path());
    let vms = of_kind(&all, "vm-");
    assert_eq!(vms.len(), 2);
    assert!(
        vms.iter().all(|v| v["assign_public_ip"] == false && v["public_ip"].as_str().unwrap_or_default().is_empty()),
        "{vms:?}"
    );
    let lbs = of_kind(&all, "lb-");
    assert_eq!(lbs.len(), 1);
    let lb = lbs[0].to_string();
    assert!(vms.iter().all(|v| lb.contains(v["id"].as_str().unwrap())), "every VM is a target: {lb}");
    let record = of_kind(&all, "rec-");
    assert!(record[0].to_string().contains(lbs[0]["dns_name"].as_str().unwrap()), "{record:?}");

    // Converged: an empty plan.
    run(d.path(), &[&p[..], &["plan"]].concat(), 0);

    // A health-check path change is an in-place update of the load balancer only.
    let changed = params.replace('}', r#", "health_path": "/healthz"}"#);
    std::fs::write(d.path().join("p.json"), changed).unwrap();
    let plan: Value = serde_json::from_str(&run(d.path(), &[&p[..], &["--json", "plan"]].concat(), 2).stdout).unwrap();
    let acting: Vec<(&str, &str)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| (c["path"].as_str().unwrap(), c["action"].as_str().unwrap()))
        .collect();
    assert_eq!(acting, [("app/lb", "update")], "{plan}");
    run(d.path(), &[&p[..], &["apply", "--yes"]].concat(), 0);
    run(d.path(), &[&p[..], &["plan"]].concat(), 0);

    // Destroy leaves nothing behind.
    run(d.path(), &[&p[..], &["destroy", "--yes"]].concat(), 0);
    assert!(cloud(d.path()).is_empty(), "{:?}", cloud(d.path()));
}

/// The issue's "done": `apply --template web-app --params <file with a domain> --yes` prints the
/// HTTPS URL, and the app VMs get the database's real admin user and the app's version.
#[test]
fn apply_prints_the_https_url_and_the_app_gets_its_database_user_and_version() {
    let d = tempfile::tempdir().unwrap();
    let params = r#"{"domain": "shop.example.com", "zone": "example.com", "app_image": "ghcr.io/acme/shop:1.4.2",
        "app_version": "1.4.2-build.7", "pgvector": true}"#;
    std::fs::write(d.path().join("p.json"), params).unwrap();
    let p = ["--template", "web-app", "--params", "p.json"];
    let r = run(d.path(), &[&p[..], &["apply", "--yes"]].concat(), 0);
    let url_line = r.stdout.lines().find(|l| l.trim_start().starts_with("url ")).unwrap_or_default();
    assert!(url_line.contains("https://shop.example.com"), "{r:?}");

    let sim: Value =
        serde_json::from_slice(&std::fs::read(d.path().join(".konstacks/sim-cloud.json")).unwrap()).unwrap();
    let vms = of_kind(sim["resources"].as_array().unwrap(), "vm-");
    assert!(!vms.is_empty());
    for vm in vms {
        // Compared by fingerprint: the simulated cloud keeps no environment value itself.
        let prints = &sim["secret_prints"][vm["id"].as_str().unwrap()];
        assert_eq!(prints["env:DATABASE_USER"], secret_fingerprint("konstacks"), "the sim's admin user: {prints}");
        assert_eq!(prints["env:APP_VERSION"], secret_fingerprint("1.4.2-build.7"), "{prints}");
        assert_eq!(prints["env:PORT"], secret_fingerprint("8080"), "{prints}");
    }
    run(d.path(), &[&p[..], &["plan"]].concat(), 0);
}

#[test]
fn without_its_zone_the_outputs_name_the_validation_records_to_create() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("p.json"), r#"{"domain": "shop.example.com"}"#).unwrap();
    run(d.path(), &["--params", "p.json", "apply", "--yes"], 0);
    let out: Value =
        serde_json::from_str(&run(d.path(), &["--params", "p.json", "--json", "output"], 0).stdout).unwrap();
    assert_eq!(out["certificate-status"], "pending_validation");
    let records = out["certificate-validation-records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{out}");
    assert!(records[0]["name"].as_str().unwrap().ends_with(".shop.example.com"), "{out}");
    assert_eq!(records[0]["type"], "CNAME");
}

#[test]
fn serving_parameters_are_checked_before_any_call() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.json"),
        r#"{"domain": "shop.example.com", "zone": "example.org", "health_path": "healthz"}"#,
    )
    .unwrap();
    let r = run(d.path(), &["--params", "p.json", "apply", "--yes"], 3);
    assert!(r.stderr.contains("params.zone") && r.stderr.contains("not inside the zone"), "{r:?}");
    assert!(r.stderr.contains("params.health_path"), "{r:?}");
    assert!(!d.path().join(".konstacks").exists(), "nothing was created");
}
