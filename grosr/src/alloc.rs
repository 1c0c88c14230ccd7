//! The device heap: `ctx.alloc` / `ctx.free` in task bodies, `grosr::heap_alloc` /
//! `grosr::heap_free` in any kernel of the runtime's module.
//!
//! The device side is `cuda/grosr_heap*.cuh`; `cuda/ALLOCATOR.md` describes the layout and its
//! invariants. This module carves the heap once when the [`Runtime`](crate::Runtime) is built,
//! (re)initialises it by copies (no kernel has to run beside the scheduler), and decodes its
//! metadata into [`HeapStats`].

use std::time::{Duration, Instant};

use crate::driver::{Context, DeviceMem, Function, Stream};
use crate::error::{Error, Result};

/// log2 of the slab size.
pub const SLAB_SHIFT: u32 = 16;
/// Bytes per slab (64 KiB): the unit the pool hands out and the large tier's granule.
pub const SLAB_BYTES: u64 = 1 << SLAB_SHIFT;
/// log2 of the smallest slot (16 bytes, which is also the alignment of every allocation).
pub const MIN_SHIFT: u32 = 4;
/// Size classes: 16, 32, ..., 8192 bytes. Larger requests are runs of whole slabs.
pub const CLASSES: usize = 10;
const BITMAP_WORDS: usize = (1 << (SLAB_SHIFT - MIN_SHIFT)) / 32;
const TAG_LARGE: u64 = 0xFF;
const ATTACHED: u64 = 0x100;
/// The head of a class run: its count and bitmap serve the whole run (C: `HEAP_RUN`).
const RUN: u64 = 0x200;
/// No current slab (C: `HEAP_NONE`, which `grosr_heap_init` writes).
#[cfg(test)]
const NONE: u32 = u32::MAX;
/// Current-slab entries per SM and class (C: `HEAP_CUR_PER_SM`).
const CUR_PER_SM: u32 = 8;
/// Classes with fewer slots per slab take aligned runs of slabs with this many slots (C:
/// `HEAP_RUN_SLOTS`; 0 = no runs) ...
const RUN_SLOTS: u64 = 256;
/// ... of at most this many slabs (C: `HEAP_RUN_MAX`).
const RUN_MAX: u64 = 16;
/// Lists of detached slabs with free slots: per class a low list (any free) and a roomy one.
const LISTS: usize = 2 * CLASSES;
/// The default heap never takes more than this.
const DEFAULT_MAX: u64 = 4 << 30;

/// The slot size of class `c` (`c < CLASSES`).
pub const fn class_size(c: usize) -> u64 {
    1 << (MIN_SHIFT as usize + c)
}

/// Slots per slab of class `c`.
const fn slots(c: usize) -> u64 {
    SLAB_BYTES >> (MIN_SHIFT as usize + c)
}

/// Slabs in a run of class `c` (1: the class takes single slabs). C: `heap_run_len`.
fn run_len(c: usize) -> u64 {
    if slots(c) >= RUN_SLOTS {
        1
    } else {
        (RUN_SLOTS / slots(c)).min(RUN_MAX)
    }
}

/// The device's heap descriptor, the module global `grosr_heap`. C: `grosr::Heap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct HeapDesc {
    pub base: u64,
    pub words: u64,
    pub bitmaps: u64,
    pub pool: u64,
    pub partial: u64,
    pub run: u64,
    pub cur: u64,
    pub hints: u64,
    pub ctl: u64,
    pub slabs: u32,
    pub pool_words: u32,
    pub cur_slots: u32,
    pub spin_limit: u32,
    pub cur_active: u32,
    pub pad: u32,
}

/// The heap's counters (device memory). C: `grosr::HeapCounters`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct HeapCounters {
    pub free_slabs: i32,
    pub pad0: [u32; 31],
    pub large_lock: u32,
    pub reclaim_lock: u32,
    pub pad1: [u32; 30],
    pub partial_count: [i32; 16],
    pub roomy_count: [i32; 16],
    pub failures: [u64; 16],
    pub bad_frees: u64,
    pub slow: [u64; 12],
    pub pad3: [u64; 3],
}

const _: () = assert!(size_of::<HeapDesc>() == 96);
const _: () = assert!(size_of::<HeapCounters>() == 640);

