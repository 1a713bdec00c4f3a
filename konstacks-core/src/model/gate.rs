//! Health gates: how a new instance proves it serves traffic before the one it replaces goes.

/// How a new VM proves it serves traffic.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "probe", rename_all = "snake_case")]
pub enum HealthCheck {
    /// A TCP connection to this port of the VM is accepted.
    Tcp {
        /// Port.
        port: u16,
    },
    /// `GET path` on this port answers with this status.
    Http {
        /// Port.
        port: u16,
        /// Path, starting with `/`.
        path: String,
        /// Expected status code.
        status: u16,
    },
    /// The provider reports the instance as running and passing its own status checks.
    ProviderStatus,
}

/// A health gate for zero-downtime replacement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthGate {
    /// The probe.
    pub check: HealthCheck,
    /// How long a new instance has to pass, in seconds.
    pub timeout_secs: u64,
    /// Seconds between probes.
    pub interval_secs: u64,
    /// At most this many VMs of the stack are replaced at once (rolling batches).
    pub batch: usize,
}

impl HealthGate {
    /// A gate with `check`, 300 s to pass, a probe every 5 s, one VM at a time.
    pub fn new(check: HealthCheck) -> Self {
        Self { check, timeout_secs: 300, interval_secs: 5, batch: 1 }
    }
    /// Time allowed to pass.
    pub fn timeout_secs(mut self, secs: u64) -> Self {
        self.timeout_secs = secs;
        self
    }
    /// Rolling batch size.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }
}
