//! Metrics of a run: one row per epoch (`metrics.csv`, `metrics.jsonl`) and one row
//! every N steps (`steps.csv`, `steps.jsonl`), assembled here from the trainer's
//! running sums. JSON floats are written and read back exactly (serde_json's
//! `float_roundtrip`), so a resumed run rewrites earlier rows bit for bit.

use super::oracle::EpochSums;
use super::run_dir::RunDir;
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
    /// Optimiser steps (updates) this epoch ran (absent in rows written before it was
    /// recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updates: Option<u64>,
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
    /// The released code's measure: the per-tensor cosines pooled over tensors and
    /// steps, with --correlation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_pooled: Option<Summary>,
    /// Communication of a distributed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<super::team::CommStats>,
}

const HEADER: &str = "epoch,step,updates,optimizer,lr,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,seconds,images_per_second,corr_mean,corr_std,corr_min,corr_max";

const COMM_HEADER: &str = "ranks,bytes_per_step,comm_seconds,compute_seconds";

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl EpochMetrics {
    fn csv(&self) -> String {
        let c = self.correlation;
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{:.3},{:.1},{},{},{},{}",
            self.epoch,
            self.step,
            opt(self.updates.map(|u| u as f64)),
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

/// Training loss and accuracy over the steps since the previous row.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StepMetrics {
    /// Epoch number, from 1.
    pub epoch: u64,
    /// Optimiser steps so far.
    pub step: u64,
    /// Fraction of the run's epochs done (the x axis of the curves).
    pub epoch_progress: f64,
    /// Mean training loss over the window.
    pub train_loss: f64,
    /// Training accuracy over the window.
    pub train_accuracy: f64,
    /// Images in the window.
    pub images: u64,
}

const STEP_HEADER: &str = "epoch,step,epoch_progress,train_loss,train_accuracy,images";

impl StepMetrics {
    /// The row of a window of running sums.
    pub fn of(epoch: u64, step: u64, epoch_progress: f64, window: &EpochSums) -> Self {
        StepMetrics {
            epoch: epoch + 1,
            step,
            epoch_progress,
            train_loss: window.mean_loss(),
            train_accuracy: window.accuracy(),
            images: window.seen,
        }
    }

    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{}",
            self.epoch,
            self.step,
            self.epoch_progress,
            self.train_loss,
            self.train_accuracy,
            self.images
        )
    }
}

/// What an epoch's row is made of, besides the evaluation.
pub struct EpochInputs<'a> {
    /// Epoch index (0-based).
    pub epoch: u64,
    /// Steps so far.
    pub step: u64,
    /// Steps this epoch ran.
    pub updates: u64,
    /// The segment's optimiser and rate.
    pub optimizer: String,
    /// Its rate.
    pub lr: f64,
    /// Training sums of the epoch.
    pub sums: EpochSums,
    /// Training seconds.
    pub seconds: f64,
    /// Correlation samples (whole vector first, then per tensor).
    pub correlations: &'a [Vec<f64>],
    /// Parameter tensor names, in θ order.
    pub tensor_names: Vec<String>,
}

/// Validation (and test) loss and accuracy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Validation (loss, accuracy).
    pub val: (f64, f64),
    /// Test (loss, accuracy), if asked for.
    pub test: Option<(f64, f64)>,
}

impl EpochMetrics {
    /// Assembles an epoch's row.
    pub fn assemble(input: EpochInputs<'_>, eval: Evaluation) -> Self {
        let correlation = Summary::of(&input.correlations.iter().map(|c| c[0]).collect::<Vec<_>>());
        let correlation_per_tensor = correlation.map(|_| {
            input
                .tensor_names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let xs: Vec<f64> = input
                        .correlations
                        .iter()
                        .filter_map(|c| c.get(i + 1).copied())
                        .collect();
                    (name.clone(), Summary::of(&xs).unwrap_or_default())
                })
                .collect()
        });
        let pooled: Vec<f64> = input
            .correlations
            .iter()
            .flat_map(|c| c.iter().skip(1).copied())
            .collect();
        EpochMetrics {
            correlation_pooled: correlation.and(Summary::of(&pooled)),
            epoch: input.epoch + 1,
            step: input.step,
            updates: Some(input.updates),
            optimizer: input.optimizer,
            lr: input.lr,
            train_loss: input.sums.mean_loss(),
            train_accuracy: input.sums.accuracy(),
            val_loss: eval.val.0,
            val_accuracy: eval.val.1,
            test_loss: eval.test.map(|t| t.0),
            test_accuracy: eval.test.map(|t| t.1),
            seconds: input.seconds,
            images_per_second: input.sums.seen as f64 / input.seconds.max(1e-9),
            correlation,
            correlation_per_tensor,
            comm: None,
        }
    }

    /// The one-line summary printed after an epoch.
    pub fn line(&self, epochs: u64) -> String {
        format!(
            "epoch {}/{epochs}{}: train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}%{} | {:.1} s, {:.0} img/s{}",
            self.epoch,
            self.updates
                .map(|u| format!(" ({u} updates)"))
                .unwrap_or_default(),
            self.train_loss,
            100.0 * self.train_accuracy,
            self.val_loss,
            100.0 * self.val_accuracy,
            match (self.test_loss, self.test_accuracy) {
                (Some(l), Some(a)) => format!(" | test loss {l:.4} acc {:.2}%", 100.0 * a),
                _ => String::new(),
            },
            self.seconds,
            self.images_per_second,
            self.correlation
                .map(|c| format!(" | corr {:.4}±{:.4}", c.mean, c.std))
                .unwrap_or_default()
        ) + &self
            .comm
            .map(|c| {
                format!(
                    " | {} ranks, {:.0} B/step sent, comm {:.2} s, compute {:.2} s",
                    c.ranks, c.bytes_per_step, c.comm_seconds, c.compute_seconds
                )
            })
            .unwrap_or_default()
    }
}

