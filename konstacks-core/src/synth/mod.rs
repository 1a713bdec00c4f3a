//! `synth()`: turn a stack under construction into a validated, fully described stack, or
//! report every problem at once, each with the resource path and what to do. Runs before any
//! cloud call; reading a provider's [`Catalog`] is not a call.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use serde::Serialize;
use serde_json::Value;

pub use crate::base::diag::{
    id_problem, is_valid_id, stack_name_diagnostic, stack_name_problem, Diagnostic, Diagnostics, NameProblem,
    MAX_ID_LEN, STACK_NAME_RULE,
};
use crate::base::hash::{fast_map, FastMap};
use crate::kind::catalog::Catalog;
pub use crate::kind::expr::{AttrRef, Expr};
use crate::kind::field::tag_problem;
pub use crate::kind::field_map::FieldMap;
use crate::kind::{common, Kind, TAG_NAME, TAG_PATH, TAG_STACK};
use crate::kind::{LowerCx, NodeEntry, StackCx};
use crate::model::gate::HealthGate;
use crate::model::placement::{Budget, Placement, Stage};
use crate::model::refs::NodeRef;
use crate::stack::{ExportDef, NodeDef, StackDef};

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
    pub fields: FieldMap<Expr>,
    /// Zero-downtime replacement gate (VMs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthGate>,
    /// Fields its provider cannot change in place beyond the kind's own `force_new` (from the
    /// provider's catalogue): a change to one plans a replacement.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaced_on_change: Vec<String>,
}

/// A stack output.
#[derive(Debug, Clone, Serialize)]
pub struct SynthExport {
    /// Export name.
    pub name: String,
    /// Where its value comes from (`from` and `attr`, or `value`, in the serialized form).
    #[serde(flatten)]
    pub source: ExportSource,
    /// Whether it is secret.
    pub secret: bool,
}

/// Where a stack output's value comes from.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ExportSource {
    /// An attribute of one of the stack's resources, known once the resource exists.
    Attr {
        /// Index of the resource it comes from.
        #[serde(skip)]
        node: usize,
        /// Path of the resource it comes from.
        from: String,
        /// Attribute.
        attr: String,
    },
    /// A value fixed when the stack was built (`Stack::export_value`).
    Value {
        /// The value.
        value: String,
    },
}

impl SynthExport {
    /// The output's value, given `attr(node, from, attr)`: the attribute `attr` of the resource
    /// at index `node` and path `from`, `None` while it is known only after apply. It is the
    /// literal, the attribute, or `null`; secret outputs are redacted.
    pub fn value_with<'a>(&self, attr: impl FnOnce(usize, &str, &str) -> Option<&'a Value>) -> Value {
        if self.secret {
            return Value::String(crate::base::secret::REDACTED.into());
        }
        match &self.source {
            ExportSource::Attr { node, from, attr: a } => attr(*node, from, a).cloned().unwrap_or(Value::Null),
            ExportSource::Value { value } => Value::String(value.clone()),
        }
    }
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
    /// The monthly cost cap declared with `Stack::budget`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

