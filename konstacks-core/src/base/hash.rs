//! Hash maps that are only looked up, never walked (so their order can never reach an output),
//! with a fast hasher seeded once per process instead of the standard library's SipHash: the
//! planner and synth key tens of thousands of short paths per run.

use std::collections::HashMap;

/// The hasher of [`FastMap`].
pub(crate) type FastHasher = foldhash::fast::RandomState;

/// A lookup-only hash map.
pub(crate) type FastMap<K, V> = HashMap<K, V, FastHasher>;

/// An empty [`FastMap`] with room for `capacity` entries.
pub(crate) fn fast_map<K, V>(capacity: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(capacity, FastHasher::default())
}
