//! Softmax cross-entropy, its gradient, argmax and correct counts: cpu against naive f64
//! formulas and central differences, WGSL against cpu.

use proptest::prelude::*;
use rbd_kernels::loss::*;
use rbd_kernels::testing::{assert_close, cases, cpu_adapter, uniform};
use rbd_kernels::GpuContext;

/// Deterministic values in [-scale, scale).
fn random(len: usize, seed: u64, scale: f64) -> Vec<f64> {
    uniform(len, seed).iter().map(|v| v * scale).collect()
}

fn labels(n: usize, k: usize, seed: u64) -> Vec<u32> {
    random(n, seed, 1.0)
        .iter()
        .map(|v| (((v + 1.0) * 0.5 * k as f64) as usize).min(k - 1) as u32)
        .collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Mean cross-entropy straight from the definition: −log(exp(l_y) / Σ exp(l)).
fn naive_loss(logits: &[f64], labels: &[u32], n: usize, k: usize) -> f64 {
    let mut total = 0.0;
    for i in 0..n {
        let row = &logits[i * k..(i + 1) * k];
        let y = labels[i] as usize;
        if y >= k {
            continue;
        }
        let z: f64 = row.iter().map(|v| v.exp()).sum();
        total -= (row[y].exp() / z).ln();
    }
    total / n as f64
}

struct Gpu {
    logits: rbd_kernels::GpuBuffer,
    labels: rbd_kernels::GpuBuffer,
}

fn upload(ctx: &GpuContext, logits: &[f32], labels: &[u32]) -> Gpu {
    Gpu {
        logits: ctx.upload(bytemuck::cast_slice(logits)).unwrap(),
        labels: ctx.upload(bytemuck::cast_slice(labels)).unwrap(),
    }
}

fn gpu_loss(ctx: &GpuContext, g: &Gpu, n: usize, k: usize) -> f32 {
    let out = softmax_xent_gpu(ctx, &g.logits, &g.labels, n, k).unwrap();
    ctx.read::<f32>(&out, 1).unwrap()[0]
}

fn gpu_backward(ctx: &GpuContext, g: &Gpu, n: usize, k: usize, dloss: f32) -> Vec<f32> {
    let d = ctx.upload(bytemuck::bytes_of(&dloss)).unwrap();
    let out = softmax_xent_backward_gpu(ctx, &g.logits, &g.labels, n, k, &d).unwrap();
    ctx.read(&out, n * k).unwrap()
}

fn gpu_correct(ctx: &GpuContext, g: &Gpu, n: usize, k: usize) -> u32 {
    let out = correct_count_gpu(ctx, &g.logits, &g.labels, n, k).unwrap();
    ctx.read::<u32>(&out, 1).unwrap()[0]
}

fn gpu_argmax(ctx: &GpuContext, g: &Gpu, n: usize, k: usize) -> Vec<u32> {
    let out = argmax_gpu(ctx, &g.logits, n, k).unwrap();
    ctx.read(&out, n).unwrap()
}

fn shape() -> impl Strategy<Value = (usize, usize)> {
    (
        prop_oneof![Just(1usize), 1usize..300, Just(1000usize)],
        prop_oneof![Just(1usize), Just(2usize), Just(10usize), 1usize..200],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(32)))]

    #[test]
    fn cpu_forward_matches_naive((n, k) in shape(), seed in any::<u64>()) {
        let logits = random(n * k, seed, 4.0);
        let y = labels(n, k, seed ^ 3);
        let want = naive_loss(&logits, &y, n, k);
        let got = softmax_xent_cpu(&logits, &y, n, k);
        prop_assert!((got - want).abs() <= 1e-12 * (1.0 + want.abs()), "[{n}, {k}]: {got} vs {want}");
        let got32 = softmax_xent_cpu(&f32s(&logits), &y, n, k) as f64;
        prop_assert!((got32 - want).abs() <= 1e-5 * (1.0 + want.abs()), "f32 [{n}, {k}]: {got32} vs {want}");
    }

    #[test]
    fn gpu_matches_cpu((n, k) in shape(), seed in any::<u64>(), scale in prop::sample::select(vec![1.0f64, 10.0, 100.0])) {
        let ctx = cpu_adapter();
        let logits = f32s(&random(n * k, seed, scale));
        let y = labels(n, k, seed ^ 3);
        let g = upload(&ctx, &logits, &y);
        let what = format!("[{n}, {k}] scale {scale}");

        let want = softmax_xent_cpu(&logits, &y, n, k);
        let got = gpu_loss(&ctx, &g, n, k);
        assert_close(&format!("loss {what}"), &[got], &[want], 1e-5, 1e-5);

        let dloss = 0.75f32;
        let mut want = vec![0f32; n * k];
        softmax_xent_backward_cpu(&logits, &y, n, k, dloss, &mut want);
        let got = gpu_backward(&ctx, &g, n, k, dloss);
        assert_close(&format!("backward {what}"), &got, &want, 1e-7, 1e-5);

        let mut want = vec![0u32; n];
        argmax_cpu(&logits, n, k, &mut want);
        prop_assert_eq!(gpu_argmax(&ctx, &g, n, k), want, "argmax {}", what);
        prop_assert_eq!(gpu_correct(&ctx, &g, n, k) as usize, correct_count_cpu(&logits, &y, n, k), "correct {}", what);
    }

    #[test]
    fn backward_matches_central_differences(n in 1usize..6, k in 1usize..8, seed in any::<u64>()) {
        let logits = random(n * k, seed, 3.0);
        let y = labels(n, k, seed ^ 9);
        let dloss = 1.3;
        let mut grad = vec![0.0; n * k];
        softmax_xent_backward_cpu(&logits, &y, n, k, dloss, &mut grad);
        let h = 1e-5;
        for e in 0..n * k {
            let mut plus = logits.clone();
            plus[e] += h;
            let mut minus = logits.clone();
            minus[e] -= h;
            let fd = dloss * (softmax_xent_cpu(&plus, &y, n, k) - softmax_xent_cpu(&minus, &y, n, k)) / (2.0 * h);
            prop_assert!((grad[e] - fd).abs() <= 1e-8, "[{n}, {k}] element {e}: {} vs {fd}", grad[e]);
        }
    }
}

