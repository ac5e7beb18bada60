//! Per-epoch metrics: `metrics.csv` and `metrics.jsonl` in the run directory.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// mean, std, min, max of a sample.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Summary {
    /// Summarises `xs` (None if empty).
    pub fn of(xs: &[f64]) -> Option<Summary> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Some(Summary {
            mean,
            std: var.sqrt(),
            min: xs.iter().cloned().fold(f64::INFINITY, f64::min),
            max: xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// One epoch's row.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: u64,
    /// Optimiser steps so far.
    pub step: u64,
    /// Optimiser of this epoch.
    pub optimizer: String,
    /// Its learning rate.
    pub lr: f64,
    /// Mean training loss (on the augmented batches, during the epoch).
    pub train_loss: f64,
    /// Training accuracy, likewise.
    pub train_accuracy: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Test loss, with --eval-test.
    pub test_loss: Option<f64>,
    /// Test accuracy, with --eval-test.
    pub test_accuracy: Option<f64>,
    /// Wall-clock seconds of training in this epoch (evaluation excluded).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// Gradient correlation of the whole vector, with --correlation.
    pub correlation: Option<Summary>,
    /// Per parameter tensor, with --correlation.
    pub correlation_per_tensor: Option<Vec<(String, Summary)>>,
}

const HEADER: &str = "epoch,step,optimizer,lr,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,seconds,images_per_second,corr_mean,corr_std,corr_min,corr_max";

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl EpochMetrics {
    fn csv(&self) -> String {
        let c = self.correlation;
        format!(
            "{},{},{},{},{},{},{},{},{},{},{:.3},{:.1},{},{},{},{}",
            self.epoch,
            self.step,
            self.optimizer,
            self.lr,
            self.train_loss,
            self.train_accuracy,
            self.val_loss,
            self.val_accuracy,
            opt(self.test_loss),
            opt(self.test_accuracy),
            self.seconds,
            self.images_per_second,
            opt(c.map(|c| c.mean)),
            opt(c.map(|c| c.std)),
            opt(c.map(|c| c.min)),
            opt(c.map(|c| c.max)),
        )
    }
}

/// Rewrites both metric files with `rows` (used after every epoch, so a resumed run
/// never keeps rows of epochs it repeats).
pub fn write_all(dir: &Path, rows: &[EpochMetrics]) -> Result<()> {
    let mut csv = String::from(HEADER);
    csv.push('\n');
    let mut jsonl = String::new();
    for r in rows {
        csv.push_str(&r.csv());
        csv.push('\n');
        jsonl.push_str(&serde_json::to_string(r)?);
        jsonl.push('\n');
    }
    super::checkpoint::write_atomic(&dir.join("metrics.csv"), csv.as_bytes())?;
    super::checkpoint::write_atomic(&dir.join("metrics.jsonl"), jsonl.as_bytes())?;
    Ok(())
}

/// Reads `metrics.jsonl` (for resuming).
pub fn read_all(dir: &Path) -> Result<Vec<EpochMetrics>> {
    let path = dir.join("metrics.jsonl");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}: line {}", path.display(), i + 1))
        })
        .collect()
}