impl Synthesized {
    /// Index of the resource at `path`.
    pub fn index_of(&self, path: &str) -> Option<usize> {
        self.resources.iter().position(|r| r.path == path)
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
}

/// The kinds a provider lacks are refused, naming the providers that offer them. `full` is the
/// resource's full path, built only to be reported.
fn check_offered(
    diags: &mut Diagnostics,
    full: impl FnOnce() -> String,
    kind: Kind,
    cat: &Catalog,
    catalogs: &[&Catalog],
) {
    if cat.offers_kind(kind.as_str()) && (kind.def().offered_by)(cat) {
        return;
    }
    let mut offering: Vec<&str> = catalogs
        .iter()
        .filter(|c| c.offers_kind(kind.as_str()) && (kind.def().offered_by)(c))
        .map(|c| c.provider.as_str())
        .collect();
    offering.sort_unstable();
    diags.push(
        "kind-not-offered",
        full(),
        format!("provider `{}` does not offer the `{kind}` kind", cat.provider),
        if offering.is_empty() {
            "no configured provider offers it; configure one that does".to_string()
        } else {
            format!("providers that offer it: {}; place the resource on one of them", offering.join(", "))
        },
    );
}

/// Lower one node: common fields (name, region, tags), then the kind's own.
fn lower_node(
    diags: &mut Diagnostics,
    def: &StackDef,
    catalogs: &[&Catalog],
    entries: &[NodeEntry<'_>],
    region: &str,
    i: usize,
    n: &NodeDef,
) -> SynthResource {
    let stack = &def.name;
    let path = n.path.clone();
    let provider_name = n.provider.clone().unwrap_or_else(|| def.provider.clone());
    let cat = catalogs.iter().copied().find(|c| c.provider == provider_name);
    let kind = n.spec.kind();
    if let Some(c) = cat {
        check_offered(diags, || format!("{stack}/{path}"), kind, c, catalogs);
    }
    let mut fields: FieldMap<Expr> = FieldMap::with_capacity(kind.def().fields.len());
    let base = physical_name(stack, &path);
    fields.insert(common::NAME.into(), Expr::PhysicalName(base.clone()));
    // Texts are made values directly: `Expr::lit` would go through serde for each.
    let text = |s: &str| Expr::Lit(Value::String(s.to_owned()));
    fields.insert(common::REGION.into(), text(region));
    let mut tags: FieldMap<Expr> = FieldMap::with_capacity(def.tags.len() + n.tags.len() + 3);
    tags.extend(def.tags.iter().chain(n.tags.iter()).map(|(k, v)| (k.clone(), text(v))));
    tags.insert(TAG_STACK.into(), text(stack));
    tags.insert(TAG_PATH.into(), text(&path));
    tags.insert(TAG_NAME.into(), Expr::PhysicalName(base));
    fields.insert(common::TAGS.into(), Expr::Map(tags));
    let mut explicit: Vec<usize> = Vec::new();
    for d in &n.depends_on {
        if d.stack != def.serial || d.index as usize >= def.nodes.len() {
            diags.push(
                "dangling-reference",
                format!("{stack}/{path}"),
                "depends_on points to no resource of this stack",
                "depend on a resource of the same stack",
            );
        } else {
            explicit.push(d.index as usize);
        }
    }
    let mut cx = LowerCx::new(StackCx::new(stack, def.serial, entries, diags), i, cat, fields);
    n.spec.lower(&mut cx);
    let fields = cx.into_fields();
    let mut deps = BTreeSet::new();
    for e in fields.values() {
        e.refs(&mut deps);
    }
    deps.extend(explicit);
    deps.remove(&i);
    let deps: Vec<usize> = deps.into_iter().collect();
    let depends_on = deps.iter().map(|d| def.nodes[*d].path.clone()).collect();
    let replaced_on_change = cat
        .map(|c| c.replaced_on_change.iter().filter(|f| f.kind == kind.as_str()).map(|f| f.field.clone()).collect())
        .unwrap_or_default();
    SynthResource {
        path,
        kind,
        provider: provider_name,
        deps,
        depends_on,
        fields,
        health: n.spec.health(),
        replaced_on_change,
    }
}

/// Validate a stack's definition against the catalogues of the providers it may use and
/// describe it fully, or return every problem at once.
pub(crate) fn synth_def(def: &StackDef, catalogs: &[&Catalog]) -> Result<Synthesized, Diagnostics> {
    let mut ctx = Ctx { def, diags: Diagnostics::default() };
    let stack = def.name.clone();
    check_stack_names(&mut ctx);
    let catalog = catalogs.iter().copied().find(|c| c.provider == def.provider);
    let region = resolve_stack_region(&mut ctx, catalog, catalogs);
    let region_s = region.clone().unwrap_or_default();
    let seen = check_ids(&mut ctx, catalog, catalogs);
    check_tags(&mut ctx);

    // Per-kind fields and checks: each kind lowers itself.
    let entries: Vec<NodeEntry<'_>> = def.nodes.iter().map(|n| NodeEntry { path: &n.path, node: &n.spec }).collect();
    let mut resources = Vec::with_capacity(def.nodes.len());
    for (i, n) in def.nodes.iter().enumerate() {
        resources.push(lower_node(&mut ctx.diags, def, catalogs, &entries, &region_s, i, n));
    }
    let present: BTreeSet<Kind> = def.nodes.iter().map(|n| n.spec.kind()).collect();
    for kind in present {
        (kind.def().check_stack)(&mut StackCx::new(&def.name, def.serial, &entries, &mut ctx.diags));
    }
    check_physical_names(&mut ctx);
    check_cycles(&mut ctx, &resources);
    let exports = synth_exports(&mut ctx);
    check_moves(&mut ctx, &seen);
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

/// The stack's name and the ids of its scopes.
fn check_stack_names(ctx: &mut Ctx<'_>) {
    let def = ctx.def;
    if let Some(d) = crate::base::diag::stack_name_diagnostic(&def.name) {
        ctx.diags.0.push(d);
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
}

/// The provider's catalogue and the region the placement resolves to.
fn resolve_stack_region(ctx: &mut Ctx<'_>, catalog: Option<&Catalog>, catalogs: &[&Catalog]) -> Option<String> {
    let def = ctx.def;
    let stack = def.name.clone();
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
    region
}

/// Resource ids, duplicate paths, physical name lengths and per-resource providers; returns the
/// index of each path.
fn check_ids<'d>(ctx: &mut Ctx<'d>, catalog: Option<&Catalog>, catalogs: &[&Catalog]) -> FastMap<&'d str, usize> {
    let def = ctx.def;
    let stack = def.name.clone();
    // Only looked up, never walked: a hash map keeps the output deterministic.
    let mut seen: FastMap<&str, usize> = fast_map(def.nodes.len());
    for (i, n) in def.nodes.iter().enumerate() {
        let id = n.id();
        if !is_valid_id(id) {
            let p = ctx.full(&n.path);
            let (code, msg) = if id.is_empty() {
                ("empty-name", "a resource id is empty".to_string())
            } else if id.len() > MAX_ID_LEN {
                ("name-too-long", format!("id `{id}` has {} characters, at most {MAX_ID_LEN} are allowed", id.len()))
            } else {
                ("invalid-name", format!("id `{id}` contains characters other than a-z, 0-9 and '-'"))
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
            // Leave room for a `-N` generation suffix after replacements. The name has the
            // length of `stack-path` (only '/' changes), so it is built only to be reported.
            if def.name.len() + 1 + n.path.len() + 3 > c.max_name_len {
                let physical = physical_name(&stack, &n.path);
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
    seen
}

/// Tags no cloud accepts: the stack's own at the stack, a scope's at each resource.
fn check_tags(ctx: &mut Ctx<'_>) {
    let def = ctx.def;
    let stack_tags = def.tags.iter().map(|t| (def.name.clone(), t));
    let node_tags = def.nodes.iter().flat_map(|n| n.tags.iter().map(|t| (ctx.full(&n.path), t)));
    let found: Vec<(String, String)> =
        stack_tags.chain(node_tags).filter_map(|(path, (k, v))| Some((path, tag_problem(k, v)?))).collect();
    for (path, message) in found {
        ctx.diags.push(
            "invalid-tag",
            path,
            message,
            "use keys of 1 to 128 and values of at most 256 characters, without control or invisible formatting characters",
        );
    }
}

/// Two paths that map to the same physical name.
fn check_physical_names(ctx: &mut Ctx<'_>) {
    let def = ctx.def;
    // Every name starts with `stack-`: two collide when their paths do once '/' became '-'.
    // Without a '/' anywhere, only equal paths collide, and those are reported as duplicate ids.
    if !def.nodes.iter().any(|n| n.path.contains('/')) {
        return;
    }
    let mut names: FastMap<NameKey<'_>, usize> = fast_map(def.nodes.len());
    for (i, n) in def.nodes.iter().enumerate() {
        let j = *names.entry(NameKey(&n.path)).or_insert(i);
        let first = &def.nodes[j];
        // Equal paths are duplicate ids, reported as such.
        if first.path != n.path {
            let name = physical_name(&def.name, &n.path);
            let p = ctx.full(&n.path);
            ctx.diags.push(
                "duplicate-name",
                p,
                format!("`{}` and `{}` both get the physical name `{name}`", n.path, first.path),
                "rename one of them: '/' and '-' map to the same character in names",
            );
        }
    }
}

/// A path as its physical name sees it: '/' and '-' are the same character. Compared and hashed
/// in place, without building the name.
#[derive(Clone, Copy)]
struct NameKey<'a>(&'a str);

impl NameKey<'_> {
    fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.0.bytes().map(|b| if b == b'/' { b'-' } else { b })
    }
}

impl PartialEq for NameKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.bytes().eq(other.bytes())
    }
}

impl Eq for NameKey<'_> {}

impl Hash for NameKey<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // Eight bytes at a time: the hasher's cost is per call.
        let mut word = [0u8; 8];
        for (k, b) in self.bytes().enumerate() {
            word[k % 8] = b;
            if k % 8 == 7 {
                h.write_u64(u64::from_le_bytes(word));
            }
        }
        let rest = self.0.len() % 8;
        if rest != 0 {
            word[rest..].fill(0);
            h.write_u64(u64::from_le_bytes(word));
        }
        h.write_usize(self.0.len());
    }
}

