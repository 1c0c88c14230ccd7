//! The GPU's task timeline ([`RuntimeBuilder::trace`](super::RuntimeBuilder::trace)): the
//! per-lane rings the scheduler writes one event per task into (cuda/grosr_task_trace.cuh,
//! which documents the rings, ids and origins), the host's submits, waits and graph launches
//! beside them, and their reading into a [`Trace`].
//!
//! Host and GPU on one clock: before each launch of the scheduler, `grosr_trace_clock` answers
//! pings through mapped memory with `%globaltimer`, and the host keeps the answer it bracketed
//! most tightly (a round trip of a few µs) as its [`Clock`]; host spans are stamped in GPU
//! nanoseconds through it.
//!
//! Origins the GPU does not record, the take fills in from the submits' *owners*: each traced
//! submit notes when its job came to own its job slot (the slot's previous job had ended, so
//! every task of that job started before it). A task the host submitted (origin 0) names the
//! submit or graph launch that owned its slot last before it started; a graph node (origin: its
//! tag, node + 1) names, among its predecessors' events of that launch, the one that ended last
//! before it started (whose end released it), and a root its launch. Graphs small enough to
//! travel whole run untagged, level by level on one warp: their nodes name the launch. Past the
//! host log's size nothing more is inferred: a task that started after the first submit the
//! log dropped names no submit or predecessor (the drops are counted).
//!
//! The clock is set at each launch of the scheduler (build and every `start`), not corrected
//! while it runs: the host's and the GPU's clocks drift apart by their rates' difference over a
//! long run.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::driver::{Context, DeviceMem, Function, MappedMem, Module, Stream, write_device};
use crate::error::{Error, Result};
use crate::trace::{CounterSample, HostLog, TaskSpan, Trace};

/// `grosr::TaskEvent`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct TaskEvent {
    start: u64,
    end: u64,
    id: u32,
    origin: u32,
    /// Kind (bits 0-11), lane (12-16, lane tasks), SM (17-24), the ring's wrap count (25-31).
    place: u32,
    job: u32,
}
const _: () = assert!(size_of::<TaskEvent>() == 32);

/// `grosr::TaskTraceDev`, the module global `grosr_task_trace`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct TaskTraceDev {
    events: u64,
    counts: u64,
    lane_capacity: u32,
    lane_shift: u32,
    heap: u64,
    heap_count: u64,
    heap_capacity: u32,
    pad: u32,
}

/// `grosr::HeapSample`: the heap pool's count of free slabs at `at` (`%globaltimer`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct HeapSample {
    at: u64,
    free_slabs: i32,
    pad: u32,
}
const _: () = assert!(size_of::<HeapSample>() == 16);

/// Samples of the heap's pool a trace keeps between takes (4 MiB of device memory). The pool's
/// count moves only when a slab (64 KiB) or a run of them is taken or given back.
const HEAP_SAMPLES: usize = 1 << 18;

/// The heap's pool, sampled by the GPU (`trace_heap_pool`): the samples, their count, and what
/// turns a count of free slabs into bytes held.
struct HeapTrace {
    samples: DeviceMem,
    count: DeviceMem,
    slabs: u32,
}

/// An event's origin that is a graph tag, not a task's id (`ORIGIN_GRAPH`).
const ORIGIN_GRAPH: u32 = 0x8000_0000;
/// Ids hold the warp above 17 bits of ring lane (5) and slot + 1 (12), and stay under 2^31.
const SLOT_BITS: u32 = 17;
/// Where an event's wrap count starts in its `place`.
const GEN_SHIFT: u32 = 25;
/// Events a warp keeps at most: 32 rings of 2048 (slot + 1 fits 12 bits).
const MAX_EVENTS: usize = 32 << 11;
/// Events of one ring between two that share an id (the id holds the count modulo this).
const ID_SEQS: u32 = 2048;
/// SMs an event tells apart (8 bits of `place`).
const MAX_SMS: u32 = 256;

/// Events of each lane's ring for `capacity` events a warp: a power of two, at least 1.
fn lane_capacity(capacity: usize) -> u32 {
    (1u32 << capacity.max(1).ilog2()).div_ceil(32)
}

/// The settings a GPU trace refuses, checked before the module is compiled: `capacity` events
/// a warp, of `kinds` task types.
pub(super) fn check(capacity: usize, kinds: usize) -> Result<()> {
    if kinds > 1 << 12 {
        return Err(Error::Config(format!(
            "a trace of {kinds} task types: an event keeps 12 bits of kind (4096 types)"
        )));
    }
    if capacity == 0 || capacity > MAX_EVENTS {
        return Err(Error::Config(format!(
            "a trace of {capacity} events a track: a GPU's warps keep 1 to {MAX_EVENTS} each"
        )));
    }
    Ok(())
}

