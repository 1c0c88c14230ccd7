//! The graph readers under seeded mutation fuzzing: valid edge lists and Matrix Market files,
//! mutated (bits flipped, huge numbers and headers spliced in, ranges cut and repeated) and
//! random garbage, fed to `edge_list`, `matrix_market` and the sniffing `read::graph`. No input
//! may panic, take more than 5 s, or make the reader allocate more than 64 × its size (plus a
//! fixed 64 KiB for buffers), measured by the counting allocator below. Fixed seeds: a failure
//! names the seed and case, which reproduce it. `GROSR_READ_FUZZ_CASES` (default 1000 per seed)
//! runs longer.
//!
//! A test binary of its own, so the counting allocator is nobody else's; the tests here take a
//! lock so that one measures at a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use grosr_lab::bfs::Csr;
use grosr_lab::bfs::generate::splitmix64;
use grosr_lab::bfs::read::{self, edge_list, matrix_market, max_vertices};

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are plain atomics and
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One measurement at a time (the counters are process-wide).
static LOCK: Mutex<()> = Mutex::new(());

/// Fixed allowance: the reader's 8 KiB buffer, the CSR offsets of the 4096 vertices any file may
/// have, rayon's bookkeeping. (A line buffer grown past this comes from a line as long.)
const SLACK: usize = 64 << 10;
/// Allowed allocation per input byte.
const PER_BYTE: usize = 64;
/// The longest a reader may take on one input.
const HANG: Duration = Duration::from_secs(5);

/// When the running call began (ms since `epoch()`, 0: none) and which case it is, for the
/// watchdog.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
static CASE: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Aborts the process (a hang would otherwise stall CI) if a call runs past [`HANG`].
fn start_watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        epoch();
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let at = STARTED_MS.load(Relaxed);
                let now = epoch().elapsed().as_millis() as u64;
                if at != 0 && now.saturating_sub(at) > HANG.as_millis() as u64 {
                    let case = CASE.load(Relaxed);
                    eprintln!(
                        "read_fuzz: seed {} case {} ran past {HANG:?}",
                        case >> 32,
                        case & 0xFFFF_FFFF
                    );
                    std::process::abort();
                }
            }
        });
    });
}

/// A reader of a whole input.
type Reader = fn(&[u8]) -> grosr_lab::Result<Csr>;

/// The three readers.
const READERS: [(&str, Reader); 3] = [
    ("edge_list", |b| edge_list(b)),
    ("matrix_market", |b| matrix_market(b)),
    ("read::graph", |b| read::graph(b)),
];

/// What feeding `input` to every reader found wrong, if anything; `peak` records the largest
/// allocation ratio seen.
fn check(input: &[u8], case: u64, peak: &mut f64) -> Result<(), String> {
    for (name, reader) in READERS {
        CASE.store(case, Relaxed);
        let start = LIVE.load(Relaxed);
        PEAK.store(start, Relaxed);
        STARTED_MS.store(epoch().elapsed().as_millis().max(1) as u64, Relaxed);
        let t = Instant::now();
        let got = catch_unwind(AssertUnwindSafe(|| reader(input)));
        let took = t.elapsed();
        STARTED_MS.store(0, Relaxed);
        let used = PEAK.load(Relaxed).saturating_sub(start);
        let got = got.map_err(|_| format!("{name} panicked"))?;
        *peak = peak.max(used.saturating_sub(SLACK) as f64 / input.len().max(1) as f64);
        if used > PER_BYTE * input.len() + SLACK {
            return Err(format!(
                "{name} allocated {used} bytes for {} bytes of input",
                input.len()
            ));
        }
        if took > HANG {
            return Err(format!("{name} took {took:?}"));
        }
        if let Ok(g) = got {
            if g.vertices() as u64 > max_vertices(input.len() as u64) {
                return Err(format!("{name}: {} vertices", g.vertices()));
            }
            let (offsets, targets) = g.clone().into_parts();
            if Csr::new(offsets, targets).ok().as_ref() != Some(&g) {
                return Err(format!("{name} built a graph that breaks the CSR rules"));
            }
        }
    }
    Ok(())
}

fn show(input: &[u8]) -> String {
    let cut = &input[..input.len().min(300)];
    format!(
        "{:?}{}",
        String::from_utf8_lossy(cut),
        if cut.len() < input.len() { "…" } else { "" }
    )
}

