//! `lamp-site` serving traffic on the simulated cloud, through the real binary: HTTPS for a
//! domain on a public load balancer (certificate validated in the stack's own zone, the domain's
//! record pointing at the load balancer), the PHP VM in a private subnet without a public IP,
//! Apache reachable from the load balancer only; an empty re-plan and a destroy that leaves
//! nothing; bad serving parameters refused with their path before any call. And `gdpr-saas`
//! serving with an uploads bucket passes `konstacks check` against its `gdpr` pack.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/binary.rs"]
mod binary;

use binary::{cloud, run};
use serde_json::Value;

fn of_kind<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|r| r["kind"] == kind).collect()
}

fn by_id<'a>(all: &'a [Value], id: &Value) -> &'a Value {
    all.iter().find(|r| r["id"] == *id).unwrap_or_else(|| panic!("no resource {id}"))
}

const LAMP: [&str; 4] = ["--template", "lamp-site", "--params", "p.json"];

#[test]
fn lamp_site_serves_https_on_its_domain_behind_a_load_balancer() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("p.json"), r#"{"domain": "www.example.com", "zone": "example.com"}"#).unwrap();

    let r = run(d.path(), &[&LAMP[..], &["apply", "--yes"]].concat(), 0);
    for created in ["+ lb created", "edge/zone created", "edge/certificate created", "edge/record created"] {
        assert!(r.stderr.contains(created), "{created}\n{r:?}");
    }
    let out: Value =
        serde_json::from_str(&run(d.path(), &[&LAMP[..], &["--json", "output"]].concat(), 0).stdout).unwrap();
    assert!(out["url"].as_str().unwrap().starts_with("https://"), "{out}");
    assert_eq!(out["domain"], "www.example.com");
    assert_eq!(out["certificate-status"], "issued");
    assert!(out.get("site-ip").is_none(), "the VM behind the load balancer has no public address: {out}");

    let all = cloud(d.path());
    let vms = of_kind(&all, "vm");
    assert_eq!(vms.len(), 1);
    let vm = vms[0];
    assert_eq!(vm["assign_public_ip"], false);
    assert_eq!(vm["public_ip"], "");
    let vm_subnet = by_id(&all, &vm["subnet_id"]);
    assert_eq!((vm_subnet["public"].clone(), vm_subnet["cidr"].clone()), (false.into(), "10.20.21.0/24".into()));

    // The load balancer serves the domain from two public subnets in two zones, its one target
    // (the VM, on Apache's port 80) healthy.
    let lbs = of_kind(&all, "load_balancer");
    assert_eq!(lbs.len(), 1);
    let lb = lbs[0];
    let subnets: Vec<&Value> = lb["subnet_ids"].as_array().unwrap().iter().map(|id| by_id(&all, id)).collect();
    assert!(subnets.iter().all(|s| s["public"] == true), "{subnets:?}");
    assert_ne!(subnets[0]["zone"], subnets[1]["zone"], "{subnets:?}");
    assert_eq!(lb["target_groups"][0]["port"], 80);
    assert_eq!(lb["target_groups"][0]["vm_ids"], serde_json::json!([vm["id"]]));
    assert_eq!(lb["targets"], serde_json::json!([{ "group": "web", "state": "healthy", "vm_id": vm["id"] }]));
    let https = lb["listeners"].as_array().unwrap().iter().find(|l| l["protocol"] == "https").unwrap();
    assert_eq!(https["port"], 443);
    let http = lb["listeners"].as_array().unwrap().iter().find(|l| l["protocol"] == "http").unwrap();
    assert_eq!(http["redirect_to_port"], 443, "HTTP is redirected to HTTPS");
    let record = of_kind(&all, "dns_record");
    assert_eq!(record[0]["values"], serde_json::json!([lb["dns_name"]]), "{record:?}");

    // Apache's firewall: port 80 from the load balancer's firewall, nothing from anywhere.
    let web_fw = by_id(&all, &vm["firewall_ids"][0]);
    assert_eq!(
        web_fw["ingress"],
        serde_json::json!([{ "from_port": 80, "to_port": 80, "protocol": "tcp", "peer": { "firewall": lb["firewall_ids"][0] } }])
    );

    // Converged: an empty plan.
    run(d.path(), &[&LAMP[..], &["plan"]].concat(), 0);

    // Destroy leaves nothing behind.
    run(d.path(), &[&LAMP[..], &["destroy", "--yes"]].concat(), 0);
    assert!(cloud(d.path()).is_empty(), "{:?}", cloud(d.path()));
}

