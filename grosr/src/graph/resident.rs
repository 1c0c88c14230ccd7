//! The Resident strategy: a task graph uploaded once into device memory and run by the
//! persistent scheduler, which releases each node when its last predecessor has run
//! (cuda/grosr_graph_release.cuh, "Resident task graphs"; cuda/README.md describes the protocol).

use std::time::Duration;

use crate::codegen::TaskInfo;
use crate::driver::DeviceMem;
use crate::error::{Error, Result};
use crate::layout::{DESC_INLINE_FIRST, GraphDev, RECORD_WORDS};
use crate::record::Granularity;
use crate::ring::{INLINE_BYTES, Submission};
use crate::runtime::{GpuRuntime, GraphEdges, Job};
use std::sync::Arc;

use super::Plan;

/// A task graph living on the GPU, ready to be launched on the scheduler again and again.
///
/// A launch is one small submission (the graph's address; for a graph with one root, that root's
/// node, kind and record too, so the GPU starts it without a load); the GPU spawns the roots,
/// and every node whose predecessors have all run is spawned by the task that finished last among
/// them. The per-node counters reset themselves as they reach zero, so relaunching needs no
/// upload. A graph whose records fit in one descriptor travels whole instead and runs level by
/// level on the warp that receives it.
/// One launch at a time: [`run`](ResidentGraph::run) waits for it.
pub struct ResidentGraph<'rt> {
    rt: &'rt GpuRuntime,
    memory: DeviceMem,
    /// Byte offsets of the `remaining` counters and of `indeg` inside `memory`.
    remaining_off: usize,
    indeg: Vec<u32>,
    /// A launch that did not finish in time: the counters are in use until it does.
    unfinished: Option<Job<'rt>>,
    /// A launch failed (a task dropped on overflow leaves counters short): reset before the next.
    reset_needed: bool,
    /// What each launch submits.
    launch: Launch,
    /// On a traced runtime, a Resident launch's edges (the trace's predecessor arrows).
    edges: Option<Arc<GraphEdges>>,
}

impl std::fmt::Debug for ResidentGraph<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResidentGraph")
            .field("nodes", &self.indeg.len())
            .field("device_bytes", &self.memory.len())
            .field("launch_in_flight", &self.unfinished.is_some())
            .field("reset_needed", &self.reset_needed)
            .field("launch", &self.launch)
            .finish()
    }
}

/// A graph's launch record.
#[derive(Debug)]
enum Launch {
    /// Read by `ingest` for `KIND_GRAPH`: the graph's address, then the only root's node + 1 (0
    /// if the graph has several roots), its kind word and its record ([`launch_record`]).
    Resident(Vec<u32>),
    /// The whole graph, `nodes` nodes, in one record (`KIND_GRAPH_SMALL`, [`small_launch`]).
    Small { graph: Vec<u32>, nodes: u32 },
}

impl Launch {
    fn submission(&self) -> Submission<'_> {
        match self {
            Launch::Resident(record) => Submission::Graph { record },
            Launch::Small { graph, nodes } => Submission::SmallGraph {
                graph,
                nodes: *nodes,
            },
        }
    }
}