fn run(cases: &[(u64, Vec<u8>)]) -> f64 {
    start_watchdog();
    let mut peak = 0.0f64;
    for (case, input) in cases {
        if let Err(what) = check(input, *case, &mut peak) {
            panic!(
                "seed {} case {}: {what}\ninput: {}",
                case >> 32,
                case & 0xFFFF_FFFF,
                show(input)
            );
        }
    }
    peak
}

/// Warms rayon's pool up outside the measurements.
fn warm_up() {
    let _ = Csr::from_edges(4, &[(0, 1), (2, 3)]);
}

const MM: &str = "%%MatrixMarket matrix coordinate pattern general\n";

#[test]
fn the_issues_inputs_are_refused_cheaply() {
    let _one = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    warm_up();
    let cases: Vec<(u64, Vec<u8>)> = [
        "0 4294967294\n".to_string(),
        "0 268435456\n".to_string(),
        format!("{MM}4294967294 1 0\n"),
        format!("{MM}3 3 1000000000000\n"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, s)| (i as u64, s.into_bytes()))
    .collect();
    run(&cases);
    for (_, input) in &cases {
        let r = read::graph(&input[..]);
        assert!(
            matches!(r, Err(grosr_lab::Error::Parse { .. })),
            "{}: {r:?}",
            show(input)
        );
    }
    // `/dev/zero` is one endless line: refused after the line bound.
    if std::path::Path::new("/dev/zero").exists() {
        let start = LIVE.load(Relaxed);
        PEAK.store(start, Relaxed);
        let r = read::file("/dev/zero".as_ref());
        let used = PEAK.load(Relaxed).saturating_sub(start);
        assert!(
            matches!(r, Err(grosr_lab::Error::Parse { line: 1, .. })),
            "{r:?}"
        );
        assert!(
            used < PER_BYTE * read::MAX_LINE,
            "{used} bytes for /dev/zero"
        );
    }
}

/// The inputs that cost the most per byte: short lines of distinct edges, the most vertices a
/// file of its size may name, as an edge list and as Matrix Market.
#[test]
fn the_costliest_inputs_per_byte_stay_within_64x() {
    let _one = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    warm_up();
    let dense = "0 1\n".repeat(1 << 15);
    let distinct: String = (0..20_000).map(|i| format!("{i} {}\n", i + 1)).collect();
    // The largest vertex count that `text(n)` may still have.
    let widest = |text: &dyn Fn(u64) -> String| {
        let mut n = max_vertices(text(0).len() as u64 + 64);
        while max_vertices(text(n).len() as u64) < n {
            n -= 1;
        }
        text(n)
    };
    let lines = "0 1\n".repeat(1 << 14);
    let widest_list = widest(&|n| format!("{lines}0 {}\n", n.saturating_sub(1)));
    let edges: String = (1..10_000).map(|i| format!("{i} {}\n", i + 1)).collect();
    let widest_mm = widest(&|n| format!("{MM}{n} {n} 9999\n{edges}"));
    let cases: Vec<(u64, Vec<u8>)> = [dense, distinct, widest_list, widest_mm]
        .into_iter()
        .enumerate()
        .map(|(i, s)| (i as u64, s.into_bytes()))
        .collect();
    for (_, input) in &cases {
        let r = read::graph(&input[..]);
        assert!(r.is_ok(), "{r:?}");
    }
    let worst = run(&cases);
    eprintln!("read_fuzz: the costliest inputs allocate up to {worst:.1} × their size");
}

