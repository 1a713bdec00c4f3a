// A VM lives in a subnet, and a firewall handle is not one.
use konstacks_core::model::*;

fn main() {
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Dev);
    let vpc = stack.add("vpc", Vpc::new("10.0.0.0/16"));
    let fw = stack.add("fw", Firewall::new(vpc));
    let _vm = stack.add("vm", Vm::new(Image::UbuntuLts, VmSize::Small, fw));
}
