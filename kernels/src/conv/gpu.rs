//! WGSL launchers of the convolution: implicit GEMMs gathered on the fly from NCHW
//! tensors (see the header of `wgsl/conv.wgsl`).

use super::Conv2dShape;
use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::launch::{check_len, check_u32, launch_1d};
use crate::GpuError;

const SRC: &str = include_str!("../../wgsl/conv.wgsl");

/// Uniform block of `conv.wgsl` (field order and meaning documented there).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    o: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    oh: u32,
    ow: u32,
    gm: u32,
    gn: u32,
    gk: u32,
    tiles_m: u32,
    tiles_n: u32,
    groups: u32,
    chunk: u32,
    splits: u32,
}

/// Output tile width (columns) of the GEMM kernels (must match `conv.wgsl`).
const TILE: usize = 64;
/// Reduction slice (must match `conv.wgsl`).
const TILE_K: usize = 16;

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        module: "conv",
        source: SRC,
        entry,
    }
}

/// Builds the uniform block for a GEMM of `gm × gn` outputs reducing over `gk`, after
/// checking that every index the shader forms fits in u32.
fn info(s: &Conv2dShape, gm: usize, gn: usize, gk: usize) -> Result<Info, GpuError> {
    s.check()?;
    let u = |what: &str, v: usize| check_u32(&format!("conv2d {what} ({s:?})"), v);
    u("input elements", s.x_len())?;
    u("weight elements", s.w_len())?;
    u("output elements", s.y_len())?;
    // The shader forms oy·stride + k (and iy + pad) before range checks.
    u(
        "padded height",
        (s.oh - 1) * s.stride + s.kh + s.h + s.pad_top,
    )?;
    u(
        "padded width",
        (s.ow - 1) * s.stride + s.kw + s.w + s.pad_left,
    )?;
    // Loop counters run up to the reduction length plus one slice.
    u("reduction length", gk + TILE_K)?;
    let tiles_m = gm.div_ceil(16 * rows_per_thread(gm));
    let tiles_n = gn.div_ceil(TILE);
    Ok(Info {
        n: u("n", s.n)?,
        c: u("c", s.c)?,
        h: u("h", s.h)?,
        w: u("w", s.w)?,
        o: u("o", s.o)?,
        kh: u("kh", s.kh)?,
        kw: u("kw", s.kw)?,
        stride: u("stride", s.stride)?,
        pad_top: u("pad_top", s.pad_top)?,
        pad_left: u("pad_left", s.pad_left)?,
        oh: u("oh", s.oh)?,
        ow: u("ow", s.ow)?,
        gm: u("gemm m", gm)?,
        gn: u("gemm n", gn)?,
        gk: u("gemm k", gk)?,
        tiles_m: u("tiles", tiles_m)?,
        tiles_n: u("tiles", tiles_n)?,
        groups: u("workgroups", tiles_m * tiles_n)?,
        chunk: u("gemm k", gk)?,
        splits: 1,
    })
}

/// Register-block rows per thread (the shader's `RM`): tiles of 16·RM rows, so that
/// GEMMs with 16 or 32 rows (layers of 16 or 32 channels) do not compute mostly
/// padding. Results do not depend on it (same reduction order per output).
fn rows_per_thread(gm: usize) -> usize {
    match gm {
        0..=16 => 1,
        17..=32 => 2,
        _ => 4,
    }
}

fn dispatch(
    ctx: &GpuContext,
    entry: &'static str,
    info: &Info,
    bufs: &[&GpuBuffer],
) -> Result<(), GpuError> {
    let grid = ctx.grid(info.groups as u64)?;
    let rm = rows_per_thread(info.gm as usize) as f64;
    ctx.dispatch(
        &kernel(entry),
        &[("RM", rm)],
        bytemuck::bytes_of(info),
        bufs,
        grid,
    )
}

/// Forward convolution on the device: returns `y [n, o, oh, ow]`.
pub fn conv2d_gpu(
    ctx: &GpuContext,
    s: &Conv2dShape,
    x: &GpuBuffer,
    w: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    conv2d_gpu_split(ctx, s, x, w, forward_splits_for(ctx, s))
}

/// Workgroups the forward pass aims for on a GPU before it stops splitting.
const FORWARD_TARGET_GROUPS: usize = 128;
/// Smallest reduction per forward split (a multiple of [`TILE_K`]).
const FORWARD_MIN_CHUNK: usize = 64;

/// Splits of the forward reduction (K = c·kh·kw) [`conv2d_gpu`] uses: 1 on CPU
/// adapters (the single-chain order), and on GPUs enough for a layer with a small
/// output grid (the CNN's third layer at batch 32: 8 tiles) to reach ~128 workgroups,
/// each split reducing at least 64.
pub fn forward_splits_for(ctx: &GpuContext, s: &Conv2dShape) -> usize {
    if ctx.adapter.is_cpu {
        return 1;
    }
    let gm = s.o;
    let tiles = gm.div_ceil(16 * rows_per_thread(gm)) * (s.n * s.p()).div_ceil(TILE);
    let want = FORWARD_TARGET_GROUPS.div_ceil(tiles.max(1));
    want.min(s.k() / FORWARD_MIN_CHUNK).max(1)
}

