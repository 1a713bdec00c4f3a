//! `LoadBalancer`: a global external Application Load Balancer (`EXTERNAL_MANAGED`).
//!
//! A Konstacks load balancer named `lb` is these Compute Engine pieces, all named from `lb`
//! ([`Names`]; a name longer than 63 characters is cut and ends in a hash):
//!
//! - per target group `g`: a health check, one unmanaged instance group per zone of its VMs
//!   (named port `http` = the group's port) and a backend service (protocol HTTP, connection
//!   draining = the deregistration delay, backends = the instance groups), all named `lb-g-g`;
//! - the URL map `lb` (default service = the default group; one host rule and path matcher per
//!   routed host, route rules by priority with a prefix match, routes for any host copied into
//!   every host's matcher so that the first matching rule wins as on other clouds). Its id is
//!   the load balancer's id: `projects/<p>/global/urlMaps/<lb>`. HTTP listeners that redirect
//!   use a second URL map `lb-redirect` (`defaultUrlRedirect.httpsRedirect`);
//! - target HTTP proxies `lb-http` (plain) and `lb-redirect`, one target HTTPS proxy
//!   `lb-https-<port>` per HTTPS listener with its certificates and the SSL policy `lb`
//!   (`minTlsVersion` and profile from the TLS policy or the named security policy);
//! - the global external IPv4 address `lb` and one global forwarding rule `lb-p<port>` per
//!   listener (TCP, that port, to its proxy).
//!
//! Konstacks' tags and what GCP does not hold (subnets and firewalls, which a global load
//! balancer does not use, the cost assumption, the listeners' ports, the groups' names, ports,
//! expected status codes and release policies) are kept in the `description` of the URL map and
//! backend services (see [`super::labels`]); the address and the forwarding rules carry the tags
//! as labels. A route without a path prefix matches the prefix `/` and reads back as none.
//! The DNS name is the address (GCP gives load balancers no DNS name).
//!
//! Updates converge every piece to the spec, then delete the pieces of listeners and groups the
//! spec dropped; deletion goes in reverse order (forwarding rules, proxies, URL maps, SSL policy,
//! backend services, health checks, instance groups, address). A VM that is a target cannot be
//! deleted (see [`Gcp::fronting`]), as on the other clouds.

mod create;
mod delete;
mod groups;
mod health;
mod read;

use google_cloud_gax::error::Error as GaxError;
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::{
    LbScheme, ListenerProtocol, LoadBalancer, LoadBalancerObserved, LoadBalancerSpec, TlsPolicy,
};
use konstacks_core::provider::{Api, ProviderResult, TargetHealth};
use konstacks_core::spec::Selector;

use super::labels::Payload;
use super::network::all_pages;
use super::{error, invalid, last_segment, Gcp};

/// Longest Compute Engine resource name.
const MAX_PIECE: usize = 63;
/// Payload field marking the main URL map of a load balancer.
const ROLE: &str = "lb";

/// Named security policies offered (`Catalog::tls_policies`): (name, oldest TLS version, SSL
/// policy profile). `None` as the security policy is `gcp-modern-tls12` for TLS 1.2 and
/// `gcp-restricted-tls13` for TLS 1.3.
pub const TLS_POLICIES: &[(&str, &str, &str)] = &[
    ("gcp-compatible-tls12", "1.2", "COMPATIBLE"),
    ("gcp-modern-tls12", "1.2", "MODERN"),
    ("gcp-restricted-tls12", "1.2", "RESTRICTED"),
    ("gcp-modern-tls13", "1.3", "MODERN"),
    ("gcp-restricted-tls13", "1.3", "RESTRICTED"),
];

/// The names of the pieces of one load balancer.
#[derive(Debug, Clone)]
pub(super) struct Names {
    lb: String,
}

/// `s`, or its first characters and a hash of it when it is longer than a name may be.
fn fit(s: String) -> String {
    if s.len() <= MAX_PIECE {
        return s;
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let cut: String = s.chars().take(MAX_PIECE - 9).collect();
    format!("{}-{h:08x}", cut.trim_end_matches('-'))
}

impl Names {
    pub(super) fn new(lb: &str) -> Self {
        Self { lb: lb.to_string() }
    }
    /// The URL map, SSL policy and address.
    pub(super) fn main(&self) -> String {
        self.lb.clone()
    }
    /// Health check, instance groups and backend service of group `g`.
    pub(super) fn group(&self, g: &str) -> String {
        fit(format!("{}-g-{g}", self.lb))
    }
    /// The redirect URL map and its proxy.
    pub(super) fn redirect(&self) -> String {
        fit(format!("{}-redirect", self.lb))
    }
    /// The plain HTTP proxy.
    pub(super) fn http(&self) -> String {
        fit(format!("{}-http", self.lb))
    }
    /// The HTTPS proxy of the listener on `port`.
    pub(super) fn https(&self, port: u16) -> String {
        fit(format!("{}-https-{port}", self.lb))
    }
    /// The forwarding rule of the listener on `port`.
    pub(super) fn rule(&self, port: u16) -> String {
        fit(format!("{}-p{port}", self.lb))
    }
}

/// What a load balancer's URL map records (its description's payload).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Recorded {
    pub(super) payload: Payload,
    pub(super) groups: Vec<String>,
    pub(super) ports: Vec<u16>,
    pub(super) https_ports: Vec<u16>,
    /// A plain HTTP listener (the proxy `lb-http`).
    pub(super) plain: bool,
    /// An HTTP listener that redirects (the URL map and proxy `lb-redirect`).
    pub(super) redirect: bool,
}

