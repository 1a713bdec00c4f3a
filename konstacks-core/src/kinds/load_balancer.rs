//! The load balancer kind: a regional HTTP(S) load balancer in subnets of one VPC, with
//! listeners (HTTP, HTTPS with certificates for SNI, TLS passthrough), target groups of VMs with
//! health checks, host and path routing rules, and a minimum TLS version.
//!
//! The builder, its fields, its [`KindDef`] and its outputs live here; its resolved spec and
//! observed state in `spec`; the checks that validate a builder in `check`.

mod check;
mod spec;
#[cfg(test)]
mod tests;

use crate::kind::expr::Expr;
use crate::kind::fronts::{self, Fronted, ReleasePolicy};
use crate::kind::price::{CostLine, PriceCx};
use crate::kind::{always_offered, Field, Kind, KindDef, LowerCx, ResourceKind, StackCx, Tags};
use crate::kinds::firewall::Firewall;
use crate::kinds::subnet::Subnet;
use crate::kinds::vm::Vm;
use crate::model::refs::{Output, Ref};

pub use spec::{
    target_states, url_of, HealthCheckSpec, ListenerSpec, LoadBalancerObserved, LoadBalancerSpec, RouteSpec,
    TargetGroupSpec, TargetState,
};

/// Data processed per month assumed by the cost estimate unless the builder says otherwise.
pub const DEFAULT_GB_PROCESSED_PER_MONTH: f64 = 100.0;
/// Hours in a billing month, as the clouds count them.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Whether a load balancer is reachable from the internet.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbScheme {
    /// Internet-facing: a public DNS name (and, where the cloud gives one, a public address).
    Public,
    /// Reachable only from inside the VPC.
    Internal,
}

/// The oldest TLS version an HTTPS listener accepts.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsPolicy {
    /// TLS 1.2 and 1.3 (the default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// The protocol of a listener.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS, terminated at the load balancer.
    Https,
    /// TLS passed through to the targets unopened: the VMs hold the certificate and terminate
    /// TLS themselves; the load balancer sees neither hosts nor paths.
    TlsPassthrough,
}

impl ListenerProtocol {
    /// Whether clients speak TLS to it (HTTPS, or TLS passed through to the targets).
    pub fn is_tls(self) -> bool {
        matches!(self, ListenerProtocol::Https | ListenerProtocol::TlsPassthrough)
    }
}

/// How a health check probes a target.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthProtocol {
    /// `GET path` over HTTP, expecting one of the expected status codes (the default).
    #[default]
    Http,
    /// `GET path` over HTTPS (the target's certificate is not verified).
    Https,
    /// A TCP connection that opens.
    Tcp,
}

/// A certificate of an HTTPS listener: the id output of a certificate of the stack (`cert.id()`,
/// which orders the certificate before the load balancer), or the provider id of a certificate
/// managed elsewhere.
#[derive(Debug, Clone)]
pub enum CertificateId {
    /// Known after the resource it comes from is applied.
    Output(Output<String>),
    /// A provider id known now (an ARN, a certificate UUID).
    Existing(String),
}

impl From<Output<String>> for CertificateId {
    fn from(o: Output<String>) -> Self {
        CertificateId::Output(o)
    }
}
impl From<&str> for CertificateId {
    fn from(id: &str) -> Self {
        CertificateId::Existing(id.to_string())
    }
}
impl From<String> for CertificateId {
    fn from(id: String) -> Self {
        CertificateId::Existing(id)
    }
}

