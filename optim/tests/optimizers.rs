//! Each optimiser's step against its formula computed independently in f64 from the
//! materialised directions of the same generator; convergence on a quadratic;
//! determinism; the WGSL step against the cpu step.

use rbd_engine::random_bases::{
    generate, rbd_scale, Bases, Compartment, Distribution, Generator, Stream,
};
use rbd_engine::testing::{cpu_adapter, weights};
use rbd_engine::{Device, Result, Tensor};
use rbd_optim::{Compartments, FixedProjection, Nes, Optimizer, Oracle, RandomBases, Sgd};

/// L(θ) = ½‖θ − t‖² (gradient θ − t); counts calls.
struct Quadratic {
    target: Vec<f32>,
    device: Device,
    losses: Vec<f64>,
}

impl Quadratic {
    fn new(n: usize, device: Device) -> Self {
        Quadratic {
            target: weights(n, 42).iter().map(|&x| x as f32).collect(),
            device,
            losses: Vec::new(),
        }
    }
}

impl Oracle for Quadratic {
    fn gradient(&mut self, theta: &Tensor) -> Result<Tensor> {
        let t = Tensor::from_f32(&self.device, &self.target, theta.shape())?;
        theta.sub(&t)
    }
    fn loss(&mut self, theta: &Tensor) -> Result<f64> {
        let v = theta.to_vec_f32()?;
        let l = v
            .iter()
            .zip(&self.target)
            .map(|(a, b)| 0.5 * ((a - b) as f64).powi(2))
            .sum();
        self.losses.push(l);
        Ok(l)
    }
    fn tensors(&self) -> Vec<(String, usize, usize)> {
        vec![("all".into(), 0, self.target.len())]
    }
}

fn stream(distribution: Distribution) -> Stream {
    Stream {
        generator: Generator::Philox,
        distribution,
        seed: 7,
    }
}

/// Φ of one compartment as f64 rows of length `len`.
fn phi(s: &Stream, step: u64, c: &Compartment, scale: f32) -> Vec<Vec<f64>> {
    let out = generate(
        &Device::Cpu,
        &Bases::new(*s, step, std::slice::from_ref(c), scale),
    )
    .and_then(|t| t.to_vec_f32())
    .unwrap();
    out.chunks(c.len)
        .map(|r| r.iter().map(|&x| x as f64).collect())
        .collect()
}

fn close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{what}: element {i}: {g} vs {w}"
        );
    }
}

#[test]
fn rbd_step_matches_the_formula_with_compartments() {
    let n = 3001;
    let theta0: Vec<f32> = weights(n, 1).iter().map(|&x| x as f32).collect();
    for (spec, split, dist) in [
        ("1", false, Distribution::Gaussian),
        ("3", false, Distribution::Uniform),
        ("layer", true, Distribution::Bernoulli { p: 0.5 }),
        // The released code's {+0.5, −1.5}: not zero-mean, the same formula.
        ("2", false, Distribution::BernoulliReleased { p: 0.5 }),
    ] {
        let layers = [(0, 1000), (1000, 2001)];
        let comps = spec
            .parse::<Compartments>()
            .unwrap()
            .build(n, &layers, 12, split)
            .unwrap();
        let s = stream(dist);
        let lr = 0.3;
        let mut opt = RandomBases::new(lr, s, comps.clone(), n, false);
        let mut oracle = Quadratic::new(n, Device::Cpu);
        let theta = Tensor::from_f32(&Device::Cpu, &theta0, &[n]).unwrap();
        let step = 5;
        let next = opt
            .step(step, &theta, &mut oracle)
            .unwrap()
            .theta
            .to_vec_f32()
            .unwrap();
        // Formula: per compartment, c = Φ g; θ' = θ − lr Φᵀ c, with the 1/√D scale.
        let g: Vec<f64> = theta0
            .iter()
            .zip(&oracle.target)
            .map(|(a, b)| (a - b) as f64)
            .collect();
        let mut want: Vec<f64> = theta0.iter().map(|&x| x as f64).collect();
        for c in &comps {
            let rows = phi(&s, step, c, rbd_scale(n));
            for row in &rows {
                let coord: f64 = row
                    .iter()
                    .zip(&g[c.offset..c.offset + c.len])
                    .map(|(a, b)| a * b)
                    .sum();
                for (e, &p) in row.iter().enumerate() {
                    want[c.offset + e] -= lr * coord * p;
                }
            }
        }
        close(
            &format!("rbd {spec} split={split} {dist:?}"),
            &next,
            &want,
            1e-5,
        );
    }
}

