//! WGSL launchers of the fused kernels (`wgsl/random_bases.wgsl`).
//!
//! * project: two dispatches for all compartments together, driven by a table of
//!   compartments (as expand's). `project_partial`: workgroup (compartment, chunk,
//!   group of [`DG`] directions) holds its chunk of g in registers, 64 threads × 8
//!   entries per sub-chunk, `subs` sub-chunks per workgroup, and writes one partial per
//!   direction after a fixed-order workgroup sum; then `project_reduce` sums each
//!   direction's partials over chunks in order and applies `scale`. Packed signs use
//!   `project_signs_partial` instead, which sums in the cpu's order (4096-entry chunks,
//!   64 accumulators, the cpu's tree), so their coordinates are bitwise the cpu's. Scratch:
//!   4·Σ dims·nchunks bytes. (One dispatch per compartment before; same sums.)
//! * expand: two dispatches for all compartments together, driven by a table of
//!   compartments uploaded with them. `expand_partial`: workgroup (compartment, block of
//!   512 entries, group of directions); each thread owns 8 entries and sums its group's
//!   directions in order, coordinates staged through workgroup memory 64 at a time, into
//!   one partial per (group, entry). `expand_reduce`: `out = base + p_0 + p_1 + …`,
//!   groups in order, `base` outside every compartment. With one group per compartment
//!   (CPU adapters, [`ExpandPlan::for_device`]) this is the single-pass order (every
//!   direction in order, then `base +`); GPUs split the directions into up to 16 groups
//!   so that a compartment has blocks × groups workgroups.

use super::CHUNK;
use super::{check_compartments, coord_offsets, total_dims, Bases, Compartment};
use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::launch::check_len;
use crate::rng::gpu::{constants, random_bases_kernel, Mulhi};
use crate::rng::{BlockKey, Distribution, MAX_STEP};
use crate::GpuError;

/// Threads per workgroup.
const WG: u64 = 64;
/// Units (4 entries) per thread per sub-chunk.
const UPT: u64 = 2;
/// Directions per project workgroup.
pub const DG: u64 = 8;
/// Units per project sub-chunk (`WG·UPT`; 512 entries).
pub const CHUNK_UNITS: u64 = WG * UPT;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    key0: u32,
    key1: u32,
    c2: u32,
    c3: u32,
    len: u32,
    dims: u32,
    first: u32,
    nchunks: u32,
    subs: u32,
    ngroups: u32,
    g_offset: u32,
    p_offset: u32,
    c_offset: u32,
    bern_t: u32,
    bern_hi: f32,
    bern_lo: f32,
    scale: f32,
    _pad: [u32; 3],
}

/// How the project pass tiles a compartment on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuPlan {
    /// Sub-chunks of 512 entries per workgroup: a chunk is `subs·512` entries.
    pub subs: u32,
}

impl GpuPlan {
    /// 16 sub-chunks (8192 entries per chunk) on CPU adapters, where few large
    /// workgroups are best, and 4 (2048) on GPUs, which need many workgroups.
    pub fn for_device(ctx: &GpuContext) -> GpuPlan {
        GpuPlan {
            subs: if ctx.adapter.is_cpu { 16 } else { 4 },
        }
    }
    /// Element chunks of a compartment of `len` entries: `subs·512` entries each, or
    /// the cpu's [`CHUNK`] for packed signs (whose project follows the cpu's order).
    fn nchunks(&self, distribution: Distribution, len: usize) -> u64 {
        if distribution == Distribution::Rademacher {
            return len.div_ceil(CHUNK) as u64;
        }
        (len as u64)
            .div_ceil(4)
            .div_ceil(CHUNK_UNITS * self.subs as u64)
    }
}

