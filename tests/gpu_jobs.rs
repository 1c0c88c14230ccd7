//! Jobs on a real GPU where the host protocol used to go wrong (issue 18): a late look at a job
//! whose completion slot was reused (D5), a split job that fails between chunks (D6), stop and
//! start racing multi-chunk submits (D7), a buffer dropped while a job that writes it runs (F2),
//! and a second runtime on the same GPU (refused: one per GPU per process); and cancellation on
//! a runtime built cancellable (a spawn tree, a running body, warp and block tasks, a Resident
//! graph launch, the refusal without it); and the submission rings (a short job beside a task
//! that holds one ring's ingest warp, a high-priority job while every normal ring is held,
//! threads submitting over every ring at once). Every wait is
//! bounded; steps that could hang run on threads with deadlines (tests/common/stall.rs).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Mark;
use common::stall::{Bounded, hold, marks};
use common::suite::{JOB_SLOTS as SLOTS, T};
use grosr::{DeviceBuffer, Error, Gpu, Priority};

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_job_looked_at_after_its_slot_was_reused_reports_its_own_outcome() {
    common::suite::a_job_looked_at_after_its_slot_was_reused_reports_its_own_outcome(
        // One submission ring: its slots are reused in submit order.
        &common::builder().submit_rings(1).build().unwrap(),
    );
}

