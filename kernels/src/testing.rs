//! Helpers for tests of kernels (shared by this crate's tests and the workspace's).

use crate::gpu::{DeviceKind, GpuContext};
use crate::rng::{Distribution, Generator, Stream};
use std::sync::{Arc, OnceLock};

/// The adapter the WGSL-vs-cpu tests run on, from `RBD_TEST_ADAPTER`: `cpu` (the
/// default: a CPU adapter such as llvmpipe), `gpu` (the best real GPU) or an index into
/// `rbd devices`' order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestAdapter {
    /// A CPU adapter.
    Cpu,
    /// The best GPU adapter.
    Gpu,
    /// Adapter number `n` of [`crate::gpu::list_adapters`].
    Index(usize),
}

impl TestAdapter {
    /// Parses a `RBD_TEST_ADAPTER` value.
    pub fn parse(value: &str) -> Result<TestAdapter, String> {
        match value.trim() {
            "" | "cpu" => Ok(TestAdapter::Cpu),
            "gpu" => Ok(TestAdapter::Gpu),
            v => v.parse().map(TestAdapter::Index).map_err(|_| {
                format!("RBD_TEST_ADAPTER: '{v}' (expected cpu, gpu or an adapter index)")
            }),
        }
    }

    /// The choice in the environment (`cpu` when unset).
    pub fn from_env() -> Result<TestAdapter, String> {
        TestAdapter::parse(&std::env::var("RBD_TEST_ADAPTER").unwrap_or_default())
    }

    /// Opens it.
    pub fn open(self) -> Result<Arc<GpuContext>, String> {
        match self {
            TestAdapter::Cpu => GpuContext::new(DeviceKind::Cpu),
            TestAdapter::Gpu => GpuContext::new(DeviceKind::Gpu),
            TestAdapter::Index(i) => GpuContext::with_adapter(i),
        }
        .map_err(|e| e.to_string())
    }
}

/// One shared context per test process on the adapter `RBD_TEST_ADAPTER` names (see
/// [`TestAdapter`]; the CPU adapter by default), so each test does not pay for device
/// bring-up. Panics with the reason if there is none: the WGSL tests are meant to run
/// in CI, where `.ci/run` installs llvmpipe.
pub fn test_adapter() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        let choice = TestAdapter::from_env().unwrap_or_else(|e| panic!("{e}"));
        match choice.open() {
            Ok(ctx) => ctx,
            Err(e) => {
                panic!("WGSL tests need a wgpu adapter ({choice:?}, from RBD_TEST_ADAPTER): {e}")
            }
        }
    })
    .clone()
}

/// [`test_adapter`] under its historical name (the CPU adapter unless
/// `RBD_TEST_ADAPTER` says otherwise).
pub fn cpu_adapter() -> Arc<GpuContext> {
    test_adapter()
}

/// Proptest case count: `PROPTEST_CASES` if set (for deep runs), else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The splitmix64 sequence from `state` (Steele, Lea and Flood 2014): deterministic test
/// data, so a failing case is reproduced by its shape and seed alone.
pub fn splitmix64(mut state: u64) -> impl Iterator<Item = u64> {
    std::iter::repeat_with(move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A splitmix64 word as a value uniform in [−1, 1) (53 bits).
pub fn unit(z: u64) -> f64 {
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// `len` values uniform in [−1, 1) from the splitmix64 sequence of `seed`.
pub fn uniform(len: usize, seed: u64) -> Vec<f64> {
    splitmix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1))
        .take(len)
        .map(unit)
        .collect()
}

/// `len` values uniform in [−1, 1) from the splitmix64 sequence of `seed`, mixed
/// differently from [`uniform`] (the convolution, pooling and batch-norm tests' data).
pub fn uniform_mixed(len: usize, seed: u64) -> Vec<f64> {
    splitmix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
        .take(len)
        .map(unit)
        .collect()
}

/// `n` values in [−1, 1) from a 32-bit xorshift of `seed` (the random-bases and
/// Fastfood tests' vectors).
pub fn xorshift_f32(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0
        })
        .collect()
}

/// One direction stream seeded `seed` per generator and distribution of `distributions`.
pub fn streams(seed: u64, distributions: &[Distribution]) -> Vec<Stream> {
    [Generator::Philox, Generator::Threefry]
        .into_iter()
        .flat_map(|generator| {
            distributions.iter().map(move |&distribution| Stream {
                generator,
                distribution,
                seed,
            })
        })
        .collect()
}

/// Asserts `got` ≈ `want` elementwise: |g − w| ≤ atol + rtol·|w|; the message names the
/// first bad index and the shapes given in `what`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= atol + rtol * w.abs() || (g.is_nan() && w.is_nan());
        assert!(ok, "{what}: index {i}: got {g}, want {w}");
    }
}

#[cfg(test)]
mod tests {
    use super::TestAdapter;

    #[test]
    fn adapter_choice_parses_and_names_the_variable_on_error() {
        assert_eq!(TestAdapter::parse(""), Ok(TestAdapter::Cpu));
        assert_eq!(TestAdapter::parse("cpu"), Ok(TestAdapter::Cpu));
        assert_eq!(TestAdapter::parse("gpu"), Ok(TestAdapter::Gpu));
        assert_eq!(TestAdapter::parse("2"), Ok(TestAdapter::Index(2)));
        let e = TestAdapter::parse("h200").unwrap_err();
        assert!(e.contains("RBD_TEST_ADAPTER") && e.contains("h200"), "{e}");
    }
}
