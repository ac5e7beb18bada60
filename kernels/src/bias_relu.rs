//! Fused bias + ReLU: y = max(x + b, 0) with `b` broadcast along axis 1 (a bias per
//! column of `[N, F]`, or per channel of NCHW), and its backward in one pass over the
//! gradient: dx = dy·[y > 0] together with the bias gradient db = Σ dx over every axis
//! but axis 1. WGSL: `wgsl/bias_relu.wgsl`.
//!
//! Bitwise contract, on each backend: the forward is the same f32 operations as
//! `bias_add` then `relu`; dx is `relu_backward`'s (y > 0 exactly where x + b > 0), and
//! db is summed in the same fixed order as `reduce::sum_rows_*` (dense, `inner` = 1) or
//! `reduce::sum_channels_*` (NCHW). A model using this op computes bitwise the values of
//! one using the three separate ops, with 1 dispatch forward and 1 backward instead of
//! 2 and 2–3.

use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::launch::{check_len, check_u32, launch_1d};
use crate::real::{Real, CPU_CHUNK};
use crate::reduce::{chunk_sum, sum_in_order, CHANNEL_WORK, ROW_BLOCK};
use crate::GpuError;
use rayon::prelude::*;

const SRC: &str = include_str!("../wgsl/bias_relu.wgsl");

/// Levels of `sum_rows` passes the backward kernel reproduces in-kernel (`LEVELS` in
/// the WGSL): up to 64⁴ rows or image blocks.
const MAX_LEVELS: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    n: u32,
    inner: u32,
    channels: u32,
    block: u32,
    levels: u32,
    _pad: [u32; 3],
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        module: "bias_relu",
        source: SRC,
        entry,
    }
}

#[inline]
fn relu<T: Real>(z: T) -> T {
    // As `unary_cpu`'s ReLU: NaN and -0 map to 0.
    if z > T::ZERO {
        z
    } else {
        T::ZERO
    }
}

#[inline]
fn relu_grad<T: Real>(dy: T, y: T) -> T {
    if y > T::ZERO {
        dy
    } else {
        T::ZERO
    }
}

/// y[i] = max(x[i] + bias[(i / inner) % bias.len()], 0) on the cpu (`inner` = 1 for
/// `[N, F]`, H·W for NCHW).
pub fn bias_relu_cpu<T: Real>(x: &[T], bias: &[T], inner: usize, y: &mut [T]) {
    let channels = bias.len().max(1);
    if inner == 1 {
        let rows = (CPU_CHUNK / channels).max(1) * channels;
        y.par_chunks_mut(rows)
            .zip(x.par_chunks(rows))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_mut(channels).zip(x.chunks(channels)) {
                    for ((y, &x), &b) in y.iter_mut().zip(x).zip(bias) {
                        *y = relu(x + b);
                    }
                }
            });
        return;
    }
    y.par_chunks_mut(inner)
        .zip(x.par_chunks(inner))
        .enumerate()
        .with_min_len((CPU_CHUNK / inner).max(1))
        .for_each(|(plane, (y, x))| {
            let b = bias[plane % channels];
            for (y, &x) in y.iter_mut().zip(x) {
                *y = relu(x + b);
            }
        });
}

/// The backward of [`bias_relu_cpu`] from its output `y` and upstream gradient `dy`
/// (`[n, c, inner]`): dx = dy·[y > 0] and db[c] = Σ dx over images and positions, in
/// one pass over dy. db's order is `sum_rows_cpu`'s (inner = 1: blocks of rows summed
/// row by row, block sums in order) or `sum_channels_cpu`'s (per plane a lane sum, planes
/// in image order), so it is bitwise the unfused op's.
#[allow(clippy::too_many_arguments)]
pub fn bias_relu_backward_cpu<T: Real>(
    y: &[T],
    dy: &[T],
    n: usize,
    c: usize,
    inner: usize,
    dx: &mut [T],
    db: &mut [T],
) {
    let len = n * c * inner;
    assert!(
        y.len() >= len && dy.len() >= len && dx.len() >= len && db.len() >= c,
        "bias_relu_backward_cpu [{n}, {c}, {inner}]: slices too short"
    );
    let (y, dy, dx, db) = (&y[..len], &dy[..len], &mut dx[..len], &mut db[..c]);
    db.fill(T::ZERO);
    if len == 0 {
        return;
    }
    if inner == 1 {
        // As sum_rows_cpu: blocks of rows in parallel, each summed row by row.
        let block = (CPU_CHUNK / c).max(1) * c;
        let partials: Vec<Vec<T>> = dx
            .par_chunks_mut(block)
            .zip(y.par_chunks(block).zip(dy.par_chunks(block)))
            .map(|(dx, (y, dy))| {
                let mut acc = vec![T::ZERO; c];
                for (dx, (y, dy)) in dx.chunks_mut(c).zip(y.chunks(c).zip(dy.chunks(c))) {
                    for (((a, dx), &y), &dy) in acc.iter_mut().zip(dx).zip(y).zip(dy) {
                        *dx = relu_grad(dy, y);
                        *a += *dx;
                    }
                }
                acc
            })
            .collect();
        for p in partials {
            for (o, v) in db.iter_mut().zip(p) {
                *o += v;
            }
        }
        return;
    }
    // As sum_channels_cpu: a lane sum per (image, channel) plane, then per channel the
    // planes in image order.
    let planes: Vec<T> = dx
        .par_chunks_mut(inner)
        .zip(y.par_chunks(inner).zip(dy.par_chunks(inner)))
        .with_min_len((CPU_CHUNK / inner).max(1))
        .map(|(dx, (y, dy))| {
            for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                *dx = relu_grad(dy, y);
            }
            chunk_sum(dx, |v| v)
        })
        .collect();
    for (ch, o) in db.iter_mut().enumerate() {
        *o = sum_in_order((0..n).map(|img| planes[img * c + ch]));
    }
}

