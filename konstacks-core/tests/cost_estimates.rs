//! Cost estimates against the simulated cloud's price catalogue: exact amounts per resource and
//! per stack, region multipliers, high-availability doubling, unpriced sizes, per-tag rollups
//! and the agency bill (CSV snapshot).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use konstacks_core::cost::{billing_by_tag, estimate, CostModel};
use konstacks_core::model::*;
use konstacks_core::provider::{Catalog, Offer};
use konstacks_core::sim::SimCloud;
use konstacks_core::validate::{FieldMap, Synthesized};
use serde_json::{json, Value};

/// A shop: six free network resources, an HA Postgres with 50 GiB and 7 days of backups, a
/// public VM, a private VM and a Redis.
fn shop(name: &str, placement: Placement, ha: bool) -> Stack {
    let stack = Stack::new(name, placement, Stage::Prod);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = net.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let a = net.add("private-a", Subnet::new(vpc, "10.0.2.0/24").zone(0));
    let b = net.add("private-b", Subnet::new(vpc, "10.0.3.0/24").zone(1));
    let web_fw = net.add("web-fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
    let db_fw = net.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(5432).from(web_fw)));
    let data = stack.scope("data");
    data.add(
        "postgres",
        Database::postgres("16", DbSize::Small, [a, b]).storage_gb(50).backups(7).high_availability(ha).firewall(db_fw),
    );
    data.add("redis", Cache::redis("7", CacheSize::Micro, [a, b]).firewall(db_fw));
    let app = stack.scope("app");
    app.add("web-1", Vm::new(Image::UbuntuLts, VmSize::Small, public).firewall(web_fw).public_ip(true));
    app.add("web-2", Vm::new(Image::UbuntuLts, VmSize::Small, public).firewall(web_fw));
    stack
}

fn synth(stack: &Stack, catalog: &Catalog) -> Synthesized {
    stack.synth(&[catalog]).unwrap_or_else(|e| panic!("{e}"))
}

fn amounts(report: &konstacks_core::cost::CostReport) -> BTreeMap<&str, Option<f64>> {
    report.resources.iter().map(|r| (r.path.as_str(), r.monthly_usd)).collect()
}

#[test]
fn known_stack_costs_exactly_its_catalogue_prices() {
    let cat = SimCloud::catalog();
    let s = synth(&shop("shop", Placement::region("eu-central"), true), &cat);
    let report = estimate(&s, &[&cat]);
    let a = amounts(&report);
    for free in ["network/vpc", "network/public", "network/private-a", "network/private-b", "network/web-fw"] {
        assert_eq!(a[free], Some(0.0), "{free}");
    }
    // 30.00 x 2 (HA) + 50 GiB x 0.115 + 50 GiB x 0.095 (backups) = 60 + 5.75 + 4.75
    assert_eq!(a["data/postgres"], Some(70.5));
    // Redis: size only.
    assert_eq!(a["data/redis"], Some(15.0));
    // 15.00 + public IPv4 3.65
    assert_eq!(a["app/web-1"], Some(18.65));
    assert_eq!(a["app/web-2"], Some(15.0));
    assert_eq!(report.total_usd, 119.15);
    assert!(report.is_complete());
    assert_eq!(report.priced_on["sim"], "2026-11-01");

    let pg = report.resource("data/postgres").unwrap();
    let lines: Vec<(&str, Option<f64>)> = pg.lines.iter().map(|l| (l.item.as_str(), l.monthly_usd)).collect();
    assert_eq!(lines, [("size", Some(60.0)), ("storage", Some(5.75)), ("backups", Some(4.75))]);
    assert_eq!(pg.size.as_deref(), Some("db-small"));

    insta::assert_snapshot!("shop_cost_table", report.render());
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["total_usd"], json!(119.15));
    assert_eq!(json["resources"][6]["path"], "data/postgres");
    assert!(json.get("unpriced").is_none());
}

