//! How θ is split into compartments, each with its own random base.

use rbd_engine::random_bases::Compartment;
use rbd_engine::{EngineError, Result};

/// The compartment layout a user asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compartments {
    /// K contiguous, (nearly) even parts; a tensor may be split.
    Even(usize),
    /// One compartment per layer (kernel and bias together).
    PerLayer,
}

impl std::str::FromStr for Compartments {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        if s == "layer" {
            return Ok(Compartments::PerLayer);
        }
        match s.parse::<usize>() {
            Ok(k) if k > 0 => Ok(Compartments::Even(k)),
            _ => Err(EngineError::Invalid(format!(
                "--compartments: '{s}' (expected a positive number or 'layer')"
            ))),
        }
    }
}

impl Compartments {
    /// The compartments over θ of length `num_params` (D) with `layers` = `(offset, len)` of each
    /// layer. With `split_dim` the `d` directions are divided among the compartments
    /// (the first `d mod K` get one more); otherwise each gets all `d`.
    pub fn build(
        &self,
        num_params: usize,
        layers: &[(usize, usize)],
        d: usize,
        split_dim: bool,
    ) -> Result<Vec<Compartment>> {
        let sizes: Vec<usize> = match self {
            Compartments::Even(k) => {
                if *k > num_params {
                    return Err(EngineError::Invalid(format!(
                        "--compartments {k}: more compartments than the {num_params} parameters"
                    )));
                }
                Compartment::even(num_params, *k, d)
                    .iter()
                    .map(|c| c.len)
                    .collect()
            }
            Compartments::PerLayer => layers.iter().map(|&(_, len)| len).collect(),
        };
        let k = sizes.len();
        if split_dim && d < k {
            return Err(EngineError::Invalid(format!(
                "--split-dim: d = {d} directions cannot be split across {k} compartments"
            )));
        }
        let mut comps = Compartment::from_sizes(&sizes, d);
        if split_dim {
            for (i, c) in comps.iter_mut().enumerate() {
                c.dims = d / k + usize::from(i < d % k);
            }
        }
        Ok(comps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbd_engine::random_bases::{is_partition, total_dims};

    #[test]
    fn layouts_partition_theta() {
        let layers = [(0, 10), (10, 5), (15, 7)];
        for (spec, split) in [
            ("1", false),
            ("3", true),
            ("layer", false),
            ("layer", true),
            ("22", false),
        ] {
            let c: Compartments = spec.parse().unwrap();
            let comps = c.build(22, &layers, 6, split).unwrap();
            assert!(is_partition(&comps, 22), "{spec}");
            assert_eq!(
                total_dims(&comps),
                if split { 6 } else { 6 * comps.len() },
                "{spec}"
            );
        }
        let per_layer = Compartments::PerLayer.build(22, &layers, 4, false).unwrap();
        assert_eq!(
            per_layer.iter().map(|c| c.len).collect::<Vec<_>>(),
            vec![10, 5, 7]
        );
        assert!(Compartments::Even(23).build(22, &layers, 4, false).is_err());
        assert!(Compartments::Even(3).build(22, &layers, 2, true).is_err());
        assert!("0".parse::<Compartments>().is_err());
        assert!("x".parse::<Compartments>().is_err());
    }
}
