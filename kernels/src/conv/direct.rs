//! The weight gradient (and, with AVX-512, the forward) of thin convolutions without
//! im2col or packing, bitwise equal to the GEMM path.
//!
//! Why: a 16-channel ResNet layer uses each value of the im2col operand for only 16
//! multiply-adds, so matrixmultiply spent as long packing that operand (read `P` values
//! apart) as multiplying, and `conv2d_backward_weight` ran at a third of the forward's
//! GFLOP/s (docs/benchmarks.md). Here the products are read straight from a zero-padded
//! copy of the image and a transposed `dY`, in register tiles of output channels × taps
//! (the forward: output channels × positions, over the taps).
//!
//! The order is matrixmultiply 0.3.11's (`gemm.rs`, `sgemm_kernel.rs`; its FMA and
//! AVX-512 kernels alike): the reduction (the output positions for the weight gradient,
//! the taps for the forward, in order) is cut
//! into blocks of [`KC`]; within a block each output has one accumulator, started at +0
//! and updated by one fused multiply-add per step; each block's sum is stored
//! (`C = ab`) for the first block of a fresh product and added (`C = C + ab`, one
//! rounding) after it. Padded taps are multiplied like the others (the im2col matrix
//! holds zeros there), so even non-finite values give the GEMM's bits. Machines
//! without FMA keep the GEMM (matrixmultiply multiplies and adds separately there).

use super::Conv2dShape;
use crate::random_bases::Simd;
use crate::real::Real;
use crate::scratch::with_scratch;
use std::any::TypeId;
use std::sync::OnceLock;

/// matrixmultiply's k block for f32 (`S_KC`).
const KC: usize = 256;

/// Environment variable choosing the cpu convolution path: `gemm` or `direct` (the
/// default where it applies). Both give the same bits; the switch is for benchmarks.
pub const CONV_ENV: &str = "RBD_CONV";

/// How the cpu computes a convolution and its weight gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPath {
    /// im2col + matrixmultiply.
    Gemm,
    /// Register tiles read from the padded image, compiled for this level (AVX2 or
    /// AVX-512; both with FMA).
    Direct(Simd),
}

impl ConvPath {
    /// The default: direct at the best level when the processor has FMA, unless
    /// `RBD_CONV=gemm` (read once).
    pub fn detect() -> ConvPath {
        static PATH: OnceLock<ConvPath> = OnceLock::new();
        *PATH.get_or_init(|| {
            let simd = Simd::detect();
            match std::env::var(CONV_ENV).as_deref() {
                Ok("gemm") => ConvPath::Gemm,
                Ok(v) if !v.is_empty() && v != "direct" => {
                    eprintln!("note: {CONV_ENV}={v} is not a path (gemm, direct); using direct");
                    Self::direct_or_gemm(simd)
                }
                _ => Self::direct_or_gemm(simd),
            }
        })
    }

    fn direct_or_gemm(simd: Simd) -> ConvPath {
        if simd >= Simd::Avx2 {
            ConvPath::Direct(simd)
        } else {
            ConvPath::Gemm
        }
    }

    /// One line for reports: the path and why.
    pub fn describe(self) -> String {
        match self {
            ConvPath::Direct(simd) => format!(
                "direct {} FMA tiles for per-image f32 layers with whole vectors of output channels (the weight gradient: kernel width 3 or 5; the forward: AVX-512, at least 64 taps), else im2col + GEMM; bitwise the same",
                simd.name()
            ),
            ConvPath::Gemm if std::env::var(CONV_ENV).as_deref() == Ok("gemm") => {
                format!("im2col + GEMM ({CONV_ENV}=gemm)")
            }
            ConvPath::Gemm => "im2col + GEMM (no AVX2 with FMA here)".into(),
        }
    }

    /// Every path this processor can run (for tests and benchmarks).
    pub fn available() -> Vec<ConvPath> {
        let mut v = vec![ConvPath::Gemm];
        v.extend(
            Simd::available()
                .into_iter()
                .filter(|&s| s >= Simd::Avx2)
                .map(ConvPath::Direct),
        );
        v
    }
}

/// Output channels per vector at a level.
fn lanes(simd: Simd) -> usize {
    if simd == Simd::Avx512 {
        16
    } else {
        8
    }
}

