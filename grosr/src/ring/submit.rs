//! One submission, start to end (the module doc's "One submission" lists the steps).

use super::producer::{Producer, wait_job_slot};
use super::wait::{Health, Waiter};
use super::{DescFields, JobTicket, Mutex, Records, Ring, publish, travels_inline};
use crate::error::{Error, Result};
use crate::layout::{KIND_GRAPH, KIND_GRAPH_SMALL};

/// What one submission carries; each becomes one job.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Submission<'b> {
    /// `bytes` as records of kind `kind`, `record_size` bytes each (a nonzero divisor of the
    /// length): a job of one task per record.
    Records {
        kind: u32,
        record_size: usize,
        bytes: &'b [u8],
    },
    /// A resident graph's launch record (`KIND_GRAPH`, `graph::resident::launch_record`); the
    /// GPU counts the tasks the graph spawns into the job itself.
    Graph { record: &'b [u32] },
    /// A small graph carried whole (`KIND_GRAPH_SMALL`, `graph::resident::small_launch`): one
    /// record that runs as `nodes` (at least 1) tasks.
    SmallGraph { graph: &'b [u32], nodes: u32 },
}

/// A submission as the descriptors carry it.
struct Wire<'b> {
    kind: u32,
    record_size: usize,
    bytes: &'b [u8],
    /// Tasks the job counts beyond one per record (on its first descriptor's `adjust`).
    extra: u32,
}

impl<'b> Submission<'b> {
    fn wire(self) -> Wire<'b> {
        let one_record = |kind, words: &'b [u32], extra| {
            let bytes: &[u8] = bytemuck::cast_slice(words);
            Wire {
                kind,
                record_size: bytes.len(),
                bytes,
                extra,
            }
        };
        match self {
            Submission::Records {
                kind,
                record_size,
                bytes,
            } => Wire {
                kind,
                record_size,
                bytes,
                extra: 0,
            },
            Submission::Graph { record } => one_record(KIND_GRAPH, record, 0),
            Submission::SmallGraph { graph, nodes } => {
                // A small graph has at least one node (the runtime builds none without).
                one_record(KIND_GRAPH_SMALL, graph, nodes.saturating_sub(1))
            }
        }
    }
}

/// Where chunks' records are copied: the mapped arena (the runtime), host memory (tests).
pub(crate) trait Arena {
    /// Copies `bytes` to byte `offset` of the arena; returns the address the GPU reads them at.
    ///
    /// # Safety
    ///
    /// `[offset, offset + bytes.len())` lies inside the arena and is reserved to the caller
    /// ([`Producer::reserve_chunk`]): nothing else writes it, and the GPU reads it only after the
    /// descriptor that names it is published.
    unsafe fn copy_in(&self, offset: u64, bytes: &[u8]) -> u64;
}

/// Submits `submission` as one job: takes a job slot, waits for it, reserves descriptors (and
/// arena space), copies and publishes. `None` for a submission without records (nothing to
/// wait for). Waits at most as long as `wait` allows, ending early when `health` fails.
pub(crate) fn submit(
    producer: &Mutex<Producer>,
    ring: &Ring,
    arena: &impl Arena,
    submission: Submission,
    wait: &mut Waiter,
    health: Health,
) -> Result<Option<JobTicket>> {
    let Wire {
        kind,
        record_size,
        bytes,
        extra,
    } = submission.wire();
    if record_size == 0 {
        return Err(Error::Config(
            "records of 0 bytes cannot be submitted".into(),
        ));
    }
    let count = bytes.len() / record_size;
    if count == 0 {
        return Ok(None);
    }
    // Each call locks for one step and unlocks at once: the waits between the steps run without
    // the mutex, and no guard may outlive its statement (a second lock() would deadlock).
    let lock = || producer.lock().unwrap_or_else(|e| e.into_inner());
    let (job, per_chunk) = {
        let mut p = lock();
        let per_chunk = (p.max_chunk_bytes() as usize / record_size).min(u32::MAX as usize);
        if per_chunk == 0 {
            return Err(Error::Config(format!(
                "a {record_size}-byte record is larger than an arena chunk ({} bytes)",
                p.max_chunk_bytes()
            )));
        }
        (p.take_job(ring), per_chunk)
    };
    // A slot whose previous job was orphaned is freed by settling orphans while we wait.
    let settle_then_check = || {
        lock().settle_orphans(ring);
        health()
    };
    let slot_free = wait_job_slot(ring, job, wait, &settle_then_check);
    if let Err(e) = slot_free {
        lock().orphan(job);
        return Err(e);
    }
    if travels_inline(bytes.len(), record_size) {
        // Few small records travel in the descriptor itself: the GPU reads them with the
        // descriptor in one PCIe round trip, and no arena space is taken or given back.
        let reserved = lock().reserve_inline(ring, wait, health);
        let t = match reserved {
            Ok(t) => t,
            Err(e) => {
                lock().orphan(job);
                return Err(e);
            }
        };
        let fields = DescFields {
            records: Records::Inline(bytes),
            kind,
            count: count as u32,
            job,
            adjust: extra as i32,
        };
        publish(ring, t.desc, fields);
        return Ok(Some(job));
    }
    let chunks = count.div_ceil(per_chunk);
    for (i, chunk) in bytes.chunks(per_chunk * record_size).enumerate() {
        let reserved = lock().reserve_chunk(ring, chunk.len() as u64, wait, health);
        let t = match reserved {
            Ok(t) => t,
            // Nothing of the job was published yet: its slot is settled later. A job that
            // failed between chunks keeps its slot until the runtime is restarted (its
            // published chunks hold the split guard); submit_timeout makes that rare.
            Err(e) => {
                if i == 0 {
                    lock().orphan(job);
                }
                return Err(e);
            }
        };
        // SAFETY: reserve_chunk handed us [offset, offset + len) of the arena exclusively
        // until the GPU marks this descriptor read, which happens only after publish.
        let records = unsafe { arena.copy_in(t.offset, chunk) };
        // A job split over several descriptors holds one extra count from its first chunk to
        // its last, so it cannot complete between chunks.
        let adjust = match (i == 0, i + 1 == chunks) {
            (true, false) => 1,
            (false, true) => -1,
            _ => 0,
        } + if i == 0 { extra as i32 } else { 0 };
        let fields = DescFields {
            records: Records::Arena(records),
            kind,
            count: (chunk.len() / record_size) as u32,
            job,
            adjust,
        };
        publish(ring, t.desc, fields);
    }
    Ok(Some(job))
}

/// Host memory standing in for the mapped arena, in words (tests and loom): the address a
/// descriptor carries is the byte offset.
#[cfg(test)]
pub(crate) struct HostArena(Vec<super::AtomicU32>);

#[cfg(test)]
impl HostArena {
    pub fn new(words: usize) -> HostArena {
        HostArena((0..words).map(|_| super::AtomicU32::new(0)).collect())
    }

    /// Word `i` as the GPU would read it after acquiring its descriptor.
    pub fn word(&self, i: usize) -> u32 {
        self.0[i].load(super::Ordering::Relaxed)
    }
}

#[cfg(test)]
impl Arena for HostArena {
    unsafe fn copy_in(&self, offset: u64, bytes: &[u8]) -> u64 {
        for (i, w) in bytes.chunks(4).enumerate() {
            let v = u32::from_le_bytes(w.try_into().expect("records of whole words"));
            // Relaxed: publish's release stores order these before the descriptor.
            self.0[offset as usize / 4 + i].store(v, super::Ordering::Relaxed);
        }
        offset
    }
}
