//! The native cpu implementation: rayon over (compartment, element chunk, direction
//! group) tasks of fixed size, so the summation order never depends on the thread
//! count; each task generates its directions 64 entries at a time with the vectorised
//! stream of [`crate::rng::lanes`], compiled once per instruction-set level
//! ([`super::simd`]) and chosen at run time; every level gives the same bits.

use super::signs;
use super::simd::{multiversion, Simd};
use super::tune::{CpuPlan, StepStrategy, MAX_BLOCK_DIRS};
use super::{check_compartments, coord_offsets, Bases, Compartment};
use crate::rng::lanes::{Bern, Dist, Gauss, Gen, PhiloxGen, ThreefryGen, Uniform, BATCH, F, L, U};
use crate::rng::{BlockKey, DistParams, Distribution, Generator};
use crate::scratch::with_scratch;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Entries per element chunk (a multiple of [`BATCH`]); fixed, so results do not
/// depend on the thread count.
pub const CHUNK: usize = 4096;
const BATCHES: usize = CHUNK / BATCH;
/// Directions per project task.
const DIR_GROUP: usize = 64;

/// Calls `$f::<G, D>(args)` for the stream's generator and distribution.
macro_rules! dispatch {
    ($gen:expr, $dist:expr, $f:ident ( $($arg:expr),* )) => {
        match ($gen, $dist) {
            (Generator::Philox, Distribution::Gaussian) => $f::<PhiloxGen, Gauss>($($arg),*),
            (Generator::Philox, Distribution::Uniform) => $f::<PhiloxGen, Uniform>($($arg),*),
            (Generator::Philox, Distribution::Bernoulli { .. } | Distribution::BernoulliReleased { .. }) => $f::<PhiloxGen, Bern>($($arg),*),
            (Generator::Threefry, Distribution::Gaussian) => $f::<ThreefryGen, Gauss>($($arg),*),
            (Generator::Threefry, Distribution::Uniform) => $f::<ThreefryGen, Uniform>($($arg),*),
            (Generator::Threefry, Distribution::Bernoulli { .. } | Distribution::BernoulliReleased { .. }) => $f::<ThreefryGen, Bern>($($arg),*),
            (_, Distribution::Rademacher) => unreachable!("packed signs take signs.rs's path"),
        }
    };
}

mod stored;
pub use stored::{keeping, StoredBasis, KEEP_ENV, KEEP_LIMIT_BYTES};

/// The directions and entries one chunk task covers: directions `dir0 ..` of the
/// (step, compartment) pass `bk`, from batch `batch0` of the compartment on.
#[derive(Clone, Copy)]
struct Dirs<'a> {
    bk: &'a BlockKey,
    dp: &'a DistParams,
    dir0: u32,
    batch0: u32,
}

impl Dirs<'_> {
    /// Raw values of batch `b` (counted from `batch0`) of direction `dir0 + j`.
    #[inline(always)]
    fn values<G: Gen, D: Dist>(&self, j: usize, b: usize) -> [F; 4] {
        let dir = self.dir0.wrapping_add(j as u32);
        D::values(&G::words(self.bk, dir, self.batch0 + b as u32), self.dp)
    }
}

/// acc += v·g lane-wise (one row: a single vector register at AVX-512).
#[inline(always)]
fn dot_row(acc: &mut F, v: &F, g: &F) {
    for l in 0..L {
        acc[l] += v[l] * g[l];
    }
}

/// acc += w·v lane-wise.
#[inline(always)]
fn axpy_row(acc: &mut F, w: f32, v: &F) {
    for l in 0..L {
        acc[l] += w * v[l];
    }
}

