//! The trainer: start or resume a run, train an epoch, evaluate, checkpoint when due,
//! finish. The CLI, the sweep runner and the distributed launcher all drive it.

use super::checkpoint::{self, HostTensors, Loaded, Position};
use super::config::RunConfig;
use super::data::{self, Data};
use super::kinds::CheckpointEvery;
use super::metrics::{self, EpochInputs, EpochMetrics, EpochTiming, Evaluation, StepMetrics};
use super::oracle::{EpochSums, TrainOracle};
use super::run_dir::{Claim, RunDir};
use super::steps;
use super::team::{CommStats, Team};
use super::{optimizers, plot, Observer, ResumeChanges};
use crate::signals::StopFlag;
use anyhow::{anyhow, bail, Context, Result};
use rbd_datasets::TrainLoader;
use rbd_engine::{Device, Tensor};
use rbd_models::Model;
use rbd_optim::Optimizer;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The checkpoint file of a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The final parameters of a finished run (same format as a checkpoint).
pub const FINAL: &str = "final.safetensors";
/// The configuration file of a run directory.
pub const CONFIG: &str = "config.json";

/// The training loss or a parameter became non-finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Diverged {
    /// The training loss (the epoch's mean so far when a parameter diverged).
    pub loss: f64,
    /// The first non-finite parameter, as `tensor[index] = value`, when the parameters
    /// diverged while the loss stayed finite (a NaN behind a ReLU changes no output).
    pub parameter: Option<String>,
    /// Epoch (from 1).
    pub epoch: u64,
    /// Optimiser step.
    pub step: u64,
    /// The rate in force.
    pub lr: f64,
    /// The last good checkpoint, if one was written.
    pub checkpoint: Option<PathBuf>,
    /// The run directory (metrics of completed epochs).
    pub dir: PathBuf,
}

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = match &self.checkpoint {
            Some(c) => format!("the last good checkpoint is {}", c.display()),
            None => "no checkpoint was written before".into(),
        };
        let loss = crate::nonfinite::text(self.loss);
        let what = match &self.parameter {
            Some(p) => format!("the parameter {p} is not finite (training loss {loss})"),
            None => format!("the training loss became {loss}"),
        };
        write!(
            f,
            "diverged: {what} at epoch {} step {} (lr {}); {kept}; metrics of completed epochs are in {}. Try a smaller learning rate.",
            self.epoch,
            self.step,
            crate::lr::format_lr(self.lr),
            self.dir.display()
        )
    }
}

impl std::error::Error for Diverged {}

/// How an epoch's training ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochEnd {
    /// Every step of the epoch ran.
    Completed,
    /// A stop was requested (by this signal) and a checkpoint written.
    Interrupted(i32),
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// All epochs ran; the final parameters are written.
    Finished,
    /// A stop was requested (by this signal); the checkpoint holds the position.
    Interrupted {
        /// The signal.
        signal: i32,
        /// Epoch (0-based) and step at the stop.
        position: Position,
    },
}

/// A run in progress.
pub struct Trainer {
    cfg: RunConfig,
    run_id: String,
    dir: RunDir,
    device: Device,
    data: Data,
    model: std::sync::Arc<dyn Model>,
    loader: TrainLoader,
    optimizer: Box<dyn Optimizer>,
    segment_index: usize,
    theta: Tensor,
    pos: Position,
    rows: Vec<EpochMetrics>,
    steps: Vec<StepMetrics>,
    stop: StopFlag,
    observer: Box<dyn Observer>,
    /// The processes training the run (one unless distributed).
    team: Team,
    /// Optimiser steps this process ran since the last epoch row (for bytes per step).
    steps_since_row: u64,
}

impl Trainer {
    /// Starts a new run of `cfg` in `out` (`claim` is [`Claim::New`] or
    /// [`Claim::Overwrite`]). Everything is validated before the directory is touched.
    pub fn start(
        cfg: RunConfig,
        out: &Path,
        claim: Claim,
        observer: Box<dyn Observer>,
        stop: StopFlag,
    ) -> Result<Trainer> {
        Trainer::start_in(cfg, out, claim, observer, stop, Team::single())
    }

