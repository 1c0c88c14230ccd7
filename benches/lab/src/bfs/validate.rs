//! CPU BFS (the reference), Graph500 validation of parent arrays, and TEPS.

use rayon::prelude::*;

use super::csr::Csr;
use crate::{Error, Result};

/// Level of a vertex the search did not reach.
pub const UNREACHED: u32 = u32::MAX;

/// A sequential queue-based BFS: (parent, level) per vertex; parent -1 / level
/// [`UNREACHED`] where not reached; the root is its own parent at level 0. A root that is not a
/// vertex is an error.
pub fn cpu_bfs(g: &Csr, root: u32) -> Result<(Vec<i64>, Vec<u32>)> {
    check_root(g, root)?;
    let n = g.vertices() as usize;
    let mut parent = vec![-1i64; n];
    let mut level = vec![UNREACHED; n];
    let mut queue = Vec::with_capacity(n);
    parent[root as usize] = root as i64;
    level[root as usize] = 0;
    queue.push(root);
    let mut head = 0;
    while head < queue.len() {
        let u = queue[head];
        head += 1;
        for &v in g.neighbours(u) {
            if level[v as usize] == UNREACHED {
                level[v as usize] = level[u as usize] + 1;
                parent[v as usize] = u as i64;
                queue.push(v);
            }
        }
    }
    Ok((parent, level))
}

/// An error unless `root` is a vertex of `g`.
pub(super) fn check_root(g: &Csr, root: u32) -> Result<()> {
    if root >= g.vertices() {
        return Err(grosr::Error::Config(format!(
            "root {root} is not a vertex (the graph has {})",
            g.vertices()
        ))
        .into());
    }
    Ok(())
}

fn fail(rule: u32, what: String) -> Error {
    Error::Invalid(format!("Graph500 rule {rule}: {what}"))
}

/// Checks a BFS parent array from `root` against the five Graph500 rules and returns the tree
/// depth of every vertex ([`UNREACHED`] outside the tree). `levels`, if given (the levels the
/// search itself reported), must equal those depths (rule 2 is then checked on them). A root
/// that is not a vertex is an error before any rule is checked.
///
/// 1. the tree has no cycles (every parent chain reaches the root; the root is its own parent);
/// 2. each tree edge joins levels that differ by exactly 1;
/// 3. every input edge joins levels that differ by at most 1, or both ends are unreached;
/// 4. the tree spans the root's whole component (no edge joins a reached and an unreached vertex);
/// 5. each vertex and its parent are joined by an input edge.
pub fn validate(g: &Csr, root: u32, parent: &[i64], levels: Option<&[u32]>) -> Result<Vec<u32>> {
    check_root(g, root)?;
    let n = g.vertices() as usize;
    if parent.len() != n {
        return Err(Error::Invalid(format!(
            "the parent array has {} entries for {n} vertices",
            parent.len()
        )));
    }
    if parent[root as usize] != root as i64 {
        return Err(fail(1, format!("the root {root} is not its own parent")));
    }
    if let Some(v) = parent.iter().position(|&p| p < -1 || p >= n as i64) {
        return Err(Error::Invalid(format!(
            "vertex {v} has parent {} outside 0..{n}",
            parent[v]
        )));
    }
    // Rule 1: depths by walking parent chains (memoised); a chain longer than n is a cycle.
    let mut depth = vec![UNREACHED; n];
    depth[root as usize] = 0;
    let mut path = Vec::new();
    for start in 0..n {
        if parent[start] < 0 || depth[start] != UNREACHED {
            continue;
        }
        path.clear();
        let mut v = start;
        while depth[v] == UNREACHED {
            path.push(v);
            if path.len() > n || parent[v] == v as i64 {
                return Err(fail(
                    1,
                    format!("vertex {start}'s parent chain never reaches the root (a cycle)"),
                ));
            }
            v = parent[v] as usize;
            if parent[v] < 0 {
                return Err(fail(
                    1,
                    format!("vertex {start}'s parent chain reaches unreached vertex {v}"),
                ));
            }
        }
        let mut d = depth[v];
        for &w in path.iter().rev() {
            d += 1;
            depth[w] = d;
        }
    }
    // Rule 2 on the reported levels.
    if let Some(levels) = levels {
        if levels.len() != n {
            return Err(fail(2, format!("{} levels for {n} vertices", levels.len())));
        }
        if let Some(v) = (0..n).into_par_iter().find_any(|&v| {
            parent[v] >= 0 && v != root as usize && {
                let p = parent[v] as usize;
                levels[v] == UNREACHED
                    || levels[p] == UNREACHED
                    || levels[v] != levels[p] + 1
                    || levels[v] != depth[v]
            }
        }) {
            return Err(fail(
                2,
                format!(
                    "tree edge {v} – {} joins levels {} and {} (tree depth {})",
                    parent[v], levels[v], levels[parent[v] as usize], depth[v]
                ),
            ));
        }
        if let Some(v) = (0..n).find(|&v| (parent[v] < 0) != (levels[v] == UNREACHED)) {
            return Err(fail(
                2,
                format!("vertex {v}: parent {} but level {}", parent[v], levels[v]),
            ));
        }
    }
    // Rules 3, 4, 5 over every vertex's edges, in parallel.
    let bad = (0..n as u32).into_par_iter().find_map_any(|u| {
        let du = depth[u as usize];
        for &v in g.neighbours(u) {
            let dv = depth[v as usize];
            match (du == UNREACHED, dv == UNREACHED) {
                (true, true) => {}
                (false, false) => {
                    if du.abs_diff(dv) > 1 {
                        return Some(fail(
                            3,
                            format!("edge {u} – {v} joins levels {du} and {dv}"),
                        ));
                    }
                }
                _ => {
                    return Some(fail(
                        4,
                        format!(
                            "edge {u} – {v} joins a reached and an unreached vertex: the tree misses part of the component"
                        ),
                    ));
                }
            }
        }
        let p = parent[u as usize];
        if p >= 0 && u != root && !g.has_edge(u, p as u32) {
            return Some(fail(
                5,
                format!("vertex {u}'s parent {p} is not a neighbour"),
            ));
        }
        None
    });
    match bad {
        Some(e) => Err(e),
        None => Ok(depth),
    }
}

/// Undirected input edges inside the traversed component (both ends reached): the TEPS
/// numerator. Self loops and duplicates were dropped when the graph was built. Vertices past
/// the end of `depth` count as unreached.
pub fn traversed_edges(g: &Csr, depth: &[u32]) -> u64 {
    let directed: u64 = (0..g.vertices())
        .into_par_iter()
        .filter(|&v| depth.get(v as usize).is_some_and(|&d| d != UNREACHED))
        .map(|v| g.degree(v))
        .sum();
    directed / 2
}

/// The harmonic mean (the Graph500 way to average TEPS); 0 for no samples.
pub fn harmonic_mean(xs: &[f64]) -> f64 {
    if xs.is_empty() || xs.iter().any(|&x| x <= 0.0) {
        return 0.0;
    }
    xs.len() as f64 / xs.iter().map(|x| 1.0 / x).sum::<f64>()
}