/// Bias + ReLU on the device (see [`bias_relu_cpu`]), `n` elements.
pub fn bias_relu_gpu(
    ctx: &GpuContext,
    x: &GpuBuffer,
    bias: &GpuBuffer,
    n: usize,
    inner: usize,
    channels: usize,
) -> Result<GpuBuffer, GpuError> {
    check_len("bias_relu x", x, n)?;
    check_len("bias_relu bias", bias, channels)?;
    let y = ctx.alloc(n as u64 * 4)?;
    let info = Info {
        n: check_u32("bias_relu", n)?,
        inner: check_u32("bias_relu", inner.max(1))?,
        channels: check_u32("bias_relu", channels.max(1))?,
        block: 0,
        levels: 0,
        _pad: [0; 3],
    };
    launch_1d(
        ctx,
        &kernel("bias_relu"),
        bytemuck::bytes_of(&info),
        &[x, bias, &y],
        n as u64,
    )?;
    Ok(y)
}

/// Passes `sum_rows` makes over `rows` rows (blocks of [`ROW_BLOCK`] until one is left).
fn row_passes(rows: usize) -> u32 {
    let (mut m, mut passes) = (rows, 0);
    loop {
        m = m.div_ceil(ROW_BLOCK);
        passes += 1;
        if m <= 1 {
            return passes;
        }
    }
}

/// The backward of [`bias_relu_gpu`] in one dispatch: returns (dx, db) for output `y`
/// and upstream gradient `dy` of shape `[n, c, inner]`.
///
/// - `inner` = 1 (dense): a thread per column walks the rows in order, writing dx and
///   summing it as `sum_rows`'s passes do (blocks of 64 rows, then blocks of 64 block
///   sums, ...).
/// - NCHW: a workgroup per channel walks the image blocks of `sum_channels` (images
///   grouped to about 4096 values), each reduced by per-thread strided sums and the same
///   tree, and adds the block sums as `sum_rows`'s passes would.
///
/// Both give bitwise the unfused `relu_backward` then `sum_rows`/`sum_channels`. The
/// price of one dispatch is parallelism: c workgroups (NCHW) or c threads (dense).
pub fn bias_relu_backward_gpu(
    ctx: &GpuContext,
    y: &GpuBuffer,
    dy: &GpuBuffer,
    n: usize,
    c: usize,
    inner: usize,
) -> Result<(GpuBuffer, GpuBuffer), GpuError> {
    let len = n * c * inner;
    check_len("bias_relu_backward y", y, len)?;
    check_len("bias_relu_backward dy", dy, len)?;
    check_u32("bias_relu_backward", len)?;
    let dx = ctx.alloc(len as u64 * 4)?;
    if len == 0 {
        return Ok((dx, ctx.zeros(c as u64 * 4)?));
    }
    let db = ctx.alloc(c as u64 * 4)?;
    let (block, levels) = if inner == 1 {
        (0, row_passes(n))
    } else {
        // sum_channels' image blocks: fixed by the shape.
        let block = (CHANNEL_WORK / inner).clamp(1, n);
        let blocks = n.div_ceil(block);
        (block, if blocks == 1 { 0 } else { row_passes(blocks) })
    };
    if levels > MAX_LEVELS {
        return Err(GpuError::Invalid(format!(
            "bias_relu_backward [{n}, {c}, {inner}]: more than 64^{MAX_LEVELS} rows to sum"
        )));
    }
    let info = Info {
        n: check_u32("bias_relu_backward", n)?,
        inner: check_u32("bias_relu_backward", inner)?,
        channels: check_u32("bias_relu_backward", c)?,
        block: block as u32,
        levels,
        _pad: [0; 3],
    };
    let (entry, groups) = if inner == 1 {
        (
            "bias_relu_backward_rows",
            (c as u64).div_ceil(crate::launch::WG_1D),
        )
    } else {
        ("bias_relu_backward_channels", c as u64)
    };
    let grid = ctx.grid(groups)?;
    ctx.dispatch(
        &kernel(entry),
        &[],
        bytemuck::bytes_of(&info),
        &[y, dy, &dx, &db],
        grid,
    )?;
    Ok((dx, db))
}

#[cfg(test)]
mod tests {
    use super::row_passes;

    #[test]
    fn row_passes_match_sum_rows() {
        // sum_rows: one pass up to 64 rows, two up to 64², three up to 64³.
        assert_eq!(row_passes(1), 1);
        assert_eq!(row_passes(64), 1);
        assert_eq!(row_passes(65), 2);
        assert_eq!(row_passes(4096), 2);
        assert_eq!(row_passes(4097), 3);
    }
}
