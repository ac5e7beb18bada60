//! Time estimates for `--dry-run` and the campaign's status: for each distinct run shape,
//! the training loader making batches (augmentation included), a few optimiser steps
//! (with the correlation pass where the run logs it) and an evaluation batch, measured on
//! this machine with synthetic images, scaled by the batches, steps and images of the
//! planned run. The loader runs on its own thread beside the two compute threads, so its
//! cost is added in full: on 2 cores it competes with them.
//!
//! Each measurement records how much other processes competed for the cores meanwhile
//! (probes before and after its steps, [`super::contention`]); only quiet ones are kept
//! between processes ([`super::cost_cache`]), and every output says which costs came
//! from where.
//!
//! The steps are timed back to back, as a run takes them: a step right after a probe
//! runs cold (CIFAR-10 CNN with Fastfood bases on the 2-core AVX-512 EPYC, medians of the
//! four B.7 shapes: 13.6–20.2 ms with a probe before each step, 10.9–16.1 ms back to back,
//! where the runs' own epochs make about 12 ms a step), so estimates ran 40–70% high.

use super::contention::Probes;
use super::cost_cache::CostCache;
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
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Measured seconds of one run shape.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Cost {
    /// Per optimiser step (NES: per update of d batches), the batches' loading excluded.
    pub step: f64,
    /// Per training batch made by the loader (shuffle, preprocessing, augmentation).
    pub batch: f64,
    /// Per evaluated image.
    pub eval_image: f64,
    /// The share (0 to 1) of their ready time the contention probes run around the
    /// measured steps waited for a core ([`super::contention`]): other processes'
    /// doing; `None` where the system does not say.
    #[serde(default)]
    pub waited: Option<f64>,
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

/// NES is measured at this population at most and scaled to its own: its step is d
/// offspring (one direction generated and one forward pass each) and one expansion over
/// the d directions, all linear in d, so a d = 10^4 step need not be run whole.
const NES_MEASURED_POPULATION: usize = 16;

/// Steps timed after the warming ones: at least `MIN_TIMED`, then more until
/// `MAX_TIMED` or `STEP_BUDGET` of stepping.
const MIN_TIMED: usize = 2;
const MAX_TIMED: usize = 40;
const STEP_BUDGET: Duration = Duration::from_secs(2);

/// Warming steps (caches, pipelines, the allocator's pools): at least one, then more
/// until `WARM_BUDGET` or `MAX_WARM` steps.
const MAX_WARM: u64 = 5;
const WARM_BUDGET: Duration = Duration::from_millis(250);

/// Probes before the steps and after the evaluation (each keeps every core busy for
/// [`super::contention::PROBE`]): enough to see a machine that stays busy, and none
/// between the timed steps.
const PROBES_EACH_SIDE: usize = 3;

/// Where the costs of an estimate came from.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sources {
    /// Run shapes read from the cache (measured earlier on a quiet machine).
    pub cached: usize,
    /// Measured now on a quiet machine (and kept).
    pub quiet: usize,
    /// Measured now while other processes made the contention probes wait more than
    /// [`super::cost_cache::QUIET`] of the time (not kept).
    pub busy: usize,
    /// The longest such wait, as a share of the probes' ready time.
    pub most_waited: f64,
}

impl Sources {
    /// One line for the output: how many costs came from where, and what that means.
    pub fn describe(&self, file: Option<&std::path::Path>) -> String {
        let file = file.map_or("no cache file".into(), |f| f.display().to_string());
        let mut t = format!(
            "step costs: {} run shapes from the cache ({file}), {} measured now",
            self.cached,
            self.quiet + self.busy
        );
        if self.busy > 0 {
            t += &format!(
                "; {} of them while other processes took the cores (probes around its steps waited for a core up to {:.0}% of the time): not kept, and those estimates run high",
                self.busy,
                100.0 * self.most_waited
            );
        }
        t
    }
}

/// Measures and remembers costs by run shape (see the module's notes).
pub struct Estimator {
    device: Device,
    costs: HashMap<String, Cost>,
    /// Keys of `costs` read from the cache and not used yet.
    unused_cached: HashSet<String>,
    cache: CostCache,
    sources: Sources,
    /// While [`Estimator::measured`] learns which shapes a pass needs: those not known
    /// yet, in the order asked (each once), with what measures them.
    wanted: Option<Vec<(String, RunConfig, usize)>>,
}

/// A run shape in a few words, for the progress lines.
fn shape_label(cfg: &RunConfig, optimizer: OptimizerKind) -> String {
    let d = &cfg.settings.directions;
    let mut t = format!("{} on {}, {optimizer}", cfg.model, cfg.dataset);
    if optimizer.uses_directions() {
        t += &format!(", d = {}", d.dim);
        if d.bases == rbd_optim::BasesKind::Fastfood {
            t += ", fastfood";
        }
    }
    t
}

