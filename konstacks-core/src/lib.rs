//! Konstacks core: the stack model and DSL, validation (`synth`), the planner, the parallel apply
//! engine, crash-safe state, the provider registry and the embedded simulated cloud.
//!
//! Layers, each using only those before it (see `docs/architecture.md`):
//! [`base`] → [`model`] → [`kind`] → [`kinds`] → [`stack`] → [`synth`] → [`plan`], [`cost`],
//! [`policy`], [`parity`], [`graph`] → [`state`], [`events`] → [`provider`] → [`health`],
//! [`engine`], [`error`] → [`sim`], [`contract`].
//!
//! This crate knows no real cloud: backends live in `konstacks-providers` and register the kinds
//! they offer with a [`provider::Provider`].

pub mod base;
pub mod contract;
pub mod cost;
pub mod engine;
pub mod error;
pub mod events;
pub mod graph;
pub mod health;
pub mod kind;
pub mod kinds;
pub mod model;
pub mod parity;
pub mod plan;
pub mod policy;
pub mod provider;
pub mod sim;
pub mod stack;
pub mod state;
pub mod synth;

pub use base::util::{now_rfc3339, rfc3339};
pub use base::{cidr, clock, retry, secret};
/// `synth()` and its output, under the name earlier releases used.
pub use synth as validate;

/// Resolved specifications (what providers receive) and observed state (what they return), of
/// every kind, plus the tags and selectors every kind shares.
pub mod spec {
    pub use crate::kind::{Selector, Tags, TAG_NAME, TAG_PATH, TAG_STACK};
    pub use crate::kinds::*;
}
