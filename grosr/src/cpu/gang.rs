//! Warp and block tasks on the CPU: a gang runs the body once per lane, each lane a coroutine
//! (a stack of its own, switched to and from on the worker's thread), and its collectives
//! (`ctx.warp_sum`, `ctx.shuffle`, `ctx.sync_threads`, ...) are meetings of the gang's live lanes.
//!
//! Every lane runs the task's Rust function with its own `ctx.lane()`. A collective waits until
//! every lane still in the body has reached it, then each gets what the GPU instruction gives it
//! (sums reduce in the GPU's butterfly order, so a float sum is bit for bit the GPU's). Lanes
//! that returned take no part, as with a warp's exited threads. Each collective names its call
//! site (`#[track_caller]`): lanes that meet at different sites fail the task with
//! [`Error::BodyFault`](crate::Error) (a divergent `__shfl_sync` misbehaves on a GPU), and no
//! lane waits any more for that task, so it ends instead of hanging.
//!
//! Why coroutines: lanes wait for each other only at collectives, so one thread can run them in
//! turn, each until its next collective (a pass), and a collective costs a switch per lane. A
//! thread per lane pays a wake-up per lane per collective: a warp task with two collectives took
//! 303 µs that way against 5.4 µs as coroutines (2-core box, release; benches/NOTES.md).
//!
//! The driver ([`Gang::run`]) resumes every unfinished lane once per pass. After a pass each live
//! lane waits at a collective (it yields there) or has returned; if all live lanes wait, the
//! collective completes (or the task has diverged, and they all return its error) and the next
//! pass lets them go on.

use std::panic::Location;
use std::sync::{Arc, Mutex, MutexGuard};

use generator::{Generator, Gn};

use super::exec::TaskRun;
use crate::body::Ctx;

/// What a collective computes over the lanes' values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    /// f32 sum (warp_sum), in the butterfly order.
    SumF32,
    /// f32 maximum (warp_max), in the butterfly order.
    MaxF32,
    /// f32 minimum (warp_min), in the butterfly order.
    MinF32,
    /// A bit per lane whose value is nonzero.
    Ballot,
    /// The value of lane `arg` (`__shfl_sync`).
    Shuffle,
    /// The value of lane `lane ^ arg` (`__shfl_xor_sync`).
    ShuffleXor,
    /// The value of lane `lane - arg`, a lane's own below `arg` (`__shfl_up_sync`).
    ShuffleUp,
    /// The value of lane `lane + arg`, a lane's own from `width - arg` (`__shfl_down_sync`).
    ShuffleDown,
    /// Nothing: a barrier (`__syncthreads`).
    Barrier,
}

/// The body a gang runs and the task's run, which each lane copies with its own lane index.
#[derive(Clone)]
pub(crate) struct GangTask {
    pub(crate) body: fn(&[u8], &mut Ctx),
    pub(crate) record: Vec<u8>,
    pub(crate) run: TaskRun,
}

struct State {
    /// Lanes still in the body.
    live: u32,
    // The collective being met: its site and op, who has arrived, their values and arguments.
    site: Option<&'static Location<'static>>,
    op: Op,
    arrived: u32,
    here: Vec<bool>,
    values: Vec<u64>,
    args: Vec<u32>,
    results: Vec<u64>,
    round: u64,
    /// Set when lanes met at different sites: the task fails and no lane waits again.
    diverged: Option<String>,
}

/// What the lanes share. Only the worker's thread touches it (lanes run on it in turn); a mutex
/// makes it `Sync` for the `Arc` a lane's `TaskRun` holds, and is never contended.
struct Shared {
    width: u32,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A lane's stack: 256 KiB, mapped as it is touched (a body and a fault's message fit in far
/// less; the default 32 KiB is close for a body, the runtime's checks and formatting).
const LANE_STACK_BYTES: usize = 256 << 10;
const LANE_STACK_WORDS: usize = LANE_STACK_BYTES / size_of::<usize>();

/// A gang of `width` lane coroutines, kept for its next task.
pub(crate) struct Gang {
    shared: Arc<Shared>,
    lanes: Vec<Generator<'static, (), ()>>,
    /// A lane's coroutine failed (its stack overflowed): the others are stuck mid-body, so
    /// the gang is not used again (`run_on_gang` leaks it).
    broken: bool,
}

/// A lane's way to its gang's collectives (what `Ctx` holds for warp and block tasks).
#[derive(Clone)]
pub(crate) struct GangRef {
    shared: Arc<Shared>,
}

impl Gang {
    /// A gang of `width` lanes (32 for warp tasks, the block's width for block tasks).
    pub(crate) fn new(width: u32) -> std::io::Result<Gang> {
        let w = width as usize;
        let shared = Arc::new(Shared {
            width,
            state: Mutex::new(State {
                live: 0,
                site: None,
                op: Op::Barrier,
                arrived: 0,
                here: vec![false; w],
                values: vec![0; w],
                args: vec![0; w],
                results: vec![0; w],
                round: 0,
                diverged: None,
            }),
        });
        // The generator crate panics when a stack cannot be mapped.
        let lanes = std::panic::catch_unwind(|| {
            (0..w)
                .map(|_| Gn::<()>::new_opt(LANE_STACK_WORDS, || {}))
                .collect()
        })
        .map_err(|_| std::io::Error::other("mapping the lanes' stacks"))?;
        Ok(Gang {
            shared,
            lanes,
            broken: false,
        })
    }