impl<'rt> ResidentGraph<'rt> {
    pub(crate) fn upload(rt: &'rt GpuRuntime, plan: &Plan) -> Result<ResidentGraph<'rt>> {
        let n = plan.nodes.len();
        if n > u32::MAX as usize / RECORD_WORDS || plan.succ.len() > u32::MAX as usize {
            return Err(Error::Config(format!("a graph of {n} nodes is too large")));
        }
        let mut image = GraphImage::new(plan, |kind| rt.tasks()[kind as usize].granularity);
        // Traced, leaves run tagged too, so that their events name their node.
        let traced = rt.is_traced();
        if traced {
            image.tag_leaves();
        }
        let memory = DeviceMem::zeroed(rt.context(), image.bytes.len().max(16))?;
        image.set_base(memory.ptr());
        let (bytes, remaining_off) = (image.bytes, image.offsets[REMAINING]);
        memory.write(&bytes)?;
        let launch = match small_launch(plan, rt.tasks()) {
            Some(graph) => Launch::Small {
                graph,
                nodes: n as u32,
            },
            None => {
                let mut record = launch_record(plan, memory.ptr());
                if traced {
                    record[3] &= !NODE_LEAF;
                }
                Launch::Resident(record)
            }
        };
        let edges = (traced && matches!(launch, Launch::Resident(_))).then(|| {
            Arc::new(GraphEdges {
                succ_off: plan.succ_off.clone(),
                succ: plan.succ.clone(),
            })
        });
        Ok(ResidentGraph {
            rt,
            memory,
            remaining_off,
            indeg: plan.indeg.clone(),
            unfinished: None,
            reset_needed: false,
            launch,
            edges,
        })
    }

    /// Launches the graph and waits (at most `timeout`) for every node to have run.
    pub fn run(&mut self, timeout: Duration) -> Result<()> {
        self.launch_and_wait(timeout, false)
    }

    /// [`run`](Self::run), cancelling the launch if `timeout` passes. A runtime not built
    /// `cancellable` refuses before the launch, not after the timeout.
    pub fn run_or_cancel(&mut self, timeout: Duration) -> Result<()> {
        if !self.rt.info().cancellable {
            return Err(Error::Config(
                "cancelling a graph launch needs a runtime built with RuntimeBuilder::cancellable(true)"
                    .into(),
            ));
        }
        self.launch_and_wait(timeout, true)
    }

    /// Cancels the launch that a run left running when it timed out (none: nothing to do).
    pub fn cancel(&mut self) -> Result<()> {
        match &self.unfinished {
            Some(job) if !job.is_done()? => job.cancel(),
            _ => Ok(()),
        }
    }

    fn launch_and_wait(&mut self, timeout: Duration, cancel: bool) -> Result<()> {
        if let Some(job) = &self.unfinished {
            if !job.is_done()? {
                return Err(super::previous_launch_running());
            }
            self.unfinished = None;
            self.reset_needed = true;
        }
        if self.reset_needed {
            self.memory.write_at(self.remaining_off, &self.indeg)?;
            self.reset_needed = false;
        }
        let job = self.rt.submit_with(
            self.launch.submission(),
            timeout,
            self.edges.as_ref(),
            crate::Priority::Normal,
        )?;
        match job.wait_timeout(timeout) {
            Ok(()) => Ok(()),
            Err(e @ Error::Timeout(..)) => {
                // Still running, cancelled or not: the next run waits for it to end.
                let cancelled = if cancel { job.cancel() } else { Ok(()) };
                self.unfinished = Some(job);
                cancelled.and(Err(e))
            }
            Err(e) => {
                self.reset_needed = true;
                Err(e)
            }
        }
    }
}

/// Index of the `remaining` counters in [`GraphImage::offsets`] (the order of `grosr::GraphDev`'s
/// pointers: kinds, words, succ_off, succ, indeg, remaining, roots).
pub(crate) const REMAINING: usize = 5;

/// The bytes of a graph in device memory: the [`GraphDev`] header, then its arrays (kinds,
/// records, successor offsets, successors, in-degrees, remaining counters, roots), each 16-byte
/// aligned. The header's pointers are filled by [`set_base`](GraphImage::set_base).
#[derive(Debug)]
pub(crate) struct GraphImage {
    pub bytes: Vec<u8>,
    /// Byte offset of each array from the start of the image.
    pub offsets: [usize; 7],
}

/// In `grosr::GraphDev::kinds`: the node has no successors (C: `grosr::NODE_LEAF`).
pub(crate) const NODE_LEAF: u32 = 0x8000_0000;

/// Node `i`'s word in `GraphDev::kinds`: its kind, with [`NODE_LEAF`] if it has no successors
/// (the GPU then runs it untagged and skips the successor lookup after it).
fn kind_word(plan: &Plan, i: usize) -> u32 {
    let leaf = plan.succ_off[i] == plan.succ_off[i + 1];
    plan.kind[i] | if leaf { NODE_LEAF } else { 0 }
}

/// The words of a launch of the graph at `graph`: its address; then, if it has exactly one root,
/// that root's node + 1, kind word and record (else zeros), so the GPU starts it at once.
pub(crate) fn launch_record(plan: &Plan, graph: u64) -> Vec<u32> {
    let mut roots = (0..plan.nodes.len()).filter(|&i| plan.indeg[i] == 0);
    let mut w = vec![graph as u32, (graph >> 32) as u32, 0, 0];
    w.extend([0u32; RECORD_WORDS]);
    if let (Some(r), None) = (roots.next(), roots.next()) {
        w[2] = r as u32 + 1;
        w[3] = kind_word(plan, r);
        w[4..].copy_from_slice(&plan.nodes[r].words);
    }
    w
}

/// The launch of a small graph, which carries the graph itself (C: `run_small_graph`): the
/// node count, a word per node (kind, level, first cell of its record), then the records. Nodes
/// are in level order (longest path from a root), lane nodes first within a level, so the GPU
/// runs a level's lane nodes in one round. `None` if it does not fit in one descriptor's
/// [`INLINE_BYTES`], or has a block node (which needs a whole block, not the receiving warp).
pub(crate) fn small_launch(plan: &Plan, tasks: &[TaskInfo]) -> Option<Vec<u32>> {
    let n = plan.nodes.len();
    if n == 0 || 4 * (1 + n) > INLINE_BYTES {
        return None;
    }
    let info: Vec<&TaskInfo> = (0..n)
        .map(|i| tasks.get(plan.kind[i] as usize))
        .collect::<Option<_>>()?;
    let fits = |i: usize| {
        let t = info[i];
        plan.kind[i] <= 0xFFFF && t.size % 4 == 0 && t.granularity != Granularity::Block
    };
    let record_bytes: usize = info.iter().map(|t| t.size).sum();
    if 4 * (1 + n) + record_bytes > INLINE_BYTES || !(0..n).all(fits) {
        return None;
    }
    // Kahn's order gives each node its level: one more than its deepest predecessor's.
    let mut level = vec![0u32; n];
    let mut left = plan.indeg.clone();
    let mut ready: Vec<usize> = (0..n).filter(|&i| left[i] == 0).collect();
    while let Some(u) = ready.pop() {
        for &s in &plan.succ[plan.succ_off[u] as usize..plan.succ_off[u + 1] as usize] {
            let s = s as usize;
            level[s] = level[s].max(level[u] + 1);
            left[s] -= 1;
            if left[s] == 0 {
                ready.push(s);
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (level[i], info[i].granularity != Granularity::Lane));
    let mut words = vec![n as u32];
    let mut records = Vec::new();
    let mut cell = DESC_INLINE_FIRST + 1 + n;
    for &i in &order {
        let size_words = info[i].size / 4;
        words.push(plan.kind[i] | level[i] << 16 | (cell as u32) << 24);
        records.extend_from_slice(&plan.nodes[i].words[..size_words]);
        cell += size_words;
    }
    words.extend(records);
    Some(words)
}

impl GraphImage {
    /// Lays `plan` out; `granularity(kind)` groups the roots (lane, then warp, then block), so a
    /// graph range runs 32 lane roots per round and warp roots one by one, with no push per root.
    pub fn new(plan: &Plan, granularity: impl Fn(u32) -> Granularity) -> GraphImage {
        let n = plan.nodes.len();
        let class = |i: u32| match granularity(plan.kind[i as usize]) {
            Granularity::Lane => 0,
            Granularity::Warp => 1,
            Granularity::Block => 2,
        };
        let mut roots: Vec<u32> = (0..n as u32)
            .filter(|&i| plan.indeg[i as usize] == 0)
            .collect();
        roots.sort_by_key(|&i| class(i)); // stable: insertion order within a class
        let lane_roots = roots.iter().filter(|&&i| class(i) == 0).count();
        let warp_roots_end = lane_roots + roots.iter().filter(|&&i| class(i) == 1).count();
        let words: Vec<u32> = plan.nodes.iter().flat_map(|node| node.words).collect();
        // A node without successors is marked in its kind, so the GPU runs it untagged and
        // skips the successor lookup (three dependent loads) after it.
        let kinds: Vec<u32> = (0..n).map(|i| kind_word(plan, i)).collect();
        let arrays: [&[u32]; 7] = [
            &kinds,
            &words,
            &plan.succ_off,
            &plan.succ,
            &plan.indeg,
            &plan.indeg, // remaining starts at indeg
            &roots,
        ];
        let mut offsets = [0usize; 7];
        let mut end = size_of::<GraphDev>();
        for (i, a) in arrays.iter().enumerate() {
            offsets[i] = end;
            end = (end + a.len() * 4).next_multiple_of(16);
        }
        let mut bytes = vec![0u8; end];
        for (i, a) in arrays.iter().enumerate() {
            bytes[offsets[i]..offsets[i] + a.len() * 4].copy_from_slice(bytemuck::cast_slice(a));
        }
        let mut image = GraphImage { bytes, offsets };
        image.set_header(GraphDev {
            num_roots: roots.len() as u32,
            num_nodes: n as u32,
            lane_roots: lane_roots as u32,
            warp_roots_end: warp_roots_end as u32,
            ..GraphDev::default()
        });
        image
    }

    /// Clears [`NODE_LEAF`] from every node's kind word: leaves then run tagged (a successor
    /// lookup that finds none), as a traced runtime needs to tell which node an event is.
    pub fn tag_leaves(&mut self) {
        let n = self.header().num_nodes as usize;
        let at = self.offsets[0];
        for k in self.bytes[at..at + 4 * n].chunks_exact_mut(4) {
            let word = u32::from_ne_bytes([k[0], k[1], k[2], k[3]]) & !NODE_LEAF;
            k.copy_from_slice(&word.to_ne_bytes());
        }
    }

    /// The header as it stands in the image.
    pub fn header(&self) -> GraphDev {
        bytemuck::pod_read_unaligned(&self.bytes[..size_of::<GraphDev>()])
    }

    fn set_header(&mut self, header: GraphDev) {
        self.bytes[..size_of::<GraphDev>()].copy_from_slice(bytemuck::bytes_of(&header));
    }

    /// Fills the header's pointers for an image copied to device address `base`.
    pub fn set_base(&mut self, base: u64) {
        let [kinds, words, succ_off, succ, indeg, remaining, roots] =
            self.offsets.map(|o| base + o as u64);
        self.set_header(GraphDev {
            kinds,
            words,
            succ_off,
            succ,
            indeg,
            remaining,
            roots,
            ..self.header()
        });
    }
}
