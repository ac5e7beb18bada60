//! Deterministic per-image preprocessing: scaling to [0, 1] and per-image standardisation.

use crate::kind::DatasetKind;

/// Which deterministic preprocessing an image gets (before any augmentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Preprocess {
    /// After scaling by 1/255, standardise each image to mean 0 and standard deviation
    /// `max(std, 1/√N)` (as `tf.image.per_image_standardization`). Used for CIFAR-10.
    pub standardise: bool,
}

impl Preprocess {
    /// Preprocessing applied to every split of CIFAR-10.
    pub const CIFAR10: Preprocess = Preprocess { standardise: true };
    /// Preprocessing applied to every split of MNIST and Fashion-MNIST (scaling only).
    pub const SCALE_ONLY: Preprocess = Preprocess { standardise: false };

    /// Writes the preprocessed image `src` (bytes) into `dst` (same length).
    pub fn apply(&self, src: &[u8], dst: &mut [f32]) {
        scale_to_unit(src, dst);
        if self.standardise {
            standardise(dst);
        }
    }
}

impl Preprocess {
    /// The preprocessing of every split of `kind` (standardisation for CIFAR-10 only).
    pub fn for_kind(kind: DatasetKind) -> Self {
        match kind {
            DatasetKind::Cifar10 => Preprocess::CIFAR10,
            DatasetKind::Mnist | DatasetKind::FashionMnist => Preprocess::SCALE_ONLY,
        }
    }
}

/// `dst[i] = src[i] / 255`.
pub fn scale_to_unit(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from(s) / 255.0;
    }
}

/// Per-image standardisation in place: `(x − mean) / max(std, 1/√N)` over all `N`
/// values of the image (all channels together), with the population standard deviation.
pub fn standardise(image: &mut [f32]) {
    let n = image.len();
    if n == 0 {
        return;
    }
    let mean = image.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
    let var = image
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    let scale = var.sqrt().max(1.0 / (n as f64).sqrt());
    let (mean, inv) = (mean as f32, (1.0 / scale) as f32);
    for x in image.iter_mut() {
        *x = (*x - mean) * inv;
    }
}
