//! Readers for graphs users bring: whitespace-separated edge lists and Matrix Market files.
//! Malformed input is an [`Error::Parse`] naming the 1-based line; nothing panics.

use std::io::BufRead;
use std::path::Path;

use super::csr::Csr;
use crate::error::{Error, Result};

fn parse_err(line: usize, message: impl Into<String>) -> Error {
    Error::Parse {
        line,
        message: message.into(),
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

/// Reads an edge list: one edge `u v` per line (0-based vertex ids; further columns, e.g. a
/// weight, are ignored), blank lines and lines starting with `#` or `%` skipped. The graph has
/// `max id + 1` vertices and is made undirected.
pub fn edge_list(reader: impl BufRead) -> Result<Csr> {
    let mut edges = Vec::new();
    let mut max = 0u64;
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| parse_err(line_no, e.to_string()))?;
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
        max = max.max(u).max(v);
        edges.push((u as u32, v as u32));
    }
    let n = if edges.is_empty() { 0 } else { max + 1 };
    Ok(Csr::from_edges(n as u32, &edges))
}

/// Reads a Matrix Market coordinate file (`%%MatrixMarket matrix coordinate <field> <symmetry>`,
/// any field, any symmetry; 1-based indices; values ignored) as an undirected graph on
/// max(rows, cols) vertices.
pub fn matrix_market(reader: impl BufRead) -> Result<Csr> {
    let mut lines = reader.lines().enumerate();
    let header = match lines.next() {
        Some((_, l)) => l.map_err(|e| parse_err(1, e.to_string()))?,
        None => return Err(parse_err(1, "empty file: expected a %%MatrixMarket header")),
    };
    let h: Vec<String> = header
        .split_whitespace()
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
    let mut size: Option<(u64, u64, u64)> = None;
    let mut edges = Vec::new();
    let mut last_line = 1;
    for (i, line) in lines {
        let line_no = i + 1;
        last_line = line_no;
        let line = line.map_err(|e| parse_err(line_no, e.to_string()))?;
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
                size = Some((rows, cols, nnz));
                edges.reserve(nnz.min(1 << 28) as usize);
            }
            Some((rows, cols, nnz)) => {
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
    let (rows, cols, nnz) =
        size.ok_or_else(|| parse_err(last_line, "missing the `rows cols entries` size line"))?;
    if (edges.len() as u64) < nnz {
        return Err(parse_err(
            last_line,
            format!(
                "the file ends after {} of the {nnz} announced entries",
                edges.len()
            ),
        ));
    }
    Ok(Csr::from_edges(rows.max(cols) as u32, &edges))
}

/// Reads a graph file: Matrix Market when it starts with `%%MatrixMarket` (or ends in `.mtx`),
/// an edge list otherwise.
pub fn file(path: &Path) -> Result<Csr> {
    let open = || {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))
    };
    let mut first = String::new();
    open()?
        .read_line(&mut first)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mtx = first
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("%%matrixmarket")
        || path.extension().is_some_and(|e| e == "mtx");
    if mtx {
        matrix_market(open()?)
    } else {
        edge_list(open()?)
    }
}
