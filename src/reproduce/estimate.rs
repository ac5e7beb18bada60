//! Time estimates for `--dry-run` and the campaign's status: for each distinct run shape,
//! the training loader making batches (augmentation included), a few optimiser steps
//! (with the correlation pass where the run logs it) and an evaluation batch, measured on
//! this machine with synthetic images, scaled by the batches, steps and images of the
//! planned run. The loader runs on its own thread beside the two compute threads, so its
//! cost is added in full: on 2 cores it competes with them.

use crate::measure::step::{synthetic_batch, StepHarness};
use crate::train::config::RunConfig;
use crate::train::kinds::DatasetSpec;
use crate::train::optimizers;
use crate::train::Team;
use anyhow::Result;
use rbd_datasets::Split;
use rbd_engine::{no_grad, Device, Labels, Tensor};
use rbd_models::Mode;
use rbd_optim::OptimizerKind;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

/// Measured seconds of one run shape.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Cost {
    /// Per optimiser step (NES: per update of d batches), the batches' loading excluded.
    pub step: f64,
    /// Per training batch made by the loader (shuffle, preprocessing, augmentation).
    pub batch: f64,
    /// Per evaluated image.
    pub eval_image: f64,
}

/// An estimate split as the metrics record time: training (what `metrics` calls an
/// epoch's `seconds`) and evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Parts {
    /// Training: steps and the batches they consume.
    pub train: f64,
    /// Validation (and test) passes after each epoch.
    pub eval: f64,
}

/// Measures and remembers costs by run shape. Costs measured while the machine was quiet
/// are kept in the user cache directory (`estimates.json`, keyed by machine, build commit
/// and device), so a status view while a campaign trains reads them instead of timing
/// steps against it; costs measured on a busy machine are used for this process only and
/// reported ([`Estimator::busy`]).
pub struct Estimator {
    device: Device,
    cache: HashMap<String, Cost>,
    stored: Option<PathBuf>,
    busy: Option<f64>,
}

/// The 1-minute load average, where the system reports one.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether other work is running: a load average of more than half a core.
fn machine_busy() -> Option<f64> {
    load_average().filter(|l| *l > 0.5)
}

/// Training images per epoch and validation images of a configuration.
fn images(cfg: &RunConfig) -> (usize, usize) {
    let n = match &cfg.dataset {
        DatasetSpec::Known(k) => k.count(Split::Train),
        DatasetSpec::Idx(_) => 60_000,
    };
    let (data, tuning) = (&cfg.data, cfg.options.tuning_split);
    let n = data.train_limit.map_or(n, |l| l.min(n));
    let train = n.saturating_sub(data.val_size);
    let train = if tuning { train * 3 / 4 } else { train };
    let val = if tuning {
        n.saturating_sub(data.val_size) - train
    } else {
        data.val_size
    };
    (train, val)
}

