//! Training as a library: typed configuration ([`config`], [`kinds`], [`data`]), a locked run
//! directory ([`run_dir`]), checkpoints with checksums ([`checkpoint`]), metrics
//! ([`metrics`]) and the [`Trainer`] that drives a run through its phases. The CLI,
//! the sweep runner and the distributed launcher are thin layers over it.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod kinds;
pub mod metrics;
pub mod optimizers;
pub mod oracle;
pub mod pack;
pub mod plot;
pub mod record;
pub mod run_dir;
pub mod steps;
pub mod team;
pub mod trainer;

pub use config::{ConfigError, RunConfig, ScheduleSpec, Segment};
pub use run_dir::Claim;
pub use team::Team;
pub use trainer::{Diverged, EpochEnd, Outcome, Trainer};

use kinds::CheckpointEvery;
use metrics::{EpochMetrics, EpochTiming};
use oracle::EpochSums;
use rbd_engine::DeviceChoice;
use std::path::PathBuf;

/// What a caller hears of a run's progress.
pub trait Observer {
    /// An informational line (device, schedule, data fetching, resuming).
    fn message(&mut self, _text: &str) {}
    /// An epoch starts (0-based `epoch`), or resumes at batch `at_batch`.
    fn epoch_started(&mut self, _epoch: u64, _epochs: u64, _batches: usize, _at_batch: usize) {}
    /// A step ended at batch `batch` with the epoch's running sums.
    fn step(&mut self, _batch: usize, _sums: &EpochSums, _seconds: f64) {}
    /// An epoch's row is written (its time is in `timing`, not in the row).
    fn epoch_finished(&mut self, _row: &EpochMetrics, _timing: &EpochTiming, _epochs: u64) {}
}

/// An observer that hears nothing.
pub struct Silent;
impl Observer for Silent {}

/// Changes a resumed run may take: only those that extend it or concern where it
/// runs, never what it computes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResumeChanges {
    /// Train to this many epochs (at least the configured count).
    pub epochs: Option<u64>,
    /// Run on another device (results then differ from an uninterrupted run).
    pub device: Option<DeviceChoice>,
    /// The data sets are elsewhere on this machine.
    pub data_dir: Option<PathBuf>,
    /// Another checkpoint period.
    pub checkpoint_every: Option<CheckpointEvery>,
}

impl ResumeChanges {
    /// Applies the changes to `cfg`, recording each in `cfg.resumed_with`; true if any
    /// changed something.
    pub fn apply(&self, cfg: &mut RunConfig) -> anyhow::Result<bool> {
        let mut notes = Vec::new();
        if let Some(e) = self.epochs {
            if e < cfg.epochs {
                anyhow::bail!(
                    "epochs: a resumed run can only be extended ({} epochs configured, {e} asked)",
                    cfg.epochs
                );
            }
            if e != cfg.epochs {
                notes.push(format!("epochs {} -> {e}", cfg.epochs));
                cfg.epochs = e;
            }
        }
        if let Some(d) = self.device.filter(|d| *d != cfg.device) {
            notes.push(format!("device {} -> {d}", cfg.device));
            cfg.device = d;
        }
        if let Some(d) = self.data_dir.as_ref().filter(|d| **d != cfg.data_dir) {
            notes.push(format!(
                "data_dir {} -> {}",
                cfg.data_dir.display(),
                d.display()
            ));
            cfg.data_dir = d.clone();
        }
        let every = &mut cfg.options.checkpoint_every;
        if let Some(c) = self.checkpoint_every.filter(|c| c != every) {
            notes.push(format!("checkpoint_every {every} -> {c}"));
            *every = c;
        }
        let changed = !notes.is_empty();
        cfg.resumed_with.extend(notes);
        Ok(changed)
    }
}
