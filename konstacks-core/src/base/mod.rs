//! The bottom layer: vocabulary every other layer shares and that knows nothing of stacks or
//! kinds: portable errors, injected time, secrets, CIDR math, retry pacing, diagnostics and crash-safe
//! file writes.

pub mod cidr;
pub mod clock;
pub mod diag;
pub mod error;
pub(crate) mod fs;
pub(crate) mod hash;
pub mod retry;
pub mod secret;
pub(crate) mod util;

pub use util::{now_rfc3339, rfc3339};
