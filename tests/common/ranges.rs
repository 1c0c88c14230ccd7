//! Range submits and range nodes (`Runtime::submit_range`, `TaskGraph::add_range`): one record
//! run once per item, `ctx.index()` telling the items apart. The CPU backend runs these checks
//! (`tests/cpu_suite.rs`); a GPU runtime refuses ranges for now.
#![allow(dead_code)]

use grosr::graph::{Strategy, TaskGraph};
use grosr::{DeviceBuffer, DevicePtr, Error, Runtime, RuntimeBuilder};

use crate::common::suite::T;
use crate::common::{Fib, Mark};

/// Item `i` counts its run in `hits[i]` and writes `out[i] = 3 i + base`.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let i = ctx.index();
    ctx.atomic_add(task.hits, i, 1u32);
    ctx.write(task.out, i, 3u32 * i + task.base);
})]
pub struct LaneItem {
    pub hits: DevicePtr<u32>,
    pub out: DevicePtr<u32>,
    pub base: u32,
    pub pad: u32,
}

/// A warp per item: row `ctx.index()` of the `cols`-wide matrix `m`, summed by the 32 lanes
/// (a butterfly of shuffles);
/// lane 0 writes `sums[row]` and counts the row's run in `hits[row]`.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let row = ctx.index();
    let mut s = 0u32;
    for c in (ctx.lane()..task.cols).step_by(32) {
        s = s.wrapping_add(ctx.read(task.m, row * task.cols + c));
    }
    let mut total = s;
    let mut d = 16u32;
    while d > 0 {
        total = total.wrapping_add(ctx.shuffle_xor(total, d));
        d = d / 2;
    }
    if ctx.lane() == 0 {
        ctx.write(task.sums, row, total);
        ctx.atomic_add(task.hits, row, 1u32);
    }
})]
pub struct RowSum {
    pub m: DevicePtr<u32>,
    pub sums: DevicePtr<u32>,
    pub hits: DevicePtr<u32>,
    pub cols: u32,
    pub pad: u32,
}

/// A block per item: every thread writes `item + lane` into the item's row of `scratch`
/// (`width` words), meets the others at a barrier, then adds its right neighbour's word into
/// `out[item]`; so `out[item] = width · item + width (width − 1) / 2` only if every thread saw
/// the same item and the barrier held.
#[grosr::task(granularity = "block", rust = |task, ctx| {
    let item = ctx.index();
    let lane = ctx.lane();
    let width = ctx.width();
    ctx.write(task.scratch, item * width + lane, item + lane);
    ctx.sync_threads();
    let right = ctx.read(task.scratch, item * width + (lane + 1) % width);
    ctx.atomic_add(task.out, item, right);
})]
pub struct BlockItem {
    pub scratch: DevicePtr<u32>,
    pub out: DevicePtr<u32>,
}

/// `y[i] = x[i] · total[0]` (wrapping) for item `i`.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let i = ctx.index();
    let t = ctx.read(task.total, 0u32);
    ctx.write(task.y, i, ctx.read(task.x, i).wrapping_mul(t));
})]
pub struct Scale {
    pub x: DevicePtr<u32>,
    pub total: DevicePtr<u32>,
    pub y: DevicePtr<u32>,
}

/// Item `i` spawns a Mark of `flags[i]`: a range's spawns count into its job.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.spawn(Mark { flags: task.flags, index: ctx.index(), pad: 0u32 });
})]
pub struct SpawnEach {
    pub flags: DevicePtr<u32>,
}

/// Counts one run in `count[0]` (a range too long to finish: cancelled or stopped midway).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.atomic_add(task.count, 0u32, 1u64);
})]
pub struct CountItem {
    pub count: DevicePtr<u64>,
}

/// `builder` with the range checks' task types (and Mark and Fib, which they use).
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .task::<LaneItem>()
        .task::<RowSum>()
        .task::<BlockItem>()
        .task::<Scale>()
        .task::<SpawnEach>()
        .task::<CountItem>()
        .task::<Mark>()
        .task::<Fib>()
        .task::<Rendezvous>()
        .task::<WarpCount>()
}

