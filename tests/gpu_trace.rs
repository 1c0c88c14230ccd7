//! The task timeline on a real GPU (`RuntimeBuilder::trace`): a traced mixed job (a spawn tree
//! of lane tasks, a chain of warp tasks, block tasks spawned from lane tasks) gives every task
//! that ran exactly one event, spawn origins that match the spawn tree, tracks (scheduler warps)
//! whose events never overlap, nothing dropped at the configured size, and JSON that says so;
//! a trace too small, whose events and dropped count add up to the tasks that ran; a cancelled
//! tree traced, with an event for each task that ran and none for those skipped; and the
//! overhead figure's check: the untraced module is the same code (tests/nvrtc_compile.rs
//! and benches/NOTES.md). Run on the GPU machine with `bash .gpu/run tests`.

mod common;

use std::collections::{HashMap, HashSet};

#[path = "common/graph.rs"]
mod graph;

use common::suite::{
    T, assert_spawns_name_their_tree, assert_tracks_never_overlap, cancel_once_started, fib,
    submit_tree,
};
use common::{BlockSum, Chain, Fib, SpawnBlock, Tick, Tree};
use grosr::DeviceBuffer;
use grosr::graph::Strategy;
use grosr::trace::{HostSpan, TaskSpan, Trace};

/// How far the host's clock, set against the GPU's before launch, may be off: a few µs of
/// round trip, and drift over a test's seconds.
const CLOCK_SLACK_NS: u64 = 50_000;

