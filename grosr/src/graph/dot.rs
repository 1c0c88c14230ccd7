//! [`TaskGraph::to_dot`]: a graph as Graphviz DOT, to look at before running it, and
//! [`TaskGraph::node_label`], the same node labels for other pictures.

use std::fmt::Write as _;

use petgraph::graph::NodeIndex;

use super::{Node, NodeId, TaskGraph};
use crate::record::Field;

/// Fields shown per node: enough to tell nodes apart, short enough to read.
const FIELDS_SHOWN: usize = 4;

impl TaskGraph {
    /// The graph in Graphviz DOT: a node per task, labelled with its type and its first fields,
    /// scalars before pointers (in hex), an edge per dependency, and each topological level on one rank (left
    /// out when the graph has a cycle). `dot -Tsvg` draws it.
    ///
    /// ```
    /// # #[grosr::task(cuda = "")] pub struct Step { pub x: grosr::DevicePtr<u32>, pub i: u32, pub pad: u32 }
    /// let mut g = grosr::graph::TaskGraph::new();
    /// let x = grosr::DevicePtr::<u32>::null();
    /// let a = g.add(Step { x, i: 1, pad: 0 });
    /// let b = g.add(Step { x, i: 2, pad: 0 });
    /// g.add_edge(a, b).unwrap();
    /// let dot = g.to_dot();
    /// assert!(dot.contains("n0 -> n1;"));
    /// assert!(dot.contains(r#"n1 [label="Step\ni=2 x=0x0"];"#));
    /// assert!(dot.contains("{ rank=same; n1; }"));
    /// ```
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph grosr {\n    rankdir=TB;\n    node [shape=box];\n");
        for i in self.graph.node_indices() {
            let _ = writeln!(
                out,
                "    n{} [label=\"{}\"];",
                i.index(),
                label(&self.graph[i]).replace('\n', "\\n")
            );
        }
        for (before, after) in self.edges() {
            let _ = writeln!(out, "    n{} -> n{};", before.index(), after.index());
        }
        if let Ok(levels) = self.levels() {
            for level in levels {
                let ids: Vec<String> = level.iter().map(|n| format!("n{}", n.index())).collect();
                let _ = writeln!(out, "    {{ rank=same; {}; }}", ids.join("; "));
            }
        }
        out.push_str("}\n");
        out
    }

    /// The label [`to_dot`](TaskGraph::to_dot) gives node `id`: its task type's name (with
    /// `×n` after it for a range node of n items), a newline,
    /// then its first fields as `name=value` (scalars before pointers, pointers in hex, `pad`
    /// fields left out). `None` if `id` is past this graph's nodes (an id is an index: one from
    /// another graph names whichever node of this one has its index).
    ///
    /// ```
    /// # #[grosr::task(cuda = "")] pub struct Step { pub x: grosr::DevicePtr<u32>, pub i: u32, pub pad: u32 }
    /// let mut g = grosr::graph::TaskGraph::new();
    /// let a = g.add(Step { x: grosr::DevicePtr::null(), i: 7, pad: 0 });
    /// assert_eq!(g.node_label(a).as_deref(), Some("Step\ni=7 x=0x0"));
    ///
    /// let other = grosr::graph::TaskGraph::new();
    /// assert_eq!(other.node_label(a), None);
    /// ```
    pub fn node_label(&self, id: NodeId) -> Option<String> {
        self.graph
            .node_weight(NodeIndex::new(id.index()))
            .map(label)
    }
}

/// A node's label: its type's name, a newline, its first fields; scalars first, since records
/// put their (usually shared) pointers first.
fn label(node: &Node) -> String {
    let bytes: &[u8] = bytemuck::cast_slice(&node.words);
    let (pointers, scalars): (Vec<&Field>, Vec<&Field>) = node
        .fields
        .iter()
        .filter(|f| f.name != "pad")
        .partition(|f| is_pointer(f));
    let fields: Vec<String> = scalars
        .into_iter()
        .chain(pointers)
        .take(FIELDS_SHOWN)
        .map(|f| format!("{}={}", f.name, field_value(f, bytes)))
        .collect();
    let items = if node.items > 1 {
        format!(" ×{}", node.items)
    } else {
        String::new()
    };
    format!("{}{items}\n{}", node.name, fields.join(" "))
}

fn is_pointer(f: &Field) -> bool {
    f.size == 8 && (f.c_decl)(f.name).contains('*')
}

/// One field of a record, readable: integers in decimal, floats as floats, pointers in hex,
/// anything else (arrays, nested records) as its size.
fn field_value(f: &Field, record: &[u8]) -> String {
    let Some(b) = record.get(f.offset..f.offset + f.size) else {
        return "?".into();
    };
    let decl = (f.c_decl)(f.name);
    let int = |signed: bool| {
        let mut v = [0u8; 8];
        v[..b.len()].copy_from_slice(b);
        let u = u64::from_le_bytes(v);
        if signed {
            let shift = 64 - 8 * b.len() as u32;
            (((u << shift) as i64) >> shift).to_string()
        } else {
            u.to_string()
        }
    };
    match (b.len(), decl.as_str()) {
        (8, _) if is_pointer(f) => format!(
            "{:#x}",
            u64::from_le_bytes(b.try_into().unwrap_or_default())
        ),
        (_, d) if d.contains('[') => format!("[{} B]", b.len()),
        (4, d) if d.starts_with("float ") => {
            f32::from_le_bytes(b.try_into().unwrap_or_default()).to_string()
        }
        (8, d) if d.starts_with("double ") => {
            f64::from_le_bytes(b.try_into().unwrap_or_default()).to_string()
        }
        (1 | 2 | 4 | 8, d) if d.starts_with("int") || d.starts_with("signed") => int(true),
        (1 | 2 | 4 | 8, d) if d.starts_with("uint") || d.starts_with("unsigned") => int(false),
        (n, _) => format!("[{n} B]"), // arrays, nested records
    }
}

#[cfg(test)]
mod tests {
    use crate::DevicePtr;
    use crate::graph::TaskGraph;

    #[crate::task(cuda = "")]
    pub struct Mixed {
        pub p: DevicePtr<[f32; 4]>,
        pub f: f32,
        pub i: i32,
        pub a: [u16; 2],
        pub u: u32,
    }

    #[test]
    fn labels_show_each_field_as_its_type_reads_and_ranks_follow_levels() {
        let mut g = TaskGraph::new();
        let m = Mixed {
            p: DevicePtr::from_raw(0x7f00_0000_1000),
            f: 1.5,
            i: -3,
            a: [1, 2],
            u: 9,
        };
        let a = g.add(m);
        let b = g.add(m);
        let c = g.add(m);
        g.add_edge(a, c).unwrap();
        g.add_edge(b, c).unwrap();
        let dot = g.to_dot();
        // Scalars, then the pointer; four shown: the fifth (the pointer) is left out.
        assert!(
            dot.contains(r#"n0 [label="Mixed\nf=1.5 i=-3 a=[4 B] u=9"];"#),
            "{dot}"
        );
        assert!(dot.contains("n0 -> n2;") && dot.contains("n1 -> n2;"));
        // A pointer to an array is a pointer.
        let p = &<Mixed as crate::record::Record>::FIELDS[0];
        assert_eq!(
            super::field_value(p, bytemuck::bytes_of(&m)),
            "0x7f0000001000"
        );
        assert!(dot.contains("{ rank=same; n0; n1; }") && dot.contains("{ rank=same; n2; }"));
        g.add_edge(c, a).unwrap();
        assert!(!g.to_dot().contains("rank=same"), "a cycle has no levels");
    }
}
