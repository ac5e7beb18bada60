//! Softmax cross-entropy (mean over rows) and its gradient, argmax and the count of
//! correct predictions. WGSL: `wgsl/loss.wgsl`.
//!
//! `logits` is a row-major `[n, k]` matrix, `labels` holds `n` class indices (`u32`).
//!
//! **Out-of-range labels.** A label `≥ k` selects no class: its row adds zero to the loss
//! sum (the mean still divides by `n`), gets an all-zero gradient and never counts as
//! correct, on the cpu and the device alike. The engine validates labels before calling;
//! this rule only keeps device reads in bounds and the backends consistent.
//!
//! `k` must be at least 1 (the launchers return [`GpuError::Invalid`], the cpu functions
//! panic). For `n = 0` the loss is 0.

use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::launch::{check_len, check_u32, launch_1d, WG_1D};
use crate::real::{Real, CPU_CHUNK};
use crate::reduce::mean_gpu;
use crate::GpuError;
use rayon::prelude::*;

const SRC: &str = include_str!("../wgsl/loss.wgsl");

/// Values per workgroup of the `count_sum` pass (`COUNT_CHUNK` in the WGSL).
const COUNT_CHUNK: usize = 4096;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    n: u32,
    k: u32,
    /// `metric_record`'s record index (0 elsewhere).
    slot: u32,
    _pad: u32,
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        module: "loss",
        source: SRC,
        entry,
        trusted: true,
    }
}

fn check_cpu_args<T>(logits: &[T], labels: &[u32], n: usize, k: usize, what: &str) {
    assert!(k >= 1, "{what}: k must be at least 1 (n = {n})");
    assert!(
        logits.len() >= n * k && labels.len() >= n,
        "{what} [{n}, {k}]: {} logits and {} labels are too few",
        logits.len(),
        labels.len()
    );
}

/// Rows per parallel task of the cpu kernels (whole rows, about [`CPU_CHUNK`] values).
fn rows_per_task(k: usize) -> usize {
    (CPU_CHUNK / k.max(1)).max(1)
}

/// Row maximum (the first element where comparisons fail, as on the device).
fn row_max<T: Real>(row: &[T]) -> T {
    row[1..].iter().fold(row[0], |m, &v| m.max(v))
}

/// Σ exp(l − m) in column order.
fn row_sum_exp<T: Real>(row: &[T], m: T) -> T {
    row.iter().fold(T::ZERO, |s, &v| s + (v - m).exp())
}

/// The loss of one row: log Σ exp(l − m) − (l_label − m), or 0 for a label ≥ k.
fn row_loss<T: Real>(row: &[T], label: u32) -> T {
    let label = label as usize;
    if label >= row.len() {
        return T::ZERO;
    }
    let m = row_max(row);
    row_sum_exp(row, m).ln() - (row[label] - m)
}

/// First index of the row maximum (strict `>`: ties go to the lowest index).
fn row_argmax<T: Real>(row: &[T]) -> usize {
    let mut best = row[0];
    let mut arg = 0;
    for (j, &v) in row.iter().enumerate().skip(1) {
        if v > best {
            best = v;
            arg = j;
        }
    }
    arg
}

/// Mean softmax cross-entropy over `n` rows, numerically stable (each row's maximum is
/// subtracted before exponentiating: log-sum-exp). Per-row losses are computed in
/// parallel and summed in a fixed order (as [`crate::reduce::reduce_cpu`] sums).
pub fn softmax_xent_cpu<T: Real>(logits: &[T], labels: &[u32], n: usize, k: usize) -> T {
    check_cpu_args(logits, labels, n, k, "softmax_xent_cpu");
    if n == 0 {
        return T::ZERO;
    }
    let mut losses = vec![T::ZERO; n];
    let rows = rows_per_task(k);
    losses
        .par_chunks_mut(rows)
        .zip(logits[..n * k].par_chunks(rows * k))
        .zip(labels[..n].par_chunks(rows))
        .for_each(|((out, logits), labels)| {
            for ((o, row), &label) in out.iter_mut().zip(logits.chunks_exact(k)).zip(labels) {
                *o = row_loss(row, label);
            }
        });
    crate::reduce::reduce_cpu(crate::reduce::Reduction::Sum, &losses) / T::from_f64(n as f64)
}

