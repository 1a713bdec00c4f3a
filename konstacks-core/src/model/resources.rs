//! The provider-agnostic resource kinds and their builders.
//!
//! Required arguments are positional, optional ones are chained. Builders never fail: problems
//! (a malformed CIDR, a port of 70000) are found by `synth()` and reported all at once.

use std::collections::BTreeMap;

use super::{Output, Ref, Resource, ResourceSpec};
use crate::secret::{Secret, SecretSource};

/// The kinds of resource Konstacks manages.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A private network.
    Vpc,
    /// A subnet of a VPC in one zone.
    Subnet,
    /// A security group / cloud firewall.
    Firewall,
    /// A virtual machine.
    Vm,
    /// A managed database (Postgres, MySQL, Redis).
    Database,
}

impl Kind {
    /// The stable name used in state, tags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
            Kind::Firewall => "firewall",
            Kind::Vm => "vm",
            Kind::Database => "database",
        }
    }

    /// Fields whose change cannot be applied in place: the resource must be replaced.
    pub fn force_new_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Vpc => &["cidr", "region"],
            Kind::Subnet => &["vpc_id", "cidr", "zone", "region"],
            Kind::Firewall => &["name", "vpc_id", "region"],
            Kind::Vm => &["image", "subnet_id", "user_data", "env", "ssh_keys", "assign_public_ip", "region"],
            Kind::Database => &["name", "engine", "subnet_ids", "encrypted", "region"],
        }
    }

    /// Whether a replacement may create the new resource before deleting the old one. Subnets
    /// cannot: the new one usually needs the same CIDR in the same VPC.
    pub fn create_before_destroy(self) -> bool {
        !matches!(self, Kind::Subnet)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A private network (AWS VPC, DigitalOcean VPC, GCP network).
#[derive(Debug, Clone)]
pub struct Vpc {
    pub(crate) cidr: String,
}

impl Vpc {
    /// A VPC with the given IPv4 block, for example `"10.0.0.0/16"`.
    pub fn new(cidr: impl Into<String>) -> Self {
        Self { cidr: cidr.into() }
    }
}

impl Resource for Vpc {
    const KIND: Kind = Kind::Vpc;
    fn into_spec(self) -> ResourceSpec {
        ResourceSpec(NodeSpec::Vpc(self))
    }
}

/// A subnet of a VPC, in one zone of the stack's region.
#[derive(Debug, Clone)]
pub struct Subnet {
    pub(crate) vpc: Ref<Vpc>,
    pub(crate) cidr: String,
    pub(crate) zone: u8,
    pub(crate) public: bool,
}

impl Subnet {
    /// A private subnet in zone 0.
    pub fn new(vpc: Ref<Vpc>, cidr: impl Into<String>) -> Self {
        Self { vpc, cidr: cidr.into(), zone: 0, public: false }
    }

    /// Give the subnet a route to the internet.
    pub fn public(mut self) -> Self {
        self.public = true;
        self
    }

    /// No route to the internet (the default).
    pub fn private(mut self) -> Self {
        self.public = false;
        self
    }

    /// Place it in the `index`-th zone of the region (0-based, in the provider's zone order).
    pub fn zone(mut self, index: u8) -> Self {
        self.zone = index;
        self
    }
}

impl Resource for Subnet {
    const KIND: Kind = Kind::Subnet;
    fn into_spec(self) -> ResourceSpec {
        ResourceSpec(NodeSpec::Subnet(self))
    }
}

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
pub struct Rule {
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
    fn with(self, peer: RulePeer) -> Rule {
        Rule { protocol: self.protocol, from_port: self.from_port, to_port: self.to_port, peer, ingress: self.ingress }
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
    pub fn from_anywhere(self) -> Rule {
        self.with(RulePeer::Anywhere)
    }
    /// From (ingress) or to (egress) an IPv4 block.
    pub fn from_cidr(self, cidr: impl Into<String>) -> Rule {
        self.with(RulePeer::Cidr(cidr.into()))
    }
    /// From (ingress) or to (egress) the members of another firewall.
    pub fn from(self, firewall: Ref<Firewall>) -> Rule {
        self.with(RulePeer::Firewall(firewall))
    }
    /// Alias of [`RulePorts::from_anywhere`] that reads better on egress rules.
    pub fn to_anywhere(self) -> Rule {
        self.from_anywhere()
    }
    /// Alias of [`RulePorts::from_cidr`] that reads better on egress rules.
    pub fn to_cidr(self, cidr: impl Into<String>) -> Rule {
        self.from_cidr(cidr)
    }
    /// Alias of [`RulePorts::from`] that reads better on egress rules.
    pub fn to(self, firewall: Ref<Firewall>) -> Rule {
        self.from(firewall)
    }
    /// From (or to) a peer given as a [`Peer`].
    pub fn peer(self, peer: Peer) -> Rule {
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
    pub(crate) rules: Vec<Rule>,
    pub(crate) default_egress: bool,
}

impl Firewall {
    /// A firewall in `vpc` with no inbound rule and all outbound traffic allowed.
    pub fn new(vpc: Ref<Vpc>) -> Self {
        Self { vpc, rules: Vec::new(), default_egress: true }
    }

    /// Add a rule (built with [`Ingress`] or [`Egress`]).
    pub fn allow(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Remove the default allow-all outbound rule; only explicit egress rules remain.
    pub fn restrict_egress(mut self) -> Self {
        self.default_egress = false;
        self
    }
}

impl Resource for Firewall {
    const KIND: Kind = Kind::Firewall;
    fn into_spec(self) -> ResourceSpec {
        ResourceSpec(NodeSpec::Firewall(self))
    }
}

/// An abstract machine image, resolved to an AMI, slug or image family by each provider.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// The current Ubuntu LTS.
    UbuntuLts,
    /// Debian 12.
    Debian12,
    /// A provider-specific image id or slug, used as is.
    Custom(String),
}

impl Image {
    /// The portable slug stored in plans and state.
    pub fn slug(&self) -> String {
        match self {
            Image::UbuntuLts => "ubuntu-lts".into(),
            Image::Debian12 => "debian-12".into(),
            Image::Custom(s) => s.clone(),
        }
    }
}

/// An abstract VM size, mapped to an instance type / droplet size / machine type by each provider.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmSize {
    /// 1 shared vCPU, 0.5–1 GiB.
    Nano,
    /// 1 vCPU, 1 GiB.
    Micro,
    /// 1–2 vCPU, 2 GiB.
    Small,
    /// 2 vCPU, 4 GiB.
    Medium,
    /// 2–4 vCPU, 8 GiB.
    Large,
    /// 4 vCPU, 16 GiB.
    XLarge,
    /// A provider-specific size used as is (checked against the provider's catalogue).
    Custom(String),
}

impl VmSize {
    /// Parse a slug: a portable size name, or a provider size used as is.
    pub fn from_slug(s: &str) -> Self {
        match s {
            "nano" => VmSize::Nano,
            "micro" => VmSize::Micro,
            "small" => VmSize::Small,
            "medium" => VmSize::Medium,
            "large" => VmSize::Large,
            "xlarge" => VmSize::XLarge,
            other => VmSize::Custom(other.to_string()),
        }
    }

    /// The portable slug stored in plans and state.
    pub fn slug(&self) -> String {
        match self {
            VmSize::Nano => "nano".into(),
            VmSize::Micro => "micro".into(),
            VmSize::Small => "small".into(),
            VmSize::Medium => "medium".into(),
            VmSize::Large => "large".into(),
            VmSize::XLarge => "xlarge".into(),
            VmSize::Custom(s) => s.clone(),
        }
    }
}

/// How a new VM proves it serves traffic.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "probe", rename_all = "snake_case")]
pub enum HealthCheck {
    /// A TCP connection to this port of the VM is accepted.
    Tcp {
        /// Port.
        port: u16,
    },
    /// `GET path` on this port answers with this status.
    Http {
        /// Port.
        port: u16,
        /// Path, starting with `/`.
        path: String,
        /// Expected status code.
        status: u16,
    },
    /// The provider reports the instance as running and passing its own status checks.
    ProviderStatus,
}

/// A health gate for zero-downtime replacement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthGate {
    /// The probe.
    pub check: HealthCheck,
    /// How long a new instance has to pass, in seconds.
    pub timeout_secs: u64,
    /// Seconds between probes.
    pub interval_secs: u64,
    /// At most this many VMs of the stack are replaced at once (rolling batches).
    pub batch: usize,
}

impl HealthGate {
    /// A gate with `check`, 300 s to pass, a probe every 5 s, one VM at a time.
    pub fn new(check: HealthCheck) -> Self {
        Self { check, timeout_secs: 300, interval_secs: 5, batch: 1 }
    }
    /// Time allowed to pass.
    pub fn timeout_secs(mut self, secs: u64) -> Self {
        self.timeout_secs = secs;
        self
    }
    /// Rolling batch size.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }
}

/// A value for a VM environment variable: literal, or an output of another resource.
#[derive(Debug, Clone)]
pub enum EnvValue {
    /// Known now.
    Literal(String),
    /// Known after the resource it comes from is applied; creates a dependency edge.
    Output(Output<String>),
}

impl From<&str> for EnvValue {
    fn from(v: &str) -> Self {
        EnvValue::Literal(v.to_string())
    }
}
impl From<String> for EnvValue {
    fn from(v: String) -> Self {
        EnvValue::Literal(v)
    }
}
impl From<Output<String>> for EnvValue {
    fn from(v: Output<String>) -> Self {
        EnvValue::Output(v)
    }
}

/// A virtual machine.
#[derive(Debug, Clone)]
pub struct Vm {
    pub(crate) image: Image,
    pub(crate) size: VmSize,
    pub(crate) subnet: Ref<Subnet>,
    pub(crate) firewalls: Vec<Ref<Firewall>>,
    pub(crate) user_data: Option<String>,
    pub(crate) env: BTreeMap<String, EnvValue>,
    pub(crate) ssh_keys: Vec<String>,
    pub(crate) public_ip: bool,
    pub(crate) health: Option<HealthGate>,
}

impl Vm {
    /// A VM of `size` booting `image` in `subnet`, with no public IP.
    pub fn new(image: Image, size: VmSize, subnet: Ref<Subnet>) -> Self {
        Self {
            image,
            size,
            subnet,
            firewalls: Vec::new(),
            user_data: None,
            env: BTreeMap::new(),
            ssh_keys: Vec::new(),
            public_ip: false,
            health: None,
        }
    }

    /// Attach a firewall.
    pub fn firewall(mut self, fw: Ref<Firewall>) -> Self {
        self.firewalls.push(fw);
        self
    }

    /// Cloud-init user data (a script or cloud-config).
    pub fn user_data(mut self, data: impl Into<String>) -> Self {
        self.user_data = Some(data.into());
        self
    }

    /// An environment variable for the workload, written by cloud-init. Using an [`Output`]
    /// makes this VM depend on the resource the output comes from.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<EnvValue>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Authorise an SSH public key.
    pub fn ssh_key(mut self, key: impl Into<String>) -> Self {
        self.ssh_keys.push(key.into());
        self
    }

    /// Give the VM a public IPv4 address.
    pub fn public_ip(mut self, yes: bool) -> Self {
        self.public_ip = yes;
        self
    }

    /// Replace this VM without downtime: a replacement creates the new instance first, waits
    /// for it to pass `gate`, and only then deletes the old one; a new instance that fails is
    /// removed and the old one keeps serving (the apply reports a rolled-back update).
    pub fn health_gate(mut self, gate: HealthGate) -> Self {
        self.health = Some(gate);
        self
    }
}

impl Resource for Vm {
    const KIND: Kind = Kind::Vm;
    fn into_spec(self) -> ResourceSpec {
        ResourceSpec(NodeSpec::Vm(self))
    }
}

/// A database engine.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// PostgreSQL.
    Postgres,
    /// MySQL.
    Mysql,
    /// Redis (or a compatible fork such as Valkey).
    Redis,
}

