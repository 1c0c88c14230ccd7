//! Static task graphs: a DAG of task records (any registered types), run under one of six
//! dispatch strategies from the same task bodies. Every strategy but Resident is *lowered*: the
//! graph becomes ordinary kernel launches, what a CUDA user would write instead.
//!
//! * [`Strategy::Resident`]: uploaded once into the persistent scheduler; the GPU releases each
//!   node when its last predecessor has run, so a launch costs one submit and no CPU work per task.
//! * [`Strategy::CudaGraph`] / [`Strategy::CudaGraphPdl`]: one kernel node per task with the
//!   DAG's edges (the second with Programmatic Dependent Launch edges, sm_90+), instantiated once
//!   and replayed.
//! * [`Strategy::Fused`]: one bulk kernel per (topological level, task type).
//! * [`Strategy::Batched`]: one launch per task on one stream, one synchronize at the end.
//! * [`Strategy::Sync`]: launch and synchronize per task.
//!
//! ```
//! use grosr::graph::{Strategy, TaskGraph};
//! use grosr::{DeviceBuffer, DevicePtr, Runtime};
//!
//! /// x = 10 x + digit: the result spells the order the steps ran in.
//! #[grosr::task(granularity = "lane", rust = |task, ctx| {
//!     let x = ctx.read(task.x, 0u32);
//!     ctx.write(task.x, 0u32, 10 * x + task.digit);
//! })]
//! pub struct Step { pub x: DevicePtr<u32>, pub digit: u32, pub pad: u32 }
//!
//! let rt = Runtime::builder()
//! #   .backend(grosr::Backend::Cpu) // doctests run on host threads: no GPU needed
//!     .task::<Step>()
//!     .build()?;
//! let x = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
//! let mut g = TaskGraph::new();
//! let a = g.add(Step { x: x.ptr(), digit: 1, pad: 0 });
//! let b = g.add(Step { x: x.ptr(), digit: 2, pad: 0 });
//! g.add_edge(a, b)?;                                        // a runs before b
//! let mut resident = g.prepare(&rt, Strategy::Resident)?;   // uploads once
//! resident.run(std::time::Duration::from_secs(5))?;         // one submit, no CPU work per task
//! assert_eq!(x.to_vec()?, vec![12]);
//! # Ok::<(), grosr::Error>(())
//! ```

mod dot;
mod lowered;
mod resident;

use std::any::TypeId;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::cpu::{CpuExecutor, GraphPlan};
use crate::error::{Error, Result};
use crate::layout::RECORD_WORDS;
use crate::record::{Field, Task};
use crate::runtime::Runtime;

pub(crate) use resident::ResidentGraph;
#[cfg(test)]
use resident::{GraphImage, REMAINING};

/// A node of a [`TaskGraph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The node's index (nodes are numbered in insertion order).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One task record, type-erased: its type, and its bytes padded to a queue slot's record.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub type_id: TypeId,
    pub name: &'static str,
    /// The record's fields (for [`TaskGraph::node_label`]).
    pub fields: &'static [Field],
    pub words: [u32; RECORD_WORDS],
    /// Tasks the node runs of its record: 1, or a range node's items ([`TaskGraph::add_range`]).
    pub items: u32,
}

/// One bulk kernel launch of the Fused strategy: every node of one task type on one level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FusedLaunch {
    /// The topological level.
    pub level: usize,
    /// The task type's name.
    pub task: &'static str,
    type_id: TypeId,
    /// The nodes, in insertion order.
    pub nodes: Vec<NodeId>,
}

/// How a [`TaskGraph`] is dispatched. Every strategy runs the same task bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// On the persistent scheduler; dependencies resolved on the GPU.
    Resident,
    /// A CUDA graph, one kernel node per task, replayed.
    CudaGraph,
    /// A CUDA graph whose edges use Programmatic Dependent Launch (sm_90+).
    CudaGraphPdl,
    /// One bulk kernel per (topological level, task type).
    Fused,
    /// One launch per task, one synchronize at the end.
    Batched,
    /// One launch and one synchronize per task.
    Sync,
}

