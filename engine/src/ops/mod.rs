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
use rbd_kernels::Real;

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
