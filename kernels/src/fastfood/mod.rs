//! Fastfood random bases: each step's directions are the columns of a structured map
//! (Le, Sarlós and Smola 2013; used for intrinsic dimension by Li et al. 2018), applied
//! in O(D log L) time instead of the i.i.d. family's O(d·D).
//!
//! For a compartment of `len` parameters and a block length L = 2^k ≥ d, direction j
//! is column t = j mod L of *group* q = j div L. A group stacks ⌈len/L⌉ independent
//! L×L blocks over the compartment (rows past `len` are dropped):
//!
//! ```text
//! M_{q,i} = H G Π H B          (block i of group q; H the ±1 Walsh–Hadamard matrix)
//! φ_j[i·L + r] = m · M_{q,i}[r, t],   m = f32(scale · f32(1/√L))
//! ```
//!
//! B is a diagonal of random signs, G a diagonal of the stream's distribution
//! (Gaussian by default), Π a uniformly drawn permutation. All three come from the
//! direction stream of `rbd_kernels::rng` at (seed, step, compartment), at stream
//! directions `2^31 + 4q + part` ([`stream_direction`]) and elements `i·L + t`,
//! so a step's basis is reproducible anywhere and only O(len) numbers exist at a time.
//!
//! Normalisation: E[M[r,t]²] = L·E[G²], so `scale·(1/√L)` gives entries of variance
//! E[G²]/D for `scale = 1/√D`, and E[φ_j φ_jᵀ] = E[G²]·I/D: the second moment of the
//! i.i.d. family with the same distribution, hence the same E‖Pᵀg‖² = d·E[G²]·‖g‖²/D.
//! Li et al. divide by the drawn ‖G‖ instead (exactly unit columns); we keep the
//! expectation, which needs no reduction inside the basis.
//!
//! `docs/random-directions.md` §11 specifies everything bit for bit; this module's
//! scalar functions ([`block_params`], [`forward_block`], [`transpose_block`],
//! [`generate_reference`]) are that specification in Rust, [`cpu`] and [`gpu`] the fast
//! versions (bitwise equal to each other for the uniform and Bernoulli diagonals).

mod cpu;
mod gpu;

pub use gpu::{FASTFOOD_I64_SRC, FASTFOOD_SRC, TILE};

use crate::random_bases::{check_compartments, Compartment};
use crate::rng::{Distribution, Stream};

/// Stream directions at and above this index belong to Fastfood parameters; the
/// i.i.d. family's directions (indices below 2^31 in practice) never meet them.
pub const DIRECTION_BASE: u32 = 0x8000_0000;
/// Stream direction offset of the sign diagonal B.
pub const PART_SIGNS: u32 = 0;
/// Stream direction offset of the diagonal G.
pub const PART_DIAGONAL: u32 = 1;
/// Stream direction offset of the permutation's words.
pub const PART_PERMUTATION: u32 = 2;
/// Groups a compartment may use (4 stream directions each above [`DIRECTION_BASE`]).
pub const MAX_GROUPS: u64 = 1 << 29;
/// Largest block exponent accepted (L ≤ 2^24).
pub const MAX_LOG2_BLOCK: u32 = 24;
/// Project sums a coordinate over chunks of ⌈this/L⌉ blocks, then the chunks in order.
pub const CHUNK_ELEMENTS: usize = 4096;

/// The block length of a Fastfood basis: L = 2^`log2_block`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fastfood {
    log2_block: u32,
}

impl Fastfood {
    /// The smallest block that holds `dims` columns (L = next power of two ≥ dims, at
    /// least 1).
    pub fn for_dims(dims: usize) -> Fastfood {
        let l = dims.max(1).next_power_of_two();
        Fastfood {
            log2_block: l.trailing_zeros().min(MAX_LOG2_BLOCK),
        }
    }

    /// The block for a set of compartments: one L for all, from the largest `dims`.
    pub fn for_compartments(comps: &[Compartment]) -> Fastfood {
        Fastfood::for_dims(comps.iter().map(|c| c.dims).max().unwrap_or(1))
    }

    /// A block of exactly `block` (a power of two ≤ 2^24) entries.
    pub fn with_block(block: usize) -> Result<Fastfood, String> {
        if !block.is_power_of_two() || block.trailing_zeros() > MAX_LOG2_BLOCK {
            return Err(format!(
                "fastfood block {block}: must be a power of two ≤ 2^{MAX_LOG2_BLOCK}"
            ));
        }
        Ok(Fastfood {
            log2_block: block.trailing_zeros(),
        })
    }

    /// L.
    pub fn block(self) -> usize {
        1 << self.log2_block
    }

