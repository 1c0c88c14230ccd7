//! Compiles the generated scheduler of every example, workload and test-task set with NVRTC for
//! the supported architectures (sm_75 to sm_100). Needs NVRTC but no GPU. Without NVRTC the test says so and passes,
//! unless GROSR_REQUIRE_NVRTC=1 (as CI sets), when it fails.

mod common;
#[path = "common/graph.rs"]
mod graph;
#[path = "common/heap.rs"]
mod heap;
#[path = "../examples/quickstart.rs"]
mod quickstart;
#[path = "common/ranges.rs"]
mod ranges;
#[path = "common/rust_bodies.rs"]
mod rust_bodies;
#[path = "common/soak.rs"]
mod soak;

use grosr::Optimize::{self, Compile, Speed};

/// (name, source, setting) of every module the examples, the report and the tests build.
fn units() -> Vec<(&'static str, String, Optimize)> {
    vec![
        ("tests/common", common::builder().source(), Speed),
        ("examples/quickstart", quickstart::builder().source(), Speed),
        (
            "grosr_lab::workloads",
            grosr_lab::workloads::builder().source(),
            Speed,
        ),
        (
            "grosr_lab::bfs",
            grosr_lab::bfs::gpu::builder().source(),
            Speed,
        ),
        (
            "grosr_lab::workloads::alloc",
            grosr_lab::workloads::alloc::builder(0).source(),
            Speed,
        ),
        ("tests/gpu_alloc", heap::alloc_builder().source(), Speed),
        (
            "grosr_lab::workloads::contention",
            grosr_lab::workloads::contention::builder().source(),
            Speed,
        ),
        (
            "grosr_lab::workloads::mixed_dag",
            grosr_lab::workloads::mixed_dag::builder().source(),
            Speed,
        ),
        (
            "tests/gpu_graph",
            graph::register(grosr_lab::workloads::builder()).source(),
            Speed,
        ),
        (
            "grosr_lab::workloads::many",
            grosr_lab::workloads::many::builder().source(),
            Speed,
        ),
        (
            "tests/common, Optimize::Compile",
            common::builder().source(),
            Compile,
        ),
        (
            "tests/common, traced",
            common::builder().trace(4096).source(),
            Speed,
        ),
        (
            "tests/common, cancellable",
            common::builder().cancellable(true).source(),
            Compile,
        ),
        (
            "tests/common, traced and cancellable",
            common::builder().trace(4096).cancellable(true).source(),
            Compile,
        ),
        (
            "grosr_lab::workloads, Optimize::Compile",
            grosr_lab::workloads::builder().source(),
            Compile,
        ),
        (
            "grosr_lab::workloads::many, Optimize::Compile",
            grosr_lab::workloads::many::builder().source(),
            Compile,
        ),
    ]
}

/// The units above, and those only a GPU run needs compiled: the soak's module (CI leaves it out
/// of the check below to keep its time; its CUDA is plain).
fn cache_units() -> Vec<(&'static str, String, Optimize)> {
    let mut u = units();
    // The GPU tests build these at `Speed` (units() compiles the cancellable one at `Compile`,
    // to keep CI's time).
    u.push((
        "tests/common, cancellable, Speed",
        common::builder().cancellable(true).source(),
        Speed,
    ));
    u.push((
        "tests/common, traced and cancellable, Speed",
        common::builder().trace(4096).cancellable(true).source(),
        Speed,
    ));
    u.push(("tests/gpu_soak", soak::builder().source(), Speed));
    u.push((
        "tests/gpu_alloc, traced",
        heap::alloc_builder().trace(4096).source(),
        Speed,
    ));
    u.push((
        "tests/gpu_rust_bodies",
        rust_bodies::builder().source(),
        Speed,
    ));
    u
}

