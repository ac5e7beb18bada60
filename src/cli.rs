//! Command-line interface definitions (clap).

use clap::{Args, Parser, Subcommand};
use rbd::measure::bench::BenchArgs;
use rbd::train::config::RunOptions;
use rbd::train::data::DataConfig;
use rbd::train::kinds::{DatasetSpec, PresetSource};
use rbd::train::ScheduleSpec;
use rbd_engine::random_bases::DistributionKind;
use rbd_engine::DeviceChoice;
use rbd_models::ModelKind;
use rbd_optim::config::at_least_one;
use rbd_optim::{BaseSharing, OptimizerKind, Settings};
use std::path::PathBuf;

/// Random bases descent on a hand-written WebGPU tensor engine.
#[derive(Parser, Debug)]
#[command(
    name = "rbd",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("RBD_COMMIT"), ")"),
    about,
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every wgpu adapter with its limits and features (one line per physical
    /// device; a GPU seen through Vulkan and GL is listed once, as Vulkan).
    Devices(DevicesArgs),
    /// Print the parameter count D of every model on every data set.
    Models,
    /// Train a model (SGD, RBD, FPD, NES, hybrid schedules).
    Train(Box<TrainArgs>),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Where the time of one training step goes: per phase, layer and op.
    Profile(Box<rbd::measure::profile::ProfileArgs>),
    /// Experiments of the paper's supplementary material.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Reproduce an artefact of the paper (quick, table1, fig1, b6 … b15) from its
    /// manifest, resumably, with results beside the paper's in results/ARTEFACT/.
    Reproduce(ReproduceArgs),
    /// Tune a learning rate with Table 4's protocol (75/25 split, lowest held-out loss).
    Tune(TuneArgs),
    /// Results trees: seal finished runs, export a run's rows.
    #[command(subcommand)]
    Results(ResultsCommand),
}

/// `rbd results`.
#[derive(Subcommand, Debug)]
pub enum ResultsCommand {
    /// Bring a results tree to today's form, losing nothing: rename runs named with a
    /// `^` (`lr2^-1` becomes `lr2pow-1`), seal every finished or diverged run into one
    /// record and move it into its folder's `sealed-runs.jsonl.gz` (each checked by
    /// reading it back before anything goes); runs in progress stay open. Safe to run
    /// again.
    Migrate(MigrateArgs),
    /// Print a run's rows as CSV (`metrics.csv`, `steps.csv` of an open run), sealed,
    /// packed or not.
    Export(ExportArgs),
}

/// Options of `rbd results migrate`.
#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    /// The results tree.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
}

/// Options of `rbd results export`.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// The run directory.
    pub run: PathBuf,
    /// Which rows: the per-epoch metrics or the per-step rows.
    #[arg(long, value_enum, default_value = "metrics")]
    pub csv: ExportRows,
}

/// The rows `rbd results export` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportRows {
    /// `metrics.csv`: one row per epoch.
    Metrics,
    /// `steps.csv`: one row per logged step.
    Steps,
}

/// Options of `rbd devices`.
#[derive(Args, Debug, Clone)]
pub struct DevicesArgs {
    /// Print JSON: the cpu backend and every adapter, best first, with `is_gpu` and
    /// `vulkan_discrete` (what scripts/gpu-check.sh requires) spelled out.
    #[arg(long)]
    pub json: bool,
}