#[test]
fn region_multiplier_applies_to_size_list_prices_only() {
    let cat = SimCloud::catalog();
    assert_eq!(cat.pricing.multiplier("ch-zurich"), 1.2);
    let s = synth(&shop("shop", Placement::region("ch-zurich"), true), &cat);
    let report = estimate(&s, &[&cat]);
    let a = amounts(&report);
    // 15 x 1.2 + 3.65 (addresses are flat)
    assert_eq!(a["app/web-1"], Some(21.65));
    assert_eq!(a["app/web-2"], Some(18.0));
    // 30 x 1.2 x 2 + storage and backups at flat prices
    assert_eq!(a["data/postgres"], Some(82.5));
    assert_eq!(a["data/redis"], Some(18.0));
    assert_eq!(report.total_usd, 140.15);

    let cheaper = estimate(&synth(&shop("shop", Placement::region("us-east"), true), &cat), &[&cat]);
    assert_eq!(amounts(&cheaper)["app/web-2"], Some(13.5));
}

#[test]
fn high_availability_doubles_the_instance_not_the_storage() {
    let cat = SimCloud::catalog();
    let single = estimate(&synth(&shop("shop", Placement::region("eu-central"), false), &cat), &[&cat]);
    let ha = estimate(&synth(&shop("shop", Placement::region("eu-central"), true), &cat), &[&cat]);
    let size = |r: &konstacks_core::cost::CostReport| {
        r.resource("data/postgres").unwrap().lines.iter().find(|l| l.item == "size").unwrap().monthly_usd
    };
    assert_eq!(size(&single), Some(30.0));
    assert_eq!(size(&ha), Some(60.0));
    assert_eq!(amounts(&single)["data/postgres"], Some(40.5));
    assert_eq!(ha.total_usd - single.total_usd, 30.0);
}

#[test]
fn a_size_without_a_price_is_unpriced_never_zero() {
    let mut cat = SimCloud::catalog();
    cat.vm_sizes.push(Offer::new("gpu", "sim.gpu", None));
    let stack = Stack::new("ml", Placement::region("eu-central"), Stage::Prod);
    let vpc = stack.add("vpc", Vpc::new("10.1.0.0/16"));
    let sn = stack.add("net", Subnet::new(vpc, "10.1.1.0/24").public());
    let app = stack.scope("app");
    app.add("api", Vm::new(Image::UbuntuLts, VmSize::Small, sn).public_ip(true));
    app.add("trainer", Vm::new(Image::UbuntuLts, VmSize::from_slug("gpu"), sn));
    let s = synth(&stack, &cat);
    let report = estimate(&s, &[&cat]);
    let r = report.resource("app/trainer").unwrap();
    assert_eq!(r.monthly_usd, None);
    assert!(r.unpriced.as_deref().unwrap().contains("no list price"), "{:?}", r.unpriced);
    assert_eq!(report.unpriced, ["app/trainer"]);
    assert!(!report.is_complete());
    // The total is the priced part, flagged as a lower bound.
    assert_eq!(report.total_usd, 18.65);
    let table = report.render();
    assert!(table.contains("unpriced"), "{table}");
    assert!(table.contains("lower bound"), "{table}");
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    let trainer = json["resources"].as_array().unwrap().iter().find(|r| r["path"] == "app/trainer").unwrap();
    assert_eq!(trainer["monthly_usd"], Value::Null);
    assert_eq!(json["unpriced"], json!(["app/trainer"]));

    // A provider without a catalogue, or a size the catalogue does not list, is unpriced too.
    let model = CostModel::new(&[&cat]);
    let inputs: FieldMap<Value> = [("size", json!("small"))].into();
    let nowhere = model.price_inputs("x", Vm::KIND, "nowhere", &inputs);
    assert_eq!(nowhere.monthly_usd, None);
    assert!(nowhere.unpriced.unwrap().contains("no catalogue for provider `nowhere`"));
    let odd: FieldMap<Value> = [("size", json!("huge"))].into();
    let odd = model.price_inputs("y", Vm::KIND, "sim", &odd);
    assert!(odd.unpriced.unwrap().contains("size `huge` is not in the catalogue"));
}

#[test]
fn storage_and_backup_prices_missing_are_unpriced() {
    let mut cat = SimCloud::catalog();
    cat.pricing.backup_gb_month = None;
    let s = synth(&shop("shop", Placement::region("eu-central"), false), &cat);
    let report = estimate(&s, &[&cat]);
    let pg = report.resource("data/postgres").unwrap();
    assert_eq!(pg.monthly_usd, None);
    assert_eq!(pg.known_usd(), 35.75);
    // Redis keeps no backups: still priced.
    assert_eq!(report.resource("data/redis").unwrap().monthly_usd, Some(15.0));
}