/// A shape the direct weight-gradient kernels take at this level: f32, kernel width 3 or
/// 5 and whole vectors of output channels. Returns the vectors of output channels per
/// tile.
pub(super) fn vectors_per_tile<T: Real>(s: &Conv2dShape, simd: Simd) -> Option<usize> {
    // 1×1 kernels keep the GEMM: measured slower direct (ResNet-8's shortcuts, 0.23
    // against 0.17 ms), their im2col being a plain copy.
    if !matches!(s.kw, 3 | 5) {
        return None;
    }
    // 8-lane tiles beat the GEMM only on thin layers: at most 16 output channels
    // (ResNet-8's 3→16 and 16→16, 0.34 and 1.14 against 0.77 and 3.35 ms); from 32
    // channels the GEMM's 8×8 kernel keeps up or wins (32→32 16×16: 1.95 against 1.68,
    // 64→64 8×8: 2.68 against 2.26). AVX2 code on the AVX-512 EPYC, batch 32,
    // `examples/bench_conv_paths.rs`, 2026-12-07; the GEMM is matrixmultiply's AVX2
    // kernel on either kind.
    if simd == Simd::Avx2 && s.o > AVX2_MAX_O {
        return None;
    }
    vectors_any_width::<T>(s, simd)
}

/// Output channels above which the AVX2 weight gradient keeps the GEMM.
const AVX2_MAX_O: usize = 16;

/// Taps below which the forward keeps the GEMM: a tile's few multiply-adds per output
/// do not pay for its scattered stores (ResNet-8's first layer, K = 27: 0.37 ms with the
/// GEMM, 0.97 direct; its 1×1 shortcuts, K = 16 and 32, likewise slower).
const FORWARD_MIN_K: usize = 64;

/// [`vectors_per_tile`] for the forward convolution, whose tiles take any kernel width
/// (but at least [`FORWARD_MIN_K`] taps). AVX-512 only: the forward's GEMM packs
/// contiguous rows, so the direct tiles win only by their width (on the AVX-512 EPYC,
/// 8-lane direct tiles were slower than the GEMM on every layer wider than 16 channels;
/// `examples/bench_conv_paths.rs`); against an AVX2 GEMM the comparison is not measured yet.
pub(super) fn forward_vectors_per_tile<T: Real>(s: &Conv2dShape, simd: Simd) -> Option<usize> {
    if s.k() < FORWARD_MIN_K || simd != Simd::Avx512 {
        return None;
    }
    vectors_any_width::<T>(s, simd)
}

/// Output-channel vectors per tile for f32 at a level with FMA, any kernel width.
fn vectors_any_width<T: Real>(s: &Conv2dShape, simd: Simd) -> Option<usize> {
    if TypeId::of::<T>() != TypeId::of::<f32>() || simd < Simd::Avx2 {
        return None;
    }
    if !s.o.is_multiple_of(lanes(simd)) {
        return None;
    }
    let vecs = s.o / lanes(simd);
    let max = if simd == Simd::Avx2 && s.kw == 5 {
        2
    } else {
        4
    };
    [4, 2, 1]
        .into_iter()
        .find(|&v| v <= max && vecs.is_multiple_of(v))
}

/// Rows `(c, ki)` per tile for kernel width `kw` and `ov` vectors: about 24 accumulators
/// of the 32 AVX-512 registers, 12 of AVX2's 16.
const fn rows_per_tile(avx512: bool, kw: usize, ov: usize) -> usize {
    let acc = if avx512 { 24 } else { 12 };
    // At most 12 row offsets, so that they stay in general registers.
    let r = acc / (kw * ov);
    if r == 0 {
        1
    } else if r > 12 {
        12
    } else {
        r
    }
}

/// The zero-padded image and the offsets the kernels read it at.
struct Layout {
    /// Padded plane size.
    hp: usize,
    wp: usize,
    /// Offset of each output position's window corner in a padded plane.
    pos: Vec<usize>,
    /// Offset of each kernel row `(c, ki)` (im2col row `(c·kh + ki)·kw`).
    rows: Vec<usize>,
}

