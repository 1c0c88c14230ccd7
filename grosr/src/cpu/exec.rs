//! The CPU executor's threads, jobs and the `TaskRun` behind a body's `ctx`.
//!
//! Worker threads take tasks from their own deques and a shared one (`queue.rs`: spawns run
//! depth first on their worker, idle workers steal). A lane task runs its Rust function right on
//! the worker; a warp or block task runs on a gang (`gang.rs`). A job counts its tasks: a submit
//! counts its records, a spawn counts its child before the parent's task ends, and each task's
//! end uncounts it; the job is done when its count reaches zero.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::gang::{Gang, GangRef, GangTask, Op};
use super::memory::{Allocation, Cursor, HostMemory};
use super::queue::{Local, Queues};
use super::trace::Recorder;
use crate::body::Ctx;
use crate::codegen::TaskInfo;
use crate::error::{Error, Result};
use crate::layout::BLOCK_THREADS;
use crate::record::{Granularity, MAX_RECORD_BYTES, Task};
use crate::trace::TaskSpan;

/// A Rust body over a record's bytes (`TaskInfo`'s type-erased `Task::CPU_BODY`).
pub(crate) type ErasedBody = fn(&[u8], &mut Ctx);

/// One task type as the executor sees it.
struct Kind {
    name: &'static str,
    granularity: Granularity,
    size: usize,
    body: Option<ErasedBody>,
    /// Its lanes never meet: run one after another on the worker, no gang.
    lanes_apart: bool,
}

/// One queued task, or several: items `first..end` of a range (one record, run with
/// `ctx.index()` = each item) or of a host submit (a record each, index 0).
struct Item {
    kind: u32,
    /// A trace's id of what made it (a task, a host submit or graph run), 0 untraced.
    parent: u64,
    job: Arc<JobState>,
    records: Records,
    /// A graph node's run and index: its successors are released when it ends.
    node: Option<(Arc<GraphRun>, u32)>,
    first: u32,
    end: u32,
    /// The whole range's items, before any split: what its grain is chosen from.
    total: u32,
}

/// The records of an [`Item`]'s tasks.
#[derive(Clone)]
enum Records {
    /// One record for every item (a task, or a range's items).
    One([u8; MAX_RECORD_BYTES]),
    /// A host submit's records, whole records of the kind's size: item `i` runs the `i`th.
    /// One item for a submit, split as a range is, rather than one per record: a million tiny
    /// lane tasks in one submit ran at 6–11 M tasks/s as an item each, 57–93 M/s so (`cargo
    /// bench --bench cpu`, 2 workers on a 2-core VM whose speed varies between runs).
    Each(Arc<[u8]>),
}

impl Item {
    /// One task (no range).
    fn one(
        kind: u32,
        parent: u64,
        job: &Arc<JobState>,
        record: [u8; MAX_RECORD_BYTES],
        node: Option<(Arc<GraphRun>, u32)>,
    ) -> Item {
        Item::range(kind, parent, job, record, node, 1)
    }

    /// Items `0..items` of one record.
    fn range(
        kind: u32,
        parent: u64,
        job: &Arc<JobState>,
        record: [u8; MAX_RECORD_BYTES],
        node: Option<(Arc<GraphRun>, u32)>,
        items: u32,
    ) -> Item {
        Item {
            kind,
            parent,
            job: Arc::clone(job),
            records: Records::One(record),
            node,
            first: 0,
            end: items,
            total: items,
        }
    }

    /// Tasks it stands for (its job counts each).
    fn count(&self) -> u32 {
        self.end - self.first
    }

    /// Its items from `at` on, as an item of their own; it keeps those before `at`.
    fn split_off(&mut self, at: u32) -> Item {
        let upper = Item {
            kind: self.kind,
            parent: self.parent,
            job: Arc::clone(&self.job),
            records: self.records.clone(),
            node: self.node.clone(),
            first: at,
            end: self.end,
            total: self.total,
        };
        self.end = at;
        upper
    }
}

impl Records {
    /// Item `i`'s record (of `size` bytes) and its `ctx.index()`.
    fn get(&self, i: u32, size: usize) -> (&[u8], u32) {
        match self {
            Records::One(r) => (&r[..size], i),
            Records::Each(all) => (&all[i as usize * size..][..size], 0),
        }
    }
}

/// A task graph as the CPU runs it (from the graph layer's plan): node `i` is `items[i]` tasks
/// of `kinds[i]` with `records[i]` (a range node's items; 1 otherwise), its successors
/// `succ[succ_off[i]..succ_off[i + 1]]`.
pub(crate) struct GraphPlan {
    pub(crate) kinds: Vec<u32>,
    pub(crate) records: Vec<[u8; MAX_RECORD_BYTES]>,
    pub(crate) items: Vec<u32>,
    pub(crate) succ_off: Vec<u32>,
    pub(crate) succ: Vec<u32>,
    pub(crate) indeg: Vec<u32>,
}

/// One run of a graph: how many predecessors of each node have still to end, and how many
/// items of each range node.
struct GraphRun {
    plan: Arc<GraphPlan>,
    remaining: Vec<std::sync::atomic::AtomicU32>,
    items_left: Vec<std::sync::atomic::AtomicU32>,
}

impl GraphRun {
    /// `n` items of node `i` ended: true if they were its last (its successors are due).
    fn node_ends(&self, i: u32, n: u32) -> bool {
        let i = i as usize;
        // A plain node's one task is all of it; a range node's last items release it. AcqRel:
        // every item's effects precede the successors' start, whichever item ends last.
        self.plan.items[i] == 1 || self.items_left[i].fetch_sub(n, Ordering::AcqRel) == n
    }
}

