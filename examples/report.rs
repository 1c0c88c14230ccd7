//! grosr's report: every workload under every dispatch strategy on this GPU, side by side.
//!
//! `cargo run --release --example report [-- --quick] [--only NAME] [--no-torch]`
//!
//! Prints Markdown tables (each strategy against Resident, from the same run) under a header
//! naming the GPU, driver and NVRTC; writes every figure to `grosr-report.json`, and one SVG chart
//! per table and a picture of a small graph of each graph section into `grosr-report/`. Without
//! a GPU it says what is missing and exits non-zero.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[path = "quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

use clap::Parser;
use grosr::{DeviceBuffer, Runtime};
use grosr_lab::workloads::relu_softmax::{self, Peer};
use grosr_lab::workloads::startup;
use grosr_lab::workloads::table::Table;
use grosr_lab::workloads::{self, Stats, graphs};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(about = "Runs grosr's workloads under each dispatch strategy and prints the tables")]
struct Args {
    /// Fewer repetitions and smaller sizes (a couple of minutes instead of several).
    #[arg(long)]
    quick: bool,
    /// Only sections whose name contains one of these comma-separated words (sections: core,
    /// pingpong, throughput, relu_softmax, mixed_dag, head_of_line, host_threads, priority, alloc,
    /// bfs, startup).
    #[arg(long)]
    only: Option<String>,
    /// relu_softmax: only these shapes, comma-separated ROWSxLEN (e.g. 5000x256).
    #[arg(long)]
    shapes: Option<String>,
    /// relu_softmax, pingpong, throughput: only these strategies, comma-separated (e.g.
    /// Resident,Fused).
    #[arg(long)]
    strategies: Option<String>,
    /// Skip the PyTorch peer (benches/torch_peer.py).
    #[arg(long)]
    no_torch: bool,
    /// Where to write the figures as JSON.
    #[arg(long, default_value = "grosr-report.json")]
    json: PathBuf,
    /// Folder for the SVG charts.
    #[arg(long, default_value = "grosr-report")]
    plots: PathBuf,
    /// Build the shared runtime (core, pingpong, throughput, relu_softmax) with
    /// `Optimize::Compile` instead of `Optimize::Speed`, to see what it costs.
    #[arg(long)]
    optimize_compile: bool,
    /// Build the shared runtime with a task trace of this many events per warp (issue 22: what
    /// tracing costs; 0: off).
    #[arg(long, default_value_t = 0)]
    trace_events: usize,
    /// Build the shared runtime `cancellable` (issue 22: what the cancel check costs).
    #[arg(long)]
    cancellable: bool,
    /// Submission rings of the shared runtime and of head_of_line's and host_threads' runtimes
    /// (`RuntimeBuilder::submit_rings`; default: the builder's).
    #[arg(long)]
    submit_rings: Option<u32>,
    /// The start-up section's child processes: one tiered start (module index, cache folder,
    /// a name that makes its source unique, wait for Speed: true/false), `startup::tiered_child`.
    #[arg(long, hide = true, num_args = 4)]
    tiered_child: Option<Vec<String>>,
}

/// The sections on the shared runtime, in the order they run.
const SHARED_RUNTIME: [&str; 4] = ["core", "pingpong", "throughput", "relu_softmax"];

/// The sections that build runtimes of their own (one scheduler per process at a time), run
/// after the shared one is dropped, in this order.
const OWN_RUNTIME: [&str; 7] = [
    "mixed_dag",
    "head_of_line",
    "host_threads",
    "priority",
    "alloc",
    "bfs",
    "startup",
];

/// Every section, in the order they run.
fn sections() -> impl Iterator<Item = &'static str> {
    SHARED_RUNTIME.into_iter().chain(OWN_RUNTIME)
}

fn main() -> ExitCode {
    let args = Args::parse();
    grosr_lab::cli::exit("report", run(&args))
}

/// The start-up section's modules: the quickstart example's and the lab's.
fn startup_modules() -> Vec<startup::Module> {
    let mut modules = vec![startup::Module {
        name: "quickstart (2 types)",
        builder: quickstart::builder,
        check: None,
    }];
    modules.extend(startup::lab_modules());
    modules
}

