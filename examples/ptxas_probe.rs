//! Compiles the workloads' scheduler module with NVRTC (no GPU needed) and prints what ptxas
//! says of every kernel: registers, stack, spills, shared memory. For watching register pressure
//! in the scheduler as device code changes.
//!
//! `cargo run --release --example ptxas_probe -- [--arch 90] [--alloc | --many]` (NVRTC on the
//! library path; `--alloc`: the allocator benchmark's module instead; `--many`: the 14-type one)

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "ptxas's register and spill report for the scheduler module")]
struct Args {
    /// Compute capability, major * 10 + minor.
    #[arg(long, default_value_t = 90)]
    arch: u32,
    /// Also write the CUBIN here (for nvdisasm).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Probe the allocator benchmark's module (bench_* kernels: the device heap inlined) instead.
    #[arg(long)]
    alloc: bool,
    /// Probe the 14-type user-shaped module (`workloads::many`, issue 19) instead.
    #[arg(long)]
    many: bool,
    /// Write the module's source here instead of compiling it (to edit constexpr switches).
    #[arg(long)]
    dump: Option<std::path::PathBuf>,
    /// Compile this source file instead of a generated module (e.g. an edited --dump).
    #[arg(long)]
    source: Option<std::path::PathBuf>,
    /// Compile the report's modules (workloads, allocator benchmark, BFS, latency_trace's) into the disk cache
    /// (`GROSR_CACHE_DIR`) instead: a GPU machine given that folder skips NVRTC (same NVRTC
    /// version, `GROSR_DEFINES` and arch).
    #[arg(long)]
    warm_cache: bool,
    /// With --warm-cache: only these modules (workloads, alloc, bfs, traced), comma-separated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    grosr_lab::cli::exit("ptxas_probe", run(&args))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> grosr_lab::Error + '_ {
    |source| grosr_lab::Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn run(args: &Args) -> grosr_lab::Result<()> {
    if args.warm_cache {
        let modules = [
            ("workloads", grosr_lab::workloads::builder()),
            ("alloc", grosr_lab::workloads::alloc::builder(0)),
            ("bfs", grosr_lab::bfs::gpu::builder()),
            (
                "traced workloads (latency_trace)",
                grosr_lab::workloads::builder().diagnostics(true),
            ),
        ];
        let wanted = |name: &str| {
            args.only.is_empty() || args.only.iter().any(|w| name.starts_with(w.as_str()))
        };
        for (name, builder) in modules.into_iter().filter(|(n, _)| wanted(n)) {
            let c = grosr::unstable::compile_cached(&builder.source(), args.arch, &[])
                .inspect_err(|_| eprintln!("ptxas_probe: the {name} module does not compile:"))?;
            println!(
                "{name}: sm_{} {}",
                args.arch,
                if c.cached {
                    "already cached"
                } else {
                    "compiled"
                }
            );
        }
        return Ok(());
    }
    // SAFETY: set before any other thread exists; compile() reads it.
    unsafe { std::env::set_var("GROSR_PTXAS_VERBOSE", "1") };
    let source = if let Some(path) = &args.source {
        std::fs::read_to_string(path).map_err(io(path))?
    } else if args.alloc {
        grosr_lab::workloads::alloc::builder(0).source()
    } else if args.many {
        grosr_lab::workloads::many::builder().source()
    } else {
        grosr_lab::workloads::builder().source()
    };
    if let Some(path) = &args.dump {
        return std::fs::write(path, &source).map_err(io(path));
    }
    let cubin = grosr::unstable::compile(&source, args.arch)?;
    println!("sm_{}: {} bytes of CUBIN", args.arch, cubin.len());
    if let Some(path) = &args.out {
        std::fs::write(path, &cubin).map_err(io(path))?;
    }
    Ok(())
}
