//! The producer's bookkeeping: job ids, descriptor indices and arena space, reserved under the
//! runtime's mutex and given back as the GPU reads.

use std::collections::VecDeque;

use super::wait::{Health, Waiter};
use super::{ABANDONED, ARENA_ALIGN, JobTicket, Ordering, Ring};
use crate::error::{Error, Result};

/// One chunk's reservation: descriptor index and arena byte offset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkTicket {
    pub desc: u64,
    pub offset: u64,
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

    /// Makes the producer and the ring ready for a restarted GPU side: every job slot whose
    /// latest job never completed is completed as abandoned (so waits on those jobs end and the
    /// slots can be reused), reservations and orphans are forgotten, and `desc_head` points at
    /// the next descriptor. Returns that index, where the GPU resumes.
    pub fn restart(&mut self, ring: &Ring) -> u64 {
        let slots = ring.completions.len() as u64;
        let next = self.next_job;
        for (s, c) in ring.completions.iter().enumerate() {
            let s = s as u64;
            if next <= s {
                continue;
            }
            let latest = ((next - 1 - s) / slots + 1) as u32;
            if c.done_seq.load(Ordering::Acquire) != latest {
                c.error.store(ABANDONED, Ordering::Relaxed);
                // Release: the error is visible before the slot reads as done.
                c.done_seq.store(latest, Ordering::Release);
            }
        }
        *self = Producer::new(self.arena_len, self.next_desc, self.next_job);
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
