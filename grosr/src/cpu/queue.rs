//! The CPU executor's queues: one deque per worker and one for the host, with stealing.
//!
//! A task's spawns go onto its worker's own deque, which the worker pops newest first: a spawn
//! tree runs depth first, as on a GPU, where a warp runs its own stack's children next, so a
//! tree of a million tasks holds a path's worth of children, not a level's. Idle workers steal
//! the oldest entries of any deque, so nothing waits behind a long task while another worker is
//! free. Host submits and graph roots go to the shared injector, which every worker takes from.
//!
//! `queued` counts the entries in all deques (a task, or a range or host submit not yet split
//! into its tasks), for the spawn cap and the trace's "queued tasks": spawns reserve
//! against a cap first, as a GPU's spawns find room in its queues or fail the job with
//! `QueueOverflow`, so a body that spawns in an endless loop cannot run the host out of memory.
//! A worker keeps its own spawns' and takes' changes to the count and adds them every
//! [`FLUSH`] (and before it sleeps): one shared atomic per task made 2 workers 2× slower. The
//! cap then holds to within `FLUSH` tasks per worker.
//!
//! Sleeping: an idle worker registers in `sleepers`, then looks at every deque once more under
//! the sleep lock before it waits; a pusher pushes, then looks at `sleepers`, and notifies
//! under the same lock. A sequentially consistent fence on each side between its write and its
//! look means one of them sees the other: either the sleeper sees the task or the pusher wakes
//! it. The wait is bounded all the same.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering, fence};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

/// The longest an idle worker sleeps before it looks again (a safety net: pushes wake it).
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Changes to the queued count a worker keeps before it adds them to `queued`.
const FLUSH: isize = 64;

/// Every deque of an executor; `T` is its queued task.
pub(crate) struct Queues<T> {
    injector: Injector<T>,
    stealers: Vec<Stealer<T>>,
    /// Tasks queued, less what workers have taken and not yet subtracted (so it may read a
    /// little high, or for a moment below zero).
    queued: AtomicIsize,
    /// Spawns that would raise `queued` past this fail instead.
    spawn_cap: isize,
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

/// A worker's own deque, which only its thread pushes to and pops from, and its share of the
/// queued count not yet added to `queued`.
pub(crate) struct Local<T> {
    deque: Worker<T>,
    delta: Cell<isize>,
}

impl<T> Queues<T> {
    /// Queues for `workers` workers, and each worker's own deque (to be moved to its thread).
    pub(crate) fn new(workers: usize, spawn_cap: usize) -> (Queues<T>, Vec<Local<T>>) {
        let locals: Vec<Local<T>> = (0..workers)
            .map(|_| Local {
                deque: Worker::new_lifo(),
                delta: Cell::new(0),
            })
            .collect();
        let queues = Queues {
            injector: Injector::new(),
            stealers: locals.iter().map(|l| l.deque.stealer()).collect(),
            queued: AtomicIsize::new(0),
            spawn_cap: isize::try_from(spawn_cap).unwrap_or(isize::MAX),
            sleepers: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        };
        (queues, locals)
    }

    /// Tasks queued now (a moment's count, within [`FLUSH`] a worker).
    pub(crate) fn len(&self) -> usize {
        self.queued.load(Ordering::Relaxed).max(0) as usize
    }

    /// Queues `items` for any worker (host submits, graph roots and releases).
    pub(crate) fn push_shared(&self, items: impl ExactSizeIterator<Item = T>) {
        let n = items.len();
        if n == 0 {
            return;
        }
        self.queued.fetch_add(n as isize, Ordering::Relaxed);
        for item in items {
            self.injector.push(item);
        }
        self.notify(n);
    }

