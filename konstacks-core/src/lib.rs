//! Konstacks core: the stack model and DSL, validation (`synth`), the planner, the parallel apply
//! engine, crash-safe state, the provider traits and the embedded simulated cloud.
//!
//! This crate knows no real cloud: backends live in `konstacks-providers` and implement the
//! traits in [`provider`].

pub mod cidr;
pub mod clock;
pub mod error;
pub mod model;
pub mod provider;
pub mod secret;
pub mod spec;
mod util;
pub mod validate;

pub use util::{now_rfc3339, rfc3339};
pub mod contract;
pub mod cost;
pub mod engine;
pub mod events;
pub mod graph;
pub mod health;
pub mod parity;
pub mod plan;
pub mod policy;
pub mod retry;
pub mod sim;
pub mod state;
