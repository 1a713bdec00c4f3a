//! `Network`: VPCs, logical subnets and cloud firewalls.
//!
//! - A VPC is a DigitalOcean VPC; its labels live in its description (DO VPCs have no tags).
//! - A subnet is a logical reservation of a block inside a VPC (DigitalOcean has one range per
//!   VPC and no subnets). Its id is `<vpc uuid>/<cidr>`; its zone, public flag, name and labels
//!   are kept as record tags (`kxr:sn:...`) attached to nothing, so reads work from any process.
//! - A firewall is a DigitalOcean cloud firewall that targets its own tag `kxfw:<uuid>`: droplets
//!   attached to it carry that tag, so new droplets join by being tagged. Rules naming another
//!   firewall use that firewall's tag as source. Rule changes are sent as diffs (add / remove
//!   rules). Its VPC, region and labels are record tags (`kxr:fw:...`).

use std::collections::{BTreeMap, BTreeSet};

use konstacks_core::cidr::Cidr;
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::kinds as kind;
use konstacks_core::model::Protocol;
use konstacks_core::provider::{Api, KindApis, ProviderResult};
use konstacks_core::spec::{
    FirewallObserved, FirewallSpec, RuleSource, RuleSpec, Selector, SubnetObserved, SubnetSpec, Tags, VpcObserved,
    VpcSpec, TAG_PATH, TAG_STACK,
};
use reqwest::Method;

use super::catalog::{zone_names, ZONES_PER_REGION};
use super::labels::{self, Record, RecordFields, RecordKind};
use super::types::{
    DatabaseFirewall, DatabaseList, DropletList, Firewall, FirewallCreate, FirewallEnvelope, FirewallList,
    FirewallRules, FirewallTags, InboundRule, OutboundRule, RuleTarget, Vpc, VpcCreate, VpcEnvelope, VpcList, VpcPatch,
};
use super::{conflict, immutable, invalid, stack_of, ApiError, DigitalOcean};

/// Records grouped by (kind, key): their fields.
pub(crate) type Records = BTreeMap<(RecordKind, String), BTreeSet<String>>;

fn valid_name(name: &str, first_alnum: bool) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && (!first_alnum || name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()))
}

fn vpc_observed(v: &Vpc) -> VpcObserved {
    VpcObserved {
        id: v.id.clone(),
        name: v.name.clone(),
        region: v.region.clone(),
        cidr: v.ip_range.clone(),
        tags: labels::vpc_labels(&v.description, &v.name),
    }
}

fn selected(sel: &Selector, id: &str, tags: &Tags) -> bool {
    match sel {
        Selector::Ids(ids) => ids.iter().any(|i| i == id),
        Selector::Stack(s) => tags.get(TAG_STACK) == Some(s),
        _ => false,
    }
}

// ---- firewall rules <-> DigitalOcean rules ----

/// One (direction, protocol, ports, peer) of a DigitalOcean firewall, the unit rules are
/// compared and changed in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Atom {
    inbound: bool,
    protocol: String,
    ports: String,
    peer: Peer,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    Address(String),
    Tag(String),
    Droplet(u64),
    LoadBalancer(String),
    Kubernetes(String),
}

fn peer_of(source: &RuleSource) -> ProviderResult<Peer> {
    Ok(match source {
        RuleSource::Firewall(id) => Peer::Tag(labels::firewall_tag(id)),
        RuleSource::Cidr(c) => {
            if let Some(t) = c.strip_prefix("tag:") {
                Peer::Tag(t.to_string())
            } else if let Some(d) = c.strip_prefix("droplet:") {
                Peer::Droplet(d.parse().map_err(|_| invalid(format!("rule peer `{c}` names no droplet id")))?)
            } else if let Some(l) = c.strip_prefix("load_balancer:") {
                Peer::LoadBalancer(l.to_string())
            } else if let Some(k) = c.strip_prefix("kubernetes:") {
                Peer::Kubernetes(k.to_string())
            } else {
                Peer::Address(c.clone())
            }
        }
    })
}

fn source_of(peer: &Peer) -> RuleSource {
    match peer {
        Peer::Address(a) => RuleSource::Cidr(a.clone()),
        Peer::Tag(t) => match labels::firewall_of(t) {
            Some(id) => RuleSource::Firewall(id),
            None => RuleSource::Cidr(format!("tag:{t}")),
        },
        Peer::Droplet(d) => RuleSource::Cidr(format!("droplet:{d}")),
        Peer::LoadBalancer(l) => RuleSource::Cidr(format!("load_balancer:{l}")),
        Peer::Kubernetes(k) => RuleSource::Cidr(format!("kubernetes:{k}")),
    }
}

fn ports(from: u16, to: u16) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from}-{to}")
    }
}

fn atoms_of(inbound: bool, rules: &[RuleSpec]) -> ProviderResult<BTreeSet<Atom>> {
    let mut out = BTreeSet::new();
    for r in rules {
        let peer = peer_of(&r.peer)?;
        let mut add = |protocol: &str, ports: String| {
            out.insert(Atom { inbound, protocol: protocol.into(), ports, peer: peer.clone() });
        };
        match r.protocol {
            Protocol::Tcp => add("tcp", ports(r.from_port, r.to_port)),
            Protocol::Udp => add("udp", ports(r.from_port, r.to_port)),
            Protocol::Icmp => add("icmp", "0".into()),
            Protocol::All => {
                add("tcp", "0".into());
                add("udp", "0".into());
                add("icmp", "0".into());
            }
            other => return Err(invalid(format!("protocol {other:?} has no DigitalOcean firewall equivalent"))),
        }
    }
    Ok(out)
}