/// Fixed-order sum of a batch of accumulators: rows pairwise, then lanes as a tree.
#[inline(always)]
pub(super) fn reduce_batch(acc: &[F; 4]) -> f32 {
    let mut s = [0f32; L];
    for l in 0..L {
        s[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
    }
    let mut h = L / 2;
    while h > 0 {
        for l in 0..h {
            s[l] += s[l + h];
        }
        h /= 2;
    }
    s[0]
}

/// partial[j] = Σ_e raw_{dir0 + j}[e]·g[e] over one chunk (`g` starts at entry
/// `64·batch0` of the compartment; at most CHUNK entries; at most DIR_GROUP directions).
#[inline(always)]
fn project_chunk<G: Gen, D: Dist>(dirs: Dirs, g: &[f32], partial: &mut [f32]) {
    let nb = g.len().div_ceil(BATCH);
    let mut gs = [[[0f32; L]; 4]; BATCHES];
    for (q, &v) in g.iter().enumerate() {
        let (r, l) = G::pos(q % BATCH);
        gs[q / BATCH][r][l] = v;
    }
    // Batch-outer, direction-inner: each direction's accumulators live in L1 (as
    // expand's do in registers); per lane the sum still runs over batches in order.
    let mut accs = [[[0f32; L]; 4]; DIR_GROUP];
    let accs = &mut accs[..partial.len()];
    for (b, gb) in gs[..nb].iter().enumerate() {
        dot_batch::<G, D>(dirs, b, gb, accs, |_, _| {});
    }
    for (p, acc) in partial.iter_mut().zip(accs.iter()) {
        *p = reduce_batch(acc);
    }
}

/// acc += v·g row by row (rows spelled out: as a loop, LLVM vectorises across rows
/// with gathers).
#[inline(always)]
fn dot_rows(acc: &mut [F; 4], v: &[F; 4], g: &[F; 4]) {
    let [a0, a1, a2, a3] = acc;
    dot_row(a0, &v[0], &g[0]);
    dot_row(a1, &v[1], &g[1]);
    dot_row(a2, &v[2], &g[2]);
    dot_row(a3, &v[3], &g[3]);
}

/// Adds batch `b`'s products with `gb` to the accumulators of directions `dir0 ..`
/// (`accs[j]` for direction `dir0 + j`) and hands each direction's values to
/// `keep(j, values)`. Two directions per step, both directions' words first and then
/// both maps: two independent dependency chains for the core to overlap (written as
/// `values(words(a)); values(words(b))`, LLVM does not overlap them across `words`'
/// `black_box`, and the pass is 12% slower; the same bits either way).
#[inline(always)]
fn dot_batch<G: Gen, D: Dist>(
    dirs: Dirs,
    b: usize,
    gb: &[F; 4],
    accs: &mut [[F; 4]],
    mut keep: impl FnMut(usize, &[F; 4]),
) {
    let (n, batch) = (accs.len(), dirs.batch0 + b as u32);
    let mut pairs = accs.chunks_exact_mut(2);
    for (jp, two) in (&mut pairs).enumerate() {
        let j = 2 * jp;
        let dir = dirs.dir0.wrapping_add(j as u32);
        let wa = G::words(dirs.bk, dir, batch);
        let wb = G::words(dirs.bk, dir.wrapping_add(1), batch);
        let (va, vb) = (D::values(&wa, dirs.dp), D::values(&wb, dirs.dp));
        let [acc_a, acc_b] = two else { unreachable!() };
        dot_rows(acc_a, &va, gb);
        dot_rows(acc_b, &vb, gb);
        keep(j, &va);
        keep(j + 1, &vb);
    }
    if let [acc] = pairs.into_remainder() {
        let v = dirs.values::<G, D>(n - 1, b);
        dot_rows(acc, &v, gb);
        keep(n - 1, &v);
    }
}

/// out[e] = base[e] + Σ_j w[j]·raw_{dir0 + j}[e] over one chunk, j in order (w = 0
/// skipped: adding ±0 to an accumulator that started at +0 changes nothing). Batch by
/// batch, so the accumulators stay in registers.
#[inline(always)]
fn expand_chunk<G: Gen, D: Dist>(dirs: Dirs, w: &[f32], base: &[f32], out: &mut [f32]) {
    for (b, (ob, bb)) in out.chunks_mut(BATCH).zip(base.chunks(BATCH)).enumerate() {
        let mut acc = [[0f32; L]; 4];
        // Two directions per step (independent generation chains); the additions
        // keep direction order.
        let mut j = 0;
        while j < w.len() {
            let dir = dirs.dir0.wrapping_add(j as u32);
            let batch = dirs.batch0 + b as u32;
            if j + 1 < w.len() && w[j] != 0.0 && w[j + 1] != 0.0 {
                // Both words first, then both maps (see dot_batch).
                let wa = G::words(dirs.bk, dir, batch);
                let wb = G::words(dirs.bk, dir.wrapping_add(1), batch);
                let (va, vb) = (D::values(&wa, dirs.dp), D::values(&wb, dirs.dp));
                let [a0, a1, a2, a3] = &mut acc;
                axpy_row(a0, w[j], &va[0]);
                axpy_row(a1, w[j], &va[1]);
                axpy_row(a2, w[j], &va[2]);
                axpy_row(a3, w[j], &va[3]);
                axpy_row(a0, w[j + 1], &vb[0]);
                axpy_row(a1, w[j + 1], &vb[1]);
                axpy_row(a2, w[j + 1], &vb[2]);
                axpy_row(a3, w[j + 1], &vb[3]);
                j += 2;
                continue;
            }
            if w[j] != 0.0 {
                let v = dirs.values::<G, D>(j, b);
                let [a0, a1, a2, a3] = &mut acc;
                axpy_row(a0, w[j], &v[0]);
                axpy_row(a1, w[j], &v[1]);
                axpy_row(a2, w[j], &v[2]);
                axpy_row(a3, w[j], &v[3]);
            }
            j += 1;
        }
        for (q, (o, &x)) in ob.iter_mut().zip(bb).enumerate() {
            let (r, l) = G::pos(q);
            *o = x + acc[r][l];
        }
    }
}

/// out[e] = scale·raw_dir0[e] over one chunk.
#[inline(always)]
fn generate_chunk<G: Gen, D: Dist>(dirs: Dirs, scale: f32, out: &mut [f32]) {
    for (b, ob) in out.chunks_mut(BATCH).enumerate() {
        let v = dirs.values::<G, D>(0, b);
        for (q, o) in ob.iter_mut().enumerate() {
            let (r, l) = G::pos(q);
            *o = scale * v[r][l];
        }
    }
}

multiversion!(project_mv<G: Gen, D: Dist> => project_chunk(dirs: Dirs, g: &[f32], partial: &mut [f32]));
multiversion!(expand_mv<G: Gen, D: Dist> => expand_chunk(dirs: Dirs, w: &[f32], base: &[f32], out: &mut [f32]));
multiversion!(generate_mv<G: Gen, D: Dist> => generate_chunk(dirs: Dirs, scale: f32, out: &mut [f32]));

pub(super) fn checked(comps: &[Compartment], n: usize) {
    if let Err(e) = check_compartments(comps, n) {
        panic!("random bases: {e}");
    }
}

/// `coords[j] = scale · Σ_e raw_j[e]·g[e]` for every compartment's directions
/// (compartment-major). The sum over a compartment runs per chunk of [`CHUNK`]
/// entries (64 lane accumulators, fixed tree) and then over chunks in order.
pub fn project_cpu(bases: &Bases, g: &[f32], coords: &mut [f32]) {
    project_cpu_with(Simd::detect(), bases, g, coords)
}

/// [`project_cpu`] at a chosen instruction-set level (must be in [`Simd::available`]).
pub fn project_cpu_with(simd: Simd, bases: &Bases, g: &[f32], coords: &mut [f32]) {
    bases.expect_iid();
    assert!(Simd::available().contains(&simd), "{simd:?} not available");
    let comps = bases.compartments;
    checked(comps, g.len());
    assert_eq!(coords.len(), bases.dims(), "coords length must be Σ dims");
    let stream = bases.stream;
    if stream.distribution == Distribution::Rademacher {
        return signs::project(simd, bases, g, coords);
    }
    let dp = stream.distribution.params();
    // partials[comp][chunk][dir], one task per (comp, chunk, direction group).
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
                let n = DIR_GROUP.min(c.dims - g0);
                let (head, tail) = rest.split_at_mut(n);
                rest = tail;
                tasks.push((ci, chunk, g0, head));
            }
        }
    }
    tasks.into_par_iter().for_each(|(ci, chunk, g0, out)| {
        let c = &comps[ci];
        let start = chunk * CHUNK;
        let end = (start + CHUNK).min(c.len);
        let gc = &g[c.offset + start..c.offset + end];
        let dirs = Dirs {
            bk: &keys[ci],
            dp: &dp,
            dir0: (c.first + g0) as u32,
            batch0: (start / BATCH) as u32,
        };
        dispatch!(
            stream.generator,
            stream.distribution,
            project_mv(simd, dirs, gc, out)
        );
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

/// `out = base + alpha·scale·Σ_j coords[j]·raw_j` (per element: weights
/// `w_j = (alpha·scale)·coords[j]` in f32, accumulated from 0 in direction order, then
/// added to `base`). Elements outside every compartment are copied from `base`.
pub fn expand_cpu(bases: &Bases, coords: &[f32], alpha: f32, base: &[f32], out: &mut [f32]) {
    expand_cpu_with(Simd::detect(), bases, coords, alpha, base, out)
}

/// [`expand_cpu`] at a chosen instruction-set level (must be in [`Simd::available`]).
pub fn expand_cpu_with(
    simd: Simd,
    bases: &Bases,
    coords: &[f32],
    alpha: f32,
    base: &[f32],
    out: &mut [f32],
) {
    bases.expect_iid();
    assert!(Simd::available().contains(&simd), "{simd:?} not available");
    assert_eq!(base.len(), out.len(), "base and out lengths differ");
    let comps = bases.compartments;
    checked(comps, out.len());
    assert_eq!(coords.len(), bases.dims(), "coords length must be Σ dims");
    let stream = bases.stream;
    let dp = stream.distribution.params();
    let a = alpha * bases.scale;
    let offsets = coord_offsets(comps);
    let w: Vec<f32> = coords.iter().map(|&c| a * c).collect();
    // Walk `out` in offset order: gaps are copied, compartments split into chunks.
    let mut order: Vec<usize> = (0..comps.len()).filter(|&i| comps[i].len > 0).collect();
    order.sort_by_key(|&i| comps[i].offset);
    // (compartment and chunk, or None for a gap to copy; start in `out`; the slice)
    type Task<'a> = (Option<(usize, usize)>, usize, &'a mut [f32]);
    let mut tasks: Vec<Task> = Vec::new();
    let mut rest: &mut [f32] = out;
    let mut pos = 0;
    for &ci in &order {
        let c = &comps[ci];
        let (gap, tail) = rest.split_at_mut(c.offset - pos);
        tasks.push((None, pos, gap));
        rest = tail;
        pos = c.offset;
        for chunk in 0..c.len.div_ceil(CHUNK) {
            let n = CHUNK.min(c.len - chunk * CHUNK);
            let (head, tail) = rest.split_at_mut(n);
            tasks.push((Some((ci, chunk)), pos, head));
            rest = tail;
            pos += n;
        }
    }
    let end = pos + rest.len();
    tasks.push((None, pos, rest));
    debug_assert_eq!(end, base.len());
    tasks.into_par_iter().for_each(|(what, pos, o)| match what {
        None => o.copy_from_slice(&base[pos..pos + o.len()]),
        Some((ci, chunk)) => {
            let c = &comps[ci];
            let wc = &w[offsets[ci]..offsets[ci] + c.dims];
            let b = &base[pos..pos + o.len()];
            if stream.distribution == Distribution::Rademacher {
                return signs::expand_task(simd, bases, (ci, chunk), wc, b, o);
            }
            let bk = bases.block_key(c);
            let dirs = Dirs {
                bk: &bk,
                dp: &dp,
                dir0: c.first as u32,
                batch0: (chunk * CHUNK / BATCH) as u32,
            };
            dispatch!(
                stream.generator,
                stream.distribution,
                expand_mv(simd, dirs, wc, b, o)
            );
        }
    });
}

/// Materialises the directions, compartment after compartment: compartment `c`'s
/// `dims × len` block holds `scale·raw_{first+j}[e]` at `j·len + e`
/// (`out.len() == Σ dims·len`).
pub fn generate_cpu(bases: &Bases, out: &mut [f32]) {
    bases.expect_iid();
    let comps = bases.compartments;
    let n = comps.iter().map(|c| c.offset + c.len).max().unwrap_or(0);
    checked(comps, n);
    assert_eq!(
        out.len(),
        bases.generated_len(),
        "out must hold Σ dims × len values"
    );
    let stream = bases.stream;
    let dp = stream.distribution.params();
    let simd = Simd::detect();
    let mut rest = out;
    for (ci, comp) in comps.iter().enumerate() {
        let (mine, tail) = rest.split_at_mut(comp.dims * comp.len);
        rest = tail;
        if comp.len == 0 {
            continue;
        }
        let bk = bases.block_key(comp);
        mine.par_chunks_mut(comp.len)
            .enumerate()
            .for_each(|(j, row)| {
                row.par_chunks_mut(CHUNK)
                    .enumerate()
                    .for_each(|(chunk, o)| {
                        if stream.distribution == Distribution::Rademacher {
                            return signs::generate_task(simd, bases, (ci, j, chunk), o);
                        }
                        let dirs = Dirs {
                            bk: &bk,
                            dp: &dp,
                            dir0: (comp.first + j) as u32,
                            batch0: (chunk * CHUNK / BATCH) as u32,
                        };
                        dispatch!(
                            stream.generator,
                            stream.distribution,
                            generate_mv(simd, dirs, bases.scale, o)
                        );
                    })
            });
    }
}

// ---------------------------------------------------------------------------------
// One RBD step with each direction generated once.

/// One chunk's buffers in a block step (batch layout): the per-entry accumulator,
/// the previous block's stored directions and the next block's, direction-major.
struct BlockBufs<'a> {
    prev: &'a [[F; 4]],
    acc: &'a mut [[F; 4]],
    cur: &'a mut [[F; 4]],
}

