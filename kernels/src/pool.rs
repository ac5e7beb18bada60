//! Pooling over NCHW tensors: 2×2 max pooling with stride 2 (with the argmax its
//! backward routes gradients through) and global average pooling. WGSL:
//! `wgsl/pool.wgsl`.

use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::launch::{check_len, check_u32, launch_1d};
use crate::real::Real;
use crate::GpuError;
use rayon::prelude::*;

const SRC: &str = include_str!("../wgsl/pool.wgsl");

/// Uniform block of `pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    /// Planes (n·c) for max pooling, rows (n·c) for average pooling.
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    /// Elements the 1-D kernels cover.
    len: u32,
    /// Elements per row of the average pool.
    hw: u32,
    _pad: u32,
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        module: "pool",
        source: SRC,
        entry,
        trusted: true,
    }
}

/// 2×2 max pool, stride 2, floor (an odd trailing row/column is dropped):
/// `y [n, c, h/2, w/2]`. Ties go to the first maximum in row-major window order;
/// `argmax` holds the flat index into `x` of each chosen element.
pub fn maxpool2x2_cpu<T: Real>(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    x: &[T],
    y: &mut [T],
    argmax: &mut [u32],
) {
    let shape = format!("maxpool2x2_cpu n={n} c={c} h={h} w={w}");
    maxpool2x2_map_cpu(&shape, n, c, h, w, x, y, argmax, |_, v| v);
}

/// Panics (naming `shape`, the caller) unless x, the pooled y and argmax have the
/// lengths of `[n, c, h, w]` pooled 2×2, and argmax's flat indices fit in u32.
pub(crate) fn check_pool_lens(
    shape: &str,
    (n, c, h, w): (usize, usize, usize, usize),
    x: usize,
    y: usize,
    argmax: usize,
) {
    assert_eq!(x, n * c * h * w, "{shape}: x length");
    assert_eq!(y, n * c * (h / 2) * (w / 2), "{shape}: y length");
    assert_eq!(argmax, y, "{shape}: argmax length");
    assert!(
        u32::try_from(x).is_ok(),
        "{shape}: x too large for u32 argmax"
    );
}

/// [`maxpool2x2_cpu`] over `map(plane, x)` instead of `x`, without writing the mapped
/// input: the traversal the fused bias + ReLU + pool shares (`shape` names the caller
/// in panics).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn maxpool2x2_map_cpu<T: Real>(
    shape: &str,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    x: &[T],
    y: &mut [T],
    argmax: &mut [u32],
    map: impl Fn(usize, T) -> T + Sync,
) {
    let (oh, ow) = (h / 2, w / 2);
    check_pool_lens(shape, (n, c, h, w), x.len(), y.len(), argmax.len());
    if y.is_empty() {
        return;
    }
    y.par_chunks_mut(oh * ow)
        .zip(argmax.par_chunks_mut(oh * ow))
        .enumerate()
        .for_each(|(plane, (y, am))| {
            let base = plane * h * w;
            let xp = &x[base..base + h * w];
            let f = |v: T| map(plane, v);
            for ((oy, y), am) in y
                .chunks_exact_mut(ow)
                .enumerate()
                .zip(am.chunks_exact_mut(ow))
            {
                let r0 = &xp[2 * oy * w..][..2 * ow];
                let r1 = &xp[(2 * oy + 1) * w..][..2 * ow];
                let i0 = (base + 2 * oy * w) as u32;
                let wu = w as u32;
                // Strict > keeps the first maximum in row-major window order. Written
                // as selects over row slices (no bounds checks, no branches to
                // mispredict on random data).
                for (ox, (y, am)) in y.iter_mut().zip(am.iter_mut()).enumerate() {
                    let (a, b) = (f(r0[2 * ox]), f(r0[2 * ox + 1]));
                    let (c, d) = (f(r1[2 * ox]), f(r1[2 * ox + 1]));
                    let i = i0 + 2 * ox as u32;
                    let (mut v, mut k) = (a, i);
                    (v, k) = if b > v { (b, i + 1) } else { (v, k) };
                    (v, k) = if c > v { (c, i + wu) } else { (v, k) };
                    (v, k) = if d > v { (d, i + wu + 1) } else { (v, k) };
                    *y = v;
                    *am = k;
                }
            }
        });
}

