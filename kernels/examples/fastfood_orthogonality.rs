//! How the Fastfood directions compare with the i.i.d. Gaussian ones (B.8- and
//! B.7-style, on the op alone):
//!
//! 1. cosine between two directions of one step against D (directions 2i and 2i + 1
//!    of step i, 100 steps): mean and std of cos, mean |cos|, and the i.i.d. theory
//!    E|cos| = √(2/(πD));
//! 2. the correlation cos(P Pᵀ g, g) of the RBD update with a fixed vector g against d
//!    at the CIFAR-10 CNN's D (mean over 20 steps), for a g with the CNN's layer sizes
//!    and per-layer scales spread over two decades (a gradient's typical shape).
//!
//! `cargo run --release -p rbd-kernels --example fastfood_orthogonality`

use rbd_kernels::fastfood::{Fastfood, FastfoodBases};
use rbd_kernels::random_bases::{generate_cpu, project_cpu, rbd_scale, Bases, Compartment, Stream};

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += (x as f64).powi(2);
        bb += (y as f64).powi(2);
    }
    ab / (aa.sqrt() * bb.sqrt())
}

fn stats(xs: &[f64]) -> (f64, f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt();
    (m, sd, xs.iter().map(|x| x.abs()).sum::<f64>() / n)
}

/// Directions `j0` and `j0 + 1` of `step` over `len` parameters.
fn pair(s: &Stream, family: Option<Fastfood>, step: u64, len: usize, j0: usize) -> Vec<Vec<f32>> {
    let comp = Compartment::new(0, 0, len, 2).window(j0, 2);
    let mut out = vec![0f32; 2 * len];
    match family {
        None => generate_cpu(&Bases::new(*s, step, &[comp], 1.0), &mut out),
        Some(ff) => FastfoodBases {
            stream: s,
            step,
            comps: &[comp],
            ff,
            scale: 1.0,
        }
        .generate_cpu(0, &mut out),
    }
    vec![out[..len].to_vec(), out[len..].to_vec()]
}

fn main() {
    let s = Stream::new(2020);
    println!("1. cosine of two directions of one step against D (100 steps; iid theory E|cos| = sqrt(2/(pi D)))");
    println!(
        "{:>9} {:<16} {:>11} {:>10} {:>10} {:>10}",
        "D", "bases", "mean cos", "std cos", "mean |cos|", "theory"
    );
    for e in 2..=6 {
        let len = 10usize.pow(e);
        for (name, family, j0) in [
            ("iid", None, 0),
            ("fastfood L=16", Some(Fastfood::for_dims(10)), 0),
            ("fastfood L=256", Some(Fastfood::for_dims(250)), 0),
            ("fastfood L=256*", Some(Fastfood::for_dims(250)), 255),
        ] {
            let cos: Vec<f64> = (0..100)
                .map(|step| {
                    let j = if j0 == 0 {
                        2 * (step as usize % 100) % 250
                    } else {
                        j0
                    };
                    let v = pair(&s, family, step, len, j);
                    cosine(&v[0], &v[1])
                })
                .collect();
            let (m, sd, ma) = stats(&cos);
            println!(
                "{len:>9} {name:<16} {m:>11.2e} {sd:>10.2e} {ma:>10.2e} {:>10.2e}",
                (2.0 / (std::f64::consts::PI * len as f64)).sqrt()
            );
        }
    }
    println!("   (* = columns 255 and 256: the last of group 0 and the first of group 1)");

    // The CIFAR-10 CNN's tensor sizes, each scaled by 10^(-2·k/(K−1)).
    let sizes = [
        864usize, 32, 9_216, 32, 18_432, 64, 36_864, 64, 57_344, 128, 1_280, 10,
    ];
    let n: usize = sizes.iter().sum();
    let mut g = Vec::with_capacity(n);
    let mut x = 0x9E37_79B9u32;
    for (k, &len) in sizes.iter().enumerate() {
        let scale = 10f32.powf(-2.0 * k as f32 / (sizes.len() - 1) as f32);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            g.push(scale * ((x >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0));
        }
    }
    println!("\n2. cos(P P^T g, g) against d, D = {n} (20 steps; iid theory for isotropic g ~ sqrt(d/(d + D)))");
    println!(
        "{:>6} {:<10} {:>10} {:>10} {:>10}",
        "d", "bases", "mean", "std", "theory"
    );
    for d in [10usize, 100, 1_000, 10_000] {
        for fast in [false, true] {
            let comps = Compartment::whole(n, d);
            let ff = Fastfood::for_dims(d);
            let scale = rbd_scale(n);
            let cos: Vec<f64> = (0..20)
                .map(|step| {
                    let mut c = vec![0f32; d];
                    let mut u = vec![0f32; n];
                    let zeros = vec![0f32; n];
                    if fast {
                        let b = FastfoodBases {
                            stream: &s,
                            step,
                            comps: &comps,
                            ff,
                            scale,
                        };
                        b.project_cpu(&g, &mut c);
                        b.expand_cpu(&c, 1.0, &zeros, &mut u);
                    } else {
                        let b = Bases::new(s, step, &comps, scale);
                        project_cpu(&b, &g, &mut c);
                        rbd_kernels::random_bases::expand_cpu(&b, &c, 1.0, &zeros, &mut u);
                    }
                    cosine(&u, &g)
                })
                .collect();
            let (m, sd, _) = stats(&cos);
            println!(
                "{d:>6} {:<10} {m:>10.4} {sd:>10.4} {:>10.4}",
                if fast { "fastfood" } else { "iid" },
                (d as f64 / (d + n) as f64).sqrt()
            );
        }
    }
}
