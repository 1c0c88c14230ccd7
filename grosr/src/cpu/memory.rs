//! Host memory that task bodies run by the CPU executor address as they would device memory.
//!
//! Every allocation is registered by its address, and every access a body makes is checked
//! against the live allocations: a body cannot reach freed or foreign memory from safe Rust (the
//! access fails its task instead). Addresses are made up, counted up and never given out twice,
//! so a pointer kept past its allocation's end points at nothing, never at a later allocation
//! that happens to sit where the freed one was. All memory is `AtomicU64` words and every access goes
//! through whole words (a 4-byte store is a compare-and-swap of its word), so concurrent bodies
//! race as GPU threads do (plain accesses may interleave, atomics do not) without a data race
//! or a mixed-size atomic access in Rust's model.

#[cfg(target_endian = "big")]
compile_error!(
    "the CPU executor's memory keeps words little-endian; big-endian hosts are not supported"
);

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// One allocation: zeroed words at an address no other allocation ever has.
pub(crate) struct Allocation {
    base: u64,
    words: Box<[AtomicU64]>,
    bytes: u64,
    live: AtomicBool,
    /// Made by a body's `ctx.alloc` (only those may be `ctx.free`d).
    heap: bool,
    /// The task run whose lanes alone may reach it (`ctx.warp_shared`, as a GPU's shared
    /// memory is its block's); 0: any.
    owner: u64,
}

impl Allocation {
    /// The task run whose lanes alone may reach it (0: any).
    pub(crate) fn owner(&self) -> u64 {
        self.owner
    }

    /// The address of byte 0 (what a `DevicePtr` to it holds).
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Whether `[addr, addr + len)` lies inside this allocation, and it has not been freed.
    fn holds(&self, addr: u64, len: u64) -> bool {
        let base = self.base();
        self.live.load(Ordering::Acquire)
            && addr >= base
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= base + self.bytes)
    }

    /// The word holding byte `addr` and the byte's offset in it.
    fn word(&self, addr: u64) -> (&AtomicU64, u32) {
        let off = addr - self.base();
        (&self.words[(off / 8) as usize], (off % 8) as u32)
    }

    /// Copies `out.len()` bytes from `addr` (inside; see [`holds`](Self::holds)). Each word is
    /// read once, atomically: an access within one word is never torn.
    pub(crate) fn read(&self, addr: u64, out: &mut [u8]) {
        let mut done = 0usize;
        while done < out.len() {
            let (word, shift) = self.word(addr + done as u64);
            let take = (8 - shift as usize).min(out.len() - done);
            let bytes = word.load(Ordering::Relaxed).to_le_bytes();
            out[done..done + take].copy_from_slice(&bytes[shift as usize..shift as usize + take]);
            done += take;
        }
    }

    /// Stores `data` at `addr` (inside): whole words plainly, parts of words by
    /// compare-and-swap, so the other bytes of a word are never overwritten with stale values.
    pub(crate) fn write(&self, addr: u64, data: &[u8]) {
        let mut done = 0usize;
        while done < data.len() {
            let (word, shift) = self.word(addr + done as u64);
            let take = (8 - shift as usize).min(data.len() - done);
            let part = &data[done..done + take];
            if take == 8 {
                let v = u64::from_le_bytes(part.try_into().unwrap_or([0; 8]));
                word.store(v, Ordering::Relaxed);
            } else {
                let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    let mut bytes = old.to_le_bytes();
                    bytes[shift as usize..shift as usize + take].copy_from_slice(part);
                    Some(u64::from_le_bytes(bytes))
                });
            }
            done += take;
        }
    }

    /// An atomic read-modify-write of the `size`-byte value (1, 2, 4 or 8, aligned to its size)
    /// at `addr`: `f` maps the old value (zero-extended) to the new one; returns the old.
    pub(crate) fn update(&self, addr: u64, size: u32, f: impl Fn(u64) -> u64) -> u64 {
        let (word, shift) = self.word(addr);
        let bits = size * 8;
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let field = |w: u64| (w >> (shift * 8)) & mask;
        let old = word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let new = f(field(w)) & mask;
                Some((w & !(mask << (shift * 8))) | (new << (shift * 8)))
            })
            .unwrap_or(0);
        field(old)
    }
}

/// The live allocations, by base address.
pub(crate) struct HostMemory {
    allocs: RwLock<BTreeMap<u64, Arc<Allocation>>>,
    /// The most bytes bodies' `ctx.alloc` may hold at once (`RuntimeBuilder::heap_bytes`, as a
    /// GPU's heap arena is that size).
    heap_limit: AtomicU64,
    /// `ctx.alloc`s that returned null.
    heap_failures: AtomicU64,
    /// Bytes of live heap allocations (a trace's counter reads it without the map's lock).
    heap_bytes: AtomicU64,
}

