//! The native Fastfood transforms: rayon over (compartment, chunk of blocks) tasks of
//! fixed size (so no sum depends on the thread count). A task draws its blocks'
//! signs, diagonal and permutation words 64 at a time with the vectorised stream of
//! [`crate::rng::lanes`], builds each permutation by Fisher–Yates, and applies the
//! butterflies; the task body is compiled for baseline x86-64, AVX2 and AVX-512 and
//! chosen at run time. Only `+ − ×` and sign flips, no FMA: every level gives the
//! scalar reference's bits.

use super::{
    check_fastfood, entry_scale, permutation_from_words, stream_direction, Fastfood, FastfoodBases,
    PART_DIAGONAL, PART_PERMUTATION, PART_SIGNS,
};
use crate::random_bases::{coord_offsets, total_dims, Compartment, Simd};
use crate::rng::lanes::{Bern, Dist, Gauss, Gen, PhiloxGen, ThreefryGen, Uniform, BATCH};
use crate::rng::{BlockKey, DistParams, Distribution, Generator, Stream};
use rayon::prelude::*;

/// Generates `fn $name<G, D>(simd, args..)` calling `$body::<G, D>(args..)` compiled
/// for the requested instruction set (as `random_bases::cpu` does).
macro_rules! multiversion {
    ($name:ident => $body:ident ( $($arg:ident : $ty:ty),* )) => {
        fn $name<G: Gen, D: Dist>(simd: Simd, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2")]
                unsafe fn avx512<G: Gen, D: Dist>($($arg: $ty),*) {
                    $body::<G, D>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma,bmi2")]
                unsafe fn avx2<G: Gen, D: Dist>($($arg: $ty),*) {
                    $body::<G, D>($($arg),*)
                }
                match simd {
                    // SAFETY: `Simd::detect` only reports levels the processor has.
                    Simd::Avx512 => return unsafe { avx512::<G, D>($($arg),*) },
                    Simd::Avx2 => return unsafe { avx2::<G, D>($($arg),*) },
                    Simd::Generic => {}
                }
            }
            let _ = simd;
            $body::<G, D>($($arg),*)
        }
    };
}

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
            (_, Distribution::Rademacher) => unreachable!("fastfood bases refuse packed signs (check_distribution)"),
        }
    };
}

/// The drawn parameters of a run of consecutive blocks of one group (block-major).
#[derive(Default)]
struct Params {
    signs: Vec<u32>,
    diagonal: Vec<f32>,
    perm: Vec<u32>,
}

/// What every task of one call shares.
struct Call<'a> {
    stream: &'a Stream,
    comps: &'a [Compartment],
    ff: Fastfood,
    keys: Vec<BlockKey>,
    dp: DistParams,
}

impl<'a> Call<'a> {
    fn new(stream: &'a Stream, step: u64, comps: &'a [Compartment], ff: Fastfood) -> Self {
        Call {
            stream,
            comps,
            ff,
            keys: comps
                .iter()
                .map(|c| stream.block_key(step, c.index))
                .collect(),
            dp: stream.distribution.params(),
        }
    }

    /// Blocks `[first, end)` of chunk `chunk` of compartment `ci`.
    fn chunk_blocks(&self, ci: usize, chunk: usize) -> (usize, usize) {
        let per = self.ff.chunk_blocks();
        let first = chunk * per;
        (first, (first + per).min(self.ff.blocks(self.comps[ci].len)))
    }

    /// Chunks of compartment `ci`.
    fn chunks(&self, ci: usize) -> usize {
        self.ff
            .blocks(self.comps[ci].len)
            .div_ceil(self.ff.chunk_blocks())
    }
}

