//! Batch normalisation: the cpu against a direct reference, the WGSL kernels against
//! the cpu, a finite-difference check of the backward, large-mean accuracy, determinism.

use proptest::prelude::*;
use rbd_kernels::batchnorm::*;
use rbd_kernels::testing::{assert_close, cases, cpu_adapter, uniform_mixed};

/// Deterministic uniform values in [lo, hi).
fn data(seed: u64, len: usize, lo: f64, hi: f64) -> Vec<f64> {
    let half = (hi - lo) / 2.0;
    uniform_mixed(len, seed)
        .iter()
        .map(|u| lo + half * (u + 1.0))
        .collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

const EPS: f64 = 1e-3;

struct Inputs {
    x: Vec<f64>,
    gamma: Vec<f64>,
    beta: Vec<f64>,
    dy: Vec<f64>,
}

fn inputs(s: &BatchNormShape, seed: u64, offset: f64) -> Inputs {
    Inputs {
        x: data(seed, s.len(), offset - 2.0, offset + 3.0),
        gamma: data(seed + 1, s.c, 0.5, 1.5),
        beta: data(seed + 2, s.c, -1.0, 1.0),
        dy: data(seed + 3, s.len(), -1.0, 1.0),
    }
}

/// Direct definition, straight loops per channel.
fn train_ref(
    s: &BatchNormShape,
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = (s.n * s.hw) as f64;
    let idx = |b: usize, ch: usize, k: usize| (b * s.c + ch) * s.hw + k;
    let mut y = vec![0.0; s.len()];
    let (mut means, mut invstds) = (vec![0.0; s.c], vec![0.0; s.c]);
    for ch in 0..s.c {
        let mut sum = 0.0;
        for b in 0..s.n {
            for k in 0..s.hw {
                sum += x[idx(b, ch, k)];
            }
        }
        let mean = sum / m;
        let mut var = 0.0;
        for b in 0..s.n {
            for k in 0..s.hw {
                var += (x[idx(b, ch, k)] - mean).powi(2);
            }
        }
        let invstd = 1.0 / (var / m + EPS).sqrt();
        for b in 0..s.n {
            for k in 0..s.hw {
                y[idx(b, ch, k)] = gamma[ch] * (x[idx(b, ch, k)] - mean) * invstd + beta[ch];
            }
        }
        means[ch] = mean;
        invstds[ch] = invstd;
    }
    (y, means, invstds)
}

fn train(s: &BatchNormShape, i: &Inputs) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut y = vec![0.0; s.len()];
    let (mut mean, mut invstd) = (vec![0.0; s.c], vec![0.0; s.c]);
    batchnorm_train_cpu(
        s,
        &i.x,
        &i.gamma,
        &i.beta,
        EPS,
        &mut y,
        &mut mean,
        &mut invstd,
    );
    (y, mean, invstd)
}

fn assert_close64(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}: index {i}: got {g}, want {w}"
        );
    }
}

