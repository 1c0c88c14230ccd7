//! The producer's bookkeeping: job ids, descriptor indices and arena space, reserved under the
//! runtime's mutex and given back as the GPU reads.

use std::collections::VecDeque;

use super::outcome::Slots;
use super::wait::{Health, Waiter};
use super::{ABANDONED, ARENA_ALIGN, JobTicket, Ordering, Ring};
use crate::error::{Error, Result};

/// A reservation, or what the GPU must do before it can be made.
pub(crate) type Reserved = std::result::Result<ChunkTicket, WaitFor>;

/// What a reservation waits for; waited for without the producer's mutex, so that no thread
/// waits behind another's wait for the GPU longer than its own timeout.
#[derive(Clone, Copy, Debug)]
pub(crate) enum WaitFor {
    /// Descriptor slot `index % cap` to be free: `desc_head + cap > index`.
    Desc(u64),
    /// Descriptor `index`'s records to be read (`desc_done`), giving its arena space back.
    Read(u64),
    /// The same, for the slot's sake: a later arena descriptor takes the slot only then.
    SlotRead(u64),
}

impl WaitFor {
    /// Waits until the reservation may succeed (another thread may still take it first).
    pub fn wait(self, ring: &Ring, wait: &mut Waiter, health: Health) -> Result<()> {
        let cap = ring.descs.len() as u64;
        match self {
            // Acquire: as in free_desc.
            WaitFor::Desc(index) => wait.until(
                || ring.desc_head.load(Ordering::Acquire) + cap > index,
                health,
                "a free descriptor",
            ),
            // Acquire: as in reclaim.
            WaitFor::Read(index) => wait.until(|| records_read(ring, index), health, "arena space"),
            WaitFor::SlotRead(index) => wait.until(
                || records_read(ring, index),
                health,
                "the records of the slot's last arena descriptor to be read",
            ),
        }
    }
}

/// Whether the GPU has read descriptor `desc`'s records: its `desc_done` cell says `desc + 1`,
/// or that of a later descriptor of the same slot (read after it: a later arena descriptor takes
/// the slot only once this one was read, `try_reserve_chunk`). A later lap can overwrite the
/// cell before the host looks, as inline descriptors take slots without arena space; equality
/// alone would then wait forever.
fn records_read(ring: &Ring, desc: u64) -> bool {
    let cap = ring.descs.len() as u64;
    // Acquire: the GPU's loads of these records happened before its release of this flag.
    let done = ring.desc_done[(desc % cap) as usize].load(Ordering::Acquire);
    done.wrapping_sub((desc + 1) as u32) as i32 >= 0
}

/// One chunk's reservation: descriptor index and arena byte offset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkTicket {
    pub desc: u64,
    pub offset: u64,
}

