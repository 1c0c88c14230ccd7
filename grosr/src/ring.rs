//! The host side of the host → GPU submission protocol (cuda/README.md, "Submitting").
//!
//! Mapped host memory holds a ring of descriptors, a done flag per descriptor, a completion slot
//! per job and a byte arena for records. A producer (behind the runtime's mutex) reserves a job
//! slot, a descriptor and arena space; the records are copied and the descriptor published with
//! one release store, outside the mutex, so many host threads copy at once. The GPU's ingest warp
//! consumes descriptors in order and says, per descriptor, when it has read the records, which is
//! when the arena space may be reused.
//!
//! The cells are atomics (std, or loom's under `cfg(loom)`, where `tests::loom_*` model-check the
//! publish/consume protocol with a host thread standing in for the GPU).

use std::collections::VecDeque;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, Result};

/// A job slot's error when its job was abandoned by the host (stop, or a failed submit); the
/// GPU never produces it.
pub(crate) const ABANDONED: i32 = i32::MIN;

/// Alignment of every record slice in the arena.
pub(crate) const ARENA_ALIGN: u64 = 16;

/// Cells in one descriptor (`layout::DESC_CELLS`; fewer under loom, to keep the model small).
#[cfg(not(loom))]
pub(crate) const DESC_CELLS: usize = crate::layout::DESC_CELLS;
#[cfg(loom)]
pub(crate) const DESC_CELLS: usize = 9;

/// Payload word of each descriptor field (C: `grosr::DESC_*`). Words from [`DESC_INLINE_FIRST`]
/// on carry the records themselves when [`DESC_INLINE`] is 1.
pub(crate) const DESC_KIND: usize = 0;
pub(crate) const DESC_COUNT: usize = 1;
pub(crate) const DESC_JOB_SLOT: usize = 2;
pub(crate) const DESC_JOB_SEQ: usize = 3;
pub(crate) const DESC_ADJUST: usize = 4;
pub(crate) const DESC_RECORDS_LO: usize = 5;
pub(crate) const DESC_RECORDS_HI: usize = 6;
pub(crate) const DESC_INLINE: usize = 7;
pub(crate) const DESC_INLINE_FIRST: usize = 8;
/// The most record bytes a descriptor carries inline.
pub(crate) const INLINE_BYTES: usize = (DESC_CELLS - DESC_INLINE_FIRST) * 4;

/// Whether a job of `bytes` of records of `record_size` bytes travels inline in its descriptor:
/// it fits, and records are whole 32-bit words (the GPU shuffles them out word by word).
pub(crate) fn travels_inline(bytes: usize, record_size: usize) -> bool {
    bytes <= INLINE_BYTES && record_size % 4 == 0
}

/// A descriptor as atomics; same layout as `layout::Desc` / C `grosr::Desc`. Each cell is
/// `payload | tag << 32` with `tag = index + 1` and is written by one 8-byte store, so the GPU,
/// which loads all cells at once (one PCIe round trip), knows the descriptor is whole when every
/// cell carries the tag: no separate flag to poll first, no second round trip for the fields.
#[repr(C)]
pub(crate) struct DescCells {
    pub cells: [AtomicU64; DESC_CELLS],
}

impl Default for DescCells {
    fn default() -> DescCells {
        DescCells {
            cells: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl DescCells {
    /// The payload words if every cell carries `tag`, else `None` (what the GPU's ingest does).
    #[cfg(test)]
    pub fn read(&self, tag: u32) -> Option<[u32; DESC_CELLS]> {
        let mut words = [0u32; DESC_CELLS];
        for (w, c) in words.iter_mut().zip(&self.cells) {
            // Acquire: pairs with the publisher's release; records in the arena come before it.
            let v = c.load(Ordering::Acquire);
            if (v >> 32) as u32 != tag {
                return None;
            }
            *w = v as u32;
        }
        Some(words)
    }
}

/// A job slot's completion as atomics; same layout as `layout::Completion`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct CompletionCells {
    pub done_seq: AtomicU32,
    pub error: AtomicI32,
    pub error_kind: AtomicU32,
    pub pad: AtomicU32,
}

/// The mapped cells the protocol uses.
pub(crate) struct Ring<'a> {
    /// Descriptors consumed by the GPU (`HostCtl::desc_head`).
    pub desc_head: &'a AtomicU64,
    pub descs: &'a [DescCells],
    /// Per descriptor: index + 1 once the GPU has read its records.
    pub desc_done: &'a [AtomicU32],
    pub completions: &'a [CompletionCells],
}

/// A job's identity: slot `id % job_slots`, completion sequence `id / job_slots + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JobTicket {
    pub id: u64,
    pub slot: u32,
    pub seq: u32,
}

