//! Graph generators: Graph500 Kronecker, 2D grid, chain, star. Deterministic from their seed.

use rayon::prelude::*;

use super::csr::Csr;
use crate::Result;

/// The largest Kronecker SCALE: 2^31 vertices still have 32-bit ids (with u32::MAX free).
pub const MAX_SCALE: u32 = 31;

fn too_large(what: String) -> crate::Error {
    grosr::Error::Config(what).into()
}

/// splitmix64: a small, fast, well-mixed PRNG step (public domain, Vigna).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform f64 in [0, 1) from the next 53 bits.
fn unit(state: &mut u64) -> f64 {
    (splitmix64(state) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Graph500 Kronecker parameters.
const A: f64 = 0.57;
const B: f64 = 0.19;
const C: f64 = 0.19;

/// The Graph500 Kronecker edge list: 2^scale vertices, `edge_factor` × 2^scale edges drawn with
/// initiator probabilities A = 0.57, B = 0.19, C = 0.19 (D = 0.05), vertex labels permuted at
/// random (as Graph500 does, so vertex 0 is not the hub). Each edge has its own PRNG stream
/// (seeded from `seed` and its index), so the result does not depend on the thread count.
/// A SCALE above [`MAX_SCALE`] is an error.
pub fn kronecker_edges(scale: u32, edge_factor: u32, seed: u64) -> Result<Vec<(u32, u32)>> {
    if scale > MAX_SCALE {
        return Err(too_large(format!(
            "Kronecker SCALE {scale} is above {MAX_SCALE}: the vertex ids would not fit 32 bits"
        )));
    }
    let n = 1u64 << scale;
    let m = n * edge_factor as u64;
    let ab = A + B;
    let c_norm = C / (1.0 - ab);
    let a_norm = A / ab;
    let perm = permutation(n as u32, seed ^ 0x005E_ED0F_7E57);
    Ok((0..m)
        .into_par_iter()
        .map(|e| {
            let mut s = seed ^ e.wrapping_mul(0xD1B5_4A32_D192_ED03);
            splitmix64(&mut s);
            let (mut u, mut v) = (0u32, 0u32);
            for bit in 0..scale {
                let ii = unit(&mut s) > ab;
                let jj = unit(&mut s) > if ii { c_norm } else { a_norm };
                u |= (ii as u32) << bit;
                v |= (jj as u32) << bit;
            }
            (perm[u as usize], perm[v as usize])
        })
        .collect())
}

/// A random permutation of 0..n (Fisher-Yates with splitmix64).
pub fn permutation(n: u32, seed: u64) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n).collect();
    let mut s = seed;
    for i in (1..n as usize).rev() {
        let j = (splitmix64(&mut s) % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

/// The Graph500 Kronecker graph (edge factor 16) in CSR form; a SCALE above [`MAX_SCALE`] is
/// an error.
pub fn kronecker(scale: u32, seed: u64) -> Result<Csr> {
    let edges = kronecker_edges(scale, 16, seed)?;
    Ok(Csr::from_edges(1 << scale, &edges))
}

/// A `width` × `height` 4-neighbour grid; vertex (x, y) is `y * width + x`. More than
/// `u32::MAX` vertices is an error.
pub fn grid(width: u32, height: u32) -> Result<Csr> {
    let n = width as u64 * height as u64;
    if n > u32::MAX as u64 {
        return Err(too_large(format!(
            "a {width} × {height} grid has {n} vertices, more than 32-bit ids can name"
        )));
    }
    let edges: Vec<(u32, u32)> = (0..height)
        .into_par_iter()
        .flat_map_iter(|y| {
            (0..width).flat_map(move |x| {
                let v = y * width + x;
                let right = (x + 1 < width).then_some((v, v + 1));
                let down = (y + 1 < height).then_some((v, v + width));
                right.into_iter().chain(down)
            })
        })
        .collect();
    Ok(Csr::from_edges(n as u32, &edges))
}

/// A path 0 – 1 – … – (n − 1): diameter n − 1, the worst case for per-level launches.
pub fn chain(n: u32) -> Csr {
    let edges: Vec<(u32, u32)> = (1..n).map(|v| (v - 1, v)).collect();
    Csr::from_edges(n, &edges)
}

/// A star: vertex 0 joined to every other vertex (one vertex of degree n − 1).
pub fn star(n: u32) -> Csr {
    let edges: Vec<(u32, u32)> = (1..n).map(|v| (0, v)).collect();
    Csr::from_edges(n, &edges)
}

/// `roots` vertices of degree ≥ 1, drawn with a seeded PRNG (distinct while enough exist);
/// none if no vertex has an edge.
pub fn sample_roots(g: &Csr, roots: usize, seed: u64) -> Vec<u32> {
    let n = g.vertices();
    let candidates: Vec<u32> = (0..n).filter(|&v| g.degree(v) > 0).collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let mut s = seed;
    // Reserved for the distinct ones only: `roots` is the caller's number, possibly absurd.
    let mut out = Vec::with_capacity(roots.min(candidates.len()));
    let mut seen = std::collections::HashSet::new();
    while out.len() < roots {
        let v = candidates[(splitmix64(&mut s) % candidates.len() as u64) as usize];
        if seen.insert(v) || seen.len() >= candidates.len() {
            out.push(v);
        }
    }
    out
}