/// A job's count and outcome.
pub(crate) struct JobState {
    /// Its id in a trace (0 untraced).
    id: u64,
    /// A graph run under a lowered strategy (CUDA Graph, Fused, ...): on a GPU those are
    /// ordinary kernels that run whether the scheduler is stopped or not, so `stop` leaves
    /// these jobs' tasks (and the successors they release) alone.
    lowered: bool,
    /// Set by [`CpuJob::cancel`]: the job's tasks not yet started are dropped, its spawns
    /// discarded, and its graph successors not released.
    cancelled: AtomicBool,
    pending: AtomicI64,
    error: Mutex<Option<Error>>,
    done: Mutex<bool>,
    finished: Condvar,
}

impl JobState {
    fn new(id: u64, tasks: i64, lowered: bool) -> Arc<JobState> {
        Arc::new(JobState {
            id,
            lowered,
            cancelled: AtomicBool::new(false),
            pending: AtomicI64::new(tasks),
            error: Mutex::new(None),
            done: Mutex::new(tasks == 0),
            finished: Condvar::new(),
        })
    }

    /// The job's first error wins.
    fn fail(&self, e: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(e);
    }

    /// Whether [`CpuJob::cancel`] has been called.
    fn is_cancelled(&self) -> bool {
        // Acquire, with `cancel`'s release: whoever drops a task for it sees the outcome
        // `cancel` recorded first, so the job cannot complete with a task dropped and no error.
        self.cancelled.load(Ordering::Acquire)
    }

    /// `n` tasks ended (after counting whatever they spawned): true if they were the job's
    /// last, and the caller is to [`complete`](Self::complete) it.
    fn release(&self, n: u32) -> bool {
        // AcqRel: every task's effects precede the waiter's return (the last decrement
        // acquires all earlier ones through the count's release sequence).
        self.pending.fetch_sub(i64::from(n), Ordering::AcqRel) == i64::from(n)
    }

    /// The job is done: its waiters return.
    fn complete(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.finished.notify_all();
    }
}

struct Shared {
    kinds: Vec<Kind>,
    by_type: HashMap<TypeId, u32>,
    /// Tasks run, per worker and kind: worker `w`'s row starts at `w * row` (rows padded to
    /// 64 bytes, so workers never share a line). Each count is added before its task's job can
    /// complete (the count's release orders it), so a waiter that returns sees it.
    executed: Vec<AtomicU64>,
    row: usize,
    /// Every queued task (cpu/queue.rs).
    queues: Queues<Item>,
    /// Taken by submits and graph runs around their look at `stopped` and their push, and by
    /// `stop` and `start` around their change of it: a stop either sees a submit's tasks (and
    /// drops them) or comes before its look.
    gate: Mutex<()>,
    /// Set when the executor is dropped: workers end after their current task.
    stop: AtomicBool,
    /// Worker threads.
    threads: usize,
    /// Set by `stop`: queued tasks are dropped, submits and spawns refused, until `start`.
    stopped: AtomicBool,
    memory: Arc<HostMemory>,
    warp_gangs: Mutex<Vec<Gang>>,
    block_gangs: Mutex<Vec<Gang>>,
    /// The trace's recorder (`RuntimeBuilder::trace`), if tracing.
    trace: Option<Arc<Recorder>>,
    /// Ids of gang runs (from 1).
    next_run: AtomicU64,
}

impl Shared {
    /// A trace id for a new job, task or host span (0 untraced).
    fn trace_id(&self) -> u64 {
        self.trace.as_ref().map_or(0, |r| r.id())
    }

    fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The address that tells this executor's worker threads from others'.
    fn key(&self) -> usize {
        self as *const Shared as usize
    }
}

thread_local! {
    /// A worker thread's own deque, with its executor's [`Shared::key`]: where the tasks it runs
    /// spawn to.
    static LOCAL: std::cell::OnceCell<(usize, Local<Item>)> = const { std::cell::OnceCell::new() };
}

/// Drops `items` unrun: their jobs fail with `e` (the first error wins) and complete when
/// their last task is gone.
fn drop_items(items: impl IntoIterator<Item = Item>, e: &Error) {
    for item in items {
        item.job.fail(e.clone());
        if item.job.release(item.count()) {
            item.job.complete();
        }
    }
}

/// Runs tasks with Rust bodies on host threads (`Task::CPU_BODY`): the engine of the runtime's
/// CPU backend (`runtime/cpu.rs`).
pub(crate) struct CpuExecutor {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// A submitted job on the [`CpuExecutor`].
pub(crate) struct CpuJob {
    state: Arc<JobState>,
    /// Its waits are traced here.
    trace: Option<Arc<Recorder>>,
}

impl CpuJob {
    /// Cancels the job: its outcome becomes [`Error::Cancelled`] unless it has finished or
    /// failed already (a job finishing as it is cancelled may report either); tasks not yet
    /// started are dropped as workers reach them, running ones finish (`ctx.cancelled()` tells
    /// them), and their spawns and graph successors are dropped.
    pub fn cancel(&self) {
        // The outcome first, then the flag (release): a task is dropped only after both. Under
        // the `done` lock: a job that a waiter has seen finish keeps its outcome.
        {
            let done = self.state.done.lock().unwrap_or_else(|e| e.into_inner());
            if !*done && self.state.pending.load(Ordering::Acquire) > 0 {
                self.state.fail(Error::Cancelled);
            }
        }
        self.state.cancelled.store(true, Ordering::Release);
    }

    /// Whether the job has finished (its tasks and their spawns have run, or were dropped).
    pub fn is_done(&self) -> Result<bool> {
        Ok(*self.state.done.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits until every task of the job (and everything they spawned) has run, at most
    /// `timeout`: the first task failure or fault as an error.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        let Some(r) = &self.trace else {
            return self.wait_untraced(timeout);
        };
        let (id, start) = (r.id(), r.now());
        let waited = self.wait_untraced(timeout);
        r.host(id, "wait", self.state.id, start);
        waited
    }

