//! CPU-only tests of graph building, validation, levels and lowering plans.

use super::*;
use crate::DevicePtr;
use crate::record::Granularity;

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

/// Nodes 0..count: an A (warp) for even values, a B (lane) for odd ones, valued by their index.
fn alternating(g: &mut TaskGraph, count: u32) -> Vec<NodeId> {
    (0..count)
        .map(|v| {
            if v % 2 == 0 {
                g.add(a(v))
            } else {
                g.add(B { value: v })
            }
        })
        .collect()
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
    let first = alternating(&mut g, 5);
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

#[test]
fn the_device_image_matches_the_c_layout_of_graph_dev() {
    // Roots: A#0 (warp), B#1 (lane), A#2 (warp), B#3 (lane); then B#4 after A#0 and B#1.
    let mut g = TaskGraph::new();
    let n = alternating(&mut g, 4);
    let last = g.add(B { value: 4 });
    g.add_edge(n[0], last).unwrap();
    g.add_edge(n[1], last).unwrap();
    let plan = g
        .plan_with(|n| Ok(if n.name == "A" { 0 } else { 1 }))
        .unwrap();
    let gran = |kind: u32| {
        if kind == 0 {
            Granularity::Warp
        } else {
            Granularity::Lane
        }
    };
    let mut image = GraphImage::new(&plan, gran);
    image.set_base(0x7000_0000);
    let word = |off: usize| u32::from_le_bytes(image.bytes[off..off + 4].try_into().unwrap());
    let ptr = |i: usize| u64::from_le_bytes(image.bytes[8 * i..8 * i + 8].try_into().unwrap());
    // Seven pointers, each array 16-byte aligned after the 80-byte header.
    for i in 0..7 {
        assert_eq!(ptr(i), 0x7000_0000 + image.offsets[i] as u64);
        assert_eq!(image.offsets[i] % 16, 0);
        assert!(image.offsets[i] >= size_of::<crate::layout::GraphDev>());
    }
    // num_roots, num_nodes, lane_roots, warp_roots_end.
    assert_eq!([word(56), word(60), word(64), word(68)], [4, 5, 2, 4]);
    let h = image.header();
    assert_eq!(
        (h.num_roots, h.num_nodes, h.lane_roots, h.warp_roots_end),
        (4, 5, 2, 4)
    );
    assert_eq!((h.kinds, h.roots), (ptr(0), ptr(6)));
    // Roots: the lane ones first, then the warp ones, insertion order within each.
    let roots: Vec<u32> = (0..4).map(|i| word(image.offsets[6] + 4 * i)).collect();
    assert_eq!(roots, vec![1, 3, 0, 2]);
    // remaining starts as the in-degrees; node 4 waits for two predecessors.
    let remaining: Vec<u32> = (0..5)
        .map(|i| word(image.offsets[REMAINING] + 4 * i))
        .collect();
    assert_eq!(remaining, vec![0, 0, 0, 0, 2]);
    // Records: node 2's value (an A: after its 8-byte pointer) at word 2 of its 12.
    assert_eq!(word(image.offsets[1] + 4 * (2 * RECORD_WORDS + 2)), 2);
    // Successors of node 0 and of node 1: both node 4.
    let off: Vec<u32> = (0..6).map(|i| word(image.offsets[2] + 4 * i)).collect();
    assert_eq!(off, vec![0, 1, 2, 2, 2, 2]);
    assert_eq!([word(image.offsets[3]), word(image.offsets[3] + 4)], [4, 4]);
    // Kinds: A = 0, B = 1; nodes without successors (2, 3, 4) carry the leaf bit.
    let kinds: Vec<u32> = (0..5).map(|i| word(image.offsets[0] + 4 * i)).collect();
    let leaf = super::resident::NODE_LEAF;
    assert_eq!(kinds, vec![0, 1, leaf, 1 | leaf, 1 | leaf]);
}

#[test]
fn a_one_root_launch_carries_its_root_and_a_many_root_launch_only_the_address() {
    let leaf = super::resident::NODE_LEAF;
    let kinds = |n: &Node| Ok(if n.name == "A" { 0 } else { 1 });
    // B#0 → B#1: one root, node 0, not a leaf; its record's first word is its value.
    let mut g = TaskGraph::new();
    let first = g.add(B { value: 7 });
    let second = g.add(B { value: 8 });
    g.add_edge(first, second).unwrap();
    let w = super::resident::launch_record(&g.plan_with(kinds).unwrap(), 0x12_3456_7890);
    assert_eq!(w.len(), 4 + RECORD_WORDS);
    assert_eq!(&w[..5], &[0x3456_7890, 0x12, 1, 1, 7]);
    // A lone node: the root is also a leaf.
    let mut g = TaskGraph::new();
    g.add(a(5));
    let w = super::resident::launch_record(&g.plan_with(kinds).unwrap(), 0x40);
    assert_eq!(&w[..4], &[0x40, 0, 1, leaf]);
    // Two roots: only the address.
    let mut g = TaskGraph::new();
    alternating(&mut g, 2);
    let w = super::resident::launch_record(&g.plan_with(kinds).unwrap(), 0x40);
    assert!(w[2..].iter().all(|&x| x == 0), "{w:?}");
}

#[grosr::task(granularity = "block", cuda = "")]
pub struct C {
    pub value: u32,
}

#[test]
fn a_small_graph_travels_whole_in_level_order_with_lane_nodes_first() {
    use super::resident::small_launch;
    use crate::codegen::TaskInfo;
    let tasks = [
        TaskInfo::of::<A>(),
        TaskInfo::of::<B>(),
        TaskInfo::of::<C>(),
    ];
    let kinds = |n: &Node| Ok(["A", "B", "C"].iter().position(|&x| x == n.name).unwrap() as u32);
    // The diamond, added bottom first: level 0 the A on top; level 1 the B, then the A (lane
    // nodes first); level 2 the B at the bottom.
    let mut g = TaskGraph::new();
    let bottom = g.add(B { value: 3 });
    let right = g.add(a(2));
    let left = g.add(B { value: 1 });
    let top = g.add(a(0));
    for (u, v) in [(top, left), (top, right), (left, bottom), (right, bottom)] {
        g.add_edge(u, v).unwrap();
    }
    let w = small_launch(&g.plan_with(kinds).unwrap(), &tasks).expect("60 bytes fit");
    let node = |kind: u32, level: u32, cell: u32| kind | level << 16 | cell << 24;
    // Records start at cell 8 + 1 + 4 = 13: A is 4 words, B one.
    assert_eq!(
        &w[..5],
        &[
            4,
            node(0, 0, 13),
            node(1, 1, 17),
            node(0, 1, 18),
            node(1, 2, 22)
        ]
    );
    assert_eq!(&w[5..], &[0, 0, 0, 0, 1, 0, 0, 2, 0, 3]);
    // Too many records for one descriptor, or a block node: not small.
    let mut g = TaskGraph::new();
    alternating(&mut g, 9);
    assert!(small_launch(&g.plan_with(kinds).unwrap(), &tasks).is_none());
    let mut g = TaskGraph::new();
    let b = g.add(B { value: 1 });
    let c = g.add(C { value: 2 });
    g.add_edge(b, c).unwrap();
    assert!(small_launch(&g.plan_with(kinds).unwrap(), &tasks).is_none());
}
