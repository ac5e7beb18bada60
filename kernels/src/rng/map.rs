//! From u32 stream words to floats: the exact operations of the specification
//! (`docs/random-directions.md`), scalar and branch-free so that the loops of
//! [`super::lanes`] vectorise them. Only IEEE-754 f32 `+ − × ÷ √`, integer ops and
//! exact conversions are used (never FMA), so the native result is bitwise the same on
//! every x86-64 code path and in the NumPy reference; WGSL agrees within the bound in
//! the docs (its compiler may fuse multiply-adds).

use super::{DistParams, Distribution};

/// 2^−24.
pub const TWO_POW_M24: f32 = 1.0 / 16_777_216.0;

/// `LG1..LG4`, `LN2_HI`, `LN2_LO`: fdlibm's `logf` (|error| < 1 ulp).
pub const LG1: f32 = f32::from_bits(0x3f2a_aaaa);
/// See [`LG1`].
pub const LG2: f32 = f32::from_bits(0x3ecc_ce13);
/// See [`LG1`].
pub const LG3: f32 = f32::from_bits(0x3e91_e9ee);
/// See [`LG1`].
pub const LG4: f32 = f32::from_bits(0x3e78_9e26);
/// High part of ln 2.
pub const LN2_HI: f32 = f32::from_bits(0x3f31_7180);
/// Low part of ln 2.
pub const LN2_LO: f32 = f32::from_bits(0x3717_f7d1);

/// Cephes `sinf` polynomial on [−π/4, π/4].
pub const S1: f32 = f32::from_bits(0xbe2a_aaa3);
/// See [`S1`].
pub const S2: f32 = f32::from_bits(0x3c08_839e);
/// See [`S1`].
pub const S3: f32 = f32::from_bits(0xb94c_a1f9);
/// Cephes `cosf` polynomial on [−π/4, π/4].
pub const C1: f32 = f32::from_bits(0x3d2a_aaa5);
/// See [`C1`].
pub const C2: f32 = f32::from_bits(0xbab6_061a);
/// See [`C1`].
pub const C3: f32 = f32::from_bits(0x37cc_f5ce);
/// π/2 · 2^−22 rounded to f32.
pub const HALF_PI_2M22: f32 = f32::from_bits(0x34c9_0fdb);

/// `((x >> 8) + 1) · 2^−24` ∈ (0, 1]: never 0, so `ln` is finite.
#[inline(always)]
pub fn unit_open0(x: u32) -> f32 {
    (((x >> 8) + 1) as i32) as f32 * TWO_POW_M24
}

/// `(2·(x >> 8) + 1 − 2^24) · 2^−24` ∈ (−1, 1): 2^24 symmetric values, exact in f32.
#[inline(always)]
pub fn uniform_sym(x: u32) -> f32 {
    ((((x >> 8) << 1) as i32) + 1 - (1 << 24)) as f32 * TWO_POW_M24
}

/// fdlibm `logf`'s range reduction of a normal positive `x`: `(k, f)` with
/// x = 2^k·(1 + f), 1 + f ∈ [√½, √2), both exact.
#[inline(always)]
pub fn ln_reduce(x: f32) -> (f32, f32) {
    let ix = x.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let k = (ix >> 23) as i32 - 0x7f;
    let m = f32::from_bits((ix & 0x007f_ffff) + 0x3f35_04f3);
    (k as f32, m - 1.0)
}

/// ln x for normal positive `x` (fdlibm `logf` without the special cases): below
/// 1 ulp; exactly 0 at x = 1.
#[inline(always)]
pub fn ln_unit(x: f32) -> f32 {
    let (dk, f) = ln_reduce(x);
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * LG4);
    let t2 = z * (LG1 + w * LG3);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    (((s * (hfsq + r) + dk * LN2_LO) - hfsq) + f) + dk * LN2_HI
}

