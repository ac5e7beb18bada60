//! Elementwise ops: add, sub, mul, axpy, scale, ReLU and its backward, bias add.
//! WGSL: `wgsl/elementwise.wgsl`.

use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::launch::{check_len, check_u32, launch_1d};
use crate::real::{Real, CPU_CHUNK};
use crate::GpuError;
use rayon::prelude::*;

const SRC: &str = include_str!("../wgsl/elementwise.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    n: u32,
    inner: u32,
    channels: u32,
    alpha: f32,
}

/// Binary elementwise operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// a + b
    Add,
    /// a − b
    Sub,
    /// a · b
    Mul,
    /// a · (b > 0): ReLU backward (a = upstream gradient, b = ReLU input)
    ReluBackward,
}

impl Binary {
    fn entry(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::ReluBackward => "relu_backward",
        }
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        module: "elementwise",
        source: SRC,
        entry,
        trusted: true,
    }
}

/// out = op(a, b) on the cpu. One loop per op: a match inside the element loop is not
/// reliably hoisted, and kept there it stops the loop from vectorising.
pub fn binary_cpu<T: Real>(op: Binary, a: &[T], b: &[T], out: &mut [T]) {
    match op {
        Binary::Add => zip_map(a, b, out, |a, b| a + b),
        Binary::Sub => zip_map(a, b, out, |a, b| a - b),
        Binary::Mul => zip_map(a, b, out, |a, b| a * b),
        Binary::ReluBackward => zip_map(a, b, out, |a, b| if b > T::ZERO { a } else { T::ZERO }),
    }
}

/// `out[i] = f(a[i], b[i])` in parallel chunks.
fn zip_map<T: Real>(a: &[T], b: &[T], out: &mut [T], f: impl Fn(T, T) -> T + Sync + Send) {
    out.par_chunks_mut(CPU_CHUNK)
        .zip(a.par_chunks(CPU_CHUNK).zip(b.par_chunks(CPU_CHUNK)))
        .for_each(|(o, (a, b))| {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = f(a, b);
            }
        });
}

/// out = op(a, b) on the device, `n` elements.
pub fn binary_gpu(
    ctx: &GpuContext,
    op: Binary,
    a: &GpuBuffer,
    b: &GpuBuffer,
    n: usize,
) -> Result<GpuBuffer, GpuError> {
    check_len("binary a", a, n)?;
    check_len("binary b", b, n)?;
    let out = ctx.alloc(n as u64 * 4)?;
    let info = Info {
        n: check_u32("elementwise", n)?,
        inner: 1,
        channels: 1,
        alpha: 0.0,
    };
    launch_1d(
        ctx,
        &kernel(op.entry()),
        bytemuck::bytes_of(&info),
        &[a, b, &out],
        n as u64,
    )?;
    Ok(out)
}

/// out = α·a + b on the cpu.
pub fn axpy_cpu<T: Real>(alpha: T, a: &[T], b: &[T], out: &mut [T]) {
    out.par_chunks_mut(CPU_CHUNK)
        .zip(a.par_chunks(CPU_CHUNK).zip(b.par_chunks(CPU_CHUNK)))
        .for_each(|(o, (a, b))| {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = alpha * a + b;
            }
        });
}

/// out = α·a + b on the device.
pub fn axpy_gpu(
    ctx: &GpuContext,
    alpha: f32,
    a: &GpuBuffer,
    b: &GpuBuffer,
    n: usize,
) -> Result<GpuBuffer, GpuError> {
    check_len("axpy a", a, n)?;
    check_len("axpy b", b, n)?;
    let out = ctx.alloc(n as u64 * 4)?;
    let info = Info {
        n: check_u32("axpy", n)?,
        inner: 1,
        channels: 1,
        alpha,
    };
    launch_1d(
        ctx,
        &kernel("axpy"),
        bytemuck::bytes_of(&info),
        &[a, b, &out],
        n as u64,
    )?;
    Ok(out)
}

/// Unary elementwise operations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// α·x
    Scale(f64),
    /// max(x, 0)
    Relu,
    /// 1/x² − α: batch-norm variance from 1/√(var + eps)
    InvSquareMinus(f64),
}

