//! Assembling a batch of `f32` NCHW images from a byte data set.

use rand_core::Rng;

use crate::augment::{augment_image, Augmentation};
use crate::dataset::Dataset;
use crate::order::AugmentOrder;
use crate::preprocess::{scale_to_unit, standardise, Preprocess};

/// A batch ready for the device.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `B × C × H × W` values, NCHW.
    pub images: Vec<f32>,
    /// One class index per image.
    pub labels: Vec<u32>,
    /// The epoch this batch belongs to (0 for evaluation batches).
    pub epoch: u64,
    /// The position of this batch within its epoch (or evaluation pass).
    pub index: usize,
    /// `[B, C, H, W]`.
    pub shape: [usize; 4],
}

impl Batch {
    /// Number of images `B`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Builds the batch of images `ids` of `dataset`. Without `augment` each image is only
/// preprocessed. With it, each image is augmented with choices drawn from its generator
/// in image order, either after the whole preprocessing
/// ([`AugmentOrder::StandardiseFirst`]) or between scaling and standardisation
/// ([`AugmentOrder::AugmentFirst`]).
pub(crate) fn assemble<R: Rng + ?Sized>(
    dataset: &Dataset,
    ids: &[usize],
    preprocess: Preprocess,
    augment: Option<(&Augmentation, &mut R)>,
    order: AugmentOrder,
    epoch: u64,
    index: usize,
) -> Batch {
    let len = dataset.image_len();
    let shape = (dataset.c, dataset.h, dataset.w);
    let mut images = vec![0.0f32; ids.len() * len];
    let mut scratch = vec![0.0f32; len];
    let mut augment = augment.filter(|(a, _)| !a.is_none());
    for (&id, out) in ids.iter().zip(images.chunks_exact_mut(len)) {
        match augment.as_mut() {
            None => preprocess.apply(dataset.image(id), out),
            Some((aug, rng)) => {
                let params = aug.draw(*rng);
                match order {
                    AugmentOrder::StandardiseFirst => {
                        preprocess.apply(dataset.image(id), &mut scratch);
                        augment_image(&scratch, shape, aug.pad, &params, out);
                    }
                    AugmentOrder::AugmentFirst => {
                        scale_to_unit(dataset.image(id), &mut scratch);
                        augment_image(&scratch, shape, aug.pad, &params, out);
                        if preprocess.standardise {
                            standardise(out);
                        }
                    }
                }
            }
        }
    }
    Batch {
        images,
        labels: ids.iter().map(|&i| u32::from(dataset.labels[i])).collect(),
        epoch,
        index,
        shape: [ids.len(), dataset.c, dataset.h, dataset.w],
    }
}
