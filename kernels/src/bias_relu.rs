//! Fused bias + ReLU: y = max(x + b, 0) with `b` broadcast along axis 1 (a bias per
//! column of `[N, F]`, or per channel of NCHW), and its backward in one pass over the
//! gradient: dx = dy·[y > 0] together with the bias gradient db = Σ dx over every axis
//! but axis 1. WGSL: `wgsl/bias_relu.wgsl`.
//!
//! Bitwise contract, on each backend: the forward is the same f32 operations as
//! `bias_add` then `relu`; dx is `relu_backward`'s (y > 0 exactly where x + b > 0), and
//! db is summed in the same fixed order as `reduce::sum_rows_*` (dense, `inner` = 1) or
//! `reduce::sum_channels_*` (NCHW). A model using this op computes bitwise the values of
//! one using the three separate ops, with 1 dispatch forward and 1 backward (plus the
//! block sums' pass when the bias gradient spans several blocks) instead of 2 and 2–3.
//!
//! `bias_relu_maxpool2x2` adds a 2×2 max pool to the same pass (the CNN's conv → bias →
//! ReLU → pool): bitwise `pool::maxpool2x2_*` over the bias + ReLU output, and its
//! backward is bitwise `maxpool2x2_backward` then the bias + ReLU backward.

use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::launch::{check_len, check_u32, launch_1d, WG_1D};
use crate::real::{Real, CPU_CHUNK};
use crate::reduce::{channel_block, chunk_sum, sum_in_order, sum_rows_passes, ROW_BLOCK};
use crate::GpuError;
use rayon::prelude::*;

const SRC: &str = include_str!("../wgsl/bias_relu.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    n: u32,
    inner: u32,
    channels: u32,
    block: u32,
    /// The pooled kernels: input height and width, and the elements they cover
    /// (pooled outputs forward, dx elements backward).
    h: u32,
    w: u32,
    len: u32,
    _pad: u32,
}

impl Info {
    fn new(n: u32, inner: u32, channels: u32) -> Info {
        Info {
            n,
            inner,
            channels,
            block: 0,
            h: 0,
            w: 0,
            len: 0,
            _pad: 0,
        }
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        module: "bias_relu",
        source: SRC,
        entry,
        trusted: true,
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
    crate::elementwise::bias_map_cpu(x, bias, inner, y, |x, b| relu(x + b));
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
    let info = Info::new(
        check_u32("bias_relu", n)?,
        check_u32("bias_relu", inner.max(1))?,
        check_u32("bias_relu", channels.max(1))?,
    );
    launch_1d(
        ctx,
        &kernel("bias_relu"),
        bytemuck::bytes_of(&info),
        &[x, bias, &y],
        n as u64,
    )?;
    Ok(y)
}

/// The backward of [`bias_relu_gpu`]: returns (dx, db) for output `y` and upstream
/// gradient `dy` of shape `[n, c, inner]`, bitwise the unfused `relu_backward` then
/// `sum_rows` / `sum_channels`.
///
/// One dispatch writes dx and the first pass of db's sum, spread like the unfused sum:
/// dense (`inner` = 1), a thread per (block of 64 rows, column); NCHW, a workgroup per
/// (channel, block of images) (`reduce::channel_block`). When there is more than one
/// block, `sum_rows`' passes add the block sums in block order.
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
    let dense = inner == 1;
    let block = if dense {
        ROW_BLOCK
    } else {
        channel_block(n, inner)
    };
    let blocks = n.div_ceil(block);
    let part = ctx.alloc((blocks * c) as u64 * 4)?;
    let info = Info {
        block: block as u32,
        ..Info::new(
            check_u32("bias_relu_backward", n)?,
            check_u32("bias_relu_backward", inner)?,
            check_u32("bias_relu_backward", c)?,
        )
    };
    let (entry, groups) = if dense {
        (
            "bias_relu_backward_rows",
            ((blocks * c) as u64).div_ceil(WG_1D),
        )
    } else {
        ("bias_relu_backward_channels", (blocks * c) as u64)
    };
    ctx.dispatch(
        &kernel(entry),
        &[],
        bytemuck::bytes_of(&info),
        &[y, dy, &dx, &part],
        ctx.grid(groups)?,
    )?;
    let db = if blocks == 1 {
        part
    } else {
        sum_rows_passes(ctx, &part, blocks, c)?
    };
    Ok((dx, db))
}