#[test]
fn generated_kernels_compile_for_every_supported_architecture() {
    if let Err(e) = grosr::unstable::nvrtc_available() {
        assert!(
            std::env::var("GROSR_REQUIRE_NVRTC").as_deref() != Ok("1"),
            "GROSR_REQUIRE_NVRTC=1 but {e}"
        );
        eprintln!("skipping: {e}");
        return;
    }
    // Every unit for Hopper (the GPU we measure on); the report's workloads, whose task types take
    // every granularity, for every supported architecture (arch-specific code lives in the
    // shared runtime). Each
    // (unit, architecture) pair on its own thread, as many at once as there are cores: NVRTC is
    // thread-safe, and this test is most of CI's time.
    let jobs: Vec<(&str, String, Optimize, u32)> = units()
        .into_iter()
        .flat_map(|(name, source, optimize)| {
            let archs: &[u32] = if name == "grosr_lab::workloads" {
                &[75, 80, 90, 100]
            } else {
                &[90]
            };
            archs
                .iter()
                .map(move |&arch| (name, source.clone(), optimize, arch))
                .collect::<Vec<_>>()
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((name, source, optimize, arch)) = jobs.get(i) else {
                        break;
                    };
                    let options = grosr::unstable::nvrtc_options(*optimize);
                    let cubin = grosr::unstable::compile_with(source, *arch, options)
                        .unwrap_or_else(|e| panic!("{name} for sm_{arch}: {e}"));
                    assert!(
                        cubin.len() > 1024,
                        "{name} for sm_{arch}: a {}-byte CUBIN",
                        cubin.len()
                    );
                    assert_eq!(
                        &cubin[..4],
                        b"\x7fELF",
                        "{name} for sm_{arch}: not an ELF image"
                    );
                }
            });
        }
    });
}

#[test]
fn an_error_in_a_body_points_at_the_rust_file_and_line() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    #[grosr::task(cuda = r#"
        this_is_not_cuda(task.x);
    "#)]
    struct Broken {
        x: u32,
    }
    let line = line!() - 6;
    let source = grosr::Runtime::builder().task::<Broken>().source();
    let err = grosr::unstable::compile(&source, 90)
        .unwrap_err()
        .to_string();
    let expect = format!("tests/nvrtc_compile.rs({})", line + 1);
    assert!(
        err.contains(&expect) && err.contains("this_is_not_cuda"),
        "expected {expect} in:\n{err}"
    );
}

/// Spawns a `Pair` naming its fields (C++20 designated initialisers): in the Rust field order.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    if (task.n > 0) grosr_spawn_Pair(ctx, Pair{.out = task.out, .n = task.n - 1});
"#
)]
pub struct Pair {
    pub out: grosr::DevicePtr<u32>,
    pub n: u32,
    pub pad: u32,
}

/// The same spawn with the fields named out of the Rust struct's order.
#[grosr::task(
    granularity = "lane",
    cuda = r#"
    if (task.n > 0) grosr_spawn_Swapped(ctx, Swapped{.n = task.n - 1, .out = task.out});
"#
)]
pub struct Swapped {
    pub out: grosr::DevicePtr<u32>,
    pub n: u32,
    pub pad: u32,
}

#[test]
fn a_spawn_naming_its_fields_out_of_the_rust_order_is_a_compile_error() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    let fast = grosr::unstable::nvrtc_options(Compile);
    let source = grosr::Runtime::builder().task::<Pair>().source();
    grosr::unstable::compile_with(&source, 90, fast).unwrap();
    let source = grosr::Runtime::builder().task::<Swapped>().source();
    let err = grosr::unstable::compile_with(&source, 90, fast).unwrap_err();
    let grosr::Error::Compile { log, .. } = &err else {
        panic!("expected a compile error, got {err}");
    };
    // NVRTC 13.0: "tests/nvrtc_compile.rs(180): error: out-of-order initializers are nonstandard".
    assert!(
        log.contains("tests/nvrtc_compile.rs(") && log.contains("out-of-order initializers"),
        "expected the body's place and the order in:\n{log}"
    );
}

/// Spawns `Orphan`, which the first module below does not register; the spawn under `#ifdef`
/// and the prelude's macro named like a spawn helper are fine.
#[grosr::task(cuda = r#"
    if (task.n > 0) grosr_spawn_Orphan(ctx, Orphan{task.n - 1, 0u});
#ifdef GROSR_TEST_EXTRA
    grosr_spawn_Extra(ctx, task.n);
