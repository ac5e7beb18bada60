//! Every op, forward and backward, on the wgpu backend (WGSL on llvmpipe in CI)
//! against the cpu backend, through the engine's public API, on random shapes
//! including awkward ones (1, primes, sizes that are not tile multiples).

use proptest::prelude::*;
use rbd_engine::testing::{cases, cpu_adapter};
use rbd_engine::testing::{weighted_sum, weights};
use rbd_engine::{Device, DeviceChoice, Labels, MetricSums, Padding, Result, Tensor};

fn wgpu() -> Device {
    Device::Wgpu(cpu_adapter())
}

/// Runs `f` on both backends from the same f32 inputs and compares the output and the
/// gradient of ⟨w, output⟩ with respect to every input.
fn parity(
    what: &str,
    inputs: &[(Vec<usize>, u64)],
    tol: f32,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let run = |device: &Device| -> (Vec<f32>, Vec<Vec<f32>>) {
        let xs: Vec<Tensor> = inputs
            .iter()
            .map(|(shape, seed)| {
                let n = shape.iter().product();
                let v: Vec<f32> = weights(n, *seed).iter().map(|&x| x as f32).collect();
                Tensor::from_f32(device, &v, shape).unwrap().requires_grad()
            })
            .collect();
        let y = f(&xs).unwrap_or_else(|e| panic!("{what} on {device:?}: {e}"));
        let loss = weighted_sum(&y, 99).unwrap();
        let grads = loss.backward().unwrap();
        let gs = xs
            .iter()
            .map(|x| {
                grads
                    .get(x)
                    .map(|g| g.to_vec_f32().unwrap())
                    .unwrap_or_default()
            })
            .collect();
        (y.to_vec_f32().unwrap(), gs)
    };
    let (y_cpu, g_cpu) = run(&Device::Cpu);
    let (y_gpu, g_gpu) = run(&wgpu());
    let shapes: Vec<_> = inputs.iter().map(|(s, _)| s.clone()).collect();
    rbd_engine::testing::assert_close(
        &format!("{what} forward, inputs {shapes:?}"),
        &y_gpu,
        &y_cpu,
        tol,
        tol,
    );
    for (i, (a, b)) in g_gpu.iter().zip(&g_cpu).enumerate() {
        rbd_engine::testing::assert_close(
            &format!("{what} gradient of input {i}, inputs {shapes:?}"),
            a,
            b,
            tol,
            tol,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(6)))]

    #[test]
    fn elementwise_ops(r in 1usize..40, c in 1usize..70, s in any::<u64>()) {
        let ins = [(vec![r, c], s), (vec![r, c], s ^ 1)];
        parity("add", &ins, 1e-5, |v| v[0].add(&v[1]));
        parity("sub", &ins, 1e-5, |v| v[0].sub(&v[1]));
        parity("mul", &ins, 1e-5, |v| v[0].mul(&v[1]));
        parity("axpy", &ins, 1e-5, |v| v[0].axpy(0.25, &v[1]));
        parity("relu∘scale", &ins[..1], 1e-5, |v| v[0].scale(-1.5)?.relu());
        parity("bias_add", &[(vec![r, c], s), (vec![c], s ^ 2)], 1e-4, |v| v[0].bias_add(&v[1]));
        parity("bias_relu", &[(vec![r, c], s), (vec![c], s ^ 2)], 1e-4, |v| v[0].bias_relu(&v[1]));
        parity("sum", &ins[..1], 1e-4, |v| v[0].sum());
        parity("sum_squares", &ins[..1], 1e-4, |v| v[0].sum_squares());
        parity("dot", &ins, 1e-4, |v| v[0].dot(&v[1]));
    }

    #[test]
    fn matmul(m in 1usize..70, k in 1usize..70, n in 1usize..70, ta in any::<bool>(), tb in any::<bool>(), s in any::<u64>()) {
        let sa = if ta { vec![k, m] } else { vec![m, k] };
        let sb = if tb { vec![n, k] } else { vec![k, n] };
        parity("matmul", &[(sa, s), (sb, s ^ 1)], 2e-4 * (k as f32).sqrt().max(1.0), |v| v[0].matmul_t(&v[1], ta, tb));
    }

    #[test]
    fn conv_and_pools(
        (n, c, h, w, o) in (1usize..4, 1usize..5, 3usize..14, 3usize..14, 1usize..9),
        k in prop_oneof![Just(1usize), Just(3)],
        stride in 1usize..3, same in any::<bool>(), s in any::<u64>(),
    ) {
        let padding = if same { Padding::Same } else { Padding::Valid };
        parity("conv2d", &[(vec![n, c, h, w], s), (vec![o, c, k, k], s ^ 1)], 1e-3,
            |v| v[0].conv2d(&v[1], stride, padding));
        parity("maxpool2x2", &[(vec![n, c, h, w], s)], 1e-5, |v| v[0].maxpool2x2());
        parity("bias_relu NCHW", &[(vec![n, c, h, w], s), (vec![c], s ^ 2)], 1e-4, |v| v[0].bias_relu(&v[1]));
        parity("bias_relu_maxpool2x2", &[(vec![n, c, h, w], s), (vec![c], s ^ 2)], 1e-4, |v| v[0].bias_relu_maxpool2x2(&v[1]));
        parity("global_avg_pool", &[(vec![n, c, h, w], s)], 1e-5, |v| v[0].global_avg_pool());
        parity("batch_norm", &[(vec![n + 1, c, h, w], s), (vec![c], s ^ 3), (vec![c], s ^ 4)], 2e-3,
            |v| Ok(v[0].batch_norm_train(&v[1], &v[2], 1e-3)?.0));
    }

    #[test]
    fn loss_and_accuracy(n in 1usize..50, k in 2usize..12, s in any::<u64>()) {
        let labels: Vec<u32> = weights(n, s).iter().map(|x| ((x.abs() * 1e6) as usize % k) as u32).collect();
        let lc = Labels::new(&Device::Cpu, labels.clone(), k).unwrap();
        let lg = Labels::new(&wgpu(), labels.clone(), k).unwrap();
        let inputs = [(vec![n, k], s)];
        parity("softmax_cross_entropy", &inputs, 1e-4, |v| {
            let l = if matches!(v[0].device(), Device::Cpu) { &lc } else { &lg };
            v[0].scale(4.0)?.softmax_cross_entropy(l)
        });
        let v: Vec<f32> = weights(n * k, s).iter().map(|&x| x as f32).collect();
        let cc = Tensor::from_f32(&Device::Cpu, &v, &[n, k]).unwrap().correct_count(&lc).unwrap();
        let cg = Tensor::from_f32(&wgpu(), &v, &[n, k]).unwrap().correct_count(&lg).unwrap();
        prop_assert_eq!(cc, cg);
    }
}