/// Fills `params` with blocks `[b0, b1)` of `group`: sign masks, diagonal values and
/// permutations, drawn 64 stream entries at a time.
#[inline(always)]
fn draw<G: Gen, D: Dist>(
    bk: &BlockKey,
    dp: &DistParams,
    l: usize,
    group: usize,
    (b0, b1): (usize, usize),
    params: &mut Params,
) {
    let n = (b1 - b0) * l;
    let padded = n.div_ceil(BATCH) * BATCH;
    params.signs.resize(padded, 0);
    params.diagonal.resize(padded, 0.0);
    params.perm.resize(padded, 0);
    // Blocks start at multiples of L, and a chunk's first block at a multiple of 4096
    // entries when L < 64: every batch is whole and aligned.
    let batch0 = (b0 * l / BATCH) as u32;
    let dirs = [
        stream_direction(group, PART_SIGNS),
        stream_direction(group, PART_DIAGONAL),
        stream_direction(group, PART_PERMUTATION),
    ];
    for b in 0..padded / BATCH {
        let batch = batch0 + b as u32;
        let ws = G::words(bk, dirs[0], batch);
        let wd = G::words(bk, dirs[1], batch);
        let wp = G::words(bk, dirs[2], batch);
        let vd = D::values(&wd, dp);
        for q in 0..BATCH {
            let (r, lane) = G::pos(q);
            params.signs[b * BATCH + q] = ws[r][lane] & 0x8000_0000;
            params.diagonal[b * BATCH + q] = vd[r][lane];
            // The words first; the permutation replaces them below.
            params.perm[b * BATCH + q] = wp[r][lane];
        }
    }
    let mut perm = vec![0u32; l];
    for block in params.perm[..n].chunks_exact_mut(l) {
        permutation_from_words(block, &mut perm);
        block.copy_from_slice(&perm);
    }
}

/// The first three butterfly stages (h = 1, 2, 4) of 8 entries, in the reference order.
#[inline(always)]
fn radix8(x: &mut [f32; 8]) {
    let a = [
        x[0] + x[1],
        x[0] - x[1],
        x[2] + x[3],
        x[2] - x[3],
        x[4] + x[5],
        x[4] - x[5],
        x[6] + x[7],
        x[6] - x[7],
    ];
    let b = [
        a[0] + a[2],
        a[1] + a[3],
        a[0] - a[2],
        a[1] - a[3],
        a[4] + a[6],
        a[5] + a[7],
        a[4] - a[6],
        a[5] - a[7],
    ];
    *x = [
        b[0] + b[4],
        b[1] + b[5],
        b[2] + b[6],
        b[3] + b[7],
        b[0] - b[4],
        b[1] - b[5],
        b[2] - b[6],
        b[3] - b[7],
    ];
}

/// x ← H x: the reference's butterflies (`super::fwht_reference`), the first three
/// stages eight entries at a time, the others as vector add/sub over halves.
#[inline(always)]
fn fwht(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    if n >= 8 {
        for c in x.chunks_exact_mut(8) {
            radix8(c.try_into().expect("8 entries"));
        }
        h = 8;
    }
    while h < n {
        for pair in x.chunks_exact_mut(2 * h) {
            let (a, b) = pair.split_at_mut(h);
            for (u, v) in a.iter_mut().zip(b.iter_mut()) {
                let (p, q) = (*u, *v);
                *u = p + q;
                *v = p - q;
            }
        }
        h *= 2;
    }
}

#[inline(always)]
fn flip(x: f32, mask: u32) -> f32 {
    f32::from_bits(x.to_bits() ^ mask)
}

/// y ← M x = H G Π H B x for one block (`x` is clobbered).
#[inline(always)]
fn forward(signs: &[u32], diag: &[f32], perm: &[u32], x: &mut [f32], y: &mut [f32]) {
    for (v, &s) in x.iter_mut().zip(signs) {
        *v = flip(*v, s);
    }
    fwht(x);
    for ((o, &k), &g) in y.iter_mut().zip(perm).zip(diag) {
        *o = g * x[k as usize];
    }
    fwht(y);
}

/// y ← Mᵀ x = B H Πᵀ G H x for one block (`x` is clobbered).
#[inline(always)]
fn transpose(signs: &[u32], diag: &[f32], perm: &[u32], x: &mut [f32], y: &mut [f32]) {
    fwht(x);
    for ((&v, &k), &g) in x.iter().zip(perm).zip(diag) {
        y[k as usize] = g * v;
    }
    fwht(y);
    for (v, &s) in y.iter_mut().zip(signs) {
        *v = flip(*v, s);
    }
}

/// Directions of the window of `c` inside group `q`, as columns `t0 .. t1` of the group
/// and coordinates from `k0` (counted from the compartment's first coordinate).
fn window_in_group(c: &Compartment, l: usize, q: usize) -> (usize, usize, usize) {
    let lo = c.first.max(q * l);
    let hi = (c.first + c.dims).min((q + 1) * l);
    (lo - q * l, hi - q * l, lo - c.first)
}