#endif
    grosr_spawn_Pair(ctx, task.n);
"#)]
pub struct Parent {
    pub n: u32,
    pub pad: u32,
}

#[grosr::task(cuda = "")]
pub struct Orphan {
    pub n: u32,
    pub pad: u32,
}

/// `builder`'s module compiled through the builder (`precompile`: build's own path, whose errors
/// name the calling task), at `Compile` for sm_90, in a cache folder of its own removed after.
fn precompiled(builder: grosr::RuntimeBuilder) -> grosr::Result<grosr::Precompiled> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("grosr-nvrtc-{}-{n}", std::process::id()));
    let compiled = builder
        .optimize(Compile)
        .cache_dir(&dir)
        .on_compile(|_| {})
        .precompile(90);
    let _ = std::fs::remove_dir_all(&dir);
    compiled
}

#[test]
fn spawning_a_type_that_is_not_registered_is_an_error_naming_it_the_task_and_the_place() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    let fast = grosr::unstable::nvrtc_options(Compile);
    let pair = "#define grosr_spawn_Pair(ctx, n) ((void)(n))";
    let source = grosr::Runtime::builder()
        .prelude(pair)
        .task::<Parent>()
        .source();
    let err = grosr::unstable::compile_with(&source, 90, fast).unwrap_err();
    let grosr::Error::UnregisteredSpawn { by, spawned } = &err else {
        panic!("expected UnregisteredSpawn, got {err}");
    };
    assert_eq!(spawned, "Orphan");
    assert!(by.contains("tests/nvrtc_compile.rs("), "{by}");
    assert!(err.to_string().contains("add `.task::<Orphan>()`"), "{err}");
    // Through the builder (build and precompile), the error names the spawning task too.
    let err = precompiled(grosr::Runtime::builder().prelude(pair).task::<Parent>()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("task `Parent` (the code at ")
            && message.contains("tests/nvrtc_compile.rs(")
            && message
                .contains(") spawns `Orphan`, which is not registered: add `.task::<Orphan>()`"),
        "{message}"
    );
    // Registered, it compiles: neither the spawn under #ifdef nor the macro is one.
    let source = grosr::Runtime::builder()
        .prelude(pair)
        .task::<Parent>()
        .task::<Orphan>()
        .source();
    grosr::unstable::compile_with(&source, 90, fast).unwrap();
}

/// A Rust body that spawns [`RsOrphan`], which the module below does not register.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    if task.n > 0u32 {
        ctx.spawn(RsOrphan { n: task.n - 1u32, pad: 0u32 });
    }
})]
pub struct RsParent {
    pub n: u32,
    pub pad: u32,
}

#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.fail(task.n as i32);
})]
pub struct RsOrphan {
    pub n: u32,
    pub pad: u32,
}

#[test]
fn a_rust_body_spawning_an_unregistered_type_names_the_task_and_the_type() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    let err = precompiled(grosr::Runtime::builder().task::<RsParent>()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("task `RsParent` (the code at ")
            && message.contains(
                ") spawns `RsOrphan`, which is not registered: add `.task::<RsOrphan>()`"
            ),
        "{message}"
    );
    // Registered, it compiles.
    precompiled(
        grosr::Runtime::builder()
            .task::<RsParent>()
            .task::<RsOrphan>(),
    )
    .unwrap();
}

/// A helper that [`CallsHalve`] calls; the module below does not register it.
#[grosr::device]
fn halve(x: u32) -> u32 {
    x / 2u32
}

#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.fail(halve(task.n) as i32);
})]
pub struct CallsHalve {
    pub n: u32,
    pub pad: u32,
}

#[test]
fn a_rust_body_calling_an_unregistered_helper_names_the_task_and_the_helper() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    let builder = || grosr::Runtime::builder().task::<CallsHalve>();
    let err = precompiled(builder()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, grosr::Error::UnregisteredHelper { helper, .. } if helper == "halve")
            && message.starts_with("task `CallsHalve` (the code at ")
            && message.contains("add `.helper::<halve>()`"),
        "{message}"
    );
    // Registered, it compiles.
    precompiled(builder().helper::<halve>()).unwrap();
}

