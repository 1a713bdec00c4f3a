//! Load balancers on DigitalOcean (`/v2/load_balancers`).
//!
//! How the portable model maps onto DigitalOcean, and why:
//! - **One pool.** A DigitalOcean load balancer sends every request to one set of droplets with
//!   one health check; it has no host or path rules. The catalogue says so
//!   (`load_balancers_one_pool`), so synth refuses a second target group, rules and several
//!   certificates on one listener before any request.
//! - **Listeners** become forwarding rules to the group's port over HTTP: HTTPS listeners
//!   terminate TLS with their certificate (`certificate_id`); a TLS passthrough listener is an
//!   `https` → `https` rule with `tls_passthrough` and no certificate (the droplets terminate
//!   TLS); an HTTP listener redirected to HTTPS sets `redirect_http_to_https` (DigitalOcean
//!   redirects to its HTTPS rule).
//! - **Security policy**: `tls_cipher_policy` (`DEFAULT` or `STRONG`, both TLS 1.2 and up);
//!   DigitalOcean cannot refuse TLS 1.2, so a TLS 1.3 floor is refused before any request.
//! - **Where it lives**: the VPC of its subnets (subnets are logical on DigitalOcean) and the
//!   stack's project. `dns_name` is its IP address: DigitalOcean gives a load balancer an
//!   address, not a name. Creation waits on the operation's clock until it is `active` and has
//!   that address.
//! - **What DigitalOcean does not store** (its name in Konstacks, tags, subnets and firewalls as
//!   given, the group's name, drain time, expected status and release policy, the cost
//!   assumption) is kept in the load balancer's record tags (see `owned`), under hidden
//!   `konstacks:do-*` labels. DigitalOcean has no drain time; the one recorded is what releases
//!   wait before removing a droplet.
//! - **Firewalls**: a load balancer is not a droplet, so rules whose source is a firewall attached
//!   to it also name it (`load_balancer_uids`, see `admit_load_balancer`).
//! - **Health** of each droplet comes from the monitoring API's `droplets_health_checks`
//!   metric (1 healthy, 0 not); a droplet without a sample yet is `initial`.

use std::collections::BTreeSet;

use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds::load_balancer::url_of;
use konstacks_core::provider::{Api, ProviderResult, TargetHealth, TargetHealthState};
use konstacks_core::spec::{
    HealthCheckSpec, HealthProtocol, LbScheme, ListenerProtocol, ListenerSpec, LoadBalancer, LoadBalancerObserved,
    LoadBalancerSpec, Selector, Tags, TargetGroupSpec, TargetState, TlsPolicy, TAG_STACK,
};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::labels::{self, RecordKind};
use super::owned::{fields_of, owned, Owned};
use super::types::{Links, Paged};
use super::{immutable, invalid, DigitalOcean};

/// Hidden labels of what DigitalOcean does not store.
const POOL: &str = "konstacks:do-pool";
const SUBNETS: &str = "konstacks:do-subnets";
const FIREWALLS: &str = "konstacks:do-firewalls";
const GB: &str = "konstacks:do-gb";
const HIDDEN: [&str; 4] = [POOL, SUBNETS, FIREWALLS, GB];

/// DigitalOcean's default cipher policy.
const DEFAULT_CIPHERS: &str = "DEFAULT";

// ---- wire types (the spec's `load_balancer`) ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Rule {
    entry_protocol: String,
    entry_port: u16,
    target_protocol: String,
    target_port: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    certificate_id: String,
    #[serde(default)]
    tls_passthrough: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Health {
    protocol: String,
    port: u16,
    #[serde(default)]
    path: String,
    check_interval_seconds: u32,
    response_timeout_seconds: u32,
    unhealthy_threshold: u32,
    healthy_threshold: u32,
}

