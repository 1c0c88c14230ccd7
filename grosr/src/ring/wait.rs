//! Bounded waiting for the GPU side of the protocol.

use crate::error::{Error, Result};

/// Why a wait stops early: the GPU side is gone.
pub(crate) type Health<'h> = &'h dyn Fn() -> Result<()>;

/// How often a wait past its spin checks the GPU's health and its deadline.
#[cfg(not(loom))]
const HEALTH_PERIOD: std::time::Duration = std::time::Duration::from_micros(200);

/// Bounded waiting: spins briefly (latency), then yields; checks the deadline and the GPU's health.
pub(crate) struct Waiter {
    deadline: std::time::Instant,
    timeout: std::time::Duration,
    /// Whether a submit notes when its job came to own its slot ([`owned`](Self::owned)).
    stamp: bool,
    owned: Option<std::time::Instant>,
}

impl Waiter {
    /// A waiter that gives up after `timeout`, at most [`crate::MAX_TIMEOUT`].
    pub fn new(timeout: std::time::Duration) -> Waiter {
        let timeout = timeout.min(crate::MAX_TIMEOUT);
        let now = std::time::Instant::now();
        Waiter {
            // A clock too close to its end for the deadline gives up at once: never unbounded.
            deadline: now.checked_add(timeout).unwrap_or(now),
            timeout,
            stamp: false,
            owned: None,
        }
    }

    /// [`new`](Self::new), and a submit through it notes when its job came to own its slot
    /// (a trace matches the slot's tasks to their job by it).
    pub fn stamping(timeout: std::time::Duration) -> Waiter {
        Waiter {
            stamp: true,
            ..Waiter::new(timeout)
        }
    }

    /// Called by a submit once its job owns its slot: the slot's previous job has ended.
    pub fn slot_owned(&mut self) {
        if self.stamp {
            self.owned = Some(std::time::Instant::now());
        }
    }

    /// When the submit's job came to own its slot (a [`stamping`](Self::stamping) waiter's).
    pub fn owned(&self) -> Option<std::time::Instant> {
        self.owned
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
            // Under loom any turn may be one past the spin: health is checked at each (a model
            // makes a wait fail, a timeout's stand-in, through it).
            #[cfg(loom)]
            {
                health()?;
                loom::thread::yield_now();
            }
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
                    if now > self.deadline {
                        return Err(Error::Timeout(self.timeout, what));
                    }
                }
                std::thread::yield_now();
            }
            #[cfg(loom)]
            let _ = (what, turns);
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_wait_of_duration_max_has_a_deadline_of_at_most_max_timeout() {
        let before = Instant::now();
        let w = Waiter::new(Duration::MAX);
        assert_eq!(w.timeout, crate::MAX_TIMEOUT);
        assert!(w.deadline <= Instant::now() + crate::MAX_TIMEOUT);
        assert!(w.deadline >= before + crate::MAX_TIMEOUT);
        let w = Waiter::new(Duration::from_millis(5));
        assert_eq!(w.timeout, Duration::from_millis(5));
    }
}