/// Dependency cycles, each with its path.
fn check_cycles(ctx: &mut Ctx<'_>, resources: &[SynthResource]) {
    for cycle in find_cycles(resources) {
        let names: Vec<&str> = cycle.iter().map(|i| resources[*i].path.as_str()).collect();
        let p = ctx.full(names.first().copied().unwrap_or(""));
        ctx.diags.push(
            "cycle",
            p,
            format!("dependency cycle: {}", names.join(" -> ")),
            "break the cycle: remove one of these references or depends_on edges",
        );
    }
}

/// The stack's outputs.
fn synth_exports(ctx: &mut Ctx<'_>) -> Vec<SynthExport> {
    let def = ctx.def;
    let stack = def.name.clone();
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
        let out = match out {
            ExportDef::Output(out) => out,
            ExportDef::Value(value) => {
                exports.push(SynthExport {
                    name: name.clone(),
                    source: ExportSource::Value { value: value.clone() },
                    secret: false,
                });
                continue;
            }
        };
        match export_target(def, out.source) {
            Ok(t) => exports.push(SynthExport {
                name: name.clone(),
                source: ExportSource::Attr { node: t, from: def.nodes[t].path.clone(), attr: out.attr.to_string() },
                secret: out.secret,
            }),
            Err((code, message, help)) => {
                let p = ctx.full(name);
                ctx.diags.push(code, p, format!("export `{name}` {message}"), help);
            }
        }
    }
    exports
}