/// Bias + ReLU + 2×2 max pool (stride 2, floor) on the cpu: `y [n, c, h/2, w/2]` and the
/// flat index into the `[n, c, h, w]` input of each pooled value, exactly as
/// `pool::maxpool2x2_cpu` over [`bias_relu_cpu`]'s output (same values, same strict-`>`
/// ties to the first in row-major window order), without writing that output.
#[allow(clippy::too_many_arguments)]
pub fn bias_relu_maxpool2x2_cpu<T: Real>(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    x: &[T],
    bias: &[T],
    y: &mut [T],
    argmax: &mut [u32],
) {
    let shape = format!("bias_relu_maxpool2x2_cpu n={n} c={c} h={h} w={w}");
    assert_eq!(bias.len(), c, "{shape}: bias length");
    let (oh, ow) = (h / 2, w / 2);
    crate::pool::check_pool_lens(&shape, (n, c, h, w), x.len(), y.len(), argmax.len());
    if y.is_empty() {
        return;
    }
    y.par_chunks_mut(oh * ow)
        .zip(argmax.par_chunks_mut(oh * ow))
        .enumerate()
        .for_each(|(plane, (y, am))| {
            let base = plane * h * w;
            let xp = &x[base..base + h * w];
            let b = bias[plane % c];
            for oy in 0..oh {
                let (r0, r1) = (2 * oy * w, (2 * oy + 1) * w);
                let mut ox = 0;
                // Blocks of POOL_LANES outputs from fixed-size arrays (vector code for
                // the CNN's short rows). A block may read past its row and write past
                // its output row while both stay inside the plane: rows are done in
                // order, so the next row overwrites what this one wrote there.
                while ox < ow
                    && r1 + 2 * (ox + POOL_LANES) <= xp.len()
                    && oy * ow + ox + POOL_LANES <= y.len()
                {
                    let o = oy * ow + ox;
                    pool_block(
                        xp[r0 + 2 * ox..][..2 * POOL_LANES].try_into().unwrap(),
                        xp[r1 + 2 * ox..][..2 * POOL_LANES].try_into().unwrap(),
                        b,
                        w as u32,
                        (base + r0 + 2 * ox) as u32,
                        (&mut y[o..o + POOL_LANES]).try_into().unwrap(),
                        (&mut am[o..o + POOL_LANES]).try_into().unwrap(),
                    );
                    ox += POOL_LANES;
                }
                for ox in ox..ow {
                    let (v, k) = pool_window(
                        [xp[r0 + 2 * ox], xp[r0 + 2 * ox + 1]],
                        [xp[r1 + 2 * ox], xp[r1 + 2 * ox + 1]],
                        b,
                        w as u32,
                    );
                    y[oy * ow + ox] = v;
                    am[oy * ow + ox] = (base + r0 + 2 * ox) as u32 + k;
                }
            }
        });
}

/// Outputs per block of [`bias_relu_maxpool2x2_cpu`]'s fixed-size path.
const POOL_LANES: usize = 16;

/// One 2×2 window after bias + ReLU: the maximum and its offset from the window's
/// top-left input (0, 1, w, w + 1). Ties go to the first in row-major window order,
/// as `pool::maxpool2x2_cpu`'s sequential strict `>` does: each row's maximum first
/// (ties to the left), then the bottom row's only if strictly larger. The two orders
/// agree because ReLU's output is never NaN.
#[inline(always)]
fn pool_window<T: Real>(top: [T; 2], bottom: [T; 2], b: T, w: u32) -> (T, u32) {
    let (p, q) = (relu(top[0] + b), relu(top[1] + b));
    let (r, s) = (relu(bottom[0] + b), relu(bottom[1] + b));
    let (m0, k0) = if q > p { (q, 1) } else { (p, 0) };
    let (m1, k1) = if s > r { (s, w + 1) } else { (r, w) };
    if m1 > m0 {
        (m1, k1)
    } else {
        (m0, k0)
    }
}

/// [`POOL_LANES`] consecutive windows of one row pair (`i0`: the flat index of the
/// first window's top-left input).
#[inline(always)]
fn pool_block<T: Real>(
    top: &[T; 2 * POOL_LANES],
    bottom: &[T; 2 * POOL_LANES],
    b: T,
    w: u32,
    i0: u32,
    y: &mut [T; POOL_LANES],
    am: &mut [u32; POOL_LANES],
) {
    for l in 0..POOL_LANES {
        let (v, k) = pool_window(
            [top[2 * l], top[2 * l + 1]],
            [bottom[2 * l], bottom[2 * l + 1]],
            b,
            w,
        );
        y[l] = v;
        am[l] = i0 + 2 * l as u32 + k;
    }
}