/// A range submit of lane, warp and block tasks runs each item once with its own
/// `ctx.index()`, and counts each as a task; an empty range is done at once, and a plain
/// submit's tasks read index 0.
pub fn range_submits_run_each_item_once_with_its_index(rt: &Runtime) {
    // Lane tasks: more items than one grain, an odd count.
    let n = 100_003u32;
    let hits = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize).unwrap();
    let out = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize).unwrap();
    let before = rt.executed::<LaneItem>().unwrap();
    let item = LaneItem {
        hits: hits.ptr(),
        out: out.ptr(),
        base: 7,
        pad: 0,
    };
    rt.submit_range(&item, n).unwrap().wait_timeout(T).unwrap();
    assert!(
        hits.to_vec().unwrap().iter().all(|&h| h == 1),
        "each item once"
    );
    let want: Vec<u32> = (0..n).map(|i| 3 * i + 7).collect();
    assert_eq!(out.to_vec().unwrap(), want);
    assert_eq!(rt.executed::<LaneItem>().unwrap() - before, u64::from(n));

    // Outside a range the index is 0, for every record of a submit.
    hits.write(&vec![0; n as usize]).unwrap();
    rt.submit(&[item; 3]).unwrap().wait_timeout(T).unwrap();
    assert_eq!(&hits.to_vec().unwrap()[..2], &[3, 0]);

    // Warp tasks, a row each.
    let (rows, cols) = (1000u32, 100u32);
    let m: Vec<u32> = (0..rows * cols).map(|v| v % 97).collect();
    let matrix = DeviceBuffer::from_slice(rt.gpu(), &m).unwrap();
    let sums = DeviceBuffer::<u32>::zeroed(rt.gpu(), rows as usize).unwrap();
    let row_hits = DeviceBuffer::<u32>::zeroed(rt.gpu(), rows as usize).unwrap();
    let task = RowSum {
        m: matrix.ptr(),
        sums: sums.ptr(),
        hits: row_hits.ptr(),
        cols,
        pad: 0,
    };
    rt.submit_range(&task, rows)
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    let want: Vec<u32> = m.chunks(cols as usize).map(|r| r.iter().sum()).collect();
    assert_eq!(sums.to_vec().unwrap(), want);
    assert!(row_hits.to_vec().unwrap().iter().all(|&h| h == 1));

    // Block tasks, a block each.
    let items = 40u32;
    let width = 1024u32; // at least a block's threads
    let scratch = DeviceBuffer::<u32>::zeroed(rt.gpu(), (items * width) as usize).unwrap();
    let sums = DeviceBuffer::<u32>::zeroed(rt.gpu(), items as usize).unwrap();
    let task = BlockItem {
        scratch: scratch.ptr(),
        out: sums.ptr(),
    };
    rt.submit_range(&task, items)
        .unwrap()
        .wait_timeout(T)
        .unwrap();
    let got = sums.to_vec().unwrap();
    // out[0] = w (w − 1) / 2 gives the block's width w; every item then adds w · item.
    let w = (1..=width)
        .find(|w| w * (w - 1) / 2 == got[0])
        .expect("a block width");
    let want: Vec<u32> = (0..items).map(|i| w * i + w * (w - 1) / 2).collect();
    assert_eq!(got, want);

    // Empty.
    let job = rt.submit_range(&item, 0).unwrap();
    assert!(job.is_done().unwrap());
    job.wait_timeout(T).unwrap();
}

