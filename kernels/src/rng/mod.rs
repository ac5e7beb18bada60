//! Counter-based random number generators (Philox4x32-10 and Threefry2x32-20, after
//! Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011 / Random123),
//! the direction stream built on them, and its distributions.
//!
//! Everything here is a pure function of its inputs: the stream word for (seed, step,
//! compartment, direction, element) is the same on every backend and thread layout.
//! `docs/random-directions.md` is the specification; this module is its native
//! reference, `wgsl/rng_*.wgsl` and `wgsl/random_bases_dist.wgsl` the WGSL twin.
//!
//! * [`philox4x32_10`], [`threefry2x32_20`]: the block functions (Random123 known-answer
//!   vectors in `tests/rng.rs`).
//! * [`Stream`], [`BlockKey`]: which counter and key a direction entry uses.
//! * [`map`]: u32 words to floats (Gaussian via Box–Muller with our own `ln`/`sin`/`cos`,
//!   uniform on (−1, 1), zero-mean Bernoulli, the released code's shifted Bernoulli,
//!   and packed signs: 32 entries ±1 from the bits of one word).
//! * [`lanes`]: the same, 16 counters at a time, written for LLVM's vectoriser.
//! * [`gpu`]: WGSL sources and the launchers of the test kernels.

pub mod gpu;
pub mod lanes;
pub mod map;

/// Philox multiplier for word 0.
pub const PHILOX_M0: u32 = 0xD251_1F53;
/// Philox multiplier for word 2.
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Philox key increment (golden ratio).
pub const PHILOX_W0: u32 = 0x9E37_79B9;
/// Philox key increment (√3 − 1).
pub const PHILOX_W1: u32 = 0xBB67_AE85;
/// Threefry key-schedule parity constant (SKEIN_KS_PARITY32).
pub const THREEFRY_PARITY: u32 = 0x1BD1_1BDA;
/// Threefry2x32 rotation constants.
pub const THREEFRY_ROT: [u32; 8] = [13, 15, 26, 6, 17, 29, 16, 24];

/// High and low words of the 64-bit product `a·b`.
#[inline(always)]
pub fn mulhilo32(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// High word of `a·b` from four 16×16-bit partial products, exactly as the WGSL
/// (which has no 64-bit integers) computes it. Equal to `mulhilo32(a, b).0`.
#[inline(always)]
pub fn mulhi32_parts(a: u32, b: u32) -> u32 {
    let (a_lo, a_hi) = (a & 0xFFFF, a >> 16);
    let (b_lo, b_hi) = (b & 0xFFFF, b >> 16);
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    // < 3·2^16: cannot overflow.
    let mid = (ll >> 16) + (lh & 0xFFFF) + (hl & 0xFFFF);
    hh.wrapping_add(lh >> 16)
        .wrapping_add(hl >> 16)
        .wrapping_add(mid >> 16)
}

/// Philox4x32 with `rounds` rounds (Random123's `philox4x32_R`).
#[inline(always)]
pub fn philox4x32_r(rounds: u32, ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut x0, mut x1, mut x2, mut x3] = ctr;
    let [mut k0, mut k1] = key;
    for r in 0..rounds {
        if r > 0 {
            k0 = k0.wrapping_add(PHILOX_W0);
            k1 = k1.wrapping_add(PHILOX_W1);
        }
        let (hi0, lo0) = mulhilo32(PHILOX_M0, x0);
        let (hi1, lo1) = mulhilo32(PHILOX_M1, x2);
        (x0, x1, x2, x3) = (hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0);
    }
    [x0, x1, x2, x3]
}

/// Philox4x32-10: 128-bit counter, 64-bit key, four u32 out.
#[inline(always)]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    philox4x32_r(10, ctr, key)
}

/// Threefry2x32 with `rounds` rounds (Random123's `threefry2x32_R`, key injection
/// every four rounds).
#[inline(always)]
pub fn threefry2x32_r(rounds: u32, ctr: [u32; 2], key: [u32; 2]) -> [u32; 2] {
    let ks = [key[0], key[1], THREEFRY_PARITY ^ key[0] ^ key[1]];
    let mut x0 = ctr[0].wrapping_add(ks[0]);
    let mut x1 = ctr[1].wrapping_add(ks[1]);
    for r in 0..rounds {
        x0 = x0.wrapping_add(x1);
        x1 = x1.rotate_left(THREEFRY_ROT[(r % 8) as usize]);
        x1 ^= x0;
        if r % 4 == 3 {
            let i = (r + 1) / 4;
            x0 = x0.wrapping_add(ks[(i % 3) as usize]);
            x1 = x1.wrapping_add(ks[((i + 1) % 3) as usize]).wrapping_add(i);
        }
    }
    [x0, x1]
}