/// Bytes of scratch (the partials) that [`project_gpu`] allocates besides the
/// coordinates: 4·Σ_c dims_c·chunks_c with ⌈len_c/(512·subs)⌉ chunks (packed signs:
/// ⌈len_c/4096⌉), never d×D.
pub fn project_gpu_scratch_bytes(plan: GpuPlan, bases: &Bases) -> u64 {
    let dist = bases.stream.distribution;
    4 * bases
        .compartments
        .iter()
        .map(|c| c.dims as u64 * plan.nchunks(dist, c.len))
        .sum::<u64>()
}

fn kernel(ctx: &GpuContext, entry: &'static str) -> Kernel {
    random_bases_kernel(Mulhi::for_device(ctx), entry)
}

/// How expand splits each compartment's directions into groups whose partial sums
/// are added in group order (the f32 summation order; docs/random-directions.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpandPlan {
    /// Most direction groups per compartment (at least 1).
    pub max_groups: u32,
}

/// Scratch bytes that expand's partials may take (a compartment gets fewer groups
/// where `max_groups` would need more).
const EXPAND_SCRATCH_BYTES: u64 = 64 << 20;

impl ExpandPlan {
    /// One group on CPU adapters (the order of a single pass over the directions;
    /// llvmpipe has parallelism enough in the element blocks), 16 on GPUs.
    pub fn for_device(ctx: &GpuContext) -> ExpandPlan {
        ExpandPlan {
            max_groups: if ctx.adapter.is_cpu { 1 } else { 16 },
        }
    }

    /// `(groups, directions per group)` of a compartment with `dims` directions, given
    /// the parameters `n_total` all compartments cover (bounding the scratch).
    fn groups(&self, dims: usize, n_total: usize) -> (u64, u64) {
        let by_memory = (EXPAND_SCRATCH_BYTES / (4 * n_total.max(1) as u64)).max(1);
        let want = (self.max_groups.max(1) as u64)
            .min(by_memory)
            .min(dims.max(1) as u64);
        let per_group = (dims.max(1) as u64).div_ceil(want);
        ((dims.max(1) as u64).div_ceil(per_group), per_group)
    }
}

/// Words per row of the expand kernels' compartment table (`TABLE_ROW` in the WGSL).
const TABLE_ROW: usize = 16;

fn u32_of(what: &str, v: u64) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| GpuError::TooLarge {
        what: what.to_string(),
        bytes: v,
        limit: u32::MAX as u64,
    })
}

fn base_info(bases: &Bases, c: &Compartment) -> Result<Info, GpuError> {
    if bases.step > MAX_STEP {
        return Err(GpuError::Invalid(format!(
            "step {} exceeds 2^32 - 1",
            bases.step
        )));
    }
    let bk: BlockKey = bases.block_key(c);
    let p = bases.stream.distribution.params();
    Ok(Info {
        key0: bk.key[0],
        key1: bk.key[1],
        c2: bk.c2,
        c3: bk.c3,
        len: u32_of("compartment length", c.len as u64)?,
        dims: u32_of("directions", c.dims as u64)?,
        first: u32_of("first direction", c.first as u64)?,
        g_offset: u32_of("compartment offset", c.offset as u64)?,
        bern_t: p.threshold,
        bern_hi: p.hi,
        bern_lo: p.lo,
        ..Default::default()
    })
}

fn check(comps: &[Compartment], n: usize) -> Result<(), GpuError> {
    check_compartments(comps, n).map_err(GpuError::Invalid)
}

/// `coords[j] = scale · Σ_e raw_j[e]·g[e]` on the device (see [`super::project_cpu`]);
/// returns a buffer of Σ dims f32. `g` must hold the parameters the compartments cover.
pub fn project_gpu(ctx: &GpuContext, bases: &Bases, g: &GpuBuffer) -> Result<GpuBuffer, GpuError> {
    project_gpu_with(ctx, GpuPlan::for_device(ctx), bases, g)
}