fn shape() -> impl Strategy<Value = BatchNormShape> {
    (1..=5usize, 1..=6usize, 1..=40usize).prop_map(|(n, c, hw)| BatchNormShape { n, c, hw })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96)))]

    #[test]
    fn cpu_matches_reference(s in shape(), seed in 0u64..1000) {
        let i = inputs(&s, seed, 0.0);
        let (y, mean, invstd) = train(&s, &i);
        let (y_ref, mean_ref, invstd_ref) = train_ref(&s, &i.x, &i.gamma, &i.beta);
        assert_close64(&format!("y {s:?}"), &y, &y_ref, 1e-12);
        assert_close64(&format!("mean {s:?}"), &mean, &mean_ref, 1e-12);
        assert_close64(&format!("invstd {s:?}"), &invstd, &invstd_ref, 1e-12);

        let rm = data(seed + 4, s.c, -1.0, 1.0);
        let rv = data(seed + 5, s.c, 0.5, 2.0);
        let mut y = vec![0.0; s.len()];
        batchnorm_eval_cpu(&s, &i.x, &i.gamma, &i.beta, &rm, &rv, EPS, &mut y);
        for (k, (&got, &x)) in y.iter().zip(&i.x).enumerate() {
            let ch = (k / s.hw) % s.c;
            let want = i.gamma[ch] * (x - rm[ch]) / (rv[ch] + EPS).sqrt() + i.beta[ch];
            prop_assert!((got - want).abs() <= 1e-12 * (1.0 + want.abs()), "eval {s:?} index {k}: {got} vs {want}");
        }
    }

    /// Directional derivatives of L = ⟨dy, bn(x, gamma, beta)⟩ against the backward.
    #[test]
    fn backward_matches_finite_differences(s in shape(), seed in 0u64..1000) {
        let i = inputs(&s, seed, 0.5);
        let (_, mean, invstd) = train(&s, &i);
        let mut dx = vec![0.0; s.len()];
        let (mut dgamma, mut dbeta) = (vec![0.0; s.c], vec![0.0; s.c]);
        batchnorm_backward_cpu(&s, &i.x, &i.dy, &i.gamma, &mean, &invstd, &mut dx, &mut dgamma, &mut dbeta);

        let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| {
            dot(&i.dy, &train(&s, &Inputs { x: x.to_vec(), gamma: gamma.to_vec(), beta: beta.to_vec(), dy: vec![] }).0)
        };
        let plus = |a: &[f64], v: &[f64], e: f64| -> Vec<f64> { a.iter().zip(v).map(|(a, v)| a + e * v).collect() };
        let h = 1e-5;
        let v = data(seed + 6, s.len(), -1.0, 1.0);
        let fd = (loss(&plus(&i.x, &v, h), &i.gamma, &i.beta) - loss(&plus(&i.x, &v, -h), &i.gamma, &i.beta)) / (2.0 * h);
        let an = dot(&dx, &v);
        prop_assert!((fd - an).abs() <= 1e-6 * (1.0 + an.abs()), "dx {s:?}: fd {fd} vs {an}");
        let v = data(seed + 7, s.c, -1.0, 1.0);
        let fd = (loss(&i.x, &plus(&i.gamma, &v, h), &i.beta) - loss(&i.x, &plus(&i.gamma, &v, -h), &i.beta)) / (2.0 * h);
        let an = dot(&dgamma, &v);
        prop_assert!((fd - an).abs() <= 1e-6 * (1.0 + an.abs()), "dgamma {s:?}: fd {fd} vs {an}");
        let fd = (loss(&i.x, &i.gamma, &plus(&i.beta, &v, h)) - loss(&i.x, &i.gamma, &plus(&i.beta, &v, -h))) / (2.0 * h);
        let an = dot(&dbeta, &v);
        prop_assert!((fd - an).abs() <= 1e-6 * (1.0 + an.abs()), "dbeta {s:?}: fd {fd} vs {an}");
    }
}

