//! [`Job`]: one submission, waited for until its tasks and everything they spawned have run.

use std::sync::atomic::Ordering as StdOrdering;
use std::time::Duration;

use crate::error::{Error, Result, from_device_code};
use crate::ring::{self, ABANDONED, JobTicket, Waiter};

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
            || ring::job_outcome(&ring, ticket).is_some(),
            &health,
            "the job to finish",
        )?;
        self.outcome().unwrap_or(Ok(()))
    }

    fn outcome(&self) -> Option<Result<()>> {
        let Some(ticket) = self.ticket else {
            return Some(Ok(()));
        };
        let (error, kind) = ring::job_outcome(&self.rt.memory.ring(), ticket)?;
        Some(match error {
            0 => Ok(()),
            ABANDONED => Err(Error::Stopped),
            code => Err(from_device_code(code, kind, 0, |k| self.rt.kind_name(k))),
        })
    }
}
