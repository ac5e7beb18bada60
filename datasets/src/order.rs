//! Where per-image standardisation sits relative to the random crop and flip.

use std::fmt;
use std::str::FromStr;

use crate::error::DatasetError;

/// The order of preprocessing and augmentation of a training image. The two differ only
/// for standardised data (CIFAR-10); for MNIST and Fashion-MNIST (scaling only) they
/// give identical batches. Evaluation images are never augmented, so both evaluate the
/// same way: scale to [0, 1], then standardise the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AugmentOrder {
    /// Scale to [0, 1] and standardise the whole image, then pad with zeros *of the
    /// standardised image* (the image's mean), crop and flip. The order the paper's text
    /// reads in (standardisation is listed as preprocessing), and rbd's default.
    #[default]
    StandardiseFirst,
    /// Scale to [0, 1], pad with zeros in pixel space (black), crop and flip, then
    /// standardise the crop. What the authors' released code does.
    AugmentFirst,
}

impl AugmentOrder {
    /// Both orders, default first.
    pub const ALL: [AugmentOrder; 2] = [AugmentOrder::StandardiseFirst, AugmentOrder::AugmentFirst];

    /// The canonical name: `standardise-first` or `augment-first`.
    pub fn name(self) -> &'static str {
        match self {
            AugmentOrder::StandardiseFirst => "standardise-first",
            AugmentOrder::AugmentFirst => "augment-first",
        }
    }

    /// Where this order comes from, for outputs that say which variant ran.
    pub fn source(self) -> &'static str {
        match self {
            AugmentOrder::StandardiseFirst => "paper's text",
            AugmentOrder::AugmentFirst => "authors' released code",
        }
    }
}

impl fmt::Display for AugmentOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AugmentOrder {
    type Err = DatasetError;

    /// Accepts the canonical names (also with `standardize`), and `paper` / `released`
    /// (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "standardise-first" | "standardize-first" | "paper" => {
                Ok(AugmentOrder::StandardiseFirst)
            }
            "augment-first" | "released" => Ok(AugmentOrder::AugmentFirst),
            _ => Err(DatasetError::Config(format!(
                "unknown augmentation order '{s}'; valid: standardise-first (paper), \
                 augment-first (released)"
            ))),
        }
    }
}