/// `(C type, Rust size)` of the heap's shared structs, for the generated `static_assert`s.
pub(crate) fn shared_struct_sizes() -> [(&'static str, usize); 2] {
    [
        ("grosr::Heap", size_of::<HeapDesc>()),
        ("grosr::HeapCounters", size_of::<HeapCounters>()),
    ]
}

/// Current-slab entries each SM uses: the largest power of two up to `CUR_PER_SM` for which one
/// current slab per entry, over `sm_slots` SMs, stays within an eighth of the heap's `slabs`. More
/// entries spread a busy SM's warps over more slabs; in a small heap they would park most of it.
fn cur_active(slabs: u64, sm_slots: u32) -> u32 {
    let mut a = CUR_PER_SM;
    while a > 1 && sm_slots as u64 * a as u64 * 8 > slabs {
        a /= 2;
    }
    a
}

/// The heap size a builder setting asks for, given the device's free memory: `None` = the
/// default (a quarter of free memory, at most 4 GiB); `Some(0)` = no heap. Rounded down to whole
/// slabs; an explicit size must fit in free memory and hold at least one slab.
pub(crate) fn resolve_heap_bytes(requested: Option<u64>, free: u64) -> Result<u64> {
    let round = |b: u64| b >> SLAB_SHIFT << SLAB_SHIFT;
    match requested {
        Some(0) => Ok(0),
        None => Ok(round((free / 4).min(DEFAULT_MAX))),
        Some(b) if b < SLAB_BYTES => Err(Error::Config(format!(
            "heap_bytes must be 0 (no heap) or at least one {SLAB_BYTES}-byte slab, not {b}"
        ))),
        Some(b) if b >= free => Err(Error::Config(format!(
            "heap_bytes {b} does not fit in the device's {free} free bytes"
        ))),
        Some(b) if b >> SLAB_SHIFT > u32::MAX as u64 / 2 => Err(Error::Config(format!(
            "heap_bytes {b} is more slabs than the heap can index"
        ))),
        Some(b) => Ok(round(b)),
    }
}

/// Offsets of the metadata arrays in the heap's metadata allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MetaLayout {
    words: usize,
    bitmaps: usize,
    pool: usize,
    partial: usize,
    run: usize,
    cur: usize,
    hints: usize,
    total: usize,
}

impl MetaLayout {
    fn new(slabs: usize, cur_slots: usize) -> MetaLayout {
        let pool_words = slabs.div_ceil(32);
        let a = |x: usize| x.next_multiple_of(128);
        let words = 1024;
        let bitmaps = a(words + 8 * slabs);
        let pool = a(bitmaps + 4 * BITMAP_WORDS * slabs);
        let partial = a(pool + 4 * pool_words);
        let run = a(partial + 4 * pool_words * LISTS);
        let cur = a(run + 4 * slabs);
        let hints = a(cur + 4 * cur_slots * CLASSES);
        let total = a(hints + 4 * cur_slots);
        MetaLayout {
            words,
            bitmaps,
            pool,
            partial,
            run,
            cur,
            hints,
            total,
        }
    }
}

/// The device heap of one runtime: the arena, its metadata and the descriptor the GPU sees.
#[derive(Debug)]
pub(crate) struct DeviceHeap {
    arena: DeviceMem,
    meta: DeviceMem,
    layout: MetaLayout,
    pub(crate) desc: HeapDesc,
    init_kernel: Function,
    pub(crate) init_time: Duration,
}

/// How long the heap's init kernel may take (it clears tens of megabytes: microseconds).
const HEAP_INIT_TIMEOUT: Duration = Duration::from_secs(10);

