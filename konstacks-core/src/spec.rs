//! Resolved specifications (what providers receive: every reference replaced by a concrete id)
//! and observed state (what providers return). Plain serde data.
//!
//! Field names are shared between a spec and its observed twin on purpose: drift detection
//! compares the fields both sides carry.

use std::collections::BTreeMap;

use crate::model::{Engine, Protocol};
use crate::secret::Secret;

/// Tags (labels) carried by every resource.
pub type Tags = BTreeMap<String, String>;

/// Tag naming the stack a resource belongs to.
pub const TAG_STACK: &str = "konstacks:stack";
/// Tag naming the logical path of a resource within its stack.
pub const TAG_PATH: &str = "konstacks:path";
/// Tag carrying the physical name (shown by consoles).
pub const TAG_NAME: &str = "Name";

/// Which resources a batched read returns.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// These ids (missing ones are simply absent from the answer).
    Ids(Vec<String>),
    /// Every resource of the kind tagged with this stack name (used for adoption and orphan checks).
    Stack(String),
}

/// A resolved VPC.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VpcSpec {
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// IPv4 block.
    pub cidr: String,
    /// Tags.
    pub tags: Tags,
}

/// An observed VPC.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VpcObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// IPv4 block.
    pub cidr: String,
    /// Tags.
    pub tags: Tags,
}

/// A resolved subnet.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubnetSpec {
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Id of the VPC.
    pub vpc_id: String,
    /// IPv4 block.
    pub cidr: String,
    /// Index into the region's zones.
    pub zone: u8,
    /// Whether it routes to the internet.
    pub public: bool,
    /// Tags.
    pub tags: Tags,
}

/// An observed subnet.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubnetObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Id of the VPC.
    pub vpc_id: String,
    /// IPv4 block.
    pub cidr: String,
    /// Index into the region's zones.
    pub zone: u8,
    /// The zone's provider name.
    pub zone_name: String,
    /// Whether it routes to the internet.
    pub public: bool,
    /// Tags.
    pub tags: Tags,
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

/// A resolved VM.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VmSpec {
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Portable image slug (`ubuntu-lts`) or provider image id.
    pub image: String,
    /// Portable size slug (`small`) or provider size.
    pub size: String,
    /// Id of the subnet.
    pub subnet_id: String,
    /// Ids of the attached firewalls.
    pub firewall_ids: Vec<String>,
    /// Cloud-init user data.
    pub user_data: Option<String>,
    /// Environment for the workload; values may be secrets, so they never print.
    pub env: BTreeMap<String, Secret<String>>,
    /// Authorised SSH public keys.
    pub ssh_keys: Vec<String>,
    /// Whether it gets a public IPv4 address.
    pub assign_public_ip: bool,
    /// Tags.
    pub tags: Tags,
}

/// An observed VM.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VmObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Image slug or id.
    pub image: String,
    /// Size slug.
    pub size: String,
    /// Id of the subnet.
    pub subnet_id: String,
    /// Ids of the attached firewalls.
    pub firewall_ids: Vec<String>,
    /// Whether it has a public IPv4 address.
    pub assign_public_ip: bool,
    /// The public address, empty when none.
    pub public_ip: String,
    /// The private address.
    pub private_ip: String,
    /// Provider status (`running`, `pending`, ...).
    pub status: String,
    /// Tags.
    pub tags: Tags,
}

/// A resolved database.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatabaseSpec {
    /// Physical name (identifier).
    pub name: String,
    /// Region.
    pub region: String,
    /// Engine.
    pub engine: Engine,
    /// Engine version.
    pub version: String,
    /// Portable size slug or provider class.
    pub size: String,
    /// Storage in GiB.
    pub storage_gb: u32,
    /// Ids of the subnets it may use.
    pub subnet_ids: Vec<String>,
    /// Ids of the attached firewalls.
    pub firewall_ids: Vec<String>,
    /// Days of automated backups (0 = off).
    pub backup_retention_days: u32,
    /// Encryption at rest.
    pub encrypted: bool,
    /// Standby in a second zone.
    pub high_availability: bool,
    /// Refuse deletion.
    pub deletion_protection: bool,
    /// Apply modifications now rather than in the maintenance window.
    pub apply_immediately: bool,
    /// Admin password: set on create, and on update only when it changes.
    pub password: Option<Secret<String>>,
    /// Tags.
    pub tags: Tags,
}

/// An observed database.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatabaseObserved {
    /// Provider id.
    pub id: String,
    /// Physical name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Engine.
    pub engine: Engine,
    /// Engine version.
    pub version: String,
    /// Size slug.
    pub size: String,
    /// Storage in GiB.
    pub storage_gb: u32,
    /// Ids of the subnets.
    pub subnet_ids: Vec<String>,
    /// Ids of the attached firewalls.
    pub firewall_ids: Vec<String>,
    /// Days of automated backups.
    pub backup_retention_days: u32,
    /// Encryption at rest.
    pub encrypted: bool,
    /// Standby in a second zone.
    pub high_availability: bool,
    /// Refuse deletion.
    pub deletion_protection: bool,
    /// Host name.
    pub host: String,
    /// Port, as text.
    pub port: String,
    /// Provider status (`available`, `creating`, ...).
    pub status: String,
    /// Tags.
    pub tags: Tags,
}
