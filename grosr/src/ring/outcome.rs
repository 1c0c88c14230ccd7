//! A job's outcome, also after its completion slot has been reused.
//!
//! A slot holds the outcome of its latest job only, and the GPU writes a job's error fields with
//! plain stores before its release of `done_seq`, so a reader racing the next job's completion
//! cannot tell a torn read (no seqlock is possible). Instead the host hands each slot over under
//! one mutex, [`Slots`]: before a job takes a slot (its submitter, once the previous job is
//! done), or the host completes one itself (an orphan, a restart), the previous job's failure,
//! if any, is copied into a bounded history and the slot's owner is raised. A reader holding the
//! mutex whose job still owns the slot reads the slot (nothing can write it: the next job is not
//! published until it owns the slot); one whose slot has moved on reads the history: its own
//! failure, or none (it succeeded). Past [`REMEMBERED`] failures the oldest are forgotten, and
//! a handle that old gets [`Outcome::Forgotten`], never another job's outcome.

use std::collections::{HashMap, VecDeque};

use super::{ABANDONED, JobTicket, Ordering, Ring};

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

/// Who owns each completion slot, and the failures of jobs whose slots have moved on.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    /// Per slot: the id + 1 of the job that owns it (0: none yet).
    owner: Vec<u64>,
    errors: HashMap<u64, (i32, u32)>,
    order: VecDeque<u64>,
    /// Every failure of a job with an id at or above this is remembered.
    complete_from: u64,
}

impl Slots {
    /// Hands `job`'s slot to it: the previous job there is done (its `done_seq` acquired by the
    /// caller), and its failure, if any, goes into the history before the slot can change.
    /// Nothing to do if the slot is `job`'s or a later job's already: a restart between the
    /// caller's slot wait and this call took it for `job` (abandoned), recorded the previous
    /// job's outcome, and left `job`'s own `ABANDONED` in the cells.
    pub fn hand_over(&mut self, ring: &Ring, job: JobTicket) {
        if self
            .owner
            .get(job.slot as usize)
            .is_some_and(|&o| o > job.id)
        {
            return;
        }
        let previous = job.id.checked_sub(ring.completions.len() as u64);
        self.take(ring, job.slot, previous, job.id);
    }

    /// Makes job `owner` the owner of `slot`, recording the failure of `previous` (the job whose
    /// outcome the slot holds, if any) first.
    pub fn take(&mut self, ring: &Ring, slot: u32, previous: Option<u64>, owner: u64) {
        if self.owner.len() != ring.completions.len() {
            self.owner.resize(ring.completions.len(), 0);
        }
        if let Some(previous) = previous {
            let c = &ring.completions[slot as usize];
            // Relaxed: the caller's acquire of done_seq ordered these after the GPU's writes.
            let error = c.error.load(Ordering::Relaxed);
            if error != 0 {
                self.record(previous, error, c.error_kind.load(Ordering::Relaxed));
            }
        }
        let o = &mut self.owner[slot as usize];
        *o = (*o).max(owner + 1);
    }

    /// Records that job `id` was abandoned by a restart (its slot is handed on without it).
    pub fn abandoned(&mut self, id: u64) {
        self.record(id, ABANDONED, 0);
    }

    /// Records that job `id` failed with `(error, kind)`; a job's first recorded outcome stays.
    fn record(&mut self, id: u64, error: i32, kind: u32) {
        if id < self.complete_from {
            return;
        }
        match self.errors.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => return,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((error, kind));
            }
        }
        self.order.push_back(id);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.errors.remove(&old);
            self.complete_from = self.complete_from.max(old + 1);
        }
    }

    /// The outcome of `job` once it has finished, `None` while it runs.
    pub fn outcome(&self, ring: &Ring, job: JobTicket) -> Option<Outcome> {
        let owner = self.owner.get(job.slot as usize).copied().unwrap_or(0);
        if owner > job.id + 1 {
            return Some(self.lookup(job.id));
        }
        // The slot is still `job`'s: nothing writes it but the job's own completion.
        let c = &ring.completions[job.slot as usize];
        // Acquire: the error fields were written before done_seq.
        if c.done_seq.load(Ordering::Acquire) != job.seq {
            return None;
        }
        Some(Outcome::Finished(
            c.error.load(Ordering::Relaxed),
            c.error_kind.load(Ordering::Relaxed),
        ))
    }

    /// The outcome of finished job `id` whose slot has been handed on since.
    fn lookup(&self, id: u64) -> Outcome {
        match self.errors.get(&id) {
            Some(&(error, kind)) => Outcome::Finished(error, kind),
            None if id >= self.complete_from => Outcome::Finished(0, 0),
            None => Outcome::Forgotten,
        }
    }
}

/// Whether `job` has finished: its slot has reached this job or a later one (no lock: what
/// waits poll; [`Slots::outcome`] then says how it went).
pub(crate) fn finished(ring: &Ring, job: JobTicket) -> bool {
    // Acquire: pairs with the GPU's st.release.sys of done_seq.
    let done = ring.completions[job.slot as usize]
        .done_seq
        .load(Ordering::Acquire);
    // Sequences wrap; "finished" means the slot has reached this job or a later one.
    done.wrapping_sub(job.seq) as i32 >= 0
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn failures_are_kept_by_id_and_the_oldest_forgotten_past_the_bound() {
        let mut f = Slots::default();
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
