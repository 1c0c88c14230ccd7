//! `GROSR_DEFINES`: preprocessor defines from the environment, for experiments without a rebuild.

use grosr::{Optimize, RuntimeBuilder, Tuning};

/// Adds the defines listed in the environment variable `GROSR_DEFINES` (`NAME=VALUE,NAME`, a
/// bare `NAME` defined empty) to `builder`. Apply it before the builder's own defines, which then
/// win over the environment's. grosr itself reads no environment variable that changes the code
/// it generates; the lab's builders offer this one.
/// The scheduler's own settings among them (`GROSR_BYPASS_HOPS=0`, `GROSR_TRACE`, ...) go to
/// [`RuntimeBuilder::tuning`] and [`RuntimeBuilder::diagnostics`], which own those macros; a
/// value that is not a number leaves the default and is reported on stderr.
///
/// It also asks for [`Optimize::Speed`]: the lab measures the optimized module, which grosr's
/// default, `Optimize::Tiered`, runs only once it is in the compile cache.
pub fn env_defines(builder: RuntimeBuilder) -> RuntimeBuilder {
    let mut tuning = Tuning::default();
    let mut diagnostics = false;
    let mut builder = builder.optimize(Optimize::Speed);
    for (name, value) in parse(&std::env::var("GROSR_DEFINES").unwrap_or_default()) {
        let number = || {
            value.parse::<u64>().ok().or_else(|| {
                eprintln!("GROSR_DEFINES: {name}={value:?} is not a number; left at its default");
                None
            })
        };
        let narrow = |v: u64| u32::try_from(v).ok();
        match name {
            "GROSR_TRACE" | "GROSR_HEAP_SLOW_COUNTS" => diagnostics = true,
            "GROSR_MIN_BLOCKS_PER_SM" => {
                set(&mut tuning.min_blocks_per_sm, number().and_then(narrow))
            }
            "GROSR_BYPASS_HOPS" => set(&mut tuning.bypass_hops, number().and_then(narrow)),
            "GROSR_IDLE_MAX_NS" => set(&mut tuning.idle_max_ns, number().and_then(narrow)),
            "GROSR_STEALS" => set(&mut tuning.steals, number().and_then(narrow)),
            "GROSR_HEAP_SWAP_WAIT_NS" => set(&mut tuning.heap_swap_wait_ns, number()),
            "GROSR_HEAP_SLOW_MAX_NS" => set(&mut tuning.heap_slow_max_ns, number()),
            _ => builder = builder.define(name, value),
        }
    }
    builder.tuning(tuning).diagnostics(diagnostics)
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// `(name, value)` pairs of a `GROSR_DEFINES` value, blank entries skipped.
fn parse(list: &str) -> Vec<(&str, &str)> {
    list.split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| {
            let (name, value) = d.split_once('=').unwrap_or((d, ""));
            (name.trim(), value.trim())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_values_and_blanks() {
        assert_eq!(
            parse(" GROSR_BYPASS_HOPS=0,,GROSR_TRACE , X = 1 "),
            [("GROSR_BYPASS_HOPS", "0"), ("GROSR_TRACE", ""), ("X", "1")]
        );
        assert!(parse("").is_empty());
    }
}
