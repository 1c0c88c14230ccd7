//! Mixed DAGs (issue 20): seeded random task graphs of lane, warp and block nodes shaped like a
//! user's, each node reading its predecessors' outputs and writing its own, prepared once and
//! run repeatedly under every strategy.
//!
//! Every run is checked on the GPU as it goes: a node's word carries its run count beside its
//! value (one 64-bit store), and a node that reads a predecessor's word from an earlier run (it
//! ran before its input was written) fails the graph's error word. After the checked run and
//! after the timed ones, the host checks that every node ran equally often, that no node read a
//! stale input, and every node's value.

use crate::bfs::generate::splitmix64;
use crate::{Error, Result};
use grosr::graph::{Strategy, TaskGraph};
use grosr::{DeviceBuffer, DevicePtr, Granularity, Runtime, RuntimeBuilder};

use super::Timing;
use super::graphs::{Checks, compare, fill};
use super::table::Table;

/// One node of a DAG: where the values live, which predecessors it reads. Each node type below
/// runs it at its granularity.
#[grosr::record]
pub struct DagNode {
    /// Every node's word: its run count (high half) and value (low half).
    pub vals: DevicePtr<u64>,
    /// The predecessor lists, one after another.
    pub preds: DevicePtr<u32>,
    /// The first node that saw a stale input, plus one (0: none).
    pub errors: DevicePtr<u32>,
    /// This node.
    pub node: u32,
    /// Where its predecessors start in `preds`.
    pub first: u32,
    /// How many it has.
    pub count: u32,
    /// Keeps the record 40 bytes.
    pub pad: u32,
}

/// What the three node types share (a prelude: before their bodies); the seed mirrors
/// [`node_seed`].
const NODE_CUDA: &str = r#"
__device__ __forceinline__ uint32_t grosr_dag_seed(uint32_t node, uint32_t run) {
    return node * 2654435761u ^ run * 40503u;
}
// The run this node is about to make: one past the count in its own value word.
__device__ __forceinline__ uint32_t grosr_dag_run(const DagNode& n) {
    return (uint32_t)(n.vals[n.node] >> 32) + 1u;
}
// This thread's share (`lane` of `width`) of the sum of the predecessors' values; a word that is
// not from this run was read before its node wrote it: flagged.
__device__ __forceinline__ uint32_t grosr_dag_sum(const DagNode& n, uint32_t run, uint32_t lane,
                                                  uint32_t width) {
    uint32_t sum = 0;
    for (uint32_t k = lane; k < n.count; k += width) {
        const uint64_t word = n.vals[n.preds[n.first + k]];
        if ((uint32_t)(word >> 32) != run) atomicCAS(n.errors, 0u, n.node + 1u);
        sum += (uint32_t)word;
    }
    return sum;
}
// Run count and value in one 64-bit store, so a reader sees both from the same run.
__device__ __forceinline__ void grosr_dag_store(const DagNode& n, uint32_t run, uint32_t sum) {
    n.vals[n.node] = (uint64_t)run << 32 | (grosr_dag_seed(n.node, run) + sum);
}
"#;

/// A lane node.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    const uint32_t run = grosr_dag_run(task.n);
    grosr_dag_store(task.n, run, grosr_dag_sum(task.n, run, 0u, 1u));
"#
)]
pub struct DagLane {
    /// The node.
    pub n: DagNode,
}

/// A warp node: the warp's lanes split the predecessors.
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    const uint32_t run = grosr_dag_run(task.n);
    uint32_t sum = grosr_dag_sum(task.n, run, ctx.lane(), ctx.width());
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (ctx.lane() == 0) grosr_dag_store(task.n, run, sum);
"#
)]
pub struct DagWarp {
    /// The node.
    pub n: DagNode,
}

/// A block node: the block's threads split the predecessors.
#[grosr::task(
    granularity = "block",
    cuda = r#"
    __shared__ uint32_t total;
    const uint32_t run = grosr_dag_run(task.n);
    if (ctx.lane() == 0) total = 0;
    __syncthreads();
    const uint32_t sum = grosr_dag_sum(task.n, run, ctx.lane(), ctx.width());
    if (sum != 0) atomicAdd(&total, sum);
    __syncthreads();
    if (ctx.lane() == 0) grosr_dag_store(task.n, run, total);
    __syncthreads();
"#
)]
pub struct DagBlock {
    /// The node.
    pub n: DagNode,
}

/// A runtime builder with the three node types (a module of its own: the shared workloads
/// module does not grow).
pub fn builder() -> RuntimeBuilder {
    crate::env_defines(grosr::Runtime::builder())
        .prelude(NODE_CUDA)
        .task::<DagLane>()
        .task::<DagWarp>()
        .task::<DagBlock>()
}