/// The backward of [`bias_relu_maxpool2x2_cpu`] from its pooled output `y`, `argmax` and
/// upstream gradient `dy`: dx (`[n, c, h, w]`) is dy at each window's argmax where the
/// pooled value is positive, 0 elsewhere, and db its per-channel sum in
/// `sum_channels_cpu`'s order: bitwise `maxpool2x2_backward_cpu` then
/// [`bias_relu_backward_cpu`].
#[allow(clippy::too_many_arguments)]
pub fn bias_relu_maxpool2x2_backward_cpu<T: Real>(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    y: &[T],
    dy: &[T],
    argmax: &[u32],
    dx: &mut [T],
    db: &mut [T],
) {
    let (oh, ow) = (h / 2, w / 2);
    let shape = format!("bias_relu_maxpool2x2_backward_cpu n={n} c={c} h={h} w={w}");
    assert_eq!(dx.len(), n * c * h * w, "{shape}: dx length");
    assert_eq!(db.len(), c, "{shape}: db length");
    assert_eq!(y.len(), n * c * oh * ow, "{shape}: y length");
    assert_eq!(dy.len(), y.len(), "{shape}: dy length");
    assert_eq!(argmax.len(), y.len(), "{shape}: argmax length");
    db.fill(T::ZERO);
    if y.is_empty() {
        // No window (or no plane): nothing flows back.
        dx.fill(T::ZERO);
        return;
    }
    let (inner, pooled) = (h * w, oh * ow);
    let planes: Vec<T> = dx
        .par_chunks_mut(inner)
        .zip(
            y.par_chunks(pooled)
                .zip(dy.par_chunks(pooled).zip(argmax.par_chunks(pooled))),
        )
        .enumerate()
        .with_min_len((CPU_CHUNK / inner).max(1))
        .map(|(plane, (dx, (y, (dy, am))))| {
            dx.fill(T::ZERO);
            let base = plane * inner;
            for ((&y, &g), &a) in y.iter().zip(dy).zip(am) {
                let i = (a as usize)
                    .checked_sub(base)
                    .filter(|&i| i < inner)
                    .unwrap_or_else(|| panic!("{shape}: argmax {a} outside plane {plane}"));
                dx[i] = relu_grad(g, y);
            }
            chunk_sum(dx, |v| v)
        })
        .collect();
    for (ch, o) in db.iter_mut().enumerate() {
        *o = sum_in_order((0..n).map(|img| planes[img * c + ch]));
    }
}

/// Bias + ReLU + 2×2 max pool on the device (see [`bias_relu_maxpool2x2_cpu`]): returns
/// `(y, argmax)`.
#[allow(clippy::too_many_arguments)]
pub fn bias_relu_maxpool2x2_gpu(
    ctx: &GpuContext,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    x: &GpuBuffer,
    bias: &GpuBuffer,
) -> Result<(GpuBuffer, GpuBuffer), GpuError> {
    let len_x = check_u32("bias_relu_maxpool2x2 x", n * c * h * w)?;
    check_len("bias_relu_maxpool2x2 x", x, len_x as usize)?;
    check_len("bias_relu_maxpool2x2 bias", bias, c)?;
    let len = n * c * (h / 2) * (w / 2);
    let y = ctx.alloc(len as u64 * 4)?;
    let argmax = ctx.alloc(len as u64 * 4)?;
    let info = Info {
        h: h as u32,
        w: w as u32,
        len: len as u32,
        ..Info::new(n as u32, (h * w) as u32, c.max(1) as u32)
    };
    launch_1d(
        ctx,
        &kernel("bias_relu_maxpool"),
        bytemuck::bytes_of(&info),
        &[x, bias, &y, &argmax],
        len as u64,
    )?;
    Ok((y, argmax))
}

/// The backward of [`bias_relu_maxpool2x2_gpu`]: (dx `[n, c, h, w]`, db `[c]`), spread
/// over (channel, image block) workgroups as in [`bias_relu_backward_gpu`], each dx
/// element gathering from its window (windows do not overlap); bitwise
/// `maxpool2x2_backward_gpu` then [`bias_relu_backward_gpu`].
#[allow(clippy::too_many_arguments)]
pub fn bias_relu_maxpool2x2_backward_gpu(
    ctx: &GpuContext,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    y: &GpuBuffer,
    dy: &GpuBuffer,
    argmax: &GpuBuffer,
) -> Result<(GpuBuffer, GpuBuffer), GpuError> {
    let len = n * c * h * w;
    check_u32("bias_relu_maxpool2x2_backward", len)?;
    let pooled = n * c * (h / 2) * (w / 2);
    check_len("bias_relu_maxpool2x2_backward y", y, pooled)?;
    check_len("bias_relu_maxpool2x2_backward dy", dy, pooled)?;
    check_len("bias_relu_maxpool2x2_backward argmax", argmax, pooled)?;
    let dx = ctx.alloc(len as u64 * 4)?;
    if len == 0 {
        return Ok((dx, ctx.zeros(c as u64 * 4)?));
    }
    let inner = h * w;
    let block = channel_block(n, inner);
    let blocks = n.div_ceil(block);
    let part = ctx.alloc((blocks * c) as u64 * 4)?;
    let info = Info {
        block: block as u32,
        h: h as u32,
        w: w as u32,
        len: len as u32,
        ..Info::new(n as u32, inner as u32, c as u32)
    };
    ctx.dispatch(
        &kernel("bias_relu_maxpool_backward"),
        &[],
        bytemuck::bytes_of(&info),
        &[y, dy, argmax, &dx, &part],
        ctx.grid((blocks * c) as u64)?,
    )?;
    let db = if blocks == 1 {
        part
    } else {
        sum_rows_passes(ctx, &part, blocks, c)?
    };
    Ok((dx, db))
}