/// One chunk's reservation: descriptor index and arena byte offset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkTicket {
    pub desc: u64,
    pub offset: u64,
}

/// Where a descriptor's records are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Records<'r> {
    /// At this device address (the mapped arena).
    Arena(u64),
    /// In the descriptor itself: at most [`INLINE_BYTES`], a multiple of 4.
    Inline(&'r [u8]),
}

/// What a descriptor says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DescFields<'r> {
    pub records: Records<'r>,
    pub kind: u32,
    pub count: u32,
    pub job: JobTicket,
    pub adjust: i32,
}

impl DescFields<'_> {
    /// The descriptor's payload words.
    pub fn words(&self) -> [u32; DESC_CELLS] {
        let mut w = [0u32; DESC_CELLS];
        w[DESC_KIND] = self.kind;
        w[DESC_COUNT] = self.count;
        w[DESC_JOB_SLOT] = self.job.slot;
        w[DESC_JOB_SEQ] = self.job.seq;
        w[DESC_ADJUST] = self.adjust as u32;
        match self.records {
            Records::Arena(addr) => {
                w[DESC_RECORDS_LO] = addr as u32;
                w[DESC_RECORDS_HI] = (addr >> 32) as u32;
            }
            Records::Inline(bytes) => {
                w[DESC_INLINE] = 1;
                for (dst, src) in w[DESC_INLINE_FIRST..].iter_mut().zip(bytes.chunks(4)) {
                    let mut b = [0u8; 4];
                    b[..src.len()].copy_from_slice(src);
                    *dst = u32::from_le_bytes(b);
                }
            }
        }
        w
    }
}

/// The producer's bookkeeping; lives behind a mutex, reservations only (copies happen outside).
#[derive(Debug)]
pub(crate) struct Producer {
    next_desc: u64,
    next_job: u64,
    arena_len: u64,
    /// Bytes ever reserved / ever released, as running offsets (position = offset % arena_len).
    reserved: u64,
    released: u64,
    /// Descriptors whose records still occupy the arena, with the running offset their space ends at.
    in_flight: VecDeque<(u64, u64)>,
    /// Jobs taken but never published (their submit failed): the host completes them itself
    /// once their slot's previous job is done, so the slot is not blocked forever.
    orphans: Vec<JobTicket>,
}

/// Why a wait stops early: the GPU side is gone.
pub(crate) type Health<'h> = &'h dyn Fn() -> Result<()>;

impl Producer {
    /// A producer for a ring whose GPU side starts at descriptor `first_desc` and job `first_job`.
    pub fn new(arena_len: u64, first_desc: u64, first_job: u64) -> Producer {
        Producer {
            next_desc: first_desc,
            next_job: first_job,
            arena_len,
            reserved: 0,
            released: 0,
            in_flight: VecDeque::new(),
            orphans: Vec::new(),
        }
    }

    /// The next descriptor index (the GPU resumes there after a restart).
    pub fn next_desc(&self) -> u64 {
        self.next_desc
    }

    /// The next job id.
    pub fn next_job(&self) -> u64 {
        self.next_job
    }

    /// The largest chunk of records one descriptor may carry.
    pub fn max_chunk_bytes(&self) -> u64 {
        (self.arena_len / 4) & !(ARENA_ALIGN - 1)
    }

    /// Takes the next job id. Call [`wait_job_slot`] (without the producer's lock held: the job
    /// it waits for may belong to a thread that needs the lock to finish submitting) before use.
    pub fn take_job(&mut self, ring: &Ring) -> JobTicket {
        let slots = ring.completions.len() as u64;
        let id = self.next_job;
        self.next_job += 1;
        JobTicket {
            id,
            slot: (id % slots) as u32,
            seq: (id / slots + 1) as u32,
        }
    }