/// Each job's tasks start after its submit (or graph run) started and end before its last
/// wait ended, on the trace's one clock (within [`CLOCK_SLACK_NS`]).
fn assert_submits_came_first_and_waits_last(trace: &Trace) {
    for t in &trace.tasks {
        let of_job = trace.host.iter().filter(|h| h.job == t.job);
        let submitted = of_job
            .clone()
            .filter(|h| h.what != "wait")
            .map(|h| h.start_ns)
            .filter(|&s| s <= t.start_ns + CLOCK_SLACK_NS)
            .max();
        assert!(
            submitted.is_some(),
            "task {t:?} started before any submit of its job slot"
        );
        let waited = of_job
            .filter(|h| h.what == "wait")
            .map(|h| h.end_ns)
            .max()
            .unwrap_or(0);
        assert!(
            t.end_ns <= waited + CLOCK_SLACK_NS,
            "task {t:?} ended after its job's last wait returned ({waited} ns)"
        );
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_traced_mixed_job_records_every_task_once_with_its_spawner() {
    let rt = common::builder().trace(1 << 16).build().expect("runtime");
    let sum = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
    let hops = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let out = DeviceBuffer::<u32>::zeroed(rt.gpu(), 16).unwrap();
    let kinds = |rt: &grosr::Runtime| {
        [
            rt.executed::<Fib>().unwrap(),
            rt.executed::<Chain>().unwrap(),
            rt.executed::<SpawnBlock>().unwrap(),
            rt.executed::<BlockSum>().unwrap(),
        ]
    };
    let before = kinds(&rt);
    let _ = rt.trace().unwrap(); // whatever the build's own checks ran
    // Held chains of two lane types (the scheduler bypass: take_held and run_held), every third
    // Tock hop also spawning a Mark.
    let hits = DeviceBuffer::<u32>::zeroed(rt.gpu(), 4 * 300).unwrap();
    let ticks: Vec<Tick> = (0..4u32)
        .map(|chain| Tick {
            hits: hits.ptr(),
            chain,
            hop: 0,
            len: 300,
            pad: 0,
        })
        .collect();
    rt.submit(&ticks).unwrap().wait_timeout(T).unwrap();
    let jobs = [
        rt.submit(&[Fib {
            n: 15,
            pad: 0,
            sum: sum.ptr(),
        }])
        .unwrap(),
        rt.submit(&[Chain {
            remaining: 99,
            pad: 0,
            hops: hops.ptr(),
        }])
        .unwrap(),
        rt.submit(
            &(0..16u32)
                .map(|i| SpawnBlock {
                    out: out.ptr(),
                    base: i,
                    slot: i,
                })
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    ];
    for j in &jobs {
        j.wait_timeout(T).unwrap();
    }
    assert_eq!(sum.to_vec().unwrap()[0], fib(15));
    assert_eq!(hops.to_vec().unwrap()[0], 100);
    let ran: Vec<u64> = kinds(&rt).iter().zip(before).map(|(a, b)| a - b).collect();
    let trace = rt.trace().unwrap();
    assert_eq!(trace.dropped, 0);
    let kind = |name: &str| trace.task_names.iter().position(|n| *n == name).unwrap() as u32;
    let of = |k: &str| -> Vec<TaskSpan> {
        let k = kind(k);
        trace
            .tasks
            .iter()
            .filter(|t| t.kind == k)
            .copied()
            .collect()
    };
    let (fibs, chains, spawners, blocks) =
        (of("Fib"), of("Chain"), of("SpawnBlock"), of("BlockSum"));
    // Every task that ran, once (the executed counts include held hops, as the events do).
    assert_eq!(
        [fibs.len(), chains.len(), spawners.len(), blocks.len()].map(|n| n as u64),
        [ran[0], ran[1], ran[2], ran[3]]
    );
    assert_eq!(fibs.len() as u64, 2 * fib(16) - 1);
    let ids: HashSet<u64> = trace.tasks.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), trace.tasks.len(), "task ids repeat");
    let by_id: HashMap<u64, &TaskSpan> = trace.tasks.iter().map(|t| (t.id, t)).collect();
    let host: HashMap<u64, &HostSpan> = trace.host.iter().map(|h| (h.id, h)).collect();
    // The host's calls: a submit and a wait for each of the four jobs, on the GPU's clock.
    let calls = |what: &str| trace.host.iter().filter(|h| h.what == what).count();
    assert_eq!((calls("submit"), calls("wait")), (4, 4), "{:?}", trace.host);
    assert_submits_came_first_and_waits_last(&trace);
    // Origins: what the host submitted names the submit; every spawn names its spawner, of its
    // own tree.
    for (what, group, roots) in [
        ("Fib", &fibs, 1),
        ("Chain", &chains, 1),
        ("SpawnBlock", &spawners, 16),
    ] {
        assert_eq!(
            group
                .iter()
                .filter(|t| host.contains_key(&t.parent))
                .count(),
            roots,
            "{what} roots"
        );
        for t in group.iter().filter(|t| host.contains_key(&t.parent)) {
            let submit = host[&t.parent];
            assert_eq!(
                (submit.what, submit.job),
                ("submit", t.job),
                "{what}: a root's submit"
            );
        }
        assert_spawns_name_their_tree(&trace, group, what);
    }
    // Each held hop's parent is the hop before it (the other type), each Mark's a Tock.
    let (tick, tock, mark) = (kind("Tick"), kind("Tock"), kind("Mark"));
    let hops: Vec<&TaskSpan> = trace
        .tasks
        .iter()
        .filter(|t| t.kind == tick || t.kind == tock)
        .collect();
    assert_eq!(hops.len(), 4 * 300);
    for t in hops.iter().filter(|t| !host.contains_key(&t.parent)) {
        let p = by_id
            .get(&t.parent)
            .unwrap_or_else(|| panic!("no task {}", t.parent));
        assert_eq!(
            p.kind,
            if t.kind == tick { tock } else { tick },
            "a hop's parent"
        );
    }
    assert_eq!(
        hops.iter().filter(|t| host.contains_key(&t.parent)).count(),
        4,
        "the chains' roots"
    );
    for m in trace.tasks.iter().filter(|t| t.kind == mark) {
        assert_eq!(by_id[&m.parent].kind, tock, "a Mark's spawner");
    }
    let fib_kids = trace.tasks.iter().fold(HashMap::new(), |mut m, t| {
        *m.entry(t.parent).or_insert(0u32) += 1;
        m
    });
    assert!(
        fibs.iter()
            .all(|t| matches!(fib_kids.get(&t.id), None | Some(2)))
    );
    for b in &blocks {
        let p = by_id[&b.parent];
        assert_eq!(p.kind, kind("SpawnBlock"), "a block task's spawner");
    }
    // A track per warp and lane: its events never overlap.
    assert_tracks_never_overlap(&trace);
    let json: serde_json::Value = serde_json::from_str(&trace.to_chrome_json()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    let tasks = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "task")
        .count();
    assert_eq!(tasks, trace.tasks.len());
}

/// A traced Resident graph, launched twice: every node runs once a launch, each names its
/// node, a root its launch's host span, any other node one of its predecessors that ended
/// before it started (the one whose end released it); the host's graph runs and waits frame
/// the tasks.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_traced_graph_names_each_node_and_draws_it_from_a_predecessor() {
    let rt = graph::register(grosr::Runtime::builder())
        .trace(1 << 16)
        .build()
        .expect("runtime");
    // Allocated and prepared while stopped, so that compute-sanitizer's memcheck, which knows
    // only the allocations made before a kernel launched, checks this test (gpu_checks.sh).
    rt.stop().unwrap();
    let dag = graph::random_dag(&rt, 400, 11);
    let n = dag.expected.len();
    let mut preds: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (u, v) in dag.graph.edges() {
        preds[v.index()].push(u.index() as u32);
    }
    let mut p = dag.graph.prepare(&rt, Strategy::Resident).unwrap();
    rt.start().unwrap();
    let _ = rt.trace().unwrap();
    for run in 0..2 {
        dag.out.write(&vec![0u64; n]).unwrap();
        p.run(T).unwrap();
        assert_eq!(dag.out.to_vec().unwrap(), dag.expected, "launch {run}");
    }
    let trace = rt.trace().unwrap();
    assert_eq!(trace.dropped, 0);
    let runs: Vec<&HostSpan> = trace
        .host
        .iter()
        .filter(|h| h.what == "graph run")
        .collect();
    assert_eq!(runs.len(), 2, "{:?}", trace.host);
    assert_submits_came_first_and_waits_last(&trace);
    let mut per_node = vec![0u32; n];
    for t in &trace.tasks {
        per_node[t.node.expect("every task of the launch is a node") as usize] += 1;
    }
    assert!(
        per_node.iter().all(|&c| c == 2),
        "a node ran other than once a launch"
    );
    let by_id: HashMap<u64, &TaskSpan> = trace.tasks.iter().map(|t| (t.id, t)).collect();
    for t in &trace.tasks {
        let v = t.node.unwrap() as usize;
        if preds[v].is_empty() {
            assert!(
                runs.iter().any(|r| r.id == t.parent),
                "root {v} names its launch, not {}",
                t.parent
            );
            continue;
        }
        let parent = by_id
            .get(&t.parent)
            .unwrap_or_else(|| panic!("node {v}: parent {} is no task", t.parent));
        let u = parent.node.expect("a node's parent is a node");
        assert!(
            preds[v].contains(&u),
            "node {v} drawn from {u}, not a predecessor"
        );
        assert!(
            parent.end_ns <= t.start_ns,
            "node {v} started before {u} ended"
        );
        // The same launch: no graph run started between them.
        assert!(
            !runs
                .iter()
                .any(|r| r.start_ns > parent.start_ns && r.start_ns < t.start_ns),
            "node {v} drawn from the other launch"
        );
    }
    assert_tracks_never_overlap(&trace);
}