/// A runtime built cancellable (the checks compiled in).
fn cancellable() -> grosr::Runtime {
    let rt = common::builder().cancellable(true).build().unwrap();
    assert!(rt.info().cancellable);
    rt
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn cancelling_a_spawn_tree_leaves_other_jobs_exact() {
    // Queues of 2^17 slots an SM (8 MiB each): the tree's spawns spread over the queues breadth
    // first, and its last level alone is 10 million tasks. At the default 8192 a 111-million-task
    // tree (depth 8) failed with QueueOverflow before the cancel landed (H200).
    let rt = common::builder()
        .cancellable(true)
        .queue_capacity(1 << 17)
        .build()
        .unwrap();
    common::suite::cancelling_a_spawn_tree_leaves_other_jobs_exact(&rt);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_running_body_sees_its_job_cancelled() {
    common::suite::a_running_body_sees_its_job_cancelled(&cancellable());
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn cancelled_warp_and_block_tasks_stop_and_the_slot_serves_the_next_jobs() {
    // One submission ring: JOB_SLOTS later jobs reuse every slot of it.
    let rt = common::builder()
        .cancellable(true)
        .submit_rings(1)
        .build()
        .unwrap();
    common::suite::cancelled_warp_and_block_tasks_stop_and_the_slot_serves_the_next_jobs(&rt);
}

/// A Resident graph launch past its time is cancelled: its running node sees `ctx.cancelled()`
/// and stops, its successor is skipped, the next run is refused until the launch has ended, and
/// then the graph launches again.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_resident_launch_past_its_time_is_cancelled_and_the_graph_launches_again() {
    use grosr::graph::{Strategy, TaskGraph};
    let rt = cancellable();
    let seen = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let mut g = TaskGraph::new();
    let spin = g.add(common::Spin {
        seen: seen.ptr(),
        max_ns: 30_000_000_000,
    });
    let after = g.add(common::mark(&flags, 0));
    g.add_edge(spin, after).unwrap();
    let mut p = g.prepare(&rt, Strategy::Resident).unwrap();
    let saw_the_cancel = |seen: &DeviceBuffer<u32>| {
        let deadline = Instant::now() + T;
        while seen.to_vec().unwrap()[0] == 0 {
            assert!(Instant::now() < deadline, "the spinning node never stopped");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(seen.to_vec().unwrap(), vec![1], "the node saw the cancel");
    };
    let e = p.run_or_cancel(Duration::from_millis(50));
    assert!(matches!(e, Err(Error::Timeout(..))), "{e:?}");
    saw_the_cancel(&seen);
    // Again, once the cancelled launch has ended (until then the run is refused).
    seen.write(&[0]).unwrap();
    let deadline = Instant::now() + T;
    loop {
        match p.run_or_cancel(Duration::from_millis(50)) {
            Err(Error::Busy(m)) if m.contains("not finished") => {
                assert!(Instant::now() < deadline, "the launch never ended");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(Error::Timeout(..)) => break,
            other => panic!("{other:?}"),
        }
    }
    saw_the_cancel(&seen);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(flags.to_vec().unwrap(), vec![0], "the successor never ran");
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_runtime_not_built_cancellable_refuses_to_cancel_and_runs_on() {
    let rt = common::builder().build().unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let job = rt.submit(&marks(flags.ptr(), 0, 1)).unwrap();
    assert!(matches!(job.cancel(), Err(Error::Config(_))));
    // Refused before it waits, not after the timeout.
    let asked = std::time::Instant::now();
    assert!(matches!(
        job.wait_timeout_or_cancel(T),
        Err(Error::Config(_))
    ));
    assert!(asked.elapsed() < T / 2);
    job.wait_timeout(T).unwrap();
    assert_eq!(flags.to_vec().unwrap(), vec![1]);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_split_job_that_fails_between_chunks_runs_what_it_published_and_frees_its_slot() {
    // A 4 KiB arena: chunks of 1 KiB, 64 Mark records each; four fit.
    let gpu = Gpu::open(0).unwrap();
    let gate = DeviceBuffer::<u32>::zeroed(&gpu, 1).unwrap();
    let ran = DeviceBuffer::<u32>::zeroed(&gpu, 1).unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(&gpu, 1024 + SLOTS as usize).unwrap();
    // One submission ring, whose ingest warp the Hold holds.
    let rt = common::builder()
        .submit_rings(1)
        .arena_bytes(4096)
        .submit_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // The ingest warp holds: nothing after this is read until the gate opens.
    let held = rt
        .submit(&[hold(gate.ptr(), ran.ptr(), Duration::from_secs(30))])
        .unwrap();
    // 16 chunks: four are published, the fifth waits for arena space and times out.
    let split = marks(flags.ptr(), 0, 1024);
    let e = rt.submit(&split).unwrap_err();
    assert!(matches!(e, Error::Timeout(..)), "{e}");
    gate.write(&[1]).unwrap();
    held.wait_timeout(T).unwrap();
    // The failed job's slot comes round again after SLOTS - 2 more jobs (the hold and the split
    // took two ids): the job that lands there must not wait forever.
    let deadline = Instant::now() + T;
    let jobs: Vec<_> = (0..SLOTS)
        .map(|i| {
            let mut w = rt.submit(&marks(flags.ptr(), 1024 + i, 1));
            while let Err(Error::Timeout(..)) = w {
                assert!(Instant::now() < deadline, "job {i} never got its slot");
                w = rt.submit(&marks(flags.ptr(), 1024 + i, 1));
            }
            w.unwrap()
        })
        .collect();
    for j in &jobs {
        j.wait_timeout(T).unwrap();
    }
    let f = flags.to_vec().unwrap();
    // The four published chunks ran once each; the rest never did.
    assert_eq!(f[..256], vec![1; 256][..]);
    assert_eq!(f[256..1024], vec![0; 768][..]);
    assert_eq!(f[1024..], vec![1; SLOTS as usize][..]);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn stop_and_start_racing_split_submits_never_run_a_record_twice_or_corrupt_one() {
    // Twice the rings: threads share rings (and their arena slices) across the restarts.
    const THREADS: u32 = 8;
    // 64 KiB of records: 16 chunks of a quarter of a ring's 16 KiB (4 rings share 64 KiB).
    const PER_JOB: u32 = 4096;
    const JOBS: u32 = 64; // completed jobs each submitter wants
    const ATTEMPTS: u32 = 512; // submits each may make (a job cut off takes a fresh range)
    let gpu = Gpu::open(0).unwrap();
    let flags = Arc::new(
        DeviceBuffer::<u32>::zeroed(&gpu, (THREADS * ATTEMPTS * PER_JOB) as usize).unwrap(),
    );
    let rt = Arc::new(
        common::builder()
            .submit_rings(4)
            .arena_bytes(64 << 10)
            .build()
            .unwrap(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let submitters: Vec<_> = (0..THREADS)
        .map(|t| {
            let (rt, flags) = (rt.clone(), flags.clone());
            Bounded::spawn(format!("submitter {t}"), move || {
                let mut ok = Vec::new();
                for a in 0..ATTEMPTS {
                    if ok.len() == JOBS as usize {
                        break;
                    }
                    let first = (t * ATTEMPTS + a) * PER_JOB;
                    let outcome = rt
                        .submit(&marks(flags.ptr(), first, PER_JOB))
                        .and_then(|job| job.wait_timeout(T));
                    match outcome {
                        Ok(()) => ok.push(first),
                        // Cut off by a stop, or refused while stopped: a fresh range next.
                        Err(Error::Stopped) => std::thread::sleep(Duration::from_micros(200)),
                        Err(e) => panic!("attempt {a} of thread {t}: {e}"),
                    }
                }
                ok
            })
        })
        .collect();
    let restarter = {
        let (rt, done) = (rt.clone(), done.clone());
        Bounded::spawn("stop/start", move || {
            let mut restarts = 0;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(3));
                rt.stop().unwrap();
                rt.start().unwrap();
                restarts += 1;
            }
            restarts
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let ok: Vec<Vec<u32>> = submitters
        .into_iter()
        .map(|s| s.join_by(deadline))
        .collect();
    done.store(true, Ordering::Relaxed);
    let restarts = restarter.join_by(deadline);
    assert!(restarts > 0);
    let f = flags.to_vec().unwrap();
    // No record ran twice (a shared arena range would run one job's records for two).
    let twice: Vec<usize> = (0..f.len()).filter(|&i| f[i] > 1).collect();
    assert!(
        twice.is_empty(),
        "records run twice: {:?}",
        &twice[..twice.len().min(8)]
    );
    // Every job that succeeded ran all its records.
    for first in ok.iter().flatten() {
        let range = *first as usize..(*first + PER_JOB) as usize;
        assert!(
            f[range].iter().all(|&v| v == 1),
            "job at {first} incomplete"
        );
    }
    println!(
        "{restarts} restarts; {} jobs completed of {} wanted",
        ok.iter().map(Vec::len).sum::<usize>(),
        THREADS * JOBS
    );
    // The runtime still runs work.
    let after = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    rt.submit(&marks(after.ptr(), 0, 1))
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    assert_eq!(after.to_vec().unwrap(), vec![1]);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_short_job_runs_while_a_task_holds_an_ingest_warp() {
    let gpu = Gpu::open(0).unwrap();
    let gate = DeviceBuffer::<u32>::zeroed(&gpu, 1).unwrap();
    let ran = DeviceBuffer::<u32>::zeroed(&gpu, 1).unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(&gpu, 64).unwrap();
    let rt = common::builder().submit_rings(4).build().unwrap();
    // (With two, a ring that still reads busy just after its last job would leave only home.)
    let rings = rt.info().submit_rings;
    assert_eq!(rings, 4, "a GPU of at least 4 scheduler blocks");
    let rings = rt.info().submit_rings;
    assert!(
        rings >= 2,
        "the default runtime has {rings} submission ring(s)"
    );
    // A lone lane task runs on its ring's ingest warp, which takes nothing else until it ends.
    let held = rt
        .submit(&[hold(gate.ptr(), ran.ptr(), Duration::from_secs(30))])
        .unwrap();
    // Later jobs from this thread and another find that ring busy and take another.
    for i in 0..16 {
        rt.submit(&marks(flags.ptr(), i, 1))
            .unwrap()
            .wait_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("short job {i} behind the hold: {e}"));
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            let job = rt.submit(&marks(flags.ptr(), 16, 48)).unwrap();
            job.wait_timeout(Duration::from_secs(10))
                .expect("a job from another thread behind the hold");
        });
    });
    assert_eq!(ran.to_vec().unwrap(), vec![0], "the hold ended early");
    assert_eq!(flags.to_vec().unwrap(), vec![1; 64]);
    gate.write(&[1]).unwrap();
    held.wait_timeout(T).unwrap();
    assert_eq!(ran.to_vec().unwrap(), vec![1]);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_high_priority_job_runs_while_every_normal_ring_is_held() {
    let gpu = Gpu::open(0).unwrap();
    let gate = DeviceBuffer::<u32>::zeroed(&gpu, 1).unwrap();
    let ran = DeviceBuffer::<u32>::zeroed(&gpu, 1).unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(&gpu, 2).unwrap();
    let rt = common::builder().submit_rings(4).build().unwrap();
    assert_eq!(rt.info().submit_rings, 4);
    // Three Holds: each finds the rings before it busy and takes the next normal one, whose
    // ingest warp it then holds (the fourth ring is kept for high jobs).
    let holds: Vec<_> = (0..3)
        .map(|_| {
            rt.submit(&[hold(gate.ptr(), ran.ptr(), Duration::from_secs(30))])
                .unwrap()
        })
        .collect();
    // A normal job now waits behind a Hold; a high one runs at once on the high ring.
    let normal = rt.submit(&marks(flags.ptr(), 0, 1)).unwrap();
    rt.submit_priority(&marks(flags.ptr(), 1, 1), Priority::High)
        .unwrap()
        .wait_timeout(Duration::from_secs(10))
        .expect("the high job behind three held normal rings");
    assert!(
        !normal.is_done().unwrap(),
        "a normal job ran while every normal ring's ingest warp was held"
    );
    assert_eq!(flags.to_vec().unwrap(), vec![0, 1]);
    gate.write(&[1]).unwrap();
    for h in &holds {
        h.wait_timeout(T).unwrap();
    }
    normal.wait_timeout(T).unwrap();
    assert_eq!(flags.to_vec().unwrap(), vec![1, 1]);
    assert_eq!(ran.to_vec().unwrap(), vec![3]);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn threads_submitting_at_once_over_every_ring_each_get_exactly_their_results() {
    const THREADS: u32 = 8;
    const JOBS: u32 = 400;
    // Every third job carries 40 records (through its ring's arena slice), the others 1
    // (inline): each ring's descriptors, slots and arena are in use at once.
    let size = |j: u32| if j % 3 == 0 { 40 } else { 1 };
    let per_thread: u32 = (0..JOBS).map(size).sum();
    let gpu = Gpu::open(0).unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(&gpu, (THREADS * per_thread) as usize).unwrap();
    let rt = common::builder().build().unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (rt, flags) = (&rt, &flags);
            s.spawn(move || {
                let mut first = t * per_thread;
                for j in 0..JOBS {
                    rt.submit(&marks(flags.ptr(), first, size(j)))
                        .unwrap()
                        .wait_timeout(T)
                        .unwrap_or_else(|e| panic!("thread {t} job {j}: {e}"));
                    first += size(j);
                }
            });
        }
    });
    let f = flags.to_vec().unwrap();
    let wrong: Vec<usize> = (0..f.len()).filter(|&i| f[i] != 1).collect();
    assert!(
        wrong.is_empty(),
        "{} records ran other than once, first {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(8)]
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_buffer_dropped_while_a_job_writes_it_is_freed_only_after_the_job() {
    let gpu = Gpu::open(0).unwrap();
    let gate = DeviceBuffer::<u32>::zeroed(&gpu, 1).unwrap();
    let rt = common::builder().build().unwrap();
    // The job writes `ran` once the gate opens; `ran` is dropped before that.
    let job = {
        let ran = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
        rt.submit(&[hold(gate.ptr(), ran.ptr(), Duration::from_secs(30))])
            .unwrap()
    };
    // Were `ran` freed now, the allocator would hand its bytes to one of these.
    let sentinel = 0xA5A5_A5A5u32;
    let others: Vec<_> = (0..256)
        .map(|_| DeviceBuffer::from_slice(rt.gpu(), &[sentinel]).unwrap())
        .collect();
    gate.write(&[1]).unwrap();
    job.wait_timeout(T).unwrap();
    for (i, b) in others.iter().enumerate() {
        assert_eq!(
            b.to_vec().unwrap(),
            vec![sentinel],
            "buffer {i} was written"
        );
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_second_runtime_on_the_same_gpu_is_refused_until_the_first_is_dropped() {
    let sms = Gpu::open(0).unwrap().sm_count;
    let first = common::builder().max_sms(sms / 2).build().unwrap();
    // Even with SMs to spare: beside a running first one, a second hung on an H200.
    let second = Bounded::spawn("building a second runtime", move || {
        common::builder().max_sms(sms / 2).build().map(drop)
    });
    let refused = second.join_by(Instant::now() + Duration::from_secs(30));
    assert!(
        matches!(&refused, Err(Error::DoesNotFit(m)) if m.contains("one runtime per GPU")),
        "{refused:?}"
    );
    let flags = DeviceBuffer::<u32>::zeroed(first.gpu(), 8).unwrap();
    first
        .submit(&[Mark {
            flags: flags.ptr(),
            index: 3,
            pad: 0,
        }])
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    assert_eq!(flags.to_vec().unwrap()[3], 1);
    drop(first);
    let again = common::builder().max_sms(sms / 2).build().unwrap();
    assert!(again.is_running());
}