#[test]
fn huge_logits_stay_finite() {
    let ctx = cpu_adapter();
    let (n, k) = (4, 3);
    let logits: Vec<f32> = vec![
        1e4, -1e4, 0.0, // label 1: loss 2e4
        -1e4, -1e4, -1e4, // uniform: ln 3
        1e4, 1e4, -1e4, // label 0, tie with 1: ln 2
        3e4, -3e4, 1e4, // label 0: ~0
    ];
    let y = [1u32, 2, 0, 0];
    let want = (2e4 + 3f64.ln() + 2f64.ln()) / 4.0;
    let l64 = softmax_xent_cpu(
        &logits.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        &y,
        n,
        k,
    );
    assert!((l64 - want).abs() < 1e-9 * want, "{l64} vs {want}");
    let l32 = softmax_xent_cpu(&logits, &y, n, k);
    assert!(
        l32.is_finite() && ((l32 as f64) - want).abs() < 1e-3,
        "{l32}"
    );
    let g = upload(&ctx, &logits, &y);
    let lg = gpu_loss(&ctx, &g, n, k);
    assert!(
        lg.is_finite() && ((lg as f64) - want).abs() < 1e-3,
        "gpu {lg} vs {want}"
    );
    let grad = gpu_backward(&ctx, &g, n, k, 1.0);
    assert!(grad.iter().all(|v| v.is_finite()), "{grad:?}");
    let mut cpu = vec![0f32; n * k];
    softmax_xent_backward_cpu(&logits, &y, n, k, 1.0, &mut cpu);
    assert_close("huge backward", &grad, &cpu, 1e-7, 1e-5);
    // Row 0: softmax (1, 0, 0), label 1.
    assert_close("row 0", &cpu[..3], &[0.25, -0.25, 0.0], 1e-7, 0.0);
}

#[test]
fn ties_count_the_first_maximum() {
    let ctx = cpu_adapter();
    let (n, k) = (5, 4);
    let logits: Vec<f32> = vec![
        1.0, 3.0, 3.0, 0.0, // argmax 1
        1.0, 3.0, 3.0, 0.0, // argmax 1, label 2: wrong
        2.0, 2.0, 2.0, 2.0, // argmax 0
        2.0, 2.0, 2.0, 2.0, // argmax 0, label 3: wrong
        -1.0, -5.0, -1.0, -0.5, // argmax 3
    ];
    let y = [1u32, 2, 0, 3, 3];
    let mut am = vec![0u32; n];
    argmax_cpu(&logits, n, k, &mut am);
    assert_eq!(am, vec![1, 1, 0, 0, 3]);
    assert_eq!(correct_count_cpu(&logits, &y, n, k), 3);
    let g = upload(&ctx, &logits, &y);
    assert_eq!(gpu_argmax(&ctx, &g, n, k), am);
    assert_eq!(gpu_correct(&ctx, &g, n, k), 3);
}

