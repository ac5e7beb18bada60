//! Fused bias + ReLU: `max(x + b, 0)` with `b` along axis 1, and its backward rule
//! (dx and the bias gradient from one kernel). Kernels: `rbd_kernels::bias_relu`.

use super::{per_backend, Argmax};
use crate::error::{EngineError, Result};
use crate::tensor::{cpu_tensor, gpu_tensor, operands, Tensor};
use rbd_kernels::bias_relu as k;
use rbd_kernels::Real;
use std::sync::Arc;

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

fn pool_cpu<T: Real>(
    (n, c, h, w): (usize, usize, usize, usize),
    x: &[T],
    bias: &[T],
) -> (Vec<T>, Vec<u32>) {
    let len = n * c * (h / 2) * (w / 2);
    let (mut y, mut argmax) = (vec![T::ZERO; len], vec![0u32; len]);
    k::bias_relu_maxpool2x2_cpu(n, c, h, w, x, bias, &mut y, &mut argmax);
    (y, argmax)
}

fn pool_backward_cpu<T: Real>(
    (n, c, h, w): (usize, usize, usize, usize),
    y: &[T],
    dy: &[T],
    argmax: &[u32],
) -> (Vec<T>, Vec<T>) {
    let (mut dx, mut db) = (vec![T::ZERO; n * c * h * w], vec![T::ZERO; c]);
    k::bias_relu_maxpool2x2_backward_cpu(n, c, h, w, y, dy, argmax, &mut dx, &mut db);
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
        let out = per_backend!(
            operands("bias_relu", &[self, bias])?,
            |x| cpu_tensor(
                super::run(self.numel(), |o| k::bias_relu_cpu(x[0], x[1], inner, o)),
                &shape,
            ),
            |ctx, x| gpu_tensor(
                &ctx,
                k::bias_relu_gpu(&ctx, &x[0], &x[1], self.numel(), inner, c)?,
                &shape,
            ),
        );
        let y = out.detach();
        Ok(out.record("bias_relu", &[self, bias], move |g| {
            let (dx, db) = per_backend!(
                operands("bias_relu_backward", &[&y, g])?,
                |v| {
                    let (dx, db) = backward_cpu(v[0], v[1], n, c, inner);
                    (cpu_tensor(dx, &shape), cpu_tensor(db, &[c]))
                },
                |ctx, v| {
                    let (dx, db) = k::bias_relu_backward_gpu(&ctx, &v[0], &v[1], n, c, inner)?;
                    (gpu_tensor(&ctx, dx, &shape), gpu_tensor(&ctx, db, &[c]))
                },
            );
            Ok(vec![Some(dx), Some(db)])
        }))
    }

    /// `bias_relu(bias)` then `maxpool2x2()` in one kernel (the CNN's conv → bias → ReLU
    /// → pool): bitwise their values and gradients, one dispatch forward and one
    /// backward on wgpu instead of two and two to three.
    pub fn bias_relu_maxpool2x2(&self, bias: &Tensor) -> Result<Tensor> {
        let (n, c, _) = axis1("bias_relu_maxpool2x2", self, bias)?;
        let dims = match *self.shape() {
            [n, c, h, w] if h >= 2 && w >= 2 => (n, c, h, w),
            _ => {
                return Err(EngineError::Shape {
                    op: "bias_relu_maxpool2x2",
                    msg: format!(
                        "needs an NCHW input of at least 2×2, got {:?}",
                        self.shape()
                    ),
                })
            }
        };
        let (h, w) = (dims.2, dims.3);
        let shape = [n, c, h / 2, w / 2];
        let (out, argmax) = per_backend!(
            operands("bias_relu_maxpool2x2", &[self, bias])?,
            |x| {
                let (y, i) = pool_cpu(dims, x[0], x[1]);
                (cpu_tensor(y, &shape), Argmax::Host(Arc::new(i)))
            },
            |ctx, x| {
                let (y, i) = k::bias_relu_maxpool2x2_gpu(&ctx, n, c, h, w, &x[0], &x[1])?;
                (gpu_tensor(&ctx, y, &shape), Argmax::Gpu(Arc::new(i)))
            },
        );
        let y = out.detach();
        Ok(out.record("bias_relu_maxpool2x2", &[self, bias], move |g| {
            let xshape = [n, c, h, w];
            let op = "bias_relu_maxpool2x2_backward";
            let (dx, db) = per_backend!(
                operands(op, &[&y, g])?,
                |v| {
                    let (dx, db) = pool_backward_cpu(dims, v[0], v[1], argmax.host(op)?);
                    (cpu_tensor(dx, &xshape), cpu_tensor(db, &[c]))
                },
                |ctx, v| {
                    let i = argmax.gpu(op)?;
                    let (dx, db) =
                        k::bias_relu_maxpool2x2_backward_gpu(&ctx, n, c, h, w, &v[0], &v[1], i)?;
                    (gpu_tensor(&ctx, dx, &xshape), gpu_tensor(&ctx, db, &[c]))
                },
            );
            Ok(vec![Some(dx), Some(db)])
        }))
    }
}
