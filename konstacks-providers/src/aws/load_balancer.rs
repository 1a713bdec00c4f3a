//! Application load balancers (ELBv2): the load balancer, one target group per group of the
//! spec, listeners (forward, or a permanent redirect to HTTPS), SNI certificates and rules.
//!
//! Owns the physical names of target groups (derived from the load balancer's name, so every
//! group of a load balancer is found with one listing whether or not a listener uses it), the
//! internal tags that rebuild the spec on read (`konstacks:aws:group`, `konstacks:aws:lb`, ...),
//! and the order of calls that keeps AWS consistent: groups before the listeners that use them,
//! listeners and the load balancer gone before their groups go. It never decides replace versus
//! update (the core `KindDef` does).

mod parts;
mod read;
mod update;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_elasticloadbalancingv2::types::{
    Certificate, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, ProtocolEnum, TargetDescription, TargetGroupAttribute,
    TargetTypeEnum,
};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::model::LoadBalancer;
use konstacks_core::provider::{Api, ProviderResult, TargetHealth};
use konstacks_core::spec::{
    HealthCheckSpec, LbScheme, ListenerProtocol, ListenerSpec, LoadBalancerObserved, LoadBalancerSpec, Selector,
    TargetGroupSpec, TAG_STACK,
};

use self::parts::{
    conditions, elb_tag, forward, group_name, health_protocol, lb_name_of_arn, matcher, policy_of, redirect,
    release_word, tls_word, LB_INTERNAL_TAGS, MAX_ELB_NAME, TAG_GB, TAG_GROUP, TAG_LB, TAG_RELEASE, TAG_TLS,
};
use self::read::{health_of, observed, Raw};
use super::error::{invalid, sdk_error};
use super::{check_tags, follow_up, follow_up_create, retry_on, wait_for, AwsProvider, Polled};

/// The physical name the AWS backend gives the target group `group` (on `port`) of the load
/// balancer named `lb_name`: at most 32 characters, stable across runs, shared prefix per load
/// balancer. Useful to find a group in the console or to import one.
pub fn target_group_name(lb_name: &str, group: &str, port: u16) -> String {
    group_name(lb_name, group, port)
}

fn not_found(id: &str) -> ProviderError {
    ProviderError::not_found(format!("load balancer `{id}` does not exist"))
}

fn missing(what: &str) -> ProviderError {
    ProviderError::new(ErrorKind::Other, format!("AWS answered without {what}; this is unexpected, retry"))
}

/// Checks of a spec before any call: what AWS would refuse late, or what an ALB cannot do.
fn check_spec(what: &str, spec: &LoadBalancerSpec) -> ProviderResult<()> {
    if spec.name.is_empty() || spec.name.len() > MAX_ELB_NAME {
        return Err(invalid(format!("{what}: AWS load balancer names have 1 to {MAX_ELB_NAME} characters")));
    }
    check_tags(what, &spec.tags, LB_INTERNAL_TAGS + 2)?;
    let groups: BTreeSet<&str> = spec.target_groups.iter().map(|g| g.name.as_str()).collect();
    if groups.len() != spec.target_groups.len() {
        return Err(invalid(format!("{what}: a target group name is given twice")));
    }
    for g in &spec.target_groups {
        if health_protocol(g.health_check.protocol).is_none() {
            return Err(invalid(format!(
                "{what}: target group `{}` probes over TCP; AWS application load balancers probe over HTTP or HTTPS",
                g.name
            )));
        }
    }
    let named = spec.routes.iter().map(|r| r.target_group.as_str()).chain([spec.default_target_group.as_str()]);
    for g in named {
        if !groups.contains(g) {
            return Err(invalid(format!("{what}: rules name target group `{g}`, which does not exist")));
        }
    }
    if spec.listeners.is_empty() {
        return Err(invalid(format!("{what} needs at least one listener")));
    }
    if let Some(l) = spec.listeners.iter().find(|l| l.protocol == ListenerProtocol::TlsPassthrough) {
        return Err(invalid(format!(
            "{what}: AWS application load balancers terminate TLS; the listener on port {} cannot pass it through",
            l.port
        )));
    }
    Ok(())
}

