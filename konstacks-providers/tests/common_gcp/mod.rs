//! The GCP test harness: an in-process fake of the Compute Engine v1 and Cloud SQL Admin v1 REST
//! endpoints ([`fake`]), checked against Google's discovery documents ([`discovery`]), with
//! Compute Engine and Cloud SQL list filters ([`filter`]). The documents come from the
//! google-api-python-client wheel that `scripts/test-gcp.sh` installs; it exports
//! `KONSTACKS_GCP_DISCOVERY_DIR`.
#![allow(dead_code)]

pub mod discovery;
pub mod fake;
pub mod filter;

#[allow(unused_imports)]
pub use fake::{FakeOptions, GcpFake, Inventory, Kind, RequestLog};
