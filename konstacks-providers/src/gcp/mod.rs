//! The Google Cloud backend (work in progress): Compute Engine and Cloud SQL on Google's
//! official Rust clients.

pub mod catalog;
