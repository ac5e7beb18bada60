//! Loading MNIST-style IDX image/label file pairs into a [`Dataset`].

use std::path::{Path, PathBuf};

use crate::catalog::{IdxCatalog, PinnedFile, IDX_TEST_COUNT, IDX_TRAIN_COUNT};
use crate::checksum::verify_sha256;
use crate::dataset::Dataset;
use crate::error::DatasetError;
use crate::fetch::find_idx_file;
use crate::idx::{parse_idx_images, parse_idx_labels, read_idx_bytes, IdxKind};
use crate::kind::Split;

/// Loads one split of an IDX data set from `dir` without fetching, verifying the
/// pinned checksums and the official record count.
pub fn load_idx_dir(
    catalog: &IdxCatalog,
    dir: &Path,
    split: Split,
) -> Result<Dataset, DatasetError> {
    let (images, labels, count) = match split {
        Split::Train => (catalog.train_images, catalog.train_labels, IDX_TRAIN_COUNT),
        Split::Test => (catalog.test_images, catalog.test_labels, IDX_TEST_COUNT),
    };
    let images_path = existing(dir, images)?;
    let labels_path = existing(dir, labels)?;
    // Header first, then at most the declared size: a bomb is refused before hashing.
    let images_bytes = read_idx_bytes(&images_path, IdxKind::Images)?;
    verify_sha256(&images_path, &images_bytes, images.sha256)?;
    let labels_bytes = read_idx_bytes(&labels_path, IdxKind::Labels)?;
    verify_sha256(&labels_path, &labels_bytes, labels.sha256)?;
    let ds = idx_dataset(&images_path, images_bytes, &labels_path, labels_bytes)?;
    if ds.n != count {
        return Err(DatasetError::UnexpectedCount {
            path: images_path,
            dataset: format!("{} {split:?}", catalog.title),
            found: ds.n as u64,
            expected: count as u64,
        });
    }
    Ok(ds)
}

/// Loads an IDX images file and its labels file (plain or gzip) as a data set, with no
/// checksum or count requirement beyond the two files agreeing.
pub fn load_idx_pair(images_path: &Path, labels_path: &Path) -> Result<Dataset, DatasetError> {
    let images = read_idx_bytes(images_path, IdxKind::Images)?;
    let labels = read_idx_bytes(labels_path, IdxKind::Labels)?;
    idx_dataset(images_path, images, labels_path, labels)
}

fn idx_dataset(
    images_path: &Path,
    images: Vec<u8>,
    labels_path: &Path,
    labels: Vec<u8>,
) -> Result<Dataset, DatasetError> {
    let images = parse_idx_images(images_path, images)?;
    let labels = parse_idx_labels(labels_path, labels)?;
    if images.count != labels.len() {
        return Err(DatasetError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: images.count as u64,
            labels_path: labels_path.to_path_buf(),
            labels: labels.len() as u64,
        });
    }
    Ok(Dataset {
        n: images.count,
        c: 1,
        h: images.rows,
        w: images.cols,
        images: images.pixels,
        labels,
    })
}

fn existing(dir: &Path, file: PinnedFile) -> Result<PathBuf, DatasetError> {
    find_idx_file(dir, file.name)?.ok_or_else(|| {
        DatasetError::io(
            dir.join(file.name),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not found (neither plain nor .gz)",
            ),
        )
    })
}
