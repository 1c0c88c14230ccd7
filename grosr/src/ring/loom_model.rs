//! Loom models of the submission protocol: the production [`Submitter`] (submit, outcomes,
//! orphans, restart) against host threads that stand in for the GPU: its ingest warp
//! ([`ingest`]), or ingest with the completion of each job ([`run_jobs`]).
//!
//! Threads wait as the protocol's waits do, polling with `yield_now`. Two threads polling at
//! once for a third to act make loom's paths unbounded (after a yield either may run next, at
//! no preemption's cost), so in these models only one thread at a time polls for a thread
//! that works, and a look at a job's outcome is one look, not a poll.

use super::wait::Health;
use super::*;
use crate::error::Error;
use loom::sync::Arc;
// The arena's checks are the model's bookkeeping, not cells of the protocol: std atomics add
// no branch to explore, and they see the threads' steps in the order loom runs them.
use std::sync::atomic::AtomicU32 as StdAtomicU32;

/// The ring's cells and the arena, shared with the stand-in GPU.
struct Shared {
    desc_head: AtomicU64,
    descs: Vec<DescCells>,
    desc_done: Vec<AtomicU32>,
    completions: Vec<CompletionCells>,
    arena: CheckedArena,
}

impl Shared {
    /// One descriptor, two job slots.
    fn new() -> Arc<Shared> {
        Shared::with(1, 2)
    }

