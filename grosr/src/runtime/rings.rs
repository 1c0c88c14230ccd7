//! The runtime's submission rings: independent copies of the ring protocol (`crate::ring`), each
//! with its own descriptors, head, job slots, slice of the arena, [`Submitter`] and, on the GPU,
//! ingest warp (warp 0 of block `r` reads ring `r`).
//!
//! One ingest warp took every submission in turn: a task it ran itself (a lone task's fast path)
//! held up every later submit for as long as it ran, and eight host threads shared one warp's
//! PCIe round trips (benches/NOTES.md, "Many host threads"). With several rings each ingest warp
//! blocks only its own ring, and a submit goes where nothing is outstanding:
//!
//! - **The pick.** Each thread has a home ring (handed out round-robin as threads first submit).
//!   A submit takes its home ring if it is idle ([`Submitter::idle`]: the GPU has consumed every
//!   descriptor it handed out, or all but the last, whose job has finished), else the first idle
//!   ring after it, else its home ring. A short job behind a long task that an ingest warp runs
//!   thus goes to another ring, threads spread, and a lone thread keeps its ring.
//! - **A job stays on its ring**, from submit to outcome: its chunks, its split guard and its
//!   close rely on the ring's descriptor order. Jobs have no order between them (a Resident
//!   graph's next launch waits for the last one on the host), so rings need none either.
//! - **Partitioned, not shared.** Ring `r` owns job slots `r * per_ring ..` (the GPU sees
//!   `slot_base + slot`), a `1/rings` slice of the descriptors and of the arena. Each ring's
//!   protocol, unit tests and loom model are then those of one ring, unchanged; the price is
//!   that one ring cannot borrow another's free slots or arena (the pick prefers idle rings).
//! - **Restart** restarts every ring; the GPU's ingest warps read their rings' heads at launch.
//! - **Priorities.** With three rings or more (`HIGH_RING_FROM`), the last is kept for
//!   [`Priority::High`] jobs: normal jobs never take it, so a small high job runs on its ingest
//!   warp at once, whatever normal work fills the GPU, and that ring's block runs no block task
//!   (which would take its ingest warp too). A high job takes another idle ring only while the
//!   high one is busy. With fewer rings, priorities change nothing.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::driver::JobFence;
use crate::error::Result;
use crate::ring::{CompletionCells, Submitter};

use super::memory::Memory;

/// How urgently a job should start ([`Runtime::submit_priority`](crate::Runtime::submit_priority)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Priority {
    /// Any ring but the high one.
    #[default]
    Normal,
    /// The ring kept for high jobs (with three rings or more), else any idle one.
    High,
}

/// The most submission rings a runtime takes ([`RuntimeBuilder::submit_rings`](crate::RuntimeBuilder::submit_rings)).
pub(crate) const MAX_RINGS: u32 = 16;

/// Every submission ring's host side.
#[derive(Debug)]
pub(super) struct Rings {
    submitters: Box<[Submitter]>,
}