/// Valid inputs of both formats, the mutations' starting points.
fn corpus() -> Vec<Vec<u8>> {
    let chain: String = (0..300).map(|i| format!("{i} {}\n", i + 1)).collect();
    let star: String = (1..200).map(|i| format!("{} 0 1.5\r\n", i * 7)).collect();
    let mm_entries: String = (1..150).map(|i| format!("{} {}\n", i + 1, i)).collect();
    let mut g500 = String::from("% Kronecker SCALE 7\n");
    for (u, v) in grosr_lab::bfs::generate::kronecker_edges(7, 8, 3).unwrap() {
        g500.push_str(&format!("{u}\t{v}\n"));
    }
    [
        "# an edge list\n0 1\n1 2\n\n2 0 0.5\n% comment\n3 3\n".to_string(),
        chain,
        star,
        g500,
        format!("{MM}% a comment\n4 4 3\n2 1\n3 2\n4 3\n"),
        "%%MatrixMarket matrix coordinate real symmetric\n5 5 4\n1 2 0.5\n2 3 -1e3\n3 4 7\n5 5 1\n"
            .to_string(),
        format!("%%MatrixMarket matrix coordinate integer general\n150 150 149\n{mm_entries}"),
        "%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n4\n".to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// Pieces worth splicing in: the largest ids, numbers past every integer type, headers.
const TOKENS: &[&str] = &[
    "4294967294",
    "4294967295",
    "4294967296",
    "268435456",
    "18446744073709551615",
    "99999999999999999999999999",
    "1000000000000",
    "0",
    "-1",
    "+7",
    "1e9",
    " ",
    "\n",
    "\r\n",
    "%",
    "#",
    "%%MatrixMarket matrix coordinate pattern general\n",
    "%%MatrixMarket matrix coordinate real symmetric\n",
    "%%MatrixMarket matrix array real general\n",
    "4294967294 4294967294 0\n",
    "65536 65536 4294967296\n",
];

const BYTES: &[u8] = b"\n \t\r0123456789%#-+.e\0\xff";

/// The longest mutated input (a repeated range doubles it).
const MAX_INPUT: usize = 256 << 10;

fn mutate(input: &mut Vec<u8>, corpus: &[Vec<u8>], s: &mut u64) {
    let mut below = |n: usize| (splitmix64(s) % n.max(1) as u64) as usize;
    for _ in 0..1 + below(4) {
        let len = input.len();
        let at = below(len + 1);
        match below(8) {
            0 if len > 0 => input[at.min(len - 1)] ^= 1 << below(8),
            1 if len > 0 => input[at.min(len - 1)] = BYTES[below(BYTES.len())],
            2 => {
                let t = TOKENS[below(TOKENS.len())].as_bytes();
                input.splice(at..at, t.iter().copied());
            }
            3 => {
                let end = (at + below(64)).min(len);
                input.drain(at..end);
            }
            4 if len < MAX_INPUT / 2 => {
                // Repeat a range, up to doubling the input.
                let end = (at + 1 + below(len + 1)).min(len);
                let piece = input[at..end].to_vec();
                let to = below(len + 1);
                input.splice(to..to, piece);
            }
            5 => input.truncate(at),
            6 => {
                // Splice in the tail of another input.
                let other = &corpus[below(corpus.len())];
                let from = below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => {
                // A random number of random magnitude in place of the byte here.
                let digits = 1 + below(24);
                let n: String = (0..digits)
                    .map(|_| (b'0' + below(10) as u8) as char)
                    .collect();
                input.splice(at..(at + 1).min(len), n.bytes());
            }
        }
    }
}

fn garbage(s: &mut u64) -> Vec<u8> {
    let len = (splitmix64(s) % 512) as usize;
    (0..len)
        .map(|_| {
            let r = splitmix64(s);
            // Mostly bytes a graph file is made of, so the parser gets past line 1.
            if r % 4 == 0 {
                r as u8 >> 1
            } else {
                BYTES[(r >> 8) as usize % BYTES.len()]
            }
        })
        .collect()
}

#[test]
fn mutated_inputs_never_panic_hang_or_allocate_beyond_64x_their_size() {
    let _one = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    warm_up();
    let per_seed: u64 = std::env::var("GROSR_READ_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let corpus = corpus();
    let t = Instant::now();
    let mut worst = 0.0f64;
    for seed in [1u64, 2, 3, 4] {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut cases = Vec::new();
        // Each case is a fresh mutation of one corpus input (or garbage), kept in batches so
        // the inputs' own memory is not part of any measurement.
        for i in 0..per_seed {
            let input = if i % 8 == 7 {
                garbage(&mut s)
            } else {
                let mut input = corpus[(splitmix64(&mut s) % corpus.len() as u64) as usize].clone();
                mutate(&mut input, &corpus, &mut s);
                input
            };
            cases.push(((seed << 32) | i, input));
            if cases.len() == 256 || i + 1 == per_seed {
                worst = worst.max(run(&cases));
                cases.clear();
            }
        }
    }
    eprintln!(
        "read_fuzz: {} cases × 3 readers in {:.1} s; largest allocation {worst:.1} × the input \
         (beyond the fixed {} KiB)",
        4 * per_seed,
        t.elapsed().as_secs_f64(),
        SLACK >> 10
    );
}
