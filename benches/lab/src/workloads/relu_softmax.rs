//! ReLU + Softmax over the rows of a matrix, `y = softmax(relu(x))` row by row: one warp task
//! per row (warp reductions), or a two-task DAG per row (ReLU → Softmax), under every strategy,
//! checked against a float64 CPU reference on fresh random inputs.

use crate::{Error, Result};
use grosr::DeviceBuffer;
use grosr::DevicePtr;
use grosr::Runtime;
use grosr::graph::{Strategy, TaskGraph};

use super::Timing;
use super::graphs::{Checks, MAX_PER_TASK_NODES, compare, fill};
use super::table::Table;

/// One row of `y = softmax(relu(x))`, by one warp. Its loops count in a signed `int` by a
/// constant 32 (a warp task's width), as CUDA code usually does: the compiler may then assume no
/// wrap, knows the trip count and unrolls, which a `uint32_t` stepping by `ctx.width()` forbids
/// (benches/NOTES.md, "The twins' machine code").
#[grosr::task(cuda = r#"
    const float* x = task.x + (uint64_t)task.row * task.len;
    float* y = task.y + (uint64_t)task.row * task.len;
    float m = 0.0f;                                   // relu(x) >= 0, so 0 is a lower bound
    for (int i = ctx.lane(), n = task.len; i < n; i += 32) m = fmaxf(m, x[i]);
    m = grosr::warp_max(m);
    float s = 0.0f;
    for (int i = ctx.lane(), n = task.len; i < n; i += 32) s += expf(fmaxf(x[i], 0.0f) - m);
    const float inv = 1.0f / grosr::warp_sum(s);
    for (int i = ctx.lane(), n = task.len; i < n; i += 32) y[i] = expf(fmaxf(x[i], 0.0f) - m) * inv;
"#)]
pub struct ReluSoftmax {
    /// Input matrix, row-major.
    pub x: DevicePtr<f32>,
    /// Output matrix.
    pub y: DevicePtr<f32>,
    /// The row.
    pub row: u32,
    /// Row length.
    pub len: u32,
}

/// [`ReluSoftmax`] with its body in Rust (`grosr::body`), as a user would write it: the report
/// times both on the same rows (issue 21: within 3%).
#[grosr::task(rust = |task, ctx| {
    let base = (task.row as u64) * (task.len as u64);
    let step = ctx.width() as usize;
    let mut m = 0.0f32;
    for i in (ctx.lane()..task.len).step_by(step) {
        m = m.max(ctx.read(task.x, base + i as u64));
    }
    m = ctx.warp_max(m);
    let mut s = 0.0f32;
    for i in (ctx.lane()..task.len).step_by(step) {
        s += (ctx.read(task.x, base + i as u64).max(0.0) - m).exp();
    }
    let inv = 1.0f32 / ctx.warp_sum(s);
    for i in (ctx.lane()..task.len).step_by(step) {
        let v = (ctx.read(task.x, base + i as u64).max(0.0) - m).exp() * inv;
        ctx.write(task.y, base + i as u64, v);
    }
})]
pub struct ReluSoftmaxRs {
    /// Input matrix, row-major.
    pub x: DevicePtr<f32>,
    /// Output matrix.
    pub y: DevicePtr<f32>,
    /// The row.
    pub row: u32,
    /// Row length.
    pub len: u32,
}

/// Stage 1 of the two-task form: `y = relu(x)` for one row.
#[grosr::task(cuda = r#"
    const float* x = task.x + (uint64_t)task.row * task.len;
    float* y = task.y + (uint64_t)task.row * task.len;
    for (int i = ctx.lane(), n = task.len; i < n; i += 32) y[i] = fmaxf(x[i], 0.0f);
"#)]
pub struct Relu {
    /// Input matrix.
    pub x: DevicePtr<f32>,
    /// Output matrix (ReLU'd row).
    pub y: DevicePtr<f32>,
    /// The row.
    pub row: u32,
    /// Row length.
    pub len: u32,
}

