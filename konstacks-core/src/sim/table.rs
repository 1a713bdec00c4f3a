//! The simulated cloud's resource table: every resource by id, plus two indexes kept in step
//! with it — ids by kind, and who references whom — so a create that checks its neighbours
//! (overlapping subnets of a VPC, addresses taken in a subnet, names taken in a VPC) or a
//! delete that checks its users looks at those resources only, not at the whole cloud. Without
//! them each call scanned every resource and an apply of n resources took O(n²) (ADR 0006).
//!
//! The table owns the map: every insertion and removal goes through it, so the indexes cannot
//! drift. It must not know any kind: what a resource references comes from its handler.

use std::collections::{BTreeMap, BTreeSet};

use crate::kind::Kind;

/// What the table needs to know of a resource to index it.
pub(crate) trait Row {
    /// Its kind.
    fn kind(&self) -> Kind;
    /// The key no two resources of its kind may share, if its kind has one.
    fn unique_key(&self) -> Option<String>;
    /// The ids it references.
    fn references_ids(&self) -> Vec<&str>;
}

/// Resources by id with their kind and reference indexes.
#[derive(Debug, Clone)]
pub(crate) struct Table<R> {
    by_id: BTreeMap<String, R>,
    by_kind: BTreeMap<Kind, BTreeSet<String>>,
    /// Referenced id -> ids of the resources that reference it.
    referrers: BTreeMap<String, BTreeSet<String>>,
    /// (kind, unique key) -> ids holding it (more than one only if a file or a test made it so).
    keys: BTreeMap<(Kind, String), BTreeSet<String>>,
}

impl<R> Default for Table<R> {
    fn default() -> Self {
        Self { by_id: BTreeMap::new(), by_kind: BTreeMap::new(), referrers: BTreeMap::new(), keys: BTreeMap::new() }
    }
}

impl<R: Row> Table<R> {
    fn index(&mut self, id: &str, r: &R) {
        self.by_kind.entry(r.kind()).or_default().insert(id.to_string());
        if let Some(key) = r.unique_key() {
            self.keys.entry((r.kind(), key)).or_default().insert(id.to_string());
        }
        for used in r.references_ids() {
            if used != id {
                self.referrers.entry(used.to_string()).or_default().insert(id.to_string());
            }
        }
    }

    fn unindex(&mut self, id: &str, r: &R) {
        if let Some(ids) = self.by_kind.get_mut(&r.kind()) {
            ids.remove(id);
        }
        if let Some(key) = r.unique_key() {
            let key = (r.kind(), key);
            if let Some(ids) = self.keys.get_mut(&key) {
                ids.remove(id);
                if ids.is_empty() {
                    self.keys.remove(&key);
                }
            }
        }
        for used in r.references_ids() {
            if let Some(users) = self.referrers.get_mut(used) {
                users.remove(id);
                if users.is_empty() {
                    self.referrers.remove(used);
                }
            }
        }
    }

    /// Store `r` under `id`, replacing (and unindexing) what was there.
    pub(crate) fn insert(&mut self, id: String, r: R) -> Option<R> {
        let old = self.remove(&id);
        self.index(&id, &r);
        self.by_id.insert(id, r);
        old
    }