/// Options of `rbd reproduce`.
#[derive(Args, Debug, Clone)]
pub struct ReproduceArgs {
    /// The artefact: quick, table1, table1-tuned, table1-plain, table1-table4,
    /// table1-nes-update, table1-cifar10, fig1, b6,
    /// b7, b7-fc-mnist, b7-fastfood, b8, b9, b10, b11, b12, b13, b14, b15, fastfood, rademacher, or a
    /// manifest file NAME.toml;
    /// or `campaign`: the whole plan of `reproduce/campaign.toml`, worked down in order;
    /// or `all` (with --summarize or --check): every generated text of results/.
    pub artefact: String,
    /// A shorter (or longer) budget than the paper's, stated in every output.
    #[arg(long, allow_hyphen_values = true, value_parser = at_least_one)]
    pub epochs: Option<u64>,
    /// Seeds per run (default: the manifest's, 3 for the paper's artefacts).
    #[arg(long, allow_hyphen_values = true, value_parser = at_least_one)]
    pub seeds: Option<u64>,
    /// Only the run with this id, or (a text that is no id) the runs whose id contains
    /// it; repeatable, e.g. --only fc-mnist.
    #[arg(long)]
    pub only: Vec<String>,
    /// Device of every run: auto, gpu, cpu or wgpu-cpu.
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// List the runs with a time estimate from steps measured on this machine.
    #[arg(long)]
    pub dry_run: bool,
    /// Train nothing: rewrite results/ARTEFACT's summary, table and plots from the runs
    /// on disk (finished or not); with `all`, every artefact's, results/README.md and the
    /// status section of README.md.
    #[arg(long, conflicts_with = "dry_run")]
    pub summarize: bool,
    /// With `all`: write nothing, list every generated file that differs from what the
    /// runs give and every number typed by hand in a findings file; exit 1 if any.
    #[arg(long, conflicts_with_all = ["dry_run", "summarize"])]
    pub check: bool,
    /// Where results go.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Where data sets are kept (default: $RBD_DATA or the user cache directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Campaign: show what is done, running and left, with the hours left estimated here
    /// and each finished run's estimate against its measured time; trains nothing.
    #[arg(long, conflicts_with_all = ["dry_run", "summarize"])]
    pub status: bool,
    /// Campaign: stop after this many hours (the current run keeps its checkpoint; the
    /// same command continues it).
    #[arg(long, value_parser = positive_hours)]
    pub hours: Option<f64>,
    /// Campaign: with --hours, start only runs (and rate searches) whose estimate here
    /// ends within the hours left; the rest wait for a longer session. For a machine
    /// that will be given back: a checkpoint does not outlive its machine.
    #[arg(long, requires = "hours")]
    pub fit: bool,
    /// Campaign: commit each finished run's results folder with git as it finishes.
    #[arg(long)]
    pub commit: bool,
    /// Campaign: a plan file instead of the built-in reproduce/campaign.toml.
    #[arg(long)]
    pub plan: Option<PathBuf>,
}

fn positive_hours(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(h) if h > 0.0 && h.is_finite() => Ok(h),
        _ => Err(format!("'{text}' is not a positive number of hours")),
    }
}

/// Options of `rbd tune`.
#[derive(Args, Debug, Clone)]
pub struct TuneArgs {
    /// Model: fc, cnn, resnet8, resnet32.
    #[arg(long)]
    pub model: ModelKind,
    /// Data set: mnist, fmnist, cifar10, or idx:DIR.
    #[arg(long)]
    pub dataset: DatasetSpec,
    /// Optimizer: sgd, rbd, fpd, nes.
    #[arg(long)]
    pub optimizer: OptimizerKind,
    /// Epochs per trial (Table 4 tuned over the full budget; fewer is cheaper).
    #[arg(long, default_value = "5", allow_hyphen_values = true, value_parser = at_least_one)]
    pub epochs: u64,
    /// The data a trial trains on (held out before the 75/25 split).
    #[command(flatten)]
    pub data: DataConfig,
    /// The optimisers' settings (a tuned rate belongs to the settings it was tuned at).
    #[command(flatten)]
    pub settings: Settings,
    /// Seed.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub seed: u64,
    /// Device: auto, gpu, cpu or wgpu-cpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Where results go (results/tune/...).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Where data sets are kept.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// GFLOP/s of matmul and the paper CNN's conv layers on every backend.
    Kernels(BenchArgs),
    /// Random numbers per second and step time of the fused random-bases operation.
    Rbd(BenchArgs),
}

/// Experiments.
#[derive(Subcommand, Debug)]
pub enum ExperimentCommand {
    /// Figure B.8: cosine similarity of random vector pairs against dimension.
    Orthogonality(OrthogonalityArgs),
}