/// (sin, cos) of the angle 2π·(x >> 8)·2^−24. The turn is split exactly into a
/// quadrant q and an offset y ∈ [−½, ½) quarter-turns; sin and cos of y·π/2 come from
/// Cephes' polynomials and are rotated by q with sign flips.
#[inline(always)]
pub fn sincos_turn(x: u32) -> (f32, f32) {
    let (q, a) = turn_quadrant(x);
    let z = a * a;
    let s = ((S3 * z + S2) * z + S1) * z * a + a;
    let c = ((((C3 * z + C2) * z + C1) * z) * z - 0.5 * z) + 1.0;
    rotate_quadrant(q, s, c)
}

/// The angle 2π·(x >> 8)·2^−24 as a quadrant q ∈ 0..4 and an offset a ∈ [−π/4, π/4)
/// (both exact).
#[inline(always)]
pub fn turn_quadrant(x: u32) -> (u32, f32) {
    let t = (x >> 8) + (1 << 21);
    let q = (t >> 22) & 3;
    let yi = (t & 0x003f_ffff) as i32 - (1 << 21);
    (q, yi as f32 * HALF_PI_2M22)
}

/// (sin, cos) of q·π/2 + a from (s, c) = (sin a, cos a): a swap and sign flips.
#[inline(always)]
pub fn rotate_quadrant(q: u32, s: f32, c: f32) -> (f32, f32) {
    let swap = q & 1 != 0;
    let (cb, sb) = if swap { (s, c) } else { (c, s) };
    let neg_c = ((q + 1) & 2) << 30;
    let neg_s = (q & 2) << 30;
    (
        f32::from_bits(sb.to_bits() ^ neg_s),
        f32::from_bits(cb.to_bits() ^ neg_c),
    )
}

/// Box–Muller: `r = √(2·(0 − ln u))` with u = [`unit_open0`]`(a)`, angle from `b`;
/// returns (r·cos, r·sin). |value| ≤ √(48 ln 2) ≈ 5.77, never NaN or infinite.
#[inline(always)]
pub fn box_muller(a: u32, b: u32) -> (f32, f32) {
    let r = (2.0 * (0.0 - ln_unit(unit_open0(a)))).sqrt();
    let (s, c) = sincos_turn(b);
    (r * c, r * s)
}

/// Bernoulli (either form): `hi` when `x < threshold`, else `lo`.
#[inline(always)]
pub fn bernoulli(x: u32, p: &DistParams) -> f32 {
    // A bit mask instead of a branch or select, so the lane loops vectorise it.
    let take_hi = ((x < p.threshold) as u32).wrapping_neg();
    f32::from_bits((p.hi.to_bits() & take_hi) | (p.lo.to_bits() & !take_hi))
}

/// Packed signs: entry `bit` (< 32) of a word, +1 where the bit is 0, −1 where it is 1.
#[inline(always)]
pub fn sign(word: u32, bit: u32) -> f32 {
    f32::from_bits(1f32.to_bits() | sign_mask(word, bit))
}

/// The f32 sign bit of packed-sign entry `bit` of a word: `((word >> bit) & 1) << 31`.
#[inline(always)]
pub fn sign_mask(word: u32, bit: u32) -> u32 {
    (word << (31 - bit)) & 0x8000_0000
}

/// `x` times packed-sign entry `bit` of `word`, as a sign flip (exact; equal to the
/// IEEE product with ±1 for every `x` that is not NaN).
#[inline(always)]
pub fn flip(x: f32, word: u32, bit: u32) -> f32 {
    f32::from_bits(x.to_bits() ^ sign_mask(word, bit))
}

/// Raw values of one block's words: Gaussian pairs words (0, 1) and (2, 3) (even word
/// → r·cos, odd → r·sin); the others map each word alone. Threefry blocks use the
/// first two entries.
#[inline(always)]
pub fn block_values(p: DistParams, dist: Distribution, w: &[u32; 4]) -> [f32; 4] {
    match dist {
        Distribution::Gaussian => {
            let (a, b) = box_muller(w[0], w[1]);
            let (c, d) = box_muller(w[2], w[3]);
            [a, b, c, d]
        }
        Distribution::Uniform => w.map(uniform_sym),
        Distribution::Bernoulli { .. } | Distribution::BernoulliReleased { .. } => {
            w.map(|x| bernoulli(x, &p))
        }
        Distribution::Rademacher => {
            panic!("packed signs hold 32 entries per word: use map::sign")
        }
    }
}
