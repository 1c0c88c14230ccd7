//! Submits that fail while they wait for ring space, on a real GPU (issue 18, D1): a submit that
//! times out on a full ring, or that `stop` cuts off, returns its error, and every other
//! thread's submit, wait, `stop` and `start` still returns promptly: with a result once the ring
//! drains, with a clear error meanwhile. A [`Hold`](common::Hold) on the ingest warp fills the
//! ring (tests/common/stall.rs). Every step that could hang runs on a thread of its own with a
//! deadline, so a deadlock fails the test instead of hanging it. A device fault while threads
//! wait needs a process of its own: tests/gpu_fault.rs. The buffers exist before the runtime
//! starts, so compute-sanitizer's memcheck can run these tests.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use common::stall::{self, Bounded, Filled, fill, hold, within};
use grosr::{DeviceBuffer, Error, Gpu, Runtime};

/// The builder's submit timeout here: how long a submit waits for ring space.
const SHORT: Duration = Duration::from_millis(300);
/// The longest a submit with timeout SHORT, or one cut off by a stop, may take. Above SHORT
/// because a thread that waits for arena space holds the producer's lock meanwhile, so the other
/// threads' submits queue behind it (8 threads × 2 submits × SHORT is under 5 s).
const PROMPT: Duration = Duration::from_secs(15);
/// Waits that should succeed: 60 s, times `GROSR_TEST_WAIT_SCALE` (benches/gpu_checks.sh sets
/// 10: under racecheck the 4095 queued jobs below take minutes, not milliseconds).
static T: LazyLock<Duration> = LazyLock::new(|| {
    let scale = std::env::var("GROSR_TEST_WAIT_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, 100);
    Duration::from_secs(60) * scale
});
/// Host threads that submit besides the one that filled the ring.
const THREADS: u32 = 8;

// Regions of the marks buffer: the filling jobs', the submits made while the ring is full
// (they never run), and the submits made after the release.
const FILL_AT: u32 = 0;
const BLOCKED_AT: u32 = 8192;
const AFTER_AT: u32 = 16384;
const MARKS: usize = 32768;

/// How the ring is filled.
#[derive(Clone, Copy, Debug)]
struct Shape {
    /// Mark tasks per job: 1 travels inline (descriptors and job slots run out), 16 (256 bytes)
    /// through the arena.
    per_job: u32,
    /// The most jobs [`fill`] submits; the ring is full well before.
    max_jobs: u32,
    /// The arena's size (`None`: the default, 64 MiB).
    arena: Option<usize>,
}

/// Inline jobs: 4096 job slots and descriptors (the defaults) run out.
const INLINE: Shape = Shape {
    per_job: 1,
    max_jobs: 8192,
    arena: None,
};
/// Jobs through a 4 KiB arena: its space runs out after 16 jobs.
const ARENA: Shape = Shape {
    per_job: 16,
    max_jobs: 256,
    arena: Some(4096),
};

struct Setup {
    rt: Arc<Runtime>,
    flag: DeviceBuffer<u32>,
    ran: DeviceBuffer<u32>,
    marks: DeviceBuffer<u32>,
}

fn setup(shape: Shape) -> Setup {
    let gpu = Gpu::open(0).unwrap();
    let flag = DeviceBuffer::zeroed(&gpu, 1).unwrap();
    let ran = DeviceBuffer::zeroed(&gpu, 1).unwrap();
    let marks = DeviceBuffer::zeroed(&gpu, MARKS).unwrap();
    // One submission ring: the Hold on its ingest warp stops every submit behind it.
    let mut b = common::builder().submit_rings(1).submit_timeout(SHORT);
    if let Some(bytes) = shape.arena {
        b = b.arena_bytes(bytes);
    }
    let rt = Arc::new(b.build().expect("runtime"));
    Setup {
        rt,
        flag,
        ran,
        marks,
    }
}

/// What the filling thread's jobs (the Hold first) returned when waited for.
type Waited = Vec<Result<(), Error>>;
/// A thread's submits: each one's result, and how long the submit took.
type Submitted = Vec<(Result<(), Error>, Duration)>;

/// Starts the filling thread: it submits a Hold (released by `flag`, or after `max`), fills the
/// ring behind it, reports how ([`Filled`]), then waits for `go` and waits for its jobs.
fn start_filler(
    s: &Setup,
    shape: Shape,
    max: Duration,
    go: mpsc::Receiver<()>,
) -> (mpsc::Receiver<Filled>, Bounded<Waited>) {
    let (tx, report) = mpsc::channel();
    let rt = s.rt.clone();
    let (flag, ran, marks) = (s.flag.ptr(), s.ran.ptr(), s.marks.ptr());
    let filler = Bounded::spawn("the thread that fills the ring", move || {
        let held = rt.submit(&[hold(flag, ran, max)]).expect("submit the Hold");
        let (jobs, filled) = fill(&rt, marks, FILL_AT, shape.per_job, shape.max_jobs);
        let _ = tx.send(filled);
        // No go (the test failed and dropped the sender): leave the jobs unwaited.
        if go.recv_timeout(2 * *T).is_err() {
            return Vec::new();
        }
        std::iter::once(&held)
            .chain(&jobs)
            .map(|j| j.wait_timeout(*T))
            .collect()
    });
    (report, filler)
}

/// The filler's report; a filler that does not report in time fails the test.
fn report_of(report: &mpsc::Receiver<Filled>) -> Filled {
    let filled = report.recv_timeout(*T).unwrap_or_else(|_| {
        panic!("the filling thread never reported: the submit that found the ring full hangs")
    });
    assert!(
        matches!(filled.error, Some(Error::Timeout(..))),
        "the ring should be full (a Hold on the ingest warp) and a submit time out: {filled:?}"
    );
    assert!(
        filled.took < PROMPT,
        "the submit that timed out took {:?}",
        filled.took
    );
    eprintln!(
        "ring full after {} jobs: {}",
        filled.accepted,
        filled
            .error
            .as_ref()
            .map_or(String::new(), |e| e.to_string())
    );
    filled
}

/// Each of `THREADS` threads submits `per_thread` jobs of `per_job` marks in the region at
/// `first` with `timeout`, and with `wait` waits for each (at most T); each result comes back
/// with how long its submit took.
fn submitters(
    s: &Setup,
    what: &str,
    first: u32,
    per_thread: u32,
    per_job: u32,
    timeout: Duration,
    wait: bool,
) -> Vec<Bounded<Submitted>> {
    (0..THREADS)
        .map(|t| {
            let (rt, m) = (s.rt.clone(), s.marks.ptr());
            Bounded::spawn(format!("{what} thread {t}"), move || {
                (0..per_thread)
                    .map(|k| {
                        let at = first + (t * per_thread + k) * per_job;
                        let start = Instant::now();
                        let job = rt.submit_timeout(&stall::marks(m, at, per_job), timeout);
                        let took = start.elapsed();
                        let r = job.and_then(|j| if wait { j.wait_timeout(*T) } else { Ok(()) });
                        (r, took)
                    })
                    .collect()
            })
        })
        .collect()
}

/// Marks that differ from `want(index)`, as (index, count), the first few.
fn wrong_marks(marks: &DeviceBuffer<u32>, want: impl Fn(u32) -> u32) -> Vec<(u32, u32)> {
    let got = marks.to_vec().unwrap();
    (0..got.len() as u32)
        .filter(|&i| got[i as usize] != want(i))
        .map(|i| (i, got[i as usize]))
        .take(10)
        .collect()
}

/// While a Hold keeps the ring full: the submit that finds it full times out, and so does every
/// other thread's; once the Hold is released, every thread submits and every job runs, once.
fn a_timed_out_submit_leaves_the_runtime_usable(shape: Shape) {
    let s = setup(shape);
    let (go, go_rx) = mpsc::channel();
    let (report, filler) = start_filler(&s, shape, Duration::from_secs(120), go_rx);
    let filled = report_of(&report);

    // The ring is still full: other threads' submits time out too, each promptly.
    let blocked = submitters(
        &s,
        "a submitter on the full ring",
        BLOCKED_AT,
        2,
        shape.per_job,
        SHORT,
        false,
    );
    let deadline = Instant::now() + 2 * PROMPT;
    for (t, b) in blocked.into_iter().enumerate() {
        for (k, (r, took)) in b.join_by(deadline).into_iter().enumerate() {
            assert!(
                matches!(r, Err(Error::Timeout(..))),
                "thread {t}'s submit {k} on the full ring: {r:?}"
            );
            assert!(took < PROMPT, "thread {t}'s submit {k} took {took:?}");
        }
    }

    // Released: every thread's submits go in and run.
    s.flag.write(&[1]).unwrap();
    let _ = go.send(());
    let per_thread = 4;
    let after = submitters(
        &s,
        "a submitter after the release",
        AFTER_AT,
        per_thread,
        shape.per_job,
        *T,
        true,
    );
    let deadline = Instant::now() + 2 * *T;
    for (t, b) in after.into_iter().enumerate() {
        for (k, (r, _)) in b.join_by(deadline).into_iter().enumerate() {
            assert_eq!(r, Ok(()), "thread {t}'s submit {k} after the release");
        }
    }
    for (i, r) in filler.join_by(deadline).into_iter().enumerate() {
        assert_eq!(r, Ok(()), "the filler's job {i} (0: the Hold)");
    }
    let filled_marks = filled.accepted * shape.per_job;
    let after_marks = THREADS * per_thread * shape.per_job;
    let wrong = wrong_marks(&s.marks, |i| {
        let ran = (FILL_AT..FILL_AT + filled_marks).contains(&i)
            || (AFTER_AT..AFTER_AT + after_marks).contains(&i);
        ran as u32
    });
    assert!(
        wrong.is_empty(),
        "marks (index, count) not run exactly once, or run though their submit failed: {wrong:?}"
    );
    assert_eq!(s.ran.to_vec().unwrap(), vec![1], "the Hold ran once");
    assert_eq!(s.rt.executed::<common::Hold>().unwrap(), 1);
    let rt = s.rt.clone();
    within(*T, "stop after the test", move || rt.stop()).unwrap();
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_submit_that_times_out_on_full_job_slots_leaves_other_threads_able_to_submit() {
    a_timed_out_submit_leaves_the_runtime_usable(INLINE);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_submit_that_times_out_on_a_full_arena_leaves_other_threads_able_to_submit() {
    a_timed_out_submit_leaves_the_runtime_usable(ARENA);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn stop_ends_submits_waiting_on_a_full_ring_and_start_runs_again() {
    let s = setup(ARENA);
    let (go, go_rx) = mpsc::channel();
    // The Hold ends by itself after 8 s, so the kernel can exit within stop's 10 s even if the
    // release below only lands once it has.
    let (report, filler) = start_filler(&s, ARENA, Duration::from_secs(8), go_rx);
    let filled = report_of(&report);

    // Threads that would wait a minute for arena space...
    let waiting = submitters(
        &s,
        "a submitter cut off by stop",
        BLOCKED_AT,
        1,
        ARENA.per_job,
        *T,
        false,
    );
    std::thread::sleep(Duration::from_millis(500));
    // ...end promptly with Stopped once stop begins, though the kernel has not exited yet.
    let rt = s.rt.clone();
    let stopper = Bounded::spawn("stop with a full ring", move || rt.stop());
    let deadline = Instant::now() + PROMPT;
    for (t, b) in waiting.into_iter().enumerate() {
        let (r, took) = &b.join_by(deadline)[0];
        assert_eq!(
            *r,
            Err(Error::Stopped),
            "thread {t}'s submit after {took:?}"
        );
    }
    s.flag.write(&[1]).unwrap();
    assert_eq!(
        stopper.join_by(Instant::now() + 2 * PROMPT),
        Ok(()),
        "stop once the Hold has ended"
    );
    assert!(!s.rt.is_running());
    // The filler's jobs were abandoned (or ran before the kernel exited): either way their waits end.
    let _ = go.send(());
    for (i, r) in filler
        .join_by(Instant::now() + PROMPT)
        .into_iter()
        .enumerate()
    {
        assert!(
            matches!(r, Ok(()) | Err(Error::Stopped)),
            "the filler's job {i} (0: the Hold): {r:?}"
        );
    }

    // start takes the producer's lock: it returns, and the runtime runs jobs again.
    let rt = s.rt.clone();
    within(*T, "start after the stop", move || rt.start()).unwrap();
    let done = submitters(
        &s,
        "a submitter after the restart",
        AFTER_AT,
        1,
        ARENA.per_job,
        *T,
        true,
    );
    let deadline = Instant::now() + 2 * *T;
    for (t, b) in done.into_iter().enumerate() {
        assert_eq!(
            b.join_by(deadline)[0].0,
            Ok(()),
            "thread {t}'s submit after start"
        );
    }
    let after_marks = THREADS * ARENA.per_job;
    let filled_marks = filled.accepted * ARENA.per_job;
    let got = s.marks.to_vec().unwrap();
    let wrong: Vec<(usize, u32)> = got
        .iter()
        .enumerate()
        .filter(|&(i, &c)| {
            let i = i as u32;
            if (FILL_AT..FILL_AT + filled_marks).contains(&i) {
                c > 1 // abandoned by the stop, or run before it: never twice
            } else {
                c != (AFTER_AT..AFTER_AT + after_marks).contains(&i) as u32
            }
        })
        .map(|(i, &c)| (i, c))
        .take(10)
        .collect();
    assert!(wrong.is_empty(), "marks (index, count) wrong: {wrong:?}");
    assert_eq!(s.ran.to_vec().unwrap(), vec![1], "the Hold ran once");
}