/// How the targets of a target group are probed. The defaults: HTTP `GET /` on the traffic
/// port every 30 s, 5 s timeout, 3 successes to become healthy, 3 failures to become unhealthy,
/// success on `200-399`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealthCheck {
    /// How to probe.
    pub protocol: HealthProtocol,
    /// The port to probe; `None` probes the target group's port.
    pub port: Option<u32>,
    /// The path an HTTP(S) probe requests (starts with `/`).
    pub path: String,
    /// Seconds between probes (5 to 300).
    pub interval_s: u32,
    /// Seconds a probe may take (at least 2, below the interval).
    pub timeout_s: u32,
    /// Consecutive successes that make a target healthy (2 to 10).
    pub healthy_threshold: u32,
    /// Consecutive failures that make a target unhealthy (2 to 10).
    pub unhealthy_threshold: u32,
    /// Status codes that count as success: `200`, `200-399` or `200,204` (HTTP(S) only).
    pub expected_status: String,
}

impl Default for TargetHealthCheck {
    fn default() -> Self {
        Self {
            protocol: HealthProtocol::Http,
            port: None,
            path: "/".into(),
            interval_s: 30,
            timeout_s: 5,
            healthy_threshold: 3,
            unhealthy_threshold: 3,
            expected_status: "200-399".into(),
        }
    }
}

impl TargetHealthCheck {
    /// `GET path` over HTTP.
    pub fn http(path: impl Into<String>) -> Self {
        Self { path: path.into(), ..Self::default() }
    }

    /// `GET path` over HTTPS.
    pub fn https(path: impl Into<String>) -> Self {
        Self { protocol: HealthProtocol::Https, path: path.into(), ..Self::default() }
    }

    /// A TCP connection.
    pub fn tcp() -> Self {
        Self { protocol: HealthProtocol::Tcp, ..Self::default() }
    }

    /// Probe this port instead of the target group's.
    pub fn port(mut self, port: u32) -> Self {
        self.port = Some(port);
        self
    }

    /// Seconds between probes and seconds a probe may take.
    pub fn timing(mut self, interval_s: u32, timeout_s: u32) -> Self {
        self.interval_s = interval_s;
        self.timeout_s = timeout_s;
        self
    }

    /// Consecutive successes to become healthy and failures to become unhealthy.
    pub fn thresholds(mut self, healthy: u32, unhealthy: u32) -> Self {
        self.healthy_threshold = healthy;
        self.unhealthy_threshold = unhealthy;
        self
    }

    /// Status codes that count as success (`200`, `200-399`, `200,204`).
    pub fn expected_status(mut self, codes: impl Into<String>) -> Self {
        self.expected_status = codes.into();
        self
    }
}

/// A named group of VMs that receive traffic on one port.
#[derive(Debug, Clone)]
pub struct TargetGroup {
    pub(crate) name: String,
    pub(crate) port: u32,
    pub(crate) vms: Vec<Ref<Vm>>,
    pub(crate) health: TargetHealthCheck,
    pub(crate) deregistration_delay_s: u32,
    pub(crate) release: ReleasePolicy,
}

impl TargetGroup {
    /// A group named `name` (lowercase letters, digits and `-`, at most 32 characters) whose
    /// targets listen on `port`, with no VM yet, the default health check and a 30 s
    /// deregistration delay.
    pub fn new(name: impl Into<String>, port: u32) -> Self {
        Self {
            name: name.into(),
            port,
            vms: Vec::new(),
            health: TargetHealthCheck::default(),
            deregistration_delay_s: 30,
            release: ReleasePolicy::default(),
        }
    }

    /// Add these VMs as targets.
    pub fn vms(mut self, vms: impl IntoIterator<Item = Ref<Vm>>) -> Self {
        self.vms.extend(vms);
        self
    }

    /// Add one VM as a target.
    pub fn vm(mut self, vm: Ref<Vm>) -> Self {
        self.vms.push(vm);
        self
    }

    /// How targets are probed.
    pub fn health_check(mut self, check: TargetHealthCheck) -> Self {
        self.health = check;
        self
    }

    /// Seconds a target that leaves the group keeps serving requests in flight (0 to 3600).
    pub fn deregistration_delay_s(mut self, seconds: u32) -> Self {
        self.deregistration_delay_s = seconds;
        self
    }