    fn wait_untraced(&self, timeout: Duration) -> Result<()> {
        // `Job` caps timeouts at MAX_TIMEOUT; past the clock's range, the wait is that long.
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + crate::MAX_TIMEOUT);
        let mut done = self.state.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(timeout, "a CPU job"));
            }
            done = self
                .state
                .finished
                .wait_timeout(done, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(done);
        match self
            .state
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl CpuExecutor {
    /// An executor for `tasks` (kind `k` is `tasks[k]`) on `threads` worker threads (at least 1).
    /// An executor of `threads` workers for `tasks`; `trace_events` > 0 records a trace of up
    /// to that many events per worker.
    pub(crate) fn new(
        tasks: &[TaskInfo],
        threads: usize,
        trace_events: usize,
        spawn_cap: usize,
    ) -> Result<CpuExecutor> {
        let (queues, locals) = Queues::new(threads.max(1), spawn_cap);
        let shared = Arc::new(Shared {
            kinds: tasks
                .iter()
                .map(|t| Kind {
                    name: t.name,
                    granularity: t.granularity,
                    size: t.size,
                    body: t.cpu_body,
                    lanes_apart: t.cpu_lanes_apart,
                })
                .collect(),
            by_type: tasks
                .iter()
                .enumerate()
                .map(|(k, t)| (t.type_id, k as u32))
                .collect(),
            executed: (0..threads.max(1) * tasks.len().next_multiple_of(8))
                .map(|_| AtomicU64::new(0))
                .collect(),
            row: tasks.len().next_multiple_of(8),
            queues,
            gate: Mutex::new(()),
            stop: AtomicBool::new(false),
            threads: threads.max(1),
            stopped: AtomicBool::new(false),
            memory: Arc::new(HostMemory::default()),
            warp_gangs: Mutex::new(Vec::new()),
            block_gangs: Mutex::new(Vec::new()),
            trace: (trace_events > 0)
                .then(|| Arc::new(Recorder::new(threads.max(1), trace_events))),
            next_run: AtomicU64::new(1),
        });
        let mut ex = CpuExecutor {
            shared,
            workers: Vec::new(),
        };
        for (w, local) in locals.into_iter().enumerate() {
            let shared = Arc::clone(&ex.shared);
            let t = std::thread::Builder::new()
                .name(format!("grosr-cpu-{w}"))
                .stack_size(WORKER_STACK_BYTES)
                .spawn(move || worker(&shared, w, local))
                .map_err(|e| Error::io("starting a CPU executor thread", e))?;
            ex.workers.push(t);
        }
        Ok(ex)
    }

    /// Submits the records of kind `kind` in `bytes` (whole records of its size) as one job.
    pub(crate) fn submit_bytes(&self, kind: u32, bytes: &[u8]) -> Result<CpuJob> {
        let size = self.shared.kinds.get(kind as usize).map_or(0, |k| k.size);
        if size == 0 || bytes.len() % size != 0 {
            return Err(Error::Config(format!(
                "{} bytes of records of kind {kind} ({size} bytes each)",
                bytes.len()
            )));
        }
        let tasks = u32::try_from(bytes.len() / size)
            .map_err(|_| Error::Config(format!("{} records in one submit", bytes.len() / size)))?;
        let r = self.shared.trace.as_deref();
        let (submit, start) = r.map_or((0, 0), |r| (r.id(), r.now()));
        let job = JobState::new(self.shared.trace_id(), i64::from(tasks), false);
        let item = (tasks > 0).then(|| Item {
            kind,
            parent: submit,
            job: Arc::clone(&job),
            records: Records::Each(Arc::from(bytes)),
            node: None,
            first: 0,
            end: tasks,
            total: tasks,
        });
        self.push_submitted(item)?;
        if let Some(r) = r {
            r.host(submit, "submit", job.id, start);
        }
        Ok(self.job(job))
    }

    /// Submits `items` tasks of kind `kind` sharing the record `bytes` (exactly its size), as
    /// one job: task `i` runs with `ctx.index()` = `i`.
    pub(crate) fn submit_range_bytes(&self, kind: u32, bytes: &[u8], items: u32) -> Result<CpuJob> {
        let size = self.shared.kinds.get(kind as usize).map_or(0, |k| k.size);
        if size == 0 || bytes.len() != size {
            return Err(Error::Config(format!(
                "a range's record of kind {kind} is {} bytes, not {size}",
                bytes.len()
            )));
        }
        let r = self.shared.trace.as_deref();
        let (submit, start) = r.map_or((0, 0), |r| (r.id(), r.now()));
        let job = JobState::new(self.shared.trace_id(), i64::from(items), false);
        let mut record = [0u8; MAX_RECORD_BYTES];
        record[..size].copy_from_slice(bytes);
        let item = (items > 0).then(|| Item::range(kind, submit, &job, record, None, items));
        self.push_submitted(item)?;
        if let Some(r) = r {
            r.host(submit, "submit", job.id, start);
        }
        Ok(self.job(job))
    }

    /// Queues a submit's tasks (none for an empty submit), or refuses it while stopped.
    fn push_submitted(&self, item: Option<Item>) -> Result<()> {
        let _gate = self.shared.gate();
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(Error::Stopped);
        }
        self.shared.queues.push_shared(item.into_iter());
        Ok(())
    }

    fn job(&self, state: Arc<JobState>) -> CpuJob {
        CpuJob {
            state,
            trace: self.shared.trace.clone(),
        }
    }

    /// What the trace recorded since the last take; `None` when not tracing.
    pub(crate) fn take_trace(&self) -> Option<crate::Trace> {
        let r = self.shared.trace.as_ref()?;
        Some(r.take(self.shared.kinds.iter().map(|k| k.name).collect()))
    }

    /// Runs `plan` once as one job: its roots are queued, and each node's end queues the
    /// successors it was the last predecessor of (as the GPU's resident graph release does).
    /// `lowered` (a strategy other than Resident): the run goes on while the executor is
    /// stopped, as a GPU's host-launched kernels do beside a stopped scheduler.
    pub(crate) fn run_graph(&self, plan: &Arc<GraphPlan>, lowered: bool) -> Result<CpuJob> {
        let n = plan.kinds.len();
        let run = Arc::new(GraphRun {
            plan: Arc::clone(plan),
            remaining: plan
                .indeg
                .iter()
                .map(|&d| std::sync::atomic::AtomicU32::new(d))
                .collect(),
            items_left: plan
                .items
                .iter()
                .map(|&n| std::sync::atomic::AtomicU32::new(n))
                .collect(),
        });
        // The roots' tasks are counted now, the other nodes' when released (before their last
        // predecessor's end is uncounted), as spawns are: a stop that drops them drops their
        // counts too.
        let roots = (0..n).filter(|&i| plan.indeg[i] == 0);
        let tasks: i64 = roots.clone().map(|i| i64::from(plan.items[i])).sum();
        debug_assert!(
            n == 0 || tasks > 0,
            "a plan is acyclic, its nodes' items at least 1"
        );
        let r = self.shared.trace.as_deref();
        let (launch, start) = r.map_or((0, 0), |r| (r.id(), r.now()));
        let job = JobState::new(self.shared.trace_id(), tasks, lowered);
        let items: Vec<Item> = roots
            .map(|i| {
                let node = Some((Arc::clone(&run), i as u32));
                let (kind, record) = (plan.kinds[i], plan.records[i]);
                Item::range(kind, launch, &job, record, node, plan.items[i])
            })
            .collect();
        {
            let _gate = self.shared.gate();
            if self.shared.stopped.load(Ordering::Acquire) && !lowered {
                return Err(Error::Stopped);
            }
            self.shared.queues.push_shared(items.into_iter());
        }
        if let Some(r) = r {
            r.host(launch, "graph run", job.id, start);
        }
        Ok(self.job(job))
    }

    /// Tasks run per kind.
    pub(crate) fn executed_all(&self) -> Vec<u64> {
        let s = &self.shared;
        (0..s.kinds.len())
            .map(|k| {
                (0..s.threads)
                    .map(|w| s.executed[w * s.row + k].load(Ordering::Relaxed))
                    .sum()
            })
            .collect()
    }

    /// The host memory bodies address.
    pub(crate) fn memory(&self) -> &Arc<HostMemory> {
        &self.shared.memory
    }

    /// Whether `stop` holds (until `start`).
    pub(crate) fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire)
    }

    /// Drops every queued task (its job then fails with [`Error::Stopped`]) and refuses submits
    /// and spawns until [`start`](Self::start); running tasks finish. Lowered graph runs go on.
    ///
    /// A spawn or graph release racing the stop may land after it; a worker drops what it takes
    /// while stopped, but one that a `start` overtakes runs (its job was counted throughout).
    pub(crate) fn stop(&self) {
        let dropped: Vec<Item> = {
            // Under the gate throughout: a submit that a `start` let in after this stop is not
            // drained by it.
            let _gate = self.shared.gate();
            self.shared.stopped.store(true, Ordering::Release);
            // What a worker takes meanwhile it drops itself (see `work`).
            let (kept, dropped): (Vec<Item>, Vec<Item>) = self
                .shared
                .queues
                .drain()
                .into_iter()
                .partition(|item| item.job.lowered);
            self.shared.queues.push_shared(kept.into_iter());
            dropped
        };
        drop_items(dropped, &Error::Stopped);
    }

    /// Takes submits again after [`stop`](Self::stop).
    pub(crate) fn start(&self) {
        let _gate = self.shared.gate();
        self.shared.stopped.store(false, Ordering::Release);
    }
}

