//! [`Tuning`]: the scheduler's and the heap's settings that change the generated code, and the
//! `#define` lines that carry them (and diagnostics) into the module's source.

use crate::error::{Error, Result};

/// Settings of the scheduler and the device heap, compiled into the module (set with
/// [`RuntimeBuilder::tuning`](crate::RuntimeBuilder::tuning)). The defaults are the measured
/// best on an H200; a field that differs from its default becomes a `#define GROSR_<FIELD>` line
/// at the top of the source, so a default runtime compiles (and caches) the same source as ever.
///
/// ```
/// let t = grosr::Tuning { steals: 8, ..grosr::Tuning::default() };
/// let src = grosr::Runtime::builder().tuning(t).source();
/// assert!(src.starts_with("#define GROSR_STEALS 8\n"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// The scheduler's `__launch_bounds__` minimum of resident blocks per SM, 1..=8 (default
    /// 2): more blocks give the compiler fewer registers per thread.
    pub min_blocks_per_sm: u32,
    /// Chained tasks a warp runs without a scheduling round (default 128; 0 turns the bypass off).
    pub bypass_hops: u32,
    /// Longest back-off of an idle warp between polls, in ns, 32..=1_000_000 (default 1024).
    pub idle_max_ns: u32,
    /// Random victims an idle warp tries to steal from per turn, at most 64 (default 4).
    pub steals: u32,
    /// How long the heap waits for a slab swap before it takes the slow path, in ns (default
    /// 20 000; 0: no bound).
    pub heap_swap_wait_ns: u64,
    /// How long an allocation may stay on the heap's slow path before it fails, in ns, at least 1
    /// (default 50 000 000).
    pub heap_slow_max_ns: u64,
    /// The scheduler's shared-memory carveout in percent, 0..=100 (default `None`: the least
    /// shared memory that keeps the occupancy, the rest going to L1).
    pub smem_carveout: Option<u8>,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            min_blocks_per_sm: 2,
            bypass_hops: 128,
            idle_max_ns: 1024,
            steals: 4,
            heap_swap_wait_ns: 20_000,
            heap_slow_max_ns: 50_000_000,
            smem_carveout: None,
        }
    }
}

impl Tuning {
    /// An [`Error::Config`] naming the first field out of its range.
    pub(super) fn validate(&self) -> Result<()> {
        let check = |ok: bool, what: &str, value: u64| {
            if ok {
                Ok(())
            } else {
                Err(Error::Config(format!("Tuning::{what}, not {value}")))
            }
        };
        let t = self;
        check(
            (1..=8).contains(&t.min_blocks_per_sm),
            "min_blocks_per_sm must be in 1..=8",
            t.min_blocks_per_sm.into(),
        )?;
        check(
            (32..=1_000_000).contains(&t.idle_max_ns),
            "idle_max_ns must be in 32..=1000000",
            t.idle_max_ns.into(),
        )?;
        check(t.steals <= 64, "steals must be at most 64", t.steals.into())?;
        check(
            t.heap_slow_max_ns >= 1,
            "heap_slow_max_ns must be at least 1",
            t.heap_slow_max_ns,
        )?;
        let carveout = t.smem_carveout.unwrap_or(0);
        check(
            carveout <= 100,
            "smem_carveout must be at most 100 (percent)",
            carveout.into(),
        )
    }

    /// The macros that the tuning, the diagnostics and the trace and cancel settings own: a
    /// [`define`](crate::RuntimeBuilder::define) of one of them is refused at build, so that
    /// [`RuntimeInfo`](crate::RuntimeInfo) always says what the module was built with.
    pub(super) const MACROS: [&str; 10] = [
        "GROSR_MIN_BLOCKS_PER_SM",
        "GROSR_BYPASS_HOPS",
        "GROSR_IDLE_MAX_NS",
        "GROSR_STEALS",
        "GROSR_HEAP_SWAP_WAIT_NS",
        "GROSR_HEAP_SLOW_MAX_NS",
        "GROSR_TRACE",
        "GROSR_HEAP_SLOW_COUNTS",
        "GROSR_TRACE_TASKS",
        "GROSR_CANCEL",
    ];

    /// `(macro, value)` for every field that differs from its default (the carveout is set
    /// through the driver, not the source).
    pub(super) fn defines(&self) -> Vec<(String, String)> {
        let d = Tuning::default();
        let fields: [(&str, u64, u64); 6] = [
            (
                "GROSR_MIN_BLOCKS_PER_SM",
                self.min_blocks_per_sm.into(),
                d.min_blocks_per_sm.into(),
            ),
            (
                "GROSR_BYPASS_HOPS",
                self.bypass_hops.into(),
                d.bypass_hops.into(),
            ),
            (
                "GROSR_IDLE_MAX_NS",
                self.idle_max_ns.into(),
                d.idle_max_ns.into(),
            ),
            ("GROSR_STEALS", self.steals.into(), d.steals.into()),
            (
                "GROSR_HEAP_SWAP_WAIT_NS",
                self.heap_swap_wait_ns,
                d.heap_swap_wait_ns,
            ),
            (
                "GROSR_HEAP_SLOW_MAX_NS",
                self.heap_slow_max_ns,
                d.heap_slow_max_ns,
            ),
        ];
        fields
            .into_iter()
            .filter(|(_, value, default)| value != default)
            .map(|(name, value, _)| (name.to_string(), value.to_string()))
            .collect()
    }
}

