//! 2×2 max pooling (stride 2) and global average pooling.

use super::{per_backend, run, Argmax};
use crate::error::{EngineError, Result};
use crate::tensor::{cpu_tensor, gpu_tensor, operands, Tensor};
use rbd_kernels::pool as k;
use rbd_kernels::Real;
use std::sync::Arc;

fn nchw(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize, usize)> {
    match *x.shape() {
        [n, c, h, w] => Ok((n, c, h, w)),
        _ => Err(EngineError::Shape {
            op,
            msg: format!("needs an NCHW input, got {:?}", x.shape()),
        }),
    }
}

fn cpu_pool<T: Real>(n: usize, c: usize, h: usize, w: usize, x: &[T]) -> (Vec<T>, Vec<u32>) {
    let len = n * c * (h / 2) * (w / 2);
    let mut y = vec![T::ZERO; len];
    let mut idx = vec![0u32; len];
    k::maxpool2x2_cpu(n, c, h, w, x, &mut y, &mut idx);
    (y, idx)
}

impl Tensor {
    /// 2×2 max pooling with stride 2 (odd trailing rows and columns are dropped).
    pub fn maxpool2x2(&self) -> Result<Tensor> {
        let (n, c, h, w) = nchw("maxpool2x2", self)?;
        if h < 2 || w < 2 {
            return Err(EngineError::Shape {
                op: "maxpool2x2",
                msg: format!("input {:?} is smaller than the 2×2 window", self.shape()),
            });
        }
        let shape = [n, c, h / 2, w / 2];
        let (out, argmax) = per_backend!(
            operands("maxpool2x2", &[self])?,
            |v| {
                let (y, i) = cpu_pool(n, c, h, w, v[0]);
                (cpu_tensor(y, &shape), Argmax::Host(Arc::new(i)))
            },
            |ctx, v| {
                let (y, i) = k::maxpool2x2_gpu(&ctx, n, c, h, w, &v[0])?;
                (gpu_tensor(&ctx, y, &shape), Argmax::Gpu(Arc::new(i)))
            },
        );
        let len = n * c * h * w;
        Ok(out.record("maxpool2x2", &[self], move |g| {
            let xshape = [n, c, h, w];
            let op = "maxpool2x2_backward";
            let dx = per_backend!(
                operands(op, &[g])?,
                |d| {
                    let i = argmax.host(op)?;
                    cpu_tensor(
                        run(len, |dx| {
                            k::maxpool2x2_backward_cpu(n, c, h, w, d[0], i, dx)
                        }),
                        &xshape,
                    )
                },
                |ctx, d| {
                    let i = argmax.gpu(op)?;
                    let dx = k::maxpool2x2_backward_gpu(&ctx, n, c, h, w, &d[0], i)?;
                    gpu_tensor(&ctx, dx, &xshape)
                },
            );
            Ok(vec![Some(dx)])
        }))
    }

    /// Mean over H and W: `[N, C, H, W]` → `[N, C]`.
    pub fn global_avg_pool(&self) -> Result<Tensor> {
        let (n, c, h, w) = nchw("global_avg_pool", self)?;
        let hw = h * w;
        let out = per_backend!(
            operands("global_avg_pool", &[self])?,
            |v| cpu_tensor(
                run(n * c, |y| k::global_avg_pool_cpu(n, c, hw, v[0], y)),
                &[n, c],
            ),
            |ctx, v| gpu_tensor(
                &ctx,
                k::global_avg_pool_gpu(&ctx, n, c, hw, &v[0])?,
                &[n, c],
            ),
        );
        Ok(out.record("global_avg_pool", &[self], move |g| {
            let shape = [n, c, h, w];
            let dx = per_backend!(
                operands("global_avg_pool_backward", &[g])?,
                |d| cpu_tensor(
                    run(n * c * hw, |dx| {
                        k::global_avg_pool_backward_cpu(n, c, hw, d[0], dx)
                    }),
                    &shape,
                ),
                |ctx, d| gpu_tensor(
                    &ctx,
                    k::global_avg_pool_backward_gpu(&ctx, n, c, hw, &d[0])?,
                    &shape,
                ),
            );
            Ok(vec![Some(dx)])
        }))
    }
}
