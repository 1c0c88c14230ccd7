//! A loom model of owed job counts (cuda/grosr_warp.cuh and grosr_spawn.cuh, `account`, `pay_from_owed`,
//! `settle_owed`; cuda/README.md, "Job accounting and completion").
//!
//! A job's `pending` counts its tasks; the update that makes it zero completes the job. A worker
//! warp does not decrement `pending` for the tasks it ran: it owes the decrements, pays the
//! children it later queues out of that debt instead of counting them, and settles the rest (one
//! acq_rel subtraction) when its home queue is dry. The stored count is then the true count plus
//! every warp's debt, so the job must complete exactly once, after every task ran, with every
//! task's result visible to the completing warp. A warp's first children go onto its private
//! stack, counted when the round ends: the net rise (more stacked than ran) is a relaxed add, a
//! fall is owed. Here two one-lane warps run a root task with three children (two stacked, one
//! queued), one of which has a child of its own; loom explores the interleavings and flags any
//! data race on the results (a relaxed settle fails this model).

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use loom::sync::{Arc, Mutex};

/// Tasks of the tree: 0 spawns 1, 2 and 4, 1 spawns 3.
const TASKS: usize = 5;
fn children(task: usize) -> &'static [usize] {
    match task {
        0 => &[1, 2, 4],
        1 => &[3],
        _ => &[],
    }
}
/// Entries of a warp's private stack (STACK_CAP on the GPU).
const STACK_CAP: usize = 2;

struct Job {
    pending: AtomicI32,
    queue: Mutex<Vec<usize>>,
    results: [UnsafeCell<u32>; TASKS],
    executed: AtomicU32,
    completions: AtomicU32,
    done: AtomicBool,
}

/// A worker warp: runs its stack's tasks, else queued ones; counts stacked children when the
/// round ends, owes decrements, settles when its stack and the queue are dry.
fn warp(job: &Job) {
    let mut owed = 0i32;
    let mut stack: Vec<usize> = Vec::new();
    loop {
        let task = stack.pop().or_else(|| job.queue.lock().unwrap().pop());
        if let Some(t) = task {
            // SAFETY (loom-checked): each task writes only its own result, once.
            job.results[t].with_mut(|r| unsafe { *r = t as u32 + 1 });
            job.executed.fetch_add(1, Ordering::Relaxed);
            let mut deferred = 0i32;
            for &c in children(t) {
                if stack.len() < STACK_CAP {
                    stack.push(c); // private: counted when the round ends
                    deferred += 1;
                    continue;
                }
                if owed >= 1 {
                    owed -= 1; // paid out of the debt: the stored count already covers it
                } else {
                    // Relaxed, as on the GPU: the push below publishes the child.
                    job.pending.fetch_add(1, Ordering::Relaxed);
                }
                job.queue.lock().unwrap().push(c);
            }
            // The round's end: the task that ran is owed; a net rise is counted at once, relaxed
            // as on the GPU (a rise cannot complete the job; this warp runs what it counts).
            owed -= deferred - 1;
            if owed < 0 {
                job.pending.fetch_add(-owed, Ordering::Relaxed);
                owed = 0;
            }
            continue;
        }
        if owed > 0 {
            // acq_rel, as on the GPU: release publishes this warp's results; the update that
            // reaches zero acquires every other warp's.
            if job.pending.fetch_sub(owed, Ordering::AcqRel) == owed {
                // The results first: the queue's lock below would order them by itself.
                for (t, r) in job.results.iter().enumerate() {
                    // SAFETY (loom-checked): every writer happens-before the completing update.
                    assert_eq!(r.with(|r| unsafe { *r }), t as u32 + 1);
                }
                assert_eq!(job.executed.load(Ordering::Relaxed), TASKS as u32);
                assert!(
                    job.queue.lock().unwrap().is_empty(),
                    "completed with queued work"
                );
                job.completions.fetch_add(1, Ordering::Relaxed);
                job.done.store(true, Ordering::Release);
            }
            owed = 0;
        }
        if job.done.load(Ordering::Acquire) {
            return;
        }
        loom::thread::yield_now();
    }
}

#[test]
fn loom_owed_counts_complete_once_after_every_task() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let job = Arc::new(Job {
            pending: AtomicI32::new(1), // the root, counted at submission
            queue: Mutex::new(vec![0]),
            results: std::array::from_fn(|_| UnsafeCell::new(0)),
            executed: AtomicU32::new(0),
            completions: AtomicU32::new(0),
            done: AtomicBool::new(false),
        });
        let other = {
            let job = job.clone();
            loom::thread::spawn(move || warp(&job))
        };
        warp(&job);
        other.join().unwrap();
        assert_eq!(job.completions.load(Ordering::Relaxed), 1);
        assert_eq!(job.pending.load(Ordering::Relaxed), 0);
    });
}
