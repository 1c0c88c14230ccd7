//! The lab's error type: grosr's errors, plus what reading and checking inputs and results adds.

use std::path::PathBuf;

use cudarc::driver::DriverError;

/// Everything that can go wrong in a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file (a graph, say) is malformed; `line` is 1-based.
    #[error("line {line}: {message}")]
    Parse {
        /// The 1-based line the problem was found on.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// An input file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A graph breaks the rules of [`Csr`](crate::bfs::Csr) (offsets that decrease or do not end
    /// at the number of targets, a target that is not a vertex, an edge stored one way only, ...).
    #[error("malformed graph: {0}")]
    Graph(String),
    /// A result failed validation (a BFS parent array breaking a Graph500 rule, a task that did
    /// not run, say).
    #[error("validation failed: {0}")]
    Invalid(String),
    /// A CUDA driver call the lab makes itself failed.
    #[error("CUDA call {call} failed: {}", error_name(code))]
    Cuda {
        /// The driver function.
        call: &'static str,
        /// The driver's error.
        code: DriverError,
    },
    /// grosr failed.
    #[error(transparent)]
    Grosr(#[from] grosr::Error),
}

/// `Result<T, grosr_lab::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds the name of the failing driver call to a cudarc result.
pub trait CallName<T> {
    /// The result, its error naming `call`.
    fn call(self, call: &'static str) -> Result<T>;
}

impl<T> CallName<T> for std::result::Result<T, DriverError> {
    fn call(self, call: &'static str) -> Result<T> {
        self.map_err(|code| Error::Cuda { call, code })
    }
}

/// The driver's name for `e`, e.g. `CUDA_ERROR_OUT_OF_MEMORY`.
fn error_name(e: &DriverError) -> String {
    match e.error_name() {
        Ok(name) => name.to_string_lossy().into_owned(),
        Err(_) => format!("CUresult {}", e.0 as i32),
    }
}
