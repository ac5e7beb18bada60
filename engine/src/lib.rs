//! The `rbd` tensor engine: tensors on two backends behind one API, reverse-mode
//! autodiff, and gradient checking.
//!
//! - [`Device`]: `Cpu` (native Rust, f32/f64, matrixmultiply GEMM) or `Wgpu` (the
//!   hand-written WGSL kernels of `rbd-kernels`).
//! - [`Tensor`]: immutable values with a shape; ops (`matmul`, `conv2d`, `relu`, ...)
//!   dispatch on where their operands live and record a backward rule when a parent
//!   tracks gradients.
//! - [`Tensor::backward`]: gradients of a scalar loss ([`Gradients`]);
//!   [`no_grad`] / [`NoGradGuard`] turn recording off for evaluation.
//! - [`random_bases`]: project onto / expand from random directions regenerated from a
//!   counter-based stream (the op family the random-bases optimisers use), for either
//!   family of `Bases` (i.i.d. entries, or the structured [`fastfood`] columns).
//! - [`profile`]: an op-level profiler (off by default) with named scopes.
//! - With the `testing` feature (the crates' dev-dependencies turn it on; release
//!   builds never compile it): `gradcheck`, central differences in f64 against
//!   autodiff with proptest strategies for property-testing ops and models, and
//!   `testing`, the helpers of the crates' tests.

pub mod autodiff;
pub mod device;
pub mod error;
#[cfg(feature = "testing")]
pub mod gradcheck;
pub mod metrics;
pub mod ops;
pub mod profile;
pub mod tensor;
#[cfg(feature = "testing")]
pub mod testing;

pub use autodiff::{grad_enabled, no_grad, Gradients, NoGradGuard};
pub use device::{Device, DeviceChoice};
pub use error::{EngineError, Result};
pub use metrics::MetricSums;
pub use ops::conv::Padding;
pub use ops::loss::Labels;
pub use ops::{fastfood, random_bases};
/// Text forms of choices (`named_enum!` declares one), shared with the lower crate.
pub use rbd_kernels::{named_enum, serde_as_text, text};
pub use tensor::{DType, Tensor, TensorId};