/// A range node's successors start after all its items: lane items write `out`, one warp task
/// sums it, a second range node scales it by the sum; under every strategy, relaunched, with
/// the range's spawns counted into the launch.
pub fn range_nodes_release_their_successors_after_every_item(rt: &Runtime) {
    let n = 10_000u32;
    let hits = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize).unwrap();
    let out = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize).unwrap();
    let total = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let total_hits = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
    let y = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize).unwrap();
    let flags = DeviceBuffer::<u32>::zeroed(rt.gpu(), n as usize).unwrap();
    let mut g = TaskGraph::new();
    let items = LaneItem {
        hits: hits.ptr(),
        out: out.ptr(),
        base: 1,
        pad: 0,
    };
    let a = g.add_range(items, n).unwrap();
    let sum = g.add(RowSum {
        m: out.ptr(),
        sums: total.ptr(),
        hits: total_hits.ptr(),
        cols: n,
        pad: 0,
    });
    let scale = Scale {
        x: out.ptr(),
        total: total.ptr(),
        y: y.ptr(),
    };
    let c = g.add_range(scale, n).unwrap();
    let spawns = g.add_range(SpawnEach { flags: flags.ptr() }, n).unwrap();
    g.add_edge(a, sum).unwrap();
    g.add_edge(sum, c).unwrap();
    g.add_edge(sum, spawns).unwrap();
    assert_eq!(
        (g.items(a), g.items(sum), g.node_count()),
        (Some(n), Some(1), 4)
    );
    assert!(g.to_dot().contains("LaneItem ×10000"), "{}", g.to_dot());

    let want_out: Vec<u32> = (0..n).map(|i| 3 * i + 1).collect();
    let want_total: u32 = want_out.iter().fold(0, |s, &v| s.wrapping_add(v));
    let want_y: Vec<u32> = want_out
        .iter()
        .map(|v| v.wrapping_mul(want_total))
        .collect();
    for strategy in Strategy::ALL {
        if !strategy.is_resident() {
            rt.stop().unwrap();
        }
        let mut p = g.prepare(rt, strategy).unwrap();
        for launch in 1..=3u32 {
            for b in [&out, &y] {
                b.write(&vec![0; n as usize]).unwrap();
            }
            total.write(&[0]).unwrap();
            let marks = rt.executed::<Mark>().unwrap();
            let r = p.run(T);
            // Lowered strategies have no scheduler to spawn into (as on a GPU): the spawning
            // range fails the launch; everything else ran.
            match strategy.is_resident() {
                true => r.unwrap(),
                false => assert!(
                    matches!(r, Err(Error::TaskFailed { code: -4, .. })),
                    "{r:?}"
                ),
            }
            let what = format!("{strategy:?}, launch {launch}");
            assert_eq!(out.to_vec().unwrap(), want_out, "{what}");
            assert_eq!(total.to_vec().unwrap(), vec![want_total], "{what}");
            assert_eq!(y.to_vec().unwrap(), want_y, "{what}");
            if strategy.is_resident() {
                assert_eq!(
                    rt.executed::<Mark>().unwrap() - marks,
                    u64::from(n),
                    "{what}"
                );
            }
        }
        if !strategy.is_resident() {
            rt.start().unwrap();
        }
        assert!(hits.to_vec().unwrap().iter().all(|&h| h > 0));
    }
    let resident_launches = 3;
    assert!(
        flags
            .to_vec()
            .unwrap()
            .iter()
            .all(|&f| f == resident_launches),
        "each item's Mark ran once a Resident launch"
    );
    assert!(matches!(
        g.add_range(items, 0),
        Err(Error::Config(m)) if m.contains("at least one item")
    ));
}

/// A range of 10^9 items cancelled midway: the job ends `Cancelled`, the items that ran are
/// the ones counted as executed, none runs later, and a job beside it is exact.
pub fn cancelling_a_range_leaves_its_count_and_other_jobs_exact(rt: &Runtime) {
    let count = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
    let before = rt.executed::<CountItem>().unwrap();
    let job = rt
        .submit_range(&CountItem { count: count.ptr() }, 1_000_000_000)
        .unwrap();
    let sum = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
    let fib = rt
        .submit(&[Fib {
            n: 20,
            pad: 0,
            sum: sum.ptr(),
        }])
        .unwrap();
    let deadline = std::time::Instant::now() + T;
    while count.to_vec().unwrap()[0] < 10_000 {
        assert!(std::time::Instant::now() < deadline, "the range never ran");
        std::thread::yield_now();
    }
    job.cancel().unwrap();
    assert_eq!(job.wait_timeout(T), Err(Error::Cancelled));
    fib.wait_timeout(T).unwrap();
    assert_eq!(sum.to_vec().unwrap()[0], 6765, "fib(20) beside it");
    let ran = count.to_vec().unwrap()[0];
    assert!(ran < 1_000_000_000, "cancelled midway");
    assert_eq!(rt.executed::<CountItem>().unwrap() - before, ran);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(count.to_vec().unwrap()[0], ran, "nothing of it ran later");
}