impl Strategy {
    /// Every strategy, Resident first.
    pub const ALL: [Strategy; 6] = [
        Strategy::Resident,
        Strategy::CudaGraph,
        Strategy::CudaGraphPdl,
        Strategy::Fused,
        Strategy::Batched,
        Strategy::Sync,
    ];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Resident => "Resident",
            Strategy::CudaGraph => "CudaGraph",
            Strategy::CudaGraphPdl => "CudaGraph+PDL",
            Strategy::Fused => "Fused",
            Strategy::Batched => "Batched",
            Strategy::Sync => "Sync",
        }
    }

    /// Whether the strategy runs on the scheduler (the others need its SMs: stop it first).
    pub fn is_resident(self) -> bool {
        self == Strategy::Resident
    }

    /// Whether the strategy instantiates a CUDA graph (prepared with the scheduler stopped).
    fn is_cuda_graph(self) -> bool {
        matches!(self, Strategy::CudaGraph | Strategy::CudaGraphPdl)
    }
}

/// A static DAG of tasks: nodes are records of registered task types, edges say "runs before".
#[derive(Clone, Debug, Default)]
pub struct TaskGraph {
    graph: DiGraph<Node, ()>,
}

impl TaskGraph {
    /// An empty graph.
    pub fn new() -> TaskGraph {
        TaskGraph::default()
    }

