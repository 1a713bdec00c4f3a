//! # Konstacks
//!
//! Infrastructure as a Rust library: typed stacks, a Terraform-like plan, parallel apply,
//! crash-safe state and an embedded simulated cloud to try everything without an account.
//!
//! This facade crate ties the workspace together:
//!
//! - [`core`] (`konstacks-core`): the model and DSL, `synth`, the planner, the engine, state,
//!   the provider traits and the simulated cloud;
//! - [`templates`] (`konstacks-templates`): reusable stacks such as `web-app`;
//! - [`providers`] (`konstacks-providers`): real cloud backends, each behind a cargo feature;
//! - [`prelude`]: everything a program that defines stacks needs, in one `use`;
//! - `cli` (feature `cli`, on by default): turn such a program into a full command line tool
//!   with `plan`, `apply`, `destroy`, `drift`, `graph` and more, and the `konstacks` binary;
//! - `dashboard` (feature `dashboard`, part of `cli`): the web dashboard over every stack of a
//!   state backend, to serve alone or mount in an axum application.
//!
//! ```no_run
//! use konstacks::prelude::*;
//!
//! # #[cfg(not(feature = "cli"))] fn main() {}
//! # #[cfg(feature = "cli")]
//! fn main() -> std::process::ExitCode {
//!     konstacks::cli::run(|app: &mut konstacks::cli::App| {
//!         let stack = app.stack("hello", Placement::within(Jurisdiction::Eu));
//!         let net = stack.scope("network");
//!         let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
//!         let subnet = net.add("web", Subnet::new(vpc, "10.0.1.0/24").public());
//!         let fw = net.add("web-fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
//!         let web = stack.add("web", Vm::new(Image::UbuntuLts, VmSize::Small, subnet).firewall(fw).public_ip(true));
//!         stack.export("ip", web.public_ip());
//!     })
//! }
//! ```
//!
//! Run it with `cargo run -- plan`, then `cargo run -- apply`: resources go to the simulated
//! cloud, kept in `.konstacks/sim-cloud.json`.

pub use konstacks_core as core;
pub use konstacks_providers as providers;
pub use konstacks_templates as templates;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "dashboard")]
pub mod dashboard;
#[cfg(feature = "cli")]
pub mod live;

// The README's Rust blocks compile (and run: they need no cloud) as doctests of this crate; its
// `sh`, `toml` and `text` blocks are not Rust and are skipped. The getting-started guide's blocks
// are doctests of `examples/shop-infra`, the crate the guide builds.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_doctests {}

/// Everything a program that defines stacks needs.
pub mod prelude {
    pub use konstacks_core::engine::Engine;
    pub use konstacks_core::engine::{self, ApplyOptions, ApplyReport, DriftReport, FailurePolicy, PlanOptions};
    pub use konstacks_core::error::Error;
    pub use konstacks_core::graph::{to_dot, to_mermaid};
    pub use konstacks_core::model::{
        cache, database, firewall, subnet, vm, vpc, Cache, CacheEngine, CacheSize, Database, DbEngine, DbSize, Egress,
        EnvValue, Firewall, FirewallRule, Image, Ingress, Jurisdiction, Kind, Output, Peer, Placement, Protocol, Ref,
        ResourceKind, Scope, Stack, Stage, Subnet, Vm, VmSize, Vpc, SIMULATED,
    };
    pub use konstacks_core::model::{
        certificate, dns_record, dns_zone, Certificate, DnsRecord, DnsTarget, DnsZone, RecordType,
    };
    pub use konstacks_core::plan::Plan;
    pub use konstacks_core::provider::Provider;
    pub use konstacks_core::secret::{Secret, SecretSource};
    pub use konstacks_core::sim::{SimCloud, SimConfig};
    pub use konstacks_core::state::{LocalBackend, StackState, StateBackend};
    pub use konstacks_core::validate::Synthesized;
    pub use konstacks_templates::{Template, TemplateContext, TypedTemplate};

    #[cfg(feature = "cli")]
    pub use crate::cli::App;
}
