//! Held-out subsets of a training set, as index lists.
//!
//! The validation block (10,000 images) and the learning-rate tuning split (75% / 25%)
//! are chosen by a seeded permutation, so the same seed always selects the same images.

use crate::error::DatasetError;
use crate::rng::{shuffle, stream_rng, STREAM_HOLDOUT, STREAM_TUNING, STREAM_VALIDATION};

/// Size of the validation block held out of the training set.
pub const VALIDATION_SIZE: usize = 10_000;

/// A partition of indices into a part to train on and a held-out part.
/// Both lists are sorted ascending and disjoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSplit {
    /// Indices to train on.
    pub train: Vec<usize>,
    /// Held-out indices (validation or tuning evaluation).
    pub held_out: Vec<usize>,
}

/// All indices `0..n`: the whole set, e.g. for training on everything or evaluating the
/// test split.
pub fn all_indices(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// Holds a block of [`VALIDATION_SIZE`] images out of a training set of `n` images
/// (train on the other `n − 10,000`), chosen by a permutation seeded from `seed`.
pub fn validation_split(n: usize, seed: u64) -> Result<IndexSplit, DatasetError> {
    split_with(&all_indices(n), VALIDATION_SIZE, seed, STREAM_VALIDATION)
}

/// The learning-rate tuning split of `indices`: a random 75% to train on and the other
/// 25% (`len / 4`, rounded down) to evaluate on, seeded from `seed`.
pub fn tuning_split(indices: &[usize], seed: u64) -> IndexSplit {
    permute_split(indices, indices.len() / 4, seed, STREAM_TUNING)
}

/// Holds `held_out` of `indices` out, chosen by a permutation seeded from `seed`.
pub fn holdout_split(
    indices: &[usize],
    held_out: usize,
    seed: u64,
) -> Result<IndexSplit, DatasetError> {
    split_with(indices, held_out, seed, STREAM_HOLDOUT)
}

fn split_with(
    indices: &[usize],
    held_out: usize,
    seed: u64,
    stream: u64,
) -> Result<IndexSplit, DatasetError> {
    if held_out > indices.len() {
        return Err(DatasetError::Config(format!(
            "cannot hold out {held_out} of {} images",
            indices.len()
        )));
    }
    Ok(permute_split(indices, held_out, seed, stream))
}

/// Shuffles `indices` and cuts off the first `held_out` (which must be <= len).
fn permute_split(indices: &[usize], held_out: usize, seed: u64, stream: u64) -> IndexSplit {
    let mut order = indices.to_vec();
    shuffle(
        &mut stream_rng(seed, stream, &[indices.len() as u64]),
        &mut order,
    );
    let mut held: Vec<usize> = order[..held_out].to_vec();
    let mut train: Vec<usize> = order[held_out..].to_vec();
    held.sort_unstable();
    train.sort_unstable();
    IndexSplit {
        train,
        held_out: held,
    }
}
