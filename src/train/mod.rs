//! `rbd train`: data, model, optimiser schedule, progress, metrics, plots,
//! checkpoints, resume and divergence handling.

pub mod checkpoint;
pub mod config;
pub mod metrics;
pub mod optimizers;
pub mod oracle;
pub mod plot;

use crate::cli::TrainArgs;
use anyhow::{bail, Context, Result};
use checkpoint::{HostTensors, Position};
use config::RunConfig;
use indicatif::{ProgressBar, ProgressStyle};
use metrics::{EpochMetrics, Summary};
use oracle::{evaluate, EpochSums, TrainOracle};
use rbd_datasets::{Dataset, DatasetKind, Preprocess, Split, TrainConfig, TrainLoader};
use rbd_engine::{Device, DeviceChoice, Tensor};
use rbd_models::Model;
use rbd_optim::Optimizer;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const CHECKPOINT: &str = "checkpoint.safetensors";
const FINAL: &str = "final.safetensors";

/// Training and evaluation data of a run.
pub struct Data {
    /// The training split's data set.
    pub train: Arc<Dataset>,
    /// Indices trained on.
    pub train_indices: Vec<usize>,
    /// Indices validated on (from the training data set).
    pub val_indices: Vec<usize>,
    /// The test set, if asked for.
    pub test: Option<Dataset>,
    /// The kind (None for idx:DIR).
    pub kind: Option<DatasetKind>,
}

fn load_data(cfg: &RunConfig) -> Result<Data> {
    let mut log = |m: &str| eprintln!("{m}");
    let (kind, train, test) = if let Some(dir) = cfg.dataset.strip_prefix("idx:") {
        let dir = Path::new(dir);
        let pair = |img: &str, lab: &str| -> Result<Dataset> {
            let find = |name: &str| {
                rbd_datasets::locate_idx_file(dir, name)
                    .with_context(|| format!("{}: no {name} (or {name}.gz)", dir.display()))
            };
            Ok(rbd_datasets::load_idx_pair(&find(img)?, &find(lab)?)?)
        };
        let train = pair("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
        let test = if cfg.eval_test {
            Some(pair("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?)
        } else {
            None
        };
        (None, train, test)
    } else {
        let kind: DatasetKind = cfg.dataset.parse()?;
        let train = rbd_datasets::load(kind, Split::Train, &cfg.data_dir, &mut log)?;
        let test = if cfg.eval_test {
            Some(rbd_datasets::load(
                kind,
                Split::Test,
                &cfg.data_dir,
                &mut log,
            )?)
        } else {
            None
        };
        (Some(kind), train, test)
    };
    let n = cfg.train_limit.unwrap_or(train.n).min(train.n);
    let all: Vec<usize> = (0..n).collect();
    if cfg.val_size >= n {
        bail!(
            "--val-size {} leaves nothing to train on ({} training images)",
            cfg.val_size,
            n
        );
    }
    let split = rbd_datasets::holdout_split(&all, cfg.val_size, cfg.seed)?;
    let (train_indices, val_indices) = if cfg.tuning_split {
        let t = rbd_datasets::tuning_split(&split.train, cfg.seed);
        (t.train, t.held_out)
    } else {
        (split.train, split.held_out)
    };
    if train_indices.len() < cfg.batch_size {
        bail!(
            "{} training images are fewer than one batch of {}",
            train_indices.len(),
            cfg.batch_size
        );
    }
    Ok(Data {
        train: Arc::new(train),
        train_indices,
        val_indices,
        test,
        kind,
    })
}

fn preprocess(kind: Option<DatasetKind>) -> Preprocess {
    kind.map(Preprocess::for_kind)
        .unwrap_or(Preprocess::SCALE_ONLY)
}

/// θ and state as named host tensors, for checkpoints.
fn snapshot(model: &dyn Model, theta: &Tensor, optimizer: &dyn Optimizer) -> Result<HostTensors> {
    let values = theta.to_vec_f32()?;
    let mut out: HostTensors = model
        .layout()
        .specs
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.shape.clone(),
                values[s.offset..s.offset + s.len()].to_vec(),
            )
        })
        .collect();
    for (name, t) in model.state() {
        out.push((name, t.shape().to_vec(), t.to_vec_f32()?));
    }
    for (name, t) in optimizer.state() {
        out.push((format!("optim.{name}"), t.shape().to_vec(), t.to_vec_f32()?));
    }
    Ok(out)
}

