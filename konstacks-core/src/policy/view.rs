//! What a rule reads the stack through: [`PolicyContext`] (the stack, its catalogues and the
//! firewall attachments) and [`ResourceView`] (one resource, with typed field access).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::base::cidr::Cidr;
use crate::kind::catalog::{Catalog, RegionInfo};
use crate::kind::{common, Field, Kind, ResourceKind};
use crate::kinds::{firewall, subnet, Database, Firewall, Protocol, Subnet};
use crate::model::placement::Stage;
use crate::synth::{Expr, SynthResource, Synthesized};

// ---------------------------------------------------------------------------------------------
// The context rules read the stack through
// ---------------------------------------------------------------------------------------------

/// A resource of the stack as a rule sees it: the synthesized resource plus its index, with
/// helpers to read literal field values. Dereferences to [`SynthResource`].
#[derive(Debug, Clone, Copy)]
pub struct ResourceView<'a> {
    /// Index in [`Synthesized::resources`] (what [`AttrRef::node`](crate::synth::AttrRef::node) points to).
    pub index: usize,
    /// The resource.
    pub resource: &'a SynthResource,
}

impl std::ops::Deref for ResourceView<'_> {
    type Target = SynthResource;
    fn deref(&self) -> &SynthResource {
        self.resource
    }
}

impl<'a> ResourceView<'a> {
    /// Whether the resource is of kind `K`.
    pub fn is<K: ResourceKind>(&self) -> bool {
        self.resource.kind == K::KIND
    }

    /// The literal value of a field (`None` when absent, known only after apply, or when the
    /// resource is of another kind than the field's).
    pub fn lit<K: ResourceKind, T>(&self, field: Field<K, T>) -> Option<&'a Value> {
        match self.field(field) {
            Some(Expr::Lit(v)) => Some(v),
            _ => None,
        }
    }

    /// A field as it was synthesized (`None` for a resource of another kind).
    pub fn field<K: ResourceKind, T>(&self, field: Field<K, T>) -> Option<&'a Expr> {
        self.is::<K>().then(|| self.resource.fields.get(field.name())).flatten()
    }

    /// A literal field, typed.
    pub fn get<K: ResourceKind, T: serde::de::DeserializeOwned>(&self, field: Field<K, T>) -> Option<T> {
        self.lit(field).and_then(|v| T::deserialize(v).ok())
    }

    /// A literal boolean field.
    pub fn bool<K: ResourceKind>(&self, field: Field<K, bool>) -> Option<bool> {
        self.lit(field).and_then(Value::as_bool)
    }

    /// A literal count field.
    pub fn u64<K: ResourceKind>(&self, field: Field<K, u32>) -> Option<u64> {
        self.lit(field).and_then(Value::as_u64)
    }

    /// A literal string field.
    pub fn str<K: ResourceKind>(&self, field: Field<K, String>) -> Option<&'a str> {
        self.lit(field).and_then(Value::as_str)
    }

    /// A literal tag value.
    pub fn tag(&self, key: &str) -> Option<&'a str> {
        match self.resource.fields.get(common::TAGS) {
            Some(Expr::Map(m)) => match m.get(key) {
                Some(Expr::Lit(Value::String(s))) => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// Indexes of the resources a field refers to (by `Expr::Attr`), in order.
    pub fn refs_in<K: ResourceKind, T>(&self, field: Field<K, T>) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(e) = self.field(field) {
            walk_refs(e, &mut out);
        }
        out
    }

    /// Indexes of every resource any field refers to, in field order.
    pub fn refs(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for e in self.resource.fields.values() {
            walk_refs(e, &mut out);
        }
        out
    }
}

fn walk_refs(e: &Expr, out: &mut Vec<usize>) {
    match e {
        Expr::Attr(a) => out.push(a.node),
        Expr::List(v) => v.iter().for_each(|e| walk_refs(e, out)),
        Expr::Map(m) => m.values().for_each(|e| walk_refs(e, out)),
        _ => {}
    }
}

/// Direction of a firewall rule.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Inbound.
    Ingress,
    /// Outbound.
    Egress,
}

/// The other side of a firewall rule, as synthesized.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerView {
    /// An IPv4 block (`0.0.0.0/0` is the whole internet).
    Cidr(String),
    /// The members of another firewall of the stack (its index).
    Firewall(usize),
    /// Could not be read (validation reports why).
    Unknown,
}

