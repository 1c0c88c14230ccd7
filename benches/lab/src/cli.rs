//! How the examples end: an error is printed as its message and the chain of its causes, and
//! the process exits non-zero.

use std::error::Error as StdError;
use std::process::ExitCode;

/// `e`'s message, then each cause on a line of its own (`  caused by: ...`), leaving out a
/// cause whose text the lines before already contain (many messages embed their source).
pub fn describe(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let line = s.to_string();
        if !text.contains(&line) {
            text.push_str("\n  caused by: ");
            text.push_str(&line);
        }
        source = s.source();
    }
    text
}

/// The exit status of an example's `run()`: success, or the error [described](describe) on
/// standard error after `program: ` and failure.
pub fn exit<E: StdError>(program: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The value after `flag` in a bench's arguments, if any. Benches parse their few flags this
/// way rather than with clap: `cargo bench` passes flags of its own (`--bench`) along.
pub fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("could not load the graph")]
    struct Outer(#[source] crate::Error);

    // D4: the examples printed `Error: NoDriver` (Debug) instead of the message.
    #[test]
    fn errors_read_as_their_message_and_new_causes() {
        let io = crate::Error::Io {
            path: "g.mtx".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        // The Io message quotes its source: not repeated.
        assert_eq!(describe(&io), "g.mtx: no such file");
        assert_eq!(
            describe(&Outer(io)),
            "could not load the graph\n  caused by: g.mtx: no such file"
        );
        let e = crate::Error::from(grosr::Error::NoDriver);
        assert_eq!(describe(&e), grosr::Error::NoDriver.to_string());
        assert_eq!(exit("x", Ok::<(), crate::Error>(())), ExitCode::SUCCESS);
        assert_eq!(exit("x", Err(e)), ExitCode::FAILURE);
    }
}
