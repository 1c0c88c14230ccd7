//! The task trace (`RuntimeBuilder::trace`, `Runtime::trace`) on the CPU backend: a traced mixed
//! job (a spawn tree, a chain of warp tasks, a task graph) gives every task run exactly once,
//! origins that match the spawn tree and the graph, tracks whose slices never overlap, nothing
//! dropped at the configured size, and Chrome trace-event JSON that says the same.

mod common;

use std::collections::{HashMap, HashSet};

use common::suite::{T, assert_spawns_name_their_tree, assert_tracks_never_overlap, fib};
use common::{Chain, Fib};
use grosr::graph::{Strategy, TaskGraph};
use grosr::trace::TaskSpan;
use grosr::{Backend, DeviceBuffer, Runtime};

fn traced(events: usize) -> Runtime {
    common::portable_builder()
        .backend(Backend::Cpu)
        .cpu_threads(2)
        .trace(events)
        .build()
        .unwrap()
}

/// Children per parent id.
fn children(tasks: &[TaskSpan]) -> HashMap<u64, usize> {
    let mut n = HashMap::new();
    for t in tasks {
        *n.entry(t.parent).or_insert(0) += 1;
    }
    n
}

#[test]
fn a_traced_mixed_job_records_every_task_once_with_its_origin() {
    let rt = traced(1 << 20);
    let sum = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
    let hops = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 6).unwrap();
    let fib_job = rt
        .submit(&[Fib {
            n: 15,
            pad: 0,
            sum: sum.ptr(),
        }])
        .unwrap();
    let chain_job = rt
        .submit(&[Chain {
            remaining: 99,
            pad: 0,
            hops: hops.ptr(),
        }])
        .unwrap();
    // A diamond and a tail: 0 -> {1, 2} -> 3 -> 4, 5 alone.
    let mut g = TaskGraph::new();
    let ids: Vec<_> = (0..6).map(|i| g.add(common::mark(&flags, i))).collect();
    for (a, b) in [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)] {
        g.add_edge(ids[a], ids[b]).unwrap();
    }
    g.prepare(&rt, Strategy::Resident).unwrap().run(T).unwrap();
    fib_job.wait_timeout(T).unwrap();
    chain_job.wait_timeout(T).unwrap();
    assert_eq!(sum.to_vec().unwrap()[0], fib(15));
    assert_eq!(hops.to_vec().unwrap()[0], 100);
    assert_eq!(flags.to_vec().unwrap(), vec![1; 6]);

    let trace = rt.trace().unwrap();
    assert_eq!(trace.dropped, 0);
    let kind = |name: &str| trace.task_names.iter().position(|n| *n == name).unwrap() as u32;
    let of = |k: u32| -> Vec<TaskSpan> {
        trace
            .tasks
            .iter()
            .filter(|t| t.kind == k)
            .copied()
            .collect()
    };
    let (fibs, chains, marks) = (of(kind("Fib")), of(kind("Chain")), of(kind("Mark")));
    // Every task that ran, once.
    assert_eq!(fibs.len() as u64, 2 * fib(16) - 1);
    assert_eq!(chains.len(), 100);
    assert_eq!(marks.len(), 6);
    assert_eq!(trace.tasks.len(), fibs.len() + 100 + 6);
    let ids: HashSet<u64> = trace.tasks.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), trace.tasks.len(), "task ids repeat");
    // Origins: the host's submit or graph run for roots; the spawner or releasing predecessor
    // for the rest.
    let host: HashMap<u64, &str> = trace.host.iter().map(|h| (h.id, h.what)).collect();
    let by_id: HashMap<u64, &TaskSpan> = trace.tasks.iter().map(|t| (t.id, t)).collect();
    for (what, group) in [("Fib", &fibs), ("Chain", &chains)] {
        let roots: Vec<_> = group.iter().filter_map(|t| host.get(&t.parent)).collect();
        assert_eq!(roots, [&"submit"], "{what}: one root, made by a submit");
        assert_spawns_name_their_tree(&trace, group, what);
    }
    // Fib: every task spawned 0 or 2 (fib(16) leaves); the chain: a path of 100.
    let fib_kids = children(&fibs);
    assert!(
        fibs.iter()
            .all(|t| matches!(fib_kids.get(&t.id), None | Some(2)))
    );
    assert_eq!(
        fibs.iter()
            .filter(|t| !fib_kids.contains_key(&t.id))
            .count() as u64,
        fib(16)
    );
    let chain_kids = children(&chains);
    assert!(
        chains
            .iter()
            .all(|t| matches!(chain_kids.get(&t.id), None | Some(1)))
    );
    // The graph: roots 0 and 5 from the run; the others each from a predecessor that ended
    // before they started.
    let mark_roots = marks
        .iter()
        .filter(|t| host.get(&t.parent) == Some(&"graph run"))
        .count();
    assert_eq!(mark_roots, 2);
    // Each names its node, once; the roots are nodes 0 and 5; a predecessor's node is an edge.
    let mut nodes: Vec<u32> = marks
        .iter()
        .map(|t| t.node.expect("a graph node"))
        .collect();
    nodes.sort_unstable();
    assert_eq!(nodes, (0..6).collect::<Vec<u32>>());
    assert!(
        trace
            .tasks
            .iter()
            .filter(|t| t.kind != kind("Mark"))
            .all(|t| t.node.is_none())
    );
    let edges = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)];
    for t in marks.iter().filter(|t| !host.contains_key(&t.parent)) {
        let p = by_id[&t.parent];
        assert!(
            edges.contains(&(p.node.unwrap(), t.node.unwrap())),
            "node {:?} drawn from {:?}",
            t.node,
            p.node
        );
        assert_eq!(p.kind, kind("Mark"));
        assert!(
            p.end_ns <= t.start_ns,
            "a successor starts after its predecessor ended"
        );
    }
    assert_tracks_never_overlap(&trace);
    let waits = trace.host.iter().filter(|h| h.what == "wait").count();
    assert!(waits >= 3, "{waits} waits recorded");

    // The JSON says the same: a slice per task, an arrow (start and end) per task with a
    // recorded origin, the counters, nothing dropped.
    let json: serde_json::Value = serde_json::from_str(&trace.to_chrome_json()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    let count = |ph: &str, cat: &str| {
        events
            .iter()
            .filter(|e| e["ph"] == ph && (cat.is_empty() || e["cat"] == cat))
            .count()
    };
    assert_eq!(count("X", "task"), trace.tasks.len());
    assert_eq!(count("s", "flow"), trace.tasks.len());
    assert_eq!(count("f", "flow"), trace.tasks.len());
    assert!(count("C", "") > 0);
    assert_eq!(json["otherData"]["dropped"], 0);
    // A second take starts afresh.
    assert!(rt.trace().unwrap().tasks.is_empty());
}