impl Layout {
    fn new(s: &Conv2dShape) -> Layout {
        let hp = (s.oh - 1) * s.stride + s.kh;
        let wp = (s.ow - 1) * s.stride + s.kw;
        let pos = (0..s.oh)
            .flat_map(|oy| (0..s.ow).map(move |ox| oy * s.stride * wp + ox * s.stride))
            .collect();
        let rows = (0..s.c)
            .flat_map(|c| (0..s.kh).map(move |ki| c * hp * wp + ki * wp))
            .collect();
        Layout { hp, wp, pos, rows }
    }

    /// `xp[c, pad_top + iy, pad_left + ix] = x[c, iy, ix]`, zero elsewhere; input rows
    /// and columns no window reaches are left out.
    fn pad(&self, s: &Conv2dShape, x: &[f32], xp: &mut [f32]) {
        xp.fill(0.0);
        let rows = s.h.min(self.hp.saturating_sub(s.pad_top));
        let cols = s.w.min(self.wp.saturating_sub(s.pad_left));
        for c in 0..s.c {
            for iy in 0..rows {
                let src = &x[(c * s.h + iy) * s.w..][..cols];
                let at = (c * self.hp + s.pad_top + iy) * self.wp + s.pad_left;
                xp[at..at + cols].copy_from_slice(src);
            }
        }
    }
}

/// The weight gradient of a group of images, `dw[o, K] (=|+=) Σ_img dY_img · col_imgᵀ`,
/// each image as matrixmultiply's `C ← ab (+ C)` with `accumulate` after the first.
/// `ov` is [`vectors_per_tile`]'s answer for this shape and level.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_grad_images<T: Real>(
    s: &Conv2dShape,
    simd: Simd,
    ov: usize,
    x: &[T],
    dy: &[T],
    images: std::ops::Range<usize>,
    dw: &mut [T],
) {
    let x: &[f32] = bytemuck::cast_slice(x);
    let dy: &[f32] = bytemuck::cast_slice(dy);
    let dw: &mut [f32] = bytemuck::cast_slice_mut(dw);
    let lay = Layout::new(s);
    let (p, chw, plane) = (s.p(), s.c * s.h * s.w, lay.hp * lay.wp);
    with_scratch::<f32, _>(s.c * plane + p * s.o, |buf| {
        let (xp, dyt) = buf.split_at_mut(s.c * plane);
        let first = images.start;
        for img in images {
            lay.pad(s, &x[img * chw..][..chw], xp);
            let dy_img = &dy[img * s.o * p..][..s.o * p];
            for (o, row) in dy_img.chunks_exact(p).enumerate() {
                for (q, &v) in row.iter().enumerate() {
                    dyt[q * s.o + o] = v;
                }
            }
            image(s, simd, ov, &lay, xp, dyt, dw, img > first);
        }
    });
}

/// One image's `dw ← ab (+ dw)` over all blocks of positions.
#[allow(clippy::too_many_arguments)]
fn image(
    s: &Conv2dShape,
    simd: Simd,
    ov: usize,
    lay: &Layout,
    xp: &[f32],
    dyt: &[f32],
    dw: &mut [f32],
    accumulate: bool,
) {
    let k = s.k();
    let o_tile = ov * lanes(simd);
    let r_max = rows_per_tile(simd == Simd::Avx512, s.kw, ov);
    let mut tile = [0.0f32; 16 * 24];
    for (b, pos) in lay.pos.chunks(KC).enumerate() {
        let store = !accumulate && b == 0;
        let p0 = b * KC;
        for o0 in (0..s.o).step_by(o_tile) {
            let mut row = 0;
            while row < lay.rows.len() {
                let r = if lay.rows.len() - row >= r_max {
                    r_max
                } else {
                    1
                };
                let args = Tile {
                    vecs: &dyt[p0 * s.o..],
                    o_len: s.o,
                    o0,
                    xp,
                    steps: pos,
                    tile: &lay.rows[row..row + r],
                };
                run_tile(simd, s.kw, ov, r, &args, &mut tile);
                // tile[(ri·kw + kj)·o_tile + o] → dw[o0 + o, (row + ri)·kw + kj]
                for ri in 0..r {
                    for kj in 0..s.kw {
                        let tap = (row + ri) * s.kw + kj;
                        let src = &tile[(ri * s.kw + kj) * o_tile..][..o_tile];
                        for (o, &v) in src.iter().enumerate() {
                            let d = &mut dw[(o0 + o) * k + tap];
                            *d = if store { v } else { *d + v };
                        }
                    }
                }
                row += r;
            }
        }
    }
}