/// How hard NVRTC works on the scheduler module ([`RuntimeBuilder::optimize`](crate::RuntimeBuilder::optimize)).
///
/// Both compile the same source (the scheduler inlines every task body into each path that runs
/// it). `Speed` gives it every optimization: the fastest code, and a first compile of up to a
/// minute for a module of many task types, almost all of it ptxas. `Compile` asks NVRTC for its
/// lightest fast-compile level (`--Ofast-compile=min`, NVRTC 12.8 and later; older ones compile
/// as `Speed`) on every core (`--split-compile=0`): seconds instead of minutes, and hot paths up to four times slower. Each is cached as its
/// own module, so a cached start costs the same. `Tiered`, the default, takes both: a build whose `Speed` module
/// is in the compile cache loads it; otherwise it compiles and runs the `Compile` module, and
/// compiles `Speed` on a background thread into the cache, where the next build of the same
/// module (in this process or a later one) finds it ([`Startup::tier`](crate::Startup::tier) says
/// which one runs).
///
/// Measured on an H200 and its host (NVRTC 13.0, sm_90; compile bench and `--quick` report):
///
/// | | `Speed` | `Compile` |
/// | --- | ---: | ---: |
/// | first compile, 14 task types (`workloads::many`) | 83.3 s | 3.2–4.2 s |
/// | first compile, the quickstart's 2 types | 4.1 s | 1.4–1.6 s |
/// | chain of dependent spawns, per hop | 0.218 µs | 0.612 µs |
/// | 1M tasks spawned (fan-out 8) | 5151 M/s | 2681 M/s |
/// | ping-pong, 1 pair | 6.06 µs | 9.56 µs |
///
/// The current code compiles the 14 types at `Speed` in 57 s on a 2-core x86 machine (where the
/// table's build took 81 s) and runs the chain at 0.14 µs a hop (H200 and H100). On an H100's
/// 16-core host, a whole cold first process at `Tiered` (context, compile, run, check) takes
/// 1.1 s for the quickstart and 2.2 s for the 14 types, whose `Compile` code runs a task in
/// 6.6 µs and the chain at 0.45 µs a hop.
///
/// ```
/// use grosr::Optimize;
/// // One source for both: only the compiler's effort differs.
/// let quick = grosr::Runtime::builder().optimize(Optimize::Compile);
/// assert_eq!(quick.source(), grosr::Runtime::builder().source());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Optimize {
    /// Every optimization: what [`Tiered`](Optimize::Tiered) runs once it is cached; ask for it
    /// to measure, or to have a first build wait for the fast code.
    Speed,
    /// A first compile of seconds, for the edit-and-run loop while writing task bodies: the
    /// scheduler's hot paths run up to four times slower.
    Compile,
    /// The default: `Speed` from the compile cache when it holds it; otherwise `Compile` now
    /// (from the cache too, after the first time) and `Speed` on a background thread, into the
    /// cache, for the next build. Without a usable cache folder, with NVRTC older than 12.8
    /// (no fast-compile level) or off glibc Linux (no exit hook for the thread) it is `Speed`.
    /// The thread competes with the program for the host's cores for as long as `Speed` takes
    /// (a minute or more for many task types); a process that ends sooner stores nothing, and
    /// its next run starts on `Compile` again. A process that exits while the thread compiles
    /// ends at once with its exit status, skipping the C exit handlers registered before the
    /// thread started (NVRTC's among them, which would unload code the thread runs: a crash).
    #[default]
    Tiered,
}

impl Optimize {
    /// The NVRTC options this setting adds to every compile of the module (`Tiered`: those of
    /// the module it compiles first, `Compile`'s).
    pub(crate) fn nvrtc_options(self) -> &'static [&'static str] {
        match self {
            Optimize::Speed => &[],
            Optimize::Compile | Optimize::Tiered => crate::compile::FAST_COMPILE,
        }
    }
}

/// The macros that [`RuntimeBuilder::diagnostics`](crate::RuntimeBuilder::diagnostics) defines:
/// the scheduler's latency trace and the heap's slow-path counts.
pub(super) const DIAGNOSTICS: [(&str, &str); 2] =
    [("GROSR_TRACE", "1"), ("GROSR_HEAP_SLOW_COUNTS", "1")];

