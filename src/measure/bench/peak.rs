//! The cpu's f32 peak, measured: independent fused multiply-add chains held in registers
//! on every core at once. `bench kernels`' "% peak" column divides by this figure from
//! the same run, not by a clock and a unit count typed in for one processor (which
//! differ between the machines this runs on: the same "AMD EPYC" name has had 256- and
//! 512-bit FMA units).

use serde::Serialize;
use std::time::Instant;

/// A measured peak.
#[derive(Clone, Debug, Serialize)]
pub struct CpuPeak {
    /// f32 GFLOP/s over all threads (an FMA counts 2).
    pub gflops: f64,
    /// Threads that ran the loop at once.
    pub threads: usize,
    /// Instruction set of the loop.
    pub isa: &'static str,
}

/// Lanes per accumulator row.
const W: usize = 16;

/// `iters` rounds of `acc = acc·m + c` on `N` independent rows of [`W`] lanes, as a
/// multiply and an add (the baseline loop; the FMA loops below do the same with one
/// rounding). Returns a sum of the rows so that nothing is optimised away.
fn chains<const N: usize>(iters: u64) -> f32 {
    let m = std::hint::black_box([0.999_9f32; W]);
    let c = std::hint::black_box([1e-4f32; W]);
    let mut acc = [[0f32; W]; N];
    for (i, row) in acc.iter_mut().enumerate() {
        for (l, x) in row.iter_mut().enumerate() {
            *x = (i * W + l) as f32 * 1e-3;
        }
    }
    for _ in 0..iters {
        for row in acc.iter_mut() {
            for l in 0..W {
                row[l] = row[l] * m[l] + c[l];
            }
        }
    }
    acc.iter().flatten().sum()
}

/// One FMA step of a row of `R` lanes (one vector register).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fma_row<const R: usize>(a: &mut [f32; R], m: &[f32; R], c: &[f32; R]) {
    for l in 0..R {
        a[l] = a[l].mul_add(m[l], c[l]);
    }
}

/// [`chains`] with FMA on 12 rows of `R` lanes (12 vector registers: more chains than
/// FMA latency × units on current cores), spelled out row by row so that each row
/// becomes one vector FMA (a loop over the rows compiles to gathers).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fma_chains<const R: usize>(iters: u64) -> f32 {
    let m = std::hint::black_box([0.999_9f32; R]);
    let c = std::hint::black_box([1e-4f32; R]);
    let row = |i: usize| -> [f32; R] { std::array::from_fn(|l| (i * R + l) as f32 * 1e-3) };
    let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5] = [0, 1, 2, 3, 4, 5].map(row);
    let [mut a6, mut a7, mut a8, mut a9, mut a10, mut a11] = [6, 7, 8, 9, 10, 11].map(row);
    for _ in 0..iters {
        fma_row(&mut a0, &m, &c);
        fma_row(&mut a1, &m, &c);
        fma_row(&mut a2, &m, &c);
        fma_row(&mut a3, &m, &c);
        fma_row(&mut a4, &m, &c);
        fma_row(&mut a5, &m, &c);
        fma_row(&mut a6, &m, &c);
        fma_row(&mut a7, &m, &c);
        fma_row(&mut a8, &m, &c);
        fma_row(&mut a9, &m, &c);
        fma_row(&mut a10, &m, &c);
        fma_row(&mut a11, &m, &c);
    }
    [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11]
        .iter()
        .flatten()
        .sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn chains_avx512(iters: u64) -> f32 {
    fma_chains::<16>(iters)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chains_avx2(iters: u64) -> f32 {
    // Intrinsics here: LLVM's vectoriser shuffles the 8-lane rows through the stack.
    // (The AVX-512 loop compiles cleanly from plain Rust, and its intrinsics would need
    // a newer Rust than the workspace's minimum.)
    use std::arch::x86_64::*;
    let m = _mm256_set1_ps(std::hint::black_box(0.999_9));
    let c = _mm256_set1_ps(std::hint::black_box(1e-4));
    let mut acc = [_mm256_setzero_ps(); 12];
    for (i, a) in acc.iter_mut().enumerate() {
        let row: [f32; 8] = std::array::from_fn(|l| (i * 8 + l) as f32 * 1e-3);
        *a = _mm256_loadu_ps(row.as_ptr());
    }
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, m, c);
        }
    }
    let mut sum = 0f32;
    for a in acc {
        let mut row = [0f32; 8];
        _mm256_storeu_ps(row.as_mut_ptr(), a);
        sum += row.iter().sum::<f32>();
    }
    sum
}

/// A peak loop: (lanes it updates per round, instruction set, the loop).
type PeakLoop = (usize, &'static str, fn(u64) -> f32);

/// The loops this processor runs, best first.
fn loops() -> Vec<PeakLoop> {
    let mut v: Vec<PeakLoop> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            v.push((12 * 16, "AVX-512 FMA", |i| unsafe { chains_avx512(i) }));
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            v.push((12 * 8, "AVX2 FMA", |i| unsafe { chains_avx2(i) }));
        }
    }
    v.push((4 * W, "baseline (multiply + add)", chains::<4>));
    v
}

/// Measures the peak: every thread of the machine runs the loop at once; the best of
/// three runs of about 50 ms counts.
pub fn measure_cpu_peak() -> CpuPeak {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (lanes, isa, f) = loops()[0];
    // Calibrate on one thread to about 50 ms.
    let mut iters: u64 = 1 << 16;
    loop {
        let t = Instant::now();
        std::hint::black_box(f(iters));
        let s = t.elapsed().as_secs_f64();
        if s > 0.01 || iters > 1 << 34 {
            iters = ((iters as f64) * 0.05 / s.max(1e-9)).max(1.0) as u64;
            break;
        }
        iters *= 4;
    }
    let flops = 2.0 * lanes as f64 * iters as f64 * threads as f64;
    let mut best = 0f64;
    for _ in 0..3 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| std::hint::black_box(f(iters)));
            }
        });
        best = best.max(flops / t.elapsed().as_secs_f64() / 1e9);
    }
    CpuPeak {
        gflops: best,
        threads,
        isa,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every loop does the arithmetic it is credited with: its lanes follow the f64
    /// recurrence (which the f32 chains track to a few ulps over 100 steps).
    #[test]
    fn each_loop_computes_its_recurrence() {
        for (lanes, isa, f) in loops() {
            let iters = 100;
            let got = f(iters) as f64;
            let mut want = 0f64;
            for i in 0..lanes {
                let mut x = (i as f32 * 1e-3) as f64;
                for _ in 0..iters {
                    x = x * 0.999_9f32 as f64 + 1e-4f32 as f64;
                }
                want += x;
            }
            assert!(
                (got - want).abs() < 1e-4 * want.abs(),
                "{isa}: {got} against {want}"
            );
        }
    }
}
