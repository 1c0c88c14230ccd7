//! Graphs in compressed sparse row form, as the GPU reads them.

use rayon::prelude::*;

/// An undirected graph in CSR form, stored symmetric: every edge {u, v} appears as v in u's
/// list and as u in v's. Lists are sorted; self loops and duplicate edges are dropped when the
/// graph is built (Graph500 allows either choice; TEPS here counts the remaining edges).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csr {
    /// `offsets[v]..offsets[v + 1]` is the range of `targets` holding v's neighbours
    /// (`vertices() + 1` entries).
    pub offsets: Vec<u64>,
    /// Neighbour lists, concatenated.
    pub targets: Vec<u32>,
}

impl Csr {
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

    /// The number of vertices.
    pub fn vertices(&self) -> u32 {
        (self.offsets.len().saturating_sub(1)) as u32
    }

    /// The number of undirected edges (half the stored entries).
    pub fn edges(&self) -> u64 {
        self.targets.len() as u64 / 2
    }

    /// v's neighbours, sorted.
    pub fn neighbours(&self, v: u32) -> &[u32] {
        let (a, b) = (
            self.offsets[v as usize] as usize,
            self.offsets[v as usize + 1] as usize,
        );
        &self.targets[a..b]
    }

    /// v's degree.
    pub fn degree(&self, v: u32) -> u64 {
        self.offsets[v as usize + 1] - self.offsets[v as usize]
    }

    /// The largest degree.
    pub fn max_degree(&self) -> u64 {
        (0..self.vertices())
            .map(|v| self.degree(v))
            .max()
            .unwrap_or(0)
    }

    /// Whether {u, v} is an edge (binary search in u's sorted list).
    pub fn has_edge(&self, u: u32, v: u32) -> bool {
        self.neighbours(u).binary_search(&v).is_ok()
    }
}
