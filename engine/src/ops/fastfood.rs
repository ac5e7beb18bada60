//! The Fastfood random-bases ops on engine tensors: the same project, expand, fused
//! step and materialisation as [`super::random_bases`], for the structured family of
//! `rbd_kernels::fastfood` (each step's directions are columns of stacked H G Π H B
//! blocks, applied in O(D log L)). Dispatches to the native or WGSL transforms by where
//! the operands live; no autodiff.

use crate::device::Device;
use crate::error::{EngineError, Result};
use crate::tensor::Tensor;
use rbd_kernels::fastfood::check_fastfood;
pub use rbd_kernels::fastfood::{check_distribution, Fastfood, FastfoodBases};
use rbd_kernels::random_bases::total_dims;

fn cpu<'a>(t: &'a Tensor, what: &str) -> Result<&'a [f32]> {
    t.cpu_f32().ok_or_else(|| {
        EngineError::Invalid(format!(
            "{what}: expected an f32 tensor, got {}",
            t.describe()
        ))
    })
}

fn checked(b: &FastfoodBases, n: usize) -> Result<()> {
    check_fastfood(b.comps, n, b.ff).map_err(EngineError::Invalid)?;
    check_distribution(b.stream.distribution).map_err(EngineError::Invalid)
}

/// Coordinates c = m·Mᵀg (length Σ dims) of `g` in the basis.
pub fn project(b: &FastfoodBases, g: &Tensor) -> Result<Tensor> {
    crate::profile::op_begin("fastfood_project");
    checked(b, g.numel())?;
    let dims = total_dims(b.comps);
    match g.gpu_buffer() {
        Some((ctx, buf)) => Tensor::from_gpu(ctx, b.project_gpu(ctx, buf)?, &[dims]),
        None => {
            let mut coords = vec![0f32; dims];
            b.project_cpu(cpu(g, "fastfood project")?, &mut coords);
            Tensor::from_cpu(coords, &[dims])
        }
    }
}

fn check_coords(b: &FastfoodBases, coords: &Tensor) -> Result<()> {
    if coords.numel() != total_dims(b.comps) {
        return Err(EngineError::Shape {
            op: "fastfood expand",
            msg: format!(
                "{} coordinates for {} directions",
                coords.numel(),
                total_dims(b.comps)
            ),
        });
    }
    Ok(())
}

/// base + alpha·P·c.
pub fn expand(b: &FastfoodBases, coords: &Tensor, alpha: f32, base: &Tensor) -> Result<Tensor> {
    crate::profile::op_begin("fastfood_expand");
    checked(b, base.numel())?;
    check_coords(b, coords)?;
    match (base.gpu_buffer(), coords.gpu_buffer()) {
        (Some((ctx, bb)), Some((_, cb))) => {
            Tensor::from_gpu(ctx, b.expand_gpu(ctx, cb, alpha, bb)?, base.shape())
        }
        (None, None) => {
            let bv = cpu(base, "fastfood expand")?;
            let mut out = vec![0f32; bv.len()];
            b.expand_cpu(cpu(coords, "fastfood expand")?, alpha, bv, &mut out);
            Tensor::from_cpu(out, base.shape())
        }
        _ => Err(EngineError::Mismatch {
            op: "fastfood expand",
            a: base.describe(),
            b: coords.describe(),
        }),
    }
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
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    if g.numel() != base.numel() {
        return Err(EngineError::Shape {
            op: "fastfood project_expand",
            msg: format!(
                "gradient of {} and base of {} values",
                g.numel(),
                base.numel()
            ),
        });
    }
    checked(b, base.numel())?;
    match (g.gpu_buffer(), base.gpu_buffer()) {
        (None, None) => {
            crate::profile::op_begin("fastfood_project_expand");
            let (gv, bv) = (
                cpu(g, "fastfood project_expand")?,
                cpu(base, "fastfood project_expand")?,
            );
            let dims = total_dims(b.comps);
            let mut coords = vec![0f32; dims];
            let mut out = vec![0f32; bv.len()];
            let mut delta = with_delta.then(|| vec![0f32; bv.len()]);
            b.project_expand_cpu(gv, alpha, bv, (&mut coords, &mut out), delta.as_deref_mut());
            Ok((
                Tensor::from_cpu(coords, &[dims])?,
                Tensor::from_cpu(out, base.shape())?,
                delta
                    .map(|d| Tensor::from_cpu(d, base.shape()))
                    .transpose()?,
            ))
        }
        _ => {
            let coords = project(b, g)?;
            let out = expand(b, &coords, alpha, base)?;
            let delta = if with_delta {
                let zeros = Tensor::zeros(&base.device(), base.shape(), base.dtype())?;
                Some(expand(b, &coords, alpha, &zeros)?)
            } else {
                None
            };
            Ok((coords, out, delta))
        }
    }
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
