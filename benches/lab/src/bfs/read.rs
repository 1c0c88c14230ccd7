//! Readers for graphs users bring: whitespace-separated edge lists and Matrix Market files.
//! Malformed input is an [`Error::Parse`] naming the 1-based line; nothing panics.
//!
//! What a file may make the reader allocate is bounded by the file itself, not by the numbers
//! in it: memory is proportional to the bytes read.
//!
//! * A line holds at most [`MAX_LINE`] bytes.
//! * A graph has at most [`max_vertices`]`(bytes)` = 4096 + 2 × the file's size in bytes
//!   vertices. Vertex ids are kept as they are (not renumbered), so a file whose largest id is
//!   far beyond its size (ids drawn from a sparse space, say) is refused, naming the line of
//!   that id (or of the Matrix Market size line); renumber such a file densely first.
//! * A Matrix Market size line is a claim, checked: nothing is reserved from its entry count,
//!   the count must be possible for the declared shape and must match the entries that follow.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::csr::Csr;
use crate::{Error, Result};

/// The longest line accepted, in bytes (newline included).
pub const MAX_LINE: usize = 64 * 1024;

/// Vertices any graph file may have, however small.
const VERTEX_ALLOWANCE: u64 = 4096;
/// Further vertices per byte of the file.
const VERTICES_PER_BYTE: u64 = 2;

/// The most vertices a graph file of `bytes` bytes may describe: 4096 + 2 per byte. Memory for
/// the vertices (8 bytes each in the CSR offsets) then stays proportional to the file.
pub fn max_vertices(bytes: u64) -> u64 {
    VERTEX_ALLOWANCE.saturating_add(bytes.saturating_mul(VERTICES_PER_BYTE))
}

fn parse_err(line: usize, message: impl Into<String>) -> Error {
    Error::Parse {
        line,
        message: message.into(),
    }
}

/// Lines of at most [`MAX_LINE`] bytes, counted, with the bytes read so far; one line can be
/// handed back to be read again (what sniffing the format needs).
struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
    /// The 1-based number of the line in `buf` (0 before the first).
    line: usize,
    bytes: u64,
    /// `buf` holds a line handed back: the next call returns it again.
    again: bool,
    /// The file, for I/O errors (`None`: a reader given by the caller).
    path: Option<PathBuf>,
}

impl<R: BufRead> Lines<R> {
    fn new(inner: R, path: Option<PathBuf>) -> Self {
        Lines {
            inner,
            buf: Vec::new(),
            line: 0,
            bytes: 0,
            again: false,
            path,
        }
    }

    /// The next line, without its line break, and its number; `None` at the end.
    fn next(&mut self) -> Result<Option<(usize, &str)>> {
        if self.again {
            self.again = false;
        } else {
            self.buf.clear();
            self.line += 1;
            let mut limited = (&mut self.inner).take(MAX_LINE as u64 + 1);
            let got = match limited.read_until(b'\n', &mut self.buf) {
                Ok(got) => got,
                Err(source) => {
                    return Err(match &self.path {
                        Some(path) => Error::Io {
                            path: path.clone(),
                            source,
                        },
                        None => parse_err(self.line, format!("cannot read: {source}")),
                    });
                }
            };
            if got == 0 {
                self.line -= 1;
                return Ok(None);
            }
            self.bytes += got as u64;
            if self.buf.len() > MAX_LINE {
                return Err(parse_err(
                    self.line,
                    format!("longer than {MAX_LINE} bytes (is this a graph file?)"),
                ));
            }
        }
        let text = std::str::from_utf8(&self.buf)
            .map_err(|_| parse_err(self.line, "not UTF-8 text (is this a graph file?)"))?;
        Ok(Some((self.line, text.trim_end_matches(['\n', '\r']))))
    }

    /// Makes the next [`next`](Lines::next) return the line it returned last.
    fn hand_back(&mut self) {
        self.again = self.line > 0;
    }

    /// The number of the last line read (for errors at the end of the file).
    fn last_line(&self) -> usize {
        self.line.max(1)
    }
}

fn id(tok: Option<&str>, line: usize, what: &str) -> Result<u64> {
    let tok = tok.ok_or_else(|| parse_err(line, format!("missing {what}")))?;
    tok.parse::<u64>().map_err(|_| {
        parse_err(
            line,
            format!("{what} `{tok}` is not a non-negative integer"),
        )
    })
}

/// An error unless `vertices` is within [`max_vertices`] of a file of `bytes` bytes; `line`
/// and `why` say where the number came from.
fn check_vertices(vertices: u64, bytes: u64, line: usize, why: &str) -> Result<()> {
    let bound = max_vertices(bytes);
    if vertices > bound {
        return Err(parse_err(
            line,
            format!(
                "{why} makes a graph of {vertices} vertices, more than a file of {bytes} bytes may \
                 describe ({bound}: {VERTEX_ALLOWANCE} + {VERTICES_PER_BYTE} per byte); renumber \
                 the vertices densely"
            ),
        ));
    }
    Ok(())
}

/// Reads an edge list: one edge `u v` per line (0-based vertex ids; further columns, e.g. a
/// weight, are ignored), blank lines and lines starting with `#` or `%` skipped. The graph has
/// `max id + 1` vertices (at most [`max_vertices`] of the input's size) and is made
/// undirected.
pub fn edge_list(reader: impl BufRead) -> Result<Csr> {
    edge_list_from(&mut Lines::new(reader, None))
}

