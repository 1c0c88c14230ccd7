//! Pictures of small task graphs as SVG: the report draws its example graphs beside its charts.

use std::error::Error;
use std::path::Path;

use grosr::graph::TaskGraph;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The most nodes [`draw_graph`] draws: past this a picture is too wide to read.
pub const MAX_NODES: usize = 64;

const MARGIN: i32 = 16;
const TITLE_HEIGHT: i32 = 32;
const BOX_HEIGHT: i32 = 40;
const H_GAP: i32 = 24;
const V_GAP: i32 = 48;
const ARROW: f64 = 8.0;
/// Font sizes as plotters takes them (its SVG writes `size / 1.24`).
const NAME_FONT: f64 = 16.0;
const FIELDS_FONT: f64 = 14.0;
/// A generous average glyph width, in pixels per character, to size boxes without a font.
const CHAR_WIDTH: f64 = 7.0;

/// Draws `g` into an SVG file at `path`, as [`TaskGraph::to_dot`] lays it out for Graphviz: one
/// row per topological level (roots at the top), nodes in insertion order within a row, a box per
/// node labelled as [`TaskGraph::node_label`] labels it (filled by task type), and an arrow per
/// edge. Edges that skip levels are straight lines drawn behind the boxes in between.
///
/// Returns `Ok(false)` and writes nothing when `g` has more than [`MAX_NODES`] nodes; an error
/// when `g` has a cycle (it has no levels) or the file cannot be written.
pub fn draw_graph(g: &TaskGraph, title: &str, path: &Path) -> Result<bool, Box<dyn Error>> {
    if g.node_count() > MAX_NODES {
        return Ok(false);
    }
    let levels = g.levels()?;
    // (type, fields) per node index; the levels hold every node once.
    let mut labels = vec![(String::new(), String::new()); g.node_count()];
    for &id in levels.iter().flatten() {
        let label = g.node_label(id).unwrap_or_default();
        labels[id.index()] = match label.split_once('\n') {
            Some((name, fields)) => (name.to_owned(), fields.to_owned()),
            None => (label, String::new()),
        };
    }
    let text_width = |s: &str| (s.chars().count() as f64 * CHAR_WIDTH) as i32;
    let box_width = labels
        .iter()
        .map(|(name, fields)| text_width(name).max(text_width(fields)) + 16)
        .max()
        .unwrap_or(0)
        .max(80);
    let widest = levels.iter().map(Vec::len).max().unwrap_or(0) as i32;
    let row_width = |n: i32| n * box_width + (n - 1).max(0) * H_GAP;
    let width = (row_width(widest).max(text_width(title)) + 2 * MARGIN) as u32;
    let rows = levels.len() as i32;
    let height = (TITLE_HEIGHT + rows * BOX_HEIGHT + (rows - 1).max(0) * V_GAP + 2 * MARGIN) as u32;

    // Each node's box, top-left corner: rows centred under the title.
    let mut corner = vec![(0, 0); g.node_count()];
    for (row, ids) in levels.iter().enumerate() {
        let left = (width as i32 - row_width(ids.len() as i32)) / 2;
        let top = MARGIN + TITLE_HEIGHT + row as i32 * (BOX_HEIGHT + V_GAP);
        for (k, id) in ids.iter().enumerate() {
            corner[id.index()] = (left + k as i32 * (box_width + H_GAP), top);
        }
    }

    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        title,
        (width as i32 / 2, MARGIN),
        TextStyle::from(("sans-serif", 18).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    // Edges first, so the boxes cover the lines that pass behind them.
    for (before, after) in g.edges() {
        let (sx, sy) = corner[before.index()];
        let (tx, ty) = corner[after.index()];
        let from = (sx + box_width / 2, sy + BOX_HEIGHT);
        let to = (tx + box_width / 2, ty);
        root.draw(&PathElement::new(vec![from, to], BLACK.stroke_width(1)))?;
        root.draw(&Polygon::new(arrow_head(from, to), BLACK.filled()))?;
    }
    let mut types: Vec<&str> = Vec::new();
    for (i, (name, fields)) in labels.iter().enumerate() {
        let type_index = match types.iter().position(|t| t == name) {
            Some(t) => t,
            None => {
                types.push(name);
                types.len() - 1
            }
        };
        let (x, y) = corner[i];
        let rect = [(x, y), (x + box_width, y + BOX_HEIGHT)];
        root.draw(&Rectangle::new(rect, tint(type_index).filled()))?;
        root.draw(&Rectangle::new(rect, BLACK.stroke_width(1)))?;
        let centre = |dy| (x + box_width / 2, y + dy);
        let style = |size| {
            TextStyle::from(("sans-serif", size).into_font())
                .pos(Pos::new(HPos::Center, VPos::Center))
        };
        root.draw(&Text::new(name.as_str(), centre(13), style(NAME_FONT)))?;
        root.draw(&Text::new(fields.as_str(), centre(29), style(FIELDS_FONT)))?;
    }
    root.present()?;
    Ok(true)
}

/// A light, opaque colour per task type: opaque, so the edges behind a box stay hidden.
fn tint(type_index: usize) -> RGBColor {
    let (r, g, b) = Palette99::pick(type_index).rgb();
    let light = |v: u8| 255 - (255 - v) / 4;
    RGBColor(light(r), light(g), light(b))
}

/// The filled triangle at `to` of the line from `from`.
fn arrow_head(from: (i32, i32), to: (i32, i32)) -> Vec<(i32, i32)> {
    let (dx, dy) = ((to.0 - from.0) as f64, (to.1 - from.1) as f64);
    let len = dx.hypot(dy).max(1.0);
    let (ux, uy) = (dx / len, dy / len);
    let back = (to.0 as f64 - ux * ARROW, to.1 as f64 - uy * ARROW);
    let side = (-uy * ARROW / 2.0, ux * ARROW / 2.0);
    vec![
        to,
        ((back.0 + side.0) as i32, (back.1 + side.1) as i32),
        ((back.0 - side.0) as i32, (back.1 - side.1) as i32),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::graphs::pingpong_graph_at;
    use crate::workloads::mixed_dag;
    use grosr::DevicePtr;

    /// A file in the temp folder, removed when dropped.
    struct Temp(std::path::PathBuf);

    impl Temp {
        fn new(name: &str) -> Temp {
            Temp(std::env::temp_dir().join(format!("grosr-{}-{name}.svg", std::process::id())))
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn check_picture(g: &TaskGraph, name: &str) {
        let file = Temp::new(name);
        assert!(draw_graph(g, name, &file.0).unwrap());
        let svg = std::fs::read_to_string(&file.0).unwrap();
        assert!(svg.contains(name), "the title");
        for id in g.levels().unwrap().into_iter().flatten() {
            let label = g.node_label(id).unwrap();
            for line in label.lines() {
                assert!(svg.contains(&format!(">\n{line}\n<")), "{line:?} not drawn");
            }
        }
        // One line and one arrow head per edge, two rectangles per node (fill and border) and
        // the background.
        assert_eq!(svg.matches("<polyline").count(), g.edge_count());
        assert_eq!(svg.matches("<polygon").count(), g.edge_count());
        assert_eq!(svg.matches("<rect").count(), 2 * g.node_count() + 1);
    }

    #[test]
    fn a_small_graph_is_drawn_with_every_label_and_edge() {
        let null = DevicePtr::null();
        check_picture(&pingpong_graph_at(null, null, 3).unwrap(), "pingpong");
        let shape = mixed_dag::SMALL;
        let dag = mixed_dag::generate(&shape, 1).unwrap();
        let g = mixed_dag::task_graph(&dag, DevicePtr::null(), null, null).unwrap();
        assert!(g.levels().unwrap().len() == shape.levels as usize);
        check_picture(&g, "mixed");
    }

    #[test]
    fn a_large_graph_is_not_drawn_and_a_cycle_is_an_error() {
        let null = DevicePtr::null();
        let file = Temp::new("large");
        let large = pingpong_graph_at(null, null, MAX_NODES as u32).unwrap();
        assert!(!draw_graph(&large, "large", &file.0).unwrap());
        assert!(!file.0.exists());

        let mut cycle = pingpong_graph_at(null, null, 1).unwrap();
        let (a, b) = cycle.edges().next().unwrap();
        cycle.add_edge(b, a).unwrap();
        assert!(draw_graph(&cycle, "cycle", &Temp::new("cycle").0).is_err());
    }
}
