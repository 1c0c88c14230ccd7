//! The host's side of the ring and one submission, start to end (the module doc's "One
//! submission" lists the steps).

use super::outcome::{Outcome, Slots};
use super::producer::{ChunkTicket, Producer, Reserved, wait_job_slot};
use super::wait::{Health, Waiter};
use super::{
    DescFields, JobTicket, Mutex, MutexGuard, Ordering, Records, Ring, publish, travels_inline,
};
// The submitter's own counters are std atomics also under loom: they are bookkeeping beside the
// mutex, not cells shared with the GPU, and as loom atomics they made the two-producer model's
// paths too long to explore (its branch limit); the unit tests cover the restart that reads them.
use crate::error::{Error, Result};
use crate::layout::{KIND_GRAPH, KIND_GRAPH_SMALL};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

/// What one submission carries; each becomes one job.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Submission<'b> {
    /// `bytes` as records of kind `kind`, `record_size` bytes each (a nonzero divisor of the
    /// length): a job of one task per record.
    Records {
        kind: u32,
        record_size: usize,
        bytes: &'b [u8],
    },
    /// A resident graph's launch record (`KIND_GRAPH`, `graph::resident::launch_record`); the
    /// GPU counts the tasks the graph spawns into the job itself.
    Graph { record: &'b [u32] },
    /// A small graph carried whole (`KIND_GRAPH_SMALL`, `graph::resident::small_launch`): one
    /// record that runs as `nodes` (at least 1) tasks.
    SmallGraph { graph: &'b [u32], nodes: u32 },
}

/// A submission as the descriptors carry it.
struct Wire<'b> {
    kind: u32,
    record_size: usize,
    bytes: &'b [u8],
    /// Tasks the job counts beyond one per record (on its first descriptor's `adjust`).
    extra: u32,
}

impl<'b> Submission<'b> {
    /// Whether `submit` sends it inside its descriptor, never copying into the arena.
    pub fn travels_inline(self) -> bool {
        let w = self.wire();
        super::travels_inline(w.bytes.len(), w.record_size)
    }

    fn wire(self) -> Wire<'b> {
        let one_record = |kind, words: &'b [u32], extra| {
            let bytes: &[u8] = bytemuck::cast_slice(words);
            Wire {
                kind,
                record_size: bytes.len(),
                bytes,
                extra,
            }
        };
        match self {
            Submission::Records {
                kind,
                record_size,
                bytes,
            } => Wire {
                kind,
                record_size,
                bytes,
                extra: 0,
            },
            Submission::Graph { record } => one_record(KIND_GRAPH, record, 0),
            Submission::SmallGraph { graph, nodes } => {
                // A small graph has at least one node (the runtime builds none without).
                one_record(KIND_GRAPH_SMALL, graph, nodes.saturating_sub(1))
            }
        }
    }
}

/// Where chunks' records are copied: the mapped arena (the runtime), host memory (tests).
pub(crate) trait Arena {
    /// Copies `bytes` to byte `offset` of the arena; returns the address the GPU reads them at.
    ///
    /// # Safety
    ///
    /// `[offset, offset + bytes.len())` lies inside the arena and is reserved to the caller
    /// ([`Producer::reserve_chunk`]): nothing else writes it, and the GPU reads it only after the
    /// descriptor that names it is published.
    unsafe fn copy_in(&self, offset: u64, bytes: &[u8]) -> u64;
}

/// The host's side of the ring, shared by every submitting thread: the producer's bookkeeping
/// behind its mutex, the reservations being copied, and the completion slots' owners with the
/// failures of jobs whose slots have moved on (`outcome`).
#[derive(Debug)]
pub(crate) struct Submitter {
    producer: Mutex<Producer>,
    /// Descriptors reserved and not yet published (their records are being copied): raised
    /// under the producer's mutex, lowered after the publish. A restart waits, holding the
    /// mutex, until none is left, so no submitter copies into arena space the restart hands out
    /// again, nor publishes a descriptor the restarted GPU side is past.
    copying: AtomicU32,
    /// Whether orphans or closes may be waiting to be settled (the submit path's check before
    /// it tries the mutex; set and cleared under the mutex).
    unsettled: AtomicBool,
    slots: Mutex<Slots>,
    /// `Producer::jobs_taken`, readable without the mutex (which a waiting submitter may hold).
    jobs_taken: AtomicU64,
    /// `Producer::descs_taken`, likewise, for [`idle`](Self::idle).
    descs_taken: AtomicU64,
    /// The job of the last descriptor handed out, `slot << 32 | seq`, for [`idle`](Self::idle).
    last_job: AtomicU64,
}

