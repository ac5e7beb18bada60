//! Is a cheaper Box–Muller worth a named stream variant? Single-thread nanoseconds per
//! entry (wall clock, best of 15 passes over 2^22 entries, AVX-512 where the processor
//! has it) of Threefry2x32-20 words mapped (a) to uniform floats, (b) to Gaussians by
//! the specified Box–Muller (fdlibm `ln` with its division, Cephes sin/cos), (c) to
//! Gaussians by the same Box–Muller with a division-free `ln` (a degree-7 polynomial in
//! f = m − 1, max error 8·10⁻⁸ on the reduced range), (d) as (c) with every polynomial
//! in fused multiply-adds, and, to split the cost, (e) the radius alone (ln and √, no
//! sin/cos) and (f) the angle alone (sin/cos, no ln or √). (c)–(f) are not streams this
//! library offers: they measure how much a cheaper Box–Muller could save.
//! `cargo run --release -p rbd-kernels --example bench_gaussian_map`

use rbd_kernels::rng::lanes::{Dist, Gauss, Gen, ThreefryGen, Uniform, F, L, U};
use rbd_kernels::rng::map::{
    ln_reduce, ln_unit, rotate_quadrant, sincos_turn, turn_quadrant, unit_open0, C1, C2, C3,
    LN2_HI, LN2_LO, S1, S2, S3,
};
use rbd_kernels::rng::{DistParams, Distribution, Stream};
use std::time::Instant;

const LN_POLY: [f32; 8] = [
    -0.499_999_97,
    0.333_335_82,
    -0.250_010_46,
    0.199_772_7,
    -0.165_950_54,
    0.147_718_98,
    -0.140_767_87,
    0.088_886_26,
];

#[inline(always)]
fn ln_poly(x: f32) -> f32 {
    let (dk, f) = ln_reduce(x);
    let mut p = LN_POLY[7];
    for c in LN_POLY[..7].iter().rev() {
        p = p * f + c;
    }
    ((f * f * p + dk * LN2_LO) + f) + dk * LN2_HI
}

/// [`ln_poly`] with fused multiply-adds.
#[inline(always)]
fn ln_poly_fma(x: f32) -> f32 {
    let (dk, f) = ln_reduce(x);
    let mut p = LN_POLY[7];
    for &c in LN_POLY[..7].iter().rev() {
        p = p.mul_add(f, c);
    }
    dk.mul_add(LN2_HI, (f * f).mul_add(p, dk * LN2_LO) + f)
}

/// [`sincos_turn`] with fused multiply-adds.
#[inline(always)]
fn sincos_turn_fma(x: u32) -> (f32, f32) {
    let (q, a) = turn_quadrant(x);
    let z = a * a;
    let s = (S3.mul_add(z, S2).mul_add(z, S1) * z).mul_add(a, a);
    let c = (C3.mul_add(z, C2).mul_add(z, C1) * z).mul_add(z, (-0.5f32).mul_add(z, 1.0));
    rotate_quadrant(q, s, c)
}

/// Generates `Dist` impls from a per-pair map `(a, b) -> (r·cos, r·sin)`.
macro_rules! pair_dist {
    ($name:ident, |$a:ident, $b:ident| $body:expr) => {
        struct $name;
        impl Dist for $name {
            #[inline(always)]
            fn values(w: &[U; 4], _: &DistParams) -> [F; 4] {
                let mut out = [[0f32; L]; 4];
                for pair in 0..2 {
                    for l in 0..L {
                        let ($a, $b) = (w[2 * pair][l], w[2 * pair + 1][l]);
                        let (x, y): (f32, f32) = $body;
                        out[2 * pair][l] = x;
                        out[2 * pair + 1][l] = y;
                    }
                }
                out
            }
        }
    };
}

pair_dist!(GaussFma, |a, b| {
    let r = (2.0 * (0.0 - ln_poly_fma(unit_open0(a)))).sqrt();
    let (s, c) = sincos_turn_fma(b);
    (r * c, r * s)
});
pair_dist!(RadiusOnly, |a, b| {
    let r = (2.0 * (0.0 - ln_unit(unit_open0(a)))).sqrt();
    (r, r * f32::from_bits((b >> 9) | 0x3f80_0000))
});
pair_dist!(AngleOnly, |a, b| {
    let (s, c) = sincos_turn(b);
    let r = f32::from_bits((a >> 9) | 0x3f80_0000);
    (r * c, r * s)
});

pair_dist!(GaussPolyLn, |a, b| {
    let r = (2.0 * (0.0 - ln_poly(unit_open0(a)))).sqrt();
    let (s, c) = sincos_turn(b);
    (r * c, r * s)
});

/// Sum of all values of `batches` batches of direction 0 (kept, so nothing is elided).
#[inline(always)]
fn run<D: Dist>(batches: u32) -> f32 {
    let s = Stream::new(1);
    let bk = s.block_key(0, 0);
    let dp = Distribution::Gaussian.params();
    let mut acc = [0f32; L];
    for b in 0..batches {
        let v = D::values(&ThreefryGen::words(&bk, 0, b), &dp);
        for row in &v {
            for l in 0..L {
                acc[l] += row[l];
            }
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2")]
unsafe fn run512<D: Dist>(batches: u32) -> f32 {
    run::<D>(batches)
}

fn time<D: Dist>(name: &str) {
    const BATCHES: u32 = 1 << 16; // 2^22 entries
    let avx512 = is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl");
    let mut best = f64::INFINITY;
    let mut sink = 0f32;
    for _ in 0..15 {
        let t = Instant::now();
        // SAFETY: only called when the processor has AVX-512.
        sink += if avx512 {
            unsafe { run512::<D>(BATCHES) }
        } else {
            run::<D>(BATCHES)
        };
        best = best.min(t.elapsed().as_secs_f64());
    }
    let ns = best * 1e9 / (BATCHES as f64 * 64.0);
    println!(
        "{name:<44} {ns:.3} ns/entry ({:.0} M entries/s on one core; sum {sink:.1})",
        1e3 / ns
    );
}

fn main() {
    time::<Uniform>("threefry2x32-20 → uniform");
    time::<Gauss>("threefry2x32-20 → Gaussian (specified)");
    time::<GaussPolyLn>("threefry2x32-20 → Gaussian, division-free ln");
    time::<GaussFma>("threefry2x32-20 → Gaussian, division-free, FMA");
    time::<RadiusOnly>("threefry2x32-20 → radius only (ln, √)");
    time::<AngleOnly>("threefry2x32-20 → angle only (sin, cos)");
}