    /// `descs` descriptors and `slots` job slots (one: every job takes its predecessor's slot).
    fn with(descs: usize, slots: usize) -> Arc<Shared> {
        Arc::new(Shared {
            desc_head: AtomicU64::new(0),
            descs: (0..descs).map(|_| DescCells::default()).collect(),
            desc_done: (0..descs).map(|_| AtomicU32::new(0)).collect(),
            completions: (0..slots).map(|_| CompletionCells::default()).collect(),
            // 64 bytes: chunks of up to 16 bytes, a quarter.
            arena: CheckedArena {
                words: HostArena::new(16),
                copying: StdAtomicU32::new(0),
                last: std::array::from_fn(|_| StdAtomicU32::new(0)),
            },
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

    /// Descriptor `desc`'s payload if its cells carry its tag.
    fn desc(&self, desc: u64) -> Option<[u32; DESC_CELLS]> {
        self.descs[(desc % self.descs.len() as u64) as usize].read((desc + 1) as u32)
    }
}

/// The arena, failing the model when two copies into the same words overlap in time (a
/// reservation hands its bytes to one submitter only: [`Arena::copy_in`]'s contract), and
/// keeping what was copied last into each word, in the order the copies ran.
struct CheckedArena {
    words: HostArena,
    /// Bit `i`: word `i` is being copied into.
    copying: StdAtomicU32,
    /// Per word, the value of the copy that ran last. A restart's wait for copies orders them
    /// through `Submitter`'s own counter, a std atomic that loom does not see: the arena's loom
    /// cells may not show that order, this does.
    last: [StdAtomicU32; 16],
}

impl CheckedArena {
    fn word(&self, i: usize) -> u32 {
        self.words.word(i)
    }
}

impl Arena for CheckedArena {
    unsafe fn copy_in(&self, offset: u64, bytes: &[u8]) -> u64 {
        let (first, words) = (offset as usize / 4, bytes.len().div_ceil(4));
        let mask = (((1u64 << words) - 1) as u32) << first;
        let before = self.copying.fetch_or(mask, Ordering::Relaxed);
        assert_eq!(
            before & mask,
            0,
            "two submitters copy into arena words {first}..{} at once",
            first + words
        );
        for (i, w) in bytes.chunks(4).enumerate() {
            let at = offset + 4 * i as u64;
            // SAFETY: the caller's reservation, passed on, a word at a time. The store is
            // loom's: another thread may run before it (and before `last` records it).
            unsafe { self.words.copy_in(at, w) };
            let v = u32::from_le_bytes(w.try_into().expect("records of whole words"));
            self.last[first + i].store(v, Ordering::Relaxed);
        }
        self.copying.fetch_and(!mask, Ordering::Relaxed);
        offset
    }
}

/// The ingest warp: consumes `n` descriptors in order, each only once all its cells carry its
/// tag, and gives each back (`desc_head`) after reading it; returns `(job slot, records)` each.
fn ingest(s: &Shared, n: u64) -> Vec<(u32, Vec<u32>)> {
    let mut seen = Vec::new();
    for head in 0..n {
        let w = take_desc(s, head);
        let count = w[DESC_COUNT] as usize;
        let records: Vec<u32> = if w[DESC_INLINE] == 1 {
            w[DESC_INLINE_FIRST..DESC_INLINE_FIRST + count].to_vec()
        } else {
            let at = w[DESC_RECORDS_LO] as usize / 4;
            (at..at + count).map(|i| s.arena.word(i)).collect()
        };
        seen.push((w[DESC_JOB_SLOT], records));
        s.desc_head.store(head + 1, Ordering::Release);
    }
    seen
}

/// Descriptor `head`'s payload, once every cell carries its tag (the ingest warp's poll).
fn take_desc(s: &Shared, head: u64) -> [u32; DESC_CELLS] {
    loop {
        match s.desc(head) {
            Some(w) => return w,
            None => loom::thread::yield_now(),
        }
    }
}

/// The ingest warp and the job's completion, for models whose jobs are one inline descriptor
/// each: takes descriptors in order, gives each back, and completes its job at once, as the
/// GPU does when the job's count reaches zero: the error `error(seq)` (plain stores on the
/// GPU, relaxed here), then `done_seq = seq` (release). Stops after the job `last` (slot,
/// sequence); returns `(slot, sequence)` of every job it ran, or what went wrong first. It goes
/// on after a fault (a thread of a loom model that panics leaves the others waiting for it, and
/// the model ends on its branch limit, not on the fault).
fn run_jobs(
    s: &Shared,
    last: (u32, u32),
    error: impl Fn(u32) -> i32,
) -> Result<Vec<(u32, u32)>, String> {
    let mut ran = Vec::new();
    let mut fault = None;
    for head in 0.. {
        let w = take_desc(s, head);
        let (slot, seq) = (w[DESC_JOB_SLOT], w[DESC_JOB_SEQ]);
        let c = &s.completions[slot as usize];
        // A job is published only once it owns its slot: the slot's previous job is done, and
        // nothing but this job's completion writes the slot until it is.
        let done = c.done_seq.load(Ordering::Acquire);
        if done != seq - 1 && fault.is_none() {
            fault = Some(format!(
                "slot {slot}'s job {seq} reached the GPU with the slot at job {done}"
            ));
        }
        s.desc_head.store(head + 1, Ordering::Release);
        c.error.store(error(seq), Ordering::Relaxed);
        c.done_seq.store(seq, Ordering::Release);
        ran.push((slot, seq));
        if (slot, seq) == last {
            break;
        }
    }
    fault.map_or(Ok(ran), Err)
}

fn submit_words(producer: &Submitter, s: &Shared, words: &[u32]) -> JobTicket {
    submit_with(producer, s, words, &|| Ok(()))
        .unwrap()
        .unwrap()
}

/// Submits `words` as one-word records; `health` fails the submit's waits when it fails.
fn submit_with(
    producer: &Submitter,
    s: &Shared,
    words: &[u32],
    health: Health,
) -> Result<Option<JobTicket>, Error> {
    let bytes: Vec<u8> = words.iter().flat_map(|v| v.to_le_bytes()).collect();
    let records = Submission::Records {
        kind: 0,
        record_size: 4,
        bytes: &bytes,
    };
    let mut w = Waiter::new(std::time::Duration::from_secs(1));
    producer.submit(&s.ring(), &s.arena, records, &mut w, health)
}

/// One look at `job`'s outcome, as `Job::is_done` or a `Job::wait` that found it finished
/// takes it: `None` only while it runs, and once it has finished, `expect`.
fn look(producer: &Submitter, s: &Shared, job: JobTicket, expect: Outcome) {
    let ring = s.ring();
    let finished_before = finished(&ring, job);
    let outcome = producer.outcome(&ring, job);
    if finished_before {
        assert_eq!(outcome, Some(expect), "a look at finished job {}", job.id);
    } else {
        assert!(
            outcome.is_none() || outcome == Some(expect),
            "a look at job {}: {outcome:?}",
            job.id
        );
    }
}

/// One descriptor slot, two submissions (one through the arena, one inline): the second reuses
/// the slot, so it must wait for the reader's `desc_head`; the reader must never take a torn
/// descriptor, and must see the arena's records that were copied before the publish.
#[test]
fn loom_submit_consume() {
    // Two preemptions cover both; more make a model of 9 cells a publish run for hours.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let shared = Shared::new();
        let dev = {
            let s = shared.clone();
            loom::thread::spawn(move || ingest(&s, 2))
        };
        let producer = Submitter::new(64);
        submit_words(&producer, &shared, &[5, 6]);
        submit_words(&producer, &shared, &[7]);
        assert_eq!(dev.join().unwrap(), vec![(0, vec![5, 6]), (1, vec![7])]);
    });
}

/// Two producers race for one descriptor slot with one inline job each: each gets its own job
/// slot and descriptor index, and the reader sees both, whole, in index order.
#[test]
fn loom_two_producers() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let shared = Shared::new();
        let producer = Arc::new(Submitter::new(64));
        let dev = {
            let s = shared.clone();
            loom::thread::spawn(move || ingest(&s, 2))
        };
        let other = {
            let (s, p) = (shared.clone(), producer.clone());
            loom::thread::spawn(move || submit_words(&p, &s, &[8]))
        };
        let mine = submit_words(&producer, &shared, &[9]);
        let theirs = other.join().unwrap();
        assert_ne!(mine.slot, theirs.slot);
        let mut seen = dev.join().unwrap();
        seen.sort();
        let mut expect = vec![(mine.slot, vec![9]), (theirs.slot, vec![8])];
        expect.sort();
        assert_eq!(seen, expect);
    });
}

