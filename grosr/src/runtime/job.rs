//! [`Job`]: one submission, waited for until its tasks and everything they spawned have run.

use std::sync::atomic::Ordering as StdOrdering;
use std::time::Duration;

use crate::error::{Error, Result, from_device_code};
use crate::ring::{self, ABANDONED, JobTicket, Outcome, Waiter};

use super::GpuRuntime;
use crate::cpu::CpuJob;

/// A submitted job: its tasks and everything they spawn.
#[must_use = "a job should be waited for to learn whether its tasks succeeded"]
pub struct Job<'rt> {
    on: On<'rt>,
}

/// Where the job runs.
enum On<'rt> {
    Gpu {
        rt: &'rt GpuRuntime,
        /// The submission ring it went through.
        ring: usize,
        ticket: Option<JobTicket>,
        generation: u32,
    },
    Cpu {
        job: CpuJob,
        timeout: Duration,
    },
}

impl std::fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.on {
            On::Gpu {
                ring,
                ticket,
                generation,
                ..
            } => f
                .debug_struct("Job")
                .field("ring", ring)
                .field("ticket", ticket)
                .field("generation", generation)
                .finish_non_exhaustive(),
            On::Cpu { job, .. } => f.debug_struct("Job").field("cpu", job).finish(),
        }
    }
}

impl<'rt> Job<'rt> {
    /// A job on the GPU: `ticket` (none for an empty submission) on submission ring `ring` of
    /// `rt`'s `generation`.
    pub(super) fn gpu(
        rt: &'rt GpuRuntime,
        ring: usize,
        ticket: Option<JobTicket>,
        generation: u32,
    ) -> Job<'rt> {
        Job {
            on: On::Gpu {
                rt,
                ring,
                ticket,
                generation,
            },
        }
    }

    /// A job on the CPU executor; `wait` waits at most `timeout`.
    pub(super) fn cpu(job: CpuJob, timeout: Duration) -> Job<'rt> {
        Job {
            on: On::Cpu { job, timeout },
        }
    }
}

