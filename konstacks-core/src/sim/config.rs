//! How the simulated cloud behaves: latency, rate limit, eventual consistency and injected faults.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::base::error::ErrorKind;

/// A token-bucket rate limit on the simulated API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second of clock time.
    pub per_second: f64,
    /// Bucket size: calls allowed back to back before throttling starts.
    pub burst: u32,
}

/// Injected failures. Call numbers are 1-based and count every trait call the cloud answers
/// (see `SimCloud::calls`).
#[derive(Debug, Clone)]
pub struct Faults {
    /// The Nth call fails with this kind and makes no change.
    pub fail_nth: BTreeMap<u64, ErrorKind>,
    /// Probability that any call fails with [`Faults::fail_kind`] (no change made).
    pub fail_rate: f64,
    /// The kind of the random failures drawn with [`Faults::fail_rate`].
    pub fail_kind: ErrorKind,
    /// The Nth call, if it is mutating, applies its change and then reports a transient timeout.
    pub timeout_nth: BTreeSet<u64>,
    /// Probability that a mutating call applies its change and then reports a transient timeout.
    pub timeout_rate: f64,
    /// When set, the random faults (`fail_rate`, `timeout_rate`) apply only to these operation
    /// names (trait method names such as `create_vm`). The `*_nth` faults always apply.
    pub only_ops: Option<BTreeSet<String>>,
    /// More random failures, each with its own probability, drawn after `fail_rate` (for a mix
    /// such as 20% throttled plus 5% transient). No change is made.
    pub mix: Vec<(ErrorKind, f64)>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            fail_nth: BTreeMap::new(),
            fail_rate: 0.0,
            fail_kind: ErrorKind::Transient,
            timeout_nth: BTreeSet::new(),
            timeout_rate: 0.0,
            only_ops: None,
            mix: Vec::new(),
        }
    }
}

impl Faults {
    /// Whether the random faults apply to `op`.
    pub(crate) fn random_applies_to(&self, op: &str) -> bool {
        match &self.only_ops {
            Some(ops) => ops.contains(op),
            None => true,
        }
    }
}

/// How the simulated cloud behaves.
#[derive(Debug, Clone, Default)]
pub struct SimConfig {
    /// Every call sleeps this long on the caller's clock before it is answered.
    pub latency: Duration,
    /// Token bucket measured on the caller's clock; a call beyond it fails with
    /// [`ErrorKind::Throttled`] and makes no change. `None` = unlimited.
    pub rate_limit: Option<RateLimit>,
    /// A resource created less than this long ago is invisible to reads and, when another create
    /// or update references it, answers [`ErrorKind::NotFound`] (eventual consistency).
    pub consistency_delay: Duration,
    /// Injected failures.
    pub faults: Faults,
    /// Seed of the generator behind the random faults.
    pub seed: u64,
}
