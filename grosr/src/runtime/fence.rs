//! The runtime's jobs as device memory sees them: a [`JobFence`] over the ring's completion
//! slots, so that memory dropped while earlier jobs may still run is freed only after them.
//!
//! The trust model: a task record's `DevicePtr` is an address, which the task body (device code
//! the user wrote) dereferences; grosr does not check it. What grosr guarantees is that memory
//! it frees (a `DeviceBuffer` or any device memory of the runtime's context) is not freed while
//! a job submitted before the free may still run: a buffer dropped right after a submit that
//! uses it stays allocated until that job has finished (or the scheduler has stopped).

use std::sync::Arc;

use crate::driver::JobFence;
use crate::ring::{CompletionCells, Ordering, Submitter};

/// The fence of one running scheduler.
pub(super) struct RingFence {
    submitter: Arc<Submitter>,
    completions: *const CompletionCells,
    slots: u64,
    /// Every job below this id is known to have finished.
    done_below: u64,
}

// SAFETY: `completions` points into the runtime's mapped memory, which outlives the fence (the
// runtime unfences before it frees the memory); the cells are atomics.
unsafe impl Send for RingFence {}

impl RingFence {
    /// A fence over `completions` (`slots` of them, in memory that outlives the fence).
    pub(super) fn new(submitter: Arc<Submitter>, completions: &[CompletionCells]) -> RingFence {
        let done_below = submitter.jobs_taken();
        RingFence {
            submitter,
            completions: completions.as_ptr(),
            slots: completions.len() as u64,
            // Jobs before a (re)launch were completed by the restart.
            done_below,
        }
    }
}

impl JobFence for RingFence {
    fn mark(&mut self) -> u64 {
        self.submitter.jobs_taken()
    }

    fn passed(&mut self, mark: u64) -> bool {
        while self.done_below < mark {
            let id = self.done_below;
            // SAFETY: the slot index is below `slots`; the memory outlives the fence.
            let c = unsafe { &*self.completions.add((id % self.slots) as usize) };
            let seq = (id / self.slots + 1) as u32;
            // Acquire: the job's end (the GPU's release of done_seq) happens before the free.
            if (c.done_seq.load(Ordering::Acquire).wrapping_sub(seq) as i32) < 0 {
                return false;
            }
            self.done_below += 1;
        }
        true
    }
}
