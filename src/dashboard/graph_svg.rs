//! A stack's dependency graph drawn on the server as inline SVG.
//!
//! Layered layout: a resource's column is the length of its longest dependency chain
//! (resources depending on nothing in column 0), so every edge of an acyclic graph points to
//! the right; inside a column resources are sorted by path. Dependencies on paths that are not
//! among the nodes are ignored, and a cycle (which a valid stack never has, but state may be
//! anything) is broken at its node with the smallest path instead of looping. Everything is
//! integer coordinates computed from the input alone, so the same nodes give the same bytes.
//!
//! Every SVG element is written with its end tag: in HTML, inline SVG is foreign content with no
//! void elements, so an unclosed `<rect>` would swallow what follows.
//!
//! This module draws; it reads nothing and knows no routes.

use std::collections::{BTreeMap, BTreeSet};

use maud::{html, Markup};

/// One resource of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphNode {
    /// Its path in the stack (`network/vpc`).
    pub path: String,
    /// Its kind (`vpc`).
    pub kind: String,
    /// The paths it depends on.
    pub deps: Vec<String>,
}

/// Width of one character of the 12px monospace labels.
const CHAR_W: usize = 7;
/// Labels longer than this are cut (the full path is in the node's `<title>`).
const MAX_CHARS: usize = 40;
/// Height of a node box.
const NODE_H: usize = 40;
/// Vertical space between boxes.
const GAP_Y: usize = 16;
/// Horizontal space between columns (where the edges run).
const GAP_X: usize = 64;
/// Margin around the drawing.
const MARGIN: usize = 16;
/// Padding inside a box, left and right.
const PAD_X: usize = 10;
/// The arrow marker's id (one graph per page).
const ARROW: &str = "konstacks-graph-arrow";

/// The graph of `nodes` as an inline `<svg>` (or a short note when there is none).
pub(crate) fn render(nodes: &[GraphNode]) -> Markup {
    if nodes.is_empty() {
        return html! { p.graph-empty { "No resources: nothing to draw." } };
    }
    let layout = Layout::new(nodes);
    let edge_count = layout.edges.len();
    let label = format!(
        "Dependency graph: {} resource{}, {} dependenc{}",
        layout.nodes.len(),
        if layout.nodes.len() == 1 { "" } else { "s" },
        edge_count,
        if edge_count == 1 { "y" } else { "ies" }
    );
    let (w, h) = (layout.width, layout.height);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" aria-label=(label)
            width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } font-family="monospace" font-size="12" {
            title { (label) }
            defs {
                marker id=(ARROW) viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8"
                    orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" fill="#555" {}
                }
            }
            g.edges fill="none" stroke="#888" stroke-width="1.5" {
                @for &(from, to) in &layout.edges {
                    @let (a, b) = (&layout.boxes[from], &layout.boxes[to]);
                    path.edge.back-edge[a.layer >= b.layer] data-from=(layout.nodes[from].path)
                        data-to=(layout.nodes[to].path) d=(edge_path(a, b)) marker-end={ "url(#" (ARROW) ")" } {}
                }
            }
            g.nodes {
                @for (i, node) in layout.nodes.iter().enumerate() {
                    @let b = &layout.boxes[i];
                    g.node data-path=(node.path) data-kind=(node.kind) {
                        title { (node.path) " (" (node.kind) ")" @if !layout.deps[i].is_empty() {
                            "\ndepends on: " (layout.deps[i].join(", ")) } }
                        rect x=(b.x) y=(b.y) width=(b.w) height=(NODE_H) rx="4" fill="#f4f6fb" stroke="#3b5b92" {}
                        text x=(b.x + PAD_X) y=(b.y + 16) fill="#111" { (cut(&node.path)) }
                        text.kind x=(b.x + PAD_X) y=(b.y + 32) fill="#555" { (cut(&node.kind)) }
                    }
                }
            }
        }
    }
}