#[test]
fn lamp_site_with_a_load_balancer_only_serves_http_on_its_own_name() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("p.json"), r#"{"load_balancer": true, "health_path": "/index.php"}"#).unwrap();
    run(d.path(), &[&LAMP[..], &["apply", "--yes"]].concat(), 0);
    let out: Value =
        serde_json::from_str(&run(d.path(), &[&LAMP[..], &["--json", "output"]].concat(), 0).stdout).unwrap();
    assert!(out["url"].as_str().unwrap().starts_with("http://"), "{out}");
    assert_eq!(out["url"].as_str().unwrap(), format!("http://{}", out["lb-dns-name"].as_str().unwrap()));
    let all = cloud(d.path());
    assert!(of_kind(&all, "certificate").is_empty() && of_kind(&all, "dns_zone").is_empty());
    let lb = of_kind(&all, "load_balancer")[0];
    assert_eq!(lb["target_groups"][0]["health_check"]["path"], "/index.php");
    assert_eq!(of_kind(&all, "vm")[0]["assign_public_ip"], false);
    run(d.path(), &[&LAMP[..], &["plan"]].concat(), 0);
    run(d.path(), &[&LAMP[..], &["destroy", "--yes"]].concat(), 0);
    assert!(cloud(d.path()).is_empty());
}

#[test]
fn lamp_site_serving_parameters_are_checked_before_any_call() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.json"),
        r#"{"domain": "www..example.com", "zone": "example.org", "health_path": "index.php"}"#,
    )
    .unwrap();
    let r = run(d.path(), &[&LAMP[..], &["apply", "--yes"]].concat(), 3);
    for path in ["params.domain", "params.zone", "params.health_path"] {
        assert!(r.stderr.contains(&format!("{path}:")), "{path}\n{r:?}");
    }
    assert!(r.stderr.contains("not inside the zone"), "{r:?}");
    std::fs::write(d.path().join("p.json"), r#"{"zone": "example.com"}"#).unwrap();
    let r = run(d.path(), &[&LAMP[..], &["validate"]].concat(), 3);
    assert!(r.stderr.contains("params.zone: a zone without a domain serves nothing"), "{r:?}");
    assert!(!d.path().join(".konstacks").exists(), "nothing was created");
}

#[test]
fn gdpr_saas_serving_with_an_uploads_bucket_passes_its_gdpr_check() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("g.json"),
        r#"{"app": {"app_image": "ghcr.io/acme/crm:2", "domain": "crm.example.eu", "zone": "example.eu",
            "uploads_bucket": true}, "dpo_contact": "dpo@example.eu"}"#,
    )
    .unwrap();
    let args = ["--template", "gdpr-saas", "--params", "g.json", "--stage", "prod"];
    let r = run(d.path(), &[&args[..], &["check"]].concat(), 0);
    assert!(r.stdout.contains("packs: gdpr") && r.stdout.contains("All rules passed."), "{r:?}");
    let report: Value =
        serde_json::from_str(&run(d.path(), &[&args[..], &["--json", "check"]].concat(), 0).stdout).unwrap();
    assert_eq!(report["counts"]["errors"], 0, "{report}");
    let status =
        |id: &str| report["rules"].as_array().unwrap().iter().find(|r| r["rule_id"] == id).unwrap()["status"].clone();
    for id in ["gdpr/eu-residency", "gdpr/bucket-encrypted", "gdpr/bucket-versioned", "baseline/load-balancer-https"] {
        assert_eq!(status(id), "pass", "{id}: {report}");
    }
    assert!(!d.path().join(".konstacks/sim-cloud.json").exists(), "check calls no cloud");
}
