//! `Compute`: droplets. Image and size slugs come from the catalogue, the droplet joins its
//! VPC (`vpc_uuid`), its logical subnet (`kxsn:` tag) and its firewalls (their `kxfw:` tags),
//! gets the user data plus its environment file, SSH keys of the account, the monitoring agent
//! and its labels as tags, and is put in the stack's project. Creation waits for `active` on the
//! operation's clock; a resize powers the droplet off, resizes CPU and memory (not the disk, so
//! it can be undone) and powers it on again.

use std::collections::BTreeSet;

use konstacks_core::clock::OpContext;
use konstacks_core::error::ProviderError;
use konstacks_core::model::Vm;
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{Selector, VmObserved, VmSpec, TAG_STACK};
use reqwest::Method;

use super::catalog::{image_name, image_slug, vm_size_name, vm_size_slug};
use super::labels;
use super::types::{
    ActionEnvelope, Droplet, DropletAction, DropletCreate, DropletEnvelope, DropletList, SshKeyCreate, SshKeyEnvelope,
    SshKeyList, TagResource, TagResources,
};
use super::{immutable, invalid, stack_of, userdata, ApiError, DigitalOcean};

fn is_system(tag: &str) -> bool {
    tag.starts_with(labels::FW_TAG) || tag.starts_with(labels::SUBNET_TAG)
}

/// The label and system tags a droplet should carry.
fn droplet_tags(spec: &VmSpec, vpc: &str, cidr: &str) -> ProviderResult<Vec<String>> {
    let mut t = labels::encode(&spec.tags, Some(&spec.name)).map_err(invalid)?;
    t.push(labels::subnet_tag(vpc, cidr));
    t.extend(spec.firewall_ids.iter().map(|f| labels::firewall_tag(f)));
    t.sort();
    t.dedup();
    Ok(t)
}

/// The first two fields of an OpenSSH public key (type and key), for comparing keys.
fn key_body(k: &str) -> String {
    k.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

impl DigitalOcean {
    fn droplet_observed(&self, d: &Droplet) -> VmObserved {
        let mut subnet_id = String::new();
        let mut firewall_ids = Vec::new();
        for t in &d.tags {
            if let Some((vpc, cidr)) = labels::subnet_of(t) {
                subnet_id = labels::subnet_id(&vpc, &cidr);
            } else if let Some(fw) = labels::firewall_of(t) {
                firewall_ids.push(fw);
            }
        }
        firewall_ids.sort();
        let public_ip = d.address("public");
        VmObserved {
            id: d.id.to_string(),
            name: d.name.clone(),
            region: d.region.slug.clone(),
            image: d.image.slug.as_deref().map(|s| image_name(&self.catalog, s)).unwrap_or_default(),
            size: vm_size_name(&self.catalog, &d.size_slug),
            subnet_id,
            firewall_ids,
            assign_public_ip: !public_ip.is_empty(),
            public_ip,
            private_ip: d.address("private"),
            status: d.status.clone(),
            tags: labels::decode(&d.tags, Some(&d.name)),
        }
    }

    async fn get_droplet(&self, cx: &OpContext, id: &str) -> Result<Droplet, ApiError> {
        let d: DropletEnvelope = self.client.get(cx, &format!("/v2/droplets/{id}"), &[]).await?;
        Ok(d.droplet)
    }

    /// Fingerprints of `keys`, adding the missing ones to the account.
    async fn ssh_fingerprints(&self, cx: &OpContext, keys: &[String]) -> ProviderResult<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let known = self
            .client
            .list::<SshKeyList>(cx, "/v2/account/keys", &[])
            .await
            .map_err(|e| e.into_provider("listing the account's SSH keys"))?;
        let mut out = Vec::new();
        for k in keys {
            let body = key_body(k);
            if let Some(found) = known.iter().find(|s| key_body(&s.public_key) == body) {
                out.push(found.fingerprint.clone());
                continue;
            }
            let name = format!("konstacks-{}", out.len() + 1 + known.len());
            let created: SshKeyEnvelope = self
                .client
                .send(cx, Method::POST, "/v2/account/keys", &SshKeyCreate { name, public_key: k.clone() })
                .await
                .map_err(|e| e.into_provider("adding an SSH key to the account"))?;
            out.push(created.ssh_key.fingerprint);
        }
        Ok(out)
    }

    async fn droplet_action(&self, cx: &OpContext, id: &str, action: DropletAction) -> ProviderResult<()> {
        let what = format!("{action:?} of droplet `{id}`");
        let started: ActionEnvelope = self
            .client
            .send(cx, Method::POST, &format!("/v2/droplets/{id}/actions"), &action)
            .await
            .map_err(|e| e.into_provider(&what))?;
        let action_id = started.action.id;
        self.wait_for(cx, &what, self.waits.action, || async {
            let a: ActionEnvelope = self
                .client
                .get(cx, &format!("/v2/actions/{action_id}"), &[])
                .await
                .map_err(|e| e.into_provider(format!("reading action {action_id}")))?;
            match a.action.status.as_str() {
                "completed" => Ok(Some(())),
                "errored" => Err(ProviderError::new(
                    konstacks_core::error::ErrorKind::Other,
                    format!("{what} failed on DigitalOcean's side (action {action_id}); check the droplet's history"),
                )),
                _ => Ok(None),
            }
        })
        .await
    }

    async fn set_droplet_tag(&self, cx: &OpContext, id: &str, tag: &str, on: bool) -> ProviderResult<()> {
        if on {
            self.ensure_tag(cx, tag).await?;
        }
        let body = TagResources {
            resources: vec![TagResource { resource_id: id.to_string(), resource_type: "droplet".into() }],
        };
        let method = if on { Method::POST } else { Method::DELETE };
        match self.client.send_empty(cx, method, &format!("/v2/tags/{tag}/resources"), Some(&body)).await {
            Ok(()) => Ok(()),
            Err(e) if !on && e.is_not_found() => Ok(()),
            Err(e) => Err(
                e.into_provider(format!("{} tag `{tag}` on droplet `{id}`", if on { "setting" } else { "removing" }))
            ),
        }
    }

    /// Firewalls a droplet attaches: they must exist and belong to the droplet's VPC.
    async fn check_firewalls(&self, cx: &OpContext, ids: &[String], vpc: &str) -> ProviderResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let tags = self.all_tags(cx).await?;
        for id in ids {
            let f = self.referenced_firewall(cx, id).await?;
            let key = labels::firewall_record_key(id);
            let fw_vpc = tags
                .iter()
                .filter_map(|t| labels::Record::parse(t))
                .filter(|r| r.kind == labels::RecordKind::Firewall && r.key == key)
                .find_map(|r| r.field.strip_prefix("vpc:").map(str::to_string));
            if fw_vpc.as_deref().is_some_and(|v| v != vpc) {
                return Err(invalid(format!(
                    "firewall `{id}` belongs to VPC `{}`, not `{vpc}`; attach firewalls of the droplet's VPC",
                    fw_vpc.unwrap_or_default()
                )));
            }
            self.ensure_own_tag(cx, &f).await?;
        }
        Ok(())
    }

    async fn wait_active(&self, cx: &OpContext, id: &str) -> ProviderResult<Droplet> {
        self.wait_for(cx, &format!("droplet `{id}` becoming active"), self.waits.droplet_active, || async {
            let d = self.get_droplet(cx, id).await.map_err(|e| e.into_provider(format!("reading droplet `{id}`")))?;
            Ok((d.status == "active").then_some(d))
        })
        .await
    }
}

