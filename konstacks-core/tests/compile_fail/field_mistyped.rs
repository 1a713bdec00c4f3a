// A policy rule reads fields through the kind's typed constants: asking for a count field as a
// flag does not compile.
use konstacks_core::model::*;
use konstacks_core::policy::PolicyContext;

fn check(cx: &PolicyContext<'_>) -> bool {
    cx.of::<Database>().any(|db| db.bool(database::field::STORAGE_GB) == Some(true))
}

fn main() {
    let _ = check;
}
