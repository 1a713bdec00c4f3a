//! Why a run was refused: the [`Hazard`]s the safety gate found (see the `guard` module), each
//! with the option that allows it. Plain data, so errors and reports can carry it.

use std::fmt;

use serde::Serialize;

use crate::kind::{Kind, TAG_STACK};
use crate::plan::safety::{PlacementChange, Untracked};
use crate::plan::Action;

/// One reason a run was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "hazard", rename_all = "snake_case")]
pub enum Hazard {
    /// A delete or replacement would lose the data of a database or cache.
    DataLoss {
        /// Logical path.
        path: String,
        /// Kind.
        kind: Kind,
        /// Delete or replace.
        action: Action,
    },
    /// A delete or replacement meets deletion protection.
    DeletionProtected {
        /// Logical path.
        path: String,
        /// Kind.
        kind: Kind,
    },
    /// The stack would move to another region or jurisdiction.
    PlacementChange(PlacementChange),
    /// The cloud holds a resource tagged for the stack that state does not know.
    Untracked(Untracked),
    /// A resource in state carries another stack's tag.
    OtherStack {
        /// Logical path (or the path asked for by an import).
        path: String,
        /// Provider id.
        id: String,
        /// The stack its tag names.
        owner: String,
    },
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hazard::DataLoss { path, kind, action } => {
                let verb = if *action == Action::Replace { "replaced" } else { "deleted" };
                write!(f, "{kind} {path} would be {verb} and the data it holds lost; allow it with --allow-data-loss {path} (or --allow-all-data-loss)")
            }
            Hazard::DeletionProtected { path, kind } => write!(
                f,
                "{kind} {path} has deletion protection on; pass --disable-deletion-protection to turn it off right before the delete, or keep it"
            ),
            Hazard::PlacementChange(m) => write!(
                f,
                "the stack would move from {} to {}, replacing every resource; pass --allow-placement-change if that is meant, or plan with the old region/jurisdiction",
                m.from, m.to
            ),
            Hazard::Untracked(u) => write!(
                f,
                "{} {} [{}] is tagged for this stack but state does not know it (lost or damaged state?); adopt it with `{}` or delete it, then apply again",
                u.kind,
                u.path.as_deref().unwrap_or("(no path tag)"),
                u.id,
                u.import_hint()
            ),
            Hazard::OtherStack { path, id, owner } => write!(
                f,
                "{path} [{id}] belongs to stack `{owner}` (its {TAG_STACK} tag), not to this one; leave it to that stack \
                 (`konstacks state rm {path}` drops it from this stack's state), or take it over with `konstacks import {path} {id} --force`"
            ),
        }
    }
}

/// Why a run was refused: every hazard found, none acted on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    /// Stack.
    pub stack: String,
    /// The hazards, in plan order.
    pub hazards: Vec<Hazard>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused to change stack {}: nothing was sent to the cloud; {} hazard(s):",
            self.stack,
            self.hazards.len()
        )?;
        for h in &self.hazards {
            write!(f, "\n  - {h}")?;
        }
        Ok(())
    }
}
