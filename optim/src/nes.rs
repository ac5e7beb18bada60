//! Natural evolution strategies (Salimans et al. 2017) as in the paper: population d,
//! offspring θ + σ·ε_i with ε_i ~ N(0, I) (not antithetic), each offspring's loss on its
//! own minibatch, ranks rank/(d−1) − 0.5 (lowest loss +0.5), and
//! θ ← θ + lr·Σ_i rank_i·ε_i / (σ·d·√D).
//!
//! With the Fastfood family the ε_i are the d columns of one step's structured blocks
//! (unit-variance entries, orthogonal in expectation): the structured, orthogonal
//! perturbations of Choromanski et al. 2018 ("Structured evolution with compact
//! architectures"), from the same counter-based stream.

use crate::config::{defaults, ConfigError};
use crate::directions::DirectionsConfig;
use crate::{Optimizer, Oracle, StepInfo, Target};
use rbd_engine::random_bases::{expand, Bases, BasisFamily, Compartment, Distribution, Stream};
use rbd_engine::{Result, Tensor};
use serde::{Deserialize, Serialize};

rbd_engine::named_enum!(
    /// How NES lays its updates over epochs (each update consumes d batches); the
    /// trainer counts its epochs by it.
    pub NesEpochs, "NES epoch accounting" {
        /// Whole updates inside each epoch; the epoch's last `batches mod d` batches
        /// are dropped (an MNIST epoch at d = 250: 6 updates, 62 batches unused).
        Whole = "whole",
        /// Epochs count images, as the paper's text and the released code's
        /// `NesModel.train()`: one endless stream of batches, an update may straddle an
        /// epoch's end, and the epoch is evaluated after the update that crossed it (an
        /// MNIST epoch at d = 250: 6.25 updates on average, no batch dropped). That
        /// method is never called by the released code's runner (machinable 2.7 calls
        /// `on_execute`), so this is not what its NES runs did: see `Update`.
        Released = "released",
        /// One update per epoch, as the released code's NES actually runs: `NesModel`
        /// inherits `ImageModel.on_execute`, which runs its `train_op` (one update of d
        /// batches) once per configured epoch. The batches come from one endless stream
        /// over the data's epochs, as with `Released`; 100 epochs are 100 updates.
        Update = "update",
    }
);

impl NesEpochs {
    /// The accounting, in words.
    pub fn describe(self) -> &'static str {
        match self {
            NesEpochs::Whole => {
                "whole updates within each epoch, the epoch's remaining batches dropped"
            }
            NesEpochs::Released => {
                "epochs count images: one stream of batches, updates straddle epoch ends, none dropped (paper's text; released code's unused NesModel.train)"
            }
            NesEpochs::Update => {
                "one update of d batches per epoch (released code as run: ImageModel.on_execute)"
            }
        }
    }
}

/// NES's own settings (the population is the directions' d).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct NesConfig {
    /// NES perturbation scale σ.
    #[arg(long, default_value = "0.01", allow_hyphen_values = true)]
    pub nes_sigma: f64,
    /// How NES lays its updates (d batches each) over epochs: whole (whole updates in
    /// each epoch, its remaining batches dropped), released (epochs count images: one
    /// stream of batches, an update may straddle an epoch's end, none dropped) or update
    /// (one update per epoch from that stream, as the authors' code runs NES). Left out
    /// of `config.json` at its default, so older run ids stay valid.
    #[arg(long, default_value = "whole")]
    #[serde(skip_serializing_if = "is_whole")]
    pub nes_epochs: NesEpochs,
}

fn is_whole(v: &NesEpochs) -> bool {
    *v == NesEpochs::Whole
}

impl Default for NesConfig {
    fn default() -> Self {
        defaults()
    }
}

impl NesConfig {
    /// Checks the values alone.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        if !(self.nes_sigma > 0.0 && self.nes_sigma.is_finite()) {
            return Err(ConfigError::new(
                "nes_sigma",
                format!("must be a positive number, got {}", self.nes_sigma),
            ));
        }
        Ok(())
    }
}

