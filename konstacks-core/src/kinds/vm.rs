//! The VM kind: a virtual machine in a subnet, with firewalls, user data and an environment.

use std::collections::BTreeMap;

use crate::base::secret::Secret;
use crate::kind::expr::Expr;
use crate::kind::field_map::FieldMap;
use crate::kind::price::{CostLine, PriceCx};
use crate::kind::{Field, Kind, KindDef, ResourceKind, Tags};
use crate::kind::{LowerCx, StackCx};
use crate::kinds::firewall::Firewall;
use crate::kinds::subnet::Subnet;
use crate::model::app::App;
use crate::model::gate::HealthGate;
use crate::model::refs::{Output, Ref};

/// Largest user data accepted, in bytes.
pub const MAX_USER_DATA: usize = 16 * 1024;

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
    pub(crate) app: Option<App>,
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
            app: None,
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

    /// The app this VM runs (typed; see [`App`]). The VM gets `PORT` and `APP_VERSION` in its
    /// environment. Changing the app replaces the VM; behind a load balancer that replacement
    /// is a release (new VMs must pass the load balancer's health check before old ones leave).
    /// The user data stays the template's: it renders the app for the cloud's machines.
    pub fn app(mut self, app: App) -> Self {
        self.env.insert("PORT".into(), EnvValue::Literal(app.port.to_string()));
        self.env.insert("APP_VERSION".into(), EnvValue::Literal(app.version.clone()));
        self.app = Some(app);
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

/// Fields of a VM.
pub mod field {
    use super::*;
    /// Physical name.
    pub const NAME: Field<Vm, String> = Field::new("name");
    /// Region.
    pub const REGION: Field<Vm, String> = Field::new("region");
    /// Image slug.
    pub const IMAGE: Field<Vm, String> = Field::new("image");
    /// Size slug.
    pub const SIZE: Field<Vm, String> = Field::new("size");
    /// Id of the subnet.
    pub const SUBNET_ID: Field<Vm, String> = Field::new("subnet_id");
    /// Ids of the attached firewalls.
    pub const FIREWALL_IDS: Field<Vm, Vec<String>> = Field::new("firewall_ids");
    /// Cloud-init user data.
    pub const USER_DATA: Field<Vm, Option<String>> = Field::new("user_data");
    /// Environment of the workload.
    pub const ENV: Field<Vm, BTreeMap<String, String>> = Field::new("env");
    /// Authorised SSH keys.
    pub const SSH_KEYS: Field<Vm, Vec<String>> = Field::new("ssh_keys");
    /// A public IPv4 address.
    pub const ASSIGN_PUBLIC_IP: Field<Vm, bool> = Field::new("assign_public_ip");
    /// Tags.
    pub const TAGS: Field<Vm, Tags> = Field::new("tags");
    /// The app it runs.
    pub const APP: Field<Vm, Option<App>> = Field::new("app");
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
    /// The app it runs, when described as one (older state has none).
    #[serde(default)]
    pub app: Option<App>,
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
crate::kind::observed!(VmObserved);

/// The VM kind.
pub const VM: KindDef = KindDef {
    id: "vm",
    fields: &[
        field::APP.name(),
        field::ASSIGN_PUBLIC_IP.name(),
        field::ENV.name(),
        field::FIREWALL_IDS.name(),
        field::IMAGE.name(),
        field::NAME.name(),
        field::REGION.name(),
        field::SIZE.name(),
        field::SSH_KEYS.name(),
        field::SUBNET_ID.name(),
        field::TAGS.name(),
        field::USER_DATA.name(),
    ],
    force_new: &[
        field::APP.name(),
        field::IMAGE.name(),
        field::SUBNET_ID.name(),
        field::USER_DATA.name(),
        field::ENV.name(),
        field::SSH_KEYS.name(),
        field::ASSIGN_PUBLIC_IP.name(),
        field::REGION.name(),
    ],
    secrets: &[],
    rotatable_secrets: &[],
    create_before_destroy: true,
    holds_data: false,
    deletion_protection: None,
    price: Some(price),
    offered_by: |c| !c.vm_sizes.is_empty() && !c.images.is_empty(),
    check_stack,
    fronts: None,
    version_of: Some(app_version),
};

impl ResourceKind for Vm {
    type Spec = VmSpec;
    type Observed = VmObserved;
    const KIND: Kind = Kind::of(&VM);

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let subnet = cx.target(self.subnet, "the VM's subnet");
        let fws: Vec<Option<usize>> = self.firewalls.iter().map(|f| cx.target(*f, "a VM firewall")).collect();
        if let Some(c) = cx.catalog() {
            let size = self.size.slug();
            if c.vm_size(&size).is_none() {
                let offered: Vec<&str> = c.vm_sizes.iter().map(|o| o.slug.as_str()).collect();
                cx.error(
                    "unknown-size",
                    format!("provider `{}` offers no VM size `{size}`", c.provider),
                    format!("use one of: {}", offered.join(", ")),
                );
            }
            let image = self.image.slug();
            if c.image(&image).is_none() {
                let offered: Vec<&str> = c.images.iter().map(|o| o.slug.as_str()).collect();
                cx.error(
                    "unknown-image",
                    format!("provider `{}` offers no image `{image}`", c.provider),
                    format!("use one of: {}", offered.join(", ")),
                );
            }
        }
        if self.user_data.as_ref().is_some_and(|u| u.len() > MAX_USER_DATA) {
            cx.error(
                "user-data-too-large",
                "user data is larger than 16 KiB",
                "move the script to an image or fetch it at boot",
            );
        }
        if let Some(app) = &self.app {
            for (what, problem) in app.problems() {
                cx.error("invalid-app", format!("app {what}: {problem}"), "fix the app's description");
            }
        }
        let mut env = BTreeMap::new();
        for (k, v) in &self.env {
            if k.is_empty()
                || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || k.as_bytes()[0].is_ascii_digit()
            {
                cx.error(
                    "invalid-env",
                    format!("environment variable name `{k}` is not valid"),
                    "use letters, digits and '_', not starting with a digit",
                );
            }
            let e = match v {
                EnvValue::Literal(s) => Expr::lit(s),
                EnvValue::Output(o) => match cx.target_any(o.source, &format!("env `{k}`")) {
                    Some(t) => cx.attr_of(t, o.attr, o.secret),
                    None => Expr::Lit(serde_json::Value::Null),
                },
            };
            env.insert(k.clone(), e);
        }
        let subnet_id = cx.id_of(subnet);
        let firewall_ids = cx.ids_of(&fws);
        cx.set(field::IMAGE, self.image.slug());
        cx.set(field::SIZE, self.size.slug());
        cx.set_expr(field::SUBNET_ID, subnet_id);
        cx.set_expr(field::FIREWALL_IDS, firewall_ids);
        cx.set(field::USER_DATA, self.user_data.clone());
        cx.set_expr(field::ENV, Expr::Map(env.into()));
        cx.set(field::SSH_KEYS, self.ssh_keys.clone());
        cx.set(field::ASSIGN_PUBLIC_IP, self.public_ip);
        cx.set(field::APP, self.app.clone());
    }

    fn health(&self) -> Option<HealthGate> {
        self.health.clone()
    }
}

/// The version of the app in a VM's recorded inputs.
fn app_version(inputs: &FieldMap<serde_json::Value>) -> Option<String> {
    inputs.get(field::APP.name())?.get("version")?.as_str().map(str::to_string)
}

/// Firewalls of another VPC than the VM's subnet, and subnets too small for their VMs.
fn check_stack(cx: &mut StackCx<'_>) {
    check_firewall_vpcs(cx);
    let mut vms_per_subnet: BTreeMap<usize, usize> = BTreeMap::new();
    for (_, vm) in cx.of_kind::<Vm>() {
        if let Some(sn) = cx.index_of(vm.subnet) {
            *vms_per_subnet.entry(sn).or_default() += 1;
        }
    }
    for (sn, count) in vms_per_subnet {
        let block = cx
            .node::<Subnet>(sn)
            .filter(|s| cx.index_of(s.vpc()).is_some())
            .and_then(|s| s.cidr.parse::<crate::base::cidr::Cidr>().ok());
        if let Some(c) = block {
            // Clouds reserve a few addresses per subnet (AWS: 5); keep to the strictest.
            let capacity = (1u64 << (32 - u32::from(c.prefix()))).saturating_sub(5);
            if count as u64 > capacity {
                cx.error(
                    sn,
                    "subnet-too-small",
                    format!("{count} VMs do not fit in {c}, which holds {capacity} addresses"),
                    "use a larger subnet or spread the VMs over several",
                );
            }
        }
    }
}

fn check_firewall_vpcs(cx: &mut StackCx<'_>) {
    let mut problems = Vec::new();
    for (i, vm) in cx.of_kind::<Vm>() {
        let Some(subnet_vpc) = cx.index_of(vm.subnet).and_then(|s| cx.node::<Subnet>(s)).map(|s| s.vpc()) else {
            continue;
        };
        for f in &vm.firewalls {
            let Some(fw) = cx.index_of(*f).and_then(|f| cx.node::<Firewall>(f)) else { continue };
            if fw.vpc() != subnet_vpc {
                problems.push((i, cx.path(f.index as usize), cx.path(vm.subnet.index as usize)));
            }
        }
    }
    for (i, fw, subnet) in problems {
        cx.error(
            i,
            "vpc-mismatch",
            format!("firewall `{fw}` belongs to another VPC than subnet `{subnet}`"),
            "attach firewalls of the subnet's VPC",
        );
    }
}

fn price(cx: &PriceCx<'_>) -> Vec<CostLine> {
    let mut lines = vec![cx.size_line("VM", field::SIZE, |c, s| c.vm_size(s), (1.0, ""))];
    if cx.flag(field::ASSIGN_PUBLIC_IP) {
        lines.push(match cx.catalog.pricing.public_ipv4_month {
            Some(ip) => CostLine::priced("public_ipv4", "public IPv4 address".into(), ip),
            None => CostLine::unpriced("public_ipv4", "public IPv4 address: no price".into()),
        });
    }
    lines
}

impl Vm {
    /// The subnet it runs in.
    pub fn subnet(&self) -> Ref<Subnet> {
        self.subnet
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
