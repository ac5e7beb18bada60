//! The stream, [`L`] counters at a time, in fixed-size arrays that LLVM turns into
//! vector code (Philox's 32×32→64-bit products become `vpmuludq`). A *batch* is the 64
//! consecutive entries `64·batch .. 64·batch + 64` of one direction, held as 4 rows ×
//! [`L`] lanes; [`Gen::pos`] says where entry `q` of the batch sits.

use super::map::{bernoulli, box_muller, uniform_sym};
use super::{
    BlockKey, DistParams, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1, THREEFRY_PARITY, THREEFRY_ROT,
};

/// Lanes per row.
pub const L: usize = 16;
/// Entries per batch.
pub const BATCH: usize = 4 * L;
/// A row of words.
pub type U = [u32; L];
/// A row of values.
pub type F = [f32; L];

/// A block function, batch-wise.
pub trait Gen {
    /// The words of batch `batch` of direction `dir`.
    fn words(bk: &BlockKey, dir: u32, batch: u32) -> [U; 4];
    /// (row, lane) of entry `q` (< 64) of a batch.
    fn pos(q: usize) -> (usize, usize);
}

/// Philox4x32-10: lane `l` is block `16·batch + l`, row `r` its word `r`.
pub struct PhiloxGen;
/// Threefry2x32-20: rows 0–1 are words 0–1 of blocks `32·batch + l`, rows 2–3 those of
/// blocks `32·batch + 16 + l`.
pub struct ThreefryGen;

/// Lanes packed in pairs: word `2i` in the low half of `P[i]`, `2i + 1` in the high.
type P = [u64; L / 2];
const LOW: u64 = 0xFFFF_FFFF;

#[inline(always)]
fn splat2(x: u32) -> u64 {
    x as u64 | (x as u64) << 32
}

/// (high, low) words of `x·m` for every packed lane: the even lanes' products come
/// from the low halves, the odd lanes' from the high halves (two `pmuludq`).
#[inline(always)]
fn mulhilo_lanes(x: &P, m: u32) -> (P, P) {
    let m = m as u64;
    let mut hi = [0u64; L / 2];
    let mut lo = [0u64; L / 2];
    for i in 0..L / 2 {
        let e = (x[i] & LOW) * m;
        let o = (x[i] >> 32) * m;
        hi[i] = (e >> 32) | (o & !LOW);
        lo[i] = (e & LOW) | (o << 32);
    }
    (hi, lo)
}

#[inline(always)]
fn unpack(x: &P) -> U {
    // A plain reinterpretation on little-endian targets (free: LLVM keeps the same
    // vector register); the loop spells out the same order elsewhere.
    #[cfg(target_endian = "little")]
    {
        bytemuck::cast(*x)
    }
    #[cfg(not(target_endian = "little"))]
    {
        let mut u = [0u32; L];
        for i in 0..L / 2 {
            u[2 * i] = x[i] as u32;
            u[2 * i + 1] = (x[i] >> 32) as u32;
        }
        u
    }
}

impl Gen for PhiloxGen {
    #[inline(always)]
    fn words(bk: &BlockKey, dir: u32, batch: u32) -> [U; 4] {
        let block0 = batch.wrapping_mul(L as u32);
        let mut x0: P = [0; L / 2];
        for (i, x) in x0.iter_mut().enumerate() {
            let b = block0.wrapping_add(2 * i as u32);
            *x = b as u64 | (b.wrapping_add(1) as u64) << 32;
        }
        let mut x1: P = [splat2(dir); L / 2];
        let mut x2: P = [splat2(bk.c2); L / 2];
        let mut x3: P = [splat2(bk.c3); L / 2];
        let [mut k0, mut k1] = bk.key;
        for _ in 0..10 {
            let (hi0, lo0) = mulhilo_lanes(&x0, PHILOX_M0);
            let (hi1, lo1) = mulhilo_lanes(&x2, PHILOX_M1);
            let (kk0, kk1) = (splat2(k0), splat2(k1));
            for i in 0..L / 2 {
                x0[i] = hi1[i] ^ x1[i] ^ kk0;
                x2[i] = hi0[i] ^ x3[i] ^ kk1;
            }
            x1 = lo1;
            x3 = lo0;
            k0 = k0.wrapping_add(PHILOX_W0);
            k1 = k1.wrapping_add(PHILOX_W1);
        }
        // The barrier keeps LLVM from fusing the unpacking into the float maps with
        // scalar code (it materialises the four rows once; cheap next to 10 rounds).
        std::hint::black_box([unpack(&x0), unpack(&x1), unpack(&x2), unpack(&x3)])
    }
    #[inline(always)]
    fn pos(q: usize) -> (usize, usize) {
        (q % 4, q / 4)
    }
}

/// One Threefry2x32 round on every lane, rotation by a literal.
macro_rules! tf_round {
    ($x0:ident, $x1:ident, $rot:literal) => {
        for l in 0..L {
            let a = $x0[l].wrapping_add($x1[l]);
            $x0[l] = a;
            $x1[l] = $x1[l].rotate_left($rot) ^ a;
        }
    };
}