/// Rounds of the clock's ping-pong; the tightest bracket is kept.
const CLOCK_ROUNDS: u32 = 16;
/// How long the host waits for the clock kernel to start (a launch behind other work).
const CLOCK_START_WAIT: Duration = Duration::from_secs(10);
/// How long the host waits for one answer once the kernel runs (it answers in microseconds).
const CLOCK_WAIT: Duration = Duration::from_millis(50);
/// Host span ids start here, above every task id (< 2^31).
const FIRST_HOST_ID: u64 = 1 << 32;

/// The host's clock against the GPU's `%globaltimer`: the GPU read `gpu_ns` at `host`.
#[derive(Clone, Copy, Debug)]
struct Clock {
    gpu_ns: u64,
    host: Instant,
}

/// A graph's edges as the trace needs them: node `i`'s successors are
/// `succ[succ_off[i]..succ_off[i + 1]]` (the plan's own arrays).
#[derive(Debug)]
pub(crate) struct GraphEdges {
    pub succ_off: Vec<u32>,
    pub succ: Vec<u32>,
}

impl GraphEdges {
    /// Each node's predecessors, in the same form.
    fn predecessors(&self) -> GraphEdges {
        let n = self.succ_off.len().saturating_sub(1);
        let mut off = vec![0u32; n + 1];
        for &s in &self.succ {
            off[s as usize + 1] += 1;
        }
        for i in 0..n {
            off[i + 1] += off[i];
        }
        let mut fill = off.clone();
        let mut pred = vec![0u32; self.succ.len()];
        for i in 0..n {
            for &s in &self.succ[self.succ_off[i] as usize..self.succ_off[i + 1] as usize] {
                pred[fill[s as usize] as usize] = i as u32;
                fill[s as usize] += 1;
            }
        }
        GraphEdges {
            succ_off: off,
            succ: pred,
        }
    }

    fn of(&self, node: usize) -> &[u32] {
        match (self.succ_off.get(node), self.succ_off.get(node + 1)) {
            (Some(&b), Some(&e)) => &self.succ[b as usize..e as usize],
            _ => &[],
        }
    }
}

/// A traced submit's claim on its job slot: from `at_ns` (GPU clock), the slot's tasks are its
/// job's until the slot's next owner; `edges` for a Resident graph launch.
struct Owner {
    slot: u32,
    span: u64,
    at_ns: u64,
    edges: Option<Arc<GraphEdges>>,
}

/// The owners recorded, at most the host log's size; `lost_from`: the GPU time of the first one
/// dropped, past which the take infers nothing (an older owner would be named).
#[derive(Default)]
struct Owners {
    list: Vec<Owner>,
    lost_from: Option<u64>,
}

/// The rings: one per lane of each of `warps` warps, `lane_capacity` events each, and a count of
/// the events written per ring; the host's side beside them.
pub(super) struct TaskTraceBuffers {
    events: DeviceMem,
    counts: DeviceMem,
    lane_capacity: u32,
    /// Per ring, the events taken so far (one take at a time).
    taken: Mutex<Vec<u32>>,
    clock_kernel: Function,
    /// The clock's ping (word 0), the kernel's "started" (word 1) and stamps (from byte 8),
    /// mapped.
    clock_mem: MappedMem,
    clock: Mutex<Option<Clock>>,
    host: HostLog,
    next_host_id: AtomicU64,
    owners: Mutex<Owners>,
    /// A runtime with a heap samples its use.
    heap: Option<HeapTrace>,
}

/// Host spans (and submits' owners) a GPU trace keeps at least, whatever its events a warp.
const MIN_HOST_SPANS: usize = 1 << 16;

