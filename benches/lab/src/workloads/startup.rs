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

/// The section's second table: a cached build of each module (`Speed`, as the lab asks), broken
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
        let speed = || (m.builder)().optimize(Optimize::Speed).on_compile(|_| {});
        drop(speed().build()?);
        let started = Instant::now();
        let rt = speed().build()?;
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
        "beyond the context = build − CUDA context (the context is made on a thread of its own while the cache is read, so the lookup may overlap it): load + memory + launch + the rest (checks, source)."
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
/// run would see it (s), each run a process of its own (`child(module index, folder, define,
/// wait)` gives the command; the report runs itself, and the child calls [`tiered_child`]):
/// a run in a fresh cache folder, of a source no compile has seen (NVRTC keeps a cache of its
/// own, see [`cold_compile`]), from its start until the module's check passed; when the `Speed`
/// module reached the folder from that run's background thread (the run waits for it before it
/// ends: a process that ends sooner stores nothing); then a second run, which loads `Speed`. A
/// process each, not one for all: NVRTC 13.0 compiles `Optimize::Compile` slower, into a larger
/// module, once a full compile has finished in the process (benches/NOTES.md, "Start-up and
/// compile time"), which in one process would time the background compile's aftermath. The
/// first table's `Speed` column is the same first run without tiers.
pub fn tiered_starts(
    modules: &[Module],
    child: &dyn Fn(usize, &std::path::Path, &str, bool) -> Result<std::process::Command>,
) -> Result<Table> {
    let mut table = Table::new(
        "startup_tiered",
        "Start-up: Optimize::Tiered in a fresh cache folder, a process from its start to the module's check",
        "s",
        false,
        &["first run", "Speed cached after", "next run"],
    );
    table.ratios = false;
    for (index, m) in modules.iter().enumerate() {
        let folder =
            std::env::temp_dir().join(format!("grosr-lab-tiered-{}-{index}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        let unique = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        // Removed however the runs end (the folder holds compiled modules).
        struct Remove(std::path::PathBuf);
        impl Drop for Remove {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let _remove = Remove(folder.clone());
        let run = |wait| run_child(&mut child(index, &folder, &unique, wait)?, m.name);
        let runs = run(true).and_then(|first| Ok((first, run(false)?)));
        // A failed row is a note: the section's other rows and tables still count.
        let (first, next) = match runs {
            Ok(runs) => runs,
            Err(e) => {
                table.notes.push(e.to_string());
                table.push(m.name, vec![None, None, None]);
                continue;
            }
        };
        if first.tier != "Compile" || next.tier != "Speed" {
            table.notes.push(format!(
                "{}: ran {} first and {} next (expected Compile, Speed)",
                m.name, first.tier, next.tier
            ));
        }
        table.push(
            m.name,
            vec![Some(first.checked), Some(first.ended), Some(next.checked)],
        );
    }
    table.notes.push(
        "first run: a process that builds at Optimize::Tiered (the fast compile; Speed starts on \
         a background thread), runs the module's check and then waits for Speed to reach the \
         folder; next run: a process that loads it. Times from each process's spawn."
            .into(),
    );
    Ok(table)
}

/// What one child process of [`tiered_starts`] saw: when its check passed and when it ended (s
/// from its spawn), and which tier ran.
struct ChildRun {
    checked: f64,
    ended: f64,
    tier: String,
}

/// Runs `command` (a report child running [`tiered_child`]) to its end: at most 900 s, the
/// 14-type module's `Speed` being about a minute and a half of one core.
fn run_child(command: &mut std::process::Command, name: &str) -> Result<ChildRun> {
    use std::io::BufRead;
    let started = Instant::now();
    let mut process = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Invalid(format!("{name}: could not start a child report: {e}")))?;
    let stdout = process
        .stdout
        .take()
        .ok_or_else(|| Error::Invalid(format!("{name}: the child report has no output")))?;
    let (lines, got) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = lines.send((line, started.elapsed()));
        }
    });
    let limit = Duration::from_secs(900);
    let mut checked = None;
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match got.recv_timeout(left) {
            Ok((Ok(line), at)) => {
                if let Some(tier) = line.strip_prefix("tiered-child checked ") {
                    checked = Some((at.as_secs_f64(), tier.trim().to_string()));
                }
            }
            // Its output closed: it has ended (or is ending).
            Ok((Err(_), _)) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = process.kill();
                let _ = process.wait();
                return Err(Error::Invalid(format!(
                    "{name}: a tiered start had not ended after {limit:?}"
                )));
            }
        }
    }
    // Its output has closed; it ends within the same bound (a line that was not text also
    // ends the reading).
    let status = loop {
        match process.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = process.kill();
                let _ = process.wait();
                return Err(Error::Invalid(format!(
                    "{name}: a tiered start had not ended after {limit:?}"
                )));
            }
            Err(e) => return Err(Error::Invalid(format!("{name}: {e}"))),
        }
    };
    let ended = started.elapsed().as_secs_f64();
    match checked {
        Some((checked, tier)) if status.success() => Ok(ChildRun {
            checked,
            ended,
            tier,
        }),
        _ => Err(Error::Invalid(format!(
            "{name}: a tiered start failed ({status}) before its check passed"
        ))),
    }
}