impl Default for HostMemory {
    fn default() -> Self {
        HostMemory {
            allocs: RwLock::default(),
            heap_limit: AtomicU64::new(u64::MAX),
            heap_failures: AtomicU64::new(0),
            heap_bytes: AtomicU64::new(0),
        }
    }
}

impl HostMemory {
    /// Caps the bytes `alloc_heap` hands out at once (0: every request is null, as a runtime
    /// built without a heap answers).
    pub(crate) fn set_heap_limit(&self, bytes: u64) {
        self.heap_limit.store(bytes, Ordering::Relaxed);
    }

    /// The cap `set_heap_limit` gave.
    pub(crate) fn heap_limit(&self) -> u64 {
        self.heap_limit.load(Ordering::Relaxed)
    }

    /// `alloc_heap`s that returned null.
    pub(crate) fn heap_failures(&self) -> u64 {
        self.heap_failures.load(Ordering::Relaxed)
    }

    /// `bytes` zeroed bytes (at least one word), registered; `None` if the host cannot give
    /// them (or the made-up address space is spent).
    pub(crate) fn alloc(&self, bytes: u64) -> Option<Arc<Allocation>> {
        self.register(bytes, false, 0)
    }

    /// [`alloc`](Self::alloc) that only the lanes of task run `owner` may reach.
    pub(crate) fn alloc_owned(&self, bytes: u64, owner: u64) -> Option<Arc<Allocation>> {
        self.register(bytes, false, owner)
    }

    /// [`alloc`](Self::alloc) for a body's `ctx.alloc`, which only `free_heap` frees; `None`
    /// (counted as a failure) past the heap's limit or for 0 bytes, as a GPU's heap answers.
    pub(crate) fn alloc_heap(&self, bytes: u64) -> Option<Arc<Allocation>> {
        // Past the limit already: not even the host's pages are asked for (the check that
        // counts is `register`'s, under the map's lock).
        let fits = bytes > 0 && self.heap_bytes().saturating_add(bytes) <= self.heap_limit();
        let a = fits.then(|| self.register(bytes, true, 0)).flatten();
        if a.is_none() {
            self.heap_failures.fetch_add(1, Ordering::Relaxed);
        }
        a
    }

    /// Frees the heap allocation at `base`: false if there is none live there.
    pub(crate) fn free_heap(&self, base: u64) -> bool {
        let mut map = self.allocs.write().unwrap_or_else(|e| e.into_inner());
        match map.get(&base) {
            Some(a) if a.heap => {
                a.live.store(false, Ordering::Release);
                self.heap_bytes.fetch_sub(a.bytes, Ordering::Relaxed);
                map.remove(&base);
                true
            }
            _ => false,
        }
    }

    /// Live heap allocations and their bytes.
    pub(crate) fn heap_in_use(&self) -> (u64, u64) {
        let map = self.allocs.read().unwrap_or_else(|e| e.into_inner());
        map.values()
            .filter(|a| a.heap)
            .fold((0, 0), |(n, b), a| (n + 1, b + a.bytes))
    }

    /// Bytes of live heap allocations, read without a lock (a moment's count).
    pub(crate) fn heap_bytes(&self) -> u64 {
        self.heap_bytes.load(Ordering::Relaxed)
    }

    /// Frees every heap allocation (`Runtime::heap_reset`): later accesses through their
    /// pointers fail their tasks, as any access to freed memory does here.
    pub(crate) fn heap_reset(&self) {
        let mut map = self.allocs.write().unwrap_or_else(|e| e.into_inner());
        self.heap_bytes.store(0, Ordering::Relaxed);
        map.retain(|_, a| {
            if a.heap {
                a.live.store(false, Ordering::Release);
            }
            !a.heap
        });
    }

