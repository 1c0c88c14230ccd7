//! `Optimize::Tiered`'s second tier: the `Speed` module compiled on a thread of its own into the
//! compile cache, for later builds to load.
//!
//! One such compile per module and folder runs at a time in a process (`RUNNING`, left by a
//! guard even if the compile panics). The thread holds nothing of the caller's, and its
//! failures are said once on stderr (a later build would otherwise start it again and again in
//! silence). A process may end while the thread is inside NVRTC: libc's `exit` then runs
//! NVRTC's own exit handler, which unloads code the thread is running (SIGSEGV or SIGABRT in 10
//! of 60 exits of a C model against NVRTC 13.0; through this module, a test's child process
//! ended by SIGSEGV within three exits). So the first background compile registers an exit
//! handler that runs before NVRTC's: handlers run in reverse order of registration, and NVRTC
//! registers its own during the process's first compile, so ours is registered only after one
//! (a one-line kernel first if none has run). While a compile is in flight it flushes C's
//! streams and ends the process at once with the status `exit` was given. Rust's stdout is
//! flushed before `exit` runs. Where no such handler exists (targets other than glibc Linux),
//! nothing compiles in the background.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{compile_with, open_cache, warn_once};

/// What [`compile_in_background`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Background {
    /// Started the compile on a thread of its own (detached: nothing waits for it).
    Started,
    /// The same compile into the same folder already runs in this process.
    Running,
    /// Nothing: the folder cannot be used (the compile would be lost), the process could not
    /// end safely during it (see the module doc), or no thread started.
    Not,
}

/// The (folder, key) pairs compiling now.
static RUNNING: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
/// How many background compiles are inside NVRTC (the exit handler reads it).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Whether this target can compile in the background at all (see the module doc).
pub(crate) fn possible() -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu"))
}

/// Registers the exit handler, after NVRTC's: NVRTC registers its own during a process's first
/// compile, so one comes first if none has yet (a kernel of one line, milliseconds), then ours.
/// Whether it is registered.
fn guard_exit() -> bool {
    if !possible() {
        return false;
    }
    if !super::COMPILED.load(Ordering::SeqCst) {
        let warm = "extern \"C\" __global__ void grosr_nvrtc_warm() {}";
        if compile_with(warm, 75, &[]).is_err() && !super::COMPILED.load(Ordering::SeqCst) {
            return false;
        }
    }
    exit_guard::installed()
}

/// Compiles `source` for `sm_<arch>` with `extra` into the cache folder `dir` on a thread of its
/// own, for later builds to load.
pub(crate) fn compile_in_background(
    dir: PathBuf,
    source: String,
    arch: u32,
    extra: &'static [&'static str],
) -> Background {
    if !guard_exit() {
        return Background::Not;
    }
    let Ok((Some(cache), key)) = open_cache(Some(dir.clone()), &source, arch, extra) else {
        return Background::Not;
    };
    // One folder by one name: `cache` and `./cache/` are the same compile.
    let dir = dir.canonicalize().unwrap_or(dir);
    let Some(claim) = Claim::take(dir, key.clone()) else {
        return Background::Running;
    };
    let spawned = std::thread::Builder::new()
        .name("grosr-compile-speed".into())
        .spawn(move || {
            let _claim = claim;
            let stored = compile_with(&source, arch, extra).and_then(|c| cache.store(&key, &c));
            if let Err(e) = stored {
                warn_once(format!(
                    "grosr: Optimize::Tiered's background compile of the Speed module failed, so \
                     later builds run the fast-compile module again: {e}"
                ));
            }
        });
    // A thread that did not start dropped its claim with the closure.
    match spawned {
        Ok(_) => Background::Started,
        Err(_) => Background::Not,
    }
}

/// A compile's place in `RUNNING` and `IN_FLIGHT`, given back when it is dropped (a panic
/// included).
struct Claim((PathBuf, String));

