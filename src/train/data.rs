//! The data of a run: the training set split into train and validation indices, the
//! optional test set, the class count and the preprocessing.

use super::config::RunConfig;
use super::kinds::DatasetSpec;
use anyhow::{bail, Context, Result};
use rbd_datasets::{Dataset, DatasetKind, Preprocess, Split, TrainConfig};
use std::path::Path;
use std::sync::Arc;

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

/// Loads the data of `cfg`, logging fetches through `log`.
pub fn load(cfg: &RunConfig, log: &mut dyn FnMut(&str)) -> Result<Data> {
    let (kind, train, test, classes) = match &cfg.dataset {
        DatasetSpec::Idx(dir) => {
            let train = load_idx(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
            let test = if cfg.eval_test {
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
            let test = if cfg.eval_test {
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
    let n = cfg.train_limit.unwrap_or(train.n).min(train.n);
    cfg.check_split(n)?;
    let all: Vec<usize> = (0..n).collect();
    let split = rbd_datasets::holdout_split(&all, cfg.val_size, cfg.seed)?;
    let (train_indices, val_indices) = if cfg.tuning_split {
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
        let mut t = TrainConfig::for_kind(self.kind.unwrap_or(DatasetKind::Mnist), cfg.seed)
            .with_augment_order(cfg.augment_order);
        t.batch_size = cfg.batch_size;
        if !cfg.augment {
            t.augmentation = rbd_datasets::Augmentation::NONE;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::kinds::{
        DatasetSpec, DistributionKind, ModelKind, OptimizerKind, PresetSource,
    };
    use rbd_datasets::Augmentation;

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
        cfg.augment = false;
        assert_eq!(data.loader_config(&cfg).augmentation, Augmentation::NONE);
    }
}