/// One chunk of a block step, batch by batch: `acc += Σ_j w_prev[j]·prev_j` over the
/// previous block's stored directions (j in order, `w = 0` skipped, as in
/// [`expand_chunk`]), then the next block's directions `dir0 ..` are generated into
/// `cur` (batch layout, direction-major) while their dot products with `g` (`gs`: in
/// batch layout, zero past the end) are summed exactly as [`project_chunk`] sums them,
/// into `partial`.
#[inline(always)]
fn block_chunk<G: Gen, D: Dist>(
    dirs: Dirs,
    w_prev: &[f32],
    bufs: BlockBufs,
    gs: &[[F; 4]],
    partial: &mut [f32],
) {
    let BlockBufs { prev, acc, cur } = bufs;
    let nb = acc.len();
    let mut accs = [[[0f32; L]; 4]; MAX_BLOCK_DIRS];
    let accs = &mut accs[..partial.len()];
    for b in 0..nb {
        add_weighted(&mut acc[b], w_prev, prev, nb, b);
        // Then the next block: its products with g, its values kept in `cur`.
        dot_batch::<G, D>(dirs, b, &gs[b], accs, |j, v| cur[j * nb + b] = *v);
    }
    for (p, a) in partial.iter_mut().zip(accs.iter()) {
        *p = reduce_batch(a);
    }
}

