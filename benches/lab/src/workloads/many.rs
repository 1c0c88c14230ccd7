//! A user-shaped module of 14 task types, the start-up benchmark's large case: the shape of the
//! outside crate whose first build waited 137 s in NVRTC (issue 19). Five types spawn (eight
//! spawn sites, one in a loop), two use the heap, one is a block task, and the rest are the lane
//! and warp arithmetic such a crate carries. [`run`] runs every type once and checks its result,
//! so the module timed is one that works.

use grosr::{DeviceBuffer, DevicePtr, Runtime, RuntimeBuilder};

use crate::{Error, Result};

/// Visits a complete `fanout`-ary tree with `depth` levels below this node: counts itself, spawns
/// its children.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    atomicAdd(task.visited, 1ull);
    if (task.depth > 0)
        for (uint32_t i = 0; i < task.fanout; ++i)
            grosr_spawn_Visit(ctx, Visit{.visited = task.visited, .depth = task.depth - 1, .fanout = task.fanout});
"#
)]
pub struct Visit {
    /// Counts visits.
    pub visited: DevicePtr<u64>,
    /// Levels below this node.
    pub depth: u32,
    /// Children per node.
    pub fanout: u32,
}

/// Fibonacci by recursive spawning: the leaves add their `n`, so `sum` ends as fib(n).
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    if (task.n < 2) {
        atomicAdd(task.sum, (unsigned long long)task.n);
    } else {
        grosr_spawn_Fib(ctx, Fib{.sum = task.sum, .n = task.n - 1});
        grosr_spawn_Fib(ctx, Fib{.sum = task.sum, .n = task.n - 2});
    }
"#
)]
pub struct Fib {
    /// Where the leaves add.
    pub sum: DevicePtr<u64>,
    /// The argument.
    pub n: u32,
    /// Keeps the record 16 bytes.
    pub pad: u32,
}

/// Adds `value` to `counter`.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    atomicAdd(task.counter, task.value);
"#
)]
pub struct Count {
    /// The counter.
    pub counter: DevicePtr<u32>,
    /// What to add.
    pub value: u32,
    /// Keeps the record 16 bytes.
    pub pad: u32,
}

/// `y[i] = a * x[i] + y[i]` over `n` items, the warp's lanes striding.
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    for (uint32_t i = ctx.lane(); i < task.n; i += ctx.width()) task.y[i] = task.a * task.x[i] + task.y[i];
"#
)]
pub struct Axpy {
    /// Input.
    pub x: DevicePtr<f32>,
    /// Input and output.
    pub y: DevicePtr<f32>,
    /// Scale.
    pub a: f32,
    /// Items.
    pub n: u32,
}

/// The dot product of `x` and `y` over `n` items, reduced across the warp into `out`.
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    float s = 0.0f;
    for (uint32_t i = ctx.lane(); i < task.n; i += ctx.width()) s += task.x[i] * task.y[i];
    for (int o = 16; o > 0; o /= 2) s += __shfl_down_sync(0xffffffffu, s, o);
    if (ctx.lane() == 0) atomicAdd(task.out, s);
"#
)]
pub struct Dot {
    /// Input.
    pub x: DevicePtr<f32>,
    /// Input.
    pub y: DevicePtr<f32>,
    /// Where the sum is added.
    pub out: DevicePtr<f32>,
    /// Items.
    pub n: u32,
    /// Keeps the record 32 bytes.
    pub pad: u32,
}

/// `x[i] = max(x[i], 0)` over `n` items.
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    for (uint32_t i = ctx.lane(); i < task.n; i += ctx.width()) task.x[i] = fmaxf(task.x[i], 0.0f);
"#
)]
pub struct Relu {
    /// Data, in place.
    pub x: DevicePtr<f32>,
    /// Items.
    pub n: u32,
    /// Keeps the record 16 bytes.
    pub pad: u32,
}