/// y = op(x) on the cpu.
pub fn unary_cpu<T: Real>(op: Unary, x: &[T], y: &mut [T]) {
    y.par_chunks_mut(CPU_CHUNK)
        .zip(x.par_chunks(CPU_CHUNK))
        .for_each(|(y, x)| match op {
            Unary::Scale(alpha) => {
                let alpha = T::from_f64(alpha);
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = alpha * x;
                }
            }
            Unary::Relu => {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = if x > T::ZERO { x } else { T::ZERO };
                }
            }
            Unary::InvSquareMinus(alpha) => {
                let alpha = T::from_f64(alpha);
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = T::ONE / (x * x) - alpha;
                }
            }
        });
}

/// y = op(x) on the device.
pub fn unary_gpu(
    ctx: &GpuContext,
    op: Unary,
    x: &GpuBuffer,
    n: usize,
) -> Result<GpuBuffer, GpuError> {
    check_len("unary x", x, n)?;
    let y = ctx.alloc(n as u64 * 4)?;
    let (entry, alpha) = match op {
        Unary::Scale(a) => ("scale", a as f32),
        Unary::Relu => ("relu", 0.0),
        Unary::InvSquareMinus(a) => ("inv_square_minus", a as f32),
    };
    let info = Info {
        n: check_u32("elementwise", n)?,
        inner: 1,
        channels: 1,
        alpha,
    };
    launch_1d(
        ctx,
        &kernel(entry),
        bytemuck::bytes_of(&info),
        &[x, &y],
        n as u64,
    )?;
    Ok(y)
}

/// out[i] = x[i] + bias[(i / inner) % bias.len()]: a bias per column of an `[N, F]`
/// matrix (`inner` = 1) or per channel of an NCHW tensor (`inner` = H·W).
pub fn bias_add_cpu<T: Real>(x: &[T], bias: &[T], inner: usize, out: &mut [T]) {
    bias_map_cpu(x, bias, inner, out, |x, b| x + b);
}

/// out[i] = f(x[i], bias[(i / inner) % bias.len()]), the traversal bias add and the
/// fused bias + ReLU share: rows of columns for `[N, F]` (`inner` = 1), planes of
/// `inner` values for NCHW (no division per element).
#[inline(always)]
pub(crate) fn bias_map_cpu<T: Real>(
    x: &[T],
    bias: &[T],
    inner: usize,
    out: &mut [T],
    f: impl Fn(T, T) -> T + Sync,
) {
    let channels = bias.len().max(1);
    if inner == 1 {
        let rows = (CPU_CHUNK / channels).max(1) * channels;
        out.par_chunks_mut(rows)
            .zip(x.par_chunks(rows))
            .for_each(|(o, x)| {
                for (o, x) in o.chunks_mut(channels).zip(x.chunks(channels)) {
                    for ((o, &x), &b) in o.iter_mut().zip(x).zip(bias) {
                        *o = f(x, b);
                    }
                }
            });
        return;
    }
    out.par_chunks_mut(inner)
        .zip(x.par_chunks(inner))
        .enumerate()
        .with_min_len((CPU_CHUNK / inner).max(1))
        .for_each(|(plane, (o, x))| {
            let b = bias[plane % channels];
            for (o, &x) in o.iter_mut().zip(x) {
                *o = f(x, b);
            }
        });
}

/// Bias add on the device (see [`bias_add_cpu`]).
pub fn bias_add_gpu(
    ctx: &GpuContext,
    x: &GpuBuffer,
    bias: &GpuBuffer,
    n: usize,
    inner: usize,
    channels: usize,
) -> Result<GpuBuffer, GpuError> {
    check_len("bias_add x", x, n)?;
    check_len("bias_add bias", bias, channels)?;
    let out = ctx.alloc(n as u64 * 4)?;
    let info = Info {
        n: check_u32("bias_add", n)?,
        inner: check_u32("bias_add", inner.max(1))?,
        channels: check_u32("bias_add", channels.max(1))?,
        alpha: 0.0,
    };
    launch_1d(
        ctx,
        &kernel("bias_add"),
        bytemuck::bytes_of(&info),
        &[x, bias, &out],
        n as u64,
    )?;
    Ok(out)
}
