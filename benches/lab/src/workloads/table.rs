//! The report's tables: one workload per row, one dispatch strategy (or allocator, or BFS
//! variant) per column, and ratio columns against a reference column of the same run.

use std::fmt::Write as _;

use serde::Serialize;

/// One table of the report.
///
/// ```
/// use grosr_lab::workloads::table::Table;
/// let mut t = Table::new("pingpong", "Ping-pong", "µs", false, &["Resident", "Sync"]);
/// t.push("1 pair", vec![Some(4.0), Some(18.0)]);
/// assert_eq!(t.advantage(0, 1), Some(4.5));  // Resident is 4.5× faster than Sync
/// assert!(t.markdown().contains("4.50×"));
/// ```
#[derive(Clone, Debug, Serialize)]
pub struct Table {
    /// Short name (for `--only` and the JSON file).
    pub id: String,
    /// Heading.
    pub title: String,
    /// Unit of every value.
    pub unit: String,
    /// True for throughputs (larger is better), false for times.
    pub higher_is_better: bool,
    /// Index of the column the ratio columns compare against (default 0).
    pub reference: usize,
    /// Column names.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<TableRow>,
    /// Lines printed under the table (targets, caveats, what was not run).
    pub notes: Vec<String>,
    /// Whether the Markdown has ratio columns against the reference (default true; false for a
    /// table whose columns are parts of one whole, not rivals).
    pub ratios: bool,
}

/// One row: a workload and its value per column (`None`: not run, or not applicable).
#[derive(Clone, Debug, Serialize)]
pub struct TableRow {
    /// The workload.
    #[serde(rename = "workload")]
    pub label: String,
    /// One value per column.
    pub values: Vec<Option<f64>>,
}

impl Table {
    /// An empty table whose reference column is the first.
    pub fn new(
        id: &str,
        title: &str,
        unit: &str,
        higher_is_better: bool,
        columns: &[&str],
    ) -> Table {
        Table {
            id: id.into(),
            title: title.into(),
            unit: unit.into(),
            higher_is_better,
            reference: 0,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
            ratios: true,
        }
    }

    /// Appends a row; `values` is padded with `None` (or cut) to the number of columns.
    pub fn push(&mut self, label: impl Into<String>, mut values: Vec<Option<f64>>) {
        values.resize(self.columns.len(), None);
        self.rows.push(TableRow {
            label: label.into(),
            values,
        });
    }

    /// How many times better the reference column is than column `col` in row `row` (> 1: the
    /// reference wins), or `None` where either value is missing.
    pub fn advantage(&self, row: usize, col: usize) -> Option<f64> {
        let values = &self.rows.get(row)?.values;
        let (r, c) = ((*values.get(self.reference)?)?, (*values.get(col)?)?);
        let ratio = if self.higher_is_better { r / c } else { c / r };
        ratio.is_finite().then_some(ratio)
    }

    /// The table as Markdown: values, then one ratio column per non-reference column.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## {} ({})\n", self.title, self.unit);
        let reference = self
            .columns
            .get(self.reference)
            .cloned()
            .unwrap_or_default();
        let others: Vec<usize> = (0..self.columns.len())
            .filter(|&c| self.ratios && c != self.reference)
            .collect();
        let mut header = String::from("| workload |");
        let mut rule = String::from("| --- |");
        for c in &self.columns {
            let _ = write!(header, " {c} |");
            rule.push_str(" ---: |");
        }
        for &c in &others {
            let _ = write!(header, " {reference} vs {} |", self.columns[c]);
            rule.push_str(" ---: |");
        }
        let _ = writeln!(s, "{header}\n{rule}");
        for (i, r) in self.rows.iter().enumerate() {
            let _ = write!(s, "| {} |", r.label);
            for v in &r.values {
                match v {
                    Some(v) => {
                        let _ = write!(s, " {} |", format_value(*v));
                    }
                    None => s.push_str(" – |"),
                }
            }
            for &c in &others {
                match self.advantage(i, c) {
                    Some(a) => {
                        let _ = write!(s, " {a:.2}× |");
                    }
                    None => s.push_str(" – |"),
                }
            }
            s.push('\n');
        }
        if !others.is_empty() {
            let _ = writeln!(
                s,
                "\n{reference} vs X: how many times {} {reference} is than X (> 1: {reference} wins).",
                if self.higher_is_better {
                    "more throughput"
                } else {
                    "faster"
                }
            );
        }
        for n in &self.notes {
            let _ = writeln!(s, "\n{n}");
        }
        s
    }
}

/// Three significant digits, without exponents for the magnitudes a report shows.
pub fn format_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 || !a.is_finite() {
        format!("{v:.0}")
    } else {
        // Digits after the point so that three significant digits show (0.000123, 0.0456, 1.23).
        let decimals = (2 - a.log10().floor() as i32).clamp(0, 12) as usize;
        format!("{v:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_follow_the_direction_of_the_unit() {
        let mut t = Table::new("x", "X", "M/s", true, &["Resident", "Graph", "Missing"]);
        t.push("row", vec![Some(200.0), Some(50.0)]);
        assert_eq!(t.rows[0].values.len(), 3);
        assert_eq!(t.advantage(0, 1), Some(4.0));
        assert_eq!(t.advantage(0, 2), None);
        let md = t.markdown();
        assert!(md.contains("| row | 200 | 50.0 | – | 4.00× | – |"), "{md}");
        assert_eq!(format_value(0.000123), "0.000123");
        assert_eq!(format_value(0.0456), "0.0456");
        assert_eq!(format_value(1.234), "1.23");
        assert_eq!(format_value(12.34), "12.3");
    }
}
