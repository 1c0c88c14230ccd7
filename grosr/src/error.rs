//! The one error type of grosr.

use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::sys::CUresult;

/// Everything that can go wrong in grosr, each variant saying what happened and what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The CUDA driver library could not be loaded.
    #[error(
        "no CUDA driver found (libcuda.so): install the NVIDIA driver (grosr needs driver 550 or newer) \
         or add the folder holding libcuda.so to LD_LIBRARY_PATH; without a GPU, GROSR_BACKEND=cpu \
         runs tasks with Rust bodies on host threads"
    )]
    NoDriver,
    /// NVRTC, the CUDA run-time compiler, could not be loaded.
    #[error(
        "NVRTC not found (libnvrtc.so, libnvrtc.so.13 or libnvrtc.so.12): install the CUDA toolkit 12 or 13, \
         or `pip install nvidia-cuda-nvrtc`, and add the folder holding it to LD_LIBRARY_PATH"
    )]
    NoNvrtc,
    /// The driver loaded but reports no usable GPU.
    #[error(
        "no NVIDIA GPU {0} (without one, GROSR_BACKEND=cpu runs tasks with Rust bodies on host threads)"
    )]
    NoDevice(String),
    /// A CUDA driver call failed.
    #[error("CUDA call {call} failed: {}", code.name())]
    Cuda {
        /// The driver function.
        call: &'static str,
        /// The driver's result, e.g. `CUDA_ERROR_OUT_OF_MEMORY` (2).
        code: CudaCode,
    },
    /// NVRTC rejected the generated kernel; the log points at the task body's Rust file and line.
    #[error("NVRTC could not compile the scheduler for {arch}:\n{log}")]
    Compile {
        /// The target, e.g. `sm_90`.
        arch: String,
        /// NVRTC's log.
        log: String,
    },
    /// Two registered task types have the same C name.
    #[error("two task types are both called `{0}` in C: rename one of them")]
    DuplicateTask(&'static str),
    /// A task type that was not registered with the runtime's builder.
    #[error("task type `{0}` is not registered: add `.task::<{0}>()` to the runtime builder")]
    UnregisteredTask(&'static str),
    /// A task body (or the module's other CUDA code) spawns a task type that is not registered:
    /// NVRTC found its `grosr_spawn_<Type>` undefined.
    #[error(
        "{by} spawns `{spawned}`, which is not registered: add `.task::<{spawned}>()` to the runtime builder"
    )]
    UnregisteredSpawn {
        /// Who and where: "task `Fib` (the code at FILE(LINE))", as NVRTC names the body's file
        /// and line (for a Rust body, lines counted through its translation, so near the Rust
        /// line); the place alone where no single body holds it (a prelude helper, say).
        by: String,
        /// The C name of the type it spawns.
        spawned: String,
    },
    /// A Rust body (or helper) calls a `#[grosr::device]` helper that is not registered: NVRTC
    /// found its `grosr_call_<name>` undefined.
    #[error(
        "{by} calls the helper `{helper}`, which is not registered: add `.helper::<{helper}>()` to the runtime builder"
    )]
    UnregisteredHelper {
        /// Who and where, as for [`Error::UnregisteredSpawn`].
        by: String,
        /// The helper's name.
        helper: String,
    },
    /// A builder setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// What was asked for waits on something still running: a graph's previous launch, or the
    /// scheduler holding every SM while a lowered strategy would launch kernels. The message
    /// says what to do.
    #[error("busy: {0}")]
    Busy(String),
    /// The persistent kernel could not be made resident.
    #[error("the scheduler cannot start: {0}")]
    DoesNotFit(String),
    /// A wait ran out of time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    /// A task of the job called `ctx.fail(code)`.
    #[error("task `{task}` failed with code {code}")]
    TaskFailed {
        /// The task type's name.
        task: String,
        /// The code it passed to `ctx.fail`.
        code: i32,
    },
    /// A slot named a task kind the kernel was not built with.
    #[error("the GPU met a task of unknown kind {0}: a record was corrupted or submitted raw")]
    UnknownKind(u32),
    /// Every work queue was full when a task spawned: the spawned task was dropped.
    #[error(
        "work queues overflowed while `{0}` tasks were spawned; tasks were dropped: \
         raise RuntimeBuilder::queue_capacity"
    )]
    QueueOverflow(String),
    /// The device-side protocol stalled (a bounded spin ran out).
    #[error("the scheduler's queue protocol stalled (detail {0}); the runtime is stopped")]
    Protocol(u32),
    /// The GPU faulted (illegal address, trap, ...): the runtime cannot be used any more, and
    /// CUDA lets no further work run in this process.
    #[error(
        "the GPU faulted ({0}); this runtime refuses all work, and CUDA needs a new process to recover"
    )]
    DeviceFault(String),
    /// A task graph has a cycle; the message lists the nodes on it.
    #[error("the task graph has a cycle: {0}")]
    Cycle(String),
    /// The runtime is stopped: call `start` first.
    #[error("the runtime is stopped: call Runtime::start to run tasks again")]
    Stopped,
    /// The job was cancelled ([`Job::cancel`](crate::Job::cancel)): its tasks that had not
    /// started were dropped, those running finished, and what they spawned was dropped.
    #[error("the job was cancelled")]
    Cancelled,
    /// A job finished long ago: its completion slot has been reused by a later job, and whether
    /// it failed is no longer known (failures are remembered for the 4096 latest failed jobs).
    /// Wait for jobs sooner, or keep the first wait's result.
    #[error(
        "the job finished, but its outcome is no longer known: its completion slot was reused \
         and 4096 or more later jobs failed since (wait for a job sooner, or keep its first result)"
    )]
    OutcomeForgotten,
    /// An optional feature cannot run here (a missing library, an old driver, a failed link):
    /// the message says why. Reports print it as "not available: ...".
    #[error("not available: {0}")]
    Unsupported(String),
    /// A task run by the CPU executor did what the GPU would fault on or misbehave at (an
    /// access outside every live allocation, a misaligned one, lanes meeting at different
    /// collectives) or panicked: its job fails with this, other jobs go on.
    #[error("task `{task}` faulted on the CPU executor: {what}")]
    BodyFault {
        /// The task type's name.
        task: String,
        /// What it did.
        what: String,
    },
    /// A file could not be read or written.
    #[error("{action}: {source}")]
    Io {
        /// What was being done, naming the path, e.g. `reading graph.mtx`.
        action: String,
        /// The operating system's error (in an `Arc`, since `Error` is `Clone`).
        source: Arc<std::io::Error>,
    },
}