/// `acc += Σ_j w_prev[j]·prev_j` for batch `b` of a block stored direction-major (`nb`
/// batches a direction), j in order, `w = 0` skipped; the accumulator stays in registers
/// across the directions (one load and one store per batch).
#[inline(always)]
fn add_weighted(acc: &mut [F; 4], w_prev: &[f32], prev: &[[F; 4]], nb: usize, b: usize) {
    let mut t = *acc;
    for (j, &w) in w_prev.iter().enumerate() {
        if w == 0.0 {
            continue;
        }
        let v = &prev[j * nb + b];
        axpy_row(&mut t[0], w, &v[0]);
        axpy_row(&mut t[1], w, &v[1]);
        axpy_row(&mut t[2], w, &v[2]);
        axpy_row(&mut t[3], w, &v[3]);
    }
    *acc = t;
}

multiversion!(block_mv<G: Gen, D: Dist> => block_chunk(dirs: Dirs, w_prev: &[f32], bufs: BlockBufs, gs: &[[F; 4]], partial: &mut [f32]));

/// One RBD step with every direction entry generated once: returns the coordinates
/// `coords[j] = scale·Σ_e raw_j[e]·g[e]` and writes `out = base + alpha·scale·Σ_j
/// coords[j]·raw_j`, **bitwise equal** to [`project_cpu`] followed by [`expand_cpu`]
/// (same sums in the same order).
///
/// How: the plan in force ([`CpuPlan::current`]) chooses between project then expand
/// ([`StepStrategy::TwoPasses`]) and generating each entry once
/// ([`StepStrategy::GenerateOnce`]): per compartment, directions are taken in blocks of k
/// (k·len·4 bytes ≤ the plan's block bytes, so that the block stays in cache where
/// the machine allows): a pass over the element chunks generates the block
/// once, keeping it, and sums its dot products with `g`; the chunk sums give the
/// block's coordinates; the next pass adds the block's weighted directions from the
/// kept copy to a per-entry accumulator (while generating the next block). Scratch:
/// 2·k·len + len floats, never d·len. The accumulator starts at 0, takes the
/// directions in order, and is added to `base` last, exactly as in [`expand_cpu`].
///
/// `delta`, if given, receives the accumulator itself, `alpha·scale·Φc` (0 outside
/// every compartment): bitwise what [`expand_cpu`] returns on a base of zeros, so a
/// caller that also wants the update vector (the gradient correlation) need not
/// regenerate the directions.
pub fn project_expand_cpu(
    bases: &Bases,
    g: &[f32],
    alpha: f32,
    base: &[f32],
    out: &mut [f32],
    delta: Option<&mut [f32]>,
) -> Vec<f32> {
    project_expand_cpu_with(&CpuPlan::current().plan, bases, g, alpha, base, out, delta)
}

