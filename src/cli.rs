//! Command-line interface definitions (clap).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Random bases descent on a hand-written WebGPU tensor engine.
#[derive(Parser, Debug)]
#[command(name = "rbd", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every wgpu adapter with its limits and features.
    Devices,
    /// Print the parameter count D of every model on every data set.
    Models,
    /// Train a model (SGD, RBD, FPD, NES, hybrid schedules).
    Train(Box<TrainArgs>),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Where the time of one training step goes: per phase, layer and op.
    Profile(Box<crate::profile::ProfileArgs>),
    /// Experiments of the paper's supplementary material.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
}

/// Benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// GFLOP/s of matmul and the paper CNN's conv layers on every backend.
    Kernels(BenchArgs),
    /// Random numbers per second and step time of the fused random-bases operation.
    Rbd(BenchArgs),
}

/// Options shared by benchmarks.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Print machine-readable JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Timed repeats per measurement (after warm-up).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Backends: all, cpu, wgpu (every adapter), gpu (adapters that are not CPUs), or
    /// wgpu-cpu (the first CPU adapter).
    #[arg(long, default_value = "all")]
    pub backends: String,
    /// Smaller problem sizes (for a quick look, or slow adapters).
    #[arg(long)]
    pub quick: bool,
    /// `bench rbd`: also measure a peer in the same run (torch) and print ratios.
    #[arg(long)]
    pub peer: Option<String>,
    /// Python interpreter of the peer (default: $RBD_PEER_PYTHON, else python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
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
    pub distribution: String,
}

/// Options of `rbd train`.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Model: fc, cnn, resnet8, resnet32.
    #[arg(long, default_value = "cnn")]
    pub model: String,
    /// Data set: mnist, fmnist, cifar10, or idx:DIR (a directory with the four
    /// MNIST-named IDX files, no checksum).
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Optimizer: sgd, rbd, fpd, nes, rbd-materialized.
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    /// Hybrid schedule, e.g. `rbd:10,sgd` (RBD until epoch 10, then SGD); an entry may
    /// carry its own rate: `rbd@2^-3:10,sgd@2^-6`. Overrides --optimizer.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Learning rate, `2^-6` or a decimal; default: the paper's preset (printed).
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<String>,
    /// Which RBD presets to use where Table 4 and the released configuration differ.
    #[arg(long, default_value = "paper")]
    pub lr_preset: String,
    /// Epochs.
    #[arg(long, default_value_t = 1)]
    pub epochs: u64,
    /// Seed (initialisation, data order, augmentation, random bases).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run directory (metrics, plots, checkpoints); default runs/MODEL-DATASET-OPTIMIZER.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// auto (a GPU if present, else cpu), gpu, cpu, or wgpu-cpu (llvmpipe).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Where data sets are kept (default: $RBD_DATA or the user cache directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Training batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Evaluation batch size.
    #[arg(long, default_value_t = 1000)]
    pub eval_batch_size: usize,
    /// Images held out of the training set for validation.
    #[arg(long, default_value_t = 10_000)]
    pub val_size: usize,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Learning-rate tuning mode: train on a random 75% of the training data and
    /// validate on the other 25%.
    #[arg(long)]
    pub tuning_split: bool,
    /// Also evaluate on the test set after every epoch.
    #[arg(long)]
    pub eval_test: bool,
    /// Checkpoint every N epochs (`2`) or steps (`500steps`).
    #[arg(long)]
    pub checkpoint_every: Option<String>,
    /// Random-bases dimension d (directions per compartment unless --split-dim).
    #[arg(long, default_value_t = 250)]
    pub dim: usize,
    /// Compartments: a number K of even parts, or `layer` (one per layer).
    #[arg(long, default_value = "1")]
    pub compartments: String,
    /// Split d across the compartments instead of giving each the full d.
    #[arg(long)]
    pub split_dim: bool,
    /// Direction distribution: gaussian, uniform, bernoulli.
    #[arg(long, default_value = "gaussian")]
    pub distribution: String,
    /// Bernoulli probability p (zero-mean, unit-variance ±).
    #[arg(long, default_value_t = 0.5)]
    pub bernoulli_p: f64,
    /// Counter-based generator: threefry (default, the faster here) or philox.
    #[arg(long)]
    pub generator: Option<String>,
    /// Log the cosine of the RBD update with the gradient every step (costs a pass).
    #[arg(long)]
    pub correlation: bool,
    /// NES perturbation scale σ.
    #[arg(long, default_value_t = 0.01)]
    pub nes_sigma: f64,
    /// No progress bar (one line per epoch).
    #[arg(long)]
    pub quiet: bool,
}