impl Claim {
    fn take(dir: PathBuf, key: String) -> Option<Claim> {
        let job = (dir, key);
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains(&job) {
            return None;
        }
        running.push(job.clone());
        // Before the thread exists: an exit from here on waits for nothing.
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        Some(Claim(job))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        RUNNING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|j| *j != self.0);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod exit_guard {
    use std::ffi::{c_int, c_void};
    use std::sync::OnceLock;
    use std::sync::atomic::Ordering;

    unsafe extern "C" {
        /// glibc: `f(status, arg)` when the process calls `exit`, before earlier handlers.
        fn on_exit(f: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
        /// C's streams, every one when given null.
        fn fflush(stream: *mut c_void) -> c_int;
        /// Ends the process now, with no further exit handler.
        fn _exit(status: c_int) -> !;
    }

    extern "C" fn leave_now(status: c_int, _: *mut c_void) {
        if super::IN_FLIGHT.load(Ordering::SeqCst) > 0 {
            // SAFETY: null flushes every stream; _exit ends the process (see the module doc).
            unsafe {
                fflush(std::ptr::null_mut());
                _exit(status)
            }
        }
    }

    /// Registers the handler once; whether it is registered.
    pub(super) fn installed() -> bool {
        static DONE: OnceLock<bool> = OnceLock::new();
        // SAFETY: leave_now is a plain function that lives as long as the process.
        *DONE.get_or_init(|| unsafe { on_exit(leave_now, std::ptr::null_mut()) } == 0)
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod exit_guard {
    /// No handler to end the process safely during a compile: no background compile.
    pub(super) fn installed() -> bool {
        false
    }
}

// Not under loom, whose build leaves the runtime out (the slow source is its module).
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::compile::Scratch;
    use std::time::{Duration, Instant};

    /// A module whose `Speed` compile takes seconds: the scheduler with no task types.
    fn slow_source() -> String {
        crate::Runtime::builder().source()
    }

    fn ready() -> bool {
        if super::super::nvrtc_available().is_err() || !possible() {
            eprintln!("skipping: no NVRTC, or no background compiles on this target");
            return false;
        }
        true
    }

    #[test]
    fn one_compile_per_module_and_folder_runs_at_a_time_and_lands_in_the_cache() {
        if !ready() {
            return;
        }
        let dir = Scratch::new("once");
        let source = slow_source();
        let first = compile_in_background(dir.0.clone(), source.clone(), 90, &[]);
        assert_eq!(first, Background::Started);
        // The same folder by another name is the same compile.
        let again = compile_in_background(dir.0.join("."), source.clone(), 90, &[]);
        assert_eq!(again, Background::Running);
        let waited = Instant::now();
        while super::super::cached_in(Some(dir.0.clone()), &source, 90, &[])
            .unwrap()
            .is_none()
        {
            assert!(
                waited.elapsed() < Duration::from_secs(600),
                "no entry after 600 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Its claim is given back once stored (the thread's last step): then it may run again.
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(600),
                "the claim was kept"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(RUNNING.lock().unwrap().is_empty());
    }

    #[test]
    fn a_background_compile_needs_a_folder_it_can_use() {
        if !ready() {
            return;
        }
        // A file where the folder should be: the compile would be lost, so none starts.
        let file = Scratch::new("file");
        std::fs::write(&file.0, b"not a folder").unwrap();
        let started = compile_in_background(file.0.clone(), "x".into(), 90, &[]);
        assert_eq!(started, Background::Not);
    }

    /// The child's side of the test below: start a compile of seconds, then end the process.
    const CHILD: &str = "GROSR_TEST_BACKGROUND_EXIT_DIR";
    /// How long the child waits between starting the compile and ending, in ms.
    const DELAY: &str = "GROSR_TEST_BACKGROUND_EXIT_AFTER_MS";

    #[test]
    fn a_process_that_ends_during_a_background_compile_exits_cleanly_with_its_status() {
        if let Some(dir) = std::env::var_os(CHILD) {
            let started = compile_in_background(PathBuf::from(dir), slow_source(), 90, &[]);
            assert_eq!(started, Background::Started);
            // Into the compile (it takes seconds), at a point that differs from run to run.
            let ms = std::env::var(DELAY).map_or(0, |d| d.parse().unwrap_or(0));
            std::thread::sleep(Duration::from_millis(ms));
            std::process::exit(7);
        }
        if !ready() {
            return;
        }
        let name = "compile::background::tests::\
                    a_process_that_ends_during_a_background_compile_exits_cleanly_with_its_status";
        // Without the exit handler, about one exit in six ended by SIGSEGV or SIGABRT (a C
        // model against NVRTC 13.0): twelve clean ones with the status kept tell it is there.
        for run in 0..12 {
            let dir = Scratch::new(&format!("exit-{run}"));
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads=1", "--nocapture"])
                .env(CHILD, &dir.0)
                .env(DELAY, (50 + 120 * run).to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let waited = Instant::now();
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if waited.elapsed() > Duration::from_secs(120) {
                    let _ = child.kill();
                    panic!("run {run}: the child had not exited after 120 s");
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            assert_eq!(status.code(), Some(7), "run {run}: {status:?}");
        }
    }
}
