//! Managed clusters, shared by the database kind (Postgres, MySQL) and the cache kind (Redis,
//! Valkey): DigitalOcean serves both from `/v2/databases`. What they share lives here: reading
//! a cluster, its trusted sources (the attached Konstacks firewalls), the subnets it lives in,
//! waiting for it to come online, listing a stack's clusters, resizing and deleting.

use std::collections::BTreeSet;

use konstacks_core::clock::OpContext;
use konstacks_core::error::ProviderError;
use konstacks_core::provider::ProviderResult;
use konstacks_core::secret::Secret;
use konstacks_core::spec::{Selector, Tags, TAG_STACK};
use reqwest::Method;

use super::labels;
use super::network::trusted_sources;
use super::types::{
    DatabaseCluster, DatabaseEnvelope, DatabaseFirewall, DatabaseList, DatabaseResize, DbConnection, DbFirewallRule,
};
use super::{invalid, stack_of, ApiError, DigitalOcean};

/// Where a new cluster goes: its VPC and its tags (the resource's labels plus one per subnet).
pub(crate) struct Placement {
    /// The VPC of the subnets.
    pub(crate) vpc: String,
    /// The tags to create the cluster with, sorted.
    pub(crate) tags: Vec<String>,
}

/// The subnets of a cluster, from its subnet tags, sorted.
pub(crate) fn subnet_ids_of(c: &DatabaseCluster) -> Vec<String> {
    let mut ids: Vec<String> =
        c.tags.iter().filter_map(|t| labels::subnet_of(t)).map(|(vpc, cidr)| labels::subnet_id(&vpc, &cidr)).collect();
    ids.sort();
    ids
}

/// The Konstacks firewalls a cluster's trusted sources come from, sorted.
pub(crate) fn firewall_ids_of(rules: &[DbFirewallRule]) -> Vec<String> {
    let ids: BTreeSet<String> = rules.iter().filter_map(|r| labels::firewall_of(&r.description)).collect();
    ids.into_iter().collect()
}

/// The host and port clients use: the private connection where there is one.
pub(crate) fn endpoint(c: &DatabaseCluster, default_port: u16) -> (String, String) {
    let private = c.private_connection.as_ref().filter(|p| !p.host.is_empty());
    let public = c.connection.as_ref();
    let host = private.or(public).map(|p| p.host.clone()).unwrap_or_default();
    let port = private.or(public).map(|p| p.port).filter(|p| *p != 0).unwrap_or(default_port);
    (host, port.to_string())
}

impl DigitalOcean {
    pub(crate) async fn get_cluster(&self, cx: &OpContext, id: &str) -> Result<DatabaseCluster, ApiError> {
        let d: DatabaseEnvelope = self.client.get(cx, &format!("/v2/databases/{id}"), &[]).await?;
        Ok(d.database)
    }

    /// The admin password DigitalOcean generated for the cluster `id`, from its connection
    /// details (the public ones, else the private ones). `None` when the answer has none: the
    /// engine then keeps the value it has, so a missing field never blanks a sealed secret.
    pub(crate) async fn cluster_password(
        &self,
        cx: &OpContext,
        what: &str,
        id: &str,
    ) -> ProviderResult<Option<Secret<String>>> {
        let c = self
            .get_cluster(cx, id)
            .await
            .map_err(|e| e.into_provider(format!("reading the password of {what} `{id}`")))?;
        let pick =
            |k: &Option<DbConnection>| k.as_ref().and_then(|k| k.password.clone()).filter(|p| !p.expose().is_empty());
        Ok(pick(&c.connection).or_else(|| pick(&c.private_connection)))
    }

