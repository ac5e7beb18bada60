//! Fused bias + ReLU: `max(x + b, 0)` with `b` along axis 1, and its backward rule
//! (dx and the bias gradient from one kernel). Kernels: `rbd_kernels::bias_relu`.

use crate::error::{EngineError, Result};
use crate::tensor::{cpu_tensor, gpu_tensor, operands, Operands, Tensor};
use rbd_kernels::bias_relu as k;
use rbd_kernels::Real;

/// `(n, channels, inner)` of `x` with a bias along axis 1, or a shape error naming `op`.
fn axis1(op: &'static str, x: &Tensor, bias: &Tensor) -> Result<(usize, usize, usize)> {
    let shape = x.shape();
    if shape.len() < 2 || bias.shape() != [shape[1]] {
        return Err(EngineError::Shape {
            op,
            msg: format!(
                "bias {:?} does not match axis 1 of {:?}",
                bias.shape(),
                shape
            ),
        });
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

fn backward_cpu<T: Real>(y: &[T], dy: &[T], n: usize, c: usize, inner: usize) -> (Vec<T>, Vec<T>) {
    let mut dx = vec![T::ZERO; y.len()];
    let mut db = vec![T::ZERO; c];
    k::bias_relu_backward_cpu(y, dy, n, c, inner, &mut dx, &mut db);
    (dx, db)
}

impl Tensor {
    /// `max(self + bias, 0)` with `bias` along axis 1 (per column of `[N, F]`, per
    /// channel of `[N, C, H, W]`): bitwise `self.bias_add(bias)?.relu()`, and bitwise the
    /// same gradients, in one kernel forward and one backward (dx = dy·[y > 0] with
    /// db = Σ dx over all axes but 1, in the fixed order of `sum_to_axis1`).
    pub fn bias_relu(&self, bias: &Tensor) -> Result<Tensor> {
        let (n, c, inner) = axis1("bias_relu", self, bias)?;
        let shape = self.shape().to_vec();
        let out = match operands("bias_relu", &[self, bias])? {
            Operands::F32(x) => cpu_tensor(
                super::run(self.numel(), |o| k::bias_relu_cpu(x[0], x[1], inner, o)),
                &shape,
            ),
            Operands::F64(x) => cpu_tensor(
                super::run(self.numel(), |o| k::bias_relu_cpu(x[0], x[1], inner, o)),
                &shape,
            ),
            Operands::Gpu(ctx, x) => gpu_tensor(
                &ctx,
                k::bias_relu_gpu(&ctx, &x[0], &x[1], self.numel(), inner, c)?,
                &shape,
            ),
        };
        let y = out.detach();
        Ok(out.record("bias_relu", &[self, bias], move |g| {
            let (dx, db) = match operands("bias_relu_backward", &[&y, g])? {
                Operands::F32(v) => {
                    let (dx, db) = backward_cpu(v[0], v[1], n, c, inner);
                    (cpu_tensor(dx, &shape), cpu_tensor(db, &[c]))
                }
                Operands::F64(v) => {
                    let (dx, db) = backward_cpu(v[0], v[1], n, c, inner);
                    (cpu_tensor(dx, &shape), cpu_tensor(db, &[c]))
                }
                Operands::Gpu(ctx, v) => {
                    let (dx, db) = k::bias_relu_backward_gpu(&ctx, &v[0], &v[1], n, c, inner)?;
                    (gpu_tensor(&ctx, dx, &shape), gpu_tensor(&ctx, db, &[c]))
                }
            };
            Ok(vec![Some(dx), Some(db)])
        }))
    }
}