    /// How releases replace this group's targets: at most `max_surge` new targets at once
    /// above the group's size, and at most `max_unavailable` old ones out before their
    /// replacements are healthy (default 1 and 0).
    pub fn rolling(mut self, max_surge: u32, max_unavailable: u32) -> Self {
        self.release.max_surge = max_surge;
        self.release.max_unavailable = max_unavailable;
        self
    }

    /// Seconds a new target has to pass the health check in a release before the release is
    /// rolled back (10 to 3600, default 300).
    pub fn healthy_within_s(mut self, seconds: u32) -> Self {
        self.release.healthy_within_s = seconds;
        self
    }
}

/// A routing rule: requests for a host (and a path prefix) go to a target group. Rules are
/// tried in the order they were added; requests no rule matches go to the default group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub(crate) host: Option<String>,
    pub(crate) path_prefix: Option<String>,
    pub(crate) target: String,
}

impl Route {
    /// Requests for `host` (`shop.example.com`, or a wildcard such as `*.example.com`).
    pub fn host(host: impl Into<String>) -> Self {
        Self { host: Some(host.into()), path_prefix: None, target: String::new() }
    }

    /// Requests for any host (narrow it with [`Route::path_prefix`]).
    pub fn any_host() -> Self {
        Self { host: None, path_prefix: None, target: String::new() }
    }

    /// Only requests whose path starts with `prefix` (`/api`).
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Send the matching requests to the target group named `group`.
    pub fn to(mut self, group: impl Into<String>) -> Self {
        self.target = group.into();
        self
    }
}

#[derive(Debug, Clone)]
pub(crate) enum ListenerKind {
    Http { redirect: bool },
    Https { certificates: Vec<CertificateId> },
    TlsPassthrough,
}

#[derive(Debug, Clone)]
pub(crate) struct Listener {
    pub(crate) port: u32,
    pub(crate) kind: ListenerKind,
}

/// A regional HTTP(S) load balancer.
#[derive(Debug, Clone)]
pub struct LoadBalancer {
    pub(crate) scheme: LbScheme,
    pub(crate) subnets: Vec<Ref<Subnet>>,
    pub(crate) firewalls: Vec<Ref<Firewall>>,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) target_groups: Vec<TargetGroup>,
    pub(crate) routes: Vec<Route>,
    pub(crate) default_to: Option<String>,
    pub(crate) tls_policy: TlsPolicy,
    pub(crate) security_policy: Option<String>,
    pub(crate) gb_processed: f64,
}

impl LoadBalancer {
    fn with_scheme(scheme: LbScheme, subnets: impl IntoIterator<Item = Ref<Subnet>>) -> Self {
        Self {
            scheme,
            subnets: subnets.into_iter().collect(),
            firewalls: Vec::new(),
            listeners: Vec::new(),
            target_groups: Vec::new(),
            routes: Vec::new(),
            default_to: None,
            tls_policy: TlsPolicy::default(),
            security_policy: None,
            gb_processed: DEFAULT_GB_PROCESSED_PER_MONTH,
        }
    }

    /// An internet-facing load balancer in `subnets` (public ones, in at least two zones).
    pub fn public(subnets: impl IntoIterator<Item = Ref<Subnet>>) -> Self {
        Self::with_scheme(LbScheme::Public, subnets)
    }

    /// A load balancer reachable only from inside the VPC of `subnets`.
    pub fn internal(subnets: impl IntoIterator<Item = Ref<Subnet>>) -> Self {
        Self::with_scheme(LbScheme::Internal, subnets)
    }

    /// Attach a firewall (of the subnets' VPC).
    pub fn firewall(mut self, fw: Ref<Firewall>) -> Self {
        self.firewalls.push(fw);
        self
    }

    /// An HTTP listener on `port`. When the load balancer has an HTTPS listener, it answers
    /// every request with a redirect to HTTPS; see [`LoadBalancer::http_without_redirect`].
    pub fn http(mut self, port: u32) -> Self {
        self.listeners.push(Listener { port, kind: ListenerKind::Http { redirect: true } });
        self
    }

