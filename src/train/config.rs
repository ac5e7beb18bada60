//! The configuration of a run: typed, validated once before anything is loaded or
//! written, and stored as `config.json` in the run directory.
//!
//! Errors name the configuration field (`dim`, `schedule`, ...), never a command-line
//! flag: the CLI maps fields to its flags.

use super::data::DataConfig;
use super::kinds::{CheckpointEvery, DatasetSpec, PresetSource};
use crate::lr::{format_lr, parse_lr, preset_exponent};
use rbd_engine::random_bases::DistributionKind;
use rbd_engine::DeviceChoice;
use rbd_models::ModelKind;
use rbd_optim::config::{at_least_one, count, defaults};
pub use rbd_optim::ConfigError;
use rbd_optim::{NesEpochs, OptimizerKind, Settings};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One entry of a schedule as written: `rbd`, `rbd@2^-3`, `rbd:10`, `rbd@2^-3:10`.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentSpec {
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Its rate, if written.
    pub lr: Option<f64>,
    /// The epoch at which the next entry takes over (`None` for the last entry).
    pub until_epoch: Option<u64>,
}

/// A schedule as written: `rbd:10,sgd` runs RBD for epochs 1–10, then SGD.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleSpec(pub Vec<SegmentSpec>);

impl ScheduleSpec {
    /// A single optimiser for the whole run.
    pub fn single(optimizer: OptimizerKind) -> Self {
        ScheduleSpec(vec![SegmentSpec {
            optimizer,
            lr: None,
            until_epoch: None,
        }])
    }
}

impl FromStr for ScheduleSpec {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let entries: Vec<&str> = text.split(',').map(str::trim).collect();
        let mut out: Vec<SegmentSpec> = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let last = i + 1 == entries.len();
            let (head, until) = match entry.split_once(':') {
                Some((h, u)) => {
                    let u: u64 = u
                        .parse()
                        .map_err(|_| format!("'{entry}': '{u}' is not an epoch number"))?;
                    (h, Some(u))
                }
                None => (*entry, None),
            };
            match (until, last) {
                (None, false) => {
                    return Err(format!(
                        "'{entry}' needs ':EPOCH' (only the last entry runs to the end)"
                    ))
                }
                (Some(_), true) if entries.len() > 1 => {
                    return Err(format!(
                        "the last entry '{entry}' runs to the end; drop ':EPOCH'"
                    ))
                }
                (Some(_), true) => {
                    return Err(format!(
                        "'{entry}': a single optimizer runs to the end; drop ':EPOCH'"
                    ))
                }
                _ => {}
            }
            if until == Some(0) {
                return Err(format!("'{entry}' would never run (it ends at epoch 0)"));
            }
            let (name, lr) = match head.split_once('@') {
                Some((n, l)) => (n, Some(parse_lr(l)?)),
                None => (head, None),
            };
            let optimizer: OptimizerKind = name.parse()?;
            if let (Some(prev), Some(u)) = (out.last().and_then(|s| s.until_epoch), until) {
                if u <= prev {
                    return Err(format!(
                        "switch epochs must increase ({prev} then {u}): '{entry}' would never run"
                    ));
                }
            }
            out.push(SegmentSpec {
                optimizer,
                lr,
                until_epoch: until,
            });
        }
        Ok(ScheduleSpec(out))
    }
}

/// One segment of a (possibly hybrid) schedule, with its rate resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    #[serde(with = "crate::nonfinite::float")]
    pub lr: f64,
    /// Where the rate came from (given, or which published preset).
    pub lr_source: String,
    /// Last epoch (exclusive) of this segment; `None` for the rest of the run.
    pub until_epoch: Option<u64>,
}

/// Checks that the model can train on the data set.
pub fn check_model_data(model: ModelKind, dataset: &DatasetSpec) -> Result<(), ConfigError> {
    if matches!(model, ModelKind::Resnet8 | ModelKind::Resnet32)
        && *dataset != DatasetSpec::Known(rbd_datasets::DatasetKind::Cifar10)
    {
        return Err(ConfigError::new(
            "model",
            format!("{model} is a CIFAR-10 network; it needs the cifar10 data set (got {dataset})"),
        ));
    }
    Ok(())
}

