//! Dense matrix multiply: `C = op(A)·op(B)` on row-major matrices, with either operand
//! optionally transposed. WGSL: `wgsl/matmul.wgsl` (f32) and `wgsl/matmul_f16.wgsl`
//! (f16 storage, f32 accumulation; needs `SHADER_F16`).
//!
//! The WGSL is a tiled GEMM (see the header of `matmul.wgsl`): a workgroup computes a
//! `bm × bn` tile of C, staging `bk`-deep slices of both operands in workgroup memory,
//! and each thread accumulates a `tm × tn` register block. The tile shape is chosen by
//! [`TileConfig`] (override constants, so each shape is its own specialised pipeline);
//! [`matmul_gpu`] picks one per product with [`TileConfig::for_shape`], from the
//! fastest measured on llvmpipe. Each output is accumulated with one fma per k, in
//! increasing k, starting from zero, whatever the tile shape: results are deterministic
//! and identical across tile configurations. A product with few tiles and a long k
//! (small batch: the dense layers at batch 32) is split over k ([`split_k_for`],
//! [`matmul_gpu_split`]): partial chains per k range, added in split order by a second
//! pass; deterministic, rounded differently from one chain, and chosen by shape alone
//! (the same bits on every adapter).

use crate::gemm::gemm_par;
use crate::gpu::{GpuBuffer, GpuContext, Kernel, Work};
use crate::launch::{check_len, check_u32, reduction_splits, WG_1D};
use crate::real::Real;
use crate::GpuError;

const SRC: &str = include_str!("../wgsl/matmul.wgsl");
const SRC_F16: &str = concat!(
    include_str!("../wgsl/matmul_f16.wgsl"),
    include_str!("../wgsl/matmul.wgsl")
);

/// `C[m, n] = op(A)·op(B)`, row-major. A is stored `[m, k]` (or `[k, m]` when `trans_a`),
/// B `[k, n]` (or `[n, k]` when `trans_b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    /// Rows of C and of op(A).
    pub m: usize,
    /// The contracted dimension.
    pub k: usize,
    /// Columns of C and of op(B).
    pub n: usize,
    /// A is stored `[k, m]`.
    pub trans_a: bool,
    /// B is stored `[n, k]`.
    pub trans_b: bool,
}

impl MatmulShape {
    /// `C[m, n] = A[m, k]·B[k, n]`, no transposes.
    pub fn new(m: usize, k: usize, n: usize) -> Self {
        MatmulShape {
            m,
            k,
            n,
            trans_a: false,
            trans_b: false,
        }
    }
    /// Values in A.
    pub fn a_len(&self) -> usize {
        self.m * self.k
    }
    /// Values in B.
    pub fn b_len(&self) -> usize {
        self.k * self.n
    }
    /// Values in C.
    pub fn c_len(&self) -> usize {
        self.m * self.n
    }
    /// Floating-point operations, `2·m·n·k`.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
    /// Row and column strides of A as stored, seen as op(A) `[m, k]`.
    fn a_strides(&self) -> (usize, usize) {
        if self.trans_a {
            (1, self.m)
        } else {
            (self.k, 1)
        }
    }
    /// Row and column strides of B as stored, seen as op(B) `[k, n]`.
    fn b_strides(&self) -> (usize, usize) {
        if self.trans_b {
            (1, self.k)
        } else {
            (self.n, 1)
        }
    }
    /// Length of A's contiguous (innermost stored) dimension.
    fn a_inner(&self) -> usize {
        if self.trans_a {
            self.m
        } else {
            self.k
        }
    }
    /// Length of B's contiguous dimension.
    fn b_inner(&self) -> usize {
        if self.trans_b {
            self.k
        } else {
            self.n
        }
    }
    fn check_slices(&self, a: usize, b: usize, c: usize) {
        assert!(
            a >= self.a_len() && b >= self.b_len() && c >= self.c_len(),
            "matmul {self:?}: slices of {a}, {b}, {c} values are too short"
        );
    }
}

