//! Targets: the members of the instance groups, their health (`backendServices.getHealth`) and
//! registering or deregistering VMs in a release.

use std::collections::BTreeMap;

use google_cloud_compute_v1::model::health_status::HealthState;
use google_cloud_compute_v1::model::{BackendService, InstanceGroupsListInstancesRequest, ResourceGroupReference};
use konstacks_core::clock::OpContext;
use konstacks_core::error::ProviderError;
use konstacks_core::provider::{ProviderResult, TargetHealth, TargetHealthState};

use super::super::network::all_pages;
use super::super::{error, last_segment, relative, Gcp};
use super::groups::{by_zone, zone_of};
use super::{found, Names, Recorded};

/// The portable word of a target state.
pub(super) fn word(s: TargetHealthState) -> &'static str {
    match s {
        TargetHealthState::Healthy => "healthy",
        TargetHealthState::Unhealthy => "unhealthy",
        TargetHealthState::Draining => "draining",
        TargetHealthState::Unavailable => "unavailable",
        _ => "initial",
    }
}

impl Gcp {
    /// The instances (links) of the instance group `name` in `zone`.
    pub(super) async fn group_members(&self, zone: &str, name: &str) -> ProviderResult<Vec<String>> {
        let items = all_pages(|token| {
            let req = self
                .instance_groups
                .list_instances()
                .set_project(&self.project)
                .set_zone(zone)
                .set_instance_group(name)
                .set_page_token(token)
                .set_body(InstanceGroupsListInstancesRequest::default());
            async move { req.send().await.map(|p| (p.items, p.next_page_token)) }
        })
        .await;
        let items = match items {
            Err(e) if e.http_status_code() == Some(404) => return Ok(Vec::new()),
            r => r.map_err(|e| error::api(format!("listing the instances of instance group `{name}`"), e))?,
        };
        Ok(items.into_iter().filter_map(|i| i.instance).collect())
    }

    /// The health of every member of the instance groups behind `bs` (group `g`): the state
    /// `getHealth` gives, `initial` for a member it does not report yet.
    pub(super) async fn backend_health(
        &self,
        _cx: &OpContext,
        bs: &BackendService,
        g: &str,
    ) -> ProviderResult<Vec<TargetHealth>> {
        let name = bs.name.clone().unwrap_or_default();
        let mut out = Vec::new();
        for b in &bs.backends {
            let Some(link) = b.group.as_deref() else { continue };
            let Some(zone) = zone_of(link) else { continue };
            let members = self.group_members(&zone, last_segment(link)).await?;
            if members.is_empty() {
                continue;
            }
            let mut body = ResourceGroupReference::default();
            body.group = Some(relative(link));
            let r = self
                .backend_services
                .get_health()
                .set_project(&self.project)
                .set_backend_service(&name)
                .set_body(body)
                .send()
                .await;
            let health = found(format!("reading the health of backend service `{name}`"), r)?;
            let states: BTreeMap<String, TargetHealthState> = health
                .map(|h| h.health_status)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| {
                    let state = match s.health_state {
                        Some(HealthState::Healthy) => TargetHealthState::Healthy,
                        Some(HealthState::Unhealthy) => TargetHealthState::Unhealthy,
                        _ => TargetHealthState::Initial,
                    };
                    Some((relative(s.instance.as_deref()?), state))
                })
                .collect();
            for m in members {
                let id = relative(&m);
                let state = states.get(&id).copied().unwrap_or(TargetHealthState::Initial);
                let reason = (state == TargetHealthState::Unhealthy).then(|| "failing the health check".to_string());
                out.push(TargetHealth { group: g.to_string(), target_id: id, state, reason });
            }
        }
        out.sort();
        Ok(out)
    }

    /// The health of every target of the load balancer `name`.
    pub(super) async fn health_of(
        &self,
        cx: &OpContext,
        name: &str,
        rec: &Recorded,
    ) -> ProviderResult<Vec<TargetHealth>> {
        let n = Names::new(name);
        let mut out = Vec::new();
        for g in &rec.groups {
            let bname = n.group(g);
            let r = self.backend_services.get().set_project(&self.project).set_backend_service(&bname).send().await;
            if let Some(bs) = found(format!("reading backend service `{bname}`"), r)? {
                out.extend(self.backend_health(cx, &bs, g).await?);
            }
        }
        Ok(out)
    }

    /// Add (`add`) or remove VMs `targets` to/from group `group` of load balancer `name`: the
    /// group's spec with its new members, converged like an update of that group alone.
    pub(super) async fn change_targets(
        &self,
        cx: &OpContext,
        name: &str,
        group: &str,
        targets: &[String],
        add: bool,
    ) -> ProviderResult<()> {
        let lb = self
            .lb_observed(cx, name)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("load balancer `{name}` does not exist")))?;
        let mut g =
            lb.target_groups.iter().find(|g| g.name == group).cloned().ok_or_else(|| {
                ProviderError::not_found(format!("load balancer `{name}` has no target group `{group}`"))
            })?;
        by_zone(targets)?;
        if add {
            g.vm_ids.extend(targets.iter().cloned());
        } else {
            g.vm_ids.retain(|v| !targets.contains(v));
        }
        g.vm_ids.sort();
        g.vm_ids.dedup();
        let spec = konstacks_core::kinds::LoadBalancerSpec {
            name: lb.name.clone(),
            region: lb.region.clone(),
            scheme: lb.scheme,
            subnet_ids: lb.subnet_ids.clone(),
            firewall_ids: lb.firewall_ids.clone(),
            listeners: lb.listeners.clone(),
            target_groups: vec![g.clone()],
            routes: lb.routes.clone(),
            default_target_group: lb.default_target_group.clone(),
            tls_policy: lb.tls_policy,
            security_policy: lb.security_policy.clone(),
            assumed_gb_processed_per_month: lb.assumed_gb_processed_per_month,
            tags: lb.tags.clone(),
        };
        self.ensure_group(cx, &Names::new(name), &spec, &g).await
    }
}