impl TaskTraceBuffers {
    /// Rings for `capacity` events a warp (rounded down to a power of two, at least one a
    /// lane) for each of `warps` warps of a GPU of `sms` SMs, which `module`'s scheduler will
    /// write (its `grosr_task_trace` is pointed at them; no kernel may run yet), with samples of
    /// the heap's pool when the runtime has a heap of `heap_slabs` slabs. An error if the
    /// capacity is out of range or the buffers would take more than a quarter of `free` bytes.
    pub(super) fn new(
        ctx: &Context,
        module: &Module,
        (warps, kinds, sms): (u32, usize, u32),
        capacity: usize,
        heap_slabs: Option<u32>,
        free: usize,
    ) -> Result<TaskTraceBuffers> {
        check(capacity, kinds)?;
        if sms > MAX_SMS {
            return Err(Error::Config(format!(
                "a trace on a GPU of {sms} SMs: an event keeps 8 bits of SM ({MAX_SMS})"
            )));
        }
        let lane_cap = lane_capacity(capacity);
        let rings = warps as usize * 32;
        if warps >= 1 << (31 - SLOT_BITS) {
            return Err(Error::Config(format!(
                "a trace of {warps} scheduler warps: at most {} (cap the SMs with max_sms)",
                (1u32 << (31 - SLOT_BITS)) - 1
            )));
        }
        let bytes = rings
            .checked_mul(lane_cap as usize)
            .and_then(|n| n.checked_mul(size_of::<TaskEvent>()))
            .filter(|b| *b <= free / 4)
            .ok_or_else(|| {
                Error::DoesNotFit(format!(
                    "a trace of {} events for each of {warps} warps ({} B each) needs \
                     more than a quarter of the GPU's free memory ({free} B): trace fewer events",
                    32 * lane_cap,
                    size_of::<TaskEvent>()
                ))
            })?;
        // Zeroed: a slot taken but not yet written must read as no event (start 0) in the first
        // take (later, its wrap count tells an old event apart).
        let events = DeviceMem::zeroed(ctx, bytes)?;
        let counts = DeviceMem::zeroed(ctx, rings * 4)?;
        let heap = match heap_slabs {
            Some(slabs) => Some(HeapTrace {
                samples: DeviceMem::zeroed(ctx, HEAP_SAMPLES * size_of::<HeapSample>())?,
                count: DeviceMem::zeroed(ctx, 8)?,
                slabs,
            }),
            None => None,
        };
        let (addr, size) = module.global("grosr_task_trace")?;
        if size != size_of::<TaskTraceDev>() {
            return Err(Error::Config(format!(
                "grosr_task_trace is {size} bytes on the device, not {}",
                size_of::<TaskTraceDev>()
            )));
        }
        let dev = TaskTraceDev {
            events: events.ptr(),
            counts: counts.ptr(),
            lane_capacity: lane_cap,
            lane_shift: lane_cap.trailing_zeros(),
            heap: heap.as_ref().map_or(0, |h| h.samples.ptr()),
            heap_count: heap.as_ref().map_or(0, |h| h.count.ptr()),
            heap_capacity: HEAP_SAMPLES as u32,
            pad: 0,
        };
        // SAFETY: addr is the module's grosr_task_trace (size checked); no kernel runs yet.
        unsafe { write_device(ctx, addr, std::slice::from_ref(&dev)) }?;
        Ok(TaskTraceBuffers {
            events,
            counts,
            lane_capacity: lane_cap,
            taken: Mutex::new(vec![0; rings]),
            clock_kernel: module.function("grosr_trace_clock")?,
            clock_mem: MappedMem::new(ctx, 8 + 8 * CLOCK_ROUNDS as usize)?,
            clock: Mutex::new(None),
            host: HostLog::new(capacity.max(MIN_HOST_SPANS)),
            next_host_id: AtomicU64::new(FIRST_HOST_ID),
            owners: Mutex::default(),
            heap,
        })
    }

