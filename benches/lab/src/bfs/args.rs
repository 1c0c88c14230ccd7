//! The `bfs` example's command line (examples/bfs.rs), parsed and checked here where tests
//! reach it. Every size has a bound, stated in `--help`, that keeps the graph to what a GPU
//! machine holds; a setting the chosen graph does not use is an error, not ignored.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};

use super::csr::Csr;
use super::{generate, read};
use crate::Result;

/// The largest `--scale`: 2^26 vertices and 2^30 edges take about 40 GB of host memory while
/// the graph is built (and 8 GB on the GPU).
pub const MAX_SCALE: u32 = 26;
/// The largest grid side (`--size` with `--graph grid`): 2^26 vertices.
pub const MAX_GRID_SIDE: u32 = 8192;
/// The longest chain (`--size` with `--graph chain`): 2^26 vertices.
pub const MAX_CHAIN: u32 = 1 << 26;
/// The most searches (`--roots`).
pub const MAX_ROOTS: u32 = 1 << 16;

/// Which graph to search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GraphKind {
    /// Graph500 Kronecker, 2^SCALE vertices, edge factor 16 (the default without --file).
    Kronecker,
    /// A SIZE × SIZE 4-neighbour grid.
    Grid,
    /// A path of SIZE vertices.
    Chain,
    /// The graph in --file (the default with --file).
    File,
}

/// Which GPU strategy to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// The resident scheduler only.
    Resident,
    /// The level-synchronous baseline only.
    LevelSync,
    /// The CUDA-graph WHILE-node baseline only.
    While,
    /// Resident and level-synchronous.
    Both,
    /// All three.
    All,
}

impl Strategy {
    /// Whether the resident BFS runs.
    pub fn resident(self) -> bool {
        matches!(self, Strategy::Resident | Strategy::Both | Strategy::All)
    }

    /// Whether the level-synchronous baseline runs.
    pub fn level_sync(self) -> bool {
        matches!(self, Strategy::LevelSync | Strategy::Both | Strategy::All)
    }

    /// Whether the WHILE-graph baseline runs.
    pub fn while_graph(self) -> bool {
        matches!(self, Strategy::While | Strategy::All)
    }
}

/// The raw command line; [`BfsArgs::parse_from`] checks it.
#[derive(Parser, Debug)]
#[command(
    name = "bfs",
    about = "BFS on grosr's resident scheduler, validated (Graph500 rules)"
)]
struct Cli {
    /// Which graph [default: kronecker, or file with --file].
    #[arg(long, value_enum)]
    graph: Option<GraphKind>,
    /// Kronecker SCALE, 1..=26: 2^SCALE vertices, 16 × 2^SCALE edges (SCALE 26 takes about
    /// 40 GB of host memory) [default: 20].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_SCALE as i64))]
    scale: Option<u32>,
    /// Grid side, 2..=8192 (SIZE² vertices), or chain length, 2..=67108864 (2^26)
    /// [default: 1024].
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=MAX_CHAIN as i64))]
    size: Option<u32>,
    /// Graph file: Matrix Market, or `u v` lines (0-based ids); `-` or /dev/stdin reads a pipe.
    /// Implies --graph file. A file of B bytes may name at most 4096 + 2 × B vertices and lines
    /// of at most 64 KiB.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Searches, 1..=65536, from random roots of degree ≥ 1.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=MAX_ROOTS as i64))]
    roots: u32,
    /// Which GPU strategy to run.
    #[arg(long, value_enum, default_value = "both")]
    strategy: Strategy,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// A graph to search, its size within the bounds above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GraphSpec {
    /// [`generate::kronecker`] of this SCALE.
    Kronecker {
        /// 2^scale vertices.
        scale: u32,
    },
    /// [`generate::grid`], side × side.
    Grid {
        /// Vertices per row and per column.
        side: u32,
    },
    /// [`generate::chain`] of n vertices.
    Chain {
        /// Vertices.
        n: u32,
    },
    /// [`read::file`] (`-`: standard input).
    File(PathBuf),
}

