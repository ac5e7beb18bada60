//! Time estimates for `--dry-run`: a few optimiser steps and an evaluation batch of
//! each distinct run shape, measured on this machine with synthetic batches, scaled by
//! the steps and images of the planned run.

use crate::train::config::RunConfig;
use crate::train::kinds::{DatasetSpec, OptimizerKind};
use crate::train::optimizers;
use crate::train::oracle::TrainOracle;
use anyhow::Result;
use rbd_datasets::{Batch, Split};
use rbd_engine::{no_grad, Device, Labels, Tensor};
use rbd_models::Mode;
use std::collections::HashMap;
use std::time::Instant;

/// Measured seconds of one run shape.
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    /// Per optimiser step (NES: per update of d batches).
    pub step: f64,
    /// Per evaluated image.
    pub eval_image: f64,
}

/// Measures and remembers costs by run shape.
pub struct Estimator {
    device: Device,
    cache: HashMap<String, Cost>,
}

fn synthetic_batch(n: usize, (c, h, w): (usize, usize, usize), index: usize) -> Batch {
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

/// Training images per epoch and validation images of a configuration.
fn images(cfg: &RunConfig) -> (usize, usize) {
    let n = match &cfg.dataset {
        DatasetSpec::Known(k) => k.count(Split::Train),
        DatasetSpec::Idx(_) => 60_000,
    };
    let n = cfg.train_limit.map_or(n, |l| l.min(n));
    let train = n.saturating_sub(cfg.val_size);
    let train = if cfg.tuning_split {
        train * 3 / 4
    } else {
        train
    };
    let val = if cfg.tuning_split {
        n.saturating_sub(cfg.val_size) - train
    } else {
        cfg.val_size
    };
    (train, val)
}

impl Estimator {
    /// An estimator measuring on `device`.
    pub fn new(device: Device) -> Self {
        Estimator {
            device,
            cache: HashMap::new(),
        }
    }

    fn key(cfg: &RunConfig, optimizer: OptimizerKind) -> String {
        format!(
            "{} {:?} {optimizer} {} {} {} {} {} {} {}",
            cfg.model,
            cfg.dataset.shape(),
            cfg.dim,
            cfg.compartments,
            cfg.split_dim,
            cfg.distribution,
            cfg.generator,
            cfg.correlation,
            cfg.batch_size
        )
    }

    /// The cost of training `cfg`'s segment `index`.
    fn cost(&mut self, cfg: &RunConfig, index: usize) -> Result<Cost> {
        let optimizer = cfg.schedule[index].optimizer;
        let key = Estimator::key(cfg, optimizer);
        if let Some(c) = self.cache.get(&key) {
            return Ok(*c);
        }
        let shape = cfg.dataset.shape();
        let model = rbd_models::build(cfg.model.name(), shape.0, shape.1, shape.2, &self.device)?;
        let layout = model.layout();
        let mut theta = Tensor::from_f32(&self.device, &layout.init(cfg.seed), &[layout.total])?;
        let mut opt = optimizers::build(cfg, &self.device, layout, index, &theta)?;
        let mut batches = (0..).map(|i| synthetic_batch(cfg.batch_size, shape, i));
        let mut step_times = Vec::new();
        for step in 0..4u64 {
            let mut oracle = TrainOracle::new(
                model.as_ref(),
                self.device.clone(),
                Box::new(batches.by_ref()),
                10,
                Default::default(),
                Default::default(),
            )?;
            let t = Instant::now();
            theta = opt.step(step, &theta, &mut oracle)?.theta;
            self.device.synchronize()?;
            // The first step warms caches and pipelines.
            if step > 0 {
                step_times.push(t.elapsed().as_secs_f64());
            }
        }
        step_times.sort_by(f64::total_cmp);
        let eval_n = cfg.eval_batch_size.min(1000);
        let batch = synthetic_batch(eval_n, shape, 0);
        let t = Instant::now();
        no_grad(|| -> Result<()> {
            let views = layout.views(&theta)?;
            let x = Tensor::from_f32(&self.device, &batch.images, &batch.shape)?;
            let labels = Labels::new(&self.device, batch.labels.clone(), 10)?;
            let logits = model.forward(&views, &x, Mode::Eval)?;
            logits.softmax_cross_entropy(&labels)?.item()?;
            Ok(())
        })?;
        let cost = Cost {
            step: step_times[step_times.len() / 2],
            eval_image: t.elapsed().as_secs_f64() / eval_n as f64,
        };
        self.cache.insert(key, cost);
        Ok(cost)
    }

    /// Estimated seconds to train `cfg` from epoch `from` (0-based) to its end.
    pub fn seconds(&mut self, cfg: &RunConfig, from: u64) -> Result<f64> {
        let (train, val) = images(cfg);
        let batches = train / cfg.batch_size.max(1);
        let mut total = 0.0;
        for epoch in from..cfg.epochs {
            let (index, seg) = cfg.segment_at(epoch);
            let cost = self.cost(cfg, index)?;
            let bps = if seg.optimizer == OptimizerKind::Nes {
                cfg.dim
            } else {
                1
            };
            // Straddling NES steps: batches / bps on average, none dropped; one update
            // per epoch with the `update` accounting.
            let steps = if cfg.nes_update_per_epoch() {
                1.0
            } else if cfg.nes_straddles() {
                batches as f64 / bps as f64
            } else {
                (batches / bps) as f64
            };
            total += steps * cost.step + val as f64 * cost.eval_image;
        }
        Ok(total)
    }
}

/// `3 h 20 min`, `4 min 10 s`, `12 s`.
pub fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}
