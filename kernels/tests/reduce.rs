//! Reductions: cpu against naive f64 sums, WGSL against cpu, determinism.

use proptest::prelude::*;
use rbd_kernels::reduce::*;
use rbd_kernels::testing::{assert_close, cases, cpu_adapter, uniform};
use rbd_kernels::GpuContext;

/// Deterministic values in [-1, 1), with an offset so sums do not cancel.
fn random(len: usize, seed: u64, offset: f64) -> Vec<f64> {
    uniform(len, seed).iter().map(|v| v + offset).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn naive(r: Reduction, x: &[f64]) -> f64 {
    match r {
        Reduction::Sum => x.iter().sum(),
        Reduction::SumSquares => x.iter().map(|v| v * v).sum(),
    }
}

/// f32 tolerance of a sum whose terms have absolute sum `abs`.
fn tol(abs: f64) -> f64 {
    2e-6 * abs + 1e-6
}

fn gpu_reduce(ctx: &GpuContext, r: Reduction, x: &[f32]) -> f32 {
    let gx = ctx.upload(bytemuck::cast_slice(x)).unwrap();
    let out = reduce_gpu(ctx, r, &gx, x.len()).unwrap();
    ctx.read::<f32>(&out, 1).unwrap()[0]
}

/// Lengths around the chunk boundaries of both backends, and a few random ones.
fn len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        prop::sample::select(vec![
            2usize, 7, 8, 9, 255, 256, 257, 4095, 4096, 4097, 16383, 16384, 16385, 40000
        ]),
        1usize..70_000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(32)))]

    #[test]
    fn cpu_matches_naive(n in len(), seed in any::<u64>(), sq in any::<bool>()) {
        let r = if sq { Reduction::SumSquares } else { Reduction::Sum };
        let x = random(n, seed, 0.25);
        let want = naive(r, &x);
        let abs = naive(r, &x.iter().map(|v| v.abs()).collect::<Vec<_>>());
        let got = reduce_cpu(r, &x);
        prop_assert!((got - want).abs() <= 1e-12 * abs, "{r:?} n {n}: {got} vs {want}");
        let got32 = reduce_cpu(r, &f32s(&x)) as f64;
        prop_assert!((got32 - want).abs() <= tol(abs), "{r:?} f32 n {n}: {got32} vs {want}");
    }

    #[test]
    fn gpu_matches_cpu(n in len(), seed in any::<u64>(), sq in any::<bool>()) {
        let ctx = cpu_adapter();
        let r = if sq { Reduction::SumSquares } else { Reduction::Sum };
        let x = random(n, seed, 0.25);
        let want = naive(r, &x);
        let abs = naive(r, &x.iter().map(|v| v.abs()).collect::<Vec<_>>());
        let got = gpu_reduce(&ctx, r, &f32s(&x)) as f64;
        prop_assert!((got - want).abs() <= tol(abs), "{r:?} n {n}: gpu {got} vs {want}");
    }

    #[test]
    fn dot_matches(n in len(), seed in any::<u64>()) {
        let ctx = cpu_adapter();
        let a = random(n, seed, 0.0);
        let b = random(n, seed ^ 5, 0.5);
        let want: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let abs: f64 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
        prop_assert!((dot_cpu(&a, &b) - want).abs() <= 1e-12 * abs, "dot cpu f64 n {n}");
        let (a32, b32) = (f32s(&a), f32s(&b));
        let c32 = dot_cpu(&a32, &b32) as f64;
        prop_assert!((c32 - want).abs() <= tol(abs), "dot cpu f32 n {n}: {c32} vs {want}");
        let ga = ctx.upload(bytemuck::cast_slice(&a32)).unwrap();
        let gb = ctx.upload(bytemuck::cast_slice(&b32)).unwrap();
        let got = ctx.read::<f32>(&dot_gpu(&ctx, &ga, &gb, n).unwrap(), 1).unwrap()[0] as f64;
        prop_assert!((got - want).abs() <= tol(abs), "dot gpu n {n}: {got} vs {want}");
    }

    #[test]
    fn sum_rows_matches(rows in 1usize..5000, cols in prop::sample::select(vec![1usize, 3, 10, 64, 130]), seed in any::<u64>()) {
        let ctx = cpu_adapter();
        let x = random(rows * cols, seed, 0.1);
        let mut want = vec![0.0; cols];
        for r in 0..rows {
            for c in 0..cols {
                want[c] += x[r * cols + c];
            }
        }
        let mut got = vec![f64::NAN; cols];
        sum_rows_cpu(&x, rows, cols, &mut got);
        for c in 0..cols {
            prop_assert!((got[c] - want[c]).abs() <= 1e-12 * rows as f64, "sum_rows cpu [{rows}, {cols}] col {c}");
        }
        let x32 = f32s(&x);
        let mut cpu32 = vec![0f32; cols];
        sum_rows_cpu(&x32, rows, cols, &mut cpu32);
        let gx = ctx.upload(bytemuck::cast_slice(&x32)).unwrap();
        let gpu: Vec<f32> = ctx.read(&sum_rows_gpu(&ctx, &gx, rows, cols).unwrap(), cols).unwrap();
        let want32 = f32s(&want);
        let atol = tol(rows as f64 * 1.1) as f32;
        assert_close(&format!("sum_rows cpu f32 [{rows}, {cols}]"), &cpu32, &want32, atol, 0.0);
        assert_close(&format!("sum_rows gpu [{rows}, {cols}]"), &gpu, &want32, atol, 0.0);
    }

    #[test]
    fn sum_channels_matches(
        n in prop::sample::select(vec![1usize, 2, 5, 64, 300]),
        c in prop::sample::select(vec![1usize, 3, 16]),
        inner in prop::sample::select(vec![1usize, 7, 49, 256, 1000, 5000]),
        seed in any::<u64>(),
    ) {
        let ctx = cpu_adapter();
        let x = random(n * c * inner, seed, 0.1);
        let mut want = vec![0.0; c];
        for img in 0..n {
            for ch in 0..c {
                for i in 0..inner {
                    want[ch] += x[(img * c + ch) * inner + i];
                }
            }
        }
        let mut got = vec![f64::NAN; c];
        sum_channels_cpu(&x, n, c, inner, &mut got);
        let count = (n * inner) as f64;
        for ch in 0..c {
            prop_assert!((got[ch] - want[ch]).abs() <= 1e-12 * count, "sum_channels cpu [{n}, {c}, {inner}] ch {ch}");
        }
        let x32 = f32s(&x);
        let mut cpu32 = vec![0f32; c];
        sum_channels_cpu(&x32, n, c, inner, &mut cpu32);
        let gx = ctx.upload(bytemuck::cast_slice(&x32)).unwrap();
        let gpu: Vec<f32> = ctx.read(&sum_channels_gpu(&ctx, &gx, n, c, inner).unwrap(), c).unwrap();
        let want32 = f32s(&want);
        let atol = tol(count * 1.1) as f32;
        assert_close(&format!("sum_channels cpu f32 [{n}, {c}, {inner}]"), &cpu32, &want32, atol, 0.0);
        assert_close(&format!("sum_channels gpu [{n}, {c}, {inner}]"), &gpu, &want32, atol, 0.0);
    }
}

