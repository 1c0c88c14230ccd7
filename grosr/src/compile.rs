//! NVRTC compilation of the generated unit to a CUBIN, cached on disk.
//!
//! The cache key is a SHA-256 of the source, the NVRTC version, the target and every option, so
//! any change to any of them compiles anew; a second start with the same tasks skips NVRTC.
//! Entries carry a keyed digest and are refused when it does not verify ([`cache`]).

mod background;
mod cache;
mod hmac;

pub(crate) use background::{Background, compile_in_background, possible as background_possible};

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::PathBuf;

use cudarc::nvrtc::{result as nvrtc, sys};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Options every compile passes (besides the architecture). C++20 for the designated initialisers
/// that let a CUDA body's spawn name its fields (`T{.a = 1}`); against C++17 it gave the same SASS
/// for every module the compile bench builds, the constant bank's order of globals aside
/// (NVRTC 13.0, sm_90; benches/NOTES.md, "Task bodies").
const OPTIONS: &[&str] = &["-std=c++20", "-default-device", "-lineinfo", "-DGROSR=1"];

/// Whether a compile has run in this process (background.rs: NVRTC's exit handler is
/// registered by then).
static COMPILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Checks that NVRTC can be loaded, so its absence is an error instead of a panic in cudarc.
pub fn nvrtc_available() -> Result<()> {
    // SAFETY: only tries to dlopen the library names cudarc would use.
    if unsafe { sys::is_culib_present() } {
        Ok(())
    } else {
        Err(Error::NoNvrtc)
    }
}

/// NVRTC's version, `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    nvrtc_available()?;
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: two valid out-pointers.
    let r = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(Error::Compile {
            arch: String::new(),
            log: format!("nvrtcVersion failed: {r:?}"),
        });
    }
    Ok((major, minor))
}

/// A compiled CUBIN and whether it came from the cache.
pub struct Compiled {
    /// The CUBIN image.
    pub cubin: Vec<u8>,
    /// True when the cache served it.
    pub cached: bool,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("cubin_bytes", &self.cubin.len())
            .field("cached", &self.cached)
            .finish()
    }
}

/// `Optimize::Compile`'s options. NVRTC's fast-compile level that keeps the most optimizations:
/// on the 14-type module it cut the cold compile 228 -> 2.7 s (2-core box) and cost the hot paths
/// two to three times (chain 0.22 -> 0.61 µs/hop, fan-out 8 5.2 -> 2.7 G tasks/s, H200). And
/// NVRTC's parallel compile on every core: the quickstart's whole cold process 1.54 -> 1.08 s,
/// the 14-type's 3.4 -> 2.2 s, with the same code (H100's 16-core host). `max` was 0.1 s faster
/// still and ran a task 9x and the chain 33x slower (benches/NOTES.md, "Start-up and compile time").
pub const FAST_COMPILE: &[&str] = &["--Ofast-compile=min", "--split-compile=0"];

/// Compiles `source` for `sm_<arch>` (e.g. 90) with `extra` options (say
/// `--Ofast-compile=min`), using the cache folder when one is usable.
pub fn compile_cached(source: &str, arch: u32, extra: &[&str]) -> Result<Compiled> {
    compile_cached_in(cache_dir(), source, arch, extra)
}

/// [`compile_cached`] with the cache folder `dir` (`None`: no cache).
pub(crate) fn compile_cached_in(
    dir: Option<PathBuf>,
    source: &str,
    arch: u32,
    extra: &[&str],
) -> Result<Compiled> {
    let (cache, key) = open_cache(dir, source, arch, extra)?;
    if let Some(cubin) = lookup(cache.as_ref(), &key) {
        return Ok(Compiled {
            cubin,
            cached: true,
        });
    }
    let cubin = compile_with(source, arch, extra)?;
    if let Some(c) = &cache {
        // A cache that cannot be written only costs the next start a compile.
        let _ = c.store(&key, &cubin);
    }
    Ok(Compiled {
        cubin,
        cached: false,
    })
}

