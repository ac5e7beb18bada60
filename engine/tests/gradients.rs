//! Autodiff gradients of every op against central differences in f64
//! (rbd_engine::gradcheck), on random shapes and values.

use proptest::prelude::*;
use rbd_engine::gradcheck::{gradcheck, strategies, GradcheckConfig};
use rbd_engine::testing::cases;
use rbd_engine::testing::weighted_sum;
use rbd_engine::{Device, Labels, Padding, Tensor};

fn cfg() -> ProptestConfig {
    ProptestConfig::with_cases(cases(12))
}

fn check(f: impl Fn(&[Tensor]) -> rbd_engine::Result<Tensor>, inputs: &[Tensor]) {
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    if let Err(e) = gradcheck(f, inputs, &GradcheckConfig::default()) {
        panic!("input shapes {shapes:?}: {e}");
    }
}

fn shape_and(shape: Vec<usize>) -> impl Strategy<Value = (Tensor, Tensor)> {
    (strategies::tensor(shape.clone()), strategies::tensor(shape))
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn elementwise((a, b) in (strategies::dim(5), strategies::dim(7)).prop_flat_map(|(r, c)| shape_and(vec![r, c]))) {
        check(|v| weighted_sum(&v[0].add(&v[1])?, 1), &[a.clone(), b.clone()]);
        check(|v| weighted_sum(&v[0].sub(&v[1])?, 2), &[a.clone(), b.clone()]);
        check(|v| weighted_sum(&v[0].mul(&v[1])?, 3), &[a.clone(), b.clone()]);
        check(|v| weighted_sum(&v[0].axpy(-0.7, &v[1])?, 4), &[a.clone(), b.clone()]);
        check(|v| weighted_sum(&v[0].scale(1.5)?, 5), std::slice::from_ref(&a));
        check(|v| weighted_sum(&v[0].relu()?, 6), std::slice::from_ref(&a));
        check(|v| v[0].sum(), std::slice::from_ref(&a));
        check(|v| v[0].sum_squares(), std::slice::from_ref(&a));
        check(|v| v[0].dot(&v[1]), &[a.clone(), b.clone()]);
        check(|v| weighted_sum(&v[0].reshape(&[v[0].numel()])?, 7), &[a]);
    }

    #[test]
    fn bias_add_dense_and_channels(
        (x, b, x4, b4) in (strategies::dim(4), strategies::dim(6), strategies::dim(3), strategies::dim(4))
            .prop_flat_map(|(n, f, c, hw)| (
                strategies::tensor(vec![n, f]), strategies::tensor(vec![f]),
                strategies::tensor(vec![n, c, hw, 2]), strategies::tensor(vec![c]),
            ))
    ) {
        check(|v| weighted_sum(&v[0].bias_add(&v[1])?, 8), &[x.clone(), b.clone()]);
        check(|v| weighted_sum(&v[0].bias_add(&v[1])?, 9), &[x4.clone(), b4.clone()]);
        check(|v| weighted_sum(&v[0].bias_relu(&v[1])?, 10), &[x, b]);
        check(|v| weighted_sum(&v[0].bias_relu(&v[1])?, 11), &[x4, b4]);
    }

    #[test]
    fn matmul_all_transposes(
        (m, k, n, ta, tb) in (strategies::dim(6), strategies::dim(7), strategies::dim(5), any::<bool>(), any::<bool>()),
        seed in any::<u64>(),
    ) {
        let sa = if ta { vec![k, m] } else { vec![m, k] };
        let sb = if tb { vec![n, k] } else { vec![k, n] };
        let a = Tensor::from_f64(&rbd_engine::testing::weights(m * k, seed), &sa).unwrap();
        let b = Tensor::from_f64(&rbd_engine::testing::weights(k * n, seed ^ 1), &sb).unwrap();
        check(|v| weighted_sum(&v[0].matmul_t(&v[1], ta, tb)?, 10), &[a, b]);
    }

    #[test]
    fn conv2d_stride_and_padding(
        (n, c, h, w, o, k) in (1usize..3, 1usize..4, 3usize..8, 3usize..8, 1usize..4, prop_oneof![Just(1usize), Just(3)]),
        stride in 1usize..3,
        same in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let padding = if same { Padding::Same } else { Padding::Valid };
        let x = Tensor::from_f64(&rbd_engine::testing::weights(n * c * h * w, seed), &[n, c, h, w]).unwrap();
        let wt = Tensor::from_f64(&rbd_engine::testing::weights(o * c * k * k, seed ^ 2), &[o, c, k, k]).unwrap();
        check(|v| weighted_sum(&v[0].conv2d(&v[1], stride, padding)?, 11), &[x, wt]);
    }

    #[test]
    fn pooling(
        x in (1usize..3, 1usize..4, 2usize..7, 2usize..7)
            .prop_flat_map(|(n, c, h, w)| strategies::distinct_tensor(vec![n, c, h, w], 0.01)),
        g in (1usize..3, 1usize..4, 1usize..5, 1usize..5)
            .prop_flat_map(|(n, c, h, w)| strategies::tensor(vec![n, c, h, w])),
    ) {
        check(|v| weighted_sum(&v[0].maxpool2x2()?, 12), &[x]);
        check(|v| weighted_sum(&v[0].global_avg_pool()?, 13), &[g]);
    }

    /// Distinct inputs (no ties within a window among positive values) and biases that
    /// cut some ReLUs: x lies on a grid of 0.005 and b on 0.0015·j + 0.0007, so x + b
    /// stays at least 2·10⁻⁴ from the kink (15j + 7 is never a multiple of 50).
    #[test]
    fn bias_relu_maxpool(
        (x, b) in (1usize..3, 1usize..4, 2usize..7, 2usize..7)
            .prop_flat_map(|(n, c, h, w)| (
                strategies::distinct_tensor(vec![n, c, h, w], 0.01),
                strategies::distinct_tensor(vec![c], 0.003),
            )),
    ) {
        check(
            |v| {
                let b = v[1].add(&v[1].full_like(v[1].shape(), 0.0007)?)?;
                weighted_sum(&v[0].bias_relu_maxpool2x2(&b)?, 14)
            },
            &[x, b],
        );
    }

    #[test]
    fn batch_norm_training(
        (x, gamma, beta) in (2usize..4, 1usize..4, 1usize..6)
            .prop_flat_map(|(n, c, hw)| (
                strategies::tensor(vec![n, c, hw, 1]), strategies::tensor(vec![c]), strategies::tensor(vec![c]),
            ))
    ) {
        let cfg = GradcheckConfig { atol: 1e-5, rtol: 1e-3, ..Default::default() };
        let shapes = x.shape().to_vec();
        gradcheck(|v| weighted_sum(&v[0].batch_norm_train(&v[1], &v[2], 1e-3)?.0, 14), &[x, gamma, beta], &cfg)
            .unwrap_or_else(|e| panic!("shape {shapes:?}: {e}"));
    }

    #[test]
    fn softmax_cross_entropy(
        (logits, labels) in (strategies::dim(5), 2usize..7).prop_flat_map(|(n, k)| (
            strategies::tensor(vec![n, k]),
            proptest::collection::vec(0..k as u32, n),
        ))
    ) {
        let k = logits.shape()[1];
        let labels = Labels::new(&Device::Cpu, labels, k).unwrap();
        check(|v| v[0].scale(3.0)?.softmax_cross_entropy(&labels), &[logits]);
    }

    /// conv → relu → pool → dense → loss, with random small shapes.
    #[test]
    fn composition(
        (n, c, side, o, f) in (1usize..3, 1usize..3, 4usize..8, 1usize..4, 2usize..5),
        seed in any::<u64>(),
    ) {
        let x = Tensor::from_f64(&rbd_engine::testing::weights(n * c * side * side, seed), &[n, c, side, side]).unwrap();
        let w = Tensor::from_f64(&rbd_engine::testing::weights(o * c * 9, seed ^ 3), &[o, c, 3, 3]).unwrap();
        let b = Tensor::from_f64(&rbd_engine::testing::weights(o, seed ^ 4), &[o]).unwrap();
        let p = (side - 2) / 2;
        let d = Tensor::from_f64(&rbd_engine::testing::weights(o * p * p * f, seed ^ 5), &[o * p * p, f]).unwrap();
        let labels = Labels::new(&Device::Cpu, (0..n as u32).map(|i| i % f as u32).collect(), f).unwrap();
        check(
            |v| v[0].conv2d(&v[1], 1, Padding::Valid)?.bias_add(&v[2])?.relu()?.maxpool2x2()?
                .flatten()?.matmul(&v[3])?.softmax_cross_entropy(&labels),
            &[x, w, b, d],
        );
    }
}

#[test]
fn gradcheck_catches_a_wrong_rule() {
    // mul_scalar's gradient wrt the scalar is ⟨g, x⟩; scaling the output by a constant
    // the check does not know about must fail, so the checker itself can fail.
    let x = Tensor::from_f64(&[0.5, -1.0, 2.0], &[3]).unwrap();
    let err = gradcheck(
        |v| {
            let y = v[0].mul(&v[0])?.sum()?;
            // Detach one factor: autodiff now sees x·c instead of x², half the slope.
            let half = v[0].mul(&v[0].detach())?.sum()?;
            Ok(if rbd_engine::grad_enabled() { half } else { y })
        },
        &[x],
        &GradcheckConfig::default(),
    );
    assert!(err.is_err(), "a wrong gradient passed the check");
}

#[test]
fn eval_mode_records_nothing() {
    let x = Tensor::from_f64(&[1.0, 2.0], &[2]).unwrap().requires_grad();
    let y = rbd_engine::no_grad(|| x.mul(&x).unwrap());
    assert!(!y.tracks_grad());
    let z = x.mul(&x).unwrap();
    assert!(z.tracks_grad());
}
