//! Validation diagnostics: one problem of a stack, with the resource path and what to do, and the
//! grammar of logical ids. Every layer that validates (lowering, synth, templates) reports these.

use std::fmt;

use serde::Serialize;

/// Longest logical id (one path segment).
pub const MAX_ID_LEN: usize = 63;

/// One problem found by validation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// Stable code (`duplicate-id`, `cidr-outside-vpc`, ...).
    pub code: &'static str,
    /// Full path of the resource (`shop-prod/network/vpc`), or the stack name.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}] {}: {}\n  help: {}", self.code, self.path, self.message, self.help)
    }
}

/// Every problem of a stack, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Iterate.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
    /// Whether any problem has this code.
    pub fn has(&self, code: &str) -> bool {
        self.0.iter().any(|d| d.code == code)
    }
    /// Add a problem.
    pub fn push(
        &mut self,
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.0.push(Diagnostic { code, path: path.into(), message: message.into(), help: help.into() });
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Whether `id` is a valid logical id: 1 to 63 characters of `a-z`, `0-9` and `-`, starting with a
/// letter or digit.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}
