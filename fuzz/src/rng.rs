//! A small deterministic generator (SplitMix64): case `i` of a parser under seed `s`
//! is the same input on every machine, so any finding replays with `--case i`.

/// SplitMix64 (Steele, Lea and Flood 2014).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The generator of case `index` of parser `parser` under run seed `seed`.
    pub fn for_case(seed: u64, parser: &str, index: u64) -> Self {
        // FNV-1a over the name, then mixed with the seed and the index.
        let name = parser.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        let mut r = Rng(seed ^ name.rotate_left(17));
        r.0 ^= r
            .next_u64()
            .wrapping_add(index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        (((self.next_u64() as u128) * (n as u128)) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u32, den: u32) -> bool {
        self.below(den as usize) < num as usize
    }

    /// One element of `xs` (not empty).
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// A small count, biased to small values: 1 most often, rarely up to `max`.
    pub fn small(&mut self, max: usize) -> usize {
        let mut n = 1;
        while n < max && self.chance(1, 3) {
            n += 1;
        }
        n
    }

    /// A random finite f64 of varied magnitude and sign.
    pub fn f64(&mut self) -> f64 {
        let mantissa = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let exponent = self.range(0, 40) as i32 - 20;
        let sign = if self.chance(1, 4) { -1.0 } else { 1.0 };
        sign * mantissa * 2f64.powi(exponent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::for_case(1, "idx", 7).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let b = Rng::for_case(1, "idx", 8).next_u64();
        let c = Rng::for_case(1, "cifar", 7).next_u64();
        let d = Rng::for_case(2, "idx", 7).next_u64();
        assert!(a[0] != b && a[0] != c && a[0] != d && b != c);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(3);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            seen[r.below(7)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
