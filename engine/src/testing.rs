//! Helpers for tests of the engine and the crates above it: the kernels' test helpers
//! (adapter choice, case counts, closeness, deterministic data), and weights that turn
//! any tensor into a scalar loss so every element of an output is checked.

pub use rbd_kernels::testing::*;

use crate::{DType, Device, Result, Tensor};

/// Deterministic pseudo-random values in [−1, 1) (xorshift64 of `seed`).
pub fn weights(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// ⟨w, t⟩ with fixed pseudo-random weights w ([`weights`]) of t's shape, dtype and
/// device.
pub fn weighted_sum(t: &Tensor, seed: u64) -> Result<Tensor> {
    let w = weights(t.numel(), seed);
    let w = match t.device() {
        Device::Cpu if t.dtype() == DType::F64 => Tensor::from_f64(&w, t.shape())?,
        d => {
            let w32: Vec<f32> = w.iter().map(|&x| x as f32).collect();
            Tensor::from_f32(&d, &w32, t.shape())?
        }
    };
    t.dot(&w)
}
