//! Graphs in compressed sparse row form, as the GPU reads them.

use rayon::prelude::*;

use crate::{Error, Result};

/// An undirected graph in CSR form, stored symmetric: every edge {u, v} appears as v in u's
/// list and as u in v's. Lists are sorted; self loops and duplicate edges are dropped when the
/// graph is built (Graph500 allows either choice; TEPS here counts the remaining edges).
///
/// The fields are private so these rules always hold: the GPU kernels index with the offsets
/// and targets unchecked, and the validator's binary searches need the sorted lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csr {
    /// `offsets[v]..offsets[v + 1]` is the range of `targets` holding v's neighbours
    /// (`vertices() + 1` entries, starting at 0, ending at `targets.len()`).
    offsets: Vec<u64>,
    /// Neighbour lists, concatenated.
    targets: Vec<u32>,
}

fn bad(what: String) -> Error {
    Error::Graph(what)
}

impl Csr {
    /// A graph from its CSR arrays, checked: `offsets` has `n + 1` entries (n < 2^32), starts at
    /// 0, never decreases and ends at `targets.len()`; every list is sorted without repeats,
    /// names only vertices < n and not its own vertex; and the graph is symmetric (v in u's
    /// list exactly when u is in v's). Anything else is an [`Error::Graph`] naming the first
    /// problem found.
    pub fn new(offsets: Vec<u64>, targets: Vec<u32>) -> Result<Csr> {
        let Some(n) = offsets.len().checked_sub(1) else {
            return Err(bad("no offsets: a graph of n vertices has n + 1".into()));
        };
        if n > u32::MAX as usize {
            return Err(bad(format!("{n} vertices do not fit 32-bit ids")));
        }
        if offsets[0] != 0 {
            return Err(bad(format!("offsets start at {}, not 0", offsets[0])));
        }
        if let Some(v) = (0..n).find(|&v| offsets[v] > offsets[v + 1]) {
            return Err(bad(format!(
                "offsets decrease at vertex {v} ({} then {})",
                offsets[v],
                offsets[v + 1]
            )));
        }
        if offsets[n] != targets.len() as u64 {
            return Err(bad(format!(
                "offsets end at {}, but there are {} targets",
                offsets[n],
                targets.len()
            )));
        }
        let g = Csr { offsets, targets };
        let list = |u: u32| -> Option<String> {
            let ns = g.neighbours(u);
            if let Some(&v) = ns.iter().find(|&&v| v as usize >= n) {
                return Some(format!("vertex {u} lists {v}, which is not a vertex"));
            }
            if ns.contains(&u) {
                return Some(format!("vertex {u} lists itself (a self loop)"));
            }
            if let Some(w) = ns.windows(2).find(|w| w[0] >= w[1]) {
                return Some(format!(
                    "vertex {u}'s list is not sorted without repeats ({} then {})",
                    w[0], w[1]
                ));
            }
            None
        };
        let symmetric = |u: u32| -> Option<String> {
            let v = g.neighbours(u).iter().find(|&&v| !g.has_edge(v, u))?;
            Some(format!("edge {u} – {v} is stored in {u}'s list only"))
        };
        // Lists first: the symmetry check's binary searches need them sorted.
        let first = |check: &(dyn Fn(u32) -> Option<String> + Sync)| {
            (0..n as u32).into_par_iter().find_map_first(check)
        };
        match first(&list).or_else(|| first(&symmetric)) {
            Some(what) => Err(bad(what)),
            None => Ok(g),
        }
    }

    /// Builds the symmetric CSR of `n` vertices from undirected edges (u, v), in parallel.
    /// Self loops and duplicates are dropped. Panics never: edges naming a vertex ≥ n are
    /// the caller's bug and are skipped.
    pub fn from_edges(n: u32, edges: &[(u32, u32)]) -> Csr {
        let mut pairs: Vec<u64> = edges
            .par_iter()
            .filter(|&&(u, v)| u != v && u < n && v < n)
            .flat_map_iter(|&(u, v)| [((u as u64) << 32) | v as u64, ((v as u64) << 32) | u as u64])
            .collect();
        pairs.par_sort_unstable();
        pairs.dedup();
        let mut offsets = vec![0u64; n as usize + 1];
        for &p in &pairs {
            offsets[(p >> 32) as usize + 1] += 1;
        }
        for i in 0..n as usize {
            offsets[i + 1] += offsets[i];
        }
        let targets = pairs.par_iter().map(|&p| p as u32).collect();
        Csr { offsets, targets }
    }

    /// `offsets[v]..offsets[v + 1]` is the range of [`targets`](Csr::targets) holding v's
    /// neighbours (`vertices() + 1` entries).
    pub fn offsets(&self) -> &[u64] {
        &self.offsets
    }

    /// The neighbour lists, concatenated.
    pub fn targets(&self) -> &[u32] {
        &self.targets
    }

    /// The arrays `(offsets, targets)`, for [`Csr::new`] to check again after a change.
    pub fn into_parts(self) -> (Vec<u64>, Vec<u32>) {
        (self.offsets, self.targets)
    }

    /// The number of vertices.
    pub fn vertices(&self) -> u32 {
        (self.offsets.len() - 1) as u32
    }

    /// The number of undirected edges (half the stored entries).
    pub fn edges(&self) -> u64 {
        self.targets.len() as u64 / 2
    }

    /// v's neighbours, sorted; none if v is not a vertex.
    pub fn neighbours(&self, v: u32) -> &[u32] {
        let v = v as usize;
        match (self.offsets.get(v), self.offsets.get(v + 1)) {
            (Some(&a), Some(&b)) => &self.targets[a as usize..b as usize],
            _ => &[],
        }
    }

    /// v's degree; 0 if v is not a vertex.
    pub fn degree(&self, v: u32) -> u64 {
        self.neighbours(v).len() as u64
    }

    /// The largest degree.
    pub fn max_degree(&self) -> u64 {
        self.offsets
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0)
    }

    /// Whether {u, v} is an edge (binary search in u's sorted list).
    pub fn has_edge(&self, u: u32, v: u32) -> bool {
        self.neighbours(u).binary_search(&v).is_ok()
    }
}