    /// Adds a task; returns its node.
    pub fn add<T: Task + 'static>(&mut self, task: T) -> NodeId {
        self.add_node(task, 1)
    }

    /// Adds a range node: `items` tasks of one record, `task`'s body run once per item with
    /// `ctx.index()` = 0, 1, .., `items` − 1 (each a task of its granularity: a lane task per
    /// item, a warp or a block per item), for data-parallel work such as one softmax row per
    /// item; its successors start when every item has run. An error for 0 items (a node
    /// stands for work; [`Runtime::submit_range`] of 0 items is a job done at once).
    ///
    /// The CPU backend runs range nodes under every strategy; a GPU runtime does not yet
    /// ([`prepare`](TaskGraph::prepare) returns [`Error::Unsupported`]).
    ///
    /// ```
    /// use grosr::graph::{Strategy, TaskGraph};
    /// use grosr::{DeviceBuffer, DevicePtr, Runtime};
    ///
    /// /// y[i] = 2 x[i] for the item's i.
    /// #[grosr::task(granularity = "lane", rust = |task, ctx| {
    ///     let i = ctx.index();
    ///     ctx.write(task.y, i, 2.0f32 * ctx.read(task.x, i));
    /// })]
    /// pub struct Double { pub x: DevicePtr<f32>, pub y: DevicePtr<f32> }
    ///
    /// let rt = Runtime::builder()
    /// #   .backend(grosr::Backend::Cpu) // doctests run on host threads: no GPU needed
    ///     .task::<Double>()
    ///     .build()?;
    /// let x = DeviceBuffer::from_slice(rt.gpu(), &[1.0f32, 2.0, 3.0])?;
    /// let y = DeviceBuffer::<f32>::zeroed(rt.gpu(), 3)?;
    /// let mut g = TaskGraph::new();
    /// g.add_range(Double { x: x.ptr(), y: y.ptr() }, 3)?;
    /// g.prepare(&rt, Strategy::Resident)?.run(std::time::Duration::from_secs(5))?;
    /// assert_eq!(y.to_vec()?, vec![2.0, 4.0, 6.0]);
    /// # Ok::<(), grosr::Error>(())
    /// ```
    pub fn add_range<T: Task + 'static>(&mut self, task: T, items: u32) -> Result<NodeId> {
        if items == 0 {
            return Err(Error::Config(format!(
                "a range node of `{}` needs at least one item",
                T::C_NAME
            )));
        }
        Ok(self.add_node(task, items))
    }

    fn add_node<T: Task + 'static>(&mut self, task: T, items: u32) -> NodeId {
        let mut words = [0u32; RECORD_WORDS];
        bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..size_of::<T>()]
            .copy_from_slice(bytemuck::bytes_of(&task));
        let i = self.graph.add_node(Node {
            type_id: TypeId::of::<T>(),
            name: T::C_NAME,
            fields: T::FIELDS,
            words,
            items,
        });
        NodeId(i.index() as u32)
    }

    /// Tasks node `id` runs: 1, or a range node's items; `None` past this graph's nodes.
    pub fn items(&self, id: NodeId) -> Option<u32> {
        self.graph
            .node_weight(NodeIndex::new(id.index()))
            .map(|n| n.items)
    }

    /// Adds the dependency "`before` runs before `after`". Cycles are reported by
    /// [`validate`](TaskGraph::validate) and [`prepare`](TaskGraph::prepare).
    pub fn add_edge(&mut self, before: NodeId, after: NodeId) -> Result<()> {
        let n = self.graph.node_count();
        for id in [before, after] {
            if id.index() >= n {
                return Err(Error::Config(format!(
                    "node {} is not in this graph of {n} nodes",
                    id.index()
                )));
            }
        }
        self.graph.add_edge(
            NodeIndex::new(before.index()),
            NodeIndex::new(after.index()),
            (),
        );
        Ok(())
    }

    /// Nodes in the graph.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// Edges in the graph.
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// The dependencies as `(before, after)` pairs, in the order they were added.
    ///
    /// ```
    /// # #[grosr::task(cuda = "")] pub struct Step { pub x: grosr::DevicePtr<u32> }
    /// let mut g = grosr::graph::TaskGraph::new();
    /// let x = grosr::DevicePtr::null();
    /// let (a, b, c) = (g.add(Step { x }), g.add(Step { x }), g.add(Step { x }));
    /// g.add_edge(a, c).unwrap();
    /// g.add_edge(b, c).unwrap();
    /// assert_eq!(g.edges().collect::<Vec<_>>(), [(a, c), (b, c)]);
    /// ```
    pub fn edges(&self) -> impl ExactSizeIterator<Item = (NodeId, NodeId)> + '_ {
        self.graph.raw_edges().iter().map(|e| {
            (
                NodeId(e.source().index() as u32),
                NodeId(e.target().index() as u32),
            )
        })
    }

    /// A topological order of the nodes, or [`Error::Cycle`] naming the nodes of a cycle.
    pub fn validate(&self) -> Result<Vec<NodeId>> {
        match petgraph::algo::toposort(&self.graph, None) {
            Ok(order) => Ok(order
                .into_iter()
                .map(|i| NodeId(i.index() as u32))
                .collect()),
            Err(cycle) => Err(Error::Cycle(self.describe_cycle(cycle.node_id()))),
        }
    }

    /// The nodes grouped by level: level 0 holds the roots, level k the nodes whose longest path
    /// from a root has k edges. Every edge goes from a lower level to a higher one. Within a
    /// level, nodes keep their insertion order.
    pub fn levels(&self) -> Result<Vec<Vec<NodeId>>> {
        let order = self.validate()?;
        let mut level = vec![0usize; self.graph.node_count()];
        let mut levels: Vec<Vec<NodeId>> = Vec::new();
        for id in order {
            let i = NodeIndex::new(id.index());
            let l = self
                .graph
                .neighbors_directed(i, Direction::Incoming)
                .map(|p| level[p.index()] + 1)
                .max()
                .unwrap_or(0);
            level[id.index()] = l;
            if levels.len() <= l {
                levels.resize(l + 1, Vec::new());
            }
            levels[l].push(id);
        }
        for level in &mut levels {
            level.sort_unstable(); // insertion order within a level
        }
        Ok(levels)
    }

    /// The Fused strategy's launches, in order: per level, one bulk launch per task type (types
    /// in order of first appearance in the level).
    pub(crate) fn fused_plan(&self) -> Result<Vec<FusedLaunch>> {
        let mut launches = Vec::new();
        for (level, ids) in self.levels()?.into_iter().enumerate() {
            let first = launches.len();
            for id in ids {
                let n = &self.graph[NodeIndex::new(id.index())];
                match launches[first..]
                    .iter_mut()
                    .find(|l: &&mut FusedLaunch| l.type_id == n.type_id)
                {
                    Some(l) => l.nodes.push(id),
                    None => launches.push(FusedLaunch {
                        level,
                        task: n.name,
                        type_id: n.type_id,
                        nodes: vec![id],
                    }),
                }
            }
        }
        Ok(launches)
    }

    /// Checks the graph against `rt` and prepares it to run under `strategy`: uploads it
    /// (Resident), instantiates a CUDA graph, or builds the launch plan. Strategies other than
    /// Resident launch ordinary kernels, so they need the scheduler stopped (`Runtime::stop`)
    /// unless it was built with [`max_sms`](crate::RuntimeBuilder::max_sms) below the SM count.
    /// [`CudaGraph`](Strategy::CudaGraph) and [`CudaGraphPdl`](Strategy::CudaGraphPdl) are
    /// prepared with the scheduler stopped even then ([`Error::Busy`] otherwise: the driver's
    /// instantiation waits for the scheduler's kernel); they may run beside it after
    /// [`Runtime::start`]. Each lowered `Prepared` holds a CUDA stream (reused once it drops);
    /// while the scheduler runs, grosr makes no new stream once 28 of its own are open in the
    /// context (a running runtime's 13 included), and `prepare` returns [`Error::Busy`] instead,
    /// where the driver's stream creation could hang. On the CPU backend every strategy runs
    /// the graph on the executor, under the same rule (its workers stand for SMs); a lowered
    /// one runs while it is stopped, as a GPU's kernels do.
    pub fn prepare<'rt>(&self, rt: &'rt Runtime, strategy: Strategy) -> Result<Prepared<'rt>> {
        let plan = self.plan(rt)?;
        if let Some(cpu) = rt.cpu_engine() {
            if strategy.is_cuda_graph() && rt.is_running() {
                return Err(lowered::instantiate_beside_scheduler());
            }
            // On the CPU backend every strategy runs the graph the same way (what differs
            // between them is how a GPU launches it).
            return Ok(Prepared {
                strategy,
                inner: Inner::Cpu {
                    exec: cpu.executor(),
                    plan: Arc::new(cpu_plan(&plan)),
                    unfinished: None,
                    holds_every_sm: rt.info().sms_used >= rt.info().sm_count,
                },
            });
        }
        let gpu = rt.gpu_engine("task graphs")?;
        if let Some(n) = plan.nodes.iter().find(|n| n.items > 1) {
            return Err(Error::Unsupported(format!(
                "range nodes (TaskGraph::add_range, here of `{}`) on a GPU: not yet; the CPU \
                 backend runs them",
                n.name
            )));
        }
        let inner = match strategy {
            Strategy::Resident => Inner::Resident(ResidentGraph::upload(gpu, &plan)?),
            other => Inner::Lowered(lowered::Lowered::new(gpu, &plan, other)?),
        };
        Ok(Prepared { strategy, inner })
    }

    /// The graph in the form every strategy starts from: kinds resolved, a topological order,
    /// levels, successor lists and in-degrees.
    pub(crate) fn plan(&self, rt: &Runtime) -> Result<Plan> {
        let kinds = rt.kind_map();
        self.plan_with(|n| {
            kinds
                .get(&n.type_id)
                .copied()
                .ok_or(Error::UnregisteredTask(n.name))
        })
    }

    /// [`plan`](TaskGraph::plan) with the kind of each node given by `kind_of`.
    pub(crate) fn plan_with(&self, kind_of: impl Fn(&Node) -> Result<u32>) -> Result<Plan> {
        let order = self.validate()?;
        let fused = self.fused_plan()?;
        let kind = self
            .graph
            .node_weights()
            .map(kind_of)
            .collect::<Result<Vec<u32>>>()?;
        let mut succ_off = Vec::with_capacity(self.graph.node_count() + 1);
        let mut succ = Vec::with_capacity(self.graph.edge_count());
        let mut indeg = vec![0u32; self.graph.node_count()];
        succ_off.push(0u32);
        for i in self.graph.node_indices() {
            // petgraph lists a node's edges newest first; keep insertion order for readability.
            let mut s: Vec<u32> = self
                .graph
                .neighbors_directed(i, Direction::Outgoing)
                .map(|t| t.index() as u32)
                .collect();
            s.reverse();
            for &t in &s {
                indeg[t as usize] += 1;
            }
            succ.extend(s);
            succ_off.push(succ.len() as u32);
        }
        Ok(Plan {
            nodes: self.graph.node_weights().cloned().collect(),
            kind,
            order,
            fused,
            succ_off,
            succ,
            indeg,
        })
    }

    /// "A#1 → B#2 → A#1": one cycle through `start` (which toposort found on a cycle).
    fn describe_cycle(&self, start: NodeIndex) -> String {
        let name = |i: NodeIndex| format!("{}#{}", self.graph[i].name, i.index());
        // Breadth-first from start's successors back to start: the shortest cycle through it.
        let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(u) = queue.pop_front() {
            for v in self.graph.neighbors_directed(u, Direction::Outgoing) {
                if v == start {
                    // Walk the parents back from u to start, then close the cycle.
                    let mut path = vec![u];
                    let mut at = u;
                    while at != start {
                        at = parent[&at];
                        path.push(at);
                    }
                    path.reverse();
                    path.push(start);
                    return path.into_iter().map(name).collect::<Vec<_>>().join(" → ");
                }
                if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(v) {
                    if v != start {
                        e.insert(u);
                        queue.push_back(v);
                    }
                }
            }
        }
        name(start)
    }
}