/// [`project_expand_cpu`] under a chosen plan (its level must be in
/// [`Simd::available`]): the plan changes the speed, never the result.
pub fn project_expand_cpu_with(
    plan: &CpuPlan,
    bases: &Bases,
    g: &[f32],
    alpha: f32,
    base: &[f32],
    out: &mut [f32],
    delta: Option<&mut [f32]>,
) -> Vec<f32> {
    let update = Update {
        alpha,
        base,
        out,
        delta,
    };
    fused_step(plan, bases, g, update, None, Values::Stream)
}

/// [`project_expand_cpu_with`] on a basis kept in memory (`stored`, the directions of
/// `bases`): the values are read, not generated; bitwise the same result.
pub fn project_expand_stored(
    plan: &CpuPlan,
    stored: &StoredBasis,
    (bases, g, alpha): (&Bases, &[f32], f32),
    base: &[f32],
    out: &mut [f32],
    delta: Option<&mut [f32]>,
) -> Vec<f32> {
    assert!(stored.matches(bases), "the kept basis is not these bases'");
    let update = Update {
        alpha,
        base,
        out,
        delta,
    };
    fused_step(plan, bases, g, update, None, Values::Stored(stored))
}

/// What a step in the bases writes: `out = base + alpha·scale·Φc`, and the update
/// itself into `delta` if given.
struct Update<'a> {
    alpha: f32,
    base: &'a [f32],
    out: &'a mut [f32],
    delta: Option<&'a mut [f32]>,
}

/// Where the time of one [`project_expand_cpu`] under a generate-once plan goes, in
/// wall seconds (for `rbd bench rbd`'s phase table; all zero under a two-pass plan).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepPhases {
    /// Copying `base` to `out`, taking the scratch, `g` into batch layout.
    pub setup_s: f64,
    /// The block passes (each generates a block, sums its dot products with `g` and
    /// adds the previous block's weighted directions to the accumulator).
    pub passes_s: f64,
    /// Number of block passes (blocks + 1, per compartment).
    pub passes: usize,
    /// Seconds the chunk tasks of the passes ran, summed over tasks and divided by
    /// the threads: `passes_s − busy_s` is the time threads waited at the passes' joins.
    pub busy_s: f64,
    /// Between passes: the chunk sums into coordinates and weights (one thread).
    pub coords_s: f64,
    /// `out = base + acc` (and `delta`).
    pub finish_s: f64,
}

