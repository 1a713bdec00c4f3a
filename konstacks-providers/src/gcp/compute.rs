//! `Compute`: Compute Engine instances.
//!
//! An instance boots from the public image family of its image slug, gets the machine type of
//! its size slug, and lives in the zone of its subnetwork (the subnet's zone index). Its
//! firewalls are network tags; its user data, with the VM's environment written to
//! `/etc/konstacks/app.env` by cloud-init, is the `user-data` metadata value; the stack's SSH
//! keys are the `ssh-keys` metadata value; an external IPv4 address (`ONE_TO_ONE_NAT`) is added
//! only when asked. A resize stops the instance, sets the machine type and starts it again.

use std::collections::BTreeMap;

use google_cloud_compute_v1::model::access_config::Type as AccessType;
use google_cloud_compute_v1::model::instance::Status as InstanceStatus;
use google_cloud_compute_v1::model::metadata::Items;
use google_cloud_compute_v1::model::{
    AccessConfig, AttachedDisk, AttachedDiskInitializeParams, Instance, InstancesSetLabelsRequest,
    InstancesSetMachineTypeRequest, Metadata, NetworkInterface, Tags as NetworkTags,
};
use konstacks_core::clock::OpContext;
use konstacks_core::error::ProviderError;
use konstacks_core::model::Vm;
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{Selector, VmObserved, VmSpec};

use super::labels::{self, Payload};
use super::network::{all_pages, names_filter};
use super::{error, immutable, invalid, last_segment, relative, Gcp};
use crate::userdata;

/// `(zone, name)` of an instance id `projects/p/zones/z/instances/n`.
fn instance_parts(id: &str) -> Option<(&str, &str)> {
    let mut it = id.rsplit('/');
    let name = it.next()?;
    if it.next()? != "instances" {
        return None;
    }
    Some((it.next()?, name))
}

fn status_name(s: Option<&InstanceStatus>) -> String {
    s.and_then(|s| s.name()).unwrap_or("unknown").to_ascii_lowercase()
}

impl Gcp {
    fn instance_id(&self, zone: &str, name: &str) -> String {
        format!("projects/{}/zones/{zone}/instances/{name}", self.project)
    }

    fn vm_observed(&self, i: &Instance) -> VmObserved {
        let payload = labels::from_labels(&i.labels);
        let zone = i.zone.as_deref().map(last_segment).unwrap_or_default();
        let name = i.name.clone().unwrap_or_default();
        let machine = i.machine_type.as_deref().map(last_segment).unwrap_or_default();
        let size = self.catalog.vm_size(machine).map(|o| o.slug.clone()).unwrap_or_else(|| machine.to_string());
        let nic = i.network_interfaces.first();
        let public_ip = nic.and_then(|n| n.access_configs.iter().find_map(|a| a.nat_ip.clone())).unwrap_or_default();
        let has_access = nic.is_some_and(|n| !n.access_configs.is_empty());
        let mut firewall_ids = i.tags.as_ref().map(|t| t.items.clone()).unwrap_or_default();
        firewall_ids.sort();
        VmObserved {
            id: self.instance_id(zone, &name),
            region: zone.rsplit_once('-').map(|(r, _)| r.to_string()).unwrap_or_default(),
            image: payload.get("image").unwrap_or_default().to_string(),
            size,
            subnet_id: nic.and_then(|n| n.subnetwork.as_deref()).map(relative).unwrap_or_default(),
            firewall_ids,
            assign_public_ip: has_access,
            public_ip,
            private_ip: nic.and_then(|n| n.network_ip.clone()).unwrap_or_default(),
            status: status_name(i.status.as_ref()),
            tags: payload.tags,
            name,
        }
    }

    async fn get_instance(&self, id: &str) -> ProviderResult<Instance> {
        let (zone, name) =
            instance_parts(id).ok_or_else(|| ProviderError::not_found(format!("VM `{id}` is not an instance path")))?;
        self.instances
            .get()
            .set_project(&self.project)
            .set_zone(zone)
            .set_instance(name)
            .send()
            .await
            .map_err(|e| error::api(format!("reading instance `{name}`"), e))
    }

    /// Wait until the instance has `status`.
    async fn wait_status(&self, cx: &OpContext, id: &str, status: InstanceStatus) -> ProviderResult<Instance> {
        let want = status_name(Some(&status));
        self.wait_for(cx, &format!("instance `{id}` becoming {want}"), self.waits.compute, || async {
            let i = self.get_instance(id).await?;
            Ok((i.status.as_ref() == Some(&status)).then_some(i))
        })
        .await
    }

    fn machine_type(&self, size: &str) -> ProviderResult<String> {
        self.catalog
            .vm_size(size)
            .map(|o| o.native.clone())
            .ok_or_else(|| invalid(format!("VM size `{size}` is not in the GCP catalogue")))
    }

