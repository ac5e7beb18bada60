//! Loading a data set by kind and split, fetching it first if needed.

use std::cell::RefCell;
use std::path::Path;

use crate::catalog::{FASHION_MNIST, MNIST};
use crate::cifar_load::load_cifar10_dir;
use crate::dataset::Dataset;
use crate::error::DatasetError;
use crate::fetch::{ensure_cifar10, ensure_idx, log_download_progress, Cifar10Source};
use crate::idx_load::load_idx_dir;
use crate::kind::{DatasetKind, Split};

/// Loads one split of a data set from `data_dir` (see
/// [`default_data_dir`](crate::default_data_dir)), fetching it on first use. Formats and
/// counts are verified on every load, and the IDX files' pinned checksums too.
///
/// CIFAR-10 is read from `<data_dir>/cifar10/cifar-10-batches-bin/`; when missing, it
/// comes from [`Cifar10Source::from_env`]: a local archive (`$RBD_CIFAR10_ARCHIVE`), a
/// builder script (`$RBD_CIFAR10_BUILDER`), or else the official archive downloaded
/// from `$RBD_CIFAR10_URL` or [`CIFAR10_URL`](crate::CIFAR10_URL), SHA-256-verified.
/// Progress messages (only when fetching, with download progress every 10%) go to `log`.
pub fn load(
    kind: DatasetKind,
    split: Split,
    data_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Dataset, DatasetError> {
    crate::data_dir::check_data_dir(data_dir)?;
    match kind {
        DatasetKind::Mnist => load_idx_dir(&MNIST, &ensure_idx(&MNIST, data_dir, log)?, split),
        DatasetKind::FashionMnist => load_idx_dir(
            &FASHION_MNIST,
            &ensure_idx(&FASHION_MNIST, data_dir, log)?,
            split,
        ),
        DatasetKind::Cifar10 => {
            // Messages and progress lines share the one log.
            let log = RefCell::new(log);
            let mut message = |m: &str| (log.borrow_mut())(m);
            let mut progress = log_download_progress(|m: &str| (log.borrow_mut())(m));
            let source = Cifar10Source::from_env();
            let dir = ensure_cifar10(data_dir, split, &source, &mut message, &mut progress)?;
            load_cifar10_dir(&dir, split)
        }
    }
}