/// [`project_gpu`] with an explicit tiling.
pub fn project_gpu_with(
    ctx: &GpuContext,
    plan: GpuPlan,
    bases: &Bases,
    g: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    bases.expect_iid();
    let (stream, comps) = (bases.stream, bases.compartments);
    let n = comps.iter().map(|c| c.offset + c.len).max().unwrap_or(0);
    check(comps, n)?;
    check_len("project g", g, n)?;
    let consts = constants(stream.generator, stream.distribution);
    let dims_total = total_dims(comps);
    let coords = ctx.alloc(dims_total.max(1) as u64 * 4)?;
    let partials = ctx.alloc(project_gpu_scratch_bytes(plan, bases).max(4))?;
    let offsets = coord_offsets(comps);
    // One table row per compartment with directions (the layout of the expand table;
    // T_BLOCKS = chunks, T_GROUPS = groups of DG directions).
    let mut table: Vec<u32> = Vec::with_capacity(comps.len() * TABLE_ROW);
    let (mut wg, mut p_offset) = (0u64, 0u64);
    let mut first_info = None;
    for (c, &c_offset) in comps.iter().zip(&offsets) {
        if c.dims == 0 {
            continue;
        }
        let nchunks = plan.nchunks(stream.distribution, c.len);
        let ngroups = (c.dims as u64).div_ceil(DG);
        let info = base_info(bases, c)?;
        table.extend_from_slice(&[
            info.key0,
            info.key1,
            info.c2,
            info.c3,
            info.len,
            info.dims,
            info.first,
            info.g_offset,
            u32_of("coords", c_offset as u64)?,
            u32_of("direction groups", ngroups)?,
            0,
            u32_of("chunks", nchunks)?,
            u32_of("workgroups", wg)?,
            u32_of("partials", p_offset)?,
            0,
            0,
        ]);
        wg += nchunks * ngroups;
        p_offset += nchunks * c.dims as u64;
        first_info.get_or_insert(info);
    }
    let Some(mut info) = first_info else {
        return Ok(coords);
    };
    let ncomps = table.len() / TABLE_ROW;
    let table = ctx.upload(bytemuck::cast_slice(&table))?;
    info.len = ncomps as u32;
    info.dims = u32_of("directions", dims_total as u64)?;
    info.nchunks = u32_of("workgroups", wg)?;
    info.subs = plan.subs;
    info.scale = bases.scale;
    if wg > 0 {
        ctx.dispatch(
            &kernel(
                ctx,
                if stream.distribution == Distribution::Rademacher {
                    "project_signs_partial"
                } else {
                    "project_partial"
                },
            ),
            &consts,
            bytemuck::bytes_of(&info),
            &[g, &table, &partials],
            ctx.grid(wg)?,
        )?;
    }
    ctx.dispatch(
        &kernel(ctx, "project_reduce"),
        &consts,
        bytemuck::bytes_of(&info),
        &[&partials, &table, &coords],
        ctx.grid((dims_total as u64).div_ceil(WG))?,
    )?;
    Ok(coords)
}

/// `out = base + alpha·scale·Σ_j coords[j]·raw_j` on the device (see
/// [`super::expand_cpu`]), tiled by [`ExpandPlan::for_device`]. The parameter count is
/// `base`'s length (`base.bytes()/4`); entries outside every compartment are copied
/// from `base`.
pub fn expand_gpu(
    ctx: &GpuContext,
    bases: &Bases,
    coords: &GpuBuffer,
    alpha: f32,
    base: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    expand_gpu_with(ctx, ExpandPlan::for_device(ctx), bases, coords, alpha, base)
}