#[test]
fn fpd_keeps_one_base_and_nes_follows_its_ranks() {
    let n = 500;
    let theta0: Vec<f32> = weights(n, 3).iter().map(|&x| x as f32).collect();
    let s = stream(Distribution::Gaussian);
    let comps = Compartment::whole(n, 6);
    // FPD, two steps: c1 = −lr P g0, θ1 = θ0 + Pᵀc1; c2 = c1 − lr P g1, θ2 = θ0 + Pᵀc2.
    let theta = Tensor::from_f32(&Device::Cpu, &theta0, &[n]).unwrap();
    let mut fpd = FixedProjection::new(0.5, s, comps.clone(), &theta).unwrap();
    let mut oracle = Quadratic::new(n, Device::Cpu);
    let t1 = fpd.step(0, &theta, &mut oracle).unwrap().theta;
    let t2 = fpd
        .step(1, &t1, &mut oracle)
        .unwrap()
        .theta
        .to_vec_f32()
        .unwrap();
    let rows = phi(&s, 0, &comps[0], rbd_scale(n));
    let target: Vec<f64> = oracle.target.iter().map(|&x| x as f64).collect();
    let th0: Vec<f64> = theta0.iter().map(|&x| x as f64).collect();
    let mut c = [0f64; 6];
    let mut th = th0.clone();
    for _ in 0..2 {
        let g: Vec<f64> = th.iter().zip(&target).map(|(a, b)| a - b).collect();
        for (j, row) in rows.iter().enumerate() {
            c[j] -= 0.5 * row.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>();
        }
        th = th0.clone();
        for (j, row) in rows.iter().enumerate() {
            for (e, &p) in row.iter().enumerate() {
                th[e] += c[j] * p;
            }
        }
    }
    close("fpd", &t2, &th, 1e-5);

    // NES: offspring losses from the same ε_i, centred ranks, one update.
    let (lr, sigma, d) = (0.2, 0.01, 8);
    let mut nes = Nes {
        lr,
        sigma,
        population: d,
        stream: s,
        family: rbd_engine::random_bases::BasisFamily::Iid,
    };
    let mut oracle = Quadratic::new(n, Device::Cpu);
    let next = nes
        .step(3, &theta, &mut oracle)
        .unwrap()
        .theta
        .to_vec_f32()
        .unwrap();
    let eps = phi(&s, 3, &Compartment::new(0, 0, n, d), 1.0);
    let losses: Vec<f64> = eps
        .iter()
        .map(|e| {
            (0..n)
                .map(|k| {
                    0.5 * ((theta0[k] as f64 + sigma * e[k]) as f32 as f64 - target[k]).powi(2)
                })
                .sum()
        })
        .collect();
    for (i, (a, b)) in losses.iter().zip(&oracle.losses).enumerate() {
        assert!(
            (a - b).abs() < 1e-4 * (1.0 + a.abs()),
            "offspring {i}: loss {b} vs {a}"
        );
    }
    let ranks = rbd_optim::nes::centred_ranks(&oracle.losses);
    let alpha = lr / (sigma * d as f64 * (n as f64).sqrt());
    let mut want = th0.clone();
    for (r, e) in ranks.iter().zip(&eps) {
        for k in 0..n {
            want[k] += alpha * r * e[k];
        }
    }
    close("nes", &next, &want, 1e-5);
}

#[test]
fn rbd_converges_on_a_quadratic_and_is_deterministic() {
    let n = 2000;
    let run = || {
        let mut opt = RandomBases::new(
            1.0,
            stream(Distribution::Gaussian),
            Compartment::whole(n, 50),
            n,
            false,
        );
        let mut oracle = Quadratic::new(n, Device::Cpu);
        let mut theta = Tensor::zeros(&Device::Cpu, &[n], rbd_engine::DType::F32).unwrap();
        let first = oracle.loss(&theta).unwrap();
        for step in 0..300 {
            theta = opt.step(step, &theta, &mut oracle).unwrap().theta;
        }
        (
            first,
            oracle.loss(&theta).unwrap(),
            theta.to_vec_f32().unwrap(),
        )
    };
    let (first, last, a) = run();
    assert!(
        last < first * 0.05,
        "RBD did not converge: {first} -> {last}"
    );
    let (_, _, b) = run();
    assert_eq!(a, b, "same seed, different parameters");
    // SGD with lr 1 solves the quadratic in one step: a sanity check of the oracle.
    let mut oracle = Quadratic::new(n, Device::Cpu);
    let zero = Tensor::zeros(&Device::Cpu, &[n], rbd_engine::DType::F32).unwrap();
    let t = Sgd { lr: 1.0 }.step(0, &zero, &mut oracle).unwrap().theta;
    assert!(oracle.loss(&t).unwrap() < 1e-10);
}

