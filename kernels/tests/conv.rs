//! Convolution: the cpu GEMM path against a direct reference, the WGSL kernels against
//! the cpu, finite-difference checks of the backwards, shape arithmetic, determinism.

use proptest::prelude::*;
use rbd_kernels::conv::*;
use rbd_kernels::testing::{assert_close, cases, cpu_adapter, uniform_mixed};
use rbd_kernels::GpuError;

/// Deterministic uniform values in [-1, 1).
fn data(seed: u64, len: usize) -> Vec<f64> {
    uniform_mixed(len, seed)
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Input coordinate of output `o` and kernel offset `k`, if inside the input.
fn input_coord(o: usize, k: usize, stride: usize, pad: usize, size: usize) -> Option<usize> {
    (o * stride + k).checked_sub(pad).filter(|&i| i < size)
}

/// Direct definition: y[b,co,oy,ox] = Σ_{ci,ki,kj} w[co,ci,ki,kj]·x[b,ci,iy,ix].
fn conv_ref(s: &Conv2dShape, x: &[f64], w: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; s.y_len()];
    for b in 0..s.n {
        for co in 0..s.o {
            for oy in 0..s.oh {
                for ox in 0..s.ow {
                    let mut acc = 0.0;
                    for ci in 0..s.c {
                        for ki in 0..s.kh {
                            for kj in 0..s.kw {
                                let (Some(iy), Some(ix)) = (
                                    input_coord(oy, ki, s.stride, s.pad_top, s.h),
                                    input_coord(ox, kj, s.stride, s.pad_left, s.w),
                                ) else {
                                    continue;
                                };
                                acc += w[((co * s.c + ci) * s.kh + ki) * s.kw + kj]
                                    * x[((b * s.c + ci) * s.h + iy) * s.w + ix];
                            }
                        }
                    }
                    y[((b * s.o + co) * s.oh + oy) * s.ow + ox] = acc;
                }
            }
        }
    }
    y
}

