//! Naming the data sets and their official splits.

use std::fmt;
use std::str::FromStr;

use crate::catalog::{IDX_TEST_COUNT, IDX_TRAIN_COUNT};
use crate::cifar::{CIFAR_CHANNELS, CIFAR_RECORDS_PER_FILE, CIFAR_SIDE, CIFAR_TRAIN_FILES};
use crate::error::DatasetError;
use crate::idx::IDX_SIDE;

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
            (DatasetKind::Cifar10, Split::Train) => {
                CIFAR_TRAIN_FILES.len() * CIFAR_RECORDS_PER_FILE
            }
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