    /// Records that `job` will never be published (its submit failed before any descriptor).
    pub fn orphan(&mut self, job: JobTicket) {
        self.orphans.push(job);
    }

    /// Completes, as abandoned, every orphan whose slot has finished the job before it.
    pub fn settle_orphans(&mut self, ring: &Ring) {
        self.orphans.retain(|o| {
            let c = &ring.completions[o.slot as usize];
            if c.done_seq.load(Ordering::Acquire) != o.seq.wrapping_sub(1) {
                return true;
            }
            c.error.store(ABANDONED, Ordering::Relaxed);
            // Release: the error is visible before the slot reads as done.
            c.done_seq.store(o.seq, Ordering::Release);
            false
        });
    }

    /// Reserves a descriptor whose records travel inline (waiting for the GPU to free one).
    pub fn reserve_inline(
        &mut self,
        ring: &Ring,
        wait: &mut Waiter,
        health: Health,
    ) -> Result<ChunkTicket> {
        let desc = self.wait_desc(ring, wait, health)?;
        self.next_desc += 1;
        Ok(ChunkTicket { desc, offset: 0 })
    }

    /// Waits until the next descriptor's slot is free: the ingest warp has read its last use.
    fn wait_desc(&self, ring: &Ring, wait: &mut Waiter, health: Health) -> Result<u64> {
        let cap = ring.descs.len() as u64;
        let desc = self.next_desc;
        // Acquire: pairs with the ingest warp's store of desc_head, made after its loads of
        // slot desc % cap (and a load of a later write would have seen a wrong tag).
        wait.until(
            || ring.desc_head.load(Ordering::Acquire) + cap > desc,
            health,
            "a free descriptor",
        )?;
        Ok(desc)
    }

    /// Reserves a descriptor and `bytes` of arena space (waiting for the GPU to free either).
    pub fn reserve_chunk(
        &mut self,
        ring: &Ring,
        bytes: u64,
        wait: &mut Waiter,
        health: Health,
    ) -> Result<ChunkTicket> {
        let bytes = bytes.next_multiple_of(ARENA_ALIGN);
        if bytes > self.max_chunk_bytes() {
            return Err(Error::Config(format!(
                "a chunk of {bytes} B exceeds the arena's limit"
            )));
        }
        let cap = ring.descs.len() as u64;
        let desc = self.wait_desc(ring, wait, health)?;
        // Space never wraps inside a chunk: skip the arena's tail when the chunk does not fit there.
        let pos = self.reserved % self.arena_len;
        let start = if pos + bytes > self.arena_len {
            self.reserved + (self.arena_len - pos)
        } else {
            self.reserved
        };
        let end = start + bytes;
        loop {
            self.reclaim(ring);
            if end - self.released <= self.arena_len {
                break;
            }
            let (front, _) = *self
                .in_flight
                .front()
                .expect("arena full implies chunks in flight");
            let cell = &ring.desc_done[(front % cap) as usize];
            wait.until(
                || cell.load(Ordering::Acquire) == (front + 1) as u32,
                health,
                "arena space",
            )?;
        }
        self.reserved = end;
        self.in_flight.push_back((desc, end));
        self.next_desc += 1;
        Ok(ChunkTicket {
            desc,
            offset: start % self.arena_len,
        })
    }

    /// Releases the arena space of every leading descriptor whose records the GPU has read.
    fn reclaim(&mut self, ring: &Ring) {
        let cap = ring.descs.len() as u64;
        while let Some(&(desc, end)) = self.in_flight.front() {
            // Acquire: the GPU's loads of these records happened before its release of this flag.
            if ring.desc_done[(desc % cap) as usize].load(Ordering::Acquire) != (desc + 1) as u32 {
                break;
            }
            self.released = end;
            self.in_flight.pop_front();
        }
    }
}

/// Waits until the previous job of `job`'s slot has completed, so the slot is `job`'s.
pub(crate) fn wait_job_slot(
    ring: &Ring,
    job: JobTicket,
    wait: &mut Waiter,
    health: Health,
) -> Result<()> {
    let cell = &ring.completions[job.slot as usize];
    // Acquire: pairs with the GPU's release of done_seq; the slot's previous job is over.
    wait.until(
        || cell.done_seq.load(Ordering::Acquire) == job.seq.wrapping_sub(1),
        health,
        "a free job slot",
    )
}

