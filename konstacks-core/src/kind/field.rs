//! What every kind shares: typed [`Field`] names, tags, the [`Observed`] trait and batched-read
//! [`Selector`]s.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Tags (labels) carried by every resource.
pub type Tags = BTreeMap<String, String>;

/// Tag naming the stack a resource belongs to.
pub const TAG_STACK: &str = "konstacks:stack";
/// Tag naming the logical path of a resource within its stack.
pub const TAG_PATH: &str = "konstacks:path";
/// Tag carrying the physical name (shown by consoles).
pub const TAG_NAME: &str = "Name";

/// Fields every kind's spec carries; the engine may read these and no others.
pub mod common {
    /// The physical name.
    pub const NAME: &str = "name";
    /// The region.
    pub const REGION: &str = "region";
    /// The tags.
    pub const TAGS: &str = "tags";
    /// The provider id (observed state only).
    pub const ID: &str = "id";
}

/// Which resources a batched read returns.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// These ids (missing ones are simply absent from the answer).
    Ids(Vec<String>),
    /// Every resource of the kind tagged with this stack name (used for adoption and orphan checks).
    Stack(String),
}

/// A field of kind `K` whose value has type `T`: policy, cost, parity and force-new lists name
/// fields through these constants, so a misspelt or mistyped field does not compile.
pub struct Field<K, T> {
    name: &'static str,
    _kind: PhantomData<fn() -> (K, T)>,
}

impl<K, T> Field<K, T> {
    /// A field named `name` (the serde name in the kind's spec and observed state).
    pub const fn new(name: &'static str) -> Self {
        Self { name, _kind: PhantomData }
    }

    /// The field's name in specs, state and plans.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<K, T> Clone for Field<K, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, T> Copy for Field<K, T> {}
impl<K, T> fmt::Debug for Field<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// What every observed resource carries, whatever its kind.
pub trait Observed: Serialize + DeserializeOwned + Send + Sync + fmt::Debug + Clone + 'static {
    /// Provider id.
    fn id(&self) -> &str;
    /// Region.
    fn region(&self) -> &str;
    /// Tags.
    fn tags(&self) -> &Tags;
    /// Tags, to change.
    fn tags_mut(&mut self) -> &mut Tags;
}

/// Implements [`Observed`] for a struct with `id`, `region` and `tags` fields.
macro_rules! observed {
    ($t:ty) => {
        impl $crate::kind::field::Observed for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn region(&self) -> &str {
                &self.region
            }
            fn tags(&self) -> &$crate::kind::field::Tags {
                &self.tags
            }
            fn tags_mut(&mut self) -> &mut $crate::kind::field::Tags {
                &mut self.tags
            }
        }
    };
}
pub(crate) use observed;