impl Estimator {
    /// An estimator measuring on `device`, with the costs stored for this machine, build
    /// and device.
    pub fn new(device: Device) -> Self {
        let stored = rbd_datasets::default_data_dir()
            .ok()
            .map(|d| d.join("estimates.json"));
        let mut est = Estimator {
            device,
            cache: HashMap::new(),
            stored,
            busy: None,
        };
        let prefix = est.prefix();
        if let Some(text) = est
            .stored
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            let all: BTreeMap<String, Cost> = serde_json::from_str(&text).unwrap_or_default();
            for (k, c) in all {
                if let Some(key) = k.strip_prefix(&prefix) {
                    est.cache.insert(key.to_string(), c);
                }
            }
        }
        est
    }

    /// The highest load average seen while measuring, if the machine was busy: such
    /// estimates are too high by about the share of the machine others took.
    pub fn busy(&self) -> Option<f64> {
        self.busy
    }

    fn prefix(&self) -> String {
        format!(
            "{} | {} | {} | ",
            crate::machine::describe(),
            env!("RBD_COMMIT"),
            self.device.describe()
        )
    }

    fn store(&self, key: &str, cost: Cost) {
        let Some(path) = &self.stored else { return };
        let mut all: BTreeMap<String, Cost> = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        all.insert(format!("{}{key}", self.prefix()), cost);
        if let Ok(text) = serde_json::to_string_pretty(&all) {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = crate::train::run_dir::write_atomic(path, text.as_bytes());
        }
    }

    /// What a step's cost depends on: the model and its input, the optimiser, its
    /// settings, and the batch size and augmentation.
    fn key(cfg: &RunConfig, optimizer: OptimizerKind) -> String {
        format!(
            "{} {:?} {optimizer} {} {}",
            cfg.model,
            cfg.dataset.shape(),
            serde_json::to_string(&cfg.settings).expect("settings serialise"),
            serde_json::to_string(&cfg.data).expect("data settings serialise"),
        )
    }

    /// Seconds per batch of the training loader for `cfg`'s data and augmentation, made
    /// from synthetic images.
    fn batch_seconds(cfg: &RunConfig) -> Result<f64> {
        let (c, h, w) = cfg.dataset.shape();
        let n = 64 * cfg.data.batch_size.max(1);
        let images = (0..n * c * h * w)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        let data = std::sync::Arc::new(rbd_datasets::Dataset::new(images, labels, c, h, w)?);
        let kind = match &cfg.dataset {
            DatasetSpec::Known(k) => *k,
            DatasetSpec::Idx(_) => rbd_datasets::DatasetKind::Mnist,
        };
        let tc = cfg.data.loader_config(kind, cfg.seed);
        let loader = rbd_datasets::TrainLoader::new(data, (0..n).collect(), tc)?;
        let batches = loader.batches_per_epoch();
        let _ = loader.batch(0, 0); // warm
        let t = Instant::now();
        for b in 1..batches {
            std::hint::black_box(loader.batch(0, b));
        }
        Ok(t.elapsed().as_secs_f64() / (batches - 1).max(1) as f64)
    }

    /// The cost of training `cfg`'s segment `index`.
    fn cost(&mut self, cfg: &RunConfig, index: usize) -> Result<Cost> {
        let optimizer = cfg.schedule[index].optimizer;
        let key = Estimator::key(cfg, optimizer);
        if let Some(c) = self.cache.get(&key) {
            return Ok(*c);
        }
        let busy = machine_busy();
        let shape = cfg.dataset.shape();
        let model = rbd_models::build(cfg.model, shape.0, shape.1, shape.2, &self.device)?;
        let layout = model.layout();
        let batches = Box::new((0..).map(|i| synthetic_batch(cfg.data.batch_size, shape, i)));
        let build = |theta: &Tensor| optimizers::build(cfg, layout, index, theta, &Team::single());
        let mut harness = StepHarness::new(
            model.as_ref(),
            &self.device,
            cfg.seed,
            batches,
            Box::new(build),
        )?;
        let mut step_times = Vec::new();
        // The first step warms caches and pipelines; the median of the rest is kept.
        for step in 0..6u64 {
            let t = Instant::now();
            harness.step()?;
            self.device.synchronize()?;
            if step > 0 {
                step_times.push(t.elapsed().as_secs_f64());
            }
        }
        let theta = harness.theta();
        step_times.sort_by(f64::total_cmp);
        let eval_n = cfg.options.eval_batch_size.min(1000);
        let batch = synthetic_batch(eval_n, shape, 0);
        let t = Instant::now();
        no_grad(|| -> Result<()> {
            let views = layout.views(theta)?;
            let x = Tensor::from_f32(&self.device, &batch.images, &batch.shape)?;
            let labels = Labels::new(&self.device, batch.labels.clone(), 10)?;
            let logits = model.forward(&views, &x, Mode::Eval)?;
            logits.softmax_cross_entropy(&labels)?.item()?;
            Ok(())
        })?;
        let cost = Cost {
            step: step_times[step_times.len() / 2],
            batch: Estimator::batch_seconds(cfg)?,
            eval_image: t.elapsed().as_secs_f64() / eval_n as f64,
        };
        match busy.or(machine_busy()) {
            Some(load) => self.busy = Some(self.busy.map_or(load, |b| b.max(load))),
            None => self.store(&key, cost),
        }
        self.cache.insert(key, cost);
        Ok(cost)
    }

    /// Estimated seconds to train and evaluate `cfg` from epoch `from` (0-based) to its end.
    pub fn seconds(&mut self, cfg: &RunConfig, from: u64) -> Result<f64> {
        let p = self.parts(cfg, from)?;
        Ok(p.train + p.eval)
    }

    /// [`Estimator::seconds`] split into training and evaluation.
    pub fn parts(&mut self, cfg: &RunConfig, from: u64) -> Result<Parts> {
        let mut total = Parts::default();
        for epoch in from..cfg.epochs {
            let (index, _) = cfg.segment_at(epoch);
            let cost = self.cost(cfg, index)?;
            let p = epoch_parts(&cost, cfg, epoch);
            total.train += p.train;
            total.eval += p.eval;
        }
        Ok(total)
    }
}

