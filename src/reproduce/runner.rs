//! Runs a manifest's training runs in process, one after another, resumably: a
//! finished run is skipped, an interrupted one resumes from its checkpoint, a run
//! given more epochs than it has is extended, a diverged one is recorded and skipped.
//! A stop request ends the sweep after the current run has written its checkpoint.

use super::manifest::PlannedRun;
use crate::signals::StopFlag;
use crate::train::checkpoint;
use crate::train::config::RunConfig;
use crate::train::metrics::{EpochMetrics, EpochTiming};
use crate::train::run_dir::Occupied;
use crate::train::trainer::{CHECKPOINT, CONFIG, FINAL};
use crate::train::{pack, record};
use crate::train::{Claim, Diverged, Observer, Outcome, ResumeChanges, Trainer};
use anyhow::{bail, Context, Result};
use rbd_optim::OptimizerKind;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Written into a run directory whose training loss or parameters became non-finite,
/// so a rerun of the sweep does not train it again.
pub const DIVERGED: &str = "diverged.json";

/// What the disk says about a planned run.
#[derive(Clone, Debug, PartialEq)]
pub enum RunState {
    /// Nothing there yet.
    New,
    /// Started, not finished (or finished with fewer epochs than planned, or every
    /// epoch's row written but not its final parameters).
    Partial {
        /// Epochs with a metrics row.
        epochs_done: u64,
    },
    /// Finished with at least the planned epochs: `final.safetensors` holds verified
    /// parameters of at least that epoch, or the directory holds every row and no
    /// parameters at all (committed results keep none).
    Done,
    /// Its loss or parameters became non-finite.
    Diverged(DivergedRecord),
}

/// The record of a diverged run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DivergedRecord {
    /// Epoch (from 1).
    pub epoch: u64,
    /// Step.
    pub step: u64,
    /// The training loss (non-finite unless a parameter diverged first).
    #[serde(with = "crate::nonfinite::float")]
    pub loss: f64,
    /// The first non-finite parameter (`tensor[index] = value`) when the parameters
    /// diverged while the loss stayed finite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl DivergedRecord {
    /// Reads `diverged.json` (its path names it in errors).
    pub fn read(path: &Path) -> Result<DivergedRecord> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses the text of `diverged.json` (`path` names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<DivergedRecord> {
        serde_json::from_str(text)
            .with_context(|| format!("{path}: not a record of a diverged run"))
    }

    /// What diverged, for messages: the loss or the parameter.
    pub fn what(&self) -> String {
        match &self.parameter {
            Some(p) => format!("parameter {p}"),
            None => format!("loss {}", crate::nonfinite::text(self.loss)),
        }
    }
}

/// Reads a run directory's `config.json`, sealed or not (its path names it in errors).
pub fn read_config(dir: &Path) -> Result<RunConfig> {
    let path = record::describe(dir, CONFIG);
    let text = record::text(dir, CONFIG)?.with_context(|| format!("{path}: missing"))?;
    serde_json::from_str(&text).with_context(|| format!("{path}: not a valid run configuration"))
}

/// Reads the state of `run`, refusing a directory that holds another configuration.
pub fn state(run: &PlannedRun) -> Result<RunState> {
    state_of(&run.cfg, &run.dir)
}

/// The state of a run of `cfg` in `dir`.
pub fn state_of(cfg: &RunConfig, dir: &Path) -> Result<RunState> {
    if !record::has(dir, CONFIG) {
        return Ok(RunState::New);
    }
    let existing = read_config(dir)?;
    if existing.run_id() != cfg.run_id() {
        bail!(
            "{} holds a run of another configuration (the manifest changed?); move it away or delete it to run it again",
            dir.display()
        );
    }
    if let Some(text) = record::text(dir, DIVERGED)? {
        return Ok(RunState::Diverged(DivergedRecord::parse(
            &text,
            &record::describe(dir, DIVERGED),
        )?));
    }
    let epochs_done = crate::train::metrics::read_epochs(dir)?.len() as u64;
    // Done when the planned budget is reached, even inside a longer run, and its
    // parameters are on disk: a run stopped between its last row and its final file
    // has a checkpoint to complete it from.
    if epochs_done >= cfg.epochs {
        let last = dir.join(FINAL);
        if last.exists() {
            let l = checkpoint::load(&last)?;
            if l.run_id != cfg.run_id() {
                bail!(
                    "{}: written for run {}, but the run in {} is {}",
                    last.display(),
                    l.run_id,
                    dir.display(),
                    cfg.run_id()
                );
            }
            if l.position.epoch >= cfg.epochs {
                return Ok(RunState::Done);
            }
        } else if !dir.join(CHECKPOINT).exists() {
            // Neither file: results kept without parameters (results/ never holds any).
            return Ok(RunState::Done);
        }
    }
    Ok(RunState::Partial { epochs_done })
}

