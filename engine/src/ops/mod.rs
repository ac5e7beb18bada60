//! Differentiable ops. Each file holds an op family's forward (dispatching to the cpu
//! or WGSL kernel in `rbd-kernels`) and its backward rule, side by side.

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
pub mod shape;

use crate::error::{EngineError, Result};
use crate::tensor::Tensor;
use rbd_kernels::{GpuBuffer, Real};
use std::sync::Arc;

/// The one dtype dispatch of the ops (candle's `Map1`/`Map2`): `|x| cpu` is written once
/// and compiled for f32 and for f64 operands (`x` their slices), `|ctx, x| gpu` runs on
/// wgpu operands (`x` their buffers). A macro, because a closure cannot be generic over
/// the element type.
///
/// `per_backend!(f32 "op", ...)` is the same dispatch for the ops whose cpu kernels are
/// f32 only (the random-bases family: directions are generated in f32): both bodies
/// return a `Result`, and f64 operands are refused, naming the op.
macro_rules! per_backend {
    (f32 $op:literal, $operands:expr, |$x:ident| $cpu:expr, |$ctx:ident, $g:ident| $gpu:expr $(,)?) => {
        match $operands {
            $crate::tensor::Operands::F32($x) => $cpu,
            $crate::tensor::Operands::F64(_) => {
                Err($crate::error::EngineError::Unsupported(format!(
                    "{}: f32 tensors only (directions are generated in f32)",
                    $op
                )))
            }
            $crate::tensor::Operands::Gpu($ctx, $g) => $gpu,
        }
    };
    ($operands:expr, |$x:ident| $cpu:expr, |$ctx:ident, $g:ident| $gpu:expr $(,)?) => {
        match $operands {
            $crate::tensor::Operands::F32($x) => $cpu,
            $crate::tensor::Operands::F64($x) => $cpu,
            $crate::tensor::Operands::Gpu($ctx, $g) => $gpu,
        }
    };
}
pub(crate) use per_backend;

/// Where each pooled value came from (max pooling's backward needs it): host indices or
/// a device buffer.
pub(crate) enum Argmax {
    Host(Arc<Vec<u32>>),
    Gpu(Arc<GpuBuffer>),
}

impl Argmax {
    /// The host indices, or an error naming `op` when the forward ran on wgpu.
    pub(crate) fn host(&self, op: &str) -> Result<&[u32]> {
        match self {
            Argmax::Host(i) => Ok(i),
            Argmax::Gpu(_) => Err(Argmax::elsewhere(op)),
        }
    }

    /// The device buffer, or an error naming `op` when the forward ran on the cpu.
    pub(crate) fn gpu(&self, op: &str) -> Result<&GpuBuffer> {
        match self {
            Argmax::Gpu(i) => Ok(i),
            Argmax::Host(_) => Err(Argmax::elsewhere(op)),
        }
    }

    fn elsewhere(op: &str) -> EngineError {
        EngineError::Invalid(format!(
            "{op}: gradient on another backend than the forward"
        ))
    }
}

/// Allocates an output of `len` zeros and lets a cpu kernel `f` fill it.
pub(crate) fn run<T: Real>(len: usize, f: impl FnOnce(&mut [T])) -> Vec<T> {
    let mut out = vec![T::ZERO; len];
    f(&mut out);
    out
}

pub(crate) fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(EngineError::Shape {
            op,
            msg: format!("shapes {:?} and {:?} differ", a.shape(), b.shape()),
        });
    }
    Ok(())
}