/// By value, except that [`Error::Io`]'s sources compare by their kind and message
/// (`std::io::Error` has no equality).
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        use Error as E;
        match self {
            E::NoDriver => matches!(other, E::NoDriver),
            E::NoNvrtc => matches!(other, E::NoNvrtc),
            E::NoDevice(a) => matches!(other, E::NoDevice(b) if a == b),
            E::Cuda { call, code } => {
                matches!(other, E::Cuda { call: c, code: k } if call == c && code == k)
            }
            E::Compile { arch, log } => {
                matches!(other, E::Compile { arch: a, log: l } if arch == a && log == l)
            }
            E::DuplicateTask(a) => matches!(other, E::DuplicateTask(b) if a == b),
            E::UnregisteredTask(a) => matches!(other, E::UnregisteredTask(b) if a == b),
            E::UnregisteredSpawn { by, spawned } => {
                matches!(other, E::UnregisteredSpawn { by: b, spawned: s } if by == b && spawned == s)
            }
            E::UnregisteredHelper { by, helper } => {
                matches!(other, E::UnregisteredHelper { by: b, helper: h } if by == b && helper == h)
            }
            E::Config(a) => matches!(other, E::Config(b) if a == b),
            E::Busy(a) => matches!(other, E::Busy(b) if a == b),
            E::DoesNotFit(a) => matches!(other, E::DoesNotFit(b) if a == b),
            E::Timeout(d, w) => matches!(other, E::Timeout(e, x) if d == e && w == x),
            E::TaskFailed { task, code } => {
                matches!(other, E::TaskFailed { task: t, code: c } if task == t && code == c)
            }
            E::UnknownKind(a) => matches!(other, E::UnknownKind(b) if a == b),
            E::QueueOverflow(a) => matches!(other, E::QueueOverflow(b) if a == b),
            E::Protocol(a) => matches!(other, E::Protocol(b) if a == b),
            E::DeviceFault(a) => matches!(other, E::DeviceFault(b) if a == b),
            E::Cycle(a) => matches!(other, E::Cycle(b) if a == b),
            E::Stopped => matches!(other, E::Stopped),
            E::Cancelled => matches!(other, E::Cancelled),
            E::OutcomeForgotten => matches!(other, E::OutcomeForgotten),
            E::Unsupported(a) => matches!(other, E::Unsupported(b) if a == b),
            E::BodyFault { task, what } => {
                matches!(other, E::BodyFault { task: t, what: w } if task == t && what == w)
            }
            E::Io { action, source } => matches!(other, E::Io { action: a, source: s }
                if action == a && source.kind() == s.kind() && source.to_string() == s.to_string()),
        }
    }
}