/// The module [`compile_cached_in`] would load from the cache folder `dir`, if it holds one;
/// compiles nothing.
pub(crate) fn cached_in(
    dir: Option<PathBuf>,
    source: &str,
    arch: u32,
    extra: &[&str],
) -> Result<Option<Vec<u8>>> {
    let (cache, key) = open_cache(dir, source, arch, extra)?;
    Ok(lookup(cache.as_ref(), &key))
}

/// Whether the cache folder `dir` can be used (it is created if missing); one that cannot is
/// said once on stderr.
pub(crate) fn cache_usable(dir: &std::path::Path) -> bool {
    open_folder(dir).is_some()
}

/// The cache folder `dir` opened, or `None` (said once on stderr) if it cannot be used safely:
/// that costs a compile, not the build.
fn open_folder(dir: &std::path::Path) -> Option<cache::Cache> {
    cache::Cache::open(dir)
        .map_err(|e| warn_once(format!("grosr: compiling without the cache: {e}")))
        .ok()
}

/// The cache folder `dir` opened (`None` if there is none or it cannot be used safely: that
/// costs a compile, not the build), and the key of `source` compiled for `sm_<arch>` with `extra`.
fn open_cache(
    dir: Option<PathBuf>,
    source: &str,
    arch: u32,
    extra: &[&str],
) -> Result<(Option<cache::Cache>, String)> {
    let key = cache_key(source, arch, nvrtc_version()?, extra);
    Ok((dir.and_then(|d| open_folder(&d)), key))
}

/// The entry `key` of `cache`, if it holds one that verifies.
fn lookup(cache: Option<&cache::Cache>, key: &str) -> Option<Vec<u8>> {
    match cache?.load(key) {
        cache::Lookup::Hit(cubin) => Some(cubin),
        cache::Lookup::Refused(why) => {
            warn_once(format!(
                "grosr: refusing a compile cache entry, compiling anew: {why}"
            ));
            None
        }
        cache::Lookup::Miss => None,
    }
}

/// The first NVRTC that knows [`FAST_COMPILE`]'s level; older ones compile without its options.
const FAST_COMPILE_SINCE: (i32, i32) = (12, 8);

/// Whether this NVRTC knows [`FAST_COMPILE`]'s level.
pub(crate) fn fast_compile_known() -> Result<bool> {
    Ok(nvrtc_version()? >= FAST_COMPILE_SINCE)
}

/// Compiles without the cache. The error carries NVRTC's log (which names the user's files).
pub fn compile(source: &str, arch: u32) -> Result<Vec<u8>> {
    compile_with(source, arch, &[])
}

