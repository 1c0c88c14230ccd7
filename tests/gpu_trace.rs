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

use common::suite::{T, assert_tracks_never_overlap, cancel_once_started, fib, submit_tree};
use common::{BlockSum, Chain, Fib, SpawnBlock, Tick, Tree};
use grosr::DeviceBuffer;
use grosr::trace::TaskSpan;

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_traced_mixed_job_records_every_task_once_with_its_spawner() {
    let rt = common::builder().trace(4096).build().expect("runtime");
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
    // Origins: host submits have none (0); every spawn names its spawner, of its own tree.
    for (what, group, roots) in [
        ("Fib", &fibs, 1),
        ("Chain", &chains, 1),
        ("SpawnBlock", &spawners, 16),
    ] {
        assert_eq!(
            group.iter().filter(|t| t.parent == 0).count(),
            roots,
            "{what} roots"
        );
        for t in group.iter().filter(|t| t.parent != 0) {
            let p = by_id
                .get(&t.parent)
                .unwrap_or_else(|| panic!("{what}: no task {}", t.parent));
            assert_eq!(
                (p.kind, p.job),
                (t.kind, t.job),
                "{what}: a spawn's parent is of its tree"
            );
            assert!(
                p.start_ns <= t.start_ns,
                "{what}: a child starts after its parent does"
            );
        }
    }
    // Each held hop's parent is the hop before it (the other type), each Mark's a Tock.
    let (tick, tock, mark) = (kind("Tick"), kind("Tock"), kind("Mark"));
    let hops: Vec<&TaskSpan> = trace
        .tasks
        .iter()
        .filter(|t| t.kind == tick || t.kind == tock)
        .collect();
    assert_eq!(hops.len(), 4 * 300);
    for t in hops.iter().filter(|t| t.parent != 0) {
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
        hops.iter().filter(|t| t.parent == 0).count(),
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

/// A trace too small for what ran: every task is either an event or counted as dropped, and
/// every event kept is whole.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_trace_too_small_counts_every_task_it_did_not_keep() {
    let rt = common::builder().trace(2).build().expect("runtime");
    let sum = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
    let _ = rt.trace().unwrap(); // whatever the build's own checks ran
    let before = rt.executed::<Fib>().unwrap();
    rt.submit(&[Fib {
        n: 20,
        pad: 0,
        sum: sum.ptr(),
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    assert_eq!(sum.to_vec().unwrap()[0], fib(20));
    let ran = rt.executed::<Fib>().unwrap() - before;
    let trace = rt.trace().unwrap();
    assert!(trace.dropped > 0, "{ran} tasks fit 2 events a warp");
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
        .trace(4096)
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
