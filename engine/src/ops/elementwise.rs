//! add, sub, mul, scale, axpy, ReLU and bias add.

use super::per_backend;
use super::{run, same_shape};
use crate::error::{EngineError, Result};
use crate::tensor::{cpu_tensor, gpu_tensor, operands, Tensor};
use rbd_kernels::elementwise::{self as k, Binary, Unary};
use rbd_kernels::Real;

fn binary_raw(op: Binary, name: &'static str, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_shape(name, a, b)?;
    let shape = a.shape();
    let n = a.numel();
    Ok(per_backend!(
        operands(name, &[a, b])?,
        |x| cpu_tensor(run(n, |o| k::binary_cpu(op, x[0], x[1], o)), shape),
        |ctx, x| gpu_tensor(&ctx, k::binary_gpu(&ctx, op, &x[0], &x[1], n)?, shape),
    ))
}

fn unary_raw(op: Unary, x: &Tensor) -> Result<Tensor> {
    let shape = x.shape();
    Ok(per_backend!(
        operands("unary", &[x])?,
        |v| cpu_tensor(run(x.numel(), |o| k::unary_cpu(op, v[0], o)), shape),
        |ctx, v| gpu_tensor(&ctx, k::unary_gpu(&ctx, op, &v[0], x.numel())?, shape),
    ))
}

fn axpy_raw(alpha: f64, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_shape("axpy", a, b)?;
    let shape = a.shape();
    Ok(per_backend!(
        operands("axpy", &[a, b])?,
        |x| cpu_tensor(
            run(a.numel(), |o| k::axpy_cpu(
                Real::from_f64(alpha),
                x[0],
                x[1],
                o
            )),
            shape,
        ),
        |ctx, x| gpu_tensor(
            &ctx,
            k::axpy_gpu(&ctx, alpha as f32, &x[0], &x[1], a.numel())?,
            shape,
        ),
    ))
}

impl Tensor {
    /// Elementwise a + b (same shapes).
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        Ok(
            binary_raw(Binary::Add, "add", self, other)?.record("add", &[self, other], |g| {
                Ok(vec![Some(g.clone()), Some(g.clone())])
            }),
        )
    }

    /// Elementwise a − b.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        Ok(
            binary_raw(Binary::Sub, "sub", self, other)?.record("sub", &[self, other], |g| {
                Ok(vec![Some(g.clone()), Some(g.scale(-1.0)?)])
            }),
        )
    }

    /// Elementwise a · b.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        let (a, b) = (self.detach(), other.detach());
        Ok(
            binary_raw(Binary::Mul, "mul", self, other)?.record("mul", &[self, other], move |g| {
                Ok(vec![Some(g.mul(&b)?), Some(g.mul(&a)?)])
            }),
        )
    }

    /// α · x.
    pub fn scale(&self, alpha: f64) -> Result<Tensor> {
        Ok(unary_raw(Unary::Scale(alpha), self)?
            .record("scale", &[self], move |g| Ok(vec![Some(g.scale(alpha)?)])))
    }

    /// α · self + other.
    pub fn axpy(&self, alpha: f64, other: &Tensor) -> Result<Tensor> {
        Ok(
            axpy_raw(alpha, self, other)?.record("axpy", &[self, other], move |g| {
                Ok(vec![Some(g.scale(alpha)?), Some(g.clone())])
            }),
        )
    }

    /// max(x, 0).
    pub fn relu(&self) -> Result<Tensor> {
        let x = self.detach();
        Ok(
            unary_raw(Unary::Relu, self)?.record("relu", &[self], move |g| {
                Ok(vec![Some(binary_raw(
                    Binary::ReluBackward,
                    "relu_backward",
                    g,
                    &x,
                )?)])
            }),
        )
    }

    /// 1/x² − α, not differentiated (batch-norm variance from its inverse std).
    pub fn inv_square_minus(&self, alpha: f64) -> Result<Tensor> {
        unary_raw(Unary::InvSquareMinus(alpha), self)
    }

    /// Adds `bias` along axis 1: per column of `[N, F]` or per channel of `[N, C, H, W]`.
    pub fn bias_add(&self, bias: &Tensor) -> Result<Tensor> {
        let shape = self.shape().to_vec();
        if shape.len() < 2 || bias.shape() != [shape[1]] {
            return Err(EngineError::Shape {
                op: "bias_add",
                msg: format!(
                    "bias {:?} does not match axis 1 of {:?}",
                    bias.shape(),
                    shape
                ),
            });
        }
        let channels = shape[1];
        let inner: usize = shape[2..].iter().product();
        let out = per_backend!(
            operands("bias_add", &[self, bias])?,
            |x| cpu_tensor(
                run(self.numel(), |o| k::bias_add_cpu(x[0], x[1], inner, o)),
                &shape,
            ),
            |ctx, x| gpu_tensor(
                &ctx,
                k::bias_add_gpu(&ctx, &x[0], &x[1], self.numel(), inner, channels)?,
                &shape,
            ),
        );
        Ok(out.record("bias_add", &[self, bias], move |g| {
            Ok(vec![Some(g.clone()), Some(g.sum_to_axis1()?)])
        }))
    }
}
