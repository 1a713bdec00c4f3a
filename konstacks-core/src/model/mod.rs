//! The stack model and its builder DSL.
//!
//! A [`Stack`] is a tree of scopes; every resource added gets a stable logical path
//! (`network/vpc`) and a typed, `Copy` handle [`Ref<T>`]. Values that exist only after apply are
//! [`Output<T>`]; using one records a dependency edge. Nothing here talks to a cloud: see
//! [`crate::validate`] for `synth()` and [`crate::engine`] for plan and apply.

mod resources;

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use resources::{
    Database, DbSize, Egress, Engine, EnvValue, Firewall, HealthCheck, HealthGate, Image, Ingress, Kind, Peer,
    Protocol, Rule, RulePorts, Subnet, Vm, VmSize, Vpc,
};
pub(crate) use resources::{NodeSpec, RulePeer};

/// A deployment stage: one template produces every environment.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Development: small and cheap.
    Dev,
    /// Staging: like prod, smaller.
    Staging,
    /// Production.
    Prod,
}

impl Stage {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dev => "dev",
            Stage::Staging => "staging",
            Stage::Prod => "prod",
        }
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dev" => Ok(Stage::Dev),
            "staging" => Ok(Stage::Staging),
            "prod" | "production" => Ok(Stage::Prod),
            other => Err(format!("unknown stage `{other}` (expected dev, staging or prod)")),
        }
    }
}

/// A legal area data may be kept in.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jurisdiction {
    /// European Union / European Economic Area (GDPR).
    Eu,
    /// United Kingdom (UK GDPR).
    Uk,
    /// Switzerland (FADP).
    Switzerland,
    /// South Africa (POPIA).
    SouthAfrica,
    /// Nigeria (NDPA).
    Nigeria,
    /// Kenya (DPA).
    Kenya,
    /// Israel.
    Israel,
    /// United Arab Emirates.
    Uae,
    /// Bahrain.
    Bahrain,
    /// Qatar (PDPPL).
    Qatar,
    /// Saudi Arabia (PDPL).
    SaudiArabia,
    /// India (DPDP).
    India,
    /// Singapore (PDPA).
    Singapore,
    /// Japan (APPI).
    Japan,
    /// South Korea (PIPA).
    SouthKorea,
    /// Indonesia (PDP).
    Indonesia,
    /// Hong Kong.
    HongKong,
    /// Taiwan (PDPA).
    Taiwan,
    /// Australia.
    Australia,
    /// Brazil (LGPD).
    Brazil,
    /// Chile.
    Chile,
    /// Canada (PIPEDA).
    Canada,
    /// Mexico (LFPDPPP).
    Mexico,
    /// United States.
    Us,
}

impl Jurisdiction {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Jurisdiction::Eu => "eu",
            Jurisdiction::Uk => "uk",
            Jurisdiction::Switzerland => "switzerland",
            Jurisdiction::SouthAfrica => "south_africa",
            Jurisdiction::Nigeria => "nigeria",
            Jurisdiction::Kenya => "kenya",
            Jurisdiction::Israel => "israel",
            Jurisdiction::Uae => "uae",
            Jurisdiction::Bahrain => "bahrain",
            Jurisdiction::Qatar => "qatar",
            Jurisdiction::SaudiArabia => "saudi_arabia",
            Jurisdiction::India => "india",
            Jurisdiction::Singapore => "singapore",
            Jurisdiction::Japan => "japan",
            Jurisdiction::SouthKorea => "south_korea",
            Jurisdiction::Indonesia => "indonesia",
            Jurisdiction::HongKong => "hong_kong",
            Jurisdiction::Taiwan => "taiwan",
            Jurisdiction::Australia => "australia",
            Jurisdiction::Brazil => "brazil",
            Jurisdiction::Chile => "chile",
            Jurisdiction::Canada => "canada",
            Jurisdiction::Mexico => "mexico",
            Jurisdiction::Us => "us",
        }
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a stack runs: a named region, or any region of a jurisdiction.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Exactly this region of the provider.
    Region(String),
    /// The provider's preferred region within this jurisdiction.
    Within(Jurisdiction),
    /// A region, which must also lie within the jurisdiction (checked by `synth`).
    RegionWithin(String, Jurisdiction),
}

