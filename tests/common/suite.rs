//! The core checks both backends run, on the Rust-body task types of `tests/common/mod.rs`:
//! tests/gpu_core.rs runs them on a GPU, tests/cpu_suite.rs on the CPU backend in `cargo test`.
//! Each takes the runtime to check, so a GPU test can also run them on a module built another
//! way (`Optimize::Compile`).
#![allow(dead_code)]

use std::time::Duration;

use grosr::trace::TaskSpan;
use grosr::{DeviceBuffer, Error, Runtime};

use super::{
    BlockSpin, Chain, Failer, Fib, Flood, Mark, Spin, Tick, Tree, WarpFlood, WarpSpin, mark,
};

/// Every wait's bound: long enough for a debug build on two cores, short of CI's patience.
pub const T: Duration = Duration::from_secs(60);

/// Runs one Mark task on `rt` and checks it ran: the runtime is usable.
pub fn assert_runtime_runs_tasks(rt: &Runtime) {
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    rt.submit(&[mark(&flags, 0)])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    assert_eq!(flags.to_vec().unwrap(), vec![1]);
}

/// 8 host threads submit 2^20 Mark tasks in jobs of varying size, all in flight before any
/// wait: each runs exactly once and the type's count says so.
pub fn a_million_tasks_from_eight_host_threads_each_run_exactly_once(rt: &Runtime) {
    let per_thread = 131_072u32;
    let before = rt.executed::<Mark>().unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 8 * per_thread as usize).unwrap();
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let flags = flags.ptr();
            s.spawn(move || {
                let mut jobs = Vec::new();
                let (mut next, end) = (t * per_thread, (t + 1) * per_thread);
                let mut size = 1 + t * 7;
                while next < end {
                    let n = size.min(end - next);
                    let tasks: Vec<Mark> = (next..next + n)
                        .map(|index| Mark {
                            flags,
                            index,
                            pad: 0,
                        })
                        .collect();
                    jobs.push(rt.submit(&tasks).unwrap());
                    next += n;
                    size = (size * 3 + 1) % 20_000 + 1;
                }
                for j in jobs {
                    j.wait_timeout(T).unwrap();
                }
            });
        }
    });
    let seen = flags.to_vec().unwrap();
    let wrong: Vec<(usize, u32)> = seen
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != 1)
        .map(|(i, c)| (i, *c))
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "tasks not run exactly once, e.g. {wrong:?}"
    );
    assert_eq!(
        rt.executed::<Mark>().unwrap() - before,
        8 * u64::from(per_thread)
    );
}

/// The n-th Fibonacci number.
pub fn fib(n: u64) -> u64 {
    (0..n).fold((0, 1), |(a, b), _| (b, a + b)).0
}

/// Executed counts run on across a stop and a start (a GPU's restart clears the device's
/// counters), and read while stopped.
pub fn executed_counts_carry_across_a_stop_and_a_start(rt: &Runtime) {
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 2000).unwrap();
    let before = rt.executed::<Mark>().unwrap();
    let marks = |range: std::ops::Range<u32>| range.map(|i| mark(&flags, i)).collect::<Vec<_>>();
    rt.submit(&marks(0..1000)).unwrap().wait_timeout(T).unwrap();
    rt.stop().unwrap();
    assert_eq!(
        rt.executed::<Mark>().unwrap() - before,
        1000,
        "while stopped"
    );
    rt.start().unwrap();
    assert_eq!(
        rt.executed::<Mark>().unwrap() - before,
        1000,
        "after the start"
    );
    rt.submit(&marks(1000..2000))
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    assert_eq!(
        rt.executed::<Mark>().unwrap() - before,
        2000,
        "after a second job"
    );
    assert!(flags.to_vec().unwrap().iter().all(|&f| f == 1));
}

