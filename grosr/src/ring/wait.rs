//! Bounded waiting for the GPU side of the protocol.

use crate::error::{Error, Result};

/// Why a wait stops early: the GPU side is gone.
pub(crate) type Health<'h> = &'h dyn Fn() -> Result<()>;

/// How often a wait past its spin checks the GPU's health and its deadline.
#[cfg(not(loom))]
const HEALTH_PERIOD: std::time::Duration = std::time::Duration::from_micros(200);

/// Bounded waiting: spins briefly (latency), then yields; checks the deadline and the GPU's health.
pub(crate) struct Waiter {
    deadline: Option<std::time::Instant>,
    timeout: std::time::Duration,
}

impl Waiter {
    /// A waiter that gives up after `timeout`.
    pub fn new(timeout: std::time::Duration) -> Waiter {
        Waiter {
            deadline: std::time::Instant::now().checked_add(timeout),
            timeout,
        }
    }

    /// Waits until `done()` holds.
    pub fn until(
        &mut self,
        mut done: impl FnMut() -> bool,
        health: Health,
        what: &'static str,
    ) -> Result<()> {
        let mut turns: u32 = 0;
        // Read the clock only once the wait outlasts its spin: most waits end before.
        #[cfg(not(loom))]
        let mut next_check: Option<std::time::Instant> = None;
        while !done() {
            turns = turns.wrapping_add(1);
            #[cfg(loom)]
            loom::thread::yield_now();
            #[cfg(not(loom))]
            {
                if turns < 2048 {
                    std::hint::spin_loop();
                    continue;
                }
                // The health check is a driver call: at most every 200 µs of waiting, so that
                // many waiting threads do not queue on the driver's lock (and slow the copies
                // and launches of the threads that are working).
                let now = std::time::Instant::now();
                if next_check.is_none_or(|t| now >= t) {
                    next_check = Some(now + HEALTH_PERIOD);
                    health()?;
                    if self.deadline.is_some_and(|d| now > d) {
                        return Err(Error::Timeout(self.timeout, what));
                    }
                }
                std::thread::yield_now();
            }
            #[cfg(loom)]
            let _ = (health, what, turns);
        }
        Ok(())
    }
}
