//! Environment parity of the templates that serve traffic (`web-app`, `gdpr-saas`,
//! `lamp-site`) with their own knobs: dev may run on the load balancer's own name over plain
//! HTTP (no certificate, zone or record) while staging and prod serve their domain over HTTPS;
//! a dev without the load balancer is still drift, and so is a staging without HTTPS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use konstacks_core::model::Stage;
use konstacks_core::parity::{parity, Knob, ParityReport, ParityVerdict, PRESENT_FIELD};
use konstacks_core::sim::SimCloud;
use konstacks_core::validate::Synthesized;
use konstacks_templates::{find, knobs, TemplateContext};
use serde_json::{json, Value};

/// The template's parameters with `serving` added (under `app` for gdpr-saas).
fn params(template: &str, serving: Value) -> Value {
    let mut p = match template {
        "lamp-site" => json!({ "site_repo": "https://git.example/site.git" }),
        _ => json!({ "app_image": "ghcr.io/acme/shop:1.4.2" }),
    };
    for (k, v) in serving.as_object().unwrap() {
        p[k] = v.clone();
    }
    if template == "gdpr-saas" {
        json!({ "app": p })
    } else {
        p
    }
}

/// The template at dev, staging and prod, each stage with its own serving parameters.
fn report(template: &str, serving: impl Fn(Stage) -> Value) -> ParityReport {
    let cat = SimCloud::catalog();
    let t = find(template).unwrap();
    let built: Vec<(Stage, Synthesized)> = [Stage::Dev, Stage::Staging, Stage::Prod]
        .into_iter()
        .map(|stage| {
            let name = format!("shop-{}", stage.as_str());
            let stack = t.build_json(&TemplateContext::new(&name, stage), params(template, serving(stage))).unwrap();
            (stage, stack.synth(&[&cat]).unwrap_or_else(|e| panic!("{template} {name}: {e}")))
        })
        .collect();
    let refs: Vec<(Stage, &Synthesized)> = built.iter().map(|(s, x)| (*s, x)).collect();
    parity(&refs, &knobs(t.as_ref()), &[&cat])
}

fn https() -> Value {
    json!({ "domain": "shop.example.com", "zone": "example.com" })
}

fn lb_path(template: &str) -> &'static str {
    if template == "lamp-site" {
        "lb"
    } else {
        "app/lb"
    }
}

const SERVING: [&str; 3] = ["web-app", "gdpr-saas", "lamp-site"];

#[test]
fn the_serving_templates_let_dev_run_without_a_certificate() {
    for t in SERVING {
        assert!(find(t).unwrap().parity_knobs().contains(&Knob::plain_http_in_dev()), "{t}");
        let r = report(t, |stage| if stage == Stage::Dev { json!({ "load_balancer": true }) } else { https() });
        assert!(r.is_ok(), "{t}: {}", r.render());
        for path in ["edge/zone", "edge/certificate", "edge/record"] {
            let row = r.row(path, PRESENT_FIELD).unwrap_or_else(|| panic!("{t}: no row for {path}"));
            assert_eq!(row.values, [Some(json!(false)), Some(json!(true)), Some(json!(true))], "{t} {path}");
            assert_eq!(row.verdict, ParityVerdict::Allowed, "{t} {path}");
        }
        assert_eq!(r.row(lb_path(t), "listeners").unwrap().verdict, ParityVerdict::Allowed, "{t}");
        // Prod's second app VM is one more target of the same group, not a difference.
        assert!(r.row(lb_path(t), "target_groups").is_none(), "{t}: {}", r.render());
    }
}

#[test]
fn a_dev_without_the_load_balancer_is_still_drift() {
    for t in SERVING {
        let r = report(t, |stage| if stage == Stage::Dev { json!({}) } else { https() });
        assert!(!r.is_ok(), "{t}");
        let lb = r.row(lb_path(t), PRESENT_FIELD).unwrap();
        assert_eq!(lb.verdict, ParityVerdict::Violation, "{t}");
        assert!(lb.reason.contains("missing in dev"), "{t}: {}", lb.reason);
        // The certificate's absence is not what is reported.
        assert!(r.violations().all(|v| !v.path.starts_with("edge/")), "{t}: {}", r.render());
    }
}

#[test]
fn a_staging_without_https_is_drift() {
    for t in SERVING {
        let r = report(t, |stage| if stage == Stage::Prod { https() } else { json!({ "load_balancer": true }) });
        let bad: Vec<(&str, &str)> = r.violations().map(|v| (v.path.as_str(), v.field.as_str())).collect();
        assert!(bad.contains(&("edge/certificate", PRESENT_FIELD)), "{t}: {}", r.render());
        assert!(bad.contains(&(lb_path(t), "listeners")), "{t}: {}", r.render());
    }
}

#[test]
fn serving_in_every_stage_passes_and_plain_defaults_are_untouched() {
    for t in SERVING {
        assert!(report(t, |_| https()).is_ok(), "{t}");
        assert!(report(t, |_| json!({ "load_balancer": true })).is_ok(), "{t}");
        let r = report(t, |_| json!({}));
        assert!(r.is_ok(), "{t}: {}", r.render());
        assert!(r.rows.iter().all(|row| !row.reason.contains("plain-http-in-dev")), "{t}");
    }
}
