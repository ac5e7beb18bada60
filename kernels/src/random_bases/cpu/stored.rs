//! A fixed basis kept in memory. FPD takes the same directions at every step, so
//! regenerating them each step (what RBD must do, its basis being new) repeats work: here
//! they are generated once, raw, in the fused step's batch layout, and every step reads
//! them instead. The step stays bitwise [`super::project_expand_cpu`]'s: the same
//! products and sums in the same order, only the values' source differs. Bounded by
//! [`KEEP_LIMIT_BYTES`]; a larger basis is regenerated as before.

use super::super::{Bases, Compartment};
use super::{add_weighted, dot_rows, reduce_batch, Dirs, BATCHES, CHUNK};
use crate::random_bases::simd::{multiversion, Simd};
use crate::random_bases::tune::MAX_BLOCK_DIRS;
use crate::random_bases::Stream;
use crate::rng::lanes::{Bern, Dist, Gauss, Gen, PhiloxGen, ThreefryGen, Uniform, F, L};
use crate::rng::{Distribution, Generator};
use rayon::prelude::*;

/// Most bytes a kept basis may take (d·D·4, the last element chunk padded): 2 GiB, an
/// eighth of the smallest machine this project runs on; the paper's largest fixed basis
/// (FC on CIFAR-10, d = 250) takes 0.4 GB.
pub const KEEP_LIMIT_BYTES: usize = 2 << 30;

/// Environment variable: `off` makes every fixed basis regenerate at each step instead
/// of being kept (less memory; the same bits, slower). Read once per process.
pub const KEEP_ENV: &str = "RBD_KEEP_BASIS";

/// Whether fixed bases are kept in this process (`RBD_KEEP_BASIS` is not `off`); any
/// other value than `on` or `off` is named in a note and ignored.
pub fn keeping() -> bool {
    static KEEP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KEEP.get_or_init(|| match std::env::var(KEEP_ENV).as_deref() {
        Err(_) | Ok("on") => true,
        Ok("off") => false,
        Ok(v) => {
            eprintln!("note: {KEEP_ENV}={v} is neither on nor off; fixed bases are kept");
            true
        }
    })
}

/// The raw directions of one set of i.i.d. bases (stream, step and compartments; the
/// scale is applied per call), kept in memory.
pub struct StoredBasis {
    stream: Stream,
    step: u64,
    compartments: Vec<Compartment>,
    /// Per compartment: chunk-major (a stride of `dims · BATCHES` batches a chunk),
    /// then direction-major over the chunk's own batches, so that any block of
    /// directions of one chunk is one contiguous slice.
    parts: Vec<Vec<[F; 4]>>,
}

impl StoredBasis {
    /// Bytes `bases` would take kept: Σ dims · (element chunks · CHUNK) · 4.
    pub fn bytes_for(bases: &Bases) -> usize {
        bases
            .compartments
            .iter()
            .map(|c| c.dims * c.len.div_ceil(CHUNK) * CHUNK * 4)
            .sum()
    }

    /// Generates and keeps the directions of `bases`; `None` where keeping them does not
    /// pay or is not done: Fastfood bases (nothing d·D to keep), packed signs (already
    /// generated at memory speed), or more than [`KEEP_LIMIT_BYTES`].
    pub fn generate(simd: Simd, bases: &Bases) -> Option<StoredBasis> {
        if bases.fastfood().is_some()
            || bases.stream.distribution == Distribution::Rademacher
            || Self::bytes_for(bases) > KEEP_LIMIT_BYTES
        {
            return None;
        }
        assert!(Simd::available().contains(&simd), "{simd:?} not available");
        let stream = bases.stream;
        let dp = stream.distribution.params();
        let parts = bases
            .compartments
            .iter()
            .map(|c| {
                let bk = bases.block_key(c);
                let stride = c.dims * BATCHES;
                let mut part = vec![[[0f32; L]; 4]; c.len.div_ceil(CHUNK) * stride];
                part.par_chunks_mut(stride.max(1))
                    .enumerate()
                    .for_each(|(chunk, out)| {
                        let start = chunk * CHUNK;
                        let dirs = Dirs {
                            bk: &bk,
                            dp: &dp,
                            dir0: c.first as u32,
                            batch0: (start / super::BATCH) as u32,
                        };
                        let nb = batches_in(c, chunk);
                        let out = &mut out[..c.dims * nb];
                        dispatch!(
                            stream.generator,
                            stream.distribution,
                            fill_mv(simd, dirs, nb, out)
                        );
                    });
                part
            })
            .collect();
        Some(StoredBasis {
            stream,
            step: bases.step,
            compartments: bases.compartments.to_vec(),
            parts,
        })
    }

    /// Whether these are the directions of `bases` (any scale).
    pub fn matches(&self, bases: &Bases) -> bool {
        bases.fastfood().is_none()
            && self.stream == bases.stream
            && self.step == bases.step
            && self.compartments == bases.compartments
    }