/// How long a restart waits for submitters to finish copying what they reserved (a copy is at
/// most a quarter of the arena: milliseconds).
#[cfg(not(loom))]
const COPY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
#[cfg(loom)]
const COPY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Submitter {
    /// A submitter for a ring whose GPU side starts at descriptor 0 and job 0, with an arena of
    /// `arena_len` bytes.
    pub fn new(arena_len: u64) -> Submitter {
        Submitter {
            producer: Mutex::new(Producer::new(arena_len, 0, 0)),
            copying: AtomicU32::new(0),
            unsettled: AtomicBool::new(false),
            slots: Mutex::new(Slots::default()),
            jobs_taken: AtomicU64::new(0),
            descs_taken: AtomicU64::new(0),
            last_job: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Producer> {
        self.producer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves with `attempt` under the producer's mutex, waiting without it (as long as
    /// `wait` allows) for what the GPU must do first; the reservation counts as being copied
    /// until [`published`](Self::published).
    fn reserve(
        &self,
        ring: &Ring,
        wait: &mut Waiter,
        health: Health,
        job: JobTicket,
        mut attempt: impl FnMut(&mut Producer) -> Result<Reserved>,
    ) -> Result<ChunkTicket> {
        loop {
            let wait_for = {
                let mut p = self.lock();
                match attempt(&mut p)? {
                    Ok(t) => {
                        // Relaxed: raised under the mutex, which a restart holds while it
                        // reads the count.
                        self.copying.fetch_add(1, Ordering::Relaxed);
                        self.handed_out(&p, job);
                        return Ok(t);
                    }
                    Err(w) => w,
                }
            };
            wait_for.wait(ring, wait, health)?;
        }
    }

    /// One reservation has been published.
    fn published(&self) {
        // Release: a restart that reads the count lower sees the publish done.
        self.copying.fetch_sub(1, Ordering::Release);
    }

    /// Notes for [`idle`](Self::idle) that `p` has just handed out a descriptor of `job`.
    fn handed_out(&self, p: &Producer, job: JobTicket) {
        // Relaxed: a hint for `idle` only; the release below publishes it.
        self.last_job.store(
            u64::from(job.slot) << 32 | u64::from(job.seq),
            Ordering::Relaxed,
        );
        // Release: `idle` that reads this count reads the job above (or a later one), never
        // an older job's, which may have finished while this one runs.
        self.descs_taken.store(p.descs_taken(), Ordering::Release);
    }

    /// Whether the ring's ingest warp is free: the GPU has consumed every descriptor this ring
    /// handed out, or all but the last, whose job has finished (its ingest warp is then only
    /// storing the head: a lone thread's next job then stays on the ring whose warp polls in
    /// step with it; moving on cost a lone task 5.9 against 5.1 µs, 4 rings, H100). Not free while it runs a
    /// task of its own, however long. A hint for picking a ring (stale by the time it is used),
    /// never a condition of the protocol.
    pub fn idle(&self, ring: &Ring) -> bool {
        // Relaxed: only a hint, as above.
        let head = ring.desc_head.load(Ordering::Relaxed);
        // Acquire: pairs with `handed_out`'s release (the last job is this count's or later).
        let taken = self.descs_taken.load(Ordering::Acquire);
        if head >= taken {
            return true;
        }
        let last = self.last_job.load(Ordering::Relaxed);
        let (slot, seq) = ((last >> 32) as usize, last as u32);
        head + 1 == taken
            && ring
                .completions
                .get(slot)
                .is_some_and(|c| c.done_seq.load(Ordering::Relaxed).wrapping_sub(seq) as i32 >= 0)
    }

    /// Job ids taken so far: every job submitted before this call has an id below it.
    pub fn jobs_taken(&self) -> u64 {
        // Acquire: pairs with the store in `submit`; a job submitted before (in happens-before
        // order) is counted.
        self.jobs_taken.load(Ordering::Acquire)
    }

    /// Makes the ring ready for a restarted GPU side (see [`Producer::restart`]) once no
    /// reservation is being copied; returns the descriptor index it resumes at.
    pub fn restart(&self, ring: &Ring) -> Result<u64> {
        let mut p = self.lock();
        // Acquire: pairs with `published`; while the mutex is held no reservation is added.
        Waiter::new(COPY_WAIT).until(
            || self.copying.load(Ordering::Acquire) == 0,
            &|| Ok(()),
            "submitters to finish copying records",
        )?;
        Ok(p.restart(ring, &mut self.slots()))
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What became of `job`: `None` while it runs.
    pub fn outcome(&self, ring: &Ring, job: JobTicket) -> Option<Outcome> {
        self.slots().outcome(ring, job)
    }

    /// Settles what failed submits left: completes orphans whose slot is free, and publishes
    /// the closes owed for split jobs that failed between chunks, as far as descriptors are
    /// free now. Skipped when another thread holds the mutex (it may be waiting for the GPU;
    /// every submit and every job-slot wait retries).
    fn settle(&self, ring: &Ring) {
        // Relaxed: a stale `false` only defers the work to the next call.
        if !self.unsettled.load(Ordering::Relaxed) {
            return;
        }
        let closes = match self.producer.try_lock() {
            Ok(mut p) => {
                p.settle_orphans(ring, &mut self.slots());
                let closes = p.take_closes(ring);
                if let Some(&(_, job)) = closes.last() {
                    self.handed_out(&p, job);
                }
                self.unsettled.store(p.owes_settling(), Ordering::Relaxed);
                // Relaxed: as in `reserve`.
                self.copying
                    .fetch_add(closes.len() as u32, Ordering::Relaxed);
                closes
            }
            Err(_) => return,
        };
        for (desc, job) in closes {
            // A close carries no records; its -1 releases the split guard of the job's first
            // chunk, so the job completes once the tasks it did publish have run.
            let fields = DescFields {
                records: Records::Inline(&[]),
                kind: 0,
                count: 0,
                job,
                adjust: -1,
            };
            publish(ring, desc, fields);
            self.published();
        }
    }

    /// Submits `submission` as one job: takes a job slot, waits for it, reserves descriptors
    /// (and arena space), copies and publishes. `None` for a submission without records
    /// (nothing to wait for). Waits at most as long as `wait` allows, ending early when
    /// `health` fails.
    pub fn submit(
        &self,
        ring: &Ring,
        arena: &impl Arena,
        submission: Submission,
        wait: &mut Waiter,
        health: Health,
    ) -> Result<Option<JobTicket>> {
        let Wire {
            kind,
            record_size,
            bytes,
            extra,
        } = submission.wire();
        if record_size == 0 {
            return Err(Error::Config(
                "records of 0 bytes cannot be submitted".into(),
            ));
        }
        let count = bytes.len() / record_size;
        if count == 0 {
            return Ok(None);
        }
        self.settle(ring);
        // Each lock is for one step, released at once: the waits between the steps run without
        // the mutex, and no guard may outlive its statement (a second lock() would deadlock).
        let (job, per_chunk) = {
            let mut p = self.lock();
            let per_chunk = (p.max_chunk_bytes() as usize / record_size).min(u32::MAX as usize);
            if per_chunk == 0 {
                return Err(Error::Config(format!(
                    "a {record_size}-byte record is larger than an arena chunk ({} bytes)",
                    p.max_chunk_bytes()
                )));
            }
            let job = p.take_job(ring);
            // Release: see `jobs_taken`.
            self.jobs_taken.store(p.jobs_taken(), Ordering::Release);
            (job, per_chunk)
        };
        // A slot whose previous job was orphaned, or is owed a close, is freed by settling
        // while we wait.
        let settle_then_check = || {
            self.settle(ring);
            health()
        };
        if let Err(e) = wait_job_slot(ring, job, wait, &settle_then_check) {
            self.failed(job, false);
            return Err(e);
        }
        // The slot is the job's now: the previous job's outcome moves to the history first.
        self.slots().hand_over(ring, job);
        wait.slot_owned();
        if travels_inline(bytes.len(), record_size) {
            // Few small records travel in the descriptor itself: the GPU reads them with the
            // descriptor in one PCIe round trip, and no arena space is taken or given back.
            let t = match self.reserve(ring, wait, health, job, |p| p.try_reserve_inline(ring, job))
            {
                Ok(t) => t,
                Err(e) => {
                    self.failed(job, false);
                    return Err(e);
                }
            };
            let fields = DescFields {
                records: Records::Inline(bytes),
                kind,
                count: count as u32,
                job,
                adjust: extra as i32,
            };
            publish(ring, t.desc, fields);
            self.published();
            return Ok(Some(job));
        }
        let chunks = count.div_ceil(per_chunk);
        for (i, chunk) in bytes.chunks(per_chunk * record_size).enumerate() {
            let bytes = chunk.len() as u64;
            let reserved = self.reserve(ring, wait, health, job, |p| {
                p.try_reserve_chunk(ring, job, bytes)
            });
            let t = match reserved {
                Ok(t) => t,
                // Nothing of the job was published yet: an orphan, settled later. A job that
                // failed between chunks holds its split guard on the GPU: it is owed a close.
                Err(e) => {
                    self.failed(job, i > 0);
                    return Err(e);
                }
            };
            // SAFETY: reserve_chunk handed us [offset, offset + len) of the arena exclusively
            // until the GPU marks this descriptor read, which happens only after publish; a
            // restart waits for our publish before it hands the arena out again.
            let records = unsafe { arena.copy_in(t.offset, chunk) };
            // A job split over several descriptors holds one extra count from its first chunk
            // to its last, so it cannot complete between chunks.
            let adjust = match (i == 0, i + 1 == chunks) {
                (true, false) => 1,
                (false, true) => -1,
                _ => 0,
            } + if i == 0 { extra as i32 } else { 0 };
            let fields = DescFields {
                records: Records::Arena(records),
                kind,
                count: (chunk.len() / record_size) as u32,
                job,
                adjust,
            };
            publish(ring, t.desc, fields);
            self.published();
        }
        Ok(Some(job))
    }

    /// Records that `job`'s submit failed: an orphan if nothing of it was published, else
    /// (`published`: a split job with chunks out) owed a close.
    fn failed(&self, job: JobTicket, published: bool) {
        let mut p = self.lock();
        if published {
            p.owe_close(job);
        } else {
            p.orphan(job);
        }
        self.unsettled.store(p.owes_settling(), Ordering::Relaxed);
    }

    /// The producer, for tests that drive it step by step.
    #[cfg(test)]
    pub fn producer(&self) -> MutexGuard<'_, Producer> {
        self.lock()
    }
}

/// Host memory standing in for the mapped arena, in words (tests and loom): the address a
/// descriptor carries is the byte offset.
#[cfg(test)]
pub(crate) struct HostArena(Vec<super::AtomicU32>);

#[cfg(test)]
impl HostArena {
    pub fn new(words: usize) -> HostArena {
        HostArena((0..words).map(|_| super::AtomicU32::new(0)).collect())
    }

    /// Word `i` as the GPU would read it after acquiring its descriptor.
    pub fn word(&self, i: usize) -> u32 {
        self.0[i].load(super::Ordering::Relaxed)
    }
}

#[cfg(test)]
impl Arena for HostArena {
    unsafe fn copy_in(&self, offset: u64, bytes: &[u8]) -> u64 {
        for (i, w) in bytes.chunks(4).enumerate() {
            let v = u32::from_le_bytes(w.try_into().expect("records of whole words"));
            // Relaxed: publish's release stores order these before the descriptor.
            self.0[offset as usize / 4 + i].store(v, super::Ordering::Relaxed);
        }
        offset
    }
}