/// Stage 2 of the two-task form: softmax of one row of `y`, in place.
#[grosr::task(cuda = r#"
    float* y = task.y + (uint64_t)task.row * task.len;
    float m = -3.402823466e38f;
    for (int i = ctx.lane(), n = task.len; i < n; i += 32) m = fmaxf(m, y[i]);
    m = grosr::warp_max(m);
    float s = 0.0f;
    for (int i = ctx.lane(), n = task.len; i < n; i += 32) s += expf(y[i] - m);
    const float inv = 1.0f / grosr::warp_sum(s);
    for (int i = ctx.lane(), n = task.len; i < n; i += 32) y[i] = expf(y[i] - m) * inv;
"#)]
pub struct Softmax {
    /// Unused (keeps the record the same shape as Relu's).
    pub x: DevicePtr<f32>,
    /// The matrix, softmaxed in place.
    pub y: DevicePtr<f32>,
    /// The row.
    pub row: u32,
    /// Row length.
    pub len: u32,
}

/// [`Relu`] with its body in Rust.
#[grosr::task(rust = |task, ctx| {
    let base = (task.row as u64) * (task.len as u64);
    for i in (ctx.lane()..task.len).step_by(ctx.width() as usize) {
        ctx.write(task.y, base + i as u64, ctx.read(task.x, base + i as u64).max(0.0));
    }
})]
pub struct ReluRs {
    /// Input matrix.
    pub x: DevicePtr<f32>,
    /// Output matrix (ReLU'd row).
    pub y: DevicePtr<f32>,
    /// The row.
    pub row: u32,
    /// Row length.
    pub len: u32,
}

/// [`Softmax`] with its body in Rust.
#[grosr::task(rust = |task, ctx| {
    let base = (task.row as u64) * (task.len as u64);
    let step = ctx.width() as usize;
    let mut m = -3.402823466e38f32;
    for i in (ctx.lane()..task.len).step_by(step) {
        m = m.max(ctx.read(task.y, base + i as u64));
    }
    m = ctx.warp_max(m);
    let mut s = 0.0f32;
    for i in (ctx.lane()..task.len).step_by(step) {
        s += (ctx.read(task.y, base + i as u64) - m).exp();
    }
    let inv = 1.0f32 / ctx.warp_sum(s);
    for i in (ctx.lane()..task.len).step_by(step) {
        let v = (ctx.read(task.y, base + i as u64) - m).exp() * inv;
        ctx.write(task.y, base + i as u64, v);
    }
})]
pub struct SoftmaxRs {
    /// Unused (keeps the record the same shape as Relu's).
    pub x: DevicePtr<f32>,
    /// The matrix, softmaxed in place.
    pub y: DevicePtr<f32>,
    /// The row.
    pub row: u32,
    /// Row length.
    pub len: u32,
}

/// [`Matrix::two_task_graph`] of a `rows × len` matrix at `x` and `y`: with null pointers, a
/// graph to look at (nothing is read until it runs).
pub fn two_task_graph_at(
    x: DevicePtr<f32>,
    y: DevicePtr<f32>,
    rows: u32,
    len: u32,
) -> Result<TaskGraph> {
    let mut g = TaskGraph::new();
    for row in 0..rows {
        let relu = g.add(Relu { x, y, row, len });
        let softmax = g.add(Softmax { x, y, row, len });
        g.add_edge(relu, softmax)?;
    }
    Ok(g)
}

/// Runs each of `graphs` (over `m`) under every strategy on fresh random inputs and checks the
/// output against the float64 reference within [`TOLERANCE`] (the tests' check, on either
/// backend and body syntax).
pub fn check_on_every_strategy(
    rt: &Runtime,
    m: &Matrix,
    graphs: &[TaskGraph],
    timeout: std::time::Duration,
) -> Result<()> {
    for g in graphs {
        for (i, s) in Strategy::ALL.into_iter().enumerate() {
            super::graphs::ready_for(rt, s)?;
            let mut p = g.prepare(rt, s)?;
            let x = m.randomize(i as u64 * 7919 + u64::from(m.rows))?;
            p.run(timeout)?;
            let e = m.max_relative_error(&x)?;
            if e >= TOLERANCE {
                return Err(Error::Invalid(format!(
                    "{}×{} on {}: relative error {e:e}",
                    m.rows,
                    m.len,
                    s.name()
                )));
            }
        }
    }
    Ok(())
}

