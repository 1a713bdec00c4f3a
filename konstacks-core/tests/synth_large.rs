//! A stack of 9,001 resources synthesizes in stack order with its references resolved, and every
//! problem of it is reported once, wherever its node is. (Lowering on several threads was tried
//! for such stacks and measured slower on two cores: ADR 0008.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use konstacks_core::error::Error;
use konstacks_core::model::*;
use konstacks_core::sim::SimCloud;
use konstacks_core::validate::Expr;

/// One VPC first, then `n` subnets in it: every subnet references node 0, whichever run lowers it.
fn stack(n: usize, bad: &[usize]) -> Stack {
    let stack = Stack::new("big", Placement::region("eu-central"), Stage::Dev);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/8"));
    for i in 0..n {
        let cidr =
            if bad.contains(&i) { "10.0.0.0/99".to_string() } else { format!("10.{}.{}.0/24", i / 256, i % 256) };
        stack.add(&format!("subnet-{i:05}"), Subnet::new(vpc, &cidr));
    }
    stack
}

#[test]
fn a_large_stack_synthesizes_in_order_with_its_references() {
    let cat = SimCloud::catalog();
    let n = 9_000;
    let s = stack(n, &[]).synth(&[&cat]).unwrap();
    assert_eq!(s.resources.len(), n + 1);
    assert_eq!(s.resources[0].path, "vpc");
    for (i, r) in s.resources.iter().enumerate().skip(1) {
        assert_eq!(r.path, format!("subnet-{:05}", i - 1));
        assert_eq!(r.deps, [0], "{} depends on the VPC", r.path);
        match r.fields.get("vpc_id") {
            Some(Expr::Attr(a)) if a.node == 0 && a.attr == "id" => {}
            other => panic!("{}: vpc_id is {other:?}", r.path),
        }
    }
}

#[test]
fn problems_in_every_run_are_all_reported_once() {
    let cat = SimCloud::catalog();
    let bad = [3, 4_500, 8_999];
    let Err(Error::Invalid(d)) = stack(9_000, &bad).synth(&[&cat]) else { panic!("bad blocks must be refused") };
    let cidr: Vec<&str> = d.0.iter().filter(|x| x.code == "malformed-cidr").map(|x| x.path.as_str()).collect();
    assert_eq!(cidr, ["big/subnet-00003", "big/subnet-04500", "big/subnet-08999"], "{d:?}");
}