/// Options of the orthogonality experiment.
#[derive(Args, Debug, Clone)]
pub struct OrthogonalityArgs {
    /// Output directory (CSV and plot).
    #[arg(long, default_value = "runs/orthogonality")]
    pub out: PathBuf,
    /// Pairs per dimension.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Largest dimension as a power of ten (the paper goes to 8).
    #[arg(long, default_value_t = 8)]
    pub max_exponent: u32,
    /// Seed of the direction stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Direction distribution.
    #[arg(long, default_value = "gaussian")]
    pub distribution: DistributionKind,
}

/// A learning rate: `2^-6`, `2^(-6)` or a positive decimal.
fn learning_rate(text: &str) -> Result<f64, String> {
    rbd::lr::parse_lr(text)
}

/// Options of `rbd train`.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Model: fc, cnn, resnet8, resnet32.
    #[arg(long, default_value = "cnn")]
    pub model: ModelKind,
    /// Data set: mnist, fmnist, cifar10, or idx:DIR (a directory with the four
    /// MNIST-named IDX files, no checksum).
    #[arg(long, default_value = "mnist")]
    pub dataset: DatasetSpec,
    /// Optimizer: sgd, rbd, fpd, nes, rbd-materialized.
    #[arg(long, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    /// Hybrid schedule, e.g. `rbd:10,sgd` (RBD until epoch 10, then SGD); an entry may
    /// carry its own rate: `rbd@2^-3:10,sgd@2^-6`. Replaces --optimizer.
    #[arg(long)]
    pub schedule: Option<ScheduleSpec>,
    /// Learning rate, `2^-6` or a decimal; default: the published preset (printed).
    #[arg(long, allow_hyphen_values = true, value_parser = learning_rate)]
    pub lr: Option<f64>,
    /// Which published rates fill in a missing --lr where Table 4 and the authors'
    /// released configuration differ: paper or released.
    #[arg(long, default_value = "paper")]
    pub lr_preset: PresetSource,
    /// Epochs.
    #[arg(long, default_value = "1", allow_hyphen_values = true, value_parser = at_least_one)]
    pub epochs: u64,
    /// Seed (initialisation, data order, augmentation, random bases).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub seed: u64,
    /// Run directory (metrics, plots, checkpoints); it must be empty or absent unless
    /// --overwrite. Default: runs/MODEL-DATASET-OPTIMIZER-seedN (made unique).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace whatever run the --out directory holds.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Continue the run in this directory from its last checkpoint (only --epochs to
    /// extend it, --device, --data-dir, --checkpoint-every and --quiet may be given).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// auto (a GPU if present, else cpu), gpu, cpu, or wgpu-cpu (llvmpipe).
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Where data sets are kept (default: $RBD_DATA or the user cache directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Batch size, validation hold-out, augmentation.
    #[command(flatten)]
    pub data: DataConfig,
    /// Evaluation, checkpoints and logging.
    #[command(flatten)]
    pub options: RunOptions,
    /// The optimisers' settings.
    #[command(flatten)]
    pub settings: Settings,
    /// No progress bar (one line per epoch).
    #[arg(long)]
    pub quiet: bool,
    /// Train on the K ranks of `mpirun -n K rbd train --distributed ...` (a build with
    /// `--features mpi`; see docs/distributed.md).
    #[arg(long)]
    pub distributed: bool,
    /// With --distributed, how RBD/FPD ranks share directions: per-worker (each rank its
    /// own d directions; K·d coordinates exchanged) or shared (one base; d coordinates
    /// averaged).
    #[arg(long, default_value = "per-worker", requires = "distributed")]
    pub rbd_base: BaseSharing,
    /// With --distributed, seconds a collective may wait for the other ranks before the
    /// job is stopped (a rank died or hangs).
    #[arg(long, default_value = "600", requires = "distributed", value_parser = at_least_one)]
    pub collective_timeout: u64,
}