impl std::fmt::Debug for CpuExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.shared.kinds.iter().map(|k| k.name).collect();
        f.debug_struct("CpuExecutor")
            .field("tasks", &names)
            .field("threads", &self.workers.len())
            .finish()
    }
}

impl std::fmt::Debug for CpuJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuJob")
            .field("pending", &self.state.pending.load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for CpuExecutor {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.queues.wake_all();
        // Workers end after their current task; one whose body never returns is left running
        // (detached, holding what it uses) after 10 s, as a GPU runtime whose kernel does not
        // exit on stop is leaked, rather than hanging the drop.
        let deadline = Instant::now() + DROP_WAIT;
        while self.workers.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        for t in self.workers.drain(..) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
        // What no worker took: its jobs end Stopped (their waiters may outlive the executor).
        drop_items(self.shared.queues.drain(), &Error::Stopped);
        // The gangs' threads end with them.
        self.shared
            .warp_gangs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.shared
            .block_gangs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// A worker thread's stack, where lane tasks (and lanes run apart) run: mapped as it is
/// touched. A body's runtime calls fault before it runs out ([`TaskRun::stack_check`]), as a
/// gang lane's do, rather than let the overflow abort the process.
const WORKER_STACK_BYTES: usize = 8 << 20;

/// How long dropping the executor waits for its workers' current tasks.
const DROP_WAIT: Duration = Duration::from_secs(10);

/// A worker samples the trace's counters once per this many tasks it takes.
const COUNTER_EVERY: u32 = 64;

fn worker(shared: &Arc<Shared>, w: usize, local: Local<Item>) {
    LOCAL.with(|cell| {
        if cell.set((shared.key(), local)).is_err() {
            unreachable!("a worker thread runs one worker");
        }
        let Some((_, local)) = cell.get() else {
            unreachable!("set above")
        };
        work(shared, w, local);
        // Ending (the executor is dropped): what is left on this worker's deque ends Stopped,
        // and what anything pushed since the drop's sweep (a worker whose task outlived the
        // drop's wait and then released or spawned): the last thread out sweeps.
        drop_items(shared.queues.drain_local(local), &Error::Stopped);
        drop_items(shared.queues.drain(), &Error::Stopped);
    });
}

/// Worker `w`'s loop: takes a task, runs it, accounts for it, until the executor is dropped.
fn work(shared: &Arc<Shared>, w: usize, local: &Local<Item>) {
    // One context for every lane task this worker runs: each task moves its job in.
    let mut ctx = Ctx {
        run: TaskRun {
            shared: Arc::clone(shared),
            job: JobState::new(0, 0, false),
            kind: 0,
            index: 0,
            lane: 0,
            width: 1,
            gang: None,
            cursor: RefCell::new(Cursor::default()),
            scratch: Arc::default(),
            task_id: 0,
            run_id: 0,
            accesses: std::cell::Cell::new(0),
            stack: std::cell::Cell::new((0, 0)),
        },
    };
    // Where this worker's stack starts, near enough (what the thread ran before `work` is
    // counted against the headroom): tasks run here check their stack as gang lanes do.
    let top = 0u8;
    let stack = (
        std::ptr::addr_of!(top) as usize,
        WORKER_STACK_BYTES - STACK_HEADROOM,
    );
    let trace = shared.trace.as_deref();
    let executed = &shared.executed[w * shared.row..(w + 1) * shared.row];
    let mut taken = 0u32;
    loop {
        // Dropping the executor ends its workers after their current task, queued or not.
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let Some(mut item) = shared.queues.take(w, local) else {
            // Idle: let go of the last allocation looked at, so a buffer dropped meanwhile is
            // freed now, not when this worker next runs a task.
            *ctx.run.cursor.borrow_mut() = Cursor::default();
            shared.queues.sleep(local, &shared.stop);
            continue;
        };
        taken = taken.wrapping_add(1);
        if let Some(r) = trace.filter(|_| taken % COUNTER_EVERY == 1) {
            r.counter(w, "queued tasks", shared.queues.len() as f64);
            r.counter(w, "heap bytes", shared.memory.heap_bytes() as f64);
        }
        if shared.stopped.load(Ordering::Acquire) && !item.job.lowered {
            // Stopped after this task was queued (or spawned as the stop came): dropped whole,
            // before any split, as `stop` drops what it finds.
            drop_items([item], &Error::Stopped);
            continue;
        }
        if item.job.is_cancelled() {
            // Dropped whole, before any split (a cancelled range of 10^9 items took seconds
            // split grain by grain, other jobs waiting behind it): not counted as executed, its
            // graph successors never released.
            if item.job.release(item.count()) {
                item.job.complete();
            }
            continue;
        }
        // A range: halves go onto this worker's own deque (run next here, or stolen by an idle
        // worker) until one grain is left, so its items spread as a spawn tree's tasks do.
        // A lane grain no larger than a worker's share of the whole range, so a few long lane
        // tasks (a submit of two, say) run side by side, as lanes of a warp do on a GPU.
        let grain = match shared.kinds[item.kind as usize].granularity {
            Granularity::Lane => LANE_GRAIN.min(item.total.div_ceil(shared.threads as u32)),
            _ => 1,
        }
        .max(1);
        while item.count() > grain {
            let upper = item.split_off(item.first + item.count() / 2);
            shared.queues.push_split(upper, local);
        }
        let count = item.count();
        let Item {
            kind,
            parent,
            job,
            records,
            node,
            first,
            end,
            ..
        } = item;
        let size = shared.kinds[kind as usize].size;
        ctx.run.job = job;
        ctx.run.kind = kind;
        let mut ran = 0;
        for index in first..end {
            if ctx.run.job.is_cancelled() {
                // Dropped unrun: not counted as executed, its graph successors never released.
                break;
            }
            let (record, index) = records.get(index, size);
            ctx.run.index = index;
            let span = trace.map(|r| (r.id(), r.now()));
            ctx.run.task_id = span.map_or(0, |s| s.0);
            // Again for every task: a fault of the last one may have turned the check off.
            ctx.run.set_stack_top(stack.0, stack.1);
            run_task(shared, record, &mut ctx);
            if let (Some(r), Some((id, start_ns))) = (trace, span) {
                r.task(
                    w,
                    TaskSpan {
                        id,
                        parent,
                        kind,
                        node: node.as_ref().map(|(_, i)| *i),
                        job: ctx.run.job.id,
                        track: w as u32,
                        start_ns,
                        end_ns: r.now(),
                    },
                );
            }
            ran += 1;
        }
        if let Some((run, i)) = node {
            if run.node_ends(i, count) {
                release_successors(shared, &run, i, &ctx.run);
            }
        }
        // Relaxed, on this worker's own line: the release below orders it before the job's
        // completion (as the GPU counts a task before its job's count).
        executed[kind as usize].fetch_add(ran, Ordering::Relaxed);
        if ctx.run.job.release(count) {
            ctx.run.job.complete();
        }
    }
}

/// Items of a lane-task range one worker runs in a row (a GPU runs 32 lane tasks a round).
const LANE_GRAIN: u32 = 32;

/// Queues the successors of graph node `i` whose last predecessor it was, counting them into
/// the job first (before node `i`'s own end is uncounted).
fn release_successors(shared: &Shared, run: &Arc<GraphRun>, i: u32, by: &TaskRun) {
    let job = &by.job;
    if job.is_cancelled() {
        return; // the successors are dropped, uncounted
    }
    let plan = &run.plan;
    let (from, to) = (plan.succ_off[i as usize], plan.succ_off[i as usize + 1]);
    let mut ready = Vec::new();
    let mut tasks = 0i64;
    for &s in &plan.succ[from as usize..to as usize] {
        // AcqRel: the node's effects precede its successor's start, whichever predecessor is
        // last (the injector's slot, written with release and read with acquire, then hands
        // them to the worker that runs it).
        if run.remaining[s as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
            let (kind, record, items) = (
                plan.kinds[s as usize],
                plan.records[s as usize],
                plan.items[s as usize],
            );
            let node = Some((Arc::clone(run), s));
            ready.push(Item::range(kind, by.task_id, job, record, node, items));
            tasks += i64::from(items);
        }
    }
    if ready.is_empty() {
        return;
    }
    if shared.stopped.load(Ordering::Acquire) && !job.lowered {
        // Stopped: the successors are dropped, uncounted (the job ends with `Stopped`).
        job.fail(Error::Stopped);
        return;
    }
    // Counted before node `i`'s own end is (`release`), so the job cannot complete first.
    job.pending.fetch_add(tasks, Ordering::Relaxed);
    shared.queues.push_shared(ready.into_iter());
}

/// Runs one task of `ctx`'s kind and job on `record` (its kind's size) with the worker's `ctx`.
fn run_task(shared: &Arc<Shared>, record: &[u8], ctx: &mut Ctx) {
    let kind = &shared.kinds[ctx.run.kind as usize];
    match kind.body {
        None => ctx.run.fault(
            "its body is CUDA C, which only a GPU runs: give it a Rust body \
             (`#[grosr::task(rust = |task, ctx| ..)]`) to run it on the CPU"
                .into(),
        ),
        Some(body) => match kind.granularity {
            Granularity::Lane => {
                call_body(body, record, ctx);
            }
            // Lanes that never meet: one after another here (a valid schedule of a GPU's warp
            // or block, whose threads may run in any order between meetings), far cheaper
            // than a gang's hand-offs. A lane that faults ends the task.
            g if kind.lanes_apart => {
                let width = if g == Granularity::Warp {
                    32
                } else {
                    BLOCK_THREADS
                };
                ctx.run.width = width;
                for lane in 0..width {
                    ctx.run.lane = lane;
                    if !call_body(body, record, ctx) {
                        break;
                    }
                }
                ctx.run.lane = 0;
                ctx.run.width = 1;
            }
            Granularity::Warp => {
                run_on_gang(shared, &shared.warp_gangs, 32, body, record, &ctx.run)
            }
            Granularity::Block => run_on_gang(
                shared,
                &shared.block_gangs,
                BLOCK_THREADS,
                body,
                record,
                &ctx.run,
            ),
        },
    }
}

/// Runs a warp or block task on an idle gang of `width` lanes from `pool` (a new one if none is
/// idle), each lane with a copy of `run`.
fn run_on_gang(
    shared: &Arc<Shared>,
    pool: &Mutex<Vec<Gang>>,
    width: u32,
    body: ErasedBody,
    record: &[u8],
    run: &TaskRun,
) {
    let taken = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut gang = match taken.map(Ok).unwrap_or_else(|| Gang::new(width)) {
        Ok(g) => g,
        Err(e) => {
            run.job
                .fail(Error::io("starting the threads of a CPU gang", e));
            return;
        }
    };
    let scratch = Arc::default();
    let task = GangTask {
        body,
        record: record.to_vec(),
        run: TaskRun {
            scratch: Arc::clone(&scratch),
            run_id: shared.next_run.fetch_add(1, Ordering::Relaxed),
            ..run.clone()
        },
    };
    if let Some(what) = gang.run(task) {
        run.job.fail(Error::BodyFault {
            task: shared.kinds[run.kind as usize].name.to_string(),
            what,
        });
    }
    // Every lane has finished (or, the gang broken, never runs again): what they shared goes
    // (an access through a kept pointer faults).
    for (_, a) in scratch.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        shared.memory.free(&a);
    }
    if gang.broken() {
        // Its other lanes are stuck mid-body, holding what they hold: never run it again.
        std::mem::forget(gang);
        return;
    }
    pool.lock().unwrap_or_else(|e| e.into_inner()).push(gang);
}

/// What unwinds a body out of a fault or a divergence (its job has failed already):
/// [`call_body`] catches it, and no panic hook runs for it.
struct Abort;

/// Stops the calling body: its job has failed, and going on would compute on made-up values
/// (a read that was refused, a collective that did not happen) or spin forever.
pub(crate) fn abort() -> ! {
    std::panic::resume_unwind(Box::new(Abort))
}

/// Calls `body` on `record`: true if it returned; a panic fails the task's job instead of the
/// thread, and a fault's [`abort`] ends it quietly.
pub(crate) fn call_body(body: ErasedBody, record: &[u8], ctx: &mut Ctx) -> bool {
    match std::panic::catch_unwind(AssertUnwindSafe(|| body(record, ctx))) {
        Ok(()) => true,
        Err(p) if p.is::<Abort>() => false,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            ctx.run.fault(format!("it panicked: {msg}"));
            false
        }
    }
}

