// Lowering names fields through the kind's typed constants: a VM cannot set a database field.
use konstacks_core::kind::LowerCx;
use konstacks_core::model::*;

fn lower(cx: &mut LowerCx<'_>) {
    let field: konstacks_core::kind::Field<Vm, u32> = database::field::STORAGE_GB;
    cx.set(field, 20);
}

fn main() {
    let _ = lower;
}
