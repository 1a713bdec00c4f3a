//! `agency-sites` behind one shared load balancer: the synthesized layout (one HTTPS listener
//! with every client's certificate, a target group per client holding that client's VM only, a
//! host rule per domain, VMs in private subnets reachable only from the load balancer's
//! firewall), the cost split of the shared load balancer across the clients, the parameter
//! problems with their paths, and the default layout left as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use konstacks_core::cost::{billing_by_tag, estimate, TAG_SHARED};
use konstacks_core::model::Stage;
use konstacks_core::policy::PolicySet;
use konstacks_core::sim::SimCloud;
use konstacks_core::validate::Synthesized;
use konstacks_templates::{find, packs, TemplateContext, TemplateError};
use serde_json::{json, Value};

/// Three clients: two with a domain in a zone of their own (bakery also with a database), one
/// without a domain.
fn three_clients() -> Value {
    json!({ "clients": [
        { "name": "bakery", "database": true, "domain": "www.bakery.example", "zone": "bakery.example" },
        { "name": "dentist", "size": "small", "domain": "dentist.example", "zone": "dentist.example" },
        { "name": "law-firm", "size": "small" },
    ] })
}

fn synth(params: Value) -> Synthesized {
    let cat = SimCloud::catalog();
    let stack = find("agency-sites").unwrap().build_json(&TemplateContext::new("agency", Stage::Prod), params).unwrap();
    stack.synth(&[&cat]).unwrap_or_else(|e| panic!("{e}"))
}

/// The synthesized stack as JSON, resources keyed by path.
fn resources(s: &Synthesized) -> serde_json::Map<String, Value> {
    let v = serde_json::to_value(s).unwrap();
    v["resources"].as_array().unwrap().iter().map(|r| (r["path"].as_str().unwrap().to_string(), r.clone())).collect()
}

