//! `y = softmax(relu(x))` row by row, one warp task per row (or ReLU → Softmax, two tasks per row),
//! under every dispatch strategy, each checked against a float64 CPU reference on fresh random
//! inputs before it is timed.
//!
//! `cargo run --release --example relu_softmax -- --rows 5000 --len 256 [--two-stage] [--quick]`

use std::process::ExitCode;

use clap::Parser;
use grosr::Runtime;
use grosr::graph::Strategy;
use grosr_lab::Error;
use grosr_lab::workloads::Timing;
use grosr_lab::workloads::graphs::{Checks, compare};
use grosr_lab::workloads::relu_softmax::{Matrix, Relu, ReluSoftmax, Softmax, TOLERANCE};
use grosr_lab::workloads::table::Table;

#[derive(Parser)]
#[command(about = "ReLU + Softmax over the rows of a matrix, under every dispatch strategy")]
struct Args {
    /// Rows (one task per row), at least 1; rows × len at most 2^28 (1 GiB per matrix).
    #[arg(long, default_value_t = 5000)]
    rows: u32,
    /// Row length, at least 1.
    #[arg(long, default_value_t = 256)]
    len: u32,
    /// Two tasks per row (ReLU → Softmax) instead of one.
    #[arg(long)]
    two_stage: bool,
    /// Fewer timed runs.
    #[arg(long)]
    quick: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    grosr_lab::cli::exit("relu_softmax", run(&args))
}

/// The largest matrix, in elements: the host keeps copies of it as well.
const MAX_ELEMENTS: u64 = 1 << 28;

fn run(args: &Args) -> grosr_lab::Result<()> {
    if args.rows == 0 || args.len == 0 {
        return Err(grosr::Error::Config("--rows and --len must be at least 1".into()).into());
    }
    if args.rows as u64 * args.len as u64 > MAX_ELEMENTS {
        return Err(grosr::Error::Config(format!(
            "--rows × --len is {}, above 2^28",
            args.rows as u64 * args.len as u64
        ))
        .into());
    }
    // Timed: the optimized module from the first build (the default, Tiered, would run the
    // fast compile's until the optimized one is cached).
    let rt = Runtime::builder()
        .optimize(grosr::Optimize::Speed)
        .task::<ReluSoftmax>()
        .task::<Relu>()
        .task::<Softmax>()
        .build()?;
    let m = Matrix::new(&rt, args.rows, args.len)?;
    let graph = if args.two_stage {
        m.two_task_graph()?
    } else {
        m.one_task_graph()
    };
    let input = std::cell::RefCell::new(Vec::new());
    let seed = std::cell::Cell::new(0u64);
    let reset = || {
        seed.set(seed.get() + 1);
        *input.borrow_mut() = m.randomize(seed.get())?;
        Ok(())
    };
    let check = |s: Strategy| {
        let e = m.max_relative_error(&input.borrow())?;
        println!("{:>14}: max relative error {e:.2e}", s.name());
        if e < TOLERANCE {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "{}: relative error {e:.2e} ≥ {TOLERANCE:.0e}",
                s.name()
            )))
        }
    };
    let runs = compare(
        &rt,
        &graph,
        &Strategy::ALL,
        &Checks {
            reset: &reset,
            check: &check,
        },
        Timing::new(args.quick),
    )?;
    let columns: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
    let mut table = Table::new(
        "relu_softmax",
        &format!(
            "ReLU + Softmax, {} × {}, {} on {}",
            args.rows,
            args.len,
            if args.two_stage {
                "2 tasks per row"
            } else {
                "1 task per row"
            },
            rt.info().device
        ),
        "µs",
        false,
        &columns,
    );
    let mut run_us = Vec::new();
    let mut prep_ms = Vec::new();
    for (s, r) in &runs {
        match r {
            Ok(r) => {
                run_us.push(Some(r.run.median_us()));
                prep_ms.push(Some(r.prepare.as_secs_f64() * 1e3));
            }
            Err(e) => {
                table.notes.push(format!("{} not run: {e}", s.name()));
                run_us.push(None);
                prep_ms.push(None);
            }
        }
    }
    table.push("one run (median)", run_us);
    println!("\n{}", table.markdown());
    let mut prep = Table::new("prepare", "One-off preparation", "ms", false, &columns);
    prep.push("upload / instantiate / plan", prep_ms);
    println!("{}", prep.markdown());
    Ok(())
}
