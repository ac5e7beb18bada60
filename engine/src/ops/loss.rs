//! Mean softmax cross-entropy and accuracy counting, over integer class labels.

use super::per_backend;
use super::run;
use crate::device::Device;
use crate::error::{EngineError, Result};
use crate::tensor::{cpu_tensor, gpu_tensor, operands, Tensor};
use rbd_kernels::loss as k;
use rbd_kernels::GpuBuffer;
use std::sync::Arc;

/// Class labels of a batch, validated against the class count, kept on the host and
/// (for wgpu) on the device.
#[derive(Clone)]
pub struct Labels {
    host: Arc<Vec<u32>>,
    gpu: Option<Arc<GpuBuffer>>,
    pub(crate) classes: usize,
}

impl Labels {
    /// Labels for `device`; every label must be below `classes`.
    pub fn new(device: &Device, labels: Vec<u32>, classes: usize) -> Result<Labels> {
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= classes)
        {
            return Err(EngineError::Invalid(format!(
                "label {l} at position {i} is out of range for {classes} classes"
            )));
        }
        let gpu = match device {
            Device::Wgpu(ctx) => Some(Arc::new(ctx.upload(bytemuck::cast_slice(&labels))?)),
            Device::Cpu => None,
        };
        Ok(Labels {
            host: Arc::new(labels),
            gpu,
            classes,
        })
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.host.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.host.is_empty()
    }

    /// The host copy.
    pub fn host(&self) -> &[u32] {
        &self.host
    }
}

fn check(logits: &Tensor, labels: &Labels) -> Result<(usize, usize)> {
    match *logits.shape() {
        [n, k] if n == labels.len() && k == labels.classes => Ok((n, k)),
        _ => Err(EngineError::Shape {
            op: "softmax_cross_entropy",
            msg: format!(
                "logits {:?} for {} labels of {} classes",
                logits.shape(),
                labels.len(),
                labels.classes
            ),
        }),
    }
}

pub(crate) fn gpu_labels(labels: &Labels) -> Result<&Arc<GpuBuffer>> {
    labels
        .gpu
        .as_ref()
        .ok_or_else(|| EngineError::Invalid("labels were made for the cpu backend".into()))
}

impl Tensor {
    /// Mean softmax cross-entropy of `[N, K]` logits against `labels`, as a scalar.
    pub fn softmax_cross_entropy(&self, labels: &Labels) -> Result<Tensor> {
        let (n, kk) = check(self, labels)?;
        let out = per_backend!(
            operands("softmax_cross_entropy", &[self])?,
            |v| { cpu_tensor(vec![k::softmax_xent_cpu(v[0], labels.host(), n, kk)], &[]) },
            |ctx, v| gpu_tensor(
                &ctx,
                k::softmax_xent_gpu(&ctx, &v[0], gpu_labels(labels)?, n, kk)?,
                &[],
            ),
        );
        let (x, labels) = (self.detach(), labels.clone());
        Ok(out.record("softmax_cross_entropy", &[self], move |g| {
            let shape = [n, kk];
            let d = per_backend!(
                operands("softmax_cross_entropy_backward", &[&x, g])?,
                |v| cpu_tensor(
                    run(n * kk, |d| {
                        k::softmax_xent_backward_cpu(v[0], labels.host(), n, kk, v[1][0], d)
                    }),
                    &shape,
                ),
                |ctx, v| gpu_tensor(
                    &ctx,
                    k::softmax_xent_backward_gpu(&ctx, &v[0], gpu_labels(&labels)?, n, kk, &v[1])?,
                    &shape,
                ),
            );
            Ok(vec![Some(d)])
        }))
    }

    /// How many rows of `[N, K]` logits have their (first) maximum at the label.
    pub fn correct_count(&self, labels: &Labels) -> Result<usize> {
        let (n, kk) = check(self, labels)?;
        Ok(per_backend!(
            operands("correct_count", &[self])?,
            |v| k::correct_count_cpu(v[0], labels.host(), n, kk),
            |ctx, v| {
                let buf = k::correct_count_gpu(&ctx, &v[0], gpu_labels(labels)?, n, kk)?;
                ctx.read::<u32>(&buf, 1)?[0] as usize
            },
        ))
    }
}
