//! The static GCP catalogue (being written).

/// Name stacks use to select this provider.
pub const PROVIDER_NAME: &str = "gcp";
