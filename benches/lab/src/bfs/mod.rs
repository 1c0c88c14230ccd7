//! Breadth-first search: graphs in CSR form, generators and readers, the CPU reference, Graph500
//! validation, and BFS on the GPU, resident and level-synchronous.
//!
//! # The resident BFS protocol
//!
//! Per vertex the GPU keeps one 64-bit word `(level << 32) | parent` (all ones: unreached),
//! lowered only with `atomicMin`, so the level part only ever decreases (an asynchronous,
//! label-correcting BFS, as in Atos). Two warp-granularity tasks exist:
//!
//! * [`BfsVisit`](gpu::BfsVisit) holds up to 9 vertices. Its warp reads each vertex's current
//!   level L and deals the vertices' edges 32 per round over its lanes (a warp prefix sum over
//!   the degrees, a binary search per lane). For each neighbour v whose level exceeds L + 1 it
//!   tries `atomicMin(word[v], (L + 1) << 32 | u)`; if that lowered v's level, v is buffered in
//!   the warp's shared-memory buffer. Full batches of 9 become new `BfsVisit` tasks pushed to
//!   the SM's queue (any warp may take them; near-FIFO order keeps the search close to level
//!   order); a lone final batch of ≤ `local_limit` vertices stays on the warp's private stack
//!   (a chain's next hop costs no queue traffic).
//! * [`BfsEdges`](gpu::BfsEdges) holds one slice (`edge_chunk` edges) of a vertex whose degree
//!   exceeds `big`; `BfsVisit` makes these instead of expanding such a list itself, so a hub's
//!   edges spread over many warps. A slice whose vertex's level has dropped since is skipped (a
//!   newer expansion covers it).
//!
//! The host submits one root `BfsVisit` (flagged: it writes the root's word, level 0, its own
//! parent). A vertex is re-expanded every time its level drops, so when no task is left the
//! levels are a fixpoint of `level[v] = min over neighbours u of level[u] + 1`: exact BFS
//! levels. Termination is the scheduler's job accounting: [`Job::wait`](grosr::Job::wait)
//! returns when the root task and everything it spawned have run, with no CPU work per level.
//! The parent half of the final word was written by the `atomicMin` that set the final level,
//! from a neighbour u whose level was then L = level − 1; u's final level is at most L, and
//! less would have lowered v further, so each parent sits exactly one level up (Graph500-valid).
//!
//! The level-synchronous baseline ([`DeviceGraph::bfs_level_sync`](gpu::DeviceGraph::bfs_level_sync))
//! runs the same warp expansion as one kernel per level (a vertex is discovered by the
//! `atomicMin` that finds it unreached) and copies the next frontier's size to the host after
//! every level.
//!
//! The WHILE-graph baseline ([`while_graph`]) keeps that loop on the GPU: one CUDA graph with a
//! conditional WHILE node around the same expansion and a one-thread kernel that sets the
//! node's condition (`cudaGraphSetConditional`) from the next frontier's size.

pub mod args;
pub mod csr;
pub mod generate;
pub mod gpu;
pub mod read;
pub mod report;
pub mod rust_bodies;
pub mod validate;
pub mod while_graph;

pub use csr::Csr;
pub use gpu::{BfsOptions, BfsRun, DeviceGraph};
pub use report::report;
pub use validate::{UNREACHED, cpu_bfs, harmonic_mean, traversed_edges, validate};

#[cfg(test)]
mod tests;
