//! EC2 instances.
//!
//! Owns image resolution (a portable slug -> the newest matching AMI of the region, or a
//! configured AMI), size mapping (slug -> instance type, from the catalogue), the user data
//! (the stack's own cloud-init plus a Konstacks part that installs the SSH keys and writes the
//! environment to `/etc/konstacks/app.env`), the `ClientToken` that makes a retried
//! `RunInstances` idempotent, and the waits for `running` / `stopped` / `terminated`.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    AttributeValue, Filter, HttpTokensState, Instance, InstanceMetadataOptionsRequest,
    InstanceNetworkInterfaceSpecification, InstanceType, ResourceType,
};
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::model::Vm;
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{Selector, VmObserved, VmSpec, TAG_PATH, TAG_STACK};

use super::error::{invalid, sdk_error};
use super::{
    check_tags, digest, ec2_filter, ec2_tag_map, ec2_tag_spec, follow_up, id_chunks, name_of, read_chunks,
    stack_filter, sync_ec2_tags, visible_tags, wait_for, AwsProvider, Polled, TAG_IMAGE, TAG_PUBLIC_IP, TAG_SIZE,
};

/// Largest user data EC2 accepts (before base64).
const MAX_USER_DATA: usize = 16 * 1024;
/// Where the workload's environment is written on the instance.
pub const ENV_FILE: &str = "/etc/konstacks/app.env";
const BOUNDARY: &str = "==KONSTACKS-USER-DATA==";
/// Instance states that count as "exists" for reads (terminated instances linger for an hour).
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

fn missing(what: &str) -> ProviderError {
    ProviderError::new(ErrorKind::Other, format!("AWS answered without {what}; this is unexpected, retry"))
}

fn state_of(i: &Instance) -> String {
    i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default()
}

/// The idempotency token of a launch: derived from the stack, the logical path, the physical
/// name (which carries the replacement generation) and the launch parameters, so a retry of the
/// same create sends the same token and a later, different create does not. 35 characters.
pub(crate) fn client_token(stack: &str, spec: &VmSpec, instance_type: &str) -> String {
    let mut fws = spec.firewall_ids.clone();
    fws.sort();
    let path = spec.tags.get(TAG_PATH).map(String::as_str).unwrap_or_default();
    let public = if spec.assign_public_ip { "public" } else { "private" };
    let d = digest(&[
        stack,
        path,
        &spec.name,
        &spec.region,
        &spec.subnet_id,
        &spec.image,
        instance_type,
        &fws.join(","),
        public,
    ]);
    format!("ks-{d}")
}

/// The MIME type cloud-init gives a user-data part, by its first line.
fn part_type(user_data: &str) -> &'static str {
    if user_data.starts_with("#cloud-config") {
        "text/cloud-config"
    } else if user_data.starts_with("#cloud-boothook") {
        "text/cloud-boothook"
    } else if user_data.starts_with("#include") {
        "text/x-include-url"
    } else if user_data.starts_with("#!") {
        "text/x-shellscript"
    } else {
        "text/plain"
    }
}