/// [`project_expand_cpu_with`] that also says where its time went: same result, bit
/// for bit (the timers only read clocks).
pub fn project_expand_cpu_phases(
    plan: &CpuPlan,
    bases: &Bases,
    g: &[f32],
    alpha: f32,
    base: &[f32],
    out: &mut [f32],
) -> (Vec<f32>, StepPhases) {
    timed_step(plan, bases, (g, alpha, base, out), Values::Stream)
}

/// The generate-once step of [`project_expand_cpu_phases`] with every generated value
/// replaced by a counter's bits (one add and one conversion a word, no generator, no
/// distribution map): the same passes, blocks, stores, loads and dot products, so its
/// time is the kept blocks' memory traffic and the passes' bookkeeping alone, what
/// generating each entry once costs beyond generating it. Measurement only: the
/// result means nothing. The plan must choose [`StepStrategy::GenerateOnce`].
pub fn project_expand_cpu_traffic(
    plan: &CpuPlan,
    bases: &Bases,
    g: &[f32],
    alpha: f32,
    base: &[f32],
    out: &mut [f32],
) -> StepPhases {
    timed_step(plan, bases, (g, alpha, base, out), Values::Counter).1
}

/// The fused step with its phases timed, filled with `values`.
fn timed_step(
    plan: &CpuPlan,
    bases: &Bases,
    (g, alpha, base, out): (&[f32], f32, &[f32], &mut [f32]),
    values: Values,
) -> (Vec<f32>, StepPhases) {
    let mut phases = StepPhases::default();
    let update = Update {
        alpha,
        base,
        out,
        delta: None,
    };
    let c = fused_step(plan, bases, g, update, Some(&mut phases), values);
    (c, phases)
}

/// What the generate-once passes fill their blocks with.
#[derive(Clone, Copy)]
enum Values<'a> {
    /// The stream's directions (every real step).
    Stream,
    /// A counter's bits as floats: [`project_expand_cpu_traffic`]'s measurement.
    Counter,
    /// The stream's directions, read from a kept basis ([`project_expand_stored`]).
    Stored(&'a StoredBasis),
}

/// Words that are a counter: lane `l` of row `r` is `batch + dir + L·r + l`.
struct CounterGen;

impl Gen for CounterGen {
    #[inline(always)]
    fn words(_: &BlockKey, dir: u32, batch: u32) -> [U; 4] {
        let base = batch.wrapping_add(dir);
        std::array::from_fn(|r| std::array::from_fn(|l| base.wrapping_add((L * r + l) as u32)))
    }
    fn pos(q: usize) -> (usize, usize) {
        (q / L, q % L)
    }
}

/// A word's bits converted to a float.
struct RawBits;

impl Dist for RawBits {
    #[inline(always)]
    fn values(w: &[U; 4], _: &DistParams) -> [F; 4] {
        std::array::from_fn(|r| std::array::from_fn(|l| w[r][l] as f32))
    }
}

/// The phases' stopwatch: reads the clock only when phases are asked for, so the
/// plain step makes no timing call at all.
struct Stopwatch(Option<Instant>);

impl Stopwatch {
    fn new(timed: bool) -> Self {
        Stopwatch(timed.then(Instant::now))
    }

    /// Seconds since the last lap (or start), 0 when untimed.
    fn lap(&mut self) -> f64 {
        match &mut self.0 {
            Some(t) => {
                let now = Instant::now();
                let s = (now - *t).as_secs_f64();
                *t = now;
                s
            }
            None => 0.0,
        }
    }

    /// Starts the next lap now (where the time since the last is another's).
    fn restart(&mut self) {
        if let Some(t) = &mut self.0 {
            *t = Instant::now();
        }
    }
}

