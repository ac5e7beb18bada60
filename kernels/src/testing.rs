//! Helpers for tests of kernels (shared by this crate's tests and the workspace's).

use crate::gpu::{DeviceKind, GpuContext};
use std::sync::{Arc, OnceLock};

/// One shared context on the CPU adapter (llvmpipe) per test process, so each test does
/// not pay for device bring-up. Panics with the install hint if there is none: the
/// WGSL tests are meant to run in CI, where `.ci/run` installs the driver.
pub fn cpu_adapter() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new(DeviceKind::Cpu) {
        Ok(ctx) => ctx,
        Err(e) => panic!("WGSL tests need a CPU wgpu adapter: {e}"),
    })
    .clone()
}

/// Proptest case count: `PROPTEST_CASES` if set (for deep runs), else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
