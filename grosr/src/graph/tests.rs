//! CPU-only tests of graph building, validation, levels and lowering plans.

use super::*;
use crate::DevicePtr;

#[grosr::task(cuda = "")]
pub struct A {
    pub out: DevicePtr<u32>,
    pub value: u32,
    pub pad: u32,
}

#[grosr::task(granularity = "lane", cuda = "")]
pub struct B {
    pub value: u32,
}

fn a(v: u32) -> A {
    A {
        out: DevicePtr::null(),
        value: v,
        pad: 0,
    }
}

#[test]
fn a_diamond_has_three_levels_and_a_topological_order() {
    let mut g = TaskGraph::new();
    let top = g.add(a(0));
    let left = g.add(B { value: 1 });
    let right = g.add(a(2));
    let bottom = g.add(B { value: 3 });
    for (u, v) in [(top, left), (top, right), (left, bottom), (right, bottom)] {
        g.add_edge(u, v).unwrap();
    }
    let order = g.validate().unwrap();
    let pos = |n: NodeId| order.iter().position(|&x| x == n).unwrap();
    assert!(pos(top) < pos(left) && pos(left) < pos(bottom) && pos(right) < pos(bottom));
    let levels = g.levels().unwrap();
    assert_eq!(levels, vec![vec![top], vec![left, right], vec![bottom]]);
    // Fused: level 1 holds one B and one A, so two bulk launches there.
    let fused = g.fused_plan().unwrap();
    let shape: Vec<(usize, &str, Vec<NodeId>)> = fused
        .iter()
        .map(|l| (l.level, l.task, l.nodes.clone()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (0, "A", vec![top]),
            (1, "B", vec![left]),
            (1, "A", vec![right]),
            (2, "B", vec![bottom])
        ]
    );
}

#[test]
fn a_level_is_the_longest_path_from_a_root() {
    // 0 → 1 → 2 and 0 → 2: node 2 must wait for 1, so it is on level 2, not 1.
    let mut g = TaskGraph::new();
    let n: Vec<NodeId> = (0..3).map(|v| g.add(a(v))).collect();
    g.add_edge(n[0], n[1]).unwrap();
    g.add_edge(n[1], n[2]).unwrap();
    g.add_edge(n[0], n[2]).unwrap();
    assert_eq!(
        g.levels().unwrap(),
        vec![vec![n[0]], vec![n[1]], vec![n[2]]]
    );
}

#[test]
fn a_cycle_is_an_error_that_names_its_nodes() {
    let mut g = TaskGraph::new();
    let n: Vec<NodeId> = (0..4).map(|v| g.add(a(v))).collect();
    g.add_edge(n[0], n[1]).unwrap();
    g.add_edge(n[1], n[2]).unwrap();
    g.add_edge(n[2], n[3]).unwrap();
    g.add_edge(n[3], n[1]).unwrap();
    let msg = g.validate().unwrap_err().to_string();
    assert!(msg.contains("cycle"), "{msg}");
    // The cycle is 1 → 2 → 3 → 1, reported from whichever of its nodes was found first.
    let cycle: Vec<&str> = msg.rsplit(": ").next().unwrap().split(" → ").collect();
    assert_eq!(cycle.len(), 4, "{msg}");
    assert_eq!(cycle.first(), cycle.last());
    for node in ["A#1", "A#2", "A#3"] {
        assert!(cycle.contains(&node), "{msg}");
    }
    assert!(!cycle.contains(&"A#0"), "{msg}");
    assert!(matches!(g.levels(), Err(Error::Cycle(_))));
}

#[test]
fn a_self_loop_is_a_cycle() {
    let mut g = TaskGraph::new();
    let x = g.add(B { value: 7 });
    g.add_edge(x, x).unwrap();
    assert_eq!(
        g.validate().unwrap_err().to_string(),
        "the task graph has a cycle: B#0 → B#0"
    );
}

#[test]
fn edges_to_unknown_nodes_are_refused() {
    let mut g = TaskGraph::new();
    let x = g.add(B { value: 7 });
    assert!(matches!(g.add_edge(x, NodeId(5)), Err(Error::Config(_))));
    assert_eq!(g.edge_count(), 0);
}

#[test]
fn records_are_stored_as_their_bytes() {
    let mut g = TaskGraph::new();
    let id = g.add(a(0xABCD));
    let node = &g.graph[NodeIndex::new(id.index())];
    assert_eq!(node.words[2], 0xABCD); // after the 8-byte pointer
    assert_eq!(node.name, "A");
}

#[test]
fn fused_launches_group_one_type_per_level() {
    // 3 independent A and 2 B, then one B after all of them: 2 launches on level 0, 1 on level 1.
    let mut g = TaskGraph::new();
    let first: Vec<NodeId> = (0..5)
        .map(|v| {
            if v % 2 == 0 {
                g.add(a(v))
            } else {
                g.add(B { value: v })
            }
        })
        .collect();
    let last = g.add(B { value: 9 });
    for &n in &first {
        g.add_edge(n, last).unwrap();
    }
    let plan = g.fused_plan().unwrap();
    assert_eq!(plan.len(), 3);
    assert_eq!((plan[0].task, plan[0].nodes.len()), ("A", 3));
    assert_eq!((plan[1].task, plan[1].nodes.len()), ("B", 2));
    assert_eq!(
        (plan[2].level, plan[2].task, plan[2].nodes.clone()),
        (1, "B", vec![last])
    );
}
