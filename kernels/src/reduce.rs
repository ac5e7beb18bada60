//! Reductions: sum, sum of squares, dot product, sums over rows (dense bias gradient) and
//! over images and pixels (conv bias gradient), and scaling by a device scalar.
//! WGSL: `wgsl/reduce.wgsl`.
//!
//! Every reduction here runs in a fixed order, on the cpu and on the device alike: the
//! result depends only on the input values and the shape, never on the number of threads
//! or on scheduling (no atomics). The cpu and device orders differ from each other, so
//! their results agree to rounding, not bitwise.

use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::launch::{check_len, check_u32, launch_1d, WG_1D};
use crate::real::{Real, CPU_CHUNK};
use crate::GpuError;
use rayon::prelude::*;

const SRC: &str = include_str!("../wgsl/reduce.wgsl");

/// Values reduced by one workgroup of a sum pass (`CHUNK` in the WGSL).
const GPU_CHUNK: usize = 4096;
/// Rows summed per thread in one `sum_rows` pass.
pub(crate) const ROW_BLOCK: usize = 64;
/// Target values per workgroup of `sum_channels` (images are grouped to reach it): small
/// enough that the CNN's bias gradients at batch 32 spread over a few hundred workgroups.
const CHANNEL_WORK: usize = 1024;
/// Accumulator lanes of the cpu sums (independent partial sums, combined in a fixed tree).
const LANES: usize = 8;

/// What [`reduce_cpu`] and [`reduce_gpu`] compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// Σ x
    Sum,
    /// Σ x²
    SumSquares,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    n: u32,
    cols: u32,
    inner: u32,
    block: u32,
    div: f32,
    _pad: [u32; 3],
}

impl Info {
    fn new(n: u32) -> Self {
        Info {
            n,
            cols: 1,
            inner: 1,
            block: 1,
            div: 1.0,
            _pad: [0; 3],
        }
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        module: "reduce",
        source: SRC,
        entry,
        trusted: true,
    }
}

/// Combines the lanes in a fixed tree.
fn combine<T: Real>(l: [T; LANES]) -> T {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// Σ f(x) over one chunk: value i goes to lane i % LANES, then the lanes are combined.
pub(crate) fn chunk_sum<T: Real>(x: &[T], f: impl Fn(T) -> T) -> T {
    let mut lanes = [T::ZERO; LANES];
    let mut it = x.chunks_exact(LANES);
    for c in &mut it {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(v);
        }
    }
    for (l, &v) in lanes.iter_mut().zip(it.remainder()) {
        *l += f(v);
    }
    combine(lanes)
}

/// Sums `partials` left to right.
pub(crate) fn sum_in_order<T: Real>(partials: impl IntoIterator<Item = T>) -> T {
    partials.into_iter().fold(T::ZERO, |acc, v| acc + v)
}

/// Σ x or Σ x² on the cpu: one partial per [`CPU_CHUNK`] values (in parallel), summed in
/// chunk order.
pub fn reduce_cpu<T: Real>(r: Reduction, x: &[T]) -> T {
    let partials: Vec<T> = x
        .par_chunks(CPU_CHUNK)
        .map(|c| match r {
            Reduction::Sum => chunk_sum(c, |v| v),
            Reduction::SumSquares => chunk_sum(c, |v| v * v),
        })
        .collect();
    sum_in_order(partials)
}

/// Σ a·b on the cpu (same chunking as [`reduce_cpu`]).
pub fn dot_cpu<T: Real>(a: &[T], b: &[T]) -> T {
    assert_eq!(a.len(), b.len(), "dot_cpu: lengths differ");
    let partials: Vec<T> = a
        .par_chunks(CPU_CHUNK)
        .zip(b.par_chunks(CPU_CHUNK))
        .map(|(a, b)| {
            let mut lanes = [T::ZERO; LANES];
            let mut ia = a.chunks_exact(LANES);
            let mut ib = b.chunks_exact(LANES);
            for (ca, cb) in (&mut ia).zip(&mut ib) {
                for ((l, &x), &y) in lanes.iter_mut().zip(ca).zip(cb) {
                    *l += x * y;
                }
            }
            for ((l, &x), &y) in lanes.iter_mut().zip(ia.remainder()).zip(ib.remainder()) {
                *l += x * y;
            }
            combine(lanes)
        })
        .collect();
    sum_in_order(partials)
}