    /// Bytes kept.
    pub fn bytes(&self) -> usize {
        self.parts
            .iter()
            .map(|p| std::mem::size_of_val(&p[..]))
            .sum()
    }

    /// Compartment `ci`'s directions over element chunk `chunk`: direction-major, the
    /// chunk's own batches each.
    pub(super) fn chunk(&self, ci: usize, chunk: usize) -> &[[F; 4]] {
        let c = &self.compartments[ci];
        let stride = c.dims * BATCHES;
        &self.parts[ci][chunk * stride..][..c.dims * batches_in(c, chunk)]
    }
}

/// Batches of element chunk `chunk` of compartment `c`.
pub(super) fn batches_in(c: &Compartment, chunk: usize) -> usize {
    let start = chunk * CHUNK;
    ((start + CHUNK).min(c.len) - start).div_ceil(super::BATCH)
}

/// `out[j·nb + b]` = raw values of batch `b` of direction `dir0 + j`.
#[inline(always)]
fn fill_chunk<G: Gen, D: Dist>(dirs: Dirs, nb: usize, out: &mut [[F; 4]]) {
    for (j, od) in out.chunks_mut(nb).enumerate() {
        for (b, o) in od.iter_mut().enumerate() {
            *o = dirs.values::<G, D>(j, b);
        }
    }
}

/// One chunk of a kept-basis block pass, the arithmetic of `block_chunk` with the
/// values read, not generated: `acc += Σ_j w_prev[j]·prev_j` (j in order, `w = 0`
/// skipped), then the products of `cur`'s directions with `gs` summed into `partial`.
#[inline(always)]
fn stored_chunk(
    w_prev: &[f32],
    (prev, cur): (&[[F; 4]], &[[F; 4]]),
    acc: &mut [[F; 4]],
    gs: &[[F; 4]],
    partial: &mut [f32],
) {
    let nb = acc.len();
    let mut accs = [[[0f32; L]; 4]; MAX_BLOCK_DIRS];
    let accs = &mut accs[..partial.len()];
    for b in 0..nb {
        add_weighted(&mut acc[b], w_prev, prev, nb, b);
        for (j, a) in accs.iter_mut().enumerate() {
            dot_rows(a, &cur[j * nb + b], &gs[b]);
        }
    }
    for (p, a) in partial.iter_mut().zip(accs.iter()) {
        *p = reduce_batch(a);
    }
}

multiversion!(fill_mv<G: Gen, D: Dist> => fill_chunk(dirs: Dirs, nb: usize, out: &mut [[F; 4]]));
multiversion!(stored_mv<> => stored_chunk(w_prev: &[f32], blocks: (&[[F; 4]], &[[F; 4]]), acc: &mut [[F; 4]], gs: &[[F; 4]], partial: &mut [f32]));

/// One chunk of a kept-basis block pass at instruction-set level `simd`.
pub(super) fn pass(
    simd: Simd,
    w_prev: &[f32],
    blocks: (&[[F; 4]], &[[F; 4]]),
    acc: &mut [[F; 4]],
    gs: &[[F; 4]],
    partial: &mut [f32],
) {
    stored_mv(simd, w_prev, blocks, acc, gs, partial);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random_bases::rbd_scale;

    /// Over the limit, packed signs and Fastfood are not kept (and nothing is allocated:
    /// 600 directions over 2^20 entries would take 2.5 GB); the byte count pads the last
    /// element chunk.
    #[test]
    fn only_iid_word_bases_within_the_limit_are_kept() {
        let n = 1 << 20;
        let big = Compartment::whole(n, 600);
        let s = Stream::new(3);
        let bases = Bases::new(s, 0, &big, rbd_scale(n));
        assert_eq!(StoredBasis::bytes_for(&bases), 600 * n * 4);
        assert!(StoredBasis::bytes_for(&bases) > KEEP_LIMIT_BYTES);
        assert!(StoredBasis::generate(Simd::detect(), &bases).is_none());
        let small = Compartment::whole(5_000, 3);
        let bases = Bases::new(s, 0, &small, 1.0);
        assert_eq!(StoredBasis::bytes_for(&bases), 3 * 2 * CHUNK * 4);
        let kept = StoredBasis::generate(Simd::detect(), &bases).expect("kept");
        assert_eq!(kept.bytes(), StoredBasis::bytes_for(&bases));
        let signs = Stream {
            distribution: Distribution::Rademacher,
            ..s
        };
        assert!(
            StoredBasis::generate(Simd::detect(), &Bases::new(signs, 0, &small, 1.0)).is_none()
        );
        let ff = crate::random_bases::BasisFamily::Fastfood(crate::fastfood::Fastfood::for_dims(3));
        assert!(StoredBasis::generate(Simd::detect(), &bases.with_family(ff)).is_none());
        // The scale is applied per call: a kept basis serves any.
        assert!(kept.matches(&Bases::new(s, 0, &small, 0.5)));
        assert!(!kept.matches(&Bases::new(Stream::new(4), 0, &small, 1.0)));
    }
}