fn restore(
    path: &Path,
    tensors: &HostTensors,
    model: &dyn Model,
    optimizer: &mut dyn Optimizer,
    device: &Device,
) -> Result<Tensor> {
    let layout = model.layout();
    let mut theta = vec![0f32; layout.total];
    for s in &layout.specs {
        let (_, shape, v) = checkpoint::take(tensors, &s.name, path)?;
        if *shape != s.shape {
            bail!(
                "{}: {} has shape {shape:?}, the model wants {:?}",
                path.display(),
                s.name,
                s.shape
            );
        }
        theta[s.offset..s.offset + s.len()].copy_from_slice(v);
    }
    let mut state = Vec::new();
    for (name, _) in model.state() {
        let (_, shape, v) = checkpoint::take(tensors, &name, path)?;
        state.push((name, Tensor::from_f32(device, v, shape)?));
    }
    model.set_state(&state)?;
    let mut opt_state = Vec::new();
    for (name, shape, v) in tensors {
        if let Some(n) = name.strip_prefix("optim.") {
            opt_state.push((n.to_string(), Tensor::from_f32(device, v, shape)?));
        }
    }
    optimizer.load_state(&opt_state)?;
    Ok(Tensor::from_f32(device, &theta, &[layout.total])?)
}

/// Runs `rbd train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let (cfg, resume) = match &args.resume {
        Some(dir) => {
            let path = dir.join("config.json");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("--resume: no run at {} ({})", dir.display(), path.display())
            })?;
            let mut cfg: RunConfig = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a valid run configuration", path.display()))?;
            cfg.out = dir.clone();
            let ck = dir.join(CHECKPOINT);
            let resume = if ck.exists() {
                Some(checkpoint::load(&ck)?)
            } else {
                None
            };
            if resume.is_none() {
                eprintln!(
                    "no checkpoint in {}: starting the run from the beginning",
                    dir.display()
                );
            }
            (cfg, resume)
        }
        None => (RunConfig::from_args(args)?, None),
    };
    let device = Device::open(cfg.device.parse::<DeviceChoice>()?)?;
    println!("device: {}", device.describe());
    for s in &cfg.schedule {
        println!(
            "optimizer: {} lr {} ({}){}",
            s.optimizer,
            crate::lr::format_lr(s.lr),
            s.lr_source,
            s.until_epoch
                .map(|u| format!(" until epoch {u}"))
                .unwrap_or_default()
        );
    }
    let data = load_data(&cfg)?;
    let (c, h, w) = (data.train.c, data.train.h, data.train.w);
    let model = rbd_models::build(&cfg.model, c, h, w, &device)?;
    let classes = 10;
    println!(
        "model: {} with D = {} trainable parameters; data: {} ({} train / {} validation images)",
        model.name(),
        model.layout().total,
        cfg.dataset,
        data.train_indices.len(),
        data.val_indices.len()
    );
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    if resume.is_none() {
        std::fs::write(
            cfg.out.join("config.json"),
            serde_json::to_string_pretty(&cfg)?,
        )?;
    }
    let mut train_cfg = match data.kind {
        Some(k) => TrainConfig::for_kind(k, cfg.seed),
        None => TrainConfig::for_kind(DatasetKind::Mnist, cfg.seed),
    };
    train_cfg.batch_size = cfg.batch_size;
    let loader = TrainLoader::new(data.train.clone(), data.train_indices.clone(), train_cfg)?;
    let per_epoch = loader.batches_per_epoch();

    let ctx = optimizers::Context {
        cfg: &cfg,
        device: &device,
        layout: model.layout(),
    };
    // θ₀ from the seed; a resumed run replaces θ (and FPD's state) from the checkpoint.
    let theta0 = Tensor::from_f32(
        &device,
        &model.layout().init(cfg.seed),
        &[model.layout().total],
    )?;
    let start_epoch = resume.as_ref().map_or(0, |(_, p)| p.epoch);
    let mut segment_index = cfg.segment_at(start_epoch).0;
    let mut optimizer: Box<dyn Optimizer> = optimizers::build(&ctx, segment_index, &theta0)?;
    let (mut theta, mut pos, mut rows) = match resume {
        Some((tensors, p)) => {
            let theta = restore(
                &cfg.out.join(CHECKPOINT),
                &tensors,
                model.as_ref(),
                optimizer.as_mut(),
                &device,
            )?;
            let mut rows = metrics::read_all(&cfg.out)?;
            rows.truncate(p.metric_rows);
            println!(
                "resuming at epoch {} batch {} (step {})",
                p.epoch + 1,
                p.batch,
                p.step
            );
            (theta, p, rows)
        }
        None => (theta0, Position::default(), Vec::new()),
    };

    let ck_path = cfg.out.join(CHECKPOINT);
    let save_checkpoint =
        |theta: &Tensor, optimizer: &dyn Optimizer, pos: &Position| -> Result<()> {
            checkpoint::save(&ck_path, &snapshot(model.as_ref(), theta, optimizer)?, pos)
        };

    while pos.epoch < cfg.epochs {
        let (seg_i, segment) = cfg.segment_at(pos.epoch);
        if seg_i != segment_index {
            segment_index = seg_i;
            optimizer = optimizers::build(&ctx, segment_index, &theta)?;
            println!(
                "epoch {}: switching to {}",
                pos.epoch + 1,
                segment.optimizer
            );
        }
        let bps = optimizer.batches_per_step();
        if bps > per_epoch {
            bail!(
                "{} needs {bps} batches per step but an epoch has only {per_epoch}: lower --dim (the NES population) or use more training data",
                segment.optimizer
            );
        }
        let steps_this_epoch = (per_epoch - pos.batch) / bps;
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new(per_epoch as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} batches {msg} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_prefix(format!("{}/{}", pos.epoch + 1, cfg.epochs));
            b.set_position(pos.batch as u64);
            b
        };
        let mut batches = loader.prefetch(pos.epoch, pos.batch)?;
        let mut started = Instant::now();
        let mut seconds_before = pos.epoch_seconds;
        for _ in 0..steps_this_epoch {
            let mut oracle = TrainOracle {
                model: model.as_ref(),
                device: device.clone(),
                batches: &mut batches,
                classes,
                sums: pos.sums,
                batches_used: 0,
                diverged: None,
            };
            let result = optimizer.step(pos.step, &theta, &mut oracle);
            let (sums, used, diverged) = (oracle.sums, oracle.batches_used, oracle.diverged);
            let info = match (result, diverged) {
                (_, Some(loss)) => {
                    bar.abandon();
                    metrics::write_all(&cfg.out, &rows)?;
                    let kept = if ck_path.exists() {
                        format!("the last good checkpoint is {}", ck_path.display())
                    } else {
                        "no checkpoint was written before".to_string()
                    };
                    bail!(
                        "diverged: the training loss became {loss} at epoch {} step {} (lr {}); {kept}; metrics of completed epochs are in {}. Try a smaller --lr.",
                        pos.epoch + 1,
                        pos.step,
                        crate::lr::format_lr(segment.lr),
                        cfg.out.display()
                    );
                }
                (r, None) => r?,
            };
            theta = info.theta;
            if let Some(c) = info.correlation {
                pos.correlations.push(c);
            }
            pos.sums = sums;
            pos.batch += used;
            pos.step += 1;
            pos.epoch_seconds = seconds_before + started.elapsed().as_secs_f64();
            let s = pos.sums;
            bar.set_position(pos.batch as u64);
            bar.set_message(format!(
                "loss {:.4} acc {:.2}% {:.0} img/s",
                s.loss_sum / s.seen.max(1) as f64,
                100.0 * s.correct as f64 / s.seen.max(1) as f64,
                s.seen as f64 / pos.epoch_seconds.max(1e-9)
            ));
            if let Some((n, unit)) = &cfg.checkpoint_every {
                if unit == "steps" && pos.step % n == 0 {
                    device.synchronize()?;
                    save_checkpoint(&theta, optimizer.as_ref(), &pos)?;
                    // Checkpoint time is not training time.
                    seconds_before = pos.epoch_seconds;
                    started = Instant::now();
                }
            }
        }
        drop(batches);
        device.synchronize()?;
        bar.finish_and_clear();
        let pre = preprocess(data.kind);
        let (val_loss, val_acc) = evaluate(
            model.as_ref(),
            &device,
            &theta,
            rbd_datasets::eval_batches(&data.train, &data.val_indices, cfg.eval_batch_size, pre),
            classes,
        )?;
        let (test_loss, test_acc) = match &data.test {
            Some(test) => {
                let idx: Vec<usize> = (0..test.n).collect();
                let (l, a) = evaluate(
                    model.as_ref(),
                    &device,
                    &theta,
                    rbd_datasets::eval_batches(test, &idx, cfg.eval_batch_size, pre),
                    classes,
                )?;
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        let s: EpochSums = pos.sums;
        let correlation = Summary::of(&pos.correlations.iter().map(|c| c[0]).collect::<Vec<_>>());
        let per_tensor = correlation.map(|_| {
            model
                .layout()
                .specs
                .iter()
                .enumerate()
                .map(|(i, spec)| {
                    let xs: Vec<f64> = pos
                        .correlations
                        .iter()
                        .filter_map(|c| c.get(i + 1).copied())
                        .collect();
                    (spec.name.clone(), Summary::of(&xs).unwrap_or_default())
                })
                .collect()
        });
        let row = EpochMetrics {
            epoch: pos.epoch + 1,
            step: pos.step,
            optimizer: segment.optimizer.clone(),
            lr: segment.lr,
            train_loss: s.loss_sum / s.seen.max(1) as f64,
            train_accuracy: s.correct as f64 / s.seen.max(1) as f64,
            val_loss,
            val_accuracy: val_acc,
            test_loss,
            test_accuracy: test_acc,
            seconds: pos.epoch_seconds,
            images_per_second: s.seen as f64 / pos.epoch_seconds.max(1e-9),
            correlation,
            correlation_per_tensor: per_tensor,
        };
        println!(
            "epoch {}/{}: train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}%{} | {:.1} s, {:.0} img/s{}",
            row.epoch,
            cfg.epochs,
            row.train_loss,
            100.0 * row.train_accuracy,
            row.val_loss,
            100.0 * row.val_accuracy,
            match (row.test_loss, row.test_accuracy) {
                (Some(l), Some(a)) => format!(" | test loss {l:.4} acc {:.2}%", 100.0 * a),
                _ => String::new(),
            },
            row.seconds,
            row.images_per_second,
            row.correlation
                .map(|c| format!(" | corr {:.4}±{:.4}", c.mean, c.std))
                .unwrap_or_default()
        );
        rows.push(row);
        metrics::write_all(&cfg.out, &rows)?;
        draw_curves(&cfg.out, &rows)?;
        pos.epoch += 1;
        pos.batch = 0;
        pos.sums = EpochSums::default();
        pos.epoch_seconds = 0.0;
        pos.correlations.clear();
        pos.metric_rows = rows.len();
        let due = match &cfg.checkpoint_every {
            Some((n, unit)) if unit == "epochs" => pos.epoch % n == 0,
            _ => false,
        };
        if due || (cfg.checkpoint_every.is_some() && pos.epoch == cfg.epochs) {
            save_checkpoint(&theta, optimizer.as_ref(), &pos)?;
        }
    }
    checkpoint::save(
        &cfg.out.join(FINAL),
        &snapshot(model.as_ref(), &theta, optimizer.as_ref())?,
        &pos,
    )?;
    println!("run directory: {}", cfg.out.display());
    Ok(())
}

fn draw_curves(dir: &Path, rows: &[EpochMetrics]) -> Result<()> {
    let mut series = vec![
        plot::Series {
            label: "validation".into(),
            points: rows
                .iter()
                .map(|r| (r.epoch as f64, 100.0 * r.val_accuracy))
                .collect(),
        },
        plot::Series {
            label: "train (augmented)".into(),
            points: rows
                .iter()
                .map(|r| (r.epoch as f64, 100.0 * r.train_accuracy))
                .collect(),
        },
    ];
    if rows.iter().all(|r| r.test_accuracy.is_some()) && !rows.is_empty() {
        series.push(plot::Series {
            label: "test".into(),
            points: rows
                .iter()
                .map(|r| (r.epoch as f64, 100.0 * r.test_accuracy.unwrap_or(0.0)))
                .collect(),
        });
    }
    plot::line_chart(
        &dir.join("accuracy.svg"),
        "accuracy per epoch",
        "epoch",
        "accuracy (%)",
        &series,
        false,
    )
}