fn problems(params: Value) -> Vec<(String, String)> {
    let cx = TemplateContext::new("agency", Stage::Dev);
    match find("agency-sites").unwrap().build_json(&cx, params) {
        Err(TemplateError::InvalidParams { problems, .. }) => {
            problems.into_iter().map(|p| (p.path, p.message)).collect()
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn one_load_balancer_serves_every_client_on_its_own_domain() {
    let s = synth(three_clients());
    let all = resources(&s);
    let lbs: Vec<&Value> = all.values().filter(|r| r["kind"] == "load_balancer").collect();
    assert_eq!(lbs.len(), 1);
    let lb = &lbs[0]["fields"];
    assert_eq!(lbs[0]["path"], "edge/lb");
    assert_eq!(lb["scheme"], "public");

    // HTTP redirects to the one HTTPS listener, which carries both clients' certificates.
    let listeners = lb["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), 2, "{listeners:?}");
    assert_eq!((listeners[0]["port"].clone(), listeners[0]["redirect_to_port"].clone()), (json!(80), json!(443)));
    assert_eq!(listeners[1]["port"], 443);
    assert_eq!(
        listeners[1]["certificate_ids"],
        json!([
            "(known after apply: clients/bakery/certificate.id)",
            "(known after apply: clients/dentist/certificate.id)"
        ])
    );

    // One group per client, each holding that client's VM only, health-checked on `/`.
    let groups = lb["target_groups"].as_array().unwrap();
    let members: Vec<(&str, Value)> =
        groups.iter().map(|g| (g["name"].as_str().unwrap(), g["vm_ids"].clone())).collect();
    assert_eq!(
        members,
        [
            ("bakery", json!(["(known after apply: clients/bakery/web.id)"])),
            ("dentist", json!(["(known after apply: clients/dentist/web.id)"])),
            ("law-firm", json!(["(known after apply: clients/law-firm/web.id)"])),
        ]
    );
    assert!(groups.iter().all(|g| g["port"] == 80 && g["health_check"]["path"] == "/"), "{groups:?}");

    // A host rule per domain; the client without a domain has none; the first client's group
    // takes the rest.
    let routes: Vec<(&str, &str)> = lb["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["host"].as_str().unwrap(), r["target_group"].as_str().unwrap()))
        .collect();
    assert_eq!(routes, [("www.bakery.example", "bakery"), ("dentist.example", "dentist")]);
    assert_eq!(lb["default_target_group"], "bakery");

    // The load balancer sits in two public subnets of its own, behind its own firewall.
    assert_eq!(all["edge/public-a"]["fields"]["public"], true);
    assert_eq!(all["edge/public-b"]["fields"]["zone"], 1);
    let edge_fw: Vec<Value> = all["edge/fw"]["fields"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["from_port"], r["peer"]["cidr"]]))
        .collect();
    assert_eq!(edge_fw, [json!([80, "0.0.0.0/0"]), json!([443, "0.0.0.0/0"])]);

    for client in ["bakery", "dentist", "law-firm"] {
        let vm = &all[&format!("clients/{client}/web")]["fields"];
        assert_eq!(vm["assign_public_ip"], false, "{client}");
        assert_eq!(vm["subnet_id"], format!("(known after apply: clients/{client}/private.id)"));
        let subnet = &all[&format!("clients/{client}/private")]["fields"];
        assert_eq!(subnet["public"], false, "{client}");
        // Web traffic from the load balancer's firewall only: nothing from anywhere.
        let fw = &all[&format!("clients/{client}/fw")]["fields"]["ingress"];
        assert_eq!(
            fw,
            &json!([{ "from_port": 80, "to_port": 80, "protocol": "tcp",
                      "peer": { "firewall": "(known after apply: edge/fw.id)" } }]),
            "{client}"
        );
        assert!(!all.contains_key(&format!("clients/{client}/public")), "{client}");
    }
    // The database still admits its own client's firewall only.
    assert_eq!(
        all["clients/bakery/db-fw"]["fields"]["ingress"][0]["peer"]["firewall"],
        "(known after apply: clients/bakery/fw.id)"
    );

    // Certificates validated in the clients' zones, records pointing at the load balancer.
    assert_eq!(
        all["clients/dentist/certificate"]["fields"]["validation_zone_id"],
        "(known after apply: clients/dentist/zone.id)"
    );
    assert_eq!(all["clients/bakery/record"]["fields"]["fqdn"], "www.bakery.example");
    assert_eq!(all["clients/bakery/record"]["fields"]["values"], json!(["(known after apply: edge/lb.dns_name)"]));
    assert!(!all.contains_key("clients/law-firm/certificate"));

    // Every client resource carries its client; the shared edge carries none, only the
    // shared marker.
    for (path, r) in &all {
        let tags = &r["fields"]["tags"];
        if let Some(client) = path.strip_prefix("clients/").and_then(|p| p.split('/').next()) {
            assert_eq!(tags["client"], client, "{path}");
        } else if path.starts_with("edge/") {
            assert!(tags.get("client").is_none(), "{path}");
            assert_eq!(tags[TAG_SHARED], "client", "{path}");
        }
    }

    let exports: Vec<&str> = s.exports.iter().map(|e| e.name.as_str()).collect();
    for e in ["url", "lb-dns-name", "bakery-domain", "dentist-domain", "bakery-certificate-status"] {
        assert!(exports.contains(&e), "{e}: {exports:?}");
    }
    assert!(!exports.iter().any(|e| e.ends_with("-ip") || e.ends_with("-validation-records")), "{exports:?}");
    insta::assert_yaml_snapshot!("agency_serving_synth", s);
}

#[test]
fn the_serving_layout_passes_the_baseline_pack() {
    let cat = SimCloud::catalog();
    let s = synth(three_clients());
    let report = PolicySet::new().pack(packs::baseline::pack()).check(&s, &[&cat]);
    assert!(!report.has_errors(), "{report}");
    assert_eq!(
        report.rule("baseline/load-balancer-https").map(|r| r.status),
        Some(konstacks_core::policy::RuleStatus::Pass)
    );
}

#[test]
fn without_its_zone_a_client_gets_the_validation_records_to_create() {
    let s = synth(json!({ "clients": [{ "name": "bakery", "domain": "www.bakery.example" }] }));
    let all = resources(&s);
    assert_eq!(all["clients/bakery/certificate"]["fields"]["validation_zone_id"], Value::Null);
    assert!(!all.contains_key("clients/bakery/zone") && !all.contains_key("clients/bakery/record"));
    let exports: Vec<&str> = s.exports.iter().map(|e| e.name.as_str()).collect();
    assert!(exports.contains(&"bakery-certificate-validation-records"), "{exports:?}");
    assert!(!exports.contains(&"bakery-domain"), "{exports:?}");
}

#[test]
fn load_balancer_without_domains_serves_http_to_the_first_client() {
    let s = synth(json!({ "load_balancer": true, "clients": [{ "name": "bakery" }, { "name": "dentist" }] }));
    let all = resources(&s);
    let lb = &all["edge/lb"]["fields"];
    let listeners = lb["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), 1);
    assert_eq!(listeners[0]["protocol"], "http");
    assert_eq!(lb["routes"], json!([]));
    assert_eq!(lb["default_target_group"], "bakery");
    assert_eq!(lb["target_groups"].as_array().unwrap().len(), 2);
    assert!(all.values().all(|r| r["kind"] != "certificate"));
}

#[test]
fn the_default_layout_has_no_load_balancer() {
    let s = synth(json!({ "clients": [{ "name": "bakery" }, { "name": "dentist" }] }));
    let all = resources(&s);
    assert!(all.values().all(|r| r["kind"] != "load_balancer"));
    assert!(!all.keys().any(|p| p.starts_with("edge/") || p.ends_with("/private")));
    assert_eq!(all["clients/dentist/web"]["fields"]["assign_public_ip"], true);
    let exports: Vec<&str> = s.exports.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(exports, ["bakery-ip", "dentist-ip"]);
}

#[test]
fn the_shared_load_balancer_is_billed_a_third_to_each_of_three_clients() {
    let cat = SimCloud::catalog();
    let report = estimate(&synth(three_clients()), &[&cat]);
    let lb = report.resource("edge/lb").unwrap().monthly_usd.unwrap();
    assert_eq!(lb, 19.05);
    let bill = billing_by_tag(std::slice::from_ref(&report), "client", 0.0);
    assert_eq!(bill.unassigned, None, "the load balancer is not left unallocated: {bill}");
    for client in ["bakery", "dentist", "law-firm"] {
        let line = bill.line(client).unwrap();
        assert_eq!(line.shared_usd, 6.35, "{client}");
        assert!(line.shared.contains(&"agency/edge/lb".to_string()), "{client}: {line:?}");
    }
    // dentist: small VM 15.00 + zone 0.50 + 1 M queries 0.40 + a third of the load balancer.
    assert_eq!(bill.line("dentist").unwrap().cost_usd, 22.25);
    assert_eq!(bill.cost_usd, report.total_usd);
}

#[test]
fn serving_parameters_are_checked_with_their_paths() {
    let found = problems(json!({ "clients": [
        { "name": "a", "domain": "shop.example.com", "zone": "example.org" },
        { "name": "b", "domain": "shop.example.com" },
        { "name": "c", "zone": "c.example" },
        { "name": "d", "domain": "Shop.Example.com" },
        { "name": "e", "domain": "localhost" },
        { "name": "f-", "domain": "f.example", "zone": "f.example" },
        { "name": "g", "domain": "www.f.example", "zone": "f.example" },
        { "name": "h", "domain": "a b" },
    ] }));
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "params.clients[0].zone",
            "params.clients[1].domain",
            "params.clients[2].zone",
            "params.clients[3].domain",
            "params.clients[4].domain",
            "params.clients[5].name",
            "params.clients[6].zone",
            "params.clients[7].domain",
        ],
        "{found:#?}"
    );
    let message = |i: usize| found[i].1.as_str();
    assert!(message(0).contains("not inside the zone `example.org`"), "{}", message(0));
    assert!(message(1).contains("already client `a`'s"), "{}", message(1));
    assert!(message(2).contains("without a domain"), "{}", message(2));
    assert!(message(3).contains("lower case (`shop.example.com`)"), "{}", message(3));
    assert!(message(4).contains("at least 2"), "{}", message(4));
    assert!(message(5).contains("target group"), "{}", message(5));
    assert!(message(6).contains("already client `f-`'s"), "{}", message(6));
    assert!(message(7).contains("not a domain name"), "{}", message(7));

    // A name ending in '-' is fine while nothing is served.
    let cx = TemplateContext::new("agency", Stage::Dev);
    assert!(find("agency-sites").unwrap().build_json(&cx, json!({ "clients": [{ "name": "f-" }] })).is_ok());
}
