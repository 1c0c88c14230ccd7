use std::io::Read;

use super::generate::{chain, grid, kronecker, kronecker_edges, sample_roots, star};
use super::read::{self, edge_list, matrix_market};
use super::*;
use crate::Error;

fn symmetric_sorted_simple(g: &Csr) {
    for u in 0..g.vertices() {
        let ns = g.neighbours(u);
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "{u}'s list not sorted/unique"
        );
        for &v in ns {
            assert_ne!(u, v, "self loop");
            assert!(g.has_edge(v, u), "{u} – {v} not symmetric");
        }
    }
}

#[test]
fn kronecker_is_deterministic_and_has_the_graph500_shape() {
    let a = kronecker_edges(10, 16, 42).unwrap();
    assert_eq!(a.len(), 16 << 10);
    assert_eq!(a, kronecker_edges(10, 16, 42).unwrap());
    assert_ne!(a, kronecker_edges(10, 16, 43).unwrap());
    let g = kronecker(10, 42).unwrap();
    assert_eq!(g.vertices(), 1024);
    assert!(
        g.edges() > 8 << 10 && g.edges() <= 16 << 10,
        "{}",
        g.edges()
    );
    symmetric_sorted_simple(&g);
    // Skewed: the hub's degree is far above the average.
    assert!(g.max_degree() > 8 * (2 * g.edges() / 1024));
}

#[test]
fn grid_chain_and_star_have_the_expected_edges() {
    let g = grid(5, 3).unwrap();
    assert_eq!((g.vertices(), g.edges()), (15, 4 * 3 + 5 * 2));
    symmetric_sorted_simple(&g);
    assert_eq!(g.neighbours(6), &[1, 5, 7, 11]);
    let c = chain(10);
    assert_eq!((c.vertices(), c.edges()), (10, 9));
    let s = star(100);
    assert_eq!((s.degree(0), s.edges()), (99, 99));
}

#[test]
fn csr_drops_self_loops_and_duplicates() {
    let g = Csr::from_edges(3, &[(0, 1), (1, 0), (0, 1), (2, 2), (1, 2)]);
    assert_eq!(g.offsets(), [0, 1, 3, 4]);
    assert_eq!(g.targets(), [1, 0, 2, 1]);
}

#[test]
fn edge_lists_read_and_malformed_lines_are_named() {
    let g = edge_list("# comment\n0 1\n\n1 2 0.5\n% other comment\n2 0\n".as_bytes()).unwrap();
    assert_eq!((g.vertices(), g.edges()), (3, 3));
    let e = edge_list("0 1\n1 x\n".as_bytes()).unwrap_err();
    assert!(matches!(e, Error::Parse { line: 2, .. }), "{e}");
    let e = edge_list("0 1\n7\n".as_bytes()).unwrap_err();
    assert!(matches!(e, Error::Parse { line: 2, .. }), "{e}");
    let e = edge_list("-1 1\n".as_bytes()).unwrap_err();
    assert!(matches!(e, Error::Parse { line: 1, .. }), "{e}");
    assert_eq!(edge_list("".as_bytes()).unwrap().vertices(), 0);
}

