//! The firewall kind: a security group / cloud firewall with inbound and outbound rules,
//! attached to VMs, databases and caches.

use serde_json::Value;

use crate::kind::expr::Expr;
use crate::kind::{always_offered, Field, FieldMap, Kind, KindDef, ResourceKind, Tags};
use crate::kind::{canonical_cidr, parse_cidr, LowerCx, StackCx};
use crate::kinds::vpc::Vpc;
use crate::model::refs::{Output, Ref};

/// A network protocol of a firewall rule.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (ports do not apply).
    Icmp,
    /// Every protocol and port.
    All,
}

/// The other side of a firewall rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// 0.0.0.0/0.
    Anywhere,
    /// Members of another firewall of the same stack.
    Firewall(Ref<Firewall>),
}

/// Where a rule's traffic comes from or goes to (CIDRs are kept as text until `synth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RulePeer {
    Anywhere,
    Cidr(String),
    Firewall(Ref<Firewall>),
}

/// One firewall rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRule {
    pub(crate) protocol: Protocol,
    pub(crate) from_port: u32,
    pub(crate) to_port: u32,
    pub(crate) peer: RulePeer,
    pub(crate) ingress: bool,
}

/// The protocol and port part of a rule, waiting for its peer.
#[derive(Debug, Clone, Copy)]
pub struct RulePorts {
    protocol: Protocol,
    from_port: u32,
    to_port: u32,
    ingress: bool,
}

impl RulePorts {
    fn with(self, peer: RulePeer) -> FirewallRule {
        FirewallRule {
            protocol: self.protocol,
            from_port: self.from_port,
            to_port: self.to_port,
            peer,
            ingress: self.ingress,
        }
    }
}

/// Builds inbound rules: `Ingress::tcp(443).from_anywhere()`.
#[derive(Debug, Clone, Copy)]
pub struct Ingress;

/// Builds outbound rules: `Egress::all().to_anywhere()`.
#[derive(Debug, Clone, Copy)]
pub struct Egress;

macro_rules! rule_constructors {
    ($ty:ty, $ingress:expr) => {
        impl $ty {
            /// One TCP port.
            pub fn tcp(port: u32) -> RulePorts {
                RulePorts { protocol: Protocol::Tcp, from_port: port, to_port: port, ingress: $ingress }
            }
            /// A TCP port range, inclusive.
            pub fn tcp_range(from: u32, to: u32) -> RulePorts {
                RulePorts { protocol: Protocol::Tcp, from_port: from, to_port: to, ingress: $ingress }
            }
            /// One UDP port.
            pub fn udp(port: u32) -> RulePorts {
                RulePorts { protocol: Protocol::Udp, from_port: port, to_port: port, ingress: $ingress }
            }
            /// ICMP.
            pub fn icmp() -> RulePorts {
                RulePorts { protocol: Protocol::Icmp, from_port: 0, to_port: 0, ingress: $ingress }
            }
            /// Every protocol and port.
            pub fn all() -> RulePorts {
                RulePorts { protocol: Protocol::All, from_port: 0, to_port: 0, ingress: $ingress }
            }
        }
    };
}
rule_constructors!(Ingress, true);
rule_constructors!(Egress, false);

impl RulePorts {
    /// From (ingress) or to (egress) 0.0.0.0/0.
    pub fn from_anywhere(self) -> FirewallRule {
        self.with(RulePeer::Anywhere)
    }
    /// From (ingress) or to (egress) an IPv4 block.
    pub fn from_cidr(self, cidr: impl Into<String>) -> FirewallRule {
        self.with(RulePeer::Cidr(cidr.into()))
    }
    /// From (ingress) or to (egress) the members of another firewall.
    pub fn from(self, firewall: Ref<Firewall>) -> FirewallRule {
        self.with(RulePeer::Firewall(firewall))
    }
    /// Alias of [`RulePorts::from_anywhere`] that reads better on egress rules.
    pub fn to_anywhere(self) -> FirewallRule {
        self.from_anywhere()
    }
    /// Alias of [`RulePorts::from_cidr`] that reads better on egress rules.
    pub fn to_cidr(self, cidr: impl Into<String>) -> FirewallRule {
        self.from_cidr(cidr)
    }
    /// Alias of [`RulePorts::from`] that reads better on egress rules.
    pub fn to(self, firewall: Ref<Firewall>) -> FirewallRule {
        self.from(firewall)
    }
    /// From (or to) a peer given as a [`Peer`].
    pub fn peer(self, peer: Peer) -> FirewallRule {
        match peer {
            Peer::Anywhere => self.from_anywhere(),
            Peer::Firewall(f) => self.from(f),
        }
    }
}

