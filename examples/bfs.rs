//! BFS on the resident scheduler against the level-synchronous baseline and the CUDA-graph
//! WHILE-node baseline, validated with the Graph500 rules:
//! `cargo run --release --example bfs -- --graph kronecker --scale 20 --strategy all`.
//! `--graph file --file g.mtx` reads a Matrix Market file or an edge list.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use grosr_lab::bfs::generate::{chain, grid, kronecker, sample_roots};
use grosr_lab::bfs::gpu::{self, BfsOptions, DeviceGraph};
use grosr_lab::bfs::while_graph::{WhileBfs, WhileGraph, WhileRoute, default_grid};
use grosr_lab::bfs::{BfsRun, Csr, harmonic_mean, read, traversed_edges, validate};
use grosr_lab::workloads::table::format_value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Kronecker,
    Grid,
    Chain,
    File,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Strategy {
    Resident,
    LevelSync,
    /// The CUDA-graph WHILE-node baseline only.
    While,
    /// Resident and level-synchronous.
    Both,
    /// All three.
    All,
}

#[derive(Parser, Debug)]
#[command(about = "BFS on grosr's resident scheduler, validated (Graph500 rules)")]
struct Args {
    /// Which graph.
    #[arg(long, value_enum, default_value = "kronecker")]
    graph: Kind,
    /// Kronecker SCALE (2^SCALE vertices, edge factor 16).
    #[arg(long, default_value_t = 20)]
    scale: u32,
    /// Grid side (side × side) or chain length.
    #[arg(long, default_value_t = 1024)]
    size: u32,
    /// Graph file for --graph file (Matrix Market, or `u v` lines).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Searches, from random roots of degree ≥ 1.
    #[arg(long, default_value_t = 16)]
    roots: usize,
    /// Which GPU strategy to run.
    #[arg(long, value_enum, default_value = "both")]
    strategy: Strategy,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn teps(g: &Csr, root: u32, run: &BfsRun) -> grosr_lab::Result<f64> {
    let depth = validate(g, root, &run.parent, Some(&run.level))?;
    Ok(traversed_edges(g, &depth) as f64 / run.time.as_secs_f64().max(1e-9))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let g = match args.graph {
        Kind::Kronecker => kronecker(args.scale, 1)?,
        Kind::Grid => grid(args.size, args.size)?,
        Kind::Chain => chain(args.size),
        Kind::File => {
            let path = args.file.as_ref().ok_or("--graph file needs --file PATH")?;
            read::file(path)?
        }
    };
    println!("graph: {} vertices, {} edges", g.vertices(), g.edges());
    let roots = sample_roots(&g, args.roots, 7);
    if roots.is_empty() {
        return Err("the graph has no vertex of degree ≥ 1".into());
    }
    let rt = gpu::builder().build()?;
    println!("{} ({} SMs)", rt.info().device, rt.info().sms_used);
    let dg = DeviceGraph::upload(&rt, &g, BfsOptions::default())?;
    let mut resident = Vec::new();
    let mut level_sync = Vec::new();
    let mut while_graph = Vec::new();
    let s = args.strategy;
    if matches!(s, Strategy::Resident | Strategy::Both | Strategy::All) {
        for &r in &roots {
            let run = dg.bfs_resident(&rt, r)?;
            resident.push(teps(&g, r, &run)?);
        }
    }
    if s != Strategy::Resident {
        rt.stop()?;
        let sms = rt.info().sms_used;
        let stopped = (|| -> Result<(), Box<dyn std::error::Error>> {
            let b = rt.baselines()?;
            if matches!(s, Strategy::LevelSync | Strategy::Both | Strategy::All) {
                for &r in &roots {
                    let run = dg.bfs_level_sync(&b, sms, r)?;
                    level_sync.push(teps(&g, r, &run)?);
                }
            }
            if matches!(s, Strategy::While | Strategy::All) {
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
