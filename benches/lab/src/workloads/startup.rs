//! The report's start-up section: what a module's first build costs (NVRTC, no cache) and what a
//! cached build costs beyond CUDA's own context creation, for modules of the sizes users build.

use std::time::{Duration, Instant};

use grosr::{Optimize, Runtime, RuntimeBuilder};

use super::many;
use super::table::Table;
use crate::{Error, Result};

/// A module the section builds: its name, its builder, and a check run on a runtime built from it
/// (the module timed must work).
pub struct Module {
    /// Row label.
    pub name: &'static str,
    /// Registers its task types.
    pub builder: fn() -> RuntimeBuilder,
    /// Runs it once and checks the results.
    pub check: Option<fn(&Runtime) -> Result<()>>,
}

/// The lab's modules: the report's own workloads and the 14-type [`many`] module. The report adds
/// the quickstart example's.
pub fn lab_modules() -> Vec<Module> {
    vec![
        Module {
            name: "report workloads",
            builder: super::builder,
            check: None,
        },
        Module {
            name: "many-type (14 types)",
            builder: many::builder,
            check: Some(many::run),
        },
    ]
}

/// The many-type module's source with one body edited, as a user editing a task would leave it:
/// its cold compile is what a change of one body costs (`cargo bench --bench compile`).
pub fn many_with_one_body_changed() -> Result<String> {
    let source = many::builder().source();
    let body = "atomicAdd(task.counter, task.value);";
    if !source.contains(body) {
        return Err(Error::Invalid(
            "Count's body changed: update this edit".into(),
        ));
    }
    Ok(source.replacen(
        body,
        "atomicAdd(task.counter, task.value + 0u * task.pad);",
        1,
    ))
}

/// The section's first table: each module's cold compile (s) at each [`Optimize`], with no
/// cache. Run it before anything else in the process compiles: NVRTC 13.0.88's fast-compile
/// level gives another module once a full compile has finished in the process
/// (benches/NOTES.md, "Start-up and compile time"), so every `Compile` compile here also comes
/// before the `Speed` ones.
///
/// One cold compile per module and setting, quick or not: the 14-type module is minutes of one
/// core for `Speed`.
pub fn cold_compiles(modules: &[Module], arch: u32) -> Result<Table> {
    let mut cold = Table::new(
        "startup_compile",
        "Start-up: a module's first build, NVRTC without the cache (this machine's CPU)",
        "s",
        false,
        &["Optimize::Speed", "Optimize::Compile"],
    );
    let fast = modules
        .iter()
        .map(|m| cold_compile(&(m.builder)().source(), arch, Optimize::Compile))
        .collect::<Result<Vec<_>>>()?;
    let mut sizes = Vec::new();
    for (m, (fast_secs, fast_cubin)) in modules.iter().zip(fast) {
        let source = (m.builder)().source();
        let (secs, cubin) = cold_compile(&source, arch, Optimize::Speed)?;
        cold.push(m.name, vec![Some(secs), Some(fast_secs)]);
        sizes.push(format!(
            "{}: source {} KB, CUBIN {} KB (Compile: {} KB)",
            m.name,
            source.len() / 1024,
            cubin / 1024,
            fast_cubin / 1024
        ));
    }
    cold.notes.push(format!(
        "One compile each for sm_{arch}, on one thread, before anything else in the process \
         compiled; module sizes: {}.",
        sizes.join("; ")
    ));
    cold.notes.push(
        "The design before issue 19 (0ef7505, every lane body inlined into every scheduler path), \
         recorded on the H200 machine's CPU with NVRTC 13.0: quickstart 5.98 s, report workloads \
         71.9 s, 14-type 177 s at Speed (an outside crate of 14 types: 137 s); benches/NOTES.md \
         has the steps since."
            .into(),
    );
    cold.notes.push(
        "One translation unit per module: a changed body recompiles the module (`cargo bench --bench compile` times it; benches/NOTES.md, \"Start-up and compile time\")."
            .into(),
    );
    Ok(cold)
}

/// The section's second table: a cached build of each module (the default, `Speed`), broken
/// down (ms). The first build fills the cache if needed.
pub fn cached_builds(modules: &[Module]) -> Result<Table> {
    let mut cached = Table::new(
        "startup_cached",
        "Start-up: a cached build (Runtime::builder()...build() with the module in the cache)",
        "ms",
        false,
        &[
            "build",
            "CUDA context",
            "beyond the context",
            "cache lookup",
            "module load",
            "memory",
            "launch",
        ],
    );
    cached.ratios = false;
    for m in modules {
        // The first build fills the cache if needed; the second is the cached start timed. Both
        // silent: the progress bar owns stderr.
        drop((m.builder)().on_compile(|_| {}).build()?);
        let started = Instant::now();
        let rt = (m.builder)().on_compile(|_| {}).build()?;
        let total = started.elapsed();
        let s = rt.info().startup;
        if let Some(check) = m.check {
            check(&rt)?;
        }
        let ms = |d: Duration| Some(d.as_secs_f64() * 1e3);
        cached.push(
            m.name,
            vec![
                ms(total),
                ms(s.context),
                ms(total.saturating_sub(s.context)),
                ms(s.compile),
                ms(s.load),
                ms(s.memory),
                ms(s.launch),
            ],
        );
        if !s.cached {
            cached.notes.push(format!(
                "{}: the second build compiled again (no cache?)",
                m.name
            ));
        }
    }
    cached.notes.push(
        "build = CUDA context + beyond the context; beyond = lookup + load + memory + launch + the rest (checks, source)."
            .into(),
    );
    cached.notes.push(
        "Before the device block was cleared on the GPU and the heap's metadata written there \
         (1723e18, H200, tests' module): beyond the context 67.8–77.3 ms, median 69.4 (memory \
         48–54, launch 10–12)."
            .into(),
    );
    Ok(cached)
}

