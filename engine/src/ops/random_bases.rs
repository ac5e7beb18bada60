//! The random-bases op family: project a gradient onto d random directions, expand
//! coordinates back, and materialise directions (for comparison), on engine tensors.
//! Dispatches by the bases' family (i.i.d. here, Fastfood to [`super::fastfood`]) and
//! then to the native cpu implementation or the WGSL shaders of
//! `rbd_kernels::random_bases` by where the operands live. The directions are
//! regenerated from (seed, step, compartment, direction, element) and never stored
//! (`docs/random-directions.md` specifies the stream), except a fixed basis asked for at
//! every step, which [`KeptBasis`] keeps on the cpu. No autodiff: these ops act on
//! parameters and gradients, outside the recorded graph.
//!
//! The stream and compartment types are re-exported here, so that optimisers speak
//! the engine alone.

use super::{fastfood, per_backend};
use crate::device::Device;
use crate::error::{EngineError, Result};
use crate::tensor::{cpu_tensor, gpu_tensor, operands, Tensor};
use rbd_kernels::random_bases as rb;
pub use rbd_kernels::random_bases::{
    check_compartments, is_partition, rbd_scale, total_dims, Bases, BasisFamily, Compartment,
    Distribution, DistributionKind, Fastfood, Generator, Stream,
};
use rbd_kernels::{GpuBuffer, GpuContext, GpuError};
use std::sync::Arc;

/// One step in the bases: the coordinates, the updated base and, when asked for, the
/// update itself.
pub(super) type Step = (Tensor, Tensor, Option<Tensor>);

/// Coordinates c = scale·Φᵀg (length Σ dims) of `g` in the directions of `bases`.
pub fn project(bases: &Bases, g: &Tensor) -> Result<Tensor> {
    if let Some(ff) = bases.fastfood() {
        return fastfood::project(&ff, g);
    }
    rb::check_compartments(bases.compartments, g.numel()).map_err(EngineError::Invalid)?;
    let shape = [bases.dims()];
    per_backend!(
        f32 "project",
        operands("project", &[g])?,
        |x| {
            let mut coords = vec![0f32; shape[0]];
            rb::project_cpu(bases, x[0], &mut coords);
            Ok(cpu_tensor(coords, &shape))
        },
        |ctx, x| Ok(gpu_tensor(&ctx, rb::project_gpu(&ctx, bases, &x[0])?, &shape)),
    )
}

/// base + alpha·scale·Φc.
pub fn expand(bases: &Bases, coords: &Tensor, alpha: f32, base: &Tensor) -> Result<Tensor> {
    if let Some(ff) = bases.fastfood() {
        return fastfood::expand(&ff, coords, alpha, base);
    }
    rb::check_compartments(bases.compartments, base.numel()).map_err(EngineError::Invalid)?;
    check_coords("expand", bases.dims(), coords)?;
    let shape = base.shape();
    per_backend!(
        f32 "expand",
        operands("expand", &[base, coords])?,
        |x| {
            let mut out = vec![0f32; x[0].len()];
            rb::expand_cpu(bases, x[1], alpha, x[0], &mut out);
            Ok(cpu_tensor(out, shape))
        },
        |ctx, x| Ok(gpu_tensor(&ctx, rb::expand_gpu(&ctx, bases, &x[1], alpha, &x[0])?, shape)),
    )
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
) -> Result<Step> {
    if let Some(ff) = bases.fastfood() {
        return fastfood::project_expand(&ff, g, alpha, base, with_delta);
    }
    check_step("project_expand", g, base)?;
    rb::check_compartments(bases.compartments, base.numel()).map_err(EngineError::Invalid)?;
    let sizes = (bases.dims(), base.shape());
    per_backend!(
        f32 "project_expand",
        operands("project_expand", &[g, base])?,
        |x| fused_cpu(sizes, with_delta, |out, delta| {
            rb::project_expand_cpu(bases, x[0], alpha, x[1], out, delta)
        }),
        |ctx, x| two_passes_gpu(
            &ctx,
            sizes,
            with_delta,
            || rb::project_gpu(&ctx, bases, &x[0]),
            |c, b| rb::expand_gpu(&ctx, bases, c, alpha, b),
            &x[1],
        ),
    )
}

/// A basis asked for at every step: FPD's fixed one. On the cpu its directions are
/// generated at the first step and kept, raw ([`rb::StoredBasis`], up to
/// [`rb::KEEP_LIMIT_BYTES`]), so that each later step reads d·D values instead of
/// generating them; bitwise [`project_expand`] either way (tested), so runs resume
/// across it. On wgpu (where generating is cheap), for Fastfood and packed-sign bases,
/// and for a basis over the limit: [`project_expand`] itself. RBD's basis is new every
/// step and is never kept.
pub struct KeptBasis {
    kept: Option<rb::StoredBasis>,
    regenerate: bool,
}

