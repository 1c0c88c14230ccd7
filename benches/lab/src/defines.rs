//! `GROSR_DEFINES`: preprocessor defines from the environment, for experiments without a rebuild.

use grosr::RuntimeBuilder;

/// Adds the defines listed in the environment variable `GROSR_DEFINES` (`NAME=VALUE,NAME`, a
/// bare `NAME` defined empty) to `builder`. Apply it before the builder's own defines, which then
/// win over the environment's. grosr itself reads no environment variable that changes the code
/// it generates; the lab's builders offer this one.
pub fn env_defines(builder: RuntimeBuilder) -> RuntimeBuilder {
    parse(&std::env::var("GROSR_DEFINES").unwrap_or_default())
        .into_iter()
        .fold(builder, |b, (name, value)| b.define(name, value))
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
