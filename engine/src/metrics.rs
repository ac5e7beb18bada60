//! Training metrics summed without a readback per step: Σ loss·n, Σ correct and the
//! images seen, accumulated on the device and read once per epoch (or every N steps).
//!
//! On wgpu each [`MetricSums::add`] is one dispatch that appends the batch's mean loss
//! (f32 bits) and correct count to a record array on the device; [`MetricSums::read`]
//! reads the records and sums them on the host in step order in f64, so the sums are
//! bitwise what reading `loss.item()` and `correct_count` every step gave (no float
//! atomics, no reordering). On the cpu backend the values are at hand and are summed
//! at once.

use crate::device::Device;
use crate::error::{EngineError, Result};
use crate::ops::loss::{gpu_labels, Labels};
use crate::tensor::{Storage, Tensor};
use rbd_kernels::{loss as k, GpuBuffer, GpuContext};
use std::sync::Arc;

/// Records held on the device before [`MetricSums::add`] drains them itself (one
/// readback per this many batches at the most; 32 KiB of device memory).
pub const RECORDS_ON_DEVICE: usize = 4096;

struct DeviceRecords {
    ctx: Arc<GpuContext>,
    records: GpuBuffer,
    /// Batch size of each record not yet read, in slot order.
    sizes: Vec<usize>,
}

/// Running Σ loss·n, Σ correct and Σ n over batches (see the module docs).
pub struct MetricSums {
    device: Option<DeviceRecords>,
    loss_sum: f64,
    correct: u64,
    seen: u64,
    non_finite: Option<f64>,
    /// Each read batch's (loss, correct, n), in step order, until taken.
    records: Vec<(f64, u64, u64)>,
}

impl MetricSums {
    /// Empty sums for tensors on `device`.
    pub fn new(device: &Device) -> Result<MetricSums> {
        let device = match device {
            Device::Cpu => None,
            Device::Wgpu(ctx) => Some(DeviceRecords {
                ctx: ctx.clone(),
                records: ctx.alloc(RECORDS_ON_DEVICE as u64 * 8)?,
                sizes: Vec::with_capacity(RECORDS_ON_DEVICE),
            }),
        };
        Ok(MetricSums {
            device,
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
            non_finite: None,
            records: Vec::new(),
        })
    }

    /// Adds one batch: `loss` is its mean loss (a scalar), `logits` its `[n, k]` outputs
    /// and `labels` its `n` labels. On wgpu this records a dispatch and reads nothing
    /// (except every [`RECORDS_ON_DEVICE`] batches, when the record array is full).
    pub fn add(&mut self, loss: &Tensor, logits: &Tensor, labels: &Labels) -> Result<()> {
        let (n, kk) = match *logits.shape() {
            [n, kk] if n == labels.len() && kk == labels.classes => (n, kk),
            _ => {
                return Err(EngineError::Shape {
                    op: "MetricSums::add",
                    msg: format!(
                        "logits {:?} for {} labels of {} classes",
                        logits.shape(),
                        labels.len(),
                        labels.classes
                    ),
                })
            }
        };
        if loss.numel() != 1 {
            return Err(EngineError::Shape {
                op: "MetricSums::add",
                msg: format!("loss of shape {:?} is not a scalar", loss.shape()),
            });
        }
        let Some(dev) = self.device.as_mut() else {
            let l = loss.item()?;
            let correct = logits.correct_count(labels)? as u64;
            self.accumulate(l, n, correct);
            return Ok(());
        };
        let (Storage::Gpu(lctx, lbuf), Storage::Gpu(gctx, gbuf)) =
            (&loss.0.storage, &logits.0.storage)
        else {
            return Err(EngineError::Invalid(format!(
                "MetricSums::add: loss {} and logits {} must be f32 tensors on the device the sums were made for",
                loss.describe(),
                logits.describe()
            )));
        };
        if !Arc::ptr_eq(lctx, &dev.ctx) || !Arc::ptr_eq(gctx, &dev.ctx) {
            return Err(EngineError::Invalid(
                "MetricSums::add: loss and logits live on another device than the sums".into(),
            ));
        }
        if dev.sizes.len() == RECORDS_ON_DEVICE {
            self.drain()?;
        }
        let dev = self.device.as_mut().expect("device records");
        k::metric_record_gpu(
            &dev.ctx,
            lbuf,
            gbuf,
            gpu_labels(labels)?,
            n,
            kk,
            &dev.records,
            dev.sizes.len(),
        )?;
        dev.sizes.push(n);
        Ok(())
    }

    fn accumulate(&mut self, loss: f64, n: usize, correct: u64) {
        if !loss.is_finite() && self.non_finite.is_none() {
            self.non_finite = Some(loss);
        }
        self.loss_sum += loss * n as f64;
        self.correct += correct;
        self.seen += n as u64;
        self.records.push((loss, correct, n as u64));
    }

    /// Each batch's (loss, correct, n) since the last call, in step order (one
    /// readback on wgpu), so a caller can sum them in its own fixed order.
    pub fn take_records(&mut self) -> Result<Vec<(f64, u64, u64)>> {
        self.drain()?;
        Ok(std::mem::take(&mut self.records))
    }

    /// Reads the device records (one readback) into the host sums.
    fn drain(&mut self) -> Result<()> {
        let Some(dev) = self.device.as_mut() else {
            return Ok(());
        };
        if dev.sizes.is_empty() {
            return Ok(());
        }
        let words: Vec<u32> = dev.ctx.read(&dev.records, dev.sizes.len() * 2)?;
        let sizes = std::mem::take(&mut dev.sizes);
        for (record, n) in words.chunks_exact(2).zip(sizes) {
            self.accumulate(f32::from_bits(record[0]) as f64, n, record[1] as u64);
        }
        Ok(())
    }

    /// `(Σ loss·n, Σ correct, Σ n)` over every batch added since creation or the last
    /// [`MetricSums::reset`]; on wgpu one blocking readback.
    pub fn read(&mut self) -> Result<(f64, u64, u64)> {
        self.drain()?;
        Ok((self.loss_sum, self.correct, self.seen))
    }

    /// The first non-finite batch loss among those read so far (a diverged run).
    pub fn non_finite_loss(&self) -> Option<f64> {
        self.non_finite
    }

    /// Batches added but not yet read from the device.
    pub fn pending(&self) -> usize {
        self.device.as_ref().map_or(0, |d| d.sizes.len())
    }

    /// Starts new sums (e.g. at an epoch boundary); unread records are discarded.
    pub fn reset(&mut self) {
        if let Some(dev) = self.device.as_mut() {
            dev.sizes.clear();
        }
        self.loss_sum = 0.0;
        self.correct = 0;
        self.seen = 0;
        self.non_finite = None;
        self.records.clear();
    }
}