/// A gang run's `warp_shared` arrays, by call site.
type Scratch = Vec<(&'static Location<'static>, Arc<Allocation>)>;

/// What one thread of one task has: the executor, the job, its lane and, for warp and block
/// tasks, its gang. A body's `ctx` (`body::Ctx`) holds one.
pub(crate) struct TaskRun {
    shared: Arc<Shared>,
    job: Arc<JobState>,
    kind: u32,
    /// The task's item in its range (`ctx.index()`; 0 outside a range).
    index: u32,
    lane: u32,
    width: u32,
    gang: Option<GangRef>,
    /// The last allocation this thread hit (a body's reads take `&self`).
    cursor: RefCell<Cursor>,
    /// `ctx.warp_shared` memory of the gang's task by call site (one array a site, as a GPU's
    /// `__shared__` declaration), shared by its lanes and freed when the whole gang has finished
    /// ([`run_on_gang`]).
    scratch: Arc<Mutex<Scratch>>,
    /// The task's trace id (0 untraced): its spawns' parent.
    task_id: u64,
    /// The gang run's id (0: not on a gang): what its `warp_shared` memory is owned by.
    run_id: u64,
    /// Memory accesses this lane made: every [`PREEMPT_EVERY`]th lets its gang's other lanes
    /// run (a lane spinning on what another lane writes would otherwise hold them all).
    accesses: std::cell::Cell<u32>,
    /// The stack this thread of the task runs on (a gang lane's or a worker's): its top (near
    /// enough) and size; (0, 0): unchecked.
    stack: std::cell::Cell<(usize, usize)>,
}

