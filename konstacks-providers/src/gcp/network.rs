//! `Network`: VPC networks in custom subnet mode, regional subnetworks, and firewalls as sets
//! of VPC firewall rules.
//!
//! A Konstacks firewall `web-fw` is the network tag `web-fw`. Each of its rules is one GCP
//! firewall rule `web-fw-i<hash>` (ingress, targeting the tag; a CIDR source range or another
//! firewall's tag as source tag) or `web-fw-e<hash>` (egress, to a destination range), plus one
//! rule `web-fw-deny-egress` at the lowest priority that denies the tag's other egress, so that
//! egress is allowed only by rules, as on the other clouds. A rule's name is a hash of what it
//! allows: an update adds the new rules and deletes the old ones, one by one.
//!
//! Networks have no CIDR of their own on GCP: the stack's block is kept in the network's
//! description with its tags, and subnetworks must lie inside it (validation checks that before
//! any call). Networks and subnetworks have no labels, and GCP fixes their description at
//! creation; when their tags change later, the current tags go to a *tag record*: a disabled
//! firewall rule `<name>-tags` on the network (it allows nothing, costs nothing, and its
//! description can be changed), which wins over the description when present and is deleted
//! with the resource. A subnetwork is "public" when its VMs may take external addresses; a private one
//! gets Private Google Access so that its VMs reach Google APIs without one.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use google_cloud_compute_v1::model::firewall::{Allowed, Denied, Direction};
use google_cloud_compute_v1::model::{Firewall, Network, Subnetwork, SubnetworksSetPrivateIpGoogleAccessRequest};
use google_cloud_gax::error::Error as GaxError;
use konstacks_core::clock::OpContext;
use konstacks_core::error::ProviderError;
use konstacks_core::kinds as kind;
use konstacks_core::model::Protocol;
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{
    FirewallObserved, FirewallSpec, RuleSource, RuleSpec, Selector, SubnetObserved, SubnetSpec, VpcObserved, VpcSpec,
};

use super::labels::{self, Payload};
use super::{error, immutable, invalid, last_segment, regex_escape, relative, Gcp};

/// Priority of allow rules (GCP's default).
const ALLOW_PRIORITY: i32 = 1000;
/// Priority of the deny-egress rule: below every allow rule, above GCP's implied allow.
const DENY_PRIORITY: i32 = 65534;
/// Suffix of a firewall's deny-egress rule.
const DENY_SUFFIX: &str = "-deny-egress";
/// Suffix of the tag record of a network or subnetwork.
const TAGS_SUFFIX: &str = "-tags";
/// Payload field naming the resource a tag record describes.
const TAGS_OF: &str = "tags-of";

/// Fetch every page of a list call: `fetch(page_token)` answers a page and the next token.
pub(super) async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, GaxError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), GaxError>>,
{
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let (items, next) = fetch(token).await?;
        out.extend(items);
        match next {
            Some(t) if !t.is_empty() => token = t,
            _ => return Ok(out),
        }
    }
}

/// A Compute Engine filter matching these names exactly.
pub(super) fn names_filter(names: &[String], suffix: &str) -> String {
    let alternatives: Vec<String> = names.iter().map(|n| regex_escape(n)).collect();
    format!("name eq \"({}){suffix}\"", alternatives.join("|"))
}

/// Whether a payload belongs to the selection (`id` is what the selector's ids name).
fn selected(sel: &Selector, id: &str, payload: Option<&Payload>) -> bool {
    match sel {
        Selector::Ids(ids) => ids.iter().any(|i| i == id),
        Selector::Stack(stack) => payload.and_then(Payload::stack) == Some(stack.as_str()),
        _ => false,
    }
}

/// The network name of a VPC id (`projects/p/global/networks/n` or just `n`).
fn network_name(id: &str) -> &str {
    last_segment(id)
}

/// `(region, name)` of a subnet id `projects/p/regions/r/subnetworks/n`.
fn subnet_parts(id: &str) -> Option<(&str, &str)> {
    let mut it = id.rsplit('/');
    let name = it.next()?;
    if it.next()? != "subnetworks" {
        return None;
    }
    Some((it.next()?, name))
}