impl Engine {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
            Engine::Redis => "redis",
        }
    }

    /// The port clients connect to.
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mysql => 3306,
            Engine::Redis => 6379,
        }
    }
}

/// An abstract database size, mapped to an instance class / cluster size / tier per provider.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbSize {
    /// Smallest burstable.
    Micro,
    /// 2 GiB.
    Small,
    /// 4–8 GiB.
    Medium,
    /// 16 GiB.
    Large,
    /// A provider-specific class used as is (checked against the provider's catalogue).
    Custom(String),
}

impl DbSize {
    /// Parse a slug: a portable size name, or a provider class used as is.
    pub fn from_slug(s: &str) -> Self {
        match s {
            "db-micro" | "micro" => DbSize::Micro,
            "db-small" | "small" => DbSize::Small,
            "db-medium" | "medium" => DbSize::Medium,
            "db-large" | "large" => DbSize::Large,
            other => DbSize::Custom(other.to_string()),
        }
    }

    /// The portable slug stored in plans and state.
    pub fn slug(&self) -> String {
        match self {
            DbSize::Micro => "db-micro".into(),
            DbSize::Small => "db-small".into(),
            DbSize::Medium => "db-medium".into(),
            DbSize::Large => "db-large".into(),
            DbSize::Custom(s) => s.clone(),
        }
    }
}

