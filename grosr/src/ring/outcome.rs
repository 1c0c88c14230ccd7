//! A job's outcome, also after its completion slot has been reused.
//!
//! A slot holds the outcome of its latest job only. Before a job takes a slot (once the slot's
//! previous job is done), its submitter copies the previous job's failure, if any, into
//! [`FailedJobs`]; a job abandoned by a restart is recorded there by the restart. So a handle
//! that looks after its slot moved on finds its own failure there, or none (it succeeded), and
//! never the outcome of a later job. The history is bounded: past [`REMEMBERED`] failures the
//! oldest are forgotten, and a handle that old gets [`Outcome::Forgotten`].

use std::collections::{HashMap, VecDeque};

use super::{JobTicket, Ordering, Ring};

/// Failures kept for handles that look after their slot moved on.
pub(crate) const REMEMBERED: usize = 4096;

/// What became of a finished job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `(error, error_kind)`: error 0 for success.
    Finished(i32, u32),
    /// The job finished, but its slot has been reused since and its failure, if it had one, is
    /// older than the history keeps.
    Forgotten,
}

/// The failures of jobs whose slots have moved on, by job id (bounded).
#[derive(Debug, Default)]
pub(crate) struct FailedJobs {
    errors: HashMap<u64, (i32, u32)>,
    order: VecDeque<u64>,
    /// Every failure of a job with an id at or above this is remembered.
    complete_from: u64,
}

impl FailedJobs {
    /// Records that job `id` failed with `(error, kind)`.
    pub fn record(&mut self, id: u64, error: i32, kind: u32) {
        if id < self.complete_from || self.errors.insert(id, (error, kind)).is_some() {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.errors.remove(&old);
            self.complete_from = self.complete_from.max(old + 1);
        }
    }

    /// The outcome of finished job `id` whose slot has been reused since.
    pub fn lookup(&self, id: u64) -> Outcome {
        match self.errors.get(&id) {
            Some(&(error, kind)) => Outcome::Finished(error, kind),
            None if id >= self.complete_from => Outcome::Finished(0, 0),
            None => Outcome::Forgotten,
        }
    }
}

/// Where `job` stands in its slot: `Some(done)` once finished (`done` says whether its outcome
/// is still in the slot), `None` while it runs.
pub(crate) fn finished(ring: &Ring, job: JobTicket) -> Option<bool> {
    // Acquire: pairs with the GPU's st.release.sys of done_seq (error fields written before it).
    let done = ring.completions[job.slot as usize]
        .done_seq
        .load(Ordering::Acquire);
    // Sequences wrap; "finished" means the slot has reached this job or a later one.
    match done.wrapping_sub(job.seq) as i32 {
        d if d < 0 => None,
        d => Some(d == 0),
    }
}

/// The outcome of `job` read from its slot, `None` unless the slot still holds it (a seqlock
/// read: the slot's next job may complete while the fields are read).
pub(crate) fn read_slot(ring: &Ring, job: JobTicket) -> Option<(i32, u32)> {
    let c = &ring.completions[job.slot as usize];
    // Acquire: the error fields were written before done_seq.
    if c.done_seq.load(Ordering::Acquire) != job.seq {
        return None;
    }
    let outcome = (
        c.error.load(Ordering::Relaxed),
        c.error_kind.load(Ordering::Relaxed),
    );
    // Acquire fence: the loads above happen before the re-read below, so an unchanged sequence
    // means no later job's fields were read.
    super::fence(Ordering::Acquire);
    (c.done_seq.load(Ordering::Relaxed) == job.seq).then_some(outcome)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn failures_are_kept_by_id_and_the_oldest_forgotten_past_the_bound() {
        let mut f = FailedJobs::default();
        f.record(3, -2, 7);
        assert_eq!(f.lookup(3), Outcome::Finished(-2, 7));
        assert_eq!(f.lookup(4), Outcome::Finished(0, 0), "no failure: success");
        for id in 10..10 + REMEMBERED as u64 {
            f.record(id, -1, 0);
        }
        assert_eq!(f.lookup(3), Outcome::Forgotten, "pushed out");
        assert_eq!(
            f.lookup(5),
            Outcome::Finished(0, 0),
            "newer than the forgotten failure"
        );
        f.record(10 + REMEMBERED as u64, -1, 0);
        assert_eq!(f.lookup(5), Outcome::Forgotten, "older than what is kept");
        assert_eq!(f.lookup(10), Outcome::Forgotten);
        assert_eq!(f.lookup(11), Outcome::Finished(-1, 0));
        assert_eq!(f.lookup(11 + REMEMBERED as u64), Outcome::Finished(0, 0));
    }
}