/// The shapes the report runs (rows × length): the seed's case first.
pub const SHAPES: [(u32, u32); 5] = [
    (5000, 256),
    (100_000, 128),
    (1000, 4096),
    (10_000, 1024),
    (100, 65_536),
];

/// A matrix on the GPU, its input and output.
pub struct Matrix {
    /// Rows.
    pub rows: u32,
    /// Row length.
    pub len: u32,
    /// Input.
    pub x: DeviceBuffer<f32>,
    /// Output.
    pub y: DeviceBuffer<f32>,
}

impl Matrix {
    /// Zeroed input and output of `rows × len`.
    pub fn new(rt: &Runtime, rows: u32, len: u32) -> Result<Matrix> {
        let n = rows as usize * len as usize;
        Ok(Matrix {
            rows,
            len,
            x: DeviceBuffer::zeroed(rt.gpu(), n)?,
            y: DeviceBuffer::zeroed(rt.gpu(), n)?,
        })
    }

    /// One task per row.
    pub fn one_task_graph(&self) -> TaskGraph {
        let mut g = TaskGraph::new();
        for row in 0..self.rows {
            g.add(ReluSoftmax {
                x: self.x.ptr(),
                y: self.y.ptr(),
                row,
                len: self.len,
            });
        }
        g
    }

    /// One task per row with the Rust body ([`ReluSoftmaxRs`]).
    pub fn one_task_graph_rust(&self) -> TaskGraph {
        let mut g = TaskGraph::new();
        for row in 0..self.rows {
            g.add(ReluSoftmaxRs {
                x: self.x.ptr(),
                y: self.y.ptr(),
                row,
                len: self.len,
            });
        }
        g
    }

    /// Two tasks per row, ReLU → Softmax.
    pub fn two_task_graph(&self) -> Result<TaskGraph> {
        two_task_graph_at(self.x.ptr(), self.y.ptr(), self.rows, self.len)
    }

    /// [`two_task_graph`](Matrix::two_task_graph) with the Rust bodies ([`ReluRs`] →
    /// [`SoftmaxRs`]).
    pub fn two_task_graph_rust(&self) -> Result<TaskGraph> {
        let (x, y, len) = (self.x.ptr(), self.y.ptr(), self.len);
        let mut g = TaskGraph::new();
        for row in 0..self.rows {
            let relu = g.add(ReluRs { x, y, row, len });
            let softmax = g.add(SoftmaxRs { x, y, row, len });
            g.add_edge(relu, softmax)?;
        }
        Ok(g)
    }

