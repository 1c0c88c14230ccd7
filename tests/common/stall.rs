//! A stalled ring on demand, and bounded waits around code that might hang: the tests of a
//! submit that fails while it waits for ring space (issue 18, D1) use both.
//!
//! A lone [`Hold`] task submitted inline runs on the ingest warp, so until it is released no
//! descriptor after it is taken: arena space, descriptors and job slots run out, and the next
//! submit waits until its timeout. [`fill`] submits until that happens. Work that might hang runs
//! on a thread of its own ([`Bounded`]), so a test fails with a message instead of hanging.
#![allow(dead_code)]

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use grosr::{DevicePtr, Error, Job, Runtime};

use super::{Hold, Mark};

/// A [`Hold`] on `flag` that counts itself in `ran`, holding at most `max`.
pub fn hold(flag: DevicePtr<u32>, ran: DevicePtr<u32>, max: Duration) -> Hold {
    Hold {
        flag,
        ran,
        max_ns: max.as_nanos().min(u64::MAX as u128) as u64,
    }
}

/// `n` Mark tasks on `marks[first..first + n]`.
pub fn marks(marks: DevicePtr<u32>, first: u32, n: u32) -> Vec<Mark> {
    (first..first + n)
        .map(|index| Mark {
            flags: marks,
            index,
            pad: 0,
        })
        .collect()
}

/// How [`fill`] ended: the jobs it got in, and the submit that did not.
#[derive(Debug)]
pub struct Filled {
    /// Jobs submitted before one failed; job `i` marks `first + i * per_job ..` (see [`fill`]).
    pub accepted: u32,
    /// The failing submit's error (`None`: `max_jobs` went in without one failing).
    pub error: Option<Error>,
    /// How long the failing submit took.
    pub took: Duration,
}

/// Submits jobs of `per_job` Mark tasks (job `i` on `marks[first + i * per_job ..]`) with the
/// runtime's submit timeout until one fails, at most `max_jobs`; returns the accepted jobs.
pub fn fill<'rt>(
    rt: &'rt Runtime,
    marks_at: DevicePtr<u32>,
    first: u32,
    per_job: u32,
    max_jobs: u32,
) -> (Vec<Job<'rt>>, Filled) {
    let mut jobs = Vec::new();
    for i in 0..max_jobs {
        let tasks = marks(marks_at, first + i * per_job, per_job);
        let start = Instant::now();
        match rt.submit(&tasks) {
            Ok(job) => jobs.push(job),
            Err(e) => {
                let filled = Filled {
                    accepted: i,
                    error: Some(e),
                    took: start.elapsed(),
                };
                return (jobs, filled);
            }
        }
    }
    let filled = Filled {
        accepted: max_jobs,
        error: None,
        took: Duration::ZERO,
    };
    (jobs, filled)
}

/// Work on a thread of its own whose result is waited for with a deadline: a thread that hangs
/// (a deadlocked submit, say) fails the test with `what` in the message instead of hanging it.
/// The hung thread is left behind; the process ends it.
pub struct Bounded<T> {
    rx: mpsc::Receiver<std::thread::Result<T>>,
    what: String,
}

impl<T: Send + 'static> Bounded<T> {
    /// Starts `f` on a new thread.
    pub fn spawn(what: impl Into<String>, f: impl FnOnce() -> T + Send + 'static) -> Bounded<T> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        });
        Bounded {
            rx,
            what: what.into(),
        }
    }

    /// The result of `f`; re-raises its panic; panics if it has not returned by `deadline`.
    pub fn join_by(self, deadline: Instant) -> T {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(Ok(v)) => v,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => panic!(
                "{} has not returned in time: it hangs (a submit or wait that never ends)",
                self.what
            ),
        }
    }
}

/// Runs `f` on a thread of its own and returns its result, or panics naming `what` if it takes
/// longer than `limit`.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let deadline = Instant::now() + limit;
    Bounded::spawn(format!("{what} (limit {limit:?})"), f).join_by(deadline)
}