/// The hash part of a rule's name: stable over the rule's fields.
fn rule_hash(direction: char, r: &RuleSpec) -> String {
    let text = format!("{direction}|{:?}|{}|{}|{:?}", r.protocol, r.from_port, r.to_port, r.peer);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{:08x}", h & 0xffff_ffff)
}

/// The GCP rules of a Konstacks firewall: name -> rule body.
fn desired_rules(spec: &FirewallSpec, network: &str, payload: &Payload) -> ProviderResult<BTreeMap<String, Firewall>> {
    let description = labels::to_description(payload);
    let mut out = BTreeMap::new();
    let base = |name: String, direction: Direction, priority: i32| {
        let mut f = Firewall::default();
        f.name = Some(name);
        f.network = Some(network.to_string());
        f.direction = Some(direction);
        f.priority = Some(priority);
        f.target_tags = vec![spec.name.clone()];
        f.description = Some(description.clone());
        f
    };
    for r in &spec.ingress {
        let name = format!("{}-i{}", spec.name, rule_hash('i', r));
        let mut f = base(name.clone(), Direction::Ingress, ALLOW_PRIORITY);
        f.allowed = vec![allowed(r)];
        match &r.peer {
            RuleSource::Cidr(c) => f.source_ranges = vec![c.clone()],
            RuleSource::Firewall(tag) => f.source_tags = vec![network_name(tag).to_string()],
        }
        out.insert(name, f);
    }
    for r in &spec.egress {
        let name = format!("{}-e{}", spec.name, rule_hash('e', r));
        let mut f = base(name.clone(), Direction::Egress, ALLOW_PRIORITY);
        f.allowed = vec![allowed(r)];
        match &r.peer {
            RuleSource::Cidr(c) => f.destination_ranges = vec![c.clone()],
            RuleSource::Firewall(other) => {
                return Err(invalid(format!(
                    "firewall `{}`: GCP egress rules can only name address ranges, not firewall `{other}`; use the subnet's CIDR",
                    spec.name
                )))
            }
        }
        out.insert(name, f);
    }
    let deny_name = format!("{}{DENY_SUFFIX}", spec.name);
    let mut deny = base(deny_name.clone(), Direction::Egress, DENY_PRIORITY);
    let mut all = Denied::default();
    all.ip_protocol = Some("all".into());
    deny.denied = vec![all];
    deny.destination_ranges = vec!["0.0.0.0/0".into()];
    out.insert(deny_name, deny);
    Ok(out)
}

/// Whether a rule as GCP holds it still does what `want` says (names match by construction;
/// this catches changes made outside Konstacks).
fn same_rule(have: &Firewall, want: &Firewall) -> bool {
    let peers = |f: &Firewall| {
        if f.direction == Some(Direction::Egress) {
            (Vec::new(), Vec::new(), f.destination_ranges.clone())
        } else {
            (f.source_ranges.clone(), f.source_tags.clone(), Vec::new())
        }
    };
    have.direction == want.direction
        && have.priority == want.priority
        && have.allowed == want.allowed
        && have.denied == want.denied
        && have.target_tags == want.target_tags
        && have.disabled.unwrap_or(false) == want.disabled.unwrap_or(false)
        && peers(have) == peers(want)
}

fn allowed(r: &RuleSpec) -> Allowed {
    let mut a = Allowed::default();
    let (proto, ports) = match r.protocol {
        Protocol::Tcp => ("tcp", true),
        Protocol::Udp => ("udp", true),
        Protocol::Icmp => ("icmp", false),
        _ => ("all", false),
    };
    a.ip_protocol = Some(proto.to_string());
    if ports {
        a.ports = vec![if r.from_port == r.to_port {
            r.from_port.to_string()
        } else {
            format!("{}-{}", r.from_port, r.to_port)
        }];
    }
    a
}

