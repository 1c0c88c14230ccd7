//! BFS on the resident scheduler against the level-synchronous baseline and the CUDA-graph
//! WHILE-node baseline, validated with the Graph500 rules:
//! `cargo run --release --example bfs -- --graph kronecker --scale 20 --strategy all`.
//! `--file g.mtx` reads a Matrix Market file or an edge list (`--file -`: standard input).
//! The arguments and their bounds: `--help`, and `grosr_lab::bfs::args`.

use std::process::ExitCode;

use grosr_lab::bfs::args::BfsArgs;
use grosr_lab::bfs::generate::sample_roots;
use grosr_lab::bfs::gpu::{self, BfsOptions, DeviceGraph};
use grosr_lab::bfs::while_graph::{WhileBfs, WhileGraph, WhileRoute, default_grid};
use grosr_lab::bfs::{BfsRun, Csr, harmonic_mean, traversed_edges, validate};
use grosr_lab::workloads::table::format_value;

fn teps(g: &Csr, root: u32, run: &BfsRun) -> grosr_lab::Result<f64> {
    let depth = validate(g, root, &run.parent, Some(&run.level))?;
    Ok(traversed_edges(g, &depth) as f64 / run.time.as_secs_f64().max(1e-9))
}

fn main() -> ExitCode {
    // Bad arguments: clap's message with the usage, exit status 2.
    let args = BfsArgs::parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
    grosr_lab::cli::exit("bfs", run(&args))
}

fn run(args: &BfsArgs) -> grosr_lab::Result<()> {
    let g = args.graph.build()?;
    println!("graph: {} vertices, {} edges", g.vertices(), g.edges());
    let roots = sample_roots(&g, args.roots, 7);
    if roots.is_empty() {
        return Err(grosr_lab::Error::Graph(
            "no vertex has an edge: there is nothing to search".into(),
        ));
    }
    let rt = gpu::builder().build()?;
    println!("{} ({} SMs)", rt.info().device, rt.info().sms_used);
    let dg = DeviceGraph::upload(&rt, &g, BfsOptions::default())?;
    let mut resident = Vec::new();
    let mut level_sync = Vec::new();
    let mut while_graph = Vec::new();
    let s = args.strategy;
    if s.resident() {
        for &r in &roots {
            let run = dg.bfs_resident(&rt, r)?;
            resident.push(teps(&g, r, &run)?);
        }
    }
    if s.level_sync() || s.while_graph() {
        rt.stop()?;
        let sms = rt.info().sms_used;
        let stopped = (|| -> grosr_lab::Result<()> {
            let b = rt.baselines()?;
            if s.level_sync() {
                for &r in &roots {
                    let run = dg.bfs_level_sync(&b, sms, r)?;
                    level_sync.push(teps(&g, r, &run)?);
                }
            }
            if s.while_graph() {
                // Unavailable (no libcudadevrt.a, an old driver, ...): say why and go on.
                match WhileBfs::new(&rt, WhileRoute::Auto) {
                    Ok(w) => {
                        println!("WHILE graph: {}", w.how());
                        let wg = WhileGraph::new(&w, &dg, default_grid(sms))?;
                        for &r in &roots {
                            let run = wg.bfs(&b, r)?;
                            while_graph.push(teps(&g, r, &run)?);
                        }
                    }
                    Err(e) => println!("WHILE graph: {e}"),
                }
            }
            Ok(())
        })();
        rt.start()?;
        stopped?;
    }
    let (hr, hl) = (harmonic_mean(&resident), harmonic_mean(&level_sync));
    let hw = harmonic_mean(&while_graph);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "vertices": g.vertices(), "edges": g.edges(), "roots": roots.len(),
                "resident_gteps": hr / 1e9, "level_sync_gteps": hl / 1e9,
                "while_graph_gteps": (!while_graph.is_empty()).then_some(hw / 1e9),
            })
        );
    } else {
        println!("all {} searches valid (Graph500 rules)", roots.len());
        if !resident.is_empty() {
            println!(
                "resident:   {} GTEPS (harmonic mean)",
                format_value(hr / 1e9)
            );
        }
        if !level_sync.is_empty() {
            println!(
                "level-sync: {} GTEPS (harmonic mean)",
                format_value(hl / 1e9)
            );
        }
        if !while_graph.is_empty() {
            println!(
                "WHILE graph: {} GTEPS (harmonic mean)",
                format_value(hw / 1e9)
            );
        }
        if hr > 0.0 && hw > 0.0 {
            println!("resident / WHILE graph: {:.2}×", hr / hw);
        }
        if hr > 0.0 && hl > 0.0 {
            println!("resident / level-sync: {:.2}×", hr / hl);
        }
    }
    Ok(())
}