/// `f32`'s `add` (`std::ops::Add` in scope) passes rustc and the macro, which has no types;
/// the translation's pointer offset (`grosr::rs::ptr_add`) takes pointers only.
mod number_add {
    use std::ops::Add;

    #[grosr::task(granularity = "lane", rust = |task, ctx| {
        let y = task.v.add(0.75f32);
        ctx.write(task.out, 0u32, y);
    })]
    pub struct AddsFloats {
        pub out: grosr::DevicePtr<f32>,
        pub v: f32,
        pub pad: u32,
    }
}

#[test]
fn a_numbers_add_is_refused_rather_than_taken_for_a_pointer_offset() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    let fast = grosr::unstable::nvrtc_options(Compile);
    let source = grosr::Runtime::builder()
        .task::<number_add::AddsFloats>()
        .source();
    match grosr::unstable::compile_with(&source, 90, fast) {
        Err(grosr::Error::Compile { log, .. }) => assert!(log.contains("ptr_add"), "{log}"),
        other => panic!("f32::add compiled as a pointer offset: {other:?}"),
    }
}

#[test]
fn every_module_keeps_the_heap_global_that_the_host_fills() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    // A module whose kernels never allocate still exports grosr_heap (cuModuleGetGlobal needs it).
    for source in [
        grosr::Runtime::builder().source(),
        grosr_lab::workloads::alloc::builder(0).source(),
    ] {
        let cubin = grosr::unstable::compile(&source, 90).unwrap();
        let has = |s: &[u8]| cubin.windows(s.len()).any(|w| w == s);
        assert!(has(b"grosr_heap\0"), "no grosr_heap symbol");
        assert!(has(b"grosr_heap_probe\0"));
    }
}

#[test]
fn the_while_graph_module_compiles_relocatable_and_whole_program() {
    if let Err(e) = grosr::unstable::nvrtc_available() {
        assert!(
            std::env::var("GROSR_REQUIRE_NVRTC").as_deref() != Ok("1"),
            "GROSR_REQUIRE_NVRTC=1 but {e}"
        );
        eprintln!("skipping: {e}");
        return;
    }
    use grosr_lab::bfs::while_graph::{self as wg, WHILE_LEVEL_KERNEL, WHILE_NEXT_KERNEL};
    // ELF e_type: 1 = relocatable (for the driver's linker), 2 = executable (cuModuleLoadData).
    let e_type = |c: &[u8]| u16::from_le_bytes([c[16], c[17]]);
    let has = |c: &[u8], s: &str| c.windows(s.len()).any(|w| w == s.as_bytes());
    for arch in [75, 80, 90, 100] {
        let rdc = wg::compile_rdc(arch).unwrap_or_else(|e| panic!("-rdc=true for sm_{arch}: {e}"));
        assert_eq!(&rdc[..4], b"\x7fELF", "sm_{arch}: not an ELF image");
        assert_eq!(
            e_type(&rdc),
            1,
            "sm_{arch}: -rdc=true should give a relocatable CUBIN"
        );
        let direct = wg::compile_direct(arch).unwrap_or_else(|e| panic!("sm_{arch}: {e}"));
        assert_eq!(
            e_type(&direct),
            2,
            "sm_{arch}: a whole-program CUBIN is executable"
        );
        for c in [&rdc, &direct] {
            for k in [
                WHILE_LEVEL_KERNEL,
                WHILE_NEXT_KERNEL,
                "cudaGraphSetConditional",
            ] {
                assert!(has(c, &format!("{k}\0")), "sm_{arch}: no symbol {k}");
            }
        }
    }
    // Linking needs a GPU context (cuLinkCreate) and the toolkit's libcudadevrt.a: the GPU test
    // tests/gpu_bfs.rs (while_*) covers it.
    match wg::find_cudadevrt() {
        Some(p) => eprintln!(
            "libcudadevrt.a found at {} (linked by the GPU tests)",
            p.display()
        ),
        None => eprintln!(
            "libcudadevrt.a not found here: the device-runtime link is only checked on a GPU machine"
        ),
    }
}