/// A managed database.
#[derive(Debug, Clone)]
pub struct Database {
    pub(crate) engine: Engine,
    pub(crate) version: String,
    pub(crate) size: DbSize,
    pub(crate) storage_gb: u32,
    pub(crate) subnets: Vec<Ref<Subnet>>,
    pub(crate) firewalls: Vec<Ref<Firewall>>,
    pub(crate) backup_retention_days: u32,
    pub(crate) encrypted: bool,
    pub(crate) high_availability: bool,
    pub(crate) deletion_protection: bool,
    pub(crate) apply_immediately: bool,
    pub(crate) password: SecretSource,
}

impl Database {
    fn with_engine(
        engine: Engine,
        version: impl Into<String>,
        size: DbSize,
        subnets: impl IntoIterator<Item = Ref<Subnet>>,
    ) -> Self {
        Self {
            engine,
            version: version.into(),
            size,
            storage_gb: 20,
            subnets: subnets.into_iter().collect(),
            firewalls: Vec::new(),
            backup_retention_days: 7,
            encrypted: true,
            high_availability: false,
            deletion_protection: false,
            apply_immediately: true,
            password: SecretSource::generated(32),
        }
    }

    /// Managed PostgreSQL of `version` (for example `"16"`).
    pub fn postgres(version: impl Into<String>, size: DbSize, subnets: impl IntoIterator<Item = Ref<Subnet>>) -> Self {
        Self::with_engine(Engine::Postgres, version, size, subnets)
    }