/// Direct scatter form of both gradients: (dx, dw).
fn conv_grads_ref(s: &Conv2dShape, x: &[f64], w: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; s.x_len()];
    let mut dw = vec![0.0; s.w_len()];
    for b in 0..s.n {
        for co in 0..s.o {
            for oy in 0..s.oh {
                for ox in 0..s.ow {
                    let g = dy[((b * s.o + co) * s.oh + oy) * s.ow + ox];
                    for ci in 0..s.c {
                        for ki in 0..s.kh {
                            for kj in 0..s.kw {
                                let (Some(iy), Some(ix)) = (
                                    input_coord(oy, ki, s.stride, s.pad_top, s.h),
                                    input_coord(ox, kj, s.stride, s.pad_left, s.w),
                                ) else {
                                    continue;
                                };
                                let wi = ((co * s.c + ci) * s.kh + ki) * s.kw + kj;
                                let xi = ((b * s.c + ci) * s.h + iy) * s.w + ix;
                                dx[xi] += w[wi] * g;
                                dw[wi] += x[xi] * g;
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw)
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

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![Just(Padding::Valid), Just(Padding::Same)]
}

/// Small shapes, awkward sizes included: 1s, primes, strides 1 and 2, 1×1 kernels,
/// kernels larger than the input (Same).
fn small_shape() -> impl Strategy<Value = Conv2dShape> {
    (
        1..=3usize,
        1..=5usize,
        1..=11usize,
        1..=11usize,
        1..=7usize,
        1..=4usize,
        1..=4usize,
        1..=2usize,
        padding(),
    )
        .prop_filter_map(
            "kernel larger than input with Valid",
            |(n, c, h, w, o, kh, kw, st, p)| Conv2dShape::new(n, c, h, w, o, kh, kw, st, p).ok(),
        )
}

/// Shapes for the WGSL tests: several 64-wide tiles in M and N and several 16-deep
/// reduction slices, none of them tile multiples in general.
fn gpu_shape() -> impl Strategy<Value = Conv2dShape> {
    (
        1..=3usize,
        1..=20usize,
        1..=13usize,
        1..=13usize,
        1..=70usize,
        prop_oneof![Just(1usize), Just(2), Just(3)],
        1..=2usize,
        padding(),
    )
        .prop_filter_map(
            "kernel larger than input with Valid",
            |(n, c, h, w, o, k, st, p)| Conv2dShape::new(n, c, h, w, o, k, k, st, p).ok(),
        )
}

fn cpu_checks(s: &Conv2dShape, seed: u64) {
    let x = data(seed, s.x_len());
    let w = data(seed + 1, s.w_len());
    let dy = data(seed + 2, s.y_len());
    let mut y = vec![0.0; s.y_len()];
    conv2d_cpu(s, &x, &w, &mut y);
    assert_close64(&format!("forward {s:?}"), &y, &conv_ref(s, &x, &w), 1e-12);
    let (dx_ref, dw_ref) = conv_grads_ref(s, &x, &w, &dy);
    let mut dx = vec![0.0; s.x_len()];
    conv2d_backward_data_cpu(s, &dy, &w, &mut dx);
    assert_close64(&format!("backward data {s:?}"), &dx, &dx_ref, 1e-12);
    let mut dw = vec![0.0; s.w_len()];
    conv2d_backward_weight_cpu(s, &x, &dy, &mut dw);
    assert_close64(&format!("backward weight {s:?}"), &dw, &dw_ref, 1e-12);
}

fn gpu_checks(s: &Conv2dShape, seed: u64) {
    let ctx = cpu_adapter();
    let x = to_f32(&data(seed, s.x_len()));
    let w = to_f32(&data(seed + 1, s.w_len()));
    let dy = to_f32(&data(seed + 2, s.y_len()));
    let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
    let gw = ctx.upload(bytemuck::cast_slice(&w)).unwrap();
    let gdy = ctx.upload(bytemuck::cast_slice(&dy)).unwrap();
    let k = s.c * s.kh * s.kw;

    let mut want = vec![0f32; s.y_len()];
    conv2d_cpu(s, &x, &w, &mut want);
    let y = conv2d_gpu(&ctx, s, &gx, &gw).unwrap();
    let got: Vec<f32> = ctx.read(&y, s.y_len()).unwrap();
    assert_close(
        &format!("forward {s:?}"),
        &got,
        &want,
        1e-6 * k as f32,
        1e-4,
    );

    let mut want = vec![0f32; s.x_len()];
    conv2d_backward_data_cpu(s, &dy, &w, &mut want);
    let dx = conv2d_backward_data_gpu(&ctx, s, &gdy, &gw).unwrap();
    let got: Vec<f32> = ctx.read(&dx, s.x_len()).unwrap();
    let red = (s.o * s.kh * s.kw) as f32;
    assert_close(
        &format!("backward data {s:?}"),
        &got,
        &want,
        1e-6 * red,
        1e-4,
    );

    let mut want = vec![0f32; s.w_len()];
    conv2d_backward_weight_cpu(s, &x, &dy, &mut want);
    let dw = conv2d_backward_weight_gpu(&ctx, s, &gx, &gdy).unwrap();
    let got: Vec<f32> = ctx.read(&dw, s.w_len()).unwrap();
    let red = (s.n * s.oh * s.ow) as f32;
    assert_close(
        &format!("backward weight {s:?}"),
        &got,
        &want,
        1e-6 * red,
        1e-4,
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    #[test]
    fn cpu_matches_direct_reference(s in small_shape(), seed in 0u64..1000) {
        cpu_checks(&s, seed);
    }

    /// ⟨dy, conv(x+εv) − conv(x−εv)⟩/2ε against ⟨dx, v⟩, and likewise for the weights.
    #[test]
    fn cpu_backwards_match_finite_differences(s in small_shape(), seed in 0u64..1000) {
        let x = data(seed, s.x_len());
        let w = data(seed + 1, s.w_len());
        let dy = data(seed + 2, s.y_len());
        let eps = 1e-3;
        let fwd = |x: &[f64], w: &[f64]| {
            let mut y = vec![0.0; s.y_len()];
            conv2d_cpu(&s, x, w, &mut y);
            y
        };
        let shifted = |base: &[f64], v: &[f64], sign: f64| -> Vec<f64> {
            base.iter().zip(v).map(|(b, v)| b + sign * eps * v).collect()
        };
        let v = data(seed + 3, s.x_len());
        let fd = (dot(&dy, &fwd(&shifted(&x, &v, 1.0), &w)) - dot(&dy, &fwd(&shifted(&x, &v, -1.0), &w))) / (2.0 * eps);
        let mut dx = vec![0.0; s.x_len()];
        conv2d_backward_data_cpu(&s, &dy, &w, &mut dx);
        let an = dot(&dx, &v);
        prop_assert!((fd - an).abs() <= 1e-8 * (1.0 + an.abs()), "dx {s:?}: fd {fd} vs {an}");

        let v = data(seed + 4, s.w_len());
        let fd = (dot(&dy, &fwd(&x, &shifted(&w, &v, 1.0))) - dot(&dy, &fwd(&x, &shifted(&w, &v, -1.0)))) / (2.0 * eps);
        let mut dw = vec![0.0; s.w_len()];
        conv2d_backward_weight_cpu(&s, &x, &dy, &mut dw);
        let an = dot(&dw, &v);
        prop_assert!((fd - an).abs() <= 1e-8 * (1.0 + an.abs()), "dw {s:?}: fd {fd} vs {an}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn wgsl_matches_cpu(s in gpu_shape(), seed in 0u64..1000) {
        gpu_checks(&s, seed);
    }
}

/// Shapes of the paper's and ResNet's layers (batch cut down), plus ones that split the
/// backward-weight reduction (n·oh·ow > 512) and span several tiles everywhere.
#[test]
fn wgsl_matches_cpu_on_network_shapes() {
    let shapes = [
        (2, 3, 32, 32, 32, 3, 1, Padding::Valid), // CIFAR CNN conv1 (split reduction)
        (2, 32, 15, 15, 64, 3, 1, Padding::Valid), // conv2
        (2, 64, 6, 6, 64, 3, 1, Padding::Valid),  // conv3
        (2, 16, 16, 16, 32, 3, 2, Padding::Same), // ResNet downsampling 3×3
        (2, 64, 8, 8, 130, 1, 2, Padding::Same),  // ResNet 1×1 projection, 3 M tiles
        (8, 3, 32, 32, 16, 3, 1, Padding::Same),  // 16 splits
        (1, 5, 9, 7, 3, 5, 2, Padding::Same),     // kernel larger than half the input
    ];
    for (i, &(n, c, h, w, o, k, st, p)) in shapes.iter().enumerate() {
        let s = Conv2dShape::new(n, c, h, w, o, k, k, st, p).unwrap();
        gpu_checks(&s, 100 + i as u64);
    }
}

/// The forward split over the reduction (what small output grids use): the tolerance
/// of the unsplit kernel against the cpu, bitwise deterministic, one split exactly the
/// unsplit kernel, and partial last chunks and ragged tiles handled.
#[test]
fn forward_split_k_matches_cpu_and_is_deterministic() {
    let ctx = cpu_adapter();
    let shapes = [
        Conv2dShape::new(32, 64, 6, 6, 64, 3, 3, 1, Padding::Valid).unwrap(), // CNN conv3, batch 32
        Conv2dShape::new(3, 7, 9, 5, 19, 3, 3, 2, Padding::Same).unwrap(),    // K = 63: ragged
        Conv2dShape::new(2, 40, 4, 4, 33, 1, 1, 1, Padding::Valid).unwrap(),  // 1×1, 3 M tiles
    ];
    for (i, s) in shapes.iter().enumerate() {
        let x = to_f32(&data(300 + i as u64, s.x_len()));
        let w = to_f32(&data(400 + i as u64, s.w_len()));
        let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
        let gw = ctx.upload(bytemuck::cast_slice(&w)).unwrap();
        let mut want = vec![0f32; s.y_len()];
        conv2d_cpu(s, &x, &w, &mut want);
        let run = |splits: usize| -> Vec<f32> {
            let y = conv2d_gpu_split(&ctx, s, &gx, &gw, splits).unwrap();
            ctx.read(&y, s.y_len()).unwrap()
        };
        let unsplit: Vec<f32> = ctx
            .read(&conv2d_gpu(&ctx, s, &gx, &gw).unwrap(), s.y_len())
            .unwrap();
        assert_eq!(
            unsplit,
            run(forward_splits(s)),
            "{s:?}: conv2d_gpu splits as forward_splits says"
        );
        if i == 0 {
            assert!(forward_splits(s) > 1, "CNN conv3 at batch 32 splits");
        }
        assert_eq!(
            run(1),
            ctx.read(&conv2d_gpu_split(&ctx, s, &gx, &gw, 1).unwrap(), s.y_len())
                .unwrap(),
            "{s:?}: one split is reproducible"
        );
        let k = (s.c * s.kh * s.kw) as f32;
        for splits in [2, 3, 9, 100] {
            let got = run(splits);
            assert_close(
                &format!("forward {s:?}, {splits} splits"),
                &got,
                &want,
                1e-6 * k,
                1e-4,
            );
            assert_eq!(
                got,
                run(splits),
                "{s:?}, {splits} splits: not deterministic"
            );
        }
    }
}

/// The backward-data split over the reduction (o·kh·kw): within the unsplit kernel's
/// tolerance of the cpu, bitwise deterministic, and what conv2d_backward_data_gpu runs
/// on the CNN's layers at batch 32 (which it splits).
#[test]
fn backward_data_split_k_matches_cpu_and_is_deterministic() {
    let ctx = cpu_adapter();
    let shapes = [
        Conv2dShape::new(32, 64, 6, 6, 64, 3, 3, 1, Padding::Valid).unwrap(), // CNN conv3
        Conv2dShape::new(3, 7, 9, 5, 19, 3, 3, 2, Padding::Same).unwrap(),    // ragged
        Conv2dShape::new(2, 33, 4, 4, 40, 1, 1, 1, Padding::Valid).unwrap(),  // 1×1, 3 M tiles
    ];
    for (i, s) in shapes.iter().enumerate() {
        let dy = to_f32(&data(500 + i as u64, s.y_len()));
        let w = to_f32(&data(600 + i as u64, s.w_len()));
        let gdy = ctx.upload(bytemuck::cast_slice(&dy)).unwrap();
        let gw = ctx.upload(bytemuck::cast_slice(&w)).unwrap();
        let mut want = vec![0f32; s.x_len()];
        conv2d_backward_data_cpu(s, &dy, &w, &mut want);
        let run = |splits: usize| -> Vec<f32> {
            let dx = conv2d_backward_data_gpu_split(&ctx, s, &gdy, &gw, splits).unwrap();
            ctx.read(&dx, s.x_len()).unwrap()
        };
        let red = (s.o * s.kh * s.kw) as f32;
        let one = run(1);
        assert_close(
            &format!("backward data {s:?}"),
            &one,
            &want,
            1e-6 * red,
            1e-4,
        );
        for splits in [2, 5, 100] {
            let got = run(splits);
            assert_close(
                &format!("backward data {s:?}, {splits} splits"),
                &got,
                &want,
                1e-6 * red,
                1e-4,
            );
            assert_eq!(
                got,
                run(splits),
                "{s:?}, {splits} splits: not deterministic"
            );
        }
        let default: Vec<f32> = ctx
            .read(
                &conv2d_backward_data_gpu(&ctx, s, &gdy, &gw).unwrap(),
                s.x_len(),
            )
            .unwrap();
        if i == 0 {
            // conv3 at batch 32: 18 output tiles, split into 18 chunks of 32.
            assert_eq!(default, run(18), "{s:?}");
            assert_ne!(default, one, "{s:?}: the split reassociates the sums");
        }
    }
}

/// More than 65,535 output tiles: the grid is folded onto y. About a minute on
/// llvmpipe, so run on demand (`-- --ignored`).
#[test]
#[ignore]
fn wgsl_folds_large_grids() {
    let s = Conv2dShape::new(1, 1, 2100, 2100, 1, 1, 1, 1, Padding::Valid).unwrap();
    gpu_checks(&s, 200);
}

#[test]
fn cpu_matches_direct_reference_on_fixed_shapes() {
    for (i, &(n, c, h, w, o, kh, kw, st, p)) in [
        (1, 1, 1, 1, 1, 1, 1, 1, Padding::Valid),
        (1, 1, 1, 1, 1, 3, 3, 2, Padding::Same),
        (2, 3, 7, 5, 4, 1, 1, 2, Padding::Same),
        (3, 2, 13, 11, 5, 3, 2, 2, Padding::Valid),
        (2, 4, 8, 8, 3, 4, 4, 2, Padding::Same),
        // per-image path with several partial sums of the weight gradient
        (9, 3, 8, 8, 5, 3, 3, 1, Padding::Same),
        // batched path with GEMMs cut into row blocks
        (5, 8, 6, 6, 40, 3, 3, 1, Padding::Valid),
    ]
    .iter()
    .enumerate()
    {
        let s = Conv2dShape::new(n, c, h, w, o, kh, kw, st, p).unwrap();
        cpu_checks(&s, 7 + i as u64);
    }
}

#[test]
fn shape_known_answers() {
    let s = Conv2dShape::new(1, 3, 32, 32, 8, 3, 3, 2, Padding::Same).unwrap();
    assert_eq!((s.oh, s.ow, s.pad_top, s.pad_left), (16, 16, 0, 0), "{s:?}");
    let s = Conv2dShape::new(1, 3, 32, 32, 8, 3, 3, 1, Padding::Same).unwrap();
    assert_eq!((s.oh, s.ow, s.pad_top, s.pad_left), (32, 32, 1, 1), "{s:?}");
    let s = Conv2dShape::new(1, 64, 32, 32, 128, 1, 1, 2, Padding::Same).unwrap();
    assert_eq!((s.oh, s.ow, s.pad_top, s.pad_left), (16, 16, 0, 0), "{s:?}");
    let s = Conv2dShape::new(1, 3, 33, 33, 8, 3, 3, 2, Padding::Same).unwrap();
    assert_eq!((s.oh, s.pad_top), (17, 1), "{s:?}");
    let s = Conv2dShape::new(1, 3, 8, 8, 8, 4, 4, 1, Padding::Same).unwrap();
    assert_eq!(
        (s.oh, s.pad_top),
        (8, 1),
        "even kernel: the extra row at the bottom {s:?}"
    );
    let s = Conv2dShape::new(32, 3, 32, 32, 32, 3, 3, 1, Padding::Valid).unwrap();
    assert_eq!((s.oh, s.ow, s.pad_top), (30, 30, 0), "{s:?}");
    assert_eq!(
        (s.x_len(), s.w_len(), s.y_len()),
        (32 * 3 * 1024, 32 * 27, 32 * 32 * 900)
    );
    let s = Conv2dShape::new(1, 1, 15, 15, 1, 3, 3, 2, Padding::Valid).unwrap();
    assert_eq!(s.oh, 7, "{s:?}");

    let invalid = [
        (0, 1, 4, 4, 1, 3, 3, 1, Padding::Valid),
        (1, 0, 4, 4, 1, 3, 3, 1, Padding::Valid),
        (1, 1, 0, 4, 1, 3, 3, 1, Padding::Same),
        (1, 1, 4, 4, 0, 3, 3, 1, Padding::Same),
        (1, 1, 4, 4, 1, 0, 3, 1, Padding::Same),
        (1, 1, 4, 4, 1, 3, 3, 0, Padding::Same),
        (1, 1, 2, 4, 1, 3, 3, 1, Padding::Valid),
        (1, 1, 4, 2, 1, 3, 3, 1, Padding::Valid),
        (usize::MAX / 2, 4, 4, 4, 1, 1, 1, 1, Padding::Valid),
    ];
    for (n, c, h, w, o, kh, kw, st, p) in invalid {
        let r = Conv2dShape::new(n, c, h, w, o, kh, kw, st, p);
        assert!(
            matches!(r, Err(GpuError::Invalid(_))),
            "{:?}",
            (n, c, h, w, o, kh, kw, st, p, r)
        );
    }
}

#[test]
fn gpu_refuses_mismatched_buffers() {
    let ctx = cpu_adapter();
    let s = Conv2dShape::new(2, 3, 8, 8, 4, 3, 3, 1, Padding::Same).unwrap();
    let short = ctx.alloc(4 * (s.x_len() as u64 - 1)).unwrap();
    let w = ctx.alloc(4 * s.w_len() as u64).unwrap();
    assert!(matches!(
        conv2d_gpu(&ctx, &s, &short, &w),
        Err(GpuError::Invalid(_))
    ));
    let mut bad = s;
    bad.oh = 0;
    let x = ctx.alloc(4 * s.x_len() as u64).unwrap();
    assert!(conv2d_gpu(&ctx, &bad, &x, &w).is_err());
}

/// Shapes of the determinism tests: 9 images take the per-image path with several
/// partial sums of the weight gradient; the small map takes the batched path.
fn determinism_shapes() -> [Conv2dShape; 2] {
    [
        Conv2dShape::new(9, 8, 15, 15, 16, 3, 3, 1, Padding::Same).unwrap(),
        Conv2dShape::new(6, 40, 6, 6, 48, 3, 3, 1, Padding::Valid).unwrap(),
    ]
}

/// The bits of forward, backward-data and backward-weight on `s`.
fn output_bits(s: &Conv2dShape) -> Vec<u32> {
    let x = to_f32(&data(1, s.x_len()));
    let w = to_f32(&data(2, s.w_len()));
    let dy = to_f32(&data(3, s.y_len()));
    let mut y = vec![0f32; s.y_len()];
    let mut dx = vec![0f32; s.x_len()];
    let mut dw = vec![0f32; s.w_len()];
    conv2d_cpu(s, &x, &w, &mut y);
    conv2d_backward_data_cpu(s, &dy, &w, &mut dx);
    conv2d_backward_weight_cpu(s, &x, &dy, &mut dw);
    y.iter()
        .chain(&dx)
        .chain(&dw)
        .map(|v| v.to_bits())
        .collect()
}

/// Same inputs give bitwise the same outputs, whatever the rayon thread count.
#[test]
fn cpu_is_deterministic() {
    for s in determinism_shapes() {
        let a = output_bits(&s);
        assert!(a == output_bits(&s), "second run {s:?}");
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            assert!(
                a == pool.install(|| output_bits(&s)),
                "{threads} threads {s:?}"
            );
        }
    }
}

/// WGSL results are bitwise reproducible too (fixed reduction orders, no atomics).
#[test]
fn wgsl_is_deterministic() {
    let ctx = cpu_adapter();
    let s = Conv2dShape::new(4, 3, 20, 20, 16, 3, 3, 1, Padding::Same).unwrap();
    let x = to_f32(&data(5, s.x_len()));
    let dy = to_f32(&data(6, s.y_len()));
    let gx = ctx.upload(bytemuck::cast_slice(&x)).unwrap();
    let gdy = ctx.upload(bytemuck::cast_slice(&dy)).unwrap();
    let a: Vec<f32> = ctx
        .read(
            &conv2d_backward_weight_gpu(&ctx, &s, &gx, &gdy).unwrap(),
            s.w_len(),
        )
        .unwrap();
    let b: Vec<f32> = ctx
        .read(
            &conv2d_backward_weight_gpu(&ctx, &s, &gx, &gdy).unwrap(),
            s.w_len(),
        )
        .unwrap();
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
}

/// Timings of the paper CNN's conv layers on the cpu (CIFAR-10, batch 32), f32.
/// Run with `cargo test --release -p rbd-kernels --test conv -- --ignored --nocapture`.
#[test]
#[ignore]
fn cpu_timings_paper_cnn() {
    let layers = [(3, 32, 32, 32), (32, 15, 15, 64), (64, 6, 6, 64)];
    let reps = 50;
    let mut total = 0.0;
    for (c, h, w, o) in layers {
        let s = Conv2dShape::new(32, c, h, w, o, 3, 3, 1, Padding::Valid).unwrap();
        let x = to_f32(&data(1, s.x_len()));
        let wt = to_f32(&data(2, s.w_len()));
        let dy = to_f32(&data(3, s.y_len()));
        let mut y = vec![0f32; s.y_len()];
        let mut dx = vec![0f32; s.x_len()];
        let mut dw = vec![0f32; s.w_len()];
        // Best of `reps`: the machine is shared, and the minimum is the least noisy.
        let time = |f: &mut dyn FnMut()| {
            for _ in 0..5 {
                f();
            }
            (0..reps)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .fold(f64::MAX, f64::min)
        };
        let f = time(&mut || conv2d_cpu(&s, &x, &wt, &mut y));
        let bd = time(&mut || conv2d_backward_data_cpu(&s, &dy, &wt, &mut dx));
        let bw = time(&mut || conv2d_backward_weight_cpu(&s, &x, &dy, &mut dw));
        eprintln!(
            "conv {c}->{o} {h}x{w}->{}x{}: forward {f:.3} ms, backward-data {bd:.3} ms, backward-weight {bw:.3} ms",
            s.oh, s.ow
        );
        total += f + bd + bw;
    }
    eprintln!("total {total:.3} ms per batch (backward-data of the first layer included)");
}

/// The forward and the weight gradient on every path this processor runs (im2col +
/// GEMM, the direct kernels at each SIMD level) give the same bits: the direct kernels promise
/// matrixmultiply's summation order, which the committed CNN runs depend on. Shapes:
/// the ResNet-8 and CNN layers (several blocks of 256 positions, strides 1 and 2, 1×1
/// shortcuts), odd sizes, Valid padding with unread rows, 5×5 kernels, partial
/// image groups, and an input with ±∞ and NaN (padded taps must be multiplied, not skipped).
#[test]
fn direct_paths_agree_with_the_gemm_bitwise() {
    let paths = ConvPath::available();
    assert!(paths.contains(&ConvPath::Gemm));
    let shapes = [
        (5, 3, 32, 32, 16, 3, 3, 1, Padding::Same),
        (6, 16, 32, 32, 16, 3, 3, 1, Padding::Same),
        (5, 16, 32, 32, 32, 3, 3, 2, Padding::Same),
        (5, 16, 32, 32, 32, 1, 1, 2, Padding::Same),
        (4, 32, 16, 16, 32, 3, 3, 1, Padding::Same),
        (3, 32, 16, 16, 64, 3, 3, 2, Padding::Same),
        (9, 64, 8, 8, 64, 3, 3, 1, Padding::Same),
        (3, 3, 32, 32, 32, 3, 3, 1, Padding::Valid),
        (2, 32, 15, 15, 64, 3, 3, 1, Padding::Valid),
        (2, 1, 28, 28, 32, 3, 3, 1, Padding::Valid),
        (3, 5, 17, 19, 16, 5, 5, 2, Padding::Same),
        (2, 6, 20, 21, 8, 5, 5, 1, Padding::Valid),
        (2, 7, 21, 20, 48, 3, 3, 2, Padding::Valid),
        (1, 2, 9, 31, 24, 3, 3, 1, Padding::Valid),
        (2, 9, 12, 12, 16, 4, 2, 1, Padding::Same),
        (2, 100, 9, 9, 32, 3, 3, 1, Padding::Same),
    ];
    for (i, &(n, c, h, w, o, kh, kw, st, p)) in shapes.iter().enumerate() {
        let s = Conv2dShape::new(n, c, h, w, o, kh, kw, st, p).unwrap();
        let mut x = to_f32(&data(300 + i as u64, s.x_len()));
        let dy = to_f32(&data(400 + i as u64, s.y_len()));
        let w = to_f32(&data(500 + i as u64, s.w_len()));
        if i == 1 {
            x[5] = f32::INFINITY;
            x[s.x_len() / 2] = f32::NEG_INFINITY;
            x[s.x_len() - 7] = f32::NAN;
        }
        let differ = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count()
        };
        let mut want_dw = vec![0f32; s.w_len()];
        conv2d_backward_weight_cpu_with(&s, &x, &dy, &mut want_dw, ConvPath::Gemm);
        let mut want_y = vec![0f32; s.y_len()];
        conv2d_cpu_with(&s, &x, &w, &mut want_y, ConvPath::Gemm);
        for &path in &paths {
            let mut dw = vec![1f32; s.w_len()];
            conv2d_backward_weight_cpu_with(&s, &x, &dy, &mut dw, path);
            let mut y = vec![1f32; s.y_len()];
            conv2d_cpu_with(&s, &x, &w, &mut y, path);
            for (what, got, want) in [("weight gradient", &dw, &want_dw), ("forward", &y, &want_y)]
            {
                let n = differ(got, want);
                assert_eq!(
                    n,
                    0,
                    "{what}, {path:?} on {s:?}: {n} of {} differ",
                    got.len()
                );
            }
        }
        if i == 1 {
            assert!(
                want_dw.iter().any(|v| v.is_nan()),
                "the NaN reached the gradient"
            );
            assert!(
                want_y.iter().any(|v| v.is_nan()),
                "the NaN reached the output"
            );
        }
    }
}
