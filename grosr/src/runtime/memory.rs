//! Where the runtime's arrays live: the mapped host block, the arena and the device block.

use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::driver::{Context, DeviceMem, MappedMem};
use crate::error::{Error, Result};
use crate::layout::{Completion, Desc, DevJob, HostCtl, Params, Queue, Slot};
use crate::ring::{self, CompletionCells, DescCells, Ring};

use super::builder::Config;

/// The mapped host block and the device block, and where each array lives in them.
pub(super) struct Memory {
    host: MappedMem,
    pub(super) arena: Arena,
    pub(super) device: DeviceMem,
    pub(super) params: Params,
    descs_off: usize,
    desc_done_off: usize,
    completions_off: usize,
    pub(super) executed_off: usize,
}

impl Memory {
    pub(super) fn new(ctx: &Context, c: &Config, queues: u32, kinds: usize) -> Result<Memory> {
        let (dc, js) = (c.desc_capacity as usize, c.job_slots as usize);
        let descs_off = size_of::<HostCtl>();
        let desc_done_off = descs_off + dc * size_of::<Desc>();
        let completions_off = (desc_done_off + dc * 4).next_multiple_of(16);
        let host = MappedMem::new(ctx, completions_off + js * size_of::<Completion>())?;
        let arena = Arena::pin_aside(ctx, c.arena_bytes);
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
            desc_start: 0,
            num_queues: queues,
            queue_cap: c.queue_capacity,
            desc_cap: c.desc_capacity,
            job_slots: c.job_slots,
            num_kinds: kinds as u32,
            spin_limit: c.spin_limit,
        };
        Ok(Memory {
            host,
            arena,
            device,
            params,
            descs_off,
            desc_done_off,
            completions_off,
            executed_off,
        })
    }

    fn ctl(&self) -> *mut HostCtl {
        self.host.host() as *mut HostCtl
    }

    /// The submission cells as atomics over the mapped memory.
    pub(super) fn ring(&self) -> Ring<'_> {
        let p = self.params;
        let base = self.host.host();
        // SAFETY: the offsets were laid out in `new` inside one live allocation; each array has
        // the length given and the atomics' layout of the C structs (asserted in ring); the GPU
        // accesses the same bytes only with the matching protocol.
        unsafe {
            Ring {
                desc_head: &*(std::ptr::addr_of_mut!((*self.ctl()).desc_head)
                    as *const ring::AtomicU64),
                descs: std::slice::from_raw_parts(
                    base.add(self.descs_off) as *const DescCells,
                    p.desc_cap as usize,
                ),
                desc_done: std::slice::from_raw_parts(
                    base.add(self.desc_done_off) as *const ring::AtomicU32,
                    p.desc_cap as usize,
                ),
                completions: std::slice::from_raw_parts(
                    base.add(self.completions_off) as *const CompletionCells,
                    p.job_slots as usize,
                ),
            }
        }
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

impl Drop for Arena {
    fn drop(&mut self) {
        // Frees the arena with the rest of the memory, not later on the pinning thread.
        if let Some(handle) = self.lock().take() {
            let _ = handle.join();
        }
    }
}
