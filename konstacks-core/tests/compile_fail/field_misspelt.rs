// Parity knobs name fields through the kind's typed constants: a misspelt field does not
// compile.
use konstacks_core::model::*;
use konstacks_core::parity::KnobSet;

fn main() {
    let _ = KnobSet::none().allow(database::field::STORAGE_GBS);
}