    /// Managed MySQL of `version` (for example `"8.0"`).
    pub fn mysql(version: impl Into<String>, size: DbSize, subnets: impl IntoIterator<Item = Ref<Subnet>>) -> Self {
        Self::with_engine(Engine::Mysql, version, size, subnets)
    }

    /// Managed Redis of `version` (for example `"7"`). Redis keeps no backups by default.
    pub fn redis(version: impl Into<String>, size: DbSize, subnets: impl IntoIterator<Item = Ref<Subnet>>) -> Self {
        let mut db = Self::with_engine(Engine::Redis, version, size, subnets);
        db.backup_retention_days = 0;
        db
    }

    /// Allocated storage in GiB (default 20).
    pub fn storage_gb(mut self, gb: u32) -> Self {
        self.storage_gb = gb;
        self
    }

    /// Attach a firewall.
    pub fn firewall(mut self, fw: Ref<Firewall>) -> Self {
        self.firewalls.push(fw);
        self
    }

    /// Keep automated backups for `days` (0 disables them; default 7).
    pub fn backups(mut self, days: u32) -> Self {
        self.backup_retention_days = days;
        self
    }

    /// Encryption at rest (default on).
    pub fn encrypted(mut self, yes: bool) -> Self {
        self.encrypted = yes;
        self
    }

    /// A standby in a second zone.
    pub fn high_availability(mut self, yes: bool) -> Self {
        self.high_availability = yes;
        self
    }

    /// Refuse deletion until this is turned off again.
    pub fn deletion_protection(mut self, yes: bool) -> Self {
        self.deletion_protection = yes;
        self
    }

    /// Apply modifications at once (default) or in the next maintenance window.
    pub fn apply_immediately(mut self, yes: bool) -> Self {
        self.apply_immediately = yes;
        self
    }

    /// Use this admin password instead of a generated one.
    pub fn password(mut self, password: Secret<String>) -> Self {
        self.password = SecretSource::Provided(password);
        self
    }

    /// Generate the admin password with `len` characters (the default is 32).
    pub fn generated_password(mut self, len: usize) -> Self {
        self.password = SecretSource::generated(len);
        self
    }
}

impl Resource for Database {
    const KIND: Kind = Kind::Database;
    fn into_spec(self) -> ResourceSpec {
        ResourceSpec(NodeSpec::Database(self))
    }
}

/// The typed description of one node, kept inside core only: providers never see it, they get
/// resolved specs (see [`crate::spec`]).
#[derive(Debug, Clone)]
pub(crate) enum NodeSpec {
    Vpc(Vpc),
    Subnet(Subnet),
    Firewall(Firewall),
    Vm(Vm),
    Database(Database),
}

impl NodeSpec {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            NodeSpec::Vpc(_) => Kind::Vpc,
            NodeSpec::Subnet(_) => Kind::Subnet,
            NodeSpec::Firewall(_) => Kind::Firewall,
            NodeSpec::Vm(_) => Kind::Vm,
            NodeSpec::Database(_) => Kind::Database,
        }
    }
}

/// Outputs of a VM, available after apply.
impl Ref<Vm> {
    /// The public IPv4 address (empty when the VM has none).
    pub fn public_ip(&self) -> Output<String> {
        self.output("public_ip", false)
    }
    /// The private IPv4 address.
    pub fn private_ip(&self) -> Output<String> {
        self.output("private_ip", false)
    }
    /// The provider's id.
    pub fn id(&self) -> Output<String> {
        self.output("id", false)
    }
}

/// Outputs of a database, available after apply.
impl Ref<Database> {
    /// The host name clients connect to.
    pub fn host(&self) -> Output<String> {
        self.output("host", false)
    }
    /// The port clients connect to, as text.
    pub fn port(&self) -> Output<String> {
        self.output("port", false)
    }
    /// The admin password (a secret: redacted in every output).
    pub fn password(&self) -> Output<String> {
        self.output("password", true)
    }
}

impl Ref<Vpc> {
    /// The provider's id.
    pub fn id(&self) -> Output<String> {
        self.output("id", false)
    }
}