/// The logged correlation is the cosine of Φc with g (Φ materialised, sums in f64),
/// for lr of either sign, zero or tiny, and logging it changes no parameter bit.
#[test]
fn rbd_correlation_is_the_cosine_of_phi_c_with_the_gradient() {
    let n = 4_001;
    let theta0: Vec<f32> = weights(n, 5).iter().map(|&x| x as f32).collect();
    let comps = Compartments::Even(2).build(n, &[], 30, false).unwrap();
    let s = stream(Distribution::Gaussian);
    let scale = rbd_scale(n);
    let theta = Tensor::from_f32(&Device::Cpu, &theta0, &[n]).unwrap();
    let mut oracle = Quadratic::new(n, Device::Cpu);
    let g: Vec<f64> = oracle
        .gradient(&theta)
        .unwrap()
        .to_vec_f32()
        .unwrap()
        .iter()
        .map(|&x| x as f64)
        .collect();
    // u = Φ(Φᵀg), with the coordinates and directions in f64.
    let mut u = vec![0f64; n];
    for c in &comps {
        let rows = phi(&s, 4, c, scale);
        for row in &rows {
            let coord: f64 = row.iter().zip(&g[c.offset..]).map(|(a, b)| a * b).sum();
            for (ue, r) in u[c.offset..c.offset + c.len].iter_mut().zip(row) {
                *ue += coord * r;
            }
        }
    }
    let dot: f64 = u.iter().zip(&g).map(|(a, b)| a * b).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let want = dot / (norm(&u) * norm(&g));
    assert!(want > 0.05, "cosine {want}");
    for lr in [0.5, -0.5, 0.0, 1e-38] {
        let logged = RandomBases::new(lr, s, comps.clone(), n, true)
            .step(4, &theta, &mut oracle)
            .unwrap();
        let plain = RandomBases::new(lr, s, comps.clone(), n, false)
            .step(4, &theta, &mut oracle)
            .unwrap();
        let corr = logged.correlation.unwrap();
        for c in &corr {
            assert!((c - want).abs() < 1e-5, "lr {lr}: {c} vs {want}");
        }
        let bits = |t: &Tensor| {
            t.to_vec_f32()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        };
        assert!(bits(&logged.theta) == bits(&plain.theta), "lr {lr}");
    }
}

#[test]
fn wgsl_rbd_step_matches_cpu() {
    let n = 70_001;
    let theta0: Vec<f32> = weights(n, 9).iter().map(|&x| x as f32).collect();
    let comps = Compartments::Even(3).build(n, &[], 40, false).unwrap();
    let s = stream(Distribution::Gaussian);
    let mut results = Vec::new();
    for device in [Device::Cpu, Device::Wgpu(cpu_adapter())] {
        let mut opt = RandomBases::new(0.5, s, comps.clone(), n, true);
        let mut oracle = Quadratic::new(n, device.clone());
        let theta = Tensor::from_f32(&device, &theta0, &[n]).unwrap();
        let info = opt.step(11, &theta, &mut oracle).unwrap();
        let corr = info.correlation.unwrap();
        assert!(corr[0] > 0.0 && corr[0] < 1.0, "correlation {corr:?}");
        results.push((info.theta.to_vec_f32().unwrap(), corr[0]));
    }
    let want: Vec<f64> = results[0].0.iter().map(|&x| x as f64).collect();
    close("wgsl vs cpu rbd step", &results[1].0, &want, 1e-4);
    assert!((results[0].1 - results[1].1).abs() < 1e-3);
}