fn write_rows<T: Serialize>(
    dir: &RunDir,
    stem: &str,
    header: &str,
    rows: &[T],
    csv: impl Fn(&T) -> String,
) -> Result<()> {
    let mut text = String::from(header);
    text.push('\n');
    let mut jsonl = String::new();
    for r in rows {
        text.push_str(&csv(r));
        text.push('\n');
        jsonl.push_str(&serde_json::to_string(r)?);
        jsonl.push('\n');
    }
    dir.write(&format!("{stem}.csv"), text.as_bytes())?;
    dir.write(&format!("{stem}.jsonl"), jsonl.as_bytes())
}

/// Rewrites the metric files with `rows` and `steps` (a resumed run never keeps rows
/// of the epochs or steps it repeats).
pub fn write_all(dir: &RunDir, rows: &[EpochMetrics], steps: &[StepMetrics]) -> Result<()> {
    if rows.iter().any(|r| r.comm.is_some()) {
        // Distributed runs: communication columns at the end.
        let header = format!("{HEADER},{COMM_HEADER}");
        write_rows(dir, "metrics", &header, rows, |r| {
            let c = r.comm.unwrap_or_default();
            format!(
                "{},{},{},{:.3},{:.3}",
                r.csv(),
                c.ranks,
                c.bytes_per_step,
                c.comm_seconds,
                c.compute_seconds
            )
        })?;
    } else {
        write_rows(dir, "metrics", HEADER, rows, EpochMetrics::csv)?;
    }
    write_rows(dir, "steps", STEP_HEADER, steps, StepMetrics::csv)
}

fn read_rows<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}: line {}", path.display(), i + 1))
        })
        .collect()
}

/// Reads `metrics.jsonl` of a run directory.
pub fn read_epochs(dir: &Path) -> Result<Vec<EpochMetrics>> {
    read_rows(&dir.join("metrics.jsonl"))
}

/// Reads `steps.jsonl` of a run directory.
pub fn read_steps(dir: &Path) -> Result<Vec<StepMetrics>> {
    read_rows(&dir.join("steps.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_correlation_averages_every_tensor_and_step() {
        // Two steps: whole-vector cosine first, then two tensors.
        let correlations = vec![vec![0.9, 0.1, 0.3], vec![0.7, 0.5, 0.7]];
        let row = EpochMetrics::assemble(
            EpochInputs {
                epoch: 0,
                step: 2,
                updates: 2,
                optimizer: "rbd".into(),
                lr: 1.0,
                sums: EpochSums::default(),
                seconds: 1.0,
                correlations: &correlations,
                tensor_names: vec!["a".into(), "b".into()],
            },
            Evaluation {
                val: (0.0, 0.0),
                test: None,
            },
        );
        assert!((row.correlation.unwrap().mean - 0.8).abs() < 1e-12);
        let pooled = row.correlation_pooled.unwrap();
        assert!((pooled.mean - 0.4).abs() < 1e-12, "{pooled:?}");
        assert_eq!((pooled.min, pooled.max), (0.1, 0.7));
        let per = row.correlation_per_tensor.unwrap();
        assert!((per[0].1.mean - 0.3).abs() < 1e-12 && (per[1].1.mean - 0.5).abs() < 1e-12);
    }

    #[test]
    fn rows_round_trip_bit_for_bit() {
        let row = EpochMetrics {
            epoch: 3,
            train_loss: 0.1 + 0.2,
            val_accuracy: 1.0 / 3.0,
            seconds: 12.345678901234567,
            ..EpochMetrics::default()
        };
        let text = serde_json::to_string(&row).unwrap();
        let back: EpochMetrics = serde_json::from_str(&text).unwrap();
        assert_eq!(back.train_loss.to_bits(), row.train_loss.to_bits());
        assert_eq!(back.seconds.to_bits(), row.seconds.to_bits());
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }
}
