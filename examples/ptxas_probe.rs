//! Compiles the workloads' scheduler module with NVRTC (no GPU needed) and prints what ptxas
//! says of every kernel: registers, stack, spills, shared memory. For watching register pressure
//! in the scheduler as device code changes.
//!
//! `cargo run --release --example ptxas_probe -- [--arch 90]` (NVRTC on the library path)

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
}

fn main() {
    let args = Args::parse();
    // SAFETY: set before any other thread exists; compile() reads it.
    unsafe { std::env::set_var("GROSR_PTXAS_VERBOSE", "1") };
    let source = grosr::workloads::builder().source();
    match grosr::compile::compile(&source, args.arch) {
        Ok(cubin) => {
            println!("sm_{}: {} bytes of CUBIN", args.arch, cubin.len());
            if let Some(path) = &args.out {
                if let Err(e) = std::fs::write(path, &cubin) {
                    eprintln!("ptxas_probe: cannot write {}: {e}", path.display());
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("ptxas_probe: {e}");
            std::process::exit(1);
        }
    }
}