/// Fills the compile cache (`GROSR_CACHE_DIR`) with every unit of `cache_units` for one architecture
/// (`GROSR_FILL_ARCH`, default 90), a unit per core at once, so a GPU machine handed that folder
/// skips NVRTC (`GROSR_FILL_ONLY`, below, narrows it). Not a check: run it on purpose
/// (`-- --ignored fill_the_compile_cache`).
#[test]
#[ignore = "fills the compile cache for a GPU run"]
fn fill_the_compile_cache() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    let arch = std::env::var("GROSR_FILL_ARCH")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(90);
    // `Compile` units first, all of them done before any `Speed` compile: NVRTC 13.0.88's
    // fast-compile level gives a different module (3-5x the size, compiled 5-10x longer) in a
    // process where a compile without it has finished (benches/NOTES.md, "Start-up and compile
    // time"), and the cache must hold what a fresh process builds.
    // GROSR_FILL_ONLY='a|b' keeps the units named exactly a or b (a device call that measures a
    // few report sections fills only their modules).
    let only = std::env::var("GROSR_FILL_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split('|').any(|w| name == w);
    let (fast, full): (Vec<_>, Vec<_>) = cache_units()
        .into_iter()
        .filter(|(name, _, _)| wanted(name))
        .partition(|(_, _, optimize)| *optimize == Compile);
    for units in [fast, full] {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    while let Some((name, source, optimize)) =
                        units.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        let options = grosr::unstable::nvrtc_options(*optimize);
                        let c = grosr::unstable::compile_cached(source, arch, options)
                            .unwrap_or_else(|e| panic!("{name} for sm_{arch}: {e}"));
                        eprintln!(
                            "{name}: sm_{arch} {}",
                            if c.cached { "cached" } else { "compiled" }
                        );
                    }
                });
            }
        });
    }
}

