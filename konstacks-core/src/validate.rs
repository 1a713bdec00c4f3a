//! `synth()`: turn a stack under construction into a validated, fully described stack, or
//! report every problem at once, each with the resource path and what to do. Runs before any
//! cloud call; reading a provider's [`Catalog`] is not a call.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::cidr::Cidr;
use crate::error::Error;
use crate::model::{Kind, NodeRef, NodeSpec, Placement, RulePeer, Stack, StackDef, Stage};
use crate::provider::Catalog;
use crate::secret::{SecretSource, REDACTED};
use crate::spec::{TAG_NAME, TAG_PATH, TAG_STACK};

/// Longest logical id (one path segment).
pub const MAX_ID_LEN: usize = 63;

/// One problem found by validation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// Stable code (`duplicate-id`, `cidr-outside-vpc`, ...).
    pub code: &'static str,
    /// Full path of the resource (`shop-prod/network/vpc`), or the stack name.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}] {}: {}\n  help: {}", self.code, self.path, self.message, self.help)
    }
}

/// Every problem of a stack, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Iterate.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
    /// Whether any problem has this code.
    pub fn has(&self, code: &str) -> bool {
        self.0.iter().any(|d| d.code == code)
    }
    fn push(
        &mut self,
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.0.push(Diagnostic { code, path: path.into(), message: message.into(), help: help.into() });
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Whether `id` is a valid logical id: 1 to 63 characters of `a-z`, `0-9` and `-`, starting with a
/// letter or digit.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

/// A field value of a synthesized resource: a literal, or something known only after apply.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Expr {
    /// Known now.
    Lit(Value),
    /// An attribute of another resource of the stack.
    Attr {
        /// Index of the resource in [`Synthesized::resources`].
        node: usize,
        /// Its path.
        path: String,
        /// The attribute (`id`, `host`, ...).
        attr: String,
        /// Whether the attribute is secret.
        secret: bool,
    },
    /// A list.
    List(Vec<Expr>),
    /// A map with sorted keys.
    Map(BTreeMap<String, Expr>),
    /// The resource's physical name: the base name, plus `-N` after the N-th replacement.
    PhysicalName(String),
    /// A secret input.
    Secret(SecretSource),
}

impl Expr {
    fn lit(v: impl Serialize) -> Expr {
        Expr::Lit(serde_json::to_value(v).unwrap_or(Value::Null))
    }

    fn id_of(node: usize, path: &str) -> Expr {
        Expr::Attr { node, path: path.to_string(), attr: "id".into(), secret: false }
    }

    /// Indexes of the resources this expression reads from.
    pub fn refs(&self, out: &mut BTreeSet<usize>) {
        match self {
            Expr::Attr { node, .. } => {
                out.insert(*node);
            }
            Expr::List(v) => v.iter().for_each(|e| e.refs(out)),
            Expr::Map(m) => m.values().for_each(|e| e.refs(out)),
            Expr::Lit(_) | Expr::PhysicalName(_) | Expr::Secret(_) => {}
        }
    }

    /// Whether the expression holds a secret anywhere.
    pub fn is_secret(&self) -> bool {
        match self {
            Expr::Secret(_) => true,
            Expr::Attr { secret, .. } => *secret,
            Expr::List(v) => v.iter().any(Expr::is_secret),
            Expr::Map(m) => m.values().any(Expr::is_secret),
            Expr::Lit(_) | Expr::PhysicalName(_) => false,
        }
    }
}

impl Serialize for Expr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Expr::Lit(v) => v.serialize(s),
            Expr::Attr { path, attr, .. } => s.serialize_str(&format!("(known after apply: {path}.{attr})")),
            Expr::List(v) => v.serialize(s),
            Expr::Map(m) => m.serialize(s),
            Expr::PhysicalName(n) => s.serialize_str(n),
            Expr::Secret(_) => s.serialize_str(REDACTED),
        }
    }
}

/// One validated resource.
#[derive(Debug, Clone, Serialize)]
pub struct SynthResource {
    /// Logical path within the stack (`network/vpc`).
    pub path: String,
    /// Kind.
    pub kind: Kind,
    /// Provider name.
    pub provider: String,
    /// Indexes of the resources it depends on, sorted.
    #[serde(skip)]
    pub deps: Vec<usize>,
    /// Paths of the resources it depends on, sorted.
    pub depends_on: Vec<String>,
    /// Its fields; keys sorted.
    pub fields: BTreeMap<String, Expr>,
    /// Zero-downtime replacement gate (VMs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::model::HealthGate>,
}

/// A stack output.
#[derive(Debug, Clone, Serialize)]
pub struct SynthExport {
    /// Export name.
    pub name: String,
    /// Index of the resource it comes from.
    #[serde(skip)]
    pub node: usize,
    /// Path of the resource it comes from.
    pub from: String,
    /// Attribute.
    pub attr: String,
    /// Whether it is secret.
    pub secret: bool,
}