/// Key injection `i` (after round 4·i − 1).
macro_rules! tf_inject {
    ($x0:ident, $x1:ident, $ks:ident, $i:literal) => {
        let (ka, kb) = ($ks[$i % 3], $ks[($i + 1) % 3].wrapping_add($i));
        for l in 0..L {
            $x0[l] = $x0[l].wrapping_add(ka);
            $x1[l] = $x1[l].wrapping_add(kb);
        }
    };
}

/// Threefry2x32-20 on L consecutive blocks, written out round by round (literal
/// rotations: a loop over the rotation table compiles to variable rotates).
#[inline(always)]
fn threefry_rows(key: [u32; 2], dir: u32, block0: u32) -> (U, U) {
    debug_assert_eq!(THREEFRY_ROT, [13, 15, 26, 6, 17, 29, 16, 24]);
    let ks = [key[0], key[1], THREEFRY_PARITY ^ key[0] ^ key[1]];
    let mut x0: U = [0; L];
    let mut x1: U = [0; L];
    for l in 0..L {
        x0[l] = block0.wrapping_add(l as u32).wrapping_add(ks[0]);
        x1[l] = dir.wrapping_add(ks[1]);
    }
    tf_round!(x0, x1, 13);
    tf_round!(x0, x1, 15);
    tf_round!(x0, x1, 26);
    tf_round!(x0, x1, 6);
    tf_inject!(x0, x1, ks, 1);
    tf_round!(x0, x1, 17);
    tf_round!(x0, x1, 29);
    tf_round!(x0, x1, 16);
    tf_round!(x0, x1, 24);
    tf_inject!(x0, x1, ks, 2);
    tf_round!(x0, x1, 13);
    tf_round!(x0, x1, 15);
    tf_round!(x0, x1, 26);
    tf_round!(x0, x1, 6);
    tf_inject!(x0, x1, ks, 3);
    tf_round!(x0, x1, 17);
    tf_round!(x0, x1, 29);
    tf_round!(x0, x1, 16);
    tf_round!(x0, x1, 24);
    tf_inject!(x0, x1, ks, 4);
    tf_round!(x0, x1, 13);
    tf_round!(x0, x1, 15);
    tf_round!(x0, x1, 26);
    tf_round!(x0, x1, 6);
    tf_inject!(x0, x1, ks, 5);
    (x0, x1)
}

impl Gen for ThreefryGen {
    #[inline(always)]
    fn words(bk: &BlockKey, dir: u32, batch: u32) -> [U; 4] {
        let block0 = batch.wrapping_mul(2 * L as u32);
        let (a0, a1) = threefry_rows(bk.key, dir, block0);
        let (b0, b1) = threefry_rows(bk.key, dir, block0.wrapping_add(L as u32));
        std::hint::black_box([a0, a1, b0, b1])
    }
    #[inline(always)]
    fn pos(q: usize) -> (usize, usize) {
        if q < 2 * L {
            (q % 2, q / 2)
        } else {
            (2 + q % 2, (q - 2 * L) / 2)
        }
    }
}

/// A distribution, batch-wise. Rows (0, 1) and (2, 3) are the Box–Muller pairs of both
/// generators' layouts.
pub trait Dist {
    /// Raw values of a batch of words.
    fn values(w: &[U; 4], p: &DistParams) -> [F; 4];
}

/// N(0, 1) by Box–Muller.
pub struct Gauss;
/// Uniform on (−1, 1).
pub struct Uniform;
/// Bernoulli (zero-mean or released): the threshold test of `map::bernoulli`.
pub struct Bern;

impl Dist for Gauss {
    #[inline(always)]
    fn values(w: &[U; 4], _: &DistParams) -> [F; 4] {
        let mut out = [[0f32; L]; 4];
        for pair in 0..2 {
            let (a, b) = (&w[2 * pair], &w[2 * pair + 1]);
            let mut c = [0f32; L];
            let mut s = [0f32; L];
            for l in 0..L {
                (c[l], s[l]) = box_muller(a[l], b[l]);
            }
            out[2 * pair] = c;
            out[2 * pair + 1] = s;
        }
        out
    }
}

#[inline(always)]
fn uniform_row(x: &U) -> F {
    let mut o = [0f32; L];
    for l in 0..L {
        o[l] = uniform_sym(x[l]);
    }
    o
}

#[inline(always)]
fn bernoulli_row(x: &U, p: &DistParams) -> F {
    let mut o = [0f32; L];
    for l in 0..L {
        o[l] = bernoulli(x[l], p);
    }
    o
}

impl Dist for Uniform {
    #[inline(always)]
    fn values(w: &[U; 4], _: &DistParams) -> [F; 4] {
        [
            uniform_row(&w[0]),
            uniform_row(&w[1]),
            uniform_row(&w[2]),
            uniform_row(&w[3]),
        ]
    }
}

impl Dist for Bern {
    #[inline(always)]
    fn values(w: &[U; 4], p: &DistParams) -> [F; 4] {
        [
            bernoulli_row(&w[0], p),
            bernoulli_row(&w[1], p),
            bernoulli_row(&w[2], p),
            bernoulli_row(&w[3], p),
        ]
    }
}