/// A security group / cloud firewall: inbound and outbound rules, attached to VMs and databases.
#[derive(Debug, Clone)]
pub struct Firewall {
    pub(crate) vpc: Ref<Vpc>,
    pub(crate) rules: Vec<FirewallRule>,
    pub(crate) default_egress: bool,
}

impl Firewall {
    /// A firewall in `vpc` with no inbound rule and all outbound traffic allowed.
    pub fn new(vpc: Ref<Vpc>) -> Self {
        Self { vpc, rules: Vec::new(), default_egress: true }
    }

    /// Add a rule (built with [`Ingress`] or [`Egress`]).
    pub fn allow(mut self, rule: FirewallRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Remove the default allow-all outbound rule; only explicit egress rules remain.
    pub fn restrict_egress(mut self) -> Self {
        self.default_egress = false;
        self
    }
}

/// Fields of a firewall.
pub mod field {
    use super::*;
    /// Physical name.
    pub const NAME: Field<Firewall, String> = Field::new("name");
    /// Region.
    pub const REGION: Field<Firewall, String> = Field::new("region");
    /// Id of the VPC.
    pub const VPC_ID: Field<Firewall, String> = Field::new("vpc_id");
    /// Inbound rules.
    pub const INGRESS: Field<Firewall, Vec<RuleSpec>> = Field::new("ingress");
    /// Outbound rules.
    pub const EGRESS: Field<Firewall, Vec<RuleSpec>> = Field::new("egress");
    /// Tags.
    pub const TAGS: Field<Firewall, Tags> = Field::new("tags");
}

/// The peer of a resolved firewall rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    /// An IPv4 block (`0.0.0.0/0` is anywhere).
    Cidr(String),
    /// Members of the firewall with this provider id.
    Firewall(String),
}

/// A resolved firewall rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct RuleSpec {
    /// Protocol.
    pub protocol: Protocol,
    /// First port (0 for ICMP / all).
    pub from_port: u16,
    /// Last port, inclusive.
    pub to_port: u16,
    /// Where traffic comes from (ingress) or goes to (egress).
    pub peer: RuleSource,
}

/// A resolved firewall.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FirewallSpec {
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Id of the VPC.
    pub vpc_id: String,
    /// Inbound rules, sorted.
    pub ingress: Vec<RuleSpec>,
    /// Outbound rules, sorted.
    pub egress: Vec<RuleSpec>,
    /// Tags.
    pub tags: Tags,
}

/// An observed firewall.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FirewallObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Id of the VPC.
    pub vpc_id: String,
    /// Inbound rules, sorted.
    pub ingress: Vec<RuleSpec>,
    /// Outbound rules, sorted.
    pub egress: Vec<RuleSpec>,
    /// Tags.
    pub tags: Tags,
}
crate::kind::observed!(FirewallObserved);

/// The firewall kind.
pub const FIREWALL: KindDef = KindDef {
    id: "firewall",
    fields: &[
        field::EGRESS.name(),
        field::INGRESS.name(),
        field::NAME.name(),
        field::REGION.name(),
        field::TAGS.name(),
        field::VPC_ID.name(),
    ],
    force_new: &[field::NAME.name(), field::VPC_ID.name(), field::REGION.name()],
    secrets: &[],
    rotatable_secrets: &[],
    create_before_destroy: true,
    holds_data: false,
    deletion_protection: None,
    price: None,
    offered_by: always_offered,
    check_stack,
    fronts: None,
    version_of: None,
};