fn edge_list_from(lines: &mut Lines<impl BufRead>) -> Result<Csr> {
    let mut edges = Vec::new();
    // The largest id and the line it was first seen on.
    let mut max: Option<(u64, usize)> = None;
    while let Some((line_no, line)) = lines.next()? {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('%') {
            continue;
        }
        let mut toks = t.split_whitespace();
        let u = id(toks.next(), line_no, "source vertex")?;
        let v = id(toks.next(), line_no, "target vertex")?;
        if u >= u32::MAX as u64 || v >= u32::MAX as u64 {
            return Err(parse_err(line_no, "vertex id does not fit in 32 bits"));
        }
        let top = u.max(v);
        if max.is_none_or(|(m, _)| top > m) {
            max = Some((top, line_no));
        }
        edges.push((u as u32, v as u32));
    }
    let n = match max {
        None => 0,
        Some((m, line)) => {
            check_vertices(m + 1, lines.bytes, line, &format!("vertex id {m}"))?;
            m + 1
        }
    };
    Ok(Csr::from_edges(n as u32, &edges))
}

/// Reads a Matrix Market coordinate file (`%%MatrixMarket matrix coordinate <field> <symmetry>`,
/// any field, any symmetry; 1-based indices; values ignored) as an undirected graph on
/// max(rows, cols) vertices (at most [`max_vertices`] of the input's size).
pub fn matrix_market(reader: impl BufRead) -> Result<Csr> {
    matrix_market_from(&mut Lines::new(reader, None))
}

fn matrix_market_from(lines: &mut Lines<impl BufRead>) -> Result<Csr> {
    let Some((_, header)) = lines.next()? else {
        return Err(parse_err(1, "empty file: expected a %%MatrixMarket header"));
    };
    let h: Vec<String> = header
        .split_whitespace()
        .take(5)
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if h.len() < 5 || h[0] != "%%matrixmarket" || h[1] != "matrix" {
        return Err(parse_err(
            1,
            "expected `%%MatrixMarket matrix coordinate <field> <symmetry>`",
        ));
    }
    if h[2] != "coordinate" {
        return Err(parse_err(
            1,
            format!("only coordinate matrices are graphs, not `{}`", h[2]),
        ));
    }
    // (rows, cols, entries, the size line's number)
    let mut size: Option<(u64, u64, u64, usize)> = None;
    let mut edges = Vec::new();
    while let Some((line_no, line)) = lines.next()? {
        let t = line.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let mut toks = t.split_whitespace();
        match size {
            None => {
                let rows = id(toks.next(), line_no, "row count")?;
                let cols = id(toks.next(), line_no, "column count")?;
                let nnz = id(toks.next(), line_no, "entry count")?;
                if rows.max(cols) >= u32::MAX as u64 {
                    return Err(parse_err(line_no, "matrix too large for 32-bit vertex ids"));
                }
                // Not a reservation: the entries that follow are counted against it.
                if nnz > rows * cols {
                    return Err(parse_err(
                        line_no,
                        format!("{nnz} entries cannot fit a {rows} × {cols} matrix"),
                    ));
                }
                size = Some((rows, cols, nnz, line_no));
            }
            Some((rows, cols, nnz, _)) => {
                let r = id(toks.next(), line_no, "row index")?;
                let c = id(toks.next(), line_no, "column index")?;
                if r == 0 || c == 0 || r > rows || c > cols {
                    return Err(parse_err(
                        line_no,
                        format!(
                            "entry ({r}, {c}) outside the {rows} × {cols} matrix (indices are 1-based)"
                        ),
                    ));
                }
                if edges.len() as u64 == nnz {
                    return Err(parse_err(
                        line_no,
                        format!("more entries than the {nnz} the size line announced"),
                    ));
                }
                edges.push(((r - 1) as u32, (c - 1) as u32));
            }
        }
    }
    let last = lines.last_line();
    let (rows, cols, nnz, size_line) =
        size.ok_or_else(|| parse_err(last, "missing the `rows cols entries` size line"))?;
    if (edges.len() as u64) < nnz {
        return Err(parse_err(
            last,
            format!(
                "the file ends after {} of the {nnz} announced entries",
                edges.len()
            ),
        ));
    }
    let n = rows.max(cols);
    check_vertices(
        n,
        lines.bytes,
        size_line,
        &format!("the size line ({rows} × {cols})"),
    )?;
    Ok(Csr::from_edges(n as u32, &edges))
}

/// Whether a first line is a Matrix Market header.
fn is_matrix_market(first: &str) -> bool {
    let t = first.trim_start().as_bytes();
    let tag = b"%%matrixmarket";
    t.len() >= tag.len() && t[..tag.len()].eq_ignore_ascii_case(tag)
}

/// Reads a graph from any reader, a pipe included: Matrix Market when its first line starts
/// with `%%MatrixMarket`, an edge list otherwise. The input is read once, front to back.
pub fn graph(reader: impl Read) -> Result<Csr> {
    sniffed(&mut Lines::new(BufReader::new(reader), None), false)
}

fn sniffed(lines: &mut Lines<impl BufRead>, mtx_name: bool) -> Result<Csr> {
    let mtx = match lines.next()? {
        Some((_, first)) => is_matrix_market(first),
        None => false,
    };
    lines.hand_back();
    if mtx || mtx_name {
        matrix_market_from(lines)
    } else {
        edge_list_from(lines)
    }
}

/// Reads a graph file: Matrix Market when it starts with `%%MatrixMarket` (or its name ends in
/// `.mtx`), an edge list otherwise. The file is opened once and read front to back, so pipes
/// (`/dev/stdin`) and FIFOs work; opening a FIFO waits for its writer, like any reader.
pub fn file(path: &Path) -> Result<Csr> {
    let f = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mtx_name = path.extension().is_some_and(|e| e == "mtx");
    let mut lines = Lines::new(BufReader::new(f), Some(path.to_path_buf()));
    sniffed(&mut lines, mtx_name)
}
