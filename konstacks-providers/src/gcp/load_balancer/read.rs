//! Reading a load balancer back from its pieces.

use std::collections::BTreeMap;

use google_cloud_compute_v1::model::health_check::Type as HcType;
use google_cloud_compute_v1::model::ssl_policy::MinTlsVersion;
use google_cloud_compute_v1::model::{BackendService, HealthCheck, UrlMap};
use konstacks_core::clock::OpContext;
use konstacks_core::kinds::load_balancer::url_of;
use konstacks_core::kinds::{
    HealthCheckSpec, HealthProtocol, LbScheme, ListenerProtocol, ListenerSpec, LoadBalancerObserved, RouteSpec,
    TargetGroupSpec, TargetState, TlsPolicy,
};
use konstacks_core::provider::ProviderResult;

use super::super::labels::{self, Payload};
use super::super::{last_segment, relative, Gcp};
use super::{found, Names, Recorded};

fn u32_of(v: Option<i32>) -> u32 {
    v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

/// The health check as a spec (`expected` is the recorded expected status).
pub(super) fn health_spec(hc: &HealthCheck, expected: Option<String>) -> HealthCheckSpec {
    let fixed = |spec: Option<&str>, port: Option<i32>| {
        (spec == Some("USE_FIXED_PORT")).then_some(port).flatten().and_then(|p| u16::try_from(p).ok())
    };
    let (protocol, port, path) = match hc.r#type {
        Some(HcType::Tcp) => {
            let t = hc.tcp_health_check.as_ref();
            let spec = t.and_then(|t| t.port_specification.as_ref()).and_then(|s| s.name());
            (HealthProtocol::Tcp, fixed(spec, t.and_then(|t| t.port)), None)
        }
        Some(HcType::Https) => {
            let t = hc.https_health_check.as_ref();
            let spec = t.and_then(|t| t.port_specification.as_ref()).and_then(|s| s.name());
            (HealthProtocol::Https, fixed(spec, t.and_then(|t| t.port)), t.and_then(|t| t.request_path.clone()))
        }
        _ => {
            let t = hc.http_health_check.as_ref();
            let spec = t.and_then(|t| t.port_specification.as_ref()).and_then(|s| s.name());
            (HealthProtocol::Http, fixed(spec, t.and_then(|t| t.port)), t.and_then(|t| t.request_path.clone()))
        }
    };
    HealthCheckSpec {
        protocol,
        port,
        path,
        interval_s: u32_of(hc.check_interval_sec),
        timeout_s: u32_of(hc.timeout_sec),
        healthy_threshold: u32_of(hc.healthy_threshold),
        unhealthy_threshold: u32_of(hc.unhealthy_threshold),
        expected_status: expected,
    }
}

/// Routes of a URL map: route rules by priority; the host is the host rule's unless the rule
/// is one of the any-host matcher's (copied into every host's matcher).
fn routes_of(m: &UrlMap, group_of: &BTreeMap<String, String>) -> Vec<RouteSpec> {
    let host_of: BTreeMap<&str, &str> =
        m.host_rules.iter().filter_map(|h| Some((h.path_matcher.as_deref()?, h.hosts.first()?.as_str()))).collect();
    let any: Vec<i32> = m
        .path_matchers
        .iter()
        .filter(|pm| pm.name.as_deref().and_then(|n| host_of.get(n)) == Some(&"*"))
        .flat_map(|pm| pm.route_rules.iter().filter_map(|r| r.priority))
        .collect();
    let mut out: BTreeMap<i32, RouteSpec> = BTreeMap::new();
    for pm in &m.path_matchers {
        let host = pm.name.as_deref().and_then(|n| host_of.get(n)).copied().unwrap_or("*");
        for r in &pm.route_rules {
            let Some(priority) = r.priority else { continue };
            let prefix = r.match_rules.first().and_then(|x| x.prefix_match.clone()).filter(|p| p != "/");
            let group = r.service.as_deref().map(last_segment).and_then(|s| group_of.get(s)).cloned();
            let host = (host != "*" && !any.contains(&priority)).then(|| host.to_string());
            out.entry(priority).or_insert(RouteSpec {
                priority: u32::try_from(priority).unwrap_or(0),
                host,
                path_prefix: prefix,
                target_group: group.unwrap_or_default(),
            });
        }
    }
    out.into_values().collect()
}

