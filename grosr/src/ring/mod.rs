//! The host side of the host → GPU submission protocol, whole: reservation, chunking, the split
//! guard, orphans, closes, job slots and restarts ([`Submitter`]), on cells that a unit test, a loom model and the
//! runtime all run the same code on (cuda/README.md, "Submitting", gives the GPU's side).
//!
//! # The cells, who writes them, with which ordering
//!
//! This is one submission ring's protocol; a runtime runs several side by side, each on its own
//! cells and share of job slots (`runtime/rings.rs`), and a descriptor carries the device's
//! slot, the ring's `slot_base` plus the ring's own.
//!
//! Mapped host memory holds a ring of descriptors, a done flag per descriptor, a completion slot
//! per job and a byte arena for records ([`Ring`]; the arena is an [`Arena`]).
//!
//! - `descs[i % cap]`, descriptor `i`: written by the host, each of its cells `word | (i + 1) << 32`
//!   in one 8-byte store with **release** ([`publish`]), after the records were copied. The GPU's
//!   ingest warp consumes descriptors in index order and takes one whole when every cell carries
//!   the tag `i + 1` (acquire): no flag to poll, and a cell of an older lap just means "not yet".
//! - `desc_head`: written by the GPU with a **relaxed** system-scope store once it has loaded and
//!   used descriptor `i`'s cells (no release is needed: the values were used before the store, and
//!   a load that had seen a later write would have seen a later tag; cuda/README.md, "Ingesting");
//!   the host reuses slot `i % cap` only after reading `desc_head > i` (**acquire**). The unit and
//!   loom stand-ins for the GPU store it with release, a stronger protocol than the device's.
//! - `desc_done[i % cap]`: written `i + 1` by the GPU (**release**) once it has read the arena
//!   records of descriptor `i`; the host gives the arena space back only after reading it
//!   (**acquire**). Inline descriptors take no arena space and get no `desc_done`. The GPU's
//!   count of a slot's unread records (`desc_reads`) and its `desc_done` belong to one arena
//!   descriptor at a time, and a range can wait in a queue long after `desc_head` passed it: an
//!   arena descriptor therefore takes a slot only once the slot's earlier arena descriptors were
//!   read (`Producer::try_reserve_chunk`), while inline ones take it freely; reserving it, the
//!   host sets the cell to `i` ("`i − 1` read") itself, so that the wrapping compare of
//!   `records_read` never meets an index 2^31 old.
//! - `completions[slot]`: the GPU writes `error`, `error_kind`, then `done_seq = seq` (**release**);
//!   the host reads `done_seq` (**acquire**), then the error, holding the slots' mutex and only
//!   while the job still owns the slot (the next job is published only after it was handed
//!   the slot under that mutex; see `outcome`). The host writes a slot itself, the same way,
//!   for a job it abandons ([`ABANDONED`]: an orphan, or a job cut off by a stop).
//!
//! # One submission ([`Submitter::submit`])
//!
//! 1. Under the producer's mutex: take the next job id: slot `id % job_slots`, sequence
//!    `id / job_slots + 1`, and the producer's epoch ([`Producer::take_job`]).
//! 2. Without the mutex (the slot's previous job may belong to a thread that needs it to finish
//!    submitting): wait until the slot's `done_seq` is `seq - 1`, settling what failed submits
//!    left meanwhile (below). Then hand the slot over: under the slots' mutex, copy the previous
//!    job's failure, if any, into the history (`outcome`), where a handle that looks late finds
//!    its own outcome.
//! 3. At most [`INLINE_BYTES`] of whole-word records travel inline: under the mutex reserve a
//!    descriptor, outside it publish the records in the descriptor's cells.
//! 4. Otherwise chunks of at most a quarter of the arena: per chunk, under the mutex reserve a
//!    descriptor and arena space ([`Producer::reserve_chunk`]), outside it copy the records and
//!    publish. Many threads copy at once; the GPU still consumes descriptors in index order.
//!    The **split guard**: the first of several chunks carries `adjust = +1`, the last `-1`, so
//!    the job's count on the GPU cannot reach zero between chunks. A graph launch's tasks beyond
//!    its one record ride on the first descriptor's `adjust` too.
//! 5. A submit that fails before its first publish leaves an **orphan**: the host completes it as
//!    abandoned once its slot's previous job is done. One that fails between chunks is owed a
//!    **close**: a descriptor of no records and `adjust = -1`, published by the next submit or
//!    slot wait that finds a descriptor free; the GPU then completes the job once the tasks it
//!    did publish have run. Either way its slot is not blocked for good.
//!
//! # Restart ([`Submitter::restart`])
//!
//! A stop abandons the jobs in flight; the next start makes the ring ready for a fresh kernel.
//! Holding the mutex, it first waits (bounded) until no reservation is being copied: otherwise
//! the restarted producer would hand the same arena bytes to a new submitter, or a late publish
//! would land in a descriptor the new kernel is already past. It then completes every unfinished
//! job as abandoned (recording each in the history), and starts a new epoch: a job of an earlier
//! epoch gets no descriptor any more (its submit ends with [`Error::Stopped`](crate::Error)), nor
//! does a slot wait of one (its slot reads done past it).
//!
//! The cells are atomics (std, or loom's under `cfg(loom)`, where `loom_model` model-checks
//! [`Submitter`]'s submits, outcomes, orphans and restart against host threads standing in for
//! the GPU).