impl Placement {
    /// A named region.
    pub fn region(name: impl Into<String>) -> Self {
        Placement::Region(name.into())
    }
    /// Any region of a jurisdiction.
    pub fn within(j: Jurisdiction) -> Self {
        Placement::Within(j)
    }
    /// A named region that must lie within `j`.
    pub fn region_within(name: impl Into<String>, j: Jurisdiction) -> Self {
        Placement::RegionWithin(name.into(), j)
    }
}

static STACK_SERIAL: AtomicU32 = AtomicU32::new(1);

/// A typed handle to a resource added to a stack. `Copy`, and typed: a `Ref<Subnet>` cannot be
/// passed where a `Ref<Vpc>` is expected.
pub struct Ref<T> {
    pub(crate) stack: u32,
    pub(crate) index: u32,
    _kind: PhantomData<fn() -> T>,
}

impl<T> Ref<T> {
    fn new(stack: u32, index: u32) -> Self {
        Self { stack, index, _kind: PhantomData }
    }

    pub(crate) fn erase(&self) -> NodeRef {
        NodeRef { stack: self.stack, index: self.index }
    }

    pub(crate) fn output<O>(&self, attr: &'static str, secret: bool) -> Output<O> {
        Output { source: self.erase(), attr, secret, _t: PhantomData }
    }
}

impl<T> Clone for Ref<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Ref<T> {}
impl<T> PartialEq for Ref<T> {
    fn eq(&self, other: &Self) -> bool {
        self.stack == other.stack && self.index == other.index
    }
}
impl<T> Eq for Ref<T> {}
impl<T> fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ref({}#{})", self.stack, self.index)
    }
}

/// A type-erased reference to a node: which stack, which position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct NodeRef {
    pub(crate) stack: u32,
    pub(crate) index: u32,
}

/// A value known only after the resource it comes from has been applied. Using it in another
/// resource records a dependency edge; a secret output stays redacted everywhere.
pub struct Output<T> {
    pub(crate) source: NodeRef,
    pub(crate) attr: &'static str,
    pub(crate) secret: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Output<T> {
    fn clone(&self) -> Self {
        Self { source: self.source, attr: self.attr, secret: self.secret, _t: PhantomData }
    }
}

impl<T> fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Output({}#{}.{})", self.source.stack, self.source.index, self.attr)
    }
}

impl<T> Output<T> {
    /// Whether the value is secret.
    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

/// Opaque typed description of a resource, produced by [`Resource::into_spec`].
#[derive(Debug, Clone)]
pub struct ResourceSpec(pub(crate) NodeSpec);

/// A kind of resource that can be added to a stack.
pub trait Resource: Sized + 'static {
    /// The kind.
    const KIND: Kind;
    /// The typed description the engine works from.
    fn into_spec(self) -> ResourceSpec;
}

#[derive(Debug, Clone)]
pub(crate) struct NodeDef {
    pub(crate) id: String,
    pub(crate) path: String,
    pub(crate) spec: NodeSpec,
    pub(crate) depends_on: Vec<NodeRef>,
    pub(crate) provider: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
}

#[derive(Debug)]
pub(crate) struct StackDef {
    pub(crate) serial: u32,
    pub(crate) name: String,
    pub(crate) placement: Placement,
    pub(crate) stage: Stage,
    pub(crate) provider: String,
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) exports: Vec<(String, Output<String>)>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) moved: Vec<(String, String)>,
    pub(crate) scope_errors: Vec<(String, String)>,
    pub(crate) budget: Option<crate::cost::Budget>,
}

/// A stack under construction: a cheap, cloneable handle (clones share the same stack).
#[derive(Debug, Clone)]
pub struct Stack {
    inner: Arc<Mutex<StackDef>>,
}

/// The name of the embedded simulated cloud provider.
pub const SIMULATED: &str = "sim";