/// Resolves the rates of a schedule: a written rate wins (`lr` applies to a
/// single-optimiser schedule), otherwise the published preset of `source`.
pub fn resolve_schedule(
    spec: &ScheduleSpec,
    lr: Option<f64>,
    model: ModelKind,
    dataset: &DatasetSpec,
    distribution: DistributionKind,
    source: PresetSource,
) -> Result<Vec<Segment>, ConfigError> {
    check_model_data(model, dataset)?;
    if spec.0.len() > 1 && lr.is_some() {
        return Err(ConfigError::new(
            "lr",
            "a single rate applies to a single optimizer; in a schedule write each entry's rate, e.g. rbd@2^-3:10,sgd@2^-6",
        ));
    }
    spec.0
        .iter()
        .map(|s| {
            let (lr, lr_source) = match s.lr.or(lr) {
                Some(lr) => (lr, "given".to_string()),
                None => {
                    let Some((e, src)) = preset_exponent(
                        model,
                        dataset.preset_key(),
                        s.optimizer,
                        distribution,
                        source,
                    ) else {
                        return Err(ConfigError::new(
                            "lr",
                            format!(
                                "no published rate for {} on {model} / {}: give one (rbd tune finds it)",
                                s.optimizer,
                                dataset.preset_key()
                            ),
                        ));
                    };
                    let lr = 2f64.powi(e);
                    (lr, format!("preset {} ({src})", format_lr(lr)))
                }
            };
            Ok(Segment {
                optimizer: s.optimizer,
                lr,
                lr_source,
                until_epoch: s.until_epoch,
            })
        })
        .collect()
}

/// How a run evaluates, checkpoints and logs, and whether it holds out Table 4's
/// tuning split: options of `rbd train` that manifests and `rbd tune` set themselves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct RunOptions {
    /// Evaluation batch size.
    #[arg(long, default_value = "1000", allow_hyphen_values = true, value_parser = count)]
    pub eval_batch_size: usize,
    /// Learning-rate tuning mode: train on a random 75% of the training data and
    /// validate on the other 25%.
    #[arg(long)]
    pub tuning_split: bool,
    /// Also evaluate on the test set after every epoch.
    #[arg(long)]
    pub eval_test: bool,
    /// Checkpoint every N epochs (`2`), every N steps (`500steps`), or never (`0`).
    #[arg(long, default_value = "1")]
    pub checkpoint_every: CheckpointEvery,
    /// Log training loss and accuracy every N steps (`steps.csv`, and the plot).
    #[arg(long = "log-every", default_value = "100", allow_hyphen_values = true, value_parser = at_least_one)]
    pub log_every_steps: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        defaults()
    }
}

/// Everything a run needs. Stored as `config.json` (one key per setting: the groups
/// are flattened); `epochs`, `checkpoint_every`, `device`, `data_dir` and
/// `log_every_steps` may change when a run is resumed, the rest is the run's identity
/// ([`RunConfig::run_id`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The network.
    pub model: ModelKind,
    /// The data.
    pub dataset: DatasetSpec,
    /// The schedule (one segment for a plain run).
    pub schedule: Vec<Segment>,
    /// Epochs to train.
    pub epochs: u64,
    /// Seed of initialisation, data order, augmentation and random bases.
    pub seed: u64,
    /// Where the tensors live.
    pub device: DeviceChoice,
    /// Where data sets are kept.
    pub data_dir: PathBuf,
    /// Batch size, split and augmentation.
    #[serde(flatten)]
    pub data: DataConfig,
    /// Evaluation, checkpoints, logging.
    #[serde(flatten)]
    pub options: RunOptions,
    /// Every optimiser's settings.
    #[serde(flatten)]
    pub settings: Settings,
    /// Changes made when the run was resumed (e.g. `epochs 3 -> 5`), oldest first.
    #[serde(default)]
    pub resumed_with: Vec<String>,
    /// Distributed training over K ranks (absent for one process, so single-process
    /// run ids are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed: Option<super::team::DistributedSpec>,
}