/// A trace too small for what ran: every task is either an event or counted as dropped, and
/// every event kept is whole.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_trace_too_small_counts_every_task_it_did_not_keep() {
    // The least a GPU keeps: one event a lane of its scheduler blocks (256 threads each).
    let rt = common::builder().trace(2).build().expect("runtime");
    let kept_at_most = u64::from(rt.info().grid_blocks) * 256;
    let sum = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
    let _ = rt.trace().unwrap(); // whatever the build's own checks ran
    let before = rt.executed::<Fib>().unwrap();
    rt.submit(&[Fib {
        n: 25,
        pad: 0,
        sum: sum.ptr(),
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    assert_eq!(sum.to_vec().unwrap()[0], fib(25));
    let ran = rt.executed::<Fib>().unwrap() - before;
    assert!(ran > kept_at_most, "{ran} tasks, {kept_at_most} lanes");
    let trace = rt.trace().unwrap();
    assert!(trace.dropped > 0);
    assert_eq!(trace.tasks.len() as u64 + trace.dropped, ran);
    assert!(trace.tasks.iter().all(|t| t.start_ns <= t.end_ns));
}

/// Traced and cancellable together: a spawn tree cancelled mid-flight leaves one event for each
/// of its tasks that ran (the executed count says how many) and none for those it skipped.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_cancelled_tree_leaves_an_event_for_each_task_that_ran_and_none_for_the_skipped() {
    // Queues of 2^17 slots an SM: the tree's last level alone is 10 million tasks (gpu_jobs.rs).
    let rt = common::builder()
        .trace(1 << 16)
        .cancellable(true)
        .queue_capacity(1 << 17)
        .build()
        .expect("runtime");
    let counts = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let _ = rt.trace().unwrap();
    let before = rt.executed::<Tree>().unwrap();
    let tree = submit_tree(&rt, &counts);
    let ran = cancel_once_started(&tree, &counts);
    assert_eq!(rt.executed::<Tree>().unwrap() - before, u64::from(ran));
    let trace = rt.trace().unwrap();
    assert_eq!(trace.dropped, 0);
    let tree_kind = trace.task_names.iter().position(|n| *n == "Tree").unwrap() as u32;
    let events = trace.tasks.iter().filter(|t| t.kind == tree_kind).count() as u64;
    assert_eq!(
        events,
        u64::from(ran),
        "an event for each task that ran, none for the skipped"
    );
}
