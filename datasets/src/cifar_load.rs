//! Loading CIFAR-10 from a directory in the official binary layout, and explaining how
//! to get it when it is missing.

use std::path::{Path, PathBuf};

use crate::cifar::{
    read_cifar_batch, CIFAR_CHANNELS, CIFAR_RECORDS_PER_FILE, CIFAR_SIDE, CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
};
use crate::dataset::Dataset;
use crate::error::DatasetError;
use crate::fetch::{is_file, CIFAR10_ARCHIVE_ENV, CIFAR10_BUILDER_ENV};
use crate::kind::Split;

/// The sub-directory name of the official binary release.
pub const CIFAR_BATCHES_DIR: &str = "cifar-10-batches-bin";

/// Loads one split of CIFAR-10 (10,000 records per file) from `dir`, which may be the
/// `cifar-10-batches-bin` directory itself or a directory containing it. Nothing is
/// fetched ([`load`](crate::load) fetches); when the files are missing the error says
/// where to unpack the official binary release and which options fetch it.
pub fn load_cifar10_dir(dir: &Path, split: Split) -> Result<Dataset, DatasetError> {
    let batches = resolve_cifar10_dir(dir, split)?;
    let paths: Vec<PathBuf> = cifar_split_files(split)
        .iter()
        .map(|f| batches.join(f))
        .collect();
    load_cifar_files(&paths, CIFAR_RECORDS_PER_FILE)
}

/// The directory holding the batch files of `split`: `dir` itself if it holds them,
/// else `dir/cifar-10-batches-bin`; otherwise a [`DatasetError::CifarMissing`]. An
/// unreadable directory is a [`DatasetError::Io`] naming it (e.g. permission denied),
/// not "missing".
pub fn resolve_cifar10_dir(dir: &Path, split: Split) -> Result<PathBuf, DatasetError> {
    let files = cifar_split_files(split);
    let nested = dir.join(CIFAR_BATCHES_DIR);
    for candidate in [dir.to_path_buf(), nested.clone()] {
        let mut all = true;
        for f in files {
            all &= is_file(&candidate.join(f))?;
        }
        if all {
            return Ok(candidate);
        }
    }
    let mut missing = Vec::new();
    for &f in files {
        if !is_file(&nested.join(f))? {
            missing.push(f);
        }
    }
    Err(DatasetError::CifarMissing {
        dir: dir.to_path_buf(),
        message: missing_message(dir, &nested, &missing),
    })
}

fn missing_message(dir: &Path, nested: &Path, missing: &[&str]) -> String {
    format!(
        "CIFAR-10 not found: {nested} is missing {missing} (it should hold data_batch_1.bin … \
         data_batch_5.bin and test_batch.bin). Unpack the official CIFAR-10 binary version \
         (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) into {dir} \
         so that {nested} exists. `rbd` fetches it there on first use from the data directory \
         (<data-dir>/cifar10), or unpacks a local copy named by {archive_env}=PATH, or runs a \
         builder script named by {builder_env}=PATH/build.py (see docs/data.md).",
        nested = nested.display(),
        missing = missing.join(", "),
        dir = dir.display(),
        archive_env = CIFAR10_ARCHIVE_ENV,
        builder_env = CIFAR10_BUILDER_ENV,
    )
}

/// The directory [`load`](crate::load) searches for CIFAR-10: `<data_dir>/cifar10`.
pub fn cifar10_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cifar10")
}

/// Loads CIFAR-10 batch files that each hold `records_per_file` records, concatenated in
/// the order given.
pub fn load_cifar_files(
    paths: &[PathBuf],
    records_per_file: usize,
) -> Result<Dataset, DatasetError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let batch = read_cifar_batch(path, records_per_file)?;
        images.extend_from_slice(&batch.images);
        labels.extend_from_slice(&batch.labels);
    }
    let n = labels.len();
    Ok(Dataset {
        images,
        labels,
        n,
        c: CIFAR_CHANNELS,
        h: CIFAR_SIDE,
        w: CIFAR_SIDE,
    })
}

pub(crate) fn cifar_split_files(split: Split) -> &'static [&'static str] {
    match split {
        Split::Train => &CIFAR_TRAIN_FILES,
        Split::Test => std::slice::from_ref(&CIFAR_TEST_FILE),
    }
}