/// Where a node is drawn.
#[derive(Debug, Clone, Copy)]
struct NodeBox {
    layer: usize,
    x: usize,
    y: usize,
    w: usize,
}

/// Nodes (first of each path), their boxes, edges `(dependency, dependent)` and the size.
struct Layout<'a> {
    nodes: Vec<&'a GraphNode>,
    deps: Vec<Vec<&'a str>>,
    boxes: Vec<NodeBox>,
    edges: Vec<(usize, usize)>,
    width: usize,
    height: usize,
}

impl<'a> Layout<'a> {
    fn new(input: &'a [GraphNode]) -> Self {
        // One node per path (the first), in path order.
        let mut by_path: BTreeMap<&str, &GraphNode> = BTreeMap::new();
        for n in input {
            by_path.entry(n.path.as_str()).or_insert(n);
        }
        let nodes: Vec<&GraphNode> = by_path.values().copied().collect();
        let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.path.as_str(), i)).collect();
        // Known dependencies, each once, without self-loops.
        let dep_ids: Vec<BTreeSet<usize>> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| n.deps.iter().filter_map(|d| index.get(d.as_str()).copied()).filter(|&d| d != i).collect())
            .collect();
        let deps = dep_ids.iter().map(|ds| ds.iter().map(|&d| nodes[d].path.as_str()).collect()).collect();
        let layers = layers(&dep_ids);
        let edges: Vec<(usize, usize)> =
            dep_ids.iter().enumerate().flat_map(|(to, ds)| ds.iter().map(move |&from| (from, to))).collect();
        let (boxes, width, height) = place(&nodes, &layers);
        Self { nodes, deps, boxes, edges, width, height }
    }
}

/// Each node's layer: one more than its deepest dependency; a cycle is broken at the pending
/// node with the smallest index (the smallest path), whose unplaced dependencies are ignored.
fn layers(deps: &[BTreeSet<usize>]) -> Vec<usize> {
    let n = deps.len();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut waiting: Vec<usize> = deps.iter().map(BTreeSet::len).collect();
    let mut layer: Vec<Option<usize>> = vec![None; n];
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut pending: BTreeSet<usize> = (0..n).collect();
    while let Some(next) = ready.pop_first().or_else(|| pending.first().copied()) {
        if !pending.remove(&next) {
            continue;
        }
        let depth = deps[next].iter().filter_map(|&d| layer[d]).map(|l| l + 1).max().unwrap_or(0);
        layer[next] = Some(depth);
        for &m in &dependents[next] {
            waiting[m] = waiting[m].saturating_sub(1);
            if waiting[m] == 0 && pending.contains(&m) {
                ready.insert(m);
            }
        }
    }
    layer.into_iter().map(Option::unwrap_or_default).collect()
}

/// Boxes in columns by layer, each column as wide as its widest label, rows by path; and the
/// drawing's size.
fn place(nodes: &[&GraphNode], layers: &[usize]) -> (Vec<NodeBox>, usize, usize) {
    let columns = layers.iter().copied().max().map_or(0, |m| m + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); columns];
    for (i, &l) in layers.iter().enumerate() {
        // Nodes are in path order, so each column is too.
        members[l].push(i);
    }
    let mut boxes = vec![NodeBox { layer: 0, x: 0, y: 0, w: 0 }; nodes.len()];
    let mut x = MARGIN;
    let mut tallest = 0;
    for (layer, column) in members.iter().enumerate() {
        let chars =
            column.iter().map(|&i| label_chars(&nodes[i].path).max(label_chars(&nodes[i].kind))).max().unwrap_or(0);
        let w = chars * CHAR_W + 2 * PAD_X;
        for (row, &i) in column.iter().enumerate() {
            boxes[i] = NodeBox { layer, x, y: MARGIN + row * (NODE_H + GAP_Y), w };
        }
        tallest = tallest.max(column.len());
        x += w + GAP_X;
    }
    let width = x - GAP_X + MARGIN;
    let height = 2 * MARGIN + tallest * NODE_H + tallest.saturating_sub(1) * GAP_Y;
    (boxes, width, height)
}