impl Recorded {
    pub(super) fn of(payload: Payload) -> Self {
        let list =
            |k: &str| -> Vec<String> { payload.get(k).and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default() };
        let ports =
            |k: &str| -> Vec<u16> { payload.get(k).and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default() };
        Self {
            groups: list("groups"),
            ports: ports("ports"),
            https_ports: ports("https_ports"),
            plain: payload.get("plain").is_some(),
            redirect: payload.get("redirect").is_some(),
            payload,
        }
    }
}

/// The payload of the URL map of `spec`.
pub(super) fn payload_of(spec: &LoadBalancerSpec) -> ProviderResult<Payload> {
    let groups: Vec<&str> = spec.target_groups.iter().map(|g| g.name.as_str()).collect();
    let ports: Vec<u16> = spec.listeners.iter().map(|l| l.port).collect();
    let https: Vec<u16> =
        spec.listeners.iter().filter(|l| l.protocol == ListenerProtocol::Https).map(|l| l.port).collect();
    let certs: std::collections::BTreeMap<String, &Vec<String>> = spec
        .listeners
        .iter()
        .filter(|l| l.protocol == ListenerProtocol::Https)
        .map(|l| (l.port.to_string(), &l.certificate_ids))
        .collect();
    let redirect = spec.listeners.iter().find_map(|l| l.redirect_to_port);
    let mut p = Payload::new(&spec.tags)
        .with(ROLE, "1")
        .with("region", &spec.region)
        .with("subnets", json(&spec.subnet_ids))
        .with("firewalls", json(&spec.firewall_ids))
        .with("gb", spec.assumed_gb_processed_per_month.to_string())
        .with("tls", tls_word(spec.tls_policy))
        .with("groups", json(&groups))
        .with("ports", json(&ports))
        .with("https_ports", json(&https))
        .with("certs", json(&certs));
    if let Some(r) = redirect {
        p = p.with("redirect", r.to_string());
    }
    if spec.listeners.iter().any(|l| l.protocol == ListenerProtocol::Http && l.redirect_to_port.is_none()) {
        p = p.with("plain", "1");
    }
    if let Some(s) = &spec.security_policy {
        p = p.with("security_policy", s);
    }
    Ok(p)
}

/// JSON of a list or map of strings and numbers (which always serializes).
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

pub(super) fn tls_word(t: TlsPolicy) -> &'static str {
    match t {
        TlsPolicy::Tls13 => "tls13",
        _ => "tls12",
    }
}

/// (oldest TLS version, profile) of the SSL policy of `spec`.
pub(super) fn ssl_profile(spec: &LoadBalancerSpec) -> ProviderResult<(TlsPolicy, &'static str)> {
    match &spec.security_policy {
        Some(name) => {
            let (_, min, profile) = TLS_POLICIES.iter().find(|(n, _, _)| n == name).ok_or_else(|| {
                let names: Vec<&str> = TLS_POLICIES.iter().map(|(n, _, _)| *n).collect();
                invalid(format!("security policy `{name}` is not one GCP offers here: {}", names.join(", ")))
            })?;
            Ok((if *min == "1.3" { TlsPolicy::Tls13 } else { TlsPolicy::Tls12 }, profile))
        }
        None => Ok(match spec.tls_policy {
            TlsPolicy::Tls13 => (TlsPolicy::Tls13, "RESTRICTED"),
            _ => (TlsPolicy::Tls12, "MODERN"),
        }),
    }
}