/// Runs sum passes over `cur` (`len` partials) until one value is left; the last pass
/// divides by `div`. `first` is the entry point and buffers of the first pass.
fn reduce_passes(
    ctx: &GpuContext,
    first: &'static str,
    inputs: &[&GpuBuffer],
    n: usize,
    div: f32,
) -> Result<GpuBuffer, GpuError> {
    if n == 0 {
        return ctx.zeros(4);
    }
    let mut len = n;
    let mut entry = first;
    let mut owned: Option<GpuBuffer> = None;
    loop {
        let parts = len.div_ceil(GPU_CHUNK);
        let out = ctx.alloc(parts as u64 * 4)?;
        let mut info = Info::new(check_u32("reduce", len)?);
        if parts == 1 {
            info.div = div;
        }
        let grid = ctx.grid(parts as u64)?;
        let mut buffers: Vec<&GpuBuffer> = match &owned {
            Some(b) => vec![b],
            None => inputs.to_vec(),
        };
        buffers.push(&out);
        ctx.dispatch(
            &kernel(entry),
            &[],
            bytemuck::bytes_of(&info),
            &buffers,
            grid,
        )?;
        if parts == 1 {
            return Ok(out);
        }
        owned = Some(out);
        len = parts;
        entry = "reduce_sum";
    }
}

/// Σ x or Σ x² of the first `n` values on the device, as a 1-value buffer. Pass 1: each
/// workgroup reduces 4096 values (per-thread strided sums, then a tree); further passes
/// sum the partials until one is left. `n = 0` gives 0.
pub fn reduce_gpu(
    ctx: &GpuContext,
    r: Reduction,
    x: &GpuBuffer,
    n: usize,
) -> Result<GpuBuffer, GpuError> {
    check_len("reduce x", x, n)?;
    let entry = match r {
        Reduction::Sum => "reduce_sum",
        Reduction::SumSquares => "reduce_sum_squares",
    };
    reduce_passes(ctx, entry, &[x], n, 1.0)
}

/// (Σ x) / div on the device, for means (the loss).
pub(crate) fn mean_gpu(
    ctx: &GpuContext,
    x: &GpuBuffer,
    n: usize,
    div: f32,
) -> Result<GpuBuffer, GpuError> {
    check_len("mean x", x, n)?;
    reduce_passes(ctx, "reduce_sum", &[x], n, div)
}

/// Σ a·b over the first `n` values on the device, as a 1-value buffer.
pub fn dot_gpu(
    ctx: &GpuContext,
    a: &GpuBuffer,
    b: &GpuBuffer,
    n: usize,
) -> Result<GpuBuffer, GpuError> {
    check_len("dot a", a, n)?;
    check_len("dot b", b, n)?;
    reduce_passes(ctx, "reduce_dot", &[a, b], n, 1.0)
}

