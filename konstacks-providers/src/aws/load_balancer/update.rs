//! The in-place update of a load balancer: tags, security groups and subnets, then target
//! groups (made, changed, re-targeted), listeners, certificates and rules, and last the groups
//! nothing uses any more.

use std::collections::{BTreeMap, BTreeSet};

use konstacks_core::clock::OpContext;
use konstacks_core::provider::ProviderResult;
use konstacks_core::spec::{ListenerProtocol, LoadBalancerSpec};

use aws_sdk_elasticloadbalancingv2::types::{Certificate, ProtocolEnum};

use super::parts::{elb_tag, policy_of, release_word, tls_word, TAG_GB, TAG_RELEASE, TAG_TLS};
use super::read::observed;
use super::{listener_protocol, not_found};
use crate::aws::error::sdk_error;
use crate::aws::{follow_up, AwsProvider, INTERNAL_TAG_PREFIX};

impl AwsProvider {
    pub(super) async fn update_lb(&self, cx: &OpContext, id: &str, spec: &LoadBalancerSpec) -> ProviderResult<()> {
        let what = format!("load balancer `{id}`");
        let raw = self.raw(id).await?.ok_or_else(|| not_found(id))?;
        let elb = &self.serving.elb;
        let patience = self.settings.timeouts.follow_up;
        let seen = observed(&raw, &self.region, None);
        // Tags, security groups, subnets.
        let mut desired: BTreeMap<String, String> = spec.tags.clone();
        desired.insert(TAG_TLS.into(), tls_word(spec.tls_policy).into());
        desired.insert(TAG_GB.into(), spec.assumed_gb_processed_per_month.to_string());
        self.sync_elb_tags(cx, &what, id, &raw.tags, &desired).await?;
        let mut want_fw = spec.firewall_ids.clone();
        want_fw.sort();
        if want_fw != seen.firewall_ids {
            follow_up(cx, patience, || async {
                elb.set_security_groups()
                    .load_balancer_arn(id)
                    .set_security_groups(Some(want_fw.clone()))
                    .send()
                    .await
                    .map_err(|e| sdk_error("SetSecurityGroups", &format!("{what}: changing security groups"), e))
            })
            .await?;
        }
        let mut want_sn = spec.subnet_ids.clone();
        want_sn.sort();
        if want_sn != seen.subnet_ids {
            follow_up(cx, patience, || async {
                elb.set_subnets()
                    .load_balancer_arn(id)
                    .set_subnets(Some(want_sn.clone()))
                    .send()
                    .await
                    .map_err(|e| sdk_error("SetSubnets", &format!("{what}: changing subnets"), e))
            })
            .await?;
        }
        // Target groups: a group is kept when its name and port match; others are made anew.
        let vpc_id = self.vpc_of(&what, &spec.subnet_ids).await?;
        let mut arns: BTreeMap<String, String> = BTreeMap::new();
        for g in &spec.target_groups {
            let have = raw.groups.iter().find(|x| x.name == g.name && x.tg.port() == Some(i32::from(g.port)));
            let Some(have) = have else {
                arns.insert(g.name.clone(), self.create_group(cx, spec, &vpc_id, g).await?);
                continue;
            };
            let arn = have.arn().to_string();
            let gwhat = format!("{what}: target group `{}`", g.name);
            let seen_g = seen.target_groups.iter().find(|x| x.name == g.name);
            if seen_g.map(|x| &x.health_check) != Some(&g.health_check) {
                self.set_health(cx, &gwhat, &arn, &g.health_check).await?;
            }
            if have.drain_s != g.deregistration_delay_s {
                self.set_drain(cx, &gwhat, &arn, g.deregistration_delay_s).await?;
            }
            let mut group_tags = have.tags.clone();
            group_tags.retain(|k, _| k.starts_with(INTERNAL_TAG_PREFIX));
            group_tags.extend(spec.tags.clone());
            group_tags.insert(TAG_RELEASE.into(), release_word(&g.release));
            self.sync_elb_tags(cx, &gwhat, &arn, &have.tags, &group_tags).await?;
            let members = have.members();
            let add: Vec<String> = g.vm_ids.iter().filter(|v| !members.contains(v)).cloned().collect();
            let remove: Vec<String> = members.iter().filter(|v| !g.vm_ids.contains(v)).cloned().collect();
            self.register(cx, &gwhat, &arn, &add).await?;
            self.deregister(cx, &gwhat, &arn, &remove).await?;
            arns.insert(g.name.clone(), arn);
        }
        // Listeners by port.
        let wanted_ports: BTreeSet<u16> = spec.listeners.iter().map(|l| l.port).collect();
        for l in raw
            .listeners
            .iter()
            .filter(|l| !l.l.port().and_then(|p| u16::try_from(p).ok()).is_some_and(|p| wanted_ports.contains(&p)))
        {
            follow_up(cx, patience, || async {
                elb.delete_listener()
                    .listener_arn(l.arn())
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteListener", &format!("{what}: deleting a listener"), e))
            })
            .await?;
        }
        for l in &spec.listeners {
            let Some(have) = raw.listeners.iter().find(|x| x.l.port() == Some(i32::from(l.port))) else {
                self.create_listener(cx, spec, id, l, &arns).await?;
                continue;
            };
            let lwhat = format!("{what}: listener on port {}", l.port);
            let https = l.protocol == ListenerProtocol::Https;
            let action = self.default_action(&lwhat, spec, l, &arns)?;
            let same = have.l.protocol() == Some(&listener_protocol(l))
                && have.l.default_actions().first().map(|a| (a.r#type(), a.target_group_arn(), a.redirect_config()))
                    == Some((action.r#type(), action.target_group_arn(), action.redirect_config()))
                && (!https
                    || (have.l.ssl_policy() == Some(policy_of(spec))
                        && have.certs.first() == l.certificate_ids.first()));
            if !same {
                let default_cert = l.certificate_ids.first().filter(|_| https);
                follow_up(cx, patience, || async {
                    elb.modify_listener()
                        .listener_arn(have.arn())
                        .protocol(listener_protocol(l))
                        .port(i32::from(l.port))
                        .set_ssl_policy(https.then(|| policy_of(spec).to_string()))
                        .set_certificates(default_cert.map(|c| vec![Certificate::builder().certificate_arn(c).build()]))
                        .default_actions(action.clone())
                        .send()
                        .await
                        .map_err(|e| sdk_error("ModifyListener", &format!("changing {lwhat}"), e))
                })
                .await?;
            }
            let have_certs = if have.l.protocol() == Some(&ProtocolEnum::Https) { &have.certs[..] } else { &[] };
            let want_certs = if https { &l.certificate_ids[..] } else { &[] };
            self.sync_certs(cx, &lwhat, have.arn(), have_certs, want_certs).await?;
            self.sync_rules(cx, spec, have.arn(), &have.rules, &arns, l).await?;
        }
        // Groups no rule uses any more.
        let kept: BTreeSet<&String> = arns.values().collect();
        for g in raw.groups.iter().filter(|g| !kept.contains(&g.arn().to_string())) {
            self.delete_group(cx, &spec.name, g.arn()).await?;
        }
        Ok(())
    }

    async fn sync_elb_tags(
        &self,
        cx: &OpContext,
        what: &str,
        arn: &str,
        current: &BTreeMap<String, String>,
        desired: &BTreeMap<String, String>,
    ) -> ProviderResult<()> {
        let set: Vec<_> =
            desired.iter().filter(|(k, v)| current.get(*k) != Some(*v)).map(|(k, v)| elb_tag(k, v)).collect();
        let remove: Vec<String> = current
            .keys()
            .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:") && !k.starts_with(INTERNAL_TAG_PREFIX))
            .cloned()
            .collect();
        let patience = self.settings.timeouts.follow_up;
        if !set.is_empty() {
            follow_up(cx, patience, || async {
                self.serving
                    .elb
                    .add_tags()
                    .resource_arns(arn)
                    .set_tags(Some(set.clone()))
                    .send()
                    .await
                    .map_err(|e| sdk_error("AddTags", &format!("{what}: tagging"), e))
            })
            .await?;
        }
        if !remove.is_empty() {
            follow_up(cx, patience, || async {
                self.serving
                    .elb
                    .remove_tags()
                    .resource_arns(arn)
                    .set_tag_keys(Some(remove.clone()))
                    .send()
                    .await
                    .map_err(|e| sdk_error("RemoveTags", &format!("{what}: removing tags"), e))
            })
            .await?;
        }
        Ok(())
    }
}
