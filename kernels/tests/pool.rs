//! Pooling: the cpu against direct references, the WGSL kernels against the cpu,
//! finite-difference checks of the backwards, determinism.

use proptest::prelude::*;
use rbd_kernels::pool::*;
use rbd_kernels::testing::{assert_close, cases, cpu_adapter, splitmix64, unit};

/// Deterministic values: uniform in [-1, 1) when `levels` is 0, else small integers in
/// `-levels..levels` (to force ties).
fn data(seed: u64, len: usize, levels: u64) -> Vec<f64> {
    splitmix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
        .take(len)
        .map(|z| {
            if levels == 0 {
                unit(z)
            } else {
                (z % (2 * levels)) as f64 - levels as f64
            }
        })
        .collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// Direct definition: the first maximum of each 2×2 window in row-major order.
fn maxpool_ref(n: usize, c: usize, h: usize, w: usize, x: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let (oh, ow) = (h / 2, w / 2);
    let mut y = Vec::new();
    let mut am = Vec::new();
    for b in 0..n {
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best: Option<usize> = None;
                    for dy in 0..2 {
                        for dx in 0..2 {
                            let i = ((b * c + ch) * h + 2 * oy + dy) * w + 2 * ox + dx;
                            if best.is_none_or(|j| x[i] > x[j]) {
                                best = Some(i);
                            }
                        }
                    }
                    y.push(x[best.unwrap()]);
                    am.push(best.unwrap() as u32);
                }
            }
        }
    }
    (y, am)
}

fn maxpool(n: usize, c: usize, h: usize, w: usize, x: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let len = n * c * (h / 2) * (w / 2);
    let mut y = vec![0.0; len];
    let mut am = vec![0u32; len];
    maxpool2x2_cpu(n, c, h, w, x, &mut y, &mut am);
    (y, am)
}