#[test]
fn a_full_buffer_counts_what_it_drops_and_tracing_off_is_an_error() {
    let rt = traced(10);
    let sum = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
    rt.submit(&[Fib {
        n: 12,
        pad: 0,
        sum: sum.ptr(),
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    let trace = rt.trace().unwrap();
    assert!(trace.tasks.len() <= 2 * 10);
    let tasks = 2 * fib(13) - 1;
    assert!(
        trace.dropped >= tasks - trace.tasks.len() as u64,
        "{}",
        trace.dropped
    );
    let untraced = common::portable_builder()
        .backend(Backend::Cpu)
        .build()
        .unwrap();
    assert!(matches!(untraced.trace(), Err(grosr::Error::Config(_))));
    // The GPU backend records one too: a build is not refused for tracing (here, without a
    // GPU, it fails for the missing driver or device instead).
    let gpu = common::portable_builder()
        .backend(Backend::Gpu)
        .trace(10)
        .build()
        .err();
    assert!(
        !matches!(gpu, Some(grosr::Error::Unsupported(_))),
        "{gpu:?}"
    );
}

/// A traced range submit and range node: a slice per item, each with its origin (the submit, or
/// the graph run for a root range node), and on no track two at once.
#[test]
fn a_traced_range_records_a_slice_per_item() {
    let rt = grosr::Runtime::builder()
        .task::<common::Mark>()
        .backend(Backend::Cpu)
        .cpu_threads(2)
        .trace(1 << 16)
        .build()
        .unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let items = 1000u32;
    rt.submit_range(&common::mark(&flags, 0), items)
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    let mut g = TaskGraph::new();
    g.add_range(common::mark(&flags, 0), items).unwrap();
    g.prepare(&rt, Strategy::Resident).unwrap().run(T).unwrap();
    assert_eq!(flags.to_vec().unwrap(), vec![2 * items]);
    let trace = rt.trace().unwrap();
    assert_eq!(trace.dropped, 0);
    assert_eq!(trace.tasks.len(), 2 * items as usize);
    let host: HashMap<u64, &str> = trace.host.iter().map(|h| (h.id, h.what)).collect();
    for what in ["submit", "graph run"] {
        let n = trace
            .tasks
            .iter()
            .filter(|t| host.get(&t.parent) == Some(&what))
            .count();
        assert_eq!(n, items as usize, "slices whose origin is the {what}");
    }
    let ids: HashSet<u64> = trace.tasks.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), trace.tasks.len(), "an id per slice");
    let mut by_track: HashMap<u32, Vec<&TaskSpan>> = HashMap::new();
    for t in &trace.tasks {
        by_track.entry(t.track).or_default().push(t);
    }
    for spans in by_track.values_mut() {
        spans.sort_by_key(|t| t.start_ns);
        for w in spans.windows(2) {
            assert!(w[0].end_ns <= w[1].start_ns, "slices on a track overlap");
        }
    }
}
