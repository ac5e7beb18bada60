//! The kernel layer of `rbd`: hand-written WGSL compute shaders with their Rust
//! launchers, the wgpu runtime they run on, and native cpu implementations of the
//! same operations (the cpu backend, and the oracle the WGSL is tested against).
//!
//! Each op family lives in one module (`matmul`, `conv`, ...) holding its launcher
//! (`*_gpu`) and cpu function (`*_cpu`) side by side; the WGSL source is
//! `wgsl/<family>.wgsl`, loaded with `include_str!`.

pub mod error;
mod gemm;
pub mod gpu;
pub mod launch;
pub mod real;
mod scratch;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;

pub mod batchnorm;
pub mod bias_relu;
pub mod conv;
pub mod elementwise;
pub mod fastfood;
pub mod loss;
pub mod matmul;
pub mod pool;
pub mod random_bases;
pub mod reduce;
pub mod rng;

pub use error::GpuError;
pub use gpu::{GpuBuffer, GpuContext, Kernel};
pub use real::Real;
