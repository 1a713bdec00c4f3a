//! Konstacks cloud backends. Each backend translates only: a resolved spec from the engine
//! becomes API calls, and the API's answer becomes observed state. Backends never walk the
//! graph, retry on the engine's behalf or decide replace-vs-update.
//!
//! Every backend sits behind its own cargo feature so that core and template work compiles in
//! seconds: `aws` (official `aws-sdk-ec2` / `aws-sdk-rds`), `digitalocean` (typed `reqwest`
//! client), `gcp`
//! (Google's official `google-cloud-compute-v1` / `google-cloud-sql-v1`).

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "digitalocean")]
pub mod digitalocean;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(any(feature = "digitalocean", feature = "gcp"))]
mod poll;
#[cfg(feature = "s3-state")]
pub mod s3_state;
#[cfg(any(feature = "aws", feature = "gcp"))]
mod tables;
#[cfg(any(feature = "digitalocean", feature = "gcp"))]
pub mod userdata;