/// The progress line on stderr before measuring shape `i` (from 1) of `n`.
pub fn progress_line(i: usize, n: usize, label: &str) -> String {
    format!("measuring step costs: {i}/{n} ({label}) …")
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

/// The configuration a step is timed with, and the factor its time is scaled by to the
/// planned run's: NES at a population of at most [`NES_MEASURED_POPULATION`].
pub fn measured_as(cfg: &RunConfig, optimizer: OptimizerKind) -> (RunConfig, f64) {
    let d = cfg.settings.directions.dim;
    if optimizer == OptimizerKind::Nes && d > NES_MEASURED_POPULATION {
        let mut small = cfg.clone();
        small.settings.directions.dim = NES_MEASURED_POPULATION;
        (small, d as f64 / NES_MEASURED_POPULATION as f64)
    } else {
        (cfg.clone(), 1.0)
    }
}

impl Estimator {
    /// An estimator measuring on `device`, with the costs kept for this machine kind,
    /// build and device (`estimates.json` in the data directory).
    pub fn new(device: Device) -> Self {
        let file = rbd_datasets::default_data_dir()
            .ok()
            .map(|d| d.join("estimates.json"));
        let prefix = format!(
            "{} | {} | {} | ",
            // Machine kind (model, cores, vector width), as costs depend on it.
            crate::machine::describe(),
            env!("RBD_COMMIT"),
            device.describe()
        );
        let cache = CostCache::new(file, prefix);
        let costs: HashMap<String, Cost> = cache.load().into_iter().collect();
        Estimator {
            device,
            unused_cached: costs.keys().cloned().collect(),
            costs,
            cache,
            sources: Sources::default(),
            wanted: None,
        }
    }

    /// Runs `pass` twice: once to learn which run shapes it needs (nothing is measured:
    /// every cost is zero and that pass's result is dropped), then, after measuring the
    /// shapes not known yet with a progress line on stderr before each (a status view
    /// is otherwise silent for minutes), for its result. `pass` must ask for the same
    /// costs whatever they are; stdout is `pass`'s alone.
    pub fn measured<T>(&mut self, mut pass: impl FnMut(&mut Estimator) -> Result<T>) -> Result<T> {
        self.wanted = Some(Vec::new());
        let learnt = pass(self);
        let wanted = self.wanted.take().unwrap_or_default();
        learnt?;
        let n = wanted.len();
        for (i, (key, cfg, index)) in wanted.into_iter().enumerate() {
            let optimizer = cfg.schedule[index].optimizer;
            eprintln!("{}", progress_line(i + 1, n, &shape_label(&cfg, optimizer)));
            self.measure(key, &cfg, index)?;
        }
        pass(self)
    }

    /// Where the costs used so far came from.
    pub fn sources(&self) -> Sources {
        self.sources
    }

    /// [`Estimator::sources`] as one line.
    pub fn describe_sources(&self) -> String {
        self.sources.describe(self.cache.file())
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

    /// Seconds of one optimiser step of `cfg`'s segment `index` (the median of a few
    /// after warming ones), and of evaluating one image at the parameters reached;
    /// contention probes run before the first step and after the evaluation, outside the
    /// timings (see the module's notes for why not between steps).
    fn step_and_eval_seconds(
        &self,
        cfg: &RunConfig,
        index: usize,
        probes: &mut Probes,
    ) -> Result<(f64, f64)> {
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
        for _ in 0..PROBES_EACH_SIDE {
            probes.sample();
        }
        let mut step_times = Vec::new();
        // The warming steps' times are dropped; the median of the rest is kept.
        let (mut warming, mut stepping) = (Duration::ZERO, Duration::ZERO);
        for step in 0u64.. {
            let t = Instant::now();
            harness.step()?;
            self.device.synchronize()?;
            let warm = step == 0 || (step < MAX_WARM && warming < WARM_BUDGET);
            if warm {
                warming += t.elapsed();
                continue;
            }
            stepping += t.elapsed();
            step_times.push(t.elapsed().as_secs_f64());
            let enough = step_times.len() >= MAX_TIMED
                || (step_times.len() >= MIN_TIMED && stepping >= STEP_BUDGET);
            if enough {
                break;
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
        let eval = t.elapsed();
        for _ in 0..PROBES_EACH_SIDE {
            probes.sample();
        }
        Ok((
            step_times[step_times.len() / 2],
            eval.as_secs_f64() / eval_n as f64,
        ))
    }

    /// The cost of training `cfg`'s segment `index`.
    fn cost(&mut self, cfg: &RunConfig, index: usize) -> Result<Cost> {
        let optimizer = cfg.schedule[index].optimizer;
        let key = Estimator::key(cfg, optimizer);
        if let Some(wanted) = &mut self.wanted {
            if !self.costs.contains_key(&key) && !wanted.iter().any(|(k, _, _)| *k == key) {
                wanted.push((key, cfg.clone(), index));
            }
            return Ok(Cost {
                step: 0.0,
                batch: 0.0,
                eval_image: 0.0,
                waited: None,
            });
        }
        if let Some(c) = self.costs.get(&key) {
            if self.unused_cached.remove(&key) {
                self.sources.cached += 1;
            }
            return Ok(*c);
        }
        self.measure(key, cfg, index)
    }

    /// Measures the cost of `cfg`'s segment `index` (shape `key`) and keeps it.
    fn measure(&mut self, key: String, cfg: &RunConfig, index: usize) -> Result<Cost> {
        let optimizer = cfg.schedule[index].optimizer;
        let mut probes = Probes::new();
        let (measured, scale) = measured_as(cfg, optimizer);
        let (step, eval_image) = self.step_and_eval_seconds(&measured, index, &mut probes)?;
        let batch = Estimator::batch_seconds(cfg)?;
        probes.sample();
        let cost = Cost {
            step: step * scale,
            batch,
            eval_image,
            waited: probes.waited_share(),
        };
        if self.cache.keep(&key, cost) {
            self.sources.quiet += 1;
        } else {
            self.sources.busy += 1;
            self.sources.most_waited = self.sources.most_waited.max(cost.waited.unwrap_or(1.0));
        }
        self.costs.insert(key, cost);
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
        waited: None,
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

    /// The run-shape key tells apart every setting a step's cost depends on, and only
    /// those. Caught: before the key was the settings' serialisation, it listed fields
    /// by hand and lacked `bases`, so table1's i.i.d. RBD runs were costed at the
    /// Fastfood runs' O(D log d) step measured earlier in the same status view
    /// (fc-mnist-rbd 6 min 12 s against FPD's 16 h 14 min, for the same d and D).
    #[test]
    fn the_cost_key_separates_what_a_step_costs() {
        use rbd_optim::{BasesKind, FpdVariant};
        let key = |c: &RunConfig| Estimator::key(c, c.schedule[0].optimizer);
        let rbd = cfg("rbd");
        let changed: Vec<(&str, RunConfig)> = vec![
            ("optimizer", cfg("fpd")),
            ("bases", {
                let mut c = rbd.clone();
                c.settings.directions.bases = BasesKind::Fastfood;
                c
            }),
            ("d", {
                let mut c = rbd.clone();
                c.settings.directions.dim = 500;
                c
            }),
            ("distribution", {
                let mut c = rbd.clone();
                c.settings.directions.distribution = DistributionKind::Uniform;
                c
            }),
            ("correlation pass", {
                let mut c = rbd.clone();
                c.settings.rbd.correlation = true;
                c
            }),
            ("augmentation", {
                let mut c = rbd.clone();
                c.data.augment = !c.data.augment;
                c
            }),
            ("batch size", {
                let mut c = rbd.clone();
                c.data.batch_size = 64;
                c
            }),
            ("model", {
                let mut c = rbd.clone();
                c.model = ModelKind::Cnn;
                c
            }),
        ];
        for (what, c) in &changed {
            assert_ne!(key(&rbd), key(c), "{what} does not change the key");
        }
        let mut fpd_paper = cfg("fpd");
        fpd_paper.settings.fpd.fpd_variant = FpdVariant::Paper;
        let mut fpd_released = cfg("fpd");
        fpd_released.settings.fpd.fpd_variant = FpdVariant::Released;
        assert_ne!(key(&fpd_paper), key(&fpd_released));
        // Seed, rate and epochs change no step's cost: one measurement serves them all.
        let mut same = rbd.clone();
        same.seed = 7;
        same.epochs = 100;
        same.schedule[0].lr = 0.125;
        assert_eq!(key(&rbd), key(&same));
    }

    /// NES is timed at a small population and scaled linearly; other optimisers as
    /// they are.
    #[test]
    fn nes_is_measured_small_and_scaled_to_its_population() {
        let mut nes = cfg("nes");
        nes.settings.directions.dim = 10_000;
        let (small, scale) = measured_as(&nes, OptimizerKind::Nes);
        assert_eq!(small.settings.directions.dim, NES_MEASURED_POPULATION);
        assert_eq!(scale, 10_000.0 / NES_MEASURED_POPULATION as f64);
        nes.settings.directions.dim = 8;
        let (same, scale) = measured_as(&nes, OptimizerKind::Nes);
        assert_eq!((same.settings.directions.dim, scale), (8, 1.0));
        let mut rbd = cfg("rbd");
        rbd.settings.directions.dim = 10_000;
        let (same, scale) = measured_as(&rbd, OptimizerKind::Rbd);
        assert_eq!((same.settings.directions.dim, scale), (10_000, 1.0));
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
