//! The pieces of a target group: its health check, one unmanaged instance group per zone of
//! its VMs, and its backend service.

use std::collections::{BTreeMap, BTreeSet};

use google_cloud_compute_v1::model::backend::BalancingMode;
use google_cloud_compute_v1::model::backend_service::{LoadBalancingScheme, Protocol};
use google_cloud_compute_v1::model::health_check::Type as HcType;
use google_cloud_compute_v1::model::{
    http_health_check, https_health_check, tcp_health_check, Backend, BackendService, ConnectionDraining,
    HTTPHealthCheck, HTTPSHealthCheck, HealthCheck, InstanceGroup, InstanceGroupsAddInstancesRequest,
    InstanceGroupsRemoveInstancesRequest, InstanceReference, NamedPort, TCPHealthCheck,
};
use konstacks_core::clock::OpContext;
use konstacks_core::kinds::{HealthProtocol, LoadBalancerSpec, TargetGroupSpec};
use konstacks_core::provider::ProviderResult;

use super::super::labels::{self, Payload};
use super::super::{invalid, last_segment, Gcp};
use super::{found, json, Names};

/// The named port of every instance group.
pub(super) const PORT_NAME: &str = "http";

/// `(zone, name)` of an instance id `projects/p/zones/z/instances/n`.
pub(super) fn instance_parts(id: &str) -> Option<(String, String)> {
    let mut it = id.rsplit('/');
    let name = it.next()?;
    if it.next()? != "instances" {
        return None;
    }
    Some((it.next()?.to_string(), name.to_string()))
}

/// The VMs of a group, by zone.
pub(super) fn by_zone(vm_ids: &[String]) -> ProviderResult<BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for id in vm_ids {
        let (zone, name) = instance_parts(id).ok_or_else(|| invalid(format!("target `{id}` is not an instance id")))?;
        out.entry(zone).or_default().insert(name);
    }
    Ok(out)
}

pub(super) fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The health check of group `g`.
fn health_check(name: &str, g: &TargetGroupSpec, description: String) -> HealthCheck {
    let h = &g.health_check;
    let mut hc = HealthCheck::default();
    hc.name = Some(name.to_string());
    hc.description = Some(description);
    hc.check_interval_sec = Some(i32_of(h.interval_s));
    hc.timeout_sec = Some(i32_of(h.timeout_s));
    hc.healthy_threshold = Some(i32_of(h.healthy_threshold));
    hc.unhealthy_threshold = Some(i32_of(h.unhealthy_threshold));
    let port = h.port.map(i32::from);
    match h.protocol {
        HealthProtocol::Tcp => {
            hc.r#type = Some(HcType::Tcp);
            let mut t = TCPHealthCheck::default();
            t.port = port;
            t.port_specification = Some(match port {
                Some(_) => tcp_health_check::PortSpecification::UseFixedPort,
                None => tcp_health_check::PortSpecification::UseServingPort,
            });
            hc.tcp_health_check = Some(t);
        }
        HealthProtocol::Https => {
            hc.r#type = Some(HcType::Https);
            let mut t = HTTPSHealthCheck::default();
            t.port = port;
            t.request_path = h.path.clone();
            t.port_specification = Some(match port {
                Some(_) => https_health_check::PortSpecification::UseFixedPort,
                None => https_health_check::PortSpecification::UseServingPort,
            });
            hc.https_health_check = Some(t);
        }
        _ => {
            hc.r#type = Some(HcType::Http);
            let mut t = HTTPHealthCheck::default();
            t.port = port;
            t.request_path = h.path.clone();
            t.port_specification = Some(match port {
                Some(_) => http_health_check::PortSpecification::UseFixedPort,
                None => http_health_check::PortSpecification::UseServingPort,
            });
            hc.http_health_check = Some(t);
        }
    }
    hc
}