#[derive(Debug, Clone, Serialize)]
struct LbBody {
    name: String,
    region: String,
    vpc_uuid: String,
    network: &'static str,
    forwarding_rules: Vec<Rule>,
    health_check: Health,
    redirect_http_to_https: bool,
    droplet_ids: Vec<u64>,
    tls_cipher_policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct DoLb {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    region: Option<serde_json::Value>,
    #[serde(default)]
    vpc_uuid: String,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    forwarding_rules: Vec<Rule>,
    health_check: Option<Health>,
    #[serde(default)]
    redirect_http_to_https: bool,
    #[serde(default)]
    droplet_ids: Vec<u64>,
    #[serde(default)]
    tls_cipher_policy: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LbEnvelope {
    load_balancer: DoLb,
}

#[derive(Debug, Deserialize)]
struct LbList {
    #[serde(default)]
    load_balancers: Vec<DoLb>,
    #[serde(default)]
    links: Option<Links>,
}

impl Paged for LbList {
    type Item = DoLb;
    fn into_parts(self) -> (Vec<DoLb>, Option<Links>) {
        (self.load_balancers, self.links)
    }
}

#[derive(Debug, Serialize)]
struct DropletIds {
    droplet_ids: Vec<u64>,
}

#[derive(Debug, Deserialize)]
struct Metrics {
    data: MetricsData,
}

#[derive(Debug, Deserialize)]
struct MetricsData {
    #[serde(default)]
    result: Vec<Series>,
}

#[derive(Debug, Deserialize)]
struct Series {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

// ---- translation ----

fn droplet_ids(what: &str, ids: &[String]) -> ProviderResult<Vec<u64>> {
    ids.iter()
        .map(|id| id.parse::<u64>().map_err(|_| invalid(format!("{what}: `{id}` is not a DigitalOcean droplet id"))))
        .collect()
}

fn pool_word(g: &TargetGroupSpec) -> String {
    let r = &g.release;
    let status = g.health_check.expected_status.clone().unwrap_or_default();
    format!(
        "{}/{}/{status}/{}/{}/{}",
        g.name, g.deregistration_delay_s, r.max_surge, r.max_unavailable, r.healthy_within_s
    )
}

/// `(name, drain, expected status, release)` of a pool word.
fn pool_of(word: &str) -> Option<(String, u32, Option<String>, konstacks_core::kind::fronts::ReleasePolicy)> {
    let p: Vec<&str> = word.split('/').collect();
    let [name, drain, status, surge, unavailable, within] = p.as_slice() else { return None };
    let release = konstacks_core::kind::fronts::ReleasePolicy {
        max_surge: surge.parse().ok()?,
        max_unavailable: unavailable.parse().ok()?,
        healthy_within_s: within.parse().ok()?,
    };
    let status = (!status.is_empty()).then(|| status.to_string());
    Some((name.to_string(), drain.parse().ok()?, status, release))
}

/// The name of a load balancer's pool, from its record (`app` when it has none).
fn pool_name(w: &Owned) -> String {
    w.tags.get(POOL).and_then(|p| pool_of(p)).map_or_else(|| "app".into(), |p| p.0)
}

/// The request body of `spec`, checked before any request.
fn body_of(spec: &LoadBalancerSpec, project_id: Option<String>) -> ProviderResult<LbBody> {
    let what = format!("load balancer `{}`", spec.name);
    let [group] = spec.target_groups.as_slice() else {
        return Err(invalid(format!("{what}: a DigitalOcean load balancer has exactly one pool of droplets")));
    };
    if !spec.routes.is_empty() {
        return Err(invalid(format!("{what}: DigitalOcean load balancers have no host or path rules")));
    }
    if spec.tls_policy == TlsPolicy::Tls13 {
        return Err(invalid(format!(
            "{what}: DigitalOcean load balancers always accept TLS 1.2; a TLS 1.3 floor is not possible (use the \
             `STRONG` security policy for the strongest ciphers)"
        )));
    }
    let vpcs: BTreeSet<String> =
        spec.subnet_ids.iter().filter_map(|s| labels::parse_subnet_id(s)).map(|(vpc, _)| vpc).collect();
    let [vpc] = vpcs.iter().collect::<Vec<_>>()[..] else {
        return Err(invalid(format!("{what}: its subnets must be subnets of one VPC: {:?}", spec.subnet_ids)));
    };
    let https_port = spec.listeners.iter().find(|l| l.protocol.is_tls()).map(|l| l.port);
    let mut redirect = false;
    let mut rules = Vec::with_capacity(spec.listeners.len());
    for l in &spec.listeners {
        let (entry, certificate_id) = match l.protocol {
            ListenerProtocol::Https => {
                let [cert] = l.certificate_ids.as_slice() else {
                    return Err(invalid(format!(
                        "{what}: the HTTPS listener on port {} needs exactly one certificate on DigitalOcean",
                        l.port
                    )));
                };
                ("https", cert.clone())
            }
            ListenerProtocol::TlsPassthrough if !l.certificate_ids.is_empty() => {
                return Err(invalid(format!(
                    "{what}: the TLS passthrough listener on port {} takes no certificate (the droplets hold it)",
                    l.port
                )));
            }
            ListenerProtocol::TlsPassthrough => ("https", String::new()),
            _ => ("http", String::new()),
        };
        let passthrough = l.protocol == ListenerProtocol::TlsPassthrough;
        if let Some(to) = l.redirect_to_port {
            if Some(to) != https_port || l.protocol != ListenerProtocol::Http {
                return Err(invalid(format!(
                    "{what}: DigitalOcean redirects HTTP only to its HTTPS listener; port {} cannot redirect to {to}",
                    l.port
                )));
            }
            redirect = true;
        }
        rules.push(Rule {
            entry_protocol: entry.into(),
            entry_port: l.port,
            // Passed-through TLS reaches the droplets as HTTPS, which they terminate.
            target_protocol: if passthrough { "https" } else { "http" }.into(),
            target_port: group.port,
            certificate_id,
            tls_passthrough: passthrough,
        });
    }
    let hc = &group.health_check;
    let protocol = match hc.protocol {
        HealthProtocol::Https => "https",
        HealthProtocol::Tcp => "tcp",
        _ => "http",
    };
    Ok(LbBody {
        name: spec.name.clone(),
        region: spec.region.clone(),
        vpc_uuid: vpc.clone(),
        network: if spec.scheme == LbScheme::Internal { "INTERNAL" } else { "EXTERNAL" },
        forwarding_rules: rules,
        health_check: Health {
            protocol: protocol.into(),
            port: hc.port.unwrap_or(group.port),
            path: if protocol == "tcp" { String::new() } else { hc.path.clone().unwrap_or_else(|| "/".into()) },
            check_interval_seconds: hc.interval_s,
            response_timeout_seconds: hc.timeout_s,
            unhealthy_threshold: hc.unhealthy_threshold,
            healthy_threshold: hc.healthy_threshold,
        },
        redirect_http_to_https: redirect,
        droplet_ids: droplet_ids(&what, &group.vm_ids)?,
        tls_cipher_policy: spec.security_policy.clone().unwrap_or_else(|| DEFAULT_CIPHERS.into()),
        project_id,
    })
}

/// The record fields of `spec`: its tags and what DigitalOcean does not store.
fn lb_fields(spec: &LoadBalancerSpec) -> ProviderResult<BTreeSet<String>> {
    let mut tags = spec.tags.clone();
    if let Some(g) = spec.target_groups.first() {
        tags.insert(POOL.into(), pool_word(g));
    }
    tags.insert(SUBNETS.into(), spec.subnet_ids.join(","));
    tags.insert(FIREWALLS.into(), spec.firewall_ids.join(","));
    tags.insert(GB.into(), spec.assumed_gb_processed_per_month.to_string());
    fields_of(RecordKind::LoadBalancer, &spec.name, &spec.name, &spec.region, &tags)
}

fn list_of(v: Option<&String>) -> Vec<String> {
    let mut out: Vec<String> =
        v.map(|s| s.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect()).unwrap_or_default();
    out.sort();
    out
}

fn health_word(s: TargetHealthState) -> &'static str {
    match s {
        TargetHealthState::Initial => "initial",
        TargetHealthState::Healthy => "healthy",
        TargetHealthState::Unhealthy => "unhealthy",
        TargetHealthState::Draining => "draining",
        _ => "unavailable",
    }
}

/// The observed load balancer from DigitalOcean's answer, its record and its droplets' health.
fn observed(lb: &DoLb, w: Owned, health: &[TargetHealth]) -> LoadBalancerObserved {
    let mut tags: Tags = w.tags;
    let [pool, subnets, firewalls, gb] = HIDDEN.map(|k| tags.remove(k));
    let (group, drain, status, release) =
        pool.as_deref().and_then(pool_of).unwrap_or_else(|| ("app".into(), 0, None, Default::default()));
    let https_port = lb
        .forwarding_rules
        .iter()
        .find(|r| r.entry_protocol == "https" || r.entry_protocol == "http2")
        .map(|r| r.entry_port);
    let mut listeners: Vec<ListenerSpec> = lb
        .forwarding_rules
        .iter()
        .map(|r| {
            let https = r.entry_protocol != "http";
            let protocol = match (https, r.tls_passthrough) {
                (true, true) => ListenerProtocol::TlsPassthrough,
                (true, false) => ListenerProtocol::Https,
                (false, _) => ListenerProtocol::Http,
            };
            ListenerSpec {
                port: r.entry_port,
                protocol,
                certificate_ids: if r.certificate_id.is_empty() { Vec::new() } else { vec![r.certificate_id.clone()] },
                redirect_to_port: (!https && lb.redirect_http_to_https).then_some(https_port).flatten(),
            }
        })
        .collect();
    listeners.sort();
    let port = lb.forwarding_rules.first().map(|r| r.target_port).unwrap_or(0);
    let health_check = lb.health_check.as_ref().map(|h| HealthCheckSpec {
        protocol: match h.protocol.as_str() {
            "https" => HealthProtocol::Https,
            "tcp" => HealthProtocol::Tcp,
            _ => HealthProtocol::Http,
        },
        port: (h.port != port).then_some(h.port),
        path: (h.protocol != "tcp").then(|| h.path.clone()),
        interval_s: h.check_interval_seconds,
        timeout_s: h.response_timeout_seconds,
        healthy_threshold: h.healthy_threshold,
        unhealthy_threshold: h.unhealthy_threshold,
        expected_status: status.clone(),
    });
    let mut vm_ids: Vec<String> = lb.droplet_ids.iter().map(u64::to_string).collect();
    vm_ids.sort();
    let target_groups = health_check
        .map(|health_check| TargetGroupSpec {
            name: group.clone(),
            port,
            vm_ids: vm_ids.clone(),
            health_check,
            deregistration_delay_s: drain,
            release,
        })
        .into_iter()
        .collect();
    let mut targets: Vec<TargetState> = vm_ids
        .iter()
        .map(|id| TargetState {
            vm_id: id.clone(),
            group: group.clone(),
            state: health.iter().find(|h| &h.target_id == id).map_or("initial", |h| health_word(h.state)).to_string(),
        })
        .collect();
    targets.sort();
    let policy = lb.tls_cipher_policy.clone().unwrap_or_else(|| DEFAULT_CIPHERS.into());
    let region = lb.region.as_ref().and_then(|r| r.get("slug")).and_then(|s| s.as_str()).map(str::to_string);
    LoadBalancerObserved {
        id: lb.id.clone(),
        name: w.name.unwrap_or_else(|| lb.name.clone()),
        region: region.or(w.region).unwrap_or_default(),
        scheme: if lb.network.as_deref() == Some("INTERNAL") { LbScheme::Internal } else { LbScheme::Public },
        subnet_ids: list_of(subnets.as_ref()),
        firewall_ids: list_of(firewalls.as_ref()),
        url: url_of(&lb.ip, &listeners),
        listeners,
        target_groups,
        routes: Vec::new(),
        default_target_group: group,
        tls_policy: TlsPolicy::Tls12,
        security_policy: (policy != DEFAULT_CIPHERS).then_some(policy),
        assumed_gb_processed_per_month: gb.as_deref().and_then(|g| g.parse().ok()).unwrap_or(0.0),
        dns_name: lb.ip.clone(),
        ip: (!lb.ip.is_empty()).then(|| lb.ip.clone()),
        status: lb.status.clone(),
        targets,
        tags,
    }
}

fn lb_urn(id: &str) -> String {
    format!("do:loadbalancer:{id}")
}

impl DigitalOcean {
    async fn get_lb(&self, cx: &OpContext, id: &str) -> ProviderResult<Option<DoLb>> {
        match self.client.get::<LbEnvelope>(cx, &format!("/v2/load_balancers/{id}"), &[]).await {
            Ok(l) => Ok(Some(l.load_balancer)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into_provider(format!("reading load balancer `{id}`"))),
        }
    }

    /// The load balancers whose droplets include `droplet` (a droplet behind one is not deleted).
    pub(crate) async fn fronting(&self, cx: &OpContext, droplet: u64) -> ProviderResult<Vec<String>> {
        let all = self
            .client
            .list::<LbList>(cx, "/v2/load_balancers", &[])
            .await
            .map_err(|e| e.into_provider("listing load balancers"))?;
        Ok(all.into_iter().filter(|l| l.droplet_ids.contains(&droplet)).map(|l| l.id).collect())
    }

    /// The health of every droplet of `lb` (its pool is `group`), from the monitoring API.
    async fn droplet_health(&self, cx: &OpContext, lb: &DoLb, group: &str) -> ProviderResult<Vec<TargetHealth>> {
        if lb.droplet_ids.is_empty() {
            return Ok(Vec::new());
        }
        let end = cx.clock.unix_secs();
        let query =
            [("lb_id", lb.id.clone()), ("start", (end.saturating_sub(300)).to_string()), ("end", end.to_string())];
        let m: Metrics = self
            .client
            .get(cx, "/v2/monitoring/metrics/load_balancer/droplets_health_checks", &query)
            .await
            .map_err(|e| e.into_provider(format!("reading the droplet health of load balancer `{}`", lb.id)))?;
        Ok(lb
            .droplet_ids
            .iter()
            .map(|d| {
                let id = d.to_string();
                let latest = m
                    .data
                    .result
                    .iter()
                    .filter(|s| s.metric.get("droplet_id") == Some(&id))
                    .filter_map(|s| s.values.iter().max_by(|a, b| a.0.total_cmp(&b.0)))
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                let state = match latest.map(|v| v.1.parse::<f64>().unwrap_or(0.0)) {
                    None => TargetHealthState::Initial,
                    Some(v) if v > 0.0 => TargetHealthState::Healthy,
                    Some(_) => TargetHealthState::Unhealthy,
                };
                let reason = (state == TargetHealthState::Unhealthy).then(|| "failing the health check".to_string());
                TargetHealth { group: group.to_string(), target_id: id, state, reason }
            })
            .collect())
    }

    async fn lb_observed(&self, cx: &OpContext, lb: &DoLb, w: Owned) -> ProviderResult<LoadBalancerObserved> {
        let health = self.droplet_health(cx, lb, &pool_name(&w)).await?;
        Ok(observed(lb, w, &health))
    }

    /// Wait until the load balancer is active with its address.
    async fn wait_lb_active(&self, cx: &OpContext, id: &str) -> ProviderResult<DoLb> {
        self.wait_for(cx, &format!("load balancer `{id}` becoming active"), self.waits.action, || async {
            let lb = self.get_lb(cx, id).await?;
            match lb {
                Some(l) if l.status == "errored" => Err(ProviderError::new(
                    ErrorKind::Other,
                    format!("load balancer `{id}` failed on DigitalOcean's side (status `errored`)"),
                )),
                Some(l) if l.status == "active" && !l.ip.is_empty() => Ok(Some(l)),
                Some(_) => Ok(None),
                None => Err(ProviderError::not_found(format!("load balancer `{id}` disappeared while being created"))),
            }
        })
        .await
    }

    async fn change_droplets(
        &self,
        cx: &OpContext,
        id: &str,
        method: Method,
        targets: &[String],
    ) -> ProviderResult<()> {
        let what = format!("load balancer `{id}`");
        let body = DropletIds { droplet_ids: droplet_ids(&what, targets)? };
        self.client
            .send_empty(cx, method, &format!("/v2/load_balancers/{id}/droplets"), Some(&body))
            .await
            .map_err(|e| e.into_provider(format!("changing the droplets of {what}")))
    }
}

#[async_trait::async_trait]
impl Api<LoadBalancer> for DigitalOcean {
    async fn create(&self, cx: &OpContext, spec: &LoadBalancerSpec) -> ProviderResult<LoadBalancerObserved> {
        self.check_region(&spec.region)?;
        let fields = lb_fields(spec)?;
        let body = body_of(spec, None)?;
        // An earlier attempt interrupted after the call: its record names it.
        let records = self.records(cx).await?;
        let all = self
            .client
            .list::<LbList>(cx, "/v2/load_balancers", &[])
            .await
            .map_err(|e| e.into_provider("listing load balancers"))?;
        let mine = all.into_iter().find(|l| {
            l.name == spec.name
                && owned(&records, RecordKind::LoadBalancer, &l.id)
                    .is_some_and(|w| w.tags.get(TAG_STACK) == spec.tags.get(TAG_STACK))
        });
        let id = match mine {
            Some(l) => l.id,
            None => {
                let l: LbEnvelope = self
                    .client
                    .send(cx, Method::POST, "/v2/load_balancers", &body)
                    .await
                    .map_err(|e| e.into_provider(format!("creating load balancer `{}`", spec.name)))?;
                l.load_balancer.id
            }
        };
        self.write_owned(cx, RecordKind::LoadBalancer, &id, &fields).await?;
        self.assign_to_project(cx, &spec.tags, &lb_urn(&id)).await?;
        self.admit_load_balancer(cx, &id, &spec.firewall_ids).await?;
        let lb = self.wait_lb_active(cx, &id).await?;
        let w = Owned { name: Some(spec.name.clone()), region: Some(spec.region.clone()), tags: spec.tags.clone() };
        self.lb_observed(cx, &lb, with_hidden(w, &fields)).await
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<LoadBalancerObserved>> {
        let all = self
            .client
            .list::<LbList>(cx, "/v2/load_balancers", &[])
            .await
            .map_err(|e| e.into_provider("listing load balancers"))?;
        let records = self.records(cx).await?;
        let mut out = Vec::new();
        for lb in &all {
            let w = owned(&records, RecordKind::LoadBalancer, &lb.id);
            let wanted = match sel {
                Selector::Ids(ids) => ids.contains(&lb.id),
                Selector::Stack(s) => w.as_ref().is_some_and(|w| w.tags.get(TAG_STACK) == Some(s)),
                _ => return Err(invalid("this selector is not supported by the DigitalOcean load balancer backend")),
            };
            if wanted {
                out.push(self.lb_observed(cx, lb, w.unwrap_or_default()).await?);
            }
        }
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &LoadBalancerSpec) -> ProviderResult<LoadBalancerObserved> {
        let fields = lb_fields(spec)?;
        let body = body_of(spec, None)?;
        let what = format!("load balancer `{id}`");
        let have =
            self.get_lb(cx, id).await?.ok_or_else(|| ProviderError::not_found(format!("{what} does not exist")))?;
        immutable(&what, "VPC", &have.vpc_uuid, &body.vpc_uuid)?;
        let scheme = if have.network.as_deref() == Some("INTERNAL") { "INTERNAL" } else { "EXTERNAL" };
        immutable(&what, "scheme", &scheme, &body.network)?;
        let _: LbEnvelope = self
            .client
            .send(cx, Method::PUT, &format!("/v2/load_balancers/{id}"), &body)
            .await
            .map_err(|e| e.into_provider(format!("updating {what}")))?;
        self.write_owned(cx, RecordKind::LoadBalancer, id, &fields).await?;
        self.admit_load_balancer(cx, id, &spec.firewall_ids).await?;
        let lb = self.wait_lb_active(cx, id).await?;
        let w = Owned { name: Some(spec.name.clone()), region: Some(spec.region.clone()), tags: spec.tags.clone() };
        self.lb_observed(cx, &lb, with_hidden(w, &fields)).await
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.admit_load_balancer(cx, id, &[]).await?;
        match self.client.send_empty::<()>(cx, Method::DELETE, &format!("/v2/load_balancers/{id}"), None).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into_provider(format!("deleting load balancer `{id}`"))),
        }
        self.forget_owned(cx, RecordKind::LoadBalancer, &[id.to_string()]).await?;
        let stack = cx.stack.clone();
        if self.forget_project_if_empty(cx, &stack).await {
            self.prune_unused_labels(cx).await;
        }
        Ok(())
    }

    async fn register_targets(&self, cx: &OpContext, id: &str, _group: &str, targets: &[String]) -> ProviderResult<()> {
        self.change_droplets(cx, id, Method::POST, targets).await
    }

    async fn deregister_targets(
        &self,
        cx: &OpContext,
        id: &str,
        _group: &str,
        targets: &[String],
    ) -> ProviderResult<()> {
        // Only the droplets still behind it are sent (one deleted meanwhile is gone already).
        let Some(lb) = self.get_lb(cx, id).await? else { return Ok(()) };
        let behind: Vec<String> =
            targets.iter().filter(|t| t.parse::<u64>().is_ok_and(|d| lb.droplet_ids.contains(&d))).cloned().collect();
        if behind.is_empty() {
            return Ok(());
        }
        self.change_droplets(cx, id, Method::DELETE, &behind).await
    }

    async fn target_health(&self, cx: &OpContext, id: &str) -> ProviderResult<Vec<TargetHealth>> {
        let lb = self
            .get_lb(cx, id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("load balancer `{id}` does not exist")))?;
        let records = self.records(cx).await?;
        let w = owned(&records, RecordKind::LoadBalancer, id).unwrap_or_default();
        self.droplet_health(cx, &lb, &pool_name(&w)).await
    }
}

/// `w` with the hidden labels of `fields` (what a fresh read of the record would give).
fn with_hidden(mut w: Owned, fields: &BTreeSet<String>) -> Owned {
    let recorded = labels::RecordFields::read(fields.iter().map(String::as_str));
    let all = labels::decode(&recorded.labels, recorded.name.as_deref());
    for k in HIDDEN {
        if let Some(v) = all.get(k) {
            w.tags.insert(k.to_string(), v.clone());
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_words_round_trip() {
        let g = TargetGroupSpec {
            name: "app".into(),
            port: 8080,
            vm_ids: vec![],
            health_check: HealthCheckSpec {
                protocol: HealthProtocol::Http,
                port: None,
                path: Some("/health".into()),
                interval_s: 10,
                timeout_s: 5,
                healthy_threshold: 3,
                unhealthy_threshold: 3,
                expected_status: Some("200-399".into()),
            },
            deregistration_delay_s: 30,
            release: Default::default(),
        };
        let (name, drain, status, release) = pool_of(&pool_word(&g)).unwrap_or_default();
        assert_eq!((name.as_str(), drain, status.as_deref(), release), ("app", 30, Some("200-399"), g.release));
        assert_eq!(pool_of("nonsense"), None);
    }
}
