use super::outcome::finished;
use super::producer::wait_job_slot;
use super::wait::Health;
use super::*;
use crate::error::Error;
use crate::layout::KIND_GRAPH_SMALL;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Host memory laid out like the mapped block, for a thread that stands in for the GPU.
struct FakeShared {
    desc_head: AtomicU64,
    descs: Vec<DescCells>,
    desc_done: Vec<AtomicU32>,
    completions: Vec<CompletionCells>,
}

impl FakeShared {
    fn new(descs: usize, jobs: usize) -> Arc<FakeShared> {
        Arc::new(FakeShared {
            desc_head: AtomicU64::new(0),
            descs: (0..descs).map(|_| DescCells::default()).collect(),
            desc_done: (0..descs).map(|_| AtomicU32::new(0)).collect(),
            completions: (0..jobs).map(|_| CompletionCells::default()).collect(),
        })
    }
    fn ring(&self) -> Ring<'_> {
        Ring {
            desc_head: &self.desc_head,
            descs: &self.descs,
            desc_done: &self.desc_done,
            completions: &self.completions,
            slot_base: 0,
        }
    }
}

/// Under Miri: the arena as plain memory that records are copied into without atomics, as the
/// mapped arena is (this shadows the atomic `HostArena` of `super::*`). Miri then reports two
/// submitters writing the same bytes at once, and any read of records not ordered after their
/// copy or copy not ordered after the device's read of the bytes' previous lap.
#[cfg(miri)]
struct HostArena(Box<[std::cell::UnsafeCell<u32>]>);

// SAFETY: the ring protocol orders every access to the cells; Miri checks that it does.
#[cfg(miri)]
unsafe impl Sync for HostArena {}

#[cfg(miri)]
impl HostArena {
    fn new(words: usize) -> HostArena {
        HostArena((0..words).map(|_| std::cell::UnsafeCell::new(0)).collect())
    }

    /// Word `i` as the GPU reads it after acquiring its descriptor.
    fn word(&self, i: usize) -> u32 {
        // SAFETY: in bounds (indexing checks); ordered after the copy by the descriptor's tag.
        unsafe { *self.0[i].get() }
    }
}

#[cfg(miri)]
impl Arena for HostArena {
    unsafe fn copy_in(&self, offset: u64, bytes: &[u8]) -> u64 {
        let end = offset as usize + bytes.len();
        assert!(
            end <= self.0.len() * 4 && offset % 4 == 0,
            "inside the arena"
        );
        // SAFETY: in bounds (above); the caller owns the range (`Arena::copy_in`'s contract,
        // which is what Miri checks here).
        unsafe {
            let dst = std::cell::UnsafeCell::raw_get(self.0.as_ptr()).cast::<u8>();
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.add(offset as usize), bytes.len());
        }
        offset
    }
}

/// The GPU's ingest and completion, on a host thread: reads descriptors in order, "runs" each
/// record by summing it into `sums` (records are u32 values), completes jobs.
fn fake_device(
    shared: Arc<FakeShared>,
    arena: Arc<HostArena>,
    stop: Arc<AtomicBool>,
    sums: Arc<Vec<AtomicU64>>,
) {
    let cap = shared.descs.len() as u64;
    let mut head = 0u64;
    let mut pending = vec![0i64; shared.completions.len()];
    while !stop.load(Ordering::Relaxed) {
        let Some(w) = shared.descs[(head % cap) as usize].read((head + 1) as u32) else {
            std::thread::yield_now();
            continue;
        };
        let (count, slot, seq) = (w[DESC_COUNT], w[DESC_JOB_SLOT], w[DESC_JOB_SEQ]);
        let adjust = w[DESC_ADJUST] as i32;
        let records = w[DESC_RECORDS_LO] as u64 | (w[DESC_RECORDS_HI] as u64) << 32;
        let inline = w[DESC_INLINE] == 1;
        shared.desc_head.store(head + 1, Ordering::Release);
        for i in 0..count as usize {
            let v = if inline {
                w[DESC_INLINE_FIRST + i]
            } else {
                arena.word(records as usize / 4 + i)
            };
            sums[slot as usize].fetch_add(v as u64, Ordering::Relaxed);
        }
        if !inline {
            shared.desc_done[(head % cap) as usize].store((head + 1) as u32, Ordering::Release);
        }
        // Count the records in, run them (above), count them out: what remains is the
        // split-job guard, so the job completes with its last chunk.
        pending[slot as usize] += count as i64 + adjust as i64 - count as i64;
        if pending[slot as usize] == 0 {
            shared.completions[slot as usize]
                .done_seq
                .store(seq, Ordering::Release);
        }
        head += 1;
    }
}

