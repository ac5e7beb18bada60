//! Loading a data set by kind and split, fetching it first if needed.

use std::path::Path;

use crate::catalog::{FASHION_MNIST, MNIST};
use crate::cifar_load::{cifar10_dir, load_cifar10_dir};
use crate::dataset::Dataset;
use crate::error::DatasetError;
use crate::fetch::ensure_idx;
use crate::idx_load::load_idx_dir;
use crate::kind::{DatasetKind, Split};

/// Loads one split of a data set from `data_dir` (see
/// [`default_data_dir`](crate::default_data_dir)), fetching MNIST or Fashion-MNIST on
/// first use. Checksums, formats and counts are verified on every load. CIFAR-10 is read
/// from `<data_dir>/cifar10/cifar-10-batches-bin/` and never downloaded.
/// Progress messages (only when fetching) go to `log`.
pub fn load(
    kind: DatasetKind,
    split: Split,
    data_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Dataset, DatasetError> {
    match kind {
        DatasetKind::Mnist => load_idx_dir(&MNIST, &ensure_idx(&MNIST, data_dir, log)?, split),
        DatasetKind::FashionMnist => load_idx_dir(
            &FASHION_MNIST,
            &ensure_idx(&FASHION_MNIST, data_dir, log)?,
            split,
        ),
        DatasetKind::Cifar10 => load_cifar10_dir(&cifar10_dir(data_dir), split),
    }
}