/// The user data of an instance: the stack's own, plus (when there are SSH keys or environment
/// variables) a cloud-config part installing the keys and writing the environment file, joined
/// as MIME multipart. Deterministic. The result holds secret values: never log it.
pub(crate) fn render_user_data(spec: &VmSpec) -> ProviderResult<Option<String>> {
    let mut own = String::new();
    if !spec.ssh_keys.is_empty() || !spec.env.is_empty() {
        // Our part appends to lists and never replaces keys of the stack's own cloud-config.
        own.push_str("#cloud-config\nmerge_how:\n  - name: list\n    settings: [append]\n  - name: dict\n    settings: [no_replace, recurse_list]\n");
        if !spec.ssh_keys.is_empty() {
            own.push_str("ssh_authorized_keys:\n");
            for k in &spec.ssh_keys {
                let k = k.trim();
                if k.contains('\n') {
                    return Err(invalid(format!(
                        "VM `{}`: an SSH key spans several lines; give one key per entry",
                        spec.name
                    )));
                }
                // A JSON string is a valid YAML double-quoted scalar.
                let quoted =
                    serde_json::to_string(k).map_err(|e| invalid(format!("VM `{}`: SSH key: {e}", spec.name)))?;
                own.push_str(&format!("  - {quoted}\n"));
            }
        }
        if !spec.env.is_empty() {
            let mut file = String::new();
            for (k, v) in &spec.env {
                let value = v.expose();
                if value.contains('\n') || value.contains('\r') || value.contains('\0') {
                    return Err(invalid(format!(
                        "VM `{}`: the value of environment variable `{k}` contains a line break; env files hold one line per variable",
                        spec.name
                    )));
                }
                file.push_str(&format!("{k}={value}\n"));
            }
            let b64 = aws_smithy_types::base64::encode(file.as_bytes());
            own.push_str(&format!(
                "write_files:\n  - path: {ENV_FILE}\n    owner: root:root\n    permissions: '0600'\n    encoding: b64\n    content: {b64}\n"
            ));
        }
    }
    let user = spec.user_data.as_deref().filter(|u| !u.is_empty());
    let out = match (user, own.is_empty()) {
        (None, true) => return Ok(None),
        (Some(u), true) => u.to_string(),
        (None, false) => own,
        (Some(u), false) => {
            if u.trim_start().to_ascii_lowercase().starts_with("content-type:") {
                return Err(invalid(format!(
                    "VM `{}`: MIME user data cannot be combined with SSH keys or environment variables; add them to your MIME document instead",
                    spec.name
                )));
            }
            let boundary =
                if u.contains(BOUNDARY) { format!("{BOUNDARY}{}", digest(&[u])) } else { BOUNDARY.to_string() };
            let mut m = format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n");
            for (ty, body) in [("text/cloud-config", own.as_str()), (part_type(u), u)] {
                m.push_str(&format!(
                    "--{boundary}\nContent-Type: {ty}; charset=\"utf-8\"\nMIME-Version: 1.0\n\n{body}"
                ));
                if !body.ends_with('\n') {
                    m.push('\n');
                }
            }
            m.push_str(&format!("--{boundary}--\n"));
            m
        }
    };
    if out.len() > MAX_USER_DATA {
        return Err(invalid(format!(
            "VM `{}`: user data with keys and environment is {} bytes; EC2 accepts at most {MAX_USER_DATA}",
            spec.name,
            out.len()
        )));
    }
    Ok(Some(out))
}

impl AwsProvider {
    fn native_size(&self, what: &str, size: &str) -> ProviderResult<String> {
        self.catalog.vm_size(size).map(|o| o.native.clone()).ok_or_else(|| {
            let offered: Vec<&str> = self.catalog.vm_sizes.iter().map(|o| o.slug.as_str()).collect();
            invalid(format!("{what}: VM size `{size}` is not offered; use one of: {}", offered.join(", ")))
        })
    }

    /// The AMI behind an image slug in this region.
    async fn resolve_image(&self, what: &str, image: &str) -> ProviderResult<String> {
        if let Some(ami) = self.settings.images.get(image) {
            return Ok(ami.clone());
        }
        if image.starts_with("ami-") {
            return Ok(image.to_string());
        }
        if let Some(ami) = self.amis.lock().unwrap_or_else(|p| p.into_inner()).get(image) {
            return Ok(ami.clone());
        }
        let lookup = self.settings.lookups.get(image).ok_or_else(|| {
            invalid(format!(
                "{what}: image `{image}` has no AMI lookup; use an `ami-` id or pin one (`--image {image}=ami-...`, \
                 KONSTACKS_AWS_IMAGES or `.image(..)`)"
            ))
        })?;
        let out = self
            .ec2
            .describe_images()
            .owners(&lookup.owner)
            .filters(ec2_filter("name", [lookup.name_pattern.as_str()]))
            .filters(ec2_filter("state", ["available"]))
            .filters(ec2_filter("architecture", ["x86_64"]))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeImages", &format!("{what}: looking up image `{image}`"), e))?;
        let newest = out
            .images()
            .iter()
            .filter_map(|i| Some((i.creation_date().unwrap_or_default(), i.image_id()?)))
            .max()
            .map(|(_, id)| id.to_string())
            .ok_or_else(|| {
                invalid(format!(
                    "{what}: no AMI of owner {} matches `{}` in `{}`; pin one of your account's AMIs with \
                     `--image {image}=ami-...` (or KONSTACKS_AWS_IMAGES, or `.image(\"{image}\", \"ami-...\")` in code)",
                    lookup.owner, lookup.name_pattern, self.region
                ))
            })?;
        self.amis.lock().unwrap_or_else(|p| p.into_inner()).insert(image.to_string(), newest.clone());
        Ok(newest)
    }