impl DeviceHeap {
    /// Allocates a heap of `bytes` (whole slabs) in `ctx` and initialises it with `init_kernel`
    /// (the module's `grosr_heap_init`) on `stream`; `sm_slots` (at least the SM count) times
    /// `CUR_PER_SM` current-slab entries per class.
    pub(crate) fn new(
        ctx: &Context,
        init_kernel: Function,
        stream: &Stream,
        bytes: u64,
        sm_slots: u32,
        spin_limit: u32,
    ) -> Result<DeviceHeap> {
        let t = Instant::now();
        let slabs = (bytes >> SLAB_SHIFT) as usize;
        let cur_slots = sm_slots.max(1) * CUR_PER_SM;
        let layout = MetaLayout::new(slabs, cur_slots as usize);
        let arena = DeviceMem::uninit(ctx, bytes as usize)?;
        let meta = DeviceMem::uninit(ctx, layout.total)?;
        let m = meta.ptr();
        let desc = HeapDesc {
            base: arena.ptr(),
            words: m + layout.words as u64,
            bitmaps: m + layout.bitmaps as u64,
            pool: m + layout.pool as u64,
            partial: m + layout.partial as u64,
            run: m + layout.run as u64,
            cur: m + layout.cur as u64,
            hints: m + layout.hints as u64,
            ctl: m,
            slabs: slabs as u32,
            pool_words: slabs.div_ceil(32) as u32,
            cur_slots,
            spin_limit,
            cur_active: cur_active(slabs as u64, sm_slots.max(1)),
            pad: 0,
        };
        let mut heap = DeviceHeap {
            arena,
            meta,
            layout,
            desc,
            init_kernel,
            init_time: Duration::ZERO,
        };
        heap.init(stream)?;
        heap.init_time = t.elapsed();
        Ok(heap)
    }

    /// Writes the metadata of an empty heap (every slab in the pool) with the module's
    /// `grosr_heap_init` on `stream`, and waits. No kernel may use the heap meanwhile. Returns how
    /// long it took.
    pub(crate) fn init(&self, stream: &Stream) -> Result<Duration> {
        let t = Instant::now();
        let words = (self.layout.total / 4) as u64;
        let blocks = words.div_ceil(256).clamp(1, 4096) as u32;
        // SAFETY: grosr_heap_init takes (Heap by value, u64); it writes `words` words from
        // desc.ctl, which is the start of `meta` (layout.total bytes, live while self is).
        unsafe { stream.launch(&self.init_kernel, blocks, 256, 0, (&self.desc, &words)) }?;
        stream.wait(HEAP_INIT_TIMEOUT, "the device heap to be initialised")?;
        Ok(t.elapsed())
    }

    /// The metadata as the GPU holds it, and as `empty_meta` says an empty heap's is.
    #[cfg(test)]
    pub(crate) fn meta_now_and_empty(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut now = vec![0u8; self.layout.total];
        self.meta.read_at(0, &mut now)?;
        let slabs = self.desc.slabs as usize;
        let empty = empty_meta(&self.layout, slabs, self.desc.cur_slots as usize);
        Ok((now, empty))
    }

    /// Overwrites the whole metadata with `byte` (a test's way to dirty it).
    #[cfg(test)]
    pub(crate) fn meta_fill_for_test(&self, byte: u8) -> Result<()> {
        self.meta.write(&vec![byte; self.layout.total])
    }

    /// The arena's size in bytes.
    pub(crate) fn bytes(&self) -> u64 {
        self.arena.len() as u64
    }

    /// Reads the metadata back and decodes it.
    pub(crate) fn stats(&self) -> Result<HeapStats> {
        let slabs = self.desc.slabs as usize;
        let mut ctl = [0u8; size_of::<HeapCounters>()];
        self.meta.read_at(0, &mut ctl)?;
        let ctl: HeapCounters = bytemuck::pod_read_unaligned(&ctl);
        let mut words = vec![0u64; slabs];
        self.meta.read_at(self.layout.words, &mut words)?;
        let mut run = vec![0u32; slabs];
        self.meta.read_at(self.layout.run, &mut run)?;
        let mut pool = vec![0u32; slabs.div_ceil(32)];
        self.meta.read_at(self.layout.pool, &mut pool)?;
        Ok(decode_stats(&words, &run, &pool, &ctl))
    }
}

/// The metadata of an empty heap: counters, every slab in the pool, no current slabs. What
/// `grosr_heap_init` writes on the GPU (compared by a GPU test).
#[cfg(test)]
fn empty_meta(l: &MetaLayout, slabs: usize, cur_slots: usize) -> Vec<u8> {
    let mut image = vec![0u8; l.total];
    let ctl = HeapCounters {
        free_slabs: slabs as i32,
        ..bytemuck::Zeroable::zeroed()
    };
    image[..size_of::<HeapCounters>()].copy_from_slice(bytemuck::bytes_of(&ctl));
    for s in 0..slabs {
        image[l.pool + 4 * (s / 32) + (s % 32) / 8] |= 1 << (s % 8);
    }
    image[l.cur..l.cur + 4 * cur_slots * CLASSES].fill(0xFF);
    debug_assert_eq!(
        u32::from_le_bytes(image[l.cur..l.cur + 4].try_into().unwrap_or_default()),
        NONE
    );
    image
}