/// How a sweep ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SweepEnd {
    /// Every runnable run is done.
    Complete,
    /// A stop was requested by this signal.
    Interrupted(i32),
}

/// Prints one line per epoch, prefixed with the run.
struct RunLines {
    prefix: String,
}

impl Observer for RunLines {
    fn message(&mut self, text: &str) {
        if text.starts_with("resuming") || text.starts_with("fetch") || text.contains("ready in") {
            println!("{} {text}", self.prefix);
        }
    }
    fn epoch_finished(&mut self, row: &EpochMetrics, timing: &EpochTiming, epochs: u64) {
        println!(
            "{} epoch {}/{epochs}: val acc {:.2}% loss {:.4} | {} updates, {:.1} s",
            self.prefix,
            row.epoch,
            100.0 * row.val_accuracy,
            row.val_loss,
            row.updates.unwrap_or_default(),
            timing.seconds
        );
    }
}

/// How one run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEnd {
    /// It has its planned epochs (now or before).
    Done,
    /// Its loss became non-finite (now or before).
    Diverged(DivergedRecord),
    /// A stop was requested by this signal.
    Interrupted(i32),
}

/// Trains the run of `cfg` in `dir` unless it is done: starts it, resumes it, or
/// extends it; a divergence is recorded in the directory.
pub fn run_one(cfg: &RunConfig, dir: &Path, prefix: &str, stop: &StopFlag) -> Result<RunEnd> {
    adopt_legacy_name(dir, prefix)?;
    let end = run_once(cfg, dir, prefix, stop, false)?;
    // Sealed and packed once over by its own configuration (a sweep at fewer epochs may
    // find a longer run done), and not while another process holds it. A run an older
    // binary sealed in its directory is packed here too.
    if matches!(end, RunEnd::Done | RunEnd::Diverged(_))
        && !record::is_packed(dir)
        && !crate::train::run_dir::in_use(dir)
        && over(dir)?
    {
        seal(dir)?;
    }
    Ok(end)
}

/// Whether the run in `dir` is done or diverged by its own configuration.
pub fn over(dir: &Path) -> Result<bool> {
    let cfg = read_config(dir)?;
    Ok(matches!(
        state_of(&cfg, dir)?,
        RunState::Done | RunState::Diverged(_)
    ))
}

/// What [`seal`] did to a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealing {
    /// The sealing (`records` 0 when the directory was sealed before).
    pub sealed: record::SealReport,
    /// Its joining the folder's pack.
    pub packed: pack::Put,
}

/// Seals the finished (or diverged) run in `dir` under its lock, moves it into its
/// folder's pack, and removes the directory when nothing else (parameters) is left.
pub fn seal(dir: &Path) -> Result<Sealing> {
    let before = record::is_sealed(dir);
    let done = {
        let _lock = crate::train::run_dir::RunDir::claim(dir, Claim::Resume)?;
        let mut sealed = record::seal(dir).with_context(|| format!("sealing {}", dir.display()))?;
        if before {
            sealed.records = 0;
        }
        let packed = pack::put(dir).with_context(|| format!("packing {}", dir.display()))?;
        Sealing { sealed, packed }
    };
    pack::tidy(dir)?;
    Ok(done)
}

/// Renames a run directory written under its old name (`lr2^-1`) to its name now
/// (`lr2pow-1`), so a run is recognised whatever binary started it.
fn adopt_legacy_name(dir: &Path, prefix: &str) -> Result<()> {
    let Some(legacy) = dir
        .file_name()
        .and_then(|n| record::legacy_name(&n.to_string_lossy()))
        .map(|n| dir.with_file_name(n))
    else {
        return Ok(());
    };
    if legacy.is_dir() && !dir.exists() {
        println!(
            "{prefix} renaming {} to {}",
            legacy.display(),
            dir.display()
        );
        std::fs::rename(&legacy, dir)
            .with_context(|| format!("renaming {} to {}", legacy.display(), dir.display()))?;
    }
    Ok(())
}