/// Publishes descriptor `desc`: every cell gets its payload word and the tag `desc + 1`, each in
/// one 8-byte store with release, so the ingest warp (one acquire load per cell) sees the
/// descriptor whole only when all cells carry the tag, and then also the records copied into the
/// arena before this call.
pub(crate) fn publish(ring: &Ring, desc: u64, f: DescFields) {
    debug_assert!(match f.records {
        Records::Inline(b) => b.len() <= INLINE_BYTES && b.len() % 4 == 0,
        Records::Arena(_) => true,
    });
    let d = &ring.descs[(desc % ring.descs.len() as u64) as usize];
    let tag = ((desc + 1) as u32 as u64) << 32;
    for (cell, word) in d.cells.iter().zip(f.words()) {
        // Release: orders the arena's records (and, on x86, the cells before it) first.
        cell.store(tag | word as u64, Ordering::Release);
    }
}

/// The outcome of a finished job: `(error, error_kind)`, `None` while it runs.
pub(crate) fn job_outcome(ring: &Ring, job: JobTicket) -> Option<(i32, u32)> {
    let c = &ring.completions[job.slot as usize];
    // Acquire: pairs with the GPU's st.release.sys of done_seq (error fields written before it).
    let done = c.done_seq.load(Ordering::Acquire);
    // Sequences wrap; "done" means the slot has reached this job or a later one.
    if (done.wrapping_sub(job.seq) as i32) < 0 {
        return None;
    }
    Some((
        c.error.load(Ordering::Relaxed),
        c.error_kind.load(Ordering::Relaxed),
    ))
}

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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// Host memory laid out like the mapped block, for a thread that stands in for the GPU.
    struct FakeShared {
        desc_head: AtomicU64,
        descs: Vec<DescCells>,
        desc_done: Vec<AtomicU32>,
        completions: Vec<CompletionCells>,
    }

    impl FakeShared {
        fn new(descs: usize, jobs: usize) -> Arc<FakeShared> {
            Arc::new(FakeShared {
                desc_head: AtomicU64::new(0),
                descs: (0..descs).map(|_| DescCells::default()).collect(),
                desc_done: (0..descs).map(|_| AtomicU32::new(0)).collect(),
                completions: (0..jobs).map(|_| CompletionCells::default()).collect(),
            })
        }
        fn ring(&self) -> Ring<'_> {
            Ring {
                desc_head: &self.desc_head,
                descs: &self.descs,
                desc_done: &self.desc_done,
                completions: &self.completions,
            }
        }
    }

    /// The GPU's ingest and completion, on a host thread: reads descriptors in order, "runs" each
    /// record by summing it into `sums` (records are u32 values), completes jobs.
    fn fake_device(
        shared: Arc<FakeShared>,
        arena: Arc<Vec<AtomicU32>>,
        stop: Arc<AtomicBool>,
        sums: Arc<Vec<AtomicU64>>,
    ) {
        let cap = shared.descs.len() as u64;
        let mut head = 0u64;
        let mut pending = vec![0i64; shared.completions.len()];
        while !stop.load(Ordering::Relaxed) {
            let Some(w) = shared.descs[(head % cap) as usize].read((head + 1) as u32) else {
                std::thread::yield_now();
                continue;
            };
            let (count, slot, seq) = (w[DESC_COUNT], w[DESC_JOB_SLOT], w[DESC_JOB_SEQ]);
            let adjust = w[DESC_ADJUST] as i32;
            let records = w[DESC_RECORDS_LO] as u64 | (w[DESC_RECORDS_HI] as u64) << 32;
            let inline = w[DESC_INLINE] == 1;
            shared.desc_head.store(head + 1, Ordering::Release);
            for i in 0..count as usize {
                let v = if inline {
                    w[DESC_INLINE_FIRST + i]
                } else {
                    arena[records as usize / 4 + i].load(Ordering::Relaxed)
                };
                sums[slot as usize].fetch_add(v as u64, Ordering::Relaxed);
            }
            if !inline {
                shared.desc_done[(head % cap) as usize].store((head + 1) as u32, Ordering::Release);
            }
            // Count the records in, run them (above), count them out: what remains is the
            // split-job guard, so the job completes with its last chunk.
            pending[slot as usize] += count as i64 + adjust as i64 - count as i64;
            if pending[slot as usize] == 0 {
                shared.completions[slot as usize]
                    .done_seq
                    .store(seq, Ordering::Release);
            }
            head += 1;
        }
    }

    fn submit(
        producer: &std::sync::Mutex<Producer>,
        shared: &FakeShared,
        arena: &[AtomicU32],
        values: &[u32],
    ) -> JobTicket {
        let ring = shared.ring();
        let ok: Health = &|| Ok(());
        let mut w = Waiter::new(Duration::from_secs(20));
        let job = producer.lock().unwrap().take_job(&ring);
        wait_job_slot(&ring, job, &mut w, ok).unwrap();
        if values.len() * 4 <= INLINE_BYTES {
            let t = producer
                .lock()
                .unwrap()
                .reserve_inline(&ring, &mut w, ok)
                .unwrap();
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let fields = DescFields {
                records: Records::Inline(&bytes),
                kind: 0,
                count: values.len() as u32,
                job,
                adjust: 0,
            };
            publish(&ring, t.desc, fields);
            return job;
        }
        let max = (producer.lock().unwrap().max_chunk_bytes() / 4) as usize;
        let chunks: Vec<&[u32]> = values.chunks(max).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let t = producer
                .lock()
                .unwrap()
                .reserve_chunk(&ring, (chunk.len() * 4) as u64, &mut w, ok)
                .unwrap();
            for (j, v) in chunk.iter().enumerate() {
                arena[(t.offset / 4) as usize + j].store(*v, Ordering::Relaxed);
            }
            let adjust = match (i == 0, i + 1 == chunks.len()) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => -1,
                (false, false) => 0,
            };
            publish(
                &ring,
                t.desc,
                DescFields {
                    records: Records::Arena(t.offset),
                    kind: 0,
                    count: chunk.len() as u32,
                    job,
                    adjust,
                },
            );
        }
        job
    }

    /// `threads` host threads submit `jobs` jobs each (values `values(thread, job)`) through a
    /// ring of `descs` descriptors and `slots` job slots, waiting for each, while a host thread
    /// stands in for the GPU; every value must arrive exactly once.
    fn submit_from_threads(
        descs: usize,
        slots: usize,
        arena_words: usize,
        threads: u32,
        jobs: u32,
        values: impl Fn(u32, u32) -> Vec<u32> + Sync,
    ) {
        let shared = FakeShared::new(descs, slots);
        let arena: Arc<Vec<AtomicU32>> =
            Arc::new((0..arena_words).map(|_| AtomicU32::new(0)).collect());
        let producer = std::sync::Mutex::new(Producer::new(arena_words as u64 * 4, 0, 0));
        let stop = Arc::new(AtomicBool::new(false));
        let sums: Arc<Vec<AtomicU64>> = Arc::new((0..slots).map(|_| AtomicU64::new(0)).collect());
        let dev = {
            let (s, a, st, su) = (shared.clone(), arena.clone(), stop.clone(), sums.clone());
            std::thread::spawn(move || fake_device(s, a, st, su))
        };
        let total: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let (shared, arena, producer, values) = (&shared, &arena, &producer, &values);
                    s.spawn(move || {
                        let mut expect = 0u64;
                        for j in 0..jobs {
                            let values = values(t, j);
                            expect += values.iter().map(|&v| v as u64).sum::<u64>();
                            let job = submit(producer, shared, arena, &values);
                            let ring = shared.ring();
                            let mut w = Waiter::new(Duration::from_secs(20));
                            w.until(|| job_outcome(&ring, job).is_some(), &|| Ok(()), "job")
                                .unwrap();
                        }
                        expect
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        stop.store(true, Ordering::Relaxed);
        dev.join().unwrap();
        assert_eq!(
            sums.iter().map(|s| s.load(Ordering::Relaxed)).sum::<u64>(),
            total
        );
    }

    #[test]
    fn many_threads_submit_and_every_record_arrives_once() {
        // 4 threads × 50 jobs of up to 300 values (several chunks each: the arena holds 256 words).
        submit_from_threads(8, 4, 256, 4, 50, |t, j| {
            (0..1 + (t * 37 + j * 11) % 300)
                .map(|i| i + t + 1)
                .collect()
        });
    }

    #[test]
    fn small_jobs_of_whole_words_travel_inline_and_others_through_the_arena() {
        assert_eq!(INLINE_BYTES, 96);
        assert!(travels_inline(16, 16), "a graph launch");
        assert!(travels_inline(96, 48), "two 48-byte records");
        assert!(travels_inline(24 * 4, 4), "24 one-word records");
        assert!(!travels_inline(97 + 3, 4), "past the cells");
        assert!(!travels_inline(144, 48), "three 48-byte records");
        assert!(
            !travels_inline(6, 6),
            "records of 6 bytes are not whole words"
        );
    }

    #[test]
    fn a_descriptor_reads_whole_only_when_every_cell_carries_its_tag() {
        let shared = FakeShared::new(2, 1);
        let ring = shared.ring();
        let job = JobTicket {
            id: 0,
            slot: 0,
            seq: 1,
        };
        let record: Vec<u8> = (1..=12u8).collect();
        let fields = DescFields {
            records: Records::Inline(&record),
            kind: 3,
            count: 1,
            job,
            adjust: 0,
        };
        publish(&ring, 2, fields);
        let w = ring.descs[0].read(3).expect("published whole");
        assert_eq!(w, fields.words());
        assert_eq!(
            (w[DESC_KIND], w[DESC_INLINE], w[DESC_INLINE_FIRST + 2]),
            (3, 1, u32::from_le_bytes([9, 10, 11, 12]))
        );
        assert_eq!(ring.descs[0].read(1), None, "an older lap's tag");
        // A cell still holding the previous lap (a publish the GPU saw half of) is not whole.
        ring.descs[0].cells[DESC_CELLS - 1].store(1 << 32, Ordering::Relaxed);
        assert_eq!(ring.descs[0].read(3), None);
        // An arena descriptor carries the address and no inline flag.
        let f = DescFields {
            records: Records::Arena(0x1234_5678_9abc),
            ..fields
        };
        let w = f.words();
        assert_eq!(
            (w[DESC_RECORDS_LO], w[DESC_RECORDS_HI], w[DESC_INLINE]),
            (0x5678_9abc, 0x1234, 0)
        );
    }

    #[test]
    fn forty_threads_of_small_jobs_all_arrive_with_few_descriptors_and_job_slots() {
        // Mostly inline jobs (as graph launches are), more threads than descriptors or job
        // slots: reservations, slot waits and the in-order device must never deadlock.
        submit_from_threads(16, 8, 1024, 40, 25, |t, j| {
            // 1..=24 values inline, sometimes 40 through the arena.
            let n = if (t + j) % 7 == 0 {
                40
            } else {
                1 + (t * 5 + j) % 24
            };
            (0..n).map(|i| i + t + j).collect()
        });
    }

    #[test]
    fn a_stalled_device_makes_submit_time_out_and_health_errors_end_waits() {
        let shared = FakeShared::new(2, 2);
        let ring = shared.ring();
        let mut p = Producer::new(1024, 0, 0);
        let ok: Health = &|| Ok(());
        let mut w = Waiter::new(Duration::from_millis(50));
        // Two descriptors fit; the third waits for a device that never consumes: a timeout.
        for _ in 0..2 {
            p.reserve_chunk(&ring, 16, &mut w, ok).unwrap();
        }
        assert!(matches!(
            p.reserve_chunk(&ring, 16, &mut w, ok),
            Err(Error::Timeout(_, "a free descriptor"))
        ));
        let dead: Health = &|| Err(Error::Stopped);
        let mut w = Waiter::new(Duration::from_secs(60));
        assert_eq!(
            p.reserve_chunk(&ring, 16, &mut w, dead).unwrap_err(),
            Error::Stopped
        );
        // Job slots: slot 0's first job is free; its second needs the first to complete.
        let mut w = Waiter::new(Duration::from_millis(20));
        let j0 = p.take_job(&ring);
        assert_eq!((j0.slot, j0.seq), (0, 1));
        wait_job_slot(&ring, j0, &mut w, ok).unwrap();
        let j1 = p.take_job(&ring);
        wait_job_slot(&ring, j1, &mut w, ok).unwrap();
        let j2 = p.take_job(&ring);
        assert_eq!((j2.slot, j2.seq), (0, 2));
        assert!(matches!(
            wait_job_slot(&ring, j2, &mut w, ok),
            Err(Error::Timeout(_, "a free job slot"))
        ));
        ring.completions[0].done_seq.store(1, Ordering::Release);
        wait_job_slot(&ring, j2, &mut w, ok).unwrap();
    }

    #[test]
    fn arena_space_is_reused_only_after_the_device_read_it_and_never_wraps_inside_a_chunk() {
        let shared = FakeShared::new(16, 2);
        let ring = shared.ring();
        let mut p = Producer::new(256, 0, 0);
        let ok: Health = &|| Ok(());
        let mut w = Waiter::new(Duration::from_millis(20));
        assert_eq!(p.max_chunk_bytes(), 64);
        let offsets: Vec<u64> = (0..4)
            .map(|_| p.reserve_chunk(&ring, 48, &mut w, ok).unwrap().offset)
            .collect();
        assert_eq!(offsets, vec![0, 48, 96, 144]);
        // 192 + 64 = 256 fits exactly; a further 64 must wait for descriptor 0 to be read.
        assert_eq!(p.reserve_chunk(&ring, 64, &mut w, ok).unwrap().offset, 192);
        assert!(p.reserve_chunk(&ring, 64, &mut w, ok).is_err());
        ring.desc_done[0].store(1, Ordering::Release);
        // 48 bytes free at the start but 64 needed: still waits (no wrap inside a chunk).
        assert!(p.reserve_chunk(&ring, 64, &mut w, ok).is_err());
        ring.desc_done[1].store(2, Ordering::Release);
        assert_eq!(p.reserve_chunk(&ring, 64, &mut w, ok).unwrap().offset, 0);
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::*;
    use loom::sync::Arc;

    /// The publish → ingest → done protocol with a ring of 2 descriptors and 3 publishes: the
    /// "device" must see every descriptor's fields whole, in order, and the producer must never
    /// overwrite a descriptor the device has not consumed.
    #[test]
    fn loom_publish_consume() {
        // One descriptor slot and two publishes: the second reuses the slot, so it must wait for
        // the reader's desc_head, and the reader must never take a torn descriptor. Two
        // preemptions cover both; more make a model of 9 cells a publish run for hours.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(|| {
            let shared = Arc::new((
                AtomicU64::new(0),
                [DescCells::default()],
                [AtomicU32::new(0)],
                [CompletionCells::default()],
            ));
            let dev = {
                let s = shared.clone();
                loom::thread::spawn(move || {
                    let mut seen = Vec::new();
                    for head in 0..2u64 {
                        let w = loop {
                            match s.1[0].read((head + 1) as u32) {
                                Some(w) => break w,
                                None => loom::thread::yield_now(),
                            }
                        };
                        let records = w[DESC_RECORDS_LO] as u64 | (w[DESC_RECORDS_HI] as u64) << 32;
                        let inline = (w[DESC_INLINE] == 1).then_some(w[DESC_INLINE_FIRST]);
                        seen.push((records, w[DESC_COUNT], inline));
                        s.0.store(head + 1, Ordering::Release);
                    }
                    seen
                })
            };
            let ring = Ring {
                desc_head: &shared.0,
                descs: &shared.1,
                desc_done: &shared.2,
                completions: &shared.3,
            };
            let mut p = Producer::new(1 << 20, 0, 0);
            let mut w = Waiter::new(std::time::Duration::from_secs(1));
            let job = JobTicket {
                id: 0,
                slot: 0,
                seq: 1,
            };
            // One descriptor through the arena, then one with its record inline.
            let t = p.reserve_chunk(&ring, 16, &mut w, &|| Ok(())).unwrap();
            let fields = DescFields {
                records: Records::Arena(100),
                kind: 0,
                count: 2,
                job,
                adjust: 0,
            };
            publish(&ring, t.desc, fields);
            let t = p.reserve_inline(&ring, &mut w, &|| Ok(())).unwrap();
            let record = 7u32.to_le_bytes();
            let fields = DescFields {
                records: Records::Inline(&record),
                kind: 0,
                count: 1,
                job,
                adjust: 0,
            };
            publish(&ring, t.desc, fields);
            assert_eq!(dev.join().unwrap(), vec![(100, 2, None), (0, 1, Some(7))]);
        });
    }
}