fn listener_protocol(l: &ListenerSpec) -> ProtocolEnum {
    match l.protocol {
        ListenerProtocol::Https => ProtocolEnum::Https,
        _ => ProtocolEnum::Http,
    }
}

impl AwsProvider {
    /// The VPC of the first subnet.
    async fn vpc_of(&self, what: &str, subnets: &[String]) -> ProviderResult<String> {
        let first = subnets.first().ok_or_else(|| invalid(format!("{what} needs subnets")))?;
        let out = self
            .ec2
            .describe_subnets()
            .subnet_ids(first)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSubnets", &format!("{what}: reading subnet `{first}`"), e))?;
        out.subnets()
            .first()
            .and_then(|s| s.vpc_id())
            .map(str::to_string)
            .ok_or_else(|| ProviderError::not_found(format!("{what}: subnet `{first}` does not exist")))
    }

    fn lb_tags(spec: &LoadBalancerSpec) -> Vec<aws_sdk_elasticloadbalancingv2::types::Tag> {
        let mut tags: Vec<_> = spec.tags.iter().map(|(k, v)| elb_tag(k, v)).collect();
        tags.push(elb_tag(TAG_TLS, tls_word(spec.tls_policy)));
        tags.push(elb_tag(TAG_GB, &spec.assumed_gb_processed_per_month.to_string()));
        tags
    }