    /// Sets the host's clock against the GPU's (the module docs say how); call it on `stream`
    /// while no scheduler runs (the clock kernel would wait behind one that holds every SM).
    pub(super) fn calibrate(&self, stream: &Stream) -> Result<()> {
        let base = self.clock_mem.host();
        // SAFETY: clock_mem holds 8 + 8 × CLOCK_ROUNDS bytes, 8-byte aligned (page-locked
        // memory is page aligned); the kernel is its only other user, and only while it runs.
        let word = |i: usize| unsafe { &*(base.add(4 * i) as *const AtomicU32) };
        let stamp = |r: u32| unsafe { &*(base.add(8 + 8 * r as usize) as *const AtomicU64) };
        // Relaxed: the launch below orders these writes before the kernel reads anything.
        word(0).store(0, Ordering::Relaxed);
        word(1).store(0, Ordering::Relaxed);
        for r in 0..CLOCK_ROUNDS {
            stamp(r).store(0, Ordering::Relaxed);
        }
        let dev = self.clock_mem.device();
        let (dev_words, dev_stamps) = (dev, dev + 8);
        // SAFETY: grosr_trace_clock takes (uint32_t*, uint64_t*, uint32_t); both pointers are
        // clock_mem's device addresses, which outlive the wait below.
        unsafe {
            stream.launch(
                &self.clock_kernel,
                1,
                1,
                0,
                (&dev_words, &dev_stamps, &CLOCK_ROUNDS),
            )
        }?;
        let started = Instant::now();
        let mut best: Option<(Duration, Clock)> = None;
        let mut failed = None;
        // Acquire: pairs with the kernel's system fence after "started".
        while word(1).load(Ordering::Acquire) == 0 {
            if started.elapsed() > CLOCK_START_WAIT {
                failed = Some(Error::Timeout(
                    CLOCK_START_WAIT,
                    "the trace's clock kernel to start",
                ));
                break;
            }
            std::hint::spin_loop();
        }
        'rounds: for r in 0..CLOCK_ROUNDS {
            if failed.is_some() {
                break;
            }
            let sent = Instant::now();
            // Relaxed: the kernel polls this word alone.
            word(0).store(r + 1, Ordering::Relaxed);
            loop {
                // Acquire: pairs with the kernel's system fence after its stamp.
                let gpu_ns = stamp(r).load(Ordering::Acquire);
                let now = Instant::now();
                if gpu_ns != 0 {
                    let bracket = now - sent;
                    if best.is_none_or(|(b, _)| bracket < b) {
                        let host = sent + bracket / 2;
                        best = Some((bracket, Clock { gpu_ns, host }));
                    }
                    break;
                }
                if now - sent > CLOCK_WAIT {
                    break 'rounds;
                }
                std::hint::spin_loop();
            }
        }
        // The kernel ends after its last answer, or 100 ms after the host's last ping.
        stream.wait(CLOCK_START_WAIT, "the trace's clock kernel")?;
        if let Some(e) = failed {
            return Err(e);
        }
        let (_, clock) = best.ok_or(Error::Timeout(
            CLOCK_WAIT,
            "the trace's clock kernel to answer",
        ))?;
        *self.clock.lock().unwrap_or_else(|e| e.into_inner()) = Some(clock);
        Ok(())
    }

    /// Now on the GPU's clock (nanoseconds of `%globaltimer`).
    pub(super) fn now(&self) -> u64 {
        self.at(Instant::now())
    }

    /// `t` on the GPU's clock (0 before the first calibration).
    fn at(&self, t: Instant) -> u64 {
        let clock = *self.clock.lock().unwrap_or_else(|e| e.into_inner());
        clock.map_or(0, |c| match t.checked_duration_since(c.host) {
            Some(after) => c.gpu_ns.saturating_add(after.as_nanos() as u64),
            None => c
                .gpu_ns
                .saturating_sub(c.host.duration_since(t).as_nanos() as u64),
        })
    }

    /// A fresh host span id and its start, for [`host_span`](Self::host_span).
    pub(super) fn host_start(&self) -> (u64, u64) {
        (
            self.next_host_id.fetch_add(1, Ordering::Relaxed),
            self.now(),
        )
    }

    /// A host call of the calling thread, from `start` until now; false if the log was full.
    pub(super) fn host_span(&self, (id, start): (u64, u64), what: &'static str, slot: u32) -> bool {
        self.host
            .record(id, what, u64::from(slot), start, self.now().max(start))
    }

    /// A submit (or graph launch, with its `edges`) whose host span is `span`, whose job came
    /// to own slot `slot` at `owned`.
    pub(super) fn submitted(
        &self,
        span: (u64, u64),
        what: &'static str,
        slot: u32,
        owned: Instant,
        edges: Option<&Arc<GraphEdges>>,
    ) {
        let kept = self.host_span(span, what, slot);
        let at_ns = self.at(owned);
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        if kept && owners.list.len() < self.host.capacity() {
            owners.list.push(Owner {
                slot,
                span: span.0,
                at_ns,
                edges: edges.cloned(),
            });
        } else {
            // Nothing after this can be matched to its submit for sure.
            owners.lost_from = Some(owners.lost_from.map_or(at_ns, |l| l.min(at_ns)));
        }
    }

    /// What the scheduler recorded since the last take: per ring, the events written since,
    /// the newest `lane_capacity` of them when more were (the others counted as dropped). Take
    /// it while the traced jobs are done: a task running meanwhile is counted as dropped.
    /// `names`: the task types by kind. Times are from the earliest event's start.
    pub(super) fn take(&self, task_names: Vec<&'static str>) -> Result<Trace> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = vec![0u32; taken.len()];
        self.counts.read(&mut counts)?;
        let mut trace = Trace {
            task_names,
            ..Trace::default()
        };
        let cap = self.lane_capacity as usize;
        let mut block = vec![TaskEvent::default(); 32 * cap];
        let mut events = Vec::new();
        // Ids that may also have named an earlier event of their ring since the last take, which
        // it overwrote: a child of that one would be credited to this one.
        let mut unsure = HashSet::new();
        for (w, (written, before)) in counts.chunks(32).zip(taken.chunks(32)).enumerate() {
            if written == before {
                continue;
            }
            // The warp's 32 rings in one read (2 MiB at most: fewer, larger copies than a ring's
            // new slots each, which may be 64 a warp).
            self.events
                .read_at(w * block.len() * size_of::<TaskEvent>(), &mut block)?;
            for (r, (&written, &before)) in written.iter().zip(before).enumerate() {
                // Lane r's ring: slot s at s * 32 + r (interleaved by lane on the device).
                let ring: Vec<TaskEvent> = (0..cap).map(|s| block[s * 32 + r]).collect();
                let (kept, dropped) = ring_take(&ring, written, before);
                trace.dropped += dropped;
                for (seq, e) in kept {
                    if seq.wrapping_sub(before) >= ID_SEQS {
                        unsure.insert(e.id);
                    }
                    events.push((w as u32, e));
                }
            }
        }
        // Only once every read succeeded: a failed take leaves the events for the next.
        *taken = counts;
        let (mut host, host_dropped) = self.host.take();
        trace.dropped += host_dropped;
        let owners = std::mem::take(&mut *self.owners.lock().unwrap_or_else(|e| e.into_inner()));
        let parents = parents(&events, &owners, &unsure);
        let heap = match &self.heap {
            Some(h) => Some(h.take()?),
            None => None,
        };
        // The earliest task or host call; with neither, the earliest heap sample (heap use by
        // lowered strategies' or your own kernels alone).
        let epoch = events
            .iter()
            .map(|(_, e)| e.start)
            .chain(host.iter().map(|h| h.start_ns))
            .min()
            .or_else(|| {
                heap.as_ref()
                    .and_then(|(s, _)| s.iter().map(|s| s.at).min())
            })
            .unwrap_or(0);
        // A track per warp, and per lane for lane tasks (a round's run side by side), only for
        // those with events, in order.
        let key = |w: u32, e: &TaskEvent| (w, (e.place >> 12) & 31, (e.place >> 17) & 0xFF);
        let mut keys: Vec<(u32, u32, u32)> = events.iter().map(|(w, e)| key(*w, e)).collect();
        keys.sort_unstable();
        keys.dedup();
        let per_block = crate::layout::BLOCK_THREADS / 32;
        trace.tracks = keys
            .iter()
            .map(|&(w, lane, sm)| {
                format!(
                    "SM {sm} block {} warp {} lane {lane}",
                    w / per_block,
                    w % per_block
                )
            })
            .collect();
        let track_of = |w: u32, e: &TaskEvent| keys.binary_search(&key(w, e)).unwrap_or(0) as u32;
        trace.tasks = events
            .iter()
            .zip(parents)
            .map(|(&(w, e), parent)| TaskSpan {
                id: u64::from(e.id),
                parent,
                kind: e.place & 0xFFF,
                node: (e.origin & ORIGIN_GRAPH != 0 && e.origin != ORIGIN_GRAPH)
                    .then(|| (e.origin & !ORIGIN_GRAPH) - 1),
                job: u64::from(e.job),
                track: track_of(w, &e),
                start_ns: e.start.saturating_sub(epoch),
                end_ns: e.end.saturating_sub(epoch),
            })
            .collect();
        for h in &mut host {
            h.start_ns = h.start_ns.saturating_sub(epoch);
            h.end_ns = h.end_ns.saturating_sub(epoch);
        }
        trace.host = host;
        trace.counters = queued_tasks(&trace.tasks, &trace.host);
        if let (Some(h), Some((samples, dropped))) = (&self.heap, heap) {
            trace.dropped += dropped;
            trace.counters.extend(heap_bytes(&samples, h.slabs, epoch));
        }
        Ok(trace)
    }
}