/// The maximum of `x` over `n` items into `out[0]` (as ordered bits: the inputs are ≥ 0).
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    float m = 0.0f;
    for (uint32_t i = ctx.lane(); i < task.n; i += ctx.width()) m = fmaxf(m, task.x[i]);
    for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (ctx.lane() == 0) atomicMax(task.out, __float_as_uint(m));
"#
)]
pub struct RowMax {
    /// Input (non-negative).
    pub x: DevicePtr<f32>,
    /// The maximum's bits.
    pub out: DevicePtr<u32>,
    /// Items.
    pub n: u32,
    /// Keeps the record 24 bytes.
    pub pad: u32,
}

/// Counts `key`'s hash into one of `bins` bins.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    uint32_t h = task.key * 2654435761u;
    h ^= h >> 15;
    atomicAdd(&task.hist[h % task.bins], 1u);
"#
)]
pub struct Histogram {
    /// The bins.
    pub hist: DevicePtr<u32>,
    /// The key.
    pub key: u32,
    /// How many bins.
    pub bins: u32,
}

/// Allocates a block of `words` words from the device heap, fills it and hands it to [`Consume`].
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    uint32_t* p = ctx.alloc_n<uint32_t>(task.words);
    if (p == nullptr) { ctx.fail(1); return; }
    for (uint32_t i = 0; i < task.words; ++i) p[i] = task.seed + i;
    grosr_spawn_Consume(ctx, Consume{.block = p, .sum = task.sum, .words = task.words});
"#
)]
pub struct Produce {
    /// Where Consume adds the block's words.
    pub sum: DevicePtr<u64>,
    /// The first word's value.
    pub seed: u32,
    /// Words in the block.
    pub words: u32,
}

/// Adds up a block [`Produce`] filled, then frees it.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    unsigned long long s = 0;
    for (uint32_t i = 0; i < task.words; ++i) s += task.block[i];
    atomicAdd(task.sum, s);
    ctx.free(task.block);
"#
)]
pub struct Consume {
    /// The block.
    pub block: DevicePtr<u32>,
    /// Where the sum is added.
    pub sum: DevicePtr<u64>,
    /// Words in the block.
    pub words: u32,
    /// Keeps the record 24 bytes.
    pub pad: u32,
}

/// An inclusive scan of the block's lane ids plus `base` through shared memory; writes the block's
/// total to `out[slot]` and its width to `out[slot + 1]`.
#[grosr::task(
    granularity = "block",
    cuda = r#"
    __shared__ uint32_t partial[32];
    uint32_t v = task.base + ctx.lane();
    for (int o = 1; o < 32; o *= 2) {
        const uint32_t u = __shfl_up_sync(0xffffffffu, v, o);
        if ((ctx.lane() & 31) >= (uint32_t)o) v += u;
    }
    if ((ctx.lane() & 31) == 31) partial[ctx.lane() / 32] = v;
    __syncthreads();
    if (ctx.lane() == 0) {
        uint32_t s = 0;
        for (uint32_t w = 0; w < ctx.width() / 32; ++w) s += partial[w];
        task.out[task.slot] = s;
        task.out[task.slot + 1] = ctx.width();
    }
    __syncthreads();
"#
)]
pub struct BlockScan {
    /// Per-slot totals.
    pub out: DevicePtr<u32>,
    /// Added to every lane id.
    pub base: u32,
    /// Which total.
    pub slot: u32,
}

/// Divide and conquer: a range of more than `grain` items splits in two, a smaller one is a
/// [`Leaf`].
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    if (task.end - task.begin > task.grain) {
        const uint32_t mid = task.begin + (task.end - task.begin) / 2;
        grosr_spawn_Split(ctx, Split{.sum = task.sum, .begin = task.begin, .end = mid, .grain = task.grain});
        grosr_spawn_Split(ctx, Split{.sum = task.sum, .begin = mid, .end = task.end, .grain = task.grain});
    } else {
        grosr_spawn_Leaf(ctx, Leaf{.sum = task.sum, .begin = task.begin, .end = task.end});
    }