/// Project over one chunk of compartment `ci`: `partial[k]` = Σ over the chunk's blocks
/// (in order, from 0) of (Mᵀ g_block)[t] for coordinate k. The parameters it draws are
/// left in `stored` (one [`Params`] per group), for a fused expand.
#[inline(always)]
fn project_task<G: Gen, D: Dist>(
    call: &Call,
    ci: usize,
    chunk: usize,
    g: &[f32],
    stored: &mut [Params],
    partial: &mut [f32],
) {
    let (c, ff) = (&call.comps[ci], call.ff);
    let l = ff.block();
    let (b0, b1) = call.chunk_blocks(ci, chunk);
    let (mut x, mut y) = (vec![0f32; l], vec![0f32; l]);
    partial.fill(0.0);
    for (q, p) in ff.groups(c).zip(stored.iter_mut()) {
        draw::<G, D>(&call.keys[ci], &call.dp, l, q, (b0, b1), p);
        let (t0, t1, k0) = window_in_group(c, l, q);
        for (i, block) in (b0..b1).enumerate() {
            let e0 = block * l;
            let rows = l.min(c.len - e0);
            x[..rows].copy_from_slice(&g[e0..e0 + rows]);
            x[rows..].fill(0.0);
            let r = i * l..(i + 1) * l;
            transpose(
                &p.signs[r.clone()],
                &p.diagonal[r.clone()],
                &p.perm[r],
                &mut x,
                &mut y,
            );
            for (acc, &v) in partial[k0..k0 + t1 - t0].iter_mut().zip(&y[t0..t1]) {
                *acc += v;
            }
        }
    }
}

/// What an expand task reads: the groups' inputs and their parameters (drawn here
/// when `fresh`, else left by the project pass).
struct ExpandParts<'a> {
    inputs: &'a [Vec<f32>],
    stored: &'a mut [Params],
    fresh: bool,
}

/// What an expand task writes: `out = base + acc` and optionally `delta = 0 + acc`.
struct ExpandOut<'a> {
    base: &'a [f32],
    out: &'a mut [f32],
    delta: Option<&'a mut [f32]>,
}

/// Expand over one chunk of compartment `ci`: per block, `acc = 0; acc += M_q x_q` for
/// the groups in order (`inputs[q]` = the weighted coordinates placed at their
/// columns), then the rows of `o`.
#[inline(always)]
fn expand_task<G: Gen, D: Dist>(
    call: &Call,
    ci: usize,
    chunk: usize,
    parts: ExpandParts,
    o: &mut ExpandOut,
) {
    let (c, ff) = (&call.comps[ci], call.ff);
    let l = ff.block();
    let (b0, b1) = call.chunk_blocks(ci, chunk);
    let ExpandParts {
        inputs,
        stored,
        fresh,
    } = parts;
    if fresh {
        for (q, p) in ff.groups(c).zip(stored.iter_mut()) {
            draw::<G, D>(&call.keys[ci], &call.dp, l, q, (b0, b1), p);
        }
    }
    let (mut x, mut y, mut acc) = (vec![0f32; l], vec![0f32; l], vec![0f32; l]);
    let start = b0 * l;
    for (i, block) in (b0..b1).enumerate() {
        acc.fill(0.0);
        for (p, input) in stored.iter().zip(inputs) {
            x.copy_from_slice(input);
            let r = i * l..(i + 1) * l;
            forward(
                &p.signs[r.clone()],
                &p.diagonal[r.clone()],
                &p.perm[r],
                &mut x,
                &mut y,
            );
            for (a, &v) in acc.iter_mut().zip(&y) {
                *a += v;
            }
        }
        let e0 = block * l;
        let rows = l.min(c.len - e0);
        let at = e0 - start;
        for ((out, &b), &a) in o.out[at..at + rows]
            .iter_mut()
            .zip(&o.base[at..at + rows])
            .zip(&acc)
        {
            *out = b + a;
        }
        if let Some(d) = o.delta.as_deref_mut() {
            for (d, &a) in d[at..at + rows].iter_mut().zip(&acc) {
                *d = 0.0 + a;
            }
        }
    }
}

multiversion!(project_mv => project_task(call: &Call, ci: usize, chunk: usize, g: &[f32], stored: &mut [Params], partial: &mut [f32]));
multiversion!(expand_mv => expand_task(call: &Call, ci: usize, chunk: usize, parts: ExpandParts, o: &mut ExpandOut));

fn checked(comps: &[Compartment], n: usize, ff: Fastfood) {
    if let Err(e) = check_fastfood(comps, n, ff) {
        panic!("fastfood bases: {e}");
    }
}

