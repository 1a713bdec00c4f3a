//! The stack under construction: a tree of scopes in which every added resource gets a stable
//! logical path (`network/vpc`) and a typed handle. Nothing here validates or talks to a cloud:
//! `synth()` does the first, the engine the second.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::base::diag::is_valid_id;
use crate::kind::{Node, ResourceKind};
use crate::model::placement::{Budget, Placement, Stage, SIMULATED};
use crate::model::refs::{NodeRef, Output, Ref};

static STACK_SERIAL: AtomicU32 = AtomicU32::new(1);

#[derive(Debug, Clone)]
pub(crate) struct NodeDef {
    /// Where its id starts in `path` (the id is the path's last segment as given).
    id_at: usize,
    pub(crate) path: String,
    pub(crate) spec: Node,
    pub(crate) depends_on: Vec<NodeRef>,
    pub(crate) provider: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
}

impl NodeDef {
    /// The id it was added under.
    pub(crate) fn id(&self) -> &str {
        self.path.get(self.id_at..).unwrap_or_default()
    }
}

/// Where a declared stack output comes from.
#[derive(Debug, Clone)]
pub(crate) enum ExportDef {
    /// An attribute of one of the stack's resources, known once it exists.
    Output(Output<String>),
    /// A value fixed when the stack is built.
    Value(String),
}

#[derive(Debug)]
pub(crate) struct StackDef {
    pub(crate) serial: u32,
    pub(crate) name: String,
    pub(crate) placement: Placement,
    pub(crate) stage: Stage,
    pub(crate) provider: String,
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) exports: Vec<(String, ExportDef)>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) moved: Vec<(String, String)>,
    pub(crate) scope_errors: Vec<(String, String)>,
    pub(crate) budget: Option<Budget>,
}

/// A stack under construction: a cheap, cloneable handle (clones share the same stack).
#[derive(Debug, Clone)]
pub struct Stack {
    inner: Arc<Mutex<StackDef>>,
}

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

    /// Give the stack another name before it is synthesized (a preview environment of a branch
    /// is the same stack under its own name, so its own state and tags). Synth checks the name
    /// like any other.
    pub fn rename(&self, name: impl Into<String>) -> &Self {
        self.lock().name = name.into();
        self
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
    /// (see `cost::check_budget`). Calling it again replaces the cap.
    pub fn budget(&self, monthly_usd: f64) -> &Self {
        self.lock().budget = Some(Budget::new(monthly_usd));
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
    pub fn add<R: ResourceKind>(&self, id: &str, resource: R) -> Ref<R> {
        self.root().add(id, resource)
    }

    /// Export a value as a stack output: text, or any other value an output holds (a list of
    /// name servers, a certificate's validation records).
    pub fn export<T>(&self, name: impl Into<String>, value: Output<T>) {
        self.lock().exports.push((name.into(), ExportDef::Output(value.retype())));
    }

    /// Export a value known when the stack is built (`https://shop.example.com`) as a stack
    /// output, next to the ones that point at resources. It is never secret: do not export a
    /// secret this way.
    pub fn export_value(&self, name: impl Into<String>, value: impl Into<String>) {
        self.lock().exports.push((name.into(), ExportDef::Value(value.into())));
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
        if !is_valid_id(id) {
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
    pub fn add<R: ResourceKind>(&self, id: &str, resource: R) -> Ref<R> {
        let path = self.child_path(id);
        let mut def = self.stack.lock();
        let index = def.nodes.len() as u32;
        let serial = def.serial;
        def.nodes.push(NodeDef {
            id_at: path.len() - id.len(),
            path,
            spec: Node::new(resource),
            depends_on: Vec::new(),
            provider: None,
            tags: self.tags.clone(),
        });
        Ref::new(serial, index)
    }
}
