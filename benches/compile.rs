//! `cargo bench --bench compile`: NVRTC's time for the scheduler modules users and the report
//! build, cold (no cache), on this machine's CPU. Needs NVRTC but no GPU (NVRTC from PyPI will do:
//! README, "What you need"), so a compile-time regression shows before a GPU run does.
//!
//! `-- --runs N` (default 3) compiles each module N times and prints the median; `--only NAME`
//! keeps the modules whose name contains NAME; `--dump DIR` writes each module's source to DIR.
//! Each compile's source is made unique first (`startup::cold_compile` says why). The target is
//! sm_90 (the H200 the figures come from).

#[path = "../examples/quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

use grosr::Optimize::{self, Compile, Speed};
use grosr_lab::workloads::{self, startup};

/// (name, source, setting): every module at both settings, and the 14-type one with a body edited.
fn modules() -> Vec<(String, String, Optimize)> {
    let sources = [
        ("quickstart (2 types)", quickstart::builder().source()),
        ("many-type (14 types)", workloads::many::builder().source()),
        (
            "many-type, one body changed",
            startup::many_with_one_body_changed().expect("Count's body"),
        ),
        ("report workloads", workloads::builder().source()),
        ("bfs", grosr_lab::bfs::gpu::builder().source()),
        ("allocator bench", workloads::alloc::builder(0).source()),
    ];
    // Compile first: NVRTC's fast-compile level gives another module once a full compile has
    // finished in the process (benches/NOTES.md, "Start-up and compile time").
    let mut all = Vec::new();
    for optimize in [Compile, Speed] {
        for (name, source) in &sources {
            all.push((format!("{name}, {optimize:?}"), source.clone(), optimize));
        }
    }
    all
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| grosr_lab::cli::flag_value(&args, flag);
    let runs: usize = value("--runs").and_then(|r| r.parse().ok()).unwrap_or(3);
    let only = value("--only");
    if let Err(e) = grosr::unstable::nvrtc_available() {
        eprintln!("compile bench skipped: {e}");
        return;
    }
    let arch = 90;
    println!(
        "NVRTC {:?}, sm_{arch}, {runs} cold compiles each, median:",
        grosr::unstable::nvrtc_version().unwrap()
    );
    for (name, source, optimize) in modules() {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        if let Some(dir) = value("--dump") {
            let file = format!("{dir}/{}.cu", name.split(' ').next().unwrap_or(&name));
            std::fs::write(&file, &source).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        let (secs, cubin_bytes) = startup::median_compile(&source, arch, optimize, runs)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        println!(
            "  {name:<38} {:>8.2} s   source {:>7} B   cubin {:>8} B",
            secs,
            source.len(),
            cubin_bytes
        );
    }
}