fn fused_step(
    plan: &CpuPlan,
    bases: &Bases,
    g: &[f32],
    update: Update,
    mut phases: Option<&mut StepPhases>,
    values: Values,
) -> Vec<f32> {
    let Update {
        alpha,
        base,
        out,
        mut delta,
    } = update;
    bases.expect_iid();
    let simd = plan.simd;
    assert!(Simd::available().contains(&simd), "{simd:?} not available");
    assert_eq!(g.len(), base.len(), "g and base lengths differ");
    assert_eq!(base.len(), out.len(), "base and out lengths differ");
    if let Some(d) = delta.as_deref_mut() {
        assert_eq!(d.len(), out.len(), "delta and out lengths differ");
        d.fill(0.0);
    }
    let comps = bases.compartments;
    checked(comps, out.len());
    let distribution = bases.stream.distribution;
    let kept = matches!(values, Values::Stored(_));
    if !kept
        && (plan.strategy(distribution) == StepStrategy::TwoPasses
            || distribution == Distribution::Rademacher)
    {
        return two_passes(simd, bases, g, alpha, base, out, delta);
    }
    let mut clock = Stopwatch::new(phases.is_some());
    let mut coords = vec![0f32; bases.dims()];
    // Entries outside every compartment keep their base value.
    out.copy_from_slice(base);
    let stream = bases.stream;
    let dp = stream.distribution.params();
    let a = alpha * bases.scale;
    let offsets = coord_offsets(comps);
    // The block loop runs on a pool thread: its passes' parallel loops then start
    // from a worker that joins in, not from a caller that hands each pass to the pool
    // and sleeps until it ends (two wake-ups per pass, milliseconds a step where the
    // cores are shared).
    rayon::scope(|_| {
        for (ci, c) in comps.iter().enumerate() {
            if c.len == 0 {
                continue;
            }
            let bk = bases.block_key(c);
            let gc = &g[c.offset..c.offset + c.len];
            let cc = &mut coords[offsets[ci]..offsets[ci] + c.dims];
            let (oc, bc) = (
                &mut out[c.offset..c.offset + c.len],
                &base[c.offset..c.offset + c.len],
            );
            // Accumulator and the two block buffers, in per-thread scratch kept between
            // steps (allocating and faulting in megabytes per step costs milliseconds).
            let (nchunks, k) = (c.len.div_ceil(CHUNK), plan.block_dirs(c.len, CHUNK));
            let acc_len = nchunks * BATCHES;
            let block_len = nchunks * k * BATCHES;
            let floats = std::mem::size_of::<[F; 4]>() / 4;
            with_scratch::<f32, _>((2 * acc_len + 2 * block_len) * floats, |buf| {
                let buf: &mut [[F; 4]] = bytemuck::cast_slice_mut(buf);
                let (acc, rest) = buf.split_at_mut(acc_len);
                let (gs, rest) = rest.split_at_mut(acc_len);
                let (prev, cur) = rest.split_at_mut(block_len);
                acc.fill([[0f32; L]; 4]);
                // g in batch layout, once for all blocks.
                gs.par_chunks_mut(BATCHES)
                    .zip(gc.par_chunks(CHUNK))
                    .for_each(|(gs, g)| {
                        gs.fill([[0f32; L]; 4]);
                        for (q, &v) in g.iter().enumerate() {
                            let (r, l) = pos_of(stream.generator, q % BATCH);
                            gs[q / BATCH][r][l] = v;
                        }
                    });
                if let Some(p) = phases.as_deref_mut() {
                    p.setup_s += clock.lap();
                }
                let work = Block {
                    simd,
                    ci,
                    bases,
                    bk: &bk,
                    dp: &dp,
                    c,
                    k,
                    a,
                    values,
                };
                work.run(gs, cc, acc, (prev, cur), phases.as_deref_mut());
                clock.restart();
                let acc = &*acc;
                oc.par_chunks_mut(CHUNK)
                    .zip(bc.par_chunks(CHUNK))
                    .zip(acc.par_chunks(BATCHES))
                    .for_each(|((o, b), acc)| {
                        for (q, (o, &x)) in o.iter_mut().zip(b).enumerate() {
                            let (r, l) = pos_of(stream.generator, q % BATCH);
                            *o = x + acc[q / BATCH][r][l];
                        }
                    });
                if let Some(d) = delta.as_deref_mut() {
                    // `0 + acc`, as expand_cpu computes it on a zero base (turns −0 to +0).
                    d[c.offset..c.offset + c.len]
                        .par_chunks_mut(CHUNK)
                        .zip(acc.par_chunks(BATCHES))
                        .for_each(|(d, acc)| {
                            for (q, d) in d.iter_mut().enumerate() {
                                let (r, l) = pos_of(stream.generator, q % BATCH);
                                *d = 0.0 + acc[q / BATCH][r][l];
                            }
                        });
                }
                if let Some(p) = phases.as_deref_mut() {
                    p.finish_s += clock.lap();
                }
            });
        }
    });
    coords
}

/// [`project_expand_cpu`] as [`project_cpu`] then [`expand_cpu`]; with `delta`, expand
/// writes the update on a zero base (`0 + acc`) and `out = base + delta` inside the
/// compartments, which is `base + acc` (an accumulator that starts at +0 and only
/// adds never holds −0, so `0 + acc` is `acc` itself).
fn two_passes(
    simd: Simd,
    bases: &Bases,
    g: &[f32],
    alpha: f32,
    base: &[f32],
    out: &mut [f32],
    delta: Option<&mut [f32]>,
) -> Vec<f32> {
    let mut coords = vec![0f32; bases.dims()];
    project_cpu_with(simd, bases, g, &mut coords);
    match delta {
        None => expand_cpu_with(simd, bases, &coords, alpha, base, out),
        Some(d) => {
            let zeros = vec![0f32; base.len()];
            expand_cpu_with(simd, bases, &coords, alpha, &zeros, d);
            out.copy_from_slice(base);
            for c in bases.compartments {
                let span = c.offset..c.offset + c.len;
                for ((o, &b), &u) in out[span.clone()]
                    .iter_mut()
                    .zip(&base[span.clone()])
                    .zip(&d[span])
                {
                    *o = b + u;
                }
            }
        }
    }
    coords
}