    /// Writes fresh random inputs in [-4, 4) (seeded by `seed`), clears the output, and returns
    /// the inputs.
    pub fn randomize(&self, seed: u64) -> Result<Vec<f32>> {
        let mut state = seed;
        let x: Vec<f32> = (0..self.rows as usize * self.len as usize)
            .map(|_| {
                // splitmix64: a fresh, reproducible input per run.
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                ((z >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
            })
            .collect();
        self.x.write(&x)?;
        self.y.write(&vec![0f32; x.len()])?;
        Ok(x)
    }

    /// The largest relative error of the output against a float64 reference of `x`.
    pub fn max_relative_error(&self, x: &[f32]) -> Result<f64> {
        let y = self.y.to_vec()?;
        let len = self.len as usize;
        let mut worst = 0f64;
        for (xr, yr) in x.chunks(len).zip(y.chunks(len)) {
            let m = xr.iter().map(|&v| (v as f64).max(0.0)).fold(0.0, f64::max);
            let s: f64 = xr.iter().map(|&v| ((v as f64).max(0.0) - m).exp()).sum();
            for (&xv, &yv) in xr.iter().zip(yr) {
                let r = ((xv as f64).max(0.0) - m).exp() / s;
                let e = ((yv as f64) - r).abs() / r;
                // NaN (a row never written, or garbage) must fail, not slip through max().
                worst = if e.is_nan() {
                    f64::INFINITY
                } else {
                    worst.max(e)
                };
            }
        }
        Ok(worst)
    }
}

/// Largest relative error accepted against the float64 reference.
pub const TOLERANCE: f64 = 1e-5;

/// [`TOLERANCE`] for rows up to 4096 long, growing in proportion to the length past it: each
/// lane sums `len / 32` float terms, and float32 emulations of the kernel's sum (per lane, then
/// across the warp) gave relative errors close to proportional: 1.2e-6 at 4096 and 1.2–1.5e-5 at
/// 65536 (bound here: 1.6e-4).
pub fn tolerance(len: u32) -> f64 {
    TOLERANCE * (f64::from(len) / 4096.0).max(1.0)
}

/// PyTorch's figures for one shape (from benches/torch_peer.py), if it ran.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peer {
    /// `softmax(relu(x), -1)` eager, µs.
    pub eager_us: Option<f64>,
    /// The same under `torch.compile`, µs.
    pub compiled_us: Option<f64>,
}

/// Which shapes and strategies [`report`] runs (the report's `--shapes` and `--strategies`: an A/B
/// of one figure need not pay for the whole section).
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only these shapes (rows, length); `None`: [`SHAPES`].
    pub shapes: Option<Vec<(u32, u32)>>,
    /// Only these strategies; `None`: all that a form runs.
    pub strategies: Option<Vec<Strategy>>,
}

impl Selection {
    /// Parses `ROWSxLEN,...` and `Name,...` (strategy names as [`Strategy::name`] gives them,
    /// any case); empty or absent: everything.
    pub fn parse(shapes: Option<&str>, strategies: Option<&str>) -> Result<Selection> {
        let words = |s: &str| -> Vec<String> {
            s.split(',')
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty())
                .collect()
        };
        let shapes = shapes
            .map(|s| {
                words(s)
                    .iter()
                    .map(|w| {
                        let parsed = w
                            .split_once(['x', '×'])
                            .and_then(|(r, l)| Some((r.parse().ok()?, l.parse().ok()?)));
                        parsed.ok_or_else(|| {
                            Error::Invalid(format!("shape {w:?} is not ROWSxLEN (e.g. 5000x256)"))
                        })
                    })
                    .collect::<Result<Vec<(u32, u32)>>>()
            })
            .transpose()?;
        let strategies = strategies
            .map(|s| {
                words(s)
                    .iter()
                    .map(|w| {
                        Strategy::ALL
                            .into_iter()
                            .find(|k| k.name().eq_ignore_ascii_case(w))
                            .ok_or_else(|| {
                                let names: Vec<&str> =
                                    Strategy::ALL.iter().map(|k| k.name()).collect();
                                Error::Invalid(format!(
                                    "strategy {w:?} is none of {}",
                                    names.join(", ")
                                ))
                            })
                    })
                    .collect::<Result<Vec<Strategy>>>()
            })
            .transpose()?;
        Ok(Selection { shapes, strategies })
    }

    fn wants(&self, s: Strategy) -> bool {
        self.strategies.as_ref().is_none_or(|v| v.contains(&s))
    }
}

