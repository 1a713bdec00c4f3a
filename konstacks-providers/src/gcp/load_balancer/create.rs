//! Bringing the pieces of a load balancer to its spec (create and update share it): the
//! address, URL maps, SSL policy, proxies and forwarding rules; the groups' pieces in `groups`.

use std::collections::{BTreeMap, BTreeSet};

use google_cloud_compute_v1::model::forwarding_rule::{
    IPProtocol, LoadBalancingScheme as RuleScheme, NetworkTier as RuleTier,
};
use google_cloud_compute_v1::model::http_redirect_action::RedirectResponseCode;
use google_cloud_compute_v1::model::ssl_policy::{MinTlsVersion, Profile};
use google_cloud_compute_v1::model::{
    Address, ForwardingRule, GlobalSetLabelsRequest, HostRule, HttpRedirectAction, HttpRouteRule, HttpRouteRuleMatch,
    PathMatcher, SslPolicy, TargetHttpProxy, TargetHttpsProxy, TargetReference, UrlMap,
};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::{ListenerProtocol, LoadBalancerSpec, TlsPolicy};
use konstacks_core::provider::ProviderResult;

use super::super::labels::{self, Payload};
use super::super::{invalid, Gcp};
use super::groups::i32_of;
use super::{found, payload_of, ssl_profile, Names, Recorded};

impl Gcp {
    /// Bring every piece to `spec`, then delete the pieces `old` recorded that `spec` drops.
    pub(super) async fn converge(&self, cx: &OpContext, spec: &LoadBalancerSpec, old: &Recorded) -> ProviderResult<()> {
        let n = Names::new(&spec.name);
        let payload = payload_of(spec)?;
        let desc = labels::to_description(&Payload::new(&spec.tags).with("lb_name", &spec.name));
        let address = self.ensure_address(cx, &n, spec).await?;
        for g in &spec.target_groups {
            self.ensure_group(cx, &n, spec, g).await?;
        }
        self.ensure_url_map(cx, &n, spec, &payload).await?;
        let redirect = spec.listeners.iter().any(|l| l.redirect_to_port.is_some());
        let plain = spec.listeners.iter().any(|l| l.protocol == ListenerProtocol::Http && l.redirect_to_port.is_none());
        let https: Vec<_> = spec.listeners.iter().filter(|l| l.protocol == ListenerProtocol::Https).collect();
        if redirect {
            let mut m = UrlMap::default();
            m.name = Some(n.redirect());
            m.description = Some(desc.clone());
            let mut r = HttpRedirectAction::default();
            r.https_redirect = Some(true);
            r.redirect_response_code = Some(RedirectResponseCode::MovedPermanentlyDefault);
            m.default_url_redirect = Some(r);
            self.ensure_map(cx, &n.redirect(), m).await?;
            let mut p = TargetHttpProxy::default();
            p.name = Some(n.redirect());
            p.description = Some(desc.clone());
            p.url_map = Some(self.global_ref("urlMaps", &n.redirect()));
            self.ensure_http_proxy(cx, &n.redirect(), p).await?;
        }
        if plain {
            let mut p = TargetHttpProxy::default();
            p.name = Some(n.http());
            p.description = Some(desc.clone());
            p.url_map = Some(self.global_ref("urlMaps", &n.main()));
            self.ensure_http_proxy(cx, &n.http(), p).await?;
        }
        if !https.is_empty() {
            self.ensure_ssl_policy(cx, &n, spec, &desc).await?;
        }
        for l in &https {
            self.ensure_https_proxy(cx, &n, l.port, &l.certificate_ids, &desc).await?;
        }
        for l in &spec.listeners {
            let target = match (l.protocol, l.redirect_to_port) {
                (ListenerProtocol::Https, _) => self.global_ref("targetHttpsProxies", &n.https(l.port)),
                (_, Some(_)) => self.global_ref("targetHttpProxies", &n.redirect()),
                _ => self.global_ref("targetHttpProxies", &n.http()),
            };
            self.ensure_rule(cx, &n, spec, l.port, &target, &address).await?;
        }

        // What the spec dropped, in reverse order of use.
        let ports: BTreeSet<u16> = spec.listeners.iter().map(|l| l.port).collect();
        for p in old.ports.iter().filter(|p| !ports.contains(p)) {
            self.drop_piece(cx, "forwardingRules", &n.rule(*p)).await?;
        }
        let https_ports: BTreeSet<u16> = https.iter().map(|l| l.port).collect();
        for p in old.https_ports.iter().filter(|p| !https_ports.contains(p)) {
            self.drop_piece(cx, "targetHttpsProxies", &n.https(*p)).await?;
        }
        if old.plain && !plain {
            self.drop_piece(cx, "targetHttpProxies", &n.http()).await?;
        }
        if old.redirect && !redirect {
            self.drop_piece(cx, "targetHttpProxies", &n.redirect()).await?;
            self.drop_piece(cx, "urlMaps", &n.redirect()).await?;
        }
        if !old.https_ports.is_empty() && https.is_empty() {
            self.drop_piece(cx, "sslPolicies", &n.main()).await?;
        }
        let groups: BTreeSet<&str> = spec.target_groups.iter().map(|g| g.name.as_str()).collect();
        for g in old.groups.iter().filter(|g| !groups.contains(g.as_str())) {
            self.drop_group(cx, &n, g).await?;
        }
        Ok(())
    }

