//! grosr's report: every workload under every dispatch strategy on this GPU, side by side.
//! `cargo run --release --example report [-- --quick] [--only NAME]`

use clap::Parser;
use grosr::DeviceBuffer;
use grosr::workloads::{self, Stats};

#[derive(Parser)]
#[command(about = "Runs grosr's workloads under each dispatch strategy and prints the tables")]
struct Args {
    /// Fewer repetitions and smaller sizes (a minute instead of several).
    #[arg(long)]
    quick: bool,
    /// Only workloads whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Where to write the figures as JSON.
    #[arg(long, default_value = "grosr-report.json")]
    json: std::path::PathBuf,
}

struct Row {
    workload: String,
    unit: &'static str,
    resident: f64,
    baseline_name: &'static str,
    baseline: f64,
    /// true when larger is better (throughput), false for times.
    higher_is_better: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("report: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> grosr::Result<()> {
    let rt = workloads::builder().build()?;
    let info = rt.info().clone();
    println!("# grosr report");
    println!(
        "GPU: {} (sm_{}, {} SMs), driver CUDA {}.{}, NVRTC {}.{}; scheduler: {} blocks × 256 threads",
        info.device,
        info.arch,
        info.sm_count,
        info.driver_version / 1000,
        info.driver_version % 1000 / 10,
        info.nvrtc_version.0,
        info.nvrtc_version.1,
        info.grid_blocks
    );
    let (warm, reps) = if args.quick { (20, 200) } else { (100, 2000) };
    let (big_warm, big_reps) = if args.quick { (2, 10) } else { (5, 50) };
    let wanted = |name: &str| args.only.as_deref().is_none_or(|f| name.contains(f));
    let mut rows = Vec::new();
    let hops = 100_000u32;
    let n = 1u32 << 20;

    // Resident figures first, then the scheduler is stopped for the baselines (they need its SMs).
    let one = wanted("one_task")
        .then(|| workloads::resident_one_task(&rt, warm, reps))
        .transpose()?;
    let chain = wanted("chain")
        .then(|| workloads::resident_chain(&rt, hops, big_warm, big_reps))
        .transpose()?;
    let host = wanted("host_tasks")
        .then(|| workloads::resident_host_tasks(&rt, n, big_warm, big_reps))
        .transpose()?;
    let spawned = wanted("spawned_tasks")
        .then(|| workloads::resident_spawned_tasks(&rt, n, big_warm, big_reps))
        .transpose()?;
    rt.stop()?;
    let base = rt.baselines()?;
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
    let us = |s: Stats| s.median_us();
    let per_s = |s: Stats, count: u32| count as f64 / s.median.as_secs_f64();
    if let Some(r) = one {
        let b = workloads::launch_sync_one_task(&base, &flags, warm, reps)?;
        rows.push(row(
            "one tiny task, submit → host sees completion",
            "µs",
            us(r),
            "launch+sync",
            us(b),
            false,
        ));
    }
    if let Some(r) = chain {
        let b = workloads::launch_chain(&base, &flags, hops, big_warm.min(3), big_reps.min(10))?;
        rows.push(row(
            "chain of 100k dependent tasks, per hop",
            "µs",
            us(r) / hops as f64,
            "launch per hop",
            us(b) / hops as f64,
            false,
        ));
    }
    let bulk = (host.is_some() || spawned.is_some())
        .then(|| workloads::bulk_tasks(&base, &rt, n, big_warm, big_reps))
        .transpose()?;
    if let (Some(r), Some(b)) = (host, bulk) {
        rows.push(row(
            "1M tiny tasks submitted by the host",
            "M tasks/s",
            per_s(r, n) / 1e6,
            "one bulk kernel",
            per_s(b, n) / 1e6,
            true,
        ));
    }
    if let (Some(r), Some(b)) = (spawned, bulk) {
        rows.push(row(
            "1M tiny tasks spawned on the GPU",
            "M tasks/s",
            per_s(r, n) / 1e6,
            "one bulk kernel",
            per_s(b, n) / 1e6,
            true,
        ));
    }
    drop(base);
    print_table(
        "Core: the resident scheduler against host launches (medians)",
        &rows,
    );
    write_json(&args.json, &info, &rows);
    Ok(())
}

fn row(
    workload: &str,
    unit: &'static str,
    resident: f64,
    baseline_name: &'static str,
    baseline: f64,
    higher_is_better: bool,
) -> Row {
    Row {
        workload: workload.into(),
        unit,
        resident,
        baseline_name,
        baseline,
        higher_is_better,
    }
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n## {title}\n");
    println!("| workload | unit | grosr resident | baseline | baseline value | grosr advantage |");
    println!("| --- | --- | ---: | --- | ---: | ---: |");
    for r in rows {
        let adv = if r.higher_is_better {
            r.resident / r.baseline
        } else {
            r.baseline / r.resident
        };
        println!(
            "| {} | {} | {:.3} | {} | {:.3} | {:.2}× |",
            r.workload, r.unit, r.resident, r.baseline_name, r.baseline, adv
        );
    }
}

fn write_json(path: &std::path::Path, info: &grosr::RuntimeInfo, rows: &[Row]) {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "workload": r.workload, "unit": r.unit, "resident": r.resident,
                "baseline": r.baseline_name, "baseline_value": r.baseline,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "device": info.device, "arch": info.arch, "sm_count": info.sm_count,
        "driver_version": info.driver_version, "nvrtc": [info.nvrtc_version.0, info.nvrtc_version.1],
        "core": rows,
    });
    match std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default()) {
        Ok(()) => println!("\nfigures written to {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
