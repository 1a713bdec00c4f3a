// A subnet must be placed in a VPC: passing a subnet's handle where a VPC is expected does not
// compile.
use konstacks_core::model::*;

fn main() {
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Dev);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let subnet = stack.add("a", Subnet::new(vpc, "10.0.1.0/24"));
    let _nested = stack.add("b", Subnet::new(subnet, "10.0.2.0/24"));
}