    /// Insert the URL map `name` unless it exists (a redirect map never changes once made).
    async fn ensure_map(&self, cx: &OpContext, name: &str, m: UrlMap) -> ProviderResult<()> {
        let p = &self.project;
        if self.get_url_map(name).await?.is_none() {
            self.insert(cx, &format!("creating URL map `{name}`"), &["urlMap", p, name], |id| {
                self.url_maps.insert().set_project(p).set_request_id(id).set_body(m).send()
            })
            .await?;
        }
        Ok(())
    }

    /// Insert the target HTTP proxy `name` unless it exists (its URL map never changes).
    async fn ensure_http_proxy(&self, cx: &OpContext, name: &str, x: TargetHttpProxy) -> ProviderResult<()> {
        let p = &self.project;
        let r = self.http_proxies.get().set_project(p).set_target_http_proxy(name).send().await;
        if found(format!("reading target HTTP proxy `{name}`"), r)?.is_none() {
            self.insert(cx, &format!("creating target HTTP proxy `{name}`"), &["targetHttpProxy", p, name], |id| {
                self.http_proxies.insert().set_project(p).set_request_id(id).set_body(x).send()
            })
            .await?;
        }
        Ok(())
    }

    async fn ensure_address(&self, cx: &OpContext, n: &Names, spec: &LoadBalancerSpec) -> ProviderResult<String> {
        let p = &self.project;
        let name = n.main();
        let wanted = labels::to_labels(&Payload::new(&spec.tags).with("lb_name", &spec.name)).map_err(invalid)?;
        let r = self.addresses.get().set_project(p).set_address(&name).send().await;
        match found(format!("reading address `{name}`"), r)? {
            None => {
                let mut a = Address::default();
                a.name = Some(name.clone());
                a.address_type = Some(google_cloud_compute_v1::model::address::AddressType::External);
                a.ip_version = Some(google_cloud_compute_v1::model::address::IpVersion::Ipv4);
                a.labels = wanted.into_iter().collect();
                self.insert(cx, &format!("reserving address `{name}`"), &["address", p, &name], |id| {
                    self.addresses.insert().set_project(p).set_request_id(id).set_body(a).send()
                })
                .await?;
            }
            Some(a) => {
                let have: BTreeMap<String, String> = a.labels.clone().into_iter().collect();
                // Adopt only an address of this stack (a retried create's), never another's.
                let ours = spec.tags.get(konstacks_core::kind::TAG_STACK).map(String::as_str);
                if labels::from_labels(&have).stack() != ours {
                    return Err(ProviderError::new(
                        ErrorKind::AlreadyExists,
                        format!("address `{name}` exists and does not belong to this stack; choose another name"),
                    ));
                }
                if have != wanted {
                    let mut body = GlobalSetLabelsRequest::default();
                    body.labels = wanted.into_iter().collect();
                    body.label_fingerprint = a.label_fingerprint.clone();
                    let sent =
                        self.addresses.set_labels().set_project(p).set_resource(&name).set_body(body).send().await;
                    self.run_op(cx, &format!("labelling address `{name}`"), sent).await?;
                }
            }
        }
        Ok(self.global_ref("addresses", &name))
    }