/// Output positions per forward tile for `ov` vectors: about 24 accumulators of the
/// 32 AVX-512 registers, and at most 12 position offsets.
const fn positions_per_tile(ov: usize) -> usize {
    let n = 24 / ov;
    if n > 12 {
        12
    } else {
        n
    }
}

/// The forward convolution, `y[img] = W · col_img` for every image, as matrixmultiply's
/// `C ← ab` then `C ← C + ab` over blocks of 256 taps. `ov` is
/// [`forward_vectors_per_tile`]'s answer for this shape and level.
pub(super) fn forward_images<T: Real>(
    s: &Conv2dShape,
    simd: Simd,
    ov: usize,
    x: &[T],
    w: &[T],
    y: &mut [T],
) {
    use rayon::prelude::*;
    let x: &[f32] = bytemuck::cast_slice(x);
    let w: &[f32] = bytemuck::cast_slice(w);
    let y: &mut [f32] = bytemuck::cast_slice_mut(y);
    let lay = Layout::new(s);
    let (k, p, chw, plane) = (s.k(), s.p(), s.c * s.h * s.w, lay.hp * lay.wp);
    // wt[k, o] = w[o, k]: a tile's output channels side by side.
    let mut wt = vec![0f32; k * s.o];
    for (o, row) in w.chunks_exact(k).enumerate() {
        for (kk, &v) in row.iter().enumerate() {
            wt[kk * s.o + o] = v;
        }
    }
    let koff: Vec<usize> = (0..k).map(|kk| lay.rows[kk / s.kw] + kk % s.kw).collect();
    // Positions padded to whole tiles with copies of the last (their outputs dropped).
    let np = positions_per_tile(ov);
    let mut pos = lay.pos.clone();
    let last = *pos.last().expect("a convolution has an output position");
    pos.resize(p.div_ceil(np) * np, last);
    y.par_chunks_mut(s.o * p)
        .enumerate()
        .for_each(|(img, y_img)| {
            with_scratch::<f32, _>(s.c * plane, |xp| {
                lay.pad(s, &x[img * chw..][..chw], xp);
                let o_tile = ov * lanes(simd);
                let mut tile = [0.0f32; 16 * 24];
                for (b, kb) in koff.chunks(KC).enumerate() {
                    for o0 in (0..s.o).step_by(o_tile) {
                        for (ti, pq) in pos.chunks(np).enumerate() {
                            let args = Tile {
                                vecs: &wt[b * KC * s.o..],
                                o_len: s.o,
                                o0,
                                xp,
                                steps: kb,
                                tile: pq,
                            };
                            run_fwd(simd, ov, np, &args, &mut tile);
                            // tile[q·o_tile + o] → y[o0 + o, ti·np + q]
                            for q in 0..np.min(p - ti * np) {
                                let src = &tile[q * o_tile..][..o_tile];
                                for (o, &v) in src.iter().enumerate() {
                                    let d = &mut y_img[(o0 + o) * p + ti * np + q];
                                    *d = if b == 0 { v } else { *d + v };
                                }
                            }
                        }
                    }
                }
            })
        });
}

/// One register tile's operands, in the weight gradient and the forward alike: a
/// reduction over `steps` (positions of one block, or taps of one block), each step
/// reading one row of `vecs` (output channels `o0..o0 + ov·lanes` of `dY` transposed, or
/// of `Wᵀ`) and one value of the padded image per accumulator offset in `tile` (kernel
/// rows `(c, ki)`, or output positions), at `xp[step + tile[..] (+ kj)]`.
struct Tile<'a> {
    /// From the block's first step: `vecs[step·o_len + o]`.
    vecs: &'a [f32],
    o_len: usize,
    o0: usize,
    xp: &'a [f32],
    steps: &'a [usize],
    tile: &'a [usize],
}