/// A model of four preemptions: each of the slot, orphan and restart models checks in about a
/// second (the faults they guard against show with two).
fn four_preemptions() -> loom::model::Builder {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(4);
    model
}

/// Job slot reuse (D5). One job slot: job 1 takes job 0's slot once job 0 is done. This thread
/// looks at job 0 while the slot is handed over, again once job 1 owns it (racing job 1's
/// completion), and last after both finished. The GPU writes a slot's error with plain stores
/// before its release of `done_seq`, so a look that reads the slot while the next job completes
/// can take that job's error for its own (a seqlock tore so: job 0's failure read as job 1's
/// success), or find the slot past its job and see no outcome at all. The slot is handed over
/// under the slots' mutex instead, the previous job's failure going to the history first, and a
/// look whose job no longer owns the slot reads the history. Job 0 fails (5), job 1 succeeds:
/// every look at job 0 once it has finished finds its own failure (`Forgotten` is for looks
/// older than `REMEMBERED` failures, which two jobs do not reach).
#[test]
fn loom_job_slot_reuse_keeps_each_jobs_own_outcome() {
    let model = four_preemptions();
    model.check(|| {
        let shared = Shared::with(1, 1);
        let producer = Arc::new(Submitter::new(64));
        let first = submit_words(&producer, &shared, &[1]);
        let gpu = {
            let s = shared.clone();
            loom::thread::spawn(move || run_jobs(&s, (0, 2), |seq| if seq == 1 { 5 } else { 0 }))
        };
        let next = {
            let (s, p) = (shared.clone(), producer.clone());
            loom::thread::spawn(move || submit_words(&p, &s, &[2]))
        };
        look(&producer, &shared, first, Outcome::Finished(5, 0));
        let second = next.join().unwrap();
        // Job 1 owns the slot now and may be completing: its error lands in the slot.
        look(&producer, &shared, first, Outcome::Finished(5, 0));
        assert_eq!(gpu.join().unwrap(), Ok(vec![(0, 1), (0, 2)]));
        assert_eq!((second.slot, second.seq), (first.slot, first.seq + 1));
        let ring = shared.ring();
        assert_eq!(
            producer.outcome(&ring, first),
            Some(Outcome::Finished(5, 0)),
            "a look at job 0 after job 1 finished in its slot"
        );
        assert_eq!(
            producer.outcome(&ring, second),
            Some(Outcome::Finished(0, 0))
        );
    });
}