impl HeapTrace {
    /// The samples since the last take (emptied, as the events are), and how many were dropped.
    fn take(&self) -> Result<(Vec<HeapSample>, u64)> {
        let mut n = [0u64];
        self.count.read(&mut n)?;
        let kept = (n[0] as usize).min(HEAP_SAMPLES);
        let mut samples = vec![HeapSample::default(); kept];
        self.samples.read_at(0, &mut samples)?;
        // Zeroed again before the count is: the next take's slots start unwritten.
        self.samples
            .write_at(0, &vec![HeapSample::default(); kept])?;
        self.count.write(&[0u64])?;
        // A slot taken but not yet written is left out.
        samples.retain(|s| s.at != 0);
        Ok((samples, n[0] - kept as u64))
    }
}

/// The heap's use over time from the pool's samples: bytes held in slabs (the pool's slabs not
/// free, whole), at most one sample a microsecond (the last in it), times from `epoch`. The
/// last sample before the epoch, if any, gives the value at 0.
fn heap_bytes(samples: &[HeapSample], slabs: u32, epoch: u64) -> Vec<CounterSample> {
    let mut sorted: Vec<(u64, i64)> = samples
        .iter()
        .map(|s| (s.at, i64::from(slabs) - i64::from(s.free_slabs)))
        .collect();
    sorted.sort_unstable();
    let start = sorted
        .partition_point(|&(at, _)| at < epoch)
        .saturating_sub(1);
    let mut out = Vec::new();
    for (i, &(at, held)) in sorted.iter().enumerate().skip(start) {
        let at_ns = at.saturating_sub(epoch);
        let next = sorted.get(i + 1).map(|s| s.0.saturating_sub(epoch));
        if next.is_none_or(|n| n / 1000 != at_ns / 1000) {
            out.push(CounterSample {
                name: "heap bytes",
                at_ns,
                // The count may dip below zero for an instant (a reservation given back).
                value: (held.clamp(0, i64::from(slabs)) as u64 * crate::alloc::SLAB_BYTES) as f64,
            });
        }
    }
    out
}