#[async_trait::async_trait]
impl Api<Vm> for DigitalOcean {
    async fn create(&self, cx: &OpContext, spec: &VmSpec) -> ProviderResult<VmObserved> {
        self.check_region(&spec.region)?;
        let size = vm_size_slug(&self.catalog, &spec.size)
            .ok_or_else(|| invalid(format!("droplet size `{}` is not in the DigitalOcean catalogue", spec.size)))?;
        let image = image_slug(&self.catalog, &spec.image)
            .ok_or_else(|| invalid(format!("image `{}` is not in the DigitalOcean catalogue", spec.image)))?;
        let (vpc, cidr) = labels::parse_subnet_id(&spec.subnet_id)
            .ok_or_else(|| ProviderError::not_found(format!("subnet `{}` does not exist", spec.subnet_id)))?;
        let subnet = self.read_subnet(cx, &spec.subnet_id).await?;
        if subnet.region != spec.region {
            return Err(ProviderError::not_found(format!(
                "subnet `{}` does not exist in region `{}`",
                spec.subnet_id, spec.region
            )));
        }
        self.check_firewalls(cx, &spec.firewall_ids, &vpc).await?;
        let user_data = userdata::compose(spec.user_data.as_deref(), &spec.env).map_err(invalid)?;
        let ssh_keys = self.ssh_fingerprints(cx, &spec.ssh_keys).await?;
        // The project exists before the droplet does, so a failure here creates nothing.
        self.project_for(cx, &spec.tags).await?;
        let body = DropletCreate {
            name: spec.name.clone(),
            region: spec.region.clone(),
            size,
            image,
            ssh_keys,
            backups: false,
            ipv6: false,
            monitoring: true,
            tags: droplet_tags(spec, &vpc, &cidr)?,
            user_data: user_data.map(|u| u.expose().clone()),
            vpc_uuid: vpc,
            public_networking: spec.assign_public_ip,
        };
        let created: DropletEnvelope = self
            .client
            .send(cx, Method::POST, "/v2/droplets", &body)
            .await
            .map_err(|e| e.into_provider(format!("creating droplet `{}`", spec.name)))?;
        let id = created.droplet.id.to_string();
        let d = self.wait_active(cx, &id).await?;
        self.assign_to_project(cx, &spec.tags, &format!("do:droplet:{id}")).await?;
        Ok(self.droplet_observed(&d))
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<VmObserved>> {
        let stack = match sel {
            Selector::Stack(s) => s.clone(),
            _ => cx.stack.clone(),
        };
        let query = if stack.is_empty() { Vec::new() } else { vec![("tag_name", labels::stack_tag(&stack))] };
        let listed = self
            .client
            .list::<DropletList>(cx, "/v2/droplets", &query)
            .await
            .map_err(|e| e.into_provider("listing droplets"))?;
        let mut out: Vec<VmObserved> = listed.iter().map(|d| self.droplet_observed(d)).collect();
        match sel {
            Selector::Ids(ids) => {
                out.retain(|v| ids.contains(&v.id));
                // Droplets whose stack tag was removed behind our back are read one by one.
                let seen: BTreeSet<String> = out.iter().map(|v| v.id.clone()).collect();
                for id in ids.iter().filter(|i| !seen.contains(*i)) {
                    if id.parse::<u64>().is_err() {
                        continue;
                    }
                    match self.get_droplet(cx, id).await {
                        Ok(d) => out.push(self.droplet_observed(&d)),
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into_provider(format!("reading droplet `{id}`"))),
                    }
                }
            }
            _ => out.retain(|v| v.tags.get(TAG_STACK) == Some(&stack)),
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &VmSpec) -> ProviderResult<VmObserved> {
        let d = self.get_droplet(cx, id).await.map_err(|e| e.into_provider(format!("reading droplet `{id}`")))?;
        let cur = self.droplet_observed(&d);
        let what = format!("droplet `{id}`");
        immutable(&what, "region", &cur.region, &spec.region)?;
        immutable(&what, "subnet_id", &cur.subnet_id, &spec.subnet_id)?;
        immutable(&what, "assign_public_ip", &cur.assign_public_ip, &spec.assign_public_ip)?;
        let same_image = image_slug(&self.catalog, &spec.image) == image_slug(&self.catalog, &cur.image);
        if !same_image {
            immutable(&what, "image", &cur.image, &spec.image)?;
        }
        let (vpc, cidr) = labels::parse_subnet_id(&spec.subnet_id)
            .ok_or_else(|| invalid(format!("subnet id `{}` is malformed", spec.subnet_id)))?;
        self.check_firewalls(cx, &spec.firewall_ids, &vpc).await?;
        if spec.name != d.name {
            self.droplet_action(cx, id, DropletAction::Rename { name: spec.name.clone() }).await?;
        }
        let size = vm_size_slug(&self.catalog, &spec.size)
            .ok_or_else(|| invalid(format!("droplet size `{}` is not in the DigitalOcean catalogue", spec.size)))?;
        if size != d.size_slug {
            if d.status != "off" {
                self.droplet_action(cx, id, DropletAction::PowerOff).await?;
            }
            self.droplet_action(cx, id, DropletAction::Resize { size, disk: false }).await?;
            self.droplet_action(cx, id, DropletAction::PowerOn).await?;
        }
        let want: BTreeSet<String> = droplet_tags(spec, &vpc, &cidr)?.into_iter().collect();
        let have: BTreeSet<String> =
            d.tags.iter().filter(|t| is_system(t) || labels::parse_label(t).is_some()).cloned().collect();
        for t in want.difference(&have) {
            self.set_droplet_tag(cx, id, t, true).await?;
        }
        for t in have.difference(&want) {
            self.set_droplet_tag(cx, id, t, false).await?;
        }
        let d = self.wait_active(cx, id).await?;
        Ok(self.droplet_observed(&d))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let d = self.get_droplet(cx, id).await.map_err(|e| e.into_provider(format!("reading droplet `{id}`")))?;
        // DigitalOcean would silently take it out of its load balancers: refuse, as the engine
        // removes a target from its load balancer first.
        let fronting = self.fronting(cx, d.id).await?;
        if !fronting.is_empty() {
            return Err(ProviderError::new(
                konstacks_core::error::ErrorKind::Conflict,
                format!(
                    "droplet `{id}` is a target of load balancer(s) {}; remove it from them first",
                    fronting.join(", ")
                ),
            ));
        }
        self.client
            .send_empty::<()>(cx, Method::DELETE, &format!("/v2/droplets/{id}"), None)
            .await
            .map_err(|e| e.into_provider(format!("deleting droplet `{id}`")))?;
        let tags = labels::decode(&d.tags, Some(&d.name));
        let emptied = self.forget_project_if_empty(cx, &stack_of(&tags, cx)).await;
        self.prune_tags(cx, &d.tags, emptied).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_keys_compare_by_type_and_body() {
        assert_eq!(key_body("ssh-ed25519 AAAA user@host"), key_body("ssh-ed25519  AAAA other"));
        assert_ne!(key_body("ssh-ed25519 AAAA"), key_body("ssh-ed25519 BBBB"));
    }
}