/// The section's third table: [`Optimize::Tiered`] from nothing, as a user's first and second
/// run would see it (s): a build in a fresh cache folder, of a source no compile has seen (NVRTC
/// keeps a cache of its own, see [`cold_compile`]), until the module's check passed; how long
/// the `Speed` module took to reach the folder in the background, counted from that build's
/// start; then a build of the same module, which loads `Speed`, until its check passed. The
/// first table's `Speed` column is the same first run without tiers.
pub fn tiered_starts(modules: &[Module]) -> Result<Table> {
    let mut table = Table::new(
        "startup_tiered",
        "Start-up: Optimize::Tiered in a fresh cache folder, from build() to the module's check",
        "s",
        false,
        &["first run", "Speed cached after", "next run"],
    );
    table.ratios = false;
    for m in modules {
        let folder = std::env::temp_dir().join(format!(
            "grosr-lab-tiered-{}-{}",
            std::process::id(),
            m.name.split_whitespace().next().unwrap_or("module")
        ));
        let _ = std::fs::remove_dir_all(&folder);
        let unique = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let build = || {
            (m.builder)()
                .define("LAB_TIERED_RUN", unique.as_str())
                .cache_dir(&folder)
                .optimize(Optimize::Tiered)
                .on_compile(|_| {})
                .build()
        };
        let run = |started: Instant| -> Result<(f64, Optimize)> {
            let rt = build()?;
            if let Some(check) = m.check {
                check(&rt)?;
            }
            Ok((started.elapsed().as_secs_f64(), rt.info().startup.tier))
        };
        let started = Instant::now();
        let (first, first_tier) = run(started)?;
        // Both modules' entries (the cache writes an entry whole, by rename). Bounded: the
        // 14-type module's `Speed` is about a minute and a half of one core.
        let entries = || {
            std::fs::read_dir(&folder).map_or(0, |d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "entry"))
                })
                .count()
            })
        };
        while entries() < 2 {
            if started.elapsed() > Duration::from_secs(900) {
                return Err(Error::Invalid(format!(
                    "{}: Optimize::Tiered's Speed module was not in the cache after 900 s",
                    m.name
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ready = started.elapsed().as_secs_f64();
        let (next, next_tier) = run(Instant::now())?;
        let _ = std::fs::remove_dir_all(&folder);
        if first_tier != Optimize::Compile || next_tier != Optimize::Speed {
            table.notes.push(format!(
                "{}: ran {first_tier:?} first and {next_tier:?} next (expected Compile, Speed)",
                m.name
            ));
        }
        table.push(m.name, vec![Some(first), Some(ready), Some(next)]);
    }
    table.notes.push(
        "first run: build() at Optimize::Tiered (the fast compile; Speed starts on a background \
         thread) and the module's check; next run: a build once Speed is in the folder, which \
         loads it. In one process here; a later process finds the folder the same way."
            .into(),
    );
    Ok(table)
}

/// The median of `runs` cold compiles of `source` (seconds) and the CUBIN's size.
pub fn median_compile(
    source: &str,
    arch: u32,
    optimize: Optimize,
    runs: usize,
) -> Result<(f64, usize)> {
    let mut times = Vec::with_capacity(runs.max(1));
    let mut bytes = 0;
    for _ in 0..runs.max(1) {
        let (secs, b) = cold_compile(source, arch, optimize)?;
        times.push(secs);
        bytes = b;
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], bytes))
}

/// One NVRTC compile of `source` as `optimize` has it (seconds, CUBIN bytes), made unique first:
/// the GPU machine's
/// NVRTC 13.0 answered a source it had compiled before, in another process, in 0.06 s (a cache
/// of its own), so a repeated source would time that cache instead of a compile.
pub fn cold_compile(source: &str, arch: u32, optimize: Optimize) -> Result<(f64, usize)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let unique = format!(
        "{source}\n__device__ unsigned grosr_cold_compile_{}_{}_{nanos} = 1u;\n",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    let started = Instant::now();
    let options = grosr::unstable::nvrtc_options(optimize);
    let bytes = grosr::unstable::compile_with(&unique, arch, options)?.len();
    Ok((started.elapsed().as_secs_f64(), bytes))
}