/// Reads a run's stored configuration (`config.json`), naming the file in every error.
/// It is not validated here: a resume may change it first ([`RunConfig::validate`]).
pub fn read_config(path: &Path) -> anyhow::Result<RunConfig> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a valid run configuration", path.display()))
}

/// [`read_config`], then [`RunConfig::validate`], naming the file in its error (a
/// stored configuration that cannot run was edited by hand or by an older rbd).
pub fn load_config(path: &Path) -> anyhow::Result<RunConfig> {
    let cfg = read_config(path)?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(cfg)
}

/// What validation learned about the model, for the caller's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// D, the number of trainable parameters.
    pub num_params: usize,
}

impl RunConfig {
    /// The defaults of `rbd train` for a model, data set and schedule.
    pub fn new(model: ModelKind, dataset: DatasetSpec, schedule: Vec<Segment>) -> Self {
        RunConfig {
            model,
            dataset,
            schedule,
            epochs: 1,
            seed: 0,
            device: DeviceChoice::Auto,
            data_dir: PathBuf::new(),
            data: DataConfig::default(),
            options: RunOptions::default(),
            settings: Settings::default(),
            resumed_with: Vec::new(),
            distributed: None,
        }
    }

    /// A run of `model` on `dataset` with `schedule`, `data` and `settings`, the rest at
    /// the defaults: how the command line and the manifests make a run. The variants of
    /// optimisers the schedule does not train are put back to their defaults, so a
    /// configuration records only the variants it runs.
    pub fn build(
        model: ModelKind,
        dataset: DatasetSpec,
        schedule: Vec<Segment>,
        data: DataConfig,
        mut settings: Settings,
    ) -> Self {
        let mut cfg = RunConfig::new(model, dataset, schedule);
        settings.clear_inert(&cfg.runs());
        cfg.data = data;
        cfg.settings = settings;
        cfg
    }

    /// The optimisers of the schedule, in order.
    pub fn runs(&self) -> Vec<OptimizerKind> {
        self.schedule.iter().map(|s| s.optimizer).collect()
    }

    /// Whether the schedule trains `optimizer`.
    pub fn uses(&self, optimizer: OptimizerKind) -> bool {
        self.schedule.iter().any(|s| s.optimizer == optimizer)
    }

    /// Checks every field, and the fields against each other and against the model's
    /// D, without loading data or touching the disk.
    pub fn validate(&self) -> Result<Checked, ConfigError> {
        if self.epochs == 0 {
            return Err(ConfigError::new("epochs", "must be at least 1"));
        }
        self.data.validate()?;
        if self.options.eval_batch_size == 0 {
            return Err(ConfigError::new("eval_batch_size", "must be at least 1"));
        }
        if self.options.log_every_steps == 0 {
            return Err(ConfigError::new("log_every_steps", "must be at least 1"));
        }
        self.validate_nes_epochs()?;
        self.validate_distributed()?;
        self.settings.validate()?;
        check_model_data(self.model, &self.dataset)?;
        self.validate_schedule()?;
        self.validate_split()?;
        let (num_params, compartments) = self.parameter_count()?;
        self.settings
            .check_fit(&self.runs(), num_params, compartments)?;
        Ok(Checked { num_params })
    }