#[test]
fn released_fpd_takes_the_gradient_one_step_behind() {
    // Released variant: g_t at θ_{t−1} (θ_{−1} = θ₀), c_{t+1} = c_t − lr·Pᵀg_t,
    // θ_{t+1} = θ₀ + P·c_{t+1}; three steps against f64.
    let n = 400;
    let theta0: Vec<f32> = weights(n, 5).iter().map(|&x| x as f32).collect();
    let s = stream(Distribution::Gaussian);
    let comps = Compartment::whole(n, 5);
    let theta = Tensor::from_f32(&Device::Cpu, &theta0, &[n]).unwrap();
    let mut fpd = rbd_optim::FixedProjection::with_variant(
        0.5,
        s,
        comps.clone(),
        &theta,
        rbd_optim::FpdVariant::Released,
    )
    .unwrap();
    let mut oracle = Quadratic::new(n, Device::Cpu);
    let mut t = theta.clone();
    for step in 0..3 {
        t = fpd.step(step, &t, &mut oracle).unwrap().theta;
    }
    let rows = phi(&s, 0, &comps[0], rbd_scale(n));
    let target: Vec<f64> = oracle.target.iter().map(|&x| x as f64).collect();
    let th0: Vec<f64> = theta0.iter().map(|&x| x as f64).collect();
    let point = |c: &[f64]| {
        let mut th = th0.clone();
        for (j, row) in rows.iter().enumerate() {
            for (e, &p) in row.iter().enumerate() {
                th[e] += c[j] * p;
            }
        }
        th
    };
    let (mut c, mut c_prev) = (vec![0f64; 5], vec![0f64; 5]);
    for _ in 0..3 {
        let at = point(&c_prev);
        let g: Vec<f64> = at.iter().zip(&target).map(|(a, b)| a - b).collect();
        c_prev = c.clone();
        for (j, row) in rows.iter().enumerate() {
            c[j] -= 0.5 * row.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>();
        }
    }
    let got = t.to_vec_f32().unwrap();
    close("released fpd", &got, &point(&c), 1e-5);
    // The paper's variant differs after the second step.
    let mut paper = rbd_optim::FixedProjection::new(0.5, s, comps, &theta).unwrap();
    let mut oracle = Quadratic::new(n, Device::Cpu);
    let mut p = theta.clone();
    for step in 0..3 {
        p = paper.step(step, &p, &mut oracle).unwrap().theta;
    }
    let differ = p
        .to_vec_f32()
        .unwrap()
        .iter()
        .zip(&got)
        .any(|(a, b)| (a - b).abs() > 1e-4);
    assert!(differ, "the two variants took the same steps");
}

/// Φ of one compartment in the Fastfood family, as f64 rows.
fn phi_fastfood(s: &Stream, step: u64, c: &Compartment, scale: f32) -> Vec<Vec<f64>> {
    use rbd_engine::fastfood::{Fastfood, FastfoodBases};
    let one = [Compartment { offset: 0, ..*c }];
    let b = FastfoodBases {
        stream: s,
        step,
        comps: &one,
        ff: Fastfood::for_dims(c.dims.max(c.first + c.dims)),
        scale,
    };
    let mut out = vec![0f32; c.dims * c.len];
    b.generate_cpu(0, &mut out);
    out.chunks(c.len)
        .map(|r| r.iter().map(|&x| x as f64).collect())
        .collect()
}

#[test]
fn fastfood_rbd_fpd_and_nes_steps_match_their_formulas() {
    use rbd_engine::fastfood::Fastfood;
    use rbd_engine::random_bases::BasisFamily;
    let (n, d) = (1500, 24);
    let theta0: Vec<f32> = weights(n, 3).iter().map(|&x| x as f32).collect();
    let th = Tensor::from_f32(&Device::Cpu, &theta0, &[n]).unwrap();
    let s = stream(Distribution::Gaussian);
    let family = BasisFamily::Fastfood(Fastfood::for_dims(d));
    let g: Vec<f64> = {
        let t = Quadratic::new(n, Device::Cpu);
        theta0
            .iter()
            .zip(&t.target)
            .map(|(&a, &b)| (a - b) as f64)
            .collect()
    };
    let comp = Compartment::new(0, 0, n, d);
    let p = phi_fastfood(&s, 5, &comp, rbd_scale(n));
    let want: Vec<f64> = {
        let c: Vec<f64> = p
            .iter()
            .map(|r| r.iter().zip(&g).map(|(a, b)| a * b).sum())
            .collect();
        (0..n)
            .map(|e| theta0[e] as f64 - 0.3 * (0..d).map(|j| c[j] * p[j][e]).sum::<f64>())
            .collect()
    };
    // RBD at step 5 and FPD (its fixed base is step 0's: the same formula at step 0).
    let mut rbd = RandomBases::new(0.3, s, Compartment::whole(n, d), n, false).with_family(family);
    let got = rbd
        .step(5, &th, &mut Quadratic::new(n, Device::Cpu))
        .unwrap()
        .theta
        .to_vec_f32()
        .unwrap();
    close("fastfood rbd", &got, &want, 1e-5);
    let mut fpd = FixedProjection::new(0.3, s, Compartment::whole(n, d), &th)
        .unwrap()
        .with_family(family);
    let p0 = phi_fastfood(&s, 0, &comp, rbd_scale(n));
    let want0: Vec<f64> = {
        let c: Vec<f64> = p0
            .iter()
            .map(|r| r.iter().zip(&g).map(|(a, b)| a * b).sum())
            .collect();
        (0..n)
            .map(|e| theta0[e] as f64 - 0.3 * (0..d).map(|j| c[j] * p0[j][e]).sum::<f64>())
            .collect()
    };
    let got = fpd
        .step(9, &th, &mut Quadratic::new(n, Device::Cpu))
        .unwrap()
        .theta
        .to_vec_f32()
        .unwrap();
    close("fastfood fpd", &got, &want0, 1e-5);
    // NES: offspring θ + σ·ε_i with ε_i the step's Fastfood columns at scale 1.
    let (lr, sigma) = (0.2, 0.01);
    let mut nes = Nes {
        lr,
        sigma,
        population: d,
        stream: s,
        family,
    };
    let mut oracle = Quadratic::new(n, Device::Cpu);
    let next = nes
        .step(3, &th, &mut oracle)
        .unwrap()
        .theta
        .to_vec_f32()
        .unwrap();
    let eps = phi_fastfood(&s, 3, &comp, 1.0);
    let losses: Vec<f64> = eps
        .iter()
        .map(|e| {
            (0..n)
                .map(|k| {
                    let x = theta0[k] as f64 + sigma * e[k];
                    0.5 * (x - oracle.target[k] as f64).powi(2)
                })
                .sum()
        })
        .collect();
    for (got, want) in oracle.losses.iter().zip(&losses) {
        assert!(
            (got - want).abs() <= 1e-4 * want.abs(),
            "offspring loss {got} vs {want}"
        );
    }
    let ranks = rbd_optim::nes::centred_ranks(&oracle.losses);
    let alpha = lr / (sigma * d as f64 * (n as f64).sqrt());
    let want: Vec<f64> = (0..n)
        .map(|k| theta0[k] as f64 + alpha * (0..d).map(|i| ranks[i] * eps[i][k]).sum::<f64>())
        .collect();
    close("fastfood nes", &next, &want, 1e-5);
}

