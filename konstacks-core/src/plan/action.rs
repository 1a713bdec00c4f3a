//! What happens to one resource in a plan.

use serde::{Deserialize, Serialize};

/// What happens to one resource.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing.
    NoOp,
    /// Create.
    Create,
    /// Update in place.
    Update,
    /// Replace (new resource, old one deleted).
    Replace,
    /// Delete.
    Delete,
}

impl Action {
    /// Terraform-style symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}