fn gpu_checks(s: &BatchNormShape, seed: u64, offset: f64) {
    let ctx = cpu_adapter();
    let i = inputs(s, seed, offset);
    let (x, gamma, beta, dy) = (
        to_f32(&i.x),
        to_f32(&i.gamma),
        to_f32(&i.beta),
        to_f32(&i.dy),
    );
    let up = |v: &[f32]| ctx.upload(bytemuck::cast_slice(v)).unwrap();
    let (gx, ggamma, gbeta, gdy) = (up(&x), up(&gamma), up(&beta), up(&dy));

    let mut y = vec![0f32; s.len()];
    let (mut mean, mut invstd) = (vec![0f32; s.c], vec![0f32; s.c]);
    batchnorm_train_cpu(s, &x, &gamma, &beta, EPS, &mut y, &mut mean, &mut invstd);
    let (gy, gmean, ginvstd) =
        batchnorm_train_gpu(&ctx, s, &gx, &ggamma, &gbeta, EPS as f32).unwrap();
    let read = |b: &rbd_kernels::GpuBuffer, len: usize| -> Vec<f32> { ctx.read(b, len).unwrap() };
    assert_close(
        &format!("mean {s:?} offset {offset}"),
        &read(&gmean, s.c),
        &mean,
        1e-5,
        1e-6,
    );
    assert_close(
        &format!("invstd {s:?} offset {offset}"),
        &read(&ginvstd, s.c),
        &invstd,
        0.0,
        1e-4,
    );
    assert_close(
        &format!("y {s:?} offset {offset}"),
        &read(&gy, s.len()),
        &y,
        2e-4,
        1e-4,
    );

    let rm = to_f32(&data(seed + 4, s.c, -1.0, 1.0));
    let rv = to_f32(&data(seed + 5, s.c, 0.5, 2.0));
    let mut y = vec![0f32; s.len()];
    batchnorm_eval_cpu(s, &x, &gamma, &beta, &rm, &rv, EPS, &mut y);
    let gy = batchnorm_eval_gpu(
        &ctx,
        s,
        &gx,
        &ggamma,
        &gbeta,
        &up(&rm),
        &up(&rv),
        EPS as f32,
    )
    .unwrap();
    assert_close(
        &format!("eval y {s:?} offset {offset}"),
        &read(&gy, s.len()),
        &y,
        1e-5,
        1e-5,
    );

    // Both backwards from the cpu's statistics, so only the backward is compared.
    let mut dx = vec![0f32; s.len()];
    let (mut dgamma, mut dbeta) = (vec![0f32; s.c], vec![0f32; s.c]);
    batchnorm_backward_cpu(
        s,
        &x,
        &dy,
        &gamma,
        &mean,
        &invstd,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    );
    let (gdx, gdgamma, gdbeta) =
        batchnorm_backward_gpu(&ctx, s, &gx, &gdy, &ggamma, &up(&mean), &up(&invstd)).unwrap();
    let m = (s.n * s.hw) as f32;
    assert_close(
        &format!("dbeta {s:?}"),
        &read(&gdbeta, s.c),
        &dbeta,
        1e-6 * m,
        1e-4,
    );
    assert_close(
        &format!("dgamma {s:?}"),
        &read(&gdgamma, s.c),
        &dgamma,
        1e-6 * m,
        1e-4,
    );
    assert_close(&format!("dx {s:?}"), &read(&gdx, s.len()), &dx, 1e-4, 1e-3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(32)))]

    #[test]
    fn wgsl_matches_cpu(s in (1..=5usize, 1..=6usize, 1..=300usize).prop_map(|(n, c, hw)| BatchNormShape { n, c, hw }), seed in 0u64..1000) {
        gpu_checks(&s, seed, 0.0);
    }
}

/// Network shapes, and activations with a large mean (two-pass statistics keep the
/// variance accurate where E[x²] − E[x]² would cancel catastrophically in f32).
#[test]
fn wgsl_matches_cpu_on_network_shapes_and_large_means() {
    gpu_checks(
        &BatchNormShape {
            n: 32,
            c: 32,
            hw: 30 * 30,
        },
        1,
        0.0,
    );
    gpu_checks(
        &BatchNormShape {
            n: 8,
            c: 64,
            hw: 8 * 8,
        },
        2,
        0.0,
    );
    gpu_checks(
        &BatchNormShape {
            n: 16,
            c: 10,
            hw: 1,
        },
        3,
        0.0,
    );
    gpu_checks(
        &BatchNormShape {
            n: 4,
            c: 3,
            hw: 1000,
        },
        4,
        1000.0,
    );
}

/// More channels (workgroups) than one grid dimension holds. Several seconds on
/// llvmpipe, so run on demand (`-- --ignored`).
#[test]
#[ignore]
fn wgsl_folds_large_grids() {
    gpu_checks(
        &BatchNormShape {
            n: 2,
            c: 66_000,
            hw: 1,
        },
        5,
        0.0,
    );
}