/// Threefry2x32-20: 64-bit counter, 64-bit key, two u32 out.
#[inline(always)]
pub fn threefry2x32_20(ctr: [u32; 2], key: [u32; 2]) -> [u32; 2] {
    threefry2x32_r(20, ctr, key)
}

/// The counter-based generator behind a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Generator {
    /// Philox4x32-10: four words per block; 32×32→64-bit multiplies (four 16-bit
    /// partial products in WGSL).
    Philox,
    /// Threefry2x32-20: two words per block; adds, rotations and xors only. The
    /// default: faster than Philox inside the fused passes both natively and in WGSL
    /// on llvmpipe (`docs/random-directions.md` has the measurements).
    #[default]
    Threefry,
}

impl Generator {
    /// u32 words (= direction entries) per block.
    pub fn words_per_block(self) -> usize {
        match self {
            Generator::Philox => 4,
            Generator::Threefry => 2,
        }
    }
    /// Name used by benchmarks and logs.
    pub fn name(self) -> &'static str {
        match self {
            Generator::Philox => "philox4x32-10",
            Generator::Threefry => "threefry2x32-20",
        }
    }
}

impl std::fmt::Display for Generator {
    /// The short name a run's configuration and command line use (`threefry`,
    /// `philox`); [`Generator::name`] is the long one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Generator::Philox => "philox",
            Generator::Threefry => "threefry",
        })
    }
}

impl std::str::FromStr for Generator {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        [Generator::Threefry, Generator::Philox]
            .into_iter()
            .find(|g| g.to_string() == text.trim())
            .ok_or_else(|| format!("unknown generator '{text}' (expected threefry or philox)"))
    }
}
crate::serde_as_text!(Generator);

crate::named_enum!(
    /// The distribution of the entries of a random direction, as a run names it; with a
    /// Bernoulli probability it is a [`Distribution`].
    pub DistributionKind, "distribution" {
        /// N(0, 1).
        Gaussian = "gaussian",
        /// Uniform on [−1, 1].
        Uniform = "uniform",
        /// Zero-mean, unit-variance two-point distribution with probability p.
        Bernoulli = "bernoulli",
        /// The authors' released code's `bernoulli-p`: 1 − p with probability p, else
        /// −1 − p (p = 0.5: {+0.5, −1.5}, mean −0.5, variance 1).
        BernoulliReleased = "bernoulli-released",
        /// Packed signs: ±1 from single bits, 32 entries per stream word (built for speed).
        Rademacher = "rademacher",
    }
);

impl DistributionKind {
    /// The distribution with Bernoulli probability `p` (ignored by the others).
    pub fn with_p(self, p: f64) -> Distribution {
        match self {
            DistributionKind::Gaussian => Distribution::Gaussian,
            DistributionKind::Uniform => Distribution::Uniform,
            DistributionKind::Bernoulli => Distribution::Bernoulli { p: p as f32 },
            DistributionKind::BernoulliReleased => Distribution::BernoulliReleased { p: p as f32 },
            DistributionKind::Rademacher => Distribution::Rademacher,
        }
    }

    /// The distribution with its Bernoulli probability, in words (for logs).
    pub fn describe(self, p: f64) -> String {
        match self {
            DistributionKind::Gaussian => "gaussian N(0, 1)".into(),
            DistributionKind::Uniform => "uniform on (-1, 1)".into(),
            DistributionKind::Bernoulli => {
                let sd = (p * (1.0 - p)).sqrt();
                format!(
                    "bernoulli p = {p}: zero-mean {{{:+}, {:+}}} (paper)",
                    (1.0 - p) / sd,
                    -p / sd
                )
            }
            DistributionKind::BernoulliReleased => format!(
                "bernoulli-released p = {p}: {{{:+}, {:+}}}, mean {} (released code)",
                1.0 - p,
                -1.0 - p,
                -(1.0 - p)
            ),
            DistributionKind::Rademacher => "rademacher ±1 (packed signs, 32 per word)".into(),
        }
    }
}

