//! Matmul: cpu against a naive f64 triple loop, WGSL (f32 and f16 storage) against cpu.
//! `cargo test --release -p rbd-kernels --test matmul -- --ignored --nocapture` prints
//! the GFLOP/s table.

use proptest::prelude::*;
use rbd_kernels::matmul::*;
use rbd_kernels::testing::{assert_close, cases, cpu_adapter};
use rbd_kernels::GpuContext;

use rbd_kernels::testing::uniform as random;

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// op(A)[i, p] for A as stored.
fn a_at(s: &MatmulShape, a: &[f64], i: usize, p: usize) -> f64 {
    if s.trans_a {
        a[p * s.m + i]
    } else {
        a[i * s.k + p]
    }
}

fn b_at(s: &MatmulShape, b: &[f64], p: usize, j: usize) -> f64 {
    if s.trans_b {
        b[j * s.k + p]
    } else {
        b[p * s.n + j]
    }
}

fn naive(s: &MatmulShape, a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut c = vec![0.0; s.c_len()];
    for i in 0..s.m {
        for j in 0..s.n {
            let mut acc = 0.0;
            for p in 0..s.k {
                acc += a_at(s, a, i, p) * b_at(s, b, p, j);
            }
            c[i * s.n + j] = acc;
        }
    }
    c
}

fn shape(m: usize, k: usize, n: usize, ta: bool, tb: bool) -> MatmulShape {
    MatmulShape {
        m,
        k,
        n,
        trans_a: ta,
        trans_b: tb,
    }
}

/// Dimensions biased towards the interesting ones: 1, primes, tile multiples ± 1.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        prop::sample::select(vec![2usize, 3, 5, 7, 13, 31, 37, 61, 67, 97, 127, 131]),
        prop::sample::select(vec![4usize, 16, 63, 64, 65, 128, 129]),
        1usize..150,
    ]
}

fn any_shape() -> impl Strategy<Value = MatmulShape> {
    (dim(), dim(), dim(), any::<bool>(), any::<bool>())
        .prop_map(|(m, k, n, ta, tb)| shape(m, k, n, ta, tb))
}

/// GPU result of `s` on data from `seed`, with the cpu f32 reference.
fn gpu_vs_cpu(
    ctx: &GpuContext,
    s: &MatmulShape,
    seed: u64,
    cfg: Option<TileConfig>,
) -> (Vec<f32>, Vec<f32>) {
    let a = f32s(&random(s.a_len(), seed));
    let b = f32s(&random(s.b_len(), seed ^ 0xABCD));
    let mut want = vec![0f32; s.c_len()];
    matmul_cpu(s, &a, &b, &mut want);
    let ga = ctx.upload(bytemuck::cast_slice(&a)).unwrap();
    let gb = ctx.upload(bytemuck::cast_slice(&b)).unwrap();
    let gc = match cfg {
        Some(cfg) => matmul_gpu_tiled(ctx, s, &ga, &gb, cfg).unwrap(),
        None => matmul_gpu(ctx, s, &ga, &gb).unwrap(),
    };
    let got: Vec<f32> = ctx.read(&gc, s.c_len()).unwrap();
    (got, want)
}