impl ResourceKind for Firewall {
    type Spec = FirewallSpec;
    type Observed = FirewallObserved;
    const KIND: Kind = Kind::of(&FIREWALL);

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let vpc = cx.target(self.vpc, "the firewall's VPC");
        let mut rules = self.rules.clone();
        if self.default_egress {
            rules.push(Egress::all().to_anywhere());
        }
        // A rule given twice (or the default egress restated) is one rule to every cloud.
        let mut seen = Vec::with_capacity(rules.len());
        rules.retain(|r| {
            let dup = seen.contains(r);
            if !dup {
                seen.push(r.clone());
            }
            !dup
        });
        let (mut ingress, mut egress) = (Vec::new(), Vec::new());
        for (ri, r) in rules.iter().enumerate() {
            let rule = lower_rule(cx, ri, r);
            if r.ingress {
                ingress.push(rule);
            } else {
                egress.push(rule);
            }
        }
        let vpc_id = cx.id_of(vpc);
        cx.set_expr(field::VPC_ID, vpc_id);
        cx.set_expr(field::INGRESS, Expr::List(ingress));
        cx.set_expr(field::EGRESS, Expr::List(egress));
    }
}

fn lower_rule(cx: &mut LowerCx<'_>, ri: usize, r: &FirewallRule) -> Expr {
    let dir = if r.ingress { "ingress" } else { "egress" };
    let what = format!("{dir} rule #{ri}");
    let ported = matches!(r.protocol, Protocol::Tcp | Protocol::Udp);
    if ported {
        for port in [r.from_port, r.to_port] {
            if !(1..=65535).contains(&port) {
                cx.error(
                    "port-out-of-range",
                    format!("{what}: port {port} is outside 1..=65535"),
                    "use a port from 1 to 65535",
                );
            }
        }
        if r.from_port > r.to_port {
            cx.error(
                "port-out-of-range",
                format!("{what}: range {}-{} is reversed", r.from_port, r.to_port),
                "write the lower port first",
            );
        }
    }
    let peer = match &r.peer {
        RulePeer::Anywhere => Expr::Map(FieldMap::from([("cidr", Expr::lit("0.0.0.0/0"))])),
        RulePeer::Cidr(c) => {
            parse_cidr(cx, &what, c);
            Expr::Map(FieldMap::from([("cidr", Expr::lit(canonical_cidr(c)))]))
        }
        RulePeer::Firewall(fw) => match cx.target(*fw, &what) {
            Some(t) => Expr::Map(FieldMap::from([("firewall", cx.id_of(Some(t)))])),
            None => Expr::Lit(Value::Null),
        },
    };
    let (from, to) = if ported { (r.from_port.min(65535), r.to_port.min(65535)) } else { (0, 0) };
    Expr::Map(FieldMap::from([
        ("protocol", Expr::lit(r.protocol)),
        ("from_port", Expr::lit(from)),
        ("to_port", Expr::lit(to)),
        ("peer", peer),
    ]))
}

/// Rules naming a firewall of another VPC.
fn check_stack(cx: &mut StackCx<'_>) {
    let mut problems = Vec::new();
    for (i, fw) in cx.of_kind::<Firewall>() {
        let own = cx.index_of(fw.vpc);
        for r in &fw.rules {
            if let RulePeer::Firewall(peer) = &r.peer {
                let peer_vpc = cx.index_of(*peer).and_then(|p| cx.node::<Firewall>(p)).and_then(|p| cx.index_of(p.vpc));
                if let (Some(own), Some(pv)) = (own, peer_vpc) {
                    if own != pv {
                        problems.push((i, cx.path(peer.index as usize)));
                    }
                }
            }
        }
    }
    for (i, peer) in problems {
        cx.error(
            i,
            "vpc-mismatch",
            format!("a rule names firewall `{peer}` of another VPC"),
            "reference firewalls of the same VPC, or use the other VPC's CIDR",
        );
    }
}

impl Firewall {
    /// The VPC it belongs to.
    pub fn vpc(&self) -> Ref<Vpc> {
        self.vpc
    }
}

impl Ref<Firewall> {
    /// The provider's id.
    pub fn id(&self) -> Output<String> {
        self.output("id", false)
    }
}
