//! Fixed-order reductions: sum, sum of squares, dot, and the bias-gradient sums.

use super::per_backend;
use super::run;
use crate::error::{EngineError, Result};
use crate::tensor::{cpu_tensor, gpu_tensor, operands, Tensor};
use rbd_kernels::reduce::{self as k, Reduction};
use rbd_kernels::Real;

impl Tensor {
    /// Σ x, as a scalar (shape `[]`).
    pub fn sum(&self) -> Result<Tensor> {
        let shape = self.shape().to_vec();
        let out = reduce_raw(Reduction::Sum, self)?;
        Ok(out.record("sum", &[self], move |g| {
            Ok(vec![Some(g.broadcast_scalar(&shape)?)])
        }))
    }

    /// Σ x², as a scalar.
    pub fn sum_squares(&self) -> Result<Tensor> {
        let x = self.detach();
        let out = reduce_raw(Reduction::SumSquares, self)?;
        Ok(out.record("sum_squares", &[self], move |g| {
            Ok(vec![Some(x.mul_scalar(g)?.scale(2.0)?)])
        }))
    }

    /// ⟨a, b⟩ over all elements, as a scalar.
    pub fn dot(&self, other: &Tensor) -> Result<Tensor> {
        super::same_shape("dot", self, other)?;
        let (a, b) = (self.detach(), other.detach());
        let out = per_backend!(
            operands("dot", &[self, other])?,
            |x| cpu_tensor(vec![k::dot_cpu(x[0], x[1])], &[]),
            |ctx, x| { gpu_tensor(&ctx, k::dot_gpu(&ctx, &x[0], &x[1], self.numel())?, &[]) },
        );
        Ok(out.record("dot", &[self, other], move |g| {
            Ok(vec![Some(b.mul_scalar(g)?), Some(a.mul_scalar(g)?)])
        }))
    }

    /// Sums over every axis but axis 1 (the bias gradient of [`Tensor::bias_add`]).
    pub fn sum_to_axis1(&self) -> Result<Tensor> {
        let shape = self.shape().to_vec();
        if shape.len() < 2 {
            return Err(EngineError::Shape {
                op: "sum_to_axis1",
                msg: format!("needs rank ≥ 2, got {shape:?}"),
            });
        }
        let (n, c, inner) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
        let out = per_backend!(
            operands("sum_to_axis1", &[self])?,
            |x| cpu_tensor(cpu_sum_channels(x[0], n, c, inner), &[c]),
            |ctx, x| {
                let buf = if inner == 1 {
                    k::sum_rows_gpu(&ctx, &x[0], n, c)?
                } else {
                    k::sum_channels_gpu(&ctx, &x[0], n, c, inner)?
                };
                gpu_tensor(&ctx, buf, &[c])
            },
        );
        Ok(out.record("sum_to_axis1", &[self], move |g| {
            // d/dx of a per-channel sum: the channel's gradient at every position.
            let zeros = Tensor::zeros(&g.device(), &shape, g.dtype())?;
            Ok(vec![Some(zeros.bias_add(g)?)])
        }))
    }

    /// x · s where `s` is a one-element tensor (kept on the device).
    pub fn mul_scalar(&self, s: &Tensor) -> Result<Tensor> {
        if s.numel() != 1 {
            return Err(EngineError::Shape {
                op: "mul_scalar",
                msg: format!("scalar operand has shape {:?}", s.shape()),
            });
        }
        let shape = self.shape().to_vec();
        let (x, sv) = (self.detach(), s.detach());
        let out = per_backend!(
            operands("mul_scalar", &[self, s])?,
            |v| cpu_tensor(
                run(v[0].len(), |o| k::mul_scalar_cpu(v[0], v[1][0], o)),
                &shape,
            ),
            |ctx, v| gpu_tensor(
                &ctx,
                k::mul_scalar_gpu(&ctx, &v[0], &v[1], self.numel())?,
                &shape,
            ),
        );
        Ok(out.record("mul_scalar", &[self, s], move |g| {
            Ok(vec![Some(g.mul_scalar(&sv)?), Some(g.dot(&x)?)])
        }))
    }

    /// A tensor of `shape` filled with this scalar's value (no readback on wgpu).
    pub fn broadcast_scalar(&self, shape: &[usize]) -> Result<Tensor> {
        self.full_like(shape, 1.0)?.mul_scalar(self)
    }
}

fn reduce_raw(r: Reduction, x: &Tensor) -> Result<Tensor> {
    Ok(per_backend!(
        operands("reduce", &[x])?,
        |v| cpu_tensor(vec![k::reduce_cpu(r, v[0])], &[]),
        |ctx, v| gpu_tensor(&ctx, k::reduce_gpu(&ctx, r, &v[0], x.numel())?, &[]),
    ))
}

fn cpu_sum_channels<T: Real>(x: &[T], n: usize, c: usize, inner: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; c];
    if inner == 1 {
        k::sum_rows_cpu(x, n, c, &mut out);
    } else {
        k::sum_channels_cpu(x, n, c, inner, &mut out);
    }
    out
}