impl Default for KeptBasis {
    fn default() -> Self {
        KeptBasis::new()
    }
}

impl KeptBasis {
    /// Keeps the basis where it can, unless `RBD_KEEP_BASIS=off` ([`rb::KEEP_ENV`]).
    pub fn new() -> Self {
        KeptBasis {
            kept: None,
            regenerate: !rb::keeping(),
        }
    }

    /// Never keeps: every step regenerates the directions (to measure what keeping saves).
    pub fn regenerating() -> Self {
        KeptBasis {
            kept: None,
            regenerate: true,
        }
    }

    /// Bytes kept now (0 before the first cpu step, or where nothing is kept).
    pub fn bytes(&self) -> usize {
        self.kept.as_ref().map_or(0, rb::StoredBasis::bytes)
    }

    /// [`project_expand`] in `bases`, reading the kept directions where they are
    /// `bases`' (kept at this call if not yet).
    pub fn project_expand(
        &mut self,
        bases: &Bases,
        g: &Tensor,
        alpha: f32,
        base: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        if self.regenerate || bases.fastfood().is_some() || !matches!(g.device(), Device::Cpu) {
            return project_expand(bases, g, alpha, base);
        }
        check_step("project_expand", g, base)?;
        rb::check_compartments(bases.compartments, base.numel()).map_err(EngineError::Invalid)?;
        let sizes = (bases.dims(), base.shape());
        let plan = rb::CpuPlan::current().plan;
        if !self.kept.as_ref().is_some_and(|k| k.matches(bases)) {
            self.kept = rb::StoredBasis::generate(plan.simd, bases);
        }
        let kept = self.kept.as_ref();
        let (c, next, _) = per_backend!(
            f32 "project_expand",
            operands("project_expand", &[g, base])?,
            |x| fused_cpu(sizes, false, |out, _| match kept {
                Some(k) => rb::project_expand_stored(&plan, k, (bases, x[0], alpha), x[1], out, None),
                None => rb::project_expand_cpu(bases, x[0], alpha, x[1], out, None),
            }),
            |_ctx, _x| step_in_bases(bases, g, alpha, base, false),
        )?;
        Ok((c, next))
    }
}

/// A gradient and a base of the same length, or an error naming `op`.
pub(super) fn check_step(op: &'static str, g: &Tensor, base: &Tensor) -> Result<()> {
    if g.numel() == base.numel() {
        return Ok(());
    }
    Err(EngineError::Shape {
        op,
        msg: format!(
            "gradient of {} and base of {} values",
            g.numel(),
            base.numel()
        ),
    })
}

/// One coordinate per direction, or an error naming `op`.
pub(super) fn check_coords(op: &'static str, dims: usize, coords: &Tensor) -> Result<()> {
    if coords.numel() == dims {
        return Ok(());
    }
    Err(EngineError::Shape {
        op,
        msg: format!("{} coordinates for {dims} directions", coords.numel()),
    })
}

/// The cpu step of either family: `run(out, delta)` fills the updated base (and the
/// update) from one generation of the directions and returns the coordinates.
pub(super) fn fused_cpu(
    (dims, shape): (usize, &[usize]),
    with_delta: bool,
    run: impl FnOnce(&mut [f32], Option<&mut [f32]>) -> Vec<f32>,
) -> Result<Step> {
    let n = shape.iter().product();
    let mut out = vec![0f32; n];
    let mut delta = with_delta.then(|| vec![0f32; n]);
    let coords = run(&mut out, delta.as_deref_mut());
    Ok((
        cpu_tensor(coords, &[dims]),
        cpu_tensor(out, shape),
        delta.map(|d| cpu_tensor(d, shape)),
    ))
}

/// The wgpu step of either family: its two passes, `project()` then `expand(c, base)`;
/// the update is the expand pass on a zero base.
pub(super) fn two_passes_gpu(
    ctx: &Arc<GpuContext>,
    (dims, shape): (usize, &[usize]),
    with_delta: bool,
    project: impl FnOnce() -> std::result::Result<GpuBuffer, GpuError>,
    expand: impl Fn(&GpuBuffer, &GpuBuffer) -> std::result::Result<GpuBuffer, GpuError>,
    base: &GpuBuffer,
) -> Result<Step> {
    let coords = project()?;
    let out = expand(&coords, base)?;
    let delta = if with_delta {
        let n: usize = shape.iter().product();
        Some(expand(&coords, &ctx.zeros(n as u64 * 4)?)?)
    } else {
        None
    };
    Ok((
        gpu_tensor(ctx, coords, &[dims]),
        gpu_tensor(ctx, out, shape),
        delta.map(|d| gpu_tensor(ctx, d, shape)),
    ))
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