/// (row, lane) of entry `q` of a batch for the stream's generator.
fn pos_of(generator: Generator, q: usize) -> (usize, usize) {
    match generator {
        Generator::Philox => PhiloxGen::pos(q),
        Generator::Threefry => ThreefryGen::pos(q),
    }
}

/// What the block passes of [`project_expand_cpu`] over one compartment need.
struct Block<'a> {
    simd: Simd,
    /// The compartment's index in `bases.compartments`.
    ci: usize,
    bases: &'a Bases<'a>,
    bk: &'a BlockKey,
    dp: &'a DistParams,
    c: &'a Compartment,
    /// Directions per block.
    k: usize,
    /// Factor of the coordinates in the weights: alpha·scale.
    a: f32,
    values: Values<'a>,
}

impl Block<'_> {
    /// Fills `coords` (scale·Φᵀg) and adds Σ_j (a·coords[j])·raw_j to `acc` (batch
    /// layout, chunk-major, [`BATCHES`] batches per chunk), using `prev` and `cur`
    /// (`k` directions per chunk each, chunk-major) for the blocks.
    fn run<'b>(
        &self,
        gs: &[[F; 4]],
        coords: &mut [f32],
        acc: &mut [[F; 4]],
        (mut prev, mut cur): (&'b mut [[F; 4]], &'b mut [[F; 4]]),
        mut phases: Option<&mut StepPhases>,
    ) {
        let (c, k, a) = (self.c, self.k, self.a);
        // Timed (phases asked for): nanoseconds the chunk tasks ran, summed.
        let busy_ns = AtomicU64::new(0);
        let timed = phases.is_some();
        let stream = self.bases.stream;
        let nchunks = c.len.div_ceil(CHUNK);
        let mut partials = vec![0f32; nchunks * k];
        let mut w_prev: Vec<f32> = Vec::with_capacity(k);
        let mut j0 = 0;
        let mut clock = Stopwatch::new(timed);
        loop {
            let kn = k.min(c.dims - j0);
            let dir0 = (c.first + j0) as u32;
            let wp = &w_prev[..];
            acc.par_chunks_mut(BATCHES)
                .zip(prev.par_chunks(k * BATCHES))
                .zip(cur.par_chunks_mut(k * BATCHES))
                .zip(partials.par_chunks_mut(k))
                .enumerate()
                .for_each(|(chunk, (((acc, prev), cur), partial))| {
                    let t = timed.then(Instant::now);
                    let start = chunk * CHUNK;
                    let nb = ((start + CHUNK).min(c.len) - start).div_ceil(BATCH);
                    let dirs = Dirs {
                        bk: self.bk,
                        dp: self.dp,
                        dir0,
                        batch0: (start / BATCH) as u32,
                    };
                    let bufs = BlockBufs {
                        prev: &prev[..wp.len() * nb],
                        acc: &mut acc[..nb],
                        cur: &mut cur[..kn * nb],
                    };
                    let gc = &gs[chunk * BATCHES..][..nb];
                    let partial = &mut partial[..kn];
                    match self.values {
                        Values::Counter => {
                            block_mv::<CounterGen, RawBits>(self.simd, dirs, wp, bufs, gc, partial)
                        }
                        Values::Stream => dispatch!(
                            stream.generator,
                            stream.distribution,
                            block_mv(self.simd, dirs, wp, bufs, gc, partial)
                        ),
                        // The kept block slices stand in for the scratch blocks.
                        Values::Stored(s) => {
                            let kept = s.chunk(self.ci, chunk);
                            let j = j0 - wp.len();
                            let blocks = (&kept[j * nb..j0 * nb], &kept[j0 * nb..(j0 + kn) * nb]);
                            stored::pass(self.simd, wp, blocks, bufs.acc, gc, partial);
                        }
                    }
                    if let Some(t) = t {
                        busy_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    }
                });
            if let Some(p) = phases.as_deref_mut() {
                p.passes_s += clock.lap();
                p.passes += 1;
            }
            if kn == 0 {
                if let Some(p) = phases {
                    let threads = rayon::current_num_threads() as f64;
                    p.busy_s += busy_ns.load(Ordering::Relaxed) as f64 * 1e-9 / threads;
                }
                return;
            }
            // Chunks in order, as project_cpu; then the weights expand_cpu would use.
            w_prev.clear();
            for j in 0..kn {
                let mut t = 0f32;
                for chunk in 0..nchunks {
                    t += partials[chunk * k + j];
                }
                coords[j0 + j] = self.bases.scale * t;
                w_prev.push(a * coords[j0 + j]);
            }
            std::mem::swap(&mut prev, &mut cur);
            j0 += kn;
            if let Some(p) = phases.as_deref_mut() {
                p.coords_s += clock.lap();
            }
        }
    }
}
