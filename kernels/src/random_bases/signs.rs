//! Packed signs on the cpu ([`Distribution::Rademacher`]): entry e of a direction is
//! bit `e mod 32` of its stream word `e div 32`, +1 for 0 and −1 for 1, so one word
//! serves 32 entries and every product with an entry is a sign flip (an XOR of the f32
//! sign bit: exact, no multiply).
//!
//! Same tasks and sums as the other families (`docs/random-directions.md` §12): a
//! chunk of [`CHUNK`] entries is 64 batches of 64; project sums, per direction, 64
//! accumulators (row q div 16, lane q mod 16 for entry q of a batch) over the batches
//! in order, reduces them with [`reduce_batch`]'s tree, then sums the chunks in order;
//! expand sums each entry's `±w_j` from 0 in direction order and adds the base last.
//! The words of a chunk (128 per direction) are generated once per pass into a small
//! buffer and the gradient chunk stays in L1 while every direction reads it: the
//! passes cost about one XOR and one add per entry and direction.

use super::cpu::{reduce_batch, CHUNK};
use super::simd::{multiversion, Simd};
use super::{coord_offsets, Bases};
use crate::rng::lanes::{Gen, PhiloxGen, ThreefryGen, BATCH, F, L};
use crate::rng::map::sign_mask;
use crate::rng::{BlockKey, Generator, SIGNS_PER_WORD};
use rayon::prelude::*;

/// Stream words per chunk and direction.
const WORDS: usize = CHUNK / SIGNS_PER_WORD;
/// Directions whose words one expand task generates at a time (32 × 512 bytes).
const EXPAND_TILE: usize = 32;
/// Directions per project task.
const DIR_GROUP: usize = 64;

/// Calls `$f::<G>(args)` for the stream's generator.
macro_rules! by_generator {
    ($gen:expr, $f:ident ( $($arg:expr),* )) => {
        match $gen {
            Generator::Philox => $f::<PhiloxGen>($($arg),*),
            Generator::Threefry => $f::<ThreefryGen>($($arg),*),
        }
    };
}

/// The 128 words of chunk `chunk` of direction `dir`, in stream order: word i of the
/// chunk is the direction's word `128·chunk + i`. Two lane batches of 64 words each
/// ([`Gen::words`] numbers words as it numbers entries).
#[inline(always)]
fn chunk_words<G: Gen>(bk: &BlockKey, dir: u32, chunk: u32, out: &mut [u32; WORDS]) {
    for half in 0..2 {
        let w = G::words(bk, dir, 2 * chunk + half as u32);
        for q in 0..BATCH {
            let (r, l) = G::pos(q);
            out[half * BATCH + q] = w[r][l];
        }
    }
}

/// The two row operations of the packed-sign passes, lane l of a row taking bit l of
/// `bits`: [`Portable`] loops (any target) and [`x86::Avx2`] intrinsics, bitwise equal
/// (an XOR of the sign bit and one IEEE add per lane either way). LLVM vectorises the
/// loops of the direction-outer project across batches, two lanes wide, with spills
/// (3–5× slower at AVX2), hence the intrinsics.
trait Rows {
    /// acc += g with lane l's sign flipped where bit l of `bits` is 1.
    fn add_flipped(acc: &mut F, g: &F, bits: u32);
    /// acc += w with lane l's sign flipped where bit l of `bits` is 1 (`w` as bits).
    fn add_signed(acc: &mut F, w: u32, bits: u32);
}

/// The row operations as plain loops.
struct Portable;

impl Rows for Portable {
    #[inline(always)]
    fn add_flipped(acc: &mut F, g: &F, bits: u32) {
        for l in 0..L {
            acc[l] += f32::from_bits(g[l].to_bits() ^ sign_mask(bits, l as u32));
        }
    }
    #[inline(always)]
    fn add_signed(acc: &mut F, w: u32, bits: u32) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f32::from_bits(w ^ sign_mask(bits, l as u32));
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Rows, F};
    use std::arch::x86_64::*;

    /// The row operations in AVX2 intrinsics (two 8-lane halves per row); only called
    /// from code compiled with AVX2 enabled (the AVX2 and AVX-512 levels).
    pub(super) struct Avx2;

    /// Sign masks of lanes 0–7 and 8–15: bit l of `bits` moved to bit 31.
    #[inline(always)]
    unsafe fn masks(bits: u32) -> (__m256, __m256) {
        let b = _mm256_set1_epi32(bits as i32);
        let sign = _mm256_set1_epi32(i32::MIN);
        let lo = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
        let hi = _mm256_setr_epi32(23, 22, 21, 20, 19, 18, 17, 16);
        (
            _mm256_castsi256_ps(_mm256_and_si256(_mm256_sllv_epi32(b, lo), sign)),
            _mm256_castsi256_ps(_mm256_and_si256(_mm256_sllv_epi32(b, hi), sign)),
        )
    }

    impl Rows for Avx2 {
        #[inline(always)]
        fn add_flipped(acc: &mut F, g: &F, bits: u32) {
            // SAFETY: only instantiated in functions compiled with AVX2 (see `Avx2`);
            // the pointers address the 16 lanes of `acc` and `g`.
            unsafe {
                let (m0, m1) = masks(bits);
                let (a, g) = (acc.as_mut_ptr(), g.as_ptr());
                let x0 = _mm256_xor_ps(_mm256_loadu_ps(g), m0);
                let x1 = _mm256_xor_ps(_mm256_loadu_ps(g.add(8)), m1);
                _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), x0));
                _mm256_storeu_ps(a.add(8), _mm256_add_ps(_mm256_loadu_ps(a.add(8)), x1));
            }
        }
        #[inline(always)]
        fn add_signed(acc: &mut F, w: u32, bits: u32) {
            // SAFETY: as in add_flipped.
            unsafe {
                let (m0, m1) = masks(bits);
                let w = _mm256_castsi256_ps(_mm256_set1_epi32(w as i32));
                let a = acc.as_mut_ptr();
                let x0 = _mm256_xor_ps(w, m0);
                let x1 = _mm256_xor_ps(w, m1);
                _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), x0));
                _mm256_storeu_ps(a.add(8), _mm256_add_ps(_mm256_loadu_ps(a.add(8)), x1));
            }
        }
    }
}