    /// k with L = 2^k.
    pub fn log2_block(self) -> u32 {
        self.log2_block
    }

    /// f32(1/√L), computed in f64 and rounded once.
    pub fn norm(self) -> f32 {
        (1.0 / (self.block() as f64).sqrt()) as f32
    }

    /// Blocks per project chunk: max(1, 4096/L).
    pub fn chunk_blocks(self) -> usize {
        (CHUNK_ELEMENTS >> self.log2_block).max(1)
    }

    /// Blocks covering a compartment of `len` entries.
    pub fn blocks(self, len: usize) -> usize {
        len.div_ceil(self.block())
    }

    /// The groups that directions `first .. first + dims` of `c` touch.
    pub fn groups(self, c: &Compartment) -> std::ops::Range<usize> {
        if c.dims == 0 {
            return 0..0;
        }
        (c.first >> self.log2_block)..((c.first + c.dims - 1) >> self.log2_block) + 1
    }
}

/// One step's Fastfood basis over a set of compartments: what the transforms need
/// besides their operands. Direction j of `comps[c]` (for j in `first .. first + dims`)
/// is column j mod L of group j div L of that compartment's stream at `step`.
#[derive(Clone, Copy, Debug)]
pub struct FastfoodBases<'a> {
    /// Seed, generator and the diagonal G's distribution.
    pub stream: &'a Stream,
    /// The step the basis is drawn at.
    pub step: u64,
    /// Compartments, each with its window of directions.
    pub comps: &'a [Compartment],
    /// The block length L.
    pub ff: Fastfood,
    /// 1/√D for RBD and FPD, 1 for NES.
    pub scale: f32,
}

/// The stream direction holding `part` of group `group` (`2^31 + 4·group + part`).
pub fn stream_direction(group: usize, part: u32) -> u32 {
    debug_assert!((group as u64) < MAX_GROUPS && part < 4);
    DIRECTION_BASE + 4 * group as u32 + part
}

/// Checks what [`check_compartments`] checks, and that each compartment's padded
/// blocks and groups fit the stream's 32-bit element and direction counters.
pub fn check_fastfood(comps: &[Compartment], n: usize, ff: Fastfood) -> Result<(), String> {
    check_compartments(comps, n)?;
    for c in comps {
        let padded = ff.blocks(c.len) as u64 * ff.block() as u64;
        if padded > 1 << 32 {
            return Err(format!(
                "{c:?}: {padded} entries in fastfood blocks of {} exceed 2^32",
                ff.block()
            ));
        }
        if c.dims > 0 && ff.groups(c).end as u64 > MAX_GROUPS {
            return Err(format!(
                "{c:?}: directions beyond fastfood group 2^29 with blocks of {}",
                ff.block()
            ));
        }
    }
    Ok(())
}

/// Refuses distributions the family does not define: the released code's shifted
/// Bernoulli (its nonzero mean, the point of that variant, does not survive the
/// Hadamard transforms) and packed signs (a layout of i.i.d. entries, 32 per word,
/// made for the i.i.d. kernels' sign-flip sums; a ±1 diagonal is `bernoulli`).
pub fn check_distribution(d: Distribution) -> Result<(), String> {
    match d {
        Distribution::BernoulliReleased { .. } => Err(
            "fastfood bases take a zero-mean diagonal (gaussian, uniform or bernoulli); bernoulli-released's shifted mean has no Fastfood counterpart".into(),
        ),
        Distribution::Rademacher => Err(
            "--distribution rademacher (packed signs) is a layout of i.i.d. directions and is not defined with --bases fastfood; for a ±1 diagonal G use --distribution bernoulli".into(),
        ),
        _ => Ok(()),
    }
}

/// The drawn parameters of one block, as the specification states them.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockParams {
    /// B as sign masks: `0x8000_0000` where B = −1 (the top bit of the word), else 0.
    pub signs: Vec<u32>,
    /// G: the distribution's raw values.
    pub diagonal: Vec<f32>,
    /// π: (Πx)[t] = x[π[t]].
    pub permutation: Vec<u32>,
}

/// ⌊word·n / 2^32⌋: a draw in `0 .. n` (bias below n/2^32, no rejection).
#[inline(always)]
pub fn below(word: u32, n: u32) -> u32 {
    ((word as u64 * n as u64) >> 32) as u32
}

/// Fisher–Yates (Durstenfeld) from the identity with one word per position: for t =
/// L−1 down to 1, swap positions t and `below(words[t], t + 1)`. `words[0]` is unused.
pub fn permutation_from_words(words: &[u32], perm: &mut [u32]) {
    for (t, p) in perm.iter_mut().enumerate() {
        *p = t as u32;
    }
    for t in (1..perm.len()).rev() {
        let j = below(words[t], t as u32 + 1) as usize;
        perm.swap(t, j);
    }
}