/// What a generated DAG looks like.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Its name in the report.
    pub name: &'static str,
    /// Nodes.
    pub nodes: u32,
    /// Topological levels (the longest path has this many nodes).
    pub levels: u32,
    /// Edges (at least one into every node past the first level).
    pub edges: u32,
    /// Percent of lane nodes.
    pub lane_percent: u32,
    /// Percent of warp nodes (the rest are block nodes).
    pub warp_percent: u32,
}

/// The shape measured in issue 20: 2000 nodes, 40 levels, about 3000 edges, 60% lane, 30% warp,
/// 10% block nodes.
pub const DEEP: Shape = Shape {
    name: "deep (2000 nodes, 40 levels)",
    nodes: 2000,
    levels: 40,
    edges: 3000,
    lane_percent: 60,
    warp_percent: 30,
};

/// Wide and shallow: the same nodes and edges over 4 levels.
pub const WIDE: Shape = Shape {
    name: "wide (2000 nodes, 4 levels)",
    nodes: 2000,
    levels: 4,
    edges: 3000,
    lane_percent: 60,
    warp_percent: 30,
};

/// Small enough to draw: 12 nodes over 4 levels (the report's picture of a mixed DAG).
pub const SMALL: Shape = Shape {
    name: "small (12 nodes, 4 levels)",
    nodes: 12,
    levels: 4,
    edges: 16,
    lane_percent: 60,
    warp_percent: 30,
};

/// A generated DAG: nodes numbered level by level, so every predecessor has a smaller number.
#[derive(Clone, Debug)]
pub struct Dag {
    /// Each node's level.
    pub level: Vec<u32>,
    /// Each node's granularity.
    pub gran: Vec<Granularity>,
    /// Each node's predecessors (smaller numbers, no repeats).
    pub preds: Vec<Vec<u32>>,
}

impl Dag {
    /// Edges in all.
    pub fn edge_count(&self) -> usize {
        self.preds.iter().map(Vec::len).sum()
    }

    /// Every node's value after `run` runs (the last run's values: each run recomputes all).
    pub fn expected(&self, run: u32) -> Vec<u32> {
        let mut vals = Vec::with_capacity(self.preds.len());
        for (node, preds) in self.preds.iter().enumerate() {
            let sum = preds
                .iter()
                .fold(0u32, |s, &p| s.wrapping_add(vals[p as usize]));
            vals.push(node_seed(node as u32, run).wrapping_add(sum));
        }
        vals
    }
}

/// A node's own part of its value on its `run`th run (the task bodies compute the same).
pub fn node_seed(node: u32, run: u32) -> u32 {
    node.wrapping_mul(2_654_435_761) ^ run.wrapping_mul(40_503)
}

/// Generates a DAG of `shape` from `seed` (the same seed, the same DAG). Levels get between half
/// and one and a half times their share of the nodes; every node past the first level has one
/// predecessor in the level before it (so the DAG has `levels` levels), and the other edges join
/// a random node to a random node of an earlier level.
pub fn generate(shape: &Shape, seed: u64) -> Result<Dag> {
    let bad = |why: &str| Err(Error::Invalid(format!("DAG shape {}: {why}", shape.name)));
    if shape.levels == 0 || shape.nodes < shape.levels {
        return bad("needs at least one node per level");
    }
    if shape.lane_percent + shape.warp_percent > 100 {
        return bad("lane and warp percentages add up past 100");
    }
    let mut rng = seed ^ 0xD1B5_4A32_D192_ED03;
    let mut next = |n: u64| splitmix64(&mut rng) % n.max(1);
    // Level sizes: 1 each, then the rest spread with weights in [0.5, 1.5).
    let weights: Vec<u64> = (0..shape.levels).map(|_| 50 + next(100)).collect();
    let total: u64 = weights.iter().sum();
    let spare = u64::from(shape.nodes - shape.levels);
    let mut sizes: Vec<u32> = weights
        .iter()
        .map(|w| 1 + (spare * w / total) as u32)
        .collect();
    let short = shape.nodes - sizes.iter().sum::<u32>();
    for i in 0..short {
        sizes[(i % shape.levels) as usize] += 1;
    }
    let mut level = Vec::with_capacity(shape.nodes as usize);
    let mut starts = Vec::with_capacity(sizes.len());
    for (l, &n) in sizes.iter().enumerate() {
        starts.push(level.len() as u32);
        level.extend(std::iter::repeat_n(l as u32, n as usize));
    }
    let gran = (0..shape.nodes)
        .map(|_| match next(100) as u32 {
            p if p < shape.lane_percent => Granularity::Lane,
            p if p < shape.lane_percent + shape.warp_percent => Granularity::Warp,
            _ => Granularity::Block,
        })
        .collect();
    let mut preds: Vec<Vec<u32>> = vec![Vec::new(); shape.nodes as usize];
    for (node, &l) in level.iter().enumerate().skip(sizes[0] as usize) {
        let before = starts[l as usize - 1];
        preds[node].push(before + next(u64::from(sizes[l as usize - 1])) as u32);
    }
    let first_past = u64::from(sizes[0]);
    let mut edges = shape.nodes - sizes[0];
    let mut tries = 0u64;
    while edges < shape.edges && tries < 100 * u64::from(shape.edges) {
        tries += 1;
        let node = first_past + next(u64::from(shape.nodes) - first_past);
        let below = starts[level[node as usize] as usize];
        let p = next(u64::from(below)) as u32;
        let list = &mut preds[node as usize];
        if !list.contains(&p) {
            list.push(p);
            edges += 1;
        }
    }
    for list in &mut preds {
        list.sort_unstable();
    }
    Ok(Dag { level, gran, preds })
}