/// Fibonacci by a tree of spawns: the leaves' sum and the tree's task count, up to fib(27)
/// (635 621 tasks).
pub fn a_recursive_spawn_tree_computes_fibonacci(rt: &Runtime) {
    for n in [1u32, 10, 20, 27] {
        let sum = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
        let before = rt.executed::<Fib>().unwrap();
        rt.submit(&[Fib {
            n,
            pad: 0,
            sum: sum.ptr(),
        }])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
        assert_eq!(sum.to_vec().unwrap()[0], fib(n.into()), "fib({n})");
        // The call tree of fib(n) has 2 fib(n+1) - 1 nodes.
        assert_eq!(
            rt.executed::<Fib>().unwrap() - before,
            2 * fib(u64::from(n) + 1) - 1,
            "tasks for fib({n})"
        );
    }
}

/// A chain of 100 000 dependent spawns of a warp task: every hop runs, once.
pub fn a_chain_of_100k_dependent_spawns_runs_every_hop(rt: &Runtime) {
    let hops = 100_000u32;
    let before = rt.executed::<Chain>().unwrap();
    let seen = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    rt.submit(&[Chain {
        remaining: hops,
        pad: 0,
        hops: seen.ptr(),
    }])
    .unwrap()
    .wait_timeout(T)
    .unwrap();
    assert_eq!(seen.to_vec().unwrap()[0], hops + 1);
    assert_eq!(
        rt.executed::<Chain>().unwrap() - before,
        u64::from(hops) + 1
    );
}

/// Held lane chains: chains alternating [`Tick`] and [`super::Tock`], [`HELD_CHAINS`] of
/// [`HELD_LEN`] hops each (longer than a lane round's bypass hops, so chains also fall back to
/// the stack), every Tock hop ≡ 0 (mod 3) adding a Mark (fan-out). `hits` holds
/// `HELD_CHAINS * HELD_LEN` zeroes (the GPU test allocates it before the scheduler starts, so
/// compute-sanitizer can run it).
pub fn held_lane_chains_run_every_hop_once_and_count_it(rt: &Runtime, hits: &DeviceBuffer<u32>) {
    let kinds = || {
        [
            rt.executed::<Tick>().unwrap(),
            rt.executed::<super::Tock>().unwrap(),
            rt.executed::<Mark>().unwrap(),
        ]
    };
    let before = kinds();
    let roots: Vec<Tick> = (0..HELD_CHAINS)
        .map(|chain| Tick {
            hits: hits.ptr(),
            chain,
            hop: 0,
            len: HELD_LEN,
            pad: 0,
        })
        .collect();
    rt.submit(&roots).unwrap().wait_timeout(T).unwrap();
    let got = hits.to_vec().unwrap();
    for (i, &h) in got.iter().enumerate() {
        let hop = i as u32 % HELD_LEN;
        let want = if hop % 2 == 1 && hop % 3 == 0 { 2 } else { 1 };
        assert_eq!(h, want, "chain {} hop {hop}", i as u32 / HELD_LEN);
    }
    let odd = HELD_LEN / 2; // Tock hops: 1, 3, 5, …
    let marks_per_chain = (0..HELD_LEN).filter(|h| h % 2 == 1 && h % 3 == 0).count() as u32;
    let after = kinds();
    assert_eq!(
        after[0] - before[0],
        u64::from(HELD_CHAINS * (HELD_LEN - odd))
    );
    assert_eq!(after[1] - before[1], u64::from(HELD_CHAINS * odd));
    assert_eq!(
        after[2] - before[2],
        u64::from(HELD_CHAINS * marks_per_chain)
    );
}

/// Chains in [`held_lane_chains_run_every_hop_once_and_count_it`]: a lane round and a bit.
pub const HELD_CHAINS: u32 = 40;
/// Hops per chain there.
pub const HELD_LEN: u32 = 1000;

/// `ctx.fail(7)` fails its own job with the task's name and code; the runtime goes on.
pub fn a_failing_task_fails_its_job_only(rt: &Runtime) {
    let err = rt
        .submit(&[Failer { code: 7, pad: 0 }])
        .unwrap()
        .wait_timeout(T)
        .unwrap_err();
    assert_eq!(
        err,
        Error::TaskFailed {
            task: "Failer".into(),
            code: 7
        }
    );
    assert_runtime_runs_tasks(rt);
}