fn tol(k: usize) -> f32 {
    2e-6 * (k as f32 + 1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn cpu_f64_matches_naive(s in any_shape(), seed in any::<u64>()) {
        let a = random(s.a_len(), seed);
        let b = random(s.b_len(), seed ^ 1);
        let want = naive(&s, &a, &b);
        let mut got = vec![f64::NAN; s.c_len()];
        matmul_cpu(&s, &a, &b, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            prop_assert!((g - w).abs() <= 1e-12 * (s.k as f64 + 1.0), "{s:?}: index {i}: {g} vs {w}");
        }
    }

    #[test]
    fn cpu_f32_matches_naive(s in any_shape(), seed in any::<u64>()) {
        let a = random(s.a_len(), seed);
        let b = random(s.b_len(), seed ^ 1);
        let a32 = f32s(&a);
        let b32 = f32s(&b);
        let want: Vec<f32> = naive(&s, &a32.iter().map(|&x| x as f64).collect::<Vec<_>>(),
            &b32.iter().map(|&x| x as f64).collect::<Vec<_>>()).iter().map(|&x| x as f32).collect();
        let mut got = vec![f32::NAN; s.c_len()];
        matmul_cpu(&s, &a32, &b32, &mut got);
        assert_close(&format!("cpu f32 {s:?}"), &got, &want, tol(s.k), 1e-5);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn gpu_matches_cpu(s in any_shape(), seed in any::<u64>()) {
        let ctx = cpu_adapter();
        let (got, want) = gpu_vs_cpu(&ctx, &s, seed, None);
        assert_close(&format!("gpu {s:?}"), &got, &want, tol(s.k), 1e-5);
    }
}

/// The cpu product is cut into rayon tasks by row or column blocks; the bits must not
/// depend on the thread count (1, 2, 3 threads) for shapes that split either way.
#[test]
fn cpu_is_deterministic_across_threads() {
    for s in [
        shape(300, 200, 20, false, true),
        shape(32, 784, 1000, false, false),
        shape(784, 32, 1000, true, false),
    ] {
        let a = f32s(&random(s.a_len(), 7));
        let b = f32s(&random(s.b_len(), 8));
        let run = || {
            let mut c = vec![0f32; s.c_len()];
            matmul_cpu(&s, &a, &b, &mut c);
            c.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
        };
        let want = run();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            assert!(pool.install(run) == want, "{threads} threads {s:?}");
        }
    }
}

#[test]
fn gpu_edge_shapes_all_transposes() {
    let ctx = cpu_adapter();
    let dims = [
        (1, 1, 1),
        (1, 7, 1),
        (1, 64, 65),
        (65, 64, 1),
        (3, 1, 5),
        (64, 16, 64),
        (128, 32, 64),
        (67, 13, 71),
        (129, 131, 127),
        (8, 300, 12),
        (2, 1000, 3),
    ];
    for (m, k, n) in dims {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let s = shape(m, k, n, ta, tb);
            let (got, want) = gpu_vs_cpu(&ctx, &s, (m * 31 + k * 7 + n) as u64, None);
            assert_close(&format!("gpu {s:?}"), &got, &want, tol(k), 1e-5);
        }
    }
}

#[test]
fn gpu_k_zero_gives_zeros() {
    let ctx = cpu_adapter();
    let s = shape(5, 0, 7, false, false);
    let a = ctx.upload(&[0u8; 4]).unwrap();
    let gc = matmul_gpu(&ctx, &s, &a, &a).unwrap();
    let got: Vec<f32> = ctx.read(&gc, s.c_len()).unwrap();
    assert!(got.iter().all(|&x| x == 0.0), "{got:?}");
    let mut c = vec![1f32; s.c_len()];
    matmul_cpu(&s, &[], &[], &mut c);
    assert!(c.iter().all(|&x| x == 0.0));
}

#[test]
fn every_tile_config_is_correct_and_all_agree_bitwise() {
    let ctx = cpu_adapter();
    for (m, k, n, ta, tb) in [
        (130, 37, 129, false, false),
        (61, 64, 200, true, false),
        (131, 35, 67, false, true),
        (19, 33, 17, true, true),
        (128, 128, 128, false, false),
    ] {
        let s = shape(m, k, n, ta, tb);
        let mut first: Option<(TileConfig, Vec<f32>)> = None;
        for cfg in TileConfig::ALL {
            let (got, want) = gpu_vs_cpu(&ctx, &s, 7, Some(cfg));
            assert_close(&format!("{cfg:?} {s:?}"), &got, &want, tol(k), 1e-5);
            match &first {
                None => first = Some((cfg, got)),
                Some((c0, g0)) => assert!(
                    g0.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{s:?}: {cfg:?} differs from {c0:?}"
                ),
            }
        }
    }
}

#[test]
fn invalid_tile_configs_are_refused() {
    let ctx = cpu_adapter();
    let s = shape(8, 8, 8, false, false);
    let a = ctx.upload(&[0u8; 256]).unwrap();
    for cfg in [
        TileConfig::new(64, 64, 16, 2, 4),
        TileConfig::new(64, 64, 6, 4, 4),
        TileConfig::new(512, 512, 16, 8, 8),
        TileConfig::new(66, 64, 16, 4, 4),
        TileConfig::new(0, 64, 16, 4, 4),
        // Fewer A and B units than threads (a thread would stage none).
        TileConfig::new(64, 64, 8, 4, 4),
        // More than 4 units per thread.
        TileConfig::new(64, 64, 64, 8, 8),
    ] {
        assert!(matmul_gpu_tiled(&ctx, &s, &a, &a, cfg).is_err(), "{cfg:?}");
    }
}