/// Submits `values` as one-word records through the production protocol ([`submit`]).
fn submit_values(
    producer: &Submitter,
    shared: &FakeShared,
    arena: &HostArena,
    values: &[u32],
) -> JobTicket {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let records = Submission::Records {
        kind: 0,
        record_size: 4,
        bytes: &bytes,
    };
    let mut w = Waiter::new(Duration::from_secs(20));
    producer
        .submit(&shared.ring(), arena, records, &mut w, &|| Ok(()))
        .unwrap()
        .expect("a job with records")
}

/// `threads` host threads submit `jobs` jobs each (values `values(thread, job)`) through a
/// ring of `descs` descriptors and `slots` job slots, waiting for each, while a host thread
/// stands in for the GPU; every value must arrive exactly once.
fn submit_from_threads(
    descs: usize,
    slots: usize,
    arena_words: usize,
    threads: u32,
    jobs: u32,
    values: impl Fn(u32, u32) -> Vec<u32> + Sync,
) {
    let shared = FakeShared::new(descs, slots);
    let arena = Arc::new(HostArena::new(arena_words));
    let producer = Submitter::new(arena_words as u64 * 4);
    let stop = Arc::new(AtomicBool::new(false));
    let sums: Arc<Vec<AtomicU64>> = Arc::new((0..slots).map(|_| AtomicU64::new(0)).collect());
    let dev = {
        let (s, a, st, su) = (shared.clone(), arena.clone(), stop.clone(), sums.clone());
        std::thread::spawn(move || fake_device(s, a, st, su))
    };
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (shared, arena, producer, values) = (&shared, &arena, &producer, &values);
                s.spawn(move || {
                    let mut expect = 0u64;
                    for j in 0..jobs {
                        let values = values(t, j);
                        expect += values.iter().map(|&v| v as u64).sum::<u64>();
                        let job = submit_values(producer, shared, arena, &values);
                        let ring = shared.ring();
                        let mut w = Waiter::new(Duration::from_secs(20));
                        w.until(|| finished(&ring, job), &|| Ok(()), "job").unwrap();
                    }
                    expect
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    stop.store(true, Ordering::Relaxed);
    dev.join().unwrap();
    assert_eq!(
        sums.iter().map(|s| s.load(Ordering::Relaxed)).sum::<u64>(),
        total
    );
}

#[test]
fn many_threads_submit_and_every_record_arrives_once() {
    // 4 threads × 50 jobs of up to 300 values (several chunks each: the arena holds 256 words);
    // under Miri, which interprets every step, 3 × 4 (still several chunks, threads and laps).
    let (threads, jobs) = if cfg!(miri) { (3, 4) } else { (4, 50) };
    submit_from_threads(8, 4, 256, threads, jobs, |t, j| {
        (0..1 + (t * 37 + j * 11) % 300)
            .map(|i| i + t + 1)
            .collect()
    });
}

#[test]
fn small_jobs_of_whole_words_travel_inline_and_others_through_the_arena() {
    assert_eq!(INLINE_BYTES, 96);
    assert!(travels_inline(16, 16), "a graph launch");
    assert!(travels_inline(96, 48), "two 48-byte records");
    assert!(travels_inline(24 * 4, 4), "24 one-word records");
    assert!(!travels_inline(97 + 3, 4), "past the cells");
    assert!(!travels_inline(144, 48), "three 48-byte records");
    assert!(
        !travels_inline(6, 6),
        "records of 6 bytes are not whole words"
    );
}

#[test]
fn a_descriptor_reads_whole_only_when_every_cell_carries_its_tag() {
    let shared = FakeShared::new(2, 1);
    let ring = shared.ring();
    let job = JobTicket {
        id: 0,
        slot: 0,
        seq: 1,
        epoch: 0,
    };
    let record: Vec<u8> = (1..=12u8).collect();
    let fields = DescFields {
        records: Records::Inline(&record),
        kind: 3,
        count: 1,
        job,
        adjust: 0,
    };
    publish(&ring, 2, fields);
    let w = ring.descs[0].read(3).expect("published whole");
    assert_eq!(w, fields.words());
    assert_eq!(
        (w[DESC_KIND], w[DESC_INLINE], w[DESC_INLINE_FIRST + 2]),
        (3, 1, u32::from_le_bytes([9, 10, 11, 12]))
    );
    assert_eq!(ring.descs[0].read(1), None, "an older lap's tag");
    // A cell still holding the previous lap (a publish the GPU saw half of) is not whole.
    ring.descs[0].cell[DESC_CELLS - 1].store(1 << 32, Ordering::Relaxed);
    assert_eq!(ring.descs[0].read(3), None);
    // An arena descriptor carries the address and no inline flag.
    let f = DescFields {
        records: Records::Arena(0x1234_5678_9abc),
        ..fields
    };
    let w = f.words();
    assert_eq!(
        (w[DESC_RECORDS_LO], w[DESC_RECORDS_HI], w[DESC_INLINE]),
        (0x5678_9abc, 0x1234, 0)
    );
}

#[test]
fn forty_threads_of_small_jobs_all_arrive_with_few_descriptors_and_job_slots() {
    // Mostly inline jobs (as graph launches are), more threads than descriptors or job
    // slots: reservations, slot waits and the in-order device must never deadlock. Under
    // Miri 20 threads × 2 jobs: still more threads than descriptors and job slots.
    let (threads, jobs) = if cfg!(miri) { (20, 2) } else { (40, 25) };
    submit_from_threads(16, 8, 1024, threads, jobs, |t, j| {
        // 1..=24 values inline, sometimes 40 through the arena.
        let n = if (t + j) % 7 == 0 {
            40
        } else {
            1 + (t * 5 + j) % 24
        };
        (0..n).map(|i| i + t + j).collect()
    });
}

#[test]
fn a_stalled_device_makes_submit_time_out_and_health_errors_end_waits() {
    let shared = FakeShared::new(2, 2);
    let ring = shared.ring();
    let mut p = Producer::new(1024, 0, 0);
    let job = p.take_job(&ring);
    let ok: Health = &|| Ok(());
    let mut w = Waiter::new(Duration::from_millis(50));
    // Two descriptors fit; the third waits for a device that never consumes: a timeout.
    for _ in 0..2 {
        p.reserve_chunk(&ring, job, 16, &mut w, ok).unwrap();
    }
    assert!(matches!(
        p.reserve_chunk(&ring, job, 16, &mut w, ok),
        Err(Error::Timeout(_, "a free descriptor"))
    ));
    let dead: Health = &|| Err(Error::Stopped);
    let mut w = Waiter::new(Duration::from_secs(60));
    assert_eq!(
        p.reserve_chunk(&ring, job, 16, &mut w, dead).unwrap_err(),
        Error::Stopped
    );
    // Job slots: slot 0's first job is free; its second needs the first to complete.
    let mut w = Waiter::new(Duration::from_millis(20));
    let j0 = job;
    assert_eq!((j0.slot, j0.seq), (0, 1));
    wait_job_slot(&ring, j0, &mut w, ok).unwrap();
    let j1 = p.take_job(&ring);
    wait_job_slot(&ring, j1, &mut w, ok).unwrap();
    let j2 = p.take_job(&ring);
    assert_eq!((j2.slot, j2.seq), (0, 2));
    assert!(matches!(
        wait_job_slot(&ring, j2, &mut w, ok),
        Err(Error::Timeout(_, "a free job slot"))
    ));
    ring.completions[0].done_seq.store(1, Ordering::Release);
    wait_job_slot(&ring, j2, &mut w, ok).unwrap();
}

#[test]
fn arena_space_is_reused_only_after_the_device_read_it_and_never_wraps_inside_a_chunk() {
    let shared = FakeShared::new(16, 2);
    let ring = shared.ring();
    let mut p = Producer::new(256, 0, 0);
    let job = p.take_job(&ring);
    let ok: Health = &|| Ok(());
    let mut w = Waiter::new(Duration::from_millis(20));
    assert_eq!(p.max_chunk_bytes(), 64);
    let offsets: Vec<u64> = (0..4)
        .map(|_| p.reserve_chunk(&ring, job, 48, &mut w, ok).unwrap().offset)
        .collect();
    assert_eq!(offsets, vec![0, 48, 96, 144]);
    // 192 + 64 = 256 fits exactly; a further 64 must wait for descriptor 0 to be read.
    assert_eq!(
        p.reserve_chunk(&ring, job, 64, &mut w, ok).unwrap().offset,
        192
    );
    assert!(p.reserve_chunk(&ring, job, 64, &mut w, ok).is_err());
    ring.desc_done[0].store(1, Ordering::Release);
    // 48 bytes free at the start but 64 needed: still waits (no wrap inside a chunk).
    assert!(p.reserve_chunk(&ring, job, 64, &mut w, ok).is_err());
    ring.desc_done[1].store(2, Ordering::Release);
    assert_eq!(
        p.reserve_chunk(&ring, job, 64, &mut w, ok).unwrap().offset,
        0
    );
}

/// A range the GPU ingested long ago (its descriptor consumed) but has not read yet keeps its
/// slot from later arena descriptors: the slot's read count belongs to it until it is read.
/// Inline descriptors, which touch no read count, still take the slot.
#[test]
fn an_unread_arena_descriptor_keeps_its_slot_from_the_next_lap_of_arena_descriptors() {
    let shared = FakeShared::new(4, 2);
    let ring = shared.ring();
    let mut p = Producer::new(4096, 0, 0);
    let job = p.take_job(&ring);
    let ok: Health = &|| Ok(());
    let w = || Waiter::new(Duration::from_millis(20));
    // Descriptors 0..4: all ingested (desc_head 4), only 1..4 read; 0 sits in a queue.
    for d in 0..4u64 {
        assert_eq!(
            p.reserve_chunk(&ring, job, 16, &mut w(), ok).unwrap().desc,
            d
        );
    }
    ring.desc_head.store(4, Ordering::Release);
    for d in 1..4usize {
        ring.desc_done[d].store(d as u32 + 1, Ordering::Release);
    }
    // Descriptor 4 would reuse slot 0: an arena one waits for descriptor 0's records...
    let slot_wait = Err(Error::Timeout(
        Duration::from_millis(20),
        "the records of the slot's last arena descriptor to be read",
    ));
    assert_eq!(
        p.reserve_chunk(&ring, job, 16, &mut w(), ok)
            .map(|t| t.desc),
        slot_wait
    );
    // ...an inline one does not.
    let t = p.try_reserve_inline(&ring, job).unwrap().unwrap();
    assert_eq!(t.desc, 4);
    ring.desc_head.store(5, Ordering::Release);
    // Descriptor 5 (slot 1, whose arena descriptor was read) is free; then 6 and 7, and 8
    // (slot 0 again) waits until descriptor 0 is read.
    for d in 5..8u64 {
        assert_eq!(
            p.reserve_chunk(&ring, job, 16, &mut w(), ok).unwrap().desc,
            d
        );
    }
    ring.desc_head.store(8, Ordering::Release);
    for d in 5..8u64 {
        ring.desc_done[(d % 4) as usize].store(d as u32 + 1, Ordering::Release);
    }
    assert_eq!(
        p.reserve_chunk(&ring, job, 16, &mut w(), ok)
            .map(|t| t.desc),
        slot_wait
    );
    ring.desc_done[0].store(1, Ordering::Release);
    assert_eq!(
        p.reserve_chunk(&ring, job, 16, &mut w(), ok).unwrap().desc,
        8
    );
}

/// A done cell 2^31 indices behind (a slot that carried only inline descriptors meanwhile) must
/// not make a fresh arena descriptor read as done: the host moves the cell when it reserves one.
#[test]
fn a_done_cell_far_behind_does_not_make_a_new_arena_descriptor_read() {
    let shared = FakeShared::new(8, 2);
    let ring = shared.ring();
    // Indices start past 2^31 with every done cell still 0, as after that much inline traffic.
    ring.desc_head.store(1 << 31, Ordering::Release);
    let mut p = Producer::new(256, 1 << 31, 0);
    let job = p.take_job(&ring);
    let ok: Health = &|| Ok(());
    let w = || Waiter::new(Duration::from_millis(20));
    for _ in 0..4 {
        p.reserve_chunk(&ring, job, 64, &mut w(), ok).unwrap();
    }
    ring.desc_head.store((1 << 31) + 4, Ordering::Release);
    // The arena is full and nothing was read: the next chunk waits for the first one's records.
    assert_eq!(
        p.reserve_chunk(&ring, job, 64, &mut w(), ok)
            .map(|t| t.desc),
        Err(Error::Timeout(Duration::from_millis(20), "arena space"))
    );
}

#[test]
fn a_split_job_holds_the_guard_from_its_first_chunk_to_its_last() {
    // 40 one-word records, chunks of at most 16 (a quarter of 256 bytes): 16, 16, 8.
    let shared = FakeShared::new(4, 1);
    let arena = HostArena::new(64);
    let producer = Submitter::new(256);
    let values: Vec<u32> = (1..=40).collect();
    let job = submit_values(&producer, &shared, &arena, &values);
    let ring = shared.ring();
    let words: Vec<[u32; DESC_CELLS]> = (0..3)
        .map(|d| ring.descs[d].read(d as u32 + 1).expect("published"))
        .collect();
    let fields = |w: &[u32; DESC_CELLS]| (w[DESC_COUNT], w[DESC_ADJUST] as i32, w[DESC_JOB_SEQ]);
    assert_eq!(
        words.iter().map(fields).collect::<Vec<_>>(),
        vec![(16, 1, job.seq), (16, 0, job.seq), (8, -1, job.seq)]
    );
    let third = words[2][DESC_RECORDS_LO] as usize / 4;
    assert_eq!((arena.word(third), arena.word(third + 7)), (33, 40));
}

#[test]
fn a_small_graph_launch_is_one_inline_record_that_counts_its_nodes() {
    let shared = FakeShared::new(2, 1);
    let producer = Submitter::new(256);
    let graph = [3u32, 7, 8, 9];
    let launch = Submission::SmallGraph {
        graph: &graph,
        nodes: 3,
    };
    let mut w = Waiter::new(Duration::from_secs(1));
    let arena = HostArena::new(64);
    producer
        .submit(&shared.ring(), &arena, launch, &mut w, &|| Ok(()))
        .unwrap();
    let w = shared.descs[0].read(1).expect("published");
    assert_eq!(
        (w[DESC_KIND], w[DESC_COUNT], w[DESC_ADJUST], w[DESC_INLINE]),
        (KIND_GRAPH_SMALL, 1, 2, 1)
    );
    assert_eq!(w[DESC_INLINE_FIRST..DESC_INLINE_FIRST + 4], graph);
}

#[test]
fn a_rings_descriptors_carry_its_first_slot_on_the_device_plus_the_jobs_slot() {
    let shared = FakeShared::new(4, 2);
    let ring = Ring {
        slot_base: 96,
        ..shared.ring()
    };
    let producer = Submitter::new(256);
    let arena = HostArena::new(64);
    let mut w = Waiter::new(Duration::from_secs(1));
    for (i, expected) in [(0u64, 96), (1, 97)] {
        let records = Submission::Records {
            kind: 5,
            record_size: 4,
            bytes: &[1, 2, 3, 4],
        };
        let job = producer
            .submit(&ring, &arena, records, &mut w, &|| Ok(()))
            .unwrap()
            .unwrap();
        assert_eq!(job.slot as u64, i, "the ring's own slot");
        let words = shared.descs[i as usize]
            .read(i as u32 + 1)
            .expect("published");
        assert_eq!(words[DESC_JOB_SLOT], expected, "the device's slot");
    }
}

#[test]
fn a_ring_is_idle_once_its_descriptors_are_consumed_or_only_the_last_remains_finished() {
    let shared = FakeShared::new(4, 4);
    let ring = shared.ring();
    let producer = Submitter::new(256);
    let arena = HostArena::new(64);
    let mut w = Waiter::new(Duration::from_secs(1));
    assert!(producer.idle(&ring), "nothing handed out");
    let one = |producer: &Submitter, w: &mut Waiter| {
        let records = Submission::Records {
            kind: 5,
            record_size: 4,
            bytes: &[1, 2, 3, 4],
        };
        producer
            .submit(&ring, &arena, records, w, &|| Ok(()))
            .unwrap()
            .unwrap()
    };
    let first = one(&producer, &mut w);
    assert!(!producer.idle(&ring), "its ingest warp has not taken it");
    // The GPU ran it (its job is done) but has not yet stored the head: free for the next job.
    let done = |job: JobTicket| {
        shared.completions[job.slot as usize]
            .done_seq
            .store(job.seq, Ordering::Release)
    };
    done(first);
    assert!(producer.idle(&ring));
    let second = one(&producer, &mut w);
    let _third = one(&producer, &mut w);
    done(second);
    assert!(!producer.idle(&ring), "two descriptors outstanding");
    shared.desc_head.store(2, Ordering::Release);
    assert!(!producer.idle(&ring), "the last one's job runs");
    shared.desc_head.store(3, Ordering::Release);
    assert!(producer.idle(&ring), "every descriptor consumed");
}

#[test]
fn a_submit_that_times_out_on_its_slot_leaves_an_orphan_that_is_settled_later() {
    let shared = FakeShared::new(4, 1);
    let arena = HostArena::new(64);
    let producer = Submitter::new(256);
    let first = submit_values(&producer, &shared, &arena, &[1]);
    let bytes = 2u32.to_le_bytes();
    let second = Submission::Records {
        kind: 0,
        record_size: 4,
        bytes: &bytes,
    };
    let ring = shared.ring();
    let mut w = Waiter::new(Duration::from_millis(20));
    // One job slot, its first job still running: the second times out and becomes an orphan.
    assert!(matches!(
        producer.submit(&ring, &arena, second, &mut w, &|| Ok(())),
        Err(Error::Timeout(_, "a free job slot"))
    ));
    // The first completes; the next submit's wait settles the orphan (abandoned) and goes on.
    ring.completions[0]
        .done_seq
        .store(first.seq, Ordering::Release);
    let mut w = Waiter::new(Duration::from_secs(1));
    let third = producer
        .submit(&ring, &arena, second, &mut w, &|| Ok(()))
        .unwrap()
        .unwrap();
    assert_eq!(third.seq, first.seq + 2);
    assert_eq!(ring.completions[0].error.load(Ordering::Relaxed), ABANDONED);
}

#[test]
fn records_of_no_bytes_or_larger_than_a_chunk_are_refused_before_a_job_is_taken() {
    let shared = FakeShared::new(2, 1);
    let arena = HostArena::new(256);
    let producer = Submitter::new(256);
    let ring = shared.ring();
    let big = [0u8; 512];
    for (record_size, bytes) in [(0, &big[..4]), (512, &big[..])] {
        let records = Submission::Records {
            kind: 0,
            record_size,
            bytes,
        };
        let mut w = Waiter::new(Duration::from_secs(1));
        let e = producer
            .submit(&ring, &arena, records, &mut w, &|| Ok(()))
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{record_size} B: {e}");
    }
    // No job slot was taken or orphaned: the next job is the first.
    let first = submit_values(&producer, &shared, &arena, &[1]);
    assert_eq!(first.seq, 1);
}

/// Completes `job` in its slot as the GPU would, with `error`.
fn complete(ring: &Ring, job: JobTicket, error: i32) {
    let c = &ring.completions[job.slot as usize];
    c.error.store(error, Ordering::Relaxed);
    c.done_seq.store(job.seq, Ordering::Release);
}

fn one_word(v: &[u8; 4]) -> Submission<'_> {
    Submission::Records {
        kind: 0,
        record_size: 4,
        bytes: v,
    }
}

#[test]
fn a_late_look_at_a_job_finds_its_own_outcome_not_that_of_its_slots_next_job() {
    // One job slot: every job reuses it, as job 4096 + n reuses job n's slot in the runtime.
    let shared = FakeShared::new(8, 1);
    let ring = shared.ring();
    let arena = HostArena::new(64);
    let s = Submitter::new(256);
    let mut w = Waiter::new(Duration::from_secs(1));
    let mut submit = || {
        s.submit(&ring, &arena, one_word(&[1, 0, 0, 0]), &mut w, &|| Ok(()))
            .unwrap()
            .unwrap()
    };
    let failed = submit();
    assert_eq!(s.outcome(&ring, failed), None, "still running");
    complete(&ring, failed, 5);
    let good = submit();
    complete(&ring, good, 0);
    let last = submit();
    complete(&ring, last, 7);
    assert_eq!(s.outcome(&ring, failed), Some(Outcome::Finished(5, 0)));
    assert_eq!(s.outcome(&ring, good), Some(Outcome::Finished(0, 0)));
    assert_eq!(s.outcome(&ring, last), Some(Outcome::Finished(7, 0)));
}

#[test]
fn a_split_job_that_fails_between_chunks_is_closed_so_its_slot_frees() {
    // Two descriptors, one job slot, chunks of 16 words: a 40-word job needs three
    // descriptors, and the device is not consuming yet: the third reservation times out.
    let shared = FakeShared::new(2, 1);
    let arena = Arc::new(HostArena::new(64));
    let s = Submitter::new(256);
    let values: Vec<u8> = (1..=40u32).flat_map(|v| v.to_le_bytes()).collect();
    let split = Submission::Records {
        kind: 0,
        record_size: 4,
        bytes: &values,
    };
    let mut w = Waiter::new(Duration::from_millis(30));
    let ring = shared.ring();
    let e = s
        .submit(&ring, &*arena, split, &mut w, &|| Ok(()))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_, "a free descriptor")), "{e}");
    // The device now consumes the two published chunks (holding the split guard) and whatever
    // comes next; the next job lands in the same slot and must not wait forever.
    let stop = Arc::new(AtomicBool::new(false));
    let sums: Arc<Vec<AtomicU64>> = Arc::new(vec![AtomicU64::new(0)]);
    let dev = {
        let (sh, a, st, su) = (shared.clone(), arena.clone(), stop.clone(), sums.clone());
        std::thread::spawn(move || fake_device(sh, a, st, su))
    };
    let mut w = Waiter::new(Duration::from_secs(5));
    let next = s
        .submit(&ring, &*arena, one_word(&[9, 0, 0, 0]), &mut w, &|| Ok(()))
        .unwrap()
        .unwrap();
    w.until(|| finished(&ring, next), &|| Ok(()), "the next job")
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    dev.join().unwrap();
    // The close is descriptor 2: no records, adjust -1, the failed job's sequence.
    let close = ring.descs[0].read(3).expect("the close");
    assert_eq!(
        (
            close[DESC_COUNT],
            close[DESC_ADJUST] as i32,
            close[DESC_JOB_SEQ]
        ),
        (0, -1, 1)
    );
    // The records the failed job did publish ran (1..=32), then the next job's 9.
    assert_eq!(sums[0].load(Ordering::Relaxed), (1..=32).sum::<u64>() + 9);
}