    fn validate_schedule(&self) -> Result<(), ConfigError> {
        if self.schedule.is_empty() {
            return Err(ConfigError::new("schedule", "is empty"));
        }
        let mut prev = 0;
        for (i, s) in self.schedule.iter().enumerate() {
            let last = i + 1 == self.schedule.len();
            match s.until_epoch {
                Some(u) if last => {
                    return Err(ConfigError::new(
                        "schedule",
                        format!(
                            "the last entry ({}) runs to the end; it has no switch epoch (got {u})",
                            s.optimizer
                        ),
                    ))
                }
                Some(u) if u <= prev => {
                    return Err(ConfigError::new(
                        "schedule",
                        format!(
                            "{} would never run: it ends at epoch {u}, after epoch {prev}",
                            s.optimizer
                        ),
                    ))
                }
                Some(u) if u >= self.epochs => {
                    let next = self.schedule[i + 1].optimizer;
                    return Err(ConfigError::new(
                        "schedule",
                        format!(
                            "{next} would never run: the switch at epoch {u} is not before the end of the {}-epoch run",
                            self.epochs
                        ),
                    ));
                }
                Some(u) => prev = u,
                None if !last => {
                    return Err(ConfigError::new(
                        "schedule",
                        format!(
                            "{} needs a switch epoch (only the last entry runs to the end)",
                            s.optimizer
                        ),
                    ))
                }
                None => {}
            }
            if !(s.lr.is_finite() && s.lr > 0.0) {
                return Err(ConfigError::new(
                    "lr",
                    format!(
                        "{} has rate {}: must be a positive finite number",
                        s.optimizer, s.lr
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The settings (by field name) that cannot change this run's trajectory: an
    /// optimiser's variant without that optimiser ([`Settings::inert`]), the augmentation
    /// order off CIFAR-10. They are not part of its identity (`run_id`) or of a tuning
    /// key.
    pub fn inert_settings(&self) -> Vec<&'static str> {
        let mut inert = self.settings.inert(&self.runs());
        inert.extend(self.data.inert(&self.dataset));
        inert
    }

    /// Whether NES updates take their batches from one stream over the data's epochs
    /// (the `released` or `update` accounting, in a run that trains NES).
    pub fn nes_straddles(&self) -> bool {
        self.settings.nes.nes_epochs != NesEpochs::Whole && self.uses(OptimizerKind::Nes)
    }

    /// Whether a run epoch is one NES update (the `update` accounting, in a run that
    /// trains NES).
    pub fn nes_update_per_epoch(&self) -> bool {
        self.nes_straddles() && self.settings.nes.nes_epochs == NesEpochs::Update
    }

    /// The streamed NES accountings run one optimiser on one process: a straddling
    /// update would otherwise cross a switch of optimiser, or the ranks' shards.
    fn validate_nes_epochs(&self) -> Result<(), ConfigError> {
        if !self.nes_straddles() {
            return Ok(());
        }
        let name = self.settings.nes.nes_epochs;
        if self.schedule.len() > 1 {
            return Err(ConfigError::new(
                "nes_epochs",
                format!("{name} (updates from one stream of batches) needs a schedule of NES alone, not one that switches optimizers"),
            ));
        }
        if self.distributed.is_some() {
            return Err(ConfigError::new(
                "nes_epochs",
                format!("{name} (updates from one stream of batches) cannot train distributed"),
            ));
        }
        Ok(())
    }

    /// Checks what a distributed run can train.
    fn validate_distributed(&self) -> Result<(), ConfigError> {
        let Some(d) = &self.distributed else {
            return Ok(());
        };
        if d.ranks == 0 {
            return Err(ConfigError::new("distributed", "needs at least 1 rank"));
        }
        if let Some(s) = self.schedule.iter().find(|s| !s.optimizer.distributes()) {
            return Err(ConfigError::new(
                "distributed",
                format!(
                    "{} cannot train distributed (sgd, rbd and fpd can)",
                    s.optimizer
                ),
            ));
        }
        if self.settings.rbd.correlation {
            return Err(ConfigError::new(
                "correlation",
                "is not logged in distributed runs",
            ));
        }
        Ok(())
    }

    /// Checks the train/validation split where the data set's size is known up front.
    fn validate_split(&self) -> Result<(), ConfigError> {
        let DatasetSpec::Known(kind) = &self.dataset else {
            return Ok(()); // IDX data: checked once its header is read.
        };
        let n = kind.count(rbd_datasets::Split::Train);
        let n = self.data.train_limit.map_or(n, |l| l.min(n));
        self.check_split(n).map(|_| ())
    }

    /// Training images after the validation hold-out of `n`, or why there are too few.
    pub fn check_split(&self, n: usize) -> Result<usize, ConfigError> {
        let data = &self.data;
        if data.val_size >= n {
            return Err(ConfigError::new(
                "val_size",
                format!(
                    "holding out {} images leaves nothing to train on ({n} training images)",
                    data.val_size
                ),
            ));
        }
        let train = n - data.val_size;
        let train = if self.options.tuning_split {
            train * 3 / 4
        } else {
            train
        };
        if train < data.batch_size {
            return Err(ConfigError::new(
                "batch_size",
                format!(
                    "{train} training images are fewer than one batch of {}",
                    data.batch_size
                ),
            ));
        }
        let batches = train / data.batch_size;
        for s in &self.schedule {
            // NES: a population of d needs d batches per step.
            let per_step = s.optimizer.batches_per_step(&self.settings);
            if per_step > batches {
                return Err(ConfigError::new(
                    "dim",
                    format!(
                        "{} with a population of {per_step} needs {per_step} batches per step, but an epoch has only {batches}",
                        s.optimizer
                    ),
                ));
            }
        }
        Ok(train)
    }

    /// D and the number of compartments the configuration asks for, on this data set.
    pub fn parameter_count(&self) -> Result<(usize, usize), ConfigError> {
        let (c, h, w) = self.dataset.shape();
        let model = rbd_models::build(self.model, c, h, w, &rbd_engine::Device::Cpu)
            .map_err(|e| ConfigError::new("model", e.to_string()))?;
        let layout = model.layout();
        let k = self
            .settings
            .directions
            .compartments
            .count(&layout.layer_ranges(), &layout.tensor_offsets());
        Ok((layout.total, k))
    }

    /// The segment in force at `epoch` (0-based) and its index.
    pub fn segment_at(&self, epoch: u64) -> (usize, &Segment) {
        let i = self
            .schedule
            .iter()
            .position(|s| s.until_epoch.is_none_or(|u| epoch < u))
            .unwrap_or(self.schedule.len() - 1);
        (i, &self.schedule[i])
    }

    /// A short hash of everything that defines the run's trajectory (all but the
    /// fields a resume may change), stored in checkpoints to catch a checkpoint from
    /// another run.
    pub fn run_id(&self) -> String {
        let mut v = serde_json::to_value(self).expect("a RunConfig serialises");
        if let Some(map) = v.as_object_mut() {
            for key in self.inert_settings() {
                map.remove(key);
            }
            for key in [
                "epochs",
                "checkpoint_every",
                "device",
                "data_dir",
                "log_every_steps",
                "resumed_with",
            ] {
                map.remove(key);
            }
        }
        // serde_json maps are ordered by key: the text is canonical.
        let digest = Sha256::digest(v.to_string().as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbd_datasets::DatasetKind;
    use rbd_optim::{BasesKind, Compartments, FpdVariant};

    fn cfg(schedule: &str, epochs: u64) -> RunConfig {
        let spec: ScheduleSpec = schedule.parse().unwrap();
        let ds = DatasetSpec::Known(DatasetKind::Mnist);
        let segs = resolve_schedule(
            &spec,
            None,
            ModelKind::Fc,
            &ds,
            DistributionKind::Gaussian,
            PresetSource::Paper,
        )
        .unwrap();
        let mut c = RunConfig::new(ModelKind::Fc, ds, segs);
        c.epochs = epochs;
        c
    }

    #[test]
    fn schedules_that_cannot_run_are_refused() {
        assert!("rbd:0,sgd".parse::<ScheduleSpec>().is_err());
        assert!("rbd:5,sgd:3,fpd".parse::<ScheduleSpec>().is_err());
        assert!("rbd,sgd".parse::<ScheduleSpec>().is_err());
        assert!("rbd:3".parse::<ScheduleSpec>().is_err());
        let e = cfg("rbd:5,sgd", 2).validate().unwrap_err();
        assert_eq!(e.field, "schedule");
        assert!(e.message.contains("sgd would never run"), "{e}");
        assert!(cfg("rbd:1,sgd", 2).validate().is_ok());
    }

    #[test]
    fn directions_are_checked_against_d() {
        let mut c = cfg("rbd", 1);
        c.settings.directions.dim = 101_771;
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "dim");
        assert!(e.message.contains("101770"), "{e}");
        c.settings.directions.dim = 1_000_000_000_000;
        assert_eq!(c.validate().unwrap_err().field, "dim");
        c.settings.directions.dim = 250;
        c.settings.directions.compartments = Compartments::Even(200_000);
        assert_eq!(c.validate().unwrap_err().field, "compartments");
        c.settings.directions.compartments = Compartments::PerLayer;
        c.settings.directions.split_dim = true;
        c.settings.directions.dim = 1;
        assert_eq!(c.validate().unwrap_err().field, "split_dim");
        // The released code's capped compartments: FC's 100,352-weight kernel is cut
        // into 3 pieces of at most 50,000, the other three tensors stay whole: 6.
        c.settings.directions.compartments = Compartments::Capped(50_000);
        c.settings.directions.split_dim = true;
        c.settings.directions.dim = 5;
        let e = c.validate().unwrap_err();
        assert!(e.message.contains("across 6 compartments"), "{e}");
        c.settings.directions.dim = 6;
        assert!(c.validate().is_ok());
        // SGD ignores d.
        let mut s = cfg("sgd", 1);
        s.settings.directions.dim = 1_000_000_000_000;
        assert!(s.validate().is_ok());
    }

    #[test]
    fn the_split_is_checked_before_loading() {
        let mut c = cfg("sgd", 1);
        c.data.val_size = 0;
        assert_eq!(c.validate().unwrap_err().field, "val_size");
        c.data.val_size = 60_000;
        assert_eq!(c.validate().unwrap_err().field, "val_size");
        c.data.val_size = 100;
        c.data.train_limit = Some(120);
        assert_eq!(c.validate().unwrap_err().field, "batch_size");
    }

    #[test]
    fn run_id_ignores_what_a_resume_may_change() {
        let a = cfg("rbd", 1);
        let mut b = a.clone();
        b.epochs = 7;
        b.device = DeviceChoice::Cpu;
        b.options.checkpoint_every = CheckpointEvery::Steps(3);
        assert_eq!(a.run_id(), b.run_id());
        // A variant of an optimiser the run does not use is not its identity.
        b.settings.fpd.fpd_variant = FpdVariant::Released;
        b.settings.nes.nes_epochs = NesEpochs::Released;
        assert_eq!(a.run_id(), b.run_id());
        b.seed = 1;
        assert_ne!(a.run_id(), b.run_id());
    }

    #[test]
    fn augmentation_off_is_a_different_run_and_on_keeps_old_ids() {
        let on = cfg("fpd", 1);
        let text = serde_json::to_string(&on).unwrap();
        assert!(!text.contains("augment\""), "{text}");
        let back: RunConfig = serde_json::from_str(&text).unwrap();
        assert!(back.data.augment);
        let mut off = on.clone();
        off.data.augment = false;
        assert_ne!(on.run_id(), off.run_id());
        let back: RunConfig = serde_json::from_str(&serde_json::to_string(&off).unwrap()).unwrap();
        assert!(!back.data.augment);
    }

    #[test]
    fn fastfood_bases_are_another_run_and_iid_keeps_old_ids() {
        let iid = cfg("rbd", 1);
        let text = serde_json::to_string(&iid).unwrap();
        assert!(!text.contains("bases"), "{text}");
        let mut ff = iid.clone();
        ff.settings.directions.bases = BasesKind::Fastfood;
        let text = serde_json::to_string(&ff).unwrap();
        assert!(text.contains("\"bases\":\"fastfood\""), "{text}");
        assert_ne!(iid.run_id(), ff.run_id());
        let back: RunConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back.settings.directions.bases, BasesKind::Fastfood);
        assert!(ff.validate().is_ok());
        // Refused, naming the setting: a schedule without directions, and the shifted
        // Bernoulli.
        let mut sgd = cfg("sgd", 1);
        sgd.settings.directions.bases = BasesKind::Fastfood;
        let e = sgd.validate().unwrap_err();
        assert_eq!(e.field, "bases", "{}", e.message);
        ff.settings.directions.distribution = DistributionKind::BernoulliReleased;
        let e = ff.validate().unwrap_err();
        assert!(
            e.field == "bases" && e.message.contains("bernoulli-released"),
            "{}",
            e.message
        );
        ff.settings.directions.distribution = DistributionKind::Rademacher;
        let e = ff.validate().unwrap_err();
        assert!(
            e.field == "bases" && e.message.contains("--distribution rademacher"),
            "{}",
            e.message
        );
    }

    #[test]
    fn nes_epochs_is_identity_only_off_its_default_and_only_for_nes() {
        let whole = cfg("nes", 2);
        let text = serde_json::to_string(&whole).unwrap();
        // The default is not written: configurations from before the variant existed
        // read back to the same run id.
        assert!(!text.contains("nes_epochs"), "{text}");
        let mut released = whole.clone();
        released.settings.nes.nes_epochs = NesEpochs::Released;
        let text = serde_json::to_string(&released).unwrap();
        assert!(text.contains("\"nes_epochs\":\"released\""), "{text}");
        assert_ne!(whole.run_id(), released.run_id());
        let back: RunConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back.settings.nes.nes_epochs, NesEpochs::Released);
        assert_eq!(back.run_id(), released.run_id());
    }

    #[test]
    fn streamed_nes_epochs_refuse_schedules_and_distribution() {
        for streamed in [NesEpochs::Released, NesEpochs::Update] {
            let mut c = cfg("nes@2^-3:1,sgd", 2);
            c.settings.nes.nes_epochs = streamed;
            let e = c.validate().unwrap_err();
            assert_eq!(e.field, "nes_epochs");
            assert!(e.message.contains("NES alone"), "{e}");
            assert!(e.message.starts_with(&streamed.to_string()), "{e}");
            // Whole epochs mix with other optimisers as before.
            c.settings.nes.nes_epochs = NesEpochs::Whole;
            assert!(c.validate().is_ok());
            let mut d = cfg("nes", 2);
            d.settings.nes.nes_epochs = streamed;
            assert!(d.validate().is_ok());
            assert!(d.nes_straddles());
            assert_eq!(d.nes_update_per_epoch(), streamed == NesEpochs::Update);
            d.distributed = Some(crate::train::team::DistributedSpec {
                ranks: 2,
                rbd_base: rbd_optim::BaseSharing::PerWorker,
            });
            assert_eq!(d.validate().unwrap_err().field, "nes_epochs");
            // A run without NES ignores the setting.
            let mut r = cfg("rbd", 1);
            r.settings.nes.nes_epochs = streamed;
            assert!(r.validate().is_ok() && !r.nes_straddles() && !r.nes_update_per_epoch());
        }
    }

    #[test]
    fn config_round_trips_through_json() {
        let mut a = cfg("rbd@2^-3:2,sgd", 4);
        a.settings.directions.compartments = Compartments::PerLayer;
        a.options.checkpoint_every = CheckpointEvery::Steps(50);
        let text = serde_json::to_string_pretty(&a).unwrap();
        assert!(text.contains("\"optimizer\": \"rbd\""), "{text}");
        let b: RunConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_stored_configuration_names_its_file_in_every_error() {
        let dir = std::env::temp_dir().join(format!("rbd-load-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        let good = cfg("rbd", 2);
        std::fs::write(&path, serde_json::to_string_pretty(&good).unwrap()).unwrap();
        assert_eq!(load_config(&path).unwrap(), good);
        // Valid JSON that cannot run: the field, and the file (not a flag nobody gave).
        let mut bad = good.clone();
        bad.settings.directions.dim = 0;
        std::fs::write(&path, serde_json::to_string_pretty(&bad).unwrap()).unwrap();
        let e = format!("{:#}", load_config(&path).unwrap_err());
        assert_eq!(e, format!("{}: dim: must be at least 1", path.display()));
        assert_eq!(
            read_config(&path).unwrap(),
            bad,
            "reading alone does not validate"
        );
        std::fs::write(&path, "{\"model\": null}").unwrap();
        let e = format!("{:#}", load_config(&path).unwrap_err());
        assert!(
            e.starts_with(&format!(
                "{}: not a valid run configuration: ",
                path.display()
            )),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