/// `C = op(A)·op(B)` on the cpu through `matrixmultiply` (blocked; row or column
/// blocks as rayon tasks; deterministic: the summation order depends only on the
/// shape, not on the blocks or threads). Overwrites `c`.
pub fn matmul_cpu<T: Real>(s: &MatmulShape, a: &[T], b: &[T], c: &mut [T]) {
    s.check_slices(a.len(), b.len(), c.len());
    let c = &mut c[..s.c_len()];
    if s.m == 0 || s.n == 0 {
        return;
    }
    if s.k == 0 {
        c.fill(T::ZERO);
        return;
    }
    let (rsa, csa) = s.a_strides();
    let (rsb, csb) = s.b_strides();
    gemm_par(
        (s.m, s.k, s.n),
        (a, rsa, csa),
        (b, rsb, csb),
        (c, s.n),
        false,
    );
}

/// Workgroups below which [`TileConfig::for_shape`] switches to the small tiles.
pub const MIN_LARGE_TILES: usize = 32;

/// A tile shape of the WGSL GEMM: a workgroup computes a `bm × bn` tile of C in
/// `bk`-deep steps, each of its `(bm / tm) · (bn / tn)` threads a `tm × tn` block.
/// Valid shapes: `tm, tn ∈ {4, 8}`, `bm % tm == bn % tn == 0`, `bm, bn, bk` multiples of
/// 4, each operand tile 1 to 4 vec4 units per thread (`bk·bm/4` and `bk·bn/4` multiples
/// of the thread count), within the device's workgroup size and workgroup-memory limits
/// (`(bm + bn) · bk · 4` bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileConfig {
    /// Rows of C per workgroup.
    pub bm: u32,
    /// Columns of C per workgroup.
    pub bn: u32,
    /// Depth of the k slice staged per step.
    pub bk: u32,
    /// Rows per thread (4 or 8).
    pub tm: u32,
    /// Columns per thread (4 or 8).
    pub tn: u32,
}

impl TileConfig {
    /// 128 × 128 tile, k slices of 16, 8 × 8 outputs per thread (256 threads, 16 KiB of
    /// workgroup memory): the fastest measured on llvmpipe for large products.
    pub const B128X128K16T8X8: TileConfig = TileConfig::new(128, 128, 16, 8, 8);
    /// 128 × 128 tile, k slices of 8, 8 × 8 outputs per thread (256 threads, 8 KiB).
    pub const B128X128K8T8X8: TileConfig = TileConfig::new(128, 128, 8, 8, 8);
    /// 64 × 64 tile, k slices of 16, 8 × 8 outputs per thread (64 threads): for products
    /// too small to give the 128 × 128 tiles enough workgroups.
    pub const B64X64K16T8X8: TileConfig = TileConfig::new(64, 64, 16, 8, 8);
    /// 64 × 128 tile, k slices of 16, 4 × 8 outputs per thread (128 threads).
    pub const B64X128K16T4X8: TileConfig = TileConfig::new(64, 128, 16, 4, 8);
    /// 128 × 64 tile, k slices of 16, 8 × 4 outputs per thread (128 threads).
    pub const B128X64K16T8X4: TileConfig = TileConfig::new(128, 64, 16, 8, 4);
    /// 64 × 64 tile, k slices of 16, 4 × 4 outputs per thread (256 threads).
    pub const B64X64K16T4X4: TileConfig = TileConfig::new(64, 64, 16, 4, 4);
    /// 64 × 64 tile, k slices of 32, 4 × 4 outputs per thread (256 threads).
    pub const B64X64K32T4X4: TileConfig = TileConfig::new(64, 64, 32, 4, 4);
    /// Every named configuration.
    pub const ALL: [TileConfig; 7] = [
        TileConfig::B128X128K16T8X8,
        TileConfig::B128X128K8T8X8,
        TileConfig::B64X64K16T8X8,
        TileConfig::B64X128K16T4X8,
        TileConfig::B128X64K16T8X4,
        TileConfig::B64X64K16T4X4,
        TileConfig::B64X64K32T4X4,
    ];

