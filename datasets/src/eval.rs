//! Evaluation batches: preprocessed, never augmented, in the given order, keeping the
//! remainder.

use rand_pcg::Pcg64;

use crate::augment::Augmentation;
use crate::batch::{assemble, Batch};
use crate::dataset::Dataset;
use crate::order::AugmentOrder;
use crate::preprocess::Preprocess;

/// The images `indices` of `dataset` in batches of `batch_size` (at least 1), in order;
/// the last batch holds the remainder and may be smaller. Batch `epoch` is 0.
pub fn eval_batches<'a>(
    dataset: &'a Dataset,
    indices: &'a [usize],
    batch_size: usize,
    preprocess: Preprocess,
) -> EvalBatches<'a> {
    EvalBatches {
        dataset,
        chunks: indices.chunks(batch_size.max(1)),
        preprocess,
        next: 0,
    }
}

/// Iterator returned by [`eval_batches`].
#[derive(Debug)]
pub struct EvalBatches<'a> {
    dataset: &'a Dataset,
    chunks: std::slice::Chunks<'a, usize>,
    preprocess: Preprocess,
    next: usize,
}

impl Iterator for EvalBatches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let ids = self.chunks.next()?;
        let index = self.next;
        self.next += 1;
        // No augmentation: the generator type is only needed to name `None`.
        let batch = assemble(
            self.dataset,
            ids,
            self.preprocess,
            None::<(&Augmentation, &mut Pcg64)>,
            // Without augmentation both orders are the plain preprocessing.
            AugmentOrder::StandardiseFirst,
            0,
            index,
        );
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for EvalBatches<'_> {}
