//! WGSL launchers of the Fastfood transforms (`wgsl/fastfood.wgsl`): the blocks of
//! every (compartment, group) region side by side in scratch buffers, a tile of
//! [`TILE`] entries per workgroup in workgroup memory, butterfly stages beyond a tile
//! one dispatch each. Project and expand are each: permutations, first half,
//! (global stages), second half, (global stages), a fixed-order reduction. Scratch:
//! two f32 and two u32 buffers of the padded length (16 bytes per padded parameter
//! and group), never d×D.

use super::{check_fastfood, entry_scale, FastfoodBases};
use crate::gpu::{GpuBuffer, GpuContext, Kernel};
use crate::launch::check_len;
use crate::random_bases::{coord_offsets, total_dims, Compartment};
use crate::rng::gpu::{constants, Mulhi};
use crate::rng::MAX_STEP;
use crate::GpuError;

/// Entries per workgroup tile (the butterflies of stages below it run in workgroup
/// memory: 8 KiB).
pub const TILE: usize = 2048;
const WG: u64 = 64;

macro_rules! fastfood_src {
    ($mulhi:literal) => {
        concat!(
            include_str!($mulhi),
            "\n",
            include_str!("../../wgsl/rng_philox.wgsl"),
            "\n",
            include_str!("../../wgsl/rng_threefry.wgsl"),
            "\n",
            include_str!("../../wgsl/random_bases_dist.wgsl"),
            "\n",
            include_str!("../../wgsl/fastfood.wgsl")
        )
    };
}

/// The Fastfood kernels with the emulated `mulhi32`.
pub const FASTFOOD_SRC: &str = fastfood_src!("../../wgsl/rng_mulhi_u32.wgsl");
/// The Fastfood kernels with the native 64-bit `mulhi32`.
pub const FASTFOOD_I64_SRC: &str = fastfood_src!("../../wgsl/rng_mulhi_u64.wgsl");

fn kernel(ctx: &GpuContext, entry: &'static str) -> Kernel {
    match Mulhi::for_device(ctx) {
        Mulhi::Emulated => Kernel {
            module: "fastfood",
            source: FASTFOOD_SRC,
            entry,
            // Bounds checks kept: the kernel has not been audited for the unchecked build.
            trusted: false,
        },
        Mulhi::Native64 => Kernel {
            module: "fastfood_i64",
            source: FASTFOOD_I64_SRC,
            entry,
            // Bounds checks kept: the kernel has not been audited for the unchecked build.
            trusted: false,
        },
    }
}

/// `Info` of `wgsl/fastfood.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    l: u32,
    log2l: u32,
    nregions: u32,
    total: u32,
    h: u32,
    mode: u32,
    n: u32,
    chunk_blocks: u32,
    bern_t: u32,
    bern_hi: f32,
    bern_lo: f32,
    scale: f32,
    g_in_first: u32,
    gen_row: u32,
    gen_len: u32,
    _pad: u32,
}

const MODE_PROJECT: u32 = 0;
const MODE_EXPAND: u32 = 1;
const MODE_GENERATE: u32 = 2;

fn too_large(what: &str, v: u64) -> GpuError {
    GpuError::TooLarge {
        what: what.to_string(),
        bytes: v,
        limit: u32::MAX as u64,
    }
}

fn u32_of(what: &str, v: u64) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| too_large(what, v))
}

/// The regions of a call: one table row (16 words) per (compartment, group) with
/// directions, their blocks one after another.
struct Layout {
    table: Vec<u32>,
    nregions: u32,
    total: u32,
}

fn layout(b: &FastfoodBases) -> Result<Layout, GpuError> {
    if b.step > MAX_STEP {
        return Err(GpuError::Invalid(format!(
            "step {} exceeds 2^32 - 1",
            b.step
        )));
    }
    let offsets = coord_offsets(b.comps);
    let mut table = Vec::new();
    let mut total = 0u64;
    for (c, &c_offset) in b.comps.iter().zip(&offsets) {
        if c.len == 0 || c.dims == 0 {
            continue;
        }
        let key = b.stream.block_key(b.step, c.index);
        let nb = b.ff.blocks(c.len) as u64;
        for q in b.ff.groups(c) {
            table.extend_from_slice(&[
                key.key[0],
                key.key[1],
                key.c2,
                key.c3,
                u32_of("compartment length", c.len as u64)?,
                u32_of("directions", c.dims as u64)?,
                u32_of("first direction", c.first as u64)?,
                u32_of("compartment offset", c.offset as u64)?,
                u32_of("coordinates", c_offset as u64)?,
                q as u32,
                u32_of("blocks", nb)?,
                u32_of("blocks", total)?,
                0,
                0,
                0,
                0,
            ]);
            total += nb;
        }
    }
    u32_of("fastfood scratch entries", total * b.ff.block() as u64)?;
    Ok(Layout {
        nregions: (table.len() / 16) as u32,
        table,
        total: total as u32,
    })
}