fn norm_ports(protocol: &str, ports: &str) -> String {
    if protocol == "icmp" || ports.is_empty() || ports == "all" {
        "0".into()
    } else {
        ports.to_string()
    }
}

fn target_peers(t: &RuleTarget) -> Vec<Peer> {
    let mut v: Vec<Peer> = t.addresses.iter().cloned().map(Peer::Address).collect();
    v.extend(t.tags.iter().cloned().map(Peer::Tag));
    v.extend(t.droplet_ids.iter().copied().map(Peer::Droplet));
    v.extend(t.load_balancer_uids.iter().cloned().map(Peer::LoadBalancer));
    v.extend(t.kubernetes_ids.iter().cloned().map(Peer::Kubernetes));
    v
}

/// The atoms of a firewall's rules, without those a load balancer was admitted by (see
/// [`DigitalOcean::admit_load_balancer`]): they belong to the load balancer, so drift does not
/// show them and an update of the firewall's own rules keeps them.
fn atoms_of_firewall(f: &Firewall) -> BTreeSet<Atom> {
    let raw = raw_atoms_of_firewall(f);
    let admitted = admitted(&raw);
    raw.into_iter().filter(|a| !admitted.contains(a)).collect()
}

/// Inbound load balancer atoms beside a Konstacks firewall's tag on the same protocol and ports:
/// what `admit_load_balancer` writes. (A load balancer source added by hand on exactly such a
/// port is counted among them.)
fn admitted(raw: &BTreeSet<Atom>) -> BTreeSet<Atom> {
    let fw_sourced: BTreeSet<(&str, &str)> = raw
        .iter()
        .filter(|a| a.inbound && matches!(&a.peer, Peer::Tag(t) if labels::firewall_of(t).is_some()))
        .map(|a| (a.protocol.as_str(), a.ports.as_str()))
        .collect();
    raw.iter()
        .filter(|a| {
            a.inbound
                && matches!(a.peer, Peer::LoadBalancer(_))
                && fw_sourced.contains(&(a.protocol.as_str(), a.ports.as_str()))
        })
        .cloned()
        .collect()
}

fn raw_atoms_of_firewall(f: &Firewall) -> BTreeSet<Atom> {
    let mut out = BTreeSet::new();
    for r in &f.inbound_rules {
        for peer in target_peers(&r.sources) {
            out.insert(Atom {
                inbound: true,
                protocol: r.protocol.clone(),
                ports: norm_ports(&r.protocol, &r.ports),
                peer,
            });
        }
    }
    for r in &f.outbound_rules {
        for peer in target_peers(&r.destinations) {
            out.insert(Atom {
                inbound: false,
                protocol: r.protocol.clone(),
                ports: norm_ports(&r.protocol, &r.ports),
                peer,
            });
        }
    }
    out
}

/// The trusted sources (type, value) a database gets from a firewall's inbound rules: other
/// firewalls' tags, addresses and droplets. Ports do not apply to DigitalOcean database
/// firewalls: the cluster's own port is the only one open.
pub(crate) fn trusted_sources(f: &Firewall) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = atoms_of_firewall(f)
        .into_iter()
        .filter(|a| a.inbound)
        .filter_map(|a| match a.peer {
            Peer::Tag(t) => Some(("tag".to_string(), t)),
            Peer::Address(a) => Some(("ip_addr".to_string(), a)),
            Peer::Droplet(d) => Some(("droplet".to_string(), d.to_string())),
            Peer::Kubernetes(k) => Some(("k8s".to_string(), k)),
            Peer::LoadBalancer(_) => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn target(peer: &Peer) -> RuleTarget {
    let mut t = RuleTarget::default();
    match peer {
        Peer::Address(a) => t.addresses.push(a.clone()),
        Peer::Tag(x) => t.tags.push(x.clone()),
        Peer::Droplet(d) => t.droplet_ids.push(*d),
        Peer::LoadBalancer(l) => t.load_balancer_uids.push(l.clone()),
        Peer::Kubernetes(k) => t.kubernetes_ids.push(k.clone()),
    }
    t
}

fn rules_of<'a>(atoms: impl IntoIterator<Item = &'a Atom>) -> FirewallRules {
    let mut out = FirewallRules::default();
    for a in atoms {
        if a.inbound {
            out.inbound_rules.push(InboundRule {
                protocol: a.protocol.clone(),
                ports: a.ports.clone(),
                sources: target(&a.peer),
            });
        } else {
            out.outbound_rules.push(OutboundRule {
                protocol: a.protocol.clone(),
                ports: a.ports.clone(),
                destinations: target(&a.peer),
            });
        }
    }
    out
}

/// Konstacks rules of one direction: tcp, udp and icmp on every port for the same peer fold
/// back into one `all` rule.
fn rule_specs(atoms: &BTreeSet<Atom>, inbound: bool) -> Vec<RuleSpec> {
    let mut by_peer: BTreeMap<&Peer, Vec<&Atom>> = BTreeMap::new();
    for a in atoms.iter().filter(|a| a.inbound == inbound) {
        by_peer.entry(&a.peer).or_default().push(a);
    }
    let mut out = Vec::new();
    for (peer, list) in by_peer {
        let every = |p: &str| list.iter().any(|a| a.protocol == p && a.ports == "0");
        let all = every("tcp") && every("udp") && every("icmp");
        if all {
            out.push(RuleSpec { protocol: Protocol::All, from_port: 0, to_port: 0, peer: source_of(peer) });
        }
        for a in list {
            if all && a.ports == "0" {
                continue;
            }
            let protocol = match a.protocol.as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => Protocol::Icmp,
            };
            let (from, to) = match a.ports.split_once('-') {
                Some((f, t)) => (f.parse().unwrap_or(0), t.parse().unwrap_or(0)),
                None => {
                    let p = a.ports.parse().unwrap_or(0);
                    (p, p)
                }
            };
            let (from, to) = if protocol == Protocol::Icmp { (0, 0) } else { (from, to) };
            out.push(RuleSpec { protocol, from_port: from, to_port: to, peer: source_of(peer) });
        }
    }
    out.sort();
    out.dedup();
    out
}

