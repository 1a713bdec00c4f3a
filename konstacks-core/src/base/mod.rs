//! The bottom layer: vocabulary every other layer shares and that knows nothing of stacks or
//! kinds: portable errors, injected time, secrets, CIDR math, retry pacing and diagnostics.

pub mod cidr;
pub mod clock;
pub mod diag;
pub mod error;
pub mod retry;
pub mod secret;
pub(crate) mod util;
