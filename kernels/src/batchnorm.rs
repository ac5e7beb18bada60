//! Batch normalisation over NCHW tensors, per channel over N·H·W: training forward
//! (batch statistics, biased variance), evaluation with running statistics, and the
//! backward of the training forward. WGSL: `wgsl/batchnorm.wgsl`.
//!
//! Statistics are two-pass (mean, then the mean of squared deviations), which stays
//! accurate for activations with large means. The cpu accumulates in f64, one channel
//! per task, in a fixed order; the WGSL uses one workgroup per channel with fixed-order
//! strided per-thread sums and a workgroup tree reduction.

use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::launch::{check_len, check_u32, launch_1d};
use crate::real::Real;
use crate::GpuError;
use rayon::prelude::*;

const SRC: &str = include_str!("../wgsl/batchnorm.wgsl");

/// Shape of a batch-norm input `[n, c, hw]` (hw = H·W; 1 for dense features `[n, c]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormShape {
    /// Batch size.
    pub n: usize,
    /// Channels (one mean/variance, gamma and beta each).
    pub c: usize,
    /// Spatial elements per channel and image.
    pub hw: usize,
}

impl BatchNormShape {
    /// Elements of the input.
    pub fn len(&self) -> usize {
        self.n * self.c * self.hw
    }

    /// Whether the input has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values each channel's statistics run over: n·hw.
    pub fn count(&self) -> usize {
        self.n * self.hw
    }

    fn check_cpu<T>(&self, what: &str, bufs: &[(&str, &[T], usize)]) {
        for (name, b, len) in bufs {
            assert_eq!(
                b.len(),
                *len,
                "{what}: {name} has {} values, {self:?} needs {len}",
                b.len()
            );
        }
    }
}

/// Per-channel sums in f64 over the channel's `hw` slices, image by image.
fn channel_sum(s: &BatchNormShape, ch: usize, f: impl Fn(usize) -> f64) -> f64 {
    let mut total = 0.0;
    for img in 0..s.n {
        let base = (img * s.c + ch) * s.hw;
        let mut part = 0.0;
        for i in base..base + s.hw {
            part += f(i);
        }
        total += part;
    }
    total
}

/// Applies `f(channel, x_index) → y` over `[n, c, hw]`, in parallel over hw-rows.
fn map_rows<T: Real>(s: &BatchNormShape, out: &mut [T], f: impl Fn(usize, usize) -> T + Sync) {
    if s.is_empty() {
        return;
    }
    out.par_chunks_mut(s.hw)
        .enumerate()
        .with_min_len((4096 / s.hw).max(1))
        .for_each(|(row, o)| {
            let ch = row % s.c;
            let base = row * s.hw;
            for (k, o) in o.iter_mut().enumerate() {
                *o = f(ch, base + k);
            }
        });
}

/// Training forward on the cpu: batch `mean`, `invstd = 1/sqrt(var + eps)` (biased
/// variance) and `y = gamma·(x − mean)·invstd + beta`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_cpu<T: Real>(
    s: &BatchNormShape,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    eps: f64,
    y: &mut [T],
    mean: &mut [T],
    invstd: &mut [T],
) {
    s.check_cpu(
        "batchnorm_train_cpu",
        &[
            ("x", x, s.len()),
            ("gamma", gamma, s.c),
            ("beta", beta, s.c),
            ("y", y, s.len()),
        ],
    );
    s.check_cpu(
        "batchnorm_train_cpu",
        &[("mean", mean, s.c), ("invstd", invstd, s.c)],
    );
    let count = s.count().max(1) as f64;
    let stats: Vec<(f64, f64)> = (0..s.c)
        .into_par_iter()
        .map(|ch| {
            let m = channel_sum(s, ch, |i| x[i].to_f64()) / count;
            let var = channel_sum(s, ch, |i| {
                let d = x[i].to_f64() - m;
                d * d
            }) / count;
            (m, 1.0 / (var + eps).sqrt())
        })
        .collect();
    for (ch, &(m, is)) in stats.iter().enumerate() {
        mean[ch] = T::from_f64(m);
        invstd[ch] = T::from_f64(is);
    }
    let (mean, invstd) = (&*mean, &*invstd);
    map_rows(s, y, |ch, i| {
        gamma[ch] * ((x[i] - mean[ch]) * invstd[ch]) + beta[ch]
    });
}