    /// An HTTP listener on `port` that serves plain HTTP even beside an HTTPS listener.
    pub fn http_without_redirect(mut self, port: u32) -> Self {
        self.listeners.push(Listener { port, kind: ListenerKind::Http { redirect: false } });
        self
    }

    /// An HTTPS listener on `port` with one certificate (`cert.id()`, or an existing id).
    pub fn https(self, port: u32, certificate_id: impl Into<CertificateId>) -> Self {
        self.https_certificates(port, [certificate_id.into()])
    }

    /// An HTTPS listener on `port` with several certificates, chosen by SNI; the first is the
    /// default for clients that send no server name.
    pub fn https_certificates<C: Into<CertificateId>>(mut self, port: u32, ids: impl IntoIterator<Item = C>) -> Self {
        let certificates = ids.into_iter().map(Into::into).collect();
        self.listeners.push(Listener { port, kind: ListenerKind::Https { certificates } });
        self
    }

    /// A listener on `port` that passes TLS through to the targets unopened (DigitalOcean's
    /// `tls_passthrough`): the VMs hold the certificate and terminate TLS themselves, so the
    /// load balancer needs no certificate, applies no TLS policy and cannot route by host or
    /// path: every connection goes to the default target group. An HTTP listener beside it
    /// redirects to it as it would to an HTTPS listener. Providers whose load balancers cannot
    /// pass TLS through (AWS's and GCP's application load balancers) refuse it at synth.
    pub fn tls_passthrough(mut self, port: u32) -> Self {
        self.listeners.push(Listener { port, kind: ListenerKind::TlsPassthrough });
        self
    }

    /// Add a target group.
    pub fn target_group(mut self, group: TargetGroup) -> Self {
        self.target_groups.push(group);
        self
    }

    /// Add a routing rule (tried in the order added).
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// The target group of requests no rule matches (optional when there is one group).
    pub fn default_to(mut self, group: impl Into<String>) -> Self {
        self.default_to = Some(group.into());
        self
    }

    /// The oldest TLS version HTTPS listeners accept (default TLS 1.2).
    pub fn tls_policy(mut self, policy: TlsPolicy) -> Self {
        self.tls_policy = policy;
        self
    }

    /// A security policy of the provider by name (`ELBSecurityPolicy-TLS13-1-2-Res-2021-06` on
    /// AWS), for ciphers the portable [`TlsPolicy`] does not pin. Checked against the provider's
    /// catalogue before any cloud call; the oldest TLS version it accepts becomes the TLS policy.
    pub fn security_policy(mut self, name: impl Into<String>) -> Self {
        self.security_policy = Some(name.into());
        self
    }

    /// GB of traffic processed per month assumed by the cost estimate (default 100); it changes
    /// nothing on the cloud.
    pub fn assume_gb_processed_per_month(mut self, gb: f64) -> Self {
        self.gb_processed = gb;
        self
    }

    /// Whether it is internet-facing.
    pub fn scheme(&self) -> LbScheme {
        self.scheme
    }

    /// Its subnets.
    pub fn subnets(&self) -> &[Ref<Subnet>] {
        &self.subnets
    }
}

