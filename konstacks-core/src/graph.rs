//! Dependency graph export: a synthesized stack as Graphviz DOT or Mermaid text.
//!
//! Nodes are labelled `kind path`, edges point from a dependency to its dependent (the order in
//! which apply creates them), and resources are grouped by scope (`network/vpc` sits in the
//! `network` group; nested scopes nest). The output is deterministic: resources keep the stack's
//! order, scopes appear in the order their first resource was added, so it can be snapshotted.
//!
//! This module only reads a [`Synthesized`] stack; it never plans, applies or talks to a cloud.

use std::fmt::Write as _;

use crate::synth::Synthesized;

/// A scope of the stack and what it holds, in stack order.
#[derive(Debug, Default)]
struct ScopeTree {
    /// Full scope path (`network`, `app/web`); empty for the root.
    path: String,
    /// Indexes of the resources directly in this scope.
    resources: Vec<usize>,
    /// Child scopes, in order of first appearance.
    children: Vec<ScopeTree>,
}

impl ScopeTree {
    fn build(s: &Synthesized) -> ScopeTree {
        let mut root = ScopeTree::default();
        for (i, r) in s.resources.iter().enumerate() {
            let segments: Vec<&str> = r.path.split('/').collect();
            let scopes = &segments[..segments.len().saturating_sub(1)];
            let mut node = &mut root;
            for depth in 0..scopes.len() {
                let path = scopes[..=depth].join("/");
                let pos = match node.children.iter().position(|c| c.path == path) {
                    Some(p) => p,
                    None => {
                        node.children.push(ScopeTree { path, ..Default::default() });
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[pos];
            }
            node.resources.push(i);
        }
        root
    }

    /// The last segment of the scope path, shown as the group's title.
    fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

fn label(s: &Synthesized, i: usize) -> String {
    let r = &s.resources[i];
    format!("{} {}", r.kind, r.path)
}

/// Edges as (dependency, dependent), in stack order of the dependent, dependencies sorted.
fn edges(s: &Synthesized) -> Vec<(usize, usize)> {
    let n = s.resources.len();
    s.resources
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.deps.iter().filter(move |d| **d < n).map(move |d| (*d, i)))
        .collect()
}

/// A DOT string literal.
fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The stack's dependency graph in Graphviz DOT: one `subgraph cluster_…` per scope, edges from
/// dependency to dependent. Render with `dot -Tsvg`.
pub fn to_dot(s: &Synthesized) -> String {
    fn scope(out: &mut String, s: &Synthesized, t: &ScopeTree, depth: usize, next_cluster: &mut usize) {
        let pad = "  ".repeat(depth);
        for &i in &t.resources {
            let _ = writeln!(out, "{pad}{} [label={}];", dot_quote(&s.resources[i].path), dot_quote(&label(s, i)));
        }
        for c in &t.children {
            // Numbered, so that scopes `a-b` and `a_b` can never share a cluster id.
            let id = format!("cluster_{}_{}", *next_cluster, sanitize(&c.path));
            *next_cluster += 1;
            let _ = writeln!(out, "{pad}subgraph {} {{", dot_quote(&id));
            let _ = writeln!(out, "{pad}  label={};", dot_quote(c.name()));
            scope(out, s, c, depth + 1, next_cluster);
            let _ = writeln!(out, "{pad}}}");
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_quote(&s.name));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  node [shape=box];");
    let mut next_cluster = 0;
    scope(&mut out, s, &ScopeTree::build(s), 1, &mut next_cluster);
    for (from, to) in edges(s) {
        let _ = writeln!(out, "  {} -> {};", dot_quote(&s.resources[from].path), dot_quote(&s.resources[to].path));
    }
    out.push_str("}\n");
    out
}

/// Keep `[A-Za-z0-9_]` of an id, replacing anything else with `_`.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Mermaid label text: quotes become `#quot;` (Mermaid's entity syntax).
fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;").replace('\n', " ")
}

/// The stack's dependency graph as a Mermaid flowchart: one `subgraph` per scope, edges from
/// dependency to dependent. Paste it into a ```` ```mermaid ```` block.
pub fn to_mermaid(s: &Synthesized) -> String {
    fn scope(out: &mut String, s: &Synthesized, t: &ScopeTree, depth: usize, next_group: &mut usize) {
        let pad = "  ".repeat(depth);
        for &i in &t.resources {
            let _ = writeln!(out, "{pad}n{i}[\"{}\"]", mermaid_text(&label(s, i)));
        }
        for c in &t.children {
            let id = format!("s{}_{}", *next_group, sanitize(&c.path));
            *next_group += 1;
            let _ = writeln!(out, "{pad}subgraph {id}[\"{}\"]", mermaid_text(c.name()));
            scope(out, s, c, depth + 1, next_group);
            let _ = writeln!(out, "{pad}end");
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "%% stack {}", mermaid_text(&s.name));
    out.push_str("flowchart LR\n");
    let mut next_group = 0;
    scope(&mut out, s, &ScopeTree::build(s), 1, &mut next_group);
    for (from, to) in edges(s) {
        let _ = writeln!(out, "  n{from} --> n{to}");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::kinds::{Firewall, Image, Ingress, Subnet, Vm, VmSize, Vpc};
    use crate::model::placement::{Jurisdiction, Placement, Stage};
    use crate::sim::SimCloud;
    use crate::stack::Stack;

    fn synth(stack: &Stack) -> Synthesized {
        let catalog = SimCloud::catalog();
        stack.synth(&[&catalog]).expect("valid stack")
    }

    fn sample() -> Synthesized {
        let stack = Stack::new("shop", Placement::within(Jurisdiction::Eu), Stage::Dev);
        let net = stack.scope("network");
        let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
        let web_net = net.add("web", Subnet::new(vpc, "10.0.1.0/24").public());
        let fw = net.scope("fw").add("web", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
        let web = stack.add("web", Vm::new(Image::UbuntuLts, VmSize::Small, web_net).firewall(fw));
        stack.export("ip", web.public_ip());
        synth(&stack)
    }

    #[test]
    fn dot_groups_by_scope_and_points_from_dependency_to_dependent() {
        let dot = to_dot(&sample());
        let expected = r#"digraph "shop" {
  rankdir=LR;
  node [shape=box];
  "web" [label="vm web"];
  subgraph "cluster_0_network" {
    label="network";
    "network/vpc" [label="vpc network/vpc"];
    "network/web" [label="subnet network/web"];
    subgraph "cluster_1_network_fw" {
      label="fw";
      "network/fw/web" [label="firewall network/fw/web"];
    }
  }
  "network/vpc" -> "network/web";
  "network/vpc" -> "network/fw/web";
  "network/web" -> "web";
  "network/fw/web" -> "web";
}
"#;
        assert_eq!(dot, expected);
    }

    #[test]
    fn mermaid_groups_by_scope_and_points_from_dependency_to_dependent() {
        let m = to_mermaid(&sample());
        let expected = r#"%% stack shop
flowchart LR
  n3["vm web"]
  subgraph s0_network["network"]
    n0["vpc network/vpc"]
    n1["subnet network/web"]
    subgraph s1_network_fw["fw"]
      n2["firewall network/fw/web"]
    end
  end
  n0 --> n1
  n0 --> n2
  n1 --> n3
  n2 --> n3
"#;
        assert_eq!(m, expected);
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(to_dot(&sample()), to_dot(&sample()));
        assert_eq!(to_mermaid(&sample()), to_mermaid(&sample()));
    }

    #[test]
    fn empty_stack_is_an_empty_graph() {
        let s = synth(&Stack::new("empty", Placement::within(Jurisdiction::Eu), Stage::Dev));
        assert_eq!(to_dot(&s), "digraph \"empty\" {\n  rankdir=LR;\n  node [shape=box];\n}\n");
        assert_eq!(to_mermaid(&s), "%% stack empty\nflowchart LR\n");
    }

    #[test]
    fn every_dependency_is_an_edge() {
        let s = sample();
        let m = to_mermaid(&s);
        let arrows = m.lines().filter(|l| l.contains("-->")).count();
        assert_eq!(arrows, s.resources.iter().map(|r| r.deps.len()).sum::<usize>());
    }

    #[test]
    fn quotes_are_escaped() {
        assert_eq!(dot_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(mermaid_text(r#"a"b"#), "a#quot;b");
    }
}