/// FPD keeps its fixed base in memory on the cpu (generated at the first step, read at
/// every later one): bitwise the steps of an FPD that regenerates it, for both
/// variants, over compartments, and across a resume from saved state (the kept base
/// is not checkpointed: a resumed FPD generates it again). Packed signs are not kept
/// (nothing to gain) and step alike.
#[test]
fn fpd_on_a_kept_base_steps_bitwise_as_one_that_regenerates_it() {
    use rbd_optim::FpdVariant;
    let n = 9_000;
    let theta0: Vec<f32> = weights(n, 9).iter().map(|&x| x as f32).collect();
    let theta = Tensor::from_f32(&Device::Cpu, &theta0, &[n]).unwrap();
    let comps = vec![
        Compartment::new(0, 0, 5_000, 7),
        Compartment::new(1, 5_000, 4_000, 3),
    ];
    let bits = |t: &Tensor| -> Vec<u32> {
        t.to_vec_f32()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect()
    };
    for distribution in [Distribution::Gaussian, Distribution::Rademacher] {
        for variant in [FpdVariant::Paper, FpdVariant::Released] {
            let s = stream(distribution);
            let fpd =
                || FixedProjection::with_variant(0.5, s, comps.clone(), &theta, variant).unwrap();
            let (mut kept, mut regen) = (fpd(), fpd().regenerating());
            let (mut o1, mut o2) = (
                Quadratic::new(n, Device::Cpu),
                Quadratic::new(n, Device::Cpu),
            );
            let (mut a, mut b) = (theta.clone(), theta.clone());
            for step in 0..4 {
                a = kept.step(step, &a, &mut o1).unwrap().theta;
                b = regen.step(step, &b, &mut o2).unwrap().theta;
                assert_eq!(
                    bits(&a),
                    bits(&b),
                    "{distribution:?} {variant:?} step {step}"
                );
            }
            // Kept: 10 directions over 3 element chunks of 4096 (the last padded).
            let want = if distribution == Distribution::Gaussian {
                (7 * 2 + 3) * 4096 * 4
            } else {
                0
            };
            assert_eq!((kept.kept_bytes(), regen.kept_bytes()), (want, 0));
            // Resumed from the kept FPD's state: the base is generated again.
            let mut resumed = fpd();
            resumed.load_state(&kept.state()).unwrap();
            let mut o3 = Quadratic::new(n, Device::Cpu);
            let c = resumed.step(4, &a, &mut o3).unwrap().theta;
            a = kept.step(4, &a, &mut o1).unwrap().theta;
            b = regen.step(4, &b, &mut o2).unwrap().theta;
            assert_eq!(bits(&a), bits(&b), "{distribution:?} {variant:?} step 4");
            assert_eq!(bits(&c), bits(&a), "{distribution:?} {variant:?} resumed");
        }
    }
}