/// [`compile`] with NVRTC options besides the usual ones (e.g. `-rdc=true`, which makes a
/// relocatable CUBIN for the driver's linker). The fast-compile options (`--Ofast-compile=min`,
/// `--split-compile=0`) are left out where NVRTC is older than 12.8, which does not know the
/// level: the module compiles as `Optimize::Speed` would.
pub fn compile_with(source: &str, arch: u32, extra: &[&str]) -> Result<Vec<u8>> {
    let version = nvrtc_version()?;
    if version.0 >= 13 && arch < 75 {
        // NVRTC 13 answers only "invalid value for --gpu-architecture".
        return Err(Error::Unsupported(format!(
            "NVRTC {}.{} cannot compile for sm_{arch}: CUDA 13 dropped architectures before \
             sm_75; use NVRTC 12 (the CUDA 12 toolkit, or `pip install nvidia-cuda-nvrtc-cu12`)",
            version.0, version.1
        )));
    }
    let fast_compile_known = version >= FAST_COMPILE_SINCE;
    let arch_name = format!("sm_{arch}");
    let err = |log: String| Error::Compile {
        arch: arch_name.clone(),
        log,
    };
    let src = CString::new(source).map_err(|_| err("the source holds a NUL byte".into()))?;
    let name = CString::new("grosr_generated.cu").expect("no NUL");
    let prog = nvrtc::create_program(&src, Some(&name)).map_err(|e| err(format!("{e:?}")))?;
    let mut options: Vec<String> = OPTIONS.iter().map(|s| s.to_string()).collect();
    options.push(format!("--gpu-architecture={arch_name}"));
    options.extend(
        extra
            .iter()
            .filter(|o| fast_compile_known || !FAST_COMPILE.contains(o))
            .map(|s| s.to_string()),
    );
    // GROSR_PTXAS_VERBOSE=1 prints each kernel's registers, shared memory and spills.
    let verbose = std::env::var_os("GROSR_PTXAS_VERBOSE").is_some_and(|v| v == "1");
    if verbose {
        options.push("--ptxas-options=-v".into());
    }
    // SAFETY: prog is live until destroy_program below.
    let compiled = unsafe { nvrtc::compile_program(prog, &options) };
    // NVRTC has set itself up in this process, exit handler included (background.rs).
    COMPILED.store(true, std::sync::atomic::Ordering::SeqCst);
    let result = match compiled {
        Ok(()) => {
            if verbose {
                eprintln!("{}", program_log(prog).unwrap_or_default());
            }
            cubin_of(prog).map_err(err)
        }
        Err(e) => {
            let log = program_log(prog).unwrap_or_else(|| format!("{e:?}"));
            Err(
                if let Some((by, spawned)) = undefined(&log, "grosr_spawn_") {
                    Error::UnregisteredSpawn { by, spawned }
                } else if let Some((by, helper)) = undefined(&log, "grosr_call_") {
                    Error::UnregisteredHelper { by, helper }
                } else {
                    err(log)
                },
            )
        }
    };
    // SAFETY: prog came from create_program and is destroyed once.
    let _ = unsafe { nvrtc::destroy_program(prog) };
    result
}

/// The first `<prefix><name>` that NVRTC's `log` calls undefined, as (where, name): with
/// `grosr_spawn_`, a body spawned a type that is not registered (a spawn helper is generated
/// per registered type); with `grosr_call_`, a Rust body called a `#[grosr::device]` helper
/// that is not (a registered one defines its `grosr_call_` template). The error comes from
/// NVRTC's front end, so it costs no ptxas time.
fn undefined(log: &str, prefix: &str) -> Option<(String, String)> {
    let quoted = format!(": error: identifier \"{prefix}");
    log.lines().find_map(|line| {
        let (at, rest) = line.split_once(quoted.as_str())?;
        let (name, _) = rest.split_once("\" is undefined")?;
        Some((format!("the code at {}", at.trim()), name.to_string()))
    })
}

fn cubin_of(prog: sys::nvrtcProgram) -> std::result::Result<Vec<u8>, String> {
    let mut size = 0usize;
    // SAFETY: prog compiled successfully; size is a valid out-pointer.
    let r = unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) };
    if r != sys::nvrtcResult::NVRTC_SUCCESS || size == 0 {
        return Err(format!("nvrtcGetCUBINSize failed: {r:?}"));
    }
    let mut cubin = vec![0u8; size];
    // SAFETY: the buffer has the size NVRTC asked for.
    let r = unsafe { sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut c_char) };
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(format!("nvrtcGetCUBIN failed: {r:?}"));
    }
    Ok(cubin)
}

fn program_log(prog: sys::nvrtcProgram) -> Option<String> {
    // SAFETY: prog is live.
    let log = unsafe { nvrtc::get_program_log(prog) }.ok()?;
    // SAFETY: NVRTC's log is NUL-terminated.
    let text = unsafe { CStr::from_ptr(log.as_ptr()) };
    Some(text.to_string_lossy().trim_end().to_string())
}