/// A stopped runtime refuses submits; started again, it runs them.
pub fn stop_refuses_submits_and_start_runs_again(rt: &Runtime) {
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 2).unwrap();
    rt.submit(&[mark(&flags, 0)])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    rt.stop().unwrap();
    assert!(!rt.is_running());
    assert_eq!(rt.submit(&[mark(&flags, 1)]).err(), Some(Error::Stopped));
    rt.start().unwrap();
    assert!(rt.is_running());
    rt.submit(&[mark(&flags, 1)])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    assert_eq!(flags.to_vec().unwrap(), vec![1, 1]);
}

/// An empty job is done at once; a waited one says done, and so does a failed one (its wait
/// says how it went).
pub fn jobs_report_done_and_empty_jobs_are_done_at_once(rt: &Runtime) {
    assert!(rt.submit::<Mark>(&[]).unwrap().is_done().unwrap());
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let job = rt.submit(&[mark(&flags, 0)]).unwrap();
    job.wait_timeout(T).unwrap();
    assert!(job.is_done().unwrap());
    let failed = rt.submit(&[Failer { code: 7, pad: 0 }]).unwrap();
    assert!(failed.wait_timeout(T).is_err());
    assert_eq!(failed.is_done(), Ok(true), "a failed job has finished");
}

/// Rounds of lane (and warp) tasks spawning 32 Marks each, sixteen jobs of 2^17 Marks at once:
/// on a GPU, 32 spawners of 32 overflow a warp's stack into the queues, and jobs mix within
/// rounds. Every Mark runs exactly once, three rounds over.
pub fn spawn_bursts_past_the_stack_run_every_task_exactly_once(rt: &Runtime) {
    let per_job = 1u32 << 17;
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 16 * per_job as usize).unwrap();
    let f = flags.ptr();
    for round in 0..3u32 {
        flags.write(&vec![0; 16 * per_job as usize]).unwrap();
        // Jobs 0-7: lane tasks spawning 32 Marks each; jobs 8-15: warp tasks whose 32 lanes do.
        let jobs: Vec<_> = (0..16u32)
            .map(|j| {
                let firsts = |per: u32| (0..per_job / per).map(move |i| j * per_job + i * per);
                if j < 8 {
                    let tasks: Vec<Flood> = firsts(32)
                        .map(|first| Flood {
                            flags: f,
                            first,
                            fanout: 32,
                        })
                        .collect();
                    rt.submit(&tasks)
                } else {
                    let tasks: Vec<WarpFlood> = firsts(1024)
                        .map(|first| WarpFlood {
                            flags: f,
                            first,
                            fanout: 32,
                        })
                        .collect();
                    rt.submit(&tasks)
                }
                .unwrap()
            })
            .collect();
        for j in &jobs {
            j.wait_timeout(T).unwrap();
        }
        let got = flags.to_vec().unwrap();
        let wrong: Vec<usize> = (0..got.len()).filter(|&i| got[i] != 1).collect();
        assert!(
            wrong.is_empty(),
            "round {round}: {} of {} flags not 1, first {:?} = {:?}",
            wrong.len(),
            got.len(),
            &wrong[..wrong.len().min(4)],
            wrong.iter().take(4).map(|&i| got[i]).collect::<Vec<_>>()
        );
    }
}

/// Completion slots of a GPU runtime with the default sizes: job `n + JOB_SLOTS` reuses job
/// `n`'s (the CPU backend keeps each job's state apart, so there this checks the outcomes only).
pub const JOB_SLOTS: u32 = 4096;