#[test]
fn gpu_three_passes_and_determinism() {
    let ctx = cpu_adapter();
    // 4096² + 5 values: three passes (4097 partials, then 2, then 1).
    let n = 4096 * 4096 + 5;
    let x = f32s(&random(n, 11, 0.25));
    let want = reduce_cpu(
        Reduction::Sum,
        &x.iter().map(|&v| v as f64).collect::<Vec<_>>(),
    );
    let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
    let first = ctx
        .read::<f32>(&reduce_gpu(&ctx, Reduction::Sum, &gx, n).unwrap(), 1)
        .unwrap()[0];
    let second = ctx
        .read::<f32>(&reduce_gpu(&ctx, Reduction::Sum, &gx, n).unwrap(), 1)
        .unwrap()[0];
    assert_eq!(
        first.to_bits(),
        second.to_bits(),
        "n {n}: {first} vs {second}"
    );
    let abs = n as f64 * 0.75;
    assert!(
        (first as f64 - want).abs() <= tol(abs),
        "n {n}: gpu {first} vs {want}"
    );
    let cpu = reduce_cpu(Reduction::Sum, &x) as f64;
    assert!((cpu - want).abs() <= tol(abs), "n {n}: cpu {cpu} vs {want}");
}

#[test]
fn gpu_two_runs_are_bitwise_equal() {
    let ctx = cpu_adapter();
    for n in [1usize, 4097, 1_000_003] {
        let x = f32s(&random(n, n as u64, 0.0));
        let a = gpu_reduce(&ctx, Reduction::SumSquares, &x);
        let b = gpu_reduce(&ctx, Reduction::SumSquares, &x);
        assert_eq!(a.to_bits(), b.to_bits(), "n {n}");
        let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
        let d1 = ctx
            .read::<f32>(&dot_gpu(&ctx, &gx, &gx, n).unwrap(), 1)
            .unwrap()[0];
        let d2 = ctx
            .read::<f32>(&dot_gpu(&ctx, &gx, &gx, n).unwrap(), 1)
            .unwrap()[0];
        assert_eq!(d1.to_bits(), d2.to_bits(), "dot n {n}");
    }
}