fn cache_key(source: &str, arch: u32, (major, minor): (i32, i32), extra: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update(
        format!(
            "|sm_{arch}|nvrtc {major}.{minor}|{}|{}",
            OPTIONS.join("\0"),
            extra.join("\0")
        )
        .as_bytes(),
    );
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `$GROSR_CACHE_DIR`, else `$XDG_CACHE_HOME/grosr`, else `~/.cache/grosr`; `None` if none is set
/// or `GROSR_CACHE_DIR` is empty (caching off).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("GROSR_CACHE_DIR") {
        return (!d.is_empty()).then(|| PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("grosr"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".cache/grosr"))
}

/// Prints `message` to stderr, once per process: a library's warning, not a log.
fn warn_once(message: String) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if !seen.contains(&message) {
        eprintln!("{message}");
        seen.push(message);
    }
}

/// A path of its own under the temporary directory for a test, nothing there yet; removed
/// (folder or file) when dropped, a failed assertion included.
#[cfg(all(test, not(loom)))]
pub(crate) struct Scratch(pub(crate) PathBuf);

#[cfg(all(test, not(loom)))]
impl Scratch {
    pub(crate) fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("grosr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Scratch(path)
    }
}

#[cfg(all(test, not(loom)))]
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvrtcs_undefined_spawn_or_call_helper_names_it_and_the_place() {
        let log = "x.rs(3): warning: something\n\
                   tests/a.rs(88): error: identifier \"grosr_spawn_Orphan\" is undefined\n\
                   1 error detected";
        assert_eq!(
            undefined(log, "grosr_spawn_"),
            Some(("the code at tests/a.rs(88)".into(), "Orphan".into()))
        );
        assert_eq!(
            undefined(
                "a(1): error: identifier \"other\" is undefined",
                "grosr_spawn_"
            ),
            None
        );
        assert_eq!(
            undefined(
                "b.rs(7): error: identifier \"grosr_call_relu\" is undefined",
                "grosr_call_"
            ),
            Some(("the code at b.rs(7)".into(), "relu".into()))
        );
    }

    #[test]
    fn key_changes_with_source_arch_and_version() {
        let k = cache_key("a", 90, (13, 0), &[]);
        assert_eq!(k.len(), 64);
        assert_ne!(k, cache_key("b", 90, (13, 0), &[]));
        assert_ne!(k, cache_key("a", 80, (13, 0), &[]));
        assert_ne!(k, cache_key("a", 90, (12, 8), &[]));
        assert_ne!(k, cache_key("a", 90, (13, 0), FAST_COMPILE));
        assert_eq!(k, cache_key("a", 90, (13, 0), &[]));
    }

    #[test]
    fn a_cache_entry_that_fails_its_check_is_compiled_anew_and_replaced() {
        if nvrtc_available().is_err() {
            eprintln!("skipping: no NVRTC");
            return;
        }
        let dir = std::env::temp_dir().join(format!("grosr-compile-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let source = "extern \"C\" __global__ void grosr_cache_probe(int *p) { *p = 1; }";
        let first = compile_cached_in(Some(dir.clone()), source, 75, &[]).unwrap();
        assert!(!first.cached);
        let again = compile_cached_in(Some(dir.clone()), source, 75, &[]).unwrap();
        assert!(again.cached);
        assert_eq!(again.cubin, first.cubin);
        // Someone else's code in the entry: refused, compiled anew, and the entry overwritten.
        let entry = dir.join(format!(
            "{}.entry",
            cache_key(source, 75, nvrtc_version().unwrap(), &[])
        ));
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        let tampered = compile_cached_in(Some(dir.clone()), source, 75, &[]).unwrap();
        assert!(!tampered.cached, "a tampered entry was loaded");
        assert_eq!(tampered.cubin, first.cubin);
        assert!(
            compile_cached_in(Some(dir.clone()), source, 75, &[])
                .unwrap()
                .cached
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
