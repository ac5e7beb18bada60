//! The released code's variants through the trainer and the command line.
//!
//! NES with the released epoch accounting (`nes_epochs = released`): updates straddle
//! epoch ends, every batch of the stream is used once and in order, and runs stopped at
//! a straddling, a mid-epoch or an epoch-boundary position resume to the bit; the
//! default (`whole`) keeps whole updates per epoch. NES as the released code runs it
//! (`nes_epochs = update`): one update per epoch from the same stream, resumable to the
//! bit at a data epoch's crossing. The released Bernoulli: named in
//! the log and `config.json`, and a different run from the zero-mean one.

use super::{final_params, metrics, scratch_with_data};
use rbd::signals::StopFlag;
use rbd::train::kinds::{CheckpointEvery, DatasetSpec};
use rbd::train::{Claim, EpochEnd, Observer, Outcome, RunConfig, Segment, Silent, Trainer};
use rbd_engine::DeviceChoice;
use rbd_models::ModelKind;
use rbd_optim::{NesEpochs, OptimizerKind};
use std::path::{Path, PathBuf};

/// 600 synthetic images, 200 held out: 400 to train on, 12 batches of 32 an epoch.
const PER_EPOCH: usize = 12;

fn data(name: &str) -> (PathBuf, PathBuf) {
    let (dir, data) = scratch_with_data(name, 600);
    (dir, data)
}

fn config(data: &Path, dim: usize, epochs: u64, variant: NesEpochs) -> RunConfig {
    let mut cfg = RunConfig::new(
        ModelKind::Fc,
        DatasetSpec::Idx(data.to_path_buf()),
        vec![Segment {
            optimizer: OptimizerKind::Nes,
            lr: 0.125,
            lr_source: "given".into(),
            until_epoch: None,
        }],
    );
    cfg.epochs = epochs;
    cfg.data.val_size = 200;
    cfg.settings.directions.dim = dim;
    cfg.device = DeviceChoice::Cpu;
    cfg.options.checkpoint_every = CheckpointEvery::Epochs(1);
    cfg.options.log_every_steps = 1;
    cfg.settings.nes.nes_epochs = variant;
    cfg
}

fn column(dir: &Path, name: &str) -> Vec<u64> {
    metrics(dir)
        .iter()
        .map(|r| r[name].as_u64().unwrap())
        .collect()
}