/// `moved` declarations: each old path once, each new path a resource of the stack.
fn check_moves(ctx: &mut Ctx<'_>, seen: &FastMap<&str, usize>) {
    let def = ctx.def;
    let stack = def.name.clone();
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
}

/// The index an export's source points to, or the problem.
fn export_target(def: &StackDef, r: NodeRef) -> Result<usize, (&'static str, &'static str, &'static str)> {
    if r.stack != def.serial {
        return Err((
            "foreign-reference",
            "refers to a resource of another stack",
            "a stack may only reference its own resources; export the value from the other stack instead",
        ));
    }
    if (r.index as usize) < def.nodes.len() {
        Ok(r.index as usize)
    } else {
        Err(("dangling-reference", "points to no resource", "add the resource before referencing it"))
    }
}

/// The deterministic physical name of a resource: `<stack>-<path with '/' as '-'>`.
pub fn physical_name(stack: &str, path: &str) -> String {
    let mut name = String::with_capacity(stack.len() + 1 + path.len());
    name.push_str(stack);
    for part in path.split('/') {
        name.push('-');
        name.push_str(part);
    }
    name
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

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::kinds::Vpc;
    use crate::model::placement::{Jurisdiction, Placement, Stage};
    use crate::sim::SimCloud;
    use crate::stack::Stack;

    #[test]
    fn tags_no_cloud_accepts_are_refused_with_the_path_and_key() {
        let stack = Stack::new("shop", Placement::within(Jurisdiction::Eu), Stage::Dev);
        stack.tag("owner", "ops\nruncmd: [evil]");
        stack.scope("net").tag("client", "a\u{1b}[31m").add("vpc", Vpc::new("10.0.0.0/16"));
        stack.tag("ok", "Zoë @ acme.example");
        let Err(Error::Invalid(d)) = stack.synth(&[&SimCloud::catalog()]) else { panic!("tags accepted") };
        let found: Vec<(&str, &str)> =
            d.iter().filter(|x| x.code == "invalid-tag").map(|x| (x.path.as_str(), x.message.as_str())).collect();
        assert_eq!(found.len(), 2, "{d}");
        assert!(found.iter().any(|(p, m)| *p == "shop" && m.contains("`owner`") && m.contains("U+000A")), "{d}");
        assert!(
            found.iter().any(|(p, m)| *p == "shop/net/vpc" && m.contains("`client`") && m.contains("U+001B")),
            "{d}"
        );
    }
}
