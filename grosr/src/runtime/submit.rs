//! Submitting records: the runtime's side of the ring (the ring module runs the protocol).

use std::sync::atomic::Ordering as StdOrdering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::DevJob;
use crate::record::Task;
use crate::ring::{self, JobTicket, Submission, Waiter};

use super::{GpuRuntime, Job, Priority};

impl GpuRuntime {
    /// Submits `records` as one job and returns at once; waits only while the ring is full
    /// (at most the builder's `submit_timeout`).
    pub fn submit<T: Task + 'static>(&self, records: &[T]) -> Result<Job<'_>> {
        self.submit_timeout(records, self.config.submit_timeout)
    }

    /// [`submit`](Runtime::submit) at `priority` (the ring it takes: `rings::Rings::pick`).
    pub fn submit_priority<T: Task + 'static>(
        &self,
        records: &[T],
        priority: Priority,
    ) -> Result<Job<'_>> {
        let submission = Submission::Records {
            kind: self.kind_of::<T>()?,
            record_size: size_of::<T>(),
            bytes: bytemuck::cast_slice(records),
        };
        self.submit_with(submission, self.config.submit_timeout, None, priority)
    }

    /// [`submit`](Runtime::submit), waiting at most `timeout` for ring space (at most
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT): `Duration::MAX` waits that long, not forever).
    pub fn submit_timeout<T: Task + 'static>(
        &self,
        records: &[T],
        timeout: Duration,
    ) -> Result<Job<'_>> {
        let kind = self.kind_of::<T>()?;
        let submission = Submission::Records {
            kind,
            record_size: size_of::<T>(),
            bytes: bytemuck::cast_slice(records),
        };
        self.submit_with(submission, timeout, None, Priority::Normal)
    }

    /// Submits raw records of kind `kind` (`record_size` bytes each). For tests of the GPU's
    /// handling of corrupt input; use [`submit`](Runtime::submit).
    #[cfg(feature = "unstable")]
    pub(crate) fn submit_raw(
        &self,
        kind: u32,
        record_size: usize,
        bytes: &[u8],
    ) -> Result<Job<'_>> {
        if record_size == 0
            || record_size > crate::MAX_RECORD_BYTES
            || bytes.len() % record_size != 0
        {
            return Err(Error::Config(format!(
                "raw records of {record_size} B cannot hold {} B",
                bytes.len()
            )));
        }
        let submission = Submission::Records {
            kind,
            record_size,
            bytes,
        };
        self.submit_with(
            submission,
            self.config.submit_timeout,
            None,
            Priority::Normal,
        )
    }

    /// Submits `submission` as one job at `priority` (the ring module runs the protocol),
    /// waiting at most `timeout`. On a traced runtime the submit is a host span, and `graph` (a
    /// Resident graph launch's edges) lets the trace draw its nodes' predecessors.
    pub(crate) fn submit_with(
        &self,
        submission: Submission,
        timeout: Duration,
        graph: Option<&std::sync::Arc<super::task_trace::GraphEdges>>,
        priority: Priority,
    ) -> Result<Job<'_>> {
        let Some(trace) = self.task_trace.as_ref() else {
            let mut waiter = Waiter::new(timeout);
            return self.submit_through(submission, &mut waiter, priority);
        };
        let span = trace.host_start();
        let what = match submission {
            Submission::Records { .. } => "submit",
            Submission::Graph { .. } | Submission::SmallGraph { .. } => "graph run",
        };
        let mut waiter = Waiter::stamping(timeout);
        let job = self.submit_through(submission, &mut waiter, priority)?;
        if let (Some(slot), Some(owned)) = (job.slot(), waiter.owned()) {
            trace.submitted(span, what, slot, owned, graph);
        }
        Ok(job)
    }

    fn submit_through(
        &self,
        submission: Submission,
        waiter: &mut Waiter,
        priority: Priority,
    ) -> Result<Job<'_>> {
        // No driver call on the fast path (a cuStreamQuery costs microseconds): a kernel that
        // died since the last check is noticed by the bounded waits and by Job::wait.
        self.state()?;
        let generation = self.generation.load(StdOrdering::Acquire);
        let health = || self.health();
        let r = self.rings.pick(&self.memory, priority);
        let (ring, submitter) = (self.memory.ring(r), self.rings.submitter(r));
        let ticket = if submission.travels_inline() {
            submitter.submit(&ring, &NoArena, submission, waiter, &health)?
        } else {
            let arena = self.memory.ring_arena(r)?;
            submitter.submit(&ring, &arena, submission, waiter, &health)?
        };
        Ok(Job::gpu(self, r, ticket, generation))
    }
}

impl GpuRuntime {
    /// An error unless the module was built with the cancel checks in.
    pub(super) fn can_cancel(&self) -> Result<()> {
        if self.info.cancellable {
            return Ok(());
        }
        Err(Error::Config(
            "this runtime cannot cancel jobs: build it with RuntimeBuilder::cancellable(true)"
                .into(),
        ))
    }

    /// `Job::cancel` of `job` (on ring `r`, of this runtime's `generation`): copies the job's
    /// sequence number into its slot's cancel word, which every task and spawn of a cancellable
    /// module checks (cuda/grosr_jobs.cuh). A finished job, or one a stop has abandoned, is left
    /// alone.
    pub(super) fn cancel(&self, r: usize, job: JobTicket, generation: u32) -> Result<()> {
        self.can_cancel()?;
        let _one = self.cancelling.lock().unwrap_or_else(|e| e.into_inner());
        let ring = self.memory.ring(r);
        if self.generation.load(StdOrdering::Acquire) != generation || ring::finished(&ring, job) {
            return Ok(());
        }
        let slot = (ring.slot_base + job.slot) as usize;
        let at = slot * size_of::<DevJob>() + std::mem::offset_of!(DevJob, cancel);
        // The job block starts the device block (runtime/memory.rs). A synchronous copy, made
        // under the lock: a later cancel's word lands after this one. The device records the
        // outcome (complete_job: a cancelled job ends Cancelled even if no task was skipped).
        self.memory.device.write_at(at, &[job.seq])
    }
}

/// The arena of a submission that travels inline, which never copies into one: it needs no
/// waiting for the arena to be pinned.
struct NoArena;

impl ring::Arena for NoArena {
    unsafe fn copy_in(&self, _: u64, _: &[u8]) -> u64 {
        unreachable!("a submission that travels inline copies nothing into the arena")
    }
}
