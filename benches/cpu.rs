//! `cargo bench --bench cpu`: the CPU backend's task throughput on this machine's cores (no GPU,
//! driver or NVRTC), so a slowdown of the host executor shows in CI's machine class. Issue 21
//! asks ≥ 10 M lane tasks/s on 2 cores for tiny tasks.
//!
//! Each case runs `--runs N` times (default 5) after one warm-up run, checks every item's mark
//! after each run, and prints the median. `--threads N` sets the workers (default: the cores).

use std::time::{Duration, Instant};

use grosr::graph::{Strategy, TaskGraph};
use grosr::{Backend, DeviceBuffer, DevicePtr, Runtime};

/// Marks `flags[index]`: a tiny lane task (one checked atomic).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.atomic_add(task.flags, task.index, 1u32);
})]
pub struct Tiny {
    pub flags: DevicePtr<u32>,
    pub index: u32,
    pub pad: u32,
}

/// Marks `flags[ctx.index()]`: the same work as one record over a range.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.atomic_add(task.flags, ctx.index(), 1u32);
})]
pub struct TinyItem {
    pub flags: DevicePtr<u32>,
}

/// A 5-way spawn tree of `depth` levels below this node, marking `flags[id]` (ids in heap order).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.atomic_add(task.flags, task.id, 1u32);
    if task.depth > 0 {
        for c in 1u32..6u32 {
            ctx.spawn(Tree { flags: task.flags, id: task.id * 5 + c, depth: task.depth - 1 });
        }
    }
})]
pub struct Tree {
    pub flags: DevicePtr<u32>,
    pub id: u32,
    pub depth: u32,
}

const T: Duration = Duration::from_secs(60);

/// A case: its name, its task count and one run of it.
type Case<'a> = (&'static str, u32, Box<dyn FnMut() + 'a>);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| grosr_lab::cli::flag_value(&args, flag).and_then(|v| v.parse().ok());
    let runs = value("--runs").unwrap_or(5).max(1);
    let threads = value("--threads")
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let rt = Runtime::builder()
        .backend(Backend::Cpu)
        .cpu_threads(threads)
        .task::<Tiny>()
        .task::<TinyItem>()
        .task::<Tree>()
        .build()
        .expect("a CPU runtime");
    println!("CPU backend, {threads} worker threads, median of {runs} runs (M tasks/s):");

    let n = 1u32 << 20;
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize).expect("flags");
    let records: Vec<Tiny> = (0..n)
        .map(|index| Tiny {
            flags: flags.ptr(),
            index,
            pad: 0,
        })
        .collect();
    let item = TinyItem { flags: flags.ptr() };
    let mut range_graph = TaskGraph::new();
    range_graph.add_range(item, n).expect("a range node");
    let mut range_node = range_graph
        .prepare(&rt, Strategy::Resident)
        .expect("prepared");
    // 1 + 5 + .. + 5^8 tasks.
    let depth = 8u32;
    let tree_tasks = (5u32.pow(depth + 1) - 1) / 4;
    let tree_flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), tree_tasks as usize).expect("flags");

    let cases: Vec<Case> = vec![
        (
            "1M tiny lane tasks, one submit",
            n,
            Box::new(|| rt.submit(&records).unwrap().wait_timeout(T).unwrap()),
        ),
        (
            "1M tiny lane tasks, one range submit",
            n,
            Box::new(|| rt.submit_range(&item, n).unwrap().wait_timeout(T).unwrap()),
        ),
        (
            "1M tiny lane tasks, one range node",
            n,
            Box::new(|| range_node.run(T).unwrap()),
        ),
    ];
    for (name, tasks, mut run) in cases {
        let m = median(runs, &flags, tasks, &mut *run);
        println!("  {name:<44} {m:>8.1}");
    }
    let tree = Tree {
        flags: tree_flags.ptr(),
        id: 0,
        depth,
    };
    let mut run_tree = || rt.submit(&[tree]).unwrap().wait_timeout(T).unwrap();
    let m = median(runs, &tree_flags, tree_tasks, &mut run_tree);
    println!(
        "  {:<44} {m:>8.1}",
        format!("5-way spawn tree, {tree_tasks} tasks")
    );
}

/// The median rate over `runs` timed runs of `run` (after one warm-up), in M tasks/s; each run
/// must mark each of `flags`' first `tasks` words once.
fn median(runs: usize, flags: &DeviceBuffer<u32>, tasks: u32, run: &mut dyn FnMut()) -> f64 {
    let zero = vec![0u32; flags.len()];
    let mut rates = Vec::with_capacity(runs);
    for r in 0..=runs {
        flags.write(&zero).unwrap();
        let t = Instant::now();
        run();
        let secs = t.elapsed().as_secs_f64();
        let marks = flags.to_vec().unwrap();
        assert!(
            marks[..tasks as usize].iter().all(|&f| f == 1),
            "every task ran once"
        );
        if r > 0 {
            rates.push(f64::from(tasks) / secs / 1e6);
        }
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}