impl Eq for Error {}

impl Error {
    /// An [`Error::Io`]: `action` says what was being done and names the path.
    pub fn io(action: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            action: action.into(),
            source: Arc::new(source),
        }
    }
}

/// `Result<T, grosr::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A CUDA driver result (`CUresult`): its number and the driver's name for it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CudaCode(pub(crate) CUresult);

impl CudaCode {
    /// The driver's number, e.g. 2 for `CUDA_ERROR_OUT_OF_MEMORY`.
    pub fn number(self) -> i32 {
        self.0 as i32
    }

    /// The driver's name, e.g. `CUDA_ERROR_OUT_OF_MEMORY` (no driver call needed).
    pub fn name(self) -> String {
        result_name(self.0)
    }

    /// Whether CUDA refuses all further work in this process after it (a fault).
    pub fn is_sticky(self) -> bool {
        is_sticky(self.0)
    }
}

impl std::fmt::Debug for CudaCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.number())
    }
}

impl From<cudarc::driver::DriverError> for Error {
    fn from(e: cudarc::driver::DriverError) -> Self {
        Error::Cuda {
            call: "driver",
            code: CudaCode(e.0),
        }
    }
}

/// The driver's name of a result, e.g. `CUDA_ERROR_OUT_OF_MEMORY` (the enum's variant names are
/// the driver's own, so naming one needs no driver call).
pub(crate) fn result_name(code: CUresult) -> String {
    format!("{code:?}")
}

/// Errors after which CUDA refuses all further work in this process.
pub(crate) fn is_sticky(code: CUresult) -> bool {
    use CUresult as R;
    matches!(
        code,
        R::CUDA_ERROR_LAUNCH_FAILED
            | R::CUDA_ERROR_LAUNCH_TIMEOUT
            | R::CUDA_ERROR_ILLEGAL_ADDRESS
            | R::CUDA_ERROR_ILLEGAL_INSTRUCTION
            | R::CUDA_ERROR_MISALIGNED_ADDRESS
            | R::CUDA_ERROR_INVALID_ADDRESS_SPACE
            | R::CUDA_ERROR_INVALID_PC
            | R::CUDA_ERROR_HARDWARE_STACK_ERROR
            | R::CUDA_ERROR_ASSERT
            | R::CUDA_ERROR_ECC_UNCORRECTABLE
    )
}