fn run_once(
    cfg: &RunConfig,
    dir: &Path,
    prefix: &str,
    stop: &StopFlag,
    retried: bool,
) -> Result<RunEnd> {
    let observer = Box::new(RunLines {
        prefix: prefix.to_string(),
    });
    let trainer = match state_of(cfg, dir)? {
        RunState::Done => {
            println!("{prefix} done");
            return Ok(RunEnd::Done);
        }
        RunState::Diverged(d) => {
            println!(
                "{prefix} diverged at epoch {} ({}): skipped",
                d.epoch,
                d.what()
            );
            return Ok(RunEnd::Diverged(d));
        }
        RunState::Partial { epochs_done } => {
            println!("{prefix} resuming after {epochs_done} epochs");
            let changes = ResumeChanges {
                // Never shorten a run that was given more epochs before.
                epochs: Some(cfg.epochs).filter(|e| *e > read_epochs_configured(dir).unwrap_or(0)),
                device: Some(cfg.device),
                data_dir: Some(cfg.data_dir.clone()),
                checkpoint_every: None,
            };
            Trainer::resume(dir, &changes, observer, stop.clone())?
        }
        RunState::New => {
            println!("{prefix} starting ({})", describe(cfg));
            match Trainer::start(cfg.clone(), dir, Claim::New, observer, stop.clone()) {
                Ok(t) => t,
                // Another process (a second sweep) started the run meanwhile: continue,
                // skip or wait for it as its state says, once.
                Err(e) if e.is::<Occupied>() => {
                    if !retried {
                        println!("{prefix} started meanwhile by another process");
                        return run_once(cfg, dir, prefix, stop, true);
                    }
                    bail!(
                        "{e} but no {CONFIG}: another rbd process is starting it (run the same command again once that one has finished), or a start was killed before writing {CONFIG} (then remove {})",
                        dir.display()
                    );
                }
                Err(e) => return Err(e),
            }
        }
    };
    match trainer.run() {
        Ok(Outcome::Finished) => Ok(RunEnd::Done),
        Ok(Outcome::Interrupted { signal, .. }) => Ok(RunEnd::Interrupted(signal)),
        Err(e) => match e.downcast_ref::<Diverged>() {
            Some(d) => {
                println!("{prefix} {d}");
                let record = DivergedRecord {
                    epoch: d.epoch,
                    step: d.step,
                    loss: d.loss,
                    parameter: d.parameter.clone(),
                };
                crate::train::run_dir::write_atomic(
                    &dir.join(DIVERGED),
                    serde_json::to_string_pretty(&record)?.as_bytes(),
                )?;
                Ok(RunEnd::Diverged(record))
            }
            None => Err(e.context(format!("{prefix} failed"))),
        },
    }
}

/// Trains every planned run that is not done.
pub fn run_all(runs: &[PlannedRun], stop: &StopFlag) -> Result<SweepEnd> {
    let n = runs.len();
    for (i, run) in runs.iter().enumerate() {
        let prefix = format!("[{}/{n} {} seed {}]", i + 1, run.entry.id, run.seed);
        if let Some(why) = &run.blocked {
            println!("{prefix} skipped: {why}");
            continue;
        }
        if let RunEnd::Interrupted(signal) = run_one(&run.cfg, &run.dir, &prefix, stop)? {
            return Ok(SweepEnd::Interrupted(signal));
        }
    }
    Ok(SweepEnd::Complete)
}

/// The epochs a run directory's configuration asks for.
fn read_epochs_configured(dir: &Path) -> Result<u64> {
    Ok(read_config(dir)?.epochs)
}

/// A one-line description of a run's configuration.
pub fn describe(cfg: &RunConfig) -> String {
    let schedule: Vec<String> = cfg
        .schedule
        .iter()
        .map(|s| {
            format!(
                "{} lr {}{}",
                s.optimizer,
                crate::lr::format_lr(s.lr),
                s.until_epoch
                    .map(|u| format!(" to epoch {u}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let d = &cfg.settings.directions;
    let directions = if cfg.schedule.iter().any(|s| s.optimizer.uses_directions()) {
        format!(
            ", d = {}, compartments {}{}, {}{}",
            d.dim,
            d.compartments,
            if d.split_dim { " (d split)" } else { "" },
            d.distribution,
            match d.bases {
                rbd_optim::BasesKind::Iid => "",
                rbd_optim::BasesKind::Fastfood => ", fastfood bases",
            }
        )
    } else {
        String::new()
    };
    let fpd = if cfg.uses(OptimizerKind::Fpd) {
        format!(", FPD {}", cfg.settings.fpd.fpd_variant.describe())
    } else {
        String::new()
    };
    let nes = if cfg.uses(OptimizerKind::Nes) {
        format!(", NES epochs {}", cfg.settings.nes.nes_epochs)
    } else {
        String::new()
    };
    let augment = match cfg.dataset {
        _ if !cfg.data.augment => ", no augmentation".to_string(),
        crate::train::kinds::DatasetSpec::Known(rbd_datasets::DatasetKind::Cifar10) => format!(
            ", augmentation {} ({})",
            cfg.data.augment_order.name(),
            cfg.data.augment_order.source()
        ),
        _ => String::new(),
    };
    format!(
        "{} on {}, {}{directions}{fpd}{nes}{augment}, {} epochs",
        cfg.model,
        cfg.dataset,
        schedule.join(" then "),
        cfg.epochs
    )
}