    /// Create the target group of `g`, set its delay and register its VMs; returns its ARN.
    async fn create_group(
        &self,
        cx: &OpContext,
        spec: &LoadBalancerSpec,
        vpc_id: &str,
        g: &TargetGroupSpec,
    ) -> ProviderResult<String> {
        let what = format!("load balancer `{}`: target group `{}`", spec.name, g.name);
        let h = &g.health_check;
        let mut tags: Vec<_> = spec.tags.iter().map(|(k, v)| elb_tag(k, v)).collect();
        tags.push(elb_tag(TAG_GROUP, &g.name));
        tags.push(elb_tag(TAG_LB, &spec.name));
        tags.push(elb_tag(TAG_RELEASE, &release_word(&g.release)));
        let patience = self.settings.timeouts.follow_up;
        let name = group_name(&spec.name, &g.name, g.port);
        let created = follow_up_create(cx, patience, || async {
            self.serving
                .elb
                .create_target_group()
                .name(&name)
                .protocol(ProtocolEnum::Http)
                .port(i32::from(g.port))
                .vpc_id(vpc_id)
                .target_type(TargetTypeEnum::Instance)
                .set_health_check_protocol(health_protocol(h.protocol))
                .health_check_port(h.port.map_or_else(|| "traffic-port".to_string(), |p| p.to_string()))
                .set_health_check_path(h.path.clone())
                .health_check_interval_seconds(i32::try_from(h.interval_s).unwrap_or(i32::MAX))
                .health_check_timeout_seconds(i32::try_from(h.timeout_s).unwrap_or(i32::MAX))
                .healthy_threshold_count(i32::try_from(h.healthy_threshold).unwrap_or(i32::MAX))
                .unhealthy_threshold_count(i32::try_from(h.unhealthy_threshold).unwrap_or(i32::MAX))
                .matcher(matcher(h.expected_status.as_deref()))
                .set_tags(Some(tags.clone()))
                .send()
                .await
                .map_err(|e| sdk_error("CreateTargetGroup", &format!("creating {what}"), e))
        })
        .await;
        let arn = match created {
            Ok(out) => out
                .target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .ok_or_else(|| missing("a target group ARN"))?
                .to_string(),
            // Left by an interrupted create of this load balancer: adopt it.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => match self.own_group(spec, &name).await? {
                Some(arn) => {
                    self.set_health(cx, &what, &arn, h).await?;
                    arn
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        self.set_drain(cx, &what, &arn, g.deregistration_delay_s).await?;
        self.register(cx, &what, &arn, &g.vm_ids).await?;
        Ok(arn)
    }

    /// The ARN of the target group `name` when it carries this load balancer's tag.
    async fn own_group(&self, spec: &LoadBalancerSpec, name: &str) -> ProviderResult<Option<String>> {
        let out = self
            .serving
            .elb
            .describe_target_groups()
            .names(name)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTargetGroups", &format!("reading target group `{name}`"), e))?;
        let Some(arn) = out.target_groups().first().and_then(|t| t.target_group_arn()) else { return Ok(None) };
        let tags = self.elb_tags(&[arn.to_string()]).await?;
        let ours = tags.get(arn).and_then(|t| t.get(TAG_LB)) == Some(&spec.name);
        Ok(ours.then(|| arn.to_string()))
    }

    /// Set the health check of the target group `arn` to `h`.
    async fn set_health(&self, cx: &OpContext, what: &str, arn: &str, h: &HealthCheckSpec) -> ProviderResult<()> {
        follow_up(cx, self.settings.timeouts.follow_up, || async {
            self.serving
                .elb
                .modify_target_group()
                .target_group_arn(arn)
                .set_health_check_protocol(health_protocol(h.protocol))
                .health_check_port(h.port.map_or_else(|| "traffic-port".to_string(), |p| p.to_string()))
                .set_health_check_path(h.path.clone())
                .health_check_interval_seconds(i32::try_from(h.interval_s).unwrap_or(i32::MAX))
                .health_check_timeout_seconds(i32::try_from(h.timeout_s).unwrap_or(i32::MAX))
                .healthy_threshold_count(i32::try_from(h.healthy_threshold).unwrap_or(i32::MAX))
                .unhealthy_threshold_count(i32::try_from(h.unhealthy_threshold).unwrap_or(i32::MAX))
                .matcher(matcher(h.expected_status.as_deref()))
                .send()
                .await
                .map_err(|e| sdk_error("ModifyTargetGroup", &format!("{what}: changing its health check"), e))
        })
        .await
        .map(|_| ())
    }

    async fn set_drain(&self, cx: &OpContext, what: &str, arn: &str, seconds: u32) -> ProviderResult<()> {
        follow_up(cx, self.settings.timeouts.follow_up, || async {
            self.serving
                .elb
                .modify_target_group_attributes()
                .target_group_arn(arn)
                .attributes(
                    TargetGroupAttribute::builder()
                        .key("deregistration_delay.timeout_seconds")
                        .value(seconds.to_string())
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk_error("ModifyTargetGroupAttributes", &format!("{what}: setting its delay"), e))
        })
        .await
        .map(|_| ())
    }

    async fn register(&self, cx: &OpContext, what: &str, arn: &str, vms: &[String]) -> ProviderResult<()> {
        if vms.is_empty() {
            return Ok(());
        }
        let targets: Vec<TargetDescription> = vms.iter().map(|v| TargetDescription::builder().id(v).build()).collect();
        follow_up(cx, self.settings.timeouts.follow_up, || async {
            self.serving
                .elb
                .register_targets()
                .target_group_arn(arn)
                .set_targets(Some(targets.clone()))
                .send()
                .await
                .map_err(|e| sdk_error("RegisterTargets", &format!("{what}: registering targets"), e))
        })
        .await
        .map(|_| ())
    }

    async fn deregister(&self, cx: &OpContext, what: &str, arn: &str, vms: &[String]) -> ProviderResult<()> {
        if vms.is_empty() {
            return Ok(());
        }
        let targets: Vec<TargetDescription> = vms.iter().map(|v| TargetDescription::builder().id(v).build()).collect();
        follow_up(cx, self.settings.timeouts.follow_up, || async {
            self.serving
                .elb
                .deregister_targets()
                .target_group_arn(arn)
                .set_targets(Some(targets.clone()))
                .send()
                .await
                .map_err(|e| sdk_error("DeregisterTargets", &format!("{what}: deregistering targets"), e))
        })
        .await
        .map(|_| ())
    }

    /// Create the listener of `l`; returns its ARN.
    async fn create_listener(
        &self,
        cx: &OpContext,
        spec: &LoadBalancerSpec,
        lb_arn: &str,
        l: &ListenerSpec,
        arns: &BTreeMap<String, String>,
    ) -> ProviderResult<String> {
        let what = format!("load balancer `{}`: listener on port {}", spec.name, l.port);
        let action = self.default_action(&what, spec, l, arns)?;
        let https = l.protocol == ListenerProtocol::Https;
        let default_cert = l.certificate_ids.first().filter(|_| https);
        let out = follow_up_create(cx, self.settings.timeouts.follow_up, || async {
            self.serving
                .elb
                .create_listener()
                .load_balancer_arn(lb_arn)
                .protocol(listener_protocol(l))
                .port(i32::from(l.port))
                .set_ssl_policy(https.then(|| policy_of(spec).to_string()))
                .set_certificates(default_cert.map(|c| vec![Certificate::builder().certificate_arn(c).build()]))
                .default_actions(action.clone())
                .send()
                .await
                .map_err(|e| sdk_error("CreateListener", &format!("creating {what}"), e))
        })
        .await?;
        let arn = out
            .listeners()
            .first()
            .and_then(|x| x.listener_arn())
            .ok_or_else(|| missing("a listener ARN"))?
            .to_string();
        if https {
            self.sync_certs(cx, &what, &arn, &[], &l.certificate_ids).await?;
        }
        self.sync_rules(cx, spec, &arn, &[], arns, l).await?;
        Ok(arn)
    }

    fn default_action(
        &self,
        what: &str,
        spec: &LoadBalancerSpec,
        l: &ListenerSpec,
        arns: &BTreeMap<String, String>,
    ) -> ProviderResult<aws_sdk_elasticloadbalancingv2::types::Action> {
        if let (ListenerProtocol::Http, Some(p)) = (l.protocol, l.redirect_to_port) {
            return Ok(redirect(p));
        }
        let arn = arns
            .get(&spec.default_target_group)
            .ok_or_else(|| invalid(format!("{what}: no target group `{}`", spec.default_target_group)))?;
        Ok(forward(arn))
    }

    /// Bring the SNI certificates (all but the first of `want`) of a listener to `want`.
    async fn sync_certs(
        &self,
        cx: &OpContext,
        what: &str,
        arn: &str,
        have: &[String],
        want: &[String],
    ) -> ProviderResult<()> {
        let have: BTreeSet<&String> = have.iter().skip(1).collect();
        let want: BTreeSet<&String> = want.iter().skip(1).collect();
        let cert = |c: &String| Certificate::builder().certificate_arn(c.as_str()).build();
        let add: Vec<Certificate> = want.difference(&have).map(|c| cert(c)).collect();
        let remove: Vec<Certificate> = have.difference(&want).map(|c| cert(c)).collect();
        let patience = self.settings.timeouts.follow_up;
        if !add.is_empty() {
            follow_up(cx, patience, || async {
                self.serving
                    .elb
                    .add_listener_certificates()
                    .listener_arn(arn)
                    .set_certificates(Some(add.clone()))
                    .send()
                    .await
                    .map_err(|e| sdk_error("AddListenerCertificates", &format!("{what}: adding certificates"), e))
            })
            .await?;
        }
        if !remove.is_empty() {
            follow_up(cx, patience, || async {
                self.serving
                    .elb
                    .remove_listener_certificates()
                    .listener_arn(arn)
                    .set_certificates(Some(remove.clone()))
                    .send()
                    .await
                    .map_err(|e| sdk_error("RemoveListenerCertificates", &format!("{what}: removing certificates"), e))
            })
            .await?;
        }
        Ok(())
    }

    /// Bring the rules of a forwarding listener to the spec's routes (a redirecting listener
    /// has none): rules are matched by priority, changed in place, added or deleted.
    async fn sync_rules(
        &self,
        cx: &OpContext,
        spec: &LoadBalancerSpec,
        listener_arn: &str,
        have: &[aws_sdk_elasticloadbalancingv2::types::Rule],
        arns: &BTreeMap<String, String>,
        l: &ListenerSpec,
    ) -> ProviderResult<()> {
        let what = format!("load balancer `{}`: rules of port {}", spec.name, l.port);
        let redirecting = l.protocol == ListenerProtocol::Http && l.redirect_to_port.is_some();
        let routes = if redirecting { &[][..] } else { &spec.routes[..] };
        let elb = &self.serving.elb;
        let patience = self.settings.timeouts.follow_up;
        let mut current: BTreeMap<u32, (&str, Option<parts::RuleKey>)> = BTreeMap::new();
        for r in have.iter().filter(|r| r.is_default() != Some(true)) {
            if let Some(p) = r.priority().and_then(|p| p.parse::<u32>().ok()) {
                current.insert(p, (r.rule_arn().unwrap_or_default(), parts::route_of(r)));
            }
        }
        let wanted: BTreeSet<u32> = routes.iter().map(|r| r.priority).collect();
        for (p, (arn, _)) in current.iter().filter(|(p, _)| !wanted.contains(p)) {
            follow_up(cx, patience, || async {
                elb.delete_rule()
                    .rule_arn(*arn)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteRule", &format!("{what}: deleting rule {p}"), e))
            })
            .await?;
        }
        for r in routes {
            let tg = arns
                .get(&r.target_group)
                .ok_or_else(|| invalid(format!("{what}: no target group `{}`", r.target_group)))?;
            let want = (r.priority, r.host.clone(), r.path_prefix.clone(), tg.clone());
            match current.get(&r.priority) {
                Some((_, Some(seen))) if *seen == want => {}
                Some((arn, _)) => {
                    follow_up(cx, patience, || async {
                        elb.modify_rule()
                            .rule_arn(*arn)
                            .set_conditions(Some(conditions(r)))
                            .actions(forward(tg))
                            .send()
                            .await
                            .map_err(|e| sdk_error("ModifyRule", &format!("{what}: changing rule {}", r.priority), e))
                    })
                    .await?;
                }
                None => {
                    let priority = i32::try_from(r.priority).map_err(|_| invalid(format!("{what}: bad priority")))?;
                    follow_up_create(cx, patience, || async {
                        elb.create_rule()
                            .listener_arn(listener_arn)
                            .priority(priority)
                            .set_conditions(Some(conditions(r)))
                            .actions(forward(tg))
                            .send()
                            .await
                            .map_err(|e| sdk_error("CreateRule", &format!("{what}: adding rule {}", r.priority), e))
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Wait until the load balancer is `active`.
    async fn wait_active(&self, cx: &OpContext, arn: &str) -> ProviderResult<()> {
        let t = self.settings.timeouts;
        // Load balancers provision in minutes, like instances: the same limit serves.
        wait_for(cx, &format!("load balancer `{arn}` becoming active"), t.vm_running, t.max_poll, || async {
            let lbs = self.describe_lbs(Some(vec![arn.to_string()])).await?;
            let Some(lb) = lbs.first() else { return Ok(Polled::Pending("not visible yet".into())) };
            let state = lb.state().and_then(|s| s.code()).map(|c| c.as_str().to_string()).unwrap_or_default();
            match state.as_str() {
                "active" => Ok(Polled::Ready(())),
                "failed" => {
                    let reason = lb.state().and_then(|s| s.reason()).unwrap_or("no reason given");
                    Err(ProviderError::new(ErrorKind::Other, format!("load balancer `{arn}` failed: {reason}")))
                }
                _ => Ok(Polled::Pending(state)),
            }
        })
        .await
    }

    /// Delete the load balancer (its listeners and rules go with it), wait until it is gone,
    /// then delete its target groups.
    async fn delete_lb(&self, cx: &OpContext, arn: &str) -> ProviderResult<()> {
        let name = lb_name_of_arn(arn).ok_or_else(|| not_found(arn))?.to_string();
        match self.serving.elb.delete_load_balancer().load_balancer_arn(arn).send().await {
            Ok(_) => {}
            Err(e) => {
                let e = sdk_error("DeleteLoadBalancer", &format!("deleting load balancer `{arn}`"), e);
                if e.kind() != ErrorKind::NotFound {
                    return Err(e);
                }
            }
        }
        let t = self.settings.timeouts;
        wait_for(cx, &format!("load balancer `{arn}` going away"), t.vm_stopped, t.max_poll, || async {
            let left = self.describe_lbs(Some(vec![arn.to_string()])).await?;
            Ok(if left.is_empty() { Polled::Ready(()) } else { Polled::Pending("deleting".into()) })
        })
        .await?;
        let all = self.all_target_groups().await?;
        for g in self.groups_of(&name, &all, false).await? {
            self.delete_group(cx, &name, g.arn()).await?;
        }
        Ok(())
    }

    /// Delete a target group, waiting out `ResourceInUse` while AWS lets go of it.
    async fn delete_group(&self, cx: &OpContext, lb: &str, arn: &str) -> ProviderResult<()> {
        let kinds = [ErrorKind::Conflict, ErrorKind::Throttled, ErrorKind::Transient];
        retry_on(cx, self.settings.timeouts.follow_up, &kinds, || async {
            match self.serving.elb.delete_target_group().target_group_arn(arn).send().await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let e = sdk_error("DeleteTargetGroup", &format!("load balancer `{lb}`: deleting `{arn}`"), e);
                    if e.kind() == ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
            }
        })
        .await
    }

    /// Everything after CreateLoadBalancer; on failure the caller deletes what exists.
    async fn finish_create(&self, cx: &OpContext, spec: &LoadBalancerSpec, arn: &str) -> ProviderResult<Raw> {
        let what = format!("load balancer `{}`", spec.name);
        self.wait_active(cx, arn).await?;
        let vpc_id = self.vpc_of(&what, &spec.subnet_ids).await?;
        let mut arns = BTreeMap::new();
        for g in &spec.target_groups {
            arns.insert(g.name.clone(), self.create_group(cx, spec, &vpc_id, g).await?);
        }
        for l in &spec.listeners {
            self.create_listener(cx, spec, arn, l, &arns).await?;
        }
        follow_up(cx, self.settings.timeouts.follow_up, || async { self.raw(arn).await?.ok_or_else(|| not_found(arn)) })
            .await
    }

    /// The target group `group` of the load balancer `id`: its ARN and registered targets.
    async fn group_arn(&self, id: &str, group: &str) -> ProviderResult<(String, Vec<String>)> {
        let raw = self.raw(id).await?.ok_or_else(|| not_found(id))?;
        let g =
            raw.groups.iter().find(|g| g.name == group).ok_or_else(|| {
                ProviderError::not_found(format!("load balancer `{id}` has no target group `{group}`"))
            })?;
        Ok((g.arn().to_string(), g.members()))
    }

    /// The name of a target group in the VPC `vpc_id` that has `instance_id` as a target, if
    /// any: such an instance must not be terminated under the load balancer.
    pub(super) async fn target_group_holding(&self, vpc_id: &str, instance_id: &str) -> ProviderResult<Option<String>> {
        let all = self.all_target_groups().await?;
        for tg in
            all.iter().filter(|t| t.vpc_id() == Some(vpc_id) && t.target_type() == Some(&TargetTypeEnum::Instance))
        {
            let Some(arn) = tg.target_group_arn() else { continue };
            let h = match self.serving.elb.describe_target_health().target_group_arn(arn).send().await {
                Ok(h) => h,
                Err(e) => {
                    let e = sdk_error("DescribeTargetHealth", "checking the targets of a target group", e);
                    if e.kind() == ErrorKind::NotFound {
                        continue;
                    }
                    return Err(e);
                }
            };
            let held = h.target_health_descriptions().iter().any(|d| {
                d.target().and_then(|t| t.id()) == Some(instance_id)
                    && !matches!(
                        parts::health_state(d.target_health().and_then(|t| t.state())).1,
                        "draining" | "unused"
                    )
            });
            if held {
                return Ok(Some(tg.target_group_name().unwrap_or(arn).to_string()));
            }
        }
        Ok(None)
    }
}

#[async_trait::async_trait]
impl Api<LoadBalancer> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &LoadBalancerSpec) -> ProviderResult<LoadBalancerObserved> {
        let what = format!("load balancer `{}`", spec.name);
        self.check_region(&what, &spec.region)?;
        check_spec(&what, spec)?;
        let scheme = match spec.scheme {
            LbScheme::Internal => LoadBalancerSchemeEnum::Internal,
            _ => LoadBalancerSchemeEnum::InternetFacing,
        };
        let out = self
            .serving
            .elb
            .create_load_balancer()
            .name(&spec.name)
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(scheme)
            .set_subnets(Some(spec.subnet_ids.clone()))
            .set_security_groups(Some(spec.firewall_ids.clone()))
            .set_tags(Some(Self::lb_tags(spec)))
            .send()
            .await
            .map_err(|e| sdk_error("CreateLoadBalancer", &format!("creating {what}"), e))?;
        let arn = out
            .load_balancers()
            .first()
            .and_then(|l| l.load_balancer_arn())
            .ok_or_else(|| missing("a load balancer ARN"))?
            .to_string();
        match self.finish_create(cx, spec, &arn).await {
            Ok(raw) => Ok(observed(&raw, &self.region, Some(spec.assumed_gb_processed_per_month))),
            Err(e) => {
                // A failed create leaves nothing behind.
                if let Err(clean) = self.delete_lb(cx, &arn).await {
                    tracing::warn!(error = %clean.full_chain(), arn, "could not clean up a half-created load balancer");
                }
                Err(e)
            }
        }
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<LoadBalancerObserved>> {
        let (lbs, tags) = match sel {
            Selector::Ids(ids) => {
                let mut ids: Vec<String> = ids.iter().filter(|i| lb_name_of_arn(i).is_some()).cloned().collect();
                ids.sort();
                ids.dedup();
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let lbs = self.describe_lbs(Some(ids)).await?;
                let arns: Vec<String> = lbs.iter().filter_map(|l| l.load_balancer_arn().map(str::to_string)).collect();
                let tags = self.elb_tags(&arns).await?;
                (lbs, tags)
            }
            Selector::Stack(stack) => {
                let all = self.describe_lbs(None).await?;
                let arns: Vec<String> = all.iter().filter_map(|l| l.load_balancer_arn().map(str::to_string)).collect();
                let mut tags = self.elb_tags(&arns).await?;
                tags.retain(|_, t| t.get(TAG_STACK) == Some(stack));
                let lbs =
                    all.into_iter().filter(|l| l.load_balancer_arn().is_some_and(|a| tags.contains_key(a))).collect();
                (lbs, tags)
            }
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        };
        let mut out: Vec<LoadBalancerObserved> =
            self.raw_of(lbs, tags).await?.iter().map(|r| observed(r, &self.region, None)).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &LoadBalancerSpec) -> ProviderResult<LoadBalancerObserved> {
        let what = format!("load balancer `{id}`");
        self.check_region(&what, &spec.region)?;
        check_spec(&what, spec)?;
        self.update_lb(cx, id, spec).await?;
        let raw = follow_up(cx, self.settings.timeouts.follow_up, || async {
            self.raw(id).await?.ok_or_else(|| not_found(id))
        })
        .await?;
        let mut obs = observed(&raw, &self.region, Some(spec.assumed_gb_processed_per_month));
        // Tags written a moment ago may not show in the read yet.
        obs.tags = spec.tags.clone();
        Ok(obs)
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        if lb_name_of_arn(id).is_none() {
            return Ok(());
        }
        self.delete_lb(cx, id).await
    }

    async fn register_targets(&self, cx: &OpContext, id: &str, group: &str, targets: &[String]) -> ProviderResult<()> {
        let (arn, _) = self.group_arn(id, group).await?;
        self.register(cx, &format!("load balancer `{id}`: group `{group}`"), &arn, targets).await
    }

    async fn deregister_targets(
        &self,
        cx: &OpContext,
        id: &str,
        group: &str,
        targets: &[String],
    ) -> ProviderResult<()> {
        let (arn, members) = self.group_arn(id, group).await?;
        // Removing one that is not registered is not an error (ELBv2 says `InvalidTarget`).
        let present: Vec<String> = targets.iter().filter(|t| members.contains(t)).cloned().collect();
        self.deregister(cx, &format!("load balancer `{id}`: group `{group}`"), &arn, &present).await
    }

    async fn target_health(&self, _cx: &OpContext, id: &str) -> ProviderResult<Vec<TargetHealth>> {
        let raw = self.raw(id).await?.ok_or_else(|| not_found(id))?;
        Ok(health_of(&raw))
    }
}