// A batch's four rows: row r holds entries 16r .. 16r + 15, bits `16·(r mod 2) ..` of
// the batch's word `r div 2` (`w0`, `w1`). Rows spelled out, and no closures: the row
// operations must inline into the AVX2-compiled callers.

/// acc += g over one batch, signs from its words.
#[inline(always)]
fn flipped_batch<R: Rows>(acc: &mut [F; 4], g: &[F; 4], (w0, w1): (u32, u32)) {
    let [a0, a1, a2, a3] = acc;
    R::add_flipped(a0, &g[0], w0);
    R::add_flipped(a1, &g[1], w0 >> 16);
    R::add_flipped(a2, &g[2], w1);
    R::add_flipped(a3, &g[3], w1 >> 16);
}

/// acc += ±w over one batch (`w` as bits), signs from its words.
#[inline(always)]
fn signed_batch<R: Rows>(acc: &mut [F; 4], w: u32, (w0, w1): (u32, u32)) {
    let [a0, a1, a2, a3] = acc;
    R::add_signed(a0, w, w0);
    R::add_signed(a1, w, w0 >> 16);
    R::add_signed(a2, w, w1);
    R::add_signed(a3, w, w1 >> 16);
}

/// The two words of batch `b` of a chunk.
#[inline(always)]
fn batch_words(words: &[u32; WORDS], b: usize) -> (u32, u32) {
    (words[2 * b], words[2 * b + 1])
}

/// partial[j] = Σ_e sign_{dir0+j}[e]·g[e] over one chunk (`g` zero-padded to
/// [`CHUNK`], `nb` live batches).
#[inline(always)]
fn project_chunk<G: Gen, R: Rows>(
    bk: &BlockKey,
    (dir0, chunk): (u32, u32),
    g: &[[F; 4]],
    partial: &mut [f32],
) {
    // Direction-outer: a direction's 64 accumulators stay in registers over the
    // chunk's batches, the chunk of g in L1 for every direction.
    let mut words = [0u32; WORDS];
    for (j, p) in partial.iter_mut().enumerate() {
        chunk_words::<G>(bk, dir0.wrapping_add(j as u32), chunk, &mut words);
        let mut acc = [[0f32; L]; 4];
        for (b, gb) in g.iter().enumerate() {
            flipped_batch::<R>(&mut acc, gb, batch_words(&words, b));
        }
        *p = reduce_batch(&acc);
    }
}

/// out[e] = base[e] + Σ_j ±w[j] over one chunk, j in order from an accumulator of 0
/// (w = 0 skipped, as the other families do: it changes nothing).
#[inline(always)]
fn expand_chunk<G: Gen, R: Rows>(
    bk: &BlockKey,
    (dir0, chunk): (u32, u32),
    w: &[f32],
    base: &[f32],
    out: &mut [f32],
) {
    let nb = out.len().div_ceil(BATCH);
    let mut acc = [[[0f32; L]; 4]; CHUNK / BATCH];
    let mut words = [[0u32; WORDS]; EXPAND_TILE];
    for (t, wt) in w.chunks(EXPAND_TILE).enumerate() {
        let j0 = t * EXPAND_TILE;
        for (jj, (words, &wj)) in words.iter_mut().zip(wt).enumerate() {
            if wj != 0.0 {
                chunk_words::<G>(bk, dir0.wrapping_add((j0 + jj) as u32), chunk, words);
            }
        }
        for (b, a) in acc[..nb].iter_mut().enumerate() {
            // The batch's accumulators stay in registers across the tile's directions.
            let mut t = *a;
            for (words, &wj) in words.iter().zip(wt) {
                if wj == 0.0 {
                    continue;
                }
                signed_batch::<R>(&mut t, wj.to_bits(), batch_words(words, b));
            }
            *a = t;
        }
    }
    for (q, (o, &x)) in out.iter_mut().zip(base).enumerate() {
        *o = x + acc[q / BATCH][q % BATCH / L][q % L];
    }
}