/// The payload of the backend service of group `g`.
fn group_payload(spec: &LoadBalancerSpec, g: &TargetGroupSpec) -> Payload {
    let mut p = Payload::new(&spec.tags)
        .with("lb_name", &spec.name)
        .with("group", &g.name)
        .with("port", g.port.to_string())
        .with("release", json(&g.release));
    if let Some(s) = &g.health_check.expected_status {
        p = p.with("expected_status", s);
    }
    p
}
impl Gcp {
    /// Health check, instance groups (one per zone of its VMs) and backend service of `g`.
    pub(super) async fn ensure_group(
        &self,
        cx: &OpContext,
        n: &Names,
        spec: &LoadBalancerSpec,
        g: &TargetGroupSpec,
    ) -> ProviderResult<()> {
        let p = &self.project;
        let name = n.group(&g.name);
        let payload = group_payload(spec, g);
        let desc = labels::to_description(&payload);
        let hc = health_check(&name, g, desc.clone());
        let r = self.health_checks.get().set_project(p).set_health_check(&name).send().await;
        match found(format!("reading health check `{name}`"), r)? {
            None => {
                self.insert(cx, &format!("creating health check `{name}`"), &["healthCheck", p, &name], |id| {
                    self.health_checks.insert().set_project(p).set_request_id(id).set_body(hc).send()
                })
                .await?;
            }
            Some(have) => {
                if super::read::health_spec(&have, None) != super::read::health_spec(&hc, None)
                    || have.description != hc.description
                {
                    let sent =
                        self.health_checks.update().set_project(p).set_health_check(&name).set_body(hc).send().await;
                    self.run_op(cx, &format!("updating health check `{name}`"), sent).await?;
                }
            }
        }
        let zones = by_zone(&g.vm_ids)?;
        let r = self.backend_services.get().set_project(p).set_backend_service(&name).send().await;
        let current = found(format!("reading backend service `{name}`"), r)?;
        for (zone, vms) in &zones {
            self.ensure_instance_group(cx, spec, &name, zone, g.port, vms).await?;
        }
        let mut bs = BackendService::default();
        bs.name = Some(name.clone());
        bs.description = Some(desc);
        bs.protocol = Some(Protocol::Http);
        bs.port_name = Some(PORT_NAME.to_string());
        bs.load_balancing_scheme = Some(LoadBalancingScheme::ExternalManaged);
        bs.health_checks = vec![self.global_ref("healthChecks", &name)];
        let mut d = ConnectionDraining::default();
        d.draining_timeout_sec = Some(i32_of(g.deregistration_delay_s));
        bs.connection_draining = Some(d);
        bs.backends = zones
            .keys()
            .map(|z| {
                let mut b = Backend::default();
                b.group = Some(self.group_ref(z, &name));
                b.balancing_mode = Some(BalancingMode::Utilization);
                b.capacity_scaler = Some(1.0);
                b
            })
            .collect();
        let stale: Vec<String> = match &current {
            None => {
                self.insert(cx, &format!("creating backend service `{name}`"), &["backendService", p, &name], |id| {
                    self.backend_services.insert().set_project(p).set_request_id(id).set_body(bs).send()
                })
                .await?;
                Vec::new()
            }
            Some(have) => {
                let old_zones: Vec<String> =
                    have.backends.iter().filter_map(|b| b.group.as_deref().and_then(zone_of)).collect();
                let same = have.description == bs.description
                    && have.connection_draining.as_ref().and_then(|c| c.draining_timeout_sec)
                        == Some(i32_of(g.deregistration_delay_s))
                    && old_zones.iter().cloned().collect::<BTreeSet<_>>() == zones.keys().cloned().collect()
                    && have.health_checks.iter().map(|h| last_segment(h)).eq([name.as_str()]);
                if !same {
                    bs.fingerprint = have.fingerprint.clone();
                    let sent = self
                        .backend_services
                        .patch()
                        .set_project(p)
                        .set_backend_service(&name)
                        .set_body(bs)
                        .send()
                        .await;
                    self.run_op(cx, &format!("updating backend service `{name}`"), sent).await?;
                }
                old_zones.into_iter().filter(|z| !zones.contains_key(z)).collect()
            }
        };
        for z in stale {
            self.drop_instance_group(cx, &z, &name).await?;
        }
        Ok(())
    }

