//! Learning rates as users write them (`2^-6`, `0.015625`, `1e-2`) and the presets of
//! the paper (see `../shared/paper/notes.md`, "Learning rates").

/// Parses `2^-6`, `2^3`, or a positive decimal.
pub fn parse_lr(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = if let Some(exp) = t.strip_prefix("2^") {
        let e: f64 = exp
            .trim_matches(|c| c == '(' || c == ')')
            .parse()
            .map_err(|_| format!("--lr: '{s}' is not of the form 2^K (K a number)"))?;
        2f64.powf(e)
    } else {
        t.parse::<f64>()
            .map_err(|_| format!("--lr: '{s}' is neither a number nor of the form 2^K"))?
    };
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("--lr: '{s}' must be a positive finite number"));
    }
    Ok(v)
}

/// Writes `lr` as `2^K` when it is a power of two, else as a decimal.
pub fn format_lr(lr: f64) -> String {
    let e = lr.log2();
    if (e - e.round()).abs() < 1e-12 {
        format!("2^{}", e.round() as i64)
    } else {
        format!("{lr}")
    }
}

/// Which published RBD learning rates to use where the paper's Table 4 and the
/// released configuration differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresetSource {
    /// Table 4 of the paper's supplementary material.
    Paper,
    /// The authors' released configuration.
    Released,
}

/// The preset learning rate (as a power of two) and where it comes from, for a model,
/// dataset, optimizer and direction distribution; `None` where nothing is published.
pub fn preset_exponent(
    model: &str,
    dataset: &str,
    optimizer: &str,
    distribution: &str,
    source: PresetSource,
) -> Option<(i32, &'static str)> {
    // (rbd released, rbd table 4, fpd table 4, sgd = table 4 + 5)
    let row: (i32, i32, i32, i32) = match (model, dataset) {
        ("fc", "mnist") => (0, 1, -1, -3),
        ("fc", "fmnist") => (-1, -1, -1, -2),
        ("fc", "cifar10") => (-2, -5, -5, -7),
        ("cnn", "mnist") => (-4, -1, -3, -5),
        ("cnn", "fmnist") => (-3, -3, -1, -4),
        ("cnn", "cifar10") => (-3, -3, -1, -6),
        ("resnet8", "cifar10") | ("resnet32", "cifar10") => (3, 3, 3, -3),
        _ => return None,
    };
    let rbd = match source {
        PresetSource::Paper => (row.1, "Table 4 (RBD)"),
        PresetSource::Released => (row.0, "released configuration (RBD)"),
    };
    match optimizer {
        "sgd" => Some((row.3, "Table 4 SGD column × batch 32")),
        "fpd" => Some((row.2, "Table 4 (FPD)")),
        "rbd" | "rbd-materialized" => match (model, dataset, distribution) {
            // Figure B.15 (CIFAR-10 CNN): Normal 2^-3, Bernoulli 2^-1, Uniform 2^1.
            ("cnn", "cifar10", "uniform") => Some((1, "Figure B.15 (uniform)")),
            ("cnn", "cifar10", "bernoulli") => Some((-1, "Figure B.15 (Bernoulli)")),
            _ => Some(rbd),
        },
        // The paper publishes no NES learning rates: start from RBD's and tune.
        "nes" => Some((rbd.0, "no published NES rate: RBD's preset, tune it")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_powers_and_decimals() {
        assert_eq!(parse_lr("2^-6").unwrap(), 1.0 / 64.0);
        assert_eq!(parse_lr("2^3").unwrap(), 8.0);
        assert_eq!(parse_lr("0.5").unwrap(), 0.5);
        assert_eq!(parse_lr("1e-2").unwrap(), 0.01);
        assert!(parse_lr("-0.1").unwrap_err().contains("positive"));
        assert!(parse_lr("2^x").unwrap_err().contains("2^K"));
        assert!(parse_lr("abc").is_err());
        assert!(parse_lr("0").is_err());
    }

    #[test]
    fn formats_powers_of_two() {
        assert_eq!(format_lr(0.125), "2^-3");
        assert_eq!(format_lr(0.1), "0.1");
    }

    #[test]
    fn presets_match_the_notes() {
        let p = |m, d, o| {
            preset_exponent(m, d, o, "gaussian", PresetSource::Paper)
                .unwrap()
                .0
        };
        assert_eq!(p("cnn", "cifar10", "sgd"), -6);
        assert_eq!(p("fc", "mnist", "sgd"), -3);
        assert_eq!(p("cnn", "mnist", "rbd"), -1);
        assert_eq!(p("cnn", "fmnist", "fpd"), -1);
        let r = preset_exponent("cnn", "mnist", "rbd", "gaussian", PresetSource::Released);
        assert_eq!(r.unwrap().0, -4);
        assert!(preset_exponent("fc", "svhn", "sgd", "gaussian", PresetSource::Paper).is_none());
    }
}