/// An arena whose copies wait until `go` is set, announcing themselves in `copying`.
struct SlowArena {
    inner: HostArena,
    copying: AtomicBool,
    go: AtomicBool,
}

impl Arena for SlowArena {
    unsafe fn copy_in(&self, offset: u64, bytes: &[u8]) -> u64 {
        self.copying.store(true, Ordering::Release);
        while !self.go.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        // SAFETY: the caller's reservation, passed on.
        unsafe { self.inner.copy_in(offset, bytes) }
    }
}

#[test]
fn a_restart_waits_for_copies_in_flight_and_cuts_off_the_rest_of_their_jobs() {
    let shared = FakeShared::new(8, 2);
    let s = Submitter::new(256);
    let arena = SlowArena {
        inner: HostArena::new(64),
        copying: AtomicBool::new(false),
        go: AtomicBool::new(false),
    };
    let values: Vec<u8> = (1..=40u32).flat_map(|v| v.to_le_bytes()).collect();
    let restarted = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let copier = scope.spawn(|| {
            let split = Submission::Records {
                kind: 0,
                record_size: 4,
                bytes: &values,
            };
            let mut w = Waiter::new(Duration::from_secs(5));
            s.submit(&shared.ring(), &arena, split, &mut w, &|| Ok(()))
        });
        while !arena.copying.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let restart = scope.spawn(|| {
            let next = s.restart(&shared.ring());
            restarted.store(true, Ordering::Release);
            next
        });
        std::thread::sleep(Duration::from_millis(50));
        let waited = !restarted.load(Ordering::Acquire);
        // Let the copy finish before asserting: a failed assertion must not leave it waiting.
        arena.go.store(true, Ordering::Release);
        assert!(waited, "the restart must wait for the copy in flight");
        // The copy's first chunk was published before the restart; its next chunk belongs to
        // a cut-off job: refused, not published into the restarted ring.
        assert_eq!(copier.join().unwrap().unwrap_err(), Error::Stopped);
        assert_eq!(
            restart.join().unwrap().unwrap(),
            1,
            "resumes after descriptor 0"
        );
    });
    let ring = shared.ring();
    assert_eq!(
        ring.descs[1].cell[0].load(Ordering::Relaxed),
        0,
        "nothing after"
    );
    // The cut-off job reads as abandoned, and a job of the new epoch gets fresh space.
    let cut = JobTicket {
        id: 0,
        slot: 0,
        seq: 1,
        epoch: 0,
    };
    assert_eq!(s.outcome(&ring, cut), Some(Outcome::Finished(ABANDONED, 0)));
    let mut p = s.producer();
    let job = p.take_job(&ring);
    assert_eq!((job.id, job.epoch), (1, 1));
    let mut w = Waiter::new(Duration::from_millis(20));
    let t = p.reserve_chunk(&ring, job, 16, &mut w, &|| Ok(())).unwrap();
    assert_eq!((t.desc, t.offset), (1, 0));
}