    pub(crate) async fn cluster_rules(
        &self,
        cx: &OpContext,
        c: &DatabaseCluster,
    ) -> ProviderResult<Vec<DbFirewallRule>> {
        if let Some(r) = &c.rules {
            return Ok(r.clone());
        }
        let f: DatabaseFirewall = self
            .client
            .get(cx, &format!("/v2/databases/{}/firewall", c.id), &[])
            .await
            .map_err(|e| e.into_provider(format!("reading the trusted sources of database `{}`", c.id)))?;
        Ok(f.rules)
    }

    /// The trusted sources of the attached firewalls, each marked with the firewall it comes
    /// from.
    pub(crate) async fn database_rules(
        &self,
        cx: &OpContext,
        firewall_ids: &[String],
    ) -> ProviderResult<Vec<DbFirewallRule>> {
        let mut out = Vec::new();
        for id in firewall_ids {
            let f = self.referenced_firewall(cx, id).await?;
            for (kind, value) in trusted_sources(&f) {
                if kind == "tag" {
                    self.ensure_tag(cx, &value).await?;
                }
                out.push(DbFirewallRule { uuid: String::new(), kind, value, description: labels::firewall_tag(id) });
            }
        }
        Ok(out)
    }

    /// Set the trusted sources of a cluster to those of `firewall_ids`.
    pub(crate) async fn put_database_firewall(
        &self,
        cx: &OpContext,
        db: &str,
        firewall_ids: &[String],
    ) -> ProviderResult<()> {
        let rules = self.database_rules(cx, firewall_ids).await?;
        self.client
            .send_empty(cx, Method::PUT, &format!("/v2/databases/{db}/firewall"), Some(&DatabaseFirewall { rules }))
            .await
            .map_err(|e| e.into_provider(format!("setting the trusted sources of database `{db}`")))
    }

    pub(crate) async fn wait_online(&self, cx: &OpContext, id: &str) -> ProviderResult<DatabaseCluster> {
        self.wait_for(cx, &format!("database `{id}` becoming online"), self.waits.database_online, || async {
            let c = self.get_cluster(cx, id).await.map_err(|e| e.into_provider(format!("reading database `{id}`")))?;
            Ok((c.status == "online").then_some(c))
        })
        .await
    }

    /// Check a new cluster's subnets (one VPC, the cluster's region) and tag it with them.
    pub(crate) async fn cluster_placement(
        &self,
        cx: &OpContext,
        what: &str,
        name: &str,
        region: &str,
        subnet_ids: &[String],
        tags: &Tags,
    ) -> ProviderResult<Placement> {
        let Some(first) = subnet_ids.first() else {
            return Err(invalid(format!("{what} `{name}` needs at least one subnet")));
        };
        let (vpc, _) = labels::parse_subnet_id(first)
            .ok_or_else(|| ProviderError::not_found(format!("subnet `{first}` does not exist")))?;
        let mut out = labels::encode(tags, Some(name)).map_err(invalid)?;
        for id in subnet_ids {
            let s = self.read_subnet(cx, id).await?;
            if s.vpc_id != vpc {
                return Err(invalid(format!(
                    "{what} `{name}`: subnets `{first}` and `{id}` belong to different VPCs; use subnets of one VPC"
                )));
            }
            if s.region != region {
                return Err(ProviderError::not_found(format!("subnet `{id}` does not exist in region `{region}`")));
            }
            out.push(labels::subnet_tag(&s.vpc_id, &s.cidr));
        }
        out.sort();
        out.dedup();
        Ok(Placement { vpc, tags: out })
    }

    /// Refuse a change of a cluster's tags: DigitalOcean cannot retag a cluster.
    pub(crate) fn check_cluster_tags(
        &self,
        what: &str,
        c: &DatabaseCluster,
        tags: &Tags,
        name: &str,
    ) -> ProviderResult<()> {
        let want: BTreeSet<String> = labels::encode(tags, Some(name)).map_err(invalid)?.into_iter().collect();
        let have: BTreeSet<String> = c.tags.iter().filter(|t| labels::parse_label(t).is_some()).cloned().collect();
        if want != have {
            return Err(invalid(format!(
                "{what}: its tags cannot be changed in place: DigitalOcean's API describes no way to retag a database \
                 cluster (tag assignment accepts droplets, images and volumes only); replace the resource or keep the tags"
            )));
        }
        Ok(())
    }