impl Stack {
    /// A new stack named `name` (also the prefix of every physical name), placed and staged.
    /// Resources go to the embedded simulated cloud unless [`Stack::provider`] says otherwise.
    pub fn new(name: impl Into<String>, placement: Placement, stage: Stage) -> Self {
        let def = StackDef {
            serial: STACK_SERIAL.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            placement,
            stage,
            provider: SIMULATED.to_string(),
            nodes: Vec::new(),
            exports: Vec::new(),
            tags: BTreeMap::new(),
            moved: Vec::new(),
            scope_errors: Vec::new(),
            budget: None,
        };
        Self { inner: Arc::new(Mutex::new(def)) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, StackDef> {
        // A panic while holding this lock can only come from user code inside a builder; the
        // data is still consistent (every mutation is a single push), so recover it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stack's name.
    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    /// The stack's stage.
    pub fn stage(&self) -> Stage {
        self.lock().stage
    }

    /// Use the provider registered under `name` for every resource of this stack.
    pub fn provider(&self, name: impl Into<String>) -> &Self {
        self.lock().provider = name.into();
        self
    }

    /// A tag added to every resource of the stack (on top of the stack and path tags).
    pub fn tag(&self, key: impl Into<String>, value: impl Into<String>) -> &Self {
        self.lock().tags.insert(key.into(), value.into());
        self
    }

    /// Cap the stack's estimated monthly cost (USD). A plan whose estimate is over the cap, or
    /// that holds resources without a price, is refused before any cloud call
    /// (see [`crate::cost::check_budget`]). Calling it again replaces the cap.
    pub fn budget(&self, monthly_usd: f64) -> &Self {
        self.lock().budget = Some(crate::cost::Budget::new(monthly_usd));
        self
    }

    /// The root scope.
    pub fn root(&self) -> Scope {
        Scope { stack: self.clone(), prefix: String::new(), tags: BTreeMap::new() }
    }

    /// A child scope of the root.
    pub fn scope(&self, id: &str) -> Scope {
        self.root().scope(id)
    }

    /// Add a resource at the root.
    pub fn add<R: Resource>(&self, id: &str, resource: R) -> Ref<R> {
        self.root().add(id, resource)
    }

    /// Export a value as a stack output.
    pub fn export(&self, name: impl Into<String>, value: Output<String>) {
        self.lock().exports.push((name.into(), value));
    }

    /// Declare that the resource once at logical path `from` now lives at `to`: state is moved,
    /// nothing is recreated.
    pub fn moved(&self, from: impl Into<String>, to: impl Into<String>) {
        self.lock().moved.push((from.into(), to.into()));
    }

    /// Make `of` depend on `on` even though no data flows between them.
    pub fn depends_on<A, B>(&self, of: Ref<A>, on: Ref<B>) {
        let mut def = self.lock();
        if of.stack == def.serial {
            if let Some(n) = def.nodes.get_mut(of.index as usize) {
                n.depends_on.push(on.erase());
            }
        }
    }

    /// Place one resource on another registered provider than the stack's.
    pub fn place_on<A>(&self, of: Ref<A>, provider: impl Into<String>) {
        let mut def = self.lock();
        if of.stack == def.serial {
            if let Some(n) = def.nodes.get_mut(of.index as usize) {
                n.provider = Some(provider.into());
            }
        }
    }

    /// Number of resources added so far.
    pub fn len(&self) -> usize {
        self.lock().nodes.len()
    }

    /// Whether no resource has been added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A scope in the stack's tree: resources added through it get its path as prefix.
#[derive(Debug, Clone)]
pub struct Scope {
    stack: Stack,
    prefix: String,
    tags: BTreeMap<String, String>,
}

impl Scope {
    fn child_path(&self, id: &str) -> String {
        if self.prefix.is_empty() {
            id.to_string()
        } else {
            format!("{}/{}", self.prefix, id)
        }
    }

    /// A child scope.
    pub fn scope(&self, id: &str) -> Scope {
        let path = self.child_path(id);
        if !crate::validate::is_valid_id(id) {
            self.stack.lock().scope_errors.push((path.clone(), id.to_string()));
        }
        Scope { stack: self.stack.clone(), prefix: path, tags: self.tags.clone() }
    }

    /// A copy of this scope whose resources (and child scopes' resources) carry an extra tag,
    /// for example the client an agency site belongs to.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Scope {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// The scope's path.
    pub fn path(&self) -> &str {
        &self.prefix
    }

    /// The stack this scope belongs to.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// Add a resource under this scope. Never fails: problems are reported by `synth()`.
    pub fn add<R: Resource>(&self, id: &str, resource: R) -> Ref<R> {
        let path = self.child_path(id);
        let mut def = self.stack.lock();
        let index = def.nodes.len() as u32;
        let serial = def.serial;
        def.nodes.push(NodeDef {
            id: id.to_string(),
            path,
            spec: resource.into_spec().0,
            depends_on: Vec::new(),
            provider: None,
            tags: self.tags.clone(),
        });
        Ref::new(serial, index)
    }
}
