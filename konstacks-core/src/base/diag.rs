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
    id_problem(id).is_none()
}

/// What a stack name must look like (the help of every message refusing one).
pub const STACK_NAME_RULE: &str = "use 1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit, and \
                                   not a name Windows reserves for a device (con, prn, aux, nul, com1-com9, lpt1-lpt9)";

/// Device names Windows reserves in every directory: a stack must not be named like one, since
/// its name becomes a directory of the state.
const RESERVED_NAMES: [&str; 4] = ["con", "prn", "aux", "nul"];

/// Why a logical id or a stack name is not valid.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    /// Nothing at all.
    Empty,
    /// A character outside `a-z`, `0-9` and `-` (the first one found).
    Character(char),
    /// More than [`MAX_ID_LEN`] characters (how many there are).
    TooLong(usize),
    /// Starts with `-`.
    LeadingDash,
    /// A device name Windows reserves (`con`, `nul`, `com1`, ...).
    Reserved,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => write!(f, "it is empty"),
            NameProblem::Character(c) => {
                write!(f, "it contains `{}`, which is not one of a-z, 0-9 and '-'", c.escape_debug())
            }
            NameProblem::TooLong(n) => write!(f, "it has {n} characters, at most {MAX_ID_LEN} are allowed"),
            NameProblem::LeadingDash => write!(f, "it starts with '-'"),
            NameProblem::Reserved => write!(f, "Windows reserves it for a device"),
        }
    }
}

/// What is wrong with `id` as a logical id (1 to 63 characters of `a-z`, `0-9` and `-`, starting
/// with a letter or digit), or `None` when it is valid. The one grammar of ids and stack names.
pub fn id_problem(id: &str) -> Option<NameProblem> {
    if id.is_empty() {
        return Some(NameProblem::Empty);
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Some(NameProblem::Character(c));
    }
    if id.len() > MAX_ID_LEN {
        return Some(NameProblem::TooLong(id.chars().count()));
    }
    if id.starts_with('-') {
        return Some(NameProblem::LeadingDash);
    }
    None
}

/// What is wrong with `name` as a stack name, or `None` when it is valid: a logical id (see
/// [`id_problem`]) that Windows does not reserve for a device, since it names the stack's
/// directory of state. Every command and every state backend checks it before building a path
/// or key from the name.
pub fn stack_name_problem(name: &str) -> Option<NameProblem> {
    id_problem(name).or_else(|| {
        let numbered = ["com", "lpt"].iter().any(|p| {
            name.strip_prefix(p).is_some_and(|d| d.len() == 1 && d.bytes().all(|b| (b'1'..=b'9').contains(&b)))
        });
        (numbered || RESERVED_NAMES.contains(&name)).then_some(NameProblem::Reserved)
    })
}

/// The diagnostic refusing `name` as a stack name (`empty-name` or `invalid-name`), or `None`
/// when it is valid. Synth and the command line report the same one.
pub fn stack_name_diagnostic(name: &str) -> Option<Diagnostic> {
    let problem = stack_name_problem(name)?;
    let shown = name.escape_debug().to_string();
    Some(Diagnostic {
        code: if problem == NameProblem::Empty { "empty-name" } else { "invalid-name" },
        path: if name.is_empty() { "(stack)".to_string() } else { shown.clone() },
        message: format!("stack name `{shown}` is not a valid name: {problem}"),
        help: STACK_NAME_RULE.to_string(),
    })
}
