//! The random-bases op family: project a gradient onto d random directions, expand
//! coordinates back, and materialise directions (for comparison), on engine tensors.
//! Dispatches by the bases' family (i.i.d. here, Fastfood to [`super::fastfood`]) and
//! then to the native cpu implementation or the WGSL shaders of
//! `rbd_kernels::random_bases` by where the operands live. The directions are
//! regenerated from (seed, step, compartment, direction, element) and never stored
//! (`docs/random-directions.md` specifies the stream). No autodiff: these ops act on
//! parameters and gradients, outside the recorded graph.
//!
//! The stream and compartment types are re-exported here, so that optimisers speak
//! the engine alone.

use super::fastfood;
use crate::device::Device;
use crate::error::{EngineError, Result};
use crate::tensor::Tensor;
use rbd_kernels::random_bases as rb;
pub use rbd_kernels::random_bases::{
    check_compartments, is_partition, rbd_scale, total_dims, Bases, BasisFamily, Compartment,
    Distribution, DistributionKind, Fastfood, Generator, Stream,
};

fn cpu<'a>(t: &'a Tensor, what: &str) -> Result<&'a [f32]> {
    t.cpu_f32().ok_or_else(|| {
        EngineError::Invalid(format!(
            "{what}: expected an f32 tensor, got {}",
            t.describe()
        ))
    })
}

/// Coordinates c = scale·Φᵀg (length Σ dims) of `g` in the directions of `bases`.
pub fn project(bases: &Bases, g: &Tensor) -> Result<Tensor> {
    if let Some(ff) = bases.fastfood() {
        return fastfood::project(&ff, g);
    }
    crate::profile::op_begin("project");
    let dims = bases.dims();
    rb::check_compartments(bases.compartments, g.numel()).map_err(EngineError::Invalid)?;
    match g.gpu_buffer() {
        Some((ctx, buf)) => {
            let out = rb::project_gpu(ctx, bases, buf)?;
            Tensor::from_gpu(ctx, out, &[dims])
        }
        None => {
            let mut coords = vec![0f32; dims];
            rb::project_cpu(bases, cpu(g, "project")?, &mut coords);
            Tensor::from_cpu(coords, &[dims])
        }
    }
}

/// base + alpha·scale·Φc.
pub fn expand(bases: &Bases, coords: &Tensor, alpha: f32, base: &Tensor) -> Result<Tensor> {
    if let Some(ff) = bases.fastfood() {
        return fastfood::expand(&ff, coords, alpha, base);
    }
    crate::profile::op_begin("expand");
    rb::check_compartments(bases.compartments, base.numel()).map_err(EngineError::Invalid)?;
    if coords.numel() != bases.dims() {
        return Err(EngineError::Shape {
            op: "expand",
            msg: format!(
                "{} coordinates for {} directions",
                coords.numel(),
                bases.dims()
            ),
        });
    }
    match (base.gpu_buffer(), coords.gpu_buffer()) {
        (Some((ctx, b)), Some((_, c))) => {
            let out = rb::expand_gpu(ctx, bases, c, alpha, b)?;
            Tensor::from_gpu(ctx, out, base.shape())
        }
        (None, None) => {
            let b = cpu(base, "expand")?;
            let mut out = vec![0f32; b.len()];
            rb::expand_cpu(bases, cpu(coords, "expand")?, alpha, b, &mut out);
            Tensor::from_cpu(out, base.shape())
        }
        _ => Err(EngineError::Mismatch {
            op: "expand",
            a: base.describe(),
            b: coords.describe(),
        }),
    }
}

/// One step in the random bases: `c = scale·Φᵀg` and `base + alpha·scale·Φc`, returned
/// as (c, updated base); the same values as [`project`] then [`expand`]. On the cpu
/// every direction entry is generated once (blocks of directions kept in cache,
/// bitwise equal to the two passes); on wgpu the two passes regenerate them (on a GPU
/// generation is cheap and a grid-wide sync between the passes is not).
pub fn project_expand(
    bases: &Bases,
    g: &Tensor,
    alpha: f32,
    base: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (c, next, _) = step_in_bases(bases, g, alpha, base, false)?;
    Ok((c, next))
}

/// [`project_expand`] that also returns the update `alpha·scale·Φc` itself (bitwise
/// [`expand`] on a zero base): on the cpu from the same single generation, so the
/// update vector (for the gradient correlation) costs no second pass.
pub fn project_expand_delta(
    bases: &Bases,
    g: &Tensor,
    alpha: f32,
    base: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (c, next, delta) = step_in_bases(bases, g, alpha, base, true)?;
    Ok((c, next, delta.expect("delta requested")))
}

fn step_in_bases(
    bases: &Bases,
    g: &Tensor,
    alpha: f32,
    base: &Tensor,
    with_delta: bool,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    if let Some(ff) = bases.fastfood() {
        return fastfood::project_expand(&ff, g, alpha, base, with_delta);
    }
    if g.numel() != base.numel() {
        return Err(EngineError::Shape {
            op: "project_expand",
            msg: format!(
                "gradient of {} and base of {} values",
                g.numel(),
                base.numel()
            ),
        });
    }
    rb::check_compartments(bases.compartments, base.numel()).map_err(EngineError::Invalid)?;
    match (g.gpu_buffer(), base.gpu_buffer()) {
        (None, None) => {
            crate::profile::op_begin("project_expand");
            let (g, b) = (cpu(g, "project_expand")?, cpu(base, "project_expand")?);
            let mut out = vec![0f32; b.len()];
            let mut delta = with_delta.then(|| vec![0f32; b.len()]);
            let coords = rb::project_expand_cpu(bases, g, alpha, b, &mut out, delta.as_deref_mut());
            Ok((
                Tensor::from_cpu(coords, &[bases.dims()])?,
                Tensor::from_cpu(out, base.shape())?,
                delta
                    .map(|d| Tensor::from_cpu(d, base.shape()))
                    .transpose()?,
            ))
        }
        _ => {
            let coords = project(bases, g)?;
            let out = expand(bases, &coords, alpha, base)?;
            let delta = if with_delta {
                let zeros = Tensor::zeros(&base.device(), base.shape(), base.dtype())?;
                Some(expand(bases, &coords, alpha, &zeros)?)
            } else {
                None
            };
            Ok((coords, out, delta))
        }
    }
}

/// The directions of `bases`, materialised (comparison only): compartment after
/// compartment, each a `dims × len` block, as a flat tensor of Σ dims·len values.
pub fn generate(device: &Device, bases: &Bases) -> Result<Tensor> {
    if let Some(ff) = bases.fastfood() {
        // Each compartment's dims × len block, flattened, one after the other.
        let parts = (0..bases.compartments.len())
            .map(|which| fastfood::generate(device, &ff, which))
            .collect::<Result<Vec<_>>>()?;
        return match parts.as_slice() {
            [one] => one.reshape(&[bases.generated_len()]),
            _ => Tensor::cat_flat(&parts.iter().collect::<Vec<_>>()),
        };
    }
    crate::profile::op_begin("generate");
    let shape = [bases.generated_len()];
    match device {
        Device::Wgpu(ctx) => Tensor::from_gpu(ctx, rb::generate_gpu(ctx, bases)?, &shape),
        Device::Cpu => {
            let mut out = vec![0f32; bases.generated_len()];
            rb::generate_cpu(bases, &mut out);
            Tensor::from_cpu(out, &shape)
        }
    }
}