#[test]
fn small_products_get_small_tiles() {
    assert_eq!(
        TileConfig::for_shape(&shape(128, 784, 10, false, false)),
        TileConfig::B64X64K16T8X8
    );
    assert_eq!(
        TileConfig::for_shape(&shape(1024, 16, 1024, false, false)),
        TileConfig::B128X128K16T8X8
    );
}

#[test]
fn gpu_is_deterministic() {
    let ctx = cpu_adapter();
    let s = shape(150, 257, 99, true, false);
    let (first, _) = gpu_vs_cpu(&ctx, &s, 3, None);
    let (second, _) = gpu_vs_cpu(&ctx, &s, 3, None);
    assert_eq!(
        bytemuck::cast_slice::<f32, u32>(&first),
        bytemuck::cast_slice::<f32, u32>(&second)
    );
}

#[test]
fn short_buffers_are_refused() {
    let ctx = cpu_adapter();
    let s = shape(4, 4, 4, false, false);
    let small = ctx.upload(&[0u8; 60]).unwrap();
    let ok = ctx.upload(&[0u8; 64]).unwrap();
    assert!(matmul_gpu(&ctx, &s, &small, &ok).is_err());
    assert!(matmul_gpu(&ctx, &s, &ok, &small).is_err());
}

fn f16_round(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f64(x).to_f32()).collect()
}

#[test]
fn f16_matmul_matches_cpu_on_rounded_inputs() {
    let ctx = cpu_adapter();
    if !ctx.has_f16() {
        eprintln!("skipped: {} lacks SHADER_F16", ctx.describe());
        let s = shape(2, 2, 2, false, false);
        let buf = ctx.upload(&[0u8; 16]).unwrap();
        let err = matmul_f16_gpu(&ctx, &s, &buf, &buf).unwrap_err();
        assert!(err.to_string().contains("SHADER_F16"), "{err}");
        return;
    }
    let dims = [
        (1, 1, 1),
        (5, 3, 7),
        (64, 64, 64),
        (67, 33, 130),
        (33, 100, 4),
        (16, 8, 12),
    ];
    for (m, k, n) in dims {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let s = shape(m, k, n, ta, tb);
            let seed = (m * 1000 + k * 10 + n) as u64;
            let a = f16_round(&random(s.a_len(), seed));
            let b = f16_round(&random(s.b_len(), seed + 1));
            let mut want = vec![0f32; s.c_len()];
            matmul_cpu(&s, &a, &b, &mut want);
            let ah: Vec<half::f16> = a.iter().map(|&x| half::f16::from_f32(x)).collect();
            let bh: Vec<half::f16> = b.iter().map(|&x| half::f16::from_f32(x)).collect();
            let ga = ctx.upload(bytemuck::cast_slice(&ah)).unwrap();
            let gb = ctx.upload(bytemuck::cast_slice(&bh)).unwrap();
            let gc = matmul_f16_gpu(&ctx, &s, &ga, &gb).unwrap();
            let got: Vec<f32> = ctx.read(&gc, s.c_len()).unwrap();
            assert_close(&format!("f16 {s:?}"), &got, &want, tol(k), 1e-5);

            // The same through the device cast.
            let ga32 = ctx.upload(bytemuck::cast_slice(&a)).unwrap();
            let gb32 = ctx.upload(bytemuck::cast_slice(&b)).unwrap();
            let ga = cast_f32_to_f16_gpu(&ctx, &ga32, s.a_len()).unwrap();
            let gb = cast_f32_to_f16_gpu(&ctx, &gb32, s.b_len()).unwrap();
            let gc = matmul_f16_gpu(&ctx, &s, &ga, &gb).unwrap();
            let got2: Vec<f32> = ctx.read(&gc, s.c_len()).unwrap();
            assert_eq!(got, got2, "f16 via device cast {s:?}");
        }
    }
}

