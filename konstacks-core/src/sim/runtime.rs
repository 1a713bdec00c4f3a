//! The simulated cloud's live mode: what it runs for real on this machine when a [`Runtime`] is
//! attached (`SimCloud::with_runtime`). Without one, nothing runs and every
//! resource is bookkeeping.
//!
//! The kind handlers call the runtime inside their create, update and delete, so a runtime's
//! error fails the call like a cloud's would. Implementations (the CLI's `konstacks dev`) start
//! a VM's app as a child process, serve a load balancer as a reverse proxy on a loopback port
//! with real health checks, and run a database or cache as a throwaway local server where the
//! engine's binaries are installed. They must not block for long: the simulated cloud holds its
//! lock while a hook runs.

use crate::kind::api::TargetHealth;
use crate::kinds::{
    CacheObserved, CacheSpec, DatabaseObserved, DatabaseSpec, LoadBalancerObserved, VmObserved, VmSpec,
};

/// Where a live service listens, replacing the simulated address in what the cloud reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveAddress {
    /// Host (`127.0.0.1`).
    pub host: String,
    /// Port.
    pub port: u16,
}

/// How a live load balancer is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEndpoint {
    /// What the load balancer reports as its DNS name (a live runtime keeps the simulated one,
    /// which DNS records alias; the live port is in the URL).
    pub dns_name: String,
    /// Its URL (`https://127.0.0.1:41235` when it has an HTTPS listener).
    pub url: String,
}

/// What the simulated cloud runs for real. Every method is called with the cloud's lock held.
pub trait Runtime: Send + Sync + std::fmt::Debug {
    /// A VM was created: start its app (VMs without an app run nothing). An error fails the
    /// create, and the VM is not kept.
    fn start_vm(&self, vm: &VmObserved, spec: &VmSpec) -> Result<(), String>;
    /// A VM was deleted: stop its app.
    fn stop_vm(&self, id: &str);
    /// A database was created: `Some` address when a real local server now runs it, `None` when
    /// it stays simulated (no server binaries here).
    fn start_database(&self, db: &DatabaseObserved, spec: &DatabaseSpec) -> Result<Option<LiveAddress>, String>;
    /// A database was deleted.
    fn stop_database(&self, id: &str);
    /// A cache was created: `Some` address when a real local server now runs it.
    fn start_cache(&self, cache: &CacheObserved, spec: &CacheSpec) -> Result<Option<LiveAddress>, String>;
    /// A cache was deleted.
    fn stop_cache(&self, id: &str);
    /// A load balancer was created or changed (listeners, groups, routes, registered targets):
    /// serve it as it now is. Targets keep their health across calls.
    fn serve_load_balancer(&self, lb: &LoadBalancerObserved) -> Result<LiveEndpoint, String>;
    /// A load balancer was deleted: stop serving it.
    fn stop_load_balancer(&self, id: &str);
    /// The health of the targets of a live load balancer, as its own probes see them; `None`
    /// when the runtime does not serve it.
    fn target_health(&self, lb_id: &str) -> Option<Vec<TargetHealth>>;
}