#[test]
fn large_means_keep_their_variance() {
    let s = BatchNormShape {
        n: 16,
        c: 2,
        hw: 500,
    };
    let i = inputs(&s, 11, 1.0e4);
    let (_, mean_ref, invstd_ref) = train_ref(&s, &i.x, &i.gamma, &i.beta);
    let (x, gamma, beta) = (to_f32(&i.x), to_f32(&i.gamma), to_f32(&i.beta));
    let mut y = vec![0f32; s.len()];
    let (mut mean, mut invstd) = (vec![0f32; s.c], vec![0f32; s.c]);
    batchnorm_train_cpu(&s, &x, &gamma, &beta, EPS, &mut y, &mut mean, &mut invstd);
    let ctx = cpu_adapter();
    let up = |v: &[f32]| ctx.upload(bytemuck::cast_slice(v)).unwrap();
    let (_, gmean, ginvstd) =
        batchnorm_train_gpu(&ctx, &s, &up(&x), &up(&gamma), &up(&beta), EPS as f32).unwrap();
    let gmean: Vec<f32> = ctx.read(&gmean, s.c).unwrap();
    let ginvstd: Vec<f32> = ctx.read(&ginvstd, s.c).unwrap();
    // The f32 inputs themselves are rounded to ~1e-3 here, so compare with the f64
    // statistics of the rounded inputs.
    let xr: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let (_, mean_r, invstd_r) = train_ref(&s, &xr, &i.gamma, &i.beta);
    for ch in 0..s.c {
        assert!((mean_r[ch] - mean_ref[ch]).abs() < 1e-2);
        assert!((invstd_r[ch] / invstd_ref[ch] - 1.0).abs() < 1e-3);
        for (what, m, is) in [
            ("cpu", mean[ch], invstd[ch]),
            ("wgsl", gmean[ch], ginvstd[ch]),
        ] {
            assert!(
                (m as f64 - mean_r[ch]).abs() < 2e-3,
                "{what} mean {m} vs {}",
                mean_r[ch]
            );
            assert!(
                (is as f64 / invstd_r[ch] - 1.0).abs() < 1e-4,
                "{what} invstd {is} vs {}",
                invstd_r[ch]
            );
        }
    }
}

#[test]
fn cpu_and_wgsl_are_deterministic() {
    let s = BatchNormShape {
        n: 8,
        c: 16,
        hw: 49,
    };
    let i = inputs(&s, 5, 0.3);
    let (x, gamma, beta, dy) = (
        to_f32(&i.x),
        to_f32(&i.gamma),
        to_f32(&i.beta),
        to_f32(&i.dy),
    );
    let run = || {
        let mut y = vec![0f32; s.len()];
        let (mut mean, mut invstd) = (vec![0f32; s.c], vec![0f32; s.c]);
        batchnorm_train_cpu(&s, &x, &gamma, &beta, EPS, &mut y, &mut mean, &mut invstd);
        let mut dx = vec![0f32; s.len()];
        let (mut dg, mut db) = (vec![0f32; s.c], vec![0f32; s.c]);
        batchnorm_backward_cpu(
            &s, &x, &dy, &gamma, &mean, &invstd, &mut dx, &mut dg, &mut db,
        );
        [y, mean, invstd, dx, dg, db].map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
    };
    let a = run();
    assert_eq!(a, run());
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    assert_eq!(a, one.install(run));

    let ctx = cpu_adapter();
    let up = |v: &[f32]| ctx.upload(bytemuck::cast_slice(v)).unwrap();
    let (gx, gg, gb, gdy) = (up(&x), up(&gamma), up(&beta), up(&dy));
    let gpu = || {
        let (y, mean, invstd) = batchnorm_train_gpu(&ctx, &s, &gx, &gg, &gb, EPS as f32).unwrap();
        let (dx, dg, db) =
            batchnorm_backward_gpu(&ctx, &s, &gx, &gdy, &gg, &mean, &invstd).unwrap();
        let r = |b: &rbd_kernels::GpuBuffer, len: usize| ctx.read::<u32>(b, len).unwrap();
        [
            r(&y, s.len()),
            r(&mean, s.c),
            r(&invstd, s.c),
            r(&dx, s.len()),
            r(&dg, s.c),
            r(&db, s.c),
        ]
    };
    assert_eq!(gpu(), gpu());
}