/// One firewall rule, read back from a synthesized firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRuleView {
    /// Inbound or outbound.
    pub direction: Direction,
    /// Position within its direction (`ingress rule #2`).
    pub position: usize,
    /// Protocol; `None` when it could not be read.
    pub protocol: Option<Protocol>,
    /// First port (0 for `all` and `icmp`).
    pub from_port: u32,
    /// Last port, inclusive.
    pub to_port: u32,
    /// The other side.
    pub peer: PeerView,
}

impl FirewallRuleView {
    /// Whether the peer is the whole internet (a block with prefix length 0).
    pub fn is_anywhere(&self) -> bool {
        match &self.peer {
            PeerView::Cidr(c) => c.trim() == "::/0" || c.parse::<Cidr>().map(|c| c.prefix() == 0).unwrap_or(false),
            _ => false,
        }
    }

    /// Whether the rule lets TCP traffic to `port` through (a TCP range covering it, or every
    /// protocol).
    pub fn covers_tcp(&self, port: u32) -> bool {
        match self.protocol {
            Some(Protocol::All) => true,
            Some(Protocol::Tcp) => (self.from_port..=self.to_port).contains(&port),
            _ => false,
        }
    }

    /// `tcp 22`, `tcp 1-65535`, `all`.
    pub fn ports_label(&self) -> String {
        let proto = match self.protocol {
            Some(Protocol::Tcp) => "tcp",
            Some(Protocol::Udp) => "udp",
            Some(Protocol::Icmp) => return "icmp".into(),
            Some(Protocol::All) => return "all traffic".into(),
            _ => "unknown protocol",
        };
        if self.from_port == self.to_port {
            format!("{proto} {}", self.from_port)
        } else {
            format!("{proto} {}-{}", self.from_port, self.to_port)
        }
    }

    /// `ingress rule #0`.
    pub fn label(&self) -> String {
        let d = match self.direction {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        };
        format!("{d} rule #{}", self.position)
    }
}

/// What a rule sees: the synthesized stack, the provider's region facts, and helpers to read
/// fields, firewall rules and attachments.
#[derive(Debug)]
pub struct PolicyContext<'a> {
    stack: &'a Synthesized,
    catalogs: &'a [&'a Catalog],
    /// firewall index -> indexes of the VMs and databases it is attached to.
    attached: BTreeMap<usize, Vec<usize>>,
}

impl<'a> PolicyContext<'a> {
    /// A context over `stack`, with the configured providers' catalogues.
    pub fn new(stack: &'a Synthesized, catalogs: &'a [&'a Catalog]) -> Self {
        let mut attached: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let is_firewall = |i: usize| stack.resources.get(i).is_some_and(|r| r.kind == Firewall::KIND);
        for (i, r) in stack.resources.iter().enumerate() {
            if r.kind == Firewall::KIND {
                // A firewall naming another in a rule is its peer, not attached to it.
                continue;
            }
            let mut fws = ResourceView { index: i, resource: r }.refs();
            fws.retain(|f| is_firewall(*f));
            fws.dedup();
            for f in fws {
                attached.entry(f).or_default().push(i);
            }
        }
        Self { stack, catalogs, attached }
    }

    /// The synthesized stack.
    pub fn stack(&self) -> &'a Synthesized {
        self.stack
    }