    fn register(&self, bytes: u64, heap: bool, owner: u64) -> Option<Arc<Allocation>> {
        let words = usize::try_from(bytes.div_ceil(8).max(1)).ok()?;
        // 256-byte aligned (the GPU's allocations are), with a gap of at least 256 bytes after.
        let span = (words as u64)
            .checked_mul(8)?
            .checked_next_multiple_of(256)?
            .checked_add(256)?;
        // Zeroed pages from the system (untouched until used): a size the host cannot give is a
        // null pointer (as an exhausted GPU heap gives), not an abort of the process, and a
        // large one costs nothing until a body writes it.
        let cells = zeroed_words(words)?;
        let offset = NEXT_ADDRESS
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                n.checked_add(span)
                    .filter(|e| *e <= u64::MAX - FIRST_ADDRESS)
            })
            .ok()?;
        let a = Arc::new(Allocation {
            base: FIRST_ADDRESS + offset,
            words: cells,
            bytes,
            live: AtomicBool::new(true),
            heap,
            owner,
        });
        let mut map = self.allocs.write().unwrap_or_else(|e| e.into_inner());
        if heap {
            // Under the map's lock, as `free_heap` and `heap_reset` update it.
            let in_use = self.heap_bytes.load(Ordering::Relaxed);
            if in_use.saturating_add(bytes) > self.heap_limit() {
                return None;
            }
            self.heap_bytes.store(in_use + bytes, Ordering::Relaxed);
        }
        map.insert(a.base(), Arc::clone(&a));
        Some(a)
    }

    /// Unregisters `a`: bodies' accesses to it fail from now on (one that holds it keeps the
    /// words alive, so a late access is refused, never a use-after-free).
    pub(crate) fn free(&self, a: &Allocation) {
        a.live.store(false, Ordering::Release);
        let mut map = self.allocs.write().unwrap_or_else(|e| e.into_inner());
        map.remove(&a.base());
    }

    /// The live allocation holding `[addr, addr + len)`, if any.
    pub(crate) fn find(&self, addr: u64, len: u64) -> Option<Arc<Allocation>> {
        let map = self.allocs.read().unwrap_or_else(|e| e.into_inner());
        let (_, a) = map.range(..=addr).next_back()?;
        a.holds(addr, len).then(|| Arc::clone(a))
    }
}

/// `n` zeroed words, or `None` if the system will not give them.
fn zeroed_words(n: usize) -> Option<Box<[AtomicU64]>> {
    let layout = std::alloc::Layout::array::<AtomicU64>(n).ok()?;
    if layout.size() == 0 {
        return Some(Box::new([]));
    }
    // SAFETY: the layout has a nonzero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<AtomicU64>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is a fresh allocation of `n` AtomicU64s by the global allocator with this
    // layout (what a Box<[AtomicU64]> of `n` frees), all zero, a valid AtomicU64 each.
    Some(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)) })
}

/// Where the made-up addresses start: nonzero, and at 2^44 far from any count that a body might
/// mistake for one (a GPU's addresses look much the same). 2^64 − 2^44 bytes of address space
/// are more than a process allocates.
const FIRST_ADDRESS: u64 = 1 << 44;

/// Address space handed out so far, above [`FIRST_ADDRESS`], by every runtime of the process:
/// one runtime's addresses are never another's, so a pointer into another runtime's buffer
/// faults instead of reading whatever this one keeps there.
static NEXT_ADDRESS: AtomicU64 = AtomicU64::new(0);

/// A thread's way into [`HostMemory`]: the last allocation it hit, looked at first.
#[derive(Default)]
pub(crate) struct Cursor {
    last: Option<Arc<Allocation>>,
}

impl Cursor {
    /// The live allocation holding `[addr, addr + len)`, if any.
    pub(crate) fn find(&mut self, memory: &HostMemory, addr: u64, len: u64) -> Option<&Allocation> {
        let hit = self.last.as_ref().is_some_and(|a| a.holds(addr, len));
        if !hit {
            // A freed allocation is let go here, not kept alive until the next hit elsewhere.
            self.last = None;
            self.last = Some(memory.find(addr, len)?);
        }
        self.last.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_inside_live_allocations_only_and_partial_words_keep_their_neighbours() {
        let m = HostMemory::default();
        let a = m.alloc(12).unwrap();
        let base = a.base();
        a.write(base + 4, &7u32.to_le_bytes());
        a.write(base, &5u32.to_le_bytes());
        let mut out = [0u8; 8];
        a.read(base, &mut out);
        assert_eq!(u64::from_le_bytes(out), 5 | 7 << 32);
        assert_eq!(a.update(base + 4, 4, |v| v + 1), 7);
        a.read(base + 4, &mut out[..4]);
        assert_eq!(out[..4], 8u32.to_le_bytes());
        assert!(m.find(base + 8, 4).is_some());
        assert!(m.find(base + 9, 4).is_none(), "past the end");
        assert!(m.find(base - 8, 4).is_none(), "before the start");
        // Another runtime's memory never shares an address with this one's: its pointers
        // fault here.
        let other = HostMemory::default();
        let o = other.alloc(12).unwrap();
        assert!(m.find(o.base(), 4).is_none() && other.find(base, 4).is_none());
        let mut cursor = Cursor::default();
        assert!(cursor.find(&m, base, 4).is_some());
        m.free(&a);
        assert!(
            cursor.find(&m, base, 4).is_none(),
            "freed, though the cursor held it"
        );
        assert!(m.find(base, 4).is_none());
        // Later allocations never take a freed one's addresses (the host allocator may well
        // hand out its words again).
        for _ in 0..100 {
            let b = m.alloc(12).unwrap();
            assert!(m.find(base, 4).is_none());
            assert!(b.base() > base && b.base() % 256 == 0);
            m.free(&b);
        }
    }
}
