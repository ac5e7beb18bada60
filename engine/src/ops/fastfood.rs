//! The Fastfood random-bases ops on engine tensors: the same project, expand, fused
//! step and materialisation as [`super::random_bases`], for the structured family of
//! `rbd_kernels::fastfood` (each step's directions are columns of stacked H G Π H B
//! blocks, applied in O(D log L)). Dispatches to the native or WGSL transforms by where
//! the operands live; no autodiff.

use super::per_backend;
use super::random_bases::{check_coords, check_step, fused_cpu, two_passes_gpu, Step};
use crate::device::Device;
use crate::error::{EngineError, Result};
use crate::tensor::{cpu_tensor, gpu_tensor, operands, Tensor};
use rbd_kernels::fastfood::check_fastfood;
pub use rbd_kernels::fastfood::{check_distribution, Fastfood, FastfoodBases};
use rbd_kernels::random_bases::total_dims;

fn checked(b: &FastfoodBases, n: usize) -> Result<()> {
    check_fastfood(b.comps, n, b.ff).map_err(EngineError::Invalid)?;
    check_distribution(b.stream.distribution).map_err(EngineError::Invalid)
}

/// Coordinates c = m·Mᵀg (length Σ dims) of `g` in the basis.
pub fn project(b: &FastfoodBases, g: &Tensor) -> Result<Tensor> {
    checked(b, g.numel())?;
    let shape = [total_dims(b.comps)];
    per_backend!(
        f32 "fastfood_project",
        operands("fastfood_project", &[g])?,
        |x| {
            let mut coords = vec![0f32; shape[0]];
            b.project_cpu(x[0], &mut coords);
            Ok(cpu_tensor(coords, &shape))
        },
        |ctx, x| Ok(gpu_tensor(&ctx, b.project_gpu(&ctx, &x[0])?, &shape)),
    )
}

/// base + alpha·P·c.
pub fn expand(b: &FastfoodBases, coords: &Tensor, alpha: f32, base: &Tensor) -> Result<Tensor> {
    checked(b, base.numel())?;
    check_coords("fastfood_expand", total_dims(b.comps), coords)?;
    let shape = base.shape();
    per_backend!(
        f32 "fastfood_expand",
        operands("fastfood_expand", &[base, coords])?,
        |x| {
            let mut out = vec![0f32; x[0].len()];
            b.expand_cpu(x[1], alpha, x[0], &mut out);
            Ok(cpu_tensor(out, shape))
        },
        |ctx, x| Ok(gpu_tensor(&ctx, b.expand_gpu(&ctx, &x[1], alpha, &x[0])?, shape)),
    )
}

/// One step: (c = m·Mᵀg, base + alpha·P·c, and with `with_delta` the update alpha·P·c
/// itself, bitwise expand on a zero base). The cpu draws each block's parameters once
/// for both passes; wgpu runs the two passes.
pub fn project_expand(
    b: &FastfoodBases,
    g: &Tensor,
    alpha: f32,
    base: &Tensor,
    with_delta: bool,
) -> Result<Step> {
    check_step("fastfood_project_expand", g, base)?;
    checked(b, base.numel())?;
    let sizes = (total_dims(b.comps), base.shape());
    per_backend!(
        f32 "fastfood_project_expand",
        operands("fastfood_project_expand", &[g, base])?,
        |x| fused_cpu(sizes, with_delta, |out, delta| {
            let mut coords = vec![0f32; sizes.0];
            b.project_expand_cpu(x[0], alpha, x[1], (&mut coords, out), delta);
            coords
        }),
        |ctx, x| two_passes_gpu(
            &ctx,
            sizes,
            with_delta,
            || b.project_gpu(&ctx, &x[0]),
            |c, base| b.expand_gpu(&ctx, c, alpha, base),
            &x[1],
        ),
    )
}

/// The `dims × len` directions of `b.comps[which]`, materialised (comparison only).
pub fn generate(device: &Device, b: &FastfoodBases, which: usize) -> Result<Tensor> {
    crate::profile::op_begin("fastfood_generate");
    let comp = b.comps.get(which).ok_or_else(|| {
        EngineError::Invalid(format!(
            "fastfood generate: no compartment {which} of {}",
            b.comps.len()
        ))
    })?;
    checked(
        &FastfoodBases {
            comps: std::slice::from_ref(comp),
            ..*b
        },
        comp.offset + comp.len,
    )?;
    let shape = [comp.dims, comp.len];
    match device {
        Device::Wgpu(ctx) => Tensor::from_gpu(ctx, b.generate_gpu(ctx, which)?, &shape),
        Device::Cpu => {
            let mut out = vec![0f32; comp.dims * comp.len];
            b.generate_cpu(which, &mut out);
            Tensor::from_cpu(out, &shape)
        }
    }
}
