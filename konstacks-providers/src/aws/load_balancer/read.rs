//! Reading application load balancers: the describe calls (batched where ELBv2 allows it) and
//! the assembly of [`LoadBalancerObserved`] from what they answer.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::{
    Listener, LoadBalancer as ElbLb, LoadBalancerSchemeEnum, ProtocolEnum, Rule, TargetGroup, TargetHealthDescription,
};
use konstacks_core::kinds::load_balancer::url_of;
use konstacks_core::provider::{ProviderResult, TargetHealth};
use konstacks_core::spec::{
    HealthCheckSpec, LbScheme, ListenerProtocol, ListenerSpec, LoadBalancerObserved, RouteSpec, TargetGroupSpec,
    TargetState,
};

use super::parts::{
    forward_arn, group_prefix, health_protocol_of, health_state, lb_name_of_arn, redirect_port, release_of_word,
    route_of, ssl_policy, tls_of_policy, tls_of_word, TAG_GB, TAG_GROUP, TAG_LB, TAG_RELEASE, TAG_TLS,
};
use crate::aws::error::sdk_error;
use crate::aws::{name_of, visible_tags, AwsProvider};

/// ELBv2 takes at most 20 ARNs in one describe call.
pub(super) const ARN_CHUNK: usize = 20;

/// One target group of a load balancer, as AWS has it.
#[derive(Debug, Clone)]
pub(super) struct Group {
    /// Its name in the spec.
    pub name: String,
    pub tg: TargetGroup,
    pub tags: BTreeMap<String, String>,
    pub health: Vec<TargetHealthDescription>,
    pub drain_s: u32,
}

impl Group {
    pub fn arn(&self) -> &str {
        self.tg.target_group_arn().unwrap_or_default()
    }

