//! The resolved configuration of a run: every flag checked before any work starts,
//! presets filled in, written to `config.json`.

use crate::cli::TrainArgs;
use crate::lr::{format_lr, parse_lr, preset_exponent, PresetSource};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One segment of a (possibly hybrid) schedule: an optimizer until an epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// sgd, rbd, fpd, nes or rbd-materialized.
    pub optimizer: String,
    /// Learning rate.
    pub lr: f64,
    /// Where the rate came from (`--lr`, or the preset's source).
    pub lr_source: String,
    /// Last epoch (exclusive) of this segment; `None` for the rest of the run.
    pub until_epoch: Option<u64>,
}

/// Everything a run needs, as resolved from the flags.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    /// Model name.
    pub model: String,
    /// Data set name (or idx:DIR).
    pub dataset: String,
    /// The schedule (one segment for a plain run).
    pub schedule: Vec<Segment>,
    /// Epochs.
    pub epochs: u64,
    /// Seed.
    pub seed: u64,
    /// Run directory.
    pub out: PathBuf,
    /// Device choice as given.
    pub device: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Batch size.
    pub batch_size: usize,
    /// Evaluation batch size.
    pub eval_batch_size: usize,
    /// Validation images.
    pub val_size: usize,
    /// Training-image limit.
    pub train_limit: Option<usize>,
    /// 75/25 tuning split.
    pub tuning_split: bool,
    /// Test-set evaluation.
    pub eval_test: bool,
    /// Checkpoint period: `(count, unit)` with unit `epochs` or `steps`.
    pub checkpoint_every: Option<(u64, String)>,
    /// Random-bases dimension.
    pub dim: usize,
    /// `K` or `layer`.
    pub compartments: String,
    /// Split d across compartments.
    pub split_dim: bool,
    /// Direction distribution.
    pub distribution: String,
    /// Bernoulli p.
    pub bernoulli_p: f64,
    /// Generator (philox or threefry).
    pub generator: String,
    /// Gradient-correlation logging.
    pub correlation: bool,
    /// NES σ.
    pub nes_sigma: f64,
}

const OPTIMIZERS: [&str; 5] = ["sgd", "rbd", "fpd", "nes", "rbd-materialized"];

fn dataset_key(dataset: &str) -> Result<String> {
    if let Some(dir) = dataset.strip_prefix("idx:") {
        if dir.is_empty() {
            bail!("--dataset idx:DIR needs a directory");
        }
        return Ok("idx".into());
    }
    let kind: rbd_datasets::DatasetKind = dataset
        .parse()
        .map_err(|e| anyhow::anyhow!("--dataset: {e}"))?;
    Ok(kind.name().to_string())
}

/// Parses `--schedule` (or `--optimizer` with `--lr`) into segments with rates.
fn schedule(args: &TrainArgs, dataset: &str, source: PresetSource) -> Result<Vec<Segment>> {
    let spec = args
        .schedule
        .clone()
        .unwrap_or_else(|| args.optimizer.clone());
    let entries: Vec<&str> = spec.split(',').map(str::trim).collect();
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let (head, until) = match entry.split_once(':') {
            Some((h, u)) => {
                let u: u64 = u.parse().with_context(|| {
                    format!("--schedule: '{entry}': '{u}' is not an epoch number")
                })?;
                (h, Some(u))
            }
            None => (*entry, None),
        };
        if until.is_none() && i + 1 != entries.len() {
            bail!("--schedule: '{entry}' needs ':EPOCH' (only the last entry runs to the end)");
        }
        if until.is_some() && i + 1 == entries.len() && entries.len() > 1 {
            bail!("--schedule: the last entry '{entry}' runs to the end; drop ':EPOCH'");
        }
        let (name, lr_text) = match head.split_once('@') {
            Some((n, l)) => (n, Some(l.to_string())),
            None => (head, None),
        };
        if !OPTIMIZERS.contains(&name) {
            bail!(
                "--optimizer/--schedule: unknown optimizer '{name}' (expected one of {})",
                OPTIMIZERS.join(", ")
            );
        }
        let lr_text = lr_text.or_else(|| {
            if entries.len() == 1 {
                args.lr.clone()
            } else {
                None
            }
        });
        let (lr, lr_source) = match lr_text {
            Some(t) => (
                parse_lr(&t).map_err(anyhow::Error::msg)?,
                "--lr".to_string(),
            ),
            None => {
                let Some((e, src)) =
                    preset_exponent(&args.model, dataset, name, &args.distribution, source)
                else {
                    bail!(
                        "no preset learning rate for {name} on {} / {dataset}: pass --lr",
                        args.model
                    );
                };
                (
                    2f64.powi(e),
                    format!("preset {} ({src})", format_lr(2f64.powi(e))),
                )
            }
        };
        if let (Some(prev), Some(u)) = (out.last().and_then(|s: &Segment| s.until_epoch), until) {
            if u <= prev {
                bail!("--schedule: switch epochs must increase ({prev} then {u})");
            }
        }
        out.push(Segment {
            optimizer: name.to_string(),
            lr,
            lr_source,
            until_epoch: until,
        });
    }
    Ok(out)
}