/// `dlogits = (softmax(logits) − onehot(label)) · dloss / n` (all-zero rows for labels
/// ≥ k). Overwrites `dlogits[..n·k]`.
pub fn softmax_xent_backward_cpu<T: Real>(
    logits: &[T],
    labels: &[u32],
    n: usize,
    k: usize,
    dloss: T,
    dlogits: &mut [T],
) {
    check_cpu_args(logits, labels, n, k, "softmax_xent_backward_cpu");
    assert!(
        dlogits.len() >= n * k,
        "softmax_xent_backward_cpu: dlogits too short"
    );
    if n == 0 {
        return;
    }
    let scale = dloss / T::from_f64(n as f64);
    let rows = rows_per_task(k);
    dlogits[..n * k]
        .par_chunks_mut(rows * k)
        .zip(logits[..n * k].par_chunks(rows * k))
        .zip(labels[..n].par_chunks(rows))
        .for_each(|((grad, logits), labels)| {
            for ((g, row), &label) in grad
                .chunks_exact_mut(k)
                .zip(logits.chunks_exact(k))
                .zip(labels)
            {
                let label = label as usize;
                if label >= k {
                    g.fill(T::ZERO);
                    continue;
                }
                let m = row_max(row);
                let s = row_sum_exp(row, m);
                for (j, (g, &v)) in g.iter_mut().zip(row).enumerate() {
                    let p = (v - m).exp() / s;
                    let y = if j == label { T::ONE } else { T::ZERO };
                    *g = (p - y) * scale;
                }
            }
        });
}

/// Number of rows whose argmax (first maximum) equals the label.
pub fn correct_count_cpu<T: Real>(logits: &[T], labels: &[u32], n: usize, k: usize) -> usize {
    check_cpu_args(logits, labels, n, k, "correct_count_cpu");
    let rows = rows_per_task(k);
    logits[..n * k]
        .par_chunks(rows * k)
        .zip(labels[..n].par_chunks(rows))
        .map(|(logits, labels)| {
            logits
                .chunks_exact(k)
                .zip(labels)
                .filter(|(row, &label)| row_argmax(row) == label as usize)
                .count()
        })
        .sum()
}

/// `out[i]` = index of the first maximum of row i.
pub fn argmax_cpu<T: Real>(logits: &[T], n: usize, k: usize, out: &mut [u32]) {
    assert!(k >= 1, "argmax_cpu: k must be at least 1");
    assert!(
        logits.len() >= n * k && out.len() >= n,
        "argmax_cpu [{n}, {k}]: slices too short"
    );
    let rows = rows_per_task(k);
    out[..n]
        .par_chunks_mut(rows)
        .zip(logits[..n * k].par_chunks(rows * k))
        .for_each(|(out, logits)| {
            for (o, row) in out.iter_mut().zip(logits.chunks_exact(k)) {
                *o = row_argmax(row) as u32;
            }
        });
}

fn check_gpu_args(
    what: &str,
    logits: &GpuBuffer,
    labels: Option<&GpuBuffer>,
    n: usize,
    k: usize,
) -> Result<Info, GpuError> {
    if k == 0 {
        return Err(GpuError::Invalid(format!(
            "{what}: k must be at least 1 (n = {n})"
        )));
    }
    check_len(&format!("{what} logits [{n}, {k}]"), logits, n * k)?;
    if let Some(labels) = labels {
        check_len(&format!("{what} labels [{n}]"), labels, n)?;
    }
    check_u32(what, n * k)?;
    Ok(Info {
        n: n as u32,
        k: k as u32,
        slot: 0,
        _pad: 0,
    })
}