/// Adds the name of the failing driver call to a cudarc result.
pub(crate) trait CudaContext<T> {
    fn call(self, call: &'static str) -> Result<T>;
}

impl<T> CudaContext<T> for std::result::Result<T, cudarc::driver::DriverError> {
    fn call(self, call: &'static str) -> Result<T> {
        self.map_err(|e| Error::Cuda {
            call,
            code: CudaCode(e.0),
        })
    }
}

/// Device error codes (cuda/grosr_layout.cuh `ErrorCode`) as errors; `kind_name` names kinds.
pub(crate) fn from_device_code(
    code: i32,
    kind: u32,
    detail: u32,
    kind_name: impl Fn(u32) -> String,
) -> Error {
    match code {
        c if c > 0 => Error::TaskFailed {
            task: kind_name(kind),
            code: c,
        },
        -1 => Error::UnknownKind(kind),
        -2 => Error::QueueOverflow(kind_name(kind)),
        -4 => Error::TaskFailed {
            task: kind_name(kind),
            code: -4,
        },
        -5 => Error::Cancelled,
        _ => Error::Protocol(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_error_keeps_its_result_and_is_named_without_a_driver() {
        let e = Error::Cuda {
            call: "cuMemAllocAsync",
            code: CudaCode(CUresult::CUDA_ERROR_OUT_OF_MEMORY),
        };
        assert_eq!(
            e.to_string(),
            "CUDA call cuMemAllocAsync failed: CUDA_ERROR_OUT_OF_MEMORY"
        );
        assert!(matches!(
            e,
            Error::Cuda { code, .. } if code.number() == 2 && code.name() == "CUDA_ERROR_OUT_OF_MEMORY"
        ));
        assert!(is_sticky(CUresult::CUDA_ERROR_LAUNCH_TIMEOUT));
        assert!(is_sticky(CUresult::CUDA_ERROR_ILLEGAL_ADDRESS));
        assert!(!is_sticky(CUresult::CUDA_ERROR_OUT_OF_MEMORY));
    }

    #[test]
    fn the_sticky_errors_are_those_after_which_cuda_refuses_all_work() {
        use CUresult as R;
        // The driver documents each of these as leaving the context unusable for the process.
        let sticky = [
            R::CUDA_ERROR_LAUNCH_FAILED,
            R::CUDA_ERROR_LAUNCH_TIMEOUT,
            R::CUDA_ERROR_ILLEGAL_ADDRESS,
            R::CUDA_ERROR_ILLEGAL_INSTRUCTION,
            R::CUDA_ERROR_MISALIGNED_ADDRESS,
            R::CUDA_ERROR_INVALID_ADDRESS_SPACE,
            R::CUDA_ERROR_INVALID_PC,
            R::CUDA_ERROR_HARDWARE_STACK_ERROR,
            R::CUDA_ERROR_ASSERT,
            R::CUDA_ERROR_ECC_UNCORRECTABLE,
        ];
        for code in sticky {
            assert!(is_sticky(code), "{code:?} is sticky");
        }
        // Errors a caller can recover from: the context stays usable.
        let recoverable = [
            R::CUDA_SUCCESS,
            R::CUDA_ERROR_OUT_OF_MEMORY,
            R::CUDA_ERROR_INVALID_VALUE,
            R::CUDA_ERROR_NOT_READY,
            R::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
            R::CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE,
            R::CUDA_ERROR_TIMEOUT,
            R::CUDA_ERROR_NO_BINARY_FOR_GPU,
        ];
        for code in recoverable {
            assert!(!is_sticky(code), "{code:?} is not sticky");
        }
    }

    #[test]
    fn an_io_error_keeps_its_source_and_says_what_was_done() {
        use std::error::Error as _;
        let e = Error::io(
            "reading graph.mtx",
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        );
        assert_eq!(e.to_string(), "reading graph.mtx: no such file");
        let source = e.source().expect("the io::Error");
        assert_eq!(source.to_string(), "no such file");
        assert_eq!(e.clone(), e);
        assert_ne!(
            e,
            Error::io("reading graph.mtx", std::io::ErrorKind::Other.into())
        );
    }
}