/// `precompile` fills the builder's cache folder without a GPU, and the same module is then a
/// cache hit: the lookup `build` makes (the same call) finds it.
#[test]
fn precompile_fills_the_cache_folder_that_build_reads() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("grosr-precompile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let builder = || {
        quickstart::builder()
            .optimize(Compile)
            .cache_dir(&dir)
            .on_compile(|_| {})
    };
    let first = builder().precompile(90).unwrap();
    assert!(!first.cached && first.module_bytes > 1024, "{first:?}");
    let again = builder().precompile(90).unwrap();
    assert!(again.cached, "{again:?}");
    assert_eq!(again.module_bytes, first.module_bytes);
    // Another architecture is another module.
    let entries = || std::fs::read_dir(&dir).unwrap().count();
    let before = entries();
    assert!(!builder().precompile(75).unwrap().cached);
    assert_eq!(entries(), before + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// NVRTC 13 has no sm_70: asking it is an error that says so and what to use, not NVRTC's bare
/// "invalid value for --gpu-architecture".
#[test]
fn an_architecture_the_nvrtc_version_dropped_is_a_clear_error() {
    let Ok(version) = grosr::unstable::nvrtc_version() else {
        return;
    };
    let got = quickstart::builder().optimize(Compile).precompile(70);
    if version.0 >= 13 {
        assert!(
            matches!(got, Err(grosr::Error::Unsupported(ref m)) if m.contains("sm_70") && m.contains("NVRTC 12")),
            "{got:?}"
        );
    } else {
        assert!(got.is_ok(), "{got:?}");
    }
}

/// Rust-syntax bodies (`grosr::body`): one of each granularity, with the subset's statements,
/// math, collectives, atomics and a spawn by field names, translate to CUDA that NVRTC compiles.
#[test]
fn rust_bodies_translate_to_cuda_that_nvrtc_compiles() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    use grosr::DevicePtr;
    // The grosr::rs helpers' overloads on every kind of operand, in a warp task.
    #[grosr::task(granularity = "warp", rust = |task, ctx| {
        let m = ctx.read(task.x, task.row);
        if ctx.all(m > 0.0) && ctx.lane() == 0 {
            ctx.atomic_add(task.done, 0u32, 1u32);
        }
        let mut tries = 0u8;
        while !ctx.any(m == 0.1) && tries < 3 {
            tries = tries.wrapping_add(200);
        }
        let q = (m * 256.0) as u8;
        let mut hist = [0u32; 4];
        hist[(q % 4) as usize] += 1;
        for _ in 0..4 {
            hist[0] <<= 1;
        }
        let d: i32 = (task.len as i32 - 7).abs();
        if d == -1 || !(hist[0] > 2) {
            ctx.write(task.x, task.row, (d as f32) * 0.5 + (q as f32) - (hist[1] as f32));
        }
    })]
    pub struct RustOverloads {
        pub x: DevicePtr<f32>,
        pub done: DevicePtr<u32>,
        pub row: u32,
        pub len: u32,
    }
    #[grosr::task(granularity = "lane", rust = |task, ctx| {
        let mut bits = [0u32; 4];
        let mut k = 0u32;
        while k < 4 {
            bits[k as usize] = !(task.n >> k) & 1;
            k += 1;
        }
        let odd = if task.n % 2 == 1 { 1u32 } else { 0 };
        ctx.atomic_max(task.hits, 1u32, bits[0] + odd);
        if task.n > 0 {
            ctx.spawn(RustStep { hits: task.hits, n: task.n - 1, pad: 0 });
        } else {
            loop {
                break;
            }
            return;
        }
    })]
    pub struct RustStep {
        pub hits: DevicePtr<u32>,
        pub n: u32,
        pub pad: u32,
    }
    #[grosr::task(granularity = "block", rust = |task, ctx| {
        let t0 = ctx.globaltimer();
        for i in 0..=task.n {
            if i % ctx.width() == ctx.lane() {
                ctx.write(task.out, i, (i as f64).sqrt() + 1.5f64);
            }
        }
        ctx.sync_threads();
        if ctx.lane() == 0 && ctx.globaltimer() < t0 {
            ctx.fail(1);
        }
    })]
    pub struct RustBlock {
        pub out: DevicePtr<f64>,
        pub n: u32,
        pub pad: u32,
    }
    #[grosr::device]
    fn blend(a: f32, b: f32, w: f32) -> f32 {
        let d = b - a;
        if w <= 0.0 {
            return a;
        }
        a + d * w
    }
    #[grosr::device]
    fn blended_sum(ctx: &grosr::body::Ctx, p: DevicePtr<f32>, n: u32) -> f32 {
        let mut s = 0.0f32;
        for i in 0..n {
            s = blend(s, s + p_at(ctx, p, i), 1.0);
        }
        s
    }
    // A helper a helper calls: registered first.
    #[grosr::device]
    fn p_at(ctx: &grosr::body::Ctx, p: DevicePtr<f32>, i: u32) -> f32 {
        ctx.read(p, i)
    }
    #[grosr::task(granularity = "lane", rust = |task, ctx| {
        let total = blended_sum(ctx, task.out, 4u32);
        ctx.write(task.out, 0u32, blend(task.a, task.b, 0.25) + total);
    })]
    pub struct RustMix {
        pub out: DevicePtr<f32>,
        pub a: f32,
        pub b: f32,
    }
    // The GPU test's tasks (tests/common/rust_bodies.rs), the ones above and the range checks'
    // (`ctx.index()`), in one module.
    let source = rust_bodies::builder()
        .task::<ranges::LaneItem>()
        .task::<ranges::RowSum>()
        .task::<ranges::BlockItem>()
        .task::<ranges::Scale>()
        .task::<ranges::SpawnEach>()
        .task::<ranges::CountItem>()
        .task::<common::Mark>()
        .helper::<p_at>()
        .helper::<blend>()
        .helper::<blended_sum>()
        .task::<RustOverloads>()
        .task::<RustStep>()
        .task::<RustBlock>()
        .task::<RustMix>()
        .source();
    let options = grosr::unstable::nvrtc_options(Compile);
    let cubin = grosr::unstable::compile_with(&source, 90, options)
        .unwrap_or_else(|e| panic!("the Rust bodies' module: {e}"));
    assert_eq!(&cubin[..4], b"\x7fELF");
}