/// The task graph of `dag` over node words at `vals`, its predecessor lists (flattened) at
/// `preds` and the error word at `errors`: with null pointers, a graph to look at (nothing is
/// read until it runs).
pub fn task_graph(
    dag: &Dag,
    vals: DevicePtr<u64>,
    preds: DevicePtr<u32>,
    errors: DevicePtr<u32>,
) -> Result<TaskGraph> {
    if dag.gran.len() != dag.preds.len() {
        return Err(Error::Invalid(format!(
            "DAG of {} nodes has {} granularities",
            dag.preds.len(),
            dag.gran.len()
        )));
    }
    let mut graph = TaskGraph::new();
    let mut ids = Vec::with_capacity(dag.preds.len());
    let mut first = 0u32;
    for (node, (list, &gran)) in dag.preds.iter().zip(&dag.gran).enumerate() {
        let (node, count) = (node as u32, list.len() as u32);
        let n = DagNode {
            vals,
            preds,
            errors,
            node,
            first,
            count,
            pad: 0,
        };
        let id = match gran {
            Granularity::Lane => graph.add(DagLane { n }),
            Granularity::Warp => graph.add(DagWarp { n }),
            Granularity::Block => graph.add(DagBlock { n }),
        };
        for &p in list {
            let Some(&before) = ids.get(p as usize) else {
                return Err(Error::Invalid(format!(
                    "DAG node {node} names predecessor {p}, not an earlier node"
                )));
            };
            graph.add_edge(before, id)?;
        }
        ids.push(id);
        first += count;
    }
    Ok(graph)
}

/// A DAG's buffers on the GPU and its task graph.
pub struct OnGpu {
    /// Node words: run count and value.
    pub vals: DeviceBuffer<u64>,
    /// The error word.
    pub errors: DeviceBuffer<u32>,
    /// The predecessor lists (kept alive for the graph).
    pub preds: DeviceBuffer<u32>,
    /// The task graph.
    pub graph: TaskGraph,
}

impl OnGpu {
    /// Uploads `dag` and builds its task graph.
    pub fn new(rt: &Runtime, dag: &Dag) -> Result<OnGpu> {
        let n = dag.preds.len();
        let flat: Vec<u32> = dag.preds.iter().flatten().copied().collect();
        // A zero-length buffer is not a buffer: one spare word.
        let preds = DeviceBuffer::from_slice(rt.gpu(), &[flat.as_slice(), &[0]].concat())?;
        let vals = DeviceBuffer::<u64>::zeroed(rt.gpu(), n)?;
        let errors = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
        let graph = task_graph(dag, vals.ptr(), preds.ptr(), errors.ptr())?;
        Ok(OnGpu {
            vals,
            errors,
            preds,
            graph,
        })
    }

    /// Zeroes the node words and the error word.
    pub fn reset(&self) -> Result<()> {
        self.vals.write(&vec![0u64; self.vals.len()])?;
        Ok(self.errors.write(&[0])?)
    }

