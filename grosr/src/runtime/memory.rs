//! Where the runtime's arrays live: the mapped host block, the arena and the device block.

use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::driver::{Context, DeviceMem, MappedMem};
use crate::error::{Error, Result};
use crate::layout::{Completion, Desc, DescHead, DevJob, HostCtl, Params, Queue, Slot};
use crate::ring::{self, CompletionCells, DescCells, Ring};

use super::builder::Config;

/// The mapped host block and the device block, and where each array lives in them.
pub(super) struct Memory {
    host: MappedMem,
    pub(super) arena: Arena,
    pub(super) device: DeviceMem,
    pub(super) params: Params,
    heads_off: usize,
    descs_off: usize,
    desc_done_off: usize,
    completions_off: usize,
    pub(super) executed_off: usize,
    /// Job slots and arena bytes of each submission ring (`rings`).
    ring_slots: u32,
    ring_arena: u64,
}

/// How `rings` submission rings share `c`'s descriptors, job slots and arena: descriptors per
/// ring (a power of two), job slots per ring, arena bytes per ring (whole `ARENA_ALIGN`s).
fn ring_shares(c: &Config, rings: u32) -> (u32, u32, u64) {
    let descs = (c.desc_capacity / rings).max(1);
    let descs = 1 << descs.ilog2();
    let slots = (c.job_slots / rings).max(1);
    let arena = (c.arena_bytes as u64 / u64::from(rings)) & !(ring::ARENA_ALIGN - 1);
    (descs, slots, arena)
}

impl Memory {
    /// The arrays for `rings` submission rings (each a [`ring_shares`] share of `c`'s sizes).
    pub(super) fn new(
        ctx: &Context,
        c: &Config,
        queues: u32,
        kinds: usize,
        rings: u32,
    ) -> Result<Memory> {
        let (ring_descs, ring_slots, ring_arena) = ring_shares(c, rings);
        let (dc, js) = ((ring_descs * rings) as usize, (ring_slots * rings) as usize);
        let heads_off = size_of::<HostCtl>();
        let descs_off = heads_off + rings as usize * size_of::<DescHead>();
        let desc_done_off = descs_off + dc * size_of::<Desc>();
        let completions_off = (desc_done_off + dc * 4).next_multiple_of(16);
        let host = MappedMem::new(ctx, completions_off + js * size_of::<Completion>())?;
        let arena = Arena::pin_aside(ctx, (ring_arena * u64::from(rings)) as usize);
        // Device block: jobs | desc_reads | executed | stop, err | queues | slots. The init kernel
        // zeroes everything from `jobs` (the block's start) to `slots` (its last array).
        let jobs_off = 0;
        let reads_off = js * size_of::<DevJob>();
        let executed_off = (reads_off + dc * 4).next_multiple_of(8);
        let flags_off = (executed_off + kinds.max(1) * 8).next_multiple_of(128);
        let queues_off = (flags_off + 128).next_multiple_of(512);
        let slots_off = queues_off + queues as usize * size_of::<Queue>();
        let total = slots_off + queues as usize * c.queue_capacity as usize * size_of::<Slot>();
        // Cleared by the init kernel at every launch (`grosr_init`), not here.
        let device = DeviceMem::uninit(ctx, total)?;
        let (h, d) = (host.device(), device.ptr());
        let params = Params {
            host: h,
            descs: h + descs_off as u64,
            desc_done: h + desc_done_off as u64,
            completions: h + completions_off as u64,
            jobs: d + jobs_off as u64,
            desc_reads: d + reads_off as u64,
            executed: d + executed_off as u64,
            queues: d + queues_off as u64,
            slots: d + slots_off as u64,
            dev_stop: d + flags_off as u64,
            dev_err: d + flags_off as u64 + 4,
            desc_heads: h + heads_off as u64,
            num_queues: queues,
            queue_cap: c.queue_capacity,
            desc_cap: ring_descs,
            job_slots: js as u32,
            num_kinds: kinds as u32,
            spin_limit: c.spin_limit,
            num_rings: rings,
            pad: 0,
        };
        Ok(Memory {
            host,
            arena,
            device,
            params,
            heads_off,
            descs_off,
            desc_done_off,
            completions_off,
            executed_off,
            ring_slots,
            ring_arena,
        })
    }

    fn ctl(&self) -> *mut HostCtl {
        self.host.host() as *mut HostCtl
    }