fn firewall_observed(f: &Firewall, fields: Option<&RecordFields>) -> FirewallObserved {
    let atoms = atoms_of_firewall(f);
    let empty = RecordFields::default();
    let fields = fields.unwrap_or(&empty);
    FirewallObserved {
        id: f.id.clone(),
        name: f.name.clone(),
        region: fields.region.clone().unwrap_or_default(),
        vpc_id: fields.vpc.clone().unwrap_or_default(),
        ingress: rule_specs(&atoms, true),
        egress: rule_specs(&atoms, false),
        tags: labels::decode(&fields.labels, Some(&f.name)),
    }
}

fn subnet_observed(key: &str, fields: &RecordFields) -> Option<SubnetObserved> {
    let zone = fields.anchor_zone?;
    let (vpc, cidr_key) = key.split_once(':')?;
    let cidr = labels::cidr_of_key(cidr_key)?;
    let region = fields.region.clone().unwrap_or_default();
    let name = fields.name.clone().unwrap_or_default();
    Some(SubnetObserved {
        id: labels::subnet_id(vpc, &cidr),
        name: name.clone(),
        vpc_id: vpc.to_string(),
        cidr,
        zone,
        zone_name: zone_names(&region).get(usize::from(zone)).cloned().unwrap_or_else(|| format!("{region}-{zone}")),
        region,
        public: fields.public,
        tags: labels::decode(&fields.labels, Some(&name)),
    })
}

/// The record fields describing a subnet spec; the anchor (`z:`) comes separately.
fn subnet_fields(spec: &SubnetSpec) -> ProviderResult<BTreeSet<String>> {
    let mut f = BTreeSet::from([labels::name_field(&spec.name), labels::region_field(&spec.region)]);
    if spec.public {
        f.insert("pub".into());
    }
    for l in labels::encode(&spec.tags, Some(&spec.name)).map_err(invalid)? {
        f.insert(labels::label_field(&l));
    }
    Ok(f)
}

fn firewall_fields(spec: &FirewallSpec) -> ProviderResult<BTreeSet<String>> {
    let mut f = BTreeSet::from([labels::vpc_field(&spec.vpc_id), labels::region_field(&spec.region)]);
    for l in labels::encode(&spec.tags, Some(&spec.name)).map_err(invalid)? {
        f.insert(labels::label_field(&l));
    }
    Ok(f)
}

pub(crate) fn check_lengths(kind: RecordKind, key: &str, fields: &BTreeSet<String>) -> ProviderResult<()> {
    for field in fields {
        let tag = Record { kind, key: key.to_string(), field: field.clone() }.tag();
        if tag.len() > labels::MAX_TAG_LEN {
            return Err(invalid(format!(
                "the record tag `{tag}` would have {} characters; DigitalOcean allows {} (shorten names, paths or tags)",
                tag.len(),
                labels::MAX_TAG_LEN
            )));
        }
    }
    Ok(())
}

impl DigitalOcean {
    pub(crate) async fn records(&self, cx: &OpContext) -> ProviderResult<Records> {
        let mut out: Records = BTreeMap::new();
        for t in self.all_tags(cx).await? {
            if let Some(r) = Record::parse(&t) {
                out.entry((r.kind, r.key)).or_default().insert(r.field);
            }
        }
        Ok(out)
    }

    /// Bring the record fields of one object from `current` to `desired` (added first).
    pub(crate) async fn sync_record(
        &self,
        cx: &OpContext,
        kind: RecordKind,
        key: &str,
        current: &BTreeSet<String>,
        desired: &BTreeSet<String>,
    ) -> ProviderResult<()> {
        for f in desired.difference(current) {
            self.ensure_tag(cx, &Record { kind, key: key.into(), field: f.clone() }.tag()).await?;
        }
        for f in current.difference(desired) {
            self.delete_tag(cx, &Record { kind, key: key.into(), field: f.clone() }.tag()).await?;
        }
        Ok(())
    }

    async fn get_vpc(&self, cx: &OpContext, id: &str) -> Result<Vpc, ApiError> {
        let v: VpcEnvelope = self.client.get(cx, &format!("/v2/vpcs/{id}"), &[]).await?;
        Ok(v.vpc)
    }

    /// The VPC a subnet or firewall refers to: it must exist in `region`, else NotFound as a
    /// regional API answers.
    async fn referenced_vpc(&self, cx: &OpContext, id: &str, region: &str) -> ProviderResult<Vpc> {
        let missing = || {
            ProviderError::not_found(format!(
                "VPC `{id}` does not exist in region `{region}` (one created moments ago may not be visible yet; retry shortly)"
            ))
        };
        match self.get_vpc(cx, id).await {
            Ok(v) if v.region == region => Ok(v),
            Ok(_) => Err(missing()),
            Err(e) if e.is_not_found() => Err(missing()),
            Err(e) => Err(e.into_provider(format!("reading VPC `{id}`"))),
        }
    }

    async fn get_firewall(&self, cx: &OpContext, id: &str) -> Result<Firewall, ApiError> {
        let f: FirewallEnvelope = self.client.get(cx, &format!("/v2/firewalls/{id}"), &[]).await?;
        Ok(f.firewall)
    }