impl RunConfig {
    /// Checks every flag and resolves presets; nothing is loaded or written yet.
    pub fn from_args(args: &TrainArgs) -> Result<RunConfig> {
        let dataset = dataset_key(&args.dataset)?;
        if !rbd_models::MODEL_NAMES.contains(&args.model.as_str()) {
            bail!(
                "--model: unknown model '{}' (expected one of {})",
                args.model,
                rbd_models::MODEL_NAMES.join(", ")
            );
        }
        if args.model.starts_with("resnet") && dataset != "cifar10" {
            bail!(
                "--model {} is a CIFAR-10 network; it needs --dataset cifar10 (got {})",
                args.model,
                args.dataset
            );
        }
        let source = match args.lr_preset.as_str() {
            "paper" => PresetSource::Paper,
            "released" => PresetSource::Released,
            other => bail!("--lr-preset: '{other}' (expected paper or released)"),
        };
        if args.schedule.is_some() && args.lr.is_some() {
            bail!("--lr applies to a single optimizer; with --schedule write rates as rbd@2^-3:10,sgd@2^-6");
        }
        // idx:DIR data are MNIST-shaped: MNIST's presets apply.
        let preset_key = if dataset == "idx" {
            "mnist"
        } else {
            dataset.as_str()
        };
        let schedule = schedule(args, preset_key, source)?;
        args.device
            .parse::<rbd_engine::DeviceChoice>()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if args.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        if args.batch_size == 0 || args.eval_batch_size == 0 {
            bail!("--batch-size and --eval-batch-size must be at least 1");
        }
        if args.dim == 0 {
            bail!("--dim must be at least 1");
        }
        if args.compartments != "layer" {
            let k: usize = args.compartments.parse().map_err(|_| {
                anyhow::anyhow!(
                    "--compartments: '{}' is neither a number nor 'layer'",
                    args.compartments
                )
            })?;
            if k == 0 {
                bail!("--compartments must be at least 1");
            }
        }
        if !["gaussian", "uniform", "bernoulli"].contains(&args.distribution.as_str()) {
            bail!(
                "--distribution: '{}' (expected gaussian, uniform or bernoulli)",
                args.distribution
            );
        }
        if !(args.bernoulli_p > 0.0 && args.bernoulli_p < 1.0) {
            bail!("--bernoulli-p must be in (0, 1), got {}", args.bernoulli_p);
        }
        if !(args.nes_sigma > 0.0 && args.nes_sigma.is_finite()) {
            bail!("--nes-sigma must be positive, got {}", args.nes_sigma);
        }
        let generator = args.generator.clone().unwrap_or_else(|| "threefry".into());
        if !["philox", "threefry"].contains(&generator.as_str()) {
            bail!("--generator: '{generator}' (expected philox or threefry)");
        }
        let checkpoint_every = match &args.checkpoint_every {
            None => None,
            Some(s) => {
                let (num, unit) = match s.strip_suffix("steps") {
                    Some(n) => (n, "steps"),
                    None => (s.strip_suffix("epochs").unwrap_or(s), "epochs"),
                };
                let n: u64 = num.trim().parse().map_err(|_| {
                    anyhow::anyhow!("--checkpoint-every: '{s}' (expected N, Nepochs or Nsteps)")
                })?;
                if n == 0 {
                    bail!("--checkpoint-every must be at least 1");
                }
                Some((n, unit.to_string()))
            }
        };
        let name = match &args.schedule {
            Some(s) => s.replace([',', ':', '@', '^'], "-"),
            None => args.optimizer.clone(),
        };
        let out = args.out.clone().unwrap_or_else(|| {
            PathBuf::from("runs").join(format!("{}-{}-{}", args.model, dataset, name))
        });
        let data_dir = match &args.data_dir {
            Some(d) => d.clone(),
            None => rbd_datasets::default_data_dir().map_err(|e| anyhow::anyhow!("{e}"))?,
        };
        Ok(RunConfig {
            model: args.model.clone(),
            dataset: args.dataset.clone(),
            schedule,
            epochs: args.epochs,
            seed: args.seed,
            out,
            device: args.device.clone(),
            data_dir,
            batch_size: args.batch_size,
            eval_batch_size: args.eval_batch_size,
            val_size: args.val_size,
            train_limit: args.train_limit,
            tuning_split: args.tuning_split,
            eval_test: args.eval_test,
            checkpoint_every,
            dim: args.dim,
            compartments: args.compartments.clone(),
            split_dim: args.split_dim,
            distribution: args.distribution.clone(),
            bernoulli_p: args.bernoulli_p,
            generator,
            correlation: args.correlation,
            nes_sigma: args.nes_sigma,
        })
    }

    /// The segment in force at `epoch`.
    pub fn segment_at(&self, epoch: u64) -> (usize, &Segment) {
        for (i, s) in self.schedule.iter().enumerate() {
            match s.until_epoch {
                Some(u) if epoch >= u => continue,
                _ => return (i, s),
            }
        }
        let last = self.schedule.len() - 1;
        (last, &self.schedule[last])
    }
}
