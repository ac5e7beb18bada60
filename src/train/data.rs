//! The data of a run: the training set split into train and validation indices, the
//! optional test set, the class count and the preprocessing.

use super::config::RunConfig;
use super::kinds::DatasetSpec;
use anyhow::{bail, Context, Result};
use rbd_datasets::{AugmentOrder, Dataset, DatasetKind, Preprocess, Split, TrainConfig};
use rbd_optim::config::{count, defaults};
use rbd_optim::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// What a run trains on beyond the data set: the batch size, the validation hold-out,
/// a limit on the training images and the augmentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct DataConfig {
    /// Training batch size.
    #[arg(long, default_value = "32", allow_hyphen_values = true, value_parser = count)]
    pub batch_size: usize,
    /// Images held out of the training set for validation.
    #[arg(long, default_value = "10000", allow_hyphen_values = true, value_parser = count)]
    pub val_size: usize,
    /// Use only the first N training images (quick runs).
    #[arg(long, allow_hyphen_values = true, value_parser = count)]
    pub train_limit: Option<usize>,
    /// Train on the plain images, without the paper's augmentation (pad and crop plus
    /// brightness on MNIST/FMNIST, pad, crop and flip on CIFAR-10). Left out of
    /// `config.json` when on.
    #[arg(long = "no-augment", action = clap::ArgAction::SetFalse)]
    #[serde(skip_serializing_if = "is_on")]
    pub augment: bool,
    /// CIFAR-10 augmentation order: standardise-first (the paper's text) or
    /// augment-first (the authors' released code: pad/crop/flip, then standardise).
    /// Left out of `config.json` at its default, so older run ids stay valid.
    #[arg(long, default_value = "standardise-first")]
    #[serde(with = "augment_order_text", skip_serializing_if = "is_default_order")]
    pub augment_order: AugmentOrder,
}

impl Default for DataConfig {
    fn default() -> Self {
        defaults()
    }
}

fn is_on(v: &bool) -> bool {
    *v
}

fn is_default_order(o: &AugmentOrder) -> bool {
    *o == AugmentOrder::default()
}

mod augment_order_text {
    use rbd_datasets::AugmentOrder;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(o: &AugmentOrder, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(o.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AugmentOrder, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl DataConfig {
    /// Checks the values alone.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        if self.batch_size == 0 {
            return Err(ConfigError::new("batch_size", "must be at least 1"));
        }
        if self.val_size == 0 {
            return Err(ConfigError::new(
                "val_size",
                "must be at least 1 (validation needs images)",
            ));
        }
        if self.train_limit == Some(0) {
            return Err(ConfigError::new("train_limit", "must be at least 1"));
        }
        Ok(())
    }

    /// The training loader's configuration for images of `kind` (IDX data: MNIST's),
    /// seeded `seed`.
    pub fn loader_config(&self, kind: DatasetKind, seed: u64) -> TrainConfig {
        let mut t = TrainConfig::for_kind(kind, seed).with_augment_order(self.augment_order);
        t.batch_size = self.batch_size;
        if !self.augment {
            t.augmentation = rbd_datasets::Augmentation::NONE;
        }
        t
    }

    /// The settings that change nothing on `dataset`: the augmentation order off
    /// CIFAR-10 (the only standardised data set).
    pub fn inert(&self, dataset: &DatasetSpec) -> Vec<&'static str> {
        if *dataset == DatasetSpec::Known(DatasetKind::Cifar10) {
            Vec::new()
        } else {
            vec!["augment_order"]
        }
    }
}

/// Training and evaluation data of a run.
pub struct Data {
    /// The training split's data set.
    pub train: Arc<Dataset>,
    /// Indices trained on.
    pub train_indices: Vec<usize>,
    /// Indices validated on (from the training data set).
    pub val_indices: Vec<usize>,
    /// The test set, if asked for.
    pub test: Option<Dataset>,
    /// The kind (None for IDX data).
    pub kind: Option<DatasetKind>,
    /// Number of classes.
    pub classes: usize,
}

/// Classes of MNIST-named IDX data (the models have ten outputs).
const IDX_CLASSES: usize = 10;