/// What GCP's global external Application Load Balancer cannot do.
fn check_spec(spec: &LoadBalancerSpec) -> ProviderResult<()> {
    if spec.scheme != LbScheme::Public {
        return Err(invalid(format!(
            "load balancer `{}`: the GCP backend makes global external (public) load balancers only",
            spec.name
        )));
    }
    for l in &spec.listeners {
        match l.protocol {
            ListenerProtocol::Https if l.certificate_ids.is_empty() => {
                return Err(invalid(format!("the HTTPS listener on port {} has no certificate", l.port)))
            }
            ListenerProtocol::Http | ListenerProtocol::Https => {}
            _ => {
                return Err(invalid(format!(
                    "the listener on port {} passes TLS through: GCP's Application Load Balancer cannot",
                    l.port
                )))
            }
        }
        if l.redirect_to_port.is_some_and(|p| !spec.listeners.iter().any(|h| h.port == p && h.protocol.is_tls())) {
            return Err(invalid(format!("the listener on port {} redirects to a port with no HTTPS listener", l.port)));
        }
        // A URL map's `httpsRedirect` changes the scheme and keeps no port: HTTPS means 443.
        if let Some(to) = l.redirect_to_port.filter(|p| *p != 443) {
            return Err(invalid(format!(
                "the listener on port {} redirects to HTTPS on port {to}; GCP redirects HTTP to HTTPS on port 443 \
                 only: serve HTTPS on 443",
                l.port
            )));
        }
    }
    if !spec.target_groups.iter().any(|g| g.name == spec.default_target_group) {
        return Err(invalid(format!("default target group `{}` is not one of the groups", spec.default_target_group)));
    }
    for r in &spec.routes {
        if !spec.target_groups.iter().any(|g| g.name == r.target_group) {
            return Err(invalid(format!("route {} goes to unknown target group `{}`", r.priority, r.target_group)));
        }
    }
    ssl_profile(spec).map(|_| ())
}

/// `Ok(None)` for a 404.
pub(super) fn found<T>(what: impl std::fmt::Display, r: Result<T, GaxError>) -> ProviderResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.http_status_code() == Some(404) => Ok(None),
        Err(e) => Err(error::api(what, e)),
    }
}

impl Gcp {
    fn lb_id(&self, name: &str) -> String {
        format!("projects/{}/global/urlMaps/{name}", self.project)
    }

    /// `projects/<p>/global/<coll>/<name>`, a reference Compute Engine accepts.
    pub(super) fn global_ref(&self, coll: &str, name: &str) -> String {
        format!("projects/{}/global/{coll}/{name}", self.project)
    }

    /// The instance group `name` in `zone`, as a reference.
    pub(super) fn group_ref(&self, zone: &str, name: &str) -> String {
        format!("projects/{}/zones/{zone}/instanceGroups/{name}", self.project)
    }