#[test]
fn f16_cast_rounds_like_half() {
    let ctx = cpu_adapter();
    if !ctx.has_f16() {
        eprintln!("skipped: {} lacks SHADER_F16", ctx.describe());
        return;
    }
    for len in [1usize, 2, 3, 1001] {
        let x: Vec<f32> = random(len, len as u64)
            .iter()
            .enumerate()
            .map(|(i, &v)| (v * 1000.0 * (i % 7) as f64) as f32)
            .collect();
        let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
        let gh = cast_f32_to_f16_gpu(&ctx, &gx, len).unwrap();
        let got: Vec<half::f16> =
            bytemuck::pod_collect_to_vec(&ctx.read_bytes(&gh, len as u64 * 2).unwrap());
        for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
            let want = half::f16::from_f32(v);
            let ulps = (g.to_bits() as i32 - want.to_bits() as i32).abs();
            assert!(ulps <= 1, "len {len}: index {i}: {v} -> {g} (want {want})");
        }
    }
}

fn gflops(s: &MatmulShape, secs: f64) -> f64 {
    s.flops() / secs / 1e9
}

/// Seconds of the fastest of `reps` runs of `f` on the GPU (after a warm-up): timestamp
/// totals where the adapter has them, else wall clock.
fn time_gpu(ctx: &GpuContext, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    ctx.synchronize().unwrap();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let profiling = ctx.start_profiling();
        let t0 = std::time::Instant::now();
        f();
        ctx.synchronize().unwrap();
        let wall = t0.elapsed().as_secs_f64();
        let timings = ctx.stop_profiling().unwrap();
        let secs = if profiling && !timings.is_empty() {
            timings.iter().map(|t| t.nanos).sum::<f64>() * 1e-9
        } else {
            wall
        };
        best = best.min(secs);
    }
    best
}

/// Seconds of the fastest of 5 runs of `f` on the cpu.
fn time_cpu(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t0 = std::time::Instant::now();
        f();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    best
}

#[test]
#[ignore]
fn bench_matmul() {
    let ctx = cpu_adapter();
    eprintln!("{}", ctx.describe());
    // RBD_BENCH_TILES=bm:bn:bk:tm:tn,... to try other tile shapes.
    let configs: Vec<TileConfig> = std::env::var("RBD_BENCH_TILES")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|c| {
                    let f: Vec<u32> = c.split(':').map(|x| x.trim().parse().unwrap()).collect();
                    TileConfig {
                        bm: f[0],
                        bn: f[1],
                        bk: f[2],
                        tm: f[3],
                        tn: f[4],
                    }
                })
                .collect()
        })
        .unwrap_or_else(|| TileConfig::ALL.to_vec());
    // RBD_BENCH_SIZES=512,1024 to choose the sizes.
    let sizes: Vec<usize> = std::env::var("RBD_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![256, 512, 1024]);
    for size in sizes {
        let s = shape(size, size, size, false, false);
        let a = f32s(&random(s.a_len(), 1));
        let b = f32s(&random(s.b_len(), 2));
        let ga = ctx.upload(bytemuck::cast_slice(&a)).unwrap();
        let gb = ctx.upload(bytemuck::cast_slice(&b)).unwrap();
        let reps = if size >= 1024 { 2 } else { 3 };
        for &cfg in &configs {
            let secs = time_gpu(&ctx, reps, || {
                let _ = matmul_gpu_tiled(&ctx, &s, &ga, &gb, cfg).unwrap();
            });
            eprintln!(
                "wgsl f32 {size:>4}^3 bm{} bn{} bk{} t{}x{}: {:7.2} GFLOP/s",
                cfg.bm,
                cfg.bn,
                cfg.bk,
                cfg.tm,
                cfg.tn,
                gflops(&s, secs)
            );
        }
        for (ta, tb) in [(true, false), (false, true)] {
            let st = shape(size, size, size, ta, tb);
            let secs = time_gpu(&ctx, reps, || {
                let _ = matmul_gpu(&ctx, &st, &ga, &gb).unwrap();
            });
            eprintln!(
                "wgsl f32 {size:>4}^3 default trans_a {ta} trans_b {tb}: {:7.2} GFLOP/s",
                gflops(&st, secs)
            );
        }
        if ctx.has_f16() {
            let ah = cast_f32_to_f16_gpu(&ctx, &ga, s.a_len()).unwrap();
            let bh = cast_f32_to_f16_gpu(&ctx, &gb, s.b_len()).unwrap();
            let secs = time_gpu(&ctx, reps, || {
                let _ = matmul_f16_gpu(&ctx, &s, &ah, &bh).unwrap();
            });
            eprintln!(
                "wgsl f16 {size:>4}^3 default: {:7.2} GFLOP/s",
                gflops(&s, secs)
            );
        }
        // Row/column blocks over rayon: set RAYON_NUM_THREADS to compare.
        let threads = rayon::current_num_threads();
        let mut c = vec![0f32; s.c_len()];
        let secs = time_cpu(|| matmul_cpu(&s, &a, &b, &mut c));
        eprintln!(
            "cpu f32 {size:>4}^3 ({threads} rayon threads): {:7.2} GFLOP/s",
            gflops(&s, secs)
        );
    }
    // The products of a 784-256-10 MLP at batch 256 (forward, and the backward's dW and dX).
    for s in [
        shape(256, 784, 256, false, false),
        shape(256, 256, 10, false, false),
        shape(784, 256, 256, true, false),
        shape(256, 256, 784, false, true),
    ] {
        let a = f32s(&random(s.a_len(), 1));
        let b = f32s(&random(s.b_len(), 2));
        let ga = ctx.upload(bytemuck::cast_slice(&a)).unwrap();
        let gb = ctx.upload(bytemuck::cast_slice(&b)).unwrap();
        let secs = time_gpu(&ctx, 5, || {
            let _ = matmul_gpu(&ctx, &s, &ga, &gb).unwrap();
        });
        let cfg = TileConfig::for_shape(&s);
        let mut c = vec![0f32; s.c_len()];
        let cpu = time_cpu(|| matmul_cpu(&s, &a, &b, &mut c));
        eprintln!(
            "mlp {}x{}x{} ta {} tb {}: wgsl (bm{} bn{}) {:7.2} GFLOP/s, cpu {:7.2} GFLOP/s",
            s.m,
            s.k,
            s.n,
            s.trans_a,
            s.trans_b,
            cfg.bm,
            cfg.bn,
            gflops(&s, secs),
            gflops(&s, cpu)
        );
    }
}