    /// A tile shape; see [`TileConfig`] for the valid ones.
    pub const fn new(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Self {
        TileConfig { bm, bn, bk, tm, tn }
    }

    /// What [`matmul_gpu`] uses for `s`: 128 × 128 tiles when they give at least
    /// [`MIN_LARGE_TILES`] workgroups, else 64 × 64 tiles (four times the workgroups to
    /// spread over the device: the dense layers' gradients at batch 32 get 16 instead of
    /// 8). Every tile shape sums each output over k in the same order, so the choice never
    /// changes the result.
    pub fn for_shape(s: &MatmulShape) -> Self {
        let large = TileConfig::B128X128K16T8X8;
        let tiles = s.m.div_ceil(large.bm as usize) * s.n.div_ceil(large.bn as usize);
        if tiles >= MIN_LARGE_TILES {
            large
        } else {
            TileConfig::B64X64K16T8X8
        }
    }

    fn threads(&self) -> u32 {
        (self.bm / self.tm.max(1)) * (self.bn / self.tn.max(1))
    }

    /// Vec4 units of the A and B tiles each thread stages per slice.
    fn units_per_thread(&self) -> (u32, u32) {
        let t = self.threads().max(1);
        (self.bk * self.bm / 4 / t, self.bk * self.bn / 4 / t)
    }

    fn validate(&self, ctx: &GpuContext) -> Result<(), GpuError> {
        let ok_t = |t: u32| t == 4 || t == 8;
        let shared = (self.bm as u64 + self.bn as u64) * self.bk as u64 * 4;
        let wg_x = self.bn / self.tn.max(1);
        let wg_y = self.bm / self.tm.max(1);
        let (a_per, b_per) = self.units_per_thread();
        let whole_units = |slots: u32| slots.is_multiple_of(self.threads().max(1));
        let valid = ok_t(self.tm)
            && ok_t(self.tn)
            && self.bm > 0
            && self.bn > 0
            && self.bm.is_multiple_of(self.tm)
            && self.bn.is_multiple_of(self.tn)
            && self.bm.is_multiple_of(4)
            && self.bn.is_multiple_of(4)
            && self.bk.is_multiple_of(4)
            && self.bk > 0
            && whole_units(self.bk * self.bm / 4)
            && whole_units(self.bk * self.bn / 4)
            && (1..=4).contains(&a_per)
            && (1..=4).contains(&b_per)
            && self.threads() <= ctx.limits.max_compute_invocations_per_workgroup
            && wg_x <= ctx.limits.max_compute_workgroup_size_x
            && wg_y <= ctx.limits.max_compute_workgroup_size_y
            && shared <= ctx.limits.max_compute_workgroup_storage_size as u64;
        if valid {
            Ok(())
        } else {
            Err(GpuError::Invalid(format!(
                "matmul tile config {self:?} is not valid on this device \
                 (tm, tn in {{4, 8}}, bk % 4 == 0, 1 to 4 whole tile units per thread, \
                 {} threads, {shared} bytes of workgroup memory)",
                self.threads()
            )))
        }
    }

    fn constants(&self, s: &MatmulShape) -> [(&'static str, f64); 14] {
        let (a_per, b_per) = self.units_per_thread();
        [
            ("BM", self.bm as f64),
            ("BN", self.bn as f64),
            ("BK", self.bk as f64),
            ("TM", self.tm as f64),
            ("TN", self.tn as f64),
            ("WG_X", (self.bn / self.tn) as f64),
            ("WG_Y", (self.bm / self.tm) as f64),
            ("A_SLOTS", (self.bk * self.bm / 4) as f64),
            ("B_SLOTS", (self.bk * self.bn / 4) as f64),
            ("THREADS", self.threads() as f64),
            ("A_PER", a_per as f64),
            ("B_PER", b_per as f64),
            ("TRANS_A", s.trans_a as u8 as f64),
            ("TRANS_B", s.trans_b as u8 as f64),
        ]
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    m: u32,
    k: u32,
    n: u32,
    /// Split-K: k per split (0: no split).
    k_chunk: u32,
}

fn info(s: &MatmulShape) -> Result<Info, GpuError> {
    // Indices are computed in u32: every operand must be addressable.
    check_u32("matmul A", s.a_len())?;
    check_u32("matmul B", s.b_len())?;
    check_u32("matmul C", s.c_len())?;
    Ok(Info {
        m: check_u32("matmul m", s.m)?,
        k: check_u32("matmul k", s.k)?,
        n: check_u32("matmul n", s.n)?,
        k_chunk: 0,
    })
}

/// Entry point suffix: vec4 loads for an operand whose contiguous dimension is a
/// multiple of 4.
fn variant(s: &MatmulShape) -> &'static str {
    match (s.a_inner().is_multiple_of(4), s.b_inner().is_multiple_of(4)) {
        (false, false) => "ss",
        (true, false) => "vs",
        (false, true) => "sv",
        (true, true) => "vv",
    }
}

fn launch(
    ctx: &GpuContext,
    s: &MatmulShape,
    a: &GpuBuffer,
    b: &GpuBuffer,
    cfg: TileConfig,
    f16: bool,
    splits: u32,
) -> Result<GpuBuffer, GpuError> {
    cfg.validate(ctx)?;
    let mut info = info(s)?;
    if s.k == 0 {
        // An empty sum: C is zero (and the operands may be empty buffers).
        return ctx.zeros(s.c_len() as u64 * 4);
    }
    let c = ctx.alloc(s.c_len() as u64 * 4)?;
    if s.c_len() == 0 {
        return Ok(c);
    }
    let entry = match (f16, variant(s)) {
        (false, "ss") => "matmul_ss",
        (false, "vs") => "matmul_vs",
        (false, "sv") => "matmul_sv",
        (false, _) => "matmul_vv",
        (true, "ss") => "matmul_f16_ss",
        (true, "vs") => "matmul_f16_vs",
        (true, "sv") => "matmul_f16_sv",
        (true, _) => "matmul_f16_vv",
    };
    let kernel = if f16 {
        Kernel {
            module: "matmul_f16",
            source: SRC_F16,
            entry,
            trusted: true,
        }
    } else {
        Kernel {
            module: "matmul",
            source: SRC,
            entry,
            trusted: true,
        }
    };
    let groups = [
        check_u32("matmul grid", s.n.div_ceil(cfg.bn as usize))?,
        check_u32("matmul grid", s.m.div_ceil(cfg.bm as usize))?,
        1,
    ];
    // Split-K (f32 only): chunks of k that are whole BK slices, one partial C each.
    let k_chunk =
        s.k.div_ceil(splits.max(1) as usize)
            .div_ceil(cfg.bk as usize)
            * cfg.bk as usize;
    let splits = s.k.div_ceil(k_chunk);
    if f16 || splits <= 1 {
        ctx.dispatch_with_work(
            &kernel,
            &cfg.constants(s),
            bytemuck::bytes_of(&info),
            &[a, b, &c],
            groups,
            Work::compute(s.flops(), &[a, b, &c]),
        )?;
        return Ok(c);
    }
    let partial_len = check_u32("matmul split-K partials", splits * s.c_len())?;
    let partials = ctx.alloc(partial_len as u64 * 4)?;
    info.k_chunk = check_u32("matmul k chunk", k_chunk)?;
    ctx.dispatch_with_work(
        &kernel,
        &cfg.constants(s),
        bytemuck::bytes_of(&info),
        &[a, b, &partials],
        [groups[0], groups[1], splits as u32],
        Work::compute(s.flops(), &[a, b, &partials]),
    )?;
    let sum_info = Info {
        m: check_u32("matmul C", s.c_len())?,
        k: splits as u32,
        n: 0,
        k_chunk: 0,
    };
    let sum = Kernel {
        module: "matmul",
        source: SRC,
        entry: "matmul_split_sum",
        trusted: true,
    };
    ctx.dispatch(
        &sum,
        &[],
        bytemuck::bytes_of(&sum_info),
        &[&partials, &c],
        ctx.grid((s.c_len() as u64).div_ceil(WG_1D))?,
    )?;
    Ok(c)
}

/// `C = op(A)·op(B)` on the device (f32), tiled as [`TileConfig::for_shape`] chooses
/// and split over k as [`split_k_for`] chooses.
pub fn matmul_gpu(
    ctx: &GpuContext,
    s: &MatmulShape,
    a: &GpuBuffer,
    b: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    let cfg = TileConfig::for_shape(s);
    matmul_gpu_split(ctx, s, a, b, cfg, split_k_for(s, cfg))
}

/// [`matmul_gpu`] with an explicit tile shape (for tuning and benchmarks), unsplit.
pub fn matmul_gpu_tiled(
    ctx: &GpuContext,
    s: &MatmulShape,
    a: &GpuBuffer,
    b: &GpuBuffer,
    cfg: TileConfig,
) -> Result<GpuBuffer, GpuError> {
    matmul_gpu_split(ctx, s, a, b, cfg, 1)
}

/// Shortest k range of one split.
const MIN_SPLIT_K: usize = 64;

/// How many k-splits [`matmul_gpu`] uses: enough for a small-M product (the CNN's dense
/// layer at batch 32: [32×1024]·[1024×64], one tile) to approach
/// [`crate::launch::TARGET_WORKGROUPS`], with at least 64 k per split (see
/// [`reduction_splits`]). By shape alone: every adapter computes the same bits.
pub fn split_k_for(s: &MatmulShape, cfg: TileConfig) -> u32 {
    let tiles = s.m.div_ceil(cfg.bm as usize) * s.n.div_ceil(cfg.bn as usize);
    reduction_splits(tiles, s.k, cfg.bk as usize, MIN_SPLIT_K).1 as u32
}

/// `C = op(A)·op(B)` with `splits` k-splits: split z computes each output's fma chain
/// over its own k range (whole `bk` slices) into a partial C, and a second pass adds
/// the partials in split order. Deterministic; with more than one split the rounding
/// differs from the unsplit chain (by the usual reassociation error).
pub fn matmul_gpu_split(
    ctx: &GpuContext,
    s: &MatmulShape,
    a: &GpuBuffer,
    b: &GpuBuffer,
    cfg: TileConfig,
    splits: u32,
) -> Result<GpuBuffer, GpuError> {
    check_len("matmul A", a, s.a_len())?;
    check_len("matmul B", b, s.b_len())?;
    launch(ctx, s, a, b, cfg, false, splits)
}

fn require_f16(ctx: &GpuContext, what: &str) -> Result<(), GpuError> {
    if ctx.has_f16() {
        Ok(())
    } else {
        Err(GpuError::Invalid(format!(
            "{what} needs the SHADER_F16 feature, which {} does not offer",
            ctx.adapter.name
        )))
    }
}

fn check_len_f16(what: &str, buf: &GpuBuffer, len: usize) -> Result<(), GpuError> {
    if (buf.bytes() as usize) < len * 2 {
        return Err(GpuError::Invalid(format!(
            "{what}: buffer of {} bytes holds fewer than {len} f16 values",
            buf.bytes()
        )));
    }
    Ok(())
}

/// Converts `len` f32 values to f16 storage (packed two per 32-bit word, `len · 2`
/// bytes, little-endian halves as `half::f16` lays them out). Values outside the f16
/// range convert to an implementation-defined value. Needs `SHADER_F16`.
pub fn cast_f32_to_f16_gpu(
    ctx: &GpuContext,
    x: &GpuBuffer,
    len: usize,
) -> Result<GpuBuffer, GpuError> {
    require_f16(ctx, "cast_f32_to_f16_gpu")?;
    check_len("cast x", x, len)?;
    let out = ctx.alloc(len as u64 * 2)?;
    let info = Info {
        m: check_u32("cast", len)?,
        k: 0,
        n: 0,
        k_chunk: 0,
    };
    let pairs = len.div_ceil(2) as u64;
    let grid = ctx.grid(pairs.div_ceil(WG_1D))?;
    let kernel = Kernel {
        module: "matmul_f16",
        source: SRC_F16,
        entry: "cast_f32_to_f16",
        trusted: true,
    };
    ctx.dispatch(&kernel, &[], bytemuck::bytes_of(&info), &[x, &out], grid)?;
    Ok(out)
}

/// `C = op(A)·op(B)` with A and B in f16 storage (see [`cast_f32_to_f16_gpu`]),
/// accumulated in f32; C is f32. Fails with [`GpuError::Invalid`] naming the missing
/// `SHADER_F16` feature on devices without it.
pub fn matmul_f16_gpu(
    ctx: &GpuContext,
    s: &MatmulShape,
    a_f16: &GpuBuffer,
    b_f16: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    require_f16(ctx, "matmul_f16_gpu")?;
    check_len_f16("matmul_f16 A", a_f16, s.a_len())?;
    check_len_f16("matmul_f16 B", b_f16, s.b_len())?;
    launch(ctx, s, a_f16, b_f16, TileConfig::for_shape(s), true, 1)
}