/// The scalar reference of block `block` of group `group` of compartment `compartment`
/// at `step` (every value from [`Stream::word`] / [`Stream::sample`]).
pub fn block_params(
    stream: &Stream,
    step: u64,
    compartment: u32,
    ff: Fastfood,
    group: usize,
    block: usize,
) -> BlockParams {
    let l = ff.block();
    let e0 = (block * l) as u32;
    let dir = |part| stream_direction(group, part);
    let signs = (0..l as u32)
        .map(|t| stream.word(step, compartment, dir(PART_SIGNS), e0 + t) & 0x8000_0000)
        .collect();
    let diagonal = (0..l as u32)
        .map(|t| stream.sample(step, compartment, dir(PART_DIAGONAL), e0 + t))
        .collect();
    let words: Vec<u32> = (0..l as u32)
        .map(|t| stream.word(step, compartment, dir(PART_PERMUTATION), e0 + t))
        .collect();
    let mut permutation = vec![0u32; l];
    permutation_from_words(&words, &mut permutation);
    BlockParams {
        signs,
        diagonal,
        permutation,
    }
}

/// x ← H x in place, H the Sylvester-ordered ±1 Hadamard matrix (H[r][c] =
/// (−1)^popcount(r & c)): stages h = 1, 2, 4, … in order, each pair (a, a + h) with
/// bit h of a clear becoming (x_a + x_{a+h}, x_a − x_{a+h}). Every implementation
/// that performs these butterflies gives these bits.
pub fn fwht_reference(x: &mut [f32]) {
    let n = x.len();
    assert!(n.is_power_of_two(), "fwht of {n} entries");
    let mut h = 1;
    while h < n {
        for a in 0..n {
            if a & h == 0 {
                let (u, v) = (x[a], x[a + h]);
                x[a] = u + v;
                x[a + h] = u - v;
            }
        }
        h *= 2;
    }
}

fn flip(x: f32, mask: u32) -> f32 {
    f32::from_bits(x.to_bits() ^ mask)
}

/// x ← M x = H G Π H B x (scalar reference).
pub fn forward_block(p: &BlockParams, x: &mut [f32]) {
    for (v, &s) in x.iter_mut().zip(&p.signs) {
        *v = flip(*v, s);
    }
    fwht_reference(x);
    let gathered: Vec<f32> = p.permutation.iter().map(|&k| x[k as usize]).collect();
    for ((v, y), &g) in x.iter_mut().zip(gathered).zip(&p.diagonal) {
        *v = g * y;
    }
    fwht_reference(x);
}

/// x ← Mᵀ x = B H Πᵀ G H x (scalar reference).
pub fn transpose_block(p: &BlockParams, x: &mut [f32]) {
    fwht_reference(x);
    let mut scattered = vec![0f32; x.len()];
    for (t, &k) in p.permutation.iter().enumerate() {
        scattered[k as usize] = p.diagonal[t] * x[t];
    }
    x.copy_from_slice(&scattered);
    fwht_reference(x);
    for (v, &s) in x.iter_mut().zip(&p.signs) {
        *v = flip(*v, s);
    }
}

/// `m = f32(scale · f32(1/√L))`, the factor of every direction entry.
pub fn entry_scale(ff: Fastfood, scale: f32) -> f32 {
    scale * ff.norm()
}

/// Materialises `comp`'s directions by the scalar reference: `out[j·len + e] =
/// φ_{first+j}[e]`, the transform of the one-hot input `m·e_t` (specification §11).
/// Slow (one scalar stream call per drawn value); for tests and the docs.
pub fn generate_reference(
    stream: &Stream,
    step: u64,
    comp: &Compartment,
    ff: Fastfood,
    scale: f32,
) -> Vec<f32> {
    let (l, len) = (ff.block(), comp.len);
    let m = entry_scale(ff, scale);
    let mut out = vec![0f32; comp.dims * len];
    for group in ff.groups(comp) {
        for block in 0..ff.blocks(len) {
            let p = block_params(stream, step, comp.index, ff, group, block);
            for j in 0..comp.dims {
                let dir = comp.first + j;
                if dir / l != group {
                    continue;
                }
                let mut x = vec![0f32; l];
                x[dir % l] = m;
                forward_block(&p, &mut x);
                let e0 = block * l;
                let rows = l.min(len - e0);
                out[j * len + e0..j * len + e0 + rows].copy_from_slice(&x[..rows]);
            }
        }
    }
    out
}