/// Sum over the rows of a row-major `[rows, cols]` matrix into `out[cols]` (the bias
/// gradient of a dense layer). Rows are taken in blocks of about [`CPU_CHUNK`] values
/// (in parallel), each summed row by row; the block sums are added in block order.
pub fn sum_rows_cpu<T: Real>(x: &[T], rows: usize, cols: usize, out: &mut [T]) {
    assert!(
        x.len() >= rows * cols && out.len() >= cols,
        "sum_rows_cpu [{rows}, {cols}]: slices too short"
    );
    let out = &mut out[..cols];
    out.fill(T::ZERO);
    if rows == 0 || cols == 0 {
        return;
    }
    let block = (CPU_CHUNK / cols).max(1);
    let partials: Vec<Vec<T>> = x[..rows * cols]
        .par_chunks(block * cols)
        .map(|rows| {
            let mut acc = vec![T::ZERO; cols];
            for row in rows.chunks_exact(cols) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
            acc
        })
        .collect();
    for p in partials {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
}

/// Images per workgroup of the channel sums on the device ([`sum_channels_gpu`] and the
/// fused bias gradients, which must group alike): about [`CHANNEL_WORK`] values. Depends
/// on the shape only, so the order is fixed.
pub(crate) fn channel_block(n: usize, inner: usize) -> usize {
    (CHANNEL_WORK / inner.max(1)).clamp(1, n.max(1))
}

/// Sums the rows of `[rows, cols]` (rows ≥ 1) in `sum_rows`' passes: blocks of
/// [`ROW_BLOCK`] rows per column in order, repeated until one row is left.
pub(crate) fn sum_rows_passes(
    ctx: &GpuContext,
    x: &GpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<GpuBuffer, GpuError> {
    let mut owned: Option<GpuBuffer> = None;
    let mut rows = rows;
    loop {
        let blocks = rows.div_ceil(ROW_BLOCK);
        let out = ctx.alloc((blocks * cols) as u64 * 4)?;
        let info = Info {
            n: check_u32("sum_rows", rows)?,
            cols: check_u32("sum_rows", cols)?,
            block: ROW_BLOCK as u32,
            ..Info::new(0)
        };
        let input = owned.as_ref().unwrap_or(x);
        launch_1d(
            ctx,
            &kernel("sum_rows"),
            bytemuck::bytes_of(&info),
            &[input, &out],
            (blocks * cols) as u64,
        )?;
        if blocks == 1 {
            return Ok(out);
        }
        owned = Some(out);
        rows = blocks;
    }
}

/// Sum over the rows of a `[rows, cols]` matrix on the device → `[cols]`. Each pass sums
/// blocks of 64 rows per column in order; passes repeat until one row is left.
pub fn sum_rows_gpu(
    ctx: &GpuContext,
    x: &GpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<GpuBuffer, GpuError> {
    check_len("sum_rows x", x, rows * cols)?;
    check_u32("sum_rows", rows * cols)?;
    if rows == 0 || cols == 0 {
        return ctx.zeros(cols as u64 * 4);
    }
    sum_rows_passes(ctx, x, rows, cols)
}

/// Sum over images and pixels of an `[n, c, inner]` tensor into `out[c]` (the bias
/// gradient of a convolution). Channels in parallel; each channel sums its planes image by
/// image (lane sums within a plane), in image order.
pub fn sum_channels_cpu<T: Real>(x: &[T], n: usize, c: usize, inner: usize, out: &mut [T]) {
    assert!(
        x.len() >= n * c * inner && out.len() >= c,
        "sum_channels_cpu [{n}, {c}, {inner}]: slices too short"
    );
    out[..c].par_iter_mut().enumerate().for_each(|(ch, o)| {
        let per_image = (0..n).map(|img| {
            let plane = (img * c + ch) * inner;
            chunk_sum(&x[plane..plane + inner], |v| v)
        });
        *o = sum_in_order(per_image);
    });
}

/// Sum over images and pixels of `[n, c, inner]` on the device → `[c]`. One workgroup per
/// (channel, block of images) reduces in a fixed order to a partial `[blocks, c]`, whose
/// rows are then summed by [`sum_rows_gpu`]'s passes.
pub fn sum_channels_gpu(
    ctx: &GpuContext,
    x: &GpuBuffer,
    n: usize,
    c: usize,
    inner: usize,
) -> Result<GpuBuffer, GpuError> {
    check_len("sum_channels x", x, n * c * inner)?;
    check_u32("sum_channels", n * c * inner)?;
    if n == 0 || c == 0 || inner == 0 {
        return ctx.zeros(c as u64 * 4);
    }
    let block = channel_block(n, inner);
    let blocks = n.div_ceil(block);
    let partial = ctx.alloc((blocks * c) as u64 * 4)?;
    let info = Info {
        n: check_u32("sum_channels", n)?,
        cols: check_u32("sum_channels", c)?,
        inner: check_u32("sum_channels", inner)?,
        block: block as u32,
        ..Info::new(0)
    };
    let grid = ctx.grid((blocks * c) as u64)?;
    ctx.dispatch(
        &kernel("sum_channels"),
        &[],
        bytemuck::bytes_of(&info),
        &[x, &partial],
        grid,
    )?;
    if blocks == 1 {
        return Ok(partial);
    }
    sum_rows_passes(ctx, &partial, blocks, c)
}

/// out = x · s on the cpu.
pub fn mul_scalar_cpu<T: Real>(x: &[T], s: T, out: &mut [T]) {
    out.par_chunks_mut(CPU_CHUNK)
        .zip(x.par_chunks(CPU_CHUNK))
        .for_each(|(o, x)| {
            for (o, &x) in o.iter_mut().zip(x) {
                *o = x * s;
            }
        });
}

/// out = x · s[0] on the device, where `s` is a 1-value device buffer (scales by an
/// upstream scalar gradient without a readback).
pub fn mul_scalar_gpu(
    ctx: &GpuContext,
    x: &GpuBuffer,
    s: &GpuBuffer,
    n: usize,
) -> Result<GpuBuffer, GpuError> {
    check_len("mul_scalar x", x, n)?;
    check_len("mul_scalar s", s, 1)?;
    let out = ctx.alloc(n as u64 * 4)?;
    let info = Info::new(check_u32("mul_scalar", n)?);
    launch_1d(
        ctx,
        &kernel("mul_scalar"),
        bytemuck::bytes_of(&info),
        &[x, s, &out],
        n as u64,
    )?;
    Ok(out)
}

// Keep WG_1D and the WGSL's workgroup size in step.
const _: () = assert!(WG_1D == 256 && GPU_CHUNK == 256 * 16);