/// A child report running one of the start-up section's tiered starts.
fn tiered_child_command(
    index: usize,
    folder: &Path,
    unique: &str,
    wait: bool,
) -> grosr_lab::Result<std::process::Command> {
    let exe = std::env::current_exe().map_err(|e| {
        grosr_lab::Error::Invalid(format!("the start-up section runs this report again: {e}"))
    })?;
    let mut c = std::process::Command::new(exe);
    c.arg("--tiered-child")
        .arg(index.to_string())
        .arg(folder)
        .arg(unique)
        .arg(wait.to_string());
    Ok(c)
}

/// `--tiered-child`: one tiered start of the start-up section, in this process.
fn tiered_child(v: &[String]) -> grosr_lab::Result<()> {
    let bad = || grosr::Error::Config(format!("--tiered-child {v:?}: INDEX FOLDER NAME WAIT"));
    let [index, folder, unique, wait] = v else {
        return Err(bad().into());
    };
    let modules = startup_modules();
    let m = index
        .parse::<usize>()
        .ok()
        .and_then(|i| modules.get(i))
        .ok_or_else(bad)?;
    let wait = wait.parse::<bool>().map_err(|_| bad())?;
    startup::tiered_child(m, Path::new(folder), unique, wait)
}

fn run(args: &Args) -> grosr_lab::Result<()> {
    if let Some(v) = &args.tiered_child {
        return tiered_child(v);
    }
    let wanted: Vec<&str> = sections()
        .filter(|s| {
            args.only
                .as_deref()
                .is_none_or(|f| f.split(',').any(|w| !w.is_empty() && s.contains(w.trim())))
        })
        .collect();
    if wanted.is_empty() {
        return Err(grosr::Error::Config(format!(
            "--only {:?} matches no section; sections: {}",
            args.only.as_deref().unwrap_or(""),
            sections().collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    let selection =
        relu_softmax::Selection::parse(args.shapes.as_deref(), args.strategies.as_deref())?;
    let progress = Progress::new(wanted.len());
    let mut tables: Vec<Table> = Vec::new();
    let started = Instant::now();
    // PyTorch first, while no scheduler holds the GPU: a persistent kernel of this process would
    // time-slice with the peer's kernels and inflate its figures by milliseconds.
    let peer = if !wanted.contains(&"relu_softmax") {
        PeerFigures::none("section not run")
    } else if args.no_torch {
        PeerFigures::none("--no-torch")
    } else {
        progress.note("running benches/torch_peer.py (PyTorch eager and torch.compile)");
        PeerFigures::measure(args.quick)
    };
    // The start-up section's cold compiles come before anything else compiles in this process
    // (startup::cold_compiles says why); its cached builds run with the other sections.
    let mut startup_cold = if wanted.contains(&"startup") {
        progress.note("startup: the cold compiles first, before anything else compiles");
        let arch = grosr::Gpu::open(0)?.arch;
        Some(startup::cold_compiles(&startup_modules(), arch)?)
    } else {
        None
    };
    let info;
    {
        let optimize = if args.optimize_compile {
            grosr::Optimize::Compile
        } else {
            grosr::Optimize::Speed
        };
        let rt = workloads::contention::with_rings(workloads::builder(), args.submit_rings)
            .optimize(optimize)
            .trace(args.trace_events)
            .cancellable(args.cancellable)
            .build()?;
        info = rt.info().clone();
        println!("# grosr report\n");
        println!(
            "GPU: {} (sm_{}, {} SMs); driver: CUDA {}.{}; NVRTC {}.{}; scheduler: {} blocks × 256 threads, {} submission rings{}\n",
            info.device,
            info.arch,
            info.sm_count,
            info.driver_version / 1000,
            info.driver_version % 1000 / 10,
            info.nvrtc_version.0,
            info.nvrtc_version.1,
            info.grid_blocks,
            info.submit_rings,
            match (args.quick, info.optimize) {
                (true, grosr::Optimize::Compile) => "; --quick; Optimize::Compile",
                (false, grosr::Optimize::Compile) => "; Optimize::Compile",
                (true, _) => "; --quick",
                (false, _) => "",
            }
        );
        for &s in wanted.iter().filter(|s| !OWN_RUNTIME.contains(*s)) {
            progress.start(s);
            let t = match s {
                "core" => core(&rt, args.quick)?,
                "pingpong" => graphs::pingpong(&rt, args.quick, selection.strategies.as_deref())?,
                "throughput" => {
                    graphs::throughput(&rt, args.quick, selection.strategies.as_deref())?
                }
                "relu_softmax" => {
                    let mut t =
                        relu_softmax::report(&rt, args.quick, &selection, &|r, l| peer.get(r, l))?;
                    if let Some(n) = &peer.note {
                        t[0].notes.push(n.clone());
                    }
                    t
                }
                _ => unreachable!(),
            };
            progress.done(s, &t);
            tables.extend(t);
            write_json(&args.json, &info, args.quick, &tables);
        }
    } // the shared runtime stops here, before the sections that build their own
    for &s in wanted.iter().filter(|s| OWN_RUNTIME.contains(*s)) {
        progress.start(s);
        let t = match s {
            "mixed_dag" => workloads::mixed_dag::report(args.quick)?,
            "head_of_line" => workloads::contention::head_of_line(args.quick, args.submit_rings)?,
            "host_threads" => workloads::contention::host_threads(args.quick, args.submit_rings)?,
            "priority" => workloads::contention::priority(args.quick, args.submit_rings)?,
            "alloc" => workloads::alloc::report(args.quick, &|l| progress.note(l))?,
            "bfs" => grosr_lab::bfs::report(args.quick)?,
            "startup" => {
                let mut t: Vec<Table> = startup_cold.take().into_iter().collect();
                t.push(startup::cached_builds(&startup_modules())?);
                t.push(startup::tiered_starts(
                    &startup_modules(),
                    &tiered_child_command,
                )?);
                t
            }
            _ => unreachable!(),
        };
        progress.done(s, &t);
        tables.extend(t);
        write_json(&args.json, &info, args.quick, &tables);
    }
    progress.finish();
    println!(
        "report took {:.0} s; figures in {}",
        started.elapsed().as_secs_f64(),
        args.json.display()
    );
    write_plots(&args.plots, &tables);
    write_graph_pictures(&args.plots, &wanted);
    Ok(())
}

/// The core paths: one task's latency, a chain of spawns, 1M tasks from the host and from the
/// GPU, against host launches of the same bodies.
fn core(rt: &Runtime, quick: bool) -> grosr_lab::Result<Vec<Table>> {
    let (warm, reps) = if quick { (20, 200) } else { (100, 2000) };
    let (big_warm, big_reps) = if quick { (2, 10) } else { (5, 50) };
    let hops = 100_000u32;
    let n = 1u32 << 20;
    if !rt.is_running() {
        rt.start()?;
    }
    let one = workloads::resident_one_task(rt, warm, reps)?;
    let chain = workloads::resident_chain(rt, hops, big_warm, big_reps)?;
    let host = workloads::resident_host_tasks(rt, n, big_warm, big_reps)?;
    let spawned: Vec<(u32, Stats)> = workloads::SPREAD_FANOUTS
        .into_iter()
        .map(|f| {
            Ok((
                f,
                workloads::resident_spawned_tasks(rt, n, f, big_warm, big_reps)?,
            ))
        })
        .collect::<grosr_lab::Result<_>>()?;
    rt.stop()?;
    let (one_b, chain_b, bulk) = {
        let base = rt.baselines()?;
        let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1)?;
        (
            workloads::launch_sync_one_task(&base, &flags, warm, reps)?,
            workloads::launch_chain(&base, &flags, hops, big_warm.min(3), big_reps.min(10))?,
            workloads::bulk_tasks(&base, rt, n, big_warm, big_reps)?,
        )
    };
    rt.start()?;
    let us = |s: &Stats| s.median_us();
    let mut lat = Table::new(
        "core_latency",
        "Core: dependent work, resident scheduler vs host launches",
        "µs",
        false,
        &["Resident", "host launches"],
    );
    lat.push(
        "one tiny task, submit → host sees completion (vs launch + sync)",
        vec![Some(us(&one)), Some(us(&one_b))],
    );
    lat.push(
        "chain of 100k dependent tasks, per hop (vs one launch per hop)",
        vec![
            Some(us(&chain) / hops as f64),
            Some(us(&chain_b) / hops as f64),
        ],
    );
    lat.notes
        .push("Targets: one task ≤ 5 µs; ≤ 0.3 µs per hop.".into());
    let rate = |s: &Stats| n as f64 / s.median.as_secs_f64() / 1e6;
    let mut tput = Table::new(
        "core_throughput",
        "Core: 1M independent tiny tasks",
        "M tasks/s",
        true,
        &["Resident", "one bulk kernel"],
    );
    tput.push(
        "submitted by the host",
        vec![Some(rate(&host)), Some(rate(&bulk))],
    );
    for (fanout, s) in &spawned {
        tput.push(
            format!("spawned on the GPU (tree of fan-out {fanout})"),
            vec![Some(rate(s)), Some(rate(&bulk))],
        );
    }
    tput.notes.push(
        "The bulk kernel is the ceiling (no scheduling at all). Targets: ≥ 200 M/s from the host, \
         ≥ 5000 M/s spawned. A wider tree has fewer levels, but each level's round spawns more \
         children one call after another."
            .into(),
    );
    Ok(vec![lat, tput])
}

/// PyTorch's figures from benches/torch_peer.py, when Python, torch and a GPU are there.
struct PeerFigures {
    shapes: Vec<(u32, u32, Peer)>,
    note: Option<String>,
}

impl PeerFigures {
    fn none(why: &str) -> PeerFigures {
        PeerFigures {
            shapes: Vec::new(),
            note: Some(format!("PyTorch peer not run: {why}.")),
        }
    }

    fn measure(quick: bool) -> PeerFigures {
        let script = [
            "benches/torch_peer.py",
            // The lab's manifest is benches/lab/Cargo.toml.
            concat!(env!("CARGO_MANIFEST_DIR"), "/../torch_peer.py"),
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
        let Some(script) = script else {
            return PeerFigures::none("benches/torch_peer.py not found from the current directory");
        };
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(&script).stderr(std::process::Stdio::inherit());
        if quick {
            cmd.arg("--quick");
        }
        let out = match run_with_timeout(cmd, Duration::from_secs(300)) {
            Ok(o) => o,
            Err(e) => return PeerFigures::none(&e),
        };
        let doc: serde_json::Value = match serde_json::from_slice(&out) {
            Ok(v) => v,
            Err(e) => return PeerFigures::none(&format!("unreadable output ({e})")),
        };
        if doc["available"] != serde_json::Value::Bool(true) {
            return PeerFigures::none(doc["reason"].as_str().unwrap_or("unavailable"));
        }
        let shapes = doc["shapes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        (
                            s["rows"].as_u64().unwrap_or(0) as u32,
                            s["len"].as_u64().unwrap_or(0) as u32,
                            Peer {
                                eager_us: s["eager_us"].as_f64(),
                                compiled_us: s["compiled_us"].as_f64(),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut note = format!(
            "PyTorch {} on {}: softmax(relu(x), -1), host clock around the call and a synchronize, \
             median (benches/torch_peer.py).",
            doc["torch"].as_str().unwrap_or("?"),
            doc["device"].as_str().unwrap_or("?")
        );
        if let Some(e) = doc["compile_error"].as_str() {
            note.push_str(&format!(" torch.compile failed: {e}"));
        }
        PeerFigures {
            shapes,
            note: Some(note),
        }
    }

    fn get(&self, rows: u32, len: u32) -> Peer {
        self.shapes
            .iter()
            .find(|(r, l, _)| *r == rows && *l == len)
            .map(|s| s.2)
            .unwrap_or_default()
    }
}

/// Runs `cmd` to completion (stdout captured) or kills it after `timeout`.
fn run_with_timeout(mut cmd: std::process::Command, timeout: Duration) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3 could not be started ({e})"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(status)) => return Err(format!("benches/torch_peer.py exited with {status}")),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "benches/torch_peer.py took longer than {timeout:?}"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for python3 failed ({e})")),
        }
    }
    reader
        .join()
        .map_err(|_| "reading the peer's output failed".to_string())
}

/// A progress bar over the sections, with a log line per step (the bar is hidden when stderr
/// is not a terminal; the lines are not).
struct Progress {
    bar: ProgressBar,
    started: Instant,
}

impl Progress {
    fn new(sections: usize) -> Progress {
        let bar = ProgressBar::new(sections as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar,
            started: Instant::now(),
        }
    }
    fn start(&self, section: &str) {
        self.bar.set_message(section.to_string());
        self.note(&format!("{section}: running"));
    }
    fn note(&self, line: &str) {
        let line = format!("[{:6.1} s] {line}", self.started.elapsed().as_secs_f64());
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
    /// Prints the section's tables at once, so a later failure loses nothing already measured.
    fn done(&self, section: &str, tables: &[Table]) {
        self.note(&format!("{section}: done ({} tables)", tables.len()));
        self.bar.suspend(|| {
            for t in tables {
                println!("{}", t.markdown());
            }
        });
        self.bar.inc(1);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The JSON file: the GPU and toolchain, then every table so far.
#[derive(serde::Serialize)]
struct ReportFile<'a> {
    device: &'a str,
    arch: u32,
    sm_count: u32,
    driver_version: i32,
    nvrtc: (i32, i32),
    quick: bool,
    tables: &'a [Table],
}

fn write_json(path: &Path, info: &grosr::RuntimeInfo, quick: bool, tables: &[Table]) {
    let doc = ReportFile {
        device: &info.device,
        arch: info.arch,
        sm_count: info.sm_count,
        driver_version: info.driver_version,
        nvrtc: info.nvrtc_version,
        quick,
        tables,
    };
    if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default()) {
        eprintln!("could not write {}: {e}", path.display());
    }
}

/// One grouped bar chart per table, log scale, one colour per column.
fn write_plots(dir: &Path, tables: &[Table]) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("could not create {}: {e}", dir.display());
        return;
    }
    for t in tables {
        let path = dir.join(format!("{}.svg", t.id));
        match plot(&path, t) {
            Ok(()) => println!("chart written to {}", path.display()),
            Err(e) => eprintln!("could not draw {}: {e}", path.display()),
        }
    }
}