    /// [`Trainer::start`] as one process of `team` (rank 0 writes the directory).
    pub fn start_in(
        cfg: RunConfig,
        out: &Path,
        claim: Claim,
        observer: Box<dyn Observer>,
        stop: StopFlag,
        team: Team,
    ) -> Result<Trainer> {
        if claim == Claim::Resume {
            bail!("Trainer::start starts new runs; use Trainer::resume");
        }
        cfg.validate()?;
        if team.writes() {
            super::run_dir::precheck(out, claim)?;
        }
        let t = Trainer::open(cfg, out, claim, None, observer, stop, team)?;
        t.dir
            .write(CONFIG, serde_json::to_string_pretty(&t.cfg)?.as_bytes())?;
        Ok(t)
    }

    /// Resumes the run in `out` from its latest checkpoint, applying `changes` (only
    /// those that extend a run are accepted; they are recorded in `config.json`).
    pub fn resume(
        out: &Path,
        changes: &ResumeChanges,
        observer: Box<dyn Observer>,
        stop: StopFlag,
    ) -> Result<Trainer> {
        Trainer::resume_in(out, changes, observer, stop, Team::single())
    }

    /// [`Trainer::resume`] as one process of `team` (every rank reads the run
    /// directory, rank 0 alone writes it).
    pub fn resume_in(
        out: &Path,
        changes: &ResumeChanges,
        observer: Box<dyn Observer>,
        stop: StopFlag,
        team: Team,
    ) -> Result<Trainer> {
        if team.writes() {
            // Extending a finished run: its records become files again.
            super::record::unseal(out)?;
        }
        super::run_dir::precheck(out, Claim::Resume)?;
        let path = out.join(CONFIG);
        let mut cfg = super::config::load_config(&path)?;
        let run_id = cfg.run_id();
        let changed = changes.apply(&mut cfg)?;
        cfg.validate()?;
        let loaded = latest_checkpoint(out)?;
        if let Some((file, l)) = &loaded {
            if l.run_id != run_id {
                bail!(
                    "{}: written for run {}, but {} describes run {run_id}: the checkpoint belongs to another run",
                    file.display(),
                    l.run_id,
                    path.display()
                );
            }
        }
        team.check_ranks(cfg.distributed.as_ref())?;
        let t = Trainer::open(cfg, out, Claim::Resume, loaded, observer, stop, team)?;
        if changed {
            t.dir
                .write(CONFIG, serde_json::to_string_pretty(&t.cfg)?.as_bytes())?;
        }
        Ok(t)
    }

    fn open(
        cfg: RunConfig,
        out: &Path,
        claim: Claim,
        loaded: Option<(PathBuf, Loaded)>,
        mut observer: Box<dyn Observer>,
        stop: StopFlag,
        team: Team,
    ) -> Result<Trainer> {
        team.check_ranks(cfg.distributed.as_ref())?;
        let (device, fallback) = Device::open_explained(cfg.device)?;
        if let Some(why) = fallback {
            observer.message(&why);
        }
        observer.message(&format!("device: {}", device.describe()));
        announce(&cfg, observer.as_mut());
        let data = data::load(&cfg, &mut |m| observer.message(m))?;
        let (c, h, w) = cfg.dataset.shape();
        let model: std::sync::Arc<dyn Model> =
            rbd_models::build(cfg.model, c, h, w, &device)?.into();
        observer.message(&format!(
            "model: {} with D = {} trainable parameters; data: {} ({} train / {} validation images)",
            model.name(),
            model.layout().total,
            cfg.dataset,
            data.train_indices.len(),
            data.val_indices.len()
        ));
        let loader = TrainLoader::new(
            data.train.clone(),
            data.train_indices.clone(),
            data.loader_config(&cfg),
        )?;
        // Claim the directory last: a mistake above leaves nothing written.
        let dir = if team.writes() {
            RunDir::claim(out, claim)?
        } else {
            RunDir::follow(out)
        };
        if team.writes() {
            record_provenance(&dir, &device, loaded.as_ref().map(|(_, l)| &l.position))?;
        }
        let theta0 = Tensor::from_f32(
            &device,
            &model.layout().init(cfg.seed),
            &[model.layout().total],
        )?;
        let mut t = Trainer {
            run_id: cfg.run_id(),
            segment_index: 0,
            optimizer: optimizers::build(&cfg, model.layout(), 0, &theta0, &team)?,
            theta: theta0,
            pos: Position::default(),
            rows: Vec::new(),
            steps: Vec::new(),
            cfg,
            dir,
            device,
            data,
            model,
            loader,
            stop,
            observer,
            team,
            steps_since_row: 0,
        };
        match loaded {
            Some((file, l)) => t.restore(&file, l)?,
            None if claim == Claim::Resume => t.observer.message(&format!(
                "no checkpoint in {}: starting the run from the beginning",
                out.display()
            )),
            None => {}
        }
        t.team.check_theta(&t.theta, "at the start")?;
        Ok(t)
    }