    /// The URL map `lb`: default group, host rules and route rules, and the payload.
    async fn ensure_url_map(
        &self,
        cx: &OpContext,
        n: &Names,
        spec: &LoadBalancerSpec,
        payload: &Payload,
    ) -> ProviderResult<()> {
        let p = &self.project;
        let svc = |g: &str| self.global_ref("backendServices", &n.group(g));
        let mut m = UrlMap::default();
        m.name = Some(n.main());
        m.description = Some(labels::to_description(payload));
        m.default_service = Some(svc(&spec.default_target_group));
        let rule = |r: &konstacks_core::kinds::RouteSpec| {
            let mut mr = HttpRouteRuleMatch::default();
            mr.prefix_match = Some(r.path_prefix.clone().unwrap_or_else(|| "/".into()));
            let mut rr = HttpRouteRule::default();
            rr.priority = Some(i32_of(r.priority));
            rr.match_rules = vec![mr];
            rr.service = Some(svc(&r.target_group));
            rr
        };
        let any: Vec<HttpRouteRule> = spec.routes.iter().filter(|r| r.host.is_none()).map(rule).collect();
        let hosts: BTreeSet<&str> = spec.routes.iter().filter_map(|r| r.host.as_deref()).collect();
        let mut matcher = |mname: String, host: &str, mut rules: Vec<HttpRouteRule>| {
            rules.sort_by_key(|r| r.priority);
            let mut pm = PathMatcher::default();
            pm.name = Some(mname.clone());
            pm.default_service = Some(svc(&spec.default_target_group));
            pm.route_rules = rules;
            m.path_matchers.push(pm);
            let mut hr = HostRule::default();
            hr.hosts = vec![host.to_string()];
            hr.path_matcher = Some(mname);
            m.host_rules.push(hr);
        };
        for (i, h) in hosts.iter().enumerate() {
            let mut rules: Vec<HttpRouteRule> =
                spec.routes.iter().filter(|r| r.host.as_deref() == Some(*h)).map(rule).collect();
            rules.extend(any.iter().cloned());
            matcher(format!("host{i}"), h, rules);
        }
        if !any.is_empty() {
            matcher("any".into(), "*", any.clone());
        }
        match self.get_url_map(&n.main()).await? {
            None => {
                let name = n.main();
                self.insert(cx, &format!("creating URL map `{name}`"), &["urlMap", p, &name], |id| {
                    self.url_maps.insert().set_project(p).set_request_id(id).set_body(m).send()
                })
                .await?;
            }
            Some(have) => {
                m.fingerprint = have.fingerprint.clone();
                let sent = self.url_maps.update().set_project(p).set_url_map(n.main()).set_body(m).send().await;
                self.run_op(cx, &format!("updating URL map `{}`", n.main()), sent).await?;
            }
        }
        Ok(())
    }

