//! Loom models of the submission protocol: the production [`Submitter::submit`] against a host thread that
//! stands in for the GPU's ingest warp.

use super::*;
use loom::sync::Arc;

/// The ring's cells and the arena, shared with the stand-in GPU.
struct Shared {
    desc_head: AtomicU64,
    descs: [DescCells; 1],
    desc_done: [AtomicU32; 1],
    completions: [CompletionCells; 2],
    arena: HostArena,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            desc_head: AtomicU64::new(0),
            descs: [DescCells::default()],
            desc_done: [AtomicU32::new(0)],
            completions: std::array::from_fn(|_| CompletionCells::default()),
            // 64 bytes: chunks of up to 16 bytes, a quarter.
            arena: HostArena::new(16),
        })
    }

    fn ring(&self) -> Ring<'_> {
        Ring {
            desc_head: &self.desc_head,
            descs: &self.descs,
            desc_done: &self.desc_done,
            completions: &self.completions,
        }
    }
}

/// The ingest warp: consumes `n` descriptors in order, each only once all its cells carry its
/// tag, and gives each back (`desc_head`) after reading it; returns `(job slot, records)` each.
fn ingest(s: &Shared, n: u64) -> Vec<(u32, Vec<u32>)> {
    let mut seen = Vec::new();
    for head in 0..n {
        let w = loop {
            match s.descs[0].read((head + 1) as u32) {
                Some(w) => break w,
                None => loom::thread::yield_now(),
            }
        };
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

fn submit_words(producer: &Submitter, s: &Shared, words: &[u32]) -> JobTicket {
    let bytes: Vec<u8> = words.iter().flat_map(|v| v.to_le_bytes()).collect();
    let records = Submission::Records {
        kind: 0,
        record_size: 4,
        bytes: &bytes,
    };
    let mut w = Waiter::new(std::time::Duration::from_secs(1));
    producer
        .submit(&s.ring(), &s.arena, records, &mut w, &|| Ok(()))
        .unwrap()
        .unwrap()
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
