//! The one step harness: a training step as the trainer runs it, for everything that
//! measures steps (`rbd profile`, `rbd bench rbd`, the campaign's cost estimates). θ₀
//! is the model's initialisation, the optimiser comes from the trainer's factory
//! (`train::optimizers`), the gradient or losses from the trainer's oracle
//! (`train::oracle::TrainOracle`, one for all steps as one serves an epoch), and each
//! step is handed to the device without waiting, as the trainer does. Timing is the
//! caller's: wall-clock around [`StepHarness::step`], or the engine profiler, whose
//! scopes the oracle opens around its phases.

use crate::train::optimizers;
use crate::train::oracle::TrainOracle;
use anyhow::Result;
use rbd_datasets::Batch;
use rbd_engine::{Device, Tensor};
use rbd_models::Model;
use rbd_optim::Optimizer;

/// What the factory builds: an optimiser from θ₀.
pub type Build<'f> = dyn FnOnce(&Tensor) -> Result<Box<dyn Optimizer>> + 'f;

/// A model, θ, an optimiser and the trainer's oracle over an endless supply of batches.
pub struct StepHarness<'m> {
    device: Device,
    oracle: TrainOracle<'m>,
    optimizer: Box<dyn Optimizer>,
    theta: Tensor,
    step: u64,
}

impl<'m> StepHarness<'m> {
    /// `model` at its initialisation from `seed`, trained by what `build` makes of θ₀,
    /// on `batches` (which must not run out).
    pub fn new(
        model: &'m dyn Model,
        device: &Device,
        seed: u64,
        batches: Box<dyn Iterator<Item = Batch> + 'm>,
        build: Box<Build<'_>>,
    ) -> Result<Self> {
        let layout = model.layout();
        let theta = Tensor::from_f32(device, &layout.init(seed), &[layout.total])?;
        let optimizer = build(&theta)?;
        let oracle = TrainOracle::new(
            model,
            device.clone(),
            batches,
            10,
            Default::default(),
            Default::default(),
        )?;
        Ok(StepHarness {
            device: device.clone(),
            oracle,
            optimizer,
            theta,
            step: 0,
        })
    }

    /// `model` trained by the single-process optimiser `kind` at rate `lr` with
    /// `settings` (the factory's, checked as the trainer checks them).
    pub fn single(
        model: &'m dyn Model,
        device: &Device,
        seed: u64,
        batches: Box<dyn Iterator<Item = Batch> + 'm>,
        segment: optimizers::SegmentOptimizer<'_>,
    ) -> Result<Self> {
        let layout = model.layout();
        Self::new(
            model,
            device,
            seed,
            batches,
            Box::new(|theta| optimizers::single(&segment, seed, layout, theta)),
        )
    }

    /// One optimiser step (NES: one update over its population's batches), handed to
    /// the device without waiting.
    pub fn step(&mut self) -> Result<()> {
        let next = self
            .optimizer
            .step(self.step, &self.theta, &mut self.oracle)?;
        self.theta = next.theta;
        self.device.flush()?;
        self.step += 1;
        Ok(())
    }

    /// Reads back the losses the oracle recorded on the device (the trainer does this
    /// once per log window); an error if one was not finite.
    pub fn settle(&mut self) -> Result<()> {
        Ok(self.oracle.settle()?)
    }

    /// θ now.
    pub fn theta(&self) -> &Tensor {
        &self.theta
    }
}

/// Batch number `index` of `n` synthetic images of shape (c, h, w) with labels (a
/// step's work does not depend on the values).
pub fn synthetic_batch(n: usize, (c, h, w): (usize, usize, usize), index: usize) -> Batch {
    let len = n * c * h * w;
    let images = (0..len)
        .map(|i| ((i * 2_654_435_761 + index) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    Batch {
        images,
        labels: (0..n).map(|i| ((i + index) % 10) as u32).collect(),
        epoch: 0,
        index,
        shape: [n, c, h, w],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optimizers::SegmentOptimizer;
    use crate::train::oracle::phase;
    use rbd_engine::profile;
    use rbd_models::ModelKind;
    use rbd_optim::{OptimizerKind, Settings};

    /// θ after three steps of `kind` on the FC (d = 8), with the profiler on or off.
    fn theta_after(kind: OptimizerKind, profiled: bool) -> Vec<u32> {
        let device = Device::Cpu;
        let model = rbd_models::build(ModelKind::Fc, 1, 28, 28, &device).unwrap();
        let mut settings = Settings::default();
        settings.directions.dim = 8;
        let segment = SegmentOptimizer {
            kind,
            lr: 0.05,
            settings: &settings,
        };
        let batches = Box::new((0..).map(|i| synthetic_batch(16, (1, 28, 28), i)));
        let mut h = StepHarness::single(model.as_ref(), &device, 7, batches, segment).unwrap();
        let theta0 = h.theta().to_vec_f32().unwrap();
        if profiled {
            profile::start(None);
        }
        for _ in 0..3 {
            h.step().unwrap();
        }
        h.settle().unwrap();
        let entries = profile::stop();
        // The oracle's phases are the profiler's scopes, recorded only when it is on.
        let scoped = entries.iter().any(|e| e.name == phase::FORWARD);
        assert_eq!(scoped, profiled, "{kind}: {entries:?}");
        let theta = h.theta().to_vec_f32().unwrap();
        assert_ne!(theta, theta0, "{kind}: the steps moved nothing");
        theta.iter().map(|x| x.to_bits()).collect()
    }

    /// The timing hooks change no bit of a step: training (profiler off) and
    /// `rbd profile` (on) compute the same θ, for a gradient and a loss optimiser.
    #[test]
    fn the_timing_hooks_change_no_bit_of_a_step() {
        for kind in [OptimizerKind::Rbd, OptimizerKind::Nes] {
            assert_eq!(theta_after(kind, false), theta_after(kind, true), "{kind}");
        }
    }
}
