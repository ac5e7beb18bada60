//! Deterministic random streams derived from (seed, purpose, epoch, batch).
//!
//! Every random decision of the pipeline comes from a fresh [`Pcg64`] whose seed is a
//! splitmix64 hash of the run seed, a purpose tag and the position in training. A batch
//! therefore depends only on (seed, epoch, batch index), never on what was generated
//! before it or on which thread generates it, so a resumed run reproduces the stream.

use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// Purpose tag of the validation hold-out permutation.
pub(crate) const STREAM_VALIDATION: u64 = 0x5641_4c49_4441_5445; // "VALIDATE"
/// Purpose tag of the learning-rate tuning (75/25) permutation.
pub(crate) const STREAM_TUNING: u64 = 0x5455_4e49_4e47_3735; // "TUNING75"
/// Purpose tag of generic hold-out permutations.
pub(crate) const STREAM_HOLDOUT: u64 = 0x484f_4c44_4f55_5421; // "HOLDOUT!"
/// Purpose tag of the per-epoch shuffle.
const STREAM_SHUFFLE: u64 = 0x5348_5546_464c_4521; // "SHUFFLE!"
/// Purpose tag of the per-batch augmentation.
const STREAM_AUGMENT: u64 = 0x4155_474d_454e_5421; // "AUGMENT!"

/// The splitmix64 finaliser: a bijective, well-mixing hash of a `u64`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes `seed`, a purpose tag and a sequence of keys into one `u64`.
pub fn derive_seed(seed: u64, stream: u64, keys: &[u64]) -> u64 {
    let mut h = splitmix64(seed ^ splitmix64(stream));
    for &k in keys {
        h = splitmix64(h ^ splitmix64(k));
    }
    h
}

/// A generator for a purpose tag and keys.
pub(crate) fn stream_rng(seed: u64, stream: u64, keys: &[u64]) -> Pcg64 {
    Pcg64::seed_from_u64(derive_seed(seed, stream, keys))
}

/// The generator that shuffles the training indices in `epoch`.
pub fn shuffle_rng(seed: u64, epoch: u64) -> Pcg64 {
    stream_rng(seed, STREAM_SHUFFLE, &[epoch])
}

/// The generator for the augmentation of batch `batch` of `epoch`.
pub fn augment_rng(seed: u64, epoch: u64, batch: u64) -> Pcg64 {
    stream_rng(seed, STREAM_AUGMENT, &[epoch, batch])
}

/// A uniform integer in `0..n` without modulo bias (Lemire's method). `n` must be > 0.
pub fn below<R: Rng + ?Sized>(rng: &mut R, n: u64) -> u64 {
    debug_assert!(n > 0);
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// A uniform `f32` in `[0, 1)` with 24 random bits.
pub fn unit_f32<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Shuffles `items` uniformly in place (Fisher–Yates).
pub fn shuffle<T, R: Rng + ?Sized>(rng: &mut R, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}