    /// Bring a cluster's trusted sources to those of `firewall_ids` when they differ.
    pub(crate) async fn sync_cluster_firewall(
        &self,
        cx: &OpContext,
        c: &DatabaseCluster,
        firewall_ids: &[String],
    ) -> ProviderResult<()> {
        let mut want = firewall_ids.to_vec();
        want.sort();
        want.dedup();
        let rules_now = self.database_rules(cx, &want).await?;
        let rules_have = self.cluster_rules(cx, c).await?;
        let key = |r: &DbFirewallRule| (r.kind.clone(), r.value.clone(), r.description.clone());
        let a: BTreeSet<_> = rules_now.iter().map(key).collect();
        let b: BTreeSet<_> = rules_have.iter().map(key).collect();
        if a != b {
            self.put_database_firewall(cx, &c.id, &want).await?;
        }
        Ok(())
    }

    /// Resize a cluster and wait for it.
    pub(crate) async fn resize_cluster(
        &self,
        cx: &OpContext,
        what: &str,
        id: &str,
        body: &DatabaseResize,
    ) -> ProviderResult<()> {
        self.client
            .send_empty(cx, Method::PUT, &format!("/v2/databases/{id}/resize"), Some(body))
            .await
            .map_err(|e| e.into_provider(format!("resizing {what}")))?;
        self.wait_online(cx, id).await?;
        Ok(())
    }

    /// The clusters of a batched read: a stack's, by its tag, or the ones asked for by id;
    /// `keep` picks the engines of one kind.
    pub(crate) async fn read_clusters(
        &self,
        cx: &OpContext,
        sel: &Selector,
        keep: fn(&str) -> bool,
    ) -> ProviderResult<Vec<DatabaseCluster>> {
        let stack = match sel {
            Selector::Stack(s) => s.clone(),
            _ => cx.stack.clone(),
        };
        let query = if stack.is_empty() { Vec::new() } else { vec![("tag_name", labels::stack_tag(&stack))] };
        let list: DatabaseList = self
            .client
            .get(cx, "/v2/databases", &query)
            .await
            .map_err(|e| e.into_provider("listing database clusters"))?;
        let mut clusters = list.databases;
        match sel {
            Selector::Ids(ids) => {
                clusters.retain(|c| ids.contains(&c.id));
                let seen: BTreeSet<String> = clusters.iter().map(|c| c.id.clone()).collect();
                for id in ids.iter().filter(|i| !seen.contains(*i)) {
                    match self.get_cluster(cx, id).await {
                        Ok(c) => clusters.push(c),
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into_provider(format!("reading database `{id}`"))),
                    }
                }
            }
            _ => clusters.retain(|c| labels::decode(&c.tags, None).get(TAG_STACK) == Some(&stack)),
        }
        clusters.retain(|c| keep(&c.engine));
        clusters.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(clusters)
    }

    /// Delete a cluster and forget its project and tags when they are left empty.
    pub(crate) async fn delete_cluster(&self, cx: &OpContext, what: &str, id: &str) -> ProviderResult<()> {
        let c = self.get_cluster(cx, id).await.map_err(|e| e.into_provider(format!("reading {what} `{id}`")))?;
        self.client
            .send_empty::<()>(cx, Method::DELETE, &format!("/v2/databases/{id}"), None)
            .await
            .map_err(|e| e.into_provider(format!("deleting {what} `{id}`")))?;
        let tags = labels::decode(&c.tags, Some(&c.name));
        let emptied = self.forget_project_if_empty(cx, &stack_of(&tags, cx)).await;
        self.prune_tags(cx, &c.tags, emptied).await;
        Ok(())
    }
}