    /// Remove the resource `id`.
    pub(crate) fn remove(&mut self, id: &str) -> Option<R> {
        let old = self.by_id.remove(id)?;
        self.unindex(id, &old);
        Some(old)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&R> {
        self.by_id.get(id)
    }

    /// The resource `id` to change in place. The change must not alter what it references
    /// (that goes through [`Table::insert`], which re-indexes).
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut R> {
        self.by_id.get_mut(id)
    }

    pub(crate) fn contains_key(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Every resource, by id.
    pub(crate) fn values(&self) -> impl Iterator<Item = &R> {
        self.by_id.values()
    }

    /// The resources of `kind`, by id.
    pub(crate) fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &R> {
        self.by_kind.get(&kind).into_iter().flatten().filter_map(|id| self.by_id.get(id))
    }

    /// The resources of `kind` holding the unique `key`, by id.
    pub(crate) fn keyed(&self, kind: Kind, key: &str) -> impl Iterator<Item = &R> {
        self.keys.get(&(kind, key.to_string())).into_iter().flatten().filter_map(|id| self.by_id.get(id))
    }

    /// The resources that reference `id`, by id.
    pub(crate) fn referrers(&self, id: &str) -> impl Iterator<Item = &R> {
        self.referrers.get(id).into_iter().flatten().filter_map(|u| self.by_id.get(u))
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }
}

impl<R: Row> FromIterator<(String, R)> for Table<R> {
    fn from_iter<I: IntoIterator<Item = (String, R)>>(iter: I) -> Self {
        let mut t = Self::default();
        for (id, r) in iter {
            t.insert(id, r);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::ResourceKind;
    use crate::kinds::{Subnet, Vpc};

    /// A stand-in row: a kind, an id and what it references.
    #[derive(Debug, Clone)]
    struct Item {
        kind: Kind,
        id: String,
        refs: Vec<String>,
    }

    impl Row for Item {
        fn kind(&self) -> Kind {
            self.kind
        }
        fn unique_key(&self) -> Option<String> {
            None
        }
        fn references_ids(&self) -> Vec<&str> {
            self.refs.iter().map(String::as_str).collect()
        }
    }

    fn vpc(id: &str) -> Item {
        Item { kind: <Vpc as ResourceKind>::KIND, id: id.into(), refs: Vec::new() }
    }

    fn subnet(id: &str, vpc: &str) -> Item {
        Item { kind: <Subnet as ResourceKind>::KIND, id: id.into(), refs: vec![vpc.into()] }
    }

    fn ids<'a>(it: impl Iterator<Item = &'a Item>) -> Vec<String> {
        it.map(|r| r.id.clone()).collect()
    }

    #[test]
    fn indexes_follow_insert_replace_and_remove() {
        let mut t = Table::default();
        t.insert("vpc-1".into(), vpc("vpc-1"));
        t.insert("vpc-2".into(), vpc("vpc-2"));
        t.insert("subnet-1".into(), subnet("subnet-1", "vpc-1"));
        t.insert("subnet-2".into(), subnet("subnet-2", "vpc-1"));
        assert_eq!(ids(t.referrers("vpc-1")), ["subnet-1", "subnet-2"]);
        assert_eq!(ids(t.of_kind(<Subnet as ResourceKind>::KIND)), ["subnet-1", "subnet-2"]);
        assert_eq!(ids(t.of_kind(<Vpc as ResourceKind>::KIND)), ["vpc-1", "vpc-2"]);

        // Replacing a resource moves its references.
        t.insert("subnet-2".into(), subnet("subnet-2", "vpc-2"));
        assert_eq!(ids(t.referrers("vpc-1")), ["subnet-1"]);
        assert_eq!(ids(t.referrers("vpc-2")), ["subnet-2"]);
        // Replacing it with the same references keeps them.
        t.insert("subnet-2".into(), subnet("subnet-2", "vpc-2"));
        assert_eq!(ids(t.referrers("vpc-2")), ["subnet-2"]);

        t.remove("subnet-1");
        assert_eq!(ids(t.referrers("vpc-1")), Vec::<String>::new());
        assert_eq!(ids(t.of_kind(<Subnet as ResourceKind>::KIND)), ["subnet-2"]);
        assert!(!t.referrers.contains_key("vpc-1"), "empty entries are dropped");

        let rebuilt: Table<Item> = t.values().map(|r| (r.id.clone(), r.clone())).collect();
        assert_eq!(ids(rebuilt.referrers("vpc-2")), ["subnet-2"]);
        t.clear();
        assert_eq!(t.values().count(), 0);
        assert_eq!(t.of_kind(<Vpc as ResourceKind>::KIND).count(), 0);
    }
}