/// A picture of a small graph of each graph section that ran, beside the charts. Null pointers:
/// a picture needs the graph's shape and records, not buffers.
fn write_graph_pictures(dir: &Path, wanted: &[&str]) {
    use grosr::DevicePtr;
    use workloads::mixed_dag::{self, SMALL};
    let (rows, len) = (4, relu_softmax::SHAPES[0].1);
    let seed = 20;
    let pictures = [
        (
            "pingpong",
            "Ping-pong: 4 pairs (stage 1 → stage 2)".to_string(),
            graphs::pingpong_graph_at(DevicePtr::null(), DevicePtr::null(), 4),
        ),
        (
            "relu_softmax",
            format!("ReLU → Softmax: {rows} rows of {len}, two tasks per row"),
            relu_softmax::two_task_graph_at(DevicePtr::null(), DevicePtr::null(), rows, len),
        ),
        (
            "mixed_dag",
            format!("Mixed DAG: {}, seed {seed}", SMALL.name),
            mixed_dag::generate(&SMALL, seed).and_then(|dag| {
                mixed_dag::task_graph(
                    &dag,
                    DevicePtr::null(),
                    DevicePtr::null(),
                    DevicePtr::null(),
                )
            }),
        ),
    ];
    for (section, title, graph) in pictures {
        if !wanted.contains(&section) {
            continue;
        }
        let path = dir.join(format!("graph-{section}.svg"));
        let drawn = graph
            .map_err(Into::into)
            .and_then(|g| grosr_lab::graph_svg::draw_graph(&g, &title, &path));
        match drawn {
            Ok(true) => println!("graph picture written to {}", path.display()),
            Ok(false) => {}
            Err(e) => eprintln!("could not draw {}: {e}", path.display()),
        }
    }
}