/// The training and evaluation seconds of `cfg`'s epoch `epoch` (0-based) at `cost`.
pub fn epoch_parts(cost: &Cost, cfg: &RunConfig, epoch: u64) -> Parts {
    let (train, val) = images(cfg);
    let batches = train / cfg.data.batch_size.max(1);
    let (_, seg) = cfg.segment_at(epoch);
    let bps = seg.optimizer.batches_per_step(&cfg.settings);
    // Straddling NES steps: batches / bps on average, none dropped; one update per
    // epoch with the `update` accounting.
    let steps = if cfg.nes_update_per_epoch() {
        1.0
    } else if cfg.nes_straddles() {
        batches as f64 / bps as f64
    } else {
        (batches / bps) as f64
    };
    let eval_images = val
        + if cfg.options.eval_test {
            test_images(cfg)
        } else {
            0
        };
    Parts {
        train: steps * (cost.step + bps as f64 * cost.batch),
        eval: eval_images as f64 * cost.eval_image,
    }
}

/// Test images of a configuration's data set.
fn test_images(cfg: &RunConfig) -> usize {
    match &cfg.dataset {
        DatasetSpec::Known(k) => k.count(Split::Test),
        DatasetSpec::Idx(_) => 10_000,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::{resolve_schedule, ScheduleSpec};
    use crate::train::kinds::PresetSource;
    use rbd_datasets::DatasetKind;
    use rbd_engine::random_bases::DistributionKind;
    use rbd_models::ModelKind;
    use rbd_optim::NesEpochs;

    fn cfg(schedule: &str) -> RunConfig {
        let ds = DatasetSpec::Known(DatasetKind::Mnist);
        let spec: ScheduleSpec = schedule.parse().unwrap();
        let segs = resolve_schedule(
            &spec,
            None,
            ModelKind::Fc,
            &ds,
            DistributionKind::Gaussian,
            PresetSource::Paper,
        )
        .unwrap();
        let mut c = RunConfig::new(ModelKind::Fc, ds, segs);
        c.epochs = 4;
        c
    }

    const COST: Cost = Cost {
        step: 0.01,
        batch: 0.001,
        eval_image: 1e-5,
    };

    /// An epoch costs its steps, the batches they consume, and the evaluation: MNIST holds
    /// 60,000 − 10,000 = 50,000 training images, 1,562 batches of 32.
    #[test]
    fn an_epoch_counts_steps_batches_and_evaluation() {
        let sgd = epoch_parts(&COST, &cfg("sgd"), 0);
        assert!(
            (sgd.train - 1562.0 * (0.01 + 0.001)).abs() < 1e-9,
            "{sgd:?}"
        );
        assert!((sgd.eval - 10_000.0 * 1e-5).abs() < 1e-12, "{sgd:?}");
        let mut with_test = cfg("sgd");
        with_test.options.eval_test = true;
        assert!((epoch_parts(&COST, &with_test, 0).eval - 20_000.0 * 1e-5).abs() < 1e-12);
        // NES: each update takes d batches; whole updates only, or a fractional count
        // when updates straddle epochs, or one update per epoch.
        let mut nes = cfg("nes");
        nes.settings.directions.dim = 250;
        let per_update = 0.01 + 250.0 * 0.001;
        assert!((epoch_parts(&COST, &nes, 0).train - 6.0 * per_update).abs() < 1e-9);
        nes.settings.nes.nes_epochs = NesEpochs::Released;
        assert!((epoch_parts(&COST, &nes, 0).train - 1562.0 / 250.0 * per_update).abs() < 1e-9);
        nes.settings.nes.nes_epochs = NesEpochs::Update;
        assert!((epoch_parts(&COST, &nes, 0).train - per_update).abs() < 1e-9);
        // The tuning split trains on 75% and validates on the other 25%.
        let mut tune = cfg("sgd");
        tune.options.tuning_split = true;
        let p = epoch_parts(&COST, &tune, 0);
        assert!(
            (p.train - (37_500 / 32) as f64 * 0.011).abs() < 1e-9,
            "{p:?}"
        );
        assert!((p.eval - 12_500.0 * 1e-5).abs() < 1e-12, "{p:?}");
    }

    /// A schedule's epochs take their own segment's optimiser.
    #[test]
    fn a_schedule_switches_cost_at_its_epoch() {
        let mut c = cfg("nes@2^-3:1,sgd");
        c.settings.directions.dim = 250;
        assert!(
            epoch_parts(&COST, &c, 0).train > 2.0 * epoch_parts(&COST, &c, 1).train / 1562.0 * 6.0
        );
        assert!((epoch_parts(&COST, &c, 1).train - 1562.0 * 0.011).abs() < 1e-9);
    }
}