/// One call's device state: the table, the permutations and what every dispatch
/// shares.
struct Run<'a> {
    ctx: &'a GpuContext,
    consts: [(&'static str, f64); 2],
    info: Info,
    table: GpuBuffer,
    entries: u64,
}

impl<'a> Run<'a> {
    fn new(ctx: &'a GpuContext, b: &FastfoodBases, lay: &Layout) -> Result<Self, GpuError> {
        let p = b.stream.distribution.params();
        let l = b.ff.block();
        Ok(Run {
            ctx,
            consts: constants(b.stream.generator, b.stream.distribution),
            info: Info {
                l: l as u32,
                log2l: b.ff.log2_block(),
                nregions: lay.nregions,
                total: lay.total,
                chunk_blocks: b.ff.chunk_blocks() as u32,
                bern_t: p.threshold,
                bern_hi: p.hi,
                bern_lo: p.lo,
                ..Default::default()
            },
            table: ctx.upload(bytemuck::cast_slice(&lay.table))?,
            entries: lay.total as u64 * l as u64,
        })
    }

    fn dispatch(
        &self,
        entry: &'static str,
        info: Info,
        bufs: &[&GpuBuffer],
        groups: u64,
    ) -> Result<(), GpuError> {
        self.ctx.dispatch(
            &kernel(self.ctx, entry),
            &self.consts,
            bytemuck::bytes_of(&info),
            bufs,
            self.ctx.grid(groups)?,
        )
    }

    /// π and π⁻¹ of every block.
    fn permutations(&self) -> Result<(GpuBuffer, GpuBuffer), GpuError> {
        let perm = self.ctx.alloc(self.entries * 4)?;
        let inv = self.ctx.alloc(self.entries * 4)?;
        self.dispatch(
            "ff_perm",
            self.info,
            &[&self.table, &perm, &inv],
            (self.info.total as u64).div_ceil(WG),
        )?;
        Ok((perm, inv))
    }

    fn tiles(&self) -> u64 {
        self.entries.div_ceil(TILE as u64)
    }

    /// The butterfly stages h ≥ TILE, in order, in place.
    fn global_stages(&self, x: &GpuBuffer) -> Result<(), GpuError> {
        let mut h = TILE as u32;
        while h < self.info.l {
            let info = Info { h, ..self.info };
            self.dispatch(
                "ff_stage",
                info,
                &[&self.table, x],
                (self.entries / 2).div_ceil(WG),
            )?;
            h *= 2;
        }
        Ok(())
    }

    /// Both halves of the transform (project: Mᵀ without B; expand: M).
    fn transform(
        &self,
        mode: u32,
        input: &GpuBuffer,
        a: f32,
        (perm, inv): (&GpuBuffer, &GpuBuffer),
    ) -> Result<GpuBuffer, GpuError> {
        let x = self.ctx.alloc(self.entries * 4)?;
        let fits = self.info.l as usize <= TILE;
        let first = Info {
            mode,
            scale: a,
            g_in_first: u32::from(mode == MODE_PROJECT && fits),
            ..self.info
        };
        self.dispatch("ff_first", first, &[&self.table, input, &x], self.tiles())?;
        self.global_stages(&x)?;
        if mode == MODE_PROJECT && !fits {
            self.dispatch(
                "ff_diag",
                self.info,
                &[&self.table, &x],
                self.entries.div_ceil(WG),
            )?;
        }
        let y = self.ctx.alloc(self.entries * 4)?;
        let second = Info { mode, ..self.info };
        self.dispatch(
            "ff_second",
            second,
            &[&self.table, &x, &y, perm, inv],
            self.tiles(),
        )?;
        self.global_stages(&y)?;
        Ok(y)
    }
}

fn check(b: &FastfoodBases, n: usize) -> Result<(), GpuError> {
    check_fastfood(b.comps, n, b.ff).map_err(GpuError::Invalid)
}

impl FastfoodBases<'_> {
    /// [`Self::project_cpu`] on the device: a buffer of Σ dims coordinates, bitwise
    /// the cpu's when the diagonal is (uniform, Bernoulli).
    pub fn project_gpu(&self, ctx: &GpuContext, g: &GpuBuffer) -> Result<GpuBuffer, GpuError> {
        let n = self
            .comps
            .iter()
            .map(|c| c.offset + c.len)
            .max()
            .unwrap_or(0);
        check(self, n)?;
        check_len("fastfood project g", g, n)?;
        let dims = total_dims(self.comps);
        let coords = ctx.zeros(dims.max(1) as u64 * 4)?;
        let lay = layout(self)?;
        if lay.total == 0 {
            return Ok(coords);
        }
        let run = Run::new(ctx, self, &lay)?;
        let (perm, inv) = run.permutations()?;
        let y = run.transform(MODE_PROJECT, g, 0.0, (&perm, &inv))?;
        let info = Info {
            mode: MODE_PROJECT,
            n: u32_of("coordinates", dims as u64)?,
            scale: entry_scale(self.ff, self.scale),
            ..run.info
        };
        run.dispatch(
            "ff_project_reduce",
            info,
            &[&run.table, &y, &coords],
            (dims as u64).div_ceil(WG),
        )?;
        Ok(coords)
    }

    /// [`Self::expand_cpu`] on the device: `base + acc` (the parameter count is
    /// `base`'s length).
    pub fn expand_gpu(
        &self,
        ctx: &GpuContext,
        coords: &GpuBuffer,
        alpha: f32,
        base: &GpuBuffer,
    ) -> Result<GpuBuffer, GpuError> {
        let n = (base.bytes() / 4) as usize;
        check(self, n)?;
        check_len("fastfood expand coords", coords, total_dims(self.comps))?;
        let out = ctx.alloc(n.max(1) as u64 * 4)?;
        let lay = layout(self)?;
        if lay.total == 0 {
            if n > 0 {
                ctx.copy(base, 0, &out, 0, n as u64 * 4)?;
            }
            return Ok(out);
        }
        let run = Run::new(ctx, self, &lay)?;
        let (perm, inv) = run.permutations()?;
        let a = alpha * self.scale * self.ff.norm();
        let y = run.transform(MODE_EXPAND, coords, a, (&perm, &inv))?;
        let info = Info {
            mode: MODE_EXPAND,
            n: u32_of("parameters", n as u64)?,
            ..run.info
        };
        run.dispatch(
            "ff_expand_reduce",
            info,
            &[&run.table, &y, &run.table, base, &out],
            (n as u64).div_ceil(WG),
        )?;
        Ok(out)
    }

    /// [`Self::generate_cpu`] on the device: `dims × len` f32, one direction per pass.
    pub fn generate_gpu(&self, ctx: &GpuContext, which: usize) -> Result<GpuBuffer, GpuError> {
        let comp = self.comps[which];
        check(
            &FastfoodBases {
                comps: std::slice::from_ref(&comp),
                ..*self
            },
            comp.offset + comp.len,
        )?;
        let total = comp.dims as u64 * comp.len as u64;
        u32_of("generate output", total)?;
        let out = ctx.alloc(total.max(1) * 4)?;
        let one = ctx.upload(bytemuck::cast_slice(&[1f32]))?;
        for j in 0..comp.dims {
            let single = [Compartment {
                offset: 0,
                ..comp.window(comp.first + j, 1)
            }];
            let b = FastfoodBases {
                comps: &single,
                ..*self
            };
            let lay = layout(&b)?;
            let run = Run::new(ctx, &b, &lay)?;
            let (perm, inv) = run.permutations()?;
            let m = entry_scale(self.ff, self.scale);
            let y = run.transform(MODE_EXPAND, &one, m, (&perm, &inv))?;
            let info = Info {
                mode: MODE_GENERATE,
                n: comp.len as u32,
                gen_row: j as u32,
                gen_len: comp.len as u32,
                ..run.info
            };
            run.dispatch(
                "ff_expand_reduce",
                info,
                &[&run.table, &y, &run.table, &run.table, &out],
                (comp.len as u64).div_ceil(WG),
            )?;
        }
        Ok(out)
    }
}