thread_local! {
    /// This thread's home ring, modulo a runtime's ring count (`usize::MAX`: none yet).
    static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The next home ring to hand a thread.
static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

/// The calling thread's home ring (any ring count: taken modulo it).
fn home() -> usize {
    HOME.try_with(|h| {
        if h.get() == usize::MAX {
            // Relaxed: any distinct-ish value spreads threads; nothing is ordered by it.
            h.set(NEXT_HOME.fetch_add(1, Ordering::Relaxed));
        }
        h.get()
    })
    // A thread being torn down (its thread-locals gone) submits from ring 0.
    .unwrap_or(0)
}

impl Rings {
    /// `count` rings, each with an arena slice of `arena_each` bytes.
    pub(super) fn new(count: u32, arena_each: u64) -> Rings {
        Rings {
            submitters: (0..count).map(|_| Submitter::new(arena_each)).collect(),
        }
    }

    /// How many rings there are.
    pub(super) fn count(&self) -> usize {
        self.submitters.len()
    }

    /// Ring `r`'s submitter.
    pub(super) fn submitter(&self, r: usize) -> &Submitter {
        &self.submitters[r]
    }

    /// The ring a submit from this thread takes now at `priority` (the module doc's "pick").
    pub(super) fn pick(&self, memory: &Memory, priority: Priority) -> usize {
        if self.submitters.len() == 1 {
            return 0; // nothing to choose: no look at the GPU's cells on the submit path
        }
        pick_ring(home(), self.submitters.len(), priority, |r| {
            self.submitters[r].idle(&memory.ring(r))
        })
    }

    /// Makes every ring ready for a fresh kernel (`Submitter::restart`); each ring's head,
    /// where its ingest warp starts, is stored in its cells.
    pub(super) fn restart(&self, memory: &Memory) -> Result<()> {
        for (r, s) in self.submitters.iter().enumerate() {
            s.restart(&memory.ring(r))?;
        }
        Ok(())
    }

    /// Every ring's `jobs_taken`, ring by ring.
    fn jobs_taken(&self) -> Vec<u64> {
        self.submitters.iter().map(Submitter::jobs_taken).collect()
    }
}

/// Of `rings` rings, the one a job at `priority` from a thread whose home is `home` takes: with
/// [`HIGH_RING_FROM`](crate::layout::HIGH_RING_FROM) rings or more, the last is kept for high
/// jobs (the module doc's "pick").
fn pick_ring(home: usize, rings: usize, priority: Priority, idle: impl Fn(usize) -> bool) -> usize {
    if rings < crate::layout::HIGH_RING_FROM as usize {
        // Too few to keep one apart: every job picks among all.
        return pick(home, rings, idle);
    }
    let high = rings - 1;
    match priority {
        Priority::High if idle(high) => high,
        Priority::High => first_idle(home, high, idle).unwrap_or(high),
        _ => pick(home, high, idle),
    }
}

/// Of `rings` rings, the one a thread whose home is `home` takes: home if `idle`, else the
/// first idle one after it, else home.
fn pick(home: usize, rings: usize, idle: impl Fn(usize) -> bool) -> usize {
    first_idle(home, rings, idle).unwrap_or(home % rings)
}

/// Of `rings` rings, the first `idle` one from `home` on (each looked at once).
fn first_idle(home: usize, rings: usize, idle: impl Fn(usize) -> bool) -> Option<usize> {
    let home = home % rings;
    (0..rings).map(|i| (home + i) % rings).find(|&r| idle(r))
}

/// The runtime's jobs as device memory sees them: the fence of one running scheduler over every
/// ring's completion slots, so that memory dropped while earlier jobs may still run is freed
/// only after them (every ring's jobs taken before the free must have finished).
///
/// The trust model: a task record's `DevicePtr` is an address, which the task body (device code
/// the user wrote) dereferences; grosr does not check it. What grosr guarantees is that memory
/// it frees (a `DeviceBuffer` or any device memory of the runtime's context) is not freed while
/// a job submitted before the free may still run: a buffer dropped right after a submit that
/// uses it stays allocated until that job has finished (or the scheduler has stopped).
pub(super) struct RingFence {
    /// Every ring's jobs taken so far (`Rings::jobs_taken`).
    jobs_taken: Box<dyn Fn() -> Vec<u64> + Send>,
    /// Per ring: its completion cells and their count.
    completions: Vec<(*const CompletionCells, u64)>,
    /// Per ring: every job below this id is known to have finished.
    done_below: Vec<u64>,
    /// Marks handed out and not yet passed, oldest first: (mark, each ring's jobs taken then).
    /// Marks are consecutive numbers, so mark `m` sits at `m - marks[0].0`.
    marks: VecDeque<(u64, Vec<u64>)>,
    next_mark: u64,
}

// SAFETY: `completions` point into the runtime's mapped memory, which outlives the fence (the
// runtime unfences before it frees the memory); the cells are atomics.
unsafe impl Send for RingFence {}

impl RingFence {
    /// A fence over `rings`, whose cells are `memory`'s (which outlive the fence).
    pub(super) fn new(rings: Arc<Rings>, memory: &Memory) -> RingFence {
        let completions = (0..rings.count())
            .map(|r| memory.ring(r).completions)
            .collect();
        // SAFETY: the memory outlives the fence (the runtime unfences before it frees it).
        unsafe { RingFence::over(completions, Box::new(move || rings.jobs_taken())) }
    }

    /// A fence over rings whose completion cells are `completions` and whose jobs taken
    /// `jobs_taken` says, ring by ring.
    ///
    /// # Safety
    ///
    /// The cells outlive the fence.
    unsafe fn over(
        completions: Vec<&[CompletionCells]>,
        jobs_taken: Box<dyn Fn() -> Vec<u64> + Send>,
    ) -> RingFence {
        // Jobs before a (re)launch were completed by the restart.
        let done_below = jobs_taken();
        RingFence {
            jobs_taken,
            completions: completions
                .iter()
                .map(|c| (c.as_ptr(), c.len() as u64))
                .collect(),
            done_below,
            marks: VecDeque::new(),
            next_mark: 0,
        }
    }

    /// Whether ring `r`'s jobs below `taken` have all finished.
    fn ring_passed(&mut self, r: usize, taken: u64) -> bool {
        let (cells, slots) = self.completions[r];
        while self.done_below[r] < taken {
            let id = self.done_below[r];
            // SAFETY: the slot index is below the ring's slot count; the memory outlives the fence.
            let c = unsafe { &*cells.add((id % slots) as usize) };
            let seq = (id / slots + 1) as u32;
            // Acquire: the job's end (the GPU's release of done_seq) happens before the free.
            if (c
                .done_seq
                .load(crate::ring::Ordering::Acquire)
                .wrapping_sub(seq) as i32)
                < 0
            {
                return false;
            }
            self.done_below[r] += 1;
        }
        true
    }
}

impl JobFence for RingFence {
    fn mark(&mut self) -> u64 {
        let taken = (self.jobs_taken)();
        // Frees between two submits share a mark.
        if let Some((m, last)) = self.marks.back()
            && *last == taken
        {
            return *m;
        }
        let m = self.next_mark;
        self.next_mark += 1;
        self.marks.push_back((m, taken));
        m
    }

    fn passed(&mut self, mark: u64) -> bool {
        let Some(&(first, _)) = self.marks.front() else {
            return true; // every mark handed out has passed
        };
        let Some(index) = mark.checked_sub(first) else {
            return true; // passed and let go
        };
        let index = index as usize;
        if index >= self.marks.len() {
            return true; // not a mark of this fence: nothing of it can be waited for
        }
        for r in 0..self.completions.len() {
            let taken = self.marks[index].1[r];
            if !self.ring_passed(r, taken) {
                return false;
            }
        }
        // Marks are monotone per ring: every older one has passed too.
        self.marks.drain(..=index);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_thread_keeps_its_home_ring_while_idle_and_else_takes_the_next_idle_one() {
        assert_eq!(pick(5, 4, |_| true), 1);
        assert_eq!(pick(1, 4, |r| r != 1), 1 + 1);
        assert_eq!(pick(3, 4, |r| r == 0 || r == 2), 0);
        assert_eq!(pick(2, 4, |_| false), 2, "all busy: home");
        assert_eq!(pick(7, 1, |_| false), 0);
        // Threads' homes spread over the rings.
        let homes: std::collections::HashSet<usize> = (0..8)
            .map(|_| std::thread::spawn(home).join().unwrap() % 4)
            .collect();
        assert!(homes.len() > 1, "eight threads, one home ring: {homes:?}");
    }

    #[test]
    fn normal_jobs_never_take_the_high_ring_and_high_jobs_take_it_first() {
        use Priority::{High, Normal};
        for home in 0..8 {
            assert_ne!(pick_ring(home, 4, Normal, |_| true), 3);
            assert_ne!(
                pick_ring(home, 4, Normal, |r| r == 3),
                3,
                "all normal busy: home"
            );
            assert_eq!(pick_ring(home, 4, High, |_| true), 3);
            assert_eq!(
                pick_ring(home, 4, High, |r| r == 1),
                1,
                "high busy: an idle one"
            );
            assert_eq!(
                pick_ring(home, 4, High, |_| false),
                3,
                "all busy: the high one"
            );
        }
        // Two rings: no ring kept apart.
        assert_eq!(pick_ring(1, 2, Normal, |_| true), 1);
        assert_eq!(pick_ring(1, 2, High, |r| r == 0), 0);
        assert_eq!(pick_ring(0, 1, High, |_| false), 0);
    }

    /// Two rings' completion cells and jobs taken, standing in for the runtime's.
    struct TwoRings {
        cells: [Vec<CompletionCells>; 2],
        taken: Arc<Mutex<Vec<u64>>>,
    }

    impl TwoRings {
        fn new(slots: usize) -> TwoRings {
            let cells = || (0..slots).map(|_| CompletionCells::default()).collect();
            TwoRings {
                cells: [cells(), cells()],
                taken: Arc::new(Mutex::new(vec![0, 0])),
            }
        }
        fn fence(&self) -> RingFence {
            let taken = self.taken.clone();
            // SAFETY: every test drops its fence before its cells.
            unsafe {
                RingFence::over(
                    self.cells.iter().map(Vec::as_slice).collect(),
                    Box::new(move || taken.lock().unwrap().clone()),
                )
            }
        }
        fn take(&self, ring: usize) {
            self.taken.lock().unwrap()[ring] += 1;
        }
        /// Job `id` of `ring` finishes (slot `id % slots`, sequence `id / slots + 1`).
        fn finish(&self, ring: usize, id: u64) {
            let slots = self.cells[ring].len() as u64;
            self.cells[ring][(id % slots) as usize]
                .done_seq
                .store((id / slots + 1) as u32, crate::ring::Ordering::Release);
        }
    }

    #[test]
    fn a_fence_mark_passes_once_every_ring_has_finished_the_jobs_taken_before_it() {
        let rings = TwoRings::new(4);
        let mut fence = rings.fence();
        let nothing = fence.mark();
        assert!(fence.passed(nothing), "no job was taken");
        rings.take(0);
        rings.take(1);
        rings.take(1);
        let both = fence.mark();
        assert_eq!(fence.mark(), both, "no submit between: one mark");
        rings.take(0); // after the mark: not waited for
        let later = fence.mark();
        assert!(!fence.passed(both));
        rings.finish(1, 0);
        rings.finish(1, 1);
        assert!(!fence.passed(both), "ring 0's job 0 runs");
        rings.finish(0, 0);
        assert!(fence.passed(both));
        assert!(fence.passed(both), "a passed mark stays passed");
        assert!(!fence.passed(later), "ring 0's job 1 runs");
        rings.finish(0, 1);
        assert!(fence.passed(later));
        // Slots reused: job 4 of ring 1 (slot 0's second lap).
        for _ in 0..3 {
            rings.take(1);
        }
        let lap = fence.mark();
        for id in 2..5 {
            assert!(!fence.passed(lap));
            rings.finish(1, id);
        }
        assert!(fence.passed(lap));
    }
}
