//! Figure B.8: how orthogonal random directions are, against their dimension. Two
//! estimators: independent pairs (mean and std of cos) and the authors' released code's
//! (N vectors, N − 1 consecutive pairs, mean and std of |cos|). Directions come from
//! the same stream as RBD's (one step, consecutive direction indices).

use crate::train::plot::{self, Band, Figure, Panel, OKABE_ITO};
use anyhow::{bail, Result};
use rbd_kernels::random_bases::{generate_cpu, Bases, Compartment, Generator, Stream};
use rbd_optim::rbd::cosine;
use std::fmt::Write as _;
use std::path::Path;

/// One dimension's statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// The dimension D.
    pub dim: usize,
    /// Independent pairs: mean of cos.
    pub pairs_mean: f64,
    /// Independent pairs: std of cos.
    pub pairs_std: f64,
    /// Consecutive pairs (released code): mean of |cos|.
    pub released_mean_abs: f64,
    /// Consecutive pairs (released code): std of |cos|.
    pub released_std_abs: f64,
    /// Theory: E|cos| = √(2 / (π D)).
    pub expected_abs: f64,
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    (
        m,
        (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// The most vectors the experiment compares (the released code: 100).
pub const MAX_VECTORS: usize = 1_000_000;

/// Checks the experiment's size before anything is allocated.
pub fn check(vectors: usize, max_exponent: u32) -> Result<()> {
    if max_exponent == 0 || max_exponent > 9 {
        bail!("max_exponent must be in 1..=9 (10^9 floats need 8 GB per pair)");
    }
    if !(2..=MAX_VECTORS).contains(&vectors) {
        bail!("vectors must be 2 to {MAX_VECTORS}, got {vectors}");
    }
    Ok(())
}

/// Computes rows for D = 10^1 … 10^`max_exponent` with `vectors` vectors (pairs:
/// `vectors` independent pairs; released: `vectors` − 1 consecutive pairs).
pub fn compute(stream: &Stream, vectors: usize, max_exponent: u32) -> Result<Vec<Row>> {
    check(vectors, max_exponent)?;
    let mut rows = Vec::new();
    for e in 1..=max_exponent {
        let dim = 10usize.pow(e);
        let comp = Compartment::new(0, 0, dim, 2 * vectors);
        let mut a = vec![0f32; dim];
        let mut b = vec![0f32; dim];
        let mut cos = Vec::with_capacity(vectors);
        for i in 0..vectors {
            generate_cpu(
                &Bases::new(*stream, 0, &[comp.window(2 * i, 1)], 1.0),
                &mut a,
            );
            generate_cpu(
                &Bases::new(*stream, 0, &[comp.window(2 * i + 1, 1)], 1.0),
                &mut b,
            );
            cos.push(cosine(&a, &b));
        }
        // The released code's estimator: vectors 0..N of one draw, consecutive pairs.
        let mut consecutive = Vec::with_capacity(vectors - 1);
        generate_cpu(&Bases::new(*stream, 1, &[comp.window(0, 1)], 1.0), &mut a);
        for i in 1..vectors {
            generate_cpu(&Bases::new(*stream, 1, &[comp.window(i, 1)], 1.0), &mut b);
            consecutive.push(cosine(&a, &b).abs());
            std::mem::swap(&mut a, &mut b);
        }
        let (pairs_mean, pairs_std) = mean_std(&cos);
        let (released_mean_abs, released_std_abs) = mean_std(&consecutive);
        rows.push(Row {
            dim,
            pairs_mean,
            pairs_std,
            released_mean_abs,
            released_std_abs,
            expected_abs: (2.0 / (std::f64::consts::PI * dim as f64)).sqrt(),
        });
    }
    Ok(rows)
}

/// The default stream of the experiment (Threefry, Gaussian).
pub fn stream(distribution: rbd_kernels::random_bases::Distribution, seed: u64) -> Stream {
    Stream {
        generator: Generator::default(),
        distribution,
        seed,
    }
}

/// Writes `orthogonality.csv` and `orthogonality.svg` into `out`.
pub fn write(out: &Path, rows: &[Row], vectors: usize) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let mut csv = String::from("dimension,pairs,pairs_mean_cos,pairs_std_cos,consecutive_pairs,released_mean_abs_cos,released_std_abs_cos,expected_abs_cos\n");
    for r in rows {
        writeln!(
            csv,
            "{},{vectors},{},{},{},{},{},{}",
            r.dim,
            r.pairs_mean,
            r.pairs_std,
            vectors - 1,
            r.released_mean_abs,
            r.released_std_abs,
            r.expected_abs
        )?;
    }
    crate::train::run_dir::write_atomic(&out.join("orthogonality.csv"), csv.as_bytes())?;
    let band = |label: &str, colour: usize, f: &dyn Fn(&Row) -> (f64, f64)| Band {
        label: label.into(),
        points: rows
            .iter()
            .map(|r| {
                let (m, s) = f(r);
                (r.dim as f64, m, m - s, m + s)
            })
            .collect(),
        colour: OKABE_ITO[colour],
    };
    plot::write(
        &out.join("orthogonality.svg"),
        &Figure {
            title: "Figure B.8: cosine similarity of random directions against dimension".into(),
            subtitle: format!(
                "{vectors} Gaussian vectors per dimension; bars: ± std over the pairs"
            ),
            panels: vec![Panel {
                x_label: "dimension D (log scale)".into(),
                y_label: "cosine similarity".into(),
                log_x: true,
                bands: vec![
                    band("independent pairs: mean cos", 5, &|r| {
                        (r.pairs_mean, r.pairs_std)
                    }),
                    band("released code: mean |cos|, consecutive pairs", 6, &|r| {
                        (r.released_mean_abs, r.released_std_abs)
                    }),
                    band("theory: √(2/(πD))", 0, &|r| (r.expected_abs, 0.0)),
                ],
                ..Panel::default()
            }],
            columns: 1,
            notes: Vec::new(),
        },
    )
}

/// The table printed to the terminal.
pub fn table(rows: &[Row]) -> String {
    let mut t = format!(
        "{:>12} {:>12} {:>12} {:>16} {:>16} {:>12}\n",
        "dimension", "mean cos", "std cos", "mean |cos| (rel)", "std |cos| (rel)", "√(2/(πD))"
    );
    for r in rows {
        let _ = writeln!(
            t,
            "{:>12} {:>12.5} {:>12.5} {:>16.5} {:>16.5} {:>12.5}",
            r.dim,
            r.pairs_mean,
            r.pairs_std,
            r.released_mean_abs,
            r.released_std_abs,
            r.expected_abs
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbd_kernels::random_bases::Distribution;

    #[test]
    fn cosines_shrink_like_theory() {
        let rows = compute(&stream(Distribution::Gaussian, 0), 100, 5).unwrap();
        for r in &rows {
            // Mean |cos| of 99 pairs within 30% of √(2/(πD)); mean cos near 0.
            let rel = (r.released_mean_abs - r.expected_abs).abs() / r.expected_abs;
            assert!(rel < 0.3, "D = {}: {r:?}", r.dim);
            assert!(
                r.pairs_mean.abs() < 4.0 * r.pairs_std / 10.0 + 1e-9,
                "{r:?}"
            );
        }
        assert!(rows[4].released_mean_abs < rows[0].released_mean_abs / 50.0);
    }
}