/// A failed job and a good one, looked at only after later jobs took their completion slots,
/// each report their own outcome (issue 18's D5).
pub fn a_job_looked_at_after_its_slot_was_reused_reports_its_own_outcome(rt: &Runtime) {
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), JOB_SLOTS as usize + 2).unwrap();
    let failed = rt.submit(&[Failer { code: 7, pad: 0 }]).unwrap();
    let good = rt.submit(&[mark(&flags, 0)]).unwrap();
    // JOB_SLOTS - 1 more jobs: the last of them reuses `failed`'s slot and succeeds; one more
    // reuses `good`'s slot and fails.
    let later: Vec<_> = (1..JOB_SLOTS)
        .map(|i| rt.submit(&[mark(&flags, i)]).unwrap())
        .collect();
    let last = rt.submit(&[Failer { code: 9, pad: 0 }]).unwrap();
    for job in &later {
        job.wait_timeout(T).unwrap();
    }
    assert!(matches!(
        last.wait_timeout(T),
        Err(Error::TaskFailed { code: 9, .. })
    ));
    // Both slots now hold other jobs' outcomes; each handle still gets its own.
    let again = failed.wait_timeout(T);
    assert!(
        matches!(again, Err(Error::TaskFailed { code: 7, .. })),
        "{again:?}"
    );
    good.wait_timeout(T).unwrap();
    assert_eq!(
        flags.to_vec().unwrap()[..JOB_SLOTS as usize],
        vec![1; JOB_SLOTS as usize][..]
    );
}

/// Every task of `group` not made by a host call names a task of its own type and job, which
/// started no later than it did (its spawner).
pub fn assert_spawns_name_their_tree(trace: &grosr::Trace, group: &[TaskSpan], what: &str) {
    let tasks: std::collections::HashMap<u64, &TaskSpan> =
        trace.tasks.iter().map(|t| (t.id, t)).collect();
    let spawned = group
        .iter()
        .filter(|t| !trace.host.iter().any(|h| h.id == t.parent));
    for t in spawned {
        let p = tasks
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

/// A trace's tracks (a worker thread, or a GPU warp and lane) run one task at a time: sorted
/// by start, no slice begins before the one before it ended.
pub fn assert_tracks_never_overlap(trace: &grosr::Trace) {
    for track in 0..trace.tracks.len() as u32 {
        let mut spans: Vec<_> = trace.tasks.iter().filter(|t| t.track == track).collect();
        spans.sort_by_key(|t| t.start_ns);
        for w in spans.windows(2) {
            assert!(
                w[0].end_ns <= w[1].start_ns,
                "track {track}: {:?} overlaps {:?}",
                w[0],
                w[1]
            );
        }
    }
}

/// The tasks of [`submit_tree`]'s tree: fan-out 10, depth 7.
pub const TREE_TASKS: u32 = 11_111_111;

/// Submits a spawn tree of [`TREE_TASKS`] tasks, each counting itself in `counts[0]`.
pub fn submit_tree<'rt>(rt: &'rt Runtime, counts: &DeviceBuffer<u32>) -> grosr::Job<'rt> {
    rt.submit(&[Tree {
        counts: counts.ptr(),
        depth: 7,
        fanout: 10,
    }])
    .unwrap()
}

/// Cancels `tree` ([`submit_tree`]) once some of it has run (mid-flight), checks that it ends
/// `Cancelled` with fewer than half its tasks run, and returns how many ran (its counter).
pub fn cancel_once_started(tree: &grosr::Job<'_>, counts: &DeviceBuffer<u32>) -> u32 {
    let deadline = std::time::Instant::now() + T;
    while counts.to_vec().unwrap()[0] < 10_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the tree did not start"
        );
        std::thread::yield_now();
    }
    tree.cancel().unwrap();
    assert_eq!(tree.wait_timeout(T), Err(Error::Cancelled));
    let ran = counts.to_vec().unwrap()[0];
    assert!(
        ran < TREE_TASKS / 2,
        "{ran} of {TREE_TASKS} tasks ran: the cancel came too late to test anything"
    );
    ran
}

