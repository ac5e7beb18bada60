//! In-memory data sets and loading them by name.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::catalog::{IdxCatalog, PinnedFile, FASHION_MNIST, IDX_TEST_COUNT, IDX_TRAIN_COUNT, MNIST};
use crate::checksum::verify_sha256;
use crate::cifar::{
    read_cifar_batch, CIFAR_CHANNELS, CIFAR_RECORDS_PER_FILE, CIFAR_SIDE, CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
};
use crate::error::DatasetError;
use crate::fetch::{ensure_idx, locate_idx_file};
use crate::idx::{parse_idx_images, parse_idx_labels, IDX_SIDE};
use crate::read::read_maybe_gzip;

/// The three data sets of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// MNIST handwritten digits, 28×28×1.
    Mnist,
    /// Fashion-MNIST, 28×28×1.
    FashionMnist,
    /// CIFAR-10, 32×32×3.
    Cifar10,
}

impl DatasetKind {
    /// All kinds, in a fixed order.
    pub const ALL: [DatasetKind; 3] = [
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::Cifar10,
    ];

    /// The canonical short name: `mnist`, `fmnist` or `cifar10`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fmnist",
            DatasetKind::Cifar10 => "cifar10",
        }
    }

    /// Image shape `(channels, height, width)`.
    pub fn shape(self) -> (usize, usize, usize) {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => (1, IDX_SIDE, IDX_SIDE),
            DatasetKind::Cifar10 => (CIFAR_CHANNELS, CIFAR_SIDE, CIFAR_SIDE),
        }
    }

    /// Number of images in the official split.
    pub fn count(self, split: Split) -> usize {
        match (self, split) {
            (DatasetKind::Cifar10, Split::Train) => CIFAR_TRAIN_FILES.len() * CIFAR_RECORDS_PER_FILE,
            (DatasetKind::Cifar10, Split::Test) => CIFAR_RECORDS_PER_FILE,
            (_, Split::Train) => IDX_TRAIN_COUNT,
            (_, Split::Test) => IDX_TEST_COUNT,
        }
    }

    /// The number of classes (10 for all three).
    pub fn classes(self) -> usize {
        10
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DatasetError;

    /// Accepts `mnist`, `fmnist` / `fashion-mnist` / `fashion_mnist`, `cifar10` / `cifar-10`
    /// (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fmnist" | "fashion-mnist" | "fashion_mnist" | "fashionmnist" => {
                Ok(DatasetKind::FashionMnist)
            }
            "cifar10" | "cifar-10" | "cifar_10" => Ok(DatasetKind::Cifar10),
            _ => Err(DatasetError::UnknownDataset {
                name: s.to_string(),
            }),
        }
    }
}

/// The official training or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training files (60,000 or 50,000 images).
    Train,
    /// The test files (10,000 images).
    Test,
}

/// Images and labels held in memory as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// `n × c × h × w` pixel bytes, NCHW (each image's channels are separate planes).
    pub images: Vec<u8>,
    /// One class index 0..=9 per image.
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Channels per image.
    pub c: usize,
    /// Rows per image.
    pub h: usize,
    /// Columns per image.
    pub w: usize,
}

impl Dataset {
    /// Builds a data set, checking that `images` holds exactly `labels.len()` images of
    /// `c × h × w` bytes and that every label is 0..=9.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u8>,
        c: usize,
        h: usize,
        w: usize,
    ) -> Result<Self, DatasetError> {
        let n = labels.len();
        if c * h * w == 0 || images.len() != n * c * h * w {
            return Err(DatasetError::Config(format!(
                "{} image bytes do not hold {n} images of {c}×{h}×{w}",
                images.len()
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l > 9) {
            return Err(DatasetError::Config(format!(
                "label at index {i} is {}, expected 0..=9",
                labels[i]
            )));
        }
        Ok(Dataset {
            images,
            labels,
            n,
            c,
            h,
            w,
        })
    }

    /// Bytes per image (`c × h × w`).
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// The pixel bytes of image `i` (CHW). Panics if `i >= n`.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[i * len..(i + 1) * len]
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

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
        DatasetKind::Mnist => load_idx(&MNIST, split, data_dir, log),
        DatasetKind::FashionMnist => load_idx(&FASHION_MNIST, split, data_dir, log),
        DatasetKind::Cifar10 => crate::cifar_dir::load_cifar10_dir(&cifar10_dir(data_dir), split),
    }
}

/// The directory [`load`] searches for CIFAR-10: `<data_dir>/cifar10`.
pub fn cifar10_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cifar10")
}

/// Fetches (if needed) and loads an IDX data set.
fn load_idx(
    catalog: &IdxCatalog,
    split: Split,
    data_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Dataset, DatasetError> {
    let dir = ensure_idx(catalog, data_dir, log)?;
    load_idx_dir(catalog, &dir, split)
}

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
    let images_bytes = read_maybe_gzip(&images_path)?;
    verify_sha256(&images_path, &images_bytes, images.sha256)?;
    let labels_bytes = read_maybe_gzip(&labels_path)?;
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
    let images = read_maybe_gzip(images_path)?;
    let labels = read_maybe_gzip(labels_path)?;
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
    locate_idx_file(dir, file.name).ok_or_else(|| {
        DatasetError::io(
            dir.join(file.name),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not found (neither plain nor .gz)",
            ),
        )
    })
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