impl Tile<'_> {
    /// The bounds the unsafe kernels rely on: taps up to `span` past each offset pair
    /// (the kernel width, or 1), `o_tile` output channels.
    fn check(&self, span: usize, o_tile: usize) {
        let last_step = *self.steps.iter().max().unwrap_or(&0);
        let last_tile = *self.tile.iter().max().unwrap_or(&0);
        assert!(
            last_step + last_tile + span <= self.xp.len(),
            "direct conv: taps out of bounds"
        );
        assert!(
            (self.steps.len().max(1) - 1) * self.o_len + self.o0 + o_tile <= self.vecs.len(),
            "direct conv: operand out of bounds"
        );
    }
}

macro_rules! weight_kernel {
    ($name:ident, $feature:literal, $vec:ty, $lanes:expr, $zero:ident, $load:ident, $set1:ident, $fma:ident, $store:ident) => {
        /// `out[(r·KW + kj)·OV·lanes + o] = Σ_q fma(xp[rows[r] + pos[q] + kj], dyt[q, o0 + o])`,
        /// one accumulator per output, positions in order.
        ///
        /// # Safety
        /// The processor supports the feature; `t` passed [`Tile::check`] for `KW` and
        /// `OV·lanes`, `t.tile.len() == R`, `out` holds `R·KW·OV·lanes` values.
        #[target_feature(enable = $feature)]
        unsafe fn $name<const R: usize, const KW: usize, const OV: usize>(
            t: &Tile,
            out: &mut [f32],
        ) {
            #[cfg(target_arch = "x86_64")]
            use std::arch::x86_64::*;
            let z = $zero();
            let mut acc: [[[$vec; OV]; KW]; R] = [[[z; OV]; KW]; R];
            let mut rows = [0usize; R];
            rows.copy_from_slice(&t.tile[..R]);
            let xp = t.xp.as_ptr();
            let mut d = t.vecs.as_ptr().add(t.o0);
            for &p in t.steps {
                let mut v = [z; OV];
                for j in 0..OV {
                    v[j] = $load(d.add(j * $lanes));
                }
                let x = xp.add(p);
                for r in 0..R {
                    let xr = x.add(rows[r]);
                    for kj in 0..KW {
                        let b = $set1(*xr.add(kj));
                        for j in 0..OV {
                            acc[r][kj][j] = $fma(b, v[j], acc[r][kj][j]);
                        }
                    }
                }
                d = d.add(t.o_len);
            }
            assert!(out.len() >= R * KW * OV * $lanes);
            let o = out.as_mut_ptr();
            for r in 0..R {
                for kj in 0..KW {
                    for j in 0..OV {
                        $store(o.add(((r * KW + kj) * OV + j) * $lanes), acc[r][kj][j]);
                    }
                }
            }
        }
    };
}

