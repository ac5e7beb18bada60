//! Differentiable ops. Each file holds an op family's forward (dispatching to the cpu
//! or WGSL kernel in `rbd-kernels`) and its backward rule, side by side.

pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod loss;
pub mod matmul;
pub mod pool;
pub mod reduce;
pub mod shape;

use crate::error::{EngineError, Result};
use crate::tensor::Tensor;

pub(crate) fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(EngineError::Shape {
            op,
            msg: format!("shapes {:?} and {:?} differ", a.shape(), b.shape()),
        });
    }
    Ok(())
}
