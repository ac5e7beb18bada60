//! Is a cheaper Box–Muller worth a named stream variant? Single-thread nanoseconds per
//! entry (wall clock, best of 15 passes over 2^22 entries, AVX-512 where the processor
//! has it) of Threefry2x32-20 words mapped (a) to uniform floats, (b) to Gaussians by
//! the specified Box–Muller (fdlibm `ln` with its division, Cephes sin/cos), (c) to
//! Gaussians by the same Box–Muller with a division-free `ln` (a degree-7 polynomial in
//! f = m − 1, max error 8·10⁻⁸ on the reduced range). (c) is not a stream this library
//! offers: it measures how much a cheaper `ln` could save.
//! `cargo run --release -p rbd-kernels --example bench_gaussian_map`

use rbd_kernels::rng::lanes::{Dist, Gauss, Gen, ThreefryGen, Uniform, F, L, U};
use rbd_kernels::rng::map::{sincos_turn, unit_open0, LN2_HI, LN2_LO};
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
    let ix = x.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let k = (ix >> 23) as i32 - 0x7f;
    let m = f32::from_bits((ix & 0x007f_ffff) + 0x3f35_04f3);
    let f = m - 1.0;
    let mut p = LN_POLY[7];
    for c in LN_POLY[..7].iter().rev() {
        p = p * f + c;
    }
    let dk = k as f32;
    ((f * f * p + dk * LN2_LO) + f) + dk * LN2_HI
}

struct GaussPolyLn;
impl Dist for GaussPolyLn {
    #[inline(always)]
    fn values(w: &[U; 4], _: &DistParams) -> [F; 4] {
        let mut out = [[0f32; L]; 4];
        for pair in 0..2 {
            let (a, b) = (&w[2 * pair], &w[2 * pair + 1]);
            for l in 0..L {
                let r = (2.0 * (0.0 - ln_poly(unit_open0(a[l])))).sqrt();
                let (s, c) = sincos_turn(b[l]);
                out[2 * pair][l] = r * c;
                out[2 * pair + 1][l] = r * s;
            }
        }
        out
    }
}

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
}