/// One size class (or the large tier) in [`HeapStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Slot size in bytes (0 for the large tier).
    pub size: u64,
    /// Slabs the class holds (for the large tier: slabs in live runs).
    pub slabs: u32,
    /// Of those, slabs that are some SM's current slab.
    pub attached_slabs: u32,
    /// Live allocations.
    pub in_use: u64,
    /// Bytes of live allocations (slots times slot size; whole slabs for the large tier).
    pub bytes_in_use: u64,
    /// Allocations that returned null for lack of memory.
    pub failures: u64,
}

/// What the device heap holds, from [`Runtime::heap_stats`](crate::Runtime::heap_stats).
///
/// Read while tasks allocate, it is a snapshot of counters that move meanwhile (each one exact
/// at some instant); read with the GPU idle, it is exact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// The arena's size.
    pub heap_bytes: u64,
    /// Bytes per slab.
    pub slab_bytes: u64,
    /// Slabs in the arena.
    pub slabs: u32,
    /// Slabs in the free pool.
    pub free_slabs: u32,
    /// Per size class, smallest first (16 B, 32 B, ..., 8 KiB).
    pub classes: Vec<ClassStats>,
    /// The large tier (runs of whole slabs, for requests above 8 KiB).
    pub large: ClassStats,
    /// Live allocations, all tiers.
    pub allocations_in_use: u64,
    /// Bytes of live allocations, all tiers.
    pub bytes_in_use: u64,
    /// Allocations that returned null, all tiers.
    pub failures: u64,
    /// Frees of addresses that were not live allocations (ignored by the heap).
    pub bad_frees: u64,
    /// How often allocations took the slow paths: all zero unless the module was built with
    /// `GROSR_HEAP_SLOW_COUNTS=1` (a diagnosis switch; `RuntimeBuilder::define` or
    /// `GROSR_DEFINES`).
    pub slow_paths: SlowPaths,
}

/// Slow-path events of the device heap since it was set up (C: `HEAP_SLOW_*`), counted only in
/// a module built with `GROSR_HEAP_SLOW_COUNTS=1`. cuda/ALLOCATOR.md describes the paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowPaths {
    /// Swaps of a current slab won (the winner acquires a fresh slab).
    pub swaps: u64,
    /// Sleeps of warps waiting for another warp's swap.
    pub busy_sleeps: u64,
    /// Waits skipped because the swapper was the waiter's own warp.
    pub own_warp: u64,
    /// Requests that left the swap protocol for the fallbacks (wait or swaps ran out, own
    /// warp, nothing to acquire).
    pub fallbacks: u64,
    /// Slabs acquired in a fallback for one request.
    pub private_slabs: u64,
    /// Scans of every entry's current slab of a class.
    pub any_current_scans: u64,
    /// Scans that gave wholly free current slabs back (`heap_reclaim`).
    pub reclaim_scans: u64,
    /// Waits for another warp's swap that ran past `GROSR_HEAP_SWAP_WAIT_NS` (the waiter then
    /// took a slab of its own).
    pub wait_timeouts: u64,
    /// Nanoseconds warps spent waiting for other warps' swaps, summed.
    pub wait_ns: u64,
    /// The longest such wait in nanoseconds since the heap was set up ([`SlowPaths::since`]
    /// keeps it as is: a maximum cannot be taken apart).
    pub longest_wait_ns: u64,
    /// Requests whose swap protocol ran past `GROSR_HEAP_SLOW_MAX_NS` and went to the fallbacks.
    pub cut_short: u64,
    /// Where the last such request was (C: iterations << 32 | swaps << 16 | moves << 8 | peeks;
    /// kept as is by [`SlowPaths::since`]).
    pub cut_state: u64,
}