    async fn describe_instances(&self, filters: Vec<Filter>) -> ProviderResult<Vec<Instance>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .ec2
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .max_results(1000)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeInstances", "reading instances", e))?;
            out.extend(page.reservations().iter().flat_map(|r| r.instances().iter().cloned()));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// One instance in any state, or `None`.
    async fn instance(&self, id: &str) -> ProviderResult<Option<Instance>> {
        Ok(self.describe_instances(vec![ec2_filter("instance-id", [id])]).await?.into_iter().next())
    }

    fn vm_observed(&self, i: &Instance) -> VmObserved {
        let tags = ec2_tag_map(i.tags());
        let state = state_of(i);
        let native = i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default();
        // Report the size as the stack spelled it while it still denotes the actual type.
        let size = match tags.get(TAG_SIZE) {
            Some(req) if self.catalog.vm_size(req).is_some_and(|o| o.native == native) => req.clone(),
            _ => self.catalog.vm_size(&native).map(|o| o.slug.clone()).unwrap_or(native),
        };
        let public_ip = i.public_ip_address().unwrap_or_default().to_string();
        let assign_public_ip = !public_ip.is_empty()
            || (state != "running" && tags.get(TAG_PUBLIC_IP).map(String::as_str) == Some("true"));
        // The groups of the instance are those of its primary interface (some APIs fill only one list).
        let mut firewall_ids: Vec<String> = i
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id())
            .chain(
                i.network_interfaces()
                    .iter()
                    .filter(|n| n.attachment().and_then(|a| a.device_index()).unwrap_or(0) == 0)
                    .flat_map(|n| n.groups().iter().filter_map(|g| g.group_id())),
            )
            .map(str::to_string)
            .collect();
        firewall_ids.sort();
        firewall_ids.dedup();
        VmObserved {
            id: i.instance_id().unwrap_or_default().to_string(),
            name: name_of(&tags),
            region: self.region.clone(),
            image: tags.get(TAG_IMAGE).cloned().unwrap_or_else(|| i.image_id().unwrap_or_default().to_string()),
            size,
            subnet_id: i.subnet_id().unwrap_or_default().to_string(),
            firewall_ids,
            assign_public_ip,
            public_ip,
            private_ip: i.private_ip_address().unwrap_or_default().to_string(),
            status: state,
            tags: visible_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        }
    }

    /// Wait until the instance is in `target`; a state from which it cannot get there fails.
    async fn wait_instance(&self, cx: &OpContext, id: &str, target: &'static str) -> ProviderResult<Instance> {
        let t = self.settings.timeouts;
        let limit = if target == "running" { t.vm_running } else { t.vm_stopped };
        let what = format!("instance `{id}` becoming {target}");
        wait_for(cx, &what, limit, t.max_poll, || async {
            let Some(i) = self.instance(id).await? else {
                if target == "terminated" {
                    return Ok(Polled::Ready(Instance::builder().instance_id(id).build()));
                }
                return Ok(Polled::Pending("not visible yet".into()));
            };
            let state = state_of(&i);
            if state == target {
                return Ok(Polled::Ready(i));
            }
            let hopeless = match target {
                "running" => matches!(state.as_str(), "terminated" | "shutting-down" | "stopped"),
                "stopped" => matches!(state.as_str(), "terminated" | "shutting-down"),
                _ => false,
            };
            if hopeless {
                let reason = i.state_reason().and_then(|r| r.message()).unwrap_or("no reason given");
                return Err(ProviderError::new(
                    ErrorKind::Other,
                    format!("instance `{id}` went `{state}` while waiting for `{target}`: {reason}"),
                ));
            }
            Ok(Polled::Pending(state))
        })
        .await
    }

    async fn run_instance(
        &self,
        spec: &VmSpec,
        token: &str,
        ami: &str,
        instance_type: &str,
        user_data: Option<&str>,
    ) -> ProviderResult<Instance> {
        let what = format!("launching VM `{}`", spec.name);
        let mut instance_tags = vec![(super::TAG_IMAGE, spec.image.as_str()), (super::TAG_SIZE, spec.size.as_str())];
        instance_tags.push((super::TAG_PUBLIC_IP, if spec.assign_public_ip { "true" } else { "false" }));
        let nic = InstanceNetworkInterfaceSpecification::builder()
            .device_index(0)
            .subnet_id(&spec.subnet_id)
            .set_groups(Some(spec.firewall_ids.clone()))
            .associate_public_ip_address(spec.assign_public_ip)
            .delete_on_termination(true)
            .build();
        let out = self
            .ec2
            .run_instances()
            .image_id(ami)
            .instance_type(InstanceType::from(instance_type))
            .min_count(1)
            .max_count(1)
            .client_token(token)
            .set_user_data(user_data.map(|u| aws_smithy_types::base64::encode(u.as_bytes())))
            .set_key_name(self.settings.key_name.clone())
            .network_interfaces(nic)
            .metadata_options(InstanceMetadataOptionsRequest::builder().http_tokens(HttpTokensState::Required).build())
            .tag_specifications(ec2_tag_spec(ResourceType::Instance, &spec.tags, &instance_tags))
            .tag_specifications(ec2_tag_spec(ResourceType::Volume, &spec.tags, &[]))
            .send()
            .await
            .map_err(|e| sdk_error("RunInstances", &what, e))?;
        out.instances().first().cloned().ok_or_else(|| missing("the launched instance"))
    }
}

