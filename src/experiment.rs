//! `rbd experiment orthogonality`: Figure B.8 of the supplementary material. For each
//! dimension 10^1 … 10^max, the cosine similarity of `pairs` pairs of random
//! directions drawn through the same generator as RBD (pair i uses directions 2i and
//! 2i+1 of one step); mean and standard deviation to CSV and an SVG plot.

use crate::cli::OrthogonalityArgs;
use anyhow::{bail, Context, Result};
use rbd::train::plot;
use rbd_kernels::random_bases::{generate_cpu, Compartment, Generator, Stream};
use rbd_optim::rbd::cosine;
use std::fmt::Write as _;

/// Runs the experiment.
pub fn orthogonality(args: &OrthogonalityArgs) -> Result<()> {
    if args.max_exponent == 0 || args.max_exponent > 9 {
        bail!("--max-exponent must be in 1..=9 (10^9 floats need 8 GB per pair)");
    }
    if args.pairs < 2 {
        bail!("--pairs must be at least 2");
    }
    let distribution = rbd::train::optimizers::distribution(args.distribution, 0.5);
    let stream = Stream {
        generator: Generator::default(),
        distribution,
        seed: args.seed,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut csv = String::from(
        "dimension,pairs,mean_cosine,std_cosine,mean_abs_cosine,expected_abs_cosine\n",
    );
    let mut mean_pts = Vec::new();
    let mut abs_pts = Vec::new();
    println!(
        "{:>12} {:>12} {:>12} {:>14} {:>16}",
        "dimension", "mean cos", "std cos", "mean |cos|", "√(2/(πD))"
    );
    for e in 1..=args.max_exponent {
        let dim = 10usize.pow(e);
        let comp = Compartment::new(0, 0, dim, 2);
        let mut buf = vec![0f32; 2 * dim];
        let mut cos = Vec::with_capacity(args.pairs);
        for i in 0..args.pairs {
            generate_cpu(&stream, 0, &comp.window(2 * i, 2), 1.0, &mut buf);
            cos.push(cosine(&buf[..dim], &buf[dim..]));
        }
        let n = cos.len() as f64;
        let mean = cos.iter().sum::<f64>() / n;
        let std = (cos.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / n).sqrt();
        let mean_abs = cos.iter().map(|c| c.abs()).sum::<f64>() / n;
        let expected = (2.0 / (std::f64::consts::PI * dim as f64)).sqrt();
        println!("{dim:>12} {mean:>12.5} {std:>12.5} {mean_abs:>14.5} {expected:>16.5}");
        writeln!(
            csv,
            "{dim},{},{mean},{std},{mean_abs},{expected}",
            args.pairs
        )?;
        mean_pts.push((dim as f64, mean));
        abs_pts.push((dim as f64, mean_abs));
    }
    std::fs::write(args.out.join("orthogonality.csv"), csv)?;
    plot::line_chart(
        &args.out.join("orthogonality.svg"),
        "cosine similarity of random direction pairs",
        "dimension",
        "cosine similarity",
        &[
            plot::Series {
                label: "mean cos".into(),
                points: mean_pts,
            },
            plot::Series {
                label: "mean |cos|".into(),
                points: abs_pts,
            },
        ],
        true,
    )?;
    println!(
        "wrote {}/orthogonality.csv and orthogonality.svg",
        args.out.display()
    );
    Ok(())
}
