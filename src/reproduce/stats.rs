//! The statistics the results quote: mean and sample standard deviation over seeds, and
//! Welch's t-test between two cells given as mean, sample std and seed count (the same
//! test as `scripts/welch.py`, here with the t distribution's exact tail).

/// Mean and sample standard deviation (0 for one value); `None` for no values.
pub fn mean_std(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((mean, var.sqrt()))
}

/// A cell: mean, sample standard deviation and the number of seeds behind them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
    /// Seeds.
    pub n: f64,
}

/// Welch's test of two cells: (t, degrees of freedom, two-sided p). `None` where a cell
/// has fewer than 2 seeds or both standard deviations are 0 (no spread to test against).
pub fn welch(a: Cell, b: Cell) -> Option<(f64, f64, f64)> {
    if a.n < 2.0 || b.n < 2.0 {
        return None;
    }
    let (va, vb) = (a.std * a.std / a.n, b.std * b.std / b.n);
    if va + vb <= 0.0 {
        return None;
    }
    let t = (a.mean - b.mean) / (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va * va / (a.n - 1.0) + vb * vb / (b.n - 1.0));
    Some((t, df, two_sided_p(t, df)))
}

/// P(|T| > |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2).
pub fn two_sided_p(t: f64, df: f64) -> f64 {
    incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        sum += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The regularised incomplete beta function I_x(a, b), by its continued fraction
/// (Lentz's method), on the side where it converges fast.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * continued_fraction(a, b, x) / a
    } else {
        1.0 - front * continued_fraction(b, a, 1.0 - x) / b
    }
}

fn continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..500 {
        let m = m as f64;
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + numerator / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_standard_deviation() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]), Some((5.0, 0.0)));
        assert_eq!(mean_std(&[]), None);
    }

    #[test]
    fn ln_gamma_matches_factorials_and_the_half() {
        for (x, want) in [(1.0, 1.0f64), (2.0, 1.0), (5.0, 24.0), (10.0, 362_880.0)] {
            assert!((ln_gamma(x) - want.ln()).abs() < 1e-12, "Γ({x})");
        }
        let sqrt_pi = std::f64::consts::PI.sqrt();
        assert!((ln_gamma(0.5) - sqrt_pi.ln()).abs() < 1e-12);
    }

    #[test]
    fn t_tails_match_tables() {
        // df = 1 is Cauchy: P(|T| > 1) = 1/2.
        assert!((two_sided_p(1.0, 1.0) - 0.5).abs() < 1e-12);
        // df = 2 has a closed form: P(|T| > t) = 1 − t/√(2 + t²).
        for t in [0.3f64, 1.0, 2.5, 7.0] {
            let want = 1.0 - t / (2.0 + t * t).sqrt();
            assert!((two_sided_p(t, 2.0) - want).abs() < 1e-12, "t = {t}");
        }
        // The 97.5% quantile of t with 10 degrees of freedom is 2.228139.
        assert!((two_sided_p(2.228139, 10.0) - 0.05).abs() < 1e-6);
        assert_eq!(two_sided_p(0.0, 4.0), 1.0);
    }

    #[test]
    fn welch_agrees_with_the_script_the_findings_quoted() {
        // `python3 scripts/welch.py 44.07 3.19 3 37 4 3` -> t = 2.39, df = 3.81, p = 0.078
        let a = Cell {
            mean: 44.07,
            std: 3.19,
            n: 3.0,
        };
        let b = Cell {
            mean: 37.0,
            std: 4.0,
            n: 3.0,
        };
        let (t, df, p) = welch(a, b).unwrap();
        assert_eq!(format!("{t:.2} {df:.2} {p:.3}"), "2.39 3.81 0.078");
        // `91.00 0.29 3 91.95 0.18 3` -> p = 0.013
        let a = Cell {
            mean: 91.0,
            std: 0.29,
            n: 3.0,
        };
        let b = Cell {
            mean: 91.95,
            std: 0.18,
            n: 3.0,
        };
        assert_eq!(format!("{:.3}", welch(a, b).unwrap().2), "0.013");
        // One seed has no spread to test.
        assert!(welch(Cell { n: 1.0, ..a }, b).is_none());
    }
}
