//! A loom model of the resident graph's release protocol (cuda/grosr_graph_release.cuh;
//! cuda/README.md, "Resident task graphs").
//!
//! Predecessors finishing on different warps each decrement their successor's `remaining`
//! counter: a warp or block task with one acq_rel decrement (`last_predecessor`), a lane task
//! with a release fence before its relaxed decrements and an acquire fence after one that
//! reached zero (`release_lane_successors`). The one whose decrement reaches zero stores the
//! in-degree back (plain) and runs the successor, which must see every predecessor's result;
//! the next launch, which starts only after the job completed (modelled by joining the threads),
//! finds the counter ready. Loom explores every interleaving and flags any data race on the
//! results, so a relaxed decrement without the fences fails this model.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering, fence};

/// Two predecessors (results 0 and 1) and one successor with in-degree 2.
struct Diamond {
    results: [UnsafeCell<u32>; 2],
    remaining: AtomicU32,
    successor_runs: AtomicU32,
}

const INDEG: u32 = 2;

/// How a finished predecessor takes itself off its successor's counter.
#[derive(Clone, Copy)]
enum Release {
    /// A warp or block task: one acq_rel decrement.
    AcqRel,
    /// A lane task: release fence, relaxed decrement, acquire fence if it reached zero.
    Fenced,
}

/// Predecessor `pred` of launch `launch` finishes; returns whether it released the successor.
fn finish(d: &Diamond, pred: usize, launch: u32, how: Release) -> bool {
    // SAFETY (loom-checked): nobody else touches this predecessor's result during the launch,
    // and the previous launch's reader happens-before this write (the launches are joined).
    d.results[pred].with_mut(|r| unsafe { *r = launch * 10 + pred as u32 });
    // As on the GPU: the release publishes the result above; the last decrement acquires every
    // other predecessor's.
    let last = match how {
        Release::AcqRel => d.remaining.fetch_sub(1, Ordering::AcqRel) == 1,
        Release::Fenced => {
            fence(Ordering::Release);
            let last = d.remaining.fetch_sub(1, Ordering::Relaxed) == 1;
            if last {
                fence(Ordering::Acquire);
            }
            last
        }
    };
    if !last {
        return false;
    }
    // Plain (relaxed) reset, as on the GPU: the next launch comes after this job completed.
    d.remaining.store(INDEG, Ordering::Relaxed);
    // The successor runs here and reads both results.
    // SAFETY (loom-checked): both writers happen-before this read through the counter.
    let seen = [0, 1].map(|p| d.results[p].with(|r| unsafe { *r }));
    assert_eq!(seen, [launch * 10, launch * 10 + 1]);
    d.successor_runs.fetch_add(1, Ordering::Relaxed);
    true
}

/// Two launches of the diamond, predecessor i releasing as `how[i]`.
fn two_launches(how: [Release; 2]) {
    loom::model(move || {
        let d = Arc::new(Diamond {
            results: [UnsafeCell::new(0), UnsafeCell::new(0)],
            remaining: AtomicU32::new(INDEG),
            successor_runs: AtomicU32::new(0),
        });
        for launch in 1..=2 {
            let threads: Vec<_> = (0..2)
                .map(|pred| {
                    let d = d.clone();
                    loom::thread::spawn(move || finish(&d, pred, launch, how[pred]))
                })
                .collect();
            let released = threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|&r| r)
                .count();
            assert_eq!(
                released, 1,
                "exactly one predecessor releases the successor"
            );
        }
        assert_eq!(d.successor_runs.load(Ordering::Relaxed), 2);
        assert_eq!(d.remaining.load(Ordering::Relaxed), INDEG);
    });
}

#[test]
fn loom_graph_release_and_reset() {
    two_launches([Release::AcqRel, Release::AcqRel]);
}

#[test]
fn loom_graph_release_by_lane_tasks_fenced() {
    two_launches([Release::Fenced, Release::Fenced]);
}

#[test]
fn loom_graph_release_by_a_lane_and_a_warp_task() {
    two_launches([Release::Fenced, Release::AcqRel]);
}