    pub(crate) async fn all_firewalls(&self, cx: &OpContext) -> ProviderResult<Vec<Firewall>> {
        self.client
            .list::<FirewallList>(cx, "/v2/firewalls", &[])
            .await
            .map_err(|e| e.into_provider("listing firewalls"))
    }

    /// A firewall's record fields.
    fn firewall_fields_of(records: &Records, id: &str) -> Option<RecordFields> {
        records
            .get(&(RecordKind::Firewall, labels::firewall_record_key(id)))
            .map(|f| RecordFields::read(f.iter().map(String::as_str)))
    }

    /// Make sure a firewall targets its own tag (repairs one interrupted right after creation).
    pub(crate) async fn ensure_own_tag(&self, cx: &OpContext, f: &Firewall) -> ProviderResult<()> {
        let own = labels::firewall_tag(&f.id);
        if f.tags.contains(&own) {
            return Ok(());
        }
        self.ensure_tag(cx, &own).await?;
        self.client
            .send_empty(
                cx,
                Method::POST,
                &format!("/v2/firewalls/{}/tags", f.id),
                Some(&FirewallTags { tags: vec![own] }),
            )
            .await
            .map_err(|e| e.into_provider(format!("tagging firewall `{}` with its own tag", f.id)))
    }

    /// A firewall another resource refers to (an attachment or a rule peer): NotFound when it
    /// does not exist.
    pub(crate) async fn referenced_firewall(&self, cx: &OpContext, id: &str) -> ProviderResult<Firewall> {
        match self.get_firewall(cx, id).await {
            Ok(f) => Ok(f),
            Err(e) if e.is_not_found() => Err(ProviderError::not_found(format!(
                "firewall `{id}` does not exist (one created moments ago may not be visible yet; retry shortly)"
            ))),
            Err(e) => Err(e.into_provider(format!("reading firewall `{id}`"))),
        }
    }

    async fn converge_firewall(
        &self,
        cx: &OpContext,
        current: &Firewall,
        current_fields: &BTreeSet<String>,
        spec: &FirewallSpec,
    ) -> ProviderResult<FirewallObserved> {
        let id = current.id.clone();
        let mut want = atoms_of(true, &spec.ingress)?;
        want.extend(atoms_of(false, &spec.egress)?);
        let have = atoms_of_firewall(current);
        for a in want.difference(&have) {
            if let Peer::Tag(t) = &a.peer {
                if let Some(peer) = labels::firewall_of(t) {
                    if peer != id {
                        self.referenced_firewall(cx, &peer).await?;
                    }
                }
                self.ensure_tag(cx, t).await?;
            }
        }
        let add: Vec<&Atom> = want.difference(&have).collect();
        let remove: Vec<&Atom> = have.difference(&want).collect();
        let path = format!("/v2/firewalls/{id}/rules");
        if !add.is_empty() {
            self.client
                .send_empty(cx, Method::POST, &path, Some(&rules_of(add)))
                .await
                .map_err(|e| e.into_provider(format!("adding rules to firewall `{id}`")))?;
        }
        if !remove.is_empty() {
            self.client
                .send_empty(cx, Method::DELETE, &path, Some(&rules_of(remove)))
                .await
                .map_err(|e| e.into_provider(format!("removing rules from firewall `{id}`")))?;
        }
        self.ensure_own_tag(cx, current).await?;
        let desired = firewall_fields(spec)?;
        let key = labels::firewall_record_key(&id);
        check_lengths(RecordKind::Firewall, &key, &desired)?;
        self.sync_record(cx, RecordKind::Firewall, &key, current_fields, &desired).await?;
        self.refresh_database_firewalls(cx, &id, &spec.tags).await?;
        let now = self.get_firewall(cx, &id).await.map_err(|e| e.into_provider(format!("reading firewall `{id}`")))?;
        Ok(firewall_observed(&now, Some(&RecordFields::read(desired.iter().map(String::as_str)))))
    }