    /// Reserves room for one spawned task: false (nothing reserved) if the queues hold their
    /// cap already. `local`: the spawning worker's (none: a thread outside the executor).
    pub(crate) fn reserve_spawn(&self, local: Option<&Local<T>>) -> bool {
        match local {
            Some(l) => {
                if self.queued.load(Ordering::Relaxed) + l.delta.get() >= self.spawn_cap {
                    return false;
                }
                self.change(l, 1);
                true
            }
            None => {
                if self.queued.fetch_add(1, Ordering::Relaxed) < self.spawn_cap {
                    return true;
                }
                self.queued.fetch_sub(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queues a spawned task whose room [`reserve_spawn`](Self::reserve_spawn) reserved: onto
    /// `local` (the spawning worker's deque, popped next) if given, else for any worker.
    pub(crate) fn push_reserved(&self, item: T, local: Option<&Local<T>>) {
        match local {
            Some(l) => l.deque.push(item),
            None => self.injector.push(item),
        }
        self.notify(1);
    }

    /// Queues part of a range the worker has taken onto its own deque (popped next, unless a
    /// thief takes it first). Not against the cap: its tasks were counted when the range was.
    pub(crate) fn push_split(&self, item: T, local: &Local<T>) {
        self.change(local, 1);
        local.deque.push(item);
        self.notify(1);
    }

    /// A task for worker `me`: its own newest, else a batch of the injector's, else the
    /// oldest of another worker's deque.
    pub(crate) fn take(&self, me: usize, local: &Local<T>) -> Option<T> {
        let item = local.deque.pop().or_else(|| self.steal(me, local))?;
        self.change(local, -1);
        Some(item)
    }

    /// Adds `d` to the worker's share of the count, and its share to `queued` every FLUSH.
    fn change(&self, local: &Local<T>, d: isize) {
        let delta = local.delta.get() + d;
        if delta.abs() >= FLUSH {
            self.queued.fetch_add(delta, Ordering::Relaxed);
            local.delta.set(0);
        } else {
            local.delta.set(delta);
        }
    }

    /// Adds the worker's share of the count to `queued` (before it sleeps or ends).
    pub(crate) fn flush(&self, local: &Local<T>) {
        let delta = local.delta.replace(0);
        if delta != 0 {
            self.queued.fetch_add(delta, Ordering::Relaxed);
        }
    }

    fn steal(&self, me: usize, local: &Local<T>) -> Option<T> {
        loop {
            let mut retry = false;
            match self.injector.steal_batch_and_pop(&local.deque) {
                Steal::Success(item) => {
                    // The rest of the batch is on this deque now, where a sleeper's look may
                    // have missed it: another worker may take it while this one runs.
                    if !local.deque.is_empty() {
                        self.notify(1);
                    }
                    return Some(item);
                }
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let n = self.stealers.len();
            for k in 1..n {
                match self.stealers[(me + k) % n].steal() {
                    Steal::Success(item) => return Some(item),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// Whether every deque is empty (a moment's look).
    fn is_empty(&self) -> bool {
        self.injector.is_empty() && self.stealers.iter().all(Stealer::is_empty)
    }

    /// Waits (at most [`IDLE_WAIT`]) until a task may be queued or `stop` is set.
    pub(crate) fn sleep(&self, local: &Local<T>, stop: &AtomicBool) {
        self.flush(local);
        let guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // The registration above precedes the looks below (the pusher's side: `notify`).
        fence(Ordering::SeqCst);
        if self.is_empty() && !stop.load(Ordering::Acquire) {
            drop(self.wake.wait_timeout(guard, IDLE_WAIT));
        } else {
            drop(guard);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes every sleeping worker (the executor is stopping).
    pub(crate) fn wake_all(&self) {
        let _guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }

    /// Wakes sleepers for `n` new tasks.
    fn notify(&self, n: usize) {
        // The push precedes the look at `sleepers` (the sleeper's side: `sleep`).
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
            if n == 1 {
                self.wake.notify_one();
            } else {
                self.wake.notify_all();
            }
        }
    }

    /// Takes every queued task that any thread can reach: the injector's and what can be
    /// stolen from every worker's deque.
    pub(crate) fn drain(&self) -> Vec<T> {
        let mut out = Vec::new();
        loop {
            let mut retry = false;
            for source in std::iter::once(None).chain(self.stealers.iter().map(Some)) {
                loop {
                    let s = match source {
                        None => self.injector.steal(),
                        Some(st) => st.steal(),
                    };
                    match s {
                        Steal::Success(item) => out.push(item),
                        Steal::Retry => {
                            retry = true;
                            break;
                        }
                        Steal::Empty => break,
                    }
                }
            }
            if !retry {
                break;
            }
        }
        self.queued.fetch_sub(out.len() as isize, Ordering::Relaxed);
        out
    }

    /// Takes every task of a worker's own deque (the worker is ending), its share added.
    pub(crate) fn drain_local(&self, local: &Local<T>) -> Vec<T> {
        let out: Vec<T> = std::iter::from_fn(|| local.deque.pop()).collect();
        self.flush(local);
        self.queued.fetch_sub(out.len() as isize, Ordering::Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawns_run_newest_first_idle_workers_steal_the_oldest_and_the_cap_holds() {
        let (q, locals) = Queues::<u32>::new(2, 3);
        for i in 0..3 {
            assert!(q.reserve_spawn(Some(&locals[0])));
            q.push_reserved(i, Some(&locals[0]));
        }
        assert!(!q.reserve_spawn(Some(&locals[0])), "three queued: the cap");
        // Others see the worker's spawns once it has added its share.
        q.flush(&locals[0]);
        assert!(!q.reserve_spawn(None), "from outside the workers too");
        assert_eq!(q.len(), 3);
        assert_eq!(q.take(1, &locals[1]), Some(0), "a thief takes the oldest");
        assert_eq!(q.take(0, &locals[0]), Some(2), "the owner its newest");
        q.push_shared([7, 8].into_iter());
        q.flush(&locals[0]);
        q.flush(&locals[1]);
        assert_eq!(q.len(), 3);
        let mut rest = q.drain();
        rest.sort();
        assert_eq!(rest, vec![1, 7, 8]);
        assert_eq!(q.len(), 0);
        assert_eq!(q.take(0, &locals[0]), None);
        let stop = AtomicBool::new(true);
        q.sleep(&locals[0], &stop); // returns at once
    }

    #[test]
    fn a_push_wakes_a_sleeping_worker() {
        let (q, mut locals) = Queues::<u32>::new(1, 8);
        let q = std::sync::Arc::new(q);
        let local = locals.pop().unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (q2, stop2) = (std::sync::Arc::clone(&q), std::sync::Arc::clone(&stop));
        let t = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            loop {
                if let Some(v) = q2.take(0, &local) {
                    return (v, start.elapsed());
                }
                q2.sleep(&local, &stop2);
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        q.push_shared(std::iter::once(5));
        let (v, _) = t.join().unwrap();
        assert_eq!(v, 5);
    }
}
