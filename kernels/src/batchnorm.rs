//! Batch normalisation over NCHW tensors, per channel over N·H·W: training forward
//! (batch statistics, biased variance), evaluation with running statistics, and the
//! backward of the training forward. WGSL: `wgsl/batchnorm.wgsl`.
//!
//! Statistics are two-pass (mean, then the mean of squared deviations), which stays
//! accurate for activations with large means. The cpu accumulates in f64, one channel
//! per task, in a fixed order ([`channel_sums`]); the WGSL uses one workgroup per
//! channel with fixed-order strided per-thread sums and a workgroup tree reduction.

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

/// Partial sums per hw slice: element k of a slice goes to lane k mod `LANES`, in
/// order, and the lanes meet in a fixed tree. Independent chains let the f64 adds
/// overlap: one serial chain held a ResNet-8 step's batch norms at about 2 ns an
/// element (10.4 of its 46 ms on the 2-core AVX-512 EPYC). The order depends on the
/// shape alone, never on the machine or the threads.
const LANES: usize = 8;

/// The lanes' fixed tree: ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
#[inline(always)]
fn tree(l: &[f64; LANES]) -> f64 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// `S` sums in f64 over channel `ch` of `f(a[i], b[i])` (each a `[f64; S]`): per image,
/// the channel's hw slice in `LANES` lanes, then the images' partial sums in image
/// order. Each of the `S` sums has that order whatever the others are, so sums taken
/// together equal sums taken one by one, bit for bit.
#[inline(always)]
fn channel_sums<T: Real, const S: usize>(
    s: &BatchNormShape,
    ch: usize,
    (a, b): (&[T], &[T]),
    f: impl Fn(T, T) -> [f64; S],
) -> [f64; S] {
    let mut total = [0f64; S];
    for img in 0..s.n {
        let row = (img * s.c + ch) * s.hw..(img * s.c + ch + 1) * s.hw;
        let (ra, rb) = (&a[row.clone()], &b[row]);
        let mut lanes = [[0f64; LANES]; S];
        let (mut ca, mut cb) = (ra.chunks_exact(LANES), rb.chunks_exact(LANES));
        for (xa, xb) in (&mut ca).zip(&mut cb) {
            for j in 0..LANES {
                let v = f(xa[j], xb[j]);
                for t in 0..S {
                    lanes[t][j] += v[t];
                }
            }
        }
        for (j, (&xa, &xb)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
            let v = f(xa, xb);
            for t in 0..S {
                lanes[t][j] += v[t];
            }
        }
        for t in 0..S {
            total[t] += tree(&lanes[t]);
        }
    }
    total
}

/// Runs `f(channel, row, out_row)` over the hw-rows of `[n, c, hw]` in parallel, where
/// `row` is the row's range in the input.
fn map_rows<T: Real>(
    s: &BatchNormShape,
    out: &mut [T],
    f: impl Fn(usize, std::ops::Range<usize>, &mut [T]) + Sync,
) {
    if s.is_empty() {
        return;
    }
    out.par_chunks_mut(s.hw)
        .enumerate()
        .with_min_len((4096 / s.hw).max(1))
        .for_each(|(row, o)| f(row % s.c, row * s.hw..(row + 1) * s.hw, o));
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
            let [sum] = channel_sums(s, ch, (x, x), |v, _| [v.to_f64()]);
            let m = sum / count;
            let [sq] = channel_sums(s, ch, (x, x), |v, _| {
                let d = v.to_f64() - m;
                [d * d]
            });
            let var = sq / count;
            (m, 1.0 / (var + eps).sqrt())
        })
        .collect();
    for (ch, &(m, is)) in stats.iter().enumerate() {
        mean[ch] = T::from_f64(m);
        invstd[ch] = T::from_f64(is);
    }
    let (mean, invstd) = (&*mean, &*invstd);
    map_rows(s, y, |ch, row, y| {
        let (g, m, is, b) = (gamma[ch], mean[ch], invstd[ch], beta[ch]);
        for (y, &x) in y.iter_mut().zip(&x[row]) {
            *y = g * ((x - m) * is) + b;
        }
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
    map_rows(s, y, |ch, row, y| {
        let (g, m, is, b) = (gamma[ch], running_mean[ch], invstd[ch], beta[ch]);
        for (y, &x) in y.iter_mut().zip(&x[row]) {
            *y = g * ((x - m) * is) + b;
        }
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
            let [db, dg] = channel_sums(s, ch, (dy, x), |d, x| {
                let d = d.to_f64();
                [d, d * (x.to_f64() - m) * is]
            });
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
    map_rows(s, dx, |ch, row, dx| {
        let (k, db_m, dg_m) = coef[ch];
        let (m, is) = (mean[ch], invstd[ch]);
        for ((dx, &x), &dy) in dx.iter_mut().zip(&x[row.clone()]).zip(&dy[row.clone()]) {
            let xhat = (x - m) * is;
            *dx = k * (dy - db_m - xhat * dg_m);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented order, written out plainly: lane k mod 8 of each image's slice,
    /// the lanes' tree, the images in order. Pins the order (the bits of every ResNet
    /// run) and catches a remainder put in the wrong lane or images summed out of order.
    #[test]
    fn channel_sums_take_the_documented_order() {
        let s = BatchNormShape { n: 3, c: 2, hw: 21 };
        // ±2^60 swallow the small values added to them and then cancel: which small
        // values survive depends on the order.
        let x: Vec<f32> = (0..s.len())
            .map(|i| match i % s.hw {
                0 => 2f32.powi(60),
                2 => -(2f32.powi(60)),
                k => 1.0 + (k % 3) as f32 * 0.25,
            })
            .collect();
        for ch in 0..s.c {
            let mut want = 0f64;
            for img in 0..s.n {
                let mut l = [0f64; 8];
                for k in 0..s.hw {
                    l[k % 8] += x[(img * s.c + ch) * s.hw + k] as f64;
                }
                want += ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
            }
            let [got, sq] = channel_sums(&s, ch, (&x, &x), |a, _| {
                let a = a as f64;
                [a, a * a]
            });
            assert_eq!(got.to_bits(), want.to_bits(), "channel {ch}");
            // A second sum taken beside the first has its own order, the same.
            let [alone] = channel_sums(&s, ch, (&x, &x), |a, _| [(a as f64) * (a as f64)]);
            assert_eq!(sq.to_bits(), alone.to_bits(), "channel {ch}");
            // And the order is not the plain one (else this test pins nothing).
            let plain: f64 = (0..s.n)
                .map(|img| {
                    (0..s.hw)
                        .map(|k| x[(img * s.c + ch) * s.hw + k] as f64)
                        .sum::<f64>()
                })
                .sum();
            assert_ne!(got.to_bits(), plain.to_bits(), "channel {ch}");
        }
    }
}