/// The producer's bookkeeping; lives behind a mutex, reservations only (copies and waits happen
/// outside).
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
    /// Split jobs whose submit failed between chunks: each still holds its split guard on the
    /// GPU and gets a close (a descriptor of no records and `adjust = -1`) when one is free.
    closes: Vec<JobTicket>,
    /// Raised by every restart; jobs of an earlier epoch get no descriptor any more.
    epoch: u32,
}

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
            closes: Vec::new(),
            epoch: 0,
        }
    }

    /// Job ids taken so far.
    pub fn jobs_taken(&self) -> u64 {
        self.next_job
    }

    /// Descriptor indices taken so far (the next one to hand out).
    pub fn descs_taken(&self) -> u64 {
        self.next_desc
    }

    /// An error unless `job` belongs to the current epoch (no restart since it was taken).
    fn current(&self, job: JobTicket) -> Result<()> {
        if job.epoch == self.epoch {
            Ok(())
        } else {
            Err(Error::Stopped)
        }
    }

    /// Makes the producer and the ring ready for a restarted GPU side, which resumes at the
    /// returned descriptor index. Call with no reservation being copied (`Submitter::restart`
    /// waits for that). Every job taken that never completed is completed as abandoned: its
    /// slot reads done at the slot's latest job (so waits end and the slots can be reused) and
    /// each abandoned job is recorded in `failures` (a handle reading its slot late must not
    /// take the latest job's outcome for its own). Reservations, orphans and closes are
    /// forgotten, and jobs taken before now get no descriptor any more (a new epoch).
    pub fn restart(&mut self, ring: &Ring, slots_state: &mut Slots) -> u64 {
        let slots = ring.completions.len() as u64;
        let next = self.next_job;
        for (s, c) in ring.completions.iter().enumerate() {
            let s = s as u64;
            if next <= s {
                continue;
            }
            // The slot's latest job: its id and sequence.
            let latest_id = (next - 1 - s) / slots * slots + s;
            let latest = (latest_id / slots + 1) as u32;
            let done = c.done_seq.load(Ordering::Acquire);
            let behind = latest.wrapping_sub(done);
            if behind == 0 || behind > u32::MAX / 2 {
                continue;
            }
            // The slot passes to its latest job, the outcome it holds (of the job at done_seq,
            // if any) going to the history first. Jobs done+1..=latest: one runs (or waits for
            // ring space), the others wait for the slot; all are abandoned. Newest first.
            let done_id = latest_id.checked_sub(u64::from(behind) * slots);
            slots_state.take(ring, s as u32, done_id, latest_id);
            for k in 0..u64::from(behind).min(super::outcome::REMEMBERED as u64) {
                match latest_id.checked_sub(k * slots) {
                    Some(id) => slots_state.abandoned(id),
                    None => break,
                }
            }
            c.error.store(ABANDONED, Ordering::Relaxed);
            // Release: the error is visible before the slot reads as done.
            c.done_seq.store(latest, Ordering::Release);
        }
        let epoch = self.epoch.wrapping_add(1);
        *self = Producer::new(self.arena_len, self.next_desc, self.next_job);
        self.epoch = epoch;
        // Before the kernel launch that reads it (the launch orders host writes before it).
        ring.desc_head.store(self.next_desc, Ordering::Release);
        self.next_desc
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
            epoch: self.epoch,
        }
    }

    /// Records that `job` will never be published (its submit failed before any descriptor).
    /// A job of an earlier epoch was completed by the restart already.
    pub fn orphan(&mut self, job: JobTicket) {
        if self.current(job).is_ok() {
            self.orphans.push(job);
        }
    }

    /// Records that split job `job` failed between chunks: it needs a close.
    pub fn owe_close(&mut self, job: JobTicket) {
        if self.current(job).is_ok() {
            self.closes.push(job);
        }
    }

    /// Whether orphans or closes wait to be settled.
    pub fn owes_settling(&self) -> bool {
        !self.orphans.is_empty() || !self.closes.is_empty()
    }

    /// Reserves a descriptor for each owed close while one is free now (no waiting); the
    /// caller publishes them.
    pub fn take_closes(&mut self, ring: &Ring) -> Vec<(u64, JobTicket)> {
        let cap = ring.descs.len() as u64;
        let mut taken = Vec::new();
        // Acquire: as in wait_desc.
        while !self.closes.is_empty()
            && ring.desc_head.load(Ordering::Acquire) + cap > self.next_desc
        {
            taken.push((self.next_desc, self.closes.remove(0)));
            self.next_desc += 1;
        }
        taken
    }

    /// Completes, as abandoned, every orphan whose slot has finished the job before it.
    pub fn settle_orphans(&mut self, ring: &Ring, slots: &mut Slots) {
        self.orphans.retain(|o| {
            let c = &ring.completions[o.slot as usize];
            if c.done_seq.load(Ordering::Acquire) != o.seq.wrapping_sub(1) {
                return true;
            }
            // The orphan owns the slot now: the previous job's outcome moves to the history.
            slots.hand_over(ring, *o);
            c.error.store(ABANDONED, Ordering::Relaxed);
            // Release: the error is visible before the slot reads as done.
            c.done_seq.store(o.seq, Ordering::Release);
            false
        });
    }

    /// Reserves a descriptor for `job` whose records travel inline, or says what to wait for
    /// first (without the producer's mutex: [`WaitFor::wait`]).
    pub fn try_reserve_inline(&mut self, ring: &Ring, job: JobTicket) -> Result<Reserved> {
        self.current(job)?;
        let desc = match self.free_desc(ring) {
            Ok(desc) => desc,
            Err(w) => return Ok(Err(w)),
        };
        self.next_desc += 1;
        Ok(Ok(ChunkTicket { desc, offset: 0 }))
    }

    /// The next descriptor index if its slot is free (the ingest warp has read its last use).
    fn free_desc(&self, ring: &Ring) -> std::result::Result<u64, WaitFor> {
        let cap = ring.descs.len() as u64;
        let desc = self.next_desc;
        // Acquire: pairs with the ingest warp's store of desc_head, made after its loads of
        // slot desc % cap (and a load of a later write would have seen a wrong tag).
        if ring.desc_head.load(Ordering::Acquire) + cap > desc {
            Ok(desc)
        } else {
            Err(WaitFor::Desc(desc))
        }
    }

    /// Reserves a descriptor and `bytes` of arena space for `job`, or says what to wait for
    /// first (without the producer's mutex: [`WaitFor::wait`]).
    pub fn try_reserve_chunk(
        &mut self,
        ring: &Ring,
        job: JobTicket,
        bytes: u64,
    ) -> Result<Reserved> {
        self.current(job)?;
        let bytes = bytes.next_multiple_of(ARENA_ALIGN);
        if bytes > self.max_chunk_bytes() {
            return Err(Error::Config(format!(
                "a chunk of {bytes} B exceeds the arena's limit"
            )));
        }
        let desc = match self.free_desc(ring) {
            Ok(desc) => desc,
            Err(w) => return Ok(Err(w)),
        };
        // The slot's earlier arena descriptors read first: the GPU keeps one read count
        // (`desc_reads`) and one `desc_done` per slot, and a range it ingested may sit in a
        // queue for long before a warp reads it. An arena descriptor in the slot meanwhile
        // would take over the count that the old range still decrements, so its records would
        // count as read before they are and their arena bytes be handed out under them.
        // (Inline descriptors touch neither: they take the slot freely, so the unread one may
        // be several laps back.)
        self.reclaim(ring);
        if let Some(prev) = self.unread_in_slot(ring, desc) {
            return Ok(Err(WaitFor::SlotRead(prev)));
        }
        // Space never wraps inside a chunk: skip the arena's tail when the chunk does not fit there.
        let pos = self.reserved % self.arena_len;
        let start = if pos + bytes > self.arena_len {
            self.reserved + (self.arena_len - pos)
        } else {
            self.reserved
        };
        let end = start + bytes;
        if end - self.released > self.arena_len {
            let (front, _) = *self
                .in_flight
                .front()
                .expect("arena full implies chunks in flight");
            return Ok(Err(WaitFor::Read(front)));
        }
        self.reserved = end;
        // The slot's done cell moves to "desc - 1 read", so that records_read's wrapping compare
        // is against a recent index: a slot that carried only inline descriptors for 2^31
        // indices would otherwise read as done for this one. Relaxed: no GPU write to the cell
        // can race (the slot's last arena descriptor was read, above, and this one is not
        // published yet), and no host thread reads it for `desc` before this reservation ends.
        ring.desc_done[(desc % ring.descs.len() as u64) as usize]
            .store(desc as u32, Ordering::Relaxed);
        self.in_flight.push_back((desc, end));
        self.next_desc += 1;
        Ok(Ok(ChunkTicket {
            desc,
            offset: start % self.arena_len,
        }))
    }

    /// [`try_reserve_chunk`](Self::try_reserve_chunk), waiting as long as `wait` allows (for
    /// tests that drive a producer without a mutex).
    #[cfg(test)]
    pub fn reserve_chunk(
        &mut self,
        ring: &Ring,
        job: JobTicket,
        bytes: u64,
        wait: &mut Waiter,
        health: Health,
    ) -> Result<ChunkTicket> {
        loop {
            match self.try_reserve_chunk(ring, job, bytes)? {
                Ok(t) => return Ok(t),
                Err(w) => w.wait(ring, wait, health)?,
            }
        }
    }

    /// The oldest arena descriptor in `desc`'s slot whose records the GPU has not read yet, of
    /// those still in flight (after a [`reclaim`](Self::reclaim)).
    fn unread_in_slot(&self, ring: &Ring, desc: u64) -> Option<u64> {
        let cap = ring.descs.len() as u64;
        let &(oldest, _) = self.in_flight.front()?;
        // The slot's earlier descriptors from the oldest one in flight on, oldest first.
        let first = oldest + (desc - oldest) % cap;
        (first..desc).step_by(cap as usize).find(|&d| {
            self.in_flight.binary_search_by_key(&d, |&(i, _)| i).is_ok() && !records_read(ring, d)
        })
    }

    /// Releases the arena space of every leading descriptor whose records the GPU has read.
    fn reclaim(&mut self, ring: &Ring) {
        while let Some(&(desc, end)) = self.in_flight.front() {
            if !records_read(ring, desc) {
                break;
            }
            self.released = end;
            self.in_flight.pop_front();
        }
    }
}

/// Waits until the previous job of `job`'s slot has completed, so the slot is `job`'s.
/// [`Error::Stopped`] if a restart completed `job` itself meanwhile (as abandoned).
pub(crate) fn wait_job_slot(
    ring: &Ring,
    job: JobTicket,
    wait: &mut Waiter,
    health: Health,
) -> Result<()> {
    let cell = &ring.completions[job.slot as usize];
    let mut abandoned = false;
    wait.until(
        || {
            // Acquire: pairs with the GPU's release of done_seq; the slot's previous job is over.
            let done = cell.done_seq.load(Ordering::Acquire);
            abandoned = done.wrapping_sub(job.seq) as i32 >= 0;
            abandoned || done == job.seq.wrapping_sub(1)
        },
        health,
        "a free job slot",
    )?;
    if abandoned {
        return Err(Error::Stopped);
    }
    Ok(())
}