/// A ring's events written since the last take, `written` of them in all against `before` then
/// (counts wrap): the newest `ring.len()` at most, those still being written (start 0, end
/// before start) or already overwritten (another wrap count) left out, and how many were not
/// kept.
fn ring_take(ring: &[TaskEvent], written: u32, before: u32) -> (Vec<(u32, TaskEvent)>, u64) {
    let cap = ring.len() as u32;
    let new = written.wrapping_sub(before);
    // A count never goes back (a relaunch goes on from it): a wrapped difference this large
    // would be a corrupted count, and nothing is read.
    if new > u32::MAX / 2 {
        return (Vec::new(), 0);
    }
    let kept = new.min(cap);
    let mut dropped = u64::from(new - kept);
    let mut out = Vec::with_capacity(kept as usize);
    for seq in (0..kept).map(|k| written.wrapping_sub(kept - k)) {
        let e = ring[(seq & (cap - 1)) as usize];
        let wrap = (seq >> cap.trailing_zeros()) & 0x7F;
        if e.start != 0 && e.end >= e.start && e.place >> GEN_SHIFT == wrap {
            out.push((seq, e));
        } else {
            dropped += 1;
        }
    }
    (out, dropped)
}

/// Each event's parent: the origin the GPU recorded, or the one the module docs say the take
/// fills in (times: the GPU's clock, before the take's epoch is subtracted).
fn parents(events: &[(u32, TaskEvent)], owners: &Owners, unsure: &HashSet<u32>) -> Vec<u64> {
    // Ids are unique within a take (a ring gives at most one event per slot); a slot's id
    // repeats across takes, so an origin names a spawner only if this take holds an event of
    // that id that started no later, and no earlier event of the id came since the last take
    // (`unsure`: its ring wrote 2048 or more since, and overwrote it).
    let started: HashMap<u32, u64> = events.iter().map(|(_, e)| (e.id, e.start)).collect();
    // Each slot's owners, by the time they took it.
    let mut of_slot: HashMap<u32, Vec<(u64, usize)>> = HashMap::new();
    for (i, o) in owners.list.iter().enumerate() {
        of_slot.entry(o.slot).or_default().push((o.at_ns, i));
    }
    for v in of_slot.values_mut() {
        v.sort_unstable();
    }
    // The owner of an event's slot when it started, if the take can tell.
    let owner_of = |e: &TaskEvent| -> Option<usize> {
        if owners.lost_from.is_some_and(|l| e.start >= l) {
            return None;
        }
        let v = of_slot.get(&e.job)?;
        v[..v.partition_point(|&(at, _)| at <= e.start)]
            .last()
            .map(|&(_, i)| i)
    };
    let tag = |e: &TaskEvent| (e.origin & ORIGIN_GRAPH != 0).then_some(e.origin & !ORIGIN_GRAPH);
    // Each tagged event's launch, and each launch's node events.
    let mut launch_of = vec![None; events.len()];
    let mut node_event: HashMap<(usize, u32), usize> = HashMap::new();
    for (k, (_, e)) in events.iter().enumerate() {
        let (Some(t @ 1..), Some(o)) = (tag(e), owner_of(e)) else {
            continue;
        };
        if owners.list[o].edges.is_some() {
            launch_of[k] = Some(o);
            node_event.entry((o, t - 1)).or_insert(k);
        }
    }
    let mut preds: HashMap<*const GraphEdges, GraphEdges> = HashMap::new();
    for edges in owners.list.iter().filter_map(|o| o.edges.as_ref()) {
        preds
            .entry(Arc::as_ptr(edges))
            .or_insert_with(|| edges.predecessors());
    }
    events
        .iter()
        .enumerate()
        .map(|(k, (_, e))| {
            if let Some(t) = tag(e) {
                let (Some(o), 1..) = (launch_of[k], t) else {
                    return 0;
                };
                let launch = &owners.list[o];
                let Some(edges) = &launch.edges else {
                    return 0;
                };
                let of = preds[&Arc::as_ptr(edges)].of(t as usize - 1);
                if of.is_empty() {
                    return launch.span;
                }
                // The predecessor that ended last before this node started released it (the
                // one that ended last at all, should the clocks disagree).
                return of
                    .iter()
                    .filter_map(|p| node_event.get(&(o, *p)))
                    .map(|&j| &events[j].1)
                    .max_by_key(|p| (p.end <= e.start, p.end))
                    .map_or(0, |p| u64::from(p.id));
            }
            if e.origin == 0 {
                return owner_of(e).map_or(0, |o| owners.list[o].span);
            }
            if !unsure.contains(&e.origin) && started.get(&e.origin).is_some_and(|&s| s <= e.start)
            {
                u64::from(e.origin)
            } else {
                0
            }
        })
        .collect()
}

/// Tasks queued over time, from the events: a task counts from its origin's end (its start, if
/// that came first) until it starts; sampled at most once a microsecond, the value at the
/// sample's time.
fn queued_tasks(tasks: &[TaskSpan], host: &[crate::trace::HostSpan]) -> Vec<CounterSample> {
    let ends: HashMap<u64, u64> = tasks
        .iter()
        .map(|t| (t.id, t.end_ns))
        .chain(host.iter().map(|h| (h.id, h.end_ns)))
        .collect();
    let mut steps: Vec<(u64, i64)> = Vec::with_capacity(2 * tasks.len());
    for t in tasks {
        if let Some(&from) = ends.get(&t.parent) {
            steps.push((from.min(t.start_ns), 1));
            steps.push((t.start_ns, -1));
        }
    }
    steps.sort_unstable();
    let mut samples = Vec::new();
    let mut value = 0i64;
    for (i, &(at, d)) in steps.iter().enumerate() {
        value += d;
        let next = steps.get(i + 1).map(|s| s.0);
        // One sample per microsecond (the last step's value within it), and the last.
        if next.is_none_or(|n| n / 1000 != at / 1000) {
            samples.push(CounterSample {
                name: "queued tasks",
                at_ns: at,
                value: value as f64,
            });
        }
    }
    samples
}

