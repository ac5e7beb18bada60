//! Natural evolution strategies (Salimans et al. 2017) as in the paper: population d,
//! offspring θ + σ·ε_i with ε_i ~ N(0, I) (not antithetic), each offspring's loss on its
//! own minibatch, ranks rank/(d−1) − 0.5 (lowest loss +0.5), and
//! θ ← θ + lr·Σ_i rank_i·ε_i / (σ·d·√D).
//!
//! With the Fastfood family the ε_i are the d columns of one step's structured blocks
//! (unit-variance entries, orthogonal in expectation): the structured, orthogonal
//! perturbations of Choromanski et al. 2018 ("Structured evolution with compact
//! architectures"), from the same counter-based stream.

use crate::{Optimizer, Oracle, StepInfo};
use rbd_engine::random_bases::{expand, Bases, BasisFamily, Compartment, Stream};
use rbd_engine::{Result, Tensor};

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