/// Every (compartment, chunk) task, compartment-major.
fn tasks(call: &Call) -> Vec<(usize, usize)> {
    (0..call.comps.len())
        .flat_map(|ci| (0..call.chunks(ci)).map(move |k| (ci, k)))
        .collect()
}

/// Sums each compartment's chunk partials in order and scales them into `coords`.
fn reduce(call: &Call, scale: f32, partials: &[Vec<f32>], coords: &mut [f32]) {
    let m = entry_scale(call.ff, scale);
    let offsets = coord_offsets(call.comps);
    let mut task = 0;
    for (ci, c) in call.comps.iter().enumerate() {
        let n = call.chunks(ci);
        for k in 0..c.dims {
            let mut t = 0f32;
            for p in &partials[task..task + n] {
                t += p[k];
            }
            coords[offsets[ci] + k] = m * t;
        }
        task += n;
    }
}

/// The inputs of each compartment's groups: `a·coords[k]` at column (first + k) mod L of
/// its group, zero elsewhere, with `a = f32(f32(alpha·scale)·f32(1/√L))`.
fn expand_inputs(call: &Call, scale: f32, alpha: f32, coords: &[f32]) -> Vec<Vec<Vec<f32>>> {
    let (ff, l) = (call.ff, call.ff.block());
    let a = alpha * scale * ff.norm();
    let offsets = coord_offsets(call.comps);
    call.comps
        .iter()
        .zip(offsets)
        .map(|(c, off)| {
            ff.groups(c)
                .map(|q| {
                    let mut x = vec![0f32; l];
                    let (t0, t1, k0) = window_in_group(c, l, q);
                    for (t, &v) in (t0..t1).zip(&coords[off + k0..]) {
                        x[t] = a * v;
                    }
                    x
                })
                .collect()
        })
        .collect()
}

/// `out`'s compartment chunks as disjoint slices (in task order), after copying
/// `base` into the gaps between compartments.
fn chunk_slices<'o>(call: &Call, base: &[f32], out: &'o mut [f32]) -> Vec<&'o mut [f32]> {
    out.copy_from_slice(base);
    let mut order: Vec<usize> = (0..call.comps.len()).collect();
    order.sort_by_key(|&i| call.comps[i].offset);
    let mut slices: Vec<Option<Vec<&mut [f32]>>> = (0..call.comps.len()).map(|_| None).collect();
    let (mut rest, mut pos) = (out, 0);
    for ci in order {
        let c = &call.comps[ci];
        let (_, tail) = rest.split_at_mut(c.offset - pos);
        let (mut region, tail) = tail.split_at_mut(c.len);
        rest = tail;
        pos = c.offset + c.len;
        let mut chunks = Vec::new();
        for k in 0..call.chunks(ci) {
            let (b0, b1) = call.chunk_blocks(ci, k);
            let n = (b1 * call.ff.block()).min(c.len) - b0 * call.ff.block();
            let (head, tail) = region.split_at_mut(n);
            chunks.push(head);
            region = tail;
        }
        slices[ci] = Some(chunks);
    }
    slices.into_iter().flatten().flatten().collect()
}