"#
)]
pub struct Split {
    /// Where the leaves add.
    pub sum: DevicePtr<u64>,
    /// First item.
    pub begin: u32,
    /// One past the last item.
    pub end: u32,
    /// The largest range a leaf takes.
    pub grain: u32,
    /// Keeps the record 24 bytes.
    pub pad: u32,
}

/// Adds the items `begin..end` to `sum`.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    unsigned long long s = 0;
    for (uint32_t i = task.begin; i < task.end; ++i) s += i;
    atomicAdd(task.sum, s);
"#
)]
pub struct Leaf {
    /// Where the sum is added.
    pub sum: DevicePtr<u64>,
    /// First item.
    pub begin: u32,
    /// One past the last item.
    pub end: u32,
}

/// One stage of a pipeline: scales its row by `stage + 1`, then spawns the next stage.
#[grosr::task(
    granularity = "warp",
    cuda = r#"
    for (uint32_t i = ctx.lane(); i < task.n; i += ctx.width()) task.row[i] *= (float)(task.stage + 1);
    if (ctx.lane() == 0 && task.stage + 1 < task.stages)
        grosr_spawn_Stage(ctx, Stage{.row = task.row, .n = task.n, .stage = task.stage + 1, .stages = task.stages});
"#
)]
pub struct Stage {
    /// The row.
    pub row: DevicePtr<f32>,
    /// Items in the row.
    pub n: u32,
    /// This stage.
    pub stage: u32,
    /// Stages in all.
    pub stages: u32,
    /// Keeps the record 24 bytes.
    pub pad: u32,
}

/// The 14 types, registered (at `Optimize::Speed`, as the lab measures).
pub fn builder() -> RuntimeBuilder {
    Runtime::builder()
        .optimize(grosr::Optimize::Speed)
        .task::<Visit>()
        .task::<Fib>()
        .task::<Count>()
        .task::<Axpy>()
        .task::<Dot>()
        .task::<Relu>()
        .task::<RowMax>()
        .task::<Histogram>()
        .task::<Produce>()
        .task::<Consume>()
        .task::<BlockScan>()
        .task::<Split>()
        .task::<Leaf>()
        .task::<Stage>()
}

