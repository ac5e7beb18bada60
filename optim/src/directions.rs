//! How the random directions of RBD, FPD and NES are drawn: d per compartment, the
//! compartments of θ, the distribution of their entries, the counter-based generator
//! of the stream (the seed is the run's) and the family of bases (i.i.d. or Fastfood).

use crate::config::{count, defaults, ConfigError};
use crate::{Compartments, OptimizerKind, Target};
use rbd_engine::random_bases::{
    BasisFamily, Compartment, DistributionKind, Fastfood, Generator, Stream,
};
use rbd_engine::Result;
use serde::{Deserialize, Serialize};

rbd_engine::named_enum!(
    /// The family of random bases: how a step's d directions are drawn.
    pub BasesKind, "bases" {
        /// Every direction entry an independent draw (the paper's random bases).
        Iid = "iid",
        /// Columns of stacked Fastfood blocks H G Π H B (Le et al. 2013), applied in
        /// O(D log d) (`docs/random-directions.md` §11).
        Fastfood = "fastfood",
    }
);

impl BasesKind {
    /// The family, in words (for logs).
    pub fn describe(self) -> &'static str {
        match self {
            BasesKind::Iid => "iid (every direction entry an independent draw, the paper's)",
            BasesKind::Fastfood => {
                "fastfood (columns of stacked H G Pi H B blocks, L = next power of two >= d)"
            }
        }
    }

    fn is_iid(&self) -> bool {
        *self == BasesKind::Iid
    }
}

/// The direction settings shared by every optimiser that draws directions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct DirectionsConfig {
    /// Random-bases dimension d (directions per compartment unless --split-dim; NES:
    /// the population).
    #[arg(long, default_value = "250", allow_hyphen_values = true, value_parser = count)]
    pub dim: usize,
    /// Compartments: a number K of even parts, `layer` (one per layer), or `cap:N` (one
    /// per tensor, tensors over N weights cut into pieces of at most N: the released
    /// code's even compartments).
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    pub compartments: Compartments,
    /// Split d across the compartments instead of giving each the full d.
    #[arg(long)]
    pub split_dim: bool,
    /// Direction distribution: gaussian, uniform, bernoulli (zero-mean ±1 at p = 0.5),
    /// bernoulli-released (the released code's: +0.5 or −1.5 at p = 0.5) or rademacher
    /// (packed signs: ±1 from single bits, the fastest; NES perturbations too).
    #[arg(long, default_value = "gaussian")]
    pub distribution: DistributionKind,
    /// Bernoulli probability p of the high value (either Bernoulli).
    #[arg(long, default_value = "0.5", allow_hyphen_values = true)]
    pub bernoulli_p: f64,
    /// Counter-based generator: threefry (the default, which every committed run used) or
    /// philox; which is faster depends on the machine (`rbd bench rbd` measures both).
    #[arg(long, default_value = "threefry")]
    pub generator: Generator,
    /// Random bases: iid (every entry drawn, the paper's) or fastfood (columns of
    /// structured Walsh–Hadamard blocks, O(D log d) a step). Left out of `config.json`
    /// at its default, so older run ids stay valid.
    #[arg(long, default_value = "iid")]
    #[serde(skip_serializing_if = "BasesKind::is_iid")]
    pub bases: BasesKind,
}

impl Default for DirectionsConfig {
    fn default() -> Self {
        defaults()
    }
}

impl DirectionsConfig {
    /// The direction stream of a run seeded `seed`.
    pub fn stream(&self, seed: u64) -> Stream {
        Stream {
            generator: self.generator,
            distribution: self.distribution.with_p(self.bernoulli_p),
            seed,
        }
    }

    /// The basis family for these compartments: Fastfood's block fits the largest number
    /// of directions a compartment draws (one rank's, in a distributed run).
    pub fn family(&self, comps: &[Compartment]) -> BasisFamily {
        match self.bases {
            BasesKind::Iid => BasisFamily::Iid,
            BasesKind::Fastfood => BasisFamily::Fastfood(Fastfood::for_compartments(comps)),
        }
    }

    /// The compartments over θ, with their directions.
    pub fn compartments(&self, target: &Target) -> Result<Vec<Compartment>> {
        // Capped compartments are cut from tensors, the others from layers.
        let ranges = match self.compartments {
            Compartments::Capped(_) => &target.tensors,
            _ => &target.layers,
        };
        self.compartments
            .build(target.num_params(), ranges, self.dim, self.split_dim)
    }

    /// Checks the values alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dim == 0 {
            return Err(ConfigError::new("dim", "must be at least 1"));
        }
        if !(self.bernoulli_p > 0.0 && self.bernoulli_p < 1.0) {
            return Err(ConfigError::new(
                "bernoulli_p",
                format!("must be in (0, 1), got {}", self.bernoulli_p),
            ));
        }
        Ok(())
    }

    /// Checks d and the `k` compartments against a model of `num_params` parameters (D),
    /// for a schedule of `runs`.
    pub fn check_fit(
        &self,
        runs: &[OptimizerKind],
        num_params: usize,
        k: usize,
    ) -> Result<(), ConfigError> {
        let Some(first) = runs.iter().find(|o| o.uses_directions()) else {
            return match runs.first() {
                Some(run) if !self.bases.is_iid() => Err(ConfigError::new(
                    "bases",
                    format!(
                        "{} draws random directions, which {run} does not use (rbd, fpd, nes and rbd-materialized do)",
                        self.bases
                    ),
                )),
                _ => Ok(()),
            };
        };
        // Fastfood's diagonal is zero-mean.
        if !self.bases.is_iid() && self.distribution == DistributionKind::BernoulliReleased {
            return Err(ConfigError::new(
                "bases",
                "fastfood takes a zero-mean diagonal (gaussian, uniform or bernoulli); bernoulli-released's shifted mean has no Fastfood counterpart",
            ));
        }
        // Packed signs are a layout of i.i.d. entries, not a Fastfood diagonal.
        if !self.bases.is_iid() && self.distribution == DistributionKind::Rademacher {
            return Err(ConfigError::new(
                "bases",
                "--bases fastfood with --distribution rademacher: packed signs are a layout of i.i.d. directions (32 entries per stream word), not defined for Fastfood's diagonal; use --distribution bernoulli for a ±1 diagonal",
            ));
        }
        let what = if *first == OptimizerKind::Nes {
            "the NES population"
        } else {
            "directions"
        };
        if self.dim > num_params {
            return Err(ConfigError::new(
                "dim",
                format!(
                    "{} {what} exceed the model's D = {num_params} parameters",
                    self.dim
                ),
            ));
        }
        if k > num_params {
            return Err(ConfigError::new(
                "compartments",
                format!("{k} compartments exceed the model's D = {num_params} parameters"),
            ));
        }
        if self.split_dim && self.dim < k {
            return Err(ConfigError::new(
                "split_dim",
                format!(
                    "d = {} directions cannot be split across {k} compartments",
                    self.dim
                ),
            ));
        }
        Ok(())
    }
}