/// Stack a lane keeps free for the runtime's calls: below it they fault instead of running
/// (an overflow inside one would leave its locks held for good; gang.rs).
const STACK_HEADROOM: usize = 64 << 10;

/// How often a gang's lane gives way at a memory access.
const PREEMPT_EVERY: u32 = 1024;

impl Clone for TaskRun {
    fn clone(&self) -> TaskRun {
        TaskRun {
            shared: Arc::clone(&self.shared),
            job: Arc::clone(&self.job),
            kind: self.kind,
            index: self.index,
            lane: self.lane,
            width: self.width,
            gang: self.gang.clone(),
            cursor: RefCell::new(Cursor::default()),
            scratch: Arc::clone(&self.scratch),
            task_id: self.task_id,
            run_id: self.run_id,
            accesses: std::cell::Cell::new(0),
            stack: std::cell::Cell::new((0, 0)),
        }
    }
}

impl TaskRun {
    /// This task's run for lane `lane` of a gang of `width`.
    pub(crate) fn for_lane(&self, lane: u32, width: u32, gang: Option<GangRef>) -> TaskRun {
        TaskRun {
            lane,
            width,
            gang,
            ..self.clone()
        }
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    pub(crate) fn lane(&self) -> u32 {
        self.lane
    }

    pub(crate) fn width(&self) -> u32 {
        self.width
    }

    /// Whether the task's lanes run together (a gang), so that they can meet.
    pub(crate) fn on_gang(&self) -> bool {
        self.gang.is_some()
    }

    /// Records the stack this thread of the task runs on (a gang lane's or a worker's): its top
    /// (an address near it) and size.
    pub(crate) fn set_stack_top(&self, top: usize, size: usize) {
        self.stack.set((top, size));
    }

    /// Faults the task, by an ordinary unwind, if the stack this thread runs on has less than
    /// [`STACK_HEADROOM`] left: the runtime call about to run takes locks, and a stack overflow
    /// inside it would leave them held.
    fn stack_check(&self) {
        let (top, size) = self.stack.get();
        if size == 0 {
            return;
        }
        let here = 0u8;
        let used = top.saturating_sub(std::ptr::addr_of!(here) as usize);
        if used + STACK_HEADROOM > size {
            self.stack.set((0, 0)); // the fault's own calls run unchecked
            self.fault(format!(
                "its lane's stack ({} KiB) is nearly full ({} KiB used): a body's locals and \
                 calls must fit it",
                size >> 10,
                used >> 10
            ));
            abort()
        }
    }

    pub(crate) fn task_name(&self) -> String {
        self.shared.kinds[self.kind as usize].name.to_string()
    }

    /// Fails the task's job with a [`Error::BodyFault`] saying `what`.
    pub(crate) fn fault(&self, what: String) {
        self.job.fail(Error::BodyFault {
            task: self.task_name(),
            what,
        });
    }

    /// Whether the task's job has been cancelled (`ctx.cancelled()`).
    pub(crate) fn cancelled(&self) -> bool {
        self.job.is_cancelled()
    }

    /// `ctx.fail(code)`.
    pub(crate) fn fail(&self, code: i32) {
        self.job.fail(Error::TaskFailed {
            task: self.task_name(),
            code: code.max(1),
        });
    }

    /// `f` over the allocation holding `len` bytes at `ptr + index * len` (aligned to `align`)
    /// and that address; if there is none, the task's job fails and the body stops ([`abort`]).
    fn at<R>(
        &self,
        what: &str,
        (ptr, index, len, align): (u64, u64, u64, u64),
        f: impl FnOnce(&Allocation, u64) -> R,
    ) -> R {
        self.stack_check();
        if let Some(g) = &self.gang {
            let n = self.accesses.get().wrapping_add(1);
            self.accesses.set(n);
            if n % PREEMPT_EVERY == 0 && !g.give_way() {
                // Another lane faulted (the job has failed): this one stops, even mid-spin.
                abort()
            }
        }
        let addr = index.checked_mul(len).and_then(|o| ptr.checked_add(o));
        if let Some(a) = addr.filter(|a| a % align == 0) {
            let mut cursor = self.cursor.borrow_mut();
            if let Some(alloc) = cursor.find(&self.shared.memory, a, len) {
                if alloc.owner() == 0 || alloc.owner() == self.run_id {
                    return f(alloc, a);
                }
                drop(cursor);
                self.fault(format!(
                    "{what} of {len} bytes at {ptr:#x} + {index} × {len}: another task's \
                     warp_shared memory (on a GPU, a warp's shared memory is its own)"
                ));
                abort()
            }
        }
        self.fault(format!(
            "{what} of {len} bytes at {ptr:#x} + {index} × {len}: {}",
            if addr.is_some_and(|a| a % align != 0) {
                "misaligned"
            } else {
                "outside every live allocation"
            }
        ));
        abort()
    }

    pub(crate) fn read<T: bytemuck::Pod>(&self, ptr: u64, index: u64) -> T {
        let mut v = T::zeroed();
        let place = (ptr, index, size_of::<T>() as u64, align_of::<T>() as u64);
        self.at("a read", place, |a, addr| {
            a.read(addr, bytemuck::bytes_of_mut(&mut v))
        });
        v
    }

    pub(crate) fn write<T: bytemuck::Pod>(&mut self, ptr: u64, index: u64, value: T) {
        let place = (ptr, index, size_of::<T>() as u64, align_of::<T>() as u64);
        self.at("a write", place, |a, addr| {
            a.write(addr, bytemuck::bytes_of(&value))
        });
    }

    /// An atomic read-modify-write of a `size`-byte element (4 or 8), `f` over its bits.
    pub(crate) fn update(
        &mut self,
        ptr: u64,
        index: u64,
        size: u32,
        f: impl Fn(u64) -> u64,
    ) -> u64 {
        let len = u64::from(size);
        self.at("an atomic", (ptr, index, len, len), |a, addr| {
            a.update(addr, size, f)
        })
    }

    /// `ctx.alloc`: `n` elements of `size` bytes from the host heap (registered like a buffer,
    /// marked as the heap's); the address.
    pub(crate) fn alloc(&mut self, n: u64, size: u64) -> u64 {
        self.stack_check();
        // Too much for the host (or more bytes than a u64 counts): null, as a GPU's heap
        // answers a request it cannot serve.
        n.checked_mul(size)
            .and_then(|bytes| self.shared.memory.alloc_heap(bytes))
            .map_or(0, |a| a.base())
    }

    /// `ctx.free`: what `alloc` gave, once; null is ignored.
    pub(crate) fn free(&mut self, addr: u64) {
        self.stack_check();
        if addr != 0 && !self.shared.memory.free_heap(addr) {
            self.fault(format!(
                "ctx.free({addr:#x}): not an allocation of ctx.alloc that is still live"
            ));
            abort()
        }
    }

    /// Counts `record` (of type `T`) into the job and queues it.
    pub(crate) fn spawn<T: Task + 'static>(&mut self, task: &T) {
        self.stack_check();
        let Some(&kind) = self.shared.by_type.get(&TypeId::of::<T>()) else {
            self.fault(format!(
                "it spawns `{}`, which is not registered: add `.task::<{}>()`",
                T::C_NAME,
                T::C_NAME
            ));
            abort();
        };
        if self.job.is_cancelled() {
            return; // discarded, uncounted: the job is cancelled
        }
        if self.job.lowered {
            // A lowered strategy's kernels have no scheduler to spawn into: on a GPU the spawn
            // fails the launch with ERR_SPAWN_OUTSIDE (code -4), and so it does here.
            self.job.fail(Error::TaskFailed {
                task: self.task_name(),
                code: -4,
            });
            return;
        }
        if self.shared.stopped.load(Ordering::Acquire) {
            // Stopped: the child is dropped with the queues' others, its job abandoned.
            self.job.fail(Error::Stopped);
            return;
        }
        // Onto this worker's own deque (it runs it next, unless a thief takes it first).
        LOCAL.with(|cell| {
            let local = cell
                .get()
                .filter(|(key, _)| *key == self.shared.key())
                .map(|(_, l)| l);
            if !self.shared.queues.reserve_spawn(local) {
                // The queues are full: dropped, and the job fails, as a GPU's full queues answer.
                self.job.fail(Error::QueueOverflow(T::C_NAME.to_string()));
                return;
            }
            let mut record = [0u8; MAX_RECORD_BYTES];
            record[..size_of::<T>()].copy_from_slice(bytemuck::bytes_of(task));
            // Counted before this task's own end is (`release`), so the job cannot complete first.
            self.job.pending.fetch_add(1, Ordering::Relaxed);
            let item = Item::one(kind, self.task_id, &self.job, record, None);
            self.shared.queues.push_reserved(item, local);
        });
    }