/// Fields of a load balancer.
pub mod field {
    use super::*;
    /// Physical name.
    pub const NAME: Field<LoadBalancer, String> = Field::new("name");
    /// Region.
    pub const REGION: Field<LoadBalancer, String> = Field::new("region");
    /// Public or internal.
    pub const SCHEME: Field<LoadBalancer, LbScheme> = Field::new("scheme");
    /// Ids of the subnets.
    pub const SUBNET_IDS: Field<LoadBalancer, Vec<String>> = Field::new("subnet_ids");
    /// Ids of the attached firewalls.
    pub const FIREWALL_IDS: Field<LoadBalancer, Vec<String>> = Field::new("firewall_ids");
    /// Listeners, by port.
    pub const LISTENERS: Field<LoadBalancer, Vec<ListenerSpec>> = Field::new("listeners");
    /// Target groups, by name.
    pub const TARGET_GROUPS: Field<LoadBalancer, Vec<TargetGroupSpec>> = Field::new("target_groups");
    /// Routing rules, by priority.
    pub const ROUTES: Field<LoadBalancer, Vec<RouteSpec>> = Field::new("routes");
    /// The target group of requests no rule matches.
    pub const DEFAULT_TARGET_GROUP: Field<LoadBalancer, String> = Field::new("default_target_group");
    /// Oldest TLS version accepted.
    pub const TLS_POLICY: Field<LoadBalancer, TlsPolicy> = Field::new("tls_policy");
    /// The provider's security policy by name, when one was chosen.
    pub const SECURITY_POLICY: Field<LoadBalancer, Option<String>> = Field::new("security_policy");
    /// GB processed per month assumed by the cost estimate (no effect on the cloud).
    pub const ASSUMED_GB_PROCESSED_PER_MONTH: Field<LoadBalancer, f64> = Field::new("assumed_gb_processed_per_month");
    /// Tags.
    pub const TAGS: Field<LoadBalancer, Tags> = Field::new("tags");
}

crate::kind::observed!(LoadBalancerObserved);

/// The load balancer kind. A replacement creates the new one first (its name gets a new
/// suffix), so traffic can move before the old one goes.
pub const LOAD_BALANCER: KindDef = KindDef {
    id: "load_balancer",
    fields: &[
        field::ASSUMED_GB_PROCESSED_PER_MONTH.name(),
        field::DEFAULT_TARGET_GROUP.name(),
        field::FIREWALL_IDS.name(),
        field::LISTENERS.name(),
        field::NAME.name(),
        field::REGION.name(),
        field::ROUTES.name(),
        field::SCHEME.name(),
        field::SECURITY_POLICY.name(),
        field::SUBNET_IDS.name(),
        field::TAGS.name(),
        field::TARGET_GROUPS.name(),
        field::TLS_POLICY.name(),
    ],
    force_new: &[field::NAME.name(), field::SCHEME.name(), field::REGION.name()],
    secrets: &[],
    rotatable_secrets: &[],
    create_before_destroy: true,
    holds_data: false,
    deletion_protection: None,
    price: Some(price),
    offered_by: always_offered,
    check_stack,
    fronts: Some(fronted),
    version_of: None,
};

impl ResourceKind for LoadBalancer {
    type Spec = LoadBalancerSpec;
    type Observed = LoadBalancerObserved;
    const KIND: Kind = Kind::of(&LOAD_BALANCER);

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let subnets: Vec<Option<usize>> =
            self.subnets.iter().map(|s| cx.target(*s, "a load balancer subnet")).collect();
        let fws: Vec<Option<usize>> =
            self.firewalls.iter().map(|f| cx.target(*f, "a load balancer firewall")).collect();
        check::subnets(cx, self, &subnets);
        check::assumption(cx, self.gb_processed);
        let listeners = check::listeners(cx, self);
        let groups = check::target_groups(cx, self);
        let default = check::routing(cx, self);
        check::passthrough(cx, self, &default);
        let tls_policy = check::security_policy(cx, self);
        check::one_pool(cx, self);
        let (subnet_ids, firewall_ids) = (cx.ids_of(&check::distinct(&subnets)), cx.ids_of(&check::distinct(&fws)));
        cx.set(field::SCHEME, self.scheme);
        cx.set_expr(field::SUBNET_IDS, subnet_ids);
        cx.set_expr(field::FIREWALL_IDS, firewall_ids);
        cx.set_expr(field::LISTENERS, Expr::List(listeners));
        cx.set_expr(field::TARGET_GROUPS, Expr::List(groups));
        cx.set(field::ROUTES, route_specs(&self.routes));
        cx.set(field::DEFAULT_TARGET_GROUP, default);
        cx.set(field::TLS_POLICY, tls_policy);
        cx.set(field::SECURITY_POLICY, self.security_policy.clone());
        let gb = if self.gb_processed.is_finite() { self.gb_processed.max(0.0) } else { 0.0 };
        cx.set(field::ASSUMED_GB_PROCESSED_PER_MONTH, gb);
    }
}