    fn source_image(&self, image: &str) -> ProviderResult<String> {
        if let Some(o) = self.catalog.image(image) {
            return Ok(o.native.clone());
        }
        if image.starts_with("projects/") || image.starts_with("https://") {
            return Ok(image.to_string());
        }
        Err(invalid(format!("image `{image}` is neither in the GCP catalogue nor an image path `projects/...`")))
    }
}

#[async_trait::async_trait]
impl Api<Vm> for Gcp {
    async fn create(&self, cx: &OpContext, spec: &VmSpec) -> ProviderResult<VmObserved> {
        self.check_region(&spec.region)?;
        let machine = self.machine_type(&spec.size)?;
        let image = self.source_image(&spec.image)?;
        let subnet = self.get_subnet(&spec.subnet_id).await?;
        let subnet_payload = labels::from_description(subnet.description.as_deref()).unwrap_or_default();
        let zone_index: u8 = subnet_payload.get("zone").and_then(|z| z.parse().ok()).unwrap_or(0);
        let zone = self.zone_name(cx, zone_index).await?;
        let network = subnet.network.as_deref().map(relative).unwrap_or_default();
        self.check_firewalls(&spec.firewall_ids, &network).await?;
        let user_data = userdata::compose(spec.user_data.as_deref(), &spec.env).map_err(invalid)?;
        let payload = Payload::new(&spec.tags).with("image", &spec.image);

        let mut i = Instance::default();
        i.name = Some(spec.name.clone());
        i.machine_type = Some(format!("zones/{zone}/machineTypes/{machine}"));
        i.labels = labels::to_labels(&payload).map_err(invalid)?.into_iter().collect();
        let mut params = AttachedDiskInitializeParams::default();
        params.source_image = Some(image);
        let mut disk = AttachedDisk::default();
        disk.boot = Some(true);
        disk.auto_delete = Some(true);
        disk.initialize_params = Some(params);
        i.disks = vec![disk];
        let mut nic = NetworkInterface::default();
        nic.subnetwork = subnet.self_link.clone().or_else(|| Some(spec.subnet_id.clone()));
        if spec.assign_public_ip {
            let mut access = AccessConfig::default();
            access.name = Some("External NAT".into());
            access.r#type = Some(AccessType::OneToOneNat);
            nic.access_configs = vec![access];
        }
        i.network_interfaces = vec![nic];
        let mut tags = NetworkTags::default();
        tags.items = spec.firewall_ids.clone();
        tags.items.sort();
        i.tags = Some(tags);
        let mut items = Vec::new();
        if let Some(u) = &user_data {
            let mut item = Items::default();
            item.key = Some("user-data".into());
            item.value = Some(u.expose().clone());
            items.push(item);
        }
        if !spec.ssh_keys.is_empty() {
            let mut item = Items::default();
            item.key = Some("ssh-keys".into());
            item.value =
                Some(spec.ssh_keys.iter().map(|k| format!("konstacks:{}", k.trim())).collect::<Vec<_>>().join("\n"));
            items.push(item);
        }
        if !items.is_empty() {
            let mut metadata = Metadata::default();
            metadata.items = items;
            i.metadata = Some(metadata);
        }

        let what = format!("creating instance `{}`", spec.name);
        self.insert(cx, &what, &["instance", &self.project, &zone, &spec.name], |id| {
            self.instances.insert().set_project(&self.project).set_zone(&zone).set_request_id(id).set_body(i).send()
        })
        .await?;
        let id = self.instance_id(&zone, &spec.name);
        let running = self.wait_status(cx, &id, InstanceStatus::Running).await?;
        Ok(self.vm_observed(&running))
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<VmObserved>> {
        let filter = match sel {
            Selector::Ids(ids) if ids.is_empty() => return Ok(Vec::new()),
            Selector::Ids(ids) => names_filter(
                &ids.iter().filter_map(|i| instance_parts(i).map(|(_, n)| n.to_string())).collect::<Vec<_>>(),
                "",
            ),
            Selector::Stack(stack) => {
                let (k, v) = labels::stack_label(stack);
                format!("labels.{k} = \"{v}\"")
            }
            _ => return Ok(Vec::new()),
        };
        let instances = all_pages(|token| {
            let req = self
                .instances
                .aggregated_list()
                .set_project(&self.project)
                .set_filter(filter.clone())
                .set_page_token(token);
            async move {
                req.send().await.map(|p| {
                    // Scopes come as a map: sort them for a deterministic answer.
                    let scoped: BTreeMap<String, Vec<Instance>> =
                        p.items.into_iter().map(|(scope, list)| (scope, list.instances)).collect();
                    (scoped.into_values().flatten().collect::<Vec<_>>(), p.next_page_token)
                })
            }
        })
        .await
        .map_err(|e| error::api("listing instances", e))?;
        let mut out: Vec<VmObserved> = instances
            .iter()
            .map(|i| (self.vm_observed(i), labels::from_labels(&i.labels)))
            .filter(|(vm, payload)| match sel {
                Selector::Ids(ids) => ids.iter().any(|i| i == &vm.id),
                Selector::Stack(stack) => payload.stack() == Some(stack.as_str()),
                _ => false,
            })
            .map(|(vm, _)| vm)
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &VmSpec) -> ProviderResult<VmObserved> {
        let (zone, name) =
            instance_parts(id).ok_or_else(|| ProviderError::not_found(format!("VM `{id}` is not an instance path")))?;
        let current = self.get_instance(id).await?;
        let observed = self.vm_observed(&current);
        let what = format!("instance `{name}`");
        immutable(&what, "subnet", &observed.subnet_id, &relative(&spec.subnet_id))?;
        immutable(&what, "assign_public_ip", &observed.assign_public_ip, &spec.assign_public_ip)?;

        let mut firewalls = spec.firewall_ids.clone();
        firewalls.sort();
        if observed.firewall_ids != firewalls {
            let network =
                current.network_interfaces.first().and_then(|n| n.network.as_deref()).map(relative).unwrap_or_default();
            self.check_firewalls(&firewalls, &network).await?;
            let mut tags = NetworkTags::default();
            tags.items = firewalls;
            tags.fingerprint = current.tags.as_ref().and_then(|t| t.fingerprint.clone());
            let what = format!("setting the firewalls (network tags) of instance `{name}`");
            let sent = self
                .instances
                .set_tags()
                .set_project(&self.project)
                .set_zone(zone)
                .set_instance(name)
                .set_body(tags)
                .send()
                .await;
            self.run_op(cx, &what, sent).await?;
        }

        let payload = Payload { tags: spec.tags.clone(), ..labels::from_labels(&current.labels) };
        let wanted = labels::to_labels(&payload).map_err(invalid)?;
        let have: BTreeMap<String, String> = current.labels.clone().into_iter().collect();
        if wanted != have {
            let mut body = InstancesSetLabelsRequest::default();
            body.labels = wanted.into_iter().collect();
            body.label_fingerprint = current.label_fingerprint.clone();
            let what = format!("setting the labels of instance `{name}`");
            let sent = self
                .instances
                .set_labels()
                .set_project(&self.project)
                .set_zone(zone)
                .set_instance(name)
                .set_body(body)
                .send()
                .await;
            self.run_op(cx, &what, sent).await?;
        }

        let machine = self.machine_type(&spec.size)?;
        let current_machine = current.machine_type.as_deref().map(last_segment).unwrap_or_default();
        if current_machine != machine {
            let stop = self.instances.stop().set_project(&self.project).set_zone(zone).set_instance(name).send().await;
            self.run_op(cx, &format!("stopping instance `{name}` to resize it"), stop).await?;
            self.wait_status(cx, id, InstanceStatus::Terminated).await?;
            let mut body = InstancesSetMachineTypeRequest::default();
            body.machine_type = Some(format!("zones/{zone}/machineTypes/{machine}"));
            let set = self
                .instances
                .set_machine_type()
                .set_project(&self.project)
                .set_zone(zone)
                .set_instance(name)
                .set_body(body)
                .send()
                .await;
            let resized = self.run_op(cx, &format!("setting machine type `{machine}` on instance `{name}`"), set).await;
            // Start it again whether or not the resize worked: a failed resize must not leave it off.
            let start =
                self.instances.start().set_project(&self.project).set_zone(zone).set_instance(name).send().await;
            self.run_op(cx, &format!("starting instance `{name}` after the resize"), start).await?;
            resized?;
        }
        let running = self.wait_status(cx, id, InstanceStatus::Running).await?;
        Ok(self.vm_observed(&running))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let Some((zone, name)) = instance_parts(id) else {
            return Ok(());
        };
        self.refuse_if_target(zone, name).await?; // a load balancer target: see load_balancer.rs
        let sent = self.instances.delete().set_project(&self.project).set_zone(zone).set_instance(name).send().await;
        self.run_delete(cx, &format!("deleting instance `{name}`"), sent).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids() {
        assert_eq!(instance_parts("projects/p/zones/europe-west1-b/instances/web"), Some(("europe-west1-b", "web")));
        assert_eq!(instance_parts("web"), None);
        assert_eq!(status_name(Some(&InstanceStatus::Running)), "running");
        assert_eq!(status_name(None), "unknown");
    }
}