    /// Stack name.
    pub fn stack_name(&self) -> &'a str {
        &self.stack.name
    }

    /// The stage.
    pub fn stage(&self) -> Stage {
        self.stack.stage
    }

    /// Every configured catalogue.
    pub fn catalogs(&self) -> &'a [&'a Catalog] {
        self.catalogs
    }

    /// The catalogue of a provider.
    pub fn catalog(&self, provider: &str) -> Option<&'a Catalog> {
        self.catalogs.iter().copied().find(|c| c.provider == provider)
    }

    /// The stack's region, from its provider's catalogue.
    pub fn region(&self) -> Option<&'a RegionInfo> {
        self.catalog(&self.stack.provider)?.region(&self.stack.region)
    }

    /// The region a resource is placed in (its `region` field), from the catalogue of the
    /// resource's provider. `None` when the region is unknown to that catalogue.
    pub fn region_of(&self, r: ResourceView<'_>) -> Option<&'a RegionInfo> {
        self.catalog(&r.provider)?.region(self.region_name_of(r))
    }

    /// The name of the region a resource is placed in (its `region` field, else the stack's).
    pub fn region_name_of<'r>(&self, r: ResourceView<'r>) -> &'r str
    where
        'a: 'r,
    {
        match r.resource.fields.get(common::REGION) {
            Some(Expr::Lit(Value::String(s))) => s.as_str(),
            _ => &self.stack.region,
        }
    }

    /// Full path of a resource (`shop/network/vpc`).
    pub fn full_path(&self, r: ResourceView<'_>) -> String {
        format!("{}/{}", self.stack.name, r.path)
    }

    /// Every resource, in the order they were added.
    pub fn resources(&self) -> impl Iterator<Item = ResourceView<'a>> + 'a {
        self.stack.resources.iter().enumerate().map(|(index, resource)| ResourceView { index, resource })
    }

    /// Every resource of one kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = ResourceView<'a>> + 'a {
        self.resources().filter(move |r| r.kind == kind)
    }

    /// Every resource of kind `K`.
    pub fn of<K: ResourceKind>(&self) -> impl Iterator<Item = ResourceView<'a>> + 'a {
        self.of_kind(K::KIND)
    }

    /// The resource at an index.
    pub fn resource(&self, index: usize) -> Option<ResourceView<'a>> {
        self.stack.resources.get(index).map(|resource| ResourceView { index, resource })
    }

    /// The rules of a firewall, ingress first, then egress. Empty for other kinds.
    pub fn firewall_rules(&self, fw: ResourceView<'_>) -> Vec<FirewallRuleView> {
        let mut out = Vec::new();
        for (field, direction) in
            [(firewall::field::INGRESS, Direction::Ingress), (firewall::field::EGRESS, Direction::Egress)]
        {
            let Some(Expr::List(rules)) = fw.field(field) else { continue };
            for (position, rule) in rules.iter().enumerate() {
                out.push(read_rule(rule, direction, position));
            }
        }
        out
    }

    /// The firewalls attached to a resource (a VM, a database, a cache).
    pub fn firewalls_of(&self, r: ResourceView<'_>) -> Vec<ResourceView<'a>> {
        if r.is::<Firewall>() {
            return Vec::new();
        }
        self.refs_of::<Firewall>(r)
    }

    /// The resources of kind `K` that `r` refers to, each once, in field order.
    pub fn refs_of<K: ResourceKind>(&self, r: ResourceView<'_>) -> Vec<ResourceView<'a>> {
        let mut seen = BTreeSet::new();
        r.refs()
            .into_iter()
            .filter(|i| seen.insert(*i))
            .filter_map(|i| self.resource(i))
            .filter(|x| x.is::<K>())
            .collect()
    }

    /// The VMs and databases a firewall is attached to.
    pub fn attached_to(&self, fw: ResourceView<'_>) -> Vec<ResourceView<'a>> {
        self.attached.get(&fw.index).into_iter().flatten().filter_map(|i| self.resource(*i)).collect()
    }

    /// The subnets a resource lives in.
    pub fn subnets_of(&self, r: ResourceView<'_>) -> Vec<ResourceView<'a>> {
        self.refs_of::<Subnet>(r)
    }

    /// Whether a subnet routes to the internet.
    pub fn is_public_subnet(&self, subnet: ResourceView<'_>) -> bool {
        subnet.bool(subnet::field::PUBLIC).unwrap_or(false)
    }

    /// Whether a firewall is attached to at least one database (the database tier).
    pub fn guards_database(&self, fw: ResourceView<'_>) -> bool {
        self.attached_to(fw).iter().any(|r| r.is::<Database>())
    }
}

fn read_rule(rule: &Expr, direction: Direction, position: usize) -> FirewallRuleView {
    let mut view =
        FirewallRuleView { direction, position, protocol: None, from_port: 0, to_port: 0, peer: PeerView::Unknown };
    let Expr::Map(m) = rule else { return view };
    let lit_u32 = |k: &str| match m.get(k) {
        Some(Expr::Lit(v)) => v.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        _ => 0,
    };
    view.protocol = match m.get("protocol") {
        Some(Expr::Lit(v)) => serde_json::from_value::<Protocol>(v.clone()).ok(),
        _ => None,
    };
    view.from_port = lit_u32("from_port");
    view.to_port = lit_u32("to_port");
    view.peer = match m.get("peer") {
        Some(Expr::Map(p)) => match (p.get("cidr"), p.get("firewall")) {
            (Some(Expr::Lit(Value::String(c))), _) => PeerView::Cidr(c.clone()),
            (_, Some(Expr::Attr(a))) => PeerView::Firewall(a.node),
            _ => PeerView::Unknown,
        },
        _ => PeerView::Unknown,
    };
    view
}