    /// Let the load balancer `lb` through every firewall rule whose source is one of the
    /// firewalls attached to it (`firewall_ids`): DigitalOcean load balancers are not droplets,
    /// so a rule "from the load balancer's firewall" must name the load balancer
    /// (`load_balancer_uids`) to let its traffic reach the droplets. Rules it was let through
    /// that no longer apply are removed; `firewall_ids` empty removes them all.
    pub(crate) async fn admit_load_balancer(
        &self,
        cx: &OpContext,
        lb: &str,
        firewall_ids: &[String],
    ) -> ProviderResult<()> {
        let sources: BTreeSet<String> = firewall_ids.iter().map(|f| labels::firewall_tag(f)).collect();
        let me = Peer::LoadBalancer(lb.to_string());
        for f in self.all_firewalls(cx).await? {
            let raw = raw_atoms_of_firewall(&f);
            let want: BTreeSet<Atom> = raw
                .iter()
                .filter(|a| a.inbound && matches!(&a.peer, Peer::Tag(t) if sources.contains(t)))
                .map(|a| Atom { peer: me.clone(), ..a.clone() })
                .collect();
            let have: BTreeSet<Atom> = admitted(&raw).into_iter().filter(|a| a.peer == me).collect();
            let path = format!("/v2/firewalls/{}/rules", f.id);
            let add: Vec<&Atom> = want.difference(&have).collect();
            if !add.is_empty() {
                self.client.send_empty(cx, Method::POST, &path, Some(&rules_of(add))).await.map_err(|e| {
                    e.into_provider(format!("letting load balancer `{lb}` through firewall `{}`", f.id))
                })?;
            }
            let remove: Vec<&Atom> = have.difference(&want).collect();
            if !remove.is_empty() {
                match self.client.send_empty(cx, Method::DELETE, &path, Some(&rules_of(remove))).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        return Err(e.into_provider(format!(
                            "removing load balancer `{lb}` from the rules of firewall `{}`",
                            f.id
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    /// One logical subnet: NotFound when it does not exist.
    pub(crate) async fn read_subnet(&self, cx: &OpContext, id: &str) -> ProviderResult<SubnetObserved> {
        let found = self.api::<kind::Subnet>().read_many(cx, &Selector::Ids(vec![id.to_string()])).await?;
        found.into_iter().next().ok_or_else(|| {
            ProviderError::not_found(format!(
                "subnet `{id}` does not exist (one created moments ago may not be visible yet; retry shortly)"
            ))
        })
    }

    /// Database clusters of the firewall's stack that trust it get its new sources.
    async fn refresh_database_firewalls(&self, cx: &OpContext, fw_id: &str, tags: &Tags) -> ProviderResult<()> {
        let stack = stack_of(tags, cx);
        let list: DatabaseList = self
            .client
            .get(cx, "/v2/databases", &[("tag_name", labels::stack_tag(&stack))])
            .await
            .map_err(|e| e.into_provider("listing database clusters"))?;
        for db in list.databases {
            let path = format!("/v2/databases/{}/firewall", db.id);
            let rules: DatabaseFirewall =
                self.client.get(cx, &path, &[]).await.map_err(|e| e.into_provider(format!("reading {path}")))?;
            let attached: BTreeSet<String> =
                rules.rules.iter().filter_map(|r| labels::firewall_of(&r.description)).collect::<BTreeSet<_>>();
            if !attached.contains(fw_id) {
                continue;
            }
            let ids: Vec<String> = attached.into_iter().collect();
            self.put_database_firewall(cx, &db.id, &ids).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Api<kind::Vpc> for DigitalOcean {
    async fn create(&self, cx: &OpContext, spec: &VpcSpec) -> ProviderResult<VpcObserved> {
        self.check_region(&spec.region)?;
        if !valid_name(&spec.name, false) {
            return Err(invalid(format!(
                "VPC name `{}` is not valid on DigitalOcean; use letters, digits, '-' and '.'",
                spec.name
            )));
        }
        let cidr: Cidr = spec.cidr.parse().map_err(|e| invalid(format!("VPC block `{}`: {e}", spec.cidr)))?;
        if !(16..=28).contains(&cidr.prefix()) {
            return Err(invalid(format!(
                "VPC block {cidr}: DigitalOcean VPC ranges must be between /16 and /28; use for example a /16"
            )));
        }
        let description = labels::vpc_description(&spec.tags, &spec.name).map_err(invalid)?;
        let body =
            VpcCreate { name: spec.name.clone(), region: spec.region.clone(), ip_range: cidr.to_string(), description };
        let v: VpcEnvelope = self
            .client
            .send(cx, Method::POST, "/v2/vpcs", &body)
            .await
            .map_err(|e| e.into_provider(format!("creating VPC `{}`", spec.name)))?;
        Ok(vpc_observed(&v.vpc))
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<VpcObserved>> {
        let all =
            self.client.list::<VpcList>(cx, "/v2/vpcs", &[]).await.map_err(|e| e.into_provider("listing VPCs"))?;
        Ok(all.iter().map(vpc_observed).filter(|v| selected(sel, &v.id, &v.tags)).collect())
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &VpcSpec) -> ProviderResult<VpcObserved> {
        let cur = self.get_vpc(cx, id).await.map_err(|e| e.into_provider(format!("reading VPC `{id}`")))?;
        let what = format!("VPC `{id}`");
        immutable(&what, "region", &cur.region, &spec.region)?;
        immutable(&what, "cidr", &cur.ip_range, &spec.cidr)?;
        let description = labels::vpc_description(&spec.tags, &spec.name).map_err(invalid)?;
        let body = VpcPatch { name: spec.name.clone(), description };
        let v: VpcEnvelope = self
            .client
            .send(cx, Method::PATCH, &format!("/v2/vpcs/{id}"), &body)
            .await
            .map_err(|e| e.into_provider(format!("updating VPC `{id}`")))?;
        Ok(vpc_observed(&v.vpc))
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.get_vpc(cx, id).await.map_err(|e| e.into_provider(format!("reading VPC `{id}`")))?;
        let records = self.records(cx).await?;
        let mut deps = Vec::new();
        for ((kind, key), fields) in &records {
            let f = RecordFields::read(fields.iter().map(String::as_str));
            match kind {
                RecordKind::Subnet if f.anchor_zone.is_some() => {
                    if let Some(s) = subnet_observed(key, &f).filter(|s| s.vpc_id == id) {
                        deps.push(format!("subnet {}", s.id));
                    }
                }
                RecordKind::Firewall if f.vpc.as_deref() == Some(id) => deps.push(format!("firewall {key}")),
                _ => {}
            }
        }
        if !deps.is_empty() {
            return Err(conflict(format!(
                "VPC `{id}` has dependencies and cannot be deleted: {}; delete them first",
                deps.join(", ")
            )));
        }
        match self.client.send_empty::<()>(cx, Method::DELETE, &format!("/v2/vpcs/{id}"), None).await {
            Ok(()) => Ok(()),
            // DigitalOcean answers 403 for a VPC that still has members (or is a default VPC).
            Err(e) if e.status() == Some(403) && e.api_message().is_some_and(|m| m.contains("member")) => {
                let m = e.api_message().unwrap_or_default().to_string();
                Err(ProviderError::new(
                    ErrorKind::Conflict,
                    format!("VPC `{id}` still has members and cannot be deleted yet ({m}); delete them first"),
                )
                .with_source(e))
            }
            Err(e) => Err(e.into_provider(format!("deleting VPC `{id}`"))),
        }
    }
}

#[async_trait::async_trait]
impl Api<kind::Subnet> for DigitalOcean {
    async fn create(&self, cx: &OpContext, spec: &SubnetSpec) -> ProviderResult<SubnetObserved> {
        self.check_region(&spec.region)?;
        if spec.zone >= ZONES_PER_REGION {
            return Err(invalid(format!(
                "zone index {} does not exist: DigitalOcean regions have {ZONES_PER_REGION} synthetic zones",
                spec.zone
            )));
        }
        let cidr: Cidr = spec.cidr.parse().map_err(|e| invalid(format!("subnet block `{}`: {e}", spec.cidr)))?;
        let vpc = self.referenced_vpc(cx, &spec.vpc_id, &spec.region).await?;
        let range: Cidr = vpc.ip_range.parse().map_err(|e| invalid(format!("VPC range `{}`: {e}", vpc.ip_range)))?;
        if !range.contains(&cidr) {
            return Err(invalid(format!(
                "subnet block {cidr} is outside the range {range} of VPC `{}`; pick a block inside it",
                spec.vpc_id
            )));
        }
        let key = labels::subnet_record_key(&spec.vpc_id, &cidr.to_string());
        let desired = subnet_fields(spec)?;
        let anchor = format!("z:{}", spec.zone);
        let mut all = desired.clone();
        all.insert(anchor.clone());
        check_lengths(RecordKind::Subnet, &key, &all)?;
        let records = self.records(cx).await?;
        for ((kind, other_key), fields) in &records {
            let f = RecordFields::read(fields.iter().map(String::as_str));
            let Some(other) = subnet_observed(other_key, &f).filter(|_| *kind == RecordKind::Subnet) else {
                continue;
            };
            if other.vpc_id != spec.vpc_id {
                continue;
            }
            let same_owner = other.tags.get(TAG_PATH) == spec.tags.get(TAG_PATH)
                && other.tags.get(TAG_STACK) == spec.tags.get(TAG_STACK);
            if *other_key == key && same_owner && other.zone == spec.zone {
                // Created before (an interrupted run): bring it to the spec.
                self.sync_record(cx, RecordKind::Subnet, &key, fields, &all).await?;
                return Ok(subnet_observed(&key, &RecordFields::read(all.iter().map(String::as_str))).unwrap_or(other));
            }
            let other_cidr: Cidr = other.cidr.parse().map_err(|e| invalid(format!("subnet block: {e}")))?;
            if other_cidr.overlaps(&cidr) {
                return Err(conflict(format!(
                    "subnet block {cidr} overlaps {} of subnet `{}` in VPC `{}`; pick a free block",
                    other.cidr, other.id, spec.vpc_id
                )));
            }
        }
        // Fields first, the anchor last: a record becomes visible only once complete.
        self.sync_record(cx, RecordKind::Subnet, &key, &BTreeSet::new(), &desired).await?;
        self.ensure_tag(cx, &Record { kind: RecordKind::Subnet, key: key.clone(), field: anchor }.tag()).await?;
        subnet_observed(&key, &RecordFields::read(all.iter().map(String::as_str)))
            .ok_or_else(|| ProviderError::new(ErrorKind::Other, "internal: subnet record did not read back"))
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<SubnetObserved>> {
        let records = self.records(cx).await?;
        let vpcs =
            self.client.list::<VpcList>(cx, "/v2/vpcs", &[]).await.map_err(|e| e.into_provider("listing VPCs"))?;
        let live: BTreeSet<&str> = vpcs.iter().map(|v| v.id.as_str()).collect();
        Ok(records
            .iter()
            .filter(|((kind, _), _)| *kind == RecordKind::Subnet)
            .filter_map(|((_, key), fields)| {
                subnet_observed(key, &RecordFields::read(fields.iter().map(String::as_str)))
            })
            .filter(|s| live.contains(s.vpc_id.as_str()) && selected(sel, &s.id, &s.tags))
            .collect())
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &SubnetSpec) -> ProviderResult<SubnetObserved> {
        let missing = || ProviderError::not_found(format!("subnet `{id}` does not exist"));
        let (vpc, cidr) = labels::parse_subnet_id(id).ok_or_else(missing)?;
        let key = labels::subnet_record_key(&vpc, &cidr);
        let records = self.records(cx).await?;
        let fields = records.get(&(RecordKind::Subnet, key.clone())).cloned().unwrap_or_default();
        let cur = subnet_observed(&key, &RecordFields::read(fields.iter().map(String::as_str))).ok_or_else(missing)?;
        let what = format!("subnet `{id}`");
        immutable(&what, "region", &cur.region, &spec.region)?;
        immutable(&what, "vpc_id", &cur.vpc_id, &spec.vpc_id)?;
        immutable(&what, "cidr", &cur.cidr, &spec.cidr)?;
        immutable(&what, "zone", &cur.zone, &spec.zone)?;
        let mut all = subnet_fields(spec)?;
        all.insert(format!("z:{}", cur.zone));
        check_lengths(RecordKind::Subnet, &key, &all)?;
        self.sync_record(cx, RecordKind::Subnet, &key, &fields, &all).await?;
        subnet_observed(&key, &RecordFields::read(all.iter().map(String::as_str))).ok_or_else(missing)
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let missing = || ProviderError::not_found(format!("subnet `{id}` does not exist"));
        let (vpc, cidr) = labels::parse_subnet_id(id).ok_or_else(missing)?;
        let key = labels::subnet_record_key(&vpc, &cidr);
        let records = self.records(cx).await?;
        let fields = records.get(&(RecordKind::Subnet, key.clone())).cloned().unwrap_or_default();
        let f = RecordFields::read(fields.iter().map(String::as_str));
        let zone = f.anchor_zone.ok_or_else(missing)?;
        let member = labels::subnet_tag(&vpc, &cidr);
        let droplets = self
            .client
            .list::<DropletList>(cx, "/v2/droplets", &[("tag_name", member.clone())])
            .await
            .map_err(|e| e.into_provider("listing the subnet's droplets"))?;
        let dbs: DatabaseList = self
            .client
            .get(cx, "/v2/databases", &[("tag_name", member.clone())])
            .await
            .map_err(|e| e.into_provider("listing the subnet's database clusters"))?;
        let mut deps: Vec<String> = droplets.iter().map(|d| format!("droplet {}", d.id)).collect();
        deps.extend(dbs.databases.iter().map(|d| format!("database {}", d.id)));
        if !deps.is_empty() {
            return Err(conflict(format!(
                "subnet `{id}` is in use and cannot be deleted: {}; delete them first",
                deps.join(", ")
            )));
        }
        // The anchor first: the subnet disappears at once, the rest is cleanup.
        self.delete_tag(cx, &Record { kind: RecordKind::Subnet, key: key.clone(), field: format!("z:{zone}") }.tag())
            .await?;
        for field in fields.iter().filter(|f| !f.starts_with("z:")) {
            self.delete_tag(cx, &Record { kind: RecordKind::Subnet, key: key.clone(), field: field.clone() }.tag())
                .await?;
        }
        self.delete_tag(cx, &member).await
    }
}

#[async_trait::async_trait]
impl Api<kind::Firewall> for DigitalOcean {
    async fn create(&self, cx: &OpContext, spec: &FirewallSpec) -> ProviderResult<FirewallObserved> {
        self.check_region(&spec.region)?;
        if !valid_name(&spec.name, true) || spec.name.len() < 2 {
            return Err(invalid(format!(
                "firewall name `{}` is not valid on DigitalOcean; start with a letter or digit, then letters, digits, '.' or '-'",
                spec.name
            )));
        }
        if spec.ingress.is_empty() && spec.egress.is_empty() {
            return Err(invalid(format!(
                "firewall `{}` has no rule; DigitalOcean cloud firewalls need at least one inbound or outbound rule",
                spec.name
            )));
        }
        self.referenced_vpc(cx, &spec.vpc_id, &spec.region).await?;
        let mut atoms = atoms_of(true, &spec.ingress)?;
        atoms.extend(atoms_of(false, &spec.egress)?);
        let fields = firewall_fields(spec)?;
        let records = self.records(cx).await?;
        // A firewall of this name from an interrupted run is completed instead of duplicated.
        if let Some(f) = self.all_firewalls(cx).await?.into_iter().find(|f| f.name == spec.name) {
            let have = Self::firewall_fields_of(&records, &f.id);
            let current: BTreeSet<String> =
                records.get(&(RecordKind::Firewall, labels::firewall_record_key(&f.id))).cloned().unwrap_or_default();
            let ours = match &have {
                None => true,
                Some(h) => {
                    let t = labels::decode(&h.labels, Some(&f.name));
                    t.get(TAG_PATH) == spec.tags.get(TAG_PATH) && t.get(TAG_STACK) == spec.tags.get(TAG_STACK)
                }
            };
            if !ours {
                return Err(ProviderError::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "a firewall named `{}` already exists (`{}`); pick another name or adopt it",
                        spec.name, f.id
                    ),
                ));
            }
            return self.converge_firewall(cx, &f, &current, spec).await;
        }
        for a in &atoms {
            if let Peer::Tag(t) = &a.peer {
                if let Some(peer) = labels::firewall_of(t) {
                    let pf = self.referenced_firewall(cx, &peer).await?;
                    let pv = Self::firewall_fields_of(&records, &pf.id).and_then(|f| f.vpc);
                    if pv.as_deref().is_some_and(|v| v != spec.vpc_id) {
                        return Err(invalid(format!(
                            "rule peer firewall `{peer}` belongs to another VPC than `{}`",
                            spec.vpc_id
                        )));
                    }
                }
                self.ensure_tag(cx, t).await?;
            }
        }
        let rules = rules_of(&atoms);
        let body = FirewallCreate {
            name: spec.name.clone(),
            inbound_rules: rules.inbound_rules,
            outbound_rules: rules.outbound_rules,
            tags: Vec::new(),
        };
        let created: FirewallEnvelope = self
            .client
            .send(cx, Method::POST, "/v2/firewalls", &body)
            .await
            .map_err(|e| e.into_provider(format!("creating firewall `{}`", spec.name)))?;
        let fw = created.firewall;
        self.ensure_own_tag(cx, &fw).await?;
        let key = labels::firewall_record_key(&fw.id);
        check_lengths(RecordKind::Firewall, &key, &fields)?;
        self.sync_record(cx, RecordKind::Firewall, &key, &BTreeSet::new(), &fields).await?;
        Ok(firewall_observed(&fw, Some(&RecordFields::read(fields.iter().map(String::as_str)))))
    }

    async fn read_many(&self, cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<FirewallObserved>> {
        let records = self.records(cx).await?;
        let all = self.all_firewalls(cx).await?;
        Ok(all
            .iter()
            .map(|f| firewall_observed(f, Self::firewall_fields_of(&records, &f.id).as_ref()))
            .filter(|f| selected(sel, &f.id, &f.tags))
            .collect())
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &FirewallSpec) -> ProviderResult<FirewallObserved> {
        let cur = self.get_firewall(cx, id).await.map_err(|e| e.into_provider(format!("reading firewall `{id}`")))?;
        let records = self.records(cx).await?;
        let current: BTreeSet<String> =
            records.get(&(RecordKind::Firewall, labels::firewall_record_key(id))).cloned().unwrap_or_default();
        let have = RecordFields::read(current.iter().map(String::as_str));
        let what = format!("firewall `{id}`");
        immutable(&what, "name", &cur.name, &spec.name)?;
        if let Some(v) = &have.vpc {
            immutable(&what, "vpc_id", v, &spec.vpc_id)?;
        }
        if let Some(r) = &have.region {
            immutable(&what, "region", r, &spec.region)?;
        }
        self.converge_firewall(cx, &cur, &current, spec).await
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let fw = self.get_firewall(cx, id).await.map_err(|e| e.into_provider(format!("reading firewall `{id}`")))?;
        let own = labels::firewall_tag(id);
        let records = self.records(cx).await?;
        let fields: BTreeSet<String> =
            records.get(&(RecordKind::Firewall, labels::firewall_record_key(id))).cloned().unwrap_or_default();
        let tags = labels::decode(&RecordFields::read(fields.iter().map(String::as_str)).labels, Some(&fw.name));
        let droplets = self
            .client
            .list::<DropletList>(cx, "/v2/droplets", &[("tag_name", own.clone())])
            .await
            .map_err(|e| e.into_provider("listing the firewall's droplets"))?;
        let mut deps: Vec<String> = droplets.iter().map(|d| format!("attached to droplet {}", d.id)).collect();
        for other in self.all_firewalls(cx).await?.iter().filter(|f| f.id != id) {
            if atoms_of_firewall(other).iter().any(|a| a.peer == Peer::Tag(own.clone())) {
                deps.push(format!("referenced by a rule of firewall {}", other.id));
            }
        }
        let stack = stack_of(&tags, cx);
        let dbs: DatabaseList = self
            .client
            .get(cx, "/v2/databases", &[("tag_name", labels::stack_tag(&stack))])
            .await
            .map_err(|e| e.into_provider("listing database clusters"))?;
        for db in dbs.databases {
            let rules: DatabaseFirewall = self
                .client
                .get(cx, &format!("/v2/databases/{}/firewall", db.id), &[])
                .await
                .map_err(|e| e.into_provider("reading a database firewall"))?;
            if rules.rules.iter().any(|r| r.description == own) {
                deps.push(format!("attached to database {}", db.id));
            }
        }
        if !deps.is_empty() {
            return Err(conflict(format!(
                "firewall `{id}` is in use and cannot be deleted: {}; detach or delete those first",
                deps.join(", ")
            )));
        }
        self.client
            .send_empty::<()>(cx, Method::DELETE, &format!("/v2/firewalls/{id}"), None)
            .await
            .map_err(|e| e.into_provider(format!("deleting firewall `{id}`")))?;
        for field in &fields {
            let tag = Record { kind: RecordKind::Firewall, key: labels::firewall_record_key(id), field: field.clone() };
            self.delete_tag(cx, &tag.tag()).await?;
        }
        self.delete_tag(cx, &own).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: Protocol, from: u16, to: u16, peer: RuleSource) -> RuleSpec {
        RuleSpec { protocol, from_port: from, to_port: to, peer }
    }

    #[test]
    fn rules_round_trip_through_do_rules() {
        let anywhere = RuleSource::Cidr("0.0.0.0/0".into());
        let ingress = vec![
            rule(Protocol::Tcp, 22, 22, RuleSource::Cidr("203.0.113.0/24".into())),
            rule(Protocol::Tcp, 443, 443, anywhere.clone()),
            rule(Protocol::Tcp, 5432, 5432, RuleSource::Firewall("fw-1".into())),
            rule(Protocol::Udp, 8000, 9000, anywhere.clone()),
            rule(Protocol::Icmp, 0, 0, anywhere.clone()),
        ];
        let egress = vec![rule(Protocol::All, 0, 0, anywhere)];
        let mut atoms = atoms_of(true, &ingress).unwrap_or_default();
        atoms.extend(atoms_of(false, &egress).unwrap_or_default());
        let r = rules_of(&atoms);
        assert_eq!(r.outbound_rules.len(), 3, "all = tcp + udp + icmp on every port");
        let fw = Firewall {
            inbound_rules: r.inbound_rules.clone(),
            outbound_rules: r.outbound_rules.clone(),
            ..Firewall::default()
        };
        let back = atoms_of_firewall(&fw);
        let mut want = ingress.clone();
        want.sort();
        assert_eq!(rule_specs(&back, true), want);
        assert_eq!(rule_specs(&back, false), egress);
        assert!(r.inbound_rules.iter().any(|i| i.sources.tags == vec![labels::firewall_tag("fw-1")]));
    }

    #[test]
    fn foreign_sources_are_kept_visible() {
        let fw = Firewall {
            inbound_rules: vec![InboundRule {
                protocol: "tcp".into(),
                ports: "80".into(),
                sources: RuleTarget { droplet_ids: vec![7], tags: vec!["web".into()], ..RuleTarget::default() },
            }],
            ..Firewall::default()
        };
        let specs = rule_specs(&atoms_of_firewall(&fw), true);
        assert_eq!(
            specs.iter().map(|r| r.peer.clone()).collect::<Vec<_>>(),
            [RuleSource::Cidr("droplet:7".into()), RuleSource::Cidr("tag:web".into())]
        );
        // ... and can be sent back to be removed exactly.
        let again = atoms_of(true, &specs).unwrap_or_default();
        assert_eq!(again, atoms_of_firewall(&fw));
    }
}