mod outcome;
mod producer;
mod submit;
mod wait;

#[cfg(all(test, loom))]
mod loom_model;
#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

pub(crate) use outcome::{Outcome, finished};
#[cfg(test)]
pub(crate) use producer::Producer;
#[cfg(test)]
#[cfg_attr(miri, allow(unused_imports))] // under Miri, ring::tests uses a plain-memory arena
pub(crate) use submit::HostArena;
pub(crate) use submit::{Arena, Submission, Submitter};
pub(crate) use wait::Waiter;

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

pub(crate) use crate::layout::{
    DESC_ADJUST, DESC_COUNT, DESC_INLINE, DESC_INLINE_FIRST, DESC_JOB_SEQ, DESC_JOB_SLOT,
    DESC_KIND, DESC_RECORDS_HI, DESC_RECORDS_LO,
};
/// The most record bytes a descriptor carries inline.
pub(crate) const INLINE_BYTES: usize = (DESC_CELLS - DESC_INLINE_FIRST) * 4;

/// Whether a job of `bytes` of records of `record_size` bytes travels inline in its descriptor:
/// it fits, and records are whole 32-bit words (the GPU shuffles them out word by word).
pub(crate) fn travels_inline(bytes: usize, record_size: usize) -> bool {
    bytes <= INLINE_BYTES && record_size % 4 == 0
}

/// A descriptor as atomics; same layout as `layout::Desc` / C `grosr::Desc` (asserted below).
/// Each cell is `payload | tag << 32` with `tag = index + 1` and is written by one 8-byte store,
/// so the GPU, which loads all cells at once (one PCIe round trip), knows the descriptor is whole
/// when every cell carries the tag: no separate flag to poll first, no second round trip for the
/// fields.
#[repr(C)]
pub(crate) struct DescCells {
    pub cell: [AtomicU64; DESC_CELLS],
}

impl Default for DescCells {
    fn default() -> DescCells {
        DescCells {
            cell: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl DescCells {
    /// The payload words if every cell carries `tag`, else `None` (what the GPU's ingest does).
    #[cfg(test)]
    pub fn read(&self, tag: u32) -> Option<[u32; DESC_CELLS]> {
        let mut words = [0u32; DESC_CELLS];
        for (w, c) in words.iter_mut().zip(&self.cell) {
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

/// A job slot's completion as atomics; same layout as `layout::Completion` (asserted below).
#[repr(C)]
#[derive(Default)]
pub(crate) struct CompletionCells {
    pub done_seq: AtomicU32,
    pub error: AtomicI32,
    pub error_kind: AtomicU32,
    pub pad: AtomicU32,
}

// The atomic views lie over the mapped C structs: same size, same offsets (under loom the
// atomics are loom's, and descriptors shorter).
#[cfg(not(loom))]
const _: () = {
    use crate::layout::{Completion, Desc};
    use std::mem::{offset_of, size_of};
    assert!(size_of::<DescCells>() == size_of::<Desc>());
    assert!(size_of::<CompletionCells>() == size_of::<Completion>());
    assert!(offset_of!(CompletionCells, done_seq) == offset_of!(Completion, done_seq));
    assert!(offset_of!(CompletionCells, error) == offset_of!(Completion, error));
    assert!(offset_of!(CompletionCells, error_kind) == offset_of!(Completion, error_kind));
};

/// The mapped cells the protocol uses: one submission ring's (a runtime has several, each with
/// its own cells, slots and [`Submitter`], read by its own ingest warp).
pub(crate) struct Ring<'a> {
    /// Descriptors consumed by the GPU (`DescHead::head`).
    pub desc_head: &'a AtomicU64,
    pub descs: &'a [DescCells],
    /// Per descriptor: index + 1 once the GPU has read its records.
    pub desc_done: &'a [AtomicU32],
    pub completions: &'a [CompletionCells],
    /// The device's index of this ring's first job slot: descriptors carry `slot_base + slot`
    /// (the device's job and completion arrays hold every ring's slots, ring after ring).
    pub slot_base: u32,
}

/// A job's identity: slot `id % job_slots`, completion sequence `id / job_slots + 1`, and the
/// producer's epoch when it was taken (a restart starts a new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JobTicket {
    pub id: u64,
    pub slot: u32,
    pub seq: u32,
    pub epoch: u32,
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
    let mut words = f.words();
    words[DESC_JOB_SLOT] += ring.slot_base;
    for (cell, word) in d.cell.iter().zip(words) {
        // Release: orders the arena's records (and, on x86, the cells before it) first.
        cell.store(tag | word as u64, Ordering::Release);
    }
}