/// The Konstacks rule a GCP allow rule stands for (`None` for the deny rule and foreign shapes).
fn rule_of(f: &Firewall) -> Option<(bool, RuleSpec)> {
    let a = f.allowed.first()?;
    let protocol = match a.ip_protocol.as_deref()? {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        _ => Protocol::All,
    };
    let (from_port, to_port) = match (protocol, a.ports.first()) {
        (Protocol::Tcp | Protocol::Udp, Some(p)) => match p.split_once('-') {
            Some((lo, hi)) => (lo.parse().ok()?, hi.parse().ok()?),
            None => {
                let port: u16 = p.parse().ok()?;
                (port, port)
            }
        },
        (Protocol::Tcp | Protocol::Udp, None) => (0, 65535),
        _ => (0, 0),
    };
    let ingress = f.direction != Some(Direction::Egress);
    let peer = if ingress {
        match (f.source_ranges.first(), f.source_tags.first()) {
            (Some(c), _) => RuleSource::Cidr(c.clone()),
            (None, Some(t)) => RuleSource::Firewall(t.clone()),
            _ => return None,
        }
    } else {
        RuleSource::Cidr(f.destination_ranges.first()?.clone())
    };
    Some((ingress, RuleSpec { protocol, from_port, to_port, peer }))
}

impl Gcp {
    fn vpc_observed(&self, n: &Network, records: &BTreeMap<String, Payload>) -> VpcObserved {
        let mut payload = labels::from_description(n.description.as_deref()).unwrap_or_default();
        let name = n.name.clone().unwrap_or_default();
        if let Some(r) = records.get(&name) {
            payload.tags = r.tags.clone();
        }
        VpcObserved {
            id: self.network_path(&name),
            name,
            region: payload.get("region").unwrap_or(&self.region).to_string(),
            cidr: payload.get("cidr").unwrap_or_default().to_string(),
            tags: payload.tags,
        }
    }

    async fn list_networks(&self, filter: Option<String>) -> ProviderResult<Vec<Network>> {
        all_pages(|token| {
            let req = self.networks.list().set_project(&self.project).set_page_token(token);
            let req = match &filter {
                Some(f) => req.set_filter(f.clone()),
                None => req,
            };
            async move { req.send().await.map(|p| (p.items, p.next_page_token)) }
        })
        .await
        .map_err(|e| error::api("listing networks", e))
    }

    async fn get_network(&self, id: &str) -> ProviderResult<Network> {
        let name = network_name(id);
        self.networks
            .get()
            .set_project(&self.project)
            .set_network(name)
            .send()
            .await
            .map_err(|e| error::api(format!("reading network `{name}`"), e))
    }

    async fn subnet_observed(
        &self,
        cx: &OpContext,
        s: &Subnetwork,
        records: &BTreeMap<String, Payload>,
    ) -> ProviderResult<SubnetObserved> {
        let mut payload = labels::from_description(s.description.as_deref()).unwrap_or_default();
        if let Some(r) = s.name.as_ref().and_then(|n| records.get(n)) {
            payload.tags = r.tags.clone();
        }
        let zone: u8 = payload.get("zone").and_then(|z| z.parse().ok()).unwrap_or(0);
        let region = s.region.as_deref().map(last_segment).unwrap_or(&self.region).to_string();
        let name = s.name.clone().unwrap_or_default();
        Ok(SubnetObserved {
            id: format!("projects/{}/regions/{region}/subnetworks/{name}", self.project),
            name,
            vpc_id: s.network.as_deref().map(relative).unwrap_or_default(),
            cidr: s.ip_cidr_range.clone().unwrap_or_default(),
            zone,
            zone_name: self.zone_name(cx, zone).await.unwrap_or_default(),
            public: !s.private_ip_google_access.unwrap_or(false),
            region,
            tags: payload.tags,
        })
    }

    pub(super) async fn get_subnet(&self, id: &str) -> ProviderResult<Subnetwork> {
        let (region, name) = subnet_parts(id)
            .ok_or_else(|| ProviderError::not_found(format!("subnet `{id}` is not a subnetwork path")))?;
        self.subnetworks
            .get()
            .set_project(&self.project)
            .set_region(region)
            .set_subnetwork(name)
            .send()
            .await
            .map_err(|e| error::api(format!("reading subnetwork `{name}`"), e))
    }