/// A validated stack: what the planner works from. Deterministic: snapshot it.
#[derive(Debug, Clone, Serialize)]
pub struct Synthesized {
    /// Stack name.
    pub name: String,
    /// Stage.
    pub stage: Stage,
    /// Default provider.
    pub provider: String,
    /// Placement as declared.
    pub placement: Placement,
    /// Resolved region.
    pub region: String,
    /// Resources, in the order they were added.
    pub resources: Vec<SynthResource>,
    /// Outputs.
    pub exports: Vec<SynthExport>,
    /// `moved` declarations (from, to).
    pub moved: Vec<(String, String)>,
    /// The monthly cost cap declared with [`Stack::budget`], if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::cost::Budget>,
}

impl Synthesized {
    /// Index of the resource at `path`.
    pub fn index_of(&self, path: &str) -> Option<usize> {
        self.resources.iter().position(|r| r.path == path)
    }
}

impl Stack {
    /// Validate the stack against the catalogues of the providers it may use (the first one
    /// whose name matches the stack's provider is used) and describe it fully. Every problem is
    /// reported at once.
    pub fn synth(&self, catalogs: &[&Catalog]) -> Result<Synthesized, Error> {
        let def = self.lock();
        synth_def(&def, catalogs).map_err(Error::Invalid)
    }
}