/// Split-K against the f64 reference with the tolerance of an unsplit product (the
/// split only reassociates the sum), bitwise deterministic, and one split is the
/// unsplit kernel exactly.
#[test]
fn split_k_matches_the_reference_and_is_deterministic() {
    let ctx = cpu_adapter();
    let shapes = [
        shape(32, 1024, 64, false, false), // the CNN's dense layer at batch 32
        shape(32, 1024, 64, true, false),
        shape(7, 1000, 13, false, true), // ragged k: last split partial
        shape(33, 130, 65, true, true),
        shape(1, 4096, 3, false, false),
    ];
    for (i, s) in shapes.iter().enumerate() {
        let a = random(s.a_len(), 100 + i as u64);
        let b = random(s.b_len(), 200 + i as u64);
        let want = naive(s, &a, &b);
        let ga = ctx.upload(bytemuck::cast_slice(&f32s(&a))).unwrap();
        let gb = ctx.upload(bytemuck::cast_slice(&f32s(&b))).unwrap();
        let cfg = TileConfig::for_shape(s);
        let unsplit: Vec<f32> = ctx
            .read(
                &matmul_gpu_tiled(&ctx, s, &ga, &gb, cfg).unwrap(),
                s.c_len(),
            )
            .unwrap();
        let one: Vec<f32> = ctx
            .read(
                &matmul_gpu_split(&ctx, s, &ga, &gb, cfg, 1).unwrap(),
                s.c_len(),
            )
            .unwrap();
        assert_eq!(one, unsplit, "{s:?}: one split must be the unsplit kernel");
        let tol = 2e-5 * (s.k as f32).sqrt();
        for splits in [2, 3, 8, 32, 1000] {
            let run = || -> Vec<f32> {
                let c = matmul_gpu_split(&ctx, s, &ga, &gb, cfg, splits).unwrap();
                ctx.read(&c, s.c_len()).unwrap()
            };
            let got = run();
            assert_close(
                &format!("{s:?} with {splits} splits"),
                &got,
                &f32s(&want),
                tol,
                tol,
            );
            assert_eq!(got, run(), "{s:?} with {splits} splits: not deterministic");
        }
    }
    // The dense layer at batch 32 splits into chunks of 64, on every adapter.
    assert_eq!(
        split_k_for(&shapes[0], TileConfig::for_shape(&shapes[0])),
        16
    );
    // A product with enough tiles does not split.
    let big = shape(4096, 4096, 4096, false, false);
    assert_eq!(split_k_for(&big, TileConfig::for_shape(&big)), 1);
}
