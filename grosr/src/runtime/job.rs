//! [`Job`]: one submission, waited for until its tasks and everything they spawned have run.

use std::sync::atomic::Ordering as StdOrdering;
use std::time::Duration;

use crate::error::{Error, Result, from_device_code};
use crate::ring::{self, ABANDONED, JobTicket, Outcome, Waiter};

use super::Runtime;

/// A submitted job: its tasks and everything they spawn.
#[must_use = "a job should be waited for to learn whether its tasks succeeded"]
pub struct Job<'rt> {
    pub(super) rt: &'rt Runtime,
    pub(super) ticket: Option<JobTicket>,
    pub(super) generation: u32,
}

impl std::fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("ticket", &self.ticket)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Job<'_> {
    /// Whether the job has finished (successfully or not).
    pub fn is_done(&self) -> Result<bool> {
        match self.outcome() {
            Some(r) => r.map(|_| true),
            None => self.rt.health().map(|_| false),
        }
    }

    /// Waits for the job, at most the runtime's submit timeout.
    pub fn wait(&self) -> Result<()> {
        self.wait_timeout(self.rt.config.submit_timeout)
    }

    /// Waits at most `timeout` (at most [`MAX_TIMEOUT`](crate::MAX_TIMEOUT): `Duration::MAX`
    /// waits that long, not forever); returns the first error any of the job's tasks reported.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        let Some(ticket) = self.ticket else {
            return Ok(());
        };
        let ring = self.rt.memory.ring();
        let health = || {
            if self.rt.generation.load(StdOrdering::Acquire) != self.generation {
                return Err(Error::Stopped);
            }
            self.rt.health()
        };
        Waiter::new(timeout).until(
            || ring::finished(&ring, ticket),
            &health,
            "the job to finish",
        )?;
        // Memory dropped while this job ran may be freed now.
        self.rt.gpu.context().free_finished();
        self.outcome().unwrap_or(Ok(()))
    }

    /// The job's outcome once it has finished; its own also after its slot was reused.
    fn outcome(&self) -> Option<Result<()>> {
        let Some(ticket) = self.ticket else {
            return Some(Ok(()));
        };
        Some(
            match self.rt.submitter.outcome(&self.rt.memory.ring(), ticket)? {
                Outcome::Finished(0, _) => Ok(()),
                Outcome::Finished(ABANDONED, _) => Err(Error::Stopped),
                Outcome::Finished(code, kind) => {
                    Err(from_device_code(code, kind, 0, |k| self.rt.kind_name(k)))
                }
                Outcome::Forgotten => Err(Error::OutcomeForgotten),
            },
        )
    }
}