/// Backward of [`maxpool2x2_cpu`]: `dx` is zero except `dx[argmax[o]] = dy[o]`.
/// Panics if an argmax does not point into its own window's plane.
pub fn maxpool2x2_backward_cpu<T: Real>(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    dy: &[T],
    argmax: &[u32],
    dx: &mut [T],
) {
    let (oh, ow) = (h / 2, w / 2);
    let shape = format!("maxpool2x2_backward_cpu n={n} c={c} h={h} w={w}");
    assert_eq!(dx.len(), n * c * h * w, "{shape}: dx length");
    assert_eq!(dy.len(), n * c * oh * ow, "{shape}: dy length");
    assert_eq!(argmax.len(), dy.len(), "{shape}: argmax length");
    if dy.is_empty() {
        dx.fill(T::ZERO);
        return;
    }
    // One task per plane: windows never leave their plane, so writes are disjoint.
    dx.par_chunks_mut(h * w)
        .zip(dy.par_chunks(oh * ow).zip(argmax.par_chunks(oh * ow)))
        .enumerate()
        .for_each(|(plane, (dx, (dy, am)))| {
            dx.fill(T::ZERO);
            let base = plane * h * w;
            for (&g, &a) in dy.iter().zip(am) {
                let i = (a as usize)
                    .checked_sub(base)
                    .filter(|&i| i < h * w)
                    .unwrap_or_else(|| panic!("{shape}: argmax {a} outside plane {plane}"));
                dx[i] = g;
            }
        });
}

fn check_plane_sizes(what: &str, n: usize, c: usize, h: usize, w: usize) -> Result<u32, GpuError> {
    let len = n
        .checked_mul(c)
        .and_then(|v| v.checked_mul(h))
        .and_then(|v| v.checked_mul(w))
        .ok_or_else(|| GpuError::Invalid(format!("{what}: n={n} c={c} h={h} w={w} overflows")))?;
    check_u32(&format!("{what} elements (n={n} c={c} h={h} w={w})"), len)
}

fn pool_info(n: usize, c: usize, h: usize, w: usize, len: usize) -> Result<Info, GpuError> {
    Ok(Info {
        planes: check_u32("maxpool planes", n * c)?,
        h: h as u32,
        w: w as u32,
        oh: (h / 2) as u32,
        ow: (w / 2) as u32,
        len: check_u32("maxpool elements", len)?,
        hw: 0,
        _pad: 0,
    })
}

/// 2×2 max pool on the device: returns `(y, argmax)`, argmax as u32 flat indices into
/// `x` (see [`maxpool2x2_cpu`]).
pub fn maxpool2x2_gpu(
    ctx: &GpuContext,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    x: &GpuBuffer,
) -> Result<(GpuBuffer, GpuBuffer), GpuError> {
    check_plane_sizes("maxpool2x2", n, c, h, w)?;
    check_len("maxpool2x2 x", x, n * c * h * w)?;
    let len = n * c * (h / 2) * (w / 2);
    let info = pool_info(n, c, h, w, len)?;
    let y = ctx.alloc(len as u64 * 4)?;
    let argmax = ctx.alloc(len as u64 * 4)?;
    launch_1d(
        ctx,
        &kernel("maxpool"),
        bytemuck::bytes_of(&info),
        &[x, &y, &argmax],
        len as u64,
    )?;
    Ok((y, argmax))
}