    /// Whether a lane's coroutine failed: the gang must not run another task.
    pub(crate) fn broken(&self) -> bool {
        self.broken
    }

    /// Runs `task` on every lane and returns once each has returned; the message of a
    /// divergence, if the lanes met at different collectives.
    pub(crate) fn run(&mut self, task: GangTask) -> Option<String> {
        let s = &self.shared;
        {
            let mut st = s.lock();
            st.live = s.width;
            st.site = None;
            st.arrived = 0;
            st.here.iter_mut().for_each(|h| *h = false);
            st.diverged = None;
        }
        for (lane, g) in self.lanes.iter_mut().enumerate() {
            let (task, shared) = (task.clone(), Arc::clone(s));
            g.init_code(move || run_lane(&shared, &task, lane as u32));
        }
        loop {
            // A pass: every lane runs until it waits at a collective or returns. A body's panics
            // and faults end inside the lane (call_body); what comes out here is the coroutine's
            // own failure, its stack overflowing: the task fails and the gang is done for.
            for g in self.lanes.iter_mut().filter(|g| !g.is_done()) {
                let resumed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.resume()));
                if resumed.is_err() {
                    self.broken = true;
                    return Some(format!(
                        "a lane's stack ({} KiB) overflowed: a body's locals must fit it",
                        (LANE_STACK_WORDS * size_of::<usize>()) >> 10
                    ));
                }
            }
            let mut st = s.lock();
            if st.live == 0 {
                return st.diverged.take();
            }
            // Every live lane waits at a collective now: it completes, unless the task diverged
            // (then the waiting lanes see the error on the next pass and return).
            if st.diverged.is_none() && st.arrived == st.live {
                complete(&mut st, s.width);
            }
        }
    }
}

/// One lane of `task`: its body, then its leaving the gang.
fn run_lane(shared: &Arc<Shared>, task: &GangTask, lane: u32) {
    let gang = GangRef {
        shared: Arc::clone(shared),
    };
    let mut ctx = Ctx {
        run: task.run.for_lane(lane, shared.width, Some(gang)),
    };
    // Where this lane's stack starts, near enough: the runtime's calls check their headroom
    // against it (TaskRun::stack_check).
    let top = 0u8;
    ctx.run
        .set_stack_top(std::ptr::addr_of!(top) as usize, LANE_STACK_BYTES);
    let returned = super::exec::call_body(task.body, &task.record, &mut ctx);
    let mut st = shared.lock();
    if !returned && st.diverged.is_none() {
        // It faulted (its job has failed with why): the other lanes stop at their next
        // collective too, as the lanes-apart path stops the task, rather than go on without it.
        st.diverged = Some(format!("lane {lane} faulted"));
    }
    if returned && st.arrived > 0 && st.diverged.is_none() {
        // On a GPU a lane that returned waits at the task's end for the others, which wait
        // at their collective for it: a hang, or undefined results.
        let site = st.site.map_or_else(String::new, |s| format!(" at {s}"));
        st.diverged = Some(format!(
            "lane {lane} returned while other lanes waited at a collective{site}: on a GPU \
             a collective needs every lane of the warp (every thread of the block)"
        ));
    }
    st.live -= 1;
}

/// Everyone who had to arrive has: compute each lane's result, open the next round.
fn complete(st: &mut State, width: u32) {
    let w = width as usize;
    let here = |l: usize, st: &State| st.here[l];
    match st.op {
        Op::SumF32 | Op::MaxF32 | Op::MinF32 => {
            // The GPU's butterfly: v[l] op= v[l ^ o] for o = 16, 8, 4, 2, 1 (grosr_warp.cuh).
            let mut v: Vec<f32> = (0..w)
                .map(|l| {
                    if here(l, st) {
                        f32::from_bits(st.values[l] as u32)
                    } else {
                        0.0
                    }
                })
                .collect();
            let mut o = w / 2;
            while o > 0 {
                let prev = v.clone();
                for l in 0..w {
                    v[l] = match st.op {
                        Op::SumF32 => prev[l] + prev[l ^ o],
                        Op::MaxF32 => max_f32(prev[l], prev[l ^ o]),
                        _ => min_f32(prev[l], prev[l ^ o]),
                    };
                }
                o /= 2;
            }
            for (r, x) in st.results.iter_mut().zip(&v) {
                *r = u64::from(x.to_bits());
            }
        }
        Op::Ballot => {
            let mask = (0..w.min(64))
                .filter(|&l| here(l, st) && st.values[l] != 0)
                .fold(0u64, |m, l| m | 1 << l);
            st.results.iter_mut().for_each(|r| *r = mask);
        }
        Op::Shuffle | Op::ShuffleXor | Op::ShuffleUp | Op::ShuffleDown => {
            for l in 0..w {
                let arg = st.args[l] as usize;
                let src = match st.op {
                    Op::Shuffle => arg % w,
                    Op::ShuffleXor => (l ^ arg) % w,
                    // As `shfl.up` / `shfl.down`: the delta's low 5 bits.
                    Op::ShuffleUp => l.checked_sub(arg & 31).unwrap_or(l),
                    _ => Some(l + (arg & 31)).filter(|&s| s < w).unwrap_or(l),
                };
                // An exited lane's value is undefined on a GPU: this lane's own, here.
                st.results[l] = if here(src, st) {
                    st.values[src]
                } else {
                    st.values[l]
                };
            }
        }
        Op::Barrier => {}
    }
    st.site = None;
    st.arrived = 0;
    st.here.iter_mut().for_each(|h| *h = false);
    st.round += 1;
}

