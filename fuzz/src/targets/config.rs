//! A run's `config.json`: random valid configurations written as the trainer writes
//! them (pretty JSON), then mutated structure-aware (see [`crate::json`]). The parser is
//! what `rbd train --resume` reads first: `load_config` (parse, then validate, the file
//! named in either error).

use super::{keep_valid, Case, Target, Verdict};
use crate::json;
use crate::rng::Rng;
use rbd::train::config::load_config;
use rbd::train::kinds::{CheckpointEvery, DatasetSpec};
use rbd::train::{RunConfig, Segment};
use rbd_datasets::DatasetKind;
use rbd_engine::random_bases::{DistributionKind, Generator};
use rbd_models::ModelKind;
use rbd_optim::{Compartments, NesEpochs, OptimizerKind};
use std::path::Path;

/// `load_config` on a generated `config.json`.
pub struct ConfigJson;

fn segment(optimizer: OptimizerKind, lr: f64, until_epoch: Option<u64>) -> Segment {
    Segment {
        optimizer,
        lr,
        lr_source: "given".into(),
        until_epoch,
    }
}

/// A random configuration that validates.
pub fn random_config(rng: &mut Rng) -> RunConfig {
    let (model, dataset) = *rng.pick(&[
        (ModelKind::Fc, DatasetKind::Mnist),
        (ModelKind::Cnn, DatasetKind::FashionMnist),
        (ModelKind::Fc, DatasetKind::Cifar10),
        (ModelKind::Resnet8, DatasetKind::Cifar10),
    ]);
    let lr = 2f64.powi(-(rng.below(12) as i32));
    let epochs = rng.range(1, 100) as u64;
    let schedule = if epochs > 2 && rng.chance(1, 4) {
        vec![
            segment(
                OptimizerKind::Rbd,
                lr,
                Some(rng.range(1, epochs as usize - 1) as u64),
            ),
            segment(OptimizerKind::Sgd, lr, None),
        ]
    } else {
        let o = *rng.pick(&[
            OptimizerKind::Sgd,
            OptimizerKind::Rbd,
            OptimizerKind::Fpd,
            OptimizerKind::Nes,
        ]);
        vec![segment(o, lr, None)]
    };
    let base = RunConfig::new(model, DatasetSpec::Known(dataset), schedule);
    let mut c = base.clone();
    c.epochs = epochs;
    c.seed = rng.next_u64() >> rng.below(64);
    c.settings.directions.dim = rng.range(1, 250);
    c.data.batch_size = *rng.pick(&[32, 64, 128]);
    c.settings.directions.compartments = *rng.pick(&[
        Compartments::Even(1),
        Compartments::Even(3),
        Compartments::PerLayer,
        Compartments::Capped(5000),
    ]);
    c.settings.directions.distribution = *rng.pick(DistributionKind::ALL);
    c.settings.directions.generator = *rng.pick(&[Generator::Threefry, Generator::Philox]);
    c.settings.directions.bernoulli_p = *rng.pick(&[0.5, 0.25]);
    c.settings.rbd.correlation = rng.chance(1, 4);
    c.options.checkpoint_every = *rng.pick(&[
        CheckpointEvery::Off,
        CheckpointEvery::Epochs(1),
        CheckpointEvery::Steps(500),
    ]);
    c.data.train_limit = rng.chance(1, 4).then_some(20_000);
    c.options.tuning_split = rng.chance(1, 4);
    c.options.eval_test = rng.chance(1, 4);
    c.data.augment = rng.chance(3, 4);
    c.settings.nes.nes_epochs = *rng.pick(NesEpochs::ALL);
    if rng.chance(1, 4) {
        c.resumed_with = vec!["epochs 3 -> 5".into()];
    }
    if c.validate().is_ok() {
        c
    } else {
        base
    }
}

impl Target for ConfigJson {
    fn name(&self) -> &'static str {
        "config"
    }

    fn about(&self) -> &'static str {
        "a run's config.json (load_config: parse and validate)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let cfg = random_config(rng);
        let text = serde_json::to_string_pretty(&cfg).expect("a configuration serialises");
        if keep_valid(rng) {
            return Case::one("config.json", text.into_bytes(), "valid".into(), true);
        }
        let (bytes, what) = json::mutate_text(rng, &text, true);
        Case::one("config.json", bytes, what, false)
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        Verdict::of(load_config(&dir.join(&case.named)), |_| Verdict::Accepted)
    }

    fn alloc_bound(&self, input: usize) -> usize {
        // Validation builds the model's layout (no weights): a fixed cost.
        16 * input + (4 << 20)
    }
}