/// Runs both forms on every selected shape under every selected strategy; `peer(rows, len)` gives
/// PyTorch's figures for the reference columns.
pub fn report(
    rt: &Runtime,
    quick: bool,
    selection: &Selection,
    peer: &dyn Fn(u32, u32) -> Peer,
) -> Result<Vec<Table>> {
    let timing = Timing::new(quick);
    let mut cols: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
    cols.extend(["PyTorch eager", "torch.compile"]);
    let mut table = Table::new(
        "relu_softmax",
        "ReLU + Softmax, rows × length: time per whole matrix",
        "µs",
        false,
        &cols,
    );
    let seed = std::cell::Cell::new(1u64);
    let shapes = selection.shapes.clone().unwrap_or(SHAPES.to_vec());
    for (rows, len) in shapes {
        if u64::from(rows) * u64::from(len) > 1 << 28 || rows == 0 || len == 0 {
            return Err(Error::Invalid(format!(
                "shape {rows}×{len}: rows and length at least 1, at most 2^28 elements"
            )));
        }
        let m = Matrix::new(rt, rows, len)?;
        // 0: one task a row; 1: the same with the Rust body; 2: ReLU → Softmax; 3: the same
        // with the Rust bodies.
        for form in 0..4 {
            let g = match form {
                0 => m.one_task_graph(),
                1 => m.one_task_graph_rust(),
                2 => m.two_task_graph()?,
                _ => m.two_task_graph_rust()?,
            };
            let input = std::cell::RefCell::new(Vec::new());
            let reset = || {
                seed.set(seed.get() + 1);
                *input.borrow_mut() = m.randomize(seed.get().wrapping_mul(0x5851_F42D))?;
                Ok(())
            };
            let check = |s: Strategy| {
                let e = m.max_relative_error(&input.borrow())?;
                if e < tolerance(len) {
                    Ok(())
                } else {
                    Err(Error::Invalid(format!(
                        "ReLU+Softmax {rows}×{len} on {}: relative error {e:.2e} ≥ {:.0e}",
                        s.name(),
                        tolerance(len)
                    )))
                }
            };
            let strategies: Vec<Strategy> = Strategy::ALL
                .into_iter()
                .filter(|&s| {
                    // The Rust bodies: against their own C twins, Resident and Fused only.
                    ((g.node_count() <= MAX_PER_TASK_NODES && form % 2 == 0)
                        || matches!(s, Strategy::Resident | Strategy::Fused))
                        && selection.wants(s)
                })
                .collect();
            let runs = compare(
                rt,
                &g,
                &strategies,
                &Checks {
                    reset: &reset,
                    check: &check,
                },
                timing,
            )?;
            let p = if form == 0 {
                peer(rows, len)
            } else {
                Peer::default()
            };
            let label = format!(
                "{rows} × {len}, {}",
                match form {
                    0 => "1 task/row",
                    1 => "1 task/row, Rust body",
                    2 => "ReLU → Softmax (2 tasks/row)",
                    _ => "ReLU → Softmax (2 tasks/row), Rust bodies",
                }
            );
            fill(
                &mut table,
                &label,
                &runs,
                &[p.eager_us, p.compiled_us],
                |r| r.run.median_us(),
            );
        }
    }
    table.notes.push(format!(
        "Every strategy's output was checked against a float64 CPU reference on fresh random \
         inputs (relative error < {TOLERANCE:.0e}, growing in proportion to row lengths past \
         4096). Per-task strategies run up to {MAX_PER_TASK_NODES} nodes. Targets (issue 20, \
         every shape): Resident ≤ 1.15× Fused and ≤ PyTorch eager; the two-task form ≤ 1.3× \
         Fused. The Rust-body rows run the same row with its body in Rust (target, issue 21: within \
         3% of the CUDA body)."
    ));
    Ok(vec![table])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_parses_shapes_and_strategies_and_refuses_the_rest() {
        let s = Selection::parse(Some("5000x256, 100×65536"), Some("resident,Fused")).unwrap();
        assert_eq!(s.shapes, Some(vec![(5000, 256), (100, 65_536)]));
        assert!(s.wants(Strategy::Resident) && s.wants(Strategy::Fused));
        assert!(!s.wants(Strategy::Sync));
        let all = Selection::parse(None, None).unwrap();
        assert!(all.shapes.is_none() && Strategy::ALL.iter().all(|&k| all.wants(k)));
        assert!(Selection::parse(Some("5000"), None).is_err());
        assert!(Selection::parse(None, Some("Warp")).is_err());
    }
}
