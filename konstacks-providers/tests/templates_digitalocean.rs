//! Every built-in template at every stage against the digitalocean catalogue (see
//! `support/template_snapshots.rs`).
#![cfg(feature = "digitalocean")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
#[path = "support/template_snapshots.rs"]
mod template_snapshots;

#[test]
fn every_template_at_every_stage() {
    every_template_at_every_stage!(konstacks_providers::digitalocean::catalog::catalog());
}