    /// Every rule of the firewalls named `names` (all Konstacks rules when `names` is empty),
    /// grouped by firewall.
    async fn firewall_rules(&self, names: &[String]) -> ProviderResult<BTreeMap<String, Vec<Firewall>>> {
        let filter = if names.is_empty() { None } else { Some(names_filter(names, "-.*")) };
        let rules = all_pages(|token| {
            let req = self.firewalls.list().set_project(&self.project).set_page_token(token);
            let req = match &filter {
                Some(f) => req.set_filter(f.clone()),
                None => req,
            };
            async move { req.send().await.map(|p| (p.items, p.next_page_token)) }
        })
        .await
        .map_err(|e| error::api("listing firewall rules", e))?;
        let mut out: BTreeMap<String, Vec<Firewall>> = BTreeMap::new();
        for r in rules {
            let payload = labels::from_description(r.description.as_deref());
            if let Some(fw) = payload.as_ref().and_then(|p| p.get("firewall")) {
                if names.is_empty() || names.iter().any(|n| n == fw) {
                    out.entry(fw.to_string()).or_default().push(r);
                }
            }
        }
        Ok(out)
    }

    fn firewall_observed(&self, name: &str, rules: &[Firewall]) -> FirewallObserved {
        let payload = rules.iter().find_map(|r| labels::from_description(r.description.as_deref())).unwrap_or_default();
        let mut ingress = BTreeSet::new();
        let mut egress = BTreeSet::new();
        for r in rules {
            match rule_of(r) {
                Some((true, rule)) => {
                    ingress.insert(rule);
                }
                Some((false, rule)) => {
                    egress.insert(rule);
                }
                None => {}
            }
        }
        FirewallObserved {
            id: name.to_string(),
            name: name.to_string(),
            region: payload.get("region").unwrap_or(&self.region).to_string(),
            vpc_id: rules.first().and_then(|r| r.network.as_deref()).map(relative).unwrap_or_default(),
            ingress: ingress.into_iter().collect(),
            egress: egress.into_iter().collect(),
            tags: payload.tags,
        }
    }

    /// The tag records of the networks or subnetworks named `names` (all when empty), by the
    /// name of the resource they describe.
    async fn tag_records(&self, names: &[String]) -> ProviderResult<BTreeMap<String, Payload>> {
        let filter =
            if names.is_empty() { format!("name eq \".*{TAGS_SUFFIX}\"") } else { names_filter(names, TAGS_SUFFIX) };
        let rules = all_pages(|token| {
            let req = self.firewalls.list().set_project(&self.project).set_filter(filter.clone()).set_page_token(token);
            async move { req.send().await.map(|p| (p.items, p.next_page_token)) }
        })
        .await
        .map_err(|e| error::api("listing tag records", e))?;
        Ok(rules
            .iter()
            .filter_map(|r| labels::from_description(r.description.as_deref()))
            .filter_map(|p| p.get(TAGS_OF).map(str::to_string).map(|of| (of, p)))
            .collect())
    }

    /// Write the current tags of network or subnetwork `name` (on `network`) to its tag record.
    async fn write_tag_record(
        &self,
        cx: &OpContext,
        name: &str,
        network: &str,
        tags: &konstacks_core::spec::Tags,
    ) -> ProviderResult<()> {
        let rule_name = format!("{name}{TAGS_SUFFIX}");
        let description = labels::to_description(&Payload::new(tags).with(TAGS_OF, name));
        let existing = self.tag_records(&[name.to_string()]).await?;
        if existing.contains_key(name) {
            let mut patch = Firewall::default();
            patch.description = Some(description);
            let what = format!("updating the tag record of `{name}`");
            let sent =
                self.firewalls.patch().set_project(&self.project).set_firewall(&rule_name).set_body(patch).send().await;
            self.run_op(cx, &what, sent).await?;
            return Ok(());
        }
        let mut f = Firewall::default();
        f.name = Some(rule_name);
        f.network = Some(network.to_string());
        f.direction = Some(Direction::Ingress);
        f.priority = Some(65535);
        f.disabled = Some(true);
        let mut nothing = Allowed::default();
        nothing.ip_protocol = Some("icmp".into());
        f.allowed = vec![nothing];
        f.source_ranges = vec!["255.255.255.255/32".into()];
        f.target_tags = vec!["konstacks-tag-record".into()];
        f.description = Some(description);
        self.insert_rule(cx, f).await
    }