/// Backward of [`maxpool2x2_gpu`]: each `dx` element gathers from the one window it
/// belongs to (windows do not overlap), so no atomics are needed.
pub fn maxpool2x2_backward_gpu(
    ctx: &GpuContext,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    dy: &GpuBuffer,
    argmax: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    check_plane_sizes("maxpool2x2_backward", n, c, h, w)?;
    let out_len = n * c * (h / 2) * (w / 2);
    check_len("maxpool2x2_backward dy", dy, out_len)?;
    check_len("maxpool2x2_backward argmax", argmax, out_len)?;
    let len = n * c * h * w;
    let info = pool_info(n, c, h, w, len)?;
    let dx = ctx.alloc(len as u64 * 4)?;
    launch_1d(
        ctx,
        &kernel("maxpool_backward"),
        bytemuck::bytes_of(&info),
        &[dy, argmax, &dx],
        len as u64,
    )?;
    Ok(dx)
}

/// Global average pool `[n, c, hw] → [n, c]`: each output is its row's sum, in order,
/// divided by `hw`.
pub fn global_avg_pool_cpu<T: Real>(n: usize, c: usize, hw: usize, x: &[T], y: &mut [T]) {
    let shape = format!("global_avg_pool_cpu n={n} c={c} hw={hw}");
    assert_eq!(x.len(), n * c * hw, "{shape}: x length");
    assert_eq!(y.len(), n * c, "{shape}: y length");
    if hw == 0 {
        y.fill(T::ZERO);
        return;
    }
    let div = T::from_f64(hw as f64);
    y.par_iter_mut()
        .zip(x.par_chunks(hw))
        .with_min_len(64)
        .for_each(|(y, row)| {
            let mut s = T::ZERO;
            for &v in row {
                s += v;
            }
            *y = s / div;
        });
}

/// Backward of [`global_avg_pool_cpu`]: `dx = dy / hw` broadcast over each row.
pub fn global_avg_pool_backward_cpu<T: Real>(
    n: usize,
    c: usize,
    hw: usize,
    dy: &[T],
    dx: &mut [T],
) {
    let shape = format!("global_avg_pool_backward_cpu n={n} c={c} hw={hw}");
    assert_eq!(dy.len(), n * c, "{shape}: dy length");
    assert_eq!(dx.len(), n * c * hw, "{shape}: dx length");
    if hw == 0 {
        return;
    }
    let div = T::from_f64(hw as f64);
    dx.par_chunks_mut(hw)
        .zip(dy.par_iter())
        .with_min_len(64)
        .for_each(|(row, &g)| row.fill(g / div));
}

/// Global average pool on the device: returns `y [n, c]` (one 64-thread workgroup per
/// row: strided partial sums, then a fixed tree reduction).
pub fn global_avg_pool_gpu(
    ctx: &GpuContext,
    n: usize,
    c: usize,
    hw: usize,
    x: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    check_plane_sizes("global_avg_pool", n, c, hw, 1)?;
    check_len("global_avg_pool x", x, n * c * hw)?;
    let rows = n * c;
    let info = Info {
        planes: check_u32("global_avg_pool rows", rows)?,
        h: 0,
        w: 0,
        oh: 0,
        ow: 0,
        len: rows as u32,
        hw: hw as u32,
        _pad: 0,
    };
    let y = ctx.alloc(rows as u64 * 4)?;
    let grid = ctx.grid(rows as u64)?;
    ctx.dispatch(
        &kernel("global_avg_pool"),
        &[],
        bytemuck::bytes_of(&info),
        &[x, &y],
        grid,
    )?;
    Ok(y)
}

/// Backward of [`global_avg_pool_gpu`]: `dx [n, c, hw] = dy / hw` broadcast.
pub fn global_avg_pool_backward_gpu(
    ctx: &GpuContext,
    n: usize,
    c: usize,
    hw: usize,
    dy: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    let len = check_plane_sizes("global_avg_pool_backward", n, c, hw, 1)?;
    check_len("global_avg_pool_backward dy", dy, n * c)?;
    let info = Info {
        planes: (n * c) as u32,
        h: 0,
        w: 0,
        oh: 0,
        ow: 0,
        len,
        hw: hw as u32,
        _pad: 0,
    };
    let dx = ctx.alloc(len as u64 * 4)?;
    launch_1d(
        ctx,
        &kernel("global_avg_pool_backward"),
        bytemuck::bytes_of(&info),
        &[dy, &dx],
        len as u64,
    )?;
    Ok(dx)
}