fn plot(path: &Path, t: &Table) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let values: Vec<f64> = t
        .rows
        .iter()
        .flat_map(|r| r.values.iter().flatten().copied())
        .filter(|v| *v > 0.0 && v.is_finite())
        .collect();
    if values.is_empty() {
        return Ok(());
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min) / 2.0;
    let hi = values.iter().copied().fold(0.0, f64::max) * 2.0;
    let rows = t.rows.len();
    let cols = t.columns.len();
    let root = SVGBackend::new(path, (260 + 150 * rows as u32, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&t.title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..rows as f64, (lo..hi).log_scale())?;
    let labels: Vec<String> = t
        .rows
        .iter()
        .map(|r| r.label.chars().take(24).collect())
        .collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.26 && i < labels.len() {
                labels[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc(&t.unit)
        .draw()?;
    let width = 0.8 / cols as f64;
    for c in 0..cols {
        let colour = Palette99::pick(c).to_rgba();
        let bars = t.rows.iter().enumerate().filter_map(|(i, r)| {
            let v = r.values.get(c).copied().flatten()?;
            let x0 = i as f64 + 0.1 + c as f64 * width;
            Some(Rectangle::new(
                [(x0, lo), (x0 + width * 0.9, v)],
                colour.filled(),
            ))
        });
        chart
            .draw_series(bars)?
            .label(t.columns[c].clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