impl FastfoodBases<'_> {
    fn call(&self) -> Call<'_> {
        Call::new(self.stream, self.step, self.comps, self.ff)
    }

    /// `coords[k] = m·Σ_blocks (Mᵀ g_block)[t_k]` per compartment (compartment-major),
    /// `m = f32(scale·f32(1/√L))`; the sum over blocks runs per chunk of
    /// [`Fastfood::chunk_blocks`] blocks in order, then over the chunks in order.
    pub fn project_cpu(&self, g: &[f32], coords: &mut [f32]) {
        self.project_cpu_with(Simd::detect(), g, coords)
    }

    /// [`Self::project_cpu`] at a chosen instruction-set level (in [`Simd::available`]).
    pub fn project_cpu_with(&self, simd: Simd, g: &[f32], coords: &mut [f32]) {
        assert!(Simd::available().contains(&simd), "{simd:?} not available");
        checked(self.comps, g.len(), self.ff);
        assert_eq!(
            coords.len(),
            total_dims(self.comps),
            "coords must hold Σ dims"
        );
        let call = self.call();
        let partials: Vec<Vec<f32>> = tasks(&call)
            .into_par_iter()
            .map(|(ci, k)| project_one(&call, simd, g, (ci, k)).0)
            .collect();
        reduce(&call, self.scale, &partials, coords);
    }

    /// `out = base + acc` with, per parameter, `acc = 0; acc += (M_q x_q)[r]` over the
    /// groups in order (`x_q`: `a·coords[k]` at the columns of group q, `a =
    /// f32(f32(alpha·scale)·f32(1/√L))`); parameters outside every compartment are
    /// copied from `base`.
    pub fn expand_cpu(&self, coords: &[f32], alpha: f32, base: &[f32], out: &mut [f32]) {
        self.expand_cpu_with(Simd::detect(), coords, alpha, base, out)
    }

    /// [`Self::expand_cpu`] at a chosen instruction-set level.
    pub fn expand_cpu_with(
        &self,
        simd: Simd,
        coords: &[f32],
        alpha: f32,
        base: &[f32],
        out: &mut [f32],
    ) {
        assert!(Simd::available().contains(&simd), "{simd:?} not available");
        assert_eq!(base.len(), out.len(), "base and out lengths differ");
        checked(self.comps, out.len(), self.ff);
        assert_eq!(
            coords.len(),
            total_dims(self.comps),
            "coords must hold Σ dims"
        );
        let call = self.call();
        let inputs = expand_inputs(&call, self.scale, alpha, coords);
        let slices = chunk_slices(&call, base, out);
        tasks(&call)
            .into_par_iter()
            .zip(slices)
            .for_each(|((ci, k), o)| {
                let mut stored: Vec<Params> = (call.ff.groups(&call.comps[ci]))
                    .map(|_| Params::default())
                    .collect();
                let parts = ExpandParts {
                    inputs: &inputs[ci],
                    stored: &mut stored,
                    fresh: true,
                };
                expand_one(&call, simd, (ci, k), parts, base, o, None);
            });
    }

    /// One RBD step: [`Self::project_cpu`] then [`Self::expand_cpu`] with the same
    /// `coords`, bitwise, drawing each block's parameters once (kept between the two
    /// passes: 12 bytes per padded parameter). `delta`, if given, receives `0 + acc`
    /// (what expand returns on a zero base; 0 outside every compartment).
    pub fn project_expand_cpu(
        &self,
        g: &[f32],
        alpha: f32,
        base: &[f32],
        (coords, out): (&mut [f32], &mut [f32]),
        delta: Option<&mut [f32]>,
    ) {
        self.project_expand_cpu_with(Simd::detect(), (g, alpha), base, (coords, out), delta)
    }

    /// [`Self::project_expand_cpu`] at a chosen instruction-set level.
    pub fn project_expand_cpu_with(
        &self,
        simd: Simd,
        (g, alpha): (&[f32], f32),
        base: &[f32],
        (coords, out): (&mut [f32], &mut [f32]),
        delta: Option<&mut [f32]>,
    ) {
        assert!(Simd::available().contains(&simd), "{simd:?} not available");
        assert_eq!(g.len(), base.len(), "g and base lengths differ");
        assert_eq!(base.len(), out.len(), "base and out lengths differ");
        checked(self.comps, out.len(), self.ff);
        assert_eq!(
            coords.len(),
            total_dims(self.comps),
            "coords must hold Σ dims"
        );
        let call = self.call();
        let mut work: Vec<(Vec<f32>, Vec<Params>)> = tasks(&call)
            .into_par_iter()
            .map(|task| project_one(&call, simd, g, task))
            .collect();
        let partials: Vec<Vec<f32>> = work.iter_mut().map(|w| std::mem::take(&mut w.0)).collect();
        reduce(&call, self.scale, &partials, coords);
        let inputs = expand_inputs(&call, self.scale, alpha, coords);
        let slices = chunk_slices(&call, base, out);
        let zeros;
        let deltas: Vec<Option<&mut [f32]>> = match delta {
            Some(d) => {
                zeros = vec![0f32; base.len()];
                chunk_slices(&call, &zeros, d)
                    .into_iter()
                    .map(Some)
                    .collect()
            }
            None => slices.iter().map(|_| None).collect(),
        };
        tasks(&call)
            .into_par_iter()
            .zip(slices)
            .zip(deltas)
            .zip(work)
            .for_each(|((((ci, k), o), d), (_, mut stored))| {
                let parts = ExpandParts {
                    inputs: &inputs[ci],
                    stored: &mut stored,
                    fresh: false,
                };
                expand_one(&call, simd, (ci, k), parts, base, o, d);
            });
    }

    /// Materialises the directions of `comps[which]`: `out[j·len + e] =
    /// φ_{first+j}[e]`, bitwise [`super::generate_reference`] (each direction the
    /// transform of the one-hot input `m·e_t`, written as it comes out, without
    /// expand's `base + acc`).
    pub fn generate_cpu(&self, which: usize, out: &mut [f32]) {
        let comp = &self.comps[which];
        let comps = std::slice::from_ref(comp);
        checked(comps, comp.offset + comp.len, self.ff);
        assert_eq!(out.len(), comp.dims * comp.len, "out must hold dims × len");
        let call = Call::new(self.stream, self.step, comps, self.ff);
        let m = entry_scale(self.ff, self.scale);
        let simd = Simd::detect();
        let parts: Vec<Vec<f32>> = (0..call.chunks(0))
            .into_par_iter()
            .map(|k| {
                let mut part = Vec::new();
                dispatch!(
                    self.stream.generator,
                    self.stream.distribution,
                    generate_mv(simd, &call, k, m, &mut part)
                );
                part
            })
            .collect();
        let (len, l) = (comp.len, self.ff.block());
        for (k, part) in parts.iter().enumerate() {
            let (b0, _) = call.chunk_blocks(0, k);
            let rows = part.len() / comp.dims.max(1);
            for j in 0..comp.dims {
                out[j * len + b0 * l..][..rows].copy_from_slice(&part[j * rows..][..rows]);
            }
        }
    }
}