impl Default for TaskEvent {
    fn default() -> Self {
        bytemuck::Zeroable::zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u32, origin: u32, job: u32, start: u64, end: u64) -> (u32, TaskEvent) {
        let e = TaskEvent {
            start,
            end,
            id,
            origin,
            place: 0,
            job,
        };
        (0, e)
    }

    fn owner(slot: u32, span: u64, at_ns: u64, edges: Option<&Arc<GraphEdges>>) -> Owner {
        Owner {
            slot,
            span,
            at_ns,
            edges: edges.cloned(),
        }
    }

    const G: u32 = ORIGIN_GRAPH;

    /// A diamond 0 → {1, 2} → 3 launched twice in slot 5, and a submit in slot 6 that spawned.
    #[test]
    fn the_take_names_submits_launches_and_the_predecessor_that_ended_last() {
        let edges = Arc::new(GraphEdges {
            succ_off: vec![0, 2, 3, 4, 4],
            succ: vec![1, 2, 3, 3],
        });
        let h = |i| FIRST_HOST_ID + i;
        let owners = Owners {
            list: vec![
                owner(5, h(0), 100, Some(&edges)),
                owner(5, h(1), 1000, Some(&edges)),
                owner(6, h(2), 2000, None),
            ],
            lost_from: None,
        };
        let g = |node: u32| G | (node + 1);
        let events = [
            // Launch 1: node 2 ends after node 1, so node 2 released node 3.
            event(1, g(0), 5, 120, 130),
            event(2, g(1), 5, 140, 150),
            event(3, g(2), 5, 140, 170),
            event(4, g(3), 5, 180, 190),
            // Launch 2: node 1 ends last this time.
            event(5, g(0), 5, 1020, 1030),
            event(6, g(1), 5, 1040, 1080),
            event(7, g(2), 5, 1040, 1050),
            event(8, g(3), 5, 1090, 1095),
            // A submitted task and its child.
            event(9, 0, 6, 2010, 2020),
            event(10, 9, 6, 2030, 2040),
        ];
        let got = parents(&events, &owners, &HashSet::new());
        assert_eq!(got, vec![h(0), 1, 1, 3, h(1), 5, 5, 6, h(2), 9]);
    }

    /// Job B's submit started while job A still ran in their slot (B waited for it): A's late
    /// task names A, whose owner is the latest before it; B owns the slot only from A's end.
    #[test]
    fn a_slot_is_its_jobs_from_when_the_job_owned_it_not_from_its_submits_start() {
        let owners = Owners {
            list: vec![owner(3, 100, 1000, None), owner(3, 101, 3000, None)],
            lost_from: None,
        };
        let events = [event(1, 0, 3, 1500, 2900), event(2, 0, 3, 3100, 3200)];
        assert_eq!(parents(&events, &owners, &HashSet::new()), vec![100, 101]);
    }

    /// What the take cannot tell names nothing: a task after the first owner the log dropped,
    /// a tagged task with no launch, a tag of 0, a task before any owner of its slot, the child
    /// of a task this take does not hold, the child of an id that started after it (its ring's
    /// slot reused: another task); a spawner it holds that started first is named.
    #[test]
    fn what_the_take_cannot_tell_names_no_parent() {
        let owners = Owners {
            list: vec![owner(1, 100, 1000, None), owner(2, 101, 1000, None)],
            lost_from: Some(5000),
        };
        let events = [
            event(1, 0, 1, 1100, 1200),
            event(2, 0, 1, 6000, 6100),
            event(3, G | 4, 1, 1300, 1400),
            event(4, G, 2, 1300, 1400),
            event(5, 0, 9, 1300, 1400),
            event(6, 0, 2, 900, 950),
            event(7, (1 << SLOT_BITS) | 101, 1, 1500, 1600),
            event(8, 2, 1, 1500, 1600),
            event(9, 1, 1, 1500, 1600),
        ];
        assert_eq!(
            parents(&events, &owners, &HashSet::new()),
            vec![100, 0, 0, 0, 0, 0, 0, 0, 1]
        );
    }