#[test]
fn cpu_is_independent_of_thread_count() {
    let x = f32s(&random(300_001, 4, 0.3));
    let y = f32s(&random(300_001, 5, -0.2));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut rows = vec![0f32; 7];
            sum_rows_cpu(&x[..300_000], 300_000 / 7, 7, &mut rows);
            let mut ch = vec![0f32; 3];
            sum_channels_cpu(&x[..300_000], 100, 3, 1000, &mut ch);
            (
                reduce_cpu(Reduction::Sum, &x).to_bits(),
                reduce_cpu(Reduction::SumSquares, &x).to_bits(),
                dot_cpu(&x, &y).to_bits(),
                rows.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                ch.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            )
        })
    };
    assert_eq!(run(1), run(2));
    assert_eq!(run(1), run(3));
}

#[test]
fn single_and_empty_inputs() {
    let ctx = cpu_adapter();
    assert_eq!(gpu_reduce(&ctx, Reduction::Sum, &[2.5]), 2.5);
    assert_eq!(gpu_reduce(&ctx, Reduction::SumSquares, &[-3.0]), 9.0);
    assert_eq!(reduce_cpu(Reduction::Sum, &[2.5f32]), 2.5);
    assert_eq!(reduce_cpu::<f32>(Reduction::Sum, &[]), 0.0);
    let empty = ctx.alloc(4).unwrap();
    let z = reduce_gpu(&ctx, Reduction::Sum, &empty, 0).unwrap();
    assert_eq!(ctx.read::<f32>(&z, 1).unwrap(), vec![0.0]);
    let z = sum_rows_gpu(&ctx, &empty, 0, 1).unwrap();
    assert_eq!(ctx.read::<f32>(&z, 1).unwrap(), vec![0.0]);
}

#[test]
fn mul_scalar_matches_cpu_exactly() {
    let ctx = cpu_adapter();
    for n in [1usize, 255, 257, 100_000] {
        let x = f32s(&random(n, n as u64, 0.0));
        let s = -1.7f32;
        let mut want = vec![0f32; n];
        mul_scalar_cpu(&x, s, &mut want);
        let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
        let gs = ctx.upload(bytemuck::bytes_of(&s)).unwrap();
        let got: Vec<f32> = ctx
            .read(&mul_scalar_gpu(&ctx, &gx, &gs, n).unwrap(), n)
            .unwrap();
        assert_eq!(got, want, "n {n}");
    }
}

#[test]
fn short_buffers_are_refused() {
    let ctx = cpu_adapter();
    let b = ctx.upload(&[0u8; 40]).unwrap();
    assert!(reduce_gpu(&ctx, Reduction::Sum, &b, 11).is_err());
    assert!(dot_gpu(&ctx, &b, &b, 11).is_err());
    assert!(sum_rows_gpu(&ctx, &b, 4, 3).is_err());
    assert!(sum_channels_gpu(&ctx, &b, 2, 3, 2).is_err());
}