/// One project task: its partial sums and the parameters it drew.
fn project_one(
    call: &Call,
    simd: Simd,
    g: &[f32],
    (ci, k): (usize, usize),
) -> (Vec<f32>, Vec<Params>) {
    let c = &call.comps[ci];
    let mut partial = vec![0f32; c.dims];
    let mut stored: Vec<Params> = call.ff.groups(c).map(|_| Params::default()).collect();
    let gc = &g[c.offset..c.offset + c.len];
    dispatch!(
        call.stream.generator,
        call.stream.distribution,
        project_mv(simd, call, ci, k, gc, &mut stored, &mut partial)
    );
    (partial, stored)
}

/// One expand task over `out`'s slice `o` of chunk `k` of compartment `ci`.
fn expand_one(
    call: &Call,
    simd: Simd,
    (ci, k): (usize, usize),
    parts: ExpandParts,
    base: &[f32],
    o: &mut [f32],
    delta: Option<&mut [f32]>,
) {
    let at = call.comps[ci].offset + call.chunk_blocks(ci, k).0 * call.ff.block();
    let mut eo = ExpandOut {
        base: &base[at..at + o.len()],
        out: o,
        delta,
    };
    dispatch!(
        call.stream.generator,
        call.stream.distribution,
        expand_mv(simd, call, ci, k, parts, &mut eo)
    );
}

/// The directions of compartment 0 of `call` over one chunk, direction-major
/// (`dims × rows`).
#[inline(always)]
fn generate_task<G: Gen, D: Dist>(call: &Call, chunk: usize, m: f32, part: &mut Vec<f32>) {
    let (c, ff) = (&call.comps[0], call.ff);
    let l = ff.block();
    let (b0, b1) = call.chunk_blocks(0, chunk);
    let rows = (b1 * l).min(c.len) - b0 * l;
    part.resize(c.dims * rows, 0.0);
    let (mut x, mut y) = (vec![0f32; l], vec![0f32; l]);
    let mut p = Params::default();
    for q in ff.groups(c) {
        draw::<G, D>(&call.keys[0], &call.dp, l, q, (b0, b1), &mut p);
        let (t0, t1, k0) = window_in_group(c, l, q);
        for (t, k) in (t0..t1).zip(k0..) {
            for (i, block) in (b0..b1).enumerate() {
                x.fill(0.0);
                x[t] = m;
                let r = i * l..(i + 1) * l;
                forward(
                    &p.signs[r.clone()],
                    &p.diagonal[r.clone()],
                    &p.perm[r],
                    &mut x,
                    &mut y,
                );
                let n = l.min(c.len - block * l);
                part[k * rows + i * l..][..n].copy_from_slice(&y[..n]);
            }
        }
    }
}

multiversion!(generate_mv => generate_task(call: &Call, chunk: usize, m: f32, part: &mut Vec<f32>));