/// Region resolution of a placement against one catalogue; the error explains which regions
/// of which providers would satisfy it.
pub fn resolve_region(placement: &Placement, catalog: &Catalog, all: &[&Catalog]) -> Result<String, (String, String)> {
    let elsewhere = |j| {
        let mut offers: Vec<String> = all
            .iter()
            .filter(|c| c.provider != catalog.provider)
            .filter_map(|c| {
                let names: Vec<&str> = c.regions_within(j).map(|r| r.name.as_str()).collect();
                (!names.is_empty()).then(|| format!("{} ({})", c.provider, names.join(", ")))
            })
            .collect();
        offers.sort();
        if offers.is_empty() {
            "no configured provider has a region there; register one that does".to_string()
        } else {
            format!("providers that can: {}", offers.join("; "))
        }
    };
    match placement {
        Placement::Region(name) => match catalog.region(name) {
            Some(r) => Ok(r.name.clone()),
            None => Err((
                format!("provider `{}` has no region `{name}`", catalog.provider),
                format!(
                    "use one of: {}",
                    catalog.regions.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        },
        Placement::Within(j) => match catalog.regions_within(*j).next() {
            Some(r) => Ok(r.name.clone()),
            None => {
                Err((format!("provider `{}` has no region within jurisdiction `{j}`", catalog.provider), elsewhere(*j)))
            }
        },
        Placement::RegionWithin(name, j) => match catalog.region(name) {
            Some(r) if r.jurisdiction == *j => Ok(r.name.clone()),
            Some(r) => Err((
                format!(
                    "region `{name}` ({}, {}) is outside the placement's jurisdiction `{j}`",
                    r.location, r.jurisdiction
                ),
                {
                    let inside: Vec<&str> = catalog.regions_within(*j).map(|r| r.name.as_str()).collect();
                    if inside.is_empty() {
                        elsewhere(*j)
                    } else {
                        format!("use a region within `{j}`: {}", inside.join(", "))
                    }
                },
            )),
            None => {
                Err((format!("provider `{}` has no region `{name}`", catalog.provider), "check the region name".into()))
            }
        },
    }
}

struct Ctx<'a> {
    def: &'a StackDef,
    diags: Diagnostics,
}

impl Ctx<'_> {
    fn full(&self, path: &str) -> String {
        format!("{}/{}", self.def.name, path)
    }

    /// Check a reference and return the index it points to.
    fn target(&mut self, from: &str, r: NodeRef, expect: Kind, what: &str) -> Option<usize> {
        let def = self.def;
        if r.stack != def.serial {
            let from = self.full(from);
            self.diags.push(
                "foreign-reference",
                from,
                format!("{what} refers to a resource of another stack"),
                "a stack may only reference its own resources; export the value from the other stack instead",
            );
            return None;
        }
        match def.nodes.get(r.index as usize) {
            Some(n) if n.spec.kind() == expect => Some(r.index as usize),
            Some(n) => {
                let from = self.full(from);
                self.diags.push(
                    "wrong-reference",
                    from,
                    format!("{what} must be a {expect}, but `{}` is a {}", n.path, n.spec.kind()),
                    format!("pass a reference to a {expect}"),
                );
                None
            }
            None => {
                let from = self.full(from);
                self.diags.push(
                    "dangling-reference",
                    from,
                    format!("{what} points to no resource"),
                    "add the resource before referencing it",
                );
                None
            }
        }
    }
}

fn parse_cidr(ctx: &mut Ctx<'_>, path: &str, what: &str, s: &str) -> Option<Cidr> {
    match s.parse::<Cidr>() {
        Ok(c) => Some(c),
        Err(e) => {
            let p = ctx.full(path);
            ctx.diags.push("malformed-cidr", p, format!("{what}: {e}"), "write an IPv4 block such as 10.0.0.0/16");
            None
        }
    }
}

fn synth_def(def: &StackDef, catalogs: &[&Catalog]) -> Result<Synthesized, Diagnostics> {
    let mut ctx = Ctx { def, diags: Diagnostics::default() };
    let stack = def.name.clone();

    if !is_valid_id(&stack) {
        ctx.diags.push(
            if stack.is_empty() { "empty-name" } else { "invalid-name" },
            if stack.is_empty() { "(stack)".to_string() } else { stack.clone() },
            format!("stack name `{stack}` is not a valid name"),
            "use 1 to 63 characters of a-z, 0-9 and '-'",
        );
    }
    for (path, id) in &def.scope_errors {
        let p = ctx.full(path);
        ctx.diags.push(
            if id.is_empty() { "empty-name" } else { "invalid-name" },
            p,
            format!("scope id `{id}` is not a valid id"),
            "use 1 to 63 characters of a-z, 0-9 and '-'",
        );
    }

    // Catalogue and region.
    let catalog = catalogs.iter().copied().find(|c| c.provider == def.provider);
    let region = match catalog {
        None => {
            let known: Vec<&str> = catalogs.iter().map(|c| c.provider.as_str()).collect();
            ctx.diags.push(
                "unknown-provider",
                stack.clone(),
                format!("the stack uses provider `{}`, which is not configured", def.provider),
                format!("configure it, or use one of: {}", known.join(", ")),
            );
            None
        }
        Some(c) => match resolve_region(&def.placement, c, catalogs) {
            Ok(r) => Some(r),
            Err((msg, help)) => {
                ctx.diags.push("region-outside-jurisdiction", stack.clone(), msg, help);
                None
            }
        },
    };
    let region_s = region.clone().unwrap_or_default();

    // Ids and paths.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in def.nodes.iter().enumerate() {
        if !is_valid_id(&n.id) {
            let p = ctx.full(&n.path);
            let (code, msg) = if n.id.is_empty() {
                ("empty-name", "a resource id is empty".to_string())
            } else if n.id.len() > MAX_ID_LEN {
                (
                    "name-too-long",
                    format!("id `{}` has {} characters, at most {MAX_ID_LEN} are allowed", n.id, n.id.len()),
                )
            } else {
                ("invalid-name", format!("id `{}` contains characters other than a-z, 0-9 and '-'", n.id))
            };
            ctx.diags.push(code, p, msg, "use 1 to 63 characters of a-z, 0-9 and '-'");
        }
        if let Some(first) = seen.insert(n.path.as_str(), i) {
            let p = ctx.full(&n.path);
            ctx.diags.push(
                "duplicate-id",
                p,
                format!("two resources share the path `{}` (resources #{first} and #{i})", n.path),
                "give each resource a unique id within its scope",
            );
        }
        if let Some(c) = catalog {
            let physical = physical_name(&stack, &n.path);
            // Leave room for a `-N` generation suffix after replacements.
            if physical.len() + 3 > c.max_name_len {
                let p = ctx.full(&n.path);
                ctx.diags.push(
                    "name-too-long",
                    p,
                    format!(
                        "physical name `{physical}` has {} characters; provider `{}` allows {} (3 are kept for replacement suffixes)",
                        physical.len(),
                        c.provider,
                        c.max_name_len
                    ),
                    "shorten the stack name, the scope ids or the resource id",
                );
            }
        }
        if let Some(p) = &n.provider {
            if !catalogs.iter().any(|c| &c.provider == p) {
                let path = ctx.full(&n.path);
                ctx.diags.push(
                    "unknown-provider",
                    path,
                    format!("resource is placed on provider `{p}`, which is not configured"),
                    "configure that provider or remove the placement",
                );
            }
        }
    }

    // Per-kind fields and checks.
    let mut resources = Vec::with_capacity(def.nodes.len());
    let mut vpc_cidrs: BTreeMap<usize, Cidr> = BTreeMap::new();
    let mut subnet_info: Vec<(usize, usize, Cidr)> = Vec::new(); // (subnet idx, vpc idx, cidr)
    let mut vpc_of: BTreeMap<usize, usize> = BTreeMap::new(); // subnet/firewall -> vpc

    // First pass: VPC CIDRs, so subnets can be checked regardless of order.
    for (i, n) in def.nodes.iter().enumerate() {
        if let NodeSpec::Vpc(v) = &n.spec {
            if let Some(c) = parse_cidr(&mut ctx, &n.path, "VPC CIDR", &v.cidr) {
                if !(8..=28).contains(&c.prefix()) {
                    let p = ctx.full(&n.path);
                    ctx.diags.push(
                        "cidr-size",
                        p,
                        format!("VPC block {c} must have a prefix between /8 and /28"),
                        "use for example a /16",
                    );
                }
                vpc_cidrs.insert(i, c);
            }
        }
    }

    for (i, n) in def.nodes.iter().enumerate() {
        let path = n.path.clone();
        let provider_name = n.provider.clone().unwrap_or_else(|| def.provider.clone());
        let cat = catalogs.iter().copied().find(|c| c.provider == provider_name);
        let mut fields: BTreeMap<String, Expr> = BTreeMap::new();
        let base = physical_name(&stack, &path);
        fields.insert("name".into(), Expr::PhysicalName(base.clone()));
        fields.insert("region".into(), Expr::lit(&region_s));
        let mut tags: BTreeMap<String, Expr> =
            def.tags.iter().chain(n.tags.iter()).map(|(k, v)| (k.clone(), Expr::lit(v))).collect();
        tags.insert(TAG_STACK.into(), Expr::lit(&stack));
        tags.insert(TAG_PATH.into(), Expr::lit(&path));
        tags.insert(TAG_NAME.into(), Expr::PhysicalName(base));
        fields.insert("tags".into(), Expr::Map(tags));
        let mut explicit: Vec<usize> = Vec::new();
        for d in &n.depends_on {
            let what = "depends_on";
            if d.stack != def.serial || d.index as usize >= def.nodes.len() {
                let p = ctx.full(&path);
                ctx.diags.push(
                    "dangling-reference",
                    p,
                    format!("{what} points to no resource of this stack"),
                    "depend on a resource of the same stack",
                );
            } else {
                explicit.push(d.index as usize);
            }
        }

        match &n.spec {
            NodeSpec::Vpc(v) => {
                fields.insert("cidr".into(), Expr::lit(canonical_cidr(&v.cidr)));
            }
            NodeSpec::Subnet(s) => {
                let vpc = ctx.target(&path, s.vpc.erase(), Kind::Vpc, "the subnet's VPC");
                let cidr = parse_cidr(&mut ctx, &path, "subnet CIDR", &s.cidr);
                if let (Some(v), Some(c)) = (vpc, cidr) {
                    vpc_of.insert(i, v);
                    if let Some(vc) = vpc_cidrs.get(&v) {
                        if !vc.contains(&c) {
                            let p = ctx.full(&path);
                            ctx.diags.push(
                                "cidr-outside-vpc",
                                p,
                                format!("subnet block {c} is outside its VPC's block {vc}"),
                                format!("pick a block inside {vc}"),
                            );
                        }
                    }
                    subnet_info.push((i, v, c));
                }
                if let Some(c) = cat {
                    if c.min_zones > 0 && s.zone >= c.min_zones {
                        let p = ctx.full(&path);
                        ctx.diags.push(
                            "zone-out-of-range",
                            p,
                            format!(
                                "zone index {} does not exist: provider `{}` guarantees {} zone(s) per region",
                                s.zone, c.provider, c.min_zones
                            ),
                            format!("use a zone index below {}", c.min_zones),
                        );
                    }
                }
                fields.insert(
                    "vpc_id".into(),
                    vpc.map(|v| Expr::id_of(v, &def.nodes[v].path)).unwrap_or(Expr::Lit(Value::Null)),
                );
                fields.insert("cidr".into(), Expr::lit(canonical_cidr(&s.cidr)));
                fields.insert("zone".into(), Expr::lit(s.zone));
                fields.insert("public".into(), Expr::lit(s.public));
            }
            NodeSpec::Firewall(f) => {
                let vpc = ctx.target(&path, f.vpc.erase(), Kind::Vpc, "the firewall's VPC");
                if let Some(v) = vpc {
                    vpc_of.insert(i, v);
                }
                let mut ingress = Vec::new();
                let mut egress = Vec::new();
                let mut rules = f.rules.clone();
                if f.default_egress {
                    rules.push(crate::model::Egress::all().to_anywhere());
                }
                // A rule given twice (or the default egress restated) is one rule to every cloud.
                let mut seen_rules = Vec::with_capacity(rules.len());
                rules.retain(|r| {
                    let dup = seen_rules.contains(r);
                    if !dup {
                        seen_rules.push(r.clone());
                    }
                    !dup
                });
                for (ri, r) in rules.iter().enumerate() {
                    let dir = if r.ingress { "ingress" } else { "egress" };
                    let what = format!("{dir} rule #{ri}");
                    let ported = matches!(r.protocol, crate::model::Protocol::Tcp | crate::model::Protocol::Udp);
                    if ported {
                        for port in [r.from_port, r.to_port] {
                            if !(1..=65535).contains(&port) {
                                let p = ctx.full(&path);
                                ctx.diags.push(
                                    "port-out-of-range",
                                    p,
                                    format!("{what}: port {port} is outside 1..=65535"),
                                    "use a port from 1 to 65535",
                                );
                            }
                        }
                        if r.from_port > r.to_port {
                            let p = ctx.full(&path);
                            ctx.diags.push(
                                "port-out-of-range",
                                p,
                                format!("{what}: range {}-{} is reversed", r.from_port, r.to_port),
                                "write the lower port first",
                            );
                        }
                    }
                    let peer = match &r.peer {
                        RulePeer::Anywhere => Expr::Map(BTreeMap::from([("cidr".to_string(), Expr::lit("0.0.0.0/0"))])),
                        RulePeer::Cidr(c) => {
                            parse_cidr(&mut ctx, &path, &what, c);
                            Expr::Map(BTreeMap::from([("cidr".to_string(), Expr::lit(canonical_cidr(c)))]))
                        }
                        RulePeer::Firewall(fw) => match ctx.target(&path, fw.erase(), Kind::Firewall, &what) {
                            Some(t) => Expr::Map(BTreeMap::from([(
                                "firewall".to_string(),
                                Expr::id_of(t, &def.nodes[t].path),
                            )])),
                            None => Expr::Lit(Value::Null),
                        },
                    };
                    let (from, to) = if ported { (r.from_port.min(65535), r.to_port.min(65535)) } else { (0, 0) };
                    let rule = Expr::Map(BTreeMap::from([
                        ("protocol".to_string(), Expr::lit(r.protocol)),
                        ("from_port".to_string(), Expr::lit(from)),
                        ("to_port".to_string(), Expr::lit(to)),
                        ("peer".to_string(), peer),
                    ]));
                    if r.ingress {
                        ingress.push(rule);
                    } else {
                        egress.push(rule);
                    }
                }
                fields.insert(
                    "vpc_id".into(),
                    vpc.map(|v| Expr::id_of(v, &def.nodes[v].path)).unwrap_or(Expr::Lit(Value::Null)),
                );
                fields.insert("ingress".into(), Expr::List(ingress));
                fields.insert("egress".into(), Expr::List(egress));
            }
            NodeSpec::Vm(vm) => {
                let subnet = ctx.target(&path, vm.subnet.erase(), Kind::Subnet, "the VM's subnet");
                let fws: Vec<Option<usize>> = vm
                    .firewalls
                    .iter()
                    .map(|f| ctx.target(&path, f.erase(), Kind::Firewall, "a VM firewall"))
                    .collect();
                if let Some(c) = cat {
                    let size = vm.size.slug();
                    if c.vm_size(&size).is_none() {
                        let p = ctx.full(&path);
                        let offered: Vec<&str> = c.vm_sizes.iter().map(|o| o.slug.as_str()).collect();
                        ctx.diags.push(
                            "unknown-size",
                            p,
                            format!("provider `{}` offers no VM size `{size}`", c.provider),
                            format!("use one of: {}", offered.join(", ")),
                        );
                    }
                    let image = vm.image.slug();
                    if c.image(&image).is_none() {
                        let p = ctx.full(&path);
                        let offered: Vec<&str> = c.images.iter().map(|o| o.slug.as_str()).collect();
                        ctx.diags.push(
                            "unknown-image",
                            p,
                            format!("provider `{}` offers no image `{image}`", c.provider),
                            format!("use one of: {}", offered.join(", ")),
                        );
                    }
                }
                if vm.user_data.as_ref().is_some_and(|u| u.len() > 16 * 1024) {
                    let p = ctx.full(&path);
                    ctx.diags.push(
                        "user-data-too-large",
                        p,
                        "user data is larger than 16 KiB",
                        "move the script to an image or fetch it at boot",
                    );
                }
                let mut env = BTreeMap::new();
                for (k, v) in &vm.env {
                    if k.is_empty()
                        || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        || k.as_bytes()[0].is_ascii_digit()
                    {
                        let p = ctx.full(&path);
                        ctx.diags.push(
                            "invalid-env",
                            p,
                            format!("environment variable name `{k}` is not valid"),
                            "use letters, digits and '_', not starting with a digit",
                        );
                    }
                    let e = match v {
                        crate::model::EnvValue::Literal(s) => Expr::lit(s),
                        crate::model::EnvValue::Output(o) => {
                            let expect =
                                def.nodes.get(o.source.index as usize).map(|n| n.spec.kind()).unwrap_or(Kind::Vm);
                            match ctx.target(&path, o.source, expect, &format!("env `{k}`")) {
                                Some(t) => Expr::Attr {
                                    node: t,
                                    path: def.nodes[t].path.clone(),
                                    attr: o.attr.to_string(),
                                    secret: o.secret,
                                },
                                None => Expr::Lit(Value::Null),
                            }
                        }
                    };
                    env.insert(k.clone(), e);
                }
                if let (Some(s), true) = (subnet, !fws.is_empty()) {
                    if let Some(sv) = vpc_of_node(def, s) {
                        for f in fws.iter().flatten() {
                            if vpc_of_node(def, *f).is_some_and(|fv| fv != sv) {
                                let p = ctx.full(&path);
                                ctx.diags.push(
                                    "vpc-mismatch",
                                    p,
                                    format!(
                                        "firewall `{}` belongs to another VPC than subnet `{}`",
                                        def.nodes[*f].path, def.nodes[s].path
                                    ),
                                    "attach firewalls of the subnet's VPC",
                                );
                            }
                        }
                    }
                }
                fields.insert("image".into(), Expr::lit(vm.image.slug()));
                fields.insert("size".into(), Expr::lit(vm.size.slug()));
                fields.insert(
                    "subnet_id".into(),
                    subnet.map(|s| Expr::id_of(s, &def.nodes[s].path)).unwrap_or(Expr::Lit(Value::Null)),
                );
                fields.insert(
                    "firewall_ids".into(),
                    Expr::List(fws.iter().flatten().map(|f| Expr::id_of(*f, &def.nodes[*f].path)).collect()),
                );
                fields.insert("user_data".into(), Expr::lit(&vm.user_data));
                fields.insert("env".into(), Expr::Map(env));
                fields.insert("ssh_keys".into(), Expr::lit(&vm.ssh_keys));
                fields.insert("assign_public_ip".into(), Expr::lit(vm.public_ip));
            }
            NodeSpec::Database(db) => {
                let subnets: Vec<Option<usize>> = db
                    .subnets
                    .iter()
                    .map(|s| ctx.target(&path, s.erase(), Kind::Subnet, "a database subnet"))
                    .collect();
                let fws: Vec<Option<usize>> = db
                    .firewalls
                    .iter()
                    .map(|f| ctx.target(&path, f.erase(), Kind::Firewall, "a database firewall"))
                    .collect();
                if db.subnets.is_empty() {
                    let p = ctx.full(&path);
                    ctx.diags.push(
                        "missing-subnets",
                        p,
                        "a database needs at least one subnet",
                        "pass the private subnets it should live in",
                    );
                }
                if let Some(c) = cat {
                    let versions = c.engine_versions(db.engine);
                    if !versions.iter().any(|v| v == &db.version) {
                        let p = ctx.full(&path);
                        ctx.diags.push(
                            "unknown-engine-version",
                            p,
                            format!(
                                "provider `{}` offers no {} version `{}`",
                                c.provider,
                                db.engine.as_str(),
                                db.version
                            ),
                            if versions.is_empty() {
                                format!("provider `{}` offers no {}", c.provider, db.engine.as_str())
                            } else {
                                format!("use one of: {}", versions.join(", "))
                            },
                        );
                    }
                    let size = db.size.slug();
                    if c.db_size(&size).is_none() {
                        let p = ctx.full(&path);
                        let offered: Vec<&str> = c.db_sizes.iter().map(|o| o.slug.as_str()).collect();
                        ctx.diags.push(
                            "unknown-size",
                            p,
                            format!("provider `{}` offers no database size `{size}`", c.provider),
                            format!("use one of: {}", offered.join(", ")),
                        );
                    }
                }
                if db.engine != crate::model::Engine::Redis && !(20..=65_536).contains(&db.storage_gb) {
                    let p = ctx.full(&path);
                    ctx.diags.push(
                        "storage-out-of-range",
                        p,
                        format!("storage of {} GiB is outside 20..=65536", db.storage_gb),
                        "use between 20 and 65536 GiB",
                    );
                }
                if db.backup_retention_days > 35 {
                    let p = ctx.full(&path);
                    ctx.diags.push(
                        "backups-out-of-range",
                        p,
                        format!("backup retention of {} days exceeds 35", db.backup_retention_days),
                        "use 0 to 35 days; archive older backups as snapshots",
                    );
                }
                if let SecretSource::Generated { len } = db.password {
                    if !(16..=128).contains(&len) {
                        let p = ctx.full(&path);
                        ctx.diags.push(
                            "weak-secret",
                            p,
                            format!("generated password length {len} is outside 16..=128"),
                            "use at least 16 characters",
                        );
                    }
                }
                let zones: BTreeSet<u8> = subnets
                    .iter()
                    .flatten()
                    .filter_map(|s| match &def.nodes[*s].spec {
                        NodeSpec::Subnet(sn) => Some(sn.zone),
                        _ => None,
                    })
                    .collect();
                if db.high_availability && zones.len() < 2 && !db.subnets.is_empty() {
                    let p = ctx.full(&path);
                    ctx.diags.push(
                        "ha-needs-two-zones",
                        p,
                        "high availability needs subnets in at least two zones",
                        "add a subnet in a second zone",
                    );
                }
                fields.insert("engine".into(), Expr::lit(db.engine));
                fields.insert("version".into(), Expr::lit(&db.version));
                fields.insert("size".into(), Expr::lit(db.size.slug()));
                fields.insert("storage_gb".into(), Expr::lit(db.storage_gb));
                fields.insert(
                    "subnet_ids".into(),
                    Expr::List(subnets.iter().flatten().map(|s| Expr::id_of(*s, &def.nodes[*s].path)).collect()),
                );
                fields.insert(
                    "firewall_ids".into(),
                    Expr::List(fws.iter().flatten().map(|f| Expr::id_of(*f, &def.nodes[*f].path)).collect()),
                );
                fields.insert("backup_retention_days".into(), Expr::lit(db.backup_retention_days));
                fields.insert("encrypted".into(), Expr::lit(db.encrypted));
                fields.insert("high_availability".into(), Expr::lit(db.high_availability));
                fields.insert("deletion_protection".into(), Expr::lit(db.deletion_protection));
                fields.insert("apply_immediately".into(), Expr::lit(db.apply_immediately));
                fields.insert("password".into(), Expr::Secret(db.password.clone()));
            }
        }
        let mut deps = BTreeSet::new();
        for e in fields.values() {
            e.refs(&mut deps);
        }
        deps.extend(explicit);
        deps.remove(&i);
        let deps: Vec<usize> = deps.into_iter().collect();
        let depends_on = deps.iter().map(|d| def.nodes[*d].path.clone()).collect();
        let health = match &n.spec {
            NodeSpec::Vm(vm) => vm.health.clone(),
            _ => None,
        };
        resources.push(SynthResource {
            path,
            kind: n.spec.kind(),
            provider: provider_name,
            deps,
            depends_on,
            fields,
            health,
        });
    }

    // Cross-VPC wiring, subnet capacity and physical-name collisions.
    let vpc_index = |i: usize| vpc_of_node(def, i).filter(|r| r.stack == def.serial).map(|r| r.index as usize);
    let mut vms_per_subnet: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, n) in def.nodes.iter().enumerate() {
        let in_stack =
            |r: NodeRef| (r.stack == def.serial && (r.index as usize) < def.nodes.len()).then_some(r.index as usize);
        match &n.spec {
            NodeSpec::Database(db) => {
                let vpcs: BTreeSet<usize> =
                    db.subnets.iter().filter_map(|s| in_stack(s.erase())).filter_map(vpc_index).collect();
                if vpcs.len() > 1 {
                    let p = ctx.full(&n.path);
                    ctx.diags.push(
                        "vpc-mismatch",
                        p,
                        "the database's subnets belong to different VPCs",
                        "put all of a database's subnets in one VPC",
                    );
                }
                if let Some(v) = vpcs.iter().next() {
                    for f in db.firewalls.iter().filter_map(|f| in_stack(f.erase())) {
                        if vpc_index(f).is_some_and(|fv| fv != *v) {
                            let p = ctx.full(&n.path);
                            ctx.diags.push(
                                "vpc-mismatch",
                                p,
                                format!(
                                    "firewall `{}` belongs to another VPC than the database's subnets",
                                    def.nodes[f].path
                                ),
                                "attach firewalls of the database's VPC",
                            );
                        }
                    }
                }
            }
            NodeSpec::Firewall(fw) => {
                let own = in_stack(fw.vpc.erase());
                for r in &fw.rules {
                    if let RulePeer::Firewall(peer) = &r.peer {
                        if let (Some(own), Some(pv)) = (own, in_stack(peer.erase()).and_then(vpc_index)) {
                            if own != pv {
                                let p = ctx.full(&n.path);
                                ctx.diags.push(
                                    "vpc-mismatch",
                                    p,
                                    format!(
                                        "a rule names firewall `{}` of another VPC",
                                        def.nodes[peer.index as usize].path
                                    ),
                                    "reference firewalls of the same VPC, or use the other VPC's CIDR",
                                );
                            }
                        }
                    }
                }
            }
            NodeSpec::Vm(vm) => {
                if let Some(sn) = in_stack(vm.subnet.erase()) {
                    *vms_per_subnet.entry(sn).or_default() += 1;
                }
            }
            _ => {}
        }
        let _ = i;
    }
    for (sn, count) in vms_per_subnet {
        if let Some((_, _, c)) = subnet_info.iter().find(|(i, _, _)| *i == sn) {
            // Clouds reserve a few addresses per subnet (AWS: 5); keep to the strictest.
            let capacity = (1u64 << (32 - u32::from(c.prefix()))).saturating_sub(5);
            if count as u64 > capacity {
                let p = ctx.full(&def.nodes[sn].path);
                ctx.diags.push(
                    "subnet-too-small",
                    p,
                    format!("{count} VMs do not fit in {c}, which holds {capacity} addresses"),
                    "use a larger subnet or spread the VMs over several",
                );
            }
        }
    }
    let mut physical: BTreeMap<String, &str> = BTreeMap::new();
    for n in &def.nodes {
        let name = physical_name(&stack, &n.path);
        if let Some(first) = physical.insert(name.clone(), n.path.as_str()) {
            if first != n.path {
                let p = ctx.full(&n.path);
                ctx.diags.push(
                    "duplicate-name",
                    p,
                    format!("`{}` and `{first}` both get the physical name `{name}`", n.path),
                    "rename one of them: '/' and '-' map to the same character in names",
                );
            }
        }
    }

    // Overlapping subnets within one VPC.
    for (a, (ia, va, ca)) in subnet_info.iter().enumerate() {
        for (ib, vb, cb) in subnet_info.iter().skip(a + 1) {
            if va == vb && ca.overlaps(cb) {
                let p = ctx.full(&def.nodes[*ib].path);
                ctx.diags.push(
                    "overlapping-subnets",
                    p,
                    format!("subnet block {cb} overlaps {ca} of `{}`", def.nodes[*ia].path),
                    "give every subnet of a VPC its own block",
                );
            }
        }
    }

    // Cycles.
    for cycle in find_cycles(&resources) {
        let names: Vec<&str> = cycle.iter().map(|i| resources[*i].path.as_str()).collect();
        let p = ctx.full(names.first().copied().unwrap_or(""));
        ctx.diags.push(
            "cycle",
            p,
            format!("dependency cycle: {}", names.join(" -> ")),
            "break the cycle: remove one of these references or depends_on edges",
        );
    }

    // Exports.
    let mut exports = Vec::new();
    let mut export_names = BTreeSet::new();
    for (name, out) in &def.exports {
        if !export_names.insert(name.clone()) {
            ctx.diags.push(
                "duplicate-export",
                stack.clone(),
                format!("output `{name}` is exported twice"),
                "give each export a unique name",
            );
        }
        let expect = def.nodes.get(out.source.index as usize).map(|n| n.spec.kind()).unwrap_or(Kind::Vm);
        if let Some(t) = ctx.target(name, out.source, expect, &format!("export `{name}`")) {
            exports.push(SynthExport {
                name: name.clone(),
                node: t,
                from: def.nodes[t].path.clone(),
                attr: out.attr.to_string(),
                secret: out.secret,
            });
        }
    }

    // Moves.
    let mut moved_from = BTreeSet::new();
    for (from, to) in &def.moved {
        if !moved_from.insert(from.clone()) {
            ctx.diags.push(
                "duplicate-move",
                stack.clone(),
                format!("`{from}` is moved twice"),
                "keep one moved declaration per old path",
            );
        }
        if !seen.contains_key(to.as_str()) {
            ctx.diags.push(
                "dangling-move",
                stack.clone(),
                format!("moved target `{to}` is not a resource of the stack"),
                "point `moved` at the resource's new path",
            );
        }
    }

    if let Some(b) = def.budget.filter(|b| !(b.monthly_usd.is_finite() && b.monthly_usd >= 0.0)) {
        ctx.diags.push(
            "invalid-budget",
            stack.clone(),
            format!("budget cap {} is not a monthly amount in USD", b.monthly_usd),
            "pass a finite, non-negative number of USD per month to `Stack::budget`",
        );
    }

    let mut diags = ctx.diags;
    if !diags.is_empty() {
        diags.0.sort();
        diags.0.dedup();
        return Err(diags);
    }
    Ok(Synthesized {
        name: stack,
        stage: def.stage,
        provider: def.provider.clone(),
        placement: def.placement.clone(),
        region: region.unwrap_or_default(),
        resources,
        exports,
        moved: def.moved.clone(),
        budget: def.budget,
    })
}