/// Evaluation forward on the cpu with running statistics:
/// `y = gamma·(x − running_mean)/sqrt(running_var + eps) + beta`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_eval_cpu<T: Real>(
    s: &BatchNormShape,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &[T],
    running_var: &[T],
    eps: f64,
    y: &mut [T],
) {
    s.check_cpu(
        "batchnorm_eval_cpu",
        &[
            ("x", x, s.len()),
            ("gamma", gamma, s.c),
            ("beta", beta, s.c),
            ("y", y, s.len()),
        ],
    );
    s.check_cpu(
        "batchnorm_eval_cpu",
        &[
            ("running_mean", running_mean, s.c),
            ("running_var", running_var, s.c),
        ],
    );
    let invstd: Vec<T> = running_var
        .iter()
        .map(|&v| T::from_f64(1.0 / (v.to_f64() + eps).sqrt()))
        .collect();
    map_rows(s, y, |ch, i| {
        gamma[ch] * ((x[i] - running_mean[ch]) * invstd[ch]) + beta[ch]
    });
}

/// Backward of [`batchnorm_train_cpu`] given its saved `mean` and `invstd`:
/// `dbeta = Σ dy`, `dgamma = Σ dy·x̂`, `dx = gamma·invstd·(dy − dbeta/m − x̂·dgamma/m)`
/// with `x̂ = (x − mean)·invstd` and m = n·hw.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward_cpu<T: Real>(
    s: &BatchNormShape,
    x: &[T],
    dy: &[T],
    gamma: &[T],
    mean: &[T],
    invstd: &[T],
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
) {
    s.check_cpu(
        "batchnorm_backward_cpu",
        &[("x", x, s.len()), ("dy", dy, s.len()), ("dx", dx, s.len())],
    );
    s.check_cpu(
        "batchnorm_backward_cpu",
        &[
            ("gamma", gamma, s.c),
            ("mean", mean, s.c),
            ("invstd", invstd, s.c),
            ("dgamma", dgamma, s.c),
            ("dbeta", dbeta, s.c),
        ],
    );
    let sums: Vec<(f64, f64)> = (0..s.c)
        .into_par_iter()
        .map(|ch| {
            let (m, is) = (mean[ch].to_f64(), invstd[ch].to_f64());
            let db = channel_sum(s, ch, |i| dy[i].to_f64());
            let dg = channel_sum(s, ch, |i| dy[i].to_f64() * (x[i].to_f64() - m) * is);
            (dg, db)
        })
        .collect();
    let count = s.count().max(1) as f64;
    // Per channel: dx = k·dy − k·dbeta/m − k·x̂·dgamma/m with k = gamma·invstd.
    let coef: Vec<(T, T, T)> = sums
        .iter()
        .enumerate()
        .map(|(ch, &(dg, db))| {
            dgamma[ch] = T::from_f64(dg);
            dbeta[ch] = T::from_f64(db);
            let k = gamma[ch].to_f64() * invstd[ch].to_f64();
            (
                T::from_f64(k),
                T::from_f64(db / count),
                T::from_f64(dg / count),
            )
        })
        .collect();
    map_rows(s, dx, |ch, i| {
        let (k, db_m, dg_m) = coef[ch];
        let xhat = (x[i] - mean[ch]) * invstd[ch];
        k * (dy[i] - db_m - xhat * dg_m)
    });
}

// ---------------------------------------------------------------------------------
// WGSL launchers

/// Uniform block of `batchnorm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    n: u32,
    c: u32,
    hw: u32,
    len: u32,
    eps: f32,
    _pad: [u32; 3],
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        module: "batchnorm",
        source: SRC,
        entry,
        trusted: true,
    }
}

fn info(s: &BatchNormShape, eps: f32) -> Result<Info, GpuError> {
    let len =
        s.n.checked_mul(s.c)
            .and_then(|v| v.checked_mul(s.hw))
            .ok_or_else(|| GpuError::Invalid(format!("batchnorm: {s:?} overflows")))?;
    let what = format!("batchnorm elements ({s:?})");
    Ok(Info {
        n: check_u32(&what, s.n)?,
        c: check_u32(&what, s.c)?,
        hw: check_u32(&what, s.hw)?,
        len: check_u32(&what, len)?,
        eps,
        _pad: [0; 3],
    })
}