/// `Job::cancel` mid-flight on a spawn tree of 11 million tasks while other jobs run: the tree
/// ends `Cancelled` well short of its size, its counter says exactly how many of its tasks ran,
/// every other job's results are exact, and the runtime goes on. (The CPU backend, and a GPU
/// runtime built `cancellable`.)
pub fn cancelling_a_spawn_tree_leaves_other_jobs_exact(rt: &Runtime) {
    let counts = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 8 * 1000).unwrap();
    let sum = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
    let before = rt.executed::<Tree>().unwrap();
    let tree = submit_tree(rt, &counts);
    let others: Vec<_> = (0..8u32)
        .map(|j| {
            let marks: Vec<Mark> = (j * 1000..(j + 1) * 1000)
                .map(|i| mark(&flags, i))
                .collect();
            rt.submit(&marks).unwrap()
        })
        .chain([rt
            .submit(&[Fib {
                n: 20,
                pad: 0,
                sum: sum.ptr(),
            }])
            .unwrap()])
        .collect();
    let ran = cancel_once_started(&tree, &counts);
    assert_eq!(rt.executed::<Tree>().unwrap() - before, u64::from(ran));
    for job in &others {
        job.wait_timeout(T).unwrap();
    }
    assert!(flags.to_vec().unwrap().iter().all(|&f| f == 1));
    assert_eq!(sum.to_vec().unwrap()[0], fib(20));
    // Nothing of the tree runs later, and cancelling again changes nothing.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(counts.to_vec().unwrap()[0], ran);
    tree.cancel().unwrap();
    assert_eq!(tree.wait_timeout(T), Err(Error::Cancelled));
    assert_runtime_runs_tasks(rt);
}

/// A cancelled job of a running warp task and a running block task: every thread of each sees
/// `ctx.cancelled()` and stops (no thread is left at a barrier), and the job ends `Cancelled`.
/// Then a cancelled job keeps its outcome once later jobs reused its slot, and those run.
pub fn cancelled_warp_and_block_tasks_stop_and_the_slot_serves_the_next_jobs(rt: &Runtime) {
    let seen = DeviceBuffer::<u32>::zeroed(rt.gpu(), 2).unwrap();
    let far = 30_000_000_000;
    let warp = WarpSpin {
        seen: seen.ptr(),
        max_ns: far,
    };
    let block = BlockSpin {
        seen: seen.ptr().add(1),
        max_ns: far,
    };
    let warp_job = rt.submit(&[warp]).unwrap();
    let block_job = rt.submit(&[block]).unwrap();
    for job in [&warp_job, &block_job] {
        let e = job.wait_timeout_or_cancel(Duration::from_millis(50));
        assert!(matches!(e, Err(Error::Timeout(..))), "{e:?}");
        assert_eq!(job.wait_timeout(T), Err(Error::Cancelled));
    }
    assert_eq!(
        seen.to_vec().unwrap(),
        vec![1, 1],
        "each task saw the cancel"
    );
    // JOB_SLOTS more jobs: one of them takes each cancelled job's slot, and runs.
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), JOB_SLOTS as usize).unwrap();
    let later: Vec<_> = (0..JOB_SLOTS)
        .map(|i| rt.submit(&[mark(&flags, i)]).unwrap())
        .collect();
    for job in &later {
        job.wait_timeout(T).unwrap();
    }
    assert_eq!(flags.to_vec().unwrap(), vec![1; JOB_SLOTS as usize]);
    for job in [&warp_job, &block_job] {
        assert_eq!(
            job.wait_timeout(T),
            Err(Error::Cancelled),
            "after its slot was reused"
        );
    }
}

/// A running body sees `ctx.cancelled()`; `wait_timeout_or_cancel` cancels on its timeout; a
/// finished job's cancel leaves its outcome alone.
pub fn a_running_body_sees_its_job_cancelled(rt: &Runtime) {
    let seen = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let spin = Spin {
        seen: seen.ptr(),
        max_ns: 30_000_000_000,
    };
    let job = rt.submit(&[spin]).unwrap();
    let e = job.wait_timeout_or_cancel(Duration::from_millis(50));
    assert!(matches!(e, Err(Error::Timeout(..))), "{e:?}");
    assert_eq!(job.wait_timeout(T), Err(Error::Cancelled));
    assert_eq!(seen.to_vec().unwrap(), vec![1], "the body saw the cancel");
    let done = rt.submit(&[mark(&seen, 0)]).unwrap();
    done.wait_timeout(T).unwrap();
    done.cancel().unwrap();
    assert_eq!(done.wait_timeout(T), Ok(()));
}