/// How many characters of a label are drawn.
fn label_chars(s: &str) -> usize {
    s.chars().count().min(MAX_CHARS)
}

/// A label cut to [`MAX_CHARS`], ending in `…` when cut.
fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_CHARS {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX_CHARS - 1).collect();
        out.push('…');
        out
    }
}

/// A curve from the right side of `from` to the left side of `to` (for a back edge of a
/// cycle, a loop from `from`'s right side round to `to`'s left side).
fn edge_path(from: &NodeBox, to: &NodeBox) -> String {
    let (x1, y1) = (from.x + from.w, from.y + NODE_H / 2);
    let (x2, y2) = (to.x, to.y + NODE_H / 2);
    let bend = GAP_X / 2;
    format!("M {x1} {y1} C {} {y1}, {} {y2}, {x2} {y2}", x1 + bend, x2.saturating_sub(bend))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn node(path: &str, kind: &str, deps: &[&str]) -> GraphNode {
        GraphNode { path: path.into(), kind: kind.into(), deps: deps.iter().map(|d| d.to_string()).collect() }
    }

    fn svg(nodes: &[GraphNode]) -> String {
        render(nodes).into_string()
    }

    /// The `(x, y)` of the box drawn for `path`.
    fn position(svg: &str, path: &str) -> (usize, usize) {
        let start = svg.find(&format!("data-path=\"{path}\"")).unwrap_or_else(|| panic!("{path} not drawn"));
        let rect = &svg[start..];
        let rect = &rect[rect.find("<rect").unwrap()..];
        let attr = |name: &str| -> usize {
            let at = rect.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            rect[at..at + rect[at..].find('"').unwrap()].parse().unwrap()
        };
        (attr("x"), attr("y"))
    }

    fn small() -> Vec<GraphNode> {
        vec![
            node("web", "vm", &["network/web", "network/web-fw", "db"]),
            node("network/vpc", "vpc", &[]),
            node("network/web", "subnet", &["network/vpc"]),
            node("network/web-fw", "firewall", &["network/vpc"]),
            node("db", "database", &["network/web", "network/db-fw"]),
            node("network/db-fw", "firewall", &["network/vpc", "network/web-fw"]),
        ]
    }

    #[test]
    fn no_nodes_renders_a_note() {
        let out = svg(&[]);
        assert!(out.contains("No resources"), "{out}");
        assert!(!out.contains("<svg"));
    }

    #[test]
    fn layers_follow_the_longest_dependency_chain() {
        let out = svg(&small());
        let vpc = position(&out, "network/vpc");
        let subnet = position(&out, "network/web");
        let web_fw = position(&out, "network/web-fw");
        let db_fw = position(&out, "network/db-fw");
        let db = position(&out, "db");
        let web = position(&out, "web");
        // Columns: vpc | web, web-fw | db-fw | db | web.
        assert!(vpc.0 < subnet.0 && subnet.0 == web_fw.0, "{out}");
        assert!(web_fw.0 < db_fw.0 && db_fw.0 < db.0 && db.0 < web.0, "{out}");
        // Inside a column, by path.
        assert!(subnet.1 < web_fw.1);
        assert!(
            out.contains(r#"role="img""#)
                && out.contains(r#"aria-label="Dependency graph: 6 resources, 9 dependencies""#)
        );
        assert_eq!(out.matches("<title>").count(), 7, "one per node and one for the graph");
        assert_eq!(out.matches(r#"class="edge""#).count(), 9);
        assert!(out.contains(r#"marker-end="url(#konstacks-graph-arrow)""#));
        assert!(!out.contains("back-edge"));
        for tag in ["path", "rect", "text", "g", "title", "marker"] {
            assert_eq!(
                out.matches(&format!("<{tag} ")).count() + out.matches(&format!("<{tag}>")).count(),
                out.matches(&format!("</{tag}>")).count(),
                "every <{tag}> closed: {out}"
            );
        }
        assert!(out.contains("depends on: network/db-fw, network/web"), "{out}");
    }

    #[test]
    fn output_is_deterministic_whatever_the_input_order() {
        let mut reversed = small();
        reversed.reverse();
        assert_eq!(svg(&small()), svg(&reversed));
    }

    #[test]
    fn unknown_dependencies_self_loops_and_duplicates_are_ignored() {
        let out = svg(&[
            node("a", "vpc", &["gone", "a"]),
            node("b", "subnet", &["a", "a", "also/gone"]),
            node("b", "vm", &["b"]),
        ]);
        assert_eq!(out.matches(r#"class="edge""#).count(), 1, "{out}");
        assert_eq!(out.matches(r#"class="node""#).count(), 2);
        assert!(out.contains(r#"data-kind="subnet""#) && !out.contains(r#"data-kind="vm""#), "first of a path wins");
    }

    #[test]
    fn cycles_are_drawn_without_hanging() {
        let out =
            svg(&[node("a", "x", &["c"]), node("b", "x", &["a"]), node("c", "x", &["b"]), node("d", "x", &["c"])]);
        assert_eq!(out.matches(r#"class="node""#).count(), 4);
        assert_eq!(out.matches("back-edge").count(), 1, "{out}");
        let (a, b, c, d) = (position(&out, "a"), position(&out, "b"), position(&out, "c"), position(&out, "d"));
        assert!(a.0 < b.0 && b.0 < c.0 && c.0 < d.0, "{out}");
    }

    #[test]
    fn labels_are_escaped_and_long_ones_cut() {
        let long = "x".repeat(100);
        let out = svg(&[node("<script>alert(1)</script>", "vm\"onload=\"x", &[]), node(&long, "vm", &[])]);
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;") && out.contains("vm&quot;onload"));
        assert!(out.contains(&format!("{}…", "x".repeat(MAX_CHARS - 1))));
        assert!(out.contains(&format!("<title>{long} (vm)</title>")), "full path in the title");
    }

    #[test]
    fn five_hundred_nodes_lay_out_in_bounded_size() {
        // Ten chains of fifty: ten rows, fifty columns; and one hub everything depends on.
        let mut nodes = vec![node("hub", "vpc", &[])];
        for chain in 0..10 {
            for step in 0..49 {
                let prev = if step == 0 { "hub".to_string() } else { format!("c{chain:02}/n{:02}", step - 1) };
                nodes.push(node(&format!("c{chain:02}/n{step:02}"), "vm", &[prev.as_str(), "hub"]));
            }
        }
        nodes.push(node("z", "vm", &[]));
        assert_eq!(nodes.len(), 492);
        let started = std::time::Instant::now();
        let out = svg(&nodes);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(out.matches(r#"class="node""#).count(), 492);
        let size = |attr: &str| -> usize {
            let at = out.find(&format!(" {attr}=\"")).unwrap() + attr.len() + 3;
            out[at..at + out[at..].find('"').unwrap()].parse().unwrap()
        };
        let (w, h) = (size("width"), size("height"));
        assert!(h < 11 * (NODE_H + GAP_Y) + 2 * MARGIN, "{h}");
        assert!(w < 51 * (MAX_CHARS * CHAR_W + 2 * PAD_X + GAP_X), "{w}");
        let (x, y) = position(&out, "c09/n48");
        assert!(x < w && y < h);
        // A wide graph: 500 independent nodes in one column.
        let flat: Vec<GraphNode> = (0..500).map(|i| node(&format!("n{i:03}"), "vm", &[])).collect();
        let out = svg(&flat);
        assert_eq!(out.matches(r#"class="node""#).count(), 500);
        assert_eq!(position(&out, "n499").1, MARGIN + 499 * (NODE_H + GAP_Y));
    }
}