#[test]
fn a_job_waiting_for_its_slot_across_a_restart_is_told_stopped() {
    let shared = FakeShared::new(8, 1);
    let ring = shared.ring();
    let s = Submitter::new(256);
    let (first, second) = {
        let mut p = s.producer();
        (p.take_job(&ring), p.take_job(&ring))
    };
    s.restart(&ring).unwrap();
    let mut w = Waiter::new(Duration::from_secs(5));
    assert_eq!(
        wait_job_slot(&ring, second, &mut w, &|| Ok(())).unwrap_err(),
        Error::Stopped
    );
    // Both read as abandoned, the older one too (its slot has moved past it).
    for job in [first, second] {
        assert_eq!(s.outcome(&ring, job), Some(Outcome::Finished(ABANDONED, 0)));
    }
}

#[test]
fn a_submit_waits_no_longer_than_its_own_timeout_while_another_waits_for_ring_space() {
    // Two descriptors, no device: both are taken, then a submit with a long timeout waits for a
    // third; a submit with a short one must give up on time, not queue behind that wait.
    let shared = FakeShared::new(2, 8);
    let arena = HostArena::new(64);
    let s = Submitter::new(256);
    let ring = shared.ring();
    for v in 0..2u8 {
        let mut w = Waiter::new(Duration::from_secs(1));
        s.submit(&ring, &arena, one_word(&[v, 0, 0, 0]), &mut w, &|| Ok(()))
            .unwrap();
    }
    let long_one_waiting = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let long = scope.spawn(|| {
            let mut w = Waiter::new(Duration::from_secs(3));
            long_one_waiting.store(true, Ordering::Release);
            s.submit(&ring, &arena, one_word(&[7, 0, 0, 0]), &mut w, &|| Ok(()))
        });
        while !long_one_waiting.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        let start = std::time::Instant::now();
        let mut w = Waiter::new(Duration::from_millis(50));
        let short = s.submit(&ring, &arena, one_word(&[8, 0, 0, 0]), &mut w, &|| Ok(()));
        let took = start.elapsed();
        assert!(matches!(short, Err(Error::Timeout(..))), "{short:?}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert!(matches!(long.join().unwrap(), Err(Error::Timeout(..))));
    });
}