    /// The instance group `name` in `zone` holding exactly `vms` (names), port `port`.
    async fn ensure_instance_group(
        &self,
        cx: &OpContext,
        spec: &LoadBalancerSpec,
        name: &str,
        zone: &str,
        port: u16,
        vms: &BTreeSet<String>,
    ) -> ProviderResult<()> {
        let p = &self.project;
        let r = self.instance_groups.get().set_project(p).set_zone(zone).set_instance_group(name).send().await;
        let mut np = NamedPort::default();
        np.name = Some(PORT_NAME.to_string());
        np.port = Some(i32::from(port));
        match found(format!("reading instance group `{name}`"), r)? {
            None => {
                let mut g = InstanceGroup::default();
                g.name = Some(name.to_string());
                g.description = Some(labels::to_description(&Payload::new(&spec.tags).with("lb_name", &spec.name)));
                g.named_ports = vec![np];
                self.insert(
                    cx,
                    &format!("creating instance group `{name}` in `{zone}`"),
                    &["instanceGroup", p, zone, name],
                    |id| {
                        self.instance_groups
                            .insert()
                            .set_project(p)
                            .set_zone(zone)
                            .set_request_id(id)
                            .set_body(g)
                            .send()
                    },
                )
                .await?;
            }
            Some(g) => {
                if g.named_ports.first().and_then(|x| x.port) != Some(i32::from(port)) {
                    let mut body = google_cloud_compute_v1::model::InstanceGroupsSetNamedPortsRequest::default();
                    body.named_ports = vec![np];
                    body.fingerprint = g.fingerprint.clone();
                    let sent = self
                        .instance_groups
                        .set_named_ports()
                        .set_project(p)
                        .set_zone(zone)
                        .set_instance_group(name)
                        .set_body(body)
                        .send()
                        .await;
                    self.run_op(cx, &format!("setting the port of instance group `{name}`"), sent).await?;
                }
            }
        }
        let have: BTreeSet<String> =
            self.group_members(zone, name).await?.iter().map(|m| last_segment(m).to_string()).collect();
        self.change_members(cx, zone, name, &vms.difference(&have).cloned().collect::<Vec<_>>(), true).await?;
        self.change_members(cx, zone, name, &have.difference(vms).cloned().collect::<Vec<_>>(), false).await
    }

    /// Add (or remove) instances `vms` (names in `zone`) to the instance group `name`.
    pub(super) async fn change_members(
        &self,
        cx: &OpContext,
        zone: &str,
        name: &str,
        vms: &[String],
        add: bool,
    ) -> ProviderResult<()> {
        if vms.is_empty() {
            return Ok(());
        }
        let p = &self.project;
        let refs: Vec<InstanceReference> = vms
            .iter()
            .map(|v| {
                let mut r = InstanceReference::default();
                r.instance = Some(format!("projects/{p}/zones/{zone}/instances/{v}"));
                r
            })
            .collect();
        let (verb, sent) = if add {
            let mut body = InstanceGroupsAddInstancesRequest::default();
            body.instances = refs;
            let req = self.instance_groups.add_instances().set_project(p).set_zone(zone).set_instance_group(name);
            ("adding instances to", req.set_body(body).send().await)
        } else {
            let mut body = InstanceGroupsRemoveInstancesRequest::default();
            body.instances = refs;
            let req = self.instance_groups.remove_instances().set_project(p).set_zone(zone).set_instance_group(name);
            ("removing instances from", req.set_body(body).send().await)
        };
        self.run_op(cx, &format!("{verb} instance group `{name}`"), sent).await
    }
}

/// The zone of an instance group link.
pub(super) fn zone_of(link: &str) -> Option<String> {
    let mut it = link.split('/');
    while let Some(s) = it.next() {
        if s == "zones" {
            return it.next().map(str::to_string);
        }
    }
    None
}