    /// A spawner's id that its ring may have given an earlier, overwritten event since the last
    /// take (the ring wrote 2048 or more) names nothing: the child may be that one's.
    #[test]
    fn an_id_its_ring_may_have_reused_since_the_last_take_names_no_parent() {
        let owners = Owners::default();
        let events = [event(7, 0, 1, 100, 200), event(8, 7, 1, 300, 400)];
        assert_eq!(parents(&events, &owners, &HashSet::new()), vec![0, 7]);
        assert_eq!(parents(&events, &owners, &HashSet::from([7])), vec![0, 0]);
    }

    /// A ring of 4 read at counts 3 (all three), then 9 (the newest 4 of 6 new, 2 dropped;
    /// one of them still running, one an old event the newer has not yet overwritten: both
    /// dropped too), then across the counts' wrap.
    #[test]
    fn a_ring_gives_its_newest_events_and_drops_what_it_cannot_tell() {
        let ev = |seq: u32, end: u64| TaskEvent {
            start: 10 + u64::from(seq),
            end,
            id: seq,
            origin: 0,
            place: (seq >> 2 & 0x7F) << GEN_SHIFT,
            job: 0,
        };
        // The events' ids are their seqs: each kept one comes with its own.
        let ids = |v: &[(u32, TaskEvent)]| {
            assert!(v.iter().all(|(seq, e)| *seq == e.id));
            v.iter().map(|(_, e)| e.id).collect::<Vec<_>>()
        };
        let mut ring = [ev(0, 100), ev(1, 100), ev(2, 100), TaskEvent::default()];
        let (kept, dropped) = ring_take(&ring, 3, 0);
        assert_eq!((ids(&kept), dropped), (vec![0, 1, 2], 0));
        // Written since: 3..9; slots now hold 8, 5 (still running), 6, 3 (7 not yet written).
        ring = [ev(8, 100), ev(5, 0), ev(6, 100), ev(3, 100)];
        let (kept, dropped) = ring_take(&ring, 9, 3);
        assert_eq!((ids(&kept), dropped), (vec![6, 8], 4));
        // Counts that wrapped past u32::MAX: 2 new events, seqs u32::MAX and 0.
        let top = u32::MAX;
        ring = [ev(0, 100), ev(1, 100), ev(2, 100), ev(top, 100)];
        ring[3].start = 5;
        let (kept, dropped) = ring_take(&ring, 1, top);
        assert_eq!((ids(&kept), dropped), (vec![top, 0], 0));
        // A count that went back reads nothing.
        assert_eq!(ring_take(&ring, 1, 2).0.len(), 0);
    }

    #[test]
    fn a_warp_keeps_whole_rings_of_at_least_one_event_a_lane() {
        assert_eq!(lane_capacity(1), 1);
        assert_eq!(lane_capacity(2), 1);
        assert_eq!(lane_capacity(4096), 128);
        assert_eq!(lane_capacity(5000), 128);
        assert_eq!(lane_capacity(MAX_EVENTS), 2048);
    }

    #[test]
    fn a_task_counts_as_queued_from_its_origins_end_until_it_starts() {
        let task = |id, parent, start_ns, end_ns| TaskSpan {
            id,
            parent,
            kind: 0,
            node: None,
            job: 0,
            track: 0,
            start_ns,
            end_ns,
        };
        // 1 ends at 10_000; 2 waits from then until 30_000, 3 until 40_000; 4 started before
        // its parent ended (counted from its start: no time queued).
        let tasks = [
            task(1, 0, 0, 10_000),
            task(2, 1, 30_000, 31_000),
            task(3, 1, 40_000, 41_000),
            task(4, 1, 5_000, 6_000),
        ];
        let samples: Vec<(u64, f64)> = queued_tasks(&tasks, &[])
            .iter()
            .map(|c| (c.at_ns, c.value))
            .collect();
        assert_eq!(
            samples,
            vec![(5_000, 0.0), (10_000, 2.0), (30_000, 1.0), (40_000, 0.0)]
        );
    }

    #[test]
    fn heap_samples_become_bytes_held_from_the_last_one_before_the_epoch() {
        let sample = |at, free_slabs| HeapSample {
            at,
            free_slabs,
            pad: 0,
        };
        // A heap of 10 slabs; the epoch at 100_000. Out of order, as warps write them; two in
        // one microsecond (the later kept), one below zero for an instant (a reservation
        // given back: clamped to the whole heap).
        let samples = [
            sample(150_000, 7),
            sample(90_000, 9),
            sample(50_000, 10),
            sample(150_400, 6),
            sample(200_000, -1),
            sample(300_000, 10),
        ];
        let got: Vec<(u64, f64)> = heap_bytes(&samples, 10, 100_000)
            .iter()
            .map(|c| {
                assert_eq!(c.name, "heap bytes");
                (c.at_ns, c.value)
            })
            .collect();
        let slab = crate::alloc::SLAB_BYTES as f64;
        assert_eq!(
            got,
            vec![
                (0, slab),
                (50_400, 4.0 * slab),
                (100_000, 10.0 * slab),
                (200_000, 0.0)
            ]
        );
        assert!(heap_bytes(&[], 10, 0).is_empty());
    }
}