#[test]
fn out_of_range_labels_are_skipped_consistently() {
    let ctx = cpu_adapter();
    let (n, k) = (6, 5);
    let logits = f32s(&random(n * k, 17, 2.0));
    let mut y = labels(n, k, 18);
    y[1] = 5;
    y[4] = u32::MAX;
    // Loss: the valid rows only, divided by n.
    let valid: Vec<usize> = (0..n).filter(|&i| y[i] < k as u32).collect();
    let l64: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
    let mut want = 0.0;
    for &i in &valid {
        want += naive_loss(&l64[i * k..(i + 1) * k], &y[i..i + 1], 1, k);
    }
    want /= n as f64;
    let cpu = softmax_xent_cpu(&logits, &y, n, k);
    assert!(((cpu as f64) - want).abs() < 1e-5, "{cpu} vs {want}");
    let g = upload(&ctx, &logits, &y);
    assert_close("loss", &[gpu_loss(&ctx, &g, n, k)], &[cpu], 1e-6, 1e-5);
    let mut grad = vec![1f32; n * k];
    softmax_xent_backward_cpu(&logits, &y, n, k, 1.0, &mut grad);
    assert!(grad[k..2 * k].iter().all(|&v| v == 0.0));
    assert!(grad[4 * k..5 * k].iter().all(|&v| v == 0.0));
    assert_close(
        "backward",
        &gpu_backward(&ctx, &g, n, k, 1.0),
        &grad,
        1e-7,
        1e-5,
    );
    let mut am = vec![0u32; n];
    argmax_cpu(&logits, n, k, &mut am);
    let hits = (0..n).filter(|&i| am[i] == y[i]).count();
    assert_eq!(correct_count_cpu(&logits, &y, n, k), hits);
    assert_eq!(gpu_correct(&ctx, &g, n, k) as usize, hits);
}

#[test]
fn correct_count_over_several_passes() {
    // 300,000 rows: 1172 workgroup counts, summed by one count_sum pass; 1.1M rows: two.
    let ctx = cpu_adapter();
    for n in [300_000usize, 1_100_000] {
        let k = 2;
        let logits = f32s(&random(n * k, n as u64, 1.0));
        let y = labels(n, k, 5);
        let g = upload(&ctx, &logits, &y);
        assert_eq!(
            gpu_correct(&ctx, &g, n, k) as usize,
            correct_count_cpu(&logits, &y, n, k),
            "n {n}"
        );
    }
}

#[test]
fn empty_batch_and_bad_k() {
    let ctx = cpu_adapter();
    assert_eq!(softmax_xent_cpu::<f32>(&[], &[], 0, 3), 0.0);
    let b = ctx.upload(&[0u8; 16]).unwrap();
    let z = softmax_xent_gpu(&ctx, &b, &b, 0, 3).unwrap();
    assert_eq!(ctx.read::<f32>(&z, 1).unwrap(), vec![0.0]);
    assert_eq!(
        ctx.read::<u32>(&correct_count_gpu(&ctx, &b, &b, 0, 3).unwrap(), 1)
            .unwrap(),
        vec![0]
    );
    assert!(softmax_xent_gpu(&ctx, &b, &b, 1, 0).is_err());
    assert!(
        softmax_xent_gpu(&ctx, &b, &b, 2, 3).is_err(),
        "24 bytes of logits needed"
    );
}

/// The one-dispatch loss (n ≤ 4096) and gradient (k ≤ 32) are bitwise the two-pass
/// kernels they replace, including an out-of-range label and the 4096-row edge.
#[test]
fn one_dispatch_loss_and_gradient_are_bitwise_the_separate_passes() {
    let ctx = cpu_adapter();
    for (n, k, seed) in [
        (1, 1, 1),
        (3, 10, 2),
        (32, 10, 3),
        (257, 7, 4),
        (4096, 10, 5),
        (70, 32, 6),
    ] {
        let logits = f32s(&random(n * k, seed, 8.0));
        let mut lab = labels(n, k, seed ^ 9);
        lab[n / 2] = k as u32 + 3;
        let g = upload(&ctx, &logits, &lab);
        let one = ctx.read::<f32>(
            &softmax_xent_gpu(&ctx, &g.logits, &g.labels, n, k).unwrap(),
            1,
        );
        let two = softmax_xent_gpu_separate_passes(&ctx, &g.logits, &g.labels, n, k).unwrap();
        let two = ctx.read::<f32>(&two, 1);
        assert_eq!(
            one.unwrap()[0].to_bits(),
            two.unwrap()[0].to_bits(),
            "loss [{n}, {k}]"
        );
        let d = ctx.upload(bytemuck::bytes_of(&0.75f32)).unwrap();
        let one = softmax_xent_backward_gpu(&ctx, &g.logits, &g.labels, n, k, &d).unwrap();
        let two = softmax_xent_backward_gpu_separate_passes(&ctx, &g.logits, &g.labels, n, k, &d)
            .unwrap();
        let bits = |b| -> Vec<u32> { ctx.read::<u32>(b, n * k).unwrap() };
        assert_eq!(bits(&one), bits(&two), "gradient [{n}, {k}]");
    }
}
