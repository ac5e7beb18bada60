//! WGSL launchers of the convolution: implicit GEMMs gathered on the fly from NCHW
//! tensors (see the header of `wgsl/conv.wgsl`).

use super::Conv2dShape;
use crate::gpu::{GpuBuffer, GpuContext, Kernel, Work};
use crate::launch::{check_len, check_u32, reduction_splits};
use crate::reduce::sum_rows_passes;
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
        trusted: true,
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

/// Dispatches one of the GEMM kernels over `info.groups` workgroups.
fn dispatch(
    ctx: &GpuContext,
    entry: &'static str,
    info: &Info,
    bufs: &[&GpuBuffer],
) -> Result<(), GpuError> {
    let grid = ctx.grid(info.groups as u64)?;
    let rm = rows_per_thread(info.gm as usize) as f64;
    let flops = 2.0 * info.gm as f64 * info.gn as f64 * info.gk as f64;
    ctx.dispatch_with_work(
        &kernel(entry),
        &[("RM", rm)],
        bytemuck::bytes_of(info),
        bufs,
        grid,
        Work::compute(flops, bufs),
    )
}

/// Shortest reduction chunk of a split (two 16-deep slices).
const MIN_CHUNK: usize = 2 * TILE_K;

/// Sets `info` up for `splits` chunks of `chunk` (from [`reduction_splits`]): returns
/// whether the reduction is split (its outputs then go to a partials buffer).
fn split(info: &mut Info, what: &str, chunk: usize, splits: usize) -> Result<bool, GpuError> {
    let tiles = info.tiles_m as usize * info.tiles_n as usize;
    check_u32(what, info.gk as usize + chunk)?;
    check_u32(what, info.gm as usize * info.gn as usize * splits)?;
    info.chunk = check_u32(what, chunk)?;
    info.splits = check_u32(what, splits)?;
    info.groups = check_u32(what, tiles * splits)?;
    Ok(splits > 1)
}

/// The split of `info`'s reduction over its tiles (see [`reduction_splits`]).
fn splits_of(info: &Info) -> (usize, usize) {
    let tiles = info.tiles_m as usize * info.tiles_n as usize;
    reduction_splits(tiles, info.gk as usize, TILE_K, MIN_CHUNK)
}

/// Runs GEMM `entry` over `inputs` into a new buffer of `len` values: directly, or (a
/// split reduction) into `splits` partials `[splits, len]` whose rows `sum_rows`' passes
/// add (blocks of 64 splits in order, then the block sums in order), spread over the
/// outputs and the split blocks.
fn gemm(
    ctx: &GpuContext,
    entry: &'static str,
    info: &Info,
    inputs: [&GpuBuffer; 2],
    len: usize,
) -> Result<GpuBuffer, GpuError> {
    if info.splits <= 1 {
        let out = ctx.alloc(len as u64 * 4)?;
        dispatch(ctx, entry, info, &[inputs[0], inputs[1], &out])?;
        return Ok(out);
    }
    let partials = ctx.alloc((len * info.splits as usize) as u64 * 4)?;
    dispatch(ctx, entry, info, &[inputs[0], inputs[1], &partials])?;
    sum_rows_passes(ctx, &partials, info.splits as usize, len)
}

/// Forward convolution on the device: returns `y [n, o, oh, ow]`.
pub fn conv2d_gpu(
    ctx: &GpuContext,
    s: &Conv2dShape,
    x: &GpuBuffer,
    w: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    conv2d_gpu_split(ctx, s, x, w, forward_splits(s))
}

/// Splits of the forward reduction (K = c·kh·kw) [`conv2d_gpu`] uses: enough for a
/// layer with a small output grid (the CNN's third layer at batch 32: 8 tiles) to offer
/// [`crate::launch::TARGET_WORKGROUPS`], each split reducing at least two slices. By
/// shape alone, so every adapter computes the same bits.
pub fn forward_splits(s: &Conv2dShape) -> usize {
    let gm = s.o;
    let tiles = gm.div_ceil(16 * rows_per_thread(gm)) * (s.n * s.p()).div_ceil(TILE);
    reduction_splits(tiles, s.k(), TILE_K, MIN_CHUNK).1
}

/// Forward convolution with the reduction split into `splits` chunks of whole 16-deep
/// slices, each into a partial output, added by `sum_rows`' passes (deterministic; with
/// more than one split the rounding differs from one chain).
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
    let gk = s.k();
    let chunk = gk.div_ceil(splits.max(1)).div_ceil(TILE_K) * TILE_K;
    split(&mut info, "conv2d", chunk, gk.div_ceil(chunk.max(1)).max(1))?;
    gemm(ctx, "conv_forward", &info, [x, w], s.y_len())
}