impl SlowPaths {
    fn from_counters(c: &[u64; 12]) -> SlowPaths {
        SlowPaths {
            swaps: c[0],
            busy_sleeps: c[1],
            own_warp: c[2],
            fallbacks: c[3],
            private_slabs: c[4],
            any_current_scans: c[5],
            reclaim_scans: c[6],
            wait_timeouts: c[7],
            wait_ns: c[8],
            longest_wait_ns: c[9],
            cut_short: c[10],
            cut_state: c[11],
        }
    }

    /// Events since `earlier` (counters only grow until the heap is reset).
    pub fn since(&self, earlier: &SlowPaths) -> SlowPaths {
        SlowPaths {
            swaps: self.swaps.wrapping_sub(earlier.swaps),
            busy_sleeps: self.busy_sleeps.wrapping_sub(earlier.busy_sleeps),
            own_warp: self.own_warp.wrapping_sub(earlier.own_warp),
            fallbacks: self.fallbacks.wrapping_sub(earlier.fallbacks),
            private_slabs: self.private_slabs.wrapping_sub(earlier.private_slabs),
            any_current_scans: self
                .any_current_scans
                .wrapping_sub(earlier.any_current_scans),
            reclaim_scans: self.reclaim_scans.wrapping_sub(earlier.reclaim_scans),
            wait_timeouts: self.wait_timeouts.wrapping_sub(earlier.wait_timeouts),
            wait_ns: self.wait_ns.wrapping_sub(earlier.wait_ns),
            longest_wait_ns: self.longest_wait_ns,
            cut_short: self.cut_short.wrapping_sub(earlier.cut_short),
            cut_state: self.cut_state,
        }
    }

    /// Whether any event was counted.
    pub fn any(&self) -> bool {
        *self != SlowPaths::default()
    }
}