/// Orphans. One job slot: job 0 runs on the GPU while job 1's submit gives up at its first
/// wait, for the slot (under loom a wait checks health at every turn; a failing health check
/// stands in for the timeout), leaving an orphan that never owned the slot; or, job 0 done
/// already, job 1 runs. Then job 2's submit, on another thread, finds the slot held by the
/// orphan and settles it while it waits: once job 0 is done, and not before, job 1 is completed
/// as abandoned, job 0's failure going to the history first; this thread looks at job 0
/// meanwhile. The slot is freed exactly once: every job the GPU runs owns the slot then, job 2
/// gets it, each job keeps its own outcome, and no orphan is left.
#[test]
fn loom_orphan_frees_its_slot_once_after_its_predecessor() {
    let model = four_preemptions();
    model.check(|| {
        let shared = Shared::with(1, 1);
        let producer = Arc::new(Submitter::new(64));
        let first = submit_words(&producer, &shared, &[1]);
        let gpu = {
            let s = shared.clone();
            loom::thread::spawn(move || run_jobs(&s, (0, 3), |seq| [5, 6, 0][seq as usize - 1]))
        };
        let timeout = Error::Timeout(std::time::Duration::ZERO, "a free job slot");
        let orphaned = match submit_with(&producer, &shared, &[2], &|| Err(timeout.clone())) {
            Err(Error::Timeout(..)) => true,
            Ok(Some(job)) => {
                assert_eq!(job.id, 1);
                false
            }
            other => panic!("job 1's submit: {other:?}"),
        };
        let next = {
            let (s, p) = (shared.clone(), producer.clone());
            loom::thread::spawn(move || submit_words(&p, &s, &[3]))
        };
        look(&producer, &shared, first, Outcome::Finished(5, 0));
        let third = next.join().unwrap();
        assert_eq!((third.id, third.slot, third.seq), (2, 0, 3));
        let ran = gpu.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
        let ring = shared.ring();
        let second = JobTicket {
            id: 1,
            slot: 0,
            seq: 2,
            epoch: 0,
        };
        if orphaned {
            assert_eq!(ran, vec![(0, 1), (0, 3)]);
            assert_eq!(
                producer.outcome(&ring, second),
                Some(Outcome::Finished(ABANDONED, 0))
            );
        } else {
            assert_eq!(ran, vec![(0, 1), (0, 2), (0, 3)]);
            assert_eq!(
                producer.outcome(&ring, second),
                Some(Outcome::Finished(6, 0))
            );
        }
        assert_eq!(
            producer.outcome(&ring, first),
            Some(Outcome::Finished(5, 0))
        );
        assert_eq!(
            producer.outcome(&ring, third),
            Some(Outcome::Finished(0, 0))
        );
        assert_eq!(ring.completions[0].done_seq.load(Ordering::Relaxed), 3);
        assert!(!producer.producer().owes_settling(), "an orphan is left");
    });
}

/// Restart (D7). One descriptor, one job slot, no GPU (the kernel has stopped). Another
/// thread submits job 0 of five words: two chunks through the arena (a loom chunk is at most
/// four words); its second chunk waits for the one descriptor, which only the restart gives
/// back. Once job 0 is taken this thread restarts the ring, racing the copy of the first chunk,
/// then submits job 1 of two words (past the one a loom descriptor carries inline). The restart,
/// holding the producer's mutex, waits until no reservation is being copied, abandons job 0 and
/// starts an epoch whose producer hands out the arena from its start again: job 1 is copied
/// over the bytes job 0's first chunk was handed. Had the restart not waited, that copy could
/// still be writing them (two copies at once, or job 1's records overwritten). Job 0's submit
/// ends, never hangs: `Stopped`, at its first chunk or its second (the new epoch refuses old
/// jobs a descriptor); job 0 reads as abandoned, and job 1 takes its slot.
#[test]
fn loom_restart_waits_for_copies_and_cuts_off_their_jobs() {
    let model = four_preemptions();
    model.check(|| {
        let shared = Shared::with(1, 1);
        let producer = Arc::new(Submitter::new(64));
        let old = {
            let (s, p) = (shared.clone(), producer.clone());
            loom::thread::spawn(move || submit_with(&p, &s, &[1, 2, 3, 4, 5], &|| Ok(())))
        };
        // A job taken after the restart would wait for a GPU that does not run.
        while producer.jobs_taken() < 1 {
            loom::thread::yield_now();
        }
        let ring = shared.ring();
        let next = producer.restart(&ring).unwrap();
        let fresh = submit_words(&producer, &shared, &[7, 8]);
        assert_eq!(old.join().unwrap(), Err(Error::Stopped));
        assert!(next <= 1, "the old job published at most its first chunk");
        assert_eq!((fresh.id, fresh.seq, fresh.epoch), (1, 2, 1));
        // Job 1's records, in the order the copies ran: no copy of job 0 came after.
        let copied = [0, 1].map(|i| shared.arena.last[i].load(Ordering::Relaxed));
        assert_eq!(copied, [7, 8], "job 1's records at the arena's start");
        let job0 = JobTicket {
            id: 0,
            slot: 0,
            seq: 1,
            epoch: 0,
        };
        assert_eq!(
            producer.outcome(&ring, job0),
            Some(Outcome::Finished(ABANDONED, 0))
        );
        assert_eq!(producer.outcome(&ring, fresh), None, "no GPU runs it");
        assert!(!producer.producer().owes_settling());
    });
}