    /// Checks that every node ran equally often (at least once), that none saw a missing input,
    /// and every value against `dag`.
    pub fn check(&self, dag: &Dag, what: &str) -> Result<()> {
        let fail = |why: String| Err(Error::Invalid(format!("{what}: {why}")));
        let errors = self.errors.to_vec()?;
        if errors[0] != 0 {
            return fail(format!(
                "node {} read a predecessor's value from an earlier run",
                errors[0] - 1
            ));
        }
        let words = self.vals.to_vec()?;
        let runs: Vec<u32> = words.iter().map(|w| (w >> 32) as u32).collect();
        let run = runs[0];
        if run == 0 {
            return fail("node 0 never ran".into());
        }
        if let Some(n) = runs.iter().position(|&r| r != run) {
            return fail(format!("node {n} ran {} times, node 0 {run}", runs[n]));
        }
        let want = dag.expected(run);
        let got: Vec<u32> = words.iter().map(|&w| w as u32).collect();
        match (0..want.len()).find(|&n| got[n] != want[n]) {
            None => Ok(()),
            Some(n) => fail(format!(
                "node {n} holds {} instead of {} after {run} runs",
                got[n], want[n]
            )),
        }
    }
}

/// The report's section: each shape under every strategy, µs per run of the whole DAG.
pub fn report(quick: bool) -> Result<Vec<Table>> {
    let rt = builder().build()?;
    let timing = Timing::new(quick);
    let cols: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
    let mut table = Table::new(
        "mixed_dag",
        "Mixed DAGs: random lane / warp / block nodes reading their predecessors, time per run",
        "µs per run",
        false,
        &cols,
    );
    for (shape, seed) in [(DEEP, 20u64), (WIDE, 21)] {
        let dag = generate(&shape, seed)?;
        let gpu = OnGpu::new(&rt, &dag)?;
        let reset = || gpu.reset();
        let check = |s: Strategy| gpu.check(&dag, &format!("{} on {}", shape.name, s.name()));
        let runs = compare(
            &rt,
            &gpu.graph,
            &Strategy::ALL,
            &Checks {
                reset: &reset,
                check: &check,
            },
            timing,
        )?;
        fill(&mut table, shape.name, &runs, &[], |r| {
            r.run.median.as_secs_f64() * 1e6
        });
        table.notes.push(format!(
            "{}: seed {seed}, {} edges; every run checked on the GPU (a node that reads an input \
             from an earlier run flags it), values and run counts checked after the checked run \
             and after the timed ones.",
            shape.name,
            dag.edge_count()
        ));
    }
    table.notes.push(
        "Targets (issue 20): Resident ≤ 0.5× CudaGraph+PDL and ≤ 1.2× Fused on both shapes.".into(),
    );
    Ok(vec![table])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_dags_have_their_shape_and_only_backward_edges() {
        for shape in [DEEP, WIDE] {
            let dag = generate(&shape, 7).unwrap();
            assert_eq!(dag.preds.len(), shape.nodes as usize);
            assert_eq!(*dag.level.iter().max().unwrap(), shape.levels - 1);
            assert_eq!(dag.edge_count(), shape.edges as usize, "{}", shape.name);
            for (node, list) in dag.preds.iter().enumerate() {
                let l = dag.level[node];
                assert!(list.iter().all(|&p| dag.level[p as usize] < l));
                if l > 0 {
                    assert!(list.iter().any(|&p| dag.level[p as usize] == l - 1));
                }
                assert!(list.windows(2).all(|w| w[0] < w[1]), "repeated edge");
            }
            let count = |g| dag.gran.iter().filter(|&&x| x == g).count() as f64;
            let n = f64::from(shape.nodes);
            assert!((count(Granularity::Lane) / n - 0.6).abs() < 0.05);
            assert!((count(Granularity::Warp) / n - 0.3).abs() < 0.05);
            assert!((count(Granularity::Block) / n - 0.1).abs() < 0.05);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_dag_and_another_seed_another() {
        let a = generate(&DEEP, 1).unwrap();
        assert_eq!(a.preds, generate(&DEEP, 1).unwrap().preds);
        assert_ne!(a.preds, generate(&DEEP, 2).unwrap().preds);
    }

    #[test]
    fn expected_values_follow_the_predecessors() {
        let dag = Dag {
            level: vec![0, 0, 1],
            gran: vec![Granularity::Lane; 3],
            preds: vec![vec![], vec![], vec![0, 1]],
        };
        let v = dag.expected(3);
        assert_eq!(v[0], node_seed(0, 3));
        assert_eq!(v[2], node_seed(2, 3).wrapping_add(v[0]).wrapping_add(v[1]));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut s = DEEP;
        s.nodes = 3;
        assert!(generate(&s, 0).is_err());
        let mut s = DEEP;
        s.warp_percent = 50;
        assert!(generate(&s, 0).is_err());
    }
}
