//! A loom model of the graph board (cuda/grosr_graph_launch.cuh, `board_offer` / `board_claim`;
//! cuda/README.md, "Resident task graphs").
//!
//! An ingest warp offers a launch's roots on a board entry: it takes the entry by setting its
//! `live` bit (an atomic OR whose old value says whether another ring's ingest warp, or a
//! launch still being claimed, holds it), counts the roots, then stores the entry's state
//! `job << 44 | units << 22 | 0` with release. Workers
//! that see a live bit claim a unit with one acq_rel add on the state; the claim of the last unit
//! clears the bit, and only an entry whose bit is clear is offered again (else the launch is cut
//! into ranges: here, the ingest thread runs it itself). One entry carries two launches in turn
//! while two workers make a few claims each (finite loops: loom cannot bound spinning ones), and
//! the ingest thread claims what is left at the end. Loom checks that every unit runs exactly
//! once, that a claim sees its job's graph (written before the offer), that each job's count
//! reaches zero, and that the entry is free again at the end. Setting the bit *after* the state
//! fails the last check: a late claim, whose look at `live` predates the new launch, can take
//! its last unit before the bit is up, and the bit then stays up for good. A second model has
//! two ingest threads (two submission rings) offer at once beside a worker.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

const UNIT_BITS: u32 = 22;
const JOB_SHIFT: u32 = 44;
const UNIT_MASK: u64 = (1 << UNIT_BITS) - 1;
const JOBS: usize = 2;
/// Units of each launch (one root each): the second has one, so that a single late claim can
/// take its last unit.
const UNITS: [u64; JOBS] = [2, 1];
/// Claims each worker makes.
const CLAIMS: usize = 2;

struct Board {
    live: AtomicU32,
    state: AtomicU64,
    /// Per job: tasks not finished (the launch record, then its roots).
    pending: [AtomicI32; JOBS],
    /// Per job: the graph a claimed unit reads (`DevJob::graph`), written before the offer.
    graph: [UnsafeCell<u32>; JOBS],
    /// Per job and unit: how often it ran.
    ran: [[AtomicU32; 2]; JOBS],
}

/// Runs unit `unit` of `job`: it reads the job's graph and takes its root's count away.
fn run(b: &Board, job: usize, unit: u64) {
    // SAFETY (loom-checked): the offer's release store happens-before the claim (acquire), or
    // the ingest thread wrote it itself.
    let graph = b.graph[job].with(|g| unsafe { *g });
    assert_eq!(graph, 100 + job as u32, "a claim sees its job's graph");
    b.ran[job][unit as usize].fetch_add(1, Ordering::Relaxed);
    b.pending[job].fetch_sub(1, Ordering::AcqRel);
}

/// An ingest warp's launch of `job`: offered on the entry if it takes its bit, else run here
/// (on the GPU: another entry, or graph ranges).
fn launch(b: &Board, job: usize) {
    // SAFETY (loom-checked): see `run`.
    b.graph[job].with_mut(|g| unsafe { *g = 100 + job as u32 });
    // The bit goes up before the state, and only for the one offer that found it clear.
    let taken = b.live.fetch_or(1, Ordering::Relaxed) & 1 == 0;
    // The launch record's count, then every root's in its place.
    b.pending[job].fetch_add(UNITS[job] as i32, Ordering::Relaxed);
    if !taken {
        (0..UNITS[job]).for_each(|u| run(b, job, u));
        return;
    }
    // The GPU's st.release.gpu. Modelled as a swap (the same single write): with a plain store,
    // loom 0.7 ran executions in which a concurrent add built on the value the store replaced.
    b.state.swap(
        (job as u64) << JOB_SHIFT | UNITS[job] << UNIT_BITS,
        Ordering::Release,
    );
}

/// A fresh board.
fn board() -> Arc<Board> {
    Arc::new(Board {
        live: AtomicU32::new(0),
        state: AtomicU64::new(0),
        pending: [AtomicI32::new(0), AtomicI32::new(0)],
        graph: [UnsafeCell::new(0), UnsafeCell::new(0)],
        ran: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU32::new(0))),
    })
}

/// Claims what is left (every idle warp, on the GPU), then checks that every unit ran once,
/// every job's count is zero and the entry is free.
fn finish_and_check(b: &Board) {
    while claim(b) {}
    for job in 0..JOBS {
        for unit in 0..UNITS[job] as usize {
            let ran = b.ran[job][unit].load(Ordering::Relaxed);
            assert_eq!(ran, 1, "job {job} unit {unit} ran {ran} times");
        }
        assert_eq!(b.pending[job].load(Ordering::Relaxed), 0);
    }
    assert_eq!(
        b.live.load(Ordering::Relaxed) & 1,
        0,
        "the entry is free again"
    );
}

/// One look at `live` and, if the entry is live, one claim. False if it claimed nothing.
fn claim(b: &Board) -> bool {
    if b.live.load(Ordering::Relaxed) & 1 == 0 {
        return false;
    }
    let old = b.state.fetch_add(1, Ordering::AcqRel);
    let (unit, units) = (old & UNIT_MASK, (old >> UNIT_BITS) & UNIT_MASK);
    if unit + 1 == units {
        b.live.fetch_and(!1, Ordering::Relaxed);
    }
    if unit >= units {
        return false;
    }
    run(b, (old >> JOB_SHIFT) as usize, unit);
    true
}

#[test]
fn loom_graph_board_offer_claim_reuse() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(4);
    model.check(|| {
        let b = board();
        // The first launch is on the board before the workers look: every claim of theirs can
        // meet it, and a late one the second launch.
        launch(&b, 0);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                loom::thread::spawn(move || {
                    for _ in 0..CLAIMS {
                        claim(&b);
                    }
                })
            })
            .collect();
        launch(&b, 1);
        for w in workers {
            w.join().unwrap();
        }
        finish_and_check(&b);
    });
}

#[test]
fn loom_graph_board_two_rings_offer_at_once() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let b = board();
        let other_ring = {
            let b = b.clone();
            loom::thread::spawn(move || launch(&b, 1))
        };
        let worker = {
            let b = b.clone();
            loom::thread::spawn(move || {
                for _ in 0..CLAIMS {
                    claim(&b);
                }
            })
        };
        launch(&b, 0);
        other_ring.join().unwrap();
        worker.join().unwrap();
        finish_and_check(&b);
    });
}