#[test]
fn matrix_market_reads_and_malformed_files_are_named() {
    let mm = "%%MatrixMarket matrix coordinate pattern symmetric\n% c\n4 4 3\n2 1\n3 2\n4 3\n";
    let g = matrix_market(mm.as_bytes()).unwrap();
    assert_eq!((g.vertices(), g.edges()), (4, 3));
    assert!(g.has_edge(0, 1) && g.has_edge(3, 2));
    let real = "%%MatrixMarket matrix coordinate real general\n3 3 2\n1 2 0.5\n2 3 -1e3\n";
    assert_eq!(matrix_market(real.as_bytes()).unwrap().edges(), 2);
    let cases = [
        ("", 1),
        ("%%MatrixMarket matrix array real general\n2 2\n1\n", 1),
        ("hello\n", 1),
        ("%%MatrixMarket matrix coordinate pattern general\n3 3\n", 2),
        (
            "%%MatrixMarket matrix coordinate pattern general\n3 3 1\n0 1\n",
            3,
        ),
        (
            "%%MatrixMarket matrix coordinate pattern general\n3 3 1\n1 4\n",
            3,
        ),
        (
            "%%MatrixMarket matrix coordinate pattern general\n3 3 1\n1 2\n2 3\n",
            4,
        ),
        (
            "%%MatrixMarket matrix coordinate pattern general\n3 3 2\n1 2\n",
            3,
        ),
        (
            "%%MatrixMarket matrix coordinate pattern general\n3 3 1\n1 b\n",
            3,
        ),
        (
            "%%MatrixMarket matrix coordinate pattern general\n% only comments\n",
            2,
        ),
    ];
    for (text, line) in cases {
        match matrix_market(text.as_bytes()) {
            Err(Error::Parse { line: l, message }) => {
                assert_eq!(l, line, "{text:?}: {message}")
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn cpu_bfs_levels_on_a_grid_are_manhattan_distances() {
    let g = grid(7, 5).unwrap();
    let (parent, level) = cpu_bfs(&g, 0).unwrap();
    for y in 0..5 {
        for x in 0..7 {
            assert_eq!(level[(y * 7 + x) as usize], x + y);
        }
    }
    assert_eq!(parent[0], 0);
    validate(&g, 0, &parent, Some(&level)).unwrap();
}

fn rule_of(e: Error) -> u32 {
    let s = e.to_string();
    let i = s.find("rule ").expect(&s) + 5;
    s[i..i + 1].parse().unwrap()
}

#[test]
fn validator_accepts_bfs_trees_and_rejects_each_broken_rule() {
    // Two components: a 4×4 grid (0..16) and a chain 16 – 17 – 18.
    let mut edges: Vec<(u32, u32)> = Vec::new();
    let gr = grid(4, 4).unwrap();
    for u in 0..16 {
        for &v in gr.neighbours(u) {
            edges.push((u, v));
        }
    }
    edges.extend([(16, 17), (17, 18)]);
    let g = Csr::from_edges(19, &edges);
    let (parent, level) = cpu_bfs(&g, 0).unwrap();
    let depth = validate(&g, 0, &parent, Some(&level)).unwrap();
    assert_eq!(depth, level);
    assert_eq!(traversed_edges(&g, &depth), 24);
    validate(&g, 17, &cpu_bfs(&g, 17).unwrap().0, None).unwrap();

    // 1: a cycle (5 and 6 point at each other).
    let mut p = parent.clone();
    p[5] = 6;
    p[6] = 5;
    assert_eq!(rule_of(validate(&g, 0, &p, None).unwrap_err()), 1);
    // 2: reported levels off by one on a tree edge.
    let mut l = level.clone();
    l[5] += 1;
    assert_eq!(rule_of(validate(&g, 0, &parent, Some(&l)).unwrap_err()), 2);
    // 3: a valid tree of wrong depth: 5 reached via a long path makes an edge span 2 levels.
    //    Path 0-1-2-6-5 instead of 0-1-5 (or 0-4-5): depth 4, while neighbour 1 has depth 1.
    let mut p = parent.clone();
    p[5] = 6;
    p[6] = 2;
    assert_eq!(rule_of(validate(&g, 0, &p, None).unwrap_err()), 3);
    // 4: a reached vertex cut off (15 unreached though its neighbours are reached).
    let mut p = parent.clone();
    p[15] = -1;
    assert_eq!(rule_of(validate(&g, 0, &p, None).unwrap_err()), 4);
    // 5: a parent that is not a neighbour, one level up: 6 = (2,1) at level 3 under
    //    8 = (0,2) at level 2.
    let mut p = parent.clone();
    p[6] = 8;
    assert_eq!(rule_of(validate(&g, 0, &p, None).unwrap_err()), 5);
}

#[test]
fn roots_have_degree_and_harmonic_mean_is_right() {
    let mut edges = vec![(0u32, 1u32)];
    edges.push((5, 6));
    let g = Csr::from_edges(10, &edges);
    for r in sample_roots(&g, 8, 3) {
        assert!(g.degree(r) > 0);
    }
    assert!((harmonic_mean(&[1.0, 2.0, 4.0]) - 12.0 / 7.0).abs() < 1e-12);
}

#[test]
fn generated_source_has_the_bfs_code() {
    let s = gpu::builder().source();
    assert!(s.contains("grosr_bfs_level") && s.contains("struct BfsVisit"));
}

fn parse_line(r: Result<Csr, Error>) -> (usize, String) {
    match r {
        Err(Error::Parse { line, message }) => (line, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

// D2: a vertex id sized the graph, so 13 bytes could ask for 32 GiB.
#[test]
fn edge_list_ids_beyond_what_the_file_can_hold_are_refused_naming_the_line() {
    for text in ["0 4294967294\n", "0 268435456\n"] {
        let (line, message) = parse_line(edge_list(text.as_bytes()));
        assert_eq!(line, 1, "{message}");
        assert!(message.contains("renumber"), "{message}");
    }
    // The line of the largest id, not the last line.
    let text = "# c\n0 1\n5 9999999\n1 2\n";
    assert_eq!(parse_line(edge_list(text.as_bytes())).0, 3);
    // Sparse but small ids stay as they are.
    let g = edge_list("0 9\n".as_bytes()).unwrap();
    assert_eq!((g.vertices(), g.edges()), (10, 1));
    assert!(g.has_edge(9, 0));
    // The bound grows with the file: 3000 edges (about 30 kB) may name 50 000 vertices.
    let mut big: String = (0..3000).map(|i| format!("{i} {}\n", i + 1)).collect();
    big.push_str("0 49999\n");
    assert_eq!(edge_list(big.as_bytes()).unwrap().vertices(), 50_000);
}

// D2: a Matrix Market size line was trusted: `4294967294 1 0` allocated 32 GiB and
// `3 3 1000000000000` reserved 2 GiB before reading a single entry.
#[test]
fn matrix_market_size_lines_are_claims_checked_against_the_file() {
    let head = "%%MatrixMarket matrix coordinate pattern general\n";
    let (line, message) = parse_line(matrix_market(format!("{head}4294967294 1 0\n").as_bytes()));
    assert_eq!(line, 2, "{message}");
    assert!(message.contains("4294967294 × 1"), "{message}");
    let (line, message) = parse_line(matrix_market(
        format!("{head}3 3 1000000000000\n").as_bytes(),
    ));
    assert_eq!(line, 2, "{message}");
    assert!(message.contains("cannot fit"), "{message}");
    // A possible count is still checked against the entries that follow.
    let (line, message) = parse_line(matrix_market(format!("{head}3 3 9\n1 2\n").as_bytes()));
    assert_eq!(line, 3, "{message}");
    assert!(message.contains("1 of the 9"), "{message}");
}

// D3: lines were unbounded (`/dev/zero` grew one line until the allocation failed).
#[test]
fn overlong_lines_are_refused_at_the_bound() {
    let endless = std::io::repeat(b'7').take(8 << 20);
    let (line, message) = parse_line(edge_list(std::io::BufReader::new(endless)));
    assert_eq!(line, 1);
    assert!(message.contains("longer than 65536 bytes"), "{message}");
    let mut text = "%%MatrixMarket matrix coordinate pattern general\n%".to_string();
    text.push_str(&"x".repeat(read::MAX_LINE));
    assert_eq!(parse_line(matrix_market(text.as_bytes())).0, 2);
    if std::path::Path::new("/dev/zero").exists() {
        assert_eq!(parse_line(read::file("/dev/zero".as_ref())).0, 1);
    }
}

fn edges_text(n: u32) -> String {
    (0..n).map(|i| format!("{i} {}\n", i + 1)).collect()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("grosr-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `f` on another thread, failing if it takes more than 10 s (a blocked open or read).
fn within_10_s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} still blocked after 10 s"))
}

// D3: `read::file` opened the path twice; through a pipe's path (`/dev/stdin`) the second open
// read on after the first 8 KiB the sniffing had consumed: 3959 of 5000 edges, no error.
#[cfg(target_os = "linux")]
#[test]
fn a_pipe_given_by_path_is_read_whole() {
    use std::os::fd::AsRawFd;
    let src = temp_path("pipe-source.txt");
    std::fs::write(&src, edges_text(5000)).unwrap();
    let mut cat = std::process::Command::new("cat")
        .arg(&src)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cat");
    let pipe = cat.stdout.take().unwrap();
    let path = format!("/proc/self/fd/{}", pipe.as_raw_fd());
    let g = within_10_s("reading a pipe", move || read::file(path.as_ref()));
    drop(pipe);
    cat.wait().unwrap();
    let g = g.unwrap();
    assert_eq!((g.vertices(), g.edges()), (5001, 5000));
}

// D3: a FIFO's writer was consumed by the sniffing open; the second open then waited for a
// writer that never came.
#[cfg(unix)]
#[test]
fn a_fifo_is_opened_once() {
    let fifo = temp_path("graph.fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
    let w = fifo.clone();
    // Opening for writing waits for the reader; the writer closes after one pass.
    let writer = std::thread::spawn(move || std::fs::write(w, edges_text(3000)));
    let r = fifo.clone();
    let g = within_10_s("reading a FIFO", move || read::file(&r)).unwrap();
    writer.join().unwrap().unwrap();
    std::fs::remove_file(&fifo).unwrap();
    assert_eq!((g.vertices(), g.edges()), (3001, 3000));
}

#[test]
fn the_format_is_sniffed_from_the_first_line_of_any_reader() {
    let mm = "  %%matrixmarket matrix coordinate pattern symmetric\n3 3 2\n2 1\n3 2\n";
    assert_eq!(read::graph(mm.as_bytes()).unwrap().edges(), 2);
    let el = "% a comment first\n0 1\n1 2\n2 3\n";
    assert_eq!(read::graph(el.as_bytes()).unwrap().edges(), 3);
    assert_eq!(read::graph("".as_bytes()).unwrap().vertices(), 0);
    assert_eq!(parse_line(read::graph(&b"0 1\n\xff 2\n"[..])).0, 2);
}

// D9: `Csr` had public fields: `Csr { offsets: [5, 0], .. }.degree(0)` overflowed, a target
// past the last vertex went to the GPU unchecked.
#[test]
fn csr_new_enforces_the_csr_rules() {
    let graph_err = |offsets: Vec<u64>, targets: Vec<u32>| match Csr::new(offsets, targets) {
        Err(Error::Graph(m)) => m,
        other => panic!("expected a malformed-graph error, got {other:?}"),
    };
    assert!(graph_err(vec![5, 0], vec![]).contains("start at 5"));
    assert!(graph_err(vec![0, 2, 1], vec![1, 0]).contains("decrease at vertex 1"));
    assert!(graph_err(vec![], vec![]).contains("no offsets"));
    assert!(graph_err(vec![0, 1, 1], vec![1, 0]).contains("2 targets"));
    assert!(graph_err(vec![0, 1, 2], vec![7, 0]).contains("not a vertex"));
    assert!(graph_err(vec![0, 1, 2], vec![0, 1]).contains("self loop"));
    assert!(graph_err(vec![0, 2, 3, 4], vec![2, 1, 0, 0]).contains("sorted"));
    assert!(graph_err(vec![0, 1, 1], vec![1]).contains("in 0's list only"));
    // What `from_edges` builds passes, and round-trips.
    let g = kronecker(8, 2).unwrap();
    let (offsets, targets) = g.clone().into_parts();
    assert_eq!(Csr::new(offsets, targets).unwrap(), g);
    let empty = Csr::new(vec![0], vec![]).unwrap();
    assert_eq!((empty.vertices(), empty.max_degree()), (0, 0));
    // Vertices past the end have no edges rather than a panic.
    assert_eq!((g.neighbours(u32::MAX), g.degree(256)), (&[][..], 0));
    assert!(!g.has_edge(1000, 0));
}

// D9: `cpu_bfs(g, root ≥ n)` indexed out of bounds.
#[test]
fn cpu_bfs_and_validate_refuse_a_root_that_is_not_a_vertex() {
    let g = chain(4);
    for root in [4, u32::MAX] {
        let e = cpu_bfs(&g, root).unwrap_err();
        assert!(e.to_string().contains("is not a vertex"), "{e}");
        let e = validate(&g, root, &[0, 0, 1, 2], None).unwrap_err();
        assert!(e.to_string().contains("is not a vertex"), "{e}");
    }
    // A depth array too short for the graph counts the rest as unreached.
    assert_eq!(traversed_edges(&g, &[]), 0);
    assert_eq!(traversed_edges(&g, &[0, 1, 2, 3]), 3);
}

// D4: the generators asserted (`--scale 32` and `--graph grid --size 70000` panicked).
#[test]
fn generators_refuse_sizes_beyond_32_bit_ids() {
    for e in [
        kronecker(32, 1).unwrap_err(),
        kronecker_edges(40, 16, 1).unwrap_err(),
        grid(70_000, 70_000).unwrap_err(),
    ] {
        assert!(e.to_string().contains("32"), "{e}");
    }
    assert_eq!(grid(65_536, 0).unwrap().vertices(), 0);
}

fn bfs_args(line: &str) -> Result<args::BfsArgs, clap::Error> {
    args::BfsArgs::parse_from(std::iter::once("bfs").chain(line.split_whitespace()))
}

// D4: out-of-range values panicked (`--scale 32`, `--graph grid --size 70000`,
// `--roots 18446744073709551615`), allocated tens of GiB (`--scale 28`,
// `--graph chain --size 4294967295`) or said the wrong thing (`--roots 0`).
#[test]
fn bfs_args_refuse_every_value_beyond_its_bound() {
    for (line, says) in [
        ("--scale 32", "not in 1..=26"),
        ("--scale 40", "not in 1..=26"),
        ("--scale 28", "not in 1..=26"),
        ("--scale 31", "not in 1..=26"),
        ("--scale 0", "not in 1..=26"),
        ("--graph grid --size 70000", "above 8192"),
        ("--graph grid --size 8193", "above 8192"),
        ("--graph chain --size 4294967295", "not in 2..=67108864"),
        ("--roots 18446744073709551615", "too large"),
        ("--roots 65537", "not in 1..=65536"),
        ("--roots 0", "not in 1..=65536"),
    ] {
        let e = bfs_args(line).expect_err(line);
        assert!(e.to_string().contains(says), "{line}: {e}");
        assert_ne!(e.exit_code(), 0, "{line}");
    }
    let ok = bfs_args("--scale 26 --roots 65536").unwrap();
    assert_eq!(
        (ok.graph, ok.roots),
        (args::GraphSpec::Kronecker { scale: 26 }, 65536)
    );
    let ok = bfs_args("--graph grid --size 8192").unwrap();
    assert_eq!(ok.graph, args::GraphSpec::Grid { side: 8192 });
    let ok = bfs_args("--graph chain --size 67108864").unwrap();
    assert_eq!(ok.graph, args::GraphSpec::Chain { n: 1 << 26 });
}

// D4: `--file F` without `--graph file` ran the Kronecker default instead.
#[test]
fn bfs_args_file_implies_graph_file_and_unused_settings_are_refused() {
    let a = bfs_args("--file g.mtx").unwrap();
    assert_eq!(a.graph, args::GraphSpec::File("g.mtx".into()));
    let a = bfs_args("--graph file --file -").unwrap();
    assert_eq!(a.graph, args::GraphSpec::File("-".into()));
    for (line, says) in [
        (
            "--graph kronecker --file g.mtx",
            "--file is only for --graph file",
        ),
        (
            "--graph grid --file g.mtx",
            "--file is only for --graph file",
        ),
        ("--graph file", "needs --file"),
        (
            "--file g.mtx --scale 10",
            "--scale is only for --graph kronecker",
        ),
        (
            "--graph chain --scale 10",
            "--scale is only for --graph kronecker",
        ),
        ("--size 100", "--size is only for --graph grid or chain"),
    ] {
        let e = bfs_args(line).expect_err(line);
        assert!(e.to_string().contains(says), "{line}: {e}");
    }
    let d = bfs_args("").unwrap();
    assert_eq!(
        (d.graph, d.roots, d.strategy, d.json),
        (
            args::GraphSpec::Kronecker { scale: 20 },
            16,
            args::Strategy::Both,
            false
        )
    );
    let s = bfs_args("--strategy while").unwrap().strategy;
    assert_eq!(
        (s.resident(), s.level_sync(), s.while_graph()),
        (false, false, true)
    );
    let grid = bfs_args("--graph grid --size 16").unwrap().graph;
    assert_eq!(grid.build().unwrap().vertices(), 256);
}

/// The Rust-body BFS (`rust_bodies`) on the CPU backend: Graph500-valid trees on a skewed
/// Kronecker graph (hubs split into edge tasks: `big` is low), a grid and a chain.
#[test]
fn the_rust_body_bfs_is_valid_on_the_cpu_backend() {
    use super::gpu::Bodies;
    let rt = super::rust_bodies::cpu_builder()
        .backend(grosr::Backend::Cpu)
        .cpu_threads(2)
        .build()
        .unwrap();
    let opts = BfsOptions {
        big: 64,
        edge_chunk: 64,
        local_limit: 4,
    };
    let edges_before = rt.executed::<super::rust_bodies::BfsEdgesRs>().unwrap();
    for g in [kronecker(9, 3).unwrap(), grid(20, 30).unwrap(), chain(300)] {
        let dg = DeviceGraph::upload(&rt, &g, opts).unwrap();
        for root in sample_roots(&g, 2, 5) {
            let run = dg.bfs_resident_with(&rt, root, Bodies::Rust).unwrap();
            let depth = validate(&g, root, &run.parent, Some(&run.level)).unwrap();
            let (_, want) = cpu_bfs(&g, root).unwrap();
            assert_eq!(run.level, want, "levels from root {root}");
            assert!(depth.iter().filter(|d| **d != UNREACHED).count() > 1);
        }
    }
    // The Kronecker hubs' lists went out as edge tasks.
    assert!(rt.executed::<super::rust_bodies::BfsEdgesRs>().unwrap() > edges_before);
}