/// Runs every type once on `rt` (built from [`builder`]) and checks each result.
pub fn run(rt: &Runtime) -> Result<()> {
    let gpu = rt.gpu();
    let exact = |what: &str, got: u64, want: u64| {
        if got == want {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "many-type module: {what} is {got}, expected {want}"
            )))
        }
    };
    // Float results within f32 rounding of the order they were summed in.
    let close = |what: &str, got: f64, want: f64| {
        if (got - want).abs() <= 1e-4 * want.abs().max(1.0) {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "many-type module: {what} is {got}, expected {want}"
            )))
        }
    };
    let n = 1000u32;
    let ones = DeviceBuffer::from_slice(gpu, &vec![1.0f32; n as usize])?;
    // Axpy turns y from 2s into 3·1 + 2 = 5s, which Dot then reads.
    let y = DeviceBuffer::from_slice(gpu, &vec![2.0f32; n as usize])?;
    let mixed: Vec<f32> = (0..n).map(|i| i as f32 - 500.0).collect();
    let signed = DeviceBuffer::from_slice(gpu, &mixed)?;
    let row = DeviceBuffer::from_slice(gpu, &vec![1.0f32; n as usize])?;
    let u64s = DeviceBuffer::<u64>::zeroed(gpu, 5)?;
    let u32s = DeviceBuffer::<u32>::zeroed(gpu, 4 + 64)?;
    let dot = DeviceBuffer::<f32>::zeroed(gpu, 1)?;
    let at64 = |i: usize| u64s.ptr().add(i as u64);
    let at32 = |i: usize| u32s.ptr().add(i as u64);
    let (visited, fib, produced, split) = (at64(0), at64(1), at64(2), at64(3));
    let (counter, maxbits, scan, hist) = (at32(0), at32(1), at32(2), at32(4));
    let jobs = [
        rt.submit(&[Visit {
            visited,
            depth: 6,
            fanout: 4,
        }])?,
        rt.submit(&[Fib {
            sum: fib,
            n: 20,
            pad: 0,
        }])?,
        rt.submit(
            &(1..=100)
                .map(|v| Count {
                    counter,
                    value: v,
                    pad: 0,
                })
                .collect::<Vec<_>>(),
        )?,
        rt.submit(&[Axpy {
            x: ones.ptr(),
            y: y.ptr(),
            a: 3.0,
            n,
        }])?,
        rt.submit(&[Relu {
            x: signed.ptr(),
            n,
            pad: 0,
        }])?,
        rt.submit(
            &(0..640)
                .map(|key| Histogram {
                    hist,
                    key,
                    bins: 64,
                })
                .collect::<Vec<_>>(),
        )?,
        rt.submit(
            &(0..32)
                .map(|seed| Produce {
                    sum: produced,
                    seed,
                    words: 16,
                })
                .collect::<Vec<_>>(),
        )?,
        rt.submit(&[BlockScan {
            out: scan,
            base: 1,
            slot: 0,
        }])?,
        rt.submit(&[Split {
            sum: split,
            begin: 0,
            end: 100_000,
            grain: 100,
            pad: 0,
        }])?,
        rt.submit(&[Stage {
            row: row.ptr(),
            n,
            stage: 0,
            stages: 5,
            pad: 0,
        }])?,
    ];
    for j in jobs {
        j.wait()?;
    }
    // The second round reads what the first wrote: Dot over y = 3·1 + 2 = 5, RowMax over the ReLU'd data.
    let second = [
        rt.submit(&[Dot {
            x: ones.ptr(),
            y: y.ptr(),
            out: dot.ptr(),
            n,
            pad: 0,
        }])?,
        rt.submit(&[RowMax {
            x: signed.ptr(),
            out: maxbits,
            n,
            pad: 0,
        }])?,
    ];
    for j in second {
        j.wait()?;
    }
    let w64 = u64s.to_vec()?;
    let w32 = u32s.to_vec()?;
    // Counts and integer sums exactly: one lost task shows.
    let nodes: u64 = (0..=6).map(|d| 4u64.pow(d)).sum();
    exact("Visit's count", w64[0], nodes)?;
    exact("fib(20)", w64[1], 6765)?;
    let per_block: u64 = (0..16).sum();
    exact(
        "Produce/Consume's sum",
        w64[2],
        32 * per_block + 16 * (0..32u64).sum::<u64>(),
    )?;
    exact("Split/Leaf's sum", w64[3], 99_999 * 100_000 / 2)?;
    exact("Count's counter", w32[0] as u64, 5050)?;
    exact(
        "Histogram's total",
        w32[4..].iter().map(|&c| c as u64).sum(),
        640,
    )?;
    exact("Consume's executions", rt.executed::<Consume>()?, 32)?;
    let width = w32[3] as u64;
    if width == 0 || width % 32 != 0 {
        return Err(Error::Invalid(format!(
            "many-type module: BlockScan wrote a block width of {width}"
        )));
    }
    exact("BlockScan's total", w32[2] as u64, width * (width + 1) / 2)?;
    // ReLU'd data: no negative left, and the sum of 1..=499.
    let relu = signed.to_vec()?;
    if let Some(v) = relu.iter().find(|v| **v < 0.0) {
        return Err(Error::Invalid(format!("many-type module: Relu left {v}")));
    }
    close(
        "Relu's sum",
        relu.iter().map(|&v| v as f64).sum(),
        124_750.0,
    )?;
    close("RowMax", f32::from_bits(w32[1]) as f64, 499.0)?;
    close("Dot", dot.to_vec()?[0] as f64, 5.0 * n as f64)?;
    close("Stage's row", row.to_vec()?[7] as f64, 120.0)?;
    Ok(())
}
