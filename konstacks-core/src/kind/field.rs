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

/// Longest tag key every supported cloud accepts (AWS: 128 Unicode characters).
pub const MAX_TAG_KEY_LEN: usize = 128;
/// Longest tag value every supported cloud accepts (AWS: 256 Unicode characters).
pub const MAX_TAG_VALUE_LEN: usize = 256;

/// What no cloud accepts in a tag, if anything: an empty key, a key over
/// [`MAX_TAG_KEY_LEN`] or a value over [`MAX_TAG_VALUE_LEN`] characters, or a control character
/// (line break, tab, NUL, escape, ...) or a bidirectional-override / zero-width / line-separator
/// character anywhere. Each backend maps the rest to its cloud's own rules (GCP labels are
/// lowercased and sanitized by the GCP backend).
pub fn tag_problem(key: &str, value: &str) -> Option<String> {
    fn hidden(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
    }
    let shown = |s: &str| {
        s.chars()
            .take(60)
            .map(|c| if hidden(c) { format!("\\u{{{:x}}}", u32::from(c)) } else { c.to_string() })
            .collect::<String>()
    };
    if key.is_empty() {
        return Some("a tag key is empty".into());
    }
    let (k, v) = (key.chars().count(), value.chars().count());
    if k > MAX_TAG_KEY_LEN {
        return Some(format!("tag key `{}...` has {k} characters, at most {MAX_TAG_KEY_LEN} are allowed", shown(key)));
    }
    if let Some(c) = key.chars().find(|c| hidden(*c)) {
        return Some(format!(
            "tag key `{}` contains the character U+{:04X}, which no cloud accepts",
            shown(key),
            u32::from(c)
        ));
    }
    if v > MAX_TAG_VALUE_LEN {
        return Some(format!("tag `{key}` has a value of {v} characters, at most {MAX_TAG_VALUE_LEN} are allowed"));
    }
    if let Some(c) = value.chars().find(|c| hidden(*c)) {
        return Some(format!(
            "tag `{key}` has a value containing the character U+{:04X}, which no cloud accepts",
            u32::from(c)
        ));
    }
    None
}

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
    /// `false` in a resource's inputs when the stack uses the resource but does not own it (a
    /// kind's `existing` constructor): the backend looks it up instead of creating it, and the
    /// engine forgets it on destroy instead of deleting it (and counts no data lost). Absent
    /// means owned.
    pub const MANAGED: &str = "managed";

    /// Whether recorded `inputs` describe a resource the stack uses but does not own.
    pub fn is_unmanaged(inputs: &crate::kind::field_map::FieldMap<serde_json::Value>) -> bool {
        inputs.get(MANAGED).and_then(serde_json::Value::as_bool) == Some(false)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_no_cloud_accepts_are_named() {
        assert_eq!(tag_problem("client", "acme"), None);
        assert_eq!(tag_problem("dpo-contact", "Zoë Ødegård @ acme.example"), None);
        assert_eq!(tag_problem("k", ""), None);
        assert_eq!(tag_problem(&"k".repeat(128), &"v".repeat(256)), None);
        for (k, v, expected) in [
            ("", "x", "empty"),
            (&*"k".repeat(129), "x", "129 characters"),
            ("k", &*"v".repeat(257), "257 characters"),
            ("a\nb", "x", "U+000A"),
            ("k", "a\u{1b}[31m", "U+001B"),
            ("k", "a\0", "U+0000"),
            ("k", "a\rb", "U+000D"),
            ("k", "abc\u{202e}gpj", "U+202E"),
        ] {
            let msg = tag_problem(k, v).unwrap_or_default();
            assert!(msg.contains(expected), "{k:?}={v:?}: {msg}");
            assert!(!msg.chars().any(char::is_control), "{msg:?}");
        }
    }
}