fn vpc_of_node(def: &StackDef, i: usize) -> Option<NodeRef> {
    match &def.nodes.get(i)?.spec {
        NodeSpec::Subnet(s) => Some(s.vpc.erase()),
        NodeSpec::Firewall(f) => Some(f.vpc.erase()),
        _ => None,
    }
}

/// The canonical text of a CIDR (`10.0.0.0/016` -> `10.0.0.0/16`), as clouds report it, so
/// state never differs from the cloud in spelling only. Unparsable text is kept (and reported).
fn canonical_cidr(s: &str) -> String {
    s.parse::<Cidr>().map(|c| c.to_string()).unwrap_or_else(|_| s.to_string())
}

/// The deterministic physical name of a resource: `<stack>-<path with '/' as '-'>`.
pub fn physical_name(stack: &str, path: &str) -> String {
    format!("{stack}-{}", path.replace('/', "-"))
}

/// Every elementary cycle found by a depth-first search, each reported once, starting at its
/// smallest index, closed (first element repeated at the end).
fn find_cycles(resources: &[SynthResource]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; resources.len()];
    let mut stack: Vec<usize> = Vec::new();
    let mut found: BTreeSet<Vec<usize>> = BTreeSet::new();
    // Iterative DFS to survive 10,000-deep chains.
    for start in 0..resources.len() {
        if marks[start] != Mark::New {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Active;
        stack.push(start);
        while let Some((node, next)) = work.last_mut() {
            let n = *node;
            if let Some(&d) = resources[n].deps.get(*next) {
                *next += 1;
                match marks.get(d).copied() {
                    Some(Mark::New) => {
                        marks[d] = Mark::Active;
                        stack.push(d);
                        work.push((d, 0));
                    }
                    Some(Mark::Active) => {
                        if let Some(pos) = stack.iter().position(|x| *x == d) {
                            let mut cyc: Vec<usize> = stack[pos..].to_vec();
                            let min_pos = cyc.iter().enumerate().min_by_key(|(_, v)| **v).map(|(i, _)| i).unwrap_or(0);
                            cyc.rotate_left(min_pos);
                            cyc.push(cyc[0]);
                            found.insert(cyc);
                        }
                    }
                    _ => {}
                }
            } else {
                marks[n] = Mark::Done;
                stack.pop();
                work.pop();
            }
        }
    }
    found.into_iter().collect()
}

/// A compact JSON view of a literal field, for tests and renderers.
pub fn lit(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