/// The distribution of the raw direction entries (before any scale).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Distribution {
    /// N(0, 1) by Box–Muller (|z| ≤ 5.77: the radius uses a 24-bit uniform in (0, 1]).
    #[default]
    Gaussian,
    /// Uniform on (−1, 1), 2^24 equally spaced symmetric values; variance 1/3.
    Uniform,
    /// b ~ Bernoulli(p) mapped to (b − p)/√(p(1 − p)): mean 0, variance 1
    /// (p = 0.5 gives exactly ±1). Requires 0 < p < 1.
    Bernoulli {
        /// Probability of the high value.
        p: f32,
    },
    /// The authors' released code's `bernoulli-p`: 2b − 1 − p with b ~ Bernoulli(p),
    /// i.e. 1 − p with probability p, else −1 − p (p = 0.5: {+0.5, −1.5}); mean
    /// −(1 − p), variance 4p(1 − p). Requires 0 < p < 1.
    BernoulliReleased {
        /// Probability of the high value 1 − p.
        p: f32,
    },
    /// Packed signs (Rademacher): ±1 from single bits, 32 entries per stream word.
    /// Entry e is bit `e mod 32` of word `e div 32`: +1 where it is 0, −1 where it is
    /// 1. Mean 0, variance 1; products with it are sign flips (exact).
    Rademacher,
}

impl Distribution {
    /// Name used by benchmarks and logs.
    pub fn name(self) -> String {
        match self {
            Distribution::Gaussian => "gaussian".into(),
            Distribution::Uniform => "uniform".into(),
            Distribution::Bernoulli { p } => format!("bernoulli({p})"),
            Distribution::BernoulliReleased { p } => format!("bernoulli-released({p})"),
            Distribution::Rademacher => "rademacher".into(),
        }
    }

    /// Direction entries per stream word: 32 for packed signs, else 1.
    pub fn entries_per_word(self) -> usize {
        match self {
            Distribution::Rademacher => SIGNS_PER_WORD,
            _ => 1,
        }
    }
    /// The exact parameters the samplers use (threshold and the two f32 values).
    pub fn params(self) -> DistParams {
        match self {
            Distribution::Bernoulli { p } => DistParams::bernoulli(p),
            Distribution::BernoulliReleased { p } => DistParams::bernoulli_released(p),
            _ => DistParams {
                threshold: 0,
                hi: 0.0,
                lo: 0.0,
            },
        }
    }
}

/// Bernoulli parameters as the samplers see them: value `hi` when `word < threshold`,
/// else `lo`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistParams {
    /// `min(round(p·2^32), 2^32 − 1)`.
    pub threshold: u32,
    /// Zero-mean: `(1 − p)/√(p(1 − p))`; released: `1 − p`; computed in f64, rounded
    /// to f32.
    pub hi: f32,
    /// Zero-mean: `−p/√(p(1 − p))`; released: `−1 − p`; computed in f64, rounded to f32.
    pub lo: f32,
}

impl DistParams {
    /// Parameters of the zero-mean Bernoulli(p); panics unless 0 < p < 1.
    pub fn bernoulli(p: f32) -> Self {
        let (t, p) = bernoulli_threshold(p);
        let sd = (p * (1.0 - p)).sqrt();
        DistParams {
            threshold: t,
            hi: ((1.0 - p) / sd) as f32,
            lo: (-p / sd) as f32,
        }
    }

    /// Parameters of the released code's Bernoulli(p), 2b − 1 − p (its
    /// `mixins/random_base.py` draws `u > 1 − p`, probability p, for the high value);
    /// panics unless 0 < p < 1.
    pub fn bernoulli_released(p: f32) -> Self {
        let (t, p) = bernoulli_threshold(p);
        DistParams {
            threshold: t,
            hi: (1.0 - p) as f32,
            lo: (-1.0 - p) as f32,
        }
    }
}

/// The threshold of probability `p` (`word < threshold` has probability p up to
/// 2^-32) and p as f64; panics unless 0 < p < 1.
fn bernoulli_threshold(p: f32) -> (u32, f64) {
    assert!(p > 0.0 && p < 1.0, "Bernoulli p must be in (0, 1), got {p}");
    let p = p as f64;
    let t = (p * 4_294_967_296.0).round().min(u32::MAX as f64);
    (t as u32, p)
}

/// A direction stream: generator, distribution and the run's 64-bit seed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stream {
    /// Block function.
    pub generator: Generator,
    /// Distribution of the raw entries.
    pub distribution: Distribution,
    /// Run seed.
    pub seed: u64,
}