/// A stop while a long range runs ends its job with `Stopped` (no hang), the count exact.
pub fn stopping_ends_a_running_range_with_stopped(rt: &Runtime) {
    let count = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
    let before = rt.executed::<CountItem>().unwrap();
    let job = rt
        .submit_range(&CountItem { count: count.ptr() }, 1_000_000_000)
        .unwrap();
    let deadline = std::time::Instant::now() + T;
    while count.to_vec().unwrap()[0] == 0 {
        assert!(std::time::Instant::now() < deadline, "the range never ran");
        std::thread::yield_now();
    }
    rt.stop().unwrap();
    assert_eq!(job.wait_timeout(T), Err(Error::Stopped));
    let ran = count.to_vec().unwrap()[0];
    assert_eq!(rt.executed::<CountItem>().unwrap() - before, ran);
    rt.start().unwrap();
    crate::common::suite::assert_runtime_runs_tasks(rt);
}

/// Counts its arrival in `arrived[0]`, then spins (at most `max_spins` reads) until `parties`
/// tasks have arrived, and counts in `met[0]` whether they had: tasks that run side by side
/// meet, tasks run one after another on one worker do not.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.atomic_add(task.arrived, 0u32, 1u32);
    let mut spins = 0u32;
    while ctx.read(task.arrived, 0u32) < task.parties && spins < task.max_spins {
        spins = spins + 1;
    }
    ctx.atomic_add(task.met, 0u32, ctx.read(task.arrived, 0u32) / task.parties);
})]
pub struct Rendezvous {
    pub arrived: DevicePtr<u32>,
    pub met: DevicePtr<u32>,
    pub parties: u32,
    pub max_spins: u32,
}

/// A warp task counting one run in `count[0]` (lane 0): a range of these splits to one item.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    if ctx.lane() == 0 {
        ctx.atomic_add(task.count, 0u32, 1u64);
    }
})]
pub struct WarpCount {
    pub count: DevicePtr<u64>,
}

/// Two long lane tasks of one host submit (or a range of 2) on a 2-worker runtime run side by
/// side, as lanes of one warp do on a GPU (a grain of 32 lane tasks had one worker run both).
pub fn a_few_long_lane_tasks_run_side_by_side(rt: &Runtime) {
    for range in [false, true] {
        let arrived = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
        let met = DeviceBuffer::<u32>::zeroed(rt.gpu(), 1).unwrap();
        let task = Rendezvous {
            arrived: arrived.ptr(),
            met: met.ptr(),
            parties: 2,
            max_spins: 50_000_000,
        };
        let job = match range {
            false => rt.submit(&[task; 2]).unwrap(),
            true => rt.submit_range(&task, 2).unwrap(),
        };
        job.wait_timeout(T).unwrap();
        assert_eq!(
            met.to_vec().unwrap()[0],
            2,
            "range: {range}: both tasks met (ran side by side on the two workers)"
        );
    }
}

/// A cancelled range of u32::MAX lane or warp items ends at once, and a job submitted after the
/// cancel runs: pieces are dropped whole, not split grain by grain (4.3 G warp grains would
/// take minutes, the next job waiting behind them).
pub fn a_cancelled_huge_range_ends_promptly(rt: &Runtime) {
    let quick = std::time::Duration::from_secs(10);
    for warp in [false, true] {
        let count = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
        let job = match warp {
            false => rt.submit_range(&CountItem { count: count.ptr() }, u32::MAX),
            true => rt.submit_range(&WarpCount { count: count.ptr() }, u32::MAX),
        }
        .unwrap();
        let deadline = std::time::Instant::now() + T;
        while count.to_vec().unwrap()[0] < 100 {
            assert!(std::time::Instant::now() < deadline, "the range never ran");
            std::thread::yield_now();
        }
        job.cancel().unwrap();
        let after = DeviceBuffer::<u64>::zeroed(rt.gpu(), 1).unwrap();
        let next = rt
            .submit_range(&CountItem { count: after.ptr() }, 1)
            .unwrap();
        let next_outcome = next.wait_timeout(quick);
        let outcome = job.wait_timeout(quick);
        assert_eq!(
            next_outcome,
            Ok(()),
            "warp: {warp}: a job after the cancel runs promptly"
        );
        assert_eq!(
            outcome,
            Err(Error::Cancelled),
            "warp: {warp}: the cancelled range ends promptly"
        );
    }
}