    /// Registered targets that still take traffic (draining and unused ones excluded).
    pub fn members(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .health
            .iter()
            .filter(|h| !matches!(health_state(h.target_health().and_then(|t| t.state())).1, "draining" | "unused"))
            .filter_map(|h| h.target().and_then(|t| t.id()).map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// One listener with all its certificates (default first) and its rules.
#[derive(Debug, Clone)]
pub(super) struct Lsn {
    pub l: Listener,
    pub certs: Vec<String>,
    pub rules: Vec<Rule>,
}

impl Lsn {
    pub fn arn(&self) -> &str {
        self.l.listener_arn().unwrap_or_default()
    }
}

/// A load balancer with everything that hangs off it.
#[derive(Debug, Clone)]
pub(super) struct Raw {
    pub lb: ElbLb,
    pub tags: BTreeMap<String, String>,
    pub listeners: Vec<Lsn>,
    pub groups: Vec<Group>,
}

impl Raw {
    pub fn group_by_arn(&self, arn: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.arn() == arn)
    }
}

impl AwsProvider {
    /// Load balancers by ARN (unknown ones absent), or every one when `arns` is `None`.
    pub(super) async fn describe_lbs(&self, arns: Option<Vec<String>>) -> ProviderResult<Vec<ElbLb>> {
        let elb = &self.serving.elb;
        let mut out = Vec::new();
        match arns {
            Some(arns) => {
                for chunk in arns.chunks(ARN_CHUNK) {
                    // One unknown ARN fails the whole call: fall back to one call per ARN.
                    match elb.describe_load_balancers().set_load_balancer_arns(Some(chunk.to_vec())).send().await {
                        Ok(o) => out.extend(o.load_balancers().iter().cloned()),
                        Err(e) => {
                            let e = sdk_error("DescribeLoadBalancers", "reading load balancers", e);
                            if e.kind() != konstacks_core::error::ErrorKind::NotFound {
                                return Err(e);
                            }
                            for arn in chunk {
                                match elb.describe_load_balancers().load_balancer_arns(arn).send().await {
                                    Ok(o) => out.extend(o.load_balancers().iter().cloned()),
                                    Err(e) => {
                                        let e = sdk_error("DescribeLoadBalancers", "reading a load balancer", e);
                                        if e.kind() != konstacks_core::error::ErrorKind::NotFound {
                                            return Err(e);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            None => {
                let mut marker: Option<String> = None;
                loop {
                    let page = elb
                        .describe_load_balancers()
                        .set_marker(marker.take())
                        .page_size(400)
                        .send()
                        .await
                        .map_err(|e| sdk_error("DescribeLoadBalancers", "listing load balancers", e))?;
                    out.extend(page.load_balancers().iter().cloned());
                    match page.next_marker() {
                        Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                        _ => break,
                    }
                }
            }
        }
        out.retain(|l| l.r#type().is_none_or(|t| t.as_str() == "application"));
        Ok(out)
    }

    /// Tags of resources by ARN, 20 at a time.
    pub(super) async fn elb_tags(&self, arns: &[String]) -> ProviderResult<BTreeMap<String, BTreeMap<String, String>>> {
        let mut out = BTreeMap::new();
        for chunk in arns.chunks(ARN_CHUNK) {
            let o = self
                .serving
                .elb
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTags", "reading load balancer tags", e))?;
            for d in o.tag_descriptions() {
                let tags = d
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
                    .collect();
                out.insert(d.resource_arn().unwrap_or_default().to_string(), tags);
            }
        }
        Ok(out)
    }

    /// Every target group of the account and region (one listing, paged).
    pub(super) async fn all_target_groups(&self) -> ProviderResult<Vec<TargetGroup>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .serving
                .elb
                .describe_target_groups()
                .set_marker(marker.take())
                .page_size(400)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTargetGroups", "listing target groups", e))?;
            out.extend(page.target_groups().iter().cloned());
            match page.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// The target groups Konstacks made for the load balancer `lb_name` (by name prefix, confirmed by tag).
    pub(super) async fn groups_of(
        &self,
        lb_name: &str,
        all: &[TargetGroup],
        with_health: bool,
    ) -> ProviderResult<Vec<Group>> {
        let prefix = group_prefix(lb_name);
        let mine: Vec<&TargetGroup> =
            all.iter().filter(|t| t.target_group_name().is_some_and(|n| n.starts_with(&prefix))).collect();
        let arns: Vec<String> = mine.iter().filter_map(|t| t.target_group_arn().map(str::to_string)).collect();
        let tags = self.elb_tags(&arns).await?;
        let mut out = Vec::new();
        for tg in mine {
            let arn = tg.target_group_arn().unwrap_or_default();
            let Some(t) = tags.get(arn).filter(|t| t.get(TAG_LB).map(String::as_str) == Some(lb_name)) else {
                continue;
            };
            let name = t.get(TAG_GROUP).cloned().unwrap_or_default();
            let (health, drain_s) = if with_health {
                let h =
                    self.serving.elb.describe_target_health().target_group_arn(arn).send().await.map_err(|e| {
                        sdk_error("DescribeTargetHealth", &format!("reading targets of group `{name}`"), e)
                    })?;
                let a =
                    self.serving.elb.describe_target_group_attributes().target_group_arn(arn).send().await.map_err(
                        |e| sdk_error("DescribeTargetGroupAttributes", &format!("reading target group `{name}`"), e),
                    )?;
                let drain = a
                    .attributes()
                    .iter()
                    .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
                    .and_then(|a| a.value())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(300);
                (h.target_health_descriptions().to_vec(), drain)
            } else {
                (Vec::new(), 0)
            };
            out.push(Group { name, tg: tg.clone(), tags: t.clone(), health, drain_s });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.arn().cmp(b.arn())));
        Ok(out)
    }

    async fn listeners_of(&self, lb_arn: &str) -> ProviderResult<Vec<Lsn>> {
        let elb = &self.serving.elb;
        let mut ls = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = elb
                .describe_listeners()
                .load_balancer_arn(lb_arn)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeListeners", "reading listeners", e))?;
            ls.extend(page.listeners().iter().cloned());
            match page.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        let mut out = Vec::new();
        for l in ls {
            let arn = l.listener_arn().unwrap_or_default().to_string();
            // DescribeListeners names the default certificate (moto lists the SNI ones too);
            // DescribeListenerCertificates lists them all.
            let mut certs: Vec<String> =
                l.certificates().iter().filter_map(|c| c.certificate_arn().map(str::to_string)).take(1).collect();
            if l.protocol() == Some(&ProtocolEnum::Https) {
                let o = elb
                    .describe_listener_certificates()
                    .listener_arn(&arn)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeListenerCertificates", "reading listener certificates", e))?;
                if certs.is_empty() {
                    certs.extend(
                        o.certificates()
                            .iter()
                            .filter(|c| c.is_default() == Some(true))
                            .filter_map(|c| c.certificate_arn().map(str::to_string))
                            .take(1),
                    );
                }
                let mut extra: Vec<String> = o
                    .certificates()
                    .iter()
                    .filter(|c| c.is_default() != Some(true))
                    .filter_map(|c| c.certificate_arn().map(str::to_string))
                    .filter(|c| !certs.contains(c))
                    .collect();
                extra.sort();
                extra.dedup();
                certs.extend(extra);
            }
            let mut rules = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let page = elb
                    .describe_rules()
                    .listener_arn(&arn)
                    .set_marker(marker.take())
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeRules", "reading listener rules", e))?;
                rules.extend(page.rules().iter().cloned());
                match page.next_marker() {
                    Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                    _ => break,
                }
            }
            out.push(Lsn { l, certs, rules });
        }
        out.sort_by_key(|l| l.l.port());
        Ok(out)
    }

    /// Everything of the load balancers `lbs`, with their tags already read.
    pub(super) async fn raw_of(
        &self,
        lbs: Vec<ElbLb>,
        mut tags: BTreeMap<String, BTreeMap<String, String>>,
    ) -> ProviderResult<Vec<Raw>> {
        if lbs.is_empty() {
            return Ok(Vec::new());
        }
        let all = self.all_target_groups().await?;
        let mut out = Vec::new();
        for lb in lbs {
            let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
            let name = lb.load_balancer_name().or_else(|| lb_name_of_arn(&arn)).unwrap_or_default().to_string();
            let listeners = self.listeners_of(&arn).await?;
            let groups = self.groups_of(&name, &all, true).await?;
            out.push(Raw { tags: tags.remove(&arn).unwrap_or_default(), lb, listeners, groups });
        }
        Ok(out)
    }

    /// One load balancer with everything, or `None` when it does not exist.
    pub(super) async fn raw(&self, arn: &str) -> ProviderResult<Option<Raw>> {
        let lbs = self.describe_lbs(Some(vec![arn.to_string()])).await?;
        if lbs.is_empty() {
            return Ok(None);
        }
        let tags = self.elb_tags(&[arn.to_string()]).await?;
        Ok(self.raw_of(lbs, tags).await?.into_iter().next())
    }
}

/// Every target's health, group by group, sorted.
pub(super) fn health_of(raw: &Raw) -> Vec<TargetHealth> {
    let mut out: Vec<TargetHealth> = raw
        .groups
        .iter()
        .flat_map(|g| {
            g.health.iter().filter_map(|h| {
                let th = h.target_health();
                let (state, word) = health_state(th.and_then(|t| t.state()));
                if word == "unused" {
                    return None;
                }
                let reason = th.and_then(|t| match (t.reason(), t.description()) {
                    (Some(r), Some(d)) => Some(format!("{}: {d}", r.as_str())),
                    (Some(r), None) => Some(r.as_str().to_string()),
                    (None, Some(d)) => Some(d.to_string()),
                    (None, None) => None,
                });
                Some(TargetHealth { group: g.name.clone(), target_id: h.target()?.id()?.to_string(), state, reason })
            })
        })
        .collect();
    out.sort();
    out
}

fn group_spec(g: &Group) -> TargetGroupSpec {
    let tg = &g.tg;
    let port = |v: Option<i32>| v.and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
    let u = |v: Option<i32>| v.and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
    TargetGroupSpec {
        name: g.name.clone(),
        port: port(tg.port()),
        vm_ids: g.members(),
        health_check: HealthCheckSpec {
            protocol: health_protocol_of(tg.health_check_protocol()),
            port: tg.health_check_port().filter(|p| *p != "traffic-port").and_then(|p| p.parse().ok()),
            path: tg.health_check_path().map(str::to_string),
            interval_s: u(tg.health_check_interval_seconds()),
            timeout_s: u(tg.health_check_timeout_seconds()),
            healthy_threshold: u(tg.healthy_threshold_count()),
            unhealthy_threshold: u(tg.unhealthy_threshold_count()),
            expected_status: tg.matcher().and_then(|m| m.http_code()).map(str::to_string),
        },
        deregistration_delay_s: g.drain_s,
        release: g.tags.get(TAG_RELEASE).map(|w| release_of_word(w)).unwrap_or_default(),
    }
}

/// The observed load balancer.
pub(super) fn observed(raw: &Raw, region: &str, spec_gb: Option<f64>) -> LoadBalancerObserved {
    let lb = &raw.lb;
    let group_name = |arn: &str| raw.group_by_arn(arn).map(|g| g.name.clone()).unwrap_or_else(|| arn.to_string());
    let mut listeners = Vec::new();
    let mut policy: Option<&str> = None;
    let mut default_group = String::new();
    let mut routes: BTreeMap<(u32, Option<String>, Option<String>), String> = BTreeMap::new();
    for l in &raw.listeners {
        let https = l.l.protocol() == Some(&ProtocolEnum::Https);
        if https && policy.is_none() {
            policy = l.l.ssl_policy();
        }
        let redirect_to_port = redirect_port(l.l.default_actions());
        if redirect_to_port.is_none() {
            if let Some(arn) = forward_arn(l.l.default_actions()) {
                if default_group.is_empty() {
                    default_group = group_name(arn);
                }
            }
            for (p, host, path, arn) in l.rules.iter().filter_map(route_of) {
                routes.entry((p, host, path)).or_insert_with(|| group_name(&arn));
            }
        }
        listeners.push(ListenerSpec {
            port: l.l.port().and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
            protocol: if https { ListenerProtocol::Https } else { ListenerProtocol::Http },
            certificate_ids: if https { l.certs.clone() } else { Vec::new() },
            redirect_to_port,
        });
    }
    listeners.sort();
    let routes: Vec<RouteSpec> = routes
        .into_iter()
        .map(|((priority, host, path_prefix), target_group)| RouteSpec { priority, host, path_prefix, target_group })
        .collect();
    let mut target_groups: Vec<TargetGroupSpec> = raw.groups.iter().map(group_spec).collect();
    target_groups.sort();
    let mut targets: Vec<TargetState> = health_of(raw)
        .into_iter()
        .map(|t| TargetState { vm_id: t.target_id, group: t.group, state: health_word(t.state).to_string() })
        .collect();
    targets.sort();
    let dns_name = lb.dns_name().unwrap_or_default().to_string();
    let tls_policy =
        policy.map(tls_of_policy).unwrap_or_else(|| raw.tags.get(TAG_TLS).map(|w| tls_of_word(w)).unwrap_or_default());
    // A named policy is reported only when it is not the portable one for its TLS version.
    let security_policy = policy.filter(|p| *p != ssl_policy(tls_policy)).map(str::to_string);
    let gb = raw.tags.get(TAG_GB).and_then(|v| v.parse().ok()).or(spec_gb).unwrap_or(0.0);
    let mut subnet_ids: Vec<String> =
        lb.availability_zones().iter().filter_map(|z| z.subnet_id().map(str::to_string)).collect();
    subnet_ids.sort();
    let mut firewall_ids = lb.security_groups().to_vec();
    firewall_ids.sort();
    let name = lb.load_balancer_name().map(str::to_string).unwrap_or_else(|| name_of(&raw.tags));
    LoadBalancerObserved {
        id: lb.load_balancer_arn().unwrap_or_default().to_string(),
        name,
        region: region.to_string(),
        scheme: if lb.scheme() == Some(&LoadBalancerSchemeEnum::Internal) {
            LbScheme::Internal
        } else {
            LbScheme::Public
        },
        subnet_ids,
        firewall_ids,
        url: url_of(&dns_name, &listeners),
        listeners,
        target_groups,
        routes,
        default_target_group: default_group,
        tls_policy,
        security_policy,
        assumed_gb_processed_per_month: gb,
        dns_name,
        ip: None,
        status: lb.state().and_then(|s| s.code()).map(|c| c.as_str().to_string()).unwrap_or_default(),
        targets,
        tags: visible_tags(raw.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    }
}

/// The word the observed `targets` use for a state.
fn health_word(s: konstacks_core::provider::TargetHealthState) -> &'static str {
    use konstacks_core::provider::TargetHealthState as S;
    match s {
        S::Initial => "initial",
        S::Healthy => "healthy",
        S::Unhealthy => "unhealthy",
        S::Draining => "draining",
        _ => "unavailable",
    }
}