    /// Submission ring `r`'s cells as atomics over the mapped memory (`r` below `num_rings`).
    pub(super) fn ring(&self, r: usize) -> Ring<'_> {
        let p = self.params;
        assert!(r < p.num_rings as usize, "ring {r} of {}", p.num_rings);
        let (descs, slots) = (p.desc_cap as usize, self.ring_slots as usize);
        let base = self.host.host();
        // SAFETY: the offsets were laid out in `new` inside one live allocation, ring after
        // ring (r is in range, asserted); each array has the length given and the atomics'
        // layout of the C structs (asserted in ring); the GPU accesses the same bytes only
        // with the matching protocol.
        unsafe {
            Ring {
                desc_head: &*(base.add(self.heads_off + r * size_of::<DescHead>())
                    as *const ring::AtomicU64),
                descs: std::slice::from_raw_parts(
                    (base.add(self.descs_off) as *const DescCells).add(r * descs),
                    descs,
                ),
                desc_done: std::slice::from_raw_parts(
                    (base.add(self.desc_done_off) as *const ring::AtomicU32).add(r * descs),
                    descs,
                ),
                completions: std::slice::from_raw_parts(
                    (base.add(self.completions_off) as *const CompletionCells).add(r * slots),
                    slots,
                ),
                slot_base: (r * slots) as u32,
            }
        }
    }

    /// Bytes of the arena each submission ring has.
    pub(super) fn ring_arena_bytes(&self) -> u64 {
        self.ring_arena
    }

    /// Submission ring `r`'s slice of the arena (once pinned: [`Arena::get`]).
    pub(super) fn ring_arena(&self, r: usize) -> Result<ArenaSlice<'_>> {
        Ok(ArenaSlice {
            mem: self.arena.get()?,
            base: r as u64 * self.ring_arena,
        })
    }

    /// An atomic view of the 32-bit field of the control block at byte `offset`
    /// (`offset_of!(HostCtl, field)` of a `u32` or `i32` field).
    pub(super) fn ctl_u32(&self, offset: usize) -> &ring::AtomicU32 {
        assert!(
            offset % 4 == 0 && offset + 4 <= size_of::<HostCtl>(),
            "a 32-bit field of HostCtl"
        );
        // SAFETY: the control block lies at the start of the live mapped allocation, which
        // outlives `self`'s borrow; the field is inside it (asserted) and 4-byte aligned (the
        // allocation is page-aligned); host and GPU access it only atomically (the GPU with
        // volatile or atomic 32-bit accesses), so an atomic view is sound.
        unsafe { &*((self.ctl() as *mut u8).add(offset) as *const ring::AtomicU32) }
    }
}

/// The arena: page-locked mapped memory that carries submitted records too many for a
/// descriptor. Pinned on a thread of its own while the build goes on, and waited for by the
/// first submission that needs it (none does for jobs small enough to travel inline): pinning the
/// default 64 MiB took 22-28 ms of an H200 host's start, half of a cached start beyond CUDA's
/// context (benches/NOTES.md, "Start-up and compile time").
pub(super) struct Arena {
    ready: OnceLock<Result<MappedMem>>,
    pinning: Mutex<Option<JoinHandle<Result<MappedMem>>>>,
}

impl Arena {
    /// Starts pinning `bytes` for `ctx` on another thread (here, if no thread can be started).
    fn pin_aside(ctx: &Context, bytes: usize) -> Arena {
        let arena = Arena {
            ready: OnceLock::new(),
            pinning: Mutex::new(None),
        };
        let for_thread = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("grosr-arena".into())
            .spawn(move || MappedMem::new(&for_thread, bytes));
        match spawned {
            Ok(handle) => *arena.lock() = Some(handle),
            Err(_) => {
                let _ = arena.ready.set(MappedMem::new(ctx, bytes));
            }
        }
        arena
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<Result<MappedMem>>>> {
        self.pinning.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The arena, once pinned (waiting for that, a few milliseconds at most after a build), or
    /// why it could not be.
    pub(super) fn get(&self) -> Result<&MappedMem> {
        if let Some(r) = self.ready.get() {
            return r.as_ref().map_err(Clone::clone);
        }
        {
            let mut pinning = self.lock();
            if let Some(handle) = pinning.take() {
                let pinned = handle.join().unwrap_or_else(|_| {
                    Err(Error::Config(
                        "the thread pinning the arena panicked".into(),
                    ))
                });
                let _ = self.ready.set(pinned);
            }
        }
        match self.ready.get() {
            Some(r) => r.as_ref().map_err(Clone::clone),
            None => Err(Error::Config("the arena was never pinned".into())),
        }
    }
}

/// One submission ring's slice of the arena: the ring protocol's byte offsets are the slice's.
pub(super) struct ArenaSlice<'a> {
    mem: &'a MappedMem,
    base: u64,
}

impl ring::Arena for ArenaSlice<'_> {
    unsafe fn copy_in(&self, offset: u64, bytes: &[u8]) -> u64 {
        let at = self.base + offset;
        // SAFETY: the caller guarantees the range lies inside this ring's slice, which lies
        // inside the mapping (`ring_shares`), and is its own.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.mem.host().add(at as usize),
                bytes.len(),
            );
        }
        self.mem.device() + at
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // Frees the arena with the rest of the memory, not later on the pinning thread.
        if let Some(handle) = self.lock().take() {
            let _ = handle.join();
        }
    }
}