#[async_trait::async_trait]
impl Api<Vm> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &VmSpec) -> ProviderResult<VmObserved> {
        let what = format!("VM `{}`", spec.name);
        self.check_region(&what, &spec.region)?;
        self.check_name("VM", &spec.name)?;
        check_tags(&what, &spec.tags, 3)?;
        let instance_type = self.native_size(&what, &spec.size)?;
        if self.catalog.image(&spec.image).is_none() && !spec.image.starts_with("ami-") {
            let offered: Vec<&str> = self.catalog.images.iter().map(|o| o.slug.as_str()).collect();
            return Err(invalid(format!(
                "{what}: image `{}` is not offered; use one of: {}",
                spec.image,
                offered.join(", ")
            )));
        }
        let user_data = render_user_data(spec)?;
        let ami = self.resolve_image(&what, &spec.image).await?;
        let stack = spec.tags.get(TAG_STACK).cloned().unwrap_or_else(|| cx.stack.clone());
        let token = client_token(&stack, spec, &instance_type);
        let mut launched = self.run_instance(spec, &token, &ami, &instance_type, user_data.as_deref()).await?;
        if matches!(state_of(&launched).as_str(), "terminated" | "shutting-down") {
            // The token was used by an earlier instance that is gone now (AWS remembers tokens
            // after termination): launch with a token derived from that one, still deterministic.
            let old = launched.instance_id().unwrap_or_default().to_string();
            let token = format!("ks-{}", digest(&[&token, &old]));
            launched = self.run_instance(spec, &token, &ami, &instance_type, user_data.as_deref()).await?;
        }
        let id = launched.instance_id().ok_or_else(|| missing("an instance id"))?.to_string();
        let running = self.wait_instance(cx, &id, "running").await?;
        Ok(self.vm_observed(&running))
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<VmObserved>> {
        let live = ec2_filter("instance-state-name", LIVE_STATES);
        let instances = match sel {
            Selector::Ids(ids) => {
                read_chunks(id_chunks(ids), |chunk| {
                    self.describe_instances(vec![ec2_filter("instance-id", chunk), live.clone()])
                })
                .await?
            }
            Selector::Stack(stack) => self.describe_instances(vec![stack_filter(stack), live]).await?,
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        };
        let mut out: Vec<VmObserved> = instances
            .iter()
            .filter(|i| LIVE_STATES.contains(&state_of(i).as_str()))
            .map(|i| self.vm_observed(i))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &VmSpec) -> ProviderResult<VmObserved> {
        let what = format!("VM `{id}`");
        self.check_region(&what, &spec.region)?;
        self.check_name("VM", &spec.name)?;
        check_tags(&what, &spec.tags, 3)?;
        let instance_type = self.native_size(&what, &spec.size)?;
        let current = self
            .instance(id)
            .await?
            .filter(|i| LIVE_STATES.contains(&state_of(i).as_str()))
            .ok_or_else(|| ProviderError::not_found(format!("{what} does not exist in `{}`", self.region)))?;
        let seen = self.vm_observed(&current);
        for (field, same) in [
            ("subnet_id", seen.subnet_id == spec.subnet_id),
            ("image", seen.image == spec.image),
            ("assign_public_ip", seen.assign_public_ip == spec.assign_public_ip || state_of(&current) != "running"),
        ] {
            if !same {
                return Err(invalid(format!("{what}: `{field}` cannot change in place; replace the VM")));
            }
        }
        let patience = self.settings.timeouts.follow_up;
        let current_type = current.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default();
        if current_type != instance_type {
            // EC2 changes the type of a stopped instance only: stop, modify, start again.
            let was_running = matches!(state_of(&current).as_str(), "running" | "pending");
            if state_of(&current) != "stopped" {
                self.ec2
                    .stop_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .map_err(|e| sdk_error("StopInstances", &format!("stopping {what} to resize it"), e))?;
                self.wait_instance(cx, id, "stopped").await?;
            }
            let modified = follow_up(cx, patience, || async {
                self.ec2
                    .modify_instance_attribute()
                    .instance_id(id)
                    .instance_type(AttributeValue::builder().value(&instance_type).build())
                    .send()
                    .await
                    .map_err(|e| {
                        sdk_error("ModifyInstanceAttribute", &format!("resizing {what} to {instance_type}"), e)
                    })
            })
            .await;
            if was_running {
                let started = follow_up(cx, patience, || async {
                    self.ec2
                        .start_instances()
                        .instance_ids(id)
                        .send()
                        .await
                        .map_err(|e| sdk_error("StartInstances", &format!("starting {what} again"), e))
                })
                .await;
                modified?;
                started?;
                self.wait_instance(cx, id, "running").await?;
            } else {
                modified?;
            }
        }
        let mut want_fws = spec.firewall_ids.clone();
        want_fws.sort();
        if want_fws != seen.firewall_ids {
            follow_up(cx, patience, || async {
                self.ec2
                    .modify_instance_attribute()
                    .instance_id(id)
                    .set_groups(Some(want_fws.clone()))
                    .send()
                    .await
                    .map_err(|e| {
                        sdk_error("ModifyInstanceAttribute", &format!("changing the security groups of {what}"), e)
                    })
            })
            .await?;
        }
        let mut desired: BTreeMap<String, String> = spec.tags.clone();
        desired.insert(TAG_SIZE.into(), spec.size.clone());
        desired.insert(TAG_IMAGE.into(), spec.image.clone());
        desired.insert(TAG_PUBLIC_IP.into(), spec.assign_public_ip.to_string());
        sync_ec2_tags(&self.ec2, "instance", id, &ec2_tag_map(current.tags()), &desired).await?;
        let now = follow_up(cx, patience, || async {
            self.instance(id).await?.ok_or_else(|| ProviderError::not_found(format!("{what} vanished")))
        })
        .await?;
        let mut obs = self.vm_observed(&now);
        // Tags written a moment ago may not show in the read yet.
        obs.tags = spec.tags.clone();
        obs.name = spec.name.clone();
        obs.size = spec.size.clone();
        Ok(obs)
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        // AWS terminates a load balancer target without asking; the contract is to refuse.
        if let Some(vpc) = self.instance(id).await?.as_ref().and_then(|i| i.vpc_id()) {
            if let Some(group) = self.target_group_holding(vpc, id).await? {
                return Err(ProviderError::new(
                    ErrorKind::Conflict,
                    format!("VM `{id}` is a target of load balancer target group `{group}`; remove it from the load balancer first"),
                ));
            }
        }
        self.ec2
            .terminate_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| sdk_error("TerminateInstances", &format!("terminating VM `{id}`"), e))?;
        // Its security groups and subnet can go only once it is gone.
        self.wait_instance(cx, id, "terminated").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use konstacks_core::secret::Secret;
    use konstacks_core::spec::Tags;

