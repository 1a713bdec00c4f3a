//! [`FieldMap`]: the fields of a synthesized resource, and the entries of a map field.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A map from names to values, sorted by name and kept in one vector.
///
/// A synthesized resource has a dozen fields and its map fields (tags, environment, a firewall
/// rule's peer) a handful of entries. A `BTreeMap` allocates a node of eleven slots for each of
/// them, however few are used: at 100,000 resources that was about half of the synthesized
/// stack's memory (ADR 0008). Lookups are binary searches; an insert shifts the entries after it,
/// which at these sizes costs less than a tree node.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMap<V>(Vec<(Name, V)>);

/// A field's name: the kind's own (`&'static str`, no allocation) or one given at run time (a tag key).
pub type Name = Cow<'static, str>;

impl<V> Default for FieldMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> FieldMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(name))
    }

    /// Set `name` to `value`; the value it had before, if any.
    pub fn insert(&mut self, name: Name, value: V) -> Option<V> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (name, value));
                None
            }
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    /// The value of `name`, to change it.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.find(name).ok().map(|i| &mut self.0[i].1)
    }

    /// Whether `name` is set.
    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Take `name` out; its value, if it was set.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        self.find(name).ok().map(|i| self.0.remove(i).1)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, by name.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &V)> + ExactSizeIterator + Clone {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The names, sorted.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + Clone {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    /// The values, by name.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + Clone {
        self.0.iter().map(|(_, v)| v)
    }

    /// The values, by name, to change them.
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.0.iter_mut().map(|(_, v)| v)
    }

    /// Each name and value, the values to change.
    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&str, &mut V)> + ExactSizeIterator {
        self.0.iter_mut().map(|(k, v)| {
            let k: &Name = k;
            (k.as_ref(), v)
        })
    }

    /// Give back the memory the vector holds beyond its entries.
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }

    /// Names equal to one of `names` (a kind's field names) share it instead of holding a copy
    /// of their own (names read from a file).
    pub fn share_names(&mut self, names: &[&'static str]) {
        for (k, _) in &mut self.0 {
            if let Cow::Owned(own) = k {
                if let Some(name) = names.iter().find(|n| **n == own.as_str()) {
                    *k = Cow::Borrowed(name);
                }
            }
        }
    }

    /// Sorted by name in place; of equal names the last wins, as with repeated inserts.
    fn sorted(mut entries: Vec<(Name, V)>) -> Self {
        // Stable, so equal names keep their order and the last one's value is kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        Self(entries)
    }
}

impl<V, K: Into<Name>> FromIterator<(K, V)> for FieldMap<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::sorted(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl<V, K: Into<Name>> Extend<(K, V)> for FieldMap<V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k.into(), v);
        }
    }
}

impl<V> From<BTreeMap<String, V>> for FieldMap<V> {
    fn from(m: BTreeMap<String, V>) -> Self {
        Self(m.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect())
    }
}

impl<V, K: Into<Name>, const N: usize> From<[(K, V); N]> for FieldMap<V> {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<V> IntoIterator for FieldMap<V> {
    type Item = (String, V);
    type IntoIter = std::iter::Map<std::vec::IntoIter<(Name, V)>, fn((Name, V)) -> (String, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().map(|(k, v)| (k.into_owned(), v))
    }
}

impl<'a, V> IntoIterator for &'a FieldMap<V> {
    type Item = (&'a str, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (Name, V)>, fn(&'a (Name, V)) -> (&'a str, &'a V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<V: Serialize> Serialize for FieldMap<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k.as_ref(), v)))
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for FieldMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(Entries(PhantomData))
    }
}

/// Reads a map's entries straight into the vector (no tree built on the way).
struct Entries<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
    type Value = FieldMap<V>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(Name, V)> = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some((k, v)) = map.next_entry::<String, V>()? {
            entries.push((Cow::Owned(k), v));
        }
        entries.shrink_to_fit();
        Ok(FieldMap::sorted(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_sorted_and_behaves_like_a_map() {
        let mut m = FieldMap::new();
        assert_eq!(m.insert("b".into(), 2), None);
        assert_eq!(m.insert("a".into(), 1), None);
        assert_eq!(m.insert("c".to_string().into(), 3), None);
        assert_eq!(m.insert("b".into(), 20), Some(2));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(m.get("b"), Some(&20));
        assert!(m.contains_key("c") && !m.contains_key("d"));
        assert_eq!(m.remove("a"), Some(1));
        assert_eq!(m.len(), 2);
        let from: FieldMap<i32> = [("z".to_string(), 1), ("y".to_string(), 2), ("z".to_string(), 3)].into();
        assert_eq!(from.iter().map(|(k, v)| (k, *v)).collect::<Vec<_>>(), [("y", 2), ("z", 3)]);
        assert_eq!(serde_json::to_string(&from).unwrap_or_default(), r#"{"y":2,"z":3}"#);
        let back: FieldMap<i32> = serde_json::from_str(r#"{"z":3,"y":2}"#).unwrap_or_default();
        assert_eq!(back, from);
        let repeated: FieldMap<i32> = serde_json::from_str(r#"{"z":3,"y":2,"z":4}"#).unwrap_or_default();
        assert_eq!(repeated.iter().map(|(k, v)| (k, *v)).collect::<Vec<_>>(), [("y", 2), ("z", 4)]);
        assert!(serde_json::from_str::<FieldMap<i32>>("[1]").is_err());
    }
}