/// One stack for an agency: three clients' sites under `clients/<name>`, each tagged with its
/// client, plus a shared network.
fn agency() -> Stack {
    agency_and_vpc().0
}

/// [`agency`] and its VPC.
fn agency_and_vpc() -> (Stack, Ref<Vpc>) {
    let stack = Stack::new("agency", Placement::region("eu-central"), Stage::Prod);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = net.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let a = net.add("private-a", Subnet::new(vpc, "10.0.2.0/24").zone(0));
    let b = net.add("private-b", Subnet::new(vpc, "10.0.3.0/24").zone(1));
    for (client, size, db) in
        [("bakery", VmSize::Micro, true), ("dentist", VmSize::Small, false), ("law-firm", VmSize::Small, true)]
    {
        let scope = stack.scope("clients").scope(client).tag("client", client);
        let fw = scope.add("fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
        scope.add("web", Vm::new(Image::UbuntuLts, size, public).firewall(fw).public_ip(true));
        if db {
            scope.add("db", Database::mysql("8.0", DbSize::Micro, [a, b]).backups(7));
        }
    }
    (stack, vpc)
}

#[test]
fn cost_rolls_up_per_client_and_bills_with_markup() {
    let cat = SimCloud::catalog();
    let s = synth(&agency(), &cat);
    let report = estimate(&s, &[&cat]);
    let groups = report.by_tag("client");
    let by: Vec<(Option<&str>, f64, usize)> =
        groups.iter().map(|g| (g.value.as_deref(), g.monthly_usd, g.resources.len())).collect();
    // bakery: micro 7.50 + IPv4 3.65 + MySQL 15 + 20 GiB x 0.115 + 20 GiB x 0.095 = 30.35
    // dentist: small 15 + 3.65 = 18.65
    // law-firm: 18.65 + 19.20 = 37.85
    // untagged: the shared network, free
    assert_eq!(
        by,
        [(Some("bakery"), 30.35, 3), (Some("dentist"), 18.65, 2), (Some("law-firm"), 37.85, 3), (None, 0.0, 4)]
    );
    assert_eq!(report.total_usd, 86.85);

    let bill = billing_by_tag(std::slice::from_ref(&report), "client", 20.0);
    assert_eq!(bill.lines.len(), 3);
    let law = bill.line("law-firm").unwrap();
    assert_eq!((law.cost_usd, law.markup_usd, law.total_usd), (37.85, 7.57, 45.42));
    assert_eq!(bill.unassigned, None, "the free shared network is not a bill line");
    assert_eq!((bill.cost_usd, bill.markup_usd, bill.total_usd), (86.85, 17.37, 104.22));
    insta::assert_snapshot!("agency_bill_csv", bill.to_csv());
    insta::assert_snapshot!("agency_bill_table", bill.to_string());
    let json: Value = serde_json::from_str(&bill.to_json()).unwrap();
    assert_eq!(json["lines"][0]["client"], "bakery");
    assert_eq!(json["priced_on"]["sim"], "2026-11-01");
}

/// The agency stack plus one public load balancer serving every client, tagged
/// `konstacks:shared = client` (no `client` tag of its own), with `gb` GB processed a month.
fn agency_behind_one_load_balancer(gb: f64) -> Stack {
    let (stack, vpc) = agency_and_vpc();
    let edge = stack.scope("edge").tag(konstacks_core::cost::TAG_SHARED, "client");
    let a = edge.add("public-a", Subnet::new(vpc, "10.0.10.0/24").public().zone(0));
    let b = edge.add("public-b", Subnet::new(vpc, "10.0.11.0/24").public().zone(1));
    edge.add(
        "lb",
        LoadBalancer::public([a, b])
            .http(80)
            .target_group(TargetGroup::new("sites", 80))
            .assume_gb_processed_per_month(gb),
    );
    stack
}

#[test]
fn a_shared_load_balancer_is_split_evenly_across_the_clients() {
    let cat = SimCloud::catalog();
    // 730 h x 0.025 = 18.25, + 100 GB x 0.008 = 0.80: 19.05, a third is 6.35.
    let report = estimate(&synth(&agency_behind_one_load_balancer(100.0), &cat), &[&cat]);
    assert_eq!(report.resource("edge/lb").unwrap().monthly_usd, Some(19.05));
    let groups = report.by_tag("client");
    let by: Vec<(Option<&str>, f64, f64, usize)> =
        groups.iter().map(|g| (g.value.as_deref(), g.monthly_usd, g.shared_usd, g.resources.len())).collect();
    assert_eq!(
        by,
        [
            (Some("bakery"), 36.70, 6.35, 3),
            (Some("dentist"), 25.00, 6.35, 2),
            (Some("law-firm"), 44.20, 6.35, 3),
            (None, 0.0, 0.0, 4),
        ]
    );
    assert!(groups[..3].iter().all(|g| g.shared == ["edge/public-a", "edge/public-b", "edge/lb"]), "{groups:?}");
    let bill = billing_by_tag(std::slice::from_ref(&report), "client", 20.0);
    assert_eq!(bill.unassigned, None, "nothing is left unallocated");
    assert_eq!(bill.cost_usd, report.total_usd);
    let dentist = bill.line("dentist").unwrap();
    assert_eq!((dentist.resources, dentist.cost_usd, dentist.shared_usd), (2, 25.0, 6.35));
    assert_eq!(dentist.shared, ["agency/edge/public-a", "agency/edge/public-b", "agency/edge/lb"]);
    assert!(bill.to_string().contains("(incl. 6.35 shared)"), "{bill}");
    let json: Value = serde_json::from_str(&bill.to_json()).unwrap();
    assert_eq!(json["lines"][1]["shared_usd"], 6.35);

    // 101 GB: 0.808 rounds to 0.81, so 19.06: the odd cent goes to the first client by name.
    let report = estimate(&synth(&agency_behind_one_load_balancer(101.0), &cat), &[&cat]);
    let shares: Vec<f64> = report.by_tag("client").iter().map(|g| g.shared_usd).collect();
    assert_eq!(shares, [6.36, 6.35, 6.35, 0.0]);
    let bill = billing_by_tag(std::slice::from_ref(&report), "client", 0.0);
    assert_eq!(bill.cost_usd, report.total_usd, "the parts add up to the whole");
}

#[test]
fn a_shared_resource_without_anyone_to_share_it_stays_unassigned() {
    let cat = SimCloud::catalog();
    let stack = Stack::new("edge-only", Placement::region("eu-central"), Stage::Prod);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let sn = stack.add("net", Subnet::new(vpc, "10.0.1.0/24"));
    stack
        .scope("shared")
        .tag(konstacks_core::cost::TAG_SHARED, "client")
        .add("web", Vm::new(Image::UbuntuLts, VmSize::Nano, sn));
    let report = estimate(&synth(&stack, &cat), &[&cat]);
    let bill = billing_by_tag(std::slice::from_ref(&report), "client", 10.0);
    assert!(bill.lines.is_empty());
    assert_eq!(bill.unassigned.as_ref().map(|u| u.cost_usd), Some(4.0));
    // Shared by `client`, not by `team`: rolled up by team it is simply untagged.
    assert_eq!(report.by_tag("team")[0].value, None);
    assert!(report.by_tag("team")[0].shared.is_empty());
}

#[test]
fn bills_roll_up_across_stacks_and_show_unassigned_costs() {
    let cat = SimCloud::catalog();
    let mut reports = Vec::new();
    for (name, client) in [("site-a", Some("acme")), ("site-b", Some("acme")), ("tools", None)] {
        let stack = Stack::new(name, Placement::region("eu-central"), Stage::Prod);
        if let Some(c) = client {
            stack.tag("client", c);
        }
        let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
        let sn = stack.add("net", Subnet::new(vpc, "10.0.1.0/24"));
        stack.add("web", Vm::new(Image::UbuntuLts, VmSize::Nano, sn));
        reports.push(estimate(&synth(&stack, &cat), &[&cat]));
    }
    let bill = billing_by_tag(&reports, "client", 10.0);
    let acme = bill.line("acme").unwrap();
    assert_eq!((acme.resources, acme.cost_usd, acme.markup_usd, acme.total_usd), (6, 8.0, 0.8, 8.8));
    let un = bill.unassigned.as_ref().unwrap();
    assert_eq!((un.client.as_str(), un.cost_usd, un.markup_usd), ("(unassigned)", 4.0, 0.0));
    assert_eq!(
        bill.to_csv(),
        "client,resources,cost_usd,markup_percent,markup_usd,total_usd,unpriced\n\
         acme,6,8.00,10.00,0.80,8.80,0\n\
         (unassigned),3,4.00,0.00,0.00,4.00,0\n"
    );
}