impl GangRef {
    /// Lets the gang's other lanes run before this one goes on (at a memory access: a lane
    /// spinning on what another lane writes must not hold them all, as on a GPU it does not).
    /// False if meanwhile the task diverged or another lane faulted: the caller stops too.
    pub(crate) fn give_way(&self) -> bool {
        yield_to_driver();
        self.shared.lock().diverged.is_none()
    }

    /// Lane `lane`'s part in the collective `op` at `site`: its result, or what went wrong (the
    /// lanes met at different collectives, or some had returned), after which no lane waits
    /// again.
    pub(crate) fn meet(
        &self,
        lane: u32,
        site: &'static Location<'static>,
        op: Op,
        value: u64,
        arg: u32,
    ) -> Result<u64, String> {
        let s = &self.shared;
        let mut st = s.lock();
        if st.diverged.is_none() && st.live < s.width {
            st.diverged = Some(format!(
                "a lane reached the collective at {site} after others had returned: on a GPU a \
                 collective needs every lane of the warp (every thread of the block)"
            ));
        }
        if st.diverged.is_none() {
            match st.site {
                None => {
                    st.site = Some(site);
                    st.op = op;
                }
                Some(first) if first != site || st.op != op => {
                    st.diverged = Some(format!(
                        "its lanes met at different collectives ({first} and {site}): on a GPU \
                         a collective needs all of a warp's lanes (or a block's threads) at the \
                         same one"
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(why) = &st.diverged {
            return Err(why.clone());
        }
        let l = lane as usize;
        st.here[l] = true;
        st.values[l] = value;
        st.args[l] = arg;
        st.arrived += 1;
        let round = st.round;
        // Back to the driver until the collective has completed (or the task diverged).
        while st.round == round && st.diverged.is_none() {
            drop(st);
            yield_to_driver();
            st = s.lock();
        }
        match &st.diverged {
            Some(why) => Err(why.clone()),
            None => Ok(st.results[l]),
        }
    }
}

/// Suspends the calling lane: the driver's pass goes on with the next lane.
fn yield_to_driver() {
    // The free function (deprecated in favour of a scope that the lane's `Ctx` cannot hold): it
    // yields the innermost running generator, which is this lane's (loom yields the same way).
    #[allow(deprecated)]
    generator::yield_with(());
}

/// `fminf` as the GPU's butterfly needs it: a NaN operand yields the other one, and -0.0 counts
/// below +0.0, so that both lanes of a pair (which see the operands in either order) get the
/// same value. `f32::min` may return either zero (its first operand in a debug build), which
/// would give the lanes of one warp different results for `warp_min` of ±0.
fn min_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() || b < a || (b == a && b.is_sign_negative()) {
        b
    } else {
        a
    }
}

/// [`min_f32`]'s mirror for `fmaxf`: +0.0 counts above -0.0.
fn max_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() || b > a || (b == a && b.is_sign_positive()) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::{max_f32, min_f32};

    #[test]
    fn min_and_max_give_one_value_whichever_operand_comes_first() {
        let cases = [
            (0.0f32, -0.0f32),
            (1.0, f32::NAN),
            (-2.0, 3.0),
            (f32::NAN, f32::NAN),
        ];
        for (a, b) in cases {
            for (x, y) in [(a, b), (b, a)] {
                assert_eq!(
                    min_f32(x, y).to_bits(),
                    min_f32(y, x).to_bits(),
                    "min {x} {y}"
                );
                assert_eq!(
                    max_f32(x, y).to_bits(),
                    max_f32(y, x).to_bits(),
                    "max {x} {y}"
                );
            }
        }
        assert!(min_f32(0.0, -0.0).is_sign_negative() && max_f32(-0.0, 0.0).is_sign_positive());
        assert_eq!(min_f32(1.0, f32::NAN), 1.0);
        assert_eq!(max_f32(f32::NAN, 1.0), 1.0);
    }
}
