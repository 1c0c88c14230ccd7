//! The GPU's task timeline ([`RuntimeBuilder::trace`](super::RuntimeBuilder::trace)): the
//! per-warp buffers the scheduler writes one event per task into (cuda/grosr_task_trace.cuh,
//! which documents the ids and origins), and their reading into a [`Trace`].

use crate::driver::{Context, DeviceMem, Module, write_device};
use crate::error::{Error, Result};
use crate::trace::{TaskSpan, Trace};

/// `grosr::TaskEvent`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct TaskEvent {
    start: u64,
    end: u64,
    id: u32,
    origin: u32,
    /// Kind (bits 0-11), lane (12-16, lane tasks), SM (17-).
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
    capacity: u32,
    warps: u32,
}

/// An event's origin that is a graph tag, not a task's id (`ORIGIN_GRAPH`).
const ORIGIN_GRAPH: u32 = 0x8000_0000;
/// Ids hold the warp above 17 bits of slot, and stay under 2^31.
const SLOT_BITS: u32 = 17;

/// The settings a GPU trace refuses, checked before the module is compiled: `capacity` events
/// a warp, of `kinds` task types.
pub(super) fn check(capacity: usize, kinds: usize) -> Result<()> {
    if kinds > 1 << 12 {
        return Err(Error::Config(format!(
            "a trace of {kinds} task types: an event keeps 12 bits of kind (4096 types)"
        )));
    }
    let max = (1usize << SLOT_BITS) - 2;
    if capacity == 0 || capacity > max {
        return Err(Error::Config(format!(
            "a trace of {capacity} events a track: a GPU's warps keep 1 to {max} each"
        )));
    }
    Ok(())
}

/// The buffers: `warps` × `capacity` events and a count per warp.
pub(super) struct TaskTraceBuffers {
    events: DeviceMem,
    counts: DeviceMem,
    capacity: u32,
    warps: u32,
    /// One take at a time.
    taking: std::sync::Mutex<()>,
}

impl TaskTraceBuffers {
    /// Buffers of `capacity` events for each of `warps` warps, which `module`'s scheduler will
    /// write (its `grosr_task_trace` is pointed at them; no kernel may run yet). An error if the
    /// capacity is out of range or the buffers would take more than a quarter of `free` bytes.
    pub(super) fn new(
        ctx: &Context,
        module: &Module,
        (warps, kinds): (u32, usize),
        capacity: usize,
        free: usize,
    ) -> Result<TaskTraceBuffers> {
        check(capacity, kinds)?;
        if warps >= 1 << (31 - SLOT_BITS) {
            return Err(Error::Config(format!(
                "a trace of {warps} scheduler warps: at most {} (cap the SMs with max_sms)",
                (1u32 << (31 - SLOT_BITS)) - 1
            )));
        }
        let bytes = (warps as usize)
            .checked_mul(capacity)
            .and_then(|n| n.checked_mul(size_of::<TaskEvent>()))
            .filter(|b| *b <= free / 4)
            .ok_or_else(|| {
                Error::DoesNotFit(format!(
                    "a trace of {capacity} events for each of {warps} warps ({} B each) needs \
                     more than a quarter of the GPU's free memory ({free} B): trace fewer events",
                    size_of::<TaskEvent>()
                ))
            })?;
        // Zeroed: a slot taken but not yet written must read as no event (start 0), in the
        // first take too.
        let events = DeviceMem::zeroed(ctx, bytes)?;
        let counts = DeviceMem::zeroed(ctx, warps as usize * 8)?;
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
            capacity: capacity as u32,
            warps,
        };
        // SAFETY: addr is the module's grosr_task_trace (size checked); no kernel runs yet.
        unsafe { write_device(ctx, addr, std::slice::from_ref(&dev)) }?;
        Ok(TaskTraceBuffers {
            events,
            counts,
            capacity: capacity as u32,
            warps,
            taking: std::sync::Mutex::new(()),
        })
    }

    /// What the scheduler recorded since the last take, which empties the buffers. Take it
    /// while the traced jobs are done: a task running meanwhile may be lost, and ids start over
    /// (a task queued before the take names an id of the last one). `names`: the task types by
    /// kind. Times are from the earliest event's start.
    pub(super) fn take(&self, task_names: Vec<&'static str>) -> Result<Trace> {
        let _one = self.taking.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = vec![0u64; self.warps as usize];
        self.counts.read(&mut counts)?;
        let mut trace = Trace {
            task_names,
            ..Trace::default()
        };
        let cap = self.capacity as usize;
        let mut events = Vec::new();
        for (w, &n) in counts.iter().enumerate() {
            let kept = (n as usize).min(cap);
            trace.dropped += n - kept as u64;
            if kept > 0 {
                let mut mine = vec![TaskEvent::default(); kept];
                let at = w * cap * size_of::<TaskEvent>();
                self.events.read_at(at, &mut mine)?;
                // Zeroed again before the count is: the next take's slots start unwritten.
                self.events
                    .write_at(at, &vec![TaskEvent::default(); kept])?;
                // A slot taken but not yet written (a task still running) is left out.
                events.extend(
                    mine.into_iter()
                        .filter(|e| e.start != 0 && e.end >= e.start)
                        .map(|e| (w as u32, e)),
                );
            }
        }
        // Read first, then emptied.
        self.counts.write(&vec![0u64; self.warps as usize])?;
        let epoch = events.iter().map(|(_, e)| e.start).min().unwrap_or(0);
        // A track per warp, and per lane for lane tasks (a round's run side by side), only for
        // those with events, in order.
        let key = |w: u32, e: &TaskEvent| (w, (e.place >> 12) & 31, e.place >> 17);
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
            .map(|&(w, e)| (track_of(w, &e), e))
            .map(|(track, e)| TaskSpan {
                id: u64::from(e.id),
                // A graph node's origin (a tag) names no task: its arrows are the graph's edges;
                // a dropped task's id (slot field past the capacity) names no event either.
                parent: if e.origin & ORIGIN_GRAPH != 0
                    || e.origin & ((1 << SLOT_BITS) - 1) > self.capacity
                {
                    0
                } else {
                    u64::from(e.origin)
                },
                kind: e.place & 0xFFF,
                job: u64::from(e.job),
                track,
                start_ns: e.start.saturating_sub(epoch),
                end_ns: e.end.saturating_sub(epoch),
            })
            .collect();
        Ok(trace)
    }
}

impl Default for TaskEvent {
    fn default() -> Self {
        bytemuck::Zeroable::zeroed()
    }
}