    /// Puts θ, the optimiser, the position and the metric rows back from a checkpoint.
    fn restore(&mut self, file: &Path, l: Loaded) -> Result<()> {
        let p = l.position;
        let per_epoch = self.loader.batches_per_epoch();
        let bad = |what: String| {
            anyhow!(
                "{}: {what}: the checkpoint does not fit this run",
                file.display()
            )
        };
        if p.epoch > self.cfg.epochs {
            return Err(bad(format!(
                "epoch {} is past the run's {} epochs",
                p.epoch, self.cfg.epochs
            )));
        }
        steps::check_position(&self.cfg, per_epoch, p.epoch, p.batch, p.step).map_err(bad)?;
        let mut rows = metrics::read_epochs(self.dir.path())?;
        let mut steps = metrics::read_steps(self.dir.path())?;
        if p.metric_rows as u64 != p.epoch
            || rows.len() < p.metric_rows
            || steps.len() < p.step_rows
        {
            return Err(bad(format!(
                "it records {} epoch rows and {} step rows at epoch {}; the run directory has {} and {}",
                p.metric_rows,
                p.step_rows,
                p.epoch,
                rows.len(),
                steps.len()
            )));
        }
        rows.truncate(p.metric_rows);
        steps.truncate(p.step_rows);
        let (theta, optimizer_state) =
            restore_tensors(file, &l.tensors, self.model.as_ref(), &self.device)?;
        self.theta = theta;
        // The checkpoint's optimiser state belongs to the segment in force at its epoch
        // (the trainer switches segments before writing an epoch-boundary checkpoint).
        self.segment_index = self.cfg.segment_at(p.epoch).0;
        self.optimizer = optimizers::build(
            &self.cfg,
            self.model.layout(),
            self.segment_index,
            &self.theta,
            &self.team,
        )?;
        self.optimizer.load_state(&optimizer_state)?;
        self.observer.message(&format!(
            "resuming at epoch {} batch {} (step {})",
            p.epoch + 1,
            p.batch,
            p.step
        ));
        self.pos = p;
        if !self.team.writes() {
            // The checkpoint's running sums are all ranks' (rank 0 carries them on).
            self.pos.sums = EpochSums::default();
            self.pos.window = EpochSums::default();
        }
        self.rows = rows;
        self.steps = steps;
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the run stands.
    pub fn position(&self) -> &Position {
        &self.pos
    }

    /// The epoch rows so far.
    pub fn rows(&self) -> &[EpochMetrics] {
        &self.rows
    }

    /// θ now.
    pub fn theta(&self) -> &Tensor {
        &self.theta
    }

    /// The processes training the run.
    pub fn team(&self) -> &Team {
        &self.team
    }

    /// Whether every epoch has run.
    pub fn is_done(&self) -> bool {
        self.pos.epoch >= self.cfg.epochs
    }

    /// Switches the optimiser if the schedule says so at the current epoch.
    fn enter_segment(&mut self) -> Result<()> {
        let (i, segment) = self.cfg.segment_at(self.pos.epoch);
        if i != self.segment_index {
            let name = segment.optimizer;
            self.segment_index = i;
            self.optimizer =
                optimizers::build(&self.cfg, self.model.layout(), i, &self.theta, &self.team)?;
            self.observer.message(&format!(
                "epoch {}: switching to {name}",
                self.pos.epoch + 1
            ));
        }
        Ok(())
    }

    /// Trains the rest of the current epoch; stops early (with a checkpoint) when a
    /// stop is requested.
    pub fn train_epoch(&mut self) -> Result<EpochEnd> {
        if self.is_done() {
            bail!("the run has finished all {} epochs", self.cfg.epochs);
        }
        self.enter_segment()?;
        let (span, steps) = self.steps_left()?;
        let ranks = self.team.size();
        let start_batch = self.pos.batch;
        self.observer
            .epoch_started(self.pos.epoch, self.cfg.epochs, span, start_batch);
        let batches = if self.cfg.nes_straddles() {
            // One stream over the data's epochs: a step may run on into the next one
            // (from its batch 0, in its own order), and a resumed position may already
            // be past this run epoch's end.
            let (epoch, batch) = steps::stream_position(
                &self.cfg,
                self.loader.batches_per_epoch(),
                self.pos.epoch,
                start_batch,
            );
            self.loader.prefetch_epochs(epoch, batch, epoch + 2)?
        } else {
            self.loader.prefetch(self.pos.epoch, start_batch)?
        };
        let batches = self.team.shard(batches);
        let model = self.model.clone();
        let mut oracle = TrainOracle::new(
            model.as_ref(),
            self.device.clone(),
            Box::new(batches),
            self.data.classes,
            self.pos.sums,
            self.pos.window,
        )?;
        let mut started = Instant::now();
        let mut seconds_before = self.pos.epoch_seconds;
        for _ in 0..steps {
            let result = self.optimizer.step(self.pos.step, &self.theta, &mut oracle);
            if let Some(loss) = oracle.diverged {
                return Err(self.diverged(loss));
            }
            let info = result?;
            // Hand the step's work to the device without waiting for it.
            self.device.flush()?;
            self.theta = info.theta;
            if let Some(c) = info.correlation {
                self.pos.correlations.push(c);
            }
            let pos = &mut self.pos;
            pos.batch = start_batch + oracle.batches_used * ranks;
            pos.step += 1;
            self.steps_since_row += 1;
            pos.epoch_seconds = seconds_before + started.elapsed().as_secs_f64();
            let log_row = pos.step.is_multiple_of(self.cfg.options.log_every_steps);
            let due = matches!(self.cfg.options.checkpoint_every, CheckpointEvery::Steps(n) if pos.step.is_multiple_of(n));
            let stop = self.team.agree_stop(self.stop.requested())?;
            if log_row || due || stop.is_some() {
                // On wgpu the losses are read back only here (and at the epoch's end).
                self.settle(&mut oracle)?;
                self.pos.sums = oracle.sums;
                self.check_parameters()?;
            }
            self.pos.sums = oracle.sums;
            if log_row {
                self.log_window(&mut oracle, span)?;
            }
            let pos = &mut self.pos;
            pos.window = oracle.window;
            self.observer.step(pos.batch, &pos.sums, pos.epoch_seconds);
            if due || stop.is_some() {
                self.device.synchronize()?;
                self.save_checkpoint()?;
                // Checkpoint time is not training time.
                seconds_before = self.pos.epoch_seconds;
                started = Instant::now();
            }
            if let Some(signal) = stop {
                return Ok(EpochEnd::Interrupted(signal));
            }
        }
        self.settle(&mut oracle)?;
        self.pos.sums = oracle.sums;
        self.pos.window = oracle.window;
        drop(oracle);
        self.device.synchronize()?;
        Ok(EpochEnd::Completed)
    }

    /// Batches a run epoch spans (a data epoch, or one update with NES's `update`
    /// accounting), and the steps left in the current epoch (whole steps, or with
    /// straddling NES up to the one that reaches or crosses its end).
    fn steps_left(&self) -> Result<(usize, usize)> {
        let per_epoch = self.loader.batches_per_epoch();
        let bps = self.optimizer.batches_per_step() * self.team.size();
        if bps > per_epoch {
            bail!(
                "{} needs {bps} batches per step but an epoch has only {per_epoch}",
                self.cfg.segment_at(self.pos.epoch).1.optimizer
            );
        }
        let straddles = self.cfg.nes_straddles();
        let span = steps::epoch_span(&self.cfg, per_epoch);
        Ok((
            span,
            steps::steps_from(straddles, span, self.pos.batch, bps),
        ))
    }

    /// Appends the step row of the window just ended and starts a new window.
    fn log_window(&mut self, oracle: &mut TrainOracle<'_>, span: usize) -> Result<()> {
        let pos = &self.pos;
        let progress = pos.epoch as f64 + pos.batch as f64 / span as f64;
        let window = self.team.reduce_sums(oracle.window)?;
        self.steps
            .push(StepMetrics::of(pos.epoch, pos.step, progress, &window));
        oracle.window = EpochSums::default();
        Ok(())
    }

    /// Reads the oracle's pending batch records; a non-finite loss is a divergence.
    fn settle(&self, oracle: &mut TrainOracle<'_>) -> Result<()> {
        if oracle.settle().is_err() {
            if let Some(loss) = oracle.diverged {
                return Err(self.diverged(loss));
            }
        }
        Ok(())
    }

    fn diverged(&self, loss: f64) -> anyhow::Error {
        self.diverged_at(loss, None)
    }

    /// Stops the run as diverged when a parameter is not finite, though the loss may
    /// be: a NaN weight feeding a ReLU is zeroed there and never corrected.
    fn check_parameters(&self) -> Result<()> {
        let values = self.theta.to_vec_f32()?;
        let Some(i) = values.iter().position(|x| !x.is_finite()) else {
            return Ok(());
        };
        let at = match self
            .model
            .layout()
            .specs
            .iter()
            .find(|s| (s.offset..s.offset + s.len()).contains(&i))
        {
            Some(s) => format!("{}[{}] = {}", s.name, i - s.offset, values[i]),
            None => format!("θ[{i}] = {}", values[i]),
        };
        Err(self.diverged_at(self.pos.sums.mean_loss(), Some(at)))
    }

    /// [`Trainer::check_parameters`] over a snapshot (parameters, model and optimiser
    /// state), so that no checkpoint or final file holds a non-finite value.
    fn check_snapshot(&self, tensors: &HostTensors) -> Result<()> {
        match checkpoint::first_non_finite(tensors) {
            Some(at) => Err(self.diverged_at(self.pos.sums.mean_loss(), Some(at))),
            None => Ok(()),
        }
    }

    fn diverged_at(&self, loss: f64, parameter: Option<String>) -> anyhow::Error {
        let ck = self.dir.file(CHECKPOINT);
        if let Err(e) = metrics::write_all(&self.dir, &self.rows, &self.steps) {
            return e.context("writing the metrics of a diverged run");
        }
        anyhow::Error::new(Diverged {
            loss,
            parameter,
            epoch: self.pos.epoch + 1,
            step: self.pos.step,
            lr: self.cfg.segment_at(self.pos.epoch).1.lr,
            checkpoint: ck.exists().then_some(ck),
            dir: self.dir.path().to_path_buf(),
        })
    }

    /// Evaluates θ at the end of the epoch, records the epoch's row (metrics files and
    /// plot) and moves to the next epoch.
    pub fn evaluate(&mut self) -> Result<&EpochMetrics> {
        self.check_parameters()?;
        let evaluation = self.evaluation()?;
        let window = self.team.reduce_sums(self.pos.window)?;
        let sums = self.team.reduce_sums(self.pos.sums)?;
        self.team
            .check_theta(&self.theta, &format!("after epoch {}", self.pos.epoch + 1))?;
        let pos = &mut self.pos;
        if window.seen > 0 {
            // The epoch's last partial window, so short runs still have step points.
            self.steps.push(StepMetrics::of(
                pos.epoch,
                pos.step,
                pos.epoch as f64 + 1.0,
                &window,
            ));
        }
        let segment = self.cfg.segment_at(pos.epoch).1;
        let steps_before = self.rows.last().map_or(0, |r| r.step);
        let inputs = EpochInputs {
            epoch: pos.epoch,
            step: pos.step,
            updates: pos.step - steps_before,
            optimizer: segment.optimizer.to_string(),
            lr: segment.lr,
            sums,
            seconds: pos.epoch_seconds,
            correlations: &pos.correlations,
            tensor_names: self
                .model
                .layout()
                .specs
                .iter()
                .map(|s| s.name.clone())
                .collect(),
        };
        let mut timing = EpochTiming::of(&inputs);
        let mut row = EpochMetrics::assemble(inputs, evaluation);
        if self.cfg.distributed.is_some() {
            let traffic = self.team.take_traffic();
            row.comm = Some(CommStats {
                ranks: self.team.size(),
                bytes_per_step: traffic.bytes_sent as f64 / self.steps_since_row.max(1) as f64,
                comm_seconds: None,
                compute_seconds: None,
            });
            timing.comm_seconds = Some(traffic.seconds);
            timing.compute_seconds = Some(timing.seconds - traffic.seconds);
        }
        self.steps_since_row = 0;
        self.rows.push(row);
        let span = steps::epoch_span(&self.cfg, self.loader.batches_per_epoch());
        *pos = Position {
            step: pos.step,
            epoch: pos.epoch + 1,
            // A straddling step's overflow into the next epoch.
            batch: steps::carried_batch(span, pos.batch),
            metric_rows: self.rows.len(),
            step_rows: self.steps.len(),
            ..Position::default()
        };
        metrics::write_all(&self.dir, &self.rows, &self.steps)?;
        if self.dir.writes() {
            append_provenance(&self.dir, &serde_json::to_value(timing)?)?;
            plot::draw_curves(self.dir.path(), &self.rows, &self.steps)?;
        }
        let row = self.rows.last().expect("a row was just pushed");
        self.observer.epoch_finished(row, &timing, self.cfg.epochs);
        if !self.is_done() {
            self.enter_segment()?;
        }
        Ok(self.rows.last().expect("a row was just pushed"))
    }

    /// Validation (and test) loss and accuracy of the current θ.
    fn evaluation(&self) -> Result<Evaluation> {
        let pre = self.data.preprocess();
        let batch = self.cfg.options.eval_batch_size;
        let on = |set, idx: &[usize]| {
            self.team.evaluate(
                self.model.as_ref(),
                &self.device,
                &self.theta,
                rbd_datasets::eval_batches(set, idx, batch, pre),
                self.data.classes,
            )
        };
        let val = on(&self.data.train, &self.data.val_indices)?;
        let test = match &self.data.test {
            Some(test) => Some(on(test, &(0..test.n).collect::<Vec<_>>())?),
            None => None,
        };
        Ok(Evaluation { val, test })
    }

    /// Writes the checkpoint if the configuration's period says so at this epoch
    /// boundary (and always after the last epoch, unless checkpoints are off).
    pub fn checkpoint_if_due(&mut self) -> Result<bool> {
        let due = match self.cfg.options.checkpoint_every {
            CheckpointEvery::Off => false,
            CheckpointEvery::Epochs(n) => self.pos.epoch.is_multiple_of(n) || self.is_done(),
            CheckpointEvery::Steps(_) => self.is_done(),
        };
        if due {
            self.save_checkpoint()?;
        }
        Ok(due)
    }

    fn snapshot(&self) -> Result<HostTensors> {
        snapshot(self.model.as_ref(), &self.theta, self.optimizer.as_ref())
    }

    fn save_checkpoint(&mut self) -> Result<()> {
        self.pos.step_rows = self.steps.len();
        self.pos.metric_rows = self.rows.len();
        // The checkpoint's rows must be on disk with it.
        metrics::write_all(&self.dir, &self.rows, &self.steps)?;
        // Mid-epoch running sums of all ranks (every rank takes part).
        let mut pos = self.pos.clone();
        pos.sums = self.team.reduce_sums(pos.sums)?;
        pos.window = self.team.reduce_sums(pos.window)?;
        if !self.dir.writes() {
            return Ok(());
        }
        let tensors = self.snapshot()?;
        self.check_snapshot(&tensors)?;
        checkpoint::save(&self.dir.file(CHECKPOINT), &tensors, &pos, &self.run_id)
    }

    /// Writes the final parameters (all epochs must have run).
    pub fn finish(self) -> Result<PathBuf> {
        if !self.is_done() {
            bail!(
                "the run has {} of {} epochs left",
                self.cfg.epochs - self.pos.epoch,
                self.cfg.epochs
            );
        }
        let path = self.dir.file(FINAL);
        if self.dir.writes() {
            let tensors = self.snapshot()?;
            self.check_snapshot(&tensors)?;
            checkpoint::save(&path, &tensors, &self.pos, &self.run_id)?;
            // The run is finished once its parameters read back verified.
            let back = checkpoint::load(&path)?;
            if back.run_id != self.run_id || back.position != self.pos {
                bail!(
                    "{}: the final parameters read back differ from those written",
                    path.display()
                );
            }
        }
        Ok(path)
    }

    /// Runs every remaining epoch: train, evaluate, checkpoint if due; then finish.
    pub fn run(mut self) -> Result<Outcome> {
        while !self.is_done() {
            if let EpochEnd::Interrupted(signal) = self.train_epoch()? {
                return Ok(Outcome::Interrupted {
                    signal,
                    position: self.pos.clone(),
                });
            }
            self.evaluate()?;
            self.checkpoint_if_due()?;
            if let Some(signal) = self.team.agree_stop(self.stop.requested())? {
                if !self.is_done() {
                    self.save_checkpoint()?;
                    return Ok(Outcome::Interrupted {
                        signal,
                        position: self.pos.clone(),
                    });
                }
            }
        }
        self.finish()?;
        Ok(Outcome::Finished)
    }
}

/// Says which rates, variants and data pipeline the run uses.
fn announce(cfg: &RunConfig, observer: &mut dyn Observer) {
    for s in &cfg.schedule {
        observer.message(&format!(
            "optimizer: {} lr {} ({}){}",
            s.optimizer,
            crate::lr::format_lr(s.lr),
            s.lr_source,
            s.until_epoch
                .map(|u| format!(" until epoch {u}"))
                .unwrap_or_default()
        ));
    }
    for line in cfg.settings.describe(&cfg.runs()) {
        observer.message(&line);
    }
    if !cfg.data.augment {
        observer.message("augmentation: none (--no-augment: the plain training images)");
    } else if let super::kinds::DatasetSpec::Known(rbd_datasets::DatasetKind::Cifar10) = cfg.dataset
    {
        observer.message(&format!(
            "augmentation: {} ({})",
            cfg.data.augment_order.name(),
            cfg.data.augment_order.source()
        ));
    }
}

/// What differs between identical runs: one JSON line per start or resume in
/// `provenance.jsonl` (the binary's commit, the device, the machine, the epoch it started
/// from), and one per epoch with its training time ([`EpochTiming`]).
pub const PROVENANCE: &str = "provenance.jsonl";

fn record_provenance(dir: &RunDir, device: &Device, from: Option<&Position>) -> Result<()> {
    let line = serde_json::json!({
        "commit": env!("RBD_COMMIT"),
        "device": device.describe(),
        "machine": crate::machine::describe(),
        "from_epoch": from.map_or(0, |p| p.epoch),
        "from_step": from.map_or(0, |p| p.step),
    });
    append_provenance(dir, &line)
}

fn append_provenance(dir: &RunDir, line: &serde_json::Value) -> Result<()> {
    let path = dir.file(PROVENANCE);
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str(&line.to_string());
    text.push('\n');
    dir.write(PROVENANCE, text.as_bytes())
}

/// The training time of each epoch of the run in `dir`, from `provenance.jsonl` (the
/// last line of an epoch wins; none for runs that kept it in `metrics.jsonl`).
pub fn timings(dir: &Path) -> Result<std::collections::BTreeMap<u64, EpochTiming>> {
    let path = super::record::describe(dir, PROVENANCE);
    let mut out = std::collections::BTreeMap::new();
    let Some(text) = super::record::text(dir, PROVENANCE)? else {
        return Ok(out);
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => bail!("{path}: line {}: {e}", i + 1),
        };
        if v.get("seconds").is_some() {
            let t: EpochTiming =
                serde_json::from_value(v).with_context(|| format!("{path}: line {}", i + 1))?;
            out.insert(t.epoch, t);
        }
    }
    Ok(out)
}

