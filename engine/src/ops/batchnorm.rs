//! Batch normalisation over N·H·W per channel: training (batch statistics) and
//! evaluation (running statistics) forwards, and the training backward.

use super::per_backend;
use super::run;
use crate::error::{EngineError, Result};
use crate::tensor::{cpu_tensor, gpu_tensor, operands, Tensor};
use rbd_kernels::batchnorm::{self as k, BatchNormShape};
use rbd_kernels::Real;

fn bn_shape(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<BatchNormShape> {
    let s = x.shape();
    if s.len() < 2 || gamma.shape() != [s[1]] || beta.shape() != [s[1]] {
        return Err(EngineError::Shape {
            op: "batch_norm",
            msg: format!(
                "input {s:?} with gamma {:?} and beta {:?}",
                gamma.shape(),
                beta.shape()
            ),
        });
    }
    Ok(BatchNormShape {
        n: s[0],
        c: s[1],
        hw: s[2..].iter().product(),
    })
}

fn cpu_train<T: Real>(
    s: &BatchNormShape,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut y = vec![T::ZERO; x.len()];
    let mut mean = vec![T::ZERO; s.c];
    let mut invstd = vec![T::ZERO; s.c];
    k::batchnorm_train_cpu(s, x, gamma, beta, eps, &mut y, &mut mean, &mut invstd);
    (y, mean, invstd)
}

type Grads<T> = (Vec<T>, Vec<T>, Vec<T>);

fn cpu_backward<T: Real>(s: &BatchNormShape, v: &[&[T]]) -> Grads<T> {
    let mut dx = vec![T::ZERO; v[0].len()];
    let mut dgamma = vec![T::ZERO; s.c];
    let mut dbeta = vec![T::ZERO; s.c];
    k::batchnorm_backward_cpu(
        s,
        v[0],
        v[1],
        v[2],
        v[3],
        v[4],
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    );
    (dx, dgamma, dbeta)
}

impl Tensor {
    /// Training-mode batch norm. Returns the output, the batch mean and the batch
    /// `1/√(var + eps)` per channel (the last two for running statistics).
    pub fn batch_norm_train(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let s = bn_shape(self, gamma, beta)?;
        let shape = self.shape().to_vec();
        let c = [s.c];
        let (y, mean, invstd) = per_backend!(
            operands("batch_norm", &[self, gamma, beta])?,
            |v| {
                let (y, m, i) = cpu_train(&s, v[0], v[1], v[2], eps);
                (cpu_tensor(y, &shape), cpu_tensor(m, &c), cpu_tensor(i, &c))
            },
            |ctx, v| {
                let (y, m, i) = k::batchnorm_train_gpu(&ctx, &s, &v[0], &v[1], &v[2], eps as f32)?;
                (
                    gpu_tensor(&ctx, y, &shape),
                    gpu_tensor(&ctx, m, &c),
                    gpu_tensor(&ctx, i, &c),
                )
            },
        );
        let (x, g0, m0, i0) = (self.detach(), gamma.detach(), mean.clone(), invstd.clone());
        let y = y.record("batch_norm", &[self, gamma, beta], move |dy| {
            let (dx, dg, db) = per_backend!(
                operands("batch_norm_backward", &[&x, dy, &g0, &m0, &i0])?,
                |v| {
                    let (dx, dg, db) = cpu_backward(&s, &v);
                    (
                        cpu_tensor(dx, x.shape()),
                        cpu_tensor(dg, &c),
                        cpu_tensor(db, &c),
                    )
                },
                |ctx, v| {
                    let (dx, dg, db) =
                        k::batchnorm_backward_gpu(&ctx, &s, &v[0], &v[1], &v[2], &v[3], &v[4])?;
                    (
                        gpu_tensor(&ctx, dx, x.shape()),
                        gpu_tensor(&ctx, dg, &c),
                        gpu_tensor(&ctx, db, &c),
                    )
                },
            );
            Ok(vec![Some(dx), Some(dg), Some(db)])
        });
        Ok((y, mean, invstd))
    }

    /// Evaluation-mode batch norm with running statistics (not differentiated
    /// through the statistics).
    pub fn batch_norm_eval(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        running_mean: &Tensor,
        running_var: &Tensor,
        eps: f64,
    ) -> Result<Tensor> {
        let s = bn_shape(self, gamma, beta)?;
        let shape = self.shape().to_vec();
        let n = self.numel();
        Ok(per_backend!(
            operands(
                "batch_norm_eval",
                &[self, gamma, beta, running_mean, running_var],
            )?,
            |v| cpu_tensor(
                run(n, |y| {
                    k::batchnorm_eval_cpu(&s, v[0], v[1], v[2], v[3], v[4], eps, y)
                }),
                &shape,
            ),
            |ctx, v| gpu_tensor(
                &ctx,
                k::batchnorm_eval_gpu(&ctx, &s, &v[0], &v[1], &v[2], &v[3], &v[4], eps as f32)?,
                &shape,
            ),
        ))
    }
}