macro_rules! forward_kernel {
    ($fwd:ident, $feature:literal, $vec:ty, $lanes:expr, $zero:ident, $load:ident, $set1:ident, $fma:ident, $store:ident) => {
        /// `out[(q·OV + j)·lanes + l] = Σ_k fma(xp[koff[k] + pos[q]], wt[k, o0 + j·lanes + l])`,
        /// one accumulator per output, taps in order.
        ///
        /// # Safety
        /// The processor supports the feature; `t` passed [`Tile::check`] for 1 and `OV·lanes`,
        /// `t.tile.len() == NP`, `out` holds `NP·OV·lanes` values.
        #[target_feature(enable = $feature)]
        unsafe fn $fwd<const NP: usize, const OV: usize>(t: &Tile, out: &mut [f32]) {
            #[cfg(target_arch = "x86_64")]
            use std::arch::x86_64::*;
            let z = $zero();
            let mut acc: [[$vec; OV]; NP] = [[z; OV]; NP];
            let mut pos = [0usize; NP];
            pos.copy_from_slice(&t.tile[..NP]);
            let xp = t.xp.as_ptr();
            let mut w = t.vecs.as_ptr().add(t.o0);
            for &ko in t.steps {
                let mut v = [z; OV];
                for j in 0..OV {
                    v[j] = $load(w.add(j * $lanes));
                }
                let x = xp.add(ko);
                for q in 0..NP {
                    let b = $set1(*x.add(pos[q]));
                    for j in 0..OV {
                        acc[q][j] = $fma(b, v[j], acc[q][j]);
                    }
                }
                w = w.add(t.o_len);
            }
            assert!(out.len() >= NP * OV * $lanes);
            let o = out.as_mut_ptr();
            for q in 0..NP {
                for j in 0..OV {
                    $store(o.add((q * OV + j) * $lanes), acc[q][j]);
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
weight_kernel!(
    tile_avx512,
    "avx512f,fma",
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps
);
#[cfg(target_arch = "x86_64")]
weight_kernel!(
    tile_avx2,
    "avx2,fma",
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps
);
#[cfg(target_arch = "x86_64")]
forward_kernel!(
    fwd_avx512,
    "avx512f,fma",
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps
);

/// Dispatches one tile to the kernel compiled for (level, kw, ov, rows).
#[cfg(target_arch = "x86_64")]
fn run_tile(simd: Simd, kw: usize, ov: usize, r: usize, t: &Tile, out: &mut [f32]) {
    let avx512 = simd == Simd::Avx512;
    t.check(kw, ov * lanes(simd));
    assert!(
        simd >= Simd::Avx2 && simd <= Simd::best(),
        "direct conv at {simd:?}"
    );
    assert_eq!(t.tile.len(), r);
    assert!(
        out.len() >= r * kw * ov * lanes(simd),
        "direct conv: tile buffer"
    );
    macro_rules! go {
        ($kw:literal, $ov:literal) => {{
            const R512: usize = rows_per_tile(true, $kw, $ov);
            const R2: usize = rows_per_tile(false, $kw, $ov);
            // SAFETY: the level is supported (asserted), bounds checked above, the
            // row count matches the const parameter.
            let full = if avx512 { R512 } else { R2 };
            assert!(r == 1 || r == full, "direct conv: {r} rows a tile");
            unsafe {
                match (avx512, r == 1) {
                    (true, true) => tile_avx512::<1, $kw, $ov>(t, out),
                    (true, false) => tile_avx512::<R512, $kw, $ov>(t, out),
                    (false, true) => tile_avx2::<1, $kw, $ov>(t, out),
                    (false, false) => tile_avx2::<R2, $kw, $ov>(t, out),
                }
            }
        }};
    }
    match (kw, ov) {
        (3, 1) => go!(3, 1),
        (3, 2) => go!(3, 2),
        (3, 4) => go!(3, 4),
        (5, 1) => go!(5, 1),
        (5, 2) => go!(5, 2),
        (5, 4) => go!(5, 4),
        _ => unreachable!("direct conv: kw {kw}, {ov} vectors"),
    }
}

/// Dispatches one forward tile to the kernel compiled for (level, ov, positions).
#[cfg(target_arch = "x86_64")]
fn run_fwd(simd: Simd, ov: usize, np: usize, t: &Tile, out: &mut [f32]) {
    t.check(1, ov * lanes(simd));
    assert!(
        simd == Simd::Avx512 && simd <= Simd::best(),
        "direct forward at {simd:?}"
    );
    assert_eq!(t.tile.len(), np);
    assert_eq!(
        np,
        positions_per_tile(ov),
        "direct conv: {np} positions a tile"
    );
    assert!(
        out.len() >= np * ov * lanes(simd),
        "direct conv: tile buffer"
    );
    macro_rules! go {
        ($ov:literal) => {{
            const N: usize = positions_per_tile($ov);
            // SAFETY: AVX-512 is supported (asserted), bounds checked above, the
            // position count matches the const parameter.
            unsafe { fwd_avx512::<N, $ov>(t, out) }
        }};
    }
    match ov {
        1 => go!(1),
        2 => go!(2),
        4 => go!(4),
        _ => unreachable!("direct conv: {ov} vectors"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn run_fwd(_: Simd, _: usize, _: usize, _: &Tile, _: &mut [f32]) {
    unreachable!("direct conv needs x86-64 with FMA")
}

#[cfg(not(target_arch = "x86_64"))]
fn run_tile(_: Simd, _: usize, _: usize, _: usize, _: &Tile, _: &mut [f32]) {
    unreachable!("direct conv needs x86-64 with FMA")
}