impl Job<'_> {
    /// Whether the job has finished (successfully or not: [`wait`](Self::wait) says how); an
    /// error only while it has not, when the runtime cannot finish it (stopped, faulted).
    pub fn is_done(&self) -> Result<bool> {
        match &self.on {
            // A failed job has finished too, as on the CPU backend: a Resident graph whose
            // timed-out launch failed later looks here before its next run.
            On::Gpu { rt, .. } => match self.outcome() {
                Some(_) => Ok(true),
                None => rt.health().map(|_| false),
            },
            On::Cpu { job, .. } => job.is_done(),
        }
    }

    /// Waits for the job, at most the runtime's submit timeout.
    pub fn wait(&self) -> Result<()> {
        match &self.on {
            On::Gpu { rt, .. } => self.wait_timeout(rt.config.submit_timeout),
            On::Cpu { timeout, .. } => self.wait_timeout(*timeout),
        }
    }

    /// The device's job slot of a GPU job (none for an empty submission or on the CPU backend).
    pub(super) fn slot(&self) -> Option<u32> {
        match &self.on {
            On::Gpu {
                rt, ring, ticket, ..
            } => ticket.map(|t| rt.memory.ring(*ring).slot_base + t.slot),
            On::Cpu { .. } => None,
        }
    }

    /// Waits at most `timeout` (at most [`MAX_TIMEOUT`](crate::MAX_TIMEOUT): `Duration::MAX`
    /// waits that long, not forever); returns the first error any of the job's tasks reported.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        let trace = match &self.on {
            On::Gpu { rt, .. } => rt.task_trace.as_ref(),
            On::Cpu { .. } => None,
        };
        let Some((trace, slot)) = trace.and_then(|t| Some((t, self.slot()?))) else {
            return self.wait_untraced(timeout);
        };
        let span = trace.host_start();
        let waited = self.wait_untraced(timeout);
        trace.host_span(span, "wait", slot);
        waited
    }

    fn wait_untraced(&self, timeout: Duration) -> Result<()> {
        let (rt, r, ticket, generation) = match &self.on {
            On::Cpu { job, .. } => return job.wait_timeout(timeout.min(crate::MAX_TIMEOUT)),
            On::Gpu {
                rt,
                ring,
                ticket,
                generation,
            } => (*rt, *ring, *ticket, *generation),
        };
        let Some(ticket) = ticket else {
            return Ok(());
        };
        let ring = rt.memory.ring(r);
        let health = || {
            if rt.generation.load(StdOrdering::Acquire) != generation {
                return Err(Error::Stopped);
            }
            rt.health()
        };
        Waiter::new(timeout).until(
            || ring::finished(&ring, ticket),
            &health,
            "the job to finish",
        )?;
        // Memory dropped while this job ran may be freed now.
        rt.ctx.free_finished();
        self.outcome().unwrap_or(Ok(()))
    }

    /// Cancels the job: it finishes with [`Error::Cancelled`] (unless it had finished or failed
    /// already; one finishing as it is cancelled may report either). Its tasks that have not
    /// started are dropped, running ones finish (a body can stop early when `ctx.cancelled()`
    /// says so), what they spawn is dropped, and other jobs go on untouched. Counters count only
    /// tasks that ran. Cancelling twice, or a finished job, does nothing.
    ///
    /// On a GPU, only a runtime built [`cancellable`](crate::RuntimeBuilder::cancellable)
    /// cancels ([`Error::Config`] otherwise): the host copies the job's sequence number into its
    /// slot's cancel word, and tasks see it as they start (a few more may run meanwhile).
    ///
    /// ```
    /// use std::time::Duration;
    /// use grosr::{DevicePtr, DeviceBuffer, Error, Runtime};
    ///
    /// /// Says it started (`seen[1]`), polls for its job's cancel (at most `max_ns`), then says
    /// /// whether it saw one (`seen[0]`).
    /// #[grosr::task(granularity = "lane", rust = |task, ctx| {
    ///     ctx.write(task.seen, 1u32, 1u32);
    ///     let start = ctx.globaltimer();
    ///     while !ctx.cancelled() && ctx.globaltimer() - start < task.max_ns {}
    ///     ctx.write(task.seen, 0u32, if ctx.cancelled() { 1u32 } else { 2u32 });
    /// })]
    /// pub struct Poll { pub seen: DevicePtr<u32>, pub max_ns: u64 }
    ///
    /// let rt = Runtime::builder()
    /// #   .backend(grosr::Backend::Cpu) // doctests run on host threads: no GPU needed
    ///     .task::<Poll>()
    ///     .cancellable(true) // a GPU cancels only when built so
    ///     .build()?;
    /// let seen = DeviceBuffer::<u32>::zeroed(rt.gpu(), 2)?;
    /// let job = rt.submit(&[Poll { seen: seen.ptr(), max_ns: 60_000_000_000 }])?;
    /// let started = std::time::Instant::now();
    /// while seen.to_vec()?[1] == 0 && started.elapsed() < Duration::from_secs(10) {}
    /// // Running now: wait 1 ms more, then cancel; the body stops early, the job ends Cancelled.
    /// let waited = job.wait_timeout_or_cancel(Duration::from_millis(1));
    /// assert!(matches!(waited, Err(Error::Timeout(..))), "{waited:?}");
    /// let outcome = job.wait_timeout(Duration::from_secs(10));
    /// assert!(matches!(outcome, Err(Error::Cancelled)), "{outcome:?}");
    /// assert_eq!(seen.to_vec()?, vec![1, 1]);
    /// # Ok::<(), grosr::Error>(())
    /// ```
    pub fn cancel(&self) -> Result<()> {
        match &self.on {
            On::Cpu { job, .. } => {
                job.cancel();
                Ok(())
            }
            On::Gpu {
                rt,
                ring,
                ticket,
                generation,
            } => match ticket {
                Some(t) => rt.cancel(*ring, *t, *generation),
                None => Ok(()), // an empty job is done
            },
        }
    }

    /// [`wait_timeout`](Self::wait_timeout), and if the time runs out, [`cancel`](Self::cancel)
    /// the job and return the [`Error::Timeout`] (or the cancel's error): the job then ends
    /// without this thread waiting for its running tasks.
    pub fn wait_timeout_or_cancel(&self, timeout: Duration) -> Result<()> {
        // Refused before the wait, not after it, where it could not cancel anyway.
        if let On::Gpu { rt, .. } = &self.on {
            rt.can_cancel()?;
        }
        match self.wait_timeout(timeout) {
            Err(e @ Error::Timeout(..)) => self.cancel().and(Err(e)),
            other => other,
        }
    }

    /// A GPU job's outcome once it has finished; its own also after its slot was reused.
    fn outcome(&self) -> Option<Result<()>> {
        let On::Gpu {
            rt, ring, ticket, ..
        } = &self.on
        else {
            return None;
        };
        let Some(ticket) = *ticket else {
            return Some(Ok(()));
        };
        let submitter = rt.rings.submitter(*ring);
        Some(match submitter.outcome(&rt.memory.ring(*ring), ticket)? {
            Outcome::Finished(0, _) => Ok(()),
            Outcome::Finished(ABANDONED, _) => Err(Error::Stopped),
            Outcome::Finished(code, kind) => {
                Err(from_device_code(code, kind, 0, |k| rt.kind_name(k)))
            }
            Outcome::Forgotten => Err(Error::OutcomeForgotten),
        })
    }
}