/// out[e] = scale·sign[e] (a sign flip of `scale`) over one chunk of direction `dir`.
#[inline(always)]
fn generate_chunk<G: Gen>(bk: &BlockKey, (dir, chunk): (u32, u32), scale: f32, out: &mut [f32]) {
    let mut words = [0u32; WORDS];
    chunk_words::<G>(bk, dir, chunk, &mut words);
    for (e, o) in out.iter_mut().enumerate() {
        let bit = (e % SIGNS_PER_WORD) as u32;
        *o = f32::from_bits(scale.to_bits() ^ sign_mask(words[e / SIGNS_PER_WORD], bit));
    }
}

multiversion!(project_mv<G: Gen> => project_chunk<G; x86::Avx2, Portable>(bk: &BlockKey, at: (u32, u32), g: &[[F; 4]], partial: &mut [f32]));
multiversion!(expand_mv<G: Gen> => expand_chunk<G; x86::Avx2, Portable>(bk: &BlockKey, at: (u32, u32), w: &[f32], base: &[f32], out: &mut [f32]));
multiversion!(generate_mv<G: Gen> => generate_chunk(bk: &BlockKey, at: (u32, u32), scale: f32, out: &mut [f32]));

/// g's chunk in batch layout (entry q of batch b at row q div 16, lane q mod 16) in
/// `out` (zeros: the tail of the last batch stays 0, and its ±0 change no sum);
/// returns the live batches.
fn chunk_of(g: &[f32], out: &mut [[F; 4]; CHUNK / BATCH]) -> usize {
    for (q, &v) in g.iter().enumerate() {
        out[q / BATCH][q % BATCH / L][q % L] = v;
    }
    g.len().div_ceil(BATCH)
}

/// [`super::project_cpu`] for packed signs.
pub(super) fn project(simd: Simd, bases: &Bases, g: &[f32], coords: &mut [f32]) {
    let comps = bases.compartments;
    // One task per (compartment, chunk, direction group); partials[comp][chunk][dir].
    let nchunks: Vec<usize> = comps.iter().map(|c| c.len.div_ceil(CHUNK)).collect();
    let sizes: Vec<usize> = comps
        .iter()
        .zip(&nchunks)
        .map(|(c, n)| c.dims * n)
        .collect();
    let mut partials = vec![0f32; sizes.iter().sum()];
    let keys: Vec<BlockKey> = comps.iter().map(|c| bases.block_key(c)).collect();
    let mut tasks = Vec::new();
    let mut rest: &mut [f32] = &mut partials;
    for (ci, c) in comps.iter().enumerate() {
        for chunk in 0..nchunks[ci] {
            for g0 in (0..c.dims).step_by(DIR_GROUP) {
                let (head, tail) = rest.split_at_mut(DIR_GROUP.min(c.dims - g0));
                rest = tail;
                tasks.push((ci, chunk, g0, head));
            }
        }
    }
    let generator = bases.stream.generator;
    tasks.into_par_iter().for_each(|(ci, chunk, g0, out)| {
        let c = &comps[ci];
        let start = chunk * CHUNK;
        let gc = &g[c.offset + start..c.offset + (start + CHUNK).min(c.len)];
        let mut gs = [[[0f32; L]; 4]; CHUNK / BATCH];
        let nb = chunk_of(gc, &mut gs);
        let at = ((c.first + g0) as u32, chunk as u32);
        by_generator!(generator, project_mv(simd, &keys[ci], at, &gs[..nb], out));
    });
    let offsets = coord_offsets(comps);
    let mut p0 = 0;
    for (ci, c) in comps.iter().enumerate() {
        let part = &partials[p0..p0 + sizes[ci]];
        for j in 0..c.dims {
            let mut t = 0f32;
            for chunk in 0..nchunks[ci] {
                t += part[chunk * c.dims + j];
            }
            coords[offsets[ci] + j] = bases.scale * t;
        }
        p0 += sizes[ci];
    }
}

/// [`super::expand_cpu`] for packed signs: the chunk `(compartment, chunk)` of `out`
/// (its entries from `pos`) with weights `w` (alpha·scale·coords, all compartments).
pub(super) fn expand_task(
    simd: Simd,
    bases: &Bases,
    (ci, chunk): (usize, usize),
    w: &[f32],
    base: &[f32],
    out: &mut [f32],
) {
    let c = &bases.compartments[ci];
    let bk = bases.block_key(c);
    let at = (c.first as u32, chunk as u32);
    let generator = bases.stream.generator;
    by_generator!(generator, expand_mv(simd, &bk, at, w, base, out));
}

/// [`super::generate_cpu`] for packed signs: one chunk of direction `j` of compartment
/// `c` of the bases.
pub(super) fn generate_task(
    simd: Simd,
    bases: &Bases,
    (ci, j, chunk): (usize, usize, usize),
    out: &mut [f32],
) {
    let c = &bases.compartments[ci];
    let bk = bases.block_key(c);
    let at = ((c.first + j) as u32, chunk as u32);
    let (generator, scale) = (bases.stream.generator, bases.scale);
    by_generator!(generator, generate_mv(simd, &bk, at, scale, out));
}