/// [`expand_gpu`] with an explicit plan: two dispatches whatever the number of
/// compartments (see the module docs), scratch 4·Σ_c groups_c·len_c bytes.
pub fn expand_gpu_with(
    ctx: &GpuContext,
    plan: ExpandPlan,
    bases: &Bases,
    coords: &GpuBuffer,
    alpha: f32,
    base: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    bases.expect_iid();
    let (stream, comps) = (bases.stream, bases.compartments);
    let n = (base.bytes() / 4) as usize;
    check(comps, n)?;
    check_len("expand coords", coords, total_dims(comps))?;
    let consts = constants(stream.generator, stream.distribution);
    let out = ctx.alloc(n.max(1) as u64 * 4)?;
    if n == 0 {
        return Ok(out);
    }
    let covered: usize = comps.iter().map(|c| c.len).sum();
    let offsets = coord_offsets(comps);
    let mut table: Vec<u32> = Vec::with_capacity(comps.len() * TABLE_ROW);
    let (mut wg, mut p_offset) = (0u64, 0u64);
    let mut first_info = None;
    for (c, &c_offset) in comps.iter().zip(&offsets) {
        if c.len == 0 {
            continue;
        }
        let info = base_info(bases, c)?;
        let (groups, per_group) = plan.groups(c.dims, covered);
        let blocks = (c.len as u64).div_ceil(4).div_ceil(CHUNK_UNITS);
        table.extend_from_slice(&[
            info.key0,
            info.key1,
            info.c2,
            info.c3,
            info.len,
            info.dims,
            info.first,
            info.g_offset,
            u32_of("coords", c_offset as u64)?,
            u32_of("direction groups", groups)?,
            u32_of("directions per group", per_group)?,
            u32_of("element blocks", blocks)?,
            u32_of("workgroups", wg)?,
            u32_of("expand partials", p_offset)?,
            0,
            0,
        ]);
        wg += blocks * groups;
        p_offset += groups * c.len as u64;
        first_info.get_or_insert(info);
    }
    let ncomps = table.len() / TABLE_ROW;
    if ncomps == 0 {
        ctx.copy(base, 0, &out, 0, n as u64 * 4)?;
        return Ok(out);
    }
    let table = ctx.upload(bytemuck::cast_slice(&table))?;
    let partials = ctx.alloc(p_offset * 4)?;
    let mut info = first_info.expect("a compartment");
    info.len = ncomps as u32;
    info.dims = u32_of("parameters", n as u64)?;
    info.nchunks = u32_of("workgroups", wg)?;
    info.scale = alpha * bases.scale;
    ctx.dispatch(
        &kernel(ctx, "expand_partial"),
        &consts,
        bytemuck::bytes_of(&info),
        &[coords, &table, &partials],
        ctx.grid(wg)?,
    )?;
    ctx.dispatch(
        &kernel(ctx, "expand_reduce"),
        &consts,
        bytemuck::bytes_of(&info),
        &[base, &table, &partials, &out],
        ctx.grid((n as u64).div_ceil(WG))?,
    )?;
    Ok(out)
}

/// Materialises the directions on the device, compartment after compartment (see
/// [`super::generate_cpu`]): a buffer of Σ dims·len f32, compartment `c`'s block
/// holding `scale·raw_{first+j}[e]` at `j·len + e`.
pub fn generate_gpu(ctx: &GpuContext, bases: &Bases) -> Result<GpuBuffer, GpuError> {
    bases.expect_iid();
    let comps = bases.compartments;
    let n = comps.iter().map(|c| c.offset + c.len).max().unwrap_or(0);
    check(comps, n)?;
    let total = bases.generated_len() as u64;
    u32_of("generate output", total)?;
    let out = ctx.alloc(total.max(1) * 4)?;
    let consts = constants(bases.stream.generator, bases.stream.distribution);
    let mut at = 0u64;
    for comp in comps {
        let size = comp.dims as u64 * comp.len as u64;
        if size == 0 {
            continue;
        }
        let per_dir = (comp.len as u64).div_ceil(4).div_ceil(WG);
        let mut info = base_info(bases, comp)?;
        info.nchunks = u32_of("workgroups", per_dir)?;
        info.scale = bases.scale;
        info.p_offset = u32_of("generate output", at)?;
        ctx.dispatch(
            &kernel(ctx, "generate"),
            &consts,
            bytemuck::bytes_of(&info),
            &[&out],
            ctx.grid(per_dir * comp.dims as u64)?,
        )?;
        at += size;
    }
    Ok(out)
}