/// NES with population `population`.
pub struct Nes {
    /// Learning rate.
    pub lr: f64,
    /// Perturbation scale σ.
    pub sigma: f64,
    /// Population d.
    pub population: usize,
    /// Stream of the perturbations (unscaled N(0, 1) entries).
    pub stream: Stream,
    /// Which random bases the perturbations are (i.i.d. for the paper's NES).
    pub family: BasisFamily,
}

/// Centred ranks: the lowest loss gets +0.5, the highest −0.5 (ties broken by index).
pub fn centred_ranks(losses: &[f64]) -> Vec<f64> {
    let d = losses.len();
    if d == 1 {
        return vec![0.0];
    }
    let mut order: Vec<usize> = (0..d).collect();
    // Highest loss first: position 0 → −0.5.
    order.sort_by(|&a, &b| losses[b].total_cmp(&losses[a]).then(a.cmp(&b)));
    let mut ranks = vec![0.0; d];
    for (pos, &i) in order.iter().enumerate() {
        ranks[i] = pos as f64 / (d - 1) as f64 - 0.5;
    }
    ranks
}

impl Nes {
    /// NES at rate `lr` with population d.
    pub fn build(
        lr: f64,
        config: &NesConfig,
        directions: &DirectionsConfig,
        target: &Target,
    ) -> Self {
        // NES perturbations are N(0, I) (what the paper runs), or packed signs
        // (E[εεᵀ] = I as well) when asked for; the other distributions leave them
        // Gaussian, as before.
        let mut stream = directions.stream(target.seed);
        if stream.distribution != Distribution::Rademacher {
            stream.distribution = Distribution::Gaussian;
        }
        let whole = Compartment::whole(target.num_params(), directions.dim);
        Nes {
            lr,
            sigma: config.nes_sigma,
            population: directions.dim,
            stream,
            family: directions.family(&whole),
        }
    }

    /// The perturbations of `step` in `comps`, unscaled.
    fn bases<'a>(&self, step: u64, comps: &'a [Compartment]) -> Bases<'a> {
        Bases::new(self.stream, step, comps, 1.0).with_family(self.family)
    }
}

impl Optimizer for Nes {
    fn batches_per_step(&self) -> usize {
        self.population
    }
    fn step(&mut self, step: u64, theta: &Tensor, oracle: &mut dyn Oracle) -> Result<StepInfo> {
        let num_params = theta.numel();
        let whole = Compartment::new(0, 0, num_params, self.population);
        let device = theta.device();
        let sigma = Tensor::from_f32(&device, &[self.sigma as f32], &[1])?;
        let mut losses = Vec::with_capacity(self.population);
        for i in 0..self.population {
            let one = [whole.window(i, 1)];
            let offspring = expand(&self.bases(step, &one), &sigma, 1.0, theta)?;
            losses.push(oracle.loss(&offspring)?);
        }
        let ranks: Vec<f32> = centred_ranks(&losses).iter().map(|&r| r as f32).collect();
        let ranks = Tensor::from_f32(&device, &ranks, &[self.population])?;
        let alpha = self.lr / (self.sigma * self.population as f64 * (num_params as f64).sqrt());
        let all = [whole];
        let next = expand(&self.bases(step, &all), &ranks, alpha as f32, theta)?;
        Ok(StepInfo {
            theta: next,
            correlation: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::centred_ranks;

    #[test]
    fn lowest_loss_gets_plus_half() {
        assert_eq!(centred_ranks(&[3.0, 1.0, 2.0]), vec![-0.5, 0.5, 0.0]);
        assert_eq!(centred_ranks(&[1.0]), vec![0.0]);
        let r = centred_ranks(&[5.0, 5.0, 1.0, 9.0]);
        assert!(r.iter().sum::<f64>().abs() < 1e-12);
        assert_eq!(r[3], -0.5);
        assert_eq!(r[2], 0.5);
    }
}