/// Gradient of the convolution with respect to its input on the device: returns
/// `dx [n, c, h, w]` (an implicit GEMM over (co, ki, kj) per input element; no atomics).
/// The reduction is split as [`reduction_splits`] says for the output tiles (the CNN's
/// layers at batch 32 have 18 and 113 tiles).
pub fn conv2d_backward_data_gpu(
    ctx: &GpuContext,
    s: &Conv2dShape,
    dy: &GpuBuffer,
    w: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    let mut info = info(s, s.c, s.n * s.h * s.w, s.o * s.kh * s.kw)?;
    let (chunk, splits) = splits_of(&info);
    backward_data(ctx, s, dy, w, chunk, splits, &mut info)
}

/// [`conv2d_backward_data_gpu`] with the reduction (o·kh·kw) split into `splits` chunks
/// of whole 16-deep slices: 1 is the single fma chain per output.
pub fn conv2d_backward_data_gpu_split(
    ctx: &GpuContext,
    s: &Conv2dShape,
    dy: &GpuBuffer,
    w: &GpuBuffer,
    splits: usize,
) -> Result<GpuBuffer, GpuError> {
    let gk = s.o * s.kh * s.kw;
    let mut info = info(s, s.c, s.n * s.h * s.w, gk)?;
    let chunk = gk.div_ceil(splits.max(1)).div_ceil(TILE_K) * TILE_K;
    let splits = gk.div_ceil(chunk.max(1)).max(1);
    backward_data(ctx, s, dy, w, chunk, splits, &mut info)
}

fn backward_data(
    ctx: &GpuContext,
    s: &Conv2dShape,
    dy: &GpuBuffer,
    w: &GpuBuffer,
    chunk: usize,
    splits: usize,
    info: &mut Info,
) -> Result<GpuBuffer, GpuError> {
    check_len("conv2d_backward_data dy", dy, s.y_len())?;
    check_len("conv2d_backward_data w", w, s.w_len())?;
    split(info, "conv2d_backward_data", chunk, splits)?;
    gemm(ctx, "conv_backward_data", info, [dy, w], s.x_len())
}

/// Gradient of the convolution with respect to its weights on the device, summed over
/// the batch: returns `dw [o, c, kh, kw]`. The reduction (n·oh·ow) is split as
/// [`reduction_splits`] says for the (few) output tiles, into a partials buffer summed
/// in split order by a second pass.
pub fn conv2d_backward_weight_gpu(
    ctx: &GpuContext,
    s: &Conv2dShape,
    x: &GpuBuffer,
    dy: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    check_len("conv2d_backward_weight x", x, s.x_len())?;
    check_len("conv2d_backward_weight dy", dy, s.y_len())?;
    let mut info = info(s, s.o, s.k(), s.n * s.p())?;
    let (chunk, splits) = splits_of(&info);
    split(&mut info, "conv2d_backward_weight", chunk, splits)?;
    gemm(ctx, "conv_backward_weight", &info, [dy, x], s.w_len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Padding;
    use crate::launch::TARGET_WORKGROUPS;

    fn groups(s: &Conv2dShape, gm: usize, gn: usize, gk: usize) -> usize {
        let mut i = info(s, gm, gn, gk).unwrap();
        let (chunk, splits) = splits_of(&i);
        split(&mut i, "test", chunk, splits).unwrap();
        i.groups as usize
    }

    /// The CNN's layers at the paper's batch (32) offer a 132-SM GPU two workgroups per
    /// multiprocessor in every pass.
    #[test]
    fn the_cnn_at_batch_32_fills_a_big_gpu_in_every_pass() {
        for (c, h, o) in [(3, 32, 32), (32, 15, 64), (64, 6, 64)] {
            let s = Conv2dShape::new(32, c, h, h, o, 3, 3, 1, Padding::Valid).unwrap();
            let fwd = groups(&s, s.o, s.n * s.p(), s.k());
            let data = groups(&s, s.c, s.n * s.h * s.w, s.o * 9);
            let weight = groups(&s, s.o, s.k(), s.n * s.p());
            for (pass, g) in [
                ("forward", fwd),
                ("backward-data", data),
                ("backward-weight", weight),
            ] {
                assert!(
                    g >= TARGET_WORKGROUPS / 2,
                    "conv {c}->{o} {pass}: {g} workgroups"
                );
            }
            // Only conv3's forward and backward-weight stop short, at the shortest chunks.
            if c != 64 {
                assert!(
                    fwd >= TARGET_WORKGROUPS && weight >= TARGET_WORKGROUPS,
                    "{c}"
                );
            }
            assert!(data >= TARGET_WORKGROUPS, "{c}: {data}");
        }
    }
}
