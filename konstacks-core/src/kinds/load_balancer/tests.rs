#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};

use super::check::{host_problem, path_problem, status_problem};
use super::*;
use crate::cost::CostModel;
use crate::error::Error;
use crate::kinds::{Firewall, Image, Ingress, Subnet, Vm, VmSize, Vpc};
use crate::model::placement::{Placement, Stage};
use crate::sim::SimCloud;
use crate::stack::Stack;
use crate::synth::Synthesized;

/// A VPC with two public subnets in two zones, a firewall and two VMs.
type Network = ([Ref<Subnet>; 2], Ref<Firewall>, [Ref<Vm>; 2]);

fn network(stack: &Stack) -> Network {
    network_in(stack).0
}

fn network_in(stack: &Stack) -> (Network, Ref<Vpc>) {
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let a = stack.add("a", Subnet::new(vpc, "10.0.1.0/24").public().zone(0));
    let b = stack.add("b", Subnet::new(vpc, "10.0.2.0/24").public().zone(1));
    let fw = stack.add("fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
    let web = stack.add("web", Vm::new(Image::UbuntuLts, VmSize::Small, a));
    let api = stack.add("api", Vm::new(Image::UbuntuLts, VmSize::Small, b));
    (([a, b], fw, [web, api]), vpc)
}

fn new_stack() -> Stack {
    Stack::new("shop", Placement::region("eu-central"), Stage::Prod)
}

fn synth(stack: &Stack) -> Result<Synthesized, crate::base::diag::Diagnostics> {
    match stack.synth(&[&SimCloud::catalog()]) {
        Ok(s) => Ok(s),
        Err(Error::Invalid(d)) => Err(d),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn field_json(s: &Synthesized, path: &str, name: &str) -> Value {
    let r = s.resources.iter().find(|r| r.path == path).unwrap();
    serde_json::to_value(r.fields.get(name).unwrap()).unwrap()
}

#[test]
fn host_names() {
    for ok in ["shop.example.com", "*.example.com", "a-b.c0.example", "localhost", "Shop.Example.COM"] {
        assert_eq!(host_problem(ok), None, "{ok}");
    }
    for (bad, why) in [
        ("", "empty"),
        ("*.com", "top-level"),
        ("shop..example.com", "empty"),
        ("-shop.example.com", "starts or ends"),
        ("sh op.example.com", "characters"),
        ("api.*.example.com", "characters"),
        ("shop.example.com.", "empty"),
    ] {
        let got = host_problem(bad).unwrap_or_default();
        assert!(got.contains(why), "{bad:?}: {got}");
    }
    assert!(host_problem(&format!("{}.com", "a".repeat(64))).is_some());
    assert!(host_problem(&["abc"; 80].join(".")).unwrap_or_default().contains("at most 253"));
}

#[test]
fn path_prefixes_and_status_codes() {
    assert_eq!(path_problem("/api"), None);
    assert_eq!(path_problem("/"), None);
    for bad in ["api", "/a b", "/api?x=1", "/api/*", "/a#b"] {
        assert!(path_problem(bad).is_some(), "{bad}");
    }
    assert!(path_problem(&format!("/{}", "a".repeat(200))).is_some());
    for ok in ["200", "200-399", "200,204", "200-299,302"] {
        assert_eq!(status_problem(ok), None, "{ok}");
    }
    for bad in ["", "ok", "100", "500", "399-200", "200-", "200,,204"] {
        assert!(status_problem(bad).is_some(), "{bad}");
    }
}

#[test]
fn urls_prefer_https_and_name_unusual_ports() {
    let l = |port, protocol| ListenerSpec { port, protocol, certificate_ids: Vec::new(), redirect_to_port: None };
    let (http, https) = (ListenerProtocol::Http, ListenerProtocol::Https);
    assert_eq!(url_of("lb.example", &[l(80, http), l(443, https)]), "https://lb.example");
    assert_eq!(url_of("lb.example", &[l(80, http)]), "http://lb.example");
    assert_eq!(url_of("lb.example", &[l(8080, http)]), "http://lb.example:8080");
    assert_eq!(url_of("lb.example", &[l(80, http), l(8443, https)]), "https://lb.example:8443");
    let passthrough = ListenerProtocol::TlsPassthrough;
    assert_eq!(url_of("lb.example", &[l(80, http), l(443, passthrough)]), "https://lb.example");
}

#[test]
fn a_valid_load_balancer_lowers_to_sorted_listeners_groups_and_prioritised_rules() {
    let stack = new_stack();
    let ([a, b], fw, [web, api]) = network(&stack);
    let cert = stack.add("cert-source", Vm::new(Image::UbuntuLts, VmSize::Small, a));
    stack.add(
        "lb",
        LoadBalancer::public([a, b])
            .firewall(fw)
            .https(443, cert.id())
            .http(80)
            .http_without_redirect(8080)
            .target_group(TargetGroup::new("web", 8080).vms([web, web]))
            .target_group(
                TargetGroup::new("api", 9000)
                    .vm(api)
                    .health_check(TargetHealthCheck::http("/health").thresholds(2, 5))
                    .deregistration_delay_s(10),
            )
            .route(Route::host("API.example.com").path_prefix("/v1").to("api"))
            .route(Route::any_host().path_prefix("/api").to("api"))
            .default_to("web")
            .tls_policy(TlsPolicy::Tls13),
    );
    let s = synth(&stack).unwrap();
    let listeners = field_json(&s, "lb", "listeners");
    let ports: Vec<u64> = listeners.as_array().unwrap().iter().map(|l| l["port"].as_u64().unwrap()).collect();
    assert_eq!(ports, [80, 443, 8080]);
    assert_eq!(listeners[0]["redirect_to_port"], json!(443), "HTTP redirects to HTTPS");
    assert_eq!(listeners[2]["redirect_to_port"], Value::Null, "unless told not to");
    assert_eq!(listeners[1]["certificate_ids"], json!(["(known after apply: cert-source.id)"]));
    let groups = field_json(&s, "lb", "target_groups");
    assert_eq!(groups[0]["name"], json!("api"));
    assert_eq!(groups[0]["health_check"]["path"], json!("/health"));
    assert_eq!(groups[0]["deregistration_delay_s"], json!(10));
    assert_eq!(groups[1]["vm_ids"].as_array().unwrap().len(), 1, "a VM given twice is one target");
    let routes = field_json(&s, "lb", "routes");
    assert_eq!(
        routes[0],
        json!({"priority": 1, "host": "api.example.com", "path_prefix": "/v1", "target_group": "api"})
    );
    assert_eq!(routes[1]["priority"], json!(2));
    assert_eq!(field_json(&s, "lb", "default_target_group"), json!("web"));
    assert_eq!(field_json(&s, "lb", "tls_policy"), json!("tls13"));
    let lb = s.resources.iter().find(|r| r.path == "lb").unwrap();
    for dep in ["a", "b", "fw", "web", "api", "cert-source"] {
        assert!(lb.depends_on.contains(&dep.to_string()), "{dep}: {:?}", lb.depends_on);
    }
}

#[test]
fn one_target_group_is_the_default_and_an_internal_one_may_use_one_zone() {
    let stack = new_stack();
    let ([a, _], _, [web, _]) = network(&stack);
    stack.add("lb", LoadBalancer::internal([a, a]).http(80).target_group(TargetGroup::new("app", 80).vm(web)));
    let s = synth(&stack).unwrap();
    assert_eq!(field_json(&s, "lb", "default_target_group"), json!("app"));
    assert_eq!(field_json(&s, "lb", "scheme"), json!("internal"));
    assert_eq!(field_json(&s, "lb", "subnet_ids").as_array().unwrap().len(), 1, "a subnet given twice is one");
    assert_eq!(field_json(&s, "lb", "listeners")[0]["redirect_to_port"], Value::Null, "no HTTPS: no redirect");
}

#[test]
fn validation_reports_every_problem_at_once() {
    let stack = new_stack();
    let (([a, _], _, [web, _]), vpc) = network_in(&stack);
    let other_vpc = stack.add("other-vpc", Vpc::new("10.1.0.0/16"));
    let far = stack.add("far", Subnet::new(other_vpc, "10.1.1.0/24"));
    let stranger = stack.add("stranger", Vm::new(Image::UbuntuLts, VmSize::Small, far));
    let a2 = stack.add("a2", Subnet::new(vpc, "10.0.3.0/24").zone(0));
    stack.add(
        "lb",
        LoadBalancer::public([a, a2])
            .http(80)
            .http(80)
            .http(0)
            .https_certificates(443, Vec::<CertificateId>::new())
            .target_group(TargetGroup::new("app", 8080).vm(web).vm(stranger))
            .target_group(TargetGroup::new("app", 8081))
            .target_group(
                TargetGroup::new("Bad_Name", 70000)
                    .health_check(
                        TargetHealthCheck::http("health").timing(3, 3).thresholds(1, 11).expected_status("ok"),
                    )
                    .deregistration_delay_s(5000),
            )
            .route(Route::host("shop.example.com").to("app"))
            .route(Route::host("SHOP.example.com").to("app"))
            .route(Route::host("*.com").path_prefix("api").to("nowhere"))
            .route(Route::any_host())
            .default_to("missing")
            .assume_gb_processed_per_month(f64::NAN),
    );
    stack.add("empty", LoadBalancer::public([]));
    stack.add(
        "undecided",
        LoadBalancer::internal([a])
            .http(80)
            .target_group(TargetGroup::new("one", 80))
            .target_group(TargetGroup::new("two", 80)),
    );
    let d = synth(&stack).unwrap_err();
    let got: Vec<(&str, &str)> = d.iter().map(|d| (d.path.as_str(), d.code)).collect();
    for want in [
        ("shop/lb", "listener-port-in-use"),
        ("shop/lb", "port-out-of-range"),
        ("shop/lb", "missing-certificate"),
        ("shop/lb", "duplicate-target-group"),
        ("shop/lb", "invalid-target-group-name"),
        ("shop/lb", "invalid-health-check"),
        ("shop/lb", "invalid-deregistration-delay"),
        ("shop/lb", "overlapping-rules"),
        ("shop/lb", "invalid-host"),
        ("shop/lb", "invalid-path"),
        ("shop/lb", "unknown-target-group"),
        ("shop/lb", "empty-rule"),
        ("shop/lb", "invalid-assumption"),
        ("shop/lb", "subnets-share-a-zone"),
        ("shop/lb", "public-lb-needs-two-zones"),
        ("shop/lb", "vpc-mismatch"),
        ("shop/empty", "missing-subnets"),
        ("shop/empty", "missing-listener"),
        ("shop/empty", "missing-target-group"),
        ("shop/undecided", "missing-default-target-group"),
    ] {
        assert!(got.contains(&want), "{want:?} missing from\n{d:?}");
    }
    let overlap = d.iter().find(|d| d.code == "overlapping-rules").unwrap();
    assert!(
        overlap.message.contains("rules #0 (host `shop.example.com`, any path) and #1 (host `SHOP.example.com`"),
        "{overlap:?}"
    );
    let in_use = d.iter().find(|d| d.code == "listener-port-in-use").unwrap();
    assert!(in_use.message.contains("port 80"), "{in_use:?}");
    let health: Vec<&str> = d.iter().filter(|d| d.code == "invalid-health-check").map(|d| d.message.as_str()).collect();
    assert_eq!(health.len(), 6, "interval, timeout, two thresholds, path and status: {health:#?}");
    let vpc = d.iter().find(|d| d.code == "vpc-mismatch").unwrap();
    assert!(vpc.message.contains("`stranger`"), "{vpc:?}");
}

#[test]
fn the_cost_line_shows_the_hours_and_the_assumed_traffic() {
    let stack = new_stack();
    let ([a, b], _, [web, _]) = network(&stack);
    stack.add(
        "lb",
        LoadBalancer::public([a, b])
            .http(80)
            .target_group(TargetGroup::new("app", 80).vm(web))
            .assume_gb_processed_per_month(250.0),
    );
    let s = synth(&stack).unwrap();
    let cat = SimCloud::catalog();
    let report = CostModel::new(&[&cat]).report(&s);
    let lb = report.resources.iter().find(|r| r.path == "lb").unwrap();
    assert_eq!(lb.monthly_usd, Some(18.25 + 2.0), "{lb:?}");
    let details: Vec<&str> = lb.lines.iter().map(|l| l.detail.as_str()).collect();
    assert!(details.iter().any(|d| d.contains("730 h")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("250 GB processed per month (assumed")), "{details:?}");
}

#[test]
fn a_named_security_policy_sets_the_tls_floor_and_unknown_names_are_refused() {
    let stack = new_stack();
    let ([a, b], _, [web, _]) = network(&stack);
    let https = |name: &str| {
        LoadBalancer::public([a, b])
            .https(443, web.id())
            .target_group(TargetGroup::new("app", 80).vm(web))
            .security_policy(name)
    };
    stack.add("modern", https("sim-modern-2026"));
    stack.add("compatible", https("sim-compatible-2026"));
    let s = synth(&stack).unwrap();
    assert_eq!(field_json(&s, "modern", "tls_policy"), json!("tls13"), "the policy's floor");
    assert_eq!(field_json(&s, "modern", "security_policy"), json!("sim-modern-2026"));
    assert_eq!(field_json(&s, "compatible", "tls_policy"), json!("tls12"));

    let stack = new_stack();
    let ([a, b], _, [web, _]) = network(&stack);
    let group = || TargetGroup::new("app", 80).vm(web);
    stack.add(
        "typo",
        LoadBalancer::public([a, b]).https(443, web.id()).target_group(group()).security_policy("sim-2026"),
    );
    stack.add("plain", LoadBalancer::public([a, b]).http(80).target_group(group()).security_policy("sim-modern-2026"));
    stack.add(
        "torn",
        LoadBalancer::public([a, b])
            .https(443, web.id())
            .target_group(group())
            .tls_policy(TlsPolicy::Tls13)
            .security_policy("sim-compatible-2026"),
    );
    let d = synth(&stack).unwrap_err();
    let got: Vec<(&str, &str)> = d.iter().map(|d| (d.path.as_str(), d.code)).collect();
    assert_eq!(
        got,
        [
            ("shop/torn", "security-policy-conflict"),
            ("shop/plain", "security-policy-without-https"),
            ("shop/typo", "unknown-security-policy"),
        ],
        "{d:?}"
    );
    let typo = d.iter().find(|d| d.code == "unknown-security-policy").unwrap();
    assert!(typo.message.contains("`sim-2026`"), "{typo:?}");
    assert!(typo.help.contains("sim-compatible-2026, sim-modern-2026"), "{typo:?}");
}

#[test]
fn tls_passthrough_needs_no_certificate_takes_the_redirect_and_is_refused_where_not_offered() {
    let stack = new_stack();
    let ([a, b], _, [web, _]) = network(&stack);
    let probe = TargetHealthCheck::https("/health");
    stack.add(
        "edge",
        LoadBalancer::public([a, b])
            .http(80)
            .tls_passthrough(443)
            .target_group(TargetGroup::new("app", 8443).vm(web).health_check(probe)),
    );
    let s = synth(&stack).unwrap();
    assert_eq!(
        field_json(&s, "edge", "listeners"),
        json!([
            {"port": 80, "protocol": "http", "certificate_ids": [], "redirect_to_port": 443},
            {"port": 443, "protocol": "tls_passthrough", "certificate_ids": [], "redirect_to_port": null},
        ])
    );

    // Plain HTTP probes on the port where the VMs speak TLS never succeed.
    let stack = new_stack();
    let ([a, b], _, [web, _]) = network(&stack);
    stack.add(
        "edge",
        LoadBalancer::public([a, b]).tls_passthrough(443).target_group(TargetGroup::new("app", 8443).vm(web)),
    );
    let d = synth(&stack).unwrap_err();
    let codes: Vec<&str> = d.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["passthrough-health-check"], "{d:?}");
    assert!(d.iter().any(|d| d.help.contains("TargetHealthCheck::tcp()")), "{d:?}");

    // A provider whose load balancers terminate TLS refuses it, before any cloud call.
    let mut cat = SimCloud::catalog();
    cat.load_balancers_pass_tls_through = false;
    let stack = new_stack();
    let ([a, b], _, [web, _]) = network(&stack);
    let tcp = TargetHealthCheck::tcp();
    stack.add(
        "edge",
        LoadBalancer::public([a, b])
            .tls_passthrough(443)
            .target_group(TargetGroup::new("app", 8443).vm(web).health_check(tcp)),
    );
    let Err(Error::Invalid(d)) = stack.synth(&[&cat]) else { panic!("a refusal expected") };
    let codes: Vec<&str> = d.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["tls-passthrough-unsupported"], "{d:?}");
    assert!(d.iter().any(|d| d.message.contains("port 443")), "{d:?}");
}