/// One run of [`tiered_starts`], in a process of its own: builds `m` at [`Optimize::Tiered`] in
/// `folder` (with a device variable named after `unique`, so that no compile has seen its
/// source), runs its check, prints `tiered-child checked <tier>` and, with `wait` and a
/// background compile under way, waits (at most 900 s) until both modules are in the folder.
pub fn tiered_child(m: &Module, folder: &std::path::Path, unique: &str, wait: bool) -> Result<()> {
    if unique.is_empty() || !unique.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::Invalid(format!(
            "a tiered start's name {unique:?} must be letters and digits"
        )));
    }
    // A device variable, not a define: NVRTC 13.0's own cache answered the 14-type module's
    // `Speed` in 0.1 s when the only difference was a macro no code used (session 31).
    let rt = (m.builder)()
        .cuda(
            format!("__device__ unsigned lab_tiered_run_{unique} = 1u;"),
            &[],
        )
        .cache_dir(folder)
        .optimize(Optimize::Tiered)
        .on_compile(|_| {})
        .build()?;
    if let Some(check) = m.check {
        check(&rt)?;
    }
    let startup = rt.info().startup;
    println!("tiered-child checked {:?}", startup.tier);
    drop(rt);
    // Nothing more comes to the folder when the build ran `Speed` or started no compile.
    let wait = wait && startup.optimizing;
    // The cache writes an entry whole, by rename: a counted one is complete.
    let entries = || {
        std::fs::read_dir(folder).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "entry"))
            })
            .count()
        })
    };
    let started = Instant::now();
    while wait && entries() < 2 {
        if started.elapsed() > Duration::from_secs(900) {
            return Err(Error::Invalid(format!(
                "{}: Optimize::Tiered's Speed module was not in the cache after 900 s",
                m.name
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> std::process::Command {
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn a_child_run_times_its_check_and_its_end() {
        let run = run_child(
            &mut sh("echo noise; echo tiered-child checked Compile; sleep 0.3"),
            "test",
        )
        .unwrap();
        assert_eq!(run.tier, "Compile");
        assert!(
            run.checked < run.ended && run.ended >= 0.3,
            "{} {}",
            run.checked,
            run.ended
        );
    }

    #[test]
    fn a_child_that_fails_or_never_checks_is_an_error() {
        for script in ["echo tiered-child checked Speed; exit 3", "echo nothing"] {
            let e = run_child(&mut sh(script), "m").err().expect(script);
            assert!(e.to_string().contains("m: a tiered start failed"), "{e}");
        }
    }
}