    fn spec() -> VmSpec {
        VmSpec {
            name: "s-app-web-1".into(),
            region: "eu-central-1".into(),
            image: "ubuntu-lts".into(),
            size: "small".into(),
            subnet_id: "subnet-1".into(),
            firewall_ids: vec!["sg-2".into(), "sg-1".into()],
            user_data: None,
            env: BTreeMap::new(),
            ssh_keys: Vec::new(),
            assign_public_ip: true,
            app: None,
            tags: Tags::from([(TAG_PATH.to_string(), "app/web-1".to_string())]),
        }
    }

    #[test]
    fn tokens_are_stable_short_and_specific() {
        let a = client_token("s", &spec(), "t3.small");
        assert_eq!(a, client_token("s", &spec(), "t3.small"));
        assert!(a.len() <= 64 && a.starts_with("ks-"));
        let mut other = spec();
        other.firewall_ids.reverse();
        assert_eq!(a, client_token("s", &other, "t3.small"), "firewall order does not matter");
        other.name = "s-app-web-1-1".into();
        assert_ne!(a, client_token("s", &other, "t3.small"), "a replacement gets a new token");
        assert_ne!(a, client_token("t", &spec(), "t3.small"));
    }

    #[test]
    fn user_data_is_absent_plain_or_multipart() {
        assert_eq!(render_user_data(&spec()).ok().flatten(), None);
        let mut s = spec();
        s.user_data = Some("#!/bin/sh\necho hi\n".into());
        assert_eq!(render_user_data(&s).ok().flatten().as_deref(), Some("#!/bin/sh\necho hi\n"));
        s.env.insert("DATABASE_PASSWORD".into(), Secret::new("s3cret".into()));
        s.ssh_keys.push("ssh-ed25519 AAAA user@host".into());
        let out = render_user_data(&s).ok().flatten().unwrap_or_default();
        assert!(out.starts_with("Content-Type: multipart/mixed"));
        assert!(out.contains("text/x-shellscript"));
        assert!(out.contains("ssh_authorized_keys:\n  - \"ssh-ed25519 AAAA user@host\""));
        assert!(out.contains(ENV_FILE));
        // The secret travels base64-encoded inside the env file, never in clear text.
        assert!(!out.contains("s3cret"));
        let b64 = aws_smithy_types::base64::encode("DATABASE_PASSWORD=s3cret\n");
        assert!(out.contains(&b64));
        assert_eq!(render_user_data(&s).ok(), Some(Some(out)), "deterministic");
    }

    #[test]
    fn bad_env_values_are_refused_without_echoing_them() {
        let mut s = spec();
        s.env.insert("TOKEN".into(), Secret::new("line1\nline2".into()));
        let e = render_user_data(&s).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("TOKEN") && !e.contains("line1"));
    }
}
