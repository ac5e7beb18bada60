//! Loading CIFAR-10 from disk (it is never downloaded), and explaining how to build it
//! when it is missing.

use std::path::{Path, PathBuf};

use crate::cifar::{
    read_cifar_batch, CIFAR_CHANNELS, CIFAR_RECORDS_PER_FILE, CIFAR_SIDE, CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
};
use crate::dataset::Dataset;
use crate::error::DatasetError;
use crate::kind::Split;

/// The sub-directory name of the official binary release.
pub const CIFAR_BATCHES_DIR: &str = "cifar-10-batches-bin";

/// The shared builder, relative to the repository root.
const BUILDER_RELATIVE: &str = "../shared/data/cifar10/build.py";

/// Loads one split of CIFAR-10 (10,000 records per file) from `dir`, which may be the
/// `cifar-10-batches-bin` directory itself or a directory containing it.
///
/// When the files are missing the error explains how to build them with the shared
/// builder or where to unpack the official binary release.
pub fn load_cifar10_dir(dir: &Path, split: Split) -> Result<Dataset, DatasetError> {
    let batches = resolve_cifar10_dir(dir, split)?;
    let paths: Vec<PathBuf> = cifar_split_files(split)
        .iter()
        .map(|f| batches.join(f))
        .collect();
    load_cifar_files(&paths, CIFAR_RECORDS_PER_FILE)
}

/// The directory holding the batch files of `split`: `dir` itself if it holds them,
/// else `dir/cifar-10-batches-bin`; otherwise a [`DatasetError::CifarMissing`].
pub fn resolve_cifar10_dir(dir: &Path, split: Split) -> Result<PathBuf, DatasetError> {
    let files = cifar_split_files(split);
    let nested = dir.join(CIFAR_BATCHES_DIR);
    for candidate in [dir.to_path_buf(), nested.clone()] {
        if files.iter().all(|f| candidate.join(f).is_file()) {
            return Ok(candidate);
        }
    }
    let missing: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| !nested.join(f).is_file())
        .collect();
    Err(DatasetError::CifarMissing {
        dir: dir.to_path_buf(),
        message: missing_message(dir, &nested, &missing),
    })
}

/// Where the shared CIFAR-10 builder is, as a path that can be pasted into a shell.
pub fn cifar_builder_path() -> PathBuf {
    let beside_repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(BUILDER_RELATIVE);
    std::fs::canonicalize(&beside_repo).unwrap_or_else(|_| PathBuf::from(BUILDER_RELATIVE))
}

fn missing_message(dir: &Path, nested: &Path, missing: &[&str]) -> String {
    format!(
        "CIFAR-10 not found: {nested} is missing {missing} (it should hold data_batch_1.bin … \
         data_batch_5.bin and test_batch.bin). CIFAR-10 is never downloaded automatically. \
         Build it from the shared JPEG copy with\n  \
         python3 {builder} {dir}\n\
         (the builder is {BUILDER_RELATIVE} relative to the repository root; see the README.md \
         beside it; it takes about a minute). The official CIFAR-10 binary version \
         (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) works too: \
         unpack it into {dir} so that {nested} exists.",
        nested = nested.display(),
        missing = missing.join(", "),
        builder = cifar_builder_path().display(),
        dir = dir.display(),
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