/// The per-(step, compartment) part of the counter/key, fixed for a whole pass: block
/// `b` of direction `j` is `philox4x32_10([b, j, c2, c3], key)` or
/// `threefry2x32_20([b, j], key)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockKey {
    /// Generator.
    pub generator: Generator,
    /// 64-bit key as two words.
    pub key: [u32; 2],
    /// Philox counter word 2 (the compartment); 0 for Threefry.
    pub c2: u32,
    /// Philox counter word 3 (the step); 0 for Threefry.
    pub c3: u32,
}

impl BlockKey {
    /// The words of block `block` of direction `direction` (Threefry fills two).
    #[inline(always)]
    pub fn block(&self, direction: u32, block: u32) -> [u32; 4] {
        match self.generator {
            Generator::Philox => philox4x32_10([block, direction, self.c2, self.c3], self.key),
            Generator::Threefry => {
                let [a, b] = threefry2x32_20([block, direction], self.key);
                [a, b, 0, 0]
            }
        }
    }
}

/// Packed-sign entries per u32 word.
pub const SIGNS_PER_WORD: usize = 32;

/// Largest step a stream accepts (the counter holds 32 bits of it).
pub const MAX_STEP: u64 = u32::MAX as u64;

impl Stream {
    /// The default generator (Threefry), Gaussian, `seed`.
    pub fn new(seed: u64) -> Self {
        Stream {
            seed,
            ..Default::default()
        }
    }

    /// The seed as (low, high) words.
    pub fn seed_words(&self) -> [u32; 2] {
        [self.seed as u32, (self.seed >> 32) as u32]
    }

    /// Counter and key for a pass over compartment `compartment` at step `step`.
    /// Panics if `step` > [`MAX_STEP`].
    pub fn block_key(&self, step: u64, compartment: u32) -> BlockKey {
        assert!(
            step <= MAX_STEP,
            "step {step} exceeds the stream's 32-bit step counter"
        );
        let step = step as u32;
        let seed = self.seed_words();
        match self.generator {
            Generator::Philox => BlockKey {
                generator: Generator::Philox,
                key: seed,
                c2: compartment,
                c3: step,
            },
            Generator::Threefry => BlockKey {
                generator: Generator::Threefry,
                key: threefry2x32_20([step, compartment], seed),
                c2: 0,
                c3: 0,
            },
        }
    }

    /// Word `index` of a direction's word stream: word `index mod W` of block
    /// `index div W` (W words per block). Entry e's word is word e (packed signs: word
    /// e div 32).
    pub fn word(&self, step: u64, compartment: u32, direction: u32, index: u32) -> u32 {
        let w = self.generator.words_per_block() as u32;
        let bk = self.block_key(step, compartment);
        bk.block(direction, index / w)[(index % w) as usize]
    }

    /// The raw (unscaled) entry `element` of direction `direction` of `compartment` at
    /// `step`: the scalar reference of the whole stream.
    pub fn sample(&self, step: u64, compartment: u32, direction: u32, element: u32) -> f32 {
        if self.distribution == Distribution::Rademacher {
            let per = SIGNS_PER_WORD as u32;
            let word = self.word(step, compartment, direction, element / per);
            return map::sign(word, element % per);
        }
        let w = self.generator.words_per_block() as u32;
        let bk = self.block_key(step, compartment);
        let words = bk.block(direction, element / w);
        map::block_values(self.distribution.params(), self.distribution, &words)
            [(element % w) as usize]
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn generators_and_distributions_read_back_their_text() {
        for g in [Generator::Threefry, Generator::Philox] {
            assert_eq!(g.to_string().parse::<Generator>(), Ok(g));
        }
        for &d in DistributionKind::ALL {
            assert_eq!(d.to_string().parse::<DistributionKind>(), Ok(d));
        }
        let e = "mt19937".parse::<Generator>().unwrap_err();
        assert!(e.contains("threefry or philox"), "{e}");
        assert_eq!(
            DistributionKind::Bernoulli.with_p(0.25),
            Distribution::Bernoulli { p: 0.25 }
        );
    }

    #[test]
    fn each_bernoulli_names_itself_and_its_values() {
        assert_eq!(
            "bernoulli-released".parse::<DistributionKind>(),
            Ok(DistributionKind::BernoulliReleased)
        );
        let released = DistributionKind::BernoulliReleased.describe(0.5);
        assert!(
            released.contains("{+0.5, -1.5}") && released.contains("released"),
            "{released}"
        );
        let zero_mean = DistributionKind::Bernoulli.describe(0.5);
        assert!(
            zero_mean.contains("{+1, -1}") && zero_mean.contains("zero-mean"),
            "{zero_mean}"
        );
    }
}