/// The `#define` lines that open the module's source: `settings`' (tuning and diagnostics), then
/// the builder's own, which win where both name a macro. A name that is not a C identifier, or a
/// value spanning lines, becomes an `#error` line instead, so the build fails with NVRTC's
/// message naming it.
pub(super) fn define_lines(settings: &[(String, String)], own: &[(String, String)]) -> String {
    let mut defined = settings.to_vec();
    for (name, value) in own {
        defined.retain(|(n, _)| n != name);
        defined.push((name.clone(), value.clone()));
    }
    let identifier = |n: &str| {
        n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut s = String::new();
    for (name, value) in &defined {
        if identifier(name) && !value.contains(['\n', '\r']) {
            s.push_str(&format!("#define {name} {value}\n"));
        } else {
            let shown: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            s.push_str(&format!(
                "#error grosr cannot define {shown} (RuntimeBuilder::define): \
                 a macro name is a C identifier and its value one line\n"
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{Tuning, define_lines};
    use crate::error::Error;

    fn own(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_come_first_then_the_builders_defines_which_win() {
        let s = define_lines(
            &own(&[("A", "1"), ("B", ""), ("C", "x y")]),
            &own(&[("A", "2"), ("D", "")]),
        );
        assert_eq!(s, "#define B \n#define C x y\n#define A 2\n#define D \n");
        assert_eq!(define_lines(&[], &[]), "");
    }

    #[test]
    fn a_bad_define_becomes_an_error_line_that_names_it() {
        for own in [
            own(&[("1X", "3")]),
            own(&[("A B", "1")]),
            own(&[("V", "a\nb")]),
        ] {
            let s = define_lines(&[], &own);
            assert!(s.starts_with("#error grosr cannot define "), "{s}");
            assert!(!s.contains("#define"), "{s}");
        }
        assert!(define_lines(&[], &own(&[("A B", "")])).contains("define A?B "));
    }

    #[test]
    fn default_tuning_defines_nothing_and_changed_fields_define_their_macro() {
        assert!(Tuning::default().defines().is_empty());
        let t = Tuning {
            min_blocks_per_sm: 4,
            heap_slow_max_ns: 1 << 40,
            smem_carveout: Some(50),
            ..Tuning::default()
        };
        assert_eq!(
            t.defines(),
            own(&[
                ("GROSR_MIN_BLOCKS_PER_SM", "4"),
                ("GROSR_HEAP_SLOW_MAX_NS", "1099511627776")
            ])
        );
    }

    #[test]
    fn tuning_out_of_range_is_a_config_error_that_names_the_field() {
        assert_eq!(Tuning::default().validate(), Ok(()));
        let d = Tuning::default();
        for (t, field) in [
            (
                Tuning {
                    min_blocks_per_sm: 0,
                    ..d
                },
                "min_blocks_per_sm",
            ),
            (
                Tuning {
                    min_blocks_per_sm: 9,
                    ..d
                },
                "min_blocks_per_sm",
            ),
            (
                Tuning {
                    idle_max_ns: 16,
                    ..d
                },
                "idle_max_ns",
            ),
            (Tuning { steals: 65, ..d }, "steals"),
            (
                Tuning {
                    heap_slow_max_ns: 0,
                    ..d
                },
                "heap_slow_max_ns",
            ),
            (
                Tuning {
                    smem_carveout: Some(101),
                    ..d
                },
                "smem_carveout",
            ),
        ] {
            match t.validate() {
                Err(Error::Config(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn rust_defaults_are_the_device_sources_defaults() {
        // A default emits no #define, so the device header's own default is what runs: the two
        // must agree or RuntimeInfo::tuning would report a value the module does not use.
        let default_of = |file: &str, name: &str| -> u64 {
            let src = crate::codegen::device_source(file);
            let line = src
                .lines()
                .find_map(|l| l.trim().strip_prefix(&format!("#define {name} ")))
                .unwrap_or_else(|| panic!("{file} defines no default for {name}"));
            let value = line.split_whitespace().next().unwrap_or_default();
            value
                .parse()
                .unwrap_or_else(|_| panic!("{name}'s default {value:?}"))
        };
        let d = Tuning::default();
        for (file, name, rust) in [
            (
                "grosr_config.cuh",
                "GROSR_MIN_BLOCKS_PER_SM",
                d.min_blocks_per_sm.into(),
            ),
            (
                "grosr_config.cuh",
                "GROSR_BYPASS_HOPS",
                d.bypass_hops.into(),
            ),
            (
                "grosr_config.cuh",
                "GROSR_IDLE_MAX_NS",
                d.idle_max_ns.into(),
            ),
            ("grosr_config.cuh", "GROSR_STEALS", d.steals.into()),
            (
                "grosr_heap_layout.cuh",
                "GROSR_HEAP_SWAP_WAIT_NS",
                d.heap_swap_wait_ns,
            ),
            (
                "grosr_heap_layout.cuh",
                "GROSR_HEAP_SLOW_MAX_NS",
                d.heap_slow_max_ns,
            ),
        ] {
            assert_eq!(default_of(file, name), rust, "{name}");
        }
    }

    #[test]
    fn a_define_of_a_tuning_macro_is_refused_with_the_setting_to_use() {
        for name in Tuning::MACROS {
            let e = crate::Runtime::builder()
                .define(name, "1")
                .build()
                .unwrap_err();
            assert!(
                matches!(&e, Error::Config(m) if m.starts_with(name) && m.contains("tuning")),
                "{name}: {e}"
            );
        }
    }
}