impl GraphSpec {
    /// Generates or reads the graph.
    pub fn build(&self) -> Result<Csr> {
        match self {
            GraphSpec::Kronecker { scale } => generate::kronecker(*scale, 1),
            GraphSpec::Grid { side } => generate::grid(*side, *side),
            GraphSpec::Chain { n } => Ok(generate::chain(*n)),
            GraphSpec::File(path) if path.as_os_str() == "-" => read::graph(std::io::stdin()),
            GraphSpec::File(path) => read::file(path),
        }
    }
}

/// The `bfs` example's settings, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfsArgs {
    /// The graph.
    pub graph: GraphSpec,
    /// Searches (1..=[`MAX_ROOTS`]).
    pub roots: usize,
    /// Which GPU strategies run.
    pub strategy: Strategy,
    /// Print JSON.
    pub json: bool,
}

impl BfsArgs {
    /// Parses a command line (the program's name first) and checks it: each number within its
    /// bound, `--scale` only for Kronecker graphs, `--size` only for grids and chains, `--file`
    /// only for (and implying) `--graph file`. The error is clap's: [`clap::Error::exit`]
    /// prints it with the usage (or the help, for `--help`).
    pub fn parse_from<I, T>(args: I) -> std::result::Result<BfsArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        let error = |what: ErrorKind, message: &str| Cli::command().error(what, message);
        let kind = match (cli.graph, &cli.file) {
            (Some(kind), _) => kind,
            (None, Some(_)) => GraphKind::File,
            (None, None) => GraphKind::Kronecker,
        };
        let name = match kind {
            GraphKind::Kronecker => "kronecker",
            GraphKind::Grid => "grid",
            GraphKind::Chain => "chain",
            GraphKind::File => "file",
        };
        // A setting the graph does not use would be silently ignored: refuse it.
        let unused = |given: bool, flag: &str, only_for: &str| match given {
            true => Err(error(
                ErrorKind::ArgumentConflict,
                &format!("{flag} is only for {only_for}, not --graph {name}"),
            )),
            false => Ok(()),
        };
        let (scale, size, file) = (cli.scale.is_some(), cli.size.is_some(), cli.file.is_some());
        let graph = match kind {
            GraphKind::Kronecker => {
                unused(size, "--size", "--graph grid or chain")?;
                unused(file, "--file", "--graph file")?;
                GraphSpec::Kronecker {
                    scale: cli.scale.unwrap_or(20),
                }
            }
            GraphKind::Grid => {
                unused(scale, "--scale", "--graph kronecker")?;
                unused(file, "--file", "--graph file")?;
                let side = cli.size.unwrap_or(1024);
                if side > MAX_GRID_SIDE {
                    return Err(error(
                        ErrorKind::ValueValidation,
                        &format!(
                            "a grid side of {side} is above {MAX_GRID_SIDE} \
                             ({MAX_GRID_SIDE}² = 2^26 vertices)"
                        ),
                    ));
                }
                GraphSpec::Grid { side }
            }
            GraphKind::Chain => {
                unused(scale, "--scale", "--graph kronecker")?;
                unused(file, "--file", "--graph file")?;
                GraphSpec::Chain {
                    n: cli.size.unwrap_or(1024),
                }
            }
            GraphKind::File => {
                unused(scale, "--scale", "--graph kronecker")?;
                unused(size, "--size", "--graph grid or chain")?;
                let Some(path) = cli.file else {
                    return Err(error(
                        ErrorKind::MissingRequiredArgument,
                        "--graph file needs --file PATH",
                    ));
                };
                GraphSpec::File(path)
            }
        };
        Ok(BfsArgs {
            graph,
            roots: cli.roots as usize,
            strategy: cli.strategy,
            json: cli.json,
        })
    }
}