/// Batches of logits (some rows with ties and a label out of the argmax) and labels.
fn metric_batches(count: usize, seed: u64) -> Vec<(Vec<f32>, Vec<u32>, usize, usize)> {
    (0..count)
        .map(|b| {
            let (n, k) = (1 + (b * 7) % 37, 2 + b % 9);
            let s = seed ^ (b as u64) << 20;
            let mut v: Vec<f32> = weights(n * k, s)
                .iter()
                .map(|&x| (x * 4.0) as f32)
                .collect();
            if n > 1 {
                v[k] = v[k + 1]; // a tie in row 1
            }
            let labels = weights(n, s ^ 5)
                .iter()
                .map(|x| ((x.abs() * 1e6) as usize % k) as u32)
                .collect();
            (v, labels, n, k)
        })
        .collect()
}

/// Σ loss·n, Σ correct and Σ n as the trainer summed them: `loss.item()` and
/// `correct_count` read back after every batch.
fn per_step_readback(
    device: &Device,
    batches: &[(Vec<f32>, Vec<u32>, usize, usize)],
) -> (f64, u64, u64) {
    let (mut loss, mut correct, mut seen) = (0.0, 0, 0);
    for (v, y, n, k) in batches {
        let logits = Tensor::from_f32(device, v, &[*n, *k]).unwrap();
        let labels = Labels::new(device, y.clone(), *k).unwrap();
        loss += logits
            .softmax_cross_entropy(&labels)
            .unwrap()
            .item()
            .unwrap()
            * *n as f64;
        correct += logits.correct_count(&labels).unwrap() as u64;
        seen += *n as u64;
    }
    (loss, correct, seen)
}

fn metric_sums(device: &Device, batches: &[(Vec<f32>, Vec<u32>, usize, usize)]) -> (f64, u64, u64) {
    let mut sums = MetricSums::new(device).unwrap();
    for (v, y, n, k) in batches {
        let logits = Tensor::from_f32(device, v, &[*n, *k]).unwrap();
        let labels = Labels::new(device, y.clone(), *k).unwrap();
        let loss = logits.softmax_cross_entropy(&labels).unwrap();
        sums.add(&loss, &logits, &labels).unwrap();
    }
    sums.read().unwrap()
}

#[test]
fn metric_sums_equal_per_step_readbacks_bitwise() {
    let batches = metric_batches(40, 11);
    for device in [Device::Cpu, wgpu()] {
        let want = per_step_readback(&device, &batches);
        let got = metric_sums(&device, &batches);
        assert_eq!(
            got.0.to_bits(),
            want.0.to_bits(),
            "{device:?}: {got:?} vs {want:?}"
        );
        assert_eq!((got.1, got.2), (want.1, want.2), "{device:?}");
    }
}

