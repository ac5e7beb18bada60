//! Matrix product with optional transposes; its backward is two more matmuls.

use super::per_backend;
use super::run;
use crate::error::{EngineError, Result};
use crate::tensor::{cpu_tensor, gpu_tensor, operands, DType, Tensor};
use rbd_kernels::matmul::{self as k, MatmulShape};

fn matmul_raw(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    let (sa, sb) = (a.shape(), b.shape());
    if sa.len() != 2 || sb.len() != 2 {
        return Err(EngineError::Shape {
            op: "matmul",
            msg: format!("needs two matrices, got {sa:?} and {sb:?}"),
        });
    }
    let (m, ka) = if trans_a {
        (sa[1], sa[0])
    } else {
        (sa[0], sa[1])
    };
    let (kb, n) = if trans_b {
        (sb[1], sb[0])
    } else {
        (sb[0], sb[1])
    };
    if ka != kb {
        return Err(EngineError::Shape {
            op: "matmul",
            msg: format!(
                "inner sizes differ: {sa:?}{} × {sb:?}{}",
                if trans_a { "ᵀ" } else { "" },
                if trans_b { "ᵀ" } else { "" }
            ),
        });
    }
    let s = MatmulShape {
        m,
        k: ka,
        n,
        trans_a,
        trans_b,
    };
    if a.dtype() == DType::F16 || b.dtype() == DType::F16 {
        // f16 storage, f32 accumulation and result (no autodiff).
        return match (a.gpu_f16(), b.gpu_f16()) {
            (Some((ctx, x)), Some((_, y))) => {
                Ok(gpu_tensor(ctx, k::matmul_f16_gpu(ctx, &s, x, y)?, &[m, n]))
            }
            _ => Err(EngineError::Mismatch {
                op: "matmul",
                a: a.describe(),
                b: b.describe(),
            }),
        };
    }
    Ok(per_backend!(
        operands("matmul", &[a, b])?,
        |x| cpu_tensor(run(m * n, |c| k::matmul_cpu(&s, x[0], x[1], c)), &[m, n]),
        |ctx, x| gpu_tensor(&ctx, k::matmul_gpu(&ctx, &s, &x[0], &x[1])?, &[m, n]),
    ))
}

impl Tensor {
    /// `self · other` for matrices.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        self.matmul_t(other, false, false)
    }

    /// `op(self) · op(other)` where op transposes when asked (no copy is made).
    pub fn matmul_t(&self, other: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        if self.dtype() == DType::F16 || other.dtype() == DType::F16 {
            return matmul_raw(self, other, trans_a, trans_b);
        }
        let (a, b) = (self.detach(), other.detach());
        // Only the operands that need a gradient get one (not the input batch).
        let (need_a, need_b) = (self.tracks_grad(), other.tracks_grad());
        let out = matmul_raw(self, other, trans_a, trans_b)?;
        Ok(out.record("matmul", &[self, other], move |g| {
            // C = op(A)·op(B): dA = g·op(B)ᵀ (transposed back if A was), likewise dB.
            let da = need_a
                .then(|| {
                    if trans_a {
                        matmul_raw(&b, g, trans_b, true)
                    } else {
                        matmul_raw(g, &b, false, !trans_b)
                    }
                })
                .transpose()?;
            let db = need_b
                .then(|| {
                    if trans_b {
                        matmul_raw(g, &a, true, trans_a)
                    } else {
                        matmul_raw(&a, g, !trans_a, false)
                    }
                })
                .transpose()?;
            Ok(vec![da, db])
        }))
    }
}