    /// This lane's part in a collective (`op` at `site`).
    pub(crate) fn meet(
        &self,
        site: &'static Location<'static>,
        op: Op,
        value: u64,
        arg: u32,
    ) -> u64 {
        self.stack_check();
        let met = match &self.gang {
            Some(g) => g.meet(self.lane, site, op, value, arg),
            // A lane task (or a task run lane by lane) has no other lanes to meet: a granular
            // helper called from one (on a GPU, a build error).
            None => Err(format!(
                "it reached a collective at {site} with no other lanes to meet: collectives are \
                 for warp tasks (barriers for block tasks)"
            )),
        };
        met.unwrap_or_else(|why| {
            self.fault(why);
            abort()
        })
    }

    /// `ctx.warp_shared` at `site`: `bytes` of memory the gang's lanes share for this task, the
    /// same array every time the task passes `site` (lane 0 allocates it the first time, every
    /// lane gets its address), freed when the gang has finished.
    pub(crate) fn warp_shared(&self, site: &'static Location<'static>, bytes: u64) -> u64 {
        self.stack_check();
        if self.gang.is_none() {
            // Not a gang: the meeting below fails the task; allocate nothing first.
            return self.meet(site, Op::Shuffle, 0, 0);
        }
        let mine = if self.lane == 0 {
            let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            match scratch.iter().find(|(at, _)| **at == *site) {
                Some((_, a)) => a.base(),
                None => match self.shared.memory.alloc_owned(bytes.max(1), self.run_id) {
                    Some(a) => {
                        let base = a.base();
                        scratch.push((site, a));
                        base
                    }
                    None => {
                        drop(scratch);
                        self.fault(format!("warp_shared memory of {bytes} bytes: too much"));
                        abort()
                    }
                },
            }
        } else {
            0
        };
        self.meet(site, Op::Shuffle, mine, 0)
    }
}

fn _assert_send() {
    fn send<T: Send>() {}
    send::<TaskRun>();
    send::<CpuExecutor>();
}