/// Rows up to which the mean loss is one dispatch (one workgroup; `reduce_sum`'s chunk).
const MEAN_IN_ONE_GROUP: usize = 4096;
/// Classes up to which the gradient's threads compute their row's statistics
/// themselves (k² work per row instead of a separate `row_stats` dispatch).
const ROWWISE_STATS_K: usize = 32;

/// Mean softmax cross-entropy on the device, as a 1-value buffer: per-row losses (one
/// thread per row), then a fixed-order sum divided by `n` (see
/// [`crate::reduce::reduce_gpu`]). Up to 4096 rows both happen in one dispatch, in the
/// same order (bitwise the same value as [`softmax_xent_gpu_separate_passes`]).
pub fn softmax_xent_gpu(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    labels: &GpuBuffer,
    n: usize,
    k: usize,
) -> Result<GpuBuffer, GpuError> {
    let info = check_gpu_args("softmax_xent_gpu", logits, Some(labels), n, k)?;
    if n == 0 || n > MEAN_IN_ONE_GROUP {
        return softmax_xent_gpu_separate_passes(ctx, logits, labels, n, k);
    }
    let mean = ctx.alloc(4)?;
    ctx.dispatch(
        &kernel("xent_mean"),
        &[],
        bytemuck::bytes_of(&info),
        &[logits, labels, &mean],
        [1, 1, 1],
    )?;
    Ok(mean)
}

/// [`softmax_xent_gpu`] as row losses, then the sum passes (any `n`).
#[doc(hidden)]
pub fn softmax_xent_gpu_separate_passes(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    labels: &GpuBuffer,
    n: usize,
    k: usize,
) -> Result<GpuBuffer, GpuError> {
    let info = check_gpu_args("softmax_xent_gpu", logits, Some(labels), n, k)?;
    if n == 0 {
        return ctx.zeros(4);
    }
    let losses = ctx.alloc(n as u64 * 4)?;
    launch_1d(
        ctx,
        &kernel("xent_rows"),
        bytemuck::bytes_of(&info),
        &[logits, labels, &losses],
        n as u64,
    )?;
    mean_gpu(ctx, &losses, n, n as f32)
}

/// Gradient of the mean softmax cross-entropy on the device, `[n, k]`; `dloss` is the
/// 1-value upstream gradient on the device (no readback). One thread per element; up
/// to 32 classes each computes its row's statistics (max, Σ exp) itself, in one
/// dispatch, bitwise as [`softmax_xent_backward_gpu_separate_passes`] does.
pub fn softmax_xent_backward_gpu(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    labels: &GpuBuffer,
    n: usize,
    k: usize,
    dloss: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    let info = check_gpu_args("softmax_xent_backward_gpu", logits, Some(labels), n, k)?;
    check_len("softmax_xent_backward_gpu dloss", dloss, 1)?;
    if n == 0 || k > ROWWISE_STATS_K {
        return softmax_xent_backward_gpu_separate_passes(ctx, logits, labels, n, k, dloss);
    }
    let grad = ctx.alloc((n * k) as u64 * 4)?;
    launch_1d(
        ctx,
        &kernel("xent_backward_rowwise"),
        bytemuck::bytes_of(&info),
        &[logits, labels, dloss, &grad],
        (n * k) as u64,
    )?;
    Ok(grad)
}