/// A restart (a stop and a start racing a submit) that lands between the submit's slot wait and
/// its hand-over has taken the slot for the cut-off job already and written `ABANDONED` into it:
/// the late hand-over must not file that as the outcome of the slot's previous job, which
/// finished long before (in `Submitter::submit`, `wait_job_slot` then `slots().hand_over`, the
/// restart holding the slots' mutex in between).
#[test]
fn a_restart_between_a_slot_wait_and_its_hand_over_keeps_the_previous_jobs_outcome() {
    let shared = FakeShared::new(8, 2);
    let ring = shared.ring();
    let mut p = Producer::new(256, 0, 0);
    let mut slots = super::outcome::Slots::default();
    let ok: Health = &|| Ok(());
    let mut w = Waiter::new(Duration::from_secs(1));
    // Jobs 0 and 1 (slots 0 and 1) run and finish: 0 succeeds, 1 fails with code 5.
    let (good, failed) = (p.take_job(&ring), p.take_job(&ring));
    for (job, error) in [(good, 0), (failed, 5)] {
        wait_job_slot(&ring, job, &mut w, ok).unwrap();
        slots.hand_over(&ring, job);
        complete(&ring, job, error);
    }
    // Jobs 2 and 3 find their slots free...
    let cut = [p.take_job(&ring), p.take_job(&ring)];
    for job in cut {
        wait_job_slot(&ring, job, &mut w, ok).unwrap();
    }
    // ...and a restart cuts them off before they hand their slots over.
    p.restart(&ring, &mut slots);
    for job in cut {
        slots.hand_over(&ring, job);
    }
    assert_eq!(
        slots.outcome(&ring, good),
        Some(Outcome::Finished(0, 0)),
        "job 0 succeeded before the restart"
    );
    assert_eq!(
        slots.outcome(&ring, failed),
        Some(Outcome::Finished(5, 0)),
        "job 1 failed with its own code"
    );
    for job in cut {
        assert_eq!(
            slots.outcome(&ring, job),
            Some(Outcome::Finished(ABANDONED, 0))
        );
    }
}