fn dims() -> impl Strategy<Value = (usize, usize, usize, usize)> {
    (1..=3usize, 1..=5usize, 1..=13usize, 1..=13usize)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96)))]

    #[test]
    fn maxpool_cpu_matches_reference((n, c, h, w) in dims(), seed in 0u64..1000, levels in 0u64..3) {
        let x = data(seed, n * c * h * w, levels);
        let (y, am) = maxpool(n, c, h, w, &x);
        let (y_ref, am_ref) = maxpool_ref(n, c, h, w, &x);
        prop_assert_eq!(&y, &y_ref, "y n={} c={} h={} w={}", n, c, h, w);
        prop_assert_eq!(&am, &am_ref, "argmax n={} c={} h={} w={}", n, c, h, w);
        let dy = data(seed + 1, y.len(), 0);
        let mut dx = vec![1.0; x.len()];
        maxpool2x2_backward_cpu(n, c, h, w, &dy, &am, &mut dx);
        let mut dx_ref = vec![0.0; x.len()];
        for (o, &i) in am_ref.iter().enumerate() {
            dx_ref[i as usize] = dy[o];
        }
        prop_assert_eq!(&dx, &dx_ref, "dx n={} c={} h={} w={}", n, c, h, w);
    }

    /// Away from ties max pooling is locally linear: the central difference is exact.
    #[test]
    fn maxpool_backward_matches_finite_differences((n, c, h, w) in dims(), seed in 0u64..1000) {
        let x = data(seed, n * c * h * w, 0);
        let v = data(seed + 1, x.len(), 0);
        let (y, am) = maxpool(n, c, h, w, &x);
        let dy = data(seed + 2, y.len(), 0);
        let eps = 1e-7;
        let shifted = |sign: f64| -> Vec<f64> { x.iter().zip(&v).map(|(x, v)| x + sign * eps * v).collect() };
        let fd = (dot(&dy, &maxpool(n, c, h, w, &shifted(1.0)).0) - dot(&dy, &maxpool(n, c, h, w, &shifted(-1.0)).0)) / (2.0 * eps);
        let mut dx = vec![0.0; x.len()];
        maxpool2x2_backward_cpu(n, c, h, w, &dy, &am, &mut dx);
        let an = dot(&dx, &v);
        prop_assert!((fd - an).abs() <= 1e-6 * (1.0 + an.abs()), "n={n} c={c} h={h} w={w}: fd {fd} vs {an}");
    }

    #[test]
    fn global_avg_pool_cpu_matches_reference(n in 1..=4usize, c in 1..=9usize, hw in 1..=70usize, seed in 0u64..1000) {
        let x = data(seed, n * c * hw, 0);
        let mut y = vec![0.0; n * c];
        global_avg_pool_cpu(n, c, hw, &x, &mut y);
        for (r, &got) in y.iter().enumerate() {
            let want = x[r * hw..(r + 1) * hw].iter().sum::<f64>() / hw as f64;
            prop_assert!((got - want).abs() <= 1e-14, "row {r} n={n} c={c} hw={hw}: {got} vs {want}");
        }
        // The pool is linear, so ⟨dy, pool(v)⟩ = ⟨dx, v⟩ checks the backward.
        let dy = data(seed + 1, n * c, 0);
        let mut dx = vec![0.0; x.len()];
        global_avg_pool_backward_cpu(n, c, hw, &dy, &mut dx);
        let v = data(seed + 2, x.len(), 0);
        let eps = 1e-3;
        let pool = |s: f64| {
            let xs: Vec<f64> = x.iter().zip(&v).map(|(x, v)| x + s * eps * v).collect();
            let mut y = vec![0.0; n * c];
            global_avg_pool_cpu(n, c, hw, &xs, &mut y);
            dot(&dy, &y)
        };
        let fd = (pool(1.0) - pool(-1.0)) / (2.0 * eps);
        let an = dot(&dx, &v);
        prop_assert!((fd - an).abs() <= 1e-9 * (1.0 + an.abs()), "n={n} c={c} hw={hw}: fd {fd} vs {an}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(32)))]

    /// Max pooling only selects and copies, so the WGSL must agree bitwise.
    #[test]
    fn maxpool_wgsl_matches_cpu((n, c, h, w) in dims(), seed in 0u64..1000, levels in 0u64..3) {
        let ctx = cpu_adapter();
        let x = to_f32(&data(seed, n * c * h * w, levels));
        let len = n * c * (h / 2) * (w / 2);
        let mut y = vec![0f32; len];
        let mut am = vec![0u32; len];
        maxpool2x2_cpu(n, c, h, w, &x, &mut y, &mut am);
        let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
        let (gy, gam) = maxpool2x2_gpu(&ctx, n, c, h, w, &gx).unwrap();
        let got_y: Vec<f32> = ctx.read(&gy, len).unwrap();
        let got_am: Vec<u32> = ctx.read(&gam, len).unwrap();
        prop_assert_eq!(&got_y, &y, "y n={} c={} h={} w={}", n, c, h, w);
        prop_assert_eq!(&got_am, &am, "argmax n={} c={} h={} w={}", n, c, h, w);

        let dy = to_f32(&data(seed + 1, len, 0));
        let mut dx = vec![0f32; x.len()];
        maxpool2x2_backward_cpu(n, c, h, w, &dy, &am, &mut dx);
        let gdy = ctx.upload(bytemuck::cast_slice(&dy)).unwrap();
        let gdx = maxpool2x2_backward_gpu(&ctx, n, c, h, w, &gdy, &gam).unwrap();
        let got: Vec<f32> = ctx.read(&gdx, x.len()).unwrap();
        prop_assert_eq!(&got, &dx, "dx n={} c={} h={} w={}", n, c, h, w);
    }

    #[test]
    fn global_avg_pool_wgsl_matches_cpu(n in 1..=4usize, c in 1..=9usize, hw in 1..=300usize, seed in 0u64..1000) {
        let ctx = cpu_adapter();
        let x = to_f32(&data(seed, n * c * hw, 0));
        let mut y = vec![0f32; n * c];
        global_avg_pool_cpu(n, c, hw, &x, &mut y);
        let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
        let got: Vec<f32> = ctx.read(&global_avg_pool_gpu(&ctx, n, c, hw, &gx).unwrap(), n * c).unwrap();
        assert_close(&format!("avg pool n={n} c={c} hw={hw}"), &got, &y, 1e-6, 1e-5);

        let dy = to_f32(&data(seed + 1, n * c, 0));
        let mut dx = vec![0f32; x.len()];
        global_avg_pool_backward_cpu(n, c, hw, &dy, &mut dx);
        let gdy = ctx.upload(bytemuck::cast_slice(&dy)).unwrap();
        let got: Vec<f32> = ctx.read(&global_avg_pool_backward_gpu(&ctx, n, c, hw, &gdy).unwrap(), x.len()).unwrap();
        assert_close(&format!("avg pool backward n={n} c={c} hw={hw}"), &got, &dx, 1e-7, 1e-6);
    }
}

/// Larger than one workgroup, rows folded past nothing: shapes of the networks.
#[test]
fn wgsl_matches_cpu_on_network_shapes() {
    let ctx = cpu_adapter();
    for &(n, c, h, w) in &[(32, 32, 30, 30), (4, 64, 13, 13), (2, 3, 1, 7)] {
        let x = to_f32(&data(9, n * c * h * w, 0));
        let len = n * c * (h / 2) * (w / 2);
        let mut y = vec![0f32; len];
        let mut am = vec![0u32; len];
        maxpool2x2_cpu(n, c, h, w, &x, &mut y, &mut am);
        let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
        let (gy, gam) = maxpool2x2_gpu(&ctx, n, c, h, w, &gx).unwrap();
        assert_eq!(ctx.read::<f32>(&gy, len).unwrap(), y, "y {n} {c} {h} {w}");
        assert_eq!(
            ctx.read::<u32>(&gam, len).unwrap(),
            am,
            "argmax {n} {c} {h} {w}"
        );
    }
    let (n, c, hw) = (128, 512, 16);
    let x = to_f32(&data(10, n * c * hw, 0));
    let mut y = vec![0f32; n * c];
    global_avg_pool_cpu(n, c, hw, &x, &mut y);
    let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
    let got: Vec<f32> = ctx
        .read(&global_avg_pool_gpu(&ctx, n, c, hw, &gx).unwrap(), n * c)
        .unwrap();
    assert_close("avg pool 128x512x16", &got, &y, 1e-6, 1e-5);

    // 70,000 rows: more workgroups than one grid dimension holds.
    let (n, c, hw) = (100, 700, 3);
    let x = to_f32(&data(11, n * c * hw, 0));
    let mut y = vec![0f32; n * c];
    global_avg_pool_cpu(n, c, hw, &x, &mut y);
    let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
    let got: Vec<f32> = ctx
        .read(&global_avg_pool_gpu(&ctx, n, c, hw, &gx).unwrap(), n * c)
        .unwrap();
    assert_close("avg pool 100x700x3", &got, &y, 1e-6, 1e-5);
}

#[test]
fn cpu_is_deterministic() {
    let (n, c, h, w) = (8, 16, 17, 18);
    let x = to_f32(&data(3, n * c * h * w, 0));
    let run = || {
        let len = n * c * (h / 2) * (w / 2);
        let mut y = vec![0f32; len];
        let mut am = vec![0u32; len];
        maxpool2x2_cpu(n, c, h, w, &x, &mut y, &mut am);
        let mut dx = vec![0f32; x.len()];
        maxpool2x2_backward_cpu(n, c, h, w, &y, &am, &mut dx);
        let mut g = vec![0f32; n * c];
        global_avg_pool_cpu(n, c, h * w, &x, &mut g);
        let mut gdx = vec![0f32; x.len()];
        global_avg_pool_backward_cpu(n, c, h * w, &g, &mut gdx);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (bits(&y), am, bits(&dx), bits(&g), bits(&gdx))
    };
    let a = run();
    assert_eq!(a, run());
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    assert_eq!(a, one.install(run));
}