#[test]
fn released_nes_updates_straddle_epochs_and_whole_updates_do_not() {
    let (dir, data) = data("nes-epochs-counts");
    // (d, updates per epoch released, whole): 12 batches an epoch.
    // d = 5: epoch 0 ends at batch 15 (3 carried), epoch 1 at 13 (1), epoch 2 at 16 (4),
    // epoch 3 at 14: 3, 2, 3, 2 = ⌈4·12/5⌉ = 10 updates, against 2 per epoch whole.
    // d = 4 divides the epoch: both accountings agree.
    for (dim, released, whole) in [
        (5, vec![3, 2, 3, 2], vec![2, 2, 2, 2]),
        (4, vec![3, 3, 3, 3], vec![3, 3, 3, 3]),
    ] {
        let update = vec![1; 4];
        for (variant, want) in [
            (NesEpochs::Released, &released),
            (NesEpochs::Whole, &whole),
            (NesEpochs::Update, &update),
        ] {
            let out = dir.join(format!("{variant}-d{dim}"));
            let cfg = config(&data, dim, 4, variant);
            let outcome = Trainer::start(cfg, &out, Claim::New, Box::new(Silent), StopFlag::new())
                .unwrap()
                .run()
                .unwrap();
            assert_eq!(outcome, Outcome::Finished);
            assert_eq!(&column(&out, "updates"), want, "{variant} d = {dim}");
            let steps = column(&out, "step");
            let mut sum = 0;
            let running: Vec<u64> = want
                .iter()
                .map(|u| {
                    sum += u;
                    sum
                })
                .collect();
            assert_eq!(steps, running, "{variant} d = {dim}: cumulative steps");
            // Images trained on: 32·d per update, from the step rows (one per step).
            let images: u64 = std::fs::read_to_string(out.join("steps.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["images"]
                        .as_u64()
                        .unwrap()
                })
                .sum();
            assert_eq!(images, 32 * dim as u64 * sum, "{variant} d = {dim}");
            let config = std::fs::read_to_string(out.join("config.json")).unwrap();
            assert_eq!(
                config.contains(&format!("\"nes_epochs\": \"{variant}\"")),
                variant != NesEpochs::Whole,
                "config.json names the accounting off its default: {config}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The trainer's released NES equals NES stepped by hand over one endless stream of
/// the loader's batches (epoch 0 from batch 0, epoch 1 from batch 0, ...) for
/// ⌈epochs·batches/d⌉ steps, bit for bit: no batch is skipped, repeated or reordered
/// at the straddles.
#[test]
fn released_nes_uses_every_batch_of_the_stream_once_in_order() {
    let (dir, data) = data("nes-epochs-stream");
    let (dim, epochs) = (5, 3);
    let cfg = config(&data, dim, epochs, NesEpochs::Released);
    let mut t = Trainer::start(
        cfg.clone(),
        &dir.join("trainer"),
        Claim::New,
        Box::new(Silent),
        StopFlag::new(),
    )
    .unwrap();
    while !t.is_done() {
        assert_eq!(t.train_epoch().unwrap(), EpochEnd::Completed);
        t.evaluate().unwrap();
    }
    let trained = t.theta().to_vec_f32().unwrap();
    let steps = t.position().step;
    drop(t);
    let want_steps = (epochs as usize * PER_EPOCH).div_ceil(dim);
    assert_eq!(steps, want_steps as u64);

    let (by_hand, used) = nes_by_hand(&cfg, want_steps, epochs);
    // Every batch of the epochs trained, the last update running on into the stream's
    // next epoch by less than one update.
    let all = epochs as usize * PER_EPOCH;
    assert!((all..all + dim).contains(&used), "{used} batches");
    assert!(
        trained
            .iter()
            .zip(&by_hand)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "the trainer's released NES is not NES over the loader's stream"
    );
    // The whole accounting drops batches, so it trains on another sequence.
    let mut w = Trainer::start(
        config(&data, dim, epochs, NesEpochs::Whole),
        &dir.join("whole"),
        Claim::New,
        Box::new(Silent),
        StopFlag::new(),
    )
    .unwrap();
    while !w.is_done() {
        w.train_epoch().unwrap();
        w.evaluate().unwrap();
    }
    assert_ne!(w.theta().to_vec_f32().unwrap(), by_hand);
    let _ = std::fs::remove_dir_all(&dir);
}

/// θ after `steps` NES steps by hand over one endless stream of the loader's batches
/// (data epoch 0 from batch 0, epoch 1 from batch 0, ...), and the batches used.
fn nes_by_hand(cfg: &RunConfig, steps: usize, data_epochs: u64) -> (Vec<f32>, usize) {
    use rbd_engine::{Device, Tensor};
    let device = Device::Cpu;
    let d = rbd::train::data::load(cfg, &mut |_| {}).unwrap();
    let loader = rbd_datasets::TrainLoader::new(
        d.train.clone(),
        d.train_indices.clone(),
        d.loader_config(cfg),
    )
    .unwrap();
    assert_eq!(loader.batches_per_epoch(), PER_EPOCH);
    let model = rbd_models::build(ModelKind::Fc, 1, 28, 28, &device).unwrap();
    let layout = model.layout();
    let mut theta = Tensor::from_f32(&device, &layout.init(cfg.seed), &[layout.total]).unwrap();
    let mut nes =
        rbd::train::optimizers::build(cfg, layout, 0, &theta, &rbd::train::Team::single()).unwrap();
    let stream = loader.prefetch_epochs(0, 0, data_epochs + 1).unwrap();
    let mut oracle = rbd::train::oracle::TrainOracle::new(
        model.as_ref(),
        device.clone(),
        Box::new(stream),
        d.classes,
        Default::default(),
        Default::default(),
    )
    .unwrap();
    for step in 0..steps {
        theta = nes.step(step as u64, &theta, &mut oracle).unwrap().theta;
    }
    let used = oracle.batches_used;
    drop(oracle);
    (theta.to_vec_f32().unwrap(), used)
}

/// The released code's NES as run (`update`): each epoch is one update taken from the
/// same endless stream, so 7 epochs at d = 5 are 7 updates over 35 batches, crossing
/// two data epochs (of 12 batches) mid-update, bit for bit NES stepped by hand; and it
/// resumes to the bit from a checkpoint taken after an update that crossed a data
/// epoch, before and after its evaluation.
#[test]
fn update_nes_is_one_update_per_epoch_over_the_stream_and_resumes_bitwise() {
    let (dir, data) = data("nes-epochs-update");
    let (dim, epochs) = (5, 7);
    let cfg = config(&data, dim, epochs, NesEpochs::Update);
    let finish = |mut t: Trainer| -> Vec<u32> {
        while !t.is_done() {
            assert_eq!(t.train_epoch().unwrap(), EpochEnd::Completed);
            t.evaluate().unwrap();
        }
        t.theta()
            .to_vec_f32()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let straight = dir.join("straight");
    let trained = finish(
        Trainer::start(
            cfg.clone(),
            &straight,
            Claim::New,
            Box::new(Silent),
            StopFlag::new(),
        )
        .unwrap(),
    );
    assert_eq!(column(&straight, "updates"), vec![1; 7]);
    assert_eq!(column(&straight, "step"), (1..=7).collect::<Vec<u64>>());
    let (by_hand, used) = nes_by_hand(&cfg, 7, 3);
    assert_eq!(used, 35);
    let by_hand: Vec<u32> = by_hand.iter().map(|v| v.to_bits()).collect();
    assert!(
        trained == by_hand,
        "the trainer's update-per-epoch NES is not NES over the loader's stream"
    );
    // Epoch 2 is stream batches 10..15: it crosses data epoch 0's end at 12.
    for evaluated in [false, true] {
        let out = dir.join(format!("resume-{evaluated}"));
        let mut t = Trainer::start(
            cfg.clone(),
            &out,
            Claim::New,
            Box::new(Silent),
            StopFlag::new(),
        )
        .unwrap();
        for _ in 0..2 {
            t.train_epoch().unwrap();
            t.evaluate().unwrap();
        }
        t.train_epoch().unwrap();
        let mut want = (2, 5, 3);
        if evaluated {
            t.evaluate().unwrap();
            want = (3, 0, 3);
        }
        assert_eq!(
            (t.position().epoch, t.position().batch, t.position().step),
            want
        );
        assert!(t.checkpoint_if_due().unwrap());
        drop(t);
        let resumed = finish(
            Trainer::resume(&out, &Default::default(), Box::new(Silent), StopFlag::new()).unwrap(),
        );
        assert!(resumed == trained, "{}", out.display());
        assert_eq!(column(&out, "updates"), vec![1; 7]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Requests a stop once a step of epoch `epoch` ends at batch `batch` (the trainer
/// stops, with a checkpoint, after the following step).
struct StopAt {
    flag: StopFlag,
    epoch: u64,
    batch: usize,
    current: u64,
}

impl Observer for StopAt {
    fn epoch_started(&mut self, epoch: u64, _: u64, _: usize, _: usize) {
        self.current = epoch;
    }
    fn step(&mut self, batch: usize, _: &rbd::train::oracle::EpochSums, _: f64) {
        if self.current == self.epoch && batch == self.batch {
            self.flag.request(2);
        }
    }
}

#[test]
fn released_nes_resumes_bitwise_from_straddling_mid_epoch_and_boundary_checkpoints() {
    let (dir, data) = data("nes-epochs-resume");
    let cfg = config(&data, 5, 4, NesEpochs::Released);
    let whole = dir.join("whole");
    Trainer::start(
        cfg.clone(),
        &whole,
        Claim::New,
        Box::new(Silent),
        StopFlag::new(),
    )
    .unwrap()
    .run()
    .unwrap();
    let resume = |out: &Path| {
        let outcome = Trainer::resume(out, &Default::default(), Box::new(Silent), StopFlag::new())
            .unwrap()
            .run()
            .unwrap();
        assert_eq!(outcome, Outcome::Finished);
        assert_eq!(final_params(&whole), final_params(out), "{}", out.display());
        assert_eq!(
            column(&whole, "updates"),
            column(out, "updates"),
            "{}",
            out.display()
        );
    };

    // 1. After epoch 0's straddling update (batch 15 of 12: 3 into epoch 1), before
    // its evaluation.
    let straddle = dir.join("straddle");
    let mut t = Trainer::start(
        cfg.clone(),
        &straddle,
        Claim::New,
        Box::new(Silent),
        StopFlag::new(),
    )
    .unwrap();
    t.train_epoch().unwrap();
    assert_eq!(
        (t.position().epoch, t.position().batch, t.position().step),
        (0, 15, 3)
    );
    assert!(t.checkpoint_if_due().unwrap());
    drop(t);
    resume(&straddle);

    // 2. At the boundary: epoch 0 evaluated, epoch 1 starting at the carried batch 3.
    let boundary = dir.join("boundary");
    let mut t = Trainer::start(
        cfg.clone(),
        &boundary,
        Claim::New,
        Box::new(Silent),
        StopFlag::new(),
    )
    .unwrap();
    t.train_epoch().unwrap();
    t.evaluate().unwrap();
    assert_eq!(
        (t.position().epoch, t.position().batch, t.position().step),
        (1, 3, 3)
    );
    assert!(t.checkpoint_if_due().unwrap());
    drop(t);
    resume(&boundary);

    // Epoch 2 starts at the carried batch 1; its updates end at 6, 11 and 16.
    // 3. Mid-epoch: stopped (as by Ctrl-C) at batch 11 of epoch 2.
    // 4. Stopped right after epoch 2's straddling update (batch 16 of 12).
    for (name, epoch, at, want) in [
        ("mid", 2, 6, (2, 11, 7)),
        ("signal-straddle", 2, 11, (2, 16, 8)),
    ] {
        let out = dir.join(name);
        let flag = StopFlag::new();
        let observer = StopAt {
            flag: flag.clone(),
            epoch,
            batch: at,
            current: 0,
        };
        let outcome = Trainer::start(cfg.clone(), &out, Claim::New, Box::new(observer), flag)
            .unwrap()
            .run()
            .unwrap();
        let Outcome::Interrupted { position, .. } = outcome else {
            panic!("{name}: the run was not interrupted");
        };
        assert_eq!(
            (position.epoch, position.batch, position.step),
            want,
            "{name}"
        );
        resume(&out);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint whose position the released accounting cannot reach (batch 16 is not
/// a whole number of 5-batch updates into the run) is refused on resume, naming the
/// file; the straddling position it was forged from resumes.
#[test]
fn a_released_nes_checkpoint_at_an_impossible_position_is_refused() {
    use rbd::train::checkpoint;
    let (dir, data) = data("nes-epochs-refuse");
    let out = dir.join("run");
    let mut t = Trainer::start(
        config(&data, 5, 2, NesEpochs::Released),
        &out,
        Claim::New,
        Box::new(Silent),
        StopFlag::new(),
    )
    .unwrap();
    t.train_epoch().unwrap();
    t.checkpoint_if_due().unwrap();
    drop(t);
    let file = out.join("checkpoint.safetensors");
    let good = std::fs::read(&file).unwrap();
    let l = checkpoint::load(&file).unwrap();
    assert_eq!(l.position.batch, 15);
    let mut p = l.position.clone();
    p.batch = 16;
    checkpoint::save(&file, &l.tensors, &p, &l.run_id).unwrap();
    let e = Trainer::resume(&out, &Default::default(), Box::new(Silent), StopFlag::new())
        .err()
        .expect("an unreachable position must be refused")
        .to_string();
    assert!(
        e.contains("checkpoint.safetensors") && e.contains("whole number"),
        "{e}"
    );
    std::fs::write(&file, good).unwrap();
    let outcome = Trainer::resume(&out, &Default::default(), Box::new(Silent), StopFlag::new())
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(outcome, Outcome::Finished);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What `rbd train` prints and records names the variants that ran: the NES epoch
/// accounting with each epoch's updates, and which Bernoulli the directions drew.
#[test]
fn outputs_name_the_nes_accounting_and_the_bernoulli() {
    use super::{run, train_args};
    let (dir, data) = data("variants-named");
    let data_arg = format!("idx:{}", data.display());
    let nes = dir.join("nes");
    let o = run(&train_args(
        &data_arg,
        nes.to_str().unwrap(),
        "nes",
        &[
            "--epochs",
            "2",
            "--dim",
            "5",
            "--lr",
            "2^-3",
            "--nes-epochs",
            "released",
        ],
    ));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("NES epochs: released (epochs count images: one stream of batches"),
        "{out}"
    );
    assert!(
        out.contains("epoch 1/2 (3 updates)") && out.contains("epoch 2/2 (2 updates)"),
        "{out}"
    );
    let csv = std::fs::read_to_string(nes.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("epoch,step,updates,"), "{csv}");
    for (dist, shown) in [
        (
            "bernoulli-released",
            "directions: bernoulli-released p = 0.5: {+0.5, -1.5}, mean -0.5 (released code)",
        ),
        (
            "bernoulli",
            "directions: bernoulli p = 0.5: zero-mean {+1, -1} (paper)",
        ),
    ] {
        let rbd = dir.join(dist);
        let o = run(&train_args(
            &data_arg,
            rbd.to_str().unwrap(),
            "rbd",
            &[
                "--epochs",
                "1",
                "--dim",
                "5",
                "--lr",
                "2^-1",
                "--distribution",
                dist,
            ],
        ));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains(shown), "{out}");
        let config = std::fs::read_to_string(rbd.join("config.json")).unwrap();
        assert!(
            config.contains(&format!("\"distribution\": \"{dist}\"")),
            "{config}"
        );
    }
    // The two Bernoullis train different runs from the same seed.
    assert_ne!(
        final_params(&dir.join("bernoulli")),
        final_params(&dir.join("bernoulli-released"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