    async fn insert_rule(&self, cx: &OpContext, rule: Firewall) -> ProviderResult<()> {
        let name = rule.name.clone().unwrap_or_default();
        let what = format!("creating firewall rule `{name}`");
        let sent = self
            .insert(cx, &what, &["firewall", &self.project, &name], |id| {
                self.firewalls.insert().set_project(&self.project).set_request_id(id).set_body(rule).send()
            })
            .await;
        match sent {
            Ok(_) => Ok(()),
            // Left by an interrupted earlier attempt: the rule is named after its content.
            Err(e) if e.kind() == konstacks_core::error::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_rule(&self, cx: &OpContext, name: &str) -> ProviderResult<()> {
        let sent = self.firewalls.delete().set_project(&self.project).set_firewall(name).send().await;
        self.run_delete(cx, &format!("deleting firewall rule `{name}`"), sent).await
    }

    /// The firewalls named by `ids`, which must exist (for VMs that attach them).
    pub(super) async fn check_firewalls(&self, ids: &[String], vpc: &str) -> ProviderResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let found = self.firewall_rules(ids).await?;
        for id in ids {
            let rules =
                found.get(id).ok_or_else(|| ProviderError::not_found(format!("firewall `{id}` does not exist")))?;
            let fw_vpc = rules.first().and_then(|r| r.network.as_deref()).map(relative).unwrap_or_default();
            if network_name(&fw_vpc) != network_name(vpc) {
                return Err(invalid(format!(
                    "firewall `{id}` belongs to network `{fw_vpc}`, not `{vpc}`; attach firewalls of the VM's network"
                )));
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Api<kind::Vpc> for Gcp {
    async fn create(&self, cx: &OpContext, spec: &VpcSpec) -> ProviderResult<VpcObserved> {
        self.check_region(&spec.region)?;
        let payload = Payload::new(&spec.tags).with("cidr", &spec.cidr).with("region", &spec.region);
        let mut n = Network::default();
        n.name = Some(spec.name.clone());
        n.auto_create_subnetworks = Some(false);
        n.description = Some(labels::to_description(&payload));
        let what = format!("creating network `{}`", spec.name);
        self.insert(cx, &what, &["network", &self.project, &spec.name], |id| {
            self.networks.insert().set_project(&self.project).set_request_id(id).set_body(n).send()
        })
        .await?;
        Ok(self.vpc_observed(&self.get_network(&spec.name).await?, &BTreeMap::new()))
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<VpcObserved>> {
        let filter = match sel {
            Selector::Ids(ids) if ids.is_empty() => return Ok(Vec::new()),
            Selector::Ids(ids) => {
                Some(names_filter(&ids.iter().map(|i| network_name(i).to_string()).collect::<Vec<_>>(), ""))
            }
            _ => None,
        };
        let networks = self.list_networks(filter).await?;
        let names: Vec<String> = networks.iter().filter_map(|n| n.name.clone()).collect();
        let records = if names.is_empty() { BTreeMap::new() } else { self.tag_records(&names).await? };
        let mut out: Vec<VpcObserved> = networks
            .iter()
            .map(|n| self.vpc_observed(n, &records))
            .filter(|v| {
                let by_name = matches!(sel, Selector::Ids(ids) if ids.iter().any(|i| network_name(i) == v.name));
                by_name || selected(sel, &v.id, Some(&Payload::new(&v.tags)))
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &VpcSpec) -> ProviderResult<VpcObserved> {
        let network = self.get_network(id).await?;
        let name = network.name.clone().unwrap_or_default();
        let records = self.tag_records(std::slice::from_ref(&name)).await?;
        let current = self.vpc_observed(&network, &records);
        let what = format!("network `{}`", current.name);
        immutable(&what, "name", &current.name, &spec.name)?;
        immutable(&what, "cidr", &current.cidr, &spec.cidr)?;
        if current.tags != spec.tags {
            let link = network.self_link.clone().unwrap_or_else(|| self.network_path(&name));
            self.write_tag_record(cx, &name, &link, &spec.tags).await?;
        }
        let records = self.tag_records(std::slice::from_ref(&name)).await?;
        Ok(self.vpc_observed(&network, &records))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let name = network_name(id);
        self.delete_rule(cx, &format!("{name}{TAGS_SUFFIX}")).await?;
        let sent = self.networks.delete().set_project(&self.project).set_network(name).send().await;
        self.run_delete(cx, &format!("deleting network `{name}`"), sent).await
    }
}

#[async_trait::async_trait]
impl Api<kind::Subnet> for Gcp {
    async fn create(&self, cx: &OpContext, spec: &SubnetSpec) -> ProviderResult<SubnetObserved> {
        self.check_region(&spec.region)?;
        // The zone must exist: VMs of the subnet are placed in it.
        self.zone_name(cx, spec.zone).await?;
        let network = self.get_network(&spec.vpc_id).await?;
        let payload = Payload::new(&spec.tags).with("zone", spec.zone.to_string());
        let mut s = Subnetwork::default();
        s.name = Some(spec.name.clone());
        s.network = network.self_link.clone().or_else(|| Some(self.network_path(network_name(&spec.vpc_id))));
        s.ip_cidr_range = Some(spec.cidr.clone());
        s.private_ip_google_access = Some(!spec.public);
        s.description = Some(labels::to_description(&payload));
        let what = format!("creating subnetwork `{}`", spec.name);
        self.insert(cx, &what, &["subnetwork", &self.project, &spec.region, &spec.name], |id| {
            self.subnetworks
                .insert()
                .set_project(&self.project)
                .set_region(&spec.region)
                .set_request_id(id)
                .set_body(s)
                .send()
        })
        .await?;
        let id = format!("projects/{}/regions/{}/subnetworks/{}", self.project, spec.region, spec.name);
        let created = self.get_subnet(&id).await?;
        self.subnet_observed(cx, &created, &BTreeMap::new()).await
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<SubnetObserved>> {
        let filter = match sel {
            Selector::Ids(ids) if ids.is_empty() => return Ok(Vec::new()),
            Selector::Ids(ids) => Some(names_filter(
                &ids.iter().filter_map(|i| subnet_parts(i).map(|(_, n)| n.to_string())).collect::<Vec<_>>(),
                "",
            )),
            _ => None,
        };
        let subnets = all_pages(|token| {
            let req = self.subnetworks.list().set_project(&self.project).set_region(&self.region).set_page_token(token);
            let req = match &filter {
                Some(f) => req.set_filter(f.clone()),
                None => req,
            };
            async move { req.send().await.map(|p| (p.items, p.next_page_token)) }
        })
        .await
        .map_err(|e| error::api(format!("listing the subnetworks of `{}`", self.region), e))?;
        let names: Vec<String> = subnets.iter().filter_map(|s| s.name.clone()).collect();
        let records = if names.is_empty() { BTreeMap::new() } else { self.tag_records(&names).await? };
        let mut out = Vec::new();
        for s in &subnets {
            let observed = self.subnet_observed(cx, s, &records).await?;
            if selected(sel, &observed.id, Some(&Payload::new(&observed.tags))) {
                out.push(observed);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &SubnetSpec) -> ProviderResult<SubnetObserved> {
        let current = self.get_subnet(id).await?;
        let sname = current.name.clone().unwrap_or_default();
        let records = self.tag_records(std::slice::from_ref(&sname)).await?;
        let observed = self.subnet_observed(cx, &current, &records).await?;
        let what = format!("subnetwork `{}`", observed.name);
        immutable(&what, "cidr", &observed.cidr, &spec.cidr)?;
        immutable(&what, "zone", &observed.zone, &spec.zone)?;
        if observed.tags != spec.tags {
            let network = current.network.clone().unwrap_or_default();
            self.write_tag_record(cx, &sname, &network, &spec.tags).await?;
        }
        if observed.public == spec.public {
            let records = self.tag_records(std::slice::from_ref(&sname)).await?;
            return self.subnet_observed(cx, &current, &records).await;
        }
        let (region, name) = subnet_parts(id).unwrap_or((&self.region, id));
        let what = format!("setting Private Google Access of subnetwork `{name}`");
        let mut body = SubnetworksSetPrivateIpGoogleAccessRequest::default();
        body.private_ip_google_access = Some(!spec.public);
        let sent = self
            .subnetworks
            .set_private_ip_google_access()
            .set_project(&self.project)
            .set_region(region)
            .set_subnetwork(name)
            .set_body(body)
            .send()
            .await;
        self.run_op(cx, &what, sent).await?;
        let updated = self.get_subnet(id).await?;
        let records = self.tag_records(std::slice::from_ref(&sname)).await?;
        self.subnet_observed(cx, &updated, &records).await
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let Some((region, name)) = subnet_parts(id) else {
            return Ok(());
        };
        self.delete_rule(cx, &format!("{name}{TAGS_SUFFIX}")).await?;
        let sent =
            self.subnetworks.delete().set_project(&self.project).set_region(region).set_subnetwork(name).send().await;
        self.run_delete(cx, &format!("deleting subnetwork `{name}`"), sent).await
    }
}

#[async_trait::async_trait]
impl Api<kind::Firewall> for Gcp {
    async fn create(&self, cx: &OpContext, spec: &FirewallSpec) -> ProviderResult<FirewallObserved> {
        self.check_region(&spec.region)?;
        let network = self.get_network(&spec.vpc_id).await?;
        let link = network.self_link.clone().unwrap_or_else(|| self.network_path(network_name(&spec.vpc_id)));
        let payload = Payload::new(&spec.tags).with("firewall", &spec.name).with("region", &spec.region);
        for (_, rule) in desired_rules(spec, &link, &payload)? {
            self.insert_rule(cx, rule).await?;
        }
        let rules = self.firewall_rules(std::slice::from_ref(&spec.name)).await?;
        Ok(self.firewall_observed(&spec.name, rules.get(&spec.name).map(Vec::as_slice).unwrap_or_default()))
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<FirewallObserved>> {
        let names: Vec<String> = match sel {
            Selector::Ids(ids) if ids.is_empty() => return Ok(Vec::new()),
            Selector::Ids(ids) => ids.clone(),
            _ => Vec::new(),
        };
        let groups = self.firewall_rules(&names).await?;
        Ok(groups
            .iter()
            .filter(|(name, rules)| {
                let payload = rules.iter().find_map(|r| labels::from_description(r.description.as_deref()));
                selected(sel, name, payload.as_ref())
            })
            .map(|(name, rules)| self.firewall_observed(name, rules))
            .collect())
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &FirewallSpec) -> ProviderResult<FirewallObserved> {
        let groups = self.firewall_rules(&[id.to_string()]).await?;
        let current =
            groups.get(id).ok_or_else(|| ProviderError::not_found(format!("firewall `{id}` does not exist")))?;
        let observed = self.firewall_observed(id, current);
        immutable(&format!("firewall `{id}`"), "vpc", &network_name(&observed.vpc_id), &network_name(&spec.vpc_id))?;
        let link = current.first().and_then(|r| r.network.clone()).unwrap_or_default();
        let payload = Payload::new(&spec.tags).with("firewall", id).with("region", &spec.region);
        let mut wanted = desired_rules(&FirewallSpec { name: id.to_string(), ..spec.clone() }, &link, &payload)?;
        let description = labels::to_description(&payload);
        for rule in current {
            let name = rule.name.clone().unwrap_or_default();
            match wanted.remove(&name) {
                None => self.delete_rule(cx, &name).await?,
                Some(want) if !same_rule(rule, &want) => {
                    // Changed out of band (drift): put the whole rule back.
                    let what = format!("restoring firewall rule `{name}`");
                    let sent = self
                        .firewalls
                        .update()
                        .set_project(&self.project)
                        .set_firewall(&name)
                        .set_body(want)
                        .send()
                        .await;
                    self.run_op(cx, &what, sent).await?;
                }
                Some(_) if rule.description.as_deref() != Some(description.as_str()) => {
                    // Same rule, new tags: patch its description only.
                    let mut patch = Firewall::default();
                    patch.description = Some(description.clone());
                    let what = format!("updating the tags of firewall rule `{name}`");
                    let sent = self
                        .firewalls
                        .patch()
                        .set_project(&self.project)
                        .set_firewall(&name)
                        .set_body(patch)
                        .send()
                        .await;
                    self.run_op(cx, &what, sent).await?;
                }
                Some(_) => {}
            }
        }
        for (_, rule) in wanted {
            self.insert_rule(cx, rule).await?;
        }
        let rules = self.firewall_rules(&[id.to_string()]).await?;
        Ok(self.firewall_observed(id, rules.get(id).map(Vec::as_slice).unwrap_or_default()))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let groups = self.firewall_rules(&[id.to_string()]).await?;
        for rule in groups.get(id).map(Vec::as_slice).unwrap_or_default() {
            self.delete_rule(cx, rule.name.as_deref().unwrap_or_default()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn rule(protocol: Protocol, from: u16, to: u16, peer: RuleSource) -> RuleSpec {
        RuleSpec { protocol, from_port: from, to_port: to, peer }
    }

    #[test]
    fn rules_round_trip_through_gcp_shapes() {
        let spec = FirewallSpec {
            name: "web-fw".into(),
            region: "europe-west1".into(),
            vpc_id: "projects/p/global/networks/net".into(),
            ingress: vec![
                rule(Protocol::Tcp, 443, 443, RuleSource::Cidr("0.0.0.0/0".into())),
                rule(Protocol::Tcp, 5432, 5432, RuleSource::Firewall("app-fw".into())),
                rule(Protocol::Udp, 8000, 9000, RuleSource::Cidr("10.0.0.0/8".into())),
                rule(Protocol::Icmp, 0, 0, RuleSource::Cidr("0.0.0.0/0".into())),
            ],
            egress: vec![rule(Protocol::All, 0, 0, RuleSource::Cidr("0.0.0.0/0".into()))],
            tags: Default::default(),
        };
        let rules = desired_rules(&spec, "projects/p/global/networks/net", &Payload::default()).unwrap();
        assert_eq!(rules.len(), 6);
        assert!(rules.keys().all(|n| n.starts_with("web-fw-") && n.len() <= 63));
        let deny = &rules["web-fw-deny-egress"];
        assert_eq!(deny.priority, Some(DENY_PRIORITY));
        assert!(rule_of(deny).is_none());
        let mut ingress: Vec<RuleSpec> = Vec::new();
        let mut egress: Vec<RuleSpec> = Vec::new();
        for f in rules.values() {
            assert_eq!(f.target_tags, vec!["web-fw".to_string()]);
            match rule_of(f) {
                Some((true, r)) => ingress.push(r),
                Some((false, r)) => egress.push(r),
                None => {}
            }
        }
        ingress.sort();
        let mut expected = spec.ingress.clone();
        expected.sort();
        assert_eq!(ingress, expected);
        assert_eq!(egress, spec.egress);
    }

    #[test]
    fn egress_to_a_firewall_is_refused() {
        let spec = FirewallSpec {
            name: "db-fw".into(),
            region: "europe-west1".into(),
            vpc_id: "net".into(),
            ingress: vec![],
            egress: vec![rule(Protocol::Tcp, 443, 443, RuleSource::Firewall("app".into()))],
            tags: Default::default(),
        };
        let e = desired_rules(&spec, "net", &Payload::default()).unwrap_err();
        assert!(e.message().contains("egress rules can only name address ranges"));
    }

    #[test]
    fn ids_and_filters() {
        assert_eq!(subnet_parts("projects/p/regions/europe-west1/subnetworks/a"), Some(("europe-west1", "a")));
        assert_eq!(subnet_parts("a"), None);
        assert_eq!(network_name("projects/p/global/networks/net"), "net");
        assert_eq!(names_filter(&["a".into(), "b.c".into()], "-.*"), "name eq \"(a|b\\.c)-.*\"");
        assert_ne!(
            rule_hash('i', &rule(Protocol::Tcp, 80, 80, RuleSource::Cidr("0.0.0.0/0".into()))),
            rule_hash('i', &rule(Protocol::Tcp, 81, 81, RuleSource::Cidr("0.0.0.0/0".into())))
        );
    }
}
