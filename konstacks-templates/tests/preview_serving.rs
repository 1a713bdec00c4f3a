//! Templates building a preview environment (`TemplateContext::preview`): a site with a zone is
//! served on `<slug>.<zone>` in the zone it uses without owning it; a site without a zone loses
//! its domain and keeps its load balancer. `web-app` is covered next to its code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use konstacks_core::model::Stage;
use konstacks_core::sim::SimCloud;
use konstacks_templates::{find, TemplateContext};
use serde_json::{json, Map, Value};

/// The preview `feature-x` of `template` with `params`, resources keyed by path.
fn preview(template: &str, params: Value) -> Map<String, Value> {
    let cx = TemplateContext::new("site-feature-x", Stage::Dev).preview("feature-x");
    let stack = find(template).unwrap().build_json(&cx, params).unwrap();
    let s = serde_json::to_value(stack.synth(&[&SimCloud::catalog()]).unwrap_or_else(|e| panic!("{e}"))).unwrap();
    s["resources"].as_array().unwrap().iter().map(|r| (r["path"].as_str().unwrap().to_string(), r.clone())).collect()
}

#[test]
fn agency_clients_with_a_zone_get_the_preview_name_in_it() {
    let r = preview(
        "agency-sites",
        json!({ "clients": [
            { "name": "bakery", "domain": "www.bakery.example", "zone": "bakery.example" },
            { "name": "law-firm", "size": "small", "domain": "law.example" },
        ] }),
    );
    assert_eq!(r["clients/bakery/zone"]["fields"]["managed"], false, "the base stack owns the zone");
    assert_eq!(r["clients/bakery/record"]["fields"]["fqdn"], "feature-x.bakery.example");
    assert!(!r.keys().any(|k| k.starts_with("clients/law-firm/") && k.ends_with("certificate")), "{:?}", r.keys());
    assert!(r.keys().any(|k| k.ends_with("/lb")), "the load balancer stays: {:?}", r.keys());
    let all = serde_json::to_string(&r).unwrap();
    assert!(!all.contains("www.bakery.example") && !all.contains("law.example"), "base names stay the base's");
}

#[test]
fn a_lamp_site_preview_uses_the_zone_and_one_without_a_zone_keeps_its_load_balancer() {
    let r = preview("lamp-site", json!({ "domain": "blog.example.com", "zone": "example.com" }));
    assert_eq!(r["edge/zone"]["fields"]["managed"], false);
    assert_eq!(r["edge/record"]["fields"]["fqdn"], "feature-x.example.com");
    let r = preview("lamp-site", json!({ "domain": "blog.example.com" }));
    assert!(!r.keys().any(|k| k.starts_with("edge/")), "{:?}", r.keys());
    assert!(r.keys().any(|k| k == "lb" || k.ends_with("/lb")), "{:?}", r.keys());
}