fn load_idx(dir: &Path, images: &str, labels: &str) -> Result<Dataset> {
    let find = |name: &str| -> Result<std::path::PathBuf> {
        rbd_datasets::find_idx_file(dir, name)?
            .with_context(|| format!("{}: no {name} (or {name}.gz)", dir.display()))
    };
    let ds = rbd_datasets::load_idx_pair(&find(images)?, &find(labels)?)?;
    if let Some((i, &l)) = ds
        .labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= IDX_CLASSES)
    {
        bail!(
            "{}: label {l} of image {i} is not one of the {IDX_CLASSES} classes the models predict",
            dir.join(labels).display()
        );
    }
    Ok(ds)
}

/// The training split of MNIST-named IDX data in `dir`, its labels checked.
pub fn load_idx_train(dir: &Path) -> Result<Dataset> {
    load_idx(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")
}

/// Loads the data of `cfg`, logging fetches through `log`.
pub fn load(cfg: &RunConfig, log: &mut dyn FnMut(&str)) -> Result<Data> {
    let (kind, train, test, classes) = match &cfg.dataset {
        DatasetSpec::Idx(dir) => {
            let train = load_idx_train(dir)?;
            let test = if cfg.options.eval_test {
                Some(load_idx(
                    dir,
                    "t10k-images-idx3-ubyte",
                    "t10k-labels-idx1-ubyte",
                )?)
            } else {
                None
            };
            (None, train, test, IDX_CLASSES)
        }
        DatasetSpec::Known(kind) => {
            let train = rbd_datasets::load(*kind, Split::Train, &cfg.data_dir, log)?;
            let test = if cfg.options.eval_test {
                Some(rbd_datasets::load(*kind, Split::Test, &cfg.data_dir, log)?)
            } else {
                None
            };
            (Some(*kind), train, test, kind.classes())
        }
    };
    let (c, h, w) = cfg.dataset.shape();
    if (train.c, train.h, train.w) != (c, h, w) {
        bail!(
            "{}: images are {}×{}×{}, expected {h}×{w}×{c}",
            cfg.dataset,
            train.h,
            train.w,
            train.c
        );
    }
    let n = cfg.data.train_limit.unwrap_or(train.n).min(train.n);
    cfg.check_split(n)?;
    let all: Vec<usize> = (0..n).collect();
    let split = rbd_datasets::holdout_split(&all, cfg.data.val_size, cfg.seed)?;
    let (train_indices, val_indices) = if cfg.options.tuning_split {
        let t = rbd_datasets::tuning_split(&split.train, cfg.seed);
        (t.train, t.held_out)
    } else {
        (split.train, split.held_out)
    };
    Ok(Data {
        train: Arc::new(train),
        train_indices,
        val_indices,
        test,
        kind,
        classes,
    })
}

impl Data {
    /// Evaluation preprocessing.
    pub fn preprocess(&self) -> Preprocess {
        self.kind
            .map(Preprocess::for_kind)
            .unwrap_or(Preprocess::SCALE_ONLY)
    }

    /// The training loader's configuration (augmentation of the data set's kind).
    pub fn loader_config(&self, cfg: &RunConfig) -> TrainConfig {
        let kind = self.kind.unwrap_or(DatasetKind::Mnist);
        cfg.data.loader_config(kind, cfg.seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::kinds::{DatasetSpec, PresetSource};
    use rbd_datasets::Augmentation;
    use rbd_engine::random_bases::DistributionKind;
    use rbd_models::ModelKind;
    use rbd_optim::OptimizerKind;

    /// `--no-augment` reaches the loader; the default keeps the paper's augmentation.
    #[test]
    fn the_loader_augments_unless_the_run_says_not_to() {
        let train = Dataset::new(vec![0; 4 * 28 * 28], vec![0, 1, 2, 3], 1, 28, 28).unwrap();
        let data = Data {
            train: Arc::new(train),
            train_indices: vec![0, 1, 2, 3],
            val_indices: vec![],
            test: None,
            kind: Some(DatasetKind::Mnist),
            classes: 10,
        };
        let schedule = crate::train::config::resolve_schedule(
            &crate::train::config::ScheduleSpec::single(OptimizerKind::Sgd),
            Some(0.1),
            ModelKind::Fc,
            &DatasetSpec::Known(DatasetKind::Mnist),
            DistributionKind::Gaussian,
            PresetSource::Paper,
        )
        .unwrap();
        let mut cfg = RunConfig::new(
            ModelKind::Fc,
            DatasetSpec::Known(DatasetKind::Mnist),
            schedule,
        );
        assert_eq!(data.loader_config(&cfg).augmentation, Augmentation::MNIST);
        cfg.data.augment = false;
        assert_eq!(data.loader_config(&cfg).augmentation, Augmentation::NONE);
    }
}