#[test]
fn metric_sums_drain_a_full_record_array_and_reset() {
    // More batches than the device holds records for: one drain on the way.
    let count = rbd_engine::metrics::RECORDS_ON_DEVICE + 5;
    let batches = metric_batches(count, 3);
    let cpu = metric_sums(&Device::Cpu, &batches);
    let gpu = metric_sums(&wgpu(), &batches);
    assert_eq!((gpu.1, gpu.2), (cpu.1, cpu.2));
    assert!(
        (gpu.0 - cpu.0).abs() <= 1e-5 * cpu.0.abs(),
        "{gpu:?} vs {cpu:?}"
    );
    let mut sums = MetricSums::new(&wgpu()).unwrap();
    let (v, y, n, k) = &batches[0];
    let logits = Tensor::from_f32(&wgpu(), v, &[*n, *k]).unwrap();
    let labels = Labels::new(&wgpu(), y.clone(), *k).unwrap();
    sums.add(
        &logits.softmax_cross_entropy(&labels).unwrap(),
        &logits,
        &labels,
    )
    .unwrap();
    assert_eq!(sums.pending(), 1);
    sums.reset();
    assert_eq!(sums.read().unwrap(), (0.0, 0, 0));
    let wrong = Labels::new(&wgpu(), vec![0; *n + 1], *k).unwrap();
    let e = sums.add(
        &logits.softmax_cross_entropy(&labels).unwrap(),
        &logits,
        &wrong,
    );
    assert!(e.unwrap_err().to_string().contains("MetricSums"));
}

#[test]
fn device_auto_says_why_it_fell_back_to_the_cpu() {
    let (device, why) = Device::open_explained(DeviceChoice::Auto).unwrap();
    match device {
        Device::Cpu => {
            let why = why.expect("a fallback to the cpu comes with its reason");
            assert!(why.contains("device auto") && why.contains("GPU"), "{why}");
        }
        Device::Wgpu(ctx) => {
            assert!(why.is_none(), "{why:?}");
            assert!(!ctx.adapter.is_cpu, "auto never picks a CPU adapter");
        }
    }
}

#[test]
fn batch_norm_eval_matches() {
    let shape = [3usize, 4, 5, 5];
    let x: Vec<f32> = weights(300, 7)
        .iter()
        .map(|&v| v as f32 * 3.0 + 1.0)
        .collect();
    let p = |seed| -> Vec<f32> { weights(4, seed).iter().map(|&v| v as f32).collect() };
    let var: Vec<f32> = p(4).iter().map(|v| v.abs() + 0.5).collect();
    let run = |d: &Device| {
        let t = |v: &[f32], s: &[usize]| Tensor::from_f32(d, v, s).unwrap();
        t(&x, &shape)
            .batch_norm_eval(
                &t(&p(1), &[4]),
                &t(&p(2), &[4]),
                &t(&p(3), &[4]),
                &t(&var, &[4]),
                1e-3,
            )
            .unwrap()
            .to_vec_f32()
            .unwrap()
    };
    rbd_engine::testing::assert_close(
        "batch_norm_eval",
        &run(&wgpu()),
        &run(&Device::Cpu),
        1e-4,
        1e-4,
    );
}

#[test]
fn f16_storage_matmul_matches_cpu_on_rounded_inputs() {
    let gpu = wgpu();
    let ctx = cpu_adapter();
    if !ctx.has_f16() {
        eprintln!(
            "note: {} lacks SHADER_F16; f16 storage not tested",
            ctx.describe()
        );
        return;
    }
    let (m, k, n) = (37, 50, 23);
    let round =
        |v: Vec<f64>| -> Vec<f32> { v.iter().map(|&x| half::f16::from_f64(x).to_f32()).collect() };
    let a = round(weights(m * k, 1));
    let b = round(weights(k * n, 2));
    let want = Tensor::from_f32(&Device::Cpu, &a, &[m, k])
        .unwrap()
        .matmul(&Tensor::from_f32(&Device::Cpu, &b, &[k, n]).unwrap())
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let ah = Tensor::from_f32(&gpu, &a, &[m, k])
        .unwrap()
        .to_f16()
        .unwrap();
    let bh: Vec<half::f16> = b.iter().map(|&x| half::f16::from_f32(x)).collect();
    let bh = Tensor::from_f16(&gpu, &bh, &[k, n]).unwrap();
    assert_eq!(ah.dtype(), rbd_engine::DType::F16);
    assert_eq!(ah.to_vec_f32().unwrap(), a, "f16 round trip");
    let got = ah.matmul(&bh).unwrap();
    assert_eq!(got.dtype(), rbd_engine::DType::F32);
    rbd_engine::testing::assert_close("f16 matmul", &got.to_vec_f32().unwrap(), &want, 1e-4, 1e-4);
    let err = ah.relu().unwrap_err().to_string();
    assert!(err.contains("f16") && err.contains("matmul only"), "{err}");
    assert!(Tensor::from_f32(&Device::Cpu, &a, &[m, k])
        .unwrap()
        .to_f16()
        .is_err());
}