/// The routing rules as specs, prioritised in the order they were added.
fn route_specs(routes: &[Route]) -> Vec<RouteSpec> {
    (1u32..)
        .zip(routes)
        .map(|(priority, r)| RouteSpec {
            priority,
            host: r.host.as_ref().map(|h| h.to_ascii_lowercase()),
            path_prefix: r.path_prefix.clone(),
            target_group: r.target.clone(),
        })
        .collect()
}

/// The target groups of a lowered load balancer, with the stack's VMs each one holds.
fn fronted(fields: &crate::kind::FieldMap<Expr>) -> Vec<Fronted> {
    let Some(Expr::List(groups)) = fields.get(field::TARGET_GROUPS.name()) else { return Vec::new() };
    groups
        .iter()
        .filter_map(|g| match g {
            Expr::Map(m) => Some(m),
            _ => None,
        })
        .map(|m| {
            let lit = |k: &str| match m.get(k) {
                Some(Expr::Lit(v)) => Some(v.clone()),
                _ => None,
            };
            let health: Option<HealthCheckSpec> = lit("health_check").and_then(|v| serde_json::from_value(v).ok());
            Fronted {
                group: lit("name").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                targets: fronts::target_nodes(m.get("vm_ids")),
                drain_s: fronts::literal_u32(m, "deregistration_delay_s").unwrap_or(0),
                interval_s: health.map_or(30, |h| h.interval_s),
                release: lit("release").and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
            }
        })
        .collect()
}

/// Subnets and firewalls of one VPC, and target VMs in that VPC.
fn check_stack(cx: &mut StackCx<'_>) {
    // The builders live as long as the stack, not the borrow of `cx`: no copy needed.
    let lbs: Vec<(usize, &LoadBalancer)> = cx.of_kind::<LoadBalancer>().collect();
    for (i, lb) in lbs {
        crate::kinds::database::check_network(cx, i, "load balancer", &lb.subnets, &lb.firewalls);
        check::target_vpcs(cx, i, lb);
    }
}

fn price(cx: &PriceCx<'_>) -> Vec<CostLine> {
    let p = &cx.catalog.pricing;
    let region = cx.region();
    let multiplier = p.multiplier(&region);
    let mut hours = format!("load balancer, {HOURS_PER_MONTH} h");
    if multiplier != 1.0 {
        hours.push_str(&format!(" x {multiplier} region {region}"));
    }
    let hourly = CostLine::per_unit("load_balancer", hours, HOURS_PER_MONTH * multiplier, p.load_balancer_hour);
    let gb = cx.get(field::ASSUMED_GB_PROCESSED_PER_MONTH).unwrap_or(DEFAULT_GB_PROCESSED_PER_MONTH);
    let what = format!("{gb} GB processed per month (assumed; set `.assume_gb_processed_per_month`)");
    vec![hourly, CostLine::per_unit("data_processed", what, gb, p.load_balancer_gb_processed)]
}

/// Outputs of a load balancer, available after apply.
impl Ref<LoadBalancer> {
    /// The DNS name clients use.
    pub fn dns_name(&self) -> Output<String> {
        self.output("dns_name", false)
    }
    /// Its fixed public address; null where the cloud gives none (an internal one, or clouds
    /// that serve load balancers from changing addresses).
    pub fn ip(&self) -> Output<String> {
        self.output("ip", false)
    }
    /// The provider's id.
    pub fn id(&self) -> Output<String> {
        self.output("id", false)
    }
    /// `https://<dns_name>` when it has an HTTPS listener, else `http://<dns_name>`.
    pub fn url(&self) -> Output<String> {
        self.output("url", false)
    }
}