    async fn ensure_ssl_policy(
        &self,
        cx: &OpContext,
        n: &Names,
        spec: &LoadBalancerSpec,
        desc: &str,
    ) -> ProviderResult<()> {
        let p = &self.project;
        let (min, profile) = ssl_profile(spec)?;
        let mut s = SslPolicy::default();
        s.name = Some(n.main());
        s.description = Some(desc.to_string());
        s.min_tls_version = Some(match min {
            TlsPolicy::Tls13 => MinTlsVersion::Tls13,
            _ => MinTlsVersion::Tls12,
        });
        s.profile = Some(match profile {
            "COMPATIBLE" => Profile::Compatible,
            "RESTRICTED" => Profile::Restricted,
            _ => Profile::Modern,
        });
        let name = n.main();
        let r = self.ssl_policies.get().set_project(p).set_ssl_policy(&name).send().await;
        match found(format!("reading SSL policy `{name}`"), r)? {
            None => {
                self.insert(cx, &format!("creating SSL policy `{name}`"), &["sslPolicy", p, &name], |id| {
                    self.ssl_policies.insert().set_project(p).set_request_id(id).set_body(s).send()
                })
                .await?;
            }
            Some(have) if have.min_tls_version != s.min_tls_version || have.profile != s.profile => {
                s.fingerprint = have.fingerprint.clone();
                let sent = self.ssl_policies.patch().set_project(p).set_ssl_policy(&name).set_body(s).send().await;
                self.run_op(cx, &format!("updating SSL policy `{name}`"), sent).await?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// A certificate id as a reference: an id (`projects/...`, a URL) as it is, a name as a
    /// global SSL certificate of the project.
    pub(super) fn cert_ref(&self, id: &str) -> String {
        if id.starts_with("projects/") || id.starts_with("https://") {
            id.to_string()
        } else {
            self.global_ref("sslCertificates", id)
        }
    }

    async fn ensure_https_proxy(
        &self,
        cx: &OpContext,
        n: &Names,
        port: u16,
        certs: &[String],
        desc: &str,
    ) -> ProviderResult<()> {
        let p = &self.project;
        let name = n.https(port);
        let mut x = TargetHttpsProxy::default();
        x.name = Some(name.clone());
        x.description = Some(desc.to_string());
        x.url_map = Some(self.global_ref("urlMaps", &n.main()));
        x.ssl_certificates = certs.iter().map(|c| self.cert_ref(c)).collect();
        x.ssl_policy = Some(self.global_ref("sslPolicies", &n.main()));
        let r = self.https_proxies.get().set_project(p).set_target_https_proxy(&name).send().await;
        match found(format!("reading target HTTPS proxy `{name}`"), r)? {
            None => {
                self.insert(
                    cx,
                    &format!("creating target HTTPS proxy `{name}`"),
                    &["targetHttpsProxy", p, &name],
                    |id| self.https_proxies.insert().set_project(p).set_request_id(id).set_body(x).send(),
                )
                .await?;
            }
            Some(have) => {
                let have_certs: Vec<String> = have.ssl_certificates.iter().map(|c| super::super::relative(c)).collect();
                let want: Vec<String> = x.ssl_certificates.iter().map(|c| super::super::relative(c)).collect();
                if have_certs != want || have.ssl_policy.is_none() {
                    x.fingerprint = have.fingerprint.clone();
                    let sent = self
                        .https_proxies
                        .patch()
                        .set_project(p)
                        .set_target_https_proxy(&name)
                        .set_body(x)
                        .send()
                        .await;
                    self.run_op(cx, &format!("updating target HTTPS proxy `{name}`"), sent).await?;
                }
            }
        }
        Ok(())
    }

    /// The forwarding rule of the listener on `port`, to `target`.
    async fn ensure_rule(
        &self,
        cx: &OpContext,
        n: &Names,
        spec: &LoadBalancerSpec,
        port: u16,
        target: &str,
        address: &str,
    ) -> ProviderResult<()> {
        let p = &self.project;
        let name = n.rule(port);
        let wanted = labels::to_labels(&Payload::new(&spec.tags).with("lb_name", &spec.name)).map_err(invalid)?;
        let r = self.forwarding_rules.get().set_project(p).set_forwarding_rule(&name).send().await;
        match found(format!("reading forwarding rule `{name}`"), r)? {
            None => {
                let mut f = ForwardingRule::default();
                f.name = Some(name.clone());
                f.ip_address = Some(address.to_string());
                f.ip_protocol = Some(IPProtocol::Tcp);
                f.port_range = Some(port.to_string());
                f.target = Some(target.to_string());
                f.load_balancing_scheme = Some(RuleScheme::ExternalManaged);
                f.network_tier = Some(RuleTier::Premium);
                f.labels = wanted.into_iter().collect();
                self.insert(cx, &format!("creating forwarding rule `{name}`"), &["forwardingRule", p, &name], |id| {
                    self.forwarding_rules.insert().set_project(p).set_request_id(id).set_body(f).send()
                })
                .await?;
            }
            Some(f) => {
                if f.target.as_deref().map(super::super::relative) != Some(super::super::relative(target)) {
                    let mut body = TargetReference::default();
                    body.target = Some(target.to_string());
                    let sent = self
                        .forwarding_rules
                        .set_target()
                        .set_project(p)
                        .set_forwarding_rule(&name)
                        .set_body(body)
                        .send()
                        .await;
                    self.run_op(cx, &format!("pointing forwarding rule `{name}` at `{target}`"), sent).await?;
                }
                let have: BTreeMap<String, String> = f.labels.clone().into_iter().collect();
                if have != wanted {
                    let mut body = GlobalSetLabelsRequest::default();
                    body.labels = wanted.into_iter().collect();
                    body.label_fingerprint = f.label_fingerprint.clone();
                    let sent = self
                        .forwarding_rules
                        .set_labels()
                        .set_project(p)
                        .set_resource(&name)
                        .set_body(body)
                        .send()
                        .await;
                    self.run_op(cx, &format!("labelling forwarding rule `{name}`"), sent).await?;
                }
            }
        }
        Ok(())
    }
}
