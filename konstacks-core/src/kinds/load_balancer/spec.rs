//! What a load balancer is on the cloud: its resolved spec (listeners, target groups, health
//! checks, rules) and observed state, and the helpers backends share to describe them.

use std::collections::BTreeMap;

use super::{HealthProtocol, LbScheme, ListenerProtocol, TlsPolicy};
use crate::kind::fronts::ReleasePolicy;
use crate::kind::Tags;

/// A resolved listener.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ListenerSpec {
    /// Port.
    pub port: u16,
    /// Protocol.
    pub protocol: ListenerProtocol,
    /// Provider ids of the certificates (HTTPS only; the first is the default; none for TLS
    /// passthrough).
    pub certificate_ids: Vec<String>,
    /// For HTTP: the HTTPS (or TLS passthrough) port every request is redirected to, if any.
    pub redirect_to_port: Option<u16>,
}

/// A resolved health check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct HealthCheckSpec {
    /// How to probe.
    pub protocol: HealthProtocol,
    /// Port probed; `None` is the target group's port.
    pub port: Option<u16>,
    /// Path requested (HTTP(S) only).
    pub path: Option<String>,
    /// Seconds between probes.
    pub interval_s: u32,
    /// Seconds a probe may take.
    pub timeout_s: u32,
    /// Successes to become healthy.
    pub healthy_threshold: u32,
    /// Failures to become unhealthy.
    pub unhealthy_threshold: u32,
    /// Status codes of success (HTTP(S) only).
    pub expected_status: Option<String>,
}

/// A resolved target group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TargetGroupSpec {
    /// Name, unique within the load balancer.
    pub name: String,
    /// Port the targets listen on.
    pub port: u16,
    /// Provider ids of the target VMs.
    pub vm_ids: Vec<String>,
    /// How targets are probed.
    pub health_check: HealthCheckSpec,
    /// Seconds a leaving target keeps serving requests in flight.
    pub deregistration_delay_s: u32,
    /// How releases replace the targets (engine-side; absent when the default).
    #[serde(default, skip_serializing_if = "is_default_release")]
    pub release: ReleasePolicy,
}

fn is_default_release(r: &ReleasePolicy) -> bool {
    *r == ReleasePolicy::default()
}

/// A resolved routing rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct RouteSpec {
    /// Evaluation order, from 1 (lowest is tried first).
    pub priority: u32,
    /// Host matched (lowercase; `*.example.com` matches one label), or any host.
    pub host: Option<String>,
    /// Path prefix matched, or any path.
    pub path_prefix: Option<String>,
    /// Name of the target group.
    pub target_group: String,
}

/// The health of one target, as the load balancer sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TargetState {
    /// Provider id of the VM.
    pub vm_id: String,
    /// Name of its target group.
    pub group: String,
    /// `healthy`, `unhealthy`, `initial` or `unavailable` (the provider's word where it has
    /// its own).
    pub state: String,
}

/// A resolved load balancer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoadBalancerSpec {
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Public or internal.
    pub scheme: LbScheme,
    /// Ids of the subnets.
    pub subnet_ids: Vec<String>,
    /// Ids of the attached firewalls.
    pub firewall_ids: Vec<String>,
    /// Listeners, by port.
    pub listeners: Vec<ListenerSpec>,
    /// Target groups, by name.
    pub target_groups: Vec<TargetGroupSpec>,
    /// Routing rules, by priority.
    pub routes: Vec<RouteSpec>,
    /// The target group of requests no rule matches.
    pub default_target_group: String,
    /// Oldest TLS version accepted by HTTPS listeners.
    pub tls_policy: TlsPolicy,
    /// The provider's security policy by name; `None` is the provider's policy for `tls_policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_policy: Option<String>,
    /// GB processed per month assumed by the cost estimate; backends ignore it.
    pub assumed_gb_processed_per_month: f64,
    /// Tags.
    pub tags: Tags,
}

/// An observed load balancer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoadBalancerObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Public or internal.
    pub scheme: LbScheme,
    /// Ids of the subnets.
    pub subnet_ids: Vec<String>,
    /// Ids of the attached firewalls.
    pub firewall_ids: Vec<String>,
    /// Listeners, by port.
    pub listeners: Vec<ListenerSpec>,
    /// Target groups, by name.
    pub target_groups: Vec<TargetGroupSpec>,
    /// Routing rules, by priority.
    pub routes: Vec<RouteSpec>,
    /// The target group of requests no rule matches.
    pub default_target_group: String,
    /// Oldest TLS version accepted.
    pub tls_policy: TlsPolicy,
    /// The provider's security policy by name, when it is not the one for `tls_policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_policy: Option<String>,
    /// The cost assumption, as given (backends that cannot store it echo the spec's).
    pub assumed_gb_processed_per_month: f64,
    /// DNS name clients use.
    pub dns_name: String,
    /// A fixed public address, where the cloud gives one.
    pub ip: Option<String>,
    /// `https://<dns_name>` when an HTTPS listener exists, else `http://<dns_name>` (with the
    /// port when it is not the protocol's default).
    pub url: String,
    /// Provider status (`active`, `provisioning`, ...).
    pub status: String,
    /// Health of every target of every group.
    pub targets: Vec<TargetState>,
    /// Tags.
    pub tags: Tags,
}

/// The URL of a load balancer: HTTPS when it has an HTTPS or TLS passthrough listener, with the
/// port when it is not the protocol's default. Backends compute the observed `url` with it.
pub fn url_of(dns_name: &str, listeners: &[ListenerSpec]) -> String {
    let lowest = |tls: bool| listeners.iter().filter(|l| l.protocol.is_tls() == tls).map(|l| l.port).min();
    let (scheme, port, default) = match (lowest(true), lowest(false)) {
        (Some(p), _) => ("https", p, 443),
        (None, Some(p)) => ("http", p, 80),
        (None, None) => ("http", 80, 80),
    };
    if port == default {
        format!("{scheme}://{dns_name}")
    } else {
        format!("{scheme}://{dns_name}:{port}")
    }
}

/// Target states keyed by (group, VM id), for comparisons in tests and waiters.
pub fn target_states(o: &LoadBalancerObserved) -> BTreeMap<(String, String), String> {
    o.targets.iter().map(|t| ((t.group.clone(), t.vm_id.clone()), t.state.clone())).collect()
}
