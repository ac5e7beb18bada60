//! Shape ops: reshape (a view), flat slices and concatenation.

use crate::error::{EngineError, Result};
use crate::tensor::{gpu_tensor, numel, Storage, Tensor};

impl Tensor {
    /// The same values with another shape of equal size (no copy).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(EngineError::Shape {
                op: "reshape",
                msg: format!("cannot view {:?} as {shape:?}", self.shape()),
            });
        }
        let from = self.shape().to_vec();
        let out = Tensor::from_storage(shape.to_vec(), self.0.storage.clone());
        Ok(out.record("reshape", &[self], move |g| {
            Ok(vec![Some(g.reshape(&from)?)])
        }))
    }

    /// `[N, ...]` → `[N, rest]`.
    pub fn flatten(&self) -> Result<Tensor> {
        let n = self.shape().first().copied().unwrap_or(1);
        self.reshape(&[n, self.numel() / n.max(1)])
    }

    /// Elements `[offset, offset + len)` of the flattened tensor, as a new leaf with
    /// `shape` (not differentiated: parameter views are leaves of their own). A view on
    /// the cpu; a copy on wgpu.
    pub fn flat_slice(&self, offset: usize, shape: &[usize]) -> Result<Tensor> {
        let len = numel(shape);
        if offset + len > self.numel() {
            return Err(EngineError::Shape {
                op: "flat_slice",
                msg: format!(
                    "[{offset}, {}) is outside a tensor of {} elements",
                    offset + len,
                    self.numel()
                ),
            });
        }
        let storage = match &self.0.storage {
            Storage::F32(v, off) => Storage::F32(v.clone(), off + offset),
            Storage::F64(v, off) => Storage::F64(v.clone(), off + offset),
            Storage::GpuF16(..) => {
                return Err(EngineError::Unsupported(
                    "flat_slice of f16 storage: convert to f32 first".into(),
                ))
            }
            Storage::Gpu(ctx, buf) => {
                let out = ctx.alloc(len as u64 * 4)?;
                ctx.copy(buf, offset as u64 * 4, &out, 0, len as u64 * 4)?;
                return Ok(gpu_tensor(ctx, out, shape));
            }
        };
        Ok(Tensor::from_storage(shape.to_vec(), storage))
    }

    /// Concatenates the flattened `parts` into one vector (not differentiated).
    pub fn cat_flat(parts: &[&Tensor]) -> Result<Tensor> {
        let Some(first) = parts.first() else {
            return Err(EngineError::Invalid("cat_flat of nothing".into()));
        };
        let total: usize = parts.iter().map(|t| t.numel()).sum();
        match &first.0.storage {
            Storage::F32(..) => {
                let mut v = Vec::with_capacity(total);
                for t in parts {
                    v.extend_from_slice(t.cpu_f32().ok_or_else(|| mixed(first, t))?);
                }
                Tensor::from_cpu(v, &[total])
            }
            Storage::F64(..) => {
                let mut v = Vec::with_capacity(total);
                for t in parts {
                    v.extend_from_slice(t.cpu_f64().ok_or_else(|| mixed(first, t))?);
                }
                Tensor::from_cpu(v, &[total])
            }
            Storage::GpuF16(..) => Err(EngineError::Unsupported(
                "cat_flat of f16 storage: convert to f32 first".into(),
            )),
            Storage::Gpu(ctx, _) => {
                let out = ctx.alloc(total as u64 * 4)?;
                let mut at = 0u64;
                for t in parts {
                    let (_, buf) = t.gpu_buffer().ok_or_else(|| mixed(first, t))?;
                    let bytes = t.numel() as u64 * 4;
                    ctx.copy(buf, 0, &out, at, bytes)?;
                    at += bytes;
                }
                Ok(gpu_tensor(ctx, out, &[total]))
            }
        }
    }
}

fn mixed(a: &Tensor, b: &Tensor) -> EngineError {
    EngineError::Mismatch {
        op: "cat_flat",
        a: a.describe(),
        b: b.describe(),
    }
}
