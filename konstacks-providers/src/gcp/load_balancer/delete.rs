//! Taking the pieces of a load balancer down, in reverse order of use.

use konstacks_core::clock::OpContext;
use konstacks_core::kinds::LoadBalancerSpec;
use konstacks_core::provider::ProviderResult;

use super::super::Gcp;
use super::groups::{by_zone, zone_of};
use super::{found, payload_of, Names, Recorded};

impl Gcp {
    /// Delete every piece `old` records, in reverse order, then the address.
    pub(super) async fn teardown(&self, cx: &OpContext, name: &str, old: &Recorded) -> ProviderResult<()> {
        let n = Names::new(name);
        for p in &old.ports {
            self.drop_piece(cx, "forwardingRules", &n.rule(*p)).await?;
        }
        for p in &old.https_ports {
            self.drop_piece(cx, "targetHttpsProxies", &n.https(*p)).await?;
        }
        if old.plain {
            self.drop_piece(cx, "targetHttpProxies", &n.http()).await?;
        }
        if old.redirect {
            self.drop_piece(cx, "targetHttpProxies", &n.redirect()).await?;
        }
        self.drop_piece(cx, "urlMaps", &n.main()).await?;
        if old.redirect {
            self.drop_piece(cx, "urlMaps", &n.redirect()).await?;
        }
        if !old.https_ports.is_empty() {
            self.drop_piece(cx, "sslPolicies", &n.main()).await?;
        }
        for g in &old.groups {
            self.drop_group(cx, &n, g).await?;
        }
        self.release_address(cx, &n).await
    }

    /// Take down every piece `spec` names after its create failed part way (a failed create
    /// creates nothing), the instance groups in the zones of its VMs included.
    pub(super) async fn undo_create(&self, cx: &OpContext, spec: &LoadBalancerSpec) -> ProviderResult<()> {
        self.teardown(cx, &spec.name, &Recorded::of(payload_of(spec)?)).await?;
        let n = Names::new(&spec.name);
        for g in &spec.target_groups {
            for zone in by_zone(&g.vm_ids)?.keys() {
                self.drop_instance_group(cx, zone, &n.group(&g.name)).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn release_address(&self, cx: &OpContext, n: &Names) -> ProviderResult<()> {
        self.drop_piece(cx, "addresses", &n.main()).await
    }

    /// Delete one global piece (gone already is fine).
    pub(super) async fn drop_piece(&self, cx: &OpContext, coll: &str, name: &str) -> ProviderResult<()> {
        let what = format!("deleting {coll} `{name}`");
        let p = &self.project;
        let sent = match coll {
            "forwardingRules" => self.forwarding_rules.delete().set_project(p).set_forwarding_rule(name).send().await,
            "targetHttpsProxies" => {
                self.https_proxies.delete().set_project(p).set_target_https_proxy(name).send().await
            }
            "targetHttpProxies" => self.http_proxies.delete().set_project(p).set_target_http_proxy(name).send().await,
            "urlMaps" => self.url_maps.delete().set_project(p).set_url_map(name).send().await,
            "sslPolicies" => self.ssl_policies.delete().set_project(p).set_ssl_policy(name).send().await,
            "backendServices" => self.backend_services.delete().set_project(p).set_backend_service(name).send().await,
            "healthChecks" => self.health_checks.delete().set_project(p).set_health_check(name).send().await,
            _ => self.addresses.delete().set_project(p).set_address(name).send().await,
        };
        self.run_delete(cx, &what, sent).await
    }

    /// Delete the backend service, health check and instance groups of group `g`.
    pub(super) async fn drop_group(&self, cx: &OpContext, n: &Names, g: &str) -> ProviderResult<()> {
        let name = n.group(g);
        let r = self.backend_services.get().set_project(&self.project).set_backend_service(&name).send().await;
        let zones: Vec<String> = found(format!("reading backend service `{name}`"), r)?
            .map(|b| b.backends.iter().filter_map(|b| b.group.as_deref().and_then(zone_of)).collect())
            .unwrap_or_default();
        self.drop_piece(cx, "backendServices", &name).await?;
        self.drop_piece(cx, "healthChecks", &name).await?;
        for z in zones {
            self.drop_instance_group(cx, &z, &name).await?;
        }
        Ok(())
    }

    pub(super) async fn drop_instance_group(&self, cx: &OpContext, zone: &str, name: &str) -> ProviderResult<()> {
        let sent = self
            .instance_groups
            .delete()
            .set_project(&self.project)
            .set_zone(zone)
            .set_instance_group(name)
            .send()
            .await;
        self.run_delete(cx, &format!("deleting instance group `{name}` in `{zone}`"), sent).await
    }
}