/// [`softmax_xent_backward_gpu`] with the row statistics in a pass of their own (any k).
#[doc(hidden)]
pub fn softmax_xent_backward_gpu_separate_passes(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    labels: &GpuBuffer,
    n: usize,
    k: usize,
    dloss: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    let info = check_gpu_args("softmax_xent_backward_gpu", logits, Some(labels), n, k)?;
    check_len("softmax_xent_backward_gpu dloss", dloss, 1)?;
    if n == 0 {
        return ctx.alloc(0);
    }
    let stats = ctx.alloc(n as u64 * 8)?;
    launch_1d(
        ctx,
        &kernel("row_stats"),
        bytemuck::bytes_of(&info),
        &[logits, &stats],
        n as u64,
    )?;
    let grad = ctx.alloc((n * k) as u64 * 4)?;
    launch_1d(
        ctx,
        &kernel("xent_backward"),
        bytemuck::bytes_of(&info),
        &[logits, labels, dloss, &stats, &grad],
        (n * k) as u64,
    )?;
    Ok(grad)
}

/// Number of rows whose argmax equals the label, as a 1-value `u32` buffer: one
/// workgroup per 256 rows counts its hits (tree in workgroup memory), then fixed-order
/// passes sum the counts.
pub fn correct_count_gpu(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    labels: &GpuBuffer,
    n: usize,
    k: usize,
) -> Result<GpuBuffer, GpuError> {
    let info = check_gpu_args("correct_count_gpu", logits, Some(labels), n, k)?;
    if n == 0 {
        return ctx.zeros(4);
    }
    let groups = n.div_ceil(WG_1D as usize);
    let mut counts = ctx.alloc(groups as u64 * 4)?;
    ctx.dispatch(
        &kernel("correct"),
        &[],
        bytemuck::bytes_of(&info),
        &[logits, labels, &counts],
        ctx.grid(groups as u64)?,
    )?;
    let mut len = groups;
    while len > 1 {
        let parts = len.div_ceil(COUNT_CHUNK);
        let out = ctx.alloc(parts as u64 * 4)?;
        let info = Info {
            n: len as u32,
            k: 0,
            slot: 0,
            _pad: 0,
        };
        ctx.dispatch(
            &kernel("count_sum"),
            &[],
            bytemuck::bytes_of(&info),
            &[&counts, &out],
            ctx.grid(parts as u64)?,
        )?;
        counts = out;
        len = parts;
    }
    Ok(counts)
}

/// Index of the first maximum of each row on the device: `n` `u32` values.
pub fn argmax_gpu(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    n: usize,
    k: usize,
) -> Result<GpuBuffer, GpuError> {
    let info = check_gpu_args("argmax_gpu", logits, None, n, k)?;
    let out = ctx.alloc(n as u64 * 4)?;
    launch_1d(
        ctx,
        &kernel("argmax"),
        bytemuck::bytes_of(&info),
        &[logits, &out],
        n as u64,
    )?;
    Ok(out)
}

/// Appends one batch's metrics to `records` (a `u32` array on the device) at `slot`:
/// `records[2·slot]` = the bits of the f32 mean loss in `loss` (a 1-value buffer, e.g.
/// from [`softmax_xent_gpu`]), `records[2·slot + 1]` = the count of rows whose argmax
/// equals the label. One dispatch, no readback; the caller reads the records once per
/// epoch (or every N steps) and sums them in slot order.
#[allow(clippy::too_many_arguments)]
pub fn metric_record_gpu(
    ctx: &GpuContext,
    loss: &GpuBuffer,
    logits: &GpuBuffer,
    labels: &GpuBuffer,
    n: usize,
    k: usize,
    records: &GpuBuffer,
    slot: usize,
) -> Result<(), GpuError> {
    let mut info = check_gpu_args("metric_record_gpu", logits, Some(labels), n, k)?;
    check_len("metric_record_gpu loss", loss, 1)?;
    if (records.bytes() as usize) < (slot + 1) * 8 {
        return Err(GpuError::Invalid(format!(
            "metric_record_gpu: slot {slot} is past the {}-byte record buffer",
            records.bytes()
        )));
    }
    info.slot = check_u32("metric_record_gpu slot", slot)?;
    ctx.dispatch(
        &kernel("metric_record"),
        &[],
        bytemuck::bytes_of(&info),
        &[logits, labels, loss, records],
        [1, 1, 1],
    )
}