impl Gcp {
    /// The load balancer `name`, read from its pieces; `None` when its URL map is not one.
    pub(super) async fn lb_observed(&self, cx: &OpContext, name: &str) -> ProviderResult<Option<LoadBalancerObserved>> {
        let Some(map) = self.get_url_map(name).await? else { return Ok(None) };
        let Some(payload) =
            labels::from_description(map.description.as_deref()).filter(|p| p.get(super::ROLE).is_some())
        else {
            return Ok(None);
        };
        let rec = Recorded::of(payload.clone());
        let n = Names::new(name);
        let p = &self.project;
        let r = self.addresses.get().set_project(p).set_address(n.main()).send().await;
        let ip = found(format!("reading address `{name}`"), r)?.and_then(|a| a.address).unwrap_or_default();

        let recorded_certs: BTreeMap<String, Vec<String>> =
            payload.get("certs").and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default();
        let mut listeners = Vec::new();
        for port in &rec.ports {
            let r = self.forwarding_rules.get().set_project(p).set_forwarding_rule(n.rule(*port)).send().await;
            let Some(rule) = found(format!("reading forwarding rule `{}`", n.rule(*port)), r)? else { continue };
            let target = rule.target.clone().unwrap_or_default();
            let proxy = last_segment(&target).to_string();
            if target.contains("/targetHttpsProxies/") {
                let r = self.https_proxies.get().set_project(p).set_target_https_proxy(&proxy).send().await;
                let certs = found(format!("reading target HTTPS proxy `{proxy}`"), r)?
                    .map(|x| x.ssl_certificates)
                    .unwrap_or_default();
                let given = recorded_certs.get(&port.to_string()).cloned().unwrap_or_default();
                let ids = certs
                    .iter()
                    .map(|c| {
                        let rel = relative(c);
                        given.iter().find(|g| relative(&self.cert_ref(g)) == rel).cloned().unwrap_or(rel)
                    })
                    .collect();
                listeners.push(ListenerSpec {
                    port: *port,
                    protocol: ListenerProtocol::Https,
                    certificate_ids: ids,
                    redirect_to_port: None,
                });
            } else {
                let redirect =
                    (proxy == n.redirect()).then(|| payload.get("redirect").and_then(|r| r.parse().ok())).flatten();
                listeners.push(ListenerSpec {
                    port: *port,
                    protocol: ListenerProtocol::Http,
                    certificate_ids: Vec::new(),
                    redirect_to_port: redirect,
                });
            }
        }

        let mut groups = Vec::new();
        let mut group_of = BTreeMap::new();
        let mut targets = Vec::new();
        for g in &rec.groups {
            let bname = n.group(g);
            let r = self.backend_services.get().set_project(p).set_backend_service(&bname).send().await;
            let Some(bs) = found(format!("reading backend service `{bname}`"), r)? else { continue };
            group_of.insert(bname.clone(), g.clone());
            let (spec, states) = self.group_of(cx, &bs, g).await?;
            groups.push(spec);
            targets.extend(states);
        }
        let https = listeners.iter().any(|l| l.protocol == ListenerProtocol::Https);
        let mut tls_policy = if payload.get("tls") == Some("tls13") { TlsPolicy::Tls13 } else { TlsPolicy::Tls12 };
        if https {
            let r = self.ssl_policies.get().set_project(p).set_ssl_policy(n.main()).send().await;
            if let Some(s) = found(format!("reading SSL policy `{name}`"), r)? {
                if payload.get("security_policy").is_none() {
                    tls_policy = if s.min_tls_version == Some(MinTlsVersion::Tls13) {
                        TlsPolicy::Tls13
                    } else {
                        TlsPolicy::Tls12
                    };
                }
            }
        }
        let default_target_group =
            map.default_service.as_deref().map(last_segment).and_then(|s| group_of.get(s)).cloned().unwrap_or_default();
        let url = url_of(&ip, &listeners);
        Ok(Some(LoadBalancerObserved {
            id: self.lb_id(name),
            name: name.to_string(),
            region: payload.get("region").unwrap_or_default().to_string(),
            scheme: LbScheme::Public,
            subnet_ids: list(&payload, "subnets"),
            firewall_ids: list(&payload, "firewalls"),
            listeners,
            target_groups: groups,
            routes: routes_of(&map, &group_of),
            default_target_group,
            tls_policy,
            security_policy: payload.get("security_policy").map(str::to_string),
            assumed_gb_processed_per_month: payload.get("gb").and_then(|g| g.parse().ok()).unwrap_or(0.0),
            dns_name: ip.clone(),
            ip: (!ip.is_empty()).then_some(ip),
            url,
            status: "active".into(),
            targets,
            tags: payload.tags.clone(),
        }))
    }

    /// The spec and target states of the group `g` behind backend service `bs`.
    async fn group_of(
        &self,
        cx: &OpContext,
        bs: &BackendService,
        g: &str,
    ) -> ProviderResult<(TargetGroupSpec, Vec<TargetState>)> {
        let payload =
            labels::from_description(bs.description.as_deref()).unwrap_or_else(|| Payload::new(&Default::default()));
        let hc_name = bs.health_checks.first().map(|h| last_segment(h).to_string()).unwrap_or_default();
        let r = self.health_checks.get().set_project(&self.project).set_health_check(&hc_name).send().await;
        let expected = payload.get("expected_status").map(str::to_string);
        let health = found(format!("reading health check `{hc_name}`"), r)?
            .map(|hc| health_spec(&hc, expected.clone()))
            .unwrap_or(HealthCheckSpec {
                protocol: HealthProtocol::Http,
                port: None,
                path: None,
                interval_s: 0,
                timeout_s: 0,
                healthy_threshold: 0,
                unhealthy_threshold: 0,
                expected_status: expected,
            });
        let states = self.backend_health(cx, bs, g).await?;
        let mut vm_ids: Vec<String> = states.iter().map(|t| t.target_id.clone()).collect();
        vm_ids.sort();
        let spec = TargetGroupSpec {
            name: g.to_string(),
            port: payload.get("port").and_then(|x| x.parse().ok()).unwrap_or(0),
            vm_ids,
            health_check: health,
            deregistration_delay_s: u32_of(bs.connection_draining.as_ref().and_then(|c| c.draining_timeout_sec)),
            release: payload.get("release").and_then(|r| serde_json::from_str(r).ok()).unwrap_or_default(),
        };
        let states = states
            .into_iter()
            .map(|t| TargetState { vm_id: t.target_id, group: t.group, state: super::health::word(t.state).into() })
            .collect();
        Ok((spec, states))
    }
}

fn list(p: &Payload, k: &str) -> Vec<String> {
    p.get(k).and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default()
}