/// The sum over the warp by butterfly: a helper that meets its other lanes.
#[grosr::device(granularity = "warp")]
fn butterfly(ctx: &grosr::body::Ctx, x: u32) -> u32 {
    let mut s = x;
    let mut m = 16u32;
    while m > 0u32 {
        s += ctx.shuffle_xor(s, m);
        m >>= 1u32;
    }
    s
}

/// A warp task using the subset's warp scratch, shuffles up and down, and the helper.
#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let buf = ctx.warp_shared::<u32, 32>();
    let up = ctx.shuffle_up(ctx.lane(), 1u32) + ctx.shuffle_down(ctx.lane(), 1u32);
    ctx.write(buf, ctx.lane(), up.count_ones());
    ctx.sync_warp();
    let s = butterfly(ctx, ctx.read(buf, 31u32 - ctx.lane()));
    ctx.write(task.out, ctx.lane(), s + ctx.read_volatile(task.out, 32u32));
    if ctx.lane() == 0u32 {
        ctx.spawn_queued(Helped { out: task.out });
    }
})]
pub struct Helped {
    pub out: grosr::DevicePtr<u32>,
}

/// A warp helper named like a function of the runtime (`grosr::warp_sum`), beside a body that
/// calls both: helper calls go through `grosr_call_<name>`, so no name is redefined.
#[grosr::device(granularity = "warp")]
fn warp_sum(ctx: &grosr::body::Ctx, x: f32) -> f32 {
    ctx.warp_sum(x) * 0.5f32
}

#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let a = ctx.warp_sum(1.0f32);
    let b = warp_sum(ctx, 2.0f32);
    ctx.write(task.out, ctx.lane(), a + b);
})]
pub struct SameNames {
    pub out: grosr::DevicePtr<f32>,
}

/// A lane task calling the warp helper: a lane has no other lanes to meet.
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    ctx.write(task.out, 0u32, butterfly(ctx, 1u32));
})]
pub struct Unhelped {
    pub out: grosr::DevicePtr<u32>,
}

#[test]
fn a_warp_helper_compiles_for_warp_tasks_and_is_a_build_error_in_a_lane_task() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    let fast = grosr::unstable::nvrtc_options(Compile);
    let ok = grosr::Runtime::builder()
        .helper::<butterfly>()
        .helper::<warp_sum>()
        .task::<Helped>()
        .task::<SameNames>()
        .source();
    grosr::unstable::compile_with(&ok, 90, fast).unwrap();
    let bad = grosr::Runtime::builder()
        .helper::<butterfly>()
        .task::<Unhelped>()
        .source();
    let err = grosr::unstable::compile_with(&bad, 90, fast).unwrap_err();
    let grosr::Error::Compile { log, .. } = &err else {
        panic!("expected a compile error, got {err}");
    };
    // NVRTC 13.0: "static assertion failed with "grosr: this ... helper meets its other lanes
    // ..." ... detected during instantiation of ... at line 560 of tests/nvrtc_compile.rs".
    assert!(
        log.contains("of tests/nvrtc_compile.rs") && log.contains("meets its other lanes"),
        "expected the call's place and why in:\n{log}"
    );
    assert!(!log.contains("warning"), "{log}");
}

/// `powf` and `mul_add` of an `f32` with unsuffixed float arguments, which rustc types `f32`
/// (as `max` / `min` and the operators take them).
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let y = task.x.powf(2.0) + task.x.mul_add(2.0, 1.0) + task.x.mul_add(task.x, 0.5);
    ctx.write(task.out, 0u32, y + task.x.powi(2) + task.x.max(0.5));
})]
pub struct LiteralMathArgs {
    pub out: grosr::DevicePtr<f32>,
    pub x: f32,
    pub pad: u32,
}

#[test]
fn math_methods_take_unsuffixed_literals_in_the_receivers_type() {
    if grosr::unstable::nvrtc_available().is_err() {
        return;
    }
    let fast = grosr::unstable::nvrtc_options(Compile);
    let source = grosr::Runtime::builder().task::<LiteralMathArgs>().source();
    grosr::unstable::compile_with(&source, 90, fast).unwrap();
}