    /// The load balancers (by name) one of whose instance groups holds the instance `name` of
    /// `zone`: deleting it would silently take it out of them, so the VM's delete refuses.
    pub(super) async fn fronting(&self, zone: &str, name: &str) -> ProviderResult<Vec<String>> {
        let groups = all_pages(|token| {
            let req = self.instance_groups.list().set_project(&self.project).set_zone(zone).set_page_token(token);
            async move { req.send().await.map(|p| (p.items, p.next_page_token)) }
        })
        .await
        .map_err(|e| error::api(format!("listing the instance groups of `{zone}`"), e))?;
        let mut out = Vec::new();
        for g in groups {
            let Some(lb) = super::labels::from_description(g.description.as_deref())
                .and_then(|p| p.get("lb_name").map(str::to_string))
            else {
                continue;
            };
            let members = self.group_members(zone, g.name.as_deref().unwrap_or_default()).await?;
            if members.iter().any(|m| last_segment(m) == name && m.contains(&format!("/zones/{zone}/"))) {
                out.push(lb);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Refuse to delete an instance that is a load balancer target.
    pub(super) async fn refuse_if_target(&self, zone: &str, name: &str) -> ProviderResult<()> {
        let lbs = self.fronting(zone, name).await?;
        if lbs.is_empty() {
            return Ok(());
        }
        Err(ProviderError::new(
            ErrorKind::Conflict,
            format!("instance `{name}` is a target of load balancer(s) {}; remove it from them first", lbs.join(", ")),
        ))
    }

    async fn get_url_map(&self, name: &str) -> ProviderResult<Option<google_cloud_compute_v1::model::UrlMap>> {
        let r = self.url_maps.get().set_project(&self.project).set_url_map(name).send().await;
        found(format!("reading URL map `{name}`"), r)
    }

    /// What the URL map of load balancer `name` records, if it exists.
    async fn recorded(&self, name: &str) -> ProviderResult<Option<Recorded>> {
        let map = self.get_url_map(name).await?;
        Ok(map.and_then(|m| super::labels::from_description(m.description.as_deref())).map(Recorded::of))
    }
}

#[async_trait::async_trait]
impl Api<LoadBalancer> for Gcp {
    async fn create(&self, cx: &OpContext, spec: &LoadBalancerSpec) -> ProviderResult<LoadBalancerObserved> {
        self.check_region(&spec.region)?;
        check_spec(spec)?;
        // An earlier attempt whose answer was lost left its record: converge from it.
        let old = self.recorded(&spec.name).await?.unwrap_or_default();
        if old
            .payload
            .stack()
            .is_some_and(|s| Some(s) != spec.tags.get(konstacks_core::kind::TAG_STACK).map(String::as_str))
        {
            return Err(ProviderError::new(
                ErrorKind::AlreadyExists,
                format!("load balancer `{}` exists and belongs to another stack", spec.name),
            ));
        }
        let fresh = old == Recorded::default();
        if let Err(e) = self.converge(cx, spec, &old).await {
            // A failed create leaves nothing behind (the engine retries it from scratch), but a
            // name taken by someone else is theirs: nothing is taken down then.
            if fresh && e.kind() != ErrorKind::AlreadyExists {
                if let Err(undo) = self.undo_create(cx, spec).await {
                    tracing::warn!(error = %undo, "could not take down the pieces of a failed load balancer create");
                }
            }
            return Err(e);
        }
        self.lb_observed(cx, &spec.name).await?.ok_or_else(|| {
            ProviderError::new(ErrorKind::Transient, format!("load balancer `{}` is not readable yet", spec.name))
        })
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<LoadBalancerObserved>> {
        let names: Vec<String> = match sel {
            Selector::Ids(ids) => ids.iter().map(|i| last_segment(i).to_string()).collect(),
            Selector::Stack(stack) => {
                let maps = all_pages(|token| {
                    let req = self.url_maps.list().set_project(&self.project).set_page_token(token);
                    async move { req.send().await.map(|p| (p.items, p.next_page_token)) }
                })
                .await
                .map_err(|e| error::api("listing URL maps", e))?;
                maps.into_iter()
                    .filter(|m| {
                        super::labels::from_description(m.description.as_deref())
                            .is_some_and(|p| p.get(ROLE).is_some() && p.stack() == Some(stack.as_str()))
                    })
                    .filter_map(|m| m.name)
                    .collect()
            }
            _ => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for n in names {
            if let Some(o) = self.lb_observed(cx, &n).await? {
                if matches!(sel, Selector::Ids(ids) if !ids.contains(&o.id)) {
                    continue;
                }
                out.push(o);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &LoadBalancerSpec) -> ProviderResult<LoadBalancerObserved> {
        let name = last_segment(id);
        let what = format!("load balancer `{name}`");
        super::immutable(&what, "name", &name, &spec.name.as_str())?;
        check_spec(spec)?;
        let old =
            self.recorded(name).await?.ok_or_else(|| ProviderError::not_found(format!("{what} does not exist")))?;
        super::immutable(&what, "region", &old.payload.get("region").unwrap_or_default(), &spec.region.as_str())?;
        self.converge(cx, spec, &old).await?;
        self.lb_observed(cx, name).await?.ok_or_else(|| ProviderError::not_found(format!("{what} does not exist")))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let name = last_segment(id);
        let Some(old) = self.recorded(name).await? else {
            // Gone already, or a create that failed before its URL map: clear what its name gives.
            return self.release_address(cx, &Names::new(name)).await;
        };
        self.teardown(cx, name, &old).await
    }

    async fn register_targets(&self, cx: &OpContext, id: &str, group: &str, targets: &[String]) -> ProviderResult<()> {
        self.change_targets(cx, last_segment(id), group, targets, true).await
    }

    async fn deregister_targets(
        &self,
        cx: &OpContext,
        id: &str,
        group: &str,
        targets: &[String],
    ) -> ProviderResult<()> {
        self.change_targets(cx, last_segment(id), group, targets, false).await
    }

    async fn target_health(&self, cx: &OpContext, id: &str) -> ProviderResult<Vec<TargetHealth>> {
        let name = last_segment(id);
        let old = self
            .recorded(name)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("load balancer `{name}` does not exist")))?;
        self.health_of(cx, name, &old).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_in_63_characters() {
        let n = Names::new(&"a".repeat(50));
        let g = n.group(&"b".repeat(32));
        assert!(g.len() <= MAX_PIECE, "{g}");
        assert_ne!(g, n.group(&"c".repeat(32)));
        assert_eq!(Names::new("web").group("app"), "web-g-app");
        assert_eq!(Names::new("web").rule(443), "web-p443");
    }

    #[test]
    fn named_policies_have_their_floor() {
        for (name, min, _) in TLS_POLICIES {
            assert_eq!(name.ends_with("tls13"), *min == "1.3", "{name}");
        }
    }
}
