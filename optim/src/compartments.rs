//! How θ is split into compartments, each with its own random base.

use rbd_engine::random_bases::Compartment;
use rbd_engine::{EngineError, Result};

/// The compartment layout a user asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compartments {
    /// K contiguous, (nearly) even parts; a tensor may be split.
    Even(usize),
    /// One compartment per layer (kernel and bias together).
    PerLayer,
    /// One compartment per parameter tensor, a tensor larger than the cap cut into
    /// ⌈len/cap⌉ nearly even pieces (the released code's `weights_per_compartment`).
    Capped(usize),
}

impl std::fmt::Display for Compartments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compartments::Even(k) => write!(f, "{k}"),
            Compartments::PerLayer => f.write_str("layer"),
            Compartments::Capped(cap) => write!(f, "cap:{cap}"),
        }
    }
}

impl std::str::FromStr for Compartments {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text.trim() {
            "layer" => Ok(Compartments::PerLayer),
            t if t.starts_with("cap:") => match t["cap:".len()..].parse::<usize>() {
                Ok(cap) if cap > 0 => Ok(Compartments::Capped(cap)),
                _ => Err(format!(
                    "'{text}': cap:N needs a positive number of weights per compartment"
                )),
            },
            t => match t.parse::<usize>() {
                Ok(k) if k > 0 => Ok(Compartments::Even(k)),
                _ => Err(format!(
                    "'{text}' is neither a positive number of compartments, 'layer', nor cap:N"
                )),
            },
        }
    }
}
rbd_engine::serde_as_text!(Compartments);

impl Compartments {
    /// How many compartments the layout makes of a model with these `layers` and
    /// parameter `tensors` (each `(offset, len)`).
    pub fn count(&self, layers: &[(usize, usize)], tensors: &[(usize, usize)]) -> usize {
        match self {
            Compartments::Even(k) => *k,
            Compartments::PerLayer => layers.len(),
            Compartments::Capped(cap) => tensors.iter().map(|&(_, len)| len.div_ceil(*cap)).sum(),
        }
    }

    /// The compartments over θ of length `num_params` (D). `ranges` are the
    /// `(offset, len)` of each layer for [`Compartments::PerLayer`], of each parameter
    /// tensor for [`Compartments::Capped`]. With `split_dim` the `d` directions are
    /// divided among the compartments (the first `d mod K` get one more); otherwise
    /// each gets all `d`.
    pub fn build(
        &self,
        num_params: usize,
        ranges: &[(usize, usize)],
        d: usize,
        split_dim: bool,
    ) -> Result<Vec<Compartment>> {
        let sizes: Vec<usize> = match self {
            Compartments::Even(k) => {
                if *k > num_params {
                    return Err(EngineError::Invalid(format!(
                        "compartments: {k} is more compartments than the {num_params} parameters"
                    )));
                }
                Compartment::even(num_params, *k, d)
                    .iter()
                    .map(|c| c.len)
                    .collect()
            }
            Compartments::PerLayer => ranges.iter().map(|&(_, len)| len).collect(),
            Compartments::Capped(cap) => {
                if *cap == 0 {
                    return Err(EngineError::Invalid(
                        "compartments: the cap must be at least 1 weight".into(),
                    ));
                }
                ranges
                    .iter()
                    .flat_map(|&(_, len)| {
                        let pieces = len.div_ceil(*cap).max(1);
                        (0..pieces).map(move |i| len / pieces + usize::from(i < len % pieces))
                    })
                    .collect()
            }
        };
        let k = sizes.len();
        if split_dim && d < k {
            return Err(EngineError::Invalid(format!(
                "split dim: d = {d} directions cannot be split across {k} compartments"
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
        // Capped: per tensor, big tensors in pieces of at most the cap.
        let tensors = [(0, 10), (10, 5), (15, 7)];
        let capped = Compartments::Capped(4)
            .build(22, &tensors, 2, false)
            .unwrap();
        assert_eq!(
            capped.iter().map(|c| c.len).collect::<Vec<_>>(),
            vec![4, 3, 3, 3, 2, 4, 3]
        );
        assert!(is_partition(&capped, 22));
        assert!(capped.iter().all(|c| c.len <= 4));
        assert!(Compartments::Capped(0)
            .build(22, &tensors, 2, false)
            .is_err());
        assert!("0".parse::<Compartments>().is_err());
        assert!("x".parse::<Compartments>().is_err());
        assert!("-3".parse::<Compartments>().is_err());
        assert!("cap:0".parse::<Compartments>().is_err());
        for c in [
            Compartments::Even(7),
            Compartments::PerLayer,
            Compartments::Capped(5000),
        ] {
            assert_eq!(c.to_string().parse::<Compartments>(), Ok(c));
        }
        // FC on MNIST: a 100,352-weight kernel in 3 pieces of at most 50,000, and three
        // tensors whole.
        let fc = [(0, 100_352), (100_352, 128), (100_480, 1280), (101_760, 10)];
        assert_eq!(Compartments::Capped(50_000).count(&[], &fc), 6);
    }
}