/// One start or resume of a run, as `provenance.jsonl` records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stretch {
    /// The commit the training binary was built from.
    pub commit: String,
    /// The machine it ran on (`None` for lines written before machines were recorded).
    pub machine: Option<String>,
}

/// The stretches of the run in `dir`, in order (none if it has no `provenance.jsonl`).
pub fn stretches(dir: &Path) -> Vec<Stretch> {
    let text = super::record::text(dir, PROVENANCE)
        .ok()
        .flatten()
        .unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| {
            Some(Stretch {
                commit: v["commit"].as_str()?.to_string(),
                machine: v["machine"].as_str().map(str::to_string),
            })
        })
        .collect()
}

/// The newer of the run's checkpoint and final parameters, if any.
fn latest_checkpoint(out: &Path) -> Result<Option<(PathBuf, Loaded)>> {
    let mut best: Option<(PathBuf, Loaded)> = None;
    for name in [CHECKPOINT, FINAL] {
        let file = out.join(name);
        if file.exists() {
            let l = checkpoint::load(&file)?;
            if best
                .as_ref()
                .is_none_or(|(_, b)| l.position.step > b.position.step)
            {
                best = Some((file, l));
            }
        }
    }
    Ok(best)
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

/// θ and the optimiser's state from a checkpoint's tensors; the model's state restored.
fn restore_tensors(
    path: &Path,
    tensors: &HostTensors,
    model: &dyn Model,
    device: &Device,
) -> Result<(Tensor, Vec<rbd_optim::StateTensor>)> {
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
    Ok((
        Tensor::from_f32(device, &theta, &[layout.total])?,
        opt_state,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::kinds::DatasetSpec;
    use crate::train::{Segment, Silent};
    use rbd_engine::DeviceChoice;
    use rbd_models::ModelKind;
    use rbd_optim::OptimizerKind;

    /// Four MNIST-named IDX files of `n` noisy images in `dir`, ten classes.
    fn idx_data(dir: &Path, n: usize) {
        std::fs::create_dir_all(dir).unwrap();
        let mut s = 0x2545_f491u32;
        let mut images = Vec::with_capacity(n * 784);
        for _ in 0..n * 784 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            images.push((s % 256) as u8);
        }
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        for prefix in ["train", "t10k"] {
            let b = rbd_datasets::idx_images_bytes(n as u32, 28, 28, &images);
            std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), b).unwrap();
            let b = rbd_datasets::idx_labels_bytes(&labels);
            std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), b).unwrap();
        }
    }

    #[test]
    fn a_parameter_gone_nan_behind_a_relu_stops_the_run_though_the_loss_stays_finite() {
        let dir = std::env::temp_dir().join(format!("rbd-nan-param-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        idx_data(&dir.join("data"), 300);
        let mut cfg = RunConfig::new(
            ModelKind::Fc,
            DatasetSpec::Idx(dir.join("data")),
            vec![Segment {
                optimizer: OptimizerKind::Sgd,
                lr: 0.125,
                lr_source: "given".into(),
                until_epoch: None,
            }],
        );
        cfg.epochs = 2;
        cfg.data.val_size = 100;
        cfg.device = DeviceChoice::Cpu;
        let out = dir.join("run");
        let mut t =
            Trainer::start(cfg, &out, Claim::New, Box::new(Silent), StopFlag::new()).unwrap();
        // Hidden unit 5's bias becomes NaN: its pre-activation is NaN for every image,
        // its ReLU outputs 0, its gradients are 0. No output, loss or gradient elsewhere
        // changes, and SGD keeps the NaN for ever.
        let spec = t
            .model
            .layout()
            .specs
            .iter()
            .find(|s| s.name == "dense_1.bias")
            .unwrap()
            .clone();
        let mut theta = t.theta.to_vec_f32().unwrap();
        theta[spec.offset + 5] = f32::NAN;
        t.theta = Tensor::from_f32(&t.device, &theta, &[theta.len()]).unwrap();
        assert_eq!(t.train_epoch().unwrap(), EpochEnd::Completed);
        assert!(
            t.pos.sums.mean_loss().is_finite(),
            "the loss must stay finite"
        );
        let e = t.evaluate().unwrap_err();
        let d = e.downcast_ref::<Diverged>().expect("stopped as diverged");
        assert_eq!(d.parameter.as_deref(), Some("dense_1.bias[5] = NaN"));
        assert!(d.loss.is_finite() && d.epoch == 1);
        assert!(e.to_string().contains("dense_1.bias[5] = NaN"), "{e}");
        // Nothing with the NaN was written.
        assert!(!out.join(CHECKPOINT).exists() && !out.join(FINAL).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