/// A graph checked against a runtime: what every strategy is built from.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub nodes: Vec<Node>,
    pub kind: Vec<u32>,
    pub order: Vec<NodeId>,
    pub fused: Vec<FusedLaunch>,
    pub succ_off: Vec<u32>,
    pub succ: Vec<u32>,
    pub indeg: Vec<u32>,
}

/// A graph made ready to run under one strategy; [`run`](Prepared::run) it as often as needed.
/// A lowered one dropped while a scheduler runs (on part of the SMs, or started again since it
/// was prepared) keeps its CUDA graph and stream until the scheduler stops.
pub struct Prepared<'rt> {
    strategy: Strategy,
    inner: Inner<'rt>,
}

impl std::fmt::Debug for Prepared<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Prepared");
        d.field("strategy", &self.strategy);
        if let Inner::Resident(g) = &self.inner {
            d.field("resident", g);
        }
        d.finish_non_exhaustive()
    }
}

enum Inner<'rt> {
    Resident(ResidentGraph<'rt>),
    Lowered(lowered::Lowered<'rt>),
    /// The CPU backend's executor, the graph as it runs there, and a launch that timed out.
    Cpu {
        exec: &'rt CpuExecutor,
        plan: Arc<GraphPlan>,
        unfinished: Option<crate::cpu::CpuJob>,
        /// The runtime holds every "SM" (worker; `max_sms` not below their count): lowered
        /// launches need it stopped, as on a GPU.
        holds_every_sm: bool,
    },
}

/// A launch of a graph whose previous launch (timed out) still runs.
pub(crate) fn previous_launch_running() -> Error {
    Error::Busy(
        "the graph's previous launch has not finished yet: wait, or Prepared::cancel it".into(),
    )
}

/// A lowered strategy launched while the scheduler holds every SM (on either backend).
pub(crate) fn lowered_beside_scheduler() -> Error {
    Error::Busy(
        "a lowered strategy's kernels cannot run beside a scheduler that holds every SM: call \
         Runtime::stop first (or build with RuntimeBuilder::max_sms)"
            .into(),
    )
}

/// The CPU executor's form of a plan: kinds, records, successors, in-degrees.
fn cpu_plan(plan: &Plan) -> GraphPlan {
    GraphPlan {
        kinds: plan.kind.clone(),
        records: plan
            .nodes
            .iter()
            .map(|n| {
                let mut r = [0u8; crate::MAX_RECORD_BYTES];
                r.copy_from_slice(bytemuck::cast_slice(&n.words));
                r
            })
            .collect(),
        succ_off: plan.succ_off.clone(),
        succ: plan.succ.clone(),
        indeg: plan.indeg.clone(),
        items: plan.nodes.iter().map(|n| n.items).collect(),
    }
}

impl Prepared<'_> {
    /// The strategy it was prepared for.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Runs the whole graph once and waits (at most `timeout`, itself at most
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT)) until every task has run. A Resident launch that
    /// times out runs on, and the next run is refused until it has ended ([`cancel`](Self::cancel)
    /// stops it early; [`run_or_cancel`](Self::run_or_cancel) cancels at the timeout). A lowered
    /// launch that times out runs on, as a CUDA user's kernels would: the next run queues behind
    /// it, memory dropped meanwhile is freed once it has ended, and dropping the `Prepared` waits
    /// for it (at most 10 s; past that, what it may use is freed only once it has ended).
    pub fn run(&mut self, timeout: Duration) -> Result<()> {
        match &mut self.inner {
            Inner::Resident(g) => g.run(timeout),
            Inner::Lowered(l) => l.run(timeout),
            Inner::Cpu { .. } => self.run_on_cpu(timeout, false),
        }
    }

    /// [`run`](Self::run), and if the launch has not finished within `timeout`, cancel it
    /// ([`Job::cancel`](crate::Job::cancel): nodes not yet started are dropped, running ones
    /// finish) and return the [`Error::Timeout`] (or the cancel's error); until the cancelled
    /// launch has ended, the next run is refused ([`Error::Busy`]). Resident launches only, on
    /// the CPU backend or a GPU runtime built [`cancellable`](crate::RuntimeBuilder::cancellable)
    /// (else [`Error::Config`], before anything is launched): a lowered strategy's kernels run
    /// to their end ([`Error::Unsupported`]).
    pub fn run_or_cancel(&mut self, timeout: Duration) -> Result<()> {
        let timeout = timeout.min(crate::MAX_TIMEOUT);
        if !self.strategy.is_resident() {
            return Err(Error::Unsupported(format!(
                "cancelling a {} launch: its kernels run to their end (Strategy::Resident cancels)",
                self.strategy.name()
            )));
        }
        match &mut self.inner {
            Inner::Resident(g) => g.run_or_cancel(timeout),
            Inner::Lowered(_) => unreachable!("a Resident graph is prepared as one"),
            Inner::Cpu { .. } => self.run_on_cpu(timeout, true),
        }
    }

    /// Cancels the graph's launch that [`run`](Self::run) or [`run_or_cancel`](Self::run_or_cancel)
    /// left running when it timed out ([`Job::cancel`](crate::Job::cancel): nodes not yet
    /// started are dropped, running ones finish); nothing to do (`Ok`) if there is none or it
    /// has ended. The next run is refused until it has ended. As
    /// [`Job::cancel`](crate::Job::cancel): on a GPU, a runtime built
    /// [`cancellable`](crate::RuntimeBuilder::cancellable). Lowered strategies run their kernels
    /// to their end ([`Error::Unsupported`] on both backends, as for
    /// [`run_or_cancel`](Self::run_or_cancel)).
    pub fn cancel(&mut self) -> Result<()> {
        // As run_or_cancel, on both backends: code tried on host threads meets the GPU's rule.
        if !self.strategy.is_resident() {
            return Err(Error::Unsupported(format!(
                "cancelling a {} launch: its kernels run to their end (Strategy::Resident cancels)",
                self.strategy.name()
            )));
        }
        match &mut self.inner {
            Inner::Resident(g) => g.cancel(),
            Inner::Lowered(_) => unreachable!("a lowered strategy returned above"),
            Inner::Cpu { unfinished, .. } => {
                if let Some(job) = unfinished {
                    job.cancel();
                }
                Ok(())
            }
        }
    }

    /// A launch on the CPU backend. A Resident one as on a GPU: refused while one that timed out
    /// is still running; `cancel`: cancelled if it times out. A lowered one, as a GPU's kernels
    /// queued on a stream, does not wait for an earlier one.
    fn run_on_cpu(&mut self, timeout: Duration, cancel: bool) -> Result<()> {
        let lowered = !self.strategy.is_resident();
        let Inner::Cpu {
            exec,
            plan,
            unfinished,
            holds_every_sm,
        } = &mut self.inner
        else {
            unreachable!("run_on_cpu is called for the CPU backend's launches only")
        };
        if lowered && *holds_every_sm && !exec.is_stopped() {
            return Err(lowered_beside_scheduler());
        }
        if let Some(job) = unfinished {
            if !job.is_done()? {
                return Err(previous_launch_running());
            }
            *unfinished = None;
        }
        let job = exec.run_graph(plan, lowered)?;
        match job.wait_timeout(timeout.min(crate::MAX_TIMEOUT)) {
            Err(e @ Error::Timeout(..)) => {
                if cancel {
                    job.cancel();
                }
                if !lowered {
                    *unfinished = Some(job);
                }
                Err(e)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
