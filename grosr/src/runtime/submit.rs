//! Submitting records: the runtime's side of the ring (ring.rs holds the protocol's cells).

use std::sync::atomic::Ordering as StdOrdering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::record::Task;
use crate::ring::{self, DescFields, Records, Waiter};

use super::{Job, Runtime};

impl Runtime {
    /// Submits `records` as one job and returns at once; waits only while the ring is full
    /// (at most the builder's `submit_timeout`).
    pub fn submit<T: Task + 'static>(&self, records: &[T]) -> Result<Job<'_>> {
        self.submit_timeout(records, self.config.submit_timeout)
    }

    /// [`submit`](Runtime::submit), waiting at most `timeout` for ring space.
    pub fn submit_timeout<T: Task + 'static>(
        &self,
        records: &[T],
        timeout: Duration,
    ) -> Result<Job<'_>> {
        let kind = self.kind_of::<T>()?;
        self.submit_bytes(
            kind,
            size_of::<T>(),
            bytemuck::cast_slice(records),
            0,
            timeout,
        )
    }

    /// Submits raw records of kind `kind` (`record_size` bytes each). For tests of the GPU's
    /// handling of corrupt input; use [`submit`](Runtime::submit).
    #[doc(hidden)]
    pub fn submit_raw(&self, kind: u32, record_size: usize, bytes: &[u8]) -> Result<Job<'_>> {
        if record_size == 0
            || record_size > crate::MAX_RECORD_BYTES
            || bytes.len() % record_size != 0
        {
            return Err(Error::Config(format!(
                "raw records of {record_size} B cannot hold {} B",
                bytes.len()
            )));
        }
        self.submit_bytes(kind, record_size, bytes, 0, self.config.submit_timeout)
    }

    /// Submits `bytes` as records of `record_size` bytes; the job counts `extra` tasks more than
    /// records (a small graph's launch is one record that runs as several tasks).
    pub(crate) fn submit_bytes(
        &self,
        kind: u32,
        record_size: usize,
        bytes: &[u8],
        extra: u32,
        timeout: Duration,
    ) -> Result<Job<'_>> {
        // No driver call on the fast path (a cuStreamQuery costs microseconds): a kernel that
        // died since the last check is noticed by the bounded waits below and by Job::wait.
        self.state()?;
        let generation = self.generation.load(StdOrdering::Acquire);
        let count = bytes.len() / record_size;
        if count == 0 {
            return Ok(Job {
                rt: self,
                ticket: None,
                generation,
            });
        }
        let ring = self.memory.ring();
        let health = || self.health();
        let mut wait = Waiter::new(timeout);
        let lock = || self.producer.lock().unwrap_or_else(|e| e.into_inner());
        let (job, per_chunk) = {
            let mut p = lock();
            let per_chunk = (p.max_chunk_bytes() as usize / record_size).min(u32::MAX as usize);
            (p.take_job(&ring), per_chunk)
        };
        // A slot whose previous job was orphaned is freed by settling orphans while we wait.
        let settle_then_check = || {
            lock().settle_orphans(&ring);
            health()
        };
        if let Err(e) = ring::wait_job_slot(&ring, job, &mut wait, &settle_then_check) {
            lock().orphan(job);
            return Err(e);
        }
        if ring::travels_inline(bytes.len(), record_size) {
            // Few small records travel in the descriptor itself: the GPU reads them with the
            // descriptor in one PCIe round trip, and no arena space is taken or given back.
            let t = match lock().reserve_inline(&ring, &mut wait, &health) {
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
            ring::publish(&ring, t.desc, fields);
            return Ok(Job {
                rt: self,
                ticket: Some(job),
                generation,
            });
        }
        let chunks = count.div_ceil(per_chunk);
        for (i, chunk) in bytes.chunks(per_chunk * record_size).enumerate() {
            let t = match lock().reserve_chunk(&ring, chunk.len() as u64, &mut wait, &health) {
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
            unsafe {
                std::ptr::copy_nonoverlapping(
                    chunk.as_ptr(),
                    self.memory.arena.host().add(t.offset as usize),
                    chunk.len(),
                );
            }
            // A job split over several descriptors holds one extra count from its first chunk to
            // its last, so it cannot complete between chunks.
            let adjust = match (i == 0, i + 1 == chunks) {
                (true, false) => 1,
                (false, true) => -1,
                _ => 0,
            } + if i == 0 { extra as i32 } else { 0 };
            let fields = DescFields {
                records: Records::Arena(self.memory.arena.device() + t.offset),
                kind,
                count: (chunk.len() / record_size) as u32,
                job,
                adjust,
            };
            ring::publish(&ring, t.desc, fields);
        }
        Ok(Job {
            rt: self,
            ticket: Some(job),
            generation,
        })
    }
}