/// Forward convolution with the reduction split into `splits` chunks of whole 16-deep
/// slices, each into a partial output, added in split order by `conv_sum_partials`
/// (deterministic; with more than one split the rounding differs from one chain).
pub fn conv2d_gpu_split(
    ctx: &GpuContext,
    s: &Conv2dShape,
    x: &GpuBuffer,
    w: &GpuBuffer,
    splits: usize,
) -> Result<GpuBuffer, GpuError> {
    check_len("conv2d x", x, s.x_len())?;
    check_len("conv2d w", w, s.w_len())?;
    let mut info = info(s, s.o, s.n * s.p(), s.k())?;
    let y = ctx.alloc(s.y_len() as u64 * 4)?;
    let gk = s.k();
    let chunk = gk.div_ceil(splits.max(1)).div_ceil(TILE_K) * TILE_K;
    let splits = gk.div_ceil(chunk.max(1)).max(1);
    if splits == 1 {
        dispatch(ctx, "conv_forward", &info, &[x, w, &y])?;
        return Ok(y);
    }
    let tiles = info.tiles_m as usize * info.tiles_n as usize;
    check_u32("conv2d partials", s.y_len() * splits)?;
    check_u32("conv2d reduction", gk + chunk)?;
    info.chunk = check_u32("conv2d chunk", chunk)?;
    info.splits = check_u32("conv2d splits", splits)?;
    info.groups = check_u32("conv2d workgroups", tiles * splits)?;
    let partials = ctx.alloc((s.y_len() * splits) as u64 * 4)?;
    dispatch(ctx, "conv_forward", &info, &[x, w, &partials])?;
    launch_1d(
        ctx,
        &kernel("conv_sum_partials"),
        bytemuck::bytes_of(&info),
        &[&partials, &y],
        s.y_len() as u64,
    )?;
    Ok(y)
}

/// Gradient of the convolution with respect to its input on the device: returns
/// `dx [n, c, h, w]` (an implicit GEMM over (co, ki, kj) per input element; no atomics).
pub fn conv2d_backward_data_gpu(
    ctx: &GpuContext,
    s: &Conv2dShape,
    dy: &GpuBuffer,
    w: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    check_len("conv2d_backward_data dy", dy, s.y_len())?;
    check_len("conv2d_backward_data w", w, s.w_len())?;
    let info = info(s, s.c, s.n * s.h * s.w, s.o * s.kh * s.kw)?;
    let dx = ctx.alloc(s.x_len() as u64 * 4)?;
    dispatch(ctx, "conv_backward_data", &info, &[dy, w, &dx])?;
    Ok(dx)
}

/// Workgroups the backward-weight kernel aims for before it splits the reduction.
const TARGET_GROUPS: usize = 512;
/// Smallest reduction chunk of one split (a multiple of [`TILE_K`]).
const MIN_CHUNK: usize = 512;

/// Splits of the backward-weight reduction for `tiles` output tiles reducing over `r`:
/// returns (chunk, splits). Depends on the shape only, so results are reproducible on
/// any device.
fn weight_splits(tiles: usize, r: usize) -> (usize, usize) {
    let want = TARGET_GROUPS.div_ceil(tiles).max(1);
    let chunk = r.div_ceil(want).max(MIN_CHUNK).div_ceil(TILE_K) * TILE_K;
    (chunk, r.div_ceil(chunk).max(1))
}

/// Gradient of the convolution with respect to its weights on the device, summed over
/// the batch: returns `dw [o, c, kh, kw]`. Long reductions (n·oh·ow) are split into
/// fixed chunks written to a partials buffer and summed in split order by a second pass.
pub fn conv2d_backward_weight_gpu(
    ctx: &GpuContext,
    s: &Conv2dShape,
    x: &GpuBuffer,
    dy: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    check_len("conv2d_backward_weight x", x, s.x_len())?;
    check_len("conv2d_backward_weight dy", dy, s.y_len())?;
    let r = s.n * s.p();
    let mut info = info(s, s.o, s.k(), r)?;
    let tiles = info.tiles_m as usize * info.tiles_n as usize;
    let (chunk, splits) = weight_splits(tiles, r);
    check_u32("conv2d_backward_weight reduction", r + chunk)?;
    info.chunk = check_u32("conv2d_backward_weight chunk", chunk)?;
    info.splits = check_u32("conv2d_backward_weight splits", splits)?;
    info.groups = check_u32("conv2d_backward_weight workgroups", tiles * splits)?;
    let len = s.w_len();
    let dw = ctx.alloc(len as u64 * 4)?;
    if splits == 1 {
        dispatch(ctx, "conv_backward_weight", &info, &[dy, x, &dw])?;
        return Ok(dw);
    }
    check_u32("conv2d_backward_weight partials", len * splits)?;
    let partials = ctx.alloc((len * splits) as u64 * 4)?;
    dispatch(ctx, "conv_backward_weight", &info, &[dy, x, &partials])?;
    launch_1d(
        ctx,
        &kernel("conv_sum_partials"),
        bytemuck::bytes_of(&info),
        &[&partials, &dw],
        len as u64,
    )?;
    Ok(dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_splits_cover_the_reduction() {
        for tiles in [1, 3, 64, 600] {
            for r in [1, 15, 16, 17, 1000, 28_800, 131_072] {
                let (chunk, splits) = weight_splits(tiles, r);
                assert_eq!(chunk % TILE_K, 0);
                assert!(
                    chunk * splits >= r && chunk * (splits - 1) < r,
                    "{tiles} {r}"
                );
            }
        }
    }
}