/// Decodes the slab words (count << 32 | run | attached | tag), large-run lengths, pool bits and
/// counters into stats. A class run counts as its slabs, its head's word as all its slots.
pub(crate) fn decode_stats(
    words: &[u64],
    run: &[u32],
    pool: &[u32],
    ctl: &HeapCounters,
) -> HeapStats {
    let mut classes: Vec<ClassStats> = (0..CLASSES)
        .map(|c| ClassStats {
            size: class_size(c),
            failures: ctl.failures[c],
            ..Default::default()
        })
        .collect();
    let mut large = ClassStats {
        failures: ctl.failures[CLASSES],
        ..Default::default()
    };
    for (s, &w) in words.iter().enumerate() {
        let tag = w & 0xFF;
        if tag == TAG_LARGE {
            let n = run.get(s).copied().unwrap_or(0);
            large.slabs += n;
            large.in_use += 1;
            large.bytes_in_use += n as u64 * SLAB_BYTES;
        } else if (1..=CLASSES as u64).contains(&tag) {
            let c = tag as usize - 1;
            let n = if w & RUN != 0 { run_len(c) } else { 1 };
            let cap = slots(c) * n;
            let free = ((w >> 32) as u32 as i32).clamp(0, cap as i32) as u64;
            let k = &mut classes[c];
            k.slabs += n as u32;
            k.attached_slabs += if w & ATTACHED != 0 { n as u32 } else { 0 };
            k.in_use += cap - free;
            k.bytes_in_use += (cap - free) * class_size(c);
        }
        // 0xE0 + class (inside a class run, C: HEAP_TAG_INNER): counted with the run's head.
    }
    let slabs = words.len() as u32;
    let free_slabs = pool.iter().map(|w| w.count_ones()).sum();
    HeapStats {
        heap_bytes: slabs as u64 * SLAB_BYTES,
        slab_bytes: SLAB_BYTES,
        slabs,
        free_slabs,
        allocations_in_use: classes.iter().map(|c| c.in_use).sum::<u64>() + large.in_use,
        bytes_in_use: classes.iter().map(|c| c.bytes_in_use).sum::<u64>() + large.bytes_in_use,
        failures: classes.iter().map(|c| c.failures).sum::<u64>() + large.failures,
        bad_frees: ctl.bad_frees,
        slow_paths: SlowPaths::from_counters(&ctl.slow),
        classes,
        large,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `TAG_INNER + class`: a slab inside a class run, not its head (C: `HEAP_TAG_INNER`);
    /// `decode_stats` counts it with the head.
    const TAG_INNER: u64 = 0xE0;

    #[test]
    fn small_heaps_use_fewer_current_slab_entries_per_sm() {
        // 256 SM slots: 8 GiB = 131 072 slabs keeps all 8; 256 MiB = 4096 slabs gets 2; 64 MiB
        // (1024 slabs, fewer than the SMs' 8 entries would hold) gets 1.
        assert_eq!(cur_active(131_072, 256), 8);
        assert_eq!(cur_active(4096, 256), 2);
        assert_eq!(cur_active(1024, 256), 1);
        assert_eq!(cur_active(1, 1), 1);
        for slabs in [1u64, 100, 5000, 1 << 20] {
            let a = cur_active(slabs, 132);
            assert!(a.is_power_of_two() && a <= CUR_PER_SM);
            assert!(a == 1 || 132 * a as u64 * 8 <= slabs);
        }
    }

    #[test]
    fn every_class_has_at_least_8_slots_and_its_bitmap_fits() {
        for c in 0..CLASSES {
            assert!(slots(c) >= 8 && slots(c) as usize <= 32 * BITMAP_WORDS);
        }
    }

    #[test]
    fn host_constants_match_the_device_source() {
        let src = crate::codegen::device_source("grosr_heap_layout.cuh");
        for line in [
            format!("constexpr uint32_t HEAP_SLAB_SHIFT = {SLAB_SHIFT};"),
            format!("constexpr uint32_t HEAP_MIN_SHIFT = {MIN_SHIFT};"),
            format!("constexpr uint32_t HEAP_CLASSES = {CLASSES};"),
            format!("constexpr uint32_t HEAP_CUR_PER_SM = {CUR_PER_SM};"),
            format!("constexpr uint32_t HEAP_RUN_SLOTS = {RUN_SLOTS};"),
            format!("constexpr uint32_t HEAP_RUN_MAX = {RUN_MAX};"),
            format!("constexpr uint32_t HEAP_TAG_INNER = {TAG_INNER:#X}u;"),
            format!("constexpr uint64_t HEAP_RUN = {RUN:#X}ull;"),
            "int32_t roomy_count[16];".to_string(),
            "unsigned long long slow[12];".to_string(),
        ] {
            assert!(src.contains(&line), "{line}");
        }
    }

    #[test]
    fn heap_size_defaults_to_a_quarter_of_free_memory_capped_at_4_gib() {
        assert_eq!(resolve_heap_bytes(None, 8 << 30), Ok(2 << 30));
        assert_eq!(resolve_heap_bytes(None, 80 << 30), Ok(4 << 30));
        assert_eq!(resolve_heap_bytes(None, 1_000_000), Ok(196_608));
        assert_eq!(resolve_heap_bytes(Some(0), 1 << 30), Ok(0));
        assert_eq!(
            resolve_heap_bytes(Some((1 << 20) + 5), 1 << 30),
            Ok(1 << 20)
        );
        assert!(resolve_heap_bytes(Some(100), 1 << 30).is_err());
        assert!(resolve_heap_bytes(Some(2 << 30), 1 << 30).is_err());
    }

    #[test]
    fn metadata_arrays_do_not_overlap_and_are_aligned() {
        for slabs in [1usize, 31, 32, 33, 65_536] {
            let l = MetaLayout::new(slabs, 256);
            let order = [
                (0, size_of::<HeapCounters>()),
                (l.words, 8 * slabs),
                (l.bitmaps, 4 * BITMAP_WORDS * slabs),
                (l.pool, 4 * slabs.div_ceil(32)),
                (l.partial, 4 * slabs.div_ceil(32) * LISTS),
                (l.run, 4 * slabs),
                (l.cur, 4 * 256 * CLASSES),
                (l.hints, 4 * 256),
            ];
            for pair in order.windows(2) {
                assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{slabs}: {pair:?}");
                assert_eq!(pair[1].0 % 128, 0);
            }
            assert!(l.hints + 4 * 256 <= l.total);
        }
    }

    #[test]
    fn an_empty_heap_has_every_slab_in_the_pool_and_no_current_slab() {
        let l = MetaLayout::new(40, 4);
        let image = empty_meta(&l, 40, 4);
        let ctl: HeapCounters = bytemuck::pod_read_unaligned(&image[..640]);
        assert_eq!(ctl.free_slabs, 40);
        let pool: Vec<u32> = image[l.pool..l.pool + 8]
            .chunks(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(pool, vec![u32::MAX, 0xFF]);
        assert!(
            image[l.cur..l.cur + 4 * 4 * CLASSES]
                .iter()
                .all(|&b| b == 0xFF)
        );
        assert!(image[l.words..l.pool].iter().all(|&b| b == 0));
    }

    #[test]
    fn stats_decode_slab_words_runs_and_counters() {
        let mut ctl: HeapCounters = bytemuck::Zeroable::zeroed();
        ctl.failures[2] = 3;
        ctl.failures[CLASSES] = 1;
        ctl.bad_frees = 2;
        ctl.slow = [5, 4, 3, 2, 1, 7, 6, 9, 800, 300, 2, 77];
        let w = |free: i32, tag: u64| ((free as u32 as u64) << 32) | tag;
        let words = [
            w(1000, 3 | ATTACHED), // 64 B class, 24 of 1024 slots taken, current
            w(0, 3),               // 64 B class, full
            w(-5, 3),              // transiently below zero: counts as full
            w(0, TAG_LARGE),       // a large run of 2 slabs
            0,                     // its second slab
            0,                     // free
        ];
        let run = [0, 0, 0, 2, 0, 0];
        let pool = [0b10_0000];
        let s = decode_stats(&words, &run, &pool, &ctl);
        assert_eq!(s.slabs, 6);
        assert_eq!(s.free_slabs, 1);
        let c64 = s.classes[2];
        assert_eq!((c64.size, c64.slabs, c64.attached_slabs), (64, 3, 1));
        assert_eq!(c64.in_use, 24 + 1024 + 1024);
        assert_eq!(c64.bytes_in_use, 64 * (24 + 2048));
        assert_eq!((s.large.slabs, s.large.in_use), (2, 1));
        assert_eq!(s.bytes_in_use, 64 * 2072 + 2 * SLAB_BYTES);
        assert_eq!((s.failures, s.bad_frees), (4, 2));
        let slow = s.slow_paths;
        assert_eq!((slow.swaps, slow.busy_sleeps, slow.own_warp), (5, 4, 3));
        assert_eq!((slow.fallbacks, slow.private_slabs), (2, 1));
        assert_eq!((slow.any_current_scans, slow.reclaim_scans), (7, 6));
        assert_eq!(
            (slow.wait_timeouts, slow.wait_ns, slow.longest_wait_ns),
            (9, 800, 300)
        );
        assert_eq!((slow.cut_short, slow.cut_state), (2, 77));
        let earlier = SlowPaths {
            swaps: 1,
            wait_ns: 100,
            longest_wait_ns: 200,
            ..SlowPaths::default()
        };
        let since = slow.since(&earlier);
        assert_eq!((since.swaps, since.wait_ns), (4, 700));
        assert_eq!(
            since.longest_wait_ns, 300,
            "a maximum is kept, not subtracted"
        );
        assert!(slow.any() && !SlowPaths::default().any());
    }

    #[test]
    fn a_class_run_counts_as_its_slabs_and_its_slots() {
        let ctl: HeapCounters = bytemuck::Zeroable::zeroed();
        let c = 8; // 4 KiB: 16 slots per slab, runs of 16 slabs with 256 slots
        assert_eq!((run_len(c), run_len(2), run_len(5)), (16, 1, 2));
        assert_eq!(run_len(CLASSES - 1), RUN_MAX);
        let n = run_len(c) as usize;
        let mut words = vec![TAG_INNER + c as u64; n + 1];
        words[0] = (250u64 << 32) | RUN | ATTACHED | (c as u64 + 1);
        words[n] = 0;
        let s = decode_stats(&words, &vec![0; n + 1], &[1 << n], &ctl);
        let k = s.classes[c];
        assert_eq!((k.slabs, k.attached_slabs, k.in_use), (16, 16, 6));
        assert_eq!(s.free_slabs + k.attached_slabs, s.slabs);
        assert_eq!(s.bytes_in_use, 6 * 4096);
    }
}
