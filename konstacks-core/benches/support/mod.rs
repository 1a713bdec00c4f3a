//! What the benches share: the engine bench's stack shape and the process's peak memory.
#![allow(dead_code)]

use konstacks_core::model::*;

/// `groups` copies of a 10-resource web stack (VPC, 4 subnets, 2 firewalls, 2 VMs, 1 database).
pub fn big_stack(name: &str, groups: usize) -> Stack {
    let stack = Stack::new(name, Placement::region("eu-central"), Stage::Prod);
    for g in 0..groups {
        let sc = stack.scope(&format!("g{g}"));
        let vpc = sc.add("vpc", Vpc::new("10.0.0.0/16"));
        let pa = sc.add("public-a", Subnet::new(vpc, "10.0.1.0/24").zone(0).public());
        let pb = sc.add("public-b", Subnet::new(vpc, "10.0.2.0/24").zone(1).public());
        let da = sc.add("private-a", Subnet::new(vpc, "10.0.11.0/24").zone(0));
        let db_ = sc.add("private-b", Subnet::new(vpc, "10.0.12.0/24").zone(1));
        let web_fw = sc.add("web-fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
        let db_fw = sc.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(5432).from(web_fw)));
        let db = sc.add("db", Database::postgres("16", DbSize::Small, [da, db_]).firewall(db_fw));
        for (i, sn) in [pa, pb].into_iter().enumerate() {
            sc.add(
                &format!("web-{i}"),
                Vm::new(Image::UbuntuLts, VmSize::Small, sn).firewall(web_fw).env("DB", db.host()),
            );
        }
    }
    stack
}

/// The peak resident memory of this process so far (VmHWM), in MB.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}