/// One workgroup per channel.
fn per_channel(
    ctx: &GpuContext,
    entry: &'static str,
    info: &Info,
    bufs: &[&GpuBuffer],
) -> Result<(), GpuError> {
    let grid = ctx.grid(info.c as u64)?;
    ctx.dispatch(&kernel(entry), &[], bytemuck::bytes_of(info), bufs, grid)
}

/// Training forward on the device: returns `(y, mean, invstd)` (see
/// [`batchnorm_train_cpu`]).
pub fn batchnorm_train_gpu(
    ctx: &GpuContext,
    s: &BatchNormShape,
    x: &GpuBuffer,
    gamma: &GpuBuffer,
    beta: &GpuBuffer,
    eps: f32,
) -> Result<(GpuBuffer, GpuBuffer, GpuBuffer), GpuError> {
    let info = info(s, eps)?;
    check_len("batchnorm_train x", x, s.len())?;
    check_len("batchnorm_train gamma", gamma, s.c)?;
    check_len("batchnorm_train beta", beta, s.c)?;
    let mean = ctx.alloc(s.c as u64 * 4)?;
    let invstd = ctx.alloc(s.c as u64 * 4)?;
    per_channel(ctx, "bn_stats", &info, &[x, &mean, &invstd])?;
    let y = ctx.alloc(s.len() as u64 * 4)?;
    launch_1d(
        ctx,
        &kernel("bn_apply"),
        bytemuck::bytes_of(&info),
        &[x, gamma, beta, &mean, &invstd, &y],
        s.len() as u64,
    )?;
    Ok((y, mean, invstd))
}

/// Evaluation forward on the device with running statistics (see
/// [`batchnorm_eval_cpu`]).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_eval_gpu(
    ctx: &GpuContext,
    s: &BatchNormShape,
    x: &GpuBuffer,
    gamma: &GpuBuffer,
    beta: &GpuBuffer,
    running_mean: &GpuBuffer,
    running_var: &GpuBuffer,
    eps: f32,
) -> Result<GpuBuffer, GpuError> {
    let info = info(s, eps)?;
    check_len("batchnorm_eval x", x, s.len())?;
    check_len("batchnorm_eval gamma", gamma, s.c)?;
    check_len("batchnorm_eval beta", beta, s.c)?;
    check_len("batchnorm_eval running_mean", running_mean, s.c)?;
    check_len("batchnorm_eval running_var", running_var, s.c)?;
    let y = ctx.alloc(s.len() as u64 * 4)?;
    launch_1d(
        ctx,
        &kernel("bn_eval"),
        bytemuck::bytes_of(&info),
        &[x, gamma, beta, running_mean, running_var, &y],
        s.len() as u64,
    )?;
    Ok(y)
}

/// Backward of the training forward on the device: returns `(dx, dgamma, dbeta)`
/// (see [`batchnorm_backward_cpu`]).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward_gpu(
    ctx: &GpuContext,
    s: &BatchNormShape,
    x: &GpuBuffer,
    dy: &GpuBuffer,
    gamma: &GpuBuffer,
    mean: &GpuBuffer,
    invstd: &GpuBuffer,
) -> Result<(GpuBuffer, GpuBuffer, GpuBuffer), GpuError> {
    let info = info(s, 0.0)?;
    check_len("batchnorm_backward x", x, s.len())?;
    check_len("batchnorm_backward dy", dy, s.len())?;
    check_len("batchnorm_backward gamma", gamma, s.c)?;
    check_len("batchnorm_backward mean", mean, s.c)?;
    check_len("batchnorm_backward invstd", invstd, s.c)?;
    let dgamma = ctx.alloc(s.c as u64 * 4)?;
    let dbeta = ctx.alloc(s.c as u64 * 4)?;
    per_channel(
        ctx,
        "bn_backward_reduce",
        &info,
        &[x, dy, mean, invstd, &dgamma, &dbeta],
    )?;
    let dx = ctx.alloc(s.len() as u64 * 4)?;
    launch_1d(
        ctx,
        &kernel("bn_backward_dx"),
        bytemuck::bytes_of(&info),
        &[x, dy, gamma, mean, invstd, &dgamma, &dbeta, &dx],
        s.len() as u64,
    )?;
    Ok((dx, dgamma, dbeta))
}
